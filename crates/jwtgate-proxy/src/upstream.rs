//! Talking to upstream nodes: round robin over a route's nodes, pooled
//! keep-alive HTTP/1.1 connections, connect and response timeouts, and the
//! next node when one cannot be reached.
//!
//! The pool is our own (rather than hyper-util's client) for one reason: when
//! a node refuses the connection, or a pooled connection turns out to be
//! closed before the request was written, we still hold the request and its
//! unread streaming body, so we can send it elsewhere instead of failing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{HeaderValue, HOST};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use jwtgate_config::{UpstreamNode, UpstreamNodes};
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::GatewayBody;
use crate::error::GatewayError;
use crate::headers::remove_hop_by_hop_response;

/// Idle connections kept per node; more are closed when they come back.
const MAX_IDLE_PER_NODE: usize = 256;

/// A route's upstream, compiled: nodes with their pool keys and headers.
pub struct UpstreamTarget {
    nodes: Vec<Node>,
    tls: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    next: AtomicUsize,
}

struct Node {
    host: String,
    port: u16,
    host_header: HeaderValue,
    key: PoolKey,
}

/// (authority, tls): connections are shared by every route using the node.
type PoolKey = Arc<(String, bool)>;

impl UpstreamTarget {
    pub fn new(cfg: &UpstreamNodes) -> Self {
        let nodes = cfg
            .nodes
            .iter()
            .map(|n: &UpstreamNode| Node {
                host: n.host.clone(),
                port: n.port,
                // Validated as host:port at config load; a value that still
                // fails becomes an empty Host rather than a panic.
                host_header: HeaderValue::from_str(&n.authority)
                    .unwrap_or(HeaderValue::from_static("")),
                key: Arc::new((n.authority.clone(), cfg.tls)),
            })
            .collect();
        UpstreamTarget {
            nodes,
            tls: cfg.tls,
            connect_timeout: cfg.connect_timeout,
            read_timeout: cfg.read_timeout,
            next: AtomicUsize::new(0),
        }
    }
}

/// Idle keep-alive connections, shared by all routes and all config versions.
#[derive(Clone, Default)]
pub struct ConnPool {
    inner: Arc<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    /// foldhash: SipHash of the key cost more than the rest of a pool take.
    idle: Mutex<HashMap<PoolKey, Vec<SendRequest<Incoming>>, foldhash::fast::RandomState>>,
    tls: std::sync::OnceLock<Option<tokio_rustls::TlsConnector>>,
}

/// Hands a connection back to the pool once its response body has ended.
pub struct PoolReturn {
    pool: Arc<PoolInner>,
    key: PoolKey,
    sender: SendRequest<Incoming>,
}

impl PoolReturn {
    pub fn release(self) {
        let PoolReturn {
            pool,
            key,
            mut sender,
        } = self;
        if sender.is_ready() {
            pool.put(key, sender);
            return;
        }
        // The connection task has not yet noticed the message ended (or the
        // request body is still being written): pool it once it is ready.
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.put(key, sender);
            }
        });
    }
}

impl PoolInner {
    fn put(&self, key: PoolKey, sender: SendRequest<Incoming>) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            if list.len() < MAX_IDLE_PER_NODE {
                list.push(sender);
            }
        }
    }

    fn take(&self, key: &PoolKey) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(sender) = list.pop() {
            if sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn tls_connector(&self) -> Option<&tokio_rustls::TlsConnector> {
        self.tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .ok()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            })
            .as_ref()
    }
}

impl ConnPool {
    /// Sends `req` (origin-form URI, headers already prepared) to the next
    /// node of `target`, trying the others when a node cannot be reached.
    pub async fn forward(
        &self,
        target: &UpstreamTarget,
        mut req: Request<Incoming>,
    ) -> Result<Response<GatewayBody>, GatewayError> {
        *req.version_mut() = Version::HTTP_11;
        let count = target.nodes.len();
        let start = target.next.fetch_add(1, Ordering::Relaxed);
        let mut last_error = String::from("no upstream node");
        for attempt in 0..count {
            let Some(node) = target.nodes.get((start + attempt) % count) else {
                break;
            };
            req.headers_mut().insert(HOST, node.host_header.clone());
            // Pooled connections first. One that closed under us gives the
            // request back unsent, and we try the next.
            while let Some(sender) = self.inner.take(&node.key) {
                match self.send(target, node, sender, req).await {
                    Ok(resp) => return Ok(resp),
                    Err(Unsent::Retry(back)) => req = back,
                    Err(Unsent::Failed(e)) => return Err(e),
                }
            }
            let sender = match self.connect(target, node).await {
                Ok(s) => s,
                Err(e) => {
                    debug!(node = %node.key.0, error = %e, "upstream connect failed, trying next node");
                    last_error = format!("{}: {e}", node.key.0);
                    continue;
                }
            };
            match self.send(target, node, sender, req).await {
                Ok(resp) => return Ok(resp),
                Err(Unsent::Retry(back)) => {
                    last_error = format!(
                        "{}: connection closed before the request was sent",
                        node.key.0
                    );
                    req = back;
                }
                Err(Unsent::Failed(e)) => return Err(e),
            }
        }
        Err(GatewayError::UpstreamUnavailable(last_error))
    }

    async fn send(
        &self,
        target: &UpstreamTarget,
        node: &Node,
        mut sender: SendRequest<Incoming>,
        req: Request<Incoming>,
    ) -> Result<Response<GatewayBody>, Unsent> {
        let sent = tokio::time::timeout(target.read_timeout, sender.try_send_request(req)).await;
        let result = match sent {
            Err(_) => {
                return Err(Unsent::Failed(GatewayError::UpstreamTimeout(
                    target.read_timeout.as_millis(),
                )))
            }
            Ok(r) => r,
        };
        match result {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                remove_hop_by_hop_response(&mut parts.headers);
                let back = PoolReturn {
                    pool: Arc::clone(&self.inner),
                    key: Arc::clone(&node.key),
                    sender,
                };
                Ok(Response::from_parts(
                    parts,
                    GatewayBody::upstream(body, back),
                ))
            }
            Err(mut e) => match e.take_message() {
                Some(req) => Err(Unsent::Retry(req)),
                None => Err(Unsent::Failed(GatewayError::UpstreamUnavailable(format!(
                    "{}: {}",
                    node.key.0,
                    e.error()
                )))),
            },
        }
    }

    async fn connect(
        &self,
        target: &UpstreamTarget,
        node: &Node,
    ) -> Result<SendRequest<Incoming>, String> {
        let connect = async {
            let stream = TcpStream::connect((node.host.as_str(), node.port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            if target.tls {
                let connector = self.inner.tls_connector().ok_or("TLS client unavailable")?;
                let name = rustls::pki_types::ServerName::try_from(node.host.clone())
                    .map_err(|e| e.to_string())?;
                let tls = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| e.to_string())?;
                handshake(TokioIo::new(tls)).await
            } else {
                handshake(TokioIo::new(stream)).await
            }
        };
        tokio::time::timeout(target.connect_timeout, connect)
            .await
            .map_err(|_| {
                format!(
                    "connect timed out after {} ms",
                    target.connect_timeout.as_millis()
                )
            })?
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
}

enum Unsent {
    /// The request was not written; it may go to another connection.
    Retry(Request<Incoming>),
    Failed(GatewayError),
}
