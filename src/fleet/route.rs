//! Which target a request names (README "Fleet mode", "Naming the target"):
//!
//! 1. HTTP header `X-Haproxy-Server-State` (HAProxy's `http-check send-state`): the
//!    target whose address and port match, else the one named like the server part of
//!    `name=<backend>/<server>`;
//! 2. a path prefix: `/db1/replica?lag=5`, `/db1` alone is health;
//! 3. on the agent port, a first token `db1/replica` (or `db1` alone).
//!
//! Invariants: pure, no allocation beyond the error text; with more than one target a
//! request that names none, names an unknown one, or names two that disagree gets the
//! reason as an error (the responders answer `400`, never `404`, which would drain);
//! a fleet without `[[target]]` ignores the header and every prefix, so a single-server
//! agent answers exactly as before; reasons carry only bounded, printable text.

use std::sync::Arc;

use super::{Fleet, Target};
use crate::config::target_name::reserved;

/// The fields of `X-Haproxy-Server-State` that identify a server. HAProxy 2.6 sends
/// `UP 2/3; address=10.0.0.2; port=3306; name=mysql-read/db1; node=lb1; weight=1/2;
/// scur=0/0; qcur=0`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ServerState<'a> {
    pub(crate) address: Option<&'a str>,
    pub(crate) port: Option<u16>,
    /// The server part of `name=<backend>/<server>`.
    pub(crate) server: Option<&'a str>,
}

pub(crate) fn parse_server_state(value: &str) -> ServerState<'_> {
    let mut s = ServerState::default();
    for field in value.split(';') {
        let Some((k, v)) = field.split_once('=') else {
            continue; // the leading "UP 2/3"
        };
        let v = v.trim();
        match k.trim() {
            "address" if !v.is_empty() => s.address = Some(v),
            "port" => s.port = v.parse().ok(),
            // Backend names cannot contain '/', server names neither: split once from
            // the left is HAProxy's own format.
            "name" => {
                s.server = v
                    .split_once('/')
                    .map(|(_, srv)| srv)
                    .filter(|x| !x.is_empty())
            }
            _ => {}
        }
    }
    s
}

/// The target an HTTP request names (if any) and the path left once a target prefix is
/// taken off (`/db1/replica` → `/replica`, `/db1` → `/`).
pub(crate) fn http<'f, 'p>(
    fleet: &'f Fleet,
    server_state: Option<&str>,
    path: &'p str,
) -> Result<(Option<&'f Arc<Target>>, &'p str), String> {
    if !fleet.is_named() {
        return Ok((None, path));
    }
    let many = fleet.targets().len() > 1;
    let by_header = match server_state {
        None => None,
        Some(h) => {
            let s = parse_server_state(h);
            let found = match (s.address, s.port) {
                (Some(a), Some(p)) => fleet.by_address(a, p),
                _ => None,
            }
            .or_else(|| s.server.and_then(|n| fleet.get(n)));
            if found.is_none() && many && (s.address.is_some() || s.server.is_some()) {
                return Err(format!(
                    "X-Haproxy-Server-State names no target here (address={}, port={}, server={})",
                    clean(s.address.unwrap_or("-")),
                    s.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    clean(s.server.unwrap_or("-")),
                ));
            }
            found
        }
    };
    let (by_path, rest) = path_prefix(fleet, path)?;
    match (by_header, by_path) {
        (Some(h), Some(p)) if !Arc::ptr_eq(h, p) => Err(format!(
            "the X-Haproxy-Server-State header names target {} but the path names {}",
            h.name, p.name
        )),
        (h, p) => Ok((h.or(p), rest)),
    }
}

fn path_prefix<'f, 'p>(
    fleet: &'f Fleet,
    path: &'p str,
) -> Result<(Option<&'f Arc<Target>>, &'p str), String> {
    let Some(inner) = path.strip_prefix('/') else {
        return Ok((None, path)); // `*`
    };
    let (first, more) = match inner.find('/') {
        Some(i) => (&inner[..i], &inner[i..]),
        None => (inner, ""),
    };
    if let Some(t) = fleet.get(first) {
        return Ok((Some(t), if more.is_empty() { "/" } else { more }));
    }
    // `/nosuch/replica`: a prefix that names no target. `/nosuch` alone is left to the
    // endpoint table, whose answer lists the known paths.
    if !more.is_empty() && more != "/" && !reserved(first) && fleet.targets().len() > 1 {
        return Err(format!("unknown target {}", clean(first)));
    }
    Ok((None, path))
}

