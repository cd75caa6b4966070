//! `mysqlchk serve` wired together: the checker, one accept loop per listening socket,
//! and the control loop that acts on [`Event`]s — SIGTERM/SIGINT stop, SIGHUP reload,
//! SIGUSR2 hand over to a new binary. Sockets are prepared in `listeners`, reload and
//! hand-over live in their own files, systemd's protocol in `systemd`.
//!
//! Invariants:
//! - the config is validated and the sockets bound before the runtime starts;
//! - stopping stops accepting first, then gives in-flight requests a bounded grace;
//! - inherited sockets (systemd, or our own hand-over) are not accepted on until the
//!   first round completed (the daemon is told so by the published cell, bounded by a
//!   deadline), so a restart never answers `starting`;
//! - signal handlers are installed first thing, so a signal during that first-round
//!   wait is never fatal: a stop event stops at once, reload and hand-over events are
//!   queued and acted on once we accept;
//! - every signal becomes one [`Event`], and the control loop acts on events only, so
//!   a test can drive it without sending signals.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::fleet::discoverer::Discoverers;
use crate::fleet::probers::Probers;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::respond::accept::Responder;
use crate::respond::http_conn::http_loop;

mod handover;
mod listeners;
mod reload;
pub mod systemd;

use handover::{report_ready, HandOver};
pub use listeners::{prepare, Bound};
use systemd::{Notifier, Protocol};

const GRACE: Duration = Duration::from_secs(5);

/// One running accept loop.
struct Running {
    kind: Protocol,
    addr: SocketAddr,
    pinned: bool,
    fd: i32,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

struct Daemon {
    config: Arc<ArcSwap<Config>>,
    fleet: Arc<ArcSwap<Fleet>>,
    probers: Probers,
    discoverers: Discoverers,
    responder: Arc<Responder>,
    tracker: TaskTracker,
    running: Vec<Running>,
    notifier: Notifier,
    path: PathBuf,
    explicit: bool,
    exe: Option<PathBuf>,
}

impl Daemon {
    fn start_loop(&mut self, b: Bound) {
        let fd = b.listener.as_raw_fd();
        let listener = b.listener;
        let stop = CancellationToken::new();
        let task = match b.kind {
            Protocol::Http => tokio::spawn(http_loop(
                listener,
                self.responder.clone(),
                stop.clone(),
                self.tracker.clone(),
            )),
            Protocol::Agent => tokio::spawn(crate::respond::agent::agent_loop(
                listener,
                self.responder.clone(),
                stop.clone(),
                self.tracker.clone(),
            )),
        };
        self.running.push(Running {
            kind: b.kind,
            addr: b.addr,
            pinned: b.pinned,
            fd,
            stop,
            task,
        });
    }

    /// Stop serving; the probers are handed back to be joined last.
    async fn stop(mut self) -> Probers {
        self.notifier.notify("STOPPING=1");
        tracing::info!("stopping: no new connections, finishing those in flight");
        for r in &self.running {
            r.stop.cancel();
        }
        for r in self.running.drain(..) {
            let _ = r.task.await;
        }
        self.tracker.close();
        if tokio::time::timeout(GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over: closing the remaining connections");
        }
        self.probers
    }
}

/// What the control loop acts on. Signals are the source in production; tests inject
/// events through [`Events::injected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// SIGTERM, SIGINT, or the shutdown token: stop accepting, drain, exit.
    Stop,
    /// SIGHUP: re-read the config.
    Reload,
    /// SIGUSR2: hand the sockets over to a new process.
    HandOver,
    /// Discovery changed the targets it knows: rebuild the fleet.
    Discovered,
}

/// The signals we act on, installed before anything waits (until then a SIGHUP or
/// SIGUSR2 would terminate the process: their default action).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    /// The next signal, as an event.
    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop,
            _ = self.int.recv() => Event::Stop,
            _ = self.hup.recv() => Event::Reload,
            _ = self.usr2.recv() => Event::HandOver,
        }
    }

    /// SIGTERM or SIGINT; SIGHUP and SIGUSR2 stay pending in the kernel's and tokio's
    /// signal state, for a later [`Signals::next`].
    async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Every source of events in one place: the signals (if they could be installed), the
