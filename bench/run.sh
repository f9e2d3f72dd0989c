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
. bench/goal.sh
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
BIN=${BIN:-target/release/resellgate}
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
threads = ${THREADS:-1}
[upstream]
url = "http://$SB/billmgr"
[store]
path = "store"
TOML
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw
"$BIN" mappings apply --config "$DIR/config.toml" mappings/demo.toml >/dev/null
RESELLGATE_LOG=warn "$BIN" serve --config "$DIR/config.toml" 2>"$DIR/gateway.log" & PIDS+=($!)
GW_PID=$!
# Issue 13, goal 1: BASE_BIN=path/to/older/resellgate adds that build's gateway as a row
# (same sandbox, its own store and ports), for an A/B in one run.
BASE_GW=127.0.0.1:18510; BASE_PID=""
if [ -n "${BASE_BIN:-}" ]; then
  mkdir -p "$DIR/base"
  sed -e "s/$GW/$BASE_GW/" "$DIR/config.toml" > "$DIR/base/config.toml"
  printf '[admin]\nlisten = "127.0.0.1:18511"\n' >> "$DIR/base/config.toml"
  "$BASE_BIN" mappings apply --config "$DIR/base/config.toml" mappings/demo.toml >/dev/null
  RESELLGATE_LOG=warn "$BASE_BIN" serve --config "$DIR/base/config.toml" 2>"$DIR/base/gateway.log" & PIDS+=($!)
  BASE_PID=$!
fi

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
  NG_PID=$!
fi

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0; sleep 0.1; done; echo "no listener on $1" >&2; exit 1; }
wait_port "$SB"; wait_port "$GW"

# CPU time (user + system, clock ticks) of a process and its children's threads: the
# gateway is one process; nginx is a master whose worker does the work.
cpu_ticks() { # pid...
  local t=0 p
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
cpu_us() { cat "$DIR/cpu.$1" 2>/dev/null || echo 0; }
run() { # name addr query [pid whose CPU is measured]
  local out rps p99 n c0 c1 us=""
  [ -n "${4:-}" ] && c0=$(cpu_ticks "$4")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://$2/billmgr?$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  if [ -n "${4:-}" ]; then
    c1=$(cpu_ticks "$4")
    us=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
    echo "$us" > "$DIR/cpu.$1"
  fi
  wrk_us "$p99" > "$DIR/p99.$1"
  printf '%-8s %10s req/s   p99 %8s   CPU %6s us/request\n' "$1" "$rps" "$p99" "${us:--}" >&2
  echo "$rps"
}
echo "wrk -t1 -c$CONNS -d${DURATION}s, func=whoami (XML), $(nproc) cores" >&2
D=$(run direct "$SB" "func=whoami&authinfo=acme@sandbox:acme-upstream-pw")
N=""
if command -v nginx >/dev/null 2>&1; then wait_port "$NG"; N=$(run nginx "$NG" "func=whoami&authinfo=acme@sandbox:acme-upstream-pw" "$NG_PID"); fi
if [ -n "$BASE_PID" ]; then wait_port "$BASE_GW"; B=$(run base "$BASE_GW" "func=whoami&authinfo=acme:acme-demo-pw" "$BASE_PID"); fi
G=$(run gateway "$GW" "func=whoami&authinfo=acme:acme-demo-pw" "$GW_PID")
awk -v d="$D" -v g="$G" 'BEGIN { printf "gateway/direct throughput ratio: %.2f\n", g/d }'
[ -n "$N" ] && awk -v n="$N" -v g="$G" 'BEGIN { printf "gateway/nginx  throughput ratio: %.2f\n", g/n }'
[ -n "$N" ] && awk -v n="$(cpu_us nginx)" -v g="$(cpu_us gateway)" 'BEGIN { printf "gateway/nginx  CPU per request ratio: %.2f (goal <= 1.5)\n", g/n }'
[ -n "$BASE_PID" ] && awk -v b="$B" -v g="$G" 'BEGIN { printf "gateway/base   throughput ratio: %.2f\n", g/b }'
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b }'; }
if [ -n "$N" ]; then
  goal 1 "whoami: throughput gateway/nginx" "$(ratio "$G" "$N")" ">=" 1.0
  goal 1 "whoami: p99 gateway/nginx" "$(ratio "$(cat "$DIR/p99.gateway")" "$(cat "$DIR/p99.nginx")")" "<=" 1.0
  goal 1 "whoami: CPU per request gateway/nginx" "$(ratio "$(cpu_us gateway)" "$(cpu_us nginx)")" "<=" 1.5
fi
true
# Certificate-list pass-through (goal 1's second call): the sandbox's list for acme.
echo "wrk -t1 -c$CONNS -d${DURATION}s, func=certificate (XML)" >&2
D2=$(run direct "$SB" "func=certificate&authinfo=acme@sandbox:acme-upstream-pw")
N2=""
if [ -n "$N" ]; then N2=$(run nginx "$NG" "func=certificate&authinfo=acme@sandbox:acme-upstream-pw" "$NG_PID"); fi
if [ -n "$BASE_PID" ]; then B2=$(run base "$BASE_GW" "func=certificate&authinfo=acme:acme-demo-pw" "$BASE_PID"); fi
G2=$(run gateway "$GW" "func=certificate&authinfo=acme:acme-demo-pw" "$GW_PID")
[ -n "$N2" ] && awk -v n="$N2" -v g="$G2" -v nc="$(cpu_us nginx)" -v gc="$(cpu_us gateway)" 'BEGIN { printf "certificate gateway/nginx throughput ratio: %.2f, CPU per request ratio: %.2f\n", g/n, gc/nc }'
[ -n "$BASE_PID" ] && awk -v b="$B2" -v g="$G2" 'BEGIN { printf "certificate gateway/base throughput ratio: %.2f\n", g/b }' || true
if [ -n "$N2" ]; then
  goal 1 "certificate list: throughput gateway/nginx" "$(ratio "$G2" "$N2")" ">=" 1.0
  goal 1 "certificate list: p99 gateway/nginx" "$(ratio "$(cat "$DIR/p99.gateway")" "$(cat "$DIR/p99.nginx")")" "<=" 1.0
  goal 1 "certificate list: CPU per request gateway/nginx" "$(ratio "$(cpu_us gateway)" "$(cpu_us nginx)")" "<=" 1.5
fi
[ "${PASSTHROUGH_ONLY:-0}" = 1 ] && exit 0

# Issue 13, goals 3 and 5 (their own scripts, same knobs): durable orders/s with group
# commit against the sandbox alone, and cold start to /readyz with 1M services.
bash bench/orders.sh
bash bench/coldstart.sh
exit 0
