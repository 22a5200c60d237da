//! Passive health of an upstream node, as nginx's `max_fails` and
//! `fail_timeout`: a node whose connects failed `max_fails` times within
//! `fail_timeout` is left out of its route's round robin for
//! `fail_timeout`, so that requests stop paying a dead node's connect
//! (refused, or a whole `connect_timeout_ms` where it does not answer)
//! before the next node serves them. Once that time is over, one request
//! (the probe) is let through to it: a connect that works puts it back in,
//! one that fails leaves it out for another `fail_timeout`. Nodes left out
//! are still tried, last, when every other node failed or is out too, for
//! one more connect timeout after the first failed connect (the forward
//! loop's). Only connects count:
//! a node that answers, however badly, is the application's to judge.
//!
//! Kept per route and node, across config versions (a reload, an admin
//! change, an etcd revision): [`NodeHealth::of`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use super::PoolKey;

/// A node of a route, as the health kept across config versions knows it.
type HealthKey = (Arc<str>, PoolKey);

#[derive(Default)]
pub(super) struct NodeHealth {
    /// The [`now_ms`] until which the node is left out; 0: it is in.
    out_until: AtomicU64,
    /// The request let through once that time was over is on its way: its
    /// connect decides.
    probing: AtomicBool,
    /// Failed connects counted since `counting_since` (a [`now_ms`]).
    fails: AtomicU32,
    counting_since: AtomicU64,
}

/// What a failed connect did to its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failed {
    /// Counted; the node stays in.
    Counted,
    /// The node is left out now (it was in): said in the log.
    LeftOut,
    /// The node was out already, or its probe failed: out again.
    StillOut,
}

impl NodeHealth {
    /// The health of `node` on `route`: the one the previous config version
    /// kept, if that version is still about (it is, while the next is
    /// built), else a fresh one.
    pub(super) fn of(route: &str, node: &PoolKey) -> Arc<NodeHealth> {
        static KEPT: Kept<HealthKey, NodeHealth> = OnceLock::new();
        kept(&KEPT, (Arc::from(route), Arc::clone(node)))
    }

    /// Whether the node is left out, its probe's time come or not: asked
    /// when sharing out another node's turns, which claims no probe (the
    /// node's own turn does).
    #[inline]
    pub(super) fn left_out(&self) -> bool {
        self.out_until.load(Relaxed) != 0
    }

    /// Whether the node is left out now. One load while it is in. Once its
    /// time is over, the first caller is let through (the probe) and the
    /// others still find it out for `probe_ms` more (at least the connect
    /// timeout: one probe at a time), or until the probe's connect says.
    #[inline]
    pub(super) fn is_out(&self, probe_ms: u64) -> bool {
        let until = self.out_until.load(Relaxed);
        until != 0 && self.still_out(until, probe_ms)
    }

    #[cold]
    fn still_out(&self, until: u64, probe_ms: u64) -> bool {
        let now = now_ms();
        if now < until {
            return true;
        }
        // Its time is over: this caller probes it, the others wait. Said
        // before the claim, so that a connect of another request that puts
        // the node in meanwhile clears it.
        self.probing.store(true, Relaxed);
        let claimed = self
            .out_until
            .compare_exchange(until, now.saturating_add(probe_ms), Relaxed, Relaxed)
            .is_ok();
        if !claimed {
            self.probing.store(false, Relaxed);
        }
        !claimed
    }

    /// A connect to the node failed: counted, and the node left out when
    /// that makes `max_fails` within `fail_timeout_ms`, or at once when it
    /// was the probe. Counts are approximate under races (two failures at
    /// once may count as one), which only shifts when the node is left out.
    #[cold]
    pub(super) fn connect_failed(&self, max_fails: u32, fail_timeout_ms: u64) -> Failed {
        if max_fails == 0 {
            return Failed::Counted;
        }
        let now = now_ms();
        let until = now.saturating_add(fail_timeout_ms);
        if self.probing.swap(false, Relaxed) {
            self.out_until.store(until, Relaxed);
            return Failed::StillOut;
        }
        let since = self.counting_since.load(Relaxed);
        let fails = if since == 0 || now.saturating_sub(since) >= fail_timeout_ms {
            self.counting_since.store(now, Relaxed);
            self.fails.store(1, Relaxed);
            1
        } else {
            self.fails.fetch_add(1, Relaxed).saturating_add(1)
        };
        if fails < max_fails {
            return Failed::Counted;
        }
        self.fails.store(0, Relaxed);
        self.counting_since.store(0, Relaxed);
        let was = self.out_until.swap(until, Relaxed);
        if was == 0 || was <= now {
            Failed::LeftOut
        } else {
            Failed::StillOut
        }
    }

    /// A connect to the node succeeded: the failures counted so far are
    /// forgotten, and a node left out (its probe, or tried because every
    /// other failed) is in again.
    pub(super) fn connected(&self) {
        if self.fails.load(Relaxed) != 0 {
            self.fails.store(0, Relaxed);
            self.counting_since.store(0, Relaxed);
        }
        if self.out_until.load(Relaxed) != 0 {
            self.out_until.store(0, Relaxed);
        }
        if self.probing.load(Relaxed) {
            self.probing.store(false, Relaxed);
        }
    }

    /// The node answered a request over a connection kept from before: a
    /// node left out is in again (its probe found a kept connection, which
    /// would otherwise leave it out for good while kept ones serve). One
    /// load while it is in.
    #[inline]
    pub(super) fn answered(&self) {
        if self.out_until.load(Relaxed) != 0 || self.probing.load(Relaxed) {
            self.connected();
        }
    }
}

