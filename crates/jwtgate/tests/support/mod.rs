//! The black-box harness shared by every test file: it starts the real
//! `jwtgate` binary on an ephemeral port, a real recording upstream (a hyper
//! HTTP/1.1 server in this process), and speaks raw HTTP/1.1 over TCP so that
//! request lines reach the gateway byte for byte (HTTP client libraries
//! normalise paths, which would hide exactly the bugs the path tests look for).
//!
//! What it does not do: mock anything inside the gateway, sleep to
//! synchronise, or use a fixed port. Every network wait has a deadline.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use jwtgate_core::jwt::{Algorithm, SigningKey};
use serde_json::{json, Map, Value};

/// How long a gateway may take to print its `listening on` line. Generous:
/// the first test of a run may share two slow cores with the compiler.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for any single HTTP exchange in the tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub const BIN: &str = env!("CARGO_BIN_EXE_jwtgate");
pub const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/keys");

// ---------------------------------------------------------------------------
// The gateway process
// ---------------------------------------------------------------------------

/// A running `jwtgate run`, killed on drop. Its stderr and stdout are drained
/// by background threads for its whole life, so it never blocks on a full
/// pipe, and the lines are kept for failure messages.
pub struct Gateway {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Writes `yaml` to `jwtgate.yaml` in a fresh temporary directory and
    /// starts the gateway on it. The YAML must listen on port 0.
    pub fn start(yaml: &str) -> Gateway {
        match Gateway::try_start(yaml) {
            Ok(g) => g,
            Err(e) => panic!("gateway did not start: {e}\n--- config ---\n{yaml}"),
        }
    }

