use super::*;

fn parse(bytes: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    parse_request_head(&mut BytesMut::from(bytes), &mut HeaderMap::new())
}

fn head(bytes: &[u8]) -> RequestHead {
    match parse(bytes) {
        Ok(Some(h)) => h,
        other => panic!("expected a head, got {other:?}"),
    }
}

fn refused(bytes: &[u8]) -> StatusCode {
    match parse(bytes) {
        Err(e) => e.status(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_get_is_read_with_its_headers_and_leaves_the_next_request_in_the_buffer() {
    let mut buf = BytesMut::from(
        &b"GET /a/b?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next HTTP/1.1\r\n"[..],
    );
    let mut spare = HeaderMap::with_capacity(32);
    spare.insert(
        "x-left-over",
        HeaderValue::from_static("from an earlier use"),
    );
    let h = parse_request_head(&mut buf, &mut spare).unwrap().unwrap();
    // The spare map was taken, emptied of what it held.
    assert_eq!(spare.capacity(), 0);
    assert!(h.parts.headers.get("x-left-over").is_none());
    assert_eq!(h.parts.method, Method::GET);
    assert_eq!(h.parts.uri.path(), "/a/b");
    assert_eq!(h.parts.uri.query(), Some("q=1"));
    assert_eq!(h.parts.version, Version::HTTP_11);
    let xa: Vec<_> = h.parts.headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(h.body, RequestFraming::Empty);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert_eq!(&buf[..], b"GET /next HTTP/1.1\r\n");
}

#[test]
fn an_incomplete_head_asks_for_more_and_consumes_nothing() {
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x\r\n"[..]);
    let mut spare = HeaderMap::with_capacity(8);
    assert!(parse_request_head(&mut buf, &mut spare).unwrap().is_none());
    // Not taken: the caller keeps it.
    assert!(spare.capacity() > 0);
    assert_eq!(&buf[..], b"GET / HTTP/1.1\r\nHost: x\r\n");
}

#[test]
fn empty_lines_before_the_request_line_are_skipped() {
    let h = head(b"\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.parts.uri.path(), "/");
    // A lone CR is not an empty line.
    assert_eq!(
        refused(b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn absolute_form_targets_keep_their_authority() {
    let h = head(b"GET http://example.com:8080/p HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
    assert_eq!(
        h.parts.uri.authority().map(|a| a.as_str()),
        Some("example.com:8080")
    );
    assert_eq!(h.parts.uri.path(), "/p");
    let h = head(b"GET HTTPS://example.com/p HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(h.parts.uri.path(), "/p");
    // Only http and https URIs.
    for other in ["ftp", "ws", "file", "gopher"] {
        let line = format!("GET {other}://example.com/p HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(refused(line.as_bytes()), StatusCode::BAD_REQUEST, "{other}");
    }
}

#[test]
fn body_framing_follows_content_length_and_chunked() {
    assert_eq!(
        head(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").body,
        RequestFraming::Length(12)
    );
    assert_eq!(
        head(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
        RequestFraming::Empty
    );
    // The same length repeated, on one line or two, is one length.
    // The same length on two lines is one length; a list is refused below.
    assert_eq!(
        head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").body,
        RequestFraming::Length(5)
    );
    assert_eq!(
        head(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").body,
        RequestFraming::Chunked
    );
}

#[test]
fn lengths_and_codings_that_two_readers_could_read_differently_are_refused() {
    let bad = StatusCode::BAD_REQUEST;
    // Smuggling shapes (RFC 9112 §6.1, §6.3).
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n"),
        bad
    );
    // A coding we cannot decode, before the final chunked (its meaning
    // would be lost on the way upstream): 400, never a 5xx for client input.
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        bad
    );
    // Present but empty, it still overrides the length, and does not end in
    // chunked.
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\n"),
        bad
    );
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n"),
        bad
    );
}

#[test]
fn malformed_heads_are_bad_requests() {
    let bad = StatusCode::BAD_REQUEST;
    assert_eq!(refused(b"GARBAGE\r\n\r\n"), bad);
    assert_eq!(refused(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"), bad);
    assert_eq!(refused(b"GET / HTTP/1.1\r\nName : v\r\n\r\n"), bad);
    assert_eq!(refused(b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n"), bad);
    assert_eq!(refused(b"GET / HTTP/1.1\r\nA: b\0c\r\n\r\n"), bad);
    assert_eq!(refused(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), bad);
    assert_eq!(refused(b"G\x01T / HTTP/1.1\r\n\r\n"), bad);
    // Lines that end in a bare CR end no line: refused at once, not left to
    // the header timeout (an outside audit waited 30 s for nothing).
    assert_eq!(refused(b"GET / HTTP/1.1\rHost: x\r\r"), bad);
    assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: x\rX"), bad);
    // The message names the part that is wrong (an outside audit: a bad
    // byte in the target was an "invalid method").
    for (line, said) in [
        (&b"G\x01T / HTTP/1.1"[..], "invalid method"),
        (b" / HTTP/1.1", "invalid method"),
        (b"GET /o/\xe9 HTTP/1.1", "invalid request target"),
        (b"GET /o/\x7f HTTP/1.1", "invalid request target"),
        (b"GET /o/x\0y HTTP/1.1", "invalid request target"),
        (b"GET  /o/x HTTP/1.1", "invalid request target"),
    ] {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\nHost: x\r\n\r\n");
        let e = parse(&bytes).expect_err("refused");
        assert_eq!(
            e,
            HeadError::Malformed(said),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    // A space in the target leaves `b HTTP/1.1` where the version goes.
    assert_eq!(
        refused(b"GET /a b HTTP/1.1\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn versions_other_than_1_0_and_1_1_are_bad_requests_not_5xx() {
    assert_eq!(refused(b"GET / HTTP/2.0\r\n\r\n"), StatusCode::BAD_REQUEST);
    assert_eq!(refused(b"GET / HTTP/3.0\r\n\r\n"), StatusCode::BAD_REQUEST);
}

#[test]
fn heads_too_large_or_with_too_many_headers_are_431() {
    let big = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_REQUEST_HEAD));
    // Incomplete and already past the limit: refused without waiting.
    assert_eq!(refused(&long), big);
    long.extend_from_slice(b"\r\n\r\n");
    assert_eq!(refused(&long), big);
    // A request line alone over the limit: the target is too long.
    let mut target = b"GET /".to_vec();
    target.extend(std::iter::repeat_n(b'a', MAX_REQUEST_HEAD));
    assert_eq!(refused(&target), StatusCode::URI_TOO_LONG);
    target.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused(&target), StatusCode::URI_TOO_LONG);
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_REQUEST_HEADERS {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(refused(&many), big);
}

#[test]
fn keep_alive_and_expect_follow_the_version_and_connection_tokens() {
    assert!(head(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
    assert!(!head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive);
    assert!(!head(b"GET / HTTP/1.1\r\nConnection: x-a, close\r\n\r\n").keep_alive);
    assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(
        head(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
            .expect_continue
    );
    assert!(
        !head(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
            .expect_continue
    );
    assert!(!head(b"POST / HTTP/1.1\r\nExpect: something\r\n\r\n").expect_continue);
    assert!(
        head(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nExpect: other\r\nContent-Length: 3\r\n\r\n")
            .expect_continue
    );
}

fn encoded(
    status: u16,
    headers: &[(&str, &str)],
    framing: ResponseFraming,
    keep_alive: bool,
    http10: bool,
) -> String {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut out = Vec::new();
    encode_response_head(
        &mut out,
        StatusCode::from_u16(status).unwrap(),
        None,
        &map,
        framing,
        keep_alive,
        http10,
        |out: &mut Vec<u8>| out.extend_from_slice(b"Wed, 02 Dec 2026 14:00:00 GMT"),
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn the_response_head_carries_our_framing_never_the_responses_own() {
    assert_eq!(
        encoded(200, &[("content-type", "text/plain"), ("content-length", "99"), ("transfer-encoding", "chunked"), ("connection", "x")], ResponseFraming::Length(5), true, false),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: Wed, 02 Dec 2026 14:00:00 GMT\r\ncontent-length: 5\r\n\r\n"
    );
    assert_eq!(
        encoded(502, &[], ResponseFraming::Chunked, false, false),
        "HTTP/1.1 502 Bad Gateway\r\ndate: Wed, 02 Dec 2026 14:00:00 GMT\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    // An HTTP/1.0 client that asked to keep the connection is told it is kept.
    assert_eq!(
        encoded(200, &[("date", "Thu, 01 Jan 1970 00:00:00 GMT")], ResponseFraming::Length(0), true, true),
        "HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
    );
    // HEAD and 304 keep the length a GET would have had; 204 has none.
    assert!(encoded(
        200,
        &[("content-length", "42")],
        ResponseFraming::Empty,
        true,
        false
    )
    .contains("content-length: 42\r\n"));
    assert!(encoded(
        304,
        &[("content-length", "42")],
        ResponseFraming::Empty,
        true,
        false
    )
    .contains("content-length: 42\r\n"));
    assert!(!encoded(
        204,
        &[("content-length", "0")],
        ResponseFraming::Empty,
        true,
        false
    )
    .contains("content-length"));
    // A status without a canonical reason still has a well-formed line.
    assert!(
        encoded(599, &[], ResponseFraming::Length(0), true, false).starts_with("HTTP/1.1 599 \r\n")
    );
}

#[test]
fn framing_is_chosen_by_method_status_length_and_version() {
    use ResponseFraming::*;
    let v11 = Version::HTTP_11;
    assert_eq!(
        response_framing(&Method::GET, v11, StatusCode::OK, Some(3)),
        Length(3)
    );
    assert_eq!(
        response_framing(&Method::GET, v11, StatusCode::OK, None),
        Chunked
    );
    assert_eq!(
        response_framing(&Method::GET, Version::HTTP_10, StatusCode::OK, None),
        UntilClose
    );
    assert_eq!(
        response_framing(&Method::HEAD, v11, StatusCode::OK, Some(3)),
        Empty
    );
    assert_eq!(
        response_framing(&Method::GET, v11, StatusCode::NO_CONTENT, Some(0)),
        Empty
    );
    assert_eq!(
        response_framing(&Method::GET, v11, StatusCode::NOT_MODIFIED, None),
        Empty
    );
}

#[test]
fn a_response_asking_to_close_is_seen() {
    let mut h = HeaderMap::new();
    assert!(!response_says_close(&h));
    h.append(CONNECTION, HeaderValue::from_static("keep-alive, Close"));
    assert!(response_says_close(&h));
}

#[test]
fn the_preface_is_not_a_request() {
    // What the connection loop checks before parsing: the preface would
    // otherwise be read as a request of version HTTP/2.0.
    assert_eq!(refused(H2_PREFACE), StatusCode::BAD_REQUEST);
}

#[test]
fn a_head_is_seen_complete_only_once_its_empty_line_or_the_limit_arrives() {
    let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    // Fed a byte at a time, the question is asked of each new byte only.
    let mut complete_at = None;
    for end in 1..=head.len() {
        if may_complete_head(&head[..end], end - 1) {
            complete_at.get_or_insert(end);
        }
    }
    assert_eq!(complete_at, Some(head.len()));
    // The line end split over two pieces: CR LF | CR LF, and LF | LF.
    assert!(may_complete_head(b"GET / HTTP/1.1\r\n\r\n", 16));
    assert!(may_complete_head(b"GET / HTTP/1.1\n\n", 15));
    assert!(!may_complete_head(b"GET / HTTP/1.1\r\nHost: x\r\n", 20));
    let big = vec![b'a'; MAX_REQUEST_HEAD];
    assert!(may_complete_head(&big, MAX_REQUEST_HEAD - 1));
    // Asking beyond the end is asking nothing.
    assert!(!may_complete_head(b"GET", 10));
}

/// An upstream's head parsed with its lines kept as bytes.
fn passed_of(upstream_head: &[u8]) -> Box<PassedHeaders> {
    let head = crate::h1::parse_response_head(
        &mut BytesMut::from(upstream_head),
        &Method::GET,
        &mut HeaderMap::new(),
        true,
    );
    head.unwrap().unwrap().passed.unwrap()
}

#[test]
fn passed_lines_go_out_first_then_the_gateways_headers_then_our_framing() {
    let passed = passed_of(
        b"HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n",
    );
    let mut own = HeaderMap::new();
    own.insert("x-gw", HeaderValue::from_static("yes"));
    let mut out = Vec::new();
    encode_response_head(
        &mut out,
        StatusCode::OK,
        Some(&passed),
        &own,
        ResponseFraming::Length(5),
        true,
        false,
        |out: &mut Vec<u8>| out.extend_from_slice(b"Wed, 02 Dec 2026 14:00:00 GMT"),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\nServer: up\r\nX-A: 1\r\nx-gw: yes\r\n\
         date: Wed, 02 Dec 2026 14:00:00 GMT\r\ncontent-length: 5\r\n\r\n"
    );

    // The upstream's own Date is kept and no second one is added.
    let passed = passed_of(
        b"HTTP/1.1 200 OK\r\nDATE: Thu, 01 Jan 1970 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let mut out = Vec::new();
    encode_response_head(
        &mut out,
        StatusCode::OK,
        Some(&passed),
        &HeaderMap::new(),
        ResponseFraming::Chunked,
        false,
        false,
        // Not called: the clock is not read for an answer that has a Date.
        |_: &mut Vec<u8>| panic!("the upstream's Date is kept; no Date is made"),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 200 OK\r\nDATE: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
}
