//! `providers:` (SPEC §3.6) compiled: each provider's identity for the core
//! ([`IdentityProvider`], in a [`ProviderDirectory`] found by issuer) and
//! where its keys come from for the fetcher ([`ProviderSource`]). A
//! `jwks_file` is read and parsed here, so that a bad one is a located
//! config error and a reload picks up its changes.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jwtgate_core::jwt::{Algorithm, JwkSet};
use jwtgate_core::path::PathPattern;
use jwtgate_core::provider::{IdentityProvider, ProviderDirectory};

use crate::compile::{read_file, resolve, TEN_YEARS_SECONDS};
use crate::error::{child, index, Errors};
use crate::model::{KeySource, ProviderSource};
use crate::raw::RawProvider;

/// Algorithms a provider uses unless it says otherwise.
const DEFAULT_ALGORITHMS: [Algorithm; 1] = [Algorithm::RS256];

pub(crate) fn compile(
    raw: &[RawProvider],
    base_dir: &Path,
    errors: &mut Errors,
) -> (ProviderDirectory, Vec<ProviderSource>) {
    let mut directory = ProviderDirectory::new();
    let mut sources = Vec::new();
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for (i, p) in raw.iter().enumerate() {
        let loc = index("providers", i);
        if p.name.is_empty() {
            errors.add(&child(&loc, "name"), "must not be empty");
        } else if !names.insert(p.name.as_str()) {
            errors.add(
                &child(&loc, "name"),
                format!("duplicate provider {:?}", p.name),
            );
        }
        let Some((identity, source)) = provider(p, &loc, base_dir, errors) else {
            continue;
        };
        if let Some(path) = &source.backchannel_logout_path {
            if !paths.insert(path.clone()) {
                errors.add(
                    &child(&loc, "backchannel_logout_path"),
                    format!("{path:?} is already another provider's"),
                );
            }
        }
        match directory.insert(identity) {
            Ok(_) => sources.push(source),
            Err(e) => errors.add(&child(&loc, "issuer"), e.to_string()),
        }
    }
    (directory, sources)
}

/// The longest a provider's key fetch may be given (`fetch_timeout_ms`).
const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// An interval in seconds: over 0, and at most ten years (unbounded, a
/// `refresh_seconds` and a `max_stale_seconds` of u64::MAX overflowed the
/// key keeper's timer and ended its task: keys never fetched again, an
/// outside review).
fn positive_secs(v: Option<u64>, default: u64, loc: &str, errors: &mut Errors) -> Duration {
    let v = v.unwrap_or(default);
    if v == 0 {
        errors.add(loc, "must be greater than 0");
    } else if v > TEN_YEARS_SECONDS {
        errors.add(loc, format!("is over {TEN_YEARS_SECONDS} (ten years)"));
    }
    Duration::from_secs(v)
}

