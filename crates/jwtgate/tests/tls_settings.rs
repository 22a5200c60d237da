//! The listeners' TLS settings an operator expects from HAProxy or nginx,
//! against the real binary with real rustls clients: certificates chosen by
//! SNI, the lowest version, the cipher suites, session resumption on and
//! off, a certificate replaced by SIGHUP without dropping the connections
//! already open, and keys that do not go with their certificate refused
//! with their location. Test certificates beyond testdata/tls are made by
//! `openssl` at test time.

#![allow(clippy::unwrap_used)]

mod admin_support;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use admin_support::Node;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, SupportedProtocolVersion};
use support::run_cli;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tls");

/// A self-signed certificate for `name`, as (cert, key) files in `dir`.
fn self_signed(dir: &Path, name: &str, tag: &str) -> (PathBuf, PathBuf) {
    self_signed_key(
        dir,
        name,
        tag,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    )
}

/// Runs `openssl` with `args`; panics with what it said if it fails.
fn openssl<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed (./test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A path as an argument.
fn arg(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The same with `openssl req -newkey` arguments of one's own.
fn self_signed_key(dir: &Path, name: &str, tag: &str, newkey: &[&str]) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{tag}.crt"));
    let key = dir.join(format!("{tag}.key"));
    let mut args = vec!["req", "-x509", "-newkey"];
    args.extend_from_slice(newkey);
    let (subject, alt) = (format!("/CN={name}"), format!("subjectAltName=DNS:{name}"));
    let (key_arg, cert_arg) = (arg(&key), arg(&cert));
    args.extend_from_slice(&[
        "-nodes",
        "-days",
        "2",
        "-subj",
        &subject,
        "-addext",
        &alt,
        // A leaf, not a CA (openssl's default for -x509): webpki refuses a
        // CA certificate as a server's.
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        &key_arg,
        "-out",
        &cert_arg,
    ]);
    openssl(&args);
    (cert, key)
}

fn roots(pem_file: &Path) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(pem_file).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert: CertificateDer<'static> = cert.unwrap();
        roots.add(cert).unwrap();
    }
    roots
}

fn client(trust: &Path, versions: &[&'static SupportedProtocolVersion]) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(trust))
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c
}

fn default_client(trust: &Path) -> ClientConfig {
    client(trust, rustls::DEFAULT_VERSIONS)
}

async fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())
}

/// A keep-alive HTTP/1.1 client on one TLS connection.
struct Conn {
    send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Conn {
    async fn open(tls: TlsStream<TcpStream>) -> Conn {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        Conn { send }
    }

    async fn get(&mut self, path: &str) -> u16 {
        let req = hyper::Request::get(path)
            .header("host", "localhost")
            .body(Empty::new())
            .unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await.unwrap();
        status
    }
}

fn config(tls: &str) -> String {
    node_config(&format!(
        "admin: {{ listen: \"127.0.0.1:0\", api_key: \"{}\" }}\ntls: {tls}\n",
        admin_support::KEY
    ))
}

/// A node with an echo route; `listeners`: its `admin:` and `tls:` lines.
fn node_config(listeners: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
{listeners}store: {{ path: data }}
consumers: []
routes:
  - name: echo
    paths: ["/*"]
    upstream: {{ echo: true }}
"#
    )
}

/// The test certificate and key copied into `dir` as `<tag>.crt` and
/// `<tag>.key`, for a renewal to replace, and the `tls:` value naming them.
fn renewable_certificate(dir: &Path, tag: &str) -> (PathBuf, PathBuf, String) {
    let cert = dir.join(format!("{tag}.crt"));
    let key = dir.join(format!("{tag}.key"));
    std::fs::copy(format!("{TLS}/server.crt"), &cert).unwrap();
    std::fs::copy(format!("{TLS}/server.key"), &key).unwrap();
    let tls = tls_of(&cert, &key);
    (cert, key, tls)
}

/// The `tls:` value naming `cert` and `key`.
fn tls_of(cert: &Path, key: &Path) -> String {
    format!(
        r#"{{ cert_file: "{}", key_file: "{}" }}"#,
        cert.display(),
        key.display()
    )
}

/// A node serving the test CA's certificate from files in a directory of
/// their own (a directory watch sees only theirs), to be renewed: the
/// node's directory, the certificate and key files, the node.
async fn node_with_renewable_certificate() -> (tempfile::TempDir, PathBuf, PathBuf, Node) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (cert, key, tls) = renewable_certificate(&certs, "live");
    let node = Node::start(dir.path(), &config(&tls));
    assert!(serves(node.addr, &ca()).await);
    (dir, cert, key, node)
}

/// Whether the node at `addr` serves `localhost` a certificate `trust`
/// (a PEM file) lets a client accept.
async fn serves(addr: SocketAddr, trust: &Path) -> bool {
    connect(addr, &Arc::new(default_client(trust)), "localhost")
        .await
        .is_ok()
}

fn ca() -> PathBuf {
    PathBuf::from(format!("{TLS}/ca.crt"))
}

