//! The embedded store: a redb database in a local directory. A revocation is
//! acknowledged only after its write transaction has committed durably
//! (fsync), so a `200 logged out` survives `kill -9`. Single node: there is
//! no change feed to follow.
//!
//! The file is the node's record of every logout, so it is opened with
//! care: never through a link, never one other users may write, and an
//! empty or damaged one is an error, not a fresh start (a fresh start would
//! let every revoked token back in). After an I/O error (a full disk) redb
//! refuses every later write until the database is opened again; the store
//! does that itself, at the next operation, once no operation still holds
//! the old handle.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{Change, Cursor, Cutoff, Entry, RevocationStore, StoreError, SubjectKey};

const REVOKED: TableDefinition<&[u8], i64> = TableDefinition::new("revoked");
/// Subject cut-offs: encoded key -> (not_before, expires_at).
const SUBJECTS: TableDefinition<&str, (i64, i64)> = TableDefinition::new("subjects");
/// Keys recorded once (back-channel logout `jti`s) -> expiry.
const ONCE: TableDefinition<&str, i64> = TableDefinition::new("once");
/// Who holds each key of [`ONCE`], and whose claims of it were forgotten,
/// as the Redis store's value: `HOLDER|NAMES` ([`OnceRecord`]). A key
/// without a record (claimed before owners were kept) is forgotten by
/// nobody, and expires.
const ONCE_OWNER: TableDefinition<&str, &str> = TableDefinition::new("once_owner");
const FILE: &str = "revocations.redb";
/// How long the names of forgotten claims are kept.
const FORGOTTEN_SECONDS: i64 = 3600;
/// The most NAMES holds (some 60 forgotten claims of one key).
const NAMES_MAX: usize = 4096;

/// A once-only key's record, as the Redis store keeps it (`HOLDER|NAMES`;
/// a record without `|`, written before forgotten claims were named, is a
/// holder's): the owner whose claim holds the key (empty when none does)
/// and the owners whose claims were forgotten (`,o1,o2,`).
struct OnceRecord<'a> {
    holder: &'a str,
    names: &'a str,
}

impl<'a> OnceRecord<'a> {
    fn parse(record: &'a str) -> Self {
        let (holder, names) = record.split_once('|').unwrap_or((record, ""));
        OnceRecord { holder, names }
    }

    fn names(&self, owner: &str) -> bool {
        self.names.contains(&format!(",{owner},"))
    }
}

/// Where a once-only key stands.
enum Once<'a> {
    /// Never claimed, or its time is over.
    Free,
    /// Claimed before owners were kept: held by nobody known.
    Unowned,
    Held(OnceRecord<'a>),
}

/// Reads `key`'s standing in [`ONCE`] and [`ONCE_OWNER`] in one write
/// transaction and lets `decide` say what to answer and what the key
/// becomes (its expiry and record; `None`: left as it is).
fn update_once<R>(
    db: &Database,
    key: &str,
    now: i64,
    decide: impl FnOnce(Once<'_>) -> (R, Option<(i64, String)>),
) -> Result<R, redb::Error> {
    let tx = db.begin_write()?;
    let answer = {
        let mut expiries = tx.open_table(ONCE)?;
        let mut owners = tx.open_table(ONCE_OWNER)?;
        let live = expiries.get(key)?.is_some_and(|v| v.value() > now);
        let record = owners.get(key)?.map(|v| v.value().to_owned());
        let once = match (live, record.as_deref()) {
            (false, _) => Once::Free,
            (true, None) => Once::Unowned,
            (true, Some(r)) => Once::Held(OnceRecord::parse(r)),
        };
        let (answer, update) = decide(once);
        let Some((expires_at, record)) = update else {
            drop((expiries, owners));
            // Nothing to write: no commit (and no fsync) for it.
            tx.abort()?;
            return Ok(answer);
        };
        expiries.insert(key, expires_at)?;
        owners.insert(key, record.as_str())?;
        answer
    };
    tx.commit()?;
    Ok(answer)
}

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    /// The operations on blocking threads at once. redb takes one write
    /// at a time, so more threads only wait on it: a flood of logouts
    /// with distinct tokens held an OS thread each, a thousand and more
    /// (an outside audit); past this many, they wait their turn here.
    threads: Arc<tokio::sync::Semaphore>,
}

/// [`EmbeddedStore::threads`]' bound.
const STORE_THREADS: usize = 8;

