//! The client-facing HTTP/1.1 server, black-box: keep-alive, pipelining,
//! request body framing on the way in, response framing on the way out,
//! refusal of malformed heads, and the h2c prior-knowledge switch. Written
//! against hyper's http1 server (behind hyper-util's `auto::Builder`) before
//! the gateway's own HTTP/1.1 loop replaced it, so that the replacement was
//! checked against it byte for byte where bytes matter. Where the two differ
//! on purpose the test says so: the status line is `HTTP/1.1` to HTTP/1.0
//! clients too (RFC 9110 §6.2), `Transfer-Encoding` beside `Content-Length`
//! and codings before `chunked` are refused, heads are capped at 64 KiB, an
//! HTTP/1.1 request without `Host` is 400, and a close is always announced.
//!
//! The client is raw bytes over `std::net::TcpStream`, so malformed input
//! reaches the gateway as written; the upstream is a raw TCP server in this
//! process that records every request exactly as it was framed on the wire
//! (Content-Length or chunked, and the decoded body bytes), so a smuggled
//! second request would show up in its log. Every read has a deadline.
//!
//! What it does not cover: the 30 s idle timeout (`robustness.rs`), TLS
//! (`tls.rs`), HTTP/2 beyond the preface (`proxy.rs`).

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{claims_for, pattern, sign_hs, Gateway};

/// Upper bound for any single read in these tests: every exchange is on
/// loopback, so anything slower is a hang.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const SECRET: &str = "http1-server-secret-0123456789abcdef";
/// A complete request appended to payloads that try to smuggle one: it must
/// never reach the upstream.
const SMUGGLED: &str = "GET /o/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

// ---------------------------------------------------------------------------
// The gateway under test
// ---------------------------------------------------------------------------

/// `/o/*` is open, `/p/*` needs a token; both go to `up`. Anything else is
/// the gateway's own 404.
fn gateway_for(up: &RawUpstream) -> Gateway {
    let node = up.addr;
    Gateway::start(&format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: protected
    paths: ["/p/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{}}
  - name: open
    paths: ["/o/*"]
    upstream: {{ nodes: ["{node}"] }}
"#
    ))
}

fn start() -> (RawUpstream, Gateway) {
    let up = RawUpstream::start();
    let gw = gateway_for(&up);
    (up, gw)
}

fn token() -> String {
    sign_hs("HS256", SECRET, claims_for("user123"))
}

/// A minimal keep-alive GET.
fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

// ---------------------------------------------------------------------------
// Raw client: one connection, bytes kept between responses
// ---------------------------------------------------------------------------

/// One client connection. Bytes read past the end of a response stay in
/// `buf` for the next one, so pipelined answers are delimited exactly as the
/// gateway framed them.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// How a response body was delimited on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Framing {
    /// No body by rule (HEAD, 1xx, 204, 304).
    NoBody,
    Length(usize),
    Chunked,
    /// Neither header: the body ran until the gateway closed.
    UntilClose,
}

