//! The admin HTTP server (axum): the router built from [`ENDPOINTS`], the
//! key check in front of `/admin/*`, the open `/status` and `/metrics`, the
//! console's static files (`console`), and a listener that stops with the
//! data plane.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodRouter};
use axum::{middleware, Json, Router};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jwtgate_config::{ConfigErrors, RawConsumer, RawProvider, RawRoute};
use jwtgate_proxy::metrics::{self, MetricsHandle};
use jwtgate_proxy::TlsServer;
use jwtgate_store::{Revocations, StoreHealth};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::endpoints::{Endpoint, Op, ENDPOINTS};
use crate::error::AdminError;
use crate::live::LiveConfig;
use crate::slots::Slots;
use crate::{
    auth, console, consumers, explain_api, host, named, openapi, providers, revocations, routes,
    subjects,
};

/// What every handler shares.
#[derive(Clone)]
pub struct AdminState {
    pub live: Arc<LiveConfig>,
    /// `None` when no recorder could be installed; `/metrics` then says so.
    pub metrics: Option<MetricsHandle>,
    /// Turns false once the gateway starts stopping, so a load balancer
    /// polling `/status` takes the node out before it goes away.
    pub ready: Arc<AtomicBool>,
}

impl AdminState {
    /// The entity tags of the objects, under the admin key now in force.
    pub(crate) async fn tagger(&self) -> Arc<crate::etag::Tagger> {
        self.live.tagger().await
    }
}

pub fn router(state: AdminState) -> Router {
    let mut router = Router::new();
    for endpoint in ENDPOINTS {
        router = router.route(endpoint.path, handler(endpoint));
    }
    router
        .merge(console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(crate::etag::not_modified))
        .layer(middleware::from_fn(crate::etag::no_entity_tags))
        .layer(middleware::from_fn(read_body_in_time))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            host::require_known_host,
        ))
        .layer(middleware::map_response(json_rejections))
        .layer(middleware::map_response(guarded))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// The address an admin request came from, put on each request by the
/// connection that read it.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// One line per `/admin/*` request, the admin API's audit trail (Kong's
/// `admin_access.log`): method, path, status, the peer and the time taken,
/// never the key. Refused keys are also a `WARN` naming a peer, at most
/// once a minute, so someone guessing shows at the default level. Counted in
/// `jwtgate_admin_requests_total{code}`. `/status`, `/metrics` and the
/// console's files, polled by machines or holding no data, get no line.
async fn access_log(req: axum::extract::Request, next: middleware::Next) -> Response {
    if !req.uri().path().starts_with("/admin/") {
        return next.run(req).await;
    }
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let peer = peer.map_or_else(|| "-".to_owned(), |p| p.to_string());
    info!(target: "jwtgate::admin", %method, %path, status, %peer, latency_us, "admin request");
    if resp.status() == StatusCode::UNAUTHORIZED {
        // At most once a minute: anyone who reaches the port may send
        // these, and the lines above and the counter have every one.
        static SAID: jwtgate_proxy::OncePer = jwtgate_proxy::OncePer::minute();
        if SAID.due() {
            warn!(target: "jwtgate::admin", %peer, "admin request refused: no valid X-API-KEY (said once a minute at most; every one is an access line and counted in jwtgate_admin_requests_total{{code=\"401\"}})");
        }
    }
    ::metrics::counter!(metrics::ADMIN_REQUESTS, "code" => status.to_string()).increment(1);
    resp
}

/// A request path as the log shows it: at most 256 bytes (anyone who
/// reaches the port writes it, with or without the key).
pub(crate) fn loggable_path(path: &str) -> String {
    const MAX: usize = 256;
    if path.len() <= MAX {
        return path.to_owned();
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end])
}

/// Headers every admin answer carries unless it set its own (the console's
/// files set a policy of their own): answers hold consumers, claims and
/// explain reports, which no cache may keep and no page may frame or
/// sniff into something else.
async fn guarded(mut resp: Response) -> Response {
    use header::HeaderValue;
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    }
    resp
}

