//! Splitting and decoding a compact JWS (`header.payload.signature`).
//!
//! Strict on purpose: exactly three segments, base64url without padding and
//! without stray bits, header and payload JSON objects, at most
//! [`MAX_TOKEN_BYTES`]. Nothing here checks a signature or a claim.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Tokens longer than this are refused before any decoding (SPEC §3.1).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a string is not a well-formed JWT. Every variant maps to the public
/// message `JWT token invalid`; the detail is for logs and `token explain`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {0} bytes, more than the {MAX_TOKEN_BYTES} allowed")]
    TooLarge(usize),
    #[error("token has {0} segments, a JWS has exactly 3 (header.payload.signature)")]
    SegmentCount(usize),
    #[error("{0} segment is not strict base64url without padding")]
    Base64(Segment),
    #[error("{0} segment is not a JSON object")]
    NotJsonObject(Segment),
    /// Not JSON as this parser reads it: the reason names the limit met
    /// (nesting deeper than 128, a number past f64, a lone surrogate).
    #[error("{0} segment is not JSON (or JSON past this parser's limits): {1}")]
    NotJson(Segment, String),
    #[error("header has no \"alg\" string")]
    MissingAlg,
}

/// Which part of the token a decoding error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Header,
    Payload,
    Signature,
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        })
    }
}

/// A decoded, not yet verified, token.
#[derive(Debug, Clone)]
pub struct Token<'a> {
    raw: &'a str,
    signing_input: &'a str,
    alg: String,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: Vec<u8>,
}

impl<'a> Token<'a> {
    /// Decodes `raw` without verifying anything.
    pub fn parse(raw: &'a str) -> Result<Token<'a>, TokenError> {
        if raw.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(raw.len()));
        }
        let mut parts = raw.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::SegmentCount(raw.split('.').count()));
        };
        let header = decode_object(h, Segment::Header)?;
        let claims = decode_object(p, Segment::Payload)?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Base64(Segment::Signature))?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => a.clone(),
            _ => return Err(TokenError::MissingAlg),
        };
        // header.payload: both segments plus the dot between them.
        let signing_input = &raw[..h.len() + 1 + p.len()];
        Ok(Token {
            raw,
            signing_input,
            alg,
            header,
            claims,
            signature,
        })
    }

    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The bytes the signature covers: `base64(header) "." base64(payload)`.
    pub fn signing_input(&self) -> &'a [u8] {
        self.signing_input.as_bytes()
    }

    /// The `alg` header exactly as the token states it (may be "none" or
    /// anything else; it is compared with the consumer's pinned algorithm).
    pub fn alg(&self) -> &str {
        &self.alg
    }

    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The member names the header and the payload each repeat. The last
    /// of each is the one read (RFC 7515 §5.2, RFC 7519 §4, as PyJWT
    /// does); `token explain` says so. Decodes again: not for the request
    /// path.
    pub fn repeated_members(&self) -> (Vec<String>, Vec<String>) {
        let mut segments = self.raw.split('.');
        let repeated = |segment: Option<&str>| {
            URL_SAFE_NO_PAD
                .decode(segment.unwrap_or_default())
                .map(|json| repeated_names(&json))
                .unwrap_or_default()
        };
        (repeated(segments.next()), repeated(segments.next()))
    }

    /// The payload, keeping nothing else.
    pub fn into_claims(self) -> Map<String, Value> {
        self.claims
    }
}

/// The top-level member names a JSON object text repeats, each once.
fn repeated_names(json: &[u8]) -> Vec<String> {
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut repeated = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(name.clone()) && !repeated.contains(&name) {
                    repeated.push(name);
                }
            }
            Ok(repeated)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_map(&mut de, Names).unwrap_or_default()
}

fn decode_object(segment: &str, which: Segment) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Base64(which))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TokenError::NotJsonObject(which)),
        // serde_json's reasons name a position and a rule, never the text.
        Err(e) => Err(TokenError::NotJson(which, e.to_string())),
    }
}
