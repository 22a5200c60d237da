//! Which route takes a request (SPEC §2: the most specific path wins, exact
//! over prefix and longer prefix over shorter; then method and host decide),
//! shared by the data plane's router and by checks that compare two configs
//! without serving anything (protected policies, SPEC §3.5).

use std::collections::BTreeSet;

use jwtgate_core::path::{PathPattern, PathTrie};

use crate::RawRoute;

/// The trie a set of routes is chosen with: every path of every route, the
/// value being the route's index. On the same path, a route that names the
/// request's host beats one that takes any host (as in Kong, APISIX and
/// Envoy), whatever their order in the file: the trie keeps insertion order
/// within a pattern, so host-specific routes go in first.
pub fn route_trie<'a>(
    routes: impl ExactSizeIterator<Item = (&'a [PathPattern], bool)>,
) -> PathTrie<usize> {
    let mut routes: Vec<(usize, &[PathPattern], bool)> = routes
        .enumerate()
        .map(|(i, (paths, any_host))| (i, paths, any_host))
        .collect();
    routes.sort_by_key(|&(_, _, any_host)| any_host);
    let mut trie = PathTrie::new();
    for (i, paths, _) in routes {
        for p in paths {
            trie.insert(p, i);
        }
    }
    trie
}

/// Whether a route with these `methods` (`None`: all) takes `method`. `GET`
/// also takes `HEAD`, as a `GET_` rule entry covers it (SPEC §3.11) and
/// nginx's `limit_except GET` does: frameworks answer `HEAD` with their
/// `GET` handler, so a `HEAD` must not fall through to another route with
/// other rules.
#[inline]
pub fn takes_method(methods: Option<&[String]>, method: &str) -> bool {
    methods.is_none_or(|m| {
        m.iter()
            .any(|x| x == method || (method == "HEAD" && x == "GET"))
    })
}

/// Whether a route with these `hosts` (lower case, a leading `*.` a
/// wildcard; none: any host) takes `host`, the request's host without port,
/// any case.
#[inline]
pub fn takes_host(hosts: &[String], host: Option<&str>) -> bool {
    if hosts.is_empty() {
        return true;
    }
    let Some(host) = host else { return false };
    hosts.iter().any(|h| match h.strip_prefix("*.") {
        Some(suffix) => host.len().checked_sub(suffix.len() + 1).is_some_and(|cut| {
            host.as_bytes().get(cut) == Some(&b'.') && host[cut + 1..].eq_ignore_ascii_case(suffix)
        }),
        None => host.eq_ignore_ascii_case(h),
    })
}

/// A `hosts` entry as it is matched: lower case, a final dot removed, as the
/// gateway removes it from a request's host (`api.example.` is
/// `api.example`).
pub fn host_entry(h: &str) -> String {
    let h = h.to_ascii_lowercase();
    h.strip_suffix('.').map(str::to_owned).unwrap_or(h)
}

/// One request as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRequest {
    pub method: String,
    /// Normalised.
    pub path: String,
    /// Without port; `None`: the request named no host.
    pub host: Option<String>,
    /// How to show the request: the path as a pattern when it stands for
    /// every path under a prefix (`GET /v1/orders/*`).
    pub shown: String,
}

/// The routes of a raw config, chosen between as the data plane would once
/// the config compiled. Paths that do not parse are left out (such a config
/// does not compile).
pub struct RouteChoice<'a> {
    routes: Vec<Matcher<'a>>,
    trie: PathTrie<usize>,
}

struct Matcher<'a> {
    name: &'a str,
    paths: Vec<PathPattern>,
    methods: Option<&'a [String]>,
    hosts: Vec<String>,
}

