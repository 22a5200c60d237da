//! The local copy of a shared blacklist (SPEC §3.11): what a node last saw
//! of its Redis store, kept in `state_dir` so that a node starting while
//! Redis is down keeps refusing every token it knew to be revoked.
//!
//! Format (version 1): the line `jwtgate-blacklist 1\n`, then the entries,
//! 40 bytes each (32-byte digest, expiry as a little-endian i64), then the
//! SHA-256 of everything before it. A file that does not check out is not
//! used: better no snapshot (fail closed) than a truncated one.

use std::path::{Path, PathBuf};

use crate::Entry;

const MAGIC: &[u8] = b"jwtgate-blacklist 1\n";
const ENTRY: usize = 40;
const CHECKSUM: usize = 32;

/// Why a snapshot file was not used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a jwtgate blacklist snapshot, or damaged")]
    Damaged(PathBuf),
}

/// Where the snapshot lives.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SnapshotFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `entries` (a private file, replaced atomically).
    pub fn save(&self, entries: &[Entry]) -> Result<(), SnapshotError> {
        jwtgate_state::write_private(&self.path, &encode(entries)).map_err(|source| {
            SnapshotError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// The entries alive at `now`; `Ok(None)` when there is no snapshot.
    pub fn load(&self, now: i64) -> Result<Option<Vec<Entry>>, SnapshotError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SnapshotError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let entries = decode(&bytes).ok_or_else(|| SnapshotError::Damaged(self.path.clone()))?;
        Ok(Some(
            entries.into_iter().filter(|e| e.expires_at > now).collect(),
        ))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + entries.len() * ENTRY + CHECKSUM);
    out.extend_from_slice(MAGIC);
    for e in entries {
        out.extend_from_slice(&e.digest);
        out.extend_from_slice(&e.expires_at.to_le_bytes());
    }
    let sum = sha256(&out);
    out.extend_from_slice(&sum);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<Entry>> {
    let body_len = bytes.len().checked_sub(CHECKSUM)?;
    let (body, sum) = bytes.split_at(body_len);
    if sha256(body) != sum {
        return None;
    }
    let records = body.strip_prefix(MAGIC)?;
    if records.len() % ENTRY != 0 {
        return None;
    }
    records
        .chunks_exact(ENTRY)
        .map(|r| {
            let (digest, exp) = r.split_at(32);
            Some(Entry {
                digest: digest.try_into().ok()?,
                expires_at: i64::from_le_bytes(exp.try_into().ok()?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, exp: i64) -> Entry {
        Entry {
            digest: [n; 32],
            expires_at: exp,
        }
    }

    #[test]
    fn round_trips_and_drops_expired_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SnapshotFile::new(dir.path().join("state/blacklist.snapshot"));
        assert!(file.load(0).expect("no file is no snapshot").is_none());
        file.save(&[entry(1, 100), entry(2, 50)]).expect("save");
        let loaded = file.load(60).expect("load").expect("present");
        assert_eq!(loaded, [entry(1, 100)]);
        file.save(&[]).expect("save empty");
        assert_eq!(file.load(0).expect("load"), Some(vec![]));
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let good = encode(&[entry(1, 100), entry(2, 200)]);
        assert!(decode(&good).is_some());
        for cut in [0, 5, MAGIC.len(), good.len() - 1] {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 3] ^= 1;
        assert!(decode(&flipped).is_none());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(
            SnapshotFile::new(&path).load(0),
            Err(SnapshotError::Damaged(_))
        ));
    }
}
