#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests. Touches no system service.
#
#   pg-cluster.sh start DIR PORT   initdb DIR (if empty), start on 127.0.0.1:PORT, print a connection string
#   pg-cluster.sh stop DIR         pg_ctl stop -m fast, remove DIR
#   pg-cluster.sh halt DIR         pg_ctl stop -m fast, keep DIR (start DIR PORT brings it back)
#
# Both are idempotent. Run as root, the cluster belongs to the `postgres` OS user (initdb
# refuses root). Trust authentication on 127.0.0.1 only; the unix socket lives in DIR.
# fsync and synchronous_commit stay ON unless PG_FAST=1 (then fsync=off, for speed only).
# PG_BIN overrides the binaries' folder (default: the newest /usr/lib/postgresql/*/bin).
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR | halt DIR" >&2; exit 2; }

find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
  local best=""
  for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/pg_ctl" ]] && best="$d"; done
  if [[ -z "$best" ]] && command -v pg_ctl >/dev/null; then best="$(dirname "$(command -v pg_ctl)")"; fi
  [[ -n "$best" ]] || { echo "pg-cluster: no PostgreSQL binaries found (install postgresql, or set PG_BIN)" >&2; exit 1; }
  echo "$best"
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ "$(id -u)" == "0" ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd="${1:-}"; dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || usage
BIN="$(find_bin)"

case "$cmd" in
  start)
    port="${3:-}"; [[ "$port" =~ ^[0-9]+$ ]] || usage
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ "$(id -u)" == "0" ]]; then
      chown postgres: "$dir"
      chmod 700 "$dir"
      # The owner must be able to reach DIR through its parents (e.g. a 0700 home).
      p="$(dirname "$dir")"
      while [[ "$p" != "/" ]]; do
        if ! runuser -u postgres -- test -x "$p"; then chmod o+x "$p"; fi
        p="$(dirname "$p")"
      done
    fi
    data="$dir/data"
    if [[ ! -f "$data/PG_VERSION" ]]; then
      as_owner "$BIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      cat >"$data/pg_hba.conf" <<HBA
# pg-cluster.sh: trust on loopback only, and on the unix socket in DIR
local   all all              trust
host    all all 127.0.0.1/32 trust
HBA
    fi
    fast="on"; [[ "${PG_FAST:-0}" == "1" ]] && fast="off"
    cat >"$data/postgresql.auto.conf" <<CONF
# written by pg-cluster.sh on every start
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 128MB
fsync = $fast
synchronous_commit = $fast
full_page_writes = $fast
log_min_messages = warning
logging_collector = off
CONF
    chown postgres: "$data/postgresql.auto.conf" "$data/pg_hba.conf" 2>/dev/null || true
    if as_owner "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      : # already running (idempotent start)
    else
      as_owner "$BIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
        || { tail -n 30 "$dir/postgres.log" >&2 || true; exit 1; }
    fi
    echo "Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
    ;;
  stop)
    if [[ -d "$dir" ]]; then
      data="$dir/data"
      if [[ -f "$data/PG_VERSION" ]] && as_owner "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_owner "$BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
      fi
      rm -rf "$dir"
    fi
    ;;
  halt)
    # A database outage, for tests of what a server does without its store (health NOT_SERVING).
    data="$dir/data"
    if [[ -f "$data/PG_VERSION" ]] && as_owner "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      as_owner "$BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
  *) usage ;;
esac
