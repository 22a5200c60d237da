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

/// Request headers that are hop-by-hop whatever `Connection` says. A match
/// on the name's text: comparing `HeaderName`s one by one costs more.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
    )
}

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_matching(headers, is_hop_by_hop);
}

/// Removes the identity headers a client sent (only the gateway may set
/// them: a client could otherwise impersonate a consumer to the upstream),
/// and `extra` (a route's `forward_claims` headers, which an upstream trusts
/// just as much).
pub fn strip_identity<'a>(
    headers: &mut HeaderMap,
    extra: impl Iterator<Item = &'a HeaderName> + Clone,
) {
    remove_matching(headers, |name| {
        matches!(
            name.as_str(),
            "x-consumer-username" | "x-consumer-custom-id" | "x-credential-identifier"
        ) || extra.clone().any(|e| e == name)
    });
}

/// Removes every header `unwanted` picks, plus (when it picks `Connection`)
/// the headers `Connection` names. One pass over the names present: most
/// requests carry none of them, and removing an absent name still hashes it.
fn remove_matching(headers: &mut HeaderMap, unwanted: impl Fn(&HeaderName) -> bool) {
    let mut found: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if unwanted(name) {
            found.push(name.clone());
        }
    }
    if found.is_empty() {
        return;
    }
    if found.contains(&CONNECTION) {
        for token in headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
        {
            // The usual values name no header to remove (`keep-alive` is
            // hop-by-hop already): skip parsing them.
            if token.eq_ignore_ascii_case("keep-alive") || token.eq_ignore_ascii_case("close") {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                found.push(name);
            }
        }
    }
    for name in found {
        headers.remove(name);
    }
}

/// Appends the peer to X-Forwarded-For; sets -Proto and -Host. `peer_ip` is
/// the peer's address as a header value, made once per connection.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer_ip: &HeaderValue,
    tls: bool,
    host: Option<HeaderValue>,
) {
    let xff = match headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes) {
        Some(prev) if !prev.trim_ascii().is_empty() => {
            let mut v = Vec::with_capacity(prev.len() + 2 + peer_ip.len());
            v.extend_from_slice(prev);
            v.extend_from_slice(b", ");
            v.extend_from_slice(peer_ip.as_bytes());
            HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
        }
        _ => Some(peer_ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    match host {
        Some(v) => {
            headers.insert(X_FORWARDED_HOST, v);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

/// The peer's IP address as a header value (once per connection).
pub fn peer_ip_value(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"))
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
        h.insert("upgrade", HeaderValue::from_static("websocket"));
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
        let peer = peer_ip_value("127.0.0.1:5000".parse().expect("addr"));
        set_forwarded(
            &mut h,
            &peer,
            false,
            Some(HeaderValue::from_static("api.example.com")),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");

        let mut fresh = HeaderMap::new();
        fresh.insert("x-forwarded-host", HeaderValue::from_static("spoofed"));
        let v6 = peer_ip_value("[::1]:5000".parse().expect("addr"));
        set_forwarded(&mut fresh, &v6, true, None);
        assert_eq!(fresh["x-forwarded-for"], "::1");
        assert_eq!(fresh["x-forwarded-proto"], "https");
        assert!(!fresh.contains_key("x-forwarded-host"));
    }

    #[test]
    fn identity_and_extra_headers_go_others_stay() {
        let mut h = HeaderMap::new();
        h.insert(X_CONSUMER_USERNAME, HeaderValue::from_static("admin"));
        h.insert(X_CONSUMER_CUSTOM_ID, HeaderValue::from_static("c"));
        h.insert(X_CREDENTIAL_IDENTIFIER, HeaderValue::from_static("k"));
        h.insert("x-user-id", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        let extra = [HeaderName::from_static("x-user-id")];
        strip_identity(&mut h, extra.iter());
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
