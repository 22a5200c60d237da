//! A bounded cache of verified tokens. Clients send the same token many
//! times; an RSA or ECDSA verification costs tens of microseconds, a lookup
//! well under one. A hit skips parsing, consumer lookup and the signature
//! check, but never the time checks: `exp`, `nbf`, required claims and
//! lifetime are checked again on every hit (and the caller still checks the
//! blacklist). A token whose signature holds is remembered even when its
//! claims fail (expired, not yet valid, another audience, a claim in the
//! wrong shape): a hit judges the claims again and refuses it without the
//! crypto. Bad signatures are remembered too, so that refusing a replayed
//! forgery, or a client retrying an expired token, costs no more than
//! accepting a good token.
//!
//! Safety: entries are found by a keyed hash (foldhash with a random seed per
//! cache, so collisions cannot be aimed; a tenth of SipHash's cost on a
//! token) and then compared on the whole token text; a
//! cache lives in one config version, so a changed consumer or key is never
//! served from an old entry; an identity provider's keys change within a
//! version, so its entries carry the key-set generation they were checked
//! against, and a hit from another generation is verified again.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use super::Principal;
use crate::claims::Claims;
use crate::jwt::RevocationKey;

const SHARDS: usize = 16;

/// What is remembered about one token.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Signature valid for this principal (a consumer, or a provider with
    /// the key-set generation it was checked against); claims as decoded,
    /// and the token's blacklist keys, so a hit hashes nothing.
    Verified {
        principal: Principal,
        claims: Arc<Claims>,
        revocation: RevocationKey,
    },
    /// The signature did not verify: with a consumer's key (`None`), or with
    /// provider `index`'s keys of a `generation` (forgotten when they change).
    BadSignature { keys: Option<(usize, u64)> },
}

#[derive(Debug)]
struct Cached {
    token: Box<str>,
    /// The key claim name the consumer was resolved with (routes differ).
    key_claim: Box<str>,
    verdict: Verdict,
}

/// The maps are keyed by the token's keyed hash already: hashing that
/// again would be wasted work.
#[derive(Debug, Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Arc<Cached>, BuildHasherDefault<PreHashed>>;

#[derive(Debug)]
pub struct VerifiedCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: foldhash::quality::RandomState,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(8192)
    }
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    fn shard(&self, hash: u64) -> Option<&Mutex<Shard>> {
        // SHARDS is a power of two. Middle bits pick the shard: the map
        // inside indexes by the low bits and tags by the top seven.
        self.shards.get((hash >> 32) as usize & (SHARDS - 1))
    }

    pub fn get(&self, token: &str, key_claim: &str) -> Option<Verdict> {
        if self.per_shard == 0 {
            return None;
        }
        let hash = self.hasher.hash_one(token);
        let shard = self.shard(hash)?.lock().ok()?;
        let hit = shard.get(&hash)?;
        (&*hit.token == token && &*hit.key_claim == key_claim).then(|| hit.verdict.clone())
    }

    pub fn insert(&self, token: &str, key_claim: &str, verdict: Verdict) {
        if self.per_shard == 0 {
            return;
        }
        let hash = self.hasher.hash_one(token);
        let Some(Ok(mut shard)) = self.shard(hash).map(Mutex::lock) else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            // Full: drop an arbitrary entry. Hash order is random, so this is
            // random eviction, O(1), and bounded memory.
            if let Some(&victim) = shard.keys().next() {
                shard.remove(&victim);
            }
        }
        shard.insert(
            hash,
            Arc::new(Cached {
                token: token.into(),
                key_claim: key_claim.into(),
                verdict,
            }),
        );
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok())
            .map(|s| s.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
