//! `mysqlchk serve`: listeners, the checker, the accept loops, and the control loop
//! that turns signals into events — SIGTERM/SIGINT stop, SIGHUP reload, SIGUSR2 hand
//! over to a new binary.
//!
//! Invariants:
//! - the config is validated before anything is bound; a reload that fails
//!   validation (or cannot bind a new address) changes nothing and logs one line per
//!   error; sockets whose address is unchanged are kept, so no check is refused;
//! - stopping stops accepting first, then gives in-flight requests a bounded grace;
//! - inherited sockets (systemd, or our own hand-over) are not accepted on until the
//!   first round completed, so a restart never answers `starting`;
//! - signal handlers are installed first thing, so a signal during that first-round
//!   wait is never fatal: SIGTERM/SIGINT stop at once, SIGHUP and SIGUSR2 are queued
//!   and acted on once we accept;
//! - on SIGUSR2 the new process gets the listening sockets as `LISTEN_FDS`; the old one
//!   stops accepting only after the new one says it accepts, and the sockets are never
//!   closed in between (closing a listening socket resets what is queued on it);
//! - a stop request while the new process has not said it accepts cancels the
//!   hand-over: the new process is killed and reaped before we stop, so no process
//!   is left serving under a pid nobody was told about;
//! - only sockets systemd passed by name are pinned (kept whatever the config says); a
//!   hand-over passes its own bound sockets under a name that matches no listener, so
//!   the new process keeps them only if its config lists their address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use socket2::{Domain, Socket, Type};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config};
use crate::fleet::probers::Probers;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::respond::accept::Responder;
use crate::respond::http_conn::http_loop;

pub mod systemd;

use systemd::{inherited, match_inherited, Notifier, Protocol};

const GRACE: Duration = Duration::from_secs(5);
/// Environment variable naming the descriptor a handed-over child reports on.
pub const READY_FD_ENV: &str = "MYSQLCHK_READY_FD";
/// `LISTEN_FDNAMES` entry for a handed-over socket that was not pinned: a name
/// `match_inherited` does not match, so only its address can keep it.
const BY_ADDRESS: &str = "by-address";

/// A listening socket, bound or inherited, not yet accepting.
pub struct Bound {
    pub kind: Protocol,
    pub addr: SocketAddr,
    pub listener: std::net::TcpListener,
    /// Matched by its systemd name rather than a configured address: kept across
    /// reloads whatever the config says.
    pub pinned: bool,
    pub inherited: bool,
}

/// Bind one listening socket: `SO_REUSEADDR` (restart while old connections sit in
/// TIME_WAIT), IPv6 sockets `IPV6_V6ONLY` (an IPv6 address must not silently
/// capture IPv4 too: the allowlist would be written for the wrong family).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn wanted(cfg: &Config) -> Vec<(Protocol, SocketAddr)> {
    cfg.listen
        .http
        .iter()
        .map(|a| (Protocol::Http, *a))
        .chain(cfg.listen.agent.iter().map(|a| (Protocol::Agent, *a)))
        .collect()
}

