//! What the gateway would do with a token on a request, step by step, and
//! why (SPEC §1 `token explain`, §4 `POST /admin/v1/explain`). It drives
//! the same code as the data plane (path normalisation, the router,
//! `authenticate_traced`), so the report cannot drift from what the gateway
//! does. It never holds key material.
//!
//! The report is a list of labelled lines and a verdict: the command line
//! prints the lines, the admin API returns them as JSON.

mod describe;

use std::sync::Arc;

use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::{RevocationKey, Token};
use jwtgate_core::path::{match_form, normalize, Method};
use jwtgate_core::policy::{
    authenticate_traced, sources, AuthContext, AuthError, Authenticated, JwtPolicy, PathScope,
};
use jwtgate_proxy::router::Router;
use serde::Serialize;

/// What the gateway would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accepted,
    Refused,
    /// Everything checked out but the revocation store could not be read.
    Undetermined,
}

/// One line of the report: `label` is empty on a continuation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    #[serde(rename = "step")]
    pub label: &'static str,
    #[serde(rename = "detail")]
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    /// The HTTP status the request would get (200 when accepted).
    pub status: u16,
    /// The public message of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
    /// The precise reason of a refusal (what the log would say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(rename = "steps")]
    pub lines: Vec<Line>,
}

impl Report {
    fn new() -> Self {
        Report {
            verdict: Verdict::Refused,
            status: 401,
            message: None,
            reason: None,
            route: None,
            lines: Vec::new(),
        }
    }

    pub(crate) fn line(&mut self, label: &'static str, text: impl Into<String>) {
        let text: String = text.into();
        let mut parts = text.split('\n');
        if let Some(first) = parts.next() {
            self.lines.push(Line {
                label,
                text: first.to_owned(),
            });
        }
        for more in parts {
            self.lines.push(Line {
                label: "",
                text: more.to_owned(),
            });
        }
    }

    fn finish(mut self, verdict: Verdict, status: u16, headline: String) -> Self {
        self.verdict = verdict;
        self.status = status;
        self.line("", "");
        self.line("verdict", headline);
        self
    }

    /// The report as the command line prints it: `label:` padded to 12
    /// columns, continuations indented to match.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            if l.label.is_empty() {
                if l.text.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(&format!("{:12}{}\n", "", l.text));
                }
            } else {
                out.push_str(&format!("{:12}{}\n", format!("{}:", l.label), l.text));
            }
        }
        out
    }
}

/// Whether the token was logged out, as far as the caller can tell.
pub enum Revocation {
    /// Blacklisted until this Unix time.
    Revoked(i64),
    /// A subject cut-off refuses it; which one.
    CutOff(String),
    /// Not revoked; the store kind that was asked.
    NotRevoked(&'static str),
    /// Could not be told.
    Unknown(String),
}

/// What a report is made from.
pub struct Explain<'a> {
    pub router: &'a Router,
    pub auth: AuthContext<'a>,
    /// Asks whether the token was logged out: by its blacklist keys, or
    /// by a cut-off of its subject.
    pub revocation: &'a dyn Fn(&Authenticated) -> Revocation,
}

/// The request to explain: the token, and optionally the route by name
/// and/or the request line (`GET /path`).
pub struct Request<'a> {
    pub token: &'a str,
    pub route: Option<&'a str>,
    pub request: Option<&'a str>,
}

/// A usage problem (an unknown route, a request line that is not one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    // Said to the command line and the API alike: no flag named.
    #[error("the request line must look like \"GET /path\" (an HTTP version may follow)")]
    RequestLine,
    #[error("no route named {0:?}")]
    NoRoute(String),
    #[error("no route has a jwt policy: name the route to check the token on")]
    NoPolicy,
}

/// A request line's method and target, as a request line reads (no space
/// inside the target; an HTTP version may follow); `None` if it is not one.
pub fn request_line(line: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        [m, p] => Some((m, p)),
        [m, p, version] if version.starts_with("HTTP/") => Some((m, p)),
        _ => None,
    }
}

