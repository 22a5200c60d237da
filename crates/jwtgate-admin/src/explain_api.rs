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

use crate::api::AdminState;
use crate::error::AdminError;
use crate::explain::{Explain, Request, Revocation, UsageError};
use crate::input::{json_body, Members};

pub async fn explain(State(s): State<AdminState>, body: Bytes) -> Result<Response, AdminError> {
    let value = json_body(&body)?;
    let mut members = Members::read(
        &value,
        &["token", "request", "route"],
        "{\"token\": \"...\", \"request\": \"GET /path\", \"route\": \"...\"}",
    )?;
    let token = members.required("token", usize::MAX);
    if token.is_some_and(|t| t.trim().is_empty()) {
        members.problem("token", "must not be empty");
    }
    let (route, request) = (
        members.nullable_text("route", usize::MAX),
        members.nullable_text("request", usize::MAX),
    );
    let gw = s.live.gateway();
    // Said with the body's other problems, not one at a time (SPEC §4).
    if request.is_some_and(|line| crate::explain::request_line(line).is_none()) {
        members.problem("request", UsageError::RequestLine.to_string());
    }
    if let Some(name) = route.filter(|name| gw.router.by_name(name).is_none()) {
        members.problem("route", UsageError::NoRoute(name.to_owned()).to_string());
    }
    members.finish()?;
    let token = token.ok_or_else(|| AdminError::field("token", "is required"))?;
    let token = jwtgate_core::policy::sources::strip_bearer(token.trim());

    let revocations = s.live.revocations();
    let revocation = |auth: &Authenticated| {
        if !revocations.is_loaded() {
            return Revocation::Unknown("this node has not loaded its blacklist yet".into());
        }
        let now = SystemClock.now_unix();
        if let Some(until) = revocations.revoked_until(&auth.revocation.digests(), now) {
            return Revocation::Revoked(until);
        }
        match crate::explain::token_subject(auth).cut_off_by(revocations, now) {
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
