//! Pure evaluation: (snapshot, policy, role, now) → verdict. Shared by every responder
//! and by `check` / `inetd`, so HTTP, the agent port and the command line always agree.
//! The memory that keeps verdicts from flapping (median lag, lag hysteresis, the
//! full-server grace) rides in the snapshot (`crate::policy`); this module only reads it.
//!
//! Invariants: no I/O, no panics, no server-supplied text in a reason (only our
//! phrases, error numbers and names the operator configured); precedence is
//! starting > down > maintenance > up (a full server counts as maintenance).

use std::time::{Duration, Instant};

use crate::config::{fmt_duration, Check};
use crate::facts::{Channel, Facts, OptionalFact, Reason};
use crate::policy::{Bounds, Gate, Policy};
use crate::role::Role;
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Up,
    Maintenance,
    Down,
    Starting,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Maintenance => "maintenance",
            State::Down => "down",
            State::Starting => "starting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub role: Role,
    pub state: State,
    /// Why (for down), what (for up, e.g. the lag), or the maintenance reason.
    pub reason: String,
    /// The server is flagged for maintenance (also set when it is down meanwhile).
    /// A `Maintenance` state without it is a full server (README, "Verdict policy").
    pub maintenance: bool,
    /// Judged replication lag (median of the latest rounds' worst selected channel),
    /// for agent weights.
    pub lag: Option<u64>,
}

impl Verdict {
    fn new(role: Role, state: State, reason: impl Into<String>) -> Verdict {
        Verdict {
            role,
            state,
            reason: reason.into(),
            maintenance: false,
            lag: None,
        }
    }

    /// The one human line of a health body.
    pub fn line(&self) -> String {
        match (self.state, self.maintenance) {
            (State::Maintenance, true) => format!("maintenance: {}", self.reason),
            (State::Down, true) => format!("maintenance: down - {}", self.reason),
            (State::Starting, _) => format!("{}: starting", self.role.name()),
            (_, _) if self.reason.is_empty() => {
                format!("{}: {}", self.role.name(), self.state.as_str())
            }
            _ => format!(
                "{}: {} - {}",
                self.role.name(),
                self.state.as_str(),
                self.reason
            ),
        }
    }
}

/// Evaluate `role` on the latest snapshot.
pub fn evaluate(
    snapshot: Option<&Snapshot>,
    now: Instant,
    check: &Check,
    role: Role,
    max_lag: Option<Duration>,
) -> Verdict {
    let Some(snap) = snapshot else {
        return Verdict::new(role, State::Starting, "starting");
    };
    let mut v = judge(
        snap,
        now,
        check,
        role,
        max_lag.unwrap_or(check.max_replication_lag),
    );
    if let Some(m) = &snap.maintenance {
        match v.state {
            // The operator's word wins over "full": it is the one they will look for.
            State::Up | State::Maintenance => {
                v.state = State::Maintenance;
                v.reason = m.reason.clone();
            }
            State::Down | State::Starting => {}
        }
        v.maintenance = true;
    }
    v
}

fn judge(snap: &Snapshot, now: Instant, check: &Check, role: Role, max_lag: Duration) -> Verdict {
    let age = now.saturating_duration_since(snap.taken);
    if age > check.stale_after {
        return Verdict::new(
            role,
            State::Down,
            format!("stale: no completed check for {}", fmt_secs(age)),
        );
    }
    let facts = match &snap.outcome {
        Ok(f) => f,
        // Full is not dead: the server answered, it has no slot for us. Drain (as
        // maintenance does) for `check.full_grace`, then down (README, "Verdict policy").
        Err(e) if e.reason == Reason::TooManyConnections => {
            return match snap.policy.full_for(now) {
                Some(d) if d < check.full_grace => {
                    Verdict::new(role, State::Maintenance, "full: too many connections")
                }
                _ if check.full_grace.is_zero() => Verdict::new(role, State::Down, e.phrase()),
                _ => Verdict::new(
                    role,
                    State::Down,
                    format!(
                        "{}, full for more than {}",
                        e.phrase(),
                        fmt_duration(check.full_grace)
                    ),
                ),
            }
        }
        Err(e) => return Verdict::new(role, State::Down, e.phrase()),
    };
    if let Err(why) = healthy(facts, check) {
        return Verdict::new(role, State::Down, why);
    }
    match role {
        Role::Health => Verdict::new(role, State::Up, ""),
        Role::Primary => primary(facts, check, role),
        Role::Replica if facts.group_replication() => group_secondary(facts, check, role),
        Role::Replica => replica(facts, &snap.policy, check, max_lag, role),
        Role::ReadOnly => {
            // Never stricter than /primary (README, "Roles"): a server that may take
            // writes may take reads, also with a leftover stopped channel or a
            // replication step that failed or was skipped.
            let primary_up = primary(facts, check, role).state == State::Up;
            let has_channels =
                matches!(&facts.channels, OptionalFact::Known(c) if !selected(c, check).is_empty());
            if !primary_up && (has_channels || matches!(facts.channels, OptionalFact::Failed(_))) {
                return replica(facts, &snap.policy, check, max_lag, role);
            }
            if facts.galera() {
                // Healthy (checked above): a Galera node serves reads whatever its
                // read_only says (that only affects /primary).
                return Verdict::new(role, State::Up, "galera healthy");
            }
            if facts.group_replication() {
                return Verdict::new(role, State::Up, "group member online");
            }
            match writable(facts) {
                Ok(()) => Verdict::new(role, State::Up, "writable"),
                Err(_) if matches!(facts.channels, OptionalFact::NotCollected) => {
                    Verdict::new(role, State::Down, "replication status not collected")
                }
                Err(_) => Verdict::new(role, State::Down, "read_only and not replicating"),
            }
        }
    }
}

