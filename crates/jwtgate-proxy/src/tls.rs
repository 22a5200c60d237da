//! TLS on the listeners (rustls with aws-lc-rs): the server config built
//! from `tls:` — certificates chosen by SNI, lowest version, cipher suites,
//! session resumption — and swapped whole on reload, so that a new
//! certificate (SIGHUP after a renewal) serves the next handshake while
//! established connections go on undisturbed.
//!
//! Session resumption: stateless tickets (keys rotated by the library
//! every 6 hours) and/or a server-side cache; both survive reloads that
//! keep the certificates, and start afresh when they change. One
//! TLS 1.3 ticket per full handshake, not rustls's default two: a client
//! keeps one per connection, and the second cost every full handshake a
//! ticket's encryption and bytes on the wire for nothing (bench/tls.sh).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use jwtgate_config::{CertificatePem, ConfigError, TlsMaterial, TlsVersion};
use jwtgate_core::x509::PublicKey;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// What a client that sends plain HTTP to a TLS port gets.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 61\r\nConnection: close\r\n\r\n{\"message\":\"plain HTTP sent to an HTTPS port: use https://\"}\n";

/// TLS 1.3 tickets sent after a full handshake.
const TICKETS_PER_HANDSHAKE: usize = 1;

/// The listeners' TLS, reloadable.
pub struct TlsServer {
    config: ArcSwap<ServerConfig>,
    /// Each served certificate's place in the config and the end of its
    /// validity (unix seconds), for `/metrics`.
    expiries: ArcSwap<Vec<Expiry>>,
    /// What resumes sessions, for the certificates it was made with.
    resumption: Mutex<Resumption>,
    cache_size: usize,
    /// The protocols offered by ALPN.
    alpn: &'static [&'static [u8]],
}

/// Session tickets' keys and the session cache, kept across a reload
/// that keeps the certificates and made afresh when they change: a
/// resumed handshake shows no certificate, so a session begun under one
/// since replaced or removed (a mis-issued certificate pulled, a name no
/// longer served) would be honoured for as long as its ticket lives (an
/// outside audit; nginx ties its sessions to its certificates too).
struct Resumption {
    /// The certificates (chains, keys, places) it was made for.
    certificates: Vec<CertificatePem>,
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<ServerSessionMemoryCache>,
}

impl Resumption {
    fn new(certificates: Vec<CertificatePem>, cache_size: usize) -> Result<Resumption, String> {
        Ok(Resumption {
            certificates,
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| e.to_string())?,
            cache: ServerSessionMemoryCache::new(cache_size),
        })
    }
}

/// The data plane's protocols. http/1.0 too, as nginx offers it: a client
/// that names only it (`curl --http1.0`) was refused with
/// no_application_protocol.
const DATA_PLANE_ALPN: &[&[u8]] = &[b"h2", b"http/1.1", b"http/1.0"];
/// The admin listener's: it speaks HTTP/1.x only.
const HTTP1_ALPN: &[&[u8]] = &[b"http/1.1", b"http/1.0"];

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer { .. }")
    }
}

impl TlsServer {
    /// The data plane's TLS (HTTP/2 and HTTP/1.x).
    pub fn new(m: &TlsMaterial) -> Result<Arc<TlsServer>, String> {
        Self::with_alpn(m, DATA_PLANE_ALPN)
    }

    /// TLS for a listener that speaks HTTP/1.x only (the admin API's).
    pub fn http1(m: &TlsMaterial) -> Result<Arc<TlsServer>, String> {
        Self::with_alpn(m, HTTP1_ALPN)
    }