impl Explain<'_> {
    pub fn report(&self, req: &Request<'_>) -> Result<Report, UsageError> {
        let mut r = Report::new();
        let (method, raw_path) = match req.request {
            Some(line) => {
                let (m, p) = request_line(line).ok_or(UsageError::RequestLine)?;
                (m.to_owned(), Some(p.to_owned()))
            }
            None => ("GET".to_owned(), None),
        };

        // The request line and the normalised path, as the data plane sees
        // them.
        let query = raw_path
            .as_deref()
            .and_then(|p| p.split_once('?'))
            .map(|(_, q)| q);
        let path = match &raw_path {
            Some(p) => {
                let p = p.split('?').next().unwrap_or(p);
                r.line("request", format!("{method} {p}"));
                if Method::from_bytes(method.as_bytes()) == Method::Other
                    && Method::is_case_variant(method.as_bytes())
                {
                    r.line(
                        "method",
                        format!("{method:?} is a known method in another case -> 400 {{\"message\":\"invalid request method\"}}"),
                    );
                    return Ok(r.finish(Verdict::Refused, 400, "REFUSED (400)".into()));
                }
                match normalize(p) {
                    Ok(n) => {
                        let same = if n == p { " (unchanged)" } else { "" };
                        r.line("normalised", format!("{n}{same}"));
                        // Routes and rules meet it in this form (pipeline).
                        Some(match_form(&n).into_owned())
                    }
                    Err(e) => {
                        r.line(
                            "path",
                            format!(
                                "invalid ({}) -> 400 {{\"message\":\"invalid request path\"}}",
                                e.reason
                            ),
                        );
                        return Ok(r.finish(Verdict::Refused, 400, "REFUSED (400)".into()));
                    }
                }
            }
            None => None,
        };

        // The route.
        let route = match (req.route, &path) {
            (Some(name), _) => self
                .router
                .by_name(name)
                .ok_or_else(|| UsageError::NoRoute(name.to_owned()))?,
            (None, Some(p)) => match self.router.find(p, &method, None) {
                Some(route) => route,
                None => {
                    r.line("route", format!("none matches {method} {p} -> 404"));
                    return Ok(r.finish(Verdict::Refused, 404, "REFUSED (404)".into()));
                }
            },
            (None, None) => self
                .router
                .first_with_policy()
                .ok_or(UsageError::NoPolicy)?,
        };
        r.route = Some(route.route.name.clone());
        let chosen = if req.route.is_none() && path.is_none() {
            // Words for the command line and the console alike (its
            // fields are not flags).
            " (first route with a jwt policy; name a route or give a request line to choose)"
        } else {
            ""
        };
        r.line("route", format!("{}{chosen}", route.route.name));
        let Some(policy) = &route.route.jwt else {
            r.line("policy", "none: the route does not authenticate");
            return Ok(r.finish(
                Verdict::Accepted,
                200,
                "ACCEPTED (no authentication on this route)".into(),
            ));
        };

        // The path rules.
        let mut logout = false;
        if let Some(p) = &path {
            let requirement = policy.requirement(Method::from_bytes(method.as_bytes()), p);
            let mode = match &policy.scope {
                PathScope::All => "every request needs a token (no path lists)",
                PathScope::Required(_) => "required_paths (only listed requests need a token)",
                PathScope::NotRequired(_) => {
                    "not_required_paths (listed requests pass without a token)"
                }
            };
            r.line("path rules", mode);
            match requirement.rule {
                Some(rule) => r.line("rule", format!("{rule} matched")),
                None if !matches!(policy.scope, PathScope::All) => {
                    r.line("rule", "no entry matched")
                }
                None => {}
            }
            logout = requirement.logout;
            if requirement.logout {
                r.line(
                    "logout",
                    "this is the route's logout request; a valid token is always required",
                );
            }
            if !requirement.token_required {
                r.line("token", "not required here: the token is not validated, identity headers are still stripped");
                return Ok(r.finish(Verdict::Accepted, 200, "ACCEPTED (no token needed)".into()));
            }
            r.line("token", "required");
            r = match one_token(policy, req.token, query, r) {
                Ok(r) => r,
                Err(refused) => return Ok(refused),
            };
        }
        let request = path
            .as_deref()
            .filter(|_| !logout)
            .map(|p| (Method::from_bytes(method.as_bytes()), p));
        Ok(self.token(policy, req.token, request, r))
    }

    /// `request`: the method and normalised path, when the report has one
    /// and it is not the logout request (which authorization never refuses).
    fn token(
        &self,
        policy: &JwtPolicy,
        token: &str,
        request: Option<(Method, &str)>,
        mut r: Report,
    ) -> Report {
        let clock = SystemClock;
        let mut steps = Vec::new();
        let result = authenticate_traced(policy, &self.auth, token, &clock, &mut |step| {
            describe::step(step, policy, &self.auth, clock.now_unix(), &mut steps)
        });
        for (label, text) in steps {
            r.line(label, text);
        }
        match result {
            Ok(auth) => {
                let who = match (&auth.principal.provider(), auth.principal.consumer()) {
                    (Some(p), Some(c)) => {
                        format!("provider {:?}, as consumer {:?}", p.name, c.username)
                    }
                    (Some(p), None) => format!("provider {:?}", p.name),
                    (None, Some(c)) => format!("consumer {:?}", c.username),
                    (None, None) => "nobody".to_owned(),
                };
                match (self.revocation)(&auth) {
                    Revocation::Revoked(until) => {
                        r.line(
                            "revocation",
                            format!("REVOKED (on the blacklist until {until}: logged out, or revoked through the admin API)"),
                        );
                        self.refused(r, &AuthError::Revoked)
                    }
                    Revocation::CutOff(which) => {
                        r.line(
                            "revocation",
                            format!(
                                "REFUSED by a subject cut-off (logged out everywhere): {which}"
                            ),
                        );
                        self.refused(r, &AuthError::CutOff(which))
                    }
                    Revocation::NotRevoked(kind) => {
                        r.line(
                            "revocation",
                            format!("not revoked (checked in the {kind} store)"),
                        );
                        if let Some(denied) = authorized(policy, request, &auth.claims, &mut r) {
                            return denied(r);
                        }
                        r.finish(Verdict::Accepted, 200, format!("ACCEPTED as {who}"))
                    }
                    Revocation::Unknown(why) => {
                        // Never call a token accepted when it may have been
                        // logged out; refused by authorization, it is refused
                        // either way.
                        r.line("revocation", format!("NOT CHECKED: {why}"));
                        if let Some(denied) = authorized(policy, request, &auth.claims, &mut r) {
                            return denied(r);
                        }
                        r.finish(
                            Verdict::Undetermined,
                            200,
                            format!("UNDETERMINED: valid for {who} unless it was logged out; the store could not be read"),
                        )
                    }
                }
            }
            Err(e) => {
                if let AuthError::Malformed(detail) = &e {
                    r.line("parse", detail.to_string());
                }
                self.refused(r, &e)
            }
        }
    }

    fn refused(&self, mut r: Report, e: &AuthError) -> Report {
        r.message = Some(e.public_message());
        r.reason = Some(e.to_string());
        let headline = format!("REFUSED: 401 {:?}", e.public_message());
        let mut r = r.finish(Verdict::Refused, 401, headline);
        r.line("reason", e.to_string());
        r
    }
}

