#!/usr/bin/env bash
# A real history, as is: crates.io's 285 diesel migrations (pg_test/fixtures/histories/cratesio)
# are deployed with `migrate-cli deploy --layout diesel` into one database and applied with psql
# file by file, in diesel's order, into another; the two schemas must be identical. Then both
# go back down through the down scripts to the newest migration whose down script cannot run
# (migrate registered it with a WARNING and refuses to roll back through it) and must be
# identical again; psql stops where the history's own down script fails, as migrate does.
# Prints the times of both. Usage: pg_test/histories.sh PORT (a running cluster with the
# extension installed and preloaded), MIGRATE_PG_BINDIR, MIGRATE_CLI (the client binary).
set -uo pipefail
cd "$(dirname "$0")/.."
port=$1
bin=${MIGRATE_PG_BINDIR:-$(dirname "$(command -v psql)")}
cli=${MIGRATE_CLI:-target/debug/migrate-cli}
src=pg_test/fixtures/histories/cratesio/migrations
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PGOPTIONS="-c client_min_messages=warning"
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
schema() {
  "$bin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres --schema-only --no-owner \
      --exclude-schema=migrate "$1" | grep -v '^--\|^$\|^\\\(un\)\?restrict \|EXTENSION'
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
failed=0
fail() { echo "FAIL history: $*"; failed=1; }

# crates.io's schema uses contrib extensions; a server built without them (PyPI's PostgreSQL 18
# has no OpenSSL, so no pgcrypto) cannot run the history at all, with or without migrate.
missing=$(psql -d postgres -At -c "SELECT string_agg(x, ', ') FROM unnest(ARRAY['pgcrypto', 'ltree', 'pg_trgm']) x
  WHERE x NOT IN (SELECT name FROM pg_catalog.pg_available_extensions)")
if [ -n "$missing" ]; then
  echo "history: skipped: this server has no $missing, which crates.io's schema needs"
  exit 0
fi
psql -d postgres -c "DROP DATABASE IF EXISTS hist_migrate" -c "DROP DATABASE IF EXISTS hist_psql" \
  -c "CREATE DATABASE hist_migrate" -c "CREATE DATABASE hist_psql"
psql -d hist_migrate -c "CREATE EXTENSION migrate"
url="postgres://postgres@127.0.0.1:$port/hist_migrate"

t0=$(now)
"$cli" --database-url "$url" deploy --layout diesel "$src" > "$work/deploy.out" 2>&1 \
  || fail "migrate-cli deploy failed: $(tail -5 "$work/deploy.out")"
t1=$(now)
applied=$(psql -d hist_migrate -At -c "SELECT count(*) FROM migrate.status() WHERE state = 'applied'")
[ "$applied" = 285 ] || fail "$applied of 285 migrations applied"

# diesel's order: the folder name's version with dashes removed, as text.
for p in "$src"/*/; do d=$(basename "$p"); echo "$(echo "$d" | cut -d_ -f1 | tr -d -) $d"; done \
  | sort -k1,1 | cut -d' ' -f2- > "$work/order"
single() { grep -qs 'run_in_transaction *= *false' "$src/$1/metadata.toml" || echo -1; }
t2=$(now)
while IFS= read -r d; do
  psql -d hist_psql -v ON_ERROR_STOP=1 $(single "$d") -f "$src/$d/up.sql" >/dev/null 2>&1 \
    || fail "psql could not apply $d"
done < "$work/order"
t3=$(now)
schema hist_migrate > "$work/a.sql"; schema hist_psql > "$work/b.sql"
diff -u "$work/b.sql" "$work/a.sql" > "$work/up.diff" || { fail "schemas differ after the ups"; head -40 "$work/up.diff"; }
echo "history: 285 migrations: migrate-cli deploy $(secs "$t0" "$t1") s (load included), psql file by file $(secs "$t2" "$t3") s; schemas identical ($(wc -l < "$work/a.sql") lines)"

stop=20240412144536
t0=$(now)
"$cli" --database-url "$url" deploy --layout diesel --to "$stop" "$src" > "$work/down.out" 2>&1
t1=$(now)
tac "$work/order" | while IFS= read -r d; do
  [ "$(echo "$d" | cut -d_ -f1 | tr -d -)" = "$stop" ] && break
  psql -d hist_psql -v ON_ERROR_STOP=1 $(single "$d") -f "$src/$d/down.sql" >/dev/null 2>&1 || break
done
schema hist_migrate > "$work/a2.sql"; schema hist_psql > "$work/b2.sql"
diff -u "$work/b2.sql" "$work/a2.sql" > "$work/down.diff" || { fail "schemas differ after the downs"; head -40 "$work/down.diff"; }
grep -q "failed (down)" "$work/down.out" || fail "the history's broken down script did not stop the deploy: $(tail -3 "$work/down.out")"
pending=$(psql -d hist_migrate -At -c "SELECT count(*) FROM migrate.status() WHERE state = 'pending'")
echo "history: back down $pending migrations in $(secs "$t0" "$t1") s to where its own down script fails, as psql does; schemas identical ($(wc -l < "$work/a2.sql") lines)"
"$cli" --database-url "$url" deploy --layout diesel --to 00000000000000 "$src" > "$work/first.out" 2>&1 \
  && fail "deploy back through an unusable down script was not refused"
grep -q "down script of migration $stop" "$work/first.out" || fail "the refusal does not name $stop: $(tail -3 "$work/first.out")"
[ "$(psql -d hist_migrate -At -c "SELECT count(*) FROM migrate.status() WHERE state = 'pending'")" = "$pending" ] \
  || fail "the refused deploy changed something"

# The same history as every other tool's users would have it (pg_test/fixtures/histories/make.sh):
# each deploys as is, with all 285 applied and the same schema as diesel's.
pg_test/fixtures/histories/make.sh "$work/layouts" > /dev/null
for dir in plain golang_migrate flyway sqlx dbmate prisma drizzle; do
  layout=${dir//_/-}
  db="hist_${dir}"
  psql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  psql -d "$db" -c "CREATE EXTENSION migrate"
  t0=$(now)
  if ! "$cli" --database-url "postgres://postgres@127.0.0.1:$port/$db" deploy --layout "$layout" \
      "$work/layouts/$dir" > "$work/$dir.out" 2>&1; then
    fail "$layout: deploy failed: $(grep -v '^migrate:' "$work/$dir.out" | tail -4)"
    continue
  fi
  t1=$(now)
  n=$(psql -d "$db" -At -c "SELECT count(*) FROM migrate.status() WHERE state = 'applied'")
  schema "$db" > "$work/$dir.sql"
  if [ "$n" != 285 ]; then
    fail "$layout: $n of 285 migrations applied"
  elif ! diff -q "$work/a.sql" "$work/$dir.sql" > /dev/null; then
    fail "$layout: schema differs from diesel's"; diff -u "$work/a.sql" "$work/$dir.sql" | head -20
  else
    echo "history: as $layout: 285 migrations deployed in $(secs "$t0" "$t1") s, same schema"
  fi
  psql -d postgres -c "DROP DATABASE $db"
done

if [ "$failed" = 0 ]; then echo "history: 1 passed, 0 failed"; else echo "history: 0 passed, 1 failed"; fi
[ "$failed" = 0 ]