/// The target an agent-check line names (if any) and the line left for the role parser
/// (`db1/replica max_lag=20s` → `replica max_lag=20s`; `db1` alone → the default role).
pub(crate) fn agent<'f>(
    fleet: &'f Fleet,
    line: &str,
) -> Result<(Option<&'f Arc<Target>>, String), String> {
    if !fleet.is_named() {
        return Ok((None, line.to_string()));
    }
    let trimmed = line.trim_start();
    let (first, after) = match trimmed.find(char::is_whitespace) {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    let (name, role) = match first.split_once('/') {
        // `/replica` is a role, as it always was.
        Some((n, r)) if !n.is_empty() => (n, r),
        _ if fleet.get(first).is_some() => (first, ""),
        _ => return Ok((None, line.to_string())),
    };
    match fleet.get(name) {
        Some(t) => Ok((Some(t), format!("{role}{after}"))),
        None => Err(format!("unknown target {}", clean(name))),
    }
}

/// The target that answers once nothing else was named: the only one, else the reason.
pub(crate) fn pick<'f>(
    fleet: &'f Fleet,
    named: Option<&'f Arc<Target>>,
) -> Result<&'f Arc<Target>, String> {
    match named.or_else(|| fleet.only()) {
        Some(t) => Ok(t),
        None => Err(format!(
            "no target named: with {} targets, name one by the X-Haproxy-Server-State header \
             (http-check send-state), a path prefix (/<target>/replica) or, on the agent \
             port, a first word <target>/<role>",
            fleet.targets().len()
        )),
    }
}

