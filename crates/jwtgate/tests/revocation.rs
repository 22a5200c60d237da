//! The token blacklist seen from outside (SPEC §3.4): a logout answered by
//! the gateway or forwarded, the revoked token refused on every route and on
//! every node sharing the store, durability across `kill -9` (embedded), a
//! Redis outage and the catch-up after it, `pool_backlog` failing fast, and
//! `token explain` reporting revocations. Real binary, real recording
//! upstream, real `redis-server` processes started and stopped here.
//!
//! What it does not cover: Redis Cluster, which lives in
//! `revocation_cluster.rs`, a test binary of its own so that its six
//! redis-server processes do not skew the timings measured here.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jwtgate_testkit::{RedisServer, ACL_DEFAULT_NO_KEYS, ACL_PASSWORD, ACL_USER};
use serde_json::json;
use support::*;

const SECRET: &str = "alice-secret-0123456789abcdefghij";
const REVOKED: &str = "JWT token has been revoked";
const LOGOUT: &str = "/app/logout";
const UNAVAILABLE: &str = "revocation store unavailable";

/// The Redis tests measure latencies and race a sleeping Redis: they run one
/// at a time so that they do not steal each other's two cores.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------
// Tokens, configs, assertions
// ---------------------------------------------------------------------------

/// A fresh, distinct token of consumer `alice`, valid for an hour (a unique
/// `jti`, so two tokens minted in the same second differ).
fn alice_token() -> String {
    alice_token_with_exp(now() + 3600)
}

fn alice_token_with_exp(exp: i64) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    sign_hs(
        "HS256",
        SECRET,
        json!({"key": "user123", "exp": exp, "jti": format!("jti-{}-{n}", std::process::id())}),
    )
}

/// Lower-case hex SHA-256 of the token's signing input, computed here
/// independently of the product: what SPEC §3.4 and §3.11 say the
/// blacklist holds.
fn sha256_hex(token: &str) -> String {
    sha256(token).iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(token: &str) -> Vec<u8> {
    let signing_input = &token[..token.rfind('.').expect("a JWS")];
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, signing_input.as_bytes())
        .as_ref()
        .to_vec()
}

fn embedded_store() -> &'static str {
    "{ kind: embedded, path: ./data }"
}

/// Consumer `alice`; route `app` (`/app/*`, logout `POST_/app/logout`,
/// answered by the gateway) to the recording upstream; route `other`
/// (`/other/*`, echo, no logout path); route `lenient` (`/lenient/*`, echo,
/// an hour of leeway, so an expired token is still accepted there); plus
/// `extra_routes`.
fn config(store: &str, up: &Upstream, extra_routes: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
store: {store}
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: app
    paths: ["/app/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{ use_jwt_blacklist_revoking: true, logout_path: "POST_/app/logout", logout_forward: false }}
  - name: other
    paths: ["/other/*"]
    upstream: {{ echo: true }}
    jwt: {{}}
  - name: lenient
    paths: ["/lenient/*"]
    upstream: {{ echo: true }}
    jwt: {{ leeway_seconds: 3600 }}
{extra_routes}"#,
        node = up.node()
    )
}

/// Something that answers HTTP: the harness's [`Gateway`] or a [`Node`].
trait Front {
    fn send(&self, req: &Req) -> Response;
    fn logs(&self) -> String;
    fn get_with(&self, token: &str, target: &str) -> Response {
        self.send(&Req::get(target).bearer(token))
    }
}

impl Front for Gateway {
    fn send(&self, req: &Req) -> Response {
        Gateway::send(self, req)
    }
    fn logs(&self) -> String {
        Gateway::logs(self)
    }
}

fn logout(gw: &impl Front, token: &str) -> Response {
    gw.send(&Req::post(LOGOUT).bearer(token))
}

fn get_app(gw: &impl Front, token: &str) -> Response {
    gw.send(&Req::get("/app/orders").bearer(token))
}

fn assert_logged_out(gw: &impl Front, resp: &Response) {
    assert_eq!(
        (resp.status, resp.message()),
        (200, Some("logged out".to_owned())),
        "expected 200 {{\"message\":\"logged out\"}}; got {} {:?}\n--- gateway ---\n{}",
        resp.status,
        resp.text(),
        gw.logs()
    );
    assert_eq!(resp.json(), json!({"message": "logged out"}));
}

fn assert_revoked(resp: &Response) {
    assert_refused(resp, REVOKED, "jwtgate", true);
}

fn assert_passes(gw: &impl Front, token: &str, what: &str) {
    let resp = get_app(gw, token);
    assert_eq!(
        resp.status,
        200,
        "{what}: expected the token to pass; got {} {:?}\n--- gateway ---\n{}",
        resp.status,
        resp.text(),
        gw.logs()
    );
}

/// Polls `gw` until `token` is refused as revoked; returns how long it took.
/// Panics after `timeout`, or on any answer other than 200 or 401 revoked.
fn wait_refused(gw: &impl Front, token: &str, timeout: Duration, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let resp = get_app(gw, token);
        match resp.status {
            401 => {
                assert_revoked(&resp);
                return start.elapsed();
            }
            200 => {}
            other => panic!(
                "{what}: unexpected {other} {:?}\n--- gateway ---\n{}",
                resp.text(),
                gw.logs()
            ),
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: the token was still accepted after {timeout:?}\n--- gateway ---\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Logs out fresh tokens on `gw` until one is answered 200 (a 503 is
/// expected while the store recovers); returns that token and the time it
/// took. Fresh tokens each time, so that an attempt that timed out after
/// reaching the store cannot blur the next one.
fn logout_until_accepted(gw: &impl Front, timeout: Duration, what: &str) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let token = alice_token();
        let resp = logout(gw, &token);
        match resp.status {
            200 => {
                assert_logged_out(gw, &resp);
                return (token, start.elapsed());
            }
            503 => assert_eq!(assert_json_error(&resp, 503), UNAVAILABLE),
            other => panic!(
                "{what}: logout answered {other} {:?}\n--- gateway ---\n{}",
                resp.text(),
                gw.logs()
            ),
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: logouts still failed after {timeout:?}\n--- gateway ---\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

// ---------------------------------------------------------------------------
// A gateway process the test can kill hard, stop, and start again
// ---------------------------------------------------------------------------

/// `jwtgate run` on a config file the test owns, so that it can be killed
/// with SIGKILL or stopped with SIGTERM and started again on the same file
/// and store directory (the harness's [`Gateway`] owns its directory and
/// removes it on drop). Killed (SIGKILL) on drop.
struct Node {
    addr: SocketAddr,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(config: &Path) -> Node {
        Node::start_via(config, &[])
    }

    /// Started through `wrapper` (a program and its arguments, given the
    /// gateway's command line after them), which must exec it.
    fn start_via(config: &Path, wrapper: &[&str]) -> Node {
        let dir = config.parent().unwrap();
        let mut command = match wrapper {
            [] => Command::new(BIN),
            [program, args @ ..] => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
        };
        let mut child = command
            .arg("run")
            .arg("--config")
            .arg(config)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {BIN}: {e}"));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        collect_lines(child.stderr.take().unwrap(), logs.clone(), Some(tx));
        collect_lines(child.stdout.take().unwrap(), logs.clone(), None);
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = listening_addr(&line) {
                        break addr;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "gateway did not start ({e:?}); output:\n{}",
                        logs.lock().unwrap().join("\n")
                    );
                }
            }
        };
        Node { addr, child, logs }
    }

    /// `kill -9`: no chance to flush or clean up.
    fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit within 15 s of SIGTERM; output:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Front for Node {
    fn send(&self, req: &Req) -> Response {
        req.try_send(self.addr).unwrap_or_else(|e| {
            panic!(
                "request {} {} failed: {e}\n--- gateway output ---\n{}",
                req.method,
                req.target,
                self.logs()
            )
        })
    }
    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_lines(
    pipe: impl Read + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { break };
            let line = strip_ansi(&String::from_utf8_lossy(&line));
            logs.lock().unwrap().push(line.clone());
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    });
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

// ---------------------------------------------------------------------------
// An upstream that refuses: 500 to every request
// ---------------------------------------------------------------------------

/// A loopback HTTP/1.1 server answering `500` to every request (the
/// harness's recording upstream always answers 200), counting requests.
/// Its thread lives until the test process exits.
struct FailingUpstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl FailingUpstream {
    fn start() -> FailingUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || answer_500(&mut stream, &counter));
            }
        });
        FailingUpstream { addr, hits }
    }

    fn node(&self) -> String {
        self.addr.to_string()
    }
}

