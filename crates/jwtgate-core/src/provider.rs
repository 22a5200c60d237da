//! Identity providers as the core sees them (SPEC §3.6): who they are (the
//! issuer a token names), what they may sign with, which audiences they
//! serve, and the key set they currently publish.
//!
//! What this does not do: fetch, refresh or cache key sets (`jwtgate-keys`
//! does, in the background), or know how a provider was configured (URIs,
//! files, intervals: `jwtgate-config`). The request path only reads the
//! current [`ProviderKeys`] through a [`KeyRing`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::jwt::{Algorithm, JwkSet};

/// One identity provider, compiled from the config.
#[derive(Debug)]
pub struct IdentityProvider {
    /// Position in the [`ProviderDirectory`]; how a [`KeyRing`] is asked.
    pub index: usize,
    pub name: String,
    /// Compared with a token's `iss` exactly.
    pub issuer: String,
    /// The algorithms its tokens may use; never HS* or `none`.
    pub algorithms: Vec<Algorithm>,
    /// `aud` must contain one of these; empty: not checked.
    pub audiences: Vec<String>,
    /// A claim whose value names a consumer (by username).
    pub consumer_claim: Option<String>,
    /// The gateway's client id at the provider (back-channel logout).
    pub client_id: Option<String>,
}

/// Every configured provider, found by issuer.
#[derive(Debug, Default)]
pub struct ProviderDirectory {
    providers: Vec<Arc<IdentityProvider>>,
    by_issuer: HashMap<String, usize>,
}

/// Two providers claim the same issuer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("issuer {issuer:?} is already provider {existing:?}'s")]
pub struct DuplicateIssuer {
    pub issuer: String,
    pub existing: String,
}

impl ProviderDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider; its `index` is set to its position.
    pub fn insert(&mut self, mut provider: IdentityProvider) -> Result<usize, DuplicateIssuer> {
        if let Some(&existing) = self.by_issuer.get(&provider.issuer) {
            let existing = self
                .providers
                .get(existing)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            return Err(DuplicateIssuer {
                issuer: provider.issuer,
                existing,
            });
        }
        let index = self.providers.len();
        provider.index = index;
        self.by_issuer.insert(provider.issuer.clone(), index);
        self.providers.push(Arc::new(provider));
        Ok(index)
    }

    /// The provider whose issuer is exactly `iss`.
    pub fn by_issuer(&self, iss: &str) -> Option<&Arc<IdentityProvider>> {
        self.providers.get(*self.by_issuer.get(iss)?)
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<IdentityProvider>> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn get(&self, index: usize) -> Option<&Arc<IdentityProvider>> {
        self.providers.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<IdentityProvider>> {
        self.providers.iter()
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}

/// A provider's key set as last fetched (or read from its file).
#[derive(Debug)]
pub struct ProviderKeys {
    pub set: Arc<JwkSet>,
    /// Changes whenever the usable keys change (not on a refresh that
    /// brought the same keys): what verified tokens are remembered against.
    pub generation: u64,
    /// When the set was last fetched successfully (Unix seconds).
    pub fetched_at: i64,
    /// Unusable once `fetched_at + max_stale` has passed; `None`: never
    /// (a `jwks_file`, reloaded with the config).
    pub max_stale: Option<i64>,
    /// Where it came from, for logs and `token explain`.
    pub source: String,
}

impl ProviderKeys {
    /// Whether the set may still be used at `now` (SPEC §3.6: a key set
    /// older than `max_stale_seconds` is not).
    pub fn usable_at(&self, now: i64) -> bool {
        self.max_stale
            .is_none_or(|max| now <= self.fetched_at.saturating_add(max))
    }

    pub fn age(&self, now: i64) -> i64 {
        now.saturating_sub(self.fetched_at).max(0)
    }
}

/// Where the request path reads each provider's current key set.
pub trait KeyRing: Send + Sync {
    /// The current keys of the provider at `index`, if any were ever had.
    fn current(&self, index: usize) -> Option<Arc<ProviderKeys>>;
}

/// A key ring with no keys at all (no providers, or none fetched).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoKeys;

impl KeyRing for NoKeys {
    fn current(&self, _index: usize) -> Option<Arc<ProviderKeys>> {
        None
    }
}
