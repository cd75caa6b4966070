//! The option-file parser never panics and never puts a password in an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mysqlchk::config::mycnf::parse(text, "fuzz.cnf");
    }
});
