//! Header rules of the proxy: hop-by-hop removal (RFC 9110 §7.6.1), identity
//! headers the gateway alone may set, and the X-Forwarded-* family.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

use jwtgate_core::owned_headers::{
    CLIENT_MAY_NOT_SEND, IDENTITY_HEADERS, KONG_IDENTITY_HEADERS, RESPELLED_NOT_PASSED,
};

/// Header names the gateway owns (SPEC §3.11): the identity headers (its
/// own and Kong's, [`KONG_IDENTITY_HEADERS`]), the ones a client may not
/// send ([`CLIENT_MAY_NOT_SEND`]) and every route's `forward_claims`
/// headers. A client's copy is removed from
/// every request, whatever its route, compared case-insensitively with `_`
/// and `-` alike: CGI-style upstreams read `X_Consumer_Username` as
/// `HTTP_X_CONSUMER_USERNAME`, the same variable as the real header.
///
/// Built once per config version. A lookup first checks the name's length
/// against a bit set of the owned lengths, so the usual headers (`host`,
/// `accept`) cost one shift and one test, then searches only the owned
/// names of its length (`authorization` meets `x-consumer-id` alone),
/// kept sorted: a config with thousands of `forward_claims` headers (an
/// etcd writer may send one) costs a binary search, not a scan, and is
/// built in n log n, not n² (an outside audit: 40 000 of them took 1.9 s
/// to build at each revision).
///
/// Also the headers a client may send only as they are spelled: framing
/// headers ([`RESPELLED_NOT_PASSED`]) and every route's token header, which
/// with `_` for `-` (`Transfer_Encoding`, `X_Api_Token`) are not the header
/// to the gateway, but the same variable to a CGI-style upstream, which
/// could read a second, unchecked token so.
#[derive(Debug, Clone, Default)]
pub struct OwnedHeaders {
    /// Lower case, `_` written as `-`; by length (index: the length, 63
    /// for 63 bytes and more, whose names are compared in full); each
    /// bucket sorted, without duplicates.
    by_length: Vec<Vec<Box<[u8]>>>,
    /// Bit n set: some owned name is n bytes long (bit 63: 63 and more).
    lengths: u64,
    /// Folded, with the real spelling (lower case) that is not removed.
    respelled: Vec<Spellings>,
    /// Every route's token header as spelled (lower case): never removed
    /// as another's respelling (two routes may name `X-Api-Token` and
    /// `X_Api_Token`).
    token_headers: Vec<Box<[u8]>>,
    /// As `lengths`, for `respelled`.
    respelled_lengths: u64,
}

/// A header name folded (lower case, `_` as `-`), and as it is spelled.
type Spellings = (Box<[u8]>, Box<[u8]>);

impl OwnedHeaders {
    /// `extra`: every route's `forward_claims` headers; `token_headers`:
    /// every route's token header.
    pub fn new<'a>(
        extra: impl IntoIterator<Item = &'a str>,
        token_headers: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut owned = OwnedHeaders {
            by_length: vec![Vec::new(); 64],
            ..OwnedHeaders::default()
        };
        let fixed = IDENTITY_HEADERS
            .into_iter()
            .chain(KONG_IDENTITY_HEADERS)
            .chain(CLIENT_MAY_NOT_SEND);
        for name in fixed.chain(extra) {
            let folded: Box<[u8]> = name.bytes().map(fold).collect();
            owned.lengths |= length_bit(folded.len());
            if let Some(bucket) = owned.by_length.get_mut(folded.len().min(63)) {
                bucket.push(folded);
            }
        }
        for bucket in &mut owned.by_length {
            bucket.sort_unstable();
            bucket.dedup();
        }
        let token_headers: Vec<&str> = token_headers.into_iter().collect();
        owned.token_headers = token_headers
            .iter()
            .map(|h| h.bytes().map(|b| b.to_ascii_lowercase()).collect())
            .collect();
        owned.token_headers.sort_unstable();
        owned.token_headers.dedup();
        // Only a name written with `-` has a `_` spelling removed: one
        // written with `_` (rare) would otherwise take the `-` spelling,
        // an ordinary header, from every route; one with neither
        // (`authorization`) has no other spelling.
        let respellable = token_headers
            .into_iter()
            .filter(|h| h.contains('-') && !h.contains('_'));
        for real in RESPELLED_NOT_PASSED.into_iter().chain(respellable) {
            let entry: Spellings = (
                real.bytes().map(fold).collect(),
                real.bytes().map(|b| b.to_ascii_lowercase()).collect(),
            );
            owned.respelled_lengths |= length_bit(entry.0.len());
            owned.respelled.push(entry);
        }
        owned.respelled.sort_unstable();
        owned.respelled.dedup();
        owned
    }

    /// Whether `name` (lower case) is one of [`Self::respelled`]'s names
    /// written another way, `_` for `-` or the other way round:
    /// `transfer_encoding`, `x_api_token`.
    fn respelled(&self, name: &str) -> bool {
        let name = name.as_bytes();
        if self.respelled_lengths & length_bit(name.len()) == 0 {
            return false;
        }
        let other_spelling =
            |(folded, real): &Spellings| **real != *name && same_folded(folded, name);
        let respelled = if self.respelled.len() <= SCANNED {
            self.respelled.iter().any(other_spelling)
        } else {
            // Sorted by the folded name: the spellings of `name`'s are a run.
            let order = |folded: &[u8]| folded.iter().copied().cmp(name.iter().map(|&n| fold(n)));
            let start = self.respelled.partition_point(|(f, _)| order(f).is_lt());
            self.respelled
                .get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|(f, _)| order(f).is_eq())
                .any(other_spelling)
        };
        let a_token_header = if self.token_headers.len() <= SCANNED {
            self.token_headers.iter().any(|real| **real == *name)
        } else {
            self.token_headers
                .binary_search_by(|real| (**real).cmp(name))
                .is_ok()
        };
        respelled && !a_token_header
    }

    /// Whether `name` (as hyper gives it: lower case) is owned.
    pub fn owns(&self, name: &str) -> bool {
        let name = name.as_bytes();
        if self.lengths & length_bit(name.len()) == 0 {
            return false;
        }
        let Some(bucket) = self.by_length.get(name.len().min(63)) else {
            return false;
        };
        if bucket.len() <= SCANNED {
            return bucket.iter().any(|owned| same_folded(owned, name));
        }
        // Ordered as the folded bytes, which `name` is compared as.
        bucket
            .binary_search_by(|owned| owned.iter().copied().cmp(name.iter().map(|&n| fold(n))))
            .is_ok()
    }
}

