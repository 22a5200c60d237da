//! What an operator wires jwtgate into, against the real binary: JSON log
//! lines (every line parses, the access log has its fields, no token or
//! secret ever appears), `/status` saying `starting` until the blacklist
//! and a provider's first keys are there and `ready` after, systemd's
//! readiness protocol on a real datagram socket (a path and an abstract
//! name), and the man page and completions covering every subcommand
//! `--help` lists.

#![allow(clippy::unwrap_used)]

mod admin_support;
mod support;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use admin_support::{Node, KEY};
use jwtgate_testkit::RedisServer;
use serde_json::{json, Value};
use support::*;

const SECRET: &str = "operations-secret-0123456789abcdefghij";

fn config(store: &str, extra: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{KEY}" }}
store: {store}
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
{extra}routes:
  - name: app
    paths: ["/app/*"]
    upstream: {{ echo: true }}
    jwt:
      use_jwt_blacklist_revoking: true
      logout_path: "POST_/app/logout"
"#
    )
}

fn token() -> String {
    sign_hs(
        "HS256",
        SECRET,
        json!({"key": "user123", "exp": now() + 600}),
    )
}

/// `JWTGATE_LOG=info,jwtgate::access=off` turns the access log off, as
/// the README says; the filter is asked once, at start, not per request.
#[test]
fn the_access_log_follows_the_log_filter() {
    for (filter, lines) in [(None, 2), (Some("info,jwtgate::access=off"), 0)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwtgate.yaml");
        std::fs::write(&path, config("{ kind: embedded, path: ./data }", "")).unwrap();
        let env: Vec<(&str, &str)> = filter.map(|f| ("JWTGATE_LOG", f)).into_iter().collect();
        let node = Node::start_on(&path, &env);
        assert_eq!(node.send(&Req::get("/app/x").bearer(&token())).status, 200);
        assert_eq!(node.send(&Req::get("/app/x")).status, 401);
        // A line logged after the requests: the log is written in order.
        node.signal("HUP");
        node.wait_log("SIGHUP: reloading", 1);
        let logs = node.logs();
        assert_eq!(
            logs.matches("jwtgate::access").count(),
            lines,
            "JWTGATE_LOG={filter:?}:\n{logs}"
        );
    }
}

/// An outside operations audit: a key claim, `kid` or `aud` a client
/// wrote was quoted whole in the access line's detail, up to the 8 KiB of a
/// token. It is cut, saying how long it was.
#[test]
fn what_a_client_wrote_is_quoted_in_the_access_log_up_to_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config("{ kind: embedded, path: ./data }", ""));
    let long_key = "k".repeat(3000);
    let token = sign_hs(
        "HS256",
        SECRET,
        json!({"key": long_key, "exp": now() + 600}),
    );
    // The `n`th access line, which must hold `text`.
    let access_line = |n: usize, text: &str| {
        node.wait_log("jwtgate::access", n);
        let logs = node.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("jwtgate::access") && l.contains(text))
            .map(str::to_owned);
        line.unwrap_or_else(|| panic!("no access line with {text:?}:\n{logs}"))
    };
    assert_eq!(node.send(&Req::get("/app/x").bearer(&token)).status, 401);
    let line = access_line(1, "no consumer has key");
    let detail = &line[line.find(" detail=").expect("a detail")..];
    assert!(detail.len() < 600, "{} bytes: {line}", detail.len());
    assert!(
        detail.contains("kkkk") && detail.contains("bytes)"),
        "{line}"
    );
    assert!(line.contains(" path=\"/app/x\" "), "{line}");

    // The path a client sent, up to 512 bytes, then `…`.
    let long_path = format!("/app/{}", "p".repeat(4000));
    assert_eq!(node.send(&Req::get(&long_path)).status, 401);
    let line = access_line(2, "/app/ppp");
    assert!(line.len() < 1000, "{} bytes: {line}", line.len());
    let shown = format!("{}…", &long_path[..512]);
    assert!(line.contains(&format!(" path={shown:?} ")), "{line}");
    // A character across the cut (the parsers take raw UTF-8): cut before
    // it, never the whole path (the review: a 60 674-byte line).
    let wide = format!("/app/{}é{}", "a".repeat(506), "b".repeat(8000));
    assert_eq!(wide.find('é'), Some(511));
    assert_eq!(node.send(&Req::get(&wide)).status, 401);
    let line = access_line(3, "/app/aaa");
    assert!(line.len() < 1000, "{} bytes: {line}", line.len());
    assert!(line.contains(&format!("{}…", &wide[..511])), "{line}");
}

