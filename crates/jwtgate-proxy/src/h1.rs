//! HTTP/1.1 towards upstreams (towards clients: [`inbound`]), as bytes and nothing else: the request head we
//! write, the response head we read (RFC 9112 §4–5), how the response body is
//! delimited (§6.3) and the chunked decoder (§7.1). No sockets and no timers
//! here — `upstream` does the I/O — so every rule below is tested on byte
//! strings, including the malformed ones an upstream may send.
//!
//! Why not hyper's client: its connection lives in a task of its own, so every
//! proxied request crossed a channel to that task, a oneshot back, and a body
//! channel after it — a third of the gateway's CPU per request. Reading and
//! writing the upstream socket from the request's own task removes all three.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{Method, StatusCode, Version};

use crate::headers::GatewayHeaders;

/// The largest response head accepted (status line and headers).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most response headers accepted.
const MAX_HEADERS: usize = 100;
// A bit per header in `parse_response_head`'s masks.
const _: () = assert!(MAX_HEADERS <= 128);
/// Chunk extensions and trailers are read and dropped, up to this many bytes.
const MAX_CHUNK_META: usize = 16 * 1024;

/// An upstream that does not speak HTTP/1.1 correctly. Reported as 502.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed response head: {0}")]
    Head(&'static str),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid Content-Length in the response")]
    ContentLength,
    #[error("malformed chunked body: {0}")]
    Chunk(&'static str),
}

/// How a request body is delimited: as a client sent it (`inbound`), and as
/// it goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`: the client did not say how long.
    Chunked,
}

