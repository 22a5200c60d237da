//! A bounded cache of verified tokens. Clients send the same token many
//! times; an RSA or ECDSA verification costs tens of microseconds, a lookup
//! well under one. A hit skips parsing, consumer lookup and the signature
//! check, but never the time checks: `exp`, `nbf`, required claims and
//! lifetime are checked again on every hit (and the caller still checks the
//! blacklist). Bad signatures are remembered too, so that refusing a replayed
//! forgery costs no more than accepting a good token.
//!
//! Safety: entries are found by a keyed hash (SipHash with a random key, so
//! collisions cannot be aimed) and then compared on the whole token text; a
//! cache lives in one config version, so a changed consumer or key is never
//! served from an old entry.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::consumer::Consumer;

const SHARDS: usize = 16;

/// What is remembered about one token.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Signature valid for this consumer; claims as decoded, and the
    /// token's SHA-256 (the blacklist key), so a hit hashes nothing.
    Verified {
        consumer: Arc<Consumer>,
        claims: Arc<Map<String, Value>>,
        digest: [u8; 32],
    },
    /// The signature did not verify.
    BadSignature,
}

#[derive(Debug)]
struct Cached {
    token: Box<str>,
    /// The key claim name the consumer was resolved with (routes differ).
    key_claim: Box<str>,
    verdict: Verdict,
}

#[derive(Debug)]
pub struct VerifiedCache {
    shards: Vec<Mutex<HashMap<u64, Arc<Cached>>>>,
    per_shard: usize,
    hasher: RandomState,
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
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, hash: u64) -> Option<&Mutex<HashMap<u64, Arc<Cached>>>> {
        // SHARDS is a power of two; the low bits pick the shard.
        self.shards.get((hash as usize) & (SHARDS - 1))
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
