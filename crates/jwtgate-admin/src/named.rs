//! What routes, consumers and providers have in common in the admin API:
//! each is an item of one of the config's lists, known by its name; a PUT
//! puts it in place (where the old one stood, or at the end), a DELETE takes
//! it out, and each is one [`Edit`] of the current source. What differs
//! (the route's path modes, the consumer's masked secret, the body's reader)
//! stays in the item's own module.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jwtgate_config::{ConfigError, ObjectKind, RawConfig, RawConsumer, RawProvider, RawRoute};

use crate::api::{AdminState, Name};
use crate::error::AdminError;
use crate::input::Precondition;
use crate::live::Edit;
use crate::warnings::Warnings;

/// An item of one of the config's named lists.
pub trait Named: Clone + Default + serde::Serialize + Send + Sync + 'static {
    /// The list's key in the config (`routes`): the edit's location.
    const LIST: &'static str;
    /// One item, in messages (`route`).
    const KIND: &'static str;
    /// Its kind as a shared object (etcd's key).
    const OBJECT: ObjectKind;
    fn list(source: &RawConfig) -> &Vec<Self>;
    fn list_mut(source: &mut RawConfig) -> &mut Vec<Self>;
    fn name(&self) -> &str;
}

/// `impl Named`: the item type, its list's field in [`RawConfig`], what one
/// is called, and the field that names it.
macro_rules! named {
    ($item:ty, $list:ident, $kind:literal, $object:ident, $name:ident) => {
        impl Named for $item {
            const LIST: &'static str = stringify!($list);
            const KIND: &'static str = $kind;
            const OBJECT: ObjectKind = ObjectKind::$object;
            fn list(source: &RawConfig) -> &Vec<Self> {
                &source.$list
            }
            fn list_mut(source: &mut RawConfig) -> &mut Vec<Self> {
                &mut source.$list
            }
            fn name(&self) -> &str {
                &self.$name
            }
        }
    };
}

named!(RawRoute, routes, "route", Route, name);
named!(RawConsumer, consumers, "consumer", Consumer, username);
named!(RawProvider, providers, "provider", Provider, name);

/// The item called `name` and where it stands in its list; 404 if none is.
pub fn find<'a, T: Named>(source: &'a RawConfig, name: &str) -> Result<(usize, &'a T), AdminError> {
    T::list(source)
        .iter()
        .enumerate()
        .find(|(_, item)| item.name() == name)
        .ok_or_else(|| AdminError::NotFound(format!("{} {name:?} not found", T::KIND)))
}

/// The edit that puts `item` where the one called `name` stands in
/// `current`, or at the end of its list if none does. Its reply: whether it
/// created the item, and the item.
pub fn put_edit<T: Named>(
    current: &RawConfig,
    name: &str,
    item: T,
    problems: Vec<ConfigError>,
    precondition: &Precondition,
) -> Edit<(bool, T)> {
    let mut source = current.clone();
    let list = T::list_mut(&mut source);
    let (i, created) = match list.iter().position(|old| old.name() == name) {
        Some(i) => (i, false),
        None => {
            list.push(T::default());
            (list.len() - 1, true)
        }
    };
    if let Some(slot) = list.get_mut(i) {
        *slot = item.clone();
    }
    Edit {
        source,
        object: (T::OBJECT, name.to_owned()),
        at: format!("{}[{i}]", T::LIST),
        what: format!("{} {name:?}", T::KIND),
        reply: (created, item),
        problems,
        versioned: precondition.names_versions(),
        whole: true,
    }
}

/// A PUT's answer: 201 if it created the item, else 200; the body as stored.
pub fn created_or_ok(created: bool, body: impl IntoResponse) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, body).into_response()
}

/// A DELETE's answer: 204, with the warnings the deletion brings (a route
/// left shadowing another, for one).
pub fn no_content(warnings: Warnings) -> Response {
    (StatusCode::NO_CONTENT, warnings, ()).into_response()
}

/// `DELETE /admin/v1/{list}/{name}`: 204, or 404 if there is no such item
/// (412 if `If-Match` names a version it is not at). Whatever still refers
/// to it (a route naming a deleted provider) fails the new version's
/// compilation, and the deletion with it.
pub async fn delete<T: Named>(
    State(s): State<AdminState>,
    Name(name): Name,
    headers: http::HeaderMap,
) -> Result<Response, AdminError> {
    let precondition = Precondition::of(&headers);
    let tags = s.tagger().await;
    let ((), warnings) = s
        .live
        .update(|current| {
            let (i, item) = find::<T>(current, &name)?;
            let what = format!("a {}", T::KIND);
            precondition.check(true, Some(&tags.tag(item)), &what, "", &name)?;
            let mut source = current.clone();
            T::list_mut(&mut source).remove(i);
            Ok(Edit {
                source,
                object: (T::OBJECT, name.clone()),
                at: String::new(),
                what: format!("deletion of {} {name:?}", T::KIND),
                reply: (),
                problems: Vec::new(),
                versioned: precondition.names_versions(),
                whole: false,
            })
        })
        .await?;
    Ok(no_content(warnings))
}
