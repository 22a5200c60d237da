//! JSON Web Tokens in compact JWS form: splitting and decoding
//! ([`token`]), the algorithms and their key material ([`keys`]), and
//! signing for `jwtgate token sign` ([`sign`]).
//!
//! What this module does not do: decide which consumer a token belongs to, or
//! whether its claims are acceptable; that is [`crate::policy`].

pub mod jwk;
pub mod keys;
pub mod sign;
pub mod token;

#[cfg(test)]
mod tests;

pub use jwk::{JwkSet, JwksError, KeyMiss};
pub use keys::{KeyError, VerifyKey};
pub use sign::{SignError, SigningKey};
pub use token::{Token, TokenError, MAX_TOKEN_BYTES};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Where a token stands in the blacklist (SPEC §3.4, §3.11): what is
/// stored instead of the token itself.
///
/// A revocation names the token, not its encoding. The header and payload
/// are covered by the signature, so an attacker cannot re-encode them; the
/// signature is the one part a holder can re-encode without the key (ECDSA
/// `s` and `n - s` both verify; RSA-PSS and ECDSA signers may produce a new
/// signature for the same input). So the key is the SHA-256 of the signing
/// input, `header.payload`, whatever signature rides along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationKey {
    /// SHA-256 of `header.payload`: what revocations are written under.
    pub signing_input: [u8; 32],
    /// SHA-256 of the whole token text: what jwtgate wrote before
    /// revocations were keyed on the signing input. Still checked, so that
    /// blacklists written before an upgrade keep refusing what they
    /// refused; such entries expire with their tokens.
    pub legacy: [u8; 32],
}

impl RevocationKey {
    /// The keys of a parsed token.
    pub fn of(token: &Token<'_>) -> Self {
        RevocationKey {
            signing_input: sha256(token.signing_input()),
            legacy: sha256(token.raw().as_bytes()),
        }
    }

    /// Both digests, in the order the blacklist probes them.
    pub fn digests(&self) -> [[u8; 32]; 2] {
        [self.signing_input, self.legacy]
    }
}

/// The least a revocation outlives its token's `exp`, whatever the leeway
/// of the routes when it was made: a `leeway_seconds` raised later, up to
/// this (the most leeway `check` takes without a warning), does not bring
/// a logged-out token back for the seconds it adds.
pub const REVOCATION_GRACE_SECONDS: i64 = 300;

/// Until when a revocation of a token expiring at `exp` lasts, where the
/// largest leeway of any route is `max_leeway` (SPEC §3.11: no route may
/// still accept it), and at least [`REVOCATION_GRACE_SECONDS`] past `exp`.
pub fn revocation_expiry(exp: i64, max_leeway: i64) -> i64 {
    exp.saturating_add(max_leeway.max(REVOCATION_GRACE_SECONDS))
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

    /// PS*: RSASSA-PSS.
    pub fn is_pss(self) -> bool {
        matches!(self, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
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
