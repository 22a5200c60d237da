//! Listeners: accept connections, speak HTTP/1.1 (our own loop, `http1`) or
//! HTTP/2 (our own loop over the `h2` crate, `http2`, for a connection that
//! opens with the HTTP/2 preface: h2c with prior knowledge, or ALPN `h2`
//! over TLS), hand each request to the pipeline, and shut down gracefully:
//! stop accepting, let in-flight requests finish (bounded).

mod affinity;
mod balance;
mod http1;
mod http2;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use jwtgate_config::{TlsMaterial, WorkerAffinity};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::conn_info::ConnInfo;
use crate::gateway::Gateway;
use crate::idle::{IdleWatch, Ticket};
use crate::tls::TlsServer;
use crate::upstream::{ConnPool, UpstreamBudget};

use balance::{Balance, Handover, Placed};
use http1::{ConnCtx, Connection, Served, Transport};

/// How long in-flight requests may take to finish after a stop signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that has not completed a request head this long after opening
/// its connection (TLS handshake included) or after its previous exchange
/// ended is dropped: slowloris clients and abandoned keep-alive connections.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often each worker looks for idle connections: they are closed
/// between `IDLE_TIMEOUT` and `IDLE_TIMEOUT + 2 * IDLE_SWEEP` after going
/// idle.
const IDLE_SWEEP: Duration = Duration::from_secs(1);
/// An idle HTTP/2 connection says GOAWAY and closes once its client has
/// answered the GOAWAY's PING; one still open this long after is closed.
const GOODBYE_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}{hint}", hint = privileged_port_hint(*.addr, .source))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("no worker thread could start: {0}")]
    NoWorker(String),
}

/// What to add to a refused bind of a port below 1024: the capability it
/// needs (an outside audit: the unit's user got "Permission denied" and no
/// word of it).
pub fn privileged_port_hint(addr: SocketAddr, e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 {
        " (a port below 1024 needs the CAP_NET_BIND_SERVICE capability: see the README's \
         service section for the unit's drop-in)"
    } else {
        ""
    }
}

/// The live configuration; swapped whole on reload.
pub type SharedGateway = Arc<ArcSwap<Gateway>>;

/// Bound listeners, ready to serve.
pub struct Listeners {
    listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    tls: Option<Arc<TlsServer>>,
    /// Worker threads to serve with; `None`: one per core.
    workers: Option<NonZeroUsize>,
    affinity: WorkerAffinity,
    /// Whether unpinned workers yield their CPU before they sleep
    /// (`worker_yield`).
    yields: bool,
    /// Connections served at once before accepting pauses
    /// (`max_connections`).
    max_connections: usize,
}

/// Pending connections each listening socket may queue.
const BACKLOG: i32 = 1024;

