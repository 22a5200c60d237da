use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::jwt::{JwkSet, SigningKey};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://idp.example";
const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn provider() -> IdentityProvider {
    IdentityProvider {
        index: 0,
        name: "corp".into(),
        issuer: ISS.into(),
        algorithms: vec![Algorithm::RS256],
        audiences: vec!["orders-api".into()],
        consumer_claim: None,
        client_id: Some("gateway".into()),
    }
}

fn keys() -> ProviderKeys {
    let jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{TESTDATA}/jwks/rsa.json")).expect("jwk"),
    )
    .expect("json");
    let set = JwkSet::parse(
        json!({"keys": [jwk]}).to_string().as_bytes(),
        &[Algorithm::RS256],
    )
    .expect("set");
    ProviderKeys {
        set: Arc::new(set),
        generation: 1,
        fetched_at: NOW,
        max_stale: None,
        source: "test".into(),
    }
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": "gateway",
        "iat": NOW - 5,
        "exp": NOW + 120,
        "jti": "j-1",
        "sub": "u-1",
        "sid": "s-1",
        "events": { LOGOUT_EVENT: {} }
    })
}

fn sign_with(key: &str, kid: &str, claims: &Value) -> String {
    let pem = std::fs::read_to_string(format!("{TESTDATA}/keys/{key}")).expect("key");
    let Value::Object(c) = claims.clone() else {
        unreachable!()
    };
    SigningKey::from_private_pem(Algorithm::RS256, &pem)
        .expect("key")
        .encode_with_kid(&c, Some(kid))
        .expect("sign")
}

fn check(claims: &Value) -> Result<LogoutToken, LogoutError> {
    validate(
        &sign_with("rsa.key", "rsa-1", claims),
        &provider(),
        Some(&keys()),
        NOW,
    )
}

#[test]
fn a_complete_logout_token_is_accepted() {
    let t = check(&claims()).expect("valid");
    assert_eq!(t.sub.as_deref(), Some("u-1"));
    assert_eq!(t.jti, "j-1");
    let mut only_sid = claims();
    only_sid.as_object_mut().expect("object").remove("sub");
    assert_eq!(check(&only_sid).expect("sid only").sub, None);
    let mut aud_list = claims();
    aud_list["aud"] = json!(["other", "gateway"]);
    assert!(check(&aud_list).is_ok());
    // Subjects read as an access token's are for a cut-off: an integer as
    // its digits (it was "neither sub nor sid").
    let mut numeric = claims();
    numeric["sub"] = json!(12);
    let t = check(&numeric).expect("integer sub");
    assert_eq!(t.sub.as_deref(), Some("12"));
}

#[test]
fn every_missing_or_wrong_member_is_refused() {
    let with = |k: &str, v: Value| {
        let mut c = claims();
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v;
        }
        check(&c)
    };
    assert_eq!(
        with("iss", json!("https://idp.example/")),
        Err(LogoutError::Issuer)
    );
    assert!(matches!(
        with("aud", json!("orders-api")),
        Err(LogoutError::Audience(_))
    ));
    assert!(matches!(
        with("aud", Value::Null),
        Err(LogoutError::Audience(_))
    ));
    assert_eq!(with("iat", Value::Null), Err(LogoutError::IssuedAt));
    assert_eq!(with("iat", json!(NOW - 600)), Err(LogoutError::IssuedAt));
    assert_eq!(with("iat", json!(NOW + 600)), Err(LogoutError::IssuedAt));
    // now - iat is i64::MIN, whose abs() wrapped to itself (below the skew)
    // in a release build.
    let wraps = i64::MIN.wrapping_add(NOW);
    assert_eq!(with("iat", json!(wraps)), Err(LogoutError::IssuedAt));
    assert_eq!(with("iat", json!(i64::MIN)), Err(LogoutError::IssuedAt));
    assert_eq!(with("exp", Value::Null), Err(LogoutError::Expired));
    assert_eq!(with("exp", json!(NOW)), Err(LogoutError::Expired));
    assert_eq!(with("jti", Value::Null), Err(LogoutError::NoJti));
    assert_eq!(with("jti", json!("")), Err(LogoutError::NoJti));
    assert_eq!(with("events", Value::Null), Err(LogoutError::NoEvent));
    assert_eq!(
        with("events", json!({LOGOUT_EVENT: "yes"})),
        Err(LogoutError::NoEvent)
    );
    assert_eq!(
        with("events", json!({"other": {}})),
        Err(LogoutError::NoEvent)
    );
    assert_eq!(with("nonce", json!("n")), Err(LogoutError::Nonce));
    let mut neither = claims();
    neither.as_object_mut().expect("object").remove("sub");
    neither.as_object_mut().expect("object").remove("sid");
    assert_eq!(check(&neither), Err(LogoutError::NoSubject));
}

#[test]
fn signatures_keys_and_algorithms_are_the_providers() {
    // Signed by another key under the provider's kid.
    let forged = sign_with("rsa2.key", "rsa-1", &claims());
    assert_eq!(
        validate(&forged, &provider(), Some(&keys()), NOW),
        Err(LogoutError::Signature)
    );
    // A kid the provider does not have: a refetch may help.
    let other = sign_with("rsa2.key", "rsa-2", &claims());
    let e = validate(&other, &provider(), Some(&keys()), NOW).expect_err("unknown kid");
    assert_eq!(e.unknown_kid(), Some("rsa-2"));
    // An HS256 token is never a provider's.
    let Value::Object(c) = claims() else {
        unreachable!()
    };
    let hs = SigningKey::from_secret(Algorithm::HS256, &[1u8; 32])
        .expect("key")
        .encode(&c)
        .expect("sign");
    assert!(matches!(
        validate(&hs, &provider(), Some(&keys()), NOW),
        Err(LogoutError::Algorithm(_))
    ));
    assert_eq!(
        validate(
            &sign_with("rsa.key", "rsa-1", &claims()),
            &provider(),
            None,
            NOW
        ),
        Err(LogoutError::NoKeys)
    );
    assert!(matches!(
        validate("not.a.jwt", &provider(), Some(&keys()), NOW),
        Err(LogoutError::Malformed(_))
    ));
}

#[test]
fn a_token_typed_as_another_kind_is_not_a_logout_token() {
    let pem = std::fs::read_to_string(format!("{TESTDATA}/keys/rsa.key")).expect("key");
    let key = SigningKey::from_private_pem(Algorithm::RS256, &pem).expect("key");
    let Value::Object(c) = claims() else {
        unreachable!()
    };
    let typed = |typ: Option<Value>| {
        let mut header = json!({"alg": "RS256", "kid": "rsa-1"});
        if let Some(typ) = typ {
            header["typ"] = typ;
        }
        let token = key.encode_with_header(&header, &c).expect("sign");
        validate(&token, &provider(), Some(&keys()), NOW)
    };
    for typ in [
        None,
        Some(json!("logout+jwt")),
        Some(json!("application/Logout+JWT")),
        Some(json!("JWT")),
        Some(json!("jwt")),
    ] {
        assert!(typed(typ.clone()).is_ok(), "typ {typ:?}");
    }
    for typ in [
        json!("at+jwt"),
        json!("application/at+jwt"),
        json!("id_token+jwt"),
        json!("secevent+jwt"),
        json!(""),
        json!(7),
    ] {
        assert!(
            matches!(typed(Some(typ.clone())), Err(LogoutError::Type(_))),
            "typ {typ}"
        );
    }
}
