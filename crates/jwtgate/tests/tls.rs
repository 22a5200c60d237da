//! The optional TLS listener (SPEC §2 `tls`, §5): HTTP/1.1 and HTTP/2 (ALPN)
//! over rustls, with X-Forwarded-Proto set to https. A real client handshake
//! against the real binary, trusting the test certificate only.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tls");

struct Gateway {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
tls: {{ cert_file: "{TLS}/server.crt", key_file: "{TLS}/server.key" }}
store: {{ path: data }}
consumers:
  - username: alice
    jwt: {{ key: user123, secret: tls-secret-tls-secret-0123456789abcdef }}
routes:
  - name: echo
    paths: ["/*"]
    upstream: {{ echo: true }}
    jwt: {{ not_required_paths: ["GET_/public*"] }}
"#
    );
    spawn(dir, &yaml, "listening on https://")
}

/// Starts the gateway on `yaml`, in `dir`; its address from the log line
/// that begins with `marker`.
fn spawn(dir: tempfile::TempDir, yaml: &str, marker: &str) -> Gateway {
    let config = dir.path().join("jwtgate.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jwtgate");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(marker.as_str()).nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a `listening on` line")
        .parse()
        .expect("address");
    Gateway {
        child,
        addr,
        _dir: dir,
    }
}

fn client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(format!("{TLS}/ca.crt")).expect("CA cert");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn connector(alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(client_config(alpn))
}

