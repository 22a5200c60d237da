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

/// Parses YAML text into a tree. A syntax error, or a number spelled
/// otherwise than in decimal ([`crate::spelling`]), is reported as one error.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    // No snippet of the text around a syntax error: the lines it quotes may
    // hold a secret, and the message goes to the log on a reload.
    let options = serde_saphyr::options! { with_snippet: false };
    let tree = serde_saphyr::from_str_with_options::<Value>(text, options)
        .map_err(|e| format!("not valid YAML: {}", operators_words(&e.to_string())))?;
    match crate::spelling::first_respelled_number(text) {
        Some(problem) => Err(problem),
        None => Ok(tree),
    }
}

/// The parser's message without its advice to the program that calls it
/// (a setting of its options, a function to call, a Rust type), which the
/// operator cannot act on, and its limits in words.
fn operators_words(message: &str) -> String {
    let mut said = message
        .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .replace(
            "multiple YAML documents detected; use from_str_multiple or from_str_multiple_with_options",
            "a second YAML document (a config file holds one)",
        )
        .replace(
            "cannot deserialize null into string; use Option<String>",
            "a key or value that is null where text belongs",
        );
    for (budget, words) in [
        (
            "budget breached: Depth",
            "nested deeper than the config allows (64 levels)",
        ),
        (
            "budget breached: Nodes",
            "more values than the config allows (250 000, aliases counted as they expand)",
        ),
    ] {
        if let Some(at) = said.find(budget) {
            let rest = said[at..].find('}').map_or("", |end| &said[at + end + 1..]);
            said = format!("{}{words}{rest}", &said[..at]);
        }
    }
    said
}

/// The most one value may hold once its `${NAME}` references are
/// replaced: a secret, a password, a URL are far smaller.
const MAX_EXPANDED_VALUE: usize = 1024 * 1024;

/// Replaces `${NAME}` in every string value with the environment variable
/// `NAME`. An unset variable is an error at that value's location. What the
/// references bring in all is bounded as the file is
/// ([`crate::MAX_CONFIG_BYTES`]): a few bytes naming a large variable many
/// times (in a file, or an object in etcd every node expands) must not
/// take a node's memory.
pub(crate) fn expand_env(
    value: &mut Value,
    loc: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
) {
    let mut budget = Some(usize::try_from(crate::MAX_CONFIG_BYTES).unwrap_or(usize::MAX));
    expand_within(value, loc, lookup, errors, &mut budget);
}

