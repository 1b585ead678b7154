#!/usr/bin/env bash
# Upgrade test: every released version is installed, given the state a user of it has
# (migrations, history, a job, guard log rows), upgraded with ALTER EXTENSION migrate UPDATE, and
# then must (1) keep that state unchanged, (2) be the current version and (3) have exactly the
# objects of a fresh install: pg_dump --binary-upgrade prints every member of the extension with
# its definition, owner, privileges and comments, so the two dumps are compared line by line
# after the lines that only carry OIDs, xids and LSNs are dropped.
# Usage: pg_test/upgrade.sh PORT    (a running cluster with the extension installed)
set -uo pipefail
cd "$(dirname "$0")"
port=$1
bindir=$(dirname "$(command -v psql)")
[ -n "${MIGRATE_PG_BINDIR:-}" ] && bindir=$MIGRATE_PG_BINDIR
export PGOPTIONS="-c client_min_messages=warning"
psql=(psql -X -q -h 127.0.0.1 -p "$port" -U postgres)
current=$(sed -n 's/^version = "\(.*\)"/\1/p' ../Cargo.toml | head -1)
out=results/upgrade
mkdir -p "$out"
passed=0 failed=0

# Objects of the extension as pg_dump sees them, without the identifiers a fresh install cannot
# share (OIDs, relfrozenxid, LSNs, sequence positions, the dump's random \restrict key), and
# without the stored "missing value" of a column added with a default to a table that had rows
# (a fast default: the same column, stored differently).
objects() {
  "$bindir/pg_dump" --binary-upgrade --schema-only --exclude-schema=app -h 127.0.0.1 -p "$port" \
      -U postgres "$1" \
    | grep -Ev '^\\(un)?restrict |binary_upgrade_|^SET relfrozenxid = |^-- set missing value\.$|^$|^SELECT pg_catalog.setval\(|^WHERE oid = '"'"'[0-9]+'"'"';$'
  "${psql[@]}" -d "$1" -f upgrade/objects.sql
}

fresh=upgrade_fresh
"${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS $fresh" -c "CREATE DATABASE $fresh"
"${psql[@]}" -d "$fresh" -c "CREATE EXTENSION migrate"
objects "$fresh" > "$out/fresh.objects"

for script in ../sql/migrate--*.sql; do
  from=$(basename "$script" .sql); from=${from#migrate--}
  [[ $from == *--* ]] && continue
  db="upgrade_from_${from//./_}"
  ok=1
  "${psql[@]}" -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  # check_function_bodies stays on: creating the old version's functions proves that today's
  # library still exports every symbol that version's script names.
  "${psql[@]}" -d "$db" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION migrate VERSION '$from'" \
    -f upgrade/populate.sql > "$out/$from.populate" 2>&1 || ok=0
  "${psql[@]}" -d "$db" -f upgrade/state.sql > "$out/$from.before" 2>&1
  "${psql[@]}" -d "$db" -v ON_ERROR_STOP=1 -c "ALTER EXTENSION migrate UPDATE" \
    > "$out/$from.update" 2>&1 || ok=0
  "${psql[@]}" -d "$db" -f upgrade/state.sql > "$out/$from.after" 2>&1
  objects "$db" > "$out/$from.objects"
  version=$("${psql[@]}" -At -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'migrate'")
  if [ "$ok" = 0 ]; then
    echo "FAIL upgrade from $from: a script failed"; cat "$out/$from.populate" "$out/$from.update"
  elif [ "$version" != "$current" ]; then
    echo "FAIL upgrade from $from: extension is at $version, not $current"; ok=0
  elif ! diff -u "$out/$from.before" "$out/$from.after"; then
    echo "FAIL upgrade from $from: the registry, jobs or guard log changed"; ok=0
  elif ! diff -u "$out/fresh.objects" "$out/$from.objects"; then
    echo "FAIL upgrade from $from: objects differ from a fresh install of $current"; ok=0
  fi
  if [ "$ok" = 1 ]; then
    echo "ok   upgrade from $from to $current"; passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done
echo "upgrade: $passed passed, $failed failed"
[ "$failed" = 0 ]