/// shutdown token, and events injected by tests.
struct Events {
    signals: Option<Signals>,
    shutdown: CancellationToken,
    injected: Option<mpsc::UnboundedReceiver<Event>>,
    /// Told of every change discovery makes (none without `[[discover]]`).
    discovered: Option<tokio::sync::watch::Receiver<u64>>,
    /// Events that arrived while only a stop was awaited (injected ones; signals stay
    /// pending on their own): handed out first by [`Events::next`].
    deferred: VecDeque<Event>,
}

impl Events {
    fn new(signals: Option<Signals>, shutdown: CancellationToken) -> Events {
        Events {
            signals,
            shutdown,
            injected: None,
            discovered: None,
            deferred: VecDeque::new(),
        }
    }

    /// No signal handlers; events come from the returned sender (and the token).
    #[cfg(test)]
    fn injected(shutdown: CancellationToken) -> (mpsc::UnboundedSender<Event>, Events) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = Events::new(None, shutdown);
        events.injected = Some(rx);
        (tx, events)
    }

    /// The next event to act on.
    async fn next(&mut self) -> Event {
        if let Some(e) = self.deferred.pop_front() {
            return e;
        }
        tokio::select! {
            _ = self.shutdown.cancelled() => Event::Stop,
            e = next_signal(&mut self.signals) => e,
            e = next_injected(&mut self.injected) => e,
            e = next_discovered(&mut self.discovered) => e,
        }
    }

    /// Wait for a stop event only (during the first-round wait and a hand-over);
    /// other events are kept for [`Events::next`].
    async fn stop(&mut self) {
        loop {
            let e = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = stop_signal(&mut self.signals) => return,
                e = next_injected(&mut self.injected) => e,
            };
            if e == Event::Stop {
                return;
            }
            self.deferred.push_back(e);
        }
    }
}

