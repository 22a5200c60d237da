//! Live reload and graceful shutdown, against the real binary: hand edits of
//! the config file (in place and by rename), invalid and protection-breaking
//! edits rejected while traffic flows, SIGHUP, reloads and API writes under
//! continuous load with every request answered and counted, and SIGTERM
//! with a request in flight.

#![allow(clippy::unwrap_used)]

mod admin_support;
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::Mutex;

use admin_support::*;
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// A config with the `api` route on `upstream` (token required), a
/// protected `guarded` route, and `extra` routes on the echo upstream.
fn config(upstream: &str, extra: &[&str], guarded_realm: &str) -> String {
    let mut yaml = format!(
        r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{KEY}" }}
consumers:
  - username: alice
    jwt: {{ key: alice-key, secret: "{SECRET}" }}
routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ nodes: ["{upstream}"] }}
    jwt: {{}}
  - name: guarded
    paths: ["/guarded/*"]
    upstream: {{ echo: true }}
    jwt:
      realm: {guarded_realm}
      protection: {{ undeletable: true, immutable: true }}
"#
    );
    for name in extra {
        yaml.push_str(&format!(
            "  - name: {name}\n    paths: [\"/{name}/*\"]\n    upstream: {{ echo: true }}\n"
        ));
    }
    yaml
}

fn token() -> String {
    sign_hs("HS256", SECRET, claims_for("alice-key"))
}

/// Replaces the file the way editors do: a new file renamed over it.
fn replace_by_rename(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("yaml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Client threads sending authenticated requests to `/api/` until stopped;
/// each counts the answers that were 200 and those that were not.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(node: &Node, clients: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let req = Req::get("/api/load").bearer(&token());
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed, req) =
                    (stop.clone(), ok.clone(), failed.clone(), req.clone());
                let addr = node.addr;
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match req.try_send(addr) {
                            Ok(r) if r.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failed
                                    .lock()
                                    .unwrap()
                                    .push(format!("{} {}", r.status, r.text()))
                            }
                            Err(e) => failed.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Waits until at least `n` more requests have succeeded.
    fn wait_for(&self, n: usize) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        assert!(eventually(WAIT, || self.ok.load(Ordering::Relaxed) >= target));
    }

    /// Stops the clients; returns (succeeded, failures).
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

#[test]
fn hand_edits_are_picked_up_in_place_and_by_rename() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&up.node(), &[], "guarded"));
    assert_eq!(node.get("/one/x").status, 404);

    std::fs::write(&node.config_path, config(&up.node(), &["one"], "guarded")).unwrap();
    assert!(
        eventually(WAIT, || node.get("/one/x").status == 200),
        "{}",
        node.logs()
    );

    replace_by_rename(
        &node.config_path,
        &config(&up.node(), &["one", "two"], "guarded"),
    );
    assert!(
        eventually(WAIT, || node.get("/two/x").status == 200),
        "{}",
        node.logs()
    );
    // The swap comes first, then the count: poll.
    let applied = || {
        node.metrics()
            .value("jwtgate_config_reloads_total", &[("outcome", "applied")])
    };
    assert!(eventually(WAIT, || applied() >= 2.0), "{}", node.logs());
    // The API sees what the file says.
    assert_eq!(node.admin("GET", "/admin/v1/routes/two", None).status, 200);

    // An edit that is valid but does nothing goes live with a warning.
    let shadowed = config(&up.node(), &["one", "two"], "guarded")
        + "  - name: again\n    paths: [\"/two/*\"]\n    upstream: { echo: true }\n";
    std::fs::write(&node.config_path, shadowed).unwrap();
    node.wait_log(
        "config: routes[4]: route \"again\" is never matched: route \"two\" (routes[3])",
        1,
    );
}

