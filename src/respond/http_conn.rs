//! One HTTP exchange per connection: the synchronous first look at accept time (most
//! checks are answered there), and the asynchronous rest for everything else.
//!
//! Invariants: the request head is read under one total deadline
//! (`listen.request_timeout`) and a size cap, then answered in one write; we then shut
//! down our side and drain what the peer still sends for a moment, so unread bytes do
//! not turn into an RST that eats the response (HAProxy often closes with RST);
//! ECONNRESET/EPIPE are normal.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::respond::accept::{accept_loop, FirstLook, Responder};
use crate::respond::endpoints::{respond, EndpointInputs};
use crate::respond::http::{parse, Method, Parsed, Response, MAX_REQUEST};

/// How long we keep reading after answering, so the peer's unread bytes are not
/// answered with an RST.
const LINGER: Duration = Duration::from_millis(500);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP port's accept loop.
pub async fn http_loop(
    listener: std::net::TcpListener,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    accept_loop(
        listener,
        responder,
        shutdown,
        tracker,
        http_fast,
        |stream, peer, responder, next| async move {
            match next {
                FirstLook::Finish(rest) => finish(stream, &rest, true).await,
                FirstLook::Continue(prefix) => handle(stream, peer, &responder, prefix).await,
                FirstLook::Done => {}
            }
        },
    )
    .await
}

/// The answer to what has been received, if it is a complete request (or a bad one):
/// the bytes to send and whether everything the peer sent has been read.
fn answer(buf: &[u8], peer: IpAddr, responder: &Responder) -> Option<(Vec<u8>, bool)> {
    let (response, minor, head_only, label, clean) = match parse(buf) {
        Parsed::Partial => return None,
        Parsed::Reject(r) => (r, 1, false, "other", false),
        Parsed::Complete(req) => {
            let cfg = responder.config.load();
            let fleet = responder.fleet.load();
            let now = Instant::now();
            let metrics = || {
                let targets: Vec<_> = fleet
                    .targets()
                    .iter()
                    .map(|t| {
                        let name = fleet.is_named().then_some(t.name.as_str());
                        (name, &t.config.check, &*t.published)
                    })
                    .collect();
                let mut text = responder
                    .metrics
                    .render(&targets, !cfg.haproxy.is_empty(), now);
                if !cfg.discover.is_empty() {
                    responder.metrics.discovery.render(&mut text);
                }
                text
            };
            let inputs = EndpointInputs {
                config: &cfg,
                fleet: &fleet,
                peer,
                now,
                metrics: &metrics,
                push: Some(&responder.metrics.push),
                discovery: Some(&responder.metrics.discovery),
            };
            let (r, label) = respond(&req, &inputs);
            if cfg.log.access_log {
                tracing::info!(%peer, path = %crate::respond::http::sanitize(&req.path), status = r.status, "request");
            }
            let clean = req.fully_read(buf.len());
            (r, req.minor, req.method == Method::Head, label, clean)
        }
    };
    responder.metrics.request(label, response.status);
    Some((response.render(minor, head_only), clean))
}

/// The synchronous first look (see [`FastPath`](crate::respond::accept::FastPath)).
fn http_fast(stream: &std::net::TcpStream, peer: IpAddr, responder: &Responder) -> FirstLook {
    use std::io::{Read, Write};
    let mut chunk = [0u8; 2048];
    let n = match (&*stream).read(&mut chunk) {
        Ok(0) => return FirstLook::Done,
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            return FirstLook::Continue(Vec::new())
        }
        Err(_) => return FirstLook::Done,
    };
    let Some((bytes, clean)) = answer(&chunk[..n], peer, responder) else {
        return FirstLook::Continue(chunk[..n].to_vec());
    };
    match (&*stream).write(&bytes) {
        Ok(w) if w == bytes.len() && clean => FirstLook::Done,
        Ok(w) => FirstLook::Finish(bytes[w..].to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => FirstLook::Finish(bytes),
        Err(_) => FirstLook::Done,
    }
}

/// One HTTP exchange, asynchronously, from the bytes already received.
pub async fn handle(mut stream: TcpStream, peer: IpAddr, responder: &Responder, prefix: Vec<u8>) {
    let now = tokio::time::Instant::now();
    // A validated request_timeout is at most a day; an unrepresentable deadline
    // answers 408 at once instead of panicking.
    let deadline = now
        .checked_add(responder.config.load().listen.request_timeout)
        .unwrap_or(now);
    let mut buf = prefix;
    let mut chunk = [0u8; 2048];
    loop {
        if !buf.is_empty() {
            if let Some((bytes, clean)) = answer(&buf, peer, responder) {
                finish(stream, &bytes, !clean).await;
                return;
            }
        }
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return, // closed early: nobody to answer
            Ok(Ok(n)) => n,
            Err(_) => {
                // Too slow (slowloris or a silent client): say so and close.
                let r = Response::text(408, "request timeout");
                responder.metrics.request("other", 408);
                finish(stream, &r.render(1, false), true).await;
                return;
            }
        };
        let room = MAX_REQUEST.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// One write, then close: at once when everything the peer sent was read, else
/// lingering — shut down our side and drain for a moment, so the peer's unread
/// bytes do not turn into an RST that eats the answer.
async fn finish(mut stream: TcpStream, bytes: &[u8], linger: bool) {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    if !linger {
        return;
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
