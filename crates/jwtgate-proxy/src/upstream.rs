//! Talking to upstream nodes: round robin over a route's nodes, pooled
//! keep-alive HTTP/1.1 connections, connect and response timeouts, the next
//! node when one cannot be reached, and a fresh connection when a pooled one
//! turns out to have been closed by the upstream.
//!
//! A connection is written and read from the task of the request it serves;
//! its response body reads the socket as the client side pulls it and hands
//! the connection back to the pool when the message has ended. The bytes on
//! the wire are `h1`'s business; this module only moves them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use jwtgate_config::{UpstreamNode, UpstreamNodes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tracing::{debug, warn};

use crate::body::{BodyError, GatewayBody};
use crate::error::GatewayError;
use crate::h1::{self, ChunkedDecoder, Decoded, RequestFraming, ResponseFraming, ResponseHead};
use crate::headers::GatewayHeaders;
use crate::recycle;

mod balance;
mod budget;
mod health;

pub use budget::{Permit, UpstreamBudget};
use health::{Failed, NodeHealth};

/// Idle connections kept per node; more are closed when they come back.
const MAX_IDLE_PER_NODE: usize = 256;
/// An idle connection older than this is closed rather than reused: most
/// servers close theirs after 5–75 s, and reusing one they are closing at
/// that instant fails the request (or costs a retry).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the pool drops connections the upstream closed while idle. Each
/// sweep starts an epoch; idle age is counted in epochs, so that pooling and
/// taking a connection need no clock.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
const IDLE_EPOCHS: u64 = IDLE_TIMEOUT.as_secs() / SWEEP_EVERY.as_secs();
/// Buffers freed by a sweep from which the allocator is asked to return
/// free pages to the system: glibc's own threshold for returning the top of
/// its heap (`M_TRIM_THRESHOLD`'s default).
const TRIM_AFTER: usize = 128 * 1024;
/// Read sizes: a response head is small; a body may be large.
const HEAD_READ: usize = 8 * 1024;
const BODY_READ: usize = 32 * 1024;
/// Request body pieces up to this size are copied next to their chunk
/// header, so that one write carries both.
const COALESCE: usize = 16 * 1024;

/// Said when the upstream budget turns a request away.
static BUDGET_REACHED: crate::once_per::OncePer = crate::once_per::OncePer::minute();

/// A route's upstream, compiled: nodes with their pool keys and headers.
pub struct UpstreamTarget {
    /// The route's name, for the log.
    route: Arc<str>,
    nodes: Vec<Node>,
    tls: bool,
    /// Which TLS client makes this upstream's connections.
    tls_client: TlsClient,
    connect_timeout: Duration,
    read_timeout: Duration,
    /// How long the client's request body may stall between two reads.
    body_timeout: Duration,
    /// Failed connects within `fail_timeout_ms` that leave a node out; 0
    /// for a route with one node, which has no other to send to.
    max_fails: u32,
    fail_timeout_ms: u64,
    /// How long a node's probe keeps the others off it: `fail_timeout_ms`,
    /// and at least the connect timeout (one probe at a time).
    probe_ms: u64,
    /// The nodes' turns when their weights differ: node indices, each
    /// node as often as its weight, interleaved (nginx's smooth weighted
    /// round robin, laid out at load). Empty: one turn each, in order.
    turns: Arc<[u32]>,
    /// The next turn; kept across config versions ([`health::route_turns`]).
    next: Arc<AtomicUsize>,
    /// Turns of nodes left out or failed, shared out by weight among the
    /// others, a count for each choice of a request
    /// ([`UpstreamTarget::share`]).
    spill: Box<[AtomicUsize; balance::WEIGHED_TRIES + 1]>,
}

struct Node {
    host: String,
    port: u16,
    weight: u32,
    host_header: HeaderValue,
    key: PoolKey,
    health: Arc<NodeHealth>,
}

/// (authority, how it is reached): connections are shared by every route
/// that reaches the node the same way.
type PoolKey = Arc<(String, Trust)>;

/// How a pooled connection was made: in clear, or over TLS with the
/// certificate checked against the system's roots or a route's own
/// (`ca_file`, told apart by the SHA-256 of its text). A connection
/// checked against one set is never lent to a route that trusts another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Trust {
    Plain,
    SystemRoots,
    OwnRoots([u8; 32]),
}

/// The TLS client of an upstream's connections.
enum TlsClient {
    /// The pool's, on the system's roots (made when first needed).
    Shared,
    /// One trusting the route's `ca_file` alone, made at load.
    Own(tokio_rustls::TlsConnector),
    /// A `ca_file` whose client could not be made: no connection is made,
    /// never one on the system's roots instead.
    Unusable,
}