/// Rules every role shares.
fn healthy(f: &Facts, check: &Check) -> Result<(), String> {
    if let Err(e) = &f.query {
        return Err(format!("check query failed ({e})"));
    }
    match f.offline_mode() {
        Some(false) => {}
        Some(true) => return Err("offline_mode is ON".into()),
        None => return Err("offline_mode unknown (no value reported)".into()),
    }
    if f.galera() {
        galera(f, check)?;
    }
    if f.group_replication() {
        group(f)?;
    }
    Ok(())
}

/// Galera's own name for a `wsrep_local_state` number (our words, not the server's).
fn galera_state_name(n: Option<u32>) -> &'static str {
    match n {
        Some(1) => "Joining",
        Some(2) => "Donor/Desynced",
        Some(3) => "Joined",
        Some(4) => "Synced",
        Some(0) => "Initialized",
        _ => "unknown",
    }
}

fn galera(f: &Facts, check: &Check) -> Result<(), String> {
    if let OptionalFact::Failed(e) = &f.status {
        return Err(format!("galera status unavailable: {}", e.phrase()));
    }
    let is = |v: Option<&str>, want: &str| v.is_some_and(|x| x.eq_ignore_ascii_case(want));
    // A status the server did not report (NULL, absent) is unknown, not a state:
    // still down, but saying so.
    let reported = |name: &str| f.status_var(name).filter(|v| !v.trim().is_empty());
    match reported("wsrep_cluster_status") {
        None => return Err("galera cluster status unknown".into()),
        v if !is(v, "primary") => return Err("galera cluster component is not Primary".into()),
        _ => {}
    }
    match reported("wsrep_ready") {
        None => return Err("galera wsrep_ready unknown".into()),
        v if !is(v, "on") => return Err("galera wsrep_ready is not ON".into()),
        _ => {}
    }
    let state: Option<u32> = f
        .status_var("wsrep_local_state")
        .and_then(|v| v.trim().parse().ok());
    match state {
        Some(4) => {}
        Some(2) if check.galera_donor_is_healthy => {
            if is(f.var("wsrep_sst_donor_rejects_queries"), "on") {
                return Err("galera donor rejects queries during SST".into());
            }
        }
        other => {
            return Err(format!(
                "galera node {} (wsrep_local_state {})",
                galera_state_name(other),
                other
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ))
        }
    }
    if let Some(v) = f.var("wsrep_reject_queries") {
        if !v.eq_ignore_ascii_case("none") {
            return Err(match known(v, &["ALL", "ALL_KILL"]) {
                Some(word) => format!("galera rejects queries (wsrep_reject_queries={word})"),
                None => "galera rejects queries (wsrep_reject_queries is not NONE)".into(),
            });
        }
    }
    if let Some(v) = f.var("pxc_maint_mode") {
        if !v.eq_ignore_ascii_case("disabled") {
            return Err(match known(v, &["SHUTDOWN", "MAINTENANCE"]) {
                Some(word) => format!("pxc_maint_mode is {word}"),
                None => "pxc_maint_mode is not DISABLED".into(),
            });
        }
    }
    Ok(())
}

