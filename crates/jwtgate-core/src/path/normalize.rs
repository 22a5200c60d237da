//! Request path normalisation (SPEC §3.3).
//!
//! Rules, routes and the logout path are matched against the normalised path,
//! and that same path is what goes upstream, so the gateway and the upstream
//! can never disagree about which resource was asked for. Anything that could
//! make them disagree (an encoded `/` or `\`, `%00`, a `..` above the root, a
//! malformed escape) is refused rather than guessed at.

use std::borrow::Cow;

use crate::percent::decode_pair;

/// Why a request path was refused. The reason is for the log; the client only
/// ever sees the fixed public message ("invalid request path").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid request path: {reason}")]
pub struct InvalidPath {
    /// A short, fixed description, e.g. "encoded slash".
    pub reason: &'static str,
}

const NOT_ABSOLUTE: InvalidPath = InvalidPath {
    reason: "does not start with \"/\"",
};
const BAD_ESCAPE: InvalidPath = InvalidPath {
    reason: "invalid percent escape",
};
const ENCODED_SLASH: InvalidPath = InvalidPath {
    reason: "encoded slash",
};
const ENCODED_BACKSLASH: InvalidPath = InvalidPath {
    reason: "encoded backslash",
};
const ENCODED_NUL: InvalidPath = InvalidPath {
    reason: "encoded NUL byte",
};
const RAW_BACKSLASH: InvalidPath = InvalidPath {
    reason: "backslash",
};
const CONTROL_BYTE: InvalidPath = InvalidPath {
    reason: "control character",
};
const ABOVE_ROOT: InvalidPath = InvalidPath {
    reason: "climbs above root",
};
const DOT_SEGMENT_PARAMETER: InvalidPath = InvalidPath {
    reason: "dot-segment with a \";\" parameter",
};
const PATH_PARAMETER: InvalidPath = InvalidPath {
    reason: "\";\" path parameter",
};

/// Normalises a request path (without its query string).
///
/// Decodes `%XX` escapes of unreserved characters (RFC 3986 §2.3), upper-cases
/// the hex digits of the escapes it keeps, merges repeated `/`, and resolves
/// `.` and `..` segments (also those spelled with escapes, like `%2e%2e`).
/// A trailing `.` or `..` segment leaves a trailing slash (`/a/b/..` is `/a/`).
///
/// Refuses a path that does not start with `/`, climbs above `/`, contains an
/// encoded `/`, `\` or NUL, a malformed escape, a raw `\`, a control byte,
/// a `.` or `..` segment with a `;` parameter (`..;`, `.;jsessionid=x`,
/// escaped or not), which Java servlet containers resolve as a dot-segment
/// (SPEC §3.11), or any other `;` parameter (`/admin;x/users`): those
/// containers drop a segment's parameters before they look for the
/// resource, so `/partial;x/admin` is `/partial/admin` to them, and a rule
/// or route for `/partial/admin*` would not have seen it (stricter than
/// SPEC §3.11, as Spring Security's default firewall is). An escaped `%3B`
/// is data to them, and stays.
///
/// A path that is already normal is returned borrowed, without allocating:
/// this runs on every request.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, InvalidPath> {
    if is_normal(raw.as_bytes()) {
        Ok(Cow::Borrowed(raw))
    } else {
        normalize_slow(raw).map(Cow::Owned)
    }
}

