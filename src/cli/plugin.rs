//! `mysqlchk check`: one direct round, one line in monitoring-plugin style.
//!
//! Exit codes: 0 up, 1 maintenance, 2 down, 3 unknown — a bad config, or the checker's
//! own account refused (access denied, locked, password expired): then we know nothing
//! about the server, which is what UNKNOWN means to Nagios-style tools.

use std::time::{Duration, Instant};

use crate::snapshot::Snapshot;
use crate::verdict::{evaluate, State, Verdict};

pub const OK: i32 = 0;
pub const WARNING: i32 = 1;
pub const CRITICAL: i32 = 2;
pub const UNKNOWN: i32 = 3;

/// The output line and exit code for a verdict on a direct round's snapshot.
pub fn report(snap: &Snapshot, v: &Verdict) -> (String, i32) {
    let auth = snap
        .outcome
        .as_ref()
        .err()
        .is_some_and(|e| e.reason.is_auth());
    let (word, code) = match v.state {
        _ if auth => ("UNKNOWN", UNKNOWN),
        State::Up => ("OK", OK),
        State::Maintenance => ("WARNING", WARNING),
        State::Down | State::Starting => ("CRITICAL", CRITICAL),
    };
    let mut perf = format!("time={:.6}s;;;0", snap.duration.as_secs_f64());
    if let Some(lag) = v.lag {
        perf.push_str(&format!(" lag={lag}s;;;0"));
    }
    (format!("MYSQLCHK {word} - {} | {perf}", v.line()), code)
}

pub fn evaluate_direct(
    snap: &Snapshot,
    check: &crate::config::Check,
    role: crate::role::Role,
    max_lag: Option<Duration>,
) -> Verdict {
    evaluate(Some(snap), Instant::now(), check, role, max_lag)
}
