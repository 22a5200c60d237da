//! The request pipeline: the ONE place where the stages of handling a request
//! are put in order. Someone adding a policy adds a stage here.
//!
//! 1. refuse what upstreams could read differently from the gateway: a
//!    known method in another case, a malformed or repeated `Host`; then
//!    normalise the path (once; everything after sees only this path)
//! 2. match a route
//! 3. strip client-sent headers the gateway owns and hop-by-hop headers;
//!    join cookie crumbs
//! 4. decide whether the request needs a token, authenticate it, check the
//!    blacklist; a logout request is answered (or forwarded) here
//! 5. proxy to the upstream (or the echo upstream)
//! 6. a forwarded logout is recorded once the upstream answered 2xx
//!
//! Each stage returns a typed [`GatewayError`]; the error becomes a response
//! in one place, `GatewayError::into_response`.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode};
use jwtgate_core::claims;
use jwtgate_core::clock::{Clock, FixedClock};
use jwtgate_core::consumer::Consumer;
use jwtgate_core::jwt::{revocation_expiry, RevocationKey};
use jwtgate_core::path::{match_form, normalize, Method};
use jwtgate_core::policy::{
    authenticate_cached, sources, AuthError, Authenticated, JwtPolicy, Principal,
};
use jwtgate_core::provider::IdentityProvider;
use jwtgate_store::Entry;

use crate::body::{unpass_headers, GatewayBody, RequestBody};
use crate::conn_info::ConnInfo;
use crate::cors;
use crate::echo;
use crate::error::{json_message, GatewayError};
use crate::gateway::{Gateway, IdentityHeaders};
use crate::headers::{self, GatewayHeaders};
use crate::log_sink;
use crate::router::{PolicyHeaders, RouteRuntime, Target};
use crate::upstream::ConnPool;

/// Facts gathered along the way for the access log line, borrowed from the
/// config version serving the request.
#[derive(Default)]
struct Outcome<'g> {
    route: Option<&'g RouteRuntime>,
    /// `Access-Control-Allow-Origin` for the response, when the route has
    /// CORS and the request's origin is allowed.
    origin: Option<HeaderValue>,
    consumer: Option<Arc<Consumer>>,
    /// The identity provider that issued the token, if one did.
    provider: Option<Arc<IdentityProvider>>,
    auth: &'static str,
    detail: Option<String>,
}

/// Answers one request, whichever protocol brought it, and writes its
/// access line and metrics once.
///
/// Not an `async fn`, which keeps each argument twice in its future (as
/// passed, and as moved into its body): this future is part of every
/// request's, allocated and copied once per request.
#[allow(clippy::manual_async_fn)]
pub fn handle<'p, 'b, 'c>(
    gateway: Arc<Gateway>,
    pool: &'p ConnPool,
    req: Request<RequestBody<'b>>,
    conn: &'c ConnInfo,
) -> impl Future<Output = Response<GatewayBody>> + use<'p, 'b, 'c> {
    async move {
        let mut record = Record {
            gateway: &gateway,
            conn,
            method: req.method().clone(),
            // The path as the client sent it, without its query (a token
            // may be there); kept only when access lines are written.
            uri: log_sink::access().then(|| req.uri().clone()),
            started: Instant::now(),
            outcome: Outcome {
                auth: "none",
                ..Outcome::default()
            },
            answered: false,
        };
        let mut resp = match serve(&gateway, pool, req, conn, &mut record.outcome).await {
            Ok(resp) => resp,
            Err(e) => {
                // A write the store could not take (a logout, a cut-off) is
                // no `ok`, whatever its token was.
                if matches!(e, GatewayError::StoreUnavailable(_)) {
                    record.outcome.auth = "store_unavailable";
                }
                record.outcome.detail = Some(e.to_string());
                e.into_response()
            }
        };
        // Every answer of a CORS route to an allowed origin says so, the
        // gateway's own refusals included (a browser app must read its 401);
        // the others say they would differ for another origin (a shared
        // cache must not hand one origin's answer to the next) and carry
        // no CORS header of the upstream's.
        let cors = record.outcome.route.and_then(|r| r.route.cors.as_ref());
        match (record.outcome.origin.take(), cors) {
            (Some(origin), Some(policy)) => {
                unpass_headers(&mut resp);
                cors::decorate(policy, origin, resp.headers_mut());
            }
            (None, Some(_)) if record.outcome.auth != "preflight" => {
                if cors::upstream_answers(&resp) {
                    unpass_headers(&mut resp);
                    cors::withhold(resp.headers_mut());
                }
                cors::vary(&mut resp);
            }
            _ => {}
        }
        record.answered(resp.status().as_u16());
        resp
    }
}

/// The access line and metrics of a request whose head could not be read
/// (a bad method token, framing that could smuggle, a head too large):
/// answered by the connection before any route, and logged as any other
/// request is (method `-`, no route, outcome `malformed`, the reason in
/// `detail`), so that such an attempt leaves a trace with its peer.
pub fn record_refused_head(gateway: &Gateway, conn: &ConnInfo, status: u16, why: &str) {
    let mut record = Record {
        gateway,
        conn,
        method: http::Method::from_bytes(b"-").unwrap_or(http::Method::GET),
        uri: None,
        started: Instant::now(),
        outcome: Outcome {
            route: None,
            origin: None,
            consumer: None,
            provider: None,
            auth: "malformed",
            detail: Some(format!("the request head was refused: {why}")),
        },
        answered: false,
    };
    record.answered(status);
}