fn default_tls(extra: &str) -> String {
    format!(r#"{{ cert_file: "{TLS}/server.crt", key_file: "{TLS}/server.key"{extra} }}"#)
}

#[tokio::test]
async fn sni_chooses_among_several_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let (api_cert, api_key) = self_signed(dir.path(), "api.example.test", "api");
    let (www_cert, www_key) = self_signed(dir.path(), "*.www.example.test", "www");
    // Listed after the wildcard that also covers it: an exact name is
    // chosen first, as HAProxy and nginx choose.
    let (shop_cert, shop_key) = self_signed(dir.path(), "shop.www.example.test", "shop");
    let extra = format!(
        r#", certificates: [{{ cert_file: "{}", key_file: "{}" }}, {{ cert_file: "{}", key_file: "{}" }}, {{ cert_file: "{}", key_file: "{}" }}]"#,
        api_cert.display(),
        api_key.display(),
        www_cert.display(),
        www_key.display(),
        shop_cert.display(),
        shop_key.display()
    );
    let node = Node::start(dir.path(), &config(&default_tls(&extra)));
    let api = Arc::new(default_client(&api_cert));
    let www = Arc::new(default_client(&www_cert));
    let shop = Arc::new(default_client(&shop_cert));
    let local = Arc::new(default_client(&ca()));
    if let Err(e) = connect(node.addr, &api, "api.example.test").await {
        panic!("api.example.test: {e}");
    }
    assert!(
        connect(node.addr, &www, "cart.www.example.test")
            .await
            .is_ok(),
        "wildcard"
    );
    // A wildcard stands for one label only: a deeper name gets the first
    // certificate, which the client trusting only the wildcard refuses.
    assert!(
        connect(node.addr, &www, "a.cart.www.example.test")
            .await
            .is_err(),
        "a wildcard covers one label"
    );
    if let Err(e) = connect(node.addr, &shop, "shop.www.example.test").await {
        panic!("an exact name before an earlier wildcard: {e}");
    }
    if let Err(e) = connect(node.addr, &shop, "SHOP.www.example.test").await {
        panic!("in any case: {e}");
    }
    assert!(
        connect(node.addr, &local, "localhost").await.is_ok(),
        "the first one by name"
    );
    // A name no certificate covers gets the first one, which the client
    // trusting only the api certificate refuses.
    let err = connect(node.addr, &api, "other.example.test")
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    let mut conn = Conn::open(connect(node.addr, &api, "api.example.test").await.unwrap()).await;
    assert_eq!(conn.get("/x").await, 200);
}

#[tokio::test]
async fn min_version_and_cipher_suites() {
    let dir = tempfile::tempdir().unwrap();
    let tls12 = Arc::new(client(&ca(), &[&rustls::version::TLS12]));
    // By default TLS 1.2 is accepted.
    let node = Node::start(dir.path(), &config(&default_tls("")));
    let s = connect(node.addr, &tls12, "localhost").await.unwrap();
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    drop(node);
    let dir = tempfile::tempdir().unwrap();
    let only13 =
        default_tls(r#", min_version: "1.3", cipher_suites: [TLS13_CHACHA20_POLY1305_SHA256]"#);
    let node = Node::start(dir.path(), &config(&only13));
    assert!(
        connect(node.addr, &tls12, "localhost").await.is_err(),
        "TLS 1.2 refused"
    );
    let s = connect(node.addr, &Arc::new(default_client(&ca())), "localhost")
        .await
        .unwrap();
    let suite = s.get_ref().1.negotiated_cipher_suite().unwrap();
    assert_eq!(
        format!("{:?}", suite.suite()),
        "TLS13_CHACHA20_POLY1305_SHA256"
    );
    // A client without that suite cannot connect.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .retain(|s| format!("{:?}", s.suite()) == "TLS13_AES_128_GCM_SHA256");
    let aes_only = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&ca()))
        .with_no_client_auth();
    assert!(connect(node.addr, &Arc::new(aes_only), "localhost")
        .await
        .is_err());
}

