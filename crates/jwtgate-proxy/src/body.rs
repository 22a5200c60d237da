//! The one response body type of the data plane: either bytes the gateway
//! holds whole (its own answers, and upstream bodies that arrived with their
//! head), or an upstream body streamed from the socket as the client side
//! pulls it. An enum rather than a boxed trait object: no allocation per
//! response.

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
    /// Boxed: hyper moves the response many times on its way out, and the
    /// connection inside is ten times the size of a `Full`. Only bodies that
    /// did not arrive with their head pay for the allocation.
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
