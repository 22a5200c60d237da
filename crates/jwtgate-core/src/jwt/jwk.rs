//! JSON Web Key Sets (RFC 7517) as identity providers publish them, parsed
//! once per fetch into verification keys, and the choice of the key that
//! checks a token (SPEC §3.6).
//!
//! What is accepted: RSA (RS*, PS*; 2048 bits or more), EC (P-256, P-384,
//! P-521 for ES256/384/512) and OKP Ed25519 (EdDSA) keys meant for
//! signatures. What never is: symmetric (`oct`) keys and `none`: a key set
//! is public, and a shared secret in it would let anyone sign. Keys that are
//! not for signing (`use: enc`, an encryption `alg`) or that the provider's
//! `algorithms` do not allow are skipped and noted, not errors: real key
//! sets mix them. A set with no usable key at all is an error, so that it
//! never replaces a good one.
//!
//! Pure: no I/O. The fetching, refreshing and caching on disk live in
//! `jwtgate-keys`.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::keys::VerifyKey;
use super::Algorithm;

/// More keys than this is not a key set anyone publishes.
pub const MAX_KEYS: usize = 100;

/// Keys fitting a token's `alg` under its `kid` that are tried, in the
/// set's order ([`JwkSet::verifying_twin`]): this bounds the signature
/// checks one forged token costs.
pub const MAX_KEYS_PER_KID: usize = 4;

/// The members that decide what a key verifies: all a key is known by in
/// its fingerprint and all the disk cache keeps of it.
const PUBLIC_MEMBERS: [&str; 10] = [
    "kid", "kty", "alg", "crv", "n", "e", "x", "y", "use", "key_ops",
];

/// Why a document is not a usable JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JWK Set: expected an object with a keys member that is a list")]
    NotASet,
    #[error("{0} keys; at most {MAX_KEYS} are accepted")]
    TooManyKeys(usize),
    #[error("no usable signing key ({0})")]
    NoUsableKey(String),
}

/// The kind of a key, as far as choosing it for an algorithm goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa { bits: usize },
    Ec(Curve),
    Ed25519,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl KeyKind {
    /// Whether a key of this kind can check `alg` at all.
    pub fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Rsa { .. } => alg.is_rsa(),
            KeyKind::Ec(Curve::P256) => alg == Algorithm::ES256,
            KeyKind::Ec(Curve::P384) => alg == Algorithm::ES384,
            KeyKind::Ec(Curve::P521) => alg == Algorithm::ES512,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        }
    }

    pub fn describe(self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA {bits}-bit"),
            KeyKind::Ec(Curve::P256) => "EC P-256".into(),
            KeyKind::Ec(Curve::P384) => "EC P-384".into(),
            KeyKind::Ec(Curve::P521) => "EC P-521".into(),
            KeyKind::Ed25519 => "OKP Ed25519".into(),
        }
    }
}

/// One usable key, with a verifier for each algorithm it may check.
#[derive(Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    pub kind: KeyKind,
    /// The key's own `alg`, when it names one.
    pub alg: Option<Algorithm>,
    /// The entry also carried private key members (`d`, or RSA's `p`, `q`,
    /// `dp`, `dq`, `qi`): whoever can read the set can sign with the key.
    /// Only the public members are used.
    pub private: bool,
    verifiers: Vec<VerifyKey>,
}

impl Jwk {
    /// The verifier for `alg`, if this key may check it.
    pub fn verifier(&self, alg: Algorithm) -> Option<&VerifyKey> {
        self.verifiers.iter().find(|v| v.algorithm() == alg)
    }

    /// Every algorithm this key may check.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.verifiers.iter().map(VerifyKey::algorithm)
    }
}

/// A key of the document that was not taken, and why (for logs and
/// `token explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Position in the document's `keys`.
    pub index: usize,
    pub kid: Option<String>,
    pub reason: String,
}

/// A parsed key set.
#[derive(Debug, Default)]
pub struct JwkSet {
    keys: Vec<Jwk>,
    by_kid: HashMap<String, Vec<usize>>,
    skipped: Vec<Skipped>,
    fingerprint: [u8; 32],
}

