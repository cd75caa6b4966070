//! Replays the cargo-fuzz corpora (fuzz/corpus/<target>/*) through the same code the
//! fuzz targets drive, as ordinary tests: every input CI has ever kept must still be
//! handled without a panic, and its mutations (truncations, byte flips) too.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "empty corpus {target}");
    out
}

/// The input, every prefix of it, and a few byte flips: cheap coverage of the
/// neighbourhood a fuzzer would start from.
fn variants(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..=bytes.len()).map(|n| bytes[..n].to_vec()).collect();
    for i in (0..bytes.len()).step_by(7) {
        let mut flipped = bytes.to_vec();
        flipped[i] ^= 0x80;
        v.push(flipped);
    }
    v
}

fn http(data: &[u8]) {
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
}

#[test]
fn http_request_corpus() {
    for (name, bytes) in corpus("http_request") {
        for v in variants(&bytes) {
            let r = std::panic::catch_unwind(|| http(&v));
            assert!(r.is_ok(), "{name}: panicked on {v:?}");
        }
    }
}

#[test]
fn mycnf_corpus() {
    for (name, bytes) in corpus("mycnf") {
        for v in variants(&bytes) {
            if let Ok(text) = std::str::from_utf8(&v) {
                let r =
                    std::panic::catch_unwind(|| mysqlchk::config::mycnf::parse(text, "corpus.cnf"));
                assert!(r.is_ok(), "{name}: panicked on {text:?}");
            }
        }
    }
}

#[test]
fn config_corpus() {
    for (name, bytes) in corpus("config") {
        for v in variants(&bytes) {
            if let Ok(text) = std::str::from_utf8(&v) {
                let r = std::panic::catch_unwind(|| {
                    mysqlchk::config::from_str(text, "corpus.toml", &Default::default())
                        .map(|_| ())
                        .map_err(|e| e.0)
                });
                let errors = r.unwrap_or_else(|_| panic!("{name}: panicked on {text:?}"));
                if let Err(lines) = errors {
                    assert!(!lines.is_empty());
                    assert!(lines.iter().all(|l| !l.contains('\n')), "{name}: {lines:?}");
                }
            }
        }
    }
}
