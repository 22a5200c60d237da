//! The JWT policy of one route: where the token comes from, which requests
//! need one, and the ordered checks of SPEC §3.1 that turn a raw token into an
//! authenticated consumer or a typed refusal.
//!
//! What this does not do: read requests, consult the revocation store, or build
//! responses. The data plane does those around [`authenticate`].

pub mod cache;
pub mod sources;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::Value;

use self::cache::{Verdict, VerifiedCache};
use crate::clock::Clock;
use crate::consumer::{Consumer, ConsumerRegistry};
use crate::jwt::{RevocationKey, Token, TokenError};
use crate::path::{Method, PathRules, RuleEntry};

/// Where a route looks for the token, in this order. `None` disables a source.
#[derive(Debug, Clone)]
pub struct TokenSources {
    /// Lower-case header name.
    pub header: Option<String>,
    pub query: Option<String>,
    pub cookie: Option<String>,
}

impl Default for TokenSources {
    fn default() -> Self {
        TokenSources {
            header: Some("authorization".into()),
            query: Some("jwt".into()),
            cookie: Some("jwt".into()),
        }
    }
}

/// Which requests of the route need a token (SPEC §3.3).
#[derive(Debug, Clone, Default)]
pub enum PathScope {
    /// Neither list set: every request needs a token.
    #[default]
    All,
    /// `required_paths`: only matching requests need a token.
    Required(PathRules),
    /// `not_required_paths`: every request except matching ones needs a token.
    NotRequired(PathRules),
}

/// The logout path of a route (SPEC §3.4).
#[derive(Debug, Clone)]
pub struct Logout {
    pub entry: RuleEntry,
    rules: PathRules,
    /// Proxy the logout and revoke only on an upstream 2xx.
    pub forward: bool,
}

impl Logout {
    pub fn new(entry: RuleEntry, forward: bool) -> Self {
        let rules = PathRules::compile(std::slice::from_ref(&entry));
        Logout {
            entry,
            rules,
            forward,
        }
    }

    pub fn matches(&self, method: Method, path: &str) -> bool {
        self.rules.find(method, path).is_some()
    }
}

/// `protection` flags (SPEC §3.5), enforced by the admin API and reloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protection {
    pub undeletable: bool,
    pub immutable: bool,
}

/// A route's compiled JWT policy.
#[derive(Debug, Clone)]
pub struct JwtPolicy {
    pub key_claim_name: String,
    pub sources: TokenSources,
    pub hide_credentials: bool,
    pub required_claims: Vec<String>,
    pub leeway_seconds: i64,
    /// 0 = unlimited.
    pub max_lifetime_seconds: i64,
    pub realm: String,
    /// claim name -> upstream header name (lower-case).
    pub forward_claims: Vec<(String, String)>,
    pub scope: PathScope,
    /// Set when `use_jwt_blacklist_revoking` is on and a logout path is given.
    pub logout: Option<Logout>,
    pub protection: Protection,
}

impl Default for JwtPolicy {
    fn default() -> Self {
        JwtPolicy {
            key_claim_name: "key".into(),
            sources: TokenSources::default(),
            hide_credentials: false,
            required_claims: vec!["exp".into()],
            leeway_seconds: 0,
            max_lifetime_seconds: 0,
            realm: "jwtgate".into(),
            forward_claims: Vec::new(),
            scope: PathScope::All,
            logout: None,
            protection: Protection::default(),
        }
    }
}

/// What the path rules say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement<'a> {
    pub token_required: bool,
    /// The rule entry that decided, if a list decided.
    pub rule: Option<&'a RuleEntry>,
    /// The request is the route's logout request.
    pub logout: bool,
}

impl JwtPolicy {
    /// Whether `method path` (the normalised path) needs a token. A logout
    /// request always does, whatever the lists say.
    pub fn requirement(&self, method: Method, path: &str) -> Requirement<'_> {
        let logout = self
            .logout
            .as_ref()
            .is_some_and(|l| l.matches(method, path));
        let (listed, rule) = match &self.scope {
            PathScope::All => (true, None),
            PathScope::Required(rules) => {
                let rule = rules.find(method, path);
                (rule.is_some(), rule)
            }
            PathScope::NotRequired(rules) => {
                let rule = rules.find(method, path);
                (rule.is_none(), rule)
            }
        };
        Requirement {
            token_required: listed || logout,
            rule,
            logout,
        }
    }
}

