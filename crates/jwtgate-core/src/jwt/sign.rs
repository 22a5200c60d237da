//! Minting tokens, for `jwtgate token sign` and for tests. The gateway itself
//! never signs; this lives in the core so that signing and verification share
//! one definition of each algorithm.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use aws_lc_rs::{hmac, signature::EcdsaSigningAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::Algorithm;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("{0} signs with a shared secret (--secret), not a private key")]
    NeedsSecret(Algorithm),
    #[error("{0} signs with a private key (--private-key), not a secret")]
    NeedsPrivateKey(Algorithm),
    #[error("secret is empty")]
    EmptySecret,
    #[error("not a PEM private key: {0}")]
    Pem(String),
    #[error("the private key does not suit {0} (expected PKCS#8 \"PRIVATE KEY\", or \"RSA PRIVATE KEY\" / \"EC PRIVATE KEY\")")]
    Rejected(Algorithm),
    #[error("signing failed")]
    Crypto,
}

/// Key material able to sign for one algorithm.
pub struct SigningKey {
    alg: Algorithm,
    material: Material,
}

enum Material {
    // Boxed: an HMAC key holds precomputed pads, ~1.2 KiB.
    Hmac(Box<hmac::Key>),
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    pub fn from_secret(alg: Algorithm, secret: &[u8]) -> Result<Self, SignError> {
        let hmac_alg = alg.hmac().ok_or(SignError::NeedsPrivateKey(alg))?;
        if secret.is_empty() {
            return Err(SignError::EmptySecret);
        }
        Ok(SigningKey {
            alg,
            material: Material::Hmac(Box::new(hmac::Key::new(hmac_alg, secret))),
        })
    }

    /// A private key from PEM (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`
    /// or SEC1 `EC PRIVATE KEY`).
    pub fn from_private_pem(alg: Algorithm, pem_text: &str) -> Result<Self, SignError> {
        let block = pem::parse(pem_text.trim()).map_err(|e| SignError::Pem(e.to_string()))?;
        let der = block.contents();
        let rejected = |_| SignError::Rejected(alg);
        let material = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(SignError::NeedsSecret(alg))
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Material::Rsa(match block.tag() {
                "RSA PRIVATE KEY" => RsaKeyPair::from_der(der).map_err(rejected)?,
                _ => RsaKeyPair::from_pkcs8(der).map_err(rejected)?,
            }),
            Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
                let ecdsa = ecdsa_signing(alg);
                Material::Ecdsa(match block.tag() {
                    "EC PRIVATE KEY" => {
                        EcdsaKeyPair::from_private_key_der(ecdsa, der).map_err(rejected)?
                    }
                    _ => EcdsaKeyPair::from_pkcs8(ecdsa, der).map_err(rejected)?,
                })
            }
            Algorithm::EdDSA => Material::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?,
            ),
        };
        Ok(SigningKey { alg, material })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The raw JWS signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match &self.material {
            Material::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Material::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig)
                    .map_err(|_| SignError::Crypto)?;
                Ok(sig)
            }
            Material::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Crypto),
            Material::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }

    /// A compact JWS with header `{"alg":..,"typ":"JWT"}` and `claims`.
    pub fn encode(&self, claims: &Map<String, Value>) -> Result<String, SignError> {
        let header = serde_json::json!({"alg": self.alg.as_str(), "typ": "JWT"});
        self.encode_with_header(&header, claims)
    }

    /// A compact JWS whose header names the signing key's `kid` (as an
    /// identity provider's tokens do); without one, as [`Self::encode`].
    pub fn encode_with_kid(
        &self,
        claims: &Map<String, Value>,
        kid: Option<&str>,
    ) -> Result<String, SignError> {
        let mut header = serde_json::json!({"alg": self.alg.as_str(), "typ": "JWT"});
        if let (Some(kid), Value::Object(h)) = (kid, &mut header) {
            h.insert("kid".into(), Value::String(kid.to_owned()));
        }
        self.encode_with_header(&header, claims)
    }

    /// A compact JWS with an explicit header (tests use this to forge
    /// `alg: none`, mismatched algorithms and the like).
    pub fn encode_with_header(
        &self,
        header: &Value,
        claims: &Map<String, Value>,
    ) -> Result<String, SignError> {
        let mut out = String::with_capacity(256);
        out.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string()));
        let sig = self.sign(out.as_bytes())?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(out)
    }
}

fn ecdsa_signing(alg: Algorithm) -> &'static EcdsaSigningAlgorithm {
    match alg {
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Algorithm::ES512 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}
