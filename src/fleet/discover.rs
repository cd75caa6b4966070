//! Discovery, the pure part (README "Fleet mode", "Discovery"): what each source's rows
//! say about the topology, and the merge rule that turns one pass's findings into
//! changes of the discovered targets.
//!
//! Sources: `SHOW REPLICAS` / `SHOW SLAVE HOSTS` (`Host`, `Port`; a replica is listed
//! only with `report_host`), else the processlist's `Binlog Dump` threads (`Host` is the
//! replica's client address, so its server port is taken to be the seed's);
//! `wsrep_incoming_addresses` (`host:port,host:port`); `replication_group_members`
//! (`MEMBER_HOST`, `MEMBER_PORT`); HAProxy's `show servers state` (one target per
//! distinct address, named after its first server line).
//!
//! Merge rule: known ∪ found. A known target missing from a *complete* pass is `gone`
//! (it answers 503 `not in topology`) and is removed once gone for `forget_after`; one
//! found again is back. A failed pass changes nothing; a partial one (a relay of a chain
//! did not answer) only adds. Each change is reported once, to be logged and counted.
//!
//! Invariants: pure, no panics on any row; names are `host:port` unless HAProxy names
//! the server with a valid target name; hosts from the topology are only accepted with
//! the characters of a host name or an IP address (they end up in names and paths).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::discover::host_port;
use crate::config::target_name;
use crate::push::api::ServerRow;

/// One row as column name → text (NULL is `None`).
pub(crate) type Row = Vec<(String, Option<String>)>;

/// A server the topology lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Found {
    /// A server named by its address, `host:port` (`[v6]:port`).
    pub(crate) fn at(host: &str, port: u16) -> Found {
        let name = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Found {
            name,
            host: host.to_string(),
            port,
        }
    }

    fn same_address(&self, host: &str, port: u16) -> bool {
        self.port == port && self.host.eq_ignore_ascii_case(host)
    }
}

fn col<'r>(row: &'r Row, name: &str) -> Option<&'r str> {
    row.iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_deref())
}

/// A host from the topology, if it looks like a host name or an IP address.
fn clean_host(host: &str, port: u16) -> Option<(String, u16)> {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.contains(':') {
        // IPv6: host_port would read the last group as a port.
        return host_port(&format!("[{bare}]:{port}"), port);
    }
    host_port(&format!("{bare}:{port}"), port)
}

fn push_unique(out: &mut Vec<Found>, f: Found) {
    if !out.iter().any(|o| o.same_address(&f.host, f.port)) {
        out.push(f);
    }
}

/// `SHOW REPLICAS` (MySQL) / `SHOW SLAVE HOSTS` (MariaDB, older MySQL): `Host`, `Port`.
/// A port of 0 (no `report_port`) is taken to be `default_port`.
pub(crate) fn replica_hosts(rows: &[Row], default_port: u16) -> Vec<Found> {
    let mut out = Vec::new();
    for r in rows {
        let Some(host) = col(r, "Host").filter(|h| !h.trim().is_empty()) else {
            continue;
        };
        let port = col(r, "Port")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p != 0)
            .unwrap_or(default_port);
        if let Some((h, p)) = clean_host(host, port) {
            push_unique(&mut out, Found::at(&h, p));
        }
    }
    out
}

/// The processlist's `Binlog Dump` / `Binlog Dump GTID` threads: `Host` is the
/// replica's client address (`10.0.0.3:51234`), whose port says nothing about its
/// server's, so the replica is taken to listen on `port` (the seed's).
pub(crate) fn binlog_dump_hosts(rows: &[Row], port: u16) -> Vec<Found> {
    let mut out = Vec::new();
    for r in rows {
        let dump = col(r, "Command").is_some_and(|c| c.starts_with("Binlog Dump"));
        let Some(client) = col(r, "Host").filter(|_| dump) else {
            continue;
        };
        let host = match client.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => client,
        };
        if let Some((h, p)) = clean_host(host, port) {
            push_unique(&mut out, Found::at(&h, p));
        }
    }
    out
}

