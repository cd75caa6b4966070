//! `mysqlchk inetd`: one HTTP exchange on stdin/stdout, for xinetd or systemd
//! `Accept=yes` — a drop-in for the classic script.
//!
//! Invariants: nothing is ever written to stderr (it is the client's socket there: the
//! caller points fd 2 at /dev/null before anything else); one deadline covers reading
//! the request, the direct round and the write; the exit status is always 0; the
//! answer is the same as the daemon's for the same facts (shared evaluation).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::config::{self, Config};
use crate::fleet::{Fleet, Target};
use crate::metrics::Metrics;
use crate::respond::access::allowed;
use crate::respond::endpoints::{respond, EndpointInputs};
use crate::respond::http::{parse, Method, Parsed, Request, Response, MAX_REQUEST};
use crate::snapshot::Published;

/// The peer on stdin when it is a TCP socket; `None` for a pipe or terminal.
fn stdin_peer() -> Option<IpAddr> {
    let stdin = std::io::stdin();
    let sock = socket2::SockRef::from(&stdin);
    sock.peer_addr().ok()?.as_socket().map(|a| a.ip())
}

pub fn run(cli_path: Option<&Path>) -> i32 {
    crate::sys::silence_stderr();
    let env = config::process_env();
    let (path, explicit) = config::config_path(cli_path, &env);
    let reply = match config::load(&path, explicit, &env) {
        // Fleet mode: inetd answers for a single server, the only [[target]] if there
        // is one; several need `serve` (which can tell them apart).
        Ok(loaded) => match loaded.config.select_target(None) {
            Ok((cfg, _)) => exchange(&cfg),
            Err(_) => Response::text(
                503,
                "health: down - inetd serves one server; with several [[target]] run mysqlchk serve",
            )
            .render(0, false),
        },
        Err(_) => Response::text(
            503,
            "health: down - mysqlchk configuration invalid (run mysqlchk validate)",
        )
        .render(0, false),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&reply);
    let _ = out.flush();
    0
}

/// A command line `mysqlchk inetd` could not parse (a typo in the xinetd or systemd
/// unit): read the request as usual, then answer 503 saying so, on stdout only.
/// Returns the exit status, 0 as always.
pub fn usage_error() -> i32 {
    crate::sys::silence_stderr();
    let reply = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            // No config to read request_timeout from: its default.
            let req = rt.block_on(read_request(Duration::from_secs(2)));
            rt.shutdown_background();
            let (minor, head) = match &req {
                Ok(r) => (r.minor, r.method == Method::Head),
                Err(_) => (0, false),
            };
            Response::text(
                503,
                "health: down - mysqlchk inetd: invalid command line (see mysqlchk inetd --help)",
            )
            .render(minor, head)
        }
        Err(_) => Response::text(503, "health: down - internal error").render(0, false),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&reply);
    let _ = out.flush();
    0
}

/// The whole budget: request read, connect, three steps, and a little slack.
fn budget(cfg: &Config) -> Duration {
    cfg.listen
        .request_timeout
        .saturating_add(cfg.mysql.connect_timeout)
        .saturating_add(cfg.check.timeout.saturating_mul(3))
}

fn exchange(cfg: &Config) -> Vec<u8> {
    let peer = stdin_peer();
    if let Some(ip) = peer {
        if !allowed(&cfg.listen.allow, ip) {
            // As the daemon: not a byte for a peer outside the allowlist.
            return Vec::new();
        }
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Response::text(503, "health: down - internal error").render(0, false);
    };
    let started = Instant::now();
    // Saturating arithmetic: a deadline that cannot be represented expires at once
    // (a 503) rather than panicking.
    let deadline = started.checked_add(budget(cfg)).unwrap_or(started);
    let out = rt.block_on(async {
        let req = match read_request(cfg.listen.request_timeout).await {
            Ok(r) => r,
            Err(resp) => return resp.render(1, false),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let published = Arc::new(Published::new());
        match tokio::time::timeout(left, crate::checker::direct_round(cfg)).await {
            Ok(snap) => published.publish(snap),
            Err(_) => {
                return Response::text(503, "health: down - timeout").render(req.minor, false);
            }
        }
        let metrics = Metrics::new();
        let now = Instant::now();
        let fleet = Fleet::single(Arc::new(Target::configured(
            "",
            Arc::new(cfg.clone()),
            published.clone(),
        )));
        let render = || metrics.render(fleet.targets(), fleet.is_named(), false, now);
        let inputs = EndpointInputs {
            config: cfg,
            fleet: &fleet,
            peer: peer.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            now,
            metrics: &render,
            push: None,
            discovery: None,
        };
        let (resp, _) = respond(&req, &inputs);
        resp.render(req.minor, req.method == Method::Head)
    });
    // The stdin reader may still be blocked in a read: do not wait for it.
    rt.shutdown_background();
    out
}

/// Read one request head from stdin. A client that sends nothing and closes gets the
/// health answer, as the classic script (which never read) gave it.
async fn read_request(limit: Duration) -> Result<Request, Response> {
    let mut stdin = tokio::io::stdin();
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    let now = tokio::time::Instant::now();
    let until = now.checked_add(limit).unwrap_or(now);
    loop {
        let n = match tokio::time::timeout_at(until, stdin.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => return Err(Response::text(408, "request timeout")),
        };
        if n == 0 {
            if buf.is_empty() {
                return Ok(Request {
                    method: Method::Get,
                    path: "/".into(),
                    query: None,
                    minor: 0,
                    head_len: 0,
                    has_body: false,
                    server_state: None,
                });
            }
            return Err(Response::text(400, "incomplete request"));
        }
        let room = MAX_REQUEST.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        match parse(&buf) {
            Parsed::Partial => continue,
            Parsed::Complete(r) => return Ok(r),
            Parsed::Reject(r) => return Err(r),
        }
    }
}
