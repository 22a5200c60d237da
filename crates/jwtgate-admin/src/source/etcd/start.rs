//! What a node loads at start (SPEC §6): its local copy of what it
//! applied last, if it kept one, then etcd's revisions since, one by one
//! while etcd still has them (else the difference with what etcd holds);
//! the copy alone when etcd does not answer; nothing when there is
//! neither. Starting from the copy, a restarted node runs the same checks
//! on the same revisions as its peers did while it was down.

use std::collections::BTreeMap;

use jwtgate_config::ObjectId;
use jwtgate_etcd::{Etcd, EtcdError};
use tracing::{error, info, warn};

use super::{cache, follow, EtcdSource, Phase};
use crate::live::Running;

impl EtcdSource {
    /// At start: the node's local copy of what it applied last, if any,
    /// then etcd's revisions since (one by one when etcd still has them,
    /// else the difference with what it holds), if etcd answers within the
    /// dial timeout; else the local copy alone, else nothing (no routes
    /// until etcd answers). Starting from the copy, a restarted node runs
    /// the same checks on the same revisions as its peers did while it was
    /// down, so it refuses what they refused and accepts what they
    /// accepted (a protection lifted, then the change it allowed).
    pub(super) async fn initial_load(&self, running: &Running) {
        let started = std::time::Instant::now();
        let path = self.state_dir.etcd_config();
        let (copy, etcd_then) = match cache::load(&path, self.prefix()) {
            Ok(Some(cached)) => {
                let mut shared = self.shared.lock().await;
                self.apply_locked(
                    &mut shared,
                    running,
                    cached.incoming,
                    cached.revision,
                    "its local copy",
                );
                if let Some(stored) = &cached.stored {
                    // Knowing what etcd held then, the follower catches up
                    // from the copy's revision through the watch, one
                    // revision at a time (a full reload only if etcd
                    // compacted them or went back).
                    shared.objects.stored = stored.clone();
                    shared.full_reload = false;
                }
                (Ok(true), cached.stored)
            }
            Ok(None) => (Ok(false), None),
            Err(e) => {
                // Said whether etcd answers or not: without the copy, the
                // node cannot check etcd's changes since it stopped one by
                // one, as its peers did (a version they refused may apply
                // here).
                error!(
                    error = %e,
                    "config source: the local copy of what this node applied from etcd is not used (damaged, or others may write it); it follows what etcd holds, without the refusals its peers made meanwhile: check /status of a peer for refused objects"
                );
                (Err(e), None)
            }
        };
        match Etcd::connect(&self.settings).await {
            Ok(etcd) => match self.load_at_start(&etcd, running, etcd_then).await {
                Ok(()) => {
                    self.set_client(Some(etcd));
                    let shared = self.shared.lock().await;
                    info!(
                        objects = shared.objects.live.len(),
                        refused = shared.objects.refused.len(),
                        revision = shared.objects.revision,
                        load_ms = started.elapsed().as_millis() as u64,
                        "config source ready: etcd {} under {}",
                        self.settings.endpoints.join(","),
                        self.prefix()
                    );
                    return;
                }
                Err(e) => warn!(error = %e, "config source: cannot read etcd at start"),
            },
            Err(e) => warn!(error = %e, "config source: cannot reach etcd at start"),
        }
        match copy {
            Ok(true) => {
                let mut shared = self.shared.lock().await;
                self.set_phase(&mut shared, Phase::FromCache);
                warn!(
                    objects = shared.objects.live.len(),
                    revision = shared.objects.revision,
                    "etcd unreachable at start: serving the last config applied from it ({}); following etcd once it answers",
                    path.display()
                );
            }
            Ok(false) => warn!(
                "etcd unreachable at start and no local copy of its config ({}): serving no routes until etcd answers",
                path.display()
            ),
            Err(_) => warn!(
                "etcd unreachable at start and its local copy is not used (above): serving no routes until etcd answers"
            ),
        }
    }

    /// Brings the node (empty, or at its local copy's revision) to what
    /// etcd holds now. `etcd_then`: what etcd held at the copy's revision.
    pub(super) async fn load_at_start(
        &self,
        etcd: &Etcd,
        running: &Running,
        etcd_then: Option<BTreeMap<ObjectId, i64>>,
    ) -> Result<(), EtcdError> {
        let snapshot = etcd.snapshot().await?;
        if let Some(then) = etcd_then {
            let from = self.shared.lock().await.objects.revision;
            let now: BTreeMap<_, _> = snapshot
                .objects
                .iter()
                .map(|o| ((o.kind, o.name.clone()), o.mod_revision))
                .collect();
            // Unchanged since the copy: no revision to replay (and the
            // watch would have nothing to send). Changed, and etcd no longer
            // holds what the copy says it held then (its data lost, other
            // writes since): nothing to replay either, and what it holds now
            // is taken as from an etcd that went back.
            let renumbered = self.shared.lock().await.objects.renumbered(
                snapshot
                    .objects
                    .iter()
                    .map(|o| ((o.kind, o.name.clone()), o.value.as_slice(), o.mod_revision)),
            );
            if renumbered || (snapshot.revision == from && now != then) {
                // Another history: other objects at the same revision, or
                // other values under the numbers this node applied.
                warn!(
                    applied = from,
                    "etcd does not hold what this node's local copy says it held at that revision (it lost its data, or these are other endpoints)"
                );
                self.shared.lock().await.history_lost = true;
            } else if snapshot.revision > from && now != then {
                match etcd.keys_at(from).await? {
                    Some(keys) if keys.iter().map(|(k, n, r)| ((*k, n.clone()), *r)).eq(then) => {
                        self.replay(etcd, running, from, snapshot.revision).await;
                    }
                    Some(_) => {
                        warn!(
                            applied = from,
                            etcd = snapshot.revision,
                            "etcd does not hold what this node's local copy says it held at that revision (it lost its data, or these are other endpoints)"
                        );
                        self.shared.lock().await.history_lost = true;
                    }
                    // Compacted: the snapshot applies as a difference,
                    // across the gap.
                    None => self.shared.lock().await.history_gap = true,
                }
            }
        }
        self.apply_snapshot(snapshot, running).await;
        Ok(())
    }

    /// Applies etcd's revisions after `from`, up to `to`, one by one from
    /// a watch. Best effort: what it cannot replay (compacted, no answer
    /// in time) the snapshot at `to` applies next, as a difference.
    async fn replay(&self, etcd: &Etcd, running: &Running, from: i64, to: i64) {
        let mut watch = match etcd.watch(from + 1).await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "cannot replay etcd's revisions since the local copy; applying the difference");
                return;
            }
        };
        // Each revision applied as always; the config they make is
        // installed once, when the replay ends.
        loop {
            match tokio::time::timeout(self.settings.dial_timeout, watch.next()).await {
                // A later revision is the follower's: its watch starts
                // after `to`.
                Ok(Ok(batch)) if batch.revision > to => break,
                Ok(Ok(batch)) => {
                    let revision = batch.revision;
                    let incoming = follow::incoming(batch.changes);
                    let mut shared = self.shared.lock().await;
                    self.apply_uninstalled(&mut shared, running, incoming, revision);
                    if revision == to {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    info!(error = %e, "cannot replay etcd's revisions since the local copy; applying the difference");
                    break;
                }
                Err(_) => {
                    warn!(
                        from,
                        to,
                        "etcd sent no revision to replay within {:?}; applying the difference",
                        self.settings.dial_timeout
                    );
                    break;
                }
            }
        }
        let mut shared = self.shared.lock().await;
        self.install_applied(&mut shared, running);
    }
}
