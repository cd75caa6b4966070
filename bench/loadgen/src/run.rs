//! The load itself: C slots, each opening one TCP connection per request, sending the
//! request, reading until the response is complete (then closing at once), EOF, reset
//! or timeout, and classifying the outcome.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::http::{self, End, Outcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// One OS thread per slot, blocking sockets: fewest syscalls per request.
    Threads,
    /// Tokio tasks on `threads` worker threads (epoll).
    Tokio,
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub label: String,
    pub addr: SocketAddr,
    pub request: Vec<u8>,
    pub head_only: bool,
    pub concurrency: usize,
    pub duration: Duration,
    pub timeout: Duration,
    pub backoff: Duration,
    pub engine: Engine,
    pub threads: usize,
}

/// What one slot saw.
#[derive(Default)]
pub struct Tally {
    pub outcomes: [u64; Outcome::NAMES.len()],
    pub statuses: std::collections::BTreeMap<u16, u64>,
    pub ended_by: [u64; 3],
    pub responses_in_window: u64,
    pub ok_in_window: u64,
    /// Latency of every complete response, microseconds.
    pub latency_us: Vec<u32>,
    pub ok_latency_us: Vec<u32>,
    pub attempts: u64,
    pub write_errors: u64,
}

impl Tally {
    fn record(&mut self, outcome: Outcome, latency: Duration, in_window: bool) {
        self.attempts += 1;
        self.outcomes[outcome.index()] += 1;
        if let Outcome::Response { status, end } = outcome {
            *self.statuses.entry(status).or_insert(0) += 1;
            self.ended_by[match end {
                End::Length => 0,
                End::Eof => 1,
                End::Reset => 2,
            }] += 1;
            let us = latency.as_micros().min(u32::MAX as u128) as u32;
            self.latency_us.push(us);
            if status == 200 {
                self.ok_latency_us.push(us);
            }
            if in_window {
                self.responses_in_window += 1;
                if status == 200 {
                    self.ok_in_window += 1;
                }
            }
        }
    }

    fn merge(&mut self, o: Tally) {
        for (a, b) in self.outcomes.iter_mut().zip(o.outcomes) {
            *a += b;
        }
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_insert(0) += v;
        }
        for (a, b) in self.ended_by.iter_mut().zip(o.ended_by) {
            *a += b;
        }
        self.responses_in_window += o.responses_in_window;
        self.ok_in_window += o.ok_in_window;
        self.latency_us.extend(o.latency_us);
        self.ok_latency_us.extend(o.ok_latency_us);
        self.attempts += o.attempts;
        self.write_errors += o.write_errors;
    }
}

fn connect_outcome(e: &std::io::Error) -> Outcome {
    match e.kind() {
        ErrorKind::ConnectionRefused => Outcome::Refused,
        ErrorKind::AddrNotAvailable => Outcome::AddrNotAvail,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::ConnectTimeout,
        _ if e.raw_os_error() == Some(115) => Outcome::ConnectTimeout, // EINPROGRESS after SO_SNDTIMEO
        _ => Outcome::ConnectError,
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// One request on a blocking socket.
fn one_blocking(o: &Opts, write_errors: &mut u64) -> Outcome {
    let deadline = Instant::now() + o.timeout;
    let domain = socket2::Domain::for_address(o.addr);
    let sock = match socket2::Socket::new(domain, socket2::Type::STREAM, None) {
        Ok(s) => s,
        Err(_) => return Outcome::ConnectError,
    };
    // SO_SNDTIMEO bounds a blocking connect() on Linux (a SYN dropped by a full
    // backlog is otherwise retried for minutes).
    let _ = sock.set_write_timeout(Some(o.timeout));
    if let Err(e) = sock.connect(&o.addr.into()) {
        return connect_outcome(&e);
    }
    let _ = sock.set_tcp_nodelay(true);
    let mut stream: TcpStream = sock.into();
    if stream.write_all(&o.request).is_err() {
        // The server may already have answered and closed (or reset): read what it said.
        *write_errors += 1;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Outcome::Timeout;
        }
        let _ = stream.set_read_timeout(Some(deadline - now));
        match stream.read(&mut chunk) {
            Ok(0) => return http::at_eof(&buf, o.head_only),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(done) = http::complete_by_length(&buf, o.head_only) {
                    return done; // dropping the stream closes it at once
                }
                if buf.len() > 1 << 20 {
                    return Outcome::NotHttp;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Outcome::Timeout
            }
            Err(e) if is_reset(&e) => return http::at_reset(&buf, o.head_only),
            Err(_) => return http::at_reset(&buf, o.head_only),
        }
    }
}

fn slot_blocking(o: &Opts, start: Instant) -> Tally {
    let mut t = Tally::default();
    let end = start + o.duration;
    t.latency_us.reserve(4096);
    while Instant::now() < end {
        let t0 = Instant::now();
        let mut we = 0;
        let outcome = one_blocking(o, &mut we);
        t.write_errors += we;
        let t1 = Instant::now();
        t.record(outcome, t1 - t0, t1 <= end);
        if outcome.is_connect_failure() && !o.backoff.is_zero() {
            std::thread::sleep(o.backoff);
        }
    }
    t
}

/// One request on a tokio socket.
async fn one_tokio(o: &Opts, write_errors: &mut u64) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut stream = match tokio::net::TcpStream::connect(o.addr).await {
            Ok(s) => s,
            Err(e) => return (connect_outcome(&e), false),
        };
        let _ = stream.set_nodelay(true);
        let mut we = false;
        if stream.write_all(&o.request).await.is_err() {
            we = true;
        }
        let mut buf: Vec<u8> = Vec::with_capacity(512);
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return (http::at_eof(&buf, o.head_only), we),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(done) = http::complete_by_length(&buf, o.head_only) {
                        return (done, we);
                    }
                    if buf.len() > 1 << 20 {
                        return (Outcome::NotHttp, we);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return (http::at_reset(&buf, o.head_only), we),
            }
        }
    };
    match tokio::time::timeout(o.timeout, work).await {
        Ok((outcome, we)) => {
            if we {
                *write_errors += 1;
            }
            outcome
        }
        Err(_) => Outcome::Timeout,
    }
}

