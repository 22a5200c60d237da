//! Subject cut-offs (SPEC §3.10): "refuse tokens of this subject issued at
//! or before T". Kept in the same store as the blacklist, carried by the
//! same feed; every node holds them all in memory ([`CutoffTable`]) so that
//! a request's check is a probe or two of a hash map, never a network trip.
//!
//! A cut-off names an owner (a consumer, or an identity provider) and what
//! of it: every token of a consumer, the tokens with one `sub`, or (from
//! OpenID Connect Back-Channel Logout) the tokens with one `sid`.

use std::collections::HashMap as StdHashMap;

/// foldhash: the request path looks names up here on every request while
/// cut-offs exist; SipHash cost four times as much for short names.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use serde_json::Value;

/// Whose tokens a cut-off ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Consumer(String),
    Provider(String),
}

/// Which of the owner's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Every token of a consumer.
    Every,
    /// Tokens whose `sub` is this.
    Sub(String),
    /// Tokens whose `sid` is this (a back-channel logout's session).
    Sid(String),
}

/// The identity of a cut-off.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectKey {
    pub owner: Owner,
    pub subject: Subject,
}

impl SubjectKey {
    /// The stored form: a JSON array (`["c","alice","*"]`,
    /// `["p","corp","sub","u-1"]`), unambiguous whatever the names hold.
    pub fn encode(&self) -> String {
        let (kind, name) = match &self.owner {
            Owner::Consumer(n) => ("c", n),
            Owner::Provider(n) => ("p", n),
        };
        let v = match &self.subject {
            Subject::Every => serde_json::json!([kind, name, "*"]),
            Subject::Sub(s) => serde_json::json!([kind, name, "sub", s]),
            Subject::Sid(s) => serde_json::json!([kind, name, "sid", s]),
        };
        v.to_string()
    }

    pub fn decode(text: &str) -> Option<SubjectKey> {
        let v: Value = serde_json::from_str(text).ok()?;
        let a = v.as_array()?;
        let s = |i: usize| a.get(i).and_then(Value::as_str).map(str::to_owned);
        let owner = match s(0)?.as_str() {
            "c" => Owner::Consumer(s(1)?),
            "p" => Owner::Provider(s(1)?),
            _ => return None,
        };
        let subject = match (s(2)?.as_str(), a.len()) {
            ("*", 3) => Subject::Every,
            ("sub", 4) => Subject::Sub(s(3)?),
            ("sid", 4) => Subject::Sid(s(3)?),
            _ => return None,
        };
        Some(SubjectKey { owner, subject })
    }
}

impl std::fmt::Display for SubjectKey {
    /// `consumer "alice"`, `provider "corp" sub "u-1"`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.owner {
            Owner::Consumer(n) => write!(f, "consumer {n:?}")?,
            Owner::Provider(n) => write!(f, "provider {n:?}")?,
        }
        match &self.subject {
            Subject::Every => Ok(()),
            Subject::Sub(s) => write!(f, " sub {s:?}"),
            Subject::Sid(s) => write!(f, " sid {s:?}"),
        }
    }
}

/// An `iat` further ahead of the node's clock than this says nothing of
/// when the token was issued (a signer whose clock runs ahead, or one that
/// sets it so): the token is taken as issued before any cut-off of its
/// subject, which would otherwise never reach it.
pub const FUTURE_IAT_SECONDS: i64 = 300;

/// One cut-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoff {
    pub key: SubjectKey,
    /// Tokens issued at or before this instant (Unix seconds), or without
    /// `iat`, are refused.
    pub not_before: i64,
    /// When the cut-off is forgotten (`subject_retention_seconds` after it).
    pub expires_at: i64,
}

/// What the cut-off check needs to know of a token.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenSubject<'a> {
    /// The consumer it runs as (its key's owner, or a provider's
    /// `consumer_claim`).
    pub consumer: Option<&'a str>,
    /// The identity provider that issued it.
    pub provider: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub iat: Option<i64>,
}

