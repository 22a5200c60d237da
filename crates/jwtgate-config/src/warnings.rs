//! What a valid config may say that is almost surely not what its operator
//! meant: a setting that does nothing, a route that can never be reached,
//! or one that works but hands control to someone else (keys over plain
//! http, a consumer claim users choose, claim rules a consumer can sign
//! its way through). `jwtgate check` prints these, and a node logs them
//! each time a config goes live; none refuses the config, so one that
//! loaded yesterday still loads.

use std::collections::{HashMap, HashSet};

use crate::error::ConfigError;
use crate::model::{Config, Route};
use crate::raw::{RawConfig, RawJwt, RawProvider, RawRoute};
use crate::tls::{TlsMaterial, TlsVersion};
use jwtgate_core::path::{RuleEntry, RuleMethod};
use jwtgate_core::x509::PublicKey;

/// Every warning for `config`, located as its errors would be.
pub fn warnings(config: &Config) -> Vec<ConfigError> {
    let mut found = Found::default();
    if let Some(admin) = &config.admin {
        if admin.api_key.len() < crate::MIN_SECRET_BYTES {
            found.warn(
                "admin.api_key".into(),
                format!(
                    "is shorter than {} bytes: whoever guesses it rewrites the policy \
                     (make one with `openssl rand -base64 32`)",
                    crate::MIN_SECRET_BYTES
                ),
            );
        }
        if !admin.api_key.is_ascii() {
            // curl sends UTF-8; a browser's fetch sends each character as
            // one Latin-1 byte, which never matches.
            found.warn(
                "admin.api_key".into(),
                "holds characters outside ASCII: the console cannot sign in with it (browsers \
                 send header values as Latin-1, not UTF-8), though curl can; make one with \
                 `openssl rand -base64 32`"
                    .into(),
            );
        }
        if !admin.listen.ip().is_loopback() && admin.tls.is_none() {
            found.warn(
                "admin.listen".into(),
                format!(
                    "{} is not loopback, and the admin listener speaks plain HTTP: the \
                     X-API-KEY (and the console's sign-in) would cross the network in clear; \
                     set admin.tls, keep it on loopback, or reach it through an SSH tunnel",
                    admin.listen
                ),
            );
        }
    }
    dual_stack(config, &mut found);
    // Only a consumer with a credential signs tokens of its own.
    let has_consumers = config.raw.consumers.iter().any(|c| c.jwt.is_some());
    for (i, raw) in config.raw.routes.iter().enumerate() {
        upstream_nodes(&raw.upstream, &format!("routes[{i}].upstream"), &mut found);
        if let Some(jwt) = &raw.jwt {
            let at = format!("routes[{i}].jwt");
            policy(jwt, &at, has_consumers, &mut found);
            unchecked_audience(&config.raw.providers, jwt, &at, &mut found);
            authorize_scope(jwt, &raw.paths, &at, &mut found);
            dead_authorize_entries(jwt, raw, &at, &mut found);
        } else if raw.websocket_close_at_exp == Some(true) {
            found.warn(
                format!("routes[{i}].websocket_close_at_exp"),
                "does nothing: the route checks no token, so its WebSockets have none to \
                 expire"
                    .into(),
            );
        }
    }
    for (i, p) in config.raw.providers.iter().enumerate() {
        provider(p, &format!("providers[{i}]"), &mut found);
    }
    for (i, source) in config.provider_sources.iter().enumerate() {
        if let crate::KeySource::File { set, .. } = &source.keys {
            let private = set.private_keys();
            if !private.is_empty() {
                found.warn(
                    format!("providers[{i}].jwks_file"),
                    format!(
                        "holds private key members (\"d\") for {}: the gateway needs only the \
                         public ones; keep the signing key where only the issuer can read it",
                        private.join(", ")
                    ),
                );
            }
        }
    }
    for (j, route) in config.routes.iter().enumerate() {
        methods(route, &format!("routes[{j}].methods"), &mut found);
    }
    shadowed(&config.routes, &mut found);
    unprotected_twins(&config.routes, &mut found);
    never_matching(&config.raw, &mut found);
    backchannel_paths(&config.raw, &mut found);
    names(config, &mut found);
    unused_consumers(&config.raw, &mut found);
    public_keys_as_secrets(&config.raw, &mut found);
    anonymous_with_credentials(&config.raw, &mut found);
    default_ports(&config.raw, &mut found);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    certificates(config, now, &mut found);
    found.0
}

/// `[::]:P` on one listener and an IPv4 address on port P on the other
/// (data plane and admin API): fine where `[::]` is IPv6 only, refused at
/// start (`Address already in use`) where it takes IPv4 too, as on Linux by
/// default. Within `listen` itself the node binds such a `[::]` IPv6 only,
/// as nginx does, so that both are served.
fn dual_stack(config: &Config, found: &mut Found) {
    let data: Vec<(String, std::net::SocketAddr)> = config
        .listen
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("listen[{i}]"), *a))
        .collect();
    let Some(admin) = &config.admin else { return };
    let admin = [("admin.listen".to_owned(), admin.listen)];
    for (ours, theirs) in [(&data[..], &admin[..]), (&admin[..], &data[..])] {
        for (at, v4) in ours.iter().filter(|(_, a)| a.is_ipv4() && a.port() != 0) {
            let wildcard = theirs
                .iter()
                .find(|(_, a)| a.is_ipv6() && a.ip().is_unspecified() && a.port() == v4.port());
            if let Some((_, v6)) = wildcard {
                found.warn(
                    at.clone(),
                    format!(
                        "{v4} may not be bound next to {v6}: where [::] takes IPv4 too (Linux's \
                         default, net.ipv6.bindv6only = 0) the node stops with \"Address already \
                         in use\"; there, {v6} alone serves both"
                    ),
                );
            }
        }
    }
}

/// Certificates clients refuse at `now`: expired, or not valid yet. They
/// load (nginx and HAProxy load them too), and serve nobody. And private
/// keys every user of the machine may read (as OpenSSH warns).
fn certificates(config: &Config, now: i64, found: &mut Found) {
    let admin = config.admin.as_ref().and_then(|a| a.tls.as_ref());
    for tls in config.tls.iter().chain(admin) {
        certificates_of(tls, now, found);
        unused_suites(tls, found);
    }
}

/// The TLS 1.2 suites an explicit `cipher_suites` lists.
fn tls12_suites(tls: &TlsMaterial) -> Vec<&str> {
    tls.cipher_suites
        .iter()
        .map(String::as_str)
        .filter(|s| !s.starts_with("TLS13_"))
        .collect()
}

/// TLS 1.2 suites listed while `min_version` is `"1.3"`: no handshake
/// can use them.
fn unused_suites(tls: &TlsMaterial, found: &mut Found) {
    if tls.min_version != TlsVersion::V1_3 {
        return;
    }
    let unused = tls12_suites(tls);
    if !unused.is_empty() {
        found.warn(
            format!("{}.cipher_suites", tls.at),
            format!(
                "lists TLS 1.2 suites ({}) while min_version is \"1.3\": no handshake uses them",
                unused.join(", ")
            ),
        );
    }
}

fn certificates_of(tls: &TlsMaterial, now: i64, found: &mut Found) {
    // Each name SNI may choose by, and the first certificate that holds it
    // (exact names and wildcards apart: an exact one wins over any
    // wildcard, and among equals the first listed).
    let mut holders: Vec<(String, &str)> = Vec::new();
    for (i, c) in tls.certificates.iter().enumerate() {
        let names = c.dns_names();
        let earlier: Vec<&str> = names
            .iter()
            .filter_map(|n| {
                holders
                    .iter()
                    .find(|(held, _)| held == n)
                    .map(|(_, by)| *by)
            })
            .collect();
        // The first certificate also serves names no other covers.
        if i > 0 && !names.is_empty() && earlier.len() == names.len() {
            let mut by: Vec<&str> = Vec::new();
            for holder in &earlier {
                if !by.contains(holder) {
                    by.push(holder);
                }
            }
            found.warn(
                format!("{}.cert_file", c.location),
                format!(
                    "SNI never chooses it: each of its names ({}) is held by a certificate \
                     listed before it ({}); one certificate serves a name (an RSA and an \
                     ECDSA one are not served side by side by the client's key type): \
                     remove the one it replaces, or list it before",
                    names.join(", "),
                    by.join(", ")
                ),
            );
        }
        for n in names {
            if !holders.iter().any(|(held, _)| *held == n) {
                holders.push((n, c.location.as_str()));
            }
        }
    }
    for (i, c) in tls.certificates.iter().enumerate() {
        if let Some(mode) = c.key_mode.filter(|m| m & 0o004 != 0) {
            found.warn(
                format!("{}.key_file", c.location),
                format!(
                    "every user of this machine may read this private key (mode {:04o}): \
                     chmod 600, or 640 with the gateway's group (the package's is jwtgate)",
                    mode & 0o7777
                ),
            );
        }
        let blocks = pem::parse_many(&c.cert_pem).unwrap_or_default();
        let leaf = blocks.iter().find(|p| p.tag() == "CERTIFICATE");
        if let Some(kind) = leaf.and_then(|p| jwtgate_core::x509::public_key(p.contents())) {
            tls12_suites_for(tls, kind, &c.location, found);
        }
        // The first one serves every name no other covers; a later one only
        // the names of its subjectAltName.
        if i > 0 && leaf.and_then(|p| jwtgate_core::x509::has_dns_name(p.contents())) == Some(false)
        {
            found.warn(
                format!("{}.cert_file", c.location),
                "names no DNS name in its subjectAltName, and SNI chooses a certificate by \
                 those alone (as clients check them, RFC 6125: a subject CN does not count): \
                 no client gets it; reissue it with the names, or list it first to serve \
                 every name the others do not cover"
                    .into(),
            );
        }
        let Some((not_before, not_after)) = c.validity() else {
            continue;
        };
        let at = format!("{}.cert_file", c.location);
        if not_after < now {
            let on = jwtgate_core::x509::date(not_after);
            found.warn(
                at,
                format!("expired on {on}: clients refuse it (renew it, then SIGHUP)"),
            );
        } else if not_before > now {
            let from = jwtgate_core::x509::date(not_before);
            found.warn(
                at,
                format!("is not valid before {from}: clients refuse it until then"),
            );
        }
    }
}

