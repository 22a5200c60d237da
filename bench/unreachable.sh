#!/usr/bin/env bash
# Start-up with identity providers whose IdP cannot be reached (issue 13:
# the gateway serves its other routes within 1 s): COUNT providers, half on
# a loopback port nobody listens on (connection refused), half on one that
# accepts and never answers (each fetch runs into fetch_timeout_ms), no disk
# cache. Prints the time from spawning jwtgate to the first 200 on a route
# of consumer keys, and what /status says about the providers then.
#
#   bench/unreachable.sh          env COUNT=20 RUNS=5
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COUNT=${COUNT:-20}; RUNS=${RUNS:-5}
BIN=${BIN:-$ROOT/target/release/jwtgate}
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p jwtgate
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
refused=$(free_port)
# A listener that accepts and never answers.
silent=$(free_port)
python3 - "$silent" <<'PY' & PIDS+=($!)
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
port=$(free_port); admin=$(free_port)
secret=bench-secret-0123456789abcdef0123456789
{
  echo "listen: \"127.0.0.1:$port\""
  echo "state_dir: \"$WORK/state\""
  echo "admin: { listen: \"127.0.0.1:$admin\", api_key: \"bench-admin-key-0123456789abcdef\" }"
  echo "consumers:"
  echo "  - username: alice"
  echo "    jwt: { key: user123, secret: \"$secret\" }"
  echo "providers:"
  for i in $(seq 1 "$COUNT"); do
    p=$refused; ((i % 2)) && p=$silent
    echo "  - name: p$i"
    echo "    issuer: \"https://idp-$i.example\""
    echo "    jwks_uri: \"https://127.0.0.1:$p/keys\""
  done
  echo "routes:"
  echo "  - name: api"
  echo "    paths: [\"/api/*\"]"
  echo "    upstream: { echo: true }"
  echo "  - name: idp"
  echo "    paths: [\"/idp/*\"]"
  echo "    upstream: { echo: true }"
  echo -n "    jwt: { consumers: false, providers: ["
  for i in $(seq 1 "$COUNT"); do echo -n "p$i"; ((i < COUNT)) && echo -n ", "; done
  echo "] }"
} > "$WORK/gw.yaml"
"$BIN" check --config "$WORK/gw.yaml" >/dev/null
token=$("$BIN" token sign --key user123 --secret "$secret" --ttl 600)

for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/state"
  start=$(date +%s%N)
  "$BIN" run --config "$WORK/gw.yaml" 2>"$WORK/log.$run" & gw=$!
  until [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
      "http://127.0.0.1:$port/api/x" 2>/dev/null) == 200 ]]; do
    (( $(date +%s%N) - start < 10000000000 )) || { echo "no 200 within 10 s" >&2; cat "$WORK/log.$run" >&2; exit 1; }
    sleep 0.005
  done
  served=$(( ($(date +%s%N) - start) / 1000000 ))
  status=$(curl -s "http://127.0.0.1:$admin/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); w = s.get("waiting_for") or []; print(s.get("status"), "(still waiting for the first keys of", len(w), "providers)")' 2>/dev/null || echo "?")
  kill "$gw"; wait "$gw" 2>/dev/null || true
  echo "run $run: $COUNT unreachable providers, first 200 on the consumer route $served ms after spawn; /status then: $status"
done