struct Shared {
    file: PathBuf,
    /// `None` after an I/O error: opened again by the next operation. With
    /// the identity of the file it was opened on.
    db: Mutex<Option<(Arc<Database>, FileId)>>,
    /// [`RevocationStore::close`] was called: nothing opens it again.
    closed: std::sync::atomic::AtomicBool,
}

/// A file's device and inode: which file a path names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId(meta.dev(), meta.ino())
    }

    /// The file at `path` now, not through a link; `None` if there is none.
    fn at(path: &Path) -> Option<FileId> {
        std::fs::symlink_metadata(path).ok().map(|m| FileId::of(&m))
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Whether `dir` holds anything: a store file missing from a directory in
/// use is a loss worth a warning, not a first start.
fn holds_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// What redb's panic said, for a message: it panics on some damage it
/// meets (while opening, checking or reading a damaged page) instead of
/// returning an error.
fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

/// What the operator is told about a damaged store file.
fn damaged(what: impl std::fmt::Display) -> String {
    format!(
        "is damaged ({what}): restore it from a backup, or move it away \
         to start with an empty blacklist"
    )
}

/// The redb database in `file`: opened, checked whole, its tables made if
/// missing (a new file, or one an older version wrote).
///
/// The check reads every page against its checksum: a flipped bit in a
/// stored digest (that token would pass again) or a damaged page (redb
/// would panic on it at the first read, long after start) is found here,
/// with the file named. It costs about 60 ms per million revocations
/// (a 140 MB file, in the page cache). What redb can repair (its free-page
/// bookkeeping, a commit cut short) it repairs, and that is logged.
fn database_in(file: std::fs::File, path: &Path) -> Result<Database, String> {
    let backend = redb::backends::FileBackend::new(file).map_err(open_error)?;
    let mut db = caught(|| Database::builder().create_with_backend(backend))
        .map_err(damaged)?
        .map_err(open_error)?;
    match caught(|| db.check_integrity()).map_err(damaged)? {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            file = %path.display(),
            "the revocation store was damaged and redb repaired it: compare it with a \
             backup, a revocation may be missing"
        ),
        Err(e) => return Err(damaged(e)),
    }
    // Create the tables so that readers never meet a missing table.
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    for result in [
        tx.open_table(REVOKED).map(drop),
        tx.open_table(SUBJECTS).map(drop),
        tx.open_table(ONCE).map(drop),
        tx.open_table(ONCE_OWNER).map(drop),
    ] {
        result.map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(db)
}

/// redb's error opening a file, a file a running node holds said to be in
/// use (redb: "Database already open. Cannot acquire lock.").
fn open_error(e: redb::DatabaseError) -> String {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => "is in use by another process (another \
             jwtgate with this store, or one still stopping): an embedded store serves one node \
             at a time; nodes that share their revocations use Redis"
            .to_owned(),
        e => e.to_string(),
    }
}

/// How [`open_database`] meets a missing file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// A first start: make the store. `in_use`: the directory held other
    /// files before (see [`holds_files`]), worth a warning.
    Create { in_use: bool },
    /// Opened again while the node runs: a missing file was removed under
    /// it, and a fresh one would let every revoked token back in.
    Refuse,
}

/// Opens the database in `path`. A new one is made whole beside it and
/// linked into place, so a crash or a full disk while it is made never
/// leaves an empty `path`: an empty file there is one that lost what it
/// held, and is refused.
fn open_database(path: &Path, missing: Missing) -> Result<(Database, FileId), StoreError> {
    let at = |e: &dyn std::fmt::Display| unavailable(format!("{}: {e}", path.display()));
    let absent = matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    match (absent, missing) {
        (true, Missing::Refuse) => {
            return Err(at(
                &"was removed while the node ran: restore it, or restart the \
                 node to start with an empty blacklist",
            ))
        }
        (true, Missing::Create { in_use }) => {
            let made = jwtgate_state::create_private_whole(path, |file| {
                database_in(file, path)
                    .map(drop)
                    .map_err(std::io::Error::other)
            });
            match made {
                Ok(()) if in_use => tracing::warn!(
                    file = %path.display(),
                    "created an empty revocation store in a directory that already held files: \
                     if this node revoked tokens before, those revocations are lost"
                ),
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(at(&e)),
            }
        }
        (false, _) => {}
    }
    let file = jwtgate_state::open_private_file(path).map_err(|e| at(&e))?;
    let meta = file.metadata().map_err(|e| at(&e))?;
    let id = FileId::of(&meta);
    if meta.len() == 0 {
        return Err(at(
            &"is empty, although a store was made there before: what it held \
             is lost (a failed copy or restore, a full disk?). Restore it from a backup, \
             or remove it to start with an empty blacklist",
        ));
    }
    database_in(file, path)
        .map(|db| (db, id))
        .map_err(|e| at(&e))
}

