//! Stage 0: text -> a generic tree, with `${ENV}` expanded in string values.
//! The tree (serde_json's `Value`) is what both YAML files and admin API JSON
//! bodies become before the typed reader sees them.

use serde::Deserialize as _;
use serde_json::Value;

use crate::error::{child, index, Errors};

/// Parses JSON (an admin API body, an etcd object) into a tree, refusing
/// an object that names a key twice, as the YAML reader does: where JSON
/// parsers disagree (first wins, last wins), the gateway and whatever
/// looked at the body before it would read two different configs.
pub fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Unique(value) = Unique::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A JSON value whose objects have no key twice.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so this is always a number.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} is given twice"
                )));
            }
            let Unique(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Parses YAML text into a tree. A syntax error is reported as one error.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    // No snippet of the text around a syntax error: the lines it quotes may
    // hold a secret, and the message goes to the log on a reload.
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options::<Value>(text, options)
        .map_err(|e| operators_words(&e.to_string()))
}

/// The parser's message without its advice to the program that calls it
/// (a setting of the parser's options), which the operator cannot act on.
fn operators_words(message: &str) -> String {
    message.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
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
            Err(msg) => errors.add_unread(loc, msg),
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

/// Replaces each `${NAME}`; `$${` is a literal `${`. Errors never quote
/// the value: it may be a secret that merely holds a `${`.
fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let at = s.len() - rest.len() + start;
        if let Some(before) = rest[..start].strip_suffix('$') {
            out.push_str(before);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            format!("unterminated \"${{\" at byte {at} (write \"$${{\" for a literal \"${{\")")
        })?;
        let name = &after[..end];
        let valid = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "invalid environment variable name after the \"${{\" at byte {at} (letters, digits \
                 and _, not first a digit; write \"$${{\" for a literal \"${{\")"
            ));
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
        // A literal "${", and errors that never quote the value.
        assert_eq!(expand("a$${SET}b", &env), Ok("a${SET}b".into()));
        assert_eq!(expand("$${x y}${SET}", &env), Ok("${x y}value".into()));
        for secret in ["Sup3r${S3cret", "Sup3r${S3 cret}"] {
            let e = expand(secret, &env).unwrap_err();
            assert!(!e.contains("Sup3r") && !e.contains("S3"), "{e}");
            assert!(e.contains("byte 5"), "{e}");
        }
    }

    #[test]
    fn reports_location_of_unset_variable() {
        let mut v = parse_yaml("admin:\n  api_key: \"${UNSET}\"\n").expect("yaml");
        let mut errors = Errors::default();
        expand_env(&mut v, "", &env, &mut errors);
        let e = errors.into_result(()).unwrap_err();
        assert_eq!(e.0[0].location, "admin.api_key");
    }

    #[test]
    fn json_with_a_key_given_twice_is_refused_anywhere() {
        for dup in [
            r#"{"paths": ["/y/*"], "paths": ["/z/*"]}"#,
            r#"{"jwt": {"realm": "a", "realm": "b"}}"#,
            r#"[{"a": 1}, {"b": 1, "b": 2}]"#,
        ] {
            let e = parse_json(dup.as_bytes()).unwrap_err();
            assert!(e.contains("is given twice"), "{dup}: {e}");
        }
        let same = r#"{"a": {"k": 1}, "b": {"k": 2}, "n": [1, -2, 3.5, 18446744073709551615, 1e400],
            "t": true, "f": false, "z": null, "s": "\u00e9\n"}"#;
        let same = same.replace("1e400", "1e300");
        assert_eq!(
            parse_json(same.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(&same).unwrap()
        );
        assert!(parse_json(b"{} x").is_err(), "trailing characters");
        assert!(parse_json(b"").is_err());
    }
}
