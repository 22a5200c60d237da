//! WebSocket through the gateway (beyond SPEC; the README's "WebSocket"):
//! a route with `websocket: true` passes the handshake, authenticated like
//! any request, to a real WebSocket server (tungstenite), and joins the two
//! connections once it answers `101`; a real WebSocket client on the other
//! side. What does not open one stays a plain request.

#![allow(clippy::unwrap_used)]

mod admin_support;
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const SECRET: &str = "alice-secret-0123456789abcdefghij";
const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/tls");

/// A WebSocket server on a loopback port: it records every request head
/// it reads; a WebSocket handshake (to any path but `/refuse`) is accepted
/// by tungstenite, greeted with `hello <x-consumer-username>` at once, and
/// each message is echoed back; anything else gets `200 plain`.
struct WsUpstream {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    /// Set when a tunnel's upstream side ended (close frame or EOF).
    ended: Arc<Mutex<usize>>,
    /// The close frames it got: code and reason.
    closes: Closes,
    _runtime: tokio::runtime::Runtime,
}

type Closes = Arc<Mutex<Vec<(u16, String)>>>;

impl WsUpstream {
    fn start() -> WsUpstream {
        WsUpstream::start_with(None)
    }

    /// Over TLS, with the test certificate (`testdata/tls`).
    fn start_tls() -> WsUpstream {
        let pem = |f: &str| std::fs::read(format!("{TLS}/{f}")).unwrap();
        let certs = rustls_pemfile::certs(&mut pem("server.crt").as_slice())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut pem("server.key").as_slice())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        WsUpstream::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> WsUpstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(0));
        let closes = Closes::default();
        let (h, e, c) = (heads.clone(), ended.clone(), closes.clone());
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, e, c) = (h.clone(), e.clone(), c.clone());
                match &tls {
                    None => drop(tokio::spawn(serve(stream, h, e, c))),
                    Some(acceptor) => {
                        let accept = acceptor.accept(stream);
                        tokio::spawn(async move {
                            if let Ok(stream) = accept.await {
                                serve(stream, h, e, c).await;
                            }
                        });
                    }
                }
            }
        });
        WsUpstream {
            addr,
            heads,
            ended,
            closes,
            _runtime: runtime,
        }
    }

    fn node(&self) -> String {
        self.addr.to_string()
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    fn ended(&self) -> usize {
        *self.ended.lock().unwrap()
    }

    fn closes(&self) -> Vec<(u16, String)> {
        self.closes.lock().unwrap().clone()
    }
}

async fn serve<S>(
    stream: S,
    heads: Arc<Mutex<Vec<String>>>,
    ended: Arc<Mutex<usize>>,
    closes: Closes,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut read = BufReader::new(read);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    heads.lock().unwrap().push(head.clone());
    let lower = head.to_ascii_lowercase();
    if !lower.contains("\r\nupgrade: websocket\r\n") {
        let _ = write
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nplain")
            .await;
        return;
    }
    if head.starts_with("GET /fake101 ") {
        // Switches to nothing it names: a client behind would then talk
        // raw HTTP to this server over the tunnel.
        let _ = write
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .await;
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
        return;
    }
    if head.starts_with("GET /h2c101 ") {
        let _ = write
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            )
            .await;
        let mut rest = Vec::new();
        let _ = read.read_to_end(&mut rest).await;
        return;
    }
    if head.starts_with("GET /refuse ") {
        let _ = write
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 7\r\n\r\nno room")
            .await;
        return;
    }
    let user = lower
        .lines()
        .find_map(|l| l.strip_prefix("x-consumer-username: "))
        .unwrap_or("nobody")
        .to_string();
    // The head read here goes to tungstenite again, ahead of the rest.
    let replayed = std::io::Cursor::new(head.into_bytes()).chain(read);
    let io = tokio::io::join(replayed, write);
    let Ok(mut ws) = tokio_tungstenite::accept_async(io).await else {
        return;
    };
    let _ = ws.send(Message::text(format!("hello {user}"))).await;
    while let Some(Ok(msg)) = ws.next().await {
        let reply = match msg {
            Message::Text(t) => Message::text(format!("echo: {t}")),
            Message::Binary(b) => Message::binary(b),
            Message::Close(frame) => {
                if let Some(frame) = frame {
                    let code = u16::from(frame.code);
                    closes
                        .lock()
                        .unwrap()
                        .push((code, frame.reason.to_string()));
                }
                // Its answering close frame, queued by tungstenite, goes
                // out before the connection closes; a moment late, as from
                // a server that finishes its work first.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = ws.flush().await;
                break;
            }
            _ => continue,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
    *ended.lock().unwrap() += 1;
}

fn config(up: &WsUpstream, route_extra: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, algorithm: HS256, secret: "{SECRET}" }}
routes:
  - name: chat
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
    jwt: {{}}
{route_extra}"#,
        node = up.node(),
    )
}

