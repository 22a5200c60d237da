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
    let config = dir.path().join("jwtgate.yaml");
    std::fs::write(
        &config,
        format!(
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
        ),
    )
    .expect("write config");
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
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on https://").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a `listening on https://` line")
        .parse()
        .expect("address");
    Gateway {
        child,
        addr,
        _dir: dir,
    }
}

fn connector(alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
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
    tokio_rustls::TlsConnector::from(Arc::new(config))
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
