//! Prometheus metrics (SPEC §4): the metric names, the histogram buckets, the
//! recorder, and the few calls the pipeline makes per request.
//!
//! Recording is off until [`install`] runs (the binary installs the recorder
//! only when the admin API, which serves `/metrics`, is enabled), so a
//! gateway without a scrape endpoint pays one relaxed atomic load per
//! request. Revocation counts are not recorded here: [`Revocations`] already
//! keeps them in atomics, and [`MetricsHandle::render`] copies them at scrape
//! time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jwtgate_store::Revocations;
use metrics::{counter, describe_counter, describe_gauge, Counter, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub(crate) mod connections;
mod process;
mod routes;

pub const HTTP_REQUESTS: &str = "jwtgate_http_requests_total";
pub const HTTP_DURATION: &str = "jwtgate_http_request_duration_seconds";
pub const JWT_AUTH: &str = "jwtgate_jwt_auth_total";
pub const REVOCATIONS: &str = "jwtgate_revocations_total";
pub const REVOCATION_STORE_ERRORS: &str = "jwtgate_revocation_store_errors_total";
pub const REVOCATION_STORE_LOSSES: &str = "jwtgate_revocation_store_losses_total";
pub const CONFIG_RELOADS: &str = "jwtgate_config_reloads_total";
pub const WORKER_CONNECTIONS: &str = "jwtgate_worker_connections_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "jwtgate_tls_handshake_failures_total";
pub const RESPONSES_CUT_OFF: &str = "jwtgate_upstream_responses_cut_off_total";
pub const CONNECT_FAILURES: &str = "jwtgate_upstream_connect_failures_total";
pub const NODES_LEFT_OUT: &str = "jwtgate_upstream_nodes_left_out_total";
pub const WEBSOCKETS_CLOSED_FOR_TOKEN: &str = "jwtgate_websockets_closed_for_token_total";
pub const ADMIN_REQUESTS: &str = "jwtgate_admin_requests_total";
pub const LOG_LINES_DROPPED: &str = "jwtgate_log_lines_dropped_total";
pub const BUILD_INFO: &str = "jwtgate_build_info";

/// Request latency buckets, in seconds: from sub-millisecond (the gateway's
/// own answers) to the upstream timeouts operators usually set.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Renders the registry as Prometheus text.
#[derive(Clone)]
pub struct MetricsHandle(PrometheusHandle);

/// Installs the process-wide recorder. Call once, before serving.
pub fn install() -> Result<MetricsHandle, String> {
    // The per-route families are kept and written by `routes`, not here.
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe_counter!(
        REVOCATIONS,
        "Tokens this node revoked (logouts and admin API)"
    );
    describe_counter!(
        REVOCATION_STORE_ERRORS,
        "Revocation store operations that failed"
    );
    describe_counter!(
        REVOCATION_STORE_LOSSES,
        "Times the shared revocation store was found to have lost entries, and this node wrote back what it holds"
    );
    describe_counter!(CONFIG_RELOADS, "Config file reloads, by outcome");
    describe_counter!(
        WORKER_CONNECTIONS,
        "Client connections accepted, by worker thread"
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that did not complete, by listener (data, admin) and reason (plain_http, protocol, certificate, closed, timeout)"
    );
    describe_counter!(
        RESPONSES_CUT_OFF,
        "Responses whose body the upstream broke off after their head had gone to the client"
    );
    describe_counter!(
        CONNECT_FAILURES,
        "Connects to an upstream node that failed (refused, timed out, TLS, DNS)"
    );
    describe_counter!(
        NODES_LEFT_OUT,
        "Times an upstream node was left out of its route's round robin after max_fails failed connects"
    );
    describe_counter!(
        WEBSOCKETS_CLOSED_FOR_TOKEN,
        "WebSockets the gateway closed because the token that opened them no longer holds, by reason (revoked, cut_off, expired)"
    );
    // Counted where they happen (jwtgate-keys, the logout module), described
    // here with the rest, so that every family has its HELP line.
    describe_counter!(
        "jwtgate_jwks_fetch_total",
        "Key set fetches of identity providers, by provider and outcome"
    );
    describe_gauge!(
        "jwtgate_jwks_age_seconds",
        Unit::Seconds,
        "Seconds since each provider's keys were last fetched"
    );
    describe_counter!(
        "jwtgate_jwks_kid_miss_total",
        "Tokens naming a kid the provider's key set lacks, by provider and what was done"
    );
    describe_counter!(
        "jwtgate_backchannel_logout_total",
        "OpenID Connect back-channel logouts received, by provider and outcome"
    );
    describe_counter!(
        ADMIN_REQUESTS,
        "Admin API requests (/admin/*), by status code (401: no valid X-API-KEY)"
    );
    describe_counter!(
        LOG_LINES_DROPPED,
        "Log lines dropped because stderr could not keep up"
    );
    describe_gauge!(BUILD_INFO, "1, labelled with the running version");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    process::started();
    // Families that may not move for a while still appear in the first scrape.
    for outcome in ["applied", "invalid", "protected"] {
        counter!(CONFIG_RELOADS, "outcome" => outcome).absolute(0);
    }
    counter!(RESPONSES_CUT_OFF).absolute(0);
    counter!(CONNECT_FAILURES).absolute(0);
    counter!(NODES_LEFT_OUT).absolute(0);
    for reason in ["revoked", "cut_off", "expired"] {
        counter!(WEBSOCKETS_CLOSED_FOR_TOKEN, "reason" => reason).absolute(0);
    }
    counter!(LOG_LINES_DROPPED).absolute(0);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(MetricsHandle(handle))
}

impl MetricsHandle {
    /// The text for `GET /metrics`. `provider_runs` tells the providers
    /// the running config holds: the series of one deleted since are left
    /// out (the exporter's registry keeps every series it was given).
    pub fn render(
        &self,
        revocations: &Revocations,
        provider_runs: &dyn Fn(&str) -> bool,
    ) -> String {
        counter!(REVOCATIONS).absolute(revocations.revoked_count());
        counter!(REVOCATION_STORE_ERRORS).absolute(revocations.store_errors());
        counter!(REVOCATION_STORE_LOSSES).absolute(revocations.store_losses());
        let mut text = without_gone_providers(&self.0.render(), provider_runs);
        routes::render(&mut text);
        connections::render(&mut text);
        process::render(&mut text);
        text
    }

    /// Drains histogram samples into their buckets; call every few seconds
    /// so memory does not grow between scrapes.
    pub fn run_upkeep(&self) {
        self.0.run_upkeep();
    }
}

/// The TLS certificates served, as `jwtgate_tls_certificate_expiry_timestamp_seconds`
/// (when each expires, unix seconds; an alert rule compares it with
/// `time()`): `certificates` holds each listener (`data`, `admin`) with
/// each certificate's place in the config and its `notAfter`.
pub fn write_certificate_expiries(
    out: &mut String,
    certificates: &[(&str, Arc<Vec<crate::tls::Expiry>>)],
) {
    use std::fmt::Write as _;
    if certificates.iter().all(|(_, certs)| certs.is_empty()) {
        return;
    }
    const NAME: &str = "jwtgate_tls_certificate_expiry_timestamp_seconds";
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = write!(
        out,
        "# HELP {NAME} When each TLS certificate served expires (notAfter), by listener and place in the config\n\
         # TYPE {NAME} gauge\n"
    );
    for (listener, certs) in certificates {
        for (place, not_after) in certs.iter() {
            // A place is the config's own text (`tls.certificates[1]`):
            // nothing to escape.
            let _ = writeln!(
                out,
                "{NAME}{{listener=\"{listener}\",certificate=\"{place}\"}} {not_after}"
            );
        }
    }
    out.push('\n');
}

/// `text` without the samples labelled with a provider that does not run.
fn without_gone_providers(text: &str, provider_runs: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let gone = !line.starts_with('#')
            && provider_label(line).is_some_and(|name| !provider_runs(&name));
        if !gone {
            out.push_str(line);
        }
    }
    out
}