/// TLS 1.2 suites that none of a certificate's key signs with: `check`
/// warns, and the warning is true (a TLS 1.2 client fails, TLS 1.3 works).
#[tokio::test]
async fn check_warns_when_no_tls12_suite_fits_a_certificates_key() {
    let dir = tempfile::tempdir().unwrap();
    let suites = |tls12: &str| {
        config(&default_tls(&format!(
            r#", cipher_suites: [TLS13_AES_128_GCM_SHA256, {tls12}]"#
        )))
    };
    let path = dir.path().join("suites.yaml");
    let warning = "warning: tls.cert_file: has an ECDSA key, and tls.cipher_suites holds no TLS 1.2 suite for it";
    // testdata/tls/server.crt holds an ECDSA P-256 key.
    std::fs::write(&path, suites("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(!out.stderr.contains(warning), "{}", out.all());
    let rsa_only = suites("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    std::fs::write(&path, &rsa_only).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(out.stderr.contains(warning), "{}", out.all());

    let node = Node::start(dir.path(), &rsa_only);
    let tls12 = Arc::new(client(&ca(), &[&rustls::version::TLS12]));
    assert!(
        connect(node.addr, &tls12, "localhost").await.is_err(),
        "a TLS 1.2 client finds no suite"
    );
    assert!(
        connect(node.addr, &Arc::new(default_client(&ca())), "localhost")
            .await
            .is_ok()
    );
}

/// The kind of the second of two handshakes with one client config (whose
/// session store keeps what the first one got).
async fn second_handshake(
    addr: SocketAddr,
    versions: &[&'static SupportedProtocolVersion],
) -> HandshakeKind {
    let mut c = client(&ca(), versions);
    c.resumption = Resumption::in_memory_sessions(16);
    let c = Arc::new(c);
    let mut first = Conn::open(connect(addr, &c, "localhost").await.unwrap()).await;
    // TLS 1.3 tickets arrive after the handshake: one exchange takes them in.
    assert_eq!(first.get("/x").await, 200);
    let second = connect(addr, &c, "localhost").await.unwrap();
    second.get_ref().1.handshake_kind().unwrap()
}

#[tokio::test]
async fn session_resumption_on_and_off() {
    let v13: &[&'static SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let v12: &[&'static SupportedProtocolVersion] = &[&rustls::version::TLS12];
    for (settings, expected) in [
        ("", HandshakeKind::Resumed),
        (", session_tickets: false", HandshakeKind::Resumed),
        (
            ", session_tickets: false, session_cache: 0",
            HandshakeKind::Full,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(dir.path(), &config(&default_tls(settings)));
        for versions in [v13, v12] {
            let kind = second_handshake(node.addr, versions).await;
            assert_eq!(kind, expected, "{settings:?}, {versions:?}");
        }
    }
}

#[tokio::test]
async fn a_reload_turns_resumption_off_at_once_and_only_a_new_cache_size_waits() {
    let v12: &[&'static SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let dir = tempfile::tempdir().unwrap();
    // Started with resumption off.
    let off = ", session_tickets: false, session_cache: 0";
    let node = Node::start(dir.path(), &config(&default_tls(off)));
    assert_eq!(second_handshake(node.addr, v12).await, HandshakeKind::Full);
    // The file watch may apply an edit before its SIGHUP does: either
    // reads the whole file, so one more reload means it is live.
    let reload = |settings: &str| {
        let reloaded = "TLS certificates and settings reloaded";
        let before = node.logs().matches(reloaded).count();
        std::fs::write(&node.config_path, config(&default_tls(settings))).unwrap();
        node.signal("HUP");
        node.wait_log(reloaded, before + 1);
    };
    let waits = "session_cache size changed: the new size takes effect on restart";
    // On, at the default size: at once, and not said to wait for a restart.
    let on = ", session_tickets: false";
    reload(on);
    assert_eq!(
        second_handshake(node.addr, v12).await,
        HandshakeKind::Resumed
    );
    // Off, and on again: at once too.
    reload(off);
    assert_eq!(second_handshake(node.addr, v12).await, HandshakeKind::Full);
    reload(on);
    assert_eq!(
        second_handshake(node.addr, v12).await,
        HandshakeKind::Resumed
    );
    assert!(!node.logs().contains(waits), "{}", node.logs());
    // Another size: that alone waits for a restart, and says so.
    reload(", session_tickets: false, session_cache: 512");
    node.wait_log(waits, 1);
}

#[tokio::test]
async fn a_session_begun_under_a_replaced_certificate_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, tls) = renewable_certificate(dir.path(), "live");
    let (new_cert, new_key) = self_signed(dir.path(), "localhost", "renewed");
    // Clients that trust both certificates: a refused handshake is not
    // what tells a resumed session from a full one here.
    let both = dir.path().join("both.crt");
    let mut pem = std::fs::read(ca()).unwrap();
    pem.extend(std::fs::read(&new_cert).unwrap());
    std::fs::write(&both, pem).unwrap();
    let node = Node::start(dir.path(), &config(&tls));
    let v13: &[&'static SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let v12: &[&'static SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let clients: Vec<Arc<ClientConfig>> = [v13, v12]
        .into_iter()
        .map(|versions| {
            let mut c = client(&both, versions);
            c.resumption = Resumption::in_memory_sessions(16);
            Arc::new(c)
        })
        .collect();
    // Each handshake's kind; an exchange takes in the TLS 1.3 ticket that
    // the next handshake resumes with.
    let handshakes = || async {
        let mut kinds = Vec::new();
        for c in &clients {
            let tls = connect(node.addr, c, "localhost").await.unwrap();
            kinds.push(tls.get_ref().1.handshake_kind().unwrap());
            assert_eq!(Conn::open(tls).await.get("/x").await, 200);
        }
        kinds
    };
    handshakes().await;
    // A reload of other TLS settings keeps the sessions.
    let suites = "TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256, \
        TLS13_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, \
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256";
    let settings = tls.replace(" }", &format!(", cipher_suites: [{suites}] }}"));
    std::fs::write(&node.config_path, config(&settings)).unwrap();
    node.signal("HUP");
    node.wait_log("TLS certificates and settings reloaded", 1);
    assert_eq!(
        handshakes().await,
        [HandshakeKind::Resumed, HandshakeKind::Resumed]
    );
    // A renewal: the sessions begun under the old certificate are not
    // resumed; each client sees the new one in a full handshake.
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    node.signal("HUP");
    node.wait_log("TLS certificates and settings reloaded", 2);
    assert_eq!(
        handshakes().await,
        [HandshakeKind::Full, HandshakeKind::Full]
    );
    // And the sessions begun under the new one resume.
    assert_eq!(
        handshakes().await,
        [HandshakeKind::Resumed, HandshakeKind::Resumed]
    );
}

#[tokio::test]
async fn sighup_replaces_the_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, tls) = renewable_certificate(dir.path(), "live");
    let node = Node::start(dir.path(), &config(&tls));
    let old_trust = Arc::new(default_client(&ca()));
    let mut open = Conn::open(connect(node.addr, &old_trust, "localhost").await.unwrap()).await;
    assert_eq!(open.get("/before").await, 200);
    // The renewal: a new certificate and key, then SIGHUP.
    let (new_cert, new_key) = self_signed(dir.path(), "localhost", "renewed");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    node.signal("HUP");
    node.wait_log("TLS certificates and settings reloaded", 1);
    let new_trust = Arc::new(default_client(&new_cert));
    assert!(
        connect(node.addr, &new_trust, "localhost").await.is_ok(),
        "the new certificate serves"
    );
    // A client that trusts only the old one (and holds no session ticket
    // from before: a resumption would not show a certificate) is refused.
    let fresh_old = Arc::new(default_client(&ca()));
    assert!(
        connect(node.addr, &fresh_old, "localhost").await.is_err(),
        "the old one is gone"
    );
    assert_eq!(
        open.get("/after").await,
        200,
        "the connection opened before stays up"
    );
    // A key that does not go with its certificate, in the same edit as a
    // new lowest version: the reload is refused as a whole (it had been
    // counted "applied", with the version change dropped and never tried
    // again), the renewed certificate stays.
    let (_, wrong_key) = self_signed(dir.path(), "localhost", "stray");
    std::fs::copy(&wrong_key, &key).unwrap();
    let tls13 = format!(
        r#"{{ cert_file: "{}", key_file: "{}", min_version: "1.3" }}"#,
        cert.display(),
        key.display()
    );
    let reloads = |outcome: &str| {
        node.metrics()
            .value("jwtgate_config_reloads_total", &[("outcome", outcome)])
    };
    let (applied, invalid) = (reloads("applied"), reloads("invalid"));
    // The watcher may see the edit too, before or after the SIGHUP: the
    // edit is refused once or twice, never applied.
    std::fs::write(&node.config_path, config(&tls13)).unwrap();
    node.signal("HUP");
    node.wait_log("tls.key_file: is not the private key of cert_file", 1);
    node.wait_log("config reload rejected", 1);
    assert!(reloads("invalid") > invalid, "{}", node.logs());
    assert_eq!(reloads("applied"), applied, "{}", node.logs());
    assert!(connect(node.addr, &new_trust, "localhost").await.is_ok());
    let tls12 = Arc::new(client(&new_cert, &[&rustls::version::TLS12]));
    assert!(
        connect(node.addr, &tls12, "localhost").await.is_ok(),
        "nothing of the refused edit is live"
    );
    // The key put right: the edit goes live, version and all.
    std::fs::copy(&new_key, &key).unwrap();
    node.signal("HUP");
    node.wait_log("TLS certificates and settings reloaded", 2);
    assert!(connect(node.addr, &tls12, "localhost").await.is_err());
    assert!(connect(node.addr, &new_trust, "localhost").await.is_ok());
}

/// A certificate of `name` signed by its own key with the given validity
/// (`openssl ca -startdate/-enddate`, as `req -x509` takes only a number of
/// days from now): (cert, key) files in `dir`.
fn dated_certificate(
    dir: &Path,
    name: &str,
    tag: &str,
    from: &str,
    to: &str,
) -> (PathBuf, PathBuf) {
    let ca = dir.join(format!("{tag}-ca"));
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::write(ca.join("index.txt"), "").unwrap();
    std::fs::write(ca.join("serial"), "01\n").unwrap();
    let cnf = ca.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ ca ]\ndefault_ca = own\n[ own ]\ndatabase = {0}/index.txt\nnew_certs_dir = {0}\n\
             serial = {0}/serial\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n\
             unique_subject = no\n[ any ]\ncommonName = supplied\n",
            ca.display()
        ),
    )
    .unwrap();
    let (cert, key, csr) = (
        dir.join(format!("{tag}.crt")),
        dir.join(format!("{tag}.key")),
        ca.join("req.csr"),
    );
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        &format!("subjectAltName=DNS:{name}"),
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        &arg(&key),
        "-out",
        &arg(&csr),
    ]);
    openssl(&[
        "ca",
        "-batch",
        "-notext",
        "-config",
        &arg(&cnf),
        "-selfsign",
        "-keyfile",
        &arg(&key),
        "-in",
        &arg(&csr),
        "-startdate",
        from,
        "-enddate",
        to,
        "-out",
        &arg(&cert),
    ]);
    (cert, key)
}

