//! [`RawConfig`] -> [`Config`]: parse keys, compile path rules, check every
//! cross-field rule (unique names and keys, one path mode per policy, ...),
//! collecting every error with its location.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jwtgate_core::claims::ClaimPath;
use jwtgate_core::consumer::{Consumer, ConsumerRegistry, Credential, DuplicateKey};
use jwtgate_core::jwt::{Algorithm, VerifyKey};
use jwtgate_core::path::{PathPattern, PathRules, RuleEntry};
use jwtgate_core::policy::{JwtPolicy, Logout, PathScope, Protection, TokenSources};
use jwtgate_core::provider::ProviderDirectory;

use crate::error::{child, index, Errors};
use crate::model::*;
use crate::raw::*;

/// The shortest HMAC secret accepted (SPEC §3.11).
pub const MIN_SECRET_BYTES: usize = 32;

/// What a policy's settings left out default to (SPEC §2), written out by
/// [`jwt_defaults`], from which [`jwt_policy`] compiles.
const DEFAULT_KEY_CLAIM: &str = "key";
const DEFAULT_HEADER: &str = "authorization";
const DEFAULT_QUERY: &str = "jwt";
const DEFAULT_COOKIE: &str = "jwt";
const DEFAULT_REALM: &str = "jwtgate";

/// `j` with each setting left out written as the value it defaults to,
/// and a list or map left out as an empty one where that reads the same
/// (the header name in lower case, as it is read): two policies equal so
/// are one policy, however each was written. `protection.immutable`
/// compares them so: `leeway_seconds: 0` written out changes nothing (an
/// outside audit found it refused as a change).
pub fn jwt_defaults(j: &RawJwt) -> RawJwt {
    let text =
        |v: &Option<String>, default: &str| Some(v.clone().unwrap_or_else(|| default.to_owned()));
    RawJwt {
        key_claim_name: text(&j.key_claim_name, DEFAULT_KEY_CLAIM),
        header: Some(
            j.header
                .as_deref()
                .unwrap_or(DEFAULT_HEADER)
                .to_ascii_lowercase(),
        ),
        query: text(&j.query, DEFAULT_QUERY),
        cookie: text(&j.cookie, DEFAULT_COOKIE),
        realm: text(&j.realm, DEFAULT_REALM),
        hide_credentials: Some(j.hide_credentials.unwrap_or(false)),
        required_claims: Some(
            j.required_claims
                .clone()
                .unwrap_or_else(|| vec!["exp".to_owned()]),
        ),
        leeway_seconds: Some(j.leeway_seconds.unwrap_or(0)),
        max_lifetime_seconds: Some(j.max_lifetime_seconds.unwrap_or(0)),
        forward_claims: Some(j.forward_claims.clone().unwrap_or_default()),
        required_paths: Some(j.required_paths.clone().unwrap_or_default()),
        not_required_paths: Some(j.not_required_paths.clone().unwrap_or_default()),
        use_jwt_blacklist_revoking: Some(j.use_jwt_blacklist_revoking.unwrap_or(false)),
        logout_forward: Some(j.logout_forward.unwrap_or(false)),
        providers: Some(j.providers.clone().unwrap_or_default()),
        consumers: Some(j.consumers.unwrap_or(true)),
        audiences: Some(j.audiences.clone().unwrap_or_default()),
        authorize: Some(j.authorize.clone().unwrap_or_default()),
        authorize_default: text(&j.authorize_default, "allow"),
        ..j.clone()
    }
}

/// Methods a route may list (any RFC 9110 token is allowed, upper case).
fn valid_method(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
}

/// RFC 9110 token characters, for header names.
pub(crate) fn valid_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers that frame the message or that the gateway rewrites
/// (`X-Forwarded-For`), besides the hop-by-hop ones and the ones it owns
/// ([`jwtgate_core::owned_headers`]). Neither a `forward_claims` entry nor
/// a token header (`jwt.header`) may name any of them: a claim's header is
/// stripped from every client request (SPEC §3.2), so one of these would
/// take the client's `Host` or body framing away; a token there is
/// stripped or consumed before it is read, so no token would ever be
/// checked.
const FRAMING: [&str; 3] = ["host", "content-length", "x-forwarded-for"];

/// Headers that carry credentials: no claim may be forwarded in one.
const CARRIERS: [&str; 3] = ["proxy-authorization", "authorization", "cookie"];

/// `h` as the proxy compares header names: lower case, `_` as `-`.
fn folded(h: &str) -> String {
    h.to_ascii_lowercase().replace('_', "-")
}

/// Whether a token header named `h` could never be read: the gateway owns
/// it, frames the request with it or removes it as hop-by-hop first.
fn never_read_as_token_header(h: &str) -> bool {
    use jwtgate_core::owned_headers::{KONG_IDENTITY_HEADERS, RESPELLED_NOT_PASSED};
    let h_folded = folded(h);
    owned_or_framing(h)
        || KONG_IDENTITY_HEADERS.contains(&h_folded.as_str())
        || RESPELLED_NOT_PASSED.contains(&h_folded.as_str())
}

/// Whether `h` is a header the gateway owns, frames the request with, or
/// removes as hop-by-hop.
fn owned_or_framing(h: &str) -> bool {
    use jwtgate_core::owned_headers::{CLIENT_MAY_NOT_SEND, HOP_BY_HOP, IDENTITY_HEADERS};
    let h = folded(h);
    [
        &FRAMING[..],
        &HOP_BY_HOP,
        &IDENTITY_HEADERS,
        &CLIENT_MAY_NOT_SEND,
    ]
    .iter()
    .any(|list| list.contains(&h.as_str()))
}