    fn with_alpn(
        m: &TlsMaterial,
        alpn: &'static [&'static [u8]],
    ) -> Result<Arc<TlsServer>, String> {
        // Off at start: the default size, so that a reload turning it on
        // applies at once.
        let cache_size = match m.session_cache {
            0 => usize::try_from(jwtgate_config::DEFAULT_SESSION_CACHE).unwrap_or(1),
            n => n,
        };
        let server = TlsServer {
            config: ArcSwap::from_pointee(placeholder()?),
            expiries: ArcSwap::from_pointee(Vec::new()),
            resumption: Mutex::new(Resumption::new(m.certificates.clone(), cache_size)?),
            cache_size,
            alpn,
        };
        server.config.store(Arc::new(server.build(m)?));
        server.expiries.store(Arc::new(expiries(m)));
        Ok(Arc::new(server))
    }

    /// Each served certificate's place in the config (`tls`,
    /// `tls.certificates[1]`) and when it expires (unix seconds).
    pub fn expiries(&self) -> Arc<Vec<Expiry>> {
        self.expiries.load_full()
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// The TLS handshake of a connection accepted on `listener` ("data",
    /// "admin"), with the current settings. A failure is counted and logged
    /// at debug with the peer; a client that speaks plain HTTP to the port
    /// (`curl http://host:443/`) is answered `400` in plain HTTP, as nginx
    /// answers it, rather than with a TLS alert it cannot read. The caller
    /// bounds the wait.
    pub async fn accept(
        &self,
        mut stream: tokio::net::TcpStream,
        listener: &'static str,
        peer: std::net::SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        let acceptor = self.acceptor();
        let mut first = [0u8; 1];
        if let Ok(1) = stream.peek(&mut first).await {
            // A TLS record starts with its content type (22: a handshake);
            // an HTTP request with its method's capital letters.
            if first[0].is_ascii_uppercase() {
                use tokio::io::AsyncWriteExt;
                crate::metrics::record_tls_handshake_failure(listener, "plain_http");
                tracing::debug!(%peer, reason = "plain_http", "TLS handshake failed");
                let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
                let _ = stream.shutdown().await;
                // The request's bytes read and dropped before the close
                // (a little, briefly), as nginx lingers: unread, they make
                // the close a reset that some clients show instead of the
                // answer.
                use tokio::io::AsyncReadExt;
                let mut sink = [0u8; 4096];
                let linger = async {
                    let mut left = 64 * 1024;
                    while left > 0 {
                        match stream.read(&mut sink).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => left -= n.min(left),
                        }
                    }
                };
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), linger).await;
                return None;
            }
        }
        match acceptor.accept(stream).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                let reason = crate::metrics::handshake_failure(&e);
                crate::metrics::record_tls_handshake_failure(listener, reason);
                tracing::debug!(error = %e, %peer, reason, "TLS handshake failed");
                None
            }
        }
    }

    /// Puts `m` live for the next handshakes (a reload). Turning the cache
    /// off (`0`) or on applies at once; a different size takes effect on
    /// restart.
    pub fn update(&self, m: &TlsMaterial) -> Result<(), String> {
        let config = self.build(m)?;
        self.config.store(Arc::new(config));
        self.expiries.store(Arc::new(expiries(m)));
        if self.resized(m.session_cache) {
            tracing::warn!(
                "{}.session_cache size changed: the new size takes effect on restart (turning it off, 0, or on again applies at once)",
                m.at
            );
        }
        Ok(())
    }

    /// `entries` asks for a cache of another size than the one this server
    /// holds (`0`, no cache, never does: it is applied at once).
    fn resized(&self, entries: usize) -> bool {
        entries != 0 && entries != self.cache_size
    }

    fn build(&self, m: &TlsMaterial) -> Result<ServerConfig, String> {
        let provider = Arc::new(provider(m));
        let certs = Certificates::load(&m.certificates, &provider).map_err(|e| e.to_string())?;
        let versions: &[&rustls::SupportedProtocolVersion] = match m.min_version {
            TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(certs));
        config.alpn_protocols = self.alpn.iter().map(|p| p.to_vec()).collect();
        let mut resumption = self
            .resumption
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if resumption.certificates != m.certificates {
            *resumption = Resumption::new(m.certificates.clone(), self.cache_size)?;
        }
        match (m.session_tickets, m.session_cache) {
            (true, _) => {
                config.ticketer = Arc::clone(&resumption.ticketer);
                config.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
            }
            (false, 0) => config.send_tls13_tickets = 0,
            (false, _) => config.send_tls13_tickets = TICKETS_PER_HANDSHAKE,
        }
        config.session_storage = if m.session_cache > 0 {
            resumption.cache.clone()
        } else {
            Arc::new(rustls::server::NoServerSessionStorage {})
        };
        Ok(config)
    }
}

