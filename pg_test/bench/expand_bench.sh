#!/usr/bin/env bash
# Benchmark: what an open expansion costs.
#   writers   pgbench (2 clients, prepared) running the "old application": single-row UPDATEs of
#             the old column and INSERTs through it (3:1), on two identical tables, one with the
#             sync trigger (after migrate.expand_column() and its backfill); runs alternate
#             between them so load from elsewhere on the machine hits both alike: mean
#             throughput and p99 latency of each, and the ratio.
#   backfill  the same fill of a new column on every row two ways: migrate.backfill() of a column
#             added by hand (no trigger) vs the job migrate.expand_column() queues (the sync
#             trigger fires on every row it updates): rows per second.
# Prints a markdown table.
# Usage: pg_test/bench/expand_bench.sh [15|18]
#   ROWS=100000 (writers' tables)  BF_ROWS=1000000 (backfill table)  SECONDS_EACH=10  ROUNDS=3
#   MIGRATE_PROFILE=release for a release build of the extension.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg.sh
version=${1:-15}
rows=${ROWS:-100000}
bf_rows=${BF_ROWS:-1000000}
secs=${SECONDS_EACH:-10}
rounds=${ROUNDS:-3}
dir=/tmp/migrate-exbench-pg$version
work=$(mktemp -d /tmp/migrate-exbench-XXXX)
chmod a+rwx "$work"
port=$(free_port 55700)
bin=$(pg_bindir_for "$version")

install_extension "$version" >/dev/null
cluster_start "$version" "$dir" "$port" "shared_buffers = 256MB" "max_wal_size = 8GB" \
  "checkpoint_timeout = 30min" "autovacuum = off"
trap 'cluster_stop "$version" "$dir"; rm -rf "$work"' EXIT
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql -c "CREATE EXTENSION migrate" -c "CREATE ROLE bench LOGIN" \
     -c "GRANT CREATE ON SCHEMA public TO bench"

load_writers() {
  psql -c "DROP TABLE IF EXISTS $1" \
       -c "CREATE TABLE $1 (id bigserial PRIMARY KEY, total numeric NOT NULL DEFAULT 0, note text)" \
       -c "INSERT INTO $1 (total, note) SELECT g / 4.0, md5(g::text) FROM generate_series(1, $rows) g" \
       -c "ALTER TABLE $1 OWNER TO bench" -c "ALTER SEQUENCE $1_id_seq OWNER TO bench"
}

for t in w_plain w_sync; do
  printf '%s\n' "\\set id random(1, $rows)" '\set k random(1, 4)' '\if :k = 4' \
    "INSERT INTO $t (total, note) VALUES (:id / 4.0, 'x');" '\else' \
    "UPDATE $t SET total = total + 0.25 WHERE id = :id;" '\endif' > "$work/$t.sql"
done

# writers TABLE: the old application on TABLE for SECONDS_EACH; prints "tps p99_ms".
writers() {
  rm -f "$work"/pgbench_log.*
  (cd "$work" && "$bin/pgbench" -h 127.0.0.1 -p "$port" -U bench -d postgres -n -M prepared \
     -c 2 -j 2 -T "$secs" -l -f "$1.sql" > "$work/pgbench.out" 2>&1)
  local tps; tps=$(awk '/^tps = / {printf "%.0f", $3}' "$work/pgbench.out")
  local p99; p99=$(cat "$work"/pgbench_log.* | awk '{print $3}' | sort -n |
    awk '{a[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", a[i] / 1000}')
  echo "$tps $p99"
}

load_writers w_plain
load_writers w_sync
job=$(psql -At -c "SET ROLE bench" -c "SELECT migrate.expand_column('w_sync', 'total', 'total_cents', 'bigint',
        up => '(total * 100)::bigint', down => 'total_cents / 100.0')")
psql -c "CALL migrate.wait_job($job)" -c "VACUUM ANALYZE w_plain" -c "VACUUM ANALYZE w_sync" -c "CHECKPOINT"
: > "$work/runs"
for _ in $(seq "$rounds"); do
  for t in w_plain w_sync; do echo "$t $(writers "$t")" >> "$work/runs"; done
done
mean() { awk -v t="$1" '$1 == t {tps += $2; p99 += $3; n++} END {printf "%.0f %.2f\n", tps / n, p99 / n}' "$work/runs"; }
read -r tps_plain p99_plain < <(mean w_plain)
read -r tps_trig p99_trig < <(mean w_sync)

load_bf() {
  psql -c "DROP TABLE IF EXISTS bf" \
       -c "CREATE TABLE bf (id bigint PRIMARY KEY, total numeric NOT NULL, note text)" \
       -c "INSERT INTO bf SELECT g, g / 4.0, md5(g::text) FROM generate_series(1, $bf_rows) g" \
       -c "ALTER TABLE bf OWNER TO bench" -c "VACUUM ANALYZE bf" -c "CHECKPOINT"
}
rate() {
  psql -At -c "SELECT round(rows_done / extract(epoch FROM finished_at - started_at))
               FROM migrate.jobs WHERE id = $1"
}
load_bf
psql -c "ALTER TABLE bf ADD COLUMN total_cents bigint"
job=$(psql -At -c "SET ROLE bench" -c "SELECT migrate.backfill('bf', 'total_cents = (total * 100)::bigint')")
psql -c "CALL migrate.wait_job($job)"
rate_plain=$(rate "$job")
load_bf
job=$(psql -At -c "SET ROLE bench" -c "SELECT migrate.expand_column('bf', 'total', 'total_cents', 'bigint',
        up => '(total * 100)::bigint', down => 'total_cents / 100.0')")
psql -c "CALL migrate.wait_job($job)"
rate_expand=$(rate "$job")

profile=${MIGRATE_PROFILE:-debug}
echo
echo "PostgreSQL $version, $profile build of migrate; writers: 2 pgbench clients, $rounds alternating runs of ${secs} s per table of $rows rows (3 UPDATEs of the old column : 1 INSERT); backfill: $bf_rows rows."
echo
echo "| measure | without sync trigger | with sync trigger | ratio |"
echo "|---|---|---|---|"
awk -v a="$tps_plain" -v b="$tps_trig" 'BEGIN {printf "| writer throughput (tps) | %d | %d | %.2fx slower |\n", a, b, a / b}'
awk -v a="$p99_plain" -v b="$p99_trig" 'BEGIN {printf "| writer p99 latency (ms) | %.2f | %.2f | %.2fx |\n", a, b, b / a}'
awk -v a="$rate_plain" -v b="$rate_expand" 'BEGIN {printf "| backfill rate (rows/s) | %d (migrate.backfill) | %d (expand_column) | %.2fx |\n", a, b, a / b}'
