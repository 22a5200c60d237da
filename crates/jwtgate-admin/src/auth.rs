//! `X-API-KEY` on every `/admin/*` request (SPEC §4), matched or not, so an
//! unauthenticated caller cannot even learn which admin paths exist.
//! `/status`, `/metrics` and the console's static files (`/console/`, which
//! hold no data: the page signs in and calls `/admin/*` with the key) are
//! open; `/status` gives the reasons for refused etcd objects only with the
//! key (they quote what etcd holds, resolved secrets' lengths included).
//!
//! A request with two `X-API-KEY` headers is refused whatever they hold.
//! The comparison is constant-time over SHA-256 digests of both keys: equal
//! lengths, so neither the key's bytes nor its length leak through timing.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AdminState;
use crate::error::AdminError;

pub const HEADER: &str = "x-api-key";

pub async fn require_key(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/admin/") {
        return next.run(req).await;
    }
    let expected = state.live.admin_key();
    // Exactly one key: of two, neither is taken (a proxy in front and the
    // gateway could each read a different one), as the data plane refuses
    // two tokens.
    let mut keys = req.headers().get_all(HEADER).iter();
    let given = match (keys.next(), keys.next()) {
        (Some(key), None) => Some(key.as_bytes()),
        _ => None,
    };
    if key_matches(expected.as_bytes(), given) {
        next.run(req).await
    } else {
        // Logged, with the peer, by the admin access line.
        AdminError::Unauthorized.into_response()
    }
}

pub(crate) fn key_matches(expected: &[u8], given: Option<&[u8]>) -> bool {
    let Some(given) = given else { return false };
    // An empty configured key never matches (the config refuses one anyway).
    if expected.is_empty() {
        return false;
    }
    let (a, b) = (digest(&SHA256, expected), digest(&SHA256, given));
    verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_matches() {
        assert!(key_matches(b"k3y", Some(b"k3y")));
        for wrong in [&b""[..], b"k3", b"k3yy", b"K3Y"] {
            assert!(!key_matches(b"k3y", Some(wrong)), "{wrong:?}");
        }
        assert!(!key_matches(b"k3y", None));
        assert!(!key_matches(b"", Some(b"")));
    }
}