#[test]
fn json_logs_parse_line_by_line_and_never_carry_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, config("{ kind: embedded, path: ./data }", "")).unwrap();
    let mut node = Node::start_on(&path, &[("JWTGATE_LOG_FORMAT", "json")]);
    let good = token();
    let forged = sign_hs(
        "HS256",
        "another-secret-0123456789abcdefghijkl",
        json!({"key": "user123"}),
    );
    // A query may carry a token: the line has the path, never the query.
    assert_eq!(
        node.send(&Req::get("/app/ok?access_token=query-secret-7").bearer(&good))
            .status,
        200
    );
    assert_eq!(
        node.send(&Req::get("/app/forged").bearer(&forged)).status,
        401
    );
    assert_eq!(node.send(&Req::get("/app/none")).status, 401);
    // Quotes, backslashes and control characters in what gets logged.
    let odd = Req::get("/app/x").header("Authorization", "Bearer \"a\\b.c.d");
    assert_eq!(node.send(&odd).status, 401);
    assert_eq!(
        node.send(&Req::post("/app/logout").bearer(&good)).status,
        200
    );
    assert_eq!(node.send(&Req::get("/app/again").bearer(&good)).status, 401);
    // A reload refused, a warning with its problems.
    std::fs::write(&path, "listen: [oops\n").unwrap();
    node.signal("HUP");
    node.wait_log("config reload", 1);
    assert!(node.stop().success());

    let logs = node.logs();
    let mut access = Vec::new();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n--- all ---\n{logs}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v[field].is_string(), "{field} missing: {line}");
        }
        if v["target"] == "jwtgate::access" {
            access.push(v);
        }
    }
    for secret in [
        good.as_str(),
        forged.as_str(),
        SECRET,
        KEY,
        "query-secret-7",
    ] {
        assert!(
            !logs.contains(secret),
            "a token or secret in the log:\n{logs}"
        );
    }
    let first_signature_part = &good[good.rfind('.').unwrap() + 1..];
    assert!(!logs.contains(first_signature_part));
    let paths: Vec<(&str, i64)> = access
        .iter()
        .map(|a| (a["auth"].as_str().unwrap(), a["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("ok", 200),
            ("bad_signature", 401),
            ("missing", 401),
            ("malformed", 401),
            ("logout", 200),
            ("revoked", 401)
        ],
        "{logs}"
    );
    let ok = &access[0];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/app/ok");
    assert_eq!(access[1]["path"], "/app/forged");
    assert_eq!(ok["route"], "app");
    assert_eq!(ok["consumer"], "alice");
    assert!(ok["latency_us"].is_u64());
    assert!(ok["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(access[1]["detail"].as_str().unwrap().contains("signature"));
    assert!(
        logs.contains(r#""level":"WARN""#),
        "the refused reload warns:\n{logs}"
    );
}

#[test]
fn status_is_starting_until_the_blacklist_and_first_keys_are_there() {
    let mut redis = RedisServer::start();
    let store = redis.store_yaml();
    redis.kill();
    // A key server that accepts and never answers: the first fetch hangs
    // until its timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks = format!("http://{}/jwks.json", silent.local_addr().unwrap());
    let provider = format!(
        r#"providers:
  - name: slow
    issuer: "https://slow.example"
    jwks_uri: "{jwks}"
    fetch_timeout_ms: 8000
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&store, &provider));
    let status = node.admin("GET", "/status", None);
    assert_eq!(status.status, 503, "{}", status.text());
    let body = status.json();
    assert_eq!(body["status"], "starting");
    assert_eq!(
        body["waiting_for"],
        json!(["revocation store", "keys of provider slow"]),
        "{body}"
    );
    // The fetch times out: the provider is unavailable, no longer loading.
    assert!(
        eventually(Duration::from_secs(20), || {
            node.admin("GET", "/status", None).json()["waiting_for"] == json!(["revocation store"])
        }),
        "{}",
        node.admin("GET", "/status", None).text()
    );
    redis.restart();
    assert!(
        eventually(Duration::from_secs(15), || node
            .admin("GET", "/status", None)
            .status
            == 200),
        "{}",
        node.admin("GET", "/status", None).text()
    );
    let body = node.admin("GET", "/status", None).json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["providers"]["slow"]["state"], "unavailable");
    assert!(body.get("waiting_for").is_none());
    // A provider added once the node has been ready is not waited for: its
    // first fetch took the node (every node, with etcd) out of rotation
    // for as long as the fetch could last (an outside audit).
    let added = node.admin(
        "PUT",
        "/admin/v1/providers/late",
        Some(json!({ "issuer": "https://late.example", "jwks_uri": jwks, "fetch_timeout_ms": 60000 })),
    );
    assert_eq!(added.status, 201, "{}", added.text());
    let status = node.admin("GET", "/status", None);
    assert_eq!(status.status, 200, "{}", status.text());
    let body = status.json();
    assert_eq!(body["providers"]["late"]["state"], "loading", "{body}");
    assert!(body.get("waiting_for").is_none(), "{body}");
    drop(silent);
}

/// `/status` says whether the blacklist store answers (Kong's
/// `database.reachable`): a Redis that went away shows as `failing`, with
/// since when, while the node stays `ready` (it serves on the revocations
/// it knows); why (the store's address) only for the holder of the key.
/// Before, nothing in `/status` changed while every logout answered 503.
#[test]
fn status_says_when_the_revocation_store_fails_and_when_it_answers_again() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(&redis.store_yaml(), ""));
    let anonymous = || node.admin_raw(&Req::get("/status"));
    let body = anonymous().json();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(
        body["revocation_store"],
        json!({"kind": "redis", "state": "ok"}),
        "{body}"
    );

    redis.kill();
    let before = now();
    let logout = node.send(&Req::post("/app/logout").bearer(&token()));
    assert_eq!(logout.status, 503, "{}", logout.text());
    let status = anonymous();
    assert_eq!(status.status, 200, "{}", status.text());
    let body = status.json();
    assert_eq!(body["status"], "ready", "{body}");
    let store = &body["revocation_store"];
    assert_eq!(store["state"], "failing", "{body}");
    let since = store["since"].as_i64().unwrap_or_else(|| panic!("{body}"));
    assert!((before - 1..=now()).contains(&since), "{body}");
    assert!(store.get("error").is_none(), "no key, no reason: {body}");
    let keyed = node.admin("GET", "/status", None).json();
    let error = keyed["revocation_store"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(!error.is_empty(), "{keyed}");
    // Still failing: the same `since`, not the latest failure's time.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        node.send(&Req::post("/app/logout").bearer(&token())).status,
        503
    );
    assert_eq!(anonymous().json()["revocation_store"]["since"], since);

    redis.restart();
    assert!(
        eventually(Duration::from_secs(15), || anonymous().json()
            ["revocation_store"]
            == json!({"kind": "redis", "state": "ok"})),
        "{}",
        anonymous().text()
    );
    let logout = node.send(&Req::post("/app/logout").bearer(&token()));
    assert_eq!(logout.status, 200, "{}", logout.text());

    // A Redis that reads on but refuses writes (out of memory under
    // noeviction): every logout fails, and so the store is failing,
    // although the feed's reads work (a review found them clearing it).
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let fresh = |jti: &str| {
        sign_hs(
            "HS256",
            SECRET,
            json!({"key": "user123", "exp": now() + 600, "jti": jti}),
        )
    };
    let logout = node.send(&Req::post("/app/logout").bearer(&fresh("oom-1")));
    assert_eq!(logout.status, 503, "{}", logout.text());
    // Longer than a feed read blocks: a read came back meanwhile.
    std::thread::sleep(Duration::from_millis(2500));
    let keyed = node.admin("GET", "/status", None).json();
    assert_eq!(keyed["revocation_store"]["state"], "failing", "{keyed}");
    assert!(
        keyed["revocation_store"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("OOM")),
        "{keyed}"
    );
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    let logout = node.send(&Req::post("/app/logout").bearer(&fresh("oom-2")));
    assert_eq!(logout.status, 200, "{}", logout.text());
    assert_eq!(
        anonymous().json()["revocation_store"],
        json!({"kind": "redis", "state": "ok"})
    );
}

