//! The token splitter/decoder and the whole authenticate path: any bytes as a
//! token must give Ok or a typed error, never a panic.
#![no_main]

use jwtgate_core::clock::FixedClock;
use jwtgate_core::consumer::{Consumer, ConsumerRegistry, Credential};
use jwtgate_core::jwt::{Algorithm, RevocationKey, Token, VerifyKey};
use jwtgate_core::policy::{authenticate, sources, AuthContext, JwtPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Token::parse(text) {
        let _ = RevocationKey::of(&t);
    }
    let _ = sources::strip_bearer(text);
    let _ = sources::query_params(text, "jwt").count();
    let _ = sources::cookie_values(text, "jwt").count();
    let mut consumers = ConsumerRegistry::new();
    if let Ok(key) = VerifyKey::from_secret(Algorithm::HS256, b"fuzz-secret-fuzz-secret-fuzz-sec") {
        let _ = consumers.insert(Consumer {
            username: "fuzz".into(),
            custom_id: None,
            credential: Some(Credential {
                key: "user123".into(),
                verify_key: key,
            }),
        });
    }
    let _ = authenticate(
        &JwtPolicy::default(),
        &AuthContext::consumers_only(&consumers),
        text,
        &FixedClock(1_700_000_000),
    );
});
