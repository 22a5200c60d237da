//! The body types of the data plane. Responses: either bytes the gateway
//! holds whole (its own answers, and upstream bodies that arrived with their
//! head), or an upstream body streamed from the socket as the client side
//! pulls it; either may carry the upstream's header lines, passed on as the
//! bytes that came. Requests: read from the client's HTTP/1.1 connection by the
//! connection's own reader, or from an HTTP/2 stream. Enums rather than
//! boxed trait objects: no allocation per request or response but a
//! streamed body's and passed-on header lines' own boxes.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::error::GatewayError;
use crate::h1::PassedHeaders;
use crate::recycle;
use crate::upstream::{Upgraded, UpstreamBody};

/// A body that broke half way (the upstream closed early, sent a malformed
/// chunk, or stalled): the client's response is cut off.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

pub struct GatewayBody {
    kind: Kind,
    /// The upstream's header lines, when they are passed on as bytes
    /// ([`PassedHeaders`]): they travel with the body, which every way out
    /// hands to the client side; boxed, so that a response without them is
    /// no larger to move. Whoever edits or re-encodes the answer's headers
    /// first moves them into the map ([`unpass_headers`]).
    passed: Option<Box<PassedHeaders>>,
}

enum Kind {
    Full(Full<Bytes>),
    /// Boxed: the response is moved on its way out (many times by hyper,
    /// for HTTP/2), and the connection inside is ten times the size of a
    /// `Full`. Only bodies that did not arrive with their head pay for the
    /// allocation.
    Upstream(Box<UpstreamBody>),
    /// A `101` to a WebSocket handshake: no body, but the upstream
    /// connection, for the client side to join to the client's.
    Tunnel(Box<Upgraded>),
}

impl GatewayBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        GatewayBody {
            kind: Kind::Full(Full::new(bytes.into())),
            passed: None,
        }
    }

    pub fn empty() -> Self {
        GatewayBody::full(Bytes::new())
    }

    pub(crate) fn upstream(body: Box<UpstreamBody>) -> Self {
        GatewayBody {
            kind: Kind::Upstream(body),
            passed: None,
        }
    }

    pub(crate) fn tunnel(upgraded: Box<Upgraded>) -> Self {
        GatewayBody {
            kind: Kind::Tunnel(upgraded),
            passed: None,
        }
    }

    /// The upstream connection of a `101`, taken out; the body is empty
    /// from then on.
    pub(crate) fn take_tunnel(&mut self) -> Option<Box<Upgraded>> {
        match std::mem::replace(&mut self.kind, Kind::Full(Full::new(Bytes::new()))) {
            Kind::Tunnel(upgraded) => Some(upgraded),
            other => {
                self.kind = other;
                None
            }
        }
    }

    /// A tunnel's ends with `token` (revoked, cut off, or expired where the
    /// route says so); any other body has no use for it.
    #[inline(never)]
    pub(crate) fn hold_token(&mut self, token: Box<crate::tunnel::HeldToken>) {
        if let Kind::Tunnel(upgraded) = &mut self.kind {
            upgraded.token = Some(token);
        }
    }

    /// The upstream's header lines go out with this body, as they came.
    pub(crate) fn with_passed(mut self, passed: Option<Box<PassedHeaders>>) -> Self {
        self.passed = passed;
        self
    }

    /// The upstream's header lines passed on as bytes, if any; taken out.
    pub fn take_passed(&mut self) -> Option<Box<PassedHeaders>> {
        self.passed.take()
    }

    /// Whether an upstream header line passed on as bytes has a name that
    /// starts with `prefix` (lower case).
    pub fn passes_name_starting(&self, prefix: &[u8]) -> bool {
        self.passed
            .as_ref()
            .is_some_and(|p| p.has_name_starting(prefix))
    }

    /// The gateway holds all of the body (its own answers, and upstream
    /// bodies that arrived with their head).
    pub fn is_held(&self) -> bool {
        matches!(self.kind, Kind::Full(_))
    }
}

/// Moves the upstream header lines a response passes on as bytes into its
/// header map, ahead of the headers already there (the gateway's own).
/// Before anything reads, edits or re-encodes the answer's headers.
pub fn unpass_headers(resp: &mut Response<GatewayBody>) {
    let Some(passed) = resp.body_mut().take_passed() else {
        return;
    };
    let mut map = recycle::header_map();
    passed.append_to(&mut map);
    let own = std::mem::replace(resp.headers_mut(), map);
    if !own.is_empty() {
        let mut last = None;
        for (name, value) in own {
            // `None`: the same name as the entry before (`HeaderMap`'s
            // iteration by value names each one once).
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                resp.headers_mut().append(name.clone(), value);
            }
        }
    } else {
        recycle::give_header_map(own);
    }
}

