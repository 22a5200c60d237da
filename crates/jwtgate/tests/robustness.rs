//! Input from the network is written by an attacker (STYLE.md). These tests
//! throw seeded random tokens, header values and raw request targets at the
//! real binary and check that it never answers 5xx for client input, never
//! lets an unauthenticated request through, never panics, and keeps serving.
//! The RNG is seeded, so a failure reproduces; the seed is in the message.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const SECRET: &str = "robust-secret-0123456789abcdefghijk";

fn protected_config(up: &Upstream) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: api
    paths: ["/*"]
    upstream: {{ nodes: ["{}"] }}
    jwt: {{}}
"#,
        up.node()
    )
}

fn good_token() -> String {
    sign_hs("HS256", SECRET, claims_for("user123"))
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A random candidate token: several shapes, from noise to a valid token
/// with one character changed.
fn random_token(rng: &mut Rng, valid: &str) -> Vec<u8> {
    match rng.below(6) {
        // Printable noise.
        0 => {
            let n = rng.below(400);
            (0..n)
                .map(|_| 0x21 + rng.below(0x7e - 0x21 + 1) as u8)
                .collect()
        }
        // Any byte allowed in a header value (no CTLs), including obs-text.
        1 => {
            let n = 1 + rng.below(300);
            (0..n)
                .map(|_| loop {
                    let b = rng.next_u64() as u8;
                    if b >= 0x21 && b != 0x7f {
                        break b;
                    }
                })
                .collect()
        }
        // Three random base64url segments.
        2 => {
            let seg = |rng: &mut Rng| -> String {
                let n = rng.below(120);
                (0..n).map(|_| *rng.pick(B64URL) as char).collect()
            };
            format!("{}.{}.{}", seg(rng), seg(rng), seg(rng)).into_bytes()
        }
        // The real header, a random payload, a random signature.
        3 => {
            let header = valid.split('.').next().unwrap();
            let payload_len = rng.below(200);
            let payload = b64(&rng.bytes(payload_len));
            let sig_len = rng.below(80);
            let sig = b64(&rng.bytes(sig_len));
            format!("{header}.{payload}.{sig}").into_bytes()
        }
        // A valid token with one character (not a segment's last) changed.
        4 => {
            let mut t = valid.as_bytes().to_vec();
            loop {
                let i = rng.below(t.len());
                let last_of_segment = i + 1 == t.len() || t[i + 1] == b'.';
                if t[i] == b'.' || last_of_segment {
                    continue;
                }
                let c = *rng.pick(B64URL);
                if c != t[i] {
                    t[i] = c;
                    break;
                }
            }
            t
        }
        // Many dots and empty segments.
        _ => {
            let n = rng.below(40);
            (0..n).map(|_| *rng.pick(b"..a=_-")).collect()
        }
    }
}

#[test]
fn random_tokens_are_refused_without_5xx() {
    let up = Upstream::start();
    let mut gw = Gateway::start(&protected_config(&up));
    let valid = good_token();
    let seed = 0x5eed_0001;
    let mut rng = Rng::new(seed);
    for i in 0..300 {
        let token = random_token(&mut rng, &valid);
        let req = match rng.below(3) {
            0 => {
                let mut line = b"Authorization: ".to_vec();
                if rng.below(2) == 0 {
                    line.extend_from_slice(b"Bearer ");
                }
                line.extend_from_slice(&token);
                Req::get("/x").raw_header(&line)
            }
            1 => Req::get(&format!("/x?jwt={}", percent_encode(&token))),
            _ => {
                let cookie: Vec<u8> = token
                    .iter()
                    .copied()
                    .filter(|b| (0x21..0x7f).contains(b) && *b != b';' && *b != b',')
                    .collect();
                let mut line = b"Cookie: jwt=".to_vec();
                line.extend_from_slice(&cookie);
                Req::get("/x").raw_header(&line)
            }
        };
        let resp = gw.send(&req);
        assert!(
            resp.status == 401 || resp.status == 400,
            "seed {seed:#x} case {i}: token {:?} got {} {:?}",
            String::from_utf8_lossy(&token),
            resp.status,
            resp.text()
        );
    }
    assert_eq!(
        up.count(),
        0,
        "a random token reached the upstream: {:?}",
        up.records()
    );
    gw.assert_alive();
    assert_eq!(
        gw.send(&Req::get("/x").bearer(&valid)).status,
        200,
        "still serving"
    );
}

/// Tokens that are correctly signed but carry claims of unexpected types.
#[test]
fn signed_tokens_with_odd_claims_never_cause_5xx() {
    let up = Upstream::start();
    let mut gw = Gateway::start(&protected_config(&up));
    let n = now();
    let mut deep = json!("bottom");
    for _ in 0..300 {
        deep = json!([deep]);
    }
    let payloads = vec![
        json!({"key": "user123", "exp": "9999999999"}),
        json!({"key": "user123", "exp": 1e300}),
        json!({"key": "user123", "exp": -1}),
        json!({"key": "user123", "exp": i64::MAX}),
        json!({"key": "user123", "exp": u64::MAX}),
        json!({"key": "user123", "exp": i64::MIN}),
        json!({"key": "user123", "exp": (n + 600) as f64 + 0.5}),
        json!({"key": "user123", "exp": null}),
        json!({"key": "user123", "exp": n + 600, "nbf": "yesterday"}),
        json!({"key": "user123", "exp": n + 600, "nbf": i64::MIN}),
        json!({"key": "user123", "exp": n + 600, "nbf": 1e308}),
        json!({"key": "user123", "exp": n + 600, "deep": deep}),
        json!({"key": "", "exp": n + 600}),
        json!({"key": "x".repeat(5000), "exp": n + 600}),
        json!({"key": "user123\u{0}", "exp": n + 600}),
        json!({"key": "üser123", "exp": n + 600}),
        json!({"key": "user123", "exp": n + 600, "key2": {"key": "user123"}}),
    ];
    for (i, p) in payloads.iter().enumerate() {
        let token = sign_hs("HS256", SECRET, p.clone());
        let resp = gw.send(&Req::get("/x").bearer(&token));
        assert!(
            resp.status == 200 || resp.status == 401,
            "payload {i} {:.200}: got {} {:?}",
            p.to_string(),
            resp.status,
            resp.text()
        );
    }
    let headers = [
        json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}),
        json!({"alg": 256}),
        json!({"typ": "JWT"}),
        json!({"alg": ["HS256"]}),
        json!({"alg": "HS256", "kid": "../../etc/passwd"}),
        json!({"alg": "HS256", "jku": "http://127.0.0.1:1/keys"}),
        json!({"alg": "RS256"}),
        json!({"alg": ""}),
    ];
    for (i, h) in headers.iter().enumerate() {
        let token =
            sign_hs_with_header("HS256", SECRET.as_bytes(), h.clone(), claims_for("user123"));
        let resp = gw.send(&Req::get("/x").bearer(&token));
        assert!(
            resp.status == 200 || resp.status == 401,
            "header {i} {h}: got {} {:?}",
            resp.status,
            resp.text()
        );
        if h["alg"] != "HS256" {
            assert_eq!(resp.status, 401, "header {i} {h} must be refused");
        }
    }
    gw.assert_alive();
    assert_eq!(
        gw.send(&Req::get("/x").bearer(&good_token())).status,
        200,
        "still serving"
    );
}

