//! `tls:` on the listeners: the certificates (one by default, more chosen
//! by SNI), the lowest protocol version, the cipher suites, and session
//! resumption (stateless tickets, a server-side cache, or none) — the
//! settings HAProxy's `bind ... ssl` and nginx's `ssl_*` give an operator.
//!
//! Read and compiled here (files read, PEM blocks and suite names checked);
//! that a key matches its certificate is checked where the TLS library is,
//! in the data plane, before a config goes live.

use std::path::Path;

use serde::Serialize;

use crate::compile::{read_file, resolve};
use crate::error::{child, index, Errors};
use crate::reader::Obj;

/// `tls:` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<RawCertificate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher_suites: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_tickets: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_cache: Option<u64>,
}

/// One more certificate, chosen when the client's SNI names it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawCertificate {
    pub cert_file: String,
    pub key_file: String,
}

/// The lowest TLS version accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// One certificate chain and its key, PEM.
#[derive(Clone)]
pub struct CertificatePem {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// The key file's permission bits, for the warning about a key every
    /// user of the machine may read.
    pub key_mode: Option<u32>,
    /// Where it is in the config (`tls`, `tls.certificates[0]`), for errors.
    pub location: String,
}

impl CertificatePem {
    /// The first certificate's `notBefore` and `notAfter` (Unix seconds),
    /// when it reads.
    pub fn validity(&self) -> Option<(i64, i64)> {
        jwtgate_core::x509::validity(&self.leaf()?)
    }

    /// The first certificate's DNS names, lower case (`*.example.com`
    /// as written).
    pub fn dns_names(&self) -> Vec<String> {
        self.leaf()
            .and_then(|der| jwtgate_core::x509::dns_names(&der))
            .unwrap_or_default()
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect()
    }

    fn leaf(&self) -> Option<Vec<u8>> {
        let blocks = pem::parse_many(&self.cert_pem).ok()?;
        let leaf = blocks.into_iter().find(|p| p.tag() == "CERTIFICATE")?;
        Some(leaf.into_contents())
    }
}

/// The certificate of `certificates` a handshake for `name` (lower case;
/// `None`: no SNI) is served, as the server chooses: one that names it
/// exactly, else the first whose wildcard covers it, else the first.
pub fn chosen_for<'a>(
    certificates: &'a [CertificatePem],
    name: Option<&str>,
) -> Option<&'a CertificatePem> {
    let first = certificates.first();
    let Some(name) = name else {
        return first;
    };
    let names: Vec<Vec<String>> = certificates.iter().map(CertificatePem::dns_names).collect();
    let exact = names.iter().position(|n| n.iter().any(|n| n == name));
    let wildcard = || {
        names.iter().position(|n| {
            n.iter().any(|n| {
                n.strip_prefix('*')
                    .is_some_and(|suffix| jwtgate_core::x509::wildcard_covers(suffix, name))
            })
        })
    };
    exact
        .or_else(wildcard)
        .and_then(|i| certificates.get(i))
        .or(first)
}

/// The same chain, key and place; the key file's mode is not compared (a
/// `chmod` alone is no new TLS set-up for a reload to make).
impl PartialEq for CertificatePem {
    fn eq(&self, other: &Self) -> bool {
        self.cert_pem == other.cert_pem
            && self.key_pem == other.key_pem
            && self.location == other.location
    }
}

impl Eq for CertificatePem {}

impl std::fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificatePem({})", self.location)
    }
}

/// `tls:` compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsMaterial {
    /// Where it is in the config: `tls`, or `admin.tls`.
    pub at: &'static str,
    /// The first one answers clients without SNI, or whose SNI no
    /// certificate names.
    pub certificates: Vec<CertificatePem>,
    pub min_version: TlsVersion,
    /// Names as in [`CIPHER_SUITES`]; empty: the library's safe defaults.
    pub cipher_suites: Vec<String>,
    /// Stateless resumption tickets (TLS 1.2 and 1.3).
    pub session_tickets: bool,
    /// Entries of the server-side session cache; 0: none.
    pub session_cache: usize,
}