impl std::fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(full) => write!(f, "GatewayBody::Full({:?})", full.size_hint())?,
            Kind::Upstream(body) => write!(f, "GatewayBody::Upstream({:?})", body.size_hint())?,
            Kind::Tunnel(_) => write!(f, "GatewayBody::Tunnel")?,
        }
        if let Some(passed) = &self.passed {
            write!(f, " with {passed:?}")?;
        }
        Ok(())
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            Kind::Upstream(body) => body.poll_frame(cx),
            Kind::Tunnel(_) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(full) => full.is_end_stream(),
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Tunnel(_) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(full) => full.size_hint(),
            Kind::Upstream(body) => body.size_hint(),
            Kind::Tunnel(_) => SizeHint::with_exact(0),
        }
    }
}

/// A request body as the pipeline reads it.
pub enum RequestBody<'c> {
    /// The request has none (no `Content-Length` or 0, no chunked body).
    Empty,
    /// The rest of the request on the client's HTTP/1.1 connection, read by
    /// the connection as the pipeline pulls it (`server::http1`).
    H1(&'c mut (dyn ReadBody + Send)),
    /// An HTTP/2 stream's body.
    H2(H2Body),
}

/// What a request body's failure `e` is to the gateway: the client's
/// reset of its HTTP/2 stream (logged 499, as a reset before the answer
/// is: an outside audit found such streams logged and counted as 400s, and
/// uncounted by the connection's budget of early resets), or a body that
/// broke off. `e` as the body gave it: an `h2::Error`, or one boxed.
pub(crate) fn request_body_error<E: std::fmt::Display + 'static>(e: &E) -> GatewayError {
    let any: &dyn std::any::Any = e;
    let h2 = any
        .downcast_ref::<h2::Error>()
        .or_else(|| any.downcast_ref::<BodyError>()?.downcast_ref::<h2::Error>());
    if h2.is_some_and(|e| e.is_reset() && e.is_remote()) {
        GatewayError::ClientReset
    } else {
        GatewayError::RequestBody(e.to_string())
    }
}

/// How much of an HTTP/2 request's body is read before an upstream
/// connection is taken for it ([`H2Body::read_ahead`]): nginx's
/// `client_body_buffer_size` on 64-bit systems, one 16 KiB DATA frame.
pub const READ_AHEAD: usize = 16 * 1024;

/// The body of a request on an HTTP/2 stream. What the pipeline reads is
/// given back to the client's flow-control window as it is read, so a
/// client can send at most a window ahead of what the gateway took: the
/// first [`READ_AHEAD`] bytes before an upstream connection is taken, the
/// rest as the upstream takes it.
pub struct H2Body {
    recv: h2::RecvStream,
    /// What is left of the request's `Content-Length`, when it has one (h2
    /// checks that the DATA frames add up to it).
    length: Option<u64>,
    /// For a request that said `Expect: 100-continue`: set once the body
    /// is first read, for the stream's loop to send `100 Continue` then,
    /// as the HTTP/1.x server does.
    wanted: Option<Arc<AtomicBool>>,
    /// What [`H2Body::read_ahead`] read, not yet passed on.
    ahead: Bytes,
    /// Set when the client reset the stream while its body was read, for
    /// the stream's loop to end it as a reset rather than an answer.
    reset_by_client: Arc<AtomicBool>,
}

impl H2Body {
    pub fn new(
        recv: h2::RecvStream,
        length: Option<u64>,
        wanted: Option<Arc<AtomicBool>>,
        reset_by_client: Arc<AtomicBool>,
    ) -> Self {
        H2Body {
            recv,
            length,
            wanted,
            ahead: Bytes::new(),
            reset_by_client,
        }
    }

    /// `e`, a read of the body that failed, noted if it was the client's
    /// reset of the stream.
    fn failed(&self, e: h2::Error) -> h2::Error {
        if e.is_reset() && e.is_remote() {
            self.reset_by_client.store(true, Ordering::Release);
        }
        e
    }

