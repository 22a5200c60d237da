//! `/admin/v1/consumers`: consumers and their credentials. A secret is
//! never returned (it reads [`MASK`]); sending [`MASK`] back keeps the
//! stored secret.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use jwtgate_config::{read_consumer, RawConsumer, ReadItem};
use serde::Serialize;

use crate::api::{AdminState, Name};
use crate::error::AdminError;
use crate::etag;
use crate::input::{
    json_body, name_from_path, new_name_is_plain, no_new_env_refs, Precondition, MASK,
};
use crate::named::{created_or_ok, find, put_edit};

/// A consumer as GET shows it.
pub fn masked(c: &RawConsumer) -> RawConsumer {
    let mut c = c.clone();
    if let Some(secret) = c.jwt.as_mut().and_then(|j| j.secret.as_mut()) {
        *secret = MASK.into();
    }
    c
}

/// `{"consumers": [...]}`, fields in the same order as a single GET.
#[derive(Serialize)]
pub struct ConsumerList {
    consumers: Vec<RawConsumer>,
}

pub async fn list(State(s): State<AdminState>) -> Json<ConsumerList> {
    let consumers = s.live.source().consumers.iter().map(masked).collect();
    Json(ConsumerList { consumers })
}

pub async fn get(State(s): State<AdminState>, Name(name): Name) -> Result<Response, AdminError> {
    let source = s.live.source();
    let (_, c) = find::<RawConsumer>(&source, &name)?;
    Ok((etag::header(&s.tagger().await.tag(c)), Json(masked(c))).into_response())
}

pub async fn put(
    State(s): State<AdminState>,
    Name(name): Name,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    let precondition = Precondition::of(&headers);
    let mut value = json_body(&body)?;
    let misnamed = name_from_path(&mut value, "username", &name);
    let mut read = read_consumer(&value, "");
    read.errors.splice(0..0, misnamed);
    let mut dropped_credential = false;
    let tags = s.tagger().await;
    let ((created, consumer), mut warnings) = s
        .live
        .update(|current| {
            let ReadItem {
                item: mut consumer,
                errors: problems,
            } = read.clone();
            let old = find::<RawConsumer>(current, &name).ok().map(|(_, c)| c);
            let at = old.map(|c| tags.tag(c));
            precondition.check(
                old.is_some(),
                at.as_deref(),
                "a consumer",
                "username",
                &name,
            )?;
            new_name_is_plain("username", &name, old.is_some())?;
            if let Some(secret) = consumer
                .jwt
                .as_mut()
                .and_then(|j| j.secret.as_mut())
                .filter(|s| *s == MASK)
            {
                let stored = old.and_then(|c| c.jwt.as_ref()?.secret.clone());
                *secret = stored.ok_or_else(|| {
                    AdminError::field(
                        "jwt.secret",
                        format!("{MASK:?} is the masked value; send the real secret"),
                    )
                })?;
            }
            no_new_env_refs(&consumer, old)?;
            dropped_credential = consumer.jwt.is_none() && old.is_some_and(|c| c.jwt.is_some());
            Ok(put_edit(current, &name, consumer, problems, &precondition))
        })
        .await?;
    if dropped_credential {
        // A PUT replaces the whole consumer: a body without `jwt` (an
        // edit of custom_id alone, say) removes the credential.
        warnings.0.push(format!(
            "jwt: removed with this write: consumer {name:?} has no credential now, and the \
             tokens it signed are refused (PUT replaces the whole consumer; send its jwt to \
             keep it)"
        ));
    }
    let tag = etag::header(&tags.tag(&consumer));
    Ok(created_or_ok(
        created,
        (warnings, tag, Json(masked(&consumer))),
    ))
}
