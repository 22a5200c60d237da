//! Header rules of the proxy: hop-by-hop removal (RFC 9110 §7.6.1), identity
//! headers the gateway alone may set, and the X-Forwarded-* family.

use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

pub const X_CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
pub const X_CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
pub const X_CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that only the gateway may set: a client sending them could
/// otherwise impersonate a consumer to the upstream.
pub const IDENTITY_HEADERS: [HeaderName; 3] = [
    X_CONSUMER_USERNAME,
    X_CONSUMER_CUSTOM_ID,
    X_CREDENTIAL_IDENTIFIER,
];

/// Built once: removing by `&str` would parse the name on every request.
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.contains_key(CONNECTION) {
        for name in &HOP_BY_HOP {
            headers.remove(name);
        }
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Same as [`remove_hop_by_hop`] for responses, where `proxy-authenticate`
/// is hop-by-hop too.
pub fn remove_hop_by_hop_response(headers: &mut HeaderMap) {
    remove_hop_by_hop(headers);
    headers.remove(http::header::PROXY_AUTHENTICATE);
}

pub fn strip_identity(headers: &mut HeaderMap) {
    for name in &IDENTITY_HEADERS {
        headers.remove(name);
    }
}

/// Appends the peer to X-Forwarded-For; sets -Proto and -Host.
pub fn set_forwarded(headers: &mut HeaderMap, peer: SocketAddr, tls: bool, host: Option<&str>) {
    let ip = peer.ip().to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    match host.and_then(|h| HeaderValue::from_str(h).ok()) {
        Some(v) => {
            headers.insert(X_FORWARDED_HOST, v);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        set_forwarded(
            &mut h,
            "127.0.0.1:5000".parse().expect("addr"),
            false,
            Some("api.example.com"),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
    }
}
