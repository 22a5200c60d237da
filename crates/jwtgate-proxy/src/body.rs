//! The one response body type of the data plane: either bytes the gateway
//! wrote itself, or an upstream body streamed through (which hands its
//! connection back to the pool when it ends). An enum rather than a boxed
//! trait object: no allocation per response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::upstream::PoolReturn;

pub enum GatewayBody {
    Full(Full<Bytes>),
    Upstream {
        body: Incoming,
        /// Set while the connection may go back to the pool at end of body.
        on_end: Option<PoolReturn>,
    },
}

impl GatewayBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        GatewayBody::Full(Full::new(bytes.into()))
    }

    pub fn empty() -> Self {
        GatewayBody::Full(Full::new(Bytes::new()))
    }

    pub(crate) fn upstream(body: Incoming, on_end: PoolReturn) -> Self {
        let mut b = GatewayBody::Upstream {
            body,
            on_end: Some(on_end),
        };
        b.release_if_done();
        b
    }

    fn release_if_done(&mut self) {
        if let GatewayBody::Upstream { body, on_end } = self {
            if body.is_end_stream() {
                if let Some(r) = on_end.take() {
                    r.release();
                }
            }
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            GatewayBody::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            GatewayBody::Upstream { body, on_end } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                match &polled {
                    // The upstream finished its message: the connection can
                    // serve the next request. hyper stops polling a body as
                    // soon as it reports its end after the last data frame,
                    // so check for that too, not only for `None`.
                    Poll::Ready(None) => {
                        if let Some(r) = on_end.take() {
                            r.release();
                        }
                    }
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => {
                        if let Some(r) = on_end.take() {
                            r.release();
                        }
                    }
                    // A broken upstream body: never reuse that connection.
                    Poll::Ready(Some(Err(_))) => {
                        on_end.take();
                    }
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Full(full) => full.is_end_stream(),
            GatewayBody::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Full(full) => full.size_hint(),
            GatewayBody::Upstream { body, .. } => body.size_hint(),
        }
    }
}
