//! Reloads the config when its file changes on disk.
//!
//! The watch is on the file's DIRECTORY, not the file: editors and config
//! managers replace a file by writing a temporary one and renaming it over
//! the original (so does our own admin write-back), which a watch on the
//! old inode would miss. Events are filtered to the config's file name (and
//! Kubernetes' `..data` symlink swaps), and a burst of them is debounced
//! into one reload. Reading the file is what decides: the same text as the
//! running config (e.g. our own write-back) is no change.

use std::ffi::OsString;
use std::path::Path;
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
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    let changed = Arc::new(Notify::new());
    let notify = Arc::clone(&changed);
    let handler = move |res: notify::Result<Event>| match res {
        Ok(event) if relevant(&event, &name) => notify.notify_one(),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "config file watch error"),
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match watcher {
        Ok(w) => {
            info!("watching {} for changes", path.display());
            tokio::spawn(reload_on_change(live, changed, stop));
            Some(w)
        }
        Err(e) => {
            warn!(error = %e, "cannot watch {}; reload with SIGHUP", dir.display());
            None
        }
    }
}

fn relevant(event: &Event, name: &OsString) -> bool {
    let writes = match event.kind {
        // Our own reads of the file show up as opens and closes.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    writes
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n == name.as_os_str() || n.to_string_lossy().starts_with(".."))
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
