#!/usr/bin/env bash
# One command from a fresh Debian machine with Rust: installs what is missing, builds and installs
# the extension and the client, starts a throwaway cluster on 127.0.0.1 (run as the `postgres` OS
# user, data in /tmp/migrate-demo) and tours the product on the sample project in
# pg_test/demo/migrations: plan, deploy (a concurrent index built by a worker, a backfill with its
# progress), the guard stopping a blocking CREATE INDEX, verify, status and history.
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
echo "demo: building and installing the extension into PostgreSQL $version, and migrate-cli"
install_extension "$version"
cargo build --release -q -p migrate-cli
cli=$PWD/target/release/migrate-cli
cluster_stop "$version" "$dir"
cluster_start "$version" "$dir" "$port" "shared_preload_libraries = 'migrate'"
psql="$(pg_bindir_for "$version")/psql -X -h 127.0.0.1 -p $port"
# A copy, so that the tour's `new` writes no file into the repository.
project=$(mktemp -d /tmp/migrate-demo-project-XXXX)/migrations
cp -r pg_test/demo/migrations "$project"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" || true; }

step "Set up: an application role that owns its database and may run migrations"
$psql -q -U postgres -d postgres <<'SQL'
CREATE ROLE app LOGIN;
CREATE DATABASE migrate_demo OWNER app;
\c migrate_demo
CREATE EXTENSION migrate;
GRANT migrate_admin TO app;
SQL
export DATABASE_URL="postgres://app@127.0.0.1:$port/migrate_demo"
echo "DATABASE_URL=$DATABASE_URL"
ls "$project"

step "What a deploy would do, statement by statement: locks, rewrites, rows scanned (nothing persists)"
run "$cli" plan "$project"

step "Deploy the first migration, then everything: the backfill runs in the background, the index is built CONCURRENTLY by a worker"
run "$cli" deploy --to 20240101120000 "$project"
run "$cli" deploy "$project"

step "The backfill job, and waiting for it"
run "$cli" jobs
job=$($psql -U app -d migrate_demo -At -c "SELECT max(id) FROM migrate.jobs WHERE kind = 'backfill'")
run "$cli" wait "$job"

step "The guard: a plain CREATE INDEX on a 200,000-row table blocks writes for the whole build"
$psql -U app -d migrate_demo -v VERBOSITY=default -c "CREATE INDEX users_created ON users (created_at)" || true

step "A new migration, checked before it is deployed: lint, then verify (up, down, up: the schema round-trips)"
run "$cli" new "add users name" "$project"
newest=$(ls "$project"/*_add_users_name.up.sql)
echo "ALTER TABLE users ADD COLUMN name text;" > "$newest"
echo "ALTER TABLE users DROP COLUMN name;" > "${newest%.up.sql}.down.sql"
run "$cli" lint "$project"
run "$cli" verify "$project"
run "$cli" deploy "$project"

step "Status and history"
run "$cli" status
$psql -U app -d migrate_demo -c "SELECT version, action, role, duration, detail FROM migrate.history ORDER BY id"

cat <<MSG

The demo cluster is still running. Play further with:
    $psql -U app -d migrate_demo
    DATABASE_URL=$DATABASE_URL $cli status    # the project folder: $project
Stop it (and delete its data) with:
    bash scripts/demo.sh stop
MSG