impl Shared {
    /// The open database, opened again if an I/O error closed it.
    fn database(&self) -> Result<(Arc<Database>, FileId), StoreError> {
        let mut slot = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((db, id)) = &*slot {
            return Ok((Arc::clone(db), *id));
        }
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(unavailable("closed: the node is stopping"));
        }
        let (db, id) = open_database(&self.file, Missing::Refuse)?;
        let db = Arc::new(db);
        tracing::warn!(file = %self.file.display(), "revocation store opened again after an I/O error");
        *slot = Some((Arc::clone(&db), id));
        Ok((db, id))
    }

    /// Runs `f` on the database; what it did counts only if the file it
    /// did it in is still the store's: one removed or replaced while the
    /// node ran took the write with it (a revocation answered 200 there was
    /// lost at the next start). Then `f`'s work is not acknowledged, and
    /// the next operation opens whatever the path holds.
    fn run<T>(&self, f: impl FnOnce(&Database) -> Result<T, redb::Error>) -> Result<T, StoreError> {
        let (db, id) = self.database()?;
        let done = self.run_on(&db, f)?;
        if FileId::at(&self.file) != Some(id) {
            self.let_go(&db);
            tracing::error!(
                file = %self.file.display(),
                "the revocation store's file was removed or replaced while the node ran: \
                 what was written went to the old file; restore the store, or restart the \
                 node (a removed store starts empty: its revocations are lost)"
            );
            return Err(unavailable(format!(
                "{}: was removed or replaced while the node ran",
                self.file.display()
            )));
        }
        Ok(done)
    }

    /// Lets go of `db` if it is still the open handle (the last one out
    /// closes the file): the next operation opens the file again. Whether
    /// it was.
    fn let_go(&self, db: &Arc<Database>) -> bool {
        let mut slot = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        let current = slot
            .as_ref()
            .is_some_and(|(current, _)| Arc::ptr_eq(current, db));
        if current {
            *slot = None;
        }
        current
    }

    fn run_on<T>(
        &self,
        db: &Arc<Database>,
        f: impl FnOnce(&Database) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let done = caught(|| f(db)).map_err(|panic| {
            // Damage the start-up check did not see (the file changed on
            // disk since): this handle is let go, and the next operation
            // opens the file again, checking it whole.
            self.let_go(db);
            tracing::error!(file = %self.file.display(), error = %panic, "revocation store is damaged");
            unavailable(format!("{}: {}", self.file.display(), damaged(panic)))
        })?;
        done.map_err(|e| {
            if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo) {
                // redb takes no write after an I/O error until it is
                // opened again: let go of this handle (the last one out
                // closes the file) for the next operation to reopen.
                if self.let_go(db) {
                    tracing::error!(
                        file = %self.file.display(),
                        error = %e,
                        "revocation store I/O error: it is opened again at the next operation"
                    );
                }
            }
            unavailable(e)
        })
    }
}

/// When `digest` was revoked until, in `db`.
fn lookup_in(
    db: &impl ReadableDatabase,
    digest: &crate::Digest,
) -> Result<Option<i64>, redb::Error> {
    let tx = db.begin_read()?;
    let t = tx.open_table(REVOKED)?;
    Ok(t.get(digest.as_slice())?.map(|v| v.value()))
}

/// The subject cut-offs alive at `now`, in `db`.
fn cutoffs_in(db: &impl ReadableDatabase, now: i64) -> Result<Vec<Cutoff>, redb::Error> {
    let tx = db.begin_read()?;
    let t = tx.open_table(SUBJECTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let (not_before, expires_at) = v.value();
        if let (Some(key), true) = (SubjectKey::decode(k.value()), expires_at > now) {
            out.push(Cutoff {
                key,
                not_before,
                expires_at,
            });
        }
    }
    Ok(out)
}

/// The store read by a one-shot tool (`token explain`): opened read-only,
/// so nothing is written into it (a store opened for writing is written
/// at every open), never created, repaired or taken through a link. One a
/// running node holds cannot be opened.
pub struct ReadOnlyStore(redb::ReadOnlyDatabase, PathBuf);

