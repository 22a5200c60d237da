//! Routes, consumers and providers in etcd (SPEC §6), shared by every node.
//!
//! - Following ([`follow`]): each node loads every object at one revision,
//!   then watches the prefix from the next; each revision's changes go
//!   through [`apply`] (per-object compile and protection check) and, when
//!   anything changed, [`Running::install`]. A watch behind a compaction
//!   reloads in full; a lost connection reconnects with backoff and
//!   catches up from the last applied revision.
//! - Admin writes ([`EtcdSource::update`]): the edit is compiled and
//!   checked against the running source, then written in one transaction
//!   that holds only if nothing under the prefix changed since the
//!   revision the node applied (and each written key is as it was read);
//!   on a conflict the node catches up and runs the edit again. The answer
//!   waits until the node applied its own write. A write etcd did not
//!   answer (an election) is tried again for a while: it may have been
//!   committed all the same, and the next attempt finds out.
//! - The last applied objects are kept in `state_dir` ([`cache`]), with
//!   what etcd held then. At start ([`start`]), a node serves them while
//!   etcd is unreachable, and applies etcd's revisions since one by one,
//!   as its peers did, so that a restart neither takes a version they
//!   refused nor refuses one they took.
//!
//! The node's own file holds only what is per node; it is still watched
//! and reloaded (SIGHUP) like in file mode, and never written.

mod apply;
mod cache;
mod follow;
mod start;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use jwtgate_config::{
    check_node_file, ConfigErrors, EtcdSettings, ObjectKind, RawConfig, SharedObjects,
};
use jwtgate_etcd::{Etcd, EtcdError, Expect, Write};
use jwtgate_proxy::metrics;
use jwtgate_state::StateDir;
use serde_json::{json, Value};
use tokio::sync::{watch, Mutex};
use tracing::{info, warn};

use super::file::{log_rejection, Rejection};
use super::{BoxFuture, ConfigSource, MakeEdit};
use crate::check::compile_text;
use crate::error::AdminError;
use crate::live::{ReloadOutcome, Running, Trigger};
use crate::protect;
use apply::Objects;

/// How often an admin write runs again after a conflict before giving up.
/// Any change under the prefix is a conflict (an edit is checked against
/// the whole config), so busy writers on several nodes collide often; a
/// random pause after each conflict keeps them from colliding in step.
const WRITE_ATTEMPTS: usize = 32;
/// The longest pause after a conflict; the first is up to 5 ms, doubled
/// with each conflict.
const CONFLICT_PAUSE_MAX: Duration = Duration::from_millis(250);
/// How long an admin write waits for the node to apply its own commit.
const APPLY_WAIT: Duration = Duration::from_secs(3);
/// How many times in a row an admin write waits [`APPLY_WAIT`] in vain for
/// the node to apply the newest change under the prefix after a conflict
/// before it answers 503: a node that applies etcd's changes more slowly
/// than they come (a backlog of large objects, each revision checked)
/// conflicts again at every attempt, and 32 attempts held the write for
/// minutes (an outside audit).
const BEHIND_TRIES: u32 = 2;
/// How long, in dial timeouts, an admin write keeps trying while etcd does
/// not answer (an election, a member lost) before it answers 503.
const UNAVAILABLE_TRIES_FOR: u32 = 2;
/// The first pause before trying again after etcd did not answer; doubled
/// each time.
const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(100);

/// Where the node stands with etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Never reached etcd, nothing cached: no routes yet.
    Connecting,
    /// etcd unreachable since start; serving the cached objects.
    FromCache,
    /// Watching etcd.
    Following,
    /// Lost etcd after following it; serving what was applied.
    Reconnecting,
    /// etcd came back empty at an older revision (restarted without its
    /// data): the node keeps what it applied until objects arrive again.
    Held,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::FromCache => "from_cache",
            Phase::Following => "following",
            Phase::Reconnecting => "reconnecting",
            Phase::Held => "held",
        }
    }
}

/// What `/status` shows of the objects: how many are live, the
/// refusals, and the protected routes taken unchecked across a gap.
struct View {
    objects: usize,
    refused: Value,
    unchecked: Vec<Value>,
}

/// See `Shared::uninstalled`.
struct Uninstalled {
    source: RawConfig,
    config: jwtgate_config::Config,
    revision: i64,
    /// Objects changed since the last install.
    changed: usize,
    from: String,
}

struct Shared {
    objects: Objects,
    phase: Phase,
    /// A config the watch applied and has not installed yet: revisions
    /// already received are applied one by one, each checked as always,
    /// and only the last config is installed (`EtcdSource::install_applied`).
    uninstalled: Option<Uninstalled>,
    /// Whether the next catch-up must read everything (after a compaction
    /// or once a held node sees objects again).
    full_reload: bool,
    /// Set when etcd, back after a loss, no longer held what this node
    /// applied at its last revision, although its revision is not behind
    /// (its data lost, then other writes): the next full reload treats it
    /// as a revision that went back.
    history_lost: bool,
    /// Set when etcd compacted revisions this node had not applied (found
    /// at a catch-up, or by a watch that fell behind): the next full
    /// reload cannot check those revisions one by one (see
    /// `Objects::apply_across_gap`). Not set when a replay merely stopped
    /// early, or a held node sees objects again: those check as always.
    history_gap: bool,
}