    pub fn try_start(yaml: &str) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config_path = dir.path().join("jwtgate.yaml");
        std::fs::write(&config_path, yaml).map_err(|e| e.to_string())?;
        Gateway::start_in(dir, config_path)
    }

    /// Like [`Gateway::start`], with extra environment variables (e.g. a
    /// verbose log filter).
    pub fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Gateway {
        let run = || -> Result<Gateway, String> {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let config_path = dir.path().join("jwtgate.yaml");
            std::fs::write(&config_path, yaml).map_err(|e| e.to_string())?;
            Gateway::start_in_env(dir, config_path, env)
        };
        run().unwrap_or_else(|e| panic!("gateway did not start: {e}\n--- config ---\n{yaml}"))
    }

    /// Starts on a config file already written into `dir`.
    pub fn start_in(dir: tempfile::TempDir, config_path: PathBuf) -> Result<Gateway, String> {
        Gateway::start_in_env(dir, config_path, &[])
    }

    pub fn start_in_env(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(&str, &str)],
    ) -> Result<Gateway, String> {
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot spawn {BIN}: {e}"))?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        drain(stderr, logs.clone(), Some(tx));
        drain(stdout, logs.clone(), None);

        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = parse_listening(&line) {
                        break addr;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let logs = logs.lock().unwrap().join("\n");
                    return Err(format!(
                        "no `listening on http(s)://` line ({e:?}); gateway output:\n{logs}"
                    ));
                }
            }
        };
        Ok(Gateway {
            addr,
            dir,
            config_path,
            child,
            logs,
        })
    }

    /// Everything the gateway printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends the process a signal (`kill -SIG`).
    pub fn signal(&self, sig: &str) {
        send_signal(self.child.id(), sig);
    }

    /// Waits up to `limit` for the process to exit; whether it did.
    pub fn exited_within(&mut self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// Panics (with the logs) if the process has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("gateway exited with {status}; output:\n{}", self.logs());
        }
        let logs = self.logs();
        assert!(
            !logs.contains("panicked"),
            "gateway logged a panic:\n{logs}"
        );
    }

    pub fn get(&self, target: &str) -> Response {
        self.send(&Req::get(target))
    }

    pub fn send(&self, req: &Req) -> Response {
        match req.try_send(self.addr) {
            Ok(r) => r,
            Err(e) => panic!(
                "request {} {} failed: {e}\n--- gateway output ---\n{}",
                req.method,
                req.target,
                self.logs()
            ),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(
    pipe: impl Read + Send + 'static,
    logs: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.split(b'\n') {
            let Ok(line) = line else { break };
            let line = strip_ansi(&String::from_utf8_lossy(&line));
            if let Ok(mut l) = logs.lock() {
                l.push(line.clone());
            }
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    });
}

/// Removes ANSI colour escapes, in case the log formatter colours fields.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn parse_listening(line: &str) -> Option<SocketAddr> {
    let at = ["listening on http://", "listening on https://"]
        .iter()
        .find_map(|marker| Some(line.find(marker)? + marker.len()))?;
    let rest = &line[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '/' | ')'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Runs the binary with `args` (for `check` and `token`), with a deadline.
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn all(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// `jwtgate check` of `yaml`, written to a fresh directory (also the
/// working directory, for the paths it names).
pub fn check_yaml(yaml: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwtgate.yaml");
    std::fs::write(&path, yaml).expect("write");
    run_cli(
        &["check", "--config", path.to_str().expect("utf8")],
        dir.path(),
    )
}

pub fn run_cli(args: &[&str], cwd: &Path) -> Output {
    run_cli_env(args, cwd, &[])
}

pub fn run_cli_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    run_cli_with(args, cwd, env, Stdio::null())
}

/// `run_cli` with standard input read from `stdin` (a file, say).
pub fn run_cli_stdin(args: &[&str], cwd: &Path, stdin: impl Into<Stdio>) -> Output {
    run_cli_with(args, cwd, &[], stdin.into())
}

fn run_cli_with(args: &[&str], cwd: &Path, env: &[(&str, &str)], stdin: Stdio) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {BIN}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + IO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("jwtgate {args:?} did not finish within {IO_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
    let stderr = strip_ansi(&String::from_utf8_lossy(&err_t.join().unwrap()));
    Output {
        status,
        stdout: strip_ansi(&stdout),
        stderr,
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 client
// ---------------------------------------------------------------------------

/// A request written to the socket exactly as given: the target is not
/// normalised or escaped. `Host` defaults to `127.0.0.1`, `Connection: close`
/// is added unless a Connection header is set, and `Content-Length` when a
/// body is set (unless chunked is asked for).
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
    pub raw_headers: Vec<Vec<u8>>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
            chunked: false,
            raw_headers: Vec::new(),
        }
    }
    pub fn get(target: &str) -> Req {
        Req::new("GET", target)
    }
    pub fn post(target: &str) -> Req {
        Req::new("POST", target)
    }
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// A header line with arbitrary bytes (for robustness tests).
    pub fn raw_header(mut self, line: &[u8]) -> Req {
        self.raw_headers.push(line.to_vec());
        self
    }
    pub fn bearer(self, token: &str) -> Req {
        self.header("Authorization", &format!("Bearer {token}"))
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }
    pub fn chunked(mut self) -> Req {
        self.chunked = true;
        self
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !self.has("host") {
            out.extend_from_slice(b"Host: 127.0.0.1\r\n");
        }
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        for line in &self.raw_headers {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        if !self.has("connection") {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        } else if !self.body.is_empty() && !self.has("content-length") {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    pub fn try_send(&self, addr: SocketAddr) -> Result<Response, String> {
        let mut stream =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut write = || -> std::io::Result<()> {
            stream.write_all(&self.head_bytes())?;
            if self.chunked {
                for chunk in self.body.chunks(64 * 1024) {
                    stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                    stream.write_all(chunk)?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")?;
            } else {
                stream.write_all(&self.body)?;
            }
            stream.flush()
        };
        // A gateway may legitimately answer (e.g. 401) before reading a body;
        // the answer is still read.
        let write_result = write();
        match read_response(&mut stream, self.method == "HEAD") {
            Ok(r) => Ok(r),
            Err(e) => match write_result {
                Err(w) => Err(format!("write: {w}; then read: {e}")),
                Ok(()) => Err(e),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {} headers {:?} body {:?}",
                self.status,
                self.headers,
                self.text()
            )
        })
    }
    /// `body.message` when the body is a JSON object with a string message.
    pub fn message(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .get("message")?
            .as_str()
            .map(str::to_owned)
    }
}

pub fn read_response(stream: &mut TcpStream, head_only: bool) -> Result<Response, String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    // Read until the end of the header block.
    let header_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream
            .read(&mut tmp)
            .map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed before a full response head; got {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf.len() > 1024 * 1024 {
            return Err("response head larger than 1 MiB".into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut rest = buf[header_end..].to_vec();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        read_chunked(stream, rest)?
    } else if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        while rest.len() < len {
            let n = stream
                .read(&mut tmp)
                .map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                return Err(format!("body truncated at {} of {len} bytes", rest.len()));
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        rest.truncate(len);
        rest
    } else {
        loop {
            let n = stream
                .read(&mut tmp)
                .map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        rest
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    let mut fill = |buf: &mut Vec<u8>| -> Result<(), String> {
        let n = stream
            .read(&mut tmp)
            .map_err(|e| format!("read chunk: {e}"))?;
        if n == 0 {
            return Err("connection closed inside a chunked body".into());
        }
        buf.extend_from_slice(&tmp[..n]);
        Ok(())
    };
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf, b"\r\n") {
                break i;
            }
            fill(&mut buf)?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers, then the final CRLF.
            loop {
                if let Some(i) = find(&buf, b"\r\n") {
                    let line_empty = i == 0;
                    buf.drain(..i + 2);
                    if line_empty {
                        return Ok(out);
                    }
                } else {
                    fill(&mut buf)?;
                }
            }
        }
        while buf.len() < size + 2 {
            fill(&mut buf)?;
        }
        out.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// The recording upstream
// ---------------------------------------------------------------------------

/// What the upstream does with each request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with a small text body.
    Answer,
    /// Waits this long before sending the response head.
    Slow(Duration),
    /// 200, streamed: [`GATED_FIRST`] at once, then waits until
    /// [`Upstream::open_gate`] (at most [`IO_TIMEOUT`]), then [`GATED_LAST`].
    Gated,
    /// As [`Behavior::Gated`], with a first part of a few bytes, as a
    /// server-sent event: [`EVENT_FIRST`].
    GatedEvent,
    /// 200 with hop-by-hop response headers: `Connection: x-up-hop`,
    /// `X-Up-Hop`, `Keep-Alive`, and an end-to-end `X-Up-End`.
    HopHeaders,
    /// 200 with CORS headers of its own (`Access-Control-Allow-Origin: *`,
    /// `Access-Control-Allow-Credentials: true`) and `Vary: Accept-Encoding`.
    OwnCors,
    /// 200 with a body of this many bytes, streamed (chunked) in 64 KiB
    /// pieces; byte i is `pattern_byte(i)`.
    Stream(usize),
}

pub fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// `n` bytes of the pattern: byte i is `pattern_byte(i)`.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(pattern_byte).collect()
}

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as in the request line.
    pub target: String,
    pub version: String,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    /// Whether the body bytes were `pattern_byte(i)` throughout.
    pub body_matches_pattern: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

struct UpstreamState {
    id: String,
    behavior: Mutex<Behavior>,
    records: Mutex<Vec<Recorded>>,
    /// Targets of requests whose head arrived (before their body is read).
    started: Mutex<Vec<String>>,
    gate: tokio::sync::watch::Sender<bool>,
}

/// A real HTTP/1.1 server on 127.0.0.1:0 that records every request. Each
/// response carries `x-upstream-id: <id>` so a test can tell nodes apart.
pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<UpstreamState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        Upstream::start_with("up", Behavior::Answer)
    }

    pub fn start_with(id: &str, behavior: Behavior) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpstreamState {
            id: id.to_owned(),
            behavior: Mutex::new(behavior),
            records: Mutex::new(Vec::new()),
            started: Mutex::new(Vec::new()),
            gate: tokio::sync::watch::channel(false).0,
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let st = st.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| {
                                    let st = st.clone();
                                    async move { handle(st, req).await }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Upstream {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn node(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_behavior(&self, b: Behavior) {
        *self.state.behavior.lock().unwrap() = b;
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.state.records.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.records.lock().unwrap().len()
    }

    /// The last request received; panics if there was none.
    pub fn last(&self) -> Recorded {
        self.records()
            .last()
            .cloned()
            .expect("the upstream received no request")
    }

    /// Requests whose head has arrived, whether or not their body has.
    pub fn started(&self) -> Vec<String> {
        self.state.started.lock().unwrap().clone()
    }

    /// Lets [`Behavior::Gated`] responses finish.
    pub fn open_gate(&self) {
        self.state.gate.send_replace(true);
    }

    pub fn clear(&self) {
        self.state.records.lock().unwrap().clear();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type RespBody = BoxBody<Bytes, Infallible>;

async fn handle(
    st: Arc<UpstreamState>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<RespBody>, Infallible> {
    let method = req.method().to_string();
    st.started.lock().unwrap().push(req.uri().to_string());
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().to_string());
    let version = format!("{:?}", req.version());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = req.into_body();
    let mut body_len = 0usize;
    let mut matches = true;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            for (i, b) in data.iter().enumerate() {
                if *b != pattern_byte(body_len + i) {
                    matches = false;
                }
            }
            body_len += data.len();
        }
    }
    st.records.lock().unwrap().push(Recorded {
        method,
        target,
        version,
        headers,
        body_len,
        body_matches_pattern: matches,
    });
    let behavior = st.behavior.lock().unwrap().clone();
    let hop = matches!(behavior, Behavior::HopHeaders);
    let body: RespBody = match behavior {
        Behavior::HopHeaders => Full::new(Bytes::from_static(b"upstream ok")).boxed(),
        Behavior::Answer | Behavior::OwnCors => {
            Full::new(Bytes::from_static(b"upstream ok")).boxed()
        }
        Behavior::Slow(d) => {
            tokio::time::sleep(d).await;
            Full::new(Bytes::from_static(b"slow upstream ok")).boxed()
        }
        Behavior::Stream(n) => PatternBody { sent: 0, total: n }.boxed(),
        Behavior::Gated | Behavior::GatedEvent => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
            let mut gate = st.gate.subscribe();
            let first = match behavior {
                Behavior::Gated => Bytes::from(GATED_FIRST.to_vec()),
                _ => Bytes::from_static(EVENT_FIRST),
            };
            tokio::spawn(async move {
                let _ = tx.send(first).await;
                let _ = tokio::time::timeout(IO_TIMEOUT, gate.wait_for(|open| *open)).await;
                let _ = tx.send(Bytes::from_static(GATED_LAST)).await;
            });
            ChannelBody(rx).boxed()
        }
    };
    let mut resp = hyper::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("x-upstream-id", st.id.as_str());
    if hop {
        resp = resp
            .header("connection", "x-up-hop")
            .header("x-up-hop", "per-connection")
            .header("keep-alive", "timeout=99")
            .header("x-up-end", "kept");
    }
    if matches!(behavior, Behavior::OwnCors) {
        resp = resp
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-credentials", "true")
            .header("access-control-allow-private-network", "true")
            .header("vary", "Accept-Encoding");
    }
    let resp = resp.body(body).unwrap();
    Ok(resp)
}

/// The first part of a [`Behavior::Gated`] body: 16 KiB ending in a marker.
pub static GATED_FIRST: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let mut v = vec![b'.'; 16 * 1024];
    v.extend_from_slice(b"<first-part-end>");
    v
});
pub const GATED_LAST: &[u8] = b"<last-part>";
/// The first part of a [`Behavior::GatedEvent`] body: one small event.
pub const EVENT_FIRST: &[u8] = b"data: first\n\n<first-part-end>";

struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A streamed body of `total` pattern bytes, without a known length.
struct PatternBody {
    sent: usize,
    total: usize,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.total {
            return Poll::Ready(None);
        }
        let n = (self.total - self.sent).min(64 * 1024);
        let start = self.sent;
        let chunk: Vec<u8> = (start..start + n).map(pattern_byte).collect();
        self.sent += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}

/// A keep-alive HTTP/1.1 upstream of raw bytes, for answers the recording
/// [`Upstream`] cannot give: `answer` gets each request's head (requests
/// have no body) and returns the bytes to send back, on the connection's
/// own thread (it may wait). Counts the connections it accepts.
pub struct RawUpstream {
    pub addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl RawUpstream {
    pub fn start(answer: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> RawUpstream {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let answer = Arc::clone(&answer);
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Some(end) = find(&pending, b"\r\n\r\n") else {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => pending.extend_from_slice(&buf[..n]),
                            }
                            continue;
                        };
                        let head: Vec<u8> = pending.drain(..end + 4).collect();
                        if s.write_all(&answer(&head)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream { addr, accepted }
    }

    pub fn node(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An upstream that breaks off every answer's body after sending its head
/// and five bytes, as the request's path says: `/closed` closes the
/// connection, `/chunk` sends a chunk size that is no number, `/stall`
/// sends nothing more for 3 s.
pub fn breaking_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let answer: &[u8] = if head.starts_with(b"GET /chunk") {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello"
                };
                let _ = s.write_all(answer);
                if head.starts_with(b"GET /stall") {
                    std::thread::sleep(Duration::from_secs(3));
                }
                // Dropped: the connection closes.
            });
        }
    });
    addr
}

/// A node signed in as the README's least Redis ACL user met no command it
/// may not run (`CONFIG GET`, for the eviction warning, is optional) and
/// no outage.
pub fn assert_least_redis_rights_were_enough(logs: &str) {
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("NOPERM") && !l.contains("config|get"))
            && !logs.contains("revocation store unreachable"),
        "{logs}"
    );
}

