//! Route matching on the normalised path: the most specific path wins (exact
//! over prefix, longer prefix over shorter), then method and host decide.
//! One trie walk per request, whatever the number of routes.

use std::sync::Arc;

use jwtgate_config::{Route, Upstream};
use jwtgate_core::path::PathTrie;

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
}

pub struct Router {
    trie: PathTrie<usize>,
    routes: Vec<Arc<RouteRuntime>>,
}

impl Router {
    pub fn new(routes: &[Route]) -> Self {
        let mut trie = PathTrie::new();
        let mut out = Vec::with_capacity(routes.len());
        for (i, route) in routes.iter().enumerate() {
            for p in &route.paths {
                trie.insert(p, i);
            }
            let target = match &route.upstream {
                Upstream::Echo => Target::Echo,
                Upstream::Nodes(n) => Target::Nodes(UpstreamTarget::new(n)),
            };
            out.push(Arc::new(RouteRuntime {
                route: route.clone(),
                target,
            }));
        }
        Router { trie, routes: out }
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
}