/// Reads one request head (the logout requests here have no body) and
/// answers 500, closing the connection.
fn answer_500(stream: &mut TcpStream, hits: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let body = b"upstream refused";
    let _ = write!(
        stream,
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

// ---------------------------------------------------------------------------
// 1. Logout basics (embedded store)
// ---------------------------------------------------------------------------

#[test]
fn logout_is_answered_by_the_gateway_and_the_token_is_refused_on_every_route() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(embedded_store(), &up, ""));
    let token = alice_token();
    let sibling = alice_token();

    assert_passes(&gw, &token, "before logout");
    assert_eq!(gw.get_with(&token, "/other/x").status, 200);
    let before = up.count();

    let resp = logout(&gw, &token);
    assert_eq!(
        up.count(),
        before,
        "the logout was proxied to the upstream; with logout_forward: false the \
         gateway answers it itself (SPEC §3.4): {:?}",
        up.records().last()
    );
    assert_logged_out(&gw, &resp);

    // Refused on the logout's own route, on a route without a logout path,
    // and on the logout path itself.
    assert_revoked(&get_app(&gw, &token));
    assert_revoked(&gw.get_with(&token, "/other/x"));
    assert_revoked(&logout(&gw, &token));
    assert_eq!(up.count(), before, "a revoked token reached the upstream");

    // Another token of the same consumer is unaffected.
    assert_passes(&gw, &sibling, "another token of the same consumer");
    assert_eq!(gw.get_with(&sibling, "/other/x").status, 200);
}

#[test]
fn the_logout_path_needs_a_valid_token_and_a_refused_one_revokes_nothing() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(embedded_store(), &up, ""));
    let good = alice_token();
    let expired = alice_token_with_exp(now() - 120);
    // The lenient route's leeway still accepts the expired token: that is how
    // this test sees whether a logout attempt with it wrote anything.
    assert_eq!(gw.get_with(&expired, "/lenient/x").status, 200);
    let up_before = up.count();

    let post = |req: Req| gw.send(&req);
    assert_refused(
        &post(Req::post(LOGOUT)),
        "Missing JWT token in request",
        "jwtgate",
        false,
    );
    let cases = [
        ("abc.def", "JWT token invalid"),
        (&tamper_signature(&good), "failed to verify jwt"),
        (&expired, "failed to verify jwt"),
        (
            &sign_hs(
                "HS256",
                SECRET,
                json!({"key": "nobody", "exp": now() + 600}),
            ),
            "Invalid user key in JWT token",
        ),
        (
            &sign_hs("HS256", SECRET, json!({"exp": now() + 600})),
            "missing user key in JWT token",
        ),
    ];
    for (token, message) in cases {
        assert_refused(
            &post(Req::post(LOGOUT).bearer(token)),
            message,
            "jwtgate",
            true,
        );
    }
    assert_eq!(
        up.count(),
        up_before,
        "a refused logout reached the upstream"
    );

    // Nothing was written: the good token and the expired one (where its
    // route still accepts it) pass.
    assert_passes(&gw, &good, "after refused logouts");
    assert_eq!(
        gw.get_with(&expired, "/lenient/x").status,
        200,
        "a logout refused as expired revoked the token anyway\n{}",
        gw.logs()
    );

    // Not the logout path: another method, or another path. Proxied.
    for req in [
        Req::get(LOGOUT).bearer(&good),
        Req::post("/app/logoutx").bearer(&good),
        Req::post("/app/logout/more").bearer(&good),
    ] {
        let resp = gw.send(&req);
        assert_eq!(
            resp.status,
            200,
            "{} {}: {:?}",
            req.method,
            req.target,
            resp.text()
        );
        assert_eq!(
            resp.text(),
            "upstream ok",
            "{} {} was not proxied",
            req.method,
            req.target
        );
        let last = up.last();
        assert_eq!(
            (last.method.as_str(), last.path()),
            (req.method.as_str(), req.target.as_str())
        );
    }
    assert_passes(&gw, &good, "after requests that are not a logout");

    // The logout path is matched on the normalised path (SPEC §3.3).
    let dotted = alice_token();
    let resp = gw.send(&Req::post("/app/x/../logout").bearer(&dotted));
    assert_logged_out(&gw, &resp);
    assert_revoked(&get_app(&gw, &dotted));
    assert_passes(&gw, &good, "after another token's logout");
}

