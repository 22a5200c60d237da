//! Authorization by claims (SPEC §3.7): after a token is authenticated (or
//! the anonymous consumer stands in), the route's `authorize` rules decide
//! whether it may make this request.
//!
//! Compiled at config load into one [`PathRules`] over every rule's
//! `match` entries, so finding the rule is one walk of the same trie, on the
//! same normalised path, as the path rules; the rule that applies is the
//! first in the list whose `match` fits (an exception goes before a stricter
//! rule). A decision reads the payload in place: no allocation; a rule a
//! cached token satisfied once is not checked again (see [`Claims`]).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use crate::claims::{self, ClaimPath, Claims};
use crate::path::{Method, PathRules, RuleEntry};

/// One `authorize` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRule {
    /// Its position in the list (`authorize[i]`).
    pub index: usize,
    pub matches: Vec<RuleEntry>,
    /// Every one required, in `scope` (space-separated) or `scp` (string
    /// or array), read as one set.
    pub scopes: Vec<String>,
    /// Each claim must hold one of its values.
    pub any_of: Vec<(ClaimPath, Vec<String>)>,
    /// Each claim must hold every one of its values.
    pub all_of: Vec<(ClaimPath, Vec<String>)>,
}

impl AuthorizeRule {
    /// A rule with only `match`: it allows what it matches.
    pub fn is_exception(&self) -> bool {
        self.scopes.is_empty() && self.any_of.is_empty() && self.all_of.is_empty()
    }
}

/// A route's compiled `authorize` rules and `authorize_default`.
#[derive(Debug)]
pub struct Authorization {
    rules: Vec<AuthorizeRule>,
    /// Every rule's match entries, flattened; `owner[i]` is the rule of
    /// entry `i`.
    entries: PathRules,
    owner: Vec<usize>,
    default_allow: bool,
    /// This instance's stamp; a rule's stamp adds its position (see
    /// [`Claims`]). Never reused in the process, so a remembered verdict
    /// cannot answer for another rule list. 0: nothing is remembered.
    stamp: u64,
}

/// Bits of a rule stamp that hold the rule's position.
const POSITION_BITS: u32 = 20;

/// The next [`Authorization`]'s number.
static NEXT_STAMP: AtomicU64 = AtomicU64::new(1);

/// A fresh stamp, or 0 once the numbers run out (after 2^44 rule lists).
fn fresh_stamp() -> u64 {
    let n = NEXT_STAMP.fetch_add(1, Ordering::Relaxed);
    if n < 1 << (64 - POSITION_BITS) {
        n << POSITION_BITS
    } else {
        0
    }
}

impl Clone for Authorization {
    /// A copy with a stamp of its own: what a payload remembers about one
    /// list never answers for another, whatever becomes of either.
    fn clone(&self) -> Self {
        Authorization {
            rules: self.rules.clone(),
            entries: self.entries.clone(),
            owner: self.owner.clone(),
            default_allow: self.default_allow,
            stamp: fresh_stamp(),
        }
    }
}

/// What a rule found missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing<'a> {
    Scope(&'a str),
    AnyOf {
        claim: &'a ClaimPath,
        values: &'a [String],
    },
    AllOf {
        claim: &'a ClaimPath,
        value: &'a str,
    },
    /// No rule matched and `authorize_default` is `deny`.
    NoRule,
}

/// The outcome of [`Authorization::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// `rule`: the rule that allowed it; `None` when none matched and the
    /// default allows.
    Allow { rule: Option<&'a AuthorizeRule> },
    Deny {
        rule: Option<&'a AuthorizeRule>,
        missing: Missing<'a>,
    },
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

impl std::fmt::Display for Decision<'_> {
    /// The reason, for the log and `token explain`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = |rule: &Option<&AuthorizeRule>| match rule {
            Some(r) => format!("authorize[{}]", r.index),
            None => "authorize_default".to_owned(),
        };
        match self {
            Decision::Allow { rule } => write!(f, "allowed by {}", which(rule)),
            Decision::Deny { rule, missing } => {
                write!(f, "denied by {}: ", which(rule))?;
                match missing {
                    Missing::Scope(s) => write!(f, "scope {s:?} missing"),
                    Missing::AnyOf { claim, values } => {
                        write!(f, "claim {claim} holds none of {values:?}")
                    }
                    Missing::AllOf { claim, value } => {
                        write!(f, "claim {claim} does not hold {value:?}")
                    }
                    Missing::NoRule => write!(f, "no rule matches and authorize_default is deny"),
                }
            }
        }
    }
}

