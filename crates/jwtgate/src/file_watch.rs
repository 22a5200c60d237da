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
//!
//! The files the config names (certificates and keys, key sets, trust
//! anchors: `jwtgate_config::named_files`) are watched the same way, in
//! their directories: a change of one recompiles the config as SIGHUP does
//! (a renewal by certbot replaces the links in its `live/` directory; a
//! renewal half done is refused, the certificates served stay, and its
//! end is read again). Which files those are, and what each is (links
//! followed: device, inode, size, mtime), is looked at again after every
//! reload and every 5 s: a config changed another way (SIGHUP, the admin
//! API) is followed, and a change no event told of (a link re-pointed in
//! a directory not watched, a directory replaced, a Kubernetes `..data`
//! swap) is read within 5 s.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwtgate_admin::{LiveConfig, Trigger, EDIT_SETTLE};
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

/// The longest a file written without pause waits to be read: settling
/// (`EDIT_SETTLE` of quiet) is not waited for beyond it.
const MOST_SETTLE: Duration = Duration::from_secs(2);

/// How often the files the config names are looked at again when no
/// reload of this watcher's changed them (SIGHUP, an admin write).
const NAMED_FILES_EVERY: Duration = Duration::from_secs(5);

/// What is watched: the config's directory and name, and, when the config
/// is a symbolic link (to a checkout, say), its target's: an edit of the
/// target is an edit of the config.
#[derive(Debug, Clone, PartialEq)]
struct Watched {
    own: (PathBuf, OsString),
    target: Option<(PathBuf, OsString)>,
    /// Whether the target's directory is another than the config's, and
    /// needs a watch of its own.
    elsewhere: bool,
}

impl Watched {
    /// The config's own directory and name alone (no link to follow).
    fn own_only(path: &Path) -> Watched {
        Watched {
            own: dir_and_name(path),
            target: None,
            elsewhere: false,
        }
    }