#[test]
fn forwarded_logout_revokes_only_when_the_upstream_answers_2xx() {
    let up = Upstream::start();
    let failing = FailingUpstream::start();
    let extra = format!(
        r#"  - name: fwd
    paths: ["/fwd/*"]
    upstream: {{ nodes: ["{ok}"] }}
    jwt: {{ use_jwt_blacklist_revoking: true, logout_path: "POST_/fwd/logout", logout_forward: true }}
  - name: fail
    paths: ["/fail/*"]
    upstream: {{ nodes: ["{bad}"] }}
    jwt: {{ use_jwt_blacklist_revoking: true, logout_path: "POST_/fail/logout", logout_forward: true }}
"#,
        ok = up.node(),
        bad = failing.node()
    );
    let gw = Gateway::start(&config(embedded_store(), &up, &extra));

    // Upstream 200: the client gets the upstream's answer, then the token is
    // revoked everywhere.
    let token = alice_token();
    let resp = gw.send(&Req::post("/fwd/logout").bearer(&token));
    assert_eq!(
        (resp.status, resp.text()),
        (200, "upstream ok".to_owned()),
        "a forwarded logout returns the upstream's response\n{}",
        gw.logs()
    );
    let seen = up.last();
    assert_eq!((seen.method.as_str(), seen.path()), ("POST", "/fwd/logout"));
    assert_eq!(seen.header("x-consumer-username"), Some("alice"));
    assert_revoked(&gw.get_with(&token, "/fwd/x"));
    assert_revoked(&get_app(&gw, &token));

    // Upstream 500: passed through, and the token is NOT revoked.
    let token = alice_token();
    let resp = gw.send(&Req::post("/fail/logout").bearer(&token));
    assert_eq!(resp.status, 500, "{:?}\n{}", resp.text(), gw.logs());
    assert_eq!(failing.hits.load(Ordering::SeqCst), 1);
    assert_passes(&gw, &token, "after a logout the upstream refused");
    assert_eq!(gw.get_with(&token, "/fail/x").status, 500);
    assert_eq!(failing.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn check_requires_a_logout_path_when_revoking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: app
    paths: ["/app/*"]
    upstream: {{ echo: true }}
    jwt: {{ use_jwt_blacklist_revoking: true }}
"#
        ),
    )
    .unwrap();
    let out = run_cli(&["check", "--config", path.to_str().unwrap()], dir.path());
    assert_ne!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.all().contains("routes[0].jwt.logout_path"),
        "the error must name routes[0].jwt.logout_path:\n{}",
        out.all()
    );
}

// ---------------------------------------------------------------------------
// 2. Embedded: durable across kill -9, digests only; 6. explain
// ---------------------------------------------------------------------------

#[test]
fn embedded_revocation_survives_kill_9_holds_no_token_and_explain_reports_it() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jwtgate.yaml");
    std::fs::write(&cfg, config(embedded_store(), &up, "")).unwrap();
    let token = alice_token();
    let sibling = alice_token();

    let node = Node::start(&cfg);
    assert_passes(&node, &token, "before logout");
    assert_logged_out(&node, &logout(&node, &token));
    // 200 means on disk: kill -9 right after it, no graceful anything.
    node.kill_hard();

    let node = Node::start(&cfg);
    assert_revoked(&get_app(&node, &token));
    assert_revoked(&node.get_with(&token, "/other/x"));
    assert_passes(&node, &sibling, "another token after the restart");

    // The store holds the SHA-256 of the token, never the token.
    let files = files_under(&dir.path().join("data"));
    assert!(!files.is_empty(), "no store file under data/");
    let jti = payload_of(&token)["jti"].as_str().unwrap().to_owned();
    let segments: Vec<&str> = token.split('.').collect();
    let mut digest_found = false;
    for (path, bytes) in &files {
        for needle in [token.as_str(), segments[1], segments[2], jti.as_str()] {
            assert!(
                !contains(bytes, needle.as_bytes()),
                "{} contains part of the raw token ({needle:?})",
                path.display()
            );
        }
        digest_found |= contains(bytes, &sha256(&token));
    }
    assert!(
        digest_found,
        "no store file holds the token's SHA-256: is the store where the config says?"
    );

    // SIGTERM: graceful stop, exit 0 (SPEC §1); it also releases the file.
    let status = node.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let dir_path = dir.path();
    let explain = |t: &str| {
        run_cli(
            &[
                "token",
                "explain",
                t,
                "--config",
                cfg.to_str().unwrap(),
                "--route",
                "app",
            ],
            dir_path,
        )
    };
    let store = dir.path().join("data/revocations.redb");
    let stored = std::fs::read(&store).unwrap();
    let out = explain(&token);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("revocation:") && l.contains("REVOKED")),
        "explain must report the revocation:\n{}",
        out.all()
    );
    let out = explain(&sibling);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("revocation:") && l.contains("not revoked")),
        "{}",
        out.all()
    );
    // Read, not written: explain had opened the store for writing, which
    // rewrote part of it at every run (found by an outside audit).
    assert!(
        std::fs::read(&store).unwrap() == stored,
        "explain changed the store's file"
    );
}

/// A node on the embedded store that logged alice's token out, stopped:
/// its upstream, directory, config file and the token.
fn a_stopped_node_with_one_logout() -> (Upstream, tempfile::TempDir, PathBuf, String) {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jwtgate.yaml");
    std::fs::write(&cfg, config(embedded_store(), &up, "")).unwrap();
    let token = alice_token();
    let node = Node::start(&cfg);
    assert_logged_out(&node, &logout(&node, &token));
    assert!(node.terminate().success());
    (up, dir, cfg, token)
}

/// A store file damaged on disk is found at start, with the file named: a
/// flipped bit inside a stored digest let that logged-out token pass again
/// (redb reads pages without checking them), and a damaged page made redb
/// panic at the first read. The start now reads every page against its
/// checksum (redb's integrity check) and refuses a file that fails it.
#[test]
fn an_embedded_store_damaged_on_disk_is_refused_at_start_with_the_file_named() {
    let (_up, dir, cfg, token) = a_stopped_node_with_one_logout();

    let store = dir.path().join("data/revocations.redb");
    let mut bytes = std::fs::read(&store).unwrap();
    let digest = sha256(&token);
    let at = bytes
        .windows(digest.len())
        .position(|w| w == digest.as_slice())
        .expect("the store holds the token's digest");
    bytes[at + 7] ^= 0x01;
    std::fs::write(&store, &bytes).unwrap();

    match Gateway::start_in(dir, cfg) {
        Ok(gw) => panic!(
            "started on a damaged store; the token: {}\n{}",
            get_app(&gw, &token).status,
            gw.logs()
        ),
        Err(logs) => {
            assert!(
                logs.contains("revocations.redb") && logs.contains("is damaged"),
                "{logs}"
            );
            assert!(!logs.contains("panicked"), "{logs}");
        }
    }
}

/// A store file whose pages are damaged makes redb panic while it opens
/// the file: the start is still refused with the file named, and the
/// panic is one line in the log's layout, not the standard hook's lines
/// of plain text (an outside audit: with `JWTGATE_LOG_FORMAT=json`, a
/// dozen lines that were no JSON, the backtrace's with `RUST_BACKTRACE`).
#[test]
fn a_panic_on_a_damaged_store_is_one_line_of_the_json_log() {
    let (_up, dir, cfg, _) = a_stopped_node_with_one_logout();

    let store = dir.path().join("data/revocations.redb");
    let mut bytes = std::fs::read(&store).unwrap();
    for b in bytes.iter_mut().skip(8192).step_by(13) {
        *b ^= 0xff;
    }
    std::fs::write(&store, &bytes).unwrap();
    let out = run_cli_env(
        &["run", "--config", cfg.to_str().unwrap()],
        dir.path(),
        &[("JWTGATE_LOG_FORMAT", "json"), ("RUST_BACKTRACE", "1")],
    );
    assert_eq!(out.code(), Some(1), "{}", out.all());
    let mut panics = 0;
    for line in out.stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{}", out.all()));
        if v["target"] == "jwtgate::panic" {
            panics += 1;
            assert!(
                v["backtrace"].as_str().is_some_and(|b| b.contains("redb")),
                "{line}"
            );
        }
    }
    assert_eq!(panics, 1, "redb panics on these pages: {}", out.all());
    assert!(
        out.stderr.contains("revocations.redb: is damaged"),
        "{}",
        out.all()
    );
}