/// Why no key checks a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyMiss {
    #[error("no key has kid {0:?}")]
    UnknownKid(String),
    /// The set names the kid only on keys it could not take (the reason of
    /// the first): to the request path a kid the set lacks, to the log
    /// what is wrong with it.
    #[error("the key set's key {kid:?} is not usable: {reason}")]
    Unusable { kid: String, reason: String },
    #[error("key {kid:?} does not fit {alg}: {reason}")]
    Unfit {
        kid: String,
        alg: Algorithm,
        reason: String,
    },
    #[error("the token has no kid and no key fits {0}")]
    NoKeyForAlg(Algorithm),
    #[error("the token has no kid and {count} keys fit {alg}; a kid is needed to choose")]
    Ambiguous { alg: Algorithm, count: usize },
    #[error("the token's kid is not a string")]
    KidNotString,
}

impl JwkSet {
    /// Parses a JWK Set document, keeping the keys usable for `allowed`
    /// algorithms (HS* and `none` are never among them: the caller's list
    /// is the provider's `algorithms`, checked at config load).
    pub fn parse(document: &[u8], allowed: &[Algorithm]) -> Result<JwkSet, JwksError> {
        let value: Value =
            serde_json::from_slice(document).map_err(|e| JwksError::NotJson(e.to_string()))?;
        let Some(Value::Array(entries)) = value.as_object().and_then(|o| o.get("keys")) else {
            return Err(JwksError::NotASet);
        };
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys(entries.len()));
        }
        let allowed: Vec<Algorithm> = allowed.iter().copied().filter(|a| !a.is_hmac()).collect();
        let mut set = JwkSet::default();
        for (index, entry) in entries.iter().enumerate() {
            let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
            match parse_key(entry, &allowed) {
                Ok(key) => {
                    if let Some(kid) = &key.kid {
                        set.by_kid
                            .entry(kid.clone())
                            .or_default()
                            .push(set.keys.len());
                    }
                    set.keys.push(key);
                }
                Err(reason) => set.skipped.push(Skipped { index, kid, reason }),
            }
        }
        if set.keys.is_empty() {
            let why = match set.skipped.first() {
                None => "the set is empty".to_owned(),
                Some(s) if set.skipped.len() == 1 => format!("the one key: {}", s.reason),
                Some(s) => format!(
                    "{} keys, none usable; first: {}",
                    set.skipped.len(),
                    s.reason
                ),
            };
            return Err(JwksError::NoUsableKey(why));
        }
        set.fingerprint = fingerprint(entries, &set);
        Ok(set)
    }

    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Equal for two sets holding the same usable keys, whatever the order
    /// or the skipped entries: a refresh that changes nothing is not a new
    /// generation of keys.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The usable keys the document published with private members, by
    /// kid: a set an IdP serves so lets anyone sign tokens they accept.
    pub fn private_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.private)
            .map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".to_owned()))
            .collect()
    }

    /// Why no taken key has `kid`: none in the document has it, or only
    /// keys that were skipped.
    fn missing(&self, kid: &str) -> KeyMiss {
        match self.skipped.iter().find(|s| s.kid.as_deref() == Some(kid)) {
            Some(s) => KeyMiss::Unusable {
                kid: kid.to_owned(),
                reason: s.reason.clone(),
            },
            None => KeyMiss::UnknownKid(kid.to_owned()),
        }
    }

    /// Whether some key has this kid.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The key that checks a token signed with `alg` and naming `kid`
    /// (its header's `kid`; `None` when absent).
    ///
    /// With a kid: a key with that kid that may check `alg`. Without: the
    /// one key that may check `alg` (kind, curve, and its own `alg` if set);
    /// none or several is a miss (SPEC §3.6).
    pub fn select(
        &self,
        alg: Algorithm,
        kid: Option<&Value>,
    ) -> Result<(&Jwk, &VerifyKey), KeyMiss> {
        match kid {
            Some(Value::String(kid)) => {
                let Some(candidates) = self.by_kid.get(kid) else {
                    return Err(self.missing(kid));
                };
                let mut reason = None;
                for &i in candidates {
                    let Some(key) = self.keys.get(i) else {
                        continue;
                    };
                    match key.verifier(alg) {
                        Some(v) => return Ok((key, v)),
                        None => reason.get_or_insert_with(|| unfit_reason(key, alg)),
                    };
                }
                Err(KeyMiss::Unfit {
                    kid: kid.clone(),
                    alg,
                    reason: reason.unwrap_or_default(),
                })
            }
            Some(_) => Err(KeyMiss::KidNotString),
            None => {
                let mut fitting = self
                    .keys
                    .iter()
                    .filter_map(|k| k.verifier(alg).map(|v| (k, v)));
                match (fitting.next(), fitting.count()) {
                    (Some(found), 0) => Ok(found),
                    (Some(_), more) => Err(KeyMiss::Ambiguous {
                        alg,
                        count: more + 1,
                    }),
                    (None, _) => Err(KeyMiss::NoKeyForAlg(alg)),
                }
            }
        }
    }

    /// Another key under the token's `kid` that fits `alg`, after the one
    /// `select` chose, that verifies the signature. An IdP may publish two
    /// keys under one kid (a rotation that reused it); each is tried in
    /// turn, as Envoy does, up to [`MAX_KEYS_PER_KID`] fitting keys in
    /// all. Called only when the chosen key failed, so a good token is
    /// verified once.
    pub fn verifying_twin(
        &self,
        alg: Algorithm,
        kid: Option<&Value>,
        message: &[u8],
        signature: &[u8],
    ) -> Option<&Jwk> {
        let Some(Value::String(kid)) = kid else {
            return None;
        };
        self.by_kid
            .get(kid)?
            .iter()
            .filter_map(|&i| {
                let key = self.keys.get(i)?;
                Some((key, key.verifier(alg)?))
            })
            .skip(1)
            .take(MAX_KEYS_PER_KID - 1)
            .find(|(_, verifier)| verifier.verify(message, signature))
            .map(|(key, _)| key)
    }
}

