//! The token blacklist on a real Redis Cluster (SPEC §3.4): three primaries
//! with a replica each, started with `redis-cli --cluster create`. A logout on
//! one gateway is refused on another; every revocation acknowledged with
//! `200 logged out` survives the loss of the primary that owns the
//! blacklist's slot (it was acknowledged by a replica), on the nodes that
//! were running and on nodes started after the failover; and logouts work
//! again once the replica has taken over.
//!
//! A test binary of its own: its six redis-server processes would skew the
//! timings that `revocation.rs` measures.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jwtgate_testkit::{RedisCluster, RedisServer, ACL_DEFAULT_NO_KEYS, ACL_PASSWORD, ACL_USER};
use serde_json::json;
use support::*;

const SECRET: &str = "alice-secret-0123456789abcdefghij";
const ZSET: &str = "{jwtgate}:revoked";

fn alice_token() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    sign_hs(
        "HS256",
        SECRET,
        json!({"key": "user123", "exp": now() + 3600, "jti": format!("jti-{}-{n}", std::process::id())}),
    )
}

/// SHA-256 of the token's signing input (SPEC §3.11), in hex.
fn sha256_hex(token: &str) -> String {
    let signing_input = &token[..token.rfind('.').expect("a JWS")];
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, signing_input.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn config(seeds: &[String], up: &Upstream) -> String {
    let nodes: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"listen: "127.0.0.1:0"
store:
  kind: redis_cluster
  nodes: [{nodes}]
  name: jwtgate
  connect_timeout_ms: 1000
  read_timeout_ms: 1000
  send_timeout_ms: 1000
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: app
    paths: ["/app/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{ use_jwt_blacklist_revoking: true, logout_path: "POST_/app/logout" }}
"#,
        nodes = nodes.join(", "),
        node = up.node()
    )
}

fn logout(gw: &Gateway, token: &str) -> Response {
    gw.send(&Req::post("/app/logout").bearer(token))
}

fn get_app(gw: &Gateway, token: &str) -> Response {
    gw.send(&Req::get("/app/orders").bearer(token))
}

fn assert_logged_out(gw: &Gateway, resp: &Response) {
    assert_eq!(
        resp.status,
        200,
        "logout: {:?}\n--- gateway ---\n{}",
        resp.text(),
        gw.logs()
    );
    assert_eq!(resp.json(), json!({"message": "logged out"}));
}

/// Polls until `gw` refuses `token` as revoked; returns how long it took.
fn wait_refused(gw: &Gateway, token: &str, timeout: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let resp = get_app(gw, token);
        if resp.status == 401 {
            assert_refused(&resp, "JWT token has been revoked", "jwtgate", true);
            return start.elapsed();
        }
        assert_eq!(resp.status, 200, "{what}: {:?}", resp.text());
        assert!(
            start.elapsed() < timeout,
            "{what}: token still accepted after {timeout:?}\n--- gateway ---\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Logs out fresh tokens until one is answered 200 (503 is expected while
/// the cluster fails over); returns that token and how long it took.
fn logout_until_accepted(gw: &Gateway, timeout: Duration, what: &str) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let token = alice_token();
        let resp = logout(gw, &token);
        if resp.status == 200 {
            assert_logged_out(gw, &resp);
            return (token, start.elapsed());
        }
        assert_eq!(
            assert_json_error(&resp, 503),
            "revocation store unavailable",
            "{what}"
        );
        assert!(
            start.elapsed() < timeout,
            "{what}: logouts still failed after {timeout:?}\n--- gateway ---\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cluster_revocations_are_shared_and_survive_a_primary_failover() {
    let mut cluster = RedisCluster::start(3, 1);
    let all_seeds = cluster.seeds();
    let up = Upstream::start();
    let a = Gateway::start(&config(&all_seeds, &up));
    let b = Gateway::start(&config(&all_seeds, &up));

    // Shared: a logout on A is refused on B, and the other way round.
    let mut acked = Vec::new();
    for (from, to, name) in [(&a, &b, "A -> B"), (&b, &a, "B -> A")] {
        let token = alice_token();
        assert_eq!(get_app(to, &token).status, 200);
        assert_logged_out(from, &logout(from, &token));
        let took = wait_refused(to, &token, Duration::from_secs(15), name);
        eprintln!("cluster propagation {name}: {took:?}");
        acked.push(token);
    }
    for _ in 0..6 {
        let token = alice_token();
        assert_logged_out(&a, &logout(&a, &token));
        acked.push(token);
    }
    // B has read them from the feed before the primary goes: what follows
    // is about the failover, not about how soon B reads.
    for t in &acked {
        wait_refused(&b, t, Duration::from_secs(15), "B, before the failover");
    }

    // Kill the primary that owns the blacklist's slot; a replica takes over.
    let owner = cluster.primary_for(ZSET);
    let dead = cluster.nodes[owner].addr();
    let killed_at = Instant::now();
    cluster.kill_and_wait_failover(owner);
    eprintln!(
        "killed primary {dead}; failover complete after {:?}",
        killed_at.elapsed()
    );

    // Every acknowledged revocation is on the promoted replica.
    let promoted = cluster.primary_for(ZSET);
    assert_ne!(promoted, owner);
    for t in &acked {
        let score = cluster.nodes[promoted].cli(&["ZSCORE", ZSET, &sha256_hex(t)]);
        assert!(
            score.parse::<f64>().is_ok(),
            "an acknowledged revocation is missing on the promoted replica (ZSCORE {score:?})"
        );
    }

    // Refused on the nodes that were running ...
    for t in &acked {
        assert_refused(
            &get_app(&a, t),
            "JWT token has been revoked",
            "jwtgate",
            true,
        );
        assert_refused(
            &get_app(&b, t),
            "JWT token has been revoked",
            "jwtgate",
            true,
        );
    }
    // ... and on nodes started after the failover: seeds without the dead
    // node, and the original seeds with the dead node first.
    let c = Gateway::start(&config(&cluster.seeds(), &up));
    let mut dead_first = vec![dead.clone()];
    dead_first.extend(all_seeds.iter().filter(|s| **s != dead).cloned());
    let d = Gateway::start(&config(&dead_first, &up));
    for (gw, name) in [(&c, "C (live seeds)"), (&d, "D (dead seed first)")] {
        for t in &acked {
            wait_refused(gw, t, Duration::from_secs(30), name);
        }
        assert_eq!(get_app(gw, &alice_token()).status, 200, "{name}");
    }

    // Logouts work again after the failover, and reach every node.
    let (token, took) = logout_until_accepted(&a, Duration::from_secs(30), "A after failover");
    eprintln!("logout on A accepted {took:?} after the failover completed");
    for (gw, name) in [(&b, "B"), (&c, "C"), (&d, "D")] {
        let took = wait_refused(gw, &token, Duration::from_secs(15), name);
        eprintln!("post-failover revocation refused on {name} after {took:?}");
    }
    let (token, _) = logout_until_accepted(&d, Duration::from_secs(30), "D after failover");
    wait_refused(&a, &token, Duration::from_secs(15), "A, logout on D");
    // The Redis client's own warnings (a failed connection to a node,
    // several a second through an outage: an outside Redis audit) are
    // left out by default; jwtgate says an outage once.
    for (gw, name) in [(&a, "A"), (&b, "B"), (&d, "D")] {
        assert!(
            !gw.logs().contains(" redis::"),
            "{name}: the Redis client's own lines\n{}",
            gw.logs()
        );
    }
}

/// A primary that hangs (SIGSTOP: a stuck host, a network that drops
/// packets) rather than dies: once its replica has taken over, the nodes
/// that were running take logouts again and refuse each other's. Before,
/// their cluster connection kept the hung primary in its slot map (the
/// client refreshes it on MOVED and connection errors, never on a
/// timeout): logouts answered 503 for as long as it hung, and a token
/// logged out through a node started meanwhile passed on them (found by
/// an outside attack).
#[test]
fn a_hung_primary_is_left_behind_once_its_replica_has_taken_over() {
    let mut cluster = RedisCluster::start(3, 1);
    let seeds = cluster.seeds();
    let up = Upstream::start();
    let a = Gateway::start(&config(&seeds, &up));
    let b = Gateway::start(&config(&seeds, &up));
    let token = alice_token();
    assert_logged_out(&a, &logout(&a, &token));
    wait_refused(&b, &token, Duration::from_secs(15), "B, before the hang");

    let owner = cluster.primary_for(ZSET);
    let paused_at = Instant::now();
    cluster.pause_and_wait_failover(owner);
    eprintln!(
        "primary paused; failover complete after {:?}",
        paused_at.elapsed()
    );

    // The hung primary still holds the connections both nodes made to it.
    let (token, took) = logout_until_accepted(&a, Duration::from_secs(20), "A after the failover");
    eprintln!("logout on A accepted {took:?} after the failover completed");
    let took = wait_refused(&b, &token, Duration::from_secs(15), "B, logout on A");
    eprintln!("refused on B after {took:?}");
    let (token, _) = logout_until_accepted(&b, Duration::from_secs(20), "B after the failover");
    wait_refused(&a, &token, Duration::from_secs(15), "A, logout on B");
    cluster.nodes[owner].resume();
}

/// `store.username` on a cluster: every node has an ACL user `gw`, and the
/// `default` user may touch no key; two gateways signed in as `gw` share a
/// logout (the slot map, the write and the feed all go as that user).
#[test]
fn cluster_nodes_sign_in_as_a_redis_acl_user() {
    let cluster = RedisCluster::start(3, 0);
    for node in &cluster.nodes {
        assert_eq!(node.cli(ACL_USER), "OK");
        assert_eq!(node.cli(&ACL_DEFAULT_NO_KEYS), "OK");
    }
    let up = Upstream::start();
    let yaml = config(&cluster.seeds(), &up).replace(
        "  name: jwtgate\n",
        &format!("  name: jwtgate\n  username: gw\n  password: {ACL_PASSWORD}\n"),
    );
    let a = Gateway::start(&yaml);
    let b = Gateway::start(&yaml);
    let (token, _) = logout_until_accepted(&a, Duration::from_secs(15), "A as gw");
    wait_refused(&b, &token, Duration::from_secs(15), "B, logout on A");
    // The README's least rights were enough for all of it.
    for n in [&a, &b] {
        assert_least_redis_rights_were_enough(&n.logs());
    }

    // Without the user, the password is taken as the default user's, which
    // has none (and may write no key of the blacklist): 503, never
    // "logged out".
    let c = Gateway::start(&yaml.replace("  username: gw\n", ""));
    let resp = logout(&c, &alice_token());
    assert_eq!(
        assert_json_error(&resp, 503),
        "revocation store unavailable"
    );
}

/// A seed of `store.nodes` that is a member of another cluster (a node
/// re-provisioned into a cluster of its own: an outside audit found a node
/// that reached it first keeping its logouts there, unseen by its peers,
/// without a word): the node says at `ERROR` which seeds belong to which
/// cluster. A node whose seeds are one cluster says nothing of the kind.
#[test]
fn seeds_of_two_clusters_are_said() {
    let cluster = RedisCluster::start(3, 0);
    let foreign = RedisServer::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]);
    assert_eq!(
        foreign.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
        "OK"
    );
    let up = Upstream::start();
    let mut seeds = cluster.seeds();
    let good = Gateway::start(&config(&seeds, &up));
    seeds.push(foreign.addr());
    let split = Gateway::start(&config(&seeds, &up));
    let said = format!(
        "store.nodes: the seeds belong to 2 different Redis clusters ({} / {})",
        cluster.seeds().join(", "),
        foreign.addr()
    );
    assert!(
        eventually(Duration::from_secs(15), || split.logs().contains(&said)),
        "{}",
        split.logs()
    );
    // The good node's seeds: one cluster, said once it has asked them.
    assert!(
        eventually(Duration::from_secs(15), || good
            .logs()
            .contains("store.nodes: 3 of 3 seeds answered, all of one cluster")),
        "{}",
        good.logs()
    );
    // The good node's logouts work. Whether the split node sees them is
    // exactly what its seeds leave to chance (which cluster its connection
    // reached first): what the ERROR line is there to say.
    logout_until_accepted(&good, Duration::from_secs(15), "good");
    assert!(
        !good.logs().contains("different Redis clusters"),
        "{}",
        good.logs()
    );
}