/// Writes the request line, `host` (the upstream node's), the client's
/// headers and then the gateway's own (`added`). The client's own `Host`,
/// `Content-Length` and `Transfer-Encoding` are replaced: the node's name,
/// and what `framing` says, so the upstream frames the body exactly as we
/// send it (no smuggling through two lengths). `target` is an origin-form
/// path and query that `http` has already validated; header names and
/// values cannot hold CR or LF (`http` checks).
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    host: &HeaderValue,
    headers: &HeaderMap,
    added: &GatewayHeaders<'_>,
    framing: RequestFraming,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == HOST || name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        push_field(out, name.as_str(), value.as_bytes());
    }
    for (name, value) in added.iter() {
        push_field(out, name, value);
    }
    if added.websocket {
        out.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n");
    }
    match framing {
        RequestFraming::Empty => {
            // Servers may answer 411 to a POST without a length.
            if method == Method::POST || method == Method::PUT || method == Method::PATCH {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        RequestFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        // n % 10 < 10: the cast cannot truncate.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends one chunk's size line for `len` bytes of data.
pub fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head. The header values share one buffer with the head
/// bytes rather than one allocation each.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// The end-to-end headers, in the order received; hop-by-hop ones are
    /// left out. Empty when they are in `passed`.
    pub headers: HeaderMap,
    /// The end-to-end header lines as they arrived, when the response
    /// allows passing them on as bytes (see [`PassedHeaders`]); `headers`
    /// is then left empty. Boxed: the head is returned through several
    /// futures, and the response it becomes is moved on its way out.
    pub passed: Option<Box<PassedHeaders>>,
    pub framing: ResponseFraming,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses a response head from the front of `buf`. `Ok(None)`: incomplete,
/// read more. On success the head's bytes are removed from `buf`, which then
/// starts with the body, and the headers are either passed on as bytes
/// ([`PassedHeaders`]) or in `spare`'s map (an empty one, with capacity from
/// an earlier use), taken out of it. `request_method` decides whether a body
/// follows; `pass_on` says whether the client side can take the lines as
/// bytes (an HTTP/1.x client: HTTP/2 encodes every header anew).
///
/// Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and the headers it
/// names, `Keep-Alive`, `Transfer-Encoding`, `Upgrade`, `TE`, `Trailer`,
/// `Proxy-*`) are read for framing and left out: they describe this
/// connection, not the response the client gets. So is `Content-Length`
/// when the body is chunked or passed on: the client side writes its own.
pub fn parse_response_head(
    buf: &mut BytesMut,
    request_method: &Method,
    spare: &mut HeaderMap,
    pass_on: bool,
) -> Result<Option<ResponseHead>, WireError> {
    let Some(len) = head_end(buf) else {
        // Not even the start of a status line: no point waiting for more.
        let start = &buf[..buf.len().min(5)];
        if !b"HTTP/".starts_with(start) {
            return Err(WireError::Head("not HTTP/1.x"));
        }
        if buf.len() >= MAX_HEAD {
            return Err(WireError::HeadTooLarge);
        }
        return Ok(None);
    };
    if len > MAX_HEAD {
        return Err(WireError::HeadTooLarge);
    }
    // The head is split off first, so that header values can be slices of
    // it rather than one allocation each.
    let head: Bytes = buf.split_to(len).freeze();
    let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, &head, &mut raw)
    {
        Ok(httparse::Status::Complete(n)) if n == len => {}
        Ok(_) => return Err(WireError::Head("malformed header section")),
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::Head("too many headers")),
        Err(httparse::Error::Status) => return Err(WireError::Head("invalid status line")),
        Err(httparse::Error::Version) => return Err(WireError::Head("not HTTP/1.x")),
        Err(_) => return Err(WireError::Head("invalid header")),
    }
    // RFC 9110 §15: a code outside 100..=599 is invalid (`http` takes up
    // to 999), and a client may not know what to make of one.
    let status = StatusCode::from_u16(resp.code.unwrap_or(0))
        .ok()
        .filter(|s| s.as_u16() <= 599)
        .ok_or(WireError::Head("invalid status code"))?;

    // One pass over the names: the framing, and the stretches of lines
    // that could be passed on as they are.
    let base = head.as_ptr().addr();
    let offset = |s: &[u8]| s.as_ptr().addr().saturating_sub(base);
    let mut content_length: Option<u64> = None;
    let mut length_conflict = false;
    // One `Content-Length` line holding the number as it is written
    // canonically: it can go on as it came.
    let mut length_lines = 0u32;
    let mut length_canonical = false;
    let mut transfer_encoding = false;
    let mut only_chunked = true;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut has_date = false;
    // Which headers a map leaves out (by index: httparse allows at most
    // MAX_HEADERS): hop-by-hop ones always, lengths beside chunked.
    let mut hop_by_hop = 0u128;
    let mut lengths = 0u128;
    // Headers `Connection` names besides close/keep-alive: rare.
    let mut connection_named: Vec<HeaderName> = Vec::new();
    let mut runs = [(0u32, 0u32); MAX_RUNS];
    let mut run_count = 0usize;
    let mut run_start: Option<usize> = None;
    // Lines ending in CRLF and few enough stretches: passing on is possible.
    let mut passable = pass_on;
    let mut close_run = |start: Option<usize>, end: usize, passable: &mut bool| {
        if let Some(start) = start {
            match (
                runs.get_mut(run_count),
                u32::try_from(start),
                u32::try_from(end),
            ) {
                (Some(run), Ok(start), Ok(end)) => {
                    *run = (start, end);
                    run_count += 1;
                }
                _ => *passable = false,
            }
        }
    };
    let headers_end = len - if head.ends_with(b"\r\n\r\n") { 2 } else { 1 };
    for (i, h) in resp.headers.iter().enumerate() {
        let line_start = offset(h.name.as_bytes());
        let line_end = resp
            .headers
            .get(i + 1)
            .map_or(headers_end, |next| offset(next.name.as_bytes()));
        if !head.get(..line_end).is_some_and(|l| l.ends_with(b"\r\n")) {
            passable = false;
        }
        let field = Field::of(h.name.as_bytes());
        let bit = 1u128 << i;
        match field {
            Field::ContentLength => {
                lengths |= bit;
                length_lines += 1;
                length_canonical = !h.value.is_empty()
                    && h.value.iter().all(u8::is_ascii_digit)
                    && (h.value.len() == 1 || h.value[0] != b'0');
                // Repeated or listed values must all agree (RFC 9110 §8.6).
                for part in h.value.split(|&b| b == b',') {
                    let n = parse_length(part).ok_or(WireError::ContentLength)?;
                    match content_length {
                        Some(prev) if prev != n => length_conflict = true,
                        _ => content_length = Some(n),
                    }
                }
            }
            Field::TransferEncoding => {
                hop_by_hop |= bit;
                // Chunked is the only coding decoded here, and the only one
                // accepted: any other could not be passed on once this
                // header is dropped.
                for coding in tokens(h.value) {
                    if !coding.eq_ignore_ascii_case(b"chunked") || transfer_encoding {
                        only_chunked = false;
                    }
                    transfer_encoding = true;
                }
            }
            Field::Connection => {
                hop_by_hop |= bit;
                for token in tokens(h.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive_token = true;
                    } else if let Ok(named) = HeaderName::from_bytes(token) {
                        connection_named.push(named);
                    }
                }
            }
            Field::Date => has_date = true,
            Field::HopByHop => hop_by_hop |= bit,
            Field::EndToEnd => {}
        }
        if matches!(field, Field::Date | Field::EndToEnd) {
            run_start.get_or_insert(line_start);
        } else {
            close_run(run_start.take(), line_start, &mut passable);
        }
    }
    close_run(run_start, headers_end, &mut passable);
    if length_conflict {
        return Err(WireError::ContentLength);
    }

    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let no_body = request_method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        ResponseFraming::Empty
    } else if transfer_encoding {
        // Exactly `chunked` (no other coding, once): see above.
        if !only_chunked {
            return Err(WireError::Head("transfer coding other than chunked"));
        }
        ResponseFraming::Chunked
    } else {
        match content_length {
            Some(n) => ResponseFraming::Length(n),
            None => ResponseFraming::UntilClose,
        }
    };
    // A 204 that announces a body (a Content-Length above 0, a
    // Transfer-Encoding: RFC 9110 §8.6, RFC 9112 §6.1 forbid both), or a
    // 304 with a Transfer-Encoding (its Content-Length is the 200's it
    // stands for): an upstream that writes that body, a moment late,
    // would have it read as the next request's answer, another client's
    // (an outside audit). As after a HEAD, the connection is not reused.
    let announces_body = (status == StatusCode::NO_CONTENT
        && (transfer_encoding || content_length.is_some_and(|n| n > 0)))
        || (status == StatusCode::NOT_MODIFIED && transfer_encoding);
    let keep_alive = framing != ResponseFraming::UntilClose
        && !close
        && !announces_body
        && (version == Version::HTTP_11 || keep_alive_token)
        // Transfer-Encoding with Content-Length, or in an HTTP/1.0 message:
        // the upstream may be confused about where this message ends; do not
        // trust the next one (RFC 9112 §6.1, §6.3).
        && !(transfer_encoding && (content_length.is_some() || version == Version::HTTP_10));

    // Passed on as bytes: a body the client side frames itself (the
    // `Content-Length` left out is the one it writes), nothing named by
    // `Connection` to take out.
    let passed = (passable
        && connection_named.is_empty()
        && matches!(
            framing,
            ResponseFraming::Length(_) | ResponseFraming::Chunked
        ))
    .then(|| {
        Box::new(PassedHeaders {
            head: head.clone(),
            runs,
            // At most MAX_RUNS: cannot truncate.
            len: run_count as u8,
            has_date,
        })
    });
    let headers = match passed {
        Some(_) => HeaderMap::new(),
        None => {
            // One `Content-Length`, the number read, however the upstream
            // wrote it (`5, 5`, twice, `007`: RFC 9110 §8.6 has a recipient
            // replace such a field with one valid value; an HTTP/2 client
            // refuses the answer otherwise); as it came when it is that
            // already (no allocation). Transfer-Encoding overrides it, and
            // then it must not be passed on beside it (RFC 9112 §6.3 item 3).
            let as_came = length_lines == 1
                && length_canonical
                && !transfer_encoding
                && !connection_named.contains(&http::header::CONTENT_LENGTH);
            let left_out = if as_came {
                hop_by_hop
            } else {
                hop_by_hop | lengths
            };
            let mut map = header_map(&head, resp.headers, left_out, connection_named, spare)?;
            if let (Some(n), false, false) = (content_length, transfer_encoding, as_came) {
                map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            map
        }
    };
    Ok(Some(ResponseHead {
        status,
        version,
        headers,
        passed,
        framing,
        keep_alive,
    }))
}

