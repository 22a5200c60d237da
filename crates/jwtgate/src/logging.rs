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
    let mut filter = match tracing_subscriber::EnvFilter::try_new(&asked) {
        Ok(f) if !asked.is_empty() => f,
        Ok(_) => tracing_subscriber::EnvFilter::new("info"),
        Err(e) => {
            eprintln!("jwtgate: JWTGATE_LOG={asked:?} is not a log filter ({e}); using info");
            tracing_subscriber::EnvFilter::new("info")
        }
    };
    // A filter that sets no level for everything (`loud`, a typo, reads as
    // the name of a target) would silence every other line, start failures
    // included: errors still go through, and the reading is said.
    if !asked.is_empty() && !sets_a_level(&asked) {
        let targets = bare_targets(&asked);
        if !targets.is_empty() {
            eprintln!(
                "jwtgate: JWTGATE_LOG={asked:?} sets no level (trace, debug, info, warn, error, \
                 off) for everything: {} read as log target names; everything else logs errors \
                 only",
                targets.join(", ")
            );
        }
        filter = filter.add_directive(tracing::level_filters::LevelFilter::ERROR.into());
    }
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

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Whether a filter's directives name a level for every target (`info`,
/// `debug,hyper=warn`), not only for some (`jwtgate=debug`).
fn sets_a_level(filter: &str) -> bool {
    filter
        .split(',')
        .any(|d| LEVELS.iter().any(|l| d.trim().eq_ignore_ascii_case(l)))
}

/// The directives that are a bare word other than a level: target names.
fn bare_targets(filter: &str) -> Vec<&str> {
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains(['=', '[']))
        .filter(|d| !LEVELS.iter().any(|l| d.eq_ignore_ascii_case(l)))
        .collect()
}

/// `MakeWriter` for the fmt layer: one [`Line`] per event.
struct Sink;

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::default()
    }
}
