//! What a probe round learned about the server, and the pure decoding of MySQL replies
//! into it; [`failure`] holds why a round or one of its steps failed. The statements
//! that produce those replies belong to the prober (`probe/sql.rs`).
//!
//! Invariants: decoding never panics (values are read with `get_opt`-style lookups and
//! kept as text until a rule needs them); a fact the server does not have is `None`,
//! never an error; server-supplied message text is kept only in [`ServerError::message`],
//! already redacted, and only `/status` and logs show it, never a health body.

use std::collections::BTreeMap;

pub(crate) mod failure;
pub(crate) use failure::{redact, ProbeError, Reason, ServerError, Step, StepFailure};

/// One row of `replication_group_members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    /// ONLINE, RECOVERING, OFFLINE, ERROR, UNREACHABLE.
    pub state: String,
    /// PRIMARY / SECONDARY; empty when unknown (MySQL 5.7 has no role column: see
    /// [`Group::derive_roles`]).
    pub role: String,
}

impl Member {
    pub fn from_row(cols: &[(String, Option<String>)]) -> Member {
        let get = |name: &str| {
            cols.iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Member {
            id: get("MEMBER_ID"),
            state: get("MEMBER_STATE").to_ascii_uppercase(),
            role: get("MEMBER_ROLE").to_ascii_uppercase(),
        }
    }
}

/// Whether member rows carry `MEMBER_ROLE` (MySQL ≥ 8.0.2; not 5.7).
pub(crate) fn has_role_column(cols: &[(String, Option<String>)]) -> bool {
    cols.iter()
        .any(|(c, _)| c.eq_ignore_ascii_case("MEMBER_ROLE"))
}

/// What Group Replication says about this server.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Group {
    pub(crate) members: Vec<Member>,
    /// Transactions waiting in this member's applier queue, when asked for (`None`
    /// inside: the server has no stats row for us). A failed read only affects
    /// `/replica`, the one role that needs it.
    pub(crate) applier_queue: OptionalFact<Option<u64>>,
}

impl Group {
    /// Roles for a member table without a role column (MySQL 5.7), from the status
    /// variable `group_replication_primary_member`: in single-primary mode it names
    /// the primary; empty means multi-primary, where every ONLINE member is a primary.
    /// Unknown (`None`: the status was not read) leaves the roles empty, which no role
    /// check accepts.
    pub(crate) fn derive_roles(&mut self, primary_member: Option<&str>) {
        let Some(primary) = primary_member.map(str::trim) else {
            return;
        };
        for m in &mut self.members {
            m.role = if primary.is_empty() {
                if m.state == "ONLINE" {
                    "PRIMARY"
                } else {
                    ""
                }
            } else if m.id.eq_ignore_ascii_case(primary) {
                "PRIMARY"
            } else {
                "SECONDARY"
            }
            .to_string();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    MariaDb,
    MySql,
    Percona,
}

impl Flavour {
    /// From `version` and `version_comment` (`10.11.6-MariaDB-0+deb12u1`,
    /// `8.0.36-28` + `Percona Server (GPL)…`, `8.0.36` + `MySQL Community Server`).
    pub(crate) fn detect(version: &str, comment: &str) -> Flavour {
        let v = version.to_ascii_lowercase();
        let c = comment.to_ascii_lowercase();
        if v.contains("mariadb") || c.contains("mariadb") {
            Flavour::MariaDb
        } else if c.contains("percona") {
            Flavour::Percona
        } else {
            Flavour::MySql
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Flavour::MariaDb => "mariadb",
            Flavour::MySql => "mysql",
            Flavour::Percona => "percona",
        }
    }
}

/// `(major, minor, patch)` from a version string; unknown parts are 0.
pub(crate) fn version_triple(version: &str) -> (u16, u16, u16) {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u16>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// An optional fact: not asked for, known, or failed (with why).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum OptionalFact<T> {
    #[default]
    NotCollected,
    Known(T),
    Failed(StepFailure),
}

/// One async replication channel (a row of `SHOW REPLICA STATUS` / `SHOW ALL
/// REPLICAS STATUS`), in either naming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// `Connection_name` (MariaDB) / `Channel_Name` (MySQL); `""` is the default one.
    pub name: String,
    /// `Yes`, `No`, `Connecting`, ... as the server says.
    pub io_state: String,
    pub sql_state: String,
    /// Seconds behind; `None` when the server says NULL (not healthy).
    pub lag: Option<u64>,
    pub last_io_errno: u32,
    pub last_sql_errno: u32,
    /// The primary it replicates from, `host:port` (host lower-cased; `Master_Host` /
    /// `Source_Host` and the port); empty when the server does not say. Replicas of one
    /// source form a replica group for minimum serving (README, "Verdict policy").
    pub source: String,
}

impl Channel {
    pub fn io_running(&self) -> bool {
        self.io_state.eq_ignore_ascii_case("yes")
    }

