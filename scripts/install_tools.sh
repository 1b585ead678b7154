#!/usr/bin/env bash
# Installs the real migration tools the adopt tests drive (cli/tests/adopt.rs, run by
# scripts/test.sh) and that made pg_test/fixtures/layouts/ (pg_test/fixtures/layouts/make.sh).
# Idempotent, and quick when everything is there already (a few checks, no network).
#
#   scripts/install_tools.sh [NODE_DIR]
#
# sqlx-cli and diesel_cli go to ~/.cargo/bin (about 3 minutes each on 2 cores, the first time);
# dbmate, drizzle-kit, drizzle-orm and pg to NODE_DIR/node_modules (default
# /tmp/migrate-layout-tools, or $MIGRATE_NODE_TOOLS), prisma with @prisma/adapter-pg to
# NODE_DIR/prisma6/node_modules (Prisma 6's WebAssembly schema engine works offline; Prisma 7
# downloads a binary from its own server at run time). Versions are pinned to the ones the
# fixtures were made with. golang-migrate (a Go module) and Flyway (a Java program) are not
# served by the package registries this project uses, so their fixtures are written by hand
# and the tests create their tables as those tools' sources do.
set -euo pipefail
NODE_DIR=${1:-${MIGRATE_NODE_TOOLS:-/tmp/migrate-layout-tools}}
SQLX_VERSION=0.9.0
DIESEL_VERSION=2.3.14
NODE_PACKAGES=(dbmate@2.36.0 drizzle-kit@0.31.11 drizzle-orm@0.45.4 pg@8.23.1)
PRISMA_PACKAGES=(prisma@6.19.3 @prisma/adapter-pg@6.19.3)
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# True if package NAME@VERSION is installed in node_modules under $1.
have_npm() {
  local dir=$1 spec=$2 name version
  name=${spec%@*} version=${spec##*@}
  [ -f "$dir/node_modules/$name/package.json" ] &&
    [ "$(node -p "require('$dir/node_modules/$name/package.json').version")" = "$version" ]
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# diesel_cli's postgres backend links libpq; the npm tools need Node.js (18 or later).
need_apt=()
dpkg -s libpq-dev >/dev/null 2>&1 || need_apt+=(libpq-dev)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_apt[@]}"
fi
sqlx --version 2>/dev/null | grep -q " $SQLX_VERSION" ||
  cargo install sqlx-cli --version "$SQLX_VERSION" --no-default-features --features postgres --locked
diesel --version 2>/dev/null | grep -q "Version: $DIESEL_VERSION" ||
  cargo install diesel_cli --version "$DIESEL_VERSION" --no-default-features --features postgres --locked

mkdir -p "$NODE_DIR/prisma6"
missing=()
for spec in "${NODE_PACKAGES[@]}"; do have_npm "$NODE_DIR" "$spec" || missing+=("$spec"); done
if [ ${#missing[@]} -gt 0 ]; then
  (cd "$NODE_DIR" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    npm install --no-fund --no-audit "${NODE_PACKAGES[@]}")
fi
missing=()
for spec in "${PRISMA_PACKAGES[@]}"; do have_npm "$NODE_DIR/prisma6" "$spec" || missing+=("$spec"); done
if [ ${#missing[@]} -gt 0 ]; then
  (cd "$NODE_DIR/prisma6" && { [ -f package.json ] || npm init -y >/dev/null; } &&
    npm install --no-fund --no-audit "${PRISMA_PACKAGES[@]}")
fi
echo "install_tools: sqlx, diesel in ${CARGO_HOME:-$HOME/.cargo}/bin; dbmate, drizzle-kit, prisma under $NODE_DIR"
