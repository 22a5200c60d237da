//! Differential tests: our JWS signing and verification agree with
//! independent implementations, for all thirteen algorithms.
//!
//! Oracles: the `jsonwebtoken` crate for HS*, RS*, PS*, ES256, ES384 and
//! EdDSA; RustCrypto's `p521` for ES512, which `jsonwebtoken` lacks. Both
//! directions are checked: tokens the oracle mints verify with our
//! [`VerifyKey`] (and stop verifying once a payload or signature byte changes,
//! or under another key), and tokens our [`SigningKey`] mints verify with the
//! oracle (which, as a control, rejects them once tampered with).
//!
//! `jsonwebtoken` is built on aws-lc-rs, as we are: it is independent of our
//! key parsing, algorithm mapping and JWS framing, not of the arithmetic.
//! `p521` shares nothing with us.
//!
//! What this does not test: claims (`exp`, `nbf`, ...), which are policy.

use std::collections::HashSet;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self as awslc, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken as oracle;
use jwtgate_core::jwt::{Algorithm, SigningKey, Token, VerifyKey};
use p521::ecdsa::signature::{Signer, Verifier};
use p521::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde_json::{json, Map, Value};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/keys");

const SECRET: &[u8] = b"differential-test-secret-0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8] = b"differential-test-secret-0123456789abcdef0123456789abcdeF";

/// The key material one algorithm is tested with.
enum Keys {
    /// A shared secret, and another one that must not verify.
    Secret {
        secret: &'static [u8],
        other: &'static [u8],
    },
    /// A PKCS#8 private key and its SPKI public key (PEM), and the SPKI DER of
    /// an unrelated key of the same type that must not verify.
    Pair {
        private_pem: String,
        public_pem: String,
        other_public_der: Vec<u8>,
    },
}

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).expect("test key present")
}

fn keys(alg: Algorithm) -> Keys {
    let pair = |base: &str, other_public_der: Vec<u8>| Keys::Pair {
        private_pem: read(&format!("{base}.key")),
        public_pem: read(&format!("{base}.pub")),
        other_public_der,
    };
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Keys::Secret {
            secret: SECRET,
            other: OTHER_SECRET,
        },
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            let other = pem::parse(read("rsa2.pub")).expect("rsa2.pub is PEM");
            pair("rsa", other.contents().to_vec())
        }
        Algorithm::ES256 => pair(
            "ec-p256",
            fresh_ecdsa_spki(&awslc::ECDSA_P256_SHA256_FIXED_SIGNING),
        ),
        Algorithm::ES384 => pair(
            "ec-p384",
            fresh_ecdsa_spki(&awslc::ECDSA_P384_SHA384_FIXED_SIGNING),
        ),
        Algorithm::ES512 => pair(
            "ec-p521",
            fresh_ecdsa_spki(&awslc::ECDSA_P521_SHA512_FIXED_SIGNING),
        ),
        Algorithm::EdDSA => {
            let key = awslc::Ed25519KeyPair::generate().expect("generate Ed25519 key");
            let der = key.public_key().as_der().expect("Ed25519 SPKI");
            pair("ed25519", der.as_ref().to_vec())
        }
    }
}

/// The SPKI DER of a newly generated key on the same curve: a "different key".
fn fresh_ecdsa_spki(alg: &'static awslc::EcdsaSigningAlgorithm) -> Vec<u8> {
    let key = awslc::EcdsaKeyPair::generate(alg).expect("generate ECDSA key");
    let der = key.public_key().as_der().expect("ECDSA SPKI");
    der.as_ref().to_vec()
}

fn our_verify_key(alg: Algorithm, keys: &Keys) -> VerifyKey {
    match keys {
        Keys::Secret { secret, .. } => VerifyKey::from_secret(alg, secret),
        Keys::Pair { public_pem, .. } => VerifyKey::from_public_pem(alg, public_pem),
    }
    .unwrap_or_else(|e| panic!("{alg}: our verify key: {e}"))
}

fn our_other_verify_key(alg: Algorithm, keys: &Keys) -> VerifyKey {
    match keys {
        Keys::Secret { other, .. } => VerifyKey::from_secret(alg, other),
        Keys::Pair {
            other_public_der, ..
        } => VerifyKey::from_public_der(alg, other_public_der),
    }
    .unwrap_or_else(|e| panic!("{alg}: our other verify key: {e}"))
}

