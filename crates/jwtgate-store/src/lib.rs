//! The token blacklist (SPEC §3.4).
//!
//! [`RevocationStore`] is where revocations live durably: [`embedded`] (redb
//! on local disk, the zero-config default), [`redis`] (standalone) or Redis
//! Cluster. Every node also keeps the live blacklist in memory
//! ([`Blacklist`]), fed by [`Revocations`]' sync task, so that checking a
//! token on the request path never waits for the network.
//!
//! What this crate does not do: decide which requests are logouts, or hash
//! tokens (the core's `token_digest`); it stores 32-byte digests with the
//! instant they stop mattering.

mod blacklist;
pub mod cutoffs;
pub mod embedded;
mod gate;
pub mod redis;
pub mod snapshot;
mod sync;

use std::sync::Arc;
use std::time::Duration;

pub use blacklist::Blacklist;
pub use cutoffs::{Cutoff, CutoffTable, Owner, Subject, SubjectKey, TokenSubject};
pub use gate::OpGate;
pub use snapshot::SnapshotFile;
pub use sync::{LoadedFrom, Revocations, StoreHealth, SyncSettings};

use jwtgate_config::StoreConfig;

/// SHA-256 of a token. The store never sees the token itself.
pub type Digest = [u8; 32];

/// One blacklist entry: the token's digest and when it expires (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub digest: Digest,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// pool_size operations in flight and pool_backlog already waiting.
    #[error("store busy: pool and backlog are full")]
    Busy,
    #[error("store operation timed out after {0:?}")]
    Timeout(Duration),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered, with an error: out of memory, a command the
    /// user may not run, a script error. The connection is fine.
    #[error("store refused the operation: {0}")]
    Refused(String),
    /// Written to the primary, but no replica acknowledged it in time.
    #[error("not acknowledged by any replica")]
    NotReplicated,
}

impl StoreError {
    /// Redis's `WRONGTYPE`: the key holds another kind of value than the
    /// gateway keeps there (written by something else).
    pub fn is_wrong_type(&self) -> bool {
        matches!(self, StoreError::Refused(m) if m.contains("WRONGTYPE"))
    }

    /// The same error with the key it concerns named first.
    pub fn at_key(self, key: &str) -> StoreError {
        match self {
            StoreError::Refused(m) => StoreError::Refused(format!("{key}: {m}")),
            other => other,
        }
    }
}

/// One change another node made, as the feed delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Revoked(Entry),
    CutOff(Cutoff),
    /// A cut-off deleted through the admin API.
    Lifted(SubjectKey),
}

/// Where stream consumers resume reading other nodes' revocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Not positioned yet: [`RevocationStore::position`] sets it.
    Start,
    At(String),
}

/// Durable storage of revocations, shared by the nodes that use it.
#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync {
    /// Records a revocation. `Ok` only once it is durable: committed to disk
    /// (embedded) or acknowledged by the primary and, where replicas exist,
    /// by at least one replica (Redis).
    async fn revoke(&self, entry: Entry) -> Result<(), StoreError>;

    /// Records many revocations at once (bulk import), with the same
    /// durability as [`RevocationStore::revoke`] for the whole batch.
    async fn revoke_batch(&self, entries: &[Entry]) -> Result<(), StoreError> {
        for e in entries {
            self.revoke(*e).await?;
        }
        Ok(())
    }

    /// The expiry recorded for `digest`, if any (for `token explain`).
    async fn lookup(&self, digest: &Digest) -> Result<Option<i64>, StoreError>;

    /// Every entry that has not expired at `now` (a full resync).
    async fn snapshot(&self, now: i64) -> Result<Vec<Entry>, StoreError>;

    /// The position of the change feed now: entries revoked after this call
    /// are returned by [`RevocationStore::changes`] from it.
    async fn position(&self) -> Result<Cursor, StoreError>;

    /// Changes made (by any node) after `cursor`, waiting up to `wait` for
    /// one; advances `cursor`. A store without a shared feed returns none.
    async fn changes(&self, cursor: &mut Cursor, wait: Duration)
        -> Result<Vec<Change>, StoreError>;

    /// Records a subject cut-off (SPEC §3.10), keeping the later one if
    /// there is one already; `Ok` only once durable, as for a revocation.
    async fn cut_off(&self, cutoff: &Cutoff) -> Result<(), StoreError>;

    /// Deletes a cut-off; `Ok(false)` when there was none.
    async fn lift(&self, key: &SubjectKey) -> Result<bool, StoreError>;

    /// Every cut-off still kept at `now` (a full resync).
    async fn cutoffs(&self, now: i64) -> Result<Vec<Cutoff>, StoreError>;

    /// Records `key` (e.g. a back-channel logout token's `jti`) until
    /// `expires_at`, as `owner`'s (a [`claim_owner`] the caller made);
    /// `Ok(false)` when it was recorded already: a replay.
    async fn claim_once(&self, key: &str, owner: &str, expires_at: i64)
        -> Result<bool, StoreError>;

    /// Forgets `key` if `owner` recorded it with
    /// [`RevocationStore::claim_once`] (when what it guarded could not be
    /// done, so that a retry is not a replay). Another caller's claim
    /// stays: a claim that failed here may have lost to one that worked.
    async fn forget_once(&self, key: &str, owner: &str) -> Result<(), StoreError>;

    /// Deletes entries and cut-offs expired at `now`; returns how many.
    async fn purge(&self, now: i64) -> Result<u64, StoreError>;

    /// The store's own clock (unix seconds), when it has one apart from
    /// the node's (Redis's `TIME`): a shared store is purged by the
    /// earlier of the two, so that one node with a clock ahead does not
    /// delete every node's revocations before they expire.
    async fn clock(&self) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }

    /// What the store holds a record of, as a value that changes only when
    /// it loses that record (a Redis primary restarted empty, a flush): a
    /// node that finds it changed writes back what it holds. `None`: the
    /// store keeps what it was given for as long as it exists (embedded).
    async fn generation(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Whether other nodes may write to this store (then the sync task
    /// follows the change feed).
    fn is_shared(&self) -> bool;

    /// A short name for logs and metrics: embedded, redis, redis_cluster.
    fn kind(&self) -> &'static str;

    /// Lets go of what the store holds open, as the node stops: every
    /// operation after it fails. The embedded store's file is closed
    /// cleanly here (once the operations in flight end), not whenever the
    /// last holder of the store happens to be dropped: a file left open at
    /// exit must be repaired at the next start, and `token explain` cannot
    /// read it until then.
    fn close(&self) {}
}

/// Opens the store a config names. Redis stores connect lazily: a Redis that
/// is down at start does not stop the gateway from serving.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn RevocationStore>, StoreError> {
    Ok(match config {
        StoreConfig::Embedded { path } => Arc::new(embedded::EmbeddedStore::open(path)?),
        StoreConfig::Redis(r) => Arc::new(redis::RedisStore::standalone(r)?),
        StoreConfig::RedisCluster(c) => Arc::new(redis::RedisStore::cluster(c)?),
    })
}

/// A new owner for [`RevocationStore::claim_once`]: 128 random bits, in
/// hex; should the system's randomness fail, the time and a counter of
/// this process, still unique here.
pub fn claim_owner() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes[..16]).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes[16..24].copy_from_slice(&COUNT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    to_hex(&bytes)
}

/// Lower-case hex of a digest, as stored in Redis.
pub fn to_hex(d: &Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

pub fn from_hex(s: &str) -> Option<Digest> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        // Two hex digits always fit a byte.
        *out.get_mut(i)? = (hi * 16 + lo) as u8;
    }
    Some(out)
}
