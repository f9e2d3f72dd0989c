#!/usr/bin/env bash
# Durable orders benchmark (issue 13, goal 3): every request a new certificate order with a
# unique remoteid (bench/orders.lua), wrk -c$CONNS, measured in one run through two paths:
#   direct   — wrk → sandbox (the upstream alone, nothing recorded; the baseline)
#   gateway  — wrk → resellgate on sled → sandbox: the claim is durable (flushed) before the
#              order is forwarded, the outcome (record, service, ledger entry) before the answer
# `acknowledged` counts answers carrying a certificate id. The sandbox is seeded with a
# balance no run exhausts. Knobs: DURATION (seconds per path, default 10), CONNS (16).
# Prints the gateway's orders/s, p99, the ratio gateway/direct and each gateway's CPU time per
# acknowledged order (its whole process: call path, committer, sled, jobs after the answer,
# startup included); called by bench/run.sh.
# BASE_BIN=path/to/an/older/resellgate adds a row for that build's gateway (A/B in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/goal.sh
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
BIN=${BIN:-target/release/resellgate}
BASE_BIN=${BASE_BIN:-}
[ -x "$BIN" ] || cargo build --release --locked
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] && cp "$DIR/gw/gateway.log" /tmp/orders-gateway.log; rm -rf "$DIR"; }
trap cleanup EXIT

# One sandbox per path, each starting empty: the sandbox's certificate list (read for every
# order's ledger cost) is a scan of all its certificates, so a path run after another would
# meet a slower upstream.
SD=127.0.0.1:18630; SB=127.0.0.1:18633; SBB=127.0.0.1:18634
GW=127.0.0.1:18530; AD=127.0.0.1:18531; GB=127.0.0.1:18532
for s in "$SD" "$SB" "$SBB"; do
  "$BIN" sandbox --listen "$s" --balance 1000000000 >/dev/null 2>&1 & PIDS+=($!)
done
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw RESELLGATE_ADMIN_TOKEN=bench-token
gateway() { # name binary listen sandbox [admin-listen]
  mkdir -p "$DIR/$1"
  printf '[server]\nlisten = "%s"\nthreads = %s\n[upstream]\nurl = "http://%s/billmgr"\n[store]\npath = "store"\n' "$3" "${THREADS:-1}" "$4" >"$DIR/$1/config.toml"
  [ -n "${5:-}" ] && printf '[admin]\nlisten = "%s"\n' "$5" >>"$DIR/$1/config.toml"
  "$2" mappings apply --config "$DIR/$1/config.toml" mappings/demo.toml >/dev/null
  RESELLGATE_LOG=warn "$2" serve --config "$DIR/$1/config.toml" 2>"$DIR/$1/gateway.log" & PIDS+=($!)
}
gateway gw "$BIN" "$GW" "$SB" "$AD"; GW_PID=${PIDS[-1]}
[ -n "$BASE_BIN" ] && { gateway base "$BASE_BIN" "$GB" "$SBB"; GB_PID=${PIDS[-1]}; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0; sleep 0.1; done; echo "no listener on $1" >&2; exit 1; }
wait_port "$SD"; wait_port "$SB"; wait_port "$SBB"; wait_port "$GW"; [ -z "$BASE_BIN" ] || wait_port "$GB"

row() { # name wrk-output
  local rps p50 p99 acked
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$2")
  p50=$(awk '$1=="50%" {print $2}' <<<"$2")
  p99=$(awk '$1=="99%" {print $2}' <<<"$2")
  acked=$(awk '/^acknowledged/ {print $2}' <<<"$2")
  printf '%-8s %10s orders/s   p50 %8s   p99 %8s   acknowledged %s\n' "$1" "$rps" "$p50" "$p99" "$acked" >&2
  echo "$rps $acked $(wrk_us "$p99")"
}
cpu() { # name pid acknowledged: the gateway's CPU time (user + system) per acknowledged order
  awk -v n="$1" -v a="$3" -v hz="$(getconf CLK_TCK)" '{ s = ($14 + $15) / hz;
    printf "%-8s CPU %.2f s, %.0f us per acknowledged order\n", n, s, (a > 0 ? s * 1e6 / a : 0) }' "/proc/$2/stat" >&2
}
orders() { # addr prefix [env...]
  local addr=$1 prefix=$2; shift 2
  env PREFIX="$prefix" "$@" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s bench/orders.lua "http://$addr/"
}
echo "durable orders: wrk -t1 -c$CONNS -d${DURATION}s, unique remoteids, $(nproc) cores" >&2
read -r D _ <<<"$(row direct "$(orders "$SD" d$$x AUTHINFO=acme@sandbox:acme-upstream-pw PRICELIST=3033)")"
[ -z "$BASE_BIN" ] || read -r B BA _ <<<"$(row base "$(orders "$GB" b$$x)")"
read -r G GA GP <<<"$(row gateway "$(orders "$GW" g$$x)")"
[ -z "$BASE_BIN" ] || cpu base "$GB_PID" "$BA"
cpu gateway "$GW_PID" "$GA"
awk -v d="$D" -v g="$G" 'BEGIN { printf "orders gateway/direct throughput ratio: %.2f\n", g/d }'
[ -z "$BASE_BIN" ] || awk -v b="$B" -v g="$G" 'BEGIN { printf "orders gateway/base   throughput ratio: %.2f\n", g/b }'
goal 3 "durable orders/s (acknowledged, sled)" "$(awk -v a="$GA" -v d="$DURATION" 'BEGIN { printf "%.0f", a / d }')" ">=" 5000
goal 3 "durable orders: p99 ms" "$(awk -v p="$GP" 'BEGIN { if (p != "") printf "%.2f", p / 1000 }')" "<=" 10
# The gateway's own counters, as an operator reads them.
curl -fsS "http://$AD/metrics" 2>/dev/null | grep -E '^resellgate_(order|store)' >&2 || true
