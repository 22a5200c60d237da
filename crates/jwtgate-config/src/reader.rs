//! A small typed reader over the generic tree: fetch fields by name, record a
//! located error for every wrong type, and report unknown keys when done. It
//! never stops at the first problem.

use serde_json::{Map, Value};

use crate::error::{child, index, Errors};

/// A mapping being read; remembers which keys were asked for.
pub(crate) struct Obj<'v> {
    pub(crate) loc: String,
    map: &'v Map<String, Value>,
    known: Vec<&'static str>,
}

pub(crate) fn obj<'v>(value: &'v Value, loc: &str, errors: &mut Errors) -> Option<Obj<'v>> {
    match value {
        Value::Object(map) => Some(Obj {
            loc: loc.to_owned(),
            map,
            known: Vec::new(),
        }),
        other => {
            errors.add(loc, format!("expected a mapping, found {}", kind(other)));
            None
        }
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl<'v> Obj<'v> {
    pub(crate) fn at(&self, key: &str) -> String {
        child(&self.loc, key)
    }

    /// The value of `key`; `null` counts as absent.
    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'v Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Whether `key` is there with an empty value (YAML's null); asking
    /// counts as reading it.
    pub(crate) fn is_empty(&mut self, key: &'static str) -> bool {
        self.known.push(key);
        self.map.get(key).is_some_and(Value::is_null)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    pub(crate) fn string(&mut self, key: &'static str, errors: &mut Errors) -> Option<String> {
        let v = self.get(key)?;
        as_string(v, &self.at(key), errors)
    }

    pub(crate) fn required_string(
        &mut self,
        key: &'static str,
        errors: &mut Errors,
    ) -> Option<String> {
        if !self.has(key) {
            self.known.push(key);
            errors.add(&self.at(key), "is required");
            return None;
        }
        self.string(key, errors)
    }

    /// A keyword with an `off` among its values: YAML reads an unquoted
    /// `off` (or `no`, `false`) as the boolean false, which is taken as
    /// "off"; `true` as "on", for the caller to accept or refuse.
    pub(crate) fn keyword(&mut self, key: &'static str, errors: &mut Errors) -> Option<String> {
        match self.get(key)? {
            Value::Bool(b) => Some(if *b { "on" } else { "off" }.to_owned()),
            other => as_string(other, &self.at(key), errors),
        }
    }

    /// `true` or `false`. An empty value (`immutable:` with nothing after
    /// it, as a file cut short leaves it) is refused, not taken as absent:
    /// absent is `false` for every flag, and a file cut just after
    /// `immutable:` would lift a protection (an outside reload audit).
    pub(crate) fn bool(&mut self, key: &'static str, errors: &mut Errors) -> Option<bool> {
        if self.is_empty(key) {
            errors.add(
                &self.at(key),
                "is empty: write true or false, or leave the key out",
            );
            return None;
        }
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                errors.add(
                    &self.at(key),
                    format!("expected true or false, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub(crate) fn u64(&mut self, key: &'static str, errors: &mut Errors) -> Option<u64> {
        match self.get(key)? {
            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
            other => {
                errors.add(
                    &self.at(key),
                    format!("expected a non-negative integer, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a list of one.
    pub(crate) fn strings(
        &mut self,
        key: &'static str,
        errors: &mut Errors,
    ) -> Option<Vec<String>> {
        let loc = self.at(key);
        match self.get(key)? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| as_string(v, &index(&loc, i), errors))
                    .collect(),
            ),
            other => {
                errors.add(
                    &loc,
                    format!("expected a list of strings, found {}", kind(other)),
                );
                None
            }
        }
    }

    pub(crate) fn list(
        &mut self,
        key: &'static str,
        errors: &mut Errors,
    ) -> Vec<(String, &'v Value)> {
        let loc = self.at(key);
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (index(&loc, i), v))
                .collect(),
            Some(other) => {
                errors.add(&loc, format!("expected a list, found {}", kind(other)));
                Vec::new()
            }
        }
    }

    pub(crate) fn child_obj(&mut self, key: &'static str, errors: &mut Errors) -> Option<Obj<'v>> {
        let loc = self.at(key);
        let v = self.get(key)?;
        obj(v, &loc, errors)
    }

    /// A mapping of string to string, in file order.
    pub(crate) fn string_map(
        &mut self,
        key: &'static str,
        errors: &mut Errors,
    ) -> Option<Vec<(String, String)>> {
        let loc = self.at(key);
        match self.get(key)? {
            Value::Object(m) => Some(
                m.iter()
                    .filter_map(|(k, v)| {
                        as_string(v, &child(&loc, k), errors).map(|s| (k.clone(), s))
                    })
                    .collect(),
            ),
            other => {
                errors.add(&loc, format!("expected a mapping, found {}", kind(other)));
                None
            }
        }
    }

    /// A mapping of string to list of strings (a single string counts as a
    /// list of one), in file order.
    pub(crate) fn string_lists_map(
        &mut self,
        key: &'static str,
        errors: &mut Errors,
    ) -> Option<Vec<(String, Vec<String>)>> {
        let loc = self.at(key);
        match self.get(key)? {
            Value::Object(m) => Some(
                m.iter()
                    .filter_map(|(k, v)| {
                        let at = child(&loc, k);
                        let list = match v {
                            Value::String(s) => vec![s.clone()],
                            Value::Array(items) => items
                                .iter()
                                .enumerate()
                                .filter_map(|(i, v)| as_string(v, &index(&at, i), errors))
                                .collect(),
                            other => {
                                errors.add(
                                    &at,
                                    format!("expected a list of strings, found {}", kind(other)),
                                );
                                return None;
                            }
                        };
                        Some((k.clone(), list))
                    })
                    .collect(),
            ),
            other => {
                errors.add(&loc, format!("expected a mapping, found {}", kind(other)));
                None
            }
        }
    }

    /// Reports every key that was never asked for, with the known key it
    /// was most likely meant to be.
    pub(crate) fn finish(self, errors: &mut Errors) {
        for key in self.map.keys() {
            if !self.known.contains(&key.as_str()) {
                let (shown, message) = unknown_key(key, &self.known);
                errors.add(&child(&self.loc, &shown), message);
            }
        }
    }
}

/// How an unknown key is shown, and what is said of it. A key is never
/// echoed whole when it may carry a value: `secret:abc` (no space after
/// the colon) is one key in YAML, and so are `secret=abc` and `secret abc`
/// in a flow mapping, so it is cut at its first `:`, `=` or blank; a long
/// one is cut too (known keys are short, and the suggestion's cost grows
/// with the key's length).
fn unknown_key(key: &str, known: &[&str]) -> (String, String) {
    let (shown, message) = unknown_key_as_written(key, known);
    (visible(&shown), message)
}

/// `s` with control characters and invisible or direction-changing ones
/// escaped (`\n`, `\u{1b}`, `\u{202e}`): a key is printed by `check` to a
/// terminal and logged at a reload, where it must not end the line, colour
/// it, or forge another (an outside operations audit).
fn visible(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if jwtgate_core::invisible::is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn unknown_key_as_written(key: &str, known: &[&str]) -> (String, String) {
    const SHOWN: usize = 64;
    if let Some(at) = key.find([':', '=', ' ', '\t']).filter(|&at| at > 0) {
        let (name, separator) = (&key[..at], &key[at..=at]);
        let hint = match (known.contains(&name), separator) {
            (true, ":") => {
                format!("unknown key (a missing space after {name:?}? write \"{name}: value\")")
            }
            (true, _) => format!("unknown key (write \"{name}: value\")"),
            (false, ":") => "unknown key (a missing space after a \":\"?)".to_owned(),
            (false, _) => "unknown key".to_owned(),
        };
        return (format!("{}{separator}…", cut(name, SHOWN)), hint);
    }
    if key.len() > SHOWN {
        return (format!("{}…", cut(key, SHOWN)), "unknown key".to_owned());
    }
    let message = match likely_meant(key, known) {
        Some(meant) => format!("unknown key (did you mean {meant:?}?)"),
        None => "unknown key".to_owned(),
    };
    (key.to_owned(), message)
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// The known key a mistyped one was most likely meant to be: one within two
/// edits of it (`not_requried_paths`), or one it starts (`read_timeout` for
/// `read_timeout_ms`); none if that is not one key.
fn likely_meant<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_ascii_lowercase();
    let close: Vec<&str> = known
        .iter()
        .copied()
        .filter(|k| edit_distance(&lower, k) <= 2 || (lower.len() >= 4 && k.starts_with(&lower)))
        .collect();
    match close.as_slice() {
        [one] => Some(one),
        _ => known
            .iter()
            .copied()
            .find(|k| edit_distance(&lower, k) <= 1),
    }
}

/// Levenshtein distance, counting a swap of two neighbours as one edit
/// (the typo most often made); keys are short.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    if let Some(first) = rows.first_mut() {
        for (j, cell) in first.iter_mut().enumerate() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

fn as_string(v: &Value, loc: &str, errors: &mut Errors) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        // YAML users write `port: 6379` and `key: 12345` without quotes;
        // a whole number where a string is expected is taken as its text.
        // Any other number is not: its text would not be what was written
        // (`0777` and `1e3` read as floats, "777.0" and "1000.0"; a number
        // past 2^64 loses digits).
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::Number(_) => {
            errors.add(
                loc,
                "expected a string, found a number that is not a whole number below 2^64 (write the value in quotes)",
            );
            None
        }
        other => {
            errors.add(loc, format!("expected a string, found {}", kind(other)));
            None
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n}"),
        other => kind(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_shown_with_its_control_and_invisible_characters_escaped() {
        let (shown, _) = unknown_key("\u{1b}[31mevil\u{1b}[0m\nFAKE", &["key"]);
        assert_eq!(shown, "\\u{1b}[31mevil\\u{1b}[0m\\nFAKE");
        let (shown, _) = unknown_key("ke\u{202e}y", &["key"]);
        assert_eq!(shown, "ke\\u{202e}y");
    }

    #[test]
    fn an_unknown_key_is_shown_without_what_may_be_a_value() {
        let known = ["key", "secret", "algorithm"];
        let (shown, message) = unknown_key("secret:Hunter2", &known);
        assert_eq!(shown, "secret:…");
        assert!(
            message.contains("missing space after \"secret\""),
            "{message}"
        );
        let (shown, _) = unknown_key("colour:Hunter2", &known);
        assert_eq!(shown, "colour:…");
        // In a flow mapping, `{secret=Hunter2}` and `{secret Hunter2}` are
        // keys too.
        let (shown, message) = unknown_key("secret=Hunter2", &known);
        assert_eq!(shown, "secret=…");
        assert!(message.contains("write \"secret: value\""), "{message}");
        let (shown, _) = unknown_key("secret Hunter2", &known);
        assert_eq!(shown, "secret …");
        let (shown, _) = unknown_key("colour=Hunter2", &known);
        assert_eq!(shown, "colour=…");
        let (shown, message) = unknown_key("secert", &known);
        assert_eq!(shown, "secert");
        assert!(message.contains("did you mean \"secret\""), "{message}");
        // A long key is cut (on a character boundary) and not compared
        // with every known key: the edit distance is quadratic.
        let long = "é".repeat(100_000);
        let (shown, message) = unknown_key(&long, &known);
        assert!(shown.len() <= 64 + "…".len(), "{}", shown.len());
        assert_eq!(message, "unknown key");
    }

    #[test]
    fn only_a_whole_number_is_taken_as_text() {
        for (yaml, text) in [("k: 12345", Some("12345")), ("k: -7", Some("-7"))] {
            let v = crate::tree::parse_yaml(yaml).unwrap();
            let mut errors = Errors::default();
            assert_eq!(as_string(&v["k"], "k", &mut errors).as_deref(), text);
            assert!(errors.is_empty(), "{yaml}");
        }
        // Spelled otherwise than in decimal, it is refused earlier, by
        // where it is (`spelling`).
        assert!(crate::tree::parse_yaml("k: 0777").is_err());
        for yaml in ["k: 1e3", "k: 1.5", "k: 123456789012345678901234"] {
            let v = crate::tree::parse_yaml(yaml).unwrap();
            let mut errors = Errors::default();
            assert_eq!(as_string(&v["k"], "k", &mut errors), None, "{yaml}");
            assert!(!errors.is_empty(), "{yaml}");
        }
    }
}