/// The authorization step, when the route has rules and the report a
/// request: writes the decision, and returns how to finish a denial.
fn authorized(
    policy: &JwtPolicy,
    request: Option<(Method, &str)>,
    claims: &jwtgate_core::claims::Claims,
    r: &mut Report,
) -> Option<impl FnOnce(Report) -> Report> {
    let (authorize, (method, path)) = (policy.authorize.as_ref()?, request?);
    let decision = authorize.decide(method, path, Some(claims));
    r.line("authorize", decision.to_string());
    if decision.is_allowed() {
        return None;
    }
    let reason = decision.to_string();
    Some(move |mut r: Report| {
        r.message = Some("insufficient scope");
        r.reason = Some(reason);
        r.finish(
            Verdict::Refused,
            403,
            "REFUSED: 403 \"insufficient scope\"".into(),
        )
    })
}

/// The blacklist keys of a token that parses (for lookups by callers).
pub fn revocation_key(token: &str) -> Option<RevocationKey> {
    Token::parse(token).ok().map(|t| RevocationKey::of(&t))
}

/// A fixed key ring: the keys a one-shot tool loaded, by provider index.
pub struct LoadedKeys(pub Vec<Option<Arc<jwtgate_core::provider::ProviderKeys>>>);

impl jwtgate_core::provider::KeyRing for LoadedKeys {
    fn current(&self, index: usize) -> Option<Arc<jwtgate_core::provider::ProviderKeys>> {
        self.0.get(index)?.clone()
    }
}

/// What the cut-off check knows of a verified token: the gateway's own
/// reading of it ([`jwtgate_proxy::logout::HeldSubject`]), so that
/// `explain` and the gateway match cut-offs on the same `sub`, `sid` and
/// `iat`.
pub fn token_subject(auth: &Authenticated) -> jwtgate_proxy::logout::HeldSubject {
    jwtgate_proxy::logout::HeldSubject::of(&auth.principal, &auth.claims)
}

/// The token is taken to travel in the route's header; one in the
/// request's query argument too is the same token, or a second one that the
/// gateway refuses (SPEC §3.11): then the finished report is the error.
fn one_token(
    policy: &JwtPolicy,
    token: &str,
    query: Option<&str>,
    mut r: Report,
) -> Result<Report, Report> {
    let (Some(name), Some(query)) = (&policy.sources.query, query) else {
        return Ok(r);
    };
    let token = sources::strip_bearer(token);
    let mut carried = false;
    for t in sources::query_params(query, name) {
        if t != token {
            r.line(
                "token",
                format!(
                    "a different token in the query argument {name:?} as well -> 401 \
                     {{\"message\":\"JWT token invalid\"}} (one token per request)"
                ),
            );
            return Err(r.finish(Verdict::Refused, 401, "REFUSED (401)".into()));
        }
        carried = true;
    }
    if carried {
        r.line(
            "token",
            format!("the query argument {name:?} carries the same token (one token)"),
        );
    }
    Ok(r)
}
