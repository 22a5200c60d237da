#!/usr/bin/env bash
# Memory per idle keep-alive client connection, jwtgate against HAProxy,
# plain HTTP and TLS 1.3: each proxy's resident set size before and after
# N connections that each made one authenticated request and then stay
# open, idle (within both proxies' 30 s keep-alive timeout). Two figures
# each: RSS gained over all N connections, divided by N (what the load's
# burst leaves behind included), and RSS gained from the first N/5 to N,
# divided by the connections added (what one more idle connection costs).
#
#   bench/idle.sh            env N=10000
#
# HAProxy runs the kit's HS256 configs (copies with maxconn raised to fit N);
# jwtgate the bench HS256 config, access log off.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
N=${N:-10000}
# Each process holds N connections plus its own files; HAProxy sizes its
# file limit from maxconn (N + 100) as about twice that, and refuses to
# start above the hard limit (20 000 here: N=9500 fits).
need=$((2 * (N + 100) + 300)); hard=$(ulimit -Hn)
[[ $hard == unlimited || $hard -ge $need ]] || {
  echo "idle: N=$N needs $need open files (HAProxy: twice maxconn), the hard limit is $hard" >&2; exit 1; }
ulimit -n "$need"
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
kit_prepare
TOKEN=$(cat "$KIT/tokens/hs256.valid.jwt")
mkdir -p "$KIT/run"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & PIDS+=($!)

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# A proxy left from an interrupted run would share the port (SO_REUSEPORT)
# and take part of the connections: refuse to measure then.
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null || { echo "port $1 is already in use" >&2; exit 1; }; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; echo "port $1 not open" >&2; exit 1; }

# The client: N connections, each one authenticated request, then held
# open; with a pid, RSS read at N/5 and at N (see the header).
read -r -d '' CLIENT <<'PY' || true
import asyncio, ssl, sys, time
port, token, tls, n, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
pid = sys.argv[6] if len(sys.argv) > 6 else None
ctx = ssl.create_default_context(cafile=ca) if tls else None
req = f"GET / HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
async def one(sem, conns):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                             server_hostname="localhost" if tls else None)
        w.write(req)
        head = await r.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:80]
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
        await r.readexactly(length)
        conns.append(w)
def rss():
    return next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS"))
async def main():
    sem, conns = asyncio.Semaphore(200), []
    first = n // 5 if pid else n
    await asyncio.gather(*(one(sem, conns) for _ in range(first)))
    if pid:
        await asyncio.sleep(2)  # let the proxy settle
        at_first = rss()
        await asyncio.gather(*(one(sem, conns) for _ in range(n - first)))
        await asyncio.sleep(2)
        open("/tmp/jwtgate-idle-rss", "w").write(f"{first} {at_first} {rss()}\n")
    for w in conns:
        w.close()
asyncio.run(main())
PY

measure() { # name pid port tls
  local name=$1 pid=$2 port=$3 tls=$4 before after first at_first
  wait_port "$port"
  # One request first: what the proxy sets up once (its upstream pool, TLS
  # state) is not counted per connection.
  python3 -c "$CLIENT" "$port" "$TOKEN" "$tls" 1 "$KIT/keys/tls-ecdsa.crt" >/dev/null
  before=$(rss_kib "$pid")
  python3 -c "$CLIENT" "$port" "$TOKEN" "$tls" "$N" "$KIT/keys/tls-ecdsa.crt" "$pid"
  read -r first at_first after < /tmp/jwtgate-idle-rss
  echo "$name: RSS $before KiB -> $after KiB with $N idle connections: $(( (after - before) * 1024 / N )) bytes per connection;" \
    "$at_first KiB at $first: $(( (after - at_first) * 1024 / (N - first) )) bytes per further connection"
}

for tls in 0 1; do
  cfg="$KIT/run/haproxy-idle-$tls.cfg"
  src=peers/haproxy-hs256.cfg; port=18082
  [[ $tls == 1 ]] && src=peers/haproxy-tls-hs256.cfg && port=18442
  sed -e "s/maxconn 4096/maxconn $((N + 100))/" "$KIT/$src" > "$cfg"
  port_free "$port"; port_free 18090
  (cd "$KIT" && BENCH="$KIT" haproxy -db -f "$cfg" >/dev/null 2>&1) & hp=$!; PIDS+=($hp)
  sleep 0.5
  hpid=$(pgrep -f "haproxy -db -f $cfg" | head -1); PIDS+=($hpid)  # the subshell's kill would not reach it
  measure "haproxy$([[ $tls == 1 ]] && echo -tls)" "$hpid" "$port" "$tls"
  kill "$hpid" 2>/dev/null || true

  config=$(write_config hs256 $([[ $tls == 1 ]] && echo tls))
  JWTGATE_LOG=info,jwtgate::access=off "$BIN" run --config "$config" 2>/dev/null & jp=$!; PIDS+=($jp)
  measure "jwtgate$([[ $tls == 1 ]] && echo -tls)" "$jp" 18090 "$tls"
  kill "$jp"; wait "$jp" 2>/dev/null || true
done
