//! The periodic loop: one probe round per `check.interval`, never two at once, each
//! published as an immutable snapshot; transitions and error episodes logged once.
//! The checker owns the verdict policy's memory (`crate::policy`): it advances it once
//! per round and copies it into the snapshot before publishing.
//!
//! Invariants: a round's result (also a failure) is published as soon as it ends; the
//! loop beats the heartbeat `/live` reads every iteration; a panic in a round is
//! caught by the supervisor, published as `internal` and the loop restarted (a health
//! checker that aborts on every host at once is the worst failure it can have).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Check, Config};
use crate::facts::{ProbeError, Reason, Step};
use crate::maintenance;
use crate::metrics::ProberMetrics;
use crate::policy::Policy;
use crate::probe::Probe;
use crate::role::Role;
use crate::snapshot::{Published, Snapshot, VerdictNews};
use crate::verdict::{evaluate, round_lag, State};

/// Run one direct round (for `check` and `inetd`): connect, read, close.
pub async fn direct_round(config: &Config) -> Snapshot {
    let mut probe = Probe::new(config.mysql.clone(), &config.check);
    let started = Instant::now();
    let outcome = probe.round().await;
    probe.close().await;
    let mut snap = snapshot(1, started, outcome, &config.check).await;
    // One round remembers only itself: median and hysteresis judge this round alone,
    // and a full server drains (its grace starts now).
    let mut policy = Policy::default();
    advance(&mut policy, &snap, &config.check);
    snap.policy = policy;
    snap
}

/// Feed a finished round to the policy.
fn advance(policy: &mut Policy, snap: &Snapshot, check: &Check) {
    let lag = snap.outcome.as_ref().ok().and_then(|f| round_lag(f, check));
    policy.advance(&snap.outcome, lag, snap.taken, check);
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
        policy: Policy::default(),
    }
}

/// Remembers what was last logged so that logs say what changed, once, and the
/// verdict policy's memory across rounds.
#[derive(Default)]
pub struct Transitions {
    states: HashMap<Role, State>,
    episode: Option<Reason>,
    policy: Policy,
}

/// A change of error episode: a round failing for a new reason, or the first success
/// after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Episode {
    Started(Reason),
    Ended(Reason),
}

impl Transitions {
    /// The episode change `reason` (the round's failure, if any) makes, if any.
    fn episode(&mut self, reason: Option<Reason>) -> Option<Episode> {
        if reason == self.episode {
            return None;
        }
        match (reason, std::mem::replace(&mut self.episode, reason)) {
            (Some(r), _) => Some(Episode::Started(r)),
            (None, Some(old)) => Some(Episode::Ended(old)),
            (None, None) => None,
        }
    }

