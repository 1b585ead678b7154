#!/usr/bin/env bash
# Benchmark: running one big migration script (a CREATE TABLE and single-row INSERTs, the shape
# of a data-seeding migration or a pg_dump --inserts file) of 1, 5 and 10 MB, four ways, each on
# a fresh database, in one run:
#   limit    the whole script as one multi-statement SPI execution (DO + EXECUTE): the server's
#            own cost of parsing, planning and running it, with no statement-by-statement work
#   psql     psql -1 -f FILE (one round trip per statement)
#   apply    migrate.add() (timed on its own) then SELECT migrate.apply()
#   plan     SELECT count(*) FROM migrate.plan() on the registered, pending migration
#   deploy   CALL migrate.deploy() on a fresh database with the migration registered
# Prints a markdown table with the ratios to the limit.
# Usage: pg_test/bench/script_bench.sh [15|18]     SIZES="1 5 10" (MB)
#   MIGRATE_PROFILE=release for a release build of the extension (what BENCHMARKS.md records).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg.sh
version=${1:-15}
sizes=${SIZES:-1 5 10}
dir=/tmp/migrate-scriptbench-pg$version
work=$(mktemp -d /tmp/migrate-scriptbench-XXXX)
chmod a+rwx "$work"
port=$(free_port 55660)
bin=$(pg_bindir_for "$version")

install_extension "$version" >/dev/null
cluster_start "$version" "$dir" "$port" "shared_buffers = 256MB" "max_wal_size = 8GB"
trap 'cluster_stop "$version" "$dir"; rm -rf "$work"' EXIT
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }
fresh() {
  psql -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"
  psql -d bench -c "CREATE EXTENSION migrate"
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo "| size | statements | limit (DO) | psql -1 | add() | apply() | deploy() | plan() | apply/limit | deploy/limit | plan/apply |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for mb in $sizes; do
  file=$work/seed_${mb}mb.sql
  echo "CREATE TABLE seed (id bigint PRIMARY KEY, name text NOT NULL, note text);" > "$file"
  n=0
  while [ "$(stat -c %s "$file")" -lt $((mb * 1024 * 1024)) ]; do
    # 1000 rows at a time, ~77 bytes per statement.
    awk -v from="$n" 'BEGIN { for (i = from + 1; i <= from + 1000; i++)
      printf "INSERT INTO seed (id, name, note) VALUES (%d, '\''name %d'\'', '\''some note text'\'');\n", i, i }' >> "$file"
    n=$((n + 1000))
  done
  statements=$((n + 1))
  chmod a+r "$file"

  fresh
  t0=$(now); psql -d bench -c "DO \$\$ BEGIN EXECUTE pg_catalog.pg_read_file('$file'); END \$\$"; t1=$(now)
  limit=$(secs "$t0" "$t1")

  fresh
  t0=$(now); psql -d bench -1 -f "$file" >/dev/null; t1=$(now)
  viapsql=$(secs "$t0" "$t1")

  fresh
  t0=$(now); psql -d bench -c "SELECT migrate.add('1', pg_catalog.pg_read_file('$file'))" >/dev/null; t1=$(now)
  add=$(secs "$t0" "$t1")
  t0=$(now); psql -d bench -c "SELECT count(*) FROM migrate.plan()" >/dev/null; t1=$(now)
  plan=$(secs "$t0" "$t1")
  t0=$(now); psql -d bench -c "SELECT count(*) FROM migrate.apply()" >/dev/null; t1=$(now)
  apply=$(secs "$t0" "$t1")
  rows=$(psql -d bench -At -c "SELECT count(*) FROM seed")
  [ "$rows" = "$n" ] || { echo "apply() left $rows rows, not $n" >&2; exit 1; }

  fresh
  psql -d bench -c "SELECT migrate.add('1', pg_catalog.pg_read_file('$file'))" >/dev/null
  t0=$(now); psql -d bench -c "CALL migrate.deploy()" >/dev/null; t1=$(now)
  deploy=$(secs "$t0" "$t1")
  rows=$(psql -d bench -At -c "SELECT count(*) FROM seed")
  [ "$rows" = "$n" ] || { echo "deploy() left $rows rows, not $n" >&2; exit 1; }

  echo "| $mb MB | $statements | $limit s | $viapsql s | $add s | $apply s | $deploy s | $plan s | $(ratio "$apply" "$limit") | $(ratio "$deploy" "$limit") | $(ratio "$plan" "$apply") |"
done
