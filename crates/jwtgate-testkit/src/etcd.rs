//! Real `etcd` processes for tests: one member ([`EtcdServer`]), or a
//! statically bootstrapped cluster ([`EtcdCluster`]), on free loopback ports
//! (client and peer), in temporary data directories, SIGKILLed on drop.
//!
//! Every member runs with a small heartbeat (50 ms) and election timeout
//! (500 ms) and pre-vote, so that a cluster elects a new leader within about
//! a second after its leader is killed; auto-compaction is off (tests
//! compact with [`EtcdServer::compact_to_current`]). Its zap log (level
//! `info`, JSON on stderr) is kept in memory and shown in failure messages.
//!
//! `etcdctl` (API v3) is the client: [`EtcdServer::etcdctl`] passes the
//! endpoint, the test CA (`testdata/tls/ca.crt`) for a TLS member and the
//! root user for a member with auth. Every run is bounded.
//!
//! A missing `etcd` or `etcdctl` is a loud panic that says how to install
//! them: tests that need etcd never skip.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

/// How long a member may take to answer `endpoint health` after its start.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one `etcdctl` run made by [`EtcdServer::etcdctl`].
pub const CTL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`EtcdCluster::leader`] waits for the live members to agree on a
/// live leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// `--heartbeat-interval`, in milliseconds: etcd's default. Shorter ones
/// starve on a loaded two-core machine into elections no test asked for.
pub const HEARTBEAT_MS: u64 = 100;
/// `--election-timeout`, in milliseconds (at least 5 heartbeats for etcd):
/// etcd's default.
pub const ELECTION_MS: u64 = 1000;

const POLL: Duration = Duration::from_millis(50);
/// Start attempts when the ports picked turn out to be taken meanwhile.
const START_ATTEMPTS: usize = 6;
/// Kept of a member's stderr, for failure messages.
const LOG_CAP: usize = 256 * 1024;
/// Shown of a member's stderr in a panic message.
const LOG_SHOWN: usize = 24 * 1024;

const INSTALL_HINT: &str = "Install it: apt-get install -y etcd-server etcd-client";

fn require(binary: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(binary))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{binary} not found on PATH: these tests need a real etcd. {INSTALL_HINT}")
    })
}

/// The `etcd` binary; panics with the install command when it is missing.
pub fn etcd_bin() -> PathBuf {
    require("etcd")
}

/// The `etcdctl` binary; panics with the install command when it is missing.
pub fn etcdctl_bin() -> PathBuf {
    require("etcdctl")
}

/// The CA that issued `testdata/tls/server.crt`, which a TLS member serves.
pub fn test_ca_file() -> PathBuf {
    crate::oidc::test_ca_file()
}

fn tls_file(name: &str) -> PathBuf {
    crate::oidc::repo_root().join("testdata/tls").join(name)
}

/// How to run a member.
#[derive(Clone, Debug, Default)]
pub struct EtcdOptions {
    /// Clients on `https://127.0.0.1:PORT` with `testdata/tls/server.{crt,key}`
    /// (trust [`test_ca_file`]). Peers stay on plain HTTP.
    pub tls: bool,
    /// `(user, password)`: the user is created, granted the `root` role, and
    /// auth is enabled (with `etcdctl`, against the running member), so that
    /// every client must authenticate. The user must be `root`: etcd refuses
    /// `auth enable` without a root user. The kit's `etcdctl` then passes
    /// `--user=root:PASSWORD`.
    pub auth: Option<(String, String)>,
    /// More `etcd` flags, after the kit's own (a later flag wins), e.g.
    /// `["--auto-compaction-mode=revision", "--auto-compaction-retention=10"]`.
    pub extra_args: Vec<String>,
}