/// Sends `request` on `stream` and asserts that nothing is answered for
/// half a second: the server has not taken the connection (it waits in the
/// listening socket's queue). The stream's read deadline is `IO_TIMEOUT`
/// afterwards.
pub fn assert_not_taken(stream: &mut TcpStream, request: &[u8], what: &str) {
    stream.write_all(request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let early = stream.read(&mut [0u8; 1]);
    assert!(
        early.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "answered {what}: {early:?}"
    );
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
}

/// A raw connection with read and write deadlines.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// A loopback port that refuses connections for as long as this value
/// lives: the socket is bound (so no concurrent test can take the port) but
/// never listens, so every connect gets a reset.
pub struct DeadPort {
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

impl DeadPort {
    pub fn node(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

pub fn dead_port() -> DeadPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    DeadPort {
        port,
        _socket: socket,
    }
}

/// Sends process `pid` a signal (`kill -SIG`).
pub fn send_signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn alg(name: &str) -> Algorithm {
    name.parse().unwrap()
}

/// The test key file (without extension) for an asymmetric algorithm.
pub fn key_name(alg: &str) -> &'static str {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => "rsa",
        "ES256" => "ec-p256",
        "ES384" => "ec-p384",
        "ES512" => "ec-p521",
        "EdDSA" => "ed25519",
        other => panic!("{other} has no key file"),
    }
}

pub fn public_key_path(alg: &str) -> String {
    format!("{KEYS}/{}.pub", key_name(alg))
}

pub fn private_key_path(alg: &str) -> String {
    format!("{KEYS}/{}.key", key_name(alg))
}

pub fn read_key(file: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{file}")).unwrap()
}

fn claims_map(claims: &Value) -> Map<String, Value> {
    claims
        .as_object()
        .cloned()
        .expect("claims must be a JSON object")
}

/// A token signed with an HMAC secret.
pub fn sign_hs(alg_name: &str, secret: &str, claims: Value) -> String {
    SigningKey::from_secret(alg(alg_name), secret.as_bytes())
        .unwrap()
        .encode(&claims_map(&claims))
        .unwrap()
}

/// A token signed with the test private key suited to `alg_name`.
pub fn sign_pk(alg_name: &str, claims: Value) -> String {
    let pem = std::fs::read_to_string(private_key_path(alg_name)).unwrap();
    SigningKey::from_private_pem(alg(alg_name), &pem)
        .unwrap()
        .encode(&claims_map(&claims))
        .unwrap()
}

/// A token signed for `alg_name`: with `secret` for HS*, else the test key.
pub fn sign_any(alg_name: &str, secret: &str, claims: Value) -> String {
    if alg_name.starts_with("HS") {
        sign_hs(alg_name, secret, claims)
    } else {
        sign_pk(alg_name, claims)
    }
}

/// HMAC-signs with an explicit header (to forge alg mismatches).
pub fn sign_hs_with_header(alg_name: &str, secret: &[u8], header: Value, claims: Value) -> String {
    SigningKey::from_secret(alg(alg_name), secret)
        .unwrap()
        .encode_with_header(&header, &claims_map(&claims))
        .unwrap()
}

pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Assembles `header.payload.signature` from parts.
pub fn assemble(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(sig)
    )
}

