//! The provider way (SPEC §3.6) through `authenticate` and the cache, with
//! key sets swapped in and out the way the background fetcher does.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::cache::VerifiedCache;
use super::*;
use crate::clock::FixedClock;
use crate::consumer::{Consumer, ConsumerRegistry, Credential};
use crate::jwt::{Algorithm, JwkSet, SigningKey, VerifyKey};
use crate::provider::{IdentityProvider, KeyRing, ProviderDirectory, ProviderKeys};

const NOW: i64 = 1_700_000_000;
const ISS: &str = "https://idp.example/realms/main";
const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{TESTDATA}/{path}")).expect("testdata")
}

/// A key ring the test can change, as the fetcher would.
#[derive(Default)]
struct Ring(Mutex<Option<Arc<ProviderKeys>>>);

impl Ring {
    fn set(&self, jwks: &[&str], generation: u64, fetched_at: i64) {
        let keys: Vec<Value> = jwks
            .iter()
            .map(|n| serde_json::from_str(&read(&format!("jwks/{n}.json"))).expect("jwk"))
            .collect();
        let doc = json!({ "keys": keys }).to_string();
        let set =
            JwkSet::parse(doc.as_bytes(), &[Algorithm::RS256, Algorithm::ES256]).expect("set");
        *self.0.lock().expect("lock") = Some(Arc::new(ProviderKeys {
            set: Arc::new(set),
            generation,
            fetched_at,
            max_stale: Some(3600),
            source: "test".into(),
        }));
    }
}

impl KeyRing for Ring {
    fn current(&self, _index: usize) -> Option<Arc<ProviderKeys>> {
        self.0.lock().expect("lock").clone()
    }
}

struct World {
    consumers: ConsumerRegistry,
    providers: ProviderDirectory,
    ring: Ring,
}

impl World {
    fn new() -> World {
        let mut consumers = ConsumerRegistry::new();
        consumers
            .insert(Consumer {
                username: "alice".into(),
                custom_id: None,
                credential: Some(Credential {
                    key: "user123".into(),
                    verify_key: VerifyKey::from_secret(Algorithm::HS256, &[7u8; 32]).expect("key"),
                }),
            })
            .expect("unique");
        // A consumer with no credential: only a provider's consumer_claim
        // (or the anonymous consumer) can name it.
        consumers
            .insert(Consumer {
                username: "carol".into(),
                custom_id: Some("crm-7".into()),
                credential: None,
            })
            .expect("no key to clash");
        let mut providers = ProviderDirectory::new();
        for (name, issuer) in [("corp", ISS), ("other", "https://other.example")] {
            providers
                .insert(IdentityProvider {
                    index: 0,
                    name: name.into(),
                    issuer: issuer.into(),
                    algorithms: vec![Algorithm::RS256, Algorithm::ES256],
                    audiences: vec!["orders-api".into()],
                    consumer_claim: Some("preferred_username".into()),
                    client_id: None,
                })
                .expect("unique issuer");
        }
        let ring = Ring::default();
        ring.set(&["rsa", "ec-p256"], 1, NOW - 10);
        World {
            consumers,
            providers,
            ring,
        }
    }

    fn ctx(&self) -> AuthContext<'_> {
        AuthContext {
            consumers: &self.consumers,
            providers: &self.providers,
            keys: &self.ring,
        }
    }
}

fn route() -> JwtPolicy {
    JwtPolicy {
        providers: vec![0],
        ..JwtPolicy::default()
    }
}

fn claims(extra: Value) -> serde_json::Map<String, Value> {
    let mut c = json!({"iss": ISS, "aud": "orders-api", "sub": "u-1", "exp": NOW + 300});
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        for (k, v) in extra {
            if v.is_null() {
                c.remove(&k);
            } else {
                c.insert(k, v);
            }
        }
    }
    let Value::Object(m) = c else { unreachable!() };
    m
}

fn sign(alg: Algorithm, key: &str, kid: Option<&str>, extra: Value) -> String {
    SigningKey::from_private_pem(alg, &read(&format!("keys/{key}")))
        .expect("key")
        .encode_with_kid(&claims(extra), kid)
        .expect("sign")
}

fn rs256(extra: Value) -> String {
    sign(Algorithm::RS256, "rsa.key", Some("rsa-1"), extra)
}

