//! Stage 0: text -> a generic tree, with `${ENV}` expanded in string values.
//! The tree (serde_json's `Value`) is what both YAML files and admin API JSON
//! bodies become before the typed reader sees them.

use serde_json::Value;

use crate::error::{child, index, Errors};

/// Parses YAML text into a tree. A syntax error is reported as one error.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// Replaces `${NAME}` in every string value with the environment variable
/// `NAME`. An unset variable is an error at that value's location.
pub(crate) fn expand_env(
    value: &mut Value,
    loc: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) {
    match value {
        Value::String(s) if s.contains("${") => match expand(s, lookup) {
            Ok(expanded) => *s = expanded,
            Err(msg) => errors.add(loc, msg),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &index(loc, i), lookup, errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                expand_env(v, &child(loc, k), lookup, errors);
            }
        }
        _ => {}
    }
}

fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated \"${{\" in {s:?}"))?;
        let name = &after[..end];
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!("invalid environment variable name {name:?}"));
        }
        let v = lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_owned())
    }

    #[test]
    fn expands_set_variables_and_reports_unset_ones() {
        assert_eq!(expand("a-${SET}-b", &env), Ok("a-value-b".into()));
        assert_eq!(expand("${SET}${SET}", &env), Ok("valuevalue".into()));
        assert!(expand("${UNSET}", &env)
            .unwrap_err()
            .contains("UNSET is not set"));
        assert!(expand("${oops", &env).is_err());
        assert!(expand("${1X}", &env).is_err());
    }

    #[test]
    fn reports_location_of_unset_variable() {
        let mut v = parse_yaml("admin:\n  api_key: \"${UNSET}\"\n").expect("yaml");
        let mut errors = Errors::default();
        expand_env(&mut v, "", &env, &mut errors);
        let e = errors.into_result(()).unwrap_err();
        assert_eq!(e.0[0].location, "admin.api_key");
    }
}