/// Names that must not be randomised: they change message framing, and a
/// wrong framing header makes the client, not the gateway, wait.
const FRAMING: [&str; 4] = ["content-length", "transfer-encoding", "expect", "host"];

fn random_header(rng: &mut Rng, ascii_only: bool) -> Vec<u8> {
    const NAMES: [&str; 14] = [
        "X-Random",
        "Authorization",
        "Cookie",
        "Connection",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Consumer-Username",
        "X-Credential-Identifier",
        "Accept",
        "User-Agent",
        "Keep-Alive",
        "TE",
        "Upgrade",
        "Forwarded",
    ];
    let name = if rng.below(3) == 0 {
        let n = 1 + rng.below(30);
        let name: String = (0..n)
            .map(|_| {
                *rng.pick(b"abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_!#$%&'*+.^`|~") as char
            })
            .collect();
        if FRAMING.contains(&name.to_ascii_lowercase().as_str()) {
            "X-Renamed".to_owned()
        } else {
            name
        }
    } else {
        rng.pick(&NAMES).to_string()
    };
    let n = rng.below(200);
    let value: Vec<u8> = (0..n)
        .map(|_| loop {
            let b = rng.next_u64() as u8;
            let ok = if ascii_only {
                (0x20..0x7f).contains(&b)
            } else {
                (b >= 0x20 && b != 0x7f) || b == b'\t'
            };
            if ok {
                break b;
            }
        })
        .collect();
    let mut line = name.into_bytes();
    line.extend_from_slice(b": ");
    line.extend_from_slice(&value);
    line
}

