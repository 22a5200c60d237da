//! HTTP/1.1 towards clients, as bytes: the request head a client writes
//! (RFC 9112 §3–5), how its body is delimited (§6), and the response head we
//! write back. No sockets here either — `server::http1` does the I/O — so
//! every rule is tested on byte strings, the malformed ones a client may
//! send included.
//!
//! Stricter than hyper's server, which this replaced, where two readings of
//! a request are possible: `Transfer-Encoding` beside `Content-Length` is
//! refused (hyper let the coding win and forwarded it), and a transfer
//! coding other than exactly `chunked` is refused (`gzip, chunked` was
//! accepted, and its `gzip` lost on the way upstream).

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::TRANSFER_ENCODING;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, EXPECT};
use http::{request, Method, Request, StatusCode, Uri, Version};

use super::{
    head_end, parse_length, push_decimal, tokens, PassedHeaders, RequestFraming, ResponseFraming,
};

/// The largest request head accepted (request line and headers).
pub const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// The most request headers accepted.
pub const MAX_REQUEST_HEADERS: usize = 100;

/// Headers the pipeline typically adds to a request before it goes upstream.
const ADDED_UPSTREAM: usize = 8;

/// What a request line httparse refused for a bad token holds wrong: the
/// method, when it is not a token followed by one space, else the target.
fn token_error(head: &[u8]) -> HeadError {
    let method = head.iter().take_while(|&&b| b != b' ').count();
    if method == 0 || !head[..method].iter().all(|&b| super::is_tchar(b)) {
        HeadError::Malformed("invalid method")
    } else {
        HeadError::Malformed("invalid request target")
    }
}

/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A request head no server could read one way only. Answered with
/// [`HeadError::status`] and the connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    #[error("request head larger than {MAX_REQUEST_HEAD} bytes or with more than {MAX_REQUEST_HEADERS} headers")]
    TooLarge,
    #[error("request line longer than {MAX_REQUEST_HEAD} bytes")]
    TargetTooLong,
    /// A 400, not a 505: what a client sends never gets a 5xx (the project's
    /// rule), and a line that fails here is as often garbage (TLS bytes) as
    /// a real version.
    #[error("not HTTP/1.0 or HTTP/1.1")]
    Version,
    #[error("ambiguous or invalid body framing: {0}")]
    Framing(&'static str),
    #[error("transfer coding other than chunked")]
    Coding,
}

impl HeadError {
    pub fn status(&self) -> StatusCode {
        match self {
            // RFC 9112 §6.1 suggests 501 for a coding the server does not
            // know; 400 here too, by the same rule as `Version`.
            HeadError::Malformed(_)
            | HeadError::Framing(_)
            | HeadError::Version
            | HeadError::Coding => StatusCode::BAD_REQUEST,
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::TargetTooLong => StatusCode::URI_TOO_LONG,
        }
    }
}

/// A parsed request head. Header values and the target share one buffer
/// with the head bytes rather than one allocation each.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: request::Parts,
    pub body: RequestFraming,
    /// The client may send another request on this connection after this
    /// one (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
    /// `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for `100 Continue` before
    /// it sends the body.
    pub expect_continue: bool,
}