#[derive(Debug, Default)]
struct OwnerCutoffs {
    every: Option<(i64, i64)>,
    subs: HashMap<String, (i64, i64)>,
    sids: HashMap<String, (i64, i64)>,
}

impl OwnerCutoffs {
    fn is_empty(&self) -> bool {
        self.every.is_none() && self.subs.is_empty() && self.sids.is_empty()
    }
}

#[derive(Debug, Default)]
struct Tables {
    consumers: HashMap<String, OwnerCutoffs>,
    providers: HashMap<String, OwnerCutoffs>,
    len: usize,
}

impl Tables {
    fn owner_mut(&mut self, owner: &Owner) -> &mut OwnerCutoffs {
        match owner {
            Owner::Consumer(n) => self.consumers.entry(n.clone()).or_default(),
            Owner::Provider(n) => self.providers.entry(n.clone()).or_default(),
        }
    }

    /// Keeps `c`, or the later of it and the one of its key; true when
    /// that refuses more than before (a new key, a later `not_before` or
    /// expiry).
    fn insert(&mut self, c: &Cutoff) -> bool {
        let owner = self.owner_mut(&c.key.owner);
        let value = (c.not_before, c.expires_at);
        let merged = match &c.key.subject {
            Subject::Every => merge(&mut owner.every, value),
            Subject::Sub(s) => merge_map(&mut owner.subs, s, value),
            Subject::Sid(s) => merge_map(&mut owner.sids, s, value),
        };
        self.len += usize::from(merged == Merged::Added);
        merged != Merged::Held
    }

    /// Whether `c` refuses nothing these do not (its key held, as late).
    fn covers(&self, c: &Cutoff) -> bool {
        let owners = match &c.key.owner {
            Owner::Consumer(_) => &self.consumers,
            Owner::Provider(_) => &self.providers,
        };
        let (Owner::Consumer(name) | Owner::Provider(name)) = &c.key.owner;
        let held = owners.get(name).and_then(|o| match &c.key.subject {
            Subject::Every => o.every,
            Subject::Sub(s) => o.subs.get(s).copied(),
            Subject::Sid(s) => o.sids.get(s).copied(),
        });
        held.is_some_and(|(not_before, expires_at)| {
            not_before >= c.not_before && expires_at >= c.expires_at
        })
    }

    fn remove(&mut self, key: &SubjectKey) -> bool {
        let map = match &key.owner {
            Owner::Consumer(_) => &mut self.consumers,
            Owner::Provider(_) => &mut self.providers,
        };
        let name = match &key.owner {
            Owner::Consumer(n) | Owner::Provider(n) => n,
        };
        let Some(owner) = map.get_mut(name) else {
            return false;
        };
        let removed = match &key.subject {
            Subject::Every => owner.every.take().is_some(),
            Subject::Sub(s) => owner.subs.remove(s).is_some(),
            Subject::Sid(s) => owner.sids.remove(s).is_some(),
        };
        if owner.is_empty() {
            map.remove(name);
        }
        self.len -= usize::from(removed);
        removed
    }
}

/// What merging a cut-off into its slot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merged {
    /// The slot was empty.
    Added,
    /// It held one that refused less (an earlier `not_before` or expiry).
    Raised,
    /// It held one that refused as much already.
    Held,
}

/// Keeps the later of the slot's cut-off and `value`.
fn merge(slot: &mut Option<(i64, i64)>, value: (i64, i64)) -> Merged {
    match slot {
        Some(old) => raise(old, value),
        None => {
            *slot = Some(value);
            Merged::Added
        }
    }
}

fn merge_map(map: &mut HashMap<String, (i64, i64)>, key: &str, value: (i64, i64)) -> Merged {
    match map.get_mut(key) {
        Some(old) => raise(old, value),
        None => {
            map.insert(key.to_owned(), value);
            Merged::Added
        }
    }
}

