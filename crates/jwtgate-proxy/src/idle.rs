//! Closing client connections that sit idle. A client must complete a
//! request head within the idle timeout of opening its connection or of its
//! previous exchange ending; otherwise the connection is closed. That bounds
//! slowloris clients (a head sent a byte at a time) and abandoned keep-alive
//! connections alike, for HTTP/1.1 and HTTP/2.
//!
//! One sweeper per worker ticks once a period and checks every connection
//! the worker serves. A request costs two atomic counter updates and no
//! timer: hyper's own header-read timeout armed a boxed timer for every
//! request head, about 1 000 instructions of a 28 000-instruction proxied
//! request (`bench/callgrind.sh plain`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::conn_info::ConnInfo;

/// Periods an idle HTTP/2 connection is given, once the gateway stopped
/// and told it GOAWAY, to close itself before the watch closes it: its
/// client has had the GOAWAY and the PING after it (nginx closes such a
/// connection at once).
const STOP_GRACE: u32 = 2;

/// The connections of one worker, and the sweeper that closes idle ones.
/// Dropping it stops the sweeper.
#[derive(Clone)]
pub struct IdleWatch {
    inner: Arc<Inner>,
}

struct Inner {
    /// What every connection's activity reads.
    shared: Arc<Shared>,
    /// Periods more that a connection saying goodbye itself is given
    /// before the watch closes it.
    grace: u32,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Entry, foldhash::fast::RandomState>>,
    /// The worker's count of the connections placed on it (the server's
    /// balance adds one per connection): each ticket takes one off as its
    /// connection ends.
    placed: Arc<AtomicUsize>,
}

/// What the watch and its connections' activity records share.
struct Shared {
    /// Periods since the watch started; read when an exchange ends.
    clock: AtomicU32,
    /// The gateway is stopping: a connection closes after its exchange.
    stopping: AtomicBool,
    /// The clock when the stop came.
    stopped_at: AtomicU32,
    /// Wakes the connections that wait for the stop ([`Activity::stopped`]).
    stop: tokio::sync::Notify,
    /// How often the sweeper ticks.
    period: Duration,
    /// A connection idle for more than this many periods is closed.
    limit: u32,
}

struct Entry {
    activity: Arc<Activity>,
    task: AbortHandle,
}

impl IdleWatch {
    /// Starts the sweeper on the current runtime. A connection is closed
    /// once it has been idle for at least `timeout`, and at most two
    /// `period`s more; one that says goodbye itself is told then, and
    /// closed by the watch if it is still there `grace` later. `placed`
    /// counts the worker's connections; each ticket's drop decrements it.
    pub fn start(
        timeout: Duration,
        grace: Duration,
        period: Duration,
        placed: Arc<AtomicUsize>,
    ) -> Self {
        let periods = |d: Duration| d.as_nanos().div_ceil(period.as_nanos().max(1));
        // An exchange that ends just after a tick was due but before the
        // sweeper ran reads the previous period: one period of margin so
        // that such a connection is not closed before `timeout`.
        let limit = u32::try_from(periods(timeout) + 1).unwrap_or(u32::MAX);
        let inner = Arc::new(Inner {
            shared: Arc::new(Shared {
                clock: AtomicU32::new(0),
                stopping: AtomicBool::new(false),
                stopped_at: AtomicU32::new(0),
                stop: tokio::sync::Notify::new(),
                period,
                limit,
            }),
            grace: u32::try_from(periods(grace)).unwrap_or(u32::MAX),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::default()),
            placed,
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => inner.sweep(),
                    None => return,
                }
            }
        });
        IdleWatch { inner }
    }

    /// A new connection's activity record, idle from now, holding what the
    /// connection knows about itself (one allocation for both).
    pub fn activity(&self, info: ConnInfo) -> Arc<Activity> {
        Arc::new(Activity {
            busy: AtomicU32::new(0),
            idle_since: AtomicU32::new(self.inner.shared.clock.load(Ordering::Relaxed)),
            waiting: AtomicBool::new(true),
            says_goodbye: AtomicBool::new(false),
            shared: Arc::clone(&self.inner.shared),
            info,
        })
    }

    /// The gateway stops: every connection waiting for a request (or in its
    /// TLS handshake) is closed now; the others close when their exchange
    /// ends ([`Activity::stopping`]). Called on the worker's own thread, so
    /// no connection of the worker runs meanwhile.
    pub fn stop(&self) {
        let shared = &self.inner.shared;
        shared
            .stopped_at
            .store(shared.clock.load(Ordering::Relaxed), Ordering::Relaxed);
        shared.stopping.store(true, Ordering::Relaxed);
        self.inner.shared.stop.notify_waiters();
        let Ok(mut conns) = self.inner.conns.lock() else {
            return;
        };
        conns.retain(|_, e| {
            if e.activity.waiting.load(Ordering::Relaxed) {
                e.task.abort();
                return false;
            }
            true
        });
    }

    /// A ticket for a connection about to be spawned; the connection's task
    /// holds it so that the entry goes when the task ends.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            watch: Arc::downgrade(&self.inner),
        }
    }

    /// Watches the task serving a connection: it is aborted (the connection
    /// closed) when the connection has been idle too long.
    pub fn watch(&self, id: ConnId, activity: Arc<Activity>, task: AbortHandle) {
        if let Ok(mut conns) = self.inner.conns.lock() {
            conns.insert(id.0, Entry { activity, task });
        }
    }
}

