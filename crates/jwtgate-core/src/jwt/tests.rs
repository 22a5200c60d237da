use serde_json::{json, Map, Value};

use super::*;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/keys");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).expect("test key present")
}

/// (private key file, public key file) for each asymmetric algorithm.
fn key_files(alg: Algorithm) -> (&'static str, &'static str) {
    match alg {
        Algorithm::ES256 => ("ec-p256.key", "ec-p256.pub"),
        Algorithm::ES384 => ("ec-p384.key", "ec-p384.pub"),
        Algorithm::ES512 => ("ec-p521.key", "ec-p521.pub"),
        Algorithm::EdDSA => ("ed25519.key", "ed25519.pub"),
        _ => ("rsa.key", "rsa.pub"),
    }
}

fn keys_for(alg: Algorithm) -> (SigningKey, VerifyKey) {
    if alg.is_hmac() {
        let secret = b"a-long-random-secret-of-sufficient-length";
        (
            SigningKey::from_secret(alg, secret).expect("signing key"),
            VerifyKey::from_secret(alg, secret).expect("verify key"),
        )
    } else {
        let (private, public) = key_files(alg);
        (
            SigningKey::from_private_pem(alg, &read(private)).expect("signing key"),
            VerifyKey::from_public_pem(alg, &read(public)).expect("verify key"),
        )
    }
}

fn claims() -> Map<String, Value> {
    let Value::Object(m) = json!({"key": "user123", "exp": 4_000_000_000i64}) else {
        unreachable!()
    };
    m
}

#[test]
fn every_algorithm_round_trips_and_rejects_tampering() {
    for alg in Algorithm::ALL {
        let (signer, verifier) = keys_for(alg);
        let token = signer.encode(&claims()).expect("sign");
        let parsed = Token::parse(&token).expect("parse");
        assert_eq!(parsed.alg(), alg.as_str());
        assert!(
            verifier.verify(parsed.signing_input(), parsed.signature()),
            "{alg} valid"
        );

        // Flip one bit of the signature.
        let mut sig = parsed.signature().to_vec();
        sig[0] ^= 1;
        assert!(
            !verifier.verify(parsed.signing_input(), &sig),
            "{alg} tampered sig"
        );
        // Change the payload but keep the signature.
        let mut other = claims();
        other.insert("key".into(), json!("admin"));
        let forged = signer.encode(&other).expect("sign");
        let forged = Token::parse(&forged).expect("parse");
        assert!(
            !verifier.verify(forged.signing_input(), parsed.signature()),
            "{alg} swapped payload"
        );
    }
}

#[test]
fn key_material_is_pinned_to_its_algorithm() {
    let rsa_pub = read("rsa.pub");
    assert_eq!(
        VerifyKey::from_secret(Algorithm::RS256, b"x").unwrap_err(),
        KeyError::NeedsPublicKey(Algorithm::RS256)
    );
    assert!(VerifyKey::from_public_pem(Algorithm::HS256, &rsa_pub).is_err());
    // An RSA key is no EC key, and a P-256 key is no P-384 key.
    assert!(VerifyKey::from_public_pem(Algorithm::ES256, &rsa_pub).is_err());
    assert!(VerifyKey::from_public_pem(Algorithm::ES384, &read("ec-p256.pub")).is_err());
    assert!(VerifyKey::from_public_pem(Algorithm::EdDSA, &read("ec-p256.pub")).is_err());
    let not_pem = VerifyKey::from_public_pem(Algorithm::RS256, "not a pem").unwrap_err();
    assert!(
        not_pem.to_string().contains("expected a -----BEGIN"),
        "says what a PEM document looks like: {not_pem}"
    );
    assert_eq!(
        VerifyKey::from_public_pem(Algorithm::RS256, &read("rsa1024.pub")).unwrap_err(),
        KeyError::Rejected(Algorithm::RS256)
    );
    // An RSASSA-PSS key was taken, then verified no signature (an outside
    // audit): refused at load, saying why.
    for alg in [Algorithm::RS256, Algorithm::RS512] {
        assert_eq!(
            VerifyKey::from_public_pem(alg, &read("rsa-pss.pub")).unwrap_err(),
            KeyError::PssOnly
        );
    }
    assert!(VerifyKey::from_public_pem(Algorithm::PS256, &read("rsa.pub")).is_ok());
    assert!(VerifyKey::from_secret(Algorithm::HS256, b"").is_err());
    // Over 8192 bits, aws-lc-rs verifies no signature: refused at load
    // (PKCS#1: SEQUENCE { INTEGER n of 8200 bits, INTEGER 65537 }).
    let mut n = vec![0x00, 0x80];
    n.resize(1 + 1025, 0x01);
    let mut body = vec![0x02, 0x82, 0x04, 0x02];
    body.extend(&n);
    body.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
    let mut der = vec![0x30, 0x82];
    der.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
    der.extend(body);
    assert_eq!(
        VerifyKey::from_public_der(Algorithm::RS256, &der).unwrap_err(),
        KeyError::Rejected(Algorithm::RS256)
    );
    // A second key after the first is refused, not ignored (tokens signed
    // with it were refused as forged, with nothing said; an outside audit).
    let two = format!("{}{}", read("ec-p256.pub"), read("ec-p256.pub"));
    assert_eq!(
        VerifyKey::from_public_pem(Algorithm::ES256, &two).unwrap_err(),
        KeyError::PemBlocks(2)
    );
}

