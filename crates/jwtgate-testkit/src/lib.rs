//! Real `redis-server` processes for tests: a standalone server, or a
//! Redis Cluster of primaries and replicas made with `redis-cli --cluster
//! create`, on loopback ports, in temporary directories, killed on drop.
//!
//! A missing `redis-server` is a loud panic that says how to install it:
//! tests that need Redis never skip.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
pub mod etcd;
pub mod oidc;

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// Start attempts when the port picked is taken meanwhile.
const SPAWN_ATTEMPTS: usize = 6;

fn require(binary: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(binary))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{binary} not found on PATH: these tests need a real Redis. Install it: apt-get install -y redis-server")
    })
}

/// A port that is free now on 127.0.0.1. With `bus`, port + 10000 (the
/// cluster bus) is free too.
pub fn free_port(bus: bool) -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if !bus {
            return port;
        }
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// Runs `redis-cli -p PORT args...` and returns its stdout.
pub fn cli(port: u16, args: &[&str]) -> Output {
    Command::new(require("redis-cli"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli")
}

pub fn cli_text(port: u16, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli(port, args).stdout)
        .trim()
        .to_owned()
}

/// Polls `check` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        sleep(POLL);
    }
}

/// The README's least Redis ACL user for jwtgate (`store.username: gw`,
/// password [`ACL_PASSWORD`]): its keys, and only the commands the README
/// lists (those its scripts call included).
pub const ACL_USER: &[&str] = &[
    "ACL",
    "SETUSER",
    "gw",
    "on",
    ">gw-pass-0123456789",
    "~{jwtgate}:*",
    "resetchannels",
    "-@all",
    "+eval",
    "+evalsha",
    "+script|load",
    "+zadd",
    "+zrange",
    "+zscore",
    "+zremrangebyscore",
    "+xadd",
    "+xread",
    "+xrevrange",
    "+hscan",
    "+hget",
    "+hset",
    "+hdel",
    "+get",
    "+set",
    "+wait",
    "+info",
    "+ping",
    "+cluster|slots",
    "+cluster|myid",
    "+cluster|nodes",
    "+asking",
];
pub const ACL_PASSWORD: &str = "gw-pass-0123456789";
/// The `default` user left able to touch no key of jwtgate's.
pub const ACL_DEFAULT_NO_KEYS: [&str; 5] = ["ACL", "SETUSER", "default", "resetkeys", "~nothing:*"];