/// Whether a `forward_claims` entry may not name `h`: a header the gateway
/// owns, frames the request with, removes as hop-by-hop, or a credential.
/// Kong's identity headers it may name: a client's copy is removed from
/// every request, and the claim's value is then the gateway's to set.
fn not_a_claim_header(h: &str) -> bool {
    owned_or_framing(h) || CARRIERS.contains(&folded(h).as_str())
}

/// The longest a subject cut-off may be kept, and the longest of a
/// provider's intervals: far past any token's life, and far from where a
/// store's or a timer's arithmetic on seconds overflows.
pub const TEN_YEARS_SECONDS: u64 = 10 * 365 * 86_400;

pub(crate) fn config(raw: RawConfig, base_dir: &Path, errors: &mut Errors) -> Option<Config> {
    let listen = listen(&raw.listen, raw.config_source.is_some(), errors);
    let tls = raw
        .tls
        .as_ref()
        .and_then(|t| crate::tls::compile(t, "tls", base_dir, errors));
    let admin = raw.admin.as_ref().and_then(|a| admin(a, base_dir, errors));
    taken_twice(&listen, admin.as_ref().map(|a| a.listen), errors);
    let store = store(raw.store.as_ref(), base_dir, errors);
    let state_dir = match (&raw.state_dir, &store) {
        (Some(dir), _) if dir.is_empty() => {
            errors.add("state_dir", "must not be empty");
            PathBuf::new()
        }
        (Some(dir), _) => resolve(base_dir, dir),
        (None, Some(StoreConfig::Embedded { path })) => path.clone(),
        (None, _) => resolve(base_dir, "./data"),
    };
    let client_body_timeout = ms(
        raw.client_body_timeout_ms,
        60_000,
        "client_body_timeout_ms",
        errors,
    );
    let retention = raw
        .store
        .as_ref()
        .and_then(|s| s.subject_retention_seconds)
        .unwrap_or(30 * 86_400);
    if retention == 0 {
        errors.add("store.subject_retention_seconds", "must be greater than 0");
    } else if retention > TEN_YEARS_SECONDS {
        errors.add(
            "store.subject_retention_seconds",
            format!("is over {TEN_YEARS_SECONDS} (ten years)"),
        );
    }
    let subject_retention = Duration::from_secs(retention);
    let workers = workers(raw.workers, errors);
    let worker_cpu_affinity = if auto_or_off(
        "worker_cpu_affinity",
        raw.worker_cpu_affinity.as_deref(),
        false,
        errors,
    ) {
        WorkerAffinity::Auto
    } else {
        WorkerAffinity::Off
    };
    let worker_yield = auto_or_off("worker_yield", raw.worker_yield.as_deref(), true, errors);
    let max_connections = max_connections(raw.max_connections, errors);
    let config_source = raw
        .config_source
        .as_ref()
        .and_then(|c| crate::etcd_source::compile(c, base_dir, errors));
    let consumers = consumers(&raw.consumers, base_dir, errors);
    let (providers, provider_sources) = crate::providers::compile(&raw.providers, base_dir, errors);
    let refs = Refs {
        base_dir,
        providers: &providers,
        consumers: &consumers,
        raw_providers: &raw.providers,
    };
    let routes = routes(&raw.routes, &refs, errors);
    if !errors.is_empty() {
        return None;
    }
    Some(Config {
        listen,
        tls,
        admin,
        store: store?,
        state_dir,
        client_body_timeout,
        subject_retention,
        workers,
        worker_cpu_affinity,
        worker_yield,
        max_connections,
        config_source,
        consumers: Arc::new(consumers),
        providers: Arc::new(providers),
        provider_sources,
        routes,
        raw,
    })
}

/// `sourced`: the file names a `config_source`; without `listen`, it is
/// more likely a file for `config push` than a node's own.
fn listen(addrs: &[String], sourced: bool, errors: &mut Errors) -> Vec<SocketAddr> {
    if addrs.is_empty() && sourced {
        errors.add(
            "listen",
            "is required of a node's file (e.g. \"127.0.0.1:8080\"); a file of objects \
             for etcd is checked by `jwtgate config push --dry-run`",
        );
    } else if addrs.is_empty() {
        errors.add("listen", "is required (e.g. \"127.0.0.1:8080\")");
    }
    addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| parse_addr(a, &index("listen", i), errors))
        .collect()
}

/// Two listeners on one address would fail only when the node starts
/// (`Address already in use`): said by `check` instead. A wildcard takes
/// its port on every address of its family. (Whether `[::]` takes IPv4's
/// too depends on the host: a warning, [`crate::warnings`].)
fn taken_twice(listen: &[SocketAddr], admin: Option<SocketAddr>, errors: &mut Errors) {
    for (i, a) in listen.iter().enumerate() {
        if let Some(j) = listen[..i].iter().position(|b| same_socket(a, b)) {
            errors.add(
                &index("listen", i),
                format!(
                    "{a} overlaps listen[{j}] ({}): the node could not listen on both",
                    listen[j]
                ),
            );
        }
    }
    let Some(admin) = admin else { return };
    if let Some(j) = listen.iter().position(|b| same_socket(&admin, b)) {
        errors.add(
            "admin.listen",
            format!(
                "{admin} overlaps listen[{j}] ({}), where the data plane listens: the admin API \
                 needs an address of its own",
                listen[j]
            ),
        );
    }
}