/// A listening socket on `addr` in the address's `SO_REUSEPORT` group:
/// each worker has its own, and the kernel spreads new connections over
/// them evenly (by a hash of the connection's addresses), where one shared
/// socket gives a burst to whichever worker wakes first.
/// `v6_only`: see [`v6_only`].
fn reuseport_listener(addr: SocketAddr, v6_only: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if v6_only {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Whether `addr` is the IPv6 wildcard on a port the config also lists an
/// IPv4 address on: it then takes IPv6 only, as nginx's `listen [::]:80`
/// does by default, so that both are bound. Where `[::]` takes IPv4 too
/// (Linux's default, `net.ipv6.bindv6only = 0`) the second bind failed with
/// "Address already in use" while `check` passed (an outside operations
/// audit). Alone, `[::]` is left to the host's default (both, on Linux).
fn v6_only(addr: SocketAddr, all: &[SocketAddr]) -> bool {
    addr.is_ipv6()
        && addr.ip().is_unspecified()
        && addr.port() != 0
        && all.iter().any(|a| a.is_ipv4() && a.port() == addr.port())
}

/// Binds `addr` and lets it go: a port another process listens on (even in
/// a SO_REUSEPORT group of its own) is an error here, not a group to join
/// silently.
fn probe(addr: SocketAddr, v6_only: bool) -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if v6_only {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1)
}

impl Listeners {
    /// Binds every address now, so that bind errors surface before serving.
    pub async fn bind(addrs: &[SocketAddr], tls: Option<&TlsMaterial>) -> Result<Self, ServeError> {
        let tls = tls
            .map(|m| TlsServer::new(m).map_err(ServeError::Tls))
            .transpose()?;
        let mut listeners = Vec::new();
        for &addr in addrs {
            let v6_only = v6_only(addr, addrs);
            if addr.port() != 0 {
                probe(addr, v6_only).map_err(|source| ServeError::Bind { addr, source })?;
            }
            let bound = reuseport_listener(addr, v6_only).and_then(|l| Ok((l.local_addr()?, l)));
            let (local, l) = bound.map_err(|source| ServeError::Bind { addr, source })?;
            listeners.push((l, local));
        }
        Ok(Listeners {
            listeners,
            tls,
            workers: None,
            affinity: WorkerAffinity::Off,
            yields: true,
            max_connections: usize::MAX,
        })
    }

    /// Serve with `n` worker threads (the config's `workers`); `None`, the
    /// default: one per core this process may run on. `affinity`: whether
    /// each is pinned to a CPU of its own (`worker_cpu_affinity`).
    pub fn with_workers(mut self, n: Option<NonZeroUsize>, affinity: WorkerAffinity) -> Self {
        self.workers = n;
        self.affinity = affinity;
        self
    }

    /// Whether an unpinned worker yields its CPU once before it sleeps
    /// (`worker_yield`; default true): see [`affinity::yield_before_sleep`].
    pub fn with_worker_yield(mut self, yields: bool) -> Self {
        self.yields = yields;
        self
    }

    /// Serve at most `n` client connections at once (`max_connections`):
    /// with that many open, no worker accepts another until one ends, and
    /// new ones wait in the listening socket's queue, as with HAProxy's
    /// `maxconn`. It keeps file descriptors for the upstreams, the store,
    /// etcd and the admin API when clients would take them all.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The listeners' TLS, for reloads of its certificates and settings.
    pub fn tls(&self) -> Option<Arc<TlsServer>> {
        self.tls.clone()
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, a)| *a).collect()
    }

    /// Serves until `stop` turns true, then drains in-flight requests.
    ///
    /// One worker thread per core this process may run on (or as many as
    /// [`Listeners::with_workers`] says), each with a current-thread
    /// runtime of its own accepting from the same listening sockets: a
    /// connection, its requests, its upstream connections and
    /// their timers stay on one thread, with no work stealing between
    /// cores. Chosen by measurement over one multi-thread runtime: 4.9 %
    /// fewer instructions per proxied request (`bench/callgrind.sh plain`),
    /// most of it the multi-thread scheduler's per-batch bookkeeping.
    pub async fn serve(
        self,
        gateway: SharedGateway,
        stop: watch::Receiver<bool>,
    ) -> Result<(), ServeError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        for (_, local) in &self.listeners {
            info!("listening on {scheme}://{local}");
        }
        let workers = self
            .workers
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        let sockets = worker_sockets(self.listeners, workers);
        let cpus = affinity::plan(self.affinity, sockets.len());
        let yields = self.yields && cpus.is_none() && affinity::may_move();
        match &cpus {
            Some(cpus) => {
                info!(workers = sockets.len(), cpus = %affinity::describe(cpus), "serving, each worker pinned to a CPU")
            }
            None => info!(
                workers = sockets.len(),
                yield_before_sleep = yields,
                "serving"
            ),
        }
        let (balance, inboxes) = Balance::new(sockets.len(), self.max_connections);
        crate::metrics::connections::serving(balance.counts(), self.max_connections);
        // As many upstream connections as client ones: the two descriptors a
        // connection `max_connections` counts (see `upstream::budget`).
        let budget = Arc::new(UpstreamBudget::new(self.max_connections));
        let mut done = Vec::new();
        let mut last_error = String::from("no listening sockets for any worker");
        for (n, (mine, inbox)) in sockets.into_iter().zip(inboxes).enumerate() {
            let worker = Worker {
                id: n,
                listeners: mine,
                inbox,
                balance: Arc::clone(&balance),
                budget: Arc::clone(&budget),
                tls: self.tls.clone(),
                gateway: Arc::clone(&gateway),
                stop: stop.clone(),
            };
            let (finished, wait) = oneshot::channel::<()>();
            let cpu = cpus.as_ref().and_then(|c| c.get(n).copied());
            let started = std::thread::Builder::new()
                .name(format!("jwtgate-worker-{n}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        affinity::pin_current(n, cpu);
                    }
                    let mut runtime = tokio::runtime::Builder::new_current_thread();
                    runtime.enable_all();
                    if yields {
                        runtime.on_thread_park(affinity::yield_before_sleep);
                    }
                    match runtime.build() {
                        Ok(rt) => rt.block_on(worker.serve(IDLE_TIMEOUT, IDLE_SWEEP)),
                        Err(e) => error!(error = %e, "worker {n}: cannot start its runtime"),
                    }
                    drop(finished);
                });
            match started {
                Ok(_) => done.push(wait),
                Err(e) => {
                    error!(error = %e, "cannot start worker {n}");
                    last_error = e.to_string();
                }
            }
        }
        if done.is_empty() {
            return Err(ServeError::NoWorker(last_error));
        }
        // Each worker drains its own connections once `stop` turns true.
        for wait in done {
            let _ = wait.await;
        }
        Ok(())
    }
}