fn token() -> String {
    sign_hs("HS256", SECRET, claims_for("user123"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

type Client = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a WebSocket to `path` through the gateway, with `token` as a
/// bearer token if given.
async fn open(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Client, WsError> {
    let bearer = token.map(|t| ("authorization", format!("Bearer {t}")));
    open_with(addr, path, bearer.as_slice()).await
}

/// Opens a WebSocket to `path` through the gateway with `headers` added.
async fn open_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, String)],
) -> Result<Client, WsError> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        req.headers_mut().append(*name, value.parse().unwrap());
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

/// The next text message, within ten seconds.
async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no message within 10 s")
            .expect("the WebSocket ended")
            .expect("a WebSocket error");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Whether the WebSocket ends (a close frame, the connection closed or
/// broken) within `limit`; messages before that are skipped.
async fn ends_within<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    limit: Duration,
) -> bool {
    let end = async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(limit, end).await.is_ok()
}

/// The close frame that ends `ws` within `limit`: its code and reason;
/// `None` when it ends otherwise (dropped, `1006`) or not at all.
async fn close_frame_within<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    limit: Duration,
) -> Option<(u16, String)> {
    let end = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Some((u16::from(frame.code), frame.reason.to_string()))
                }
                None | Some(Err(_)) | Some(Ok(Message::Close(None))) => return None,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(limit, end).await.ok().flatten()
}

/// A WebSocket handshake to `/chat` with a valid bearer token, as bytes
/// for a raw socket (RFC 6455's sample key).
fn raw_handshake() -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {}\r\n\r\n",
        token()
    )
    .into_bytes()
}

fn refused_status(result: Result<Client, WsError>) -> u16 {
    match result {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP answer, got {e}"),
        Ok(_) => panic!("the WebSocket opened"),
    }
}

#[test]
fn a_websocket_opens_through_an_authenticated_route_and_passes_both_ways() {
    let up = WsUpstream::start();
    let gw = Gateway::start(&config(&up, "    websocket: true\n"));
    runtime().block_on(async {
        let mut ws = open(gw.addr, "/chat?room=1", Some(&token()))
            .await
            .unwrap_or_else(|e| panic!("handshake failed: {e}\n{}", gw.logs()));
        // Sent by the upstream right after its 101: often read with it.
        assert_eq!(next_text(&mut ws).await, "hello alice");
        for i in 0..3 {
            ws.send(Message::text(format!("message {i}")))
                .await
                .unwrap();
            assert_eq!(next_text(&mut ws).await, format!("echo: message {i}"));
        }
        // Larger than any buffer on the way, both ways.
        let big: Vec<u8> = pattern(300_000);
        ws.send(Message::binary(big.clone())).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_data().as_ref(), big.as_slice());
        ws.close(None).await.unwrap();
    });
    let heads = up.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(head.starts_with("get /chat?room=1 http/1.1\r\n"), "{head}");
    for line in [
        "\r\nconnection: upgrade\r\n",
        "\r\nupgrade: websocket\r\n",
        "\r\nx-consumer-username: alice\r\n",
        "\r\nsec-websocket-version: 13\r\n",
        "\r\nsec-websocket-key: ",
    ] {
        assert!(head.contains(line), "upstream head lacks {line:?}:\n{head}");
    }
    wait_for(|| up.ended() == 1, "the upstream side of the tunnel to end");
    wait_for(
        || {
            gw.logs().lines().any(|l| {
                l.contains("jwtgate::access")
                    && l.contains(" route=\"chat\" ")
                    && l.contains(" consumer=\"alice\" ")
                    && l.contains(" status=101 ")
            })
        },
        &format!("an access log line with status 101:\n{}", gw.logs()),
    );
}