/// axum's own refusals of a request (a body over the limit, a body that
/// could not be read) come as plain text; the API answers JSON (SPEC §4),
/// so they are put in its shape, the text as the message.
async fn json_rejections(resp: Response) -> Response {
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(plain && resp.status().is_client_error()) {
        return resp;
    }
    let status = resp.status();
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    (status, Json(json!({ "message": message }))).into_response()
}

fn handler(e: &Endpoint) -> MethodRouter<AdminState> {
    let f = e.verb.filter();
    match e.op {
        Op::ListRoutes => on(f, routes::list),
        Op::GetRoute => on(f, routes::get),
        Op::PutRoute => on(f, routes::put),
        Op::DeleteRoute => on(f, named::delete::<RawRoute>),
        Op::GetJwt => on(f, routes::get_jwt),
        Op::PutJwt => on(f, routes::put_jwt),
        Op::PatchJwt => on(f, routes::patch_jwt),
        Op::DeleteJwt => on(f, routes::delete_jwt),
        Op::ListConsumers => on(f, consumers::list),
        Op::GetConsumer => on(f, consumers::get),
        Op::PutConsumer => on(f, consumers::put),
        Op::DeleteConsumer => on(f, named::delete::<RawConsumer>),
        Op::ListProviders => on(f, providers::list),
        Op::GetProvider => on(f, providers::get),
        Op::PutProvider => on(f, providers::put),
        Op::DeleteProvider => on(f, named::delete::<RawProvider>),
        Op::Revoke => on(f, revocations::revoke),
        Op::CutOffSubject => on(f, subjects::create),
        Op::ListSubjects => on(f, subjects::list),
        Op::LiftSubject => on(f, subjects::delete),
        Op::Explain => on(f, explain_api::explain),
        Op::OpenApi => on(f, || async { Json(openapi::document()) }),
        Op::Status => on(f, status),
        Op::Metrics => on(f, metrics),
    }
}

/// Whether `path` holds a `%` not followed by two hex digits.
fn broken_escape(path: &str) -> bool {
    let b = path.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// The `{name}` / `{username}` path parameter, with rejections in the
/// admin API's JSON shape.
pub struct Name(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A `%` that starts no escape (`/routes/a%2`): the decoder keeps it
        // as written, and the route was created under a name the URL did
        // not say (an outside audit). The whole path is checked: the
        // other segments are fixed words.
        if broken_escape(parts.uri.path()) {
            return Err(AdminError::invalid(
                "invalid name in the path",
                ConfigErrors::single(
                    "",
                    "the name in the path: a `%` that starts no escape (write `%25` for a `%`)",
                ),
            ));
        }
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(name)| Name(name))
            // A name that is no text (percent-decoded, not UTF-8) names
            // nothing that could exist: invalid input, as SPEC §4 says.
            .map_err(|e| {
                AdminError::invalid(
                    "invalid name in the path",
                    ConfigErrors::single("", format!("the name in the path: {e}")),
                )
            })
    }
}

