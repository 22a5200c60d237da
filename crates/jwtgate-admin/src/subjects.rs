//! `/admin/v1/revocations/subjects` (SPEC §3.10): log a subject out
//! everywhere. `POST {"consumer": "alice"[, "subject": "u-1"]}` or
//! `{"provider": "corp", "subject": "u-1"}` (or `"sid"`: a session) records
//! a cut-off at the current second (`201`, the entry); `DELETE` with the same body removes it (`204`,
//! `404` when there is none); `GET` lists them. Writes are acknowledged
//! only once the store has them durably (else `503`), and reach every node
//! through the same feed as revocations.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::MAX_TOKEN_BYTES;
use jwtgate_proxy::logout;
use jwtgate_proxy::Gateway;
use jwtgate_store::{Cutoff, Owner, Subject, SubjectKey};
use serde_json::{json, Map, Value};
use tracing::info;

use crate::api::AdminState;
use crate::error::AdminError;
use crate::input::{json_body, Members};
use crate::warnings::Warnings;

/// A cut-off as the API shows it.
fn entry(c: &Cutoff) -> Value {
    let mut v = Map::new();
    match &c.key.owner {
        Owner::Consumer(n) => v.insert("consumer".into(), json!(n)),
        Owner::Provider(n) => v.insert("provider".into(), json!(n)),
    };
    match &c.key.subject {
        Subject::Every => {}
        Subject::Sub(s) => {
            v.insert("subject".into(), json!(s));
        }
        Subject::Sid(s) => {
            v.insert("sid".into(), json!(s));
        }
    }
    v.insert("not_before".into(), json!(c.not_before));
    v.insert("expires_at".into(), json!(c.expires_at));
    Value::Object(v)
}

pub async fn list(State(s): State<AdminState>) -> Response {
    let mut all = s.live.revocations().cutoffs(SystemClock.now_unix());
    all.sort_by_key(|c| c.key.encode());
    let subjects: Vec<Value> = all.iter().map(entry).collect();
    Json(json!({ "subjects": subjects })).into_response()
}

pub async fn create(State(s): State<AdminState>, body: Bytes) -> Result<Response, AdminError> {
    let key = subject_key(&s, &body, false)?;
    let gw = s.live.gateway();
    let cutoff = logout::cut_off(&gw, key)
        .await
        .map_err(|e| AdminError::StoreUnavailable(e.to_string()))?;
    info!(target: "jwtgate::admin", cutoff = %cutoff.key, not_before = cutoff.not_before, "subject logged out everywhere through the admin API");
    let warnings = Warnings(refuses_nothing(&gw, &cutoff.key).into_iter().collect());
    Ok((StatusCode::CREATED, warnings, Json(entry(&cutoff))).into_response())
}

/// Why a cut-off can refuse no token under the running config: its
/// consumer has no credential (it signs no tokens) and no provider's
/// `consumer_claim` names consumers; the anonymous consumer's requests
/// carry no token to refuse. It is kept all the same: a provider may be
/// given a `consumer_claim` later.
fn refuses_nothing(gw: &Gateway, key: &SubjectKey) -> Option<String> {
    let Owner::Consumer(name) = &key.owner else {
        return None;
    };
    let signs_none = gw
        .consumers
        .by_username(name)
        .is_some_and(|c| c.credential.is_none());
    let named_by_providers = gw
        .providers
        .iter()
        .any(|p| p.consumer_claim.as_deref().is_some_and(|c| !c.is_empty()));
    (signs_none && !named_by_providers).then(|| {
        format!(
            "consumer {name:?} has no jwt credential and no provider has a consumer_claim: \
             no token runs as it, so this cut-off refuses nothing (anonymous requests carry \
             no token)"
        )
    })
}

pub async fn delete(State(s): State<AdminState>, body: Bytes) -> Result<StatusCode, AdminError> {
    let key = subject_key(&s, &body, true)?;
    let found = s
        .live
        .revocations()
        .lift(&key)
        .await
        .map_err(|e| AdminError::StoreUnavailable(e.to_string()))?;
    if !found {
        return Err(AdminError::NotFound(format!("no cut-off for {key}")));
    }
    info!(target: "jwtgate::admin", cutoff = %key, "subject cut-off deleted through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

/// The body's subject, its owner checked against the running config (`404`
/// for an unknown consumer or provider) unless `deleting`: a cut-off may
/// outlive its owner. A provider's session (`sid`, as a back-channel
/// logout records it) may be named instead of a subject, so that one lifted
/// by mistake can be made again (beyond SPEC §3.10).
fn subject_key(s: &AdminState, body: &Bytes, deleting: bool) -> Result<SubjectKey, AdminError> {
    let value = json_body(body)?;
    let mut members = Members::read(
        &value,
        &["consumer", "provider", "subject", "sid"],
        "{\"consumer\": ...[, \"subject\": ...]} or {\"provider\": ..., \"subject\"|\"sid\": ...}",
    )?;
    // Longer than a whole token may be, no token can carry it: stored, it
    // would only fill the store and every node's memory.
    let mut text = |key: &str| members.text(key, MAX_TOKEN_BYTES).map(str::to_owned);
    let (consumer, provider) = (text("consumer"), text("provider"));
    let (subject, sid) = (text("subject"), text("sid"));
    members.finish()?;
    let gw = s.live.gateway();
    let key = match (consumer, provider) {
        (Some(_), Some(_)) => {
            return Err(AdminError::field(
                "provider",
                "name a consumer or a provider, not both",
            ))
        }
        (None, None) => {
            return Err(AdminError::field(
                "consumer",
                "name a consumer or a provider",
            ))
        }
        (Some(c), None) => {
            if sid.is_some() {
                return Err(AdminError::field(
                    "sid",
                    "is a provider's (back-channel logout)",
                ));
            }
            // A cut-off outlives its consumer: lifting one whose consumer
            // is gone must still be possible (re-created, it would refuse
            // the new consumer's tokens).
            if !deleting && gw.consumers.by_username(&c).is_none() {
                return Err(AdminError::NotFound(format!("consumer {c:?} not found")));
            }
            SubjectKey {
                owner: Owner::Consumer(c),
                subject: subject.map_or(Subject::Every, Subject::Sub),
            }
        }
        (None, Some(p)) => {
            if !deleting && gw.providers.by_name(&p).is_none() {
                return Err(AdminError::NotFound(format!("provider {p:?} not found")));
            }
            let subject = match (subject, sid) {
                (Some(s), None) => Subject::Sub(s),
                (None, Some(s)) => Subject::Sid(s),
                (Some(_), Some(_)) => {
                    return Err(AdminError::field(
                        "sid",
                        "name a subject or a sid, not both",
                    ))
                }
                (None, None) => {
                    return Err(AdminError::field(
                        "subject",
                        "is required with a provider (its tokens are told apart by sub)",
                    ))
                }
            };
            SubjectKey {
                owner: Owner::Provider(p),
                subject,
            }
        }
    };
    Ok(key)
}
