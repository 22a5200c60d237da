//! The examples of RFC 7515 (JSON Web Signature), Appendix A, checked with our
//! [`VerifyKey`]: A.1 HS256, A.2 RS256, A.3 ES256, A.4 ES512 and A.5, the
//! unsecured (`"alg":"none"`) JWS that nothing may accept.
//!
//! The keys come as JWKs in the RFC; we turn them into the DER our key loader
//! takes (PKCS#1 `RSAPublicKey` for A.2, SubjectPublicKeyInfo for A.3/A.4)
//! with the small DER encoder below.
//!
//! Only signatures are checked: the A.1–A.3 tokens expired in 2011
//! (`"exp":1300819380`), and claims are policy, not this module's concern.
//!
//! The vectors are copied verbatim from RFC 7515 Appendix A (compact
//! serializations and JWK members), wrapped at 64 characters as the RFC
//! wraps them. Each one was also checked with OpenSSL 3 before being written
//! down, so a transcription error shows up as a failing test, not a passing
//! one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwtgate_core::jwt::token::{Segment, TokenError};
use jwtgate_core::jwt::{Algorithm, Token, VerifyKey};
use serde_json::{json, Value};

/// A.1.1: the JWS Compact Serialization (HS256).
const A1_TOKEN: &str = concat!(
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
);
/// A.1.1: the symmetric key, the JWK `k` member.
const A1_K: &str = concat!(
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0i",
    "PS4hcgUuTwjAzZr1Z9CAow",
);
/// A.2.1: the JWS Compact Serialization (RS256).
const A2_TOKEN: &str = concat!(
    "eyJhbGciOiJSUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7",
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4",
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K",
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv",
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB",
    "p0igcN_IoypGlUPQGe77Rw",
);
/// A.2.1: the RSA key, the JWK `n` member (2048 bits).
const A2_N: &str = concat!(
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp",
    "-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOW",
    "vG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUs",
    "LA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9k",
    "G4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2",
    "PAcDTW9gb54h4FRWyuXpoQ",
);
/// A.2.1: the RSA key, the JWK `e` member.
const A2_E: &str = "AQAB";
/// A.3.1: the JWS Compact Serialization (ES256).
const A3_TOKEN: &str = concat!(
    "eyJhbGciOiJFUzI1NiJ9",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA",
    "pmWQxfKTUJqPP3-Kg6NU1Q",
);
/// A.3.1: the P-256 key, the JWK `x` member.
const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
/// A.3.1: the P-256 key, the JWK `y` member.
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
/// A.4.1: the JWS Compact Serialization (ES512). Its payload is the
/// seven octets "Payload", not JSON.
const A4_TOKEN: &str = concat!(
    "eyJhbGciOiJFUzUxMiJ9",
    ".",
    "UGF5bG9hZA",
    ".",
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq",
    "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8Kp",
    "EHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn",
);
/// A.4.1: the P-521 key, the JWK `x` member.
const A4_X: &str = concat!(
    "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvL",
    "FV1jSfS9tsz4qUxcWceqwQGk",
);
/// A.4.1: the P-521 key, the JWK `y` member.
const A4_Y: &str = concat!(
    "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4K",
    "kd0AZMaZmh9ubmf63e3kyMj2",
);
/// A.5: the Unsecured JWS (`"alg":"none"`, empty signature).
const A5_TOKEN: &str = concat!(
    "eyJhbGciOiJub25lIn0",
    ".",
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt",
    "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ",
    ".",
);

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/keys");

/// id-ecPublicKey, 1.2.840.10045.2.1.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (P-256), 1.2.840.10045.3.1.7.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp521r1 (P-521), 1.3.132.0.35.
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("{text:?} is not base64url: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// A minimal DER encoder: just enough for the two public key structures.
// ---------------------------------------------------------------------------

/// One tag-length-value, with the definite short or long length form.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(contents.len()) {
        Ok(len) if len < 0x80 => out.push(len),
        _ => {
            let len = contents.len().to_be_bytes();
            let first = len.iter().position(|&b| b != 0).unwrap_or(len.len() - 1);
            let len = &len[first..];
            out.push(0x80 | u8::try_from(len.len()).expect("at most 8 length octets"));
            out.extend_from_slice(len);
        }
    }
    out.extend_from_slice(contents);
    out
}

