//! SIGHUP: re-read the config and apply it whole, or not at all.
//!
//! Invariants:
//! - the new config is validated and every new address bound before anything changes;
//!   a failure of either changes nothing and logs one line per error;
//! - a socket whose address is unchanged is kept (never closed and bound again), so no
//!   check is refused and nothing queued on it is lost; pinned sockets always stay;
//! - systemd hears `RELOADING=1` first and `READY=1` after, whatever the outcome.

use std::net::SocketAddr;
use std::sync::Arc;

use super::listeners::{bind, wanted, Bound};
use super::systemd::Protocol;
use super::Daemon;
use crate::config;
use crate::fleet::Fleet;

impl Daemon {
    /// Re-read and validate; bind new addresses; apply atomically or keep the old.
    pub(super) fn reload(&mut self) {
        self.notifier.reloading();
        let env = config::process_env();
        let loaded = match config::load(&self.path, self.explicit, &env) {
            Ok(l) => l,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("reload rejected: {e}");
                }
                tracing::error!("reload rejected: keeping the running configuration");
                self.notifier.notify("READY=1");
                return;
            }
        };
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let new = loaded.config;
        // Bind what is new before changing anything: a failure leaves all as it was.
        let mut fresh = Vec::new();
        for (kind, addr) in wanted(&new) {
            let same = self.running.iter().find(|r| r.addr == addr);
            let listener = match same {
                Some(r) if r.kind == kind => continue,
                // The address moves between http and agent: serve the same socket
                // under its new role (a duplicate descriptor; never closed or bound
                // again, so nothing queued on it is lost).
                Some(r) => crate::sys::dup_listener(r.fd)
                    .ok_or_else(|| std::io::Error::other("cannot duplicate the listening socket")),
                None => bind(addr),
            };
            match listener {
                Ok(listener) => fresh.push(Bound {
                    kind,
                    addr,
                    listener,
                    pinned: false,
                    inherited: false,
                }),
                Err(e) => {
                    tracing::error!("reload rejected: cannot listen on {addr}: {e}");
                    self.notifier.notify("READY=1");
                    return;
                }
            }
        }
        let keep: Vec<(Protocol, SocketAddr)> = wanted(&new);
        let old = self.config.load_full();
        let new = Arc::new(new);
        // Targets that stay keep their snapshot cell and prober; only what changed
        // is started, stopped or handed its new settings.
        self.discoverers.apply(&new.discover);
        let fleet = Fleet::with_discovered(
            new.clone(),
            &self.discoverers.found(),
            Some(&self.fleet.load()),
        );
        self.probers.apply(&fleet);
        self.fleet.store(Arc::new(fleet));
        self.config.store(new);
        // Targets may have come, gone or changed: the pushers look again.
        self.probers.news().tell();
        let fresh_count = fresh.len();
        for b in fresh {
            tracing::info!("now listening on {} ({})", b.addr, b.kind.name());
            self.start_loop(b);
        }
        let started = self.running.len() - fresh_count;
        let mut index = 0;
        self.running.retain(|r| {
            index += 1;
            // Loops started just now (the tail) stay.
            let stays = index > started || r.pinned || keep.contains(&(r.kind, r.addr));
            if !stays {
                tracing::info!("no longer listening on {} ({})", r.addr, r.kind.name());
                r.stop.cancel();
            }
            stays
        });
        if old.listen.max_connections != self.config.load().listen.max_connections {
            tracing::warn!("listen.max_connections takes effect at the next restart");
        }
        tracing::info!("reloaded {}", self.path.display());
        self.notifier.notify("READY=1");
    }

    /// Discovery changed what it knows: the fleet becomes the config's targets and the
    /// discovered ones; probers start and stop accordingly, kept targets keep theirs.
    pub(super) fn rediscover(&mut self) {
        let fleet = Fleet::with_discovered(
            self.config.load_full(),
            &self.discoverers.found(),
            Some(&self.fleet.load()),
        );
        self.probers.apply(&fleet);
        self.fleet.store(Arc::new(fleet));
        self.probers.news().tell();
    }
}