/// `a` and `b` cannot both be bound, on any host: one port (not `0`, which
/// the system picks), one family, and the same address (and interface) or
/// a wildcard.
fn same_socket(a: &SocketAddr, b: &SocketAddr) -> bool {
    let one_address = match (a, b) {
        (SocketAddr::V4(x), SocketAddr::V4(y)) => {
            x.ip() == y.ip() || x.ip().is_unspecified() || y.ip().is_unspecified()
        }
        (SocketAddr::V6(x), SocketAddr::V6(y)) => {
            (x.ip() == y.ip() && x.scope_id() == y.scope_id())
                || x.ip().is_unspecified()
                || y.ip().is_unspecified()
        }
        _ => false,
    };
    a.port() != 0 && a.port() == b.port() && one_address
}

fn parse_addr(a: &str, loc: &str, errors: &mut Errors) -> Option<SocketAddr> {
    match a.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            errors.add(loc, format!("{:?} is not an IP:port address", shown(a)));
            None
        }
    }
}

pub(crate) fn resolve(base_dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() || base_dir == Path::new(".") {
        p.to_owned()
    } else {
        base_dir.join(p)
    }
}

/// A realm longer than this would make every 401 heavy (a client may
/// refuse the header); realms are names.
const MAX_REALM_BYTES: usize = 256;

/// The most a file a config names (a key, a certificate, a key set) may
/// hold: as much as a fetched key set may.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A file a config names: a regular file of at most [`MAX_FILE_BYTES`].
/// Its name may come from an admin request or an etcd object, so neither
/// a device (`/dev/zero`, read until memory runs out) nor a FIFO (whose
/// open and read wait for a writer, holding up the control plane) is read.
pub(crate) fn read_file(
    base_dir: &Path,
    file: &str,
    loc: &str,
    errors: &mut Errors,
) -> Option<Vec<u8>> {
    let path = resolve(base_dir, file);
    match read_bounded(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            errors.add(loc, format!("cannot read {}: {e}", path.display()));
            None
        }
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::read_regular_bounded(path, MAX_FILE_BYTES)
}

fn admin(a: &RawAdmin, base_dir: &Path, errors: &mut Errors) -> Option<AdminConfig> {
    let listen = parse_addr(&a.listen, "admin.listen", errors);
    if a.api_key.is_empty() {
        errors.add(
            "admin.api_key",
            "must not be empty when the admin API is enabled",
        );
    } else if a.api_key.chars().any(char::is_control) || a.api_key.trim() != a.api_key {
        // X-API-KEY arrives trimmed, and cannot carry control characters.
        errors.add(
            "admin.api_key",
            "must not hold control characters or start or end with whitespace: no \
             X-API-KEY header could match it",
        );
    }
    let tls = a
        .tls
        .as_ref()
        .and_then(|t| crate::tls::compile(t, "admin.tls", base_dir, errors));
    let allowed_hosts = a
        .allowed_hosts
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, host)| allowed_host(host, &format!("admin.allowed_hosts[{i}]"), errors))
        .collect();
    Some(AdminConfig {
        listen: listen?,
        api_key: a.api_key.clone(),
        console: a.console.unwrap_or(false),
        tls,
        allowed_hosts,
    })
}

/// One entry of `admin.allowed_hosts`: a DNS name as a `Host` header holds
/// it, without the port (`admin.example.internal`), `.name` for the name
/// and every name under it, or `*` for any. Lower-cased, the trailing dot
/// of an absolute name dropped.
fn allowed_host(host: &str, loc: &str, errors: &mut Errors) -> Option<String> {
    if host == "*" {
        return Some(host.to_owned());
    }
    let name = host.strip_prefix('.').unwrap_or(host);
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        errors.add(
            loc,
            format!(
                "{:?} is not a host name (letters, digits, `-` and `_` in dot-separated labels, \
                 no port or scheme; `.example.com` takes example.com and every name under it, `*` \
                 any name; IP addresses and localhost are always answered)",
                shown(host)
            ),
        );
        return None;
    }
    let dot = if host.starts_with('.') { "." } else { "" };
    Some(format!("{dot}{}", name.to_ascii_lowercase()))
}

pub(crate) fn ms(v: Option<u64>, default: u64, loc: &str, errors: &mut Errors) -> Duration {
    let v = v.unwrap_or(default);
    if v == 0 {
        errors.add(loc, "must be greater than 0");
    }
    Duration::from_millis(v)
}

/// Most data-plane workers a node may be told to run: far more than any
/// machine's cores, few enough that a typo (an extra zero or three) is an
/// error rather than thousands of threads.
pub const MAX_WORKERS: u64 = 1024;

fn workers(v: Option<u64>, errors: &mut Errors) -> Option<NonZeroUsize> {
    let n = v?;
    if n == 0 {
        errors.add("workers", "must be at least 1 (omit it for one per core)");
        return None;
    }
    if n > MAX_WORKERS {
        errors.add("workers", format!("must be at most {MAX_WORKERS}"));
        return None;
    }
    usize::try_from(n).ok().and_then(NonZeroUsize::new)
}

/// `max_connections`: at least 1; `None` when absent (the node derives it
/// from its open-file limit).
fn max_connections(v: Option<u64>, errors: &mut Errors) -> Option<NonZeroUsize> {
    let n = v?;
    let n = usize::try_from(n).ok().and_then(NonZeroUsize::new);
    if n.is_none() {
        errors.add(
            "max_connections",
            "must be at least 1 (omit it to derive it from the open-file limit)",
        );
    }
    n
}

/// A node setting that is `auto` (true) or `off` (false); `default` when
/// absent.
fn auto_or_off(key: &str, value: Option<&str>, default: bool, errors: &mut Errors) -> bool {
    match value {
        None => default,
        Some("auto") => true,
        Some("off") => false,
        Some(other) => {
            errors.add(key, format!("must be \"auto\" or \"off\", not {other:?}"));
            default
        }
    }
}

