#!/usr/bin/env bash
# Benchmark: what the guard costs. Prints a markdown table.
#  1. DML: pgbench tpcb-like (scale 10, 2 clients, prepared) on a database without the
#     extension and on one with it, in ABBA order over 6 rounds of $SECONDS_PER_RUN s each.
#     Event triggers never fire for DML; with track_functions = all the run also counts calls of
#     the guard's functions during the DML load, which must be 0.
#  2. DDL: a guarded ALTER TABLE (SET DEFAULT on a 1M-row table, no rewrite) run by pgbench in
#     a loop, without and with the extension: the per-statement cost of the event triggers.
# Usage: pg_test/bench/guard_bench.sh [15|18]   (MIGRATE_PROFILE=release for a release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg.sh
version=${1:-15}
seconds=${SECONDS_PER_RUN:-10}
dir=/tmp/migrate-bench-pg$version
port=$(free_port 55500)
bin=$(pg_bindir_for "$version")

install_extension "$version"
cluster_start "$version" "$dir" "$port" "shared_buffers = 256MB" "max_connections = 20" \
  "track_functions = all" "autovacuum = off"
trap 'cluster_stop "$version" "$dir"' EXIT
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
pgbench() { "$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres "$@"; }

for db in plain guarded; do
  psql -d postgres -c "CREATE DATABASE $db"
  # pgbench -i adds primary keys to a 1M-row table: exactly what the guard blocks.
  PGOPTIONS="-c migrate.guard=off" pgbench -i -q -s 10 "$db" >/dev/null 2>&1
done
psql -d guarded -c "CREATE EXTENSION migrate"

tps() { sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | head -1; }
declare -a plain_dml guarded_dml
run_dml() { pgbench -n -M prepared -c 2 -j 2 -T "$seconds" "$1" 2>/dev/null | tps; }
psql -d guarded -c "SELECT pg_stat_reset()"
for round in 1 2 3; do
  if [ $((round % 2)) = 1 ]; then
    plain_dml+=("$(run_dml plain)"); guarded_dml+=("$(run_dml guarded)")
  else
    guarded_dml+=("$(run_dml guarded)"); plain_dml+=("$(run_dml plain)")
  fi
  guarded_dml+=("$(run_dml guarded)"); plain_dml+=("$(run_dml plain)")
done
sleep 1  # let the statistics reach the collector
calls=$(psql -d guarded -At -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'migrate'")
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
p=$(median "${plain_dml[@]}"); g=$(median "${guarded_dml[@]}")

ddl=$(mktemp)
echo "ALTER TABLE pgbench_accounts ALTER COLUMN filler SET DEFAULT 'x';" > "$ddl"
chmod a+r "$ddl"
pd=$(pgbench -n -c 1 -T "$seconds" -f "$ddl" plain 2>/dev/null | tps)
gd=$(pgbench -n -c 1 -T "$seconds" -f "$ddl" guarded 2>/dev/null | tps)
sleep 1
ddl_calls=$(psql -d guarded -At -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'migrate'")
ddl_calls=$((ddl_calls - calls))

awk -v p="$p" -v g="$g" -v pd="$pd" -v gd="$gd" -v v="$version" -v calls="$calls" -v ddl_calls="$ddl_calls" -v pr="${plain_dml[*]}" -v gr="${guarded_dml[*]}" 'BEGIN {
  printf "PostgreSQL %s, pgbench scale 10, %s\n\n", v, ENVIRON["MIGRATE_PROFILE"] == "release" ? "release build" : "debug build"
  print "| workload | without migrate | with migrate | ratio (with / without) |"
  print "|---|---|---|---|"
  printf "| DML: tpcb-like, 2 clients, median of 6 (tps) | %.0f | %.0f | %.3f |\n", p, g, g / p
  printf "| guard function calls during the DML runs | - | %d | - |\n", calls
  printf "| DDL: guarded ALTER TABLE, 1 client (statements/s) | %.0f | %.0f | %.3f |\n", pd, gd, gd / pd
  printf "| DDL: latency per statement (ms) | %.3f | %.3f | +%.3f ms |\n", 1000 / pd, 1000 / gd, 1000 / gd - 1000 / pd
  printf "| guard function calls during the DDL run (the counter works) | - | %d | - |\n", ddl_calls
  printf "\nDML rounds (tps): without %s; with %s\n", pr, gr
}'
