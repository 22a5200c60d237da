//! `/admin/v1/providers`: identity providers (SPEC §3.6). Bodies are read
//! by the config file's reader and go live through
//! [`LiveConfig::update`], like routes and consumers; a provider whose
//! origin (issuer, key source, algorithms, trust) is unchanged keeps its
//! fetched keys. Deleting a provider a route still lists is refused with
//! the route's location.
//!
//! [`LiveConfig::update`]: crate::live::LiveConfig::update

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use jwtgate_config::{read_provider, RawProvider, ReadItem};
use serde::Serialize;

use crate::api::{AdminState, Name};
use crate::error::AdminError;
use crate::input::{json_body, name_from_path, new_name_is_plain, no_new_env_refs};
use crate::named::{created_or_ok, find, put_edit};

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
    let (_, p) = find::<RawProvider>(&source, &name)?;
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
    let ((created, provider), warnings) = s
        .live
        .update(|current| {
            let ReadItem {
                item: provider,
                errors: problems,
            } = read.clone();
            let old = find::<RawProvider>(current, &name).ok().map(|(_, p)| p);
            new_name_is_plain("name", &name, old.is_some())?;
            no_new_env_refs(&provider, old)?;
            Ok(put_edit(current, &name, provider, problems))
        })
        .await?;
    Ok(created_or_ok(created, (warnings, Json(provider))))
}