/// A certificate whose key no TLS 1.2 suite of an explicit `cipher_suites`
/// signs with: TLS 1.2 clients that get it fail the handshake (rustls
/// picks a suite by the certificate's key, ECDHE_RSA or ECDHE_ECDSA).
fn tls12_suites_for(tls: &TlsMaterial, kind: PublicKey, location: &str, found: &mut Found) {
    let tls12 = tls12_suites(tls);
    if tls.min_version != TlsVersion::V1_2 || tls12.is_empty() {
        return;
    }
    let (needs, words) = match kind {
        PublicKey::Rsa { .. } => ("_RSA_", "an RSA key"),
        PublicKey::Ecdsa => ("_ECDSA_", "an ECDSA key"),
        PublicKey::Ed25519 => (
            "_ECDSA_",
            "an Ed25519 key (TLS 1.2 signs it in ECDSA suites)",
        ),
        PublicKey::Other => return,
    };
    if !tls12.iter().any(|s| s.contains(needs)) {
        found.warn(
            format!("{location}.cert_file"),
            format!(
                "has {words}, and {}.cipher_suites holds no TLS 1.2 suite for it \
                 (TLS_ECDHE{needs}WITH_...): every TLS 1.2 client this certificate \
                 answers fails the handshake; add one, or set min_version: \"1.3\"",
                tls.at
            ),
        );
    }
}

#[derive(Default)]
struct Found(Vec<ConfigError>);

impl Found {
    fn warn(&mut self, location: String, message: String) {
        self.0.push(ConfigError { location, message });
    }
}

/// Route paths and rule entries that hold what no normalised request path
/// can (a raw `?`, a control character, an escaped `/`, ...): they never
/// match. Warned, not refused: such entries loaded before they were told.
fn never_matching(raw: &RawConfig, found: &mut Found) {
    use jwtgate_core::path::{PathPattern, RuleEntry};
    let mut tell = |location: String, what: Option<&'static str>| {
        if let Some(what) = what {
            found.warn(
                location,
                format!("{what} can never match: no request path holds it"),
            );
        }
    };
    // An exact entry also covers its trailing-slash twin (`GET_/a//`
    // covers `/a/`): it never matches only if the twin cannot either.
    let entry = |text: &str| {
        let pattern = RuleEntry::parse(text).ok()?.pattern;
        let never = pattern.never_matches()?;
        match pattern.slash_twin() {
            Some(twin) if twin.never_matches().is_none() => None,
            _ => Some(never),
        }
    };
    for (i, route) in raw.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        for (j, path) in route.paths.iter().enumerate() {
            let what = PathPattern::parse(path)
                .ok()
                .and_then(|p| p.never_matches());
            tell(format!("{at}.paths[{j}]"), what);
        }
        let Some(jwt) = &route.jwt else { continue };
        let lists = [
            ("required_paths", &jwt.required_paths),
            ("not_required_paths", &jwt.not_required_paths),
        ];
        for (name, list) in lists {
            for (k, text) in list.iter().flatten().enumerate() {
                tell(format!("{at}.jwt.{name}[{k}]"), entry(text));
            }
        }
        for (a, rule) in jwt.authorize.iter().flatten().enumerate() {
            for (k, text) in rule.matches.iter().enumerate() {
                tell(format!("{at}.jwt.authorize[{a}].match[{k}]"), entry(text));
            }
        }
        let single = [
            ("logout_path", &jwt.logout_path),
            ("logout_everywhere_path", &jwt.logout_everywhere_path),
        ];
        for (name, text) in single {
            if let Some(text) = text {
                tell(format!("{at}.jwt.{name}"), entry(text));
            }
        }
    }
}

/// Consumers without a credential that nothing can name: no route has it
/// as its `anonymous_consumer` and no provider has a `consumer_claim`.
fn unused_consumers(raw: &RawConfig, found: &mut Found) {
    if raw
        .providers
        .iter()
        .any(|p| p.consumer_claim.as_deref().is_some_and(|c| !c.is_empty()))
    {
        return;
    }
    let anonymous: HashSet<&str> = raw
        .routes
        .iter()
        .filter_map(|r| r.jwt.as_ref()?.anonymous_consumer.as_deref())
        .collect();
    for (i, c) in raw.consumers.iter().enumerate() {
        if c.jwt.is_none() && !anonymous.contains(c.username.as_str()) {
            found.warn(
                format!("consumers[{i}].jwt"),
                format!(
                    "is absent, and no route names {:?} as its anonymous_consumer nor does \
                     any provider have a consumer_claim: no request can run as this consumer",
                    c.username
                ),
            );
        }
    }
}

/// An HS* consumer whose secret is a public key (PEM, or a JWK): the
/// RS-to-HS confusion set up in the config, as it happens when a key meant
/// for RS256 is pasted as the secret. Whoever holds the public key (it is
/// public) signs tokens for that consumer (an outside audit).
fn public_keys_as_secrets(raw: &RawConfig, found: &mut Found) {
    for (i, c) in raw.consumers.iter().enumerate() {
        let Some(secret) = c.jwt.as_ref().and_then(|j| j.secret.as_deref()) else {
            continue;
        };
        let pem = secret.trim_start().starts_with("-----BEGIN");
        // An asymmetric JWK (an `oct` one is a secret, if not in this form).
        let jwk = serde_json::from_str::<serde_json::Value>(secret).is_ok_and(|v| {
            v.get("kty")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|kty| kty != "oct")
        });
        if pem || jwk {
            found.warn(
                format!("consumers[{i}].jwt.secret"),
                format!(
                    "is a {}: an HMAC secret whoever holds that key can sign with (a public key \
                     is, by design, public); for a key pair, give the public key as public_key \
                     with an RS*/PS*/ES*/EdDSA algorithm",
                    if pem { "PEM document" } else { "JWK" }
                ),
            );
        }
    }
}

/// A route's jwt policy, at `at`.
fn policy(jwt: &RawJwt, at: &str, has_consumers: bool, found: &mut Found) {
    if jwt.anonymous_consumer.as_deref() == Some("") {
        found.warn(
            format!("{at}.anonymous_consumer"),
            "is empty, which is no anonymous consumer (as Kong's anonymous: \"\"): a request \
             without a token is refused; leave the key out, or name a consumer (SPEC §3.8)"
                .into(),
        );
    }
    let revoking = jwt.use_jwt_blacklist_revoking == Some(true);
    if !revoking && jwt.logout_path.as_deref().is_some_and(|p| !p.is_empty()) {
        found.warn(
            format!("{at}.logout_path"),
            "does nothing while use_jwt_blacklist_revoking is not true: \
             requests to it are proxied like any other and no token is revoked"
                .into(),
        );
    }
    let lists_providers = jwt.providers.as_ref().is_some_and(|p| !p.is_empty());
    let takes_consumers = jwt.consumers != Some(false) && has_consumers;
    let claim_rules = jwt.authorize.as_ref().is_some_and(|rules| {
        rules.iter().any(|r| {
            r.scopes.as_ref().is_some_and(|s| !s.is_empty())
                || r.any_of.as_ref().is_some_and(|m| !m.is_empty())
                || r.all_of.as_ref().is_some_and(|m| !m.is_empty())
        })
    });
    if lists_providers && takes_consumers && claim_rules {
        found.warn(
            format!("{at}.authorize"),
            "checks claims, and the route also takes consumer tokens, whose claims their \
             holder signs: any consumer can meet these rules (set consumers: false if \
             they are about what the providers grant)"
                .into(),
        );
    }
    if jwt
        .required_claims
        .as_ref()
        .is_some_and(|c| !c.iter().any(|c| c == "exp"))
    {
        found.warn(
            format!("{at}.required_claims"),
            "leaves out exp: a token without exp passes, and is good for ever (its \
             logout too lasts for ever); keep exp in the list unless the tokens are \
             short-lived by other means"
                .into(),
        );
    }
    if let Some(leeway) = jwt.leeway_seconds.filter(|&l| l > MAX_SKEW_SECONDS) {
        found.warn(
            format!("{at}.leeway_seconds"),
            format!(
                "{leeway} s lets a token in that long after its exp (and before its nbf): \
                 leeway is for clocks that disagree, by seconds (Envoy allows 60 by \
                 default, Kong 0); more than {MAX_SKEW_SECONDS} is a longer token lifetime"
            ),
        );
    }
    if !lists_providers && jwt.audiences.as_ref().is_some_and(|a| !a.is_empty()) {
        found.warn(
            format!("{at}.audiences"),
            "does nothing: the route lists no providers, and audiences apply to \
             their tokens"
                .into(),
        );
    }
    forwarded_logouts(jwt, at, found);
    cookie_logouts(jwt, at, found);
    dotted_claim_names(jwt, at, found);
}

/// A provider a route lists with no audience on either side: `aud` is not
/// checked, so every token its issuer signs passes, whoever it was made
/// for: an ID token given to a browser app, a token for another API of the
/// same IdP (RFC 9068 §4 asks resource servers to check `aud`).
fn unchecked_audience(providers: &[RawProvider], jwt: &RawJwt, at: &str, found: &mut Found) {
    if jwt.audiences.as_ref().is_some_and(|a| !a.is_empty()) {
        return;
    }
    for (j, name) in jwt.providers.iter().flatten().enumerate() {
        let unchecked = providers
            .iter()
            .find(|p| &p.name == name)
            .is_some_and(|p| p.audiences.as_ref().is_none_or(Vec::is_empty));
        if unchecked {
            found.warn(
                format!("{at}.providers[{j}]"),
                format!(
                    "{name} has no audiences and the route gives none: aud is not checked, so \
                     any token {name}'s issuer signs passes here, whoever it was made for (an ID \
                     token, a token for another client or API); list this API's audience in \
                     the provider's audiences or the route's"
                ),
            );
        }
    }
}

/// A logout or log-out-everywhere path that takes `GET` while the route
/// reads tokens from a cookie: any web page can log its visitors out, as
/// an `<img src>` or a link sends the cookie along (a `SameSite=Lax` one
/// too, on a top-level navigation). Login CSRF's twin; OWASP's advice is a
/// state-changing request that is never a `GET`.
fn cookie_logouts(jwt: &RawJwt, at: &str, found: &mut Found) {
    let cookie = jwt.cookie.as_deref().unwrap_or("jwt");
    if cookie.is_empty() || jwt.use_jwt_blacklist_revoking != Some(true) {
        return;
    }
    for (key, value) in [
        ("logout_path", &jwt.logout_path),
        ("logout_everywhere_path", &jwt.logout_everywhere_path),
    ] {
        let Some(Ok(entry)) = value.as_deref().map(RuleEntry::parse) else {
            continue;
        };
        if matches!(entry.method, RuleMethod::Get | RuleMethod::Any) {
            found.warn(
                format!("{at}.{key}"),
                format!(
                    "{:?} takes GET and the route reads tokens from the {cookie:?} cookie: \
                     any web page can log its visitors out (an <img> or a link sends the \
                     cookie along); write a POST entry, or set cookie: \"\" if tokens never \
                     ride in a cookie",
                    value.as_deref().unwrap_or_default(),
                ),
            );
        }
    }
}