pub struct EtcdSource {
    settings: EtcdSettings,
    /// The node's own file.
    path: PathBuf,
    state_dir: StateDir,
    shared: Mutex<Shared>,
    /// A copy of the phase for `/status` without waiting on the lock, and
    /// for admin writes waiting until the node caught up with etcd.
    phase: watch::Sender<Phase>,
    /// The connection, once made (a member's client is made again after
    /// it failed, `jwtgate_etcd`).
    client: StdMutex<Option<Etcd>>,
    /// The control plane's runtime, where the connections to etcd run
    /// (the follower's thread may be busy compiling).
    runtime: tokio::runtime::Handle,
    /// The last revision applied, for admin writes waiting on their own.
    applied: watch::Sender<i64>,
    /// Admin writes of this node, one at a time.
    writer: Mutex<()>,
    /// The last objects written to the cache were these (revision, count).
    cache_written: StdMutex<(i64, usize)>,
    /// Local copies made so far, and the last one written: the writes run
    /// on blocking threads in any order, and an older copy must never
    /// replace a newer one (a restart while etcd is down would bring back
    /// what was deleted since).
    copies_made: std::sync::atomic::AtomicU64,
    copy_written: Arc<StdMutex<u64>>,
    /// What `/status` shows of the objects.
    view: StdMutex<View>,
    /// Why etcd is not followed, and since when (unix seconds): cleared
    /// once it is.
    trouble: StdMutex<Option<(String, i64)>>,
}

impl EtcdSource {
    /// Loads the objects (from etcd, else from the cache), installs them,
    /// and starts following etcd. `node`: the node's own file, read and
    /// checked by the caller.
    pub async fn start(
        settings: EtcdSettings,
        node: RawConfig,
        running: Arc<Running>,
        state_dir: StateDir,
        stop: watch::Receiver<bool>,
    ) -> Arc<EtcdSource> {
        let source = Arc::new(EtcdSource {
            path: running.path().to_owned(),
            state_dir,
            shared: Mutex::new(Shared {
                objects: Objects {
                    node: node.node_part(),
                    ..Objects::default()
                },
                phase: Phase::Connecting,
                uninstalled: None,
                full_reload: true,
                history_lost: false,
                history_gap: false,
            }),
            phase: watch::channel(Phase::Connecting).0,
            runtime: tokio::runtime::Handle::current(),
            client: StdMutex::new(None),
            applied: watch::channel(0).0,
            writer: Mutex::new(()),
            cache_written: StdMutex::new((0, 0)),
            copies_made: std::sync::atomic::AtomicU64::new(0),
            copy_written: Arc::new(StdMutex::new(0)),
            view: StdMutex::new(View {
                objects: 0,
                refused: json!([]),
                unchecked: Vec::new(),
            }),
            trouble: StdMutex::new(None),
            settings,
        });
        source.initial_load(&running).await;
        spawn_follower(Arc::clone(&source), Arc::clone(&running), stop);
        source
    }

    fn client(&self) -> Option<Etcd> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    fn set_client(&self, etcd: Option<Etcd>) {
        if let Ok(mut c) = self.client.lock() {
            *c = etcd;
        }
    }

    fn set_phase(&self, shared: &mut Shared, phase: Phase) {
        // Reaching etcd, at start or after a loss, is said once, whichever
        // way the node caught up (a watch, or a full read).
        if phase == Phase::Following
            && matches!(
                shared.phase,
                Phase::Connecting | Phase::FromCache | Phase::Reconnecting
            )
        {
            info!(revision = shared.objects.revision, "following etcd");
        }
        // Connected again, whatever etcd held (`held`: it came back empty).
        if matches!(phase, Phase::Following | Phase::Held) {
            self.clear_trouble();
        }
        shared.phase = phase;
        self.phase.send_replace(phase);
    }

    /// Notes why the follower could not reach or read etcd, for `/status`
    /// (`error`, and `since`: the first failure of the run).
    pub(super) fn trouble(&self, error: &str) {
        if let Ok(mut trouble) = self.trouble.lock() {
            let since = trouble.as_ref().map_or_else(
                || {
                    use jwtgate_core::clock::Clock;
                    jwtgate_core::clock::SystemClock.now_unix()
                },
                |(_, since)| *since,
            );
            *trouble = Some((error.to_owned(), since));
        }
    }

    /// etcd answers: `/status` has no error to show.
    pub(super) fn clear_trouble(&self) {
        if let Ok(mut trouble) = self.trouble.lock() {
            *trouble = None;
        }
    }

