//! The files a config names (certificates and keys, key sets, trust
//! anchors), where they are: a node watches them, so that a renewed
//! certificate or a rotated key set goes live without a SIGHUP. Not the
//! etcd client's: `config_source` applies at start only.

use std::path::{Path, PathBuf};

use crate::compile::resolve;
use crate::raw::RawConfig;

/// Every file `raw` names that a reload reads again, resolved against
/// `base_dir` (the config's directory) as loading resolves them, each
/// once, in the order met. `raw` is the compiled config's (its `${NAME}`
/// references expanded).
pub fn named_files(raw: &RawConfig, base_dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<&str> = Vec::new();
    let tls = raw
        .tls
        .iter()
        .chain(raw.admin.as_ref().and_then(|a| a.tls.as_ref()));
    for t in tls {
        names.extend([t.cert_file.as_str(), t.key_file.as_str()]);
        for c in &t.certificates {
            names.extend([c.cert_file.as_str(), c.key_file.as_str()]);
        }
    }
    for c in &raw.consumers {
        names.extend(c.jwt.as_ref().and_then(|j| j.public_key_file.as_deref()));
    }
    for p in &raw.providers {
        names.extend(p.jwks_file.as_deref());
        names.extend(p.ca_file.as_deref());
    }
    for r in &raw.routes {
        names.extend(r.upstream.ca_file.as_deref());
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for name in names.into_iter().filter(|n| !n.is_empty()) {
        let file = resolve(base_dir, name);
        if !files.contains(&file) {
            files.push(file);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_a_config_names_is_found_once_where_loading_looks() {
        let yaml = r#"
listen: "127.0.0.1:0"
tls: { cert_file: tls/a.crt, key_file: tls/a.key, certificates: [{ cert_file: /etc/b.crt, key_file: tls/a.key }] }
admin: { listen: "127.0.0.1:0", api_key: "k", tls: { cert_file: admin.crt, key_file: admin.key } }
consumers:
  - username: alice
    jwt: { key: a, algorithm: RS256, public_key_file: keys/alice.pem }
  - username: bob
    jwt: { key: b, secret: "s" }
providers:
  - name: corp
    issuer: https://idp.example
    jwks_file: corp.json
    ca_file: /etc/ca.pem
routes:
  - name: r
    paths: ["/*"]
    upstream: { nodes: ["127.0.0.1:1"], scheme: https, ca_file: upstream-ca.pem }
"#;
        let read = crate::read_source(yaml).expect("reads");
        assert!(read.errors.is_empty(), "{:?}", read.errors);
        let raw = read.item;
        let base = Path::new("/srv/gw");
        let files = named_files(&raw, base);
        let want: Vec<PathBuf> = [
            "/srv/gw/tls/a.crt",
            "/srv/gw/tls/a.key",
            "/etc/b.crt",
            "/srv/gw/admin.crt",
            "/srv/gw/admin.key",
            "/srv/gw/keys/alice.pem",
            "/srv/gw/corp.json",
            "/etc/ca.pem",
            "/srv/gw/upstream-ca.pem",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(files, want);
    }
}
