//! Tree -> [`RawConfig`]: shapes and types only, every error collected.
//! Meaning (algorithms, addresses, path syntax) is checked in `compile`.

use serde_json::Value;

use crate::error::Errors;
use crate::raw::*;
use crate::reader::{obj, Obj};

pub(crate) fn config(root: &Value, errors: &mut Errors) -> RawConfig {
    let Some(mut o) = obj(root, "", errors) else {
        return RawConfig::default();
    };
    let mut raw = RawConfig {
        listen: o.strings("listen", errors).unwrap_or_default(),
        ..RawConfig::default()
    };
    raw.tls = o
        .child_obj("tls", errors)
        .map(|t| crate::tls::read(t, errors));
    if let Some(mut a) = o.child_obj("admin", errors) {
        raw.admin = Some(RawAdmin {
            listen: a.required_string("listen", errors).unwrap_or_default(),
            api_key: a.required_string("api_key", errors).unwrap_or_default(),
            console: a.bool("console", errors),
            tls: a
                .child_obj("tls", errors)
                .map(|t| crate::tls::read(t, errors)),
            allowed_hosts: a.strings("allowed_hosts", errors),
        });
        a.finish(errors);
    }
    if let Some(s) = o.child_obj("store", errors) {
        raw.store = Some(store(s, errors));
    }
    raw.state_dir = o.string("state_dir", errors);
    if let Some(mut c) = o.child_obj("config_source", errors) {
        let tls = c.child_obj("tls", errors).map(|mut t| {
            let tls = RawEtcdTls {
                ca_file: t.string("ca_file", errors),
                cert_file: t.string("cert_file", errors),
                key_file: t.string("key_file", errors),
            };
            t.finish(errors);
            tls
        });
        raw.config_source = Some(RawConfigSource {
            kind: c.required_string("kind", errors).unwrap_or_default(),
            endpoints: c.strings("endpoints", errors).unwrap_or_default(),
            prefix: c.string("prefix", errors),
            username: c.string("username", errors),
            password: c.string("password", errors),
            tls,
            dial_timeout_ms: c.u64("dial_timeout_ms", errors),
        });
        c.finish(errors);
    }
    raw.client_body_timeout_ms = o.u64("client_body_timeout_ms", errors);
    raw.workers = o.u64("workers", errors);
    raw.worker_cpu_affinity = o.keyword("worker_cpu_affinity", errors);
    raw.worker_yield = o.keyword("worker_yield", errors);
    raw.max_connections = o.u64("max_connections", errors);
    for (loc, v) in o.list("consumers", errors) {
        if let Some(c) = obj(v, &loc, errors) {
            raw.consumers.push(consumer(c, errors));
        }
    }
    for (loc, v) in o.list("providers", errors) {
        if let Some(p) = obj(v, &loc, errors) {
            raw.providers.push(provider(p, errors));
        }
    }
    for (loc, v) in o.list("routes", errors) {
        if let Some(r) = obj(v, &loc, errors) {
            raw.routes.push(route(r, errors));
        }
    }
    o.finish(errors);
    raw
}

fn store(mut s: Obj<'_>, errors: &mut Errors) -> RawStore {
    let raw = RawStore {
        kind: s.string("kind", errors),
        path: s.string("path", errors),
        host: s.string("host", errors),
        port: s.u64("port", errors),
        username: s.string("username", errors),
        password: s.string("password", errors),
        database: s.u64("database", errors),
        nodes: s.strings("nodes", errors),
        name: s.string("name", errors),
        pool_size: s.u64("pool_size", errors),
        pool_backlog: s.u64("pool_backlog", errors),
        connect_timeout_ms: s.u64("connect_timeout_ms", errors),
        read_timeout_ms: s.u64("read_timeout_ms", errors),
        send_timeout_ms: s.u64("send_timeout_ms", errors),
        keepalive_timeout_ms: s.u64("keepalive_timeout_ms", errors),
        subject_retention_seconds: s.u64("subject_retention_seconds", errors),
    };
    s.finish(errors);
    raw
}

pub(crate) fn consumer(mut c: Obj<'_>, errors: &mut Errors) -> RawConsumer {
    let username = c.required_string("username", errors).unwrap_or_default();
    let custom_id = c.string("custom_id", errors);
    let jwt = c.child_obj("jwt", errors).map(|mut j| {
        let cred = RawCredential {
            key: j.required_string("key", errors).unwrap_or_default(),
            algorithm: j.string("algorithm", errors),
            secret: j.string("secret", errors),
            base64_secret: j.bool("base64_secret", errors),
            public_key: j.string("public_key", errors),
            public_key_file: j.string("public_key_file", errors),
        };
        j.finish(errors);
        cred
    });
    c.finish(errors);
    RawConsumer {
        username,
        custom_id,
        jwt,
    }
}

fn authorize_rules(j: &mut Obj<'_>, errors: &mut Errors) -> Option<Vec<RawAuthorizeRule>> {
    if !j.has("authorize") {
        let _ = j.list("authorize", errors);
        return None;
    }
    let mut rules = Vec::new();
    for (loc, v) in j.list("authorize", errors) {
        let Some(mut r) = obj(v, &loc, errors) else {
            continue;
        };
        if !r.has("match") {
            errors.add(&r.at("match"), "is required (METHOD_PATH entries)");
        }
        let map = |m: Option<Vec<(String, Vec<String>)>>| m.map(|v| v.into_iter().collect());
        rules.push(RawAuthorizeRule {
            matches: r.strings("match", errors).unwrap_or_default(),
            scopes: r.strings("scopes", errors),
            any_of: map(r.string_lists_map("any_of", errors)),
            all_of: map(r.string_lists_map("all_of", errors)),
        });
        r.finish(errors);
    }
    Some(rules)
}