/// A full disk makes the embedded store's writes fail (503); once there is
/// room again, logouts are taken without a restart. redb refuses every
/// write after an I/O error until the database is opened again, which the
/// store now does itself (before, every logout answered 503 until the node
/// restarted, while `/status` said ready). The disk fills here as a
/// file-size limit set on the running node (`prlimit`, util-linux): writes
/// past it fail with EFBIG, as they would with ENOSPC. The node's shell
/// ignores SIGXFSZ first, which the limit would otherwise end it with.
#[test]
fn an_embedded_store_takes_logouts_again_once_the_disk_has_room() {
    let up = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jwtgate.yaml");
    std::fs::write(&cfg, config(embedded_store(), &up, "")).unwrap();
    let node = Node::start_via(&cfg, &["sh", "-c", "trap '' XFSZ; exec \"$0\" \"$@\""]);
    let pid = node.child.id().to_string();
    let limit_file_size = |limit: &str| {
        let status = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--fsize={limit}")])
            .status()
            .expect("prlimit (util-linux) must be installed");
        assert!(status.success(), "prlimit --fsize={limit} failed");
    };

    let token = alice_token();
    limit_file_size("4096:unlimited");
    let resp = logout(&node, &token);
    assert_eq!(resp.status, 503, "a logout on a full disk: {}", resp.text());
    assert_eq!(resp.message().as_deref(), Some(UNAVAILABLE));
    // Logged as what it was, not as the valid token's `ok` (an outside
    // audit found failed logouts counted among the accepted requests).
    let line = eventually(Duration::from_secs(5), || {
        node.logs()
            .lines()
            .any(|l| l.contains("jwtgate::access") && l.contains("status=503"))
    });
    assert!(line, "{}", node.logs());
    let logs = node.logs();
    let failed = logs
        .lines()
        .find(|l| l.contains("jwtgate::access") && l.contains("status=503"))
        .unwrap();
    assert!(failed.contains("auth=store_unavailable"), "{failed}");
    assert_passes(&node, &token, "a logout that answered 503");

    limit_file_size("unlimited:unlimited");
    assert_logged_out(&node, &logout(&node, &token));
    assert_revoked(&get_app(&node, &token));
    let other = alice_token();
    assert_logged_out(&node, &logout(&node, &other));
    let logged = eventually(Duration::from_secs(5), || {
        let logs = node.logs();
        logs.contains("revocation store I/O error")
            && logs.contains("opened again after an I/O error")
    });
    assert!(logged, "{}", node.logs());

    // What was taken after the error is on disk.
    node.kill_hard();
    let node = Node::start(&cfg);
    assert_revoked(&get_app(&node, &token));
    assert_revoked(&get_app(&node, &other));
}

fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// 3. Redis: two nodes, propagation, outage, catch-up; 6. explain
// ---------------------------------------------------------------------------

