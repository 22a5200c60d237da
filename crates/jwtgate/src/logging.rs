//! Installs the tracing subscriber: filter from `JWTGATE_LOG` (default
//! info), lines written through the data plane's log sink (a writer thread),
//! so that logging never costs a system call on the request path.

use jwtgate_proxy::log_sink::{self, Line};
use tracing_subscriber::fmt::MakeWriter;

pub fn init() {
    log_sink::start();
    let filter = tracing_subscriber::EnvFilter::try_from_env("JWTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Sink)
        .with_ansi(false)
        .init();
}

pub use log_sink::flush;

/// `MakeWriter` for the fmt layer: one [`Line`] per event.
struct Sink;

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::default()
    }
}
