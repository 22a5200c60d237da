//! Installs the tracing subscriber: filter from `JWTGATE_LOG` (default
//! info), layout from `JWTGATE_LOG_FORMAT` (`text`, the default, or
//! `json`: one JSON object per line, fields at the top level, for Loki or
//! Elasticsearch), lines written through the data plane's log sink (a
//! writer thread), so that logging never costs a system call on the
//! request path. The access log follows the same layout
//! (`log_sink::set_json`).

use jwtgate_proxy::log_sink::{self, Line};
use tracing_subscriber::fmt::MakeWriter;

pub fn init() {
    log_sink::start();
    let asked = std::env::var("JWTGATE_LOG").unwrap_or_default();
    let filter = tracing_subscriber::EnvFilter::try_new(&asked)
        .ok()
        .filter(|_| !asked.is_empty())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    // rustls warns of what a client sent (an IP address as SNI, which wrk
    // and many libraries send) once per handshake: any client could fill
    // the log, past the access log's switch. Errors only, unless asked for.
    let filter = match "rustls=error".parse() {
        Ok(directive) if !asked.contains("rustls") && asked.trim() != "off" => {
            filter.add_directive(directive)
        }
        _ => filter,
    };
    let format = std::env::var("JWTGATE_LOG_FORMAT").unwrap_or_default();
    let json = match format.as_str() {
        "json" => true,
        "" | "text" => false,
        other => {
            eprintln!("jwtgate: JWTGATE_LOG_FORMAT={other:?} is neither text nor json; using text");
            false
        }
    };
    log_sink::set_json(json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Sink)
        .with_ansi(false);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
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
