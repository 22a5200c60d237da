//! Request headers only the gateway may set: a client's copy is removed
//! from every request (SPEC §3.2, §3.8, §3.11), in any spelling, and no
//! `forward_claims` entry may name one. The data plane strips them; the
//! config compiler refuses them as a claim's header.

/// The identity headers of SPEC §3.2 and §3.8.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-consumer-username",
    "x-consumer-custom-id",
    "x-credential-identifier",
    "x-anonymous-consumer",
];

/// What a client may not say of where its request came from or where it
/// was going: the gateway states the first itself (`X-Real-IP`,
/// `X-Forwarded-Proto`, `-Host`), and upstreams build URLs and redirects
/// from the rest (Spring, Symfony and Rails read `X-Forwarded-Port` and
/// `-Prefix`; IIS's URL Rewrite and Symfony before 2.7.49 take the path
/// from `X-Original-URL` and `X-Rewrite-URL`, past the rules that matched
/// the request's own path; nginx's `auth_request` convention passes the
/// path in `X-Original-URI`, Envoy in `X-Envoy-Original-Path`, and IIS's
/// ARR and some PHP frameworks take the host from `X-Original-Host` or
/// `X-Host`). Kong sets the same family itself.
pub const CLIENT_MAY_NOT_SEND: [&str; 18] = [
    "forwarded",
    "x-real-ip",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-forwarded-uri",
    "x-forwarded-url",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-envoy-original-path",
    "x-original-host",
    "x-host",
];

/// The identity headers Kong's authentication plugins write (`jwt`,
/// `key-auth`, `oauth2`, `openid-connect`, ACL groups) beside the ones
/// jwtgate writes too: an upstream moved from behind Kong may trust them,
/// so a client's copy is removed from every request as the gateway's own
/// are (beyond SPEC §3.11, which names only jwtgate's). A `forward_claims`
/// entry may still name one (`groups` as `X-Consumer-Groups`): it is then
/// the gateway's to set, as every `forward_claims` header is.
pub const KONG_IDENTITY_HEADERS: [&str; 8] = [
    "x-consumer-id",
    "x-consumer-groups",
    "x-credential-username",
    "x-authenticated-userid",
    "x-authenticated-scope",
    "x-authenticated-groups",
    "x-anonymous-groups",
    "x-userinfo",
];

/// Request headers that frame or carry a request, which a client could
/// spell with `_` for `-` (`Transfer_Encoding`): not the header to the
/// gateway or to HTTP, but the same variable (`HTTP_TRANSFER_ENCODING`)
/// to a CGI-style upstream, which may read it as the real one. The real
/// spelling is the gateway's to read or write (`X-Forwarded-For` it
/// appends to); another spelling is removed.
pub const RESPELLED_NOT_PASSED: [&str; 7] = [
    "x-forwarded-for",
    "content-length",
    "content-type",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
];

/// Request headers that are hop-by-hop whatever `Connection` says: the
/// proxy removes them before it reads a token (`Expect` too: the gateway
/// answers `100-continue` itself), so no token header may be one. The
/// proxy matches them by text (`headers::is_hop_by_hop`); a test there
/// holds it to this list.
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "expect",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];
