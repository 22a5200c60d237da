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

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use aws_lc_rs::{hmac, pbkdf2};
use http::HeaderValue;
use serde::Serialize;

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
