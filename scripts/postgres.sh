#!/usr/bin/env bash
# Helpers for a throwaway PostgreSQL server used by the tests (Debian's packages; never a
# system service). Source this file, then:
#   ensure_postgres           install Debian's postgresql unless its initdb is present; sets PG_BIN
#   start_postgres PORT DIR   initdb in DIR/pg (trust auth, user driftgate), start on
#                             127.0.0.1:PORT, wait until it answers; fails loudly after 60 s
#   stop_postgres             stop it (immediate: the data is thrown away with DIR)
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user the
# package creates (or `nobody`).

ensure_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "installing PostgreSQL (Debian's postgresql package)" >&2
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq postgresql >&2
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  export PG_BIN
}

# Runs a command as the server's user.
as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

start_postgres() {
  local port=$1 dir=$2
  PG_DATA="$dir/pg"
  mkdir -p "$PG_DATA"
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    chown "$user" "$PG_DATA"
    chmod 755 "$dir"
  fi
  as_pg_user "$PG_BIN/initdb" -D "$PG_DATA" -U driftgate --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || {
    echo "initdb failed; its log:" >&2; cat "$dir/initdb.log" >&2; return 1; }
  # fsync off: the tests' data is thrown away; the crash tests kill driftgate, not the server.
  as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
    -o "-p $port -k $PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null || { echo "PostgreSQL did not start; its log:" >&2; cat "$PG_DATA/server.log" >&2; return 1; }
  export PG_DATA
}

stop_postgres() {
  if [ -n "${PG_DATA:-}" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
}
