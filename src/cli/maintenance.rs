//! `mysqlchk maintenance on|off|status`: the flag file (`check.maintenance_file`), and
//! for `on`/`off` the confirmation client: a few plain HTTP/1.0 requests to the running
//! daemon's `/`, for up to two intervals, to say whether it now reports the change
//! (README, "Maintenance").
//!
//! Invariants: the flag is written (or removed) before any daemon is asked, so a
//! daemon that is down or unreachable never stops the change; every network wait has a
//! timeout (connect 500 ms, each read and write 1 s, at most 64 KiB read) and asking
//! stops after two intervals and 200 ms; the exit status never depends on the daemon's answer: 0 done, 1 the file
//! could not be written or removed, 3 an invalid config.

use std::path::Path;
use std::time::Duration;

use super::args::MaintenanceAction;
use crate::config::Config;
use crate::maintenance;

pub(super) fn run(cli: Option<&Path>, action: MaintenanceAction, target: Option<&str>) -> i32 {
    let Ok(super::Loaded { config: cfg, .. }) = super::load_or_print_errors(cli) else {
        return 3;
    };
    // Fleet mode: the named target's flag file, and its path prefix when confirming.
    let (cfg, path) = match cfg.select_target(target) {
        Ok((c, Some(name))) => (c, format!("/{name}")),
        Ok((c, None)) => (c, "/".to_string()),
        Err(e) => {
            eprintln!("mysqlchk: {e}");
            return 3;
        }
    };
    let file = &cfg.check.maintenance_file;
    match action {
        MaintenanceAction::Status => {
            match maintenance::read(file) {
                Some(m) if m.since.is_empty() => println!("maintenance: on ({})", m.reason),
                Some(m) => println!("maintenance: on ({}, since {})", m.reason, m.since),
                None => println!("maintenance: off"),
            }
            0
        }
        MaintenanceAction::On { reason } => {
            let reason = reason.unwrap_or_else(|| "maintenance".into());
            match maintenance::write(file, &reason, std::time::SystemTime::now()) {
                Ok(m) => {
                    println!("maintenance: on ({}, since {})", m.reason, m.since);
                    confirm(&cfg, &path, true);
                    0
                }
                Err(e) => {
                    eprintln!("cannot write {}: {e}", file.display());
                    1
                }
            }
        }
        MaintenanceAction::Off => match maintenance::clear(file) {
            Ok(()) => {
                println!("maintenance: off");
                confirm(&cfg, &path, false);
                0
            }
            Err(e) => {
                eprintln!("cannot remove {}: {e}", file.display());
                1
            }
        },
    }
}

/// Wait up to two intervals for a running daemon to report the flag, and say whether
/// it did. It is asked on a loopback HTTP listener when there is one, else on the
/// first one as configured.
fn confirm(cfg: &Config, path: &str, on: bool) {
    let Some(target) = confirm_target(&cfg.listen.http) else {
        return;
    };
    let now = std::time::Instant::now();
    let window = cfg
        .check
        .interval
        .saturating_mul(2)
        .saturating_add(Duration::from_millis(200));
    let until = now.checked_add(window).unwrap_or(now);
    let mut last;
    loop {
        last = daemon_maintenance(target, path);
        match &last {
            Seen::Flag(state) if *state == on => {
                println!("confirmed by the running daemon on {target}");
                return;
            }
            Seen::NoDaemon => {
                println!("no running daemon answered on {target}: the flag applies when it runs");
                return;
            }
            Seen::Unconfirmable(why) => {
                println!("a daemon is running on {target} but cannot confirm: {why}");
                return;
            }
            Seen::Flag(_) | Seen::Pending => {}
        }
        if std::time::Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match last {
        Seen::Pending => println!(
            "the daemon on {target} has no current check result yet (starting or stale): \
             not confirmed; it applies the flag on its next completed round"
        ),
        _ => println!("the daemon on {target} did not confirm within two intervals"),
    }
}

/// A loopback listener (an unspecified address is reachable on loopback) if any, so
/// the answer does not depend on listen.allow; else the first listener.
fn confirm_target(http: &[std::net::SocketAddr]) -> Option<std::net::SocketAddr> {
    let reachable = |a: &std::net::SocketAddr| {
        let mut a = *a;
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        a
    };
    http.iter()
        .map(reachable)
        .find(|a| a.ip().is_loopback())
        .or_else(|| http.first().copied())
}

/// What the daemon's `/` says about the maintenance flag.
enum Seen {
    /// The flag as the latest round saw it: `maintenance: ...` (up or down) or not.
    Flag(bool),
    /// `starting`, or a stale snapshot: the flag is not known yet.
    Pending,
    /// Nothing listens there.
    NoDaemon,
    /// Something answered, but not with a health line (why).
    Unconfirmable(String),
}

/// Ask `path` (`/`, or `/<target>` in fleet mode): allowed to every `listen.allow` peer (unlike the admin-only `/status`), and
/// its line starts with `maintenance:` whenever the latest round saw the flag.
fn daemon_maintenance(addr: std::net::SocketAddr, path: &str) -> Seen {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return Seen::NoDaemon;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return Seen::Unconfirmable(
            "it closed the connection (is this host in listen.allow?)".into(),
        );
    }
    let mut buf = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut buf);
    if buf.is_empty() {
        return Seen::Unconfirmable(
            "it closed the connection without answering (is this host in listen.allow?)".into(),
        );
    }
    let text = String::from_utf8_lossy(&buf);
    let status: String = text
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .chars()
        .take(3)
        .filter(char::is_ascii_digit)
        .collect();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    if body.starts_with("maintenance:") {
        Seen::Flag(true)
    } else if body.starts_with("health: starting") || body.starts_with("health: down - stale") {
        Seen::Pending
    } else if body.starts_with("health: ") {
        Seen::Flag(false)
    } else {
        Seen::Unconfirmable(format!(
            "it answered / with status {status}, not a health line"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_prefers_a_loopback_listener() {
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            confirm_target(&[a("10.0.0.2:9200"), a("0.0.0.0:9300")]),
            Some(a("127.0.0.1:9300"))
        );
        assert_eq!(
            confirm_target(&[a("10.0.0.2:9200"), a("[::]:9300")]),
            Some(a("[::1]:9300"))
        );
        assert_eq!(
            confirm_target(&[a("10.0.0.2:9200"), a("10.0.0.3:9200")]),
            Some(a("10.0.0.2:9200"))
        );
        assert_eq!(confirm_target(&[]), None);
    }
}