/// Datagrams a node sends to `NOTIFY_SOCKET`, in order.
fn notifications(sock: &UnixDatagram, until: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.contains(until);
            got.push(msg);
            if done {
                return got;
            }
        }
    }
    panic!("no {until:?} within {timeout:?}; got {got:?}");
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, config("{ kind: embedded, path: ./data }", "")).unwrap();
    let mut node = Node::start_on(&path, &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let got = notifications(&sock, "READY=1", Duration::from_secs(10));
    assert!(got[0].starts_with("READY=1"), "{got:?}");
    // Serving by then.
    assert_eq!(node.send(&Req::get("/app/x").bearer(&token())).status, 200);
    node.signal("HUP");
    let got = notifications(&sock, "READY=1", Duration::from_secs(10));
    assert_eq!(got, ["RELOADING=1", "READY=1\nSTATUS=serving"]);
    // A refused file is what `systemctl status` shows until one applies
    // (an outside operations audit: a refused reload looked like a good one).
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, "routes: [").unwrap();
    let got = notifications(&sock, "STATUS=", Duration::from_secs(10));
    assert!(
        got.last()
            .unwrap()
            .contains("STATUS=serving the previous config: the config file was refused as invalid"),
        "{got:?}"
    );
    std::fs::write(&path, &good).unwrap();
    // The file watch may have read the refused file more than once: its
    // refusals may come first.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen: Vec<String> = Vec::new();
    while !seen.iter().any(|m| m == "READY=1\nSTATUS=serving") {
        assert!(Instant::now() < deadline, "never serving again: {seen:?}");
        seen.extend(notifications(&sock, "STATUS=", Duration::from_secs(10)));
    }
    // A setting that waits for a restart is named (an outside packaging
    // audit: a reload that moved the listener said `serving`, and the node
    // stayed where it was).
    std::fs::write(
        &path,
        good.replace(
            "listen: \"127.0.0.1:0\"\nadmin",
            "listen: \"127.0.0.2:0\"\nadmin",
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen: Vec<String> = Vec::new();
    while !seen.iter().any(|m| m.contains("waiting for a restart")) {
        assert!(Instant::now() < deadline, "no restart said: {seen:?}");
        seen.extend(notifications(&sock, "STATUS=", Duration::from_secs(10)));
    }
    assert!(
        seen.iter().any(|m| m == "READY=1\nSTATUS=serving; waiting for a restart (systemctl restart; see the log): listen"),
        "{seen:?}"
    );
    std::fs::write(&path, &good).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen: Vec<String> = Vec::new();
    while !seen.iter().any(|m| m == "READY=1\nSTATUS=serving") {
        assert!(
            Instant::now() < deadline,
            "the restart still said: {seen:?}"
        );
        seen.extend(notifications(&sock, "STATUS=", Duration::from_secs(10)));
    }
    // SIGUSR1 and SIGUSR2 end a process by default: caught, they are said
    // and change nothing (logrotate hooks send SIGUSR1 to nginx).
    node.signal("USR1");
    node.signal("USR2");
    node.wait_log("SIGUSR1 does nothing", 1);
    node.wait_log("SIGUSR2 does nothing", 1);
    assert_eq!(node.send(&Req::get("/app/x").bearer(&token())).status, 200);
    node.signal("TERM");
    // A late read of the file by its watch may still say READY first.
    let got = notifications(&sock, "STOPPING=1", Duration::from_secs(10));
    assert_eq!(
        got.last().map(String::as_str),
        Some("STOPPING=1"),
        "{got:?}"
    );
    assert!(
        got.iter().rev().skip(1).all(|m| m.starts_with("READY=1")),
        "{got:?}"
    );
    // One SIGTERM: a second one would stop it at once (143).
    assert!(node.wait_exit(Duration::from_secs(40)).success());
}

#[test]
fn systemd_abstract_notify_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("jwtgate-test-{}-{}", std::process::id(), now());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, config("{ kind: embedded, path: ./data }", "")).unwrap();
    let _node = Node::start_on(&path, &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    let got = notifications(&sock, "READY=1", Duration::from_secs(10));
    assert!(got[0].starts_with("READY=1"), "{got:?}");
}