impl UpstreamTarget {
    /// `route`'s upstream; `body_timeout`: `client_body_timeout_ms` (SPEC
    /// §3.11).
    pub fn new(route: &str, cfg: &UpstreamNodes, body_timeout: Duration) -> Self {
        let tls_client = match cfg.trusted_ca_pem.as_deref() {
            None => TlsClient::Shared,
            Some(pem) => own_roots_client(pem).map_or(TlsClient::Unusable, TlsClient::Own),
        };
        let trust = match (&cfg.trusted_ca_pem, cfg.tls) {
            (_, false) => Trust::Plain,
            (None, true) => Trust::SystemRoots,
            // The same text, the same pool, across reloads too.
            (Some(pem), true) => Trust::OwnRoots(jwtgate_core::jwt::sha256(pem)),
        };
        // Shared turns go by the weights divided by their common divisor.
        let weights = jwtgate_config::divided_weights(&cfg.nodes);
        let nodes = cfg
            .nodes
            .iter()
            .zip(weights)
            .map(|(n, weight): (&UpstreamNode, u32)| {
                let key = Arc::new((n.authority.clone(), trust));
                Node {
                    host: n.host.clone(),
                    port: n.port,
                    weight,
                    // Validated as host:port at config load; a value that
                    // still fails becomes an empty Host rather than a panic.
                    host_header: HeaderValue::from_str(&n.authority)
                        .unwrap_or(HeaderValue::from_static("")),
                    health: NodeHealth::of(route, &key),
                    key,
                }
            })
            .collect::<Vec<_>>();
        UpstreamTarget {
            route: Arc::from(route),
            max_fails: if nodes.len() < 2 { 0 } else { cfg.max_fails },
            nodes,
            tls: cfg.tls,
            tls_client,
            connect_timeout: cfg.connect_timeout,
            read_timeout: cfg.read_timeout,
            body_timeout,
            fail_timeout_ms: millis(cfg.fail_timeout),
            probe_ms: millis(cfg.fail_timeout.max(cfg.connect_timeout)),
            turns: cfg.turns.clone(),
            next: health::route_turns(route),
            spill: Default::default(),
        }
    }
}

/// The byte stream of one upstream connection.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One upstream connection, idle in the pool or serving one request.
struct Conn {
    io: Io,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request head being written; kept to reuse its allocation.
    out: Vec<u8>,
    /// The pool's epoch when the connection became idle.
    idle_epoch: u64,
    /// The response-head timer, one for the connection's life: see
    /// [`Conn::head_timer`].
    head_timer: Option<Pin<Box<Sleep>>>,
    /// Its place in the process's [`UpstreamBudget`], given back when the
    /// connection closes.
    _permit: Permit,
}

impl Conn {
    fn new(io: Io, permit: Permit) -> Self {
        Conn {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            idle_epoch: 0,
            head_timer: None,
            _permit: permit,
        }
    }

    /// The timer for this request's wait for its response head, set to go
    /// off `limit` from now. One timer serves all the connection's requests:
    /// a deadline later than the last one only moves a mark in tokio's timer
    /// entry, where a timer of its own per request (`tokio::time::timeout`)
    /// was put in the runtime's timer wheel and taken out again each time,
    /// about 700 instructions of a 26 700-instruction proxied request
    /// (`bench/callgrind.sh hs256 4000`). A timer that goes off while its
    /// connection idles in the pool wakes the task that last waited on it,
    /// for nothing (a task tolerates that), and is set afresh at the next
    /// request.
    fn head_timer(timer: &mut Option<Pin<Box<Sleep>>>, limit: Duration) -> Pin<&mut Sleep> {
        let deadline = tokio::time::Instant::now() + limit;
        match timer {
            Some(timer) => {
                timer.as_mut().reset(deadline);
                timer.as_mut()
            }
            None => timer
                .insert(Box::pin(tokio::time::sleep_until(deadline)))
                .as_mut(),
        }
    }

    /// Frees the read buffer and the request head's buffer of a connection
    /// a sweep finds idle; the next request on it allocates them anew. A
    /// burst leaves up to [`MAX_IDLE_PER_NODE`] connections per node in the
    /// pool, each holding a read buffer of at least [`HEAD_READ`] bytes, for
    /// up to [`IDLE_TIMEOUT`]: 2 MiB a node for nothing (HAProxy and nginx
    /// hold no buffer for an idle server connection either). Under load this
    /// costs one allocation per pooled connection every [`SWEEP_EVERY`], not
    /// one per request. Returns the bytes freed.
    fn shed_buffers(&mut self) -> usize {
        // `is_open` kept only connections with nothing unread.
        debug_assert!(self.buf.is_empty());
        let freed = self.buf.capacity() + self.out.capacity();
        self.buf = BytesMut::new();
        self.out = Vec::new();
        freed
    }

