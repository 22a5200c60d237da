//! The admin listener's connection slots. At most [`Slots::new`]'s number
//! are served at once (each holds a file descriptor the data plane may
//! need). When all are taken, a new client has one connection asked to
//! close, from the peer that holds the most: one with no request in
//! progress if it has any (a TLS handshake not done, a request head not
//! sent, an idle kept-alive connection), closed at once, else its oldest,
//! which finishes the request it serves first. Without that, 256 sockets
//! that send nothing, opened again every 30 s, kept `/status` and the admin
//! API from everyone (an outside audit); and a peer that opens connections
//! fast only closes its own.
//!
//! A connection asked to close is told through [`Place::closing`], and its
//! task shuts it down gracefully (hyper's `graceful_shutdown`): a request
//! in progress is answered whole first; one with none (idle, or a head not
//! done, which hyper would wait for) goes within a second, the time an
//! answer already handed over has to be written out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{AcquireError, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::warn;

pub(crate) struct Slots {
    max: u32,
    permits: Arc<Semaphore>,
    /// The open connections not yet asked to close, oldest first.
    open: Mutex<BTreeMap<u64, Conn>>,
    next: AtomicU64,
}

struct Conn {
    peer: IpAddr,
    busy: Arc<AtomicUsize>,
    closing: Arc<Notify>,
}

/// One connection's place: the count of its requests in progress (its
/// service keeps it), and the signal to close.
pub(crate) struct Place {
    pub busy: Arc<AtomicUsize>,
    pub closing: Arc<Notify>,
    slots: Arc<Slots>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.slots.open().remove(&self.id);
    }
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        Arc::new(Slots {
            max,
            permits: Arc::new(Semaphore::new(max as usize)),
            open: Mutex::default(),
            next: AtomicU64::new(0),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Conn>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `peer`: a free slot, else one freed
    /// by asking a connection to close (see the module), else the first
    /// to be freed. Held until the [`Place`] is dropped.
    pub async fn place(self: &Arc<Self>, peer: IpAddr) -> Result<Place, AcquireError> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.ask_one_to_close() {
                    static SAID: jwtgate_proxy::OncePer = jwtgate_proxy::OncePer::minute();
                    if SAID.due() {
                        warn!(
                            target: "jwtgate::admin",
                            "admin listener full: a connection of the peer holding the most was \
                             asked to close to serve a new one (said once a minute at most)"
                        );
                    }
                }
                Arc::clone(&self.permits).acquire_owned().await?
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let closing = Arc::new(Notify::new());
        self.open().insert(
            id,
            Conn {
                peer,
                busy: Arc::clone(&busy),
                closing: Arc::clone(&closing),
            },
        );
        Ok(Place {
            busy,
            closing,
            slots: Arc::clone(self),
            id,
            _permit: permit,
        })
    }

    /// Resolves once every connection has ended (after a stop: the caller
    /// bounds the wait).
    pub async fn all_ended(&self) {
        let _ = self.permits.acquire_many(self.max).await;
    }

    /// Asks one connection of the peer that holds the most to close: its
    /// oldest with no request in progress, else its oldest. False when
    /// there is none left to ask.
    fn ask_one_to_close(&self) -> bool {
        let mut open = self.open();
        let mut held: HashMap<IpAddr, usize> = HashMap::new();
        for conn in open.values() {
            *held.entry(conn.peer).or_default() += 1;
        }
        let Some((&peer, _)) = held.iter().max_by_key(|(_, &n)| n) else {
            return false;
        };
        let of_peer = || open.iter().filter(move |(_, c)| c.peer == peer);
        let chosen = of_peer()
            .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
            .or_else(|| of_peer().next())
            .map(|(&id, _)| id);
        let Some(conn) = chosen.and_then(|id| open.remove(&id)) else {
            return false;
        };
        // Stored if its task is not waiting yet: it sees it when it does.
        conn.closing.notify_one();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    async fn asked(place: &Place) -> bool {
        tokio::time::timeout(Duration::from_millis(100), place.closing.notified())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_listener_asks_the_greediest_peer_to_close_an_idle_connection_first() {
        let slots = Slots::new(3);
        let a_busy = slots.place(A).await.unwrap();
        let a_idle = slots.place(A).await.unwrap();
        let b = slots.place(B).await.unwrap();
        a_busy.busy.fetch_add(1, Ordering::AcqRel);
        // Full: A holds the most; its idle one is asked, not its older
        // busy one, nor B's.
        let newcomer = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.place(B).await.unwrap() }
        });
        assert!(asked(&a_idle).await);
        assert!(!asked(&a_busy).await && !asked(&b).await);
        drop(a_idle);
        let second_b = newcomer.await.unwrap();
        // Full again, every connection busy: the oldest of the peer that
        // holds the most is asked, and the newcomer waits until it ends.
        b.busy.fetch_add(1, Ordering::AcqRel);
        second_b.busy.fetch_add(1, Ordering::AcqRel);
        let waiting = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.place(A).await.unwrap() }
        });
        assert!(asked(&b).await, "B holds two: its oldest is asked");
        assert!(!asked(&a_busy).await && !asked(&second_b).await);
        assert!(!waiting.is_finished(), "no place until one ends");
        drop(b);
        let _third = waiting.await.unwrap();
    }
}