/// `budget`: what the values may still bring in; `None` once that was
/// said (the config is refused: the values after are left as they are).
fn expand_within(
    value: &mut Value,
    loc: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Errors,
    budget: &mut Option<usize>,
) {
    match value {
        Value::String(s) if s.contains("${") => {
            let Some(left) = *budget else { return };
            match expand(s, lookup, MAX_EXPANDED_VALUE.min(left)) {
                Ok(expanded) => {
                    *budget = Some(left - expanded.len().min(left));
                    *s = expanded;
                }
                Err(msg) => {
                    if msg.contains("the config would hold more than") {
                        *budget = None;
                    }
                    errors.add_unread(loc, msg);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_within(item, &index(loc, i), lookup, errors, budget);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                expand_within(v, &child(loc, k), lookup, errors, budget);
            }
        }
        _ => {}
    }
}

/// Replaces each `${NAME}`; `$${` is a literal `${`. Errors never quote
/// the value: it may be a secret that merely holds a `${`. The result may
/// hold at most `most` bytes.
fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>, most: usize) -> Result<String, String> {
    let too_large = || {
        if most < MAX_EXPANDED_VALUE {
            format!(
                "with its environment variables, the config would hold more than {} MiB",
                crate::MAX_CONFIG_BYTES >> 20
            )
        } else {
            format!(
                "with its environment variables, this value would hold more than {} KiB",
                MAX_EXPANDED_VALUE >> 10
            )
        }
    };
    let mut out = String::with_capacity(s.len());
    let mut unset: Vec<&str> = Vec::new();
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
        rest = &after[end + 1..];
        // Every unset one is said, not only the first.
        let Some(v) = lookup(name) else {
            if !unset.contains(&name) {
                unset.push(name);
            }
            continue;
        };
        if out.len() + v.len() > most {
            return Err(too_large());
        }
        out.push_str(&v);
    }
    match unset.as_slice() {
        [] => {}
        [one] => return Err(format!("environment variable {one} is not set")),
        [first @ .., last] => {
            return Err(format!(
                "environment variables {} and {last} are not set",
                first.join(", ")
            ))
        }
    }
    if out.len() + rest.len() > most {
        return Err(too_large());
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_all(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        expand(s, lookup, MAX_EXPANDED_VALUE)
    }

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_owned())
    }

    #[test]
    fn expands_set_variables_and_reports_unset_ones() {
        assert_eq!(expand_all("a-${SET}-b", &env), Ok("a-value-b".into()));
        assert_eq!(expand_all("${SET}${SET}", &env), Ok("valuevalue".into()));
        assert!(expand_all("${UNSET}", &env)
            .unwrap_err()
            .contains("UNSET is not set"));
        // Every unset variable of a value, each once.
        assert_eq!(
            expand_all("${A}-${SET}-${B}${A}${C}", &env).unwrap_err(),
            "environment variables A, B and C are not set"
        );
        assert_eq!(
            expand_all("${A}${B}", &env).unwrap_err(),
            "environment variables A and B are not set"
        );
        assert!(expand_all("${oops", &env).is_err());
        assert!(expand_all("${1X}", &env).is_err());
        // A literal "${", and errors that never quote the value.
        assert_eq!(expand_all("a$${SET}b", &env), Ok("a${SET}b".into()));
        assert_eq!(expand_all("$${x y}${SET}", &env), Ok("${x y}value".into()));
        for secret in ["Sup3r${S3cret", "Sup3r${S3 cret}"] {
            let e = expand_all(secret, &env).unwrap_err();
            assert!(!e.contains("Sup3r") && !e.contains("S3"), "{e}");
            assert!(e.contains("byte 5"), "{e}");
        }
    }

    /// A few bytes naming a large variable many times (an outside audit
    /// had a 48 KB file take 970 MB) are refused at their location.
    #[test]
    fn what_the_variables_bring_in_is_bounded() {
        let big = |name: &str| (name == "BIG").then(|| "A".repeat(120 * 1024));
        let nine = "${BIG}".repeat(9);
        let e = expand(&nine, &big, MAX_EXPANDED_VALUE).unwrap_err();
        assert!(
            e.contains("this value would hold more than 1024 KiB"),
            "{e}"
        );
        assert_eq!(
            expand(&"${BIG}".repeat(8), &big, MAX_EXPANDED_VALUE).map(|s| s.len()),
            Ok(8 * 120 * 1024)
        );
        // Many values, each within its bound: the whole is bounded too.
        let values: Vec<Value> = (0..600)
            .map(|_| Value::String("${BIG}".repeat(8)))
            .collect();
        let mut tree = serde_json::json!({ "routes": values });
        let mut errors = Errors::default();
        expand_env(&mut tree, "", &big, &mut errors);
        let e = errors.into_result(()).unwrap_err();
        assert_eq!(e.0.len(), 1, "said once: {e:?}");
        assert_eq!(e.0[0].location, "routes[68]");
        assert!(
            e.0[0]
                .message
                .contains("the config would hold more than 64 MiB"),
            "{e:?}"
        );
    }

    /// The parser's limits and refusals in an operator's words, without
    /// advice meant for the program (an outside audit quoted
    /// `use from_str_multiple` and `Depth { depth: 65 }`).
    #[test]
    fn parser_messages_are_an_operators() {
        let deep = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        for (text, said) in [
            (
                deep.as_str(),
                "nested deeper than the config allows (64 levels) at line 1",
            ),
            (
                laughs,
                "more values than the config allows (250 000, aliases counted as they expand)",
            ),
            (
                "a: 1\n---\nb: 2\n",
                "a second YAML document (a config file holds one) at line",
            ),
        ] {
            let e = parse_yaml(text).unwrap_err();
            assert!(e.contains(said), "{e}");
            assert!(!e.contains("from_str") && !e.contains('{'), "{e}");
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
