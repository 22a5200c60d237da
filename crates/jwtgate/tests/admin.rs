//! The admin API (SPEC §4, §3.5), against the real binary: the key, CRUD of
//! routes, policies and consumers, field errors, protection, the path-mode
//! reset, write-back and restart, the OpenAPI document, revocations,
//! `/status` and `/metrics`.

#![allow(clippy::unwrap_used)]

mod admin_support;
mod support;

use admin_support::*;
use serde_json::{json, Value};
use support::*;

fn base() -> String {
    format!(
        r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{KEY}" }}
consumers:
  - username: alice
    custom_id: crm-1
    jwt: {{ key: alice-key, secret: "{SECRET}" }}
routes:
  - name: api
    paths: ["/api/*"]
    upstream: {{ echo: true }}
    jwt: {{}}
  - name: guarded
    paths: ["/guarded/*"]
    upstream: {{ echo: true }}
    jwt:
      realm: guarded
      protection: {{ undeletable: true, immutable: true }}
"#
    )
}

fn start() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &base());
    (dir, node)
}

fn token(key: &str, secret: &str) -> String {
    sign_hs("HS256", secret, claims_for(key))
}

fn fields(resp: &Response) -> Vec<String> {
    let body = resp.json();
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn admin_requests_need_the_exact_key() {
    let (_dir, node) = start();
    for req in [
        Req::get("/admin/v1/routes"),
        Req::get("/admin/v1/routes").header("X-API-KEY", "wrong"),
        Req::get("/admin/v1/routes").header("X-API-KEY", &format!("{KEY}x")),
        Req::get("/admin/v1/routes").header("X-API-KEY", ""),
        // Two keys, the right one among them: neither is taken.
        Req::get("/admin/v1/routes")
            .header("X-API-KEY", KEY)
            .header("X-API-KEY", "wrong"),
        Req::get("/admin/v1/routes")
            .header("X-API-KEY", "wrong")
            .header("X-API-KEY", KEY),
        Req::get("/admin/v1/no-such-endpoint"),
        Req::new("DELETE", "/admin/v1/routes/api"),
    ] {
        let resp = node.admin_raw(&req);
        assert_eq!(resp.status, 401, "{req:?}: {}", resp.text());
        assert!(resp.message().is_some(), "JSON body: {}", resp.text());
    }
    assert_eq!(node.get("/api/x").status, 401, "route api still there");
    assert_eq!(node.admin("GET", "/admin/v1/routes", None).status, 200);
    // Open endpoints.
    let status = node.admin_raw(&Req::get("/status"));
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["status"], "ready");
    assert_eq!(node.admin_raw(&Req::get("/metrics")).status, 200);
}

/// A web page whose name an attacker re-points at the admin listener's
/// address (DNS rebinding) is the listener's own origin to the browser: an
/// outside audit read `/status` and `/metrics` that way and, with a weak
/// key, deleted a route's policy. A plain-HTTP listener answers only its
/// addresses, `localhost` and the names of `admin.allowed_hosts`, which
/// apply with the config.
#[test]
fn regression_a_rebound_name_does_not_reach_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = base().replace(
        r#"admin: { listen: "127.0.0.1:0", api_key: "admin-key-for-tests-0123456789" }"#,
        r#"admin: { listen: "127.0.0.1:0", api_key: "admin-key-for-tests-0123456789", console: true }"#,
    );
    assert!(yaml.contains("console: true"), "{yaml}");
    let node = Node::start(dir.path(), &yaml);
    let as_host = |host: &str, path: &str| {
        node.admin_raw(&Req::get(path).header("Host", host).header("X-API-KEY", KEY))
    };
    let port = node.admin.port();
    for path in ["/status", "/metrics", "/console/", "/admin/v1/routes"] {
        for host in [
            format!("rebind.attacker.test:{port}"),
            "attacker.test".to_owned(),
            format!("localhost.attacker.test:{port}"),
            format!("admin.example.internal:{port}"),
        ] {
            let resp = as_host(&host, path);
            assert_eq!(resp.status, 421, "{host} {path}: {}", resp.text());
            let message = resp.message().unwrap_or_default();
            assert!(
                message.contains("admin.allowed_hosts"),
                "{host} {path}: {message}"
            );
        }
        for host in [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            "LOCALHOST".to_owned(),
            format!("console.localhost:{port}"),
        ] {
            let resp = as_host(&host, path);
            assert_eq!(resp.status, 200, "{host} {path}: {}", resp.text());
        }
    }
    // Refused before the key is looked at, and logged like any admin request.
    let refused = node.admin_raw(&Req::get("/admin/v1/routes").header("Host", "attacker.test"));
    assert_eq!(refused.status, 421, "{}", refused.text());
    node.wait_log("status=421", 1);
    // A scraper refused so is said too, once a minute at most, with the
    // name (`/status` and `/metrics` get no access line).
    let said = "admin listener reached by a name it does not answer to";
    node.wait_log(said, 1);
    let logs = node.logs();
    let line = logs.lines().find(|l| l.contains(said)).unwrap();
    assert!(
        line.contains("WARN") && line.contains("host=rebind.attacker.test"),
        "{line}"
    );
    assert_eq!(logs.matches(said).count(), 1, "{logs}");

    // Named in the config: answered, the change applied with the file.
    let listed = yaml.replace(
        "console: true }",
        r#"console: true, allowed_hosts: ["admin.example.internal", ".corp.test"] }"#,
    );
    std::fs::write(&node.config_path, listed).unwrap();
    let answered = || as_host(&format!("admin.example.internal:{port}"), "/status").status == 200;
    assert!(
        eventually(std::time::Duration::from_secs(10), answered),
        "{}",
        node.logs()
    );
    for host in ["ops.corp.test", "corp.test.", "a.b.corp.test"] {
        assert_eq!(as_host(host, "/admin/v1/routes").status, 200, "{host}");
    }
    for host in ["badcorp.test", "attacker.test", "x.admin.example.internal"] {
        assert_eq!(as_host(host, "/admin/v1/routes").status, 421, "{host}");
    }
}