    /// Whether an idle connection can take a request, without waiting: not
    /// if the upstream closed it or sent bytes nobody asked for. Costs no
    /// system call while the socket is not readable.
    fn is_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }
}

/// Idle keep-alive connections, shared by all routes and all config versions.
#[derive(Clone, Default)]
pub struct ConnPool {
    inner: Arc<PoolInner>,
}

impl ConnPool {
    /// A pool whose connections count against `budget`, which other pools
    /// (the other workers') share.
    pub fn with_budget(budget: Arc<UpstreamBudget>) -> ConnPool {
        ConnPool {
            inner: Arc::new(PoolInner {
                budget,
                ..PoolInner::default()
            }),
        }
    }
}

#[derive(Default)]
struct PoolInner {
    /// foldhash: SipHash of the key cost more than the rest of a pool take.
    idle: Mutex<HashMap<PoolKey, Vec<Conn>, foldhash::fast::RandomState>>,
    tls: OnceLock<Option<tokio_rustls::TlsConnector>>,
    sweeper: OnceLock<()>,
    epoch: AtomicU64,
    /// Shared by every worker's pool.
    budget: Arc<UpstreamBudget>,
}

impl PoolInner {
    fn put(self: &Arc<Self>, key: PoolKey, mut conn: Conn) {
        // Another request found no place: this one's goes back to it.
        if self.budget.pressed() {
            return;
        }
        self.sweeper
            .get_or_init(|| spawn_sweeper(Arc::downgrade(self)));
        conn.idle_epoch = self.epoch.load(Ordering::Relaxed);
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            if list.len() < MAX_IDLE_PER_NODE {
                list.push(conn);
            }
        }
    }

    /// Closes one idle connection, of any node, to make room in the budget;
    /// false when none was idle.
    fn close_one_idle(&self) -> bool {
        let Ok(mut idle) = self.idle.lock() else {
            return false;
        };
        let closed = idle.values_mut().find_map(Vec::pop);
        idle.retain(|_, list| !list.is_empty());
        closed.is_some()
    }

    /// A place in the budget for a new connection: closing an idle one of
    /// this pool for it if need be.
    fn permit(&self) -> Option<Permit> {
        self.budget
            .acquire()
            .or_else(|| self.close_one_idle().then(|| self.budget.acquire())?)
    }

    fn take(&self, key: &PoolKey) -> Option<Conn> {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        // Most recently used first: the one least likely to have timed out.
        while let Some(mut conn) = list.pop() {
            if epoch.saturating_sub(conn.idle_epoch) < IDLE_EPOCHS && conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Closes connections the upstream closed (or that idled too long, or
    /// all of them while the budget is pressed), so
    /// they do not sit in CLOSE_WAIT until a request comes for their node;
    /// the ones kept give back their buffers (see [`Conn::shed_buffers`]).
    /// Returns how many bytes of buffers were freed.
    fn sweep(&self) -> usize {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        let pressed = self.budget.pressed();
        let mut shed = 0;
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|_, list| {
                list.retain_mut(|c| {
                    let keep =
                        !pressed && epoch.saturating_sub(c.idle_epoch) < IDLE_EPOCHS && c.is_open();
                    if keep {
                        shed += c.shed_buffers();
                    }
                    keep
                });
                !list.is_empty()
            });
        }
        shed
    }

    fn tls_connector(&self) -> Option<&tokio_rustls::TlsConnector> {
        self.tls
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                tls_client(roots)
            })
            .as_ref()
    }
}

/// A TLS client that trusts `pem`'s certificates alone (a route's
/// `ca_file`, each checked at load as a trust anchor). `None` if one of
/// them is not one after all: the route then makes no connection.
fn own_roots_client(pem: &[u8]) -> Option<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.ok()?).ok()?;
    }
    tls_client(roots)
}

/// A TLS client (TLS 1.2 and 1.3, aws-lc) that checks servers against
/// `roots`.
fn tls_client(roots: rustls::RootCertStore) -> Option<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn spawn_sweeper(pool: Weak<PoolInner>) {
    // Outside a runtime (never in the gateway) there is nothing to sweep with.
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let shed = match pool.upgrade() {
                Some(p) => p.sweep(),
                None => return,
            };
            // Freed buffers in the middle of the heap stay resident until
            // the allocator is told to give their pages back.
            if shed >= TRIM_AFTER {
                let started = std::time::Instant::now();
                let released = jwtgate_memory::give_back_free_memory();
                tracing::debug!(
                    shed,
                    released,
                    micros = started.elapsed().as_micros() as u64,
                    "idle upstream buffers freed"
                );
            }
        }
    });
}

