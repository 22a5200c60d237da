//! Every way the data plane can refuse or fail a request, and the ONE place
//! ([`GatewayError::into_response`]) that turns them into HTTP responses. The
//! client gets a fixed public message; the detail goes to the log.

use http::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use jwtgate_core::policy::AuthError;

use std::sync::Arc;

use crate::body::GatewayBody;
use crate::router::Challenges;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid request path: {0}")]
    InvalidPath(&'static str),
    #[error("no route matches")]
    NoRoute,
    #[error("authentication refused: {error}")]
    Unauthorized {
        error: AuthError,
        challenges: Arc<Challenges>,
    },
    /// Authenticated, but the route's `authorize` rules refuse (SPEC §3.7).
    #[error("authorization refused: {detail}")]
    Forbidden {
        detail: String,
        challenges: Arc<Challenges>,
    },
    /// The anonymous consumer stood in for a request without a token, and
    /// the route's `authorize` rules refuse it (SPEC §3.8): answered as a
    /// request without a token, since a token may pass.
    #[error("no token in the request, and the anonymous consumer is refused: {detail}")]
    AnonymousRefused {
        detail: String,
        challenges: Arc<Challenges>,
    },
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The upstream answered, with something that is no HTTP/1.1 answer
    /// (a malformed head, one too large, a `101` nobody asked for): as
    /// unusable as a refused connection, and said apart from one.
    #[error("invalid upstream response: {0}")]
    UpstreamInvalid(String),
    /// A new upstream connection would pass the process's budget of them
    /// (see `upstream::budget`).
    #[error("{0} upstream connections open, the most this process may hold")]
    UpstreamBudget(usize),
    #[error("request body broke off: {0}")]
    RequestBody(String),
    /// The client reset its HTTP/2 stream while the gateway read or
    /// passed on its body: logged as a stream reset before its answer is
    /// (499), not as a body the client sent wrong.
    #[error("the client reset the stream while it sent the body")]
    ClientReset,
    #[error("upstream timed out after {0} ms")]
    UpstreamTimeout(u128),
    #[error("revocation store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("invalid request method: {0}")]
    InvalidMethod(String),
    /// An HTTP/2 `:scheme` other than http or https (an HTTP/1.1
    /// absolute-form target with one is refused as it is read).
    #[error("invalid request scheme: {0:?} is neither http nor https")]
    InvalidScheme(String),
    /// More header fields than an HTTP/1.1 head may carry (HTTP/2: its
    /// own limit is on their size).
    #[error("more than {0} request header fields")]
    TooManyHeaders(usize),
    #[error("invalid Host header: {0}")]
    InvalidHost(#[from] crate::headers::BadHost),
    #[error("request body stalled for {0} ms (client_body_timeout_ms)")]
    ClientBodyTimeout(u128),
    /// A page of another site opens a WebSocket with the cookie that carries
    /// the token, which its browser added (cross-site WebSocket hijacking):
    /// browsers apply no CORS to WebSockets.
    #[error("cross-site WebSocket: {0}")]
    CrossSiteWebSocket(String),
    /// A logout-everywhere token names no subject to cut off.
    #[error("the token names no subject (a provider token without sub)")]
    NoSubject,
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::InvalidPath(_) => StatusCode::BAD_REQUEST,
            GatewayError::NoRoute => StatusCode::NOT_FOUND,
            GatewayError::Unauthorized { .. } | GatewayError::AnonymousRefused { .. } => {
                StatusCode::UNAUTHORIZED
            }
            GatewayError::Forbidden { .. } | GatewayError::CrossSiteWebSocket(_) => {
                StatusCode::FORBIDDEN
            }
            GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamInvalid(_) => {
                StatusCode::BAD_GATEWAY
            }
            GatewayError::UpstreamBudget(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::RequestBody(_) => StatusCode::BAD_REQUEST,
            // nginx's 499, as `pipeline::CLIENT_GONE`: no answer reaches
            // the client, the number is the log's.
            GatewayError::ClientReset => {
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
            }
            GatewayError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::InvalidMethod(_)
            | GatewayError::InvalidScheme(_)
            | GatewayError::InvalidHost(_) => StatusCode::BAD_REQUEST,
            GatewayError::ClientBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::NoSubject => StatusCode::BAD_REQUEST,
            GatewayError::TooManyHeaders(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// The fixed text a client may see.
    pub fn public_message(&self) -> &'static str {
        match self {
            GatewayError::InvalidPath(_) => "invalid request path",
            GatewayError::NoRoute => "no route matched",
            GatewayError::Unauthorized { error, .. } => error.public_message(),
            GatewayError::Forbidden { .. } => "insufficient scope",
            GatewayError::AnonymousRefused { .. } => AuthError::Missing.public_message(),
            GatewayError::UpstreamUnavailable(_) => "upstream unavailable",
            GatewayError::UpstreamInvalid(_) => "invalid upstream response",
            GatewayError::UpstreamBudget(_) => "too many requests in flight upstream",
            GatewayError::RequestBody(_) => "incomplete request body",
            GatewayError::ClientReset => "the client reset the stream",
            GatewayError::UpstreamTimeout(_) => "upstream timed out",
            GatewayError::StoreUnavailable(_) => "revocation store unavailable",
            GatewayError::InvalidMethod(_) => "invalid request method",
            GatewayError::InvalidScheme(_) => "invalid request scheme",
            GatewayError::InvalidHost(_) => "invalid Host header",
            GatewayError::ClientBodyTimeout(_) => "request body timed out",
            GatewayError::NoSubject => "the token names no subject to log out",
            GatewayError::CrossSiteWebSocket(_) => "cross-site WebSocket refused",
            GatewayError::TooManyHeaders(_) => "request header fields too large",
        }
    }

    pub fn into_response(self) -> Response<GatewayBody> {
        let mut resp = json_message(self.status(), self.public_message());
        let challenge = match &self {
            GatewayError::Unauthorized { error, challenges } if error.token_presented() => {
                Some(&challenges.invalid)
            }
            GatewayError::Unauthorized { challenges, .. }
            | GatewayError::AnonymousRefused { challenges, .. } => Some(&challenges.missing),
            // RFC 6750 §3.1.
            GatewayError::Forbidden { challenges, .. } => Some(&challenges.scope),
            _ => None,
        };
        if let Some(value) = challenge {
            resp.headers_mut().insert(WWW_AUTHENTICATE, value.clone());
        }
        resp
    }
}

/// `{"message": "..."}`, the body of every answer the gateway makes itself.
pub fn json_message_body(message: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(message.len() + 16);
    body.extend_from_slice(b"{\"message\":");
    crate::log_sink::push_json_str(&mut body, message);
    body.push(b'}');
    body
}

/// `{"message": "..."}` with the JSON content type.
pub fn json_message(status: StatusCode, message: &str) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::full(json_message_body(message)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
