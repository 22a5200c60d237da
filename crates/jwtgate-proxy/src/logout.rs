//! Logging out everywhere (SPEC §3.10): the subject cut-off a route's
//! `logout_everywhere_path` records for its token's own subject, and OpenID
//! Connect Back-Channel Logout, where an identity provider POSTs a signed
//! logout token to a provider's `backchannel_logout_path`.
//!
//! Both record cut-offs in the revocation store, acknowledged only once
//! durable (the same rule as a logout), so every node refuses the old
//! tokens within the feed's latency.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use jwtgate_core::backchannel::{self, LogoutError, IAT_SKEW_SECONDS};
use jwtgate_core::claims::{subject_text, Claims};
use jwtgate_core::clock::Clock;
use jwtgate_core::policy::{sources, Principal};
use jwtgate_store::cutoffs::FUTURE_IAT_SECONDS;
use jwtgate_store::{Cutoff, Owner, Revocations, Subject, SubjectKey, TokenSubject};
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::body::{GatewayBody, RequestBody};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// A logout token, with its form, is small; anything larger is refused.
const MAX_LOGOUT_BODY: usize = 64 * 1024;

/// The cut-off a logout-everywhere request records: its consumer and
/// `sub` (the whole consumer when the token has none), or its provider and
/// `sub`. A `sub` that is there but neither a non-empty string nor an
/// integer (named by its digits, as cut-offs read it) names no subject
/// (RFC 7519 §4.1.2: a string): taken as none, one user's "sign out
/// everywhere" would have cut off every user of the consumer.
pub fn own_subject(principal: &Principal, claims: &Map<String, Value>) -> Option<SubjectKey> {
    // An integer names its subject by its digits, as cut-offs read it.
    let sub = match (claims.get("sub"), subject_text(claims.get("sub"))) {
        (None, _) => None,
        (Some(_), Some(s)) if !s.is_empty() => Some(s.into_owned()),
        (Some(_), _) => return None,
    };
    match principal {
        Principal::Consumer(c) => Some(SubjectKey {
            owner: Owner::Consumer(c.username.clone()),
            subject: sub.map_or(Subject::Every, Subject::Sub),
        }),
        Principal::Provider { provider, .. } => Some(SubjectKey {
            owner: Owner::Provider(provider.name.clone()),
            subject: Subject::Sub(sub?),
        }),
        Principal::Anonymous(_) => None,
    }
}

/// The subject cut-off that refuses a verified token of `consumer` or
/// `provider` with these claims, if any: memory only. Only a provider's
/// cut-offs name a session (`sid`).
pub fn cutoff_refusing(
    revocations: &Revocations,
    claims: &Claims,
    consumer: Option<&str>,
    provider: Option<&str>,
    now: i64,
) -> Option<Cutoff> {
    let (sub, sid) = sub_and_sid(claims, provider.is_some());
    let subject = TokenSubject {
        consumer,
        provider,
        sub: sub.as_deref(),
        sid: sid.as_deref(),
        iat: claims.iat().at(),
    };
    revocations.cutoff_for(&subject, now)
}

/// The `sub` and `sid` a cut-off is matched on; a `sid` only for a
/// provider's token.
fn sub_and_sid(claims: &Claims, provider: bool) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    let sid = if provider {
        subject_text(claims.get("sid"))
    } else {
        None
    };
    (subject_text(claims.get("sub")), sid)
}

/// What a cut-off is matched on of a verified token, kept past its request
/// (an open WebSocket): names, not the config's objects, so that nothing
/// of an older config (a consumer's secret) stays in memory with it.
pub struct HeldSubject {
    consumer: Option<Box<str>>,
    provider: Option<Box<str>>,
    sub: Option<Box<str>>,
    sid: Option<Box<str>>,
    iat: Option<i64>,
}

impl HeldSubject {
    pub fn of(principal: &Principal, claims: &Claims) -> Self {
        let provider = principal.provider().map(|p| Box::from(p.name.as_str()));
        let (sub, sid) = sub_and_sid(claims, provider.is_some());
        HeldSubject {
            consumer: principal.consumer().map(|c| Box::from(c.username.as_str())),
            provider,
            sub: sub.map(|s| Box::from(s.as_ref())),
            sid: sid.map(|s| Box::from(s.as_ref())),
            iat: claims.iat().at(),
        }
    }

    pub fn consumer(&self) -> Option<&str> {
        self.consumer.as_deref()
    }

    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// What a cut-off table is asked about (`token explain` asks the
    /// store's own).
    pub fn subject(&self) -> TokenSubject<'_> {
        TokenSubject {
            consumer: self.consumer(),
            provider: self.provider(),
            sub: self.sub.as_deref(),
            sid: self.sid.as_deref(),
            iat: self.iat,
        }
    }

    /// The cut-off that refuses the token, if any: memory only.
    pub fn cut_off_by(&self, revocations: &Revocations, now: i64) -> Option<Cutoff> {
        if !revocations.cutoffs_name(self.consumer(), self.provider()) {
            return None;
        }
        revocations.cutoff_for(&self.subject(), now)
    }
}

