//! The per-route series (`jwtgate_http_requests_total`,
//! `jwtgate_http_request_duration_seconds`, `jwtgate_jwt_auth_total`), kept
//! here rather than in the exporter's registry: a series there is never
//! removed, so every route ever created stayed in each scrape and in memory
//! (an outside soak audit: 1 075 routes created and deleted left 20 707
//! lines, about 1.5 KB each, until a restart). A route's series live as long
//! as a running config holds the route: the table keeps them weakly, the
//! routes of each installed [`crate::Gateway`] strongly, so a reload (which
//! builds the new routes while the old ones still serve) carries a route's
//! counts on, and a deleted route's go with the last gateway that had it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::{
    AUTH_OUTCOMES, COMMON_CODES, DURATION_BUCKETS, HTTP_DURATION, HTTP_REQUESTS, JWT_AUTH,
};

/// One route's counts (`""`: requests no route matched).
pub(crate) struct RouteSeries {
    name: Arc<str>,
    codes: Tally<u16>,
    auth: Tally<&'static str>,
    /// Requests by the first bucket whose bound holds their duration
    /// (not cumulative; the last: beyond every bound).
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// Counts by a label's value: the common values without a lock, any
/// other (rare) under one.
struct Tally<K: 'static> {
    common: &'static [K],
    counts: Box<[AtomicU64]>,
    others: Mutex<BTreeMap<K, u64>>,
}

impl<K: Copy + Ord + std::fmt::Display + 'static> Tally<K> {
    fn new(common: &'static [K]) -> Self {
        Tally {
            common,
            counts: common.iter().map(|_| AtomicU64::new(0)).collect(),
            others: Mutex::default(),
        }
    }

    fn add(&self, value: K) {
        match self.common.iter().position(|&c| c == value) {
            Some(i) => bump(&self.counts[i]),
            None => *lock(&self.others).entry(value).or_default() += 1,
        }
    }

    /// A line `family{route="...",label="value"} n` per value counted.
    fn write(&self, out: &mut String, family: &str, route: &str, label: &str) {
        let common = self
            .common
            .iter()
            .zip(self.counts.iter())
            .map(|(&value, n)| (value, n.load(Ordering::Relaxed)));
        let others: Vec<(K, u64)> = lock(&self.others).iter().map(|(&v, &n)| (v, n)).collect();
        for (value, n) in common.chain(others).filter(|&(_, n)| n > 0) {
            let _ = writeln!(out, "{family}{{route=\"{route}\",{label}=\"{value}\"}} {n}");
        }
    }
}

/// The series by route name, held weakly; names whose routes are gone are
/// swept out once the table has doubled since the last sweep (a sweep per
/// series made would cost a start with N routes N²/2 checks), and at each
/// scrape.
struct Table {
    series: BTreeMap<Arc<str>, Weak<RouteSeries>>,
    sweep_at: usize,
}

