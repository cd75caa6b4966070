//! The verdict policy's memory: what one round alone cannot tell (README, "Verdict
//! policy"). Judged lag is the median of the last `check.lag_samples` rounds; a replica
//! out on lag comes back only after `check.recover_rounds` judged lags at or below
//! `check.lag_recover`; a server answering "too many connections" is full, not dead, for
//! `check.full_grace`; a role that comes back up ramps its agent weight over `agent.ramp`.
//!
//! Invariants: pure state machines, advanced only by the checker (one step per round)
//! and copied whole into each snapshot, so responders judge without locks or I/O; the
//! memory is bounded ([`HISTORY`] rounds); no panics.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Check;
use crate::facts::{Facts, ProbeError, Reason};
use crate::role::Role;

/// Judged lags kept for replaying the hysteresis for a per-request bound (`?lag=`):
/// at one round a second, about two minutes of memory.
pub(crate) const HISTORY: usize = 128;

/// The bounds one hysteresis runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Out when the judged lag exceeds this.
    pub(crate) out_above: Duration,
    /// Back only at or below this...
    pub(crate) back_at: Duration,
    /// ...for this many consecutive rounds.
    pub(crate) rounds: u32,
}

impl Bounds {
    /// The configured bound, or a per-request one (which recovers at half itself).
    pub(crate) fn for_bound(bound: Duration, check: &Check) -> Bounds {
        let back_at = if bound == check.max_replication_lag {
            check.lag_recover
        } else {
            bound / 2
        };
        Bounds {
            out_above: bound,
            back_at,
            rounds: check.recover_rounds.max(1),
        }
    }
}

/// Where a replica stands against one lag bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Gate {
    /// Serving: the judged lag has not exceeded the bound since it last recovered.
    #[default]
    In,
    /// Out on lag; `good` consecutive judged lags have been at or below `back_at`.
    Out { good: u32 },
}

impl Gate {
    /// One round. A round without a known lag (threads stopped, round failed) neither
    /// confirms nor refutes recovery: the replica is down for that reason anyway.
    pub(crate) fn step(self, judged: Option<u64>, b: &Bounds) -> Gate {
        let Some(lag) = judged else { return self };
        let lag = Duration::from_secs(lag);
        if lag > b.out_above {
            return Gate::Out { good: 0 };
        }
        match self {
            Gate::In => Gate::In,
            Gate::Out { .. } if lag > b.back_at => Gate::Out { good: 0 },
            Gate::Out { good } if good + 1 >= b.rounds => Gate::In,
            Gate::Out { good } => Gate::Out { good: good + 1 },
        }
    }
}

/// Run the gate over judged lags, oldest first, starting in.
pub(crate) fn replay(judged: impl IntoIterator<Item = Option<u64>>, b: &Bounds) -> Gate {
    judged.into_iter().fold(Gate::In, |g, l| g.step(l, b))
}

/// The lower median: with an even count the smaller middle value, so that with two
/// samples a single spike is still ignored. `None` without samples.
pub(crate) fn median(samples: impl IntoIterator<Item = u64>) -> Option<u64> {
    let mut v: Vec<u64> = samples.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    v.get((v.len() - 1) / 2).copied()
}

/// The agent weight cap (percent) `since` after a role came back up: from `min` to
/// 100 linearly over `ramp`; 100 when it did not come back (or `ramp` is 0).
pub(crate) fn ramp_weight(since: Option<Duration>, ramp: Duration, min: u8) -> u8 {
    let Some(since) = since else { return 100 };
    if ramp.is_zero() || since >= ramp {
        return 100;
    }
    let frac = since.as_secs_f64() / ramp.as_secs_f64();
    let w = f64::from(min) + frac * (100.0 - f64::from(min));
    (w.floor() as u8).clamp(min.min(100), 100)
}

/// What the checker remembers across rounds; a copy rides in every snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Policy {
    /// Raw lags (the worst selected channel) of the latest rounds, newest last, at
    /// most `check.lag_samples`; cleared by a round without a known lag, so a median
    /// never mixes lags from before and after replication stopped.
    raw: VecDeque<u64>,
    /// The judged (median) lag of each of the last [`HISTORY`] rounds, newest last.
    judged: VecDeque<Option<u64>>,
    /// The hysteresis for the configured bound, advanced every round (exact however
    /// long ago the replica went out), and the bounds it ran with.
    gate: Gate,
    gate_bounds: Option<Bounds>,
    /// Since when every round has failed with "too many connections".
    full_since: Option<Instant>,
    /// Per role (in `Role::ALL` order): whether its last verdict was up (`None`
    /// before the first), and since when it has been up after coming back (not after
    /// the daemon started).
    last: [Option<bool>; 4],
    returned: [Option<Instant>; 4],
}

impl Policy {
    /// Take in one round: its outcome, the raw lag it measured (if any) and when it ended.
    pub(crate) fn advance(
        &mut self,
        outcome: &Result<Facts, ProbeError>,
        raw_lag: Option<u64>,
        taken: Instant,
        check: &Check,
    ) {
        match raw_lag {
            Some(l) => {
                self.raw.push_back(l);
                while self.raw.len() > check.lag_samples.max(1) as usize {
                    self.raw.pop_front();
                }
            }
            None => self.raw.clear(),
        }
        let judged = median(self.raw.iter().copied());
        self.judged.push_back(judged);
        while self.judged.len() > HISTORY {
            self.judged.pop_front();
        }
        let b = Bounds::for_bound(check.max_replication_lag, check);
        self.gate = if self.gate_bounds == Some(b) {
            self.gate.step(judged, &b)
        } else {
            // New bounds (start, reload): judge the remembered lags afresh.
            replay(self.judged.iter().copied(), &b)
        };
        self.gate_bounds = Some(b);
        let full = matches!(outcome, Err(e) if e.reason == Reason::TooManyConnections);
        self.full_since = match (full, self.full_since) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(taken),
            (false, _) => None,
        };
    }

    /// Take in whether `role` was judged up on the round that ended at `taken`.
    pub(crate) fn note(&mut self, role: Role, up: bool, taken: Instant) {
        let i = index(role);
        let before = self.last[i].replace(up);
        self.returned[i] = match (up, before) {
            // The first verdict after the daemon started is not a return: every
            // mysqlchk restarting at once must not shift all weight away.
            (true, None) => None,
            (true, Some(true)) => self.returned[i],
            (true, Some(false)) => Some(taken),
            (false, _) => None,
        };
    }

    /// The judged lag of the latest round, if it had one.
    pub(crate) fn judged_lag(&self) -> Option<u64> {
        self.judged.back().copied().flatten()
    }

    /// The gate for `bound` after the latest round: the machine the checker advanced
    /// for the configured bound, else a replay of the remembered judged lags.
    pub(crate) fn gate(&self, b: &Bounds) -> Gate {
        if self.gate_bounds.as_ref() == Some(b) {
            self.gate
        } else {
            replay(self.judged.iter().copied(), b)
        }
    }

    /// How long the server has been full, at `now`.
    pub(crate) fn full_for(&self, now: Instant) -> Option<Duration> {
        self.full_since.map(|s| now.saturating_duration_since(s))
    }

    /// How long `role` has been back up, at `now` (`None` if it did not come back).
    pub(crate) fn back_for(&self, role: Role, now: Instant) -> Option<Duration> {
        self.returned[index(role)].map(|t| now.saturating_duration_since(t))
    }
}

fn index(role: Role) -> usize {
    match role {
        Role::Health => 0,
        Role::Primary => 1,
        Role::Replica => 2,
        Role::ReadOnly => 3,
    }
}

#[cfg(test)]
mod tests;
