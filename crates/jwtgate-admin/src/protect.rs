//! Protected policies (SPEC §3.5), checked on every change, whether it comes
//! from the admin API or from a reload of the file: the old and the new
//! source config are compared route by route (a policy is identified by its
//! route's name).
//!
//! - `undeletable`: the policy must still exist, on a route of that name.
//! - `immutable`: the policy's values must not change, and the requests it
//!   applies to must not shrink (beyond SPEC §3.5): its route's `paths`,
//!   `methods` and `hosts` must not narrow, and no other route may come to
//!   take some of its requests (a more specific path, a host named, an
//!   earlier place in the file). Either would undo the policy for those
//!   requests without touching it. Adding a path, a method or a host is
//!   allowed. The providers it names are part of it: what they trust
//!   cannot change either.
//!
//! Lifting a protection is deliberate and takes its own change: a change
//! that alters ONLY the `protection` flags of a policy is always allowed
//! (so is adding protection). The next change may then edit or delete it.
//! Deleting an immutable policy that is not also undeletable is allowed:
//! deletion is what `undeletable` guards.

use std::collections::BTreeMap;

use jwtgate_config::{
    ObjectId, ObjectKind, RawConfig, RawJwt, RawProvider, RawRoute, RouteChoice, SampleRequest,
};
use jwtgate_core::path::PathPattern;

/// Why a change was refused; the text names the protection.
pub fn check(old: &RawConfig, new: &RawConfig) -> Result<(), String> {
    let refusals: Vec<String> = violations(old, new).into_iter().map(|v| v.why).collect();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(refusals.join("; "))
    }
}

/// A protection a change breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The object to blame: the changed object that breaks it; for a
    /// change of a provider an immutable policy trusts, the policy's route
    /// (the provider is then found among the changes by elimination).
    pub object: ObjectId,
    /// The route whose protected policy it breaks.
    pub guard: String,
    pub why: String,
}

impl Violation {
    fn new(object: ObjectId, guard: &str, why: String) -> Violation {
        Violation {
            object,
            guard: guard.to_owned(),
            why,
        }
    }
}

/// Every protection the change breaks.
pub fn violations(old: &RawConfig, new: &RawConfig) -> Vec<Violation> {
    let mut refusals = Vec::new();
    for route in &old.routes {
        let Some(policy) = &route.jwt else { continue };
        let Some(protection) = policy.protection else {
            continue;
        };
        let next_route = new.routes.iter().find(|r| r.name == route.name);
        if let Some(next_route) = next_route.filter(|n| n.jwt.is_some()) {
            if protection.immutable && narrows(route, next_route) {
                refusals.push(Violation::new(
                    (ObjectKind::Route, route.name.clone()),
                    &route.name,
                    format!(
                        "the jwt policy of route {:?} is protected by protection.immutable: the \
                         requests it applies to (the route's paths, methods and hosts) cannot \
                         narrow; first set protection.immutable to false, in a change of its own",
                        route.name
                    ),
                ));
                continue;
            }
        }
        match next_route.and_then(|r| r.jwt.as_ref()) {
            None if protection.undeletable => refusals.push(Violation::new(
                (ObjectKind::Route, route.name.clone()),
                &route.name,
                format!(
                "the jwt policy of route {:?} is protected by protection.undeletable: it cannot \
                 be deleted (nor its route); first set protection.undeletable to false, in a \
                 change of its own",
                route.name
            ),
            )),
            Some(next) if protection.immutable && !same_values(policy, next) => {
                refusals.push(Violation::new(
                    (ObjectKind::Route, route.name.clone()),
                    &route.name,
                    format!(
                        "the jwt policy of route {:?} is protected by protection.immutable: its \
                     values cannot be changed; first set protection.immutable to false, in a \
                     change of its own",
                        route.name
                    ),
                ))
            }
            _ => {}
        }
        if protection.immutable {
            refusals.extend(trust_changed(route, policy, old, new));
        }
    }
    refusals.extend(taken(old, new));
    refusals
}