#[derive(Debug, Clone)]
struct Reply {
    /// The status line's version, e.g. `HTTP/1.1`.
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_connection_close(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).unwrap();
        self.stream.flush().unwrap();
    }

    /// Reads more bytes into `buf`; `Ok(false)` at end of stream.
    fn fill(&mut self) -> Result<bool, String> {
        let mut tmp = [0u8; 64 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(true)
            }
            Err(e) => Err(format!(
                "read: {e}; unparsed so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            )),
        }
    }

    /// Fills `buf` until it holds `needle`; the index just past it.
    fn until(&mut self, needle: &[u8]) -> Result<usize, String> {
        loop {
            if let Some(i) = find(&self.buf, needle) {
                return Ok(i + needle.len());
            }
            if !self.fill()? {
                return Err(format!(
                    "closed before {:?}; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        }
    }

    /// The next response (a 1xx included), framed by the HTTP/1.1 rules.
    /// `head_request`: the request it answers was a HEAD.
    fn try_reply(&mut self, head_request: bool) -> Result<Reply, String> {
        let end = self.until(b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap_or((l, ""));
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        let mut reply = Reply {
            version,
            status,
            headers,
            body: Vec::new(),
            framing: Framing::NoBody,
        };
        let chunked = reply
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = reply.header("content-length").map(str::to_owned);
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(reply);
        }
        if chunked {
            reply.framing = Framing::Chunked;
            reply.body = self.chunked_body()?;
        } else if let Some(len) = length {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad Content-Length {len:?}"))?;
            while self.buf.len() < len {
                if !self.fill()? {
                    return Err(format!("body cut at {} of {len}", self.buf.len()));
                }
            }
            reply.body = self.buf.drain(..len).collect();
            reply.framing = Framing::Length(len);
        } else {
            while self.fill()? {}
            reply.body = std::mem::take(&mut self.buf);
            reply.framing = Framing::UntilClose;
        }
        Ok(reply)
    }

    fn chunked_body(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let end = self.until(b"\r\n")?;
            let line = String::from_utf8_lossy(&self.buf[..end - 2]).into_owned();
            self.buf.drain(..end);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                // Trailer lines, then the empty line.
                loop {
                    let end = self.until(b"\r\n")?;
                    self.buf.drain(..end);
                    if end == 2 {
                        return Ok(body);
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if !self.fill()? {
                    return Err("closed inside a chunk".into());
                }
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err("chunk data not followed by CRLF".into());
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    fn reply(&mut self) -> Reply {
        self.try_reply(false).unwrap_or_else(|e| panic!("{e}"))
    }

    fn head_reply(&mut self) -> Reply {
        self.try_reply(true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The gateway closes the connection (FIN or reset) without sending
    /// another byte.
    fn assert_closed(&mut self, what: &str) {
        assert!(
            self.buf.is_empty(),
            "{what}: bytes after the response: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut tmp = [0u8; 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => {}
            Ok(n) => panic!(
                "{what}: expected a close, got {:?}",
                String::from_utf8_lossy(&tmp[..n])
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{what}: the connection is still open ({e})"),
        }
    }

    /// The connection still serves: a GET on it is answered by the upstream.
    fn assert_usable(&mut self, what: &str) {
        self.send(get("/o/next"));
        let r = self
            .try_reply(false)
            .unwrap_or_else(|e| panic!("{what}: the connection did not serve a next request: {e}"));
        assert_eq!(r.status, 200, "{what}: next request: {r:?}");
        assert_eq!(r.text(), "GET /o/next 0", "{what}");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP date (RFC 9110 §5.6.7 IMF-fixdate), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn is_imf_fixdate(v: &str) -> bool {
    let b = v.as_bytes();
    v.len() == 29 && v.ends_with(" GMT") && b[3] == b',' && b[19] == b':' && b[22] == b':'
}

// ---------------------------------------------------------------------------
// Raw recording upstream
// ---------------------------------------------------------------------------

/// A request as it reached the upstream: framing and decoded body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    /// Lower-case names, in arrival order.
    headers: Vec<(String, String)>,
    /// `length:N`, `chunked` or `none`.
    framing: String,
    body: Vec<u8>,
}

impl Seen {
    fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A keep-alive HTTP/1.1 server on 127.0.0.1:0, one thread per connection,
/// that parses requests itself (so it sees the framing the gateway chose)
/// and answers by path:
/// - `.../status/204`, `.../status/304`: that status, no body;
/// - `.../chunked`: 200, body `first|second|third` in three chunks written
///   apart;
/// - anything else: 200 with Content-Length and body `METHOD TARGET LEN`
///   (LEN: the request body's length), no body bytes for HEAD.
///
/// Every response carries `Server: raw-upstream`. The threads live until
/// the test process ends.
struct RawUpstream {
    addr: SocketAddr,
    /// Targets of request heads as they arrived, bodies complete or not.
    heads: Arc<Mutex<Vec<String>>>,
    /// Requests whose body arrived complete.
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RawUpstream {
    fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (h, s) = (Arc::clone(&heads), Arc::clone(&seen));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (h, s) = (Arc::clone(&h), Arc::clone(&s));
                std::thread::spawn(move || serve_upstream_connection(stream, &h, &s));
            }
        });
        RawUpstream { addr, heads, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the upstream saw no request")
    }

    fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }

    /// Nothing the upstream received (even a head whose body never came)
    /// names the smuggled request.
    fn assert_nothing_smuggled(&self, what: &str) {
        let heads = self.heads();
        assert!(
            !heads.iter().any(|t| t.contains("smuggled")),
            "{what}: a smuggled request reached the upstream: {heads:?}"
        );
    }
}

fn serve_upstream_connection(
    stream: TcpStream,
    heads: &Mutex<Vec<String>>,
    seen: &Mutex<Vec<Seen>>,
) {
    let mut conn = Client {
        stream,
        buf: Vec::new(),
    };
    // The gateway keeps pooled connections open; a long deadline is fine.
    let _ = conn.stream.set_read_timeout(Some(Duration::from_secs(60)));
    loop {
        let Ok(end) = conn.until(b"\r\n\r\n") else {
            return;
        };
        let head = String::from_utf8_lossy(&conn.buf[..end]).into_owned();
        conn.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        heads.lock().unwrap().push(target.clone());
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let (framing, body) = if value("transfer-encoding").is_some() {
            match conn.chunked_body() {
                Ok(b) => ("chunked".to_owned(), b),
                Err(_) => return,
            }
        } else if let Some(len) = value("content-length") {
            let Ok(len) = len.parse::<usize>() else {
                return;
            };
            while conn.buf.len() < len {
                if !matches!(conn.fill(), Ok(true)) {
                    return;
                }
            }
            (format!("length:{len}"), conn.buf.drain(..len).collect())
        } else {
            ("none".to_owned(), Vec::new())
        };
        let body_len = body.len();
        seen.lock().unwrap().push(Seen {
            method: method.clone(),
            target: target.clone(),
            headers,
            framing,
            body,
        });
        let ok = if target.ends_with("/status/204") {
            conn.stream
                .write_all(b"HTTP/1.1 204 No Content\r\nServer: raw-upstream\r\n\r\n")
        } else if target.ends_with("/status/304") {
            conn.stream.write_all(
                b"HTTP/1.1 304 Not Modified\r\nServer: raw-upstream\r\nETag: \"v1\"\r\n\r\n",
            )
        } else if target.ends_with("/chunked") {
            write_chunked_answer(&mut conn.stream, method == "HEAD")
        } else {
            let text = format!("{method} {target} {body_len}");
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nServer: raw-upstream\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                text.len()
            );
            if method != "HEAD" {
                out.push_str(&text);
            }
            conn.stream.write_all(out.as_bytes())
        };
        if ok.is_err() {
            return;
        }
    }
}

/// A chunked answer written in pieces, so that the gateway forwards a body
/// whose length it cannot know from the head.
fn write_chunked_answer(s: &mut TcpStream, head: bool) -> std::io::Result<()> {
    s.write_all(
        b"HTTP/1.1 200 OK\r\nServer: raw-upstream\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    if head {
        return Ok(());
    }
    for piece in [
        &b"6\r\nfirst|\r\n"[..],
        b"7\r\nsecond|\r\n",
        b"5\r\nthird\r\n",
    ] {
        s.write_all(piece)?;
        s.flush()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    s.write_all(b"0\r\n\r\n")
}

// ---------------------------------------------------------------------------
// 1. Keep-alive
// ---------------------------------------------------------------------------

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    for i in 0..5 {
        c.send(get(&format!("/o/ka{i}")));
        let r = c.reply();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.text(), format!("GET /o/ka{i} 0"));
        assert!(!r.has_connection_close(), "{r:?}");
    }
    assert_eq!(
        up.targets(),
        ["/o/ka0", "/o/ka1", "/o/ka2", "/o/ka3", "/o/ka4"]
    );
}

/// HTTP/1.0 defaults to close: answered, then closed. The status line says
/// HTTP/1.1, the version the gateway speaks (RFC 9110 §6.2; hyper answered
/// `HTTP/1.0`).
#[test]
fn http10_without_keep_alive_is_answered_then_closed() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("GET /o/ten HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.text(), "GET /o/ten 0");
    assert_eq!(r.framing, Framing::Length(12));
    c.assert_closed("HTTP/1.0 without keep-alive");
}

/// HTTP/1.0 with `Connection: keep-alive` stays open, and the answer says
/// so (`Connection: keep-alive`), since a 1.0 client needs to be told.
#[test]
fn http10_with_keep_alive_stays_open() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    for i in 0..2 {
        c.send(format!(
            "GET /o/ten{i} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        ));
        let r = c.reply();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.text(), format!("GET /o/ten{i} 0"));
        assert_eq!(
            r.header("connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("keep-alive"),
            "{r:?}"
        );
    }
    c.assert_usable("after two HTTP/1.0 keep-alive exchanges");
}

/// A streamed (chunked upstream) body cannot be chunked to an HTTP/1.0
/// client: it is delimited by closing, even when keep-alive was asked for.
#[test]
fn http10_gets_a_streamed_body_close_delimited() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("GET /o/chunked HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.framing, Framing::UntilClose, "{r:?}");
    assert_eq!(r.text(), "first|second|third");
}

#[test]
fn connection_close_from_an_http11_client_closes_after_the_response() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("GET /o/bye HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "GET /o/bye 0");
    assert!(
        r.has_connection_close(),
        "the answer says Connection: close"
    );
    c.assert_closed("after Connection: close");
}

// ---------------------------------------------------------------------------
// 2. Pipelining
// ---------------------------------------------------------------------------

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    let mut wire = get("/o/one");
    wire.push_str("POST /o/two HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello");
    wire.push_str("HEAD /o/three HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    wire.push_str(&get("/o/four"));
    c.send(wire);
    let one = c.reply();
    let two = c.reply();
    let three = c.head_reply();
    let four = c.reply();
    assert_eq!((one.status, one.text()), (200, "GET /o/one 0".into()));
    assert_eq!((two.status, two.text()), (200, "POST /o/two 5".into()));
    assert_eq!(three.status, 200);
    // HEAD keeps the upstream's Content-Length and sends no body.
    assert_eq!(three.header("content-length"), Some("15"), "{three:?}");
    assert_eq!((four.status, four.text()), (200, "GET /o/four 0".into()));
    assert_eq!(up.targets(), ["/o/one", "/o/two", "/o/three", "/o/four"]);
    assert_eq!(up.seen()[1].body, b"hello");
    c.assert_usable("after a pipelined batch");
}

// ---------------------------------------------------------------------------
// 3. Request bodies on the way in
// ---------------------------------------------------------------------------

#[test]
fn a_content_length_body_reaches_the_upstream_intact() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("POST /o/cl HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(c.reply().text(), "POST /o/cl 11");
    let seen = up.last();
    assert_eq!(seen.body, b"hello world");
    assert_eq!(seen.framing, "length:11");
    assert_eq!(seen.header_all("content-length"), ["11"]);
    assert!(seen.header_all("transfer-encoding").is_empty());
}

/// Chunk extensions and trailers are dropped; the data arrives whole, sent
/// upstream chunked (the gateway does not learn the length in advance).
#[test]
fn a_chunked_body_with_extensions_and_trailers_reaches_the_upstream_intact() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(
        "POST /o/chunks HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=value\r\nhello\r\n\
         1;quoted=\"a b\"\r\n \r\n\
         A\r\n0123456789\r\n\
         0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
    );
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "POST /o/chunks 16".into()));
    let seen = up.last();
    assert_eq!(seen.body, b"hello 0123456789");
    assert_eq!(seen.framing, "chunked");
    assert!(seen.header_all("content-length").is_empty());
    assert!(seen.header_all("x-trailer").is_empty(), "{seen:?}");
    c.assert_usable("after a chunked body with trailers");
}

#[test]
fn a_body_sent_in_small_pieces_with_pauses_reaches_the_upstream_intact() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("POST /o/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20\r\n\r\n");
    for piece in ["abcde", "fghij", "klmno", "pqrst"] {
        std::thread::sleep(Duration::from_millis(50));
        c.send(piece);
    }
    assert_eq!(c.reply().text(), "POST /o/slow 20");
    assert_eq!(up.last().body, b"abcdefghijklmnopqrst");

    // The same, chunked, with a chunk split across writes.
    c.send(
        "POST /o/slow-chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for piece in ["4\r\nab", "cd\r", "\n3\r\nefg\r\n", "0\r\n", "\r\n"] {
        std::thread::sleep(Duration::from_millis(50));
        c.send(piece);
    }
    assert_eq!(c.reply().text(), "POST /o/slow-chunked 7");
    assert_eq!(up.last().body, b"abcdefg");
}

#[test]
fn a_one_mib_body_reaches_the_upstream_intact() {
    const MIB: usize = 1024 * 1024;
    let (up, gw) = start();
    let body = pattern(MIB);
    let mut c = Client::open(gw.addr);
    c.send(format!(
        "PUT /o/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {MIB}\r\n\r\n"
    ));
    c.send(&body);
    assert_eq!(c.reply().text(), format!("PUT /o/big {MIB}"));
    assert!(up.last().body == body, "the 1 MiB body changed on the way");

    c.send("PUT /o/big-chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.chunks(100_000) {
        c.send(format!("{:x}\r\n", piece.len()));
        c.send(piece);
        c.send("\r\n");
    }
    c.send("0\r\n\r\n");
    assert_eq!(c.reply().text(), format!("PUT /o/big-chunked {MIB}"));
    assert!(
        up.last().body == body,
        "the 1 MiB chunked body changed on the way"
    );
}

/// The client holds its body until `100 Continue`, which comes before the
/// body is sent; the final answer follows.
#[test]
fn expect_100_continue_gets_100_before_the_body_then_the_answer() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(
        "POST /o/expect HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    let interim = c.reply();
    assert_eq!(interim.version, "HTTP/1.1");
    assert_eq!(interim.status, 100, "{interim:?}");
    assert!(interim.headers.is_empty(), "{interim:?}");
    c.send("data");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "POST /o/expect 4".into()));
    assert_eq!(up.last().body, b"data");
    // The gateway answered the expectation: it is not passed on (as Envoy
    // does), where the upstream's own 100 would go nowhere.
    assert!(up.last().header_all("expect").is_empty());
    c.assert_usable("after 100-continue");
}

/// Refused before the body is wanted: no `100 Continue`, just the 401, and
/// the connection closes (the client may or may not send the body).
#[test]
fn expect_100_continue_refused_by_the_policy_gets_401_without_100_and_closes() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(
        "POST /p/expect HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    let r = c.reply();
    assert_eq!(r.status, 401, "{r:?}");
    c.assert_closed("a 401 to an Expect: 100-continue request");
    assert!(up.heads().is_empty(), "{:?}", up.heads());
}

// ---------------------------------------------------------------------------
// 4. Response framing on the way out
// ---------------------------------------------------------------------------

#[test]
fn a_content_length_response_keeps_its_length() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(get("/o/len"));
    let r = c.reply();
    assert_eq!(r.framing, Framing::Length(12), "{r:?}");
    assert_eq!(r.text(), "GET /o/len 0");
    assert!(r.header("transfer-encoding").is_none());
    c.assert_usable("after a Content-Length response");
}

#[test]
fn a_streamed_chunked_response_reaches_the_client_chunked() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(get("/o/chunked"));
    let r = c.reply();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.framing, Framing::Chunked, "{r:?}");
    assert!(r.header("content-length").is_none(), "{r:?}");
    assert_eq!(r.text(), "first|second|third");
    c.assert_usable("after a chunked response");
}

