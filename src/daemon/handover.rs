//! SIGUSR2: hand the listening sockets over to a new process of the binary at our own
//! path, and report ready when we are that new process.
//!
//! Invariants:
//! - the new process gets the listening sockets as `LISTEN_FDS` plus one end of a
//!   pipe ([`READY_FD_ENV`]); the old one stops accepting only after the new one wrote
//!   to it, and the sockets are never closed in between (closing a listening socket
//!   resets what is queued on it);
//! - pinned sockets keep the name systemd gave them; the others are passed as
//!   `BY_ADDRESS`, so the new config decides whether they stay;
//! - a stop request while the new process has not said it accepts cancels the
//!   hand-over: the new process is killed and reaped before we stop, so no process is
//!   left serving under a pid nobody was told about; a failed one is reaped too, and
//!   we keep serving.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use super::listeners::BY_ADDRESS;
use super::{Daemon, Events};

/// Environment variable naming the descriptor a handed-over child reports on.
const READY_FD_ENV: &str = "MYSQLCHK_READY_FD";

/// How long the new process may take to accept (its first round included).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How a hand-over ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandOver {
    /// The new process accepts: stop this one.
    Done,
    /// It failed or did not report in time (and is gone): keep serving.
    Failed,
    /// A stop request arrived first; the new process was killed: stop.
    Stopped,
}

impl Daemon {
    /// Start the (new) binary with our sockets and wait until it reports ready, or a
    /// stop event cancels it (other events stay queued in `events`).
    pub(super) async fn hand_over(&mut self, events: &mut Events) -> HandOver {
        let Some(exe) = self.exe.clone() else {
            tracing::error!("hand-over impossible: the path of our executable is unknown");
            return HandOver::Failed;
        };
        let (read, write) = match crate::sys::pipe() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("hand-over impossible: {e}");
                return HandOver::Failed;
            }
        };
        let mut fds: Vec<i32> = self.running.iter().map(|r| r.fd).collect();
        // Pinned sockets keep the name systemd gave them, so they stay pinned in the
        // new process; the others must be listed by its config to be kept.
        let names: Vec<&str> = self
            .running
            .iter()
            .map(|r| if r.pinned { r.kind.name() } else { BY_ADDRESS })
            .collect();
        let n = fds.len();
        fds.push(write.as_raw_fd());
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(std::env::args_os().skip(1))
            .env("LISTEN_FDS", n.to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env(READY_FD_ENV, (3 + n).to_string())
            .env_remove("LISTEN_PID");
        crate::sys::pass_fds_on_exec(&mut cmd, fds);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("hand-over: cannot start {}: {e}", exe.display());
                return HandOver::Failed;
            }
        };
        drop(write);
        let pid = child.id();
        tracing::info!(
            pid,
            "hand-over: started {}, waiting for it to accept",
            exe.display()
        );
        let ready = tokio::time::timeout(
            READY_WITHIN,
            tokio::task::spawn_blocking(move || read_ready(read)),
        );
        // `biased`: a ready report that raced with the stop request wins, since the
        // new process then already serves and is the one to keep.
        let outcome = tokio::select! {
            biased;
            waited = ready => match waited {
                Ok(Ok(true)) => HandOver::Done,
                _ => HandOver::Failed,
            },
            _ = events.stop() => HandOver::Stopped,
        };
        if outcome == HandOver::Done {
            // The child runs on its own from here (re-parented to init when we exit);
            // dropping the handle neither waits for nor kills it.
            drop(child);
            tracing::info!("hand-over: the new process accepts; stopping this one");
            return outcome;
        }
        // A failed or cancelled child must neither linger as a zombie nor, if it is
        // still starting, begin accepting on the shared sockets later. It has not
        // accepted anything yet, so killing it loses nothing.
        let mut child = child;
        let reaped = tokio::task::spawn_blocking(move || {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        });
        if outcome == HandOver::Stopped {
            // Stop only once it is gone: otherwise it could outlive us, serving.
            let _ = tokio::time::timeout(Duration::from_secs(5), reaped).await;
            tracing::info!(
                pid,
                "hand-over cancelled by a stop request: new process killed"
            );
        } else {
            tracing::error!("hand-over: the new process did not report ready; keeping this one");
        }
        outcome
    }
}

/// Block until the child writes its ready line (or closes the pipe).
fn read_ready(fd: OwnedFd) -> bool {
    use std::io::Read;
    let mut f = std::fs::File::from(fd);
    let mut buf = [0u8; 16];
    matches!(f.read(&mut buf), Ok(n) if n > 0)
}

/// Tell a parent that handed its sockets to us that we accept now.
pub(super) fn report_ready(env: &BTreeMap<String, String>) {
    let Some(fd) = env.get(READY_FD_ENV).and_then(|v| v.parse::<i32>().ok()) else {
        return;
    };
    if let Some(fd) = crate::sys::adopt_fd(fd) {
        use std::io::Write;
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(b"READY\n");
    }
}
