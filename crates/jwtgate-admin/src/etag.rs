//! Entity tags of the API's objects (RFC 9110 §8.8.3), so that a client
//! can write back what it read only if nobody changed it meanwhile: a GET
//! of a route, consumer or provider carries `ETag`, and a write sent with
//! `If-Match` naming it is `412` if the object is at another version now
//! (a console left open while another admin saved would otherwise undo
//! that admin's change without a word).
//!
//! A tag is a digest of the object as stored, secrets and `${ENV}`
//! references included, so any change of it gives another tag. Keyed
//! (HMAC-SHA-256, cut to 128 bits) with a key drawn from the admin key by
//! PBKDF2 (600 000 rounds, once per admin key): the digest of a weak secret
//! cannot be searched offline by whoever sees a tag without the admin key,
//! nor a tag (in a proxy's log, say) be used to search for the admin key
//! itself faster than PBKDF2 allows; and nodes that share the admin key
//! (every node behind one admin address must) give the same tag for the
//! same object, whichever answers. A new admin key changes every tag: a
//! write with an older one is `412`, read again.
//!
//! A route's policy (`/routes/{name}/jwt`) carries its route's tag: the
//! console reads the route and writes its policy, and a tag may change more
//! often than the representation it validates, never less.
//!
//! The two layers in front of every handler are here too: a GET or HEAD whose
//! `If-None-Match` names the answer's tag is `304` ([`not_modified`]), and a
//! write whose `If-Match` names a tag where the API gives none is `412`
//! ([`no_entity_tags`]).

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use aws_lc_rs::{hmac, pbkdf2};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json};
use http::HeaderValue;
use serde::Serialize;
use serde_json::json;

/// PBKDF2-HMAC-SHA-256 rounds from the admin key to the tag key (OWASP's
/// figure for passwords; a fraction of a second, once per key, off the
/// control plane's thread).
const ROUNDS: NonZeroU32 = match NonZeroU32::new(600_000) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};
/// Fixed: every node must draw the same tag key from the same admin key.
const SALT: &[u8] = b"jwtgate admin API entity tags";

/// Makes the tags of one admin key.
pub struct Tagger(hmac::Key);

impl Tagger {
    pub fn new(admin_key: &str) -> Tagger {
        let mut key = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            ROUNDS,
            SALT,
            admin_key.as_bytes(),
            &mut key,
        );
        Tagger(hmac::Key::new(hmac::HMAC_SHA256, &key))
    }

    /// `item`'s tag, quoted as the header carries it: `"` 32 hex digits `"`.
    pub fn tag<T: Serialize>(&self, item: &T) -> String {
        // The raw objects serialise their fields in declaration order and
        // their maps sorted (BTreeMap): the same object, the same bytes.
        let bytes = serde_json::to_vec(item).unwrap_or_default();
        let digest = hmac::sign(&self.0, &bytes);
        let digest: jwtgate_store::Digest = digest.as_ref().try_into().unwrap_or([0; 32]);
        // 128 bits of it.
        format!("\"{}\"", &jwtgate_store::to_hex(&digest)[..32])
    }
}

/// The [`Tagger`] of the admin key in force, made again only when the key
/// changes (a reload): drawing its key costs PBKDF2's rounds.
#[derive(Default)]
pub struct Taggers(Mutex<Option<(Arc<String>, Arc<Tagger>)>>);

impl Taggers {
    /// The tagger of `admin_key`; a new one is drawn on a blocking thread,
    /// so that the rounds never hold up the control plane's other work.
    pub async fn of(&self, admin_key: &Arc<String>) -> Arc<Tagger> {
        if let Some(tagger) = self.held(admin_key) {
            return tagger;
        }
        let key = Arc::clone(admin_key);
        let tagger = match tokio::task::spawn_blocking(move || Tagger::new(&key)).await {
            Ok(t) => Arc::new(t),
            // The blocking pool is gone (the node stops): drawn here.
            Err(_) => Arc::new(Tagger::new(admin_key)),
        };
        *self.lock() = Some((Arc::clone(admin_key), Arc::clone(&tagger)));
        tagger
    }