/// `/status`: `ready` (200) once the node serves with everything it needs
/// loaded; `starting` (503) while the blacklist, an identity provider's
/// first keys or etcd's objects are still on their way (`waiting_for`
/// says which; a provider's keys only until the node has been ready once);
/// `stopping` (503) once shutdown began. Any answer at all means the
/// process is alive.
async fn status(State(s): State<AdminState>, headers: header::HeaderMap) -> Response {
    // Why a store operation, a key-set fetch or an object was refused
    // names addresses, paths and what etcd holds (a resolved secret's
    // length, say): only for the holder of the key.
    let given = headers.get(crate::auth::HEADER).map(|v| v.as_bytes());
    let trusted = crate::auth::key_matches(s.live.admin_key().as_bytes(), given);
    let mut providers = serde_json::Map::new();
    let mut waiting = Vec::new();
    if !s.live.revocations().is_loaded() {
        waiting.push("revocation store".to_owned());
    }
    let settled = s.live.settled();
    for (name, p) in s.live.keys().statuses() {
        if p.state == "loading" && !settled {
            waiting.push(format!("keys of provider {name}"));
        }
        let mut entry = json!({ "state": p.state, "keys": p.keys, "age_seconds": p.age_seconds });
        if let (true, Some(why)) = (trusted, &p.last_error) {
            entry["error"] = json!(why);
        }
        providers.insert(name, entry);
    }
    let source = s.live.source_status();
    if source.as_ref().and_then(|v| v["state"].as_str()) == Some("connecting") {
        waiting.push("etcd".to_owned());
    }
    if waiting.is_empty() {
        s.live.settle();
    }
    let (code, status) = if !s.ready.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping")
    } else if !waiting.is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    } else {
        (StatusCode::OK, "ready")
    };
    let mut body = json!({ "status": status });
    if status == "starting" {
        body["waiting_for"] = json!(waiting);
    }
    if !providers.is_empty() {
        body["providers"] = serde_json::Value::Object(providers);
    }
    body["revocation_store"] = revocation_store(s.live.revocations(), trusted);
    // The config holds settings the node serves otherwise until a restart.
    let pending = s.live.running().restart_pending();
    if !pending.is_empty() {
        body["restart_pending"] = json!(pending);
    }
    if let Some(mut source) = source {
        if !trusted {
            // Why etcd is not followed names its members and user.
            if let Some(source) = source.as_object_mut() {
                source.remove("error");
            }
            if let Some(refused) = source["refused"].as_array_mut() {
                for r in refused.iter_mut().filter_map(|r| r.as_object_mut()) {
                    r.remove("reason");
                }
            }
        }
        body["config_source"] = source;
    }
    (code, Json(body)).into_response()
}