#[test]
fn head_gets_headers_without_body_and_the_connection_is_reusable() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("HEAD /o/h HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let r = c.head_reply();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length"), Some("11"), "{r:?}");
    // A HEAD to a streamed resource: the upstream's chunked head, no body.
    c.send("HEAD /o/chunked HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let r = c.head_reply();
    assert_eq!(r.status, 200, "{r:?}");
    // `assert_usable` fails if any body byte followed either head.
    c.assert_usable("after two HEADs");
    assert_eq!(up.seen()[0].method, "HEAD");
}

#[test]
fn no_content_and_not_modified_carry_no_body_and_the_connection_is_reusable() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(get("/o/status/204"));
    let r = c.reply();
    assert_eq!(r.status, 204, "{r:?}");
    assert!(r.header("content-length").is_none(), "{r:?}");
    assert!(r.header("transfer-encoding").is_none(), "{r:?}");
    c.assert_usable("after a 204");
    c.send(get("/o/status/304"));
    let r = c.reply();
    assert_eq!(r.status, 304, "{r:?}");
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(r.header("transfer-encoding").is_none(), "{r:?}");
    c.assert_usable("after a 304");
}

// ---------------------------------------------------------------------------
// 5. Malformed input: refused by the gateway itself, connection closed,
//    nothing reaches the upstream
// ---------------------------------------------------------------------------