/// The status logged for a request whose client went away before its
/// answer was made (an HTTP/2 stream reset, a connection closed): nginx's
/// 499.
const CLIENT_GONE: u16 = 499;

/// The status logged for a request the node dropped as it stopped: still
/// running when the drain ended ([`abandon_unanswered`]). Not 499: the
/// client did not go away, the node did.
const ABANDONED_AT_STOP: u16 = 503;

/// Set when a worker's drain ends with requests still running: their
/// handling is dropped next, and their lines say the node stopped.
static ABANDONING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The drain has ended: requests dropped from now on were the node's doing.
pub fn abandon_unanswered() {
    ABANDONING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// What a request's access line and metrics say, written once: when its
/// answer is made, or, if its handling is dropped before that (the client
/// went away, and its work with it), as [`CLIENT_GONE`] with the stage it
/// had reached (its route, consumer and auth outcome so far).
struct Record<'g> {
    gateway: &'g Gateway,
    conn: &'g ConnInfo,
    method: http::Method,
    uri: Option<http::Uri>,
    started: Instant,
    outcome: Outcome<'g>,
    answered: bool,
}

impl Record<'_> {
    fn answered(&mut self, status: u16) {
        self.answered = true;
        // One clock read for the duration and the line's time.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.started);
        // One access-log line per request. Never the token: only who and why.
        if log_sink::access() {
            let write = if log_sink::json() {
                access_json
            } else {
                access_line
            };
            log_sink::send_with(|line| {
                write(
                    line,
                    (&self.method, self.uri.as_ref()),
                    &self.outcome,
                    status,
                    (now, elapsed),
                    self.conn.peer_text(),
                );
            });
        }
        self.outcome
            .route
            .map_or(&self.gateway.router.unmatched, |r| &r.metrics)
            .record(status, self.outcome.auth, elapsed);
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // A panic in the handling (none is known) unwinds through here.
        let (status, detail) = if std::thread::panicking() {
            (500, "the request's handling panicked")
        } else if ABANDONING.load(std::sync::atomic::Ordering::Relaxed) {
            (
                ABANDONED_AT_STOP,
                "the node stopped before its answer: the request was still running when its drain ended",
            )
        } else {
            (CLIENT_GONE, "the request ended before its answer: the client reset it, or the connection closed")
        };
        self.outcome.detail = Some(detail.into());
        self.answered(status);
    }
}

/// The most of a method an access-log line holds: a client may send one as
/// long as the request line allows (64 KiB), and the registered ones are
/// under 20 bytes.
const LOGGED_METHOD_BYTES: usize = 64;

/// `method` for the access log: whole, or its first [`LOGGED_METHOD_BYTES`]
/// bytes (a method is ASCII, so any cut is on a character boundary).
fn method_for_log(method: &http::Method) -> &str {
    let m = method.as_str();
    m.get(..LOGGED_METHOD_BYTES).unwrap_or(m)
}

/// The most of a path an access-log line holds: a client may send one as
/// long as the request line allows (64 KiB).
const LOGGED_PATH_BYTES: usize = 512;

/// The request's path for the access log, as the client sent it (its
/// escapes too: what an attempt looked like), never its query, which may
/// carry a token: whole, or its first [`LOGGED_PATH_BYTES`] bytes (cut
/// back to a character boundary: the parsers take raw UTF-8 in a path)
/// and `…`.
fn path_for_log(uri: &http::Uri) -> Cow<'_, str> {
    let p = uri.path();
    if p.len() <= LOGGED_PATH_BYTES {
        return Cow::Borrowed(p);
    }
    let mut end = LOGGED_PATH_BYTES;
    while !p.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &p[..end]))
}

