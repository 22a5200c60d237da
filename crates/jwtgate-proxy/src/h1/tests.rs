use super::passed::same_name;
use super::*;

fn head_of(bytes: &[u8], method: &Method) -> (Result<Option<ResponseHead>, WireError>, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    let r = parse_response_head(&mut buf, method, &mut HeaderMap::new(), true);
    (r, buf)
}

/// A complete head, with any header lines passed on as bytes moved into
/// its map: what the client gets either way.
fn parsed(bytes: &[u8], method: &Method) -> (ResponseHead, BytesMut) {
    let (r, buf) = head_of(bytes, method);
    match r {
        Ok(Some(mut h)) => {
            if let Some(passed) = h.passed.take() {
                assert!(h.headers.is_empty(), "passed on and in the map");
                passed.append_to(&mut h.headers);
            }
            (h, buf)
        }
        other => panic!("expected a complete head, got {other:?}"),
    }
}

/// The head's header lines passed on as bytes, joined; `None` if the head
/// went into a map.
fn passed_lines(bytes: &[u8], method: &Method) -> Option<String> {
    let (r, _) = head_of(bytes, method);
    let head = r.unwrap().unwrap();
    let passed = head.passed?;
    assert!(head.headers.is_empty(), "passed on and in the map");
    Some(
        passed
            .runs()
            .map(|run| String::from_utf8(run.to_vec()).unwrap())
            .collect(),
    )
}

#[test]
fn a_response_with_a_framed_body_passes_its_end_to_end_lines_on_as_they_came() {
    let raw = b"HTTP/1.1 200 OK\r\nServer: up\r\nDate: Wed, 02 Dec 2026 14:00:00 GMT\r\n\
        Content-Type: text/plain\r\nContent-Length: 2\r\nX-Trace:  a,b \r\n\
        Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nset-cookie: a=1\r\n\r\nok";
    assert_eq!(
        passed_lines(raw, &Method::GET).as_deref(),
        Some(
            "Server: up\r\nDate: Wed, 02 Dec 2026 14:00:00 GMT\r\nContent-Type: text/plain\r\n\
             X-Trace:  a,b \r\nset-cookie: a=1\r\n"
        ),
        "framing and hop-by-hop lines left out, the rest byte for byte"
    );
    let (r, buf) = head_of(raw, &Method::GET);
    let head = r.unwrap().unwrap();
    assert_eq!(head.framing, ResponseFraming::Length(2));
    assert!(head.keep_alive);
    assert_eq!(&buf[..], b"ok");
    let passed = head.passed.unwrap();
    assert!(passed.has_date());

    // Into a map (HTTP/2, CORS): lower-case names, values trimmed.
    let mut map = HeaderMap::new();
    passed.append_to(&mut map);
    let entries: Vec<_> = map
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        entries,
        [
            ("server", "up"),
            ("date", "Wed, 02 Dec 2026 14:00:00 GMT"),
            ("content-type", "text/plain"),
            ("x-trace", "a,b"),
            ("set-cookie", "a=1"),
        ]
    );

    // Chunked: the stale length beside it is left out too.
    assert_eq!(
        passed_lines(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
            &Method::GET
        )
        .as_deref(),
        Some("X-A: 1\r\n")
    );
    // No header at all, no Date.
    let (r, _) = head_of(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        &Method::GET,
    );
    let passed = r.unwrap().unwrap().passed.unwrap();
    assert_eq!(passed.runs().count(), 0);
    assert!(!passed.has_date());
}

