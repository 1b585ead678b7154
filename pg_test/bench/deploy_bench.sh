#!/usr/bin/env bash
# Benchmark: applying N small migrations (a table with a primary key and an index each, as
# separate files), three ways, in the same run, each on a fresh database:
#   psql      one `psql -1 -f FILE` per file, the way a shell loop or a simple tool applies them
#   deploy    the files registered with migrate.add() (timed separately), then CALL migrate.deploy()
#   apply     the same registration, then SELECT migrate.apply() (one transaction for all)
# Prints a markdown table.
# Usage: pg_test/bench/deploy_bench.sh [15|18]     N=300 (default)
#   MIGRATE_PROFILE=release for a release build of the extension.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg.sh
version=${1:-15}
n=${N:-300}
dir=/tmp/migrate-deploybench-pg$version
work=$(mktemp -d /tmp/migrate-deploybench-XXXX)
chmod a+rwx "$work"
port=$(free_port 55650)
bin=$(pg_bindir_for "$version")

install_extension "$version" >/dev/null
cluster_start "$version" "$dir" "$port"
trap 'cluster_stop "$version" "$dir"; rm -rf "$work"' EXIT
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 "$@"; }

for i in $(seq -w 1 "$n"); do
  printf 'CREATE TABLE t%s (id bigint PRIMARY KEY, v text);\nCREATE INDEX t%s_v ON t%s (v);\n' \
    "$i" "$i" "$i" > "$work/$i.sql"
done

fresh() { psql -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench"; }
now() { date +%s.%N; }
register() {
  psql -d bench -c "CREATE EXTENSION migrate"
  {
    for f in "$work"/*.sql; do
      v=$(basename "$f" .sql)
      printf "\\\\set up \`cat %s\`\nSELECT migrate.add('%s', :'up');\n" "$f" "$v"
    done
  } > "$work/register.psql"
  psql -d bench -o /dev/null -f "$work/register.psql"
}

fresh
start=$(now)
for f in "$work"/*.sql; do psql -d bench -1 -f "$f"; done
psql_s=$(awk -v s="$start" -v e="$(now)" 'BEGIN { print e - s }')

fresh
start=$(now); register; register_s=$(awk -v s="$start" -v e="$(now)" 'BEGIN { print e - s }')
start=$(now)
PGOPTIONS="-c client_min_messages=warning" psql -d bench -c "CALL migrate.deploy()"
deploy_s=$(awk -v s="$start" -v e="$(now)" 'BEGIN { print e - s }')
applied=$(psql -d bench -At -c "SELECT count(*) FROM migrate.status() WHERE state = 'applied'")

fresh
register
start=$(now)
psql -d bench -o /dev/null -c "SELECT * FROM migrate.apply()"
apply_s=$(awk -v s="$start" -v e="$(now)" 'BEGIN { print e - s }')

awk -v v="$version" -v n="$n" -v p="$psql_s" -v r="$register_s" -v d="$deploy_s" -v a="$apply_s" \
    -v ok="$applied" -v profile="${MIGRATE_PROFILE:-debug}" 'BEGIN {
  printf "PostgreSQL %s, %s build of migrate, %d migrations (%d applied by deploy).\n\n", v, profile, n, ok
  print "| method | seconds | migrations/s | deploy speed vs this |"
  print "|---|---:|---:|---:|"
  printf "| psql -1 -f, file by file | %.2f | %.0f | %.2f |\n", p, n / p, p / d
  printf "| migrate.add() of every file (registration) | %.2f | %.0f | - |\n", r, n / r
  printf "| CALL migrate.deploy() (one transaction per migration) | %.2f | %.0f | 1.00 |\n", d, n / d
  printf "| SELECT migrate.apply() (one transaction for all) | %.2f | %.0f | %.2f |\n", a, n / a, a / d
}'
