//! Prometheus text format 0.0.4, written by hand for our few series.
//!
//! Invariants: names start with `mysqlchk_`, counters end in `_total`, base units
//! (seconds), label values from fixed sets only (endpoints, statuses, reasons, roles),
//! so a scanner hitting random paths cannot grow the exposition.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::config::Check;
use crate::facts::Reason;
use crate::role::Role;
use crate::snapshot::Published;
use crate::verdict::{evaluate, State};

/// The HTTP paths, as metric label values (a fixed set: unknown paths are `other`);
/// `Endpoint::label` names one of these.
pub const ENDPOINT_LABELS: &[&str] = &[
    "health",
    "primary",
    "replica",
    "read-only",
    "live",
    "status",
    "metrics",
    "other",
];

const STATUSES: &[u16] = &[200, 400, 403, 404, 405, 408, 431, 503];
/// Upper bounds (seconds) of the round-duration histogram buckets.
const ROUND_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// At most this many replication channels are exported (label cardinality bound).
const MAX_CHANNELS: usize = 32;

pub struct Metrics {
    /// `[endpoint][status]`; an unlisted status counts under the last slot ("other").
    requests: Vec<Vec<AtomicU64>>,
    refused_peers: AtomicU64,
    probe_errors: Vec<AtomicU64>,
    /// Cumulative counts per bucket (index = bucket; last = +Inf).
    round_buckets: Vec<AtomicU64>,
    round_sum_us: AtomicU64,
    /// `[role][state]` in `Role::ALL` × [`TRANSITION_STATES`] order.
    transitions: Vec<Vec<AtomicU64>>,
    /// What the HAProxy pushers record (`[[haproxy]]`).
    pub push: std::sync::Arc<crate::push::stats::Stats>,
    /// What the discoverers record (`[[discover]]`).
    pub(crate) discovery: std::sync::Arc<DiscoveryStats>,
}

