//! `loadgen ages`: how old the snapshots a mysqlchk would answer from are, over time.
//!
//! Every `--every-ms` it fetches `/status` (one connection, `GET /status HTTP/1.0`,
//! read to the close), takes every target's `snapshot.age_seconds` (fleet mode: the
//! `targets` list; one target: the top level) and, after `-d` seconds, prints one JSON
//! line: percentiles over all samples of all targets, how many target-samples had no
//! snapshot yet, and how long the fetches took (the sampler's own cost on the checker).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub fn main(args: &[String]) -> ExitCode {
    let mut host = "127.0.0.1".to_string();
    let mut port: Option<u16> = None;
    let mut duration = 30.0f64;
    let mut every_ms = 100u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--host" => host = val(),
            "--port" | "-p" => port = val().parse().ok(),
            "-d" | "--duration" => duration = val().parse().unwrap_or(-1.0),
            "--every-ms" => every_ms = val().parse().unwrap_or(0),
            other => {
                eprintln!("loadgen ages: unknown argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let addr: Option<SocketAddr> = port.and_then(|p| format!("{host}:{p}").parse().ok());
    let (Some(addr), true, true) = (addr, duration > 0.0, every_ms > 0) else {
        eprintln!("loadgen ages: needs --port, a positive -d and --every-ms");
        return ExitCode::from(2);
    };
    let every = Duration::from_millis(every_ms);
    let end = Instant::now() + Duration::from_secs_f64(duration);
    let mut ages: Vec<f64> = Vec::new();
    let mut fetch_ms: Vec<f64> = Vec::new();
    let (mut samples, mut missing, mut failed) = (0u64, 0u64, 0u64);
    let mut next = Instant::now();
    while Instant::now() < end {
        let t0 = Instant::now();
        match fetch(addr) {
            Some(doc) => {
                samples += 1;
                let targets: Vec<&Value> = match doc.get("targets").and_then(Value::as_array) {
                    Some(list) => list.iter().collect(),
                    None => vec![&doc],
                };
                for t in targets {
                    match t.pointer("/snapshot/age_seconds").and_then(Value::as_f64) {
                        Some(a) => ages.push(a),
                        None => missing += 1,
                    }
                }
            }
            None => failed += 1,
        }
        fetch_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        next += every;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now; // fell behind (a slow fetch): do not burst to catch up
        }
    }
    ages.sort_by(f64::total_cmp);
    fetch_ms.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "samples": samples, "failed_fetches": failed, "every_ms": every_ms,
            "target_samples": ages.len(), "without_snapshot": missing,
            "age_seconds": {"p50": pct(&ages, 0.50), "p99": pct(&ages, 0.99), "max": ages.last()},
            "fetch_ms": {"p50": pct(&fetch_ms, 0.50), "max": fetch_ms.last()},
        })
    );
    ExitCode::SUCCESS
}

/// Nearest-rank percentile of sorted values (None when empty).
fn pct(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn fetch(addr: SocketAddr) -> Option<Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /status HTTP/1.0\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if !buf.starts_with(b"HTTP/1.1 200") && !buf.starts_with(b"HTTP/1.0 200") {
        return None;
    }
    serde_json::from_slice(&buf[at + 4..]).ok()
}
