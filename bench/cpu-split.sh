#!/usr/bin/env bash
# Where a request's CPU goes, jwtgate against HAProxy under the same load:
# the proxy's own time in user space and in the kernel (its system calls,
# and the loopback TCP stack they run, the receiving side's included), the
# upstream's (the kit's nginx), the load generator's, and what was left
# idle. The ratio a row can reach follows from it: a proxy whose kernel
# time is the same as the peer's can only win on its user-space time.
#
#   bench/cpu-split.sh [ROW ...]        env ROUNDS=3 DURATION=8
#     twocores  the two-core row: wrk -t1 -c50, HS256, nothing pinned;
#               HAProxy with nbthread 2, jwtgate one worker per core
#     tls       TLS 1.3 keep-alive, HS256: proxy on CPU 0, wrk and the
#               upstream on CPU 1 (the kit's pinned layout)
#     h2        HTTP/2 over TLS, HS256, h2load -c10 -m10, pinned the same way
#     onecore   plain HTTP, no auth, pinned the same way (wrk -t1 -c50):
#               jwtgate with its access log on, as the kit's one-core
#               no-auth row runs it, against haproxy-plain
#
# Per request, in µs of CPU (median of the rounds, jwtgate and HAProxy
# alternating): proxy user / kernel (utime / stime of every thread, from
# /proc), upstream (its workers), client, and idle (all CPUs' idle time; in
# the pinned rows also per CPU, in %). Taken over the middle of each run
# (0.5 s after the load starts to 0.5 s before it ends) at the run's mean
# rate. TLS clients run with the kit's shim, as its rows do.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-8}
ROWS=("$@"); [[ ${#ROWS[@]} -gt 0 ]] || ROWS=(twocores tls h2)
for row in "${ROWS[@]}"; do
  [[ $row =~ ^(twocores|tls|h2|onecore)$ ]] || { echo "unknown row $row" >&2; exit 2; }
done
((DURATION >= 3)) || { echo "DURATION must be at least 3 (seconds)" >&2; exit 2; }
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
kit_prepare
export BENCH="$KIT"
TOKEN=$(cat "$KIT/tokens/hs256.valid.jwt")
SHIM="$KIT/lib/tls_client_shim.so"
CIPHERS="TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
HAPROXY_TWO=$(haproxy_two_threads split-haproxy-hs256)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

ticks() { # PID... -> utime stime (clock ticks) summed over the processes and their children
  local p sum_u=0 sum_s=0 line rest f c
  for p in "$@"; do
    for c in "$p" $(pgrep -P "$p" || true); do
      read -r line < "/proc/$c/stat" || continue
      rest=${line##*) }; read -r -a f <<< "$rest"
      sum_u=$((sum_u + f[11])); sum_s=$((sum_s + f[12]))
    done
  done
  echo "$sum_u $sum_s"
}
idle() { # -> idle ticks of all CPUs, of cpu0, of cpu1 and total ticks of cpu0, cpu1
  awk '$1 == "cpu" {a = $5 + $6} $1 == "cpu0" {i0 = $5 + $6; t0 = 0; for (k = 2; k <= 9; k++) t0 += $k}
       $1 == "cpu1" {i1 = $5 + $6; t1 = 0; for (k = 2; k <= 9; k++) t1 += $k}
       END {print a, i0, i1, t0, t1}' /proc/stat
}
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
  echo "nothing listens on $1" >&2; exit 1; }

# One run: ROW PROXY -> "rps proxy_user proxy_sys upstream client idle idle0% idle1%"
run_one() {
  local row=$1 proxy=$2 pin_proxy=() pin_load=() config port proxy_pid ng client_cmd=() out
  if [[ $row != twocores ]]; then pin_proxy=(taskset -c 0); pin_load=(taskset -c 1); fi
  "${pin_load[@]}" nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & ng=$!; PIDS+=("$ng")
  case $proxy in
    jwtgate)
      local log=info,jwtgate::access=off
      case $row in
        twocores) config=$(write_config hs256) ;;
        onecore) config=$(write_config plain); log=info ;;
        *) config=$(write_config hs256 tls) ;;
      esac
      "${pin_proxy[@]}" env JWTGATE_LOG=$log "$BIN" run --config "$config" \
        > "$KIT/run/split-jwtgate.log" 2>&1 & proxy_pid=$!; port=18090 ;;
    haproxy)
      case $row in
        twocores) config=$HAPROXY_TWO; port=18082 ;;
        tls) config="$KIT/peers/haproxy-tls-hs256.cfg"; port=18442 ;;
        h2) config="$KIT/peers/haproxy-h2-hs256.cfg"; port=18446 ;;
        onecore) config="$KIT/peers/haproxy-plain.cfg"; port=18084 ;;
      esac
      "${pin_proxy[@]}" haproxy -db -f "$config" > "$KIT/run/split-haproxy.log" 2>&1 & proxy_pid=$! ;;
  esac
  PIDS+=("$proxy_pid")
  wait_port 18081; wait_port "$port"
  local scheme=https; [[ $row == twocores || $row == onecore ]] && scheme=http
  local url="$scheme://127.0.0.1:$port/"
  if [[ $row == h2 ]]; then
    client_cmd=("${pin_load[@]}" env LD_PRELOAD="$SHIM" h2load -t1 -c10 -m10 --tls13-ciphers="$CIPHERS"
      -H "Authorization: Bearer $TOKEN")
    "${client_cmd[@]}" -D 2 "$url" > /dev/null 2>&1
    "${client_cmd[@]}" -D "$DURATION" "$url" > "$KIT/run/split-client.out" 2>&1 &
  else
    client_cmd=("${pin_load[@]}")
    [[ $row == tls ]] && client_cmd+=(env LD_PRELOAD="$SHIM")
    client_cmd+=(wrk -t1 -c50 -H "Authorization: Bearer $TOKEN")
    "${client_cmd[@]}" -d2s "$url" > /dev/null
    "${client_cmd[@]}" -d"${DURATION}s" "$url" > "$KIT/run/split-client.out" 2>&1 &
  fi
  local cl=$!   # taskset and env exec: this is the client's own PID
  sleep 0.5
  local p1 n1 c1 i1 p2 n2 c2 i2 t0 t1
  p1=$(ticks "$proxy_pid"); n1=$(ticks "$ng"); c1=$(ticks "$cl"); i1=$(idle); t0=$(date +%s.%N)
  sleep $((DURATION - 1))
  p2=$(ticks "$proxy_pid"); n2=$(ticks "$ng"); c2=$(ticks "$cl"); i2=$(idle); t1=$(date +%s.%N)
  wait "$cl"
  kill "$proxy_pid" "$ng"; wait "$proxy_pid" "$ng" 2>/dev/null || true
  local rps
  if [[ $row == h2 ]]; then
    rps=$(awk '/^finished in/ {print $4}' "$KIT/run/split-client.out")
    grep -q " 0 failed" "$KIT/run/split-client.out" || { cat "$KIT/run/split-client.out" >&2; exit 1; }
  else
    rps=$(awk '/Requests\/sec/ {print $2}' "$KIT/run/split-client.out")
    ! grep -q "Non-2xx" "$KIT/run/split-client.out" || { cat "$KIT/run/split-client.out" >&2; exit 1; }
  fi
  python3 - "$rps" "$t0" "$t1" "$(getconf CLK_TCK)" "$p1" "$p2" "$n1" "$n2" "$c1" "$c2" "$i1" "$i2" <<'PY'