/// A logout path that takes more than one request (a prefix, any method)
/// with `logout_forward`: every request it takes goes upstream after its
/// token's logout, and a logout is never refused by `authorize` rules (an
/// outside audit reached `DELETE_/v5/auth/logout-all-sessions-of-tenant`
/// with a token a rule refused everywhere else).
fn forwarded_logouts(jwt: &RawJwt, at: &str, found: &mut Found) {
    let rules = jwt.authorize.as_ref().is_some_and(|r| !r.is_empty());
    let revoking = jwt.use_jwt_blacklist_revoking == Some(true);
    let Some(Ok(entry)) = jwt.logout_path.as_deref().map(RuleEntry::parse) else {
        return;
    };
    let wide = entry.pattern.is_prefix() || entry.method == RuleMethod::Any;
    if rules && revoking && wide && jwt.logout_forward == Some(true) {
        found.warn(
            format!("{at}.logout_path"),
            format!(
                "{:?} takes {} and logout_forward sends each upstream, where authorize \
                 rules are not applied (a logout is never refused): write the one logout \
                 request (POST_/auth/logout)",
                jwt.logout_path.as_deref().unwrap_or_default(),
                if entry.pattern.is_prefix() {
                    "every path under it"
                } else {
                    "every method"
                }
            ),
        );
    }
}

/// Claim paths whose first part is a URL: a dot splits a path (SPEC §3.7),
/// so Auth0's namespaced `https://example.com/roles` is read as
/// `https://example` → `com/roles`, and the rule or header never sees the
/// claim the operator meant (an outside audit: `check` said ok).
fn dotted_claim_names(jwt: &RawJwt, at: &str, found: &mut Found) {
    let mut named: Vec<(String, &str)> = Vec::new();
    for (i, name) in jwt.required_claims.iter().flatten().enumerate() {
        named.push((format!("{at}.required_claims[{i}]"), name));
    }
    for name in jwt.forward_claims.iter().flat_map(|m| m.keys()) {
        named.push((format!("{at}.forward_claims.{name}"), name));
    }
    for (i, rule) in jwt.authorize.iter().flatten().enumerate() {
        for (key, map) in [("any_of", &rule.any_of), ("all_of", &rule.all_of)] {
            for name in map.iter().flat_map(|m| m.keys()) {
                named.push((format!("{at}.authorize[{i}].{key}.{name}"), name));
            }
        }
    }
    for (loc, name) in named {
        let url = name.contains("://") || name.starts_with("urn:");
        if url && name.contains('.') {
            found.warn(
                loc,
                format!(
                    "{name:?} is read as a path of {} nested claims, split at each dot: a claim \
                     whose name holds a dot (a namespaced claim such as Auth0's \
                     https://example.com/roles) cannot be addressed (SPEC §3.7); have the \
                     identity provider also issue it under a name without dots",
                    name.split('.').count()
                ),
            );
        }
    }
}

/// `authorize` entries the path rules leave without a token to authorize:
/// a request that needs no token is not authorized further (SPEC §3.7),
/// so `DELETE_/a/*` with `scopes: [write]` does nothing while
/// `required_paths` lists only `GET_/a/admin*` (an outside audit found such
/// a `DELETE` served without a token, `check` saying ok). Envoy's RBAC,
/// behind jwt_authn, would refuse it.
fn authorize_scope(jwt: &RawJwt, paths: &[String], at: &str, found: &mut Found) {
    let entries = |list: &Option<Vec<String>>| -> Vec<RuleEntry> {
        list.iter()
            .flatten()
            .filter_map(|e| RuleEntry::parse(e).ok())
            .collect()
    };
    let required = entries(&jwt.required_paths);
    let not_required = entries(&jwt.not_required_paths);
    // Unless required_paths take every request of the route's paths.
    let all_required = paths.iter().all(|p| {
        RuleEntry::parse(&format!("ANY_{p}"))
            .is_ok_and(|whole| required.iter().any(|r| whole.within(r)))
    });
    if jwt.required_paths.is_some()
        && jwt.authorize_default.as_deref() == Some("deny")
        && !all_required
    {
        found.warn(
            format!("{at}.authorize_default"),
            "deny refuses only requests that need a token: one required_paths does not \
             list goes upstream without a token and is not authorized (SPEC §3.7); to \
             refuse what no rule allows, leave required_paths out (every request then \
             needs a token) and list the open ones in not_required_paths"
                .into(),
        );
    }
    let (list, open) = match (&jwt.required_paths, &jwt.not_required_paths) {
        (Some(_), _) => ("required_paths", false),
        (None, Some(_)) => ("not_required_paths", true),
        (None, None) => return,
    };
    for (i, rule) in jwt.authorize.iter().flatten().enumerate() {
        for (j, text) in rule.matches.iter().enumerate() {
            let Ok(entry) = RuleEntry::parse(text) else {
                continue;
            };
            let untouched = if open {
                not_required.iter().any(|n| entry.within(n))
            } else {
                !required.iter().any(|r| entry.overlaps(r))
            };
            if untouched {
                let why = if open {
                    format!("{list} takes every request it matches")
                } else {
                    format!("{list} takes none of the requests it matches")
                };
                found.warn(
                    format!("{at}.authorize[{i}].match[{j}]"),
                    format!(
                        "{text:?} is never applied: {why}, and a request that needs no token \
                         is not authorized at all (it goes upstream without one); list it in \
                         required_paths to have it checked"
                    ),
                );
            }
        }
    }
}

/// `authorize` entries no request reaches: one outside every path and
/// method of the route, and one an earlier rule's entry takes whole (the
/// first rule whose match fits applies, SPEC §3.7, so a second rule for
/// `GET_/x` with other scopes never applies; an outside audit). A route
/// method rule entries cannot name (`PURGE`) counts as any method.
fn dead_authorize_entries(jwt: &RawJwt, raw: &RawRoute, at: &str, found: &mut Found) {
    let any = ["ANY".to_owned()];
    let methods = match raw.methods.as_deref() {
        Some(ms)
            if ms
                .iter()
                .all(|m| RuleEntry::parse(&format!("{m}_/")).is_ok()) =>
        {
            ms
        }
        _ => &any[..],
    };
    let route: Vec<RuleEntry> = raw
        .paths
        .iter()
        .flat_map(|p| methods.iter().map(move |m| format!("{m}_{p}")))
        .filter_map(|entry| RuleEntry::parse(&entry).ok())
        .collect();
    let rules: Vec<Vec<RuleEntry>> = jwt
        .authorize
        .iter()
        .flatten()
        .map(|rule| {
            rule.matches
                .iter()
                .filter_map(|e| RuleEntry::parse(e).ok())
                .collect()
        })
        .collect();
    for (i, rule) in jwt.authorize.iter().flatten().enumerate() {
        for (j, text) in rule.matches.iter().enumerate() {
            let Ok(entry) = RuleEntry::parse(text) else {
                continue;
            };
            let loc = format!("{at}.authorize[{i}].match[{j}]");
            if !route.is_empty() && !route.iter().any(|r| entry.overlaps(r)) {
                found.warn(
                    loc,
                    format!(
                        "{text:?} is never applied: it matches none of the route's paths and \
                         methods"
                    ),
                );
            } else if let Some(k) = rules[..i]
                .iter()
                .position(|earlier| earlier.iter().any(|e| entry.within(e)))
            {
                found.warn(
                    loc,
                    format!(
                        "{text:?} is never applied: authorize[{k}] comes first and matches \
                         every request it matches (the first rule that matches applies)"
                    ),
                );
            }
        }
    }
}

/// CORS origins written with their scheme's default port: matched without
/// it, as browsers send them (an outside audit found them never matching).
fn default_ports(raw: &RawConfig, found: &mut Found) {
    for (i, route) in raw.routes.iter().enumerate() {
        let Some(cors) = &route.cors else { continue };
        if cors.allow_methods.as_ref().is_some_and(Vec::is_empty) {
            found.warn(
                format!("routes[{i}].cors.allow_methods"),
                "is empty, which allows no method: every preflight fails (leave it out for \
                 the route's methods)"
                    .into(),
            );
        }
        for (j, entry) in cors.allow_origins.iter().enumerate() {
            let bare = jwtgate_core::cors::canonical_origin(entry)
                .and_then(|o| jwtgate_core::cors::without_default_port(&o));
            if let Some(bare) = bare {
                found.warn(
                    format!("routes[{i}].cors.allow_origins[{j}]"),
                    format!(
                        "{entry:?} names its scheme's default port, which browsers leave out \
                         of Origin: it is matched as {bare:?}; write that"
                    ),
                );
            }
        }
    }
}

/// A route's `anonymous_consumer` that has a credential of its own: a
/// request with no token runs as the consumer a signed token names too,
/// and an upstream cannot tell the two apart but by `X-Anonymous-Consumer`.
/// Kong's anonymous consumer is one with no credentials.
fn anonymous_with_credentials(raw: &RawConfig, found: &mut Found) {
    for (i, route) in raw.routes.iter().enumerate() {
        let Some(name) = route
            .jwt
            .as_ref()
            .and_then(|j| j.anonymous_consumer.as_deref())
        else {
            continue;
        };
        if raw
            .consumers
            .iter()
            .any(|c| c.username == name && c.jwt.is_some())
        {
            found.warn(
                format!("routes[{i}].jwt.anonymous_consumer"),
                format!(
                    "{name:?} has a jwt credential: a request with no token runs as the same \
                     consumer as that credential's tokens (told apart only by \
                     X-Anonymous-Consumer); give the anonymous consumer no credential"
                ),
            );
        }
    }
}

/// The most leeway not warned about: clocks that disagree by more than
/// five minutes are broken, and Kerberos refuses them too.
const MAX_SKEW_SECONDS: u64 = 300;

/// A key-set fetch that may take longer than this is said: requests wait
/// on it.
const LONG_FETCH_MS: u64 = 30_000;

/// An identity provider, at `at`.
/// The shortest refresh an IdP's `max-age` may ask for.
const SHORTEST_REFRESH_SECONDS: u64 = 60;

