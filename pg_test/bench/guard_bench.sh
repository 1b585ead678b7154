#!/usr/bin/env bash
# Benchmark: what the guard costs, in three configurations measured in one run:
#   without     a database without the extension
#   triggers    a database with it: the event triggers (guard, lock_timeout bound) and the
#               migrate.schema_changes record of every DDL statement
#   preloaded   the same after a restart with shared_preload_libraries = 'migrate': the
#               ProcessUtility hook too (VACUUM FULL, CLUSTER, REINDEX, REFRESH, TRUNCATE, LOCK)
# Each configuration is compared with a database without the extension in the same cluster
# (the preloaded one: the library, and its hook, are loaded there too), in interleaved rounds
# (A B B A ...), medians printed. Workloads:
#  1. DML: pgbench tpcb-like (scale 10, 2 clients, prepared). Event triggers never fire for
#     DML and DML never reaches ProcessUtility; with track_functions = all the run counts calls
#     of the extension's functions during the DML load, which must be 0.
#  2. DDL: a guarded ALTER TABLE (SET DEFAULT on a 1M-row table, no rewrite) in a loop: the
#     event triggers' per-statement cost, the schema-change row included.
#  3. Utility: LOCK TABLE pgbench_branches IN ACCESS SHARE MODE in a transaction (a statement
#     the hook looks at and lets through; event triggers never see it): the hook's cost.
# Usage: pg_test/bench/guard_bench.sh [15|18]   (MIGRATE_PROFILE=release for a release build)
#   SECONDS_PER_RUN (default 10), ROUNDS (default 2: each configuration runs 2 x 2 times)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg.sh
version=${1:-15}
seconds=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-2}
dir=/tmp/migrate-bench-pg$version
port=$(free_port 55500)
bin=$(pg_bindir_for "$version")
settings=("shared_buffers = 256MB" "max_connections = 20" "track_functions = all" "autovacuum = off")

install_extension "$version"
cluster_start "$version" "$dir" "$port" "${settings[@]}"
trap 'cluster_stop "$version" "$dir"' EXIT
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
pgbench() { "$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres "$@"; }

for db in plain guarded; do
  psql -d postgres -c "CREATE DATABASE $db"
  # pgbench -i adds primary keys to a 1M-row table: exactly what the guard blocks.
  PGOPTIONS="-c migrate.guard=off" pgbench -i -q -s 10 "$db" >/dev/null 2>&1
done
psql -d guarded -c "CREATE EXTENSION migrate"

work=$(mktemp -d); chmod a+rx "$work"
echo "ALTER TABLE pgbench_accounts ALTER COLUMN filler SET DEFAULT 'x';" > "$work/ddl.sql"
printf 'BEGIN;\nLOCK TABLE pgbench_branches IN ACCESS SHARE MODE;\nCOMMIT;\n' > "$work/lock.sql"
chmod a+r "$work"/*.sql

tps() { sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | head -1; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
calls() { psql -d guarded -At -c "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE schemaname = 'migrate'"; }
dml() { pgbench -n -M prepared -c 2 -j 2 -T "$seconds" "$1" 2>/dev/null | tps; }
script() { pgbench -n -c 1 -T "$seconds" -f "$work/$2.sql" "$1" 2>/dev/null | tps; }

# One configuration's numbers for a workload: "$1" is the database, "$2" the workload.
run() { case $2 in dml) dml "$1" ;; *) script "$1" "$2" ;; esac; }
declare -A results
measure() { # measure CONFIG DB WORKLOAD
  results[$1,$3]="${results[$1,$3]:-} $(run "$2" "$3")"
}

# Without preloading: without and triggers, interleaved; then the same cluster preloaded.
psql -d guarded -c "SELECT pg_stat_reset()" >/dev/null
for workload in dml ddl lock; do
  for ((r = 0; r < rounds; r++)); do
    measure without plain $workload; measure triggers guarded $workload
    measure triggers guarded $workload; measure without plain $workload
  done
  if [ $workload = dml ]; then sleep 1; dml_calls=$(calls); fi
done
cluster_stop "$version" "$dir"
echo "shared_preload_libraries = 'migrate'" >> "$dir/postgresql.conf"
as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
psql -d guarded -c "SELECT pg_stat_reset()" >/dev/null
for workload in dml ddl lock; do
  for ((r = 0; r < rounds; r++)); do
    measure preloaded guarded $workload; measure without_p plain $workload
    measure without_p plain $workload; measure preloaded guarded $workload
  done
  if [ $workload = dml ]; then sleep 1; preloaded_dml_calls=$(calls); fi
done
sleep 1
ddl_calls=$(calls)

m() { median ${results[$1,$2]}; }
latency() { awk -v t="$1" 'BEGIN { printf "%.3f", 1000 / t }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
plus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f ms", 1000 / a - 1000 / b }'; }
echo "PostgreSQL $version, pgbench scale 10, $([ "${MIGRATE_PROFILE:-debug}" = release ] && echo release || echo debug) build, $((rounds * 2)) runs of ${seconds} s per configuration (interleaved), medians"
echo
echo "| workload | without migrate | with migrate (event triggers + schema_changes) | ratio | without migrate, library preloaded | with migrate preloaded (+ hook) | ratio |"
echo "|---|---|---|---|---|---|---|"
echo "| DML: tpcb-like, 2 clients (tps) | $(m without dml) | $(m triggers dml) | $(ratio "$(m triggers dml)" "$(m without dml)") | $(m without_p dml) | $(m preloaded dml) | $(ratio "$(m preloaded dml)" "$(m without_p dml)") |"
echo "| calls of migrate's functions during the DML runs | - | $dml_calls | - | - | $preloaded_dml_calls | - |"
echo "| DDL: guarded ALTER TABLE, latency (ms) | $(latency "$(m without ddl)") | $(latency "$(m triggers ddl)") | $(plus "$(m triggers ddl)" "$(m without ddl)") | $(latency "$(m without_p ddl)") | $(latency "$(m preloaded ddl)") | $(plus "$(m preloaded ddl)" "$(m without_p ddl)") |"
echo "| utility: BEGIN; LOCK TABLE (ACCESS SHARE); COMMIT, latency (ms) | $(latency "$(m without lock)") | $(latency "$(m triggers lock)") | $(plus "$(m triggers lock)" "$(m without lock)") | $(latency "$(m without_p lock)") | $(latency "$(m preloaded lock)") | $(plus "$(m preloaded lock)" "$(m without_p lock)") |"
echo "| calls of migrate's functions during the DDL runs (the counter works) | - | - | - | - | $((ddl_calls - preloaded_dml_calls)) | - |"
echo
for c in without triggers without_p preloaded; do
  echo "runs ($c): DML tps${results[$c,dml]}; DDL statements/s${results[$c,ddl]}; LOCK transactions/s${results[$c,lock]}"
done
