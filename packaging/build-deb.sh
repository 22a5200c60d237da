#!/usr/bin/env bash
# Builds the Debian package, target/debian/jwtgate_<version>-1_<arch>.deb:
# the release binary, the man page and shell completions generated from the
# same clap definitions as --help (so they never drift), the hardened
# systemd unit and the default config (packaging/). Needs cargo-deb, which
# it installs from crates.io when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== cargo install cargo-deb"
  cargo install cargo-deb --locked
fi

echo "== cargo build --release -p jwtgate"
cargo build --release -p jwtgate

# The target directory cargo uses (CARGO_TARGET_DIR honoured; cargo-deb
# maps the `target/release/` asset paths of Cargo.toml onto it too).
target=${CARGO_TARGET_DIR:-target}
out=$target/release/packaging
rm -rf "$out"
mkdir -p "$out/completions"
bin=$target/release/jwtgate
"$bin" man | gzip -9n >"$out/jwtgate.1.gz"
for doc in README.md SECURITY.md docs/SPEC.md; do
  gzip -9n <"$doc" >"$out/$(basename "$doc").gz"
done
"$bin" completions bash >"$out/completions/jwtgate.bash"
"$bin" completions zsh >"$out/completions/_jwtgate"
"$bin" completions fish >"$out/completions/jwtgate.fish"

echo "== cargo deb"
cargo deb -p jwtgate --no-build "$@"
