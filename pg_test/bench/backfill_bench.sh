#!/usr/bin/env bash
# Benchmark: filling a column on every row of a table, three ways, in the same run:
#   update    one UPDATE of the whole table
#   do-loop   the hand-written DO block: UPDATE ... WHERE id IN (SELECT id ... WHERE col IS NULL
#             LIMIT 10000 FOR UPDATE SKIP LOCKED), COMMIT, until no row is left
#   backfill  migrate.backfill() with the adaptive batch size, waited for with migrate.wait_job()
#   backfill-2w  the same with workers => 2 (two workers on disjoint key ranges)
# While each runs, 2 pgbench clients update random single rows (a custom script); their latency
# (p99, max) shows how long a concurrent writer waits behind the method's row locks.
# Prints a markdown table. Each method gets a freshly loaded, vacuumed table.
# Usage: pg_test/bench/backfill_bench.sh [15|18]
#   ROWS="1000000 10000000" (default)  DOLOOP_TIMEOUT=1800 (seconds before the DO loop is given up)
#   METHODS="update do-loop backfill backfill-2w" (default)
#   QUIET=1 runs the methods without the concurrent writers (raw throughput only).
#   MIGRATE_PROFILE=release for a release build of the extension.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg.sh
version=${1:-15}
sizes=${ROWS:-1000000 10000000}
doloop_timeout=${DOLOOP_TIMEOUT:-1800}
dir=/tmp/migrate-bfbench-pg$version
work=$(mktemp -d /tmp/migrate-bfbench-XXXX)
chmod a+rwx "$work"
port=$(free_port 55600)
bin=$(pg_bindir_for "$version")

install_extension "$version" >/dev/null
cluster_start "$version" "$dir" "$port" "shared_buffers = 256MB" "max_wal_size = 8GB" \
  "checkpoint_timeout = 30min" "autovacuum = off"
trap 'cluster_stop "$version" "$dir"; rm -rf "$work"' EXIT
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql -c "CREATE EXTENSION migrate" -c "CREATE ROLE bench LOGIN"

load() {
  psql -c "DROP TABLE IF EXISTS bf" \
       -c "CREATE TABLE bf (id bigint PRIMARY KEY, payload text NOT NULL, total int)" \
       -c "INSERT INTO bf SELECT g, md5(g::text) FROM generate_series(1, $1) g" \
       -c "ALTER TABLE bf OWNER TO bench" -c "VACUUM ANALYZE bf" -c "CHECKPOINT"
}

run_method() {
  case $1 in
    update) psql -c "UPDATE bf SET total = length(payload)" ;;
    do-loop) PGOPTIONS="-c statement_timeout=${doloop_timeout}s" psql -c "
      DO \$\$
      DECLARE n bigint;
      BEGIN
        LOOP
          UPDATE bf SET total = length(payload) WHERE id IN
            (SELECT id FROM bf WHERE total IS NULL LIMIT 10000 FOR UPDATE SKIP LOCKED);
          GET DIAGNOSTICS n = ROW_COUNT;
          EXIT WHEN n = 0;
          COMMIT;
        END LOOP;
      END \$\$" ;;
    backfill|backfill-2w)
      workers=1; [ "$1" = backfill-2w ] && workers=2
      id=$(psql -At -c "SET ROLE bench" -c "SELECT migrate.backfill('bf', 'total = length(payload)', workers => $workers)")
      psql -c "CALL migrate.wait_job($id)"
      psql -At -F ' ' -c "SELECT batches, round(extract(epoch FROM finished_at - started_at) * 1000 / batches), batch_size FROM migrate.jobs WHERE id = $id" > "$work/batches" ;;
  esac
}

printf '%s\n' '\set id random(1, ROWS)' 'UPDATE bf SET payload = payload WHERE id = :id;' > "$work/probe.sql"

