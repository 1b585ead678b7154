#!/usr/bin/env bash
# One command from a fresh Debian machine with Rust: installs what is missing, builds and installs
# the extension, starts a throwaway cluster on 127.0.0.1 (run as the `postgres` OS user, data in
# /tmp/migrate-demo) and runs the registry demo in psql.
#   bash scripts/demo.sh          # PostgreSQL 15; MIGRATE_PG=18 for PostgreSQL 18
#   bash scripts/demo.sh stop     # stop the demo cluster and delete its data
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh
version=${MIGRATE_PG:-15}
dir=/tmp/migrate-demo
port=${MIGRATE_DEMO_PORT:-55432}

if [ "${1:-}" = stop ]; then
  cluster_stop "$version" "$dir"
  rm -rf "$dir"
  echo "demo cluster stopped and removed"
  exit 0
fi

bash scripts/setup.sh
echo "demo: building and installing the extension into PostgreSQL $version"
install_extension "$version"
cluster_stop "$version" "$dir"
cluster_start "$version" "$dir" "$port"
psql="$(pg_bindir_for "$version")/psql -X -h 127.0.0.1 -p $port -U postgres"
$psql -q -d postgres -c "CREATE DATABASE migrate_demo"
$psql -d migrate_demo -a -v VERBOSITY=default -f pg_test/demo.sql

cat <<MSG

The demo cluster is still running. Play further with:
    $psql -d migrate_demo
Stop it (and delete its data) with:
    bash scripts/demo.sh stop
MSG