/// The access-log line, in the layout of the other log lines, with logfmt
/// fields: `... INFO jwtgate::access: method=GET path="/orders/7"
/// route="orders" consumer="alice" status=200 auth=ok latency_us=412
/// peer=10.0.0.7:51234`.
/// Written straight to the log sink in one pass, without `core::fmt` for the
/// common fields: going through tracing's per-field formatting cost about a
/// tenth of a proxied request, and `write!` still a twentieth (callgrind).
/// The `jwtgate::access` target still obeys `JWTGATE_LOG`.
fn access_line(
    line: &mut Vec<u8>,
    (method, uri): (&http::Method, Option<&http::Uri>),
    outcome: &Outcome<'_>,
    status: u16,
    (now, elapsed): (Instant, std::time::Duration),
    peer: &[u8],
) {
    use log_sink::{push_quoted, push_u64};
    log_sink::timestamp(line, now);
    line.extend_from_slice(b"  INFO jwtgate::access: method=");
    line.extend_from_slice(method_for_log(method).as_bytes());
    if let Some(uri) = uri {
        line.extend_from_slice(b" path=");
        push_quoted(line, &path_for_log(uri));
    }
    line.extend_from_slice(b" route=");
    push_quoted(line, outcome.route.map_or("-", |r| r.route.name.as_str()));
    line.extend_from_slice(b" consumer=");
    push_quoted(
        line,
        outcome
            .consumer
            .as_ref()
            .map_or("-", |c| c.username.as_str()),
    );
    if let Some(p) = &outcome.provider {
        line.extend_from_slice(b" provider=");
        push_quoted(line, &p.name);
    }
    line.extend_from_slice(b" status=");
    push_u64(line, u64::from(status));
    line.extend_from_slice(b" auth=");
    line.extend_from_slice(outcome.auth.as_bytes());
    line.extend_from_slice(b" latency_us=");
    push_u64(line, u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    line.extend_from_slice(b" peer=");
    line.extend_from_slice(peer);
    if let Some(detail) = &outcome.detail {
        line.extend_from_slice(b" detail=");
        push_quoted(line, &bounded(detail));
    }
    line.push(b'\n');
}

/// The most of a `detail` an access line holds.
const MAX_DETAIL: usize = 512;

/// `detail` cut to [`MAX_DETAIL`] bytes, saying how long it was: it may
/// quote what a client sent (a key claim, a `kid`, an `aud` up to the 8 KiB
/// of a token), and a client must not set the size of every line it causes
/// (an outside operations audit: a 3 213-byte line).
fn bounded(detail: &str) -> std::borrow::Cow<'_, str> {
    if detail.len() <= MAX_DETAIL {
        return std::borrow::Cow::Borrowed(detail);
    }
    let mut end = MAX_DETAIL;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} bytes)", &detail[..end], detail.len()))
}

/// The access-log line as one JSON object (`JWTGATE_LOG_FORMAT=json`), in
/// the shape of the other JSON lines (fields at the top level): the same
/// fields as [`access_line`], numbers as numbers.
fn access_json(
    line: &mut Vec<u8>,
    (method, uri): (&http::Method, Option<&http::Uri>),
    outcome: &Outcome<'_>,
    status: u16,
    (now, elapsed): (Instant, std::time::Duration),
    peer: &[u8],
) {
    use log_sink::{push_json_str, push_u64};
    line.extend_from_slice(b"{\"timestamp\":\"");
    log_sink::timestamp(line, now);
    line.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"jwtgate::access\",\"method\":");
    push_json_str(line, method_for_log(method));
    if let Some(uri) = uri {
        line.extend_from_slice(b",\"path\":");
        push_json_str(line, &path_for_log(uri));
    }
    line.extend_from_slice(b",\"route\":");
    push_json_str(line, outcome.route.map_or("-", |r| r.route.name.as_str()));
    line.extend_from_slice(b",\"consumer\":");
    push_json_str(
        line,
        outcome
            .consumer
            .as_ref()
            .map_or("-", |c| c.username.as_str()),
    );
    if let Some(p) = &outcome.provider {
        line.extend_from_slice(b",\"provider\":");
        push_json_str(line, &p.name);
    }
    line.extend_from_slice(b",\"status\":");
    push_u64(line, u64::from(status));
    line.extend_from_slice(b",\"auth\":");
    push_json_str(line, outcome.auth);
    line.extend_from_slice(b",\"latency_us\":");
    push_u64(line, u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    line.extend_from_slice(b",\"peer\":");
    push_json_str(line, &String::from_utf8_lossy(peer));
    if let Some(detail) = &outcome.detail {
        line.extend_from_slice(b",\"detail\":");
        push_json_str(line, &bounded(detail));
    }
    line.extend_from_slice(b"}\n");
}

