//! The token splitter/decoder and the whole authenticate path: any bytes as a
//! token must give Ok or a typed error, never a panic.
#![no_main]

use jwtgate_core::clock::FixedClock;
use jwtgate_core::consumer::{Consumer, ConsumerRegistry};
use jwtgate_core::jwt::{Algorithm, Token, VerifyKey};
use jwtgate_core::policy::{authenticate, sources, JwtPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Token::parse(text);
    let _ = sources::strip_bearer(text);
    let _ = sources::query_param(text, "jwt");
    let _ = sources::cookie_value(text, "jwt");
    let mut consumers = ConsumerRegistry::new();
    if let Ok(key) = VerifyKey::from_secret(Algorithm::HS256, b"fuzz-secret") {
        let _ = consumers.insert(Consumer {
            username: "fuzz".into(),
            custom_id: None,
            key: "user123".into(),
            verify_key: key,
        });
    }
    let _ = authenticate(&JwtPolicy::default(), &consumers, text, &FixedClock(1_700_000_000));
});
