//! Telling HAProxy at once (README "Pushing state to HAProxy"): verdict changes are
//! pushed through HAProxy's runtime API (`set server … health|state`), verified with
//! `show servers state`, and re-applied after an HAProxy reload. HAProxy's own checks
//! stay configured as the safety net: a lost push is corrected at their next `inter`.
//!
//! - `api`: the command and reply texts (pure);
//! - `desired`: every target's verdicts → what each server line should be (a line is a
//!   target's by its address and port, else by its name), and the plan (pure);
//! - `client`: one task per `[[haproxy]]` entry that applies the plan and verifies it;
//! - `stats`: push results, latency and connection states for `/metrics` and `/status`.
//!
//! Invariants: responders never wait on a push; mysqlchk never sends `maint`, `disable`
//! or `weight` (the operator's).

pub(crate) mod api;
pub(crate) mod client;
pub(crate) mod desired;
pub(crate) mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, HaproxySocket};
use crate::snapshot::VerdictNews;
use client::{Endpoint, Settings};
use desired::Board;
use stats::{Node, Stats};

/// One pusher's settings per `[[haproxy]]` entry.
fn settings(cfg: &Config) -> Vec<Settings> {
    cfg.haproxy
        .iter()
        .map(|h| Settings {
            endpoint: match &h.socket {
                HaproxySocket::Unix(p) => Endpoint::Unix(p.clone()),
                HaproxySocket::Tcp(a) => Endpoint::Tcp(a.to_string()),
            },
            backends: h.backends.clone(),
            server: h.server.clone(),
            push_up_after: h.push_up_after,
            // A runtime command is answered in microseconds; a second means a hung or
            // unreachable HAProxy, and never holds up another node.
            timeout: Duration::from_secs(1),
            heartbeat: cfg
                .check
                .interval
                .clamp(Duration::from_millis(250), Duration::from_secs(2)),
        })
        .collect()
}

/// Run one pusher per `[[haproxy]]` entry until `shutdown`, each reading every target's
/// verdicts from `board` (the fleet's, `Fleet::board`) when `news` rings; a reload that
/// changes the entries replaces them all (a change of targets does not: the pushers
/// read the board anew).
pub(crate) async fn supervise(
    config: Arc<ArcSwap<Config>>,
    board: impl Fn() -> Board + Clone + Send + 'static,
    news: VerdictNews,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let mut current: Vec<Settings> = Vec::new();
    let mut running: Option<CancellationToken> = None;
    loop {
        let wanted = settings(&config.load());
        if wanted != current || running.is_none() {
            if let Some(t) = running.take() {
                t.cancel();
            }
            let token = shutdown.child_token();
            let nodes: Vec<Arc<Node>> = wanted
                .iter()
                .map(|s| Arc::new(Node::new(s.endpoint.to_string())))
                .collect();
            for (s, node) in wanted.iter().zip(&nodes) {
                tokio::spawn(client::run(
                    s.clone(),
                    board.clone(),
                    news.subscribe(),
                    node.clone(),
                    stats.clone(),
                    token.clone(),
                ));
            }
            stats.set_nodes(nodes);
            current = wanted;
            running = Some(token);
        }
        // Reload is rare; looking once a second costs one pointer load.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// `/status`: each HAProxy connection's state.
pub(crate) fn status(stats: &Stats, now: Instant) -> serde_json::Value {
    serde_json::Value::Array(
        stats
            .nodes()
            .iter()
            .map(|n| {
                let (conn, since) = n.get();
                let mut v = serde_json::json!({
                    "socket": n.name,
                    "since_seconds": since.map(|s| now.saturating_duration_since(s).as_secs_f64()),
                    "pushes": n.pushes.load(std::sync::atomic::Ordering::Relaxed),
                    "reapplied": n.reapplied.load(std::sync::atomic::Ordering::Relaxed),
                });
                match conn {
                    stats::Conn::Connecting => v["state"] = "connecting".into(),
                    stats::Conn::Connected { pid } => {
                        v["state"] = "connected".into();
                        v["pid"] = pid.into();
                    }
                    stats::Conn::Unreachable { error } => {
                        v["state"] = "unreachable".into();
                        v["error"] = error.into();
                    }
                }
                v
            })
            .collect(),
    )
}