/// Sends `raw` followed by [`SMUGGLED`] on a fresh connection and expects
/// the gateway's own `status` with an empty body and `Connection: close`, a
/// close, and no request at the upstream; then checks the gateway still
/// serves.
fn assert_refused_and_closed(raw: &[u8], status: u16) {
    let (up, mut gw) = start();
    let mut c = Client::open(gw.addr);
    let mut wire = raw.to_vec();
    wire.extend_from_slice(SMUGGLED.as_bytes());
    // The gateway may answer and close before reading all of a large head:
    // the write can fail, the answer is still read.
    let _ = c.stream.write_all(&wire);
    let what = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
    let r = c
        .try_reply(false)
        .unwrap_or_else(|e| panic!("{what:?}: no answer: {e}\n{}", gw.logs()));
    assert_eq!(r.status, status, "{what:?}: {r:?}");
    // Says why, as every answer of the gateway's own does.
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{what:?}: {r:?}"
    );
    let said: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{what:?}: body not JSON ({e}): {r:?}"));
    let why = said["message"].as_str().unwrap_or_default();
    assert!(!why.is_empty(), "{what:?}: {r:?}");
    assert!(
        support::eventually(Duration::from_secs(5), || gw.logs().contains(why)),
        "{what:?}: the log says {why:?} too"
    );
    assert!(r.has_connection_close(), "{what:?}: {r:?}");
    c.assert_closed(&what);
    assert!(
        up.heads().is_empty(),
        "{what:?}: upstream saw {:?}",
        up.heads()
    );
    gw.assert_alive();
    Client::open(gw.addr).assert_usable(&format!("a new connection after {what:?}"));
}

