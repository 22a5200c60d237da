//! One immutable version of the running configuration, as the data plane
//! uses it. A reload builds a new [`Gateway`] off the hot path and swaps it in
//! whole; requests in flight keep the version they started with.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use jwtgate_config::Config;
use jwtgate_core::clock::SystemClock;
use jwtgate_core::consumer::{Consumer, ConsumerRegistry};
use jwtgate_core::policy::cache::VerifiedCache;
use jwtgate_core::policy::AuthContext;
use jwtgate_core::provider::{IdentityProvider, ProviderDirectory};
use jwtgate_keys::ProviderKeyRing;
use jwtgate_store::Revocations;

use crate::headers::OwnedHeaders;
use crate::router::Router;

pub struct Gateway {
    pub router: Router,
    pub consumers: Arc<ConsumerRegistry>,
    /// Identity providers, and their keys as the background fetcher keeps
    /// them (the keys change within a config version).
    pub providers: Arc<ProviderDirectory>,
    pub keys: Arc<ProviderKeyRing>,
    /// The blacklist outlives config versions: one per process.
    pub revocations: Arc<Revocations>,
    /// Tokens already verified under THIS config version; a reload starts
    /// afresh, so a changed consumer key is never served from the cache.
    pub verified: VerifiedCache,
    pub clock: SystemClock,
    /// Header names only the gateway may set, whatever the route (SPEC
    /// §3.11): identity headers and every route's `forward_claims`.
    pub owned_headers: OwnedHeaders,
    /// The largest `leeway_seconds` of any route: a revocation lasts until
    /// `exp` plus this, so that no route can still accept the token, and
    /// at least `jwt::REVOCATION_GRACE_SECONDS` (`jwt::revocation_expiry`).
    pub max_leeway: i64,
    /// How long a subject cut-off is kept (seconds).
    pub subject_retention: i64,
    /// Back-channel logout paths (SPEC §3.10) -> provider index: the
    /// gateway's, whatever the routes say.
    pub backchannel: HashMap<String, usize>,
    /// `client_body_timeout_ms`.
    pub body_timeout: std::time::Duration,
    /// Each consumer's identity headers, keyed by the consumer's address in
    /// `consumers` (which this version holds): built here, not per request.
    identities: HashMap<usize, IdentityHeaders, foldhash::fast::RandomState>,
    /// Each provider's issuer as an `X-Credential-Identifier` value, by
    /// provider index; `None` when the issuer cannot be a header value.
    issuers: Vec<Option<HeaderValue>>,
}

/// The headers that tell the upstream who the consumer is (SPEC §3.2).
/// A value a header cannot carry is left out.
pub struct IdentityHeaders {
    pub username: Option<HeaderValue>,
    pub custom_id: Option<HeaderValue>,
    pub credential: Option<HeaderValue>,
}

impl IdentityHeaders {
    pub fn new(c: &Consumer) -> Self {
        IdentityHeaders {
            username: HeaderValue::from_str(&c.username).ok(),
            custom_id: c
                .custom_id
                .as_deref()
                .and_then(|id| HeaderValue::from_str(id).ok()),
            credential: c
                .credential
                .as_ref()
                .and_then(|cr| HeaderValue::from_str(&cr.key).ok()),
        }
    }
}

impl Gateway {
    /// `keys`: the providers' key ring for this config
    /// (`KeyService::apply`); [`ProviderKeyRing::empty`] when it has none.
    pub fn new(config: &Config, revocations: Arc<Revocations>, keys: Arc<ProviderKeyRing>) -> Self {
        let policies = || config.routes.iter().filter_map(|r| r.jwt.as_deref());
        Gateway {
            router: Router::new(&config.routes, config.client_body_timeout),
            consumers: Arc::clone(&config.consumers),
            providers: Arc::clone(&config.providers),
            keys,
            revocations,
            verified: VerifiedCache::default(),
            clock: SystemClock,
            owned_headers: OwnedHeaders::new(
                policies().flat_map(|p| {
                    let claims = p.forward_claims.iter().map(|(_, h)| h.as_str());
                    claims.chain(p.forward_payload_header.as_deref())
                }),
                policies().filter_map(|p| p.sources.header.as_deref()),
            ),
            max_leeway: policies().map(|p| p.leeway_seconds).max().unwrap_or(0),
            subject_retention: i64::try_from(config.subject_retention.as_secs())
                .unwrap_or(i64::MAX),
            backchannel: config
                .provider_sources
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let path = s.backchannel_logout_path.as_deref()?;
                    Some((jwtgate_core::path::match_form(path).into_owned(), i))
                })
                .collect(),
            body_timeout: config.client_body_timeout,
            identities: config
                .consumers
                .iter()
                .map(|c| (Arc::as_ptr(c) as usize, IdentityHeaders::new(c)))
                .collect(),
            issuers: config
                .providers
                .iter()
                .map(|p| HeaderValue::from_str(&p.issuer).ok())
                .collect(),
        }
    }

    /// What authentication consults in this version.
    pub fn auth_context(&self) -> AuthContext<'_> {
        AuthContext {
            consumers: &self.consumers,
            providers: &self.providers,
            keys: &*self.keys,
        }
    }

    /// `provider`'s issuer as a header value.
    pub fn issuer_header(&self, provider: &IdentityProvider) -> Option<&HeaderValue> {
        self.issuers.get(provider.index)?.as_ref()
    }

    /// `consumer`'s prebuilt identity headers, if it belongs to this version.
    pub fn identity_headers(&self, consumer: &Arc<Consumer>) -> Option<&IdentityHeaders> {
        self.identities.get(&(Arc::as_ptr(consumer) as usize))
    }
}
