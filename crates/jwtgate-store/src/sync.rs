//! [`Revocations`]: the node's view of the blacklist. Checks are answered
//! from memory; a background task keeps memory in step with the store:
//! a full snapshot at start, on every reconnect and periodically (the
//! belt-and-braces resync), the change feed in between, and purges.
//!
//! When the store is down the node keeps serving: it refuses the revocations
//! it already knows, valid tokens still pass, logouts answer 503; when the
//! store returns, the task resyncs and the node catches up.
//!
//! A shared (Redis) store's blacklist is also kept on local disk (the
//! snapshot, SPEC §3.11), written after every full resync and, when the
//! feed brought changes, at most every few seconds: a node that starts
//! while Redis is down starts from it. With no snapshot, such a node has
//! not *loaded* its blacklist ([`Revocations::is_loaded`]) and refuses
//! tokens it cannot check until the first load succeeds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::snapshot::{Snapshot, SnapshotFile};
use crate::{
    Blacklist, Change, Cursor, Cutoff, CutoffTable, Digest, Entry, RevocationStore, StoreError,
    SubjectKey, TokenSubject,
};

/// How soon the snapshot is rewritten when the feed brought changes: at
/// least a second after the last write, and twenty times as long as that
/// write took (a large blacklist spends at most 5 % of a core on it while
/// its write takes under 250 ms), at most 5 s. A node that crashed while
/// Redis went down restarts from it, so a shorter wait leaves fewer
/// revocations out (an outside chaos audit: tokens logged out 0.3-1 s
/// before a crash passed on the restarted node, and on it only, for the
/// whole Redis outage, when the wait was 5 s).
const SNAPSHOT_EVERY_MIN: Duration = Duration::from_secs(1);

/// What expires within this many seconds is not compared with the store
/// for losses: another node's purge (every 60 s), or its clock a little
/// ahead, may have removed it first (a review: false losses, and alerts).
const LOSS_MARGIN_SECONDS: i64 = 120;

/// How far the wall clock may run ahead of the time passed between two
/// purges before the purge stops trusting it.
const CLOCK_JUMP_SECONDS: i64 = 60;

/// How long a jump ahead is distrusted: a clock that stays there was
/// likely behind before and set right.
const CLOCK_JUMP_TRUSTED_AFTER: Duration = Duration::from_secs(3600);

/// The time expired revocations are purged by: the wall clock, unless it
/// jumped ahead of the time that passed since the last purge (an NTP
/// step, a VM restored, a clock set wrong for a minute). A purge deletes
/// for good what expired by the time it is given, so a clock hours ahead
/// once had live revocations deleted, the tokens passing again once the
/// clock was back (an outside audit). A jump is distrusted for
/// [`CLOCK_JUMP_TRUSTED_AFTER`], then taken.
#[derive(Debug, Default)]
struct PurgeClock {
    /// The wall time trusted at a monotonic instant.
    base: Option<(i64, Instant)>,
    /// Since when the wall clock has been ahead of it.
    jumped: Option<Instant>,
}

impl PurgeClock {
    fn trusted(&mut self, wall: i64, at: Instant) -> i64 {
        let Some((base_wall, base_at)) = self.base else {
            self.base = Some((wall, at));
            return wall;
        };
        let passed =
            i64::try_from(at.saturating_duration_since(base_at).as_secs()).unwrap_or(i64::MAX);
        let expected = base_wall.saturating_add(passed);
        if wall <= expected.saturating_add(CLOCK_JUMP_SECONDS) {
            self.jumped = None;
            self.base = Some((wall, at));
            return wall;
        }
        let since = *self.jumped.get_or_insert_with(|| {
            warn!(
                ahead_seconds = wall - expected,
                "the wall clock jumped ahead of the time that passed: expired revocations are \
                 purged by the time the node kept, for up to an hour, so that none still live is \
                 deleted"
            );
            at
        });
        if at.saturating_duration_since(since) >= CLOCK_JUMP_TRUSTED_AFTER {
            self.jumped = None;
            self.base = Some((wall, at));
            return wall;
        }
        expected
    }
}

/// How soon a write-back the store refused is tried again.
const WRITE_BACK_RETRY: Duration = Duration::from_secs(5);

/// What a node does while the subject cut-offs key holds another kind of
/// value than the gateway keeps there.
const CUTOFFS_KEY_WRONG: &str = "cut-offs are neither read nor written there until it is \
                                 deleted; this node keeps those it holds";

/// How often a node following a shared store's feed reads its generation:
/// a flush under a running Redis breaks no connection, and a node started
/// since reads the emptied store, letting in what the others refuse, until
/// one of them resyncs (an outside Redis audit: 5 minutes). One GET each
/// time.
const GENERATION_CHECK_EVERY: Duration = Duration::from_secs(5);
const SNAPSHOT_EVERY_MAX: Duration = Duration::from_secs(5);
/// The most claims ([`Revocations::claim_once`]) a node keeps to write back
/// after a loss: each lives until its token expires (a back-channel logout
/// token: minutes), and only an identity provider's signed tokens make
/// them. Past it, a claim is kept by the store alone.
const HELD_CLAIMS_MAX: usize = 100_000;

