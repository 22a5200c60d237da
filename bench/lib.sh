# Shared by the bench scripts (source it): the peer kit in a scratch copy,
# and jwtgate's config for each bench mode, doing the same work as the
# peers' rows (consumer user123 among decoys, key claim `key`, exp required).
#
#   kit_prepare                 copies ../shared/bench-peers to $KIT and runs its setup once
#   write_config MODE [tls]     writes $CONF/MODE[-tls].yaml, prints its path
#   token_for MODE              prints the token a MODE request carries
#   haproxy_two_threads NAME    writes the kit's haproxy-hs256.cfg with nbthread 2 as
#                               run/NAME.cfg (as the kit's PIN=none runs it), prints its path
#   with_affinity CONFIG        with env AFFINITY set: CONFIG plus `worker_cpu_affinity:
#                               $AFFINITY` as a new file; prints the path to run with
#
# Modes: plain (no auth), hs256, rs256, es256 (consumers with a P-256 key
# made here), hs256-redis (blacklist in Redis on 127.0.0.1:18379),
# provider-rs256 and provider-es256 (an identity provider: iss, aud, kid,
# the same keys as a JWK Set file), hs256-authorize10 (ten authorize rules,
# the request's one checking a claim), hs256-cutoffs (hs256 with the
# blacklist in Redis, which bench/callgrind.sh fills with subject cut-offs).
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
KIT_SRC="$ROOT/../shared/bench-peers"
KIT="${KIT:-/tmp/jwtgate-bench-peers}"
CONF="$KIT/jwtgate"
BIN="${BIN:-$ROOT/target/release/jwtgate}"

kit_prepare() {
  if [[ ! -f "$KIT/tokens/hs256.valid.jwt" ]]; then
    rm -rf "$KIT"; cp -r "$KIT_SRC" "$KIT"; chmod -R u+w "$KIT"
    (cd "$KIT" && ./setup.sh)
  fi
  mkdir -p "$CONF" "$KIT/run/tmp"   # run/: the upstream nginx's scratch space
}

_consumers() { # $1 = hs256|rs256
  echo "consumers:"
  while read -r key secret; do
    [[ -n $key ]] || continue
    if [[ $1 == hs256 ]]; then
      printf '  - username: %s\n    jwt: { key: %s, algorithm: HS256, secret: "%s" }\n' "$key" "$key" "$secret"
    elif [[ $1 == es256 ]]; then
      printf '  - username: %s\n    jwt: { key: %s, algorithm: ES256, public_key_file: %s }\n' "$key" "$key" "$CONF/es256-public.pem"
    else
      printf '  - username: %s\n    jwt: { key: %s, algorithm: RS256, public_key_file: %s }\n' "$key" "$key" "$KIT/keys/rs256-public.pem"
    fi
  done < "$KIT/keys/consumers.map"
}

# A P-256 key pair for the ES256 modes (made once).
_es256_keys() {
  [[ -f $CONF/es256-private.pem ]] && return
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CONF/es256-private.pem" 2>/dev/null
  openssl pkey -in "$CONF/es256-private.pem" -pubout -out "$CONF/es256-public.pem"
}

# A public key (PEM) as a JWK Set with kid bench-1: ALG PEM > FILE
_provider_jwks() {
  "$KIT/.venv/bin/python" - "$1" "$2" > "$3" <<'PY'
import json, sys
from jwt.algorithms import RSAAlgorithm, ECAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_public_key
alg, pem = sys.argv[1], sys.argv[2]
key = load_pem_public_key(open(pem, "rb").read())
jwk = json.loads((RSAAlgorithm if alg == "RS256" else ECAlgorithm).to_jwk(key))
jwk.update({"kid": "bench-1", "alg": alg, "use": "sig"})
print(json.dumps({"keys": [jwk]}))
PY
}

# The private key and the consumer token of a mode's algorithm.
_private_key() { [[ $1 == *es256* ]] && echo "$CONF/es256-private.pem" || echo "$KIT/keys/rs256-private.pem"; }

