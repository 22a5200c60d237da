#!/usr/bin/env bash
# How a proxy's threads share the work of the two-core row: the row's load
# (wrk, 1 thread, 50 keep-alive connections, HS256, nothing pinned) against
# jwtgate (one worker per core) and HAProxy (nbthread 2), one after the
# other, and per thread of each proxy: CPU time per request of the load,
# time spent runnable but waiting for a core, scheduler slices, and
# voluntary / involuntary context switches and moves between CPUs (from
# /proc/PID/task/TID/ schedstat, status and sched, read before and after
# the measured run).
#
#   bench/threads.sh        env DURATION=10
#                           env AFFINITY=auto: jwtgate with
#                           `worker_cpu_affinity: auto` (each worker pinned)
#
# An even split is what `server/balance.rs` is for: with the kernel's
# SO_REUSEPORT hash alone, one worker may serve 30 of the 50 connections.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
DURATION=${DURATION:-10}
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
kit_prepare
CONFIG=$(with_affinity "$(write_config hs256)")
TOKEN=$(cat "$KIT/tokens/hs256.valid.jwt")
export BENCH="$KIT"
HAPROXY_TWO=$(haproxy_two_threads threads-haproxy-hs256)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & PIDS+=($!)

# pid/tid name run_ns wait_ns slices voluntary involuntary moves, one line a thread
snapshot() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s %s %s %s\n' "$(basename "$t")" "$(tr ' ' '_' < "$t/comm")" \
      "$(cat "$t/schedstat")" \
      "$(awk '/^voluntary_ctxt/ {print $2}' "$t/status")" \
      "$(awk '/^nonvoluntary_ctxt/ {print $2}' "$t/status")" \
      "$(awk '/^se.nr_migrations/ {m = $3} END {print m + 0}' "$t/sched" 2>/dev/null || echo 0)"
  done | sort
}

measure() { # NAME PORT CMD...
  local name=$1 port=$2 pid before after out
  shift 2
  "$@" > "$KIT/run/threads-$name.log" 2>&1 & pid=$!; PIDS+=("$pid")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  wrk -t1 -c50 -d2s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/" > /dev/null
  before=$(snapshot "$pid")
  out=$(wrk -t1 -c50 -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/")
  after=$(snapshot "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local requests rps p50 p99
  requests=$(awk '/requests in/ {print $1}' <<< "$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<< "$out")
  p50=$(awk '$1 == "50%" {print $2}' <<< "$out")
  p99=$(awk '$1 == "99%" {print $2}' <<< "$out")
  echo "$name: $rps req/s, p50 $p50, p99 $p99"
  join <(echo "$before") <(echo "$after") | awk -v n="$requests" '
    { run = ($10 - $3) / 1e3; wait = ($11 - $4) / 1e3; slices = $12 - $5
      if (run < 1e5) next   # threads that did (almost) nothing
      printf "  thread %-8s %-18s %6.2f us CPU/req, %5.2f us/req waiting for a core, %6d slices, %6d voluntary / %6d involuntary switches, %5d moves between CPUs\n",
        $1, $2, run / n, wait / n, slices, $13 - $6, $14 - $7, $15 - $8 }'
}

measure jwtgate 18090 env JWTGATE_LOG=info,jwtgate::access=off "$BIN" run --config "$CONFIG"
grep "worker stopped accepting" "$KIT/run/threads-jwtgate.log" | sed -E 's/.*(worker=[0-9]+ connections=[0-9]+).*/  \1 (warm-up included)/' || true
measure haproxy 18082 haproxy -db -f "$HAPROXY_TWO"