results=()
for rows in $sizes; do
  sed -i "s/random(1, [0-9A-Z]*)/random(1, $rows)/" "$work/probe.sql"
  for method in ${METHODS:-update do-loop backfill backfill-2w}; do
    load "$rows"
    rm -f "$work"/probe.log* "$work/batches"
    start=$(date +%s.%N)
    ( if run_method "$method" > "$work/method.out" 2>&1; then echo ok; else echo failed; fi > "$work/status"
      date +%s.%N > "$work/end" ) &
    mpid=$!
    # pgbench writes its per-transaction log when it exits: run it in 2-second slices until
    # the method is done and keep only transactions that started while it ran.
    while [ "${QUIET:-0}" != 1 ] && kill -0 "$mpid" 2>/dev/null; do
      (cd "$work" && "$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 2 -j 2 -T 2 \
        -f probe.sql -l --log-prefix=probe.log postgres >/dev/null 2>&1) || true
    done
    wait "$mpid"
    end=$(cat "$work/end")
    status=$(cat "$work/status")
    total=$(psql -At -c "SELECT count(*) FILTER (WHERE total = length(payload)) FROM bf")
    batches="-"
    [ -s "$work/batches" ] && batches=$(cat "$work/batches")
    # pgbench log: client txn latency_us script epoch_s epoch_us (completion time).
    stats=$({ cat "$work"/probe.log* 2>/dev/null || true; } | awk -v s="$start" -v e="$end" '{
        started = $5 + $6 / 1e6 - $3 / 1e6
        if (started >= s && started <= e) print $3 / 1000 }' | sort -g | awk '
      { a[NR] = $1 } END {
        if (NR == 0) { print "0 - -"; exit }
        i = int(NR * 0.99); if (i < 1) i = 1
        printf "%d %.1f %.1f\n", NR, a[i], a[NR] }')
    results+=("$rows $method $start $end $status $total $stats $batches")
    echo "done: $rows $method ($status, $(awk -v s="$start" -v e="$end" 'BEGIN{printf "%.1f", e - s}') s)" >&2
  done
done

printf '%s\n' "${results[@]}" | awk -v v="$version" -v profile="${MIGRATE_PROFILE:-debug}" '
  BEGIN {
    printf "PostgreSQL %s, %s build of migrate; %s.\n\n", v, profile, ENVIRON["QUIET"] == "1" ? "no concurrent writers" : "2 pgbench clients updating random single rows during each method"
    print "| rows | method | seconds | rows/s | speed vs one UPDATE | speed vs DO loop | rows filled | writer txns | writer p99 ms | writer max ms | batches (mean ms, last size) |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  }
  {
    rows = $1; m = $2; secs = $4 - $3; n = NR
    R[n] = rows; M[n] = m; S[n] = secs; ST[n] = $5; F[n] = $6; TX[n] = $7; P99[n] = $8; MAX[n] = $9
    B[n] = ($10 == "" || $10 == "-") ? "-" : sprintf("%s (%s ms, %s)", $10, $11, $12)
    if (m == "update") up[rows] = secs
    if (m == "do-loop") { dl[rows] = secs; dlok[rows] = ($5 == "ok") }
  }
  # Speed ratio = seconds of the other method / seconds of this one (above 1: this is faster).
  function ratio(other, ok, secs) {
    if (other == "") return "-"
    return sprintf("%s%.2f", ok ? "" : "> ", other / secs)
  }
  END {
    for (i = 1; i <= n; i++) {
      label = (ST[i] == "ok") ? sprintf("%.1f", S[i]) : sprintf("> %.0f (gave up)", S[i])
      rate = (ST[i] == "ok") ? sprintf("%.0f", R[i] / S[i]) : "-"
      printf "| %d | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s |\n", R[i], M[i], label, rate,
        ratio(up[R[i]], 1, S[i]), ratio(dl[R[i]], dlok[R[i]], S[i]), F[i], TX[i], P99[i], MAX[i], B[i]
    }
  }'