#[test]
fn random_header_values_never_cause_5xx() {
    let up = Upstream::start();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: echo
    paths: ["/echo/*"]
    upstream: {{ echo: true }}
    jwt: {{ header: x-token }}
  - name: up
    paths: ["/up/*"]
    upstream: {{ nodes: ["{}"] }}
    jwt: {{ header: x-token }}
  - name: open
    paths: ["/open/*"]
    upstream: {{ nodes: ["{}"] }}
"#,
        up.node(),
        up.node()
    );
    let mut gw = Gateway::start(&yaml);
    let token = good_token();
    let seed = 0x5eed_0002;
    let mut rng = Rng::new(seed);
    for i in 0..300 {
        let path = *rng.pick(&["/echo/x", "/up/x", "/open/x"]);
        // The recording upstream is a strict HTTP server: give it ASCII so
        // that a 502 could only be the gateway's fault.
        let ascii_only = path != "/echo/x";
        let mut req = Req::get(path).header("X-Token", &token);
        let mut lines = Vec::new();
        for _ in 0..1 + rng.below(5) {
            let line = random_header(&mut rng, ascii_only);
            lines.push(String::from_utf8_lossy(&line).into_owned());
            req = req.raw_header(&line);
        }
        let resp = gw.send(&req);
        assert!(
            resp.status < 500,
            "seed {seed:#x} case {i}: {path} with headers {lines:?} got {} {:?}",
            resp.status,
            resp.text()
        );
        if resp.status == 200 && path != "/open/x" && path != "/echo/x" {
            let r = up.last();
            assert_eq!(
                r.header_all("x-consumer-username"),
                vec!["alice"],
                "case {i}: {lines:?}"
            );
        }
    }
    gw.assert_alive();
    assert_eq!(
        gw.send(&Req::get("/up/x").header("X-Token", &token)).status,
        200,
        "still serving"
    );
}

#[test]
fn an_oversized_header_is_refused_with_4xx() {
    let up = Upstream::start();
    let mut gw = Gateway::start(&protected_config(&up));
    for size in [16 * 1024, 64 * 1024, 512 * 1024] {
        let big = "A".repeat(size);
        // Closing the connection on an absurd header is acceptable too.
        if let Ok(resp) = Req::get("/x").bearer(&big).try_send(gw.addr) {
            assert!(
                (400..500).contains(&resp.status),
                "{size}-byte Authorization: got {} {:?}",
                resp.status,
                resp.text()
            );
        }
    }
    assert_eq!(up.count(), 0);
    gw.assert_alive();
    assert_eq!(
        gw.send(&Req::get("/x").bearer(&good_token())).status,
        200,
        "still serving"
    );
}

