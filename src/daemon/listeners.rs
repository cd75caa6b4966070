//! The listening sockets of `serve`: bound, or inherited from systemd or from our own
//! hand-over, all before the runtime starts.
//!
//! Invariants:
//! - a socket is bound with `SO_REUSEADDR`, and an IPv6 one with `IPV6_V6ONLY`;
//! - an inherited socket is kept only if it matches a configured listener (by address,
//!   or by its systemd name); one that matches none is closed, with a log line;
//! - only sockets systemd passed by name are pinned (kept whatever the config says); a
//!   hand-over passes its own bound sockets as [`BY_ADDRESS`], a name that matches no
//!   listener, so the new process keeps them only if its config lists their address;
//! - the activation variables are cleared from the environment once adopted, so no
//!   child we start sees them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};

use super::systemd::{self, inherited, match_inherited, Protocol};
use crate::config::Config;

/// `LISTEN_FDNAMES` entry for a handed-over socket that was not pinned: a name
/// `match_inherited` does not match, so only its address can keep it.
pub(super) const BY_ADDRESS: &str = "by-address";

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

/// Every listener the config asks for, with its protocol.
pub(super) fn wanted(cfg: &Config) -> Vec<(Protocol, SocketAddr)> {
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
