//! Stage 2: the compiled, validated configuration the gateway runs on. Keys
//! are parsed, path patterns compiled, addresses resolved to types; nothing
//! here needs checking again on the request path.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jwtgate_core::consumer::ConsumerRegistry;
use jwtgate_core::cors::CorsPolicy;
use jwtgate_core::jwt::{Algorithm, JwkSet};
use jwtgate_core::path::PathPattern;
use jwtgate_core::policy::JwtPolicy;
use jwtgate_core::provider::ProviderDirectory;

use crate::raw::RawConfig;
pub use crate::tls::{CertificatePem, TlsMaterial, TlsVersion, CIPHER_SUITES};

#[derive(Debug)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub tls: Option<TlsMaterial>,
    pub admin: Option<AdminConfig>,
    pub store: StoreConfig,
    /// This node's own state (SPEC §3.11): key-set caches, the blacklist
    /// snapshot, the last config applied from etcd.
    pub state_dir: PathBuf,
    /// How long a request body may stall between two reads (SPEC §3.11).
    pub client_body_timeout: Duration,
    /// How long a subject cut-off is kept (SPEC §3.10).
    pub subject_retention: Duration,
    /// Data-plane worker threads; `None`: one per core the process may
    /// run on.
    pub workers: Option<NonZeroUsize>,
    pub worker_cpu_affinity: WorkerAffinity,
    /// `worker_yield: auto` (the default): an unpinned worker that may be
    /// moved between CPUs yields its CPU once before it sleeps; `off`: it
    /// sleeps at once.
    pub worker_yield: bool,
    /// Client connections served at once before accepting pauses; `None`:
    /// derived from the open-file limit at start.
    pub max_connections: Option<NonZeroUsize>,
    /// Where routes, consumers and providers live when not in the file
    /// (SPEC §6).
    pub config_source: Option<EtcdSettings>,
    pub consumers: Arc<ConsumerRegistry>,
    /// Identity providers, found by issuer; `provider_sources[i]` says
    /// where provider `i`'s keys come from.
    pub providers: Arc<ProviderDirectory>,
    pub provider_sources: Vec<ProviderSource>,
    pub routes: Vec<Route>,
    /// The file as read (after `${ENV}` expansion), for the admin API.
    pub raw: RawConfig,
}

impl Config {
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }
}

/// Where the data plane's worker threads may run (nginx's
/// `worker_cpu_affinity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkerAffinity {
    /// Wherever the scheduler puts them, within the process's CPUs.
    #[default]
    Off,
    /// Worker `k` only on the `k`-th CPU the process may run on (wrapping
    /// around when there are more workers than CPUs).
    Auto,
}

#[derive(Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub api_key: String,
    /// Serve the web console at `/console/` (SPEC §7). Default false.
    pub console: bool,
    /// HTTPS on the admin listener (an addition to SPEC §4).
    pub tls: Option<TlsMaterial>,
    /// The `Host` names a plain-HTTP admin listener answers to besides IP
    /// literals and `localhost` (an addition to SPEC §4: a web page whose
    /// name an attacker re-points at the listener's address must not reach
    /// it, DNS rebinding). Lower case, without a trailing dot; `.name` takes
    /// the name and every name under it, `*` any name.
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("console", &self.console)
            .field("tls", &self.tls)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish_non_exhaustive()
    }
}

/// Where the token blacklist lives.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    Embedded { path: PathBuf },
    Redis(RedisConfig),
    RedisCluster(RedisClusterConfig),
}

/// Bounds shared by both Redis kinds.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Max connections / operations in flight.
    pub pool_size: usize,
    /// Operations allowed to wait when the pool is busy; beyond, fail fast.
    pub pool_backlog: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
}

#[derive(Clone, PartialEq)]
pub struct RedisConfig {
    pub host: String,
    pub port: u16,
    /// A Redis ACL user; `None`: the `default` user.
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: u32,
    pub pool: PoolConfig,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("database", &self.database)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq)]
pub struct RedisClusterConfig {
    pub nodes: Vec<String>,
    /// A Redis ACL user; `None`: the `default` user.
    pub username: Option<String>,
    pub password: Option<String>,
    pub name: String,
    pub pool: PoolConfig,
    pub keepalive_timeout: Duration,
}

impl std::fmt::Debug for RedisClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterConfig")
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("name", &self.name)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub paths: Vec<PathPattern>,
    /// Upper-case method names; `None` = all methods.
    pub methods: Option<Vec<String>>,
    /// Lower-case host names; a leading `*.` is a wildcard. Empty = any host.
    pub hosts: Vec<String>,
    pub upstream: Upstream,
    /// Browser calls from other origins (SPEC §3.9); `None`: a preflight is
    /// an ordinary request.
    pub cors: Option<CorsPolicy>,
    /// WebSocket handshakes are passed to the upstream, and the connection
    /// becomes a tunnel once it agrees (`101`); `false`: the `Upgrade`
    /// header is dropped as any hop-by-hop header.
    pub websocket: bool,
    /// An open WebSocket is closed when the token that opened it expires
    /// (`exp` plus the route's leeway), not only when it is revoked.
    pub websocket_close_at_exp: bool,
    pub jwt: Option<Arc<JwtPolicy>>,
}