/// An immutable policy's providers are part of it: what a provider trusts
/// (its issuer, keys, algorithms, audiences, how stale its keys may be,
/// which claim names the consumer) decides which tokens the policy takes.
/// How often it fetches may change.
fn trust_changed(
    route: &RawRoute,
    policy: &RawJwt,
    old: &RawConfig,
    new: &RawConfig,
) -> Vec<Violation> {
    let trusted = |p: &RawProvider| RawProvider {
        refresh_seconds: None,
        kid_miss_interval_seconds: None,
        fetch_timeout_ms: None,
        ..p.clone()
    };
    let mut refusals = Vec::new();
    for name in policy.providers.iter().flatten() {
        let Some(before) = old.providers.iter().find(|p| &p.name == name) else {
            continue;
        };
        let after = new.providers.iter().find(|p| &p.name == name);
        if after.is_none_or(|after| trusted(after) != trusted(before)) {
            refusals.push(Violation::new(
                (ObjectKind::Route, route.name.clone()),
                &route.name,
                format!(
                    "the jwt policy of route {:?} is protected by protection.immutable: the \
                     provider {name:?} it takes tokens from cannot be changed or deleted (only \
                     refresh_seconds, kid_miss_interval_seconds and fetch_timeout_ms may); \
                     first set protection.immutable to false, in a change of its own",
                    route.name
                ),
            ));
        }
    }
    refusals
}

/// Requests an immutable policy applies to that another route, or a
/// provider's back-channel logout path, would take after the change, each
/// pair once with an example: (the taker, why). Routes that narrowed are
/// left to [`narrows`]'s refusal.
fn taken(old: &RawConfig, new: &RawConfig) -> Vec<Violation> {
    let guarded: Vec<&RawRoute> = old
        .routes
        .iter()
        .filter(|r| {
            r.jwt
                .as_ref()
                .and_then(|j| j.protection)
                .is_some_and(|p| p.immutable)
        })
        .filter(|r| {
            new.routes
                .iter()
                .find(|n| n.name == r.name)
                .is_some_and(|n| n.jwt.is_some() && !narrows(r, n))
        })
        .collect();
    if guarded.is_empty() {
        return Vec::new();
    }
    let patterns: Vec<PathPattern> = guarded
        .iter()
        .flat_map(|r| &r.paths)
        .filter_map(|p| PathPattern::parse(p).ok())
        .collect();
    let before = RouteChoice::new(&old.routes);
    let after = RouteChoice::new(&new.routes);
    let samples = RouteChoice::samples(&[&before, &after], |path| {
        patterns.iter().any(|p| p.matches(path))
    });
    let mut found: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for sample in samples {
        let Some(owner) = before.choose(&sample) else {
            continue;
        };
        if !guarded.iter().any(|r| r.name == owner) {
            continue;
        }
        match after.choose(&sample) {
            Some(taker) if taker != owner => {
                found.entry((owner, taker)).or_insert(sample.shown);
            }
            _ => {}
        }
    }
    let mut refusals: Vec<Violation> = found
        .into_iter()
        .map(|((owner, taker), example)| {
            Violation::new(
                (ObjectKind::Route, taker.to_owned()),
                owner,
                format!(
                    "the jwt policy of route {owner:?} is protected by protection.immutable: \
                     route {taker:?} would take requests it applies to (e.g. {example}); first \
                     set protection.immutable to false, in a change of its own"
                ),
            )
        })
        .collect();
    refusals.extend(taken_by_backchannel(old, new, &before, &guarded));
    refusals
}

/// A provider's `backchannel_logout_path` belongs to the gateway whatever
/// the routes say (SPEC §3.10): every request to it, any method and host,
/// is answered as a back-channel logout. One that comes to name a path an
/// immutable policy applied to takes those requests, as a route would (a
/// protected route's logout path among them: its users' logouts would be
/// refused, their tokens left valid).
fn taken_by_backchannel(
    old: &RawConfig,
    new: &RawConfig,
    before: &RouteChoice<'_>,
    guarded: &[&RawRoute],
) -> Vec<Violation> {
    let path_of = |p: &RawProvider| {
        p.backchannel_logout_path
            .as_deref()
            .filter(|path| !path.is_empty())
            .map(|path| jwtgate_core::path::match_form(path).into_owned())
    };
    let already: Vec<String> = old.providers.iter().filter_map(path_of).collect();
    let added: Vec<(&RawProvider, String)> = new
        .providers
        .iter()
        .filter_map(|p| Some((p, path_of(p).filter(|path| !already.contains(path))?)))
        .collect();
    if added.is_empty() {
        return Vec::new();
    }
    // The methods and hosts that routing tells apart, from the old routes:
    // the same for every path, so those of one sampled path.
    let one_path = std::cell::Cell::new(true);
    let requests: Vec<(String, Option<String>)> =
        RouteChoice::samples(&[before], |_| one_path.replace(false))
            .map(|s| (s.method, s.host))
            .collect();
    let mut refusals = Vec::new();
    for (provider, path) in added {
        let owner = requests.iter().find_map(|(method, host)| {
            let sample = SampleRequest {
                method: method.clone(),
                path: path.clone(),
                host: host.clone(),
                shown: String::new(),
            };
            before
                .choose(&sample)
                .filter(|owner| guarded.iter().any(|r| r.name == *owner))
                .map(|owner| (owner, method))
        });
        if let Some((owner, method)) = owner {
            refusals.push(Violation::new(
                (ObjectKind::Provider, provider.name.clone()),
                owner,
                format!(
                    "the jwt policy of route {owner:?} is protected by protection.immutable: \
                     the backchannel_logout_path of provider {:?} would take requests it \
                     applies to (e.g. {method} {path}), which the gateway answers as \
                     back-channel logouts whatever the routes say; choose another path, or \
                     first set protection.immutable to false, in a change of its own",
                    provider.name
                ),
            ));
        }
    }
    refusals
}