/// The stages of SPEC §3 for one request: refuse what could be read two
/// ways, route, strip, authenticate and authorize, log out, proxy.
///
/// Not an `async fn`, for the reason [`handle`] is not: the request is
/// taken apart first, and its parts are used in place.
fn serve<'p, 'b, 'c, 'o, 'g>(
    gw: &'g Gateway,
    pool: &'p ConnPool,
    req: Request<RequestBody<'b>>,
    conn: &'c ConnInfo,
    outcome: &'o mut Outcome<'g>,
) -> impl Future<Output = Result<Response<GatewayBody>, GatewayError>> + use<'p, 'b, 'c, 'o, 'g> {
    let (mut parts, mut body) = req.into_parts();
    async move {
        // 1. What an upstream could read differently from the gateway is
        //    refused before anything looks at it (SPEC §3.11). A method that is
        //    a known one in another case (`get`) would skip the rules written
        //    for GET while a framework upper-cases it.
        let method = Method::from_bytes(parts.method.as_str().as_bytes());
        if method == Method::Other && Method::is_case_variant(parts.method.as_str().as_bytes()) {
            return Err(GatewayError::InvalidMethod(format!(
                "{:?} is a known method in another case",
                parts.method.as_str()
            )));
        }
        //    Normalise the path once. Routes, path rules, the logout path and
        //    the upstream all see this same path (the matchers in its
        //    `match_form`, below), so no encoding trick can make the rules
        //    see one resource and the upstream another (SPEC §3.3).
        let path = normalize(parts.uri.path()).map_err(|e| GatewayError::InvalidPath(e.reason))?;
        //    CONNECT asks for a tunnel, which the gateway does not make: a 2xx
        //    passed back from an upstream would tell a proxy in front that
        //    one is open. (Its usual authority form has no path: refused
        //    just above.)
        if parts.method == http::Method::CONNECT {
            return Err(GatewayError::InvalidMethod(
                "CONNECT: the gateway opens no tunnels".into(),
            ));
        }
        //    An HTTP/2 `:scheme` names an http or https URI, as an HTTP/1.1
        //    absolute-form target must (refused as it is read).
        if let Some(scheme) = parts.uri.scheme_str() {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(GatewayError::InvalidScheme(scheme.into()));
            }
        }
        //    Routes and rules read the escapes of `:`, `@`, `+`, UTF-8... as
        //    the characters, as the upstream's framework will (`match_form`);
        //    borrowed, no work, for a path without `%`.
        let matched = match_form(&path);
        let mut query: Option<Cow<'_, str>> = parts.uri.query().map(Cow::Borrowed);
        //    One `Host` (HTTP/1.1 must have it), and only `host[:port]`: it
        //    routes, and it goes upstream as X-Forwarded-Host.
        let host = headers::request_host(parts.version, parts.uri.authority(), &parts.headers)?;

        // 1b. An identity provider's back-channel logout path belongs to the
        //     gateway, whatever the routes say (SPEC §3.10).
        if let Some(&index) = gw.backchannel.get(matched.as_ref()) {
            let done = crate::logout::backchannel(gw, index, &parts, body, gw.body_timeout).await;
            outcome.auth = match done.outcome {
                "ok" => "backchannel_logout",
                _ => "backchannel_refused",
            };
            outcome.detail = done.detail;
            return Ok(done.response);
        }

        // 2. Route on path, then method and host. A CORS preflight is routed
        //    by the method it asks about (a route for GET answers the OPTIONS
        //    preflight of its GETs), and answered here, before any
        //    authentication: browsers send preflights without credentials.
        let host_name = host.as_ref().and_then(|h| h.to_str().ok()).map(strip_port);
        let asked = cors::preflight_method(&parts.method, &parts.headers);
        let preflight_route = asked
            .and_then(|m| gw.router.find(&matched, m, host_name))
            .filter(|r| r.route.cors.is_some());
        let route = match preflight_route {
            Some(r) => r,
            None => gw
                .router
                .find(&matched, parts.method.as_str(), host_name)
                .ok_or(GatewayError::NoRoute)?,
        };
        outcome.route = Some(route);
        if let Some(policy) = &route.route.cors {
            if preflight_route.is_some() {
                outcome.auth = "preflight";
                return Ok(cors::preflight(policy, &parts.headers));
            }
            outcome.origin = cors::allowed_origin(policy, &parts.headers);
        }

        // 3. Identity headers are the gateway's to set: a client's copies are
        //    removed from every request, authenticated or not, whatever its
        //    route, including every route's forward_claims headers (an upstream
        //    trusts those too) and their `_` spellings.
        headers::strip_owned(&mut parts.headers, &gw.owned_headers);
        //    Hop-by-hop headers go now too, before the gateway adds its own:
        //    a client's `Connection: x-consumer-username` names a header to drop,
        //    and must not drop the one stage 4 sets. A token carrier it names
        //    is read first (stage 4) and dropped after: gone before the check,
        //    a bad token would pass as none (and as the anonymous consumer).
        let carrier = |name: &HeaderName| {
            route.route.jwt.is_some()
                && (name == AUTHORIZATION
                    || name == COOKIE
                    || route.names.token.as_ref() == Some(name))
        };
        //    A WebSocket handshake is told apart first, on a route that
        //    passes them: its `Connection` and `Upgrade` go too, and the
        //    upstream is asked to switch in the gateway's own words. One
        //    with a body is a plain request (a handshake has none).
        let websocket = route.route.websocket
            && matches!(body, RequestBody::Empty)
            && headers::asks_for_websocket(parts.version, &parts.method, &parts.headers);
        let read_then_dropped = headers::remove_hop_by_hop(&mut parts.headers, carrier);
        //    One Cookie line, whatever HTTP/2 split it into: the token source
        //    and the HTTP/1.1 upstream both read it whole.
        headers::join_cookies(&mut parts.headers);
        //    As many header fields as an HTTP/1.1 head may carry, whichever
        //    protocol brought them (HTTP/1.1's reader refuses more itself;
        //    HTTP/2's cookie crumbs are one field by now).
        if parts.headers.len() > crate::h1::inbound::MAX_REQUEST_HEADERS {
            return Err(GatewayError::TooManyHeaders(
                crate::h1::inbound::MAX_REQUEST_HEADERS,
            ));
        }

        // 4. Authenticate when the route's policy requires it for this request:
        //    the checks of SPEC §3.1 in order, then the blacklist (memory only).
        //    A logout request always needs a valid token.
        let mut logout = None;
        // A WebSocket's token, held by its tunnel once the upstream agrees.
        // Boxed: it lives across the upstream's answer, in every request's
        // future.
        let mut held = None;
        let mut added = GatewayHeaders::default();
        if let Some(policy) = &route.route.jwt {
            let requirement = policy.requirement(method, &matched);
            if requirement.token_required {
                let authenticated = authenticate_request(
                    gw,
                    policy,
                    &route.names,
                    &parts.headers,
                    query.as_deref(),
                )
                .await;
                let identity = match (authenticated, &policy.anonymous) {
                    // No token at all, and the route serves guests: the request
                    // goes on as the anonymous consumer (SPEC §3.8). A token that
                    // fails any check never falls back to it; nor does a logout,
                    // here or everywhere (a guest has nothing to log out).
                    (Err(Refusal::Auth(AuthError::Missing)), Some(guest))
                        if !requirement.logout && !requirement.logout_everywhere =>
                    {
                        Ok(Identity::anonymous(guest))
                    }
                    (result, _) => result,
                };
                let identity = identity.map_err(|refusal| match refusal {
                    Refusal::Auth(error) => {
                        outcome.auth = error.outcome();
                        GatewayError::Unauthorized {
                            error,
                            challenges: Arc::clone(&route.names.challenges),
                        }
                    }
                    Refusal::NotLoaded => {
                        outcome.auth = "store_unavailable";
                        GatewayError::StoreUnavailable(
                            "the blacklist has not been loaded yet (no snapshot, store unreachable)"
                                .into(),
                        )
                    }
                })?;
                outcome.auth = if identity.is_anonymous() {
                    "anonymous"
                } else {
                    "ok"
                };
                outcome.consumer = identity.principal.consumer().cloned();
                outcome.provider = identity.principal.provider().cloned();
                // 4a. Authorization by claims (SPEC §3.7), on the same
                //     normalised path. Logging out is never refused.
                let leaving = requirement.logout || requirement.logout_everywhere;
                if let (Some(authorize), false) = (&policy.authorize, leaving) {
                    let decision = authorize.decide(method, &matched, identity.claims.as_deref());
                    if !decision.is_allowed() && identity.is_anonymous() {
                        // The guest presented no credentials: a 401 that
                        // asks for a token, not a 403 that says they do not
                        // suffice (RFC 6750 §3.1; Kong's acl since 2.0).
                        outcome.auth = "missing";
                        return Err(GatewayError::AnonymousRefused {
                            detail: decision.to_string(),
                            challenges: Arc::clone(&route.names.challenges),
                        });
                    }
                    if !decision.is_allowed() {
                        outcome.auth = "forbidden";
                        return Err(GatewayError::Forbidden {
                            detail: decision.to_string(),
                            challenges: Arc::clone(&route.names.challenges),
                        });
                    }
                }
                if let (true, Some(l), Some(entry)) = (
                    requirement.logout,
                    &policy.logout,
                    identity.revocation.map(Revocable::entry),
                ) {
                    logout = Some((entry, l.forward));
                }
                // 4b'. Log out everywhere: a cut-off for the token's own
                //      subject, answered once durable.
                if requirement.logout_everywhere {
                    let key = identity
                        .claims
                        .as_deref()
                        .and_then(|c| crate::logout::own_subject(&identity.principal, c))
                        .ok_or(GatewayError::NoSubject)?;
                    let iat = identity.claims.as_deref().and_then(|c| c.iat().at());
                    let at = crate::logout::own_cut_off_second(gw.clock.now_unix(), iat);
                    Box::pin(crate::logout::cut_off_at(gw, key, at)).await?;
                    // The token that asked is blacklisted as well, until
                    // its exp as a logout's: the cut-off lasts only
                    // `subject_retention_seconds` (an outside audit: a
                    // token living longer passed again once it went), and
                    // one issued past even its second would outlive it.
                    if let Some(entry) = identity.revocation.map(Revocable::entry) {
                        Box::pin(gw.revocations.revoke(entry))
                            .await
                            .map_err(|e| GatewayError::StoreUnavailable(e.to_string()))?;
                    }
                    outcome.auth = "logout_everywhere";
                    return Ok(json_message(StatusCode::OK, "logged out everywhere"));
                }
                // 4c. A cookie is sent by the browser whichever page opens
                //     the WebSocket, and browsers apply no CORS to one: a
                //     handshake whose token came in a cookie is taken only
                //     from the route's own host or an origin its `cors`
                //     names and lets use credentials (not `*`, which never
                //     does): cross-site WebSocket hijacking.
                //     Two `Origin` fields (no browser sends them) are
                //     refused: only the first was looked at (an outside
                //     audit), and an upstream may read the other.
                if websocket && identity.carriers.has(Source::Cookie) {
                    let mut origins = parts.headers.get_all(http::header::ORIGIN).iter();
                    if let Some(origin) = origins.next() {
                        if origins.next().is_some() {
                            outcome.auth = "forbidden";
                            return Err(GatewayError::CrossSiteWebSocket(
                                "a WebSocket with its token in a cookie and more than one Origin"
                                    .to_owned(),
                            ));
                        }
                        let trusted = outcome.origin.is_some()
                            && route.route.cors.as_ref().is_some_and(|c| {
                                c.credentials
                                    && matches!(c.origins, jwtgate_core::cors::Origins::List(_))
                            });
                        if !trusted && !headers::same_origin(origin, host.as_ref()) {
                            outcome.auth = "forbidden";
                            return Err(GatewayError::CrossSiteWebSocket(format!(
                                "a WebSocket from {:?} with its token in a cookie: that \
                                 origin is not the route's host nor allowed by its cors",
                                String::from_utf8_lossy(origin.as_bytes())
                            )));
                        }
                    }
                }
                // 4d. A WebSocket lasts no longer than its token is good:
                //     revoked or cut off (and expired, where the route
                //     says so), its tunnel ends.
                if websocket {
                    held = hold(gw, route.route.websocket_close_at_exp, policy, &identity);
                }
                identity.add_headers(gw, &route.names, &mut added, &mut parts.headers);
                if policy.hide_credentials {
                    hide_credentials(
                        policy,
                        &route.names,
                        identity.carriers,
                        &mut parts.headers,
                        &mut query,
                    );
                }
            } else {
                outcome.auth = "not_required";
            }
        }
        for name in read_then_dropped {
            parts.headers.remove(name);
        }

        // 4b. Logout: blacklist the token, and say so only once the store has it.
        if let Some((entry, false)) = logout {
            // Boxed, here and below: a store write is rare and its future large,
            // and every request's future would otherwise carry its size.
            Box::pin(gw.revocations.revoke(entry))
                .await
                .map_err(|e| GatewayError::StoreUnavailable(e.to_string()))?;
            outcome.auth = "logout";
            return Ok(json_message(StatusCode::OK, "logged out"));
        }

        // 5. Proxy. The upstream gets the normalised path and the query as sent.
        let forwarded_for = headers::take_forwarded_for(&mut parts.headers, conn.peer_ip());
        added.set_forwarded(forwarded_for, conn.peer_ip(), conn.tls, host);
        added.websocket = websocket;
        let path_and_query = match query.as_deref() {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path.into_owned(),
        };
        parts.uri = PathAndQuery::try_from(path_and_query)
            .map(Uri::from)
            .map_err(|_| GatewayError::InvalidPath("not a valid URI after normalisation"))?;
        let mut resp = match &route.target {
            Target::Echo => echo::respond(&parts, &added),
            Target::Nodes(target) => {
                if let RequestBody::H2(h2) = &mut body {
                    // Boxed: rare beside GETs, and its future would
                    // otherwise be in every request's.
                    Box::pin(h2.read_ahead(gw.body_timeout)).await?;
                }
                pool.forward(target, Request::from_parts(parts, body), &added)
                    .await?
            }
        };
        if let Some(token) = held {
            resp.body_mut().hold_token(token);
        }

        // 6. A forwarded logout (logout_forward: true) revokes only when the
        //    upstream agreed (2xx), and the client hears "ok" only if it stuck.
        if let Some((entry, true)) = logout {
            if resp.status().is_success() {
                Box::pin(gw.revocations.revoke(entry))
                    .await
                    .map_err(|e| GatewayError::StoreUnavailable(e.to_string()))?;
                outcome.auth = "logout";
            }
        }
        Ok(resp)
    }
}