/// A non-negative INTEGER from its big-endian magnitude: minimal, with a
/// leading zero octet when the high bit is set.
fn der_unsigned(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let magnitude = &magnitude[first..];
    let mut contents = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_none_or(|&b| b & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(magnitude);
    der(0x02, &contents)
}

fn der_sequence(parts: &[&[u8]]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    der_sequence(&[&der_unsigned(n), &der_unsigned(e)])
}

/// `SubjectPublicKeyInfo` of an EC key: `{ { id-ecPublicKey, curve },
/// BIT STRING { 0x04 || x || y } }` (uncompressed point, no unused bits).
fn ec_spki_der(curve: &[u8], x: &[u8], y: &[u8]) -> Vec<u8> {
    let algorithm = der_sequence(&[&der(0x06, OID_EC_PUBLIC_KEY), &der(0x06, curve)]);
    let point = [&[0x00, 0x04], x, y].concat();
    der_sequence(&[&algorithm, &der(0x03, &point)])
}

// ---------------------------------------------------------------------------
// The RFC keys as our VerifyKeys
// ---------------------------------------------------------------------------

fn a1_key(alg: Algorithm) -> VerifyKey {
    VerifyKey::from_secret(alg, &b64(A1_K)).expect("A.1 key")
}

fn a2_der() -> Vec<u8> {
    rsa_public_key_der(&b64(A2_N), &b64(A2_E))
}

fn a2_key(alg: Algorithm) -> VerifyKey {
    VerifyKey::from_public_der(alg, &a2_der()).expect("A.2 key")
}

fn a3_der() -> Vec<u8> {
    ec_spki_der(OID_P256, &b64(A3_X), &b64(A3_Y))
}

fn a3_key() -> VerifyKey {
    VerifyKey::from_public_der(Algorithm::ES256, &a3_der()).expect("A.3 key")
}

fn a4_der() -> Vec<u8> {
    ec_spki_der(OID_P521, &b64(A4_X), &b64(A4_Y))
}

fn a4_key() -> VerifyKey {
    VerifyKey::from_public_der(Algorithm::ES512, &a4_der()).expect("A.4 key")
}

fn testdata_key(alg: Algorithm, file: &str) -> VerifyKey {
    let pem = std::fs::read_to_string(format!("{KEYS}/{file}")).expect("test key present");
    VerifyKey::from_public_pem(alg, &pem).expect("test key loads")
}

// ---------------------------------------------------------------------------
// Checks shared by the examples
// ---------------------------------------------------------------------------

/// (signing input, signature) of a compact JWS, split by hand: A.4's payload
/// is not JSON, so [`Token::parse`] rightly refuses it.
fn split_compact(token: &str) -> (&[u8], Vec<u8>) {
    let (signing_input, signature) = token.rsplit_once('.').expect("a compact JWS");
    (signing_input.as_bytes(), b64(signature))
}

/// `token` with the low bit of one payload octet flipped: the last octet of
/// the first occurrence of `inside` ("joe" becomes "jod"), re-encoded.
fn with_payload_octet_changed(token: &str, inside: &[u8]) -> String {
    let mut parts = token.splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("a compact JWS")
    };
    let mut payload = b64(payload);
    let at = payload
        .windows(inside.len())
        .position(|w| w == inside)
        .expect("payload contains the octets to change")
        + inside.len()
        - 1;
    payload[at] ^= 0x01;
    format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(payload))
}

/// The example verifies; it does not once a payload octet or a signature
/// octet changes.
fn assert_verifies_only_unchanged(key: &VerifyKey, token: &str, payload_octets: &[u8]) {
    let (signing_input, signature) = split_compact(token);
    assert!(
        key.verify(signing_input, &signature),
        "{}: the RFC example does not verify",
        key.algorithm()
    );

    let tampered = with_payload_octet_changed(token, payload_octets);
    let (tampered_input, tampered_signature) = split_compact(&tampered);
    assert_eq!(tampered_signature, signature);
    assert_ne!(tampered_input, signing_input);
    assert!(
        !key.verify(tampered_input, &tampered_signature),
        "{}: verifies with a payload octet changed",
        key.algorithm()
    );

    for at in [0, signature.len() / 2, signature.len() - 1] {
        let mut changed = signature.clone();
        changed[at] ^= 0x01;
        assert!(
            !key.verify(signing_input, &changed),
            "{}: verifies with signature octet {at} changed",
            key.algorithm()
        );
    }
}

/// The JWT claims set that A.1, A.2, A.3 and A.5 all carry, with its CRLFs.
fn assert_rfc_claims(token: &Token<'_>) {
    let expected = json!({
        "iss": "joe",
        "exp": 1_300_819_380_u64,
        "http://example.com/is_root": true,
    });
    assert_eq!(&Value::Object(token.claims().clone()), &expected);
}

// ---------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------

#[test]
fn der_encoder_produces_the_well_known_prefixes() {
    // The fixed SPKI prefixes for uncompressed P-256 and P-521 points.
    let p256 = a3_der();
    assert_eq!(p256.len(), 27 + 64);
    assert_eq!(
        hex(&p256[..27]),
        concat!("3059301306072a8648ce3d020106082a8648ce3d030107034200", "04")
    );
    let p521 = a4_der();
    assert_eq!(p521.len(), 26 + 132);
    assert_eq!(
        hex(&p521[..26]),
        concat!("30819b301006072a8648ce3d020106052b8104002303818600", "04")
    );
    // A 2048-bit modulus with its high bit set takes a zero octet: INTEGER
    // of 257 octets, inside a SEQUENCE with long-form lengths.
    let rsa = a2_der();
    assert_eq!(hex(&rsa[..9]), "3082010a0282010100");
    assert_eq!(&rsa[rsa.len() - 5..], &[0x02, 0x03, 0x01, 0x00, 0x01]);
}

