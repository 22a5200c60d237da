//! The local copy of a shared blacklist (SPEC §3.11): what a node last saw
//! of its Redis store, kept in `state_dir` so that a node starting while
//! Redis is down keeps refusing every token it knew to be revoked.
//!
//! Format (version 3): the line `jwtgate-blacklist 3\n`; the store's
//! generation when the copy was taken (its length, u32, 0 for none, and its
//! bytes); the number of blacklist entries (u64), the entries, 40 bytes
//! each (32-byte digest, expiry), then the subject cut-offs, each its
//! encoded key's length (u32), the key, `not_before` and `expires_at`;
//! integers little-endian; then the SHA-256 of everything before it.
//! Versions 1 (entries only) and 2 (no generation) are still read. A file
//! that does not check out is not used: better no snapshot (fail closed)
//! than a truncated one.
//!
//! The generation lets a node that starts see that the store lost what it
//! held since the copy was taken (a Redis restarted empty, a flush): it
//! then writes the copy back before loading, rather than letting every
//! token the copy refuses in.

use std::path::{Path, PathBuf};

use crate::{Cutoff, Entry, SubjectKey};

const MAGIC_V1: &[u8] = b"jwtgate-blacklist 1\n";
const MAGIC_V2: &[u8] = b"jwtgate-blacklist 2\n";
const MAGIC: &[u8] = b"jwtgate-blacklist 3\n";
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

/// What a snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: Vec<Entry>,
    pub cutoffs: Vec<Cutoff>,
    /// The store's generation when it was taken, if it had one.
    pub generation: Option<String>,
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

    /// Writes the blacklist, the cut-offs and the store's generation (a
    /// private file, replaced atomically).
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        jwtgate_state::write_private(&self.path, &encode(snapshot)).map_err(|source| {
            SnapshotError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }

    /// The entries and cut-offs alive at `now`; `Ok(None)` when there is
    /// no snapshot.
    pub fn load(&self, now: i64) -> Result<Option<Snapshot>, SnapshotError> {
        let bytes = match jwtgate_state::read_private(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SnapshotError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut snapshot =
            decode(&bytes).ok_or_else(|| SnapshotError::Damaged(self.path.clone()))?;
        snapshot.entries.retain(|e| e.expires_at > now);
        snapshot.cutoffs.retain(|c| c.expires_at > now);
        Ok(Some(snapshot))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let Snapshot {
        entries,
        cutoffs,
        generation,
    } = snapshot;
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + entries.len() * ENTRY + CHECKSUM);
    out.extend_from_slice(MAGIC);
    let generation = generation.as_deref().unwrap_or_default();
    // A generation is a short token the gateway wrote; a u32 holds it.
    out.extend_from_slice(&(generation.len() as u32).to_le_bytes());
    out.extend_from_slice(generation.as_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.digest);
        out.extend_from_slice(&e.expires_at.to_le_bytes());
    }
    for c in cutoffs {
        let key = c.key.encode();
        // Keys are short (names and subjects); a u32 always holds them.
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&c.not_before.to_le_bytes());
        out.extend_from_slice(&c.expires_at.to_le_bytes());
    }
    let sum = sha256(&out);
    out.extend_from_slice(&sum);
    out
}

/// Reads `n` bytes off the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = (input.get(..n)?, input.get(n..)?);
    *input = rest;
    Some(head)
}

fn take_i64(input: &mut &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(take(input, 8)?.try_into().ok()?))
}

