#!/usr/bin/env bash
# Goal 2 of issue 13: the gateway's own time on a price list (pricelist.export, 500 plans,
# xml and json) and a certificate list (200 rows; with pricelist_id, and by plan name only, each
# row then priced through its recorded service), two ways in one run:
#   in process — `resellgate bench-rewrite`: the answer read once (checked, rewritten, judged), timed per
#                answer (p50/p99/max, no network); the goal is p99 <= 1 ms (500 plans)
#                and <= 0.5 ms (200 rows);
#   end to end — wrk -c1 against a static-file origin serving the same documents, straight
#                (the baseline) and through the gateway (reseller `bench` with those 500
#                plans, applied with `mappings apply`); the difference of the latencies is
#                what the gateway adds, the ratio gateway/origin is printed.
# Run on purpose: `bash bench/rewrite.sh` (also called by `make bench`). Knobs: PLANS (500),
# ROWS (200), ITERATIONS (2000), DURATION (seconds per end-to-end path, 5).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/goal.sh
PLANS=${PLANS:-500}; ROWS=${ROWS:-200}; ITERATIONS=${ITERATIONS:-2000}; DURATION=${DURATION:-5}
BIN=${BIN:-target/release/resellgate}
[ -x "$BIN" ] || cargo build --release --locked
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

echo "== in process: resellgate bench-rewrite --plans $PLANS --rows $ROWS --iterations $ITERATIONS ($(nproc) cores)" >&2
TIMES=$("$BIN" bench-rewrite --plans "$PLANS" --rows "$ROWS" --iterations "$ITERATIONS")
column -t <<<"$TIMES"
# Goal 2 on the CPU p99 (the gateway's own time; wall time also counts waiting for a core).
while read -r case format _ _ _ _ _ cpu_p99; do
  case "$case" in
    pricelist.export_*) goal 2 "$case $format: CPU p99 us" "$cpu_p99" "<=" 1000 ;;
    certificate_*) goal 2 "$case $format: CPU p99 us" "$cpu_p99" "<=" 500 ;;
  esac
done <<<"$TIMES"

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
OR=127.0.0.1:28630; GW=127.0.0.1:28530
HASH=$(printf 'bench-pw' | "$BIN" hash-password)
"$BIN" bench-rewrite --plans "$PLANS" --rows "$ROWS" --write "$DIR" "$HASH"
# The origin: every answer from memory, chosen by func and out (query or form body).
cat > "$DIR/origin.py" <<'PY'
import http.server, sys, urllib.parse
d = sys.argv[2]
docs = {(f, o): open(f"{d}/{f}.{o}", "rb").read() for f in ("pricelist.export", "certificate") for o in ("xml", "json")}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, q):
        p = urllib.parse.parse_qs(q)
        out = "json" if p.get("out", ["xml"])[0] in ("json", "sjson") else "xml"
        body = docs[(p.get("func", ["pricelist.export"])[0], out)]
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0)); self.answer(self.rfile.read(n).decode())
    def do_GET(self):
        self.answer(urllib.parse.urlparse(self.path).query)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$DIR/origin.py" "${OR#*:}" "$DIR" 2>/dev/null & PIDS+=($!)
cat > "$DIR/config.toml" <<TOML
[server]
listen = "$GW"
[upstream]
url = "http://$OR/billmgr"
[store]
path = "store"
TOML
export BENCH_UP_PASSWORD=bench-upstream-pw
"$BIN" mappings apply --config "$DIR/config.toml" "$DIR/mappings.toml" >/dev/null
RESELLGATE_LOG=warn "$BIN" serve --config "$DIR/config.toml" 2>"$DIR/gateway.log" & PIDS+=($!)
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0; sleep 0.1; done; echo "no listener on $1" >&2; exit 1; }
wait_port "$OR"; wait_port "$GW"

ms() { # wrk latency (e.g. 812.00us, 1.20ms) -> ms
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 } else { sub(/s$/, "", v); print v * 1000 } }'
}
lat() { # url -> "p50_ms p99_ms"
  local out
  out=$(wrk -t1 -c1 -d"${DURATION}s" --latency "$1")
  echo "$(ms "$(awk '$1=="50%" {print $2}' <<<"$out")") $(ms "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
echo "== end to end: wrk -t1 -c1 -d${DURATION}s, origin straight vs through the gateway" >&2
printf '%-18s %-5s %9s %9s %9s %9s %11s %11s\n' case fmt origin_p50 origin_p99 gw_p50 gw_p99 added_p50 added_p99
for func in pricelist.export certificate; do
  for fmt in xml json; do
    q="func=$func&out=$fmt"
    if curl -sS "http://$GW/billmgr?$q&authinfo=bench:bench-pw" | grep -q '<error\|"error"'; then
      echo "the gateway answered an error for $q" >&2; exit 1
    fi
    read -r o50 o99 <<<"$(lat "http://$OR/billmgr?$q")"
    read -r g50 g99 <<<"$(lat "http://$GW/billmgr?$q&authinfo=bench:bench-pw")"
    awk -v c="$func" -v f="$fmt" -v o50="$o50" -v o99="$o99" -v g50="$g50" -v g99="$g99" \
      'BEGIN { printf "%-18s %-5s %8.2fms %8.2fms %8.2fms %8.2fms %10.2fms %10.2fms   gw/origin p50 %.2f\n", c, f, o50, o99, g50, g99, g50-o50, g99-o99, g50/o50 }'
  done
done
echo "added = gateway minus origin at the same percentile (authentication, forwarding, checking, rewriting)" >&2
