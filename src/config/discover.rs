//! `[[discover]]` entries (README "Fleet mode", "Discovery"): where fleet mode learns
//! its targets from the topology itself: a replication primary, a Galera node, a Group
//! Replication member, or HAProxy's runtime API.
//!
//! Invariants: every error names the file, the entry (`discover[N]`, counted from 0) and
//! the key; a MySQL source has a `seed`, HAProxy a `socket` or an `address`, never both;
//! `every` is at least [`MIN_EVERY`], so discovery never loads a server like a check.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::HaproxySocket;

/// Where a `[[discover]]` entry reads the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    Replication,
    Galera,
    GroupReplication,
    Haproxy,
}

impl Source {
    pub(crate) const ALL: [Source; 4] = [
        Source::Replication,
        Source::Galera,
        Source::GroupReplication,
        Source::Haproxy,
    ];

    fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The config value, also the metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Replication => "replication",
            Source::Galera => "galera",
            Source::GroupReplication => "group-replication",
            Source::Haproxy => "haproxy",
        }
    }
}

/// The server (or HAProxy socket) a `[[discover]]` entry asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seed {
    Mysql { host: String, port: u16 },
    Haproxy(HaproxySocket),
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seed::Mysql { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Seed::Mysql { host, port } => write!(f, "{host}:{port}"),
            Seed::Haproxy(HaproxySocket::Unix(p)) => write!(f, "{}", p.display()),
            Seed::Haproxy(HaproxySocket::Tcp(a)) => write!(f, "{a}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Discover {
    pub(crate) from: Source,
    pub(crate) seed: Seed,
    pub(crate) every: Duration,
    pub(crate) forget_after: Duration,
}

const KEYS: &[&str] = &["from", "seed", "socket", "address", "every", "forget_after"];
const DEFAULT_EVERY: Duration = Duration::from_secs(10);
const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(60);
pub(crate) const MIN_EVERY: Duration = Duration::from_millis(100);
const DEFAULT_MYSQL_PORT: u16 = 3306;

/// `host:port`, `[v6]:port`, or a host alone (port 3306); `None` if unreadable.
pub(crate) fn host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return (!host.is_empty() && port != 0).then(|| (host.to_string(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, _)) if h.contains(':') => (s, default_port),
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, default_port),
    };
    let ok = !host.is_empty()
        && port != 0
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'));
    ok.then(|| (host.to_string(), port))
}

/// Read every `[[discover]]` entry of `value` (the top-level `discover` item, if any).
pub(super) fn read(
    value: Option<&toml::Value>,
    source: &str,
    errors: &mut Vec<String>,
) -> Vec<Discover> {
    let mut out = Vec::new();
    for (at, t, keys_ok) in super::reader::table_entries(value, source, "discover", KEYS, errors) {
        let before = errors.len();
        let from = match t.get("from") {
            None => {
                errors.push(format!(
                    "{at}: from is required (replication, galera, group-replication or haproxy)"
                ));
                None
            }
            Some(v) => match v.as_str().and_then(Source::parse) {
                Some(f) => Some(f),
                None => {
                    errors.push(format!(
                        "{at}.from = {v}: expected replication, galera, group-replication or haproxy"
                    ));
                    None
                }
            },
        };
        let seed = match from {
            None => None,
            Some(Source::Haproxy) => haproxy_seed(t, &at, errors),
            Some(_) => {
                for k in ["socket", "address"] {
                    if t.contains_key(k) {
                        errors.push(format!(
                            "{at}.{k}: only from = \"haproxy\" reads a socket; a MySQL source has a seed"
                        ));
                    }
                }
                match t.get("seed") {
                    None => {
                        errors.push(format!("{at}: seed (\"host:port\") is required"));
                        None
                    }
                    Some(v) => match v.as_str().and_then(|s| host_port(s, DEFAULT_MYSQL_PORT)) {
                        Some((host, port)) => Some(Seed::Mysql { host, port }),
                        None => {
                            errors.push(format!(
                                "{at}.seed = {v}: expected \"host:port\", e.g. \"10.0.0.2:3306\""
                            ));
                            None
                        }
                    },
                }
            }
        };
        let mut duration = |key: &str, default: Duration, min: Duration| match t.get(key) {
            None => default,
            Some(v) => match v.as_str().and_then(super::parse_duration) {
                Some(d) if d >= min && d <= super::duration::MAX_DURATION => d,
                _ => {
                    errors.push(format!(
                        "{at}.{key} = {v}: expected a duration of at least {}",
                        super::fmt_duration(min)
                    ));
                    default
                }
            },
        };
        let every = duration("every", DEFAULT_EVERY, MIN_EVERY);
        let forget_after = duration("forget_after", DEFAULT_FORGET_AFTER, Duration::ZERO);
        if let (Some(from), Some(seed), true) = (from, seed, errors.len() == before && keys_ok) {
            out.push(Discover {
                from,
                seed,
                every,
                forget_after,
            });
        }
    }
    out
}