fn provider(p: &RawProvider, at: &str, found: &mut Found) {
    if let Some(claim) = p
        .consumer_claim
        .as_deref()
        .filter(|c| USER_CHOSEN_CLAIMS.contains(c))
    {
        found.warn(
            format!("{at}.consumer_claim"),
            format!(
                "{claim:?} is a claim many IdPs let their users choose (OIDC Core §5.7): \
                 a user who picks a consumer's username reaches the upstream as that \
                 consumer; name one the IdP sets (azp, client_id, sub)"
            ),
        );
    }
    if let Some(ms) = p.fetch_timeout_ms.filter(|ms| *ms > LONG_FETCH_MS) {
        found.warn(
            format!("{at}.fetch_timeout_ms"),
            format!(
                "{ms} ms: a request whose token names a kid not in the key set waits this \
                 long for a fetch while the IdP is slow (SPEC §3.6), and a slow IdP holds \
                 every such request; {LONG_FETCH_MS} ms or less keeps that bounded (default \
                 2000)"
            ),
        );
    }
    if let Some(secs) = p
        .max_stale_seconds
        .filter(|s| *s < 2 * SHORTEST_REFRESH_SECONDS)
        .filter(|_| p.jwks_file.is_none())
    {
        found.warn(
            format!("{at}.max_stale_seconds"),
            format!(
                "{secs} s: the keys are fetched again by half of it at the latest (every {} s \
                 here, on every node), and an outage of the IdP longer than it refuses its \
                 tokens; {} s or more keeps fetches at most once a minute",
                (secs / 2).max(1),
                2 * SHORTEST_REFRESH_SECONDS
            ),
        );
    }
    let (field, url) = match (&p.jwks_uri, p.discovery) {
        (Some(uri), _) => ("jwks_uri", uri.as_str()),
        (None, Some(true)) => ("issuer", p.issuer.as_str()),
        _ => return,
    };
    if let Some(host) = plain_http_off_loopback(url) {
        found.warn(
            format!("{at}.{field}"),
            format!(
                "fetches keys over plain http from {host}, not a loopback address: \
                 whoever is on the way can replace them (use https://)"
            ),
        );
    }
}

/// A route's `methods`, at `at`, when they let no request in.
fn methods(route: &Route, at: &str, found: &mut Found) {
    match route.methods.as_deref() {
        Some([]) => found.warn(
            at.to_owned(),
            "is empty: the route takes no request (leave methods out for every method)".into(),
        ),
        Some(methods) if methods.iter().all(|m| m.eq_ignore_ascii_case("CONNECT")) => found.warn(
            at.to_owned(),
            "CONNECT requests are refused (400) before any route is chosen: the route \
             takes no request"
                .into(),
        ),
        _ => {}
    }
}

/// Routes that come after others on every one of their paths, each
/// taking all the methods and hosts it takes: they never see a request.
/// "After" is as the router orders a path's routes: those that name hosts
/// first, then in the file's order ([`crate::route_trie`]); an any-method
/// route listed before a `methods: [POST]` one on the same path takes its
/// POSTs too. Once per route, not per pair: a config may hold thousands.
fn shadowed(routes: &[Route], found: &mut Found) {
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by_key(|&i| routes.get(i).is_none_or(|r| r.hosts.is_empty()));
    // Each path's routes so far, in the router's order.
    let mut on_path: HashMap<(&str, bool), Vec<usize>> = HashMap::new();
    for &j in &order {
        let Some(route) = routes.get(j) else { continue };
        let paths: Vec<(&str, bool)> = route
            .paths
            .iter()
            .map(|p| (p.as_str(), p.is_prefix()))
            .collect();
        let takes_nothing = route.methods.as_ref().is_some_and(|m| m.is_empty());
        let hidden_by = |p: &(&str, bool)| {
            on_path.get(p).and_then(|earlier| {
                earlier
                    .iter()
                    .copied()
                    .find(|&i| routes.get(i).is_some_and(|first| covers(first, route)))
            })
        };
        let hiders: Vec<Option<usize>> = paths.iter().map(&hidden_by).collect();
        let first = hiders.first().copied().flatten();
        if let Some(i) = first.filter(|_| !takes_nothing && hiders.iter().all(Option::is_some)) {
            let first_name = routes.get(i).map(|r| r.name.as_str()).unwrap_or_default();
            let others = if hiders.iter().all(|h| *h == Some(i)) {
                ""
            } else {
                ", and others on its other paths,"
            };
            found.warn(
                format!("routes[{j}]"),
                format!(
                    "route {:?} is never matched: route {:?}{others} comes \
                     before it on its paths and takes every method and host it takes (on \
                     a path, routes that name hosts come first, then the file's order: \
                     list a route with methods before one that takes every method)",
                    route.name, first_name,
                ),
            );
        }
        for p in paths {
            on_path.entry(p).or_default().push(j);
        }
    }
}

/// A route's exact path whose trailing-slash twin another route takes, one
/// that needs no token: `/admin` on a route with `jwt`, a catch-all `/*`
/// without, and `/admin/` reached the upstream unchecked (an outside
/// audit). Route paths match exactly (as Envoy's and APISIX's do), but
/// Spring, Rails, Express and Django serve both from one handler, which is
/// why rule entries take the twin.
fn unprotected_twins(routes: &[Route], found: &mut Found) {
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by_key(|&i| routes.get(i).is_none_or(|r| r.hosts.is_empty()));
    let exact: HashSet<&str> = routes
        .iter()
        .flat_map(|r| r.paths.iter())
        .filter(|p| !p.is_prefix())
        .map(|p| p.as_str())
        .collect();
    for (i, route) in routes.iter().enumerate() {
        if route.jwt.is_none() {
            continue;
        }
        for (j, path) in route.paths.iter().enumerate() {
            let p = path.as_str();
            if path.is_prefix() || p == "/" {
                continue;
            }
            let twin = match p.strip_suffix('/') {
                Some(without) => without.to_owned(),
                None => format!("{p}/"),
            };
            if exact.contains(twin.as_str()) {
                continue;
            }
            // The most specific prefix that takes the twin, and the first
            // route on it (in the router's order) that takes every method
            // and host this one takes.
            let longest = routes
                .iter()
                .flat_map(|r| r.paths.iter())
                .filter(|q| q.is_prefix() && twin.starts_with(q.as_str()))
                .map(|q| q.as_str().len())
                .max();
            let Some(longest) = longest else { continue };
            let taker = order.iter().copied().find(|&k| {
                routes.get(k).is_some_and(|r| {
                    r.paths.iter().any(|q| {
                        q.is_prefix() && q.as_str().len() == longest && twin.starts_with(q.as_str())
                    }) && covers(r, route)
                })
            });
            let Some(k) = taker.filter(|&k| k != i) else {
                continue;
            };
            let Some(other) = routes.get(k).filter(|r| r.jwt.is_none()) else {
                continue;
            };
            found.warn(
                format!("routes[{i}].paths[{j}]"),
                format!(
                    "{p:?} is exact, and {twin:?} goes to route {:?}, which needs \
                     no token: frameworks serve both from one handler; list {twin:?} too, or \
                     write {:?}",
                    other.name,
                    format!("{}*", p.trim_end_matches('/'))
                ),
            );
        }
    }
}

/// Whether every request `later` takes (method and host) `first` takes too.
fn covers(first: &Route, later: &Route) -> bool {
    let methods = match (&first.methods, &later.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(f), Some(l)) => l.iter().all(|m| crate::takes_method(Some(f), m)),
    };
    let hosts = match (first.hosts.is_empty(), later.hosts.is_empty()) {
        (true, _) => true,
        (false, true) => false,
        (false, false) => later.hosts.iter().all(|h| {
            first.hosts.contains(h)
                || (!h.starts_with("*.") && crate::takes_host(&first.hosts, Some(h)))
        }),
    };
    methods && hosts
}

/// A provider's back-channel logout path that a route names as one of its
/// paths, or a policy as its `logout_path` or `logout_everywhere_path`: the
/// gateway answers every request to it as a back-channel logout (SPEC
/// §3.10), so the route never sees it and a user's logout there is refused.
/// (A route whose prefix merely covers it, a catch-all, is the usual case.)
fn backchannel_paths(raw: &RawConfig, found: &mut Found) {
    use jwtgate_core::path::{match_form, Method, PathPattern, RuleEntry};
    // As the data plane matches: an entry's own rule (a prefix, or an exact
    // path with or without a trailing slash), in any method.
    let entry_takes = |entry: &str, path: &str| {
        RuleEntry::parse(entry).is_ok_and(|e| Method::ALL.iter().any(|m| e.matches(*m, path)))
    };
    for (i, p) in raw.providers.iter().enumerate() {
        let Some(raw_path) = p
            .backchannel_logout_path
            .as_deref()
            .filter(|p| !p.is_empty())
        else {
            continue;
        };
        let path = match_form(raw_path);
        let named = raw.routes.iter().find_map(|r| {
            let exact = |rp: &String| {
                PathPattern::parse(rp).is_ok_and(|pat| !pat.is_prefix() && pat.matches(&path))
            };
            if r.paths.iter().any(exact) {
                return Some(format!("route {:?} names it as a path", r.name));
            }
            let jwt = r.jwt.as_ref()?;
            [
                ("logout_path", &jwt.logout_path),
                ("logout_everywhere_path", &jwt.logout_everywhere_path),
            ]
            .into_iter()
            .find(|(_, entry)| entry.as_deref().is_some_and(|e| entry_takes(e, &path)))
            .map(|(field, _)| format!("jwt.{field} of route {:?} takes it", r.name))
        });
        if let Some(named) = named {
            found.warn(
                format!("providers[{i}].backchannel_logout_path"),
                format!(
                    "{raw_path:?} is answered by the gateway as a back-channel logout whatever \
                     the routes say, and {named}: those requests never reach the route (a \
                     user's logout there is refused); choose another path"
                ),
            );
        }
    }
}

/// Names that load from a file but that etcd, an admin URL or a log line
/// cannot carry as written. Refusing them would break files that load
/// today, so they are warnings; Kong and APISIX keep names to a safe set
/// from the start.
fn names(config: &Config, found: &mut Found) {
    let raw = &config.raw;
    let lists: [(&str, Vec<&str>); 3] = [
        (
            "routes",
            raw.routes.iter().map(|r| r.name.as_str()).collect(),
        ),
        (
            "consumers",
            raw.consumers.iter().map(|c| c.username.as_str()).collect(),
        ),
        (
            "providers",
            raw.providers.iter().map(|p| p.name.as_str()).collect(),
        ),
    ];
    for (list, names) in lists {
        let field = if list == "consumers" {
            "username"
        } else {
            "name"
        };
        for (i, name) in names.into_iter().enumerate() {
            if let Some(problem) = name_problem(name) {
                found.warn(format!("{list}[{i}].{field}"), problem);
            }
        }
    }
}

