//! What a prober (`checker::run`) counts into: the process's round histogram and
//! transitions, probe errors by reason, which in fleet mode are its own target's
//! (`mysqlchk_probe_errors_total{target,reason}`) and otherwise the process's, and in
//! fleet mode its target's rounds (`mysqlchk_target_rounds_total{target}`), so an
//! error share can be judged per target (alert `MysqlchkProbeErrors`).
//!
//! Invariants: a target's counters (errors and rounds, one [`TargetCounters`]) live
//! exactly as long as its prober: they are registered when `fleet::probers` starts it
//! and forgotten when it stops it (a target removed by a reload or forgotten by
//! discovery), so a removed target's series disappear and one added again under the
//! same name starts from zero, errors and rounds together (a ratio of the two never
//! mixes two lives of a name); a stopped prober's last increments land in counters no
//! one reads any more. A target's round is counted in the same call that counts it in
//! the process's histogram (`ProberMetrics::round`), never elsewhere. The single-server
//! path counts into the process's atomics as it always did (one branch more) and has
//! no round counter of its own: the histogram's count is it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Metrics;
use crate::facts::Reason;
use crate::role::Role;
use crate::verdict::State;

/// Probe errors by reason, in `Reason::ALL` order.
pub(crate) struct ProbeErrors(Vec<AtomicU64>);

impl Default for ProbeErrors {
    fn default() -> Self {
        ProbeErrors(Reason::ALL.iter().map(|_| AtomicU64::new(0)).collect())
    }
}

impl ProbeErrors {
    pub(crate) fn add(&self, reason: Reason) {
        if let Some(c) = Reason::ALL
            .iter()
            .position(|&r| r == reason)
            .and_then(|i| self.0.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count for `Reason::ALL[i]`.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Fleet mode: what one target's prober counts of its own.
#[derive(Default)]
pub(crate) struct TargetCounters {
    pub(crate) errors: ProbeErrors,
    /// Rounds completed (the denominator of its error share).
    rounds: AtomicU64,
}

impl TargetCounters {
    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }
}

/// One prober's handle on the metrics (cheap to clone: two `Arc`s).
#[derive(Clone)]
pub struct ProberMetrics {
    metrics: Arc<Metrics>,
    /// Fleet mode: its target's counters; `None`: the process's.
    target: Option<Arc<TargetCounters>>,
}

impl ProberMetrics {
    pub(super) fn new(metrics: Arc<Metrics>, target: Option<Arc<TargetCounters>>) -> Self {
        ProberMetrics { metrics, target }
    }

    pub fn probe_error(&self, reason: Reason) {
        match &self.target {
            Some(t) => t.errors.add(reason),
            None => self.metrics.probe_error(reason),
        }
    }

    /// One probe round took `d`: the process's histogram, whichever target, and in
    /// fleet mode its target's round count too.
    pub fn round(&self, d: std::time::Duration) {
        self.metrics.round(d);
        if let Some(t) = &self.target {
            t.rounds.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The checker saw `role`'s verdict change to `to` (exported without a `target`
    /// label only: fleet mode counts its own, on the fleet-wide verdicts).
    pub fn transition(&self, role: Role, to: State) {
        self.metrics.transition(role, to);
    }
}
