//! Authorization by claims (SPEC §3.7), per request: finding the rule (one
//! trie walk, whatever the number of rules) and checking its scopes and
//! claims in the payload, allowed and denied, with 10 and 1 000 rules.
//! "allowed" is a token the gateway has seen (its cached payload
//! remembers the rule it satisfies); "allowed-first" a payload checked for
//! the first time, as for a new token.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use jwtgate_core::claims::{ClaimPath, Claims};
use jwtgate_core::path::{Method, RuleEntry};
use jwtgate_core::policy::authorize::{Authorization, AuthorizeRule};
use serde_json::{json, Map, Value};

/// `count` rules like an API's: a rule per service prefix, each needing a
/// scope and a role; the one the requests hit is rule `count / 2`.
fn rules(count: usize) -> Authorization {
    let rules = (0..count)
        .map(|i| AuthorizeRule {
            index: i,
            matches: vec![
                RuleEntry::parse(&format!("POST_/v1/svc{i}/orders*")).expect("entry"),
                RuleEntry::parse(&format!("GET_/v1/svc{i}/orders*")).expect("entry"),
            ],
            scopes: vec![format!("svc{i}:write")],
            any_of: vec![(
                ClaimPath::parse("realm_access.roles").expect("path"),
                vec!["admin".into(), "clerk".into()],
            )],
            all_of: Vec::new(),
        })
        .collect();
    Authorization::new(rules, false)
}

fn claims(scope: &str) -> Claims {
    Claims::new(payload(scope))
}

fn payload(scope: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "sub": "u-1",
        "scope": format!("openid profile email {scope}"),
        "realm_access": {"roles": ["offline_access", "uma_authorization", "clerk"]},
        "exp": 4_000_000_000i64
    }) else {
        unreachable!()
    };
    m
}

fn bench_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("Authorization::decide");
    for count in [10, 1_000] {
        let a = rules(count);
        let hit = count / 2;
        let path = format!("/v1/svc{hit}/orders/42");
        let allowed = claims(&format!("svc{hit}:write"));
        let denied = claims("svc0:read");
        assert!(a.decide(Method::Post, &path, Some(&allowed)).is_allowed());
        assert!(!a.decide(Method::Post, &path, Some(&denied)).is_allowed());
        group.bench_with_input(BenchmarkId::new("allowed", count), &a, |b, a| {
            b.iter(|| {
                a.decide(
                    black_box(Method::Post),
                    black_box(&path),
                    Some(black_box(&allowed)),
                )
                .is_allowed()
            })
        });
        let scope = format!("svc{hit}:write");
        group.bench_with_input(BenchmarkId::new("allowed-first", count), &a, |b, a| {
            b.iter_batched_ref(
                || claims(&scope),
                |fresh| {
                    a.decide(black_box(Method::Post), black_box(&path), Some(fresh))
                        .is_allowed()
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("denied", count), &a, |b, a| {
            b.iter(|| {
                a.decide(
                    black_box(Method::Post),
                    black_box(&path),
                    Some(black_box(&denied)),
                )
                .is_allowed()
            })
        });
        group.bench_with_input(BenchmarkId::new("no-rule", count), &a, |b, a| {
            b.iter(|| {
                a.decide(
                    black_box(Method::Put),
                    black_box("/v2/x"),
                    Some(black_box(&allowed)),
                )
                .is_allowed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
