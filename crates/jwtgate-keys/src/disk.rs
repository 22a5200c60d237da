//! The last good key set of each provider, kept in `state_dir` so that a
//! node restarting while its identity provider is unreachable keeps
//! verifying (SPEC §3.6), up to `max_stale_seconds` after the fetch.
//!
//! The file holds the key set document as fetched, each key cut down to
//! the members that decide what it verifies (`jwk::public_document`: never
//! a secret the provider published), with the issuer, where and when it was
//! fetched, and which keys were published with private members (to be
//! warned about again at a restart); it is parsed again on load (with the
//! provider's current `algorithms`), never trusted as parsed keys.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

/// One provider's cache file.
#[derive(Debug, Clone)]
pub struct KeyCache {
    path: PathBuf,
    /// Read, never written (`token explain`: a one-off look at a node's
    /// state must not leave files there, owned by whoever ran it).
    read_only: bool,
    /// Set when its provider is removed or replaced: a save still on its
    /// way (a fetch that was finishing) must not bring the file back.
    retired: Arc<AtomicBool>,
}

/// What a cache file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub issuer: String,
    /// The URL the set came from.
    pub source: String,
    /// Unix seconds.
    pub fetched_at: i64,
    pub document: String,
    /// A digest of how the provider's keys were found and trusted (its key
    /// source and `ca_file`): a cache written under another is not used.
    /// `None` in caches written before it was recorded.
    pub origin: Option<String>,
    /// The kids of the keys the provider published with private members
    /// (which the document no longer holds). Empty in caches written
    /// before it was recorded.
    pub private_kids: Vec<String>,
}

impl KeyCache {
    pub fn new(path: PathBuf) -> Self {
        KeyCache {
            path,
            read_only: false,
            retired: Arc::default(),
        }
    }

    /// A cache that is read and never written.
    pub fn read_only(path: PathBuf) -> Self {
        KeyCache {
            path,
            read_only: true,
            retired: Arc::default(),
        }
    }

    /// Writes nothing from now on (this copy and every clone). A save
    /// already past its check may still land, one write's time after:
    /// harmless, as a cache is used only by a provider of the same origin.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the set (a private file, replaced atomically); a read-only
    /// cache writes nothing.
    pub fn save(&self, cached: &Cached) -> std::io::Result<()> {
        if self.read_only || self.retired.load(Ordering::Acquire) {
            return Ok(());
        }
        let text = json!({
            "version": 1,
            "issuer": cached.issuer,
            "source": cached.source,
            "fetched_at": cached.fetched_at,
            "jwks": cached.document,
            "origin": cached.origin,
            "private_kids": cached.private_kids,
        })
        .to_string();
        jwtgate_state::write_private(&self.path, text.as_bytes())
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }

    /// The cached set; `Ok(None)` when there is none.
    pub fn load(&self) -> Result<Option<Cached>, String> {
        let text = match jwtgate_state::read_private(&self.path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", self.path.display()))?;
        let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(issuer), Some(source), Some(document), Some(fetched_at), Some(1)) = (
            field("issuer"),
            field("source"),
            field("jwks"),
            value.get("fetched_at").and_then(Value::as_i64),
            value.get("version").and_then(Value::as_u64),
        ) else {
            return Err(format!(
                "{}: not a jwtgate key cache (version 1)",
                self.path.display()
            ));
        };
        Ok(Some(Cached {
            issuer,
            source,
            fetched_at,
            document,
            origin: field("origin"),
            private_kids: value
                .get("private_kids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = KeyCache::new(dir.path().join("providers/corp.jwks.json"));
        assert_eq!(cache.load(), Ok(None));
        let c = Cached {
            issuer: "https://idp".into(),
            source: "https://idp/keys".into(),
            fetched_at: 1_700_000_000,
            document: "{\"keys\":[]}".into(),
            origin: Some("abc".into()),
            private_kids: vec!["leaky".into()],
        };
        cache.save(&c).expect("save");
        assert_eq!(cache.load(), Ok(Some(c.clone())));
        std::fs::write(cache.path(), "{\"version\": 2}").expect("write");
        assert!(cache.load().is_err());
        std::fs::write(cache.path(), "garbage").expect("write");
        assert!(cache.load().is_err());
        // Retired (its provider removed): a clone on its way to save, as a
        // fetch finishing meanwhile holds, writes nothing.
        std::fs::remove_file(cache.path()).expect("remove");
        let in_flight = cache.clone();
        cache.retire();
        in_flight.save(&c).expect("save");
        assert_eq!(cache.load(), Ok(None));
    }
}