async fn slot_tokio(o: std::sync::Arc<Opts>, start: Instant) -> Tally {
    let mut t = Tally::default();
    let end = start + o.duration;
    while Instant::now() < end {
        let t0 = Instant::now();
        let mut we = 0;
        let outcome = one_tokio(&o, &mut we).await;
        t.write_errors += we;
        let t1 = Instant::now();
        t.record(outcome, t1 - t0, t1 <= end);
        if outcome.is_connect_failure() && !o.backoff.is_zero() {
            tokio::time::sleep(o.backoff).await;
        }
    }
    t
}

/// CPU seconds (user + system) this process used so far.
fn self_cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the ")" of the command name; utime and stime are fields 14 and 15.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

pub fn clk_tck() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux architecture we run on.
    100.0
}

fn percentile_ms(sorted: &[u32], p: f64) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    // Nearest-rank percentile.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    json!(sorted[i] as f64 / 1000.0)
}

fn latency_json(mut v: Vec<u32>) -> Value {
    v.sort_unstable();
    let mean = if v.is_empty() {
        Value::Null
    } else {
        json!(v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1000.0)
    };
    json!({
        "count": v.len(),
        "p50": percentile_ms(&v, 50.0),
        "p90": percentile_ms(&v, 90.0),
        "p99": percentile_ms(&v, 99.0),
        "p999": percentile_ms(&v, 99.9),
        "max": v.last().map(|&x| json!(x as f64 / 1000.0)).unwrap_or(Value::Null),
        "mean": mean,
    })
}

pub fn run(o: Opts) -> Value {
    let cpu0 = self_cpu_seconds();
    let start = Instant::now();
    let mut total = Tally::default();
    match o.engine {
        Engine::Threads => {
            let handles: Vec<_> = (0..o.concurrency)
                .map(|_| {
                    let o = o.clone();
                    std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn(move || slot_blocking(&o, start))
                        .expect("spawn a load thread")
                })
                .collect();
            for h in handles {
                total.merge(h.join().expect("load thread panicked"));
            }
        }
        Engine::Tokio => {
            let rt = if o.threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(o.threads)
                    .enable_all()
                    .build()
            }
            .expect("tokio runtime");
            let shared = std::sync::Arc::new(o.clone());
            let tallies = rt.block_on(async {
                let tasks: Vec<_> = (0..o.concurrency)
                    .map(|_| tokio::spawn(slot_tokio(shared.clone(), start)))
                    .collect();
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.expect("load task panicked"));
                }
                out
            });
            for t in tallies {
                total.merge(t);
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = self_cpu_seconds() - cpu0;
    let secs = o.duration.as_secs_f64();

    let mut outcomes = Map::new();
    for (name, n) in Outcome::NAMES.iter().zip(total.outcomes) {
        outcomes.insert((*name).to_string(), json!(n));
    }
    let mut statuses = Map::new();
    for (k, v) in &total.statuses {
        statuses.insert(k.to_string(), json!(v));
    }
    let ok = total.statuses.get(&200).copied().unwrap_or(0);
    let s503 = total.statuses.get(&503).copied().unwrap_or(0);
    let responses = total.outcomes[0];
    json!({
        "label": o.label,
        "addr": o.addr.to_string(),
        "request": String::from_utf8_lossy(&o.request).trim_end().to_string(),
        "concurrency": o.concurrency,
        "duration_s": secs,
        "elapsed_s": elapsed,
        "engine": match o.engine { Engine::Threads => "threads", Engine::Tokio => "tokio" },
        "threads": if o.engine == Engine::Threads { o.concurrency } else { o.threads },
        "attempts": total.attempts,
        "responses": responses,
        "responses_in_window": total.responses_in_window,
        "rps": total.responses_in_window as f64 / secs,
        "ok": ok,
        "ok_in_window": total.ok_in_window,
        "ok_rps": total.ok_in_window as f64 / secs,
        "status_503": s503,
        "status_other": responses - ok - s503,
        "statuses": statuses,
        "outcomes": outcomes,
        "ended_by": {
            "content_length": total.ended_by[0],
            "eof": total.ended_by[1],
            "reset_after_response": total.ended_by[2],
        },
        "write_errors": total.write_errors,
        "latency_ms": latency_json(total.latency_us),
        "ok_latency_ms": latency_json(total.ok_latency_us),
        "loadgen_cpu_s": cpu,
    })
}