fn auth(w: &World, policy: &JwtPolicy, token: &str) -> Result<Authenticated, AuthError> {
    authenticate(policy, &w.ctx(), token, &FixedClock(NOW))
}

#[test]
fn a_listed_providers_token_is_verified_with_its_keys() {
    let w = World::new();
    let a = auth(&w, &route(), &rs256(json!({}))).expect("accepted");
    let Principal::Provider {
        provider,
        consumer,
        generation,
    } = &a.principal
    else {
        panic!("{:?}", a.principal)
    };
    assert_eq!(provider.name, "corp");
    assert!(consumer.is_none());
    assert_eq!(*generation, 1);
    let es = sign(Algorithm::ES256, "ec-p256.key", Some("ec-256"), json!({}));
    assert!(auth(&w, &route(), &es).is_ok());
    // No kid: the one key of the token's type.
    let es = sign(Algorithm::ES256, "ec-p256.key", None, json!({}));
    assert!(auth(&w, &route(), &es).is_ok());
}

#[test]
fn consumer_claim_names_a_consumer_by_username() {
    let w = World::new();
    let a = auth(&w, &route(), &rs256(json!({"preferred_username": "alice"}))).expect("ok");
    assert_eq!(
        a.principal.consumer().map(|c| c.username.as_str()),
        Some("alice")
    );
    // A name that is no consumer is accepted, without a consumer.
    let a = auth(&w, &route(), &rs256(json!({"preferred_username": "bob"}))).expect("ok");
    assert!(a.principal.consumer().is_none());
    // A consumer without a credential is named all the same.
    let a = auth(&w, &route(), &rs256(json!({"preferred_username": "carol"}))).expect("ok");
    let carol = a.principal.consumer().expect("carol");
    assert_eq!(carol.username, "carol");
    assert!(carol.credential.is_none());
}

#[test]
fn issuers_decide_the_way() {
    let w = World::new();
    // Provider "other" is configured but not listed on this route.
    let t = rs256(json!({"iss": "https://other.example"}));
    let e = auth(&w, &route(), &t).expect_err("unlisted");
    assert_eq!(e.outcome(), "wrong_issuer");
    assert_eq!(e.public_message(), "failed to verify jwt");
    // A prefix or case variant of an issuer is no provider: the consumer
    // way, which finds no key claim.
    for iss in [
        &ISS[..ISS.len() - 1],
        "HTTPS://IDP.EXAMPLE/realms/main",
        "https://idp.example/realms/main/",
    ] {
        let t = rs256(json!({ "iss": iss }));
        assert_eq!(
            auth(&w, &route(), &t).expect_err("consumer way").outcome(),
            "missing_key_claim",
            "{iss}"
        );
        let only = JwtPolicy {
            consumers: false,
            ..route()
        };
        assert_eq!(
            auth(&w, &only, &t).expect_err("refused").outcome(),
            "wrong_issuer"
        );
    }
    // consumers: false refuses consumer tokens outright.
    let only = JwtPolicy {
        consumers: false,
        ..route()
    };
    let consumer_token = SigningKey::from_secret(Algorithm::HS256, &[7u8; 32])
        .expect("key")
        .encode(&claims(json!({"iss": null, "key": "user123"})))
        .expect("sign");
    assert!(auth(&w, &route(), &consumer_token).is_ok());
    assert_eq!(
        auth(&w, &only, &consumer_token)
            .expect_err("refused")
            .outcome(),
        "wrong_issuer"
    );
}

#[test]
fn the_providers_algorithms_are_pinned() {
    let w = World::new();
    // An HS256 token naming the provider: never (no oct keys, no HS*).
    let hs = SigningKey::from_secret(Algorithm::HS256, &[7u8; 32])
        .expect("key")
        .encode_with_kid(&claims(json!({})), Some("rsa-1"))
        .expect("sign");
    assert_eq!(
        auth(&w, &route(), &hs).expect_err("hs").outcome(),
        "wrong_alg"
    );
    let ps = sign(Algorithm::PS256, "rsa.key", Some("rsa-1"), json!({}));
    let e = auth(&w, &route(), &ps).expect_err("ps");
    assert!(matches!(e, AuthError::AlgNotAllowed { .. }), "{e}");
    // An ES256 token naming the RSA key's kid.
    let es = sign(Algorithm::ES256, "ec-p256.key", Some("rsa-1"), json!({}));
    let e = auth(&w, &route(), &es).expect_err("unfit");
    assert_eq!(e.outcome(), "wrong_alg");
    assert!(e.to_string().contains("it is an RSA 2048-bit key"), "{e}");
}

