//! Table-driven tests of every rule: the machines alone, then lag traces run through
//! the checker's bookkeeping (`Transitions::observe`, which also feeds the transitions
//! counter) and the verdict, as the daemon runs them.

use super::*;
use crate::checker::Transitions;
use crate::facts::{Channel, OptionalFact, Step};
use crate::snapshot::Snapshot;
use crate::verdict::{evaluate, State};
use std::time::SystemTime;

fn check(extra: &str) -> Check {
    crate::config::from_str(
        &format!("[listen]\nhttp=\"127.0.0.1:1\"\n[check]\n{extra}\n"),
        "t",
        &Default::default(),
    )
    .unwrap()
    .config
    .check
}

fn b(out: u64, back: u64, rounds: u32) -> Bounds {
    Bounds {
        out_above: Duration::from_secs(out),
        back_at: Duration::from_secs(back),
        rounds,
    }
}

#[test]
fn medians() {
    let cases: &[(&[u64], Option<u64>)] = &[
        (&[], None),
        (&[7], Some(7)),
        (&[0, 60_000], Some(0)),
        (&[0, 60_000, 1], Some(1)),
        (&[60_000, 60_000, 1], Some(60_000)),
        (&[5, 3, 9, 1], Some(3)),
    ];
    for (samples, want) in cases {
        assert_eq!(median(samples.iter().copied()), *want, "{samples:?}");
    }
}

#[test]
fn gate_steps() {
    let bounds = b(10, 5, 3);
    // (from, judged lag, to)
    let cases = [
        (Gate::In, Some(10), Gate::In),
        (Gate::In, Some(11), Gate::Out { good: 0 }),
        (Gate::In, None, Gate::In),
        (Gate::Out { good: 0 }, Some(7), Gate::Out { good: 0 }),
        (Gate::Out { good: 2 }, Some(6), Gate::Out { good: 0 }),
        (Gate::Out { good: 0 }, Some(5), Gate::Out { good: 1 }),
        (Gate::Out { good: 1 }, Some(0), Gate::Out { good: 2 }),
        (Gate::Out { good: 2 }, Some(5), Gate::In),
        (Gate::Out { good: 2 }, None, Gate::Out { good: 2 }),
        (Gate::Out { good: 1 }, Some(11), Gate::Out { good: 0 }),
    ];
    for (from, lag, to) in cases {
        assert_eq!(from.step(lag, &bounds), to, "{from:?} + {lag:?}");
    }
    // One round to recover is "back at once when at or below back_at".
    assert_eq!(Gate::Out { good: 0 }.step(Some(5), &b(10, 5, 1)), Gate::In);
}

#[test]
fn ramp_weights() {
    let r = Duration::from_secs(10);
    let cases = [
        (None, 100),
        (Some(0), 10),
        (Some(5), 55),
        (Some(9), 91),
        (Some(10), 100),
        (Some(3600), 100),
    ];
    for (since, want) in cases {
        assert_eq!(
            ramp_weight(since.map(Duration::from_secs), r, 10),
            want,
            "{since:?}"
        );
    }
    assert_eq!(ramp_weight(Some(Duration::ZERO), Duration::ZERO, 10), 100);
}

#[test]
fn only_a_return_ramps_not_the_first_verdict() {
    let t0 = Instant::now();
    let mut p = Policy::default();
    p.note(Role::Replica, true, t0);
    assert_eq!(
        p.back_for(Role::Replica, t0),
        None,
        "first verdict after start"
    );
    p.note(Role::Replica, false, t0 + Duration::from_secs(1));
    p.note(Role::Replica, true, t0 + Duration::from_secs(2));
    p.note(Role::Replica, true, t0 + Duration::from_secs(3));
    assert_eq!(
        p.back_for(Role::Replica, t0 + Duration::from_secs(4)),
        Some(Duration::from_secs(2))
    );
    assert_eq!(p.back_for(Role::Primary, t0), None);
}

/// One round of a replica with one channel lagging `lag` (`None`: SQL thread stopped),
/// or a round refused with "too many connections".
#[derive(Clone, Copy, Debug)]
enum Round {
    Lag(u64),
    SqlStopped,
    Full,
    Fine,
}