/// Lists this small (every one, with a few `forward_claims` and token
/// headers) are scanned: a comparison that stops at the first byte that differs costs
/// less than a search's ordered ones.
const SCANNED: usize = 8;

/// Whether `name` folded is `folded`.
fn same_folded(folded: &[u8], name: &[u8]) -> bool {
    folded.len() == name.len() && folded.iter().zip(name).all(|(&o, &n)| o == fold(n))
}

/// Lower case, and `_` as `-`.
fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

fn length_bit(len: usize) -> u64 {
    1u64 << len.min(63)
}

/// Request headers that are hop-by-hop whatever `Connection` says
/// (`owned_headers::HOP_BY_HOP`, which a test holds this to). A match on
/// the name's text: comparing `HeaderName`s one by one costs more.
/// `Expect` among them: the gateway answers `100-continue` itself, when it
/// first reads the body (over HTTP/1.x and HTTP/2), as Envoy does; passed
/// on, the upstream's own `100` went nowhere.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "expect"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-authorization"
    )
}

/// Removes hop-by-hop headers, including every header named in
/// `Connection`, but for the named ones `read_first` picks: those are left
/// in place and returned, for the caller to remove once it has read them.
/// A client's `Connection: Authorization` addresses its token to the
/// gateway, which must still check it: removed before the check, a bad
/// token would read as no token at all.
pub fn remove_hop_by_hop(
    headers: &mut HeaderMap,
    read_first: impl Fn(&HeaderName) -> bool,
) -> Vec<HeaderName> {
    remove_matching(headers, is_hop_by_hop, read_first)
}

