//! A route's CORS policy (SPEC §3.9), compiled at config load: which
//! origins may call it from a browser, and the header values that say so.
//! The data plane answers preflights with it before any authentication,
//! and adds `Access-Control-Allow-Origin` to the route's other responses.

/// A compiled `cors:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    pub origins: Origins,
    /// `Access-Control-Allow-Methods`.
    pub methods: String,
    /// `Access-Control-Allow-Headers`; `None`: the preflight's
    /// `Access-Control-Request-Headers` are reflected.
    pub headers: Option<String>,
    /// `Access-Control-Expose-Headers`, if any.
    pub expose: Option<String>,
    pub credentials: bool,
    pub max_age: u64,
}

/// Allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// `["*"]`: any origin (never with credentials).
    Any,
    /// Serialised origins, scheme and host lower-cased.
    List(Vec<String>),
}

/// Why an `allow_origins` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error(
        "{0:?} is not an origin (scheme://host[:port], http or https, no path, no trailing slash)"
    )]
    NotAnOrigin(String),
    #[error("\"null\" is not allowed: it is the origin of sandboxed frames and local files, which any page can produce")]
    Null,
}

impl CorsPolicy {
    /// The value for `Access-Control-Allow-Origin` when `origin` (the
    /// request's `Origin` header) may call this route; `None` otherwise.
    pub fn allow_origin<'a>(&'a self, origin: &'a str) -> Option<&'a str> {
        match &self.origins {
            Origins::Any => Some("*"),
            Origins::List(list) => {
                let canonical = canonical_origin(origin)?;
                list.contains(&canonical).then_some(origin)
            }
        }
    }
}

/// The serialised form of an origin as browsers send it (RFC 6454 §6.2):
/// `scheme://host[:port]`, scheme and host compared without case, no path,
/// no trailing slash, no userinfo. `None` for anything else (`null`
/// included).
pub fn canonical_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (host, port) = if rest.starts_with('[') {
        // An IPv6 literal: [hex:...], then nothing or :port.
        let end = rest.find(']')?;
        let (host, after) = rest.split_at(end + 1);
        let literal_ok = host.get(1..host.len() - 1).is_some_and(|h| {
            !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        });
        if !literal_ok {
            return None;
        }
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let name_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !name_ok {
            return None;
        }
        (host, port)
    };
    // Digits as a browser writes them: no leading zero.
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && !p.starts_with('0')
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65_535).contains(&n))
    });
    if !port_ok {
        return None;
    }
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if let Some(p) = port {
        out.push(':');
        out.push_str(p);
    }
    Some(out)
}

/// One `allow_origins` entry, checked and canonicalised.
pub fn parse_origin(entry: &str) -> Result<String, OriginError> {
    if entry.eq_ignore_ascii_case("null") {
        return Err(OriginError::Null);
    }
    let origin =
        canonical_origin(entry).ok_or_else(|| OriginError::NotAnOrigin(entry.to_owned()))?;
    Ok(without_default_port(&origin).unwrap_or(origin))
}

/// `origin` (canonical) without its scheme's default port, when it names
/// it: a browser serialises `https://a.example:443` as `https://a.example`
/// (RFC 6454 §6.2), so an entry written with it is matched without it, and
/// `check` says so.
pub fn without_default_port(origin: &str) -> Option<String> {
    let default_port = if origin.starts_with("https:") {
        ":443"
    } else {
        ":80"
    };
    origin.strip_suffix(default_port).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> CorsPolicy {
        CorsPolicy {
            origins: Origins::List(
                origins
                    .iter()
                    .map(|o| parse_origin(o).expect("origin"))
                    .collect(),
            ),
            methods: "GET".into(),
            headers: None,
            expose: None,
            credentials: false,
            max_age: 600,
        }
    }

    #[test]
    fn origins_match_as_browsers_serialise_them() {
        let p = policy(&[
            "https://App.Example.com",
            "http://localhost:3000",
            "https://[::1]:8443",
        ]);
        assert_eq!(
            p.allow_origin("https://app.example.com"),
            Some("https://app.example.com")
        );
        assert_eq!(
            p.allow_origin("HTTPS://APP.EXAMPLE.COM"),
            Some("HTTPS://APP.EXAMPLE.COM")
        );
        assert_eq!(
            p.allow_origin("http://localhost:3000"),
            Some("http://localhost:3000")
        );
        assert_eq!(
            p.allow_origin("https://[::1]:8443"),
            Some("https://[::1]:8443")
        );
        for refused in [
            "null",
            "https://app.example.com/",
            "https://app.example.com:443",
            "http://app.example.com",
            "https://app.example.com.evil.com",
            "https://evil.com/https://app.example.com",
            "https://user@app.example.com",
            "http://localhost:3001",
            "http://localhost",
            "",
            "app.example.com",
            "https://app.example.com\r\nX: y",
        ] {
            assert_eq!(p.allow_origin(refused), None, "{refused:?}");
        }
        let any = CorsPolicy {
            origins: Origins::Any,
            ..policy(&[])
        };
        assert_eq!(any.allow_origin("null"), Some("*"));
    }

    #[test]
    fn config_entries_are_checked() {
        assert_eq!(parse_origin("null"), Err(OriginError::Null));
        for bad in [
            "https://a.example/",
            "https://a.example/path",
            "ftp://a.example",
            "https://",
            "*.example.com",
            "https://*.example.com",
            "https://a.example:99999",
            "https://a.example:0",
            "https://a.example:0443",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        // A default port is matched as browsers send the origin: without.
        for (given, bare) in [
            ("https://a.example:443", "https://a.example"),
            ("HTTP://A.example:80", "http://a.example"),
            ("https://[::1]:443", "https://[::1]"),
        ] {
            assert_eq!(parse_origin(given).as_deref(), Ok(bare));
        }
        assert!(parse_origin("https://a.example:80").is_ok());
        assert!(parse_origin("http://a.example:443").is_ok());
        assert!(parse_origin("https://a.example:8443").is_ok());
        assert_eq!(
            parse_origin("HTTPS://A.example:8443").as_deref(),
            Ok("https://a.example:8443")
        );
    }
}
