#!/usr/bin/env bash
# A throw-away local PostgreSQL server for Dagster's instance storage (tests, trying the
# Postgres deployment on one machine). Idempotent: `start` installs the system package when
# it is missing (apt-get), creates a cluster under a temp folder on the first call, starts
# it on a free loopback port and prints the path of an env file with DAGSTER_PG_*; later
# calls reuse the running server. See docs/operations.md, "Dagster on Postgres".
#
#   deploy/local-postgres.sh start    # -> /tmp/stx_pipeline_pg.<uid>.<hash>/env
#   deploy/local-postgres.sh status   # exit 0 when running
#   deploy/local-postgres.sh env      # print the env file's path (when running)
#   deploy/local-postgres.sh stop     # stop the server (the cluster folder stays)
#   deploy/local-postgres.sh destroy  # stop and delete the cluster folder
#
# STX_PIPELINE_PG_DIR overrides the folder (default: one per checkout, under $TMPDIR).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HASH="$(printf '%s' "$ROOT" | md5sum | cut -c1-8)"
DIR="${STX_PIPELINE_PG_DIR:-${TMPDIR:-/tmp}/stx_pipeline_pg.$(id -u).$HASH}"
DATA="$DIR/data"
ENV_FILE="$DIR/env"
LOG="$DIR/postgres.log"
PG_USER=stx
PG_DB=dagster

say() { echo "local-postgres: $*" >&2; }

pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

install_postgres() {
  if pg_bin >/dev/null; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL is not installed; run as root (or: sudo apt-get install postgresql)"
    exit 1
  fi
  say "installing PostgreSQL (apt-get install postgresql)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql postgresql-client >/dev/null
  pg_bin >/dev/null || { say "apt-get installed no initdb"; exit 1; }
}

# initdb and postgres refuse to run as root: as root, the cluster belongs to `postgres`.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
  local bin
  bin="$(pg_bin)" || return 1
  [ -f "$DATA/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

port_in_use() {
  python3 - "$1" <<'EOF'
import socket, sys
with socket.socket() as s:
    sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
EOF
}

write_env() {
  umask 077
  cat >"$ENV_FILE" <<EOF
DAGSTER_PG_HOST=127.0.0.1
DAGSTER_PG_PORT=$1
DAGSTER_PG_USER=$PG_USER
DAGSTER_PG_PASSWORD=$2
DAGSTER_PG_DB=$PG_DB
EOF
}

start() {
  install_postgres
  local bin port password
  bin="$(pg_bin)"
  if running; then echo "$ENV_FILE"; return 0; fi
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    printf '%s\n' "$password" >"$DIR/pwfile"
    if [ "$(id -u)" = 0 ]; then chown postgres "$DIR" "$DIR/pwfile"; fi
    as_owner "$bin/initdb" -D "$DATA" -U "$PG_USER" --pwfile="$DIR/pwfile" \
      --auth=scram-sha-256 --encoding=UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
      || { cat "$DIR/initdb.log" >&2; exit 1; }
    write_env "$(free_port)" "$password"
    if [ "$(id -u)" = 0 ]; then chown postgres "$ENV_FILE"; fi
  fi
  port="$(sed -n 's/^DAGSTER_PG_PORT=//p' "$ENV_FILE")"
  password="$(sed -n 's/^DAGSTER_PG_PASSWORD=//p' "$ENV_FILE")"
  if port_in_use "$port"; then  # someone took our port while we were stopped
    port="$(free_port)"
    write_env "$port" "$password"
  fi
  # Loopback only, sockets in our folder, durability off (a test instance, not a warehouse).
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { tail -n 20 "$LOG" >&2; exit 1; }
  if ! PGPASSWORD="$password" "$bin/psql" -h 127.0.0.1 -p "$port" -U "$PG_USER" -d postgres \
      -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    PGPASSWORD="$password" "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$PG_USER" "$PG_DB"
  fi
  say "PostgreSQL $(basename "$(dirname "$bin")") on 127.0.0.1:$port (cluster $DATA)"
  echo "$ENV_FILE"
}

stop() {
  if running; then as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; fi
}

case "${1:-start}" in
  start) start ;;
  status) running ;;
  env) running && echo "$ENV_FILE" ;;
  stop) stop ;;
  destroy) stop; rm -rf "$DIR" ;;
  *) say "usage: $0 start|status|env|stop|destroy"; exit 2 ;;
esac