    /// Take in the round `snap` (filling in its policy memory), log what changed since
    /// the previous one, and return the roles whose verdict changed, with their new state.
    pub fn observe(&mut self, snap: &mut Snapshot, check: &Check) -> Vec<(Role, State)> {
        advance(&mut self.policy, snap, check);
        snap.policy = self.policy.clone();
        let mut changed = Vec::new();
        let mut moved = Vec::new();
        let mut why = None;
        let first = self.states.is_empty();
        for &role in Role::ALL {
            let v = evaluate(Some(snap), snap.taken, check, role, None);
            self.policy.note(role, v.state == State::Up, snap.taken);
            let before = self.states.insert(role, v.state);
            let before = before.unwrap_or(State::Starting);
            if before != v.state {
                moved.push((role, v.state));
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
        // The weight ramp needs this round's verdicts too.
        snap.policy = self.policy.clone();
        self.log_episode(snap);
        moved
    }

    /// Error episodes: logged when they start, not every interval.
    fn log_episode(&mut self, snap: &Snapshot) {
        let reason = snap.outcome.as_ref().err().map(|e| e.reason);
        match self.episode(reason) {
            None => {}
            Some(Episode::Ended(old)) => {
                tracing::info!("probe recovered after {} errors", old.as_str());
            }
            Some(Episode::Started(_)) => {
                let Err(e) = &snap.outcome else { return };
                if e.reason == Reason::Internal {
                    tracing::error!(
                        reason = e.reason.as_str(),
                        step = e.step.as_str(),
                        "{} ({}): the round counts as down; the checker goes on",
                        e.phrase(),
                        crate::facts::redact(&e.detail)
                    );
                } else if e.reason.is_auth() {
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
            }
        }
    }
}

/// The supervised loop. Returns when `shutdown` fires. `reconfigured` is notified by
/// reload with the new config already stored in `config`.
pub async fn run(
    config: Arc<ArcSwap<Config>>,
    published: Arc<Published>,
    metrics: ProberMetrics,
    reconfigured: Arc<Notify>,
    news: VerdictNews,
    shutdown: CancellationToken,
) {
    // Shared with the rounds task so that a panic does not lose what was logged: a
    // panic every round is one episode, logged once (at ERROR) and once when it ends.
    let transitions = Arc::new(Mutex::new(Transitions::default()));
    let mut seq = 0u64;
    loop {
        let task = tokio::spawn(rounds(
            config.clone(),
            published.clone(),
            metrics.clone(),
            reconfigured.clone(),
            news.clone(),
            shutdown.clone(),
            seq,
            transitions.clone(),
        ));
        match task.await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                seq += 1_000_000;
                let cfg = config.load_full();
                let mut s = snapshot(
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
                for (role, to) in lock(&transitions).observe(&mut s, &cfg.check) {
                    metrics.transition(role, to);
                }
                published.publish(s);
                news.tell();
                tokio::select! {
                    _ = tokio::time::sleep(cfg.check.interval) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(_) => return,
        }
    }
}

// The supervisor's whole context, handed down so that a restart after a panic keeps it.
#[allow(clippy::too_many_arguments)]
async fn rounds(
    config: Arc<ArcSwap<Config>>,
    published: Arc<Published>,
    metrics: ProberMetrics,
    reconfigured: Arc<Notify>,
    news: VerdictNews,
    shutdown: CancellationToken,
    mut seq: u64,
    transitions: Arc<Mutex<Transitions>>,
) {
    let mut cfg = config.load_full();
    let mut probe = Probe::new(cfg.mysql.clone(), &cfg.check);
    let mut last_maintenance = false;
    loop {
        let started = Instant::now();
        let mut outcome = tokio::select! {
            o = probe.round() => o,
            _ = shutdown.cancelled() => break,
        };
        if matches!(&outcome, Err(e) if found_closed(e)) {
            // The kept connection was closed under us (killed, the server's
            // wait_timeout, a restart): that says nothing about the server yet, and a
            // full server is only seen on a new connect. Reconnect once, this round, so
            // a full server drains instead of going down first (README, "Verdict
            // policy"); a dead one is refused at once.
            metrics.probe_error(Reason::Io);
            tracing::debug!("the kept connection was closed; reconnecting in this round");
            outcome = tokio::select! {
                o = probe.round() => o,
                _ = shutdown.cancelled() => break,
            };
        }
        seq += 1;
        match &outcome {
            Err(e) => metrics.probe_error(e.reason),
            Ok(f) => f.errors().into_iter().for_each(|r| metrics.probe_error(r)),
        }
        let mut snap = snapshot(seq, started, outcome, &cfg.check).await;
        metrics.round(snap.duration);
        let moved = lock(&transitions).observe(&mut snap, &cfg.check);
        for &(role, to) in &moved {
            metrics.transition(role, to);
        }
        // The pushers (`[[haproxy]]`) learn of a change as soon as the responders see it
        // (a maintenance flag set on a server that is down changes no state, but drains).
        let maintenance = snap.maintenance.is_some();
        let news_now = !moved.is_empty() || maintenance != last_maintenance;
        last_maintenance = maintenance;
        published.publish(snap);
        if news_now {
            news.tell();
        }
        let next = tokio::time::Instant::from_std(
            // Never overflows with a validated interval (at most a day); if it did, the
            // next round would start at once instead of the task panicking.
            started.checked_add(cfg.check.interval).unwrap_or(started),
        );
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = reconfigured.notified() => {
                let new = config.load_full();
                if new.mysql.target != cfg.mysql.target {
                    // A different server: nothing we knew applies any more.
                    published.reset();
                    news.tell();
                    *lock(&transitions) = Transitions::default();
                }
                probe.reconfigure(new.mysql.clone(), &new.check).await;
                cfg = new;
            }
            _ = shutdown.cancelled() => break,
        }
        published.beat();
    }
    probe.close().await;
}

/// A round that failed because its kept connection was found closed at the first
/// query (nothing was learned about the server).
fn found_closed(e: &ProbeError) -> bool {
    e.reason == Reason::Io && e.step == Step::Core
}

/// The lock is only held for a (synchronous) `observe`; a panic inside one leaves the
/// state as good as it was, so a poisoned lock is used as it is.
fn lock(t: &Mutex<Transitions>) -> std::sync::MutexGuard<'_, Transitions> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Captures formatted log lines in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn internal() -> Snapshot {
        let cfg =
            crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &Default::default())
                .unwrap()
                .config;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(snapshot(
            1,
            Instant::now(),
            Err(ProbeError {
                reason: Reason::Internal,
                step: Step::Core,
                code: None,
                detail: "panic in probe round".into(),
            }),
            &cfg.check,
        ))
    }

    /// A round that panics every interval: one ERROR line, and the transition line.
    #[test]
    fn repeated_internal_errors_log_one_error() {
        let check =
            crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &Default::default())
                .unwrap()
                .config
                .check;
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut t = Transitions::default();
            for _ in 0..5 {
                t.observe(&mut internal(), &check);
            }
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let errors = text.lines().filter(|l| l.contains("ERROR")).count();
        assert_eq!(errors, 1, "{text}");
        assert!(text.contains("health starting->down"), "{text}");
    }

    #[test]
    fn an_episode_is_reported_once_when_it_starts_and_once_when_it_ends() {
        let mut t = Transitions::default();
        let seen: Vec<_> = [
            None,
            Some(Reason::Internal),
            Some(Reason::Internal),
            Some(Reason::Internal),
            Some(Reason::Timeout),
            None,
            None,
        ]
        .into_iter()
        .filter_map(|r| t.episode(r))
        .collect();
        assert_eq!(
            seen,
            [
                Episode::Started(Reason::Internal),
                Episode::Started(Reason::Timeout),
                Episode::Ended(Reason::Timeout),
            ]
        );
    }
}
