//! The OpenAPI 3 document served at `GET /admin/v1/openapi.json`. Paths and
//! methods come from the same table as the router ([`ENDPOINTS`]); what
//! each operation takes and answers is described here, by [`Op`].

use serde_json::{json, Map, Value};

use crate::endpoints::{Endpoint, Op, ENDPOINTS};

pub fn document() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let item = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        if let Value::Object(item) = item {
            item.insert(e.verb.as_str().to_owned(), operation(e));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "jwtgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Routes, their jwt policies, consumers and revocations (SPEC §4). \
                Changes apply to the next request and are written back to the config file. \
                Secrets read as \"***\". A route (and its jwt policy, which carries the route's \
                tag), a consumer or a provider is answered with an ETag; a write whose If-Match \
                names another version is 412 and changes nothing (If-Match: * and \
                If-None-Match: * are taken by the PUTs). Other endpoints give no tag: a write \
                there whose If-Match names one is 412."
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-KEY" }
            },
            "schemas": schemas(),
        },
        "paths": paths,
    })
}

fn operation(e: &Endpoint) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(format!("{:?}", e.op)));
    op.insert("summary".into(), json!(e.summary));
    let params: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if let Some(schema) = request_schema(e.op) {
        let media = if e.op == Op::PatchJwt {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        op.insert(
            "requestBody".into(),
            json!({ "required": true, "content": { media: { "schema": schema } } }),
        );
    }
    let mut responses = responses(e.op);
    if e.keyed() {
        op.insert("security".into(), json!([{ "apiKey": [] }]));
        responses.insert("401".into(), error("missing or invalid X-API-KEY"));
    }
    responses.insert(
        "421".into(),
        error(
            "plain HTTP reached by a host name other than an address, localhost or one of \
             admin.allowed_hosts (DNS rebinding)",
        ),
    );
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn request_schema(op: Op) -> Option<Value> {
    Some(match op {
        Op::PutRoute => schema_ref("Route"),
        Op::PutJwt | Op::PatchJwt => schema_ref("Jwt"),
        Op::PutConsumer => schema_ref("Consumer"),
        Op::PutProvider => schema_ref("Provider"),
        Op::Revoke => schema_ref("Revocation"),
        Op::Explain => schema_ref("ExplainRequest"),
        Op::CutOffSubject | Op::LiftSubject => schema_ref("SubjectRequest"),
        _ => return None,
    })
}

/// A PUT that `If-None-Match: *` makes a create and `If-Match: *` a
/// replacement: `412` when the object exists, or does not, or when
/// `If-Match` names a version (`ETag`) the object is not at.
fn created_only(mut write: Vec<(&'static str, Value)>) -> Vec<(&'static str, Value)> {
    write.push((
        "412",
        error(
            "If-None-Match: * was sent and the object exists, or If-Match: * and it does not \
             (errors locates its name); or If-Match names an entity tag the object is not at \
             (changed since it was read): nothing was written",
        ),
    ));
    write
}

/// The `412` of a write whose `If-Match` names a version the object (a
/// route, for its policy) is not at.
fn stale() -> (&'static str, Value) {
    (
        "412",
        error("If-Match names an entity tag the object is not at (changed since it was read): nothing was written"),
    )
}

/// The `ETag` an object (a route's policy: its route's) is answered with.
fn tagged(mut response: Value) -> Value {
    let etag = json!({
        "description": "the object's version: send it back as If-Match to write only that version",
        "schema": { "type": "string" }
    });
    if let Some(map) = response.as_object_mut() {
        let headers = map.entry("headers").or_insert_with(|| json!({}));
        if let Some(h) = headers.as_object_mut() {
            h.insert("ETag".into(), etag);
        }
    }
    response
}

fn responses(op: Op) -> Map<String, Value> {
    let ok = |schema: Value| json!({ "description": "OK", "content": { "application/json": { "schema": schema } } });
    let list = |key: &str, item: &str| {
        ok(
            json!({ "type": "object", "properties": { key: { "type": "array", "items": schema_ref(item) } } }),
        )
    };
    // A config write that is made may still warn (`jwtgate check`'s warnings).
    let warnings = json!({ "Warning": {
        "description": "one `299 jwtgate \"<location>: <text>\"` per config warning the write brings \
                        (a setting that does nothing, a route never matched); at most 20, the last saying how many more",
        "schema": { "type": "string" }
    } });
    let write = |schema: &str| {
        vec![
            (
                "200",
                tagged(
                    json!({ "description": "replaced", "headers": warnings, "content": { "application/json": { "schema": schema_ref(schema) } } }),
                ),
            ),
            (
                "201",
                tagged(
                    json!({ "description": "created", "headers": warnings, "content": { "application/json": { "schema": schema_ref(schema) } } }),
                ),
            ),
            (
                "400",
                error("invalid body: every invalid field is listed in errors"),
            ),
            ("404", error("route not found (jwt policy: the route)")),
            (
                "409",
                error("refused by a protection, or the config file holds rejected hand edits"),
            ),
            (
                "500",
                error("the config file could not be written; nothing was applied"),
            ),
        ]
    };
    let delete = vec![
        (
            "204",
            json!({ "description": "deleted", "headers": warnings }),
        ),
        ("404", error("not found")),
        ("409", error("refused by protection.undeletable")),
        stale(),
        (
            "500",
            error("the config file could not be written; nothing was applied"),
        ),
    ];
    let entries: Vec<(&str, Value)> = match op {
        Op::ListRoutes => vec![("200", list("routes", "Route"))],
        Op::ListConsumers => vec![("200", list("consumers", "Consumer"))],
        Op::ListProviders => vec![("200", list("providers", "Provider"))],
        Op::GetProvider => vec![
            ("200", tagged(ok(schema_ref("Provider")))),
            ("404", error("not found")),
        ],
        Op::PutProvider => created_only(write("Provider")),
        Op::CutOffSubject => vec![
            ("201", ok(schema_ref("SubjectCutoff"))),
            ("400", error("invalid body")),
            ("404", error("no such consumer or provider")),
            ("503", error("revocation store unavailable")),
        ],
        Op::ListSubjects => vec![("200", list("subjects", "SubjectCutoff"))],
        Op::LiftSubject => vec![
            ("204", json!({ "description": "deleted" })),
            ("400", error("invalid body")),
            ("404", error("no such cut-off, consumer or provider")),
            ("503", error("revocation store unavailable")),
        ],
        Op::Explain => vec![
            ("200", ok(schema_ref("ExplainReport"))),
            (
                "400",
                error("invalid body, an unknown route, or a request line that is not \"METHOD /path\""),
            ),
        ],
        Op::GetRoute => vec![
            ("200", tagged(ok(schema_ref("Route")))),
            ("404", error("not found")),
        ],
        Op::GetJwt => vec![
            ("200", tagged(ok(schema_ref("Jwt")))),
            ("404", error("no such route, or it has no jwt policy")),
        ],
        Op::GetConsumer => vec![
            ("200", tagged(ok(schema_ref("Consumer")))),
            ("404", error("not found")),
        ],
        Op::PutRoute => created_only(write("Route")),
        Op::PutJwt => created_only(write("Jwt")),
        Op::PatchJwt => {
            let mut patch = write("Jwt");
            patch.push(stale());
            patch
        }
        Op::PutConsumer => created_only(write("Consumer")),
        Op::DeleteRoute | Op::DeleteJwt | Op::DeleteConsumer | Op::DeleteProvider => delete,
        Op::Revoke => vec![
            (
                "200",
                json!({ "description": "the token expired long enough ago that every route refuses it: nothing stored", "content": { "application/json": { "schema": {
                "type": "object",
                "properties": { "message": { "type": "string" }, "expires_at": { "type": "integer" } } } } } }),
            ),
            (
                "201",
                json!({ "description": "revoked: durably stored", "content": { "application/json": { "schema": {
                "type": "object",
                "properties": { "message": { "type": "string" }, "expires_at": { "type": "integer", "nullable": true } } } } } }),
            ),
            ("400", error("not a well-formed JWT, or an invalid body")),
            ("503", error("revocation store unavailable")),
        ],
        Op::OpenApi => vec![("200", ok(json!({ "type": "object" })))],
        Op::Status => vec![
            (
                "200",
                ok(json!({ "type": "object", "properties": {
                    "status": { "type": "string", "enum": ["ready"] },
                    "providers": { "type": "object", "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "state": { "type": "string", "enum": ["loading", "ok", "stale", "unavailable"] },
                            "keys": { "type": "integer" },
                            "age_seconds": { "type": "integer", "nullable": true },
                            "error": { "type": "string", "description": "why the last fetch failed (with the admin key only)" }
                        } } },
                    "config_source": { "type": "object", "description": "with etcd; with a config file only while it holds a refused edit", "properties": {
                        "kind": { "type": "string", "enum": ["etcd", "file"] },
                        "state": { "type": "string", "description": "etcd: connecting, following, ..." },
                        "revision": { "type": "integer" },
                        "objects": { "type": "integer" },
                        "refused": { "type": "array", "items": { "type": "object", "properties": {
                            "key": { "type": "string", "description": "the etcd key, or the config file's path" },
                            "mod_revision": { "type": "integer" },
                            "since": { "type": "integer", "description": "file: when it was refused (Unix seconds)" },
                            "outcome": { "type": "string", "enum": ["invalid", "protected"] },
                            "reason": { "type": "string", "description": "only with the X-API-KEY" }
                        } } }
                    } },
                    "revocation_store": { "type": "object", "description": "the blacklist store: whether its last operation (a write, a resync, a feed read, a purge) succeeded; failing leaves the node ready", "properties": {
                        "kind": { "type": "string", "enum": ["embedded", "redis", "redis_cluster"] },
                        "state": { "type": "string", "enum": ["ok", "failing"] },
                        "since": { "type": "integer", "description": "failing: since when (Unix seconds)" },
                        "error": { "type": "string", "description": "failing: the latest error, only with the X-API-KEY" }
                    } }
                } })),
            ),
            ("503", json!({ "description": "starting (waiting_for names what), or stopping" })),
        ],
        Op::Metrics => vec![(
            "200",
            json!({ "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } }),
        )],
    };
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema_ref("Error") } } })
}

