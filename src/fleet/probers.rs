//! One prober per target (README "Fleet mode"): each target's rounds run in their own
//! supervised task (`checker::run`), started at its offset within the interval.
//!
//! Invariants: a hung or unreachable target only ever holds its own task, so it never
//! delays another's rounds; each task keeps one MySQL connection to its target; a
//! reload (`apply`) stops removed targets, starts added ones and hands changed settings
//! to the running task of a kept one (its connection and snapshot cell stay, so its
//! round count goes on); unchanged targets are not touched at all.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{spread, Fleet};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::snapshot::VerdictNews;

struct Running {
    config: Arc<ArcSwap<Config>>,
    reconfigured: Arc<Notify>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub(crate) struct Probers {
    running: HashMap<String, Running>,
    metrics: Arc<Metrics>,
    /// Rung by every prober whose verdicts changed (the HAProxy pushers wait on it).
    news: VerdictNews,
    shutdown: CancellationToken,
    /// Where the probers run: a runtime of their own, so that checks are never queued
    /// behind a thousand rounds on the responders' workers (README, "Fleet mode").
    runtime: tokio::runtime::Handle,
}

impl Probers {
    /// Start one prober per target of `fleet` on `runtime`, spread over the interval.
    pub(crate) fn start(
        fleet: &Fleet,
        metrics: Arc<Metrics>,
        news: VerdictNews,
        shutdown: CancellationToken,
        runtime: tokio::runtime::Handle,
    ) -> Probers {
        let mut p = Probers {
            running: HashMap::new(),
            metrics,
            news,
            shutdown,
            runtime,
        };
        p.apply(fleet);
        p
    }

    /// Bring the running probers in line with `fleet` (after a reload).
    pub(crate) fn apply(&mut self, fleet: &Fleet) {
        let n = fleet.targets().len();
        let metrics = &self.metrics;
        self.running.retain(|name, r| {
            let keep = fleet.get(name).is_some();
            if !keep {
                tracing::info!(target_name = %name, "target removed: its prober stops");
                r.stop.cancel();
                metrics.forget_target(name);
            }
            keep
        });
        for (i, t) in fleet.targets().iter().enumerate() {
            if let Some(r) = self.running.get(&t.name) {
                let old = r.config.load();
                if old.mysql != t.config.mysql || old.check != t.config.check {
                    r.config.store(t.config.clone());
                    r.reconfigured.notify_one();
                }
                continue;
            }
            let config = Arc::new(ArcSwap::new(t.config.clone()));
            let reconfigured = Arc::new(Notify::new());
            let stop = self.shutdown.child_token();
            let delay = spread::offset(i, n, t.config.check.interval);
            // In fleet mode every line the prober logs names its target.
            let span = if fleet.is_named() {
                tracing::info_span!("target", name = %t.name)
            } else {
                tracing::Span::none()
            };
            let news = self.news.clone();
            let task = self.runtime.spawn({
                // In fleet mode its probe errors are counted under its name.
                let metrics = self
                    .metrics
                    .prober(fleet.is_named().then_some(t.name.as_str()));
                let (config, published) = (config.clone(), t.published.clone());
                let (reconfigured, stop) = (reconfigured.clone(), stop.clone());
                async move {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return,
                    }
                    crate::checker::run(config, published, metrics, reconfigured, news, stop).await
                }
                .instrument(span)
            });
            if fleet.is_named() {
                tracing::info!(target_name = %t.name, server = %t.config.mysql.target, "target watched");
            }
            self.running.insert(
                t.name.clone(),
                Running {
                    config,
                    reconfigured,
                    stop,
                    task,
                },
            );
        }
    }

    /// The bell the probers ring; also rung after the fleet itself changed.
    pub(crate) fn news(&self) -> &VerdictNews {
        &self.news
    }

    /// Wait (bounded by the caller) for every prober to end after shutdown.
    pub(crate) async fn join(self) {
        for (_, r) in self.running {
            r.stop.cancel();
            let _ = r.task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn errors(metrics: &Metrics, fleet: &Fleet, name: &str) -> Option<u64> {
        let series =
            format!("mysqlchk_probe_errors_total{{target=\"{name}\",reason=\"refused\"}} ");
        metrics
            .render(fleet.targets(), fleet.is_named(), false, Instant::now())
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.parse().ok())
    }

    /// Fleet mode: each prober counts its probe errors under its target's name (a
    /// closed loopback port: `refused`), and a removed target's counts go with its
    /// prober, so the target added back starts from zero.
    #[test]
    fn probe_errors_are_counted_per_target_and_forgotten_with_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = closed.local_addr().unwrap().port();
            drop(closed);
            let both =
                crate::fleet::tests::fleet(&[("a", "127.0.0.1", port), ("b", "127.0.0.1", port)]);
            let metrics = Arc::new(Metrics::new());
            let shutdown = CancellationToken::new();
            let mut p = Probers::start(
                &both,
                metrics.clone(),
                Default::default(),
                shutdown.clone(),
                tokio::runtime::Handle::current(),
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while errors(&metrics, &both, "a").unwrap_or(0) == 0 {
                assert!(Instant::now() < deadline, "no refused error counted for a");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let only_b = crate::fleet::tests::fleet(&[("b", "127.0.0.1", port)]);
            p.apply(&only_b);
            p.apply(&both);
            // Added back: a new target, its count from zero (its prober has not run
            // yet: nothing was awaited since).
            assert_eq!(errors(&metrics, &both, "a"), Some(0));
            shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(10), p.join())
                .await
                .expect("the probers stop");
        });
    }
}