/// A served certificate's place in the config (`tls.certificates[1]`) and
/// the end of its validity (unix seconds).
pub type Expiry = (String, i64);

/// The end of each certificate's validity (its leaf's `notAfter`).
fn expiries(m: &TlsMaterial) -> Vec<Expiry> {
    m.certificates
        .iter()
        .filter_map(|c| {
            let leaf = rustls_pemfile::certs(&mut c.cert_pem.as_slice())
                .next()?
                .ok()?;
            let (_, not_after) = jwtgate_core::x509::validity(leaf.as_ref())?;
            Some((c.location.clone(), not_after))
        })
        .collect()
}

/// Checks what the config compiler could not (keys match their
/// certificates, the chains parse), with the config's locations.
pub fn check(m: &TlsMaterial) -> Vec<ConfigError> {
    let provider = provider(m);
    m.certificates
        .iter()
        .filter_map(|c| certified_key(c, &provider).err())
        .collect()
}

fn provider(m: &TlsMaterial) -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !m.cipher_suites.is_empty() {
        provider.cipher_suites.retain(|s| {
            let name = format!("{:?}", s.suite());
            m.cipher_suites.contains(&name)
        });
    }
    provider
}

/// A config whose certificates are set right after (`build` needs the
/// server's ticketer and cache first).
fn placeholder() -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Certificates { all: Vec::new() })))
}

/// The smallest RSA key the crypto library loads (and browsers accept).
const MIN_RSA_BITS: usize = 2048;

fn certified_key(c: &CertificatePem, provider: &CryptoProvider) -> Result<Entry, ConfigError> {
    let err = |at: &str, message: String| ConfigError {
        location: format!("{}.{at}", c.location),
        message,
    };
    let chain = rustls_pemfile::certs(&mut c.cert_pem.as_slice())
        .collect::<Result<Vec<CertificateDer<'static>>, _>>()
        .map_err(|e| err("cert_file", format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first().cloned() else {
        return Err(err("cert_file", "holds no certificate".into()));
    };
    // Read before the key is matched to it: webpki takes v3 certificates
    // only, and rustls said so in a debug dump at key_file (an outside
    // audit: "Other(OtherError(UnsupportedCertVersion))").
    let parsed = match webpki::EndEntityCert::try_from(&leaf) {
        Ok(parsed) => parsed,
        Err(webpki::Error::UnsupportedCertVersion) => {
            return Err(err(
                "cert_file",
                "is an X.509 v1 certificate: TLS here takes v3 ones (with extensions: \
                 `openssl req -x509`, or `openssl x509 -req` with `-extfile`)"
                    .into(),
            ))
        }
        Err(_) => {
            return Err(err(
                "cert_file",
                "the first certificate does not parse as X.509".into(),
            ))
        }
    };
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut c.key_pem.as_slice())
        .map_err(|e| err("key_file", format!("not a PEM private key: {e}")))?
        .ok_or_else(|| err("key_file", "holds no private key".into()))?;
    let small_rsa = match jwtgate_core::x509::public_key(&leaf) {
        Some(PublicKey::Rsa { bits: Some(bits) }) => Some(bits).filter(|&b| b < MIN_RSA_BITS),
        _ => None,
    };
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|e| match (e, small_rsa) {
        (rustls::Error::InconsistentKeys(_), _) => err(
            "key_file",
            "is not the private key of cert_file's first certificate (the server's own \
             certificate comes first in cert_file, the CAs that signed it after it)"
                .into(),
        ),
        // aws-lc-rs loads no RSA key under 2048 bits, and says only that
        // the key does not parse.
        (_, Some(bits)) => err(
            "key_file",
            format!(
                "is a {bits}-bit RSA key: too small, TLS needs at least {MIN_RSA_BITS} bits \
                 (browsers refuse smaller ones too); make a new key and certificate"
            ),
        ),
        (rustls::Error::InvalidCertificate(_), _) => err(
            "cert_file",
            "the first certificate's public key cannot be read".into(),
        ),
        (other, None) if other.to_string().contains("failed to parse private key") => err(
            "key_file",
            "is not a kind of key TLS takes here: RSA (2048 bits or more), ECDSA on \
             P-256, P-384 or P-521, or Ed25519"
                .into(),
        ),
        (other, None) => err(
            "key_file",
            format!("cannot be used with the certificate: {other}"),
        ),
    })?;
    let (mut exact, mut wildcard) = (Vec::new(), Vec::new());
    for name in parsed.valid_dns_names() {
        let name = name.to_ascii_lowercase();
        match name.strip_prefix('*') {
            // webpki takes a wildcard only as the whole leftmost label.
            Some(suffix) if suffix.starts_with('.') => wildcard.push(suffix.to_owned()),
            Some(_) => {}
            None => exact.push(name),
        }
    }
    Ok(Entry {
        key: Arc::new(key),
        exact,
        wildcard,
    })
}

