#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: stable on this
# noisy shared machine where req/s swing by 2x between runs. Runs jwtgate
# under valgrind against the kit's nginx upstream, sends N keep-alive
# requests on one connection, and subtracts a zero-request run (start/stop).
#
#   bench/callgrind.sh [MODE] [N]      MODE: hs256 (default) | rs256 | plain | hs256-blacklist (written by bench/pairs.sh blacklist); N=2000
#   env KEEP=DIR keeps the loaded run's profile in DIR, to compare two modes
#   by function, e.g. the connection tasks' share (startup excluded):
#     callgrind_annotate --inclusive=yes DIR/cg.* | grep 'accept_loop::{{closure}}::{{closure}} '
# Needs the kit prepared by bench/peers.sh, valgrind and python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIT="${KIT:-/tmp/jwtgate-bench-peers}"
MODE=${1:-hs256}; N=${2:-2000}
BIN=${BIN:-$ROOT/target/release/jwtgate}
[[ -f "$KIT/jwtgate/$MODE.yaml" ]] || { echo "run bench/peers.sh $MODE first (it prepares $KIT)" >&2; exit 1; }
alg=hs256; [[ $MODE == rs256 ]] && alg=rs256
TOKEN=$(cat "$KIT/tokens/$alg.valid.jwt")
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT

instructions() { # requests -> total instructions of one gateway run
  local n=$1 gw ng
  nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & ng=$!
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$n.%p" "$BIN" run --config "$KIT/jwtgate/$MODE.yaml" \
    > "$OUT/gw.$n.log" 2>&1 & gw=$!
  for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.1; done
  python3 - "$n" "$TOKEN" <<'PY'
import socket, sys
n, token = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", 18090))
req = f"GET / HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            length = next(int(l.split(":")[1]) for l in head.split("\r\n") if l.lower().startswith("content-length"))
            if len(buf) >= end + 4 + length:
                assert head.startswith("HTTP/1.1 200"), head
                buf = buf[end + 4 + length:]
                break
        buf += s.recv(65536)
PY
  kill -TERM "$gw"; wait "$gw" || true; kill "$ng"; wait "$ng" 2>/dev/null || true
  callgrind_annotate "$OUT"/cg.$n.* | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}'
}
zero=$(instructions 0)
loaded=$(instructions "$N")
if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP"; cp "$OUT"/cg."$N".* "$KEEP"/; fi
echo "$MODE: $(( (loaded - zero) / N )) instructions per request ($N requests; start/stop $zero)"
