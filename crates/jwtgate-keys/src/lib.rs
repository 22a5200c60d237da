//! Identity providers' key sets (SPEC §3.6), beside the revocation store:
//! fetched from OIDC discovery or a `jwks_uri` over HTTPS, refreshed in the
//! background, kept on disk for restarts during an IdP outage, and fetched
//! early at most once per interval when a token names an unknown `kid`.
//!
//! [`KeyService`] owns one [`Keeper`] per provider for the life of the
//! process; each config version gets a [`ProviderKeyRing`], the core's
//! [`KeyRing`] over the keepers of the providers it configures. A provider
//! whose origin (issuer, key source, algorithms, trust) did not change
//! keeps its keeper, and its keys, across reloads.
//!
//! What this crate does not do: parse key sets (the core's `JwkSet`) or
//! verify tokens.

pub mod discovery;
pub mod disk;
pub mod fetch;
mod keeper;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jwtgate_config::{Config, KeySource, ProviderSource};
use jwtgate_core::jwt::JwkSet;
use jwtgate_core::provider::{KeyRing, ProviderKeys};
use jwtgate_state::StateDir;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use keeper::{Keeper, KidMiss, ProviderStatus};

/// Every provider's keeper, by name.
pub struct KeyService {
    state: StateDir,
    keepers: Mutex<HashMap<String, Running>>,
}

struct Running {
    keeper: Arc<Keeper>,
    source: ProviderSource,
    task: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl KeyService {
    /// Key caches go to `state`'s `providers/` directory.
    pub fn new(state: StateDir) -> Arc<KeyService> {
        Arc::new(KeyService {
            state,
            keepers: Mutex::new(HashMap::new()),
        })
    }

    /// Brings the keepers in line with `config` (starting the fetch tasks
    /// of new providers on the current tokio runtime, stopping those of
    /// removed ones) and returns the key ring of this config version.
    /// Never waits for a fetch: providers never block a start or a reload.
    pub fn apply(&self, config: &Config) -> Arc<ProviderKeyRing> {
        let mut keepers = self.keepers.lock().unwrap_or_else(|p| p.into_inner());
        let mut ring = Vec::with_capacity(config.provider_sources.len());
        let mut wanted = Vec::new();
        // Providers whose key cache goes: removed, or on a key file now
        // (deleted once the lock is let go).
        let mut removed = Vec::new();
        for source in &config.provider_sources {
            wanted.push(source.name.clone());
            let reuse = keepers
                .get(&source.name)
                .filter(|r| r.source.same_origin(source) && is_file(&r.source) == is_file(source));
            if let Some(running) = reuse {
                if let Err(e) = running.keeper.update(source.clone()) {
                    warn!(provider = %source.name, error = %e, "provider settings not applied");
                }
                ring.push(Some(Arc::clone(&running.keeper)));
                if let Some(r) = keepers.get_mut(&source.name) {
                    r.source = source.clone();
                }
                continue;
            }
            // Replaced (another origin, or a file now): the old keeper
            // writes no more, and a file provider keeps no cache.
            if let Some(old) = keepers.get(&source.name) {
                old.keeper.retire();
                if is_file(source) {
                    removed.push(source.name.clone());
                }
            }
            let cache = (!is_file(source))
                .then(|| disk::KeyCache::new(self.state.provider_keys(&source.name)));
            let keeper = match Keeper::new(source.clone(), cache) {
                Ok(k) => k,
                Err(e) => {
                    // Only a broken ca_file gets here, and config load reads
                    // it first; keep serving the other providers. Its slot
                    // stays, empty: the ring is read by the provider's
                    // place in the config, and a slot skipped would hand
                    // every later provider the next one's keys.
                    warn!(provider = %source.name, error = %e, "provider cannot fetch keys");
                    ring.push(None);
                    continue;
                }
            };
            let task = keeper
                .fetches()
                .then(|| tokio::spawn(Arc::clone(&keeper).run()));
            ring.push(Some(Arc::clone(&keeper)));
            keepers.insert(
                source.name.clone(),
                Running {
                    keeper,
                    source: source.clone(),
                    task,
                },
            );
        }
        removed.extend(
            keepers
                .iter()
                .filter(|(name, _)| !wanted.contains(*name))
                .map(|(name, r)| {
                    r.keeper.retire();
                    name.clone()
                }),
        );
        keepers.retain(|name, _| wanted.contains(name));
        drop(keepers);
        for name in removed {
            self.forget_cache(&name);
        }
        Arc::new(ProviderKeyRing { keepers: ring })
    }

    /// Removes a deleted provider's key cache: its keys must not outlive
    /// it in `state_dir` (an outside soak audit found one file left per
    /// provider ever deleted), nor greet a new provider of the same name.
    fn forget_cache(&self, name: &str) {
        let path = self.state.provider_keys(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                info!(provider = %name, path = %path.display(), "key cache of a removed provider deleted")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(provider = %name, path = %path.display(), error = %e, "key cache of a removed provider not deleted")
            }
        }
    }

