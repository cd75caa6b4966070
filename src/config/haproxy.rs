//! `[[haproxy]]` entries: the HAProxy runtime sockets verdict changes are pushed to
//! (README "Pushing state to HAProxy").
//!
//! Invariants: every error names the file, the entry (`haproxy[N]`, counted from 0) and
//! the key; names that reach HAProxy's command line are restricted to the characters
//! HAProxy itself allows in proxy and server names, so no value can add a command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::role::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HaproxySocket {
    Unix(PathBuf),
    /// A `stats socket ipv4@…` address.
    Tcp(SocketAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Haproxy {
    pub(crate) socket: HaproxySocket,
    /// Backend name → the role its servers route, in the order written.
    pub(crate) backends: Vec<(String, Role)>,
    /// This server's name in those backends, when its address and port do not tell.
    pub(crate) server: Option<String>,
    pub(crate) push_up_after: Duration,
}

const KEYS: &[&str] = &["socket", "address", "backends", "server", "push_up_after"];

/// HAProxy's own rule for proxy and server names.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Read every `[[haproxy]]` entry of `value` (the top-level `haproxy` item, if any).
pub(super) fn read(
    value: Option<&toml::Value>,
    source: &str,
    interval: Duration,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<Haproxy> {
    let mut out = Vec::new();
    for (at, t, keys_ok) in super::reader::table_entries(value, source, "haproxy", KEYS, errors) {
        let before = errors.len();
        let socket = match (t.get("socket"), t.get("address")) {
            (Some(toml::Value::String(p)), None) if p.starts_with('/') => {
                Some(HaproxySocket::Unix(PathBuf::from(p)))
            }
            (Some(v), None) => {
                errors.push(format!("{at}.socket = {v}: expected an absolute path"));
                None
            }
            (None, Some(v)) => match v.as_str().and_then(|s| s.parse::<SocketAddr>().ok()) {
                Some(a) => {
                    if !private(a) {
                        warnings.push(format!(
                            "{at}.address = {a}: an admin socket on a public address lets \
                             anyone who reaches it take servers out; use loopback or a \
                             private network behind a firewall"
                        ));
                    }
                    Some(HaproxySocket::Tcp(a))
                }
                None => {
                    errors.push(format!(
                        "{at}.address = {v}: expected an IP address and port, e.g. \"127.0.0.1:9999\""
                    ));
                    None
                }
            },
            (Some(_), Some(_)) => {
                errors.push(format!("{at}: set socket or address, not both"));
                None
            }
            (None, None) => {
                errors.push(format!(
                    "{at}: socket (a UNIX path) or address (host:port) is required"
                ));
                None
            }
        };
        let mut backends = Vec::new();
        match t.get("backends") {
            Some(toml::Value::Table(b)) if !b.is_empty() => {
                for (name, role) in b {
                    if !valid_name(name) {
                        errors.push(format!(
                            "{at}.backends: {name:?} is not a valid HAProxy backend name"
                        ));
                        continue;
                    }
                    match role.as_str().and_then(Role::parse) {
                        Some(r) => backends.push((name.clone(), r)),
                        None => errors.push(format!(
                            "{at}.backends.{name} = {role}: expected a role (health, primary, replica, read-only)"
                        )),
                    }
                }
            }
            Some(v) => errors.push(format!(
                "{at}.backends = {v}: expected a table of backend = \"role\", e.g. {{ \"mysql-write\" = \"primary\" }}"
            )),
            None => errors.push(format!("{at}: backends is required")),
        }
        let server = match t.get("server") {
            None => None,
            Some(toml::Value::String(s)) if valid_name(s) => Some(s.clone()),
            Some(v) => {
                errors.push(format!(
                    "{at}.server = {v}: expected an HAProxy server name ([A-Za-z0-9_.:-])"
                ));
                None
            }
        };
        let push_up_after = match t.get("push_up_after") {
            None => interval * 2,
            Some(v) => match v.as_str().and_then(super::parse_duration) {
                Some(d) if d <= super::duration::MAX_DURATION => d,
                _ => {
                    errors.push(format!("{at}.push_up_after = {v}: expected a duration"));
                    interval * 2
                }
            },
        };
        if let (Some(socket), true) = (socket, errors.len() == before && keys_ok) {
            out.push(Haproxy {
                socket,
                backends,
                server,
                push_up_after,
            });
        }
    }
    out
}

fn private(a: SocketAddr) -> bool {
    match a.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// The entries as `validate` prints them.
pub(super) fn render(list: &[Haproxy]) -> String {
    let mut out = String::new();
    for h in list {
        out += "\n[[haproxy]]\n";
        match &h.socket {
            HaproxySocket::Unix(p) => out += &format!("socket = {:?}\n", p.display().to_string()),
            HaproxySocket::Tcp(a) => out += &format!("address = \"{a}\"\n"),
        }
        let b: Vec<String> = h
            .backends
            .iter()
            .map(|(n, r)| format!("{n:?} = {:?}", r.name()))
            .collect();
        out += &format!("backends = {{ {} }}\n", b.join(", "));
        if let Some(s) = &h.server {
            out += &format!("server = {s:?}\n");
        }
        out += &format!(
            "push_up_after = {:?}\n",
            super::fmt_duration(h.push_up_after)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Haproxy>, Vec<String>, Vec<String>) {
        let t: toml::Table = text.parse().unwrap();
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let out = read(
            t.get("haproxy"),
            "f",
            Duration::from_secs(1),
            &mut e,
            &mut w,
        );
        (out, e, w)
    }

    #[test]
    fn entries_and_defaults() {
        let (h, e, w) = parse(
            "[[haproxy]]\nsocket = \"/run/haproxy/admin.sock\"\n\
             backends = { \"mysql-write\" = \"primary\", \"mysql-read\" = \"slave\" }\n\
             [[haproxy]]\naddress = \"127.0.0.1:9999\"\nbackends = { b = \"health\" }\n\
             server = \"db1\"\npush_up_after = \"5s\"\n",
        );
        assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].push_up_after, Duration::from_secs(2), "two intervals");
        assert!(h[0]
            .backends
            .contains(&("mysql-read".into(), Role::Replica)));
        assert_eq!(h[1].server.as_deref(), Some("db1"));
        assert_eq!(h[1].push_up_after, Duration::from_secs(5));
        assert!(render(&h).contains("address = \"127.0.0.1:9999\""));
    }

    #[test]
    fn every_error_named() {
        let (h, e, _) = parse(
            "[[haproxy]]\nsocket = \"rel.sock\"\nbackends = { \"a b\" = \"primary\", c = \"boss\" }\n\
             server = \"x;y\"\nbogus = 1\npush_up_after = \"soon\"\n\
             [[haproxy]]\nbackends = {}\n",
        );
        assert!(h.is_empty());
        let all = e.join("\n");
        for needle in [
            "haproxy[0]: unknown key bogus",
            "haproxy[0].socket",
            "haproxy[0].backends: \"a b\"",
            "haproxy[0].backends.c",
            "haproxy[0].server",
            "haproxy[0].push_up_after",
            "haproxy[1]: socket (a UNIX path) or address",
            "haproxy[1].backends",
        ] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
    }

    #[test]
    fn a_public_admin_address_is_a_warning() {
        let (h, e, w) =
            parse("[[haproxy]]\naddress = \"8.8.8.8:9999\"\nbackends = { b = \"health\" }\n");
        assert!(e.is_empty());
        assert_eq!(h.len(), 1);
        assert_eq!(w.len(), 1, "{w:?}");
    }
}
