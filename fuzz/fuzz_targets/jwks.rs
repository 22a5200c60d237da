//! The JWK Set parser and key choice: any bytes an identity provider sends
//! give a set or a typed error, never a panic; whatever set results, every
//! key choice is a key or a typed miss, and a chosen key fits the token's
//! algorithm.
#![no_main]

use jwtgate_core::jwt::{Algorithm, JwkSet};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = JwkSet::parse(data, &Algorithm::ALL) else {
        return;
    };
    assert!(!set.is_empty());
    let _ = set.fingerprint();
    for alg in Algorithm::ALL {
        for kid in [None, Some(Value::from("k")), Some(Value::from(1))] {
            if let Ok((jwk, key)) = set.select(alg, kid.as_ref()) {
                assert_eq!(key.algorithm(), alg);
                assert!(jwk.kind.fits(alg));
                assert!(!alg.is_hmac());
                let _ = key.verify(b"input", data);
            }
        }
    }
});