/// At most 64 printable ASCII characters of a name a client sent.
fn clean(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::tests::fleet;

    /// HAProxy 2.6's exact header, as `http-check send-state` writes it.
    const HDR: &str =
        "UP 2/3; address=10.0.0.2; port=3306; name=mysql-read/db1; node=lb1; weight=1/2; scur=0/0; qcur=0";

    fn three() -> Fleet {
        fleet(&[
            ("db1", "10.0.0.2", 3306),
            ("db2", "10.0.0.3", 3306),
            ("standalone", "10.0.0.4", 3307),
        ])
    }

    fn name(
        r: Result<(Option<&Arc<Target>>, &str), String>,
    ) -> Result<(Option<String>, String), String> {
        r.map(|(t, p)| (t.map(|t| t.name.clone()), p.to_string()))
    }

    #[test]
    fn parses_haproxy_2_6_header() {
        assert_eq!(
            parse_server_state(HDR),
            ServerState {
                address: Some("10.0.0.2"),
                port: Some(3306),
                server: Some("db1"),
            }
        );
        // A DOWN server in transition, and IPv6.
        let s = parse_server_state("DOWN 1/2; address=fe80::1; port=3307; name=be/srv-x; node=lb1; weight=1/1; scur=0/0; qcur=0");
        assert_eq!(
            (s.address, s.port, s.server),
            (Some("fe80::1"), Some(3307), Some("srv-x"))
        );
        assert_eq!(parse_server_state("garbage"), ServerState::default());
        assert_eq!(
            parse_server_state("UP; port=x; name=nobackendslash").port,
            None
        );
    }

    #[test]
    fn header_by_address_then_by_server_name() {
        let f = three();
        assert_eq!(
            name(http(&f, Some(HDR), "/replica")),
            Ok((Some("db1".into()), "/replica".into()))
        );
        // Address matches db2 even though HAProxy calls the server db1: address wins.
        let h = "UP 3/3; address=10.0.0.3; port=3306; name=mysql-read/db1; node=lb1; weight=1/1; scur=0/0; qcur=0";
        assert_eq!(
            name(http(&f, Some(h), "/")),
            Ok((Some("db2".into()), "/".into()))
        );
        // Address unknown (HAProxy reaches it through NAT): the server name decides.
        let h = "UP 3/3; address=192.0.2.9; port=13306; name=mysql-read/standalone; node=lb1; weight=1/1; scur=0/0; qcur=0";
        assert_eq!(
            name(http(&f, Some(h), "/health")),
            Ok((Some("standalone".into()), "/health".into()))
        );
    }

    #[test]
    fn path_prefix_names_the_target() {
        let f = three();
        assert_eq!(
            name(http(&f, None, "/db2/replica")),
            Ok((Some("db2".into()), "/replica".into()))
        );
        assert_eq!(
            name(http(&f, None, "/db2")),
            Ok((Some("db2".into()), "/".into()))
        );
        assert_eq!(
            name(http(&f, None, "/db2/")),
            Ok((Some("db2".into()), "/".into()))
        );
        // Fleet-wide paths name nothing.
        assert_eq!(
            name(http(&f, None, "/status")),
            Ok((None, "/status".into()))
        );
        assert_eq!(name(http(&f, None, "*")), Ok((None, "*".into())));
        // Header and path agreeing is fine.
        assert_eq!(
            name(http(&f, Some(HDR), "/db1/primary")),
            Ok((Some("db1".into()), "/primary".into()))
        );
    }

    #[test]
    fn unknown_and_disagreeing_targets_are_refused_with_the_reason() {
        let f = three();
        let e = http(&f, None, "/db9/replica").unwrap_err();
        assert_eq!(e, "unknown target db9");
        let h = "UP; address=10.9.9.9; port=3306; name=be/db9; node=lb1";
        let e = http(&f, Some(h), "/replica").unwrap_err();
        assert!(
            e.contains("names no target") && e.contains("10.9.9.9") && e.contains("db9"),
            "{e}"
        );
        let e = http(&f, Some(HDR), "/db2/replica").unwrap_err();
        assert!(e.contains("names target db1 but the path names db2"), "{e}");
        // Naming none: the responder asks `pick`, which explains how to name one.
        let (t, _) = http(&f, None, "/replica").unwrap();
        assert!(pick(&f, t)
            .unwrap_err()
            .starts_with("no target named: with 3 targets"));
        // Client text in a reason is bounded and printable.
        let e = http(&f, None, "/\u{7}x/replica").unwrap_err();
        assert_eq!(e, "unknown target ?x");
    }

    #[test]
    fn one_target_answers_everything() {
        let f = fleet(&[("db1", "10.0.0.2", 3306)]);
        let h = "UP; address=10.9.9.9; port=3306; name=be/other; node=lb1";
        let (t, p) = http(&f, Some(h), "/replica").unwrap();
        assert_eq!((pick(&f, t).unwrap().name.as_str(), p), ("db1", "/replica"));
    }

    #[test]
    fn without_targets_nothing_is_a_prefix() {
        let t = Arc::new(Target::new(
            "",
            crate::fleet::tests::fleet(&[("x", "h", 1)]).targets()[0]
                .config
                .clone(),
        ));
        let f = Fleet::single(t);
        assert_eq!(
            name(http(&f, Some(HDR), "/x/replica")),
            Ok((None, "/x/replica".into()))
        );
        let (t, rest) = agent(&f, "x/replica").unwrap();
        assert!(t.is_none());
        assert_eq!(rest, "x/replica");
        assert!(pick(&f, None).is_ok());
    }

    #[test]
    fn agent_first_token() {
        let f = three();
        let got = |l: &str| agent(&f, l).map(|(t, rest)| (t.map(|t| t.name.clone()), rest));
        assert_eq!(
            got("db1/replica max_lag=20s"),
            Ok((Some("db1".into()), "replica max_lag=20s".into()))
        );
        assert_eq!(got("db2/"), Ok((Some("db2".into()), "".into())));
        assert_eq!(
            got("standalone"),
            Ok((Some("standalone".into()), "".into()))
        );
        assert_eq!(got("replica lag=5"), Ok((None, "replica lag=5".into())));
        assert_eq!(got("/replica"), Ok((None, "/replica".into())));
        assert_eq!(got(""), Ok((None, "".into())));
        assert_eq!(got("db9/replica"), Err("unknown target db9".into()));
    }
}