/// How long after a snapshot write that took `took` the next may come.
fn snapshot_every(took: Duration) -> Duration {
    took.saturating_mul(20)
        .clamp(SNAPSHOT_EVERY_MIN, SNAPSHOT_EVERY_MAX)
}

/// Timing of the sync task.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Full resync even when the feed looks healthy.
    pub resync_every: Duration,
    pub purge_every: Duration,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            resync_every: Duration::from_secs(300),
            purge_every: Duration::from_secs(60),
            max_backoff: Duration::from_secs(2),
        }
    }
}

pub struct Revocations {
    store: Arc<dyn RevocationStore>,
    blacklist: Blacklist,
    /// Subject cut-offs (SPEC §3.10), kept like the blacklist.
    cutoffs: CutoffTable,
    /// Whether the last store operation (a write, a resync, a feed read)
    /// succeeded, and since when it has been failing.
    health: std::sync::Mutex<Health>,
    /// The blacklist was loaded, from the store or from the snapshot.
    loaded: AtomicBool,
    /// Where a shared store's blacklist is kept locally; `None` for the
    /// embedded store, which is local already.
    snapshot: Option<SnapshotFile>,
    /// The blacklist changed since the snapshot was written.
    dirty: AtomicBool,
    store_errors: AtomicU64,
    /// Times the store was found to have lost entries (see `resync`).
    store_lost: AtomicU64,
    /// The store's generation when this node last read it all.
    generation: std::sync::Mutex<Option<String>>,
    /// Keys of the wrong kind already warned of ([`Self::say_wrong_type`]),
    /// and whether the resync running met one.
    wrong_type_said: std::sync::Mutex<std::collections::HashSet<String>>,
    wrong_type_noted: AtomicBool,
    revoked: AtomicU64,
    /// Cut-offs lifted here or by the feed: a cut-off recorded while one
    /// was lifted is left to the feed (see `cut_off`).
    lifts: AtomicU64,
    /// What the store lacks could not all be written back at the last
    /// resync: the sync task tries again soon (see `write_back_missing`).
    write_back_pending: AtomicBool,
    /// The loss has been logged as an error; said again once it is over.
    loss_said: AtomicBool,
    /// The claims this node made and that have not expired, key -> (owner,
    /// expiry): written back with the revocations and cut-offs when the
    /// store lost them, so that a back-channel logout token is still taken
    /// once (an outside audit replayed one after a Redis flush).
    claims: std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>,
    /// Told whenever a revocation or a cut-off comes into memory (here,
    /// from the feed, a resync or the snapshot): what holds a token past
    /// its check (an open WebSocket) looks again then ([`Self::changes`]).
    changed: watch::Sender<()>,
}

/// Where the blacklist came from at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedFrom {
    /// The store answered: `entries` live revocations; the feed stands at
    /// `cursor`.
    Store { entries: usize, cursor: Cursor },
    /// The store did not answer; the local snapshot had `entries`.
    Snapshot { entries: usize, error: StoreError },
    /// Neither: requests that need a token are refused (503) until the
    /// sync task's first load.
    Nothing { error: StoreError },
}

/// What the store's last operation said (`GET /status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// The last operation succeeded (or none has run yet).
    Ok,
    /// Operations have been failing since `since` (unix seconds); `error`
    /// is the latest failure's message.
    Failing { since: i64, error: String },
}

/// Reads (resyncs, the feed) and writes (revocations, cut-offs, claims,
/// purges) are followed apart: a Redis that answers reads but refuses
/// writes (out of memory, a replica, an ACL) fails every logout while the
/// feed reads on, and a read that works says nothing of the writes.
#[derive(Debug, Default)]
struct Health {
    reads: Option<(i64, String)>,
    writes: Option<(i64, String)>,
}

/// Which of a store's operations a result is about.
#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
}

