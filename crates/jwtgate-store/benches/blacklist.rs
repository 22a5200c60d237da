//! The blacklist check on the request path: one probe into the in-memory set
//! holding 100 000 revoked digests, hit and miss.
//!
//! Run: cargo bench -p jwtgate-store --bench blacklist

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use jwtgate_store::{Blacklist, Entry};

fn digest(i: u64) -> [u8; 32] {
    // Spread like SHA-256 output would be.
    let mut d = [0u8; 32];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    for chunk in d.chunks_mut(8) {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    d
}

fn check(c: &mut Criterion) {
    let b = Blacklist::new();
    b.extend((0..100_000).map(|i| Entry {
        digest: digest(i),
        expires_at: i64::MAX,
    }));
    let hit = digest(4242);
    let miss = digest(1_000_000);
    c.bench_function("blacklist/100k/hit", |bn| {
        bn.iter(|| b.contains(black_box(&hit), 0))
    });
    c.bench_function("blacklist/100k/miss", |bn| {
        bn.iter(|| b.contains(black_box(&miss), 0))
    });
}

criterion_group!(benches, check);
criterion_main!(benches);
