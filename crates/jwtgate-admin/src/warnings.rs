//! The config warnings an admin write brings (`jwtgate check`'s
//! `warning:` lines: a setting that does nothing, a route that can never be
//! reached), told to whoever made the write: one `Warning: 299` header per
//! warning on its answer, as the Kubernetes API server does, so the body
//! stays the item as stored. The node logs them too, once, as the config
//! goes live.

use axum::http::header::WARNING;
use axum::http::HeaderValue;
use axum::response::{IntoResponseParts, ResponseParts};

/// Warnings the written config has and the one it replaced did not.
#[derive(Debug, Default)]
pub struct Warnings(pub Vec<String>);

impl IntoResponseParts for Warnings {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        let more = self.0.len().saturating_sub(MAX_HEADERS);
        let told = self.0.iter().take(MAX_HEADERS).map(|w| warning_value(w));
        let rest = (more > 0).then(|| {
            warning_value(&format!(
                "and {more} more warning(s): `jwtgate check` or the node's log lists them all"
            ))
        });
        for value in told.chain(rest) {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                res.headers_mut().append(WARNING, value);
            }
        }
        Ok(res)
    }
}

/// The most `Warning` headers an answer carries, the last saying how many
/// more there are: a write that brought 20 000 (a route of 20 000 paths that
/// can never match) had an answer head of 2 MB, which clients refuse (curl;
/// browsers past about 256 KB), so an applied change looked failed (an
/// outside audit).
const MAX_HEADERS: usize = 20;

/// The most of one warning's text a header carries (cut at a character,
/// then `…`).
const MAX_TEXT: usize = 1024;

/// `299 jwtgate "<text>"` (RFC 7234 §5.5: code 299, "miscellaneous
/// persistent warning"; the text a quoted-string). Control characters,
/// which a header cannot carry, become spaces.
fn warning_value(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = end < text.len();
    let mut v = String::with_capacity(end + 20);
    v.push_str("299 jwtgate \"");
    for c in text[..end].chars() {
        match c {
            '"' | '\\' => {
                v.push('\\');
                v.push(c);
            }
            c if c.is_control() => v.push(' '),
            c => v.push(c),
        }
    }
    if cut {
        v.push('…');
    }
    v.push('"');
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    /// The `Warning` headers of `answer`, as text.
    fn headers(answer: &axum::response::Response) -> Vec<&str> {
        answer
            .headers()
            .get_all(WARNING)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn each_warning_is_one_quoted_299_header() {
        let answer = (
            Warnings(vec![
                "routes[0].jwt.logout_path: does nothing".into(),
                "routes[1]: \"api\" \\ shadowed\r\nby routes[0]".into(),
            ]),
            "body",
        )
            .into_response();
        let got = headers(&answer);
        assert_eq!(
            got,
            [
                "299 jwtgate \"routes[0].jwt.logout_path: does nothing\"",
                "299 jwtgate \"routes[1]: \\\"api\\\" \\\\ shadowed  by routes[0]\"",
            ]
        );
    }

    #[test]
    fn non_ascii_text_is_kept_as_utf8() {
        let answer = (Warnings(vec!["routes[0]: café".into()]), "").into_response();
        let v = answer.headers().get(WARNING).unwrap();
        assert_eq!(v.as_bytes(), "299 jwtgate \"routes[0]: café\"".as_bytes());
    }

    #[test]
    fn many_or_long_warnings_are_bounded_and_the_rest_counted() {
        let many: Vec<String> = (0..25)
            .map(|i| format!("routes[0].paths[{i}]: never matches"))
            .collect();
        let answer = (Warnings(many), "").into_response();
        let got = headers(&answer);
        assert_eq!(got.len(), MAX_HEADERS + 1);
        assert_eq!(
            got[19],
            "299 jwtgate \"routes[0].paths[19]: never matches\""
        );
        assert_eq!(
            got[20],
            "299 jwtgate \"and 5 more warning(s): `jwtgate check` or the node's log lists them all\""
        );
        let long = format!("routes[0]: {}", "é".repeat(2000));
        let answer = (Warnings(vec![long]), "").into_response();
        let v = answer.headers().get(WARNING).unwrap().as_bytes();
        assert!(v.len() <= MAX_TEXT + 20, "{}", v.len());
        assert!(std::str::from_utf8(v).unwrap().ends_with("é…\""));
    }

    #[test]
    fn no_warnings_no_header() {
        let answer = (Warnings::default(), "").into_response();
        assert!(answer.headers().get(WARNING).is_none());
    }
}
