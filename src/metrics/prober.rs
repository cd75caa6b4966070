//! What a prober (`checker::run`) counts into: the process's round histogram and
//! transitions, and probe errors by reason, which in fleet mode are its own target's
//! (`mysqlchk_probe_errors_total{target,reason}`) and otherwise the process's.
//!
//! Invariants: a target's error counters live exactly as long as its prober: they are
//! registered when `fleet::probers` starts it and forgotten when it stops it (a target
//! removed by a reload or forgotten by discovery), so a removed target's series
//! disappear and one added again under the same name starts from zero; a stopped
//! prober's last increments land in counters no one reads any more. The single-server
//! path counts into the process's atomics as it always did (one branch more).

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

/// One prober's handle on the metrics (cheap to clone: two `Arc`s).
#[derive(Clone)]
pub struct ProberMetrics {
    metrics: Arc<Metrics>,
    /// Fleet mode: its target's probe errors; `None`: the process's.
    errors: Option<Arc<ProbeErrors>>,
}

impl ProberMetrics {
    pub(super) fn new(metrics: Arc<Metrics>, errors: Option<Arc<ProbeErrors>>) -> Self {
        ProberMetrics { metrics, errors }
    }

    pub fn probe_error(&self, reason: Reason) {
        match &self.errors {
            Some(e) => e.add(reason),
            None => self.metrics.probe_error(reason),
        }
    }

    /// One probe round took `d` (the process's histogram, whichever target).
    pub fn round(&self, d: std::time::Duration) {
        self.metrics.round(d);
    }

    /// The checker saw `role`'s verdict change to `to` (exported without a `target`
    /// label only: fleet mode counts its own, on the fleet-wide verdicts).
    pub fn transition(&self, role: Role, to: State) {
        self.metrics.transition(role, to);
    }
}
