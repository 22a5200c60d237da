//! `pool_size` and `pool_backlog`: at most `pool_size` store operations in
//! flight; up to `pool_backlog` more may wait for a slot; any further one
//! fails at once. Never an unbounded queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::StoreError;

pub struct OpGate {
    slots: Semaphore,
    waiting: AtomicUsize,
    backlog: usize,
    /// How long a waiting operation may wait for a slot.
    wait_limit: Duration,
}

impl OpGate {
    pub fn new(pool_size: usize, backlog: usize, wait_limit: Duration) -> Self {
        OpGate {
            slots: Semaphore::new(pool_size.clamp(1, Semaphore::MAX_PERMITS)),
            waiting: AtomicUsize::new(0),
            backlog,
            wait_limit,
        }
    }

    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, StoreError> {
        if let Ok(p) = self.slots.try_acquire() {
            return Ok(p);
        }
        // Reserve a backlog place, or fail fast.
        let reserved = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.backlog).then_some(w + 1)
            });
        if reserved.is_err() {
            return Err(StoreError::Busy);
        }
        let permit = tokio::time::timeout(self.wait_limit, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(StoreError::Unavailable("store closed".into())),
            Err(_) => Err(StoreError::Timeout(self.wait_limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backlog_zero_fails_fast_when_busy() {
        let gate = OpGate::new(1, 0, Duration::from_secs(5));
        let held = gate.enter().await.expect("first");
        assert!(matches!(gate.enter().await, Err(StoreError::Busy)));
        drop(held);
        assert!(gate.enter().await.is_ok());
    }

    #[tokio::test]
    async fn backlog_waits_then_overflows() {
        let gate = std::sync::Arc::new(OpGate::new(1, 1, Duration::from_secs(5)));
        let held = gate.enter().await.expect("first");
        let g2 = std::sync::Arc::clone(&gate);
        let waiter = tokio::spawn(async move { g2.enter().await.map(|_| ()) });
        // Let the waiter take the backlog place.
        while gate.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.enter().await, Err(StoreError::Busy)));
        drop(held);
        assert!(waiter.await.expect("join").is_ok());
    }
}