/// The subcommands `--help` lists (`jwtgate`, or a subcommand).
fn subcommands(args: &[&str]) -> Vec<String> {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let section = text.split("Commands:").nth(1).unwrap_or("");
    section
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn man_page_and_completions_cover_every_subcommand() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let man = run(&["man"]);
    let bash = run(&["completions", "bash"]);
    let zsh = run(&["completions", "zsh"]);
    let fish = run(&["completions", "fish"]);
    let top = subcommands(&[]);
    assert!(top.len() >= 6, "{top:?}");
    for sub in &top {
        for (shell, script) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
            assert!(
                script.contains(sub.as_str()),
                "{shell} completion lacks {sub}"
            );
        }
        let inners = subcommands(&[sub]);
        // Each command that does something is a subsection of one page.
        if inners.is_empty() {
            let heading = format!(".SS \"jwtgate {sub}\"");
            assert!(man.contains(&heading), "man page lacks {heading}");
        }
        for inner in inners {
            let heading = format!(".SS \"jwtgate {sub} {inner}\"");
            assert!(man.contains(&heading), "man page lacks {heading}");
            assert!(bash.contains(&inner), "bash completion lacks {sub} {inner}");
        }
    }
    // One SYNOPSIS and one OPTIONS section, whose lines say what options
    // take, as --help does.
    assert_eq!(man.matches(".SH SYNOPSIS").count(), 1);
    assert_eq!(man.matches(".SH OPTIONS").count(), 1);
    for line in [
        r"\fBjwtgate run\fR [\fB\-c\fR|\fB\-\-config\fR \fIFILE\fR]",
        r"\fBjwtgate config push\fR \fB\-c\fR|\fB\-\-config\fR \fIFILE\fR [\fB\-\-dry\-run\fR]",
        r"\fBjwtgate completions\fR \fISHELL\fR",
    ] {
        assert!(man.contains(line), "synopsis lacks {line}");
    }
    // A group of commands is said before them.
    for group in [
        r"\fBjwtgate token\fR: Mint or explain tokens",
        r"\fBjwtgate config\fR: Routes, consumers and providers in etcd",
    ] {
        assert!(man.contains(group), "man page lacks {group}");
    }
    // Every long option of `run` and `token sign` is in the page.
    for (sub, opt) in [
        ("run", "\\-\\-config"),
        ("token sign", "\\-\\-private\\-key"),
    ] {
        assert!(man.contains(opt), "{sub}: {opt}");
    }
    assert!(man.contains("JWTGATE_LOG_FORMAT"));
    assert!(man.contains(".SH EXIT STATUS"));
    // One page: no reference to a jwtgate-run(1) that does not exist.
    assert!(
        !man.contains("jwtgate\\-"),
        "a per-subcommand page is named"
    );
    assert!(
        Command::new(BIN)
            .args(["completions", "tcsh"])
            .output()
            .unwrap()
            .status
            .code()
            == Some(2)
    );
}