impl ReadOnlyStore {
    pub fn open(dir: &Path) -> Result<ReadOnlyStore, StoreError> {
        let path = dir.join(FILE);
        let at = |e: &dyn std::fmt::Display| unavailable(format!("{}: {e}", path.display()));
        let file = jwtgate_state::open_private_read(&path).map_err(|e| at(&e))?;
        let backend = redb::backends::FileBackend::new(file).map_err(|e| at(&open_error(e)))?;
        let db = caught(|| Database::builder().open_read_only_with_backend(backend))
            .map_err(|panic| at(&damaged(panic)))?
            .map_err(|e| at(&open_error(e)))?;
        Ok(ReadOnlyStore(db, path))
    }

    pub fn lookup(&self, digest: &crate::Digest) -> Result<Option<i64>, StoreError> {
        self.read(|db| lookup_in(db, digest))
    }

    pub fn cutoffs(&self, now: i64) -> Result<Vec<Cutoff>, StoreError> {
        self.read(|db| cutoffs_in(db, now))
    }

    /// `f` on the file, a panic on a damaged page an error naming it.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadOnlyDatabase) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let at = |e: &dyn std::fmt::Display| unavailable(format!("{}: {e}", self.1.display()));
        caught(|| f(&self.0))
            .map_err(|panic| at(&damaged(panic)))?
            .map_err(|e| at(&e))
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `dir`. What this creates
    /// is owner-only (SPEC §3.11): the directory `0700`, the file `0600`,
    /// made whole under another name and linked into place.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // What a start cut short left is no sign of a directory in use.
        jwtgate_state::remove_leftovers(&dir.join(FILE));
        let in_use = holds_files(dir);
        jwtgate_state::create_private_dir(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        if jwtgate_state::others_may_write(dir) {
            tracing::warn!(
                dir = %dir.display(),
                "other users may write to the revocation store's directory: they could remove \
                 or replace the store; make it owner-only (chmod 700)"
            );
        }
        let file = dir.join(FILE);
        let (db, id) = open_database(&file, Missing::Create { in_use })?;
        Ok(EmbeddedStore {
            shared: Arc::new(Shared {
                file,
                db: Mutex::new(Some((Arc::new(db), id))),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
            threads: Arc::new(tokio::sync::Semaphore::new(STORE_THREADS)),
        })
    }

    /// Whether a store was ever created in `dir` (read-only tools use this
    /// to avoid creating one as a side effect).
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE).is_file()
    }