fn store(s: Option<&RawStore>, base_dir: &Path, errors: &mut Errors) -> Option<StoreConfig> {
    let default = RawStore::default();
    let s = s.unwrap_or(&default);
    let kind = s.kind.as_deref().unwrap_or("embedded");
    // Keys that only make sense for some kinds are errors elsewhere, so that a
    // typo'd kind does not silently ignore the operator's Redis settings.
    let allowed: &[&str] = match kind {
        "embedded" => &["path"],
        "redis" => &[
            "host",
            "port",
            "username",
            "password",
            "database",
            "pool_size",
            "pool_backlog",
            "connect_timeout_ms",
            "read_timeout_ms",
            "send_timeout_ms",
        ],
        "redis_cluster" => &[
            "nodes",
            "username",
            "password",
            "name",
            "pool_size",
            "pool_backlog",
            "connect_timeout_ms",
            "read_timeout_ms",
            "send_timeout_ms",
            "keepalive_timeout_ms",
        ],
        other => {
            errors.add(
                "store.kind",
                format!("unknown store kind {other:?} (expected embedded, redis or redis_cluster)"),
            );
            return None;
        }
    };
    let present = [
        ("subject_retention_seconds", false),
        ("path", s.path.is_some()),
        ("host", s.host.is_some()),
        ("port", s.port.is_some()),
        ("username", s.username.is_some()),
        ("password", s.password.is_some()),
        ("database", s.database.is_some()),
        ("nodes", s.nodes.is_some()),
        ("name", s.name.is_some()),
        ("pool_size", s.pool_size.is_some()),
        ("pool_backlog", s.pool_backlog.is_some()),
        ("connect_timeout_ms", s.connect_timeout_ms.is_some()),
        ("read_timeout_ms", s.read_timeout_ms.is_some()),
        ("send_timeout_ms", s.send_timeout_ms.is_some()),
        ("keepalive_timeout_ms", s.keepalive_timeout_ms.is_some()),
    ];
    for (key, set) in present {
        if set && !allowed.contains(&key) {
            errors.add(
                &child("store", key),
                format!("is not a setting of store kind {kind}"),
            );
        }
    }
    let pool = || {
        let size = s.pool_size.unwrap_or(1000);
        let mut e = Errors::default();
        if size == 0 {
            e.add("store.pool_size", "must be greater than 0");
        }
        let pool = PoolConfig {
            pool_size: usize::try_from(size).unwrap_or(usize::MAX),
            pool_backlog: usize::try_from(s.pool_backlog.unwrap_or(30)).unwrap_or(usize::MAX),
            connect_timeout: ms(
                s.connect_timeout_ms,
                1000,
                "store.connect_timeout_ms",
                &mut e,
            ),
            read_timeout: ms(s.read_timeout_ms, 1000, "store.read_timeout_ms", &mut e),
            send_timeout: ms(s.send_timeout_ms, 1000, "store.send_timeout_ms", &mut e),
        };
        (pool, e)
    };
    match kind {
        "embedded" => {
            let path = resolve(base_dir, s.path.as_deref().unwrap_or("./data"));
            if path.exists() && !path.is_dir() {
                errors.add(
                    "store.path",
                    "is a file: the embedded store's path is a directory (revocations.redb goes in it)",
                );
            }
            Some(StoreConfig::Embedded { path })
        }
        "redis" => {
            let (pool, e) = pool();
            errors_extend(errors, e);
            let port = s.port.unwrap_or(6379);
            let port = match u16::try_from(port) {
                Ok(p) if p > 0 => p,
                _ => {
                    errors.add("store.port", format!("{port} is not a TCP port"));
                    0
                }
            };
            let database = s.database.unwrap_or(0);
            if database > 15 {
                errors.add("store.database", "must be between 0 and 15");
            }
            let host = s.host.clone().unwrap_or_else(|| "127.0.0.1".into());
            // The host checked on its own: a bad port is said once, above.
            // An IPv6 address may be written bare here: no port follows it.
            let bare_v6 = host.parse::<std::net::Ipv6Addr>().is_ok();
            let with_port = if bare_v6 {
                format!("[{host}]:6379")
            } else {
                format!("{host}:6379")
            };
            if split_host_port(&with_port).is_none() || host.contains(['?', '#']) {
                errors.add(
                    "store.host",
                    format!(
                        "{:?} is not a host name or IP address (a URL? set store.host, \
                         store.port and store.password apart)",
                        shown(&host)
                    ),
                );
            }
            Some(StoreConfig::Redis(RedisConfig {
                host,
                port,
                username: acl_user(s, errors),
                password: s.password.clone().filter(|p| !p.is_empty()),
                database: u32::try_from(database).unwrap_or(0),
                pool,
            }))
        }
        _ => {
            let (pool, e) = pool();
            errors_extend(errors, e);
            let nodes = s.nodes.clone().unwrap_or_default();
            if nodes.is_empty() {
                errors.add(
                    "store.nodes",
                    "is required for redis_cluster (a list of host:port seeds)",
                );
            }
            for (i, n) in nodes.iter().enumerate() {
                if split_host_port(n).is_none() {
                    errors.add(
                        &index("store.nodes", i),
                        format!("{:?} is not host:port", shown(n)),
                    );
                }
            }
            // The keys' hash tag (`{name}:revoked`): empty, each key hashes
            // whole, to its own slot, and every logout fails with CROSSSLOT
            // (an outside Redis audit: `check` said ok). A brace would end
            // or nest the tag.
            if let Some(name) = &s.name {
                if name.is_empty() || name.contains(['{', '}']) {
                    errors.add(
                        "store.name",
                        "must be a non-empty name without { or } (it is the hash tag of the \
                         store's keys, {name}:revoked)",
                    );
                }
            }
            Some(StoreConfig::RedisCluster(RedisClusterConfig {
                nodes,
                username: acl_user(s, errors),
                password: s.password.clone().filter(|p| !p.is_empty()),
                name: s.name.clone().unwrap_or_else(|| "jwtgate".into()),
                pool,
                keepalive_timeout: ms(
                    s.keepalive_timeout_ms,
                    55_000,
                    "store.keepalive_timeout_ms",
                    errors,
                ),
            }))
        }
    }
}

