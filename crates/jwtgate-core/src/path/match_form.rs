//! The form in which routes and rules meet a request's path.
//!
//! [`normalize`](super::normalize) keeps the escapes of reserved characters
//! (SPEC §3.3: only unreserved ones are decoded), and that path is what goes
//! upstream. But an upstream's framework decodes every escape before it
//! routes: to Spring, Go's `net/http`, Django or Flask, `/orders%3Acancel`
//! is `/orders:cancel`, `/tmpl/%7Bid%7D` is `/tmpl/{id}` and `/caf%C3%A9`
//! is `/café`. A rule written with the character itself would miss the
//! escaped spelling of the very path it guards. So matching decodes, on
//! both sides, the escape of every printable ASCII character (space
//! included) but the ones that could change where the path splits or what
//! it means (`/`, `?`, `#`, `%`, `;`, `\`), and of UTF-8 beyond ASCII. Those
//! and control characters stay escaped, their hex upper-cased as
//! normalisation writes it. A `*` is the one character read the other way:
//! raw or escaped, it is `%2A`, since a pattern's raw `*` marks a prefix
//! and its text must never hold one. The upstream still gets the
//! normalised path.

use std::borrow::Cow;

use crate::percent::escaped_at;

/// `path` (a normalised request path, or a route's or rule's pattern) in the
/// form matching compares. Borrowed, without work beyond one scan, when it
/// holds no `%` and no `*`: nearly every request.
pub fn match_form(path: &str) -> Cow<'_, str> {
    if !path.bytes().any(|b| b == b'%' || b == b'*') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'*' {
            out.extend_from_slice(b"%2A");
            i += 1;
            continue;
        }
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        match escaped_at(bytes, i) {
            Some(c) if c < 0x80 && same_raw(c) => {
                out.push(c);
                i += 3;
            }
            Some(c) if c >= 0x80 => {
                // A run of escaped bytes beyond ASCII: decoded if it is UTF-8,
                // kept escaped (hex upper-cased) if it is not.
                let mut run = Vec::new();
                let mut j = i;
                while let Some(c) = escaped_at(bytes, j).filter(|&c| c >= 0x80) {
                    run.push(c);
                    j += 3;
                }
                match std::str::from_utf8(&run) {
                    Ok(text) => out.extend_from_slice(text.as_bytes()),
                    Err(_) => out.extend(
                        bytes
                            .get(i..j)
                            .unwrap_or_default()
                            .iter()
                            .map(u8::to_ascii_uppercase),
                    ),
                }
                i = j;
            }
            Some(_) => {
                // Kept escaped, spelled as normalisation spells it.
                let kept = bytes.get(i..i + 3).unwrap_or_default();
                out.extend(kept.iter().map(u8::to_ascii_uppercase));
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only whole UTF-8 sequences were put in for escapes; the rest is the
    // input's own bytes, so this cannot fail; should it, matching falls back
    // to the path as it is.
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(path),
    }
}

/// Whether an ASCII character is read raw, escaped or not: printable, and
/// not one that splits the path or gives it another meaning.
fn same_raw(c: u8) -> bool {
    (b' '..=b'~').contains(&c) && !b"/?#%;\\*".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_that_mean_the_same_raw_are_decoded() {
        assert_eq!(match_form("/req/orders%3Acancel"), "/req/orders:cancel");
        assert_eq!(match_form("/req/orders%3acancel"), "/req/orders:cancel");
        assert_eq!(match_form("/req/%40me"), "/req/@me");
        assert_eq!(match_form("/a%21%24%26%27%28%29%2B%2C%3D"), "/a!$&'()+,=");
        assert_eq!(match_form("/caf%C3%A9"), "/café");
        assert_eq!(match_form("/caf%c3%a9/x"), "/café/x");
        assert_eq!(match_form("/%7Euser"), "/~user");
        // What frameworks decode too, though a path may not hold it raw.
        assert_eq!(
            match_form("/r/tmpl/%7Bid%7D/%5B0%5D%7c%5E%22%3C%3E%60%20x"),
            "/r/tmpl/{id}/[0]|^\"<>` x"
        );
        assert_eq!(match_form("/r/a%7bb"), "/r/a{b");
    }

    #[test]
    fn escapes_that_could_split_the_path_stay() {
        for kept in [
            "/a%2Fb", "/a%3Fb", "/a%23b", "/a%25b", "/a%3Bb", "/a%01b", "/a%7F", "/a%5Cb",
        ] {
            assert_eq!(match_form(kept), kept);
            // In either case of hex, as normalisation upper-cases it.
            assert_eq!(match_form(&kept.to_ascii_lowercase()), kept);
        }
        // Not UTF-8: kept as it came, the rest of the path still decoded.
        assert_eq!(match_form("/%C3%28%3A"), "/%C3(:");
        assert_eq!(match_form("/%FF%3A"), "/%FF:");
        assert_eq!(match_form("/%ff%3a"), "/%FF:");
        // Malformed escapes are left alone (normalize refuses them anyway).
        assert_eq!(match_form("/a%3"), "/a%3");
        assert_eq!(match_form("/a%zz%3A"), "/a%zz:");
    }

    #[test]
    fn a_star_is_always_escaped() {
        for spelling in ["/pub*/x", "/pub%2A/x", "/pub%2a/x"] {
            assert_eq!(match_form(spelling), "/pub%2A/x", "{spelling}");
        }
    }

    #[test]
    fn a_path_without_escapes_is_borrowed() {
        assert!(matches!(match_form("/v1/orders:cancel"), Cow::Borrowed(_)));
    }
}
