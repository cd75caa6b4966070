//! Accept loops and per-connection handling for the HTTP port.
//!
//! Invariants:
//! - servers receive *bound* listeners and a cancellation token, never addresses (so
//!   tests bind port 0 and socket activation is trivial);
//! - the accept loop never gives up: on errors (EMFILE, ...) it backs off briefly and
//!   goes on;
//! - a peer outside `listen.allow`, or over a connection limit, is closed without a byte;
//! - the request head is read under one total deadline (`listen.request_timeout`) and a
//!   size cap, then answered in one write; we then shut down our side and drain what
//!   the peer still sends for a moment, so unread bytes do not turn into an RST that
//!   eats the response (HAProxy often closes with RST); ECONNRESET/EPIPE are normal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{allowed, canonical};
use crate::config::Config;
use crate::endpoints::{respond, View};
use crate::http::{parse, Method, Parsed, Response, MAX_REQUEST};
use crate::metrics::Metrics;
use crate::snapshot::Shared;

/// How long we keep reading after answering, so the peer's unread bytes are not
/// answered with an RST.
const LINGER: Duration = Duration::from_millis(500);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a connection handler reads.
pub struct Ctx {
    pub config: Arc<ArcSwap<Config>>,
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    limits: Limits,
}

impl Ctx {
    pub fn new(config: Arc<ArcSwap<Config>>, shared: Arc<Shared>, metrics: Arc<Metrics>) -> Ctx {
        let max = config.load().listen.max_connections;
        Ctx {
            config,
            shared,
            metrics,
            limits: Limits {
                total: Arc::new(Semaphore::new(max)),
                per_ip: Arc::new(Mutex::new(HashMap::new())),
            },
        }
    }

    /// Admit a peer: allowlist, total and per-IP limits. `None` means close silently.
    pub fn admit(&self, peer: IpAddr) -> Option<Admission> {
        let cfg = self.config.load();
        let peer = canonical(peer);
        if !allowed(&cfg.listen.allow, peer) {
            self.metrics.refused_peer();
            refused_log(peer);
            return None;
        }
        let permit = self.limits.total.clone().try_acquire_owned().ok();
        let Some(permit) = permit else {
            self.metrics.refused_peer();
            return None;
        };
        {
            let mut map = self.limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(peer).or_insert(0);
            if *n >= cfg.listen.max_connections_per_ip {
                self.metrics.refused_peer();
                return None;
            }
            *n += 1;
        }
        Some(Admission {
            _permit: permit,
            per_ip: self.limits.per_ip.clone(),
            peer,
        })
    }
}

struct Limits {
    total: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Holds a connection's place in the limits until dropped.
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    pub peer: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// Refused peers are logged at most once a minute.
fn refused_log(peer: IpAddr) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        tracing::warn!(%peer, "refused a connection from a peer not in listen.allow (logged at most once a minute)");
    }
}

/// Accept forever (until `shutdown`): admit each peer (allowlist, limits) and run
/// `handle` for it in its own task, holding its place in the limits until it ends.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(TcpStream, IpAddr, Arc<Ctx>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Refused: dropping the stream closes it without a byte.
                let Some(admission) = ctx.admit(peer.ip()) else {
                    continue;
                };
                let work = handle(stream, admission.peer, ctx.clone());
                tracker.spawn(async move {
                    work.await;
                    drop(admission);
                });
            }
            Err(e) => accept_error(e).await,
        }
    }
}

/// The HTTP port's accept loop.
pub async fn http_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    accept_loop(
        listener,
        ctx,
        shutdown,
        tracker,
        |stream, peer, ctx| async move { handle(stream, peer, &ctx).await },
    )
    .await
}

/// Out of descriptors or a transient error: wait a little and keep serving.
pub async fn accept_error(e: std::io::Error) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!("accept failed: {e}; backing off (logged at most once a minute)");
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// One HTTP exchange.
pub async fn handle(mut stream: TcpStream, peer: IpAddr, ctx: &Ctx) {
    let _ = stream.set_nodelay(true);
    let cfg = ctx.config.load_full();
    let deadline = tokio::time::Instant::now() + cfg.listen.request_timeout;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    let (response, minor, head_only, label) = loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return, // closed early: nobody to answer
            Ok(Ok(n)) => n,
            Err(_) => {
                // Too slow (slowloris or a silent client): say so and close.
                let r = Response::text(408, "request timeout");
                ctx.metrics.request("other", 408);
                finish(stream, &r.render(1, false)).await;
                return;
            }
        };
        let room = MAX_REQUEST.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        match parse(&buf) {
            Parsed::Partial => continue,
            Parsed::Reject(r) => break (r, 1, false, "other"),
            Parsed::Complete(req) => {
                let now = Instant::now();
                let metrics = || ctx.metrics.render(&cfg, &ctx.shared, now);
                let view = View {
                    config: &cfg,
                    shared: &ctx.shared,
                    peer,
                    now,
                    metrics: &metrics,
                };
                let (r, label) = respond(&req, &view);
                if cfg.log.access_log {
                    tracing::info!(%peer, path = %crate::http::sanitize(&req.path), status = r.status, "request");
                }
                break (r, req.minor, req.method == Method::Head, label);
            }
        }
    };
    ctx.metrics.request(label, response.status);
    finish(stream, &response.render(minor, head_only)).await;
}

/// One write, then a lingering close.
async fn finish(mut stream: TcpStream, bytes: &[u8]) {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    let _ = stream.shutdown().await;
    let until = tokio::time::Instant::now() + LINGER;
    let mut sink = [0u8; 1024];
    let mut drained = 0usize;
    while drained < 64 * 1024 {
        match tokio::time::timeout_at(until, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}