/// `store.username`: a Redis ACL user, which signs in with the password
/// (`AUTH username password`); without one, the password is the `default`
/// user's (`requirepass`).
fn acl_user(s: &RawStore, errors: &mut Errors) -> Option<String> {
    let user = s.username.clone().filter(|u| !u.is_empty())?;
    if s.password.as_deref().is_none_or(str::is_empty) {
        errors.add(
            "store.username",
            "needs store.password: Redis signs a user in with both (a `nopass` user takes any)",
        );
    }
    if user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.add(
            "store.username",
            "holds whitespace or a control character, which no Redis user name does",
        );
    }
    Some(user)
}

fn errors_extend(errors: &mut Errors, other: Errors) {
    if let Err(e) = other.into_result(()) {
        for x in e.0 {
            errors.add(&x.location, x.message);
        }
    }
}

/// `host:port` with a non-zero port; `[v6]:port` allowed.
/// An address as an error shows it: a user part (`user:password@`) and
/// query values hidden, as the value may hold a credential and reload
/// errors go to the log.
pub(crate) fn shown(address: &str) -> String {
    jwtgate_core::redact::url_for_display(address)
}

pub(crate) fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    // An IPv6 address only in brackets (RFC 3986): `::1:8080` would be read
    // as host `::1`, and go upstream as a `Host` no parser takes (an
    // outside audit); `::1` alone as host `:`, port 1.
    let host = match host.strip_prefix('[') {
        Some(inner) => {
            let inner = inner.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok()?;
            inner
        }
        None if host.contains([':', '[', ']']) => return None,
        None => host,
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return None;
    }
    Some((host.to_owned(), port))
}

fn consumers(raw: &[RawConsumer], base_dir: &Path, errors: &mut Errors) -> ConsumerRegistry {
    let mut registry = ConsumerRegistry::new();
    let mut names = HashSet::new();
    // Credential keys as written, so that a clash is reported even when
    // the earlier consumer has another problem (it is not in the registry).
    let mut keys: HashMap<&str, &str> = HashMap::new();
    for (i, c) in raw.iter().enumerate() {
        let loc = index("consumers", i);
        if !names.insert(c.username.as_str()) {
            errors.add(
                &child(&loc, "username"),
                format!("duplicate consumer {:?}", c.username),
            );
        }
        if let Some(j) = c.jwt.as_ref().filter(|j| !j.key.is_empty()) {
            if let Some(existing) = keys.insert(&j.key, &c.username) {
                let clash = DuplicateKey {
                    key: j.key.clone(),
                    existing: existing.to_owned(),
                };
                errors.add(&child(&loc, "jwt.key"), clash.to_string());
                keys.insert(&j.key, existing);
            }
        }
        if let Some(consumer) = consumer(c, &loc, base_dir, errors) {
            // A clash was reported above; the first consumer keeps the key.
            let _ = registry.insert(consumer);
        }
    }
    registry
}

/// Why `value` cannot be an identity header's value as it is: a control
/// character (CR, LF, NUL, DEL...), or whitespace at either end, which a
/// header loses. `None` when it can.
fn header_value_problem(value: &str) -> Option<&'static str> {
    if value.chars().any(char::is_control) {
        Some("must not hold control characters (it is sent upstream in a header)")
    } else if value.trim() != value {
        Some("must not start or end with whitespace (it is sent upstream in a header)")
    } else {
        None
    }
}

