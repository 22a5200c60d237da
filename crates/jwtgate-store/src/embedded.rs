//! The embedded store: a redb database in a local directory. A revocation is
//! acknowledged only after its write transaction has committed durably
//! (fsync), so a `200 logged out` survives `kill -9`. Single node: there is
//! no change feed to follow.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::{Cursor, Entry, RevocationStore, StoreError};

const REVOKED: TableDefinition<&[u8], i64> = TableDefinition::new("revoked");
const FILE: &str = "revocations.redb";

pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join(FILE);
        let db =
            Database::create(&file).map_err(|e| unavailable(format!("{}: {e}", file.display())))?;
        // Create the table so that readers never meet a missing table.
        let tx = db.begin_write().map_err(unavailable)?;
        tx.open_table(REVOKED).map_err(unavailable)?;
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
    ) -> Result<Vec<Entry>, StoreError> {
        // Only this node writes here, and it updates its blacklist itself.
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
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
