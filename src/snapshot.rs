//! The immutable result of one probe round, and the handle responders read it through.
//!
//! Invariants: a published [`Snapshot`] never changes; readers take one atomic load
//! (`ArcSwap`) and never wait for the prober; `taken` is on the monotonic clock, so
//! staleness does not depend on wall-clock jumps. Whoever must wait for a snapshot to
//! exist (the daemon, before it accepts on inherited sockets and before it tells
//! systemd it is ready) is told through a `watch` channel that `publish` and `reset`
//! update after the store, never by polling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

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
    /// Whether `snapshot` holds one, for [`Published::present`]. Responders never
    /// touch it: they keep their one atomic load.
    present: watch::Sender<bool>,
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
            present: watch::Sender::new(false),
            progress_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn publish(&self, s: Snapshot) {
        self.snapshot.store(Some(Arc::new(s)));
        // Stored first, so a waiter woken here finds it; waking only on the change
        // spares the rounds after the first any work for waiters.
        self.present
            .send_if_modified(|p| !std::mem::replace(p, true));
        self.beat();
    }

    /// Forget the snapshot: a new MySQL target starts again at `starting`.
    pub fn reset(&self) {
        self.snapshot.store(None);
        self.present.send_replace(false);
    }

    /// Resolves once a snapshot is published (at once if one is): the first round of
    /// the current target has completed. Cancel-safe; bound it with a timeout.
    pub async fn present(&self) {
        let mut rx = self.present.subscribe();
        // `wait_for` looks at the current value first, so a publish that happened
        // before we subscribed is not missed; it fails only if the sender is gone,
        // which cannot happen while `self` is borrowed.
        let _ = rx.wait_for(|&p| p).await;
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

/// One process-wide bell rung when some target's verdicts may have changed: a round
/// whose verdicts differ from the last, a fleet-wide decision, a reload or a discovery
/// pass. The HAProxy pushers wait on it instead of on every target's cell; ringing
/// never waits, and a ring nobody hears is lost harmlessly (pushers also look on a
/// heartbeat).
#[derive(Clone)]
pub(crate) struct VerdictNews(Arc<watch::Sender<u64>>);

impl Default for VerdictNews {
    fn default() -> Self {
        VerdictNews(Arc::new(watch::channel(0).0))
    }
}

impl VerdictNews {
    pub(crate) fn tell(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Reason, Step};

    fn snapshot() -> Snapshot {
        Snapshot {
            seq: 1,
            taken: Instant::now(),
            wall: SystemTime::now(),
            duration: Duration::ZERO,
            outcome: Err(ProbeError {
                reason: Reason::Refused,
                step: Step::Connect,
                code: None,
                detail: String::new(),
            }),
            maintenance: None,
            policy: Default::default(),
        }
    }

    /// `present` follows `publish` and `reset`: a new target waits for its own round.
    #[test]
    fn present_follows_publish_and_reset() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let p = Published::new();
            let short = Duration::from_millis(20);
            assert!(tokio::time::timeout(short, p.present()).await.is_err());
            p.publish(snapshot());
            p.publish(snapshot());
            tokio::time::timeout(short, p.present()).await.unwrap();
            p.reset();
            assert!(tokio::time::timeout(short, p.present()).await.is_err());
            p.publish(snapshot());
            tokio::time::timeout(short, p.present()).await.unwrap();
        });
    }
}
