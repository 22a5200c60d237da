//! Each step of `authenticate_traced` in words: what was looked for, what
//! was found, and the hint that fixes the usual mistakes. Never a key.

use jwtgate_core::jwt::jwk::Jwk;
use jwtgate_core::policy::{AuthContext, JwtPolicy, Step};
use serde_json::{Map, Value};

pub(super) fn step(
    step: Step<'_>,
    policy: &JwtPolicy,
    ctx: &AuthContext<'_>,
    now: i64,
    out: &mut Vec<(&'static str, String)>,
) {
    let mut say = |label: &'static str, text: String| out.push((label, text));
    match step {
        Step::Parsed(t) => {
            say("header", pretty(t.header()));
            say("payload", pretty(t.claims()));
            let (in_header, in_payload) = t.repeated_members();
            for (part, names) in [("header", in_header), ("payload", in_payload)] {
                if !names.is_empty() {
                    say(
                        "repeated",
                        format!(
                            "the {part} names {} more than once: the last of each is the one read \
                             (RFC 7515 §5.2), and shown above",
                            names
                                .iter()
                                .map(|n| format!("{n:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            }
            for (name, label) in [("exp", "exp"), ("nbf", "nbf"), ("iat", "iat")] {
                if let Some(Value::Number(n)) = t.claims().get(name) {
                    if let Some(at) = n.as_i64() {
                        let d = at - now;
                        let when = if d >= 0 {
                            format!("in {d}s")
                        } else {
                            format!("{}s ago", -d)
                        };
                        say(label, format!("{at} ({when})"));
                    }
                }
            }
        }
        Step::Issuer {
            iss,
            provider,
            listed,
        } => {
            let iss_text = iss.map_or("(no iss claim)".to_owned(), |i| format!("{i:?}"));
            let text = match (provider, listed) {
                (Some(p), true) => format!(
                    "{iss_text}: provider {:?}, listed on this route: its keys verify the token",
                    p.name
                ),
                (Some(p), false) => format!(
                    "{iss_text}: provider {:?}, which this route does NOT list (jwt.providers: {})",
                    p.name,
                    listed_names(policy, ctx)
                ),
                (None, _) if policy.consumers => format!(
                    "{iss_text}: no provider has this issuer; the consumer-key way applies"
                ),
                (None, _) => format!(
                    "{iss_text}: no provider this route lists has this issuer, and the route takes no consumer tokens (consumers: false; jwt.providers: {})",
                    listed_names(policy, ctx)
                ),
            };
            say("issuer", text);
            if provider.is_none() {
                // The usual cause: the issuer written slightly differently.
                if let Some(iss) = iss {
                    for p in ctx.providers.iter() {
                        let near = p.issuer.eq_ignore_ascii_case(iss)
                            || p.issuer.trim_end_matches('/') == iss.trim_end_matches('/');
                        if near {
                            say(
                                "",
                                format!(
                                    "hint: provider {:?} has issuer {:?}; issuers must be equal exactly",
                                    p.name, p.issuer
                                ),
                            );
                        }
                    }
                }
            }
        }
        Step::KeyClaim {
            claim,
            value,
            claims,
        } => {
            say("key claim", format!("looked for {claim:?} (key_claim_name)"));
            let names: Vec<&str> = claims.keys().map(String::as_str).collect();
            match value {
                Some(Value::String(s)) => {
                    say("", format!("found {claim:?} = {s:?}"));
                    return;
                }
                Some(other) => say(
                    "",
                    format!(
                        "{claim:?} is present but is {}, not a string",
                        kind(other)
                    ),
                ),
                None => say("", format!("missing: the token has no {claim:?} claim")),
            }
            say(
                "",
                format!(
                    "claims in the token: {}",
                    if names.is_empty() {
                        "(none)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            );
            // The usual cause of "missing user key in JWT token": the issuer
            // puts the consumer key under another claim name.
            for (name, v) in claims {
                if let Value::String(s) = v {
                    if name != claim && ctx.consumers.get(s).is_some() {
                        say("", format!("hint: claim {name:?} holds the key of a configured consumer; set `key_claim_name: {name}` on the route's jwt policy"));
                    }
                }
            }
        }
        Step::Consumer { key, consumer } => match consumer {
            Some((c, credential)) => say(
                "consumer",
                format!(
                    "{:?} (key {key:?}, algorithm {})",
                    c.username,
                    credential.algorithm()
                ),
            ),
            None => say(
                "consumer",
                format!(
                    "no consumer has key {key:?} ({} consumer(s) with a credential)",
                    ctx.consumers
                        .iter()
                        .filter(|c| c.credential.is_some())
                        .count()
                ),
            ),
        },
        Step::Algorithm { token, expected } => {
            let verdict = if token == expected {
                "match"
            } else {
                "MISMATCH: the consumer's algorithm is pinned"
            };
            say(
                "algorithm",
                format!("token says {token:?}, consumer uses {expected}: {verdict}"),
            );
        }
        Step::ProviderAlgorithm {
            token,
            provider,
            allowed,
        } => {
            let list: Vec<&str> = provider.algorithms.iter().map(|a| a.as_str()).collect();
            let verdict = if allowed {
                "allowed"
            } else {
                "NOT ALLOWED: the provider's algorithms are pinned"
            };
            say(
                "algorithm",
                format!(
                    "token says {token:?}, provider {:?} allows {}: {verdict}",
                    provider.name,
                    list.join(", ")
                ),
            );
        }
        Step::Key {
            provider,
            kid,
            keys,
            now,
            result,
        } => {
            match keys {
                Some(k) => say(
                    "key set",
                    match k.max_stale {
                        None => format!(
                            "{} key(s) from the file {} (jwks_file: reloaded with the config)",
                            k.set.len(),
                            k.source
                        ),
                        Some(max) => format!(
                            "{} key(s) from {}, fetched {}s ago ({})",
                            k.set.len(),
                            jwtgate_core::redact::url_for_display(&k.source),
                            k.age(now),
                            if k.usable_at(now) {
                                format!("usable up to {max}s after the fetch")
                            } else {
                                format!("STALE: older than max_stale_seconds {max}, not used")
                            }
                        ),
                    },
                ),
                None => say(
                    "key set",
                    format!(
                        "none: provider {:?}'s keys have not been fetched (is the IdP reachable?)",
                        provider.name
                    ),
                ),
            }
            let kid_text = match kid {
                None => "the token has no kid".to_owned(),
                Some(Value::String(k)) => format!("kid {k:?}"),
                Some(other) => format!("kid {other} (not a string)"),
            };
            match result {
                Ok(jwk) => say("key", format!("{kid_text}: {}", key_text(jwk))),
                Err(e) => {
                    say("key", format!("{kid_text}: {e}"));
                    if let Some(k) = keys {
                        let kids: Vec<String> = k
                            .set
                            .keys()
                            .iter()
                            .map(|j| {
                                format!(
                                    "{} ({})",
                                    j.kid.as_deref().unwrap_or("no kid"),
                                    j.kind.describe()
                                )
                            })
                            .collect();
                        say("", format!("keys in the set: {}", kids.join(", ")));
                        for s in k.set.skipped() {
                            say(
                                "",
                                format!(
                                    "skipped key #{} {}: {}",
                                    s.index,
                                    s.kid.as_deref().unwrap_or("(no kid)"),
                                    s.reason
                                ),
                            );
                        }
                    }
                }
            }
        }
        Step::Signature { valid, twin } => say(
            "signature",
            if let Some(jwk) = twin {
                format!(
                    "valid, by another key under the same kid: {}",
                    key_text(jwk)
                )
            } else if valid {
                "valid".to_owned()
            } else {
                "INVALID (wrong key, or the token was altered)".to_owned()
            },
        ),
        Step::Claims { now, result } => {
            say(
                "time",
                format!("now {now}, leeway {}s", policy.leeway_seconds),
            );
            say(
                "claims",
                match result {
                    Ok(()) => "ok (required claims present, exp/nbf within leeway)".to_owned(),
                    Err(e) => format!("FAILED: {e}"),
                },
            );
        }
        Step::Audience {
            expected,
            aud,
            result,
        } => {
            let text = if expected.is_empty() {
                "not checked (no audiences configured)".to_owned()
            } else {
                let source = if policy.audiences.is_empty() {
                    "provider"
                } else {
                    "route"
                };
                let found = aud.map_or("(no aud claim)".to_owned(), Value::to_string);
                match result {
                    Ok(()) => format!("aud {found} contains one of the {source}'s audiences {expected:?}: ok"),
                    Err(e) => format!("FAILED: {e} (the {source}'s audiences)"),
                }
            };
            say("audience", text);
        }
        Step::ProviderConsumer {
            claim,
            value,
            consumer,
        } => say(
            "consumer",
            match (value, consumer) {
                (_, Some(c)) => format!(
                    "claim {claim:?} (consumer_claim) names consumer {:?}: its identity headers are sent",
                    c.username
                ),
                (Some(v), None) => format!(
                    "claim {claim:?} (consumer_claim) = {v}, which names no consumer: accepted without X-Consumer-Username"
                ),
                (None, None) => format!(
                    "the token has no {claim:?} claim (consumer_claim): accepted without X-Consumer-Username"
                ),
            },
        ),
    }
}

fn listed_names(policy: &JwtPolicy, ctx: &AuthContext<'_>) -> String {
    let names: Vec<&str> = policy
        .providers
        .iter()
        .filter_map(|&i| ctx.providers.get(i).map(|p| p.name.as_str()))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        format!("[{}]", names.join(", "))
    }
}

fn pretty(v: &Map<String, Value>) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A key as `explain` names it: its kind, and its own `alg` if it has one.
fn key_text(jwk: &Jwk) -> String {
    format!(
        "{} key{}",
        jwk.kind.describe(),
        jwk.alg.map_or(String::new(), |a| format!(" (alg {a})"))
    )
}