fn our_signing_key(alg: Algorithm, keys: &Keys) -> SigningKey {
    match keys {
        Keys::Secret { secret, .. } => SigningKey::from_secret(alg, secret),
        Keys::Pair { private_pem, .. } => SigningKey::from_private_pem(alg, private_pem),
    }
    .unwrap_or_else(|e| panic!("{alg}: our signing key: {e}"))
}

fn claims() -> Map<String, Value> {
    let Value::Object(map) = json!({
        "sub": "alice",
        "iss": "differential",
        "exp": 4_102_444_800_u64, // 2100-01-01
        "scope": ["read", "write"],
        "n": 42,
    }) else {
        unreachable!("a JSON object literal")
    };
    map
}

// ---------------------------------------------------------------------------
// The oracles
// ---------------------------------------------------------------------------

/// `jsonwebtoken`'s name for an algorithm; `None` for ES512, which it lacks.
fn jsonwebtoken_alg(alg: Algorithm) -> Option<oracle::Algorithm> {
    Some(match alg {
        Algorithm::HS256 => oracle::Algorithm::HS256,
        Algorithm::HS384 => oracle::Algorithm::HS384,
        Algorithm::HS512 => oracle::Algorithm::HS512,
        Algorithm::RS256 => oracle::Algorithm::RS256,
        Algorithm::RS384 => oracle::Algorithm::RS384,
        Algorithm::RS512 => oracle::Algorithm::RS512,
        Algorithm::PS256 => oracle::Algorithm::PS256,
        Algorithm::PS384 => oracle::Algorithm::PS384,
        Algorithm::PS512 => oracle::Algorithm::PS512,
        Algorithm::ES256 => oracle::Algorithm::ES256,
        Algorithm::ES384 => oracle::Algorithm::ES384,
        Algorithm::EdDSA => oracle::Algorithm::EdDSA,
        Algorithm::ES512 => return None,
    })
}

/// A compact JWS over `claims`, minted by the oracle.
fn oracle_sign(alg: Algorithm, keys: &Keys, claims: &Map<String, Value>) -> String {
    let Some(jwt_alg) = jsonwebtoken_alg(alg) else {
        return p521_sign(keys, claims);
    };
    let key = match keys {
        Keys::Secret { secret, .. } => Ok(oracle::EncodingKey::from_secret(secret)),
        Keys::Pair { private_pem, .. } => {
            let pem = private_pem.as_bytes();
            match alg {
                Algorithm::ES256 | Algorithm::ES384 => oracle::EncodingKey::from_ec_pem(pem),
                Algorithm::EdDSA => oracle::EncodingKey::from_ed_pem(pem),
                _ => oracle::EncodingKey::from_rsa_pem(pem),
            }
        }
    }
    .unwrap_or_else(|e| panic!("{alg}: jsonwebtoken encoding key: {e}"));
    oracle::encode(&oracle::Header::new(jwt_alg), claims, &key)
        .unwrap_or_else(|e| panic!("{alg}: jsonwebtoken encode: {e}"))
}

/// Whether the oracle accepts `token`'s signature. Claims are not checked:
/// no required claims, no `exp`/`nbf`/`aud` validation.
fn oracle_verify(alg: Algorithm, keys: &Keys, token: &str) -> bool {
    let Some(jwt_alg) = jsonwebtoken_alg(alg) else {
        return p521_verify(keys, token);
    };
    let key = match keys {
        Keys::Secret { secret, .. } => Ok(oracle::DecodingKey::from_secret(secret)),
        Keys::Pair { public_pem, .. } => {
            let pem = public_pem.as_bytes();
            match alg {
                Algorithm::ES256 | Algorithm::ES384 => oracle::DecodingKey::from_ec_pem(pem),
                Algorithm::EdDSA => oracle::DecodingKey::from_ed_pem(pem),
                _ => oracle::DecodingKey::from_rsa_pem(pem),
            }
        }
    }
    .unwrap_or_else(|e| panic!("{alg}: jsonwebtoken decoding key: {e}"));
    let mut validation = oracle::Validation::new(jwt_alg);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    oracle::decode::<Map<String, Value>>(token, &key, &validation).is_ok()
}