    pub fn sql_running(&self) -> bool {
        self.sql_state.eq_ignore_ascii_case("yes")
    }

    /// Decode one status row given as (column name, value) pairs. Both the MySQL 8
    /// (`Replica_*`, `Seconds_Behind_Source`) and the older/MariaDB naming
    /// (`Slave_*`, `Seconds_Behind_Master`) are understood.
    pub fn from_row(cols: &[(String, Option<String>)]) -> Channel {
        let get = |names: &[&str]| -> Option<&str> {
            cols.iter()
                .find(|(c, _)| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
                .and_then(|(_, v)| v.as_deref())
        };
        let num =
            |names: &[&str]| -> u32 { get(names).and_then(|v| v.trim().parse().ok()).unwrap_or(0) };
        Channel {
            name: get(&["Connection_name", "Channel_Name", "Channel_name"])
                .unwrap_or("")
                .to_string(),
            io_state: get(&["Slave_IO_Running", "Replica_IO_Running"])
                .unwrap_or("")
                .to_string(),
            sql_state: get(&["Slave_SQL_Running", "Replica_SQL_Running"])
                .unwrap_or("")
                .to_string(),
            lag: get(&["Seconds_Behind_Master", "Seconds_Behind_Source"])
                .and_then(|v| v.trim().parse().ok()),
            last_io_errno: num(&["Last_IO_Errno"]),
            last_sql_errno: num(&["Last_SQL_Errno"]),
            source: match get(&["Master_Host", "Source_Host"]).map(str::trim) {
                Some(h) if !h.is_empty() => format!(
                    "{}:{}",
                    h.to_ascii_lowercase(),
                    num(&["Master_Port", "Source_Port"])
                ),
                _ => String::new(),
            },
        }
    }
}

/// What one successful round knows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facts {
    /// Core variables by lower-case name; a variable the server lacks is absent.
    pub(crate) variables: BTreeMap<String, String>,
    pub(crate) flavour: Flavour,
    /// The outcome of `check.query`: an error reply is a fact (down), not a reason to
    /// drop the connection.
    pub(crate) query: Result<(), ServerError>,
    /// Async replication channels, all of them (selection is policy, in verdicts).
    pub(crate) channels: OptionalFact<Vec<Channel>>,
    /// `SHOW GLOBAL STATUS` subset (Threads_connected, wsrep_*), by lower-case name.
    pub(crate) status: OptionalFact<BTreeMap<String, String>>,
    /// Group Replication, only when a group name is configured.
    pub(crate) group: OptionalFact<Group>,
}

impl Facts {
    pub(crate) fn from_variables(rows: impl IntoIterator<Item = (String, String)>) -> Facts {
        let variables: BTreeMap<String, String> = rows
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let flavour = Flavour::detect(
            variables.get("version").map(String::as_str).unwrap_or(""),
            variables
                .get("version_comment")
                .map(String::as_str)
                .unwrap_or(""),
        );
        Facts {
            variables,
            flavour,
            query: Ok(()),
            channels: OptionalFact::NotCollected,
            status: OptionalFact::NotCollected,
            group: OptionalFact::NotCollected,
        }
    }

