//! `jwtgate token explain`: what the gateway would do with a token on a
//! request, step by step, and why. It drives the same code as the data plane
//! (path normalisation, the router, `authenticate_traced`), so the report
//! cannot drift from what the gateway does. It never prints key material.

use std::fmt::Write as _;
use std::io::Read as _;
use std::process::ExitCode;

use jwtgate_config::{load_file, Config};
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::consumer::ConsumerRegistry;
use jwtgate_core::path::{normalize, Method};
use jwtgate_core::policy::{authenticate_traced, AuthError, JwtPolicy, PathScope, Step};
use jwtgate_proxy::router::Router;
use serde_json::Value;

use crate::cli::ExplainArgs;

pub fn explain(args: &ExplainArgs) -> ExitCode {
    let config = match load_file(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid configuration:\n{e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let token = if args.token == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("cannot read the token from stdin: {e}");
            return ExitCode::from(2);
        }
        s.trim().to_owned()
    } else {
        args.token.trim().to_owned()
    };
    let mut out = String::new();
    let verdict = match report(&config, args, &token, &mut out) {
        Ok(v) => v,
        Err(usage) => {
            eprintln!("jwtgate token explain: {usage}");
            return ExitCode::from(2);
        }
    };
    print!("{out}");
    match verdict {
        Verdict::Accepted => ExitCode::SUCCESS,
        Verdict::Refused => ExitCode::from(1),
        Verdict::Undetermined => ExitCode::from(3),
    }
}

/// What the gateway would do. `Undetermined`: everything checked out but the
/// revocation store could not be read (exit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused,
    Undetermined,
}

/// Writes the report and returns the verdict.
fn report(
    config: &Config,
    args: &ExplainArgs,
    token: &str,
    out: &mut String,
) -> Result<Verdict, String> {
    let router = Router::new(&config.routes, config.client_body_timeout);
    let (method, raw_path) = match &args.request {
        Some(r) => {
            let (m, p) = r
                .trim()
                .split_once(' ')
                .ok_or("--request must look like \"GET /path\"")?;
            (m.trim().to_owned(), Some(p.trim().to_owned()))
        }
        None => ("GET".to_owned(), None),
    };

    // Request and path normalisation, as the data plane does it.
    let path = match &raw_path {
        Some(p) => {
            let p = p.split('?').next().unwrap_or(p);
            match normalize(p) {
                Ok(n) => {
                    let _ = writeln!(out, "request:    {method} {p}");
                    let _ = writeln!(
                        out,
                        "normalised: {n}{}",
                        if n == p { " (unchanged)" } else { "" }
                    );
                    Some(n.into_owned())
                }
                Err(e) => {
                    let _ = writeln!(out, "request:    {method} {p}");
                    let _ = writeln!(
                        out,
                        "path:       invalid ({}) -> 400 {{\"message\":\"invalid request path\"}}",
                        e.reason
                    );
                    let _ = writeln!(out, "\nverdict:    REFUSED (400)");
                    return Ok(Verdict::Refused);
                }
            }
        }
        None => None,
    };

    // Route.
    let route = match (&args.route, &path) {
        (Some(name), _) => router
            .by_name(name)
            .ok_or_else(|| format!("no route named {name:?}"))?,
        (None, Some(p)) => match router.find(p, &method, None) {
            Some(r) => r,
            None => {
                let _ = writeln!(out, "route:      none matches {method} {p} -> 404");
                let _ = writeln!(out, "\nverdict:    REFUSED (404)");
                return Ok(Verdict::Refused);
            }
        },
        (None, None) => config
            .routes
            .iter()
            .find(|r| r.jwt.is_some())
            .and_then(|r| router.by_name(&r.name))
            .ok_or("no route has a jwt policy; pass --route")?,
    };
    let _ = writeln!(
        out,
        "route:      {}{}",
        route.route.name,
        if args.route.is_none() && path.is_none() {
            " (first route with a jwt policy; use --route or --request to choose)"
        } else {
            ""
        }
    );
    let Some(policy) = &route.route.jwt else {
        let _ = writeln!(out, "policy:     none: the route does not authenticate");
        let _ = writeln!(
            out,
            "\nverdict:    ACCEPTED (no authentication on this route)"
        );
        return Ok(Verdict::Accepted);
    };

    // Path rules.
    if let Some(p) = &path {
        let req = policy.requirement(Method::from_bytes(method.as_bytes()), p);
        let mode = match &policy.scope {
            PathScope::All => "every request needs a token (no path lists)",
            PathScope::Required(_) => "required_paths (only listed requests need a token)",
            PathScope::NotRequired(_) => {
                "not_required_paths (listed requests pass without a token)"
            }
        };
        let _ = writeln!(out, "path rules: {mode}");
        match req.rule {
            Some(rule) => {
                let _ = writeln!(out, "rule:       {rule} matched");
            }
            None if !matches!(policy.scope, PathScope::All) => {
                let _ = writeln!(out, "rule:       no entry matched");
            }
            None => {}
        }
        if req.logout {
            let _ = writeln!(
                out,
                "logout:     this is the route's logout request; a valid token is always required"
            );
        }
        if !req.token_required {
            let _ = writeln!(out, "token:      not required here: the token is not validated, identity headers are still stripped");
            let _ = writeln!(out, "\nverdict:    ACCEPTED (no token needed)");
            return Ok(Verdict::Accepted);
        }
        let _ = writeln!(out, "token:      required");
    }

    Ok(explain_token(config, policy, token, out))
}

