//! Reloads the config when its file changes on disk.
//!
//! The watch is on the file's DIRECTORY, not the file: editors and config
//! managers replace a file by writing a temporary one and renaming it over
//! the original (so does our own admin write-back), which a watch on the
//! old inode would miss. Events are filtered to the config's file name (and
//! Kubernetes' `..data` symlink swaps), and the file is read once they stop
//! (a save in pieces, a burst of saves: one reload, of the last). A config
//! that is a symbolic link has its target's directory watched too, and the
//! link is followed when it is pointed elsewhere. Reading the file is what
//! decides: the same text as the running config (e.g. our own write-back)
//! is no change.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwtgate_admin::{LiveConfig, Trigger, EDIT_SETTLE};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

/// The longest a file written without pause waits to be read: settling
/// (`EDIT_SETTLE` of quiet) is not waited for beyond it.
const MOST_SETTLE: Duration = Duration::from_secs(2);

/// What is watched: a directory and the file name that matters in it.
type Watched = Vec<(PathBuf, OsString)>;

/// Starts watching, on a task that keeps the watcher until `stop`. A
/// warning if the platform cannot watch: SIGHUP still reloads.
pub fn start(live: Arc<LiveConfig>, stop: watch::Receiver<bool>) {
    let path = live.path().to_owned();
    let now = watched(&path);
    let names = Arc::new(Mutex::new(names_of(&now)));
    let changed = Arc::new(Notify::new());
    let notify = Arc::clone(&changed);
    let filter = Arc::clone(&names);
    let handler = move |res: notify::Result<Event>| match res {
        Ok(event) => {
            let relevant = filter.lock().is_ok_and(|names| relevant(&event, &names));
            if relevant {
                notify.notify_one();
            }
        }
        Err(e) => warn!(error = %e, "config file watch error"),
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&now[0].0, RecursiveMode::NonRecursive)?;
        watch_targets(&mut w, &now[1..]);
        Ok(w)
    });
    match watcher {
        Ok(w) => {
            info!("watching {} for changes", path.display());
            let watching = Watching {
                watcher: w,
                path,
                now,
                names,
            };
            tokio::spawn(reload_on_change(live, watching, changed, stop));
        }
        Err(e) => warn!(error = %e, "cannot watch {}; reload with SIGHUP", path.display()),
    }
}

/// The watcher and what it watches, which follows the config's link when
/// it is pointed elsewhere (`ln -sfn`, a Kubernetes `..data` swap).
struct Watching {
    watcher: RecommendedWatcher,
    path: PathBuf,
    now: Watched,
    names: Arc<Mutex<Vec<OsString>>>,
}

impl Watching {
    /// Watches where the config's link points now, if that moved; true if
    /// it did (an edit made there before this call was not seen).
    fn follow_link(&mut self) -> bool {
        let next = watched(&self.path);
        if next == self.now {
            return false;
        }
        for (dir, _) in &self.now[1..] {
            if dir != &self.now[0].0 {
                let _ = self.watcher.unwatch(dir);
            }
        }
        watch_targets(&mut self.watcher, &next[1..]);
        if let Ok(mut names) = self.names.lock() {
            *names = names_of(&next);
        }
        info!(
            "{} points elsewhere now: watching {}",
            self.path.display(),
            next.last().map_or(String::new(), |(dir, name)| dir
                .join(name)
                .display()
                .to_string())
        );
        self.now = next;
        true
    }
}

fn watch_targets(w: &mut RecommendedWatcher, targets: &[(PathBuf, OsString)]) {
    for (target, _) in targets {
        if let Err(e) = w.watch(target, RecursiveMode::NonRecursive) {
            warn!(error = %e, "cannot watch {}, where the config's link points; \
                  an edit there is applied on SIGHUP", target.display());
        }
    }
}

fn names_of(watched: &Watched) -> Vec<OsString> {
    watched.iter().map(|(_, name)| name.clone()).collect()
}

/// The directories to watch and the file name that matters in each: the
/// config's own, and, when the config is a symbolic link (to a checkout,
/// say), its target's, so that an edit of the target is seen as well.
fn watched(path: &Path) -> Watched {
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
    mut watching: Watching,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // The file is read once it has been still for EDIT_SETTLE: the
        // pieces of one save (a truncate, then writes) are read whole, and
        // a burst of saves once, at its end.
        let most = Instant::now() + MOST_SETTLE;
        loop {
            let quiet = Instant::now() + EDIT_SETTLE;
            tokio::select! {
                _ = changed.notified(), if Instant::now() < most => {}
                _ = tokio::time::sleep_until(quiet.min(most)) => break,
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        live.reload(Trigger::FileChanged).await;
        if watching.follow_link() {
            live.reload(Trigger::FileChanged).await;
        }
    }
}