#[test]
fn redis_revocations_propagate_survive_an_outage_and_catch_up() {
    let _serial = serial();
    let mut server = RedisServer::start();
    let up = Upstream::start();
    // A second logout route with leeway: its entries last exp + leeway.
    let lean = r#"  - name: lean
    paths: ["/lean/*"]
    upstream: { echo: true }
    jwt: { use_jwt_blacklist_revoking: true, logout_path: "POST_/lean/logout", leeway_seconds: 30 }
"#;
    let yaml = config(&server.store_yaml(), &up, lean);
    let a = Gateway::start(&yaml);
    let b = Gateway::start(&yaml);
    const ZSET: &str = "{jwtgate}:revoked";

    // Propagation A → B, measured from A's 200 to B's first refusal.
    let mut revoked = Vec::new();
    let mut delays = Vec::new();
    for _ in 0..20 {
        let token = alice_token();
        assert_passes(&b, &token, "B, before the logout on A");
        let resp = logout(&a, &token);
        assert_logged_out(&a, &resp);
        delays.push(wait_refused(
            &b,
            &token,
            Duration::from_secs(15),
            "B after a logout on A",
        ));
        revoked.push(token);
    }
    delays.sort();
    eprintln!(
        "revocation propagation A -> B over {} logouts (standalone Redis): p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        percentile(&delays, 50),
        percentile(&delays, 99),
        delays[delays.len() - 1]
    );

    // In Redis: the hex SHA-256 of the signing input with the token's exp
    // plus the largest leeway of the gateway (the `lenient` route's hour)
    // as score; never the token.
    let first = revoked[0].clone();
    let exp = payload_of(&first)["exp"].as_i64().unwrap();
    let score = server.cli(&["ZSCORE", ZSET, &sha256_hex(&first)]);
    assert_eq!(
        score.parse::<f64>().ok(),
        Some((exp + 3600) as f64),
        "ZSCORE {ZSET} <sha256 hex> must be the token's exp + 3600 ({}); got {score:?}",
        exp + 3600
    );
    let members = server.cli(&["ZRANGE", ZSET, "0", "-1"]);
    let members: Vec<&str> = members.lines().collect();
    assert_eq!(members.len(), revoked.len(), "{members:?}");
    for m in &members {
        assert!(
            m.len() == 64
                && m.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "member {m:?} is not a lower-case hex SHA-256"
        );
    }
    let everything = format!(
        "{}\n{}",
        server.cli(&["ZRANGE", ZSET, "0", "-1", "WITHSCORES"]),
        server.cli(&["XRANGE", "{jwtgate}:feed", "-", "+"])
    );
    for t in &revoked {
        let sig = t.split('.').nth(2).unwrap();
        assert!(
            !everything.contains(t.as_str()) && !everything.contains(sig),
            "Redis holds a raw token"
        );
    }

    // Whichever route the logout came through, the entry lasts until exp
    // plus the largest leeway of any route, while some route could still
    // accept the token (SPEC §3.11).
    let leeway = alice_token();
    assert_logged_out(&a, &a.send(&Req::post("/lean/logout").bearer(&leeway)));
    let exp = payload_of(&leeway)["exp"].as_i64().unwrap();
    let score = server.cli(&["ZSCORE", ZSET, &sha256_hex(&leeway)]);
    assert_eq!(
        score.parse::<f64>().ok(),
        Some((exp + 3600) as f64),
        "a logout on a route with leeway_seconds: 30 must last until exp + 3600 ({}); got {score:?}",
        exp + 3600
    );
    wait_refused(
        &b,
        &leeway,
        Duration::from_secs(15),
        "B, logout with leeway on A",
    );
    revoked.push(leeway);

    // A refused logout writes nothing.
    let good = alice_token();
    assert_refused(
        &logout(&a, &tamper_signature(&good)),
        "failed to verify jwt",
        "jwtgate",
        true,
    );
    assert_eq!(server.cli(&["ZCARD", ZSET]), revoked.len().to_string());

    // explain asks the running store.
    let explain = |t: &str| {
        run_cli(
            &[
                "token",
                "explain",
                t,
                "--config",
                a.config_path.to_str().unwrap(),
                "--route",
                "app",
            ],
            a.dir.path(),
        )
    };
    let out = explain(&first);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("revocation:") && l.contains("REVOKED")),
        "{}",
        out.all()
    );
    let out = explain(&good);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    assert!(out.stdout.contains("not revoked"), "{}", out.all());

    // Redis down: both nodes keep refusing what they know and accepting
    // valid tokens; a logout fails fast with 503 and revokes nothing.
    server.kill();
    let outage = Instant::now();
    // Fails fast, not after a client's patience: three 300 ms connect
    // attempts, with room for a loaded machine (the figures are printed).
    let bound = Duration::from_secs(10);
    let mut outage_503 = Vec::new();
    for _ in 0..3 {
        let token = alice_token();
        let start = Instant::now();
        let resp = logout(&a, &token);
        let took = start.elapsed();
        assert_eq!(
            assert_json_error(&resp, 503),
            UNAVAILABLE,
            "logout with Redis down\n{}",
            a.logs()
        );
        assert!(
            took < bound,
            "a logout with Redis down took {took:?} (bound {bound:?})"
        );
        outage_503.push(took);
        assert_passes(&a, &token, "a token whose logout failed");
    }
    eprintln!("logout with Redis down: 503 after {outage_503:?}");
    // A node started while Redis is down, with no local snapshot of the
    // blacklist (its own state_dir is new), still starts, but fails closed
    // for tokens it cannot check (SPEC §3.11); routes that need no token
    // serve.
    let c = Gateway::start(&yaml);
    assert_eq!(
        assert_json_error(&get_app(&c, &good), 503),
        UNAVAILABLE,
        "C, started with Redis down and no snapshot"
    );
    assert_eq!(
        assert_json_error(&logout(&c, &alice_token()), 503),
        UNAVAILABLE
    );
    // Keep Redis down for 4 s, checking all along, so that the sync tasks'
    // reconnect backoff reaches its cap before Redis returns.
    while outage.elapsed() < Duration::from_secs(4) {
        for t in &revoked {
            assert_revoked(&get_app(&b, t));
            assert_revoked(&get_app(&a, t));
        }
        assert_passes(&b, &good, "B with Redis down");
        assert_passes(&a, &good, "A with Redis down");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Redis back (empty: no persistence): logouts work again without a
    // restart, and B learns of them.
    server.restart();
    let (after, took) = logout_until_accepted(&a, Duration::from_secs(15), "A after Redis restart");
    eprintln!("logout on A accepted again {took:?} after Redis restarted");
    let took = wait_refused(&b, &after, Duration::from_secs(10), "B after Redis restart");
    eprintln!("B refused the post-restart revocation after {took:?}");
    // C serves once its first load is done: its retries back off up to 2 s
    // apart while Redis was down, so it may still answer 503 at first.
    let loaded = eventually(Duration::from_secs(10), || {
        get_app(&c, &after).status != 503
    });
    assert!(loaded, "C never loaded the blacklist:\n{}", c.logs());
    let took = wait_refused(&c, &after, Duration::from_secs(10), "C after Redis restart");
    eprintln!("C (started during the outage) refused it after {took:?}");
    assert_eq!(
        server
            .cli(&["ZSCORE", ZSET, &sha256_hex(&after)])
            .parse::<f64>()
            .ok(),
        payload_of(&after)["exp"].as_f64().map(|exp| exp + 3600.0)
    );
    // What the nodes knew before the outage is still refused.
    for t in &revoked {
        assert_revoked(&get_app(&b, t));
    }
    assert_passes(&b, &good, "B after Redis restart");
    assert_passes(&c, &good, "C once its blacklist loaded");

    // Redis came back empty. A and B had read its feed further than it now
    // goes, so they know it lost entries, and write back what they hold: a
    // node started now refuses the tokens revoked before the loss too (it
    // had let them in, and disagreed with A and B until they expired).
    let said = |gw: &Gateway| gw.logs().contains("revocation store lost data");
    assert!(
        eventually(Duration::from_secs(10), || said(&a) && said(&b)),
        "A:\n{}\nB:\n{}",
        a.logs(),
        b.logs()
    );
    for t in &revoked {
        let back = eventually(Duration::from_secs(10), || {
            !server.cli(&["ZSCORE", ZSET, &sha256_hex(t)]).is_empty()
        });
        assert!(back, "a revocation from before the loss is in Redis again");
    }
    let d = Gateway::start(&yaml);
    for t in &revoked {
        assert_revoked(&get_app(&d, t));
    }
    assert_passes(&d, &good, "D, started after the loss");
}

#[test]
fn redis_start_loads_a_large_blacklist() {
    let _serial = serial();
    let server = RedisServer::start();
    let up = Upstream::start();
    let token = alice_token();
    let exp = payload_of(&token)["exp"].as_i64().unwrap();
    // 100 000 entries shaped like SHA-256 digests (uniform hex, from SHA-1
    // padded to 64 digits), and the real token's digest with the lowest
    // score, last in the order a node reads them (highest expiry first),
    // so that only a complete, paged load can know it.
    let script = "for i = 1, 100000 do local h = redis.sha1hex(tostring(i)) \
                  redis.call('ZADD', KEYS[1], ARGV[1] + 1, h .. string.sub(h, 1, 24)) end \
                  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) return redis.call('ZCARD', KEYS[1])";
    let count = server.cli(&[
        "EVAL",
        script,
        "1",
        "{jwtgate}:revoked",
        &exp.to_string(),
        &sha256_hex(&token),
    ]);
    assert_eq!(count, "100001");

    let start = Instant::now();
    let gw = Gateway::start(&config(&server.store_yaml(), &up, ""));
    let listening = start.elapsed();
    let resp = get_app(&gw, &token);
    let answered = start.elapsed();
    assert_revoked(&resp);
    assert_passes(&gw, &alice_token(), "a token not in the blacklist");
    let load_ms = gw
        .logs()
        .lines()
        .find(|l| l.contains("revocation store ready"))
        .and_then(|l| l.split("load_ms=").nth(1))
        .map(|v| {
            v.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        });
    eprintln!(
        "100 001 revocations: store load_ms={load_ms:?}; `listening` after {listening:?}; first refusal after {answered:?} (debug build)"
    );
}

