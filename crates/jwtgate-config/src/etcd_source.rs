//! `config_source:` (SPEC §6): where a node finds the routes, consumers and
//! providers it shares with its peers. Compiled and checked here; the etcd
//! client is `jwtgate-etcd`'s.

use std::path::Path;
use std::time::Duration;

use crate::compile::read_file;
use crate::error::{child, index, Errors};
use crate::model::{EtcdSettings, EtcdTls};
use crate::raw::{RawConfig, RawConfigSource};

pub(crate) fn compile(
    c: &RawConfigSource,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<EtcdSettings> {
    let loc = "config_source";
    let at = |k: &str| child(loc, k);
    if c.kind != "etcd" {
        errors.add(
            &at("kind"),
            format!("unknown config source {:?} (expected etcd)", c.kind),
        );
        return None;
    }
    if c.endpoints.is_empty() {
        errors.add(
            &at("endpoints"),
            "needs at least one endpoint (e.g. \"http://127.0.0.1:2379\")",
        );
    }
    let mut tls_wanted = None;
    let mut endpoints = Vec::new();
    for (i, e) in c.endpoints.iter().enumerate() {
        let (tls, rest) = match (e.strip_prefix("https://"), e.strip_prefix("http://")) {
            (Some(r), _) => (true, r),
            (_, Some(r)) => (false, r),
            _ => (false, e.as_str()),
        };
        let rest = rest.trim_end_matches('/');
        if crate::compile::split_host_port(rest).is_none() || rest.contains('/') {
            errors.add(
                &index(&at("endpoints"), i),
                format!("{:?} is not http(s)://host:port", crate::compile::shown(e)),
            );
            continue;
        }
        match tls_wanted {
            Some(t) if t != tls => errors.add(
                &index(&at("endpoints"), i),
                "mixes http and https endpoints",
            ),
            _ => tls_wanted = Some(tls),
        }
        endpoints.push(rest.to_owned());
    }
    let prefix = c.prefix.clone().unwrap_or_else(|| "/jwtgate".into());
    let prefix = prefix.trim_end_matches('/').to_owned();
    if prefix.is_empty() || !prefix.starts_with('/') {
        errors.add(&at("prefix"), "must start with \"/\" and not be the root");
    }
    if c.password.is_some() != c.username.is_some() {
        errors.add(&at("password"), "username and password go together");
    }
    let tls = match (&c.tls, tls_wanted.unwrap_or(false)) {
        (Some(_), false) => {
            errors.add(&at("tls"), "is set but the endpoints are http://");
            None
        }
        (tls, true) => {
            let tls = tls.clone().unwrap_or_default();
            let ca_pem = tls
                .ca_file
                .as_deref()
                .and_then(|f| read_file(base_dir, f, &child(&at("tls"), "ca_file"), errors));
            let identity = match (&tls.cert_file, &tls.key_file) {
                (Some(cert), Some(key)) => {
                    let cert = read_file(base_dir, cert, &child(&at("tls"), "cert_file"), errors);
                    let key = read_file(base_dir, key, &child(&at("tls"), "key_file"), errors);
                    cert.zip(key)
                }
                (None, None) => None,
                _ => {
                    errors.add(&at("tls"), "cert_file and key_file go together");
                    None
                }
            };
            Some(EtcdTls { ca_pem, identity })
        }
        (None, false) => None,
    };
    let dial = c.dial_timeout_ms.unwrap_or(2000);
    if dial == 0 {
        errors.add(&at("dial_timeout_ms"), "must be greater than 0");
    }
    Some(EtcdSettings {
        endpoints,
        prefix,
        username: c.username.clone().filter(|u| !u.is_empty()),
        password: c.password.clone(),
        tls,
        dial_timeout: Duration::from_millis(dial),
    })
}

/// A node's own file with a `config_source` holds only what is per node
/// (SPEC §6): routes, consumers and providers in it are errors.
pub fn check_node_file(raw: &RawConfig) -> Vec<crate::ConfigError> {
    if raw.config_source.is_none() {
        return Vec::new();
    }
    let mut errors = Errors::default();
    for (key, n) in [
        ("routes", raw.routes.len()),
        ("consumers", raw.consumers.len()),
        ("providers", raw.providers.len()),
    ] {
        if n > 0 {
            errors.add(
                key,
                "is not allowed with a config_source: it lives in etcd (use `jwtgate config push`)",
            );
        }
    }
    errors
        .into_result(())
        .err()
        .map(|e| e.0)
        .unwrap_or_default()
}
