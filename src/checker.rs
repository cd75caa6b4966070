//! The periodic loop: one probe round per `check.interval`, never two at once, each
//! published as an immutable snapshot; transitions and error episodes logged once.
//!
//! Invariants: a round's result (also a failure) is published as soon as it ends; the
//! loop beats the heartbeat `/live` reads every iteration; a panic in a round is
//! caught by the supervisor, published as `internal` and the loop restarted (a health
//! checker that aborts on every host at once is the worst failure it can have).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Check, Config};
use crate::maintenance;
use crate::metrics::Metrics;
use crate::probe::{Probe, ProbeError, Reason, Step};
use crate::snapshot::{Shared, Snapshot};
use crate::verdict::{evaluate, Role, State};

/// Run one direct round (for `check` and `inetd`): connect, read, close.
pub async fn direct_round(config: &Config) -> Snapshot {
    let mut probe = Probe::new(config.mysql.clone(), &config.check);
    let started = Instant::now();
    let outcome = probe.round().await;
    probe.close().await;
    snapshot(1, started, outcome, &config.check).await
}

async fn snapshot(
    seq: u64,
    started: Instant,
    outcome: Result<crate::facts::Facts, ProbeError>,
    check: &Check,
) -> Snapshot {
    // Off the async workers and under the round's deadline: a FIFO or a hung mount
    // must not hold a worker (nor the loop), and still reads as maintenance.
    let maintenance = maintenance::read_async(&check.maintenance_file, check.timeout).await;
    let taken = Instant::now();
    Snapshot {
        seq,
        taken,
        wall: SystemTime::now(),
        duration: taken - started,
        outcome,
        maintenance,
    }
}

/// Remembers what was last logged so that logs say what changed, once.
#[derive(Default)]
pub struct Transitions {
    states: HashMap<Role, State>,
    episode: Option<Reason>,
}

impl Transitions {
    /// Log what changed between the previous snapshot and `snap`.
    pub fn observe(&mut self, snap: &Snapshot, check: &Check) {
        let mut changed = Vec::new();
        let mut why = None;
        let first = self.states.is_empty();
        for &role in Role::ALL {
            let v = evaluate(Some(snap), snap.taken, check, role, None);
            let before = self.states.insert(role, v.state);
            let before = before.unwrap_or(State::Starting);
            if before != v.state {
                changed.push(format!(
                    "{} {}->{}",
                    role.name(),
                    before.as_str(),
                    v.state.as_str()
                ));
                if why.is_none() && v.state != State::Up {
                    why = Some(v.line());
                }
            }
        }
        if !changed.is_empty() {
            // The first verdicts after start are news, not trouble: a primary's
            // `replica` role is down by design.
            match why {
                Some(w) if !first => tracing::warn!("{}: {}", changed.join(", "), w),
                Some(w) => tracing::info!("{}: {}", changed.join(", "), w),
                None => tracing::info!("{}", changed.join(", ")),
            }
        }
        // Error episodes: logged when they start, not every interval.
        let reason = snap.outcome.as_ref().err().map(|e| e.reason);
        if reason != self.episode {
            if let Err(e) = &snap.outcome {
                if e.reason.is_auth() {
                    tracing::error!(
                        reason = e.reason.as_str(),
                        "the checker's own MySQL account is refused ({}): every role is down; \
                         account changes replicate, so every node probably reports this at the \
                         same moment — check the account, not the servers",
                        e.phrase()
                    );
                } else {
                    tracing::warn!(
                        reason = e.reason.as_str(),
                        step = e.step.as_str(),
                        "probe failing: {} ({})",
                        e.phrase(),
                        crate::facts::redact(&e.detail)
                    );
                }
            } else if let Some(old) = self.episode {
                tracing::info!("probe recovered after {} errors", old.as_str());
            }
            self.episode = reason;
        }
    }
}

/// The supervised loop. Returns when `shutdown` fires. `reconfigured` is notified by
/// reload with the new config already stored in `config`.
pub async fn run(
    config: Arc<ArcSwap<Config>>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    reconfigured: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut transitions = Transitions::default();
    let mut seq = 0u64;
    loop {
        let task = tokio::spawn(rounds(
            config.clone(),
            shared.clone(),
            metrics.clone(),
            reconfigured.clone(),
            shutdown.clone(),
            seq,
            std::mem::take(&mut transitions),
        ));
        match task.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                seq += 1_000_000;
                let cfg = config.load_full();
                tracing::error!("internal error in a probe round (a bug): the round counts as down; restarting the checker");
                let s = snapshot(
                    seq,
                    Instant::now(),
                    Err(ProbeError {
                        reason: Reason::Internal,
                        step: Step::Core,
                        code: None,
                        detail: "panic in probe round".into(),
                    }),
                    &cfg.check,
                )
                .await;
                metrics.probe_error(Reason::Internal);
                shared.publish(s);
                tokio::select! {
                    _ = tokio::time::sleep(cfg.check.interval) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(_) => return,
        }
    }
}

async fn rounds(
    config: Arc<ArcSwap<Config>>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    reconfigured: Arc<Notify>,
    shutdown: CancellationToken,
    mut seq: u64,
    mut transitions: Transitions,
) {
    let mut cfg = config.load_full();
    let mut probe = Probe::new(cfg.mysql.clone(), &cfg.check);
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            o = probe.round() => o,
            _ = shutdown.cancelled() => break,
        };
        seq += 1;
        if let Err(e) = &outcome {
            metrics.probe_error(e.reason);
        }
        let snap = snapshot(seq, started, outcome, &cfg.check).await;
        metrics.round(snap.duration);
        transitions.observe(&snap, &cfg.check);
        shared.publish(snap);
        let next = tokio::time::Instant::from_std(started + cfg.check.interval);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = reconfigured.notified() => {
                let new = config.load_full();
                if new.mysql.target != cfg.mysql.target {
                    // A different server: nothing we knew applies any more.
                    shared.reset();
                    transitions = Transitions::default();
                }
                probe.reconfigure(new.mysql.clone(), &new.check).await;
                cfg = new;
            }
            _ = shutdown.cancelled() => break,
        }
        shared.beat();
    }
    probe.close().await;
}