/// The next signal; never, without signal handlers.
async fn next_signal(signals: &mut Option<Signals>) -> Event {
    match signals {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// SIGTERM or SIGINT; never, without signal handlers.
async fn stop_signal(signals: &mut Option<Signals>) {
    match signals {
        Some(s) => s.stop().await,
        None => std::future::pending().await,
    }
}

/// A discovery change; never, without discovery (or once it is gone).
async fn next_discovered(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Event {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Event::Discovered,
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The next injected event; never, without an injector (or once it is gone).
async fn next_injected(injected: &mut Option<mpsc::UnboundedReceiver<Event>>) -> Event {
    match injected {
        Some(rx) => match rx.recv().await {
            Some(e) => e,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// How long a restart waits for its first round before accepting anyway: a connect
/// and the round's statements, each under its own deadline, plus a margin.
fn first_round_limit(cfg: &Config) -> Duration {
    cfg.mysql
        .connect_timeout
        .saturating_add(cfg.check.timeout.saturating_mul(5))
        .saturating_add(Duration::from_secs(1))
}

/// Wait until every target's first round has been published, at most `limit`; false
/// if one has not been by then.
async fn first_round(fleet: &Fleet, limit: Duration) -> bool {
    tokio::time::timeout(limit, fleet.all_present())
        .await
        .is_ok()
}

/// Run until stopped. `path`/`explicit` say where reload re-reads the config from;
/// the probers run on `probe_runtime`, everything else on the current one.
pub async fn run(
    cfg: Config,
    listeners: Vec<Bound>,
    path: PathBuf,
    explicit: bool,
    env: BTreeMap<String, String>,
    shutdown: CancellationToken,
    probe_runtime: tokio::runtime::Handle,
) {
    let signals = match Signals::install() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            None
        }
    };
    let mut events = Events::new(signals, shutdown.clone());
    let config = Arc::new(ArcSwap::from_pointee(cfg));
    let fleet = Arc::new(ArcSwap::from_pointee(Fleet::from_config(
        config.load_full(),
        None,
    )));
    let metrics = Arc::new(Metrics::new());
    let responder = Arc::new(Responder::new(
        config.clone(),
        fleet.clone(),
        metrics.clone(),
    ));
    // One prober per target (one, without [[target]]), their starts spread over the
    // interval.
    let news = crate::snapshot::VerdictNews::default();
    let probers = Probers::start(
        &fleet.load(),
        metrics.clone(),
        news.clone(),
        shutdown.clone(),
        probe_runtime,
    );
    // The fleet-wide rules (README, "Verdict policy") read every target's snapshot on a
    // short tick and publish their decisions to each target's cell; responders never
    // wait for them.
    tokio::spawn(crate::fleet::view::run(
        fleet.clone(),
        metrics.clone(),
        news.clone(),
        shutdown.clone(),
    ));
    // Pushers never hold up the checker or a responder: they wait on the bell and
    // read the fleet's board.
    let board = {
        let fleet = fleet.clone();
        move || fleet.load().board()
    };
    tokio::spawn(crate::push::supervise(
        config.clone(),
        board,
        news,
        metrics.push.clone(),
        shutdown.clone(),
    ));
    // Discovery tasks never touch the fleet: they tell the control loop, which
    // rebuilds it (`Event::Discovered`), so reloads and discovery never race.
    let (discoverers, discovered) =
        Discoverers::start(config.clone(), metrics.discovery.clone(), shutdown.clone());
    events.discovered = Some(discovered);
    let mut d = Daemon {
        config,
        fleet,
        probers,
        discoverers,
        responder,
        tracker: TaskTracker::new(),
        running: Vec::new(),
        notifier: Notifier::from_env(&env),
        path,
        explicit,
        exe: std::env::current_exe().ok(),
    };

    // A restart (inherited sockets) must not answer `starting`: complete one round
    // first; connections meanwhile wait in the kernel's queue. A stop request ends the
    // wait (a hand-over's parent then keeps serving: we never report ready); reload
    // and hand-over events stay queued for the control loop.
    let inherited_any = listeners.iter().any(|b| b.inherited);
    if inherited_any {
        let limit = first_round_limit(&d.config.load());
        let fleet = d.fleet.load_full();
        let stopped = tokio::select! {
            done = first_round(&fleet, limit) => {
                if !done {
                    tracing::warn!("first round still running: accepting anyway");
                }
                false
            }
            _ = events.stop() => true,
        };
        if stopped {
            tracing::info!("stopped before the first round completed");
            shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), d.probers.join()).await;
            return;
        }
    }
    for b in listeners {
        d.start_loop(b);
    }
    report_ready(&env);

    let watchdog = d.notifier.watchdog.map(|period| {
        let notifier = d.notifier.clone();
        let fleet = d.fleet.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period / 2).await;
                // Tied to checker progress: a stuck prober stops the pings.
                let fresh = fleet.load().all_fresh(Instant::now());
                if fresh {
                    notifier.notify("WATCHDOG=1");
                }
            }
        })
    });
    if d.notifier.enabled() {
        let fleet = d.fleet.load_full();
        let notifier = d.notifier.clone();
        tokio::spawn(async move {
            fleet.all_present().await;
            notifier.notify("READY=1\nSTATUS=first check done");
        });
    }

    control(&mut d, &mut events).await;
    shutdown.cancel();
    let probers = d.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), probers.join()).await;
    if let Some(w) = watchdog {
        w.abort();
    }
    tracing::info!("stopped");
}

/// Events → actions, until a stop (or a hand-over that did not fail).
async fn control(d: &mut Daemon, events: &mut Events) {
    loop {
        match events.next().await {
            Event::Stop => return,
            Event::Reload => d.reload(),
            Event::Discovered => d.rediscover(),
            Event::HandOver => {
                if d.hand_over(events).await != HandOver::Failed {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