impl<'a> RouteChoice<'a> {
    pub fn new(routes: &'a [RawRoute]) -> Self {
        let routes: Vec<Matcher<'a>> = routes
            .iter()
            .map(|r| Matcher {
                name: &r.name,
                paths: r
                    .paths
                    .iter()
                    .filter_map(|p| PathPattern::parse(p).ok())
                    .collect(),
                methods: r.methods.as_deref(),
                hosts: r.hosts.iter().flatten().map(|h| host_entry(h)).collect(),
            })
            .collect();
        let trie = route_trie(
            routes
                .iter()
                .map(|m| (m.paths.as_slice(), m.hosts.is_empty())),
        );
        RouteChoice { routes, trie }
    }

    /// The name of the route that takes `request`, if any.
    pub fn choose(&self, request: &SampleRequest) -> Option<&'a str> {
        self.trie
            .matches(&request.path)
            .filter_map(|&i| self.routes.get(i))
            .find(|m| {
                takes_method(m.methods, &request.method)
                    && takes_host(&m.hosts, request.host.as_deref())
            })
            .map(|m| m.name)
    }

    /// Requests that together stand for every request these choices could
    /// tell apart: which route takes a request depends only on which of the
    /// routes' patterns, methods and hosts it matches, and each sample is one
    /// of those classes.
    ///
    /// - Paths: each exact pattern's path, and for each prefix pattern a path
    ///   under it that no longer pattern covers (the prefix followed by a
    ///   byte no pattern holds). A path's prefix patterns are all prefixes of
    ///   its longest one, so these are every class.
    /// - Methods: each one a route names, the common ones, and one no route
    ///   names.
    /// - Hosts: none, each exact name, and for each wildcard a name under it
    ///   that no exact entry or longer wildcard holds.
    ///
    /// `keep` picks the paths worth sampling (those a route of interest
    /// takes), which keeps the product small. The samples are made one at a
    /// time, as they are read: their number is the product of paths,
    /// methods and hosts, and a change with many of both would otherwise
    /// hold them all at once.
    pub fn samples(
        choices: &[&RouteChoice<'_>],
        keep: impl Fn(&str) -> bool,
    ) -> impl Iterator<Item = SampleRequest> {
        let all = || choices.iter().flat_map(|c| c.routes.iter());
        // The common methods first, so that examples read naturally.
        let mut methods: Vec<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let named: BTreeSet<&String> = all()
            .flat_map(|m| m.methods.into_iter().flatten())
            .collect();
        for m in named {
            if !methods.contains(m) {
                methods.push(m.clone());
            }
        }
        let mut other = String::from("OTHER");
        while methods.contains(&other) {
            other.push('X');
        }
        methods.push(other);

        let host_entries: BTreeSet<&str> = all()
            .flat_map(|m| m.hosts.iter())
            .map(String::as_str)
            .collect();
        let mut hosts: Vec<Option<String>> = vec![None];
        for h in &host_entries {
            match h.strip_prefix("*.") {
                None => hosts.push(Some((*h).to_owned())),
                Some(suffix) => {
                    let mut label = String::from("sample");
                    let unclaimed = |name: &str| {
                        !host_entries.contains(name)
                            && !host_entries.iter().any(|e| {
                                e.strip_prefix("*.").is_some_and(|s| {
                                    s.len() > suffix.len()
                                        && takes_host(&[(*e).to_owned()], Some(name))
                                })
                            })
                    };
                    while !unclaimed(&format!("{label}.{suffix}")) {
                        label.push('x');
                    }
                    hosts.push(Some(format!("{label}.{suffix}")));
                }
            }
        }

        let mut patterns: Vec<&PathPattern> = all().flat_map(|m| m.paths.iter()).collect();
        patterns.sort_by(|a, b| (a.as_str(), a.is_prefix()).cmp(&(b.as_str(), b.is_prefix())));
        patterns.dedup();
        // A byte no pattern holds; patterns are normalised paths, so a
        // control byte is the usual answer.
        let spare = (1u8..0x20)
            .map(char::from)
            .find(|c| patterns.iter().all(|p| !p.as_str().contains(*c)))
            .unwrap_or('\u{7f}');
        let mut paths: Vec<(String, String)> = Vec::new();
        for p in patterns {
            let (path, shown) = if p.is_prefix() {
                (format!("{}{spare}", p.as_str()), p.to_string())
            } else {
                (p.as_str().to_owned(), p.to_string())
            };
            if keep(&path) {
                paths.push((path, shown));
            }
        }

        paths.into_iter().flat_map(move |(path, shown)| {
            let hosts = hosts.clone();
            methods.clone().into_iter().flat_map(move |method| {
                let (path, shown) = (path.clone(), shown.clone());
                hosts.clone().into_iter().map(move |host| {
                    let on = host
                        .as_ref()
                        .map(|h| format!(" (host {h})"))
                        .unwrap_or_default();
                    SampleRequest {
                        shown: format!("{method} {shown}{on}"),
                        method: method.clone(),
                        path: path.clone(),
                        host,
                    }
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, paths: &[&str], methods: Option<&[&str]>, hosts: &[&str]) -> RawRoute {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        RawRoute {
            name: name.into(),
            paths: strings(paths),
            methods: methods.map(strings),
            hosts: (!hosts.is_empty()).then(|| strings(hosts)),
            ..RawRoute::default()
        }
    }

    fn request(method: &str, path: &str, host: Option<&str>) -> SampleRequest {
        SampleRequest {
            method: method.into(),
            path: path.into(),
            host: host.map(str::to_owned),
            shown: String::new(),
        }
    }

    #[test]
    fn chooses_as_the_router_does() {
        let routes = [
            route("all", &["/v1/*"], None, &[]),
            route("orders", &["/v1/orders*"], None, &[]),
            route("exact", &["/v1/orders"], Some(&["GET"]), &[]),
            route("hosted", &["/v1/orders*"], None, &["*.example"]),
        ];
        let choice = RouteChoice::new(&routes);
        let pick = |m, p, h| choice.choose(&request(m, p, h));
        assert_eq!(pick("GET", "/v1/orders", None), Some("exact"));
        assert_eq!(
            pick("HEAD", "/v1/orders", None),
            Some("exact"),
            "GET takes HEAD"
        );
        assert_eq!(
            pick("POST", "/v1/orders", None),
            Some("orders"),
            "falls through"
        );
        assert_eq!(
            pick("POST", "/v1/orders/1", Some("A.Example")),
            Some("hosted"),
            "host first"
        );
        assert_eq!(
            pick("POST", "/v1/orders/1", Some("example")),
            Some("orders")
        );
        assert_eq!(pick("GET", "/v1/x", None), Some("all"));
        assert_eq!(pick("GET", "/v2", None), None);
    }

    #[test]
    fn samples_reach_every_class() {
        let routes = [
            route("all", &["/v1/*"], None, &[]),
            route(
                "orders",
                &["/v1/orders*"],
                Some(&["PROPFIND"]),
                &["*.example", "*.b.example", "b.example"],
            ),
        ];
        let choice = RouteChoice::new(&routes);
        let samples: Vec<_> = RouteChoice::samples(&[&choice], |_| true).collect();
        let has = |f: &dyn Fn(&SampleRequest) -> bool| samples.iter().any(f);
        assert!(has(
            &|s| s.path == "/v1/\u{1}" && s.shown.starts_with("GET /v1/*")
        ));
        assert!(has(&|s| s.path == "/v1/orders\u{1}"));
        assert!(has(&|s| s.method == "PROPFIND"));
        assert!(has(&|s| s.method == "OTHER"));
        assert!(has(&|s| s.host.is_none()));
        assert!(has(&|s| s.host.as_deref() == Some("b.example")));
        // A name under *.example that *.b.example does not take, and one it does.
        assert!(has(&|s| s.host.as_deref() == Some("sample.example")));
        assert!(has(&|s| s.host.as_deref() == Some("sample.b.example")));
        let kept: Vec<_> =
            RouteChoice::samples(&[&choice], |p| p.starts_with("/v1/orders")).collect();
        assert!(kept.iter().all(|s| s.path.starts_with("/v1/orders")));
        assert!(!kept.is_empty());
    }
}
