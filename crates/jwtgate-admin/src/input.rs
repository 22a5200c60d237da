//! Admin request bodies: JSON text -> tree, then the same typed reader the
//! config file goes through (`jwtgate_config::read_route`, ...), so a body
//! is validated exactly like the YAML it becomes, with body-relative field
//! locations. Two rules apply to API input only:
//!
//! - Secrets come back from GET as [`MASK`]; a PUT that sends [`MASK`] back
//!   keeps the stored secret, so GET-edit-PUT round trips work.
//! - A body may not introduce new `${ENV}` references: the file expands
//!   them from the gateway's environment, and an API caller must not be
//!   able to copy, say, the Redis password into a header sent upstream.
//!   References already in the file may be sent back unchanged.

use bytes::Bytes;
use jwtgate_config::{ConfigError, ConfigErrors};
use serde::Serialize;
use serde_json::Value;

use crate::error::AdminError;

/// What GET shows instead of a secret.
pub const MASK: &str = "***";

/// Parses a JSON body into a tree.
pub fn json_body(body: &Bytes) -> Result<Value, AdminError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AdminError::MalformedJson("the body is empty".into()));
    }
    jwtgate_config::tree::parse_json(body).map_err(AdminError::MalformedJson)
}

/// The resource's name in the body must be absent (the path names it) or
/// equal to the path's.
pub fn name_from_path(body: &mut Value, key: &str, name: &str) -> Option<ConfigError> {
    let Value::Object(map) = body else {
        // The typed reader reports a body that is not an object.
        return None;
    };
    let said = match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == name => return None,
        Some(_) => Some(ConfigError {
            location: key.to_owned(),
            message: format!(
                "must be {name:?}, as in the request path (rename by creating the new one and \
                 deleting the old)"
            ),
        }),
    };
    // The path's name either way, so the rest of the body is read and
    // checked as that object's: every problem is said at once (SPEC §4).
    map.insert(key.to_owned(), Value::String(name.to_owned()));
    said
}

/// Refuses a name a write would create that etcd, an admin URL or a log
/// line cannot carry as written (`jwtgate check` warns about such a name
/// in a file, where refusing it would break a config that loads today).
/// An object that exists keeps its name, and may be edited under it.
pub fn new_name_is_plain(field: &str, name: &str, exists: bool) -> Result<(), AdminError> {
    match jwtgate_config::name_problem(name) {
        Some(why) if !exists => Err(AdminError::field(field, why)),
        _ => Ok(()),
    }
}

/// Converts a reader error into the API's 400.
pub fn invalid_body(errors: ConfigErrors) -> AdminError {
    AdminError::invalid("invalid request body", errors)
}

/// Why a new value holding `${` is refused: in the config file (where a
/// write goes, and whose text etcd objects share) it reads as a reference,
/// which only the file's author sets; `$${` there is its escape, which the
/// API takes as two characters, so it was refused as a reference too, and
/// said so (an outside audit).
const ENV_REF_REFUSED: &str = "holds \"${\", which the admin API does not take in a new \
                               value: in the config file it reads as an environment reference \
                               (${NAME}, set in the file only; there $${ writes a literal ${), \
                               and the API takes values as they are, escapes included";

/// Refuses `${...}` in `new` unless the same string sits at the same place
/// in `old` (the stored item, as its source).
pub fn no_new_env_refs<T: Serialize>(new: &T, old: Option<&T>) -> Result<(), AdminError> {
    let new = serde_json::to_value(new).unwrap_or(Value::Null);
    let old = old.and_then(|o| serde_json::to_value(o).ok());
    let mut errors = Vec::new();
    walk(&new, old.as_ref(), "", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid_body(ConfigErrors(errors)))
    }
}