/// `wsrep_incoming_addresses`: `host:port` entries separated by commas (a node without
/// an incoming address shows `AUTO` or nothing: skipped).
pub(crate) fn galera_addresses(value: &str, default_port: u16) -> Vec<Found> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() || item.eq_ignore_ascii_case("AUTO") {
            continue;
        }
        if let Some((h, p)) = host_port(item, default_port) {
            push_unique(&mut out, Found::at(&h, p));
        }
    }
    out
}

/// `performance_schema.replication_group_members`: `MEMBER_HOST`, `MEMBER_PORT` (NULL
/// or 0 while a member joins: `default_port`).
pub(crate) fn group_members(rows: &[Row], default_port: u16) -> Vec<Found> {
    let mut out = Vec::new();
    for r in rows {
        let Some(host) = col(r, "MEMBER_HOST").filter(|h| !h.trim().is_empty()) else {
            continue;
        };
        let port = col(r, "MEMBER_PORT")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p != 0)
            .unwrap_or(default_port);
        if let Some((h, p)) = clean_host(host, port) {
            push_unique(&mut out, Found::at(&h, p));
        }
    }
    out
}

/// `show servers state`: one target per distinct address, named after its first server
/// line; a server name that cannot name a target (an endpoint word such as `primary`,
/// or one already taken by another address) falls back to `host:port`. Servers without
/// an address or port (not resolved yet, `server-template` slots) are skipped.
pub(crate) fn haproxy_servers(rows: &[ServerRow]) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for r in rows {
        let Some(port) = r.port else { continue };
        if r.addr.is_empty() || r.addr == "-" || r.addr == "0.0.0.0" || r.addr == "::" {
            continue;
        }
        let Some((host, port)) = clean_host(&r.addr, port) else {
            continue;
        };
        if out.iter().any(|o| o.same_address(&host, port)) {
            continue;
        }
        let mut f = Found::at(&host, port);
        if target_name::validate(&r.server).is_ok() && !out.iter().any(|o| o.name == r.server) {
            f.name = r.server.clone();
        }
        out.push(f);
    }
    out
}

/// A discovered target, as one `[[discover]]` entry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) found: Found,
    /// Missing from the topology since then: answers `not in topology`.
    pub(crate) gone_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    /// Its name now stands for another address (HAProxy `set server addr`).
    Moved,
    Gone,
    Back,
    Removed,
}

impl Change {
    #[cfg(test)]
    pub(crate) const ALL: [Change; 5] = [
        Change::Added,
        Change::Moved,
        Change::Gone,
        Change::Back,
        Change::Removed,
    ];

    /// The metric label and log word.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Moved => "moved",
            Change::Gone => "gone",
            Change::Back => "back",
            Change::Removed => "removed",
        }
    }
}

/// What one pass found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The whole topology: what is missing is gone.
    Complete(Vec<Found>),
    /// Part of it (a server on the way did not answer): only additions count.
    Partial(Vec<Found>),
}

