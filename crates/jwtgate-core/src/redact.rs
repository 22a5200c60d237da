//! URLs as logs, errors and explain reports show them. A key-set URL may
//! carry a credential, in its user part or its query
//! (`?access_token=${IDP_TOKEN}`), and references in the config are
//! expanded before the URL is used: shown whole, the secret would reach
//! the log and anyone who may call the admin API's explain.

/// `url` with its user part and each query value replaced by `***`; the
/// scheme, host, port, path and query keys stay, so the operator still
/// sees which URL it is.
pub fn url_for_display(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // A user part ends at the last `@` that a host follows: a password
    // may hold a `/` (base64 does) or a `?`, which no URL parser would
    // take but an operator may write, and a query value may hold an `@`
    // (an e-mail address), which no host follows.
    let user_end = rest.match_indices('@').map(|(at, _)| at).rfind(|&at| {
        let after = &rest[at + 1..];
        let host = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
    });
    let (user, rest) = match user_end {
        Some(at) => ("***@", &rest[at + 1..]),
        None => ("", rest),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = format!("{user}{authority}");
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    let shown_tail = match before_fragment.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) => format!("{key}=***"),
                    None if pair.is_empty() => String::new(),
                    None => "***".to_owned(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => before_fragment.to_owned(),
    };
    format!("{scheme}{host}{shown_tail}{fragment}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden_and_the_rest_stays() {
        let cases = [
            ("https://idp.example/keys", "https://idp.example/keys"),
            (
                "http://127.0.0.1:8080/keys?access_token=s3cret&v=2",
                "http://127.0.0.1:8080/keys?access_token=***&v=***",
            ),
            ("https://svc:pw@idp.example/k", "https://***@idp.example/k"),
            ("https://tok@idp.example", "https://***@idp.example"),
            ("https://a@b@idp.example/?x", "https://***@idp.example/?***"),
            ("redis://:pa/ss@10.0.0.5:6379", "redis://***@10.0.0.5:6379"),
            ("svc:pw/x?y@127.0.0.1:9000", "***@127.0.0.1:9000"),
            (
                "https://idp.example/jwks?user=ops@corp.example&access_token=S3CRET",
                "https://idp.example/jwks?user=***&access_token=***",
            ),
            (
                "https://idp.example?k=v#frag",
                "https://idp.example?k=***#frag",
            ),
            (
                "https://idp.example/p?a=1&&b",
                "https://idp.example/p?a=***&&***",
            ),
            ("not a url?secret=1", "not a url?secret=***"),
            ("", ""),
        ];
        for (url, shown) in cases {
            assert_eq!(url_for_display(url), shown, "{url}");
        }
    }
}
