use serde_json::{json, Value};

use super::*;
use crate::jwt::{SigningKey, Token};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn jwk(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{TESTDATA}/jwks/{name}.json")).expect("jwk");
    serde_json::from_str(&text).expect("json")
}

/// Test key `name` published under `kid`.
fn under(name: &str, kid: &str) -> Value {
    let mut key = jwk(name);
    key["kid"] = json!(kid);
    key
}

fn set(keys: Vec<Value>) -> Vec<u8> {
    json!({ "keys": keys }).to_string().into_bytes()
}

fn signer(alg: Algorithm, key_file: &str) -> SigningKey {
    let pem = std::fs::read_to_string(format!("{TESTDATA}/keys/{key_file}")).expect("key");
    SigningKey::from_private_pem(alg, &pem).expect("signing key")
}

fn sign(alg: Algorithm, key_file: &str, kid: Option<&str>) -> String {
    let claims = json!({"iss": "https://idp.example", "exp": 4_000_000_000i64});
    let Value::Object(claims) = claims else {
        unreachable!()
    };
    signer(alg, key_file)
        .encode_with_kid(&claims, kid)
        .expect("sign")
}

fn verifies(set: &JwkSet, token: &str) -> Result<bool, KeyMiss> {
    let t = Token::parse(token).expect("parse");
    let alg: Algorithm = t.alg().parse().expect("alg");
    let (_, key) = set.select(alg, t.header().get("kid"))?;
    Ok(key.verify(t.signing_input(), t.signature()))
}