/// A head's headers in `spare`'s map, taken out of it: all but those
/// `left_out` (bit i: the i-th header) and those `Connection` names.
fn header_map(
    head: &Bytes,
    headers: &[httparse::Header<'_>],
    left_out: u128,
    connection_named: Vec<HeaderName>,
    spare: &mut HeaderMap,
) -> Result<HeaderMap, WireError> {
    let mut map = std::mem::take(spare);
    // Never a header of an earlier message: the map is meant to come empty.
    if !map.is_empty() {
        map.clear();
    }
    map.reserve(headers.len());
    for (i, h) in headers.iter().enumerate() {
        if left_out & (1u128 << i) != 0 {
            continue;
        }
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| WireError::Head("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(h.value))
            .map_err(|_| WireError::Head("invalid header value"))?;
        map.append(name, value);
    }
    for name in connection_named {
        map.remove(name);
    }
    Ok(map)
}

/// Whether the response head at the front of `buf` (a `101`, complete)
/// switches to the WebSocket protocol as RFC 6455 §4.1 has a client check:
/// `Upgrade: websocket` and a `Connection` naming `upgrade`. A `101` that
/// does not (it switched to something else, or says nothing) is no tunnel
/// the gateway opens: its client's next bytes would reach the upstream as
/// whatever that is, unchecked.
pub(crate) fn switches_to_websocket(buf: &[u8]) -> bool {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    if !matches!(resp.parse(buf), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    let mut upgrade = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("upgrade"));
    let websocket = match (upgrade.next(), upgrade.next()) {
        (Some(h), None) => h.value.trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    };
    websocket
        && resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .any(|h| tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"upgrade")))
}