fn take_entry(input: &mut &[u8]) -> Option<Entry> {
    Some(Entry {
        digest: take(input, 32)?.try_into().ok()?,
        expires_at: take_i64(input)?,
    })
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Snapshot> {
    let body_len = bytes.len().checked_sub(CHECKSUM)?;
    let (body, sum) = bytes.split_at(body_len);
    if sha256(body) != sum {
        return None;
    }
    if let Some(records) = body.strip_prefix(MAGIC_V1) {
        if records.len() % ENTRY != 0 {
            return None;
        }
        let mut input = records;
        let mut entries = Vec::with_capacity(records.len() / ENTRY);
        while !input.is_empty() {
            entries.push(take_entry(&mut input)?);
        }
        return Some(Snapshot {
            entries,
            ..Snapshot::default()
        });
    }
    let (mut input, generation) = match body.strip_prefix(MAGIC_V2) {
        Some(rest) => (rest, None),
        None => {
            let mut input = body.strip_prefix(MAGIC)?;
            let len = u32::from_le_bytes(take(&mut input, 4)?.try_into().ok()?);
            let generation = std::str::from_utf8(take(&mut input, usize::try_from(len).ok()?)?)
                .ok()?
                .to_owned();
            (input, (!generation.is_empty()).then_some(generation))
        }
    };
    let count = u64::from_le_bytes(take(&mut input, 8)?.try_into().ok()?);
    let count = usize::try_from(count).ok()?;
    // Bounded by what the file holds, whatever the count says.
    let mut entries = Vec::with_capacity(count.min(input.len() / ENTRY));
    for _ in 0..count {
        entries.push(take_entry(&mut input)?);
    }
    let mut cutoffs = Vec::new();
    while !input.is_empty() {
        let len = u32::from_le_bytes(take(&mut input, 4)?.try_into().ok()?);
        let key = std::str::from_utf8(take(&mut input, usize::try_from(len).ok()?)?).ok()?;
        cutoffs.push(Cutoff {
            key: SubjectKey::decode(key)?,
            not_before: take_i64(&mut input)?,
            expires_at: take_i64(&mut input)?,
        });
    }
    Some(Snapshot {
        entries,
        cutoffs,
        generation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Owner, Subject};

    fn entry(n: u8, exp: i64) -> Entry {
        Entry {
            digest: [n; 32],
            expires_at: exp,
        }
    }

    fn cutoff(sub: &str, exp: i64) -> Cutoff {
        Cutoff {
            key: SubjectKey {
                owner: Owner::Provider("corp".into()),
                subject: Subject::Sub(sub.into()),
            },
            not_before: 10,
            expires_at: exp,
        }
    }

    #[test]
    fn round_trips_and_drops_expired_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SnapshotFile::new(dir.path().join("state/blacklist.snapshot"));
        assert!(file.load(0).expect("no file is no snapshot").is_none());
        file.save(&Snapshot {
            entries: vec![entry(1, 100), entry(2, 50)],
            cutoffs: vec![cutoff("u-1", 100), cutoff("u-2", 50)],
            generation: Some("19a-42".into()),
        })
        .expect("save");
        let loaded = file.load(60).expect("load").expect("present");
        assert_eq!(loaded.entries, [entry(1, 100)]);
        assert_eq!(loaded.cutoffs, [cutoff("u-1", 100)]);
        assert_eq!(loaded.generation.as_deref(), Some("19a-42"));
        file.save(&Snapshot::default()).expect("save empty");
        assert_eq!(file.load(0).expect("load"), Some(Snapshot::default()));
    }

    #[test]
    fn version_2_files_are_still_read() {
        let mut v2 = MAGIC_V2.to_vec();
        v2.extend_from_slice(&1u64.to_le_bytes());
        v2.extend_from_slice(&[7u8; 32]);
        v2.extend_from_slice(&99i64.to_le_bytes());
        let sum = sha256(&v2);
        v2.extend_from_slice(&sum);
        let read = decode(&v2).expect("read");
        assert_eq!(read.entries, [entry(7, 99)]);
        assert_eq!(read.generation, None);
    }

    #[test]
    fn version_1_files_are_still_read() {
        let mut v1 = MAGIC_V1.to_vec();
        v1.extend_from_slice(&[7u8; 32]);
        v1.extend_from_slice(&99i64.to_le_bytes());
        let sum = sha256(&v1);
        v1.extend_from_slice(&sum);
        let read = decode(&v1).expect("read");
        assert_eq!(read.entries, [entry(7, 99)]);
        assert!(read.cutoffs.is_empty() && read.generation.is_none());
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let good = encode(&Snapshot {
            entries: vec![entry(1, 100), entry(2, 200)],
            cutoffs: vec![cutoff("x", 300)],
            generation: Some("g".into()),
        });
        assert!(decode(&good).is_some());
        for cut in [
            0,
            5,
            MAGIC.len(),
            MAGIC.len() + 5,
            MAGIC.len() + 13,
            good.len() - 1,
        ] {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 16] ^= 1;
        assert!(decode(&flipped).is_none());
        // A count larger than the entries, with a valid checksum.
        let mut lying = MAGIC.to_vec();
        lying.extend_from_slice(&0u32.to_le_bytes());
        lying.extend_from_slice(&u64::MAX.to_le_bytes());
        let sum = sha256(&lying);
        lying.extend_from_slice(&sum);
        assert!(decode(&lying).is_none());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, b"garbage").expect("write");
        assert!(matches!(
            SnapshotFile::new(&path).load(0),
            Err(SnapshotError::Damaged(_))
        ));
    }
}
