#!/usr/bin/env bash
# Installs Debian's PostgreSQL when it is missing, then starts (or finds running) a private
# cluster for the tests and prints the variables the tests read, as `export` lines:
#
#   eval "$(bash .ci/postgres.sh)"
#
# RESELLGATE_TEST_PG_URL       postgres://resellgate@127.0.0.1:PORT/postgres (no password)
# RESELLGATE_TEST_PG_PASSWORD  the role's password (the gateway reads it from an env variable)
# RESELLGATE_TEST_PG_CA        the test CA that signed the server's certificate (sslmode=require)
#
# The cluster lives in $RESELLGATE_PG_DIR (default /var/tmp/resellgate-pg), listens on
# 127.0.0.1:$RESELLGATE_PG_PORT (default 55432) only, and has one role, `resellgate`, allowed
# to create databases (each test makes its own). As root, the server runs as the `postgres`
# user (PostgreSQL refuses to run as root). Safe to run again: it only acts on what is absent.
# Messages go to stderr; stdout carries only the export lines.
set -euo pipefail

DIR="${RESELLGATE_PG_DIR:-/var/tmp/resellgate-pg}"
PORT="${RESELLGATE_PG_PORT:-55432}"
PASSWORD="${RESELLGATE_TEST_PG_PASSWORD:-resellgate-test-pw}"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | sort -V | tail -n 1
}

BIN="$(find_bin)"
if [ -z "$BIN" ]; then
  log "installing postgresql"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq >&2
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    log "cannot install postgresql (need root or sudo with apt-get)"
    exit 1
  fi
  BIN="$(find_bin)"
  [ -n "$BIN" ] || { log "postgresql installed but pg_ctl not found"; exit 1; }
fi

# Run a PostgreSQL program as the cluster's owner.
if [ "$(id -u)" = 0 ]; then
  OWNER=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  OWNER="$(id -un)"
  as_owner() { "$@"; }
fi

if [ ! -s "$DIR/PG_VERSION" ]; then
  log "creating a cluster in $DIR"
  mkdir -p "$DIR"
  chown "$OWNER" "$DIR"
  chmod 700 "$DIR"
  as_owner "$BIN/initdb" -D "$DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >>"$DIR/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 200
shared_buffers = 64MB
log_min_messages = warning
EOF
fi

# TLS for the tests of sslmode=require: a test CA and a server certificate for 127.0.0.1
# (openssl comes with Debian's postgresql, through ssl-cert).
if ! grep -q '^ssl = on' "$DIR/postgresql.conf"; then
  log "enabling TLS with a test CA"
  tmp="$(mktemp -d)"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
    -days 3650 -subj "/CN=resellgate test CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
  openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -CAcreateserial -out "$tmp/server.crt" -days 3650 -extfile "$tmp/ext" 2>/dev/null
  cp "$tmp/ca.crt" "$tmp/server.crt" "$tmp/server.key" "$DIR/"
  rm -rf "$tmp"
  chown "$OWNER" "$DIR/ca.crt" "$DIR/server.crt" "$DIR/server.key"
  chmod 600 "$DIR/server.key"
  printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" >>"$DIR/postgresql.conf"
  if as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    as_owner "$BIN/pg_ctl" -D "$DIR" -w -t 60 -l "$DIR/server.log" restart >/dev/null
  fi
fi

if ! as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  log "starting the cluster on 127.0.0.1:$PORT"
  as_owner "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 start >/dev/null
fi

psql_admin() { as_owner "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1 "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'resellgate'")" != 1 ]; then
  log "creating role resellgate"
  psql_admin -c "CREATE ROLE resellgate LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi

echo "export RESELLGATE_TEST_PG_URL='postgres://resellgate@127.0.0.1:$PORT/postgres'"
echo "export RESELLGATE_TEST_PG_PASSWORD='$PASSWORD'"
echo "export RESELLGATE_TEST_PG_CA='$DIR/ca.crt'"