/// Why a request was refused. Each maps to one fixed public message
/// ([`AuthError::public_message`]); the variant's detail is for logs and
/// `token explain` only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("no token in the request")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(#[from] TokenError),
    #[error("the request carries more than one distinct token ({0})")]
    SeveralTokens(&'static str),
    #[error("payload has no {claim:?} claim")]
    MissingKeyClaim { claim: String },
    #[error("claim {claim:?} is not a string")]
    KeyClaimNotString { claim: String },
    #[error("no consumer has key {key:?}")]
    UnknownConsumer { key: String },
    #[error("token alg {token:?} does not match the consumer's {expected}")]
    AlgMismatch {
        token: String,
        expected: &'static str,
    },
    #[error("header has a \"crit\" parameter, and no extension is understood")]
    CriticalHeader,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token expired at {exp} (now {now}, leeway {leeway}s)")]
    Expired { exp: i64, now: i64, leeway: i64 },
    #[error("token not valid before {nbf} (now {now}, leeway {leeway}s)")]
    NotYetValid { nbf: i64, now: i64, leeway: i64 },
    #[error("required claim {0:?} is missing")]
    MissingClaim(String),
    #[error("claim {0:?} is not a NumericDate")]
    NotNumericDate(String),
    #[error("token lifetime {lifetime}s exceeds max_lifetime_seconds {max}")]
    LifetimeTooLong { lifetime: i64, max: i64 },
    #[error("token has been revoked")]
    Revoked,
}

impl AuthError {
    /// The fixed message of SPEC §3.2 — all a client ever learns.
    pub fn public_message(&self) -> &'static str {
        match self {
            AuthError::Missing => "Missing JWT token in request",
            AuthError::Malformed(_) | AuthError::SeveralTokens(_) => "JWT token invalid",
            AuthError::MissingKeyClaim { .. } | AuthError::KeyClaimNotString { .. } => {
                "missing user key in JWT token"
            }
            AuthError::UnknownConsumer { .. } => "Invalid user key in JWT token",
            AuthError::Revoked => "JWT token has been revoked",
            _ => "failed to verify jwt",
        }
    }

    /// Short stable label for metrics and the access log.
    pub fn outcome(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) | AuthError::SeveralTokens(_) => "malformed",
            AuthError::MissingKeyClaim { .. } | AuthError::KeyClaimNotString { .. } => {
                "missing_key_claim"
            }
            AuthError::UnknownConsumer { .. } => "unknown_consumer",
            AuthError::AlgMismatch { .. } | AuthError::CriticalHeader => "wrong_alg",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::MissingClaim(_) | AuthError::NotNumericDate(_) => "bad_claims",
            AuthError::LifetimeTooLong { .. } => "lifetime_too_long",
            AuthError::Revoked => "revoked",
        }
    }

    /// Whether a token was presented (for `error="invalid_token"`).
    pub fn token_presented(&self) -> bool {
        !matches!(self, AuthError::Missing)
    }
}

/// One step of [`authenticate`], reported to an observer so that
/// `token explain` shows exactly the path the gateway takes.
#[derive(Debug)]
pub enum Step<'a> {
    Parsed(&'a Token<'a>),
    KeyClaim {
        claim: &'a str,
        value: Option<&'a Value>,
        claims: &'a serde_json::Map<String, Value>,
    },
    Consumer {
        key: &'a str,
        consumer: Option<&'a Consumer>,
    },
    Algorithm {
        token: &'a str,
        expected: &'static str,
    },
    Signature {
        valid: bool,
    },
    Claims {
        now: i64,
        result: Result<(), &'a AuthError>,
    },
}

/// A token that passed every check but revocation.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub consumer: Arc<Consumer>,
    pub claims: Arc<serde_json::Map<String, Value>>,
    /// Where the token stands in the blacklist.
    pub revocation: RevocationKey,
}

/// Runs the checks of SPEC §3.1 in order, up to (not including) revocation.
pub fn authenticate(
    policy: &JwtPolicy,
    consumers: &ConsumerRegistry,
    raw: &str,
    clock: &dyn Clock,
) -> Result<Authenticated, AuthError> {
    authenticate_traced(policy, consumers, raw, clock, &mut |_| {})
}