/// Why one attempt on one connection failed.
enum Failure {
    /// The connection was closed before any byte of a response arrived: a
    /// pooled connection the upstream had just closed. `written` says
    /// whether the request went out first.
    Closed {
        written: bool,
    },
    Failed(GatewayError),
}

impl ConnPool {
    /// Sends `req` (origin-form URI, the client's headers already
    /// prepared), with the gateway's own `added` headers and the node's
    /// `Host`, to the next node of `target`, trying the others when a node
    /// cannot be reached. Generic over the request body so that tests can
    /// send any body; the gateway sends the client's.
    ///
    /// Not an `async fn`, which would keep the request twice in its future
    /// (as passed, and taken apart): it is taken apart first. One future,
    /// not one awaiting another: every level of a request's future is
    /// copied whole into the one above it when awaited.
    pub fn forward<'a, 'h, B>(
        &'a self,
        target: &'a UpstreamTarget,
        req: Request<B>,
        added: &'a GatewayHeaders<'h>,
    ) -> impl Future<Output = Result<Response<GatewayBody>, GatewayError>> + use<'a, 'h, B>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display + 'static,
    {
        let (mut parts, mut body) = req.into_parts();
        let framing = if body.is_end_stream() {
            RequestFraming::Empty
        } else {
            match body.size_hint().exact() {
                Some(n) => RequestFraming::Length(n),
                None => RequestFraming::Chunked,
            }
        };
        async move {
            let mut exchange = Exchange {
                parts: &mut parts,
                added,
                body: &mut body,
                framing,
                body_started: false,
                resent: false,
                read_timeout: target.read_timeout,
                body_timeout: target.body_timeout,
            };
            let result = 'sent: {
                let mut last_error = String::from("no upstream node");
                let mut walk = balance::Walk::from(target.first_node());
                // Those left out, passed over by the walk: tried last, when
                // every other failed.
                let mut passed_over: Vec<usize> = Vec::new();
                let mut retry = 0;
                // When the first connect failed: nodes left out are tried
                // for a connect timeout more, no longer.
                let mut failing_since: Option<Instant> = None;
                loop {
                    let index = match walk.next(target) {
                        Some(index) if index != walk.first && target.is_out(index) => {
                            passed_over.push(index);
                            continue;
                        }
                        Some(index) => index,
                        None if failing_since
                            .is_some_and(|t| t.elapsed() >= target.connect_timeout) =>
                        {
                            if passed_over.get(retry).is_some() {
                                last_error.push_str(
                                    " (the nodes left out not tried: the connects took a connect timeout more)",
                                );
                            }
                            break;
                        }
                        None => match passed_over.get(retry) {
                            Some(&index) => {
                                retry += 1;
                                index
                            }
                            None => break,
                        },
                    };
                    let Some(node) = target.nodes.get(index) else {
                        break;
                    };
                    // Pooled connections first. One the upstream closed under
                    // us is replaced by the next, when the request may be
                    // sent again.
                    while let Some(conn) = self.inner.take(&node.key) {
                        match exchange.run(&self.inner, node, conn).await {
                            Ok(resp) => {
                                // A node out that answers over a kept
                                // connection is up (its probe, say).
                                node.health.answered();
                                break 'sent Ok(resp);
                            }
                            Err(Failure::Closed { written }) if exchange.may_resend(written) => {
                                debug!(node = %node.key.0, "pooled upstream connection was closed; retrying");
                            }
                            Err(Failure::Closed { .. }) => {
                                break 'sent Err(closed_before_response(node))
                            }
                            Err(Failure::Failed(e)) => break 'sent Err(e),
                        }
                    }
                    // Boxed: connecting is rare once the pool is warm, and its
                    // future (a TLS handshake's state) would otherwise make
                    // every request's future kilobytes larger.
                    let conn = match Box::pin(self.connect(target, node)).await {
                        Ok(c) => {
                            node.health.connected();
                            c
                        }
                        // The budget is the process's: no other node has room.
                        Err(ConnectError::Budget) => {
                            break 'sent Err(budget_reached(self.inner.budget.limit()));
                        }
                        Err(ConnectError::Failed(e)) => {
                            debug!(node = %node.key.0, error = %e, "upstream connect failed, trying next node");
                            connect_failed(target, node, &e);
                            last_error = format!("{}: {e}", node.key.0);
                            failing_since.get_or_insert_with(Instant::now);
                            continue;
                        }
                    };
                    break 'sent match exchange.run(&self.inner, node, conn).await {
                        Ok(resp) => Ok(resp),
                        Err(Failure::Closed { .. }) => Err(closed_before_response(node)),
                        Err(Failure::Failed(e)) => Err(e),
                    };
                }
                Err(GatewayError::UpstreamUnavailable(last_error))
            };
            // The request's header map serves a later request or response.
            recycle::give_header_map(std::mem::take(&mut parts.headers));
            result
        }
    }

    async fn connect(&self, target: &UpstreamTarget, node: &Node) -> Result<Conn, ConnectError> {
        let permit = self.inner.permit().ok_or(ConnectError::Budget)?;
        let connect = async {
            let stream = TcpStream::connect((node.host.as_str(), node.port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            if !target.tls {
                return Ok(Conn::new(Io::Plain(stream), permit));
            }
            let connector = match &target.tls_client {
                TlsClient::Shared => self.inner.tls_connector(),
                TlsClient::Own(own) => Some(own),
                TlsClient::Unusable => None,
            }
            .ok_or("TLS client unavailable")?;
            let name = rustls::pki_types::ServerName::try_from(node.host.clone())
                .map_err(|e| e.to_string())?;
            let tls = connector
                .connect(name, stream)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Conn::new(Io::Tls(Box::new(tls)), permit))
        };
        match tokio::time::timeout(target.connect_timeout, connect).await {
            Ok(connected) => connected.map_err(ConnectError::Failed),
            Err(_) => Err(ConnectError::Failed(format!(
                "connect timed out after {} ms",
                target.connect_timeout.as_millis()
            ))),
        }
    }
}

