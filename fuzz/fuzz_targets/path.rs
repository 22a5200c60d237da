//! The path normaliser: never panics, and what it accepts is normal and
//! stable (normalising again changes nothing).
#![no_main]

use jwtgate_core::path::{normalize, RuleEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = normalize(text) {
        assert!(n.starts_with('/'));
        assert!(!n.contains("//"));
        assert_eq!(normalize(&n).ok().as_deref(), Some(&*n));
    }
    let _ = RuleEntry::parse(text);
});
