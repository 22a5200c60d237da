//! Protected policies (SPEC §3.5), checked on every change, whether it comes
//! from the admin API or from a reload of the file: the old and the new
//! source config are compared route by route (a policy is identified by its
//! route's name).
//!
//! - `undeletable`: the policy must still exist, on a route of that name.
//! - `immutable`: the policy's values must not change.
//!
//! Lifting a protection is deliberate and takes its own change: a change
//! that alters ONLY the `protection` flags of a policy is always allowed
//! (so is adding protection). The next change may then edit or delete it.
//! Deleting an immutable policy that is not also undeletable is allowed:
//! deletion is what `undeletable` guards.

use jwtgate_config::{RawConfig, RawJwt};

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
        let next = new
            .routes
            .iter()
            .find(|r| r.name == route.name)
            .and_then(|r| r.jwt.as_ref());
        match next {
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
}