/// The answer to a request that needs an upstream connection past the
/// budget, said in the log once a minute at most. Out of line: it stays
/// out of every request's future and code.
#[cold]
#[inline(never)]
fn budget_reached(limit: usize) -> GatewayError {
    if BUDGET_REACHED.due() {
        warn!(
            max_connections = limit,
            "{limit} upstream connections open, the most this process may hold (max_connections): requests that need another are answered 503 (said once a minute at most)"
        );
    }
    GatewayError::UpstreamBudget(limit)
}

/// `d` in milliseconds, saturated.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Counts a failed connect to `node`, and says so when it leaves the node
/// out of the round robin (once each time it goes out, not at each failed
/// probe).
#[cold]
#[inline(never)]
fn connect_failed(target: &UpstreamTarget, node: &Node, error: &str) {
    crate::metrics::record_connect_failure();
    let failed = node
        .health
        .connect_failed(target.max_fails, target.fail_timeout_ms);
    if failed == Failed::LeftOut {
        crate::metrics::record_node_left_out();
        warn!(
            route = %target.route,
            node = %node.key.0,
            error,
            max_fails = target.max_fails,
            fail_timeout_ms = target.fail_timeout_ms,
            "upstream node left out of the round robin for fail_timeout_ms after max_fails failed connects"
        );
    }
}

/// Why no connection to a node was made.
enum ConnectError {
    /// The process holds as many upstream connections as its budget allows.
    Budget,
    Failed(String),
}

/// One request on its way upstream, possibly over more than one connection.
struct Exchange<'a, B> {
    parts: &'a mut Parts,
    added: &'a GatewayHeaders<'a>,
    body: &'a mut B,
    framing: RequestFraming,
    /// Once a piece of the body was read from the client, the request
    /// cannot be sent again.
    body_started: bool,
    /// A request the upstream may have seen is sent again at most once
    /// (RFC 9110 §9.2.2: a client SHOULD NOT retry an automatic retry), so a
    /// request that itself makes the upstream drop connections is not
    /// replayed on every pooled one.
    resent: bool,
    read_timeout: Duration,
    body_timeout: Duration,
}

/// An upstream connection that agreed to switch to the WebSocket protocol
/// (`101`): from then on bytes pass both ways as they come, until either
/// side closes or neither sends for `idle_timeout` (the route's
/// `read_timeout_ms`, as nginx's `proxy_read_timeout` bounds its tunnels).
/// It keeps its place in the upstream budget while open.
pub(crate) struct Upgraded {
    conn: Conn,
    pub(crate) idle_timeout: Duration,
    /// The token that opened it, if one did: the tunnel ends with it.
    pub(crate) token: Option<Box<crate::tunnel::HeldToken>>,
}

impl Upgraded {
    /// What the upstream sent after its `101`, read with the head: the
    /// tunnel's first bytes towards the client.
    pub(crate) fn take_early(&mut self) -> BytesMut {
        std::mem::take(&mut self.conn.buf)
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().conn.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().conn.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().conn.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().conn.io).poll_shutdown(cx)
    }
}