/// A reload put in service a certificate that had expired in place of one
/// clients accepted: every handshake failed until the next good reload (a
/// renewal gone wrong: the old file copied back, the wrong file; an
/// outside audit). Now such a reload is refused as a whole, said with both
/// dates, and the certificate serving stays, also when the list's order
/// changed (compared as SNI chooses, not by place: the review); one not
/// valid yet is served, with a warning; a good one then goes live.
#[tokio::test]
async fn a_reload_never_puts_an_expired_certificate_in_place_of_a_good_one() {
    let (dir, cert, key, node) = node_with_renewable_certificate().await;
    let reloads = |outcome: &str| {
        node.metrics()
            .value("jwtgate_config_reloads_total", &[("outcome", outcome)])
    };
    let applied = reloads("applied");
    let (expired_cert, expired_key) = dated_certificate(
        dir.path(),
        "localhost",
        "expired",
        "20200101000000Z",
        "20200201000000Z",
    );
    std::fs::copy(&expired_key, &key).unwrap();
    std::fs::copy(&expired_cert, &cert).unwrap();
    node.signal("HUP");
    node.wait_log(
        "tls.cert_file: expired on 2020-02-01, and would be served to clients without SNI in \
         place of a certificate good until",
        1,
    );
    assert!(serves(node.addr, &ca()).await, "{}", node.logs());
    assert_eq!(reloads("applied"), applied, "{}", node.logs());
    // The expired one listed second, behind a good one for another name:
    // still what `localhost` would get.
    let (api_cert, api_key) = self_signed(dir.path(), "api.example.test", "api");
    let two = format!(
        r#"{{ cert_file: "{}", key_file: "{}", certificates: [{}] }}"#,
        api_cert.display(),
        api_key.display(),
        tls_of(&cert, &key)
    );
    std::fs::write(&node.config_path, config(&two)).unwrap();
    node.signal("HUP");
    node.wait_log(
        "tls.certificates[0].cert_file: expired on 2020-02-01, and would be served for localhost",
        1,
    );
    assert!(serves(node.addr, &ca()).await, "{}", node.logs());
    assert_eq!(reloads("applied"), applied, "{}", node.logs());
    // A good renewal goes live.
    let (new_cert, new_key) = self_signed(dir.path(), "localhost", "renewed");
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    node.signal("HUP");
    node.wait_log("TLS certificates and settings reloaded", 1);
    assert!(serves(node.addr, &new_cert).await, "{}", node.logs());
    assert!(!serves(node.addr, &ca()).await);
}

