//! What the identity-provider tests need beyond the shared harness: a small
//! key-set server of our own for what a real IdP will not do on demand
//! (malformed sets, 500s, slow or oversized answers, and counting the
//! fetches a forged-`kid` flood causes), and key-set helpers.
//!
//! The real provider (panva's `oidc-provider`) is `jwtgate_testkit::oidc`.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::support::KEYS;

pub const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tls");
pub const JWKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/jwks");

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn json(v: &Value) -> Reply {
        Reply {
            status: 200,
            body: v.to_string().into_bytes(),
            headers: vec![("content-type".into(), "application/json".into())],
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: b"{\"error\":\"scripted\"}".to_vec(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            body: body.into(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

struct State {
    replies: Mutex<HashMap<String, Reply>>,
    hits: Mutex<HashMap<String, usize>>,
}

/// A key-set (and discovery) server on 127.0.0.1:0, plain HTTP or HTTPS
/// with the test CA's certificate; every request counted by path.
pub struct KeyServer {
    pub addr: SocketAddr,
    pub tls: bool,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeyServer {
    pub fn start(tls: bool) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            replies: Mutex::new(HashMap::new()),
            hits: Mutex::new(HashMap::new()),
        });
        let acceptor = tls.then(tls_acceptor);
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let st = Arc::clone(&st);
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| {
                                    let st = Arc::clone(&st);
                                    async move { answer(st, req).await }
                                });
                                let builder = hyper::server::conn::http1::Builder::new();
                                match acceptor {
                                    Some(a) => {
                                        if let Ok(s) = a.accept(stream).await {
                                            let _ = builder
                                                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                                .await;
                                        }
                                    }
                                    None => {
                                        let _ = builder
                                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                            .await;
                                    }
                                }
                            });
                        }
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        KeyServer {
            addr,
            tls,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// The server's origin: `https://127.0.0.1:PORT` or `http://...`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.state
            .replies
            .lock()
            .unwrap()
            .insert(path.to_owned(), reply);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Serves a discovery document for `issuer` naming `{origin}/keys`.
    pub fn serve_discovery(&self, issuer: &str) {
        let path = format!(
            "{}/.well-known/openid-configuration",
            issuer
                .strip_prefix(&self.origin())
                .unwrap_or("")
                .trim_end_matches('/')
        );
        self.set(
            &path,
            Reply::json(&json!({ "issuer": issuer, "jwks_uri": self.url("/keys") })),
        );
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(
    st: Arc<State>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    *st.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = st.replies.lock().unwrap().get(&path).cloned();
    let reply = reply.unwrap_or_else(|| Reply::status(404));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap();
    for (k, v) in reply.headers {
        resp.headers_mut().append(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_str(&v).unwrap(),
        );
    }
    Ok(resp)
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let certs =
        rustls_pemfile::certs(&mut &std::fs::read(format!("{TLS}/server.crt")).unwrap()[..])
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    let key =
        rustls_pemfile::private_key(&mut &std::fs::read(format!("{TLS}/server.key")).unwrap()[..])
            .unwrap()
            .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A public JWK of `testdata/jwks/<name>.json`, with `kid` replaced.
pub fn jwk(name: &str, kid: &str) -> Value {
    let mut k: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{JWKS}/{name}.json")).unwrap())
            .unwrap();
    k["kid"] = json!(kid);
    k
}

pub fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

/// A token signed with `testdata/keys/<key_file>`, with `kid` in its header.
pub fn sign_kid(alg: &str, key_file: &str, kid: Option<&str>, claims: Value) -> String {
    use jwtgate_core::jwt::{Algorithm, SigningKey};
    let alg: Algorithm = alg.parse().unwrap();
    let pem = std::fs::read_to_string(format!("{KEYS}/{key_file}")).unwrap();
    let Value::Object(claims) = claims else {
        panic!("claims must be an object")
    };
    SigningKey::from_private_pem(alg, &pem)
        .unwrap()
        .encode_with_kid(&claims, kid)
        .unwrap()
}
