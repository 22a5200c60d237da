//! How many upstream connections the process may hold open at once, idle
//! or busy, over every worker's pool.
//!
//! `max_connections` keeps client connections to half of the descriptors
//! the open-file limit leaves (`fd_limit`), counting one upstream
//! connection each. An HTTP/2 client multiplexes: one connection carries up
//! to 100 streams, and each stream being proxied holds an upstream
//! connection of its own. Without a budget, a few such clients took every
//! descriptor, and the gateway stopped accepting anyone. With one, a
//! request that would open a connection past it is answered `503` at once,
//! as Envoy's circuit breakers answer an overflow, and the descriptors for
//! accepting clients, the store, etcd and the admin API stay free.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Upstream connections open now, and how many may be.
///
/// Each worker's pool keeps idle connections, which hold places too: when
/// a request finds no place, the budget is *pressed*, and until a place is
/// taken again every pool closes connections instead of keeping them idle
/// (as they come back, and at its next sweep), so that one worker's idle
/// connections do not turn another's requests away.
#[derive(Debug)]
pub struct UpstreamBudget {
    open: AtomicUsize,
    limit: usize,
    pressed: AtomicBool,
}

impl Default for UpstreamBudget {
    fn default() -> Self {
        UpstreamBudget::new(usize::MAX)
    }
}

impl UpstreamBudget {
    pub fn new(limit: usize) -> UpstreamBudget {
        UpstreamBudget {
            open: AtomicUsize::new(0),
            limit: limit.max(1),
            pressed: AtomicBool::new(false),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Upstream connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A place for one more connection, if the budget has one; given back
    /// when the permit drops (with its connection).
    pub fn acquire(self: &Arc<Self>) -> Option<Permit> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .is_ok();
        if taken == self.pressed.load(Ordering::Relaxed) {
            self.pressed.store(!taken, Ordering::Relaxed);
        }
        taken.then(|| Permit(Arc::clone(self)))
    }

    /// Whether the last request for a place found none: pools close idle
    /// connections rather than keep them.
    pub fn pressed(&self) -> bool {
        self.pressed.load(Ordering::Relaxed)
    }
}

/// One open upstream connection's place in the budget.
#[derive(Debug)]
pub struct Permit(Arc<UpstreamBudget>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_up_to_the_limit_and_given_back_on_drop() {
        let budget = Arc::new(UpstreamBudget::new(2));
        let a = budget.acquire().expect("first");
        let b = budget.acquire().expect("second");
        assert!(!budget.pressed());
        assert!(budget.acquire().is_none(), "full");
        assert!(budget.pressed(), "a request found no place");
        assert_eq!(budget.open(), 2);
        drop(a);
        assert_eq!(budget.open(), 1);
        let c = budget.acquire().expect("a place came back");
        assert!(!budget.pressed(), "a place was taken again");
        drop((b, c));
        assert_eq!(budget.open(), 0);
        assert_eq!(UpstreamBudget::new(0).limit(), 1, "never zero");
    }
}