#[test]
fn unknown_kids_are_reported_for_a_refetch() {
    let w = World::new();
    let t = sign(Algorithm::RS256, "rsa2.key", Some("rsa-2"), json!({}));
    let e = auth(&w, &route(), &t).expect_err("unknown");
    assert_eq!(e.outcome(), "unknown_kid");
    assert_eq!(e.unknown_kid(), Some((0, "rsa-2")));
    // After rotation the same token verifies.
    w.ring.set(&["rsa", "rsa2"], 2, NOW);
    assert!(auth(&w, &route(), &t).is_ok());
}

#[test]
fn audiences_string_or_list_and_route_override() {
    let w = World::new();
    for (aud, ok) in [
        (json!("orders-api"), true),
        (json!(["x", "orders-api"]), true),
        (json!("orders-api "), false),
        (json!("ORDERS-API"), false),
        (json!(["x", "y"]), false),
        (json!([]), false),
        (json!(["orders-api", 7]), false),
        (json!(7), false),
        (json!({"orders-api": true}), false),
        (Value::Null, false),
    ] {
        let t = rs256(json!({ "aud": aud }));
        let got = auth(&w, &route(), &t);
        assert_eq!(got.is_ok(), ok, "{aud}: {got:?}");
        if !ok {
            assert_eq!(
                got.expect_err("refused").outcome(),
                "wrong_audience",
                "{aud}"
            );
        }
    }
    let overridden = JwtPolicy {
        audiences: vec!["billing".into()],
        ..route()
    };
    assert!(auth(&w, &overridden, &rs256(json!({"aud": "billing"}))).is_ok());
    assert!(auth(&w, &overridden, &rs256(json!({}))).is_err());
}

#[test]
fn stale_or_missing_keys_verify_nothing() {
    let w = World::new();
    let t = rs256(json!({}));
    w.ring.set(&["rsa"], 1, NOW - 3601);
    let e = auth(&w, &route(), &t).expect_err("stale");
    assert_eq!(e.outcome(), "keys_unavailable");
    *w.ring.0.lock().expect("lock") = None;
    assert_eq!(
        auth(&w, &route(), &t).expect_err("none").outcome(),
        "keys_unavailable"
    );
}

#[test]
fn the_cache_follows_key_rotation_and_removal() {
    let w = World::new();
    let cache = VerifiedCache::new(64);
    let t = rs256(json!({}));
    let cached = |w: &World| authenticate_cached(&route(), &w.ctx(), &t, &FixedClock(NOW), &cache);
    assert!(cached(&w).is_ok());
    assert!(cached(&w).is_ok(), "a hit");
    // The key is removed: refused at once, cache included.
    w.ring.set(&["ec-p256"], 2, NOW);
    assert_eq!(cached(&w).expect_err("removed").outcome(), "unknown_kid");
    // Back: verified again.
    w.ring.set(&["rsa"], 3, NOW);
    assert!(cached(&w).is_ok());
    // A hit is still refused on a route that does not list the provider,
    // or when the keys went stale.
    let elsewhere = JwtPolicy::default();
    assert_eq!(
        authenticate_cached(&elsewhere, &w.ctx(), &t, &FixedClock(NOW), &cache)
            .expect_err("unlisted")
            .outcome(),
        "wrong_issuer"
    );
    let later = authenticate_cached(&route(), &w.ctx(), &t, &FixedClock(NOW + 3601), &cache);
    assert_eq!(later.expect_err("stale").outcome(), "keys_unavailable");
}

