//! One pusher per `[[haproxy]]` entry: talks to one HAProxy runtime socket (UNIX or TCP),
//! one command per connection, and keeps HAProxy's server lines where the verdicts want
//! them.
//!
//! Protocol: every pass reads `show servers state`, sends the commands the plan asks for
//! (`set server … health|state`), reads every reply, then verifies with `show servers
//! state <b>`; a mismatch is retried with backoff. A `show info` heartbeat notices an
//! unreachable socket and a new HAProxy process (reload, restart): on reconnect or a new
//! process the whole desired state is applied again, since runtime state does not survive
//! a reload.
//!
//! Invariants: every command runs under `timeout` (connect, write and read together) and
//! reads at most [`MAX_REPLY`] bytes; one pusher never waits on another (each is its own
//! task); each failure is logged once when its episode starts and once when it ends; a
//! pass always plans from the latest verdicts, so changes coalesce.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::{self, Info, ReplyError, ServerRow};
use super::desired::{desires, plan, Board, Desires, Holds, Missing, Owners, Planned};
use super::stats::{Conn, Node, Stats};
use crate::role::Role;

/// Replies longer than this are cut (a `show servers state` of a 10,000-server HAProxy
/// is about 1 MB).
pub const MAX_REPLY: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port` of a `stats socket ipv4@…`.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => f.write_str(a),
        }
    }
}

/// What one pusher needs, from one `[[haproxy]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub endpoint: Endpoint,
    /// Backend name → the role its servers route.
    pub backends: Vec<(String, Role)>,
    /// `[[haproxy]] server`: the single server's line, when its address does not tell.
    pub server: Option<String>,
    pub push_up_after: Duration,
    /// Deadline of one command (connect + write + read).
    pub timeout: Duration,
    /// How often `show info` asks whether HAProxy is still the same process.
    pub heartbeat: Duration,
}

#[derive(Debug)]
pub(crate) enum Failure {
    Io(String),
    Reply(ReplyError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Io(e) => f.write_str(e),
            Failure::Reply(e) => write!(f, "{e}"),
        }
    }
}