    /// Whether the running config holds a provider of this name.
    pub fn runs(&self, name: &str) -> bool {
        self.keepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    /// Each provider's status, by name (for `/status`).
    pub fn statuses(&self) -> Vec<(String, ProviderStatus)> {
        let now = keeper::unix_now();
        let keepers = self.keepers.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = keepers
            .iter()
            .map(|(name, r)| (name.clone(), r.keeper.status(now)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Sets `jwtgate_jwks_age_seconds` for every provider (before a scrape).
    pub fn record_ages(&self) {
        for (name, status) in self.statuses() {
            if let Some(age) = status.age_seconds {
                metrics::gauge!("jwtgate_jwks_age_seconds", "provider" => name).set(age as f64);
            }
        }
    }
}

fn is_file(source: &ProviderSource) -> bool {
    matches!(source.keys, KeySource::File { .. })
}

/// One config version's view of the providers' keys: provider `i` of the
/// config is `keepers[i]` (`None`: it has no keeper, and no keys).
pub struct ProviderKeyRing {
    keepers: Vec<Option<Arc<Keeper>>>,
}

impl ProviderKeyRing {
    /// A ring with no providers.
    pub fn empty() -> Arc<ProviderKeyRing> {
        Arc::new(ProviderKeyRing {
            keepers: Vec::new(),
        })
    }

    /// See [`Keeper::refetch_for_unknown_kid`]; `(Throttled, false)` for an
    /// index this ring does not have.
    pub async fn refetch_for_unknown_kid(&self, index: usize, kid: &str) -> (KidMiss, bool) {
        match self.keeper(index) {
            Some(k) => k.refetch_for_unknown_kid(kid).await,
            None => (KidMiss::Throttled, false),
        }
    }

    /// See [`Keeper::refetch_for_unusable_keys`].
    pub fn refetch_for_unusable_keys(&self, index: usize) -> KidMiss {
        self.keeper(index)
            .map_or(KidMiss::Throttled, |k| k.refetch_for_unusable_keys())
    }

    pub fn keeper(&self, index: usize) -> Option<&Arc<Keeper>> {
        self.keepers.get(index)?.as_ref()
    }
}

impl KeyRing for ProviderKeyRing {
    fn current(&self, index: usize) -> Option<Arc<ProviderKeys>> {
        self.keeper(index)?.current()
    }
}

/// For one-shot tools (`token explain`): the provider's keys from its disk
/// cache if still usable, else fetched once now. The answer says which.
pub async fn load_once(source: &ProviderSource, state: &StateDir) -> Result<ProviderKeys, String> {
    if let KeySource::File { path, set } = &source.keys {
        return Ok(ProviderKeys {
            set: Arc::clone(set),
            generation: 0,
            fetched_at: keeper::unix_now(),
            max_stale: None,
            source: path.display().to_string(),
        });
    }
    // Read, not written: this is a look from outside the node (`token
    // explain`), often as another user than the service's.
    let cache = disk::KeyCache::read_only(state.provider_keys(&source.name));
    let keeper = Keeper::new(source.clone(), Some(cache)).map_err(|e| e.to_string())?;
    if let Some(keys) = keeper.current() {
        if keys.usable_at(keeper::unix_now()) {
            return Arc::try_unwrap(keys).or_else(|k| Ok(clone_keys(&k)));
        }
    }
    keeper.fetch_now().await?;
    keeper
        .current()
        .map(|k| clone_keys(&k))
        .ok_or_else(|| "no key set".to_owned())
}

fn clone_keys(k: &ProviderKeys) -> ProviderKeys {
    ProviderKeys {
        set: Arc::clone(&k.set),
        generation: k.generation,
        fetched_at: k.fetched_at,
        max_stale: k.max_stale,
        source: k.source.clone(),
    }
}

/// A JWK Set parsed for `source`'s algorithms (for tools and tests).
pub fn parse_for(source: &ProviderSource, document: &[u8]) -> Result<JwkSet, String> {
    JwkSet::parse(document, &source.algorithms).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outside audit, reading the code: a provider whose keeper could
    /// not be made was skipped in the ring, which is read by a provider's
    /// place in the config, so every later provider would have been handed
    /// the next one's keys. Its place stays, without keys.
    #[test]
    fn a_provider_without_a_keeper_keeps_its_place_in_the_ring() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/jwks/rsa.json");
        let set = format!("{{\"keys\": [{}]}}", std::fs::read_to_string(jwks).unwrap());
        std::fs::write(dir.path().join("keys.json"), set).unwrap();
        let text = "listen: \"127.0.0.1:0\"\nproviders:\n  - name: broken\n    issuer: https://a.example\n    jwks_uri: https://a.example/keys\n  - name: filed\n    issuer: https://b.example\n    jwks_file: keys.json\nroutes: []\n";
        let mut config = jwtgate_config::load_str(text, dir.path(), &|_| None).unwrap();
        // What config load refuses, given anyway: a ca_file no TLS
        // client can take.
        config.provider_sources[0].ca_pem =
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());
        let service = KeyService::new(StateDir::new(dir.path().join("state")));
        let ring = service.apply(&config);
        assert!(ring.current(0).is_none(), "the broken provider has keys");
        let filed = ring.current(1).expect("the second provider's keys");
        assert_eq!(
            filed.source,
            dir.path().join("keys.json").display().to_string()
        );
        assert!(ring.current(2).is_none());
    }
}
