//! Finding the token in a request's header, query string or cookie. Pure
//! string functions: the data plane hands in the raw values.

use std::borrow::Cow;

/// The value of an `Authorization`-style header without its scheme: the
/// `Bearer` scheme is matched case-insensitively and is optional. Only
/// HTTP's own whitespace (space and tab, RFC 9110 §5.6.3) is taken away:
/// a no-break space or another Unicode space before the scheme is what an
/// upstream reading the same header would not skip either.
pub fn strip_bearer(value: &str) -> &str {
    let v = value.trim_matches(is_ows);
    match v.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => {
            v.get(7..).unwrap_or_default().trim_start_matches(is_ows)
        }
        _ => v,
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The first `name=value` argument of a raw query string, percent-decoded.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query_params(query, name).next()
}

/// Every `name=value` argument of a raw query string, percent-decoded, in
/// order (a repeated argument is how a second token rides along). Names are
/// compared decoded and without regard to ASCII case, as some upstream's
/// query parser will read them (ASP.NET ignores case): `%6Awt` and `JWT`
/// are `jwt` too, and so a second token, not an argument to pass by. `;`
/// separates arguments as `&` does, as it does for Rack and for Python
/// before 3.9.2: `?a=1;jwt=...` holds a token for them.
pub fn query_params<'a, 'n>(
    query: &'a str,
    name: &'n str,
) -> impl Iterator<Item = Cow<'a, str>> + use<'a, 'n> {
    query.split(['&', ';']).filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        is_named(k, name).then(|| percent_decode(v))
    })
}

/// Whether a raw query argument name is `name` once decoded, in any ASCII
/// case, as the most lenient upstream parser reads it: PHP decodes `+` as
/// a space and drops the spaces a name starts with (`?+jwt=` and
/// `?%20jwt=` are its `jwt`).
fn is_named(raw: &str, name: &str) -> bool {
    raw.eq_ignore_ascii_case(name)
        || (raw.contains(['%', '+'])
            && percent_decode(&raw.replace('+', " "))
                .trim_start_matches(' ')
                .eq_ignore_ascii_case(name))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_values(cookie_header, name).next()
}

/// Every value of cookie `name` in a `Cookie` header, in order. Names are
/// compared as query names are ([`query_params`]): ASP.NET Core reads
/// cookie names without regard to case and PHP percent-decodes them, so
/// `JWT` and `%6Awt` are `jwt` to some upstream. A bare `jwt` (no `=`) is
/// the cookie with an empty value, as Go and PHP read it (and as a bare
/// `?jwt` is the query argument): a token, if an empty one. Cookies are
/// read every way an upstream's parser may read them: `a=1, jwt=x` and
/// `a=1 jwt=x` hold a `jwt` cookie for Python's `SimpleCookie`
/// ([`crumbs`]), `a=1"jwt=x` and `a="x, jwt=y"` for ASP.NET Core
/// ([`resumed`]). Reading more than one parser would is the safe side: a
/// second token only ever refuses the request.
pub fn cookie_values<'a, 'n>(
    cookie_header: &'a str,
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    cookie_header
        .split(';')
        .flat_map(crumbs)
        .chain(resumed(cookie_header))
        .filter_map(move |(k, v)| cookie_named(k, name).then_some(v))
}

/// Whether `c` may not stand in a cookie's value (RFC 6265 §4.1.1's
/// cookie-octet excludes them): a parser that meets one there drops the
/// cookie, and one that resumes reading right after it (ASP.NET Core's)
/// reads a `name=value` that starts there.
fn breaks_a_cookie(c: char) -> bool {
    matches!(c, '"' | '\\' | ',' | ' ' | '\t') || c.is_control()
}

/// The `name=value` pairs that start right after a character no cookie
/// value may hold ([`breaks_a_cookie`]), quotes or not: where ASP.NET Core,
/// skipping what it cannot read one character at a time, resumes. The
/// name runs back to that character, the value on to the next one (or a
/// `;`). `a=1"jwt=x` holds `jwt=x` for it, and `a="x, jwt=y"` holds `jwt=y`
/// (it allows no space or comma inside quotes): read only as [`crumbs`]
/// reads, both let a second token past the one-token rule. A space, tab or
/// comma outside quotes is where [`crumbs`] reads a pair already.
fn resumed(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').flat_map(|part| {
        let quoted = part.contains('"');
        part.match_indices(move |c: char| {
            breaks_a_cookie(c) && (quoted || !matches!(c, ',' | ' ' | '\t'))
        })
        .filter_map(move |(at, c)| {
            let rest = part.get(at + c.len()..)?;
            let end = rest.find(breaks_a_cookie).unwrap_or(rest.len());
            let (key, value) = rest[..end].split_once('=')?;
            Some((key, value))
        })
    })
}