struct Entry {
    key: Arc<CertifiedKey>,
    /// The leaf's DNS names that are not wildcards, lower case: a client's
    /// SNI equal to one picks this certificate before any wildcard does.
    exact: Vec<String>,
    /// The leaf's wildcard names without their `*`, lower case
    /// (`*.example.com` as `.example.com`), parsed once at load.
    wildcard: Vec<String>,
}

/// Whether one of the wildcard names (as `Entry::wildcard` keeps them)
/// covers `name` as browsers read it (RFC 6125 §6.4.3): the `*` stands for
/// exactly one whole, non-empty label.
fn wildcard_covers(wildcards: &[String], name: &str) -> bool {
    wildcards
        .iter()
        .any(|suffix| jwtgate_core::x509::wildcard_covers(suffix, name))
}

/// Chooses a certificate by SNI: one that names it exactly, else the first
/// whose names cover it (wildcards as browsers read them), else the first
/// one. Exact before wildcard, as HAProxy and nginx choose.
#[derive(Debug)]
struct Certificates {
    all: Vec<Entry>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entry { .. }")
    }
}

impl Certificates {
    fn load(
        pems: &[CertificatePem],
        provider: &CryptoProvider,
    ) -> Result<Certificates, ConfigError> {
        let all = pems
            .iter()
            .map(|c| certified_key(c, provider))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Certificates { all })
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let first = self.all.first()?;
        if self.all.len() == 1 {
            return Some(Arc::clone(&first.key));
        }
        let Some(asked) = hello.server_name() else {
            return Some(Arc::clone(&first.key));
        };
        let bare = asked.strip_suffix('.').unwrap_or(asked);
        if let Some(exact) = self
            .all
            .iter()
            .find(|e| e.exact.iter().any(|n| n.eq_ignore_ascii_case(bare)))
        {
            return Some(Arc::clone(&exact.key));
        }
        let chosen = self.all.iter().find(|e| wildcard_covers(&e.wildcard, bare));
        Some(Arc::clone(&chosen.unwrap_or(first).key))
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_covers;

    #[test]
    fn a_wildcard_covers_one_whole_label_in_any_case() {
        let wildcards = vec![".www.example.test".to_owned()];
        for covered in [
            "cart.www.example.test",
            "CART.WWW.Example.Test",
            "x.www.example.test",
        ] {
            assert!(wildcard_covers(&wildcards, covered), "{covered}");
        }
        for not in [
            "www.example.test",
            ".www.example.test",
            "a.b.www.example.test",
            "cartwww.example.test",
            "cart.www.example.test.evil",
            "example.test",
            "",
        ] {
            assert!(!wildcard_covers(&wildcards, not), "{not}");
        }
        assert!(!wildcard_covers(&[], "cart.www.example.test"));
    }
}