/// Ports handed out by this process, never handed out twice, so that tests
/// running in parallel threads do not pick the same ones.
static CLAIMED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn claim_port() -> u16 {
    for _ in 0..100 {
        let port = crate::free_port(false);
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no unclaimed free loopback port found");
}

/// A cluster token no other test (in this or another process) uses.
fn unique_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "jwtgate-{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let cut = (text.len() - max..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[cut..]
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` to its end, or kills it after `timeout`. The second value is
/// true when it was killed.
fn run_bounded(mut cmd: Command, timeout: Duration) -> (Output, bool) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}. {INSTALL_HINT}", cmd.get_program()));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for etcdctl") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            killed = true;
            break child.wait().expect("wait for killed etcdctl");
        }
        sleep(Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    (output, killed)
}

/// Who `etcdctl` talks to, and how.
#[derive(Clone, Debug)]
struct Client {
    endpoints: Vec<String>,
    tls: bool,
    /// `user:password`, once auth is enabled.
    user: Option<String>,
}

impl Client {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(etcdctl_bin());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("ETCDCTL_API", "3");
        cmd.arg(format!("--endpoints={}", self.endpoints.join(",")));
        cmd.args(["--dial-timeout=2s", "--command-timeout=5s"]);
        if self.tls {
            cmd.arg(format!("--cacert={}", test_ca_file().display()));
        }
        if let Some(user) = &self.user {
            cmd.arg(format!("--user={user}"));
        }
        cmd.args(args);
        cmd
    }

    fn run_for(&self, args: &[&str], timeout: Duration) -> Output {
        run_bounded(self.command(args), timeout).0
    }

    fn run(&self, args: &[&str]) -> Output {
        let (out, killed) = run_bounded(self.command(args), CTL_TIMEOUT);
        assert!(
            !killed,
            "etcdctl --endpoints={} {args:?} did not finish within {CTL_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
            self.endpoints.join(","),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs and panics unless it succeeded; returns stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "etcdctl --endpoints={} {args:?} failed ({}):\n{}\n{}",
            self.endpoints.join(","),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-w", "json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: not JSON ({e}): {text}"))
    }

    fn put(&self, key: &str, value: &str) {
        self.ok(&["put", "--", key, value]);
    }

    fn get(&self, key: &str) -> Option<String> {
        let v = self.json(&["get", "--", key]);
        let kv = v.get("kvs")?.as_array()?.first()?;
        let b64 = kv.get("value").and_then(Value::as_str).unwrap_or("");
        let bytes = STANDARD
            .decode(b64)
            .unwrap_or_else(|e| panic!("etcdctl get {key}: value not base64 ({e}): {v}"));
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn del(&self, key: &str) -> i64 {
        let v = self.json(&["del", "--", key]);
        v.get("deleted").and_then(Value::as_i64).unwrap_or(0)
    }

    /// The store's current revision (the header of a linearizable read).
    fn revision(&self) -> i64 {
        let v = self.json(&["get", "--", "jwtgate-testkit/revision-probe"]);
        v.pointer("/header/revision")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("no header.revision in {v}"))
    }

    fn compact_to_current(&self) -> i64 {
        let rev = self.revision();
        self.ok(&["compact", "--physical", &rev.to_string()]);
        rev
    }

    fn enable_auth(&mut self, user: &str, password: &str) {
        assert!(
            user == "root",
            "EtcdOptions::auth: the user must be root (etcd enables auth only with a root user), not {user:?}"
        );
        assert!(
            !password.is_empty(),
            "EtcdOptions::auth: an empty password makes etcdctl prompt"
        );
        self.ok(&[
            "user",
            "add",
            user,
            &format!("--new-user-password={password}"),
            "--interactive=false",
        ]);
        self.ok(&["user", "grant-role", user, "root"]);
        self.ok(&["auth", "enable"]);
        self.user = Some(format!("{user}:{password}"));
    }
}

/// Why a member did not come up.
enum StartFailure {
    /// A port was taken (`address already in use`): pick others.
    PortClash,
    Other(String),
}

/// One `etcd` member.
pub struct EtcdServer {
    /// The client port (`endpoint()`'s).
    pub port: u16,
    pub peer_port: u16,
    name: String,
    dir: tempfile::TempDir,
    opts: EtcdOptions,
    /// `--initial-cluster`, `--initial-cluster-token`.
    initial_cluster: String,
    token: String,
    in_cluster: bool,
    client: Client,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl EtcdServer {
    /// A single member, plain HTTP, no auth.
    pub fn start() -> EtcdServer {
        Self::start_with(&EtcdOptions::default())
    }

    /// A single member with `opts`; waits until it answers `endpoint health`
    /// (and, with auth, until auth is enabled).
    pub fn start_with(opts: &EtcdOptions) -> EtcdServer {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let token = unique_token();
            let mut s = EtcdServer::new(opts, format!("m0-{token}"), token);
            s.initial_cluster = s.peer_entry();
            s.spawn();
            match await_ready(&mut [&mut s]) {
                Ok(()) => {
                    s.apply_auth();
                    return s;
                }
                Err(StartFailure::PortClash) => {
                    last = s.stderr();
                    continue;
                }
                Err(StartFailure::Other(why)) => panic!("{why}"),
            }
        }
        panic!(
            "etcd: ports kept clashing after {START_ATTEMPTS} attempts; last stderr:\n{}",
            tail(&last, LOG_SHOWN)
        );
    }

    fn new(opts: &EtcdOptions, name: String, token: String) -> EtcdServer {
        let port = claim_port();
        let peer_port = claim_port();
        let scheme = if opts.tls { "https" } else { "http" };
        EtcdServer {
            port,
            peer_port,
            name,
            dir: tempfile::tempdir().expect("tempdir"),
            opts: opts.clone(),
            initial_cluster: String::new(),
            token,
            in_cluster: false,
            client: Client {
                endpoints: vec![format!("{scheme}://127.0.0.1:{port}")],
                tls: opts.tls,
                user: None,
            },
            child: None,
            log: Arc::new(Mutex::new(String::new())),
        }
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn peer_entry(&self) -> String {
        format!("{}={}", self.name, self.peer_url())
    }

    fn apply_auth(&mut self) {
        if let Some((user, password)) = self.opts.auth.clone() {
            self.client.enable_auth(&user, &password);
        }
    }

    fn args(&self) -> Vec<String> {
        let endpoint = self.endpoint();
        let mut a = vec![
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir().display()),
            format!("--listen-client-urls={endpoint}"),
            format!("--advertise-client-urls={endpoint}"),
            format!("--listen-peer-urls={}", self.peer_url()),
            format!("--initial-advertise-peer-urls={}", self.peer_url()),
            format!("--initial-cluster={}", self.initial_cluster),
            "--initial-cluster-state=new".to_owned(),
            format!("--initial-cluster-token={}", self.token),
            format!("--heartbeat-interval={HEARTBEAT_MS}"),
            format!("--election-timeout={ELECTION_MS}"),
            "--pre-vote=true".to_owned(),
            "--auto-compaction-retention=0".to_owned(),
            "--enable-v2=false".to_owned(),
            "--logger=zap".to_owned(),
            "--log-outputs=stderr".to_owned(),
            "--log-level=info".to_owned(),
        ];
        if self.opts.tls {
            a.push(format!("--cert-file={}", tls_file("server.crt").display()));
            a.push(format!("--key-file={}", tls_file("server.key").display()));
        }
        a.extend(self.opts.extra_args.iter().cloned());
        a
    }

    fn spawn(&mut self) {
        // Both binaries are checked before anything starts.
        etcdctl_bin();
        let mut cmd = Command::new(etcd_bin());
        for (k, _) in std::env::vars_os() {
            let k_str = k.to_string_lossy();
            if k_str.starts_with("ETCD_") || k_str.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .args(self.args())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start etcd: {e}. {INSTALL_HINT}"));
        let log = Arc::clone(&self.log);
        log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let stderr = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            let mut lines = BufReader::new(stderr);
            let mut line = String::new();
            while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() > LOG_CAP {
                    let keep = tail(&log, LOG_CAP / 2).len();
                    let cut = log.len() - keep;
                    log.replace_range(..cut, "[...]\n");
                }
                log.push_str(&line);
                line.clear();
            }
        });
        self.child = Some(child);
    }

    /// One readiness poll: `Ok(true)` when this very member (not another
    /// process on a clashing port) answers `endpoint health`.
    fn poll_ready(&mut self) -> Result<bool, StartFailure> {
        let Some(child) = self.child.as_mut() else {
            return Err(StartFailure::Other(format!(
                "etcd member {} is not running",
                self.name
            )));
        };
        if let Some(status) = child.try_wait().expect("wait for etcd") {
            self.child = None;
            // The stderr reader may still be copying the last lines.
            sleep(POLL);
            let log = self.stderr();
            if log.contains("address already in use") {
                return Err(StartFailure::PortClash);
            }
            return Err(StartFailure::Other(format!(
                "etcd member {} ({}) exited ({status}) before it was ready; its stderr:\n{}",
                self.name,
                self.endpoint(),
                tail(&log, LOG_SHOWN)
            )));
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return Ok(false);
        }
        // The answering member must be this one: its name is unique.
        let out = self.client.run_for(
            &["-w", "json", "--command-timeout=2s", "member", "list"],
            Duration::from_secs(10),
        );
        if !out.status.success() {
            return Ok(false);
        }
        let Ok(list) = serde_json::from_slice::<Value>(&out.stdout) else {
            return Ok(false);
        };
        let me = list.pointer("/header/member_id").and_then(Value::as_u64);
        let mine = list
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|m| {
                m.get("ID").and_then(Value::as_u64) == me
                    && m.get("name").and_then(Value::as_str) == Some(self.name.as_str())
            });
        if !mine {
            return Ok(false);
        }
        let out = self.client.run_for(
            &["--command-timeout=2s", "endpoint", "health"],
            Duration::from_secs(10),
        );
        Ok(out.status.success())
    }

    /// `http://127.0.0.1:PORT`, or `https://...` with TLS.
    pub fn endpoint(&self) -> String {
        self.client.endpoints[0].clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The member's `--data-dir` (inside a temporary directory).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The member's name (`--name`), unique across tests.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn options(&self) -> &EtcdOptions {
        &self.opts
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// What the member logged (zap JSON lines) since its last start, the
    /// oldest cut beyond 256 KiB.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// SIGKILL, and wait until the process is gone (its ports are free).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same ports and data directory: the data
    /// survives. Waits until the member answers `endpoint health` (in a
    /// cluster: until it has rejoined a quorum).
    pub fn restart(&mut self) {
        self.kill();
        self.respawn();
    }

    /// Starts again on the same ports with a new, empty data directory: the
    /// member lost everything (its revision is back to 1). The options are
    /// applied again as at the first start (with auth: the root user is
    /// created again and auth enabled). Single members only.
    pub fn restart_empty(&mut self) {
        assert!(
            !self.in_cluster,
            "restart_empty: member {} belongs to a cluster; an empty member would need `member remove`/`member add`",
            self.name
        );
        self.kill();
        self.dir = tempfile::tempdir().expect("tempdir");
        self.client.user = None;
        self.respawn();
        self.apply_auth();
    }

    /// As [`EtcdServer::restart_empty`], but the new member has already
    /// taken `writes` puts of keys outside any test's prefix
    /// (`/elsewhere/N`) when it starts answering on its port: an etcd that
    /// lost its data and whose revision then went past what its clients
    /// knew (shared with other applications). The writes are made while it
    /// listens on another client port, so no client sees it in between.
    pub fn restart_empty_after(&mut self, writes: usize) {
        assert!(
            !self.in_cluster,
            "restart_empty_after: member {} belongs to a cluster",
            self.name
        );
        self.kill();
        self.dir = tempfile::tempdir().expect("tempdir");
        self.client.user = None;
        let (port, endpoints) = (self.port, self.client.endpoints.clone());
        let scheme = if self.opts.tls { "https" } else { "http" };
        self.port = claim_port();
        self.client.endpoints = vec![format!("{scheme}://127.0.0.1:{}", self.port)];
        self.respawn();
        for i in 0..writes {
            self.client.put(&format!("/elsewhere/{i}"), "x");
        }
        self.kill();
        self.port = port;
        self.client.endpoints = endpoints;
        self.respawn();
        self.apply_auth();
    }

    /// Spawns on the same ports, retrying (bounded) while a port is still
    /// taken by someone else.
    fn respawn(&mut self) {
        for _ in 0..START_ATTEMPTS * 4 {
            self.spawn();
            match await_ready(&mut [self]) {
                Ok(()) => return,
                Err(StartFailure::PortClash) => sleep(Duration::from_millis(250)),
                Err(StartFailure::Other(why)) => panic!("{why}"),
            }
        }
        panic!(
            "etcd member {}: ports {} and {} stayed taken; its stderr:\n{}",
            self.name,
            self.port,
            self.peer_port,
            tail(&self.stderr(), LOG_SHOWN)
        );
    }

    /// Runs `etcdctl --endpoints=ENDPOINT [--cacert CA] [--user root:PASS]
    /// args...` (API v3, `--dial-timeout=2s --command-timeout=5s`; a flag
    /// in `args` wins) and panics if it runs longer than [`CTL_TIMEOUT`].
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.client.run(args)
    }

    /// [`EtcdServer::etcdctl`] killed after `timeout` instead of panicking
    /// (e.g. a `watch`): the output so far, with a failed status.
    pub fn etcdctl_for(&self, args: &[&str], timeout: Duration) -> Output {
        self.client.run_for(args, timeout)
    }

    /// `etcdctl --endpoints=ENDPOINT args...` without the CA and without
    /// credentials: what a client that was not told about them gets.
    pub fn etcdctl_bare(&self, args: &[&str]) -> Output {
        let bare = Client {
            endpoints: self.client.endpoints.clone(),
            tls: false,
            user: None,
        };
        bare.run(args)
    }

    /// [`EtcdServer::etcdctl`]'s stdout, trimmed; panics if it failed.
    pub fn ctl(&self, args: &[&str]) -> String {
        self.client.ok(args)
    }

    pub fn put(&self, key: &str, value: &str) {
        self.client.put(key, value)
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.client.get(key)
    }

    /// How many keys were deleted (0 or 1).
    pub fn del(&self, key: &str) -> i64 {
        self.client.del(key)
    }

    /// The current revision (1 for an empty store).
    pub fn revision(&self) -> i64 {
        self.client.revision()
    }

    /// Compacts (`--physical`) at the current revision and returns it:
    /// reads and watches from older revisions then fail with `etcdserver:
    /// mvcc: required revision has been compacted`.
    pub fn compact_to_current(&self) -> i64 {
        self.client.compact_to_current()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls every member until each answers `endpoint health`, or one of them
/// failed to start, or [`READY_TIMEOUT`] passed (a panic with their logs).
fn await_ready(members: &mut [&mut EtcdServer]) -> Result<(), StartFailure> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = vec![false; members.len()];
    loop {
        for (i, m) in members.iter_mut().enumerate() {
            if !ready[i] {
                ready[i] = m.poll_ready()?;
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut why = format!("etcd not healthy within {READY_TIMEOUT:?}:");
            for (i, m) in members.iter().enumerate() {
                if !ready[i] {
                    why.push_str(&format!(
                        "\n--- member {} ({}, peer {}) stderr:\n{}",
                        m.name,
                        m.endpoint(),
                        m.peer_port,
                        tail(&m.stderr(), LOG_SHOWN)
                    ));
                }
            }
            for m in members.iter_mut() {
                m.kill();
            }
            return Err(StartFailure::Other(why));
        }
        sleep(POLL);
    }
}

/// One member's `endpoint status`.
#[derive(Clone, Debug)]
struct Status {
    member_id: u64,
    leader: u64,
    raft_term: u64,
}

/// An etcd cluster bootstrapped statically (`--initial-cluster`,
/// `--initial-cluster-state=new`, a token unique to it).
pub struct EtcdCluster {
    pub members: Vec<EtcdServer>,
    /// Member ids (`header.member_id`), by index.
    ids: Vec<u64>,
    user: Option<String>,
}

impl EtcdCluster {
    /// `n` members, plain HTTP, no auth; waits until all are healthy.
    pub fn start(n: usize) -> EtcdCluster {
        Self::start_with(n, &EtcdOptions::default())
    }

    pub fn start_with(n: usize, opts: &EtcdOptions) -> EtcdCluster {
        assert!(n > 0, "EtcdCluster::start: no member");
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let token = unique_token();
            let mut members: Vec<EtcdServer> = (0..n)
                .map(|i| EtcdServer::new(opts, format!("m{i}-{token}"), token.clone()))
                .collect();
            let initial = members
                .iter()
                .map(EtcdServer::peer_entry)
                .collect::<Vec<_>>()
                .join(",");
            for m in &mut members {
                m.initial_cluster = initial.clone();
                m.in_cluster = true;
                m.spawn();
            }
            let mut refs: Vec<&mut EtcdServer> = members.iter_mut().collect();
            match await_ready(&mut refs) {
                Ok(()) => {
                    let mut c = EtcdCluster {
                        members,
                        ids: Vec::new(),
                        user: None,
                    };
                    c.ids = c
                        .statuses()
                        .into_iter()
                        .map(|s| s.expect("status of a fresh member").member_id)
                        .collect();
                    if let Some((user, password)) = &opts.auth {
                        let mut client = c.client();
                        client.enable_auth(user, password);
                        c.user = client.user;
                        for m in &mut c.members {
                            m.client.user = c.user.clone();
                        }
                    }
                    c.wait_healthy();
                    return c;
                }
                Err(StartFailure::PortClash) => {
                    last = members
                        .iter()
                        .map(EtcdServer::stderr)
                        .collect::<Vec<_>>()
                        .join("\n---\n");
                    continue;
                }
                Err(StartFailure::Other(why)) => panic!("{why}"),
            }
        }
        panic!(
            "etcd cluster: ports kept clashing after {START_ATTEMPTS} attempts; last stderr:\n{}",
            tail(&last, LOG_SHOWN)
        );
    }

    /// A client for the live members.
    fn client(&self) -> Client {
        let endpoints = self.live_endpoints();
        assert!(!endpoints.is_empty(), "etcd cluster: no live member");
        Client {
            endpoints,
            tls: self.members[0].opts.tls,
            user: self.user.clone(),
        }
    }

    /// Every member's client URL, live or not (what a configuration lists).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    /// The live members' client URLs.
    pub fn live_endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.is_running())
            .map(EtcdServer::endpoint)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].is_running()
    }

    /// Each member's `endpoint status` (None when it is down or does not
    /// answer).
    fn statuses(&self) -> Vec<Option<Status>> {
        self.members
            .iter()
            .map(|m| {
                if !m.is_running() {
                    return None;
                }
                let out = m.etcdctl_for(
                    &["-w", "json", "--command-timeout=2s", "endpoint", "status"],
                    Duration::from_secs(10),
                );
                if !out.status.success() {
                    return None;
                }
                let v: Value = serde_json::from_slice(&out.stdout).ok()?;
                let s = v.get(0)?.get("Status")?;
                Some(Status {
                    member_id: s.pointer("/header/member_id")?.as_u64()?,
                    leader: s.get("leader")?.as_u64()?,
                    raft_term: s.pointer("/header/raft_term")?.as_u64()?,
                })
            })
            .collect()
    }

    /// The leader now, if every live member answers and all agree on the
    /// same live leader in the same term.
    fn agreed_leader(&self) -> Result<usize, String> {
        let statuses = self.statuses();
        let mut agreed: Option<(u64, u64)> = None;
        for (i, s) in statuses.iter().enumerate() {
            if !self.members[i].is_running() {
                continue;
            }
            let s = s.as_ref().ok_or(format!("member {i} does not answer"))?;
            if s.leader == 0 {
                return Err(format!("member {i} knows no leader"));
            }
            match agreed {
                None => agreed = Some((s.leader, s.raft_term)),
                Some(a) if a == (s.leader, s.raft_term) => {}
                Some(a) => {
                    return Err(format!(
                        "members disagree: (leader, term) {a:?} vs {:?} at member {i}",
                        (s.leader, s.raft_term)
                    ))
                }
            }
        }
        let (leader, _) = agreed.ok_or("no live member")?;
        let i = self
            .ids
            .iter()
            .position(|id| *id == leader)
            .ok_or(format!("unknown leader id {leader:x}"))?;
        if !self.members[i].is_running() {
            return Err(format!("leader {i} is down"));
        }
        Ok(i)
    }

    /// The index of the current leader, once all live members agree on a
    /// live one (waits at most [`LEADER_TIMEOUT`], e.g. for an election
    /// after the leader was killed).
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            match self.agreed_leader() {
                Ok(i) => return i,
                Err(why) if Instant::now() >= deadline => {
                    panic!(
                        "etcd cluster: no agreed leader within {LEADER_TIMEOUT:?}: {why}{}",
                        self.logs()
                    )
                }
                Err(_) => sleep(POLL),
            }
        }
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for m in &self.members {
            s.push_str(&format!(
                "\n--- member {} ({}, running: {}) stderr:\n{}",
                m.name,
                m.endpoint(),
                m.is_running(),
                tail(&m.stderr(), LOG_SHOWN / 2)
            ));
        }
        s
    }

    /// Waits until every live member answers `endpoint health` and all agree
    /// on a live leader.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for (i, m) in self.members.iter().enumerate() {
            if !m.is_running() {
                continue;
            }
            loop {
                let out = m.etcdctl_for(
                    &["--command-timeout=2s", "endpoint", "health"],
                    Duration::from_secs(10),
                );
                if out.status.success() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd cluster: member {i} not healthy within {READY_TIMEOUT:?}: {}{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.logs()
                );
                sleep(POLL);
            }
        }
        self.leader();
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Restarts member `i` on its ports and data directory, and waits until
    /// it has rejoined (it answers `endpoint health`, which needs a quorum)
    /// and every live member agrees on the leader.
    pub fn restart(&mut self, i: usize) {
        self.members[i].restart();
        self.wait_healthy();
    }

    /// `etcdctl` against every live member (see [`EtcdServer::etcdctl`]).
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.client().run(args)
    }

    pub fn etcdctl_for(&self, args: &[&str], timeout: Duration) -> Output {
        self.client().run_for(args, timeout)
    }

    pub fn ctl(&self, args: &[&str]) -> String {
        self.client().ok(args)
    }

    pub fn put(&self, key: &str, value: &str) {
        self.client().put(key, value)
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.client().get(key)
    }

    pub fn del(&self, key: &str) -> i64 {
        self.client().del(key)
    }

    pub fn revision(&self) -> i64 {
        self.client().revision()
    }

    pub fn compact_to_current(&self) -> i64 {
        self.client().compact_to_current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stderr_of(out: &Output) -> String {
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn etcd_single_member_put_get_del() {
        let s = EtcdServer::start();
        assert!(s.endpoint().starts_with("http://127.0.0.1:"));
        assert_eq!(s.revision(), 1);
        assert_eq!(s.get("a"), None);
        s.put("a", "1");
        s.put("-dash", "--value with spaces");
        assert_eq!(s.get("a").as_deref(), Some("1"));
        assert_eq!(s.get("-dash").as_deref(), Some("--value with spaces"));
        assert_eq!(s.ctl(&["get", "a", "--print-value-only"]), "1");
        assert_eq!(s.revision(), 3);
        assert_eq!(s.del("a"), 1);
        assert_eq!(s.del("a"), 0);
        assert_eq!(s.get("a"), None);
        assert!(s.data_dir().join("member/wal").is_dir());
    }

    #[test]
    fn etcd_restart_keeps_data_restart_empty_loses_it() {
        let mut s = EtcdServer::start();
        let (port, endpoint) = (s.port(), s.endpoint());
        s.put("k", "v");
        let rev = s.revision();
        assert_eq!(rev, 2);
        s.restart();
        assert_eq!((s.port(), s.endpoint()), (port, endpoint.clone()));
        assert_eq!(s.get("k").as_deref(), Some("v"));
        assert_eq!(s.revision(), rev);
        let old_dir = s.data_dir();
        s.restart_empty();
        assert_eq!((s.port(), s.endpoint()), (port, endpoint));
        assert_ne!(s.data_dir(), old_dir);
        assert_eq!(s.get("k"), None);
        assert_eq!(s.revision(), 1);
        s.kill();
        assert!(!s.is_running());
        let out = s.etcdctl_bare(&["--command-timeout=1s", "get", "k"]);
        assert!(!out.status.success());
    }

    #[test]
    fn etcd_tls_member_needs_the_ca() {
        let s = EtcdServer::start_with(&EtcdOptions {
            tls: true,
            ..EtcdOptions::default()
        });
        assert!(s.endpoint().starts_with("https://127.0.0.1:"));
        s.put("t", "tls");
        assert_eq!(s.get("t").as_deref(), Some("tls"));
        // Without the CA, etcdctl retries the handshake until its command
        // timeout and fails with a deadline.
        let out = s.etcdctl_bare(&["--command-timeout=1s", "get", "t"]);
        assert!(!out.status.success(), "{}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("deadline exceeded"),
            "{}",
            stderr_of(&out)
        );
        assert!(s.stderr().contains("bad certificate"), "{}", s.stderr());
    }

    #[test]
    fn etcd_auth_member_needs_the_root_user() {
        let mut s = EtcdServer::start_with(&EtcdOptions {
            auth: Some(("root".into(), "s3cret:with-colon".into())),
            ..EtcdOptions::default()
        });
        s.put("secret", "x");
        assert_eq!(s.get("secret").as_deref(), Some("x"));
        let out = s.etcdctl_bare(&["get", "secret"]);
        assert!(!out.status.success());
        assert!(
            stderr_of(&out).contains("user name is empty"),
            "{}",
            stderr_of(&out)
        );
        let out = s.etcdctl_bare(&["--user=root:wrong", "get", "secret"]);
        assert!(!out.status.success());
        assert!(
            stderr_of(&out).contains("authentication failed"),
            "{}",
            stderr_of(&out)
        );
        // Auth survives a restart (it is in the data), and is set up again
        // after a restart with no data.
        s.restart();
        assert_eq!(s.get("secret").as_deref(), Some("x"));
        s.restart_empty();
        assert_eq!(s.get("secret"), None);
        assert!(!s.etcdctl_bare(&["get", "secret"]).status.success());
    }

    #[test]
    fn etcd_compaction_is_reported() {
        let s = EtcdServer::start();
        s.put("c", "1");
        let old = s.revision();
        s.put("c", "2");
        s.put("c", "3");
        let compacted = s.compact_to_current();
        assert_eq!(compacted, old + 2);
        let out = s.etcdctl(&["get", "c", &format!("--rev={old}")]);
        assert!(!out.status.success());
        assert!(
            stderr_of(&out).contains("required revision has been compacted"),
            "{}",
            stderr_of(&out)
        );
        assert_eq!(
            s.ctl(&[
                "get",
                "c",
                "--print-value-only",
                &format!("--rev={compacted}")
            ]),
            "3"
        );
        // A watch from a compacted revision is cancelled at once by the
        // server; etcdctl says so and exits with 5.
        let out = s.etcdctl_for(
            &["watch", "c", &format!("--rev={old}")],
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(5), "{}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("required revision has been compacted"),
            "{}",
            stderr_of(&out)
        );
        // From the compacted revision itself, the watch replays it.
        // etcdctl watches until stopped: given 5 s to start, dial and print.
        let out = s.etcdctl_for(
            &["watch", "c", &format!("--rev={compacted}")],
            Duration::from_secs(5),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "PUT\nc\n3\n");
    }

    #[test]
    fn etcd_cluster_survives_its_leader() {
        let mut c = EtcdCluster::start(3);
        assert_eq!(c.endpoints().len(), 3);
        c.put("k", "before");
        let old = c.leader();
        let t = Instant::now();
        c.kill(old);
        assert_eq!(c.live_endpoints().len(), 2);
        // leader() waits for one (LEADER_TIMEOUT); how long is reported.
        let new = c.leader();
        let elected = t.elapsed();
        assert_ne!(new, old);
        assert_eq!(c.get("k").as_deref(), Some("before"));
        c.put("k", "during");
        c.restart(old);
        assert_eq!(c.live_endpoints().len(), 3);
        // The old leader caught up: a serializable read answers from its own
        // store.
        let local = c.members[old].ctl(&["get", "k", "--print-value-only", "--consistency=s"]);
        assert_eq!(local, "during");
        let leader = c.leader();
        assert!(c.is_running(leader));
        c.put("k", "after");
        assert_eq!(c.members[old].get("k").as_deref(), Some("after"));
        eprintln!("etcd cluster: new leader elected in {elected:?}");
    }
}