fn walk(new: &Value, old: Option<&Value>, loc: &str, errors: &mut Vec<ConfigError>) {
    let at = |k: &str| {
        if loc.is_empty() {
            k.to_owned()
        } else {
            format!("{loc}.{k}")
        }
    };
    match new {
        Value::String(s) if s.contains("${") && old != Some(new) => errors.push(ConfigError {
            location: loc.to_owned(),
            message: ENV_REF_REFUSED.into(),
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let o = old.and_then(|o| o.get(i));
                walk(item, o, &format!("{loc}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, old.and_then(|o| o.get(k)), &at(k), errors);
            }
        }
        _ => {}
    }
}

/// What a write's conditional headers ask (RFC 9110 §13.1): `If-Match`
/// and `If-None-Match`, each `*` (the object exists, or not) or entity tags
/// (the object is, or is not, at one of those versions: [`crate::etag`]).
/// Every condition sent must hold, else `412` and nothing is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precondition {
    if_match: Option<Condition>,
    if_none_match: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Any,
    Tags(Vec<String>),
}

impl Condition {
    /// `star_wins`: a `*` listed among tags (no valid header holds both,
    /// RFC 9110 §13.1.1) is taken as `*` rather than dropped. For
    /// `If-None-Match`, so that the write is refused whatever is there; an
    /// `If-Match` so written keeps only its tags, so that the write is not
    /// made unless one of them holds.
    fn of(headers: &http::HeaderMap, name: http::HeaderName, star_wins: bool) -> Option<Condition> {
        headers.get(&name)?;
        let listed = crate::etag::listed(headers, name);
        let star = listed.iter().any(|t| t == "*");
        if star && (star_wins || listed.len() == 1) {
            return Some(Condition::Any);
        }
        Some(Condition::Tags(
            listed.into_iter().filter(|t| t != "*").collect(),
        ))
    }

    /// Whether an object at `current` (`None`: there is none) meets it:
    /// `*` any version, tags one of them, compared strongly (`If-Match`: a
    /// weak tag, `W/"..."`, is never one this API gives) or weakly
    /// (`If-None-Match`, RFC 9110 §13.1.2).
    fn holds(&self, current: Option<&str>, weakly: bool) -> bool {
        match (self, current) {
            (_, None) => false,
            (Condition::Any, Some(_)) => true,
            (Condition::Tags(tags), Some(tag)) if weakly => {
                tags.iter().any(|t| crate::etag::weak(t) == tag)
            }
            (Condition::Tags(tags), Some(tag)) => tags.iter().any(|t| t == tag),
        }
    }
}

impl Precondition {
    pub fn of(headers: &http::HeaderMap) -> Precondition {
        Precondition {
            if_match: Condition::of(headers, http::header::IF_MATCH, false),
            if_none_match: Condition::of(headers, http::header::IF_NONE_MATCH, true),
        }
    }

    /// Whether it names versions (entity tags), not only `*`.
    pub fn names_versions(&self) -> bool {
        [&self.if_match, &self.if_none_match]
            .iter()
            .any(|c| matches!(c, Some(Condition::Tags(_))))
    }

    /// Its conditions on entity tags alone, and on `*` alone: a route's
    /// policy exists or not (`*`), and carries its route's version (tags).
    pub fn split(&self) -> (Precondition, Precondition) {
        let keep = |c: &Option<Condition>, tags: bool| {
            c.clone()
                .filter(|c| matches!(c, Condition::Tags(_)) == tags)
        };
        (
            Precondition {
                if_match: keep(&self.if_match, true),
                if_none_match: keep(&self.if_none_match, true),
            },
            Precondition {
                if_match: keep(&self.if_match, false),
                if_none_match: keep(&self.if_none_match, false),
            },
        )
    }

    /// The `412` when a condition does not hold: `exists` says whether the
    /// object is there, `current` is the tag of the version it is at (a
    /// route's policy is there or not, and carries its route's tag);
    /// `what`: "a consumer"; `field`: where its name is.
    pub fn check(
        &self,
        exists: bool,
        current: Option<&str>,
        what: &str,
        field: &str,
        name: &str,
    ) -> Result<(), AdminError> {
        let at = current.filter(|_| exists);
        match &self.if_match {
            Some(m) if !exists => {
                let header = if *m == Condition::Any {
                    "If-Match: *"
                } else {
                    "If-Match"
                };
                return Err(AdminError::Exists {
                    message: format!(
                        "{what} named {name:?} does not exist: nothing to replace ({header})"
                    ),
                    errors: ConfigErrors::single(field, "names nothing to replace"),
                });
            }
            Some(m) if !m.holds(at, false) => {
                let now = current.unwrap_or("-");
                return Err(AdminError::Changed(format!(
                    "{what} named {name:?} changed since the version If-Match names: it is at \
                     {now} now, and nothing was written (read it again, then write)"
                )));
            }
            _ => {}
        }
        match &self.if_none_match {
            Some(Condition::Any) if exists => Err(AdminError::Exists {
                message: format!("{what} named {name:?} exists already (If-None-Match: *)"),
                errors: ConfigErrors::single(
                    field,
                    "is taken: another name, or edit the existing one",
                ),
            }),
            Some(m @ Condition::Tags(_)) if m.holds(at, true) => Err(AdminError::Changed(format!(
                "{what} named {name:?} is at a version If-None-Match names: nothing was written"
            ))),
            _ => Ok(()),
        }
    }
}

/// A small body of string members (`{"token": ...}`, a subject), read with
/// every problem gathered: each unknown key and each member of the wrong
/// type or empty is named together (SPEC §4), not only the first.
pub struct Members<'a> {
    map: &'a serde_json::Map<String, Value>,
    errors: Vec<ConfigError>,
}

