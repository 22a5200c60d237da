//! The objects several nodes share (SPEC §6): routes, consumers and
//! providers, each on its own, by kind and name, as a config source other
//! than the file (etcd) holds them: one JSON value per object, in the admin
//! API's shapes.
//!
//! Pure: reading an object's bytes, keeping a set of them, putting them
//! together with a node's own part into one source config, and finding
//! which object an error location (`routes[3].jwt.realm`) points at. Where
//! the bytes come from and when a set goes live is the control plane's
//! business.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{ConfigError, ConfigErrors};
use crate::raw::{RawConfig, RawConsumer, RawProvider, RawRoute};
use crate::source::{read_consumer, read_provider, read_route};

/// What kind of object a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Route,
    Consumer,
    Provider,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [
        ObjectKind::Route,
        ObjectKind::Consumer,
        ObjectKind::Provider,
    ];

    /// The key segment under a prefix, and the config file's list name.
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Route => "routes",
            ObjectKind::Consumer => "consumers",
            ObjectKind::Provider => "providers",
        }
    }

    pub fn from_dir(dir: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.dir() == dir)
    }

    /// The field that names an object of this kind.
    fn name_field(self) -> &'static str {
        match self {
            ObjectKind::Consumer => "username",
            ObjectKind::Route | ObjectKind::Provider => "name",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Route => "route",
            ObjectKind::Consumer => "consumer",
            ObjectKind::Provider => "provider",
        })
    }
}

/// An object's identity.
pub type ObjectId = (ObjectKind, String);

/// One shared object, read.
// Short-lived (a change in flight); the sets keep routes, consumers and
// providers unwrapped, so boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SharedObject {
    Route(RawRoute),
    Consumer(RawConsumer),
    Provider(RawProvider),
}

impl SharedObject {
    pub fn kind(&self) -> ObjectKind {
        match self {
            SharedObject::Route(_) => ObjectKind::Route,
            SharedObject::Consumer(_) => ObjectKind::Consumer,
            SharedObject::Provider(_) => ObjectKind::Provider,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            SharedObject::Route(r) => &r.name,
            SharedObject::Consumer(c) => &c.username,
            SharedObject::Provider(p) => &p.name,
        }
    }

    /// The object as stored: JSON in the admin API's shape (secrets as the
    /// source holds them: `${ENV}` references stay references).
    pub fn to_json(&self) -> Vec<u8> {
        let value = match self {
            SharedObject::Route(r) => serde_json::to_vec(r),
            SharedObject::Consumer(c) => serde_json::to_vec(c),
            SharedObject::Provider(p) => serde_json::to_vec(p),
        };
        // Serialising plain data structs to a Vec cannot fail.
        value.unwrap_or_default()
    }

