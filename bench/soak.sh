#!/usr/bin/env bash
# resellgate soak: sustained mixed load against the release binary and the sandbox for
# DURATION seconds (default 1800 = 30 minutes), sampling the gateway's RSS every 10 s.
# Fails (exit 1) when any request errors (socket error, timeout, non-200 status, or an
# error document of type `upstream`) or when RSS grows more than 10% after the warm-up.
# Run on purpose (not part of `make test`): `DURATION=120 bash bench/soak.sh`.
#
# The mix (bench/soak.lua), per 100 requests: 40 whoami, 25 certificate lists,
# 15 pricelist.export, 10 func=auth logins, 5 refused functions, 4 wrong passwords for
# an unknown login (throttled after 10 a minute), 1 order with a fresh remoteid (the
# sandbox's balance runs out after ~100 orders; later orders are refused upstream and
# their failed records pruned after [orders] failed_retention_s).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-1800}
CONNS=${CONNS:-8}
WARMUP=${WARMUP:-$(( DURATION / 4 < 60 ? DURATION / 4 : 60 ))}
SAMPLE_S=${SAMPLE_S:-10}
RETENTION_S=${RETENTION_S:-60}
CACHE_MB=${CACHE_MB:-16}
RECONCILE_S=${RECONCILE_S:-60}
BIN=${BIN:-target/release/resellgate}
[ -x "$BIN" ] || cargo build --release --locked
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

SB=127.0.0.1:${SB_PORT:-18610}; GW=127.0.0.1:${GW_PORT:-18510}
"$BIN" sandbox --listen "$SB" >/dev/null 2>&1 & PIDS+=($!)
cat > "$DIR/config.toml" <<TOML
[server]
listen = "$GW"
[upstream]
url = "http://$SB/billmgr"
[store]
path = "store"
cache_mb = $CACHE_MB
[orders]
failed_retention_s = $RETENTION_S
reconcile_interval_s = $RECONCILE_S
TOML
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw
"$BIN" mappings apply --config "$DIR/config.toml" mappings/demo.toml >/dev/null
RESELLGATE_LOG=warn "$BIN" serve --config "$DIR/config.toml" 2>"$DIR/gateway.log" & GWPID=$!; PIDS+=($GWPID)

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0; sleep 0.1; done; echo "no listener on $1" >&2; exit 1; }
wait_port "$SB"; wait_port "$GW"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$GWPID/status"; }
echo "soak: ${DURATION}s, wrk -t1 -c$CONNS, warm-up ${WARMUP}s, RSS every ${SAMPLE_S}s, $(nproc) cores" >&2
wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s bench/soak.lua "http://$GW" >"$DIR/wrk.out" 2>&1 & WRK=$!; PIDS+=($WRK)

START=$(date +%s); BASE=""; MAX=0; LAST=0
printf '%6s %10s %10s\n' "t(s)" "RSS(KiB)" "store(KiB)" >&2
while kill -0 "$WRK" 2>/dev/null; do
  sleep "$SAMPLE_S"
  kill -0 "$GWPID" 2>/dev/null || { echo "FAIL: the gateway exited" >&2; exit 1; }
  T=$(( $(date +%s) - START )); R=$(rss_kb); LAST=$R
  printf '%6s %10s %10s\n' "$T" "$R" "$(du -sk "$DIR/store" | cut -f1)" >&2
  if [ -z "$BASE" ] && [ "$T" -ge "$WARMUP" ]; then BASE=$R; fi
  if [ -n "$BASE" ] && [ "$R" -gt "$MAX" ]; then MAX=$R; fi
done
wait "$WRK" || true
cat "$DIR/wrk.out" >&2

FAIL=0
if grep -q "Socket errors" "$DIR/wrk.out"; then echo "FAIL: socket errors" >&2; FAIL=1; fi
if grep -q "Non-2xx" "$DIR/wrk.out"; then echo "FAIL: non-200 answers" >&2; FAIL=1; fi
BAD=$(awk '/^soak-bad/ {print $2}' "$DIR/wrk.out"); BAD=${BAD:-missing}
if [ "$BAD" != 0 ]; then echo "FAIL: $BAD answers were upstream errors (or the count is missing)" >&2; FAIL=1; fi
[ -n "$BASE" ] || { echo "FAIL: no sample after the warm-up (DURATION too short?)" >&2; exit 1; }
GROWTH=$(awk -v b="$BASE" -v l="$LAST" 'BEGIN { printf "%.1f", (l - b) * 100 / b }')
echo "RSS after warm-up ${BASE} KiB, last ${LAST} KiB, max ${MAX} KiB: growth ${GROWTH}%" >&2
if awk -v b="$BASE" -v l="$LAST" 'BEGIN { exit !(l > b * 1.10) }'; then echo "FAIL: RSS grew more than 10%" >&2; FAIL=1; fi
[ "$FAIL" = 0 ] && echo "soak passed" >&2
exit "$FAIL"