fn raise(old: &mut (i64, i64), value: (i64, i64)) -> Merged {
    let later = (old.0.max(value.0), old.1.max(value.1));
    if later == *old {
        return Merged::Held;
    }
    *old = later;
    Merged::Raised
}

/// Every cut-off a node knows, for the request path.
#[derive(Debug, Default)]
pub struct CutoffTable {
    tables: RwLock<Tables>,
    /// How many there are, readable without the lock: with none (the usual
    /// case) a request checks nothing.
    count: AtomicUsize,
}

impl CutoffTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // A poisoned lock leaves valid maps behind.
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the tables, then publishes their size.
    fn change<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut tables);
        self.count.store(tables.len, Ordering::Release);
        out
    }

    /// Adds `c`; true when it refuses more than before.
    pub fn insert(&self, c: &Cutoff) -> bool {
        self.change(|t| t.insert(c))
    }

    pub fn remove(&self, key: &SubjectKey) -> bool {
        self.change(|t| t.remove(key))
    }

    /// Replaces everything (a full resync: deletions missed while away
    /// apply too); true when some cut-off refuses more than before.
    pub fn replace(&self, all: impl IntoIterator<Item = Cutoff>) -> bool {
        let mut fresh = Tables::default();
        let all: Vec<Cutoff> = all.into_iter().collect();
        for c in &all {
            fresh.insert(c);
        }
        self.change(|t| {
            let more = all.iter().any(|c| !t.covers(c));
            *t = fresh;
            more
        })
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any cut-off names this consumer or this provider. A token
    /// of an owner no cut-off names needs none of its claims read, which
    /// is the usual case however many cut-offs other owners have.
    pub fn names_owner(&self, consumer: Option<&str>, provider: Option<&str>) -> bool {
        if self.is_empty() {
            return false;
        }
        let tables = self.read();
        consumer.is_some_and(|n| tables.consumers.contains_key(n))
            || provider.is_some_and(|n| tables.providers.contains_key(n))
    }

    /// The cut-off that refuses this token at `now`, if any: one whose
    /// subject is the token's and that came at or after its `iat` (a token
    /// without `iat`, or whose `iat` is more than [`FUTURE_IAT_SECONDS`]
    /// ahead of `now`, is refused by any). Probes only the owners and
    /// subjects the token names.
    pub fn refusing(&self, t: &TokenSubject<'_>, now: i64) -> Option<Cutoff> {
        if self.is_empty() {
            return None;
        }
        let tables = self.read();
        let issued = t
            .iat
            .filter(|iat| *iat <= now.saturating_add(FUTURE_IAT_SECONDS));
        let applies = |v: &(i64, i64)| v.1 > now && issued.is_none_or(|iat| iat <= v.0);
        let found = |owner: Owner, subject: Subject, v: &(i64, i64)| Cutoff {
            key: SubjectKey { owner, subject },
            not_before: v.0,
            expires_at: v.1,
        };
        if let Some(name) = t.consumer {
            if let Some(o) = tables.consumers.get(name) {
                if let Some(v) = o.every.as_ref().filter(|v| applies(v)) {
                    return Some(found(Owner::Consumer(name.into()), Subject::Every, v));
                }
                if let Some((sub, v)) = t.sub.and_then(|s| Some((s, o.subs.get(s)?))) {
                    if applies(v) {
                        return Some(found(
                            Owner::Consumer(name.into()),
                            Subject::Sub(sub.into()),
                            v,
                        ));
                    }
                }
            }
        }
        if let Some(name) = t.provider {
            if let Some(o) = tables.providers.get(name) {
                if let Some((sub, v)) = t.sub.and_then(|s| Some((s, o.subs.get(s)?))) {
                    if applies(v) {
                        return Some(found(
                            Owner::Provider(name.into()),
                            Subject::Sub(sub.into()),
                            v,
                        ));
                    }
                }
                if let Some((sid, v)) = t.sid.and_then(|s| Some((s, o.sids.get(s)?))) {
                    if applies(v) {
                        return Some(found(
                            Owner::Provider(name.into()),
                            Subject::Sid(sid.into()),
                            v,
                        ));
                    }
                }
            }
        }
        None
    }

    /// Every cut-off alive at `now` (for the admin API and the snapshot).
    pub fn all(&self, now: i64) -> Vec<Cutoff> {
        let tables = self.read();
        let mut out = Vec::with_capacity(tables.len);
        for (owners, provider) in [(&tables.consumers, false), (&tables.providers, true)] {
            for (name, o) in owners {
                let owner = || {
                    if provider {
                        Owner::Provider(name.clone())
                    } else {
                        Owner::Consumer(name.clone())
                    }
                };
                let mut push = |subject: Subject, v: &(i64, i64)| {
                    if v.1 > now {
                        out.push(Cutoff {
                            key: SubjectKey {
                                owner: owner(),
                                subject,
                            },
                            not_before: v.0,
                            expires_at: v.1,
                        });
                    }
                };
                if let Some(v) = &o.every {
                    push(Subject::Every, v);
                }
                for (s, v) in &o.subs {
                    push(Subject::Sub(s.clone()), v);
                }
                for (s, v) in &o.sids {
                    push(Subject::Sid(s.clone()), v);
                }
            }
        }
        out
    }

    /// Drops cut-offs past their retention.
    pub fn purge(&self, now: i64) -> usize {
        let expired: Vec<SubjectKey> = self
            .all(i64::MIN)
            .into_iter()
            .filter(|c| c.expires_at <= now)
            .map(|c| c.key)
            .collect();
        self.change(|tables| expired.iter().filter(|k| tables.remove(k)).count())
    }

    /// The cut-off of `key`, if there is one (for the admin API's 404).
    pub fn get(&self, key: &SubjectKey) -> Option<Cutoff> {
        let tables = self.read();
        let owner = match &key.owner {
            Owner::Consumer(n) => tables.consumers.get(n),
            Owner::Provider(n) => tables.providers.get(n),
        }?;
        let v = match &key.subject {
            Subject::Every => owner.every?,
            Subject::Sub(s) => *owner.subs.get(s)?,
            Subject::Sid(s) => *owner.sids.get(s)?,
        };
        Some(Cutoff {
            key: key.clone(),
            not_before: v.0,
            expires_at: v.1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn cut(owner: Owner, subject: Subject, at: i64) -> Cutoff {
        Cutoff {
            key: SubjectKey { owner, subject },
            not_before: at,
            expires_at: at + 3600,
        }
    }

    fn alice() -> Owner {
        Owner::Consumer("alice".into())
    }

    fn corp() -> Owner {
        Owner::Provider("corp".into())
    }

    #[test]
    fn keys_round_trip_whatever_the_names_hold() {
        for key in [
            SubjectKey {
                owner: alice(),
                subject: Subject::Every,
            },
            SubjectKey {
                owner: alice(),
                subject: Subject::Sub("u|1\"x".into()),
            },
            SubjectKey {
                owner: corp(),
                subject: Subject::Sid("s,1".into()),
            },
            SubjectKey {
                owner: Owner::Provider("*".into()),
                subject: Subject::Sub("*".into()),
            },
        ] {
            assert_eq!(
                SubjectKey::decode(&key.encode()),
                Some(key.clone()),
                "{}",
                key.encode()
            );
        }
        for bad in [
            "",
            "[]",
            "[\"x\",\"a\",\"*\"]",
            "[\"c\",\"a\",\"sub\"]",
            "[\"c\",\"a\",\"*\",\"x\"]",
            "{}",
        ] {
            assert_eq!(SubjectKey::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_issued_at_or_before_the_cut_off_are_refused() {
        let t = CutoffTable::new();
        assert!(t.is_empty());
        t.insert(&cut(alice(), Subject::Sub("u-1".into()), NOW));
        fn token(sub: &str, iat: Option<i64>) -> TokenSubject<'_> {
            TokenSubject {
                consumer: Some("alice"),
                sub: Some(sub),
                iat,
                ..TokenSubject::default()
            }
        }
        assert!(t.refusing(&token("u-1", Some(NOW - 5)), NOW).is_some());
        assert!(
            t.refusing(&token("u-1", Some(NOW)), NOW).is_some(),
            "the same second"
        );
        assert!(t.refusing(&token("u-1", None), NOW).is_some(), "no iat");
        assert!(
            t.refusing(&token("u-1", Some(NOW + 1)), NOW).is_none(),
            "issued later"
        );
        let ahead = NOW + FUTURE_IAT_SECONDS;
        assert!(
            t.refusing(&token("u-1", Some(ahead)), NOW).is_none(),
            "a clock ahead"
        );
        assert!(
            t.refusing(&token("u-1", Some(ahead + 1)), NOW).is_some(),
            "an iat too far ahead tells nothing"
        );
        assert!(t.refusing(&token("u-1", Some(i64::MAX)), NOW).is_some());
        assert!(
            t.refusing(&token("u-2", Some(NOW - 5)), NOW).is_none(),
            "another subject"
        );
        // The whole consumer.
        t.insert(&cut(alice(), Subject::Every, NOW + 10));
        assert!(t.refusing(&token("u-2", Some(NOW + 5)), NOW).is_some());
        // A provider's sub and sid.
        t.insert(&cut(corp(), Subject::Sid("s-9".into()), NOW));
        let p = TokenSubject {
            provider: Some("corp"),
            sub: Some("u-7"),
            sid: Some("s-9"),
            iat: Some(NOW - 1),
            ..TokenSubject::default()
        };
        let found = t.refusing(&p, NOW).expect("sid");
        assert_eq!(found.key.subject, Subject::Sid("s-9".into()));
        // Expired by retention: forgotten.
        assert!(t.refusing(&p, NOW + 3600).is_none());
        assert_eq!(t.len(), 3);
        assert_eq!(t.purge(NOW + 3600), 2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn an_owner_is_named_only_while_a_cut_off_names_it() {
        let t = CutoffTable::new();
        assert!(!t.names_owner(Some("alice"), None), "empty");
        t.insert(&cut(alice(), Subject::Sub("u-1".into()), NOW));
        t.insert(&cut(corp(), Subject::Sid("s-9".into()), NOW));
        assert!(t.names_owner(Some("alice"), None));
        assert!(t.names_owner(None, Some("corp")));
        assert!(t.names_owner(Some("bob"), Some("corp")));
        assert!(!t.names_owner(Some("bob"), None));
        assert!(!t.names_owner(None, Some("other-idp")));
        assert!(
            !t.names_owner(Some("corp"), Some("alice")),
            "kinds kept apart"
        );
        assert!(t.remove(&SubjectKey {
            owner: alice(),
            subject: Subject::Sub("u-1".into()),
        }));
        assert!(!t.names_owner(Some("alice"), None), "its last one removed");
    }

    #[test]
    fn later_cut_offs_win_and_removal_and_replacement() {
        let t = CutoffTable::new();
        let key = SubjectKey {
            owner: corp(),
            subject: Subject::Sub("u".into()),
        };
        t.insert(&cut(corp(), Subject::Sub("u".into()), NOW));
        t.insert(&cut(corp(), Subject::Sub("u".into()), NOW - 100));
        assert_eq!(t.get(&key).map(|c| c.not_before), Some(NOW));
        assert_eq!(t.len(), 1);
        assert!(t.remove(&key));
        assert!(!t.remove(&key));
        assert!(t.is_empty());
        t.insert(&cut(alice(), Subject::Every, NOW));
        t.replace(vec![cut(corp(), Subject::Sid("x".into()), NOW)]);
        assert_eq!(t.len(), 1);
        assert!(t
            .get(&SubjectKey {
                owner: alice(),
                subject: Subject::Every
            })
            .is_none());
        assert_eq!(t.all(NOW).len(), 1);
    }
}