impl<B> Exchange<'_, B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display + 'static,
{
    /// Sending again is safe if the upstream cannot have seen the request,
    /// or once if the method is idempotent (RFC 9110 §9.2.2) and the body
    /// has not been consumed.
    fn may_resend(&mut self, written: bool) -> bool {
        if self.body_started {
            return false;
        }
        if !written {
            return true;
        }
        if self.resent || !is_idempotent(&self.parts.method) {
            return false;
        }
        self.resent = true;
        true
    }

    /// Writes the request and reads the response head.
    async fn run(
        &mut self,
        pool: &Arc<PoolInner>,
        node: &Node,
        mut conn: Conn,
    ) -> Result<Response<GatewayBody>, Failure> {
        let read_timeout = self.read_timeout;
        let head = self.send(node, &mut conn).await?;
        let ResponseHead {
            status,
            headers,
            passed,
            framing,
            keep_alive,
            ..
        } = head;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // Only ever an answer to a WebSocket handshake
            // ([`next_final_head`]): the connection is the tunnel's now,
            // never the pool's, and needs no head buffer or timer.
            conn.out = Vec::new();
            conn.head_timer = None;
            let tunnel = Upgraded {
                conn,
                idle_timeout: read_timeout,
                token: None,
            };
            let mut resp = Response::new(GatewayBody::tunnel(Box::new(tunnel)).with_passed(passed));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            return Ok(resp);
        }
        let done = Done {
            pool: Arc::clone(pool),
            key: Arc::clone(&node.key),
            keep_alive,
        };
        let body = match framing {
            ResponseFraming::Empty => {
                // Not after a HEAD: an upstream that writes a body to one
                // anyway (a classic handler bug), a moment late, would have
                // it read as the next client's answer (an outside audit).
                if self.parts.method != Method::HEAD {
                    done.release(conn);
                }
                GatewayBody::empty()
            }
            // The whole body came with the head (the usual case for small
            // responses): the connection goes back to the pool right away.
            ResponseFraming::Length(n) if usize::try_from(n).is_ok_and(|n| n <= conn.buf.len()) => {
                let body = conn.buf.split_to(usize::try_from(n).unwrap_or(0)).freeze();
                done.release(conn);
                GatewayBody::full(body)
            }
            framing => GatewayBody::upstream(Box::new(UpstreamBody {
                conn: Some(conn),
                state: match framing {
                    ResponseFraming::Length(n) => BodyState::Length(n),
                    ResponseFraming::Chunked => BodyState::Chunked(ChunkedDecoder::lenient()),
                    _ => BodyState::UntilClose,
                },
                done,
                idle_timeout: read_timeout,
                timer: None,
                timer_armed: false,
            })),
        };
        let mut resp = Response::new(body.with_passed(passed));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }

    /// The route's read timeout bounds each write of the body and the wait
    /// for the response head once the request is out; not the client's own
    /// pace of sending its body.
    async fn send(&mut self, node: &Node, conn: &mut Conn) -> Result<ResponseHead, Failure> {
        let read_timeout = self.read_timeout;
        let timed_out = || Failure::Failed(GatewayError::UpstreamTimeout(read_timeout.as_millis()));

        // The head: one small write into an idle connection's empty send
        // buffer. A pooled connection that fails here had been closed.
        conn.out.clear();
        let target = self
            .parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        h1::encode_request_head(
            &mut conn.out,
            &self.parts.method,
            target,
            &node.host_header,
            &self.parts.headers,
            self.added,
            self.framing,
        );
        if conn.io.write_all(&conn.out).await.is_err() {
            return Err(Failure::Closed { written: false });
        }

        // The body, streamed as the client sends it. The upstream may answer
        // before it has all of it (413, 401): that answer goes to the client.
        if self.framing != RequestFraming::Empty {
            self.body_started = true;
            if let Some(mut early) = self.send_body(node, conn).await? {
                // The rest of the body was never sent: the connection is
                // out of step and closes after this response.
                early.keep_alive = false;
                return Ok(early);
            }
        }

        let Conn {
            io,
            buf,
            head_timer,
            ..
        } = conn;
        let read_head = async {
            io.flush()
                .await
                .map_err(|e| upstream_error(node, e.to_string()))?;
            let mut received = false;
            loop {
                if let Some(head) = next_final_head(buf, self.parts, self.added.websocket, node)? {
                    return Ok(head);
                }
                buf.reserve(HEAD_READ);
                match io.read_buf(buf).await {
                    Ok(0) | Err(_) if !received => return Err(Failure::Closed { written: true }),
                    Ok(0) => {
                        return Err(upstream_error(
                            node,
                            "closed the connection mid-response".into(),
                        ))
                    }
                    Ok(_) => received = true,
                    Err(e) => return Err(upstream_error(node, e.to_string())),
                }
            }
        };
        let mut read_head = std::pin::pin!(read_head);
        let mut timer = Conn::head_timer(head_timer, read_timeout);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(head) = read_head.as_mut().poll(cx) {
                return Poll::Ready(head);
            }
            timer.as_mut().poll(cx).map(|()| Err(timed_out()))
        })
        .await
    }

    /// Writes the body; meanwhile reads what the upstream sends. Returns the
    /// upstream's final response head if it came before the body was all
    /// written.
    async fn send_body(
        &mut self,
        node: &Node,
        conn: &mut Conn,
    ) -> Result<Option<ResponseHead>, Failure> {
        let Conn { io, buf, out, .. } = conn;
        let (mut reader, mut writer) = tokio::io::split(io);
        let parts = &*self.parts;
        let body = &mut *self.body;
        let chunked = self.framing == RequestFraming::Chunked;
        let read_timeout = self.read_timeout;
        let body_timeout = self.body_timeout;
        let upload = async {
            // A client that stops sending its body (slow POST) ends the
            // exchange: it holds the upstream connection too, which closes.
            let stalled =
                || Failure::Failed(GatewayError::ClientBodyTimeout(body_timeout.as_millis()));
            while let Some(frame) = tokio::time::timeout(body_timeout, body.frame())
                .await
                .map_err(|_| stalled())?
            {
                let frame =
                    frame.map_err(|e| Failure::Failed(crate::body::request_body_error(&e)))?;
                // Trailers are not forwarded.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                if !chunked {
                    write_timed(&mut writer, &data, read_timeout, node).await?;
                    continue;
                }
                out.clear();
                h1::push_chunk_size(out, data.len());
                if data.len() <= COALESCE {
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                    write_timed(&mut writer, out, read_timeout, node).await?;
                } else {
                    write_timed(&mut writer, out, read_timeout, node).await?;
                    write_timed(&mut writer, &data, read_timeout, node).await?;
                    write_timed(&mut writer, b"\r\n", read_timeout, node).await?;
                }
            }
            if chunked {
                write_timed(&mut writer, b"0\r\n\r\n", read_timeout, node).await?;
            }
            Ok::<(), Failure>(())
        };
        let answer = async {
            loop {
                if let Some(head) = next_final_head(buf, parts, false, node)? {
                    return Ok::<ResponseHead, Failure>(head);
                }
                if buf.len() >= h1::MAX_HEAD {
                    return Err(invalid_response(node, "response head too large".into()));
                }
                buf.reserve(HEAD_READ);
                match reader.read_buf(buf).await {
                    Ok(n) if n > 0 => {}
                    // Closed or broken: the upload sees it too and reports.
                    _ => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            biased;
            done = upload => done.map(|()| None),
            head = answer => head.map(Some),
        }
    }
}