/// The decoded payload of a compact JWS.
pub fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("no payload segment");
    serde_json::from_slice(&unb64(part)).expect("payload is not JSON")
}

/// Keeps the signature, replaces the payload: a signature that no longer
/// matches.
pub fn tamper_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// Flips one bit in the middle of the signature.
pub fn tamper_signature(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut sig = unb64(parts[2]);
    let mid = sig.len() / 2;
    sig[mid] ^= 0x01;
    format!("{}.{}.{}", parts[0], parts[1], b64(&sig))
}

/// Claims valid for an hour, naming consumer `key`.
pub fn claims_for(key: &str) -> Value {
    json!({"key": key, "exp": now() + 3600, "iat": now()})
}

// ---------------------------------------------------------------------------
// Assertions on refusals (SPEC §3.2)
// ---------------------------------------------------------------------------

/// A 401 exactly as SPEC §3.2 describes it.
pub fn assert_refused(resp: &Response, message: &str, realm: &str, token_presented: bool) {
    let ctx = format!(
        "status {} headers {:?} body {:?}",
        resp.status,
        resp.headers,
        resp.text()
    );
    assert_eq!(resp.status, 401, "expected 401 {message:?}; got {ctx}");
    let ct = resp.header("content-type").unwrap_or("");
    assert!(
        ct.to_ascii_lowercase().starts_with("application/json"),
        "Content-Type must be application/json; got {ctx}"
    );
    assert_eq!(
        resp.json(),
        json!({ "message": message }),
        "body must be exactly {{\"message\": {message:?}}}; got {ctx}"
    );
    let expected_www = if token_presented {
        format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
    } else {
        format!("Bearer realm=\"{realm}\"")
    };
    assert_eq!(
        resp.header("www-authenticate"),
        Some(expected_www.as_str()),
        "WWW-Authenticate; got {ctx}"
    );
}