    /// The file names that matter, in whichever watched directory.
    fn names(&self) -> Vec<OsString> {
        std::iter::once(&self.own)
            .chain(&self.target)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// The target's directory, when it needs a watch of its own.
    fn target_dir(&self) -> Option<&Path> {
        self.target
            .as_ref()
            .filter(|_| self.elsewhere)
            .map(|(dir, _)| dir.as_path())
    }
}

/// Starts watching, on a task that keeps the watcher until `stop`. A
/// warning if the platform cannot watch: SIGHUP still reloads.
pub fn start(live: Arc<LiveConfig>, stop: watch::Receiver<bool>) {
    let path = live.path().to_owned();
    let now = watched(&path).unwrap_or_else(|| Watched::own_only(&path));
    let names = Arc::new(Mutex::new(now.names()));
    let named = Arc::new(Mutex::new(Vec::new()));
    let named_changed = Arc::new(AtomicBool::new(false));
    let changed = Arc::new(Notify::new());
    let notify = Arc::clone(&changed);
    let filter = Arc::clone(&names);
    let named_filter = Arc::clone(&named);
    let named_flag = Arc::clone(&named_changed);
    let file_open = live.running().file_open_flag();
    let handler = move |res: notify::Result<Event>| match res {
        Ok(event) => {
            if named_filter
                .lock()
                .is_ok_and(|files| names_one_of(&event, &files))
            {
                named_flag.store(true, Ordering::Relaxed);
                notify.notify_one();
            }
            let seen = filter
                .lock()
                .map_or(Seen::Nothing, |names| seen(&event, &names));
            match seen {
                Seen::Nothing => return,
                Seen::Writing => file_open.store(true, Ordering::Relaxed),
                Seen::Whole => file_open.store(false, Ordering::Relaxed),
                Seen::Changed => {}
            }
            notify.notify_one();
        }
        Err(e) => warn!(error = %e, "config file watch error"),
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&now.own.0, RecursiveMode::NonRecursive)?;
        watch_target(&mut w, now.target_dir());
        Ok(w)
    });
    match watcher {
        Ok(w) => {
            info!("watching {} for changes", path.display());
            let mut watching = Watching {
                watcher: w,
                path,
                now,
                names,
                named,
                named_dirs: Vec::new(),
                unwatchable: Vec::new(),
                prints: Vec::new(),
                named_changed,
            };
            watching.follow_named_files(&live);
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
    /// The files the config names, as events name them (their directory
    /// made canonical), and the directories watched for them alone.
    named: Arc<Mutex<Vec<PathBuf>>>,
    named_dirs: Vec<PathBuf>,
    /// Directories that could not be watched (said once).
    unwatchable: Vec<PathBuf>,
    /// What each named file was at the last look ([`fingerprint`]).
    prints: Vec<Option<Fingerprint>>,
    /// One of them changed since the last reload.
    named_changed: Arc<AtomicBool>,
}

impl Watching {
    /// Watches where the config's link points now, if that moved; true if
    /// it did (an edit made there before this call was not seen). A link
    /// that points nowhere for the moment (its target being replaced)
    /// leaves the watches as they are, for the target's return.
    fn follow_link(&mut self) -> bool {
        let Some(next) = watched(&self.path) else {
            return false;
        };
        if next == self.now {
            return false;
        }
        if let Some(dir) = self.now.target_dir() {
            let _ = self.watcher.unwatch(dir);
        }
        watch_target(&mut self.watcher, next.target_dir());
        if let Ok(mut names) = self.names.lock() {
            *names = next.names();
        }
        if let Some((dir, name)) = &next.target {
            info!(
                "{} points elsewhere now: watching {}",
                self.path.display(),
                dir.join(name).display()
            );
        }
        self.now = next;
        true
    }

    /// Watches the directories of the files the running config names, if
    /// they are others than last time, and notes what each file is now;
    /// true when one of them is not what it was at the last look: a change
    /// no event told of (a directory replaced, a link re-pointed outside
    /// the watched directories, a Kubernetes `..data` swap, an edit
    /// between a reload and its watches). A directory that cannot be
    /// watched is said once.
    fn follow_named_files(&mut self, live: &LiveConfig) -> bool {
        let config = live.running().config();
        let named = jwtgate_config::named_files(&config.raw, live.running().base_dir());
        let prints: Vec<Option<Fingerprint>> = named.iter().map(|f| fingerprint(f)).collect();
        let moved = prints != self.prints;
        self.prints = prints;
        let files: Vec<PathBuf> = named
            .iter()
            .filter_map(|f| {
                let (dir, name) = dir_and_name(f);
                Some(std::fs::canonicalize(dir).ok()?.join(name))
            })
            .collect();
        // The config's own directories are watched already, and stay so.
        let own: Vec<PathBuf> = std::iter::once(self.now.own.0.as_path())
            .chain(self.now.target_dir())
            .filter_map(|d| std::fs::canonicalize(d).ok())
            .collect();
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_owned))
            .filter(|d| !own.contains(d))
            .collect();
        dirs.sort();
        dirs.dedup();
        if let Ok(mut named) = self.named.lock() {
            *named = files;
        }
        if dirs == self.named_dirs {
            return moved;
        }
        for gone in self.named_dirs.iter().filter(|d| !dirs.contains(d)) {
            if !own.contains(gone) {
                let _ = self.watcher.unwatch(gone);
            }
        }
        let mut watched = Vec::new();
        for dir in dirs {
            if self.named_dirs.contains(&dir) {
                watched.push(dir);
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => watched.push(dir),
                Err(e) if !self.unwatchable.contains(&dir) => {
                    warn!(error = %e, "cannot watch {}, where the config names files; \
                          a change there is applied within 5 s, or on SIGHUP", dir.display());
                    self.unwatchable.push(dir);
                }
                Err(_) => {}
            }
        }
        self.named_dirs = watched;
        moved
    }
}

/// What a named file is, links followed: a file replaced, edited or
/// pointed elsewhere is another.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// Whether `event` is about one of the files the config names (`files`,
/// their directories canonical), or may be (the watch lost events).
fn names_one_of(event: &Event, files: &[PathBuf]) -> bool {
    if files.is_empty() {
        return false;
    }
    if event.need_rescan() {
        return true;
    }
    // Reads (ours included, at every reload) change nothing.
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|p| {
        let (dir, name) = dir_and_name(p);
        std::fs::canonicalize(dir).is_ok_and(|d| files.contains(&d.join(name)))
    })
}

fn watch_target(w: &mut RecommendedWatcher, dir: Option<&Path>) {
    if let Some(dir) = dir {
        if let Err(e) = w.watch(dir, RecursiveMode::NonRecursive) {
            warn!(error = %e, "cannot watch {}, where the config's link points; \
                  an edit there is applied on SIGHUP", dir.display());
        }
    }
}

fn dir_and_name(p: &Path) -> (PathBuf, OsString) {
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    (dir, p.file_name().map(|n| n.to_owned()).unwrap_or_default())
}

