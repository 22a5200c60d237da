//! Client connections speaking HTTP/2 (h2c with prior knowledge, or ALPN
//! `h2` over TLS), served by a loop of our own over the `h2` crate's
//! connection: accept a stream, run the pipeline, send the answer.
//!
//! Why not hyper's HTTP/2 server, which this replaced: it spawns a task per
//! stream, which the connection's task must then wake and be woken by for
//! every frame either sends, and on every answer it looks for and removes
//! six connection-specific headers an answer of the gateway never has. Here
//! a connection's streams run inside its own task, and the answers come
//! without those headers by construction (`h1::parse_response_head` leaves
//! hop-by-hop headers out; the gateway's own answers have none). Measured
//! with `H2_STREAMS=10 bench/callgrind.sh hs256 4000 h2`.
//!
//! The settings: 1 MiB stream and connection windows, 16 KiB frames and
//! a 16 KiB header list (hyper's defaults, which jwtgate served with
//! before); 100 concurrent streams (HAProxy's default; nginx 128) and
//! 64 KiB of send buffer per stream, where hyper's 200 and 400 KiB let one
//! client that sets huge windows and stops reading hold about 90 MB of
//! answers read from upstreams and not sent (an attack measured it); now
//! at most about 10 MB (the buffers and a read each), with about 3 MB of
//! request bodies read before their upstream is chosen (32 KiB a stream at
//! most: `H2Body::read_ahead`), the most any connection holds.

use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::{HeaderValue, CONTENT_LENGTH, DATE, EXPECT};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Body;
use tracing::{debug, error, warn};

use crate::body::{unpass_headers, GatewayBody, H2Body, RequestBody};
use crate::gateway::Gateway;
use crate::h1::inbound::response_framing;
use crate::h1::{parse_length, ResponseFraming};
use crate::idle::Activity;
use crate::pipeline;
use crate::upstream::ConnPool;

use super::http1::{with_date, ConnCtx, Rewind, Transport, SEND_TIMEOUT};

const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_CONCURRENT_STREAMS: u32 = 100;
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 64 * 1024;
/// Streams a client may make the server reset for its errors before the
/// connection is closed (a cap on a flood of malformed requests).
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Streams a client may reset early (see [`Resets`]) in a burst before the
/// connection is closed for it...
const EARLY_RESET_BURST: u32 = 100;
/// ...and how many more it may reset each second after that.
const EARLY_RESETS_PER_SECOND: u32 = 10;

/// A client's resets of streams the gateway had accepted: a reset drops
/// the stream's work, its upstream request included, and frees its place
/// among the connection's 100 concurrent streams, but the upstream may
/// already be working on it. A client that opened streams and reset them
/// at once, over and over (the "rapid reset" of CVE-2023-44487 made to
/// wait until each stream is accepted, which h2's own count of resets
/// before acceptance does not see), had the upstream work on thousands of
/// requests at once. A stream reset early (before its answer, within a
/// second or two of its request: the watch's clock) spends one of the
/// connection's [`EARLY_RESET_BURST`], which comes back at
/// [`EARLY_RESETS_PER_SECOND`]; a connection that has none left is closed
/// with GOAWAY `ENHANCE_YOUR_CALM`. A budget, not a share of the streams
/// (Envoy's rule): answers the gateway makes at no cost (a 401) would
/// otherwise buy resets one for one. A client that cancels requests it
/// waited for (an upstream slower than its user) is not counted; one that
/// cancels as its user types (a search box) stays well inside the rate.
struct Resets {
    budget: u32,
    /// The watch's clock when the budget was last topped up.
    topped_up: u32,
}

impl Resets {
    fn new(now: u32) -> Self {
        Resets {
            budget: EARLY_RESET_BURST,
            topped_up: now,
        }
    }

    /// Spends one for a stream reset early, at `now` by the watch's clock
    /// (seconds); true when none was left: the connection must close.
    fn spend(&mut self, now: u32) -> bool {
        let seconds = now.wrapping_sub(self.topped_up);
        self.topped_up = now;
        self.budget = seconds
            .saturating_mul(EARLY_RESETS_PER_SECOND)
            .saturating_add(self.budget)
            .min(EARLY_RESET_BURST);
        match self.budget.checked_sub(1) {
            Some(left) => {
                self.budget = left;
                false
            }
            None => true,
        }
    }
}

fn builder() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS));
    b
}