fn provider(
    p: &RawProvider,
    loc: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<(IdentityProvider, ProviderSource)> {
    let at = |k: &str| child(loc, k);
    if p.issuer.is_empty() {
        errors.add(&at("issuer"), "must not be empty");
    }
    let algorithms = algorithms(p.algorithms.as_deref(), &at("algorithms"), errors);
    let audiences = p.audiences.clone().unwrap_or_default();
    for (i, a) in audiences.iter().enumerate() {
        if a.is_empty() {
            errors.add(&index(&at("audiences"), i), "must not be empty");
        }
    }
    let keys = key_source(p, loc, base_dir, &algorithms, errors);
    let ca_pem = p
        .ca_file
        .as_deref()
        .and_then(|f| crate::ca_file::read(base_dir, f, &at("ca_file"), errors));
    if p.ca_file.is_some() && matches!(keys, Some(KeySource::File { .. })) {
        errors.add(
            &at("ca_file"),
            "is not used with jwks_file (nothing is fetched)",
        );
    }
    let backchannel_logout_path = p
        .backchannel_logout_path
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|path| {
            // A request's path never holds `?` or `#` (they start its query
            // and fragment): such a path would never be matched.
            let ok = PathPattern::parse(path).is_ok_and(|pat| !pat.is_prefix())
                && jwtgate_core::path::normalize(path).is_ok_and(|n| n == path)
                && !path.contains(['?', '#']);
            if !ok {
                errors.add(
                    &at("backchannel_logout_path"),
                    format!(
                        "{path:?} is not a normalised path starting with \"/\" (no \"*\", \
                         no query)"
                    ),
                );
                return None;
            }
            Some(path.to_owned())
        });
    let client_id = p.client_id.clone().filter(|s| !s.is_empty());
    if backchannel_logout_path.is_some() && client_id.is_none() {
        errors.add(
            &at("client_id"),
            "is required with backchannel_logout_path: a logout token's aud must be it",
        );
    }
    let refresh = positive_secs(p.refresh_seconds, 300, &at("refresh_seconds"), errors);
    let kid_miss_interval = positive_secs(
        p.kid_miss_interval_seconds,
        30,
        &at("kid_miss_interval_seconds"),
        errors,
    );
    let max_stale = positive_secs(
        p.max_stale_seconds,
        86_400,
        &at("max_stale_seconds"),
        errors,
    );
    let fetch_timeout = Duration::from_millis(p.fetch_timeout_ms.unwrap_or(2000));
    if fetch_timeout.is_zero() {
        errors.add(&at("fetch_timeout_ms"), "must be greater than 0");
    } else if fetch_timeout > MAX_FETCH_TIMEOUT {
        // Unbounded, a provider's first fetch never ended: the node said
        // `starting` for good, and each request with an unknown kid waited
        // as long (an outside audit set u64::MAX).
        errors.add(
            &at("fetch_timeout_ms"),
            format!(
                "must be at most {} (a minute)",
                MAX_FETCH_TIMEOUT.as_millis()
            ),
        );
    }
    let identity = IdentityProvider {
        index: 0,
        name: p.name.clone(),
        issuer: p.issuer.clone(),
        algorithms: algorithms.clone(),
        audiences,
        consumer_claim: p.consumer_claim.clone().filter(|s| !s.is_empty()),
        client_id,
    };
    let source = ProviderSource {
        name: p.name.clone(),
        issuer: p.issuer.clone(),
        keys: keys?,
        algorithms,
        refresh,
        kid_miss_interval,
        max_stale,
        fetch_timeout,
        ca_pem,
        backchannel_logout_path,
    };
    Some((identity, source))
}

fn algorithms(raw: Option<&[String]>, loc: &str, errors: &mut Errors) -> Vec<Algorithm> {
    let Some(raw) = raw else {
        return DEFAULT_ALGORITHMS.to_vec();
    };
    if raw.is_empty() {
        errors.add(loc, "must list at least one algorithm (default: [RS256])");
    }
    let mut out = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        let at = index(loc, i);
        match name.parse::<Algorithm>() {
            Ok(a) if a.is_hmac() => errors.add(
                &at,
                format!("{a} is never accepted from an identity provider: its key set is public"),
            ),
            Ok(a) if out.contains(&a) => errors.add(&at, format!("{a} is listed twice")),
            Ok(a) => out.push(a),
            Err(_) if name.eq_ignore_ascii_case("none") => {
                errors.add(&at, "\"none\" is never accepted")
            }
            Err(e) => errors.add(&at, e.to_string()),
        }
    }
    out
}

