//! Per-request costs of the JWT core: parse + verify for each algorithm, the
//! whole `authenticate` (cold and through the verified-token cache), consumer
//! lookup among 10 000 consumers, and the token digest the blacklist uses.
//!
//! Run: cargo bench -p jwtgate-core --bench verify

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use jwtgate_core::clock::FixedClock;
use jwtgate_core::consumer::{Consumer, ConsumerRegistry, Credential};
use jwtgate_core::jwt::{Algorithm, RevocationKey, SigningKey, Token, VerifyKey};
use jwtgate_core::policy::cache::VerifiedCache;
use jwtgate_core::policy::{authenticate, authenticate_cached, AuthContext, JwtPolicy};
use serde_json::{json, Value};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/keys");
const NOW: i64 = 1_700_000_000;

fn files(alg: Algorithm) -> (&'static str, &'static str) {
    match alg {
        Algorithm::ES256 => ("ec-p256.key", "ec-p256.pub"),
        Algorithm::ES384 => ("ec-p384.key", "ec-p384.pub"),
        Algorithm::ES512 => ("ec-p521.key", "ec-p521.pub"),
        Algorithm::EdDSA => ("ed25519.key", "ed25519.pub"),
        _ => ("rsa.key", "rsa.pub"),
    }
}

fn keys(alg: Algorithm) -> (SigningKey, VerifyKey) {
    let secret = b"bench-secret-bench-secret-bench-secret!";
    if alg.is_hmac() {
        return (
            SigningKey::from_secret(alg, secret).expect("key"),
            VerifyKey::from_secret(alg, secret).expect("key"),
        );
    }
    let (k, p) = files(alg);
    let read = |f: &str| std::fs::read_to_string(format!("{KEYS}/{f}")).expect("key file");
    (
        SigningKey::from_private_pem(alg, &read(k)).expect("key"),
        VerifyKey::from_public_pem(alg, &read(p)).expect("key"),
    )
}

fn claims(key: &str) -> serde_json::Map<String, Value> {
    let Value::Object(m) = json!({"key": key, "exp": NOW + 3600, "sub": "u-1", "iat": NOW}) else {
        unreachable!()
    };
    m
}

fn parse_and_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_and_verify");
    for alg in Algorithm::ALL {
        let (signer, verifier) = keys(alg);
        let token = signer.encode(&claims("user123")).expect("sign");
        g.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                let t = Token::parse(black_box(&token)).expect("parse");
                assert!(verifier.verify(t.signing_input(), t.signature()));
            })
        });
    }
    g.finish();
}

fn registry(n: usize, alg: Algorithm) -> ConsumerRegistry {
    let mut r = ConsumerRegistry::new();
    for i in 0..n {
        let (_, verify_key) = keys(alg);
        r.insert(Consumer {
            username: format!("consumer-{i}"),
            custom_id: None,
            credential: Some(Credential {
                key: format!("key-{i}"),
                verify_key,
            }),
        })
        .expect("unique");
    }
    r
}

fn authenticate_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("authenticate");
    let policy = JwtPolicy::default();
    let clock = FixedClock(NOW);
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        let registry = registry(if alg.is_hmac() { 10_000 } else { 100 }, alg);
        let consumers = AuthContext::consumers_only(&registry);
        let (signer, _) = keys(alg);
        let token = signer.encode(&claims("key-42")).expect("sign");
        g.bench_function(format!("{alg}/cold"), |b| {
            b.iter(|| authenticate(&policy, &consumers, black_box(&token), &clock).expect("ok"))
        });
        let cache = VerifiedCache::default();
        g.bench_function(format!("{alg}/cached"), |b| {
            b.iter(|| {
                authenticate_cached(&policy, &consumers, black_box(&token), &clock, &cache)
                    .expect("ok")
            })
        });
        let forged = format!("{}AAAA", &token[..token.len() - 4]);
        g.bench_function(format!("{alg}/bad_signature_cached"), |b| {
            b.iter(|| {
                authenticate_cached(&policy, &consumers, black_box(&forged), &clock, &cache)
                    .is_err()
            })
        });
        // A client retrying its expired token: refused from memory.
        let expired = signer.encode(&claims("key-43")).expect("sign");
        let later = FixedClock(NOW + 7200);
        g.bench_function(format!("{alg}/expired_cached"), |b| {
            b.iter(|| {
                authenticate_cached(&policy, &consumers, black_box(&expired), &later, &cache)
                    .is_err()
            })
        });
    }
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let consumers = registry(10_000, Algorithm::HS256);
    c.bench_function("consumer_lookup/10000", |b| {
        b.iter(|| consumers.get(black_box("key-7777")).is_some())
    });
    let (signer, _) = keys(Algorithm::HS256);
    let token = signer.encode(&claims("key-42")).expect("sign");
    let parsed = Token::parse(&token).expect("parse");
    c.bench_function("revocation_key/sha256x2", |b| {
        b.iter(|| RevocationKey::of(black_box(&parsed)))
    });
}

criterion_group!(benches, parse_and_verify, authenticate_paths, lookups);
criterion_main!(benches);