const SEGMENTS: [&str; 40] = [
    "admin", "admin", "public", ".", "..", "", "%2e", "%2E%2e", ".%2e", "%2f", "%2F", "%5c", "%5C",
    "%00", "%41dmin", "%61dmin", "a", "%", "%z", "%zz", "%e", ";", ";x=1", "~", "%7e", "..%2f",
    "\\", "*", ":", "@", "!", "$", "'", "(", "[", "%ff", "%c3%a9", "x?y=..", "%3F", "%20",
];

fn random_target(rng: &mut Rng) -> String {
    if rng.below(4) == 0 {
        // Printable noise that starts with a slash.
        let n = rng.below(60);
        let tail: String = (0..n)
            .map(|_| (0x21 + rng.below(0x7e - 0x21 + 1) as u8) as char)
            .collect();
        return format!("/{tail}");
    }
    let n = 1 + rng.below(8);
    let segs: Vec<&str> = (0..n).map(|_| *rng.pick(&SEGMENTS)).collect();
    format!("/{}", segs.join("/"))
}

/// Every path that reached the open upstream must already be normalised, and
/// nothing may reach the protected upstream without a token.
#[test]
fn random_raw_paths_never_cause_5xx_or_bypass_the_protected_route() {
    let admin = Upstream::start_with("admin", Behavior::Answer);
    let open = Upstream::start_with("open", Behavior::Answer);
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: admin
    paths: ["/admin/*"]
    upstream: {{ nodes: ["{}"] }}
    jwt: {{}}
  - name: open
    paths: ["/*"]
    upstream: {{ nodes: ["{}"] }}
"#,
        admin.node(),
        open.node()
    );
    let mut gw = Gateway::start(&yaml);
    let seed = 0x5eed_0003;
    let mut rng = Rng::new(seed);
    let mut targets: Vec<String> = (0..300).map(|_| random_target(&mut rng)).collect();
    targets.extend(
        [
            "http://127.0.0.1/admin/x",
            "http://127.0.0.1/public/../admin/x",
            "*",
            "admin/x",
            "/admin/./x",
            "/public/../admin/x",
            "/%2e%2e/admin/x",
            "//admin//x",
            "/admin%2fx",
            "/ADMIN/x",
        ]
        .map(String::from),
    );
    for (i, target) in targets.iter().enumerate() {
        let method = if target == "*" { "OPTIONS" } else { "GET" };
        let resp = gw.send(&Req::new(method, target));
        assert!(
            resp.status < 500,
            "seed {seed:#x} case {i}: {method} {target:?} got {} {:?}",
            resp.status,
            resp.text()
        );
        if resp.status == 400 {
            assert_eq!(resp.header("x-upstream-id"), None, "{target:?}");
        }
    }
    assert_eq!(
        admin.count(),
        0,
        "unauthenticated requests reached the protected upstream: {:?}",
        admin
            .records()
            .iter()
            .map(|r| r.target.clone())
            .collect::<Vec<_>>()
    );
    for r in open.records() {
        let path = r.path();
        assert!(path.starts_with('/'), "upstream got {:?}", r.target);
        assert!(!path.contains("//"), "not normalised: {:?}", r.target);
        for seg in path.split('/') {
            assert!(
                seg != "." && seg != "..",
                "dot segment reached upstream: {:?}",
                r.target
            );
        }
        let lower = path.to_ascii_lowercase();
        for bad in ["%2f", "%5c", "%00", "%2e"] {
            assert!(
                !lower.contains(bad),
                "{bad} reached upstream: {:?}",
                r.target
            );
        }
        assert!(
            !path.starts_with("/admin/"),
            "a path of the protected route went to the open one: {:?}",
            r.target
        );
    }
    gw.assert_alive();
    assert_eq!(gw.get("/still/serving").status, 200);
}

