//! `store.keepalive_timeout_ms` of a Redis Cluster store (SPEC §2: idle
//! connections closed after this), against a real cluster: the command
//! connection that no operation took for that long is closed on time (the
//! feed's reader sees to it, about once a second) and made afresh at the
//! next operation. An outside audit found the setting read and never used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jwtgate_config::{PoolConfig, RedisClusterConfig};
use jwtgate_store::redis::RedisStore;
use jwtgate_store::{Cursor, Entry, RevocationStore};
use jwtgate_testkit::RedisCluster;

/// The ids of the clients connected to the cluster's nodes, as
/// (port, id), leaving out the `redis-cli` that asks.
fn clients(cluster: &RedisCluster) -> HashSet<(u16, String)> {
    let mut found = HashSet::new();
    for node in &cluster.nodes {
        for line in node.cli(&["CLIENT", "LIST"]).lines() {
            if line.contains("cmd=client|list") {
                continue;
            }
            if let Some(id) = line.split_whitespace().find_map(|f| f.strip_prefix("id=")) {
                found.insert((node.port, id.to_owned()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cluster_command_connection_is_closed_after_keepalive_timeout() {
    let cluster = RedisCluster::start(3, 0);
    let keepalive = Duration::from_millis(300);
    let store = RedisStore::cluster(&RedisClusterConfig {
        nodes: cluster.seeds(),
        username: None,
        password: None,
        name: "keepalive".into(),
        pool: PoolConfig {
            pool_size: 10,
            pool_backlog: 10,
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(5),
        },
        keepalive_timeout: keepalive,
    })
    .expect("store");
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    store
        .revoke(Entry {
            digest: [7; 32],
            expires_at: now + 600,
        })
        .await
        .expect("revoke");
    // Only the command connection is open so far (to every node: the
    // client reads the slot map from them).
    let command = clients(&cluster);
    assert!(!command.is_empty(), "the revoke's connection is not seen");
    let mut cursor = Cursor::Start;
    store
        .changes(&mut cursor, Duration::from_millis(10))
        .await
        .expect("position");

    // Idle past keepalive_timeout_ms: the feed's next read closes it.
    tokio::time::sleep(keepalive * 3).await;
    store
        .changes(&mut cursor, Duration::from_millis(10))
        .await
        .expect("changes");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now_open = clients(&cluster);
        let open: Vec<_> = command.intersection(&now_open).collect();
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "idle {:?} past keepalive_timeout_ms {keepalive:?}, still open: {open:?}",
            keepalive * 3
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The next operation connects afresh, and works.
    assert_eq!(
        store.lookup(&[7; 32]).await.expect("lookup"),
        Some(now + 600)
    );
}