#[test]
fn heads_that_cannot_be_passed_on_as_bytes_go_into_a_map() {
    for (raw, method, why) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\n\r\n"[..],
            Method::HEAD,
            "no body: the length stays",
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nX-A: 1\r\n\r\n",
            Method::GET,
            "no body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n",
            Method::GET,
            "until close",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n",
            Method::GET,
            "a bare line feed",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\n\n",
            Method::GET,
            "a bare line feed on the last line",
        ),
        (
            b"HTTP/1.1 200 OK\r\nConnection: X-A\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
            Method::GET,
            "a header named by Connection",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTE: x\r\nX-A: 1\r\nTrailer: x\r\nX-A: 1\r\n\
              Upgrade: x\r\nX-A: 1\r\nKeep-Alive: x\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
            Method::GET,
            "more stretches than kept",
        ),
    ] {
        assert_eq!(passed_lines(raw, &method), None, "{why}");
        let (h, _) = parsed(raw, &method);
        let names: Vec<_> = h.headers.keys().map(|n| n.as_str()).collect();
        let want: &[&str] = if method == Method::HEAD {
            &["content-length", "x-a"]
        } else if why == "a header named by Connection" {
            &["content-length"]
        } else if why.starts_with("a bare") || why.starts_with("more") {
            &["x-a", "content-length"]
        } else {
            &["x-a"]
        };
        assert_eq!(names, want, "{why}");
    }
    // Four stretches are still passed on.
    assert_eq!(
        passed_lines(
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTE: x\r\nX-B: 2\r\nTrailer: x\r\nX-C: 3\r\n\
              Upgrade: x\r\nX-D: 4\r\nContent-Length: 0\r\n\r\n",
            &Method::GET
        )
        .as_deref(),
        Some("X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-D: 4\r\n")
    );
}

#[test]
fn request_head_replaces_the_clients_host_and_framing_headers() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("client.example"));
    h.insert("content-length", HeaderValue::from_static("999"));
    h.insert("transfer-encoding", HeaderValue::from_static("gzip"));
    h.append("x-a", HeaderValue::from_static("1"));
    h.append("x-a", HeaderValue::from_static("2"));
    let node = HeaderValue::from_static("up:80");
    let none = GatewayHeaders::default();
    let mut out = Vec::new();
    encode_request_head(
        &mut out,
        &Method::PUT,
        "/p?q=1",
        &node,
        &h,
        &none,
        RequestFraming::Length(12),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "PUT /p?q=1 HTTP/1.1\r\nhost: up:80\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 12\r\n\r\n"
    );

    let mut out = Vec::new();
    let chunked = RequestFraming::Chunked;
    encode_request_head(&mut out, &Method::POST, "/", &node, &h, &none, chunked);
    assert!(String::from_utf8(out)
        .unwrap()
        .ends_with("x-a: 2\r\ntransfer-encoding: chunked\r\n\r\n"));
}