/// The admin listener reads `Host` as the data plane does (an outside
/// audit): none on HTTP/1.1, two, or one that is not `host[:port]` is a
/// `400` (RFC 9112 §3.2; hyper took them, and only the first of two was
/// checked), and an absolute-form target's authority is the name checked.
#[test]
fn the_admin_listener_reads_host_as_the_data_plane_does() {
    use std::io::{Read, Write};
    let (_dir, node) = start();
    let ask = |head: String| -> String {
        let mut s = std::net::TcpStream::connect(node.admin).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let key = format!("X-API-KEY: {KEY}\r\nConnection: close\r\n");
    for (what, head) in [
        ("no Host", format!("GET /admin/v1/routes HTTP/1.1\r\n{key}\r\n")),
        (
            "two, the second foreign",
            format!("GET /admin/v1/routes HTTP/1.1\r\nHost: localhost\r\nHost: attacker.test\r\n{key}\r\n"),
        ),
        (
            "bare IPv6",
            format!("GET /status HTTP/1.1\r\nHost: ::1\r\n{key}\r\n"),
        ),
    ] {
        let answer = ask(head);
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        assert!(answer.contains("invalid Host header"), "{what}: {answer}");
    }
    // The absolute-form target names the host (RFC 9112 §3.2.2).
    let answer = ask(format!(
        "GET http://attacker.test/status HTTP/1.1\r\nHost: localhost\r\n{key}\r\n"
    ));
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    let answer = ask(format!(
        "GET http://localhost/status HTTP/1.1\r\nHost: attacker.test\r\n{key}\r\n"
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // HTTP/1.0 may go without: from no web page.
    let answer = ask("GET /status HTTP/1.0\r\n\r\n".into());
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    let answer = ask(format!("GET /status HTTP/1.1\r\nHost: [::1]\r\n{key}\r\n"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Every `/admin/*` request leaves a line naming its peer (an outside
/// operations audit found a refused key logged at DEBUG only, without the
/// peer, and no line for a change's author), and is counted by status.
#[test]
fn admin_requests_leave_an_audit_trail() {
    let (_dir, node) = start();
    let refused =
        node.admin_raw(&Req::get("/admin/v1/consumers").header("X-API-KEY", "wrong-7Qx9z"));
    assert_eq!(refused.status, 401);
    let put = node.admin(
        "PUT",
        "/admin/v1/consumers/carol",
        Some(json!({"jwt": {"key": "carol-key", "secret": SECRET}})),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    node.wait_log("admin request refused: no valid X-API-KEY", 1);
    node.wait_log(
        "method=PUT path=/admin/v1/consumers/carol status=201 peer=127.0.0.1:",
        1,
    );
    let logs = node.logs();
    let refusal = logs
        .lines()
        .find(|l| l.contains("admin request refused"))
        .unwrap();
    assert!(refusal.contains(" WARN "), "{refusal}");
    assert!(refusal.contains("peer=127.0.0.1:"), "{refusal}");
    node.wait_log(
        "admin request method=GET path=/admin/v1/consumers status=401 peer=127.0.0.1:",
        1,
    );
    // Said once a minute at most (anyone who reaches the port may send
    // these); every one has its access line and is counted.
    for _ in 0..5 {
        node.admin_raw(&Req::get("/admin/v1/consumers").header("X-API-KEY", "wrong-7Qx9z"));
    }
    node.wait_log("status=401 peer=127.0.0.1:", 6);
    let logs = node.logs();
    assert_eq!(logs.matches("admin request refused").count(), 1, "{logs}");
    assert!(
        !logs.contains("wrong-7Qx9z"),
        "the key sent is never logged: {logs}"
    );
    assert!(!logs.contains(KEY), "nor the right one: {logs}");
    // Scrapes and the status endpoint are no audit matter: no line.
    node.metrics();
    node.admin_raw(&Req::get("/status"));
    let m = node.metrics();
    assert!(!node.logs().contains("path=/metrics"), "{}", node.logs());
    assert_eq!(
        m.value("jwtgate_admin_requests_total", &[("code", "401")]),
        6.0,
        "{}",
        m.0
    );
    assert_eq!(
        m.value("jwtgate_admin_requests_total", &[("code", "201")]),
        1.0,
        "{}",
        m.0
    );
}

/// What an operator alerts on is there from the first scrape: the
/// `process_*` families, the version, and counters that may not move for
/// a long while (an outside operations audit).
#[test]
fn metrics_hold_the_process_the_version_and_quiet_counters_from_the_start() {
    let (_dir, node) = start();
    let m = node.metrics();
    for family in [
        "jwtgate_upstream_responses_cut_off_total",
        "jwtgate_log_lines_dropped_total",
        "process_open_fds",
        "process_max_fds",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(m.has_family(family), "{family}:\n{}", m.0);
        assert!(
            m.0.contains(&format!("# TYPE {family} ")),
            "{family} is typed:\n{}",
            m.0
        );
    }
    assert!(m.value("process_open_fds", &[]) >= 3.0, "{}", m.0);
    assert!(
        m.value("process_resident_memory_bytes", &[]) > 1e6,
        "{}",
        m.0
    );
    let started = m.value("process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && started > now - 120.0,
        "{started} vs {now}"
    );
    let version = format!(
        "jwtgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(m.0.contains(&version), "{version}:\n{}", m.0);
}

#[test]
fn routes_crud() {
    let (_dir, node) = start();
    let list = node.admin("GET", "/admin/v1/routes", None).json();
    let names: Vec<_> = list["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("api"), json!("guarded")]);

    let route = json!({"paths": ["/orders/*"], "upstream": {"echo": true}, "jwt": {}});
    let created = node.admin("PUT", "/admin/v1/routes/orders", Some(route));
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["name"], "orders");
    // In effect on the next request.
    assert_eq!(node.get("/orders/1").status, 401);
    let ok = node.send(&Req::get("/orders/1").bearer(&token("alice-key", SECRET)));
    assert_eq!(ok.status, 200);
    assert_eq!(
        node.admin("GET", "/admin/v1/routes/orders", None).json()["paths"],
        json!(["/orders/*"])
    );

    let replaced = node.admin(
        "PUT",
        "/admin/v1/routes/orders",
        Some(json!({"name": "orders", "paths": ["/orders/*"], "upstream": {"echo": true}})),
    );
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(node.get("/orders/1").status, 200, "no policy any more");

    assert_eq!(
        node.admin("DELETE", "/admin/v1/routes/orders", None).status,
        204
    );
    assert_eq!(node.get("/orders/1").status, 404);
    assert_eq!(
        node.admin("GET", "/admin/v1/routes/orders", None).status,
        404
    );
    let again = node.admin("DELETE", "/admin/v1/routes/orders", None);
    assert_eq!(again.status, 404);
    assert_eq!(again.message().unwrap(), "route \"orders\" not found");
}

/// A write that is valid but does nothing, or hides something, is made
/// and says so: one `Warning: 299` header per warning it brings (those of
/// `jwtgate check`), none for warnings already there or for a clean write.
#[test]
fn admin_writes_carry_the_warnings_they_bring() {
    let (_dir, node) = start();
    let logout = node.admin(
        "PATCH",
        "/admin/v1/routes/api/jwt",
        Some(json!({"logout_path": "POST_/api/logout"})),
    );
    assert_eq!(logout.status, 200, "{}", logout.text());
    assert_eq!(
        logout.header_all("warning"),
        [
            "299 jwtgate \"routes/api/jwt.logout_path: does nothing while \
          use_jwt_blacklist_revoking is not true: requests to it are proxied like any \
          other and no token is revoked\""
        ]
    );
    // Already there: not said again on an unrelated write.
    let realm = node.admin(
        "PATCH",
        "/admin/v1/routes/api/jwt",
        Some(json!({"realm": "api"})),
    );
    assert_eq!(realm.status, 200, "{}", realm.text());
    assert_eq!(realm.header_all("warning"), Vec::<&str>::new());

    // A new route that the first one hides.
    let shadowed = json!({"paths": ["/api/*"], "upstream": {"echo": true}});
    let created = node.admin("PUT", "/admin/v1/routes/again", Some(shadowed));
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["name"], "again", "the body is the route");
    let said = created.header_all("warning");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("299 jwtgate \"routes/again: route \\\"again\\\" is never matched"),
        "{said:?}"
    );

    // Fixing the policy brings none; deleting the hidden route neither.
    let fixed = node.admin(
        "PATCH",
        "/admin/v1/routes/api/jwt",
        Some(json!({"use_jwt_blacklist_revoking": true})),
    );
    assert_eq!(fixed.status, 200, "{}", fixed.text());
    assert_eq!(fixed.header_all("warning"), Vec::<&str>::new());
    let deleted = node.admin("DELETE", "/admin/v1/routes/again", None);
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.header_all("warning"), Vec::<&str>::new());
}

/// A consumer without a credential (README: beyond SPEC §2) is created and
/// read back without `jwt`; a PUT that leaves `jwt` out of an existing
/// consumer removes its credential, and says so in a `Warning` header.
#[test]
fn a_put_without_jwt_makes_or_leaves_a_consumer_without_a_credential() {
    let (_dir, node) = start();
    let guest = node.admin(
        "PUT",
        "/admin/v1/consumers/guest",
        Some(json!({"custom_id": "anon"})),
    );
    assert_eq!(guest.status, 201, "{}", guest.text());
    assert_eq!(
        guest.json(),
        json!({"username": "guest", "custom_id": "anon"})
    );
    // Nothing names it: check's warning, not a removal.
    let said = guest.header_all("warning");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("consumers/guest/jwt: is absent, and no route names"),
        "{said:?}"
    );

    // A cut-off on it is kept, and said to refuse nothing (no provider
    // names consumers, and anonymous requests carry no token); one on a
    // consumer with a credential is said nothing of.
    let refuses_nothing = "has no jwt credential and no provider has a consumer_claim";
    let cut = node.admin(
        "POST",
        "/admin/v1/revocations/subjects",
        Some(json!({"consumer": "guest"})),
    );
    assert_eq!(cut.status, 201, "{}", cut.text());
    let said = cut.header_all("warning");
    assert!(
        said.len() == 1 && said[0].contains(refuses_nothing),
        "{said:?}"
    );
    let cut = node.admin(
        "POST",
        "/admin/v1/revocations/subjects",
        Some(json!({"consumer": "alice", "subject": "u-9"})),
    );
    assert_eq!(cut.status, 201, "{}", cut.text());
    assert_eq!(cut.header_all("warning"), Vec::<&str>::new());

    let alice = token("alice-key", SECRET);
    assert_eq!(node.send(&Req::get("/api/x").bearer(&alice)).status, 200);
    let edited = node.admin(
        "PUT",
        "/admin/v1/consumers/alice",
        Some(json!({"custom_id": "crm-2"})),
    );
    assert_eq!(edited.status, 200, "{}", edited.text());
    let said = edited.header_all("warning");
    assert!(
        said.iter().any(|w| w.starts_with(
            "299 jwtgate \"jwt: removed with this write: consumer \\\"alice\\\" has no credential now"
        )),
        "{said:?}"
    );
    let resp = node.send(&Req::get("/api/x").bearer(&alice));
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(
        resp.message().as_deref(),
        Some("Invalid user key in JWT token")
    );
    // Given back its jwt, alice's tokens pass again; no warning.
    let back = node.admin(
        "PUT",
        "/admin/v1/consumers/alice",
        Some(json!({"jwt": {"key": "alice-key", "secret": SECRET}})),
    );
    assert_eq!(back.status, 200, "{}", back.text());
    assert!(
        !back
            .header_all("warning")
            .iter()
            .any(|w| w.contains("removed")),
        "{:?}",
        back.header_all("warning")
    );
    assert_eq!(node.send(&Req::get("/api/x").bearer(&alice)).status, 200);
}

/// A key file named in a body is read only if it is a regular file of at
/// most 1 MiB: `/dev/zero` was read until the kernel killed the gateway.
#[test]
fn regression_a_key_file_that_never_ends_is_refused() {
    let (_dir, node) = start();
    let body = json!({"issuer": "https://i.example", "jwks_file": "/dev/zero"});
    let resp = node.admin("PUT", "/admin/v1/providers/p1", Some(body));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(fields(&resp), ["jwks_file"]);
    assert!(
        resp.text().contains("not a regular file"),
        "{}",
        resp.text()
    );
    assert_eq!(node.get("/api/x").status, 401, "still serving");
}

/// An immutable policy's providers are part of it: a provider edit that
/// dropped its audiences let other apps' tokens through the route with the
/// policy untouched.
#[test]
fn regression_an_immutable_policys_provider_cannot_change_what_it_trusts() {
    let (_dir, node) = start();
    let provider = |audiences: &[&str], refresh: u64| {
        json!({"issuer": "https://idp.example", "jwks_uri": "https://127.0.0.1:9/keys",
               "audiences": audiences, "refresh_seconds": refresh})
    };
    let put = |body| node.admin("PUT", "/admin/v1/providers/corp", Some(body));
    assert_eq!(put(provider(&["orders-api"], 300)).status, 201);
    let route = json!({"paths": ["/orders/*"], "upstream": {"echo": true},
        "jwt": {"providers": ["corp"], "consumers": false,
                "protection": {"immutable": true}}});
    let resp = node.admin("PUT", "/admin/v1/routes/orders", Some(route));
    assert_eq!(resp.status, 201, "{}", resp.text());

    let resp = put(provider(&[], 300));
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert!(
        resp.message().is_some_and(
            |m| m.contains("protection.immutable") && m.contains("the provider \"corp\"")
        ),
        "{}",
        resp.text()
    );
    // Deleting it is refused too (the route still names it).
    let resp = node.admin("DELETE", "/admin/v1/providers/corp", None);
    assert!(matches!(resp.status, 400 | 409), "{}", resp.text());
    assert_eq!(
        node.admin("GET", "/admin/v1/providers/corp", None).status,
        200
    );
    // How often it fetches may change.
    let resp = put(provider(&["orders-api"], 60));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        node.admin("GET", "/admin/v1/providers/corp", None).json()["audiences"],
        json!(["orders-api"])
    );
}

/// The explain endpoint reads `request` as a request line: a pasted one
/// with its HTTP version is fine, a target with a space in it (which the
/// data plane answers 400) is a usage error, not a verdict.
#[test]
fn regression_explain_reads_the_request_as_a_request_line() {
    let (_dir, node) = start();
    let token = token("alice-key", SECRET);
    let ask = |request: &str| {
        node.admin(
            "POST",
            "/admin/v1/explain",
            Some(json!({"token": token, "request": request})),
        )
    };
    for line in ["GET /api/x", "GET /api/x HTTP/1.1", "  GET   /api/x  "] {
        let resp = ask(line);
        assert_eq!(resp.status, 200, "{line:?}: {}", resp.text());
        assert_eq!(
            resp.json()["verdict"],
            "accepted",
            "{line:?}: {}",
            resp.text()
        );
    }
    for line in ["GET /api/x HTTP/1.1 extra", "GET /api/x y", "GET"] {
        let resp = ask(line);
        assert_eq!(resp.status, 400, "{line:?}: {}", resp.text());
        assert_eq!(fields(&resp), ["request"]);
        assert!(resp.text().contains("must look like"), "{}", resp.text());
    }
    // Each problem of the body at once (an outside conformance audit: the
    // route was named only once the request line was mended).
    let resp = node.admin(
        "POST",
        "/admin/v1/explain",
        Some(json!({"token": "x.y.z", "request": "BAD", "route": "nope"})),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(fields(&resp), ["request", "route"], "{}", resp.text());
    assert!(resp.text().contains("no route named"), "{}", resp.text());
}

/// A body that names a key twice is refused, as the YAML reader refuses it
/// (it was read last-wins); one over the limit gets a JSON answer too.
#[test]
fn regression_bodies_with_a_key_twice_or_too_large_get_json_refusals() {
    let (_dir, node) = start();
    let resp = node.admin_raw(
        &Req::new("PUT", "/admin/v1/routes/dup")
            .header("X-API-KEY", KEY)
            .header("Content-Type", "application/json")
            .body(
                br#"{"paths": ["/y/*"], "paths": ["/z/*"], "upstream": {"echo": true}}"#.to_vec(),
            ),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("is given twice"), "{}", resp.text());
    assert_eq!(node.admin("GET", "/admin/v1/routes/dup", None).status, 404);
    let big = format!(
        r#"{{"paths": ["/b/*"], "upstream": {{"echo": true}}, "x": "{}"}}"#,
        "a".repeat(3 << 20)
    );
    let resp = node.admin_raw(
        &Req::new("PUT", "/admin/v1/routes/big")
            .header("X-API-KEY", KEY)
            .header("Content-Type", "application/json")
            .body(big.into_bytes()),
    );
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(resp.message().is_some(), "JSON: {}", resp.text());

    // Announced over the limit: answered before the body it announces
    // (an outside audit: the node waited 30 s for it, then said 408), and
    // the connection closed.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(node.admin).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(
        format!(
            "PUT /admin/v1/consumers/big HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 3000000\r\n\r\n{{}}"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    let read = s.read_to_string(&mut answer);
    assert!(read.is_ok(), "{read:?}, so far: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("is over 2097152 bytes"), "{answer}");
}

#[test]
fn jwt_policy_crud() {
    let (_dir, node) = start();
    assert_eq!(
        node.admin("GET", "/admin/v1/routes/api/jwt", None).json(),
        json!({})
    );
    let put = node.admin(
        "PUT",
        "/admin/v1/routes/api/jwt",
        Some(json!({"not_required_paths": ["GET_/api/public*"], "realm": "api"})),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(node.get("/api/public/a").status, 200);
    let refused = node.get("/api/private");
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );

    assert_eq!(
        node.admin("DELETE", "/admin/v1/routes/api/jwt", None)
            .status,
        204
    );
    assert_eq!(node.get("/api/private").status, 200, "no policy: open");
    let missing = node.admin("GET", "/admin/v1/routes/api/jwt", None);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.message().unwrap(),
        "route \"api\" has no jwt policy"
    );
    let again = node.admin("PUT", "/admin/v1/routes/api/jwt", Some(json!({})));
    assert_eq!(again.status, 201);
    assert_eq!(node.get("/api/private").status, 401);
    assert_eq!(
        node.admin("PUT", "/admin/v1/routes/nope/jwt", Some(json!({})))
            .status,
        404
    );
}

#[test]
fn consumers_crud_with_secrets_masked() {
    let (_dir, node) = start();
    let list = node.admin("GET", "/admin/v1/consumers", None).json();
    assert_eq!(list["consumers"][0]["username"], "alice");
    assert_eq!(list["consumers"][0]["jwt"]["secret"], "***");
    assert!(!list.to_string().contains(SECRET));

    let bob_secret = "bob-secret-0123456789abcdefghijklmn";
    let created = node.admin(
        "PUT",
        "/admin/v1/consumers/bob",
        Some(json!({"jwt": {"key": "bob-key", "secret": bob_secret}})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["jwt"]["secret"], "***");
    let bob = Req::get("/api/x").bearer(&token("bob-key", bob_secret));
    assert_eq!(node.send(&bob).status, 200);

    // GET, edit, PUT back with the mask: the stored secret is kept.
    let mut fetched = node.admin("GET", "/admin/v1/consumers/bob", None).json();
    assert_eq!(fetched["jwt"]["secret"], "***");
    fetched["custom_id"] = json!("crm-2");
    let replaced = node.admin("PUT", "/admin/v1/consumers/bob", Some(fetched));
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    let echoed = node.send(&bob).json();
    assert_eq!(
        echoed["headers"]["x-consumer-custom-id"], "crm-2",
        "{echoed}"
    );
    let file = read(&node.config_path);
    assert!(file.contains(bob_secret) && !file.contains("***"), "{file}");

    let masked_new = node.admin(
        "PUT",
        "/admin/v1/consumers/carol",
        Some(json!({"jwt": {"key": "carol-key", "secret": "***"}})),
    );
    assert_eq!(masked_new.status, 400);
    assert_eq!(fields(&masked_new), ["jwt.secret"]);

    assert_eq!(
        node.admin("DELETE", "/admin/v1/consumers/bob", None).status,
        204
    );
    let gone = node.send(&bob);
    assert_refused(&gone, "Invalid user key in JWT token", "jwtgate", true);
    assert_eq!(
        node.admin("GET", "/admin/v1/consumers/bob", None).status,
        404
    );
}

/// A write refused for what it does to another route names that route,
/// not its place in the file, which an API client never sees.
#[test]
fn a_problem_in_another_route_is_located_by_its_name() {
    let (_dir, node) = start();
    let forwards = node.admin(
        "PATCH",
        "/admin/v1/routes/api/jwt",
        Some(json!({"forward_claims": {"sub": "X-Sub"}})),
    );
    assert_eq!(forwards.status, 200, "{}", forwards.text());
    let resp = node.admin(
        "PUT",
        "/admin/v1/routes/reads-x-sub",
        Some(json!({"paths": ["/r/*"], "upstream": {"echo": true}, "jwt": {"header": "x-sub"}})),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        fields(&resp),
        ["routes/api/jwt.forward_claims"],
        "{}",
        resp.text()
    );
    assert!(
        resp.text()
            .contains("route \\\"reads-x-sub\\\"'s token header"),
        "{}",
        resp.text()
    );
    assert_eq!(
        node.admin("GET", "/admin/v1/routes/reads-x-sub", None)
            .status,
        404
    );
}

#[test]
fn invalid_bodies_name_every_field() {
    let (_dir, node) = start();
    let before = node.admin("GET", "/admin/v1/routes", None).json();

    // Shape errors (unknown keys, wrong types) and meaning errors together.
    let resp = node.admin(
        "PUT",
        "/admin/v1/routes/bad",
        Some(json!({
            "paths": [],
            "upstream": {"nodes": ["no-port"]},
            "methods": "get",
            "jwt": {"required_paths": ["FETCH_/x"], "leeway_seconds": -1, "bogus": 1},
            "extra": true
        })),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    let mut got = fields(&resp);
    got.sort();
    assert_eq!(
        got,
        [
            "extra",
            "jwt.bogus",
            "jwt.leeway_seconds",
            "jwt.required_paths[0]",
            "methods[0]",
            "paths",
            "upstream.nodes[0]"
        ],
        "{}",
        resp.text()
    );
    assert_eq!(resp.json()["message"], "invalid route \"bad\"");

    // Both path modes at once, on a new policy: a located conflict.
    let both = node.admin(
        "PUT",
        "/admin/v1/routes/api/jwt",
        Some(json!({"required_paths": ["GET_/a"], "not_required_paths": ["GET_/b"]})),
    );
    assert_eq!(both.status, 400, "{}", both.text());

    // An unknown algorithm, and alice's key: both located in the body (the
    // clash was hidden behind the other problem).
    let dup = node.admin(
        "PUT",
        "/admin/v1/consumers/mallory",
        Some(json!({"jwt": {"key": "alice-key", "secret": "x", "algorithm": "HS257"}})),
    );
    assert_eq!(dup.status, 400);
    assert_eq!(fields(&dup), ["jwt.key", "jwt.algorithm"], "{}", dup.text());

    for (body, what) in [("{", "malformed"), ("", "empty"), ("[1]", "not an object")] {
        let req = Req::new("PUT", "/admin/v1/routes/x")
            .header("X-API-KEY", KEY)
            .body(body);
        let resp = node.admin_raw(&req);
        assert_eq!(resp.status, 400, "{what}: {}", resp.text());
        assert!(resp.json()["errors"].is_array(), "{what}: {}", resp.text());
    }
    let renamed = node.admin(
        "PUT",
        "/admin/v1/routes/api",
        Some(json!({"name": "other", "paths": ["/api/*"], "upstream": {"echo": true}})),
    );
    assert_eq!(renamed.status, 400);
    assert_eq!(fields(&renamed), ["name"]);
    // A name unlike the path's hides none of the body's other problems
    // (an outside conformance audit: only `username` was named).
    let misnamed = node.admin(
        "PUT",
        "/admin/v1/consumers/zz",
        Some(json!({"username": "other", "jwt": {"key": "", "secret": "short"}, "colour": 1})),
    );
    assert_eq!(misnamed.status, 400, "{}", misnamed.text());
    let mut got = fields(&misnamed);
    got.sort();
    assert_eq!(
        got,
        ["colour", "jwt.key", "jwt.secret", "username"],
        "{}",
        misnamed.text()
    );
    let misnamed = node.admin(
        "PUT",
        "/admin/v1/routes/zz",
        Some(json!({"name": "other", "paths": ["nope"], "upstream": {}})),
    );
    let got = fields(&misnamed);
    assert!(
        got.contains(&"name".to_owned()) && got.len() >= 3,
        "{}",
        misnamed.text()
    );
    let env_ref = node.admin(
        "PUT",
        "/admin/v1/consumers/eve",
        Some(json!({"jwt": {"key": "${HOME}", "secret": "eve-secret-0123456789abcdefghijk"}})),
    );
    assert_eq!(env_ref.status, 400);
    assert_eq!(fields(&env_ref), ["jwt.key"]);

    let dup_key = node.admin(
        "PUT",
        "/admin/v1/consumers/mallory",
        Some(json!({"jwt": {"key": "alice-key", "secret": "mallory-secret-0123456789abcdefgh"}})),
    );
    assert_eq!(dup_key.status, 400);
    assert_eq!(fields(&dup_key), ["jwt.key"], "{}", dup_key.text());
    assert_eq!(
        node.admin("GET", "/admin/v1/routes", None).json(),
        before,
        "nothing applied"
    );
    assert!(!node.logs().contains("panicked"));
}

#[test]
fn protected_policy_refusals_and_a_deliberate_lift() {
    let (_dir, node) = start();
    let undeletable = [
        node.admin("DELETE", "/admin/v1/routes/guarded", None),
        node.admin("DELETE", "/admin/v1/routes/guarded/jwt", None),
    ];
    for resp in &undeletable {
        assert_eq!(resp.status, 409, "{}", resp.text());
        assert!(
            resp.message().unwrap().contains("protection.undeletable"),
            "{}",
            resp.text()
        );
    }
    let policy = node
        .admin("GET", "/admin/v1/routes/guarded/jwt", None)
        .json();
    let mut changed = policy.clone();
    changed["realm"] = json!("changed");
    let immutable = [
        node.admin("PUT", "/admin/v1/routes/guarded/jwt", Some(changed.clone())),
        node.admin(
            "PATCH",
            "/admin/v1/routes/guarded/jwt",
            Some(json!({"realm": "changed"})),
        ),
        node.admin(
            "PUT",
            "/admin/v1/routes/guarded",
            Some(json!({"paths": ["/guarded/*"], "upstream": {"echo": true}, "jwt": changed})),
        ),
    ];
    for resp in &immutable {
        assert_eq!(resp.status, 409, "{}", resp.text());
        assert!(
            resp.message().unwrap().contains("protection.immutable"),
            "{}",
            resp.text()
        );
    }
    let refused = node.get("/guarded/x");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"guarded\"")
    );

    // The route's own values are not the policy's: it may take more
    // requests, but not fewer (moved away, it would guard nothing).
    let wider = node.admin(
        "PUT",
        "/admin/v1/routes/guarded",
        Some(json!({"paths": ["/guarded/*", "/g/*"], "upstream": {"echo": true}, "jwt": policy})),
    );
    assert_eq!(wider.status, 200, "{}", wider.text());
    let moved = node.admin(
        "PUT",
        "/admin/v1/routes/guarded",
        Some(json!({"paths": ["/nowhere-ever"], "upstream": {"echo": true}, "jwt": policy})),
    );
    assert_eq!(moved.status, 409, "{}", moved.text());
    assert!(
        moved.message().unwrap().contains("cannot narrow"),
        "{}",
        moved.text()
    );
    assert_eq!(node.get("/guarded/x").status, 401, "still guarded");
    // Nor may another route take some of them: an open route on a more
    // specific path would undo the policy there without touching it.
    let open = json!({"paths": ["/guarded/x"], "upstream": {"echo": true}});
    let taken = node.admin("PUT", "/admin/v1/routes/open", Some(open.clone()));
    assert_eq!(taken.status, 409, "{}", taken.text());
    assert!(
        taken
            .message()
            .unwrap()
            .contains("route \"open\" would take requests it applies to (e.g. GET /guarded/x)"),
        "{}",
        taken.text()
    );
    assert_eq!(node.get("/guarded/x").status, 401, "still guarded");
    let beside = json!({"paths": ["/g2/*"], "upstream": {"echo": true}});
    let elsewhere = node.admin("PUT", "/admin/v1/routes/open", Some(beside));
    assert_eq!(elsewhere.status, 201, "{}", elsewhere.text());

    // Lifting the protection is a change of its own; then the rest is allowed.
    let lift = json!({"protection": {"undeletable": false, "immutable": false}});
    let lifted = node.admin("PATCH", "/admin/v1/routes/guarded/jwt", Some(lift));
    assert_eq!(lifted.status, 200, "{}", lifted.text());
    let edited = node.admin(
        "PATCH",
        "/admin/v1/routes/guarded/jwt",
        Some(json!({"realm": "changed"})),
    );
    assert_eq!(edited.status, 200, "{}", edited.text());
    assert_eq!(
        node.admin("DELETE", "/admin/v1/routes/guarded", None)
            .status,
        204
    );
    assert_eq!(node.get("/guarded/x").status, 404);
}

#[test]
fn setting_one_path_mode_resets_the_other() {
    let (_dir, node) = start();
    let put = node.admin(
        "PUT",
        "/admin/v1/routes/api/jwt",
        Some(json!({"not_required_paths": ["GET_/api/public*"]})),
    );
    assert_eq!(put.status, 200);
    assert_eq!(node.get("/api/public/a").status, 200);
    assert_eq!(node.get("/api/other").status, 401);

    // PATCH required_paths: RequiredPath mode, not_required_paths reset.
    let patched = node.admin(
        "PATCH",
        "/admin/v1/routes/api/jwt",
        Some(json!({"required_paths": ["GET_/api/private*"]})),
    );
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(
        patched.json(),
        json!({"required_paths": ["GET_/api/private*"]})
    );
    assert_eq!(node.get("/api/other").status, 200);
    assert_eq!(node.get("/api/public/a").status, 200);
    assert_eq!(node.get("/api/private/a").status, 401);

    // GET, add not_required_paths, PUT back (both lists in the body): the
    // list that changed wins and the other is reset.
    let mut policy = node.admin("GET", "/admin/v1/routes/api/jwt", None).json();
    policy["not_required_paths"] = json!(["GET_/api/open*"]);
    let put = node.admin("PUT", "/admin/v1/routes/api/jwt", Some(policy));
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        put.json(),
        json!({"not_required_paths": ["GET_/api/open*"]})
    );
    assert_eq!(node.get("/api/open/x").status, 200);
    assert_eq!(node.get("/api/private/a").status, 401);
    assert_eq!(node.get("/api/other").status, 401);
}

#[test]
fn an_api_change_applies_at_once_and_survives_a_restart_without_leaking_env_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = base().replace(SECRET, "${ADMIN_TEST_SECRET}");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let env = [("ADMIN_TEST_SECRET", SECRET)];
    let mut node = Node::start_on(&path, &env);
    let route =
        json!({"paths": ["/orders/*"], "upstream": {"echo": true}, "jwt": {"realm": "orders"}});
    assert_eq!(
        node.admin("PUT", "/admin/v1/routes/orders", Some(route))
            .status,
        201
    );
    let alice = Req::get("/orders/7").bearer(&token("alice-key", SECRET));
    assert_eq!(node.send(&alice).status, 200, "the very next request");

    let file = read(&path);
    assert!(file.contains("orders"), "{file}");
    assert!(
        file.contains("${ADMIN_TEST_SECRET}"),
        "reference kept: {file}"
    );
    assert!(!file.contains(SECRET), "expanded secret written: {file}");
    assert!(node.stop().success());

    let node = Node::start_on(&path, &env);
    assert_eq!(
        node.send(&alice).status,
        200,
        "after restart:\n{}",
        node.logs()
    );
    assert_eq!(
        node.get("/orders/7").header("www-authenticate"),
        Some("Bearer realm=\"orders\"")
    );
    assert_eq!(
        node.admin("GET", "/admin/v1/routes/orders", None).status,
        200
    );
}

#[test]
fn concurrent_admin_writes_are_all_kept() {
    let (_dir, node) = start();
    let node = std::sync::Arc::new(node);
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let node = std::sync::Arc::clone(&node);
            std::thread::spawn(move || {
                let body = json!({"jwt": {"key": format!("key-{i}"), "secret": format!("secret-{i}-0123456789abcdefghijklmnop")}});
                node.admin("PUT", &format!("/admin/v1/consumers/user-{i}"), Some(body)).status
            })
        })
        .collect();
    for w in writers {
        assert_eq!(w.join().unwrap(), 201);
    }
    let list = node.admin("GET", "/admin/v1/consumers", None).json();
    assert_eq!(list["consumers"].as_array().unwrap().len(), 9, "{list}");
    let file = read(&node.config_path);
    for i in 0..8 {
        assert!(
            file.contains(&format!("user-{i}")),
            "user-{i} lost from the file:\n{file}"
        );
        let t = token(
            &format!("key-{i}"),
            &format!("secret-{i}-0123456789abcdefghijklmnop"),
        );
        assert_eq!(node.send(&Req::get("/api/x").bearer(&t)).status, 200);
    }
}

#[test]
fn openapi_document_matches_the_endpoints() {
    let (_dir, node) = start();
    let doc = node.admin("GET", "/admin/v1/openapi.json", None);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.push(format!("{} {path}", method.to_uppercase()));
            assert!(op["responses"].is_object(), "{method} {path}");
            // Every documented operation is served: with a body the handler
            // refuses (400), or a name that does not exist (404 from the
            // handler, not the router's "no such endpoint").
            let target = path
                .replace("{name}", "no-such")
                .replace("{username}", "no-such");
            let mut req = Req::new(&method.to_uppercase(), &target).header("X-API-KEY", KEY);
            if matches!(method.as_str(), "put" | "patch" | "post") {
                req = req.body("{");
            }
            let resp = node.admin_raw(&req);
            assert!(
                ![405, 401].contains(&resp.status)
                    && resp.message().as_deref()
                        != Some("no such endpoint (see GET /admin/v1/openapi.json)"),
                "{method} {path} is documented but not served: {} {}",
                resp.status,
                resp.text()
            );
        }
    }
    documented.sort();
    // SPEC §4's table (with its further endpoints), plus PATCH of a policy
    // and this document.
    let mut expected = vec![
        "GET /admin/v1/routes",
        "GET /admin/v1/routes/{name}",
        "PUT /admin/v1/routes/{name}",
        "DELETE /admin/v1/routes/{name}",
        "GET /admin/v1/routes/{name}/jwt",
        "PUT /admin/v1/routes/{name}/jwt",
        "PATCH /admin/v1/routes/{name}/jwt",
        "DELETE /admin/v1/routes/{name}/jwt",
        "GET /admin/v1/consumers",
        "GET /admin/v1/consumers/{username}",
        "PUT /admin/v1/consumers/{username}",
        "DELETE /admin/v1/consumers/{username}",
        "GET /admin/v1/providers",
        "GET /admin/v1/providers/{name}",
        "PUT /admin/v1/providers/{name}",
        "DELETE /admin/v1/providers/{name}",
        "POST /admin/v1/revocations",
        "POST /admin/v1/revocations/subjects",
        "GET /admin/v1/revocations/subjects",
        "DELETE /admin/v1/revocations/subjects",
        "POST /admin/v1/explain",
        "GET /admin/v1/openapi.json",
        "GET /status",
        "GET /metrics",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    // And nothing undocumented is served.
    for (method, path) in [
        ("POST", "/admin/v1/routes"),
        ("GET", "/admin/v1/revocations"),
        ("GET", "/admin/v2/routes"),
    ] {
        let resp = node.admin_raw(&Req::new(method, path).header("X-API-KEY", KEY));
        assert!(
            [404, 405].contains(&resp.status),
            "{method} {path}: {}",
            resp.status
        );
    }
}

/// A leeway raised after a logout does not bring the logged-out token back
/// in the seconds it adds past the token's exp: the revocation outlives
/// exp by a grace of 300 s whatever the leeway was. It used to end at exp
/// plus the leeway of the moment, and the raised leeway let the token in.
#[test]
fn a_leeway_raised_after_a_revocation_does_not_revive_the_token() {
    let (_dir, node) = start();
    let mut claims = claims_for("alice-key");
    claims["exp"] = json!(now() + 2);
    let t = sign_hs("HS256", SECRET, claims);
    let resp = node.admin("POST", "/admin/v1/revocations", Some(json!({"token": t})));
    assert_eq!(resp.status, 201, "{}", resp.text());
    let raised = node.admin(
        "PATCH",
        "/admin/v1/routes/api/jwt",
        Some(json!({"leeway_seconds": 60})),
    );
    assert_eq!(raised.status, 200, "{}", raised.text());
    // Past its exp, within the new leeway: still revoked, not accepted.
    std::thread::sleep(std::time::Duration::from_millis(3_500));
    let refused = node.send(&Req::get("/api/x").bearer(&t));
    assert_refused(&refused, "JWT token has been revoked", "jwtgate", true);
    // A token that was never revoked, as old, is let in by the leeway.
    let mut claims = claims_for("alice-key");
    claims["exp"] = json!(now() - 2);
    let other = sign_hs("HS256", SECRET, claims);
    assert_eq!(node.send(&Req::get("/api/x").bearer(&other)).status, 200);
}

#[test]
fn revocation_through_the_api() {
    let (_dir, node) = start();
    let t = token("alice-key", SECRET);
    assert_eq!(node.send(&Req::get("/api/x").bearer(&t)).status, 200);
    let resp = node.admin("POST", "/admin/v1/revocations", Some(json!({"token": t})));
    assert_eq!(resp.status, 201, "{}", resp.text());
    // Its exp, plus the grace a revocation gets beyond the largest leeway
    // of any route (none here).
    let exp = payload_of(&t)["exp"].as_i64().unwrap();
    assert_eq!(resp.json()["expires_at"], exp + 300);
    let refused = node.send(&Req::get("/api/x").bearer(&t));
    assert_refused(&refused, "JWT token has been revoked", "jwtgate", true);
    assert_eq!(node.metrics().value("jwtgate_revocations_total", &[]), 1.0);
    // explain says until when, as the CLI's does.
    let report = node
        .admin("POST", "/admin/v1/explain", Some(json!({"token": t})))
        .json();
    assert_eq!(report["message"], "JWT token has been revoked", "{report}");
    let until = format!("until {}", exp + 300);
    assert!(report.to_string().contains(&until), "{until} in {report}");
    // A token expired past the grace needs no entry: said, nothing stored
    // (an outside audit: `201 token revoked` for an entry already expired).
    for exp in [json!(now() - 700), json!(i64::MIN)] {
        let mut claims = claims_for("alice-key");
        claims["exp"] = exp.clone();
        let old = sign_hs("HS256", SECRET, claims);
        let resp = node.admin("POST", "/admin/v1/revocations", Some(json!({"token": old})));
        assert_eq!(resp.status, 200, "{exp}: {}", resp.text());
        assert_eq!(
            resp.json()["message"],
            "token expired: every route refuses it, nothing stored"
        );
    }
    // Within a grace of its entry's end, it is stored all the same: a
    // node whose clock is behind would still take the token.
    let mut claims = claims_for("alice-key");
    claims["exp"] = json!(now() - 400);
    let recent = sign_hs("HS256", SECRET, claims);
    let resp = node.admin(
        "POST",
        "/admin/v1/revocations",
        Some(json!({"token": recent})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(node.metrics().value("jwtgate_revocations_total", &[]), 2.0);

    for body in [
        json!({"token": "not-a-jwt"}),
        json!({"token": 5}),
        json!({}),
        json!({"token": t, "x": 1}),
    ] {
        let resp = node.admin("POST", "/admin/v1/revocations", Some(body.clone()));
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
    }
    // Every problem is named at once, an unknown key beside a member of
    // the wrong type (an outside audit found only the unknown key named).
    let fields = |path: &str, body: Value| -> Vec<String> {
        let resp = node.admin("POST", path, Some(body));
        assert_eq!(resp.status, 400, "{}", resp.text());
        let mut f: Vec<String> = resp.json()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["field"].as_str().unwrap(),
                    e["message"].as_str().unwrap()
                )
            })
            .collect();
        f.sort();
        f
    };
    assert_eq!(
        fields("/admin/v1/revocations", json!({"token": 5, "x": 1})),
        ["token: expected a string", "x: unknown key"]
    );
    assert_eq!(
        fields("/admin/v1/revocations", json!({"y": 1})),
        ["token: is required", "y: unknown key"]
    );
    assert_eq!(
        fields(
            "/admin/v1/explain",
            json!({"token": " ", "route": 7, "z": null})
        ),
        [
            "route: expected a string",
            "token: must not be empty",
            "z: unknown key"
        ]
    );
    assert_eq!(
        fields(
            "/admin/v1/revocations/subjects",
            json!({"consumer": "", "subject": [], "who": "s"})
        ),
        [
            "consumer: must not be empty",
            "subject: expected a string",
            "who: unknown key"
        ]
    );
    assert!(!node.logs().contains(&t), "the token was logged");
}

