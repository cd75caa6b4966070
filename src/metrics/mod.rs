//! Prometheus text format 0.0.4, written by hand for our few series.
//!
//! Invariants: names start with `mysqlchk_`, counters end in `_total`, base units
//! (seconds), label values from fixed sets only (endpoints, statuses, reasons, roles)
//! and the fleet's target names, so a scanner hitting random paths cannot grow the
//! exposition; per-target series exist only for the targets in the fleet now (a target
//! removed or forgotten leaves no series behind), and a target's role series say what
//! the responders answer for it ([`Exposed::answer`]: a gone target is down). `text`
//! writes the format, `discovery` holds what discovery reports, `prober` is what a
//! prober counts into.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::facts::Reason;
use crate::role::Role;
use crate::snapshot::Snapshot;
use crate::verdict::{State, Verdict};

/// One target as the exposition reads it. The fleet's targets provide it, so the
/// metrics know nothing of the fleet.
pub(crate) trait Exposed {
    /// Its name (the `target` label in fleet mode).
    fn name(&self) -> &str;
    /// Its latest snapshot.
    fn latest(&self) -> Option<Arc<Snapshot>>;
    /// What the responders answer for `role` at `now`.
    fn answer(&self, now: Instant, role: Role) -> Verdict;
}

mod discovery;
mod prober;
mod text;

