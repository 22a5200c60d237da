#!/usr/bin/env bash
# Performance, round two (issue 18): jwtgate as the kit's `custom` row in
# the same run_peers.sh runs as HAProxy and nginx, each row doing the same
# work as its peers, and the ratios (median req/s, median proxy CPU per
# request; and the kit's median of per-round req/s ratios, sorted rounds
# beside it) printed per row.
#
#   bench/round2.sh [row ...]    rows: twocores tls handshake h2 onecore (default:
#       these five), tls-noauth h2-noauth twocores-noauth (the ceilings),
#       forwarded (HAProxy doing jwtgate's forwarding work vs haproxy-plain)
#   env ROUNDS=5 DURATION=10 ACCESS_LOG=off|on (onecore always runs both)
#   env AFFINITY=auto: the twocores row's jwtgate with `worker_cpu_affinity:
#       auto` (its workers pinned; the peers' threads are not)
#
#   twocores   PIN=none, plain HTTP, HS256: haproxy-hs256 (nbthread 2),
#              nginx-lua-hs256 (2 workers), jwtgate (a worker per core); the
#              connections each jwtgate worker accepted, per round
#   tls        TLS 1.3 keep-alive, HS256: haproxy-tls-hs256, nginx-lua-tls-hs256
#   handshake  a new connection and a full TLS 1.3 handshake per request, no
#              resumption anywhere (jwtgate: session_tickets false,
#              session_cache 0, as the peers): the -handshake rows
#   h2         HTTP/2 over TLS, HS256: haproxy-h2-hs256, nginx-h2-lua-hs256
#   onecore    the one-core rows with jwtgate's access log ON (as users run
#              it; the peers log nothing): hs256, rs256, plain vs HAProxy
#   tls-noauth, h2-noauth, twocores-noauth
#              the ceiling of a row: jwtgate with no JWT check at all
#              (CUSTOM_AUTH=no) against the peer's no-auth row and its HS256
#              row. If jwtgate without auth is no faster than with it, and
#              the load side's CPU (CPU 1, cpu1_busy) is the busy one, the
#              row measures wrk or h2load and the upstream, not the proxy:
#              no proxy work can raise the req/s ratio above this row's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
ROWS=("$@"); [[ ${#ROWS[@]} -gt 0 ]] || ROWS=(twocores tls handshake h2 onecore)
export ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-10}
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
kit_prepare
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

log_env() { # on|off
  [[ $1 == on ]] && echo "" || echo "env JWTGATE_LOG=info,jwtgate::access=off"
}

# ratios SUMMARY ME PEERS...: both ratios of ME against each peer, from the
# kit's summary.tsv.
ratios() {
  python3 - "$@" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
me, peers = sys.argv[2], sys.argv[3:]
def med(row, col):
    v = [float(r[col]) for r in rows if r["row"] == row and r[col] not in ("-", "")]
    return statistics.median(v) if v else float("nan")
cpu = "proxy_proc_us_per_req"
def busy(row):
    # CPU 0 (the proxy's) and CPU 1 (load generator and upstream) busy %,
    # when pinned (in PIN=none runs both are shared).
    p, l = med(row, "cpu0_busy"), med(row, "cpu1_busy")
    return "" if p != p else f", busy CPU0 {p:.1f} % CPU1 {l:.1f} %"
def per_round(p):
    # The kit's own statistic (summarize.py): the ratio within each round,
    # rows minutes apart, then the median; it cancels the machine's drift
    # between rounds. The ratio of medians above is the stricter reading.
    mine = {r["round"]: float(r["rps"]) for r in rows if r["row"] == me}
    v = sorted(mine[r["round"]] / float(r["rps"]) for r in rows
               if r["row"] == p and r["round"] in mine and float(r["rps"]) > 0)
    return "" if not v else (f"; per round {statistics.median(v):.2f} "
                             f"({' '.join(f'{x:.2f}' for x in v)})")
print(f"{me}: {med(me,'rps'):.0f} req/s, {med(me,cpu):.1f} us CPU/req, p99 {med(me,'p99_ms'):.2f} ms{busy(me)}")
for p in peers:
    print(f"  vs {p}: {med(p,'rps'):.0f} req/s, {med(p,cpu):.1f} us CPU/req{busy(p)} -> "
          f"req/s ratio {med(me,'rps')/med(p,'rps'):.2f}, CPU ratio {med(p,cpu)/med(me,cpu):.2f} (peer/{me})"
          f"{per_round(p)}")
PY
}

# run NAME CONFIG ALG PEERS... (env for run_peers.sh set by the caller)
run() {
  local name=$1 config=$2 alg=$3; shift 3
  local out="$KIT/results/round2-$name-$STAMP"
  mkdir -p "$out"
  OUTDIR="$out" CUSTOM_NAME="jwtgate-$name" CUSTOM_PORT=18090 CUSTOM_ALG=$alg \
    CUSTOM_CMD="$(log_env "${ACCESS_LOG:-off}") $BIN run --config $config 2>>$out/jwtgate.log" \
    "$KIT/run_peers.sh" "$@" custom
  echo "== $name"
  ratios "$out/summary.tsv" "jwtgate-$name" "$@"
  if [[ -s $out/jwtgate.log ]] && grep -q "worker stopped accepting" "$out/jwtgate.log"; then
    echo "  connections per worker, per round:"
    grep "worker stopped accepting" "$out/jwtgate.log" |
      sed -E 's/.*worker=([0-9]+) connections=([0-9]+).*/\1 \2/' |
      awk '{ c[$1] = c[$1] " " $2 } END { for (w in c) print "    worker " w ":" c[w] }' | sort
  fi
  echo "  results: $out"
}

for row in "${ROWS[@]}"; do
  case $row in
    twocores)
      PIN=none run twocores "$(with_affinity "$(write_config hs256)")" hs256 haproxy-hs256 nginx-lua-hs256 ;;
    tls)
      CUSTOM_TLS=1 run tls "$(write_config hs256 tls)" hs256 haproxy-tls-hs256 nginx-lua-tls-hs256 ;;
    handshake)
      config=$(write_config hs256 tls)
      # No resumption, as the peers (no cache, no tickets).
      sed -i 's|^tls: { \(.*\) }$|tls: { \1, session_tickets: false, session_cache: 0 }|' "$config"
      "$BIN" check --config "$config" >/dev/null
      CUSTOM_HANDSHAKE=1 run handshake "$config" hs256 haproxy-tls-hs256-handshake nginx-lua-tls-hs256-handshake ;;
    h2)
      CUSTOM_H2=1 run h2 "$(write_config hs256 tls)" hs256 haproxy-h2-hs256 nginx-h2-lua-hs256 ;;
    onecore)
      for mode in hs256 rs256 plain; do
        declare -A PEER=([plain]=haproxy-plain [hs256]=haproxy-hs256 [rs256]=haproxy-rs256)
        alg=hs256; [[ $mode == rs256 ]] && alg=rs256
        auth=yes; [[ $mode == plain ]] && auth=no
        ACCESS_LOG=on CUSTOM_AUTH=$auth run "onecore-$mode-log" "$(write_config "$mode")" $alg "${PEER[$mode]}"
      done ;;
    tls-noauth)
      CUSTOM_TLS=1 CUSTOM_AUTH=no run tls-noauth "$(write_config plain tls)" hs256 haproxy-tls-plain haproxy-tls-hs256 ;;
    h2-noauth)
      CUSTOM_H2=1 CUSTOM_AUTH=no run h2-noauth "$(write_config plain tls)" hs256 haproxy-h2-plain haproxy-h2-hs256 ;;
    forwarded)
      # The one-core no-auth row's other reading: HAProxy doing the
      # forwarding work jwtgate does for every request (SPEC §5 and §3.11:
      # the X-Forwarded family and X-Real-IP set, the node's Host), which the
      # kit's haproxy-plain does not, against haproxy-plain in the same run.
      out="$KIT/results/round2-forwarded-$STAMP"; mkdir -p "$out"
      cfg=$(haproxy_forwarding)
      OUTDIR="$out" CUSTOM_NAME=haproxy-forwarding CUSTOM_PORT=18091 CUSTOM_AUTH=no \
        CUSTOM_CMD="haproxy -db -f $cfg" "$KIT/run_peers.sh" haproxy-plain custom
      echo "== forwarded (HAProxy adding jwtgate's forwarding headers, against itself without)"
      ratios "$out/summary.tsv" haproxy-forwarding haproxy-plain
      echo "  results: $out" ;;
    twocores-noauth)
      PIN=none CUSTOM_AUTH=no run twocores-noauth "$(with_affinity "$(write_config plain)")" hs256 haproxy-plain haproxy-hs256 nginx-lua-hs256 ;;
    *) echo "unknown row $row" >&2; exit 2 ;;
  esac
done
