#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: stable on this
# noisy shared machine where req/s swing by 2x between runs. Runs jwtgate
# under valgrind against the kit's nginx upstream twice, with N/5 and with
# N requests, and divides the difference by the difference in requests:
# start, stop and whatever happens once (a store loading 100 000 entries in
# the background, the TLS library's first use) cancel out.
#
#   bench/callgrind.sh [MODE] [N] [CLIENT]
#     MODE   (bench/lib.sh): hs256 (default) | rs256 | plain | provider-rs256 |
#            hs256-authorize10 | hs256-redis | hs256-cutoffs (hs256-redis with
#            CUTOFFS subject cut-offs in Redis, default 100000)
#     N      requests, default 2000
#     CLIENT http (default: HTTP/1.1 keep-alive, one connection) | tls (the
#            same over TLS 1.3) | handshake (a new TLS connection, full
#            handshake, per request) | h2 (HTTP/2 over TLS, one connection,
#            h2load)
#   env KEEP=DIR keeps the loaded run's profile in DIR, to compare two modes
#   by function, e.g. the connection tasks' share (startup excluded):
#     callgrind_annotate --inclusive=yes DIR/cg.* | grep 'accept_loop::{{closure}}::{{closure}} '
#   env BIN=path/to/jwtgate (default target/release/jwtgate, built by the caller)
#   env ACCESS_LOG=on (default, as users run it) | off
#   env ADMIN=off (default) | on: the admin API, and with it the per-request
#       metrics (bench/lib.sh)
#   env H2_STREAMS=M (CLIENT h2): streams in flight on the one connection,
#       default 1 (each request alone); the kit's h2 rows run 10 a connection
#   env CUTOFF_OWNER=decoys (hs256-cutoffs, default: the cut-offs name 50
#       other consumers) | own (they name the request's own consumer, other
#       subjects: the claims are read and looked up on every request)
#   env TOKEN_KIND=forged-kid (provider modes: a kid the key set lacks, a
#       new one per request; the answers are then 401, as expected) |
#       fresh (provider-rs256: a new valid token per request, so each one
#       is parsed and its signature checked: no verified-token cache hit)
# Needs valgrind, python3, and for h2 h2load (the kit's setup installs it).
set -euo pipefail
shopt -s inherit_errexit   # a failed request in instructions() fails the run
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
MODE=${1:-hs256}; N=${2:-2000}; CLIENT=${3:-http}
kit_prepare
TLS=""; [[ $CLIENT != http ]] && TLS=tls
CONFIG=$(write_config "$MODE" $TLS)
TOKEN=$(token_for "$MODE" "${TOKEN_KIND:-}")
EXPECT=200; [[ ${TOKEN_KIND:-} == forged-kid ]] && EXPECT=401
TOKENS="$CONF/tokens-${TOKEN_KIND:-none}.txt"; rm -f "$TOKENS"
if [[ ${TOKEN_KIND:-} == forged-kid || ${TOKEN_KIND:-} == fresh ]]; then
  [[ $MODE == provider-rs256 ]] || { echo "TOKEN_KIND needs MODE provider-rs256" >&2; exit 2; }
  "$KIT/.venv/bin/python" - "$N" "$KIT/keys/rs256-private.pem" "${TOKEN_KIND}" > "$TOKENS" <<'PY'
import sys, time, jwt
n, key, kind = int(sys.argv[1]), open(sys.argv[2]).read(), sys.argv[3]
now = int(time.time())
for i in range(n):
    kid = "bench-1" if kind == "fresh" else f"forged-{i}"
    print(jwt.encode({"iss": "https://idp.bench.test", "aud": "bench", "sub": "u-1", "jti": f"t{i}",
                      "iat": now, "exp": now + 86400}, key, algorithm="RS256", headers={"kid": kid}))
