//! The client connections the data plane holds open, per worker, and its
//! `max_connections`, read at scrape time from the counts the workers
//! already keep to spread connections evenly (`server::balance`): nothing
//! on the request path. HAProxy's `current_connections` and
//! `max_connections`, Envoy's `downstream_cx_active`.

use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub const OPEN: &str = "jwtgate_worker_connections_open";
pub const MAX: &str = "jwtgate_max_connections";
pub const WEBSOCKETS: &str = "jwtgate_websockets_open";

/// WebSockets open now, all workers together: counted as a tunnel opens
/// and closes, never per request.
static WEBSOCKETS_OPEN: AtomicUsize = AtomicUsize::new(0);

/// Held while one WebSocket is open: counted in [`WEBSOCKETS`].
pub(crate) struct OpenWebSocket(());

impl OpenWebSocket {
    pub(crate) fn new() -> Self {
        WEBSOCKETS_OPEN.fetch_add(1, Ordering::Relaxed);
        OpenWebSocket(())
    }
}

impl Drop for OpenWebSocket {
    fn drop(&mut self) {
        WEBSOCKETS_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the serving data plane counts.
struct Counts {
    /// Each worker's open connections (its idle watch takes one off as a
    /// connection ends).
    open: Vec<Arc<AtomicUsize>>,
    /// `max_connections`: `usize::MAX` when unbounded.
    limit: usize,
}

/// The data plane serving now; one per process.
static SERVING: Mutex<Option<Counts>> = Mutex::new(None);

/// Notes the counts of the data plane that starts serving.
pub(crate) fn serving(open: Vec<Arc<AtomicUsize>>, limit: usize) {
    *SERVING.lock().unwrap_or_else(PoisonError::into_inner) = Some(Counts { open, limit });
}

/// The families in Prometheus's text format, appended to `out`; none
/// before the data plane serves.
pub(super) fn render(out: &mut String) {
    let serving = SERVING.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(counts) = serving.as_ref() else {
        return;
    };
    let _ = write!(
        out,
        "# HELP {OPEN} Client connections open, by worker thread\n# TYPE {OPEN} gauge\n"
    );
    for (worker, open) in counts.open.iter().enumerate() {
        let _ = writeln!(
            out,
            "{OPEN}{{worker=\"{worker}\"}} {}",
            open.load(Ordering::Relaxed)
        );
    }
    out.push('\n');
    let _ = write!(
        out,
        "# HELP {WEBSOCKETS} WebSockets open (joined to their upstream after a 101)\n\
         # TYPE {WEBSOCKETS} gauge\n{WEBSOCKETS} {}\n\n",
        WEBSOCKETS_OPEN.load(Ordering::Relaxed)
    );
    if counts.limit != usize::MAX {
        let _ = write!(
            out,
            "# HELP {MAX} Client connections served at once before accepting pauses (max_connections)\n\
             # TYPE {MAX} gauge\n{MAX} {}\n\n",
            counts.limit
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_and_the_limit_are_written_as_gauges() {
        let open: Vec<_> = [3, 0]
            .into_iter()
            .map(|n| Arc::new(AtomicUsize::new(n)))
            .collect();
        serving(open.clone(), 100);
        open[1].fetch_add(2, Ordering::Relaxed);
        let mut text = String::new();
        render(&mut text);
        assert_eq!(
            text,
            "# HELP jwtgate_worker_connections_open Client connections open, by worker thread\n\
             # TYPE jwtgate_worker_connections_open gauge\n\
             jwtgate_worker_connections_open{worker=\"0\"} 3\n\
             jwtgate_worker_connections_open{worker=\"1\"} 2\n\n\
             # HELP jwtgate_websockets_open WebSockets open (joined to their upstream after a 101)\n\
             # TYPE jwtgate_websockets_open gauge\n\
             jwtgate_websockets_open 0\n\n\
             # HELP jwtgate_max_connections Client connections served at once before accepting pauses (max_connections)\n\
             # TYPE jwtgate_max_connections gauge\n\
             jwtgate_max_connections 100\n\n"
        );
    }
}