/// A node stopped, Redis restarted empty (a host reboot), the node
/// started again: it loaded the empty store, ignored its local copy, and
/// let every token it had refused back in (its copy was not even written
/// at the stop, only 5 s after a change). The copy now records the store's
/// generation and is written at the stop; a node that finds the store
/// changed since writes its copy back before loading.
#[test]
fn regression_a_node_restarted_after_redis_lost_its_data_keeps_refusing() {
    let _serial = serial();
    let mut server = RedisServer::start();
    let up = Upstream::start();
    let state = tempfile::tempdir().unwrap();
    let yaml = format!(
        "{}state_dir: {:?}\n",
        config(&server.store_yaml(), &up, ""),
        state.path().display().to_string()
    );
    let a = Gateway::start(&yaml);
    let token = alice_token();
    assert_logged_out(&a, &logout(&a, &token));
    a.signal("TERM");
    let mut a = a;
    assert!(a.exited_within(Duration::from_secs(15)), "{}", a.logs());

    server.restart();
    const ZSET: &str = "{jwtgate}:revoked";
    assert_eq!(server.cli(&["ZCARD", ZSET]), "0", "Redis came back empty");
    let b = Gateway::start(&yaml);
    assert_revoked(&get_app(&b, &token));
    assert!(
        b.logs().contains("revocation store lost data"),
        "{}",
        b.logs()
    );
    // Written back, so every node refuses it, not only this one.
    assert!(!server
        .cli(&["ZSCORE", ZSET, &sha256_hex(&token)])
        .is_empty());
    assert_passes(&b, &alice_token(), "a token never logged out");
}

/// A Redis whose default user needs `password`, and a user `ops` the
/// test speaks as (`ops(args)`), so that it can change the default
/// user's password and rights under the nodes.
fn redis_with_password(server: &RedisServer, password: &str) -> impl Fn(&[&str]) -> String {
    server.cli(&[
        "ACL",
        "SETUSER",
        "ops",
        "on",
        ">ops-pass-0123",
        "~*",
        "&*",
        "+@all",
    ]);
    server.cli(&["CONFIG", "SET", "requirepass", password]);
    let port = server.port.to_string();
    move |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &port,
                "--user",
                "ops",
                "--pass",
                "ops-pass-0123",
                "--no-auth-warning",
            ])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

const NODE_PASSWORD: &str = "node-pass-0123456789";

/// Two nodes on a Redis whose default user needs [`NODE_PASSWORD`], and
/// the test's own way in (see [`redis_with_password`]).
fn two_nodes_behind_a_password() -> (
    RedisServer,
    impl Fn(&[&str]) -> String,
    Upstream,
    Gateway,
    Gateway,
) {
    let server = RedisServer::start();
    let ops = redis_with_password(&server, NODE_PASSWORD);
    let up = Upstream::start();
    let store = server
        .store_yaml()
        .replace(" }", &format!(", password: {NODE_PASSWORD} }}"));
    let a = Gateway::start(&config(&store, &up, ""));
    let b = Gateway::start(&config(&store, &up, ""));
    (server, ops, up, a, b)
}

/// `store.username`: the nodes sign in as a Redis ACL user limited to the
/// keys the README names (`~{jwtgate}:*`), where the `default` user may
/// touch none of them: logouts are taken and shared between the nodes, so
/// the user is the one signed in and the README's rights are enough. A
/// wrong password for that user: the node says the store is failing and
/// logouts are 503, never passed as done.
#[test]
fn nodes_sign_in_as_a_redis_acl_user() {
    let _serial = serial();
    let server = RedisServer::start();
    let ops = redis_with_password(&server, NODE_PASSWORD);
    assert_eq!(ops(ACL_USER), "OK");
    assert_eq!(ops(&ACL_DEFAULT_NO_KEYS), "OK");
    let up = Upstream::start();
    let as_user = |password: &str| {
        server.store_yaml().replace(
            " }",
            &format!(", username: gw, password: \"{password}\" }}"),
        )
    };
    let a = Gateway::start(&config(&as_user(ACL_PASSWORD), &up, ""));
    let b = Gateway::start(&config(&as_user(ACL_PASSWORD), &up, ""));
    let token = alice_token();
    assert_logged_out(&a, &logout(&a, &token));
    wait_refused(&b, &token, Duration::from_secs(15), "B, logout on A");
    let (token, _) = logout_until_accepted(&b, Duration::from_secs(15), "B");
    wait_refused(&a, &token, Duration::from_secs(15), "A, logout on B");
    assert!(ops(&["ZCARD", "{jwtgate}:revoked"]).starts_with('2'));
    // The README's least rights were enough for all of it.
    for n in [&a, &b] {
        assert_least_redis_rights_were_enough(&n.logs());
    }

    // The default user's password, or a wrong one, under the ACL user's
    // name: refused by Redis, said, and logouts are 503.
    for wrong in [NODE_PASSWORD, "not-the-password-0123"] {
        let c = Gateway::start(&config(&as_user(wrong), &up, ""));
        let resp = logout(&c, &alice_token());
        assert_eq!(assert_json_error(&resp, 503), UNAVAILABLE, "{wrong}");
        assert!(!c.logs().contains(wrong), "the password was logged");
    }
}

/// Redis refusing the nodes' login for a few seconds (a password rotated
/// in the wrong order) while their connections are dropped: once the login
/// works again, each node takes logouts and refuses the other's, with no
/// restart. Before, the client's reconnect met the refused AUTH and stayed
/// broken for good: no connection at all, logouts 503 in 2 ms, and tokens
/// logged out on other nodes passed (found by an outside attack).
#[test]
fn a_login_refused_for_a_while_does_not_wedge_the_store_connection() {
    let _serial = serial();
    let (_server, ops, _up, a, b) = two_nodes_behind_a_password();
    let token = alice_token();
    assert_logged_out(&a, &logout(&a, &token));
    wait_refused(
        &b,
        &token,
        Duration::from_secs(15),
        "B, before the rotation",
    );

    assert_eq!(
        ops(&["CONFIG", "SET", "requirepass", "rotated-0123456789"]),
        "OK"
    );
    ops(&["CLIENT", "KILL", "TYPE", "normal"]);
    let resp = logout(&a, &alice_token());
    assert_eq!(assert_json_error(&resp, 503), UNAVAILABLE);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ops(&["CONFIG", "SET", "requirepass", NODE_PASSWORD]), "OK");

    let (token, took) =
        logout_until_accepted(&a, Duration::from_secs(15), "A, login working again");
    eprintln!("logout on A accepted {took:?} after the password came back");
    wait_refused(&b, &token, Duration::from_secs(15), "B, logout on A");
    let (token, _) = logout_until_accepted(&b, Duration::from_secs(15), "B, login working again");
    wait_refused(&a, &token, Duration::from_secs(15), "A, logout on B");
}