    pub(crate) fn var(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    pub(crate) fn version(&self) -> &str {
        self.var("version").unwrap_or("")
    }

    /// `read_only` counts as on unless `OFF`/`0` (MariaDB 12 adds `NO_LOCK`, … which
    /// are all "on"). `None` when the server did not report it.
    pub(crate) fn read_only(&self) -> Option<bool> {
        self.var("read_only").map(is_on_unless_off)
    }

    /// MariaDB has no `super_read_only`: absent means off.
    pub(crate) fn super_read_only(&self) -> bool {
        self.var("super_read_only").is_some_and(is_on_unless_off)
    }

    /// Absent (MariaDB has none) is off; reported without a value (NULL reads as empty)
    /// is `None`: unknown, which a rule must not take for either answer.
    pub(crate) fn offline_mode(&self) -> Option<bool> {
        match self.var("offline_mode") {
            None => Some(false),
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(is_on_unless_off(v)),
        }
    }

    /// Galera is really on: `wsrep_on=ON` and a provider loaded. (A plain MariaDB
    /// reports `wsrep_ready=OFF` and `wsrep_cluster_status=Disconnected`: those mean
    /// nothing without this gate.)
    pub(crate) fn galera(&self) -> bool {
        self.var("wsrep_on")
            .is_some_and(|v| v.eq_ignore_ascii_case("on") || v == "1")
            && self
                .var("wsrep_provider")
                .is_some_and(|p| !p.trim().is_empty() && !p.eq_ignore_ascii_case("none"))
    }

    /// Group Replication is configured (a group name is set).
    pub(crate) fn group_replication(&self) -> bool {
        self.var("group_replication_group_name")
            .is_some_and(|g| !g.trim().is_empty())
    }

    pub(crate) fn status_var(&self, name: &str) -> Option<&str> {
        match &self.status {
            OptionalFact::Known(m) => m.get(name).map(String::as_str),
            _ => None,
        }
    }

    /// The errors a round that completed still met, by reason: the check query's error
    /// reply and every failed optional step (`mysqlchk_probe_errors_total` counts them,
    /// or a missing privilege would never show there).
    pub(crate) fn errors(&self) -> Vec<Reason> {
        let mut out = Vec::new();
        if let Err(e) = &self.query {
            out.push(Reason::from_code(e.code));
        }
        let mut step = |f: &StepFailure| out.push(f.reason);
        if let OptionalFact::Failed(f) = &self.status {
            step(f);
        }
        if let OptionalFact::Failed(f) = &self.channels {
            step(f);
        }
        match &self.group {
            OptionalFact::Failed(f) => step(f),
            OptionalFact::Known(g) => {
                if let OptionalFact::Failed(f) = &g.applier_queue {
                    step(f);
                }
            }
            OptionalFact::NotCollected => {}
        }
        out
    }

    /// This server's own Group Replication member row.
    pub(crate) fn own_member(&self) -> Option<&Member> {
        let OptionalFact::Known(g) = &self.group else {
            return None;
        };
        let uuid = self.var("server_uuid")?;
        g.members.iter().find(|m| m.id.eq_ignore_ascii_case(uuid))
    }
}

fn is_on_unless_off(v: &str) -> bool {
    !(v.eq_ignore_ascii_case("off") || v == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        Facts::from_variables(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn flavours() {
        assert_eq!(
            Flavour::detect("10.11.6-MariaDB-0+deb12u1", "Debian 12"),
            Flavour::MariaDb
        );
        assert_eq!(
            Flavour::detect("8.0.36-28", "Percona Server (GPL), Release 28"),
            Flavour::Percona
        );
        assert_eq!(
            Flavour::detect("8.0.36", "MySQL Community Server - GPL"),
            Flavour::MySql
        );
    }

    #[test]
    fn versions() {
        assert_eq!(version_triple("10.11.6-MariaDB-0+deb12u1"), (10, 11, 6));
        assert_eq!(version_triple("8.0.22"), (8, 0, 22));
        assert_eq!(version_triple("garbage"), (0, 0, 0));
        assert_eq!(version_triple(""), (0, 0, 0));
    }

    #[test]
    fn read_only_values() {
        assert_eq!(facts(&[("read_only", "OFF")]).read_only(), Some(false));
        assert_eq!(facts(&[("read_only", "0")]).read_only(), Some(false));
        assert_eq!(facts(&[("read_only", "ON")]).read_only(), Some(true));
        assert_eq!(facts(&[("READ_ONLY", "NO_LOCK")]).read_only(), Some(true));
        assert_eq!(facts(&[]).read_only(), None);
        assert!(!facts(&[]).super_read_only());
        assert!(facts(&[("super_read_only", "ON")]).super_read_only());
    }

    #[test]
    fn errors_of_a_completed_round() {
        let mut f = facts(&[]);
        assert!(f.errors().is_empty());
        f.query = Err(ServerError::new(1047, "WSREP has not yet prepared node"));
        f.channels = OptionalFact::Failed(StepFailure {
            reason: Reason::Privilege,
            code: Some(1227),
        });
        f.group = OptionalFact::Known(Group {
            members: vec![],
            applier_queue: OptionalFact::Failed(StepFailure {
                reason: Reason::Timeout,
                code: None,
            }),
        });
        assert_eq!(
            f.errors(),
            [Reason::ServerError, Reason::Privilege, Reason::Timeout]
        );
    }

    #[test]
    fn offline_mode_values() {
        assert_eq!(facts(&[]).offline_mode(), Some(false));
        assert_eq!(
            facts(&[("offline_mode", "OFF")]).offline_mode(),
            Some(false)
        );
        assert_eq!(facts(&[("offline_mode", "ON")]).offline_mode(), Some(true));
        assert_eq!(facts(&[("offline_mode", "")]).offline_mode(), None);
    }

    fn row(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn channels_in_both_namings() {
        let maria = Channel::from_row(&row(&[
            ("Connection_name", Some("east")),
            ("Slave_IO_Running", Some("Yes")),
            ("Slave_SQL_Running", Some("Yes")),
            ("Seconds_Behind_Master", Some("7")),
            ("Last_IO_Errno", Some("0")),
        ]));
        assert_eq!(maria.name, "east");
        assert!(maria.io_running() && maria.sql_running());
        assert_eq!(maria.lag, Some(7));
        assert_eq!(maria.source, "", "no Master_Host: no source");
        let mysql8 = Channel::from_row(&row(&[
            ("Replica_IO_Running", Some("Connecting")),
            ("Replica_SQL_Running", Some("Yes")),
            ("Seconds_Behind_Source", None),
            ("Last_IO_Errno", Some("2003")),
            ("Channel_Name", Some("")),
            ("Source_Host", Some("DB1.example")),
            ("Source_Port", Some("3307")),
        ]));
        assert_eq!(mysql8.source, "db1.example:3307");
        assert_eq!(mysql8.name, "");
        assert!(!mysql8.io_running());
        assert_eq!(mysql8.lag, None);
        assert_eq!(mysql8.last_io_errno, 2003);
        // Garbage never panics: everything unknown is empty/absent.
        let junk = Channel::from_row(&row(&[("Seconds_Behind_Master", Some("-x"))]));
        assert_eq!(junk.lag, None);
        assert_eq!(junk.io_state, "");
    }

    #[test]
    fn mysql57_group_roles_from_the_primary_member() {
        let m = |id: &str, state: &str| Member {
            id: id.into(),
            state: state.into(),
            role: String::new(),
        };
        let group = || Group {
            members: vec![m("a", "ONLINE"), m("b", "ONLINE"), m("c", "RECOVERING")],
            applier_queue: OptionalFact::NotCollected,
        };
        let roles = |g: &Group| g.members.iter().map(|m| m.role.clone()).collect::<Vec<_>>();
        let mut single = group();
        single.derive_roles(Some("B"));
        assert_eq!(roles(&single), ["SECONDARY", "PRIMARY", "SECONDARY"]);
        let mut multi = group();
        multi.derive_roles(Some(""));
        assert_eq!(roles(&multi), ["PRIMARY", "PRIMARY", ""]);
        let mut unknown = group();
        unknown.derive_roles(None);
        assert_eq!(roles(&unknown), ["", "", ""]);
        assert!(has_role_column(&row(&[("member_role", Some(""))])));
        assert!(!has_role_column(&row(&[("MEMBER_STATE", Some("ONLINE"))])));
    }
}