    /// redb is synchronous; run it off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = Arc::clone(&self.shared);
        let turn = Arc::clone(&self.threads)
            .acquire_owned()
            .await
            .map_err(|e| unavailable(format!("store closed: {e}")))?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            shared.run(f)
        })
        .await
        .map_err(|e| unavailable(format!("store task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl RevocationStore for EmbeddedStore {
    async fn revoke(&self, entry: Entry) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(REVOKED)?;
                let prev = t.get(entry.digest.as_slice())?.map(|v| v.value());
                let exp = prev.map_or(entry.expires_at, |p| p.max(entry.expires_at));
                t.insert(entry.digest.as_slice(), exp)?;
            }
            // Durability::Immediate is redb's default: commit returns after fsync.
            Ok(tx.commit()?)
        })
        .await
    }

    async fn revoke_batch(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(REVOKED)?;
                for e in entries {
                    let prev = t.get(e.digest.as_slice())?.map(|v| v.value());
                    t.insert(
                        e.digest.as_slice(),
                        prev.map_or(e.expires_at, |p| p.max(e.expires_at)),
                    )?;
                }
            }
            Ok(tx.commit()?)
        })
        .await
    }

    async fn lookup(&self, digest: &crate::Digest) -> Result<Option<i64>, StoreError> {
        let digest = *digest;
        self.blocking(move |db| lookup_in(db, &digest)).await
    }

    async fn snapshot(&self, now: i64) -> Result<Vec<Entry>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(REVOKED)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let exp = v.value();
                if exp > now {
                    if let Ok(digest) = <[u8; 32]>::try_from(k.value()) {
                        out.push(Entry {
                            digest,
                            expires_at: exp,
                        });
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn position(&self) -> Result<Cursor, StoreError> {
        Ok(Cursor::At(String::new()))
    }

    async fn changes(
        &self,
        _cursor: &mut Cursor,
        wait: Duration,
    ) -> Result<Vec<Change>, StoreError> {
        // Only this node writes here, and it updates its blacklist itself.
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }

    async fn cut_off(&self, cutoff: &Cutoff) -> Result<(), StoreError> {
        let key = cutoff.key.encode();
        let value = (cutoff.not_before, cutoff.expires_at);
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(SUBJECTS)?;
                let prev = t.get(key.as_str())?.map(|v| v.value());
                let kept = prev.map_or(value, |p| (p.0.max(value.0), p.1.max(value.1)));
                t.insert(key.as_str(), kept)?;
            }
            Ok(tx.commit()?)
        })
        .await
    }

    async fn lift(&self, key: &SubjectKey) -> Result<bool, StoreError> {
        let key = key.encode();
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let removed = {
                let mut t = tx.open_table(SUBJECTS)?;
                let removed = t.remove(key.as_str())?.is_some();
                removed
            };
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    async fn cutoffs(&self, now: i64) -> Result<Vec<Cutoff>, StoreError> {
        self.blocking(move |db| cutoffs_in(db, now)).await
    }

    async fn claim_once(
        &self,
        key: &str,
        owner: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        let now = crate::sync::unix_now();
        self.blocking(move |db| {
            // As CLAIM_SCRIPT of the Redis store does.
            update_once(db, &key, now, |once| match once {
                Once::Free => (true, Some((expires_at, format!("{owner}|")))),
                // Claimed before owners were kept.
                Once::Unowned => (false, None),
                // The same claim, made again.
                Once::Held(r) if r.holder == owner => (true, None),
                Once::Held(r) if !r.holder.is_empty() || r.names(&owner) => (false, None),
                Once::Held(r) => (true, Some((expires_at, format!("{owner}|{}", r.names)))),
            })
        })
        .await
    }

    async fn forget_once(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        let now = crate::sync::unix_now();
        let kept_until = now.saturating_add(FORGOTTEN_SECONDS);
        self.blocking(move |db| {
            // As FORGET_SCRIPT of the Redis store does.
            update_once(db, &key, now, |once| {
                let record = match once {
                    Once::Free => Some(format!("|,{owner},")),
                    Once::Unowned => None,
                    Once::Held(r) if !r.holder.is_empty() && r.holder != owner => None,
                    Once::Held(r) if r.names(&owner) => None,
                    Once::Held(r) if r.names.len() >= NAMES_MAX => {
                        tracing::warn!(
                            key,
                            "too many forgotten claims of one key to name another: that \
                             claim, should it arrive late, may take the key"
                        );
                        None
                    }
                    Once::Held(r) if r.names.is_empty() => Some(format!("|,{owner},")),
                    Once::Held(r) => Some(format!("|{}{owner},", r.names)),
                };
                ((), record.map(|r| (kept_until, r)))
            })
        })
        .await
    }

    async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let mut removed = 0u64;
            {
                let mut t = tx.open_table(REVOKED)?;
                t.retain(|_, exp| {
                    let keep = exp > now;
                    removed += u64::from(!keep);
                    keep
                })?;
                let mut t = tx.open_table(SUBJECTS)?;
                t.retain(|_, (_, exp)| {
                    let keep = exp > now;
                    removed += u64::from(!keep);
                    keep
                })?;
                let mut t = tx.open_table(ONCE)?;
                let mut gone = Vec::new();
                t.retain(|key, exp| {
                    let keep = exp > now;
                    if !keep {
                        gone.push(key.to_owned());
                    }
                    keep
                })?;
                let mut owners = tx.open_table(ONCE_OWNER)?;
                for key in &gone {
                    owners.remove(key.as_str())?;
                }
            }
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn close(&self) {
        let shared = &self.shared;
        shared
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // The last handle out (this one, or an operation in flight) closes
        // the file.
        drop(
            shared
                .db
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Many operations at once (a flood of logouts) run on at most
    /// `STORE_THREADS` blocking threads; the others wait their turn, and
    /// every one is done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_at_once_hold_a_bounded_number_of_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (store, now, most) = (Arc::clone(&store), Arc::clone(&now), Arc::clone(&most));
                tokio::spawn(async move {
                    store
                        .blocking(move |_db| {
                            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(running, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            now.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("operation");
        }
        let most = most.load(Ordering::SeqCst);
        assert!((2..=STORE_THREADS).contains(&most), "{most} at once");
    }
}
