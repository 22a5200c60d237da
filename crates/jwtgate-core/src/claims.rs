//! Claims named by dotted paths into a token's payload (SPEC §3.7):
//! `sub`, `realm_access.roles`, `resource_access.orders.roles`. Compiled
//! once at config load; reading one walks the payload's objects, without
//! allocating.
//!
//! A claim whose own name contains a dot cannot be addressed: every dot
//! separates two levels.
//!
//! [`Claims`] is a verified token's payload as the gateway keeps it: the
//! decoded map, and the `authorize` rules it is known to satisfy.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// How many rule verdicts a payload remembers (see [`Claims`]).
const REMEMBERED: usize = 4;

/// A verified token's payload, and the `authorize` rules it is known to
/// satisfy.
///
/// A payload never changes once decoded, and a rule's verdict reads
/// nothing but the payload, so a verdict holds for as long as the payload
/// lives. The verified-token cache shares one `Claims` between every
/// request that presents the token, so the rule check runs once per token
/// and rule, not once per request. Only "satisfied" is remembered (a
/// refusal is rare and is worked out again, with its reason); a rule is
/// named by a stamp that is never reused (see
/// `policy::authorize::Authorization`), so a verdict cannot be read back
/// for another rule, another route or another config version.
#[derive(Debug)]
pub struct Claims {
    map: Map<String, Value>,
    /// `exp`, `nbf` and `iat`, read once here rather than looked up in the
    /// map by every request that presents the token.
    exp: NumericDate,
    nbf: NumericDate,
    iat: NumericDate,
    /// A registered claim the payload holds in a shape RFC 7519 does not
    /// give it ([`malformed_claim`]), read once with the dates.
    malformed: Option<&'static str>,
    /// Stamps of satisfied rules, each in the slot its hash picks; 0 is
    /// empty.
    satisfied: [AtomicU64; REMEMBERED],
}

/// A NumericDate claim (RFC 7519 §2) as a payload holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericDate {
    Absent,
    /// Whole seconds since the epoch (a fraction is truncated).
    At(i64),
    /// There, but not a finite number.
    Invalid,
}

impl NumericDate {
    /// The claim `name` of `map`.
    pub fn read(map: &Map<String, Value>, name: &str) -> NumericDate {
        match map.get(name) {
            None => NumericDate::Absent,
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .map_or(NumericDate::Invalid, NumericDate::At),
            Some(_) => NumericDate::Invalid,
        }
    }

    /// The date, if the claim is there and valid.
    pub fn at(self) -> Option<i64> {
        match self {
            NumericDate::At(t) => Some(t),
            NumericDate::Absent | NumericDate::Invalid => None,
        }
    }
}

impl Claims {
    /// A payload that has satisfied no rule yet.
    pub fn new(map: Map<String, Value>) -> Self {
        Claims {
            exp: NumericDate::read(&map, "exp"),
            nbf: NumericDate::read(&map, "nbf"),
            iat: NumericDate::read(&map, "iat"),
            malformed: malformed_claim(&map),
            map,
            satisfied: Default::default(),
        }
    }

    /// The decoded payload (also reached through `Deref`).
    pub fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The `exp` claim, read when the payload was decoded.
    pub fn exp(&self) -> NumericDate {
        self.exp
    }

    /// The `nbf` claim, read when the payload was decoded.
    pub fn nbf(&self) -> NumericDate {
        self.nbf
    }

    /// The `iat` claim, read when the payload was decoded.
    pub fn iat(&self) -> NumericDate {
        self.iat
    }

    /// See [`malformed_claim`], read when the payload was decoded.
    pub fn malformed(&self) -> Option<&'static str> {
        self.malformed
    }

    fn slot(&self, stamp: u64) -> Option<&AtomicU64> {
        // Every bit of the stamp picks the slot (Fibonacci hashing: the top
        // bits of a multiplication), so the first rules of two routes a
        // token uses in turn do not keep evicting each other.
        const SLOT_BITS: u32 = REMEMBERED.trailing_zeros();
        let mixed = stamp.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOT_BITS);
        self.satisfied.get(usize::try_from(mixed).unwrap_or(0))
    }

    /// Whether the rule stamped `stamp` is known to be satisfied.
    pub fn satisfies(&self, stamp: u64) -> bool {
        // Relaxed: the stamp is the whole of what is read; nothing else is
        // published with it.
        stamp != 0
            && self
                .slot(stamp)
                .is_some_and(|s| s.load(Ordering::Relaxed) == stamp)
    }

    /// Remember that the rule stamped `stamp` is satisfied.
    pub fn remember_satisfied(&self, stamp: u64) {
        if let Some(slot) = self.slot(stamp).filter(|_| stamp != 0) {
            slot.store(stamp, Ordering::Relaxed);
        }
    }
}

