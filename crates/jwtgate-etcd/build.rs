//! Nothing to build: `protoc-bin-vendored` is a build dependency only so
//! that cargo fetches a protoc binary for etcd-client's build script (see
//! `tools/protoc` and `.cargo/config.toml`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
