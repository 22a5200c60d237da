//! The body types of the data plane. Responses: either bytes the gateway
//! holds whole (its own answers, and upstream bodies that arrived with their
//! head), or an upstream body streamed from the socket as the client side
//! pulls it. Requests: read from the client's HTTP/1.1 connection by the
//! connection's own reader, or from an HTTP/2 stream. Enums rather than
//! boxed trait objects: no allocation per request or response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::upstream::UpstreamBody;

/// A body that broke half way (the upstream closed early, sent a malformed
/// chunk, or stalled): the client's response is cut off.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

pub enum GatewayBody {
    Full(Full<Bytes>),
    /// Boxed: the response is moved on its way out (many times by hyper,
    /// for HTTP/2), and the connection inside is ten times the size of a
    /// `Full`. Only bodies that did not arrive with their head pay for the
    /// allocation.
    Upstream(Box<UpstreamBody>),
}

impl GatewayBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        GatewayBody::Full(Full::new(bytes.into()))
    }

    pub fn empty() -> Self {
        GatewayBody::Full(Full::new(Bytes::new()))
    }
}

impl std::fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayBody::Full(full) => write!(f, "GatewayBody::Full({:?})", full.size_hint()),
            GatewayBody::Upstream(body) => {
                write!(f, "GatewayBody::Upstream({:?})", body.size_hint())
            }
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            GatewayBody::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            GatewayBody::Upstream(body) => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Full(full) => full.is_end_stream(),
            GatewayBody::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Full(full) => full.size_hint(),
            GatewayBody::Upstream(body) => body.size_hint(),
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

/// The body of a request on an HTTP/2 stream. What the pipeline reads is
/// given back to the client's flow-control window as it is read, so a
/// client can send at most a window ahead of the upstream.
pub struct H2Body {
    recv: h2::RecvStream,
    /// What is left of the request's `Content-Length`, when it has one (h2
    /// checks that the DATA frames add up to it).
    length: Option<u64>,
}

impl H2Body {
    pub fn new(recv: h2::RecvStream, length: Option<u64>) -> Self {
        H2Body { recv, length }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.recv.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                // Read: the client may send as much again.
                let _ = self.recv.flow_control().release_capacity(data.len());
                if let Some(left) = &mut self.length {
                    *left = left.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => match self.recv.poll_trailers(cx) {
                Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                Poll::Ready(Ok(None)) => Poll::Ready(None),
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
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
            RequestBody::H2(body) => body.recv.is_end_stream(),
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
