//! An upstream's response header lines passed on as the bytes that came,
//! and the names the gateway looks for in them, told apart without a map.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The stretches of header lines a passed-on head is kept as at most: the
/// lines between the ones left out (framing, hop-by-hop). A head cut into
/// more is parsed into a map instead.
pub(super) const MAX_RUNS: usize = 4;

/// An upstream response's end-to-end header lines, kept as the bytes that
/// arrived: an HTTP/1.1 client gets them copied as they are, with no header
/// map built and torn down for each response (a fifth of a proxied
/// request's instructions, `bench/callgrind.sh plain`). httparse has
/// checked every name and value; the lines left out are the ones a map
/// would not have held. Only for a response with a body framed by length
/// or chunks and lines ending in CRLF; any other is parsed into a map.
#[derive(Clone)]
pub struct PassedHeaders {
    pub(super) head: Bytes,
    /// `head[start..end]`: whole lines, each ending in CRLF.
    pub(super) runs: [(u32, u32); MAX_RUNS],
    pub(super) len: u8,
    pub(super) has_date: bool,
}

impl PassedHeaders {
    /// The upstream sent a `Date`.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// The header lines, each ending in CRLF, in the order received.
    pub fn runs(&self) -> impl Iterator<Item = &[u8]> {
        self.runs
            .iter()
            .take(usize::from(self.len))
            .map(|&(start, end)| {
                self.head
                    .get(start as usize..end as usize)
                    .unwrap_or_default()
            })
    }

    /// Whether a header's name starts with `prefix` (lower case), in any
    /// case: a scan of the line starts, no parsing.
    pub fn has_name_starting(&self, prefix: &[u8]) -> bool {
        self.runs().any(|run| {
            run.split_inclusive(|&b| b == b'\n').any(|line| {
                line.get(..prefix.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
            })
        })
    }

    /// Appends the headers to `map` (for an HTTP/2 client, or before the
    /// gateway edits the answer's headers): names lower-cased, values
    /// sharing the head's buffer.
    pub fn append_to(&self, map: &mut HeaderMap) {
        for run in self.runs() {
            for line in run.split_inclusive(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r\n").unwrap_or(line);
                let Some(colon) = memchr::memchr(b':', line) else {
                    continue;
                };
                let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
                // Both were checked by httparse, with the rules `http`
                // applies: neither can fail here.
                if let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name),
                    HeaderValue::from_maybe_shared(self.head.slice_ref(value)),
                ) {
                    map.append(name, value);
                }
            }
        }
    }
}

impl std::fmt::Debug for PassedHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for run in self.runs() {
            list.entry(&String::from_utf8_lossy(run));
        }
        list.finish()
    }
}

/// What a response header is to the gateway, told from its name's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
    /// Hop-by-hop whatever `Connection` says (RFC 9110 §7.6.1).
    HopByHop,
    Date,
    EndToEnd,
}

impl Field {
    pub(super) fn of(name: &[u8]) -> Field {
        // The length first: most names are ruled out by one compare.
        match name.len() {
            2 if same_name(name, b"te") => Field::HopByHop,
            4 if same_name(name, b"date") => Field::Date,
            7 if same_name(name, b"trailer") || same_name(name, b"upgrade") => Field::HopByHop,
            10 if same_name(name, b"connection") => Field::Connection,
            10 if same_name(name, b"keep-alive") => Field::HopByHop,
            14 if same_name(name, b"content-length") => Field::ContentLength,
            16 if same_name(name, b"proxy-connection") => Field::HopByHop,
            17 if same_name(name, b"transfer-encoding") => Field::TransferEncoding,
            18 if same_name(name, b"proxy-authenticate") => Field::HopByHop,
            _ => Field::EndToEnd,
        }
    }
}

/// `name` (a token httparse has checked) is `lower` (lower-case letters and
/// `-`) in any case. Setting bit 0x20 lower-cases a letter, and turns no
/// other token character into a letter or `-`; so eight bytes are compared
/// at a time.
pub(super) fn same_name(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    if name.len() != lower.len() {
        return false;
    }
    let mut a = name.chunks_exact(8);
    let mut b = lower.chunks_exact(8);
    for (x, y) in (&mut a).zip(&mut b) {
        if word(x) | CASE != word(y) {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(&x, &y)| x | 0x20 == y)
}