write_config() { # MODE [tls] -> path of the written config
  local mode=$1 tls=${2:-} alg=hs256 jwt="    jwt: {}" extra="" providers=""
  local store="store: { kind: embedded, path: $CONF/data-$mode${tls:+-tls} }"
  local file="$CONF/$mode${tls:+-tls}.yaml"
  case $mode in
    plain) jwt="" ;;
    hs256) ;;
    rs256) alg=rs256 ;;
    es256) alg=es256; _es256_keys ;;
    hs256-redis|hs256-cutoffs) store="store: { kind: redis, host: 127.0.0.1, port: 18379 }" ;;
    provider-rs256|provider-es256)
      local upper=RS256 pem="$KIT/keys/rs256-public.pem"
      alg=rs256
      if [[ $mode == provider-es256 ]]; then _es256_keys; upper=ES256; pem="$CONF/es256-public.pem"; alg=es256; fi
      _provider_jwks $upper "$pem" "$CONF/$mode.jwks.json"
      providers="providers:
  - name: bench-idp
    issuer: \"https://idp.bench.test\"
    jwks_file: $CONF/$mode.jwks.json
    algorithms: [$upper]
    audiences: [bench]"
      jwt="    jwt: { providers: [bench-idp], consumers: false }" ;;
    hs256-authorize10)
      jwt="    jwt:
      authorize:"
      for i in 1 2 3 4 5 6 7 8 9; do
        jwt+="
        - { match: [\"POST_/area$i/*\", \"DELETE_/area$i/*\"], scopes: [\"area$i:write\"] }"
      done
      jwt+="
        - { match: [\"GET_/*\"], all_of: { key: [user123] } }
      authorize_default: deny" ;;
    *) echo "unknown bench mode $mode" >&2; return 2 ;;
  esac
  # No session resumption, as the kit's TLS peers are set (HAProxy
  # no-tls-tickets and cachesize 0, nginx ssl_session_tickets/cache off):
  # the same work per handshake, no ticket for the client to take in.
  [[ -n $tls ]] && extra="tls: { cert_file: \"$KIT/keys/tls-ecdsa.crt\", key_file: \"$KIT/keys/tls-ecdsa.key\",
       session_tickets: false, session_cache: 0 }"
  # ADMIN=on: the admin API on, and with it the metrics every request
  # records (off without it: nothing would serve /metrics).
  [[ ${ADMIN:-off} == on ]] && extra+="
admin: { listen: \"127.0.0.1:18091\", api_key: \"bench-admin-key-0123456789abcdef0123\" }"
  cat > "$file" <<YAML
listen: "127.0.0.1:18090"
$extra
$store
$(_consumers $alg)
$providers
routes:
  - name: bench
    paths: ["/*"]
    upstream: { nodes: ["127.0.0.1:18081"] }
$jwt
YAML
  "$BIN" check --config "$file" >/dev/null
  echo "$file"
}

token_for() { # MODE [forged-kid] -> token (forged-kid: a kid the set does not hold)
  local kid=bench-1; [[ ${2:-} == forged-kid ]] && kid=forged-$RANDOM
  case $1 in
    plain|hs256|hs256-redis|hs256-cutoffs|hs256-authorize10) cat "$KIT/tokens/hs256.valid.jwt" ;;
    rs256) cat "$KIT/tokens/rs256.valid.jwt" ;;
    es256)
      "$BIN" token sign --key user123 --alg ES256 --private-key "$CONF/es256-private.pem" --ttl 86400 ;;
    provider-rs256|provider-es256)
      "$BIN" token sign --config "$CONF/$1.yaml" --provider bench-idp \
        --private-key "$(_private_key "$1")" --kid "$kid" --ttl 86400 --claim sub=u-1 ;;
  esac
}

haproxy_two_threads() { # NAME -> path of HAProxy's HS256 config with two threads
  local out="$KIT/run/$1.cfg"
  sed -E 's/^([[:space:]]*)nbthread[[:space:]]+[0-9]+/\1nbthread 2/' "$KIT/peers/haproxy-hs256.cfg" > "$out"
  grep -q "nbthread 2" "$out" || { echo "no nbthread line in the kit's haproxy-hs256.cfg" >&2; return 1; }
  echo "$out"
}

haproxy_forwarding() { # -> path of the kit's haproxy-plain.cfg on port 18091, adding
  # for every request what jwtgate sends upstream (SPEC §5, §3.11): X-Forwarded-For
  # appended, X-Real-IP, X-Forwarded-Proto and X-Forwarded-Host set, the
  # node's Host. The peer doing jwtgate's forwarding work.
  local out="$KIT/run/haproxy-forwarding.cfg"
  sed -E -e 's/^([[:space:]]*bind[[:space:]]+)127\.0\.0\.1:18084(.*)$/\1127.0.0.1:18091\2\
    option forwardfor\
    http-request set-header X-Real-IP %[src]\
    http-request set-header X-Forwarded-Proto http\
    http-request set-header X-Forwarded-Host %[req.hdr(host)]/' \
    -e 's/^([[:space:]]*http-reuse always)$/\1\
    http-request set-header Host 127.0.0.1:18081/' \
    "$KIT/peers/haproxy-plain.cfg" > "$out"
  grep -q "X-Forwarded-Host" "$out" && grep -q "set-header Host" "$out" \
    || { echo "the kit's haproxy-plain.cfg changed shape: no forwarding config made" >&2; return 1; }
  haproxy -c -q -f "$out" || return 1
  echo "$out"
}

with_affinity() { # CONFIG -> CONFIG, or a copy with worker_cpu_affinity: $AFFINITY
  if [[ -z ${AFFINITY:-} ]]; then echo "$1"; return; fi
  local out="${1%.yaml}-affinity.yaml"
  sed "1i worker_cpu_affinity: ${AFFINITY}" "$1" > "$out"
  echo "$out"
}