pub(crate) fn consumer(
    c: &RawConsumer,
    loc: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<Consumer> {
    if c.username.is_empty() {
        errors.add(&child(loc, "username"), "must not be empty");
    }
    let jloc = child(loc, "jwt");
    // Each goes upstream in an identity header (X-Consumer-Username,
    // -Custom-ID, X-Credential-Identifier), which could not carry it.
    for (at, value) in [
        (child(loc, "username"), Some(&c.username)),
        (child(loc, "custom_id"), c.custom_id.as_ref()),
        (child(&jloc, "key"), c.jwt.as_ref().map(|j| &j.key)),
    ] {
        if let Some(problem) = value.and_then(|v| header_value_problem(v)) {
            errors.add(&at, problem);
        }
    }
    let credential = match &c.jwt {
        Some(j) => Some(credential(j, &jloc, base_dir, errors)?),
        None => None,
    };
    Some(Consumer {
        username: c.username.clone(),
        custom_id: c.custom_id.clone().filter(|s| !s.is_empty()),
        credential,
    })
}

/// A consumer's `jwt` credential, its key material parsed.
fn credential(
    j: &RawCredential,
    jloc: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<Credential> {
    if j.key.is_empty() {
        errors.add(&child(jloc, "key"), "must not be empty");
    }
    let alg: Algorithm = match j.algorithm.as_deref().unwrap_or("HS256").parse() {
        Ok(a) => a,
        Err(e) => {
            errors.add(&child(jloc, "algorithm"), e.to_string());
            return None;
        }
    };
    let key = if alg.is_hmac() {
        for k in [
            ("public_key", j.public_key.is_some()),
            ("public_key_file", j.public_key_file.is_some()),
        ] {
            if k.1 {
                errors.add(
                    &child(jloc, k.0),
                    format!("is not used by {alg}; it takes a secret"),
                );
            }
        }
        let Some(secret) = j.secret.as_deref() else {
            errors.add(&child(jloc, "secret"), format!("is required for {alg}"));
            return None;
        };
        let bytes = if j.base64_secret.unwrap_or(false) {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
            ];
            let decoded = engines.iter().find_map(|e| e.decode(secret.trim()).ok());
            let Some(decoded) = decoded else {
                errors.add(
                    &child(jloc, "secret"),
                    "is not valid base64 (base64_secret is true)",
                );
                return None;
            };
            decoded
        } else {
            secret.as_bytes().to_vec()
        };
        // RFC 7518 §3.2: an HMAC key at least as long as the hash output;
        // a short secret falls to an offline guess from one token.
        if bytes.len() < MIN_SECRET_BYTES && !bytes.is_empty() {
            let decoded = if j.base64_secret.unwrap_or(false) {
                " after base64 decoding"
            } else {
                ""
            };
            errors.add(
                &child(jloc, "secret"),
                format!(
                    "is {} bytes{decoded}; an HMAC secret needs at least {MIN_SECRET_BYTES} \
                     (RFC 7518 §3.2), e.g. `openssl rand -base64 48`",
                    bytes.len()
                ),
            );
            return None;
        }
        VerifyKey::from_secret(alg, &bytes)
            .map_err(|e| errors.add(&child(jloc, "secret"), e.to_string()))
    } else {
        if j.secret.is_some() {
            errors.add(
                &child(jloc, "secret"),
                format!("is not used by {alg}; it takes public_key or public_key_file"),
            );
        }
        let (pem, at) = match (&j.public_key, &j.public_key_file) {
            (Some(_), Some(_)) => {
                errors.add(jloc, "set public_key or public_key_file, not both");
                return None;
            }
            (Some(p), None) => (p.clone().into_bytes(), child(jloc, "public_key")),
            (None, Some(f)) => {
                let at = child(jloc, "public_key_file");
                (read_file(base_dir, f, &at, errors)?, at)
            }
            (None, None) => {
                errors.add(
                    &child(jloc, "public_key"),
                    format!("is required for {alg} (PEM text, or public_key_file)"),
                );
                return None;
            }
        };
        let text = String::from_utf8_lossy(&pem);
        VerifyKey::from_public_pem(alg, &text).map_err(|e| errors.add(&at, e.to_string()))
    };
    Some(Credential {
        key: j.key.clone(),
        verify_key: key.ok()?,
    })
}

/// What routes may refer to by name.
pub(crate) struct Refs<'a> {
    /// Where files a route names (an upstream's `ca_file`) are read from.
    pub(crate) base_dir: &'a Path,
    pub(crate) providers: &'a ProviderDirectory,
    pub(crate) consumers: &'a ConsumerRegistry,
    /// The providers as written, invalid ones too: a route naming one of
    /// those is told where its problem is, not that it does not exist.
    pub(crate) raw_providers: &'a [RawProvider],
}

fn routes(raw: &[RawRoute], refs: &Refs<'_>, errors: &mut Errors) -> Vec<Route> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let loc = index("routes", i);
        if !names.insert(r.name.clone()) {
            errors.add(
                &child(&loc, "name"),
                format!("duplicate route name {:?}", r.name),
            );
        }
        if let Some(route) = route(r, &loc, refs, errors) {
            out.push((i, route));
        }
    }
    forwarded_claims_carry_no_token(&out, errors);
    out.into_iter().map(|(_, route)| route).collect()
}

/// A `forward_claims` or `forward_payload_header` header is stripped from
/// every client request, on every route: one named after a route's token
/// header would take every token sent in it away before authentication.
/// `routes`: each with its index in the file.
fn forwarded_claims_carry_no_token(routes: &[(usize, Route)], errors: &mut Errors) {
    let carriers: Vec<(String, &str)> = routes
        .iter()
        .filter_map(|(_, r)| {
            let header = r.jwt.as_ref()?.sources.header.as_deref()?;
            Some((folded(header), r.name.as_str()))
        })
        .collect();
    for (i, r) in routes {
        let Some(policy) = &r.jwt else { continue };
        let at = child(&index("routes", *i), "jwt");
        let claims = policy
            .forward_claims
            .iter()
            .map(|(claim, header)| (child(&at, "forward_claims"), format!("{claim}: "), header));
        let payload = policy
            .forward_payload_header
            .iter()
            .map(|header| (child(&at, "forward_payload_header"), String::new(), header));
        for (loc, what, header) in claims.chain(payload) {
            if let Some((_, carrier)) = carriers.iter().find(|(h, _)| *h == folded(header)) {
                errors.add(
                    &loc,
                    format!(
                        "{what}{header:?} is route {carrier:?}'s token header; every \
                         client's copy of a forwarded header is removed, so its tokens \
                         would be too: name another header"
                    ),
                );
            }
        }
    }
}