/// The cookies in one `;`-separated part of a `Cookie` header, as
/// `(name, value)`. A part with no ASCII space, tab or comma inside is one
/// `name=value` (a bare name has the empty value), as RFC 6265 has it.
/// Otherwise it is read as Python's `SimpleCookie` (and RFC 2109's `,`)
/// reads it: `name = value` pairs, each value ending at whitespace or a
/// comma unless quoted, bare words skipped. Reading it only the strict way
/// let `Cookie: a=1, jwt=<forged>` past the one-token rule while such an
/// upstream read the forged token (an outside audit).
fn crumbs(part: &str) -> impl Iterator<Item = (&str, &str)> {
    let part = part.trim();
    let strict = !part.contains([' ', '\t', ',']);
    let mut rest = part;
    let mut done = false;
    std::iter::from_fn(move || {
        if strict {
            if std::mem::replace(&mut done, true) {
                return None;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            return Some((k, v.trim().trim_matches('"')));
        }
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return None;
            }
            let end = rest.find(['=', ' ', '\t', ',']).unwrap_or(rest.len());
            let key = &rest[..end];
            let after = rest[end..].trim_start_matches([' ', '\t']);
            let Some(value) = after.strip_prefix('=') else {
                // A bare word: no cookie, for that reader.
                rest = after;
                continue;
            };
            let value = value.trim_start_matches([' ', '\t']);
            let (value, tail) = match value.strip_prefix('"') {
                Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
                None => value.split_at(value.find([' ', '\t', ',']).unwrap_or(value.len())),
            };
            rest = tail;
            return Some((key, value));
        }
    })
}

/// Whether a cookie's name, as it stands between `;` and `=`, is `name`:
/// trimmed of whitespace (Unicode's, as some upstream's parser trims it),
/// then compared as a query name ([`is_named`]). One rule for reading the
/// token and for removing it ([`remove_cookie`]).
fn cookie_named(raw: &str, name: &str) -> bool {
    is_named(raw.trim(), name)
}

