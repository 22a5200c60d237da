//! The embedded store: a redb database in a local directory. A revocation is
//! acknowledged only after its write transaction has committed durably
//! (fsync), so a `200 logged out` survives `kill -9`. Single node: there is
//! no change feed to follow.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{Change, Cursor, Cutoff, Entry, RevocationStore, StoreError, SubjectKey};

const REVOKED: TableDefinition<&[u8], i64> = TableDefinition::new("revoked");
/// Subject cut-offs: encoded key -> (not_before, expires_at).
const SUBJECTS: TableDefinition<&str, (i64, i64)> = TableDefinition::new("subjects");
/// Keys recorded once (back-channel logout `jti`s) -> expiry.
const ONCE: TableDefinition<&str, i64> = TableDefinition::new("once");
/// Who recorded each key of [`ONCE`] (`claim_once`'s owner), so that a
/// forget takes back only its own claim. A key without one (recorded
/// before owners were) is forgotten by nobody, and expires.
const ONCE_OWNER: TableDefinition<&str, &str> = TableDefinition::new("once_owner");
const FILE: &str = "revocations.redb";

pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Creates `file`, empty and owner-only, unless it exists (the store of an
/// earlier run, opened as it is).
fn create_unless_there(file: &Path) -> std::io::Result<()> {
    match jwtgate_state::create_private_file(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `dir`. What this creates
    /// is owner-only (SPEC §3.11): the directory `0700`, the file `0600`,
    /// made with an exclusive create (redb fills an empty file).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        jwtgate_state::create_private_dir(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join(FILE);
        create_unless_there(&file)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", file.display())))?;
        let db =
            Database::create(&file).map_err(|e| unavailable(format!("{}: {e}", file.display())))?;
        // Create the table so that readers never meet a missing table.
        let tx = db.begin_write().map_err(unavailable)?;
        tx.open_table(REVOKED).map_err(unavailable)?;
        tx.open_table(SUBJECTS).map_err(unavailable)?;
        tx.open_table(ONCE).map_err(unavailable)?;
        tx.open_table(ONCE_OWNER).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    /// Whether a store was ever created in `dir` (read-only tools use this
    /// to avoid creating one as a side effect).
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE).is_file()
    }

    /// redb is synchronous; run it off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| unavailable(format!("store task failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl RevocationStore for EmbeddedStore {
    async fn revoke(&self, entry: Entry) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut t = tx.open_table(REVOKED).map_err(unavailable)?;
                let prev = t
                    .get(entry.digest.as_slice())
                    .map_err(unavailable)?
                    .map(|v| v.value());
                let exp = prev.map_or(entry.expires_at, |p| p.max(entry.expires_at));
                t.insert(entry.digest.as_slice(), exp)
                    .map_err(unavailable)?;
            }
            // Durability::Immediate is redb's default: commit returns after fsync.
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn revoke_batch(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut t = tx.open_table(REVOKED).map_err(unavailable)?;
                for e in entries {
                    let prev = t
                        .get(e.digest.as_slice())
                        .map_err(unavailable)?
                        .map(|v| v.value());
                    t.insert(
                        e.digest.as_slice(),
                        prev.map_or(e.expires_at, |p| p.max(e.expires_at)),
                    )
                    .map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn lookup(&self, digest: &crate::Digest) -> Result<Option<i64>, StoreError> {
        let digest = *digest;
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(REVOKED).map_err(unavailable)?;
            Ok(t.get(digest.as_slice())
                .map_err(unavailable)?
                .map(|v| v.value()))
        })
        .await
    }

    async fn snapshot(&self, now: i64) -> Result<Vec<Entry>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(REVOKED).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
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
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut t = tx.open_table(SUBJECTS).map_err(unavailable)?;
                let prev = t.get(key.as_str()).map_err(unavailable)?.map(|v| v.value());
                let kept = prev.map_or(value, |p| (p.0.max(value.0), p.1.max(value.1)));
                t.insert(key.as_str(), kept).map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn lift(&self, key: &SubjectKey) -> Result<bool, StoreError> {
        let key = key.encode();
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let removed = {
                let mut t = tx.open_table(SUBJECTS).map_err(unavailable)?;
                let removed = t.remove(key.as_str()).map_err(unavailable)?.is_some();
                removed
            };
            tx.commit().map_err(unavailable)?;
            Ok(removed)
        })
        .await
    }

    async fn cutoffs(&self, now: i64) -> Result<Vec<Cutoff>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read().map_err(unavailable)?;
            let t = tx.open_table(SUBJECTS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
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
        })
        .await
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
            let tx = db.begin_write().map_err(unavailable)?;
            let first = {
                let mut t = tx.open_table(ONCE).map_err(unavailable)?;
                let live = t
                    .get(key.as_str())
                    .map_err(unavailable)?
                    .is_some_and(|v| v.value() > now);
                if !live {
                    t.insert(key.as_str(), expires_at).map_err(unavailable)?;
                    tx.open_table(ONCE_OWNER)
                        .map_err(unavailable)?
                        .insert(key.as_str(), owner.as_str())
                        .map_err(unavailable)?;
                }
                !live
            };
            tx.commit().map_err(unavailable)?;
            Ok(first)
        })
        .await
    }

    async fn forget_once(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let (key, owner) = (key.to_owned(), owner.to_owned());
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            {
                let mut owners = tx.open_table(ONCE_OWNER).map_err(unavailable)?;
                let mine = owners
                    .get(key.as_str())
                    .map_err(unavailable)?
                    .is_some_and(|v| v.value() == owner);
                if mine {
                    owners.remove(key.as_str()).map_err(unavailable)?;
                    tx.open_table(ONCE)
                        .map_err(unavailable)?
                        .remove(key.as_str())
                        .map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write().map_err(unavailable)?;
            let mut removed = 0u64;
            {
                let mut t = tx.open_table(REVOKED).map_err(unavailable)?;
                t.retain(|_, exp| {
                    let keep = exp > now;
                    removed += u64::from(!keep);
                    keep
                })
                .map_err(unavailable)?;
                let mut t = tx.open_table(SUBJECTS).map_err(unavailable)?;
                t.retain(|_, (_, exp)| {
                    let keep = exp > now;
                    removed += u64::from(!keep);
                    keep
                })
                .map_err(unavailable)?;
                let mut t = tx.open_table(ONCE).map_err(unavailable)?;
                let mut gone = Vec::new();
                t.retain(|key, exp| {
                    let keep = exp > now;
                    if !keep {
                        gone.push(key.to_owned());
                    }
                    keep
                })
                .map_err(unavailable)?;
                let mut owners = tx.open_table(ONCE_OWNER).map_err(unavailable)?;
                for key in &gone {
                    owners.remove(key.as_str()).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)?;
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
}