/// Exactly one of `discovery: true`, `jwks_uri`, `jwks_file`.
fn key_source(
    p: &RawProvider,
    loc: &str,
    base_dir: &Path,
    algorithms: &[Algorithm],
    errors: &mut Errors,
) -> Option<KeySource> {
    let at = |k: &str| child(loc, k);
    let discovery = p.discovery.unwrap_or(false);
    let set = [discovery, p.jwks_uri.is_some(), p.jwks_file.is_some()]
        .iter()
        .filter(|&&b| b)
        .count();
    if set != 1 {
        errors.add(
            loc,
            "set exactly one of discovery: true, jwks_uri or jwks_file",
        );
        return None;
    }
    if discovery {
        if http_url_problem(&p.issuer).is_some() {
            errors.add(
                &at("issuer"),
                "must be an http(s) URL for discovery ({issuer}/.well-known/openid-configuration)",
            );
            return None;
        }
        return Some(KeySource::Discovery);
    }
    if let Some(uri) = &p.jwks_uri {
        if let Some(why) = http_url_problem(uri) {
            let shown = jwtgate_core::redact::url_for_display(uri);
            let message = if has_user_part(uri) {
                // Not "${NAME}": the admin API and etcd objects take no
                // references here (the literal value is then the way).
                format!(
                    "{shown:?}: a user part (user:password@host) is not supported (it is not sent \
                     as Basic authentication); a credential the key set's server takes in the \
                     query may go there (?access_token=...)"
                )
            } else {
                format!("{shown:?} is not an http(s) URL: {why}")
            };
            errors.add(&at("jwks_uri"), message);
            return None;
        }
        return Some(KeySource::Uri(uri.clone()));
    }
    let file = p.jwks_file.as_deref()?;
    let bytes = read_file(base_dir, file, &at("jwks_file"), errors)?;
    match JwkSet::parse(&bytes, algorithms) {
        Ok(set) => Some(KeySource::File {
            path: resolve(base_dir, file),
            set: Arc::new(set),
        }),
        Err(e) => {
            let why = values_hidden(&e.to_string());
            errors.add(&at("jwks_file"), format!("not a usable JWK Set: {why}"));
            None
        }
    }
}

/// A key set's error with each quoted value it repeats from the document
/// (`kty "X" is not supported`) as `"..."`: the path is the writer's choice
/// (an admin API caller, an etcd writer), the file the node's, and nothing
/// of a file's content is shown (an outside audit read a member of an
/// arbitrary JSON file so). What is wrong is still said.
fn values_hidden(message: &str) -> String {
    let mut shown = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            shown.push(c);
            continue;
        }
        // To the closing quote, past escaped ones.
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        shown.push_str("\"...\"");
    }
    shown
}

/// Whether an http(s) URL names a user (`https://user:pw@host/`).
fn has_user_part(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or_default();
    rest.split(['/', '?', '#'])
        .next()
        .is_some_and(|authority| authority.contains('@'))
}

/// What keeps `s` from being `http://` or `https://`, a host, a port (if
/// any) from 1 to 65535, no user part, no whitespace, if anything: parsed
/// as the key fetcher parses it (`http::Uri`), so what it would refuse at
/// every try is refused here, with the config's location (`http://[::1`,
/// `http://idp:99999/`).
fn http_url_problem(s: &str) -> Option<&'static str> {
    if s.chars().any(char::is_whitespace) {
        return Some("it holds whitespace (percent-encode it: %20)");
    }
    let Ok(uri) = s.parse::<http::Uri>() else {
        return Some(
            "not a URI: a character that must be percent-encoded (such as <, >, \", {, }, |, \\, ^, ` \
             or any non-ASCII), or a malformed host or port",
        );
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Some("its scheme is not http or https");
    }
    let Some(authority) = uri.authority() else {
        return Some("it has no host");
    };
    // http::Uri takes `[::1]x` as a host; the fetcher could not connect to it.
    let host = authority.host();
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .and_then(|a| a.split('%').next())
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        None => !host.is_empty(),
    };
    // After the host: nothing, or `:` and a port (empty: the scheme's).
    let port_ok = match authority.as_str().get(host.len()..).unwrap_or("x") {
        "" => true,
        rest => rest.strip_prefix(':').is_some_and(|p| {
            p.is_empty()
                || (p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0))
        }),
    };
    if authority.as_str().contains('@') {
        Some("a user part (user:password@host) is not supported")
    } else if !host_ok {
        Some("its host is not a name or an address")
    } else if !port_ok {
        Some("its port is not 1 to 65535")
    } else {
        None
    }
}
