//! Entity tags of the API's objects (RFC 9110 §8.8.3), so that a client
//! can write back what it read only if nobody changed it meanwhile: a GET
//! of a route, consumer or provider carries `ETag`, and a write sent with
//! `If-Match` naming it is `412` if the object is at another version now
//! (a console left open while another admin saved would otherwise undo
//! that admin's change without a word).
//!
//! A tag is a digest of the object as stored, secrets and `${ENV}`
//! references included, so any change of it gives another tag. Keyed with
//! the admin key (HMAC-SHA-256, cut to 128 bits): the digest of a weak
//! secret cannot be searched offline by whoever sees a tag without the key,
//! and nodes that share a key (every node behind one admin address must)
//! give the same tag for the same object, whichever answers. A new admin
//! key changes every tag: a write with an older one is `412`, read again.
//!
//! A route's policy (`/routes/{name}/jwt`) carries its route's tag: the
//! console reads the route and writes its policy, and a tag may change more
//! often than the representation it validates, never less.

use aws_lc_rs::hmac;
use http::HeaderValue;
use serde::Serialize;

/// Makes the tags of one admin key.
pub struct Tagger(hmac::Key);

impl Tagger {
    pub fn new(admin_key: &str) -> Tagger {
        Tagger(hmac::Key::new(hmac::HMAC_SHA256, admin_key.as_bytes()))
    }

    /// `item`'s tag, quoted as the header carries it: `"` 32 hex digits `"`.
    pub fn tag<T: Serialize>(&self, item: &T) -> String {
        // The raw objects serialise their fields in declaration order and
        // their maps sorted (BTreeMap): the same object, the same bytes.
        let bytes = serde_json::to_vec(item).unwrap_or_default();
        let digest = hmac::sign(&self.0, &bytes);
        let mut tag = String::with_capacity(34);
        tag.push('"');
        for b in digest.as_ref().iter().take(16) {
            tag.push_str(&format!("{b:02x}"));
        }
        tag.push('"');
        tag
    }
}

/// The `ETag` header of a tag made by [`Tagger::tag`].
pub fn header(tag: &str) -> [(http::HeaderName, HeaderValue); 1] {
    let value = HeaderValue::from_str(tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    [(http::header::ETAG, value)]
}

/// The entity tags a conditional header lists (`"a", W/"b"`), as written:
/// compared as strings, a weak one never equals a tag this API gives, so
/// it never passes `If-Match`'s strong comparison (RFC 9110 §13.1.1).
pub fn listed(headers: &http::HeaderMap, name: http::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && t != "*")
        .collect()
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
        assert!(listed(&h, http::header::IF_MATCH).is_empty());
    }
}