/// What is wrong with `name` as a route, consumer or provider name, if
/// anything: said by `check`, and refused by the admin API for a new one.
pub fn name_problem(name: &str) -> Option<String> {
    let why = if name.contains('/') {
        "holds \"/\": it cannot move to etcd (`config push` refuses it), where the name is \
         the last segment of the object's key"
    } else if name.chars().any(char::is_control) {
        "holds a control character, which log lines show escaped and an admin URL must \
         percent-encode"
    } else if name.trim() != name {
        "starts or ends with whitespace, which nobody sees in a log line or the console"
    } else if name.chars().any(jwtgate_core::invisible::is_invisible) {
        "holds an invisible or direction-changing character (a zero-width space, a \
         right-to-left override, a non-breaking or line-separating space), which makes it \
         look like another name in the console, the metrics and the log"
    } else if name == "." || name == ".." {
        "is a dot segment, which HTTP clients remove from an admin URL unless it is \
         percent-encoded"
    } else if name.len() > MAX_NAME_BYTES {
        "is over 256 bytes, and it goes into access log lines and identity headers"
    } else {
        return None;
    };
    Some(format!(
        "{name:?} {why}; a name of letters, digits and -._~@ travels everywhere"
    ))
}

/// The longest name that is not warned about.
const MAX_NAME_BYTES: usize = 256;

/// Standard claims an end user may edit at many IdPs (OIDC Core §5.1).
const USER_CHOSEN_CLAIMS: [&str; 8] = [
    "preferred_username",
    "email",
    "name",
    "nickname",
    "given_name",
    "family_name",
    "middle_name",
    "upn",
];

/// The host of a plain `http://` URL whose host is not a loopback address:
/// whoever is on the way reads and may replace what it serves. Also for a
/// URL a discovery document names (`jwtgate-keys` logs it).
pub fn plain_http_off_loopback(url: &str) -> Option<&str> {
    plain_http_host(url).filter(|h| !is_loopback(h))
}