#[test]
fn a_closed_pipe_is_no_panic() {
    for args in [&["man"][..], &["completions", "zsh"][..]] {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // stdout is closed now; the rest of the page meets a broken pipe.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}");
    }
}

/// What a client reads on a new connection for `GET target` until the
/// gateway closes it.
fn read_to_close(addr: std::net::SocketAddr, target: &str) -> String {
    use std::io::Write;
    let mut s = connect(addr);
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: example\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{target}: not closed: {e}"));
    String::from_utf8_lossy(&got).into_owned()
}

/// A response body the upstream breaks off after its head went out (it
/// closes early, sends a malformed chunk, stalls past `read_timeout_ms`):
/// the client has the head and the bytes that came, and its connection is
/// closed so it cannot take the body for whole; the log says why, naming
/// the upstream, and `/metrics` counts it (nginx's "upstream prematurely
/// closed connection", Envoy's `UPE`/`UC` flags).
#[test]
fn a_response_the_upstream_cuts_off_is_logged_and_counted() {
    let up = breaking_upstream();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        &format!(
            r#"listen: "127.0.0.1:0"
admin: {{ listen: "127.0.0.1:0", api_key: "{KEY}" }}
routes:
  - name: app
    paths: ["/*"]
    upstream: {{ nodes: ["{up}"], read_timeout_ms: 300 }}
"#
        ),
    );
    for (target, cause, part) in [
        (
            "/closed",
            "it closed the connection before the body ended",
            "hello",
        ),
        // Passed on chunked, without the last chunk that would end it.
        (
            "/chunk",
            "malformed chunked body: invalid chunk size",
            "5\r\nhello\r\n",
        ),
        (
            "/stall",
            "its body stalled for 300 ms (read_timeout_ms)",
            "hello",
        ),
    ] {
        let got = read_to_close(node.addr, target);
        let (head, body) = got.split_once("\r\n\r\n").unwrap_or((&got, ""));
        assert!(
            head.starts_with("HTTP/1.1 200 ") && body == part,
            "{target}: {got:?}"
        );
        node.wait_log(
            &format!(
                "response cut off: upstream {up}: {cause}; the client has part of the answer, \
                 and its connection is closed"
            ),
            1,
        );
    }
    let metrics = node.metrics();
    assert_eq!(
        metrics.value("jwtgate_upstream_responses_cut_off_total", &[]),
        3.0,
        "{}",
        metrics.0
    );
    assert_eq!(node.logs().matches("response cut off").count(), 3);
}