/// A client may send its first frame in the same write as its handshake,
/// and the upstream its first frame with its 101: neither is lost on the
/// way, and each goes only where it belongs.
#[test]
fn frames_sent_with_the_handshake_and_with_the_101_both_arrive() {
    use std::io::{Read, Write};
    let up = WsUpstream::start();
    let gw = Gateway::start(&config(&up, "    websocket: true\n"));
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut wire = raw_handshake();
    // A masked text frame (RFC 6455 §5.2), in the same write.
    let (payload, mask) = (b"early", [0x11u8, 0x22, 0x33, 0x44]);
    wire.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    wire.extend_from_slice(&mask);
    wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&wire).unwrap();
    // The 101, then the upstream's unmasked frames: its greeting (written
    // with its 101) and the echo of the early frame, in either read.
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let want = |got: &[u8]| {
        let text = String::from_utf8_lossy(got);
        text.contains("hello alice") && text.contains("echo: early")
    };
    while !want(&got) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nupgrade: websocket\r\n"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{text}"
    );
    assert!(want(&got), "{text}");
    // The early frame went upstream as WebSocket data, not as a request.
    assert_eq!(up.heads().len(), 1, "{:?}", up.heads());
}

/// A client that sends its close frame and closes its side at once still
/// gets the upstream's answering close frame: the other way is passed on
/// for a moment after one way ends.
#[test]
fn a_client_closing_its_side_still_gets_the_answering_close_frame() {
    use std::io::{Read, Write};
    let up = WsUpstream::start();
    let gw = Gateway::start(&config(&up, "    websocket: true\n"));
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&raw_handshake()).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("hello alice") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => panic!("no greeting: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    // A masked close frame, code 1000, then our side closed.
    let mask = [0x0au8, 0x0b, 0x0c, 0x0d];
    let code = 1000u16.to_be_bytes();
    s.write_all(&[
        0x88,
        0x82,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        code[0] ^ mask[0],
        code[1] ^ mask[1],
    ])
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.windows(4).any(|w| w == [0x88, 0x02, 0x03, 0xe8]),
        "no close frame answered: {rest:?}"
    );
}

/// `wss://` to the gateway's TLS listener, and TLS again to an `https`
/// upstream: the tunnel joins two TLS streams.
#[test]
fn a_websocket_runs_over_tls_on_both_sides() {
    let up = WsUpstream::start_tls();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
tls: {{ cert_file: "{TLS}/server.crt", key_file: "{TLS}/server.key" }}
consumers:
  - username: alice
    jwt: {{ key: user123, algorithm: HS256, secret: "{SECRET}" }}
routes:
  - name: chat
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"], scheme: https, ca_file: "{TLS}/ca.crt" }}
    websocket: true
    jwt: {{}}
"#,
        node = up.node(),
    );
    let gw = Gateway::start(&yaml);
    runtime().block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(format!("{TLS}/ca.crt")).unwrap();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // As browsers open a WebSocket: HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(gw.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let mut req = "wss://localhost/chat".into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", token()).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "hello alice");
        let big = pattern(200_000);
        ws.send(Message::binary(big.clone())).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back.into_data().as_ref(), big.as_slice());
        ws.send(Message::text("over tls")).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "echo: over tls");
        ws.close(None).await.unwrap();
    });
    let head = up.heads().pop().unwrap().to_ascii_lowercase();
    assert!(head.contains("\r\nx-forwarded-proto: https\r\n"), "{head}");
    wait_for(|| up.ended() == 1, "the upstream side of the tunnel to end");
}

