#!/usr/bin/env bash
# Installs the real migration tools that made pg_test/fixtures/layouts/ (to regenerate them with
# pg_test/fixtures/layouts/make.sh). Not part of scripts/test.sh or CI: the fixtures are
# committed, and these installs take minutes.
#
#   scripts/install_tools.sh [NODE_DIR]
#
# sqlx-cli and diesel_cli go to ~/.cargo/bin (about 3 minutes each on 2 cores); dbmate,
# drizzle-kit, drizzle-orm and pg to NODE_DIR/node_modules (default /tmp/migrate-layout-tools),
# prisma@6 with @prisma/adapter-pg@6 to NODE_DIR/prisma6/node_modules (Prisma 6's WebAssembly
# schema engine works offline; Prisma 7 downloads a binary from its own server at run time).
# golang-migrate (a Go module) and Flyway (a Java program) are not served by the package
# registries this project uses, so their fixtures are written by hand.
set -euo pipefail
NODE_DIR=${1:-/tmp/migrate-layout-tools}

# diesel_cli's postgres backend links libpq.
if ! dpkg -s libpq-dev >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq libpq-dev
fi
command -v sqlx >/dev/null || cargo install sqlx-cli --no-default-features --features postgres --locked
command -v diesel >/dev/null || cargo install diesel_cli --no-default-features --features postgres --locked

mkdir -p "$NODE_DIR"
cd "$NODE_DIR"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-fund --no-audit dbmate drizzle-kit drizzle-orm pg
mkdir -p prisma6
(cd prisma6 && { [ -f package.json ] || npm init -y >/dev/null; } &&
  npm install --no-fund --no-audit prisma@6 @prisma/adapter-pg@6)
echo "node tools in $NODE_DIR/node_modules/.bin; pass NODE_TOOLS=$NODE_DIR to make.sh"