/// Whether a request opens a WebSocket (RFC 6455 §4.1): a `GET` over
/// HTTP/1.1 whose `Connection` names `upgrade` and whose one `Upgrade`
/// field is `websocket`, any case. Nothing else is taken for one: an
/// `Upgrade` that also offers another protocol (`h2c`: a tunnel past every
/// rule to an upstream that speaks it) stays a hop-by-hop header, dropped.
/// Read before [`remove_hop_by_hop`] takes both away.
pub fn asks_for_websocket(
    version: http::Version,
    method: &http::Method,
    headers: &HeaderMap,
) -> bool {
    if version != http::Version::HTTP_11 || method != http::Method::GET {
        return false;
    }
    let mut upgrade = headers.get_all(http::header::UPGRADE).iter();
    let (Some(protocol), None) = (upgrade.next(), upgrade.next()) else {
        return false;
    };
    protocol
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"websocket")
        && headers.get_all(CONNECTION).iter().any(|line| {
            line.as_bytes()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

/// Whether a browser's `Origin` (`scheme://host[:port]`) names the host the
/// request was sent to (`Host`), any case, a scheme's default port written
/// or not. The scheme is not compared: a gateway behind a balancer that
/// ends TLS sees `http` for an `https` page. `null` (a sandboxed frame, a
/// file) names no host.
pub fn same_origin(origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    fn bare(authority: &[u8]) -> &[u8] {
        authority
            .strip_suffix(b":443")
            .or_else(|| authority.strip_suffix(b":80"))
            .unwrap_or(authority)
    }
    let origin = origin.as_bytes();
    let Some(authority) = origin
        .strip_prefix(b"https://")
        .or_else(|| origin.strip_prefix(b"http://"))
    else {
        return false;
    };
    host.is_some_and(|host| {
        !authority.is_empty() && bare(authority).eq_ignore_ascii_case(bare(host.as_bytes()))
    })
}

/// Removes the headers the gateway owns ([`OwnedHeaders`]) from a
/// client's request: a client could otherwise impersonate a consumer, or
/// say where the request came from, to the upstream. A client's
/// `X-Forwarded-For` stays for [`take_forwarded_for`] to extend; in another
/// spelling (`X_Forwarded_For`, which a CGI-style upstream reads as the
/// same variable) it goes, as do the framing headers so spelled
/// ([`RESPELLED_NOT_PASSED`]).
pub fn strip_owned(headers: &mut HeaderMap, owned: &OwnedHeaders) {
    let unwanted = |name: &HeaderName| owned.owns(name.as_str()) || owned.respelled(name.as_str());
    remove_matching(headers, unwanted, |_| false);
}

/// HTTP/2 splits `Cookie` into crumbs, one field each (RFC 9113 §8.2.3);
/// an HTTP/1.1 upstream expects one `Cookie` line, so they are joined with
/// `; `. Also joins the (non-conforming) several lines of an HTTP/1.1
/// client, so that every upstream sees one cookie string.
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(http::header::COOKIE).iter();
    let (Some(_), Some(_)) = (crumbs.next(), crumbs.next()) else {
        return;
    };
    let mut joined = Vec::new();
    for crumb in headers.get_all(http::header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    // Made of header values and "; ": a valid value.
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)) {
        headers.insert(http::header::COOKIE, v);
    }
}

/// Why a `Host` is refused (SPEC §3.11): more than one, or not `host[:port]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadHost {
    #[error("more than one Host header")]
    Several,
    #[error("an HTTP/1.1 request without Host")]
    Missing,
    #[error("Host is not host[:port]")]
    Syntax,
    #[error("an HTTP/2 request whose Host differs from its :authority")]
    Conflicting,
}

/// The request's host: the absolute-form or HTTP/2 authority, else `Host`.
/// HTTP/1.1 requests must carry a `Host`.
/// A `Host` that is there must be one `host[:port]`, whichever is used, so
/// that no list, userinfo or path reaches the upstream as
/// `X-Forwarded-Host` (host-header poisoning of reset links).
pub fn request_host(
    version: http::Version,
    authority: Option<&http::uri::Authority>,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, BadHost> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(BadHost::Several);
    }
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request
    // without Host, even one with an absolute-form target.
    if host.is_none() && version == http::Version::HTTP_11 {
        return Err(BadHost::Missing);
    }
    // HTTP/2 says it in :authority; with neither (RFC 9113 §8.3.1), the
    // request routes as no host and goes upstream without one: refused as
    // HTTP/1.1 is, and as nginx refuses it.
    if host.is_none() && authority.is_none() && version == http::Version::HTTP_2 {
        return Err(BadHost::Missing);
    }
    if let Some(h) = host {
        if !valid_host(h.as_bytes()) {
            return Err(BadHost::Syntax);
        }
    }
    // RFC 9113 §8.3.1: a server SHOULD treat an HTTP/2 request whose Host
    // names another entity than its :authority as malformed: one of the
    // two routes, the upstream might read the other. (HTTP/1.1's absolute
    // form overrides Host, RFC 9112 §3.2.2.)
    if let (Some(a), Some(h), http::Version::HTTP_2) = (authority, host, version) {
        if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) {
            return Err(BadHost::Conflicting);
        }
    }
    match authority {
        Some(a) if valid_host(a.as_str().as_bytes()) => {
            Ok(HeaderValue::from_str(a.as_str()).ok().map(normalized_host))
        }
        Some(_) => Err(BadHost::Syntax),
        None => Ok(host.cloned().map(normalized_host)),
    }
}

/// The host as it routes and goes upstream: an empty port and its `:`
/// dropped (`api.example:` is `api.example`, RFC 3986 §6.2.3), and a
/// name's one final dot removed. `api.example.` is the same DNS name as
/// `api.example`: a route for `hosts: [api.example]` must take it, and an
/// upstream that drops the dot itself (Django does) must not see a request
/// that bypassed that route. nginx removes both the same way.
fn normalized_host(host: HeaderValue) -> HeaderValue {
    let bytes = host.as_bytes();
    let bytes = bytes.strip_suffix(b":").unwrap_or(bytes);
    let end = if bytes.starts_with(b"[") {
        bytes.len()
    } else {
        bytes.iter().position(|&b| b == b':').unwrap_or(bytes.len())
    };
    let dot = end > 0 && !bytes.starts_with(b"[") && bytes[end - 1] == b'.';
    if !dot && bytes.len() == host.as_bytes().len() {
        return host;
    }
    let mut trimmed = Vec::with_capacity(bytes.len());
    trimmed.extend_from_slice(&bytes[..if dot { end - 1 } else { end }]);
    trimmed.extend_from_slice(&bytes[end..]);
    HeaderValue::from_bytes(&trimmed).unwrap_or(host)
}