/// One write of the request body, bounded by the read timeout: an upstream
/// that stops reading does not hold the request forever.
async fn write_timed<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    limit: Duration,
    node: &Node,
) -> Result<(), Failure> {
    match tokio::time::timeout(limit, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(upstream_error(
            node,
            format!("writing the request body: {e}"),
        )),
        Err(_) => Err(Failure::Failed(GatewayError::UpstreamTimeout(
            limit.as_millis(),
        ))),
    }
}

/// The next final (non-1xx) response head in `buf`, if it is all there;
/// interim responses are read and dropped. `101` is final when the request
/// asked for a WebSocket (`websocket`), and refused otherwise: an upstream
/// that switches protocols unasked would have the client's next requests
/// read as whatever it switched to.
fn next_final_head(
    buf: &mut BytesMut,
    request: &Parts,
    websocket: bool,
    node: &Node,
) -> Result<Option<ResponseHead>, Failure> {
    // An HTTP/1.x client can take the upstream's header lines as they came.
    let pass_on = request.version <= Version::HTTP_11;
    let mut spare = recycle::header_map();
    let head = loop {
        // A 101's hop-by-hop fields, read before the parse leaves them
        // out; a handshake's only.
        let agrees =
            websocket && buf.starts_with(b"HTTP/1.1 101") && h1::switches_to_websocket(buf);
        match h1::parse_response_head(buf, &request.method, &mut spare, pass_on) {
            Ok(Some(head)) if head.status == StatusCode::SWITCHING_PROTOCOLS && websocket => {
                if !agrees {
                    break Err(invalid_response(
                        node,
                        "a 101 without Upgrade: websocket and Connection: upgrade".into(),
                    ));
                }
                break Ok(Some(head));
            }
            Ok(Some(head)) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                break Err(invalid_response(node, "switched protocols unasked".into()));
            }
            Ok(Some(head)) if head.status.is_informational() => {
                recycle::give_header_map(head.headers);
                spare = recycle::header_map();
            }
            Ok(head) => break Ok(head),
            Err(e) => break Err(invalid_response(node, e.to_string())),
        }
    };
    recycle::give_header_map(spare);
    head
}