#[test]
fn a_provider_token_refused_for_its_claims_is_remembered_for_its_consumer() {
    let w = World::new();
    let cache = VerifiedCache::new(64);
    let t = rs256(json!({"aud": "billing", "nbf": NOW + 5, "preferred_username": "carol"}));
    let billing = JwtPolicy {
        audiences: vec!["billing".into()],
        ..route()
    };
    let at = |policy: &JwtPolicy, now: i64| {
        authenticate_cached(policy, &w.ctx(), &t, &FixedClock(now), &cache)
    };
    assert_eq!(
        at(&billing, NOW).expect_err("early").outcome(),
        "not_yet_valid"
    );
    assert_eq!(cache.len(), 1, "kept although refused");
    assert_eq!(
        at(&route(), NOW + 5).expect_err("aud").outcome(),
        "wrong_audience"
    );
    // Valid now, on the route that expects its audience: from the one
    // entry, standing for the consumer its claim names.
    let a = at(&billing, NOW + 5).expect("valid");
    assert_eq!(
        a.principal.consumer().map(|c| c.username.as_str()),
        Some("carol")
    );
    assert_eq!(cache.len(), 1);
    // The keys change: verified again, not answered from memory.
    w.ring.set(&["ec-p256"], 2, NOW);
    assert_eq!(
        at(&billing, NOW + 5).expect_err("gone").outcome(),
        "unknown_kid"
    );
}

#[test]
fn a_bad_signature_is_remembered_only_for_its_key_generation() {
    let w = World::new();
    let cache = VerifiedCache::new(64);
    // Signed with rsa2's private key under rsa-1's kid.
    let forged = sign(Algorithm::RS256, "rsa2.key", Some("rsa-1"), json!({}));
    let cached =
        |w: &World| authenticate_cached(&route(), &w.ctx(), &forged, &FixedClock(NOW), &cache);
    assert_eq!(cached(&w).expect_err("bad"), AuthError::BadSignature);
    assert_eq!(cached(&w).expect_err("bad"), AuthError::BadSignature);
    // The provider rotated rsa-1 to what signed it (odd, but its right):
    // verified again with the new keys, not refused from memory.
    let rotated = json!({"keys": [{
        "kid": "rsa-1",
        "kty": "RSA",
        "n": serde_json::from_str::<Value>(&read("jwks/rsa2.json")).expect("jwk")["n"],
        "e": "AQAB"
    }]})
    .to_string();
    let set = JwkSet::parse(rotated.as_bytes(), &[Algorithm::RS256]).expect("set");
    *w.ring.0.lock().expect("lock") = Some(Arc::new(ProviderKeys {
        set: Arc::new(set),
        generation: 9,
        fetched_at: NOW,
        max_stale: None,
        source: "test".into(),
    }));
    assert!(cached(&w).is_ok());
}

/// Found by an outside attack: a provider's logout token passed as an
/// access token (for the user who logged out) where the route checks no
/// audience, or lists the provider's client_id.
#[test]
fn a_logout_token_is_never_an_access_token() {
    let w = World::new();
    let key = SigningKey::from_private_pem(Algorithm::RS256, &read("keys/rsa.key")).expect("key");
    let signed = |typ: Option<&str>, extra: Value| {
        let mut header = json!({"alg": "RS256", "kid": "rsa-1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        key.encode_with_header(&header, &claims(extra))
            .expect("sign")
    };
    let event = json!({ "events": { crate::backchannel::LOGOUT_EVENT: {} }, "jti": "j-1" });
    for (what, token) in [
        ("typ logout+jwt", signed(Some("logout+jwt"), json!({}))),
        (
            "typ application/logout+JWT",
            signed(Some("application/logout+JWT"), json!({})),
        ),
        (
            "typ Application/Logout+JWT",
            signed(Some("Application/Logout+JWT"), json!({})),
        ),
        (
            "the back-channel events member",
            signed(Some("JWT"), event.clone()),
        ),
        ("both", signed(Some("logout+jwt"), event)),
    ] {
        let got = auth(&w, &route(), &token);
        assert!(
            matches!(got, Err(AuthError::LogoutToken)),
            "{what}: {got:?}"
        );
        assert_eq!(got.expect_err("refused").outcome(), "wrong_type");
    }
    // Other types, and other events, are access tokens as before.
    for (typ, extra) in [
        (Some("JWT"), json!({})),
        (Some("at+jwt"), json!({})),
        (
            None,
            json!({ "events": { "https://example.com/other": {} } }),
        ),
    ] {
        let token = signed(typ, extra.clone());
        assert!(auth(&w, &route(), &token).is_ok(), "{typ:?} {extra}");
    }
}
