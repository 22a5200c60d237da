use serde_json::{json, Value};

use super::*;
use crate::clock::FixedClock;
use crate::consumer::{Consumer, ConsumerRegistry, Credential};
use crate::jwt::{Algorithm, SigningKey, VerifyKey};

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"alice-secret-alice-secret";

fn registry() -> ConsumerRegistry {
    let mut r = ConsumerRegistry::new();
    r.insert(Consumer {
        username: "alice".into(),
        custom_id: Some("crm-42".into()),
        credential: Some(Credential {
            key: "user123".into(),
            verify_key: VerifyKey::from_secret(Algorithm::HS256, SECRET).expect("key"),
        }),
    })
    .expect("unique");
    r
}

fn sign(claims: Value) -> String {
    let Value::Object(map) = claims else {
        unreachable!()
    };
    SigningKey::from_secret(Algorithm::HS256, SECRET)
        .expect("key")
        .encode(&map)
        .expect("sign")
}

fn auth(policy: &JwtPolicy, token: &str) -> Result<String, AuthError> {
    let r = registry();
    authenticate(
        policy,
        &AuthContext::consumers_only(&r),
        token,
        &FixedClock(NOW),
    )
    .map(|a| a.principal.consumer().expect("a consumer").username.clone())
}

#[test]
fn valid_token_names_its_consumer() {
    let t = sign(json!({"key": "user123", "exp": NOW + 60}));
    assert_eq!(auth(&JwtPolicy::default(), &t), Ok("alice".into()));
}

#[test]
fn each_refusal_has_its_public_message() {
    let p = JwtPolicy::default();
    let cases = [
        (
            sign(json!({"exp": NOW + 60})),
            "missing user key in JWT token",
        ),
        (
            sign(json!({"key": 123, "exp": NOW + 60})),
            "missing user key in JWT token",
        ),
        (
            sign(json!({"key": "nobody", "exp": NOW + 60})),
            "Invalid user key in JWT token",
        ),
        (
            sign(json!({"key": "user123", "exp": NOW})),
            "failed to verify jwt",
        ),
        (sign(json!({"key": "user123"})), "failed to verify jwt"),
        ("not-a-jwt".to_string(), "JWT token invalid"),
    ];
    for (token, message) in cases {
        let err = auth(&p, &token).unwrap_err();
        assert_eq!(err.public_message(), message, "{err}");
    }
    assert_eq!(
        AuthError::Missing.public_message(),
        "Missing JWT token in request"
    );
    assert_eq!(
        AuthError::Revoked.public_message(),
        "JWT token has been revoked"
    );
}

