//! `mysqlchk check`: one direct round, one line in monitoring-plugin style.
//!
//! Exit codes: 0 up, 1 maintenance, 2 down, 3 unknown — a bad config or command line,
//! or the checker's own account refused (access denied, locked, password expired):
//! then we know nothing about the server, which is what UNKNOWN means to Nagios-style
//! tools (README, "Commands"). Whatever goes wrong, stdout carries exactly one
//! `MYSQLCHK <STATE> - ...` line.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config;
use crate::role::Role;
use crate::snapshot::Snapshot;
use crate::verdict::{evaluate, State, Verdict};

pub const OK: i32 = 0;
pub const WARNING: i32 = 1;
pub const CRITICAL: i32 = 2;
pub const UNKNOWN: i32 = 3;

pub(super) fn run(
    cli: Option<&Path>,
    role: &str,
    max_lag: Option<&str>,
    target: Option<&str>,
) -> i32 {
    let cfg = match super::load_or_print_errors(cli) {
        Ok(loaded) => loaded.config,
        Err(first) => {
            println!("MYSQLCHK UNKNOWN - invalid configuration: {first}");
            return UNKNOWN;
        }
    };
    // Fleet mode: the named target's settings (the only one's when there is one).
    let cfg = match cfg.select_target(target) {
        Ok((c, _)) => c,
        Err(e) => {
            println!("MYSQLCHK UNKNOWN - {e}");
            return UNKNOWN;
        }
    };
    let Some(role) = Role::parse(role.trim_start_matches('/')) else {
        println!("MYSQLCHK UNKNOWN - unknown role {role:?} (health, primary, replica, read-only)");
        return UNKNOWN;
    };
    let max_lag = match max_lag.map(config::parse_duration) {
        None => None,
        Some(Some(d)) => Some(d),
        Some(None) => {
            println!("MYSQLCHK UNKNOWN - invalid --max-lag (seconds or a duration such as 10s)");
            return UNKNOWN;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("MYSQLCHK UNKNOWN - cannot start: {e}");
            return UNKNOWN;
        }
    };
    let snap = rt.block_on(crate::checker::direct_round(&cfg));
    let v = evaluate_direct(&snap, &cfg.check, role, max_lag);
    let (line, code) = report(&snap, &v);
    println!("{line}");
    code
}

/// A command line clap refused: its first line, as a plugin line.
pub(super) fn usage_error(e: &clap::Error) -> i32 {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("");
    println!(
        "MYSQLCHK UNKNOWN - usage: {} (see mysqlchk check --help)",
        first.trim_start_matches("error: ")
    );
    UNKNOWN
}

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
    role: Role,
    max_lag: Option<Duration>,
) -> Verdict {
    evaluate(Some(snap), Instant::now(), check, role, max_lag)
}