/// Removes argument `name` from a raw query string (for `hide_credentials`),
/// whether `&` or `;` separates it ([`query_params`]); the other arguments
/// keep their separators.
pub fn remove_query_param(query: &str, name: &str) -> String {
    let named = |pair: &str| is_named(pair.split_once('=').map_or(pair, |(k, _)| k), name);
    query
        .split('&')
        .filter_map(|part| {
            let kept = if part.contains(';') {
                let rest: Vec<&str> = part
                    .split(';')
                    .filter(|p| !p.is_empty() && !named(p))
                    .collect();
                rest.join(";")
            } else if named(part) {
                String::new()
            } else {
                part.to_owned()
            };
            (!kept.is_empty()).then_some(kept)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Removes cookie `name` from a `Cookie` header value (for
/// `hide_credentials`), names compared as [`cookie_values`] does. Bytes,
/// not text: a cookie line may carry bytes past ASCII, which stay as they
/// are.
pub fn remove_cookie(cookie_header: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie_header.len());
    for pair in cookie_header.split(|&b| b == b';') {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        // A part that holds the cookie however it is read goes whole.
        let text = String::from_utf8_lossy(pair);
        if crumbs(&text)
            .chain(resumed(&text))
            .any(|(k, _)| cookie_named(k, name))
        {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
    }
    out
}

/// `%XX` decoding; `+` is kept as is (a JWT never contains one). Invalid
/// escapes are kept literally, so the token then fails to parse.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match crate::percent::escaped_at(bytes, i) {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_optional() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("bearer abc"), "abc");
        assert_eq!(strip_bearer("BEARER  abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("Bearer"), "Bearer");
        assert_eq!(strip_bearer(" \tBearer \tabc\t "), "abc");
        // Unicode spaces are not HTTP's whitespace: the value stays whole,
        // and does not parse as a token.
        assert_eq!(strip_bearer("\u{a0}Bearer abc"), "\u{a0}Bearer abc");
        assert_eq!(strip_bearer("Bearer\u{2003}abc"), "Bearer\u{2003}abc");
        assert_eq!(strip_bearer("Bearer abc\u{a0}"), "abc\u{a0}");
    }

    #[test]
    fn query_and_cookie_lookup() {
        assert_eq!(
            query_param("a=1&jwt=x.y.z&b", "jwt").as_deref(),
            Some("x.y.z")
        );
        assert_eq!(query_param("jwtx=1", "jwt"), None);
        assert_eq!(query_param("jwt=a%2Eb", "jwt").as_deref(), Some("a.b"));
        assert_eq!(cookie_value("a=1; jwt=t.o.k; b=2", "jwt"), Some("t.o.k"));
        assert_eq!(cookie_value("xjwt=1", "jwt"), None);
        assert_eq!(query_param("%6Awt=x.y.z", "jwt").as_deref(), Some("x.y.z"));
        assert_eq!(query_param("%6Awtx=1&jw%74=2", "jwt").as_deref(), Some("2"));
        assert_eq!(query_param("Jwt=3", "jwt").as_deref(), Some("3"));
        let all: Vec<_> = query_params("jwt=a&x=1&jwt=b%2E", "jwt").collect();
        assert_eq!(all, ["a", "b."]);
        let all: Vec<_> = cookie_values("jwt=a; x=1; jwt=b", "jwt").collect();
        assert_eq!(all, ["a", "b"]);
    }

    #[test]
    fn cookies_are_read_as_lenient_parsers_read_them() {
        let all: Vec<_> = cookie_values("a=1, jwt=x", "jwt").collect();
        assert_eq!(all, ["x"]);
        let all: Vec<_> = cookie_values("a=1 jwt=x; b=2", "jwt").collect();
        assert_eq!(all, ["x"]);
        let all: Vec<_> = cookie_values("jwt=y; a=1,jwt=x", "jwt").collect();
        assert_eq!(all, ["y", "x"]);
        let all: Vec<_> = cookie_values("a = 1 ,\tJWT = \"x\" word", "jwt").collect();
        assert_eq!(all, ["x"]);
        // A quoted value that ASP.NET Core cannot read is resumed in.
        let all: Vec<_> = cookie_values("a=\"1 jwt=q\" b=2", "jwt").collect();
        assert_eq!(all, ["q"]);
        let all: Vec<_> = cookie_values("a=\"x, jwt=y, z\"", "jwt").collect();
        assert_eq!(all, ["y"]);
        let all: Vec<_> = cookie_values("a=1\"jwt=x; b=2", "jwt").collect();
        assert_eq!(all, ["x"]);
        let all: Vec<_> = cookie_values("a=1\\jwt=x", "jwt").collect();
        assert_eq!(all, ["x"]);
        // A value that holds `jwt=` after characters a value may hold is
        // no cookie to anyone.
        assert_eq!(
            cookie_values("next=/a?b=1&jwt=x; c=/jwt=y", "jwt").count(),
            0
        );
        let all: Vec<_> = cookie_values("a=1, \u{a0}jwt=x", "jwt").collect();
        assert_eq!(all, ["x"]);
        // Bare words are no cookie there; a part that is only a bare name
        // still is (the empty token).
        assert_eq!(cookie_values("a=1 jwt", "jwt").count(), 0);
        assert_eq!(cookie_values("a=1; jwt", "jwt").collect::<Vec<_>>(), [""]);
        // Removed with the part that holds it.
        assert_eq!(remove_cookie(b"a=1, jwt=x; b=2", "jwt"), b"b=2");
        assert_eq!(remove_cookie(b"c=3; a=1 JWT=x", "jwt"), b"c=3");
        assert_eq!(remove_cookie(b"a=1, b=2; c=3", "jwt"), b"a=1, b=2; c=3");
        assert_eq!(remove_cookie(b"a=1\"jwt=x; c=3", "jwt"), b"c=3");
    }

    #[test]
    fn credentials_can_be_removed() {
        assert_eq!(remove_query_param("a=1&jwt=x&b=2", "jwt"), "a=1&b=2");
        assert_eq!(remove_query_param("jwt=x", "jwt"), "");
        // An encoded name is the same argument to the upstream's parser.
        assert_eq!(
            remove_query_param("jwt=x&%6Awt=y&%6a%77%74=z&JWT=w&a=1", "jwt"),
            "a=1"
        );
        assert_eq!(remove_cookie(b"a=1; jwt=x; b=2", "jwt"), b"a=1; b=2");
        // `;` separates query arguments for some upstreams.
        assert_eq!(
            remove_query_param("a=1;jwt=x;b=2&c=3", "jwt"),
            "a=1;b=2&c=3"
        );
        assert_eq!(remove_query_param("a=1&jwt=x;JWT=y", "jwt"), "a=1");
        // Cookie names compare as query names; other bytes are kept.
        assert_eq!(
            remove_cookie(b"JWT=x; l=caf\xc3\xa9; %6Awt=y; a=\xe9", "jwt"),
            b"l=caf\xc3\xa9; a=\xe9"
        );
    }

    #[test]
    fn every_spelling_of_the_name_is_a_carrier() {
        let all: Vec<_> = query_params("a=1;jwt=x&b;JWT=y", "jwt").collect();
        assert_eq!(all, ["x", "y"]);
        let all: Vec<_> = cookie_values("JWT=a; %6Awt=b; jwtx=c", "jwt").collect();
        assert_eq!(all, ["a", "b"]);
        let all: Vec<_> = query_params("%20jwt=a&+jwt=b&+%20JWT=c&j+wt=d", "jwt").collect();
        assert_eq!(all, ["a", "b", "c"]);
        // A bare name is the cookie, empty; a name padded with Unicode
        // whitespace is the cookie too, and removed as it is read.
        let all: Vec<_> = cookie_values("a=b; jwt; \u{a0}jwt=x; jwt\u{3000}=y", "jwt").collect();
        assert_eq!(all, ["", "x", "y"]);
        assert_eq!(
            remove_cookie(
                "a=1; \u{a0}jwt=x; \u{2003}JWT=y; jwt; b=2".as_bytes(),
                "jwt"
            ),
            b"a=1; b=2"
        );
    }
}