/// The listening sockets of each of `workers` workers: the first takes the
/// ones bound at start; each other binds its own in the same SO_REUSEPORT
/// group (the same port, an ephemeral one included). Where that fails
/// (no SO_REUSEPORT), the remaining workers share clones of the first ones.
fn worker_sockets(
    first: Vec<(std::net::TcpListener, SocketAddr)>,
    workers: usize,
) -> Vec<Vec<std::net::TcpListener>> {
    let addrs: Vec<SocketAddr> = first.iter().map(|(_, a)| *a).collect();
    let first: Vec<std::net::TcpListener> = first.into_iter().map(|(l, _)| l).collect();
    let mut out = Vec::with_capacity(workers);
    let mut own = true;
    for n in 1..workers {
        if own {
            match addrs
                .iter()
                .map(|a| reuseport_listener(*a, v6_only(*a, &addrs)))
                .collect()
            {
                Ok(sockets) => {
                    out.push(sockets);
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "workers from {n} on share the first listening socket (no SO_REUSEPORT): connections may spread unevenly");
                    own = false;
                }
            }
        }
        match first.iter().map(|l| l.try_clone()).collect() {
            Ok(clones) => out.push(clones),
            Err(e) => error!(error = %e, "worker {n}: cannot share the listening sockets"),
        }
    }
    out.insert(0, first);
    out
}

/// One core's share of the data plane.
struct Worker {
    /// Its number, for the per-worker connection count.
    id: usize,
    listeners: Vec<std::net::TcpListener>,
    /// Connections other workers accepted and handed over.
    inbox: tokio::sync::mpsc::UnboundedReceiver<Handover>,
    balance: Arc<Balance>,
    /// Upstream connections, shared by every worker's pool.
    budget: Arc<UpstreamBudget>,
    tls: Option<Arc<TlsServer>>,
    gateway: SharedGateway,
    stop: watch::Receiver<bool>,
}

impl Worker {
    async fn serve(self, idle_timeout: Duration, idle_sweep: Duration) {
        let idle = IdleWatch::start(
            idle_timeout,
            GOODBYE_GRACE,
            idle_sweep,
            self.balance.placed(self.id),
        );
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let graceful = Arc::new(GracefulShutdown::new());
        let shared = Arc::new(Shared {
            worker: self.id,
            balance: self.balance,
            accepted: crate::metrics::worker_connections(self.id),
            count: Arc::clone(&count),
            tls: self.tls.clone(),
            gateway: Arc::clone(&self.gateway),
            pool: ConnPool::with_budget(self.budget),
            idle: idle.clone(),
            graceful: Arc::clone(&graceful),
        });
        let mut tasks = vec![tokio::spawn(inbox_loop(
            self.inbox,
            Arc::clone(&shared),
            self.stop.clone(),
        ))];
        for listener in self.listeners {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    error!(error = %e, "cannot accept on a listening socket");
                    continue;
                }
            };
            tasks.push(tokio::spawn(accept_loop(
                listener,
                Arc::clone(&shared),
                self.stop.clone(),
            )));
        }
        drop(shared);
        let mut stop = self.stop;
        let _ = stop.wait_for(|s| *s).await;
        for t in tasks {
            let _ = t.await;
        }
        // Idle connections close now; busy ones after their answer.
        idle.stop();
        info!(
            worker = self.id,
            connections = count.load(std::sync::atomic::Ordering::Relaxed),
            "worker stopped accepting"
        );
        let Ok(graceful) = Arc::try_unwrap(graceful) else {
            warn!("connections still referenced at shutdown");
            return;
        };
        debug!("stopped accepting; draining in-flight requests");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            crate::pipeline::abandon_unanswered();
            warn!(
                "connections still open after {DRAIN_TIMEOUT:?} (requests in flight, or clients \
                 that did not close); closing them"
            );
        }
    }
}

