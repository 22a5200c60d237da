//! Listeners: accept connections, speak HTTP/1.1 or HTTP/2 (h2c with prior
//! knowledge, or ALPN over TLS), hand each request to the pipeline, and shut
//! down gracefully: stop accepting, let in-flight requests finish (bounded).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use jwtgate_config::TlsMaterial;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::gateway::Gateway;
use crate::pipeline::{self, ConnInfo};
use crate::upstream::ConnPool;

/// How long in-flight requests may take to finish after a stop signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that has not sent its request head by then is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// The live configuration; swapped whole on reload.
pub type SharedGateway = Arc<ArcSwap<Gateway>>;

/// Bound listeners, ready to serve.
pub struct Listeners {
    listeners: Vec<(TcpListener, SocketAddr)>,
    tls: Option<TlsAcceptor>,
}

impl Listeners {
    /// Binds every address now, so that bind errors surface before serving.
    pub async fn bind(addrs: &[SocketAddr], tls: Option<&TlsMaterial>) -> Result<Self, ServeError> {
        let tls = tls.map(tls_acceptor).transpose()?;
        let mut listeners = Vec::new();
        for &addr in addrs {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            let local = l
                .local_addr()
                .map_err(|source| ServeError::Bind { addr, source })?;
            listeners.push((l, local));
        }
        Ok(Listeners { listeners, tls })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, a)| *a).collect()
    }

    /// Serves until `stop` turns true, then drains in-flight requests.
    pub async fn serve(self, gateway: SharedGateway, mut stop: watch::Receiver<bool>) {
        let pool = ConnPool::default();
        let graceful = Arc::new(GracefulShutdown::new());
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut tasks = Vec::new();
        for (listener, local) in self.listeners {
            info!("listening on {scheme}://{local}");
            tasks.push(tokio::spawn(accept_loop(
                listener,
                self.tls.clone(),
                Arc::clone(&gateway),
                pool.clone(),
                Arc::clone(&graceful),
                stop.clone(),
            )));
        }
        let _ = stop.wait_for(|s| *s).await;
        for t in tasks {
            let _ = t.await;
        }
        let Ok(graceful) = Arc::try_unwrap(graceful) else {
            warn!("connections still referenced at shutdown");
            return;
        };
        info!("stopped accepting; draining in-flight requests");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            warn!("in-flight requests still running after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    gateway: SharedGateway,
    pool: ConnPool,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let info = Arc::new(ConnInfo::new(peer, tls.is_some()));
        let gateway = Arc::clone(&gateway);
        let pool = pool.clone();
        let service = service_fn(move |req| {
            let gw = gateway.load_full();
            let pool = pool.clone();
            let info = Arc::clone(&info);
            async move { Ok::<_, Infallible>(pipeline::handle(gw, &pool, req, &info).await) }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // One buffer per response rather than a vectored write of head
            // and body: 3 % fewer instructions per small proxied response
            // (callgrind); a large body is copied once more in user space.
            .writev(false)
            .header_read_timeout(HEADER_READ_TIMEOUT);
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(error = %e, "connection ended with error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let graceful = Arc::clone(&graceful);
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return debug!(error = %e, "TLS handshake failed"),
                            Err(_) => return debug!("TLS handshake timed out"),
                        };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = graceful.watch(conn).await {
                        debug!(error = %e, "connection ended with error");
                    }
                });
            }
        }
    }
}

fn tls_acceptor(m: &TlsMaterial) -> Result<TlsAcceptor, ServeError> {
    let certs = rustls_pemfile::certs(&mut m.cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("certificate: {e}")))?;
    let key = rustls_pemfile::private_key(&mut m.key_pem.as_slice())
        .map_err(|e| ServeError::Tls(format!("private key: {e}")))?
        .ok_or_else(|| ServeError::Tls("no private key in key_file".into()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
