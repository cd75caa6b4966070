//! Hostile peers and limits: allowlists (closed without a byte), admin-only
//! endpoints, per-IP and total connection limits, 1,000 idle connections while checks
//! still answer at once, descriptor exhaustion (accept backs off and recovers), and
//! random garbage. The daemon's answers come from memory, so one shared MariaDB serves
//! every test here.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, http_get, wait_until, Daemon, MariaDb};

const PASSWORD: &str = "hard-Pw-9";

fn daemon(extra_listen: &str) -> Daemon {
    let db = MariaDb::shared();
    let http = free_port();
    let user = format!("h{http}");
    db.create_checker_user(&user, PASSWORD);
    let d = Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n{extra_listen}\n[mysql]\nport = {}\nuser = \"{user}\"\n\
             [check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"3s\"\n",
            db.port()
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    d
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Connect and read whatever comes within `wait`, sending nothing.
fn silent_read(port: u16, wait: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr(port))?;
    s.set_read_timeout(Some(wait))?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            Err(e)
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(e),
    }
}

/// `GET /` without panicking on a closed connection: `None` when refused.
fn try_status(port: u16) -> Option<u16> {
    let raw = common::http_raw(
        addr(port),
        b"GET / HTTP/1.0\r\n\r\n",
        Duration::from_secs(3),
    );
    common::parse_http_response(&raw).map(|r| r.status)
}

fn healthy(port: u16) {
    wait_until(Duration::from_secs(10), "healthy", || {
        http_get(port, "/").0 == 200
    });
}

#[test]
fn peers_outside_the_allowlist_get_not_a_byte() {
    let agent = free_port();
    let d = daemon(&format!(
        "agent = \"127.0.0.1:{agent}\"\nallow = [\"10.0.0.0/8\", \"::ffff:10.0.0.0/104\"]"
    ));
    let p = d.http_port();
    d.wait_for_log("starting", Duration::from_secs(5));
    for _ in 0..50 {
        for port in [p, agent] {
            let started = Instant::now();
            let got = silent_read(port, Duration::from_secs(2)).expect("closed at once");
            assert!(got.is_empty(), "refused peer got {got:?}");
            assert!(started.elapsed() < Duration::from_secs(1));
        }
    }
    let log = d.log();
    assert_eq!(
        log.matches("refused a connection").count(),
        1,
        "refused peers are logged at most once a minute:\n{log}"
    );
}

#[test]
fn status_and_metrics_only_for_admin_peers() {
    let d = daemon("admin_allow = [\"10.0.0.0/8\"]");
    let p = d.http_port();
    healthy(p);
    assert_eq!(http_get(p, "/").0, 200);
    assert_eq!(http_get(p, "/live").0, 200);
    let (s, body) = http_get(p, "/status");
    assert_eq!(s, 403, "{body}");
    assert_eq!(http_get(p, "/metrics").0, 403);
}

#[test]
fn per_ip_and_total_connection_limits() {
    let d = daemon("max_connections_per_ip = 5\nrequest_timeout = \"10s\"");
    let p = d.http_port();
    healthy(p);
    // A connection counts until its handler has finished its lingering close, which
    // may be a moment after the client saw the answer.
    std::thread::sleep(Duration::from_secs(1));
    let idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(addr(p)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let got = silent_read(p, Duration::from_secs(2)).expect("closed at once");
    assert!(got.is_empty(), "over the per-IP limit: {got:?}");
    drop(idle);
    wait_until(Duration::from_secs(5), "a place again", || {
        try_status(p) == Some(200)
    });

    let d = daemon("max_connections = 3\nrequest_timeout = \"10s\"");
    let p = d.http_port();
    healthy(p);
    // Let the health probes' own connections finish their lingering close.
    std::thread::sleep(Duration::from_secs(1));
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr(p)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let got = silent_read(p, Duration::from_secs(2)).expect("closed at once");
    assert!(got.is_empty(), "over the total limit: {got:?}");
    drop(idle);
    wait_until(Duration::from_secs(5), "a place again", || {
        try_status(p) == Some(200)
    });
    let m = http_get(p, "/metrics").1;
    assert!(!m.contains("mysqlchk_refused_connections_total 0"), "{m}");
}

#[test]
fn a_thousand_idle_connections_do_not_delay_checks() {
    let d = daemon("max_connections_per_ip = 2000\nrequest_timeout = \"20s\"");
    let p = d.http_port();
    healthy(p);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(addr(p)).unwrap());
    }
    // Half of them even started a request.
    for s in idle.iter_mut().step_by(2) {
        let _ = s.write_all(b"GET /primary HTTP/1.1\r\nHost: x\r\n");
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(http_get(p, "/").0, 200);
        worst = worst.max(t.elapsed());
    }
    eprintln!("slowest of 50 checks with 1,000 idle connections open: {worst:?}");
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    drop(idle);
    assert_eq!(http_get(p, "/").0, 200);
}

#[test]
fn out_of_descriptors_backs_off_and_recovers() {
    // A hard limit of 64 descriptors: far below what the idle peers below take.
    let db = MariaDb::shared();
    let http = free_port();
    let user = format!("h{http}");
    db.create_checker_user(&user, PASSWORD);
    let cfg = format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\nrequest_timeout = \"30s\"\nmax_connections_per_ip = 1000\n\
         [mysql]\nport = {}\nuser = \"{user}\"\n[check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"3s\"\n",
        db.port()
    );
    let mut d = Daemon::start_program(
        std::path::Path::new("/usr/bin/prlimit"),
        &[
            "--nofile=64:64",
            common::daemon::BIN,
            "serve",
            "-c",
            "{config}",
        ],
        &cfg,
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    d.wait_for_port(http);
    healthy(http);
    let idle: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(addr(http)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // The process survives EMFILE and keeps its checker running.
    assert!(common::process_alive(d.pid()));
    drop(idle);
    let took = wait_until(Duration::from_secs(10), "answering again", || {
        let mut s = match TcpStream::connect(addr(http)) {
            Ok(s) => s,
            Err(_) => return false,
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.ends_with("health: up\n")
    });
    eprintln!("answering again {took:?} after the idle peers left");
    assert!(d.log().contains("accept failed"), "{}", d.log());
}

#[test]
fn random_garbage_never_hurts() {
    let d = daemon("request_timeout = \"1s\"");
    let p = d.http_port();
    healthy(p);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..300 {
        let len = (next() % 3000) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut s = TcpStream::connect(addr(p)).unwrap();
        let _ = s.write_all(&bytes);
        if i % 3 == 0 {
            let _ = s.write_all(b"\r\n\r\n");
        }
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let mut out = Vec::new();
        let started = Instant::now();
        let _ = s.read_to_end(&mut out);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "garbage {i} hung"
        );
        if !out.is_empty() {
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1."), "{text}");
        }
    }
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    assert!(common::process_alive(d.pid()));
    assert!(!d.log().contains("panicked"));
}
