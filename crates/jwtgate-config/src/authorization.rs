//! A policy's `authorize` rules and `authorize_default` (SPEC §3.7) and
//! its `anonymous_consumer` (§3.8), compiled: entries parsed like path
//! rules, claim paths split once, the anonymous consumer resolved, every
//! problem located.

use std::sync::Arc;

use jwtgate_core::claims::ClaimPath;
use jwtgate_core::consumer::{Consumer, ConsumerRegistry};
use jwtgate_core::path::RuleEntry;
use jwtgate_core::policy::authorize::{Authorization, AuthorizeRule};

use crate::error::{child, index, Errors};
use crate::raw::RawJwt;

/// `None` when there is nothing to decide: no rules, default allow.
pub(crate) fn authorize(j: &RawJwt, loc: &str, errors: &mut Errors) -> Option<Authorization> {
    let default_allow = match j.authorize_default.as_deref() {
        None | Some("allow") => true,
        Some("deny") => false,
        Some(other) => {
            errors.add(
                &child(loc, "authorize_default"),
                format!("{other:?} is not allow or deny"),
            );
            true
        }
    };
    let raw = j.authorize.as_deref().unwrap_or_default();
    if raw.is_empty() && default_allow {
        return None;
    }
    let mut rules = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let at = index(&child(loc, "authorize"), i);
        if r.matches.is_empty() {
            errors.add(&child(&at, "match"), "needs at least one METHOD_PATH entry");
        }
        let matches = r
            .matches
            .iter()
            .enumerate()
            .filter_map(|(k, m)| {
                RuleEntry::parse(m)
                    .map_err(|e| errors.add(&index(&child(&at, "match"), k), e.to_string()))
                    .ok()
            })
            .collect();
        // An empty condition requires nothing: the rule would become an
        // exception that allows all it matches (an outside audit), while
        // an empty value list is refused.
        for (key, empty) in [
            ("scopes", r.scopes.as_ref().is_some_and(Vec::is_empty)),
            ("any_of", r.any_of.as_ref().is_some_and(|m| m.is_empty())),
            ("all_of", r.all_of.as_ref().is_some_and(|m| m.is_empty())),
        ] {
            if empty {
                errors.add(
                    &child(&at, key),
                    "is empty, which requires nothing: list what the rule requires, or leave \
                     the key out (a rule with only match allows what it matches)",
                );
            }
        }
        let scopes = r.scopes.clone().unwrap_or_default();
        for (k, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.contains(' ') {
                errors.add(
                    &index(&child(&at, "scopes"), k),
                    format!("{s:?} is not one scope (no spaces, not empty)"),
                );
            }
        }
        rules.push(AuthorizeRule {
            index: i,
            matches,
            scopes,
            any_of: claim_values(r.any_of.as_ref(), &child(&at, "any_of"), errors),
            all_of: claim_values(r.all_of.as_ref(), &child(&at, "all_of"), errors),
        });
    }
    Some(Authorization::new(rules, default_allow))
}

fn claim_values(
    map: Option<&std::collections::BTreeMap<String, Vec<String>>>,
    loc: &str,
    errors: &mut Errors,
) -> Vec<(ClaimPath, Vec<String>)> {
    let mut out = Vec::new();
    for (claim, values) in map.into_iter().flatten() {
        let at = child(loc, claim);
        let path = match ClaimPath::parse(claim) {
            Ok(p) => p,
            Err(e) => {
                errors.add(&at, e.to_string());
                continue;
            }
        };
        if values.is_empty() {
            errors.add(&at, "needs at least one value");
        }
        out.push((path, values.clone()));
    }
    out
}

/// The consumer named by `anonymous_consumer`, which must exist. An empty
/// name is none (as Kong's `anonymous: ""`), which `check` warns of.
pub(crate) fn anonymous(
    j: &RawJwt,
    loc: &str,
    consumers: &ConsumerRegistry,
    errors: &mut Errors,
) -> Option<Arc<Consumer>> {
    let name = j.anonymous_consumer.as_deref().filter(|n| !n.is_empty())?;
    let found = consumers.by_username(name).cloned();
    if found.is_none() {
        errors.add(
            &child(loc, "anonymous_consumer"),
            format!(
                "no consumer named {name:?} (the anonymous consumer must be a configured consumer)"
            ),
        );
    }
    found
}
