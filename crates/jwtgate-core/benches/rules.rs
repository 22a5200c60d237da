//! Path rule lookup and normalisation, the two path costs paid on every
//! request. `find` should cost about the same with 10 rules as with 10 000:
//! it walks the path once, it does not scan the rules.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jwtgate_core::path::{normalize, Method, PathRules, RuleEntry};

/// `count` entries spread over several methods, alternating exact and prefix
/// patterns, with realistic shared prefixes (`/v1/svc42/items/...`).
fn rule_set(count: usize) -> Vec<RuleEntry> {
    let methods = ["GET", "POST", "PUT", "DELETE", "ANY"];
    (0..count)
        .map(|i| {
            let method = methods[i % methods.len()];
            let star = if i % 2 == 0 { "" } else { "*" };
            let text = format!("{method}_/v1/svc{}/items/{i}{star}", i % 97);
            RuleEntry::parse(&text).expect("benchmark rules are valid")
        })
        .collect()
}

fn bench_find(c: &mut Criterion) {
    let mut group = c.benchmark_group("PathRules::find");
    for count in [10, 1_000, 10_000] {
        let rules = PathRules::compile(&rule_set(count));
        // Entry 7 is in every set: PUT_/v1/svc7/items/7* (7 % 5 == 2, 7 is odd).
        let hit = "/v1/svc7/items/7/details";
        let miss = "/v1/svc7/items/none/details";
        assert!(rules.find(Method::Put, hit).is_some());
        assert!(rules.find(Method::Put, miss).is_none());
        group.bench_with_input(BenchmarkId::new("hit", count), &rules, |b, rules| {
            b.iter(|| rules.find(black_box(Method::Put), black_box(hit)))
        });
        group.bench_with_input(BenchmarkId::new("miss", count), &rules, |b, rules| {
            b.iter(|| rules.find(black_box(Method::Put), black_box(miss)))
        });
        // Reference point: what a scan of every entry would cost.
        group.bench_with_input(
            BenchmarkId::new("linear-scan-miss", count),
            &rules,
            |b, rules| {
                b.iter(|| {
                    let path = black_box(miss);
                    rules
                        .entries()
                        .iter()
                        .find(|e| e.matches(Method::Put, path))
                })
            },
        );
    }
    group.finish();
}

fn bench_normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    let clean = "/v1/svc7/items/7/details";
    let dirty = "/v1//svc7/./items/%37/../7/%64etails";
    assert_eq!(normalize(dirty).as_deref(), Ok(clean));
    group.bench_function("clean", |b| b.iter(|| normalize(black_box(clean))));
    group.bench_function("dirty", |b| b.iter(|| normalize(black_box(dirty))));
    group.finish();
}

criterion_group!(benches, bench_find, bench_normalize);
criterion_main!(benches);
