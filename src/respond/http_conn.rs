//! One HTTP exchange per connection: the synchronous first look at accept time (most
//! checks are answered there), and the asynchronous rest for everything else.
//!
//! Invariants: the request head is read under one total deadline
//! (`listen.request_timeout`) and a size cap, then answered in one write; we then shut
//! down our side and drain what the peer still sends for a moment, so unread bytes do
//! not turn into an RST that eats the response (HAProxy often closes with RST);
//! ECONNRESET/EPIPE are normal.
//!
//! With `listen.tls_cert` set (README, "HTTPS") the first look reads nothing: every
//! connection goes to the asynchronous path, whose TLS handshake runs under the same
//! deadline as the request head, after admission; a failed handshake is closed with
//! nothing served in clear.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
                FirstLook::Continue(prefix) => {
                    // TLS when configured and nothing was read in clear: a connection
                    // the first look read plain bytes from, before a reload turned TLS
                    // on, stays plain.
                    let tls = if prefix.is_empty() {
                        tls_config(&responder)
                    } else {
                        None
                    };
                    match tls {
                        Some(server) => handle_tls(stream, peer, &responder, server).await,
                        None => {
                            let deadline = request_deadline(&responder);
                            handle(stream, peer, &responder, prefix, deadline, false).await
                        }
                    }
                }
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
                let mut text = responder.metrics.render(
                    fleet.targets(),
                    fleet.is_named(),
                    !cfg.haproxy.is_empty(),
                    now,
                );
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
    // A presence test: no need to clone the server configuration on every check.
    if responder.config.load().listen.tls.is_some() {
        // The handshake needs the asynchronous path; read nothing here.
        return FirstLook::Continue(Vec::new());
    }
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

/// The server configuration when the HTTP listeners speak TLS.
fn tls_config(responder: &Responder) -> Option<Arc<rustls::ServerConfig>> {
    responder
        .config
        .load()
        .listen
        .tls
        .as_ref()
        .map(|t| t.server.clone())
}

/// The one deadline of a connection: handshake (with TLS) and request head.
fn request_deadline(responder: &Responder) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    // A validated request_timeout is at most a day; an unrepresentable deadline
    // answers 408 at once instead of panicking.
    now.checked_add(responder.config.load().listen.request_timeout)
        .unwrap_or(now)
}

/// The TLS handshake, then the exchange inside it, all under one deadline. A failed
/// or late handshake is closed: there is no channel to answer on.
async fn handle_tls(
    stream: TcpStream,
    peer: IpAddr,
    responder: &Responder,
    server: Arc<rustls::ServerConfig>,
) {
    let deadline = request_deadline(responder);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => handle(tls, peer, responder, Vec::new(), deadline, true).await,
        Ok(Err(e)) => handshake_failed(peer, &e),
        Err(_) => handshake_failed(peer, &"no handshake within listen.request_timeout"),
    }
}

/// Handshake failures (a client without the right certificate, plain HTTP on the
/// HTTPS port, a scanner) are logged at most once a minute.
fn handshake_failed(peer: IpAddr, e: &dyn std::fmt::Display) {
    use std::sync::Mutex;
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        tracing::warn!(%peer, "TLS handshake failed: {e} (logged at most once a minute)");
    }
}

/// One HTTP exchange, asynchronously, from the bytes already received. With `tls`
/// the answer always ends with a TLS close (close_notify), so clients see a clean end.
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: IpAddr,
    responder: &Responder,
    prefix: Vec<u8>,
    deadline: tokio::time::Instant,
    tls: bool,
) {
    let mut buf = prefix;
    let mut chunk = [0u8; 2048];
    loop {
        if !buf.is_empty() {
            if let Some((bytes, clean)) = answer(&buf, peer, responder) {
                finish(stream, &bytes, !clean || tls).await;
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
/// bytes do not turn into an RST that eats the answer. (For TLS, the shutdown is
/// the close_notify, and the flush pushes out what the TLS layer still buffers.)
async fn finish<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: &[u8], linger: bool) {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
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
