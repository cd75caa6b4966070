//! The HTTP request parser, the query decoder and the routing never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let mysqlchk::respond::http::Parsed::Complete(req) = mysqlchk::respond::http::parse(data) {
        if let Some(q) = &req.query {
            let pairs = mysqlchk::respond::http::query_pairs(q);
            for role in mysqlchk::Role::ALL {
                let _ = mysqlchk::respond::endpoints::lag_param(*role, &pairs);
            }
        }
        let _ = mysqlchk::respond::endpoints::Endpoint::from_path(&req.path);
        let _ = mysqlchk::respond::http::sanitize(&req.path);
    }
});
