#!/usr/bin/env bash
# A released SQL script is never edited: users' databases ran it, and ALTER EXTENSION UPDATE
# starts from what it created. sql/RELEASED lists the SHA-256 of every released script
# (install scripts and upgrade scripts that end at a released version); this check refuses a
# changed or unlisted one, and a crate version that is already released (after a release the
# version is bumped, and changes go into the next upgrade script). See UPDATING.md.
set -euo pipefail
cd "$(dirname "$0")/../sql"
status=0
if ! sha256sum --quiet -c RELEASED; then
  echo "released scripts were edited; put the change into the next upgrade script instead" >&2
  status=1
fi
released_versions=$(sed -n 's/^[0-9a-f]*  migrate--\([^-]*\)\.sql$/\1/p' RELEASED)
for script in migrate--*.sql; do
  grep -q "  $script\$" RELEASED && continue
  target=${script%.sql}; target=${target##*--}
  if grep -qx "$target" <<<"$released_versions"; then
    echo "$script ends at released version $target but is not in sql/RELEASED" >&2
    status=1
  fi
done
current=$(sed -n 's/^version = "\(.*\)"/\1/p' ../Cargo.toml | head -1)
if grep -qx "$current" <<<"$released_versions"; then
  echo "Cargo.toml's version $current is released; bump it before changing the schema" >&2
  status=1
fi
[ "$status" = 0 ] && echo "released scripts: $(wc -l < RELEASED) unchanged"
exit $status
