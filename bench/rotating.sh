#!/usr/bin/env bash
# RS256 with a DIFFERENT token on every request (the verified-token cache is
# useless here): jwtgate vs haproxy-rs256, same machine, same wrk, rounds
# interleaved. Uses the kit prepared by bench/peers.sh (keys, nginx upstream).
#
#   bench/rotating.sh          env TOKENS=20000 ROUNDS=3 DURATION=10 CONNS=50
#                              ACCESS_LOG=off (default, as the peers) | on
# Prints medians of req/s and of the proxy's own CPU time per request (from
# /proc, user + system).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIT="${KIT:-/tmp/jwtgate-bench-peers}"
TOKENS=${TOKENS:-20000}; ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}; CONNS=${CONNS:-50}
[[ -f "$KIT/jwtgate/rs256.yaml" ]] || { echo "run bench/peers.sh rs256 first (it prepares $KIT)" >&2; exit 1; }
BIN="$ROOT/target/release/jwtgate"
LIST="$KIT/jwtgate/rotating-rs256.txt"
if [[ ! -f $LIST || $(wc -l < "$LIST") -lt $TOKENS ]]; then
  "$KIT/.venv/bin/python" - "$KIT/keys/rs256-private.pem" "$TOKENS" > "$LIST" <<'PY'
import sys, time, jwt
from cryptography.hazmat.primitives import serialization
# Parse the key once: PyJWT would re-parse a PEM string on every call.
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
exp = int(time.time()) + 86400
for i in range(int(sys.argv[2])):
    print(jwt.encode({"key": "user123", "exp": exp, "n": i}, key, algorithm="RS256"))
PY
fi
cat > "$KIT/jwtgate/rotate.lua" <<LUA
local tokens = {}
for line in io.lines("$LIST") do tokens[#tokens + 1] = line end
-- Start at a random place so the warm-up run does not pre-fill the cache
-- with the tokens the measured run sends first.
math.randomseed(os.time())
local i = math.random(#tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tokens[i] })
end
LUA
PIDS=()
stop() { for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap stop EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
run() { # name port cmd...
  local name=$1 port=$2; shift 2
  taskset -c 1 nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & PIDS+=($!)
  wait_port 18081
  # taskset and env exec: $! is the proxy itself.
  taskset -c 0 env BENCH="$KIT" "$@" >/dev/null 2>&1 & PIDS+=($!)
  local proxy=$!
  wait_port "$port"
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s -s "$KIT/jwtgate/rotate.lua" "http://127.0.0.1:$port/" >/dev/null
  local t0 t1; t0=$(cpu_ticks $proxy)
  local out; out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$KIT/jwtgate/rotate.lua" "http://127.0.0.1:$port/")
  t1=$(cpu_ticks $proxy)
  local rps p99 non2xx requests cpu_us
  rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
  requests=$(awk '/requests in/ {print $1}' <<< "$out")
  cpu_us=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  p99=$(awk '$1=="99%" {print $2}' <<< "$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$out"); non2xx=${non2xx:-0}
  stop
  [[ $non2xx == 0 ]] || { echo "$name: $non2xx non-2xx responses" >&2; exit 1; }
  echo "$name $rps $p99 $cpu_us"
}
# The proxy's own CPU time (user + system, clock ticks): the machine's noise
# moves it less than req/s.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
mkdir -p "$KIT/run"
# The peer logs nothing per request; by default neither does jwtgate here.
case ${ACCESS_LOG:-off} in
  off) JWTGATE_LOG=info,jwtgate::access=off ;;
  on)  JWTGATE_LOG=info ;;
  *)   echo "ACCESS_LOG must be on or off" >&2; exit 2 ;;
esac
for r in $(seq "$ROUNDS"); do
  run haproxy-rs256 18083 haproxy -db -f "$KIT/peers/haproxy-rs256.cfg"
  run jwtgate-rs256-rotating 18090 env JWTGATE_LOG="$JWTGATE_LOG" "$BIN" run --config "$KIT/jwtgate/rs256.yaml"
done | tee "$KIT/jwtgate/rotating.txt"
python3 - "$KIT/jwtgate/rotating.txt" <<'PY'
import statistics, sys
rows, cpu = {}, {}
for line in open(sys.argv[1]):
    name, rps, p99, cpu_us = line.split()
    rows.setdefault(name, []).append(float(rps))
    cpu.setdefault(name, []).append(float(cpu_us))
h, j = statistics.median(rows["haproxy-rs256"]), statistics.median(rows["jwtgate-rs256-rotating"])
hc, jc = statistics.median(cpu["haproxy-rs256"]), statistics.median(cpu["jwtgate-rs256-rotating"])
print(f"rotating RS256 tokens: jwtgate {j:.0f} req/s vs haproxy-rs256 {h:.0f} -> ratio {j/h:.2f}; "
      f"proxy CPU per request {jc:.1f} us vs {hc:.1f} us")
PY