fn unfit_reason(key: &Jwk, alg: Algorithm) -> String {
    if !key.kind.fits(alg) {
        return format!("it is an {} key", key.kind.describe());
    }
    match key.alg {
        Some(own) if own != alg => format!("its alg is {own}"),
        _ => format!("{alg} is not among the provider's algorithms"),
    }
}

/// SHA-256 over the usable keys' canonical form, in a stable order.
fn fingerprint(entries: &[Value], set: &JwkSet) -> [u8; 32] {
    let skipped: Vec<usize> = set.skipped.iter().map(|s| s.index).collect();
    let mut canonical: Vec<String> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !skipped.contains(i))
        .map(|(_, e)| {
            let Some(o) = e.as_object() else {
                return String::new();
            };
            PUBLIC_MEMBERS
                .iter()
                .map(|m| {
                    format!(
                        "{m}={}",
                        o.get(*m).map(Value::to_string).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\u{1f}")
        })
        .collect();
    canonical.sort();
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.join("\u{1e}").as_bytes(),
    );
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// One key, or why it is not taken.
fn parse_key(entry: &Value, allowed: &[Algorithm]) -> Result<Jwk, String> {
    let Value::Object(o) = entry else {
        return Err("not a JSON object".into());
    };
    let kid = match o.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err("kid is not a string".into()),
    };
    let kty = match o.get("kty") {
        Some(Value::String(k)) => k.as_str(),
        _ => return Err("no kty".into()),
    };
    match o.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) => return Err(format!("use is {u:?}, not sig")),
        Some(_) => return Err("use is not a string".into()),
    }
    if let Some(ops) = o.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err("key_ops does not include verify".into());
        }
    }
    let own_alg = match o.get("alg") {
        None => None,
        Some(Value::String(a)) => match a.parse::<Algorithm>() {
            Ok(alg) if alg.is_hmac() => {
                return Err(format!(
                    "alg {a} is symmetric; never accepted from a key set"
                ))
            }
            Ok(alg) => Some(alg),
            Err(_) => return Err(format!("alg {a:?} is not a supported signature algorithm")),
        },
        Some(_) => return Err("alg is not a string".into()),
    };
    let kind = match kty {
        "RSA" => {
            let n = member(o, "n")?;
            KeyKind::Rsa {
                bits: bit_length(&n),
            }
        }
        "EC" => match o.get("crv").and_then(Value::as_str) {
            Some("P-256") => KeyKind::Ec(Curve::P256),
            Some("P-384") => KeyKind::Ec(Curve::P384),
            Some("P-521") => KeyKind::Ec(Curve::P521),
            Some(other) => return Err(format!("EC curve {other:?} is not supported")),
            None => return Err("EC key without crv".into()),
        },
        "OKP" => match o.get("crv").and_then(Value::as_str) {
            Some("Ed25519") => KeyKind::Ed25519,
            Some(other) => return Err(format!("OKP curve {other:?} is not supported")),
            None => return Err("OKP key without crv".into()),
        },
        "oct" => return Err("a symmetric (oct) key; never accepted from a key set".into()),
        other => return Err(format!("kty {other:?} is not supported")),
    };
    if let KeyKind::Rsa { bits } = kind {
        if bits < *crate::jwt::keys::RSA_BITS.start() {
            return Err(format!(
                "RSA key of {bits} bits; at least 2048 are required"
            ));
        }
        if bits > *crate::jwt::keys::RSA_BITS.end() {
            return Err(format!(
                "RSA key of {bits} bits; at most 8192 are supported (no signature it makes verifies)"
            ));
        }
    }
    if let Some(own) = own_alg {
        if !kind.fits(own) {
            return Err(format!("alg {own} does not fit an {} key", kind.describe()));
        }
    }
    let algs: Vec<Algorithm> = allowed
        .iter()
        .copied()
        .filter(|&a| kind.fits(a) && own_alg.is_none_or(|own| own == a))
        .collect();
    if algs.is_empty() {
        return Err(match own_alg {
            Some(own) => format!("its alg {own} is not among the provider's algorithms"),
            None => format!(
                "an {} key, and none of the provider's algorithms uses one",
                kind.describe()
            ),
        });
    }
    let mut verifiers = Vec::with_capacity(algs.len());
    for alg in algs {
        let key = match kind {
            KeyKind::Rsa { .. } => {
                VerifyKey::from_rsa_components(alg, &member(o, "n")?, &member(o, "e")?)
            }
            KeyKind::Ec(_) => {
                VerifyKey::from_ec_coordinates(alg, &member(o, "x")?, &member(o, "y")?)
            }
            KeyKind::Ed25519 => VerifyKey::from_ed25519(&member(o, "x")?),
        };
        verifiers.push(key.map_err(|e| format!("not a valid {} key: {e}", kind.describe()))?);
    }
    Ok(Jwk {
        kid,
        kind,
        alg: own_alg,
        private: PRIVATE_MEMBERS.iter().any(|m| o.contains_key(*m)),
        verifiers,
    })
}