pub(crate) fn route(
    r: &RawRoute,
    loc: &str,
    refs: &Refs<'_>,
    errors: &mut Errors,
) -> Option<Route> {
    if r.name.is_empty() {
        errors.add(&child(loc, "name"), "must not be empty");
    }
    if r.paths.is_empty() {
        errors.add(
            &child(loc, "paths"),
            "needs at least one path (e.g. \"/v1/*\")",
        );
    }
    let paths: Vec<PathPattern> = r
        .paths
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            PathPattern::parse(p)
                .map_err(|e| errors.add(&index(&child(loc, "paths"), i), e.to_string()))
                .ok()
        })
        .collect();
    let methods = r.methods.as_ref().map(|ms| {
        for (i, m) in ms.iter().enumerate() {
            if !valid_method(m) {
                errors.add(
                    &index(&child(loc, "methods"), i),
                    format!("invalid method {m:?} (upper case, e.g. GET)"),
                );
            }
        }
        ms.clone()
    });
    // A name's final dot removed, as the gateway removes it from a
    // request's host (`api.example.` is `api.example`): kept, the entry
    // would match no request at all.
    let hosts: Vec<String> = r
        .hosts
        .iter()
        .flatten()
        .map(|h| crate::host_entry(h))
        .collect();
    for (i, h) in hosts.iter().enumerate() {
        let bare = h.strip_prefix("*.").unwrap_or(h);
        let empty_label = bare.starts_with('.') || bare.ends_with('.') || bare.contains("..");
        if bare.is_empty()
            || empty_label
            || !bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            errors.add(
                &index(&child(loc, "hosts"), i),
                format!("invalid host {h:?}"),
            );
        }
    }
    let upstream =
        crate::upstream::upstream(&r.upstream, &child(loc, "upstream"), refs.base_dir, errors);
    let jwt = r
        .jwt
        .as_ref()
        .and_then(|j| jwt_policy(j, &child(loc, "jwt"), refs, errors));
    let cors = r
        .cors
        .as_ref()
        .and_then(|c| crate::cors::compile(c, methods.as_deref(), &child(loc, "cors"), errors));
    let websocket = r.websocket == Some(true);
    if websocket && matches!(upstream, Some(Upstream::Echo)) {
        errors.add(
            &child(loc, "websocket"),
            "needs upstream nodes: the echo upstream speaks no WebSocket",
        );
    }
    if websocket
        && methods
            .as_ref()
            .is_some_and(|m| !m.iter().any(|m| m == "GET"))
    {
        errors.add(
            &child(loc, "websocket"),
            "needs GET among the route's methods: a WebSocket opens with a GET",
        );
    }
    let websocket_close_at_exp = r.websocket_close_at_exp == Some(true);
    if websocket_close_at_exp && !websocket {
        errors.add(
            &child(loc, "websocket_close_at_exp"),
            "needs websocket: true: only a WebSocket outlives the request that opened it",
        );
    }
    Some(Route {
        name: r.name.clone(),
        paths,
        methods,
        hosts,
        upstream: upstream?,
        cors,
        websocket,
        websocket_close_at_exp,
        jwt: jwt.map(Arc::new),
    })
}

fn rule_list(list: &[String], loc: &str, errors: &mut Errors) -> Vec<RuleEntry> {
    list.iter()
        .enumerate()
        .filter_map(|(i, s)| {
            RuleEntry::parse(s)
                .map_err(|e| errors.add(&index(loc, i), e.to_string()))
                .ok()
        })
        .collect()
}

/// An empty string disables a token source.
fn source(v: &Option<String>, default: &str, lower: bool) -> Option<String> {
    match v {
        None => Some(default.to_owned()),
        Some(s) if s.is_empty() => None,
        Some(s) if lower => Some(s.to_ascii_lowercase()),
        Some(s) => Some(s.clone()),
    }
}

