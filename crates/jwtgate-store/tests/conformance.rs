//! ONE conformance suite, run against every RevocationStore backend:
//! embedded (redb), a real standalone redis-server, and a real Redis Cluster
//! of 3 primaries + 3 replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jwtgate_config::{PoolConfig, RedisClusterConfig, RedisConfig};
use jwtgate_store::embedded::EmbeddedStore;
use jwtgate_store::redis::RedisStore;
use jwtgate_store::{
    claim_owner, Change, Cursor, Cutoff, Entry, Owner, RevocationStore, Revocations, Subject,
    SubjectKey, TokenSubject,
};
use jwtgate_testkit::{RedisCluster, RedisServer};

const NOW: i64 = 1_900_000_000;

fn digest(i: u32) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[..4].copy_from_slice(&i.to_be_bytes());
    d[31] = 0xAB;
    d
}

fn pool() -> PoolConfig {
    PoolConfig {
        pool_size: 100,
        pool_backlog: 100,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        send_timeout: Duration::from_secs(5),
    }
}

async fn conformance(name: &str, store: Arc<dyn RevocationStore>) {
    // A shared store has a clock of its own (the purge takes the earlier
    // of it and the node's); the embedded one has the node's.
    let clock = store.clock().await.expect("clock");
    if store.is_shared() {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs() as i64;
        let t = clock.unwrap_or_else(|| panic!("{name}: no clock"));
        assert!(
            (t - wall).abs() <= 5,
            "{name}: its clock {t}, the wall {wall}"
        );
    } else {
        assert_eq!(clock, None, "{name}");
    }
    // revoke then lookup
    let a = Entry {
        digest: digest(1),
        expires_at: NOW + 3600,
    };
    store.revoke(a).await.expect("revoke");
    let snap = store.snapshot(NOW).await.expect("snapshot");
    assert!(
        snap.contains(&a),
        "{name}: revoked entry is in the snapshot"
    );
    assert_eq!(
        store.lookup(&a.digest).await.expect("lookup"),
        Some(a.expires_at),
        "{name}: lookup"
    );
    assert_eq!(
        store.lookup(&digest(999)).await.expect("lookup"),
        None,
        "{name}: lookup of an unknown digest"
    );

    // expiry: an entry is gone from snapshots once expired, and purged
    let short = Entry {
        digest: digest(2),
        expires_at: NOW + 10,
    };
    store.revoke(short).await.expect("revoke");
    assert!(store.snapshot(NOW).await.expect("snap").contains(&short));
    let later = store.snapshot(NOW + 10).await.expect("snap");
    assert!(
        !later.iter().any(|e| e.digest == short.digest),
        "{name}: expired entry not in snapshot"
    );
    assert!(
        store.purge(NOW + 10).await.expect("purge") >= 1,
        "{name}: purge removes the expired entry"
    );
    assert!(!store
        .snapshot(0)
        .await
        .expect("snap")
        .iter()
        .any(|e| e.digest == short.digest));

    // repeat revoke: one entry, the later expiry wins
    store.revoke(a).await.expect("revoke again");
    store
        .revoke(Entry {
            expires_at: NOW + 7200,
            ..a
        })
        .await
        .expect("revoke longer");
    store
        .revoke(Entry {
            expires_at: NOW + 60,
            ..a
        })
        .await
        .expect("revoke shorter");
    let snap = store.snapshot(NOW).await.expect("snapshot");
    let mine: Vec<_> = snap.iter().filter(|e| e.digest == a.digest).collect();
    assert_eq!(mine.len(), 1, "{name}: one entry per digest");
    assert_eq!(
        mine[0].expires_at,
        NOW + 7200,
        "{name}: the later expiry is kept"
    );

    // the change feed sees revocations made after the position (shared stores)
    if store.is_shared() {
        let mut cursor = store.position().await.expect("position");
        assert_ne!(cursor, Cursor::Start);
        let b = Entry {
            digest: digest(3),
            expires_at: NOW + 3600,
        };
        store.revoke(b).await.expect("revoke");
        let seen = store
            .changes(&mut cursor, Duration::from_millis(500))
            .await
            .expect("changes");
        assert_eq!(
            seen,
            vec![Change::Revoked(b)],
            "{name}: the feed delivers the new revocation"
        );
        let none = store
            .changes(&mut cursor, Duration::from_millis(100))
            .await
            .expect("changes");
        assert!(none.is_empty(), "{name}: nothing new after the cursor");
    }

    cutoffs_conform(name, &store).await;

    // 100 000 entries loaded at start
    let bulk: Vec<Entry> = (1000..101_000u32)
        .map(|i| Entry {
            digest: digest(i),
            expires_at: i64::MAX / 2,
        })
        .collect();
    let t = Instant::now();
    store.revoke_batch(&bulk).await.expect("bulk revoke");
    let written = t.elapsed();
    let revocations = Revocations::new(Arc::clone(&store), None);
    let t = Instant::now();
    let (loaded, _) = revocations.load().await.expect("load");
    let load_time = t.elapsed();
    assert!(loaded >= 100_000, "{name}: loaded {loaded}");
    assert!(revocations.is_revoked(&[digest(50_000)], NOW));
    assert!(!revocations.is_revoked(&[digest(999_999)], NOW));
    assert!(revocations.is_revoked(&[digest(999_999), digest(50_001)], NOW));
    eprintln!("[{name}] 100000 entries: written in {written:?}, loaded at start in {load_time:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    conformance("embedded", store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backend_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Entry {
        digest: digest(7),
        expires_at: NOW + 3600,
    };
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        store.revoke(e).await.expect("revoke");
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert!(store.snapshot(NOW).await.expect("snap").contains(&e));
}

