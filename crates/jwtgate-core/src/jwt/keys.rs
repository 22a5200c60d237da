//! Verification keys, parsed once when the config is loaded.
//!
//! A key is built *for* one algorithm: an HS256 consumer holds an HMAC key, an
//! RS256 consumer a parsed RSA public key. The token's `alg` never selects the
//! key material, which rules out RS/HS confusion by construction.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};

use super::Algorithm;

/// Why key material cannot be used for an algorithm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0} takes a shared secret, not a public key")]
    NeedsSecret(Algorithm),
    #[error("{0} takes a public key, not a secret")]
    NeedsPublicKey(Algorithm),
    #[error("secret is empty")]
    EmptySecret,
    #[error("not a PEM document: {0}")]
    Pem(String),
    #[error("PEM block is {0:?}; expected \"PUBLIC KEY\" (or \"RSA PUBLIC KEY\" for RS*/PS*)")]
    PemTag(String),
    #[error("the key is not a valid {0} public key (wrong key type or curve, or an RSA key outside 2048 to 8192 bits or whose exponent is not an odd number of at least 3)")]
    Rejected(Algorithm),
    #[error("the PEM text holds {0} blocks: a credential has one key (give another key its own consumer)")]
    PemBlocks(usize),
    #[error("an Ed25519 key of small order: it would verify forged signatures")]
    SmallOrder,
    #[error("an RSASSA-PSS key (id-RSASSA-PSS) cannot check RS* (PKCS#1 v1.5) signatures: give the key as a plain RSA public key (rsaEncryption), or use PS*")]
    PssOnly,
}

/// A key that can check one algorithm's signatures.
pub struct VerifyKey {
    alg: Algorithm,
    material: Material,
}

enum Material {
    // Boxed: an HMAC key holds precomputed pads, ~1.2 KiB.
    Hmac(Box<hmac::Key>),
    Public(ParsedPublicKey),
}

impl std::fmt::Debug for VerifyKey {
    // Never print key material, not even a secret's length.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// An HMAC key for HS256/HS384/HS512.
    pub fn from_secret(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let hmac_alg = alg.hmac().ok_or(KeyError::NeedsPublicKey(alg))?;
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(VerifyKey {
            alg,
            material: Material::Hmac(Box::new(hmac::Key::new(hmac_alg, secret))),
        })
    }