/// Sends raw bytes on one connection and reads one response, leaving the
/// connection open for the next exchange.
fn exchange(s: &mut std::net::TcpStream, bytes: &[u8]) -> Result<Response, String> {
    use std::io::Write;
    s.write_all(bytes).map_err(|e| e.to_string())?;
    read_response(s, false)
}

/// A body the gateway did not read (a refused request) or ambiguous framing
/// must never be parsed as a second request and reach an upstream.
#[test]
fn no_request_smuggling_past_the_policy() {
    let protected = Upstream::start_with("protected", Behavior::Answer);
    let open = Upstream::start_with("open", Behavior::Answer);
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: protected
    paths: ["/protected/*"]
    upstream: {{ nodes: ["{}"] }}
    jwt: {{}}
  - name: open
    paths: ["/*"]
    upstream: {{ nodes: ["{}"] }}
"#,
        protected.node(),
        open.node()
    );
    let mut gw = Gateway::start(&yaml);
    let smuggled = "GET /protected/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let follow_up = b"GET /open/after HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

    let cases: Vec<(&str, String)> = vec![
        (
            "refused request with an unread body",
            format!(
                "POST /protected/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
        ),
        (
            "Content-Length and chunked together",
            format!(
                "POST /open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "two different Content-Lengths",
            format!(
                "POST /open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
        ),
        (
            "obfuscated Transfer-Encoding",
            format!(
                "POST /open/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nTransfer-Encoding: xchunked\r\n\r\n{smuggled}",
                smuggled.len()
            ),
        ),
    ];
    for (what, raw) in &cases {
        let mut s = connect(gw.addr);
        match exchange(&mut s, raw.as_bytes()) {
            Ok(resp) => assert!(
                resp.status < 500,
                "{what}: got {} {:?}",
                resp.status,
                resp.text()
            ),
            Err(_) => continue, // the gateway closed the connection: fine
        }
        // If the connection is still usable, a follow-up request must be
        // answered as itself, not as the smuggled one.
        if let Ok(resp) = exchange(&mut s, follow_up) {
            assert!(resp.status < 500, "{what}: follow-up got {}", resp.status);
        }
    }
    let seen: Vec<String> = protected
        .records()
        .into_iter()
        .chain(open.records())
        .map(|r| r.target)
        .collect();
    assert!(
        !seen.iter().any(|t| t.contains("smuggled")),
        "a smuggled request reached an upstream: {seen:?}"
    );
    assert_eq!(protected.count(), 0, "{seen:?}");
    gw.assert_alive();
}

/// Reads until the gateway closes the connection; how long that took.
fn wait_for_close(s: &mut std::net::TcpStream, bound: Duration) -> Result<Duration, String> {
    use std::io::Read;
    let started = Instant::now();
    s.set_read_timeout(Some(bound)).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => Ok(started.elapsed()),
        Ok(n) => Err(format!(
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(started.elapsed()),
        Err(e) => Err(format!("still open after {:?}: {e}", started.elapsed())),
    }
}

/// A client must complete a request head within 30 s of opening its
/// connection or of its previous exchange ending (SPEC is silent; nginx's
/// client_header_timeout and keepalive_timeout do the same). Bytes trickled
/// a few at a time do not keep a connection open (slowloris); a client that
/// keeps sending whole requests is never dropped. This test waits out the
/// real 30 s timeout.
#[test]
fn idle_and_slowloris_connections_are_closed_after_30_s_and_busy_ones_are_not() {
    use std::io::Write;
    const IDLE: Duration = Duration::from_secs(30);
    // A client measures from a moment just after the gateway's; the
    // gateway's sweeper adds up to two seconds; scheduling adds a little.
    const EARLIEST: Duration = Duration::from_secs(29);
    const LATEST: Duration = Duration::from_secs(45);
    let up = Upstream::start();
    let gw = Gateway::start(&format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: open
    paths: ["/*"]
    upstream: {{ nodes: ["{}"] }}
"#,
        up.node()
    ));
    let addr = gw.addr;
    // 1. Opened, never a byte sent.
    let silent = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        wait_for_close(&mut s, LATEST)
    });
    // 2. One whole exchange, then a head trickled a line every 4 s.
    let trickler = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let first = exchange(&mut s, b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")?;
        if first.status != 200 {
            return Err(format!("first request answered {}", first.status));
        }
        let idle_from = Instant::now();
        let mut writer = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = writer.write_all(b"GET /second HTTP/1.1\r\nHost: t\r\n");
            for i in 0..20 {
                std::thread::sleep(Duration::from_secs(4));
                if writer
                    .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                    .is_err()
                {
                    return;
                }
            }
        });
        wait_for_close(&mut s, LATEST)?;
        Ok(idle_from.elapsed())
    });
    // 3. A whole request every 10 s: never idle for 30 s.
    let mut busy = std::net::TcpStream::connect(addr).unwrap();
    for i in 0..4 {
        let r = exchange(
            &mut busy,
            format!("GET /busy{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .unwrap_or_else(|e| panic!("busy request {i}: {e}"));
        assert_eq!(r.status, 200, "busy request {i}");
        std::thread::sleep(Duration::from_secs(10));
    }
    let r = exchange(&mut busy, b"GET /busy-last HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("a connection sending a request every 10 s was closed");
    assert_eq!(r.status, 200);
    for (name, waited) in [
        ("silent", silent.join().unwrap()),
        ("trickling", trickler.join().unwrap()),
    ] {
        let waited = waited.unwrap_or_else(|e| panic!("{name} connection: {e}"));
        assert!(
            (EARLIEST..=LATEST).contains(&waited),
            "{name} connection closed after {waited:?}, expected about {IDLE:?}"
        );
    }
}

/// An upstream that answers one request with a body of 1 GiB, written until
/// the gateway stops taking it, and reports when its writes failed: when
/// the gateway dropped the upstream connection.
struct Endless {
    addr: std::net::SocketAddr,
    cut: std::sync::mpsc::Receiver<Instant>,
}

impl Endless {
    fn start() -> Endless {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, cut) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            // Bounded: a write the gateway never takes fails after this.
            let _ = s.set_write_timeout(Some(Duration::from_secs(150)));
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
                .is_ok();
            while sent {
                sent = s.write_all(&chunk).is_ok();
            }
            let _ = tx.send(Instant::now());
        });
        Endless { addr, cut }
    }

    /// When the gateway dropped the connection, waiting up to `bound`.
    fn cut_within(&self, bound: Duration) -> Option<Instant> {
        self.cut.recv_timeout(bound).ok()
    }
}

