#!/usr/bin/env bash
# The whole test suite on PostgreSQL 15 and 18, from a fresh machine: installs what is missing,
# checks formatting, runs the pure core crate's tests (no server), lints, then per version runs
# the in-crate tests (#[test] and #[pg_test]), the SQL regression suite, the live-server
# system tests and the command-line client's tests. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
bash scripts/setup.sh || exit 1
log=$(mktemp -d)/test.log
failed_steps=()

step() {
  local name=$1; shift
  echo "== $name"
  if "$@" 2>&1 | tee -a "$log"; then :; else failed_steps+=("$name"); fi
}
# `tee` hides the exit status without pipefail in the subshell; keep it.
set -o pipefail

step "cargo fmt" cargo fmt --all -- --check
step "released scripts unchanged" bash scripts/check_released.sh
step "core tests" cargo test -p migrate-core
step "clippy core" cargo clippy -p migrate-core --all-targets -- -D warnings
step "clippy cli" cargo clippy -p migrate-cli --all-targets -- -D warnings
for v in 15 18; do
  step "clippy pg$v" cargo clippy --all-targets --no-default-features --features "pg$v pg_test" -- -D warnings
done
step "clippy system tests" cargo clippy --manifest-path pg_test/system/Cargo.toml --all-targets -- -D warnings
# The real migration tools the client's adopt tests drive (quick when already installed).
step "migration tools" bash scripts/install_tools.sh
for v in 15 18; do
  rm -rf "/tmp/migrate-pgrx-pg$v"
  step "in-crate tests pg$v" cargo pgrx test "pg$v" --runas postgres --pgdata "/tmp/migrate-pgrx-pg$v"
  step "live-server suites pg$v" pg_test/run.sh "$v"
done

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
# Only the runners' summary lines count: other output ("migration 20200714113112 failed") is
# not a number of tests.
failed=$( { grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{print $6}';
            grep -Eo '^(sql|upgrade|history): [0-9]+ passed, [0-9]+ failed' "$log" | awk '{print $4}'; } \
          | awk '{s+=$1} END {printf "%d", s}')
sql_passed=$(grep -Eo '^(sql|upgrade|history): [0-9]+ passed' "$log" | awk '{s+=$2} END {print s+0}')
passed=$((passed + sql_passed))
if [ ${#failed_steps[@]} -gt 0 ]; then
  echo "failed steps: ${failed_steps[*]}"
  [ "$failed" -gt 0 ] || failed=${#failed_steps[@]}
fi
echo "$passed passed, $failed failed"
[ ${#failed_steps[@]} -eq 0 ]
