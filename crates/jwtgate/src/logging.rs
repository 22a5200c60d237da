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
    // What is said of the settings themselves goes out once the layout is
    // set, as every other line is (one JSON object per line in `json`).
    let mut notices = Vec::new();
    let asked = std::env::var("JWTGATE_LOG").unwrap_or_default();
    let (mut filter, parsed) = match tracing_subscriber::EnvFilter::try_new(&asked) {
        Ok(f) if !asked.is_empty() => (f, true),
        Ok(_) => (tracing_subscriber::EnvFilter::new("info"), false),
        Err(e) => {
            notices.push(format!(
                "JWTGATE_LOG={asked:?} is not a log filter ({e}); using info"
            ));
            (tracing_subscriber::EnvFilter::new("info"), false)
        }
    };
    // A filter that sets no level for everything (`loud`, a typo, reads as
    // the name of a target) would silence every other line, start failures
    // included: errors still go through, and the reading is said.
    if parsed && !sets_a_level(&asked) {
        let targets = bare_targets(&asked);
        if !targets.is_empty() {
            notices.push(format!(
                "JWTGATE_LOG={asked:?} sets no level (trace, debug, info, warn, error, off) for \
                 everything: {} read as log target names; everything else logs errors only",
                targets.join(", ")
            ));
        }
        filter = filter.add_directive(tracing::level_filters::LevelFilter::ERROR.into());
    }
    // rustls warns of what a client sent (an IP address as SNI, which wrk
    // and many libraries send) once per handshake: any client could fill
    // the log, past the access log's switch. Errors only, unless asked for.
    // The Redis client warns of each failed connection to a cluster node,
    // several times a second through an outage (an outside Redis audit:
    // about 290 000 lines a day per node); jwtgate says an outage once and
    // its end once. Errors only, unless asked for.
    let mut filter = filter;
    for (target, directive) in [("rustls", "rustls=error"), ("redis", "redis=error")] {
        if let Ok(directive) = directive.parse() {
            if !names_target(&asked, target) && asked.trim() != "off" {
                filter = filter.add_directive(directive);
            }
        }
    }
    let format = std::env::var("JWTGATE_LOG_FORMAT").unwrap_or_default();
    let json = match format.to_ascii_lowercase().as_str() {
        "json" => true,
        "" | "text" => false,
        _ => {
            notices.push(format!(
                "JWTGATE_LOG_FORMAT={format:?} is neither text nor json; using text"
            ));
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
    log_sink::set_access(tracing::enabled!(
        target: "jwtgate::access",
        tracing::Level::INFO
    ));
    // At ERROR: a filter that sets no level lets errors only through, and
    // this is what the operator must read.
    for notice in notices {
        tracing::error!(target: "jwtgate::log", "{notice}");
    }
    std::panic::set_hook(Box::new(say_panic));
}

/// A panic said as one log line in the log's layout. The standard hook
/// writes several lines of plain text (the backtrace's too, with
/// `RUST_BACKTRACE`): in a JSON log, lines that are no JSON (an outside
/// audit, with a damaged store file, on which redb panics and the store
/// says so in a line of its own). Written at once, after the lines queued
/// before it when nobody holds the sink's locks, never waiting for them:
/// the panic may be the writer's own, or come while its thread holds one.
fn say_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let at = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let backtrace = std::backtrace::Backtrace::capture();
    // `RUST_BACKTRACE=full` asks for every frame, as the standard hook
    // reads it (the alternate form prints them all).
    let full = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v == "full");
    let backtrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured).then(|| {
        if full {
            format!("{backtrace:#}")
        } else {
            backtrace.to_string()
        }
    });
    let line = panic_line(
        log_sink::json(),
        thread.name().unwrap_or("unnamed"),
        &at,
        what,
        backtrace.as_deref(),
    );
    log_sink::flush_if_free();
    let _ = std::io::Write::write_all(&mut std::io::stderr(), &line);
}

