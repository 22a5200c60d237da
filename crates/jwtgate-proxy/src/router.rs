//! Route matching on the normalised path: the most specific path wins (exact
//! over prefix, longer prefix over shorter), then method and host decide.
//! One trie walk per request, whatever the number of routes.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

use jwtgate_config::{Route, Upstream};
use jwtgate_core::claims::ClaimPath;
use jwtgate_core::path::PathTrie;

use crate::metrics::RouteMetrics;
use crate::upstream::UpstreamTarget;

/// Where a matched route sends its requests.
pub enum Target {
    Echo,
    Nodes(UpstreamTarget),
}

/// A route ready to serve.
pub struct RouteRuntime {
    pub route: Route,
    pub target: Target,
    /// The header names of the route's JWT policy, parsed once here rather
    /// than on every request.
    pub names: PolicyHeaders,
    /// The route's metric series handles.
    pub metrics: RouteMetrics,
}

/// A route's `WWW-Authenticate` answers (RFC 6750 §3), built once with its
/// realm rather than formatted on every refusal.
#[derive(Debug, Clone)]
pub struct Challenges {
    /// No token: `Bearer realm="..."`.
    pub missing: HeaderValue,
    /// A token that failed: `..., error="invalid_token"`.
    pub invalid: HeaderValue,
    /// Authenticated but not authorized: `..., error="insufficient_scope"`.
    pub scope: HeaderValue,
}

impl Challenges {
    pub fn new(realm: &str) -> Challenges {
        // The realm is checked as a header-safe string at config load; a
        // bare challenge is the fallback rather than a failed response.
        let value = |text: String| {
            HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("Bearer"))
        };
        Challenges {
            missing: value(format!("Bearer realm=\"{realm}\"")),
            invalid: value(format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")),
            scope: value(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\""
            )),
        }
    }
}

impl Default for Challenges {
    fn default() -> Self {
        Challenges::new("jwtgate")
    }
}

/// Parsed header names of a JWT policy (empty for a route without one).
#[derive(Default)]
pub struct PolicyHeaders {
    /// The policy's `WWW-Authenticate` answers.
    pub challenges: Arc<Challenges>,
    /// The token's header source (`jwt.header`).
    pub token: Option<HeaderName>,
    /// `forward_claims`: claim path -> upstream header.
    pub forward: Vec<(ClaimPath, HeaderName)>,
    /// `forward_payload_header`.
    pub payload: Option<HeaderName>,
}

impl PolicyHeaders {
    fn new(route: &Route) -> Self {
        let Some(policy) = &route.jwt else {
            return Self::default();
        };
        // Names are validated at config load; one that still fails to parse
        // is left out rather than failing every request.
        PolicyHeaders {
            challenges: Arc::new(Challenges::new(&policy.realm)),
            token: policy
                .sources
                .header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            forward: policy
                .forward_claims
                .iter()
                .filter_map(|(claim, h)| {
                    HeaderName::from_bytes(h.as_bytes())
                        .ok()
                        .map(|name| (claim.clone(), name))
                })
                .collect(),
            payload: policy
                .forward_payload_header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        }
    }
}

pub struct Router {
    trie: PathTrie<usize>,
    routes: Vec<Arc<RouteRuntime>>,
    /// The series of requests no route matched (`route=""`).
    pub unmatched: RouteMetrics,
}

impl Router {
    /// `body_timeout`: how long a client's request body may stall
    /// between two reads (`client_body_timeout_ms`).
    pub fn new(routes: &[Route], body_timeout: Duration) -> Self {
        let trie = jwtgate_config::route_trie(
            routes
                .iter()
                .map(|r| (r.paths.as_slice(), r.hosts.is_empty())),
        );
        let mut out = Vec::with_capacity(routes.len());
        for route in routes {
            let target = match &route.upstream {
                Upstream::Echo => Target::Echo,
                Upstream::Nodes(n) => {
                    Target::Nodes(UpstreamTarget::new(&route.name, n, body_timeout))
                }
            };
            out.push(Arc::new(RouteRuntime {
                route: route.clone(),
                target,
                names: PolicyHeaders::new(route),
                metrics: RouteMetrics::new(&route.name),
            }));
        }
        Router {
            trie,
            routes: out,
            unmatched: RouteMetrics::new(""),
        }
    }

    /// `host` is the request host without port.
    pub fn find(&self, path: &str, method: &str, host: Option<&str>) -> Option<&Arc<RouteRuntime>> {
        self.trie
            .matches(path)
            .filter_map(|&i| self.routes.get(i))
            .find(|r| r.route.allows_method(method) && r.route.allows_host(host))
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<RouteRuntime>> {
        self.routes.iter().find(|r| r.route.name == name)
    }

    /// The first route, in config order, with a jwt policy.
    pub fn first_with_policy(&self) -> Option<&Arc<RouteRuntime>> {
        self.routes.iter().find(|r| r.route.jwt.is_some())
    }
}