/// Whether `next` leaves out a request `old` takes: one of its paths (a
/// path `next` lists, or one under a prefix of `next`: `/w/*` covers
/// `/w/a` and `/w/a*`), or (a list where `old` had none, or a shorter one)
/// one of its methods or hosts. No `methods` is every method; no `hosts`,
/// or none listed, any host. Another route that comes to take a request
/// is [`taken`]'s to find.
fn narrows(old: &RawRoute, next: &RawRoute) -> bool {
    let prefixes: Vec<PathPattern> = next
        .paths
        .iter()
        .filter_map(|p| PathPattern::parse(p).ok())
        .filter(PathPattern::is_prefix)
        .collect();
    let path_kept = |old: &String| {
        next.paths.contains(old)
            || PathPattern::parse(old)
                .is_ok_and(|o| prefixes.iter().any(|n| o.as_str().starts_with(n.as_str())))
    };
    let covers = |next: &[String], old: &[String]| old.iter().all(|o| next.contains(o));
    let methods = match (&old.methods, &next.methods) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(o), Some(n)) => !covers(n, o),
    };
    let any_host = |h: &Option<Vec<String>>| h.as_ref().is_none_or(Vec::is_empty);
    let hosts = match (any_host(&old.hosts), any_host(&next.hosts)) {
        (_, true) => false,
        (true, false) => true,
        (false, false) => !covers(
            next.hosts.as_deref().unwrap_or_default(),
            old.hosts.as_deref().unwrap_or_default(),
        ),
    };
    !old.paths.iter().all(path_kept) || methods || hosts
}