/// `host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2): a registered name of
/// letters, digits, `-`, `.`, `_` and `~`, an IPv4 address (same
/// characters), or an IPv6 literal in brackets; a port of up to 5 digits
/// (RFC 3986's `*DIGIT`: an empty one is no port).
/// Not: userinfo (`@`), paths, lists (`,`), spaces, percent escapes, empty,
/// an empty label (a leading dot, two dots in a row: a final dot is the
/// root's, and removed by [`request_host`]).
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let (literal, after) = rest.split_at(end);
        let literal_ok = !literal.is_empty()
            && literal.contains(&b':')
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !literal_ok {
            return false;
        }
        // `after` starts with the `]`.
        match after.get(1..) {
            Some([]) | None => return true,
            Some([b':', port @ ..]) => (&b"x"[..], Some(port)),
            Some(_) => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], value.get(colon + 1..)),
            None => (value, None),
        }
    };
    let name_ok = !host.is_empty()
        && !host.starts_with(b".")
        && !host.windows(2).any(|w| w == b"..")
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let port_ok = port.is_none_or(|p| {
        p.is_empty()
            || (1..=5).contains(&p.len())
                && p.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(p)
                    .ok()
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|n| n <= 65_535)
    });
    name_ok && port_ok
}

/// Removes every header `unwanted` picks, plus (when it picks `Connection`)
/// the headers `Connection` names, but for those `kept` picks among the
/// named: returned instead. One pass over the names present: most requests
/// carry none of them, and removing an absent name still hashes it.
fn remove_matching(
    headers: &mut HeaderMap,
    unwanted: impl Fn(&HeaderName) -> bool,
    kept: impl Fn(&HeaderName) -> bool,
) -> Vec<HeaderName> {
    let mut found: Vec<HeaderName> = Vec::new();
    let mut left = Vec::new();
    for name in headers.keys() {
        if unwanted(name) {
            found.push(name.clone());
        }
    }
    if found.is_empty() {
        return left;
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
                if kept(&name) {
                    left.push(name);
                } else {
                    found.push(name);
                }
            }
        }
    }
    for name in found {
        headers.remove(name);
    }
    left
}

/// The headers the gateway itself states to the upstream: who the consumer
/// is (SPEC §3.2, §3.8) and where the request came from (`X-Forwarded-*`,
/// `X-Real-IP`). They are written after the client's own headers when the
/// request head is encoded, never inserted into the client's header map:
/// an insert hashes the name, probes, and may grow the map (HTTP/2 hands
/// over maps sized to the client's headers), several hundred instructions
/// each. The client's copies of these names are gone by then
/// ([`strip_owned`], [`take_forwarded_for`]), so each is sent once.
#[derive(Debug, Clone, Default)]
pub struct GatewayHeaders<'a> {
    pub consumer_username: Option<HeaderValue>,
    pub consumer_custom_id: Option<HeaderValue>,
    pub credential_identifier: Option<HeaderValue>,
    pub anonymous_consumer: bool,
    /// The client's X-Forwarded-For with the peer appended, or the peer.
    pub forwarded_for: Option<Cow<'a, [u8]>>,
    /// The peer, whatever the client said (as nginx's
    /// `proxy_set_header X-Real-IP $remote_addr`).
    pub real_ip: Option<&'a [u8]>,
    pub forwarded_proto: Option<&'static str>,
    /// The request's host, when it had one.
    pub forwarded_host: Option<HeaderValue>,
    /// The request opens a WebSocket on a route that passes them: the
    /// upstream is asked to switch (`Connection: upgrade`, `Upgrade:
    /// websocket`, written by `h1::encode_request_head`), the client's own
    /// copies having gone as hop-by-hop. Not among [`Self::iter`]'s: the
    /// echo upstream never sees one.
    pub websocket: bool,
}

impl<'a> GatewayHeaders<'a> {
    /// Sets where the request came from: `forwarded_for` as
    /// [`take_forwarded_for`] made it, the peer's address, whether the
    /// client spoke TLS, and the request's host.
    pub fn set_forwarded(
        &mut self,
        forwarded_for: Cow<'a, [u8]>,
        peer_ip: &'a [u8],
        tls: bool,
        host: Option<HeaderValue>,
    ) {
        self.forwarded_for = Some(forwarded_for);
        self.real_ip = Some(peer_ip);
        self.forwarded_proto = Some(if tls { "https" } else { "http" });
        self.forwarded_host = host;
    }

