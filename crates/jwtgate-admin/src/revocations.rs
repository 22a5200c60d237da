//! `POST /admin/v1/revocations {"token": "..."}`: blacklist a token with the
//! rules of a logout (SPEC §3.4): the store holds the SHA-256 of the
//! token's signing input (§3.11), the entry lasts until the token's `exp`
//! plus the largest leeway of any route (so no route can still accept it),
//! at least a grace past `exp` (`jwt::revocation_expiry`), and `201` is
//! sent only once the store has durably accepted it, else `503`.
//!
//! The token must be a well-formed JWT; its signature is not checked: the
//! caller holds the admin key, and revoking a token that would be refused
//! anyway is harmless.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use jwtgate_config::RawConfig;
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::{revocation_expiry, RevocationKey, Token, REVOCATION_GRACE_SECONDS};
use jwtgate_core::policy::{numeric_date, sources};
use jwtgate_store::Entry;
use serde_json::{json, Value};
use tracing::info;

use crate::api::AdminState;
use crate::error::AdminError;
use crate::input::{json_body, Members};

pub async fn revoke(State(s): State<AdminState>, body: Bytes) -> Result<Response, AdminError> {
    let value = json_body(&body)?;
    let raw = token_field(&value)?;
    let token = sources::strip_bearer(raw.trim());
    let parsed = Token::parse(token)
        .map_err(|e| AdminError::field("token", format!("not a well-formed JWT: {e}")))?;
    let exp = numeric_date(parsed.claims(), "exp")
        .map_err(|_| AdminError::field("token", "its exp claim is not a NumericDate"))?;
    let expires_at = exp.map(|exp| revocation_expiry(exp, max_leeway(&s.live.source())));
    // An entry that has expired already would be stored only to be purged,
    // and a `201 token revoked` for it said more than was done (an outside
    // audit, with an exp of i64::MIN): every route refuses the token for its
    // exp anyway. Expired a grace ago too, so that a peer whose clock is
    // behind this node's (it keeps entries by its own clock) does not take
    // the token meanwhile.
    let now = SystemClock.now_unix();
    if let Some(at) = expires_at.filter(|&at| at.saturating_add(REVOCATION_GRACE_SECONDS) <= now) {
        info!(target: "jwtgate::admin", expires_at = at, "revocation through the admin API of a token expired long ago: nothing stored");
        let body = json!({
            "message": "token expired: every route refuses it, nothing stored",
            "expires_at": at,
        });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let entry = Entry {
        digest: RevocationKey::of(&parsed).signing_input,
        // No exp: the token never expires, neither does its revocation.
        expires_at: expires_at.unwrap_or(i64::MAX),
    };
    s.live
        .revocations()
        .revoke(entry)
        .await
        .map_err(|e| AdminError::StoreUnavailable(e.to_string()))?;
    info!(target: "jwtgate::admin", expires_at = entry.expires_at, "token revoked through the admin API");
    let body = json!({ "message": "token revoked", "expires_at": expires_at });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `{"token": "<string>"}` and nothing else.
fn token_field(value: &Value) -> Result<&str, AdminError> {
    let mut body = Members::read(value, &["token"], "{\"token\": \"...\"}")?;
    let token = body.required("token", usize::MAX);
    if token.is_some_and(|t| t.trim().is_empty()) {
        body.problem("token", "must not be empty");
    }
    body.finish()?;
    token.ok_or_else(|| AdminError::field("token", "is required"))
}

fn max_leeway(source: &RawConfig) -> i64 {
    let max = source
        .routes
        .iter()
        .filter_map(|r| r.jwt.as_ref()?.leeway_seconds)
        .max()
        .unwrap_or(0);
    i64::try_from(max).unwrap_or(i64::MAX)
}