#[test]
fn request_head_sends_the_gateways_headers_after_the_clients() {
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("*/*"));
    let peer = b"10.1.2.3".as_slice();
    let mut added = GatewayHeaders {
        consumer_username: Some(HeaderValue::from_static("alice")),
        ..GatewayHeaders::default()
    };
    added.set_forwarded(std::borrow::Cow::Borrowed(peer), peer, false, None);
    let node = HeaderValue::from_static("up");
    let mut out = Vec::new();
    encode_request_head(
        &mut out,
        &Method::GET,
        "/",
        &node,
        &h,
        &added,
        RequestFraming::Empty,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET / HTTP/1.1\r\nhost: up\r\naccept: */*\r\nx-consumer-username: alice\r\n\
         x-forwarded-for: 10.1.2.3\r\nx-real-ip: 10.1.2.3\r\nx-forwarded-proto: http\r\n\r\n"
    );
}

#[test]
fn an_empty_body_says_length_zero_only_for_methods_that_carry_one() {
    let h = HeaderMap::new();
    let node = HeaderValue::from_static("up");
    let none = GatewayHeaders::default();
    let empty = RequestFraming::Empty;
    let mut out = Vec::new();
    encode_request_head(&mut out, &Method::GET, "/", &node, &h, &none, empty);
    assert_eq!(out, b"GET / HTTP/1.1\r\nhost: up\r\n\r\n");
    out.clear();
    encode_request_head(&mut out, &Method::POST, "/", &node, &h, &none, empty);
    assert_eq!(
        out,
        b"POST / HTTP/1.1\r\nhost: up\r\ncontent-length: 0\r\n\r\n"
    );
}

#[test]
fn decimal_and_hex_sizes() {
    for n in [0u64, 7, 10, 12345, u64::MAX] {
        let mut out = Vec::new();
        push_decimal(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
    for n in [0usize, 9, 10, 0x1a2b, usize::MAX] {
        let mut out = Vec::new();
        push_chunk_size(&mut out, n);
        assert_eq!(out, format!("{n:x}\r\n").as_bytes());
    }
}

#[test]
fn a_complete_head_leaves_the_body_in_the_buffer() {
    let (h, buf) = parsed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\nhello",
        &Method::GET,
    );
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.version, Version::HTTP_11);
    assert_eq!(h.framing, ResponseFraming::Length(5));
    assert!(h.keep_alive);
    let cookies: Vec<_> = h.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn an_incomplete_head_asks_for_more_and_consumes_nothing() {
    let (r, buf) = head_of(b"HTTP/1.1 200 OK\r\nContent-Le", &Method::GET);
    assert_eq!(r.unwrap().map(|h| h.status), None);
    assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\nContent-Le");
}

#[test]
fn bodiless_responses() {
    for (raw, method) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"[..],
            Method::HEAD,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", Method::GET),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            Method::GET,
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\n", Method::POST),
    ] {
        let (h, _) = parsed(raw, &method);
        assert_eq!(
            h.framing,
            ResponseFraming::Empty,
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert!(h.keep_alive);
    }
    // HEAD keeps the Content-Length the upstream announced.
    let (h, _) = parsed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        &Method::HEAD,
    );
    assert_eq!(h.headers["content-length"], "10");
    // As one valid value, however the upstream wrote it (RFC 9110 §8.6),
    // on a HEAD or 304 answer as on one a map carries to an HTTP/2 client.
    for (raw, method) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"[..],
            &Method::HEAD,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            &Method::GET,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nhello",
            &Method::GET,
        ),
    ] {
        let mut buf = BytesMut::from(raw);
        let mut spare = HeaderMap::new();
        let h = parse_response_head(&mut buf, method, &mut spare, false)
            .unwrap()
            .unwrap();
        let lengths: Vec<_> = h.headers.get_all("content-length").iter().collect();
        assert_eq!(lengths, ["5"], "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn hop_by_hop_headers_are_read_and_left_out() {
    let (h, _) = parsed(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n\
          X-Secret: 1\r\nUpgrade: h2c\r\nProxy-Authenticate: Basic\r\nTrailer: x\r\n\
          Transfer-Encoding: chunked\r\nX-Kept: 1\r\n\r\n",
        &Method::GET,
    );
    let names: Vec<_> = h.headers.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["x-kept"]);
    assert_eq!(h.framing, ResponseFraming::Chunked);
}

#[test]
fn a_head_with_bare_line_feeds_is_accepted() {
    let (h, buf) = parsed(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", &Method::GET);
    assert_eq!(h.framing, ResponseFraming::Length(2));
    assert_eq!(&buf[..], b"ok");
}

#[test]
fn something_that_is_not_http_is_refused_before_its_end() {
    let (r, _) = head_of(b"SSH-2.0-OpenSSH_9.2\r\n", &Method::GET);
    assert_eq!(r.unwrap_err(), WireError::Head("not HTTP/1.x"));
    // A prefix of a status line is just incomplete.
    let (r, _) = head_of(b"HTT", &Method::GET);
    assert!(r.unwrap().is_none());
}

#[test]
fn transfer_encoding_decides_over_content_length() {
    let (h, _) = parsed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(h.framing, ResponseFraming::Chunked);
    assert!(h.keep_alive);

    let (h, _) = parsed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(h.framing, ResponseFraming::Chunked);
    assert!(
        h.headers.get("content-length").is_none(),
        "stale length not passed on"
    );
    assert!(
        !h.keep_alive,
        "a message framed two ways ends its connection"
    );

    // Codings other than chunked: the body could not be passed on with its
    // coding once Transfer-Encoding is dropped, so it is refused.
    for te in ["gzip", "gzip, chunked", "chunked, identity"] {
        let raw = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
        let (r, _) = head_of(raw.as_bytes(), &Method::GET);
        assert_eq!(
            r.unwrap_err(),
            WireError::Head("transfer coding other than chunked"),
            "{te}"
        );
    }

    // Chunked in an HTTP/1.0 message: read, but the connection is not reused.
    let (h, _) = parsed(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(h.framing, ResponseFraming::Chunked);
    assert!(!h.keep_alive);
}

#[test]
fn content_length_values_must_agree_and_be_decimal() {
    let (h, _) = parsed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n",
        &Method::GET,
    );
    assert_eq!(h.framing, ResponseFraming::Length(3));
    for bad in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ] {
        let (r, _) = head_of(bad, &Method::GET);
        assert_eq!(
            r.unwrap_err(),
            WireError::ContentLength,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn connection_reuse_follows_version_and_connection_header() {
    let cases: [(&[u8], bool, ResponseFraming); 11] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n",
            false,
            ResponseFraming::Length(0),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: x, keep-alive\r\n\r\n",
            true,
            ResponseFraming::Length(0),
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            ResponseFraming::Length(0),
        ),
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            true,
            ResponseFraming::Length(0),
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\nuntil close",
            false,
            ResponseFraming::UntilClose,
        ),
        // No content, and none announced: reused (Content-Length: 0 on a
        // 204 is common; a 304's length is its 200's).
        (
            b"HTTP/1.1 204 No Content\r\n\r\n",
            true,
            ResponseFraming::Empty,
        ),
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            true,
            ResponseFraming::Empty,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 76\r\n\r\n",
            true,
            ResponseFraming::Empty,
        ),
        // A body announced where none may be: it may still come, and be
        // read as the next request's answer (an outside audit).
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 76\r\n\r\n",
            false,
            ResponseFraming::Empty,
        ),
        (
            b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            ResponseFraming::Empty,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            ResponseFraming::Empty,
        ),
    ];
    for (raw, keep, framing) in cases {
        let (h, _) = parsed(raw, &Method::GET);
        assert_eq!(
            (h.keep_alive, h.framing),
            (keep, framing),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn malformed_heads_are_errors_not_panics() {
    for bad in [
        &b"HTTP/2 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 099 Low\r\n\r\n",
        b"HTTP/1.1 600 High\r\n\r\n",
        b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    ] {
        let (r, _) = head_of(bad, &Method::GET);
        assert!(
            matches!(r, Err(WireError::Head(_))),
            "{} -> {r:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn head_size_and_header_count_are_bounded() {
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        head_of(&many, &Method::GET).0.unwrap_err(),
        WireError::Head("too many headers")
    );

    let mut huge = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
    huge.resize(MAX_HEAD + 10, b'a');
    assert_eq!(
        head_of(&huge, &Method::GET).0.unwrap_err(),
        WireError::HeadTooLarge
    );
    // Incomplete but already too large: no point reading more.
    huge.truncate(MAX_HEAD);
    assert_eq!(
        head_of(&huge, &Method::GET).0.unwrap_err(),
        WireError::HeadTooLarge
    );
}

/// Feeds `wire` to a decoder `step` bytes at a time; returns the data.
fn decode_in_steps(wire: &[u8], step: usize) -> Result<(Vec<u8>, BytesMut), WireError> {
    let mut dec = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    loop {
        match dec.decode(&mut buf)? {
            Decoded::Data(d) => out.extend_from_slice(&d),
            Decoded::Done => return Ok((out, buf)),
            Decoded::NeedMore => {
                if fed >= wire.len() {
                    return Err(WireError::Chunk("test: ran out of input"));
                }
                let end = (fed + step).min(wire.len());
                buf.extend_from_slice(&wire[fed..end]);
                fed = end;
            }
        }
    }
}

#[test]
fn chunked_bodies_decode_whatever_the_read_boundaries() {
    let wire = b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
    for step in 1..wire.len() {
        let (data, rest) = decode_in_steps(wire, step).unwrap();
        assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
        // Whatever follows the message stays for the next one.
        assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
    }
}

#[test]
fn whitespace_after_a_chunk_size_is_allowed_before_an_extension_or_the_line_end() {
    for wire in [
        &b"5 \r\nhello\r\n0\r\n\r\n"[..],
        b"5\t ;a=b\r\nhello\r\n0\r\n\r\n",
    ] {
        let (data, _) = decode_in_steps(wire, 2).unwrap();
        assert_eq!(data, b"hello", "{}", String::from_utf8_lossy(wire));
    }
}

#[test]
fn an_empty_chunked_body() {
    let (data, rest) = decode_in_steps(b"0\r\n\r\n", 64).unwrap();
    assert!(data.is_empty());
    assert!(rest.is_empty());
}

#[test]
fn malformed_chunked_bodies_are_errors() {
    for bad in [
        &b"g\r\n"[..],
        b"\r\n",
        b";ext\r\n",
        b"5\nhello\r\n",
        b"5\r\nhelloXX",
        b"11111111111111111\r\n",
        b"0 0\r\n",
        b"5;a\x01b\r\n",
        b"0\r\nx: 1\n\r\n",
        b"-5\r\n",
        b"5 6\r\nhello\r\n",
        b"5 x\r\nhello\r\n",
    ] {
        let r = decode_in_steps(bad, 3);
        assert!(
            matches!(r, Err(WireError::Chunk(m)) if !m.starts_with("test")),
            "{} -> {r:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut long_trailer = b"0\r\n".to_vec();
    long_trailer.resize(MAX_CHUNK_META + 10, b'a');
    assert_eq!(
        decode_in_steps(&long_trailer, 4096).unwrap_err(),
        WireError::Chunk("trailers too long")
    );
}

/// Trailer lines are fields, checked as header lines are: a line that is
/// none (a request line, no colon, a folded line, an empty name, blanks
/// before the colon, a control byte) is an error, not swallowed. An
/// outside audit sent `0\r\nGET /pub/SMUG HTTP/1.1\r\n...`: a proxy in
/// front that ends the body at `0\r\n` reads a request there.
#[test]
fn trailer_lines_that_are_no_fields_are_errors() {
    for bad in [
        &b"0\r\nGET /pub/SMUG HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"0\r\nnocolon\r\n\r\n",
        b"0\r\nx : 1\r\n\r\n",
        b"0\r\n: v\r\n\r\n",
        b"0\r\nx: 1\r\n folded\r\n\r\n",
        b"0\r\nx: a\x00b\r\n\r\n",
        b"0\r\nx: a\x7fb\r\n\r\n",
        b"0\r\nx(y): 1\r\n\r\n",
    ] {
        for step in [1, 3, 64] {
            let r = decode_in_steps(bad, step);
            assert!(
                matches!(r, Err(WireError::Chunk(m)) if !m.starts_with("test")),
                "{} -> {r:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
    for good in [
        &b"0\r\nx-trailer: 1\r\n\r\n"[..],
        b"0\r\nx-empty:\r\n\r\n",
        b"0\r\nx-t:\t a b \xc3\xa9 \r\nX-Other!#$%&'*+-.^_`|~9: v\r\n\r\n",
    ] {
        for step in [1, 3, 64] {
            let (data, rest) = decode_in_steps(good, step).unwrap();
            assert!(
                data.is_empty() && rest.is_empty(),
                "{}",
                String::from_utf8_lossy(good)
            );
        }
    }
}

/// An upstream's trailer lines are read to their end, not checked: the
/// body has gone to the client by then (a review found strict checks
/// cutting answers short).
#[test]
fn an_upstreams_sloppy_trailers_do_not_cut_its_answer() {
    let mut dec = ChunkedDecoder::lenient();
    let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\nX-Checksum : abc\r\nno colon\r\n\r\nNEXT"[..]);
    let mut data = Vec::new();
    loop {
        match dec.decode(&mut buf).unwrap() {
            Decoded::Data(d) => data.extend_from_slice(&d),
            Decoded::Done => break,
            Decoded::NeedMore => panic!("the answer is all there"),
        }
    }
    assert_eq!(data, b"abc");
    assert_eq!(&buf[..], b"NEXT");
    // A bare LF still ends no line, either way.
    let mut dec = ChunkedDecoder::lenient();
    let mut buf = BytesMut::from(&b"0\r\nx: 1\n\r\n"[..]);
    assert!(dec.decode(&mut buf).is_err());
}

#[test]
fn the_largest_chunk_size_is_accepted_without_overflow() {
    // The first decode of a chunk of `size`, with two bytes of its data.
    let first = |size: &[u8]| {
        let mut dec = ChunkedDecoder::default();
        let mut buf = BytesMut::from(size);
        buf.extend_from_slice(b"\r\nab");
        (dec.decode(&mut buf), dec.is_done())
    };
    for size in [&b"ffffffffffffffff"[..], b"0000ffffffffffffffff"] {
        let (decoded, done) = first(size);
        assert_eq!(decoded.unwrap(), Decoded::Data(Bytes::from_static(b"ab")));
        assert!(!done);
    }
    for too_large in [&b"10000000000000000"[..], b"00010000000000000000"] {
        assert_eq!(
            first(too_large).0.unwrap_err(),
            WireError::Chunk("chunk size too large")
        );
    }
}

/// A size written with leading zeros past 16 digits is the size it says
/// (RFC 9112 §7.1; HAProxy reads it so): it had been refused as too large.
/// The line stays bounded, zeros and extension together.
#[test]
fn leading_zeros_of_a_chunk_size_are_read_and_the_line_bounded() {
    let wire = b"0000000000000000000000000000005;a=b\r\nhello\r\n00000000000000000000\r\n\r\n";
    for step in [1, 7, 64] {
        let (data, rest) = decode_in_steps(wire, step).unwrap();
        assert_eq!(data, b"hello", "step {step}");
        assert!(rest.is_empty());
    }
    let mut zeros = vec![b'0'; MAX_CHUNK_META + 10];
    zeros.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    assert_eq!(
        decode_in_steps(&zeros, 4096).unwrap_err(),
        WireError::Chunk("chunk size line too long")
    );
    let mut blanks = b"5".to_vec();
    blanks.resize(MAX_CHUNK_META + 10, b' ');
    blanks.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(
        decode_in_steps(&blanks, 4096).unwrap_err(),
        WireError::Chunk("chunk size line too long")
    );
}

#[test]
fn header_names_are_told_apart_in_any_case_and_only_when_equal() {
    // Every token character (RFC 9110 §5.6.2), in every position of every
    // name the gateway looks for: the word-wise compare agrees with a
    // byte-wise case-insensitive one.
    let tchars: Vec<u8> = (0u8..=127)
        .filter(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
        .collect();
    for name in [
        "te",
        "date",
        "trailer",
        "upgrade",
        "connection",
        "keep-alive",
        "content-length",
        "proxy-connection",
        "transfer-encoding",
        "proxy-authenticate",
    ] {
        let lower = name.as_bytes();
        assert!(same_name(name.to_ascii_uppercase().as_bytes(), lower));
        assert!(!same_name(&lower[1..], lower), "{name}: length");
        for at in 0..lower.len() {
            for &c in &tchars {
                let mut probe = lower.to_vec();
                probe[at] = c;
                assert_eq!(
                    same_name(&probe, lower),
                    probe.eq_ignore_ascii_case(lower),
                    "{name} with {:?} at {at}",
                    c as char
                );
            }
        }
    }
    assert_eq!(Field::of(b"Content-Length"), Field::ContentLength);
    assert_eq!(Field::of(b"CONNECTION"), Field::Connection);
    assert_eq!(Field::of(b"Keep-Alive"), Field::HopByHop);
    assert_eq!(Field::of(b"Content-Type"), Field::EndToEnd);
    assert_eq!(Field::of(b"content-lengtH"), Field::ContentLength);
    assert_eq!(Field::of(b"content_length"), Field::EndToEnd);
}

#[test]
fn only_a_101_naming_websocket_in_upgrade_and_connection_switches_to_it() {
    for head in [
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"[..],
        b"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\r\n",
    ] {
        assert!(switches_to_websocket(head), "{}", String::from_utf8_lossy(head));
    }
    for head in [
        &b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..],
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgraded\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n",
    ] {
        assert!(!switches_to_websocket(head), "{}", String::from_utf8_lossy(head));
    }
}
