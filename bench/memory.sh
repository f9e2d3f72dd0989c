#!/usr/bin/env bash
# Memory under load with a large installation (issue 13, goal 4: RSS <= 64 MiB with 10k
# resellers and 1M services under sustained mixed load, including bursts of logins).
#
# Builds the store with the product's own commands: `mappings apply` of the demo catalogue
# plus RESELLERS (default 10,000) generated resellers, then `services import` of SERVICES
# (default 1,000,000) services spread over them. Starts the sandbox and `serve` with the
# default config (only ports and paths set; knobs CACHE_MB for `[store] cache_mb`,
# CONFIG_EXTRA for more lines), then for DURATION seconds (default 120):
#   - wrk -c$CONNS (default 16), bench/memory.lua: per 10 requests 5 `whoami` and 5
#     `certificate.edit` of a random service of a random one of the first ACTIVE (default
#     1,000) resellers (random reads of the 1M-service store: the ownership check), each
#     reseller's first call verifying its password;
#   - every BURST_S (default 10) seconds a burst of BURST (default 16) concurrent
#     `func=auth` logins of resellers not seen before (16 argon2id checks at once).
# STORE=postgres: the same store is then copied (`store copy`) into a fresh database rg_memory
# of the cluster .ci/postgres.sh starts, and the gateway serves from it (the gateway's own
# memory, without sled's).
# Samples the gateway's RSS every second and prints the idle RSS (ready, no load), the
# peak (VmHWM) and the last sample against the goal. Exits 1 only when the gateway fails
# (exits, or answers a non-200); the RSS figures are the result.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/goal.sh
RESELLERS=${RESELLERS:-10000}
SERVICES=${SERVICES:-1000000}
ACTIVE=${ACTIVE:-1000}
DURATION=${DURATION:-120}
CONNS=${CONNS:-16}
BURST=${BURST:-16}
BURST_S=${BURST_S:-10}
GOAL_MIB=${GOAL_MIB:-64}
BIN=${BIN:-target/release/resellgate}
[ -x "$BIN" ] || cargo build --release --locked
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw RESELLGATE_ADMIN_TOKEN=bench-token
SB=127.0.0.1:18680; GW=127.0.0.1:18580; AD=127.0.0.1:18581
cat >"$DIR/config.toml" <<TOML
[server]
listen = "$GW"
[upstream]
url = "http://$SB/billmgr"
[store]
path = "store"
${CACHE_MB:+cache_mb = $CACHE_MB}
[admin]
listen = "$AD"
TOML
# CONFIG_EXTRA: more config.toml lines, e.g. $'[auth]\nmax_concurrent_verifications = 1'
[ -n "${CONFIG_EXTRA:-}" ] && printf '%s\n' "$CONFIG_EXTRA" >>"$DIR/config.toml"

# The demo catalogue, then RESELLERS resellers r1..rN (password bench-pw, one hash shared:
# each login still verifies it), half on each upstream account.
HASH=$(printf 'bench-pw' | "$BIN" hash-password)
mkdir "$DIR/mappings"
cp mappings/demo.toml "$DIR/mappings/"
awk -v n="$RESELLERS" -v h="$HASH" 'BEGIN { for (i = 1; i <= n; i++)
  printf "[[reseller]]\nlogin = \"r%d\"\npassword_hash = \"%s\"\nupstream_account = \"%s\"\nplans = [101, 102]\n\n", i, h, (i % 2 ? "acme-up" : "globex-up") }' \
  >"$DIR/mappings/resellers.toml"
t0=$(date +%s.%N)
"$BIN" mappings apply --config "$DIR/config.toml" "$DIR/mappings" >/dev/null
# Service i (elid 1000000 + i) belongs to reseller r(i mod RESELLERS + 1).
awk -v n="$SERVICES" -v r="$RESELLERS" 'BEGIN { for (i = 0; i < n; i++)
  printf "%d\tr%d\trid%d\t3033\t12\n", 1000000 + i, i % r + 1, i }' >"$DIR/services.tsv"
"$BIN" services import --config "$DIR/config.toml" "$DIR/services.tsv" >/dev/null
rm -f "$DIR/services.tsv"
t1=$(date +%s.%N)
printf 'store: %d resellers, %d services, built in %.0f s, %s on disk\n' "$RESELLERS" "$SERVICES" \
  "$(echo "$t1 - $t0" | bc)" "$(du -sh "$DIR/store" | cut -f1)" >&2