/// What a WebSocket's tunnel keeps of the token that opened it (none for
/// the anonymous consumer): a handshake's, apart from every request's code.
#[inline(never)]
fn hold(
    gw: &Gateway,
    close_at_exp: bool,
    policy: &JwtPolicy,
    identity: &Identity,
) -> Option<Box<crate::tunnel::HeldToken>> {
    let (Some(claims), Some(revocable)) = (&identity.claims, identity.revocation) else {
        return None;
    };
    let ends_at = claims
        .exp()
        .at()
        .filter(|_| close_at_exp)
        .map(|exp| exp.saturating_add(policy.leeway_seconds));
    Some(Box::new(crate::tunnel::HeldToken::new(
        Arc::clone(&gw.revocations),
        revocable.key,
        &identity.principal,
        claims,
        ends_at,
    )))
}

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Query,
    Cookie,
}

impl Source {
    fn bit(self) -> u8 {
        match self {
            Source::Header => 1,
            Source::Query => 2,
            Source::Cookie => 4,
        }
    }
}

/// The carriers that held the token (the same token may come twice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Carriers(u8);

impl Carriers {
    fn has(self, source: Source) -> bool {
        self.0 & source.bit() != 0
    }
}

/// The identity to send upstream.
struct Identity {
    principal: Principal,
    /// `None` for the anonymous consumer: no token, no claims.
    claims: Option<Arc<claims::Claims>>,
    carriers: Carriers,
    /// What revokes this token; `None` for the anonymous consumer.
    revocation: Option<Revocable>,
    /// The token's payload as it came (base64url), for a route's
    /// `forward_payload_header`; `None` where none is named.
    payload: Option<HeaderValue>,
}

