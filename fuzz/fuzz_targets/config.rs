//! The config loader: any text gives a config or located errors, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = jwtgate_config::load_str(text, std::path::Path::new("/nonexistent"), &|_| None);
});
