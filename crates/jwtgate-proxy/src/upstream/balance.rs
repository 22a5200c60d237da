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
        self.share(0, |i| i == first).unwrap_or(first)
    }

    /// A node that is in and not `skipped`, chosen in proportion to the
    /// weights of those (turn by turn, from a count of its own): where the
    /// turn of a node left out, or the next try after a node failed, goes. Never the next node in the list: it would take the whole share
    /// of a heavy node gone (an outside audit: 97% of it, against 3% for
    /// the other). Reads every node: asked only when one is out or failed.
    /// The weights are divided by their common divisor at load, so that
    /// nodes of equal weight take these turns one each, not a hundred in a
    /// row (Kong's `weight=100` on every node).
    /// `depth`: which choice of a request this is (0 for a turn passed on,
    /// then one per failed try), each counted apart, so that the requests
    /// that come to a second choice share it as evenly as those at the
    /// first (one count for all made them fall on the same node).
    pub(super) fn share(&self, depth: usize, skipped: impl Fn(usize) -> bool) -> Option<usize> {
        let sharing =
            |i: usize, n: &Node| !skipped(i) && (self.max_fails == 0 || !n.health.left_out());
        let total: u64 = (0..)
            .zip(&self.nodes)
            .filter(|&(i, n)| sharing(i, n))
            .map(|(_, n)| u64::from(n.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let count = self.spill.get(depth).or(self.spill.last())?;
        let mut turn = count.fetch_add(1, Ordering::Relaxed) as u64 % total;
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
/// then, each time one failed, one the weights of those in and not tried
/// yet choose ([`UpstreamTarget::share`]; an outside audit found the next
/// in the list taking a second dead node's share), and last those left
/// out, in list order. Past [`WEIGHED_TRIES`] failures the rest go in list
/// order too: each weighed choice reads every node.
pub(super) struct Walk {
    pub(super) first: usize,
    /// The nodes tried (or passed over) so far, by index; made when the
    /// first failed.
    tried: Vec<bool>,
    started: bool,
    weighed: usize,
    /// Where the list-order scan goes on from.
    cursor: usize,
}

/// How many of a request's tries after the first are chosen by weight.
pub(super) const WEIGHED_TRIES: usize = 8;

impl From<usize> for Walk {
    fn from(first: usize) -> Self {
        Walk {
            first,
            tried: Vec::new(),
            started: false,
            weighed: 0,
            cursor: 0,
        }
    }
}

impl Walk {
    /// The next node to try. Inline for the first, which every request
    /// asks for; the rest only after a failed connect.
    #[inline]
    pub(super) fn next(&mut self, target: &UpstreamTarget) -> Option<usize> {
        if !self.started {
            self.started = true;
            return Some(self.first);
        }
        self.after_a_failure(target)
    }

    #[cold]
    #[inline(never)]
    fn after_a_failure(&mut self, target: &UpstreamTarget) -> Option<usize> {
        if self.tried.is_empty() {
            self.tried = vec![false; target.nodes.len()];
            if let Some(first) = self.tried.get_mut(self.first) {
                *first = true;
            }
        }
        let weighed = if self.weighed < WEIGHED_TRIES {
            self.weighed += 1;
            let tried = &self.tried;
            target.share(self.weighed, |i| tried.get(i).copied().unwrap_or(true))
        } else {
            None
        };
        let index = weighed.or_else(|| {
            let rest = self.tried.get(self.cursor..)?;
            let found = self.cursor + rest.iter().position(|&t| !t)?;
            self.cursor = found + 1;
            Some(found)
        })?;
        if let Some(t) = self.tried.get_mut(index) {
            *t = true;
        }
        Some(index)
    }
}