#[test]
fn garbage_request_line_is_400() {
    assert_refused_and_closed(b"THIS IS NOT HTTP\r\n\r\n", 400);
    assert_refused_and_closed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400);
    assert_refused_and_closed(b"GET /o/a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400);
}

#[test]
fn header_line_without_colon_is_400() {
    assert_refused_and_closed(
        b"GET /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nNoColonHere\r\n\r\n",
        400,
    );
    assert_refused_and_closed(
        b"GET /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\n: empty-name\r\n\r\n",
        400,
    );
}

#[test]
fn space_before_the_header_colon_is_400() {
    assert_refused_and_closed(
        b"GET /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A : b\r\n\r\n",
        400,
    );
}

#[test]
fn obs_fold_continuation_line_is_400() {
    assert_refused_and_closed(
        b"GET /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\r\n folded\r\n\r\n",
        400,
    );
}

#[test]
fn non_numeric_content_length_is_400() {
    assert_refused_and_closed(
        b"POST /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4x\r\n\r\n",
        400,
    );
    assert_refused_and_closed(
        b"POST /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
        400,
    );
    assert_refused_and_closed(
        b"POST /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: +5\r\n\r\nhello",
        400,
    );
    // A list, even of equal values, in one field line.
    assert_refused_and_closed(
        b"POST /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5, 5\r\n\r\nhello",
        400,
    );
}

#[test]
fn two_different_content_lengths_are_400() {
    let raw = format!(
        "POST /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n",
        SMUGGLED.len()
    );
    assert_refused_and_closed(raw.as_bytes(), 400);
}

/// The same length on two field lines is one length: served, and the
/// upstream sees a single Content-Length.
#[test]
fn two_equal_content_lengths_are_forwarded_as_one() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("POST /o/eq HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(c.reply().text(), "POST /o/eq 2");
    assert_eq!(up.last().header_all("content-length"), ["2"]);
    c.assert_usable("after two equal Content-Lengths");
}

