//! Stage 1: structs that mirror the YAML file one to one. Optional keys stay
//! `Option` here so that defaults live in one place (`compile`). These are
//! also what the admin API returns and what is written back to the file.

use serde::Serialize;

pub use crate::tls::{RawCertificate, RawTls};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawConfig {
    pub listen: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<RawAdmin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<RawStore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_body_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_cpu_affinity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_yield: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_source: Option<RawConfigSource>,
    pub consumers: Vec<RawConsumer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<RawProvider>,
    pub routes: Vec<RawRoute>,
}

/// An identity provider (SPEC §3.6).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawProvider {
    pub name: String,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid_miss_interval_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stale_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_claim: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawAdmin {
    pub listen: String,
    pub api_key: String,
    /// The web console at `/console/` (SPEC §7); absent means off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console: Option<bool>,
    /// HTTPS on the admin listener: the same settings as `tls:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::tls::RawTls>,
    /// Host names a plain-HTTP admin listener answers to besides IP
    /// literals and `localhost` (DNS rebinding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawStore {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u64>,
    /// A Redis ACL user (Redis 6+); `None`: the `default` user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_backlog: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_retention_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawConsumer {
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    /// None: a consumer with no credential of its own (the anonymous
    /// consumer, or one an identity provider's `consumer_claim` names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<RawCredential>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawCredential {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64_secret: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawRoute {
    pub name: String,
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    pub upstream: RawUpstream,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<RawCors>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket_close_at_exp: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<RawJwt>,
}

/// A route's `cors:` (SPEC §3.9).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawCors {
    pub allow_origins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
}

/// One `authorize` rule (SPEC §3.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawAuthorizeRule {
    #[serde(rename = "match")]
    pub matches: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any_of: Option<std::collections::BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_of: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawUpstream {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fails: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawJwt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_claim_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_credentials: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_claims: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leeway_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lifetime_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_claims: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_payload_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_required_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logout_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_jwt_blacklist_revoking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logout_forward: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<RawProtection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize: Option<Vec<RawAuthorizeRule>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorize_default: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_consumer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logout_everywhere_path: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RawProtection {
    pub undeletable: bool,
    pub immutable: bool,
}

/// `config_source:` (SPEC §6).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawConfigSource {
    pub kind: String,
    pub endpoints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawEtcdTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RawEtcdTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

impl RawConfig {
    /// Whether the file names a config source (the routes, consumers and
    /// providers then live there, not in the file).
    pub fn has_config_source(&self) -> bool {
        self.config_source.is_some()
    }

    /// The per-node part of a config: everything but routes, consumers and
    /// providers.
    pub fn node_part(&self) -> RawConfig {
        RawConfig {
            routes: Vec::new(),
            consumers: Vec::new(),
            providers: Vec::new(),
            ..self.clone()
        }
    }
}
