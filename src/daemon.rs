//! `mysqlchk serve`: binds the listeners, runs the checker and the accept loops, and
//! turns signals into events (SIGTERM/SIGINT stop, SIGHUP reload).
//!
//! Invariants: the config is validated before anything is bound; a reload that fails
//! validation changes nothing and logs one line per error; stopping stops accepting
//! first, then gives in-flight requests a bounded grace period.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::serve::{http_loop, Ctx};
use crate::snapshot::Shared;

const GRACE: Duration = Duration::from_secs(5);

/// Bound, not yet accepting, listening sockets.
pub struct Listeners {
    pub http: Vec<(SocketAddr, std::net::TcpListener)>,
    pub agent: Vec<(SocketAddr, std::net::TcpListener)>,
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
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

pub fn bind_all(cfg: &Config) -> Result<Listeners, String> {
    let one = |a: &SocketAddr| {
        bind(*a)
            .map(|l| (*a, l))
            .map_err(|e| format!("cannot listen on {a}: {e}"))
    };
    Ok(Listeners {
        http: cfg.listen.http.iter().map(one).collect::<Result<_, _>>()?,
        agent: cfg.listen.agent.iter().map(one).collect::<Result<_, _>>()?,
    })
}

/// Run until stopped. `path`/`explicit` say where reload re-reads the config from.
pub async fn run(
    cfg: Config,
    listeners: Listeners,
    path: PathBuf,
    explicit: bool,
    shutdown: CancellationToken,
) {
    let config = Arc::new(ArcSwap::from_pointee(cfg));
    let shared = Arc::new(Shared::new());
    let metrics = Arc::new(Metrics::new());
    let reconfigured = Arc::new(Notify::new());
    let ctx = Arc::new(Ctx::new(config.clone(), shared.clone(), metrics.clone()));
    let tracker = TaskTracker::new();
    let accept_stop = CancellationToken::new();

    let checker = tokio::spawn(crate::checker::run(
        config.clone(),
        shared.clone(),
        metrics.clone(),
        reconfigured.clone(),
        shutdown.clone(),
    ));

    let mut loops = Vec::new();
    for (addr, l) in listeners.http {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => loops.push(tokio::spawn(http_loop(
                l,
                ctx.clone(),
                accept_stop.clone(),
                tracker.clone(),
            ))),
            Err(e) => tracing::error!("cannot use the listener on {addr}: {e}"),
        }
    }
    for (addr, l) in listeners.agent {
        match tokio::net::TcpListener::from_std(l) {
            Ok(l) => loops.push(tokio::spawn(crate::agent::agent_loop(
                l,
                ctx.clone(),
                accept_stop.clone(),
                tracker.clone(),
            ))),
            Err(e) => tracing::error!("cannot use the agent listener on {addr}: {e}"),
        }
    }

    let signals = tokio::spawn(signal_loop(
        config.clone(),
        reconfigured.clone(),
        path,
        explicit,
        shutdown.clone(),
    ));

    shutdown.cancelled().await;
    tracing::info!("stopping: no new connections, finishing those in flight");
    accept_stop.cancel();
    for l in loops {
        let _ = l.await;
    }
    tracker.close();
    if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
        tracing::warn!("grace period over: closing the remaining connections");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), checker).await;
    signals.abort();
    tracing::info!("stopped");
}

async fn signal_loop(
    config: Arc<ArcSwap<Config>>,
    reconfigured: Arc<Notify>,
    path: PathBuf,
    explicit: bool,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { shutdown.cancel(); return; }
            _ = int.recv() => { shutdown.cancel(); return; }
            _ = hup.recv() => reload(&config, &reconfigured, &path, explicit),
        }
    }
}

/// Re-read and validate; apply atomically or keep the old config.
pub fn reload(
    config: &ArcSwap<Config>,
    reconfigured: &Notify,
    path: &std::path::Path,
    explicit: bool,
) {
    let env = config::process_env();
    match config::load(path, explicit, &env) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            let old = config.load_full();
            if loaded.config.listen.http != old.listen.http
                || loaded.config.listen.agent != old.listen.agent
            {
                tracing::warn!(
                    "reload: listener addresses changed; they take effect at the next restart"
                );
            }
            config.store(Arc::new(loaded.config));
            reconfigured.notify_one();
            tracing::info!("reloaded {}", path.display());
        }
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("reload rejected: {e}");
            }
            tracing::error!("reload rejected: keeping the running configuration");
        }
    }
}