    pub(super) fn phase_name(&self) -> &'static str {
        self.phase.borrow().as_str()
    }

    fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    /// Reads every object and applies the difference with what is live.
    async fn full_reload(&self, etcd: &Etcd, running: &Running) -> Result<(), EtcdError> {
        let snapshot = etcd.snapshot().await?;
        self.apply_snapshot(snapshot, running).await;
        Ok(())
    }

    /// Applies the difference between what etcd holds and what is live:
    /// every object whose version is neither live nor already refused, and
    /// the deletion of every live object etcd no longer holds.
    async fn apply_snapshot(&self, snapshot: jwtgate_etcd::Snapshot, running: &Running) {
        for stray in &snapshot.strays {
            // A &str: quoted in a text line, the key itself in a JSON one.
            let key = printable(stray);
            warn!(
                key = key.as_str(),
                "etcd: a key under the prefix that names no route, consumer or provider; ignored"
            );
        }
        let mut shared = self.shared.lock().await;
        let history_lost = std::mem::take(&mut shared.history_lost);
        let history_gap = std::mem::take(&mut shared.history_gap);
        let went_back = snapshot.revision < shared.objects.revision || history_lost;
        if went_back && snapshot.objects.is_empty() && !shared.objects.live.is_empty() {
            if shared.phase != Phase::Held {
                tracing::error!(
                    applied = shared.objects.revision,
                    etcd = snapshot.revision,
                    "etcd came back empty, without the revisions this node applied (restarted without its data?): keeping the {} objects applied; admin writes answer 503 until objects are pushed again (jwtgate config push)",
                    shared.objects.live.len()
                );
            }
            shared.objects.stored.clear();
            shared.objects.forget_refusals_of_absent(&BTreeSet::new());
            // The live objects' mod revisions belong to the lost history:
            // the new one numbers its revisions from 1 again, so a pushed
            // object may get the same number, with another value or not,
            // and pass for the live version (left unapplied, its key
            // unknown to admin writes, which then conflicted for good).
            // 0 is no key's mod revision.
            for version in shared.objects.versions.values_mut() {
                *version = 0;
            }
            self.update_view(&shared.objects);
            shared.objects.revision = snapshot.revision;
            shared.full_reload = false;
            self.set_phase(&mut shared, Phase::Held);
            let _ = self.applied.send_replace(snapshot.revision);
            return;
        }
        if went_back {
            warn!(
                applied = shared.objects.revision,
                etcd = snapshot.revision,
                "etcd no longer holds the revisions this node applied (a restored or another etcd): following what it holds now"
            );
            shared.objects.revision = 0;
        }
        let in_etcd: BTreeSet<jwtgate_config::ObjectId> = snapshot
            .objects
            .iter()
            .map(|o| (o.kind, o.name.clone()))
            .collect();
        shared.objects.forget_refusals_of_absent(&in_etcd);
        // What changed in revisions etcd compacted before this node saw
        // them: objects whose version is newer than the node's revision,
        // and those deleted since (see `Objects::apply_across_gap`).
        // Nothing otherwise: every change is checked. Another history (a
        // wiped or restored etcd, other endpoints) is checked too: the
        // nodes that saw it come back empty (`held`) check the objects
        // pushed again, so one that learns of it later, on its local copy
        // or after a lost connection, must check them the same way (it
        // took a weakened protected route that its peers refused).
        let gap = history_gap;
        let objects = &shared.objects;
        let mut unseen: BTreeSet<jwtgate_config::ObjectId> = BTreeSet::new();
        if gap {
            let in_etcd: BTreeMap<jwtgate_config::ObjectId, i64> = snapshot
                .objects
                .iter()
                .map(|o| ((o.kind, o.name.clone()), o.mod_revision))
                .collect();
            unseen.extend(
                in_etcd
                    .iter()
                    .filter(|(_, &r)| went_back || r > objects.revision)
                    .map(|(id, _)| id.clone()),
            );
            unseen.extend(
                objects
                    .stored
                    .keys()
                    .filter(|id| !in_etcd.contains_key(*id))
                    .cloned(),
            );
        }
        // Settled: the version etcd holds is the live one, or was refused
        // already (not reported twice). A refused deletion settles no
        // version etcd holds (its number is the delete's revision, maybe of
        // a history etcd lost).
        let settled = |id: &jwtgate_config::ObjectId, mod_revision: i64| {
            objects.versions.get(id) == Some(&mod_revision)
                || objects.refused.get(id).is_some_and(|r| {
                    r.mod_revision == mod_revision && !matches!(r.retry, Some(None))
                })
        };
        let mut incoming = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for o in snapshot.objects {
            let id = (o.kind, o.name);
            if went_back || !settled(&id, o.mod_revision) {
                incoming.push((id.clone(), Some((o.value, o.mod_revision))));
            }
            seen.insert(id);
        }
        // Gone from etcd: deleted, unless that deletion was refused already.
        let deletion_refused = |id: &jwtgate_config::ObjectId| {
            objects
                .refused
                .get(id)
                .is_some_and(|r| matches!(r.retry, Some(None)))
        };
        let mut known: Vec<_> = objects
            .stored
            .keys()
            .chain(objects.versions.keys())
            .filter(|id| !seen.contains(*id) && (went_back || !deletion_refused(id)))
            .cloned()
            .collect();
        known.sort();
        known.dedup();
        for id in known {
            incoming.push((id, None));
        }
        let before = went_back.then(|| shared.objects.live.clone());
        self.apply_locked_across_gap(
            &mut shared,
            running,
            incoming,
            snapshot.revision,
            "etcd",
            &unseen,
        );
        if let Some(before) = before {
            said_what_went_back(&before, &shared.objects.live);
        }
        self.install_applied(&mut shared, running);
        shared.full_reload = false;
        self.set_phase(&mut shared, Phase::Following);
    }

    /// Applies changes under the lock: install, log, count, cache.
    /// `from` says where the changes come from, for the log.
    fn apply_locked(
        &self,
        shared: &mut Shared,
        running: &Running,
        incoming: Vec<apply::Incoming>,
        revision: i64,
        from: &str,
    ) {
        self.apply_locked_across_gap(shared, running, incoming, revision, from, &BTreeSet::new());
        self.install_applied(shared, running);
    }

    /// Like [`EtcdSource::apply_locked`], leaving the config it makes for
    /// [`EtcdSource::install_applied`]: the watch applies the revisions
    /// already received one by one, as always, and installs once. Each
    /// install builds the whole gateway: a burst of single-object writes
    /// had a node with 3 000 consumers 35 s behind (an outside audit).
    fn apply_uninstalled(
        &self,
        shared: &mut Shared,
        running: &Running,
        incoming: Vec<apply::Incoming>,
        revision: i64,
    ) {
        self.apply_locked_across_gap(
            shared,
            running,
            incoming,
            revision,
            "etcd",
            &BTreeSet::new(),
        );
    }

    /// Installs the config applied and not installed yet, if any, and
    /// says so; then `/status`, the applied revision and the local copy.
    fn install_applied(&self, shared: &mut Shared, running: &Running) {
        if let Some(u) = shared.uninstalled.take() {
            let holds = |c: &RawConfig| {
                !(c.routes.is_empty() && c.consumers.is_empty() && c.providers.is_empty())
            };
            // Applied, as every revision is (SPEC §6), but not said as any
            // other change: one `etcdctl del --prefix` against the wrong
            // cluster left every node serving no route, said in an INFO
            // line (an outside audit).
            if holds(&running.source()) && !holds(&u.source) {
                warn!(
                    revision = u.revision,
                    "etcd holds no route, consumer or provider under {} any more: this node \
                     now serves none (every request is a 404); if that was not meant, \
                     `jwtgate config push` puts them back",
                    self.prefix()
                );
            }
            running.install(u.source, u.config);
            metrics::record_config_reload("applied");
            info!(
                outcome = "applied",
                revision = u.revision,
                changed = u.changed,
                "config applied from {}",
                u.from
            );
        }
        self.update_view(&shared.objects);
        let _ = self.applied.send_replace(shared.objects.revision);
        // Held, the node's objects are not etcd's (its revision is the new
        // etcd's, what it stores is cleared): a copy written then would
        // restart the node following an etcd that lost its data, every
        // route dropped (the review of this change).
        if shared.phase != Phase::Held {
            self.save_cache(&shared.objects);
        }
    }

    /// `unseen`: the objects that changed in revisions this node could not
    /// see (`Objects::apply_across_gap`).
    fn apply_locked_across_gap(
        &self,
        shared: &mut Shared,
        running: &Running,
        incoming: Vec<apply::Incoming>,
        revision: i64,
        from: &str,
        unseen: &BTreeSet<jwtgate_config::ObjectId>,
    ) {
        let compile = |source: &RawConfig| running.compile_change(source, Vec::new(), "");
        let applied = shared
            .objects
            .apply_across_gap(incoming, revision, &compile, unseen);
        for route in &applied.unchecked {
            warn!(
                route = %route,
                revision,
                "the protected policy of route {route:?} changed in etcd revisions this node did not see (compacted): its protection could not be checked step by step, so for the objects that changed meanwhile this node follows what etcd holds"
            );
        }
        for ((kind, name), refusal) in &applied.refused {
            metrics::record_config_reload(refusal.outcome);
            // A &str: quoted in a text line, the key itself in a JSON one
            // (a Debug value kept its quotes there); control characters
            // escaped, so that no line of the log can be forged.
            let key = printable(&format!("{}/{}/{name}", self.prefix(), kind.dir()));
            warn!(
                outcome = refusal.outcome,
                key = key.as_str(),
                revision = refusal.mod_revision,
                "etcd object rejected; this node keeps its previous version: {}",
                printable(&refusal.reason)
            );
        }
        if let Some((source, config)) = applied.config {
            let changed =
                applied.changed.len() + shared.uninstalled.as_ref().map_or(0, |u| u.changed);
            shared.uninstalled = Some(Uninstalled {
                source,
                config,
                revision,
                changed,
                from: from.to_owned(),
            });
        }
    }

    /// Writes the cache when what is live moved on.
    fn save_cache(&self, objects: &Objects) {
        let mark = (objects.revision, objects.live.len());
        if let Ok(mut last) = self.cache_written.lock() {
            if *last == mark {
                return;
            }
            *last = mark;
        }
        let bytes = cache::encode(self.prefix(), objects);
        let path = self.state_dir.etcd_config();
        let copy = 1 + self
            .copies_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let written = Arc::clone(&self.copy_written);
        tokio::task::spawn_blocking(move || {
            // One write at a time, and none over a newer copy.
            let mut written = written.lock().unwrap_or_else(|e| e.into_inner());
            if *written > copy {
                return;
            }
            match jwtgate_state::write_private(&path, &bytes) {
                Ok(()) => *written = copy,
                Err(e) => {
                    warn!(error = %e, "cannot keep a local copy of the config from etcd at {}", path.display())
                }
            }
        });
    }

    async fn update_inner(
        &self,
        running: &Running,
        edit: MakeEdit<'_>,
    ) -> Result<Vec<String>, AdminError> {
        // etcd cannot judge the edit now: what is wrong with it whatever
        // etcd holds is said at once, not as a 503 after the wait (an
        // outside audit: a consumer's missing secret was "etcd
        // unavailable" until etcd came back, then a 400).
        if *self.phase.borrow() != Phase::Following {
            if let Some(refused) = invalid_whatever_etcd_holds(running, edit) {
                return Err(refused);
            }
        }
        let _one_at_a_time = self.writer.lock().await;
        // What the last attempt that had something to write brings: an
        // attempt after a lost answer finds its change already live.
        let mut warnings = Vec::new();
        let mut pause = UNAVAILABLE_PAUSE;
        // Why etcd did not answer the last attempt, if it did not, and
        // since when it has not been answering.
        let mut unanswered: Option<String> = None;
        // Whether an unanswered write may have reached etcd (else each one
        // was refused a connection: certainly not made).
        let mut maybe_sent = false;
        let mut unanswered_since: Option<tokio::time::Instant> = None;
        let mut conflicts = 0u32;
        let mut behind = 0u32;
        // A precondition (If-Match, If-None-Match) this node found false is
        // judged again once, after catching up with etcd's newest revision:
        // a tag read from a node further ahead must not be refused because
        // this one has not applied that version yet.
        let mut recheck = Recheck::No;
        for attempt in 0..WRITE_ATTEMPTS {
            let Some(etcd) = self.client() else {
                return Err(unavailable("not connected yet"));
            };
            if recheck == Recheck::Due {
                recheck = Recheck::Done;
                // etcd's revision, past deletions too (which leave no key
                // to date them): a precondition is judged on all of it.
                if let Ok((now, _)) = etcd.revision().await {
                    self.wait_applied(now).await;
                }
            }
            // Judged against what etcd holds, never against what a lost
            // connection left: a write that reached etcd before this node
            // caught up with it was checked against objects etcd may no
            // longer hold, and written into an etcd that came back empty
            // ended the hold (every other route dropped).
            if !self
                .caught_up(self.settings.dial_timeout * UNAVAILABLE_TRIES_FOR)
                .await
            {
                return Err(if maybe_sent {
                    unknown_outcome()
                } else {
                    unavailable("this node has not caught up with it since the connection was lost")
                });
            }
            let (writes, read_at, brings, newest) = {
                let mut shared = self.shared.lock().await;
                if shared.phase == Phase::Held {
                    return Err(unavailable(
                        "it came back without its data; push the config again (jwtgate config push) before changing it through the API",
                    ));
                }
                // The edit is made on what is installed, and conditioned
                // on the versions applied: the two must be the same.
                self.install_applied(&mut shared, running);
                let current = running.source();
                let e = match edit(&current) {
                    Ok(e) => e,
                    Err(
                        refused @ (AdminError::Changed(_)
                        | AdminError::Exists { .. }
                        | AdminError::NotFound(_)),
                    ) => {
                        // An attempt left unanswered may have committed this
                        // very write: the condition it was asked under, or
                        // the object a deletion names, now fails against it,
                        // so "nothing was written" could be false.
                        if maybe_sent {
                            return Err(unknown_outcome());
                        }
                        if recheck == Recheck::No && attempt + 1 < WRITE_ATTEMPTS {
                            recheck = Recheck::Due;
                            continue;
                        }
                        return Err(refused);
                    }
                    Err(e) => return Err(e),
                };
                let config = running
                    .compile_change(&e.source, e.problems, &e.at)
                    .map_err(|errors| AdminError::invalid(format!("invalid {}", e.what), errors))?;
                protect::check(&current, &e.source).map_err(AdminError::Protected)?;
                let brings = running.new_warnings(&e.source, &config);
                let next = SharedObjects::of(&e.source);
                let mut changes = shared.objects.live.changes_to(&next);
                // The object the edit is about may be one whose version in
                // etcd this node refused: etcd then holds something else
                // than what is live here, so the edit writes what it says
                // even if that is what is live (a repair through the API
                // answered 200 and left etcd as it was).
                let (kind, name) = &e.object;
                let refused_here = shared.objects.refused.contains_key(&e.object);
                if refused_here && e.versioned {
                    // The version this node holds is not etcd's: a tag
                    // naming it must not let the write replace the newer.
                    return Err(AdminError::Changed(format!(
                        "{}: this node holds an older version than etcd (it refused the \
                         newer one: see /status), so a version named by If-Match or \
                         If-None-Match cannot be judged here; nothing was written",
                        e.what
                    )));
                }
                let listed = changes.iter().any(|(id, _)| id == &e.object);
                let held = shared.objects.stored.contains_key(&e.object);
                let wanted = next.get(*kind, name);
                if refused_here && !listed && (wanted.is_some() || held) {
                    changes.push((e.object.clone(), wanted));
                }
                let writes: Vec<Write> = changes
                    .into_iter()
                    .map(|((kind, name), object)| {
                        let expect = match shared.objects.stored.get(&(kind, name.clone())) {
                            Some(r) => Expect::ModRevision(*r),
                            None => Expect::Absent,
                        };
                        Write {
                            kind,
                            name,
                            value: object.map(|o| o.to_json()),
                            expect,
                        }
                    })
                    .collect();
                if let Some((w, problem)) = writes.iter().find_map(|w| {
                    let problem = w.value.as_ref().and(jwtgate_etcd::name_problem(&w.name))?;
                    Some((w, problem))
                }) {
                    let field = jwtgate_etcd::name_field(w.kind);
                    return Err(AdminError::invalid(
                        format!("invalid {}", e.what),
                        ConfigErrors::single(field, problem),
                    ));
                }
                info!(target: "jwtgate::admin", change = %e.what, writes = writes.len(), "admin change: writing to etcd");
                // The newest key etcd held when this edit was read, which it
                // must still hold: one that came back empty since (a wipe
                // within this attempt) takes no write.
                let newest = shared
                    .objects
                    .stored
                    .iter()
                    .max_by_key(|(_, r)| **r)
                    .map(|((kind, name), r)| (*kind, name.clone(), *r));
                (writes, shared.objects.revision, brings, newest)
            };
            if writes.is_empty() {
                return Ok(warnings);
            }
            warnings = brings;
            let held = newest
                .as_ref()
                .map(|(kind, name, r)| (*kind, name.as_str(), *r));
            match etcd.commit(&writes, read_at, held).await {
                Ok(revision) => {
                    self.apply_own_write(running, writes, revision).await;
                    self.wait_applied(revision).await;
                    return Ok(warnings);
                }
                Err(EtcdError::Conflict) => {
                    // Someone else wrote first (or this very write, committed
                    // by an attempt whose answer was lost): catch up and edit
                    // again; nothing is left to write if it was this one.
                    // The newest change under the prefix, not etcd's revision,
                    // which writes outside it move too: a node that applied
                    // every change of its prefix waited for one that never
                    // came, and was then said to be behind (a review).
                    match etcd.newest_under_prefix().await {
                        Ok(newest) => {
                            unanswered = None;
                            if self.wait_applied(newest).await {
                                behind = 0;
                            } else {
                                behind += 1;
                                if behind >= BEHIND_TRIES {
                                    return Err(if maybe_sent {
                                        unknown_outcome()
                                    } else {
                                        self.behind(newest).await
                                    });
                                }
                            }
                        }
                        Err(e) => unanswered = Some(e.to_string()),
                    }
                    conflicts += 1;
                    tokio::time::sleep(conflict_pause(conflicts)).await;
                }
                // Refused (authentication, permission, a request etcd does
                // not take): certainly not made, and the same again.
                Err(EtcdError::Refused(why)) => {
                    warn!(error = %why, "admin change: etcd refused the write; nothing was written");
                    return Err(AdminError::SourceUnavailable(format!(
                        "etcd refused the write ({}); the change was not made: check \
                         config_source's username and password and what etcd lets that user do",
                        printable(&why)
                    )));
                }
                // Not answered is not refused: a leader lost after it
                // replicated the write commits it all the same. Trying again
                // once etcd answers settles it (committed: a conflict, then
                // nothing left to write; not committed: it is now), so the
                // answer says what happened unless etcd stays away.
                Err(e) => {
                    maybe_sent |= !e.never_sent();
                    unanswered = Some(e.to_string());
                }
            }
            if let Some(e) = &unanswered {
                // Counted from the first attempt left unanswered, so that
                // one more always follows it (a timeout may also be this
                // node's thread busy applying a large config while the
                // answer waited).
                let since = *unanswered_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() + pause > self.settings.dial_timeout * UNAVAILABLE_TRIES_FOR {
                    break;
                }
                warn!(error = %e, "etcd did not answer an admin write; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
        match unanswered {
            Some(e) if !maybe_sent => {
                warn!(error = %e, "admin change: etcd could not be reached; nothing was written");
                Err(unavailable("it could not be reached"))
            }
            Some(e) => {
                // The cause is logged; the client learns what it can act on.
                warn!(error = %e, "admin change: etcd did not answer; whether it was made is unknown");
                Err(unknown_outcome())
            }
            None => Err(AdminError::Protected(format!(
                "etcd kept changing under this write ({WRITE_ATTEMPTS} attempts); try again"
            ))),
        }
    }

    /// Applies this node's own write, committed at `revision`, without
    /// waiting for the watch to bring it back: the transaction held only if
    /// nothing under the prefix changed since the revision the edit was
    /// read at, so at `revision` etcd holds what this node applied and
    /// `writes`, which the watch will deliver as that revision's changes
    /// (applied here as the watch applies them; its delivery is then an
    /// echo). Waiting for the watch, the node that answered 200 served the
    /// old version for as long as its watch was stuck (on a hung etcd
    /// member, 15-26 s: an outside chaos audit rotated a leaked secret, and
    /// the old one kept passing there). Left to the watch when the node
    /// already applied `revision` or later, or does not follow etcd now:
    /// a catch-up (a full read of the prefix after a compaction, say) may
    /// have read etcd before this commit, and would take it for a revision
    /// that went back; every catch-up runs outside `following`.
    async fn apply_own_write(&self, running: &Running, writes: Vec<Write>, revision: i64) {
        let mut shared = self.shared.lock().await;
        if shared.phase != Phase::Following {
            return;
        }
        if shared.objects.revision >= revision {
            // Applied by the watch, perhaps not installed yet: the write
            // answers once it is live here.
            self.install_applied(&mut shared, running);
            return;
        }
        let incoming = writes
            .into_iter()
            .map(|w| ((w.kind, w.name), w.value.map(|v| (v, revision))))
            .collect();
        self.apply_locked(
            &mut shared,
            running,
            incoming,
            revision,
            "this node's admin write",
        );
    }

    /// Waits (bounded) until this node follows etcd, or found that etcd
    /// came back without its data (`held`). False if it did not in time.
    async fn caught_up(&self, within: Duration) -> bool {
        let mut rx = self.phase.subscribe();
        let caught_up = rx.wait_for(|p| matches!(p, Phase::Following | Phase::Held));
        let done = tokio::time::timeout(within, caught_up).await;
        matches!(done, Ok(Ok(_)))
    }

    /// Waits (bounded) until this node applied `revision`; false if it
    /// did not in time.
    async fn wait_applied(&self, revision: i64) -> bool {
        let mut rx = self.applied.subscribe();
        let applied = tokio::time::timeout(APPLY_WAIT, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok());
        if !applied {
            warn!(
                revision,
                "etcd is at this revision, and this node has not applied it yet; it will once the watch delivers it"
            );
        }
        applied
    }

    /// The answer to a write this node cannot judge: it is behind etcd
    /// (whose newest change under the prefix is at `newest`) and did not
    /// catch up in [`BEHIND_TRIES`] waits in a row.
    async fn behind(&self, newest: i64) -> AdminError {
        let applied = self.shared.lock().await.objects.revision;
        AdminError::SourceUnavailable(format!(
            "this node is behind etcd (it has applied revision {applied}, etcd's newest change \
             is at {newest}) and did not catch up within {} s, so it cannot judge the change; \
             the change was not made: try again, or through another node (/status says where \
             each stands)",
            (APPLY_WAIT * BEHIND_TRIES).as_secs()
        ))
    }

    async fn reload_inner(&self, running: &Running, trigger: Trigger) -> ReloadOutcome {
        let path = self.path.display().to_string();
        let text = match super::file::read_config(&self.path).await {
            Ok(t) => t,
            Err(e) => {
                let r = Rejection::Invalid(ConfigErrors::single(
                    "",
                    format!("cannot read {path}: {e}"),
                ));
                return log_rejection(&r, trigger, &path);
            }
        };
        let mut shared = self.shared.lock().await;
        let node = match compile_text(&text, running.base_dir()) {
            Ok((node, _)) => node,
            Err(errors) => return log_rejection(&Rejection::Invalid(errors), trigger, &path),
        };
        let problems = check_node_file(&node);
        if !problems.is_empty() {
            return log_rejection(&Rejection::Invalid(ConfigErrors(problems)), trigger, &path);
        }
        if node.node_part() == shared.objects.node && trigger == Trigger::FileChanged {
            return ReloadOutcome::Unchanged;
        }
        let previous = std::mem::replace(&mut shared.objects.node, node.node_part());
        let source = shared.objects.source();
        match running.compile(&source, Vec::new(), "") {
            Ok(config) => {
                // Made of every object applied: one applied and not yet
                // installed is in it.
                shared.uninstalled = None;
                running.install(source, config);
                metrics::record_config_reload("applied");
                info!(
                    outcome = "applied",
                    ?trigger,
                    "node config reloaded from {path}"
                );
                ReloadOutcome::Applied
            }
            Err(errors) => {
                shared.objects.node = previous;
                log_rejection(&Rejection::Invalid(errors), trigger, &path)
            }
        }
    }

    fn status_value(&self) -> Value {
        let phase = *self.phase.borrow();
        let mut v = json!({
            "kind": "etcd",
            "state": phase.as_str(),
            "revision": *self.applied.borrow(),
        });
        if let Ok(view) = self.view.lock() {
            v["objects"] = json!(view.objects);
            v["refused"] = view.refused.clone();
            if !view.unchecked.is_empty() {
                v["unchecked"] = json!(view.unchecked);
            }
        }
        if phase != Phase::Following {
            if let Ok(Some((error, since))) = self.trouble.lock().as_deref() {
                v["error"] = json!(error);
                v["since"] = json!(since);
            }
        }
        v
    }

    /// Keeps what `/status` shows of the objects in step (the follower
    /// applies on a thread of its own: `/status` never waits for it).
    fn update_view(&self, objects: &Objects) {
        let refused: Vec<Value> = objects
            .refused
            .iter()
            .map(|((kind, name), r)| {
                json!({
                    "key": format!("{}/{}/{name}", self.prefix(), kind.dir()),
                    "mod_revision": r.mod_revision,
                    "outcome": r.outcome,
                    "reason": r.reason,
                })
            })
            .collect();
        let unchecked = objects
            .unchecked
            .iter()
            .map(|(route, revision)| {
                json!({
                    "key": format!("{}/{}/{route}", self.prefix(), ObjectKind::Route.dir()),
                    "mod_revision": revision,
                })
            })
            .collect();
        if let Ok(mut view) = self.view.lock() {
            *view = View {
                objects: objects.live.len(),
                refused: Value::Array(refused),
                unchecked,
            };
        }
    }
}

/// What a node would serve from etcd's objects (`(kind, name, value)`):
/// the config, and why each refused object was refused. For the command
/// line's token tools, which must see what the nodes see.
pub fn as_a_node_would(
    node: &RawConfig,
    objects: Vec<(jwtgate_config::ObjectKind, String, Vec<u8>)>,
    base_dir: &std::path::Path,
) -> (Result<jwtgate_config::Config, ConfigErrors>, Vec<String>) {
    let mut o = Objects {
        node: node.node_part(),
        ..Objects::default()
    };
    let incoming = objects
        .into_iter()
        .map(|(kind, name, value)| ((kind, name), Some((value, 0))))
        .collect();
    let compile =
        |source: &RawConfig| crate::check::compile_checked(source, Vec::new(), "", base_dir);
    let applied = o.apply(incoming, 0, &compile);
    let refused = applied.refused.into_iter().map(|(_, r)| r.reason).collect();
    let config = match applied.config {
        Some((_, config)) => Ok(config),
        None => compile(&o.source()),
    };
    (config, refused)
}

/// The objects a node kept in its local copy in `state_dir` (what it
/// applied last) and the etcd revision they are at, for
/// [`as_a_node_would`] when etcd does not answer a command; `Ok(None)` if
/// the node kept none for `prefix`.
pub fn local_copy(state_dir: &StateDir, prefix: &str) -> Result<Option<LocalCopy>, String> {
    let path = state_dir.etcd_config();
    let Some(cached) = cache::load(&path, prefix)? else {
        return Ok(None);
    };
    let objects = cached
        .incoming
        .into_iter()
        .filter_map(|((kind, name), value)| value.map(|(bytes, _)| (kind, name, bytes)))
        .collect();
    Ok(Some(LocalCopy {
        path,
        revision: cached.revision,
        objects,
    }))
}

/// What [`local_copy`] finds.
pub struct LocalCopy {
    pub path: PathBuf,
    pub revision: i64,
    pub objects: Vec<(jwtgate_config::ObjectKind, String, Vec<u8>)>,
}

/// A random pause of up to 5 ms after the first conflict, doubled with each
/// one, at most [`CONFLICT_PAUSE_MAX`].
fn conflict_pause(conflicts: u32) -> Duration {
    let ceiling = Duration::from_millis(5)
        .saturating_mul(1 << conflicts.min(16))
        .min(CONFLICT_PAUSE_MAX);
    let mut random = [0u8; 4];
    // Without randomness, the longest pause: still bounded.
    let fraction = match aws_lc_rs::rand::fill(&mut random) {
        Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    ceiling.mul_f64(fraction)
}

/// Runs the follower on a thread and a runtime of its own: applying a
/// revision compiles the whole config, which on a large one takes long
/// enough to hold up everything else on the control plane's one thread:
/// the admin API, and the timeouts of its writes to etcd, which then
/// expire while etcd's answer waits to be read.
fn spawn_follower(source: Arc<EtcdSource>, running: Arc<Running>, stop: watch::Receiver<bool>) {
    let (s, r, st) = (Arc::clone(&source), Arc::clone(&running), stop.clone());
    let spawned = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            std::thread::Builder::new()
                .name("etcd-follower".into())
                .spawn(move || runtime.block_on(follow::follow(s, r, st)))
        });
    if let Err(e) = spawned {
        warn!(error = %e, "no thread of its own to follow etcd on; following it on the control plane's");
        tokio::spawn(follow::follow(source, running, stop));
    }
}

/// A write etcd may have committed without saying so.
/// Whether a false precondition was judged again after catching up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recheck {
    No,
    Due,
    Done,
}