impl<'a> Members<'a> {
    /// `value`'s members, its keys outside `allowed` noted; `shape` says
    /// what is expected when it is not an object.
    pub fn read(value: &'a Value, allowed: &[&str], shape: &str) -> Result<Self, AdminError> {
        let Value::Object(map) = value else {
            return Err(AdminError::field(
                "",
                format!("expected a JSON object {shape}"),
            ));
        };
        let errors = map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| ConfigError {
                location: k.clone(),
                message: "unknown key".into(),
            })
            .collect();
        Ok(Members { map, errors })
    }

    /// The string at `key` (absent: `None`), at most `max` bytes; any
    /// other value (`null` too), an empty string or a longer one is noted.
    pub fn text(&mut self, key: &str, max: usize) -> Option<&'a str> {
        let problem = match self.map.get(key) {
            None => return None,
            Some(Value::String(t)) if t.len() > max => {
                format!("is over {max} bytes, more than a whole token may hold")
            }
            Some(Value::String(t)) if !t.is_empty() => return Some(t),
            Some(Value::String(_)) => "must not be empty".to_owned(),
            Some(_) => "expected a string".to_owned(),
        };
        self.problem(key, problem);
        None
    }

    /// The same, `null` read as absent.
    pub fn nullable_text(&mut self, key: &str, max: usize) -> Option<&'a str> {
        match self.map.get(key) {
            Some(Value::Null) => None,
            _ => self.text(key, max),
        }
    }

    /// The same for a member that must be there (and not `null`).
    pub fn required(&mut self, key: &str, max: usize) -> Option<&'a str> {
        match self.map.get(key) {
            None | Some(Value::Null) => {
                self.problem(key, "is required");
                None
            }
            _ => self.text(key, max),
        }
    }

    /// Notes a problem at `key`.
    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            location: key.to_owned(),
            message: message.into(),
        });
    }

    /// Every problem noted, as one `400`.
    pub fn finish(self) -> Result<(), AdminError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(invalid_body(ConfigErrors(self.errors)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_references_only_where_they_already_were() {
        let old = json!({"jwt": {"secret": "${S}", "key": "k"}});
        assert!(no_new_env_refs(&old, Some(&old)).is_ok());
        let moved = json!({"jwt": {"secret": "x", "key": "${S}"}});
        let Err(AdminError::Invalid { errors, .. }) = no_new_env_refs(&moved, Some(&old)) else {
            panic!("moved reference accepted");
        };
        assert_eq!(errors.0[0].location, "jwt.key");
        assert!(no_new_env_refs(&json!({"a": ["${X}"]}), None).is_err());
        // The file's escape is two characters here, and says what it meets.
        let Err(AdminError::Invalid { errors, .. }) =
            no_new_env_refs(&json!({"jwt": {"secret": "$${X}zz"}}), None)
        else {
            panic!("escape accepted");
        };
        assert!(
            errors.0[0].message.starts_with("holds \"${\""),
            "{}",
            errors.0[0].message
        );
        assert!(
            errors.0[0].message.contains("$${"),
            "{}",
            errors.0[0].message
        );
    }

    #[test]
    fn malformed_and_empty_bodies_are_400() {
        for body in ["", "  ", "{", "{\"a\":}"] {
            let err = json_body(&Bytes::from(body)).unwrap_err();
            assert_eq!(err.status(), 400, "{body:?}");
        }
    }

    #[test]
    fn the_body_name_must_match_the_path() {
        let mut v = json!({});
        assert!(name_from_path(&mut v, "name", "r").is_none(), "filled");
        assert_eq!(v["name"], "r");
        for other in [json!({"name": "x"}), json!({"name": 1})] {
            let mut v = other.clone();
            let said = name_from_path(&mut v, "name", "r").expect("refused");
            assert_eq!(said.location, "name", "{other}");
            assert_eq!(v["name"], "r", "read on as the path's: {other}");
        }
    }
}
