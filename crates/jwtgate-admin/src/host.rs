//! The names a plain-HTTP admin listener answers to. A web page can have
//! its own name re-pointed at the listener's address (DNS rebinding): the
//! browser then takes the listener for the page's own origin and lets the
//! page read `/status`, `/metrics` and the console, and try admin keys.
//! Such a request carries the page's name in `Host`; the listener answers
//! only IP literals, `localhost` (and names under it, which browsers keep
//! on loopback) and the names of `admin.allowed_hosts`, as webpack's and
//! Vite's development servers and Jupyter do; any other is `421`.
//!
//! Over HTTPS (`admin.tls`) the browser checks the certificate against the
//! page's name, which a rebound name cannot pass: no check there.

use std::net::Ipv4Addr;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tracing::warn;

use crate::api::AdminState;
use crate::error::AdminError;

/// Put on each request by an admin listener serving HTTPS.
#[derive(Clone, Copy, Debug)]
pub struct OverTls;

pub async fn require_known_host(
    State(state): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    // The host as the data plane reads it: an absolute-form target's or
    // HTTP/2's authority, else the one `Host`; none, two or a malformed
    // one is a 400 over HTTPS too (an outside audit: hyper took them).
    let host = match jwtgate_proxy::headers::request_host(
        req.version(),
        req.uri().authority(),
        req.headers(),
    ) {
        Ok(host) => host,
        Err(e) => return AdminError::BadHost(e.to_string()).into_response(),
    };
    if req.extensions().get::<OverTls>().is_some() {
        return next.run(req).await;
    }
    // A browser always sends one; HTTP/1.0 may go without: a request
    // without comes from no web page.
    let Some(host) = host else {
        return next.run(req).await;
    };
    let allowed = state.live.admin_hosts();
    match answered(host.as_bytes(), &allowed) {
        Ok(()) => next.run(req).await,
        Err(name) => {
            // A scraper or load balancer that reaches the listener by a
            // name not listed would otherwise fail with no word in the log
            // (`/status` and `/metrics` get no access line).
            static SAID: jwtgate_proxy::OncePer = jwtgate_proxy::OncePer::minute();
            if SAID.due() {
                let peer = req
                    .extensions()
                    .get::<crate::api::Peer>()
                    .map_or_else(|| "-".to_owned(), |p| p.0.to_string());
                warn!(
                    target: "jwtgate::admin",
                    host = %name,
                    %peer,
                    path = %crate::api::loggable_path(req.uri().path()),
                    "admin listener reached by a name it does not answer to: 421 (list it in \
                     admin.allowed_hosts if it is yours; said once a minute at most)"
                );
            }
            refusal(name)
        }
    }
}

fn refusal(name: String) -> Response {
    AdminError::UnknownHost(format!(
        "this admin listener does not answer to the name {name:?}: list it in \
             admin.allowed_hosts, or use its address or localhost"
    ))
    .into_response()
}

/// `Ok` when `host` (a `Host` header's value) names the listener by an IP
/// literal, `localhost`, or an entry of `allowed` (as the config holds
/// them: lower case, `.name` for a name and those under it, `*` for any);
/// else the name, lower-cased and cut to 100 bytes, to say which.
fn answered(host: &[u8], allowed: &[String]) -> Result<(), String> {
    let host = String::from_utf8_lossy(host).to_ascii_lowercase();
    if host.starts_with('[') {
        // An IPv6 literal, with or without a port: no DNS name can be
        // written so.
        return match host.split_once(']') {
            Some((_, rest)) if rest.is_empty() || port(rest) => Ok(()),
            _ => Err(cut(&host)),
        };
    }
    let name = match host.rsplit_once(':') {
        Some((name, rest)) if port(&format!(":{rest}")) => name,
        _ => host.as_str(),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.parse::<Ipv4Addr>().is_ok() || name == "localhost" || name.ends_with(".localhost") {
        return Ok(());
    }
    let listed = allowed.iter().any(|entry| match entry.strip_prefix('.') {
        _ if entry == "*" => true,
        Some(domain) => {
            name == domain
                || name
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.'))
        }
        None => name == entry,
    });
    if listed {
        Ok(())
    } else {
        Err(cut(name))
    }
}

/// `:digits`, a port.
fn port(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn cut(name: &str) -> String {
    let mut end = name.len().min(100);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host: &str, allowed: &[&str]) -> bool {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        answered(host.as_bytes(), &allowed).is_ok()
    }

    #[test]
    fn addresses_and_localhost_are_always_answered() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:9180",
            "10.0.0.7:9180",
            "[::1]",
            "[::1]:9180",
            "[fe80::1%25eth0]:9180",
            "localhost",
            "LOCALHOST:9180",
            "localhost.:9180",
            "console.localhost:9180",
        ] {
            assert!(ok(host, &[]), "{host}");
        }
    }

    #[test]
    fn any_other_name_needs_listing() {
        for host in [
            "rebind.attacker.test:9180",
            "attacker.test",
            "localhost.attacker.test",
            "127.0.0.1.attacker.test",
            "evillocalhost",
            "[::1]x",
            "[::1]:x",
            "",
            "admin.example.internal:9180",
        ] {
            assert!(!ok(host, &[]), "{host}");
        }
        assert!(ok(
            "admin.example.internal:9180",
            &["admin.example.internal"]
        ));
        assert!(ok("ADMIN.example.internal.", &["admin.example.internal"]));
        assert!(!ok("x.admin.example.internal", &["admin.example.internal"]));
        // `.domain`: the domain and every name under it, not a name that
        // merely ends the same way.
        assert!(ok("example.internal", &[".example.internal"]));
        assert!(ok("a.b.example.internal:1", &[".example.internal"]));
        assert!(!ok("badexample.internal", &[".example.internal"]));
        assert!(ok("anything.test", &["*"]));
    }

    #[test]
    fn the_refusal_names_the_host_without_its_port_and_cut_short() {
        assert_eq!(
            answered(b"Rebind.Attacker.test:9180", &[]),
            Err("rebind.attacker.test".to_owned())
        );
        let long = "a".repeat(500);
        assert_eq!(answered(long.as_bytes(), &[]).unwrap_err().len(), 100);
    }
}