/// A JSON error body `{"message": ...}` with a JSON content type.
pub fn assert_json_error(resp: &Response, status: u16) -> String {
    let ctx = format!(
        "status {} headers {:?} body {:?}",
        resp.status,
        resp.headers,
        resp.text()
    );
    assert_eq!(resp.status, status, "{ctx}");
    let ct = resp.header("content-type").unwrap_or("");
    assert!(
        ct.to_ascii_lowercase().starts_with("application/json"),
        "Content-Type must be application/json; got {ctx}"
    );
    resp.message()
        .unwrap_or_else(|| panic!("body must be {{\"message\": \"...\"}}; got {ctx}"))
}

/// Every value of every header the upstream received, by lower-case name.
pub fn headers_map(r: &Recorded) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for (n, v) in &r.headers {
        m.entry(n.clone()).or_default().push(v.clone());
    }
    m
}

/// A tiny deterministic RNG (xorshift64*), so robustness runs reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

// ---------------------------------------------------------------------------
// An HTTP/2 client (the `h2` crate: windows and resets are the test's)
// ---------------------------------------------------------------------------

/// An h2c connection with prior knowledge, with the client's stream and
/// connection windows as given (a small one makes a large answer wait for
/// the client's WINDOW_UPDATEs); the connection runs on a spawned task.
pub async fn connect_h2(
    addr: SocketAddr,
    stream_window: u32,
    connection_window: u32,
) -> Result<
    (
        h2::client::SendRequest<Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
    ),
    String,
> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(stream_window)
        .initial_connection_window_size(connection_window)
        .handshake(tcp)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    Ok((send, conn))
}

pub fn h2_request(addr: SocketAddr, method: &str, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
}

/// Opens a stream on the connection with a GET of `path` (no body).
pub async fn h2_get(
    send: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), String> {
    let mut send = send.clone().ready().await.map_err(|e| e.to_string())?;
    send.send_request(h2_request(addr, "GET", path).body(()).unwrap(), true)
        .map_err(|e| e.to_string())
}

/// The repository's root, where `examples/` lies.
pub const REPO_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `examples/quickstart.yaml`, as the README runs it.
pub fn quickstart_path() -> String {
    format!("{REPO_ROOT}/examples/quickstart.yaml")
}

/// The quickstart's config for a test gateway: an ephemeral port, its
/// blacklist in the test's directory, its key set file found from there.
pub fn quickstart_yaml() -> String {
    let mut yaml = std::fs::read_to_string(quickstart_path()).unwrap();
    for (from, to) in [
        ("127.0.0.1:8080", "127.0.0.1:0".to_owned()),
        ("\"../data\"", "\"./data\"".to_owned()),
        (
            "\"idp/jwks.json\"",
            format!("\"{REPO_ROOT}/examples/idp/jwks.json\""),
        ),
    ] {
        // Else the test would bind 8080 or write into the repository.
        assert!(yaml.contains(from), "the quickstart no longer says {from}");
        yaml = yaml.replace(from, &to);
    }
    yaml
}

/// A token `jwtgate token sign --config examples/quickstart.yaml` gives
/// with `args` (`--consumer alice`, `--provider example-idp ...`), signed
/// as the README signs it, from the repository's root.
pub fn sign_quickstart(args: &[&str]) -> String {
    let quickstart = quickstart_path();
    let mut all = vec!["token", "sign", "--config", quickstart.as_str()];
    all.extend_from_slice(args);
    let out = run_cli(&all, Path::new(REPO_ROOT));
    assert_eq!(out.code(), Some(0), "{}", out.all());
    out.stdout.trim().to_owned()
}