impl Authorization {
    pub fn new(rules: Vec<AuthorizeRule>, default_allow: bool) -> Self {
        let mut flat = Vec::new();
        let mut owner = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            for entry in &rule.matches {
                flat.push(entry.clone());
                owner.push(i);
            }
        }
        Authorization {
            entries: PathRules::compile(&flat),
            owner,
            rules,
            default_allow,
            stamp: fresh_stamp(),
        }
    }

    pub fn rules(&self) -> &[AuthorizeRule] {
        &self.rules
    }

    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// The first rule, in list order, one of whose `match` entries fits.
    /// The entries are flattened in rule order, so the first entry listed
    /// that fits belongs to that rule.
    pub fn rule_for(&self, method: Method, path: &str) -> Option<&AuthorizeRule> {
        self.position_for(method, path).map(|(_, rule)| rule)
    }

    fn position_for(&self, method: Method, path: &str) -> Option<(usize, &AuthorizeRule)> {
        let entry = self.entries.first_listed(method, path)?;
        let position = *self.owner.get(entry)?;
        Some((position, self.rules.get(position)?))
    }

    /// The stamp naming the rule at `position` in this list, or 0.
    fn rule_stamp(&self, position: usize) -> u64 {
        match u64::try_from(position) {
            Ok(p) if self.stamp != 0 && p < 1 << POSITION_BITS => self.stamp | p,
            _ => 0,
        }
    }

    /// May a request with these claims (`None`: the anonymous consumer)
    /// make `method path`?
    pub fn decide(&self, method: Method, path: &str, claims: Option<&Claims>) -> Decision<'_> {
        let Some((position, rule)) = self.position_for(method, path) else {
            return if self.default_allow {
                Decision::Allow { rule: None }
            } else {
                Decision::Deny {
                    rule: None,
                    missing: Missing::NoRule,
                }
            };
        };
        let stamp = self.rule_stamp(position);
        if claims.is_some_and(|c| c.satisfies(stamp)) {
            return Decision::Allow { rule: Some(rule) };
        }
        match check(rule, claims.map(Claims::map)) {
            None => {
                if let Some(c) = claims {
                    c.remember_satisfied(stamp);
                }
                Decision::Allow { rule: Some(rule) }
            }
            Some(missing) => Decision::Deny {
                rule: Some(rule),
                missing,
            },
        }
    }
}

/// The first thing `rule` finds missing, if any.
fn check<'r>(rule: &'r AuthorizeRule, claims: Option<&Map<String, Value>>) -> Option<Missing<'r>> {
    for scope in &rule.scopes {
        if !claims.is_some_and(|c| has_scope(c, scope)) {
            return Some(Missing::Scope(scope));
        }
    }
    for (claim, wanted) in &rule.any_of {
        let held = claims.and_then(|c| claim.get(c));
        if !claims::values(held).any(|v| wanted.iter().any(|w| w == v)) {
            return Some(Missing::AnyOf {
                claim,
                values: wanted,
            });
        }
    }
    for (claim, wanted) in &rule.all_of {
        let held = claims.and_then(|c| claim.get(c));
        for w in wanted {
            if !claims::values(held).any(|v| v == w) {
                return Some(Missing::AllOf { claim, value: w });
            }
        }
    }
    None
}

/// `scope` (a space-separated string, RFC 8693 §4.2) and `scp` read as one
/// set. Either may also be an array of strings: `scp` is one as Entra ID
/// and Okta send it, and some providers send `scope` so too (beyond SPEC
/// §3.7, which names `scope` a string).
fn has_scope(claims: &Map<String, Value>, wanted: &str) -> bool {
    let holds = |claim: &str| match claims.get(claim) {
        Some(Value::String(s)) => s.split(' ').any(|part| part == wanted),
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(wanted)),
        _ => false,
    };
    holds("scope") || holds("scp")
}

#[cfg(test)]
mod tests;