impl Deref for Claims {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        &self.map
    }
}

/// A compiled claim path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    text: String,
    segments: Vec<String>,
}

/// Why a text is not a claim path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimPathError {
    #[error("empty claim path")]
    Empty,
    #[error("claim path {0:?} has an empty segment (a dot at the start, at the end, or twice)")]
    EmptySegment(String),
}

impl ClaimPath {
    pub fn parse(text: &str) -> Result<ClaimPath, ClaimPathError> {
        if text.is_empty() {
            return Err(ClaimPathError::Empty);
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(ClaimPathError::EmptySegment(text.to_owned()));
        }
        Ok(ClaimPath {
            text: text.to_owned(),
            segments,
        })
    }

    /// `exp`, the claim `required_claims` lists when not set.
    pub fn exp() -> ClaimPath {
        ClaimPath {
            text: "exp".into(),
            segments: vec!["exp".into()],
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, if every level is an object holding the
    /// next name.
    pub fn get<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut value = claims.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }
}

impl std::fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The values a claim offers for matching: a string is one value, an array
/// of strings its members (other members are skipped); anything else
/// offers none.
pub fn values(claim: Option<&Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match claim {
        Some(Value::String(s)) => (Some(s.as_str()), None),
        Some(Value::Array(items)) => (None, Some(items.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// The text a claim is sent upstream as (`forward_claims`): a string as
/// it is, an array joined with `,` (strings as they are, anything else as
/// compact JSON), an object, number or boolean as compact JSON. `None` for
/// `null`; for a text holding a control character (tab included): it
/// would not be a header value, or could inject one; and for an array with
/// a member that holds a `,` itself, which an upstream splitting the list
/// would read as two (`["user", "x,admin"]` would grant `admin`).
pub fn header_text(claim: &Value) -> Option<Cow<'_, str>> {
    let text = match claim {
        Value::Null => return None,
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Array(items) => {
            let mut joined = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    joined.push(',');
                }
                let member = match item {
                    Value::String(s) => Cow::Borrowed(s.as_str()),
                    other => Cow::Owned(other.to_string()),
                };
                if member.contains(',') {
                    return None;
                }
                joined.push_str(&member);
            }
            Cow::Owned(joined)
        }
        other => Cow::Owned(other.to_string()),
    };
    (!text.chars().any(char::is_control)).then_some(text)
}

/// The text a subject cut-off knows a claim by (`sub`, `sid`; SPEC §3.10):
/// a string as it is, an integer as its decimal digits, anything else
/// none. An issuer that writes `sub` as a number (`12`, against RFC 7519's
/// StringOrURI) has its tokens accepted like any other, so its subjects
/// must be reachable by a cut-off too: `"12"` names them.
pub fn subject_text(claim: Option<&Value>) -> Option<Cow<'_, str>> {
    match claim? {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// The first registered claim `map` holds in a shape RFC 7519 does not
/// give it: an `iat` that is not a number, a `sub` or `sid` that is not a
/// string (nor an integer, which [`subject_text`] reads as its digits), or
/// a string with a space or tab at an end. Such a token is refused: a
/// cut-off could not name its subject (`"sub": ["u-1"]` went upstream as
/// `u-1`, and `" u-1 "` is `u-1` to every header parser, while the cut-off
/// for `u-1` let both pass), nor tell when it was issued.
pub fn malformed_claim(map: &Map<String, Value>) -> Option<&'static str> {
    if NumericDate::read(map, "iat") == NumericDate::Invalid {
        return Some("iat");
    }
    let named = |v: &Value| match v {
        Value::String(s) => !s.starts_with([' ', '\t']) && !s.ends_with([' ', '\t']),
        other => subject_text(Some(other)).is_some(),
    };
    ["sub", "sid"]
        .into_iter()
        .find(|name| map.get(*name).is_some_and(|v| !named(v)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_subject_is_a_string_or_an_integer_as_its_digits() {
        let text = |v: Value| subject_text(Some(&v)).map(Cow::into_owned);
        assert_eq!(text(json!("u-1")), Some("u-1".into()));
        assert_eq!(text(json!(12)), Some("12".into()));
        assert_eq!(text(json!(-3)), Some("-3".into()));
        assert_eq!(
            text(json!(18_446_744_073_709_551_615_u64)),
            Some("18446744073709551615".into())
        );
        assert_eq!(text(json!(1.5)), None);
        assert_eq!(text(json!(true)), None);
        assert_eq!(text(json!(["u-1"])), None);
        assert_eq!(text(json!(null)), None);
        assert_eq!(subject_text(None), None);
    }

    fn claims() -> Map<String, Value> {
        let Value::Object(m) = json!({
            "sub": "u-1",
            "realm_access": {"roles": ["admin", "clerk", 7]},
            "resource_access": {"orders": {"roles": ["reader"]}},
            "tenant": "acme",
            "n": 42,
            "flag": true,
            "nothing": null,
            "obj": {"a": [1, {"b": "c"}]},
            "a.b": "flat"
        }) else {
            unreachable!()
        };
        m
    }

    fn path(s: &str) -> ClaimPath {
        ClaimPath::parse(s).expect("valid")
    }

    #[test]
    fn numeric_dates_are_read_once_with_the_payload() {
        let Value::Object(m) = json!({
            "exp": 1_700_000_000,
            "nbf": 1_600_000_000.9,
            "iat": "yesterday",
        }) else {
            unreachable!()
        };
        let c = Claims::new(m);
        assert_eq!(c.exp(), NumericDate::At(1_700_000_000));
        assert_eq!(
            c.nbf(),
            NumericDate::At(1_600_000_000),
            "fraction truncated"
        );
        assert_eq!(c.iat(), NumericDate::Invalid);
        assert_eq!(c.iat().at(), None);
        let m = claims();
        assert_eq!(NumericDate::read(&m, "exp"), NumericDate::Absent);
        for not_a_date in ["sub", "flag", "nothing", "obj", "realm_access"] {
            assert_eq!(
                NumericDate::read(&m, not_a_date),
                NumericDate::Invalid,
                "{not_a_date}"
            );
        }
        assert_eq!(NumericDate::read(&m, "n").at(), Some(42));
    }

    #[test]
    fn paths_walk_objects() {
        let c = claims();
        assert_eq!(path("sub").get(&c), Some(&json!("u-1")));
        assert_eq!(
            path("resource_access.orders.roles").get(&c),
            Some(&json!(["reader"]))
        );
        assert_eq!(path("realm_access.roles.0").get(&c), None, "no array index");
        assert_eq!(path("sub.x").get(&c), None);
        assert_eq!(path("missing").get(&c), None);
        assert_eq!(ClaimPath::exp(), path("exp"));
        // A claim named with a dot cannot be addressed.
        assert_eq!(path("a.b").get(&c), None);
        for bad in ["", ".a", "a.", "a..b"] {
            assert!(ClaimPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_of_strings_and_arrays_only() {
        let c = claims();
        let v: Vec<&str> = values(path("realm_access.roles").get(&c)).collect();
        assert_eq!(v, ["admin", "clerk"]);
        assert_eq!(values(path("tenant").get(&c)).collect::<Vec<_>>(), ["acme"]);
        for none in ["n", "flag", "nothing", "obj", "missing"] {
            assert_eq!(values(path(none).get(&c)).count(), 0, "{none}");
        }
    }

    #[test]
    fn header_text_of_every_type() {
        let c = claims();
        let text = |p: &str| path(p).get(&c).and_then(header_text).map(Cow::into_owned);
        assert_eq!(text("sub").as_deref(), Some("u-1"));
        assert_eq!(text("realm_access.roles").as_deref(), Some("admin,clerk,7"));
        assert_eq!(text("n").as_deref(), Some("42"));
        assert_eq!(text("flag").as_deref(), Some("true"));
        assert_eq!(text("obj").as_deref(), Some("{\"a\":[1,{\"b\":\"c\"}]}"));
        assert_eq!(text("nothing"), None);
        for injected in [
            json!("a\r\nX-Consumer-Username: admin"),
            json!("tab\there"),
            json!(["ok", "bad\nline"]),
            json!("nul\u{0}"),
            json!("del\u{7f}"),
            // A member that would read as two once the list is split.
            json!(["user", "x,admin"]),
            json!(["user", {"a": 1, "b": 2}]),
        ] {
            assert_eq!(header_text(&injected), None, "{injected}");
        }
        // An object's strings are escaped by JSON: no raw control character.
        assert_eq!(
            header_text(&json!({"a": "x\ny"})).as_deref(),
            Some("{\"a\":\"x\\ny\"}")
        );
        assert_eq!(
            header_text(&json!("ünïcode ✓")).as_deref(),
            Some("ünïcode ✓")
        );
    }
}