/// A config that is a link into another directory (a checkout, say): an
/// edit of the file it points to is picked up as an edit of the config,
/// in place and by rename. The watch had been on the link's directory
/// alone, so such an edit waited for SIGHUP.
#[test]
#[cfg(unix)]
fn hand_edits_of_a_linked_configs_target_are_picked_up() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("checkout");
    std::fs::create_dir(&checkout).unwrap();
    let target = checkout.join("gw.yaml");
    std::fs::write(&target, config(&up.node(), &[], "guarded")).unwrap();
    let link = dir.path().join("jwtgate.yaml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let node = Node::start_on(&link, &[]);
    assert_eq!(node.get("/one/x").status, 404);

    std::fs::write(&target, config(&up.node(), &["one"], "guarded")).unwrap();
    assert!(
        eventually(WAIT, || node.get("/one/x").status == 200),
        "{}",
        node.logs()
    );
    replace_by_rename(&target, &config(&up.node(), &["one", "two"], "guarded"));
    assert!(
        eventually(WAIT, || node.get("/two/x").status == 200),
        "{}",
        node.logs()
    );
}

#[test]
fn an_invalid_edit_is_rejected_while_traffic_keeps_flowing() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&up.node(), &[], "guarded"));
    let traffic = Traffic::start(&node, 2);
    traffic.wait_for(20);

    let broken = config(&up.node(), &["new"], "guarded").replace(
        "jwt: {}",
        "jwt: { required_paths: [\"FETCH_/api/x\"], colour: red }",
    );
    replace_by_rename(&node.config_path, &broken);
    node.wait_log("config reload rejected", 1);
    // Each problem is logged on its own line after the "rejected" line:
    // wait for the last one before reading them.
    node.wait_log("unknown method", 1);
    let logs = node.logs();
    assert!(logs.contains("routes[0].jwt.colour: unknown key"), "{logs}");
    assert!(
        logs.contains("routes[0].jwt.required_paths[0]: unknown method"),
        "{logs}"
    );
    traffic.wait_for(20);
    assert_eq!(node.get("/new/x").status, 404, "the running config stays");
    let metrics = node.metrics();
    assert_eq!(
        metrics.value("jwtgate_config_reloads_total", &[("outcome", "invalid")]),
        1.0
    );

    // The API refuses to overwrite the rejected hand edit ...
    let write = node.admin(
        "PUT",
        "/admin/v1/routes/other",
        Some(json!({"paths": ["/o/*"], "upstream": {"echo": true}})),
    );
    assert_eq!(write.status, 409, "{}", write.text());
    assert!(write.json()["errors"].is_array());
    // ... until the file is fixed.
    replace_by_rename(&node.config_path, &config(&up.node(), &["new"], "guarded"));
    assert!(
        eventually(WAIT, || node.get("/new/x").status == 200),
        "{}",
        node.logs()
    );
    let write = node.admin(
        "PUT",
        "/admin/v1/routes/other",
        Some(json!({"paths": ["/o/*"], "upstream": {"echo": true}})),
    );
    assert_eq!(write.status, 201, "{}", write.text());

    let (ok, failed) = traffic.finish();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
}

#[test]
fn a_file_edit_that_breaks_a_protection_is_rejected_as_a_whole() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&up.node(), &[], "guarded"));

    // Changes the protected policy, and adds a route: neither is applied.
    replace_by_rename(&node.config_path, &config(&up.node(), &["new"], "changed"));
    node.wait_log("protection.immutable", 1);
    assert_eq!(node.get("/new/x").status, 404);
    let refused = node.get("/guarded/x");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"guarded\"")
    );

    // Deletes the protected route.
    let without = config(&up.node(), &[], "guarded");
    let cut = without.find("  - name: guarded").unwrap();
    replace_by_rename(&node.config_path, &without[..cut]);
    node.wait_log("protection.undeletable", 1);
    assert_eq!(node.get("/guarded/x").status, 401, "still there");
    let metrics = node.metrics();
    assert_eq!(
        metrics.value("jwtgate_config_reloads_total", &[("outcome", "protected")]),
        2.0
    );
}

