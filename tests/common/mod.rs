//! Fixtures for the integration tests: throw-away MariaDB servers (and
//! replica pairs), HAProxy instances, and the `mysqlchk` daemon itself; in
//! `trixie`, MariaDB 11.8 and HAProxy 3.0 from a Debian 13 chroot.
//!
//! Every child process is spawned so that it gets SIGKILL when the test
//! binary exits (see [`process::spawn_guarded`]), every fixture reaps its own
//! children, and every wait has a deadline. Fixtures panic with a useful
//! message (log tails) instead of returning errors: this is test code.
#![allow(dead_code)]

pub mod daemon;
pub mod galera;
pub mod haproxy;
pub mod mariadb;
pub mod process;
pub mod trixie;

// Each test binary uses a subset of the fixtures.
#[allow(unused_imports)]
pub use daemon::Daemon;
#[allow(unused_imports)]
pub use galera::GaleraCluster;
#[allow(unused_imports)]
pub use haproxy::Haproxy;
#[allow(unused_imports)]
pub use mariadb::MariaDb;

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Ports are picked at random *below* the kernel's ephemeral range, so that
/// outgoing connections (which take their source port from that range) cannot
/// grab a port between this call and the server binding it, nor while a
/// server is being restarted on the same port. Each port is handed out once
/// per test binary. The remaining race with other processes is accepted.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let random = RandomState::new();
    for attempt in 0u64..2000 {
        let mut h = random.build_hasher();
        h.write_u64(attempt);
        let port = low + (h.finish() % u64::from(high - low)) as u16;
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    // Fall back to whatever the kernel gives.
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("cannot bind 127.0.0.1:0")
            .port();
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// Polls `f` every 20 ms until it returns true; panics mentioning `what` when
/// `deadline` passes. Returns the time it took.
pub fn wait_until(deadline: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        if start.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a TCP connect to 127.0.0.1:`port` succeeds; panics after
/// `deadline`.
pub fn wait_for_port(port: u16, deadline: Duration) -> Duration {
    wait_until(deadline, &format!("a listener on 127.0.0.1:{port}"), || {
        port_open(port)
    })
}

/// Whether a TCP connect to 127.0.0.1:`port` succeeds right now.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Connects to `addr`, writes `request` and reads until EOF or until `timeout`
/// (counted from the start) passes; returns whatever was read. The write side
/// is *not* shut down (see [`http_raw_half_close`]). Panics if the connection
/// cannot be made; write and read errors (e.g. a reset) end the exchange.
pub fn http_raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> Vec<u8> {
    exchange(addr, request, timeout, false)
}

/// Like [`http_raw`], but shuts down the write side after sending `request`.
pub fn http_raw_half_close(addr: SocketAddr, request: &[u8], timeout: Duration) -> Vec<u8> {
    exchange(addr, request, timeout, true)
}

fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration, half_close: bool) -> Vec<u8> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream
        .set_write_timeout(Some(timeout))
        .expect("set_write_timeout");
    let mut out = Vec::new();
    if stream.write_all(request).is_err() {
        // The peer may already have answered and closed: read what is there.
    } else if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut buf = [0u8; 8192];
    loop {
        let remaining = timeout.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            break;
        }
        stream
            .set_read_timeout(Some(remaining))
            .expect("set_read_timeout");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    out
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a raw HTTP/1.x response; `None` if the status line is malformed.
pub fn parse_http_response(raw: &[u8]) -> Option<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], &text[i + 4..]),
        None => (&text[..], ""),
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?.to_string();
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Some(HttpResponse {
        status,
        status_line,
        headers,
        body: body.to_string(),
    })
}

/// Sends `request` (raw bytes) to 127.0.0.1:`port` and parses the answer;
/// panics with the raw bytes if it is not HTTP.
pub fn http_request(port: u16, request: &[u8]) -> HttpResponse {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let raw = http_raw(addr, request, Duration::from_secs(10));
    parse_http_response(&raw).unwrap_or_else(|| {
        panic!(
            "not an HTTP response from {addr}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// `GET {path} HTTP/1.0` to 127.0.0.1:`port`; returns the status code and body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let resp = http_request(port, format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
    (resp.status, resp.body)
}

/// Number of open file descriptors of `pid` (entries of `/proc/<pid>/fd`).
pub fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd: {e}"))
        .count()
}

/// Whether `pid` exists and is not a zombie (reads the state letter of
/// `/proc/<pid>/stat`; `kill -0` succeeds on zombies).
pub fn process_alive(pid: u32) -> bool {
    matches!(process::proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}