fn schemas() -> Value {
    let s = json!({ "type": "string" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let int = json!({ "type": "integer", "minimum": 0 });
    let boolean = json!({ "type": "boolean" });
    let payload_header = json!({ "type": "string", "description": "upstream header carrying the verified token's payload segment as it came (base64url), as Envoy's forward_payload_header; client copies are removed on every route" });
    // Apart: one `json!` of every schema passes the macro's recursion limit.
    let jwt = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "key_claim_name": s, "header": s, "query": s, "cookie": s,
            "hide_credentials": boolean, "required_claims": strings,
            "leeway_seconds": int, "max_lifetime_seconds": int, "realm": s,
            "forward_claims": { "type": "object", "additionalProperties": { "type": "string" } },
            "forward_payload_header": payload_header,
            "required_paths": { "type": "array", "items": { "type": "string" }, "description": "METHOD_PATH; setting it resets not_required_paths" },
            "not_required_paths": { "type": "array", "items": { "type": "string" }, "description": "METHOD_PATH; setting it resets required_paths" },
            "logout_path": s, "use_jwt_blacklist_revoking": boolean, "logout_forward": boolean,
            "protection": {
                "type": "object",
                "additionalProperties": false,
                "properties": { "undeletable": boolean, "immutable": boolean }
            },
            "authorize": { "type": "array", "description": "first rule whose match fits applies", "items": {
                "type": "object",
                "required": ["match"],
                "additionalProperties": false,
                "properties": {
                    "match": { "type": "array", "items": { "type": "string" }, "description": "METHOD_PATH entries" },
                    "scopes": { "type": "array", "items": { "type": "string" }, "description": "all required, in scope or scp" },
                    "any_of": { "type": "object", "additionalProperties": { "type": "array", "items": { "type": "string" } }, "description": "claim path -> one of these values" },
                    "all_of": { "type": "object", "additionalProperties": { "type": "array", "items": { "type": "string" } }, "description": "claim path -> every one of these values" }
                } } },
            "authorize_default": { "type": "string", "enum": ["allow", "deny"] },
            "anonymous_consumer": { "type": "string", "description": "a consumer requests without a token go upstream as" },
            "logout_everywhere_path": { "type": "string", "description": "METHOD_PATH: a valid token there cuts off its subject" },
            "providers": { "type": "array", "items": { "type": "string" }, "description": "names of identity providers whose tokens this route accepts" },
            "consumers": { "type": "boolean", "description": "default true: tokens no provider issued go the consumer-key way" },
            "audiences": { "type": "array", "items": { "type": "string" }, "description": "non-empty: replaces the providers' audiences" }
        }
    });
    json!({
        "Error": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": s,
                "errors": { "type": "array", "items": {
                    "type": "object",
                    "properties": { "field": { "type": "string", "description": "location in the body, e.g. jwt.required_paths[0]; in another object, by its name: routes/orders/jwt.forward_claims" }, "message": s }
                } }
            }
        },
        "Route": {
            "type": "object",
            "required": ["paths", "upstream"],
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "description": "optional in a body: the path names the route" },
                "paths": strings, "methods": strings, "hosts": strings,
                "upstream": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": { "echo": boolean,
                                    "nodes": { "type": "array", "items": { "type": "string" }, "description": "host:port, optionally followed by weight=N (1 to 1000, default 1): the node's share of the route's requests" },
                                    "scheme": { "type": "string", "enum": ["http", "https"] },
                                    "ca_file": { "type": "string", "description": "https only: PEM certificates trusted for the upstream's certificate instead of the system's roots; a path on the node, relative to its config file" },
                                    "connect_timeout_ms": int, "read_timeout_ms": int,
                                    "max_fails": { "type": "integer", "minimum": 0, "maximum": 1000, "description": "failed connects within fail_timeout_ms that leave a node out of the round robin for fail_timeout_ms (nginx's max_fails); 0: never; default 1" },
                                    "fail_timeout_ms": { "type": "integer", "minimum": 1, "maximum": 86400000, "description": "how long a node is left out, and the window its failed connects are counted in; default 10000" } }
                },
                "cors": {
                    "type": "object",
                    "required": ["allow_origins"],
                    "additionalProperties": false,
                    "properties": {
                        "allow_origins": { "type": "array", "items": { "type": "string" }, "description": "origins (scheme://host[:port]) or [\"*\"]" },
                        "allow_methods": strings, "allow_headers": strings, "expose_headers": strings,
                        "allow_credentials": boolean, "max_age_seconds": int
                    }
                },
                "websocket": { "type": "boolean", "description": "pass WebSocket handshakes (GET with Upgrade: websocket) to the upstream and tunnel the connection once it answers 101; an open WebSocket is closed when its token is revoked or its subject cut off; default false" },
                "websocket_close_at_exp": { "type": "boolean", "description": "also close an open WebSocket when its token expires (exp plus the route's leeway); needs websocket: true; default false" },
                "jwt": schema_ref("Jwt")
            }
        },
        "Jwt": jwt,
        "Consumer": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "username": { "type": "string", "description": "optional in a body: the path names the consumer" },
                "custom_id": s,
                "jwt": {
                    "type": "object",
                    "description": "the consumer's credential; absent: a consumer that signs no tokens (an anonymous_consumer, or one a provider's consumer_claim names)",
                    "required": ["key"],
                    "additionalProperties": false,
                    "properties": {
                        "key": s, "algorithm": s,
                        "secret": { "type": "string", "description": "reads \"***\"; send \"***\" back to keep it" },
                        "base64_secret": boolean, "public_key": s, "public_key_file": s
                    }
                }
            }
        },
        "Provider": {
            "type": "object",
            "required": ["issuer"],
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "description": "optional in a body: the path names the provider" },
                "issuer": { "type": "string", "description": "must equal the token's iss exactly" },
                "discovery": boolean,
                "jwks_uri": { "type": "string", "description": "its user part and query values read \"***\"; send it back as shown to keep it" },
                "jwks_file": s,
                "algorithms": { "type": "array", "items": { "type": "string" }, "description": "default [RS256]; HS* and none are refused" },
                "audiences": strings,
                "refresh_seconds": int, "kid_miss_interval_seconds": int, "max_stale_seconds": int,
                "fetch_timeout_ms": int, "ca_file": s, "consumer_claim": s, "client_id": s,
                "backchannel_logout_path": s
            }
        },
        "SubjectRequest": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "consumer": s, "provider": s,
                "subject": { "type": "string", "description": "a consumer's token sub (optional: the whole consumer), a provider's (required)" },
                "sid": { "type": "string", "description": "with a provider, instead of subject: a session cut-off, as a back-channel logout records it" }
            }
        },
        "SubjectCutoff": {
            "type": "object",
            "properties": {
                "consumer": s, "provider": s, "subject": s, "sid": s,
                "not_before": { "type": "integer", "description": "tokens issued at or before it (Unix seconds), or without iat, are refused" },
                "expires_at": { "type": "integer", "description": "when it is forgotten (store.subject_retention_seconds)" }
            }
        },
        "ExplainRequest": {
            "type": "object",
            "required": ["token"],
            "additionalProperties": false,
            "properties": {
                "token": s,
                "request": { "type": "string", "description": "e.g. \"GET /v1/orders\"" },
                "route": s
            }
        },
        "ExplainReport": {
            "type": "object",
            "properties": {
                "verdict": { "type": "string", "enum": ["accepted", "refused", "undetermined"] },
                "status": { "type": "integer" },
                "message": s, "reason": s, "route": s,
                "steps": { "type": "array", "items": { "type": "object", "properties": { "step": s, "detail": s } } }
            }
        },
        "Revocation": {
            "type": "object",
            "required": ["token"],
            "additionalProperties": false,
            "properties": { "token": s }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_documented_with_its_parameters_and_key() {
        let doc = document();
        let mut operations = 0;
        for e in ENDPOINTS {
            let op = &doc["paths"][e.path][e.verb.as_str()];
            assert!(op.is_object(), "{:?} {} undocumented", e.verb, e.path);
            assert_eq!(op["security"].is_array(), e.keyed(), "{}", e.path);
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            for seg in e.path.split('/').filter(|s| s.starts_with('{')) {
                assert!(
                    declared.contains(&seg.trim_matches(['{', '}'])),
                    "{}",
                    e.path
                );
            }
            operations += 1;
        }
        let documented: usize = doc["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .values()
                    .filter_map(Value::as_object)
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(
            documented, operations,
            "nothing documented beyond the table"
        );
    }
}