/// Apply one pass to `known` (by name); the changes, each once, in a stable order.
pub(crate) fn merge(
    known: &mut BTreeMap<String, Member>,
    pass: Pass,
    now: Instant,
    forget_after: std::time::Duration,
) -> Vec<(String, Change)> {
    let (found, complete) = match pass {
        Pass::Complete(f) => (f, true),
        Pass::Partial(f) => (f, false),
    };
    let mut changes = Vec::new();
    for f in &found {
        match known.get_mut(&f.name) {
            None => {
                changes.push((f.name.clone(), Change::Added));
                known.insert(
                    f.name.clone(),
                    Member {
                        found: f.clone(),
                        gone_since: None,
                    },
                );
            }
            Some(m) => {
                if m.found != *f {
                    changes.push((f.name.clone(), Change::Moved));
                    m.found = f.clone();
                }
                if m.gone_since.take().is_some() {
                    changes.push((f.name.clone(), Change::Back));
                }
            }
        }
    }
    if complete {
        known.retain(|name, m| {
            if found.iter().any(|f| f.name == *name) {
                return true;
            }
            match m.gone_since {
                None => {
                    m.gone_since = Some(now);
                    changes.push((name.clone(), Change::Gone));
                    true
                }
                Some(since) if now.saturating_duration_since(since) >= forget_after => {
                    changes.push((name.clone(), Change::Removed));
                    false
                }
                Some(_) => true,
            }
        });
        // `forget_after = 0`: gone and removed in the same pass.
        if forget_after.is_zero() {
            known.retain(|name, m| {
                let drop = m.gone_since.is_some();
                if drop {
                    changes.push((name.clone(), Change::Removed));
                }
                !drop
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn row(cols: &[(&str, Option<&str>)]) -> Row {
        cols.iter()
            .map(|(c, v)| (c.to_string(), v.map(str::to_string)))
            .collect()
    }

    fn names(f: &[Found]) -> Vec<&str> {
        f.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn mariadb_slave_hosts_and_mysql_replicas() {
        // MariaDB 10.11 `SHOW SLAVE HOSTS`.
        let maria = [
            row(&[
                ("Server_id", Some("2")),
                ("Host", Some("10.0.0.3")),
                ("Port", Some("3306")),
                ("Master_id", Some("1")),
            ]),
            row(&[
                ("Server_id", Some("3")),
                ("Host", Some("")),
                ("Port", Some("3306")),
                ("Master_id", Some("1")),
            ]),
            row(&[
                ("Server_id", Some("4")),
                ("Host", Some("db4")),
                ("Port", Some("0")),
            ]),
        ];
        assert_eq!(
            names(&replica_hosts(&maria, 3307)),
            ["10.0.0.3:3306", "db4:3307"]
        );
        // MySQL 8 `SHOW REPLICAS`.
        let mysql = [row(&[
            ("Server_Id", Some("2")),
            ("Host", Some("fe80::2")),
            ("Port", Some("3310")),
            ("Source_Id", Some("1")),
            ("Replica_UUID", Some("u")),
        ])];
        let f = replica_hosts(&mysql, 3306);
        assert_eq!(names(&f), ["[fe80::2]:3310"]);
        assert_eq!(f[0].host, "fe80::2");
        // Garbage never panics and never becomes a name.
        let bad = [
            row(&[("Host", Some("a b/c")), ("Port", Some("1"))]),
            row(&[("Host", None), ("Port", None)]),
            row(&[]),
        ];
        assert!(replica_hosts(&bad, 3306).is_empty());
    }

    #[test]
    fn binlog_dump_threads_take_the_seed_port() {
        let rows = [
            row(&[
                ("Host", Some("10.0.0.3:51234")),
                ("Command", Some("Binlog Dump")),
            ]),
            row(&[
                ("Host", Some("10.0.0.4:40000")),
                ("Command", Some("Binlog Dump GTID")),
            ]),
            row(&[("Host", Some("10.0.0.5:40001")), ("Command", Some("Query"))]),
            row(&[
                ("Host", Some("localhost")),
                ("Command", Some("Binlog Dump")),
            ]),
            row(&[
                ("Host", Some("[::1]:5000")),
                ("Command", Some("Binlog Dump")),
            ]),
        ];
        assert_eq!(
            names(&binlog_dump_hosts(&rows, 3307)),
            [
                "10.0.0.3:3307",
                "10.0.0.4:3307",
                "localhost:3307",
                "[::1]:3307"
            ]
        );
    }

    #[test]
    fn galera_incoming_addresses() {
        let f = galera_addresses("127.0.0.1:4001,127.0.0.1:4002, AUTO,,[::1]:4003,db9", 3306);
        assert_eq!(
            names(&f),
            ["127.0.0.1:4001", "127.0.0.1:4002", "[::1]:4003", "db9:3306"]
        );
        assert!(galera_addresses("", 3306).is_empty());
    }

    #[test]
    fn group_replication_members() {
        let rows = [
            row(&[("MEMBER_HOST", Some("gr1")), ("MEMBER_PORT", Some("3306"))]),
            row(&[("MEMBER_HOST", Some("gr2")), ("MEMBER_PORT", None)]),
            row(&[("MEMBER_HOST", Some("")), ("MEMBER_PORT", Some("3306"))]),
            row(&[("member_host", Some("gr1")), ("member_port", Some("3306"))]),
        ];
        assert_eq!(names(&group_members(&rows, 3310)), ["gr1:3306", "gr2:3310"]);
    }

    fn srv(backend: &str, server: &str, addr: &str, port: Option<u16>) -> ServerRow {
        ServerRow {
            backend: backend.into(),
            server: server.into(),
            addr: addr.into(),
            fqdn: None,
            port,
            op_state: 2,
            admin_state: 0,
        }
    }

    #[test]
    fn haproxy_servers_one_per_address_named_by_haproxy() {
        let rows = [
            srv("mysql-write", "db1", "10.0.0.2", Some(3306)),
            srv("mysql-read", "db1-read", "10.0.0.2", Some(3306)),
            srv("mysql-read", "db2", "10.0.0.3", Some(3306)),
            srv("other", "db2", "10.0.0.4", Some(3306)),
            srv("other", "primary", "10.0.0.5", Some(3306)),
            srv("other", "tmpl1", "0.0.0.0", None),
            srv("other", "tmpl2", "-", Some(3306)),
        ];
        assert_eq!(
            names(&haproxy_servers(&rows)),
            ["db1", "db2", "10.0.0.4:3306", "10.0.0.5:3306"]
        );
    }

    fn found(name: &str, port: u16) -> Found {
        Found {
            name: name.into(),
            host: "h".into(),
            port,
        }
    }

    #[test]
    fn change_labels_are_the_metric_labels() {
        let labels: Vec<_> = Change::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(labels, crate::metrics::DISCOVERY_CHANGES);
    }

    #[test]
    fn merge_adds_marks_gone_then_forgets() {
        let t0 = Instant::now();
        let forget = Duration::from_secs(60);
        let mut known = BTreeMap::new();
        let ch = merge(
            &mut known,
            Pass::Complete(vec![found("a", 1), found("b", 2)]),
            t0,
            forget,
        );
        assert_eq!(
            ch,
            [("a".into(), Change::Added), ("b".into(), Change::Added)]
        );
        // Unchanged: nothing to report.
        let again = Pass::Complete(vec![found("a", 1), found("b", 2)]);
        assert!(merge(&mut known, again, t0, forget).is_empty());
        // b missing: gone (kept, to answer `not in topology`), reported once.
        let t1 = t0 + Duration::from_secs(1);
        let ch = merge(&mut known, Pass::Complete(vec![found("a", 1)]), t1, forget);
        assert_eq!(ch, [("b".into(), Change::Gone)]);
        assert_eq!(known["b"].gone_since, Some(t1));
        let t2 = t1 + Duration::from_secs(30);
        assert!(merge(&mut known, Pass::Complete(vec![found("a", 1)]), t2, forget).is_empty());
        // Back before forget_after.
        let ch = merge(
            &mut known,
            Pass::Complete(vec![found("a", 1), found("b", 2)]),
            t2,
            forget,
        );
        assert_eq!(ch, [("b".into(), Change::Back)]);
        assert_eq!(known["b"].gone_since, None);
        // Gone again, then forgotten after forget_after.
        merge(&mut known, Pass::Complete(vec![found("a", 1)]), t2, forget);
        let t3 = t2 + forget;
        let ch = merge(&mut known, Pass::Complete(vec![found("a", 1)]), t3, forget);
        assert_eq!(ch, [("b".into(), Change::Removed)]);
        assert!(!known.contains_key("b"));
    }

    #[test]
    fn a_partial_pass_only_adds_and_moves_are_reported() {
        let t0 = Instant::now();
        let forget = Duration::from_secs(60);
        let mut known = BTreeMap::new();
        merge(&mut known, Pass::Complete(vec![found("a", 1)]), t0, forget);
        let ch = merge(&mut known, Pass::Partial(vec![found("c", 3)]), t0, forget);
        assert_eq!(ch, [("c".into(), Change::Added)]);
        assert!(
            known["a"].gone_since.is_none(),
            "a partial pass never marks gone"
        );
        let ch = merge(
            &mut known,
            Pass::Complete(vec![found("a", 9), found("c", 3)]),
            t0,
            forget,
        );
        assert_eq!(ch, [("a".into(), Change::Moved)]);
        assert_eq!(known["a"].found.port, 9);
        // forget_after = 0: gone and removed in one pass.
        let ch = merge(
            &mut known,
            Pass::Complete(vec![found("a", 9)]),
            t0,
            Duration::ZERO,
        );
        assert_eq!(
            ch,
            [("c".into(), Change::Gone), ("c".into(), Change::Removed)]
        );
        assert!(!known.contains_key("c"));
    }
}