/// True when `path` is valid and `normalize` would return it unchanged.
/// It may say false for a path that turns out to be normal; the slow path
/// then produces the same text, only at the cost of an allocation.
fn is_normal(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        // Every byte above '/' except '\\', ';' and DEL is plain (no escape,
        // slash, dot, parameter or control): the common case, so it skips
        // the match below.
        if b > b'/' && b != b'\\' && b != b';' && b != 0x7f {
            i += 1;
            continue;
        }
        match b {
            b'%' if kept_escape(path.get(i + 1), path.get(i + 2)) => i += 2,
            b'/' => {
                // The segment after this slash must not be empty, "." or "..".
                let next = path.get(i + 1..).unwrap_or_default();
                if next.first() == Some(&b'/') || starts_with_dot_segment(next) {
                    return false;
                }
            }
            b'%' | b'\\' | b';' => return false,
            b if b.is_ascii_control() => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

/// True for an escape that normalisation keeps as it is: well-formed, digits
/// already upper-case, not an unreserved character, and not a refused one.
fn kept_escape(hi: Option<&u8>, lo: Option<&u8>) -> bool {
    let upper_hex = |b: Option<&u8>| matches!(b, Some(b'0'..=b'9' | b'A'..=b'F'));
    match (hi, lo) {
        (Some(&h), Some(&l)) if upper_hex(hi) && upper_hex(lo) => match decode_pair(h, l) {
            Some(v) => !is_unreserved(v) && refused_escape(v).is_none(),
            None => false,
        },
        _ => false,
    }
}

/// True when `rest` (the text after a `/`) begins with a `.` or `..` segment,
/// or with one followed by a `;` parameter (`;` or its kept escape `%3B`):
/// those take the slow path, which resolves or refuses them. (Any other
/// escape that could spell a dot or a `;` is not a kept one, so the fast
/// path gives up on it anyway.)
fn starts_with_dot_segment(rest: &[u8]) -> bool {
    let segment_end =
        |tail: &[u8]| matches!(tail.first(), None | Some(b'/' | b';')) || tail.starts_with(b"%3B");
    match rest {
        [b'.', b'.', tail @ ..] => segment_end(tail),
        [b'.', tail @ ..] => segment_end(tail),
        _ => false,
    }
}

/// True for a decoded segment that is `.` or `..` followed by a `;`
/// parameter (the `;` itself may be escaped, and stays `%3B` here).
fn is_dot_with_parameter(segment: &str) -> bool {
    let head_end = [segment.find(';'), segment.find("%3B")]
        .into_iter()
        .flatten()
        .min();
    head_end.is_some_and(|end| matches!(segment.get(..end), Some("." | "..")))
}

/// The allocating path: validates everything and rebuilds the path segment by
/// segment. `pub(super)` so the tests can check it agrees with the fast path.
pub(super) fn normalize_slow(raw: &str) -> Result<String, InvalidPath> {
    let rest = raw.strip_prefix('/').ok_or(NOT_ABSOLUTE)?;
    // `out` holds "/seg1/seg2..." without a trailing slash; segments never
    // contain '/' (an encoded slash is refused), so popping a segment is
    // truncating at the last '/'.
    let mut out = String::with_capacity(raw.len());
    let mut segment = String::new();
    let mut trailing_slash = false;
    let mut pieces = rest.split('/').peekable();
    while let Some(piece) = pieces.next() {
        let is_last = pieces.peek().is_none();
        segment.clear();
        decode_segment(piece, &mut segment)?;
        if is_dot_with_parameter(&segment) {
            return Err(DOT_SEGMENT_PARAMETER);
        }
        // A raw ';' (an escaped one stays "%3B" here).
        if segment.contains(';') {
            return Err(PATH_PARAMETER);
        }
        match segment.as_str() {
            // Empty (a repeated or final '/') and "." segments vanish.
            "" | "." => {}
            ".." => {
                // Refused rather than clamped at '/': a client that climbs
                // above the root is probing, and clamping would hide it.
                let parent = out.rfind('/').ok_or(ABOVE_ROOT)?;
                out.truncate(parent);
            }
            decoded => {
                out.push('/');
                out.push_str(decoded);
            }
        }
        if is_last {
            trailing_slash = matches!(segment.as_str(), "" | "." | "..");
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Appends `piece` (one raw segment) to `out`, decoding unreserved escapes and
/// upper-casing the others.
fn decode_segment(piece: &str, out: &mut String) -> Result<(), InvalidPath> {
    let bytes = piece.as_bytes();
    let mut chars = piece.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '%' => {
                let value = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&hi), Some(&lo)) => decode_pair(hi, lo).ok_or(BAD_ESCAPE)?,
                    _ => return Err(BAD_ESCAPE),
                };
                if let Some(refusal) = refused_escape(value) {
                    return Err(refusal);
                }
                if is_unreserved(value) {
                    out.push(char::from(value));
                } else {
                    out.push('%');
                    out.push(upper_hex_digit(value >> 4));
                    out.push(upper_hex_digit(value));
                }
                // The two hex digits are ASCII, hence one char each.
                chars.nth(1);
            }
            '\\' => return Err(RAW_BACKSLASH),
            c if c.is_ascii_control() => return Err(CONTROL_BYTE),
            c => out.push(c),
        }
    }
    Ok(())
}

fn upper_hex_digit(nibble: u8) -> char {
    // The mask keeps the index below 16, so this cannot go out of bounds.
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Escapes the gateway and an upstream might read differently, so they are
/// refused outright.
fn refused_escape(value: u8) -> Option<InvalidPath> {
    match value {
        b'/' => Some(ENCODED_SLASH),
        b'\\' => Some(ENCODED_BACKSLASH),
        0 => Some(ENCODED_NUL),
        _ => None,
    }
}