/// Serves a connection whose client spoke the HTTP/2 preface, until the
/// client closes it, an error ends it, it has been idle (no stream in
/// flight) for the idle timeout, or the gateway stops: then GOAWAY is sent,
/// the streams in flight finish, and the connection closes once the client
/// has answered the GOAWAY's PING (h2's graceful shutdown: a request the
/// client sent meanwhile is still served; one after is refused, and the
/// client knows it may send it again).
pub(super) async fn serve<IO: Transport>(io: Rewind<IO>, ctx: ConnCtx) {
    let ConnCtx {
        gateway,
        pool,
        activity,
    } = ctx;
    // Neither a stop nor idleness closes it through the idle watch: it
    // says GOAWAY (the watch closes it only if it is still there later).
    activity.says_goodbye();
    let mut conn = match builder().handshake::<_, Bytes>(io).await {
        Ok(conn) => conn,
        Err(e) => {
            debug!(error = %e, "HTTP/2 handshake failed");
            return;
        }
    };
    let mut streams = FuturesUnordered::new();
    let mut stopped = pin!(activity.stopped());
    // Polled once to register this task for the stop's wake-up; after
    // that only when the flag says the gateway stops (a lock fewer on
    // every wake-up of a busy connection).
    let mut listening = false;
    let mut going_away = false;
    // Goes off when the connection may have idled for the timeout; then
    // the watch's clock says whether it has. Polled once to register, then
    // only when it went off: no cost to a busy connection's wake-ups.
    let mut idle = pin!(tokio::time::sleep(activity.idle_left().unwrap_or_default()));
    let mut timing = false;
    let mut resets = Resets::new(activity.clock());
    let mut calmed = false;
    let ended = poll_fn(|cx| loop {
        // The streams first: what they send is then flushed by the
        // connection below, in the same poll.
        while let Poll::Ready(Some(ended)) = streams.poll_next_unpin(cx) {
            if !calmed && ended == Ended::ResetEarly && resets.spend(activity.clock()) {
                warn!(
                    peer = %String::from_utf8_lossy(activity.info().peer_text()),
                    "HTTP/2 client reset its streams as soon as they were taken, more than {EARLY_RESET_BURST} at once or {EARLY_RESETS_PER_SECOND} a second: GOAWAY ENHANCE_YOUR_CALM"
                );
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                calmed = true;
                going_away = true;
            }
        }
        if !going_away && (!listening || activity.stopping()) {
            listening = true;
            if stopped.as_mut().poll(cx).is_ready() {
                conn.graceful_shutdown();
                going_away = true;
            }
        }
        if !going_away && (!timing || idle.is_elapsed()) {
            timing = true;
            // Unconstrained: with the task's budget spent, a first poll
            // would not register the timer, and it is not polled again
            // until it has gone off.
            while std::pin::Pin::new(&mut tokio::task::unconstrained(idle.as_mut()))
                .poll(cx)
                .is_ready()
            {
                match activity.idle_left() {
                    Some(left) => idle.as_mut().reset(tokio::time::Instant::now() + left),
                    None => {
                        debug!("HTTP/2 connection idle: GOAWAY");
                        conn.graceful_shutdown();
                        going_away = true;
                        break;
                    }
                }
            }
        }
        match conn.poll_accept(cx) {
            Poll::Ready(Some(Ok((mut req, respond)))) => {
                trim_edge_whitespace(req.headers_mut());
                let gw = gateway.load_full();
                streams.push(exchange(req, respond, gw, &pool, &activity));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    if let Err(e) = ended {
        debug!(error = %e, "HTTP/2 connection ended with error");
    }
}

/// One stream: the request through the pipeline, the answer back. The
/// connection is busy until the answer is sent whole or abandoned. A client
/// that resets the stream meanwhile drops the pipeline's work (the upstream
/// request included) where it stands.
///
/// A panic in the pipeline (none is known: this is a bound, not a path)
/// resets this stream alone; the connection's other streams go on, as they
/// did when each stream was a task of its own under hyper.
///
/// Not an `async fn`: one keeps its arguments twice, as passed and as
/// moved into its body, for the stream's whole life, and this future is
/// moved into the connection's set of streams by value. The request goes
/// into the pipeline's (boxed) future here, before this one is made.
fn exchange<'a>(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    gateway: Arc<Gateway>,
    pool: &'a ConnPool,
    activity: &'a Arc<Activity>,
) -> impl Future<Output = Ended> + 'a {
    let busy = activity.begin();
    let accepted = activity.clock();
    let head = req.method() == Method::HEAD;
    let (
        req,
        BodyFlags {
            wanted: mut continue_due,
            reset_by_client,
        },
    ) = request(req);
    // Boxed: the pipeline's state is large.
    let mut handled = Box::pin(pipeline::handle(gateway, pool, req, activity.info()));
    async move {
        let response = poll_fn(|cx| {
            let polled = std::panic::catch_unwind(AssertUnwindSafe(|| handled.as_mut().poll(cx)));
            match polled {
                // A client that reset its stream while it sent the body:
                // the pipeline ends on the broken body (a 499 line), and
                // the stream ends as a reset, spending the connection's
                // budget of early ones (an outside audit: resets after
                // each stream's first 16 KiB went upstream were answers,
                // a new upstream connection each, and never a GOAWAY).
                Ok(Poll::Ready(_))
                    if reset_by_client
                        .as_ref()
                        .is_some_and(|r| r.load(Ordering::Acquire)) =>
                {
                    return Poll::Ready(Err(Ended::Reset));
                }
                Ok(Poll::Ready(response)) => return Poll::Ready(Ok(response)),
                Ok(Poll::Pending) => {}
                Err(_) => return Poll::Ready(Err(Ended::Panicked)),
            }
            // The body is wanted: the client waiting on its expectation
            // may send it now (RFC 9110 §10.1.1).
            if continue_due
                .as_ref()
                .is_some_and(|wanted| wanted.load(Ordering::Acquire))
            {
                continue_due = None;
                let mut interim = Response::new(());
                *interim.status_mut() = StatusCode::CONTINUE;
                let _ = respond.send_informational(interim);
            }
            respond.poll_reset(cx).map(|_| Err(Ended::Reset))
        })
        .await;
        drop(handled);
        let response = match response {
            Ok(response) => response,
            Err(Ended::Panicked) => {
                error!("HTTP/2 stream: the request's handling panicked; the stream is reset");
                respond.send_reset(Reason::INTERNAL_ERROR);
                return Ended::Panicked;
            }
            Err(_) => {
                debug!("HTTP/2 stream reset by the client before its answer");
                // Within the tick it was taken in or the next: under 2 s.
                if activity.clock().wrapping_sub(accepted) <= 1 {
                    return Ended::ResetEarly;
                }
                return Ended::Reset;
            }
        };
        match send(response, respond, head).await {
            Ok(()) => {}
            Err(SendError::Body(e)) => super::response_cut_off(&e, "its stream is reset"),
            Err(e) => debug!(error = %e, "HTTP/2 answer not sent whole"),
        }
        drop(busy);
        Ended::Answered
    }
}

/// How a stream ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Its answer was sent (whole, or as far as the client took it).
    Answered,
    /// The client reset it before its answer, soon after its request.
    ResetEarly,
    /// The client reset it before its answer, after waiting for it.
    Reset,
    Panicked,
}

/// The pipeline's view of a stream's request. A CONNECT's stream would be
/// a tunnel, which the gateway does not open (the pipeline refuses its
/// path-less target): its body is not read. With it, the flags its body
/// sets as it is read ([`BodyFlags`]).
fn request(req: Request<RecvStream>) -> (Request<RequestBody<'static>>, BodyFlags) {
    let (parts, recv) = req.into_parts();
    let mut wanted = None;
    let mut reset_by_client = None;
    let body = if recv.is_end_stream() || parts.method == Method::CONNECT {
        RequestBody::Empty
    } else {
        let expects = parts.headers.get_all(EXPECT).iter().any(|v| {
            v.as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue")
        });
        if expects {
            wanted = Some(Arc::new(AtomicBool::new(false)));
        }
        let reset = Arc::new(AtomicBool::new(false));
        reset_by_client = Some(Arc::clone(&reset));
        RequestBody::H2(H2Body::new(
            recv,
            content_length(&parts.headers),
            wanted.clone(),
            reset,
        ))
    };
    let flags = BodyFlags {
        wanted,
        reset_by_client,
    };
    (Request::from_parts(parts, body), flags)
}

/// What a stream's body tells its loop, set as the pipeline reads it.
struct BodyFlags {
    /// For a request that said `Expect: 100-continue`: the body was first
    /// read, `100 Continue` is due.
    wanted: Option<Arc<AtomicBool>>,
    /// The client reset the stream while its body was read.
    reset_by_client: Option<Arc<AtomicBool>>,
}

/// Removes the spaces and tabs at either end of every field value, as an
/// HTTP/1.x parser does (RFC 9112 §5), so that the gateway checks the value
/// the upstream will read. RFC 9113 §8.2.1 calls such a request malformed,
/// but clients send them (curl's `-H "Authorization: Bearer "`, cookies
/// with a trailing space), and HAProxy, nginx and Envoy (nghttp2's
/// `no_rfc9113_leading_and_trailing_ws_validation`) take them; resetting
/// the stream failed those clients for nothing.
fn trim_edge_whitespace(headers: &mut HeaderMap) {
    let edge = |b: &u8| matches!(b, b' ' | b'\t');
    for value in headers.values_mut() {
        let bytes = value.as_bytes();
        if !bytes.first().is_some_and(edge) && !bytes.last().is_some_and(edge) {
            continue;
        }
        let start = bytes.iter().position(|b| !edge(b)).unwrap_or(bytes.len());
        let end = bytes
            .iter()
            .rposition(|b| !edge(b))
            .map_or(start, |i| i + 1);
        // A part of a valid value is one: no new byte comes in.
        if let Ok(mut trimmed) = HeaderValue::from_bytes(&bytes[start..end]) {
            trimmed.set_sensitive(value.is_sensitive());
            *value = trimmed;
        }
    }
}

/// The request's length, when every `Content-Length` it has says the same.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(part)?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

/// Why an answer was not sent whole.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    H2(#[from] h2::Error),
    #[error("the client reset the stream")]
    Reset,
    #[error("the client's window stayed shut for {} s", SEND_TIMEOUT.as_secs())]
    Stalled,
    #[error("upstream body: {0}")]
    Body(crate::body::BodyError),
}

