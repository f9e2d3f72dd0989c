#!/usr/bin/env bash
# Large price lists: time and peak RSS of the gateway rewriting a pricelist.export of 5,
# 50 and 64 MB (xml and json), against the same document fetched straight from the
# origin in the same run (the baseline). The origin is a static-file server that answers
# every POST with the prepared export. Run on purpose: `bash bench/large_export.sh`
# (SIZES="5 50 64" FORMATS="xml json" to choose).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"5 50 64"}
FORMATS=${FORMATS:-"xml json"}
BIN=target/release/resellgate
[ -x "$BIN" ] || cargo build --release --locked

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

OR=127.0.0.1:18620; GW=127.0.0.1:18520
# One export of SIZE MB: plans 3033 and 3040 (the demo reseller's) among many others.
python3 - "$DIR" $SIZES <<'PY'
import json, sys
d = sys.argv[1]
def plan(i, up):
    return (f"<pricelist><id>{up}</id><name>Plan {i}</name><name_ru>Тариф {i}</name_ru>"
            f"<description>Certificate plan number {i} with a longer description text</description>"
            f"<itemtype>27</itemtype><datacenter>1</datacenter><price currency=\"EUR\">"
            f"<period cost=\"{10 + i % 90}.0000\" type=\"month\" length=\"12\">1 year</period>"
            f"<period cost=\"{18 + i % 90}.0000\" type=\"month\" length=\"24\">2 years</period></price>"
            f"<addon><id>3034</id><intname>domainlimit</intname><addonlimit>250</addonlimit><measure>pcs.</measure>"
            f"<price currency=\"EUR\"><period cost=\"5.0000\" type=\"month\" length=\"12\">1 year</period></price></addon>"
            f"</pricelist>")
def jplan(i, up):
    return {"id": {"$": str(up)}, "name": {"$": f"Plan {i}"}, "name_ru": {"$": f"Тариф {i}"},
            "description": {"$": f"Certificate plan number {i} with a longer description text"},
            "itemtype": {"$": "27"}, "datacenter": {"$": "1"},
            "price": {"$currency": "EUR", "period": [
                {"$cost": f"{10 + i % 90}.0000", "$type": "month", "$length": "12", "$": "1 year"},
                {"$cost": f"{18 + i % 90}.0000", "$type": "month", "$length": "24", "$": "2 years"}]},
            "addon": {"id": {"$": "3034"}, "intname": {"$": "domainlimit"}, "addonlimit": {"$": "250"},
                      "measure": {"$": "pcs."}, "price": {"$currency": "EUR", "period": {"$cost": "5.0000", "$type": "month", "$length": "12", "$": "1 year"}}}}
for mb in sys.argv[2:]:
    target = int(mb) * 1_000_000
    parts, size, i = [], 0, 0
    while size < target:
        up = 3033 if i % 1000 == 0 else (3040 if i % 1000 == 1 else 100000 + i)
        p = plan(i, up); parts.append(p); size += len(p); i += 1
    open(f"{d}/export-{mb}.xml", "w").write('<?xml version="1.0" encoding="UTF-8"?>\n<doc lang="en" func="pricelist.export">' + "".join(parts) + "</doc>\n")
    plans = [jplan(k, 3033 if k % 1000 == 0 else (3040 if k % 1000 == 1 else 100000 + k)) for k in range(i)]
    open(f"{d}/export-{mb}.json", "w").write(json.dumps({"doc": {"$lang": "en", "pricelist": plans}}, ensure_ascii=False, separators=(",", ":")))
PY
cat > "$DIR/origin.py" <<'PY'
import http.server, sys, urllib.parse
d = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, q):
        fmt = "json" if urllib.parse.parse_qs(q).get("out", ["xml"])[0] in ("json", "sjson") else "xml"
        body = open(f"{d}/export-{open(d + '/size').read().strip()}.{fmt}", "rb").read()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0)); self.answer(self.rfile.read(n).decode())
    def do_GET(self):
        self.answer(urllib.parse.urlparse(self.path).query)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$DIR/origin.py" "${OR#*:}" "$DIR" & PIDS+=($!)
cat > "$DIR/config.toml" <<TOML
[server]
listen = "$GW"
[upstream]
url = "http://$OR/billmgr"
read_timeout_ms = 120000
[store]
path = "store"
TOML
export ACME_UP_PASSWORD=acme-upstream-pw GLOBEX_UP_PASSWORD=globex-upstream-pw
"$BIN" mappings apply --config "$DIR/config.toml" mappings/demo.toml >/dev/null
RESELLGATE_LOG=warn "$BIN" serve --config "$DIR/config.toml" 2>"$DIR/gateway.log" & GWPID=$!; PIDS+=($GWPID)
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/${1%:*}/${1#*:}) 2>/dev/null && return 0; sleep 0.1; done; echo "no listener on $1" >&2; exit 1; }
wait_port "$OR"; wait_port "$GW"
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/"$GWPID"/status; }
hwm() { awk '/VmHWM/ {print int($2/1024)}' /proc/"$GWPID"/status; }
echo "idle gateway RSS $(rss) MiB; $(nproc) cores" >&2
printf '%-6s %-5s %10s %10s %8s %12s %12s\n' size fmt bytes origin_s gw_s gw/origin peak_RSS_MiB
for mb in $SIZES; do
  echo "$mb" > "$DIR/size"
  for fmt in $FORMATS; do
    t0=$(date +%s.%N)
    curl -sS -o "$DIR/direct.out" "http://$OR/billmgr?func=pricelist.export&out=$fmt"
    t1=$(date +%s.%N)
    curl -sS -o "$DIR/gw.out" -d "func=pricelist.export&out=$fmt&authinfo=acme:acme-demo-pw" "http://$GW/billmgr"
    t2=$(date +%s.%N)
    grep -q '"error"\|<error' "$DIR/gw.out" && { echo "gateway answered an error: $(head -c 300 "$DIR/gw.out")" >&2; exit 1; }
    awk -v mb="$mb" -v f="$fmt" -v b="$(stat -c %s "$DIR/direct.out")" -v a="$t0" -v m="$t1" -v z="$t2" -v h="$(hwm)" \
      'BEGIN { printf "%-6s %-5s %10d %10.2f %8.2f %12.1f %12d\n", mb"MB", f, b, m-a, z-m, (z-m)/(m-a), h }'
  done
done
echo "peak RSS is the gateway's high-water mark since start (VmHWM), cumulative over the rows" >&2
