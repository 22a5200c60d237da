//! Which node of a route a request goes to: the next in turn (by weight,
//! [`jwtgate_config::weighted_turns`]), a turn of a node left out shared
//! by the others' weights, and the order in which the others are tried
//! once a connect failed ([`Walk`]).

use std::sync::atomic::Ordering;

use super::{Node, UpstreamTarget};

impl UpstreamTarget {
    /// Whether node `index` is left out (never with `max_fails: 0`, which
    /// a node left out under an earlier version does not outlive).
    #[inline]
    pub(super) fn is_out(&self, index: usize) -> bool {
        self.max_fails != 0
            && self
                .nodes
                .get(index)
                .is_some_and(|n| n.health.is_out(self.probe_ms))
    }

    /// The node a request goes to first: the next in turn, unless it is
    /// left out; then one the nodes in share its turn by (their weights),
    /// and with every node out, the one drawn. Once a node's time is over,
    /// the turn that finds it is its probe.
    pub(super) fn first_node(&self) -> usize {
        let count = self.nodes.len().max(1);
        let first = self.next_turn(count);
        if !self.is_out(first) {
            return first;
        }
        self.share(Some(first)).unwrap_or(first)
    }

    /// A node other than `except` that is in, chosen in proportion to the
    /// weights of those in (turn by turn, from a count of its own): where
    /// the turn of a node left out, or the next try after a node failed,
    /// goes. Never the next node in the list: it would take the whole share
    /// of a heavy node gone (an outside audit: 97% of it, against 3% for
    /// the other). Reads every node: asked only when one is out or failed.
    /// The weights are divided by their common divisor at load, so that
    /// nodes of equal weight take these turns one each, not a hundred in a
    /// row (Kong's `weight=100` on every node).
    pub(super) fn share(&self, except: Option<usize>) -> Option<usize> {
        let sharing =
            |i: usize, n: &Node| Some(i) != except && (self.max_fails == 0 || !n.health.left_out());
        let total: u64 = (0..)
            .zip(&self.nodes)
            .filter(|&(i, n)| sharing(i, n))
            .map(|(_, n)| u64::from(n.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut turn = self.spill.fetch_add(1, Ordering::Relaxed) as u64 % total;
        for (i, n) in (0..).zip(&self.nodes) {
            if !sharing(i, n) {
                continue;
            }
            match turn.checked_sub(u64::from(n.weight)) {
                Some(rest) => turn = rest,
                None => return Some(i),
            }
        }
        None
    }

    /// The node whose turn is next.
    #[inline]
    fn next_turn(&self, count: usize) -> usize {
        let drawn = self.next.fetch_add(1, Ordering::Relaxed);
        match self.turns.len() {
            0 => drawn % count,
            n => self.turns.get(drawn % n).map_or(0, |&i| i as usize),
        }
    }
}

/// The order in which a request tries a route's nodes: the first (its turn),
/// then, once that failed, one the others' weights choose
/// ([`UpstreamTarget::share`]) and the rest in list order from it.
pub(super) struct Walk {
    pub(super) first: usize,
    /// Where the walk after the first starts; chosen when the first failed.
    start: Option<usize>,
    /// Nodes tried so far (the first included).
    taken: usize,
}

impl From<usize> for Walk {
    fn from(first: usize) -> Self {
        Walk {
            first,
            start: None,
            taken: 0,
        }
    }
}

impl Walk {
    pub(super) fn next(&mut self, target: &UpstreamTarget) -> Option<usize> {
        let count = target.nodes.len();
        if self.taken == 0 {
            self.taken = 1;
            return Some(self.first);
        }
        let first = self.first;
        let start = *self
            .start
            .get_or_insert_with(|| target.share(Some(first)).unwrap_or(first));
        // The others in list order from `start`, `first` passed over
        // (`count` is at least 1: a route has a node, and `first` is one).
        while self.taken < count.max(1) + 1 {
            let k = self.taken - 1;
            self.taken += 1;
            let index = (start + k) % count;
            if index != first {
                return Some(index);
            }
        }
        None
    }
}