/// A Redis user that may not read the feed (`XREAD`) while everything else
/// works: revocations still reach every node, by full resyncs, and the node
/// says so once, instead of a full resync and two log lines every 100 ms
/// (found by an outside attack).
#[test]
fn a_feed_the_node_may_not_read_slows_its_resyncs_and_is_said_once() {
    let _serial = serial();
    let (_server, ops, _up, a, b) = two_nodes_behind_a_password();
    assert_eq!(ops(&["ACL", "SETUSER", "default", "-xread"]), "OK");
    std::thread::sleep(Duration::from_secs(4));
    // A cut-off B learns at a resync, then gone from the store (lifted by
    // a node of another version, lost): B holds it, the store lacks it,
    // and the feed that would tell a lift from a loss cannot be read. A
    // review: the resync failed then, every time, and B took no revocation
    // again until the cut-off's retention ended (weeks).
    let field = r#"["c","alice","sub","u-x"]"#;
    let value = format!("{}:{}", now() - 1, now() + 3600);
    assert_eq!(ops(&["HSET", "{jwtgate}:subjects", field, &value]), "1");
    let cut = sign_hs(
        "HS256",
        SECRET,
        json!({"key": "user123", "sub": "u-x", "iat": now() - 10, "exp": now() + 600}),
    );
    wait_refused(&b, &cut, Duration::from_secs(10), "B, a cut-off by resync");
    assert_eq!(ops(&["HDEL", "{jwtgate}:subjects", field]), "1");
    let token = alice_token();
    assert_logged_out(&a, &logout(&a, &token));
    wait_refused(&b, &token, Duration::from_secs(10), "B, without the feed");
    std::thread::sleep(Duration::from_secs(2));
    let logs = b.logs();
    assert_eq!(
        logs.matches("the revocation feed keeps failing").count(),
        1,
        "{logs}"
    );
    let caught_up = logs.matches("reachable again; caught up").count();
    assert!(caught_up <= 1, "{caught_up} resync lines in 6 s:\n{logs}");

    assert_eq!(ops(&["ACL", "SETUSER", "default", "+xread"]), "OK");
    assert!(
        eventually(Duration::from_secs(10), || b
            .logs()
            .contains("revocation feed readable again")),
        "{}",
        b.logs()
    );
    let token = alice_token();
    assert_logged_out(&a, &logout(&a, &token));
    let took = wait_refused(&b, &token, Duration::from_secs(15), "B, the feed back");
    eprintln!("refused on B {took:?} after the logout, the feed back");
}

/// Entries a node cannot read (written by hand, by another program, by a
/// newer jwtgate) are skipped, but said in the log: a revocation a node
/// cannot read is one it does not enforce. The readable ones still hold.
#[test]
fn redis_entries_a_node_cannot_read_are_logged_not_silently_skipped() {
    let _serial = serial();
    let server = RedisServer::start();
    let up = Upstream::start();
    let token = alice_token();
    let exp = payload_of(&token)["exp"].as_i64().unwrap().to_string();
    let far = (now() + 3600).to_string();
    server.cli(&["ZADD", "{jwtgate}:revoked", &exp, &sha256_hex(&token)]);
    server.cli(&["ZADD", "{jwtgate}:revoked", &far, "not-a-digest"]);
    server.cli(&["ZADD", "{jwtgate}:revoked", &far, &"zz".repeat(32)]);
    server.cli(&["HSET", "{jwtgate}:subjects", "{\"not\":\"a key\"}", "1:2"]);

    let gw = Gateway::start(&config(&server.store_yaml(), &up, ""));
    assert_revoked(&get_app(&gw, &token));
    assert_passes(&gw, &alice_token(), "a token not in the blacklist");
    let logs = gw.logs();
    let line = |what: &str| {
        logs.lines()
            .find(|l| l.contains(&format!("unreadable {what}")))
            .unwrap_or_else(|| panic!("no log line for unreadable {what}:\n{logs}"))
            .to_owned()
    };
    let blacklist = line("blacklist");
    assert!(
        blacklist.contains("skipped=2")
            && (blacklist.contains("first=not-a-digest") || blacklist.contains("first=zzzz")),
        "{blacklist}"
    );
    assert!(line("subject cut-off").contains("skipped=1"), "{logs}");

    // The changes feed: an entry of a type this node does not know, while
    // it runs, is said too, and the feed goes on past it.
    server.cli(&["XADD", "{jwtgate}:feed", "*", "t", "z", "k", "v"]);
    let later = alice_token_with_exp(now() + 600);
    assert_logged_out(&gw, &logout(&gw, &later));
    wait_refused(
        &gw,
        &later,
        Duration::from_secs(10),
        "a logout after the unreadable feed entry",
    );
    let said = || gw.logs().contains("unreadable changes feed entry");
    assert!(
        eventually(Duration::from_secs(10), said),
        "no log line for the unreadable feed entry:\n{}",
        gw.logs()
    );
}

/// Entries that are not UTF-8 at all (another program's binary data, or
/// `redis-cli` by hand): one such field, member, feed entry or generation
/// failed the whole read of its key, the node's `/status` said `failing`,
/// and logouts on other nodes stopped reaching it while they still
/// answered `200` (an outside audit). Now they are skipped and said as the
/// other unreadable entries are, and revocations spread between nodes.
#[test]
fn regression_entries_that_are_not_utf8_are_skipped_and_revocations_still_spread() {
    let _serial = serial();
    let server = RedisServer::start();
    let up = Upstream::start();
    let far = (now() + 3600).to_string();
    server.cli_bytes(&[b"SET", b"{jwtgate}:generation", b"g\xff\xfe"]);
    server.cli_bytes(&[b"ZADD", b"{jwtgate}:revoked", far.as_bytes(), b"zz\xff"]);
    server.cli_bytes(&[b"HSET", b"{jwtgate}:subjects", b"\xff\xfe", b"1:2"]);
    server.cli_bytes(&[b"HSET", b"{jwtgate}:subjects", b"[\"c\"]", b"\xff"]);
    // The feed's last entry: where a node starting reads from.
    server.cli_bytes(&[b"XADD", b"{jwtgate}:feed", b"*", b"t", b"c", b"k", b"\xff"]);

    let a = Gateway::start(&config(&server.store_yaml(), &up, ""));
    let b = Gateway::start(&config(&server.store_yaml(), &up, ""));
    // While they run, a feed entry whose field name is not UTF-8: skipped,
    // not a failed read of the feed each time it is read again.
    server.cli_bytes(&[b"XADD", b"{jwtgate}:feed", b"*", b"\xff", b"x"]);
    let token = alice_token();
    assert_passes(&b, &token, "before the logout");
    assert_logged_out(&a, &logout(&a, &token));
    wait_refused(
        &b,
        &token,
        Duration::from_secs(10),
        "B, after a logout on A",
    );
    assert!(
        eventually(Duration::from_secs(10), || b
            .logs()
            .contains("unreadable changes feed entry")),
        "{}",
        b.logs()
    );
    assert!(!b.logs().contains("feed keeps failing"), "{}", b.logs());
    let logs = a.logs();
    for (what, skipped) in [("blacklist", 1), ("subject cut-off", 2)] {
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("unreadable {what}")))
            .unwrap_or_else(|| panic!("no log line for unreadable {what}:\n{logs}"));
        assert!(line.contains(&format!("skipped={skipped}")), "{line}");
    }
    // A generation that changes to other bytes that are not UTF-8 either
    // is a change all the same: the store lost its data, and each node
    // writes back what it knows.
    server.cli_bytes(&[b"SET", b"{jwtgate}:generation", b"h\xff\xfe"]);
    server.cli_bytes(&[b"DEL", b"{jwtgate}:revoked"]);
    let written_back = || {
        !server
            .cli(&["ZSCORE", "{jwtgate}:revoked", &sha256_hex(&token)])
            .is_empty()
    };
    assert!(
        eventually(Duration::from_secs(20), written_back),
        "the logout was not written back after the generation changed:\n{}",
        a.logs()
    );
}