fn group(f: &Facts) -> Result<(), String> {
    let g = match &f.group {
        OptionalFact::Known(g) => g,
        OptionalFact::Failed(e) => {
            return Err(format!(
                "group replication status unavailable: {}",
                e.phrase()
            ))
        }
        OptionalFact::NotCollected => return Err("group replication status not collected".into()),
    };
    let Some(own) = f.own_member() else {
        return Err("group replication configured but this member is not in the group".into());
    };
    if own.state != "ONLINE" {
        return Err(format!(
            "group replication member {}",
            known(&own.state, MEMBER_STATES).unwrap_or("state unknown")
        ));
    }
    // Quorum is held by the members that are reachable: ONLINE ones and those still
    // RECOVERING (a member rejoining after a rolling restart must not take the
    // primary down while the group itself is fine).
    let reachable = g
        .members
        .iter()
        .filter(|m| m.state == "ONLINE" || m.state == "RECOVERING")
        .count();
    if reachable * 2 <= g.members.len() {
        let online = g.members.iter().filter(|m| m.state == "ONLINE").count();
        return Err(format!(
            "group replication has no majority ({online} of {} members ONLINE)",
            g.members.len()
        ));
    }
    Ok(())
}

/// `/primary` on a Group Replication member: its role must be PRIMARY (on MySQL 5.7,
/// without a role column, the probe derives it from `group_replication_primary_member`;
/// a role still unknown is refused).
fn group_primary(f: &Facts) -> Result<(), String> {
    if !f.group_replication() {
        return Ok(());
    }
    match f.own_member() {
        Some(m) if m.role == "PRIMARY" => Ok(()),
        Some(m) => Err(format!(
            "group replication role {}",
            known(&m.role, MEMBER_ROLES).unwrap_or("unknown")
        )),
        None => Err("group replication member not found".into()),
    }
}

fn group_secondary(f: &Facts, check: &Check, role: Role) -> Verdict {
    let Some(m) = f.own_member() else {
        return Verdict::new(role, State::Down, "group replication member not found");
    };
    if m.role == "PRIMARY" {
        return Verdict::new(
            role,
            State::Down,
            "group replication PRIMARY, not a secondary",
        );
    }
    if m.role != "SECONDARY" {
        // No role known (MySQL 5.7 without its primary-member status): a primary
        // must never pass as a secondary.
        return Verdict::new(role, State::Down, "group replication role unknown");
    }
    if check.gr_max_applier_queue > 0 {
        if let OptionalFact::Known(g) = &f.group {
            match &g.applier_queue {
                OptionalFact::Failed(e) => {
                    return Verdict::new(
                        role,
                        State::Down,
                        format!(
                            "group replication applier queue unavailable: {}",
                            e.phrase()
                        ),
                    )
                }
                OptionalFact::Known(Some(q)) if *q > check.gr_max_applier_queue => {
                    return Verdict::new(
                        role,
                        State::Down,
                        format!(
                            "group replication applier queue {q} exceeds {}",
                            check.gr_max_applier_queue
                        ),
                    )
                }
                OptionalFact::Known(Some(_)) => {}
                OptionalFact::Known(None) | OptionalFact::NotCollected => {
                    return Verdict::new(
                        role,
                        State::Down,
                        "group replication applier queue unknown",
                    )
                }
            }
        }
    }
    Verdict::new(role, State::Up, "group secondary online")
}

fn primary(f: &Facts, check: &Check, role: Role) -> Verdict {
    match writable(f).and_then(|()| group_primary(f)) {
        Err(why) => Verdict::new(role, State::Down, why),
        Ok(()) => match replicating_channel(f, check) {
            Some(name) if !check.primary_allows_replication => Verdict::new(
                role,
                State::Down,
                format!("writable but replicating (channel '{}')", escape(&name)),
            ),
            _ => Verdict::new(role, State::Up, ""),
        },
    }
}

fn writable(f: &Facts) -> Result<(), String> {
    match f.read_only() {
        None => Err("read_only not reported by the server".into()),
        Some(true) => Err(
            match f.var("read_only").and_then(|v| known(v, READ_ONLY_ON)) {
                Some(word) => format!("read_only is {word}"),
                None => "read_only is not OFF".into(),
            },
        ),
        Some(false) if f.super_read_only() => Err("super_read_only is ON".into()),
        Some(false) => Ok(()),
    }
}

/// The channels `check.replication_channels` selects; Group Replication's own
/// channels are never async channels.
fn selected<'a>(channels: &'a [Channel], check: &Check) -> Vec<&'a Channel> {
    channels
        .iter()
        .filter(|c| !c.name.starts_with("group_replication_"))
        .filter(|c| {
            check.replication_channels.is_empty() || check.replication_channels.contains(&c.name)
        })
        .collect()
}

