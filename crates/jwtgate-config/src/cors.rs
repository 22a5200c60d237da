//! A route's `cors:` (SPEC §3.9), compiled into the header values the data
//! plane sends; invalid combinations are config errors.

use jwtgate_core::cors::{parse_origin, CorsPolicy, Origins};

use crate::compile::valid_header_name;
use crate::error::{child, index, Errors};
use crate::raw::RawCors;

/// The longest `max_age_seconds`.
const MAX_AGE: u64 = 86_400;

/// What a preflight allows when the route says nothing about methods.
const DEFAULT_METHODS: &str = "GET, HEAD, PUT, PATCH, POST, DELETE";

pub(crate) fn compile(
    c: &RawCors,
    route_methods: Option<&[String]>,
    loc: &str,
    errors: &mut Errors,
) -> Option<CorsPolicy> {
    let at = |k: &str| child(loc, k);
    let credentials = c.allow_credentials.unwrap_or(false);
    let origins = if c.allow_origins.iter().any(|o| o == "*") {
        if c.allow_origins.len() > 1 {
            errors.add(&at("allow_origins"), "\"*\" stands alone");
        }
        if credentials {
            errors.add(
                &at("allow_credentials"),
                "cannot be true with allow_origins [\"*\"]: browsers refuse it, and it would let every site read credentialed answers; list the origins",
            );
        }
        Origins::Any
    } else {
        if c.allow_origins.is_empty() {
            errors.add(&at("allow_origins"), "needs at least one origin (or \"*\")");
        }
        let mut list = Vec::new();
        for (i, o) in c.allow_origins.iter().enumerate() {
            match parse_origin(o) {
                Ok(o) => list.push(o),
                Err(e) => errors.add(&index(&at("allow_origins"), i), e.to_string()),
            }
        }
        Origins::List(list)
    };
    let methods = match &c.allow_methods {
        Some(ms) => {
            for (i, m) in ms.iter().enumerate() {
                let token = !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
                if !token {
                    errors.add(
                        &index(&at("allow_methods"), i),
                        format!("invalid method {m:?} (upper case, e.g. GET)"),
                    );
                }
            }
            ms.join(", ")
        }
        None => route_methods.map_or_else(|| DEFAULT_METHODS.to_owned(), |ms| ms.join(", ")),
    };
    let header_list = |list: &Option<Vec<String>>, key: &str, errors: &mut Errors| {
        list.as_ref().map(|hs| {
            for (i, h) in hs.iter().enumerate() {
                if !valid_header_name(h) {
                    errors.add(&index(&at(key), i), format!("{h:?} is not a header name"));
                }
            }
            hs.join(", ")
        })
    };
    let max_age = c.max_age_seconds.unwrap_or(600);
    if max_age > MAX_AGE {
        // Sent as written, u64::MAX included (an outside audit); no browser
        // keeps a preflight that long.
        errors.add(
            &at("max_age_seconds"),
            format!("must be at most {MAX_AGE} (a day: Firefox keeps a preflight that long at most, Chromium 2 hours)"),
        );
    }
    let headers = header_list(&c.allow_headers, "allow_headers", errors);
    let expose = header_list(&c.expose_headers, "expose_headers", errors).filter(|e| !e.is_empty());
    Some(CorsPolicy {
        origins,
        methods,
        headers,
        expose,
        credentials,
        max_age,
    })
}