const ALL_ASYMMETRIC: [Algorithm; 10] = [
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

#[test]
fn every_key_type_verifies_tokens_of_its_algorithms() {
    let doc = set(vec![
        jwk("rsa"),
        jwk("ec-p256"),
        jwk("ec-p384"),
        jwk("ec-p521"),
        jwk("ed25519"),
    ]);
    let keys = JwkSet::parse(&doc, &ALL_ASYMMETRIC).expect("set");
    assert_eq!(keys.len(), 5);
    assert!(keys.skipped().is_empty());
    for (alg, file, kid) in [
        (Algorithm::RS256, "rsa.key", "rsa-1"),
        (Algorithm::RS512, "rsa.key", "rsa-1"),
        (Algorithm::PS256, "rsa.key", "rsa-1"),
        (Algorithm::PS384, "rsa.key", "rsa-1"),
        (Algorithm::ES256, "ec-p256.key", "ec-256"),
        (Algorithm::ES384, "ec-p384.key", "ec-384"),
        (Algorithm::ES512, "ec-p521.key", "ec-521"),
        (Algorithm::EdDSA, "ed25519.key", "ed-1"),
    ] {
        let token = sign(alg, file, Some(kid));
        assert_eq!(verifies(&keys, &token), Ok(true), "{alg}");
        // The same kid with another key's signature does not verify.
        let forged = sign(alg, if alg.is_rsa() { "rsa2.key" } else { file }, Some(kid));
        if alg.is_rsa() {
            assert_eq!(verifies(&keys, &forged), Ok(false), "{alg} forged");
        }
    }
}

#[test]
fn a_kid_chooses_and_without_one_the_only_fitting_key_does() {
    let keys = JwkSet::parse(
        &set(vec![jwk("rsa"), jwk("rsa2"), jwk("ec-p256")]),
        &[Algorithm::RS256, Algorithm::ES256],
    )
    .expect("set");
    let t = sign(Algorithm::RS256, "rsa2.key", Some("rsa-2"));
    assert_eq!(verifies(&keys, &t), Ok(true));
    let t = sign(Algorithm::RS256, "rsa2.key", Some("nope"));
    assert_eq!(verifies(&keys, &t), Err(KeyMiss::UnknownKid("nope".into())));
    // A kid the document names only on a key it could not take: the miss
    // says why (an outside audit found "no key has kid" for a key whose
    // modulus a rotation had broken).
    let mut broken = jwk("rsa2");
    broken["n"] = json!("not base64url!");
    let keys = JwkSet::parse(&set(vec![jwk("rsa"), broken]), &[Algorithm::RS256]).expect("set");
    assert_eq!(verifies(&keys, &t), Err(KeyMiss::UnknownKid("nope".into())));
    let t = sign(Algorithm::RS256, "rsa2.key", Some("rsa-2"));
    assert_eq!(
        verifies(&keys, &t),
        Err(KeyMiss::Unusable {
            kid: "rsa-2".into(),
            reason: "n is not base64url".into()
        })
    );
    let keys = JwkSet::parse(
        &set(vec![jwk("rsa"), jwk("rsa2"), jwk("ec-p256")]),
        &[Algorithm::RS256, Algorithm::ES256],
    )
    .expect("set");
    // No kid: ES256 has one key, RS256 two.
    let t = sign(Algorithm::ES256, "ec-p256.key", None);
    assert_eq!(verifies(&keys, &t), Ok(true));
    let t = sign(Algorithm::RS256, "rsa.key", None);
    assert_eq!(
        verifies(&keys, &t),
        Err(KeyMiss::Ambiguous {
            alg: Algorithm::RS256,
            count: 2
        })
    );
    let keys = JwkSet::parse(
        &set(vec![jwk("ec-p256")]),
        &[Algorithm::RS256, Algorithm::ES256],
    )
    .expect("set");
    let t = sign(Algorithm::RS256, "rsa.key", None);
    assert_eq!(
        verifies(&keys, &t),
        Err(KeyMiss::NoKeyForAlg(Algorithm::RS256))
    );
    let odd = keys.select(Algorithm::ES256, Some(&json!(7)));
    assert_eq!(odd.err(), Some(KeyMiss::KidNotString));
}

#[test]
fn a_kid_naming_a_key_of_another_type_is_refused_with_the_reason() {
    let keys = JwkSet::parse(
        &set(vec![jwk("rsa"), jwk("ec-p256")]),
        &[Algorithm::RS256, Algorithm::ES256],
    )
    .expect("set");
    // An ES256 token naming the RSA key.
    let t = sign(Algorithm::ES256, "ec-p256.key", Some("rsa-1"));
    let miss = verifies(&keys, &t).expect_err("unfit");
    assert_eq!(
        miss.to_string(),
        "key \"rsa-1\" does not fit ES256: it is an RSA 2048-bit key"
    );
    // A key whose own alg differs.
    let mut pinned = jwk("rsa");
    pinned["alg"] = json!("RS384");
    let keys =
        JwkSet::parse(&set(vec![pinned]), &[Algorithm::RS256, Algorithm::RS384]).expect("set");
    let t = sign(Algorithm::RS256, "rsa.key", Some("rsa-1"));
    assert_eq!(
        verifies(&keys, &t).expect_err("unfit").to_string(),
        "key \"rsa-1\" does not fit RS256: its alg is RS384"
    );
    let t = sign(Algorithm::RS384, "rsa.key", Some("rsa-1"));
    assert_eq!(verifies(&keys, &t), Ok(true));
}

#[test]
fn only_the_providers_algorithms_are_usable() {
    let keys = JwkSet::parse(&set(vec![jwk("rsa")]), &[Algorithm::PS256]).expect("set");
    let t = sign(Algorithm::RS256, "rsa.key", Some("rsa-1"));
    assert!(matches!(verifies(&keys, &t), Err(KeyMiss::Unfit { .. })));
    let t = sign(Algorithm::PS256, "rsa.key", Some("rsa-1"));
    assert_eq!(verifies(&keys, &t), Ok(true));
    // HS* in the list changes nothing: never from a key set.
    let keys = JwkSet::parse(
        &set(vec![jwk("rsa")]),
        &[Algorithm::HS256, Algorithm::RS256],
    )
    .expect("set");
    assert_eq!(
        keys.keys()[0].algorithms().collect::<Vec<_>>(),
        [Algorithm::RS256]
    );
}

#[test]
fn unusable_keys_are_skipped_with_a_reason() {
    let mut enc = jwk("rsa2");
    enc["use"] = json!("enc");
    let mut oaep = jwk("rsa2");
    oaep["alg"] = json!("RSA-OAEP");
    oaep["kid"] = json!("oaep");
    let oct = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"});
    let oct_alg = json!({"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB", "kid": "h"});
    let mut no_verify = jwk("ec-p256");
    no_verify["key_ops"] = json!(["sign"]);
    let bad_b64 = json!({"kty": "OKP", "crv": "Ed25519", "x": "not base64url!", "kid": "b"});
    let padded = json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA=", "kid": "p"});
    let short_ed = json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "s"});
    let ed448 = json!({"kty": "OKP", "crv": "Ed448", "x": "AAAA", "kid": "448"});
    let k256 = json!({"kty": "EC", "crv": "secp256k1", "x": "AAAA", "y": "AAAA"});
    let off_curve = json!({"kty": "EC", "crv": "P-256", "kid": "off",
        "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"});
    let doc = set(vec![
        jwk("rsa"),
        enc,
        oaep,
        oct,
        oct_alg,
        no_verify,
        bad_b64,
        padded,
        short_ed,
        ed448,
        k256,
        jwk("rsa1024"),
        // 8200 bits: aws-lc-rs verifies nothing past 8192.
        json!({"kty": "RSA", "kid": "huge", "e": "AQAB", "n": format!("w{}", "A".repeat(1366))}),
        off_curve,
        json!("a string"),
        json!({"kty": 5}),
        json!({"kty": "RSA", "kid": 12, "n": "AQAB", "e": "AQAB"}),
        // The identity point: it verifies R = identity, S = 0 for anything.
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "small",
            "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    ]);
    let keys = JwkSet::parse(&doc, &ALL_ASYMMETRIC).expect("one usable key");
    assert_eq!(keys.len(), 1);
    let reasons: Vec<&str> = keys.skipped().iter().map(|s| s.reason.as_str()).collect();
    let invalid = |kind: &str, alg: &str| {
        format!(
            "not a valid {kind} key: the key is not a valid {alg} public key (wrong key type or curve, or an RSA key outside 2048 to 8192 bits or whose exponent is not an odd number of at least 3)"
        )
    };
    assert_eq!(
        reasons,
        [
            "use is \"enc\", not sig",
            "alg \"RSA-OAEP\" is not a supported signature algorithm",
            "a symmetric (oct) key; never accepted from a key set",
            "alg HS256 is symmetric; never accepted from a key set",
            "key_ops does not include verify",
            "x is not base64url",
            "x is not base64url",
            &invalid("OKP Ed25519", "EdDSA"),
            "OKP curve \"Ed448\" is not supported",
            "EC curve \"secp256k1\" is not supported",
            "RSA key of 1024 bits; at least 2048 are required",
            "RSA key of 8200 bits; at most 8192 are supported (no signature it makes verifies)",
            &invalid("EC P-256", "ES256"),
            "not a JSON object",
            "no kty",
            "kid is not a string",
            "not a valid OKP Ed25519 key: an Ed25519 key of small order: it would verify forged signatures",
        ]
    );
    let kids: Vec<Option<&str>> = keys.skipped().iter().map(|s| s.kid.as_deref()).collect();
    assert_eq!(kids[1], Some("oaep"));
    assert_eq!(keys.skipped()[10].index, 11);
}

#[test]
fn documents_that_are_not_usable_sets_are_errors() {
    for (doc, want) in [
        (&b"not json"[..], "not JSON"),
        (b"[]", "not a JWK Set"),
        (b"{\"keys\": {}}", "not a JWK Set"),
        (b"{}", "not a JWK Set"),
        (b"{\"keys\": []}", "no usable signing key (the set is empty)"),
        (
            b"{\"keys\": [{\"kty\": \"oct\", \"k\": \"AAAA\"}]}",
            "no usable signing key (the one key: a symmetric (oct) key; never accepted from a key set)",
        ),
    ] {
        let err = JwkSet::parse(doc, &ALL_ASYMMETRIC).expect_err("refused");
        assert!(err.to_string().starts_with(want), "{err}");
    }
    let many = set((0..=MAX_KEYS).map(|_| jwk("ec-p256")).collect());
    assert_eq!(
        JwkSet::parse(&many, &ALL_ASYMMETRIC).expect_err("too many"),
        JwksError::TooManyKeys(MAX_KEYS + 1)
    );
}

#[test]
fn the_fingerprint_follows_the_usable_keys_only() {
    let a = JwkSet::parse(&set(vec![jwk("rsa"), jwk("ec-p256")]), &ALL_ASYMMETRIC).expect("a");
    let b = JwkSet::parse(
        &set(vec![
            jwk("ec-p256"),
            json!({"kty": "oct", "k": "AAAA"}),
            jwk("rsa"),
        ]),
        &ALL_ASYMMETRIC,
    )
    .expect("b");
    assert_eq!(a.fingerprint(), b.fingerprint());
    let c = JwkSet::parse(&set(vec![jwk("rsa2"), jwk("ec-p256")]), &ALL_ASYMMETRIC).expect("c");
    assert_ne!(a.fingerprint(), c.fingerprint());
}

#[test]
fn rsa_components_with_leading_zeros_and_odd_exponents_parse() {
    // `n` with a leading zero byte, and e = 3 in one byte.
    let mut k = jwk("rsa");
    let n = URL_SAFE_NO_PAD
        .decode(k["n"].as_str().expect("n"))
        .expect("b64");
    let mut padded = vec![0u8];
    padded.extend(&n);
    k["n"] = json!(URL_SAFE_NO_PAD.encode(&padded));
    let keys = JwkSet::parse(&set(vec![k]), &[Algorithm::RS256]).expect("set");
    let t = sign(Algorithm::RS256, "rsa.key", Some("rsa-1"));
    assert_eq!(verifies(&keys, &t), Ok(true));
    assert_eq!(keys.keys()[0].kind, KeyKind::Rsa { bits: 2048 });
}

#[test]
fn keys_sharing_a_kid_are_each_tried() {
    let both = JwkSet::parse(
        &set(vec![
            under("rsa", "shared"),
            under("ec-p256", "shared"),
            under("rsa2", "shared"),
        ]),
        &[Algorithm::RS256, Algorithm::ES256],
    )
    .expect("set");
    let check = |keys: &JwkSet, alg: Algorithm, file: &str| {
        let token = sign(alg, file, Some("shared"));
        let t = Token::parse(&token).expect("parse");
        let kid = t.header().get("kid");
        let (_, first) = keys.select(alg, kid).expect("a key");
        (
            first.verify(t.signing_input(), t.signature()),
            keys.verifying_twin(alg, kid, t.signing_input(), t.signature())
                .is_some(),
        )
    };
    // The first fitting key verifies; the later twin does not.
    assert_eq!(check(&both, Algorithm::RS256, "rsa.key"), (true, false));
    // The second RSA key under the kid verifies what the first does not.
    assert_eq!(check(&both, Algorithm::RS256, "rsa2.key"), (false, true));
    // A key of another type under the kid is no twin of an RSA one.
    assert_eq!(check(&both, Algorithm::ES256, "ec-p256.key"), (true, false));
    let one = JwkSet::parse(
        &set(vec![under("rsa2", "shared"), under("ec-p256", "shared")]),
        &[Algorithm::RS256, Algorithm::ES256],
    )
    .expect("set");
    assert_eq!(check(&one, Algorithm::RS256, "rsa.key"), (false, false));
    // No kid, or one naming no key: nothing more to try.
    let token = sign(Algorithm::RS256, "rsa2.key", None);
    let t = Token::parse(&token).expect("parse");
    assert!(both
        .verifying_twin(Algorithm::RS256, None, t.signing_input(), t.signature())
        .is_none());
    assert!(both
        .verifying_twin(
            Algorithm::RS256,
            Some(&json!("other")),
            t.signing_input(),
            t.signature()
        )
        .is_none());
}

#[test]
fn at_most_four_keys_sharing_a_kid_are_tried() {
    // Four that do not verify rsa2's tokens, then rsa2, all under one kid.
    let mut keys: Vec<Value> = (0..MAX_KEYS_PER_KID).map(|_| under("rsa", "k")).collect();
    keys.push(under("rsa2", "k"));
    keys.push(under("rsa2", "other"));
    let parsed = JwkSet::parse(&set(keys.clone()), &[Algorithm::RS256]).expect("set");
    // Every key is kept; only the trying stops.
    assert_eq!(parsed.len(), MAX_KEYS_PER_KID + 2);
    assert!(parsed.skipped().is_empty());
    let twin = |set: &JwkSet| {
        let token = sign(Algorithm::RS256, "rsa2.key", Some("k"));
        let t = Token::parse(&token).expect("parse");
        let kid = t.header().get("kid");
        set.verifying_twin(Algorithm::RS256, kid, t.signing_input(), t.signature())
            .map(|k| k.kid.clone())
    };
    assert_eq!(twin(&parsed), None);
    // The fourth fitting key is still tried.
    keys.remove(0);
    let fourth = JwkSet::parse(&set(keys), &[Algorithm::RS256]).expect("set");
    assert_eq!(twin(&fourth), Some(Some("k".to_owned())));
    // Under a kid of its own it is used.
    assert_eq!(
        verifies(&parsed, &sign(Algorithm::RS256, "rsa2.key", Some("other"))),
        Ok(true)
    );
}

#[test]
fn keys_published_with_private_members_are_named() {
    let mut rsa = jwk("rsa");
    rsa["p"] = json!("AQAB");
    let mut ec = jwk("ec-p256");
    ec["d"] = json!("AQAB");
    ec.as_object_mut().map(|o| o.remove("kid"));
    let keys = JwkSet::parse(
        &set(vec![rsa, jwk("rsa2"), ec]),
        &[Algorithm::RS256, Algorithm::ES256],
    )
    .expect("set");
    assert_eq!(keys.private_keys(), ["rsa-1", "(no kid)"]);
    // They still verify with their public members.
    assert_eq!(
        verifies(&keys, &sign(Algorithm::RS256, "rsa.key", Some("rsa-1"))),
        Ok(true)
    );
    let public = JwkSet::parse(&set(vec![jwk("rsa")]), &[Algorithm::RS256]).expect("set");
    assert!(public.private_keys().is_empty());
}

#[test]
fn the_cached_document_keeps_only_public_members() {
    let mut rsa = jwk("rsa");
    for m in ["d", "p", "q", "dp", "dq", "qi", "x5c", "issuer"] {
        rsa[m] = json!("AQAB");
    }
    rsa["oth"] = json!([{"r": "AQAB", "d": "AQAB", "t": "AQAB"}]);
    let mut ec = jwk("ec-p256");
    ec["d"] = json!("AQAB");
    ec["use"] = json!("sig");
    for oct in [
        json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        json!({"kty": "OCT", "k": "c2VjcmV0"}),
        json!({"kid": "h3", "k": "c2VjcmV0"}),
    ] {
        let document = set(vec![
            rsa.clone(),
            jwk("rsa2"),
            ec.clone(),
            oct,
            json!("junk"),
        ]);
        assert!(holds_more_than_public(&document));
        let public = public_document(&document).expect("a set");
        assert!(!holds_more_than_public(public.as_bytes()), "{public}");
        let kept: Value = serde_json::from_str(&public).expect("json");
        for key in kept["keys"].as_array().expect("keys") {
            for member in key.as_object().expect("object").keys() {
                assert!(
                    PUBLIC_MEMBERS.contains(&member.as_str()),
                    "{member}: {public}"
                );
            }
        }
        let algs = [Algorithm::RS256, Algorithm::ES256];
        let before = JwkSet::parse(&document, &algs).expect("set");
        let after = JwkSet::parse(public.as_bytes(), &algs).expect("set");
        assert_eq!(after.fingerprint(), before.fingerprint());
        assert_eq!(after.len(), before.len());
        assert!(after.private_keys().is_empty());
        assert_eq!(after.keys()[2].kid, before.keys()[2].kid);
    }
    // A public set holds nothing more; what is not a set is not one.
    assert!(!holds_more_than_public(&set(vec![
        jwk("rsa"),
        jwk("ec-p256")
    ])));
    assert_eq!(public_document(b"not json"), None);
    assert_eq!(public_document(b"{\"keys\": 3}"), None);
    assert!(!holds_more_than_public(b"not json"));
}
