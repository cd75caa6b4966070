//! Accept loops for the HTTP and agent ports: admission (allowlist, connection limits)
//! and the hand-off of each admitted connection to its port's handler.
//!
//! Each listener gets one accept loop per runtime worker thread (1 on a current-thread
//! runtime), so the synchronous fast path runs on every core, as nginx's workers do.
//! The loops share one registration of the one descriptor: socket activation and the
//! hand-over still see one socket per address, and the kernel keeps one queue.
//!
//! Invariants:
//! - servers receive *bound* listeners and a cancellation token, never addresses (so
//!   tests bind port 0 and socket activation is trivial);
//! - a shutdown stops every loop of a listener; `accept_loop` returns only then, and the
//!   listener is closed with the last of them;
//! - a loop clears the shared readiness only when its own accept found the queue
//!   empty, so no connection waits for an event that was consumed by another loop;
//! - no accept loop gives up: on errors (EMFILE, ...) it backs off briefly and
//!   goes on;
//! - a peer outside `listen.allow`, or over a connection limit, is closed without a byte.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::unix::AsyncFd;
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

/// What every accept loop of one listener shares: one registration with the reactor
/// (one descriptor: what socket activation and the hand-over pass on).
struct Port<F> {
    listener: AsyncFd<std::net::TcpListener>,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    fast: FastPath,
    slow: F,
}

/// Accept forever (until `shutdown`) with one loop per runtime worker thread, so the
/// fast path runs on every core as nginx's workers do: admit each peer (allowlist,
/// limits), try `fast`, and otherwise run `slow` for it in its own task, holding its
/// place in the limits until it ends. Returns once every loop has stopped (and the
/// listener is closed).
pub async fn accept_loop<F, Fut>(
    listener: std::net::TcpListener,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    fast: FastPath,
    slow: F,
) where
    F: Fn(TcpStream, IpAddr, Arc<Responder>, FirstLook) -> Fut + Send + Sync + 'static,
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
    let port = Arc::new(Port {
        listener,
        responder,
        shutdown,
        tracker,
        fast,
        slow,
    });
    // The other loops are tasks of their own, so the scheduler spreads them over the
    // workers; a JoinSet aborts them if this task is aborted.
    let mut others = tokio::task::JoinSet::new();
    for _ in 1..loops() {
        others.spawn(serve(port.clone()));
    }
    serve(port).await;
    while others.join_next().await.is_some() {}
}

/// How many accept loops a listener gets: one per worker thread of the runtime (1 on
/// a current-thread runtime).
fn loops() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_workers()
        .max(1)
}

/// One accept loop. Loops share the listener's readiness: each wakes on it, accepts
/// until the queue is empty (or its budget is spent) and only the loop that saw the
/// queue empty clears it, so no connection is left waiting for an event.
async fn serve<F, Fut>(port: Arc<Port<F>>)
where
    F: Fn(TcpStream, IpAddr, Arc<Responder>, FirstLook) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Port {
        listener,
        responder,
        shutdown,
        tracker,
        fast,
        slow,
    } = &*port;
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
            let next = fast(&stream, admission.peer, responder);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// First looks under way at this moment.
    static INSIDE: AtomicUsize = AtomicUsize::new(0);
    /// Most first looks seen under way at once.
    static MOST: AtomicUsize = AtomicUsize::new(0);

    /// A first look that reads one byte, then stays (holding its worker thread, as a
    /// long synchronous job would) until another first look is under way too, or
    /// 500 ms have passed, and answers `ok`.
    fn rendezvous_fast(stream: &std::net::TcpStream, _: IpAddr, _: &Responder) -> FirstLook {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut b = [0u8; 1];
        let _ = (&*stream).read(&mut b);
        let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_millis(500);
        while MOST.load(Ordering::SeqCst) < 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        INSIDE.fetch_sub(1, Ordering::SeqCst);
        let _ = (&*stream).write_all(b"ok");
        FirstLook::Done
    }

    fn responder() -> Responder {
        let cfg =
            crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &Default::default())
                .unwrap()
                .config;
        let config = Arc::new(ArcSwap::from_pointee(cfg));
        let fleet = Arc::new(ArcSwap::from_pointee(Fleet::from_config(
            config.load_full(),
            None,
        )));
        Responder::new(config, fleet, Arc::new(Metrics::new()))
    }

    fn ask(addr: std::net::SocketAddr) -> String {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"x").unwrap();
        let mut s = String::new();
        let _ = c.read_to_string(&mut s);
        s
    }

    /// With two worker threads there are two loops: two first looks run at the same
    /// time (one loop alone never does: each waits 500 ms for the other, in vain), and
    /// a shutdown stops every loop (the listener is closed). Which worker runs which
    /// loop is the scheduler's choice, so several pairs are tried; one overlap is proof.
    #[test]
    fn two_workers_answer_at_once_and_shutdown_stops_every_loop() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = rt.spawn(accept_loop(
            listener,
            Arc::new(responder()),
            shutdown.clone(),
            TaskTracker::new(),
            rendezvous_fast,
            |_, _, _, _| async {},
        ));
        for _ in 0..8 {
            let pair = [
                std::thread::spawn(move || ask(addr)),
                std::thread::spawn(move || ask(addr)),
            ];
            for h in pair {
                assert_eq!(h.join().unwrap(), "ok");
            }
            if MOST.load(Ordering::SeqCst) >= 2 {
                break;
            }
        }
        assert!(
            MOST.load(Ordering::SeqCst) >= 2,
            "no two checks were ever answered at once"
        );

        shutdown.cancel();
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
            .expect("every loop stops on shutdown")
            .unwrap();
        // No loop is left holding the listener.
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