fn unknown_outcome() -> AdminError {
    AdminError::SourceUnavailable(
        "etcd unavailable: it did not answer the write, so whether the change was \
         made is not known; read it back before trying again"
            .into(),
    )
}

/// The problems of an edit's object that no object in etcd could mend,
/// found by compiling it with the node's part alone: a consumer or a
/// provider by itself, a route beside the providers and consumers this
/// node holds, its references to them left out (etcd may hold what this
/// node has not seen). `None` when none is found, the edit deletes, or
/// it merges a change onto this node's copy of the object, which may be
/// older than etcd's (a review: a PATCH was refused for a field this node's
/// copy lacked).
fn invalid_whatever_etcd_holds(running: &Running, edit: MakeEdit<'_>) -> Option<AdminError> {
    let e = edit(&running.source()).ok().filter(|e| e.whole)?;
    let (kind, name) = &e.object;
    let mut alone = e.source;
    match kind {
        ObjectKind::Route => alone.routes.retain(|r| &r.name == name),
        ObjectKind::Consumer => {
            alone.routes.clear();
            alone.providers.clear();
            alone.consumers.retain(|c| &c.username == name);
        }
        ObjectKind::Provider => {
            alone.routes.clear();
            alone.consumers.clear();
            alone.providers.retain(|p| &p.name == name);
        }
    }
    let at = format!("{}[0]", kind.dir());
    let errors = running.compile_change(&alone, e.problems, &at).err()?;
    let references = ["jwt.providers", "jwt.anonymous_consumer"];
    let own: Vec<_> = errors
        .0
        .into_iter()
        .filter(|err| {
            *kind != ObjectKind::Route
                || !references.iter().any(|r| {
                    err.location
                        .strip_prefix(r)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
                })
        })
        .collect();
    (!own.is_empty()).then(|| AdminError::invalid(format!("invalid {}", e.what), ConfigErrors(own)))
}

