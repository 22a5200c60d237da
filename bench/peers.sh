#!/usr/bin/env bash
# jwtgate against HAProxy (and nginx) with ../shared/bench-peers, in the SAME
# run_peers.sh runs, so the ratios are comparable on this noisy machine.
#
#   bench/peers.sh [mode ...]     modes: hs256 rs256 plain hs256-redis (default: all)
#   env ROUNDS=3 DURATION=10 CONNS=50   (passed to run_peers.sh)
#   env ACCESS_LOG=off (default) | on
#
# The peers' configs log nothing per request (HAProxy has no `log` line, the
# nginx proxy has `access_log off`), so by default jwtgate runs with its
# access log off too (JWTGATE_LOG=info,jwtgate::access=off): the same work.
# ACCESS_LOG=on measures jwtgate as it runs by default, one line a request.
#
# Builds jwtgate (release), copies the read-only shared kit to a scratch dir
# (setup.sh writes keys and tokens there), writes one jwtgate config per mode
# (bench/lib.sh: same rules as the peers: consumer user123 + decoys, key
# claim `key`, exp required), then runs e.g. `run_peers.sh haproxy-hs256 custom` per mode and
# prints jwtgate's median req/s and p99 as a ratio of the peer row's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
MODES=("$@"); [[ ${#MODES[@]} -gt 0 ]] || MODES=(plain hs256 rs256 hs256-redis)
export ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10}
case ${ACCESS_LOG:-off} in
  off) LOG_ENV="env JWTGATE_LOG=info,jwtgate::access=off" ;;
  on)  LOG_ENV="" ;;
  *)   echo "ACCESS_LOG must be on or off" >&2; exit 2 ;;
esac
echo "jwtgate access log: ${ACCESS_LOG:-off}"

cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
kit_prepare

declare -A PEER=([plain]=haproxy-plain [hs256]=haproxy-hs256 [rs256]=haproxy-rs256 [hs256-redis]=haproxy-hs256)
REDIS_PID=""
trap '[[ -n $REDIS_PID ]] && kill $REDIS_PID 2>/dev/null || true' EXIT
for mode in "${MODES[@]}"; do
  write_config "$mode" >/dev/null
  if [[ $mode == hs256-redis && -z $REDIS_PID ]]; then
    taskset -c 1 redis-server --port 18379 --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
    REDIS_PID=$!
  fi
  alg=hs256; auth=yes
  [[ $mode == rs256 ]] && alg=rs256
  [[ $mode == plain ]] && auth=no
  out="$KIT/results/jwtgate-$mode-$(date -u +%Y%m%dT%H%M%SZ)"
  OUTDIR="$out" CUSTOM_NAME="jwtgate-$mode" CUSTOM_PORT=18090 CUSTOM_ALG=$alg CUSTOM_AUTH=$auth \
    CUSTOM_CMD="$LOG_ENV $BIN run --config $CONF/$mode.yaml" \
    "$KIT/run_peers.sh" "${PEER[$mode]}" custom
  python3 - "$out/summary.tsv" "${PEER[$mode]}" "jwtgate-$mode" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(row, col):
    v = [float(r[col]) for r in rows if r["row"] == row]
    return statistics.median(v) if v else float("nan")
peer, me = sys.argv[2], sys.argv[3]
print(f"{me}: {med(me,'rps'):.0f} req/s vs {peer} {med(peer,'rps'):.0f} -> ratio {med(me,'rps')/med(peer,'rps'):.2f}; "
      f"p99 {med(me,'p99_ms'):.2f} ms vs {med(peer,'p99_ms'):.2f} ms; "
      f"cpu/req {med(me,'proxy_cpu_us_per_req'):.1f} us vs {med(peer,'proxy_cpu_us_per_req'):.1f} us")
PY
done