fn explain_token(config: &Config, policy: &JwtPolicy, token: &str, out: &mut String) -> Verdict {
    let consumers: &ConsumerRegistry = &config.consumers;
    let clock = SystemClock;
    let mut steps = String::new();
    let result = authenticate_traced(policy, consumers, token, &clock, &mut |step| {
        describe(step, policy, consumers, &mut steps)
    });
    out.push_str(&steps);
    match result {
        Ok(auth) => match revocation(config, token) {
            Revocation::Revoked(until) => {
                let _ = writeln!(
                    out,
                    "revocation: REVOKED (logged out; blacklisted until {until})"
                );
                let _ = writeln!(
                    out,
                    "\nverdict:    REFUSED: 401 {:?}",
                    AuthError::Revoked.public_message()
                );
                Verdict::Refused
            }
            Revocation::NotRevoked(kind) => {
                let _ = writeln!(out, "revocation: not revoked (checked in the {kind} store)");
                let _ = writeln!(
                    out,
                    "\nverdict:    ACCEPTED as consumer {:?}",
                    auth.consumer.username
                );
                Verdict::Accepted
            }
            Revocation::Unknown(why) => {
                // Never call a token accepted when it may have been logged out.
                let _ = writeln!(out, "revocation: NOT CHECKED: {why}");
                let _ = writeln!(
                    out,
                    "\nverdict:    UNDETERMINED: valid for consumer {:?} unless it was logged out; the store could not be read",
                    auth.consumer.username
                );
                Verdict::Undetermined
            }
        },
        Err(e) => {
            if let AuthError::Malformed(detail) = &e {
                let _ = writeln!(out, "parse:      {detail}");
            }
            let _ = writeln!(out, "\nverdict:    REFUSED: 401 {:?}", e.public_message());
            let _ = writeln!(out, "reason:     {e}");
            Verdict::Refused
        }
    }
}

fn pretty(v: &serde_json::Map<String, Value>) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_default()
        .replace('\n', "\n            ")
}

