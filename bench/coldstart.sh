#!/usr/bin/env bash
# Cold start benchmark (issue 13, goal 5): how long `resellgate serve` takes from its start
# until the admin listener answers /readyz `ready` (the store open and its caches loaded
# before anything listens), measured in one run over two stores built with the product's
# own commands (`mappings apply`, then `services import` of SERVICES generated lines):
#   empty    — mappings/demo.toml only (the baseline)
#   loaded   — the same plus SERVICES services (default 1,000,000), split between the demo
#              resellers
# Each start is measured RUNS times (default 3) on a store whose gateway was stopped
# (kill -TERM, then waited for). Prints the median of each and their ratio; called by
# bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/goal.sh
SERVICES=${SERVICES:-1000000}
RUNS=${RUNS:-3}
BIN=${BIN:-target/release/resellgate}
[ -x "$BIN" ] || cargo build --release --locked

DIR=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw RESELLGATE_ADMIN_TOKEN=bench-token
AD=127.0.0.1:18541
for s in empty loaded; do
  mkdir -p "$DIR/$s"
  printf '[server]\nlisten = "127.0.0.1:18540"\n[upstream]\nurl = "http://127.0.0.1:18649/billmgr"\n[store]\npath = "store"\n[admin]\nlisten = "%s"\n[orders]\nreconcile_interval_s = 86400\n' "$AD" >"$DIR/$s/config.toml"
  "$BIN" mappings apply --config "$DIR/$s/config.toml" mappings/demo.toml >/dev/null
done
awk -v n="$SERVICES" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\t%s\tr%d\t3033\t12\n", 1000000 + i, (i % 2 ? "acme" : "globex"), i }' >"$DIR/services.tsv"
t0=$(date +%s.%N)
"$BIN" services import --config "$DIR/loaded/config.toml" "$DIR/services.tsv" >/dev/null
t1=$(date +%s.%N)
rm -f "$DIR/services.tsv"
printf 'services import of %d services: %.1f s; store %s\n' "$SERVICES" "$(echo "$t1 - $t0" | bc)" "$(du -sh "$DIR/loaded/store" | cut -f1)" >&2

start_once() { # store-dir → seconds until /readyz
  local t0 t1
  t0=$(date +%s.%N)
  RESELLGATE_LOG=warn "$BIN" serve --config "$1/config.toml" 2>>"$1/gateway.log" & PID=$!
  until [ "$(curl -fsS "http://$AD/readyz" 2>/dev/null)" = ready ]; do
    kill -0 "$PID" 2>/dev/null || { echo "the gateway exited: $(tail -3 "$1/gateway.log")" >&2; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s.%N)
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  echo "$t1 - $t0" | bc
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A M
for s in empty loaded; do
  start_once "$DIR/$s" >/dev/null # a first start after the build: page cache warm for both
  M[$s]=$(for _ in $(seq "$RUNS"); do start_once "$DIR/$s"; done | median)
  printf '%-7s cold start to /readyz: %.3f s (median of %d)\n' "$s" "${M[$s]}" "$RUNS" >&2
done
awk -v e="${M[empty]}" -v l="${M[loaded]}" -v n="$SERVICES" 'BEGIN { printf "cold start with %d services: %.3f s (goal <= 1 s), loaded/empty ratio %.2f\n", n, l, l/e }'
goal 5 "cold start to /readyz with $SERVICES services, s" "$(printf '%.3f' "${M[loaded]}")" "<=" 1
