//! The JWT policy of one route: where the token comes from, which requests
//! need one, and the ordered checks of SPEC §3.1 that turn a raw token into an
//! authenticated consumer or a typed refusal.
//!
//! What this does not do: read requests, consult the revocation store, or build
//! responses. The data plane does those around [`authenticate`].

mod authenticate;
pub mod authorize;
pub mod cache;
#[cfg(test)]
mod provider_tests;
pub mod sources;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use self::authenticate::{
    authenticate, authenticate_cached, authenticate_traced, check_audience, check_claims,
    numeric_date, Step,
};
use self::authorize::Authorization;
use crate::claims::ClaimPath;
use crate::consumer::{Consumer, ConsumerRegistry};
use crate::jwt::{KeyMiss, RevocationKey, TokenError};
use crate::path::{Method, PathRules, RuleEntry};
use crate::provider::{IdentityProvider, KeyRing, NoKeys, ProviderDirectory};

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
    /// Claims a token must hold, as claim paths (`realm_access.roles`).
    pub required_claims: Vec<ClaimPath>,
    pub leeway_seconds: i64,
    /// 0 = unlimited.
    pub max_lifetime_seconds: i64,
    pub realm: String,
    /// claim path -> upstream header name (lower-case).
    pub forward_claims: Vec<(ClaimPath, String)>,
    /// The upstream header that carries the verified token's payload as
    /// it came, base64url (Envoy's `forward_payload_header`); lower-case.
    pub forward_payload_header: Option<String>,
    pub scope: PathScope,
    /// Set when `use_jwt_blacklist_revoking` is on and a logout path is given.
    pub logout: Option<Logout>,
    pub protection: Protection,
    /// Identity providers whose tokens this route accepts (indices into
    /// the [`ProviderDirectory`]), sorted.
    pub providers: Vec<usize>,
    /// Tokens that no provider issued go the consumer-key way (SPEC §3.1).
    pub consumers: bool,
    /// Non-empty: replaces the providers' audiences on this route.
    pub audiences: Vec<String>,
    /// `authorize` rules and `authorize_default` (SPEC §3.7); `None` when
    /// there are no rules and the default allows: nothing to decide.
    pub authorize: Option<Authorization>,
    /// The consumer a request carrying no token goes upstream as (SPEC
    /// §3.8).
    pub anonymous: Option<Arc<Consumer>>,
    /// `logout_everywhere_path` (SPEC §3.10): a valid token there cuts off
    /// its subject.
    pub logout_everywhere: Option<Logout>,
}