if [ "${STORE:-sled}" = postgres ]; then
  eval "$(bash .ci/postgres.sh)"
  export PGPASSWORD="$RESELLGATE_TEST_PG_PASSWORD" RESELLGATE_STORE_PASSWORD="$RESELLGATE_TEST_PG_PASSWORD"
  psql -qAtX "$RESELLGATE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS rg_memory WITH (FORCE)" -c "CREATE DATABASE rg_memory" 2>/dev/null
  PG_URL="${RESELLGATE_TEST_PG_URL%/*}/rg_memory"
  t0=$(date +%s.%N)
  "$BIN" store copy --from "sled:$DIR/store" --to "$PG_URL" >/dev/null
  printf 'copied to PostgreSQL in %.0f s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" >&2
  sed -i "s#^path = \"store\"#url = \"$PG_URL\"#" "$DIR/config.toml"
fi
echo "store: ${STORE:-sled}; config: $(grep -A3 '^\[auth\]' "$DIR/config.toml" | tr '\n' ' ')${CACHE_MB:+cache_mb $CACHE_MB}" >&2

"$BIN" sandbox --listen "$SB" >/dev/null 2>&1 & PIDS+=($!)
RESELLGATE_LOG=warn "$BIN" serve --config "$DIR/config.toml" 2>"$DIR/gateway.log" & GWPID=$!; PIDS+=($GWPID)
until [ "$(curl -fsS "http://$AD/readyz" 2>/dev/null)" = ready ]; do
  kill -0 "$GWPID" 2>/dev/null || { echo "the gateway exited: $(tail -3 "$DIR/gateway.log")" >&2; exit 1; }
  sleep 0.05
done
until curl -fsS -o /dev/null "http://$SB/billmgr?func=whoami" 2>/dev/null; do sleep 0.05; done
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$GWPID/status"; }
IDLE=$(kib VmRSS)

STEP=$(( SERVICES / RESELLERS ))
wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s bench/memory.lua "http://$GW" -- "$ACTIVE" "$RESELLERS" "$STEP" \
  >"$DIR/wrk.out" 2>&1 & WRK=$!; PIDS+=($WRK)

# Login bursts: BURST resellers not seen before (from the top of the range down), at once.
NEXT=$RESELLERS; BURSTS=0; REFUSED=0
START=$(date +%s); LAST_BURST=0; LAST=$IDLE
while kill -0 "$WRK" 2>/dev/null; do
  sleep 1
  kill -0 "$GWPID" 2>/dev/null || { echo "FAIL: the gateway exited" >&2; exit 1; }
  LAST=$(kib VmRSS)
  NOW=$(date +%s)
  if [ $(( NOW - LAST_BURST )) -ge "$BURST_S" ] && [ "$NEXT" -gt "$(( ACTIVE + BURST ))" ]; then
    LAST_BURST=$NOW; BURSTS=$(( BURSTS + 1 ))
    LOGINS=()
    for _ in $(seq "$BURST"); do
      curl -sS "http://$GW/billmgr?func=auth&out=json&username=r$NEXT&password=bench-pw" >"$DIR/burst.$NEXT" & LOGINS+=($!)
      NEXT=$(( NEXT - 1 ))
    done
    wait "${LOGINS[@]}" || true
    REFUSED=$(( REFUSED + $(grep -L '"auth"' "$DIR"/burst.* 2>/dev/null | wc -l) )); rm -f "$DIR"/burst.*
  fi
done
wait "$WRK" || true
PEAK=$(kib VmHWM)
cat "$DIR/wrk.out" >&2
FAIL=0
grep -q "Non-2xx" "$DIR/wrk.out" && { echo "FAIL: non-200 answers" >&2; FAIL=1; }
echo "login bursts: $BURSTS of $BURST, $REFUSED logins without a session" >&2
awk -v i="$IDLE" -v p="$PEAK" -v l="$LAST" -v g="$GOAL_MIB" 'BEGIN {
  printf "RSS idle %.1f MiB, peak %.1f MiB, last %.1f MiB; goal %d MiB: peak/goal %.2f, last/goal %.2f\n",
    i / 1024, p / 1024, l / 1024, g, p / 1024 / g, l / 1024 / g }'
goal 4 "peak RSS MiB, store ${STORE:-sled}${CONFIG_EXTRA:+, $(tr '\n' ' ' <<<"$CONFIG_EXTRA" | sed 's/ *$//')}" \
  "$(awk -v p="$PEAK" 'BEGIN { printf "%.1f", p / 1024 }')" "<=" "$GOAL_MIB"
exit "$FAIL"