/// A browser cannot set `Authorization` on a WebSocket: the token comes in
/// the query (`?jwt=`), and `hide_credentials` keeps it from the upstream.
#[test]
fn a_browser_style_handshake_carries_its_token_in_the_query() {
    let up = WsUpstream::start();
    let yaml = config(&up, "    websocket: true\n")
        .replace("    jwt: {}\n", "    jwt: { hide_credentials: true }\n");
    assert!(yaml.contains("hide_credentials"), "{yaml}");
    let gw = Gateway::start(&yaml);
    runtime().block_on(async {
        let path = format!("/chat?room=7&jwt={}", token());
        let mut ws = open(gw.addr, &path, None).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "hello alice");
        ws.close(None).await.unwrap();
    });
    let head = up.heads().pop().unwrap();
    assert!(head.starts_with("GET /chat?room=7 HTTP/1.1\r\n"), "{head}");
    assert!(!head.contains(&token()), "{head}");
}

/// Browsers send a cookie whichever page opens the WebSocket, and apply no
/// CORS to one: a handshake whose token came in a cookie is taken only
/// from the route's own host or an origin its `cors` allows.
#[test]
fn a_cookie_token_opens_a_websocket_only_from_the_routes_own_or_an_allowed_origin() {
    let up = WsUpstream::start();
    let more = |name: &str, cors: &str| {
        format!(
            "  - name: {name}\n    paths: [\"/{name}\"]\n    upstream: {{ nodes: [\"{}\"] }}\n    websocket: true\n    cors: {cors}\n    jwt: {{}}\n",
            up.node()
        )
    };
    let yaml = config(
        &up,
        &format!(
            "    websocket: true\n    cors: {{ allow_origins: [\"https://app.example\"], allow_credentials: true }}\n{}{}",
            more("star", "{ allow_origins: [\"*\"] }"),
            more("nocred", "{ allow_origins: [\"https://app.example\"] }"),
        ),
    );
    let gw = Gateway::start(&yaml);
    let cookie = ("cookie", format!("theme=dark; jwt={}", token()));
    let origin = |o: &str| ("origin", o.to_string());
    let own = format!("http://{}", gw.addr);
    runtime().block_on(async {
        for (headers, what) in [
            (
                vec![cookie.clone(), origin("https://app.example")],
                "an origin cors allows",
            ),
            (vec![cookie.clone(), origin(&own)], "the route's own host"),
            (vec![cookie.clone()], "no Origin: no browser"),
            (
                vec![
                    ("authorization", format!("Bearer {}", token())),
                    origin("https://evil.example"),
                ],
                "a token the page had to send itself",
            ),
        ] {
            let mut ws = open_with(gw.addr, "/chat", &headers)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(next_text(&mut ws).await, "hello alice", "{what}");
        }
        let opened = up.heads().len();
        for (path, headers, what) in [
            (
                "/star",
                vec![cookie.clone(), origin("https://evil.example")],
                "cors [\"*\"] lets no origin use credentials",
            ),
            (
                "/nocred",
                vec![cookie.clone(), origin("https://app.example")],
                "an origin cors names without allow_credentials",
            ),
        ] {
            match open_with(gw.addr, path, &headers).await {
                Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 403, "{what}"),
                Err(e) => panic!("{what}: expected a 403, got {e}"),
                Ok(_) => panic!("{what}: expected a 403, the WebSocket opened"),
            }
        }
        for (headers, what) in [
            (
                vec![cookie.clone(), origin("https://evil.example")],
                "another site",
            ),
            (vec![cookie.clone(), origin("null")], "a sandboxed frame"),
            (
                vec![cookie.clone(), origin("https://app.example.evil.example")],
                "a name that starts like an allowed one",
            ),
            (
                vec![cookie.clone(), origin(&own), origin("https://evil.example")],
                "two origins, the first the route's own",
            ),
            (
                vec![
                    cookie.clone(),
                    origin("https://app.example"),
                    origin("https://evil.example"),
                ],
                "two origins, the first one cors allows",
            ),
        ] {
            match open_with(gw.addr, "/chat", &headers).await {
                Err(WsError::Http(resp)) => {
                    assert_eq!(resp.status().as_u16(), 403, "{what}");
                    let body = resp.body().clone().unwrap_or_default();
                    let body = String::from_utf8_lossy(&body).to_string();
                    assert!(
                        body.contains("cross-site WebSocket refused"),
                        "{what}: {body}"
                    );
                }
                Err(e) => panic!("{what}: expected a 403, got {e}"),
                Ok(_) => panic!("{what}: expected a 403, the WebSocket opened"),
            }
        }
        assert_eq!(
            up.heads().len(),
            opened,
            "a refused handshake reached the upstream"
        );
    });
    wait_for(
        || {
            gw.logs().lines().any(|l| {
                l.contains("status=403")
                    && l.contains("cross-site WebSocket")
                    && l.contains("evil.example")
            })
        },
        "an access line that says why the handshake was refused",
    );
}

