#!/usr/bin/env bash
# jwtgate against itself, rounds interleaved, for the targets that compare two
# jwtgate runs rather than jwtgate and a peer:
#
#   blacklist   HS256 with the logout blacklist enabled (use_jwt_blacklist_revoking,
#               a logout path; revoked tokens loaded: 100 000 in Redis, 2 000 in
#               the embedded store) against the same route with it disabled
#   badsig      a token with a bad signature (401) against a good one (200),
#               HS256 and RS256: refusing must cost no more than accepting
#
#   bench/pairs.sh [blacklist|badsig ...]   env ROUNDS=3 DURATION=8 CONNS=50
#
# Same layout as ../shared/bench-peers: jwtgate pinned to CPU 0, wrk and the
# nginx upstream on CPU 1. Besides req/s it reports the gateway's own CPU time
# per request (user+system, from /proc), which the machine's noise moves less.
# Uses the kit prepared by bench/peers.sh (keys, tokens, nginx upstream).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KIT="${KIT:-/tmp/jwtgate-bench-peers}"
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-8}; CONNS=${CONNS:-50}
SETS=("$@"); [[ ${#SETS[@]} -gt 0 ]] || SETS=(blacklist badsig)
[[ -f "$KIT/jwtgate/hs256.yaml" ]] || { echo "run bench/peers.sh hs256 rs256 first (it prepares $KIT)" >&2; exit 1; }
BIN="$ROOT/target/release/jwtgate"
CONF="$KIT/jwtgate"
TCK=$(getconf CLK_TCK)
REDIS_PORT=18379

PIDS=()
stop() { for p in "${PIDS[@]:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap 'stop; [[ -n ${REDIS_PID:-} ]] && kill $REDIS_PID 2>/dev/null || true' EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# The hs256 config with the blacklist enabled on its route, on a given store.
blacklist_config() { # store-line -> yaml
  sed -e "s|^store:.*|$1|" -e 's|^    jwt: {}|    jwt: { use_jwt_blacklist_revoking: true, logout_path: "POST_/logout" }|' \
    "$CONF/hs256.yaml"
}

# Revoked tokens in the Redis store: 100 000 digests written straight in
# (as bench/memory.sh does), which every node loads into its blacklist.
preload_redis() {
  python3 - 100000 <<'PY' | redis-cli -p $REDIS_PORT --pipe >/dev/null
import hashlib, sys
def cmd(*a):
    return f"*{len(a)}\r\n" + "".join(f"${len(x)}\r\n{x}\r\n" for x in a)
for i in range(int(sys.argv[1])):
    sys.stdout.write(cmd("ZADD", "{jwtgate}:revoked", "4000000000", hashlib.sha256(str(i).encode()).hexdigest()))
PY
}

# Revoked tokens in the embedded store, through jwtgate's admin API (each one
# is a durable commit, so 2 000 rather than 100 000; the in-memory blacklist
# every request probes is the same structure for both stores).
preload_embedded() { # config
  local cfg=$1 admin=18099
  { cat "$cfg"; printf 'admin:\n  listen: "127.0.0.1:%s"\n  api_key: bench\n' $admin; } > "$cfg.admin"
  "$BIN" run --config "$cfg.admin" >/dev/null 2>&1 & PIDS+=($!)
  wait_port $admin
  "$KIT/.venv/bin/python" - $admin 2000 <<'PY'
import http.client, json, sys, time, jwt
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
exp = int(time.time()) + 86400
for i in range(int(sys.argv[2])):
    token = jwt.encode({"key": "revoked", "exp": exp, "n": i}, "x" * 32, algorithm="HS256")
    conn.request("POST", "/admin/v1/revocations", json.dumps({"token": token}),
                 {"X-API-KEY": "bench", "Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    if r.status >= 300:
        sys.exit(f"revocation {i}: {r.status}")
PY
  stop
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # name token-file config
  local name=$1 token; token=$(cat "$2")
  taskset -c 1 nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & PIDS+=($!)
  wait_port 18081
  taskset -c 0 "$BIN" run --config "$3" >/dev/null 2>&1 & local gw=$!; PIDS+=($gw)
  wait_port 18090
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "Authorization: Bearer $token" http://127.0.0.1:18090/ >/dev/null
  local t0 t1 out; t0=$(cpu_ticks $gw)
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $token" http://127.0.0.1:18090/)
  t1=$(cpu_ticks $gw)
  stop
  awk -v name="$name" -v ticks=$((t1 - t0)) -v tck="$TCK" '
    /Requests\/sec/ {rps=$2} /requests in/ {n=$1} $1=="99%" {p99=$2}
    /Non-2xx/ {bad=$NF}
    END {printf "%s %s %s %.2f %d\n", name, rps, p99, ticks / tck / n * 1e6, bad}' <<< "$out"
}

report() { # file
  python3 - "$1" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, cpu, bad = line.split()
    rows.setdefault(name, []).append((float(rps), p99, float(cpu), int(bad)))
names = list(rows)
base = names[0]
med = lambda name, i: statistics.median(r[i] for r in rows[name])
print(f"| row | req/s (median) | proxy CPU µs/req | non-2xx | × {base} req/s | × {base} CPU/req |")
print("|---|---:|---:|---:|---:|---:|")
for n in names:
    print(f"| {n} | {med(n,0):.0f} | {med(n,2):.1f} | {sum(r[3] for r in rows[n])} | "
          f"{med(n,0)/med(base,0):.2f} | {med(n,2)/med(base,2):.2f} |")
PY
}

mkdir -p "$KIT/run"
for set in "${SETS[@]}"; do
  out="$KIT/results/pairs-$set-$(date -u +%Y%m%dT%H%M%SZ).txt"; mkdir -p "$(dirname "$out")"
  case $set in
    blacklist)
      blacklist_config "store: { kind: embedded, path: $CONF/data-blacklist }" > "$CONF/hs256-blacklist.yaml"
      taskset -c 1 redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null & REDIS_PID=$!
      wait_port $REDIS_PORT
      blacklist_config "store: { kind: redis, host: 127.0.0.1, port: $REDIS_PORT }" > "$CONF/hs256-blacklist-redis.yaml"
      "$BIN" check --config "$CONF/hs256-blacklist.yaml" >/dev/null
      "$BIN" check --config "$CONF/hs256-blacklist-redis.yaml" >/dev/null
      rm -rf "$CONF/data-blacklist"
      preload_embedded "$CONF/hs256-blacklist.yaml"
      preload_redis
      for _ in $(seq "$ROUNDS"); do
        measure blacklist-off "$KIT/tokens/hs256.valid.jwt" "$CONF/hs256.yaml"
        measure blacklist-embedded "$KIT/tokens/hs256.valid.jwt" "$CONF/hs256-blacklist.yaml"
        measure blacklist-redis "$KIT/tokens/hs256.valid.jwt" "$CONF/hs256-blacklist-redis.yaml"
      done | tee "$out"
      kill $REDIS_PID; wait $REDIS_PID 2>/dev/null || true; REDIS_PID=""
      ;;
    badsig)
      for _ in $(seq "$ROUNDS"); do
        measure hs256-good "$KIT/tokens/hs256.valid.jwt" "$CONF/hs256.yaml"
        measure hs256-badsig "$KIT/tokens/hs256.badsig.jwt" "$CONF/hs256.yaml"
        measure rs256-good "$KIT/tokens/rs256.valid.jwt" "$CONF/rs256.yaml"
        measure rs256-badsig "$KIT/tokens/rs256.badsig.jwt" "$CONF/rs256.yaml"
      done | tee "$out"
      ;;
    *) echo "unknown set: $set" >&2; exit 2 ;;
  esac
  echo "## $set ($ROUNDS rounds, ${DURATION}s each, $CONNS connections)"
  report "$out"
done
