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
        for w in &self.0 {
            if let Ok(value) = HeaderValue::from_bytes(warning_value(w).as_bytes()) {
                res.headers_mut().append(WARNING, value);
            }
        }
        Ok(res)
    }
}

/// `299 jwtgate "<text>"` (RFC 7234 §5.5: code 299, "miscellaneous
/// persistent warning"; the text a quoted-string). Control characters,
/// which a header cannot carry, become spaces.
fn warning_value(text: &str) -> String {
    let mut v = String::with_capacity(text.len() + 16);
    v.push_str("299 jwtgate \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                v.push('\\');
                v.push(c);
            }
            c if c.is_control() => v.push(' '),
            c => v.push(c),
        }
    }
    v.push('"');
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

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
        let got: Vec<&str> = answer
            .headers()
            .get_all(WARNING)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
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
    fn no_warnings_no_header() {
        let answer = (Warnings::default(), "").into_response();
        assert!(answer.headers().get(WARNING).is_none());
    }
}