async fn get(addr: SocketAddr, h2: bool, path: &str) -> (u16, Value) {
    let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector(alpn)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(negotiated.as_deref(), Some(alpn[0]), "ALPN");
    let req = hyper::Request::get(format!("https://localhost{path}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        send.send_request(req).await.expect("h2 response")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let mut req = req;
        req.headers_mut()
            .insert("host", "localhost".parse().expect("host"));
        send.send_request(req).await.expect("h1 response")
    };
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

#[tokio::test]
async fn http1_and_h2_over_tls() {
    let gw = start();
    for h2 in [false, true] {
        let (status, echo) =
            tokio::time::timeout(Duration::from_secs(30), get(gw.addr, h2, "/public/x"))
                .await
                .expect("in time");
        assert_eq!(status, 200, "h2={h2}: {echo}");
        assert_eq!(echo["path"], "/public/x");
        assert_eq!(
            echo["headers"]["x-forwarded-proto"], "https",
            "h2={h2}: {echo}"
        );
        let (status, body) = get(gw.addr, h2, "/private").await;
        assert_eq!(status, 401, "h2={h2}");
        assert_eq!(body["message"], "Missing JWT token in request");
    }
}

/// A client that offers only `http/1.0` in ALPN (`curl --http1.0`) is
/// served HTTP/1.0, as by nginx: it had been refused in the handshake with
/// `no_application_protocol`.
#[tokio::test]
async fn an_http_1_0_client_is_served_over_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = start();
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector(&[b"http/1.0"])
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.0"[..]));
    tls.write_all(b"GET /public/x HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut answer))
        .await
        .expect("in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
}

/// ALPN decides the protocol (RFC 9113 §3.3, RFC 7301). After `h2` a
/// connection must open with the HTTP/2 preface: HTTP/1.1 there is a
/// connection error, as in Envoy. After `http/1.1` the preface is not
/// HTTP/2: it is read as a request line, and refused. Each had been served
/// in the protocol the client's first bytes spoke, whatever ALPN chose.
#[tokio::test]
async fn alpn_decides_the_protocol() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = start();
    let answer_to = |alpn: &'static [u8], first: &'static [u8]| async move {
        let tcp = TcpStream::connect(gw.addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector(&[alpn])
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        tls.write_all(first).await.expect("write");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut answer));
        let _ = read.await.expect("closed in time");
        String::from_utf8_lossy(&answer).into_owned()
    };
    let h1 = answer_to(b"h2", b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(h1, "", "HTTP/1.1 after ALPN h2 is not answered");
    let preface = answer_to(b"http/1.1", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(
        preface.starts_with("HTTP/1.1 "),
        "the preface after ALPN http/1.1 is read as HTTP/1.1: {preface:?}"
    );
    assert!(!preface.starts_with("HTTP/1.1 200"), "{preface:?}");
    // And each protocol still works after its own ALPN.
    for h2 in [false, true] {
        assert_eq!(get(gw.addr, h2, "/public/x").await.0, 200, "h2={h2}");
    }
}

/// A client that sends its request in the same write as its handshake's
/// last message: the gateway reads the request's record with the handshake,
/// and must answer it without waiting for more bytes on the socket (none
/// come). Driven by hand over a blocking socket so that the two go out in
/// one write.
#[test]
fn a_request_sent_with_the_handshake_finished_is_answered() {
    use std::io::{Read, Write};
    let gw = start();
    for round in 0..5 {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls =
            rustls::ClientConnection::new(client_config(&[b"http/1.1"]), name).expect("client");
        let mut sock = std::net::TcpStream::connect(gw.addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // The handshake up to the client's Finished, which stays queued.
        while tls.is_handshaking() {
            while tls.wants_write() && tls.is_handshaking() {
                tls.write_tls(&mut sock).expect("write handshake");
            }
            if !tls.is_handshaking() {
                break;
            }
            tls.read_tls(&mut sock).expect("read handshake");
            tls.process_new_packets().expect("handshake");
        }
        tls.writer()
            .write_all(b"GET /public/with-finished HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("queue request");
        // Finished and the request, together.
        let mut wire = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut wire).expect("encode");
        }
        sock.write_all(&wire).expect("send Finished and request");
        let mut answer = Vec::new();
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read_tls(&mut sock).unwrap_or_else(|e| {
                panic!(
                    "round {round}: no answer to a request sent with the handshake: {e}; got {:?}",
                    String::from_utf8_lossy(&answer)
                )
            });
            assert!(n > 0, "round {round}: closed without an answer");
            tls.process_new_packets().expect("records");
            let mut chunk = [0u8; 4096];
            while let Ok(n) = tls.reader().read(&mut chunk) {
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..n]);
            }
        }
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "round {round}: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
}

/// An HTTPS upstream whose certificate a private CA signed: reached with the
/// route's `ca_file`, and only with it; a connection made under one trust is
/// never lent to a route under another (an outside conformance audit: the
/// system's roots were the only choice, so a private CA meant
/// `SSL_CERT_FILE` for the whole process).
#[test]
fn an_https_upstream_is_trusted_through_the_route_s_ca_file() {
    let upstream = start();
    let up = upstream.addr;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
store: {{ path: data }}
routes:
  - name: private-ca
    paths: ["/*"]
    hosts: [ca.test]
    upstream: {{ nodes: ["{up}"], scheme: https, ca_file: "{TLS}/ca.crt" }}
  - name: another-ca
    paths: ["/*"]
    hosts: [other.test]
    upstream: {{ nodes: ["{up}"], scheme: https, ca_file: "{TLS}/cn-only.crt" }}
  - name: system-roots
    paths: ["/*"]
    upstream: {{ nodes: ["{up}"], scheme: https }}
"#
    );
    let gw = spawn(dir, &yaml, "listening on http://");
    let get = |host: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(gw.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        write!(
            s,
            "GET /public/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    };
    // Each twice: the second may take a pooled connection.
    for round in 0..2 {
        let ok = get("ca.test");
        assert!(ok.starts_with("HTTP/1.1 200"), "round {round}: {ok}");
        assert!(ok.contains("/public/x"), "the echo upstream's answer: {ok}");
        for host in ["other.test", "gw"] {
            let refused = get(host);
            assert!(
                refused.starts_with("HTTP/1.1 502"),
                "round {round} {host}: {refused}"
            );
        }
    }
}

#[test]
fn an_upstream_ca_file_is_checked_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("not-pem.crt"), "hello").expect("write");
    // A block that says CERTIFICATE and is none: no trust anchor.
    let good = std::fs::read_to_string(format!("{TLS}/ca.crt")).expect("ca");
    std::fs::write(
        dir.path().join("bad-block.crt"),
        format!("{good}-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n"),
    )
    .expect("write");
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: a
    paths: ["/a/*"]
    upstream: {{ nodes: ["127.0.0.1:9"], ca_file: "{TLS}/ca.crt" }}
  - name: b
    paths: ["/b/*"]
    upstream: {{ nodes: ["127.0.0.1:9"], scheme: https, ca_file: not-pem.crt }}
  - name: c
    paths: ["/c/*"]
    upstream: {{ nodes: ["127.0.0.1:9"], scheme: https, ca_file: missing.crt }}
  - name: d
    paths: ["/d/*"]
    upstream: {{ echo: true, ca_file: "{TLS}/ca.crt" }}
  - name: e
    paths: ["/e/*"]
    upstream: {{ nodes: ["127.0.0.1:9"], scheme: https, ca_file: bad-block.crt }}
"#
    );
    let config = dir.path().join("jwtgate.yaml");
    std::fs::write(&config, yaml).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_jwtgate"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for said in [
        "routes[0].upstream.ca_file: is used only with scheme: https",
        "routes[1].upstream.ca_file: holds no PEM CERTIFICATE",
        "routes[2].upstream.ca_file: cannot read",
        "routes[3].upstream.ca_file: is not used with echo: true",
        "routes[4].upstream.ca_file: certificate 2 is not a certificate a TLS client can take",
    ] {
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
}
