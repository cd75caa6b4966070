//! The few system calls std does not wrap. The crate's only `unsafe` lives here, each
//! block a single libc call on values we own.
#![allow(unsafe_code)]

/// Raise the open-file soft limit towards `want` (bounded by the hard limit), so
/// `listen.max_connections` can actually be reached. Returns the resulting soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    let target = want.min(lim.rlim_max);
    if target > lim.rlim_cur {
        let new = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            return target;
        }
    }
    lim.rlim_cur
}

/// Point file descriptor 2 at /dev/null. Under xinetd and systemd `Accept=yes`
/// stderr *is* the client's socket: one stray byte there corrupts the HTTP answer.
pub fn silence_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 on two descriptors we hold open; fd 2 is replaced atomically.
        unsafe {
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
}

/// Adopt an inherited listening socket (systemd socket activation, or our own
/// SIGUSR2 hand-over). `None` unless `fd` is an open TCP listening socket.
pub fn adopt_listener(fd: i32) -> Option<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open and was handed to us to own (LISTEN_FDS); from
    // here the TcpListener owns it and closes it once.
    let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    l.local_addr().ok()?;
    // Close-on-exec again: only an explicit hand-over passes it on.
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(l)
}

/// In a freshly forked child (before exec): place `fds` at 3, 4, ... without
/// close-on-exec, as LISTEN_FDS expects. Only async-signal-safe calls.
pub fn place_fds_for_exec(fds: &[i32]) -> std::io::Result<()> {
    // First move every descriptor above the target range, so that placing one
    // cannot overwrite another still to be placed.
    let mut high = [0i32; 64];
    for (i, &fd) in fds.iter().enumerate().take(64) {
        // SAFETY: F_DUPFD_CLOEXEC on an open descriptor; returns a new one >= 100.
        let h = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
        if h < 0 {
            return Err(std::io::Error::last_os_error());
        }
        high[i] = h;
    }
    for (i, &h) in high.iter().enumerate().take(fds.len().min(64)) {
        // SAFETY: dup2 onto 3+i; the new descriptor has close-on-exec cleared.
        if unsafe { libc::dup2(h, 3 + i as i32) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds, as systemd's `MONOTONIC_USEC` wants it (std's
/// `Instant` is opaque).
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two new descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Take ownership of an inherited descriptor number (the hand-over's ready pipe).
pub fn adopt_fd(fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: open, handed to us by our parent to own.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Make `cmd`'s child receive `fds` as descriptors 3, 4, ... (LISTEN_FDS style).
pub fn pass_fds_on_exec(cmd: &mut std::process::Command, fds: Vec<i32>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (fcntl, dup2) on descriptors we own.
    unsafe {
        cmd.pre_exec(move || place_fds_for_exec(&fds));
    }
}

/// A second descriptor for a listening socket we hold (same socket, same queue).
pub fn dup_listener(fd: i32) -> Option<std::net::TcpListener> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return None;
    }
    let l = adopt_listener(new)?;
    l.set_nonblocking(true).ok()?;
    Some(l)
}

/// Watch a listening socket for readiness (accepting stays ours, synchronously).
pub fn watch_listener(
    l: std::net::TcpListener,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::net::TcpListener>> {
    // SAFETY: the AsyncFd owns the listener, so its descriptor stays open and the same
    // for the AsyncFd's whole lifetime.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(l, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}