/// A write refused before anything was sent to etcd.
fn unavailable(detail: &str) -> AdminError {
    AdminError::SourceUnavailable(format!(
        "etcd unavailable: {detail}; the change was not made"
    ))
}

impl ConfigSource for EtcdSource {
    fn update<'a>(
        &'a self,
        running: &'a Running,
        edit: MakeEdit<'a>,
    ) -> BoxFuture<'a, Result<Vec<String>, AdminError>> {
        Box::pin(self.update_inner(running, edit))
    }

    fn reload<'a>(
        &'a self,
        running: &'a Running,
        trigger: Trigger,
    ) -> BoxFuture<'a, ReloadOutcome> {
        Box::pin(self.reload_inner(running, trigger))
    }

    fn status(&self) -> Option<Value> {
        Some(self.status_value())
    }
}

/// Names what following an etcd that went back in time changed: a
/// consumer deleted since the copy it was restored from is back, and
/// that is a credential the operator revoked (an outside audit found only
/// a count in the log).
fn said_what_went_back(
    before: &jwtgate_config::SharedObjects,
    after: &jwtgate_config::SharedObjects,
) {
    let changes = before.changes_to(after);
    if changes.is_empty() {
        return;
    }
    const SHOWN: usize = 20;
    let mut list: Vec<String> = changes
        .iter()
        .take(SHOWN)
        .map(|((kind, name), now)| {
            let what = match (now, before.get(*kind, name).is_some()) {
                (None, _) => "removed",
                (Some(_), true) => "changed",
                (Some(_), false) => "added",
            };
            format!("{kind} {} ({what})", printable(name))
        })
        .collect();
    if changes.len() > SHOWN {
        list.push(format!("and {} more", changes.len() - SHOWN));
    }
    warn!(
        changed = changes.len(),
        "following the etcd that went back in time changed what this node served: {}; an object \
         deleted since the copy etcd was restored from is back (a consumer's credential too): \
         delete it again if it should stay gone",
        list.join(", ")
    );
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): what an
/// etcd writer put in a key reaches a log line, which it must not be able
/// to end, or colour, or forge a second one after.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}