    /// Reads an object stored under `kind`/`name`. Every problem, located
    /// inside the object (`jwt.realm`); the name in the value, if any, must
    /// be the one in the key.
    pub fn read(kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<SharedObject, ConfigErrors> {
        let mut value = crate::tree::parse_json(bytes)
            .map_err(|e| ConfigErrors::single("", format!("not JSON: {e}")))?;
        let refs = env_refs_outside_secrets(kind, &value);
        if !refs.is_empty() {
            return Err(ConfigErrors(refs));
        }
        if let Value::Object(map) = &mut value {
            match map.get(kind.name_field()) {
                None => {
                    map.insert(kind.name_field().into(), Value::String(name.into()));
                }
                Some(Value::String(n)) if n == name => {}
                Some(other) => {
                    return Err(ConfigErrors::single(
                        kind.name_field(),
                        format!("is {other}, but the key names {name:?}"),
                    ))
                }
            }
        }
        // Held to the admin API's rule for a new name: what a file is only
        // warned about, an etcd writer is refused (an outside audit: a
        // 300 KB name went into every access line and identity header of
        // its route).
        if let Some(problem) = crate::name_problem(name) {
            return Err(ConfigErrors::single(kind.name_field(), problem));
        }
        Ok(match kind {
            ObjectKind::Route => SharedObject::Route(read_route(&value, "").into_result()?),
            ObjectKind::Consumer => {
                SharedObject::Consumer(read_consumer(&value, "").into_result()?)
            }
            ObjectKind::Provider => {
                SharedObject::Provider(read_provider(&value, "").into_result()?)
            }
        })
    }
}

/// The one field of a shared object that may hold a `${ENV}` reference,
/// which each node resolves from its own environment: a consumer's HMAC
/// secret. Anywhere else, whoever may write to etcd could copy a node's
/// environment (its admin key, the Redis password) into a realm or a header
/// that every client sees; the admin API refuses new references for the
/// same reason.
pub const ENV_REF_FIELD: (ObjectKind, &str) = (ObjectKind::Consumer, "jwt.secret");

/// Every `${...}` in `value` (an object of `kind`) outside
/// [`ENV_REF_FIELD`], located inside the object.
pub fn env_refs_outside_secrets(kind: ObjectKind, value: &Value) -> Vec<ConfigError> {
    fn walk(value: &Value, loc: String, allowed: Option<&str>, found: &mut Vec<ConfigError>) {
        match value {
            Value::String(s) if s.contains("${") && Some(loc.as_str()) != allowed => {
                found.push(ConfigError {
                    location: loc,
                    message: format!(
                        "${{...}} environment references are taken only in a consumer's {} \
                         of an object in etcd",
                        ENV_REF_FIELD.1
                    ),
                });
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{loc}[{i}]"), allowed, found);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let at = if loc.is_empty() {
                        k.clone()
                    } else {
                        format!("{loc}.{k}")
                    };
                    walk(v, at, allowed, found);
                }
            }
            _ => {}
        }
    }
    let allowed = (kind == ENV_REF_FIELD.0).then_some(ENV_REF_FIELD.1);
    let mut found = Vec::new();
    walk(value, String::new(), allowed, &mut found);
    found
}

/// A set of shared objects, each kind in name order (the order every node
/// puts them in, so that every node compiles the same config).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedObjects {
    routes: BTreeMap<String, RawRoute>,
    consumers: BTreeMap<String, RawConsumer>,
    providers: BTreeMap<String, RawProvider>,
}

/// Whether `route`'s jwt policy carries a protection flag.
pub fn route_protected(route: &RawRoute) -> bool {
    route
        .jwt
        .as_ref()
        .and_then(|j| j.protection)
        .is_some_and(|p| p.undeletable || p.immutable)
}

impl SharedObjects {
    /// The routes, consumers and providers of a source config. A name that
    /// appears twice keeps its last object (compiling the config first
    /// reports the duplicate).
    pub fn of(source: &RawConfig) -> SharedObjects {
        let mut set = SharedObjects::default();
        for r in &source.routes {
            set.insert(SharedObject::Route(r.clone()));
        }
        for c in &source.consumers {
            set.insert(SharedObject::Consumer(c.clone()));
        }
        for p in &source.providers {
            set.insert(SharedObject::Provider(p.clone()));
        }
        set
    }