/// JWK members that belong to a private key (RFC 7518 §6.2.2, §6.3.2;
/// RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// `document` (a JWK Set) with each key cut down to the members that decide
/// what it verifies, for the disk cache: whatever else a provider
/// published (private members, an `oct` key's `k`, extensions) is never
/// written. Keys the set holds in another form than an object are left
/// out. `None` when it is not a JWK Set.
pub fn public_document(document: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(document).ok()?;
    let keys = value.get("keys")?.as_array()?;
    let public: Vec<Value> = keys
        .iter()
        .filter_map(Value::as_object)
        .map(|key| {
            let kept = PUBLIC_MEMBERS
                .iter()
                .filter_map(|m| Some(((*m).to_owned(), key.get(*m)?.clone())));
            Value::Object(kept.collect())
        })
        .collect();
    Some(serde_json::json!({ "keys": public }).to_string())
}

/// Whether `document` holds a key member beyond the public ones
/// [`public_document`] keeps: a cache written before keys were cut down.
pub fn holds_more_than_public(document: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(document) else {
        return false;
    };
    let keys = value.get("keys").and_then(Value::as_array);
    keys.into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .any(|key| key.keys().any(|m| !PUBLIC_MEMBERS.contains(&m.as_str())))
}

/// A base64url member (strict: no padding, no stray bits).
fn member(o: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    match o.get(name) {
        Some(Value::String(s)) => URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| format!("{name} is not base64url")),
        Some(_) => Err(format!("{name} is not a string")),
        None => Err(format!("no {name}")),
    }
}

/// Bits of a big-endian unsigned integer.
fn bit_length(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        Some(i) => (n.len() - i) * 8 - n.get(i).map_or(0, |b| b.leading_zeros() as usize),
        None => 0,
    }
}

#[cfg(test)]
mod tests;