#[test]
fn metrics_move_as_requests_are_made() {
    let (_dir, node) = start();
    let before = node.metrics();
    let t = token("alice-key", SECRET);
    for _ in 0..3 {
        assert_eq!(node.get("/api/x").status, 401);
    }
    for _ in 0..2 {
        assert_eq!(node.send(&Req::get("/api/x").bearer(&t)).status, 200);
    }
    node.get("/nowhere");
    let after = node.metrics();
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        delta(
            "jwtgate_http_requests_total",
            &[("route", "api"), ("code", "401")]
        ),
        3.0,
        "{}",
        after.0
    );
    assert_eq!(
        delta(
            "jwtgate_http_requests_total",
            &[("route", "api"), ("code", "200")]
        ),
        2.0
    );
    assert_eq!(
        delta("jwtgate_http_requests_total", &[("code", "404")]),
        1.0
    );
    assert_eq!(
        delta(
            "jwtgate_jwt_auth_total",
            &[("route", "api"), ("outcome", "missing")]
        ),
        3.0
    );
    assert_eq!(
        delta(
            "jwtgate_jwt_auth_total",
            &[("route", "api"), ("outcome", "ok")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "jwtgate_http_request_duration_seconds_count",
            &[("route", "api")]
        ),
        5.0
    );
    assert!(
        after
            .0
            .contains("jwtgate_http_request_duration_seconds_bucket{route=\"api\",le=\"0.0005\"}"),
        "{}",
        after.0
    );
    assert!(after
        .0
        .contains("# TYPE jwtgate_http_request_duration_seconds histogram"));
    for family in [
        "jwtgate_revocations_total",
        "jwtgate_revocation_store_errors_total",
        "jwtgate_config_reloads_total",
    ] {
        assert!(after.has_family(family), "{family} missing:\n{}", after.0);
    }
}