/// One redis-server process.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// The gateway's `store:` for this server, with short timeouts so
    /// that an outage is felt within a second.
    pub fn store_yaml(&self) -> String {
        format!(
            "{{ kind: redis, host: 127.0.0.1, port: {}, connect_timeout_ms: 300, read_timeout_ms: 300, send_timeout_ms: 300 }}",
            self.port
        )
    }

    /// A standalone server on a free port.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> RedisServer {
        let bus = extra.contains(&"--cluster-enabled");
        let mut s = RedisServer {
            port: free_port(bus),
            dir: tempfile::tempdir().expect("tempdir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        // The port was free when picked; another test may take it first.
        for _ in 0..SPAWN_ATTEMPTS {
            if s.spawn() {
                return s;
            }
            s.port = free_port(bus);
        }
        panic!("redis-server could not get a port of its own in {SPAWN_ATTEMPTS} tries");
    }

    /// Starts the process; true once it, and not another test's server,
    /// answers on the port; false if it exited (its port taken).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new(require("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            // Replicas sync at once instead of after Redis 7's 5 s default.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let own = format!("process_id:{}", child.id());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if cli_text(self.port, &["INFO", "server"])
                .lines()
                .any(|l| l.trim() == own)
            {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} did not answer within {READY_TIMEOUT:?}",
                    self.port
                );
            }
            sleep(POLL);
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process (SIGSTOP): it holds its connections and answers
    /// nothing, as a server stalled by a fork, an fsync or a failover,
    /// until [`RedisServer::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT): what it was sent meanwhile is
    /// then executed.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let Some(child) = &self.child else { return };
        // The shell's own kill: /bin/kill comes with procps, which a
        // minimal Debian lacks, while sh is always there.
        let status = Command::new("sh")
            .args(["-c", &format!("kill {which} {}", child.id())])
            .status()
            .expect("run sh");
        assert!(status.success(), "kill {which} redis-server");
    }

    /// Starts again on the same port and directory (retried a while, should
    /// another test's server hold the port meanwhile).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..SPAWN_ATTEMPTS * 5 {
            if self.spawn() {
                return;
            }
            sleep(Duration::from_millis(200));
        }
        panic!("redis-server could not get its port {} back", self.port);
    }

    pub fn cli(&self, args: &[&str]) -> String {
        cli_text(self.port, args)
    }

    /// As [`RedisServer::cli`], with arguments that may not be UTF-8 (what
    /// another program may write into jwtgate's keys).
    pub fn cli_bytes(&self, args: &[&[u8]]) -> String {
        use std::os::unix::ffi::OsStrExt;
        let out = Command::new(require("redis-cli"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server is killed all the same (SIGKILL is not held).
        self.kill();
    }
}

/// A Redis Cluster: `primaries` primaries with `replicas` replicas each.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1500",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(RedisServer::addr).collect();
        let mut args: Vec<&str> = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        let r = replicas.to_string();
        args.extend(["--cluster-replicas", &r, "--cluster-yes"]);
        let out = cli(nodes[0].port, &args);
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy();
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok` and every
    /// primary's replicas are in sync (`state=online`), so that writes can
    /// be acknowledged by a replica.
    pub fn wait_healthy(&self) {
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            let port = n.port;
            wait_until(Duration::from_secs(30), "cluster_state:ok", || {
                cli_text(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
            wait_until(Duration::from_secs(30), "replicas online", || {
                let info = cli_text(port, &["INFO", "replication"]);
                !info.contains("role:master")
                    || info
                        .lines()
                        .filter(|l| l.starts_with("slave") && l.contains("state="))
                        .all(|l| l.contains("state=online"))
            });
        }
    }

    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(RedisServer::addr)
            .collect()
    }

    /// The index of the primary serving `key`'s slot.
    pub fn primary_for(&self, key: &str) -> usize {
        let any = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        let slot = any.cli(&["CLUSTER", "KEYSLOT", key]);
        let slots = any.cli(&["CLUSTER", "NODES"]);
        let slot: u32 = slot.parse().expect("slot number");
        for line in slots.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let owns = f[8..].iter().any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
            });
            if owns {
                let port: u16 = f[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("port");
                return self
                    .nodes
                    .iter()
                    .position(|n| n.port == port)
                    .expect("known node");
            }
        }
        panic!("no primary serves slot {slot}:\n{slots}");
    }

    /// Kills node `i` and waits until a replica has taken over its slots.
    pub fn kill_and_wait_failover(&mut self, i: usize) {
        self.nodes[i].kill();
        self.wait_failover(i);
    }

    /// Stops node `i` (SIGSTOP: it holds its connections and answers
    /// nothing, as a hung host does) and waits until a replica has taken
    /// over its slots. Killed on drop, or [`RedisServer::resume`]d.
    pub fn pause_and_wait_failover(&mut self, i: usize) {
        self.nodes[i].pause();
        self.wait_failover(i);
    }

    /// Waits until every other running node sees node `i` failed and the
    /// cluster whole again.
    fn wait_failover(&self, i: usize) {
        let dead = self.nodes[i].port.to_string();
        let survivors: Vec<u16> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != i && n.is_running())
            .map(|(_, n)| n.port)
            .collect();
        for port in survivors {
            wait_until(
                Duration::from_secs(40),
                "failover (cluster_state:ok without the killed primary)",
                || {
                    let nodes = cli_text(port, &["CLUSTER", "NODES"]);
                    let dead_is_failed = nodes.lines().any(|l| {
                        l.contains(&format!(":{dead}@"))
                            && l.contains("fail")
                            && !l.contains("fail?")
                    });
                    dead_is_failed
                        && cli_text(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
                },
            );
        }
    }
}