impl Default for JwtPolicy {
    fn default() -> Self {
        JwtPolicy {
            key_claim_name: "key".into(),
            sources: TokenSources::default(),
            hide_credentials: false,
            required_claims: vec![ClaimPath::exp()],
            leeway_seconds: 0,
            max_lifetime_seconds: 0,
            realm: "jwtgate".into(),
            forward_claims: Vec::new(),
            forward_payload_header: None,
            scope: PathScope::All,
            logout: None,
            protection: Protection::default(),
            providers: Vec::new(),
            consumers: true,
            audiences: Vec::new(),
            authorize: None,
            anonymous: None,
            logout_everywhere: None,
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
    /// The request is the route's logout-everywhere request.
    pub logout_everywhere: bool,
}

impl JwtPolicy {
    /// Whether `method path` (the normalised path) needs a token. A logout
    /// request always does, whatever the lists say.
    pub fn requirement(&self, method: Method, path: &str) -> Requirement<'_> {
        let logout = self
            .logout
            .as_ref()
            .is_some_and(|l| l.matches(method, path));
        let logout_everywhere = self
            .logout_everywhere
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
            token_required: listed || logout || logout_everywhere,
            rule,
            logout: logout && !logout_everywhere,
            logout_everywhere,
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
    #[error("{0}")]
    WrongIssuer(String),
    #[error("token alg {token:?} is not among provider {provider:?}'s algorithms ({allowed})")]
    AlgNotAllowed {
        token: String,
        provider: String,
        allowed: String,
    },
    #[error("provider {provider:?}: {miss}")]
    NoKey {
        /// The provider's index: where a refetch is asked for an unknown kid.
        index: usize,
        provider: String,
        miss: KeyMiss,
    },
    #[error("provider {provider:?} has no usable key set ({why})")]
    KeysUnavailable {
        /// The provider's place in the config (its key ring slot).
        index: usize,
        provider: String,
        why: String,
    },
    #[error("{0}")]
    WrongAudience(String),
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
    /// A provider's logout token (typed `logout+jwt`, or with the
    /// back-channel `events` member) presented as an access token.
    #[error(
        "a logout token is not an access token (typ logout+jwt, or the back-channel events member)"
    )]
    LogoutToken,
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
    #[error("claim {0:?} names no subject (a string without a space or tab at either end, or an integer)")]
    NotASubject(String),
    #[error("token lifetime {lifetime}s exceeds max_lifetime_seconds {max}")]
    LifetimeTooLong { lifetime: i64, max: i64 },
    #[error("token has been revoked")]
    Revoked,
    /// A subject cut-off refuses it (SPEC §3.10); which one.
    #[error("token refused by a cut-off: {0}")]
    CutOff(String),
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
            AuthError::Revoked | AuthError::CutOff(_) => "JWT token has been revoked",
            _ => "failed to verify jwt",
        }
    }

    /// Short stable label for metrics and the access log.
    pub fn outcome(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            // A `crit` header is one the gateway cannot read, not a
            // wrong algorithm (an outside audit found it counted as one).
            AuthError::Malformed(_) | AuthError::SeveralTokens(_) | AuthError::CriticalHeader => {
                "malformed"
            }
            AuthError::MissingKeyClaim { .. } | AuthError::KeyClaimNotString { .. } => {
                "missing_key_claim"
            }
            AuthError::UnknownConsumer { .. } => "unknown_consumer",
            AuthError::LogoutToken => "wrong_type",
            AuthError::AlgMismatch { .. } | AuthError::AlgNotAllowed { .. } => "wrong_alg",
            AuthError::WrongIssuer(_) => "wrong_issuer",
            AuthError::WrongAudience(_) => "wrong_audience",
            AuthError::NoKey { miss, .. } => match miss {
                KeyMiss::Unfit { .. } => "wrong_alg",
                KeyMiss::UnknownKid(_)
                | KeyMiss::Unusable { .. }
                | KeyMiss::KidNotString
                | KeyMiss::NoKeyForAlg(_)
                | KeyMiss::Ambiguous { .. } => "unknown_kid",
            },
            AuthError::KeysUnavailable { .. } => "keys_unavailable",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired { .. } => "expired",
            AuthError::NotYetValid { .. } => "not_yet_valid",
            AuthError::MissingClaim(_)
            | AuthError::NotNumericDate(_)
            | AuthError::NotASubject(_) => "bad_claims",
            AuthError::LifetimeTooLong { .. } => "lifetime_too_long",
            AuthError::Revoked | AuthError::CutOff(_) => "revoked",
        }
    }

    /// Whether a token was presented (for `error="invalid_token"`).
    pub fn token_presented(&self) -> bool {
        !matches!(self, AuthError::Missing)
    }

    /// The provider whose keys are missing or too old to use.
    pub fn unusable_keys(&self) -> Option<usize> {
        match self {
            AuthError::KeysUnavailable { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The kid a provider's key set lacks: the one case where the request
    /// path may wait for a refetch (SPEC §3.6).
    pub fn unknown_kid(&self) -> Option<(usize, &str)> {
        match self {
            AuthError::NoKey {
                index,
                miss: KeyMiss::UnknownKid(kid) | KeyMiss::Unusable { kid, .. },
                ..
            } => Some((*index, kid)),
            _ => None,
        }
    }
}

/// Who a verified token speaks for.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A consumer's own credential signed it (SPEC §3.1).
    Consumer(Arc<Consumer>),
    /// An identity provider signed it (SPEC §3.6); `consumer` when the
    /// provider's `consumer_claim` names a configured consumer.
    Provider {
        provider: Arc<IdentityProvider>,
        consumer: Option<Arc<Consumer>>,
        /// The key-set generation it was verified with.
        generation: u64,
    },
    /// No token at all, on a route with an `anonymous_consumer` (SPEC
    /// §3.8): the request runs as that consumer, with no claims.
    Anonymous(Arc<Consumer>),
}

impl Principal {
    /// The consumer the request runs as, if any.
    pub fn consumer(&self) -> Option<&Arc<Consumer>> {
        match self {
            Principal::Consumer(c) | Principal::Anonymous(c) => Some(c),
            Principal::Provider { consumer, .. } => consumer.as_ref(),
        }
    }

    pub fn provider(&self) -> Option<&Arc<IdentityProvider>> {
        match self {
            Principal::Consumer(_) | Principal::Anonymous(_) => None,
            Principal::Provider { provider, .. } => Some(provider),
        }
    }
}

/// What authentication consults besides the token: the consumers, the
/// identity providers, and the providers' current keys.
#[derive(Clone, Copy)]
pub struct AuthContext<'a> {
    pub consumers: &'a ConsumerRegistry,
    pub providers: &'a ProviderDirectory,
    pub keys: &'a dyn KeyRing,
}

static NO_PROVIDERS: std::sync::LazyLock<ProviderDirectory> =
    std::sync::LazyLock::new(ProviderDirectory::default);

impl<'a> AuthContext<'a> {
    /// Consumers only: no identity provider is configured.
    pub fn consumers_only(consumers: &'a ConsumerRegistry) -> Self {
        AuthContext {
            consumers,
            providers: &NO_PROVIDERS,
            keys: &NoKeys,
        }
    }
}

/// A token that passed every check but revocation.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub claims: Arc<crate::claims::Claims>,
    /// Where the token stands in the blacklist.
    pub revocation: RevocationKey,
}