/// A renewal written over the certificate and key files goes live without
/// a SIGHUP: the node watches the files its config names. Written in two
/// steps (the certificate, then its key), the half-done renewal is refused
/// and the old certificate serves until the key lands.
#[tokio::test]
async fn a_certificate_renewed_on_disk_goes_live_without_a_sighup() {
    let (dir, cert, key, node) = node_with_renewable_certificate().await;
    let (new_cert, new_key) = self_signed(dir.path(), "localhost", "renewed");
    // As certbot does: new files beside, renamed over the old ones.
    let replace = |from: &Path, to: &Path| {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    };
    replace(&new_cert, &cert);
    replace(&new_key, &key);
    node.wait_log("TLS certificates and settings reloaded", 1);
    assert!(
        serves(node.addr, &new_cert).await,
        "the renewed certificate serves\n{}",
        node.logs()
    );
    assert!(!serves(node.addr, &ca()).await, "the old one is gone");
    node.wait_log("trigger=NamedFileChanged", 1);
}

/// The config names links (`tls.crt` -> `../live/tls.crt`) whose own
/// links a renewal re-points (certbot's `live/` -> `archive/`), in a
/// directory the node does not watch: what the files are is looked at
/// again every 5 s, and the renewal goes live all the same.
#[tokio::test]
async fn a_renewal_behind_links_in_another_directory_goes_live() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (conf, live, archive) = (
        dir.path().join("conf"),
        dir.path().join("live"),
        dir.path().join("archive"),
    );
    for d in [&conf, &live, &archive] {
        std::fs::create_dir(d).unwrap();
    }
    let (cert1, key1, _) = renewable_certificate(&archive, "1");
    symlink(&cert1, live.join("tls.crt")).unwrap();
    symlink(&key1, live.join("tls.key")).unwrap();
    symlink("../live/tls.crt", conf.join("tls.crt")).unwrap();
    symlink("../live/tls.key", conf.join("tls.key")).unwrap();
    let tls = tls_of(&conf.join("tls.crt"), &conf.join("tls.key"));
    let node = Node::start(dir.path(), &config(&tls));
    assert!(serves(node.addr, &ca()).await);
    let (cert2, key2) = self_signed(&archive, "localhost", "2");
    // As certbot re-points its links: a new link renamed over the old.
    for (target, link) in [(&cert2, "tls.crt"), (&key2, "tls.key")] {
        let tmp = live.join(format!("{link}.new"));
        symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, live.join(link)).unwrap();
    }
    node.wait_log("TLS certificates and settings reloaded", 1);
    assert!(
        serves(node.addr, &cert2).await,
        "the renewed certificate serves\n{}",
        node.logs()
    );
}

/// A Kubernetes Secret mounted as a volume: `tls.crt` -> `..data/tls.crt`,
/// `..data` -> `..v1`, and an update swaps `..data` to a new directory in
/// one rename (no event names `tls.crt`): it goes live all the same (an
/// outside audit: the swap was read as an unchanged config).
#[tokio::test]
async fn a_kubernetes_secret_update_goes_live() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    let v1 = secret.join("..v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::copy(format!("{TLS}/server.crt"), v1.join("tls.crt")).unwrap();
    std::fs::copy(format!("{TLS}/server.key"), v1.join("tls.key")).unwrap();
    symlink("..v1", secret.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        symlink(format!("..data/{f}"), secret.join(f)).unwrap();
    }
    let tls = tls_of(&secret.join("tls.crt"), &secret.join("tls.key"));
    let node = Node::start(dir.path(), &config(&tls));
    assert!(serves(node.addr, &ca()).await);
    let v2 = secret.join("..v2");
    std::fs::create_dir(&v2).unwrap();
    let (cert2, key2) = self_signed(dir.path(), "localhost", "v2");
    std::fs::copy(&cert2, v2.join("tls.crt")).unwrap();
    std::fs::copy(&key2, v2.join("tls.key")).unwrap();
    symlink("..v2", secret.join("..data_tmp")).unwrap();
    std::fs::rename(secret.join("..data_tmp"), secret.join("..data")).unwrap();
    node.wait_log("TLS certificates and settings reloaded", 1);
    assert!(
        serves(node.addr, &cert2).await,
        "the updated certificate serves\n{}",
        node.logs()
    );
}

#[test]
fn check_locates_bad_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stray_key) = self_signed(dir.path(), "localhost", "stray");
    let (api_cert, _) = self_signed(dir.path(), "api.example.test", "api");
    let tls = format!(
        r#"{{ cert_file: "{TLS}/server.crt", key_file: "{TLS}/server.key", min_version: "1.1", cipher_suites: [TLS_RSA_WITH_RC4_128_SHA], session_cache: 99999999, certificates: [{{ cert_file: "{}", key_file: "{}" }}] }}"#,
        api_cert.display(),
        stray_key.display()
    );
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, config(&tls)).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(1), "{}", out.all());
    let all = out.all();
    // The key that is not its certificate's is listed with the others (it
    // was said only once they were mended).
    for located in [
        "tls.min_version",
        "tls.cipher_suites[0]",
        "tls.session_cache",
        "tls.certificates[0].key_file: is not the private key of cert_file",
    ] {
        assert!(all.contains(located), "{located} not reported:\n{all}");
    }
    // And alone.
    let tls = format!(
        r#"{{ cert_file: "{TLS}/server.crt", key_file: "{TLS}/server.key", certificates: [{{ cert_file: "{}", key_file: "{}" }}] }}"#,
        api_cert.display(),
        stray_key.display()
    );
    std::fs::write(&path, config(&tls)).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.all()
            .contains("tls.certificates[0].key_file: is not the private key of cert_file"),
        "{}",
        out.all()
    );

    // A 1024-bit RSA key is refused as too small, not as a parse failure.
    let (small_cert, small_key) =
        self_signed_key(dir.path(), "small.example.test", "small", &["rsa:1024"]);
    let tls = format!(
        r#"{{ cert_file: "{TLS}/server.crt", key_file: "{TLS}/server.key", certificates: [{{ cert_file: "{}", key_file: "{}" }}] }}"#,
        small_cert.display(),
        small_key.display()
    );
    std::fs::write(&path, config(&tls)).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.all().contains(
            "tls.certificates[0].key_file: is a 1024-bit RSA key: too small, TLS needs at least 2048 bits"
        ),
        "{}",
        out.all()
    );
}