/// The value of a sample line's `provider` label, unescaped.
fn provider_label(line: &str) -> Option<String> {
    let labels = &line[line.find('{')?..];
    let start = labels
        .match_indices("provider=\"")
        .find(|&(i, _)| i > 0 && matches!(labels.as_bytes()[i - 1], b'{' | b','))?
        .0
        + "provider=\"".len();
    let mut value = String::new();
    let mut chars = labels[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// The auth outcome labels the pipeline reports (`"none"`: no policy ran,
/// not counted).
const AUTH_OUTCOMES: [&str; 14] = [
    "ok",
    "not_required",
    "logout",
    "missing",
    "malformed",
    "missing_key_claim",
    "unknown_consumer",
    "wrong_alg",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "bad_claims",
    "lifetime_too_long",
    "revoked",
];

/// Status codes a route counts without a lock; others take one (rare
/// codes: a route serving one of these a lot would contend on it).
const COMMON_CODES: [u16; 30] = [
    101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409,
    412, 413, 421, 422, 429, 431, 499, 500, 502, 503, 504,
];

/// One route's series (or the no-route series'), found when the route is
/// built: looking three series up by name and labels on every request cost
/// about 2 000 instructions, 5 % of a proxied request (callgrind, admin API
/// on); a count is an atomic add. A reload builds new routes, which find
/// the same series; a deleted route's go with it (`routes`).
pub struct RouteMetrics(Arc<routes::RouteSeries>);

impl RouteMetrics {
    /// `route` is the route's name, `""` for requests no route matched.
    pub fn new(route: &str) -> Self {
        RouteMetrics(routes::RouteSeries::of(route))
    }

    /// Counts one answered request. `auth` is the pipeline's auth outcome
    /// label (`"none"`: no policy ran).
    pub(crate) fn record(&self, status: u16, auth: &'static str, elapsed: Duration) {
        if !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        self.0.record(status, auth, elapsed);
    }
}

/// A worker's counter of accepted connections (a handle: counted per
/// connection without a lookup).
pub fn worker_connections(worker: usize) -> Counter {
    counter!(WORKER_CONNECTIONS, "worker" => worker.to_string())
}

/// Counts a TLS handshake on `listener` (`data`, `admin`) that did not
/// complete: `timeout`, or as [`handshake_failure`] reads its error.
pub fn record_tls_handshake_failure(listener: &'static str, reason: &'static str) {
    counter!(TLS_HANDSHAKE_FAILURES, "listener" => listener, "reason" => reason).increment(1);
}

/// Counts a connect to an upstream node that failed. Not by node: nodes
/// come and go with routes (pod addresses), and a series per node would
/// outlive its node; the log names it.
pub fn record_connect_failure() {
    counter!(CONNECT_FAILURES).increment(1);
}

/// Counts an upstream node left out of its route's round robin after
/// failed connects.
pub fn record_node_left_out() {
    counter!(NODES_LEFT_OUT).increment(1);
}

/// Counts a WebSocket closed because the token that opened it no longer
/// holds: `reason` is `revoked`, `cut_off` or `expired`.
pub fn record_websocket_closed_for_token(reason: &'static str) {
    counter!(WEBSOCKETS_CLOSED_FOR_TOKEN, "reason" => reason).increment(1);
}

/// Counts a response the upstream broke off after its head went out.
pub fn record_response_cut_off() {
    counter!(RESPONSES_CUT_OFF).increment(1);
}

/// Why a handshake failed, as a label: `closed` when the client went away
/// (a port scan, a health check that only connects), `certificate` when it
/// refused the certificate in an alert, else `protocol` (no shared version,
/// cipher or ALPN protocol; bytes that are no TLS).
pub fn handshake_failure(e: &std::io::Error) -> &'static str {
    use rustls::AlertDescription::{
        BadCertificate, CertificateExpired, CertificateRevoked, CertificateUnknown, UnknownCA,
        UnsupportedCertificate,
    };
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let alert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match (e.kind(), alert) {
        (UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe, _) => "closed",
        // The client refused the certificate (expired, not trusted, not
        // for the name it asked): the operator's problem, not a scanner's.
        (
            _,
            Some(rustls::Error::AlertReceived(
                BadCertificate
                | UnsupportedCertificate
                | CertificateRevoked
                | CertificateExpired
                | CertificateUnknown
                | UnknownCA,
            )),
        ) => "certificate",
        _ => "protocol",
    }
}

/// Counts one config reload: `applied`, `invalid` or `protected`.
pub fn record_config_reload(outcome: &'static str) {
    counter!(CONFIG_RELOADS, "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_providers_that_do_not_run_are_left_out() {
        let text = "# HELP jwtgate_jwks_fetch_total Fetches\n\
                    # TYPE jwtgate_jwks_fetch_total counter\n\
                    jwtgate_jwks_fetch_total{provider=\"corp\",outcome=\"ok\"} 3\n\
                    jwtgate_jwks_fetch_total{provider=\"gone\",outcome=\"ok\"} 1\n\
                    jwtgate_jwks_kid_miss_total{outcome=\"fetched\",provider=\"a\\\"b\"} 2\n\
                    jwtgate_jwks_kid_miss_total{outcome=\"fetched\",provider=\"a\\\\b\"} 2\n\
                    jwtgate_admin_requests_total{code=\"200\"} 4\n";
        let runs = |name: &str| name == "corp" || name == "a\"b";
        let kept = without_gone_providers(text, &runs);
        assert_eq!(
            kept,
            "# HELP jwtgate_jwks_fetch_total Fetches\n\
             # TYPE jwtgate_jwks_fetch_total counter\n\
             jwtgate_jwks_fetch_total{provider=\"corp\",outcome=\"ok\"} 3\n\
             jwtgate_jwks_kid_miss_total{outcome=\"fetched\",provider=\"a\\\"b\"} 2\n\
             jwtgate_admin_requests_total{code=\"200\"} 4\n"
        );
        // Only a label named provider counts, not one that ends so, nor
        // text inside another label's value.
        assert_eq!(provider_label("x{route=\"a,provider=\\\"b\\\"\"} 1"), None);
        assert_eq!(provider_label("x{subprovider=\"b\"} 1"), None);
    }
}