PY
fi
OUT=$(mktemp -d)
REDIS_PID=""
cleanup() { [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT

if [[ $MODE == hs256-redis || $MODE == hs256-cutoffs ]]; then
  redis-server --port 18379 --bind 127.0.0.1 --save "" --appendonly no >/dev/null & REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p 18379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p 18379 flushall >/dev/null
  if [[ $MODE == hs256-cutoffs ]]; then
    # The store's own layout (crates/jwtgate-store: hash {name}:subjects,
    # field = the subject key as a JSON array, value = not_before:expires_at).
    python3 - "${CUTOFFS:-100000}" "${CUTOFF_OWNER:-decoys}" <<'PY' | redis-cli -p 18379 --pipe >/dev/null
import json, sys, time
n, owners, now = int(sys.argv[1]), sys.argv[2], int(time.time())
def cmd(*args):
    out = f"*{len(args)}\r\n"
    for a in args:
        b = str(a).encode()
        out += f"${len(b)}\r\n{b.decode()}\r\n"
    sys.stdout.write(out)
for i in range(n):
    owner = "user123" if owners == "own" else f"decoy-{i % 50}"
    key = json.dumps(["c", owner, "sub", f"u-{i}"], separators=(",", ":"))
    cmd("HSET", "{jwtgate}:subjects", key, f"{now - 60}:{now + 86400}")
PY
    echo "$(redis-cli -p 18379 hlen '{jwtgate}:subjects') cut-offs in Redis"
  fi
fi

instructions() { # requests -> total instructions of one gateway run
  local n=$1 gw ng
  nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & ng=$!
  local log=info; [[ ${ACCESS_LOG:-on} == off ]] && log=info,jwtgate::access=off
  env JWTGATE_LOG=$log \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$n.%p" "$BIN" run --config "$CONFIG" \
    > "$OUT/gw.$n.log" 2>&1 & gw=$!
  for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.1; done
  if ((n > 0)); then
    if [[ $CLIENT == h2 ]]; then
      h2load -n "$n" -c 1 -m "${H2_STREAMS:-1}" -H "authorization: Bearer $TOKEN" https://127.0.0.1:18090/ \
        > "$OUT/h2load.$n.txt"
      grep -q "succeeded, 0 failed" "$OUT/h2load.$n.txt" && grep -q "${n} succeeded" "$OUT/h2load.$n.txt" \
        || { cat "$OUT/h2load.$n.txt" >&2; exit 1; }
      grep -q "h2" "$OUT/h2load.$n.txt" || { echo "h2load did not speak h2" >&2; exit 1; }
    else
      python3 - "$n" "$TOKEN" "$CLIENT" "$KIT/keys/tls-ecdsa.crt" "$EXPECT" "$TOKENS" <<'PY'
import os, socket, ssl, sys
n, token, client, ca, expect, tokens = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
tokens = open(tokens).read().split() if os.path.exists(tokens) else [token]
ctx = None
if client != "http":
    ctx = ssl.create_default_context(cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
def connect():
    s = socket.create_connection(("127.0.0.1", 18090))
    if ctx is None:
        return s
    return ctx.wrap_socket(s, server_hostname="localhost")
close = client == "handshake"
reqs = [(f"GET / HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {t}\r\n"
         + ("Connection: close\r\n" if close else "") + "\r\n").encode() for t in tokens]
s = connect()
buf = b""
for i in range(n):
    if close and i > 0:
        s.close(); s = connect(); buf = b""
    s.sendall(reqs[i % len(reqs)])
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            length = next(int(l.split(":")[1]) for l in head.split("\r\n") if l.lower().startswith("content-length"))
            if len(buf) >= end + 4 + length:
                assert head.startswith("HTTP/1.1 " + expect), head
                buf = buf[end + 4 + length:]
                break
        data = s.recv(65536)
        assert data, "connection closed early"
        buf += data
if close and not ctx is None:
    assert not s.session_reused, "a handshake was resumed"
s.close()
PY
    fi
  fi
  kill -TERM "$gw" || { echo "the gateway died:" >&2; cat "$OUT/gw.$n.log" >&2; exit 1; }
  wait "$gw" || true; kill "$ng"; wait "$ng" 2>/dev/null || true
  callgrind_annotate "$OUT"/cg.$n.* | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}
FEW=$((N / 5))
few=$(instructions "$FEW")
loaded=$(instructions "$N")
if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP"; cp "$OUT"/cg."$N".* "$KEEP"/; fi
echo "$MODE/$CLIENT: $(( (loaded - few) / (N - FEW) )) instructions per request ($N and $FEW requests; the run with $FEW: $few)"
