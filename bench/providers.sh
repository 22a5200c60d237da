#!/usr/bin/env bash
# jwtgate's identity-provider way (iss, aud, kid, a JWK Set) against
# HAProxy's RS256 row, in the same run_peers.sh run.
#
#   bench/providers.sh            env ROUNDS=5 DURATION=10 ACCESS_LOG=off|on ALG=rs256|es256
#
# The kit's RS256 tokens are consumer-style (a `key` claim, no iss). This
# makes a copy of the kit whose rs256.valid.jwt is a provider token signed
# with the same key — iss https://idp.bench.test, aud bench, kid bench-1 —
# that still carries key=user123, so HAProxy's row (signature, key claim,
# exp) accepts it too: both proxies verify the same RS256 signature on the
# same token, jwtgate also checks issuer, audience and kid. The kit's
# accept/reject matrix is written for the consumer way, so the custom row
# runs with CUSTOM_AUTH=no and this script checks jwtgate itself first: the
# token 200, a forged signature, another issuer, another audience and an
# unknown kid 401.
#
# ALG=es256: jwtgate verifies ES256 provider tokens (a P-256 key as a JWK Set)
# while HAProxy verifies its RS256 row, in the same run: the kit gives the
# custom row the token file of its CUSTOM_ALG (hs256 or rs256 only), so the
# copy's hs256.valid.jwt holds the ES256 provider token and the custom row
# runs with CUSTOM_ALG=hs256.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/bench/lib.sh"
export ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-10}
case ${ACCESS_LOG:-off} in
  off) LOG_ENV="env JWTGATE_LOG=info,jwtgate::access=off" ;;
  on)  LOG_ENV="" ;;
  *)   echo "ACCESS_LOG must be on or off" >&2; exit 2 ;;
esac
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p jwtgate
kit_prepare
ALG=${ALG:-rs256}
case $ALG in rs256|es256) ;; *) echo "ALG must be rs256 or es256" >&2; exit 2 ;; esac
CONFIG=$(write_config "provider-$ALG")
PKIT="$KIT-provider"
rm -rf "$PKIT"; cp -r "$KIT" "$PKIT"; rm -rf "$PKIT/results" "$PKIT/run"
sign() { # extra args -> token
  "$BIN" token sign --config "$CONFIG" --provider bench-idp --private-key "$(_private_key "provider-$ALG")" \
    --kid bench-1 --ttl 86400 --claim key=user123 "$@"
}
if [[ $ALG == rs256 ]]; then
  sign > "$PKIT/tokens/rs256.valid.jwt"; custom_alg=rs256
else
  # HAProxy keeps the kit's RS256 token; jwtgate's row reads hs256.valid.jwt.
  sign > "$PKIT/tokens/hs256.valid.jwt"; custom_alg=hs256
fi
good=$(cat "$PKIT/tokens/$custom_alg.valid.jwt")

# jwtgate's own accept/reject check on the provider way.
$LOG_ENV "$BIN" run --config "$CONFIG" 2>/tmp/jwtgate-providers-check.log & gw=$!
nginx -p "$KIT/" -e "$KIT/run/upstream-nginx.err" -c peers/upstream-nginx.conf & ng=$!
trap 'kill $gw $ng 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.1; done
code() { curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18090/ -H "Authorization: Bearer $1"; }
forged="${good%.*}.$(printf 'x%.0s' $(seq 342))"
expect() { [[ $(code "$2") == "$1" ]] || { echo "check failed: $3 answered $(code "$2"), not $1" >&2; exit 1; }; }
expect 200 "$good" "the provider token"
expect 401 "$forged" "a forged signature"
expect 401 "$(sign --claim iss=https://other.example)" "another issuer"
expect 401 "$(sign --claim aud=other)" "another audience"
expect 401 "$(sign --kid nope)" "an unknown kid"
kill $gw $ng; wait $gw $ng 2>/dev/null || true
trap - EXIT
echo "jwtgate provider way: accept/reject check passed"

out="$PKIT/results/providers-$(date -u +%Y%m%dT%H%M%SZ)"
OUTDIR="$out" CUSTOM_NAME=jwtgate-provider-$ALG CUSTOM_PORT=18090 CUSTOM_ALG=$custom_alg CUSTOM_AUTH=no \
  CUSTOM_CMD="$LOG_ENV $BIN run --config $CONFIG" \
  "$PKIT/run_peers.sh" haproxy-rs256 custom
python3 "$PKIT/summarize.py" --ref haproxy-rs256 "$out/summary.tsv"