// ---------------------------------------------------------------------------
// 5. pool_size / pool_backlog: fail fast when the store is busy
// ---------------------------------------------------------------------------

/// A Redis that may evict any key under memory pressure could drop the
/// blacklist and keep its generation, a loss no node sees: the node says
/// so once, at start. Redis's default (noeviction) brings no warning.
#[test]
fn a_redis_that_may_evict_the_blacklist_is_warned_about() {
    let _serial = serial();
    let warning =
        "Redis may evict the blacklist under memory pressure (maxmemory-policy allkeys-lru)";
    for (args, warned) in [
        (&["--maxmemory-policy", "allkeys-lru"][..], true),
        (&[][..], false),
    ] {
        let server = RedisServer::start_with(args);
        let up = Upstream::start();
        let store = format!("{{ kind: redis, host: 127.0.0.1, port: {} }}", server.port);
        let gw = Gateway::start(&config(&store, &up, ""));
        // Loaded (the warning comes with the first load): a logout works.
        assert_logged_out(&gw, &logout(&gw, &alice_token()));
        if warned {
            assert!(
                eventually(IO_TIMEOUT, || gw.logs().contains(warning)),
                "{}",
                gw.logs()
            );
            assert_eq!(gw.logs().matches(warning).count(), 1, "once: {}", gw.logs());
        } else {
            assert!(!gw.logs().contains("may evict"), "{}", gw.logs());
        }
    }
}

#[test]
fn redis_busy_pool_with_no_backlog_fails_fast() {
    let _serial = serial();
    // DEBUG is disabled by default since Redis 7.
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let up = Upstream::start();
    let store = format!(
        "{{ kind: redis, host: 127.0.0.1, port: {}, pool_size: 1, pool_backlog: 0, connect_timeout_ms: 1000, read_timeout_ms: 8000, send_timeout_ms: 8000 }}",
        server.port
    );
    let gw = Gateway::start(&config(&store, &up, ""));
    assert_logged_out(&gw, &logout(&gw, &alice_token()));

    // DEBUG SLEEP blocks the whole server for 5 s: time enough, on a
    // loaded machine, to see it start and send the logouts while it lasts.
    // The read timeout outlasts it: a logout that queued for the connection
    // instead of failing at once would answer after Redis woke.
    let port = server.port;
    let (woke_tx, woke_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = jwtgate_testkit::cli(port, &["DEBUG", "SLEEP", "5"]);
        let _ = woke_tx.send((Instant::now(), out));
    });
    wait_until_unresponsive(port);

    let tokens: Vec<String> = (0..5).map(|_| alice_token()).collect();
    let (tx, rx) = mpsc::channel();
    for token in tokens {
        let tx = tx.clone();
        let addr = gw.addr;
        std::thread::spawn(move || {
            let start = Instant::now();
            let resp = Req::post(LOGOUT).bearer(&token).try_send(addr);
            let _ = tx.send((resp, start.elapsed(), Instant::now(), token));
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut results = Vec::new();
    while results.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((resp, took, done, token)) => {
                let resp = resp.unwrap_or_else(|e| panic!("logout failed: {e}\n{}", gw.logs()));
                results.push((resp, took, done, token));
            }
            Err(e) => panic!(
                "only {} of 5 concurrent logouts answered within 15 s ({e:?}): one hangs\n{}",
                results.len(),
                gw.logs()
            ),
        }
    }
    let (woke, sleep_out) = woke_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("DEBUG SLEEP 5 did not return");
    assert!(sleep_out.status.success(), "DEBUG SLEEP: {sleep_out:?}");

    let summary: Vec<(u16, Duration)> = results.iter().map(|(r, t, _, _)| (r.status, *t)).collect();
    eprintln!("5 concurrent logouts while Redis sleeps (pool_size 1, backlog 0): {summary:?}");
    let fast_503 = results
        .iter()
        .filter(|(r, _, done, _)| {
            r.status == 503 && r.message().as_deref() == Some(UNAVAILABLE) && *done < woke
        })
        .count();
    assert!(
        fast_503 >= 4,
        "with pool_size 1 and pool_backlog 0, all but the one logout holding the \
         connection must get 503 at once, before Redis wakes; got {summary:?}"
    );
    for (resp, _, _, token) in &results {
        match resp.status {
            200 => assert_revoked(&get_app(&gw, token)),
            503 => assert_passes(&gw, token, "a token whose logout got 503"),
            other => panic!("unexpected {other} {:?}", resp.text()),
        }
    }
    // Redis awake: the pool is free again.
    let (_, took) = logout_until_accepted(&gw, Duration::from_secs(10), "after Redis woke");
    assert!(took < Duration::from_secs(10));
}

/// Waits (at most 5 s) until Redis on `port` no longer answers a PING within
/// 500 ms: a `DEBUG SLEEP` has started (a loaded machine may take 100 ms to
/// answer one while awake).
fn wait_until_unresponsive(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        assert!(
            Instant::now() < deadline,
            "Redis kept answering PING: DEBUG SLEEP did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The quickstart as the README runs it: a consumer's token goes through,
/// is logged out at the quickstart's logout path, and is refused after.
#[test]
fn the_quickstart_logs_a_token_out() {
    let gw = Gateway::start(&quickstart_yaml());
    let token = sign_quickstart(&["--consumer", "alice", "--claim", "sub=u-1"]);
    let orders = || gw.send(&Req::get("/v1/orders").bearer(&token));
    let before = orders();
    assert_eq!(before.status, 200, "{}", before.text());
    assert_eq!(before.json()["headers"]["x-user-id"], "u-1");
    let logout = gw.send(&Req::new("POST", "/v1/logout").bearer(&token));
    assert_eq!(logout.status, 200, "{}", logout.text());
    assert_eq!(logout.json()["message"], "logged out");
    let after = orders();
    assert_eq!(after.status, 401, "{}", after.text());
    assert_eq!(after.json()["message"], "JWT token has been revoked");
}
