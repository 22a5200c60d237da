//! The built-in echo upstream: answers with the request as the upstream would
//! have received it (method, normalised path, query, headers), as JSON. It
//! lets a quickstart run with no other server.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::Response;
use serde_json::{Map, Value};

use crate::body::GatewayBody;

pub fn respond(parts: &Parts) -> Response<GatewayBody> {
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(v));
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
