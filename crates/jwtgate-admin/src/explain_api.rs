//! `POST /admin/v1/explain {"token": "...", "request": "GET /path", "route":
//! "..."}` (SPEC §4): the report of `jwtgate token explain`, as JSON, made
//! against the running config: its routes, consumers, providers and their
//! current keys, and this node's blacklist (the one the data plane checks).
//! Never key material; the token itself is not echoed.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::policy::Authenticated;
use serde_json::Value;

use crate::api::AdminState;
use crate::error::AdminError;
use crate::explain::{Explain, Request, Revocation};
use crate::input::json_body;

pub async fn explain(State(s): State<AdminState>, body: Bytes) -> Result<Response, AdminError> {
    let value = json_body(&body)?;
    let Value::Object(map) = &value else {
        return Err(AdminError::field(
            "",
            "expected a JSON object {\"token\": \"...\", \"request\": \"GET /path\", \"route\": \"...\"}",
        ));
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "token" | "request" | "route"))
    {
        return Err(AdminError::field(unknown, "unknown key"));
    }
    let text = |key: &str| -> Result<Option<&str>, AdminError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(AdminError::field(key, "expected a string")),
        }
    };
    let token = text("token")?
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| AdminError::field("token", "is required"))?;
    let token = jwtgate_core::policy::sources::strip_bearer(token.trim());
    let (route, request) = (text("route")?, text("request")?);

    let gw = s.live.gateway();
    let revocations = s.live.revocations();
    let revocation = |auth: &Authenticated| {
        if !revocations.is_loaded() {
            return Revocation::Unknown("this node has not loaded its blacklist yet".into());
        }
        let now = SystemClock.now_unix();
        if let Some(until) = revocations.revoked_until(&auth.revocation.digests(), now) {
            return Revocation::Revoked(until);
        }
        match revocations.cutoff_for(&crate::explain::token_subject(auth), now) {
            Some(c) => Revocation::CutOff(format!("{} at {}", c.key, c.not_before)),
            None => Revocation::NotRevoked(revocations.store().kind()),
        }
    };
    let explain = Explain {
        router: &gw.router,
        auth: gw.auth_context(),
        revocation: &revocation,
    };
    let report = explain
        .report(&Request {
            token,
            route,
            request,
        })
        .map_err(|e| {
            let field = match e {
                crate::explain::UsageError::RequestLine => "request",
                _ => "route",
            };
            AdminError::field(field, e.to_string())
        })?;
    Ok(Json(report).into_response())
}
