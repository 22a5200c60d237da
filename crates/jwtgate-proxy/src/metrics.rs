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
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jwtgate_store::Revocations;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, histogram, Counter, Histogram,
    SharedString, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod process;

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
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), DURATION_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| e.to_string())?;
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route and status code"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer a request (response head)"
    );
    describe_counter!(JWT_AUTH, "JWT policy decisions, by route and outcome");
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
        "TLS handshakes that did not complete, by listener (data, admin) and reason (plain_http, protocol, closed, timeout)"
    );
    describe_counter!(
        RESPONSES_CUT_OFF,
        "Responses whose body the upstream broke off after their head had gone to the client"
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
    counter!(LOG_LINES_DROPPED).absolute(0);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(MetricsHandle(handle))
}

impl MetricsHandle {
    /// The text for `GET /metrics`.
    pub fn render(&self, revocations: &Revocations) -> String {
        counter!(REVOCATIONS).absolute(revocations.revoked_count());
        counter!(REVOCATION_STORE_ERRORS).absolute(revocations.store_errors());
        counter!(REVOCATION_STORE_LOSSES).absolute(revocations.store_losses());
        let mut text = self.0.render();
        process::render(&mut text);
        text
    }

    /// Drains histogram samples into their buckets; call every few seconds
    /// so memory does not grow between scrapes.
    pub fn run_upkeep(&self) {
        self.0.run_upkeep();
    }
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

/// Status codes whose series handles a route keeps; others are looked up
/// in the registry on each request.
const COMMON_CODES: [u16; 18] = [
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 405, 409, 413, 429, 500, 502, 503, 504,
];

/// One route's series handles (or the no-route series'), resolved in the
/// registry on first use and then kept: looking three series up by name and
/// labels on every request cost about 2 000 instructions, 5 % of a proxied
/// request (callgrind, admin API on); a kept handle costs an atomic add. A
/// reload builds new routes, whose handles resolve to the same series.
pub struct RouteMetrics {
    route: SharedString,
    duration: OnceLock<Histogram>,
    codes: [OnceLock<Counter>; COMMON_CODES.len()],
    auth: [OnceLock<Counter>; AUTH_OUTCOMES.len()],
}

impl RouteMetrics {
    /// `route` is the route's name, `""` for requests no route matched.
    pub fn new(route: &str) -> Self {
        RouteMetrics {
            route: SharedString::from_shared(Arc::from(route)),
            duration: OnceLock::new(),
            codes: std::array::from_fn(|_| OnceLock::new()),
            auth: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Counts one answered request. `auth` is the pipeline's auth outcome
    /// label (`"none"`: no policy ran).
    pub(crate) fn record(&self, status: u16, auth: &'static str, elapsed: Duration) {
        if !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let route = || self.route.clone();
        match COMMON_CODES.iter().position(|&c| c == status) {
            Some(i) => self.codes[i]
                .get_or_init(
                    || counter!(HTTP_REQUESTS, "route" => route(), "code" => code_label(status)),
                )
                .increment(1),
            None => counter!(HTTP_REQUESTS, "route" => route(), "code" => code_label(status))
                .increment(1),
        }
        self.duration
            .get_or_init(|| histogram!(HTTP_DURATION, "route" => route()))
            .record(elapsed.as_secs_f64());
        if auth == "none" {
            return;
        }
        match AUTH_OUTCOMES.iter().position(|&o| o == auth) {
            Some(i) => self.auth[i]
                .get_or_init(|| counter!(JWT_AUTH, "route" => route(), "outcome" => auth))
                .increment(1),
            None => counter!(JWT_AUTH, "route" => route(), "outcome" => auth).increment(1),
        }
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

/// Counts a response the upstream broke off after its head went out.
pub fn record_response_cut_off() {
    counter!(RESPONSES_CUT_OFF).increment(1);
}

/// Why a handshake failed, as a label: `closed` when the client went away
/// (a port scan, a health check that only connects), else `protocol` (no
/// shared version, cipher or ALPN protocol; plain HTTP sent to the port).
pub fn handshake_failure(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => "closed",
        _ => "protocol",
    }
}

/// Counts one config reload: `applied`, `invalid` or `protected`.
pub fn record_config_reload(outcome: &'static str) {
    counter!(CONFIG_RELOADS, "outcome" => outcome).increment(1);
}

/// Status code labels without formatting the common ones.
fn code_label(status: u16) -> SharedString {
    let text = match status {
        200 => "200",
        201 => "201",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return SharedString::from_owned(other.to_string()),
    };
    SharedString::const_str(text)
}