/// An Ed25519 public key of small order verifies R = identity, S = 0 over
/// every message: refused at load, as a JWK's `x` or as a PEM, in each of
/// its encodings (sign bit set, non-canonical), while a real key loads.
#[test]
fn regression_small_order_ed25519_keys_are_refused() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let identity = {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    };
    // The forgery such a key would accept.
    let mut forged_sig = [0u8; 64];
    forged_sig[0] = 1;
    let ring =
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, identity);
    assert!(
        ring.verify(b"any message", &forged_sig).is_ok(),
        "the library alone takes it: the check is ours"
    );
    let order8 = "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05";
    let mut weak: Vec<[u8; 32]> = vec![identity, [0; 32]];
    let mut o8 = [0u8; 32];
    for (i, byte) in o8.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&order8[2 * i..2 * i + 2], 16).unwrap();
    }
    weak.push(o8);
    let mut minus_one = [0xff; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    weak.push(minus_one);
    let mut p_plus_one = minus_one;
    p_plus_one[0] = 0xee;
    weak.push(p_plus_one);
    let mut identity_signed = identity;
    identity_signed[31] |= 0x80;
    weak.push(identity_signed);
    for key in &weak {
        assert_eq!(
            VerifyKey::from_ed25519(key).unwrap_err(),
            KeyError::SmallOrder,
            "{key:02x?}"
        );
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(key);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            b64.encode(&spki)
        );
        assert_eq!(
            VerifyKey::from_public_pem(Algorithm::EdDSA, &pem).unwrap_err(),
            KeyError::SmallOrder,
            "{pem}"
        );
    }
    let real =
        VerifyKey::from_public_pem(Algorithm::EdDSA, &read("ed25519.pub")).expect("a real key");
    assert!(!real.verify(b"any message", &forged_sig));
}

#[test]
fn rs_hs_confusion_does_not_verify() {
    // The classic attack: HMAC the token with the RSA public key's text.
    let rsa_pub = read("rsa.pub");
    let forger = SigningKey::from_secret(Algorithm::HS256, rsa_pub.as_bytes()).expect("key");
    let token = forger.encode(&claims()).expect("sign");
    let parsed = Token::parse(&token).expect("parse");
    let verifier = VerifyKey::from_public_pem(Algorithm::RS256, &rsa_pub).expect("key");
    assert!(!verifier.verify(parsed.signing_input(), parsed.signature()));
}

#[test]
fn token_parsing_is_strict() {
    let (signer, _) = keys_for(Algorithm::HS256);
    let good = signer.encode(&claims()).expect("sign");
    assert!(Token::parse(&good).is_ok());

    let cases: Vec<(String, TokenError)> = vec![
        ("a.b".into(), TokenError::SegmentCount(2)),
        (format!("{good}.x"), TokenError::SegmentCount(4)),
        (
            format!("{good}="),
            TokenError::Base64(token::Segment::Signature),
        ),
        (
            good.replacen('.', "+.", 1),
            TokenError::Base64(token::Segment::Header),
        ),
        (
            "e30.W10.".into(),
            TokenError::NotJsonObject(token::Segment::Payload),
        ),
        (
            "bnVsbA.e30.".into(),
            TokenError::NotJsonObject(token::Segment::Header),
        ),
        ("e30.e30.".into(), TokenError::MissingAlg),
        (
            "x".repeat(MAX_TOKEN_BYTES + 1),
            TokenError::TooLarge(MAX_TOKEN_BYTES + 1),
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(Token::parse(&raw).unwrap_err(), want, "{raw:.40}");
    }
}

/// JSON the parser does not read is said as such, with the limit met, not
/// as "not a JSON object" (an outside audit: 127 nested arrays, a number
/// past f64, a lone surrogate).
#[test]
fn json_past_the_parsers_limits_is_named() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let header = b64(r#"{"alg":"HS256"}"#);
    let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    for (payload, reason) in [
        (deep.as_str(), "recursion limit exceeded"),
        (r#"{"exp":1e400}"#, "number out of range"),
        (r#"{"sub":"\udc00"}"#, "surrogate"),
        (r#"{"sub":"x"} trailing"#, "trailing characters"),
    ] {
        let raw = format!("{header}.{}.", b64(payload));
        match Token::parse(&raw).unwrap_err() {
            TokenError::NotJson(token::Segment::Payload, why) => {
                assert!(why.contains(reason), "{payload:.30}: {why}");
            }
            other => panic!("{payload:.30}: {other:?}"),
        }
    }
    // JSON, but not an object: said as before.
    assert_eq!(
        Token::parse(&format!("{header}.{}.", b64("[1]"))).unwrap_err(),
        TokenError::NotJsonObject(token::Segment::Payload)
    );
}

#[test]
fn algorithm_names_are_exact() {
    for alg in Algorithm::ALL {
        assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
    }
    assert!("none".parse::<Algorithm>().is_err());
    assert!("hs256".parse::<Algorithm>().is_err());
}