/// `jwtgate_worker_connections_total` of each worker the node's log names.
fn connections_per_worker(node: &Node) -> Vec<f64> {
    let logs = node.logs();
    let workers: usize = logs
        .split("workers=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no worker count in the log:\n{logs}"));
    let metrics = node.metrics();
    (0..workers)
        .map(|w| {
            metrics.value(
                "jwtgate_worker_connections_total",
                &[("worker", &w.to_string())],
            )
        })
        .collect()
}

#[test]
fn connections_spread_over_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config("{ kind: embedded, path: ./data }", ""));
    let connections = 64;
    for i in 0..connections {
        // One request per connection: each is a new TCP connection.
        let resp = node.send(&Req::get(&format!("/app/{i}")).bearer(&token()));
        assert_eq!(resp.status, 200);
    }
    let counts = connections_per_worker(&node);
    assert_eq!(
        counts.iter().sum::<f64>(),
        f64::from(connections),
        "{counts:?}"
    );
    // Each worker has its own socket in one SO_REUSEPORT group: the kernel
    // spreads connections by a hash of their addresses, so with 64 of them
    // no worker is left idle (the odds are 2^-63 with two workers).
    for (w, c) in counts.iter().enumerate() {
        assert!(*c > 0.0, "worker {w} accepted nothing: {counts:?}");
    }
}

#[test]
fn connections_that_stay_open_are_split_evenly_over_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config("{ kind: embedded, path: ./data }", ""));
    // 40 keep-alive connections, all open at once, each with one request
    // answered: the kernel's SO_REUSEPORT hash alone splits them unevenly
    // (as far apart as 26 and 14 about one time in twelve); the workers hand
    // over connections until each serves as many as the others, give or
    // take one (two when two workers place one at the same instant).
    let open = open_keep_alive(&node, 40);
    assert_split_evenly(&connections_per_worker(&node), 40);
    drop(open);
}

