//! The in-memory blacklist every node checks on the request path: a hash set
//! of digests with their expiry. Reads take a shared lock and do one probe.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;

use crate::{Digest, Entry};

/// Digests are SHA-256 output, so no need for SipHash: fold all 32 bytes,
/// eight at a time, with a multiply (FxHash-style). Every byte counts, so
/// entries that are not uniform (bulk imports, entries written to Redis by
/// other tools) still spread over the buckets.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        // murmur3's fmix64: every input bit reaches the low bits, which pick
        // the bucket (a multiply alone only carries bits upwards).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
}

type Map = HashMap<Digest, i64, BuildHasherDefault<DigestHasher>>;

/// Keeps the later expiry of `entry`'s digest; true when that is `entry`'s
/// and it was not held so long already.
fn keep_later(map: &mut Map, entry: Entry) -> bool {
    match map.get_mut(&entry.digest) {
        Some(exp) if *exp >= entry.expires_at => false,
        Some(exp) => {
            *exp = entry.expires_at;
            true
        }
        None => {
            map.insert(entry.digest, entry.expires_at);
            true
        }
    }
}

#[derive(Default)]
pub struct Blacklist {
    entries: RwLock<Map>,
}

impl Blacklist {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `digest` is revoked at `now`.
    pub fn contains(&self, digest: &Digest, now: i64) -> bool {
        self.contains_any(std::slice::from_ref(digest), now)
    }

    /// Whether any of `digests` (one token's keys) is revoked at `now`:
    /// one lock, one probe per digest.
    pub fn contains_any(&self, digests: &[Digest], now: i64) -> bool {
        // A poisoned lock means a writer panicked mid-insert; the map itself
        // is still a valid map, so keep answering from it.
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        digests
            .iter()
            .any(|d| map.get(d).is_some_and(|&exp| exp > now))
    }

    /// Until when any of `digests` is revoked, if one is at `now`: the
    /// latest of their expiries. For reports (`token explain`); the request
    /// path asks [`Self::contains_any`].
    pub fn revoked_until(&self, digests: &[Digest], now: i64) -> Option<i64> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        digests
            .iter()
            .filter_map(|d| map.get(d).copied())
            .filter(|&exp| exp > now)
            .max()
    }

    /// Every entry alive at `now` (for the local snapshot).
    pub fn live_entries(&self, now: i64) -> Vec<Entry> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, &exp)| exp > now)
            .map(|(&digest, &expires_at)| Entry { digest, expires_at })
            .collect()
    }

    /// Adds `entry` (a later expiry wins); true when it refuses more than
    /// before: a digest not held, or held until earlier.
    pub fn insert(&self, entry: Entry) -> bool {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        keep_later(&mut map, entry)
    }

    /// [`Self::insert`] for each; true when any refuses more.
    pub fn extend(&self, entries: impl IntoIterator<Item = Entry>) -> bool {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let mut more = false;
        for e in entries {
            more |= keep_later(&mut map, e);
        }
        more
    }

    /// Drops entries expired at `now`.
    pub fn purge(&self, now: i64) -> usize {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|_, exp| *exp > now);
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_sharing_a_prefix_do_not_collide() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<DigestHasher>::default();
        let mut hashes = std::collections::HashSet::new();
        for i in 0u32..10_000 {
            let mut d = [0u8; 32];
            d[28..].copy_from_slice(&i.to_be_bytes());
            hashes.insert(build.hash_one(d) & 0xffff);
        }
        // 10 000 keys over 65 536 low-bit buckets: nearly all distinct.
        assert!(hashes.len() > 9_000, "{}", hashes.len());
    }

    #[test]
    fn entries_expire() {
        let b = Blacklist::new();
        b.insert(Entry {
            digest: [1; 32],
            expires_at: 100,
        });
        assert!(b.contains(&[1; 32], 99));
        assert!(!b.contains(&[1; 32], 100));
        assert!(!b.contains(&[2; 32], 0));
        assert_eq!(b.purge(100), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn revoked_until_is_the_latest_live_expiry_of_the_tokens_digests() {
        let b = Blacklist::new();
        for (digest, expires_at) in [([1; 32], 100), ([2; 32], 300), ([3; 32], 50)] {
            b.insert(Entry { digest, expires_at });
        }
        assert_eq!(b.revoked_until(&[[1; 32], [2; 32]], 60), Some(300));
        assert_eq!(
            b.revoked_until(&[[3; 32], [1; 32]], 60),
            Some(100),
            "expired entries do not count"
        );
        assert_eq!(b.revoked_until(&[[3; 32]], 60), None);
        assert_eq!(b.revoked_until(&[[9; 32]], 0), None);
    }
}