fn haproxy_seed(t: &toml::Table, at: &str, errors: &mut Vec<String>) -> Option<Seed> {
    if t.contains_key("seed") {
        errors.push(format!(
            "{at}.seed: from = \"haproxy\" reads socket = PATH or address = \"127.0.0.1:9999\""
        ));
        return None;
    }
    match (t.get("socket"), t.get("address")) {
        (Some(toml::Value::String(p)), None) if p.starts_with('/') => {
            Some(Seed::Haproxy(HaproxySocket::Unix(PathBuf::from(p))))
        }
        (Some(v), None) => {
            errors.push(format!("{at}.socket = {v}: expected an absolute path"));
            None
        }
        (None, Some(v)) => match v.as_str().and_then(|s| s.parse::<SocketAddr>().ok()) {
            Some(a) => Some(Seed::Haproxy(HaproxySocket::Tcp(a))),
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
    }
}

/// The entries as `validate` prints them.
pub(super) fn render(list: &[Discover]) -> String {
    let mut out = String::new();
    for d in list {
        out += &format!("\n[[discover]]\nfrom = {:?}\n", d.from.as_str());
        match &d.seed {
            Seed::Mysql { .. } => out += &format!("seed = \"{}\"\n", d.seed),
            Seed::Haproxy(HaproxySocket::Unix(p)) => {
                out += &format!("socket = {:?}\n", p.display().to_string())
            }
            Seed::Haproxy(HaproxySocket::Tcp(a)) => out += &format!("address = \"{a}\"\n"),
        }
        out += &format!(
            "every = {:?}\nforget_after = {:?}\n",
            super::fmt_duration(d.every),
            super::fmt_duration(d.forget_after)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Discover>, Vec<String>) {
        let t: toml::Table = text.parse().unwrap();
        let mut e = Vec::new();
        let out = read(t.get("discover"), "f", &mut e);
        (out, e)
    }

    #[test]
    fn entries_and_defaults() {
        let (d, e) = parse(
            "[[discover]]\nfrom = \"replication\"\nseed = \"10.0.0.2:3306\"\n\
             [[discover]]\nfrom = \"galera\"\nseed = \"[fe80::1]:3307\"\nevery = \"2s\"\nforget_after = \"0s\"\n\
             [[discover]]\nfrom = \"group-replication\"\nseed = \"db1\"\n\
             [[discover]]\nfrom = \"haproxy\"\nsocket = \"/run/haproxy/admin.sock\"\n\
             [[discover]]\nfrom = \"haproxy\"\naddress = \"127.0.0.1:9999\"\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(d.len(), 5);
        assert_eq!(
            d[0].seed,
            Seed::Mysql {
                host: "10.0.0.2".into(),
                port: 3306
            }
        );
        assert_eq!(
            (d[0].every, d[0].forget_after),
            (Duration::from_secs(10), Duration::from_secs(60))
        );
        assert_eq!(d[1].seed.to_string(), "[fe80::1]:3307");
        assert_eq!(
            (d[1].every, d[1].forget_after),
            (Duration::from_secs(2), Duration::ZERO)
        );
        assert_eq!(d[2].seed.to_string(), "db1:3306");
        assert_eq!(d[3].from, Source::Haproxy);
        // What validate prints reads back as the same entries.
        let (again, e) = parse(&render(&d));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(again, d);
    }

    #[test]
    fn every_error_named() {
        let (d, e) = parse(
            "[[discover]]\nfrom = \"consul\"\n\
             [[discover]]\nfrom = \"replication\"\n\
             [[discover]]\nfrom = \"galera\"\nseed = \"a b:1\"\nevery = \"1ms\"\nbogus = 1\n\
             [[discover]]\nfrom = \"haproxy\"\nseed = \"x:1\"\n\
             [[discover]]\nfrom = \"haproxy\"\nsocket = \"rel\"\n\
             [[discover]]\nfrom = \"replication\"\nseed = \"h:1\"\nsocket = \"/s\"\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let all = e.join("\n");
        for needle in [
            "discover[0].from = \"consul\"",
            "discover[1]: seed (\"host:port\") is required",
            "discover[2].seed",
            "discover[2].every",
            "discover[2]: unknown key bogus",
            "discover[3].seed: from = \"haproxy\"",
            "discover[4].socket",
            "discover[5].socket: only from = \"haproxy\"",
        ] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
    }

    #[test]
    fn host_and_port_forms() {
        let hp = |s| host_port(s, 3306);
        assert_eq!(hp("10.0.0.2:3307"), Some(("10.0.0.2".into(), 3307)));
        assert_eq!(hp("db1"), Some(("db1".into(), 3306)));
        assert_eq!(hp("[::1]:3310"), Some(("::1".into(), 3310)));
        assert_eq!(hp("[::1]"), Some(("::1".into(), 3306)));
        assert_eq!(hp("fe80::1"), Some(("fe80::1".into(), 3306)));
        for bad in [
            "", ":3306", "h:0", "h:x", "[::1", "[]:1", "a b:1", "h:70000",
        ] {
            assert_eq!(hp(bad), None, "{bad}");
        }
    }
}
