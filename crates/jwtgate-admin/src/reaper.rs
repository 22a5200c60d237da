//! Dropping a replaced configuration off the data plane.
//!
//! A change swaps the running [`Gateway`](jwtgate_proxy::Gateway) for a new
//! one, while requests in flight still hold the old one. Whichever of them
//! let go of it last used to drop it, on its worker thread: with 10 000
//! consumers and 500 routes that took 20–30 ms, during which that worker
//! answered nothing (an outside audit saw one request stall after every
//! admin write). The reaper holds one more reference to what was replaced,
//! so that no request is ever the last, and drops it on its own thread once
//! it is the only holder left.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the reaper looks at what it holds.
const EVERY: Duration = Duration::from_millis(100);

/// Something shared whose last reference the reaper may hold.
trait Held: Send {
    /// Whether the reaper's is the only reference left.
    fn only_ours(&self) -> bool;
}

impl<T: Send + Sync> Held for Arc<T> {
    fn only_ours(&self) -> bool {
        Arc::strong_count(self) == 1
    }
}

/// Takes replaced values and drops each on its own thread once nothing
/// else holds it.
pub struct Reaper {
    /// `None` when the thread could not start: values are then dropped
    /// where they are given up, as before.
    tx: Option<Mutex<Sender<Box<dyn Held>>>>,
}

impl Reaper {
    pub fn start() -> Reaper {
        let (tx, rx) = channel::<Box<dyn Held>>();
        let spawned = std::thread::Builder::new()
            .name("jwtgate-reaper".into())
            .spawn(move || {
                let mut held: Vec<Box<dyn Held>> = Vec::new();
                loop {
                    // Holding nothing, it sleeps until given something.
                    let next = if held.is_empty() {
                        rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                    } else {
                        rx.recv_timeout(EVERY)
                    };
                    match next {
                        Ok(value) => held.push(value),
                        Err(RecvTimeoutError::Timeout) => {}
                        // The node is going away: what is left goes with it.
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    held.retain(|value| !value.only_ours());
                }
            });
        match spawned {
            Ok(_) => Reaper {
                tx: Some(Mutex::new(tx)),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the reaper thread: a replaced config is dropped by the last request that used it");
                Reaper { tx: None }
            }
        }
    }

    /// Gives up `value`: the reaper drops it once nothing else holds it.
    pub fn give<T: Send + Sync + 'static>(&self, value: Arc<T>) {
        let Some(tx) = &self.tx else {
            return;
        };
        let tx = tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A reaper that is gone hands the value back: dropped here.
        let _ = tx.send(Box::new(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the name of the thread that drops it.
    struct Noted(Arc<Mutex<Option<String>>>);

    impl Drop for Noted {
        fn drop(&mut self) {
            let name = std::thread::current().name().map(str::to_owned);
            *self.0.lock().expect("lock") = Some(name.unwrap_or_default());
        }
    }

    #[test]
    fn the_last_holder_does_not_drop_it_the_reaper_does() {
        let reaper = Reaper::start();
        let dropped_on = Arc::new(Mutex::new(None));
        let value = Arc::new(Noted(Arc::clone(&dropped_on)));
        let in_flight = Arc::clone(&value);
        reaper.give(value);
        // The request that held it lets go, on a thread of its own.
        std::thread::Builder::new()
            .name("worker".into())
            .spawn(move || drop(in_flight))
            .expect("thread")
            .join()
            .expect("join");
        for _ in 0..200 {
            if dropped_on.lock().expect("lock").is_some() {
                break;
            }
            std::thread::sleep(EVERY / 4);
        }
        assert_eq!(
            dropped_on.lock().expect("lock").as_deref(),
            Some("jwtgate-reaper")
        );
    }
}