/// Send `cmd` (one line) and read the reply until HAProxy closes (also discovery's
/// `show servers state`).
pub(crate) async fn command(
    ep: &Endpoint,
    cmd: &str,
    timeout: Duration,
) -> Result<String, Failure> {
    let run = async {
        match ep {
            Endpoint::Unix(p) => exchange(tokio::net::UnixStream::connect(p).await?, cmd).await,
            Endpoint::Tcp(a) => {
                exchange(tokio::net::TcpStream::connect(a.as_str()).await?, cmd).await
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(Failure::Io(io_phrase(&e))),
        Err(_) => Err(Failure::Io(format!(
            "no answer within {}",
            crate::config::fmt_duration(timeout)
        ))),
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    cmd: &str,
) -> std::io::Result<String> {
    s.write_all(cmd.as_bytes()).await?;
    let mut buf = Vec::new();
    (&mut s)
        .take(MAX_REPLY as u64)
        .read_to_end(&mut buf)
        .await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Our phrase for an I/O error (the OS text names no secret, but keep it short).
fn io_phrase(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "socket not found".into(),
        K::ConnectionRefused => "connection refused".into(),
        K::PermissionDenied => "permission denied on the socket".into(),
        K::ConnectionReset | K::BrokenPipe => "connection reset".into(),
        _ => api::excerpt(&e.to_string()),
    }
}

/// Problems logged once when they appear and once when they are gone.
#[derive(Default)]
struct Episodes {
    open: BTreeMap<String, String>,
}

impl Episodes {
    /// Log the problems of this pass that are new, and the end of those that are gone.
    fn settle(&mut self, node: &str, now: BTreeMap<String, String>) {
        for (k, msg) in &now {
            if !self.open.contains_key(k) {
                tracing::warn!(haproxy = node, "push: {msg}");
            }
        }
        for k in self.open.keys() {
            if !now.contains_key(k) {
                tracing::info!(haproxy = node, "push: resolved: {k}");
            }
        }
        self.open = now;
    }

    fn open(&mut self, node: &str, key: &str, msg: String) {
        if !self.open.contains_key(key) {
            tracing::warn!(haproxy = node, "push: {msg}");
            self.open.insert(key.to_string(), msg);
        }
    }

    fn close(&mut self, node: &str, key: &str) {
        if self.open.remove(key).is_some() {
            tracing::info!(haproxy = node, "push: resolved: {key}");
        }
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn next_backoff(b: Duration) -> Duration {
    (b * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
}

/// What one pass did.
enum Pass {
    /// Everything planned was applied and verified (or refused for good: counted, logged).
    Done,
    /// Some changes did not show in `show servers state`: retry.
    Mismatch,
}

/// The pusher. Returns when `shutdown` fires or the change sender is gone. `board`
/// reads every target's verdicts as of its latest round; `changes` is told when one
/// may have changed (a round, a fleet-wide decision, a reload or a discovery pass).
pub async fn run(
    s: Settings,
    board: impl Fn() -> Board,
    mut changes: watch::Receiver<u64>,
    node: Arc<Node>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let name = s.endpoint.to_string();
    let mut holds = Holds::default();
    let mut episodes = Episodes::default();
    // The process behind the socket; None = not (yet) reachable.
    let mut process: Option<Info> = None;
    let mut applied: Option<Desires> = None;
    let mut heartbeat_at = Instant::now();
    let mut retry_at: Option<Instant> = None;
    let mut backoff = BACKOFF_MIN;
    changes.borrow_and_update();
    let mut now_board = board();
    holds.observe(&now_board, Instant::now().into_std());
    loop {
        let now = Instant::now();
        let hold_due = holds
            .next_due(now.into_std(), s.push_up_after)
            .map(Instant::from_std);
        let wake = [Some(heartbeat_at), hold_due, retry_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(heartbeat_at);
        if wake > now {
            tokio::select! {
                r = changes.changed() => {
                    if r.is_err() { return; }
                    changes.borrow_and_update();
                }
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.cancelled() => return,
            }
            // Every wake reads the board anew: a change it was not told of (a
            // snapshot gone stale, say) is still seen within a heartbeat.
            now_board = board();
            holds.observe(&now_board, Instant::now().into_std());
        }
        let now = Instant::now();
        if now >= heartbeat_at || process.is_none() {
            match command(&s.endpoint, "show info\n", s.timeout)
                .await
                .and_then(|r| api::parse_info(&r).map_err(Failure::Reply))
            {
                Ok(info) => {
                    let new = match &process {
                        None => true,
                        Some(old) => info.is_new_process(old),
                    };
                    if new {
                        if applied.is_some() {
                            tracing::info!(haproxy = %name, pid = info.pid, "push: HAProxy reconnected or reloaded; applying the whole desired state again");
                            node.reapplied
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        applied = None;
                    }
                    process = Some(info);
                    node.set(Conn::Connected { pid: info.pid });
                    episodes.close(&name, "unreachable");
                    backoff = BACKOFF_MIN;
                    heartbeat_at = now + s.heartbeat;
                }
                Err(e) => {
                    unreachable(&name, &node, &mut episodes, &e);
                    process = None;
                    heartbeat_at = now + backoff;
                    backoff = next_backoff(backoff);
                    continue;
                }
            }
        }
        let wanted = desires(
            &now_board,
            &holds,
            &s.backends,
            Instant::now().into_std(),
            s.push_up_after,
        );
        let retry_due = retry_at.is_some_and(|t| Instant::now() >= t);
        if applied.as_ref() == Some(&wanted) && !retry_due {
            continue;
        }
        match pass(&s, &now_board, &wanted, &stats, &node, &name, &mut episodes).await {
            Ok(Pass::Done) => {
                applied = Some(wanted);
                retry_at = None;
                backoff = BACKOFF_MIN;
            }
            Ok(Pass::Mismatch) => {
                applied = Some(wanted);
                retry_at = Some(Instant::now() + backoff);
                backoff = next_backoff(backoff);
            }
            Err(e) => {
                stats.count("unreachable");
                unreachable(&name, &node, &mut episodes, &e);
                process = None;
                applied = None;
                heartbeat_at = Instant::now() + backoff;
                backoff = next_backoff(backoff);
            }
        }
    }
}

fn unreachable(name: &str, node: &Node, episodes: &mut Episodes, e: &Failure) {
    node.set(Conn::Unreachable {
        error: e.to_string(),
    });
    episodes.open(
        name,
        "unreachable",
        format!("HAProxy runtime socket unreachable ({e}); retrying with backoff; its own checks still apply"),
    );
}

async fn show_state(s: &Settings, backend: Option<&str>) -> Result<Vec<ServerRow>, Failure> {
    let cmd = api::show_servers_state(backend).ok_or(Failure::Reply(ReplyError::Malformed(
        "invalid backend name",
    )))?;
    let reply = command(&s.endpoint, &cmd, s.timeout).await?;
    api::parse_servers_state(&reply).map_err(Failure::Reply)
}

/// Read, plan, send, verify. An `Err` means the socket failed (not a refused command).
#[allow(clippy::too_many_arguments)]
async fn pass(
    s: &Settings,
    board: &Board,
    wanted: &Desires,
    stats: &Stats,
    node: &Node,
    name: &str,
    episodes: &mut Episodes,
) -> Result<Pass, Failure> {
    let started = Instant::now();
    let rows = show_state(s, None).await?;
    let owners = Owners::new(board, s.server.as_deref());
    let desire_of = |target: &str, backend: usize| {
        wanted
            .get(target)
            .and_then(|d| d.get(backend))
            .copied()
            .unwrap_or_default()
    };
    let (planned, missing) = plan(&rows, &s.backends, &owners, desire_of);
    let mut problems = BTreeMap::new();
    for m in &missing {
        stats.count("no_such_server");
        let (k, msg) = match m {
            Missing::Backend(b) => (format!("backend {b}"), format!("HAProxy has no backend {b}: nothing pushed for it")),
            Missing::Server(b) if board.named => (
                format!("backend {b} has no server of these targets"),
                format!("no server of backend {b} is a target of this checker (matched by address and port, else by name)"),
            ),
            Missing::Server(b) => (
                format!("backend {b} has no server of this target"),
                format!("no server of backend {b} has this target's address and port (set `server` in [[haproxy]] to name it)"),
            ),
        };
        problems.insert(k, msg);
    }
    let mut sent: Vec<&Planned> = Vec::new();
    for p in &planned {
        let key = format!("{}/{} {}", p.backend, p.server, p.change);
        let Some(cmd) = api::set_server(&p.backend, &p.server, &p.change) else {
            stats.count("rejected");
            problems.insert(
                key.clone(),
                format!("{key}: not sent (the name cannot be sent safely)"),
            );
            continue;
        };
        let reply = command(&s.endpoint, &cmd, s.timeout).await?;
        match api::classify_set_reply(&reply) {
            Ok(()) => sent.push(p),
            Err(e) => {
                stats.count(e.label());
                problems.insert(key.clone(), format!("{key}: {e}"));
            }
        }
    }
    node.pushes
        .fetch_add(sent.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut outcome = Pass::Done;
    if !sent.is_empty() {
        let touched: BTreeSet<&str> = sent.iter().map(|p| p.backend.as_str()).collect();
        let mut after = Vec::new();
        for b in touched {
            after.extend(show_state(s, Some(b)).await?);
        }
        let (still, _) = plan(&after, &s.backends, &owners, desire_of);
        for p in sent {
            if still.contains(p) {
                stats.count("mismatch");
                let key = format!("{}/{} {}", p.backend, p.server, p.change);
                problems.insert(
                    format!("{key} not applied"),
                    format!("{key} was accepted but show servers state disagrees; retrying with backoff"),
                );
                outcome = Pass::Mismatch;
            } else {
                stats.count("ok");
                stats.latency(started.elapsed());
                tracing::info!(
                    haproxy = name,
                    "push: {}/{} {}",
                    p.backend,
                    p.server,
                    p.change
                );
            }
        }
    }
    // The unreachable episode is the heartbeat's; keep it as it is.
    if let Some(m) = episodes.open.get("unreachable").cloned() {
        problems.insert("unreachable".into(), m);
    }
    episodes.settle(name, problems);
    Ok(outcome)
}