/// What to watch for the config at `path`; `None` while it is a link that
/// points nowhere.
fn watched(path: &Path) -> Option<Watched> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Some(Watched::own_only(path));
    }
    let own = dir_and_name(path);
    let target = dir_and_name(&std::fs::canonicalize(path).ok()?);
    let elsewhere = std::fs::canonicalize(&own.0).map_or(true, |d| d != target.0);
    Some(Watched {
        own,
        target: Some(target),
        elsewhere,
    })
}

/// What an event says of the config's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Not about it, or only a read of it (ours show up as opens and
    /// closes).
    Nothing,
    /// Its bytes changed, and its writer has not closed it yet: what it
    /// holds may be half of what is being written.
    Writing,
    /// What it holds now is whole: its writer closed it, or another file
    /// was renamed over it (how editors, config managers and our own
    /// write-back save), it was made or removed, or the watch lost events
    /// (an overflow: nothing is known to be open any more).
    Whole,
    /// Something else that may change what it says (its mode, a
    /// Kubernetes `..data` swap): read again, but a writer that holds it
    /// open still does.
    Changed,
}

fn seen(event: &Event, names: &[OsString]) -> Seen {
    if event.need_rescan() {
        return Seen::Whole;
    }
    let named = |p: &PathBuf| p.file_name().is_some_and(|n| names.iter().any(|m| n == m));
    // Kubernetes swaps a `..data` link to a directory it wrote whole.
    let swapped = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".."))
    };
    let file = event.paths.iter().any(named);
    if !file && !event.paths.iter().any(swapped) {
        return Seen::Nothing;
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) if file => Seen::Whole,
        EventKind::Access(_) => Seen::Nothing,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) if file => Seen::Writing,
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Create(_) | EventKind::Remove(_)
            if file =>
        {
            Seen::Whole
        }
        _ => Seen::Changed,
    }
}

async fn reload_on_change(
    live: Arc<LiveConfig>,
    mut watching: Watching,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut look_again = tokio::time::interval(NAMED_FILES_EVERY);
    look_again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = look_again.tick() => {
                if !watching.follow_named_files(&live) {
                    continue;
                }
                // Changed with no event said: read as if one had.
                watching.named_changed.store(true, Ordering::Relaxed);
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        // The file is read once it has been still for EDIT_SETTLE: the
        // pieces of one save (a truncate, then writes) are read whole, and
        // a burst of saves once, at its end. A file still open for writing
        // is not read at all, however long its writer pauses: a half that
        // parses (the routes before a `jwt:` line) would go live, and
        // serve a protected route without a token until the rest came (an
        // outside audit). Its writer closing it, or a file renamed over
        // it, is the end of the save. SIGHUP reads it at once.
        let most = Instant::now() + MOST_SETTLE;
        let mut told = false;
        loop {
            let open = live.running().file_open();
            let quiet = Instant::now() + EDIT_SETTLE;
            let read_at = match (open, told) {
                (true, _) => None,
                (false, true) => Some(quiet),
                (false, false) => Some(quiet.min(most)),
            };
            tokio::select! {
                // A new event wins over a quiet period that ended meanwhile
                // (the task was slow to run): the file is not still.
                biased;
                _ = changed.notified(), if open || told || Instant::now() < most => {}
                // An event that came with the quiet period's end says first.
                _ = sleep_until_some(read_at) => if !live.running().file_open() { break },
                _ = tokio::time::sleep_until(most), if open && !told => {
                    info!(
                        "{} is open for writing: it is read once its writer closes it \
                         (SIGHUP reads it now)",
                        live.path().display()
                    );
                    told = true;
                }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        // A named file that is not what it was, whatever the event said (a
        // Kubernetes `..data` swap names no file of ours), is read again.
        let moved = watching.follow_named_files(&live);
        let trigger = if watching.named_changed.swap(false, Ordering::Relaxed) || moved {
            Trigger::NamedFileChanged
        } else {
            Trigger::FileChanged
        };
        let mut outcome = live.reload(trigger).await;
        if watching.follow_link() {
            outcome = live.reload(Trigger::FileChanged).await;
        }
        // The files the config names now; one changed since the look
        // above is read once more.
        if watching.follow_named_files(&live) {
            watching.named_changed.store(true, Ordering::Relaxed);
            changed.notify_one();
        }
        // What `systemctl status` shows follows the file as after a SIGHUP.
        crate::notify::reloaded(outcome, &live.running().restart_pending());
    }
}

/// Sleeps until `at`; never, for `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
