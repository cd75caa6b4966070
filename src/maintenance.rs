//! The maintenance flag: a small file whose presence means "drain me".
//!
//! Format: `reason=<text>` and `since=<RFC 3339 time>` lines. The daemon re-reads it
//! every round (not by mtime: a change must show within one interval whatever the
//! file system's timestamp granularity) and it survives restarts. Reading is bounded
//! and never blocks the async workers (see `smallfile`); whatever is wrong with the
//! file (symlink, FIFO, too large, unreadable, hung) still means maintenance.
//! Writing is safe against symlink tricks: a temporary file created with
//! `O_EXCL|O_NOFOLLOW` in the same directory, then renamed over the flag.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub reason: String,
    pub since: String,
}

/// Largest flag file read; a real one is two short lines.
pub const MAX_SIZE: u64 = 64 * 1024;

/// The flag, if set. An unreadable flag file still means maintenance: the operator
/// asked for it, and failing open would put a drained server back into rotation. So
/// does anything but a regular file — a symlink (not followed), a FIFO, a directory —
/// and a file over [`MAX_SIZE`], which is refused without being read. Never blocks on
/// a FIFO; a hung mount does block: the daemon uses [`read_async`].
pub fn read(path: &Path) -> Option<Maintenance> {
    match crate::smallfile::read(path, MAX_SIZE, crate::smallfile::Links::Refuse) {
        Ok(bytes) => Some(parse(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.is_missing() => None,
        Err(e) => Some(unreadable(&e)),
    }
}

/// [`read`] off the async workers, answering within `deadline` whatever the file
/// system does; a read still hanging from an earlier round is reported at once.
pub async fn read_async(path: &Path, deadline: std::time::Duration) -> Option<Maintenance> {
    let owned = path.to_owned();
    crate::smallfile::off_worker(path, deadline, move || read(&owned))
        .await
        .unwrap_or_else(|e| Some(unreadable(&e)))
}

fn unreadable(e: &crate::smallfile::Error) -> Maintenance {
    Maintenance {
        reason: clean(&format!("maintenance file {e}")),
        since: String::new(),
    }
}

pub fn parse(text: &str) -> Maintenance {
    let mut m = Maintenance {
        reason: String::new(),
        since: String::new(),
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("reason=") {
            m.reason = clean(v);
        } else if let Some(v) = line.strip_prefix("since=") {
            m.since = clean(v);
        }
    }
    if m.reason.is_empty() {
        m.reason = "maintenance".into();
    }
    m
}

/// Reasons end up in HTTP bodies and agent lines: one printable line, bounded.
fn clean(v: &str) -> String {
    v.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Set the flag atomically.
pub fn write(path: &Path, reason: &str, now: SystemTime) -> std::io::Result<Maintenance> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Ok(meta) = std::fs::metadata(dir) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o002 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is writable by others: refusing to write the maintenance flag there",
                    dir.display()
                ),
            ));
        }
    }
    let m = Maintenance {
        reason: clean(reason),
        since: humantime::format_rfc3339_seconds(now).to_string(),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "maintenance".into()),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let body = format!("reason={}\nsince={}\n", m.reason, m.since);
    let res = f
        .write_all(body.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|_| m)
}

/// Clear the flag; clearing an absent flag is fine.
pub fn clear(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("maint");
        assert_eq!(read(&p), None);
        let m = write(&p, "kernel upgrade\n", SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(m.reason, "kernel upgrade");
        assert_eq!(read(&p), Some(m));
        clear(&p).unwrap();
        assert_eq!(read(&p), None);
        clear(&p).unwrap();
    }

    /// Whatever is wrong with the flag file, it still means maintenance, says what is
    /// wrong, and is found without blocking or reading a huge file.
    #[test]
    fn odd_flag_files_mean_maintenance_and_name_the_culprit() {
        let dir = tempfile::tempdir().unwrap();
        let reason = |p: &Path| read(p).map(|m| m.reason);

        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            reason(&fifo).as_deref(),
            Some("maintenance file is not a regular file (a FIFO)")
        );

        let real = dir.path().join("real");
        std::fs::write(&real, "reason=x\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(
            reason(&link).as_deref(),
            Some("maintenance file is a symbolic link (not followed)")
        );

        let huge = dir.path().join("huge");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(100 * 1024 * 1024)
            .unwrap();
        assert_eq!(
            reason(&huge).as_deref(),
            Some("maintenance file is larger than 65536 bytes")
        );
        let at_bound = dir.path().join("at-bound");
        let mut body = b"reason=edge\n".to_vec();
        body.resize(MAX_SIZE as usize, b'#');
        std::fs::write(&at_bound, &body).unwrap();
        assert_eq!(reason(&at_bound).as_deref(), Some("edge"));

        assert_eq!(
            reason(dir.path()).as_deref(),
            Some("maintenance file is not a regular file (a directory)")
        );
        assert_eq!(read(&dir.path().join("absent")), None);
        assert_eq!(read(&real.join("below-a-file")), None);
    }

    #[tokio::test]
    async fn async_read_matches_the_sync_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("maint");
        let deadline = std::time::Duration::from_secs(5);
        assert_eq!(read_async(&p, deadline).await, None);
        std::fs::write(&p, "reason=disk swap\n").unwrap();
        assert_eq!(
            read_async(&p, deadline).await.map(|m| m.reason).as_deref(),
            Some("disk swap")
        );
    }

    #[test]
    fn empty_file_still_means_maintenance() {
        assert_eq!(parse("").reason, "maintenance");
    }

    #[test]
    fn refuses_world_writable_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(write(&dir.path().join("m"), "x", SystemTime::now()).is_err());
    }
}