    pub fn len(&self) -> usize {
        self.routes.len() + self.consumers.len() + self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or replaces; returns the replaced object.
    pub fn insert(&mut self, object: SharedObject) -> Option<SharedObject> {
        match object {
            SharedObject::Route(r) => self
                .routes
                .insert(r.name.clone(), r)
                .map(SharedObject::Route),
            SharedObject::Consumer(c) => self
                .consumers
                .insert(c.username.clone(), c)
                .map(SharedObject::Consumer),
            SharedObject::Provider(p) => self
                .providers
                .insert(p.name.clone(), p)
                .map(SharedObject::Provider),
        }
    }

    pub fn remove(&mut self, kind: ObjectKind, name: &str) -> Option<SharedObject> {
        match kind {
            ObjectKind::Route => self.routes.remove(name).map(SharedObject::Route),
            ObjectKind::Consumer => self.consumers.remove(name).map(SharedObject::Consumer),
            ObjectKind::Provider => self.providers.remove(name).map(SharedObject::Provider),
        }
    }

    /// Puts `object` in place of whatever `kind`/`name` holds (`None`:
    /// removes it).
    pub fn set(&mut self, kind: ObjectKind, name: &str, object: Option<SharedObject>) {
        match object {
            Some(o) => {
                self.insert(o);
            }
            None => {
                self.remove(kind, name);
            }
        }
    }

    pub fn get(&self, kind: ObjectKind, name: &str) -> Option<SharedObject> {
        match kind {
            ObjectKind::Route => self.routes.get(name).cloned().map(SharedObject::Route),
            ObjectKind::Consumer => self
                .consumers
                .get(name)
                .cloned()
                .map(SharedObject::Consumer),
            ObjectKind::Provider => self
                .providers
                .get(name)
                .cloned()
                .map(SharedObject::Provider),
        }
    }

    /// Whether any route's jwt policy carries a protection flag.
    pub fn any_protected(&self) -> bool {
        self.routes.values().any(route_protected)
    }

    /// Every object, kinds in [`ObjectKind::ALL`] order, names in order.
    pub fn iter(&self) -> impl Iterator<Item = SharedObject> + '_ {
        let routes = self.routes.values().cloned().map(SharedObject::Route);
        let consumers = self.consumers.values().cloned().map(SharedObject::Consumer);
        let providers = self.providers.values().cloned().map(SharedObject::Provider);
        routes.chain(consumers).chain(providers)
    }

    /// The objects that differ between `self` and `next`: what `next`
    /// holds for each (`None`: deleted), in key order.
    pub fn changes_to(&self, next: &SharedObjects) -> Vec<(ObjectId, Option<SharedObject>)> {
        let mut out = Vec::new();
        diff(
            &self.routes,
            &next.routes,
            ObjectKind::Route,
            SharedObject::Route,
            &mut out,
        );
        diff(
            &self.consumers,
            &next.consumers,
            ObjectKind::Consumer,
            SharedObject::Consumer,
            &mut out,
        );
        diff(
            &self.providers,
            &next.providers,
            ObjectKind::Provider,
            SharedObject::Provider,
            &mut out,
        );
        out
    }

    /// `node` (a node's own part) with these objects as its routes,
    /// consumers and providers, in name order.
    pub fn with_node_part(&self, node: &RawConfig) -> RawConfig {
        RawConfig {
            routes: self.routes.values().cloned().collect(),
            consumers: self.consumers.values().cloned().collect(),
            providers: self.providers.values().cloned().collect(),
            ..node.node_part()
        }
    }

    /// The object a location in the config built by
    /// [`with_node_part`](Self::with_node_part) lies in:
    /// `consumers[2].jwt.key` -> the third consumer by name.
    pub fn locate(&self, location: &str) -> Option<ObjectId> {
        let (list, rest) = location.split_once('[')?;
        let kind = ObjectKind::from_dir(list)?;
        let i: usize = rest.split_once(']')?.0.parse().ok()?;
        let name = match kind {
            ObjectKind::Route => self.routes.keys().nth(i),
            ObjectKind::Consumer => self.consumers.keys().nth(i),
            ObjectKind::Provider => self.providers.keys().nth(i),
        };
        name.map(|n| (kind, n.clone()))
    }

    /// The part of `location` inside its object (`jwt.key` for
    /// `consumers[2].jwt.key`), for messages.
    pub fn inner_location(location: &str) -> &str {
        location
            .split_once(']')
            .map(|(_, rest)| rest.trim_start_matches('.'))
            .unwrap_or(location)
    }
}

