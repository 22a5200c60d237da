//! The task that keeps a node in step with etcd: connect, catch up from
//! the last applied revision (in full when that is impossible), watch,
//! apply each batch; on any loss, reconnect with backoff. Traffic never
//! waits on any of it: requests run on the last installed config.

use std::sync::Arc;
use std::time::Duration;

use jwtgate_etcd::{Batch, Change, Etcd, EtcdError, WatchEnd};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{EtcdSource, Phase};
use crate::live::Running;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Short: a try is one read, and an admin write waits for the node to
/// follow etcd again before it is judged.
/// At 5 s, a loaded three-member etcd's election left the watch down 14 s
/// after etcd had a leader again (CI, `admin_writes_through_a_leader_election`).
const BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(super) async fn follow(
    source: Arc<EtcdSource>,
    running: Arc<Running>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    // Its connection to a member that failed is made afresh when that
    // member is chosen again (`jwtgate_etcd`), credentials included.
    let mut etcd = source.client();
    loop {
        if stopping(&stop) {
            return;
        }
        let result = match &etcd {
            Some(e) => follow_once(&source, &running, e, &mut stop, &mut backoff).await,
            None => match Etcd::connect_on(&source.settings, source.runtime.clone()).await {
                Ok(e) => {
                    etcd = Some(e);
                    continue;
                }
                Err(e) => Err(e.to_string()),
            },
        };
        match result {
            Ok(()) => return, // stopping
            Err(e) => {
                let lost = {
                    let mut shared = source.shared.lock().await;
                    let lost = shared.phase == Phase::Following;
                    if lost {
                        source.set_phase(&mut shared, Phase::Reconnecting);
                        warn!(error = %e, "lost etcd; serving the last applied config and reconnecting");
                    }
                    lost
                };
                source.trouble(&e);
                // Said again once a minute while it lasts, whatever the
                // phase: a node that never reached etcd (a wrong password,
                // a firewall) must not go quiet after its first line.
                static AGAIN: jwtgate_proxy::OncePer = jwtgate_proxy::OncePer::minute();
                if AGAIN.due() && !lost {
                    warn!(error = %e, state = source.phase_name(), "etcd still not followed: retrying (said once a minute at most)");
                } else {
                    tracing::debug!(error = %e, ?backoff, "etcd: retrying");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Catches up, then applies the watch until it ends: `Ok` when stopping,
/// `Err` (why) when etcd was lost or the watch must restart.
async fn follow_once(
    source: &EtcdSource,
    running: &Running,
    etcd: &Etcd,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let (now, _) = etcd.revision().await.map_err(|e| e.to_string())?;
    let (mut full, applied, stored, from_copy, reconnecting) = {
        let shared = source.shared.lock().await;
        let stored: Vec<_> = shared
            .objects
            .stored
            .iter()
            .map(|((kind, name), r)| (*kind, name.clone(), *r))
            .collect();
        (
            shared.full_reload || now < shared.objects.revision,
            shared.objects.revision,
            stored,
            shared.phase == Phase::FromCache && !shared.full_reload,
            shared.phase == Phase::Reconnecting,
        )
    };
    // Started on its local copy while etcd was down: caught up now as it
    // would have been at start. The copy keeps no refusals, so the
    // versions its peers refused before it stopped are judged again (a
    // watch from the copy's revision never shows them): refused here too,
    // listed in `/status`, and tried again as theirs are.
    if from_copy {
        let then = stored
            .iter()
            .map(|(kind, name, r)| ((*kind, name.clone()), *r))
            .collect();
        source
            .load_at_start(etcd, running, Some(then))
            .await
            .map_err(|e| e.to_string())?;
        full = true;
    }
    // Watching from the next revision assumes etcd still holds the history
    // this node applied. One that lost its data and took other writes since
    // is past that revision yet holds none of it: the watch would show
    // nothing, and the node would follow an etcd it no longer matches.
    if !full && applied > 0 {
        match etcd.keys_at(applied).await.map_err(|e| e.to_string())? {
            Some(keys) if keys == stored && !reconnecting => {}
            Some(keys) if keys == stored => {
                // Back after a loss, the same numbers may still be another
                // history: etcd wiped, the objects pushed again in as many
                // revisions.
                let snapshot = etcd.snapshot().await.map_err(|e| e.to_string())?;
                let renumbered = source.shared.lock().await.objects.renumbered(
                    snapshot
                        .objects
                        .iter()
                        .map(|o| ((o.kind, o.name.clone()), o.value.as_slice(), o.mod_revision)),
                );
                if renumbered {
                    warn!(
                        applied,
                        etcd = now,
                        "etcd holds other values under the revisions this node applied (it lost its data, and the objects were pushed again): reloading in full"
                    );
                    source.shared.lock().await.history_lost = true;
                    full = true;
                }
            }
            Some(_) => {
                warn!(
                    applied,
                    etcd = now,
                    "etcd does not hold what this node applied at its last revision (it lost its data, or these are other endpoints): reloading in full"
                );
                let mut shared = source.shared.lock().await;
                shared.history_lost = true;
                full = true;
            }
            // Compacted: the history cannot be checked; read everything.
            None => {
                info!(
                    applied,
                    "etcd compacted the revisions this node missed: reloading in full"
                );
                source.shared.lock().await.history_gap = true;
                full = true;
            }
        }
    }
    if full && !from_copy {
        source
            .full_reload(etcd, running)
            .await
            .map_err(|e| e.to_string())?;
    }
    let from = if full {
        source.shared.lock().await.objects.revision
    } else {
        applied
    };
    let mut w = etcd.watch(from + 1).await.map_err(|e| e.to_string())?;
    // Answering again, whatever the phase (a held node stays held).
    source.clear_trouble();
    {
        let mut shared = source.shared.lock().await;
        if shared.phase != Phase::Held {
            source.set_phase(&mut shared, Phase::Following);
        }
    }
    source.set_client(Some(etcd.clone()));
    *backoff = Duration::from_millis(200);
    loop {
        let next = tokio::select! {
            next = w.next() => next,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let next = match next {
            Ok(batch) => {
                // The revisions already here are applied together, and the
                // config they make is installed once (bounded, so that a
                // long backlog still goes live as it is read).
                let mut group = vec![batch];
                let mut end = None;
                while group.len() < GROUP_MAX_REVISIONS {
                    match w.ready() {
                        Some(Ok(batch)) => group.push(batch),
                        Some(Err(e)) => {
                            end = Some(e);
                            break;
                        }
                        None => break,
                    }
                }
                apply_group(source, running, etcd, group)
                    .await
                    .map_err(|e| e.to_string())?;
                match end {
                    Some(e) => Err(e),
                    None => continue,
                }
            }
            Err(e) => Err(e),
        };
        match next {
            Ok(()) => {}
            Err(WatchEnd::Compacted(r)) => {
                info!(
                    compacted = r,
                    "the etcd watch fell behind a compaction: reloading in full"
                );
                {
                    let mut shared = source.shared.lock().await;
                    shared.full_reload = true;
                    shared.history_gap = true;
                }
                return Err(format!("compacted at {r}"));
            }
            Err(WatchEnd::Lost(e)) => return Err(e),
        }
    }
}

/// Applies the revisions of `group` (in order) and installs the config
/// they make once: as the changes of the last revision when that gives
/// what applying them one by one would (`Objects::merged`), else one by
/// one, each checked as always.
async fn apply_group(
    source: &EtcdSource,
    running: &Running,
    etcd: &Etcd,
    group: Vec<Batch>,
) -> Result<(), EtcdError> {
    let merged = {
        let mut shared = source.shared.lock().await;
        if group.len() < 2 || shared.phase == Phase::Held {
            false
        } else {
            let revisions: Vec<_> = group
                .iter()
                .map(|b| (fresh(&shared, b.changes.clone(), b.revision), b.revision))
                .collect();
            let compile = |s: &jwtgate_config::RawConfig| running.compile_change(s, Vec::new(), "");
            match shared.objects.merged(&revisions, &compile) {
                Some((incoming, revision)) => {
                    source.apply_uninstalled(&mut shared, running, incoming, revision);
                    true
                }
                None => false,
            }
        }
    };
    if !merged {
        // One by one, what is applied goes live at least every
        // GROUP_MAX_TIME: an early revision of a long group (a consumer
        // deleted) is not held back by the compiles of the later ones.
        let mut since = std::time::Instant::now();
        for batch in group {
            apply_batch(source, running, etcd, batch).await?;
            if since.elapsed() >= GROUP_MAX_TIME {
                let mut shared = source.shared.lock().await;
                source.install_applied(&mut shared, running);
                since = std::time::Instant::now();
            }
        }
    }
    let mut shared = source.shared.lock().await;
    source.install_applied(&mut shared, running);
    Ok(())
}

async fn apply_batch(
    source: &EtcdSource,
    running: &Running,
    etcd: &Etcd,
    batch: Batch,
) -> Result<(), EtcdError> {
    let mut shared = source.shared.lock().await;
    if shared.phase == Phase::Held {
        // Only an object that reads ends the hold: one stray key no node
        // can take (`not json`) had every node drop every route it kept
        // (an outside audit).
        let reads = |o: &jwtgate_etcd::Object| {
            let read = jwtgate_config::SharedObject::read(o.kind, &o.name, &o.value);
            if let Err(e) = &read {
                warn!(
                    key = %super::printable(&format!("{}/{}", o.kind.dir(), o.name)),
                    revision = o.mod_revision,
                    "etcd object rejected while etcd holds no config (this node keeps what it \
                     serves until objects that read arrive): {}",
                    super::printable(&e.to_string())
                );
            }
            read.is_ok()
        };
        // Every put looked at: each that does not read is logged.
        let mut arrived = false;
        for change in &batch.changes {
            if let Change::Put(o) = change {
                arrived |= reads(o);
            }
        }
        if arrived {
            info!("objects arrived in etcd again: following what it holds");
            let held: Vec<_> = shared
                .objects
                .live
                .iter()
                .map(|o| (o.kind(), o.name().to_owned()))
                .collect();
            drop(shared);
            source.full_reload(etcd, running).await?;
            // Whatever wrote them (a push, or one stray write by another
            // tool): what the node kept and etcd does not hold is gone
            // now, which an outside audit found said only as a count.
            let shared = source.shared.lock().await;
            let dropped: Vec<String> = held
                .iter()
                .filter(|(kind, name)| shared.objects.live.get(*kind, name).is_none())
                .map(|(kind, name)| format!("{kind} {}", super::printable(name)))
                .collect();
            if !dropped.is_empty() {
                const SHOWN: usize = 20;
                let more = dropped.len().saturating_sub(SHOWN);
                let mut list = dropped[..dropped.len().min(SHOWN)].join(", ");
                if more > 0 {
                    list.push_str(&format!(" and {more} more"));
                }
                warn!(
                    dropped = dropped.len(),
                    "following etcd again dropped objects this node kept while etcd was empty, \
                     as etcd does not hold them: {list}; if they should stay, push the config \
                     again (jwtgate config push)"
                );
            }
            return Ok(());
        }
        shared.objects.revision = batch.revision;
        let _ = source.applied.send_replace(batch.revision);
        return Ok(());
    }
    let incoming = fresh(&shared, batch.changes, batch.revision);
    source.apply_uninstalled(&mut shared, running, incoming, batch.revision);
    Ok(())
}

/// A revision's changes as [`super::apply`] takes them, less those older
/// than the version of their object this node knows etcd holds, which are
/// not applied over it: a watch catching up on a long backlog may bring
/// revisions before one the node already applied (its own admin write,
/// applied when etcd committed it, past a revision etcd's header gave
/// before the backlog's end). `stored`, not the live versions: those may
/// still carry the numbers of a history etcd lost.
fn fresh(
    shared: &super::Shared,
    changes: Vec<Change>,
    revision: i64,
) -> Vec<super::apply::Incoming> {
    let stored = &shared.objects.stored;
    let newest = |id: &(jwtgate_config::ObjectKind, String)| stored.get(id).copied();
    let changes = changes
        .into_iter()
        .filter(|change| match change {
            Change::Put(o) => newest(&(o.kind, o.name.clone())).is_none_or(|r| o.mod_revision >= r),
            Change::Delete { kind, name } => {
                newest(&(*kind, name.clone())).is_none_or(|r| revision >= r)
            }
        })
        .collect();
    incoming(changes)
}

/// The most revisions a follower takes together, and the longest it
/// applies them one by one before installing what they made: a burst
/// installs once, a backlog goes live as it is read.
const GROUP_MAX_REVISIONS: usize = 200;
const GROUP_MAX_TIME: std::time::Duration = std::time::Duration::from_millis(250);

/// One revision's changes as [`super::apply`] takes them.
pub(super) fn incoming(changes: Vec<Change>) -> Vec<super::apply::Incoming> {
    changes
        .into_iter()
        .map(|c| match c {
            Change::Put(o) => ((o.kind, o.name), Some((o.value, o.mod_revision))),
            Change::Delete { kind, name } => ((kind, name), None),
        })
        .collect()
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}
