#!/usr/bin/env bash
# SQL regression suite: runs each pg_test/sql/NAME.sql with psql in a fresh database of a running
# cluster and compares what a psql user sees with pg_test/expected/NAME.out. The file is fed on
# stdin (as pg_regress does), so messages carry no file line numbers and edits do not churn them.
# Usage: pg_test/run_sql.sh PORT [NAME...]    MIGRATE_ACCEPT=1 rewrites the expected files.
# MIGRATE_UPGRADE_FROM=0.1.0 runs each file against an upgraded install instead: its first
# `CREATE EXTENSION migrate;` installs that release and runs ALTER EXTENSION migrate UPDATE, and
# the echoed line is put back, so the expected output is the same as for a fresh install.
# A file whose first line is `-- needs: shared_preload_libraries = 'migrate'` runs only with
# MIGRATE_PRELOADED=1 (a cluster started with the library preloaded, pg_test/run.sh starts
# one), and only such files run then.
set -uo pipefail
cd "$(dirname "$0")"
port=$1; shift
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in sql/*.sql; do names+=("$(basename "$f" .sql)"); done
fi
mkdir -p results
create='CREATE EXTENSION migrate;'
upgrade=$create
if [ -n "${MIGRATE_UPGRADE_FROM:-}" ]; then
  upgrade="CREATE EXTENSION migrate VERSION '$MIGRATE_UPGRADE_FROM'; ALTER EXTENSION migrate UPDATE;"
  echo "(each file on an install upgraded from $MIGRATE_UPGRADE_FROM)"
fi
needs_preload="-- needs: shared_preload_libraries = 'migrate'"
preloaded=${MIGRATE_PRELOADED:-0}
passed=0 failed=0 skipped=0
for name in "${names[@]}"; do
  wants=0
  [ "$(head -n 1 "sql/$name.sql")" = "$needs_preload" ] && wants=1
  if [ "$wants" != "$preloaded" ]; then
    skipped=$((skipped + 1))
    continue
  fi
  db="regress_$name"
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  # VERBOSITY=verbose prints each error's SQLSTATE; LOCATION lines name source lines and change
  # with the code, so they are dropped.
  PGOPTIONS="-c client_min_messages=notice" \
  psql -X -a -q -h 127.0.0.1 -p "$port" -U postgres -d "$db" \
    -v VERBOSITY=verbose -v SHOW_CONTEXT=errors < <(sed "0,/$create/s//$upgrade/" "sql/$name.sql") 2>&1 \
    | grep -v '^LOCATION:  ' | sed "s/^$upgrade\$/$create/" > "results/$name.out"
  if [ "${MIGRATE_ACCEPT:-0}" = 1 ]; then cp "results/$name.out" "expected/$name.out"; fi
  if diff -u "expected/$name.out" "results/$name.out" > "results/$name.diff"; then
    echo "ok   sql/$name"
    passed=$((passed + 1))
  else
    echo "FAIL sql/$name"
    cat "results/$name.diff"
    failed=$((failed + 1))
  fi
done
if [ "$preloaded" = 1 ]; then
  echo "sql (preloaded): $passed passed, $failed failed, $skipped for the plain cluster"
else
  echo "sql: $passed passed, $failed failed, $skipped need shared_preload_libraries"
fi
[ "$failed" = 0 ]
