//! `/admin/v1/routes`: routes with their `jwt` policy, and each route's
//! policy on its own (`/routes/{name}/jwt`). Bodies are read by the config
//! file's reader; every change goes through [`LiveConfig::update`].
//!
//! Path modes (SPEC §3.3): through the API, setting `required_paths` resets
//! `not_required_paths` and the reverse (`policy_edit`).
//!
//! [`LiveConfig::update`]: crate::live::LiveConfig::update

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use jwtgate_config::{read_jwt, read_route, ObjectKind, RawJwt, RawRoute, ReadItem};
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::{AdminState, Name};
use crate::error::AdminError;
use crate::etag;
use crate::input::{json_body, name_from_path, new_name_is_plain, no_new_env_refs, Precondition};
use crate::live::Edit;
use crate::named::{created_or_ok, find, put_edit};
use crate::policy_edit::{is_empty_list, merge_patch, switch_mode};

/// `{"routes": [...]}`, fields in the same order as a single GET.
#[derive(Serialize)]
struct RouteList<'a> {
    routes: &'a [RawRoute],
}

pub async fn list(State(s): State<AdminState>) -> Response {
    let source = s.live.source();
    Json(RouteList {
        routes: &source.routes,
    })
    .into_response()
}

pub async fn get(State(s): State<AdminState>, Name(name): Name) -> Result<Response, AdminError> {
    let source = s.live.source();
    let (_, route) = find::<RawRoute>(&source, &name)?;
    Ok((etag::header(&s.tagger().await.tag(route)), Json(route)).into_response())
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
    let mut read = read_route(&value, "");
    read.errors.splice(0..0, misnamed);
    let tags = s.tagger().await;
    let ((created, route), warnings) = s
        .live
        .update(|current| {
            let ReadItem {
                item: mut route,
                errors: problems,
            } = read.clone();
            let old = find::<RawRoute>(current, &name).ok().map(|(_, r)| r);
            let at = old.map(|r| tags.tag(r));
            precondition.check(old.is_some(), at.as_deref(), "a route", "name", &name)?;
            new_name_is_plain("name", &name, old.is_some())?;
            no_new_env_refs(&route, old)?;
            if let Some(jwt) = &mut route.jwt {
                switch_mode(old.and_then(|r| r.jwt.as_ref()), jwt);
            }
            Ok(put_edit(current, &name, route, problems, &precondition))
        })
        .await?;
    let tag = etag::header(&tags.tag(&route));
    Ok(created_or_ok(created, (warnings, tag, Json(route))))
}

/// A route's policy, with its route's entity tag.
pub async fn get_jwt(
    State(s): State<AdminState>,
    Name(name): Name,
) -> Result<Response, AdminError> {
    let source = s.live.source();
    let (_, route) = find::<RawRoute>(&source, &name)?;
    let tag = etag::header(&s.tagger().await.tag(route));
    Ok((tag, Json(policy_of(route)?)).into_response())
}

pub async fn put_jwt(
    State(s): State<AdminState>,
    Name(name): Name,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    let value = json_body(&body)?;
    let read = read_jwt(&value, "");
    let route = name.clone();
    let (versions, presence) = Precondition::of(&headers).split();
    set_policy(&s, &name, &versions, move |old| {
        presence.check(old.is_some(), None, "a jwt policy on the route", "", &route)?;
        let mut read = read.clone();
        switch_mode(old, &mut read.item);
        Ok(read)
    })
    .await
}

/// JSON merge patch (RFC 7396) of the policy: fields present are set, fields
/// set to `null` return to their default, others are kept.
pub async fn patch_jwt(
    State(s): State<AdminState>,
    Name(name): Name,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    let precondition = Precondition::of(&headers);
    let patch = json_body(&body)?;
    let Value::Object(patch) = patch else {
        return Err(AdminError::field("", "a merge patch must be a JSON object"));
    };
    let route = name.clone();
    set_policy(&s, &name, &precondition, move |old| {
        let old = old.ok_or_else(|| no_policy(&route))?;
        let mut merged = serde_json::to_value(old).unwrap_or_else(|_| json!({}));
        merge_patch(&mut merged, &patch);
        // Setting one path mode resets the other (unless both are sent).
        for (set, other) in [
            ("required_paths", "not_required_paths"),
            ("not_required_paths", "required_paths"),
        ] {
            let sets = patch.get(set).is_some_and(|v| !is_empty_list(v));
            if sets && !patch.contains_key(other) {
                if let Value::Object(m) = &mut merged {
                    m.remove(other);
                }
            }
        }
        Ok(read_jwt(&merged, ""))
    })
    .await
}

pub async fn delete_jwt(
    State(s): State<AdminState>,
    Name(name): Name,
    headers: http::HeaderMap,
) -> Result<Response, AdminError> {
    let precondition = Precondition::of(&headers);
    let tags = s.tagger().await;
    let (tag, warnings) = s
        .live
        .update(|current| {
            let (i, route) = find::<RawRoute>(current, &name)?;
            policy_of(route)?;
            let at = tags.tag(route);
            precondition.check(true, Some(&at), "a route", "", &name)?;
            let mut source = current.clone();
            let mut tag = String::new();
            if let Some(r) = source.routes.get_mut(i) {
                r.jwt = None;
                tag = tags.tag(r);
            }
            Ok(Edit {
                source,
                object: (ObjectKind::Route, name.to_owned()),
                at: String::new(),
                what: format!("deletion of the jwt policy of route {name:?}"),
                reply: tag,
                problems: Vec::new(),
                versioned: precondition.names_versions(),
                whole: false,
            })
        })
        .await?;
    // The route stays, at a new version: its tag, for the next write.
    Ok((
        axum::http::StatusCode::NO_CONTENT,
        warnings,
        etag::header(&tag),
    )
        .into_response())
}

/// Creates or replaces a route's policy with what `make` builds from the
/// current one, if the route meets `precondition`'s entity tags (the
/// policy's own `*` conditions are `make`'s). The answer carries the
/// route's new tag.
async fn set_policy(
    s: &AdminState,
    name: &str,
    precondition: &Precondition,
    make: impl Fn(Option<&RawJwt>) -> Result<ReadItem<RawJwt>, AdminError> + Send + Sync,
) -> Result<Response, AdminError> {
    let tags = s.tagger().await;
    let ((created, jwt, tag), warnings) = s
        .live
        .update(|current| {
            let (i, route) = find::<RawRoute>(current, name)?;
            precondition.check(true, Some(&tags.tag(route)), "a route", "", name)?;
            let old = route.jwt.as_ref();
            let ReadItem {
                item: jwt,
                errors: problems,
            } = make(old)?;
            no_new_env_refs(&jwt, old)?;
            let mut source = current.clone();
            let mut tag = String::new();
            if let Some(r) = source.routes.get_mut(i) {
                r.jwt = Some(jwt.clone());
                tag = tags.tag(r);
            }
            Ok(Edit {
                source,
                object: (ObjectKind::Route, name.to_owned()),
                at: format!("routes[{i}].jwt"),
                what: format!("jwt policy of route {name:?}"),
                reply: (old.is_none(), jwt, tag),
                problems,
                versioned: precondition.names_versions(),
                whole: false,
            })
        })
        .await?;
    Ok(created_or_ok(
        created,
        (warnings, etag::header(&tag), Json(jwt)),
    ))
}

fn policy_of(route: &RawRoute) -> Result<&RawJwt, AdminError> {
    route.jwt.as_ref().ok_or_else(|| no_policy(&route.name))
}

fn no_policy(name: &str) -> AdminError {
    AdminError::NotFound(format!("route {name:?} has no jwt policy"))
}
