//! How an API body edits a jwt policy: the path-mode switch of SPEC §3.3
//! (through the API, setting one mode resets the other) and JSON merge
//! patch (RFC 7396) for `PATCH /routes/{name}/jwt`.

use jwtgate_config::RawJwt;
use serde_json::{Map, Value};

/// SPEC §3.3 through the API: one path mode replaces the other. A body with
/// both lists set is read against the running policy: the list that
/// changed is the one being set, and the other is reset. If both changed,
/// both stay and validation reports the conflict.
pub fn switch_mode(current: Option<&RawJwt>, next: &mut RawJwt) {
    let set = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|v| !v.is_empty());
    if !(set(&next.required_paths) && set(&next.not_required_paths)) {
        return;
    }
    let none = RawJwt::default();
    let current = current.unwrap_or(&none);
    let required_changed = next.required_paths != current.required_paths;
    let not_required_changed = next.not_required_paths != current.not_required_paths;
    match (required_changed, not_required_changed) {
        (true, false) => next.not_required_paths = None,
        (false, true) => next.required_paths = None,
        _ => {}
    }
}

pub fn merge_patch(target: &mut Value, patch: &Map<String, Value>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in patch {
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(inner) => merge_patch(t.entry(k.clone()).or_insert(Value::Null), inner),
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
}

pub fn is_empty_list(v: &Value) -> bool {
    matches!(v, Value::Null) || v.as_array().is_some_and(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(required: &[&str], not_required: &[&str]) -> RawJwt {
        let list = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
        RawJwt {
            required_paths: list(required),
            not_required_paths: list(not_required),
            ..RawJwt::default()
        }
    }

    #[test]
    fn setting_one_mode_resets_the_other() {
        let current = jwt(&[], &["GET_/a"]);
        let mut next = jwt(&["GET_/b"], &["GET_/a"]);
        switch_mode(Some(&current), &mut next);
        assert_eq!(next, jwt(&["GET_/b"], &[]));
        let current = jwt(&["GET_/b"], &[]);
        let mut next = jwt(&["GET_/b"], &["GET_/c"]);
        switch_mode(Some(&current), &mut next);
        assert_eq!(next, jwt(&[], &["GET_/c"]));
        // Both new: ambiguous, left for validation to refuse.
        let mut next = jwt(&["GET_/x"], &["GET_/y"]);
        switch_mode(None, &mut next);
        assert_eq!(next, jwt(&["GET_/x"], &["GET_/y"]));
    }

    #[test]
    fn merge_patch_sets_keeps_and_removes() {
        let mut v = json!({"realm": "a", "leeway_seconds": 5, "protection": {"immutable": true}});
        let patch =
            json!({"realm": "b", "leeway_seconds": null, "protection": {"undeletable": true}});
        let Value::Object(p) = patch else {
            unreachable!()
        };
        merge_patch(&mut v, &p);
        assert_eq!(
            v,
            json!({"realm": "b", "protection": {"immutable": true, "undeletable": true}})
        );
    }
}
