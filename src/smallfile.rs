//! Bounded, non-blocking reads of the small files we re-read while running: the
//! maintenance flag, the password file, option files.
//!
//! [`read`] opens with `O_NONBLOCK|O_NOCTTY|O_CLOEXEC` (and `O_NOFOLLOW` when asked),
//! checks type and size on the open descriptor (no window between a check of the
//! path and the open), refuses anything but a regular file, and reads at most
//! `limit + 1` bytes whatever the file claims. A FIFO or a device can therefore never
//! block the open or the read, and a huge file costs one `fstat`.
//!
//! A regular file on a hung NFS or FUSE mount still blocks in the kernel, so async
//! code goes through [`off_worker`]: the read runs on tokio's blocking pool under a
//! deadline, and at most one read per path is ever outstanding — while an earlier one
//! is stuck, the next caller is told so at once instead of parking another thread.
//! The blocking pool therefore holds at most one thread per configured file however
//! long a mount hangs.
//!
//! Errors never carry the file's contents, only what is wrong with it.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Whether a symbolic link as the last path component is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// Why a file could not be read. `Display` is a predicate for a sentence whose
/// subject names the file ("maintenance file {e}").
#[derive(Debug)]
pub enum Error {
    /// Opening failed (also: does not exist, see [`Error::is_missing`]).
    Io(io::Error),
    /// A symbolic link where [`Links::Refuse`] was asked.
    Symlink,
    /// A FIFO, directory, socket or device.
    NotRegular(&'static str),
    /// More than the limit, in bytes.
    TooLarge(u64),
    /// [`off_worker`]: no answer within the deadline.
    TimedOut(Duration),
    /// [`off_worker`]: an earlier read of the same path has not returned yet.
    Stuck,
}

impl Error {
    /// The file (or a directory on its path) does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, Error::Io(e) if e.kind() == io::ErrorKind::NotFound
            || e.raw_os_error() == Some(libc::ENOTDIR))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "cannot be read: {e}"),
            Error::Symlink => f.write_str("is a symbolic link (not followed)"),
            Error::NotRegular(what) => write!(f, "is not a regular file (a {what})"),
            Error::TooLarge(limit) => write!(f, "is larger than {limit} bytes"),
            Error::TimedOut(d) => write!(f, "did not answer within {d:?} (hung mount?)"),
            Error::Stuck => f.write_str("has an earlier read still hanging (hung mount?)"),
        }
    }
}

impl std::error::Error for Error {}

/// Read all of `path` if it is a regular file of at most `limit` bytes. Blocking only
/// where the file system itself blocks (see the module header).
pub fn read(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, Error> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    // std adds O_CLOEXEC itself.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        // O_NOFOLLOW on a symlink fails with ELOOP.
        Err(e) if links == Links::Refuse && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::Symlink)
        }
        Err(e) => return Err(Error::Io(e)),
    };
    // fstat of what we opened: no path to swap between the check and the read.
    let meta = file.metadata().map_err(Error::Io)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(Error::NotRegular(if ft.is_fifo() {
            "FIFO"
        } else if ft.is_dir() {
            "directory"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "device"
        } else {
            "special file"
        }));
    }
    if meta.len() > limit {
        return Err(Error::TooLarge(limit));
    }
    // The size can change after fstat: read one byte over the limit, never more.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Error::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge(limit));
    }
    Ok(bytes)
}

/// Paths with a read in flight on the blocking pool.
static PENDING: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Marks `key` as being read until dropped (also when the read panics).
struct Claim(PathBuf);

