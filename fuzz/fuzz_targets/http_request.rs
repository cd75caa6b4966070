//! The HTTP request parser, the query decoder and the routing never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let mysqlchk::http::Parsed::Complete(req) = mysqlchk::http::parse(data) {
        if let Some(q) = &req.query {
            let pairs = mysqlchk::http::query_pairs(q);
            for role in mysqlchk::verdict::Role::ALL {
                let _ = mysqlchk::endpoints::lag_param(*role, &pairs);
            }
        }
        let _ = mysqlchk::endpoints::Endpoint::from_path(&req.path);
        let _ = mysqlchk::http::sanitize(&req.path);
    }
});