/// The host of a plain `http://` URL; `None` for any other.
fn plain_http_host(url: &str) -> Option<&str> {
    let (scheme, rest) = (url.get(..7)?, url.get(7..)?);
    if !scheme.eq_ignore_ascii_case("http://") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    Some(match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What an upstream's nodes say that does nothing: what leaves a node out
/// or weighs it, on a route of one node (its one node is never left out,
/// and takes every request; `max_fails: 1` and `weight=1` are the defaults
/// written out); `fail_timeout_ms` beside `max_fails: 0`; a node listed
/// twice (it takes two turns: say `weight=` instead).
fn upstream_nodes(upstream: &crate::RawUpstream, at: &str, found: &mut Found) {
    let nodes = upstream.nodes.as_deref().unwrap_or_default();
    if upstream.max_fails == Some(0) && upstream.fail_timeout_ms.is_some() {
        found.warn(
            format!("{at}.fail_timeout_ms"),
            "does nothing: max_fails: 0 never leaves a node out".into(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let address = node.split_ascii_whitespace().next().unwrap_or_default();
        if !seen.insert(address.to_ascii_lowercase()) {
            found.warn(
                format!("{at}.nodes[{i}]"),
                format!(
                    "{address:?} is listed twice: each listing takes its own turns (its \
                     health and connections are shared); give one listing weight=N instead"
                ),
            );
        }
    }
    let [node] = nodes else {
        return;
    };
    let why = "a route with one node never leaves it out (there is no other to send to)";
    if upstream.max_fails.is_some_and(|m| m > 1) {
        found.warn(format!("{at}.max_fails"), format!("does nothing: {why}"));
    }
    if upstream.fail_timeout_ms.is_some() && upstream.max_fails != Some(0) {
        found.warn(
            format!("{at}.fail_timeout_ms"),
            format!("does nothing: {why}"),
        );
    }
    let weighed = node
        .split_ascii_whitespace()
        .any(|w| w.starts_with("weight=") && w != "weight=1");
    if weighed {
        found.warn(
            format!("{at}.nodes[0]"),
            "weight= does nothing: a route with one node sends it every request".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn warnings_of(routes: &str) -> Vec<String> {
        let text = format!(
            "listen: \"127.0.0.1:0\"\nproviders:\n  - name: corp\n    issuer: https://idp.example\n    jwks_uri: https://idp.example/keys\n    audiences: [api]\nroutes:\n{routes}"
        );
        warnings_of_file(&text)
    }

    /// Every warning of a whole config file's `text`.
    fn warnings_of_file(text: &str) -> Vec<String> {
        let config = crate::load_str(text, Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        warnings(&config).iter().map(ToString::to_string).collect()
    }

    /// The one warning of a config with `routes`.
    fn only_warning(routes: &str) -> String {
        let w = warnings_of(routes);
        assert_eq!(w.len(), 1, "{w:?}");
        w.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn a_max_stale_that_forces_frequent_fetches_is_warned_about() {
        let with = |secs: u64| {
            let text = format!(
                "listen: \"127.0.0.1:0\"\nproviders:\n  - name: corp\n    issuer: https://idp.example\n    jwks_uri: https://idp.example/keys\n    max_stale_seconds: {secs}\nroutes: []\n"
            );
            warnings_of_file(&text)
        };
        let w = with(5);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("providers[0].max_stale_seconds: 5 s: the keys are fetched again by half of it at the latest (every 2 s"),
            "{w:?}"
        );
        assert!(with(120).is_empty());
    }

    /// An outside audit: an HS256 consumer whose secret was a public key's
    /// PEM passed `check` and the admin API silently.
    #[test]
    fn a_public_key_given_as_a_secret_is_warned_about() {
        let with_secret = |secret: &str| {
            let text = format!(
                "listen: \"127.0.0.1:0\"\nconsumers:\n  - username: alice\n    jwt:\n      key: alice\n      \
                 secret: {secret}\nroutes: []\n"
            );
            warnings_of_file(&text)
        };
        let pem = with_secret(
            "\"-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\\n-----END PUBLIC KEY-----\\n\"",
        );
        assert_eq!(pem.len(), 1, "{pem:?}");
        assert!(
            pem[0].starts_with(
                "consumers[0].jwt.secret: is a PEM document: an HMAC secret whoever holds"
            ),
            "{pem:?}"
        );
        let jwk = with_secret(r#"'{"kty":"RSA","n":"0vx7","e":"AQAB"}'"#);
        assert_eq!(jwk.len(), 1, "{jwk:?}");
        assert!(jwk[0].contains("is a JWK"), "{jwk:?}");
        assert!(with_secret(r#"'{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}'"#).is_empty());
        assert!(with_secret("a-long-random-secret-of-sufficient-length-0123").is_empty());
    }

    /// An outside audit: a key with `é` worked with curl and never in the
    /// console, `check` saying ok.
    #[test]
    fn an_admin_key_a_browser_cannot_send_is_warned_about() {
        let with_key = |key: &str| {
            let text = format!(
                "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\", api_key: \"{key}\" }}\nroutes: []\n"
            );
            warnings_of_file(&text)
        };
        let w = with_key("abcdéfghijabcdefghijabcdefghij1234");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "admin.api_key: holds characters outside ASCII: the console cannot sign in"
            ),
            "{w:?}"
        );
        assert!(with_key("abcdefghijabcdefghijabcdefghij12345").is_empty());
    }

    #[test]
    fn an_ipv4_listener_next_to_the_ipv6_wildcard_is_warned_about() {
        // Within `listen`, the node binds [::] IPv6 only: both are served.
        let text = "listen: [\"[::]:8080\", \"0.0.0.0:8080\", \"127.0.0.1:9000\"]\nroutes: []\n";
        assert!(warnings_of_file(text).is_empty());
        // Across the data plane and the admin API, the host decides.
        let text = "listen: [\"[::]:8080\"]\nadmin: { listen: \"127.0.0.1:8080\", api_key: k }\nroutes: []\n";
        let w: Vec<String> = warnings_of_file(text);
        assert!(
            w.iter().any(|w| w
                .starts_with("admin.listen: 127.0.0.1:8080 may not be bound next to [::]:8080")),
            "{w:?}"
        );
    }

    /// An outside audit: `DELETE_/a/*` with scopes, while `required_paths`
    /// lists only `GET_/a/admin*`, served a `DELETE` without a token,
    /// `check` saying ok.
    #[test]
    fn authorize_entries_the_path_rules_leave_open_are_warned_about() {
        let route = |rules: &str, matches: &str| {
            format!(
                "  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ echo: true }}\n    jwt:\n      providers: [corp]\n{rules}      authorize:\n        - match: {matches}\n          scopes: [write]\n"
            )
        };
        let required = "      required_paths: [\"GET_/a/admin*\"]\n";
        let w = only_warning(&route(required, "[\"DELETE_/a/*\"]"));
        assert!(
            w.starts_with("routes[0].jwt.authorize[0].match[0]: \"DELETE_/a/*\" is never applied: required_paths takes none of the requests it matches"),
            "{w}"
        );
        // Partly covered, or covered: nothing to say.
        assert!(warnings_of(&route(required, "[\"ANY_/a/*\"]")).is_empty());
        assert!(warnings_of(&route(required, "[\"GET_/a/admin/x\"]")).is_empty());
        let open = "      not_required_paths: [\"ANY_/a/public*\"]\n";
        let w = only_warning(&route(open, "[\"GET_/a/x\", \"POST_/a/public/x\"]"));
        assert!(
            w.starts_with("routes[0].jwt.authorize[0].match[1]: \"POST_/a/public/x\" is never applied: not_required_paths takes every request it matches"),
            "{w}"
        );
        assert!(warnings_of(&route("", "[\"DELETE_/a/*\"]")).is_empty());
        // Deny by default beside required_paths refuses only what they list.
        let deny = format!("{required}      authorize_default: deny\n");
        let w = only_warning(&route(&deny, "[\"ANY_/a/*\"]"));
        assert!(
            w.starts_with(
                "routes[0].jwt.authorize_default: deny refuses only requests that need a token"
            ),
            "{w}"
        );
        assert!(
            warnings_of(&route("      authorize_default: deny\n", "[\"ANY_/a/*\"]")).is_empty()
        );
        let open_deny = format!("{open}      authorize_default: deny\n");
        assert!(warnings_of(&route(&open_deny, "[\"ANY_/a/*\"]")).is_empty());
        // required_paths that take every request of the route: deny covers all.
        let whole = "      required_paths: [\"ANY_/a/*\"]\n      authorize_default: deny\n";
        assert!(warnings_of(&route(whole, "[\"ANY_/a/*\"]")).is_empty());
    }

    #[test]
    fn authorize_entries_no_request_reaches_are_warned_about() {
        let route = |rules: &str| {
            format!(
                "  - name: a\n    paths: [\"/a/*\", \"/b\"]\n    upstream: {{ echo: true }}\n    jwt:\n      providers: [corp]\n      authorize:\n{rules}"
            )
        };
        let rule = |matches: &str, scope: &str| {
            format!("        - match: {matches}\n          scopes: [{scope}]\n")
        };
        let w = only_warning(&route(
            &(rule("[\"ANY_/a/*\"]", "read") + &rule("[\"GET_/b\", \"POST_/a/x\"]", "write")),
        ));
        assert!(
            w.starts_with("routes[0].jwt.authorize[1].match[1]: \"POST_/a/x\" is never applied: authorize[0] comes first"),
            "{w}"
        );
        let w = only_warning(&route(&rule("[\"GET_/c/*\", \"GET_/b\"]", "read")));
        assert!(
            w.starts_with("routes[0].jwt.authorize[0].match[0]: \"GET_/c/*\" is never applied: it matches none of the route's paths"),
            "{w}"
        );
        // Narrower first, or only overlapping, or the trailing-slash twin
        // of a route path: each entry can apply.
        assert!(warnings_of(&route(
            &(rule("[\"GET_/a/x\"]", "read") + &rule("[\"ANY_/a/*\"]", "write"))
        ))
        .is_empty());
        assert!(warnings_of(&route(
            &(rule("[\"GET_/a/*\"]", "read") + &rule("[\"ANY_/a/x\"]", "write"))
        ))
        .is_empty());
        assert!(warnings_of(&route(&rule("[\"GET_/b/\", \"GET_/a/\"]", "read"))).is_empty());
        // Outside the route's methods: never applied; HEAD is GET's.
        let get_only = |rules: &str| {
            format!(
                "  - name: a\n    paths: [\"/a/*\"]\n    methods: [GET]\n    upstream: {{ echo: true }}\n    jwt:\n      providers: [corp]\n      authorize:\n{rules}"
            )
        };
        let w = only_warning(&get_only(&rule("[\"POST_/a/x\", \"HEAD_/a/x\"]", "read")));
        assert!(
            w.starts_with("routes[0].jwt.authorize[0].match[0]: \"POST_/a/x\" is never applied: it matches none of the route's paths and methods"),
            "{w}"
        );
        let custom = get_only(&rule("[\"POST_/a/x\"]", "read")).replace("[GET]", "[GET, PURGE]");
        assert!(
            warnings_of(&custom).is_empty(),
            "a method rules cannot name is any"
        );
    }

    #[test]
    fn a_forwarded_logout_path_that_takes_many_requests_is_warned_about() {
        let route = |logout: &str, forward: &str| {
            format!(
                "  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ echo: true }}\n    jwt:\n      providers: [corp]\n      consumers: false\n      cookie: \"\"\n      use_jwt_blacklist_revoking: true\n      logout_path: \"{logout}\"\n{forward}      authorize:\n        - match: [\"ANY_/a/*\"]\n          scopes: [admin]\n"
            )
        };
        let forward = "      logout_forward: true\n";
        for (logout, takes) in [
            ("ANY_/a/auth/logout*", "every path under it"),
            ("ANY_/a/auth/logout", "every method"),
        ] {
            let w = only_warning(&route(logout, forward));
            assert!(
                w.starts_with(&format!(
                    "routes[0].jwt.logout_path: {logout:?} takes {takes}"
                )),
                "{w}"
            );
        }
        assert!(warnings_of(&route("POST_/a/auth/logout", forward)).is_empty());
        assert!(warnings_of(&route("ANY_/a/auth/logout*", "")).is_empty());
        // Without revoking, the logout path is no logout (warned as such).
        let inactive = route("ANY_/a/auth/logout*", forward)
            .replace("      use_jwt_blacklist_revoking: true\n", "");
        let w = only_warning(&inactive);
        assert!(
            w.contains("does nothing while use_jwt_blacklist_revoking"),
            "{w}"
        );
    }

    #[test]
    fn what_leaves_nodes_out_or_weighs_them_on_a_route_of_one_node_is_warned_about() {
        let route = |upstream: &str| {
            format!("  - name: a\n    paths: [\"/a/*\"]\n    upstream: {upstream}\n")
        };
        for (upstream, expected) in [
            (
                r#"{ nodes: ["127.0.0.1:9"], max_fails: 3 }"#,
                "routes[0].upstream.max_fails: does nothing: a route with one node never leaves it out",
            ),
            (
                r#"{ nodes: ["127.0.0.1:9"], fail_timeout_ms: 3000 }"#,
                "routes[0].upstream.fail_timeout_ms: does nothing: a route with one node never leaves it out",
            ),
            (
                r#"{ nodes: ["127.0.0.1:9 weight=5"] }"#,
                "routes[0].upstream.nodes[0]: weight= does nothing: a route with one node sends it every request",
            ),
            (
                r#"{ nodes: ["127.0.0.1:9", "127.0.0.1:10"], max_fails: 0, fail_timeout_ms: 3000 }"#,
                "routes[0].upstream.fail_timeout_ms: does nothing: max_fails: 0 never leaves a node out",
            ),
            (
                r#"{ nodes: ["127.0.0.1:9 weight=2", "127.0.0.1:10", "127.0.0.1:9 weight=3"] }"#,
                "routes[0].upstream.nodes[2]: \"127.0.0.1:9\" is listed twice",
            ),
        ] {
            let w = only_warning(&route(upstream));
            assert!(w.starts_with(expected), "{upstream}: {w}");
        }
        for upstream in [
            r#"{ nodes: ["127.0.0.1:9", "127.0.0.1:10 weight=2"], max_fails: 3, fail_timeout_ms: 3000 }"#,
            r#"{ nodes: ["127.0.0.1:9"], max_fails: 1 }"#,
            r#"{ nodes: ["127.0.0.1:9 weight=1"] }"#,
        ] {
            assert!(warnings_of(&route(upstream)).is_empty(), "{upstream}");
        }
    }

    #[test]
    fn websocket_close_at_exp_on_a_route_without_jwt_is_warned_about() {
        let route = |jwt: &str| {
            format!(
                "  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ nodes: [\"127.0.0.1:9\"] }}\n    websocket: true\n    websocket_close_at_exp: true\n{jwt}"
            )
        };
        let w = only_warning(&route(""));
        assert!(
            w.starts_with(
                "routes[0].websocket_close_at_exp: does nothing: the route checks no token"
            ),
            "{w}"
        );
        assert!(
            warnings_of(&route("    jwt: { providers: [corp], consumers: false }\n")).is_empty()
        );
    }

    #[test]
    fn a_logout_by_get_while_tokens_ride_in_a_cookie_is_warned_about() {
        let route = |jwt: &str| {
            format!(
                "  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ echo: true }}\n    jwt: {{ providers: [corp], consumers: false, use_jwt_blacklist_revoking: true, {jwt} }}\n"
            )
        };
        for (jwt, key) in [
            ("logout_path: \"GET_/a/logout\"", "logout_path"),
            ("logout_path: \"ANY_/a/logout\"", "logout_path"),
            (
                "logout_path: \"POST_/a/logout\", logout_everywhere_path: \"GET_/a/logout-all\"",
                "logout_everywhere_path",
            ),
        ] {
            let w = only_warning(&route(jwt));
            assert!(
                w.starts_with(&format!("routes[0].jwt.{key}: "))
                    && w.contains("takes GET and the route reads tokens from the \"jwt\" cookie"),
                "{w}"
            );
        }
        let w = only_warning(&route("cookie: sess, logout_path: \"GET_/a/logout\""));
        assert!(w.contains("the \"sess\" cookie"), "{w}");
        for quiet in [
            "logout_path: \"POST_/a/logout\", logout_everywhere_path: \"DELETE_/a/sessions\"",
            "cookie: \"\", logout_path: \"GET_/a/logout\"",
        ] {
            assert!(warnings_of(&route(quiet)).is_empty(), "{quiet}");
        }
    }

    /// An outside audit: both loaded silently, the guest off and every
    /// preflight answered with an empty Access-Control-Allow-Methods.
    /// Warnings, not errors: configs that loaded before still load.
    #[test]
    fn an_empty_anonymous_consumer_or_cors_methods_list_is_warned_about() {
        let w = only_warning(
            "  - name: a\n    paths: [\"/a/*\"]\n    upstream: { echo: true }\n    jwt: { anonymous_consumer: \"\" }\n",
        );
        assert!(
            w.starts_with(
                "routes[0].jwt.anonymous_consumer: is empty, which is no anonymous consumer"
            ),
            "{w}"
        );
        let w = only_warning(
            "  - name: a\n    paths: [\"/a/*\"]\n    upstream: { echo: true }\n    cors: { allow_origins: [\"https://a.example\"], allow_methods: [] }\n",
        );
        assert!(
            w.starts_with("routes[0].cors.allow_methods: is empty, which allows no method"),
            "{w}"
        );
    }

    #[test]
    fn a_claim_named_by_a_url_is_warned_about() {
        let route = "  - name: a\n    paths: [\"/a/*\"]\n    upstream: { echo: true }\n    jwt:\n      providers: [corp]\n      consumers: false\n      required_claims: [exp, \"https://example.com/tenant\", realm_access.roles]\n      forward_claims: { \"https://example.com/roles\": X-Roles, realm_access.roles: X-R }\n      authorize:\n        - match: [\"ANY_/a/*\"]\n          any_of: { \"https://example.com/roles\": [admin], resource_access.a.roles: [x], \"urn:example.com:roles\": [editor] }\n";
        let w = warnings_of(route);
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(
            w.iter().any(|w| w.starts_with("routes[0].jwt.required_claims[1]: \"https://example.com/tenant\" is read as a path of 2 nested claims")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.starts_with("routes[0].jwt.forward_claims.https://example.com/roles: \"https://example.com/roles\" is read as a path of 2 nested claims")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w
                    .starts_with("routes[0].jwt.authorize[0].any_of.https://example.com/roles:")),
            "{w:?}"
        );
    }

    #[test]
    fn an_anonymous_consumer_with_a_credential_is_warned_about() {
        let text = |credential: &str| {
            format!(
                "listen: \"127.0.0.1:0\"\nconsumers:\n  - username: guest\n{credential}routes:\n  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ echo: true }}\n    jwt: {{ anonymous_consumer: guest }}\n"
            )
        };
        let of = |text: &str| -> Vec<String> { warnings_of_file(text) };
        let w = of(&text(
            "    jwt: { key: g, secret: \"guest-secret-0123456789abcdefghijkl\" }\n",
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("routes[0].jwt.anonymous_consumer: \"guest\" has a jwt credential"),
            "{w:?}"
        );
        assert!(of(&text("")).is_empty());
    }

    #[test]
    fn an_exact_path_whose_twin_goes_to_a_route_without_a_token_is_warned_about() {
        let routes = |catch_all_jwt: &str, extra: &str| {
            format!(
                "  - name: admin\n    paths: [\"/admin\"{extra}]\n    upstream: {{ echo: true }}\n    jwt: {{}}\n  - name: rest\n    paths: [\"/*\"]\n    upstream: {{ echo: true }}\n{catch_all_jwt}"
            )
        };
        let w = only_warning(&routes("", ""));
        assert!(
            w.starts_with("routes[0].paths[0]: \"/admin\" is exact, and \"/admin/\" goes to route \"rest\", which needs no token"),
            "{w}"
        );
        assert!(w.contains("write \"/admin*\""), "{w}");
        // The twin listed, or a catch-all that checks tokens too: nothing.
        assert!(warnings_of(&routes("", ", \"/admin/\"")).is_empty());
        assert!(warnings_of(&routes("    jwt: {}\n", "")).is_empty());
    }

    #[test]
    fn a_clean_config_has_none() {
        let w = warnings_of(
            "  - name: b\n    paths: [\"/a/*\"]\n    methods: [POST]\n    upstream: { echo: true }\n  - name: a\n    paths: [\"/a/*\"]\n    upstream: { echo: true }\n    jwt: { providers: [corp], audiences: [api] }\n",
        );
        assert!(w.is_empty(), "{w:?}");
    }

    /// Found by an outside audit: a `methods: [POST]` route after an
    /// any-method one on the same path never saw a request, unwarned.
    #[test]
    fn a_route_hidden_by_those_before_it_on_every_path_is_warned_about() {
        let route = |name: &str, paths: &str, extra: &str| {
            format!("  - name: {name}\n    paths: {paths}\n{extra}    upstream: {{ echo: true }}\n")
        };
        let hidden = |routes: &[String]| -> Vec<String> {
            warnings_of(&routes.concat())
                .into_iter()
                .filter(|w| w.contains("is never matched"))
                .collect()
        };
        let all = route("all", "[\"/a/*\"]", "");
        let post = route("post", "[\"/a/*\"]", "    methods: [POST]\n");
        let w = hidden(&[all.clone(), post.clone()]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "routes[1]: route \"post\" is never matched: route \"all\" comes before it"
            ),
            "{w:?}"
        );
        assert!(hidden(&[post.clone(), all.clone()]).is_empty());
        // GET takes HEAD; a HEAD-only route after it is hidden, a GET-only
        // one after a HEAD-only one is not.
        let get = route("get", "[\"/a/*\"]", "    methods: [GET]\n");
        let head = route("head", "[\"/a/*\"]", "    methods: [HEAD]\n");
        assert_eq!(hidden(&[get.clone(), head.clone()]).len(), 1);
        assert!(hidden(&[head.clone(), get.clone()]).is_empty());
        // Routes that name hosts come first whatever the order: an
        // any-host route before one does not hide it; one whose hosts
        // cover another's, listed first, does.
        let api = route("api", "[\"/a/*\"]", "    hosts: [api.example]\n");
        let wild = route("wild", "[\"/a/*\"]", "    hosts: [\"*.example\"]\n");
        assert!(hidden(&[all.clone(), api.clone()]).is_empty());
        assert_eq!(hidden(&[api.clone(), all.clone()]).len(), 0);
        let w = hidden(&[wild.clone(), api.clone()]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("routes[1]: route \"api\""), "{w:?}");
        assert!(hidden(&[api.clone(), wild.clone()]).is_empty());
        // Every path must be hidden, by one route or several.
        let two = route("two", "[\"/a/*\", \"/b\"]", "    methods: [POST]\n");
        assert!(hidden(&[all.clone(), two.clone()]).is_empty());
        let b = route("b", "[\"/b\"]", "");
        let w = hidden(&[all.clone(), b.clone(), two.clone()]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("routes[2]: route \"two\" is never matched: route \"all\", and others on its other paths,"),
            "{w:?}"
        );
    }

    #[test]
    fn a_provider_listed_with_no_audience_on_either_side_is_a_warning() {
        let with = |provider: &str, route: &str| {
            warnings_of_file(&format!(
                "listen: \"127.0.0.1:0\"\nproviders:\n  - name: corp\n    issuer: https://idp.example\n    jwks_uri: https://idp.example/keys\n{provider}  - name: other\n    issuer: https://other.example\n    jwks_uri: https://other.example/keys\n    audiences: [api]\nroutes:\n  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ echo: true }}\n    jwt: {{ providers: [other, corp], consumers: false{route} }}\n"
            ))
        };
        let w = with("", "");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "routes[0].jwt.providers[1]: corp has no audiences and the route gives none: \
                 aud is not checked"
            ),
            "{w:?}"
        );
        assert_eq!(with("    audiences: []\n", ""), w, "[] is none");
        assert!(with("    audiences: [api]\n", "").is_empty());
        assert!(with("", ", audiences: [orders]").is_empty());
        assert_eq!(with("", ", audiences: []"), w);
    }

    #[test]
    fn a_short_admin_key_is_a_warning() {
        let admin = |key: &str| {
            let text = format!(
                "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\", api_key: {key} }}\n"
            );
            warnings_of_file(&text)
        };
        let w = admin("change-me");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("admin.api_key: is shorter than 32 bytes"),
            "{w:?}"
        );
        assert!(admin("0123456789abcdef0123456789abcdef").is_empty());
    }

    #[test]
    fn an_admin_listener_off_loopback_is_a_warning() {
        let text = "listen: \"127.0.0.1:0\"\nadmin: { listen: \"0.0.0.0:9180\", api_key: \
                    0123456789abcdef0123456789abcdef }\n";
        let w: Vec<String> = warnings_of_file(text);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("admin.listen: 0.0.0.0:9180 is not loopback"),
            "{w:?}"
        );
    }

    #[test]
    fn what_does_nothing_is_one_warning_each() {
        for (routes, expected) in [
            (
                "  - name: a\n    paths: [\"/*\"]\n    upstream: { echo: true }\n    jwt: { logout_path: \"POST_/logout\" }\n",
                "routes[0].jwt.logout_path: does nothing",
            ),
            (
                "  - name: a\n    paths: [\"/*\"]\n    upstream: { echo: true }\n    jwt: { audiences: [api] }\n",
                "routes[0].jwt.audiences: does nothing",
            ),
            (
                "  - name: a\n    paths: [\"/*\"]\n    upstream: { echo: true }\n    jwt: { required_claims: [iat] }\n",
                "routes[0].jwt.required_claims: leaves out exp",
            ),
            (
                "  - name: a\n    paths: [\"/x\", \"/y/*\"]\n    methods: [GET, POST]\n    upstream: { echo: true }\n  - name: b\n    paths: [\"/y/*\", \"/x\"]\n    methods: [POST, GET]\n    upstream: { echo: true }\n",
                "routes[1]: route \"b\" is never matched: route \"a\" comes before it",
            ),
        ] {
            let w = only_warning(routes);
            assert!(w.starts_with(expected), "{expected:?}: {w}");
        }
    }

    #[test]
    fn plain_http_key_sets_off_loopback_are_warned_about() {
        let text = "listen: \"127.0.0.1:0\"\nproviders:\n\
            - { name: a, issuer: https://a.example, jwks_uri: \"http://idp.corp:8080/keys\" }\n\
            - { name: b, issuer: \"http://10.0.0.5/realms/b\", discovery: true }\n\
            - { name: c, issuer: https://c.example, jwks_uri: \"http://127.0.0.1:8080/keys\" }\n\
            - { name: d, issuer: https://d.example, jwks_uri: \"http://[::1]:9/k\" }\n\
            - { name: e, issuer: https://e.example, jwks_uri: \"http://localhost/k\" }\n\
            - { name: f, issuer: https://f.example, discovery: true }\n\
            routes: []\n";
        let w: Vec<String> = warnings_of_file(text);
        assert_eq!(
            w,
            [
                "providers[0].jwks_uri: fetches keys over plain http from idp.corp, not a \
                 loopback address: whoever is on the way can replace them (use https://)",
                "providers[1].issuer: fetches keys over plain http from 10.0.0.5, not a \
                 loopback address: whoever is on the way can replace them (use https://)",
            ]
        );
    }

    #[test]
    fn a_consumer_claim_the_user_chooses_is_warned_about() {
        let text = "listen: \"127.0.0.1:0\"\nproviders:\n\
            - { name: a, issuer: https://a.example, discovery: true, consumer_claim: preferred_username }\n\
            - { name: b, issuer: https://b.example, discovery: true, consumer_claim: azp }\n\
            routes: []\n";
        let w: Vec<String> = warnings_of_file(text);
        assert_eq!(
            w,
            [
                "providers[0].consumer_claim: \"preferred_username\" is a claim many IdPs let \
              their users choose (OIDC Core §5.7): a user who picks a consumer's username \
              reaches the upstream as that consumer; name one the IdP sets (azp, client_id, sub)"
            ]
        );
    }

    #[test]
    fn a_leeway_longer_than_any_clock_skew_is_warned_about() {
        let route = |l: u64| {
            format!("  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ echo: true }}\n    jwt: {{ leeway_seconds: {l} }}\n")
        };
        assert!(warnings_of(&route(300)).is_empty());
        let w = only_warning(&route(18_446_744_073_709_551_615));
        assert!(
            w.starts_with("routes[0].jwt.leeway_seconds: 18446744073709551615 s lets a token in"),
            "{w}"
        );
    }

    const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tls");

    /// The certificate warnings of a config whose `tls` block is `tls`
    /// (paths in it relative to testdata/tls), at `now`.
    fn certificate_warnings(tls: &str, now: i64) -> Vec<String> {
        let tls = tls.replace("{dir}", TLS_DIR);
        let text = format!("listen: \"127.0.0.1:0\"\ntls: {tls}\nroutes: []\n");
        let mut config =
            crate::load_str(&text, Path::new("."), &|_| None).unwrap_or_else(|e| panic!("{e}"));
        // The checkout's mode of the key file is not these tests' matter.
        for c in config
            .tls
            .iter_mut()
            .flat_map(|t| t.certificates.iter_mut())
        {
            c.key_mode = Some(0o600);
        }
        let mut found = Found::default();
        certificates(&config, now, &mut found);
        found.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn tls_1_2_suites_listed_with_min_version_1_3_are_warned_about() {
        let w = certificate_warnings(
            r#"{ cert_file: "{dir}/server.crt", key_file: "{dir}/server.key", min_version: "1.3", cipher_suites: [TLS13_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256] }"#,
            1_800_000_000,
        );
        assert!(
            w.contains(
                &"tls.cipher_suites: lists TLS 1.2 suites (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) \
                  while min_version is \"1.3\": no handshake uses them"
                    .to_owned()
            ),
            "{w:?}"
        );
        let w = certificate_warnings(
            r#"{ cert_file: "{dir}/server.crt", key_file: "{dir}/server.key", min_version: "1.3", cipher_suites: [TLS13_AES_128_GCM_SHA256] }"#,
            1_800_000_000,
        );
        assert!(!w.iter().any(|w| w.contains("cipher_suites")), "{w:?}");
    }

    #[test]
    fn certificates_clients_refuse_now_are_warned_about() {
        let at = |now: i64| {
            certificate_warnings(
                r#"{ cert_file: "{dir}/server.crt", key_file: "{dir}/server.key" }"#,
                now,
            )
        };
        // testdata/tls/server.crt: valid from 2026-11-22 20:12:49 to
        // 2126-10-29 20:12:49 (UTC).
        assert!(at(1_795_378_369).is_empty());
        assert!(at(4_948_978_369).is_empty());
        assert_eq!(
            at(4_948_978_370),
            ["tls.cert_file: expired on 2126-10-29: clients refuse it (renew it, then SIGHUP)"]
        );
        assert_eq!(
            at(1_795_378_368),
            ["tls.cert_file: is not valid before 2026-11-22: clients refuse it until then"]
        );
    }

    #[test]
    fn a_later_certificate_without_dns_names_is_warned_about() {
        let load = |first: &str, second: &str| {
            certificate_warnings(
                &format!(
                    r#"{{ cert_file: "{{dir}}/{first}", key_file: "{{dir}}/server.key", certificates: [{{ cert_file: "{{dir}}/{second}", key_file: "{{dir}}/server.key" }}] }}"#
                ),
                1_800_000_000,
            )
        };
        let w = load("server.crt", "cn-only.crt");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with(
                "tls.certificates[0].cert_file: names no DNS name in its subjectAltName"
            ),
            "{w:?}"
        );
        // First, it serves every name the others do not cover.
        assert!(load("cn-only.crt", "server.crt").is_empty());
    }

    /// A certificate added after another holding the same names (a renewal
    /// listed after the one it replaces) is never chosen: the first stays
    /// served until it expires.
    #[test]
    fn a_certificate_whose_names_an_earlier_one_holds_is_warned_about() {
        let w = certificate_warnings(
            r#"{ cert_file: "{dir}/server.crt", key_file: "{dir}/server.key", certificates: [{ cert_file: "{dir}/cn-only.crt", key_file: "{dir}/server.key" }, { cert_file: "{dir}/server.crt", key_file: "{dir}/server.key" }] }"#,
            1_800_000_000,
        );
        let shadowed: Vec<&String> = w
            .iter()
            .filter(|w| w.contains("SNI never chooses it"))
            .collect();
        assert_eq!(shadowed.len(), 1, "{w:?}");
        assert!(
            shadowed[0].starts_with(
                "tls.certificates[1].cert_file: SNI never chooses it: each of its names (localhost"
            ) && shadowed[0].contains("held by a certificate listed before it (tls)"),
            "{w:?}"
        );
    }

    #[test]
    fn a_route_whose_methods_take_nothing_is_warned_about() {
        let w = warnings_of(
            "  - name: a\n    paths: [\"/a/*\"]\n    methods: []\n    upstream: { echo: true }\n  - name: b\n    paths: [\"/b/*\"]\n    methods: [CONNECT]\n    upstream: { echo: true }\n",
        );
        assert_eq!(
            w,
            [
                "routes[0].methods: is empty: the route takes no request (leave methods out for \
                 every method)",
                "routes[1].methods: CONNECT requests are refused (400) before any route is \
                 chosen: the route takes no request",
            ]
        );
    }

    #[test]
    fn names_etcd_an_admin_url_or_a_log_cannot_carry_are_warned_about() {
        let long = "n".repeat(257);
        let routes: String = [
            "ok-name_1.v2~x@corp",
            "a/b",
            "tab\tx",
            " pad",
            "..",
            long.as_str(),
        ]
        .iter()
        .map(|n| {
            format!(
                "  - name: {n:?}\n    paths: [\"/{}\"]\n    upstream: {{ echo: true }}\n",
                n.len()
            )
        })
        .collect();
        let w = warnings_of(&routes);
        let located: Vec<&str> = w
            .iter()
            .map(|w| w.split(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(
            located,
            [
                "routes[1].name",
                "routes[2].name",
                "routes[3].name",
                "routes[4].name",
                "routes[5].name"
            ],
            "{w:?}"
        );
        assert!(w[0].contains("cannot move to etcd"), "{w:?}");
        assert!(w[1].contains("control character"), "{w:?}");
        assert!(w[2].contains("whitespace"), "{w:?}");
        assert!(w[3].contains("dot segment"), "{w:?}");
        assert!(w[4].contains("over 256 bytes"), "{w:?}");
        assert!(name_problem(&"n".repeat(256)).is_none());
        assert!(name_problem("alice@example.com").is_none());
        assert!(name_problem(".hidden").is_none());
        // Names that look like others.
        for lookalike in [
            "orders\u{200B}",
            "\u{202E}sredro",
            "\u{FEFF}x",
            "a\u{00A0}b",
            "a\u{2028}b",
        ] {
            let problem = name_problem(lookalike).unwrap_or_default();
            assert!(problem.contains("invisible"), "{lookalike:?}: {problem}");
        }
        assert!(name_problem("two words").is_none());
        assert!(name_problem("Zürich-Ωmega").is_none());
    }

    #[test]
    fn consumer_and_provider_names_are_looked_at_too() {
        let text = "listen: \"127.0.0.1:0\"\nconsumers:\n  - username: \"team/alice\"\n    jwt: { key: k1, secret: \"0123456789abcdef0123456789abcdef\" }\nproviders:\n  - name: \"..\"\n    issuer: https://idp.example\n    jwks_uri: https://idp.example/keys\nroutes:\n  - name: a\n    paths: [\"/a\"]\n    upstream: { echo: true }\n    jwt: {}\n";
        let config =
            crate::load_str(text, Path::new("."), &|_| None).unwrap_or_else(|e| panic!("{e}"));
        let w: Vec<String> = warnings(&config).iter().map(ToString::to_string).collect();
        assert!(
            w.iter()
                .any(|w| w.starts_with("consumers[0].username: \"team/alice\" holds \"/\"")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("providers[0].name: \"..\" is a dot segment")),
            "{w:?}"
        );
    }

    #[test]
    fn claim_rules_a_consumer_can_meet_by_signing_are_warned_about() {
        let rule = "authorize: [{ match: [\"POST_/a/*\"], scopes: [w] }]";
        let text = |consumers: &str| {
            format!(
                "listen: \"127.0.0.1:0\"\nconsumers:\n  - {{ username: c, jwt: {{ key: c, secret: s3cret-0123456789abcdef0123456789abcdef }} }}\nproviders:\n  - {{ name: corp, issuer: https://idp.example, jwks_uri: https://idp.example/keys, audiences: [api] }}\nroutes:\n  - name: a\n    paths: [\"/a/*\"]\n    upstream: {{ echo: true }}\n    jwt: {{ providers: [corp], {consumers}{rule} }}\n"
            )
        };
        let of = |t: String| {
            let config = crate::load_str(&t, Path::new("."), &|_| None).expect("valid");
            warnings(&config)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of(text("")),
            [
                "routes[0].jwt.authorize: checks claims, and the route also takes consumer \
              tokens, whose claims their holder signs: any consumer can meet these rules (set \
              consumers: false if they are about what the providers grant)"
            ]
        );
        assert!(of(text("consumers: false, ")).is_empty());
    }

    #[test]
    fn a_backchannel_logout_path_a_route_names_is_said() {
        let with = |routes: &str| {
            let text = format!(
                "listen: \"127.0.0.1:0\"\nproviders:\n  - name: corp\n    issuer: https://idp.example\n    \
                 jwks_uri: https://idp.example/keys\n    client_id: gw\n    backchannel_logout_path: /v1/logout\n\
                 routes:\n{routes}"
            );
            let config = crate::load_str(&text, Path::new("."), &|_| None)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            warnings(&config)
                .iter()
                .map(ToString::to_string)
                .filter(|w| w.contains("backchannel_logout_path"))
                .collect::<Vec<_>>()
        };
        let policy = |extra: &str| {
            format!(
                "  - name: app\n    paths: [\"/v1/*\"]\n    upstream: {{ echo: true }}\n    \
                 jwt: {{ providers: [corp], consumers: false, use_jwt_blacklist_revoking: true, {extra} }}\n"
            )
        };
        for (routes, names) in [
            (
                policy("logout_path: \"POST_/v1/logout\""),
                "jwt.logout_path of route \"app\" takes it",
            ),
            (
                policy(
                    "logout_path: \"POST_/v1/bye\", logout_everywhere_path: \"POST_/v1/logout\"",
                ),
                "jwt.logout_everywhere_path of route \"app\" takes it",
            ),
            (
                "  - name: exact\n    paths: [\"/v1/logout\"]\n    upstream: { echo: true }\n"
                    .to_owned(),
                "route \"exact\" names it as a path",
            ),
        ] {
            let w = with(&routes);
            assert!(
                w.len() == 1
                    && w[0].contains("providers[0].backchannel_logout_path")
                    && w[0].contains(names),
                "{routes}: {w:?}"
            );
        }
        // As the data plane matches them: a prefix entry, the trailing-slash
        // twin of an exact one, another method.
        for entry in ["POST_/v1/*", "POST_/v1/logout/", "GET_/v1/logout"] {
            let w = with(&policy(&format!("logout_path: \"{entry}\"")));
            assert!(
                w.len() == 1 && w[0].contains("jwt.logout_path of route \"app\" takes it"),
                "{entry}: {w:?}"
            );
        }
        // A prefix (a catch-all) route covering it is the usual case: nothing
        // said; nor for a logout entry elsewhere.
        assert_eq!(
            with(&policy("logout_path: \"POST_/v1/bye\"")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_long_key_fetch_timeout_is_said() {
        let with = |ms: u64| {
            let text = format!(
                "listen: \"127.0.0.1:0\"\nproviders:\n  - name: corp\n    issuer: https://idp.example\n    \
                 jwks_uri: https://idp.example/keys\n    fetch_timeout_ms: {ms}\nroutes: []\n"
            );
            warnings_of_file(&text)
        };
        assert_eq!(with(30_000), Vec::<String>::new());
        for ms in [30_001, 60_000] {
            let w = with(ms);
            assert!(
                w.len() == 1
                    && w[0].contains("providers[0].fetch_timeout_ms")
                    && w[0].contains("waits"),
                "{w:?}"
            );
        }
    }
}