fn endless_config(endless: &Endless, up: &Upstream) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: endless
    paths: ["/endless"]
    upstream: {{ nodes: ["{}"] }}
  - name: open
    paths: ["/*"]
    upstream: {{ nodes: ["{}"] }}
"#,
        endless.addr,
        up.node()
    )
}

/// A client that stops reading its answer cannot hold the answer and its
/// upstream connection forever (nginx's `send_timeout`, 60 s): over
/// HTTP/1.1 a write that makes no progress for 60 s closes the connection;
/// over HTTP/2 a stream that gets no window for 60 s is reset (`CANCEL`)
/// while the connection's other streams go on. Either way the upstream
/// connection is dropped then. Both run side by side; this test waits out
/// the real 60 s.
#[test]
fn a_client_that_stops_reading_is_cut_off_after_60_s_and_its_upstream_freed() {
    const EARLIEST: Duration = Duration::from_secs(59);
    const LATEST: Duration = Duration::from_secs(80);
    let up = Upstream::start();
    let over_h1 = Endless::start();
    let over_h2 = Endless::start();
    let mut gw1 = Gateway::start(&endless_config(&over_h1, &up));
    let mut gw2 = Gateway::start(&endless_config(&over_h2, &up));

    // HTTP/1.1: the request sent, the answer never read.
    let mut client = connect(gw1.addr);
    std::io::Write::write_all(&mut client, b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let asked = Instant::now();

    // HTTP/2: one stream's window left shut; the others served.
    let h2 = h2_stalled_stream(gw2.addr);

    let cut = over_h1.cut_within(LATEST + Duration::from_secs(5));
    let cut =
        cut.unwrap_or_else(|| panic!("HTTP/1.1: the upstream was never dropped\n{}", gw1.logs()));
    let waited = cut - asked;
    assert!(
        (EARLIEST..=LATEST).contains(&waited),
        "HTTP/1.1: upstream dropped after {waited:?}, expected about 60 s"
    );
    // The client's connection is closed too: what is buffered, then EOF.
    let closed = read_to_end_within(&mut client, Duration::from_secs(20));
    assert!(
        closed.is_ok(),
        "HTTP/1.1: connection still open: {closed:?}"
    );

    let (reset_after, reason, others) = h2
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("HTTP/2: {e}\n{}", gw2.logs()));
    assert_eq!(reason, Some(h2::Reason::CANCEL), "HTTP/2: the stream's end");
    assert!(
        (EARLIEST..=LATEST).contains(&reset_after),
        "HTTP/2: stream reset after {reset_after:?}, expected about 60 s"
    );
    assert_eq!(others, [200, 200], "HTTP/2: the connection's other streams");
    let cut = over_h2.cut_within(Duration::from_secs(10));
    assert!(
        cut.is_some(),
        "HTTP/2: the upstream was not dropped with the stream\n{}",
        gw2.logs()
    );
    gw1.assert_alive();
    gw2.assert_alive();
}