/// Adopt what we inherited, bind the rest. Called before the runtime exists.
pub fn prepare(cfg: &Config, env: &BTreeMap<String, String>) -> Result<Vec<Bound>, String> {
    let mut out: Vec<Bound> = Vec::new();
    for inh in inherited(env, std::process::id()) {
        let Some(l) = crate::sys::adopt_listener(inh.fd) else {
            tracing::warn!(
                "inherited descriptor {} is not a listening TCP socket: ignored",
                inh.fd
            );
            continue;
        };
        let Ok(local) = l.local_addr() else { continue };
        match match_inherited(local, &inh.name, &cfg.listen.http, &cfg.listen.agent) {
            Some((kind, addr)) => {
                let pinned = !cfg.listen.http.contains(&addr) && !cfg.listen.agent.contains(&addr);
                let _ = l.set_nonblocking(true);
                tracing::info!("using inherited {} socket {addr}", kind.name());
                out.push(Bound {
                    kind,
                    addr,
                    listener: l,
                    pinned,
                    inherited: true,
                });
            }
            // A hand-over passes what the old config listed; a new config without
            // that address means it is removed.
            None if inh.name == BY_ADDRESS => {
                tracing::info!("handed-over socket {local} is not in the config: closed")
            }
            None => tracing::warn!(
                "inherited socket {local} (name {:?}) matches no listener in the config: closed",
                inh.name
            ),
        }
    }
    systemd::clear_env();
    for (kind, addr) in wanted(cfg) {
        // Already inherited: the same address, or a wildcard socket of the same kind
        // on the same port (systemd's `ListenStream=9200` is a dual-stack [::]:9200,
        // which also covers 0.0.0.0:9200).
        let covered = out.iter().any(|b| {
            b.addr == addr
                || (b.inherited
                    && b.kind == kind
                    && b.addr.port() == addr.port()
                    && b.addr.ip().is_unspecified())
        });
        if covered {
            continue;
        }
        let listener = bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        out.push(Bound {
            kind,
            addr,
            listener,
            pinned: false,
            inherited: false,
        });
    }
    Ok(out)
}

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

    /// Wait (bounded) until the first round has been published.
    async fn first_round(&self) -> bool {
        let cfg = self.config.load();
        let limit = cfg
            .mysql
            .connect_timeout
            .saturating_add(cfg.check.timeout.saturating_mul(5))
            .saturating_add(Duration::from_secs(1));
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.fleet.load().all_published() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Re-read and validate; bind new addresses; apply atomically or keep the old.
    fn reload(&mut self) {
        self.notifier.reloading();
        let env = config::process_env();
        let loaded = match config::load(&self.path, self.explicit, &env) {
            Ok(l) => l,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("reload rejected: {e}");
                }
                tracing::error!("reload rejected: keeping the running configuration");
                self.notifier.notify("READY=1");
                return;
            }
        };
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let new = loaded.config;
        // Bind what is new before changing anything: a failure leaves all as it was.
        let mut fresh = Vec::new();
        for (kind, addr) in wanted(&new) {
            let same = self.running.iter().find(|r| r.addr == addr);
            let listener = match same {
                Some(r) if r.kind == kind => continue,
                // The address moves between http and agent: serve the same socket
                // under its new role (a duplicate descriptor; never closed or bound
                // again, so nothing queued on it is lost).
                Some(r) => crate::sys::dup_listener(r.fd)
                    .ok_or_else(|| std::io::Error::other("cannot duplicate the listening socket")),
                None => bind(addr),
            };
            match listener {
                Ok(listener) => fresh.push(Bound {
                    kind,
                    addr,
                    listener,
                    pinned: false,
                    inherited: false,
                }),
                Err(e) => {
                    tracing::error!("reload rejected: cannot listen on {addr}: {e}");
                    self.notifier.notify("READY=1");
                    return;
                }
            }
        }
        let keep: Vec<(Protocol, SocketAddr)> = wanted(&new);
        let old = self.config.load_full();
        let new = Arc::new(new);
        // Targets that stay keep their snapshot cell and prober; only what changed
        // is started, stopped or handed its new settings.
        let fleet = Fleet::from_config(new.clone(), Some(&self.fleet.load()));
        self.probers.apply(&fleet);
        self.fleet.store(Arc::new(fleet));
        self.config.store(new);
        let fresh_count = fresh.len();
        for b in fresh {
            tracing::info!("now listening on {} ({})", b.addr, b.kind.name());
            self.start_loop(b);
        }
        let started = self.running.len() - fresh_count;
        let mut index = 0;
        self.running.retain(|r| {
            index += 1;
            // Loops started just now (the tail) stay.
            let stays = index > started || r.pinned || keep.contains(&(r.kind, r.addr));
            if !stays {
                tracing::info!("no longer listening on {} ({})", r.addr, r.kind.name());
                r.stop.cancel();
            }
            stays
        });
        if old.listen.max_connections != self.config.load().listen.max_connections {
            tracing::warn!("listen.max_connections takes effect at the next restart");
        }
        tracing::info!("reloaded {}", self.path.display());
        self.notifier.notify("READY=1");
    }

    /// SIGUSR2: start the (new) binary with our sockets and wait until it reports
    /// ready, or a stop request cancels it.
    async fn hand_over(&mut self, signals: &mut Signals, shutdown: &CancellationToken) -> HandOver {
        let Some(exe) = self.exe.clone() else {
            tracing::error!("hand-over impossible: the path of our executable is unknown");
            return HandOver::Failed;
        };
        let (read, write) = match crate::sys::pipe() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("hand-over impossible: {e}");
                return HandOver::Failed;
            }
        };
        let mut fds: Vec<i32> = self.running.iter().map(|r| r.fd).collect();
        // Pinned sockets keep the name systemd gave them, so they stay pinned in the
        // new process; the others must be listed by its config to be kept.
        let names: Vec<&str> = self
            .running
            .iter()
            .map(|r| if r.pinned { r.kind.name() } else { BY_ADDRESS })
            .collect();
        let n = fds.len();
        fds.push(write.as_raw_fd());
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(std::env::args_os().skip(1))
            .env("LISTEN_FDS", n.to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env(READY_FD_ENV, (3 + n).to_string())
            .env_remove("LISTEN_PID");
        crate::sys::pass_fds_on_exec(&mut cmd, fds);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("hand-over: cannot start {}: {e}", exe.display());
                return HandOver::Failed;
            }
        };
        drop(write);
        let pid = child.id();
        tracing::info!(
            pid,
            "hand-over: started {}, waiting for it to accept",
            exe.display()
        );
        let ready = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || read_ready(read)),
        );
        // `biased`: a ready report that raced with the stop request wins, since the
        // new process then already serves and is the one to keep.
        let outcome = tokio::select! {
            biased;
            waited = ready => match waited {
                Ok(Ok(true)) => HandOver::Done,
                _ => HandOver::Failed,
            },
            _ = signals.stop() => HandOver::Stopped,
            _ = shutdown.cancelled() => HandOver::Stopped,
        };
        if outcome == HandOver::Done {
            // The child runs on its own from here (re-parented to init when we exit);
            // dropping the handle neither waits for nor kills it.
            drop(child);
            tracing::info!("hand-over: the new process accepts; stopping this one");
            return outcome;
        }
        // A failed or cancelled child must neither linger as a zombie nor, if it is
        // still starting, begin accepting on the shared sockets later. It has not
        // accepted anything yet, so killing it loses nothing.
        let mut child = child;
        let reaped = tokio::task::spawn_blocking(move || {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        });
        if outcome == HandOver::Stopped {
            // Stop only once it is gone: otherwise it could outlive us, serving.
            let _ = tokio::time::timeout(Duration::from_secs(5), reaped).await;
            tracing::info!(
                pid,
                "hand-over cancelled by a stop request: new process killed"
            );
        } else {
            tracing::error!("hand-over: the new process did not report ready; keeping this one");
        }
        outcome
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