#[test]
fn a_handshake_without_a_valid_token_never_reaches_the_upstream() {
    let up = WsUpstream::start();
    let gw = Gateway::start(&config(&up, "    websocket: true\n"));
    runtime().block_on(async {
        assert_eq!(refused_status(open(gw.addr, "/chat", None).await), 401);
        let forged = sign_hs(
            "HS256",
            "another-secret-0123456789abcdefghij",
            claims_for("user123"),
        );
        assert_eq!(
            refused_status(open(gw.addr, "/chat", Some(&forged)).await),
            401
        );
        let expired = sign_hs(
            "HS256",
            SECRET,
            json!({ "key": "user123", "exp": 1_000_000_000 }),
        );
        assert_eq!(
            refused_status(open(gw.addr, "/chat", Some(&expired)).await),
            401
        );
    });
    assert_eq!(up.heads(), Vec::<String>::new());
}

#[test]
fn an_upstream_refusing_the_handshake_is_answered_as_any_response() {
    let up = WsUpstream::start();
    let gw = Gateway::start(&config(&up, "    websocket: true\n"));
    runtime().block_on(async {
        assert_eq!(
            refused_status(open(gw.addr, "/refuse", Some(&token())).await),
            403
        );
        // A 101 that does not switch to WebSocket opens no tunnel.
        for path in ["/fake101", "/h2c101"] {
            assert_eq!(
                refused_status(open(gw.addr, path, Some(&token())).await),
                502,
                "{path}"
            );
        }
        // The next handshake opens as usual.
        let mut ws = open(gw.addr, "/chat", Some(&token())).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "hello alice");
    });
}

#[test]
fn without_websocket_true_a_handshake_is_a_plain_get() {
    let up = WsUpstream::start();
    let gw = Gateway::start(&config(&up, ""));
    runtime().block_on(async {
        assert_eq!(
            refused_status(open(gw.addr, "/chat", Some(&token())).await),
            200
        );
    });
    let heads = up.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(!head.contains("upgrade"), "{head}");
}

