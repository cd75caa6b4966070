//! loadgen: the mysqlchk benchmarks' load generator and report.
//!
//! ```text
//! loadgen run --port P [--host 127.0.0.1] [--path /] [--method GET] [-c 16] [-d 5]
//!             [--timeout 10] [--backoff-ms 10] [--engine threads|tokio] [--threads 1]
//!             [--header 'Name: value']... [--label NAME]
//! loadgen ages --port P [--host 127.0.0.1] [-d 30] [--every-ms 100]
//! loadgen freeport [N]
//! loadgen summarize RUNS.jsonl [--meta META.json] [--out RESULT.json]
//! ```
//!
//! `run` opens one new TCP connection per request, sends `<METHOD> <path> HTTP/1.0` and
//! reads until the response is complete by its Content-Length (then closes at once), the
//! server closes, the connection is reset, or the timeout; it classifies every
//! connection's outcome and prints one JSON line. `--header` (repeatable) adds a request
//! header, e.g. the `X-Haproxy-Server-State` that names a fleet checker's target.
//!
//! `ages` reads mysqlchk's `/status` every `--every-ms` for `-d` seconds and prints one
//! JSON line with the percentiles of every target's snapshot `age_seconds` over all
//! samples (the fleet benchmark, bench/fleet.sh).

mod ages;
mod http;
mod run;
mod summarize;

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!(
        "usage:\n  loadgen run --port P [--host 127.0.0.1] [--path /] [--method GET] [-c N] [-d SECS]\n\
         \x20             [--timeout SECS] [--backoff-ms MS] [--engine threads|tokio] [--threads N]\n\
         \x20             [--header 'Name: value']... [--label NAME]\n\
         \x20 loadgen ages --port P [--host 127.0.0.1] [-d SECS] [--every-ms MS]\n\
         \x20 loadgen freeport [N]\n\
         \x20 loadgen summarize RUNS.jsonl [--meta META.json] [--out RESULT.json]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("freeport") => {
            let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            // Hold all listeners until every port is chosen, so the N ports differ.
            let ls: Vec<TcpListener> = (0..n)
                .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
                .collect();
            let ports: Vec<String> = ls
                .iter()
                .map(|l| l.local_addr().unwrap().port().to_string())
                .collect();
            println!("{}", ports.join(" "));
            ExitCode::SUCCESS
        }
        Some("summarize") => summarize::main(&args[1..]),
        Some("ages") => ages::main(&args[1..]),
        _ => usage(),
    }
}

fn cmd_run(args: &[String]) -> ExitCode {
    let mut host = "127.0.0.1".to_string();
    let mut port: Option<u16> = None;
    let mut path = "/".to_string();
    let mut method = "GET".to_string();
    let mut concurrency = 1usize;
    let mut duration = 5.0f64;
    let mut timeout = 10.0f64;
    let mut backoff_ms = 10u64;
    let mut engine = run::Engine::Threads;
    let mut threads = 1usize;
    let mut label = String::new();
    let mut headers = String::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--host" => host = val(),
            "--port" | "-p" => port = val().parse().ok(),
            "--path" => path = val(),
            "--method" => method = val().to_ascii_uppercase(),
            "-c" | "--concurrency" => concurrency = val().parse().unwrap_or(0),
            "-d" | "--duration" => duration = val().parse().unwrap_or(-1.0),
            "--timeout" => timeout = val().parse().unwrap_or(-1.0),
            "--backoff-ms" => backoff_ms = val().parse().unwrap_or(10),
            "--engine" => {
                engine = match val().as_str() {
                    "threads" => run::Engine::Threads,
                    "tokio" => run::Engine::Tokio,
                    other => {
                        eprintln!("loadgen: unknown engine {other:?}");
                        return usage();
                    }
                }
            }
            "--threads" => threads = val().parse().unwrap_or(1),
            "--label" => label = val(),
            "--header" | "-H" => {
                let h = val();
                // One header line: a CR or LF inside would smuggle more lines.
                if !h.contains(':') || h.contains(['\r', '\n']) {
                    eprintln!("loadgen: --header wants one 'Name: value' line, got {h:?}");
                    return usage();
                }
                headers.push_str(&h);
                headers.push_str("\r\n");
            }
            other => {
                eprintln!("loadgen: unknown argument {other:?}");
                return usage();
            }
        }
    }
    let Some(port) = port else {
        eprintln!("loadgen: --port is required");
        return usage();
    };
    if concurrency == 0 || duration <= 0.0 || timeout <= 0.0 {
        eprintln!("loadgen: -c, -d and --timeout must be positive");
        return usage();
    }
    let addr: SocketAddr = match format!("{host}:{port}").parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: bad address {host}:{port}: {e}");
            return usage();
        }
    };
    let opts = run::Opts {
        label,
        addr,
        request: format!("{method} {path} HTTP/1.0\r\n{headers}\r\n").into_bytes(),
        head_only: method == "HEAD",
        concurrency,
        duration: Duration::from_secs_f64(duration),
        timeout: Duration::from_secs_f64(timeout),
        backoff: Duration::from_millis(backoff_ms),
        engine,
        threads: threads.max(1),
    };
    println!("{}", run::run(opts));
    ExitCode::SUCCESS
}
