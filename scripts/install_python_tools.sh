#!/usr/bin/env bash
# Installs the Python migration tools of scripts/python-tools.txt (Django 5.2 with psycopg 3,
# Alembic with SQLAlchemy 2) into a venv, default /opt/migrate-python (MIGRATE_PYTHON_VENV).
# The Alembic and Django fixtures are made with them (pg_test/fixtures/{alembic,django}/make.sh)
# and the client's tests drive them (cli/tests/graph_tools.rs). Idempotent: does nothing when
# the venv already holds exactly these versions. scripts/setup.sh calls it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${MIGRATE_PYTHON_VENV:-/opt/migrate-python}
REQ=$HERE/python-tools.txt
if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$VENV/migrate-requirements.txt"; then
  exit 0
fi
echo "setup: installing Django, psycopg, Alembic and SQLAlchemy into $VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r "$REQ"
cp "$REQ" "$VENV/migrate-requirements.txt"
# Tests run the tools as the postgres user too.
chmod -R a+rX "$VENV"