#[test]
fn only_a_websocket_is_upgraded() {
    let up = WsUpstream::start();
    let gw = Gateway::start(&config(&up, "    websocket: true\n"));
    let bearer = format!("Bearer {}", token());
    for (connection, upgrade, what) in [
        (
            "Upgrade, HTTP2-Settings",
            "h2c",
            "h2c: a tunnel past every rule",
        ),
        (
            "Upgrade",
            "websocket, h2c",
            "websocket offered with another",
        ),
        (
            "keep-alive",
            "websocket",
            "Connection does not name upgrade",
        ),
    ] {
        let resp = gw.send(
            &Req::get("/chat")
                .header("Authorization", &bearer)
                .header("Connection", connection)
                .header("Upgrade", upgrade)
                .header("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert_eq!(resp.status, 200, "{what}: {:?}", resp.text());
        let head = up.heads().pop().unwrap().to_ascii_lowercase();
        assert!(!head.contains("upgrade"), "{what}: {head}");
        if connection.contains("HTTP2-Settings") {
            assert!(!head.contains("http2-settings"), "{what}: {head}");
        }
    }
    // A handshake with a body is no handshake.
    let resp = gw.send(
        &Req::get("/chat")
            .header("Authorization", &bearer)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .body("x"),
    );
    assert_eq!(resp.status, 200, "{:?}", resp.text());
    let head = up.heads().pop().unwrap().to_ascii_lowercase();
    assert!(!head.contains("upgrade"), "{head}");
}

#[test]
fn a_quiet_websocket_closes_after_the_read_timeout_and_a_busy_one_stays() {
    let up = WsUpstream::start();
    let yaml = config(&up, "    websocket: true\n").replace(
        &format!("nodes: [\"{}\"] }}", up.node()),
        &format!("nodes: [\"{}\"], read_timeout_ms: 2000 }}", up.node()),
    );
    assert!(yaml.contains("read_timeout_ms: 2000"), "{yaml}");
    let gw = Gateway::start(&yaml);
    runtime().block_on(async {
        let mut ws = open(gw.addr, "/chat", Some(&token())).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "hello alice");
        // Well past the timeout, in steps well inside it: open throughout.
        for i in 0..20 {
            ws.send(Message::text(format!("{i}"))).await.unwrap();
            assert_eq!(next_text(&mut ws).await, format!("echo: {i}"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Then quiet: the gateway closes it.
        let started = std::time::Instant::now();
        assert!(
            ends_within(&mut ws, Duration::from_secs(20)).await,
            "a quiet WebSocket stayed open 20 s"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "closed {:?} after the last message, before the timeout",
            started.elapsed()
        );
    });
    wait_for(|| up.ended() == 1, "the upstream side of the tunnel to end");
}

/// `jwtgate_websockets_open` counts the tunnels open now.
#[test]
fn open_websockets_are_a_gauge() {
    let up = WsUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&up, "    websocket: true\n").replace(
        "listen: \"127.0.0.1:0\"\n",
        &format!(
            "listen: \"127.0.0.1:0\"\nadmin: {{ listen: \"127.0.0.1:0\", api_key: \"{}\" }}\n",
            admin_support::KEY
        ),
    );
    let node = admin_support::Node::start(dir.path(), &yaml);
    let open_now = || node.metrics().value("jwtgate_websockets_open", &[]);
    assert_eq!(open_now(), 0.0, "{}", node.metrics().0);
    runtime().block_on(async {
        let mut first = open(node.addr, "/chat", Some(&token())).await.unwrap();
        let mut second = open(node.addr, "/chat", Some(&token())).await.unwrap();
        assert_eq!(next_text(&mut first).await, "hello alice");
        assert_eq!(next_text(&mut second).await, "hello alice");
        assert_eq!(open_now(), 2.0, "{}", node.metrics().0);
        first.close(None).await.unwrap();
        assert!(ends_within(&mut first, Duration::from_secs(10)).await);
        wait_for(|| open_now() == 1.0, "one WebSocket open");
        drop(second);
        wait_for(|| open_now() == 0.0, "no WebSocket open");
    });
}

#[test]
fn a_stop_closes_open_websockets() {
    let up = WsUpstream::start();
    let mut gw = Gateway::start(&config(&up, "    websocket: true\n"));
    runtime().block_on(async {
        let mut ws = open(gw.addr, "/chat", Some(&token())).await.unwrap();
        assert_eq!(next_text(&mut ws).await, "hello alice");
        gw.signal("TERM");
        assert!(
            ends_within(&mut ws, Duration::from_secs(10)).await,
            "the WebSocket outlived the stop by 10 s"
        );
    });
    // Not the 30 s drain: nothing else was in flight.
    assert!(gw.exited_within(Duration::from_secs(10)), "{}", gw.logs());
}

/// A route whose tokens log out at `POST /logout`, and one (`/short/*`)
/// whose WebSockets close when their token expires (2 s of leeway
/// after); `top` goes first
/// (an admin listener, a store).
fn watched_config(up: &WsUpstream, top: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
{top}consumers:
  - username: alice
    jwt: {{ key: user123, algorithm: HS256, secret: "{SECRET}" }}
routes:
  - name: short
    paths: ["/short/*"]
    upstream: {{ nodes: ["{node}"] }}
    websocket: true
    websocket_close_at_exp: true
    jwt: {{ leeway_seconds: 2 }}
  - name: chat
    paths: ["/*"]
    upstream: {{ nodes: ["{node}"] }}
    websocket: true
    jwt: {{ use_jwt_blacklist_revoking: true, logout_path: "POST_/logout" }}
"#,
        node = up.node(),
    )
}

/// A token of alice's with these claims besides `key` and `iat`, and
/// `exp` an hour away unless given.
fn alice_token(extra: serde_json::Value) -> String {
    let mut claims = claims_for("user123");
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    sign_hs("HS256", SECRET, claims)
}

/// Whether `ws` still passes a message both ways.
async fn still_open<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    text: &str,
) -> bool {
    if ws.send(Message::text(text.to_owned())).await.is_err() {
        return false;
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    matches!(answer, Ok(Some(Ok(Message::Text(t)))) if t.as_str() == format!("echo: {text}"))
}

/// A logout of the token that opened a WebSocket closes it (two opened
/// with it, both), and a WebSocket of another token stays open; the
/// token's next handshake is refused.
#[test]
fn a_logout_closes_the_websockets_its_token_opened_and_only_those() {
    let up = WsUpstream::start();
    let gw = Gateway::start(&watched_config(&up, ""));
    let (first, second) = (
        alice_token(json!({"jti": "one"})),
        alice_token(json!({"jti": "two"})),
    );
    runtime().block_on(async {
        let mut a = open(gw.addr, "/chat", Some(&first)).await.unwrap();
        let mut a2 = open(gw.addr, "/chat", Some(&first)).await.unwrap();
        let mut b = open(gw.addr, "/chat", Some(&second)).await.unwrap();
        for ws in [&mut a, &mut a2, &mut b] {
            assert_eq!(next_text(ws).await, "hello alice");
        }
        assert!(still_open(&mut a, "before").await);
        let resp = gw.send(&Req::post("/logout").bearer(&first));
        assert_eq!(resp.status, 200, "{}\n{}", resp.text(), gw.logs());
        // Closed with a close frame that says why (policy violation).
        for ws in [&mut a, &mut a2] {
            assert_eq!(
                close_frame_within(ws, Duration::from_secs(10)).await,
                Some((1008, "token revoked".into())),
                "a logged-out token's WebSocket not closed so within 10 s\n{}",
                gw.logs()
            );
        }
        assert!(still_open(&mut b, "after").await, "{}", gw.logs());
        assert_eq!(
            refused_status(open(gw.addr, "/chat", Some(&first)).await),
            401
        );
    });
    // The upstream is told as the client is (it had a bare close: its
    // session seemed broken, not ended for the token), in a masked frame
    // its WebSocket library takes.
    wait_for(
        || up.closes() == vec![(1008, "token revoked".to_owned()); 2],
        "a close frame 1008 to the upstream of each WebSocket closed",
    );
    wait_for(
        || {
            gw.logs()
                .lines()
                .filter(|l| {
                    l.contains("WebSocket closed: the token that opened it no longer holds")
                        && l.contains("ended=\"revoked\"")
                })
                .count()
                == 2
        },
        &format!("two log lines saying why:\n{}", gw.logs()),
    );
}

/// Two nodes on one real Redis: a cut-off of a subject made on one closes
/// that subject's WebSocket open through the other (the feed brings it),
/// and leaves another subject's open.
#[test]
fn a_cut_off_on_one_node_closes_the_subjects_websockets_on_another() {
    let server = jwtgate_testkit::RedisServer::start();
    let up = WsUpstream::start();
    let top = format!(
        "admin: {{ listen: \"127.0.0.1:0\", api_key: \"{}\" }}\nstore: {}\n",
        admin_support::KEY,
        server.store_yaml()
    );
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let nodes = dirs
        .each_ref()
        .map(|d| admin_support::Node::start(d.path(), &watched_config(&up, &top)));
    let (u1, u2) = (
        alice_token(json!({"sub": "u-1", "iat": now() - 5})),
        alice_token(json!({"sub": "u-2", "iat": now() - 5})),
    );
    runtime().block_on(async {
        let mut one = open(nodes[1].addr, "/chat", Some(&u1)).await.unwrap();
        let mut two = open(nodes[1].addr, "/chat", Some(&u2)).await.unwrap();
        assert_eq!(next_text(&mut one).await, "hello alice");
        assert_eq!(next_text(&mut two).await, "hello alice");
        let cut = nodes[0].admin(
            "POST",
            "/admin/v1/revocations/subjects",
            Some(json!({"consumer": "alice", "subject": "u-1"})),
        );
        assert_eq!(cut.status, 201, "{}", cut.text());
        assert_eq!(
            close_frame_within(&mut one, Duration::from_secs(15)).await,
            Some((1008, "token revoked: its subject was cut off".into())),
            "a cut-off subject's WebSocket not closed so on the other node within 15 s\n{}",
            nodes[1].logs()
        );
        assert!(still_open(&mut two, "other subject").await);
    });
    nodes[1].wait_log("ended=\"cut_off\" consumer=\"alice\"", 1);
    // Counted on the node that closed it, by reason.
    let closed = |node: &admin_support::Node, reason: &str| {
        node.metrics().value(
            "jwtgate_websockets_closed_for_token_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(
        closed(&nodes[1], "cut_off"),
        1.0,
        "{}",
        nodes[1].metrics().0
    );
    assert_eq!(closed(&nodes[1], "revoked"), 0.0);
    assert_eq!(closed(&nodes[0], "cut_off"), 0.0);
}

/// With `websocket_close_at_exp`, a WebSocket closes once the route
/// would refuse its token (`exp` plus the route's leeway), not before;
/// without it (the default, as Kong and APISIX), one opened with the same
/// token stays open past its `exp`.
#[test]
fn websocket_close_at_exp_closes_a_websocket_when_its_token_expires() {
    let up = WsUpstream::start();
    let gw = Gateway::start(&watched_config(&up, ""));
    let exp = now() + 4;
    let token = alice_token(json!({ "exp": exp }));
    runtime().block_on(async {
        let mut short = open(gw.addr, "/short/chat", Some(&token)).await.unwrap();
        let mut chat = open(gw.addr, "/chat", Some(&token)).await.unwrap();
        assert_eq!(next_text(&mut short).await, "hello alice");
        assert_eq!(next_text(&mut chat).await, "hello alice");
        assert!(now() < exp, "the set-up took past the token's exp");
        assert!(still_open(&mut short, "before exp").await);
        assert_eq!(
            close_frame_within(&mut short, Duration::from_secs(15)).await,
            Some((1008, "token expired".into())),
            "not closed so within 15 s after its token expired\n{}",
            gw.logs()
        );
        assert!(now() >= exp + 2, "closed before its exp plus the leeway");
        assert!(still_open(&mut chat, "past exp").await, "{}", gw.logs());
    });
    wait_for(
        || gw.logs().contains("ended=\"expired\" consumer=\"alice\""),
        &format!("a log line saying why:\n{}", gw.logs()),
    );
}

#[test]
fn websocket_needs_upstream_nodes_and_get() {
    let base = r#"listen: "127.0.0.1:0"
routes:
  - name: chat
    paths: ["/*"]
"#;
    for (route, expected) in [
        (
            "    upstream: { echo: true }\n    websocket: true\n",
            "routes[0].websocket: needs upstream nodes",
        ),
        (
            "    methods: [POST]\n    upstream: { nodes: [\"127.0.0.1:9\"] }\n    websocket: true\n",
            "routes[0].websocket: needs GET among the route's methods",
        ),
        (
            "    upstream: { nodes: [\"127.0.0.1:9\"] }\n    websocket: \"yes\"\n",
            "routes[0].websocket",
        ),
        (
            "    upstream: { nodes: [\"127.0.0.1:9\"] }\n    websocket_close_at_exp: true\n",
            "routes[0].websocket_close_at_exp: needs websocket: true",
        ),
    ] {
        let out = check_yaml(&format!("{base}{route}"));
        assert_ne!(out.code(), Some(0), "{route}: {}", out.all());
        assert!(out.all().contains(expected), "{route}: {}", out.all());
    }
    let out = check_yaml(&format!(
        "{base}    methods: [GET]\n    upstream: {{ nodes: [\"127.0.0.1:9\"] }}\n    websocket: true\n"
    ));
    assert_eq!(out.code(), Some(0), "{}", out.all());
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}
