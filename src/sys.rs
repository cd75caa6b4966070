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