#[test]
fn sighup_reloads_the_file() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&up.node(), &[], "guarded"));
    let applied = || {
        node.metrics()
            .value("jwtgate_config_reloads_total", &[("outcome", "applied")])
    };
    let before = applied();
    node.signal("HUP");
    node.wait_log("SIGHUP: reloading", 1);
    // SIGHUP recompiles even an unchanged file (a key file may have changed).
    assert!(
        eventually(WAIT, || applied() == before + 1.0),
        "{}",
        node.logs()
    );
}

#[test]
fn reloads_and_api_writes_under_continuous_load_lose_no_request() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&up.node(), &[], "guarded"));
    let traffic = Traffic::start(&node, 3);
    traffic.wait_for(10);
    for i in 0..6 {
        // A hand edit (the file as the operator writes it) ...
        let name = format!("file{i}");
        replace_by_rename(&node.config_path, &config(&up.node(), &[&name], "guarded"));
        let target = format!("/{name}/x");
        assert!(
            eventually(WAIT, || node.get(&target).status == 200),
            "{}",
            node.logs()
        );
        traffic.wait_for(5);
        // ... then an API write on top of it.
        let api = format!("api{i}");
        let body = json!({"paths": [format!("/{api}/*")], "upstream": {"echo": true}});
        let resp = node.admin("PUT", &format!("/admin/v1/routes/{api}"), Some(body));
        assert_eq!(resp.status, 201, "{}", resp.text());
        assert_eq!(node.get(&format!("/{api}/x")).status, 200);
        assert_eq!(
            node.get(&target).status,
            200,
            "the API write kept the hand edit"
        );
        traffic.wait_for(5);
    }
    let (ok, failed) = traffic.finish();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    // Every request reached the upstream once and was counted once.
    assert_eq!(up.count(), ok);
    let counted = node.metrics().value(
        "jwtgate_http_requests_total",
        &[("route", "api"), ("code", "200")],
    );
    assert_eq!(counted, ok as f64);
    assert_eq!(
        node.metrics()
            .value("jwtgate_config_reloads_total", &[("outcome", "invalid")]),
        0.0
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_exits_0() {
    let up = Upstream::start_with("gated", Behavior::Gated);
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&up.node(), &[], "guarded").replace("    jwt: {}\n", "");
    let mut node = Node::start(dir.path(), &yaml);
    let addr = node.addr;
    let in_flight = std::thread::spawn(move || Req::get("/api/slow").try_send(addr));
    assert!(
        eventually(WAIT, || !up.started().is_empty()),
        "request never reached the upstream"
    );

    node.signal("TERM");
    // Stops accepting: new connections to both listeners are refused ...
    let refused = |a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_err();
    assert!(
        eventually(WAIT, || refused(addr)),
        "data plane still accepting"
    );
    assert!(
        eventually(WAIT, || refused(node.admin)),
        "admin API still accepting"
    );
    // ... while the request in flight completes.
    up.open_gate();
    let resp = in_flight
        .join()
        .unwrap()
        .expect("the in-flight request failed");
    assert_eq!(resp.status, 200);
    let mut body = GATED_FIRST.clone();
    body.extend_from_slice(GATED_LAST);
    assert_eq!(resp.body, body, "the whole body arrived");
    let status = node.wait_exit(Duration::from_secs(40));
    assert!(status.success(), "exit status {status}:\n{}", node.logs());
    assert!(node.logs().contains("admin API stopped"));
}

#[test]
fn a_new_admin_key_in_the_file_applies_without_restart() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&up.node(), &[], "guarded"));
    let rotated = "rotated-admin-key-9876543210";
    replace_by_rename(
        &node.config_path,
        &config(&up.node(), &[], "guarded").replace(KEY, rotated),
    );
    let with = |key: &str| {
        node.admin_raw(&Req::get("/admin/v1/routes").header("X-API-KEY", key))
            .status
    };
    assert!(eventually(WAIT, || with(rotated) == 200), "{}", node.logs());
    assert_eq!(with(KEY), 401);
}
