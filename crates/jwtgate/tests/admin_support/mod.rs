//! What the admin API and reload tests need beyond the shared harness: a
//! gateway process they control (its pid for signals, its exit status, a
//! restart on the same config file), the admin address from its log, an
//! admin client that sends `X-API-KEY`, and a Prometheus text reader.
//!
//! Like the shared harness: the real binary, ephemeral ports, deadlines on
//! every wait, no sleeps as synchronisation.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{strip_ansi, Req, Response, BIN, START_TIMEOUT};

pub const KEY: &str = "admin-key-for-tests-0123456789";
pub const SECRET: &str = "admin-tests-secret-0123456789abcdef";

/// A running `jwtgate run` with its admin API, killed on drop.
pub struct Node {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Writes `yaml` to `dir/jwtgate.yaml` and starts on it.
    pub fn start(dir: &Path, yaml: &str) -> Node {
        let path = dir.join("jwtgate.yaml");
        std::fs::write(&path, yaml).unwrap();
        Node::start_on(&path, &[])
    }

    /// Starts on an existing config file (e.g. after a restart).
    pub fn start_on(config_path: &Path, env: &[(&str, &str)]) -> Node {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config_path)
            .current_dir(config_path.parent().unwrap())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n') {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap()
                    .push(strip_ansi(&String::from_utf8_lossy(&line)));
            }
        });
        let mut node = Node {
            addr: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
            config_path: config_path.to_owned(),
            child,
            logs,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let logs = node.logs();
            let data = address_after(&logs, "listening on http://")
                .or_else(|| address_after(&logs, "listening on https://"));
            let admin = address_after(&logs, "admin API listening at http://")
                .or_else(|| address_after(&logs, "admin API listening at https://"));
            if let (Some(data), Some(admin)) = (data, admin) {
                node.addr = data;
                node.admin = admin;
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("gateway exited at start with {status}:\n{logs}");
            }
            assert!(Instant::now() < deadline, "gateway did not start:\n{logs}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls the log until it contains `needle` (at least `times` times).
    pub fn wait_log(&self, needle: &str, times: usize) {
        let ok = crate::support::eventually(Duration::from_secs(15), || {
            self.logs().matches(needle).count() >= times
        });
        assert!(ok, "no {times}x {needle:?} in the log:\n{}", self.logs());
    }

    pub fn signal(&self, sig: &str) {
        crate::support::send_signal(self.child.id(), sig);
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "gateway still running after {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(40))
    }

    pub fn get(&self, target: &str) -> Response {
        self.send(&Req::get(target))
    }

    pub fn send(&self, req: &Req) -> Response {
        req.try_send(self.addr)
            .unwrap_or_else(|e| panic!("{} {}: {e}\n{}", req.method, req.target, self.logs()))
    }

    /// An admin request with the right key; `body` is sent as JSON.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        let mut req = Req::new(method, path).header("X-API-KEY", KEY);
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        self.admin_raw(&req)
    }

    pub fn admin_raw(&self, req: &Req) -> Response {
        req.try_send(self.admin)
            .unwrap_or_else(|e| panic!("admin {} {}: {e}\n{}", req.method, req.target, self.logs()))
    }

    pub fn metrics(&self) -> Metrics {
        let resp = Req::get("/metrics").try_send(self.admin).unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        Metrics(resp.text())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address_after(logs: &str, marker: &str) -> Option<SocketAddr> {
    let at = logs.find(marker)? + marker.len();
    let rest = &logs[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '/' | ','))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A Prometheus text payload.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample `name` whose labels include all of `labels`
    /// (0 when there is none: counters start absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (n, rest) = series.split_once('{').unwrap_or((series, ""));
                let wanted = n == name
                    && labels
                        .iter()
                        .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
                wanted.then(|| value.parse::<f64>().ok()).flatten()
            })
            .sum()
    }

    pub fn has_family(&self, name: &str) -> bool {
        self.0.lines().any(|l| l.starts_with(name))
    }
}

/// Reads a whole file (for checks on what was written back).
pub fn read(path: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    s
}