/// The non-empty elements of a comma-separated header value, trimmed
/// (RFC 9110 §5.6.1): `Connection` tokens, transfer codings.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The length of the head at the front of `buf` (through the empty line
/// that ends it), if it is all there. Lines end in CRLF; a bare LF is
/// accepted too, as RFC 9112 §2.2 allows a recipient to.
fn head_end(buf: &[u8]) -> Option<usize> {
    for nl in memchr::memchr_iter(b'\n', buf) {
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => {}
        }
    }
    None
}

/// A `Content-Length` value (one of a list's): decimal digits only, with
/// optional spaces around; `None` for anything else.
pub fn parse_length(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            Some(n * 10 + u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// What the chunked decoder produced from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// The buffer holds no complete next piece: read more.
    NeedMore,
    /// The last chunk and the trailers have been read.
    Done,
}

/// Incremental `Transfer-Encoding: chunked` decoder (RFC 9112 §7.1). Strict:
/// lines end in CRLF, sizes are hex of at most 16 digits. Extensions and
/// trailers are read and dropped, within [`MAX_CHUNK_META`] bytes. A
/// request's trailer lines ([`ChunkedDecoder::default`]) must be fields, as
/// header lines are: a client's bytes that are none could be a request to
/// a proxy in front. An upstream's ([`ChunkedDecoder::lenient`]) are only
/// read to their end: the whole body has gone to the client by then, and a
/// sloppy trailer line is no reason to cut the answer short.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    lenient: bool,
}