import sys
rps, t0, t1, hz = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
p1, p2, n1, n2, c1, c2, i1, i2 = ([int(x) for x in a.split()] for a in sys.argv[5:13])
n = rps * (t1 - t0)
us = lambda ticks: ticks / hz * 1e6 / n
print(f"{rps:.0f} {us(p2[0]-p1[0]):.2f} {us(p2[1]-p1[1]):.2f} {us(sum(n2)-sum(n1)):.2f} "
      f"{us(sum(c2)-sum(c1)):.2f} {us(i2[0]-i1[0]):.2f} "
      f"{100*(i2[1]-i1[1])/max(1,i2[3]-i1[3]):.1f} {100*(i2[2]-i1[2])/max(1,i2[4]-i1[4]):.1f}")
PY
}

for row in "${ROWS[@]}"; do
  results="$KIT/run/split-$row.txt"; : > "$results"
  for r in $(seq "$ROUNDS"); do
    for proxy in jwtgate haproxy; do
      echo "$proxy $(run_one "$row" "$proxy")" | tee -a "$results" | sed "s/^/  $row round $r: /" >&2
    done
  done
  python3 - "$row" "$results" <<'PY'
import statistics, sys
row, rows = sys.argv[1], [l.split() for l in open(sys.argv[2]) if l.strip()]
med = {}
for proxy in ("jwtgate", "haproxy"):
    runs = [[float(x) for x in r[1:]] for r in rows if r[0] == proxy]
    med[proxy] = [statistics.median(col) for col in zip(*runs)]
print(f"{row}: per request, µs of CPU (medians of {len(rows) // 2} rounds)")
print(f"  {'':8} {'req/s':>8} {'user':>6} {'kernel':>7} {'proxy':>6} {'upstream':>9} {'client':>7} {'idle':>5}   idle cpu0/cpu1")
for proxy, m in med.items():
    rps, user, kern, up, cl, idle, i0, i1 = m
    pinned = f"{i0:5.1f}% / {i1:4.1f}%" if row != "twocores" else "  -"
    print(f"  {proxy:8} {rps:8.0f} {user:6.2f} {kern:7.2f} {user + kern:6.2f} {up:9.2f} {cl:7.2f} {idle:5.2f}   {pinned}")
j, h = med["jwtgate"], med["haproxy"]
print(f"  ratios: req/s {j[0] / h[0]:.2f}, proxy CPU {(h[1] + h[2]) / (j[1] + j[2]):.2f}, "
      f"user {h[1] / j[1]:.2f}, kernel {h[2] / j[2]:.2f}")
PY
done