/// Sends the answer to a stream; `head`: the request was a HEAD. An answer
/// that has no content (to HEAD, 1xx, 204, 304: RFC 9110 §6.4.1, the rule
/// HTTP/1.1's framing follows) ends with its headers, its body unread; a
/// `Content-Length` stays on a HEAD or 304 answer (what a GET would have
/// carried) and leaves a 1xx or 204 (RFC 9110 §8.6).
///
/// Not an `async fn`, for the reason [`exchange`] is not: the headers go
/// out here, and the future holds only the stream and the body.
fn send(
    response: Response<GatewayBody>,
    respond: SendResponse<Bytes>,
    head: bool,
) -> impl Future<Output = Result<(), SendError>> {
    let started = send_head(response, respond, head);
    async move {
        match started? {
            Some((stream, body)) => send_body(stream, body).await,
            None => Ok(()),
        }
    }
}

/// Sends the answer's headers; the stream and the body to send on it, if
/// the answer has content.
fn send_head(
    mut response: Response<GatewayBody>,
    mut respond: SendResponse<Bytes>,
    head: bool,
) -> Result<Option<(SendStream<Bytes>, GatewayBody)>, SendError> {
    // HTTP/2 encodes every header anew (HPACK, names in lower case).
    unpass_headers(&mut response);
    let (mut parts, mut body) = response.into_parts();
    if !parts.headers.contains_key(DATE) {
        if let Ok(date) = with_date(HeaderValue::from_bytes) {
            parts.headers.insert(DATE, date);
        }
    }
    let method = if head { &Method::HEAD } else { &Method::GET };
    let bodiless =
        response_framing(method, Version::HTTP_2, parts.status, None) == ResponseFraming::Empty;
    if bodiless {
        if parts.status == StatusCode::NO_CONTENT || parts.status.is_informational() {
            parts.headers.remove(CONTENT_LENGTH);
        }
        // Never read: the text of one of the gateway's own answers (an
        // upstream's answer without content comes without a body).
        body = GatewayBody::empty();
    }
    if body.is_end_stream() {
        if let Err(e) = respond.send_response(Response::from_parts(parts, ()), true) {
            respond.send_reset(Reason::INTERNAL_ERROR);
            return Err(e.into());
        }
        return Ok(None);
    }
    if !parts.headers.contains_key(CONTENT_LENGTH) {
        if let Some(n) = body.size_hint().exact() {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    match respond.send_response(Response::from_parts(parts, ()), false) {
        Ok(stream) => Ok(Some((stream, body))),
        Err(e) => {
            respond.send_reset(Reason::INTERNAL_ERROR);
            Err(e.into())
        }
    }
}

/// Sends an answer's content on its stream, as the client's window allows.
async fn send_body(mut stream: SendStream<Bytes>, mut body: GatewayBody) -> Result<(), SendError> {
    // A body the gateway holds whole is handed to h2 at once: waiting for
    // the client's window first would hold no less memory.
    let held = body.is_held();
    loop {
        let frame = poll_fn(|cx| {
            if let Poll::Ready(frame) = std::pin::Pin::new(&mut body).poll_frame(cx) {
                return Poll::Ready(Ok(frame));
            }
            stream.poll_reset(cx).map(|_| Err(SendError::Reset))
        })
        .await?;
        let frame = match frame {
            None => {
                // Ended without saying so on its last frame.
                stream.send_data(Bytes::new(), true)?;
                return Ok(());
            }
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                // The client must not take a cut-off body for a whole one.
                stream.send_reset(Reason::INTERNAL_ERROR);
                return Err(SendError::Body(e));
            }
        };
        match frame.into_data() {
            Ok(data) => {
                let end = body.is_end_stream();
                if !held && !data.is_empty() {
                    window(&mut stream).await?;
                }
                stream.send_data(data, end)?;
                if end {
                    return Ok(());
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    stream.send_trailers(trailers)?;
                    return Ok(());
                }
            }
        }
    }
}

/// Waits until the stream may send: the client's window has room and what
/// h2 buffers for the stream is under its cap. The whole chunk then goes
/// to h2, which sends it as the window allows: a chunk in hand is held
/// anyway, and the next one is not read from the upstream until this one
/// is on its way. One byte is reserved, not the chunk, so a stream waiting
/// here never holds the connection's window against another (hyper#4003).
///
/// A client that gives no room for [`SEND_TIMEOUT`] (it stopped reading
/// the stream, or the connection) gets the stream reset (`CANCEL`), which
/// frees its upstream connection, as HTTP/1.1's no-progress write timeout
/// does; its other streams go on. The timer is armed only when the stream
/// must wait.
async fn window(stream: &mut SendStream<Bytes>) -> Result<(), SendError> {
    stream.reserve_capacity(1);
    if stream.capacity() > 0 {
        return Ok(());
    }
    let room = async {
        while stream.capacity() == 0 {
            match poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(SendError::Reset),
            }
        }
        Ok(())
    };
    let waited = tokio::time::timeout(SEND_TIMEOUT, room).await;
    waited.unwrap_or_else(|_| {
        stream.send_reset(Reason::CANCEL);
        Err(SendError::Stalled)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_lose_the_spaces_and_tabs_at_their_ends_only() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("a", " v"),
            ("b", "v\t"),
            ("c", "\t v w \t"),
            ("d", "   "),
            ("e", "v w"),
            ("f", ""),
            ("g", "x "),
            ("g", " y"),
        ] {
            headers.append(
                http::header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut secret = HeaderValue::from_static("Bearer t ");
        secret.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, secret);
        trim_edge_whitespace(&mut headers);
        let all = |name: &str| -> Vec<&[u8]> {
            headers
                .get_all(name)
                .iter()
                .map(HeaderValue::as_bytes)
                .collect()
        };
        assert_eq!(all("a"), [b"v"]);
        assert_eq!(all("b"), [b"v"]);
        assert_eq!(all("c"), [b"v w"]);
        assert_eq!(all("d"), [b""]);
        assert_eq!(all("e"), [b"v w"]);
        assert_eq!(all("f"), [b""]);
        assert_eq!(all("g"), [b"x", b"y"], "each value of a repeated field");
        let auth = headers.get(http::header::AUTHORIZATION);
        assert_eq!(auth.map(HeaderValue::as_bytes), Some(&b"Bearer t"[..]));
        assert!(
            auth.is_some_and(HeaderValue::is_sensitive),
            "kept sensitive"
        );
    }

    #[test]
    fn early_resets_spend_a_burst_that_comes_back_at_a_rate() {
        let mut resets = Resets::new(7);
        for i in 0..EARLY_RESET_BURST {
            assert!(!resets.spend(7), "reset {i} of the burst");
        }
        assert!(resets.spend(7), "one past the burst");
        // Two seconds later, twice the rate has come back, and no more.
        let mut resets = Resets::new(7);
        for _ in 0..EARLY_RESET_BURST {
            resets.spend(7);
        }
        for i in 0..2 * EARLY_RESETS_PER_SECOND {
            assert!(!resets.spend(9), "reset {i} after 2 s");
        }
        assert!(resets.spend(9));
        // A long quiet spell fills the burst, never beyond it.
        let mut resets = Resets::new(u32::MAX - 1);
        let later = 10_000;
        for _ in 0..EARLY_RESET_BURST {
            assert!(!resets.spend(later));
        }
        assert!(resets.spend(later));
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_LENGTH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn content_length_is_known_only_when_every_value_agrees() {
        assert_eq!(content_length(&headers(&[])), None);
        assert_eq!(content_length(&headers(&["42"])), Some(42));
        assert_eq!(content_length(&headers(&["42", "42"])), Some(42));
        assert_eq!(content_length(&headers(&["42, 42"])), Some(42));
        assert_eq!(content_length(&headers(&["42", "43"])), None);
        assert_eq!(content_length(&headers(&["42, 7"])), None);
        assert_eq!(content_length(&headers(&["-1"])), None);
        assert_eq!(content_length(&headers(&["4 2"])), None);
        assert_eq!(content_length(&headers(&[""])), None);
    }
}
