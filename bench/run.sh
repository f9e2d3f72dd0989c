#!/usr/bin/env bash
# resellgate benchmark: the same call (func=whoami, XML) measured in one run, on this
# machine, through three paths, and reported as ratios:
#   direct   — wrk → sandbox (the upstream alone; the baseline)
#   nginx    — wrk → nginx proxy_pass → sandbox (a plain reverse proxy, if nginx can be installed)
#   gateway  — wrk → resellgate (auth from the credential cache, authinfo swap, forward,
#              document validation) → sandbox
# Loopback only; bounded (DURATION seconds per path). Run with `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
BIN=target/release/resellgate
[ -x "$BIN" ] || cargo build --release --locked
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if ! command -v nginx >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1 || true
fi

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

SB=127.0.0.1:18600; GW=127.0.0.1:18500; NG=127.0.0.1:18700
"$BIN" sandbox --listen "$SB" >/dev/null 2>&1 & PIDS+=($!)
cat > "$DIR/config.toml" <<TOML
[server]
listen = "$GW"
[upstream]
url = "http://$SB/billmgr"
[store]
path = "store"
TOML
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw
"$BIN" mappings apply --config "$DIR/config.toml" mappings/demo.toml >/dev/null
RESELLGATE_LOG=warn "$BIN" serve --config "$DIR/config.toml" 2>"$DIR/gateway.log" & PIDS+=($!)

if command -v nginx >/dev/null 2>&1; then
  mkdir -p "$DIR/nginx"
  cat > "$DIR/nginx.conf" <<NGX
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $DIR/nginx; proxy_temp_path $DIR/nginx;
  upstream sb { server $SB; keepalive 32; }
  server { listen $NG; location / { proxy_pass http://sb; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGX
  nginx -c "$DIR/nginx.conf" -g 'daemon off;' & PIDS+=($!)
fi

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0; sleep 0.1; done; echo "no listener on $1" >&2; exit 1; }
wait_port "$SB"; wait_port "$GW"

run() { # name addr query
  local out rps p99
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://$2/billmgr?$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-8s %10s req/s   p99 %8s\n' "$1" "$rps" "$p99" >&2
  echo "$rps"
}
echo "wrk -t1 -c$CONNS -d${DURATION}s, func=whoami (XML), $(nproc) cores" >&2
D=$(run direct "$SB" "func=whoami&authinfo=acme@sandbox:acme-upstream-pw")
N=""
if command -v nginx >/dev/null 2>&1; then wait_port "$NG"; N=$(run nginx "$NG" "func=whoami&authinfo=acme@sandbox:acme-upstream-pw"); fi
G=$(run gateway "$GW" "func=whoami&authinfo=acme:acme-demo-pw")
awk -v d="$D" -v g="$G" 'BEGIN { printf "gateway/direct throughput ratio: %.2f\n", g/d }'
[ -n "$N" ] && awk -v n="$N" -v g="$G" 'BEGIN { printf "gateway/nginx  throughput ratio: %.2f\n", g/n }'

# Issue 13, goals 3 and 5 (their own scripts, same knobs): durable orders/s with group
# commit against the sandbox alone, and cold start to /readyz with 1M services.
bash bench/orders.sh
bash bench/coldstart.sh
exit 0
