//! Passive health of an upstream node, as nginx's `max_fails` and
//! `fail_timeout`: a node whose connects failed `max_fails` times within
//! `fail_timeout` is left out of its route's round robin for
//! `fail_timeout`, so that requests stop paying a dead node's connect
//! (refused, or a whole `connect_timeout_ms` where it does not answer)
//! before the next node serves them. Once that time is over the node is
//! taken again, and one request finds out whether it is back. A node is
//! never left out while every node of its route is: then each is tried,
//! as before (Envoy's "panic" mode; a route with one node is never
//! changed). Only connects count: a node that answers, however badly, is
//! the application's to judge.
//!
//! Per route and config version: a reload starts every node afresh.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Default)]
pub(super) struct NodeHealth {
    /// The [`now_ms`] until which the node is left out; 0: it is in.
    out_until: AtomicU64,
    /// Failed connects counted since `counting_since` (a [`now_ms`]).
    fails: AtomicU32,
    counting_since: AtomicU64,
}

impl NodeHealth {
    /// Whether the node is left out now. One load while it is in.
    #[inline]
    pub(super) fn is_out(&self) -> bool {
        let until = self.out_until.load(Relaxed);
        until != 0 && self.still_out(until)
    }

    #[cold]
    fn still_out(&self, until: u64) -> bool {
        if now_ms() < until {
            return true;
        }
        // Its time is over: in again, without reading the clock next time.
        let _ = self.out_until.compare_exchange(until, 0, Relaxed, Relaxed);
        false
    }

    /// A connect to the node failed; true when this leaves it out (from
    /// now until `fail_timeout_ms` from now), for the log to say so once.
    /// Counts are approximate under races (two failures at once may count
    /// as one), which only shifts when the node is left out by a failure.
    #[cold]
    pub(super) fn connect_failed(&self, max_fails: u32, fail_timeout_ms: u64) -> bool {
        if max_fails == 0 {
            return false;
        }
        let now = now_ms();
        let since = self.counting_since.load(Relaxed);
        let fails = if since == 0 || now.saturating_sub(since) >= fail_timeout_ms {
            self.counting_since.store(now, Relaxed);
            self.fails.store(1, Relaxed);
            1
        } else {
            self.fails.fetch_add(1, Relaxed).saturating_add(1)
        };
        if fails < max_fails {
            return false;
        }
        self.fails.store(0, Relaxed);
        self.counting_since.store(0, Relaxed);
        let was = self
            .out_until
            .swap(now.saturating_add(fail_timeout_ms), Relaxed);
        was == 0 || was <= now
    }

    /// A connect to the node succeeded: the failures counted so far are
    /// forgotten, and a node left out (tried because every node was) is in
    /// again.
    pub(super) fn connected(&self) {
        if self.fails.load(Relaxed) != 0 {
            self.fails.store(0, Relaxed);
            self.counting_since.store(0, Relaxed);
        }
        if self.out_until.load(Relaxed) != 0 {
            self.out_until.store(0, Relaxed);
        }
    }
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

    #[test]
    fn a_node_is_left_out_after_max_fails_within_the_timeout_and_taken_back_after_it() {
        let h = NodeHealth::default();
        assert!(!h.is_out());
        assert!(!h.connect_failed(2, 60_000), "one of two");
        assert!(!h.is_out());
        assert!(h.connect_failed(2, 60_000), "the second leaves it out");
        assert!(h.is_out());
        assert!(!h.connect_failed(2, 60_000) && !h.connect_failed(2, 60_000));
        assert!(h.is_out(), "still out; said once");

        let h = NodeHealth::default();
        assert!(h.connect_failed(1, 1));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(!h.is_out(), "its time is over");
        assert_eq!(h.out_until.load(Relaxed), 0, "no clock read next time");
        assert!(h.connect_failed(1, 1), "out again at the next failure");
    }

    #[test]
    fn failures_further_apart_than_the_timeout_or_a_connect_between_do_not_add_up() {
        let h = NodeHealth::default();
        assert!(!h.connect_failed(2, 1));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(!h.connect_failed(2, 1), "the first one's window is over");
        let h = NodeHealth::default();
        assert!(!h.connect_failed(2, 60_000));
        h.connected();
        assert!(
            !h.connect_failed(2, 60_000),
            "counted afresh after a connect"
        );
        assert!(!h.is_out());
        assert!(h.connect_failed(2, 60_000));
        h.connected();
        assert!(!h.is_out(), "a node that took a connection is in again");
    }

    #[test]
    fn max_fails_zero_never_leaves_a_node_out() {
        let h = NodeHealth::default();
        for _ in 0..10 {
            assert!(!h.connect_failed(0, 60_000));
        }
        assert!(!h.is_out());
    }
}
