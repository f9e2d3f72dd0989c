#!/usr/bin/env bash
# Fleet-mode benchmark: the same gateway over sled and over PostgreSQL, on this machine, in
# one run. Two measures per store:
#   orders   — durable orders/s: every request a new certificate order (claim recorded
#              durably before forwarding, outcome, service and ledger after), wrk -c$CONNS
#   whoami   — pass-through req/s (func=whoami; no store write on the call path)
# PostgreSQL is the cluster .ci/postgres.sh starts (a fresh database rg_bench each run).
# Knobs: DURATION (seconds per measure, default 10), CONNS (default 16). `make bench-fleet`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
BIN=target/release/resellgate
[ -x "$BIN" ] || cargo build --release --locked
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
eval "$(bash .ci/postgres.sh)"
export PGPASSWORD="$RESELLGATE_TEST_PG_PASSWORD" RESELLGATE_STORE_PASSWORD="$RESELLGATE_TEST_PG_PASSWORD"
psql -qAtX "$RESELLGATE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS rg_bench WITH (FORCE)" -c "CREATE DATABASE rg_bench"
PG_URL="${RESELLGATE_TEST_PG_URL%/*}/rg_bench"

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

SB=127.0.0.1:18610; GS=127.0.0.1:18510; GP=127.0.0.1:18520
"$BIN" sandbox --listen "$SB" --balance 100000000 >/dev/null 2>&1 & PIDS+=($!)
write_config() { # file listen store-lines
  printf '[server]\nlisten = "%s"\n[upstream]\nurl = "http://%s/billmgr"\n%b' "$2" "$SB" "$3" >"$1"
}
write_config "$DIR/sled.toml" "$GS" '[store]\npath = "store"\n'
write_config "$DIR/pg.toml" "$GP" "[store]\nurl = \"$PG_URL\"\n"
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw
for c in sled pg; do
  "$BIN" mappings apply --config "$DIR/$c.toml" mappings/demo.toml >/dev/null
  RESELLGATE_LOG=warn "$BIN" serve --config "$DIR/$c.toml" 2>"$DIR/$c.log" & PIDS+=($!)
done
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0; sleep 0.1; done; echo "no listener on $1" >&2; exit 1; }
wait_port "$SB"; wait_port "$GS"; wait_port "$GP"

whoami() { # addr
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://$1/billmgr?func=whoami&authinfo=acme:acme-demo-pw"
}
orders() { # addr prefix
  PREFIX="$2" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s bench/orders.lua "http://$1/"
}
row() { # name what wrk-output
  local rps p99 acked
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$3")
  p99=$(awk '$1=="99%" {print $2}' <<<"$3")
  acked=$(awk '/^acknowledged/ {print $2}' <<<"$3")
  printf '%-9s %-7s %10s req/s   p99 %8s   %s\n' "$1" "$2" "$rps" "$p99" "${acked:+acknowledged $acked}" >&2
  echo "$rps"
}
echo "wrk -t1 -c$CONNS -d${DURATION}s, $(nproc) cores, PostgreSQL $(psql -qAtX "$RESELLGATE_TEST_PG_URL" -c 'SHOW server_version')" >&2
SO=$(row sled orders "$(orders "$GS" s$$x)")
PO=$(row postgres orders "$(orders "$GP" p$$x)")
SW=$(row sled whoami "$(whoami "$GS")")
PW=$(row postgres whoami "$(whoami "$GP")")
awk -v s="$SO" -v p="$PO" 'BEGIN { printf "durable orders/s postgres/sled: %.2f\n", p/s }'
awk -v s="$SW" -v p="$PW" 'BEGIN { printf "pass-through    postgres/sled: %.2f\n", p/s }'
# Every acknowledged order is one certificate on the sandbox and one order row.
echo "orders recorded in PostgreSQL: $(psql -qAtX "$PG_URL" -c "SELECT count(*) FROM resellgate_kv WHERE tree = 'orders'")" >&2