#[test]
fn a1_hs256() {
    let token = Token::parse(A1_TOKEN).expect("A.1 parses");
    assert_eq!(token.alg(), "HS256");
    // The header is `{"typ":"JWT",\r\n "alg":"HS256"}`: JSON with CRLF.
    assert_eq!(
        b64(A1_TOKEN.split('.').next().expect("a header")),
        b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}"
    );
    assert_rfc_claims(&token);
    assert_eq!(b64(A1_K).len(), 64);

    let key = a1_key(Algorithm::HS256);
    assert!(key.verify(token.signing_input(), token.signature()));
    assert_verifies_only_unchanged(&key, A1_TOKEN, b"joe");

    // The tampered token is still a well-formed JWT (iss "jod"), so it is the
    // signature check alone that refuses it.
    let tampered = with_payload_octet_changed(A1_TOKEN, b"joe");
    let parsed = Token::parse(&tampered).expect("tampered A.1 still parses");
    assert_eq!(parsed.claims()["iss"], "jod");
    assert!(!key.verify(parsed.signing_input(), parsed.signature()));

    // The same key under HS384/HS512 does not accept an HS256 tag.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        assert!(!a1_key(alg).verify(token.signing_input(), token.signature()));
    }
}

#[test]
fn a2_rs256() {
    let token = Token::parse(A2_TOKEN).expect("A.2 parses");
    assert_eq!(token.alg(), "RS256");
    assert_rfc_claims(&token);
    assert_eq!(b64(A2_N).len() * 8, 2048);
    assert_eq!(token.signature().len(), 256);

    let key = a2_key(Algorithm::RS256);
    assert!(key.verify(token.signing_input(), token.signature()));
    assert_verifies_only_unchanged(&key, A2_TOKEN, b"joe");

    // Same key, other hash or PSS padding: refused.
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        assert!(
            !a2_key(alg).verify(token.signing_input(), token.signature()),
            "{alg}"
        );
    }
}

#[test]
fn a3_es256() {
    let token = Token::parse(A3_TOKEN).expect("A.3 parses");
    assert_eq!(token.alg(), "ES256");
    assert_rfc_claims(&token);
    // JWS ECDSA signatures are raw r || s, 2 × 32 octets, not DER.
    assert_eq!(token.signature().len(), 64);

    let key = a3_key();
    assert!(key.verify(token.signing_input(), token.signature()));
    assert_verifies_only_unchanged(&key, A3_TOKEN, b"joe");
}

#[test]
fn a4_es512() {
    // The A.4 payload is the seven octets "Payload", not a JSON object; our
    // parser is strict about that (SPEC §3.1), so the token is checked at
    // the signature level only.
    assert_eq!(
        b64(A4_TOKEN.split('.').nth(1).expect("a payload")),
        b"Payload"
    );
    assert!(matches!(
        Token::parse(A4_TOKEN).map(|_| ()),
        Err(TokenError::NotJson(Segment::Payload, _))
    ));
    let (_, signature) = split_compact(A4_TOKEN);
    // Raw r || s, 2 × 66 octets.
    assert_eq!(signature.len(), 132);
    assert_eq!((b64(A4_X).len(), b64(A4_Y).len()), (66, 66));

    assert_verifies_only_unchanged(&a4_key(), A4_TOKEN, b"Payload");
}

#[test]
fn a5_unsecured_jws_parses_but_no_key_accepts_it() {
    let token = Token::parse(A5_TOKEN).expect("A.5 is a well-formed JWS");
    assert_eq!(token.alg(), "none");
    assert_eq!(
        b64(A5_TOKEN.split('.').next().expect("a header")),
        b"{\"alg\":\"none\"}"
    );
    assert_rfc_claims(&token);
    assert!(token.signature().is_empty());
    assert!("none".parse::<Algorithm>().is_err());

    for alg in Algorithm::ALL {
        let key = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => a1_key(alg),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => a2_key(alg),
            Algorithm::ES256 => a3_key(),
            Algorithm::ES384 => testdata_key(alg, "ec-p384.pub"),
            Algorithm::ES512 => a4_key(),
            Algorithm::EdDSA => testdata_key(alg, "ed25519.pub"),
        };
        assert!(
            !key.verify(token.signing_input(), token.signature()),
            "a {alg} key accepts the unsecured JWS"
        );
        assert!(
            !key.verify(token.signing_input(), &[]),
            "a {alg} key accepts an empty signature"
        );
    }
}