impl Claim {
    fn take(key: &Path) -> Option<Claim> {
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .get_or_insert_with(HashSet::new)
            .insert(key.to_owned())
            .then(|| Claim(key.to_owned()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = pending.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// Run the file-system work `f` (which reads `key`, and perhaps what it names) on the
/// blocking pool, waiting at most `deadline`. A read that misses the deadline keeps
/// its thread until the kernel lets go; meanwhile every call for the same `key`
/// returns [`Error::Stuck`] at once.
pub async fn off_worker<T, F>(key: &Path, deadline: Duration, f: F) -> Result<T, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(claim) = Claim::take(key) else {
        return Err(Error::Stuck);
    };
    let task = tokio::task::spawn_blocking(move || {
        let _claim = claim;
        f()
    });
    match tokio::time::timeout(deadline, task).await {
        Ok(Ok(v)) => Ok(v),
        // A panic in `f`, or the runtime shutting down.
        Ok(Err(e)) => Err(Error::Io(io::Error::other(e.to_string()))),
        Err(_) => Err(Error::TimedOut(deadline)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn mkfifo(p: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn regular_file_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read(&p, 10, Links::Refuse).unwrap(), b"0123456789");
        assert_eq!(read(&p, 64, Links::Follow).unwrap(), b"0123456789");
        assert!(matches!(
            read(&p, 9, Links::Refuse),
            Err(Error::TooLarge(9))
        ));
        std::fs::write(&p, b"").unwrap();
        assert_eq!(read(&p, 0, Links::Refuse).unwrap(), b"");
    }

    #[test]
    fn huge_sparse_file_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let f = File::create(&p).unwrap();
        f.set_len(1 << 40).unwrap();
        let e = read(&p, 64 * 1024, Links::Refuse).unwrap_err();
        assert_eq!(e.to_string(), "is larger than 65536 bytes");
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        mkfifo(&p);
        // Without O_NONBLOCK the open would wait for a writer forever.
        for links in [Links::Refuse, Links::Follow] {
            let e = read(&p, 1024, links).unwrap_err();
            assert_eq!(e.to_string(), "is not a regular file (a FIFO)");
        }
    }

    #[test]
    fn symlink_refused_or_followed_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read(&link, 8, Links::Refuse), Err(Error::Symlink)));
        assert_eq!(read(&link, 8, Links::Follow).unwrap(), b"x");
        // Followed to a FIFO: still refused, still without blocking.
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let to_fifo = dir.path().join("to-fifo");
        std::os::unix::fs::symlink(&fifo, &to_fifo).unwrap();
        assert!(matches!(
            read(&to_fifo, 8, Links::Follow),
            Err(Error::NotRegular("FIFO"))
        ));
        assert!(matches!(
            read(&to_fifo, 8, Links::Refuse),
            Err(Error::Symlink)
        ));
    }

    #[test]
    fn directory_device_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(dir.path(), 8, Links::Refuse),
            Err(Error::NotRegular("directory"))
        ));
        assert!(matches!(
            read(Path::new("/dev/zero"), 8, Links::Follow),
            Err(Error::NotRegular("device"))
        ));
        let missing = read(&dir.path().join("nope"), 8, Links::Refuse).unwrap_err();
        assert!(missing.is_missing(), "{missing}");
        let under_file = dir.path().join("f");
        std::fs::write(&under_file, b"").unwrap();
        assert!(read(&under_file.join("x"), 8, Links::Refuse)
            .unwrap_err()
            .is_missing());
    }

    #[tokio::test]
    async fn a_hung_read_times_out_and_is_not_started_twice() {
        let key = Path::new("/smallfile-test/hung");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let first = off_worker(key, Duration::from_millis(50), move || rx.recv()).await;
        assert!(matches!(first, Err(Error::TimedOut(_))), "{first:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Still hanging: refused at once, nothing new on the blocking pool.
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        let second = off_worker(key, Duration::from_secs(5), move || {
            r.store(true, std::sync::atomic::Ordering::SeqCst)
        })
        .await;
        assert!(matches!(second, Err(Error::Stuck)), "{second:?}");
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        // Once it returns, the path can be read again.
        tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match off_worker(key, Duration::from_secs(5), || 7).await {
                Ok(v) => break assert_eq!(v, 7),
                Err(Error::Stuck) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}