/// The admin listener had no bound at all: connections that sent nothing,
/// half a head, or half a body stayed open as long as their client liked,
/// and twenty thousand of them took every file descriptor the process had,
/// so the data plane could not accept either. It now has the data plane's
/// bounds: a head within 30 s (an idle kept-alive connection included), a
/// body that does not stall 30 s (408), and at most 256 connections at once
/// (a new one has a connection of the peer holding the most closed for it,
/// an idle one first; see `slots`). This test waits out the real 30 s.
#[test]
fn regression_admin_connections_are_bounded_in_time_and_number() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    const EARLIEST: Duration = Duration::from_secs(29);
    const LATEST: Duration = Duration::from_secs(45);
    let (_dir, node) = start();
    let admin = node.admin;
    let open = || {
        let s = TcpStream::connect(admin).unwrap();
        s.set_read_timeout(Some(LATEST)).unwrap();
        s
    };
    /// Reads until the node closes the connection: what came, and when.
    fn until_closed(mut s: TcpStream, from: Instant) -> (String, Duration) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("still open after {:?}: {e}", from.elapsed()),
            }
        }
        (String::from_utf8_lossy(&got).into_owned(), from.elapsed())
    }

    // At most 256 at once. When all are taken, a new client takes the
    // slot of the oldest connection with no request in progress, which is
    // closed: 256 sockets that sent nothing kept /status from everyone (an
    // outside audit). One whose request is being served stays.
    let mut busy = open();
    busy.write_all(
        format!(
            "PUT /admin/v1/consumers/busy HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    // `100 Continue`: its handler runs, reading the body.
    let mut continued = [0u8; 25];
    busy.read_exact(&mut continued).unwrap();
    assert!(
        continued.starts_with(b"HTTP/1.1 100 Continue"),
        "{continued:?}"
    );
    // Half of them have sent part of a request head (slowloris): no request
    // is in progress on them either, and one was closed only when its head
    // timed out, 30 s later (an outside audit).
    let mut held: Vec<TcpStream> = (0..255)
        .map(|i| {
            let mut s = open();
            if i % 2 == 0 {
                s.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    .unwrap();
            }
            s
        })
        .collect();
    let mut newcomer = open();
    newcomer
        .write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, after) = until_closed(newcomer, Instant::now());
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
    assert!(after < Duration::from_secs(10), "{after:?}");
    let (_, closed_after) = until_closed(held.remove(0), Instant::now());
    assert!(closed_after < Duration::from_secs(10), "{closed_after:?}");
    node.wait_log(
        "admin listener full: a connection of the peer holding the most was asked to close",
        1,
    );
    busy.write_all(b"{}").unwrap();
    let (answer, _) = until_closed(busy, Instant::now());
    assert!(
        answer.contains("HTTP/1.1 201"),
        "the busy one was served: {answer}"
    );
    held.clear();

    // A path anyone may ask (no key) takes no body: one is left unread,
    // the request answered and the connection closed at once, where a
    // trickled body held it.
    let mut open_path = open();
    open_path
        .write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\nx")
        .unwrap();
    let (answer, after) = until_closed(open_path, Instant::now());
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(after < Duration::from_secs(10), "{after:?}");

    // A body trickled a byte at a time, never stalling 30 s, still ends
    // within a minute.
    let mut trickled = open();
    trickled
        .write_all(
            format!(
                "PUT /admin/v1/consumers/trickle HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {KEY}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    trickled
        .set_read_timeout(Some(Duration::from_secs(80)))
        .unwrap();
    let trickle_started = Instant::now();
    let trickler = {
        let mut writer = trickled.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..20 {
                std::thread::sleep(Duration::from_secs(5));
                if writer.write_all(b" ").is_err() {
                    break;
                }
            }
        })
    };
    let trickle_wait = std::thread::spawn(move || until_closed(trickled, trickle_started));

    // In time: silent, half a head, an idle kept-alive connection, and a
    // body that stalls.
    let started = Instant::now();
    let silent = open();
    let mut half_head = open();
    half_head.write_all(b"GET /status HTTP/1.1\r\nHo").unwrap();
    let mut kept = open();
    kept.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut half_body = open();
    half_body
        .write_all(
            format!(
                "PUT /admin/v1/consumers/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {KEY}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"jw"
            )
            .as_bytes(),
        )
        .unwrap();
    let waits: Vec<_> = [silent, half_head, kept, half_body]
        .into_iter()
        .map(|s| std::thread::spawn(move || until_closed(s, started)))
        .collect();
    let results: Vec<(String, Duration)> = waits.into_iter().map(|w| w.join().unwrap()).collect();
    for (name, (got, after)) in ["silent", "half a head", "kept alive", "half a body"]
        .iter()
        .zip(&results)
    {
        assert!(
            (EARLIEST..=LATEST).contains(after),
            "{name}: closed after {after:?}, expected about 30 s; got {got:?}"
        );
    }
    assert!(
        results[2].0.starts_with("HTTP/1.1 "),
        "kept alive: answered first"
    );
    let stalled = &results[3].0;
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    assert!(stalled.contains("the request body stalled"), "{stalled}");
    // Nothing of the stalled write was applied.
    assert_eq!(
        node.admin("GET", "/admin/v1/consumers/slow", None).status,
        404
    );
    let (answer, after) = trickle_wait.join().unwrap();
    trickler.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("took over 60s"), "{answer}");
    assert!(
        (Duration::from_secs(59)..=Duration::from_secs(75)).contains(&after),
        "trickled: closed after {after:?}"
    );
}

