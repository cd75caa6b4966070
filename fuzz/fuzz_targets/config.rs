//! The config loader reports errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mysqlchk::config::from_str(text, "fuzz.toml", &Default::default());
    }
});