impl Table {
    fn sweep(&mut self) {
        self.series.retain(|_, s| s.strong_count() > 0);
        self.sweep_at = (2 * self.series.len()).max(64);
    }
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    series: BTreeMap::new(),
    sweep_at: 64,
});

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RouteSeries {
    /// The series of `route`: those a running config's route of that name
    /// holds, else new ones.
    pub(crate) fn of(route: &str) -> Arc<RouteSeries> {
        let mut table = table();
        if let Some(series) = table.series.get(route).and_then(Weak::upgrade) {
            return series;
        }
        let name: Arc<str> = Arc::from(route);
        let series = Arc::new(RouteSeries {
            name: Arc::clone(&name),
            codes: Tally::new(&COMMON_CODES),
            auth: Tally::new(&AUTH_OUTCOMES),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        });
        table.series.insert(name, Arc::downgrade(&series));
        if table.series.len() >= table.sweep_at {
            table.sweep();
        }
        series
    }

    pub(crate) fn record(&self, status: u16, auth: &'static str, elapsed: Duration) {
        self.codes.add(status);
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        bump(&self.buckets[bucket]);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        if auth == "none" {
            return;
        }
        self.auth.add(auth);
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Appends the three families, for the routes a running config holds, as
/// Prometheus text (the exporter's layout: a series appears once counted).
pub(crate) fn render(out: &mut String) {
    let live: Vec<Arc<RouteSeries>> = {
        let mut table = table();
        table.sweep();
        table.series.values().filter_map(Weak::upgrade).collect()
    };
    let mut requests = String::new();
    let mut durations = String::new();
    let mut auth = String::new();
    for s in &live {
        let route = label_value(&s.name);
        s.codes.write(&mut requests, HTTP_REQUESTS, &route, "code");
        let counts: Vec<u64> = s
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        if count > 0 {
            let mut below = 0;
            for (bound, n) in DURATION_BUCKETS.iter().zip(&counts) {
                below += n;
                let _ = writeln!(
                    durations,
                    "{HTTP_DURATION}_bucket{{route=\"{route}\",le=\"{bound}\"}} {below}"
                );
            }
            let sum = s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                durations,
                "{HTTP_DURATION}_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}\n\
                 {HTTP_DURATION}_sum{{route=\"{route}\"}} {sum}\n\
                 {HTTP_DURATION}_count{{route=\"{route}\"}} {count}"
            );
        }
        s.auth.write(&mut auth, JWT_AUTH, &route, "outcome");
    }
    family(
        out,
        HTTP_REQUESTS,
        "counter",
        "HTTP requests answered, by route and status code",
        &requests,
    );
    family(
        out,
        HTTP_DURATION,
        "histogram",
        "Time to answer a request (response head)",
        &durations,
    );
    family(
        out,
        JWT_AUTH,
        "counter",
        "JWT policy decisions, by route and outcome",
        &auth,
    );
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, lines: &str) {
    if lines.is_empty() {
        return;
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{lines}\n");
}

/// A label value as the text format writes it: `\`, `"` and line feeds
/// escaped (a route name may hold the first two).
fn label_value(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> String {
        let mut out = String::new();
        render(&mut out);
        out
    }

    #[test]
    fn names_of_routes_gone_are_swept_without_a_scrape() {
        // A node without the admin API is never scraped: route churn must
        // not grow the table all the same.
        for i in 0..1000 {
            drop(RouteSeries::of(&format!("churned-{i}")));
        }
        let left = table()
            .series
            .keys()
            .filter(|k| k.starts_with("churned-"))
            .count();
        assert!(left < 500, "{left} names of dropped routes kept");
    }

    #[test]
    fn a_route_s_series_last_while_a_config_holds_it() {
        let a = RouteSeries::of("series-test \"a\"");
        a.record(200, "ok", Duration::from_micros(300));
        a.record(200, "none", Duration::from_millis(3));
        a.record(599, "mystery", Duration::from_secs(60));
        // A reload builds the route again while the old one serves: the
        // same counts carry on.
        let again = RouteSeries::of("series-test \"a\"");
        assert!(Arc::ptr_eq(&a, &again));
        let text = rendered();
        for line in [
            r#"jwtgate_http_requests_total{route="series-test \"a\"",code="200"} 2"#,
            r#"jwtgate_http_requests_total{route="series-test \"a\"",code="599"} 1"#,
            r#"jwtgate_jwt_auth_total{route="series-test \"a\"",outcome="ok"} 1"#,
            r#"jwtgate_jwt_auth_total{route="series-test \"a\"",outcome="mystery"} 1"#,
            r#"jwtgate_http_request_duration_seconds_bucket{route="series-test \"a\"",le="0.0005"} 1"#,
            r#"jwtgate_http_request_duration_seconds_bucket{route="series-test \"a\"",le="0.005"} 2"#,
            r#"jwtgate_http_request_duration_seconds_bucket{route="series-test \"a\"",le="10"} 2"#,
            r#"jwtgate_http_request_duration_seconds_bucket{route="series-test \"a\"",le="+Inf"} 3"#,
            r#"jwtgate_http_request_duration_seconds_sum{route="series-test \"a\""} 60.0033"#,
            r#"jwtgate_http_request_duration_seconds_count{route="series-test \"a\""} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(text.contains("# TYPE jwtgate_http_request_duration_seconds histogram\n"));
        // Gone with the last route that held it.
        drop((a, again));
        assert!(!rendered().contains("series-test"), "{}", rendered());
        let fresh = RouteSeries::of("series-test \"a\"");
        fresh.record(204, "none", Duration::ZERO);
        let text = rendered();
        assert!(
            !text.contains(r#"{route="series-test \"a\"",code="200"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{route="series-test \"a\"",code="204"} 1"#),
            "{text}"
        );
    }
}