fn closed_before_response(node: &Node) -> GatewayError {
    GatewayError::UpstreamUnavailable(format!(
        "{}: connection closed before a response",
        node.key.0
    ))
}

fn upstream_error(node: &Node, what: String) -> Failure {
    Failure::Failed(GatewayError::UpstreamUnavailable(format!(
        "{}: {what}",
        node.key.0
    )))
}

/// An answer that is no HTTP/1.1 answer.
fn invalid_response(node: &Node, what: String) -> Failure {
    Failure::Failed(GatewayError::UpstreamInvalid(format!(
        "{}: {what}",
        node.key.0
    )))
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Where a connection goes when its response has been read to the end.
struct Done {
    pool: Arc<PoolInner>,
    key: PoolKey,
    /// The response allows another request on the connection.
    keep_alive: bool,
}

impl Done {
    fn release(&self, conn: Conn) {
        // Bytes beyond the response: the upstream is out of step; close.
        if self.keep_alive && conn.buf.is_empty() {
            self.pool.put(Arc::clone(&self.key), conn);
        }
    }
}

/// A response body read from the upstream socket as the client side pulls it.
pub struct UpstreamBody {
    /// `None` once the body has ended or failed.
    conn: Option<Conn>,
    state: BodyState,
    done: Done,
    /// A body that stalls for this long fails (the route's read timeout,
    /// between two reads as nginx's `proxy_read_timeout`).
    idle_timeout: Duration,
    /// Made on the first stall, then reset; a body that arrives whole never
    /// needs one.
    timer: Option<Pin<Box<Sleep>>>,
    timer_armed: bool,
}

enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl UpstreamBody {
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // What the buffer already holds.
            let (data, ended) = match &mut self.state {
                BodyState::Length(remaining) => {
                    if conn.buf.is_empty() {
                        (None, false)
                    } else {
                        let take = usize::try_from(*remaining)
                            .map_or(conn.buf.len(), |r| r.min(conn.buf.len()));
                        *remaining -= take as u64;
                        (Some(conn.buf.split_to(take).freeze()), *remaining == 0)
                    }
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(d)) => (Some(d), false),
                    Ok(Decoded::Done) => (None, true),
                    Ok(Decoded::NeedMore) => (None, false),
                    Err(e) => return self.fail(e.into()),
                },
                BodyState::UntilClose => {
                    if conn.buf.is_empty() {
                        (None, false)
                    } else {
                        (Some(conn.buf.split().freeze()), false)
                    }
                }
            };
            if ended {
                if let Some(conn) = self.conn.take() {
                    self.done.release(conn);
                }
            }
            match data {
                Some(d) => return Poll::Ready(Some(Ok(Frame::data(d)))),
                None if ended => return Poll::Ready(None),
                None => {}
            }

            // Read more.
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            conn.buf.reserve(BODY_READ);
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
                Poll::Ready(Ok(0)) => {
                    if matches!(self.state, BodyState::UntilClose) {
                        self.conn = None;
                        return Poll::Ready(None);
                    }
                    return self.fail("it closed the connection before the body ended".into());
                }
                Poll::Ready(Ok(_)) => self.timer_armed = false,
                Poll::Ready(Err(e)) => return self.fail(e.into()),
                Poll::Pending => return self.poll_stall(cx),
            }
        }
    }

    /// The socket has nothing yet: wait, but not beyond the idle timeout.
    fn poll_stall(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let deadline = tokio::time::Instant::now() + self.idle_timeout;
        let timer = match &mut self.timer {
            Some(t) => {
                if !self.timer_armed {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.timer_armed = true;
        if timer.as_mut().poll(cx).is_ready() {
            let ms = self.idle_timeout.as_millis();
            return self.fail(format!("its body stalled for {ms} ms (read_timeout_ms)").into());
        }
        Poll::Pending
    }

    /// The connection is closed, never reused; the client's response is cut.
    /// The body cannot go on: the error names the upstream node, for the
    /// log line that says the client got part of an answer.
    #[cold]
    fn fail(&mut self, e: BodyError) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.conn = None;
        let node = &self.done.key.0;
        Poll::Ready(Some(Err(format!("upstream {node}: {e}").into())))
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.state, BodyState::Length(0))
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