/// The states a verdict can change to, as `to` label values.
const TRANSITION_STATES: &[State] = &[State::Up, State::Maintenance, State::Down, State::Starting];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: ENDPOINT_LABELS
                .iter()
                .map(|_| (0..=STATUSES.len()).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            refused_peers: AtomicU64::new(0),
            probe_errors: Reason::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            round_buckets: (0..=ROUND_BUCKETS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            round_sum_us: AtomicU64::new(0),
            transitions: Role::ALL
                .iter()
                .map(|_| {
                    TRANSITION_STATES
                        .iter()
                        .map(|_| AtomicU64::new(0))
                        .collect()
                })
                .collect(),
            push: Default::default(),
            discovery: Default::default(),
        }
    }

    /// One probe round took `d`.
    pub fn round(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = ROUND_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(ROUND_BUCKETS.len());
        self.round_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.round_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn request(&self, endpoint: &str, status: u16) {
        let e = ENDPOINT_LABELS
            .iter()
            .position(|l| *l == endpoint)
            .unwrap_or(ENDPOINT_LABELS.len() - 1);
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(STATUSES.len());
        if let Some(c) = self.requests.get(e).and_then(|row| row.get(s)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The checker saw `role`'s verdict change to `to`.
    pub fn transition(&self, role: Role, to: State) {
        let r = Role::ALL.iter().position(|&x| x == role);
        let s = TRANSITION_STATES.iter().position(|&x| x == to);
        if let Some(c) = r
            .zip(s)
            .and_then(|(r, s)| self.transitions.get(r).and_then(|row| row.get(s)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn refused_peer(&self) {
        self.refused_peers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn probe_error(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|&r| r == reason) {
            self.probe_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition of `targets` (name, settings, snapshot cell). Per-target series
    /// carry `target="<name>"` when a name is given (fleet mode) and no such label
    /// otherwise, so a single-server agent's exposition is as it always was; counters
    /// (requests, refusals, probe errors, round durations) are the process's.
    /// `push`: `[[haproxy]]` is configured (its series are added only then, so a plain
    /// setup's exposition does not grow).
    pub(crate) fn render(&self, targets: &[MetricTarget<'_>], push: bool, now: Instant) -> String {
        let mut o = Families::default();
        o.add(
            "mysqlchk_build_info",
            "gauge",
            "Build information.",
            format!(
                "mysqlchk_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        );
        for (i, &(name, check, published)) in targets.iter().enumerate() {
            let tl = name
                .map(|n| format!("target=\"{}\"", label(n)))
                .unwrap_or_default();
            self.target_series(&mut o, &tl, check, published, now, i == 0);
        }
        o.add(
            "mysqlchk_probe_errors_total",
            "counter",
            "Probe errors by reason: failed rounds, failed optional steps, check-query error replies.",
            String::new(),
        );
        for (i, r) in Reason::ALL.iter().enumerate() {
            o.add(
                "mysqlchk_probe_errors_total",
                "",
                "",
                format!(
                    "mysqlchk_probe_errors_total{{reason=\"{}\"}} {}",
                    r.as_str(),
                    self.probe_errors[i].load(Ordering::Relaxed)
                ),
            );
        }
        // Process-wide: in fleet mode the sum over targets (a `target` label comes with
        // the fleet-wide rules).
        o.add(
            "mysqlchk_transitions_total",
            "counter",
            "Verdict changes seen by the checker, by role and the state changed to.",
            String::new(),
        );
        for (i, r) in Role::ALL.iter().enumerate() {
            for (j, s) in TRANSITION_STATES.iter().enumerate() {
                o.add(
                    "mysqlchk_transitions_total",
                    "",
                    "",
                    format!(
                        "mysqlchk_transitions_total{{role=\"{}\",to=\"{}\"}} {}",
                        r.name(),
                        s.as_str(),
                        self.transitions[i][j].load(Ordering::Relaxed)
                    ),
                );
            }
        }
        o.add(
            "mysqlchk_http_requests_total",
            "counter",
            "HTTP requests answered, by endpoint and status.",
            String::new(),
        );
        for (e, label) in ENDPOINT_LABELS.iter().enumerate() {
            for (s, c) in self.requests[e].iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(s)
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "other".into());
                o.add(
                    "mysqlchk_http_requests_total",
                    "",
                    "",
                    format!(
                        "mysqlchk_http_requests_total{{endpoint=\"{label}\",status=\"{status}\"}} {n}"
                    ),
                );
            }
        }
        o.add(
            "mysqlchk_refused_connections_total",
            "counter",
            "Connections closed because the peer is not allowed or a limit was reached.",
            format!(
                "mysqlchk_refused_connections_total {}",
                self.refused_peers.load(Ordering::Relaxed)
            ),
        );
        let mut o = o.finish();
        if push {
            self.push.render(&mut o);
        }
        o
    }

    /// One target's series (`tl` is its `target="..."` label, or empty); the process's
    /// round histogram goes where it always stood, with the first target.
    fn target_series(
        &self,
        o: &mut Families,
        tl: &str,
        check: &Check,
        published: &Published,
        now: Instant,
        first: bool,
    ) {
        let snap = published.latest();
        o.add(
            "mysqlchk_role_up",
            "gauge",
            "1 when the role's check answers up (200), else 0.",
            String::new(),
        );
        o.add(
            "mysqlchk_role_state",
            "gauge",
            "1 for the role's current state (up, maintenance, down, starting).",
            String::new(),
        );
        for &r in Role::ALL {
            let v = evaluate(snap.as_deref(), now, check, r, None);
            o.add(
                "mysqlchk_role_up",
                "",
                "",
                format!(
                    "mysqlchk_role_up{} {}",
                    labels(tl, &format!("role=\"{}\"", r.name())),
                    u8::from(v.state == State::Up)
                ),
            );
            for s in [State::Up, State::Maintenance, State::Down, State::Starting] {
                o.add(
                    "mysqlchk_role_state",
                    "",
                    "",
                    format!(
                        "mysqlchk_role_state{} {}",
                        labels(
                            tl,
                            &format!("role=\"{}\",state=\"{}\"", r.name(), s.as_str())
                        ),
                        u8::from(v.state == s)
                    ),
                );
            }
        }
        let age = snap
            .as_deref()
            .map(|s| now.saturating_duration_since(s.taken).as_secs_f64())
            .unwrap_or(-1.0);
        o.add(
            "mysqlchk_snapshot_age_seconds",
            "gauge",
            "Seconds since the latest probe round finished (-1 before the first).",
            format!("mysqlchk_snapshot_age_seconds{} {age}", labels(tl, "")),
        );
        let dur = snap
            .as_deref()
            .map(|s| s.duration.as_secs_f64())
            .unwrap_or(0.0);
        o.add(
            "mysqlchk_round_duration_seconds_last",
            "gauge",
            "Duration of the latest probe round.",
            format!(
                "mysqlchk_round_duration_seconds_last{} {dur}",
                labels(tl, "")
            ),
        );
        if first {
            self.round_histogram(o);
        }
        if let Some(f) = snap.as_deref().and_then(|s| s.outcome.as_ref().ok()) {
            facts_series(o, tl, f);
        }
        let m = snap.as_deref().is_some_and(|s| s.maintenance.is_some());
        o.add(
            "mysqlchk_maintenance",
            "gauge",
            "1 while the maintenance flag is set.",
            format!("mysqlchk_maintenance{} {}", labels(tl, ""), u8::from(m)),
        );
    }

    fn round_histogram(&self, o: &mut Families) {
        const NAME: &str = "mysqlchk_round_duration_seconds";
        o.add(
            NAME,
            "histogram",
            "Duration of probe rounds.",
            String::new(),
        );
        let mut cumulative = 0;
        for (i, c) in self.round_buckets.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = ROUND_BUCKETS
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "+Inf".into());
            o.add(
                NAME,
                "",
                "",
                format!("mysqlchk_round_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"),
            );
        }
        o.add(
            NAME,
            "",
            "",
            format!(
                "mysqlchk_round_duration_seconds_sum {}\nmysqlchk_round_duration_seconds_count {cumulative}",
                self.round_sum_us.load(Ordering::Relaxed) as f64 / 1e6
            ),
        );
    }
}

/// `mysqlchk_discovery_changes_total{change}` values (one per change of a discovered
/// target: found, its name at another address, gone from the topology, back, forgotten).
pub(crate) const DISCOVERY_CHANGES: &[&str] = &["added", "moved", "gone", "back", "removed"];

/// One `[[discover]]` entry as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DiscoverySource {
    /// When the latest pass ended (Unix seconds), successful or not.
    pub(crate) last_pass_unix: u64,
    /// The latest pass's error (our phrase), none when it worked.
    pub(crate) error: Option<String>,
    /// The latest changes, newest last: `(unix seconds, target, change)`.
    pub(crate) recent: std::collections::VecDeque<(u64, String, &'static str)>,
}

/// What the discoverers share with `/metrics` and `/status`: counters by fixed labels,
/// and each entry's latest state behind a short lock (readers never wait on a pass).
#[derive(Debug, Default)]
pub(crate) struct DiscoveryStats {
    /// `[source][change]`.
    changes: [[AtomicU64; 5]; 4],
    errors: [AtomicU64; 4],
    /// By `"<from> <seed>"`, for the entries configured now.
    pub(crate) sources: std::sync::Mutex<std::collections::BTreeMap<String, DiscoverySource>>,
}

impl DiscoveryStats {
    /// How many changes `/status` keeps per entry.
    const RECENT: usize = 20;

    fn source_index(from: crate::config::discover::Source) -> usize {
        crate::config::discover::Source::ALL
            .iter()
            .position(|&s| s == from)
            .unwrap_or(0)
    }

    pub(crate) fn change(
        &self,
        from: crate::config::discover::Source,
        key: &str,
        target: &str,
        change: &'static str,
    ) {
        if let Some(i) = DISCOVERY_CHANGES.iter().position(|&c| c == change) {
            self.changes[Self::source_index(from)][i].fetch_add(1, Ordering::Relaxed);
        }
        let now = unix_now();
        if let Ok(mut m) = self.sources.lock() {
            let s = m.entry(key.to_string()).or_default();
            s.recent.push_back((now, target.to_string(), change));
            while s.recent.len() > Self::RECENT {
                s.recent.pop_front();
            }
        }
    }

    /// A pass ended: `error` is its failure, if any.
    pub(crate) fn pass(
        &self,
        from: crate::config::discover::Source,
        key: &str,
        error: Option<String>,
    ) {
        if error.is_some() {
            self.errors[Self::source_index(from)].fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut m) = self.sources.lock() {
            let s = m.entry(key.to_string()).or_default();
            s.last_pass_unix = unix_now();
            s.error = error;
        }
    }

    /// Keep only the entries of `keys` (after a reload).
    pub(crate) fn retain(&self, keys: &[String]) {
        if let Ok(mut m) = self.sources.lock() {
            m.retain(|k, _| keys.contains(k));
        }
    }

    /// The discovery series (only written when `[[discover]]` is configured).
    pub(crate) fn render(&self, o: &mut String) {
        use crate::config::discover::Source;
        let _ = writeln!(
            o,
            "# HELP mysqlchk_discovery_changes_total Changes of discovered targets, by source and change.\n\
             # TYPE mysqlchk_discovery_changes_total counter"
        );
        for (si, src) in Source::ALL.iter().enumerate() {
            for (ci, c) in DISCOVERY_CHANGES.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "mysqlchk_discovery_changes_total{{source=\"{}\",change=\"{c}\"}} {}",
                    src.as_str(),
                    self.changes[si][ci].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP mysqlchk_discovery_errors_total Discovery passes that failed (known targets kept), by source.\n\
             # TYPE mysqlchk_discovery_errors_total counter"
        );
        for (si, src) in Source::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "mysqlchk_discovery_errors_total{{source=\"{}\"}} {}",
                src.as_str(),
                self.errors[si].load(Ordering::Relaxed)
            );
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One target as the exposition sees it: its name (fleet mode only), settings and
/// snapshot cell.
pub(crate) type MetricTarget<'a> = (Option<&'a str>, &'a Check, &'a Published);

/// Series grouped by family in first-seen order, so one `# HELP`/`# TYPE` heads all of
/// a family's series whichever target they come from.
#[derive(Default)]
struct Families {
    list: Vec<(&'static str, String)>,
}

impl Families {
    /// Add `line` (if not empty) to family `name`, declaring the family (with `kind` and
    /// `help`) the first time it is seen.
    fn add(&mut self, name: &'static str, kind: &str, help: &str, line: String) {
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

    fn finish(self) -> String {
        let mut o = String::with_capacity(4096);
        for (_, body) in self.list {
            o.push_str(&body);
        }
        o
    }
}

/// `{a,b}` from a target label and other labels, either maybe empty; nothing if both are.
fn labels(target: &str, rest: &str) -> String {
    match (target.is_empty(), rest.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("{{{target}}}"),
        (true, false) => format!("{{{rest}}}"),
        (false, false) => format!("{{{target},{rest}}}"),
    }
}

/// Gauges read from the latest facts; absent when the server has no such fact.
fn facts_series(o: &mut Families, tl: &str, f: &crate::facts::Facts) {
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
fn label(v: &str) -> String {
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

fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::facts::{Channel, Facts, OptionalFact};
    use crate::snapshot::Snapshot;
    use std::time::{Duration, SystemTime};

    fn config() -> Config {
        crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &Default::default())
            .unwrap()
            .config
    }

    #[test]
    fn exposition_is_well_formed() {
        let m = Metrics::new();
        m.request("primary", 200);
        m.request("other", 999);
        m.round(Duration::from_millis(3));
        m.round(Duration::from_secs(9));
        m.probe_error(Reason::Timeout);
        m.transition(Role::Replica, State::Down);
        let published = Published::new();
        let mut f = Facts::from_variables(
            [("read_only", "OFF"), ("max_connections", "151")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        f.channels = OptionalFact::Known(vec![Channel {
            name: "a\"b\\c\nd".into(),
            io_state: "Yes".into(),
            sql_state: "Yes".into(),
            lag: None,
            last_io_errno: 0,
            last_sql_errno: 0,
        }]);
        published.publish(Snapshot {
            seq: 1,
            taken: Instant::now(),
            wall: SystemTime::now(),
            duration: Duration::from_millis(2),
            outcome: Ok(f),
            maintenance: None,
            policy: Default::default(),
        });
        let cfg = config();
        let text = m.render(&[(None, &cfg.check, &published)], false, Instant::now());
        // Every family declared once, samples right after their own header.
        let mut seen = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(seen.insert(name.clone()), "{name} declared twice");
                current = name;
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&current), "{line} outside {current}");
                assert!(line.starts_with("mysqlchk_"));
            }
        }
        assert!(
            text.contains("mysqlchk_http_requests_total{endpoint=\"primary\",status=\"200\"} 1")
        );
        assert!(
            text.contains("mysqlchk_http_requests_total{endpoint=\"other\",status=\"other\"} 1")
        );
        assert!(text.contains("mysqlchk_round_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("mysqlchk_round_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("mysqlchk_probe_errors_total{reason=\"timeout\"} 1"));
        assert!(text.contains("mysqlchk_replication_lag_seconds{channel=\"a\\\"b\\\\c\\nd\"} NaN"));
        assert!(text.contains("mysqlchk_mysql_max_connections 151"));
        // A fixed label set: every role and state, changed or not.
        assert!(text.contains("mysqlchk_transitions_total{role=\"replica\",to=\"down\"} 1"));
        assert!(text.contains("mysqlchk_transitions_total{role=\"health\",to=\"up\"} 0"));
        assert_eq!(text.matches("mysqlchk_transitions_total{").count(), 16);
    }
}