pub(crate) fn provider(mut p: Obj<'_>, errors: &mut Errors) -> RawProvider {
    let raw = RawProvider {
        name: p.required_string("name", errors).unwrap_or_default(),
        issuer: p.required_string("issuer", errors).unwrap_or_default(),
        discovery: p.bool("discovery", errors),
        jwks_uri: p.string("jwks_uri", errors),
        jwks_file: p.string("jwks_file", errors),
        algorithms: p.strings("algorithms", errors),
        audiences: p.strings("audiences", errors),
        refresh_seconds: p.u64("refresh_seconds", errors),
        kid_miss_interval_seconds: p.u64("kid_miss_interval_seconds", errors),
        max_stale_seconds: p.u64("max_stale_seconds", errors),
        fetch_timeout_ms: p.u64("fetch_timeout_ms", errors),
        ca_file: p.string("ca_file", errors),
        consumer_claim: p.string("consumer_claim", errors),
        client_id: p.string("client_id", errors),
        backchannel_logout_path: p.string("backchannel_logout_path", errors),
    };
    p.finish(errors);
    raw
}

pub(crate) fn route(mut r: Obj<'_>, errors: &mut Errors) -> RawRoute {
    let name = r.required_string("name", errors).unwrap_or_default();
    let paths = r.strings("paths", errors).unwrap_or_default();
    let methods = r.strings("methods", errors);
    let hosts = r.strings("hosts", errors);
    let upstream = match r.child_obj("upstream", errors) {
        Some(mut u) => {
            let up = RawUpstream {
                echo: u.bool("echo", errors),
                nodes: u.strings("nodes", errors),
                scheme: u.string("scheme", errors),
                ca_file: u.string("ca_file", errors),
                connect_timeout_ms: u.u64("connect_timeout_ms", errors),
                read_timeout_ms: u.u64("read_timeout_ms", errors),
                max_fails: u.u64("max_fails", errors),
                fail_timeout_ms: u.u64("fail_timeout_ms", errors),
            };
            u.finish(errors);
            up
        }
        None => {
            if !r.has("upstream") {
                errors.add(
                    &r.at("upstream"),
                    "is required (nodes: [host:port], or echo: true)",
                );
            }
            RawUpstream::default()
        }
    };
    let cors = r.child_obj("cors", errors).map(|mut c| {
        let raw = RawCors {
            allow_origins: c.strings("allow_origins", errors).unwrap_or_default(),
            allow_methods: c.strings("allow_methods", errors),
            allow_headers: c.strings("allow_headers", errors),
            expose_headers: c.strings("expose_headers", errors),
            allow_credentials: c.bool("allow_credentials", errors),
            max_age_seconds: c.u64("max_age_seconds", errors),
        };
        if !c.has("allow_origins") {
            errors.add(
                &c.at("allow_origins"),
                "is required (e.g. [\"https://app.example.com\"])",
            );
        }
        c.finish(errors);
        raw
    });
    let websocket = r.bool("websocket", errors);
    let websocket_close_at_exp = r.bool("websocket_close_at_exp", errors);
    let jwt = r.child_obj("jwt", errors).map(|j| jwt(j, errors));
    r.finish(errors);
    RawRoute {
        name,
        paths,
        methods,
        hosts,
        upstream,
        cors,
        websocket,
        websocket_close_at_exp,
        jwt,
    }
}

pub(crate) fn jwt(mut j: Obj<'_>, errors: &mut Errors) -> RawJwt {
    // Empty, as a file cut just after `protection:` leaves it, it would
    // read as no protection: refused, as an empty flag is.
    if j.is_empty("protection") {
        errors.add(
            &j.at("protection"),
            "is empty: write undeletable and immutable under it, or leave the key out",
        );
    }
    let protection = j.child_obj("protection", errors).map(|mut p| {
        let prot = RawProtection {
            undeletable: p.bool("undeletable", errors).unwrap_or(false),
            immutable: p.bool("immutable", errors).unwrap_or(false),
        };
        p.finish(errors);
        prot
    });
    let raw = RawJwt {
        key_claim_name: j.string("key_claim_name", errors),
        header: j.string("header", errors),
        query: j.string("query", errors),
        cookie: j.string("cookie", errors),
        hide_credentials: j.bool("hide_credentials", errors),
        required_claims: j.strings("required_claims", errors),
        leeway_seconds: j.u64("leeway_seconds", errors),
        max_lifetime_seconds: j.u64("max_lifetime_seconds", errors),
        realm: j.string("realm", errors),
        forward_claims: j
            .string_map("forward_claims", errors)
            .map(|v| v.into_iter().collect()),
        forward_payload_header: j.string("forward_payload_header", errors),
        required_paths: j.strings("required_paths", errors),
        not_required_paths: j.strings("not_required_paths", errors),
        logout_path: j.string("logout_path", errors),
        use_jwt_blacklist_revoking: j.bool("use_jwt_blacklist_revoking", errors),
        logout_forward: j.bool("logout_forward", errors),
        protection,
        providers: j.strings("providers", errors),
        consumers: j.bool("consumers", errors),
        audiences: j.strings("audiences", errors),
        authorize: authorize_rules(&mut j, errors),
        authorize_default: j.string("authorize_default", errors),
        anonymous_consumer: j.string("anonymous_consumer", errors),
        logout_everywhere_path: j.string("logout_everywhere_path", errors),
    };
    j.finish(errors);
    raw
}