    /// A public key from PEM: `PUBLIC KEY` (SubjectPublicKeyInfo) for every
    /// asymmetric algorithm, or `RSA PUBLIC KEY` (PKCS#1) for RS*/PS*.
    pub fn from_public_pem(alg: Algorithm, pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text.trim()).map_err(|e| KeyError::Pem(pem_problem(&e)))?;
        // A second key after the first was ignored, silently: tokens signed
        // with it were refused as forged (an outside audit).
        let blocks = pem::parse_many(pem_text.trim()).map_or(1, |b| b.len());
        if blocks > 1 {
            return Err(KeyError::PemBlocks(blocks));
        }
        match block.tag() {
            "PUBLIC KEY" => {}
            "RSA PUBLIC KEY" if alg.is_rsa() => {}
            other => return Err(KeyError::PemTag(other.to_owned())),
        }
        Self::from_public_der(alg, block.contents())
    }

    /// A public key from DER (SPKI, or PKCS#1 for RSA).
    pub fn from_public_der(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let verify_alg = verification_alg(alg).ok_or(KeyError::NeedsSecret(alg))?;
        // A key restricted to PSS is no key for PKCS#1 v1.5: aws-lc-rs took
        // it for RS256, and then verified no signature. (For PS* it is what
        // it is for; left to aws-lc-rs.)
        if alg.is_rsa() && !alg.is_pss() && spki_algorithm(der) == Some(RSASSA_PSS) {
            return Err(KeyError::PssOnly);
        }
        // aws-lc-rs checks the RSA modulus size only when verifying; refuse a
        // key outside 2048..=8192 bits now, at load, instead of failing
        // every request later.
        if alg.is_rsa() && rsa_modulus_bits(der).is_none_or(|bits| !RSA_BITS.contains(&bits)) {
            return Err(KeyError::Rejected(alg));
        }
        if alg == Algorithm::EdDSA {
            // An Ed25519 SubjectPublicKeyInfo (RFC 8410) is this fixed
            // prefix and the key's 32 raw bytes: checked, then parsed.
            const ED25519_SPKI: [u8; 12] = [
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            return match der.split_at_checked(ED25519_SPKI.len()) {
                Some((prefix, raw)) if prefix == ED25519_SPKI => Self::from_ed25519(raw),
                _ => Err(KeyError::Rejected(alg)),
            };
        }
        let key = ParsedPublicKey::new(verify_alg, der).map_err(|_| KeyError::Rejected(alg))?;
        Ok(VerifyKey {
            alg,
            material: Material::Public(key),
        })
    }

    /// An RSA key from its modulus and exponent (big-endian bytes, as a
    /// JWK's `n` and `e` carry them), for an RS* or PS* algorithm.
    pub fn from_rsa_components(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        if !alg.is_rsa() {
            return Err(KeyError::Rejected(alg));
        }
        // PKCS#1 RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let mut body = der_integer(n);
        body.extend(der_integer(e));
        Self::from_public_der(alg, &der_wrap(0x30, &body))
    }

    /// An ECDSA key from its affine coordinates (as a JWK's `x` and `y`
    /// carry them: big-endian, exactly the field size), for ES256/384/512.
    pub fn from_ec_coordinates(alg: Algorithm, x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        let size = match alg {
            Algorithm::ES256 => 32,
            Algorithm::ES384 => 48,
            Algorithm::ES512 => 66,
            _ => return Err(KeyError::Rejected(alg)),
        };
        if x.len() != size || y.len() != size {
            return Err(KeyError::Rejected(alg));
        }
        // SEC1 uncompressed point: 0x04 || x || y.
        let mut point = Vec::with_capacity(1 + 2 * size);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Self::from_raw(alg, &point)
    }

    /// An Ed25519 key from its 32 raw bytes (a JWK's `x`).
    pub fn from_ed25519(x: &[u8]) -> Result<Self, KeyError> {
        if x.len() != 32 {
            return Err(KeyError::Rejected(Algorithm::EdDSA));
        }
        if ed25519_small_order(x) {
            return Err(KeyError::SmallOrder);
        }
        Self::from_raw(Algorithm::EdDSA, x)
    }

    fn from_raw(alg: Algorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        let verify_alg = verification_alg(alg).ok_or(KeyError::NeedsSecret(alg))?;
        let key = ParsedPublicKey::new(verify_alg, bytes).map_err(|_| KeyError::Rejected(alg))?;
        Ok(VerifyKey {
            alg,
            material: Material::Public(key),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` over `message`. HMAC tags are compared in
    /// constant time (`hmac::verify`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Material::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }
}

/// Whether the 32 bytes encode a point of small order (1, 2, 4 or 8) or a
/// non-canonical encoding of one. As a public key such a point verifies a
/// signature (R = the identity, S = 0) over every message, so anyone could
/// sign as its owner; RFC 8032's verification does not refuse it, and
/// aws-lc-rs does not either. The list and its comparison (the sign bit
/// ignored) are libsodium's `has_small_order`; a key of the wrong length
/// counts as weak.
fn ed25519_small_order(key: &[u8]) -> bool {
    const SMALL_ORDER: [[u8; 32]; 7] = [
        // y = 0 (order 4)
        [0; 32],
        // y = 1 (order 1, the identity)
        [
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ],
        // the two y of the points of order 8
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef,
            0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88,
            0x6d, 0x53, 0xfc, 0x05,
        ],
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ],
        // y = p - 1 (order 2), then p and p + 1: non-canonical 0 and 1
        ed25519_p_plus(-1),
        ed25519_p_plus(0),
        ed25519_p_plus(1),
    ];
    let Ok(key) = <&[u8; 32]>::try_from(key) else {
        return true;
    };
    SMALL_ORDER
        .iter()
        .any(|weak| weak[..31] == key[..31] && weak[31] == key[31] & 0x7f)
}

/// p + `delta` (p = 2^255 - 19), little-endian, for -1 <= delta <= 1.
const fn ed25519_p_plus(delta: i8) -> [u8; 32] {
    let mut p = [0xff; 32];
    p[0] = (0xed_i16 + delta as i16) as u8;
    p[31] = 0x7f;
    p
}

/// A DER INTEGER holding the unsigned big-endian `value` (leading zeros
/// dropped, one added when the top bit is set).
fn der_integer(value: &[u8]) -> Vec<u8> {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    let mut content = Vec::with_capacity(value.len() + 1);
    if value.get(start).is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(value.get(start..).unwrap_or_default());
    der_wrap(0x02, &content)
}

/// Tag, DER length, contents.
fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        // Fits in seven bits.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        let significant = bytes.get(skip..).unwrap_or_default();
        // At most size_of::<usize>() length bytes: far below 0x7f.
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// 1.2.840.113549.1.1.10, id-RSASSA-PSS: an RSA key restricted to PSS.
const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];

/// The algorithm OID of a SubjectPublicKeyInfo; `None` for anything else
/// (a PKCS#1 key among them).
fn spki_algorithm(der: &[u8]) -> Option<&[u8]> {
    let (tag, body, _) = crate::der::tlv(der)?;
    let (tag2, algorithm, _) = crate::der::tlv(body).filter(|_| tag == 0x30)?;
    let (tag3, oid, _) = crate::der::tlv(algorithm).filter(|_| tag2 == 0x30)?;
    (tag3 == 0x06).then_some(oid)
}

/// The RSA modulus sizes aws-lc-rs verifies with (`RSA_*_2048_8192_*`).
pub(crate) const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// The modulus size of an RSA public key in SPKI or PKCS#1 DER.
pub(crate) fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let (tag, body, _) = crate::der::tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, first, rest) = crate::der::tlv(body)?;
    let pkcs1 = match tag {
        // PKCS#1 RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }.
        0x02 => return Some(integer_bits(first)),
        // SPKI: SEQUENCE { AlgorithmIdentifier, BIT STRING { 0x00, PKCS#1 } }.
        0x30 => {
            let (tag, bits, _) = crate::der::tlv(rest)?;
            if tag != 0x03 {
                return None;
            }
            bits.get(1..)?
        }
        _ => return None,
    };
    let (tag, seq, _) = crate::der::tlv(pkcs1)?;
    let (tag2, n, _) = crate::der::tlv(seq)?;
    (tag == 0x30 && tag2 == 0x02).then(|| integer_bits(n))
}

fn integer_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return 0,
    };
    n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize)
}

/// The aws-lc-rs verification algorithm for an asymmetric JWS algorithm.
/// ECDSA uses the fixed-width `r || s` encoding that JWS prescribes.
fn verification_alg(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
    })
}

/// What is wrong with a PEM document, in words (the `pem` crate's own
/// message for a broken frame is "malformedframing").
fn pem_problem(e: &pem::PemError) -> String {
    match e {
        pem::PemError::MalformedFraming => {
            "expected a -----BEGIN ...----- line, base64, then the matching -----END ...----- line"
                .into()
        }
        other => other.to_string(),
    }
}