/// A store another node holds is said to be in use, not redb's "Database
/// already open. Cannot acquire lock." (an outside review of the README).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_held_open_is_said_to_be_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _held = EmbeddedStore::open(dir.path()).expect("open");
    let e = EmbeddedStore::open(dir.path())
        .err()
        .expect("held open")
        .to_string();
    assert!(
        e.contains("revocations.redb: is in use by another process (another jwtgate"),
        "{e}"
    );
}

/// The store's file removed while the node runs: a revocation written
/// into it is not acknowledged (it went to a file no restart finds, and a
/// 200 for it had been lost at the next start), nor is any after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_into_a_store_file_removed_meanwhile_is_not_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let entry = |i| Entry {
        digest: digest(i),
        expires_at: NOW + 3600,
    };
    store.revoke(entry(1)).await.expect("revoke");
    std::fs::remove_file(dir.path().join("revocations.redb")).expect("rm");
    let e = store
        .revoke(entry(2))
        .await
        .expect_err("into a removed file");
    assert!(
        e.to_string()
            .contains("was removed or replaced while the node ran"),
        "{e}"
    );
    let e = store.revoke(entry(3)).await.expect_err("and after");
    assert!(
        e.to_string().contains("was removed while the node ran"),
        "{e}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("data");
    let e = Entry {
        digest: digest(8),
        expires_at: NOW + 3600,
    };
    EmbeddedStore::open(&dir)
        .expect("open")
        .revoke(e)
        .await
        .expect("revoke");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the directory it created");
    assert_eq!(
        mode(&dir.join("revocations.redb")),
        0o600,
        "the store's file"
    );
    // Reopened: the same file, still private, still holding the entry.
    let store = EmbeddedStore::open(&dir).expect("reopen");
    assert!(store.snapshot(NOW).await.expect("snap").contains(&e));
    assert_eq!(mode(&dir.join("revocations.redb")), 0o600);
}

/// The store's file is the record of every logout: an empty or damaged
/// one is an error naming it (a fresh empty store let every revoked token
/// back in; a damaged one made redb panic), and a link planted where it
/// goes is never followed.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_file_that_lost_its_content_is_refused_not_started_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("revocations.redb");
    let e = Entry {
        digest: digest(9),
        expires_at: NOW + 3600,
    };
    EmbeddedStore::open(dir.path())
        .expect("open")
        .revoke(e)
        .await
        .expect("revoke");

    // Emptied (a failed copy, a full disk): refused, and left as it is.
    let kept = std::fs::read(&file).expect("read");
    std::fs::write(&file, b"").expect("truncate");
    let err = EmbeddedStore::open(dir.path())
        .err()
        .expect("an empty store file");
    assert!(err.to_string().contains("is empty"), "{err}");
    assert_eq!(std::fs::metadata(&file).expect("stat").len(), 0);

    // Damaged inside: an error naming the file, not a panic.
    let mut damaged = kept.clone();
    for b in damaged.iter_mut().skip(4096).step_by(97) {
        *b ^= 0xff;
    }
    std::fs::write(&file, &damaged).expect("damage");
    let err = EmbeddedStore::open(dir.path())
        .err()
        .expect("a damaged store file");
    let err = err.to_string();
    assert!(err.contains("revocations.redb"), "{err}");

    // Restored from the backup: every revocation is there.
    std::fs::write(&file, &kept).expect("restore");
    let store = EmbeddedStore::open(dir.path()).expect("restored");
    assert!(store.snapshot(NOW).await.expect("snap").contains(&e));
}