/// The cipher suites jwtgate's TLS library offers, by their IANA names.
pub const CIPHER_SUITES: [&str; 9] = [
    "TLS13_AES_256_GCM_SHA384",
    "TLS13_AES_128_GCM_SHA256",
    "TLS13_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// The suite a name written otherwise means: in another case, the RFC
/// 8446 name of a TLS 1.3 suite (`TLS_AES_128_GCM_SHA256`), or OpenSSL's
/// name (`ECDHE-RSA-AES128-GCM-SHA256`, as nginx and HAProxy configs
/// hold them).
fn suite_meant(written: &str) -> Option<&'static str> {
    const OPENSSL: [(&str, &str); 6] = [
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ),
    ];
    let upper = written.trim().to_ascii_uppercase();
    let tls13 = upper
        .strip_prefix("TLS_")
        .map(|rest| format!("TLS13_{rest}"));
    CIPHER_SUITES
        .iter()
        .find(|&&name| name == upper || Some(name) == tls13.as_deref())
        .copied()
        .or_else(|| {
            OPENSSL
                .iter()
                .find(|(alias, _)| *alias == upper)
                .map(|&(_, name)| name)
        })
}

/// The default size of the session cache (as rustls's own default).
/// `session_cache` when unset; also the size a node started with the cache
/// off (`0`) holds, so that turning it on by a reload applies at once.
pub const DEFAULT_SESSION_CACHE: u64 = 256;
const MAX_SESSION_CACHE: u64 = 1 << 20;

pub(crate) fn read(mut t: Obj<'_>, errors: &mut Errors) -> RawTls {
    let mut certificates = Vec::new();
    for (loc, v) in t.list("certificates", errors) {
        if let Some(mut c) = crate::reader::obj(v, &loc, errors) {
            certificates.push(RawCertificate {
                cert_file: c.required_string("cert_file", errors).unwrap_or_default(),
                key_file: c.required_string("key_file", errors).unwrap_or_default(),
            });
            c.finish(errors);
        }
    }
    let raw = RawTls {
        cert_file: t.required_string("cert_file", errors).unwrap_or_default(),
        key_file: t.required_string("key_file", errors).unwrap_or_default(),
        certificates,
        min_version: t.string("min_version", errors),
        cipher_suites: t.strings("cipher_suites", errors),
        session_tickets: t.bool("session_tickets", errors),
        session_cache: t.u64("session_cache", errors),
    };
    t.finish(errors);
    raw
}

/// `t`, found at `at` (`tls`, or `admin.tls`), compiled.
pub(crate) fn compile(
    t: &RawTls,
    at: &'static str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<TlsMaterial> {
    let mut certificates = Vec::new();
    let list = child(at, "certificates");
    let pairs = std::iter::once((at.to_owned(), &t.cert_file, &t.key_file)).chain(
        t.certificates
            .iter()
            .enumerate()
            .map(|(i, c)| (index(&list, i), &c.cert_file, &c.key_file)),
    );
    for (loc, cert, key) in pairs {
        if let Some(pem) = certificate(&loc, cert, key, base_dir, errors) {
            certificates.push(pem);
        }
    }
    let min_version = match t.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(other) => {
            errors.add(
                &child(at, "min_version"),
                format!("{other:?} is not a TLS version jwtgate speaks (\"1.2\" or \"1.3\")"),
            );
            TlsVersion::V1_2
        }
    };
    let suites_at = child(at, "cipher_suites");
    let cipher_suites = t.cipher_suites.clone().unwrap_or_default();
    for (i, s) in cipher_suites.iter().enumerate() {
        if !CIPHER_SUITES.contains(&s.as_str()) {
            let hint = suite_meant(s)
                .map(|name| format!(": write it as {name:?}"))
                .unwrap_or_default();
            errors.add(
                &index(&suites_at, i),
                format!(
                    "unknown cipher suite {s:?}{hint} (known: {})",
                    CIPHER_SUITES.join(", ")
                ),
            );
        }
    }
    if t.cipher_suites.is_some() {
        let tls13 = cipher_suites.iter().any(|s| s.starts_with("TLS13_"));
        let tls12 = cipher_suites.iter().any(|s| !s.starts_with("TLS13_"));
        if cipher_suites.is_empty() {
            errors.add(
                &suites_at,
                "must not be empty (leave it out for the defaults)",
            );
        } else if !tls13 {
            errors.add(
                &suites_at,
                "needs at least one TLS 1.3 suite (TLS13_...): TLS 1.3 is always on",
            );
        } else if min_version == TlsVersion::V1_2 && !tls12 {
            errors.add(
                &suites_at,
                "has no TLS 1.2 suite while min_version is 1.2: add one, or set min_version: \"1.3\"",
            );
        }
    }
    let cache = t.session_cache.unwrap_or(DEFAULT_SESSION_CACHE);
    if cache > MAX_SESSION_CACHE {
        errors.add(
            &child(at, "session_cache"),
            format!("at most {MAX_SESSION_CACHE} entries"),
        );
    }
    Some(TlsMaterial {
        at,
        certificates,
        min_version,
        cipher_suites,
        session_tickets: t.session_tickets.unwrap_or(true),
        session_cache: usize::try_from(cache.min(MAX_SESSION_CACHE)).unwrap_or(0),
    })
}

