//! `/admin/v1/providers`: identity providers (SPEC §3.6). Bodies are read
//! by the config file's reader and go live through
//! [`LiveConfig::update`], like routes and consumers; a provider whose
//! origin (issuer, key source, algorithms, trust) is unchanged keeps its
//! fetched keys. Deleting a provider a route still lists is refused with
//! the route's location. A `jwks_uri`'s credentials (user part, query
//! values) are never returned: they read `***`, and sending the URL back
//! as shown keeps the stored one, as a consumer's secret does.
//!
//! [`LiveConfig::update`]: crate::live::LiveConfig::update

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use jwtgate_config::{read_provider, RawProvider, ReadItem};
use jwtgate_core::redact::url_for_display;
use serde::Serialize;

use crate::api::{AdminState, Name};
use crate::error::AdminError;
use crate::etag;
use crate::input::{
    json_body, name_from_path, new_name_is_plain, no_new_env_refs, Precondition, MASK,
};
use crate::named::{created_or_ok, find, put_edit};

/// A provider as GET shows it: the `jwks_uri` without its credentials.
pub fn masked(p: &RawProvider) -> RawProvider {
    let mut p = p.clone();
    p.jwks_uri = p.jwks_uri.as_deref().map(url_for_display);
    p
}

/// `{"providers": [...]}`.
#[derive(Serialize)]
pub struct ProviderList {
    providers: Vec<RawProvider>,
}

pub async fn list(State(s): State<AdminState>) -> Response {
    let providers = s.live.source().providers.iter().map(masked).collect();
    Json(ProviderList { providers }).into_response()
}

pub async fn get(State(s): State<AdminState>, Name(name): Name) -> Result<Response, AdminError> {
    let source = s.live.source();
    let (_, p) = find::<RawProvider>(&source, &name)?;
    Ok((etag::header(&s.tagger().await.tag(p)), Json(masked(p))).into_response())
}

/// A `jwks_uri` sent back as GET showed it is the stored one; a masked
/// value that is not is refused rather than stored.
fn unmask(sent: &mut Option<String>, stored: Option<&str>) -> Result<(), AdminError> {
    let Some(uri) = sent.as_deref().filter(|u| u.contains(MASK)) else {
        return Ok(());
    };
    match stored {
        Some(stored) if url_for_display(stored) == uri => {
            *sent = Some(stored.to_owned());
            Ok(())
        }
        _ => Err(AdminError::field(
            "jwks_uri",
            format!("{MASK:?} marks a masked credential; send the real URL"),
        )),
    }
}

pub async fn put(
    State(s): State<AdminState>,
    Name(name): Name,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    let precondition = Precondition::of(&headers);
    let mut value = json_body(&body)?;
    let misnamed = name_from_path(&mut value, "name", &name);
    let mut read = read_provider(&value, "");
    read.errors.splice(0..0, misnamed);
    let tags = s.tagger().await;
    let ((created, provider), warnings) = s
        .live
        .update(|current| {
            let ReadItem {
                item: mut provider,
                errors: problems,
            } = read.clone();
            let old = find::<RawProvider>(current, &name).ok().map(|(_, p)| p);
            let at = old.map(|p| tags.tag(p));
            precondition.check(old.is_some(), at.as_deref(), "a provider", "name", &name)?;
            new_name_is_plain("name", &name, old.is_some())?;
            unmask(
                &mut provider.jwks_uri,
                old.and_then(|p| p.jwks_uri.as_deref()),
            )?;
            no_new_env_refs(&provider, old)?;
            Ok(put_edit(current, &name, provider, problems, &precondition))
        })
        .await?;
    let tag = etag::header(&tags.tag(&provider));
    Ok(created_or_ok(
        created,
        (warnings, tag, Json(masked(&provider))),
    ))
}