/// An X.509 v1 certificate (no extensions: what `openssl x509 -req`
/// makes without `-extfile`) is named as one, at cert_file; it had been
/// "tls.key_file: cannot be used with the certificate: invalid peer
/// certificate: Other(OtherError(UnsupportedCertVersion))".
#[test]
fn check_names_a_v1_certificate() {
    // A fixture: OpenSSL after 3.0 makes v3 certificates by default.
    let dir = tempfile::tempdir().unwrap();
    let (v1, key) = (format!("{TLS}/v1.crt"), format!("{TLS}/v1.key"));
    let path = dir.path().join("v1.yaml");
    let tls = format!(r#"{{ cert_file: "{v1}", key_file: "{key}" }}"#);
    std::fs::write(&path, config(&tls)).unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.all()
            .contains("tls.cert_file: is an X.509 v1 certificate: TLS here takes v3 ones"),
        "{}",
        out.all()
    );
    assert!(!out.all().contains("OtherError"), "{}", out.all());
}

/// An encrypted key is named as one, in its two PEM forms (PKCS#8's own
/// block, and the traditional OpenSSL headers); had been "holds no private
/// key" and "not a PEM private key: InvalidCharacter(45)".
#[test]
fn check_names_an_encrypted_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "localhost", "plain");
    let path = dir.path().join("enc.yaml");
    for (tag, args) in [
        ("pkcs8", vec!["pkey", "-aes256"]),
        ("traditional", vec!["ec", "-aes256"]),
    ] {
        let encrypted = dir.path().join(format!("{tag}.key"));
        let (key_arg, encrypted_arg) = (arg(&key), arg(&encrypted));
        let mut args = args;
        args.extend_from_slice(&[
            "-in",
            &key_arg,
            "-passout",
            "pass:secret-pass",
            "-out",
            &encrypted_arg,
        ]);
        openssl(&args);
        let tls = format!(
            r#"{{ cert_file: "{}", key_file: "{}" }}"#,
            cert.display(),
            encrypted.display()
        );
        std::fs::write(&path, config(&tls)).unwrap();
        let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
        assert_eq!(out.code(), Some(1), "{}", out.all());
        assert!(
            out.all()
                .contains("tls.key_file: is encrypted: the gateway reads unencrypted keys only"),
            "{tag}: {}",
            out.all()
        );
        assert!(!out.all().contains("secret-pass"));
    }
}

/// An admin write keeps the certificates being served: a renewal half
/// written on disk (the new key, the old certificate) refused an unrelated
/// consumer write as "invalid consumer" at tls.key_file, and a finished one
/// went live with the next write, before its SIGHUP.
#[tokio::test]
async fn an_admin_write_keeps_the_certificates_being_served() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, tls) = renewable_certificate(dir.path(), "live");
    let node = Node::start(dir.path(), &config(&tls));
    let (new_cert, new_key) = self_signed(dir.path(), "localhost", "renewed");
    std::fs::copy(&new_key, &key).unwrap();
    let put = |name: &str| {
        node.admin(
            "PUT",
            &format!("/admin/v1/consumers/{name}"),
            Some(serde_json::json!({ "username": name })),
        )
    };
    // A SIGHUP meanwhile is refused, and /status says the file does not
    // load; a write does not mend that, and does not hide it either.
    node.signal("HUP");
    node.wait_log("config reload rejected", 1);
    let refused = || {
        let status = node.admin("GET", "/status", None).json();
        status["config_source"]["refused"][0]["reason"]
            .as_str()
            .map(str::to_owned)
    };
    let mismatch = "tls.key_file: is not the private key of cert_file";
    assert!(
        refused().is_some_and(|r| r.contains(mismatch)),
        "{:?}",
        refused()
    );
    let w = put("carol");
    assert_eq!(w.status, 201, "half a renewal on disk: {}", w.text());
    assert!(
        refused().is_some_and(|r| r.contains(mismatch)),
        "{:?}",
        refused()
    );
    node.wait_log("as written does not load", 1);
    std::fs::copy(&new_cert, &cert).unwrap();
    let w = put("dave");
    assert_eq!(w.status, 201, "{}", w.text());
    assert_eq!(refused(), None, "the renewal done, the file loads");
    let old_trust = Arc::new(default_client(&ca()));
    let new_trust = Arc::new(default_client(&new_cert));
    assert!(
        connect(node.addr, &old_trust, "localhost").await.is_ok(),
        "the certificate served before the writes still is"
    );
    assert!(connect(node.addr, &new_trust, "localhost").await.is_err());
    assert!(!node
        .logs()
        .contains("TLS certificates and settings reloaded"));
    // Its SIGHUP puts the renewal live.
    node.signal("HUP");
    node.wait_log("TLS certificates and settings reloaded", 1);
    assert!(connect(node.addr, &new_trust, "localhost").await.is_ok());
}