impl Inner {
    fn sweep(&self) {
        let now = self
            .shared
            .clock
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        let Ok(mut conns) = self.conns.lock() else {
            return;
        };
        conns.retain(|_, e| {
            if e.task.is_finished() {
                // Its ticket was dropped before it was watched.
                return false;
            }
            let mut limit = self.shared.limit;
            let mut idle = e.activity.idle_for(now);
            if e.activity.says_goodbye.load(Ordering::Relaxed) {
                limit = limit.saturating_add(self.grace);
                if self.shared.stopping.load(Ordering::Relaxed) {
                    // Told GOAWAY at the stop: idle since then (or since
                    // its last exchange ended), it has STOP_GRACE to close
                    // itself. A client that never reads held the whole
                    // drain (30 s) otherwise, with no request in flight.
                    let since_stop =
                        now.wrapping_sub(self.shared.stopped_at.load(Ordering::Relaxed));
                    idle = idle.min(since_stop);
                    limit = limit.min(STOP_GRACE);
                }
            }
            if idle > limit {
                e.task.abort();
                return false;
            }
            true
        });
    }
}

/// Removes a connection from the watch when its task ends, however it ends,
/// and takes it off the worker's count.
pub struct Ticket {
    id: u64,
    watch: Weak<Inner>,
}

/// Names a connection's entry in the watch.
#[derive(Clone, Copy, Debug)]
pub struct ConnId(u64);

impl Ticket {
    pub fn id(&self) -> ConnId {
        ConnId(self.id)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(inner) = self.watch.upgrade() {
            // Never below zero, whoever counted (or not) the connection.
            let _ = inner
                .placed
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            if let Ok(mut conns) = inner.conns.lock() {
                conns.remove(&self.id);
            }
        }
    }
}

/// Whether a connection has an exchange in flight, and since when it has
/// had none; and what it knows about itself.
pub struct Activity {
    busy: AtomicU32,
    idle_since: AtomicU32,
    /// Waiting for a request (or in the TLS handshake before the first):
    /// a stop closes the connection at once.
    waiting: AtomicBool,
    /// Closes itself when idle or at a stop (HTTP/2's GOAWAY); the watch
    /// closes it only if it has not `grace` later.
    says_goodbye: AtomicBool,
    shared: Arc<Shared>,
    info: ConnInfo,
}

impl Activity {
    /// The connection's peer and whether it speaks TLS.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// A request head is complete: the connection is busy until the
    /// returned guard is dropped, once the answer is sent whole or abandoned.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.waiting.store(false, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(self))
    }

    /// The connection waits for its next request: a stop closes it from now
    /// on. False when the gateway is already stopping: the connection
    /// closes itself instead.
    pub fn await_request(&self) -> bool {
        self.waiting.store(true, Ordering::Relaxed);
        !self.stopping()
    }

    /// The connection no longer waits for a request, without an exchange:
    /// it refuses a head.
    pub fn stop_waiting(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// The connection speaks HTTP/2, whose server says goodbye itself
    /// (GOAWAY) at a stop ([`Activity::stopped`]), letting streams in
    /// flight finish, and when idle for the timeout ([`Activity::idle_left`]).
    pub fn says_goodbye(&self) {
        self.waiting.store(false, Ordering::Relaxed);
        self.says_goodbye.store(true, Ordering::Relaxed);
    }

    /// How long until the connection has been idle for the timeout, by
    /// the watch's clock: the whole timeout (and the watch's margin) while
    /// an exchange is in flight. `None` once it has: time to say goodbye.
    pub fn idle_left(&self) -> Option<Duration> {
        let s = &self.shared;
        let idle = self.idle_for(self.clock());
        // The same count as the sweep's, which closes other connections.
        if idle > s.limit {
            return None;
        }
        Some(s.period.saturating_mul(s.limit - idle + 1))
    }

    /// The watch's clock: periods since it started (seconds in the
    /// gateway), for what needs no finer time than that.
    pub fn clock(&self) -> u32 {
        self.shared.clock.load(Ordering::Relaxed)
    }

    /// The gateway is stopping: a connection closes once its exchange ends.
    pub fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
    }

    /// Ready once the gateway stops: for a connection that says goodbye
    /// itself (HTTP/2's GOAWAY) rather than be closed by the watch.
    pub async fn stopped(&self) {
        loop {
            let mut notified = std::pin::pin!(self.shared.stop.notified());
            // Registered before the flag is read: a stop in between is not
            // missed.
            notified.as_mut().enable();
            if self.stopping() {
                return;
            }
            notified.await;
        }
    }

    /// Periods idle at `now`; 0 while an exchange is in flight.
    fn idle_for(&self, now: u32) -> u32 {
        if self.busy.load(Ordering::Acquire) > 0 {
            return 0;
        }
        now.wrapping_sub(self.idle_since.load(Ordering::Relaxed))
    }
}

/// Held while one exchange is in flight.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        // The time first: the sweeper reads it only once busy is 0.
        a.idle_since
            .store(a.shared.clock.load(Ordering::Relaxed), Ordering::Relaxed);
        a.busy.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
