//! Accept loops for the HTTP and agent ports: admission (allowlist, connection limits)
//! and the hand-off of each admitted connection to its port's handler.
//!
//! Invariants:
//! - servers receive *bound* listeners and a cancellation token, never addresses (so
//!   tests bind port 0 and socket activation is trivial);
//! - the accept loop never gives up: on errors (EMFILE, ...) it backs off briefly and
//!   goes on;
//! - a peer outside `listen.allow`, or over a connection limit, is closed without a byte.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::respond::access::{allowed, canonical};

/// Everything a connection handler reads.
pub struct Responder {
    /// Settings of the process (listen, agent, log; the defaults of every target).
    pub config: Arc<ArcSwap<Config>>,
    /// The targets and their published snapshots (one, without `[[target]]`).
    pub(crate) fleet: Arc<ArcSwap<Fleet>>,
    pub metrics: Arc<Metrics>,
    limits: Limits,
}

impl Responder {
    pub(crate) fn new(
        config: Arc<ArcSwap<Config>>,
        fleet: Arc<ArcSwap<Fleet>>,
        metrics: Arc<Metrics>,
    ) -> Responder {
        let max = config.load().listen.max_connections;
        Responder {
            config,
            fleet,
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

/// What the synchronous first look at a new connection achieved.
pub enum FirstLook {
    /// Answered (or nothing to answer) and closed.
    Done,
    /// Not answerable yet: continue asynchronously with the bytes read so far.
    Continue(Vec<u8>),
    /// Answered but not finished: write these remaining bytes, then close lingering.
    Finish(Vec<u8>),
}

/// Most checks are answered where they are accepted: one non-blocking read, one
/// non-blocking write, close — no reactor registration, no task, no timer. That is
/// what lets a responder doing real work keep pace with static ones (see README,
/// Benchmarks). Anything else (a request in pieces, a slow client, a large answer, a
/// request with bytes left unread) continues asynchronously.
pub type FastPath = fn(&std::net::TcpStream, IpAddr, &Responder) -> FirstLook;

/// Accepts handled per wake-up before yielding, so one busy listener cannot starve
/// the others or the checker.
const ACCEPT_BUDGET: usize = 64;

/// Accept forever (until `shutdown`): admit each peer (allowlist, limits), try
/// `fast`, and otherwise run `slow` for it in its own task, holding its place in the
/// limits until it ends.
pub async fn accept_loop<F, Fut>(
    listener: std::net::TcpListener,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    fast: FastPath,
    slow: F,
) where
    F: Fn(TcpStream, IpAddr, Arc<Responder>, FirstLook) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _ = listener.set_nonblocking(true);
    let listener = match crate::sys::watch_listener(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot watch a listening socket: {e}");
            return;
        }
    };
    loop {
        let mut ready = tokio::select! {
            r = listener.readable() => match r {
                Ok(r) => r,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        for _ in 0..ACCEPT_BUDGET {
            let (stream, peer) = match ready.get_inner().accept() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    break;
                }
                Err(e) => {
                    drop(ready);
                    accept_error(e).await;
                    break;
                }
            };
            // Refused: dropping the stream closes it without a byte.
            let Some(admission) = responder.admit(peer.ip()) else {
                continue;
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let next = fast(&stream, admission.peer, &responder);
            if let FirstLook::Done = next {
                continue;
            }
            let Ok(stream) = TcpStream::from_std(stream) else {
                continue;
            };
            let work = slow(stream, admission.peer, responder.clone(), next);
            tracker.spawn(async move {
                work.await;
                drop(admission);
            });
        }
        // Let the other tasks run between batches.
        tokio::task::yield_now().await;
    }
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
