//! `/admin/v1/consumers`: consumers and their credentials. A secret is
//! never returned (it reads [`MASK`]); sending [`MASK`] back keeps the
//! stored secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use jwtgate_config::{read_consumer, RawConfig, RawConsumer, ReadItem};
use serde::Serialize;

use crate::api::{AdminState, Name};
use crate::error::AdminError;
use crate::input::{json_body, name_from_path, no_new_env_refs, MASK};
use crate::live::Edit;
use crate::routes::created_or_ok;

/// A consumer as GET shows it.
pub fn masked(c: &RawConsumer) -> RawConsumer {
    let mut c = c.clone();
    if c.jwt.secret.is_some() {
        c.jwt.secret = Some(MASK.into());
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

pub async fn get(
    State(s): State<AdminState>,
    Name(name): Name,
) -> Result<Json<RawConsumer>, AdminError> {
    let source = s.live.source();
    let (_, c) = find(&source, &name)?;
    Ok(Json(masked(c)))
}

pub async fn put(
    State(s): State<AdminState>,
    Name(name): Name,
    body: Bytes,
) -> Result<Response, AdminError> {
    let mut value = json_body(&body)?;
    name_from_path(&mut value, "username", &name)?;
    let read = read_consumer(&value, "");
    let (created, consumer) = s
        .live
        .update(|current| {
            let ReadItem {
                item: mut consumer,
                errors: problems,
            } = read.clone();
            let old = find(current, &name).ok();
            if consumer.jwt.secret.as_deref() == Some(MASK) {
                let stored = old.and_then(|(_, c)| c.jwt.secret.clone());
                consumer.jwt.secret = Some(stored.ok_or_else(|| {
                    AdminError::field(
                        "jwt.secret",
                        format!("{MASK:?} is the masked value; send the real secret"),
                    )
                })?);
            }
            no_new_env_refs(&consumer, old.map(|(_, c)| c))?;
            let mut source = current.clone();
            let (i, created) = match old {
                Some((i, _)) => (i, false),
                None => {
                    source.consumers.push(RawConsumer::default());
                    (source.consumers.len() - 1, true)
                }
            };
            if let Some(slot) = source.consumers.get_mut(i) {
                *slot = consumer.clone();
            }
            Ok(Edit {
                source,
                at: format!("consumers[{i}]"),
                what: format!("consumer {name:?}"),
                reply: (created, masked(&consumer)),
                problems,
            })
        })
        .await?;
    Ok(created_or_ok(created, Json(consumer)))
}

pub async fn delete(
    State(s): State<AdminState>,
    Name(name): Name,
) -> Result<StatusCode, AdminError> {
    s.live
        .update(|current| {
            let (i, _) = find(current, &name)?;
            let mut source = current.clone();
            source.consumers.remove(i);
            Ok(Edit {
                source,
                at: String::new(),
                what: format!("deletion of consumer {name:?}"),
                reply: (),
                problems: Vec::new(),
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn find<'a>(source: &'a RawConfig, name: &str) -> Result<(usize, &'a RawConsumer), AdminError> {
    source
        .consumers
        .iter()
        .enumerate()
        .find(|(_, c)| c.username == name)
        .ok_or_else(|| AdminError::NotFound(format!("consumer {name:?} not found")))
}