/// Records a cut-off of `key` at the current second.
pub async fn cut_off(gw: &Gateway, key: SubjectKey) -> Result<Cutoff, GatewayError> {
    cut_off_at(gw, key, gw.clock.now_unix()).await
}

/// The second a logout-everywhere request made with a token issued at
/// `iat` cuts off at: now, or the token's own `iat` when its issuer's clock
/// is ahead of ours by up to [`FUTURE_IAT_SECONDS`], beyond which a cut-off
/// refuses a token whatever its `iat`, so that the token that asked, and
/// those issued with it, are ended too (an outside audit: with the 120 s
/// of the back-channel's skew here, the siblings of a token issued 121 to
/// 300 s ahead passed). An `iat` further ahead is not trusted to move the
/// cut-off: the token is ended by the blacklist.
pub fn own_cut_off_second(now: i64, iat: Option<i64>) -> i64 {
    match iat {
        Some(iat) if iat > now && iat <= now.saturating_add(FUTURE_IAT_SECONDS) => iat,
        _ => now,
    }
}

/// Records a cut-off of `key` at `not_before`.
pub async fn cut_off_at(
    gw: &Gateway,
    key: SubjectKey,
    not_before: i64,
) -> Result<Cutoff, GatewayError> {
    let cutoff = Cutoff {
        key,
        not_before,
        expires_at: not_before.saturating_add(gw.subject_retention),
    };
    gw.revocations
        .cut_off(cutoff.clone())
        .await
        .map_err(|e| GatewayError::StoreUnavailable(e.to_string()))?;
    Ok(cutoff)
}

/// What the back-channel endpoint did, for the access log and metrics.
pub struct Backchannel {
    pub response: Response<GatewayBody>,
    pub outcome: &'static str,
    pub detail: Option<String>,
}

