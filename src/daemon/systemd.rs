//! systemd integration without a library: `sd_notify` datagrams and `LISTEN_FDS`
//! socket activation (also used by our own SIGUSR2 hand-over).
//!
//! Invariants: notifying is best effort and silent when `NOTIFY_SOCKET` is unset;
//! inherited sockets are adopted once, and the activation variables are removed from
//! the environment before any thread exists, so children we start never see them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where to send notifications, read once at start.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Option<String>,
    /// WATCHDOG_USEC for this process, if the unit asked for a watchdog.
    pub watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env(env: &BTreeMap<String, String>) -> Notifier {
        let pid_ok = env
            .get("WATCHDOG_PID")
            .map(|p| p.trim() == std::process::id().to_string())
            .unwrap_or(true);
        Notifier {
            socket: env.get("NOTIFY_SOCKET").filter(|s| !s.is_empty()).cloned(),
            watchdog: env
                .get("WATCHDOG_USEC")
                .and_then(|u| u.trim().parse::<u64>().ok())
                .filter(|&u| u > 0 && pid_ok)
                .map(Duration::from_micros),
        }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Send one notification (`READY=1`, `RELOADING=1\nMONOTONIC_USEC=…`, ...).
    pub fn notify(&self, state: &str) {
        let Some(path) = &self.socket else { return };
        let Ok(sock) = UnixDatagram::unbound() else {
            return;
        };
        let _ = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            match std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
                Ok(addr) => sock.send_to_addr(state.as_bytes(), &addr),
                Err(e) => Err(e),
            }
        } else {
            sock.send_to(state.as_bytes(), PathBuf::from(path))
        };
    }

    /// `RELOADING=1` needs the monotonic time (systemd ≥ 253 checks it).
    pub fn reloading(&self) {
        let usec = crate::sys::monotonic_usec();
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

/// An inherited descriptor and the name systemd gave it (`LISTEN_FDNAMES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inherited {
    pub fd: i32,
    pub name: String,
}

/// Which descriptors we were handed: `LISTEN_FDS=n` means 3..3+n. A `LISTEN_PID`
/// naming another process means they are not ours (pure, for tests).
pub fn inherited(env: &BTreeMap<String, String>, pid: u32) -> Vec<Inherited> {
    if let Some(p) = env.get("LISTEN_PID") {
        if p.trim() != pid.to_string() {
            return Vec::new();
        }
    }
    let n: i32 = match env.get("LISTEN_FDS").and_then(|n| n.trim().parse().ok()) {
        Some(n) if n > 0 && n < 64 => n,
        _ => return Vec::new(),
    };
    let names: Vec<&str> = env
        .get("LISTEN_FDNAMES")
        .map(|s| s.split(':').collect())
        .unwrap_or_default();
    (0..n)
        .map(|i| Inherited {
            fd: 3 + i,
            name: names.get(i as usize).unwrap_or(&"").to_string(),
        })
        .collect()
}

/// Forget the activation variables (they describe *our* descriptors).
pub fn clear_env() {
    for k in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
}

/// What a listening socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Agent,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Agent => "agent",
        }
    }
}

/// Match an inherited socket to a configured listener: by address first, then by
/// its `LISTEN_FDNAMES` name (`http` / `agent`).
pub fn match_inherited(
    local: SocketAddr,
    name: &str,
    http: &[SocketAddr],
    agent: &[SocketAddr],
) -> Option<(Protocol, SocketAddr)> {
    if http.contains(&local) {
        return Some((Protocol::Http, local));
    }
    if agent.contains(&local) {
        return Some((Protocol::Agent, local));
    }
    match name {
        "http" => Some((Protocol::Http, local)),
        "agent" => Some((Protocol::Agent, local)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn listen_fds() {
        let e = env(&[
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "42"),
            ("LISTEN_FDNAMES", "http:agent"),
        ]);
        assert_eq!(
            inherited(&e, 42),
            vec![
                Inherited {
                    fd: 3,
                    name: "http".into()
                },
                Inherited {
                    fd: 4,
                    name: "agent".into()
                }
            ]
        );
        assert!(inherited(&e, 43).is_empty());
        assert_eq!(inherited(&env(&[("LISTEN_FDS", "1")]), 7)[0].fd, 3);
        assert!(inherited(&env(&[("LISTEN_FDS", "x")]), 7).is_empty());
        assert!(inherited(&env(&[]), 7).is_empty());
    }

    #[test]
    fn match_inherited_by_address_then_name() {
        let a: SocketAddr = "127.0.0.1:9200".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:9201".parse().unwrap();
        let other: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert_eq!(
            match_inherited(a, "", &[a], &[b]),
            Some((Protocol::Http, a))
        );
        assert_eq!(
            match_inherited(b, "http", &[a], &[b]),
            Some((Protocol::Agent, b))
        );
        assert_eq!(
            match_inherited(other, "agent", &[a], &[b]),
            Some((Protocol::Agent, other))
        );
        assert_eq!(match_inherited(other, "x", &[a], &[b]), None);
    }

    #[test]
    fn watchdog_from_env() {
        let n = Notifier::from_env(&env(&[
            ("NOTIFY_SOCKET", "/run/x"),
            ("WATCHDOG_USEC", "30000000"),
        ]));
        assert!(n.enabled());
        assert_eq!(n.watchdog, Some(Duration::from_secs(30)));
        let n = Notifier::from_env(&env(&[("WATCHDOG_USEC", "1"), ("WATCHDOG_PID", "1")]));
        assert_eq!(n.watchdog, None);
    }
}
