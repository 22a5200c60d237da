#!/usr/bin/env bash
# A flood of tokens with forged kids against a provider whose key set is
# fetched over HTTP from a key server that counts its requests: how many
# fetches the flood caused (SPEC §3.6: at most one per
# kid_miss_interval_seconds), how long it took, and the gateway's CPU time
# per refused request next to its CPU time per accepted one (same process,
# same connection count).
#
#   bench/kid-flood.sh          env N=10000 CONNS=20
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
N=${N:-10000}; CONNS=${CONNS:-20}
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
kit_prepare
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
write_config provider-rs256 >/dev/null
cp "$CONF/provider-rs256.jwks.json" "$WORK/jwks.json"

# The key server: serves the set, counts requests.
python3 - "$WORK" <<'PY' & PIDS+=($!)
import http.server, os, sys, threading
work = sys.argv[1]
body = open(os.path.join(work, "jwks.json"), "rb").read()
count = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        with lock:
            count += 1
            open(os.path.join(work, "fetches"), "w").write(str(count))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 18099), H)
s.serve_forever()
PY
cat > "$WORK/flood.yaml" <<YAML
listen: "127.0.0.1:18090"
store: { kind: embedded, path: $WORK/data }
providers:
  - name: bench-idp
    issuer: "https://idp.bench.test"
    jwks_uri: "http://127.0.0.1:18099/jwks.json"
    algorithms: [RS256]
    audiences: [bench]
    kid_miss_interval_seconds: 60
routes:
  - name: bench
    paths: ["/*"]
    upstream: { nodes: ["127.0.0.1:18081"] }
    jwt: { providers: [bench-idp] }
YAML
nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & PIDS+=($!)
JWTGATE_LOG=warn "$BIN" run --config "$WORK/flood.yaml" 2>"$WORK/gw.log" & GW=$!; PIDS+=($GW)
for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.05; done
sleep 1   # the first fetch
sign() { "$BIN" token sign --config "$CONF/provider-rs256.yaml" --provider bench-idp \
  --private-key "$KIT/keys/rs256-private.pem" --ttl 86400 --claim sub=u-1 "$@"; }
GOOD=$(sign --kid bench-1)
# One token signed with the real key; its kid is swapped per request below
# (the signature then no longer matters: the kid decides first).
cpu() { awk '{print $14 + $15}' "/proc/$GW/stat"; }   # utime + stime, in ticks
TICK=$(getconf CLK_TCK)
before_fetches=$(cat "$WORK/fetches")

load() { # kind -> seconds, prints to stderr
  python3 - "$1" "$N" "$CONNS" "$GOOD" <<'PY'
import asyncio, base64, json, sys, time, secrets
kind, n, conns, good = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
head, payload, sig = good.split(".")
def forged():
    h = {"alg": "RS256", "typ": "JWT", "kid": "forged-" + secrets.token_hex(8)}
    hb = base64.urlsafe_b64encode(json.dumps(h).encode()).rstrip(b"=").decode()
    return f"{hb}.{payload}.{sig}"
async def worker(count, codes):
    r, w = await asyncio.open_connection("127.0.0.1", 18090)
    for _ in range(count):
        token = forged() if kind == "forged" else good
        w.write(f"GET / HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        head = await r.readuntil(b"\r\n\r\n")
        code = head[9:12].decode()
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
        await r.readexactly(length)
        codes[code] = codes.get(code, 0) + 1
    w.close()
async def main():
    codes = {}
    t = time.time()
    await asyncio.gather(*(worker(n // conns, codes) for _ in range(conns)))
    print(f"{kind}: {sum(codes.values())} requests in {time.time() - t:.2f} s, answers {codes}", file=sys.stderr)
asyncio.run(main())
PY
}
c0=$(cpu); load forged; c1=$(cpu); load good; c2=$(cpu)
after_fetches=$(cat "$WORK/fetches")
echo "key-set fetches caused by $N forged kids: $((after_fetches - before_fetches)) (interval 60 s)"
python3 -c "
t=$TICK; n=$N
print(f'gateway CPU per request: forged kid {($c1-$c0)/t/n*1e6:.1f} us, accepted {($c2-$c1)/t/n*1e6:.1f} us')"