pub(crate) fn jwt_policy(
    j: &RawJwt,
    loc: &str,
    refs: &Refs<'_>,
    errors: &mut Errors,
) -> Option<JwtPolicy> {
    // Compiled from the policy with its defaults written out: what
    // `protection.immutable` compares ([`jwt_defaults`]) is what is served,
    // by construction.
    let defaulted = jwt_defaults(j);
    let j = &defaulted;
    let providers = refs.providers;
    let at = |k: &str| child(loc, k);
    let key_claim_name = j
        .key_claim_name
        .clone()
        .unwrap_or_else(|| DEFAULT_KEY_CLAIM.into());
    if key_claim_name.is_empty() {
        errors.add(&at("key_claim_name"), "must not be empty");
    }
    let sources = TokenSources {
        header: source(&j.header, DEFAULT_HEADER, true),
        query: source(&j.query, DEFAULT_QUERY, false),
        cookie: source(&j.cookie, DEFAULT_COOKIE, false),
    };
    if let Some(h) = &sources.header {
        if !valid_header_name(h) {
            errors.add(&at("header"), format!("{h:?} is not a valid header name"));
        } else if never_read_as_token_header(h) {
            errors.add(
                &at("header"),
                format!(
                    "{h:?} is a header the gateway sets, strips from clients or frames the \
                     request with: a token there would never be read; name another header"
                ),
            );
        }
    }
    let realm = j.realm.clone().unwrap_or_else(|| DEFAULT_REALM.into());
    // The realm goes into a quoted WWW-Authenticate parameter of every 401.
    if realm.is_empty()
        || realm.len() > MAX_REALM_BYTES
        || realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control() || !c.is_ascii())
    {
        errors.add(
            &at("realm"),
            format!(
                "must be non-empty printable ASCII without '\"' or '\\', at most \
                 {MAX_REALM_BYTES} characters"
            ),
        );
    }
    let forward_payload_header = j.forward_payload_header.as_deref().and_then(|header| {
        let loc = at("forward_payload_header");
        if !valid_header_name(header) {
            errors.add(&loc, format!("{header:?} is not a valid header name"));
            None
        } else if not_a_claim_header(header) {
            errors.add(
                &loc,
                format!(
                    "{header:?} is a header the gateway sets, strips from clients or frames the \
                     request with, or a token carrier; name another header for the payload"
                ),
            );
            None
        } else {
            Some(header.to_ascii_lowercase())
        }
    });
    let forward_claims: Vec<(ClaimPath, String)> = j
        .forward_claims
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(claim, header)| {
            let loc = child(&at("forward_claims"), &claim);
            if !valid_header_name(&header) {
                errors.add(&loc, format!("{header:?} is not a valid header name"));
            } else if not_a_claim_header(&header) {
                errors.add(
                    &loc,
                    format!(
                        "{header:?} is a header the gateway sets, strips from clients or frames \
                         the request with, or a token carrier; name another header for the claim"
                    ),
                );
            }
            match ClaimPath::parse(&claim) {
                Ok(path) => Some((path, header.to_ascii_lowercase())),
                Err(e) => {
                    errors.add(&loc, e.to_string());
                    None
                }
            }
        })
        .collect();
    let required = j.required_paths.as_deref().unwrap_or_default();
    let not_required = j.not_required_paths.as_deref().unwrap_or_default();
    let scope = match (required.is_empty(), not_required.is_empty()) {
        (false, false) => {
            // Located at a field (the admin API and the console place an
            // error by it), and each list's entries checked all the same:
            // every problem is listed at once.
            errors.add(
                &at("not_required_paths"),
                "is set together with required_paths; a policy uses one mode or the other",
            );
            rule_list(required, &at("required_paths"), errors);
            rule_list(not_required, &at("not_required_paths"), errors);
            PathScope::All
        }
        (false, true) => PathScope::Required(PathRules::compile(&rule_list(
            required,
            &at("required_paths"),
            errors,
        ))),
        (true, false) => PathScope::NotRequired(PathRules::compile(&rule_list(
            not_required,
            &at("not_required_paths"),
            errors,
        ))),
        (true, true) => PathScope::All,
    };
    let revoking = j.use_jwt_blacklist_revoking.unwrap_or(false);
    let logout_everywhere = match j
        .logout_everywhere_path
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(p) => match RuleEntry::parse(p) {
            Ok(entry) if revoking => Some(Logout::new(entry, false)),
            Ok(_) => {
                errors.add(
                    &at("logout_everywhere_path"),
                    "needs use_jwt_blacklist_revoking: true (cut-offs live in the revocation store)",
                );
                None
            }
            Err(e) => {
                errors.add(&at("logout_everywhere_path"), e.to_string());
                None
            }
        },
    };
    let logout = match (revoking, j.logout_path.as_deref()) {
        (true, None) | (true, Some("")) => {
            errors.add(
                &at("logout_path"),
                "is required when use_jwt_blacklist_revoking is true (e.g. \"POST_/v1/logout\")",
            );
            None
        }
        (true, Some(p)) => RuleEntry::parse(p)
            .map_err(|e| errors.add(&at("logout_path"), e.to_string()))
            .ok()
            .map(|entry| Logout::new(entry, j.logout_forward.unwrap_or(false))),
        (false, Some(p)) if !p.is_empty() => {
            // Validate it anyway; it takes effect once revoking is turned on.
            if let Err(e) = RuleEntry::parse(p) {
                errors.add(&at("logout_path"), e.to_string());
            }
            None
        }
        (false, _) => None,
    };
    let protection = j.protection.map(|p| Protection {
        undeletable: p.undeletable,
        immutable: p.immutable,
    });
    let mut listed = Vec::new();
    for (i, name) in j.providers.iter().flatten().enumerate() {
        match providers.by_name(name) {
            Some(p) if listed.contains(&p.index) => errors.add(
                &index(&at("providers"), i),
                format!("provider {name:?} is listed twice"),
            ),
            Some(p) => listed.push(p.index),
            None => match refs.raw_providers.iter().position(|p| &p.name == name) {
                Some(k) => errors.add(
                    &index(&at("providers"), i),
                    format!("provider {name:?} is invalid (see providers[{k}])"),
                ),
                None => errors.add(
                    &index(&at("providers"), i),
                    format!("no provider named {name:?} (see providers:)"),
                ),
            },
        }
    }
    listed.sort_unstable();
    let takes_consumers = j.consumers.unwrap_or(true);
    if !takes_consumers && j.providers.as_ref().is_none_or(Vec::is_empty) {
        errors.add(
            &at("consumers"),
            "is false but the policy lists no providers: it would refuse every token",
        );
    }
    let audiences = j.audiences.clone().unwrap_or_default();
    for (i, a) in audiences.iter().enumerate() {
        if a.is_empty() {
            errors.add(&index(&at("audiences"), i), "must not be empty");
        }
    }
    let required_claims = match &j.required_claims {
        None => vec![ClaimPath::exp()],
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                ClaimPath::parse(name)
                    .map_err(|e| errors.add(&index(&at("required_claims"), i), e.to_string()))
                    .ok()
            })
            .collect(),
    };
    if let Some(header) = &forward_payload_header {
        let header_folded = folded(header);
        if let Some((claim, _)) = forward_claims
            .iter()
            .find(|(_, h)| folded(h) == header_folded)
        {
            errors.add(
                &at("forward_payload_header"),
                format!("{header:?} is also forward_claims' header for {claim}: name another"),
            );
        }
    }
    Some(JwtPolicy {
        key_claim_name,
        sources,
        hide_credentials: j.hide_credentials.unwrap_or(false),
        required_claims,
        leeway_seconds: i64::try_from(j.leeway_seconds.unwrap_or(0)).unwrap_or(i64::MAX),
        max_lifetime_seconds: i64::try_from(j.max_lifetime_seconds.unwrap_or(0))
            .unwrap_or(i64::MAX),
        realm,
        forward_claims,
        forward_payload_header,
        scope,
        logout,
        protection: protection.unwrap_or_default(),
        providers: listed,
        consumers: takes_consumers,
        audiences,
        authorize: crate::authorization::authorize(j, loc, errors),
        anonymous: crate::authorization::anonymous(j, loc, refs.consumers, errors),
        logout_everywhere,
    })
}