/// A selected channel with a running (or reconnecting) thread, if any.
fn replicating_channel(f: &Facts, check: &Check) -> Option<String> {
    let OptionalFact::Known(channels) = &f.channels else {
        return None;
    };
    selected(channels, check)
        .into_iter()
        .find(|c| c.io_running() || c.sql_running() || c.io_state == "Connecting")
        .map(|c| c.name.clone())
}

/// The worst lag of the selected channels if every one of them replicates with a
/// known lag (what the policy's median is taken over), else `None`.
pub(crate) fn round_lag(f: &Facts, check: &Check) -> Option<u64> {
    channels_lag(f, check, Role::Replica).ok()
}

/// The lag judgement: the judged (median) lag against the bound, with hysteresis.
fn replica(f: &Facts, policy: &Policy, check: &Check, max_lag: Duration, role: Role) -> Verdict {
    let worst = match channels_lag(f, check, role) {
        Ok(w) => w,
        Err(v) => return v,
    };
    // A snapshot that remembers no round (a test's) is judged on this round alone.
    let judged = policy.judged_lag().unwrap_or(worst);
    let b = Bounds::for_bound(max_lag, check);
    let mut v = if Duration::from_secs(judged) > max_lag {
        Verdict::new(
            role,
            State::Down,
            format!(
                "replication lag {judged}s exceeds {}",
                fmt_duration(max_lag)
            ),
        )
    } else {
        match policy.gate(&b) {
            Gate::In => Verdict::new(role, State::Up, format!("lag {judged}s")),
            Gate::Out { good } => {
                let mut why = format!(
                    "recovering: lag {judged}s, back at {}",
                    fmt_duration(b.back_at)
                );
                if Duration::from_secs(judged) <= b.back_at {
                    why += &format!(" ({good} of {} rounds)", b.rounds);
                }
                Verdict::new(role, State::Down, why)
            }
        }
    };
    v.lag = Some(judged);
    v
}

/// The selected channels' worst lag, or the verdict that refuses them before any lag.
fn channels_lag(f: &Facts, check: &Check, role: Role) -> Result<u64, Verdict> {
    let channels = match &f.channels {
        OptionalFact::Known(c) => c,
        OptionalFact::NotCollected => {
            return Err(Verdict::new(
                role,
                State::Down,
                "replication status not collected",
            ))
        }
        OptionalFact::Failed(e) => {
            return Err(Verdict::new(
                role,
                State::Down,
                format!("replication status unavailable: {}", e.phrase()),
            ))
        }
    };
    let chosen = selected(channels, check);
    if chosen.is_empty() {
        return Err(Verdict::new(
            role,
            State::Down,
            "not replicating (no replication channel)",
        ));
    }
    let mut worst: u64 = 0;
    for c in &chosen {
        let name = escape(&c.name);
        if !c.io_running() {
            return Err(Verdict::new(
                role,
                State::Down,
                format!(
                    "replication IO thread not running (channel '{name}': {})",
                    known(&c.io_state, &["No", "Connecting"]).unwrap_or("unknown")
                ),
            ));
        }
        if !c.sql_running() {
            return Err(Verdict::new(
                role,
                State::Down,
                format!(
                    "replication SQL thread not running (channel '{name}': {})",
                    known(&c.sql_state, &["No"]).unwrap_or("unknown")
                ),
            ));
        }
        match c.lag {
            None => {
                return Err(Verdict::new(
                    role,
                    State::Down,
                    format!("replication lag unknown (channel '{name}')"),
                ))
            }
            Some(l) => worst = worst.max(l),
        }
    }
    Ok(worst)
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `read_only` values that mean on (MariaDB 12 adds the `NO_LOCK` ones).
const READ_ONLY_ON: &[&str] = &["ON", "1", "NO_LOCK", "NO_LOCK_NO_ADMIN"];
const MEMBER_STATES: &[&str] = &["ONLINE", "RECOVERING", "OFFLINE", "ERROR", "UNREACHABLE"];
const MEMBER_ROLES: &[&str] = &["PRIMARY", "SECONDARY"];

/// The word of `set` that `value` names (any case), as our own text: bodies carry our
/// phrases only, never a value the server supplied (README, "Roles").
fn known(value: &str, set: &[&'static str]) -> Option<&'static str> {
    set.iter()
        .copied()
        .find(|w| w.eq_ignore_ascii_case(value.trim()))
}

/// Names go into one-line bodies: keep them printable and short.
pub fn escape(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() || c == '\'' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
