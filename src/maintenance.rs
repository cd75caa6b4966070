//! The maintenance flag: a small file whose presence means "drain me".
//!
//! Format: `reason=<text>` and `since=<RFC 3339 time>` lines. The daemon re-reads it
//! every round (not by mtime: a change must show within one interval whatever the
//! file system's timestamp granularity) and it survives restarts. Writing is safe
//! against symlink tricks: a temporary file created with `O_EXCL|O_NOFOLLOW` in the
//! same directory, then renamed over the flag.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub reason: String,
    pub since: String,
}

/// The flag, if set. An unreadable flag file still means maintenance: the operator
/// asked for it, and failing open would put a drained server back into rotation.
pub fn read(path: &Path) -> Option<Maintenance> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return Some(Maintenance {
            reason: "maintenance file is not a regular file".into(),
            since: String::new(),
        });
    }
    let text = match std::fs::read(path) {
        Ok(b) if b.len() <= 64 * 1024 => String::from_utf8_lossy(&b).into_owned(),
        _ => {
            return Some(Maintenance {
                reason: "maintenance file unreadable".into(),
                since: String::new(),
            })
        }
    };
    Some(parse(&text))
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
