//! The admin listener's connection slots. At most [`Slots::new`]'s number
//! are served at once (each holds a file descriptor the data plane may
//! need); when all are taken, a new connection takes the slot of the oldest
//! one that has no request in progress (a TLS handshake not done, a
//! request head not sent, an idle kept-alive connection), which is closed.
//! Without that, 256 sockets that send nothing, opened again every 30 s,
//! kept `/status` and the admin API from everyone (an outside audit); a
//! connection whose request is being served is never closed so.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tracing::warn;

pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    /// The open connections, oldest first.
    open: Mutex<BTreeMap<u64, Conn>>,
    next: AtomicU64,
}

struct Conn {
    /// Requests whose answer is being made.
    busy: Arc<AtomicUsize>,
    /// `None` until its task is running.
    task: Option<AbortHandle>,
}

/// One connection's place: its id, and the count of its requests in
/// progress, which its service keeps.
pub(crate) struct Place {
    pub id: u64,
    pub busy: Arc<AtomicUsize>,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(max)),
            open: Mutex::default(),
            next: AtomicU64::new(0),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Conn>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot: a free one, else the one of the oldest idle connection
    /// (closed), else the first to be freed.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, AcquireError> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        if self.close_oldest_idle() {
            static SAID: jwtgate_proxy::OncePer = jwtgate_proxy::OncePer::minute();
            if SAID.due() {
                warn!(
                    target: "jwtgate::admin",
                    "admin listener full: the oldest connection with no request in progress \
                     was closed to serve a new one (said once a minute at most)"
                );
            }
        }
        Arc::clone(&self.permits).acquire_owned().await
    }

    /// Registers a connection about to be served.
    pub fn place(&self) -> Place {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        self.open().insert(
            id,
            Conn {
                busy: Arc::clone(&busy),
                task: None,
            },
        );
        Place { id, busy }
    }

    /// The connection's task runs: it may be closed from now on.
    pub fn running(&self, id: u64, task: AbortHandle) {
        if let Some(conn) = self.open().get_mut(&id) {
            conn.task = Some(task);
        }
    }

    /// The connection ended (its task's last step).
    pub fn ended(&self, id: u64) {
        self.open().remove(&id);
    }

    /// Closes the oldest connection with no request in progress; false if
    /// there is none. Its task is aborted, which drops its slot.
    fn close_oldest_idle(&self) -> bool {
        let mut open = self.open();
        let idle = open.iter().find_map(|(&id, conn)| {
            let task = conn.task.as_ref()?;
            (conn.busy.load(Ordering::Acquire) == 0 && !task.is_finished()).then_some(id)
        });
        let Some(id) = idle else { return false };
        if let Some(task) = open.remove(&id).and_then(|c| c.task) {
            task.abort();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_listener_closes_its_oldest_idle_connection_never_a_busy_one() {
        let slots = Slots::new(2);
        let mut tasks = Vec::new();
        let mut places = Vec::new();
        for _ in 0..2 {
            let permit = slots.acquire().await.unwrap();
            let place = slots.place();
            let task = tokio::spawn(async move {
                let _permit = permit;
                std::future::pending::<()>().await;
            });
            slots.running(place.id, task.abort_handle());
            places.push(place);
            tasks.push(task);
        }
        // The oldest is serving a request: the second one goes.
        places[0].busy.fetch_add(1, Ordering::AcqRel);
        let third = tokio::time::timeout(Duration::from_secs(5), slots.acquire())
            .await
            .expect("a slot")
            .unwrap();
        let second = tasks.pop().unwrap();
        assert!(second.await.unwrap_err().is_cancelled());
        assert!(!tasks[0].is_finished());
        // Full again, every connection busy: a new one waits.
        let place = slots.place();
        let task = tokio::spawn(async move {
            let _permit = third;
            std::future::pending::<()>().await;
        });
        slots.running(place.id, task.abort_handle());
        place.busy.fetch_add(1, Ordering::AcqRel);
        let waited = tokio::time::timeout(Duration::from_millis(200), slots.acquire()).await;
        assert!(waited.is_err(), "a busy connection was closed");
        assert!(!tasks[0].is_finished() && !task.is_finished());
        // One ends: its slot is taken.
        place.busy.fetch_sub(1, Ordering::AcqRel);
        task.abort();
        slots.ended(place.id);
        let freed = tokio::time::timeout(Duration::from_secs(5), slots.acquire())
            .await
            .expect("the freed slot")
            .unwrap();
        drop(freed);
    }
}