#[test]
fn transfer_encoding_not_ending_in_chunked_is_400() {
    let raw = format!(
        "POST /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nTransfer-Encoding: gzip\r\n\r\n",
        SMUGGLED.len()
    );
    assert_refused_and_closed(raw.as_bytes(), 400);
    assert_refused_and_closed(
        b"POST /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    );
}

/// Present but empty, `Transfer-Encoding` still overrides a length (RFC
/// 9112 §6.3) and does not end in chunked: refused, never framed by the
/// length as if it were absent.
#[test]
fn an_empty_transfer_encoding_is_400() {
    for te in ["Transfer-Encoding:", "Transfer-Encoding: ,"] {
        let raw = format!(
            "POST /o/empty-te HTTP/1.1\r\nHost: 127.0.0.1\r\n{te}\r\nContent-Length: 5\r\n\r\nhello"
        );
        assert_refused_and_closed(raw.as_bytes(), 400);
    }
}

#[test]
fn transfer_encoding_on_http10_is_400() {
    assert_refused_and_closed(
        b"POST /o/x HTTP/1.0\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

/// Both framings: refused with 400 and closed (RFC 9112 §6.1 lets a server
/// reject it; hyper let Transfer-Encoding win and forwarded it), so no
/// reader can take either framing; nothing reaches the upstream.
#[test]
fn content_length_with_chunked_is_400_then_closed() {
    let raw = format!(
        "POST /o/clte HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n\
         3\r\nabc\r\n0\r\n\r\n{SMUGGLED}",
        13 + SMUGGLED.len()
    );
    assert_refused_and_closed(raw.as_bytes(), 400);
}

/// The head is already upstream when the broken chunk is read: the client
/// gets the gateway's JSON 400 (no `Connection: close` header) and a close;
/// the upstream gets an unfinished body (its request never completes) and
/// nothing after it.
#[test]
fn a_broken_chunked_body_is_400_and_closes() {
    for (what, body) in [
        ("non-hex chunk size", "zz\r\n"),
        ("chunk size overflowing 64 bits", "fffffffffffffffff\r\n"),
        ("chunk data not followed by CRLF", "2\r\nokXX0\r\n\r\n"),
    ] {
        let (up, gw) = start();
        let mut c = Client::open(gw.addr);
        c.send(format!(
            "POST /o/badchunk HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}{SMUGGLED}"
        ));
        let r = c.reply();
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert_eq!(
            r.text(),
            r#"{"message":"incomplete request body"}"#,
            "{what}"
        );
        c.assert_closed(what);
        assert!(up.seen().is_empty(), "{what}: {:?}", up.seen());
        up.assert_nothing_smuggled(what);
    }
}

/// Heads are capped at 64 KiB, as response heads from upstreams are (hyper
/// took up to about 400 KiB; nginx's default is 32 KiB): a 60 KiB head is
/// served, a 70 KiB or 1 MiB one is 431.
#[test]
fn a_60_kib_head_is_served_and_a_70_kib_or_1_mib_head_is_431() {
    let (up, gw) = start();
    let big = "a".repeat(60 * 1024);
    let mut c = Client::open(gw.addr);
    c.send(format!(
        "GET /o/big-head HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\n\r\n"
    ));
    assert_eq!(c.reply().status, 200);
    assert_eq!(up.last().header_all("x-big"), [big.as_str()]);
    drop((up, gw));

    let over = format!(
        "GET /o/over-head HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    assert_refused_and_closed(over.as_bytes(), 431);

    let huge = format!(
        "GET /o/huge-head HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    assert_refused_and_closed(huge.as_bytes(), 431);
}

#[test]
fn a_request_target_over_64_kib_is_414() {
    let raw = format!(
        "GET /o/{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_refused_and_closed(raw.as_bytes(), 414);
}

#[test]
fn more_than_100_headers_is_431() {
    let mut raw = b"GET /o/many HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..100 {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert_refused_and_closed(&raw, 431);
}

/// 100 headers in all is still fine.
#[test]
fn exactly_100_headers_are_served() {
    let (up, gw) = start();
    let mut raw = b"GET /o/hundred HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for i in 0..99 {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    let mut c = Client::open(gw.addr);
    c.send(&raw);
    assert_eq!(c.reply().status, 200);
    assert_eq!(up.last().header_all("x-h98"), ["v"]);
}

/// Bare LF line endings are accepted (RFC 9112 §2.2 allows a recipient to),
/// the request is served, and the connection stays in step.
#[test]
fn bare_lf_line_endings_are_accepted() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("GET /o/lf HTTP/1.1\nHost: 127.0.0.1\nX-A: b\n\n");
    let r = c.reply();
    assert_eq!((r.status, r.text()), (200, "GET /o/lf 0".into()));
    assert_eq!(up.last().header_all("x-a"), ["b"]);
    c.assert_usable("after a bare-LF request");
}

/// Empty lines before a request line (a client's stray CRLF after a body)
/// are skipped (RFC 9112 §2.2).
#[test]
fn empty_lines_before_a_request_line_are_ignored() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(format!("\r\n{}", get("/o/lead")));
    assert_eq!(c.reply().text(), "GET /o/lead 0");
    c.send(format!(
        "POST /o/body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nok\r\n\r\n{}",
        get("/o/after")
    ));
    assert_eq!(c.reply().text(), "POST /o/body 2");
    assert_eq!(c.reply().text(), "GET /o/after 0");
    assert_eq!(up.targets(), ["/o/lead", "/o/body", "/o/after"]);
}

/// HTAB and obs-text (bytes >= 0x80) are valid in a field value and reach
/// the upstream unchanged.
#[test]
fn tab_and_obs_text_in_header_values_are_forwarded() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    let mut raw =
        b"GET /o/values HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Tab: a\tb\r\nX-Obs: caf".to_vec();
    raw.extend_from_slice(&[0xc3, 0xa9]);
    raw.extend_from_slice(b"\r\n\r\n");
    c.send(&raw);
    assert_eq!(c.reply().status, 200);
    let seen = up.last();
    assert_eq!(seen.header_all("x-tab"), ["a\tb"]);
    assert_eq!(seen.header_all("x-obs"), ["caf\u{e9}"]);
}

/// An absolute-form target (RFC 9112 §3.2.2) is routed by its path and
/// query; the upstream gets origin form.
#[test]
fn an_absolute_form_target_is_served_by_its_path() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("GET http://127.0.0.1/o/abs?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(c.reply().text(), "GET /o/abs?q=1 0");
    assert_eq!(up.targets(), ["/o/abs?q=1"]);
}

/// Heads that parse but that the gateway will not route: its own JSON 400,
/// and the connection stays usable.
#[test]
fn asterisk_and_authority_forms_and_a_lower_case_method_are_the_gateways_400() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    for (raw, message) in [
        ("OPTIONS * HTTP/1.1", "invalid request path"),
        ("CONNECT 127.0.0.1:80 HTTP/1.1", "invalid request path"),
        ("get /o/x HTTP/1.1", "invalid request method"),
    ] {
        c.send(format!("{raw}\r\nHost: 127.0.0.1\r\n\r\n"));
        let r = c.reply();
        assert_eq!(r.status, 400, "{raw}: {r:?}");
        assert_eq!(r.text(), format!("{{\"message\":\"{message}\"}}"), "{raw}");
        assert!(!r.has_connection_close(), "{raw}: {r:?}");
    }
    c.assert_usable("after the gateway's 400s");
    assert_eq!(up.targets(), ["/o/next"]);
}

#[test]
fn http2_and_http3_versions_in_a_request_line_are_400() {
    assert_refused_and_closed(b"GET /o/x HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 400);
    assert_refused_and_closed(b"GET /o/x HTTP/3.0\r\nHost: 127.0.0.1\r\n\r\n", 400);
    assert_refused_and_closed(b"GET /o/x HTTP/1.2\r\nHost: 127.0.0.1\r\n\r\n", 400);
}

#[test]
fn nul_or_cr_inside_a_header_value_is_400() {
    assert_refused_and_closed(
        b"GET /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\0b\r\n\r\n",
        400,
    );
    assert_refused_and_closed(
        b"GET /o/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\n\r\n",
        400,
    );
}

// ---------------------------------------------------------------------------
// 6. After the gateway's own refusal
// ---------------------------------------------------------------------------

/// A POST refused by the policy (401) whose small body came with the head:
/// the body is drained (never parsed as a request) and the connection
/// serves the next request.
#[test]
fn a_refused_post_with_a_small_body_leaves_the_connection_usable() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(format!(
        "POST /p/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    ));
    let r = c.reply();
    assert_eq!(r.status, 401, "{r:?}");
    assert!(!r.has_connection_close(), "{r:?}");
    c.assert_usable("after a 401 with a drained body");
    assert_eq!(up.targets(), ["/o/next"]);
    up.assert_nothing_smuggled("refused POST");

    // The same with a token goes through.
    c.send(format!(
        "POST /p/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 2\r\n\r\nok",
        token()
    ));
    assert_eq!(c.reply().text(), "POST /p/x 2");
}

/// A POST refused (401) before its body arrived: the gateway answers, then
/// closes rather than wait for the body, and says so with `Connection:
/// close` (hyper closed without saying).
#[test]
fn a_refused_post_whose_body_has_not_arrived_gets_401_then_a_close() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("POST /p/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.has_connection_close(), "{r:?}");
    c.assert_closed("a 401 before the body");
    assert!(up.heads().is_empty());
}

#[test]
fn the_gateways_404_leaves_the_connection_usable() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(get("/nowhere"));
    let r = c.reply();
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.text(), r#"{"message":"no route matched"}"#);
    c.assert_usable("after a 404");
}

// ---------------------------------------------------------------------------
// 7. Date and Server
// ---------------------------------------------------------------------------

/// Every answer has a `Date`: the gateway's own (401, 404, a parse-error
/// 400) and proxied ones (which carry the gateway's date: the upstream sent
/// none). `Server`: the gateway adds none of its own and passes the
/// upstream's through.
#[test]
fn date_is_on_every_answer_and_server_is_the_upstreams() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(get("/p/x"));
    let unauthorized = c.reply();
    c.send(get("/nowhere"));
    let not_found = c.reply();
    c.send(get("/o/x"));
    let proxied = c.reply();
    c.send(get("/o/chunked"));
    let streamed = c.reply();
    let mut bad = Client::open(gw.addr);
    bad.send("NOT HTTP\r\n\r\n");
    let parse_error = bad.reply();
    for (what, r, status) in [
        ("401", &unauthorized, 401),
        ("404", &not_found, 404),
        ("proxied", &proxied, 200),
        ("streamed", &streamed, 200),
        ("parse error", &parse_error, 400),
    ] {
        assert_eq!(r.status, status, "{what}: {r:?}");
        let date = r.header("date").unwrap_or_default();
        assert!(is_imf_fixdate(date), "{what}: Date {date:?} in {r:?}");
    }
    assert_eq!(unauthorized.header("server"), None);
    assert_eq!(not_found.header("server"), None);
    assert_eq!(parse_error.header("server"), None);
    assert_eq!(proxied.header("server"), Some("raw-upstream"));
    assert_eq!(streamed.header("server"), Some("raw-upstream"));
}

// ---------------------------------------------------------------------------
// 8. h2c prior knowledge on the plain listener
// ---------------------------------------------------------------------------

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
const H2_EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// The first frame the server sends: its SETTINGS (type 4, no ACK flag,
/// stream 0).
fn assert_h2_settings_first(c: &mut Client) {
    while c.buf.len() < 9 {
        assert!(
            c.fill().unwrap(),
            "closed before a frame: {:?}",
            String::from_utf8_lossy(&c.buf)
        );
    }
    let f = &c.buf[..9];
    let (kind, flags) = (f[3], f[4]);
    let stream = u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff;
    assert_eq!((kind, flags, stream), (4, 0, 0), "first frame header {f:?}");
}

#[test]
fn h2c_prior_knowledge_preface_is_served_as_http2() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send([H2_PREFACE, H2_EMPTY_SETTINGS].concat());
    assert_h2_settings_first(&mut c);
}

#[test]
fn h2c_preface_split_across_two_writes_is_served_as_http2() {
    let (_up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send(&H2_PREFACE[..10]);
    // Not synchronisation: keeps the two writes in two TCP segments.
    std::thread::sleep(Duration::from_millis(100));
    c.send([&H2_PREFACE[10..], H2_EMPTY_SETTINGS].concat());
    assert_h2_settings_first(&mut c);
}

// ---------------------------------------------------------------------------
// Wrong under hyper's server, right since the gateway's own loop.
// ---------------------------------------------------------------------------

/// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a
/// Host header. hyper's server routed it (as if no host had been named) and
/// served 200.
#[test]
fn an_http11_request_without_host_is_400() {
    let (up, gw) = start();
    let mut c = Client::open(gw.addr);
    c.send("GET /o/nohost HTTP/1.1\r\n\r\n");
    let r = c.reply();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(up.heads().is_empty(), "upstream saw {:?}", up.heads());
}

/// A transfer coding before the final `chunked` (`gzip, chunked`, or
/// `chunked` on two field lines, i.e. chunked twice): hyper decoded it as
/// plain chunked and forwarded it as `chunked` alone, so the upstream got
/// still-coded bytes labelled as identity. Refused now with 400 (RFC 9112
/// §6.1 suggests 501 for an unknown coding; the gateway gives client input
/// no 5xx) and closed; nothing reaches the upstream.
#[test]
fn transfer_codings_before_chunked_are_refused() {
    for te in [
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ] {
        let (up, gw) = start();
        let mut c = Client::open(gw.addr);
        c.send(format!(
            "POST /o/te HTTP/1.1\r\nHost: 127.0.0.1\r\n{te}\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        ));
        let r = c.reply();
        assert_eq!(r.status, 400, "{te:?}: {r:?}");
        c.assert_closed(te);
        assert!(
            up.heads().is_empty(),
            "{te:?}: upstream saw {:?}",
            up.seen()
        );
    }
}

// ---------------------------------------------------------------------------
// Closing
// ---------------------------------------------------------------------------

/// A request that closes the connection with more requests pipelined behind
/// it: the answer arrives whole (the gateway reads and drops the rest before
/// it closes, instead of resetting the connection under the answer), and
/// nothing behind it is served.
#[test]
fn closing_with_pipelined_bytes_unread_still_delivers_the_answer() {
    let (up, gw) = start();
    for round in 0..5 {
        let mut c = Client::open(gw.addr);
        let mut wire =
            format!("GET /o/last{round} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        for i in 0..200 {
            wire.push_str(&format!(
                "GET /o/after{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(200)
            ));
        }
        c.send(wire);
        let r = c.reply();
        assert_eq!(r.status, 200, "round {round}: {r:?}");
        assert_eq!(r.text(), format!("GET /o/last{round} 0"));
        assert!(r.has_connection_close(), "{r:?}");
        c.assert_closed("after Connection: close");
    }
    assert!(
        up.targets().iter().all(|t| t.starts_with("/o/last")),
        "{:?}",
        up.targets()
    );
}

/// At a stop, a connection that never sent a byte, one idle between
/// requests and one part-way through a head are closed at once, not kept
/// until the 30 s idle timeout (which is also the drain's bound), and the
/// process exits.
#[test]
fn a_stop_closes_fresh_and_idle_connections_at_once() {
    let (up, mut gw) = start();
    let mut fresh = Client::open(gw.addr);
    let mut idle = Client::open(gw.addr);
    idle.send(get("/o/before-stop"));
    assert_eq!(idle.reply().status, 200);
    let mut partial = Client::open(gw.addr);
    partial.send("GET /o/partial HTTP/1.1\r\nHost: 127.0");
    // Most likely read by the gateway by the time another connection is
    // answered; closed at the stop either way.
    let mut probe = Client::open(gw.addr);
    probe.send(get("/o/probe"));
    assert_eq!(probe.reply().status, 200);
    gw.signal("TERM");
    assert!(
        gw.exited_within(Duration::from_secs(10)),
        "still running 10 s after SIGTERM:\n{}",
        gw.logs()
    );
    fresh.assert_closed("a fresh connection at a stop");
    idle.assert_closed("an idle connection at a stop");
    partial.assert_closed("a connection with half a head at a stop");
    assert!(
        !up.targets().iter().any(|t| t == "/o/partial"),
        "{:?}",
        up.targets()
    );
}