impl Health {
    fn slot(&mut self, op: Op) -> &mut Option<(i64, String)> {
        match op {
            Op::Read => &mut self.reads,
            Op::Write => &mut self.writes,
        }
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Revocations {
    /// `snapshot`: where to keep a shared store's blacklist locally.
    pub fn new(store: Arc<dyn RevocationStore>, snapshot: Option<SnapshotFile>) -> Arc<Self> {
        let snapshot = snapshot.filter(|_| store.is_shared());
        Arc::new(Revocations {
            store,
            blacklist: Blacklist::new(),
            cutoffs: CutoffTable::new(),
            health: std::sync::Mutex::new(Health::default()),
            loaded: AtomicBool::new(false),
            snapshot,
            dirty: AtomicBool::new(false),
            store_errors: AtomicU64::new(0),
            store_lost: AtomicU64::new(0),
            generation: std::sync::Mutex::new(None),
            wrong_type_said: std::sync::Mutex::new(std::collections::HashSet::new()),
            wrong_type_noted: AtomicBool::new(false),
            revoked: AtomicU64::new(0),
            lifts: AtomicU64::new(0),
            write_back_pending: AtomicBool::new(false),
            loss_said: AtomicBool::new(false),
            claims: std::sync::Mutex::new(std::collections::HashMap::new()),
            changed: watch::Sender::new(()),
        })
    }

    /// Wakes when a revocation or a cut-off comes into memory, however it
    /// came (several at once may wake it once): a token checked before may
    /// be refused now. Nothing is said of lifts and purges, which refuse
    /// nothing more.
    pub fn changes(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// Tells the watchers when `more`: something now refuses what it did
    /// not (a node's own write coming back in the feed, a resync that
    /// brought nothing new, tell nothing).
    fn tell_changed(&self, more: bool) {
        if more {
            self.changed.send_replace(());
        }
    }

    /// Whether a token with any of these digests (one token's keys) is
    /// revoked: memory only, no I/O.
    pub fn is_revoked(&self, digests: &[Digest], now: i64) -> bool {
        self.blacklist.contains_any(digests, now)
    }

    /// Until when a token with any of these digests is revoked, if it is:
    /// memory only, for reports.
    pub fn revoked_until(&self, digests: &[Digest], now: i64) -> Option<i64> {
        self.blacklist.revoked_until(digests, now)
    }

    /// Whether any cut-off names this consumer or provider: memory only.
    pub fn cutoffs_name(&self, consumer: Option<&str>, provider: Option<&str>) -> bool {
        self.cutoffs.names_owner(consumer, provider)
    }

    /// The subject cut-off that refuses a token, if any: memory only.
    pub fn cutoff_for(&self, token: &TokenSubject<'_>, now: i64) -> Option<Cutoff> {
        self.cutoffs.refusing(token, now)
    }

    /// Every cut-off this node knows, alive at `now`.
    pub fn cutoffs(&self, now: i64) -> Vec<Cutoff> {
        self.cutoffs.all(now)
    }

    /// The cut-off of `key`, if this node knows one.
    pub fn cutoff(&self, key: &SubjectKey) -> Option<Cutoff> {
        self.cutoffs.get(key)
    }

    pub fn cutoff_count(&self) -> usize {
        self.cutoffs.len()
    }

    /// Records a subject cut-off in the store, then in memory; on an error
    /// (the caller answers 503) it is not in memory, and not in the store
    /// unless one that did not answer in time applies it later.
    ///
    /// With a shared store, one lifted while the store took this one (on
    /// another node, read from the feed meanwhile) may be this very one:
    /// inserted after its lift, it would stay here while the store lacks
    /// it, and be written back as lost at the next resync (a review). It is
    /// then left to the feed, which brings the two in the store's order.
    pub async fn cut_off(&self, cutoff: Cutoff) -> Result<(), StoreError> {
        let lifts = self.lifts.load(Ordering::SeqCst);
        self.noted(Op::Write, self.store.cut_off(&cutoff).await)?;
        if !self.store.is_shared() || self.lifts.load(Ordering::SeqCst) == lifts {
            self.tell_changed(self.cutoffs.insert(&cutoff));
        }
        self.dirty.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes a cut-off from the store and memory; `Ok(false)` when there
    /// was none.
    pub async fn lift(&self, key: &SubjectKey) -> Result<bool, StoreError> {
        // Looked at first: the feed may bring this very lift, and remove
        // it here, before the store has answered.
        let here = self.cutoffs.get(key).is_some();
        let found = self.noted(Op::Write, self.store.lift(key).await)?;
        self.cutoffs.remove(key);
        self.lifts.fetch_add(1, Ordering::SeqCst);
        self.dirty.store(true, Ordering::Relaxed);
        Ok(found || here)
    }

    /// See [`RevocationStore::claim_once`].
    pub async fn claim_once(
        &self,
        key: &str,
        owner: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let claimed = self.noted(
            Op::Write,
            self.store.claim_once(key, owner, expires_at).await,
        )?;
        if claimed && self.store.is_shared() {
            let now = unix_now();
            let mut held = self.held_claims();
            if held.len() >= HELD_CLAIMS_MAX {
                held.retain(|_, (_, expires)| *expires > now);
            }
            if held.len() < HELD_CLAIMS_MAX {
                held.insert(key.to_owned(), (owner.to_owned(), expires_at));
            }
        }
        Ok(claimed)
    }

    /// See [`RevocationStore::forget_once`].
    /// Forgotten here whatever the store answers: a forget that timed out
    /// may have been carried out, and a write-back must not bring the claim
    /// back (the provider's retry would be refused as a replay).
    pub async fn forget_once(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        {
            let mut held = self.held_claims();
            if held.get(key).is_some_and(|(o, _)| o == owner) {
                held.remove(key);
            }
        }
        self.noted(Op::Write, self.store.forget_once(key, owner).await)
    }

    fn held_claims(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (String, i64)>> {
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the blacklist has been loaded (from the store or the local
    /// snapshot). Until then no token can be checked.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Records a revocation in the store, then in memory. An error means
    /// nothing may be claimed: the caller answers 503.
    pub async fn revoke(&self, entry: Entry) -> Result<(), StoreError> {
        self.noted(Op::Write, self.store.revoke(entry).await)?;
        self.tell_changed(self.blacklist.insert(entry));
        self.dirty.store(true, Ordering::Relaxed);
        self.revoked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Loads every live entry from the store into memory; returns how many
    /// and the feed position to follow from.
    pub async fn load(&self) -> Result<(usize, Cursor), StoreError> {
        let (cursor, n) = self.noted(
            Op::Read,
            self.resync(self.store.is_shared(), &Cursor::Start).await,
        )?;
        Ok((n, cursor))
    }

    /// The start-up load: the store, else the local snapshot, else nothing
    /// (and the node fails closed until the sync task loads it).
    ///
    /// The snapshot is read into memory first, with the store generation it
    /// was taken under: if the store has lost what it held since (a Redis
    /// restarted empty while this node was down, a flush), the load writes
    /// the snapshot back before reading the store ([`Self::resync`]), so
    /// that no token this node refused comes back in by the loss. With the
    /// store unreachable, the snapshot is what the node serves from, and the
    /// sync task compares generations once the store answers.
    pub async fn load_at_start(&self) -> LoadedFrom {
        let from_snapshot = self.read_snapshot();
        let error = match self.load().await {
            Ok((entries, cursor)) => {
                // What the store gave is kept in the local copy soon, not
                // only at the next change or full resync.
                self.dirty.store(true, Ordering::Relaxed);
                return LoadedFrom::Store { entries, cursor };
            }
            Err(e) => e,
        };
        match from_snapshot {
            Some(entries) => {
                self.loaded.store(true, Ordering::Relaxed);
                LoadedFrom::Snapshot { entries, error }
            }
            None => LoadedFrom::Nothing { error },
        }
    }

    /// Reads the local snapshot into memory (entries, cut-offs, and the
    /// generation it was taken under); how many entries, if there was one.
    fn read_snapshot(&self) -> Option<usize> {
        let file = self.snapshot.as_ref()?;
        match file.load(unix_now()) {
            Ok(Some(snapshot)) => {
                let n = snapshot.entries.len();
                let more = self.blacklist.extend(snapshot.entries);
                let more = self.cutoffs.replace(snapshot.cutoffs) || more;
                self.tell_changed(more);
                *self.generation_read() = snapshot.generation;
                Some(n)
            }
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "blacklist snapshot not used");
                None
            }
        }
    }

    /// Writes the local snapshot, if this store keeps one; returns how long
    /// the write took.
    async fn save_snapshot(&self) -> Duration {
        let began = Instant::now();
        let Some(file) = self.snapshot.clone() else {
            return Duration::ZERO;
        };
        self.dirty.store(false, Ordering::Relaxed);
        let now = unix_now();
        let snapshot = Snapshot {
            entries: self.blacklist.live_entries(now),
            cutoffs: self.cutoffs.all(now),
            generation: self.generation_read().clone(),
        };
        let saved = tokio::task::spawn_blocking(move || file.save(&snapshot)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.dirty.store(true, Ordering::Relaxed);
                warn!(error = %e, "cannot write the blacklist snapshot");
            }
            Err(e) => {
                self.dirty.store(true, Ordering::Relaxed);
                warn!(error = %e, "blacklist snapshot task failed");
            }
        }
        began.elapsed()
    }

    /// See [`RevocationStore::close`]: once the sync task has stopped.
    pub fn close(&self) {
        self.store.close();
    }

    pub fn store(&self) -> &Arc<dyn RevocationStore> {
        &self.store
    }

    pub fn len(&self) -> usize {
        self.blacklist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blacklist.is_empty()
    }

    /// What the store's last operation said: writes (revocations, cut-offs,
    /// one-time claims), resyncs, feed reads and purges all count.
    pub fn health(&self) -> StoreHealth {
        let health = self.health_lock();
        let failing = [&health.reads, &health.writes];
        let since = failing.iter().filter_map(|f| f.as_ref().map(|f| f.0)).min();
        // The latest failure says why.
        let error = failing
            .iter()
            .filter_map(|f| f.as_ref())
            .max_by_key(|f| f.0)
            .map(|f| f.1.clone());
        match (since, error) {
            (Some(since), Some(error)) => StoreHealth::Failing { since, error },
            _ => StoreHealth::Ok,
        }
    }

    fn health_lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes `result` on, having recorded it in [`Self::health`] (and
    /// an error in the error count).
    fn noted<T>(&self, op: Op, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.note_success(op),
            Err(e) => self.note_failure(op, e),
        }
        result
    }

    fn note_success(&self, op: Op) {
        *self.health_lock().slot(op) = None;
    }

    fn note_failure(&self, op: Op, e: &StoreError) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        let mut health = self.health_lock();
        let slot = health.slot(op);
        let since = slot.as_ref().map_or_else(unix_now, |f| f.0);
        *slot = Some((since, e.to_string()));
    }

    /// Store operations that failed (revocations, resyncs, feed reads).
    pub fn store_losses(&self) -> u64 {
        self.store_lost.load(Ordering::Relaxed)
    }

    pub fn store_errors(&self) -> u64 {
        self.store_errors.load(Ordering::Relaxed)
    }

    /// Revocations this node has written.
    pub fn revoked_count(&self) -> u64 {
        self.revoked.load(Ordering::Relaxed)
    }

    /// Runs the sync task until `stop` turns true. `loaded`: the caller has
    /// just loaded a snapshot (and, for a shared store, `cursor` is where
    /// the feed stood before it).
    pub async fn sync(
        self: Arc<Self>,
        settings: SyncSettings,
        mut stop: watch::Receiver<bool>,
        start: Option<Cursor>,
    ) {
        let shared = self.store.is_shared();
        let mut need_resync = start.is_none();
        let mut cursor = start.unwrap_or(Cursor::Start);
        let mut last_resync = Instant::now();
        let mut last_purge = Instant::now();
        let mut purge_clock = PurgeClock::default();
        let mut last_snapshot = Instant::now();
        let mut wait_to_snapshot = SNAPSHOT_EVERY_MIN;
        let mut last_generation_check = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut outage_logged = false;
        // Feed reads failed in a row. A feed that keeps failing while full
        // resyncs work (a Redis user without XREAD) is not an outage that
        // ends at the next resync: the backoff keeps growing and the log
        // says so once, not twice a cycle.
        let mut feed_failures = 0u32;
        let mut purge_now = false;
        while !*stop.borrow() {
            // A store no other process writes (embedded: locked by this
            // one) has nothing to catch up on, and a periodic resync would
            // race this node's own writes: a cut-off recorded between its
            // read and its replace of the cut-offs was dropped from memory
            // until the next one, with no feed to bring it back.
            let periodic = shared
                && (last_resync.elapsed() >= settings.resync_every
                    || (self.write_back_pending.load(Ordering::Relaxed)
                        && last_resync.elapsed() >= WRITE_BACK_RETRY));
            if need_resync || periodic {
                match self.resync(shared, &cursor).await {
                    Ok((pos, n)) => {
                        if feed_failures < 2 {
                            if outage_logged {
                                info!(
                                    store = self.store.kind(),
                                    entries = n,
                                    "revocation store reachable again; caught up"
                                );
                            }
                            outage_logged = false;
                            backoff = Duration::from_millis(100);
                            self.note_success(Op::Read);
                        }
                        cursor = pos;
                        need_resync = false;
                        last_resync = Instant::now();
                        wait_to_snapshot = snapshot_every(self.save_snapshot().await);
                        last_snapshot = Instant::now();
                        // Writes failed before: the purge, a write, says
                        // now whether they work again.
                        purge_now = self.health_lock().writes.is_some();
                    }
                    Err(e) => {
                        self.note_outage(&e, &mut outage_logged);
                        if wait_or_stop(&mut stop, backoff).await {
                            break;
                        }
                        backoff = (backoff * 2).min(settings.max_backoff);
                        continue;
                    }
                }
            }
            if purge_now || last_purge.elapsed() >= settings.purge_every {
                purge_now = false;
                let mut now = purge_clock.trusted(unix_now(), Instant::now());
                if let Ok(Some(store_now)) = self.store.clock().await {
                    now = now.min(store_now);
                }
                if let Err(e) = self.noted(Op::Write, self.store.purge(now).await) {
                    warn!(store = self.store.kind(), error = %e, "purging expired revocations failed");
                }
                self.blacklist.purge(now);
                self.cutoffs.purge(now);
                last_purge = Instant::now();
            }
            if shared {
                let changes = tokio::select! {
                    c = self.store.changes(&mut cursor, crate::redis::FEED_BLOCK) => c,
                    _ = stop.wait_for(|s| *s) => break,
                };
                match changes {
                    Ok(changes) => {
                        self.note_success(Op::Read);
                        if feed_failures >= 2 {
                            info!(store = self.store.kind(), "revocation feed readable again");
                            outage_logged = false;
                            backoff = Duration::from_millis(100);
                        }
                        feed_failures = 0;
                        if last_generation_check.elapsed() >= GENERATION_CHECK_EVERY {
                            last_generation_check = Instant::now();
                            // A failed read is the feed's business next time.
                            if let Ok(now_at) = self.store.generation().await {
                                if now_at != *self.generation_read() {
                                    need_resync = true;
                                }
                            }
                        }
                        if !changes.is_empty() {
                            self.apply(changes);
                            self.dirty.store(true, Ordering::Relaxed);
                        }
                        if self.dirty.load(Ordering::Relaxed)
                            && last_snapshot.elapsed() >= wait_to_snapshot
                        {
                            wait_to_snapshot = snapshot_every(self.save_snapshot().await);
                            last_snapshot = Instant::now();
                        }
                    }
                    Err(e) => {
                        feed_failures = feed_failures.saturating_add(1);
                        if feed_failures == 2 {
                            warn!(
                                store = self.store.kind(),
                                error = %e,
                                "the revocation feed keeps failing while the store answers: other \
                                 nodes' revocations arrive by full resyncs, at most {}s apart",
                                settings.max_backoff.as_secs()
                            );
                        }
                        self.note_outage(&e, &mut outage_logged);
                        need_resync = true;
                        if wait_or_stop(&mut stop, backoff).await {
                            break;
                        }
                        backoff = (backoff * 2).min(settings.max_backoff);
                    }
                }
            } else if wait_or_stop(&mut stop, settings.purge_every.min(settings.resync_every)).await
            {
                break;
            }
        }
        // A change not yet in the local copy goes in before the node
        // stops: a restart while the store is down serves from it.
        if self.dirty.load(Ordering::Relaxed) {
            self.save_snapshot().await;
        }
    }

    /// Loads everything the store holds. A store whose generation changed
    /// since this node last read it lost what it held (a Redis primary
    /// restarted empty, a flush): then this node first writes back the
    /// revocations and cut-offs it holds, so that a token refused before
    /// stays refused on every node, restarted ones included, rather than
    /// being let in by the loss.
    ///
    /// A store can also go back in time with its generation unchanged: a
    /// Redis restarted on an older RDB or AOF, a failover to a replica
    /// that lagged (an outside Redis audit: cut-offs vanished on every
    /// node, and a node started since let logged-out tokens in). So what
    /// this node holds and the store lacks is written back too
    /// ([`Self::write_back_missing`]). `followed`: where this node's feed
    /// stood (`Start` when it has not followed it since it started).
    async fn resync(&self, shared: bool, followed: &Cursor) -> Result<(Cursor, usize), StoreError> {
        // Position first: anything revoked during the snapshot is then seen
        // by the feed too (duplicates are harmless).
        let pos = if shared {
            self.store.position().await?
        } else {
            Cursor::Start
        };
        let now = unix_now();
        self.wrong_type_noted.store(false, Ordering::Relaxed);
        // A key holding another kind of value than the gateway keeps there
        // (written by something else) is named and left out, not a resync
        // that fails for good: one such key had stopped every node's
        // sharing while logouts still answered 200 (an outside audit).
        let generation = match self.store.generation().await {
            Ok(g) => g,
            Err(e) if e.is_wrong_type() => {
                self.say_wrong_type(
                    &e,
                    "the store's losses (a flush) go unseen until it is deleted",
                );
                None
            }
            Err(e) => return Err(e),
        };
        let known = self.generation_read().clone();
        if let (Some(known), Some(now_at)) = (&known, &generation) {
            if known != now_at {
                self.republish(known, now_at, now).await?;
            }
        }
        *self.generation_read() = generation;
        // What this node holds, read before the store: each of these was
        // in the store before this read (a node keeps a revocation or a
        // cut-off only once the store took it, or the feed brought it).
        // Not what expires within a purge's reach: another node's purge,
        // or its clock a little ahead, removes those from the store first.
        let margin = now.saturating_add(LOSS_MARGIN_SECONDS);
        let held = (
            self.blacklist.live_entries(margin),
            self.cutoffs.all(margin),
        );
        let entries = self.store.snapshot(now).await?;
        let mut cutoffs = match self.store.cutoffs(now).await {
            Ok(c) => Some(c),
            Err(e) if e.is_wrong_type() => {
                self.say_wrong_type(&e, CUTOFFS_KEY_WRONG);
                None
            }
            Err(e) => return Err(e),
        };
        if shared {
            // Cut-offs unread are not written back over the key either.
            let held = match cutoffs {
                Some(_) => held,
                None => (held.0, Vec::new()),
            };
            let read = cutoffs.as_deref().unwrap_or_default();
            let kept = self
                .write_back_missing(held, &entries, read, followed)
                .await;
            if let Some(cutoffs) = cutoffs.as_mut() {
                cutoffs.extend(kept);
            }
        }
        let n = entries.len();
        let more = self.blacklist.extend(entries);
        // Replaced, not merged: a cut-off deleted while this node was away
        // is gone here too.
        let more = match cutoffs {
            Some(cutoffs) => self.cutoffs.replace(cutoffs) || more,
            None => more,
        };
        if !self.wrong_type_noted.swap(false, Ordering::Relaxed) {
            // Read whole: a key of the wrong kind again is said again.
            self.wrong_type_lock().clear();
        }
        self.tell_changed(more);
        self.loaded.store(true, Ordering::Relaxed);
        Ok((pos, n))
    }

    /// Writes back what this node holds and the store lacks; returns the
    /// cut-offs among them, which this node keeps whether or not the write
    /// worked. A revocation is never deleted before it expires, so one the
    /// store lacks was lost. A cut-off may have been lifted: only a node
    /// that has followed the feed compares them, after reading the feed on
    /// from where it stood, and one lifted meanwhile is not written back;
    /// if the feed cannot be read, cut-offs wait for the next resync.
    ///
    /// Best effort: a write the store refuses (a replica still catching
    /// up after a failover, a full Redis) does not stop the resync, which
    /// still loads what the store holds; the sync task tries again soon
    /// ([`Self::write_back_pending`]).
    async fn write_back_missing(
        &self,
        (held_entries, held_cutoffs): (Vec<Entry>, Vec<Cutoff>),
        entries: &[Entry],
        cutoffs: &[Cutoff],
        followed: &Cursor,
    ) -> Vec<Cutoff> {
        let stored: std::collections::HashSet<&Digest> =
            entries.iter().map(|e| &e.digest).collect();
        let lost: Vec<Entry> = held_entries
            .into_iter()
            .filter(|e| !stored.contains(&e.digest))
            .collect();
        let mut lost_cutoffs = Vec::new();
        if let Cursor::At(_) = followed {
            // Lost too: a later cut-off the store holds an earlier one of
            // (a copy from before it moved): a cut-off only moves later.
            let stored: std::collections::HashMap<&SubjectKey, i64> =
                cutoffs.iter().map(|c| (&c.key, c.not_before)).collect();
            lost_cutoffs = held_cutoffs
                .into_iter()
                .filter(|c| stored.get(&c.key).is_none_or(|&at| at < c.not_before))
                .collect();
            if !lost_cutoffs.is_empty() {
                match self.lifted_since(followed).await {
                    Ok(lifted) => lost_cutoffs.retain(|c| !lifted.contains(&c.key)),
                    Err(e) => {
                        warn!(
                            store = self.store.kind(),
                            error = %e,
                            "revocation store: the feed cannot be read to tell lifted cut-offs \
                             from lost ones; they are compared again at the next resync"
                        );
                        lost_cutoffs.clear();
                    }
                }
            }
        }
        if lost.is_empty() && lost_cutoffs.is_empty() {
            self.write_back_pending.store(false, Ordering::Relaxed);
            self.loss_said.store(false, Ordering::Relaxed);
            return lost_cutoffs;
        }
        if !self.loss_said.swap(true, Ordering::Relaxed) {
            error!(
                store = self.store.kind(),
                revocations = lost.len(),
                cutoffs = lost_cutoffs.len(),
                "revocation store lost data: it lacks revocations or cut-offs this node holds \
                 (restarted from an older copy, a failover to a replica that lagged, a flush); \
                 writing them back"
            );
        }
        match self.write_back(&lost, &lost_cutoffs).await {
            Ok(()) => {
                self.write_back_pending.store(false, Ordering::Relaxed);
                self.loss_said.store(false, Ordering::Relaxed);
                self.store_lost.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.note_failure(Op::Write, &e);
                warn!(
                    store = self.store.kind(),
                    error = %e,
                    "revocation store: the write-back was cut short; this node keeps them and \
                     tries again in {}s",
                    WRITE_BACK_RETRY.as_secs()
                );
                self.write_back_pending.store(true, Ordering::Relaxed);
            }
        }
        lost_cutoffs
    }

    /// Writes `entries` and `cutoffs` to the store, then the claims this
    /// node made that have not expired (a store that lost revocations lost
    /// them too), stopping at the first failure.
    async fn write_back(&self, entries: &[Entry], cutoffs: &[Cutoff]) -> Result<(), StoreError> {
        self.store.revoke_batch(entries).await?;
        for c in cutoffs {
            match self.store.cut_off(c).await {
                Ok(()) => {}
                // None can be written there; the claims still are (a review:
                // a flush's write-back failed here for good, and with it
                // every resync).
                Err(e) if e.is_wrong_type() => {
                    self.say_wrong_type(&e, CUTOFFS_KEY_WRONG);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        let now = unix_now();
        let claims: Vec<(String, String, i64)> = {
            let mut held = self.held_claims();
            held.retain(|_, (_, expires)| *expires > now);
            held.iter()
                .map(|(key, (owner, expires))| (key.clone(), owner.clone(), *expires))
                .collect()
        };
        for (key, owner, expires) in claims {
            // Held already (another node wrote it back first): as meant.
            self.store.claim_once(&key, &owner, expires).await?;
        }
        Ok(())
    }

    /// The subjects whose cut-off the feed says was lifted after `from`.
    async fn lifted_since(
        &self,
        from: &Cursor,
    ) -> Result<std::collections::HashSet<SubjectKey>, StoreError> {
        let mut cursor = from.clone();
        let mut lifted = std::collections::HashSet::new();
        // Bounded: a feed holds at most FEED_MAX_LEN entries, read 1 000 at
        // a time.
        for _ in 0..200 {
            let changes = self
                .store
                .changes(&mut cursor, Duration::from_millis(1))
                .await?;
            if changes.is_empty() {
                break;
            }
            lifted.extend(changes.into_iter().filter_map(|c| match c {
                Change::Lifted(key) => Some(key),
                _ => None,
            }));
        }
        Ok(lifted)
    }

    /// Warns of a key holding another kind of value than the gateway keeps
    /// there, once for each message until the store is read whole again.
    fn say_wrong_type(&self, e: &StoreError, effect: &str) {
        let said = e.to_string();
        self.wrong_type_noted.store(true, Ordering::Relaxed);
        if self.wrong_type_lock().insert(said.clone()) {
            warn!(
                store = self.store.kind(),
                "revocation store: a key holds another kind of value than the gateway keeps \
                 there ({said}): {effect}; delete it and the nodes write it again"
            );
        }
    }

    fn wrong_type_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.wrong_type_said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation_read(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every revocation and cut-off this node holds back to a store
    /// that lost them. Cut-offs lifted during the loss come back too: with
    /// the store's record gone, refusing is the side to err on.
    async fn republish(&self, was: &str, is: &str, now: i64) -> Result<(), StoreError> {
        let entries = self.blacklist.live_entries(now);
        let cutoffs = self.cutoffs.all(now);
        error!(
            store = self.store.kind(),
            generation_was = was,
            generation_is = is,
            revocations = entries.len(),
            cutoffs = cutoffs.len(),
            "revocation store lost data: its generation changed since this node read it; \
             writing back the revocations and cut-offs this node holds"
        );
        if let Err(e) = self.write_back(&entries, &cutoffs).await {
            // Found again, and said again, at the next load; counted once
            // written back.
            warn!(
                store = self.store.kind(),
                error = %e,
                "revocation store: the write-back was cut short; it starts over at the next load"
            );
            return Err(e);
        }
        self.store_lost.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Changes other nodes made, from the feed.
    fn apply(&self, changes: Vec<Change>) {
        let mut refuse_more = false;
        for change in changes {
            match change {
                Change::Revoked(e) => {
                    refuse_more |= self.blacklist.insert(e);
                }
                Change::CutOff(c) => {
                    refuse_more |= self.cutoffs.insert(&c);
                }
                Change::Lifted(k) => {
                    self.cutoffs.remove(&k);
                    self.lifts.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        self.tell_changed(refuse_more);
    }

    fn note_outage(&self, e: &StoreError, logged: &mut bool) {
        self.note_failure(Op::Read, e);
        if !*logged {
            warn!(store = self.store.kind(), error = %e, "revocation store unreachable; serving from the revocations already known");
            *logged = true;
        }
    }
}

/// Sleeps `d` unless `stop` turns true first; returns whether to stop.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outside audit: a clock hours ahead had a purge delete live
    /// revocations for good. A jump ahead of the time passed is purged by
    /// the time kept, for an hour; a clock that runs true is followed.
    #[test]
    fn a_purge_does_not_follow_a_clock_that_jumped_ahead() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut clock = PurgeClock::default();
        assert_eq!(clock.trusted(1_000, at(0)), 1_000);
        assert_eq!(clock.trusted(1_060, at(60)), 1_060, "in step");
        assert_eq!(clock.trusted(1_150, at(120)), 1_150, "a little ahead");
        // Two hours ahead: the time kept.
        assert_eq!(clock.trusted(1_180 + 7_200, at(180)), 1_210);
        assert_eq!(clock.trusted(1_240 + 7_200, at(240)), 1_270);
        // Set back right: followed at once.
        assert_eq!(clock.trusted(1_300, at(300)), 1_300);
        // Ahead for good (it was behind before): taken after an hour.
        assert_eq!(clock.trusted(1_360 + 7_200, at(360)), 1_360);
        assert_eq!(
            clock.trusted(1_360 + 7_200 + 3_599, at(360 + 3_599)),
            1_360 + 3_599
        );
        assert_eq!(
            clock.trusted(1_360 + 7_200 + 3_600, at(360 + 3_600)),
            1_360 + 7_200 + 3_600
        );
        assert_eq!(
            clock.trusted(1_360 + 7_200 + 3_660, at(360 + 3_660)),
            1_360 + 7_200 + 3_660
        );
        // Behind: followed (it keeps what it would have purged).
        assert_eq!(clock.trusted(5_000, at(360 + 3_720)), 5_000);
    }

    /// What holds a token past its check (an open WebSocket) is woken by
    /// a revocation, a cut-off and the feed's, not by a lift.
    #[tokio::test]
    async fn revocations_and_cut_offs_wake_whoever_watches_changes() {
        use crate::cutoffs::{Owner, Subject};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(crate::embedded::EmbeddedStore::open(dir.path()).expect("open"));
        let r = Revocations::new(store, None);
        let mut changes = r.changes();
        assert!(!changes.has_changed().expect("sender alive"));
        r.revoke(Entry {
            digest: [7; 32],
            expires_at: unix_now() + 60,
        })
        .await
        .expect("revoke");
        assert!(changes.has_changed().expect("sender alive"), "a revocation");
        changes.mark_unchanged();
        // The same again (a node's own write, back from the feed): nothing
        // new is refused.
        r.apply(vec![Change::Revoked(Entry {
            digest: [7; 32],
            expires_at: unix_now() + 60,
        })]);
        assert!(!changes.has_changed().expect("sender alive"), "an echo");
        // One past its time when it comes (the admin API revoking a token
        // expired long ago) still tells, and is seen by whoever asks
        // whether it was ever revoked.
        r.apply(vec![Change::Revoked(Entry {
            digest: [9; 32],
            expires_at: unix_now() - 1,
        })]);
        assert!(
            changes.has_changed().expect("sender alive"),
            "an expired one"
        );
        assert!(r.is_revoked(&[[9; 32]], i64::MIN));
        changes.mark_unchanged();
        let key = SubjectKey {
            owner: Owner::Consumer("alice".into()),
            subject: Subject::Every,
        };
        r.cut_off(Cutoff {
            key: key.clone(),
            not_before: unix_now(),
            expires_at: unix_now() + 60,
        })
        .await
        .expect("cut off");
        assert!(changes.has_changed().expect("sender alive"), "a cut-off");
        changes.mark_unchanged();
        r.lift(&key).await.expect("lift");
        assert!(!changes.has_changed().expect("sender alive"), "a lift");
        r.apply(vec![Change::Revoked(Entry {
            digest: [8; 32],
            expires_at: unix_now() + 60,
        })]);
        assert!(changes.has_changed().expect("sender alive"), "the feed");
        changes.mark_unchanged();
        r.apply(vec![Change::Lifted(key)]);
        assert!(
            !changes.has_changed().expect("sender alive"),
            "a lift from the feed"
        );
        // A resync that brings nothing new tells nothing.
        r.load().await.expect("load");
        assert!(!changes.has_changed().expect("sender alive"), "a resync");
    }

    #[test]
    fn the_snapshot_waits_twenty_times_its_write_between_one_and_five_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(snapshot_every(Duration::ZERO), ms(1000));
        assert_eq!(snapshot_every(ms(10)), ms(1000));
        assert_eq!(snapshot_every(ms(100)), ms(2000));
        assert_eq!(snapshot_every(ms(400)), ms(5000));
        assert_eq!(snapshot_every(Duration::MAX), ms(5000));
    }
}
