//! Reloads the config when its file changes on disk.
//!
//! The watch is on the file's DIRECTORY, not the file: editors and config
//! managers replace a file by writing a temporary one and renaming it over
//! the original (so does our own admin write-back), which a watch on the
//! old inode would miss. Events are filtered to the config's file name (and
//! Kubernetes' `..data` symlink swaps), and a burst of them is debounced
//! into one reload. A config that is a symbolic link has its target's
//! directory watched too. Reading the file is what decides: the same text as the
//! running config (e.g. our own write-back) is no change.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jwtgate_admin::{LiveConfig, Trigger};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

/// Lets the writes of one save settle before reading the file.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Starts watching; the returned watcher must be kept alive. `None` (with a
/// warning) if the platform cannot watch: SIGHUP still reloads.
pub fn start(live: Arc<LiveConfig>, stop: watch::Receiver<bool>) -> Option<RecommendedWatcher> {
    let path = live.path().to_owned();
    let watched = watched(&path);
    let names: Vec<OsString> = watched.iter().map(|(_, name)| name.clone()).collect();
    let changed = Arc::new(Notify::new());
    let notify = Arc::clone(&changed);
    let handler = move |res: notify::Result<Event>| match res {
        Ok(event) if relevant(&event, &names) => notify.notify_one(),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "config file watch error"),
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        let mut dirs = watched.iter().map(|(dir, _)| dir);
        if let Some(own) = dirs.next() {
            w.watch(own, RecursiveMode::NonRecursive)?;
        }
        for target in dirs {
            if let Err(e) = w.watch(target, RecursiveMode::NonRecursive) {
                warn!(error = %e, "cannot watch {}, where the config's link points; \
                      an edit there is applied on SIGHUP", target.display());
            }
        }
        Ok(w)
    });
    match watcher {
        Ok(w) => {
            info!("watching {} for changes", path.display());
            tokio::spawn(reload_on_change(live, changed, stop));
            Some(w)
        }
        Err(e) => {
            warn!(error = %e, "cannot watch {}; reload with SIGHUP", path.display());
            None
        }
    }
}

/// The directories to watch and the file name that matters in each: the
/// config's own, and, when the config is a symbolic link (to a checkout,
/// say), its target's, so that an edit of the target is seen as well. A
/// link retargeted later is seen as a change of the link; its new
/// target's directory is watched from the next start.
fn watched(path: &Path) -> Vec<(PathBuf, OsString)> {
    let dir_and_name = |p: &Path| {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => Path::new(".").to_owned(),
        };
        (dir, p.file_name().map(|n| n.to_owned()).unwrap_or_default())
    };
    let mut watched = vec![dir_and_name(path)];
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if let Some(target) = is_link.then(|| std::fs::canonicalize(path).ok()).flatten() {
        let target = dir_and_name(&target);
        let same_dir = std::fs::canonicalize(&watched[0].0).is_ok_and(|d| d == target.0);
        if !same_dir {
            watched.push(target);
        }
    }
    watched
}

fn relevant(event: &Event, names: &[OsString]) -> bool {
    let writes = match event.kind {
        // Our own reads of the file show up as opens and closes.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    writes
        && event.paths.iter().any(|p| {
            p.file_name().is_some_and(|n| {
                names.iter().any(|m| n == m) || n.to_string_lossy().starts_with("..")
            })
        })
}

async fn reload_on_change(
    live: Arc<LiveConfig>,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::time::sleep(DEBOUNCE).await;
        live.reload(Trigger::FileChanged).await;
    }
}