/// [`authenticate`] through a [`VerifiedCache`]: a token seen before skips
/// parsing and the signature check, never the claim checks.
pub fn authenticate_cached(
    policy: &JwtPolicy,
    consumers: &ConsumerRegistry,
    raw: &str,
    clock: &dyn Clock,
    cache: &VerifiedCache,
) -> Result<Authenticated, AuthError> {
    match cache.get(raw, &policy.key_claim_name) {
        Some(Verdict::Verified {
            consumer,
            claims,
            revocation,
        }) => {
            check_claims(policy, &claims, clock.now_unix())?;
            Ok(Authenticated {
                consumer,
                claims,
                revocation,
            })
        }
        Some(Verdict::BadSignature) => Err(AuthError::BadSignature),
        None => {
            let result = authenticate_traced(policy, consumers, raw, clock, &mut |_| {});
            match &result {
                Ok(a) => cache.insert(
                    raw,
                    &policy.key_claim_name,
                    Verdict::Verified {
                        consumer: Arc::clone(&a.consumer),
                        claims: Arc::clone(&a.claims),
                        revocation: a.revocation,
                    },
                ),
                Err(AuthError::BadSignature) => {
                    cache.insert(raw, &policy.key_claim_name, Verdict::BadSignature)
                }
                // Claim failures may be temporary (nbf) and are cheap to
                // reach again; everything else fails before any crypto.
                Err(_) => {}
            }
            result
        }
    }
}

/// [`authenticate`] with an observer that sees each step.
pub fn authenticate_traced(
    policy: &JwtPolicy,
    consumers: &ConsumerRegistry,
    raw: &str,
    clock: &dyn Clock,
    observe: &mut dyn FnMut(Step<'_>),
) -> Result<Authenticated, AuthError> {
    let token = Token::parse(raw)?;
    observe(Step::Parsed(&token));

    let claim = policy.key_claim_name.as_str();
    let value = token.claims().get(claim);
    observe(Step::KeyClaim {
        claim,
        value,
        claims: token.claims(),
    });
    let key = match value {
        None => {
            return Err(AuthError::MissingKeyClaim {
                claim: claim.into(),
            })
        }
        Some(Value::String(k)) => k.as_str(),
        Some(_) => {
            return Err(AuthError::KeyClaimNotString {
                claim: claim.into(),
            })
        }
    };

    let consumer = consumers.get(key);
    observe(Step::Consumer {
        key,
        consumer: consumer.map(|c| &**c),
    });
    let consumer = consumer.ok_or_else(|| AuthError::UnknownConsumer { key: key.into() })?;

    let expected = consumer.algorithm().as_str();
    observe(Step::Algorithm {
        token: token.alg(),
        expected,
    });
    if token.alg() != expected {
        return Err(AuthError::AlgMismatch {
            token: token.alg().into(),
            expected,
        });
    }
    if token.header().contains_key("crit") {
        return Err(AuthError::CriticalHeader);
    }

    let valid = consumer
        .verify_key
        .verify(token.signing_input(), token.signature());
    observe(Step::Signature { valid });
    if !valid {
        return Err(AuthError::BadSignature);
    }

    let now = clock.now_unix();
    let checked = check_claims(policy, token.claims(), now);
    observe(Step::Claims {
        now,
        result: checked.as_ref().map(|_| ()),
    });
    checked?;

    let revocation = RevocationKey::of(&token);
    Ok(Authenticated {
        consumer: Arc::clone(consumer),
        claims: Arc::new(token.into_claims()),
        revocation,
    })
}

/// Time and presence checks on a verified payload.
pub fn check_claims(
    policy: &JwtPolicy,
    claims: &serde_json::Map<String, Value>,
    now: i64,
) -> Result<(), AuthError> {
    for name in &policy.required_claims {
        if !claims.contains_key(name) {
            return Err(AuthError::MissingClaim(name.clone()));
        }
    }
    let leeway = policy.leeway_seconds;
    let exp = numeric_date(claims, "exp")?;
    if let Some(exp) = exp {
        // RFC 7519 §4.1.4: the current time must be before exp.
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::Expired { exp, now, leeway });
        }
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if now.saturating_add(leeway) < nbf {
            return Err(AuthError::NotYetValid { nbf, now, leeway });
        }
    }
    if policy.max_lifetime_seconds > 0 {
        let exp = exp.ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        let lifetime = exp.saturating_sub(now);
        if lifetime > policy.max_lifetime_seconds {
            return Err(AuthError::LifetimeTooLong {
                lifetime,
                max: policy.max_lifetime_seconds,
            });
        }
    }
    Ok(())
}

/// A NumericDate claim as whole seconds (fractions truncated), if present.
pub fn numeric_date(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| AuthError::NotNumericDate(name.into())),
        Some(_) => Err(AuthError::NotNumericDate(name.into())),
    }
}