/// Where `route`'s turns stand, across config versions: a reload or an
/// admin change to anything goes on from the turn it had reached (an
/// outside audit: each new version started from the first node, so a
/// quiet route behind frequent admin writes sent nearly all to it).
pub(super) fn route_turns(route: &str) -> Arc<AtomicUsize> {
    static KEPT: Kept<Arc<str>, AtomicUsize> = OnceLock::new();
    kept(&KEPT, Arc::from(route))
}

/// What config versions share, by key, while any version holds it.
type Kept<K, V> = OnceLock<Mutex<KeptMap<K, V>>>;

struct KeptMap<K, V> {
    values: HashMap<K, Weak<V>>,
    /// How many were left at the last sweep.
    swept_at: usize,
}

impl<K, V> Default for KeptMap<K, V> {
    fn default() -> Self {
        KeptMap {
            values: HashMap::new(),
            swept_at: 0,
        }
    }
}

/// The `V` kept for `key`, if a version still holds it, else a fresh one.
fn kept<K: std::hash::Hash + Eq, V: Default>(map: &Kept<K, V>, key: K) -> Arc<V> {
    let Ok(mut kept) = map.get_or_init(Mutex::default).lock() else {
        return Arc::default();
    };
    if let Some(value) = kept.values.get(&key).and_then(Weak::upgrade) {
        return value;
    }
    // Those of keys no version has any more go, once the map has doubled
    // since it was last swept (not at every new one: the first version's
    // build would be quadratic).
    if kept.values.len() >= kept.swept_at.saturating_mul(2).max(64) {
        kept.values.retain(|_, v| v.strong_count() > 0);
        kept.swept_at = kept.values.len();
    }
    let value = Arc::new(V::default());
    kept.values.insert(key, Arc::downgrade(&value));
    value
}

/// Milliseconds since the first call, plus one: never 0, which stands for
/// "not left out".
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let ms = START.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX - 1).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LONG: u64 = 60_000;

    #[test]
    fn a_node_is_left_out_after_max_fails_within_the_timeout() {
        let h = NodeHealth::default();
        assert!(!h.is_out(LONG));
        assert_eq!(h.connect_failed(2, LONG), Failed::Counted, "one of two");
        assert!(!h.is_out(LONG));
        assert_eq!(h.connect_failed(2, LONG), Failed::LeftOut);
        assert!(h.is_out(LONG));
        assert_eq!(h.connect_failed(2, LONG), Failed::Counted);
        assert_eq!(h.connect_failed(2, LONG), Failed::StillOut, "said once");
        assert!(h.is_out(LONG));
    }

    #[test]
    fn once_its_time_is_over_one_request_probes_it() {
        let h = NodeHealth::default();
        assert_eq!(h.connect_failed(1, 1), Failed::LeftOut);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!h.is_out(LONG), "the probe goes");
        assert!(h.is_out(LONG), "the others do not");
        assert!(h.is_out(LONG));
        // The probe's connect fails: out again at once, whatever max_fails.
        assert_eq!(h.connect_failed(3, 1), Failed::StillOut);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!h.is_out(LONG), "the next probe");
        h.connected();
        assert!(!h.is_out(LONG) && !h.is_out(LONG), "in again for all");
        assert_eq!(h.connect_failed(3, LONG), Failed::Counted, "counted afresh");
    }

    #[test]
    fn failures_further_apart_than_the_timeout_or_a_connect_between_do_not_add_up() {
        let h = NodeHealth::default();
        assert_eq!(h.connect_failed(2, 1), Failed::Counted);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(h.connect_failed(2, 1), Failed::Counted, "a new window");
        let h = NodeHealth::default();
        assert_eq!(h.connect_failed(2, LONG), Failed::Counted);
        h.connected();
        assert_eq!(h.connect_failed(2, LONG), Failed::Counted, "counted afresh");
        assert!(!h.is_out(LONG));
        assert_eq!(h.connect_failed(2, LONG), Failed::LeftOut);
        h.connected();
        assert!(!h.is_out(LONG), "a node that took a connection is in again");
    }

    #[test]
    fn a_node_left_out_that_answers_over_a_kept_connection_is_in_again() {
        let h = NodeHealth::default();
        h.answered();
        assert!(!h.is_out(LONG));
        assert_eq!(h.connect_failed(1, LONG), Failed::LeftOut);
        assert!(h.is_out(LONG));
        h.answered();
        assert!(!h.is_out(LONG));
    }

    #[test]
    fn max_fails_zero_never_leaves_a_node_out() {
        let h = NodeHealth::default();
        for _ in 0..10 {
            assert_eq!(h.connect_failed(0, LONG), Failed::Counted);
        }
        assert!(!h.is_out(LONG));
    }

    #[test]
    fn health_is_kept_for_a_route_and_node_while_a_version_holds_it() {
        let node: PoolKey = Arc::new(("10.9.9.9:80".into(), super::super::Trust::Plain));
        let first = NodeHealth::of("health-test", &node);
        assert_eq!(first.connect_failed(1, LONG), Failed::LeftOut);
        let next = NodeHealth::of("health-test", &node);
        assert!(Arc::ptr_eq(&first, &next), "the next version shares it");
        assert!(!Arc::ptr_eq(&first, &NodeHealth::of("other-route", &node)));
        drop((first, next));
        assert!(
            !NodeHealth::of("health-test", &node).is_out(LONG),
            "afresh once none holds it"
        );
    }
}
