#!/usr/bin/env bash
# Benchmark: filling a column on every row of a table, methods interleaved and repeated in one
# run (round 1: every method in turn, round 2: again, ...), so machine load hits them all alike:
#   backfill-2w  migrate.backfill(..., workers => 2), waited for with migrate.wait_job()
#   backfill     the same with one worker (adaptive batch size)
#   update       one UPDATE of the whole table
#   copy         the write floor: INSERT ... SELECT of the same rows, with the filled column, into
#                an empty copy of the table with its primary key (the same tuples and index
#                entries written, no old version to find or mark)
#   do-loop      (not by default: slow) the hand-written DO block: UPDATE ... WHERE id IN (SELECT
#                id ... WHERE col IS NULL LIMIT 10000 FOR UPDATE SKIP LOCKED), COMMIT, until none
# Each run gets a freshly loaded, vacuumed and checkpointed table. The cluster has
# pg_stat_statements (track = all) and log_min_messages = debug1, so a backfill's time is split
# into its phases: start-up (queued -> running), the batches' UPDATE time (its sum over the
# job's run time and workers is the time efficiency), the end-key search and the commits (from
# the workers' per-batch DEBUG1 lines, walk.rs).
# Prints a markdown table per row count: median, min and max seconds per method, the median's
# ratio to one UPDATE (above 1: faster than it), WAL written, the job's phases, and CPU use.
# Usage: pg_test/bench/backfill_bench.sh [15|18]
#   ROWS="1000000" (default; several sizes allowed)  ROUNDS=3
#   METHODS="backfill-2w backfill update copy" (default order of each round)
#   WRITERS=1 runs 2 pgbench clients updating random single rows during each method and adds
#   their p99 and max latency (how long a writer waits behind the method's row locks).
#   MIGRATE_PROFILE=release for a release build of the extension (use it for numbers).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/pg.sh
version=${1:-15}
sizes=${ROWS:-1000000}
rounds=${ROUNDS:-3}
methods=${METHODS:-backfill-2w backfill update copy}
doloop_timeout=${DOLOOP_TIMEOUT:-1800}
dir=${BENCH_DIR:-/tmp/migrate-bfbench-pg$version-$$}
work=$(mktemp -d /tmp/migrate-bfbench-XXXX)
chmod a+rwx "$work"
port=$(free_port 55600)
bin=$(pg_bindir_for "$version")

