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

/// A daemon checking every `interval_ms` whose `[check]` section gets `check_extra` and
/// whose `[mysql]` section gets `mysql_extra` (the password comes from the environment
/// unless that sets a password file).
fn daemon_files(user: &str, interval_ms: u64, mysql_extra: &str, check_extra: &str) -> Daemon {
    let db = MariaDb::shared();
    let http = free_port();
    db.create_checker_user(user, PASSWORD);
    let env: &[(&str, &str)] = if mysql_extra.contains("password_file") {
        &[]
    } else {
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)]
    };
    Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\nuser = \"{user}\"\n{mysql_extra}\n\
             [check]\ninterval = \"{interval_ms}ms\"\ntimeout = \"{interval_ms}ms\"\nstale_after = \"3s\"\n{check_extra}\n",
            db.port()
        ),
        env,
    )
}

fn mkfifo(path: &std::path::Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

/// Ask `/live`, `/` and `/status` in turn for `span`; every answer must come within
/// 500 ms. Returns the slowest and how many were asked.
fn answers_stay_fast(port: u16, span: Duration) -> (Duration, usize) {
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut asked = 0;
    while started.elapsed() < span {
        for path in ["/live", "/", "/status"] {
            let t = Instant::now();
            let raw = common::http_raw(
                addr(port),
                format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes(),
                Duration::from_secs(2),
            );
            let took = t.elapsed();
            assert!(
                common::parse_http_response(&raw).is_some(),
                "{path}: no answer within 2 s (after {asked} answers)"
            );
            assert!(
                took < Duration::from_millis(500),
                "{path} took {took:?} (after {asked} answers)"
            );
            worst = worst.max(took);
            asked += 1;
        }
    }
    (worst, asked)
}

fn in_maintenance(port: u16) -> String {
    let mut last = String::new();
    wait_until(Duration::from_secs(10), "maintenance on /", || {
        last = http_get(port, "/").1;
        last.starts_with("maintenance:")
    });
    last
}

#[test]
fn maintenance_file_as_fifo_or_swapped_symlink_never_stalls_answers() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("maintenance");
    mkfifo(&flag);
    let d = daemon_files(
        "hfifo",
        // Many rounds, so that many of them meet the swaps below.
        20,
        "",
        &format!("maintenance_file = \"{}\"", flag.display()),
    );
    let p = d.http_port();
    let body = in_maintenance(p);
    let (worst, n) = answers_stay_fast(p, Duration::from_secs(3));
    eprintln!("FIFO flag: slowest of {n} answers {worst:?}");

    // Swap a regular flag and a symlink to a FIFO in turns, as fast as the kernel
    // can (one atomic exchange each): a check of the path and a later open that
    // follows a symlink would meet the FIFO.
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let link = dir.path().join("link");
    std::fs::remove_file(&flag).unwrap();
    std::fs::write(&flag, "reason=swap\n").unwrap();
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let (a, b) = (c(&flag), c(&link));
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: two valid NUL-terminated paths; no memory is shared.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
            }
        })
    };
    let res = std::panic::catch_unwind(|| answers_stay_fast(p, Duration::from_secs(3)));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    let (worst, n) = res.unwrap_or_else(|e| std::panic::resume_unwind(e));
    eprintln!("swapped flag: slowest of {n} answers {worst:?}");
    // Replaced, not written through: the flag may be the symlink to the FIFO now.
    let steady = dir.path().join("steady");
    std::fs::write(&steady, "reason=steady\n").unwrap();
    std::fs::rename(&steady, &flag).unwrap();
    wait_until(Duration::from_secs(10), "the steady reason", || {
        http_get(p, "/").1.contains("steady")
    });
    assert_eq!(http_get(p, "/live"), (200, "live: up\n".into()));
    assert!(
        body.contains("FIFO"),
        "the reason names the culprit: {body}"
    );
}

/// Peak and current resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn a_huge_maintenance_file_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("maintenance");
    let d = daemon_files(
        "hhuge",
        200,
        "",
        &format!("maintenance_file = \"{}\"", flag.display()),
    );
    let p = d.http_port();
    healthy(p);
    // 100 MB, sparse: cheap to make, expensive to read.
    let f = std::fs::File::create(&flag).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    drop(f);
    let body = in_maintenance(p);
    // Several rounds (200 ms each) with the file in place.
    let seq = |p| {
        let doc: serde_json::Value =
            serde_json::from_str(&http_get(p, "/status").1).expect("status JSON");
        doc["snapshot"]["seq"].as_u64().unwrap_or(0)
    };
    let first = seq(p);
    wait_until(Duration::from_secs(10), "five more rounds", || {
        seq(p) >= first + 5
    });
    let (peak, now) = rss_kib(d.pid());
    eprintln!("with a 100 MB maintenance file: VmHWM {peak} kB, VmRSS {now} kB");
    assert!(peak < 40 * 1024, "peak RSS {peak} kB");
    assert!(http_get(p, "/").1.starts_with("maintenance:"));
    assert!(body.contains("larger than"), "{body}");
}

#[test]
fn a_password_file_replaced_by_a_fifo_never_stalls_answers() {
    use std::os::unix::fs::PermissionsExt;
    let db = MariaDb::shared();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = daemon_files(
        "hpwfifo",
        200,
        &format!("password_file = \"{}\"", pw.display()),
        "",
    );
    let p = d.http_port();
    healthy(p);
    // Swap in a FIFO nobody writes to, then make the checker reconnect.
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, &pw).unwrap();
    let session = db.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE USER='hpwfifo'");
    for id in session.lines() {
        let _ = db.try_sql(&format!("KILL {}", id.trim()));
    }
    let (worst, n) = answers_stay_fast(p, Duration::from_secs(3));
    eprintln!("FIFO password file: slowest of {n} answers {worst:?}");
    let mut last = String::new();
    wait_until(Duration::from_secs(10), "an internal error on /", || {
        last = http_get(p, "/").1;
        last == "health: down - internal error during connect\n"
    });
    let doc: serde_json::Value = serde_json::from_str(&http_get(p, "/status").1).unwrap();
    let msg = doc["snapshot"]["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("password file") && msg.contains("FIFO"),
        "{doc}"
    );
    assert_eq!(http_get(p, "/live"), (200, "live: up\n".into()));
}
