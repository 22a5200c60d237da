//! OpenID Connect Back-Channel Logout 1.0 (SPEC §3.10): the validation of a
//! logout token an identity provider POSTs to the gateway, in full (§2.6):
//! the provider's signature, `iss`, `aud` = the gateway's `client_id`,
//! `iat`, `exp`, `jti`, the back-channel `events` member, no `nonce`, and a
//! `sub` and/or a `sid`.
//!
//! Pure: whether a `jti` was seen before, and what the logout does, are the
//! data plane's business.

use serde_json::{Map, Value};

use crate::jwt::{Algorithm, KeyMiss, Token};
use crate::policy::check_audience;
use crate::provider::{IdentityProvider, ProviderKeys};

/// The event a logout token must carry (BCL §2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Whether a token is a logout token (BCL §2.4: typed `logout+jwt`, or
/// carrying the back-channel `events` member), which must never pass as an
/// access token: its `sub` is the user who logged out, and where a provider
/// checks no audience (or lists its `client_id`) it would otherwise verify
/// as one (RFC 8725 §3.11, cross-JWT confusion).
pub fn is_logout_token(
    header: &serde_json::Map<String, Value>,
    claims: &serde_json::Map<String, Value>,
) -> bool {
    let typed = header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|typ| media_type_is(typ, "logout+jwt"));
    typed
        || claims
            .get("events")
            .and_then(Value::as_object)
            .is_some_and(|events| events.contains_key(LOGOUT_EVENT))
}

/// Whether `typ` (a media type, its `application/` prefix optional and in
/// any case: RFC 7515 §4.1.9) names `wanted`.
fn media_type_is(typ: &str, wanted: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case(wanted)
}

/// How far `iat` may be from now (clock skew between the provider and the
/// gateway); a logout token is sent at once, so an old one is a replay.
pub const IAT_SKEW_SECONDS: i64 = 120;

/// A logout token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    /// Within [`IAT_SKEW_SECONDS`] of now.
    pub iat: i64,
    pub exp: i64,
}

/// Why a logout token was refused (the IdP gets `400 invalid_request`; the
/// reason goes to the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("alg {0:?} is not among the provider's algorithms")]
    Algorithm(String),
    #[error("the provider has no usable key set")]
    NoKeys,
    #[error("{0}")]
    Key(KeyMiss),
    #[error("signature does not verify")]
    Signature,
    #[error("iss is not the provider's issuer")]
    Issuer,
    #[error("aud does not name the gateway's client_id: {0}")]
    Audience(String),
    #[error("iat is missing or more than {IAT_SKEW_SECONDS}s from now")]
    IssuedAt,
    #[error("exp is missing or passed")]
    Expired,
    #[error("no jti")]
    NoJti,
    #[error("no events member with the back-channel logout event (an object)")]
    NoEvent,
    #[error("a logout token must not carry a nonce")]
    Nonce,
    #[error("neither sub nor sid")]
    NoSubject,
    #[error("header has a \"crit\" parameter")]
    Critical,
    #[error("typ {0} names another kind of token (a logout token is typed logout+jwt, JWT, or not at all)")]
    Type(String),
}

impl LogoutError {
    /// The kid the provider's set lacks, when that is the failure (a
    /// refetch may find it).
    pub fn unknown_kid(&self) -> Option<&str> {
        match self {
            LogoutError::Key(KeyMiss::UnknownKid(k) | KeyMiss::Unusable { kid: k, .. }) => Some(k),
            _ => None,
        }
    }
}

/// Checks `raw` as a logout token of `provider`, whose current keys are
/// `keys`, at `now`. `client_id` is the provider's (required by config
/// whenever a back-channel path is set).
pub fn validate(
    raw: &str,
    provider: &IdentityProvider,
    keys: Option<&ProviderKeys>,
    now: i64,
) -> Result<LogoutToken, LogoutError> {
    let token = Token::parse(raw).map_err(|e| LogoutError::Malformed(e.to_string()))?;
    let alg = token
        .alg()
        .parse::<Algorithm>()
        .ok()
        .filter(|a| provider.algorithms.contains(a) && !a.is_hmac())
        .ok_or_else(|| LogoutError::Algorithm(token.alg().to_owned()))?;
    if token.header().contains_key("crit") {
        return Err(LogoutError::Critical);
    }
    // Typed as another kind of token (an access token's `at+jwt`, an ID
    // token's `id_token+jwt`...), it is not one a provider sent to log out,
    // whatever its claims say (RFC 8725 §3.11, explicit typing).
    if let Some(typ) = token.header().get("typ") {
        let typ_ok = typ
            .as_str()
            .is_some_and(|t| media_type_is(t, "logout+jwt") || media_type_is(t, "JWT"));
        if !typ_ok {
            // Written by whoever posted it: a few bytes are enough to say.
            let mut said = typ.to_string();
            if said.len() > 64 {
                let mut end = 64;
                while !said.is_char_boundary(end) {
                    end -= 1;
                }
                said.truncate(end);
                said.push_str("...");
            }
            return Err(LogoutError::Type(said));
        }
    }
    let keys = keys
        .filter(|k| k.usable_at(now))
        .ok_or(LogoutError::NoKeys)?;
    let kid = token.header().get("kid");
    let (_, key) = keys.set.select(alg, kid).map_err(LogoutError::Key)?;
    if !key.verify(token.signing_input(), token.signature())
        && keys
            .set
            .verifying_twin(alg, kid, token.signing_input(), token.signature())
            .is_none()
    {
        return Err(LogoutError::Signature);
    }
    let claims = token.claims();
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Err(LogoutError::Issuer);
    }
    let client_id = provider.client_id.clone().unwrap_or_default();
    check_audience(std::slice::from_ref(&client_id), claims)
        .map_err(|e| LogoutError::Audience(e.to_string()))?;
    let iat = integer(claims, "iat").ok_or(LogoutError::IssuedAt)?;
    if now.abs_diff(iat) > IAT_SKEW_SECONDS.unsigned_abs() {
        return Err(LogoutError::IssuedAt);
    }
    let exp = integer(claims, "exp").ok_or(LogoutError::Expired)?;
    if now >= exp {
        return Err(LogoutError::Expired);
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .ok_or(LogoutError::NoJti)?;
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(LOGOUT_EVENT));
    if !event.is_some_and(Value::is_object) {
        return Err(LogoutError::NoEvent);
    }
    if claims.contains_key("nonce") {
        return Err(LogoutError::Nonce);
    }
    // Read as an access token's are for a cut-off (an integer as its
    // digits), so the cut-off ends the tokens it names.
    let text = |name: &str| {
        crate::claims::subject_text(claims.get(name))
            .filter(|s| !s.is_empty())
            .map(std::borrow::Cow::into_owned)
    };
    let (sub, sid) = (text("sub"), text("sid"));
    if sub.is_none() && sid.is_none() {
        return Err(LogoutError::NoSubject);
    }
    Ok(LogoutToken {
        sub,
        sid,
        jti: jti.to_owned(),
        iat,
        exp,
    })
}

/// A NumericDate as whole seconds.
fn integer(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let n = claims.get(name)?.as_number()?;
    n.as_i64()
        .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

#[cfg(test)]
mod tests;
