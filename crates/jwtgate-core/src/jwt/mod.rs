//! JSON Web Tokens in compact JWS form: splitting and decoding
//! ([`token`]), the algorithms and their key material ([`keys`]), and
//! signing for `jwtgate token sign` ([`sign`]).
//!
//! What this module does not do: decide which consumer a token belongs to, or
//! whether its claims are acceptable; that is [`crate::policy`].

pub mod keys;
pub mod sign;
pub mod token;

#[cfg(test)]
mod tests;

pub use keys::{KeyError, VerifyKey};
pub use sign::{SignError, SigningKey};
pub use token::{Token, TokenError, MAX_TOKEN_BYTES};

/// SHA-256 of the token as presented: what the blacklist stores instead of
/// the token itself.
pub fn token_digest(raw: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

use std::fmt;
use std::str::FromStr;

/// The JWS algorithms jwtgate accepts. `none` is deliberately absent: there is
/// no way to express an unsigned token here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 13] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// HMAC algorithms take a shared secret; all others a public key.
    pub fn is_hmac(self) -> bool {
        self.hmac().is_some()
    }

    /// RS* and PS*: RSA keys.
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        )
    }

    /// The HMAC of an HS* algorithm (one definition for signing and
    /// verifying).
    pub(crate) fn hmac(self) -> Option<aws_lc_rs::hmac::Algorithm> {
        match self {
            Algorithm::HS256 => Some(aws_lc_rs::hmac::HMAC_SHA256),
            Algorithm::HS384 => Some(aws_lc_rs::hmac::HMAC_SHA384),
            Algorithm::HS512 => Some(aws_lc_rs::hmac::HMAC_SHA512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of the thirteen supported algorithms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported algorithm {0:?} (expected one of HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA)")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Exact, case-sensitive, as RFC 7518 names them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}
