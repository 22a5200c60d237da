//! The web console (SPEC §7): static files embedded in the binary and
//! served at `/console/` on the admin listener when `admin.console: true`.
//!
//! The files are public, like `/status`: they hold no data and no key. The
//! page signs in with the admin key and then does everything through the
//! admin API (`/admin/v1/*` with `X-API-KEY`) and `/metrics`, so the console
//! can do nothing the API does not allow. Every answer carries a strict
//! Content-Security-Policy (no inline script or style, nothing from another
//! origin, no framing, no form submission) and `no-store`.
//!
//! What it does not do: template, build or minify anything. The assets under
//! `crates/jwtgate-admin/console/` are the files the browser gets, so no
//! Node.js or other tool is needed to build or run jwtgate.
//!
//! The switch is read from the running config on each request, so a reload
//! that turns the console on or off applies at once, like `admin.api_key`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::api::{no_such_endpoint, AdminState};

/// A file of the console, as the browser gets it.
struct Asset {
    /// Below `/console/`; `""` is the page itself.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../console/", $path)),
        }
    };
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "",
        content_type: HTML,
        body: include_bytes!("../console/index.html"),
    },
    asset!("style.css", CSS),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/dialog.js", JS),
    asset!("js/fields.js", JS),
    asset!("js/lines.js", JS),
    asset!("js/routes.js", JS),
    asset!("js/policy.js", JS),
    asset!("js/consumers.js", JS),
    asset!("js/providers.js", JS),
    asset!("js/revocations.js", JS),
    asset!("js/explain.js", JS),
    asset!("js/outcomes.js", JS),
    asset!("js/prometheus.js", JS),
];

/// The policy every console answer carries: scripts, styles and fetches
/// from the admin listener only; no inline code; no frames, forms or base.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// `/console` (redirected), `/console/` and the files below it.
pub fn router() -> Router<AdminState> {
    Router::new()
        .route("/console", get(redirect))
        .route("/console/", get(page))
        .route("/console/{*file}", get(file))
}

fn enabled(s: &AdminState) -> bool {
    s.live
        .source()
        .admin
        .as_ref()
        .and_then(|a| a.console)
        .unwrap_or(false)
}

async fn redirect(State(s): State<AdminState>) -> Response {
    if !enabled(&s) {
        return no_such_endpoint().into_response();
    }
    with_headers(Redirect::permanent("/console/").into_response())
}

async fn page(State(s): State<AdminState>) -> Response {
    serve(&s, "")
}

async fn file(State(s): State<AdminState>, Path(file): Path<String>) -> Response {
    serve(&s, &file)
}

fn serve(s: &AdminState, path: &str) -> Response {
    if !enabled(s) {
        // The same answer as any unknown path: an off console is not there.
        return no_such_endpoint().into_response();
    }
    let response = match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such file in the console\n",
        )
            .into_response(),
    };
    with_headers(response)
}

fn with_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: &Asset) -> &'static str {
        std::str::from_utf8(a.body).unwrap_or_else(|e| panic!("{}: {e}", a.path))
    }

    #[test]
    fn every_module_a_file_imports_is_served() {
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text(a).lines() {
                let Some(rest) = line.split(" from './").nth(1) else {
                    continue;
                };
                let file = rest.split('\'').next().unwrap_or_default();
                let wanted = format!("{dir}/{file}");
                assert!(
                    ASSETS.iter().any(|b| b.path == wanted),
                    "{} imports {wanted}, which is not in ASSETS",
                    a.path
                );
            }
        }
    }

    #[test]
    fn every_file_of_the_console_directory_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.map(|e| e.path()).unwrap_or_default();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let rel = path.strip_prefix(&root).unwrap_or(&path);
                let rel = rel.to_string_lossy().replace('\\', "/");
                let rel = if rel == "index.html" {
                    String::new()
                } else {
                    rel
                };
                assert!(
                    ASSETS.iter().any(|a| a.path == rel),
                    "console/{rel} is not in ASSETS"
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = text(&ASSETS[0]);
        for needle in [" style=", "<style", "javascript:", " onclick=", " onload="] {
            assert!(!page.contains(needle), "index.html contains {needle:?}");
        }
        for tag in page.split("<script").skip(1) {
            assert!(tag.contains(" src="), "inline <script> in index.html");
        }
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let js = text(a);
            for needle in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "new Function",
                "setAttribute('style'",
                ".style.",
            ] {
                assert!(!js.contains(needle), "{} uses {needle}", a.path);
            }
        }
    }

    #[test]
    fn the_policy_forbids_inline_code_and_framing() {
        let csp = CONTENT_SECURITY_POLICY;
        assert!(!csp.contains("unsafe"), "{csp}");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{csp} lacks {directive}");
        }
    }
}
