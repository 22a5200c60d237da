//! CORS on the wire (SPEC §3.9): recognising a preflight, answering it
//! before any authentication, and the headers every other response of a
//! CORS route gets when its `Origin` is allowed. What is allowed is the
//! core's `CorsPolicy`, compiled at config load.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{Method, Response, StatusCode};
use jwtgate_core::cors::CorsPolicy;

use crate::body::GatewayBody;

/// The method a preflight asks about, when `headers` make this `OPTIONS`
/// request one (`Origin` and `Access-Control-Request-Method`, Fetch §3.2.2).
pub fn preflight_method<'a>(method: &Method, headers: &'a HeaderMap) -> Option<&'a str> {
    if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
        return None;
    }
    headers
        .get(ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
}

/// The answer to a preflight: `204`, with the allow headers when the origin
/// is allowed (the browser refuses the call otherwise).
pub fn preflight(policy: &CorsPolicy, headers: &HeaderMap) -> Response<GatewayBody> {
    let mut resp = Response::new(GatewayBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let out = resp.headers_mut();
    out.insert(
        VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    let Some(origin) = allowed_origin(policy, headers) else {
        return resp;
    };
    out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if let Ok(v) = HeaderValue::from_str(&policy.methods) {
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    let allow_headers = match &policy.headers {
        Some(configured) => HeaderValue::from_str(configured).ok(),
        // Reflected, when it is a well-formed list of header names.
        None => headers
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .filter(|v| {
                v.to_str().is_ok_and(|list| {
                    list.split(',').map(str::trim).all(|h| {
                        !h.is_empty()
                            && h.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
                            })
                    })
                })
            })
            .cloned(),
    };
    if let Some(v) = allow_headers.filter(|v| !v.is_empty()) {
        out.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(policy.max_age));
    if policy.credentials {
        out.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    resp
}

/// The request's `Origin`, when the route's policy allows it (kept for
/// [`decorate`]). Two `Origin` fields are none allowed: no browser sends
/// them (RFC 6454 §7.3), and an upstream may read the one not looked at.
pub fn allowed_origin(policy: &CorsPolicy, headers: &HeaderMap) -> Option<HeaderValue> {
    let mut origins = headers.get_all(ORIGIN).iter();
    let origin = origins.next()?;
    if origins.next().is_some() {
        return None;
    }
    let allowed = policy.allow_origin(origin.to_str().ok()?)?;
    if allowed == "*" {
        Some(HeaderValue::from_static("*"))
    } else {
        Some(origin.clone())
    }
}

/// `Vary: Origin` on a CORS route's answer to a request from no allowed
/// origin: an allowed one would get `Access-Control-Allow-Origin` (Fetch
/// §3.2.5 asks for it whenever that header may vary).
pub fn vary(resp: &mut Response<GatewayBody>) {
    resp.headers_mut()
        .append(VARY, HeaderValue::from_static("Origin"));
}

/// Removes the upstream's CORS answer headers, every `Access-Control-*`
/// one (`Access-Control-Allow-Private-Network` too): on a CORS route the
/// gateway's policy alone says which origins may read an answer (an
/// upstream that reflects `Origin`, or sends `*`, would grant the others).
/// The headers must be in the map ([`crate::body::unpass_headers`]).
pub fn withhold(headers: &mut HeaderMap) {
    let theirs: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in theirs {
        headers.remove(name);
    }
}

/// Whether an answer carries a CORS answer header of the upstream's,
/// in its map or in the lines it passes on as bytes.
pub fn upstream_answers(resp: &Response<GatewayBody>) -> bool {
    resp.body().passes_name_starting(b"access-control-")
        || resp
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("access-control-"))
}

/// The headers of a non-preflight response to an allowed origin; the
/// upstream's own CORS headers are replaced, so a browser never sees two.
pub fn decorate(policy: &CorsPolicy, origin: HeaderValue, headers: &mut HeaderMap) {
    withhold(headers);
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if policy.credentials {
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    } else {
        headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    if let Some(v) = policy
        .expose
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    headers.append(VARY, HeaderValue::from_static("Origin"));
}