/// A node that crashed, or met a full disk, while it made its store left
/// no empty store file (which every later start would refuse as a store
/// that lost what it held), only a temporary one, which the next start
/// takes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_making_was_cut_short_is_made_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".revocations.redb.0123abcd.tmp"), b"").expect("leftover");
    let store = EmbeddedStore::open(dir.path()).expect("open after a cut-short start");
    let e = Entry {
        digest: digest(10),
        expires_at: NOW + 3600,
    };
    store.revoke(e).await.expect("revoke");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["revocations.redb"]);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_never_opens_through_a_planted_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("data");
    std::fs::create_dir(&store_dir).expect("mkdir");
    let target = dir.path().join("chosen-by-someone-else");
    std::os::unix::fs::symlink(&target, store_dir.join("revocations.redb")).expect("symlink");
    let err = EmbeddedStore::open(&store_dir)
        .err()
        .expect("a planted link");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!target.exists(), "the link's target was created");

    // A link to an existing empty file: the file stays empty.
    std::fs::write(&target, b"").expect("victim");
    let err = EmbeddedStore::open(&store_dir)
        .err()
        .expect("a planted link");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::metadata(&target).expect("stat").len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_conforms() {
    let server = RedisServer::start();
    let store = RedisStore::standalone(&RedisConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        username: None,
        password: None,
        database: 3,
        pool: pool(),
    })
    .expect("store");
    conformance("redis", Arc::new(store)).await;
    // database 3 was used, not 0
    assert_eq!(server.cli(&["-n", "0", "DBSIZE"]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_backend_conforms() {
    let cluster = RedisCluster::start(3, 1);
    let store = RedisStore::cluster(&RedisClusterConfig {
        nodes: cluster.seeds(),
        username: None,
        password: None,
        name: "conformance".into(),
        pool: pool(),
        keepalive_timeout: Duration::from_secs(55),
    })
    .expect("store");
    conformance("redis_cluster", Arc::new(store)).await;
}

fn key(owner: Owner, subject: Subject) -> SubjectKey {
    SubjectKey { owner, subject }
}

/// Subject cut-offs (SPEC §3.10) and once-only keys, on every backend.
async fn cutoffs_conform(name: &str, store: &Arc<dyn RevocationStore>) {
    let alice = key(Owner::Consumer("alice".into()), Subject::Every);
    let bob_u1 = key(
        Owner::Consumer("bob".into()),
        Subject::Sub("u|1 \"odd\"".into()),
    );
    let corp_sid = key(Owner::Provider("corp".into()), Subject::Sid("s-1".into()));
    let cut = |k: &SubjectKey, at: i64| Cutoff {
        key: k.clone(),
        not_before: at,
        expires_at: at + 3600,
    };
    let mut cursor = if store.is_shared() {
        Some(store.position().await.expect("position"))
    } else {
        None
    };
    store.cut_off(&cut(&alice, NOW)).await.expect("cut off");
    store.cut_off(&cut(&bob_u1, NOW)).await.expect("cut off");
    store.cut_off(&cut(&corp_sid, NOW)).await.expect("cut off");
    // A later cut-off wins; an earlier one changes nothing.
    store.cut_off(&cut(&alice, NOW + 100)).await.expect("later");
    store
        .cut_off(&cut(&alice, NOW - 100))
        .await
        .expect("earlier");
    let mut all = store.cutoffs(NOW).await.expect("cutoffs");
    all.sort_by_key(|c| c.key.encode());
    assert_eq!(all.len(), 3, "{name}: {all:?}");
    let alice_now = all.iter().find(|c| c.key == alice).expect("alice");
    assert_eq!(
        alice_now.not_before,
        NOW + 100,
        "{name}: the later cut-off is kept"
    );
    assert!(
        all.iter().any(|c| c.key == bob_u1),
        "{name}: odd subjects survive"
    );
    // Deleting: true once, then false.
    assert!(store.lift(&corp_sid).await.expect("lift"), "{name}");
    assert!(!store.lift(&corp_sid).await.expect("lift again"), "{name}");
    assert_eq!(store.cutoffs(NOW).await.expect("cutoffs").len(), 2);
    // Retention: gone from snapshots once expired, and purged.
    assert!(store
        .cutoffs(NOW + 3600)
        .await
        .expect("cutoffs")
        .iter()
        .all(|c| c.key == alice));
    assert!(store.purge(NOW + 3650).await.expect("purge") >= 1);
    assert!(store
        .cutoffs(0)
        .await
        .expect("cutoffs")
        .iter()
        .all(|c| c.key != bob_u1));
    // The feed carries cut-offs and deletions to the other nodes.
    if let Some(cursor) = &mut cursor {
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.extend(
                store
                    .changes(cursor, Duration::from_millis(200))
                    .await
                    .expect("changes"),
            );
        }
        assert!(
            seen.contains(&Change::CutOff(cut(&bob_u1, NOW))),
            "{name}: {seen:?}"
        );
        assert!(
            seen.contains(&Change::Lifted(corp_sid.clone())),
            "{name}: {seen:?}"
        );
    }
    // Once-only keys: a replay is seen as one.
    let jti = format!("{name}-jti");
    let (first, second) = (claim_owner(), claim_owner());
    assert_ne!(first, second);
    assert!(
        store
            .claim_once(&jti, &first, NOW + 60)
            .await
            .expect("claim"),
        "{name}"
    );
    assert!(
        !store
            .claim_once(&jti, &second, NOW + 60)
            .await
            .expect("claim again"),
        "{name}"
    );
    assert!(store
        .claim_once(&format!("{jti}-2"), &second, NOW + 60)
        .await
        .expect("other"));
    // A forget takes back its own claim only: the second caller, whose
    // claim failed, leaves the first one's in place.
    store.forget_once(&jti, &second).await.expect("forget");
    assert!(
        !store
            .claim_once(&jti, &second, NOW + 60)
            .await
            .expect("claim after another's forget"),
        "{name}: another caller's forget took the claim back"
    );
    store.forget_once(&jti, &first).await.expect("forget");
    assert!(
        store
            .claim_once(&jti, &second, NOW + 60)
            .await
            .expect("claim after the owner's forget"),
        "{name}: the owner's forget left the claim"
    );
    // A forget that arrives before its claim (the claim went over a
    // connection since dropped, to a Redis that stalled): the claim, late,
    // finds the key taken, and a retry's claim takes it.
    let late = format!("{jti}-late");
    store
        .forget_once(&late, &first)
        .await
        .expect("forget first");
    assert!(
        !store
            .claim_once(&late, &first, NOW + 60)
            .await
            .expect("late claim"),
        "{name}: a claim arriving after its own forget was taken"
    );
    assert!(
        store
            .claim_once(&late, &second, NOW + 60)
            .await
            .expect("retry"),
        "{name}: a retry's claim was refused after a forget"
    );
    assert!(
        !store
            .claim_once(&late, &first, NOW + 60)
            .await
            .expect("replay"),
        "{name}: a replay of the retried token was taken"
    );
    // Two processings forgotten in turn (the second's forget met the
    // first's mark): neither one's late claim takes the key, and a third
    // retry does.
    let twice = format!("{jti}-twice");
    let third = jwtgate_store::claim_owner();
    assert!(store
        .claim_once(&twice, &second, NOW + 60)
        .await
        .expect("claim"));
    store
        .forget_once(&twice, &second)
        .await
        .expect("forget second");
    store
        .forget_once(&twice, &first)
        .await
        .expect("forget first");
    for late in [&first, &second] {
        assert!(
            !store
                .claim_once(&twice, late, NOW + 60)
                .await
                .expect("late claim"),
            "{name}: a forgotten claim arriving late took the key"
        );
    }
    assert!(
        store
            .claim_once(&twice, &third, NOW + 60)
            .await
            .expect("retry"),
        "{name}: the retry after two forgotten claims was refused"
    );
    // A claim that took the key from forgotten ones keeps their names: it
    // failed and was forgotten in turn, and the first one's claim, late,
    // still finds the key taken.
    let kept = format!("{jti}-kept");
    let fourth = jwtgate_store::claim_owner();
    store
        .forget_once(&kept, &first)
        .await
        .expect("forget first");
    assert!(store
        .claim_once(&kept, &second, NOW + 60)
        .await
        .expect("claim second"));
    store
        .forget_once(&kept, &second)
        .await
        .expect("forget second");
    assert!(
        !store
            .claim_once(&kept, &first, NOW + 60)
            .await
            .expect("late first"),
        "{name}: a forgotten claim's name was lost when another claim took the key"
    );
    assert!(
        store
            .claim_once(&kept, &fourth, NOW + 60)
            .await
            .expect("retry"),
        "{name}: the retry was refused"
    );
    // The same claim made twice (a client that sent the command again,
    // its first answer lost) is the same claim, not a replay.
    assert!(
        store
            .claim_once(&twice, &third, NOW + 60)
            .await
            .expect("again"),
        "{name}: a claim sent twice was taken for a replay"
    );

    // A node's view: loaded with the blacklist, checked in memory.
    let revocations = Revocations::new(Arc::clone(store), None);
    revocations.load().await.expect("load");
    let token = TokenSubject {
        consumer: Some("alice"),
        sub: Some("anyone"),
        iat: Some(NOW + 100),
        ..TokenSubject::default()
    };
    assert!(revocations.cutoff_for(&token, NOW).is_some(), "{name}");
    let later = TokenSubject {
        iat: Some(NOW + 101),
        ..token
    };
    assert!(revocations.cutoff_for(&later, NOW).is_none(), "{name}");
    store.lift(&alice).await.expect("clean up");
}
