//! A route's upstream (SPEC §2): its nodes, each `host:port` with an
//! optional `weight=N` (nginx's `server` parameter), the scheme and the
//! timeouts, and when a node is left out (nginx's `max_fails`).

use std::path::Path;
use std::time::Duration;

use crate::compile::{ms, shown, split_host_port};
use crate::error::{child, index, Errors};
use crate::model::*;
use crate::raw::*;

pub(crate) fn upstream(
    u: &RawUpstream,
    loc: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<Upstream> {
    if u.echo == Some(true) {
        for (k, set) in [
            ("nodes", u.nodes.is_some()),
            ("scheme", u.scheme.is_some()),
            ("ca_file", u.ca_file.is_some()),
            ("max_fails", u.max_fails.is_some()),
            ("fail_timeout_ms", u.fail_timeout_ms.is_some()),
        ] {
            if set {
                errors.add(&child(loc, k), "is not used with echo: true");
            }
        }
        return Some(Upstream::Echo);
    }
    let nodes = u.nodes.clone().unwrap_or_default();
    if nodes.is_empty() {
        errors.add(
            &child(loc, "nodes"),
            "needs at least one host:port (or set echo: true)",
        );
    }
    let nodes: Vec<UpstreamNode> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| node(n, &index(&child(loc, "nodes"), i), errors))
        .collect();
    let tls = match u.scheme.as_deref().unwrap_or("http") {
        "http" => false,
        "https" => true,
        other => {
            errors.add(
                &child(loc, "scheme"),
                format!("unknown scheme {other:?} (http or https)"),
            );
            false
        }
    };
    let trusted_ca_pem = u
        .ca_file
        .as_deref()
        .and_then(|file| trusted_ca(file, tls, &child(loc, "ca_file"), base_dir, errors));
    Some(Upstream::Nodes(UpstreamNodes {
        nodes,
        tls,
        trusted_ca_pem,
        connect_timeout: ms(
            u.connect_timeout_ms,
            2000,
            &child(loc, "connect_timeout_ms"),
            errors,
        ),
        read_timeout: ms(
            u.read_timeout_ms,
            30_000,
            &child(loc, "read_timeout_ms"),
            errors,
        ),
        max_fails: max_fails(u.max_fails, &child(loc, "max_fails"), errors),
        fail_timeout: fail_timeout(u.fail_timeout_ms, &child(loc, "fail_timeout_ms"), errors),
    }))
}

/// The longest `fail_timeout_ms`: a day. Longer is a typo (an extra
/// zero or three), and would leave a node out for good.
const MAX_FAIL_TIMEOUT_MS: u64 = 86_400_000;

/// An upstream's `fail_timeout_ms`: 10 s unless set, as nginx's.
fn fail_timeout(v: Option<u64>, loc: &str, errors: &mut Errors) -> Duration {
    if v.is_some_and(|v| v > MAX_FAIL_TIMEOUT_MS) {
        errors.add(
            loc,
            format!("must be at most {MAX_FAIL_TIMEOUT_MS} (a day)"),
        );
    }
    ms(v.map(|v| v.min(MAX_FAIL_TIMEOUT_MS)), 10_000, loc, errors)
}

/// The most `max_fails` an upstream may say: more than any operator means
/// (nginx's examples use 1 to 3), few enough that a typo is an error.
const MAX_FAILS: u64 = 1000;

/// An upstream's `max_fails`: 1 unless set, as nginx's; 0 turns the
/// leaving out off.
fn max_fails(v: Option<u64>, loc: &str, errors: &mut Errors) -> u32 {
    let v = v.unwrap_or(1);
    if v > MAX_FAILS {
        errors.add(
            loc,
            format!("must be at most {MAX_FAILS} (0 never leaves a node out)"),
        );
        return 1;
    }
    u32::try_from(v).unwrap_or(1)
}

/// An upstream's `ca_file`: PEM CA certificates trusted for its
/// certificates instead of the system's roots. Read and checked at load,
/// as every file the config names.
fn trusted_ca(
    file: &str,
    tls: bool,
    loc: &str,
    base_dir: &Path,
    errors: &mut Errors,
) -> Option<std::sync::Arc<[u8]>> {
    if !tls {
        errors.add(loc, "is used only with scheme: https");
        return None;
    }
    crate::ca_file::read(base_dir, file, loc, errors).map(Into::into)
}

/// The largest `weight` a node may have: ten times Kong's default (100),
/// so that weights written for Kong or APISIX carry over; a route's turns
/// are laid out at load, one per unit of weight.
pub const MAX_WEIGHT: u32 = 1000;

/// One of `nodes`: `host:port`, then optionally `weight=N` (nginx's
/// `server` parameter; 1 unless given), separated by spaces.
fn node(text: &str, loc: &str, errors: &mut Errors) -> Option<UpstreamNode> {
    let mut words = text.split_ascii_whitespace();
    let address = words.next().unwrap_or_default();
    let Some((host, port)) = split_host_port(address) else {
        errors.add(loc, format!("{:?} is not host:port", shown(text)));
        return None;
    };
    let mut weight = None;
    for word in words {
        let Some(value) = word.strip_prefix("weight=") else {
            errors.add(
                loc,
                format!("unknown parameter {word:?} after host:port (weight=N)"),
            );
            return None;
        };
        if weight.is_some() {
            errors.add(loc, "says weight= twice");
            return None;
        }
        match value.parse::<u32>() {
            Ok(w) if (1..=MAX_WEIGHT).contains(&w) => weight = Some(w),
            _ => {
                errors.add(
                    loc,
                    format!("weight={value:?}: a weight is a whole number from 1 to {MAX_WEIGHT} (a node is drained by leaving it out of nodes)"),
                );
                return None;
            }
        }
    }
    Some(UpstreamNode {
        authority: address.to_owned(),
        host,
        port,
        weight: weight.unwrap_or(1),
    })
}