    /// Reads the body until it ends or [`READ_AHEAD`] bytes have come,
    /// each read waiting `stall` at most, before an upstream connection is
    /// taken for it. One HTTP/2 connection carries up to 100 streams, each
    /// proxied over an upstream connection of its own: a client that
    /// opened streams and sent their bodies slowly, or never, held as many
    /// upstream connections (the process's budget, and the upstream's
    /// workers) with a handful of connections. Now a stream holds one only
    /// once its body has ended or 16 KiB of it came, and at most about
    /// 32 KiB of it is held meanwhile (the window is given back as it is
    /// read, so that streams never wait on each other's bodies for it). A
    /// body that ended here goes upstream with its `Content-Length`, as
    /// nginx sends a body it buffered.
    pub(crate) async fn read_ahead(&mut self, stall: Duration) -> Result<(), GatewayError> {
        if let Some(wanted) = self.wanted.take() {
            wanted.store(true, Ordering::Release);
        }
        let mut copied = BytesMut::new();
        let (ahead, ended) = loop {
            let read = tokio::time::timeout(stall, self.recv.data())
                .await
                .map_err(|_| GatewayError::ClientBodyTimeout(stall.as_millis()))?;
            let data = match read {
                Some(Ok(data)) => data,
                Some(Err(e)) => return Err(request_body_error(&self.failed(e))),
                None => break (copied.freeze(), true),
            };
            let _ = self.recv.flow_control().release_capacity(data.len());
            let ended = self.recv.is_end_stream();
            // A body in one DATA frame (most small POSTs), or a first frame
            // as long as what is read ahead: kept as it came, not copied.
            if copied.is_empty() && (ended || data.len() >= READ_AHEAD) {
                break (data, ended);
            }
            copied.extend_from_slice(&data);
            if ended || copied.len() >= READ_AHEAD {
                break (copied.freeze(), ended);
            }
        };
        if ended && self.length.is_none() {
            self.length = Some(ahead.len() as u64);
        }
        self.ahead = ahead;
        Ok(())
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(wanted) = self.wanted.take() {
            wanted.store(true, Ordering::Release);
        }
        if !self.ahead.is_empty() {
            let data = std::mem::take(&mut self.ahead);
            if let Some(left) = &mut self.length {
                *left = left.saturating_sub(data.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match self.recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                // Read: the client may send as much again.
                let _ = self.recv.flow_control().release_capacity(data.len());
                if let Some(left) = &mut self.length {
                    *left = left.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(self.failed(e).into()))),
            Poll::Ready(None) => match self.recv.poll_trailers(cx) {
                Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                Poll::Ready(Ok(None)) => Poll::Ready(None),
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(self.failed(e).into()))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// The request body half of an HTTP/1.1 client connection.
pub trait ReadBody {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>>;
    fn is_end_stream(&self) -> bool;
    fn size_hint(&self) -> SizeHint;
}

impl std::fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestBody::Empty => f.write_str("RequestBody::Empty"),
            RequestBody::H1(body) => write!(f, "RequestBody::H1({:?})", body.size_hint()),
            RequestBody::H2(body) => write!(f, "RequestBody::H2({:?})", body.size_hint()),
        }
    }
}

impl Body for RequestBody<'_> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::H1(body) => body.poll_data(cx),
            RequestBody::H2(body) => body.poll_data(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::H1(body) => body.is_end_stream(),
            RequestBody::H2(body) => body.ahead.is_empty() && body.recv.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::H1(body) => body.size_hint(),
            RequestBody::H2(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;

    #[test]
    fn unpassing_puts_the_upstreams_headers_before_the_gateways_own() {
        let head = crate::h1::parse_response_head(
            &mut BytesMut::from(
                &b"HTTP/1.1 200 OK\r\nVary: Accept\r\nContent-Length: 0\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\n"[..],
            ),
            &Method::GET,
            &mut HeaderMap::new(),
            true,
        )
        .unwrap()
        .unwrap();
        let mut resp = Response::new(GatewayBody::empty().with_passed(head.passed));
        resp.headers_mut()
            .append("x-gw", HeaderValue::from_static("1"));
        resp.headers_mut()
            .append("x-gw", HeaderValue::from_static("2"));
        resp.headers_mut()
            .append("vary", HeaderValue::from_static("Origin"));
        unpass_headers(&mut resp);
        assert!(resp.body_mut().take_passed().is_none(), "moved, not copied");
        let entries: Vec<_> = resp
            .headers()
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            entries,
            [
                "vary: Accept",
                "vary: Origin",
                "set-cookie: a",
                "set-cookie: b",
                "x-gw: 1",
                "x-gw: 2",
            ]
        );
        // Nothing passed: nothing changes.
        unpass_headers(&mut resp);
        assert_eq!(resp.headers().len(), 6);
    }
}