/// `jwtgate_worker_connections_open` of every worker, summed.
fn open_connections(node: &Node) -> f64 {
    let metrics = node.metrics();
    let prefix = "jwtgate_worker_connections_open{";
    metrics
        .0
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn the_open_connections_and_the_limit_are_gauges() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        &config("{ kind: embedded, path: ./data }", "max_connections: 500\n"),
    );
    assert_eq!(
        node.metrics().value("jwtgate_max_connections", &[]),
        500.0,
        "{}",
        node.metrics().0
    );
    // The admin API's own connections (the scrape) are not counted.
    assert_eq!(open_connections(&node), 0.0, "{}", node.metrics().0);
    let open = open_keep_alive(&node, 12);
    assert_eq!(open_connections(&node), 12.0, "{}", node.metrics().0);
    // One that sent nothing yet counts too: it holds a place.
    let silent = connect(node.addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_connections(&node) != 13.0 {
        assert!(Instant::now() < deadline, "{}", node.metrics().0);
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(open);
    drop(silent);
    // Each ends as the worker sees its close.
    while open_connections(&node) != 0.0 {
        assert!(Instant::now() < deadline, "{}", node.metrics().0);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` keep-alive connections to `node`, each with one request answered,
/// all left open.
fn open_keep_alive(node: &Node, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let head = Req::get("/app/open")
        .bearer(&token())
        .header("Connection", "keep-alive")
        .head_bytes();
    (0..n)
        .map(|_| {
            let mut stream = connect(node.addr);
            stream.write_all(&head).unwrap();
            let resp = read_response(&mut stream, false).unwrap();
            assert_eq!(resp.status, 200);
            stream
        })
        .collect()
}

/// The workers' connection counts add up to `total` and differ by at most
/// two (two workers may place a connection at the same instant).
fn assert_split_evenly(counts: &[f64], total: u32) {
    // The admin API's own connection (metrics) is not a data-plane one.
    assert_eq!(counts.iter().sum::<f64>(), f64::from(total), "{counts:?}");
    let most = counts.iter().copied().fold(f64::MIN, f64::max);
    let least = counts.iter().copied().fold(f64::MAX, f64::min);
    assert!(most - least <= 2.0, "uneven: {counts:?}");
}

#[test]
fn workers_sets_the_worker_threads_and_a_change_waits_for_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = "{ kind: embedded, path: ./data }";
    // More workers than this machine's cores, as an operator may ask.
    let node = Node::start(dir.path(), &config(store, "workers: 5\n"));
    node.wait_log("workers=5", 1);
    let open = open_keep_alive(&node, 30);
    let counts = connections_per_worker(&node);
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert_split_evenly(&counts, 30);
    assert!(
        counts.iter().all(|c| *c > 0.0),
        "an idle worker: {counts:?}"
    );

    // The threads are started once: another count is logged on reload and
    // waits for a restart; the node goes on serving with five.
    std::fs::write(&node.config_path, config(store, "workers: 2\n")).unwrap();
    node.signal("HUP");
    let waits = "workers: the config says workers 2,";
    node.wait_log(waits, 1);
    assert!(
        node.logs().contains("the node runs with workers 5,"),
        "what is served is said too: {}",
        node.logs()
    );
    // Listed in /status until then (an outside operations audit: said
    // once, judged against the previous reload, so a file put back was told
    // to restart for nothing); said when that changes, not at every
    // change of the config.
    let status = node.admin_raw(&Req::get("/status")).json();
    assert_eq!(status["restart_pending"], json!(["workers"]), "{status}");
    // The first SIGHUP's reload done (its WARN may have come from the
    // file watch's reload before it), then a second one.
    node.wait_log("trigger=Signal", 1);
    let reloads = node.logs().matches("trigger=Signal").count();
    node.signal("HUP");
    node.wait_log("trigger=Signal", reloads + 1);
    assert_eq!(node.logs().matches(waits).count(), 1, "{}", node.logs());
    std::fs::write(&node.config_path, config(store, "workers: 5\n")).unwrap();
    node.signal("HUP");
    node.wait_log("restart-only settings are as the node serves them again", 1);
    let status = node.admin_raw(&Req::get("/status")).json();
    assert!(status.get("restart_pending").is_none(), "{status}");
    assert_eq!(node.logs().matches(waits).count(), 1, "{}", node.logs());
    let more = open_keep_alive(&node, 5);
    let counts = connections_per_worker(&node);
    assert_split_evenly(&counts, 35);
    assert_eq!(
        node.logs().matches("workers=").count(),
        1,
        "{}",
        node.logs()
    );
    drop((open, more));
}

/// The CPUs a thread may run on, from `Cpus_allowed_list` ("0-3,6").
fn allowed_cpus(status_path: &std::path::Path) -> Vec<usize> {
    let status = std::fs::read_to_string(status_path).unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {}", status_path.display()))
        .trim();
    list.split(',')
        .flat_map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()
        })
        .collect()
}

/// The CPUs each of the node's worker threads may run on, in the order the
/// workers were started, and those of the process itself.
fn worker_cpus(node: &Node) -> (Vec<Vec<usize>>, Vec<usize>) {
    let proc = std::path::PathBuf::from(format!("/proc/{}", node.pid()));
    let mut workers: Vec<(u64, Vec<usize>)> = std::fs::read_dir(proc.join("task"))
        .unwrap()
        .filter_map(|t| {
            let t = t.unwrap().path();
            let comm = std::fs::read_to_string(t.join("comm")).ok()?;
            // "jwtgate-worker-N", cut to 15 characters by the kernel.
            comm.starts_with("jwtgate-worker").then(|| {
                let tid = t.file_name().unwrap().to_str().unwrap().parse().unwrap();
                (tid, allowed_cpus(&t.join("status")))
            })
        })
        .collect();
    workers.sort();
    let process = allowed_cpus(&proc.join("status"));
    (workers.into_iter().map(|(_, cpus)| cpus).collect(), process)
}

#[test]
fn worker_cpu_affinity_auto_pins_each_worker_to_the_next_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let store = "{ kind: embedded, path: ./data }";
    // Three workers: on two CPUs the third wraps around to the first.
    let node = Node::start(
        dir.path(),
        &config(store, "workers: 3\nworker_cpu_affinity: auto\n"),
    );
    node.wait_log("each worker pinned to a CPU", 1);
    let (workers, process) = worker_cpus(&node);
    assert_eq!(workers.len(), 3, "{workers:?}");
    for (k, cpus) in workers.iter().enumerate() {
        assert_eq!(
            cpus,
            &[process[k % process.len()]],
            "worker {k}: {workers:?}"
        );
    }
    let want: Vec<String> = (0..3)
        .map(|k| process[k % process.len()].to_string())
        .collect();
    assert!(
        node.logs().contains(&format!("cpus={}", want.join(","))),
        "{}",
        node.logs()
    );
    let open = open_keep_alive(&node, 6);
    assert_split_evenly(&connections_per_worker(&node), 6);
    drop(open);
}

#[test]
fn workers_are_not_pinned_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config("{ kind: embedded, path: ./data }", ""));
    node.wait_log("workers=", 1);
    let (workers, process) = worker_cpus(&node);
    assert!(!workers.is_empty());
    for cpus in &workers {
        assert_eq!(cpus, &process, "{workers:?}");
    }
    assert!(!node.logs().contains("pinned"), "{}", node.logs());
}

/// `worker_yield`: unpinned workers of a process that may run on more than
/// one CPU yield before they sleep by default, and not when it is off (the
/// start-up line says which; what the yield does is measured by
/// `bench/threads.sh`, not timed here).
#[test]
fn unpinned_workers_yield_before_sleeping_unless_worker_yield_is_off() {
    let store = "{ kind: embedded, path: ./data }";
    let process = allowed_cpus(std::path::Path::new("/proc/self/status"));
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &config(store, "workers: 2\n"));
    node.wait_log("workers=2", 1);
    let want = format!("yield_before_sleep={}", process.len() > 1);
    assert!(node.logs().contains(&want), "{want}: {}", node.logs());
    drop(node);

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        &config(store, "workers: 2\nworker_yield: off\n"),
    );
    node.wait_log("workers=2", 1);
    assert!(
        node.logs().contains("yield_before_sleep=false"),
        "{}",
        node.logs()
    );
}

/// A `state_dir` that cannot take files is said at start, with what it
/// costs, not only in a line per failed write later (an outside
/// operations audit: `/status` said `ready` and nothing warned). Root may
/// write anywhere here: a path under a regular file stands for a
/// directory the node may not write.
#[test]
fn a_state_dir_that_cannot_take_files_is_said_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), "a file").unwrap();
    let node = Node::start(
        dir.path(),
        &config(
            "{ kind: embedded, path: ./data }",
            "state_dir: ./blocker/state\n",
        ),
    );
    node.wait_log("cannot be kept, so a restart while the store", 1);
    assert!(node.logs().contains("state_dir "), "{}", node.logs());
    // It serves all the same.
    assert_eq!(node.send(&Req::get("/app/x").bearer(&token())).status, 200);
    // A usable one says nothing, and leaves no probe behind.
    let ok = tempfile::tempdir().unwrap();
    let node = Node::start(ok.path(), &config("{ kind: embedded, path: ./data }", ""));
    assert_eq!(node.send(&Req::get("/app/x").bearer(&token())).status, 200);
    assert!(!node.logs().contains("cannot be kept"), "{}", node.logs());
    let probes = std::fs::read_dir(ok.path().join("data"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().contains("probe")
        })
        .count();
    assert_eq!(probes, 0);
}
