#!/usr/bin/env bash
# Live-server suites for one PostgreSQL version: installs the extension, runs the SQL regression
# files against a throwaway cluster (on a fresh install, then on one upgraded from every
# release), then the system tests and the client's tests (which start clusters of their own).
# Usage: pg_test/run.sh 15|18
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh
version=$1
port=$(free_port $((55400 + version)))
dir=/tmp/migrate-regress-pg$version

install_extension "$version"
cluster_start "$version" "$dir" "$port"
# A second cluster with the library preloaded (the ProcessUtility hook, the launcher) for the
# golden files marked `-- needs: shared_preload_libraries = 'migrate'`.
pdir=/tmp/migrate-regress-pg$version-preload
pport=$(free_port $((port + 1)))
cluster_start "$version" "$pdir" "$pport" "shared_preload_libraries = 'migrate'"
trap 'cluster_stop "$version" "$dir"; cluster_stop "$version" "$pdir"' EXIT
status=0
pg_test/run_sql.sh "$port" || status=1
MIGRATE_PRELOADED=1 pg_test/run_sql.sh "$pport" || status=1
# Every released version upgraded to this one: objects and state checked, then the golden files.
MIGRATE_PG_BINDIR=$(pg_bindir_for "$version") pg_test/upgrade.sh "$port" || status=1
for script in sql/migrate--*.sql; do
  from=$(basename "$script" .sql); from=${from#migrate--}
  [[ $from == *--* ]] && continue
  MIGRATE_UPGRADE_FROM=$from pg_test/run_sql.sh "$port" || status=1
  MIGRATE_UPGRADE_FROM=$from MIGRATE_PRELOADED=1 pg_test/run_sql.sh "$pport" || status=1
done
cluster_stop "$version" "$pdir"
# A real history of 285 migrations deployed with the client, compared with psql.
cargo build -q -p migrate-cli || status=1
MIGRATE_PG_BINDIR=$(pg_bindir_for "$version") pg_test/histories.sh "$port" || status=1
cluster_stop "$version" "$dir"

MIGRATE_PG_BINDIR=$(pg_bindir_for "$version") \
  cargo test --manifest-path pg_test/system/Cargo.toml -- --test-threads=2 || status=1
# The command-line client against clusters of its own (cli/tests), with this version's
# extension installed above, and the real migration tools (scripts/install_tools.sh) required.
MIGRATE_REQUIRE_TOOLS=1 MIGRATE_PG_BINDIR=$(pg_bindir_for "$version") \
  cargo test -p migrate-cli --no-fail-fast -- --test-threads=2 || status=1
exit $status
