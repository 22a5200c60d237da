//! The HTTP/2 server (SPEC §5: h2c with prior knowledge on the plain
//! listener; ALPN `h2` over TLS is in `tls.rs`), against the real binary and
//! real upstreams, with the `h2` crate as the client so that windows, resets
//! and GOAWAY are the test's to set and see: bodies larger than every
//! window both ways, answers whose upstream sent hop-by-hop headers, a
//! client resetting a stream in flight, and a stop while a stream is open.

#![allow(clippy::unwrap_used)]

mod support;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use support::*;

const SECRET: &str = "http2-secret-0123456789abcdefghijkl";

/// `/slow/*` to the node `slow` (in most tests an upstream that waits
/// before its head), everything else to `up`; `/private/*` needs a token.
fn config(up: &str, slow: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
consumers:
  - username: alice
    jwt: {{ key: user123, secret: "{SECRET}" }}
routes:
  - name: private
    paths: ["/private/*"]
    upstream: {{ nodes: ["{up}"] }}
    jwt: {{}}
  - name: slow
    paths: ["/slow/*"]
    upstream: {{ nodes: ["{slow}"] }}
  - name: open
    paths: ["/*"]
    upstream: {{ nodes: ["{up}"] }}
"#
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` bounded by [`IO_TIMEOUT`], with the gateway's logs on failure.
fn run<T>(gw: &Gateway, f: impl Future<Output = Result<T, String>>) -> T {
    let outcome = runtime().block_on(async {
        tokio::time::timeout(IO_TIMEOUT, f)
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()))
    });
    outcome.unwrap_or_else(|e| panic!("{e}\n--- gateway logs ---\n{}", gw.logs()))
}

/// Sends `body` on a stream as the client's window allows, in 16 KiB
/// pieces, then ends the stream.
async fn send_body(stream: &mut h2::SendStream<Bytes>, body: Vec<u8>) -> Result<(), String> {
    let mut body = Bytes::from(body);
    while !body.is_empty() {
        stream.reserve_capacity(body.len().min(16 * 1024));
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .ok_or("the stream closed while sending")?
            .map_err(|e| format!("capacity: {e}"))?;
        let piece = body.split_to(granted.min(body.len()));
        stream
            .send_data(piece, false)
            .map_err(|e| format!("send: {e}"))?;
    }
    stream
        .send_data(Bytes::new(), true)
        .map_err(|e| format!("end: {e}"))
}

/// The answer's status, headers and whole body, giving the window back as
/// the body is read.
async fn read_answer(
    resp: h2::client::ResponseFuture,
) -> Result<(u16, http::HeaderMap, Vec<u8>), String> {
    let resp = resp.await.map_err(|e| format!("response: {e}"))?;
    let (parts, mut body) = resp.into_parts();
    let mut got = Vec::new();
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| format!("body after {} bytes: {e}", got.len()))?;
        let _ = body.flow_control().release_capacity(data.len());
        got.extend_from_slice(&data);
    }
    Ok((parts.status.as_u16(), parts.headers, got))
}

/// Sends `req` (no body) on a new stream and reads its answer: the status
/// and the body as text.
async fn ask(
    send: &h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
) -> Result<(u16, String), String> {
    let mut send = send.clone().ready().await.map_err(|e| e.to_string())?;
    let (resp, _) = send.send_request(req, true).map_err(|e| e.to_string())?;
    let (status, _, body) = read_answer(resp).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Asks each of `reqs` in turn on one HTTP/2 connection; their answers.
fn ask_each(gw: &Gateway, reqs: Vec<http::Request<()>>) -> Vec<(u16, String)> {
    let addr = gw.addr;
    run(gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut answers = Vec::new();
        for req in reqs {
            answers.push(ask(&send, req).await?);
        }
        Ok(answers)
    })
}

/// Asks each `(method, path)` in turn (no body) on one HTTP/2 connection;
/// their statuses, headers and bodies.
fn answers_to(gw: &Gateway, asked: &[(&str, &str)]) -> Vec<(u16, http::HeaderMap, Vec<u8>)> {
    let addr = gw.addr;
    let asked: Vec<(String, String)> = asked
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    run(gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut answers = Vec::new();
        for (method, path) in &asked {
            let mut ready = send.clone().ready().await.map_err(|e| e.to_string())?;
            let request = h2_request(addr, method, path).body(()).unwrap();
            let (resp, _) = ready
                .send_request(request, true)
                .map_err(|e| e.to_string())?;
            let answer = read_answer(resp)
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            answers.push(answer);
        }
        Ok(answers)
    })
}

/// Waits (bounded) until `up` has the head of a request.
async fn until_started(up: &Upstream) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    while up.started().is_empty() {
        if tokio::time::Instant::now() > deadline {
            return Err("the slow upstream never saw the request".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

const FIVE_MIB: usize = 5 * 1024 * 1024;

#[test]
fn request_bodies_larger_than_every_window_reach_the_upstream_whole() {
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(5)));
    let gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let statuses = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut send = send.ready().await.map_err(|e| e.to_string())?;
        let mut statuses = Vec::new();
        // With a Content-Length (sent upstream as such), then without one
        // (sent upstream chunked).
        for length in [true, false] {
            let mut req = h2_request(addr, "POST", "/upload");
            if length {
                req = req.header("content-length", FIVE_MIB.to_string());
            }
            let (resp, mut stream) = send
                .send_request(req.body(()).unwrap(), false)
                .map_err(|e| e.to_string())?;
            send_body(&mut stream, pattern(FIVE_MIB)).await?;
            let (status, _, body) = read_answer(resp).await?;
            statuses.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
        Ok(statuses)
    });
    for (status, body) in &statuses {
        assert_eq!(*status, 200, "{body}\n{}", gw.logs());
    }
    let recs = up.records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    for r in &recs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.body_len, FIVE_MIB, "{r:?}");
        assert!(r.body_matches_pattern, "the body bytes changed on the way");
    }
    assert_eq!(
        recs[0].header("content-length"),
        Some(FIVE_MIB.to_string().as_str())
    );
    assert_eq!(recs[1].header("transfer-encoding"), Some("chunked"));
}

/// A request refused before its body is read (no token): the client gets
/// its 401 while it is still sending, the rest of the body is discarded
/// without holding the connection's window, and the next stream on the
/// connection is served.
#[test]
fn a_refusal_before_the_body_is_read_leaves_the_connection_serving() {
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(5)));
    let gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let (refused, next) = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut send = send.ready().await.map_err(|e| e.to_string())?;
        let req = h2_request(addr, "POST", "/private/upload")
            .header("content-length", FIVE_MIB.to_string())
            .body(())
            .unwrap();
        let (resp, mut stream) = send.send_request(req, false).map_err(|e| e.to_string())?;
        // The body goes on being sent (or is cut off by the gateway's
        // reset) while the answer is read.
        let sending = tokio::spawn(async move { send_body(&mut stream, pattern(FIVE_MIB)).await });
        let (status, _, body) = read_answer(resp).await?;
        let _ = sending.await;
        let (resp, _) = h2_get(&send, addr, "/next").await?;
        let (next, _, _) = read_answer(resp).await?;
        Ok(((status, body), next))
    });
    assert_eq!(refused.0, 401, "{}", gw.logs());
    let json: serde_json::Value = serde_json::from_slice(&refused.1).unwrap();
    assert!(json["message"].is_string(), "{json}");
    assert_eq!(next, 200, "{}", gw.logs());
    let recs = up.records();
    assert_eq!(recs.len(), 1, "only the GET reached the upstream: {recs:?}");
    assert_eq!(recs[0].target, "/next");
}

#[test]
fn a_host_that_differs_from_the_authority_is_a_400_and_the_connection_serves_on() {
    // RFC 9113 §8.3.1: one of the two would route, the upstream might read
    // the other.
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up.node(), &up.node()));
    let hosts = [
        "other.example".to_owned(),
        "127.0.0.1".to_owned(),
        gw.addr.to_string().to_uppercase(),
    ];
    let reqs = hosts
        .iter()
        .map(|host| {
            let req = h2_request(gw.addr, "GET", "/open").header("host", host);
            req.body(()).unwrap()
        })
        .collect();
    let answers = ask_each(&gw, reqs);
    for (host, (status, body)) in hosts.iter().zip(&answers).take(2) {
        assert_eq!(*status, 400, "host {host}: {body}");
        assert!(body.contains("invalid Host header"), "host {host}: {body}");
    }
    let (host, (status, body)) = (&hosts[2], &answers[2]);
    assert_eq!(
        *status, 200,
        "host {host} is the authority, in another case: {body}"
    );
    assert_eq!(
        up.records().len(),
        1,
        "only the agreeing request went upstream"
    );
}

/// A field value that starts or ends with a space or tab (RFC 9113 §8.2.1
/// calls it malformed; curl sends `Authorization: Bearer ` so) is trimmed
/// as HTTP/1.x trims it: the gateway checks the value the upstream reads,
/// and the client gets the answer HAProxy, nginx and Envoy give, not a
/// reset stream.
#[test]
fn field_values_are_trimmed_of_whitespace_at_their_ends() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up.node(), &up.node()));
    let token = sign_hs(
        "HS256",
        SECRET,
        json!({"key": "user123", "exp": now() + 600}),
    );
    let mut reqs = Vec::new();
    for value in [" v", "v ", "v\t", "\t v w \t"] {
        reqs.push(
            h2_request(gw.addr, "GET", "/open")
                .header("x-a", http::HeaderValue::from_str(value).unwrap())
                .body(())
                .unwrap(),
        );
    }
    for auth in [
        format!("Bearer {token} "),
        format!(" Bearer {token}"),
        "Bearer ".into(),
    ] {
        reqs.push(
            h2_request(gw.addr, "GET", "/private/x")
                .header("authorization", http::HeaderValue::from_str(&auth).unwrap())
                .body(())
                .unwrap(),
        );
    }
    let answers: Vec<u16> = ask_each(&gw, reqs).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        answers,
        [200, 200, 200, 200, 200, 200, 401],
        "{}",
        gw.logs()
    );
    let seen: Vec<String> = up
        .records()
        .iter()
        .take(4)
        .map(|r| r.header("x-a").unwrap_or("(none)").to_owned())
        .collect();
    assert_eq!(seen, ["v", "v", "v", "v w"]);
    // The token the gateway checked is the one the upstream got.
    for r in &up.records()[4..] {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(r.header("x-consumer-username"), Some("alice"));
    }
}

/// An HTTP/2 request with neither `:authority` nor `host` is refused, as
/// HTTP/1.1 without Host is (and as nginx refuses it): it routed as no
/// host and went upstream without one. A `host` field alone will do.
#[test]
fn a_request_with_no_authority_and_no_host_is_a_400() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up.node(), &up.node()));
    // A relative URI: the h2 client sends :scheme and :path, no :authority.
    let bare = || http::Request::builder().method("GET").uri("/open");
    let answers = ask_each(
        &gw,
        vec![
            bare().body(()).unwrap(),
            bare().header("host", "api.example").body(()).unwrap(),
        ],
    );
    assert_eq!(answers[0].0, 400, "{:?}", answers[0]);
    assert_eq!(answers[1].0, 200, "{:?}", answers[1]);
    assert_eq!(
        up.records().len(),
        1,
        "only the one with a host went upstream"
    );
    assert_eq!(up.last().header("x-forwarded-host"), Some("api.example"));
}

/// `:scheme` names an http or https URI, as an HTTP/1.1 absolute-form
/// target must: `ftp` or a made-up scheme is refused, not proxied as if
/// it were http (nginx answers 400 too).
#[test]
fn a_scheme_other_than_http_or_https_is_a_400() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up.node(), &up.node()));
    let with = |uri: String| {
        http::Request::builder()
            .method("GET")
            .uri(uri)
            .body(())
            .unwrap()
    };
    let answers = ask_each(
        &gw,
        vec![
            with(format!("ftp://{}/open", gw.addr)),
            with(format!("x-made-up://{}/open", gw.addr)),
            with(format!("https://{}/open", gw.addr)),
            with(format!("http://{}/open", gw.addr)),
        ],
    );
    for refused in &answers[..2] {
        assert_eq!(refused.0, 400, "{refused:?}");
        assert!(refused.1.contains("scheme"), "{refused:?}");
    }
    assert_eq!(answers[2].0, 200, "{:?}", answers[2]);
    assert_eq!(answers[3].0, 200, "{:?}", answers[3]);
    assert_eq!(up.records().len(), 2, "only http and https went upstream");
}

#[test]
fn more_header_fields_than_http1_takes_are_a_431_but_cookie_crumbs_count_as_one() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up.node(), &up.node()));
    let reqs = [true, false]
        .into_iter()
        .map(|many_fields| {
            let mut req = h2_request(gw.addr, "GET", "/open");
            for i in 0..150 {
                req = if many_fields {
                    req.header(format!("x-field-{i}"), "v")
                } else {
                    req.header("cookie", format!("c{i}=v"))
                };
            }
            req.body(()).unwrap()
        })
        .collect();
    let answers = ask_each(&gw, reqs);
    assert_eq!(answers[0].0, 431, "{}", answers[0].1);
    assert!(
        answers[0].1.contains("request header fields too large"),
        "{}",
        answers[0].1
    );
    assert_eq!(
        answers[1].0, 200,
        "150 cookie crumbs are one Cookie: {}",
        answers[1].1
    );
    let seen = up.records();
    assert_eq!(seen.len(), 1, "only the cookie request went upstream");
    assert_eq!(seen[0].header_all("cookie").len(), 1);
}

#[test]
fn a_streamed_answer_larger_than_the_client_s_window_arrives_whole() {
    let up = Upstream::start_with("big", Behavior::Stream(FIVE_MIB));
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(5)));
    let gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let (status, headers, body) = run(&gw, async move {
        // 64 KiB windows: the gateway must wait for the client's updates
        // some eighty times.
        let (send, _conn) = connect_h2(addr, 64 * 1024, 64 * 1024).await?;
        let (resp, _) = h2_get(&send, addr, "/download").await?;
        read_answer(resp).await
    });
    assert_eq!(status, 200, "{}", gw.logs());
    assert_eq!(headers.get("x-upstream-id").unwrap(), "big");
    assert_eq!(body.len(), FIVE_MIB);
    assert!(
        body == pattern(FIVE_MIB),
        "the answer's bytes changed on the way"
    );
}

#[test]
fn the_gateway_s_own_answers_and_hop_by_hop_upstream_headers_go_out_as_valid_http2() {
    let up = Upstream::start_with("hop", Behavior::HopHeaders);
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(5)));
    let gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let answers = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut answers = Vec::new();
        for path in ["/private/x", "/hop"] {
            let (resp, _) = h2_get(&send, addr, path).await?;
            answers.push(read_answer(resp).await?);
        }
        Ok(answers)
    });
    // The gateway's own refusal: a JSON body, its length and a date, as
    // over HTTP/1.1.
    let (status, headers, body) = &answers[0];
    assert_eq!(*status, 401, "{}", gw.logs());
    assert!(headers.contains_key("date"), "{headers:?}");
    assert_eq!(
        headers.get("content-length").unwrap().to_str().unwrap(),
        body.len().to_string()
    );
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert!(json["message"].is_string(), "{json}");
    // An upstream answer with Connection, the header it names and
    // Keep-Alive: HTTP/2 forbids connection-specific headers, and the
    // end-to-end one still arrives.
    let (status, headers, body) = &answers[1];
    assert_eq!(*status, 200, "{}", gw.logs());
    assert_eq!(&body[..], b"upstream ok");
    assert_eq!(headers.get("x-up-end").unwrap(), "kept");
    for hop in ["connection", "x-up-hop", "keep-alive"] {
        assert!(!headers.contains_key(hop), "{hop} in {headers:?}");
    }
}

/// Answers without content (RFC 9110 §6.4.1) end with their headers, as
/// over HTTP/1.1: a HEAD answered by the gateway itself (its 401 has a JSON
/// text for a GET) or by the upstream, and an upstream's 204, whose
/// `Content-Length: 0` does not go on (RFC 9110 §8.6). A DATA frame on a
/// HEAD answer is a protocol error to h2 clients (and nghttp2's).
#[test]
fn answers_without_content_end_with_their_headers() {
    let up = Upstream::start();
    let raw = RawUpstream::start(|_| {
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-Raw: kept\r\n\r\n".to_vec()
    });
    // The `slow` route goes to the raw upstream here.
    let gw = Gateway::start(&config(&up.node(), &raw.node()));
    let answers = answers_to(
        &gw,
        &[
            ("HEAD", "/private/x"),
            ("HEAD", "/open"),
            ("GET", "/slow/nocontent"),
            ("GET", "/open"),
        ],
    );
    let (status, headers, body) = &answers[0];
    assert_eq!(*status, 401, "{}", gw.logs());
    assert!(body.is_empty(), "a HEAD answer's body: {body:?}");
    assert!(!headers.contains_key("content-length"), "{headers:?}");
    let (status, _, body) = &answers[1];
    assert_eq!(*status, 200);
    assert!(body.is_empty(), "a HEAD answer's body: {body:?}");
    let (status, headers, body) = &answers[2];
    assert_eq!(*status, 204);
    assert!(body.is_empty());
    assert!(!headers.contains_key("content-length"), "{headers:?}");
    assert_eq!(headers.get("x-raw").unwrap(), "kept");
    let (status, _, body) = &answers[3];
    assert_eq!(*status, 200, "the connection serves on");
    assert!(!body.is_empty());
}

/// An upstream's `Content-Length` written as a list (`5, 5`), twice, or
/// with leading zeros is one length to HTTP/1.1 (RFC 9110 §8.6), and goes
/// to an HTTP/2 client as one valid value, on a HEAD answer too: passed on
/// as written, nghttp2 and curl refused the whole answer (an outside
/// audit of hostile upstreams).
#[test]
fn an_upstream_length_written_oddly_reaches_http2_clients_as_one_value() {
    let up = Upstream::start();
    let raw = RawUpstream::start(|head| {
        let head = String::from_utf8_lossy(head);
        let lengths = if head.contains("/slow/list") {
            "Content-Length: 5, 5\r\n"
        } else if head.contains("/slow/twice") {
            "Content-Length: 5\r\nContent-Length: 5\r\n"
        } else {
            "Content-Length: 005\r\n"
        };
        let body = if head.starts_with("HEAD") {
            ""
        } else {
            "hello"
        };
        format!("HTTP/1.1 200 OK\r\n{lengths}X-Raw: kept\r\n\r\n{body}").into_bytes()
    });
    let gw = Gateway::start(&config(&up.node(), &raw.node()));
    let asked = [
        ("GET", "/slow/list"),
        ("GET", "/slow/twice"),
        ("GET", "/slow/zeros"),
        ("HEAD", "/slow/list"),
        ("HEAD", "/slow/twice"),
    ];
    let answers = answers_to(&gw, &asked);
    for ((method, path), (status, headers, body)) in asked.iter().zip(&answers) {
        assert_eq!(*status, 200, "{method} {path}: {}", gw.logs());
        let lengths: Vec<_> = headers.get_all("content-length").iter().collect();
        assert_eq!(lengths, ["5"], "{method} {path}: {headers:?}");
        let want: &[u8] = if *method == "HEAD" { b"" } else { b"hello" };
        assert_eq!(&body[..], want, "{method} {path}");
        assert_eq!(headers.get("x-raw").unwrap(), "kept");
    }
}

/// A client that resets a stream while the gateway waits on the upstream
/// drops the gateway's work for it where it stands (like hyper, whose
/// server this replaced): no answer is made, its access line says 499
/// (nginx's "client closed request"), and the connection goes on serving
/// its other streams.
#[test]
fn a_stream_the_client_resets_in_flight_is_dropped_and_the_connection_serves_on() {
    let up = Upstream::start();
    // Slow enough that a test starved for a while still resets first.
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(3)));
    let mut gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let slow = &slow;
    let (status, body) = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let (pending, mut stream) = h2_get(&send, addr, "/slow/x").await?;
        // Reset once the upstream has the request: the gateway is waiting
        // on it.
        until_started(slow).await?;
        stream.send_reset(h2::Reason::CANCEL);
        drop(pending);
        // The same connection answers the next stream.
        let (resp, _) = h2_get(&send, addr, "/fast").await?;
        let (status, _, body) = read_answer(resp).await?;
        // Past the slow upstream's answer, with the connection still open:
        // had the reset stream gone on, its answer would have been made
        // and logged by now.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        Ok((status, body))
    });
    assert_eq!(status, 200, "{}", gw.logs());
    assert_eq!(&body[..], b"upstream ok");
    assert_eq!(up.records().len(), 1);
    let logs = gw.logs();
    assert!(logs.contains("route=\"open\""), "{logs}");
    let slow_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("jwtgate::access") && l.contains("route=\"slow\""))
        .collect();
    assert_eq!(slow_lines.len(), 1, "{logs}");
    assert!(
        slow_lines[0].contains("status=499")
            && slow_lines[0].contains("detail=\"the request ended before its answer: the client reset it, or the connection closed\""),
        "the reset stream was answered anyway, or not logged as gone:\n{logs}"
    );
    gw.assert_alive();
}

#[test]
fn a_stop_lets_the_stream_in_flight_finish_then_says_goaway() {
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_millis(1500)));
    let mut gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let pid_signal = {
        let gw = &gw;
        move || gw.signal("TERM")
    };
    let slow = &slow;
    let (status, body, after) = run(&gw, async move {
        let (send, conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let (resp, _) = h2_get(&send, addr, "/slow/x").await?;
        until_started(slow).await?;
        pid_signal();
        let (status, _, body) = read_answer(resp).await?;
        // GOAWAY came, or comes: the connection ends without error, and no
        // new stream is served on it.
        let ended = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .map_err(|_| "the connection stayed open after the stop".to_owned())?
            .map_err(|e| e.to_string())?;
        let after = match h2_get(&send, addr, "/fast").await {
            Err(e) => format!("refused: {e}"),
            Ok((resp, _)) => match resp.await {
                Err(e) => format!("refused: {e}"),
                Ok(r) => format!("served: {}", r.status()),
            },
        };
        ended.map_err(|e| format!("connection error: {e}"))?;
        Ok((status, body, after))
    });
    assert_eq!(status, 200, "{}", gw.logs());
    assert_eq!(&body[..], b"slow upstream ok");
    assert!(after.starts_with("refused"), "{after}");
    assert!(
        gw.exited_within(Duration::from_secs(10)),
        "still running 10 s after SIGTERM:\n{}",
        gw.logs()
    );
    assert_eq!(up.records().len(), 0, "nothing reached the other upstream");
}

/// At a stop, an HTTP/2 connection with no stream in flight whose client
/// never answers the GOAWAY's PING is closed within a couple of seconds:
/// it held the whole 30 s drain, which then warned of requests in flight
/// that there were none of (an outside audit).
#[test]
fn at_a_stop_a_silent_idle_client_does_not_hold_the_drain() {
    let up = Upstream::start();
    let mut gw = Gateway::start(&config(&up.node(), &up.node()));
    let addr = gw.addr;
    let (served, is_served) = std::sync::mpsc::channel();
    let silent = std::thread::spawn(move || {
        idle_h2_client_told(addr, false, Duration::from_secs(60), Some(served))
    });
    // The connection is served (the server's SETTINGS came) before the stop.
    is_served
        .recv_timeout(Duration::from_secs(15))
        .unwrap_or_else(|_| panic!("the connection was not served:\n{}", gw.logs()));
    gw.signal("TERM");
    assert!(
        gw.exited_within(Duration::from_secs(20)),
        "still running 20 s after SIGTERM (the drain is 30 s):\n{}",
        gw.logs()
    );
    let end = silent
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("silent client: {e}\n{}", gw.logs()));
    assert!(end.goaway.is_some(), "no GOAWAY before the close");
    assert!(!gw.logs().contains("still open after"), "{}", gw.logs());
}

/// A client that opens a connection (preface and SETTINGS), sends no
/// request, and reads frames: when `answers`, it acknowledges the server's
/// SETTINGS and PINGs as a live client does; otherwise it answers nothing.
/// When the first GOAWAY came and its error code, and when the connection
/// closed, counted from the connection's start; bounded by `bound`.
fn idle_h2_client(
    addr: std::net::SocketAddr,
    answers: bool,
    bound: Duration,
) -> Result<IdleEnd, String> {
    idle_h2_client_told(addr, answers, bound, None)
}

/// [`idle_h2_client`], saying on `served` when the server's first frame
/// (its SETTINGS) came: the connection is being served.
fn idle_h2_client_told(
    addr: std::net::SocketAddr,
    answers: bool,
    bound: Duration,
    mut served: Option<std::sync::mpsc::Sender<()>>,
) -> Result<IdleEnd, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .map_err(|e| e.to_string())?;
    let mut goaway = None;
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = bound.checked_sub(started.elapsed()).ok_or("still open")?;
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(format!("after {:?}: {e}", started.elapsed())),
        };
        if n == 0 {
            return Ok(IdleEnd {
                goaway,
                closed: started.elapsed(),
            });
        }
        pending.extend_from_slice(&buf[..n]);
        // Whole frames: 9 bytes of head (length, type, flags, stream), then
        // the payload.
        while pending.len() >= 9 {
            let len = usize::from(pending[0]) << 16
                | usize::from(pending[1]) << 8
                | usize::from(pending[2]);
            if pending.len() < 9 + len {
                break;
            }
            let frame: Vec<u8> = pending.drain(..9 + len).collect();
            if let Some(served) = served.take() {
                let _ = served.send(());
            }
            let (kind, ack) = (frame[3], frame[4] & 1 == 1);
            match kind {
                0x7 if goaway.is_none() && len >= 8 => {
                    let code = u32::from_be_bytes([frame[13], frame[14], frame[15], frame[16]]);
                    goaway = Some((started.elapsed(), code));
                }
                0x4 if answers && !ack => {
                    let _ = s.write_all(b"\0\0\0\x04\x01\0\0\0\0");
                }
                0x6 if answers && !ack && len == 8 => {
                    let mut pong = b"\0\0\x08\x06\x01\0\0\0\0".to_vec();
                    pong.extend_from_slice(&frame[9..]);
                    let _ = s.write_all(&pong);
                }
                _ => {}
            }
        }
    }
}

struct IdleEnd {
    /// When the first GOAWAY came, and its error code.
    goaway: Option<(Duration, u32)>,
    closed: Duration,
}

/// An HTTP/2 connection with no stream in flight for 30 s says GOAWAY
/// (`NO_ERROR`) and closes once its client has answered the GOAWAY's PING,
/// as nginx and HAProxy close idle HTTP/2 connections: a client that was
/// about to send a request learns it was not taken, rather than see the
/// connection drop. One whose client never answers is closed by the idle
/// watch 10 s after the GOAWAY; one with a request every 10 s stays open.
/// This test waits out the real 30 s.
#[test]
fn an_idle_connection_says_goaway_after_30_s_and_a_busy_one_stays_open() {
    const EARLIEST: Duration = Duration::from_secs(29);
    const LATEST: Duration = Duration::from_secs(45);
    const BOUND: Duration = Duration::from_secs(90);
    let up = Upstream::start();
    let mut gw = Gateway::start(&config(&up.node(), &up.node()));
    let addr = gw.addr;
    let live = std::thread::spawn(move || idle_h2_client(addr, true, BOUND));
    let silent = std::thread::spawn(move || idle_h2_client(addr, false, BOUND));
    let busy = runtime().block_on(async {
        let busy = async {
            let (send, conn) = connect_h2(addr, 65_535, 65_535).await?;
            for i in 0..5 {
                if i > 0 {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                let (resp, _) = h2_get(&send, addr, &format!("/busy{i}")).await?;
                let (status, _, _) = read_answer(resp).await?;
                if status != 200 {
                    return Err(format!("busy request {i} answered {status}"));
                }
            }
            if conn.is_finished() {
                return Err("a connection with a request every 10 s was closed".into());
            }
            Ok(())
        };
        tokio::time::timeout(BOUND, busy)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    });
    busy.unwrap_or_else(|e| panic!("busy client: {e}\n--- gateway logs ---\n{}", gw.logs()));
    for (name, client) in [("live", live), ("silent", silent)] {
        let end = client
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{name} client: {e}\n{}", gw.logs()));
        let (at, code) = end.goaway.unwrap_or_else(|| {
            panic!(
                "the {name} client got no GOAWAY (closed after {:?})",
                end.closed
            )
        });
        assert!(
            (EARLIEST..=LATEST).contains(&at),
            "{name}: GOAWAY after {at:?}, expected about 30 s"
        );
        assert_eq!(code, 0, "{name}: GOAWAY's error code");
        let after = end.closed - at;
        if name == "live" {
            assert!(
                after < Duration::from_secs(5),
                "live: closed {after:?} after its GOAWAY, its PING answered"
            );
        } else {
            assert!(
                (Duration::from_secs(5)..=Duration::from_secs(20)).contains(&after),
                "silent: closed {after:?} after its GOAWAY, expected about 10 s"
            );
        }
    }
    gw.assert_alive();
}

/// Opens `n` streams with a GET of `path` each, and waits (bounded) until
/// `up` has seen `seen` request heads in all: the gateway took the streams
/// and sent their requests on. Fails when the connection (`conn`) ends.
async fn open_streams(
    (send, conn): &H2Conn,
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
    up: &Upstream,
    seen: usize,
) -> Result<Vec<h2::SendStream<Bytes>>, String> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let (_, stream) = h2_get(send, addr, path).await?;
        streams.push(stream);
    }
    let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
    while up.started().len() < seen {
        if conn.is_finished() {
            return Err("the connection ended".into());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "the upstream saw {} of {seen} requests",
                up.started().len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(streams)
}

type H2Conn = (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
);

/// How the connection of a client that reset its streams ended, within
/// 10 s: the error it ended with, if any.
async fn ended_after_resets(
    conn: tokio::task::JoinHandle<Result<(), h2::Error>>,
) -> Result<Result<(), h2::Error>, String> {
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .map_err(|_| "the resetting client's connection stayed open".to_owned())?
        .map_err(|e| e.to_string())
}

/// `ended` is the GOAWAY `ENHANCE_YOUR_CALM` of a connection that reset
/// too many streams early, and the gateway's log says so.
fn assert_told_to_calm_down(ended: Result<(), h2::Error>, gw: &Gateway) {
    let err = ended.expect_err("the resetting client's connection ended without error");
    assert!(err.is_go_away(), "not a GOAWAY: {err}\n{}", gw.logs());
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{err}");
    assert!(
        eventually(IO_TIMEOUT, || gw
            .logs()
            .contains("GOAWAY ENHANCE_YOUR_CALM")),
        "{}",
        gw.logs()
    );
}

/// A client that opens streams and resets them as soon as the gateway has
/// sent their requests upstream, over and over (CVE-2023-44487's rapid
/// reset, waiting until each stream is taken so that h2's own count of
/// resets before acceptance does not see it), had the upstream work on
/// every one of them at once, unbounded by the 200 concurrent streams.
/// Now a connection that resets more than 100 streams early (then 10 a
/// second) is closed with GOAWAY ENHANCE_YOUR_CALM, however many cheap
/// answers (401s) it asks for in between; a client that cancels a few
/// requests goes on, and so does every other connection.
#[test]
fn a_client_that_resets_its_streams_as_soon_as_taken_is_told_to_calm_down() {
    const BATCH: usize = 40;
    const BATCHES: usize = 20;
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(3)));
    let gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let slow = &slow;
    let attack_time = std::sync::Mutex::new(Duration::ZERO);
    let attack_time_of = &attack_time;
    let (attack, polite) = run(&gw, async move {
        // A polite client cancels 30 requests it has just made, then asks
        // again: answered, on the same connection.
        let polite_conn = connect_h2(addr, 65_535, 65_535).await?;
        for mut stream in open_streams(&polite_conn, addr, "/slow/polite", 30, slow, 30).await? {
            stream.send_reset(h2::Reason::CANCEL);
        }
        let (resp, _) = h2_get(&polite_conn.0, addr, "/fast").await?;
        let (polite, _, _) = read_answer(resp).await?;
        if polite_conn.1.is_finished() {
            return Err("the polite client's connection was closed".into());
        }
        // The rapid resets, each batch behind as many answers the gateway
        // makes at no cost (401s): they buy no resets.
        let attacker = connect_h2(addr, 65_535, 65_535).await?;
        let began = std::time::Instant::now();
        for batch in 0..BATCHES {
            for _ in 0..=BATCH {
                let Ok((resp, _)) = h2_get(&attacker.0, addr, "/private/x").await else {
                    break;
                };
                if read_answer(resp).await.map(|a| a.0) != Ok(401) {
                    break;
                }
            }
            let seen = 30 + (batch + 1) * BATCH;
            let Ok(streams) = open_streams(&attacker, addr, "/slow/reset", BATCH, slow, seen).await
            else {
                break;
            };
            for mut stream in streams {
                stream.send_reset(h2::Reason::CANCEL);
            }
        }
        let ended = ended_after_resets(attacker.1).await?;
        *attack_time_of.lock().unwrap() = began.elapsed();
        Ok((ended, polite))
    });
    assert_eq!(polite, 200, "{}", gw.logs());
    assert_told_to_calm_down(attack, &gw);
    // The budget: 100 early resets, then 10 a second (a slow machine's
    // attack lasts longer and earns more), and the batch under way.
    let sent = slow.started().len() - 30;
    let took = attack_time.lock().unwrap().as_secs_f64();
    let budget = 100 + (10.0 * took).ceil() as usize + 2 * BATCH;
    assert!(
        sent <= budget && budget < BATCH * BATCHES,
        "{sent} of the resetting client's {} requests reached the upstream in {took:.1} s \
         (budget {budget})",
        BATCH * BATCHES
    );
    // A 499 line for each reset stream in the log.
    assert!(
        gw.logs()
            .contains("route=\"slow\" consumer=\"-\" status=499"),
        "{}",
        gw.logs()
    );
    // Every other client is served as before.
    let fresh = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 65_535, 65_535).await?;
        let (resp, _) = h2_get(&send, addr, "/fast").await?;
        Ok(read_answer(resp).await?.0)
    });
    assert_eq!(fresh, 200);
}

/// Streams the client reset while it sent their bodies ended in the
/// pipeline's answer to the broken body, a 400, so they never spent the
/// connection's budget of early resets: past the first 16 KiB each such
/// stream opened an upstream connection, and a client reset hundreds
/// with no GOAWAY (an outside audit). Now they count as resets (a 499 line
/// each, as for any stream reset before its answer), and the connection is
/// told to calm down.
#[test]
fn a_client_that_resets_streams_while_sending_their_bodies_is_told_to_calm_down() {
    // Small batches: a reset counts as early within a second or two of its
    // stream's acceptance, and a loaded machine takes its time with each.
    const BATCH: usize = 10;
    const BATCHES: usize = 40;
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(3)));
    let gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let gw_logs = &gw;
    let ended = run(&gw, async move {
        let (send, conn) = connect_h2(addr, 65_535, 65_535).await?;
        'batches: for batch in 0..BATCHES {
            let mut streams = Vec::new();
            for i in 0..BATCH {
                let Ok(mut ready) = send.clone().ready().await else {
                    break 'batches;
                };
                let req = h2_request(addr, "POST", &format!("/upload/{batch}/{i}"))
                    .body(())
                    .unwrap();
                let Ok((_, mut stream)) = ready.send_request(req, false) else {
                    break 'batches;
                };
                // Past what is read ahead, or within it.
                let length = if i % 2 == 0 { 20_000 } else { 100 };
                if stream
                    .send_data(Bytes::from(pattern(length)), false)
                    .is_err()
                {
                    break 'batches;
                }
                streams.push(stream);
            }
            for mut stream in streams {
                stream.send_reset(h2::Reason::CANCEL);
            }
            // The batch's streams done with (their lines written) before
            // the next: the connection takes 100 streams at once.
            let deadline = tokio::time::Instant::now() + IO_TIMEOUT;
            while gw_logs.logs().matches("status=499").count() < (batch + 1) * BATCH {
                if conn.is_finished() || tokio::time::Instant::now() > deadline {
                    break 'batches;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        ended_after_resets(conn).await
    });
    assert_told_to_calm_down(ended, &gw);
    let logs = gw.logs();
    assert!(
        !logs.contains("status=400"),
        "a reset stream logged as a 400:\n{logs}"
    );
    assert!(
        logs.contains("status=499")
            && logs.contains("the client reset the stream while it sent the body"),
        "{logs}"
    );
}

/// One HTTP/2 connection carries many streams, each proxied over an
/// upstream connection of its own, and nothing held those to the
/// descriptors `max_connections` counts on (two a connection): an attack
/// with 6 connections of 200 streams took every descriptor, and the
/// gateway stopped accepting anyone. Upstream connections are now held to
/// `max_connections`, all workers together; a stream past it gets a 503 at
/// once, and an idle connection makes room for a request to another node.
#[test]
fn regression_streams_cannot_open_more_upstream_connections_than_max_connections() {
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_millis(1500)));
    let yaml = config(&up.node(), &slow.node()).replacen(
        "listen: \"127.0.0.1:0\"\n",
        "listen: \"127.0.0.1:0\"\nmax_connections: 3\n",
        1,
    );
    let mut gw = Gateway::start(&yaml);
    let addr = gw.addr;
    let (mut slow_answers, fast) = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut pending = Vec::new();
        for i in 0..5 {
            let (resp, _) = h2_get(&send, addr, &format!("/slow/{i}")).await?;
            pending.push(read_answer(resp));
        }
        let mut answers = Vec::new();
        for answer in pending {
            let (status, _, body) = answer.await?;
            answers.push((status, String::from_utf8_lossy(&body).into_owned()));
        }
        // The slow node's three connections idle in the pool now; the
        // fast node's first request closes one of them to have its own.
        let (resp, _) = h2_get(&send, addr, "/fast").await?;
        let (status, _, _) = read_answer(resp).await?;
        Ok((answers, status))
    });
    slow_answers.sort();
    let statuses: Vec<u16> = slow_answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 200, 503, 503], "{}", gw.logs());
    assert_eq!(
        slow_answers[3].1,
        r#"{"message":"too many requests in flight upstream"}"#
    );
    assert_eq!(fast, 200, "{}", gw.logs());
    assert_eq!(
        gw.logs()
            .matches("requests that need another are answered 503")
            .count(),
        1,
        "said once a minute at most:\n{}",
        gw.logs()
    );
    gw.assert_alive();
}

/// A stream's body was streamed upstream as it came, so each stream whose
/// client sent its body slowly, or never, held an upstream connection: a
/// handful of HTTP/2 connections of 100 such streams took the process's
/// whole upstream budget (every other client got 503) and as many of the
/// upstream's workers. Now up to 16 KiB of a body is read before an
/// upstream connection is taken: the open streams hold none, a body that
/// ended goes upstream whole with its length, and one that stalls is a 408
/// the upstream never saw.
#[test]
fn regression_streams_whose_bodies_have_not_come_hold_no_upstream_connection() {
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(5)));
    let yaml = config(&up.node(), &slow.node()).replacen(
        "listen: \"127.0.0.1:0\"\n",
        "listen: \"127.0.0.1:0\"\nmax_connections: 3\nclient_body_timeout_ms: 4000\n",
        1,
    );
    let mut gw = Gateway::start(&yaml);
    let addr = gw.addr;
    let up_seen = &up;
    let (while_open, posted, stalled) = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut open = Vec::new();
        for i in 0..5 {
            let mut ready = send.clone().ready().await.map_err(|e| e.to_string())?;
            let req = h2_request(addr, "POST", &format!("/upload/{i}"))
                .body(())
                .unwrap();
            let (resp, mut stream) = ready.send_request(req, false).map_err(|e| e.to_string())?;
            stream
                .send_data(Bytes::from_static(b"part "), false)
                .map_err(|e| e.to_string())?;
            open.push((resp, stream));
        }
        // Five bodies begun and not ended, on a budget of three: another
        // request still finds an upstream connection. First an answer the
        // gateway makes itself: once it came, the five streams were taken
        // and run as far as they go (the old code had taken its three
        // upstream connections by then).
        let (resp, _) = h2_get(&send, addr, "/private/sync").await?;
        let (sync, _, _) = read_answer(resp).await?;
        if sync != 401 {
            return Err(format!("/private/sync answered {sync}"));
        }
        let (resp, _) = h2_get(&send, addr, "/meanwhile").await?;
        let (meanwhile, _, _) = read_answer(resp).await?;
        let seen = up_seen.started();
        // Ended one after the other: each then takes an upstream
        // connection, on a budget of three.
        let mut posted = Vec::new();
        for (resp, mut stream) in open {
            stream
                .send_data(Bytes::from_static(b"and the rest"), true)
                .map_err(|e| e.to_string())?;
            posted.push(read_answer(resp).await?.0);
        }
        // A body that stops coming: a 408 once the read waited the
        // client body timeout.
        let mut ready = send.clone().ready().await.map_err(|e| e.to_string())?;
        let req = h2_request(addr, "POST", "/stalled").body(()).unwrap();
        let (resp, mut stream) = ready.send_request(req, false).map_err(|e| e.to_string())?;
        stream
            .send_data(Bytes::from_static(b"only this"), false)
            .map_err(|e| e.to_string())?;
        let (status, _, body) = read_answer(resp).await?;
        drop(stream);
        // A body of just what is read ahead, in one DATA frame that ends
        // the stream, goes with its length too.
        let mut ready = send.clone().ready().await.map_err(|e| e.to_string())?;
        let req = h2_request(addr, "POST", "/whole").body(()).unwrap();
        let (resp, mut stream) = ready.send_request(req, false).map_err(|e| e.to_string())?;
        stream
            .send_data(Bytes::from(pattern(16 * 1024)), true)
            .map_err(|e| e.to_string())?;
        let whole = read_answer(resp).await?.0;
        if whole != 200 {
            return Err(format!("/whole answered {whole}"));
        }
        Ok(((meanwhile, seen), posted, (status, body)))
    });
    assert_eq!(
        while_open,
        (200, vec!["/meanwhile".to_owned()]),
        "{}",
        gw.logs()
    );
    assert_eq!(posted, [200; 5], "{}", gw.logs());
    assert_eq!(stalled.0, 408, "{}", gw.logs());
    assert_eq!(
        String::from_utf8_lossy(&stalled.1),
        r#"{"message":"request body timed out"}"#
    );
    let recs = up.records();
    let whole = recs.iter().find(|r| r.target == "/whole").unwrap();
    assert_eq!(whole.header("content-length"), Some("16384"), "{whole:?}");
    assert!(whole.body_matches_pattern, "{whole:?}");
    let uploads: Vec<&Recorded> = recs
        .iter()
        .filter(|r| r.method == "POST" && r.target.starts_with("/upload/"))
        .collect();
    assert_eq!(
        uploads.len(),
        5,
        "the stalled one never went upstream: {recs:?}"
    );
    for r in uploads {
        assert_eq!(r.body_len, "part and the rest".len(), "{r:?}");
        // Sent without a length, ended within what is read ahead: it goes
        // with its length.
        assert_eq!(r.header("content-length"), Some("17"), "{r:?}");
        assert_eq!(r.header("transfer-encoding"), None, "{r:?}");
    }
    gw.assert_alive();
}

/// `Expect: 100-continue` over HTTP/2 got no `100`: clients waited for it
/// (curl one second) before sending the body, and the expectation went to
/// the upstream, whose own `100` the gateway drops. Now the gateway sends
/// `100 Continue` when it first reads the body, as over HTTP/1.1, refuses
/// without one, and the upstream never sees the expectation.
#[test]
fn regression_expect_100_continue_is_answered_over_http2() {
    let up = Upstream::start();
    let slow = Upstream::start_with("slow", Behavior::Slow(Duration::from_secs(5)));
    let gw = Gateway::start(&config(&up.node(), &slow.node()));
    let addr = gw.addr;
    let (continued, status, refused) = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let mut send = send.ready().await.map_err(|e| e.to_string())?;
        let req = h2_request(addr, "POST", "/upload")
            .header("expect", "100-continue")
            .header("content-length", "5")
            .body(())
            .unwrap();
        let (mut resp, mut stream) = send.send_request(req, false).map_err(|e| e.to_string())?;
        // Nothing of the body is sent before the 100.
        let interim = std::future::poll_fn(|cx| resp.poll_informational(cx))
            .await
            .ok_or("no informational answer")?
            .map_err(|e| e.to_string())?;
        send_body(&mut stream, b"hello".to_vec()).await?;
        let (status, _, _) = read_answer(resp).await?;
        // Refused before its body is read: no 100, the 401.
        let req = h2_request(addr, "POST", "/private/x")
            .header("expect", "100-continue")
            .header("content-length", "5")
            .body(())
            .unwrap();
        let (mut resp, _stream) = send.send_request(req, false).map_err(|e| e.to_string())?;
        let interim_refused = std::future::poll_fn(|cx| resp.poll_informational(cx))
            .await
            .transpose()
            .map_err(|e| e.to_string())?
            .map(|r| r.status().as_u16());
        let (refused, _, _) = read_answer(resp).await?;
        Ok((
            (interim.status().as_u16(), interim_refused),
            status,
            refused,
        ))
    });
    assert_eq!(continued, (100, None), "{}", gw.logs());
    assert_eq!((status, refused), (200, 401), "{}", gw.logs());
    let recs = up.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].body_len, 5);
    assert_eq!(recs[0].header("expect"), None, "{recs:?}");
}

/// A response body the upstream breaks off after its head went out: the
/// client has the head and the bytes that came, then a reset stream (never
/// an end that would pass the body for whole); the log says why, and the
/// connection serves on.
#[test]
fn a_response_the_upstream_cuts_off_ends_in_a_reset_stream() {
    let up = Upstream::start();
    let breaking = breaking_upstream();
    let gw = Gateway::start(&format!(
        r#"listen: "127.0.0.1:0"
routes:
  - name: breaking
    paths: ["/closed"]
    upstream: {{ nodes: ["{breaking}"] }}
  - name: open
    paths: ["/fast"]
    upstream: {{ nodes: ["{}"] }}
"#,
        up.node()
    ));
    let addr = gw.addr;
    let (cut, next) = run(&gw, async move {
        let (send, _conn) = connect_h2(addr, 1024 * 1024, 1024 * 1024).await?;
        let (resp, _) = h2_get(&send, addr, "/closed").await?;
        // The head and the five bytes may still be queued when the reset
        // goes out (h2 then drops them): what matters is that the stream
        // never ends as if whole.
        let end = match resp.await {
            Err(e) => format!("reset before the head: {:?}", e.reason()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                let mut body = resp.into_body();
                let mut got = Vec::new();
                loop {
                    match body.data().await {
                        Some(Ok(data)) => got.extend_from_slice(&data),
                        Some(Err(e)) => {
                            break format!("reset after {status} and {got:?}: {:?}", e.reason())
                        }
                        None => break format!("ended whole after {status} and {got:?}"),
                    }
                }
            }
        };
        let (resp, _) = h2_get(&send, addr, "/fast").await?;
        let (next, _, _) = read_answer(resp).await?;
        Ok((end, next))
    });
    assert!(
        cut.starts_with("reset") && cut.ends_with("Some(INTERNAL_ERROR)"),
        "{cut}\n{}",
        gw.logs()
    );
    assert_eq!(next, 200);
    // Said once the reset is out: the client may see it first.
    let said = format!(
        "response cut off: upstream {breaking}: it closed the connection before the body ended; \
         the client has part of the answer, and its stream is reset"
    );
    assert!(
        eventually(Duration::from_secs(10), || gw.logs().contains(&said)),
        "{}",
        gw.logs()
    );
}
