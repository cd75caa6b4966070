//! The immutable result of one probe round, and the handle responders read it through.
//!
//! Invariants: a published [`Snapshot`] never changes; readers take one atomic load
//! (`ArcSwap`) and never wait for the prober; `taken` is on the monotonic clock, so
//! staleness does not depend on wall-clock jumps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;

use crate::facts::Facts;
use crate::facts::ProbeError;
use crate::maintenance::Maintenance;
use crate::policy::Policy;

#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Round number since the prober (re)started.
    pub seq: u64,
    /// When the round finished (monotonic).
    pub taken: Instant,
    /// The same moment on the wall clock, for `/status`.
    pub wall: SystemTime,
    pub duration: Duration,
    pub outcome: Result<Facts, ProbeError>,
    pub maintenance: Option<Maintenance>,
    /// What the checker remembers from earlier rounds, this one included (a direct
    /// round remembers only itself).
    pub(crate) policy: Policy,
}

/// What every responder shares: the latest snapshot and the prober's heartbeat.
pub struct Published {
    snapshot: ArcSwapOption<Snapshot>,
    /// Milliseconds since `epoch` of the checker loop's last progress (for `/live`).
    progress_ms: AtomicU64,
    epoch: Instant,
}

impl Default for Published {
    fn default() -> Self {
        Self::new()
    }
}

impl Published {
    pub fn new() -> Published {
        Published {
            snapshot: ArcSwapOption::empty(),
            progress_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn publish(&self, s: Snapshot) {
        self.snapshot.store(Some(Arc::new(s)));
        self.beat();
    }

    /// Forget the snapshot: a new MySQL target starts again at `starting`.
    pub fn reset(&self) {
        self.snapshot.store(None);
    }

    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.load_full()
    }

    /// The checker loop made progress.
    pub fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.progress_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// Time since the checker loop last made progress; `None` before it ever did.
    pub fn since_progress(&self, now: Instant) -> Option<Duration> {
        let ms = self.progress_ms.load(Ordering::Relaxed);
        if ms == 0 {
            return None;
        }
        let at = self.epoch + Duration::from_millis(ms);
        Some(now.saturating_duration_since(at))
    }
}