/// How a hand-over ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandOver {
    /// The new process accepts: stop this one.
    Done,
    /// It failed or did not report in time (and is gone): keep serving.
    Failed,
    /// A stop request arrived first; the new process was killed: stop.
    Stopped,
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

    /// SIGTERM or SIGINT.
    async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Block until the child writes its ready line (or closes the pipe).
fn read_ready(fd: OwnedFd) -> bool {
    use std::io::Read;
    let mut f = std::fs::File::from(fd);
    let mut buf = [0u8; 16];
    matches!(f.read(&mut buf), Ok(n) if n > 0)
}

/// Tell a parent that handed its sockets to us that we accept now.
fn report_ready(env: &BTreeMap<String, String>) {
    let Some(fd) = env.get(READY_FD_ENV).and_then(|v| v.parse::<i32>().ok()) else {
        return;
    };
    if let Some(fd) = crate::sys::adopt_fd(fd) {
        use std::io::Write;
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(b"READY\n");
    }
}

/// Run until stopped. `path`/`explicit` say where reload re-reads the config from.
pub async fn run(
    cfg: Config,
    listeners: Vec<Bound>,
    path: PathBuf,
    explicit: bool,
    env: BTreeMap<String, String>,
    shutdown: CancellationToken,
) {
    let mut signals = match Signals::install() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            None
        }
    };
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
    let probers = Probers::start(&fleet.load(), metrics.clone(), shutdown.clone());
    let mut d = Daemon {
        config,
        fleet,
        probers,
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
    // wait (a hand-over's parent then keeps serving: we never report ready); SIGHUP and
    // SIGUSR2 stay queued for the control loop.
    let inherited_any = listeners.iter().any(|b| b.inherited);
    if inherited_any {
        let stopped = tokio::select! {
            done = d.first_round() => {
                if !done {
                    tracing::warn!("first round still running: accepting anyway");
                }
                false
            }
            _ = stop_requested(&mut signals) => true,
            _ = shutdown.cancelled() => true,
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
        let fleet = d.fleet.clone();
        let notifier = d.notifier.clone();
        tokio::spawn(async move {
            while !fleet.load().all_published() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            notifier.notify("READY=1\nSTATUS=first check done");
        });
    }

    control(&mut d, signals, &shutdown).await;
    shutdown.cancel();
    let probers = d.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), probers.join()).await;
    if let Some(w) = watchdog {
        w.abort();
    }
    tracing::info!("stopped");
}

/// SIGTERM or SIGINT; never, without signal handlers.
async fn stop_requested(signals: &mut Option<Signals>) {
    match signals {
        Some(s) => s.stop().await,
        None => std::future::pending().await,
    }
}

/// Signals → events, until a stop.
async fn control(d: &mut Daemon, signals: Option<Signals>, shutdown: &CancellationToken) {
    let Some(mut signals) = signals else {
        shutdown.cancelled().await;
        return;
    };
    loop {
        tokio::select! {
            _ = signals.term.recv() => return,
            _ = signals.int.recv() => return,
            _ = shutdown.cancelled() => return,
            _ = signals.hup.recv() => d.reload(),
            _ = signals.usr2.recv() => {
                if d.hand_over(&mut signals, shutdown).await != HandOver::Failed {
                    return;
                }
            }
        }
    }
}