/// Names the admin API would create that etcd, an admin URL or a log line
/// cannot carry as written are refused (a NUL had reached the console's
/// chart, `..` made a route no browser could open, `/` a route that could
/// never move to etcd). A file may still hold them (`check` warns), and an
/// object that exists under such a name can still be edited.
#[test]
fn regression_new_names_are_plain() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = base()
        + "  - name: \"odd\\tname\"\n    paths: [\"/odd/*\"]\n    upstream: { echo: true }\n";
    let node = Node::start(dir.path(), &yaml);
    let route = json!({"paths": ["/n/*"], "upstream": {"echo": true}});
    for (path, why) in [
        ("/admin/v1/routes/tab%09x", "control character"),
        ("/admin/v1/routes/nul%00x", "control character"),
        ("/admin/v1/routes/%2E%2E", "dot segment"),
        ("/admin/v1/routes/a%2Fb", "cannot move to etcd"),
        ("/admin/v1/routes/%20pad", "whitespace"),
        ("/admin/v1/routes/orders%E2%80%8B", "invisible"),
        ("/admin/v1/routes/%E2%80%AEsredro", "invisible"),
    ] {
        let resp = node.admin("PUT", path, Some(route.clone()));
        assert_eq!(resp.status, 400, "{path}: {}", resp.text());
        let error = &resp.json()["errors"][0];
        assert_eq!(error["field"], "name", "{path}: {}", resp.text());
        assert!(
            error["message"].as_str().unwrap_or_default().contains(why),
            "{path}: {}",
            resp.text()
        );
    }
    // A `%` that starts no escape was taken as written: `/routes/a%2`
    // created a route named `a%2`.
    for path in [
        "/admin/v1/routes/a%2",
        "/admin/v1/routes/%",
        "/admin/v1/routes/x%zz",
    ] {
        let resp = node.admin("PUT", path, Some(route.clone()));
        assert_eq!(resp.status, 400, "{path}: {}", resp.text());
        assert!(
            resp.text().contains("starts no escape"),
            "{path}: {}",
            resp.text()
        );
        assert_eq!(resp.json()["message"], "invalid name in the path", "{path}");
    }
    assert_eq!(
        node.admin("PUT", "/admin/v1/routes/a%25b", Some(route.clone()))
            .status,
        201,
        "a % written as %25 is a name's"
    );
    let consumer = json!({"jwt": {"key": "k-1", "secret": SECRET}});
    let resp = node.admin("PUT", "/admin/v1/consumers/team%2Fbob", Some(consumer));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["errors"][0]["field"], "username");
    let provider = json!({"issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"});
    let resp = node.admin("PUT", "/admin/v1/providers/..", Some(provider));
    assert_ne!(resp.status, 201, "{}", resp.text());
    let resp = node.admin(
        "PUT",
        "/admin/v1/providers/%2E",
        Some(json!({"issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"})),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    // Plain names are taken; an existing odd one stays editable.
    let resp = node.admin(
        "PUT",
        "/admin/v1/routes/ok-name_1.v2~x@corp",
        Some(route.clone()),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = node.admin(
        "PUT",
        "/admin/v1/routes/odd%09name",
        Some(json!({"paths": ["/odd2/*"], "upstream": {"echo": true}})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(node.get("/odd2/x").status, 200);
}

/// Admin answers hold consumers, claims and explain reports: none may be
/// kept by a cache, framed or sniffed into something else, whatever the
/// status (only the console's files had said so).
#[test]
fn admin_answers_are_not_cached_framed_or_sniffed() {
    let (_dir, node) = start();
    let answers = [
        node.admin("GET", "/admin/v1/consumers", None),
        node.admin("GET", "/admin/v1/nope", None),
        node.admin("PUT", "/admin/v1/routes/api", Some(json!({"paths": 1}))),
        node.admin_raw(&Req::get("/admin/v1/consumers")),
        node.admin_raw(&Req::get("/console/nope")),
    ];
    for resp in &answers {
        assert_eq!(
            resp.header("cache-control"),
            Some("no-store"),
            "{}",
            resp.status
        );
        assert_eq!(
            resp.header("x-content-type-options"),
            Some("nosniff"),
            "{}",
            resp.status
        );
        assert_eq!(
            resp.header("x-frame-options"),
            Some("DENY"),
            "{}",
            resp.status
        );
        let csp = resp.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "{}: {csp}",
            resp.status
        );
    }
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses[..4], [200, 404, 400, 401]);
}

/// `If-None-Match: *` makes a PUT a create that never replaces (RFC 9110
/// §13.1.2): `412`, located at the name, when the object exists; the
/// console's "New consumer" and "New provider" send it (an outside audit
/// found them silently replacing an object of the same name).
#[test]
fn a_create_only_put_never_replaces_an_object() {
    let (_dir, node) = start();
    let put = |path: &str, body: Value, create_only: bool| {
        let mut req = Req::new("PUT", path)
            .header("X-API-KEY", KEY)
            .header("Content-Type", "application/json");
        if create_only {
            req = req.header("If-None-Match", "*");
        }
        node.admin_raw(&req.body(body.to_string()))
    };
    let alice = node.admin("GET", "/admin/v1/consumers/alice", None).json();
    let other = json!({"jwt": {"key": "other-key", "secret": SECRET}});
    let resp = put("/admin/v1/consumers/alice", other.clone(), true);
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert_eq!(fields(&resp), ["username"]);
    assert!(resp.text().contains("is taken"), "{}", resp.text());
    assert_eq!(
        node.admin("GET", "/admin/v1/consumers/alice", None).json(),
        alice
    );
    assert_eq!(
        put("/admin/v1/consumers/carol", other.clone(), true).status,
        201
    );
    // Without the header, a PUT replaces, as documented.
    assert_eq!(
        put(
            "/admin/v1/consumers/alice",
            json!({"jwt": {"key": "alice-key", "secret": SECRET}}),
            false
        )
        .status,
        200
    );
    let route = json!({"paths": ["/x/*"], "upstream": {"echo": true}});
    let resp = put("/admin/v1/routes/api", route.clone(), true);
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert_eq!(fields(&resp), ["name"]);
    assert_eq!(put("/admin/v1/routes/x", route, true).status, 201);
    let provider = json!({"issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"});
    assert_eq!(
        put("/admin/v1/providers/corp", provider.clone(), true).status,
        201
    );
    let resp = put("/admin/v1/providers/corp", provider, true);
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert_eq!(fields(&resp), ["name"]);

    // A route's policy too (it was replaced).
    let policy = node.admin("GET", "/admin/v1/routes/api/jwt", None).json();
    let resp = put("/admin/v1/routes/api/jwt", json!({"realm": "other"}), true);
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert_eq!(
        node.admin("GET", "/admin/v1/routes/api/jwt", None).json(),
        policy
    );
    assert_eq!(put("/admin/v1/routes/x/jwt", json!({}), true).status, 201);

    // If-Match: * replaces only; an If-Match naming an entity tag the
    // object is not at never holds: 412, nothing changed (it was ignored).
    let conditional = |path: &str, if_match: &str, body: Value| {
        node.admin_raw(
            &Req::new("PUT", path)
                .header("X-API-KEY", KEY)
                .header("Content-Type", "application/json")
                .header("If-Match", if_match)
                .body(body.to_string()),
        )
    };
    let dave = json!({"jwt": {"key": "dave-key", "secret": SECRET}});
    let resp = conditional("/admin/v1/consumers/dave", "*", dave.clone());
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert_eq!(fields(&resp), ["username"]);
    assert_eq!(
        resp.message().unwrap(),
        "a consumer named \"dave\" does not exist: nothing to replace (If-Match: *)"
    );
    assert_eq!(
        node.admin("GET", "/admin/v1/consumers/dave", None).status,
        404
    );
    let resp = conditional("/admin/v1/consumers/carol", "*", dave.clone());
    assert_eq!(resp.status, 200, "{}", resp.text());
    let carol = node.admin("GET", "/admin/v1/consumers/carol", None).json();
    for tag in ["\"v1\"", "W/\"v1\", *"] {
        let resp = conditional("/admin/v1/consumers/carol", tag, other.clone());
        assert_eq!(resp.status, 412, "{tag}: {}", resp.text());
        assert!(
            resp.text()
                .contains("changed since the version If-Match names"),
            "{}",
            resp.text()
        );
    }
    let delete = Req::new("DELETE", "/admin/v1/consumers/carol")
        .header("X-API-KEY", KEY)
        .header("If-Match", "\"v1\"");
    assert_eq!(node.admin_raw(&delete).status, 412);
    assert_eq!(
        node.admin("GET", "/admin/v1/consumers/carol", None).json(),
        carol
    );
}

/// Entity tags (RFC 9110 §8.8.3, §13.1.1): a GET of a route, its policy, a
/// consumer or a provider carries `ETag`; a write with `If-Match` naming the
/// version read goes through and answers the new tag, one naming an older
/// version is `412` and changes nothing. So two admins (a console left
/// open, a script) cannot undo each other's change without a word: an
/// outside audit found a stale console page lifting another admin's
/// `protection.immutable`.
#[test]
fn a_write_conditioned_on_an_older_version_is_refused() {
    let (_dir, node) = start();
    let tagged = |method: &str, path: &str, tag: &str, body: Option<Value>| {
        let mut req = Req::new(method, path)
            .header("X-API-KEY", KEY)
            .header("If-Match", tag);
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        node.admin_raw(&req)
    };
    let etag = |resp: &Response| {
        let tag = resp
            .header("etag")
            .unwrap_or_else(|| panic!("no ETag: {resp:?}"));
        assert!(
            tag.len() == 34 && tag.starts_with('"') && tag.ends_with('"'),
            "{tag}"
        );
        tag.to_owned()
    };

    // A consumer: the same object, the same tag; a change (of the secret
    // alone too, which no GET shows), another.
    let got = node.admin("GET", "/admin/v1/consumers/alice", None);
    let t1 = etag(&got);
    assert_eq!(
        etag(&node.admin("GET", "/admin/v1/consumers/alice", None)),
        t1
    );
    let mut alice = got.json();
    alice["custom_id"] = json!("crm-2");
    alice["jwt"]["secret"] = json!(SECRET);
    let resp = tagged("PUT", "/admin/v1/consumers/alice", &t1, Some(alice.clone()));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let t2 = etag(&resp);
    assert_ne!(t2, t1);
    assert_eq!(
        etag(&node.admin("GET", "/admin/v1/consumers/alice", None)),
        t2
    );
    alice["custom_id"] = json!("crm-stale");
    for stale in [t1.clone(), format!("W/{t2}"), "\"v1\"".to_owned()] {
        let resp = tagged(
            "PUT",
            "/admin/v1/consumers/alice",
            &stale,
            Some(alice.clone()),
        );
        assert_eq!(resp.status, 412, "{stale}: {}", resp.text());
        assert_eq!(
            resp.message().unwrap(),
            format!(
                "a consumer named \"alice\" changed since the version If-Match names: it is \
                 at {t2} now, and nothing was written (read it again, then write)"
            )
        );
    }
    let now = node.admin("GET", "/admin/v1/consumers/alice", None);
    assert_eq!(
        (etag(&now), now.json()["custom_id"].clone()),
        (t2.clone(), json!("crm-2"))
    );
    alice["jwt"]["secret"] = json!("another-secret-0123456789abcdefghijklmn");
    let resp = tagged(
        "PUT",
        "/admin/v1/consumers/alice",
        &format!("\"x\", {t2}"),
        Some(alice),
    );
    assert_eq!(resp.status, 200, "one of the tags listed: {}", resp.text());
    let t3 = etag(&resp);
    assert_ne!(t3, t2, "a new secret is a new version");
    assert_eq!(
        tagged("DELETE", "/admin/v1/consumers/alice", &t2, None).status,
        412
    );

    // A route and its policy share the route's tag: the console reads the
    // route and patches its policy.
    let r1 = etag(&node.admin("GET", "/admin/v1/routes/guarded", None));
    assert_eq!(
        etag(&node.admin("GET", "/admin/v1/routes/guarded/jwt", None)),
        r1
    );
    let lift = json!({"protection": {"undeletable": false, "immutable": false}});
    let resp = tagged(
        "PATCH",
        "/admin/v1/routes/guarded/jwt",
        &r1,
        Some(json!({"protection": {"undeletable": false, "immutable": true}})),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let r2 = etag(&resp);
    assert_ne!(r2, r1);
    assert_eq!(
        etag(&node.admin("GET", "/admin/v1/routes/guarded", None)),
        r2
    );
    // The stale page's toggle: refused, the other admin's immutable stays.
    let resp = tagged(
        "PATCH",
        "/admin/v1/routes/guarded/jwt",
        &r1,
        Some(lift.clone()),
    );
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert_eq!(
        node.admin("GET", "/admin/v1/routes/guarded/jwt", None)
            .json()["protection"],
        json!({"undeletable": false, "immutable": true})
    );
    for (method, path) in [
        ("DELETE", "/admin/v1/routes/guarded/jwt"),
        ("DELETE", "/admin/v1/routes/guarded"),
    ] {
        assert_eq!(
            tagged(method, path, &r1, None).status,
            412,
            "{method} {path}"
        );
    }
    let resp = tagged(
        "PUT",
        "/admin/v1/routes/guarded/jwt",
        &r1,
        Some(json!({"realm": "r"})),
    );
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert_eq!(
        tagged("PATCH", "/admin/v1/routes/guarded/jwt", &r2, Some(lift)).status,
        200
    );
    let r3 = etag(&node.admin("GET", "/admin/v1/routes/guarded", None));
    // If-None-Match compares weakly (RFC 9110 §13.1.2), and a `*` listed
    // among tags is `*`: both refuse a write to the version they name.
    for none_match in [format!("W/{r3}"), "\"x\", *".to_owned()] {
        let resp = node.admin_raw(
            &Req::new("PUT", "/admin/v1/routes/guarded/jwt")
                .header("X-API-KEY", KEY)
                .header("If-None-Match", &none_match)
                .header("Content-Type", "application/json")
                .body("{}".to_owned()),
        );
        assert_eq!(resp.status, 412, "{none_match}: {}", resp.text());
    }
    assert_eq!(
        etag(&node.admin("GET", "/admin/v1/routes/guarded", None)),
        r3
    );
    // A read naming the tag it would get is 304, with the tag, no body
    // (RFC 9110 §13.1.2); another tag gets the object.
    for (none_match, status) in [
        (r3.clone(), 304),
        (format!("W/{r3}"), 304),
        ("\"x\", *".to_owned(), 304),
        ("\"x\"".to_owned(), 200),
    ] {
        let resp = node.admin_raw(
            &Req::get("/admin/v1/routes/guarded")
                .header("X-API-KEY", KEY)
                .header("If-None-Match", &none_match),
        );
        assert_eq!(resp.status, status, "{none_match}: {}", resp.text());
        assert_eq!(etag(&resp), r3, "{none_match}");
        assert_eq!(resp.body.is_empty(), status == 304, "{none_match}");
    }
    let head = node.admin_raw(
        &Req::new("HEAD", "/admin/v1/routes/guarded")
            .header("X-API-KEY", KEY)
            .header("If-None-Match", &r3),
    );
    assert_eq!(head.status, 304, "HEAD");
    // An answer without a tag is not conditioned.
    let list = node.admin_raw(
        &Req::get("/admin/v1/routes")
            .header("X-API-KEY", KEY)
            .header("If-None-Match", "*"),
    );
    assert_eq!(list.status, 200, "{}", list.text());
    // Deleting the policy answers the route's new tag: the route stays.
    let resp = tagged("DELETE", "/admin/v1/routes/guarded/jwt", &r3, None);
    assert_eq!(resp.status, 204, "{}", resp.text());
    let r4 = etag(&resp);
    assert_eq!(
        etag(&node.admin("GET", "/admin/v1/routes/guarded", None)),
        r4
    );
    let resp = tagged("DELETE", "/admin/v1/routes/guarded", &r4, None);
    assert_eq!(resp.status, 204, "{}", resp.text());

    // A provider: created, its tag answered; deleted only at that version.
    let provider = json!({"issuer": "https://idp.example", "jwks_uri": "https://idp.example/keys"});
    let created = node.admin("PUT", "/admin/v1/providers/corp", Some(provider));
    assert_eq!(created.status, 201, "{}", created.text());
    let p1 = etag(&created);
    assert_eq!(
        etag(&node.admin("GET", "/admin/v1/providers/corp", None)),
        p1
    );
    assert_eq!(
        tagged("DELETE", "/admin/v1/providers/corp", "\"x\"", None).status,
        412
    );
    assert_eq!(
        tagged("DELETE", "/admin/v1/providers/corp", &p1, None).status,
        204
    );
    let resp = tagged("DELETE", "/admin/v1/providers/corp", &p1, None);
    assert_eq!(resp.status, 404, "{}", resp.text());

    // Endpoints without tags refuse a condition on one, as before.
    let t = token("alice-key", SECRET);
    let resp = tagged(
        "POST",
        "/admin/v1/revocations",
        &t3,
        Some(json!({"token": t})),
    );
    assert_eq!(resp.status, 412, "{}", resp.text());
    assert!(
        resp.text().contains("this endpoint gives none"),
        "{}",
        resp.text()
    );
    // `If-Match: *` names no tag: the revocation is made.
    let resp = tagged(
        "POST",
        "/admin/v1/revocations",
        "*",
        Some(json!({"token": t})),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
}

/// A name in the path that is no text once percent-decoded is invalid
/// input (`400`, with `errors`), not a missing object (an outside audit
/// found `404`).
#[test]
fn a_name_that_is_not_utf8_is_a_400() {
    let (_dir, node) = start();
    for method in ["GET", "PUT", "DELETE"] {
        let resp = node.admin_raw(
            &Req::new(method, "/admin/v1/consumers/a%FFb")
                .header("X-API-KEY", KEY)
                .header("Content-Type", "application/json")
                .body("{}".to_owned()),
        );
        assert_eq!(resp.status, 400, "{method}: {}", resp.text());
        assert!(
            resp.json()["errors"].is_array(),
            "{method}: {}",
            resp.text()
        );
    }
}

/// A request whose head cannot be read (framing that could smuggle, a head
/// too large) is answered by the connection before any route, and logged
/// and counted as every request is (an outside audit found no trace of
/// such attempts but a DEBUG line without the peer).
#[test]
fn a_refused_request_head_gets_its_access_line_and_is_counted() {
    use std::io::{Read, Write};
    let (_dir, node) = start();
    let before = node.metrics();
    let send = |raw: &[u8]| -> String {
        let mut s = std::net::TcpStream::connect(node.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(raw).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let smuggle = send(
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    );
    assert!(smuggle.starts_with("HTTP/1.1 400"), "{smuggle}");
    let mut big = b"GET /api/x HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70_000));
    big.extend_from_slice(b"\r\n\r\n");
    let large = send(&big);
    assert!(large.starts_with("HTTP/1.1 431"), "{large}");
    // Lines ended by a bare CR end no line: refused at once, not after the
    // 30 s header timeout (the read gives up after 10 s).
    let bare_cr = send(b"GET /api/x HTTP/1.1\rHost: x\r\r");
    assert!(bare_cr.starts_with("HTTP/1.1 400"), "{bare_cr:?}");
    node.wait_log("the request head was refused", 3);
    let logs = node.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("jwtgate::access") && l.contains("the request head was refused"))
        .collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(
        lines[0].contains("method=- ") && lines[0].contains("status=400"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("auth=malformed") && lines[0].contains("peer=127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("status=431"), "{}", lines[1]);
    let after = node.metrics();
    for (code, times) in [("400", 2.0), ("431", 1.0)] {
        let labels = [("route", ""), ("code", code)];
        assert_eq!(
            after.value("jwtgate_http_requests_total", &labels)
                - before.value("jwtgate_http_requests_total", &labels),
            times,
            "{code}: {}",
            after.0
        );
    }
}