    fn held(&self, admin_key: &Arc<String>) -> Option<Arc<Tagger>> {
        match self.lock().as_ref() {
            Some((key, tagger)) if key == admin_key => Some(Arc::clone(tagger)),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<String>, Arc<Tagger>)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `ETag` header of a tag made by [`Tagger::tag`].
pub fn header(tag: &str) -> [(http::HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    [(http::header::ETAG, value)]
}

/// The members a conditional header lists (`"a", W/"b"`, or `*`), as
/// written: compared as strings, a weak tag never equals a tag this API
/// gives, so it never passes `If-Match`'s strong comparison (RFC 9110
/// §13.1.1); `If-None-Match` compares weakly (§13.1.2), by [`weak`].
pub fn listed(headers: &http::HeaderMap, name: http::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// A tag with its weakness mark (`W/`) taken off, for a weak comparison.
pub fn weak(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// `412` for an admin write whose `If-Match` names entity tags where the
/// API gives none (revocations, cut-offs, explain): the condition cannot
/// hold (RFC 9110 §13.1.1), and carrying on would do what the client asked
/// only of a version it had seen. Routes, their policies, consumers and
/// providers carry tags: their handlers check them against [`Tagger`]'s tags.
pub(crate) async fn no_entity_tags(
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    // On the writes, which it guards; a read so conditioned only gets what
    // it would get anyway.
    let write = !req.method().is_safe();
    let path = req.uri().path();
    if write
        && path.starts_with("/admin/")
        && !tagged_object(path)
        && listed(req.headers(), header::IF_MATCH)
            .iter()
            .any(|t| t != "*")
    {
        let message = "If-Match names an entity tag, and this endpoint gives none: the \
                       condition cannot hold (only routes, their jwt policies, consumers and \
                       providers carry an ETag)";
        let body = Json(json!({ "message": message }));
        return (StatusCode::PRECONDITION_FAILED, body).into_response();
    }
    next.run(req).await
}

/// `304 Not Modified` for a GET or HEAD whose `If-None-Match` names the
/// tag its answer carries, or `*` (RFC 9110 §13.1.2: the origin server
/// evaluates it; an outside audit found a 200 with the body), with the
/// answer's other headers and no body.
pub(crate) async fn not_modified(req: axum::extract::Request, next: middleware::Next) -> Response {
    let reads = req.method() == axum::http::Method::GET || req.method() == axum::http::Method::HEAD;
    let asked = if reads {
        listed(req.headers(), header::IF_NONE_MATCH)
    } else {
        Vec::new()
    };
    let resp = next.run(req).await;
    if asked.is_empty() || resp.status() != StatusCode::OK {
        return resp;
    }
    let Some(tag) = resp
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
    else {
        return resp;
    };
    let tag = weak(tag);
    if !asked.iter().any(|t| t == "*" || weak(t) == tag) {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    Response::from_parts(parts, axum::body::Body::empty())
}

/// Whether `path` names an object that carries an entity tag:
/// `/admin/v1/{routes,consumers,providers}/{name}`, `/admin/v1/routes/{name}/jwt`.
fn tagged_object(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/admin/v1/") else {
        return false;
    };
    let steps: Vec<&str> = rest.split('/').collect();
    matches!(
        steps.as_slice(),
        ["routes" | "consumers" | "providers", name] | ["routes", name, "jwt"] if !name.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_changes_with_the_object_and_the_key() {
        let a = Tagger::new("key-one");
        let tag = a.tag(&serde_json::json!({"secret": "s1"}));
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert_eq!(tag, a.tag(&serde_json::json!({"secret": "s1"})));
        assert_ne!(tag, a.tag(&serde_json::json!({"secret": "s2"})));
        assert_ne!(
            tag,
            Tagger::new("key-two").tag(&serde_json::json!({"secret": "s1"}))
        );
    }

    #[test]
    fn listed_tags_are_split_and_trimmed() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::IF_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        h.append(http::header::IF_MATCH, HeaderValue::from_static(" \"c\" "));
        assert_eq!(
            listed(&h, http::header::IF_MATCH),
            ["\"a\"", "W/\"b\"", "\"c\""]
        );
        h.insert(http::header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(listed(&h, http::header::IF_MATCH), ["*"]);
        assert_eq!(weak("W/\"b\""), "\"b\"");
        assert_eq!(weak("\"b\""), "\"b\"");
    }
}
