//! The last objects a node applied from etcd, in `state_dir`
//! (`etcd-config.json`), so that a node starting while etcd is unreachable
//! serves them (SPEC §6). Written after every change, atomically and
//! owner-only (consumer secrets may be in it); read back through the same
//! object reader and compiler as etcd's own values.

use std::collections::BTreeMap;
use std::path::Path;

#[cfg(test)]
use jwtgate_config::SharedObject;
use jwtgate_config::{ObjectId, ObjectKind};
use serde::{Deserialize, Serialize};

use super::apply::{Incoming, Objects};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    /// The prefix the objects came from: a cache of another prefix is
    /// never served.
    prefix: String,
    revision: i64,
    objects: Vec<CachedObject>,
    /// What etcd held at `revision`, refused versions included: at start,
    /// whether etcd changed since (absent in files of earlier versions).
    #[serde(default)]
    stored: Option<Vec<StoredKey>>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kind: String,
    name: String,
    mod_revision: i64,
}

#[derive(Serialize, Deserialize)]
struct CachedObject {
    /// `routes`, `consumers` or `providers`.
    kind: String,
    name: String,
    mod_revision: i64,
    value: serde_json::Value,
}

/// What a cache file holds.
pub struct Cached {
    pub revision: i64,
    pub incoming: Vec<Incoming>,
    /// The mod revision of every key etcd held at `revision`, if known.
    pub stored: Option<BTreeMap<ObjectId, i64>>,
}

/// The file's bytes for the live objects.
pub fn encode(prefix: &str, objects: &Objects) -> Vec<u8> {
    let cached = objects
        .live
        .iter()
        .map(|o| CachedObject {
            kind: o.kind().dir().to_owned(),
            name: o.name().to_owned(),
            mod_revision: objects
                .versions
                .get(&(o.kind(), o.name().to_owned()))
                .copied()
                .unwrap_or(0),
            value: serde_json::from_slice(&o.to_json()).unwrap_or_default(),
        })
        .collect();
    let stored = objects
        .stored
        .iter()
        .map(|((kind, name), mod_revision)| StoredKey {
            kind: kind.dir().to_owned(),
            name: name.clone(),
            mod_revision: *mod_revision,
        })
        .collect();
    let file = CacheFile {
        format: FORMAT,
        prefix: prefix.to_owned(),
        revision: objects.revision,
        objects: cached,
        stored: Some(stored),
    };
    serde_json::to_vec(&file).unwrap_or_default()
}

/// Reads the cache: `Ok(None)` when there is none (or it is another
/// prefix's), `Err` when it cannot be read.
pub fn load(path: &Path, prefix: &str) -> Result<Option<Cached>, String> {
    let bytes = match jwtgate_state::read_private(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: CacheFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.format != FORMAT {
        return Err(format!(
            "{}: format {} (this jwtgate reads {FORMAT})",
            path.display(),
            file.format
        ));
    }
    if file.prefix != prefix {
        return Ok(None);
    }
    let kind_of = |dir: &str| {
        ObjectKind::from_dir(dir).ok_or_else(|| format!("{}: unknown kind {dir:?}", path.display()))
    };
    let mut incoming = Vec::with_capacity(file.objects.len());
    for o in file.objects {
        let kind = kind_of(&o.kind)?;
        let bytes = serde_json::to_vec(&o.value).unwrap_or_default();
        incoming.push(((kind, o.name), Some((bytes, o.mod_revision))));
    }
    let stored = match file.stored {
        Some(keys) => {
            let mut stored = BTreeMap::new();
            for k in keys {
                stored.insert((kind_of(&k.kind)?, k.name), k.mod_revision);
            }
            Some(stored)
        }
        None => None,
    };
    Ok(Some(Cached {
        revision: file.revision,
        incoming,
        stored,
    }))
}

/// An object's bytes as the cache stores them read back.
#[cfg(test)]
fn round_trip(o: &SharedObject) -> SharedObject {
    let v: serde_json::Value = serde_json::from_slice(&o.to_json()).expect("json");
    SharedObject::read(o.kind(), o.name(), &serde_json::to_vec(&v).expect("bytes")).expect("read")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_reads_back_what_was_live() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("etcd-config.json");
        let mut objects = Objects::default();
        let route = SharedObject::read(
            ObjectKind::Route,
            "r",
            br#"{"paths": ["/x"], "upstream": {"echo": true}}"#,
        )
        .expect("route");
        assert_eq!(round_trip(&route), route);
        objects.live.insert(route);
        objects.versions.insert((ObjectKind::Route, "r".into()), 7);
        // etcd holds a newer version of r (refused) and a key that did not read.
        objects.stored.insert((ObjectKind::Route, "r".into()), 8);
        objects
            .stored
            .insert((ObjectKind::Consumer, "bad".into()), 9);
        objects.revision = 9;
        std::fs::write(&path, encode("/jwtgate", &objects)).expect("write");
        let cached = load(&path, "/jwtgate").expect("load").expect("some");
        assert_eq!(cached.revision, 9);
        assert_eq!(cached.incoming.len(), 1);
        assert_eq!(cached.incoming[0].1.as_ref().map(|(_, r)| *r), Some(7));
        assert_eq!(cached.stored.as_ref(), Some(&objects.stored));
        // A file of the first version, without what etcd held.
        let old = r#"{"format": 1, "prefix": "/jwtgate", "revision": 3, "objects": []}"#;
        std::fs::write(&path, old).expect("write");
        let cached = load(&path, "/jwtgate").expect("load").expect("some");
        assert!(cached.stored.is_none());
        assert!(
            load(&path, "/other").expect("load").is_none(),
            "another prefix's cache"
        );
        std::fs::write(&path, b"{broken").expect("write");
        assert!(load(&path, "/jwtgate").is_err());
        assert!(load(&dir.path().join("none"), "/jwtgate")
            .expect("ok")
            .is_none());
    }
}