impl ChunkedDecoder {
    /// For an upstream's answer: trailer lines are not checked.
    pub fn lenient() -> Self {
        ChunkedDecoder {
            lenient: true,
            ..ChunkedDecoder::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a size line.
    Size {
        value: u64,
        digits: u8,
        /// Past the digits: whitespace or an extension, up to CRLF.
        in_ext: bool,
        ext_len: usize,
        cr: bool,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// Reading trailer lines after the last chunk, each checked as a
    /// header line is (`name: value`); `in_value`: past this line's colon.
    Trailer {
        line_len: usize,
        total: usize,
        cr: bool,
        in_value: bool,
    },
    Done,
}

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState::Size {
            value: 0,
            digits: 0,
            in_ext: false,
            ext_len: 0,
            cr: false,
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes framing bytes from the front of `buf` and returns the next
    /// piece of data, as a slice of `buf` (no copy).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        let mut used = 0;
        let result = loop {
            if let ChunkState::Data(remaining) = self.state {
                let available = buf.len() - used;
                if available == 0 {
                    break Decoded::NeedMore;
                }
                let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                buf.advance(used);
                let data = buf.split_to(take).freeze();
                // take <= remaining: no underflow.
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    ChunkState::DataCr
                } else {
                    ChunkState::Data(left)
                };
                return Ok(Decoded::Data(data));
            }
            if self.state == ChunkState::Done {
                break Decoded::Done;
            }
            let Some(&b) = buf.get(used) else {
                break Decoded::NeedMore;
            };
            used += 1;
            self.state = step(self.state, b, self.lenient)?;
        };
        buf.advance(used);
        Ok(result)
    }
}

/// One framing byte (anything but chunk data); `lenient`: trailer lines
/// are not checked as fields.
fn step(state: ChunkState, b: u8, lenient: bool) -> Result<ChunkState, WireError> {
    Ok(match state {
        ChunkState::Size {
            value,
            digits,
            in_ext,
            ext_len,
            cr,
        } => {
            if cr {
                if b != b'\n' {
                    return Err(WireError::Chunk("expected LF after CR"));
                }
                if digits == 0 {
                    return Err(WireError::Chunk("missing chunk size"));
                }
                if value == 0 {
                    ChunkState::Trailer {
                        line_len: 0,
                        total: 0,
                        cr: false,
                        in_value: false,
                    }
                } else {
                    ChunkState::Data(value)
                }
            } else if b == b'\r' {
                ChunkState::Size {
                    value,
                    digits,
                    in_ext,
                    ext_len,
                    cr: true,
                }
            } else if in_ext {
                if ext_len >= MAX_CHUNK_META {
                    return Err(WireError::Chunk("chunk extension too long"));
                }
                if b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                    return Err(WireError::Chunk("invalid byte in chunk extension"));
                }
                ChunkState::Size {
                    value,
                    digits,
                    in_ext,
                    ext_len: ext_len + 1,
                    cr,
                }
            } else if let (Some(d), true) = (hex_digit(b), digits < BWS) {
                // Leading zeros are digits like any (RFC 9112 §7.1:
                // `1*HEXDIG`; HAProxy takes them): what is bounded is the
                // value, to 64 bits, and the line, with its extension.
                if value >> 60 != 0 {
                    return Err(WireError::Chunk("chunk size too large"));
                }
                if ext_len >= MAX_CHUNK_META {
                    return Err(WireError::Chunk("chunk size line too long"));
                }
                ChunkState::Size {
                    value: value << 4 | u64::from(d),
                    digits: (digits + 1).min(16),
                    in_ext,
                    ext_len: ext_len + 1,
                    cr,
                }
            } else if b == b';' && digits > 0 {
                ChunkState::Size {
                    value,
                    digits,
                    in_ext: true,
                    ext_len: ext_len + 1,
                    cr,
                }
            } else if (b == b' ' || b == b'\t') && digits > 0 {
                // Whitespace after the size (BWS): only more of it, an
                // extension or the end of the line may follow. `digits` past
                // 16 marks that no digit may. Counted with the line.
                if ext_len >= MAX_CHUNK_META {
                    return Err(WireError::Chunk("chunk size line too long"));
                }
                ChunkState::Size {
                    value,
                    digits: BWS,
                    in_ext,
                    ext_len: ext_len + 1,
                    cr,
                }
            } else {
                return Err(WireError::Chunk("invalid chunk size"));
            }
        }
        ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
        ChunkState::DataLf if b == b'\n' => ChunkState::default(),
        ChunkState::DataCr | ChunkState::DataLf => {
            return Err(WireError::Chunk("expected CRLF after chunk data"))
        }
        ChunkState::Trailer {
            line_len,
            total,
            cr,
            in_value,
        } => {
            if total >= MAX_CHUNK_META {
                return Err(WireError::Chunk("trailers too long"));
            }
            let next = |line_len, cr, in_value| ChunkState::Trailer {
                line_len,
                total: total + 1,
                cr,
                in_value,
            };
            if cr {
                if b != b'\n' {
                    return Err(WireError::Chunk("expected LF after CR"));
                }
                if line_len == 0 {
                    ChunkState::Done
                } else {
                    next(0, false, false)
                }
            } else if b == b'\r' {
                // A line with no colon is no field: whatever reads the
                // message line by line (a proxy in front that ends the body
                // at `0\r\n`) could take it for a request (RFC 9112 §7.1.2:
                // trailers are fields, as in a header section).
                if line_len > 0 && !in_value && !lenient {
                    return Err(WireError::Chunk("trailer line without a colon"));
                }
                next(line_len, true, in_value)
            } else if b == b'\n' {
                return Err(WireError::Chunk("bare LF in trailers"));
            } else if lenient {
                next(line_len + 1, false, in_value)
            } else if in_value {
                // A field value: visible characters, blanks, and obs-text.
                if (b < 0x20 && b != b'\t') || b == 0x7f {
                    return Err(WireError::Chunk("invalid byte in a trailer value"));
                }
                next(line_len + 1, false, true)
            } else if b == b':' && line_len > 0 {
                next(line_len + 1, false, true)
            } else if is_tchar(b) {
                next(line_len + 1, false, false)
            } else if line_len == 0 && (b == b' ' || b == b'\t') {
                return Err(WireError::Chunk("folded trailer line"));
            } else {
                return Err(WireError::Chunk("invalid trailer field name"));
            }
        }
        // Data and Done are handled by the caller and never reach here.
        ChunkState::Data(_) | ChunkState::Done => state,
    })
}

/// The `digits` value once whitespace followed the chunk size.
const BWS: u8 = 17;

/// A byte of a field name (RFC 9110 §5.6.2 `tchar`).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub mod inbound;
mod passed;

pub use passed::PassedHeaders;
use passed::{Field, MAX_RUNS};

#[cfg(test)]
mod tests;
