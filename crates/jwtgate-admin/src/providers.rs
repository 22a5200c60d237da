//! `/admin/v1/providers`: identity providers (SPEC §3.6). Bodies are read
//! by the config file's reader and go live through
//! [`LiveConfig::update`], like routes and consumers; a provider whose
//! origin (issuer, key source, algorithms, trust) is unchanged keeps its
//! fetched keys. Deleting a provider a route still lists is refused with
//! the route's location.
//!
//! [`LiveConfig::update`]: crate::live::LiveConfig::update

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use jwtgate_config::{read_provider, RawConfig, RawProvider, ReadItem};
use serde::Serialize;

use crate::api::{AdminState, Name};
use crate::error::AdminError;
use crate::input::{json_body, name_from_path, no_new_env_refs};
use crate::live::Edit;
use crate::routes::created_or_ok;

/// `{"providers": [...]}`.
#[derive(Serialize)]
pub struct ProviderList<'a> {
    providers: &'a [RawProvider],
}

pub async fn list(State(s): State<AdminState>) -> Response {
    let source = s.live.source();
    axum::response::IntoResponse::into_response(Json(ProviderList {
        providers: &source.providers,
    }))
}

pub async fn get(
    State(s): State<AdminState>,
    Name(name): Name,
) -> Result<Json<RawProvider>, AdminError> {
    let source = s.live.source();
    let (_, p) = find(&source, &name)?;
    Ok(Json(p.clone()))
}

pub async fn put(
    State(s): State<AdminState>,
    Name(name): Name,
    body: Bytes,
) -> Result<Response, AdminError> {
    let mut value = json_body(&body)?;
    name_from_path(&mut value, "name", &name)?;
    let read = read_provider(&value, "");
    let (created, provider) = s
        .live
        .update(|current| {
            let ReadItem {
                item: provider,
                errors: problems,
            } = read.clone();
            let old = find(current, &name).ok();
            no_new_env_refs(&provider, old.map(|(_, p)| p))?;
            let mut source = current.clone();
            let (i, created) = match old {
                Some((i, _)) => (i, false),
                None => {
                    source.providers.push(RawProvider::default());
                    (source.providers.len() - 1, true)
                }
            };
            if let Some(slot) = source.providers.get_mut(i) {
                *slot = provider.clone();
            }
            Ok(Edit {
                source,
                at: format!("providers[{i}]"),
                what: format!("provider {name:?}"),
                reply: (created, provider.clone()),
                problems,
            })
        })
        .await?;
    Ok(created_or_ok(created, Json(provider)))
}

pub async fn delete(
    State(s): State<AdminState>,
    Name(name): Name,
) -> Result<StatusCode, AdminError> {
    s.live
        .update(|current| {
            let (i, _) = find(current, &name)?;
            let mut source = current.clone();
            source.providers.remove(i);
            Ok(Edit {
                source,
                at: String::new(),
                what: format!("deletion of provider {name:?}"),
                reply: (),
                problems: Vec::new(),
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn find<'a>(source: &'a RawConfig, name: &str) -> Result<(usize, &'a RawProvider), AdminError> {
    source
        .providers
        .iter()
        .enumerate()
        .find(|(_, p)| p.name == name)
        .ok_or_else(|| AdminError::NotFound(format!("provider {name:?} not found")))
}