/// Reads until EOF or a reset, within `bound`; the bytes read.
fn read_to_end_within(s: &mut std::net::TcpStream, bound: Duration) -> Result<usize, String> {
    use std::io::Read;
    let deadline = Instant::now() + bound;
    s.set_read_timeout(Some(bound)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        if Instant::now() > deadline {
            return Err(format!("open after {total} bytes"));
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(total),
            Err(e) => return Err(format!("after {total} bytes: {e}")),
        }
    }
}

/// Over h2c: a GET of `/endless` whose 64 KiB stream window the client
/// never gives back (its connection window is 8 MiB, so other streams are
/// not held by it); one GET of `/` while it stalls and one after it ends.
/// Returns how long after the answer's head the stream ended, the reset's
/// reason, and the other two statuses.
#[allow(clippy::type_complexity)]
fn h2_stalled_stream(
    addr: std::net::SocketAddr,
) -> std::thread::JoinHandle<Result<(Duration, Option<h2::Reason>, Vec<u16>), String>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(120), async move {
                let (send, _conn) = connect_h2(addr, 64 * 1024, 8 * 1024 * 1024).await?;
                let (stalled, _) = h2_get(&send, addr, "/endless").await?;
                let stalled = stalled.await.map_err(|e| format!("head: {e}"))?;
                let head_at = tokio::time::Instant::now();
                let mut body = stalled.into_body();
                let mut statuses = Vec::new();
                let (other, _) = h2_get(&send, addr, "/").await?;
                statuses.push(other.await.map_err(|e| e.to_string())?.status().as_u16());
                // Read what the window let through, never giving it back.
                let reason = loop {
                    match body.data().await {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break e.reason(),
                        None => return Err("the endless answer ended".into()),
                    }
                };
                let ended = head_at.elapsed();
                let (other, _) = h2_get(&send, addr, "/").await?;
                statuses.push(other.await.map_err(|e| e.to_string())?.status().as_u16());
                Ok((ended, reason, statuses))
            })
            .await
            .unwrap_or_else(|_| Err("no end within 120 s".into()))
        })
    })
}