/// A verified token's revocation keys, and until when a revocation of it
/// must last.
#[derive(Clone, Copy)]
struct Revocable {
    key: RevocationKey,
    expires_at: i64,
}

impl Revocable {
    /// The blacklist entry a logout of the token writes.
    fn entry(self) -> Entry {
        Entry {
            digest: self.key.signing_input,
            expires_at: self.expires_at,
        }
    }
}

/// Why [`authenticate_request`] did not produce an identity.
enum Refusal {
    Auth(AuthError),
    /// The node has no blacklist to check against yet (SPEC §3.11: it never
    /// accepts a token it cannot check).
    NotLoaded,
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Refusal::Auth(e)
    }
}

impl Identity {
    fn anonymous(guest: &Arc<Consumer>) -> Identity {
        Identity {
            principal: Principal::Anonymous(Arc::clone(guest)),
            claims: None,
            carriers: Carriers::default(),
            revocation: None,
            payload: None,
        }
    }

    fn is_anonymous(&self) -> bool {
        matches!(self.principal, Principal::Anonymous(_))
    }

    /// Sets the identity headers (made once per config version) in `added`
    /// and the route's `forward_claims` headers in `headers`. A consumer's
    /// token: its username, custom id and key. A provider's token (SPEC
    /// §3.6): the issuer as the credential, and the consumer its
    /// `consumer_claim` names, if any.
    fn add_headers(
        &self,
        gw: &Gateway,
        names: &PolicyHeaders,
        added: &mut GatewayHeaders<'_>,
        headers: &mut HeaderMap,
    ) {
        if let Some(consumer) = self.principal.consumer() {
            let made;
            let ids = match gw.identity_headers(consumer) {
                Some(ids) => ids,
                None => {
                    made = IdentityHeaders::new(consumer);
                    &made
                }
            };
            added.consumer_username.clone_from(&ids.username);
            added.consumer_custom_id.clone_from(&ids.custom_id);
            if let Principal::Consumer(_) = &self.principal {
                added.credential_identifier.clone_from(&ids.credential);
            }
        }
        if let Some(provider) = self.principal.provider() {
            if let Some(v) = gw.issuer_header(provider) {
                added.credential_identifier = Some(v.clone());
            }
        }
        added.anonymous_consumer = self.is_anonymous();
        if let (Some(header), Some(payload)) = (&names.payload, &self.payload) {
            headers.insert(header.clone(), payload.clone());
        }
        let Some(claims) = &self.claims else {
            return;
        };
        for (claim, header) in &names.forward {
            // SPEC §3.7: arrays joined with ",", objects as compact JSON; a
            // value with a control character is not sent (no injection).
            let Some(text) = claim.get(claims).and_then(claims::header_text) else {
                continue;
            };
            if let Ok(v) = HeaderValue::from_bytes(text.as_bytes()) {
                headers.insert(header.clone(), v);
            }
        }
    }
}