/// ES512 with RustCrypto: header `{"alg":"ES512","typ":"JWT"}`, the signature
/// raw fixed-width `r || s` (2 × 66 bytes), as RFC 7518 §3.4 prescribes.
fn p521_sign(keys: &Keys, claims: &Map<String, Value>) -> String {
    let Keys::Pair { private_pem, .. } = keys else {
        panic!("ES512 takes a key pair")
    };
    let secret = p521::SecretKey::from_pkcs8_pem(private_pem).expect("ec-p521.key is PKCS#8");
    let key = p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).expect("P-521 scalar");
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES512","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string());
    let signing_input = format!("{header}.{payload}");
    let signature: p521::ecdsa::Signature = key.sign(signing_input.as_bytes());
    let raw = signature.to_bytes();
    assert_eq!(raw.len(), 132, "P-521 JWS signatures are 132 bytes");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(raw))
}

fn p521_verify(keys: &Keys, token: &str) -> bool {
    let Keys::Pair { public_pem, .. } = keys else {
        panic!("ES512 takes a key pair")
    };
    let public = p521::PublicKey::from_public_key_pem(public_pem).expect("ec-p521.pub is SPKI");
    let key = p521::ecdsa::VerifyingKey::from_affine(*public.as_affine()).expect("P-521 point");
    let Some((signing_input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(raw) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    // `from_slice` takes exactly 132 bytes, so a DER or truncated signature
    // is refused here, as it must be.
    let Ok(signature) = p521::ecdsa::Signature::from_slice(&raw) else {
        return false;
    };
    key.verify(signing_input.as_bytes(), &signature).is_ok()
}

// ---------------------------------------------------------------------------
// Tampering
// ---------------------------------------------------------------------------

fn segments(token: &str) -> (&str, &str, &str) {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => panic!("not a compact JWS: {token}"),
    }
}

/// `token` with one byte of its payload changed ("alice" becomes "alicf"),
/// still a well-formed JWT, with the original signature.
fn tamper_payload(token: &str) -> String {
    let (header, payload, signature) = segments(token);
    let mut json = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("payload is base64url");
    let at = json
        .windows(5)
        .position(|w| w == b"alice")
        .expect("payload names alice");
    json[at + 4] = b'f';
    format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(json))
}

/// Variants of `token` whose signature is damaged: one byte flipped at the
/// start, middle and end; the last byte dropped; a byte appended; empty.
fn tamper_signature(token: &str) -> Vec<(String, String)> {
    let (header, payload, signature) = segments(token);
    let sig = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("signature is base64url");
    let with = |bytes: &[u8]| format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(bytes));
    let mut out = Vec::new();
    for at in [0, sig.len() / 2, sig.len() - 1] {
        let mut flipped = sig.clone();
        flipped[at] ^= 0x01;
        out.push((format!("byte {at} flipped"), with(&flipped)));
    }
    out.push(("last byte dropped".into(), with(&sig[..sig.len() - 1])));
    let mut longer = sig.clone();
    longer.push(0);
    out.push(("a zero byte appended".into(), with(&longer)));
    out.push(("empty".into(), with(&[])));
    out
}

/// Whether our key accepts `token`; a token that does not even parse is not
/// accepted.
fn we_accept(key: &VerifyKey, token: &str) -> bool {
    match Token::parse(token) {
        Ok(parsed) => key.verify(parsed.signing_input(), parsed.signature()),
        Err(_) => false,
    }
}

/// Fails once, listing every algorithm and case that went wrong.
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn every_algorithm_is_covered_by_an_oracle() {
    assert_eq!(Algorithm::ALL.len(), 13);
    let by_jsonwebtoken = Algorithm::ALL
        .into_iter()
        .filter(|&a| jsonwebtoken_alg(a).is_some())
        .count();
    // Twelve by jsonwebtoken, ES512 by p521.
    assert_eq!(by_jsonwebtoken, 12);
}

