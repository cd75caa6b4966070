//! How `mysqlchk check` names a connect that fails below the MySQL protocol: nothing
//! listening is `refused`; a peer that accepts and then closes, or that answers with
//! something that is not a MySQL greeting, is `io` (the connection was made, so
//! "refused" would send an operator to the wrong place). Only loopback listeners that
//! these tests start themselves.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::BIN;
use common::free_port;
use common::process::run_with_timeout;

/// A loopback listener that treats every connection with `serve` on its own thread,
/// for as long as the test binary runs.
fn listener(serve: fn(std::net::TcpStream)) -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
    let port = l.local_addr().expect("local addr").port();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || serve(s));
        }
    });
    port
}

/// `mysqlchk check` against 127.0.0.1:`port`: (exit code, stdout).
fn check(port: u16) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("mysqlchk.toml");
    std::fs::write(
        &config,
        format!(
            r#"[listen]
http = "127.0.0.1:{http}"

[mysql]
host = "127.0.0.1"
port = {port}
user = "mysqlchk"
ssl_mode = "disabled"
connect_timeout = "5s"

[check]
# Staleness must leave room for the long connect deadline (a config rule).
stale_after = "10s"
maintenance_file = "{maint}"
"#,
            http = free_port(),
            maint = dir.path().join("maintenance").display(),
        ),
    )
    .expect("config");
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "-c"])
        .arg(&config)
        .env_remove("MYSQLCHK_CONFIG")
        .stdin(Stdio::null());
    let started = Instant::now();
    let out = run_with_timeout(cmd, Duration::from_secs(30)).expect("mysqlchk check");
    assert!(started.elapsed() < Duration::from_secs(30));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const LOST: &str = "health: down - connection closed or protocol error during connect";

#[test]
fn a_close_right_after_accept_is_io_not_refused() {
    let port = listener(drop);
    let (code, line) = check(port);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with(&format!("MYSQLCHK CRITICAL - {LOST}")),
        "{line}"
    );
}

#[test]
fn a_garbage_greeting_is_io_not_refused() {
    let port = listener(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        // Keep it open a little: the client must judge the bytes, not the close.
        thread::sleep(Duration::from_secs(2));
    });
    let (code, line) = check(port);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with(&format!("MYSQLCHK CRITICAL - {LOST}")),
        "{line}"
    );

    // A well-framed packet whose payload is no greeting.
    let port = listener(|mut s| {
        let _ = s.write_all(&[5, 0, 0, 0, 0xfe, 1, 2, 3, 4]);
        thread::sleep(Duration::from_secs(2));
    });
    let (code, line) = check(port);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with(&format!("MYSQLCHK CRITICAL - {LOST}")),
        "{line}"
    );
}

#[test]
fn nothing_listening_is_refused() {
    let port = free_port();
    let (code, line) = check(port);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with("MYSQLCHK CRITICAL - health: down - connection refused"),
        "{line}"
    );
}
