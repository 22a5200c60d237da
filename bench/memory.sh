#!/usr/bin/env bash
# Memory and load time with a big config: CONSUMERS consumers (HS256),
# ROUTES routes with path rules, REVOKED revoked tokens in the blacklist and
# CUTOFFS subject cut-offs (seeded into a scratch redis-server with
# `redis-cli --pipe`, in the store's own layout).
# Prints the time from start to "listening", and VmRSS once it serves.
#
#   bench/memory.sh            env CONSUMERS=10000 ROUTES=1000 REVOKED=100000 CUTOFFS=0
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONSUMERS=${CONSUMERS:-10000}; ROUTES=${ROUTES:-1000}; REVOKED=${REVOKED:-100000}; CUTOFFS=${CUTOFFS:-0}
BIN=${BIN:-$ROOT/target/release/jwtgate}
[[ -x $BIN ]] || cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
WORK=$(mktemp -d); PORT=$((20000 + RANDOM % 20000))
trap 'kill $GW $REDIS 2>/dev/null || true; rm -rf "$WORK"' EXIT
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null & REDIS=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
python3 - "$REVOKED" "$CUTOFFS" <<'PY' | redis-cli -p "$PORT" --pipe >/dev/null
import hashlib, json, sys
def cmd(*a):
    out = [f"*{len(a)}\r\n"]
    for x in a:
        out.append(f"${len(x)}\r\n{x}\r\n")
    return "".join(out)
w = sys.stdout.write
for i in range(int(sys.argv[1])):
    w(cmd("ZADD", "{jwtgate}:revoked", "4000000000", hashlib.sha256(str(i).encode()).hexdigest()))
for i in range(int(sys.argv[2])):
    key = json.dumps(["c", f"consumer-{i % 1000}", "sub", f"u-{i}"], separators=(",", ":"))
    now = int(__import__("time").time())
    w(cmd("HSET", "{jwtgate}:subjects", key, f"{now}:{now + 30 * 86400}"))
PY
python3 - "$CONSUMERS" "$ROUTES" "$PORT" > "$WORK/big.yaml" <<'PY'
import sys
c, r, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print('listen: "127.0.0.1:0"')
print(f'store: {{ kind: redis, host: 127.0.0.1, port: {port} }}')
print("consumers:")
for i in range(c):
    print(f"  - username: consumer-{i}\n    jwt: {{ key: key-{i}, secret: secret-{i}-0123456789abcdef0123456789abcdef }}")
print("routes:")
for i in range(r):
    print(f'  - name: route-{i}\n    paths: ["/svc{i}/*"]\n    upstream: {{ echo: true }}')
    print(f'    jwt: {{ not_required_paths: ["GET_/svc{i}/public*", "ANY_/svc{i}/health"] }}')
PY
start=$(date +%s.%N)
"$BIN" run --config "$WORK/big.yaml" 2> "$WORK/log" & GW=$!
for _ in $(seq 600); do grep -q "listening on" "$WORK/log" && break; sleep 0.05; done
ready=$(date +%s.%N)
grep -q "listening on" "$WORK/log" || { cat "$WORK/log"; exit 1; }
loaded=$(grep -o 'revocations=[0-9]* cutoffs=[0-9]*' "$WORK/log" | head -1)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$GW/status")
awk -v c="$CONSUMERS" -v r="$ROUTES" -v n="$REVOKED" -v k="$CUTOFFS" -v l="$loaded" -v s="$start" -v e="$ready" -v m="$rss" \
  'BEGIN { printf "consumers=%s routes=%s revoked=%s cutoffs=%s (%s): start to listening %.2f s, VmRSS %.1f MiB\n", c, r, n, k, l, e - s, m / 1024 }'