#[test]
fn oracle_tokens_verify_with_our_keys() {
    let mut failures = Vec::new();
    for alg in Algorithm::ALL {
        let keys = keys(alg);
        let ours = our_verify_key(alg, &keys);
        let token = oracle_sign(alg, &keys, &claims());

        let parsed = match Token::parse(&token) {
            Ok(parsed) => parsed,
            Err(e) => {
                failures.push(format!("{alg}: oracle token does not parse: {e}"));
                continue;
            }
        };
        if parsed.alg() != alg.as_str() {
            failures.push(format!("{alg}: parsed alg is {:?}", parsed.alg()));
        }
        if parsed.claims() != &claims() {
            failures.push(format!(
                "{alg}: parsed claims differ: {:?}",
                parsed.claims()
            ));
        }
        if !ours.verify(parsed.signing_input(), parsed.signature()) {
            failures.push(format!("{alg}: our key rejects the oracle's token"));
        }
        if we_accept(&our_other_verify_key(alg, &keys), &token) {
            failures.push(format!("{alg}: a different key accepts the oracle's token"));
        }
        if we_accept(&ours, &tamper_payload(&token)) {
            failures.push(format!("{alg}: accepted with a payload byte changed"));
        }
        // Every byte position of the signing input, not only the JSON.
        let input = parsed.signing_input();
        for at in [0, input.len() / 2, input.len() - 1] {
            let mut changed = input.to_vec();
            changed[at] ^= 0x01;
            if ours.verify(&changed, parsed.signature()) {
                failures.push(format!(
                    "{alg}: accepted with signing-input byte {at} flipped"
                ));
            }
        }
        for (what, tampered) in tamper_signature(&token) {
            if we_accept(&ours, &tampered) {
                failures.push(format!("{alg}: accepted with signature {what}"));
            }
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn our_tokens_verify_with_the_oracle() {
    let mut failures = Vec::new();
    for alg in Algorithm::ALL {
        let keys = keys(alg);
        let token = our_signing_key(alg, &keys)
            .encode(&claims())
            .unwrap_or_else(|e| panic!("{alg}: our encode: {e}"));

        if !oracle_verify(alg, &keys, &token) {
            failures.push(format!("{alg}: the oracle rejects our token"));
        }
        // Controls: the oracle is not a rubber stamp.
        if oracle_verify(alg, &keys, &tamper_payload(&token)) {
            failures.push(format!(
                "{alg}: the oracle accepts our token with a payload byte changed"
            ));
        }
        for (what, tampered) in tamper_signature(&token) {
            if oracle_verify(alg, &keys, &tampered) {
                failures.push(format!(
                    "{alg}: the oracle accepts our token with signature {what}"
                ));
            }
        }
        // And the round trip through our own verifier.
        if !we_accept(&our_verify_key(alg, &keys), &token) {
            failures.push(format!("{alg}: our key rejects our own token"));
        }
    }
    assert_no_failures(&failures);
}

/// The signature length each algorithm must produce: the HMAC output size,
/// the RSA modulus size (2048-bit test key), or the fixed-width ECDSA
/// `r || s` / Ed25519 signature of RFC 7518 §3.4 and RFC 8037.
#[test]
fn our_signatures_have_the_jws_length() {
    let mut failures = Vec::new();
    for alg in Algorithm::ALL {
        let expected = match alg {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            Algorithm::ES256 => 64,
            Algorithm::ES384 => 96,
            Algorithm::ES512 => 132,
            Algorithm::EdDSA => 64,
            _ => 256,
        };
        let keys = keys(alg);
        for (who, token) in [
            (
                "ours",
                our_signing_key(alg, &keys)
                    .encode(&claims())
                    .expect("encode"),
            ),
            ("oracle", oracle_sign(alg, &keys, &claims())),
        ] {
            let (_, _, signature) = segments(&token);
            let len = URL_SAFE_NO_PAD.decode(signature).expect("base64url").len();
            if len != expected {
                failures.push(format!(
                    "{alg}: {who} signature is {len} bytes, expected {expected}"
                ));
            }
        }
    }
    assert_no_failures(&failures);
}

/// A token the oracle signed for one algorithm never verifies under a key
/// built for a sibling algorithm over the same key material (RS256 vs PS256,
/// RS256 vs RS384, HS256 vs HS512, ...): the algorithm pins hash and padding.
#[test]
fn oracle_tokens_do_not_verify_under_a_sibling_algorithm() {
    let mut failures = Vec::new();
    for signed in Algorithm::ALL {
        let keys = keys(signed);
        let token = oracle_sign(signed, &keys, &claims());
        let parsed = Token::parse(&token).expect("oracle token parses");
        for other in Algorithm::ALL.into_iter().filter(|&o| o != signed) {
            let key = match &keys {
                Keys::Secret { secret, .. } => VerifyKey::from_secret(other, secret),
                Keys::Pair { public_pem, .. } => VerifyKey::from_public_pem(other, public_pem),
            };
            // A key that cannot even be built for `other` (an EC key for
            // RS256, a secret for ES256) is refused at load: nothing to test.
            let Ok(key) = key else { continue };
            if key.verify(parsed.signing_input(), parsed.signature()) {
                failures.push(format!("{signed} token verifies under a {other} key"));
            }
        }
    }
    assert_no_failures(&failures);
}