/// Handshakes that fail are counted by listener and reason, and logged
/// with the peer at debug: bytes that are no TLS, a client that connects
/// and leaves. They had left no trace at the default level. Plain HTTP
/// sent to the port is answered 400 in plain HTTP, as nginx answers it
/// (it got a TLS alert, which curl shows as a protocol error).
#[tokio::test]
async fn failed_handshakes_are_counted_and_plain_http_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&default_tls("")));
    let failures = |reason: &str| {
        node.metrics().value(
            "jwtgate_tls_handshake_failures_total",
            &[("listener", "data"), ("reason", reason)],
        )
    };
    let send = |bytes: &'static [u8]| async move {
        let mut s = TcpStream::connect(node.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answer = send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n")
            && answer
                .ends_with("{\"message\":\"plain HTTP sent to an HTTPS port: use https://\"}\n"),
        "{answer:?}"
    );
    let garbage = send(b"\x00\x01\x02 not a TLS record\r\n").await;
    assert!(!garbage.starts_with("HTTP/"), "{garbage:?}");
    drop(TcpStream::connect(node.addr).await.unwrap());
    let counted = || {
        (
            failures("plain_http"),
            failures("protocol"),
            failures("closed"),
        )
    };
    assert!(
        support::eventually(Duration::from_secs(15), || counted() == (1.0, 1.0, 1.0)),
        "{:?}\n{}",
        counted(),
        node.metrics().0
    );
    // A good handshake counts nothing.
    assert!(
        connect(node.addr, &Arc::new(default_client(&ca())), "localhost")
            .await
            .is_ok()
    );
    assert_eq!(counted(), (1.0, 1.0, 1.0));
    // A client that does not trust the certificate says so in an alert:
    // counted apart, as the operator's problem (an expired certificate
    // looks the same), not as noise.
    let stranger = tempfile::tempdir().unwrap();
    let (other, _) = self_signed(stranger.path(), "localhost", "other");
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let distrust = Arc::new(client(&other, versions));
        assert!(connect(node.addr, &distrust, "localhost").await.is_err());
    }
    assert!(
        support::eventually(Duration::from_secs(15), || failures("certificate") == 2.0),
        "{}",
        node.metrics().0
    );
    assert_eq!(counted(), (1.0, 1.0, 1.0));
}

/// A private key every user may read is served, with a warning (OpenSSH
/// refuses such a key; a gateway's operator gets told).
#[test]
fn check_warns_of_a_private_key_others_may_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "localhost", "open");
    let tls = format!(
        r#"{{ cert_file: "{}", key_file: "{}" }}"#,
        cert.display(),
        key.display()
    );
    let path = dir.path().join("open.yaml");
    std::fs::write(&path, config(&tls)).unwrap();
    let check = || run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    for (mode, warned) in [(0o600, false), (0o640, false), (0o644, true), (0o604, true)] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = check();
        assert_eq!(out.code(), Some(0), "{mode:o}: {}", out.all());
        assert_eq!(
            out.stderr.contains(&format!(
                "warning: tls.key_file: every user of this machine may read this private key (mode {mode:04o})"
            )),
            warned,
            "{mode:o}: {}",
            out.all()
        );
    }
}

