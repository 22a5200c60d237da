//! The built-in echo upstream: answers with the request as the upstream would
//! have received it (method, normalised path, query, headers: the client's
//! and the gateway's own), as JSON. It lets a quickstart run with no other
//! server.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::Response;
use serde_json::{Map, Value};

use crate::body::GatewayBody;
use crate::headers::GatewayHeaders;

pub fn respond(parts: &Parts, added: &GatewayHeaders<'_>) -> Response<GatewayBody> {
    let mut headers = Map::new();
    let client = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let gateway = added.iter().map(|(n, v)| -> (&str, &[u8]) { (n, v) });
    for (name, value) in client.chain(gateway) {
        let v = String::from_utf8_lossy(value).into_owned();
        match headers.get_mut(name) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(name.to_owned(), Value::String(v));
            }
        }
    }
    let body = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
    });
    let mut resp = Response::new(GatewayBody::full(body.to_string()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