/// The objects as YAML, the three lists a config file holds them in
/// (what `jwtgate config pull` prints and `push` reads back).
pub fn objects_to_yaml(objects: &SharedObjects) -> Result<String, String> {
    #[derive(serde::Serialize)]
    struct Lists<'a> {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        providers: Vec<&'a RawProvider>,
        consumers: Vec<&'a RawConsumer>,
        routes: Vec<&'a RawRoute>,
    }
    let lists = Lists {
        providers: objects.providers.values().collect(),
        consumers: objects.consumers.values().collect(),
        routes: objects.routes.values().collect(),
    };
    serde_saphyr::to_string(&lists).map_err(|e| e.to_string())
}

fn diff<T: Clone + PartialEq>(
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    kind: ObjectKind,
    wrap: fn(T) -> SharedObject,
    out: &mut Vec<(ObjectId, Option<SharedObject>)>,
) {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (a, b) = (old.get(name), new.get(name));
        if a != b {
            out.push(((kind, name.clone()), b.cloned().map(wrap)));
        }
    }
}

/// An error located in an object, for logs: `routes/orders: jwt.realm: ...`.
pub fn locate_in(kind: ObjectKind, name: &str, e: &ConfigError) -> String {
    if e.location.is_empty() {
        format!("{}/{name}: {}", kind.dir(), e.message)
    } else {
        format!("{}/{name}: {}: {}", kind.dir(), e.location, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> SharedObject {
        SharedObject::read(
            ObjectKind::Route,
            name,
            br#"{"paths": ["/x"], "upstream": {"echo": true}}"#,
        )
        .expect("route")
    }

    #[test]
    fn reads_objects_and_checks_the_name_against_the_key() {
        let r = route("orders");
        assert_eq!((r.kind(), r.name()), (ObjectKind::Route, "orders"));
        let back = SharedObject::read(ObjectKind::Route, "orders", &r.to_json()).expect("again");
        assert_eq!(back, r, "what to_json writes reads back");
        let e = SharedObject::read(ObjectKind::Consumer, "bob", br#"{"username": "alice"}"#)
            .unwrap_err();
        assert_eq!(e.0[0].location, "username");
        for bad in [
            "a\nb".to_owned(),
            "n".repeat(257),
            "..".to_owned(),
            " x".to_owned(),
        ] {
            let e = SharedObject::read(ObjectKind::Route, &bad, b"{}").unwrap_err();
            assert_eq!(e.0[0].location, "name", "{bad:?}");
        }
        assert!(SharedObject::read(
            ObjectKind::Route,
            &"n".repeat(256),
            br#"{"paths": ["/a"], "upstream": {"echo": true}}"#
        )
        .is_ok());
        let e = SharedObject::read(ObjectKind::Route, "x", b"{not json").unwrap_err();
        assert!(e.0[0].message.starts_with("not JSON"), "{e}");
        let e = SharedObject::read(ObjectKind::Provider, "p", b"[1]").unwrap_err();
        assert!(e.0[0].message.contains("mapping"), "{e}");
    }

    #[test]
    fn locations_point_back_at_objects_in_name_order() {
        let mut set = SharedObjects::default();
        for n in ["c", "a", "b"] {
            set.insert(route(n));
        }
        let config = set.with_node_part(&RawConfig::default());
        let names: Vec<_> = config.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            set.locate("routes[1].jwt.realm"),
            Some((ObjectKind::Route, "b".into()))
        );
        assert_eq!(set.locate("routes[7]"), None);
        assert_eq!(set.locate("listen"), None);
        assert_eq!(
            SharedObjects::inner_location("routes[1].jwt.realm"),
            "jwt.realm"
        );
    }

    #[test]
    fn changes_name_what_differs() {
        let mut a = SharedObjects::default();
        a.insert(route("keep"));
        a.insert(route("gone"));
        let mut b = a.clone();
        b.remove(ObjectKind::Route, "gone");
        b.insert(route("new"));
        let changes: Vec<_> = a
            .changes_to(&b)
            .into_iter()
            .map(|((_, n), o)| (n, o.is_some()))
            .collect();
        assert_eq!(changes, [("gone".into(), false), ("new".into(), true)]);
    }
}