pub(crate) use discovery::DiscoveryStats;
#[cfg(test)]
pub(crate) use discovery::DISCOVERY_CHANGES;
pub use prober::ProberMetrics;
use prober::{ProbeErrors, TargetCounters};
use text::{facts_series, label, labels, Families};

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
    /// The process's (a single server's).
    probe_errors: ProbeErrors,
    /// Fleet mode: probe errors and rounds by target, registered and forgotten with its
    /// prober (`prober`).
    target_counters: std::sync::Mutex<BTreeMap<String, Arc<TargetCounters>>>,
    /// Cumulative counts per bucket (index = bucket; last = +Inf).
    round_buckets: Vec<AtomicU64>,
    round_sum_us: AtomicU64,
    /// `[role][state]` in `Role::ALL` × [`TRANSITION_STATES`] order.
    transitions: Vec<Vec<AtomicU64>>,
    /// Fleet mode: the same per target, counted by the fleet-wide pass on the verdicts
    /// the responders give (README, "Verdict policy"); only for targets in the fleet.
    target_transitions: std::sync::Mutex<BTreeMap<String, [[u64; 4]; 4]>>,
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
            probe_errors: ProbeErrors::default(),
            target_counters: Default::default(),
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
            target_transitions: Default::default(),
            push: Default::default(),
            discovery: Default::default(),
        }
    }

    /// Fleet mode: `target`'s `role` verdict changed to `to`.
    pub(crate) fn target_transition(&self, target: &str, role: Role, to: State) {
        let r = Role::ALL.iter().position(|&x| x == role);
        let s = TRANSITION_STATES.iter().position(|&x| x == to);
        if let Some((r, s)) = r.zip(s) {
            let mut m = lock(&self.target_transitions);
            if let Some(c) = m
                .entry(target.to_string())
                .or_default()
                .get_mut(r)
                .and_then(|row| row.get_mut(s))
            {
                *c += 1;
            }
        }
    }

    /// The handle a prober counts into: for `target` (fleet mode), fresh probe-error
    /// and round counters of its own, exported with its name until
    /// [`Metrics::forget_target`]; for `None` (a single server), the process's.
    pub fn prober(self: &Arc<Self>, target: Option<&str>) -> ProberMetrics {
        let counters = target.map(|name| {
            let c = Arc::new(TargetCounters::default());
            lock(&self.target_counters).insert(name.to_string(), c.clone());
            c
        });
        ProberMetrics::new(self.clone(), counters)
    }

    /// `name`'s prober stopped (the target was removed or forgotten): its probe-error
    /// and round counts go with it. Not in [`Metrics::retain_targets`]: the probers
    /// register a new target before the fleet that holds it is published, and a pass
    /// over the older fleet must not drop it.
    pub(crate) fn forget_target(&self, name: &str) {
        lock(&self.target_counters).remove(name);
    }

    /// Forget the per-target transition counts of targets no longer in the fleet.
    pub(crate) fn retain_targets(&self, keep: impl Fn(&str) -> bool) {
        lock(&self.target_transitions).retain(|name, _| keep(name));
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
        self.probe_errors.add(reason);
    }

    /// The exposition of the fleet's `targets`. Per-target series (and the probe-error
    /// and transition counters) carry `target="<name>"` when `named` (fleet mode) and no
    /// such label otherwise, so a single-server agent's exposition is as it always was;
    /// the other counters (requests, refusals, round durations) are the process's.
    /// `push`: `[[haproxy]]` is configured (its series are added only then, so a plain
    /// setup's exposition does not grow).
    pub(crate) fn render(
        &self,
        targets: &[impl Exposed],
        named: bool,
        push: bool,
        now: Instant,
    ) -> String {
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
        // The target names that label series: none for a single server.
        let names: Vec<&str> = targets.iter().filter(|_| named).map(|t| t.name()).collect();
        for (i, t) in targets.iter().enumerate() {
            let tl = if named {
                format!("target=\"{}\"", label(t.name()))
            } else {
                String::new()
            };
            self.target_series(&mut o, &tl, t, now, i == 0);
        }
        o.add(
            "mysqlchk_probe_errors_total",
            "counter",
            "Probe errors by reason: failed rounds, failed optional steps, check-query error replies.",
            String::new(),
        );
        // Per target in fleet mode (every reason, zeros too, as for transitions: a
        // rate needs the series before the first error); the process's otherwise.
        let counters = lock(&self.target_counters);
        let zero = TargetCounters::default();
        let of = |n: &str| counters.get(n).map_or(&zero, |c| &**c);
        let sets: Vec<(String, &ProbeErrors)> = if names.is_empty() {
            vec![(String::new(), &self.probe_errors)]
        } else {
            names
                .iter()
                .map(|&n| (format!("target=\"{}\"", label(n)), &of(n).errors))
                .collect()
        };
        for (tl, e) in sets {
            for (i, r) in Reason::ALL.iter().enumerate() {
                o.add(
                    "mysqlchk_probe_errors_total",
                    "",
                    "",
                    format!(
                        "mysqlchk_probe_errors_total{} {}",
                        labels(&tl, &format!("reason=\"{}\"", r.as_str())),
                        e.get(i)
                    ),
                );
            }
        }
        // Fleet mode only: each target's rounds, the denominator of its error share
        // (a single server's is the round histogram's count, so no family without
        // targets). Zero before its first round, as for the errors.
        if !names.is_empty() {
            o.add(
                "mysqlchk_target_rounds_total",
                "counter",
                "Probe rounds completed, per target (fleet mode).",
                String::new(),
            );
        }
        for &n in &names {
            o.add(
                "mysqlchk_target_rounds_total",
                "",
                "",
                format!(
                    "mysqlchk_target_rounds_total{{target=\"{}\"}} {}",
                    label(n),
                    of(n).rounds()
                ),
            );
        }
        drop(counters);
        // Per target in fleet mode (counted on the verdicts the responders give, the
        // fleet-wide rules included); a single server's, without a `target` label, as
        // it always was.
        o.add(
            "mysqlchk_transitions_total",
            "counter",
            "Verdict changes seen by the checker, by role and the state changed to.",
            String::new(),
        );
        if !names.is_empty() {
            let counts = lock(&self.target_transitions);
            for &name in &names {
                let c = counts.get(name).copied().unwrap_or_default();
                for (i, r) in Role::ALL.iter().enumerate() {
                    for (j, s) in TRANSITION_STATES.iter().enumerate() {
                        o.add(
                            "mysqlchk_transitions_total",
                            "",
                            "",
                            format!(
                                "mysqlchk_transitions_total{{target=\"{}\",role=\"{}\",to=\"{}\"}} {}",
                                label(name),
                                r.name(),
                                s.as_str(),
                                c[i][j]
                            ),
                        );
                    }
                }
            }
        }
        for (i, r) in Role::ALL.iter().enumerate().filter(|_| names.is_empty()) {
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
        t: &impl Exposed,
        now: Instant,
        first: bool,
    ) {
        let snap = t.latest();
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
            // What the responders answer (a gone target is down whatever its server
            // says), so a dashboard never shows up what HAProxy is told is down.
            let v = t.answer(now, r);
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

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A counter map stays usable after a panic elsewhere held the lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