/// What keeps `pem` from being a private key TLS can load, in words an
/// operator can act on.
fn key_problem(pem: &[u8]) -> Option<String> {
    // An encrypted key: PKCS#8's own block, or the traditional OpenSSL
    // headers (`Proc-Type: 4,ENCRYPTED`), which no PEM reader takes.
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Some(
            "is encrypted: the gateway reads unencrypted keys only (decrypt it with \
             `openssl pkey -in KEY -out PLAIN`, and keep PLAIN mode 0600)"
                .into(),
        );
    }
    match pem::parse_many(pem) {
        Err(e) => Some(format!("is not valid PEM: {e}")),
        Ok(blocks) if !blocks.iter().any(|p| p.tag().ends_with("PRIVATE KEY")) => {
            Some("holds no PEM private key".into())
        }
        Ok(_) => None,
    }
}

fn certificate(
    loc: &str,
    cert: &str,
    key: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<CertificatePem> {
    // Both read before either failure returns: every problem is listed.
    let cert_pem = read_file(base_dir, cert, &child(loc, "cert_file"), errors);
    let key_pem = read_file(base_dir, key, &child(loc, "key_file"), errors);
    let (cert_pem, key_pem) = (cert_pem?, key_pem?);
    match pem::parse_many(&cert_pem) {
        Err(e) => errors.add(&child(loc, "cert_file"), format!("is not valid PEM: {e}")),
        Ok(blocks) if !blocks.iter().any(|p| p.tag() == "CERTIFICATE") => {
            errors.add(&child(loc, "cert_file"), "holds no PEM CERTIFICATE")
        }
        Ok(_) => {}
    }
    if let Some(problem) = key_problem(&key_pem) {
        errors.add(&child(loc, "key_file"), problem);
    }
    let key_mode = std::fs::metadata(resolve(base_dir, key))
        .ok()
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    Some(CertificatePem {
        cert_pem,
        key_pem,
        key_mode,
        location: loc.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_written_as_openssl_or_rfc_8446_names_it_is_named_back() {
        for (written, meant) in [
            (
                "ECDHE-RSA-AES128-GCM-SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ),
            (
                "ecdhe-ecdsa-chacha20-poly1305",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            ),
            ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
            ("tls13_aes_256_gcm_sha384", "TLS13_AES_256_GCM_SHA384"),
            (
                "tls_ecdhe_rsa_with_aes_256_gcm_sha384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ),
        ] {
            assert_eq!(suite_meant(written), Some(meant), "{written}");
        }
        for unknown in [
            "DES-CBC3-SHA",
            "TLS_RSA_WITH_AES_128_GCM_SHA256",
            "AES128-SHA",
            "",
        ] {
            assert_eq!(suite_meant(unknown), None, "{unknown}");
        }
    }
}