async fn authenticate_request(
    gw: &Gateway,
    policy: &JwtPolicy,
    names: &PolicyHeaders,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Identity, Refusal> {
    let (raw, carriers) = find_token(policy, names, headers, query)?.ok_or(AuthError::Missing)?;
    let ctx = gw.auth_context();
    // The wall clock, read once for the request's checks.
    let mut now = gw.clock.now_unix();
    let auth = match authenticate_cached(policy, &ctx, &raw, &FixedClock(now), &gw.verified) {
        Ok(auth) => auth,
        // A provider's key set lacks the token's kid: the one case where a
        // request may wait for a fetch (at most one per interval, merged;
        // bounded by fetch_timeout_ms), then the token is checked again.
        // Boxed: rare, and its future would otherwise swell every request's.
        Err(e) => match e.unknown_kid() {
            Some((index, kid)) => {
                let (how, found) = Box::pin(gw.keys.refetch_for_unknown_kid(index, kid)).await;
                tracing::debug!(kid, refetch = how.label(), found, "unknown kid");
                if !found {
                    return Err(e.into());
                }
                // The fetch took time: read the clock again.
                now = gw.clock.now_unix();
                authenticate_cached(policy, &ctx, &raw, &FixedClock(now), &gw.verified)?
            }
            None => {
                // Its keys missing or too old to use: a fetch within the
                // same budget, not waited for (`refetch_for_unusable_keys`).
                if let Some(index) = e.unusable_keys() {
                    gw.keys.refetch_for_unusable_keys(index);
                }
                return Err(e.into());
            }
        },
    };
    // Last check of SPEC §3.1: not revoked. In memory, no network; a node
    // that has not loaded its blacklist yet cannot tell, and says so.
    if !gw.revocations.is_loaded() {
        return Err(Refusal::NotLoaded);
    }
    if gw.revocations.is_revoked(&auth.revocation.digests(), now) {
        return Err(AuthError::Revoked.into());
    }
    // Then the subject cut-offs (SPEC §3.10), also in memory; the claims
    // are read only when a cut-off names the token's consumer or provider.
    let consumer = auth.principal.consumer().map(|c| c.username.as_str());
    let provider = auth.principal.provider().map(|p| p.name.as_str());
    if gw.revocations.cutoffs_name(consumer, provider) {
        cut_off_check(gw, &auth, consumer, provider, now)?;
    }
    // A revocation lasts as long as any route could still accept the
    // token: its exp plus the largest leeway of the gateway, whichever
    // route the logout came through (SPEC §3.11), and a grace beyond it.
    let expires_at = auth
        .claims
        .exp()
        .at()
        .map_or(i64::MAX, |exp| revocation_expiry(exp, gw.max_leeway));
    // Base64url characters only (the token parsed), so a valid value.
    let payload = names
        .payload
        .as_ref()
        .and_then(|_| raw.split('.').nth(1))
        .and_then(|p| HeaderValue::from_str(p).ok());
    Ok(Identity {
        principal: auth.principal,
        claims: Some(auth.claims),
        carriers,
        revocation: Some(Revocable {
            key: auth.revocation,
            expires_at,
        }),
        payload,
    })
}

/// Refuses a verified token a subject cut-off names (SPEC §3.10). Apart,
/// and never inlined: asked only of tokens whose consumer or provider has
/// cut-offs, it kept the common path's code larger than it needs to be.
#[inline(never)]
fn cut_off_check(
    gw: &Gateway,
    auth: &Authenticated,
    consumer: Option<&str>,
    provider: Option<&str>,
    now: i64,
) -> Result<(), AuthError> {
    match crate::logout::cutoff_refusing(&gw.revocations, &auth.claims, consumer, provider, now) {
        Some(cut) => Err(AuthError::CutOff(format!(
            "{} at {}",
            cut.key, cut.not_before
        ))),
        None => Ok(()),
    }
}

/// The request's token, and every carrier that held it. The sources are
/// tried in order (header, query argument, cookie), but all of them are
/// read: a second, different token riding along (header and query, two
/// `Authorization` headers, a repeated `jwt=`) is refused, or the gateway
/// would verify one token while the upstream reads the other (SPEC §3.11).
fn find_token<'a>(
    policy: &JwtPolicy,
    names: &PolicyHeaders,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Option<(Cow<'a, str>, Carriers)>, AuthError> {
    let s = &policy.sources;
    let mut found: Option<(Cow<'a, str>, Source, Carriers)> = None;
    let mut offer = |token: Cow<'a, str>, source: Source| -> Result<(), AuthError> {
        match &mut found {
            None => found = Some((token, source, Carriers(source.bit()))),
            Some((first, _, carriers)) if *first == token => carriers.0 |= source.bit(),
            Some((_, first, _)) => return Err(AuthError::SeveralTokens(both(*first, source))),
        }
        Ok(())
    };
    if let Some(name) = &names.token {
        for v in headers.get_all(name) {
            // A token is ASCII: check that first (fast); anything else is
            // decoded lossily and fails as a malformed token later.
            let token = match v.to_str() {
                Ok(t) => Cow::Borrowed(sources::strip_bearer(t)),
                Err(_) => Cow::Owned(
                    sources::strip_bearer(&String::from_utf8_lossy(v.as_bytes())).to_owned(),
                ),
            };
            offer(token, Source::Header)?;
        }
    }
    if let (Some(name), Some(q)) = (&s.query, query) {
        for t in sources::query_params(q, name) {
            offer(t, Source::Query)?;
        }
    }
    if let Some(name) = &s.cookie {
        for v in headers.get_all(COOKIE) {
            match v.to_str() {
                Ok(c) => {
                    for t in sources::cookie_values(c, name) {
                        offer(Cow::Borrowed(t), Source::Cookie)?;
                    }
                }
                // A byte past ASCII in another cookie must not hide this
                // one: the upstream's parser still reads it.
                Err(_) => {
                    let c = String::from_utf8_lossy(v.as_bytes());
                    for t in sources::cookie_values(&c, name) {
                        offer(Cow::Owned(t.to_owned()), Source::Cookie)?;
                    }
                }
            }
        }
    }
    Ok(found.map(|(token, _, carriers)| (token, carriers)))
}

/// How two carriers of different tokens are named in the log.
fn both(first: Source, second: Source) -> &'static str {
    match (first, second) {
        (Source::Header, Source::Header) => "two token headers",
        (Source::Header, Source::Query) => "header and query argument",
        (Source::Header, Source::Cookie) => "header and cookie",
        (Source::Query, Source::Query) => "a repeated query argument",
        (Source::Query, Source::Cookie) => "query argument and cookie",
        (Source::Cookie, Source::Cookie) => "a repeated cookie",
        // Sources are read in the order header, query, cookie.
        _ => "two carriers",
    }
}

/// Removes the token's carriers before proxying (`hide_credentials`):
/// every one that held it.
fn hide_credentials(
    policy: &JwtPolicy,
    names: &PolicyHeaders,
    carriers: Carriers,
    headers: &mut HeaderMap,
    query: &mut Option<Cow<'_, str>>,
) {
    if carriers.has(Source::Header) {
        if let Some(name) = &names.token {
            headers.remove(name);
        }
    }
    if carriers.has(Source::Query) {
        if let (Some(name), Some(q)) = (&policy.sources.query, query.as_deref()) {
            *query = Some(Cow::Owned(sources::remove_query_param(q, name)));
        }
    }
    if carriers.has(Source::Cookie) {
        let Some(name) = &policy.sources.cookie else {
            return;
        };
        let kept: Vec<Vec<u8>> = headers
            .get_all(COOKIE)
            .iter()
            .map(|v| sources::remove_cookie(v.as_bytes(), name))
            .filter(|c| !c.is_empty())
            .collect();
        headers.remove(COOKIE);
        for c in kept {
            if let Ok(v) = HeaderValue::from_bytes(&c) {
                headers.append(COOKIE, v);
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| h.trim_start_matches('['));
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}