/// The blacklist store in `/status`: its kind and whether its last
/// operation succeeded. A failing store does not make the node unready:
/// requests are checked against the revocations already known (SPEC
/// §3.5); logouts answer 503 until it answers again.
fn revocation_store(revocations: &Revocations, trusted: bool) -> serde_json::Value {
    let kind = revocations.store().kind();
    match revocations.health() {
        StoreHealth::Ok => json!({ "kind": kind, "state": "ok" }),
        StoreHealth::Failing { since, error } => {
            let mut v = json!({ "kind": kind, "state": "failing", "since": since });
            if trusted {
                v["error"] = json!(error);
            }
            v
        }
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let Some(handle) = &s.metrics else {
        return AdminError::NotFound("metrics are not enabled".into()).into_response();
    };
    let keys = s.live.keys();
    keys.record_ages();
    let mut text = handle.render(s.live.revocations(), &|name| keys.runs(name));
    metrics::write_certificate_expiries(&mut text, &s.live.certificate_expiries());
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn not_found() -> AdminError {
    no_such_endpoint()
}

/// What a path that is not there gets (the console too, when it is off).
pub(crate) fn no_such_endpoint() -> AdminError {
    AdminError::NotFound("no such endpoint (see GET /admin/v1/openapi.json)".into())
}

async fn method_not_allowed() -> Response {
    let body = Json(json!({ "message": "method not allowed on this endpoint" }));
    (StatusCode::METHOD_NOT_ALLOWED, body).into_response()
}

/// The admin listener, bound before serving so a bad address fails start.
pub struct AdminListener {
    listener: TcpListener,
    local: SocketAddr,
    /// HTTPS (`admin.tls`), reloaded with the config.
    tls: Option<Arc<TlsServer>>,
}

impl AdminListener {
    pub async fn bind(addr: SocketAddr, tls: Option<Arc<TlsServer>>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok(AdminListener {
            listener,
            local,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `stop` turns true, then lets in-flight admin requests
    /// finish (the caller bounds the wait).
    ///
    /// HTTP/1.1 (over TLS with `admin.tls`), with the bounds a data-plane
    /// connection has: a TLS handshake and a request head must each arrive
    /// within [`HEAD_TIMEOUT`] (an idle keep-alive connection is closed
    /// then too), a body may not stall for longer
    /// than [`BODY_TIMEOUT`], and at most [`MAX_CONNECTIONS`] are served
    /// at once (a new one has a connection of the peer holding the most
    /// closed for it, see [`Slots`]). Without them
    /// anyone who reaches the port could hold connections open until the
    /// process had no file descriptor left, for the data plane either.
    pub async fn serve(self, state: AdminState, stop: watch::Receiver<bool>) {
        // Not "listening on http://": that line announces the data plane.
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        info!("admin API listening at {scheme}://{}", self.local);
        if let Some(handle) = state.metrics.clone() {
            tokio::spawn(upkeep(handle, stop.clone()));
        }
        let ready = Arc::clone(&state.ready);
        let router = router(state);
        let slots = Slots::new(MAX_CONNECTIONS);
        let mut stop = stop;
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.wait_for(|s| *s) => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    static SAID: jwtgate_proxy::OncePer = jwtgate_proxy::OncePer::minute();
                    if SAID.due() {
                        warn!(error = %e, "admin API: accept failed (said once a minute at most)");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Taken once a client is there: a full listener has a
            // connection closed for it (`slots`), not before.
            let place = tokio::select! {
                p = slots.place(peer.ip()) => p,
                _ = stop.wait_for(|s| *s) => break,
            };
            let Ok(place) = place else { break };
            let over_tls = self.tls.is_some();
            let (busy, done) = (Arc::clone(&place.busy), Arc::clone(&place.busy));
            let service = TowerToHyperService::new(
                router
                    .clone()
                    .map_request(move |mut req: http::Request<Incoming>| {
                        busy.fetch_add(1, Ordering::AcqRel);
                        req.extensions_mut().insert(Peer(peer));
                        if over_tls {
                            req.extensions_mut().insert(host::OverTls);
                        }
                        req
                    })
                    .map_response(move |resp: Response| {
                        // In progress until its body's last frame is taken
                        // (or the connection ends): the body owns the count.
                        let answered = Answered(Arc::clone(&done));
                        resp.map(|body| {
                            use http_body_util::BodyExt;
                            axum::body::Body::new(body.map_frame(move |frame| {
                                let _ = &answered;
                                frame
                            }))
                        })
                    }),
            );
            // The current settings: a reload serves the next handshake.
            let acceptor = self.tls.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let http = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEAD_TIMEOUT)
                    .clone();
                match acceptor {
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        until_closed(conn, &place, stop).await;
                    }
                    Some(tls) => {
                        let handshake =
                            tokio::time::timeout(HEAD_TIMEOUT, tls.accept(stream, "admin", peer));
                        // Asked to close before it is done: nothing was
                        // asked of it yet, it goes at once.
                        let done = tokio::select! {
                            done = handshake => done,
                            () = place.closing.notified() => return,
                        };
                        match done {
                            Ok(Some(stream)) => {
                                let conn = http.serve_connection(TokioIo::new(stream), service);
                                until_closed(conn, &place, stop).await;
                            }
                            Ok(None) => {}
                            Err(_) => {
                                metrics::record_tls_handshake_failure("admin", "timeout");
                                debug!(%peer, reason = "timeout", "admin API: TLS handshake failed");
                            }
                        }
                    }
                }
                // The place (its slot) goes with the task.
            });
        }
        ready.store(false, Ordering::Relaxed);
        slots.all_ended().await;
        info!("admin API stopped");
    }
}

/// A request in progress on an admin connection, from its head read until
/// its answer's body is written out (`Place::busy`).
struct Answered(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `conn` until it ends; at a stop, or when its place is asked for
/// (a full listener, [`Slots`]), it is shut down gracefully: with no
/// request in progress (idle, or a request head not done), within
/// [`IDLE_CLOSE`] — hyper's graceful shutdown waited for such a head up to
/// its 30 s timeout, so 256 connections that each sent half a head kept
/// `/status` from everyone (an outside audit) —, after the answer in
/// progress otherwise.
async fn until_closed<I, S, B>(
    conn: http1::Connection<I, S>,
    place: &crate::slots::Place,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = place.closing.notified() => {}
        _ = stop.wait_for(|s| *s) => {}
    }
    let idle = place.busy.load(Ordering::Acquire) == 0;
    conn.as_mut().graceful_shutdown();
    if idle {
        // An answer handed over may still sit in hyper's buffer: it gets a
        // moment to be written out.
        let _ = tokio::time::timeout(IDLE_CLOSE, conn).await;
        return;
    }
    let _ = conn.await;
}

/// How long a connection asked to close with no request in progress is
/// given to write out an answer already handed over (the body's frames
/// taken, its bytes still buffered) before it is dropped.
const IDLE_CLOSE: Duration = Duration::from_secs(1);

/// How long a client has to send a request head, on a new connection or
/// between two requests of a kept-alive one, as on the data plane.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request body may stall between two reads.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a whole request body may take: a client trickling a byte now
/// and then must not hold a connection for ever.
const BODY_DEADLINE: Duration = Duration::from_secs(60);

/// Admin connections served at once: operators, scrapers and load
/// balancers' `/status` checks, far from this many.
const MAX_CONNECTIONS: usize = 256;

/// The most a request body may hold (axum's own default limit, which the
/// handlers' extractors apply as well).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// `resp`, with the connection closed after it.
fn close_after(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Reads a request's body before the handler runs, each read bounded by
/// [`BODY_TIMEOUT`]: a client that stops sending gets 408 and its
/// connection ends, where it had held the connection (and a descriptor)
/// for as long as it liked. Reading first keeps the handler itself whole:
/// a write is never cut off halfway by a timeout; nor may the whole body
/// take over [`BODY_DEADLINE`].
///
/// Paths outside `/admin/` (`/status`, `/metrics`, the console's files)
/// take no body, and anyone may send to them: a body sent there is left
/// unread, the request answered as it would be without one, and the
/// connection closed after the answer, so that no client without the key
/// holds a connection by trickling a body.
async fn read_body_in_time(req: axum::extract::Request, next: middleware::Next) -> Response {
    use http_body_util::BodyExt;
    let (parts, mut body) = req.into_parts();
    let closing =
        |status, message: String| close_after(AdminError::Body(status, message).into_response());
    if !parts.uri.path().starts_with("/admin/") {
        if axum::body::HttpBody::is_end_stream(&body) {
            return next
                .run(axum::extract::Request::from_parts(parts, body))
                .await;
        }
        drop(body);
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::empty());
        return close_after(next.run(request).await);
    }
    let too_large = || format!("the request body is over {BODY_LIMIT} bytes");
    // A Content-Length over the limit is answered at once, not after the
    // body it announces was waited for.
    if axum::body::HttpBody::size_hint(&body).lower() > BODY_LIMIT as u64 {
        return closing(StatusCode::PAYLOAD_TOO_LARGE, too_large());
    }
    let deadline = tokio::time::Instant::now() + BODY_DEADLINE;
    let mut bytes = Vec::new();
    loop {
        let until = deadline.min(tokio::time::Instant::now() + BODY_TIMEOUT);
        let frame = match tokio::time::timeout_at(until, body.frame()).await {
            Err(_) if until == deadline => {
                let message = format!("the request body took over {}s", BODY_DEADLINE.as_secs());
                return closing(StatusCode::REQUEST_TIMEOUT, message);
            }
            Err(_) => {
                let message = format!("the request body stalled for {}s", BODY_TIMEOUT.as_secs());
                return closing(StatusCode::REQUEST_TIMEOUT, message);
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let message = format!("cannot read the request body: {e}");
                return AdminError::Body(StatusCode::BAD_REQUEST, message).into_response();
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > BODY_LIMIT {
                return closing(StatusCode::PAYLOAD_TOO_LARGE, too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Histogram samples are drained into buckets here, not only on scrape,
/// so memory stays flat when nobody scrapes.
async fn upkeep(handle: MetricsHandle, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => handle.run_upkeep(),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