/// Equal in everything but the protection flags, a setting left out
/// being the value it defaults to (`leeway_seconds: 0` written out is no
/// change).
fn same_values(a: &RawJwt, b: &RawJwt) -> bool {
    let strip = |j: &RawJwt| RawJwt {
        protection: None,
        ..jwtgate_config::jwt_defaults(j)
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwtgate_config::{RawProtection, RawRoute};

    fn config(jwt: Option<RawJwt>) -> RawConfig {
        RawConfig {
            routes: vec![RawRoute {
                name: "orders".into(),
                jwt,
                ..RawRoute::default()
            }],
            ..RawConfig::default()
        }
    }

    fn policy(realm: &str, undeletable: bool, immutable: bool) -> Option<RawJwt> {
        Some(RawJwt {
            realm: Some(realm.into()),
            protection: Some(RawProtection {
                undeletable,
                immutable,
            }),
            ..RawJwt::default()
        })
    }

    #[test]
    fn undeletable_refuses_deleting_the_policy_or_its_route() {
        let old = config(policy("a", true, false));
        let msg = check(&old, &config(None)).unwrap_err();
        assert!(msg.contains("protection.undeletable"), "{msg}");
        assert!(check(&old, &RawConfig::default()).is_err());
        // Changing values is not deleting.
        assert!(check(&old, &config(policy("b", true, false))).is_ok());
    }

    #[test]
    fn immutable_refuses_any_change_of_values() {
        let old = config(policy("a", false, true));
        let msg = check(&old, &config(policy("b", false, true))).unwrap_err();
        assert!(msg.contains("protection.immutable"), "{msg}");
        assert!(check(&old, &config(policy("a", false, true))).is_ok());
        assert!(
            check(&old, &config(None)).is_ok(),
            "deletion is undeletable's job"
        );
    }

    /// A setting written out as the value it defaults to is no change (an
    /// outside audit: `PATCH {"leeway_seconds": 0}` was a 409); another
    /// value still is.
    #[test]
    fn immutable_takes_a_default_written_out_as_no_change() {
        let old = config(policy("jwtgate", false, true));
        let with = |f: &dyn Fn(&mut RawJwt)| {
            let mut next = policy("jwtgate", false, true);
            f(next.as_mut().unwrap());
            config(next)
        };
        let same: [&dyn Fn(&mut RawJwt); 8] = [
            &|j| j.leeway_seconds = Some(0),
            &|j| j.key_claim_name = Some("key".into()),
            &|j| j.header = Some("Authorization".into()),
            &|j| j.required_claims = Some(vec!["exp".into()]),
            &|j| j.consumers = Some(true),
            &|j| j.required_paths = Some(vec![]),
            &|j| j.authorize_default = Some("allow".into()),
            &|j| j.realm = None,
        ];
        for (i, f) in same.iter().enumerate() {
            assert!(check(&old, &with(f)).is_ok(), "{i}");
        }
        let changed: [&dyn Fn(&mut RawJwt); 5] = [
            &|j| j.leeway_seconds = Some(1),
            &|j| j.header = Some("X-Token".into()),
            &|j| j.required_claims = Some(vec![]),
            &|j| j.consumers = Some(false),
            &|j| j.authorize_default = Some("deny".into()),
        ];
        for (i, f) in changed.iter().enumerate() {
            assert!(check(&old, &with(f)).is_err(), "{i}");
        }
    }

    /// Editing the provider an immutable policy takes tokens from changed
    /// what it accepts (an audience dropped let other apps' tokens in).
    #[test]
    fn regression_immutable_covers_the_providers_it_names() {
        let with = |immutable: bool, audiences: &[&str], refresh: Option<u64>| {
            let mut c = config(policy("a", false, immutable));
            if let Some(jwt) = c.routes[0].jwt.as_mut() {
                jwt.providers = Some(vec!["corp".into()]);
            }
            c.providers = vec![
                RawProvider {
                    name: "corp".into(),
                    issuer: "https://idp.example".into(),
                    audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
                    refresh_seconds: refresh,
                    ..RawProvider::default()
                },
                RawProvider {
                    name: "other".into(),
                    issuer: "https://other.example".into(),
                    ..RawProvider::default()
                },
            ];
            c
        };
        let old = with(true, &["orders-api"], None);
        let msg = check(&old, &with(true, &[], None)).unwrap_err();
        assert!(msg.contains("provider \"corp\""), "{msg}");
        let mut gone = old.clone();
        gone.providers.remove(0);
        assert!(check(&old, &gone).is_err(), "deleting it");
        // How often it fetches may change; so may another provider.
        assert!(check(&old, &with(true, &["orders-api"], Some(60))).is_ok());
        let mut other = old.clone();
        other.providers[1].issuer = "https://else.example".into();
        assert!(check(&old, &other).is_ok());
        // Not immutable: anything goes.
        let open = with(false, &["orders-api"], None);
        assert!(check(&open, &with(false, &[], None)).is_ok());
    }

    #[test]
    fn lifting_a_protection_alone_is_allowed_and_unlocks_the_next_change() {
        let old = config(policy("a", true, true));
        let lifted = config(policy("a", false, false));
        assert!(check(&old, &lifted).is_ok());
        assert!(check(&lifted, &config(None)).is_ok());
        // Lifting and changing at once is refused.
        assert!(check(&old, &config(policy("b", false, false))).is_err());
    }

    /// An immutable policy whose route moved to a path nobody calls no
    /// longer guards anything: what it applies to may grow, never shrink.
    #[test]
    fn regression_immutable_also_keeps_the_requests_it_applies_to() {
        let route = |paths: &[&str], methods: Option<&[&str]>, hosts: Option<&[&str]>| {
            let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
            RawConfig {
                routes: vec![RawRoute {
                    name: "orders".into(),
                    paths: strings(paths),
                    methods: methods.map(strings),
                    hosts: hosts.map(strings),
                    jwt: policy("a", false, true),
                    ..RawRoute::default()
                }],
                ..RawConfig::default()
            }
        };
        let (gp, a): (&[&str], &[&str]) = (&["GET", "POST"], &["a.example"]);
        let old = route(&["/v1/*", "/v2/*"], Some(gp), Some(a));
        for (narrower, what) in [
            (route(&["/nowhere-ever"], Some(gp), Some(a)), "paths"),
            (route(&["/v1/*"], Some(gp), Some(a)), "a path dropped"),
            (
                route(&["/v1/*", "/v2/*"], Some(&[]), Some(a)),
                "methods: []",
            ),
            (
                route(&["/v1/*", "/v2/*"], Some(&["GET"]), Some(a)),
                "a method dropped",
            ),
            (
                route(&["/v1/*", "/v2/*"], Some(gp), Some(&["b.example"])),
                "hosts",
            ),
        ] {
            let msg = check(&old, &narrower).expect_err(what);
            assert!(
                msg.contains("protection.immutable") && msg.contains("cannot narrow"),
                "{what}: {msg}"
            );
        }
        let ab: &[&str] = &["a.example", "b.example"];
        let exact = route(&["/v1/a", "/v2/b*"], Some(gp), Some(a));
        for (wider, what) in [
            (
                route(&["/v1/*", "/v2/*"], Some(gp), Some(a)),
                "under prefixes",
            ),
            (route(&["/*"], Some(gp), Some(a)), "under the root prefix"),
        ] {
            assert_eq!(check(&exact, &wider), Ok(()), "{what}");
        }
        for (narrower, what) in [
            (
                route(&["/v1/a/*", "/v2/b*"], Some(gp), Some(a)),
                "an exact path under its own prefix",
            ),
            (
                route(&["/v1/a", "/v2/bc*"], Some(gp), Some(a)),
                "a longer prefix",
            ),
        ] {
            let msg = check(&exact, &narrower).expect_err(what);
            assert!(msg.contains("cannot narrow"), "{what}: {msg}");
        }
        for (wider, what) in [
            (
                route(&["/v2/*", "/v1/*"], Some(&["POST", "GET"]), Some(a)),
                "reordered",
            ),
            (
                route(&["/v1/*", "/v2/*", "/v3/*"], Some(gp), Some(a)),
                "a path added",
            ),
            (route(&["/v1/*", "/v2/*"], None, Some(a)), "every method"),
            (route(&["/v1/*", "/v2/*"], Some(gp), Some(&[])), "any host"),
            (
                route(&["/v1/*", "/v2/*"], Some(gp), Some(ab)),
                "a host added",
            ),
        ] {
            assert!(check(&old, &wider).is_ok(), "{what}");
        }
        // From every method to a list narrows; so does any host to a list.
        let open = route(&["/v1/*"], None, None);
        assert!(check(&open, &route(&["/v1/*"], Some(&["GET"]), None)).is_err());
        assert!(check(&open, &route(&["/v1/*"], None, Some(a))).is_err());
        // Not immutable: the route may move.
        let mut free = old.clone();
        free.routes[0].jwt = policy("a", true, false);
        let mut moved = route(&["/elsewhere/*"], None, None);
        moved.routes[0].jwt = policy("a", true, false);
        assert!(check(&free, &moved).is_ok());
    }

    /// A more specific open route ahead of an immutable policy's route took
    /// its requests with the policy untouched: the other half of "the
    /// requests it applies to cannot narrow".
    #[test]
    fn regression_immutable_keeps_its_requests_from_other_routes() {
        let route = |name: &str, paths: &[&str], methods: Option<&[&str]>, hosts: &[&str]| {
            let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
            RawRoute {
                name: name.into(),
                paths: strings(paths),
                methods: methods.map(strings),
                hosts: (!hosts.is_empty()).then(|| strings(hosts)),
                ..RawRoute::default()
            }
        };
        let locked = || {
            let mut r = route("orders", &["/v1/*"], Some(&["GET", "POST"]), &[]);
            r.jwt = policy("a", false, true);
            r
        };
        let with = |others: Vec<RawRoute>, locked_first: bool| {
            let mut routes = others;
            if locked_first {
                routes.insert(0, locked());
            } else {
                routes.push(locked());
            }
            RawConfig {
                routes,
                ..RawConfig::default()
            }
        };
        let old = with(vec![route("health", &["/health"], None, &[])], true);
        for (taker, example) in [
            (route("open", &["/v1/orders"], None, &[]), "GET /v1/orders"),
            (
                route("open", &["/v1/orders/*"], Some(&["POST"]), &[]),
                "POST /v1/orders/*",
            ),
            (
                route("open", &["/v1/*"], None, &["a.example"]),
                "(host a.example)",
            ),
            (route("open", &["/v1/x"], Some(&["GET"]), &[]), "GET /v1/x"),
        ] {
            let mut next = old.clone();
            next.routes.push(taker);
            let msg = check(&old, &next).expect_err(example);
            assert!(
                msg.contains("protection.immutable")
                    && msg.contains("route \"open\" would take requests")
                    && msg.contains(example),
                "{example}: {msg}"
            );
            assert_eq!(
                violations(&old, &next)[0].object,
                (ObjectKind::Route, "open".to_owned()),
                "blamed on the taker"
            );
        }
        // The same pattern earlier in the file takes them too; later, not.
        let same = route("open", &["/v1/*"], None, &[]);
        assert!(check(&old, &with(vec![same.clone()], false)).is_err());
        assert!(check(&old, &with(vec![same], true)).is_ok());
        // Routes that take none of its requests are free to come and go.
        for free in [
            route("open", &["/v2/*"], None, &[]),
            route("open", &["/v1/orders"], Some(&["DELETE"]), &[]),
            route("open", &["/v*"], None, &[]),
        ] {
            let mut next = old.clone();
            next.routes.push(free.clone());
            assert!(check(&old, &next).is_ok(), "{free:?}");
        }
        let mut next = old.clone();
        next.routes.retain(|r| r.name != "health");
        assert!(check(&old, &next).is_ok(), "deleting another route");
        // Requests another route already took are not the policy's.
        let old = with(vec![route("public", &["/v1/public/*"], None, &[])], true);
        let mut next = old.clone();
        next.routes
            .push(route("open", &["/v1/public/x"], None, &[]));
        assert!(check(&old, &next).is_ok());
        // Lifting immutable first allows it.
        let mut lifted = old.clone();
        lifted.routes[0].jwt = policy("a", false, false);
        let mut next = lifted.clone();
        next.routes.push(route("open", &["/v1/orders"], None, &[]));
        assert!(check(&lifted, &next).is_ok());
    }

    /// Found by an outside attack: a provider's back-channel logout path,
    /// answered by the gateway whatever the routes say, took a protected
    /// route's logout path (its users' logouts refused, their tokens left
    /// valid) where a route doing the same was refused.
    #[test]
    fn regression_a_backchannel_logout_path_cannot_take_an_immutable_policys_requests() {
        let mut locked = RawRoute {
            name: "app".into(),
            paths: vec!["/v1/*".into()],
            hosts: Some(vec!["app.example".into()]),
            ..RawRoute::default()
        };
        locked.jwt = policy("a", false, true);
        let public = RawRoute {
            name: "public".into(),
            paths: vec!["/v1/public/*".into()],
            ..RawRoute::default()
        };
        let provider = |name: &str, path: &str| RawProvider {
            name: name.into(),
            backchannel_logout_path: Some(path.into()),
            ..RawProvider::default()
        };
        let old = RawConfig {
            routes: vec![locked, public],
            providers: vec![provider("kept", "/v1/bcl-kept")],
            ..RawConfig::default()
        };
        let with = |p: RawProvider| {
            let mut next = old.clone();
            next.providers.push(p);
            next
        };
        let next = with(provider("idp", "/v1/logout"));
        let msg = check(&old, &next).expect_err("takes /v1/logout from the policy");
        assert!(
            msg.contains("protection.immutable")
                && msg.contains("backchannel_logout_path of provider \"idp\"")
                && msg.contains("/v1/logout"),
            "{msg}"
        );
        assert_eq!(
            violations(&old, &next)[0].object,
            (ObjectKind::Provider, "idp".to_owned()),
            "blamed on the provider"
        );
        // Paths the policy does not apply to are free: elsewhere, one another
        // route already took, and one that was a back-channel path before.
        for free in ["/oidc/bcl", "/v1/public/bcl", "/v1/bcl-kept"] {
            assert!(check(&old, &with(provider("idp", free))).is_ok(), "{free}");
        }
        // Moving an existing provider's path onto the policy is refused too.
        let mut moved = old.clone();
        moved.providers[0].backchannel_logout_path = Some("/v1/orders".into());
        assert!(check(&old, &moved).is_err());
        // Lifting immutable first allows it.
        let mut lifted = old.clone();
        lifted.routes[0].jwt = policy("a", false, false);
        let mut next = lifted.clone();
        next.providers.push(provider("idp", "/v1/logout"));
        assert!(check(&lifted, &next).is_ok());
    }
}
