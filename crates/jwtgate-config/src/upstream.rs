//! A route's upstream (SPEC §2): its nodes, each `host:port` with an
//! optional `weight=N` (nginx's `server` parameter), the scheme and the
//! timeouts, and when a node is left out (nginx's `max_fails`).

use std::path::Path;
use std::sync::Arc;
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
    let turns = weighted_turns(&nodes).unwrap_or_else(|turns| {
        errors.add(
            &child(loc, "nodes"),
            format!("the weights take {turns} turns a round (their sum, divided by their greatest common divisor), more than {MAX_TURNS}: use smaller weights"),
        );
        Arc::from([])
    });
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
        turns,
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
    let mut words = words.peekable();
    while let Some(word) = words.next() {
        let Some(value) = word.strip_prefix("weight=") else {
            let spaced = word == "weight" || words.peek().is_some_and(|w| w.starts_with('='));
            let what = if spaced {
                "weight=N is written without spaces".to_owned()
            } else {
                format!("unknown parameter {word:?} after host:port (weight=N)")
            };
            errors.add(loc, what);
            return None;
        };
        if weight.is_some() {
            errors.add(loc, "says weight= twice");
            return None;
        }
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        match value.parse::<u32>() {
            Ok(w) if digits && (1..=MAX_WEIGHT).contains(&w) => weight = Some(w),
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

/// The most turns a round of a route's weighted nodes may take: a hundred
/// nodes of coprime weights up to [`MAX_WEIGHT`] fit, and the table (four
/// bytes a turn) stays small.
pub const MAX_TURNS: u64 = 100_000;

/// The order in which `nodes` take their turns when their weights differ,
/// as node indices: each node as often as its weight, divided by the
/// weights' greatest common divisor (`[2, 2, 4]` takes four turns, not
/// eight), spread among the others' as nginx's smooth weighted round robin
/// spreads them (weights 5, 1, 1 go a a b a c a a). Empty when the weights
/// are all alike: one turn each, in order. `Err(turns)` when a round would
/// take more than [`MAX_TURNS`].
pub fn weighted_turns(nodes: &[UpstreamNode]) -> Result<Arc<[u32]>, u64> {
    let weights: Vec<u64> = divided_weights(nodes).into_iter().map(u64::from).collect();
    if weights.windows(2).all(|w| w[0] == w[1]) {
        return Ok(Arc::from([]));
    }
    let total: u64 = weights.iter().sum();
    if total > MAX_TURNS {
        return Err(total);
    }
    Ok(smooth_weighted_round_robin(&weights, total).into())
}

/// nginx's smooth weighted round robin, a round of it: at turn `t` each
/// node stands at `t * weight - total * turns_taken`, and the highest
/// takes the turn (the first in the list among equals). Nodes of equal
/// weight take their turns among themselves in list order, so each turn
/// compares one node per distinct weight, not every node: a round of many
/// nodes costs its turns times its distinct weights.
fn smooth_weighted_round_robin(weights: &[u64], total: u64) -> Vec<u32> {
    struct Group {
        weight: u64,
        /// Node indices, in list order.
        members: Vec<u32>,
        /// Turns its members have taken, in all.
        taken: u64,
    }
    let mut by_weight: std::collections::BTreeMap<u64, Vec<u32>> = Default::default();
    for (i, &w) in (0u32..).zip(weights) {
        by_weight.entry(w).or_default().push(i);
    }
    let mut groups: Vec<Group> = by_weight
        .into_iter()
        .map(|(weight, members)| Group {
            weight,
            members,
            taken: 0,
        })
        .collect();
    let stand = |g: &Group, t: u64| {
        let count = g.members.len() as u64;
        // Its members have taken `taken / count` turns each, or one more
        // (those before the next in list order).
        let next = g
            .members
            .get((g.taken % count) as usize)
            .copied()
            .unwrap_or(0);
        // At most MAX_TURNS * MAX_WEIGHT: far inside an i64.
        let value = i64::try_from(t * g.weight).unwrap_or(i64::MAX)
            - i64::try_from(total * (g.taken / count)).unwrap_or(i64::MAX);
        (value, next)
    };
    (1..=total)
        .map(|t| {
            let mut best: Option<(usize, i64, u32)> = None;
            for (gi, g) in groups.iter().enumerate() {
                let (value, node) = stand(g, t);
                if best.is_none_or(|(_, v, n)| value > v || (value == v && node < n)) {
                    best = Some((gi, value, node));
                }
            }
            let (gi, _, node) = best.unwrap_or_default();
            if let Some(g) = groups.get_mut(gi) {
                g.taken += 1;
            }
            node
        })
        .collect()
}

/// Each node's weight divided by the weights' greatest common divisor, in
/// list order: `[2, 2, 4]` is `[1, 1, 2]`. A weight of 0 counts as 1.
pub fn divided_weights(nodes: &[UpstreamNode]) -> Vec<u32> {
    let divisor = nodes.iter().fold(0, |g, n| gcd(g, n.weight.max(1))).max(1);
    nodes.iter().map(|n| n.weight.max(1) / divisor).collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(weights: &[u32]) -> Vec<UpstreamNode> {
        (1..)
            .zip(weights)
            .map(|(port, &weight)| UpstreamNode {
                host: "127.0.0.1".into(),
                port,
                authority: format!("127.0.0.1:{port}"),
                weight,
            })
            .collect()
    }

    fn turns(weights: &[u32]) -> Vec<u32> {
        weighted_turns(&weighted(weights)).unwrap().to_vec()
    }

    /// nginx's own, every node at every turn: the oracle.
    fn nginx(weights: &[u64]) -> Vec<u32> {
        let total: i64 = weights.iter().map(|&w| w as i64).sum();
        let mut current = vec![0i64; weights.len()];
        (0..total)
            .map(|_| {
                let mut best = 0;
                for (i, w) in weights.iter().enumerate() {
                    current[i] += *w as i64;
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                best as u32
            })
            .collect()
    }

    #[test]
    fn weighted_turns_interleave_as_nginx_does() {
        assert_eq!(turns(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(turns(&[2, 2, 4]), [2, 0, 1, 2]);
        assert_eq!(turns(&[1, 3]), [1, 0, 1, 1]);
        assert!(turns(&[3, 3, 3]).is_empty());
        assert!(turns(&[7]).is_empty());
        let big = turns(&[1000, 999]);
        assert_eq!(big.len(), 1999);
        assert_eq!(big.iter().filter(|&&i| i == 1).count(), 999);
    }

    #[test]
    fn weights_are_divided_by_their_common_divisor() {
        assert_eq!(divided_weights(&weighted(&[2, 2, 4])), [1, 1, 2]);
        assert_eq!(divided_weights(&weighted(&[6, 9])), [2, 3]);
        assert_eq!(divided_weights(&weighted(&[5, 7])), [5, 7]);
        assert_eq!(divided_weights(&weighted(&[0, 3])), [1, 3]);
        assert_eq!(divided_weights(&weighted(&[])), [] as [u32; 0]);
    }

    /// Grouping nodes of equal weight changes no turn: the same as
    /// nginx's, every node compared at every turn.
    #[test]
    fn grouped_turns_are_nginxs() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let count = 1 + next(12) as usize;
            let kinds = 1 + next(4);
            let weights: Vec<u64> = (0..count).map(|_| 1 + next(kinds) * next(9)).collect();
            let total = weights.iter().sum();
            assert_eq!(
                smooth_weighted_round_robin(&weights, total),
                nginx(&weights),
                "{weights:?}"
            );
        }
    }

    #[test]
    fn a_round_of_more_than_max_turns_is_refused() {
        // 101 nodes of 999 and one of 1000: coprime, 101 899 turns.
        let mut weights = vec![999; 101];
        weights.push(1000);
        assert_eq!(weighted_turns(&weighted(&weights)).unwrap_err(), 101_899);
        // Many nodes of one weight and a few of another: a round costs
        // turns times two weights, however many nodes.
        let mut weights = vec![1; 50_000];
        weights.extend([7; 3]);
        let t = weighted_turns(&weighted(&weights)).unwrap();
        assert_eq!(t.len(), 50_021);
        assert_eq!(t.iter().filter(|&&i| i >= 50_000).count(), 21);
    }
}
