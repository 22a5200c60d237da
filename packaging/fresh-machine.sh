#!/usr/bin/env bash
# Runs the README's two commands on a fresh Debian 12 machine, the hard
# way: a clean debootstrap root (minbase, plus gcc and the C library
# headers that the Rust toolchain needs to link), the machine's Rust
# toolchain copied in (rustup's stable toolchain and cargo, nothing
# installed with cargo install), a clean clone of this repository, network
# for the package registries only. Then, inside it:
#   1. cargo run --release -- run --config examples/quickstart.yaml
#      (checked with a request: 401 without a token, 200 with one);
#   2. ./test   (installs what the tests need, runs every test).
# Logs to target/fresh-machine.log. Needs root (chroot). Takes long: it
# builds everything from scratch and installs every test dependency. The
# root stays in $FRESH_ROOT (/tmp/jwtgate-fresh) for a look inside, about
# 10 GB: remove it when done (the next run replaces it).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "fresh-machine: needs root" >&2; exit 1; }
mkdir -p target
exec > >(tee target/fresh-machine.log) 2>&1

root=${FRESH_ROOT:-/tmp/jwtgate-fresh}
rm -rf "$root"
mkdir -p "$root"
echo "== debootstrap Debian 12 into $root"
debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev bookworm "$root" http://deb.debian.org/debian

echo "== the Rust toolchain (stable) and nothing else"
toolchain=$(rustup toolchain list | sed -n 's/^\(stable-[^ ]*\).*/\1/p' | head -1)
mkdir -p "$root/root/.rustup/toolchains" "$root/root/.cargo/bin"
cp -a "$HOME/.rustup/toolchains/$toolchain" "$root/root/.rustup/toolchains/"
cp -a "$HOME/.rustup/settings.toml" "$root/root/.rustup/" 2>/dev/null || true
for b in cargo rustc rustup rustfmt cargo-fmt cargo-clippy clippy-driver rustdoc; do
  [[ -e $HOME/.cargo/bin/$b ]] && cp -a "$HOME/.cargo/bin/$b" "$root/root/.cargo/bin/"
done

echo "== a clean clone"
git clone -q "$(pwd)" "$root/root/jwtgate"

cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network's own trust, not a test dependency: where this machine reaches
# the package registries through an intercepting proxy, its CA certificates
# (and the variables that point tools at them) go in with the network.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
ca_env=()
for v in SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS CURL_CA_BUNDLE GIT_SSL_CAINFO REQUESTS_CA_BUNDLE PIP_CERT; do
  if [[ -n ${!v:-} ]]; then ca_env+=("$v=${!v}"); fi
done
for fs in proc sys dev dev/pts; do mount --bind "/$fs" "$root/$fs"; done
cleanup() { for fs in dev/pts dev sys proc; do umount -l "$root/$fs" 2>/dev/null || true; done; }
trap cleanup EXIT

inside() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb "${ca_env[@]}" \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /root/jwtgate || exit 1
$1"
}

echo "== command 1: cargo run --release -- run --config examples/quickstart.yaml"
inside 'cargo build --release --quiet'
inside 'setsid cargo run --release --quiet -- run --config examples/quickstart.yaml 2>/tmp/quickstart.log &
  group=$!
  for i in $(seq 1 100); do
    exec 3<>/dev/tcp/127.0.0.1/8080 2>/dev/null && break; sleep 0.2
  done
  printf "GET /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" >&3
  head -1 <&3 | tee /tmp/quickstart.status
  token=$(cargo run --release --quiet -- token sign --config examples/quickstart.yaml --consumer alice)
  exec 4<>/dev/tcp/127.0.0.1/8080
  printf "GET /orders HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n" "$token" >&4
  head -1 <&4 | tee -a /tmp/quickstart.status
  kill -- -"$group"
  grep -q "401" <(sed -n 1p /tmp/quickstart.status) && grep -q "200" <(sed -n 2p /tmp/quickstart.status)'
echo "== command 2: ./test"
inside './test'
echo "fresh-machine: both commands passed"