/// A client that sends an IP address as SNI (wrk does, and so do many
/// libraries) made rustls log a warning per handshake: any client could
/// fill the log, past the access log's switch (found by an outside
/// attack). rustls logs errors only, unless `JWTGATE_LOG` names it.
#[tokio::test]
async fn a_client_cannot_fill_the_log_with_rustls_warnings() {
    let handshake_with_ip_sni = |addr: SocketAddr| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string()])
            .args(["-servername", "127.0.0.1", "-brief"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl must be installed (./test installs it)");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("CONNECTION ESTABLISHED"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for (filter, quiet) in [
        (None, true),
        (Some("info,jwtgate::access=off"), true),
        (Some("info,rustls=warn"), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwtgate.yaml");
        std::fs::write(&path, config(&default_tls(""))).unwrap();
        let env: Vec<(&str, &str)> = filter.map(|f| ("JWTGATE_LOG", f)).into_iter().collect();
        let node = Node::start_on(&path, &env);
        for _ in 0..3 {
            handshake_with_ip_sni(node.addr);
        }
        // A line logged after the handshakes: the log is written in order,
        // so a warning of theirs would be in by then.
        node.signal("HUP");
        node.wait_log("SIGHUP: reloading", 1);
        let warned = node.logs().matches("Illegal SNI").count();
        if quiet {
            assert_eq!(warned, 0, "JWTGATE_LOG={filter:?}:\n{}", node.logs());
        } else {
            assert_eq!(
                warned,
                3,
                "rustls=warn asks for its warnings:\n{}",
                node.logs()
            );
        }
    }
}

/// A node whose admin listener serves HTTPS (`admin.tls`), the data plane
/// plain HTTP.
fn admin_tls_config(admin_tls: &str, admin_listen: &str) -> String {
    node_config(&format!(
        "admin: {{ listen: \"{admin_listen}\", api_key: \"{}\", tls: {admin_tls} }}\n",
        admin_support::KEY
    ))
}

/// One admin request over `tls`, with the admin key: the status and body.
async fn admin_get(tls: TlsStream<TcpStream>, path: &str) -> (u16, String) {
    admin_get_as(tls, path, "localhost").await
}

/// [`admin_get`] with `Host: host`.
async fn admin_get_as(tls: TlsStream<TcpStream>, path: &str, host: &str) -> (u16, String) {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .header("x-api-key", admin_support::KEY)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Kong's `admin_listen ... ssl` and APISIX's admin TLS: the admin API and
/// the console over HTTPS, HTTP/1.1 whatever the client offers by ALPN,
/// plain HTTP refused, and the certificate renewed by SIGHUP like the
/// data plane's.
#[tokio::test]
async fn the_admin_listener_speaks_https_with_admin_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, tls) = renewable_certificate(dir.path(), "admin");
    let node = Node::start(dir.path(), &admin_tls_config(&tls, "127.0.0.1:0"));
    node.wait_log(&format!("admin API listening at https://{}", node.admin), 1);
    // The data plane stays plain HTTP.
    assert_eq!(node.get("/x").status, 200);

    let mut offers_h2 = default_client(&ca());
    offers_h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let trust = Arc::new(offers_h2);
    let stream = connect(node.admin, &trust, "localhost").await.unwrap();
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "the admin listener speaks HTTP/1.x only"
    );
    let (status, body) = admin_get(stream, "/admin/v1/routes").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"echo\""), "{body}");
    let stream = connect(node.admin, &trust, "localhost").await.unwrap();
    assert_eq!(admin_get(stream, "/status").await.0, 200);
    // Any name: over HTTPS the browser holds a page to the certificate's
    // names, so a rebound name cannot get this far (a plain listener
    // answers only its addresses, localhost and admin.allowed_hosts).
    let stream = connect(node.admin, &trust, "localhost").await.unwrap();
    let (status, body) = admin_get_as(stream, "/admin/v1/routes", "admin.example.internal").await;
    assert_eq!(status, 200, "{body}");

    // Plain HTTP is not served (the key would cross in clear): its request
    // is not read, and the answer only says to use https.
    let mut plain = TcpStream::connect(node.admin).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 ")
            && answer.contains("plain HTTP sent to an HTTPS port")
            && !answer.contains("\"status\""),
        "{answer}"
    );

    // When the served certificate expires, for an alert to compare with
    // time() (an outside TLS audit found nothing said it while running).
    let expiry = |metrics: &str| -> i64 {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(
                    r#"jwtgate_tls_certificate_expiry_timestamp_seconds{listener="admin",certificate="admin.tls"} "#,
                )
            })
            .unwrap_or_else(|| panic!("{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let stream = connect(node.admin, &trust, "localhost").await.unwrap();
    let (_, metrics) = admin_get(stream, "/metrics").await;
    let before = expiry(&metrics);
    assert!(before > support::now(), "{metrics}");
    assert!(!metrics.contains(r#"listener="data""#), "{metrics}");

    // The renewal: a connection opened before stays up, the next handshake
    // gets the new certificate.
    let open = connect(node.admin, &trust, "localhost").await.unwrap();
    let (new_cert, new_key) = self_signed(dir.path(), "localhost", "renewed");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    node.signal("HUP");
    node.wait_log("admin.tls: TLS certificates and settings reloaded", 1);
    let renewed = Arc::new(default_client(&new_cert));
    let stream = connect(node.admin, &renewed, "localhost").await.unwrap();
    assert_eq!(admin_get(stream, "/status").await.0, 200);
    let stream = connect(node.admin, &renewed, "localhost").await.unwrap();
    let (_, metrics) = admin_get(stream, "/metrics").await;
    let after = expiry(&metrics);
    assert!(
        after > support::now() && after != before,
        "{before} {after}"
    );
    let fresh_old = Arc::new(default_client(&ca()));
    assert!(connect(node.admin, &fresh_old, "localhost").await.is_err());
    assert_eq!(admin_get(open, "/status").await.0, 200);
    assert_eq!(
        node.logs()
            .matches("TLS certificates and settings reloaded")
            .count(),
        1,
        "the admin listener's, and no other:\n{}",
        node.logs()
    );
}

/// `admin.tls` is checked as `tls` is, with its own locations; with it,
/// an admin listener off loopback is no longer warned about.
#[test]
fn check_locates_bad_admin_tls_settings_and_drops_the_plain_http_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.yaml");
    let check = |yaml: String| {
        std::fs::write(&path, yaml).unwrap();
        run_cli(&["check", "--config", path.to_str().unwrap()], dir.path())
    };
    let plain_warning = "admin.listen: 0.0.0.0:9180 is not loopback";
    let out = check(
        config(&default_tls("")).replace("127.0.0.1:0\", api_key", "0.0.0.0:9180\", api_key"),
    );
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(out.stderr.contains(plain_warning), "{}", out.all());
    let out = check(admin_tls_config(&default_tls(""), "0.0.0.0:9180"));
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(!out.stderr.contains(plain_warning), "{}", out.all());

    let (_, stray_key) = self_signed(dir.path(), "localhost", "stray");
    let out = check(admin_tls_config(
        &format!(
            r#"{{ cert_file: "{TLS}/server.crt", key_file: "{}" }}"#,
            stray_key.display()
        ),
        "127.0.0.1:0",
    ));
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.all()
            .contains("admin.tls.key_file: is not the private key of cert_file"),
        "{}",
        out.all()
    );
    let out = check(admin_tls_config(
        &default_tls(r#", min_version: "1.1", cipher_suites: [RC4], session_cache: 99999999"#),
        "127.0.0.1:0",
    ));
    assert_eq!(out.code(), Some(1), "{}", out.all());
    for located in [
        "admin.tls.min_version",
        "admin.tls.cipher_suites[0]",
        "admin.tls.session_cache",
    ] {
        assert!(
            out.all().contains(located),
            "{located} not reported:\n{}",
            out.all()
        );
    }
    let out = check(admin_tls_config(
        r#"{ cert_file: "nowhere.crt" }"#,
        "127.0.0.1:0",
    ));
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(out.all().contains("admin.tls.key_file"), "{}", out.all());
}