/// The line [`say_panic`] writes: text as tracing's fmt layer lays out
/// an event (fields quoted, so the backtrace's newlines stay escaped), or
/// one JSON object.
fn panic_line(json: bool, thread: &str, at: &str, what: &str, backtrace: Option<&str>) -> Vec<u8> {
    let mut line = Vec::new();
    let fields = [
        ("thread", Some(thread)),
        ("at", Some(at)),
        ("panic", Some(what)),
        ("backtrace", backtrace),
    ];
    if json {
        line.extend_from_slice(b"{\"timestamp\":\"");
    }
    log_sink::timestamp(&mut line, std::time::Instant::now());
    line.extend_from_slice(if json {
        b"\",\"level\":\"ERROR\",\"message\":\"a thread panicked\""
    } else {
        b" ERROR jwtgate::panic: a thread panicked"
    });
    for (name, value) in fields.into_iter().filter_map(|(n, v)| Some((n, v?))) {
        if json {
            line.extend_from_slice(format!(",\"{name}\":").as_bytes());
            log_sink::push_json_str(&mut line, value);
        } else {
            line.extend_from_slice(format!(" {name}=").as_bytes());
            log_sink::push_quoted(&mut line, value);
        }
    }
    line.extend_from_slice(if json {
        b",\"target\":\"jwtgate::panic\"}\n"
    } else {
        b"\n"
    });
    line
}

pub use log_sink::flush;

/// Whether one of `filter`'s directives is for `target` or a module of it
/// (`rustls`, `rustls::server=debug`), not another crate that names it
/// (`jwtgate_store::redis=debug`).
fn names_target(filter: &str, target: &str) -> bool {
    filter.split(',').any(|d| {
        let name = d.split(['=', '[']).next().unwrap_or_default().trim();
        name == target || name.starts_with(&format!("{target}::"))
    })
}

/// Whether a directive is a level for every target (`info`, `DEBUG`, `4`),
/// as the filter reads one.
fn is_level(directive: &str) -> bool {
    // An empty directive (`loud,`) parses as a level too: it is none.
    let d = directive.trim();
    !d.is_empty() && d.parse::<tracing::level_filters::LevelFilter>().is_ok()
}

/// Whether a filter's directives name a level for every target (`info`,
/// `debug,hyper=warn`), not only for some (`jwtgate=debug`).
fn sets_a_level(filter: &str) -> bool {
    filter.split(',').any(is_level)
}

/// The directives that are a bare word other than a level: target names.
fn bare_targets(filter: &str) -> Vec<&str> {
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains(['=', '[']) && !is_level(d))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_one_line_in_the_logs_layout() {
        let backtrace = "   0: redb::Database::new\n   1: jwtgate::main\n";
        let what = "internal error: \"entered\" unreachable code\n\u{202e}";
        let json = panic_line(true, "main", "src/btree.rs:1110:22", what, Some(backtrace));
        let text = String::from_utf8(json).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["target"], "jwtgate::panic");
        assert_eq!(v["thread"], "main");
        assert_eq!(v["at"], "src/btree.rs:1110:22");
        assert_eq!(v["panic"], what);
        assert_eq!(v["backtrace"], backtrace);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{text}");

        let text =
            String::from_utf8(panic_line(false, "main", "src/a.rs:1:2", what, None)).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(
            text.contains(" ERROR jwtgate::panic: a thread panicked thread=\"main\" at=\"src/a.rs:1:2\" panic=\"internal error: \\\"entered\\\" unreachable code\\n\\u{202e}\""),
            "{text}"
        );
        assert!(!text.contains("backtrace"), "{text}");
    }

    #[test]
    fn a_crate_is_named_by_its_own_directives_only() {
        assert!(names_target("info,redis=warn", "redis"));
        assert!(names_target("redis::cluster_handling=debug", "redis"));
        assert!(!names_target("info,jwtgate_store::redis=debug", "redis"));
        assert!(!names_target("info", "rustls"));
        assert!(names_target("debug, rustls[span]=trace", "rustls"));
    }

    #[test]
    fn levels_are_read_as_the_filter_reads_them() {
        for level in ["info", "DEBUG", "4", "off", " warn "] {
            assert!(is_level(level), "{level}");
        }
        for not in ["loud", "jwtgate=debug", "jwtgate::access", "", "6"] {
            assert!(!is_level(not), "{not}");
        }
        assert!(sets_a_level("jwtgate=debug,info"));
        assert!(!sets_a_level("jwtgate=debug,hyper=warn"));
        assert!(!sets_a_level("loud,"));
        assert_eq!(bare_targets("loud, jwtgate=debug, 3, info"), ["loud"]);
    }
}