# The tables, from a results file (one line per run; REPORT=FILE prints them again).
report() {
  awk -v v="$version" -v profile="${MIGRATE_PROFILE:-debug}" \
    -v rounds="$rounds" -v writers="${WRITERS:-0}" -v cores="$(nproc)" '
    function median(list, n,   a, i, j, t) {
      split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function minimum(list, n,   a, i, m) { split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
    function maximum(list, n,   a, i, m) { split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
    function add(key, value) { L[key] = L[key] " " value; N[key]++ }
    {
      r = $1; m = $2
      if (!(r in seen)) { seen[r] = 1; sizes[++ns] = r }
      if (!((r, m) in seenm)) { seenm[r, m] = 1; order[r, ++nm[r]] = m }
      if ($5 != "ok") failed[r, m]++
      secs[r, m, $3] = $4; cpus[r, m, $3] = $8
      add(r SUBSEP m SUBSEP "secs", $4); add(r SUBSEP m SUBSEP "filled", $6)
      add(r SUBSEP m SUBSEP "wal", $7); add(r SUBSEP m SUBSEP "cpu", $8); add(r SUBSEP m SUBSEP "cores", $8 / $4)
      if ($9 != "-") { add(r SUBSEP m SUBSEP "p99", $10); add(r SUBSEP m SUBSEP "max", $11) }
      if ($12 != "-") {
        # start-up, run, workers, batches, update, end key, commit, batch, statements, plan ms
        add(r SUBSEP m SUBSEP "startup", $12 / 1000); add(r SUBSEP m SUBSEP "run", $13 / 1000)
        add(r SUBSEP m SUBSEP "batches", $15)
        # Shares of the worker time: run time x workers.
        wt = $13 * $14
        add(r SUBSEP m SUBSEP "eff", $16 / wt)
        add(r SUBSEP m SUBSEP "endkey", $17 / wt); add(r SUBSEP m SUBSEP "commit", $18 / wt)
        add(r SUBSEP m SUBSEP "outside", ($19 - $16 - $17) / wt)
        add(r SUBSEP m SUBSEP "stmts", $20 / $15); add(r SUBSEP m SUBSEP "plan", $21 / wt)
      }
    }
    # Speed against the UPDATE of the same round (its seconds / this one), and CPU likewise: the
    # rounds ran minutes apart, under different load, so a ratio within a round is steadier than
    # a ratio of medians.
    function round_ratios(r, m, what,   list, n, k, key) {
      list = ""; n = 0
      for (key in secs) {
        split(key, k, SUBSEP)
        if (k[1] == r && k[2] == m && ((r, "update", k[3]) in secs)) {
          list = list " " (what == "cpu" ? cpus[r, "update", k[3]] / cpus[key] : secs[r, "update", k[3]] / secs[key]); n++
        }
      }
      if (n == 0) return "-"
      return sprintf("%.2f (%.2f-%.2f)", median(list, n), minimum(list, n), maximum(list, n))
    }
    function med(r, m, what, fmt) {
      k = r SUBSEP m SUBSEP what
      return (k in N) ? sprintf(fmt, median(L[k], N[k])) : "-"
    }
    END {
      printf "PostgreSQL %s, %s build of migrate, %d rounds, methods interleaved in each round; %s; %d cores.\n", v, profile, rounds,
        writers == 1 ? "2 pgbench clients updating random single rows during each method" : "no concurrent writers", cores
      for (s = 1; s <= ns; s++) {
        r = sizes[s]
        up = ((r, "update", "secs") in N) ? median(L[r, "update", "secs"], N[r, "update", "secs"]) : ""
        printf "\n| rows | method | median s | min s | max s | speed vs one UPDATE (medians) | speed vs the UPDATE of the same round: median (min-max) | CPU of that UPDATE / this | rows filled | WAL MB | CPU s | cores busy | start-up s | run s | batches | time efficiency (UPDATE) | end-key search | other batch work | commit | statements on the table per batch | planning |%s\n",
          writers == 1 ? " writer p99 ms | writer max ms |" : ""
        printf "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|%s\n", writers == 1 ? "---:|---:|" : ""
        for (i = 1; i <= nm[r]; i++) {
          m = order[r, i]; k = r SUBSEP m SUBSEP "secs"
          md = median(L[k], N[k])
          printf "| %d | %s%s | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", r, m,
            (r, m) in failed ? sprintf(" (%d failed)", failed[r, m]) : "",
            md, minimum(L[k], N[k]), maximum(L[k], N[k]), up == "" ? "-" : sprintf("%.2f", up / md), round_ratios(r, m, "secs"), round_ratios(r, m, "cpu"),
            med(r, m, "filled", "%d"), med(r, m, "wal", "%.0f") == "-" ? "-" : sprintf("%.0f", median(L[r, m, "wal"], N[r, m, "wal"]) / 1048576),
            med(r, m, "cpu", "%.1f"), med(r, m, "cores", "%.2f"), med(r, m, "startup", "%.2f"), med(r, m, "run", "%.2f"), med(r, m, "batches", "%d"),
            med(r, m, "eff", "%.3f"), med(r, m, "endkey", "%.3f"), med(r, m, "outside", "%.3f"), med(r, m, "commit", "%.3f"),
            med(r, m, "stmts", "%.1f"), med(r, m, "plan", "%.3f")
          if (writers == 1) printf " %s | %s |", med(r, m, "p99", "%.1f"), med(r, m, "max", "%.1f")
          printf "\n"
        }
      }
    }' "$1"
}

if [ -n "${REPORT:-}" ]; then
  rounds=$(awk '$3 > n { n = $3 } END { print n }' "$REPORT")
  report "$REPORT"
  exit 0
fi

install_extension "$version" >/dev/null
cluster_start "$version" "$dir" "$port" "shared_buffers = 256MB" "max_wal_size = 8GB" \
  "checkpoint_timeout = 30min" "autovacuum = off" \
  "shared_preload_libraries = 'pg_stat_statements'" "pg_stat_statements.track = all" \
  "pg_stat_statements.track_planning = on" "log_min_messages = debug1"
trap 'cluster_stop "$version" "$dir"; rm -rf "$work" "$dir"' EXIT
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql -c "CREATE EXTENSION migrate" -c "CREATE EXTENSION pg_stat_statements" -c "CREATE ROLE bench LOGIN"

load() {
  psql -c "DROP TABLE IF EXISTS bf, bf_copy" \
       -c "CREATE TABLE bf (id bigint PRIMARY KEY, payload text NOT NULL, total int)" \
       -c "INSERT INTO bf SELECT g, md5(g::text) FROM generate_series(1, $1) g" \
       -c "CREATE TABLE bf_copy (LIKE bf INCLUDING ALL)" \
       -c "ALTER TABLE bf OWNER TO bench" -c "VACUUM ANALYZE bf" -c "CHECKPOINT"
}

run_method() {
  case $1 in
    update) psql -c "UPDATE bf SET total = length(payload)" ;;
    copy) psql -c "INSERT INTO bf_copy SELECT id, payload, length(payload) FROM bf" ;;
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
      echo "$id" > "$work/job" ;;
  esac
}

# The job's own record and the workers' batch lines: start-up ms, run ms, workers, batches,
# sum of batch UPDATE ms, of end-key search ms, of commit ms, of whole-batch ms.
job_phases() {
  local id=$1 log=$2
  local rec
  rec=$(psql -At -F ' ' -c "SELECT round(extract(epoch FROM started_at - created_at) * 1000),
      round(extract(epoch FROM finished_at - started_at) * 1000), workers, batches
      FROM migrate.job_queue WHERE id = $id")
  local sums
  sums=$(grep -a "migrate: job $id batch:" "$log" | sed -E 's/.* batch: ([0-9]+) rows, ([0-9.]+) ms \(end key ([0-9.]+) ms, update ([0-9.]+) ms\), commit ([0-9.]+) ms.*/\4 \3 \5 \2/' |
    awk '{ u += $1; k += $2; c += $3; b += $4 } END { printf "%.0f %.0f %.0f %.0f", u, k, c, b }')
  echo "$rec $sums"
}

# User + system CPU seconds (clock ticks) the cluster used so far: its running processes
# (backends, workers, WAL writer, checkpointer, ...) and those that exited (the postmaster's
# reaped children).
cluster_cpu() {
  local pid; pid=$(head -1 "$dir/postmaster.pid")
  { awk '{ print $16 + $17 }' "/proc/$pid/stat"
    for child in $(cat "/proc/$pid/task/$pid/children"); do
      awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || true
    done; } | awk '{ t += $1 } END { print t }'
}

printf '%s\n' '\set id random(1, ROWS)' 'UPDATE bf SET payload = payload WHERE id = :id;' > "$work/probe.sql"
tick=$(getconf CLK_TCK)
results=()
for rows in $sizes; do
  sed -i "s/random(1, [0-9A-Z]*)/random(1, $rows)/" "$work/probe.sql"
  for round in $(seq 1 "$rounds"); do
    for method in $methods; do
      load "$rows"
      rm -f "$work"/probe.log* "$work/job"
      psql -At -c "SELECT pg_stat_statements_reset()" >/dev/null
      wal0=$(psql -At -c "SELECT pg_current_wal_insert_lsn()")
      logpos=$(stat -c %s "$dir/server.log")
      cpu0=$(cluster_cpu)
      start=$(date +%s.%N)
      ( if run_method "$method" > "$work/method.out" 2>&1; then echo ok; else echo failed; fi > "$work/status"
        date +%s.%N > "$work/end" ) &
      mpid=$!
      # pgbench writes its per-transaction log when it exits: run it in 2-second slices until
      # the method is done and keep only transactions that started while it ran.
      while [ "${WRITERS:-0}" = 1 ] && kill -0 "$mpid" 2>/dev/null; do
        (cd "$work" && "$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 2 -j 2 -T 2 \
          -f probe.sql -l --log-prefix=probe.log postgres >/dev/null 2>&1) || true
      done
      wait "$mpid"
      end=$(cat "$work/end")
      status=$(cat "$work/status")
      [ "$status" = ok ] || { echo "$method failed:" >&2; cat "$work/method.out" >&2; }
      sleep 0.5 # the method's backends exit and are reaped
      cpu1=$(cluster_cpu)
      wal=$(psql -At -c "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$wal0')::bigint")
      if [ "$method" = copy ]; then
        total=$(psql -At -c "SELECT count(*) FILTER (WHERE total = length(payload)) FROM bf_copy")
      else
        total=$(psql -At -c "SELECT count(*) FILTER (WHERE total = length(payload)) FROM bf")
      fi
      # Statements the workers ran on the table (pg_stat_statements): calls and planning ms.
      stmts=$(psql -At -F ' ' -c "SELECT COALESCE(sum(calls), 0), round(COALESCE(sum(total_plan_time), 0))
        FROM pg_stat_statements WHERE query LIKE '% public.bf %' AND query NOT LIKE 'UPDATE bf SET%'")
      if [ -n "${PGSS_DIR:-}" ]; then
        # Every statement of the run, slowest first, for a closer look (PGSS_DIR=/some/dir).
        mkdir -p "$PGSS_DIR"
        psql -c "SELECT calls, round(total_exec_time::numeric, 1) AS exec_ms, round(total_plan_time::numeric, 1) AS plan_ms,
          left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40" \
          > "$PGSS_DIR/$rows-$method-$round.txt"
      fi
      phases="- - - - - - - - - -"
      if [ -s "$work/job" ]; then
        tail -c +"$((logpos + 1))" "$dir/server.log" > "$work/log"
        phases="$(job_phases "$(cat "$work/job")" "$work/log") $stmts"
      fi
      stats="- - -"
      if [ "${WRITERS:-0}" = 1 ]; then
        # pgbench log: client txn latency_us script epoch_s epoch_us (completion time).
        stats=$({ cat "$work"/probe.log* 2>/dev/null || true; } | awk -v s="$start" -v e="$end" '{
            started = $5 + $6 / 1e6 - $3 / 1e6
            if (started >= s && started <= e) print $3 / 1000 }' | sort -g | awk '
          { a[NR] = $1 } END {
            if (NR == 0) { print "0 - -"; exit }
            i = int(NR * 0.99); if (i < 1) i = 1
            printf "%d %.1f %.1f\n", NR, a[i], a[NR] }')
      fi
      cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$tick" 'BEGIN { printf "%.1f", (b - a) / t }')
      secs=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
      results+=("$rows $method $round $secs $status $total $wal $cpu $stats $phases")
      echo "round $round: $rows $method ($status, $secs s, $(awk -v w="$wal" 'BEGIN{printf "%.0f", w / 1048576}') MB WAL, cpu $cpu s; job: $phases)" >&2
    done
  done
done

printf '%s\n' "${results[@]}" > "${RESULTS:-$work/results}"
report "${RESULTS:-$work/results}"