/// `POST {backchannel_logout_path}` of provider `index` (OIDC Back-Channel
/// Logout 1.0 §2.5-2.8): `200` once the cut-offs are durable, `400
/// {"error":"invalid_request"}` otherwise; other methods `405`.
pub async fn backchannel(
    gw: &Gateway,
    index: usize,
    parts: &Parts,
    body: RequestBody<'_>,
    body_timeout: std::time::Duration,
) -> Backchannel {
    let provider_name = gw
        .providers
        .get(index)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let result = logout(gw, index, parts, body, body_timeout).await;
    let (response, outcome, detail) = match result {
        Ok(done) => {
            info!(provider = %provider_name, logged_out = %done, "back-channel logout");
            let mut r = Response::new(GatewayBody::empty());
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            (r, "ok", Some(done))
        }
        Err(Refused::Method) => {
            let mut r = invalid(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            (r, "invalid", Some("method not allowed".into()))
        }
        Err(Refused::Request(why)) => {
            warn!(provider = %provider_name, reason = %why, "back-channel logout refused");
            (invalid(StatusCode::BAD_REQUEST), "invalid", Some(why))
        }
        Err(Refused::Replay) => {
            let why = "jti already used (a replayed logout token)".to_owned();
            warn!(provider = %provider_name, reason = %why, "back-channel logout refused");
            (invalid(StatusCode::BAD_REQUEST), "replay", Some(why))
        }
        Err(Refused::Store(why)) => {
            warn!(provider = %provider_name, error = %why, "back-channel logout not recorded: revocation store unavailable");
            (invalid(StatusCode::BAD_REQUEST), "unavailable", Some(why))
        }
    };
    metrics::counter!(
        "jwtgate_backchannel_logout_total",
        "provider" => provider_name,
        "outcome" => outcome
    )
    .increment(1);
    Backchannel {
        response,
        outcome,
        detail,
    }
}

enum Refused {
    Method,
    Request(String),
    Replay,
    Store(String),
}

/// `{"error":"invalid_request"}` (SPEC §3.10, BCL §2.8), with no
/// `error_description`: why a token failed (its `aud`, a `kid` the keys
/// lack, a `jti` already used) is the log's to say, not an unauthenticated
/// caller's to learn (SPEC §3.2).
fn invalid(status: StatusCode) -> Response<GatewayBody> {
    let mut r = Response::new(GatewayBody::full(r#"{"error":"invalid_request"}"#));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn logout(
    gw: &Gateway,
    index: usize,
    parts: &Parts,
    body: RequestBody<'_>,
    body_timeout: std::time::Duration,
) -> Result<String, Refused> {
    if parts.method != Method::POST {
        return Err(Refused::Method);
    }
    let form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Refused::Request(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let body = read_body(body, body_timeout).await?;
    let text =
        std::str::from_utf8(&body).map_err(|_| Refused::Request("the body is not UTF-8".into()))?;
    let mut tokens = sources::query_params(text, "logout_token");
    let raw = match (tokens.next(), tokens.next()) {
        (Some(t), None) => t.replace('+', " "),
        (None, _) => return Err(Refused::Request("no logout_token".into())),
        (Some(_), Some(_)) => return Err(Refused::Request("more than one logout_token".into())),
    };
    let provider = gw
        .providers
        .get(index)
        .ok_or_else(|| Refused::Request("no such provider".into()))?;
    let now = gw.clock.now_unix();
    let keys = || jwtgate_core::provider::KeyRing::current(&*gw.keys, index);
    let token = match backchannel::validate(&raw, provider, keys().as_deref(), now) {
        Err(e) if e.unknown_kid().is_some() => {
            // The same rule as a request's unknown kid: one merged refetch
            // per interval.
            let kid = e.unknown_kid().unwrap_or_default().to_owned();
            let (_, found) = gw.keys.refetch_for_unknown_kid(index, &kid).await;
            if !found {
                return Err(Refused::Request(e.to_string()));
            }
            backchannel::validate(&raw, provider, keys().as_deref(), now)
        }
        other => other,
    }
    .map_err(|e: LogoutError| Refused::Request(e.to_string()))?;

    // A jti is accepted once, on any node: recorded before the cut-offs,
    // forgotten again if they cannot be recorded (so the IdP's retry is
    // not taken for a replay). Forgotten too when the claim itself failed:
    // one that timed out may still be carried out by a store that stalled
    // (Redis executes it when it resumes), and would leave the jti used
    // with no cut-off recorded. The forget follows the claim on the same
    // connection, so it runs after it; and it takes back only this
    // request's claim (its claimant), never one that another processing of
    // the same token made and acted on.
    let once = once_key(&provider.name, &token.jti);
    let claimant = jwtgate_store::claim_owner();
    // Validation refuses a logout token more than the skew past its iat:
    // the claim is needed no longer than that, whatever its exp says.
    let expires = token
        .exp
        .min(token.iat.saturating_add(IAT_SKEW_SECONDS))
        .saturating_add(IAT_SKEW_SECONDS);
    match gw.revocations.claim_once(&once, &claimant, expires).await {
        Ok(true) => {}
        Ok(false) => return Err(Refused::Replay),
        Err(e) => {
            forget(gw, &once, &claimant).await;
            return Err(Refused::Store(e.to_string()));
        }
    }
    // At receipt (SPEC §3.10), or at the token's iat if the provider's
    // clock is ahead of ours (by up to the skew taken): the tokens it issued
    // just before the logout carry iats up to that, and are ended too.
    let not_before = now.max(token.iat);
    let mut done = Vec::new();
    let owner = Owner::Provider(provider.name.clone());
    let keys = [
        token.sub.clone().map(Subject::Sub),
        token.sid.clone().map(Subject::Sid),
    ];
    for subject in keys.into_iter().flatten() {
        let key = SubjectKey {
            owner: owner.clone(),
            subject,
        };
        if let Err(e) = cut_off_at(gw, key.clone(), not_before).await {
            forget(gw, &once, &claimant).await;
            return Err(Refused::Store(e.to_string()));
        }
        done.push(key.to_string());
    }
    Ok(done.join(", "))
}

/// Takes back this request's claim of a logout token's jti; said when it
/// cannot be: the provider's retries are then refused as replays until
/// the claim expires.
async fn forget(gw: &Gateway, once: &str, claimant: &str) {
    if let Err(e) = gw.revocations.forget_once(once, claimant).await {
        tracing::warn!(
            error = %e,
            "a back-channel logout failed, and its jti could not be released: \
             the provider's retries are refused as replays until the logout token expires"
        );
    }
}

async fn read_body(body: RequestBody<'_>, timeout: std::time::Duration) -> Result<Bytes, Refused> {
    let collected = tokio::time::timeout(timeout, Limited::new(body, MAX_LOGOUT_BODY).collect())
        .await
        .map_err(|_| Refused::Request("the body stalled".into()))?;
    collected.map(|c| c.to_bytes()).map_err(|_| {
        Refused::Request(format!(
            "the body is larger than {MAX_LOGOUT_BODY} bytes, or broke off"
        ))
    })
}

/// The key a `jti` is recorded under: the provider and the jti, hashed
/// (bounded length, whatever the token says).
fn once_key(provider: &str, jti: &str) -> String {
    let d = hex_sha256(format!("{provider}\0{jti}").as_bytes());
    format!("bcl:{d}")
}

fn hex_sha256(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let d = jwtgate_core::jwt::sha256(bytes);
    let mut out = String::with_capacity(64);
    for b in d {
        let _ = write!(out, "{b:02x}");
    }
    out
}
