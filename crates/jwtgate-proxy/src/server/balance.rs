//! Spreading client connections evenly over the workers.
//!
//! Each worker accepts on its own socket of one `SO_REUSEPORT` group, and
//! the kernel picks the socket by a hash of the connection's addresses: 50
//! connections split 30 and 20 or worse about one time in five, and since
//! a connection stays on the worker that serves it, one core then does
//! half as much again as the other (measured on the two-core bench: 9.5
//! against 6.5 µs of CPU per request of the load, the lighter worker
//! sleeping between short bursts while the other's clients queue). So the
//! worker that accepts a connection keeps it only while it serves no more
//! connections than the least busy worker; otherwise it hands the socket
//! over, before any byte is read or the TLS handshake starts, as HAProxy
//! hands an accepted connection to its least loaded thread.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::debug;

/// A connection on its way to another worker.
pub(super) type Handover = (std::net::TcpStream, SocketAddr);

/// A worker keeps a new connection while it serves at most this many more
/// than the least busy worker: 0, so that connections that stay open split
/// as evenly as their number allows.
const SLACK: usize = 0;

/// The workers' connection counts and their inboxes.
pub(super) struct Balance {
    /// Connections placed on each worker and not yet ended (a connection's
    /// idle-watch ticket gives its place back when it ends).
    placed: Vec<Arc<AtomicUsize>>,
    /// Places each worker reserved for the connection it waits to accept
    /// (one at most): counted against the limit, not in the balance.
    reserved: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<Handover>>,
    /// Connections all workers together serve before they stop accepting
    /// (`max_connections`).
    limit: usize,
}

/// Where [`Balance::place`] put a connection.
pub(super) enum Placed {
    /// This worker serves it.
    Here(TcpStream),
    /// Handed over to another worker.
    Moved,
}

impl Balance {
    /// A balance over `workers` workers serving at most `limit`
    /// connections together, and each worker's inbox.
    pub(super) fn new(
        workers: usize,
        limit: usize,
    ) -> (Arc<Self>, Vec<mpsc::UnboundedReceiver<Handover>>) {
        let (inboxes, receivers) = (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let balance = Balance {
            placed: (0..workers).map(|_| Arc::default()).collect(),
            reserved: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            inboxes,
            limit,
        };
        (Arc::new(balance), receivers)
    }

    /// Whether the workers serve `max_connections` connections: then none
    /// should accept another until one ends.
    pub(super) fn is_full(&self) -> bool {
        let count = |v: &[AtomicUsize]| v.iter().map(|n| n.load(Ordering::Relaxed)).sum::<usize>();
        let placed: usize = self.placed.iter().map(|n| n.load(Ordering::Relaxed)).sum();
        placed + count(&self.reserved) >= self.limit
    }

    /// Reserves a place on worker `me` for a connection it accepted, unless
    /// the workers' connections and reservations together would pass
    /// `max_connections`: then `false`, and nothing is reserved. This is
    /// the exact check ([`Balance::is_full`] before accepting is not: a
    /// worker already waiting to accept when the limit is reached takes
    /// one more). Two workers reserving at once both count both
    /// reservations (sequentially consistent: each sees the other's), and
    /// may both be refused, and try again.
    pub(super) fn reserve(&self, me: usize) -> bool {
        self.reserved[me].fetch_add(1, Ordering::SeqCst);
        let count = |v: &[AtomicUsize]| v.iter().map(|n| n.load(Ordering::SeqCst)).sum::<usize>();
        let placed: usize = self.placed.iter().map(|n| n.load(Ordering::SeqCst)).sum();
        if placed + count(&self.reserved) > self.limit {
            self.unreserve(me);
            return false;
        }
        true
    }

    /// Gives back worker `me`'s reservation: it stops, or its accept failed.
    pub(super) fn unreserve(&self, me: usize) {
        let _ = self.reserved[me]
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// The most connections served at once.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// Every worker's count, for the open-connections gauge.
    pub(super) fn counts(&self) -> Vec<Arc<AtomicUsize>> {
        self.placed.clone()
    }

    /// Worker `worker`'s count, which its idle watch decrements as its
    /// connections end.
    pub(super) fn placed(&self, worker: usize) -> Arc<AtomicUsize> {
        Arc::clone(&self.placed[worker])
    }

    /// Places a connection worker `me` accepted on the place it reserved
    /// ([`Balance::reserve`]): on `me` unless it serves more than [`SLACK`]
    /// connections more than the least busy worker. The chosen worker's
    /// count goes up now, so that a burst accepted faster than the other
    /// workers take their handovers still spreads evenly; then the
    /// reservation is given back (in that order, so that the two together
    /// never count below the connections there are).
    pub(super) fn place(&self, me: usize, stream: TcpStream, peer: SocketAddr) -> Placed {
        let placed = self.place_unreserved(me, stream, peer);
        self.unreserve(me);
        placed
    }

    fn place_unreserved(&self, me: usize, stream: TcpStream, peer: SocketAddr) -> Placed {
        let mine = self.placed[me].load(Ordering::Relaxed);
        let least = (0..self.placed.len())
            .filter(|&w| w != me)
            .map(|w| (self.placed[w].load(Ordering::Relaxed), w))
            .min();
        if let Some((theirs, other)) = least {
            if mine > theirs + SLACK {
                return match self.hand_over(other, stream, peer) {
                    None => Placed::Moved,
                    Some(back) => self.keep(me, back),
                };
            }
        }
        self.keep(me, stream)
    }

    fn keep(&self, me: usize, stream: TcpStream) -> Placed {
        self.placed[me].fetch_add(1, Ordering::SeqCst);
        Placed::Here(stream)
    }

    /// Takes back a place counted for a connection that will not be served.
    pub(super) fn unplace(&self, worker: usize) {
        let _ = self.placed[worker]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Sends the socket to worker `to`. Gives it back, registered with the
    /// calling worker's runtime again, when that worker takes no more (it
    /// is stopping); a socket that cannot change runtimes is closed.
    fn hand_over(&self, to: usize, stream: TcpStream, peer: SocketAddr) -> Option<TcpStream> {
        // Leaves this worker's reactor; stays non-blocking.
        let std = match stream.into_std() {
            Ok(std) => std,
            Err(e) => {
                debug!(error = %e, "cannot hand a connection over; it is closed");
                return None;
            }
        };
        self.placed[to].fetch_add(1, Ordering::Relaxed);
        let mpsc::error::SendError((std, _)) = self.inboxes[to].send((std, peer)).err()?;
        self.unplace(to);
        match TcpStream::from_std(std) {
            Ok(stream) => Some(stream),
            Err(e) => {
                debug!(error = %e, "cannot take a connection back; it is closed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
