//! Writing the Prometheus text format 0.0.4: families in first-seen order under one
//! `# HELP`/`# TYPE` each, escaped label values, and the facts series of one target.

use std::fmt::Write as _;

use super::MAX_CHANNELS;

/// Series grouped by family in first-seen order, so one `# HELP`/`# TYPE` heads all of
/// a family's series whichever target they come from.
#[derive(Default)]
pub(super) struct Families {
    list: Vec<(&'static str, String)>,
}

impl Families {
    /// Add `line` (if not empty) to family `name`, declaring the family (with `kind` and
    /// `help`) the first time it is seen.
    pub(super) fn add(&mut self, name: &'static str, kind: &str, help: &str, line: String) {
        let i = match self.list.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                let mut body = String::new();
                head(&mut body, name, kind, help);
                self.list.push((name, body));
                self.list.len() - 1
            }
        };
        if !line.is_empty() {
            let body = &mut self.list[i].1;
            body.push_str(&line);
            body.push('\n');
        }
    }

    pub(super) fn finish(self) -> String {
        let mut o = String::with_capacity(4096);
        for (_, body) in self.list {
            o.push_str(&body);
        }
        o
    }
}

/// `{a,b}` from a target label and other labels, either maybe empty; nothing if both are.
pub(super) fn labels(target: &str, rest: &str) -> String {
    match (target.is_empty(), rest.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("{{{target}}}"),
        (true, false) => format!("{{{rest}}}"),
        (false, false) => format!("{{{target},{rest}}}"),
    }
}

/// Gauges read from the latest facts; absent when the server has no such fact.
pub(super) fn facts_series(o: &mut Families, tl: &str, f: &crate::facts::Facts) {
    use crate::facts::OptionalFact;
    let num = |v: Option<&str>| v.and_then(|v| v.trim().parse::<f64>().ok());
    let l = labels(tl, "");
    if let OptionalFact::Known(channels) = &f.channels {
        o.add(
            "mysqlchk_replication_lag_seconds",
            "gauge",
            "Seconds behind the source per replication channel (NaN when NULL).",
            String::new(),
        );
        for c in channels.iter().take(MAX_CHANNELS) {
            let lag = c.lag.map(|l| l.to_string()).unwrap_or_else(|| "NaN".into());
            o.add(
                "mysqlchk_replication_lag_seconds",
                "",
                "",
                format!(
                    "mysqlchk_replication_lag_seconds{} {lag}",
                    labels(tl, &format!("channel=\"{}\"", label(&c.name)))
                ),
            );
        }
        o.add(
            "mysqlchk_replication_running",
            "gauge",
            "1 when both threads of the channel run.",
            String::new(),
        );
        for c in channels.iter().take(MAX_CHANNELS) {
            o.add(
                "mysqlchk_replication_running",
                "",
                "",
                format!(
                    "mysqlchk_replication_running{} {}",
                    labels(tl, &format!("channel=\"{}\"", label(&c.name))),
                    u8::from(c.io_running() && c.sql_running())
                ),
            );
        }
    }
    if let Some(n) = num(f.status_var("threads_connected")) {
        o.add(
            "mysqlchk_mysql_threads_connected",
            "gauge",
            "Threads_connected of the server.",
            format!("mysqlchk_mysql_threads_connected{l} {n}"),
        );
    }
    if let Some(n) = num(f.var("max_connections")) {
        o.add(
            "mysqlchk_mysql_max_connections",
            "gauge",
            "max_connections of the server.",
            format!("mysqlchk_mysql_max_connections{l} {n}"),
        );
    }
    if f.galera() {
        if let Some(n) = num(f.status_var("wsrep_local_state")) {
            o.add(
                "mysqlchk_galera_local_state",
                "gauge",
                "wsrep_local_state (4 Synced, 2 Donor/Desynced, 1 Joining, 3 Joined).",
                format!("mysqlchk_galera_local_state{l} {n}"),
            );
        }
        if let Some(n) = num(f.status_var("wsrep_cluster_size")) {
            o.add(
                "mysqlchk_galera_cluster_size",
                "gauge",
                "wsrep_cluster_size.",
                format!("mysqlchk_galera_cluster_size{l} {n}"),
            );
        }
        let primary = f
            .status_var("wsrep_cluster_status")
            .is_some_and(|v| v.eq_ignore_ascii_case("primary"));
        o.add(
            "mysqlchk_galera_cluster_primary",
            "gauge",
            "1 when this node is in the Primary component.",
            format!("mysqlchk_galera_cluster_primary{l} {}", u8::from(primary)),
        );
    }
    if let OptionalFact::Known(g) = &f.group {
        let online = g.members.iter().filter(|m| m.state == "ONLINE").count();
        o.add(
            "mysqlchk_group_members_online",
            "gauge",
            "Group Replication members this server sees ONLINE.",
            format!("mysqlchk_group_members_online{l} {online}"),
        );
        o.add(
            "mysqlchk_group_members",
            "gauge",
            "Group Replication members this server sees.",
            format!("mysqlchk_group_members{l} {}", g.members.len()),
        );
    }
}

/// A label value in the exposition format's escaping, bounded in length.
pub(super) fn label(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars().take(64) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

pub(super) fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