#[test]
fn alg_must_equal_the_consumers() {
    let Value::Object(claims) = json!({"key": "user123", "exp": NOW + 60}) else {
        unreachable!()
    };
    let key = SigningKey::from_secret(Algorithm::HS256, SECRET).expect("key");
    for alg in ["none", "HS512", "RS256", "hs256"] {
        let t = key
            .encode_with_header(&json!({"alg": alg}), &claims)
            .expect("sign");
        assert!(
            matches!(
                auth(&JwtPolicy::default(), &t),
                Err(AuthError::AlgMismatch { .. })
            ),
            "{alg}"
        );
    }
    // alg none with an empty signature, as attackers send it.
    let t = format!(
        "{}.{}.",
        b64(r#"{"alg":"none"}"#),
        b64(&Value::Object(claims).to_string())
    );
    assert!(matches!(
        auth(&JwtPolicy::default(), &t),
        Err(AuthError::AlgMismatch { .. })
    ));
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn time_claims_with_leeway() {
    let mut p = JwtPolicy::default();
    let expired = sign(json!({"key": "user123", "exp": NOW - 5}));
    let early = sign(json!({"key": "user123", "exp": NOW + 60, "nbf": NOW + 5}));
    assert!(matches!(auth(&p, &expired), Err(AuthError::Expired { .. })));
    assert!(matches!(
        auth(&p, &early),
        Err(AuthError::NotYetValid { .. })
    ));
    p.leeway_seconds = 10;
    assert!(auth(&p, &expired).is_ok());
    assert!(auth(&p, &early).is_ok());
    let string_exp = sign(json!({"key": "user123", "exp": "soon"}));
    assert!(matches!(
        auth(&p, &string_exp),
        Err(AuthError::NotNumericDate(_))
    ));
}

/// `iat` must be a number, `sub` and `sid` strings (or integers, read as
/// their digits): a subject cut-off could not name an array `sub` (it went
/// upstream as `u-1`, and the cut-off for `u-1` let it pass), nor tell
/// when a token with a string `iat` was issued.
#[test]
fn registered_claims_in_the_wrong_shape_are_refused() {
    let p = JwtPolicy::default();
    let with = |extra: Value| {
        let mut claims = json!({"key": "user123", "exp": NOW + 60});
        for (k, v) in extra.as_object().expect("object") {
            claims[k] = v.clone();
        }
        let token = sign(claims.clone());
        (
            auth(&p, &token),
            check_claims(&p, claims.as_object().expect("object"), NOW),
        )
    };
    for bad in [
        json!({"sub": ["u-1"]}),
        json!({"sub": 123.0}),
        json!({"sub": {"id": "u-1"}}),
        json!({"sub": true}),
        json!({"sub": null}),
        json!({"sid": ["s-1"]}),
        json!({"sub": " u-1"}),
        json!({"sid": "s-1\t"}),
    ] {
        let name = bad
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .expect("a key");
        let (cached, direct) = with(bad.clone());
        assert_eq!(cached, Err(AuthError::NotASubject(name.clone())), "{bad}");
        assert_eq!(direct, Err(AuthError::NotASubject(name)), "{bad}");
    }
    // What the log and `explain` say covers the string with a space at an
    // end (an outside audit: "neither a string nor an integer" was said).
    assert_eq!(
        AuthError::NotASubject("sub".into()).to_string(),
        "claim \"sub\" names no subject (a string without a space or tab at either end, or an integer)"
    );
    for bad in [json!({"iat": "yesterday"}), json!({"iat": false})] {
        let (cached, direct) = with(bad.clone());
        assert_eq!(
            cached,
            Err(AuthError::NotNumericDate("iat".into())),
            "{bad}"
        );
        assert_eq!(
            direct,
            Err(AuthError::NotNumericDate("iat".into())),
            "{bad}"
        );
        assert_eq!(
            AuthError::NotNumericDate("iat".into()).outcome(),
            "bad_claims"
        );
    }
    for good in [
        json!({"sub": "u-1", "sid": "s-1", "iat": NOW}),
        json!({"sub": 12, "iat": 1.5}),
        json!({"sub": "u 1"}),
    ] {
        let (cached, direct) = with(good.clone());
        assert_eq!(cached, Ok("alice".into()), "{good}");
        assert_eq!(direct, Ok(()), "{good}");
    }
}

#[test]
fn required_claims_and_lifetime() {
    let path = |p: &str| ClaimPath::parse(p).expect("a claim path");
    let mut p = JwtPolicy {
        required_claims: vec![path("exp"), path("sub")],
        ..JwtPolicy::default()
    };
    let t = sign(json!({"key": "user123", "exp": NOW + 3600}));
    assert_eq!(auth(&p, &t), Err(AuthError::MissingClaim("sub".into())));
    // A dotted entry is a path into the payload, never a name with a dot.
    p.required_claims = vec![path("exp"), path("realm_access.roles")];
    let nested =
        sign(json!({"key": "user123", "exp": NOW + 3600, "realm_access": {"roles": ["a"]}}));
    assert!(auth(&p, &nested).is_ok());
    let dotted = sign(json!({"key": "user123", "exp": NOW + 3600, "realm_access.roles": ["a"]}));
    assert_eq!(
        auth(&p, &dotted),
        Err(AuthError::MissingClaim("realm_access.roles".into()))
    );
    p.required_claims = vec![];
    p.max_lifetime_seconds = 600;
    assert!(matches!(
        auth(&p, &t),
        Err(AuthError::LifetimeTooLong { .. })
    ));
    p.max_lifetime_seconds = 7200;
    assert!(auth(&p, &t).is_ok());
}

#[test]
fn renamed_key_claim() {
    let p = JwtPolicy {
        key_claim_name: "apim_key_claim_name".into(),
        ..JwtPolicy::default()
    };
    let t = sign(json!({"apim_key_claim_name": "user123", "exp": NOW + 60}));
    assert_eq!(auth(&p, &t), Ok("alice".into()));
    let t = sign(json!({"key": "user123", "exp": NOW + 60}));
    assert_eq!(
        auth(&p, &t),
        Err(AuthError::MissingKeyClaim {
            claim: "apim_key_claim_name".into()
        })
    );
}

#[test]
fn observer_sees_steps_in_order() {
    let t = sign(json!({"key": "user123", "exp": NOW + 60}));
    let mut names = Vec::new();
    let r = registry();
    let _ = authenticate_traced(
        &JwtPolicy::default(),
        &AuthContext::consumers_only(&r),
        &t,
        &FixedClock(NOW),
        &mut |s| {
            names.push(match s {
                Step::Parsed(_) => "parsed",
                Step::KeyClaim { .. } => "key_claim",
                Step::Consumer { .. } => "consumer",
                Step::Algorithm { .. } => "algorithm",
                Step::Signature { .. } => "signature",
                Step::Claims { .. } => "claims",
                _ => "provider step",
            })
        },
    );
    assert_eq!(
        names,
        [
            "parsed",
            "key_claim",
            "consumer",
            "algorithm",
            "signature",
            "claims"
        ]
    );
}

#[test]
fn crit_header_is_refused() {
    let Value::Object(claims) = json!({"key": "user123", "exp": NOW + 60}) else {
        unreachable!()
    };
    let t = SigningKey::from_secret(Algorithm::HS256, SECRET)
        .expect("key")
        .encode_with_header(&json!({"alg": "HS256", "crit": ["exp"]}), &claims)
        .expect("sign");
    assert_eq!(
        auth(&JwtPolicy::default(), &t),
        Err(AuthError::CriticalHeader)
    );
}

mod cached {
    use super::*;
    use crate::policy::cache::VerifiedCache;

    #[test]
    fn a_hit_still_checks_expiry() {
        let cache = VerifiedCache::new(64);
        let p = JwtPolicy::default();
        let t = sign(json!({"key": "user123", "exp": NOW + 10}));
        let r = registry();
        assert!(authenticate_cached(
            &p,
            &AuthContext::consumers_only(&r),
            &t,
            &FixedClock(NOW),
            &cache
        )
        .is_ok());
        assert_eq!(cache.len(), 1);
        // Same token, later: served from the cache, and refused as expired.
        let later = authenticate_cached(
            &p,
            &AuthContext::consumers_only(&r),
            &t,
            &FixedClock(NOW + 10),
            &cache,
        );
        assert!(matches!(later, Err(AuthError::Expired { .. })), "{later:?}");
    }

    #[test]
    fn a_hit_checks_each_route_s_time_rules() {
        // The dates are read once, when the token is first verified; every
        // hit still judges them by the route it arrives on.
        let cache = VerifiedCache::new(64);
        let r = registry();
        let t = sign(json!({"key": "user123", "nbf": NOW + 5, "exp": NOW + 60}));
        let on = |p: &JwtPolicy| {
            authenticate_cached(
                p,
                &AuthContext::consumers_only(&r),
                &t,
                &FixedClock(NOW),
                &cache,
            )
        };
        let lenient = JwtPolicy {
            leeway_seconds: 10,
            ..JwtPolicy::default()
        };
        assert!(on(&lenient).is_ok());
        assert_eq!(cache.len(), 1);
        let strict = on(&JwtPolicy::default());
        assert!(
            matches!(strict, Err(AuthError::NotYetValid { nbf, .. }) if nbf == NOW + 5),
            "{strict:?}"
        );
        let short = on(&JwtPolicy {
            leeway_seconds: 10,
            max_lifetime_seconds: 30,
            ..JwtPolicy::default()
        });
        assert!(
            matches!(short, Err(AuthError::LifetimeTooLong { lifetime: 60, .. })),
            "{short:?}"
        );
        assert!(on(&lenient).is_ok());
        assert_eq!(cache.len(), 1, "every answer came from the one entry");
    }

    #[test]
    fn a_token_refused_for_its_claims_is_remembered() {
        // Verified once, whatever its claims say: a client retrying an
        // expired token costs a look-up, not a signature check.
        let cache = VerifiedCache::new(64);
        let r = registry();
        let at = |t: &str, now: i64, r: &ConsumerRegistry| {
            authenticate_cached(
                &JwtPolicy::default(),
                &AuthContext::consumers_only(r),
                t,
                &FixedClock(now),
                &cache,
            )
        };
        let expired = sign(json!({"key": "user123", "exp": NOW - 1}));
        for _ in 0..2 {
            let e = at(&expired, NOW, &r);
            assert!(matches!(e, Err(AuthError::Expired { .. })), "{e:?}");
        }
        assert_eq!(cache.len(), 1, "kept after its first refusal");
        // Not yet valid, then valid: the one entry answers both.
        let early = sign(json!({"key": "user123", "nbf": NOW + 5, "exp": NOW + 60}));
        let e = at(&early, NOW, &r);
        assert!(matches!(e, Err(AuthError::NotYetValid { .. })), "{e:?}");
        assert_eq!(cache.len(), 2);
        // Served from memory: an empty registry, which would refuse it
        // afresh, is not consulted (a cache lives in one config version).
        let rekeyed = ConsumerRegistry::new();
        let a = at(&early, NOW + 5, &rekeyed).expect("valid from nbf on");
        assert_eq!(
            a.principal.consumer().map(|c| c.username.as_str()),
            Some("alice")
        );
        // A claim in the wrong shape is refused from memory too.
        let shaped = sign(json!({"key": "user123", "sub": ["u-1"], "exp": NOW + 60}));
        for _ in 0..2 {
            let e = at(&shaped, NOW, &r);
            assert!(matches!(e, Err(AuthError::NotASubject(_))), "{e:?}");
        }
        assert_eq!(cache.len(), 3);
        assert!(matches!(
            at(&shaped, NOW, &rekeyed),
            Err(AuthError::NotASubject(_))
        ));
    }

    #[test]
    fn bad_signatures_are_remembered_and_stay_bad() {
        let cache = VerifiedCache::new(64);
        let p = JwtPolicy::default();
        let good = sign(json!({"key": "user123", "exp": NOW + 60}));
        let forged = format!("{}AAAA", &good[..good.len() - 4]);
        let r = registry();
        for _ in 0..2 {
            assert_eq!(
                authenticate_cached(
                    &p,
                    &AuthContext::consumers_only(&r),
                    &forged,
                    &FixedClock(NOW),
                    &cache
                )
                .map(|a| a
                    .principal
                    .consumer()
                    .expect("consumer")
                    .username
                    .clone()),
                Err(AuthError::BadSignature)
            );
        }
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_key_claim_name_is_part_of_the_entry() {
        let cache = VerifiedCache::new(64);
        let t = sign(json!({"key": "user123", "sub": "x", "exp": NOW + 60}));
        let r = registry();
        assert!(authenticate_cached(
            &JwtPolicy::default(),
            &AuthContext::consumers_only(&r),
            &t,
            &FixedClock(NOW),
            &cache
        )
        .is_ok());
        let by_sub = JwtPolicy {
            key_claim_name: "sub".into(),
            ..JwtPolicy::default()
        };
        assert!(matches!(
            authenticate_cached(
                &by_sub,
                &AuthContext::consumers_only(&r),
                &t,
                &FixedClock(NOW),
                &cache
            ),
            Err(AuthError::UnknownConsumer { .. })
        ));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = VerifiedCache::new(32);
        let r = registry();
        for i in 0..500 {
            let t = sign(json!({"key": "user123", "exp": NOW + 60, "n": i}));
            assert!(authenticate_cached(
                &JwtPolicy::default(),
                &AuthContext::consumers_only(&r),
                &t,
                &FixedClock(NOW),
                &cache
            )
            .is_ok());
        }
        assert!(cache.len() <= 32, "{}", cache.len());
    }
}