fn outcome(r: Round) -> Result<Facts, ProbeError> {
    let mut f = Facts::from_variables(
        [("read_only", "ON"), ("offline_mode", "OFF")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let (sql, lag) = match r {
        Round::Lag(l) => ("Yes", Some(l)),
        Round::SqlStopped => ("No", None),
        Round::Fine => ("Yes", Some(0)),
        Round::Full => {
            return Err(ProbeError {
                reason: Reason::TooManyConnections,
                step: Step::Connect,
                code: Some(1040),
                detail: String::new(),
            })
        }
    };
    f.channels = OptionalFact::Known(vec![Channel {
        name: String::new(),
        io_state: "Yes".into(),
        sql_state: sql.into(),
        lag,
        last_io_errno: 0,
        last_sql_errno: 0,
    }]);
    Ok(f)
}

/// Runs rounds one `interval` apart through the checker's bookkeeping.
struct Trace {
    check: Check,
    t: Transitions,
    start: Instant,
    n: u32,
    /// Every (round, role, new state) the checker counted, after each role's first.
    changes: Vec<(u32, Role, State)>,
    last: Option<Snapshot>,
}

impl Trace {
    fn new(extra: &str) -> Trace {
        Trace {
            check: check(extra),
            t: Transitions::default(),
            start: Instant::now(),
            n: 0,
            changes: Vec::new(),
            last: None,
        }
    }

    fn at(&self, n: u32) -> Instant {
        self.start + Duration::from_secs(u64::from(n))
    }

    fn round(&mut self, r: Round) -> &Snapshot {
        self.n += 1;
        let mut s = Snapshot {
            seq: u64::from(self.n),
            taken: self.at(self.n),
            wall: SystemTime::now(),
            duration: Duration::from_millis(1),
            outcome: outcome(r),
            maintenance: None,
            policy: Policy::default(),
        };
        let moved = self.t.observe(&mut s, &self.check);
        if self.n > 1 {
            self.changes
                .extend(moved.into_iter().map(|(role, to)| (self.n, role, to)));
        }
        self.last.insert(s)
    }

    fn rounds(&mut self, rs: impl IntoIterator<Item = Round>) {
        for r in rs {
            self.round(r);
        }
    }

    /// The body line for `role` on the latest round, `secs` after it.
    fn line(&self, role: Role, max_lag: Option<u64>, secs: u64) -> String {
        let s = self.last.as_ref().unwrap();
        evaluate(
            Some(s),
            s.taken + Duration::from_secs(secs),
            &self.check,
            role,
            max_lag.map(Duration::from_secs),
        )
        .line()
    }

    fn replica_changes(&self) -> Vec<(u32, State)> {
        self.changes
            .iter()
            .filter(|(_, r, _)| *r == Role::Replica)
            .map(|&(n, _, s)| (n, s))
            .collect()
    }
}

fn lags(v: &[u64]) -> Vec<Round> {
    v.iter().map(|&l| Round::Lag(l)).collect()
}

/// A replica a few seconds behind, with `Seconds_Behind_Master` jumping to 60,000 s
/// for single rounds (as MySQL reports right after a relay-log rotation or an IO
/// thread reconnect), as close together as `lag_samples` = 3 lets one spike be one.
const SPIKES: &[u64] = &[
    0, 1, 0, 2, 60_000, 1, 0, 60_000, 1, 0, 60_000, 0, 0, 1, 2, 1, 60_000, 3, 2, 0, 0, 1, 0,
    60_000, 1, 1, 60_000, 0, 0, 0,
];

#[test]
fn one_round_spikes_of_60000s_change_nothing() {
    let mut tr = Trace::new("max_replication_lag = \"30s\"");
    for (i, &lag) in SPIKES.iter().enumerate() {
        tr.round(Round::Lag(lag));
        let line = tr.line(Role::Replica, None, 0);
        assert!(line.starts_with("replica: up - lag "), "round {i}: {line}");
        // A per-request bound sees the same median.
        let tight = tr.line(Role::Replica, Some(5), 0);
        assert!(
            tight.starts_with("replica: up - lag "),
            "round {i}: {tight}"
        );
    }
    assert_eq!(tr.changes, vec![], "zero transitions");
}

/// Lag hovering around the 30 s bound while a batch job runs, then draining off.
const HOVER: &[u64] = &[
    12, 20, 27, 29, 31, 30, 32, 29, 33, 31, 28, 30, 31, 34, 29, 27, 31, 26, 24, 22, 19, 17, 16, 14,
    15, 16, 13, 15, 14, 9, 8, 6, 4, 3, 2, 1, 0, 0, 0,
];

#[test]
fn lag_hovering_around_the_bound_moves_at_most_once_each_way() {
    let mut tr = Trace::new("max_replication_lag = \"30s\"");
    tr.rounds(lags(HOVER));
    let changes = tr.replica_changes();
    let downs = changes.iter().filter(|c| c.1 == State::Down).count();
    let ups = changes.iter().filter(|c| c.1 == State::Up).count();
    assert!(downs <= 1 && ups <= 1, "{changes:?}");
    assert_eq!(downs, 1, "{changes:?}");
    assert_eq!(ups, 1, "{changes:?}");
    // Back only after three judged lags at or below 15 s (half the bound): the
    // medians of [14,15,16], [15,16,13], [16,13,15] are 15, 15 and 15.
    let back = changes.iter().find(|c| c.1 == State::Up).unwrap().0;
    let first_at_or_below = HOVER.iter().position(|&l| l <= 15).unwrap() as u32 + 1;
    assert!(back >= first_at_or_below + 2, "{changes:?}");
    // Read-only on a replica follows the same judgement.
    let ro: Vec<_> = tr
        .changes
        .iter()
        .filter(|c| c.1 == Role::ReadOnly)
        .collect();
    assert_eq!(ro.len(), 2, "{ro:?}");
}

#[test]
fn the_reason_says_recovering_and_when_it_comes_back() {
    let mut tr = Trace::new("max_replication_lag = \"10s\"");
    tr.rounds(lags(&[0, 20, 20, 20]));
    assert_eq!(
        tr.line(Role::Replica, None, 0),
        "replica: down - replication lag 20s exceeds 10s"
    );
    tr.rounds(lags(&[7, 7, 7]));
    assert_eq!(
        tr.line(Role::Replica, None, 0),
        "replica: down - recovering: lag 7s, back at 5s"
    );
    tr.rounds(lags(&[4, 4]));
    assert_eq!(
        tr.line(Role::Replica, None, 0),
        "replica: down - recovering: lag 4s, back at 5s (1 of 3 rounds)"
    );
    tr.rounds(lags(&[4, 4]));
    assert_eq!(tr.line(Role::Replica, None, 0), "replica: up - lag 4s");
    // Up: to down at once (no hysteresis on the way out), but the median must move.
    tr.rounds(lags(&[30]));
    assert_eq!(tr.line(Role::Replica, None, 0), "replica: up - lag 4s");
    tr.rounds(lags(&[30]));
    assert_eq!(
        tr.line(Role::Replica, None, 0),
        "replica: down - replication lag 30s exceeds 10s"
    );
}

#[test]
fn per_request_bounds_recover_at_half_on_the_same_median() {
    let mut tr = Trace::new("max_replication_lag = \"60s\"");
    tr.rounds(lags(&[0, 25, 25, 25, 12, 12, 12]));
    // 20 s asked: went out at 25, 12 > 10 (half of 20): still recovering.
    assert_eq!(
        tr.line(Role::Replica, Some(20), 0),
        "replica: down - recovering: lag 12s, back at 10s"
    );
    // The configured bound never saw lag above it.
    assert_eq!(tr.line(Role::Replica, None, 0), "replica: up - lag 12s");
    tr.rounds(lags(&[10, 10, 10, 10]));
    assert_eq!(tr.line(Role::Replica, Some(20), 0), "replica: up - lag 10s");
}

#[test]
fn an_explicit_lag_recover_and_rounds_are_used() {
    let mut tr = Trace::new(
        "max_replication_lag = \"10s\"\nlag_recover = \"2s\"\nrecover_rounds = 1\nlag_samples = 1",
    );
    tr.rounds(lags(&[11, 5]));
    assert_eq!(
        tr.line(Role::Replica, None, 0),
        "replica: down - recovering: lag 5s, back at 2s"
    );
    tr.rounds(lags(&[2]));
    assert_eq!(tr.line(Role::Replica, None, 0), "replica: up - lag 2s");
    // lag_samples = 1: a spike counts at once.
    tr.rounds(lags(&[60_000]));
    assert!(tr.line(Role::Replica, None, 0).contains("exceeds"));
}

#[test]
fn stopped_replication_neither_confirms_nor_restarts_recovery() {
    let mut tr = Trace::new("max_replication_lag = \"10s\"");
    tr.rounds(lags(&[0, 20, 20, 3, 3]));
    tr.rounds([Round::SqlStopped]);
    assert_eq!(
        tr.line(Role::Replica, None, 0),
        "replica: down - replication SQL thread not running (channel '': No)"
    );
    // The median starts afresh after the stop; the recovery count went on where it was.
    tr.rounds(lags(&[3]));
    assert_eq!(
        tr.line(Role::Replica, None, 0),
        "replica: down - recovering: lag 3s, back at 5s (2 of 3 rounds)"
    );
    tr.rounds(lags(&[3]));
    assert_eq!(tr.line(Role::Replica, None, 0), "replica: up - lag 3s");
}

#[test]
fn a_full_server_drains_for_the_grace_then_is_down() {
    let mut tr = Trace::new("full_grace = \"5s\"");
    tr.rounds([Round::Fine, Round::Fine, Round::Full]);
    for role in [Role::Health, Role::Replica] {
        assert_eq!(
            tr.line(role, None, 0),
            format!("{}: maintenance - full: too many connections", role.name())
        );
    }
    tr.rounds([Round::Full, Round::Full, Round::Full]);
    assert_eq!(
        tr.line(Role::Health, None, 1),
        "health: maintenance - full: too many connections"
    );
    // Five seconds after the first refused round: down, saying why.
    assert_eq!(
        tr.line(Role::Health, None, 2),
        "health: down - too many connections (error 1040), full for more than 5s"
    );
    tr.rounds([Round::Full, Round::Full]);
    assert_eq!(
        tr.line(Role::Health, None, 0).split(" - ").next(),
        Some("health: down")
    );
    // A slot again: up, and the next episode gets a new grace.
    tr.rounds([Round::Fine, Round::Full]);
    assert_eq!(
        tr.line(Role::Health, None, 0),
        "health: maintenance - full: too many connections"
    );
    let health: Vec<_> = tr
        .changes
        .iter()
        .filter(|c| c.1 == Role::Health)
        .map(|c| c.2)
        .collect();
    assert_eq!(
        health,
        [
            State::Maintenance,
            State::Down,
            State::Up,
            State::Maintenance
        ]
    );
}

#[test]
fn full_grace_zero_is_down_at_once() {
    let mut tr = Trace::new("full_grace = \"0s\"");
    tr.rounds([Round::Full]);
    assert_eq!(
        tr.line(Role::Health, None, 0),
        "health: down - too many connections (error 1040)"
    );
}

#[test]
fn a_returning_replica_ramps_but_not_after_start() {
    let mut tr = Trace::new("max_replication_lag = \"10s\"\nrecover_rounds = 1\nlag_samples = 1");
    tr.rounds(lags(&[0, 0]));
    let s = tr.last.as_ref().unwrap();
    assert_eq!(s.policy.back_for(Role::Replica, s.taken), None);
    tr.rounds(lags(&[20, 20, 0, 0]));
    let s = tr.last.as_ref().unwrap();
    assert_eq!(tr.line(Role::Replica, None, 0), "replica: up - lag 0s");
    // Up since the round before: one second back.
    assert_eq!(
        s.policy.back_for(Role::Replica, s.taken),
        Some(Duration::from_secs(1))
    );
    // The health role never went down: no ramp for it.
    assert_eq!(s.policy.back_for(Role::Health, s.taken), None);
}

/// The timeline in the README ("Verdict policy"), round by round.
#[test]
fn the_readme_timeline() {
    let mut tr = Trace::new("max_replication_lag = \"10s\"");
    let rows: &[(u64, &str)] = &[
        (2, "replica: up - lag 2s"),
        (60_000, "replica: up - lag 2s"),
        (3, "replica: up - lag 3s"),
        (3, "replica: up - lag 3s"),
        (20, "replica: up - lag 3s"),
        (20, "replica: down - replication lag 20s exceeds 10s"),
        (7, "replica: down - replication lag 20s exceeds 10s"),
        (4, "replica: down - recovering: lag 7s, back at 5s"),
        (
            4,
            "replica: down - recovering: lag 4s, back at 5s (1 of 3 rounds)",
        ),
        (
            4,
            "replica: down - recovering: lag 4s, back at 5s (2 of 3 rounds)",
        ),
        (4, "replica: up - lag 4s"),
    ];
    for (i, (lag, want)) in rows.iter().enumerate() {
        tr.round(Round::Lag(*lag));
        assert_eq!(tr.line(Role::Replica, None, 0), *want, "round {}", i + 1);
    }
}