/// Parses a request head from the front of `buf`. `Ok(None)`: incomplete,
/// read more. On success the head's bytes are removed from `buf`, which then
/// starts with the body (or the next pipelined request), and the headers
/// are in `spare`'s map (an empty one, with capacity from an earlier use),
/// taken out of it.
pub fn parse_request_head(
    buf: &mut BytesMut,
    spare: &mut HeaderMap,
) -> Result<Option<RequestHead>, HeadError> {
    // RFC 9112 §2.2: empty lines (CRLF or LF) before the request line are
    // ignored; a lone CR is not one.
    let mut blank = 0;
    loop {
        match buf.get(blank..) {
            Some([b'\r', b'\n', ..]) => blank += 2,
            Some([b'\n', ..]) => blank += 1,
            _ => break,
        }
    }
    if blank > 0 {
        let _ = buf.split_to(blank);
    }
    let Some(len) = head_end(buf) else {
        if buf.len() >= MAX_REQUEST_HEAD {
            return Err(too_large(buf));
        }
        // A CR that is not followed by LF ends no line (RFC 9112 §2.2): a
        // head of such lines would never end, and only the header timeout
        // answered it, 30 s later and with nothing.
        if bare_cr(buf) {
            return Err(HeadError::Malformed("bare CR in the header section"));
        }
        return Ok(None);
    };
    if len > MAX_REQUEST_HEAD {
        return Err(too_large(buf));
    }
    // Split off first, so that values can be slices of it.
    let head: Bytes = buf.split_to(len).freeze();
    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_REQUEST_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, &head, &mut raw)
    {
        Ok(httparse::Status::Complete(n)) if n == len => {}
        Ok(_) => return Err(HeadError::Malformed("malformed header section")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        // httparse says `Token` for a bad byte in the method and in the
        // target alike: the error names the one that is (an outside audit:
        // `GET /a<DEL>` was an "invalid method").
        Err(httparse::Error::Token) => return Err(token_error(&head)),
        Err(httparse::Error::HeaderName) => {
            return Err(HeadError::Malformed("invalid header name"))
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(HeadError::Malformed("invalid header value"))
        }
        Err(_) => return Err(HeadError::Malformed("invalid request line")),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let uri = Uri::from_maybe_shared(head.slice_ref(target.as_bytes()))
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    // An absolute-form target is an http or https URI (RFC 9112 §3.2.2),
    // never `ftp://` or the like (an outside audit).
    if let Some(scheme) = uri.scheme() {
        if *scheme != http::uri::Scheme::HTTP && *scheme != http::uri::Scheme::HTTPS {
            return Err(HeadError::Malformed("invalid request target"));
        }
    }
    let version = if version == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };

    // Room for what the pipeline adds on the way upstream (four forwarding
    // headers, identity headers, forwarded claims): growing the map then
    // would rehash it.
    let mut headers = std::mem::take(spare);
    // Never a header of an earlier message: the map is meant to come empty.
    if !headers.is_empty() {
        headers.clear();
    }
    headers.reserve(req.headers.len() + ADDED_UPSTREAM);
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_count = 0u32;
    let mut last_chunked = false;
    let mut other_coding = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Malformed("invalid header name"))?;
        if name == CONTENT_LENGTH {
            // One number per line; a line repeated with the same number is
            // one length (RFC 9110 §8.6), a list on one line is refused.
            let n = parse_length(h.value).ok_or(HeadError::Framing("invalid Content-Length"))?;
            match content_length {
                Some(prev) if prev != n => {
                    return Err(HeadError::Framing("conflicting Content-Length values"))
                }
                _ => content_length = Some(n),
            }
        } else if name == TRANSFER_ENCODING {
            // Present, even empty, it overrides any length (RFC 9112 §6.3):
            // an empty one does not end in chunked, and is refused below.
            transfer_encoding = true;
            for coding in tokens(h.value) {
                last_chunked = coding.eq_ignore_ascii_case(b"chunked");
                if last_chunked {
                    chunked_count += 1;
                } else {
                    other_coding = true;
                }
            }
        } else if name == CONNECTION {
            for token in tokens(h.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name == EXPECT {
            // Any line asking for it: a later, other expectation must not
            // leave the client waiting for a `100 Continue` never sent.
            expect_continue |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        let value = HeaderValue::from_maybe_shared(head.slice_ref(h.value))
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }

    let body = if transfer_encoding {
        // RFC 9112 §6.1: a coding in an HTTP/1.0 request, or beside a
        // length, means some reader will frame this request differently.
        if version == Version::HTTP_10 {
            return Err(HeadError::Framing(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if content_length.is_some() {
            return Err(HeadError::Framing(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if !last_chunked {
            return Err(HeadError::Framing(
                "Transfer-Encoding does not end in chunked",
            ));
        }
        if chunked_count > 1 {
            return Err(HeadError::Framing("chunked applied more than once"));
        }
        // Chunked is the only coding decoded here, and the only one that
        // can go upstream: the pipeline re-frames the body, and any other
        // coding would be lost with the header.
        if other_coding {
            return Err(HeadError::Coding);
        }
        RequestFraming::Chunked
    } else {
        match content_length {
            Some(0) | None => RequestFraming::Empty,
            Some(n) => RequestFraming::Length(n),
        }
    };
    let keep_alive = !close && (version == Version::HTTP_11 || keep_alive_token);
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(RequestHead {
        parts,
        body,
        keep_alive,
        expect_continue: expect_continue && version == Version::HTTP_11,
    }))
}

/// Whether the bytes from `from` on (and the two before, where a line end
/// may have begun) could complete a head in `buf`: an empty line, or the
/// size limit reached. A connection that reads a head in many small pieces
/// asks this of each new piece instead of parsing everything again, so a
/// head sent a byte at a time costs linear, not quadratic, time.
pub fn may_complete_head(buf: &[u8], from: usize) -> bool {
    if buf.len() >= MAX_REQUEST_HEAD {
        return true;
    }
    let start = from.saturating_sub(2).min(buf.len());
    let piece = buf.get(start..).unwrap_or_default();
    // A bare CR ends no line: a head of such lines never ends, so the
    // parser is asked at once, and refuses it.
    head_end(piece).is_some() || bare_cr(piece)
}

/// Whether `bytes` hold a CR followed by something other than LF.
fn bare_cr(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', bytes).any(|cr| bytes.get(cr + 1).is_some_and(|&b| b != b'\n'))
}

/// A head over the limit: 414 when its request line alone is, else 431.
fn too_large(buf: &[u8]) -> HeadError {
    match memchr::memchr(b'\n', buf) {
        Some(end) if end < MAX_REQUEST_HEAD => HeadError::TooLarge,
        _ => HeadError::TargetTooLong,
    }
}

/// How the response to a request of `method` and `version` is delimited,
/// given its `status` and the body's length when known. `Empty` (HEAD, 1xx,
/// 204, 304): no body follows the head, and the response's own
/// `Content-Length` (what a GET would have had) is passed on for HEAD and
/// 304. `UntilClose`: a body of unknown length to an HTTP/1.0 client.
pub fn response_framing(
    method: &Method,
    version: Version,
    status: StatusCode,
    length: Option<u64>,
) -> ResponseFraming {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        ResponseFraming::Empty
    } else if let Some(n) = length {
        ResponseFraming::Length(n)
    } else if version == Version::HTTP_11 {
        ResponseFraming::Chunked
    } else {
        ResponseFraming::UntilClose
    }
}

/// Whether the response's own headers ask for the connection to close.
pub fn response_says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| tokens(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close")))
}

/// Writes the status line and headers. Framing headers (`Content-Length`,
/// `Transfer-Encoding`, `Connection`) are written from `framing` and
/// `keep_alive`, never copied: the client frames the body exactly as it is
/// sent. `date` writes the `Date` value to add when the response has none;
/// it is called only then (an upstream's answer usually has one, and the
/// clock need not be read).
/// `keep_alive` says whether the connection stays open; `http10` whether
/// the client speaks HTTP/1.0 (which closes unless told otherwise).
/// `passed`: an upstream's header lines, copied first as they came (they
/// hold no framing header), then `headers`, the gateway's own.
#[allow(clippy::too_many_arguments)]
pub fn encode_response_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    passed: Option<&PassedHeaders>,
    headers: &HeaderMap,
    framing: ResponseFraming,
    keep_alive: bool,
    http10: bool,
    date: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_date = false;
    if let Some(passed) = passed {
        for run in passed.runs() {
            out.extend_from_slice(run);
        }
        has_date = passed.has_date();
    }
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            // What a GET would have carried: the HEAD or 304 answer keeps it.
            if framing != ResponseFraming::Empty
                || status == StatusCode::NO_CONTENT
                || status.is_informational()
            {
                continue;
            }
        } else if name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        } else if name == DATE {
            has_date = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::Empty | ResponseFraming::UntilClose => {}
        ResponseFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The head of a `101` that switches the connection to the WebSocket
/// protocol: the upstream's end-to-end headers (`Sec-WebSocket-Accept`...),
/// then `Connection` and `Upgrade` in the gateway's own words (the
/// upstream's, hop-by-hop, were not kept).
pub fn encode_switch_head(
    out: &mut Vec<u8>,
    passed: Option<&PassedHeaders>,
    headers: &HeaderMap,
    date: impl FnOnce(&mut Vec<u8>),
) {
    encode_response_head(
        out,
        StatusCode::SWITCHING_PROTOCOLS,
        passed,
        headers,
        ResponseFraming::Empty,
        true,
        false,
        date,
    );
    // In place of the head's closing empty line.
    out.truncate(out.len() - 2);
    out.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n\r\n");
}

/// The whole answer to a request head that could not be read: the status,
/// `{"message": why}` as every answer of the gateway's own says why, and
/// the connection closes.
pub fn encode_refusal(out: &mut Vec<u8>, status: StatusCode, why: &str, date: &[u8]) {
    let body = crate::error::json_message_body(why);
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    encode_response_head(
        out,
        status,
        None,
        &headers,
        ResponseFraming::Length(u64::try_from(body.len()).unwrap_or(u64::MAX)),
        false,
        false,
        |out| out.extend_from_slice(date),
    );
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests;