fn describe(step: Step<'_>, policy: &JwtPolicy, consumers: &ConsumerRegistry, out: &mut String) {
    match step {
        Step::Parsed(t) => {
            let _ = writeln!(out, "header:     {}", pretty(t.header()));
            let _ = writeln!(out, "payload:    {}", pretty(t.claims()));
            let now = SystemClock.now_unix();
            for name in ["exp", "nbf", "iat"] {
                if let Some(Value::Number(n)) = t.claims().get(name) {
                    if let Some(at) = n.as_i64() {
                        let d = at - now;
                        let when = if d >= 0 {
                            format!("in {d}s")
                        } else {
                            format!("{}s ago", -d)
                        };
                        let _ = writeln!(out, "{name}:        {at} ({when})");
                    }
                }
            }
        }
        Step::KeyClaim {
            claim,
            value,
            claims,
        } => {
            let _ = writeln!(out, "key claim:  looked for {claim:?} (key_claim_name)");
            let names: Vec<&str> = claims.keys().map(String::as_str).collect();
            match value {
                Some(Value::String(s)) => {
                    let _ = writeln!(out, "            found {claim:?} = {s:?}");
                    return;
                }
                Some(other) => {
                    let _ = writeln!(
                        out,
                        "            {claim:?} is present but is {}, not a string",
                        kind(other)
                    );
                }
                None => {
                    let _ = writeln!(out, "            missing: the token has no {claim:?} claim");
                }
            }
            let _ = writeln!(
                out,
                "            claims in the token: {}",
                if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                }
            );
            // The usual cause of "missing user key in JWT token": the issuer
            // puts the consumer key under another claim name.
            for (name, v) in claims {
                if let Value::String(s) = v {
                    if name != claim && consumers.get(s).is_some() {
                        let _ = writeln!(out, "            hint: claim {name:?} holds the key of a configured consumer; set `key_claim_name: {name}` on the route's jwt policy");
                    }
                }
            }
        }
        Step::Consumer { key, consumer } => match consumer {
            Some(c) => {
                let _ = writeln!(
                    out,
                    "consumer:   {:?} (key {key:?}, algorithm {})",
                    c.username,
                    c.algorithm()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "consumer:   no consumer has key {key:?} ({} consumer(s) configured)",
                    consumers.len()
                );
            }
        },
        Step::Algorithm { token, expected } => {
            let verdict = if token == expected {
                "match"
            } else {
                "MISMATCH: the consumer's algorithm is pinned"
            };
            let _ = writeln!(
                out,
                "algorithm:  token says {token:?}, consumer uses {expected}: {verdict}"
            );
        }
        Step::Signature { valid } => {
            let _ = writeln!(
                out,
                "signature:  {}",
                if valid {
                    "valid"
                } else {
                    "INVALID (wrong key, or the token was altered)"
                }
            );
        }
        Step::Claims { now, result } => {
            let _ = writeln!(
                out,
                "time:       now {now}, leeway {}s",
                policy.leeway_seconds
            );
            let _ = writeln!(
                out,
                "claims:     {}",
                match result {
                    Ok(()) => "ok (required claims present, exp/nbf within leeway)".to_owned(),
                    Err(e) => format!("FAILED: {e}"),
                }
            );
        }
    }
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

enum Revocation {
    Revoked(i64),
    NotRevoked(&'static str),
    Unknown(String),
}

/// Asks the configured store directly whether the token was logged out.
/// An embedded store held open by a running gateway cannot be read.
fn revocation(config: &Config, token: &str) -> Revocation {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Revocation::Unknown(format!("no async runtime: {e}")),
    };
    let Ok(parsed) = jwtgate_core::jwt::Token::parse(token) else {
        return Revocation::Unknown("the token does not parse".into());
    };
    let key = jwtgate_core::jwt::RevocationKey::of(&parsed);
    if let jwtgate_config::StoreConfig::Embedded { path } = &config.store {
        // Nothing was ever revoked there; do not create a store to find out.
        if !jwtgate_store::embedded::EmbeddedStore::exists(path) {
            return Revocation::NotRevoked("embedded (empty)");
        }
    }
    runtime.block_on(async {
        let store = match jwtgate_store::open(&config.store) {
            Ok(s) => s,
            Err(e) => return Revocation::Unknown(format!("cannot open the revocation store ({e}); a running gateway may hold the embedded store")),
        };
        // Both keys: the signing input's, and the whole token's that older
        // versions wrote (SPEC §3.11).
        let mut latest = None;
        for digest in key.digests() {
            match store.lookup(&digest).await {
                Ok(found) => latest = latest.max(found),
                Err(e) => {
                    return Revocation::Unknown(format!(
                        "cannot reach the {} store ({e})",
                        store.kind()
                    ))
                }
            }
        }
        match latest {
            Some(until) if until > SystemClock.now_unix() => Revocation::Revoked(until),
            _ => Revocation::NotRevoked(store.kind()),
        }
    })
}
