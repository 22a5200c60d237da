//! Protected policies (SPEC §3.5), checked on every change, whether it comes
//! from the admin API or from a reload of the file: the old and the new
//! source config are compared route by route (a policy is identified by its
//! route's name).
//!
//! - `undeletable`: the policy must still exist, on a route of that name.
//! - `immutable`: the policy's values must not change, and the requests it
//!   applies to (its route's `paths`, `methods` and `hosts`) must not
//!   narrow: moving the route to a path nobody calls, then adding an open
//!   one where it was, would undo the policy without touching it (beyond
//!   SPEC §3.5). Adding a path, a method or a host is allowed.
//!
//! Lifting a protection is deliberate and takes its own change: a change
//! that alters ONLY the `protection` flags of a policy is always allowed
//! (so is adding protection). The next change may then edit or delete it.
//! Deleting an immutable policy that is not also undeletable is allowed:
//! deletion is what `undeletable` guards.

use jwtgate_config::{RawConfig, RawJwt, RawRoute};

/// Why a change was refused; the text names the protection.
pub fn check(old: &RawConfig, new: &RawConfig) -> Result<(), String> {
    let refusals: Vec<String> = violations(old, new)
        .into_iter()
        .map(|(_, why)| why)
        .collect();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(refusals.join("; "))
    }
}

/// Every protection the change breaks: (route name, why).
pub fn violations(old: &RawConfig, new: &RawConfig) -> Vec<(String, String)> {
    let mut refusals = Vec::new();
    for route in &old.routes {
        let Some(policy) = &route.jwt else { continue };
        let Some(protection) = policy.protection else {
            continue;
        };
        let next_route = new.routes.iter().find(|r| r.name == route.name);
        if let Some(next_route) = next_route.filter(|n| n.jwt.is_some()) {
            if protection.immutable && narrows(route, next_route) {
                refusals.push((
                    route.name.clone(),
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
            None if protection.undeletable => refusals.push((
                route.name.clone(),
                format!(
                "the jwt policy of route {:?} is protected by protection.undeletable: it cannot \
                 be deleted (nor its route); first set protection.undeletable to false, in a \
                 change of its own",
                route.name
            ),
            )),
            Some(next) if protection.immutable && !same_values(policy, next) => refusals.push((
                route.name.clone(),
                format!(
                    "the jwt policy of route {:?} is protected by protection.immutable: its \
                     values cannot be changed; first set protection.immutable to false, in a \
                     change of its own",
                    route.name
                ),
            )),
            _ => {}
        }
    }
    refusals
}

/// Whether `next` leaves out a request `old` takes: one of its paths, or
/// (a list where `old` had none, or a shorter one) one of its methods or
/// hosts. No `methods` is every method; no `hosts`, or none listed, any host.
fn narrows(old: &RawRoute, next: &RawRoute) -> bool {
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
    !covers(&next.paths, &old.paths) || methods || hosts
}

/// Equal in everything but the protection flags.
fn same_values(a: &RawJwt, b: &RawJwt) -> bool {
    let strip = |j: &RawJwt| RawJwt {
        protection: None,
        ..j.clone()
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
}