/// What every connection of a worker uses.
struct Shared {
    /// The worker's number.
    worker: usize,
    balance: Arc<Balance>,
    /// Counts the connections the worker serves (the metric, and the
    /// figure logged when it stops).
    accepted: metrics::Counter,
    count: Arc<std::sync::atomic::AtomicU64>,
    tls: Option<Arc<TlsServer>>,
    gateway: SharedGateway,
    pool: ConnPool,
    idle: IdleWatch,
    graceful: Arc<GracefulShutdown>,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (balance, me) = (&shared.balance, shared.worker);
    loop {
        if balance.is_full() {
            said_paused(balance);
            tokio::select! {
                _ = tokio::time::sleep(FULL_RECHECK) => continue,
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                if ACCEPT_FAILED_SAID.due() {
                    warn!(error = %e, "accept failed (said once a minute at most)");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The exact check: a worker that was waiting to accept when the
        // limit was reached holds its connection, unserved, until a place
        // is free (one such connection a worker at most).
        while !balance.reserve(me) {
            said_paused(balance);
            tokio::select! {
                _ = tokio::time::sleep(FULL_RECHECK) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        let _ = stream.set_nodelay(true);
        if let Placed::Here(stream) = balance.place(me, stream, peer) {
            start_connection(stream, peer, &shared);
        }
    }
}

/// Logs that accepting paused at `max_connections`, once a minute at most.
fn said_paused(balance: &Balance) {
    if PAUSED_SAID.due() {
        warn!(
            max_connections = balance.limit(),
            "max_connections reached: accepting paused until a connection ends \
             (said once a minute at most)"
        );
    }
}

/// Says that an upstream broke off a response body after its head had gone
/// to the client (closed early, a malformed chunk, a stall past
/// `read_timeout_ms`), and counts it: the access line, written when the
/// head went out, holds the upstream's status. `then`: what became of the
/// client's side.
#[cold]
#[inline(never)]
fn response_cut_off(e: &crate::body::BodyError, then: &str) {
    warn!("response cut off: {e}; the client has part of the answer, and {then}");
    crate::metrics::record_response_cut_off();
}

/// How often a worker at `max_connections` looks again.
const FULL_RECHECK: Duration = Duration::from_millis(10);

static PAUSED_SAID: crate::OncePer = crate::OncePer::minute();
static ACCEPT_FAILED_SAID: crate::OncePer = crate::OncePer::minute();

/// Serves the connections other workers hand over (see `balance`).
async fn inbox_loop(
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Handover>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            h = inbox.recv() => match h {
                Some(h) => h,
                None => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => start_connection(stream, peer, &shared),
            Err(e) => {
                // Its place was counted here: the ticket that gives it back
                // never comes.
                shared.balance.unplace(shared.worker);
                debug!(error = %e, "cannot take over a connection; it is closed");
            }
        }
    }
}

/// Spawns the task serving a connection placed on this worker.
fn start_connection(stream: tokio::net::TcpStream, peer: SocketAddr, shared: &Shared) {
    shared.accepted.increment(1);
    shared
        .count
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ctx = ConnCtx {
        gateway: Arc::clone(&shared.gateway),
        pool: shared.pool.clone(),
        activity: shared
            .idle
            .activity(ConnInfo::new(peer, shared.tls.is_some())),
    };
    let activity = Arc::clone(&ctx.activity);
    // Held for the connection's life: the drain at stop waits for it.
    let watcher = shared.graceful.watcher();
    let ticket = shared.idle.ticket();
    let id = ticket.id();
    let task = match &shared.tls {
        None => tokio::spawn(serve_connection(stream, ctx, watcher, ticket)),
        Some(tls) => {
            let tls = Arc::clone(tls);
            tokio::spawn(async move {
                // The idle watch bounds the handshake too: aborted by it,
                // the guard counts a timeout.
                let guard = Handshaking(Some(peer));
                let stream = tls.accept(stream, "data", peer).await;
                guard.done();
                let Some(stream) = stream else { return };
                serve_connection(stream, ctx, watcher, ticket).await
            })
        }
    };
    shared.idle.watch(id, activity, task.abort_handle());
}

/// A TLS handshake under way; dropped before [`Handshaking::done`] (its
/// task aborted by the idle watch), it was cut short by the timeout.
struct Handshaking(Option<SocketAddr>);

impl Handshaking {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        if let Some(peer) = self.0 {
            crate::metrics::record_tls_handshake_failure("data", "timeout");
            debug!(%peer, reason = "timeout", "TLS handshake failed");
        }
    }
}

/// Serves one client connection: HTTP/1.1, or HTTP/2 when the client opens
/// with the HTTP/2 preface. `watcher` lets the drain at stop wait for the
/// connection; `ticket` keeps it in the idle watch; both go when it ends.
///
/// Not an `async fn`: one keeps a copy of its arguments beside what its body
/// moves them into, for as long as the connection lives. Here the
/// connection is built first and the future holds it once, in place.
fn serve_connection<IO: Transport>(
    io: IO,
    ctx: ConnCtx,
    watcher: Watcher,
    ticket: Ticket,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut conn = Connection::new(io, ctx);
    async move {
        if let Served::H2 = conn.serve().await {
            // Boxed: the HTTP/2 connection's state would otherwise make
            // every connection's task as large, idle HTTP/1.1 ones included.
            Box::pin(serve_h2(conn, watcher)).await;
        }
        drop(ticket);
    }
}

/// Serves a connection whose client spoke the HTTP/2 preface; `watcher`
/// keeps the drain at stop waiting until its streams in flight are done.
async fn serve_h2<IO: Transport>(conn: Connection<IO>, watcher: Watcher) {
    let (io, ctx) = conn.into_h2();
    http2::serve(io, ctx).await;
    drop(watcher);
}

#[cfg(test)]
mod tests {
    use super::{v6_only, ServeError};
    use std::net::SocketAddr;

    #[test]
    fn a_port_below_1024_refused_says_the_capability_it_needs() {
        let refused = |addr: &str, kind| {
            ServeError::Bind {
                addr: addr.parse().unwrap(),
                source: std::io::Error::from(kind),
            }
            .to_string()
        };
        let said = refused("127.0.0.1:80", std::io::ErrorKind::PermissionDenied);
        assert!(
            said.starts_with("cannot listen on 127.0.0.1:80: "),
            "{said}"
        );
        assert!(said.contains("CAP_NET_BIND_SERVICE"), "{said}");
        for said in [
            refused("127.0.0.1:8080", std::io::ErrorKind::PermissionDenied),
            refused("127.0.0.1:80", std::io::ErrorKind::AddrInUse),
        ] {
            assert!(!said.contains("CAP_NET_BIND_SERVICE"), "{said}");
        }
    }

    #[test]
    fn the_ipv6_wildcard_takes_ipv6_only_beside_an_ipv4_address_on_its_port() {
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter().map(|a| a.parse().unwrap()).collect()
        };
        let both = addrs(&["[::]:8080", "127.0.0.1:8080", "0.0.0.0:9000"]);
        assert!(v6_only(both[0], &both));
        assert!(!v6_only(both[1], &both), "IPv4 sockets have no such option");
        // Alone, or beside another port, or not the wildcard: the host's
        // default.
        let alone = addrs(&["[::]:8080", "127.0.0.1:8081"]);
        assert!(!v6_only(alone[0], &alone));
        let loopback = addrs(&["[::1]:8080", "127.0.0.1:8080"]);
        assert!(!v6_only(loopback[0], &loopback));
        let ephemeral = addrs(&["[::]:0", "127.0.0.1:0"]);
        assert!(!v6_only(ephemeral[0], &ephemeral));
    }
}