impl Route {
    /// Whether the route takes `method` ([`crate::takes_method`]).
    #[inline]
    pub fn allows_method(&self, method: &str) -> bool {
        crate::takes_method(self.methods.as_deref(), method)
    }

    /// `host` is the request's host without port, any case
    /// ([`crate::takes_host`]).
    #[inline]
    pub fn allows_host(&self, host: Option<&str>) -> bool {
        crate::takes_host(&self.hosts, host)
    }
}

#[derive(Debug, Clone)]
pub enum Upstream {
    /// The built-in echo upstream: reflects the request as JSON.
    Echo,
    Nodes(UpstreamNodes),
}

#[derive(Debug, Clone)]
pub struct UpstreamNodes {
    pub nodes: Vec<UpstreamNode>,
    /// The order in which the nodes take their turns when their weights
    /// differ ([`crate::weighted_turns`]); empty: one turn each, in order.
    pub turns: std::sync::Arc<[u32]>,
    pub tls: bool,
    /// `ca_file`'s PEM certificates, which then alone are trusted for this
    /// upstream's certificates (nginx's `proxy_ssl_trusted_certificate`);
    /// `None`: the system's roots.
    pub trusted_ca_pem: Option<std::sync::Arc<[u8]>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Failed connects to a node within `fail_timeout` that leave it out of
    /// the round robin for `fail_timeout` (nginx's `max_fails`); 0: never.
    pub max_fails: u32,
    pub fail_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamNode {
    pub host: String,
    pub port: u16,
    /// `host:port`, as sent in the upstream `Host` header.
    pub authority: String,
    /// Its share of the route's requests against the other nodes' (1 to
    /// [`crate::MAX_WEIGHT`]).
    pub weight: u32,
}

/// Where an identity provider's keys come from, and how they are kept
/// fresh (SPEC §3.6). The fetcher (`jwtgate-keys`) works from this.
#[derive(Clone)]
pub struct ProviderSource {
    pub name: String,
    pub issuer: String,
    pub keys: KeySource,
    pub algorithms: Vec<Algorithm>,
    /// Background refresh, unless the answer's `Cache-Control: max-age`
    /// (within [60, 3600] s) says otherwise.
    pub refresh: Duration,
    /// At most one fetch for unknown kids per interval, counted from the
    /// last fetch of any kind.
    pub kid_miss_interval: Duration,
    /// The last good keys are used this long after their last successful
    /// fetch while the provider is unreachable.
    pub max_stale: Duration,
    /// Bounds each fetch, and how long a request waits for an unknown-kid
    /// fetch.
    pub fetch_timeout: Duration,
    /// Extra trust for the provider's TLS certificate (PEM), beside the
    /// system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub backchannel_logout_path: Option<String>,
}

impl std::fmt::Debug for ProviderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSource")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("keys", &self.keys)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl ProviderSource {
    /// Whether a change from `self` to `next` needs the provider's keys to
    /// be fetched afresh (the fetched keys stay good otherwise).
    pub fn same_origin(&self, next: &ProviderSource) -> bool {
        self.issuer == next.issuer
            && self.algorithms == next.algorithms
            && self.ca_pem == next.ca_pem
            && match (&self.keys, &next.keys) {
                (KeySource::Discovery, KeySource::Discovery) => true,
                (KeySource::Uri(a), KeySource::Uri(b)) => a == b,
                _ => false,
            }
    }
}

#[derive(Clone)]
pub enum KeySource {
    /// `{issuer}/.well-known/openid-configuration` names the `jwks_uri`.
    Discovery,
    Uri(String),
    /// A local file, read and parsed with the config.
    File {
        path: PathBuf,
        set: Arc<JwkSet>,
    },
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Discovery => f.write_str("Discovery"),
            KeySource::Uri(u) => write!(f, "Uri({u:?})"),
            KeySource::File { path, set } => {
                write!(f, "File({}, {} keys)", path.display(), set.len())
            }
        }
    }
}

/// `config_source: {kind: etcd, ...}` compiled (SPEC §6).
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `host:port`, scheme stripped.
    pub endpoints: Vec<String>,
    /// No trailing slash (`/jwtgate`).
    pub prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Set for `https://` endpoints.
    pub tls: Option<EtcdTls>,
    /// Bounds connecting and each etcd request.
    pub dial_timeout: Duration,
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("username", &self.username)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// TLS to etcd: extra trust, and a client certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_pem: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}