    /// Each header that is set, name (lower case) and value, in the order
    /// they are sent.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        fn value(v: &Option<HeaderValue>) -> Option<&[u8]> {
            v.as_ref().map(HeaderValue::as_bytes)
        }
        [
            ("x-consumer-username", value(&self.consumer_username)),
            ("x-consumer-custom-id", value(&self.consumer_custom_id)),
            (
                "x-credential-identifier",
                value(&self.credential_identifier),
            ),
            (
                "x-anonymous-consumer",
                self.anonymous_consumer.then_some(b"true".as_slice()),
            ),
            ("x-forwarded-for", self.forwarded_for.as_deref()),
            ("x-real-ip", self.real_ip),
            ("x-forwarded-proto", self.forwarded_proto.map(str::as_bytes)),
            ("x-forwarded-host", value(&self.forwarded_host)),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
    }
}

/// Takes the client's X-Forwarded-For out of `headers` and returns it with
/// the peer appended (its lines joined with `, `, as nginx's
/// `$proxy_add_x_forwarded_for`), or the peer alone when the client sent
/// none. `peer_ip` is the peer's address, formatted once per connection.
pub fn take_forwarded_for<'a>(headers: &mut HeaderMap, peer_ip: &'a [u8]) -> Cow<'a, [u8]> {
    let mut lines = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    if lines.peek().is_none() {
        return Cow::Borrowed(peer_ip);
    }
    let mut joined = Vec::with_capacity(64);
    for line in lines.map(|v| v.as_bytes().trim_ascii()) {
        if !line.is_empty() {
            joined.extend_from_slice(line);
            joined.extend_from_slice(b", ");
        }
    }
    headers.remove(&X_FORWARDED_FOR);
    if joined.is_empty() {
        return Cow::Borrowed(peer_ip);
    }
    // Header values, ", " and an IP address: a valid value.
    joined.extend_from_slice(peer_ip);
    Cow::Owned(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_by_hop_names_are_the_cores_list() {
        use jwtgate_core::owned_headers::HOP_BY_HOP;
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["authorization", "cookie", "host", "x-api-token"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn only_a_get_over_http11_upgrading_to_websocket_alone_opens_one() {
        use http::{Method, Version};
        let with = |lines: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in lines {
                h.append(*name, HeaderValue::from_static(value));
            }
            h
        };
        let handshake = with(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(asks_for_websocket(
            Version::HTTP_11,
            &Method::GET,
            &handshake
        ));
        for (lines, what) in [
            (
                with(&[
                    ("connection", "keep-alive, UPGRADE"),
                    ("upgrade", " WebSocket "),
                ]),
                "any case, among other tokens",
            ),
            (
                with(&[
                    ("connection", "keep-alive"),
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                ]),
                "Connection on two lines",
            ),
        ] {
            assert!(
                asks_for_websocket(Version::HTTP_11, &Method::GET, &lines),
                "{what}"
            );
        }
        for (lines, what) in [
            (with(&[("upgrade", "websocket")]), "no Connection: upgrade"),
            (with(&[("connection", "upgrade")]), "no Upgrade"),
            (
                with(&[("connection", "upgrade"), ("upgrade", "h2c")]),
                "h2c: a tunnel past the rules",
            ),
            (
                with(&[("connection", "upgrade"), ("upgrade", "websocket, h2c")]),
                "another protocol offered too",
            ),
            (
                with(&[
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("upgrade", "h2c"),
                ]),
                "two Upgrade lines",
            ),
            (
                with(&[("connection", "upgrades"), ("upgrade", "websocket")]),
                "a token that only starts with upgrade",
            ),
        ] {
            assert!(
                !asks_for_websocket(Version::HTTP_11, &Method::GET, &lines),
                "{what}"
            );
        }
        assert!(!asks_for_websocket(
            Version::HTTP_11,
            &Method::POST,
            &handshake
        ));
        assert!(!asks_for_websocket(
            Version::HTTP_10,
            &Method::GET,
            &handshake
        ));
        assert!(!asks_for_websocket(
            Version::HTTP_2,
            &Method::GET,
            &handshake
        ));
    }

    #[test]
    fn an_origin_is_the_same_when_it_names_the_host() {
        let host = HeaderValue::from_static("App.Example.com");
        for origin in [
            "https://app.example.com",
            "http://app.example.com",
            "https://APP.example.com:443",
            "http://app.example.com:80",
        ] {
            let origin = HeaderValue::from_static(origin);
            assert!(same_origin(&origin, Some(&host)), "{origin:?}");
        }
        let with_port = HeaderValue::from_static("app.example.com:8443");
        assert!(same_origin(
            &HeaderValue::from_static("https://app.example.com:8443"),
            Some(&with_port)
        ));
        for origin in [
            "https://evil.example",
            "https://app.example.com.evil.example",
            "https://app.example.com:8443",
            "null",
            "app.example.com",
            "https://",
            "wss://app.example.com",
        ] {
            let origin = HeaderValue::from_static(origin);
            assert!(!same_origin(&origin, Some(&host)), "{origin:?}");
        }
        assert!(!same_origin(
            &HeaderValue::from_static("https://app.example.com"),
            None
        ));
    }

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
        remove_hop_by_hop(&mut h, |_| false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_is_taken_and_extended() {
        let peer = b"127.0.0.1".as_slice();
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static(" 10.0.0.2, 10.0.0.3 "),
        );
        h.append("x-forwarded-for", HeaderValue::from_static(" "));
        h.insert("x-kept", HeaderValue::from_static("1"));
        assert_eq!(
            take_forwarded_for(&mut h, peer).as_ref(),
            b"10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"
        );
        assert!(!h.contains_key("x-forwarded-for"), "the client's lines go");
        assert!(h.contains_key("x-kept"));

        let v6 = b"::1".as_slice();
        let mut blank = HeaderMap::new();
        blank.insert("x-forwarded-for", HeaderValue::from_static(""));
        assert_eq!(take_forwarded_for(&mut blank, v6).as_ref(), v6);
        assert!(blank.is_empty());
        assert_eq!(take_forwarded_for(&mut HeaderMap::new(), v6).as_ref(), v6);
    }

    #[test]
    fn gateway_headers_list_what_is_set_in_order() {
        let peer = b"127.0.0.1".as_slice();
        let mut added = GatewayHeaders::default();
        assert_eq!(added.iter().count(), 0);
        added.consumer_username = Some(HeaderValue::from_static("alice"));
        added.anonymous_consumer = true;
        added.set_forwarded(
            Cow::Borrowed(b"10.0.0.1, 127.0.0.1"),
            peer,
            true,
            Some(HeaderValue::from_static("api.example.com")),
        );
        let listed: Vec<(&str, &[u8])> = added.iter().collect();
        assert_eq!(
            listed,
            [
                ("x-consumer-username", b"alice".as_slice()),
                ("x-anonymous-consumer", b"true"),
                ("x-forwarded-for", b"10.0.0.1, 127.0.0.1"),
                ("x-real-ip", b"127.0.0.1"),
                ("x-forwarded-proto", b"https"),
                ("x-forwarded-host", b"api.example.com"),
            ]
        );
        added.set_forwarded(Cow::Borrowed(peer), peer, false, None);
        assert!(added
            .iter()
            .any(|(n, v)| n == "x-forwarded-proto" && v == b"http"));
        assert!(added.iter().all(|(n, _)| n != "x-forwarded-host"));
        // Every name is one the client's copies are stripped of.
        let owned = OwnedHeaders::new([], []);
        for (name, _) in added.iter() {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static("spoof"),
            );
            strip_owned(&mut h, &owned);
            let _ = take_forwarded_for(&mut h, peer);
            assert!(h.is_empty(), "{name} of the client survives");
        }
    }

    #[test]
    fn identity_and_extra_headers_go_others_stay() {
        let mut h = HeaderMap::new();
        h.insert("x-consumer-username", HeaderValue::from_static("admin"));
        h.insert("x-consumer-custom-id", HeaderValue::from_static("c"));
        h.insert("x-credential-identifier", HeaderValue::from_static("k"));
        h.insert("x-anonymous-consumer", HeaderValue::from_static("true"));
        h.insert("x-user-id", HeaderValue::from_static("1"));
        h.insert("x_consumer_username", HeaderValue::from_static("admin"));
        h.insert("x-consumer_custom-id", HeaderValue::from_static("c"));
        h.insert("x_user_id", HeaderValue::from_static("1"));
        h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4"));
        h.insert("x_original_url", HeaderValue::from_static("/admin"));
        h.insert("x_real_ip", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-prefix", HeaderValue::from_static("//evil"));
        h.insert("x_forwarded_port", HeaderValue::from_static("443"));
        h.insert("x_forwarded_for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert("x-consumer-usernamex", HeaderValue::from_static("1"));
        // Kong's identity headers, and framing headers spelled with `_`.
        for kong in KONG_IDENTITY_HEADERS {
            h.insert(kong, HeaderValue::from_static("root"));
        }
        h.insert("x_consumer_id", HeaderValue::from_static("evil"));
        h.insert("transfer_encoding", HeaderValue::from_static("chunked"));
        h.insert("content_length", HeaderValue::from_static("50"));
        h.insert("content_type", HeaderValue::from_static("text/x"));
        h.insert("proxy_authorization", HeaderValue::from_static("x"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("content-length", HeaderValue::from_static("5"));
        // A route's token header: as spelled it stays (the gateway reads
        // it), with `_` for `-` it goes; one whose real name has a `_`
        // stays as spelled.
        h.insert("x-api-token", HeaderValue::from_static("t"));
        h.insert("x_api_token", HeaderValue::from_static("other"));
        h.insert("x_legacy_token", HeaderValue::from_static("t"));
        h.insert(
            "x-legacy-token",
            HeaderValue::from_static("an ordinary header"),
        );
        let owned = OwnedHeaders::new(["X-User-Id"], ["X-Api-Token", "x_legacy_token"]);
        strip_owned(&mut h, &owned);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "content-length",
                "content-type",
                "x-api-token",
                "x-consumer-usernamex",
                "x-forwarded-for",
                "x-kept",
                "x-legacy-token",
                "x_legacy_token"
            ]
        );
    }

    /// Thousands of `forward_claims` headers (an etcd object may hold
    /// them), given in any case and twice over: each is owned in every
    /// spelling, its neighbours in order are not, and the fixed ones stay.
    #[test]
    fn many_extra_headers_are_each_owned() {
        let names: Vec<String> = (0..5000).rev().map(|i| format!("X-C{i}")).collect();
        let owned = OwnedHeaders::new(
            names.iter().chain(&names).map(String::as_str),
            ["authorization"],
        );
        for i in [0, 1, 999, 2500, 4999] {
            assert!(owned.owns(&format!("x-c{i}")), "x-c{i}");
            assert!(owned.owns(&format!("x_c{i}")), "x_c{i}");
        }
        for other in ["x-c5000", "x-c", "x-c01", "x-d1", "x-c1x"] {
            assert!(!owned.owns(other), "{other}");
        }
        assert!(owned.owns("x-consumer-username"));
        assert!(owned.owns("x_consumer_username"));
        let long = format!("x-{}", "a".repeat(80));
        let with_long = OwnedHeaders::new([long.as_str(), "X-Zz"], []);
        assert!(with_long.owns(&long));
        assert!(!with_long.owns(&format!("{long}b")));
        assert!(!with_long.owns(&long[..70]));
    }

    /// The sorted, searched sets against the plain definition, on names
    /// drawn from a few letters, `-` and `_` (so that many fold together),
    /// 1 to 80 bytes long (so that the 63+ bucket holds many, searched),
    /// in sets scanned and searched alike.
    #[test]
    fn owned_and_respelled_agree_with_their_definition() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut name = |upper: bool| -> String {
            let len = 1 + next(80) as usize;
            let short = next(2) == 0;
            (0..if short { len % 6 + 1 } else { len })
                .map(|_| {
                    let c = b"ab-_c"[next(5) as usize];
                    if upper && next(3) == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                } as char)
                .collect()
        };
        let folded = |s: &str| s.bytes().map(fold).collect::<Vec<u8>>();
        for (extras, tokens) in [(3, 2), (400, 40)] {
            let extra: Vec<String> = (0..extras).map(|_| name(true)).collect();
            let token: Vec<String> = (0..tokens).map(|_| name(true)).collect();
            let owned = OwnedHeaders::new(
                extra.iter().map(String::as_str),
                token.iter().map(String::as_str),
            );
            let all_owned: Vec<Vec<u8>> = IDENTITY_HEADERS
                .into_iter()
                .chain(KONG_IDENTITY_HEADERS)
                .chain(CLIENT_MAY_NOT_SEND)
                .chain(extra.iter().map(String::as_str))
                .map(folded)
                .collect();
            let respellable: Vec<&str> = RESPELLED_NOT_PASSED
                .into_iter()
                .chain(
                    token
                        .iter()
                        .map(String::as_str)
                        .filter(|h| h.contains('-') && !h.contains('_')),
                )
                .collect();
            let tokens_lower: Vec<String> = token.iter().map(|t| t.to_ascii_lowercase()).collect();
            let probes = extra
                .iter()
                .chain(&token)
                .map(|n| n.to_ascii_lowercase().replace('-', "_"))
                .chain((0..3000).map(|_| name(false)));
            for probe in probes {
                let owns = all_owned.contains(&folded(&probe));
                assert_eq!(owned.owns(&probe), owns, "owns {probe:?}");
                let respelled = respellable
                    .iter()
                    .any(|r| folded(r) == folded(&probe) && r.to_ascii_lowercase() != probe)
                    && !tokens_lower.contains(&probe);
                assert_eq!(owned.respelled(&probe), respelled, "respelled {probe:?}");
            }
        }
    }

    /// Two routes may read one header in two spellings: neither is the
    /// other's respelling to remove.
    #[test]
    fn a_token_header_a_route_reads_is_never_removed_as_a_respelling() {
        let owned = OwnedHeaders::new([], ["X-Api-Token", "X_Api_Token"]);
        let mut h = HeaderMap::new();
        h.insert("x-api-token", HeaderValue::from_static("a"));
        h.insert("x_api_token", HeaderValue::from_static("b"));
        strip_owned(&mut h, &owned);
        assert_eq!(h.len(), 2, "{h:?}");
    }

    #[test]
    fn owned_headers_compare_folded() {
        let owned = OwnedHeaders::new(
            [
                "X-Tenant",
                "x-a-very-long-header-name-beyond-sixty-four-bytes-for-the-bit-set-check",
            ],
            [],
        );
        assert!(owned.owns("x-tenant"));
        assert!(owned.owns("x_tenant"));
        assert!(owned.owns("x_consumer_custom_id"));
        assert!(!owned.owns("x-tenants"));
        assert!(!owned.owns("host"));
        assert!(
            owned.owns("x_a_very_long_header_name_beyond_sixty_four_bytes_for_the_bit_set_check")
        );
        assert!(
            !owned.owns("x_a_very_long_header_name_beyond_sixty_four_bytes_for_the_bit_set_chexx")
        );
    }

    #[test]
    fn cookie_crumbs_are_joined() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        h.append("cookie", HeaderValue::from_static("jwt=t"));
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2; jwt=t");
        let mut one = HeaderMap::new();
        one.append("cookie", HeaderValue::from_static("a=1"));
        join_cookies(&mut one);
        assert_eq!(one["cookie"], "a=1");
    }

    #[test]
    fn host_syntax() {
        for ok in [
            "api.example.com",
            "api.example.com:443",
            "localhost",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:80",
            "[2001:db8::1]:65535",
            "under_score.example",
            "a:1",
            // RFC 3986 §3.2.3: port = *DIGIT.
            "a.example:",
            "[::1]:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a.example, b.example",
            "a.example,b.example",
            "user@a.example",
            "a.example/reset",
            "a.example:80:80",
            "a.example::",
            "a.example:65536",
            "a.example:123456",
            "a.example:8a",
            ":80",
            "a example",
            "a.example%2F",
            "[::1",
            "[]",
            "[::1]x",
            "[v1.x]",
            "[fe80::1%25eth0]",
            "a.example\\",
            ".",
            ".a.example",
            "a..example",
            "a.example..",
            "a.example..:80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn a_names_final_dot_is_removed_from_the_host_that_routes_and_goes_upstream() {
        let host = |value: &str| {
            let mut h = HeaderMap::new();
            h.append("host", HeaderValue::from_str(value).expect("value"));
            request_host(http::Version::HTTP_11, None, &h)
                .map(|v| v.map(|v| v.to_str().unwrap_or("").to_owned()))
        };
        for (sent, seen) in [
            ("secret.example.", "secret.example"),
            ("secret.example.:8443", "secret.example:8443"),
            ("secret.example", "secret.example"),
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("[::1]:80", "[::1]:80"),
            // An empty port is no port (RFC 3986 §6.2.3), as nginx reads it.
            ("secret.example:", "secret.example"),
            ("secret.example.:", "secret.example"),
            ("[::1]:", "[::1]"),
            ("a:", "a"),
        ] {
            assert_eq!(host(sent), Ok(Some(seen.to_owned())), "{sent}");
        }
        assert_eq!(host("secret.example.."), Err(BadHost::Syntax));
        let authority: http::uri::Authority = "secret.example.:443".parse().expect("authority");
        assert_eq!(
            request_host(http::Version::HTTP_2, Some(&authority), &HeaderMap::new())
                .map(|v| v.map(|v| v.to_str().unwrap_or("").to_owned())),
            Ok(Some("secret.example:443".to_owned()))
        );
    }

    #[test]
    fn request_host_refuses_several_and_bad_ones() {
        const V11: http::Version = http::Version::HTTP_11;
        let mut h = HeaderMap::new();
        h.append("host", HeaderValue::from_static("a.example"));
        assert_eq!(
            request_host(V11, None, &h).map(|v| v.map(|v| v.to_str().unwrap_or("").to_owned())),
            Ok(Some("a.example".to_owned()))
        );
        h.append("host", HeaderValue::from_static("b.example"));
        assert_eq!(request_host(V11, None, &h), Err(BadHost::Several));
        let mut bad = HeaderMap::new();
        bad.append("host", HeaderValue::from_static("a.example/x"));
        assert_eq!(request_host(V11, None, &bad), Err(BadHost::Syntax));
        let with_user: http::uri::Authority = "user@a.example".parse().expect("authority");
        assert_eq!(
            request_host(http::Version::HTTP_2, Some(&with_user), &HeaderMap::new()),
            Err(BadHost::Syntax)
        );
        // HTTP/1.1 must name a host (RFC 9112 §3.2); HTTP/1.0 and HTTP/2
        // (whose authority is passed as `authority`) need not.
        assert_eq!(
            request_host(V11, None, &HeaderMap::new()),
            Err(BadHost::Missing)
        );
        let absolute: http::uri::Authority = "a.example".parse().expect("authority");
        assert_eq!(
            request_host(V11, Some(&absolute), &HeaderMap::new()),
            Err(BadHost::Missing)
        );
        assert_eq!(
            request_host(http::Version::HTTP_10, None, &HeaderMap::new()),
            Ok(None)
        );
        assert_eq!(
            request_host(http::Version::HTTP_2, Some(&absolute), &HeaderMap::new())
                .map(|v| v.is_some()),
            Ok(true)
        );
    }
}
