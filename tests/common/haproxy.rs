//! Throw-away HAProxy instances (the system `haproxy` binary, in the
//! foreground; or the Debian 13 chroot's, see [`Haproxy::adopt`]) with an
//! admin socket to read server states from.

use super::process;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A running `haproxy -db` with a generated `global`/`defaults` preamble.
pub struct Haproxy {
    dir: TempDir,
    child: Option<Child>,
}

impl Haproxy {
    /// Writes [`Haproxy::config_text`] for `cfg_body` (the `listen` /
    /// `frontend` / `backend` sections), validates it with `haproxy -dW -c`
    /// (warnings are errors), starts `haproxy -db` and waits until its admin
    /// socket answers.
    pub fn start(cfg_body: &str) -> Haproxy {
        let dir = process::fixture_tempdir("haproxy");
        let cfg = Self::config_text(dir.path(), cfg_body);
        let cfg_path = dir.path().join("haproxy.cfg");
        fs::write(&cfg_path, &cfg).expect("cannot write haproxy.cfg");

        let mut check = Command::new("haproxy");
        check.arg("-dW").arg("-c").arg("-f").arg(&cfg_path);
        let out = process::run_with_timeout(check, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("haproxy -c (is haproxy installed?): {e}"));
        if !out.status.success() {
            panic!(
                "invalid HAProxy config ({}):\n{}{}\n--- haproxy.cfg ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                numbered(&cfg)
            );
        }

        let stdout = fs::File::create(dir.path().join("stdout.log")).expect("stdout.log");
        let stderr = fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child =
            process::spawn_guarded(cmd).unwrap_or_else(|e| panic!("cannot spawn haproxy: {e}"));
        let mut hap = Haproxy {
            dir,
            child: Some(child),
        };
        let start = Instant::now();
        loop {
            if let Some(status) = hap.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                hap.child = None;
                panic!("haproxy exited during startup ({status}):\n{}", hap.log());
            }
            if hap.try_admin("show info").is_ok() {
                return hap;
            }
            if start.elapsed() >= Duration::from_secs(15) {
                panic!(
                    "haproxy admin socket not answering after 15 s:\n{}",
                    hap.log()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Takes over a `haproxy -db` started elsewhere (the Debian 13 chroot's,
    /// see `trixie.rs`) whose admin socket is `<dir>/admin.sock` and whose
    /// output goes to `<dir>/stdout.log` and `<dir>/stderr.log`; waits until
    /// the socket answers, as [`Haproxy::start`] does.
    pub fn adopt(dir: TempDir, child: Child) -> Haproxy {
        let mut hap = Haproxy {
            dir,
            child: Some(child),
        };
        let start = Instant::now();
        loop {
            if let Some(status) = hap.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                hap.child = None;
                panic!("haproxy exited during startup ({status}):\n{}", hap.log());
            }
            if hap.try_admin("show info").is_ok() {
                return hap;
            }
            if start.elapsed() >= Duration::from_secs(15) {
                panic!(
                    "haproxy admin socket not answering after 15 s:\n{}",
                    hap.log()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The full configuration written for `cfg_body` when the temp dir is
    /// `dir`: logs to stdout, admin socket `<dir>/admin.sock` (with `expose-fd
    /// listeners`, so a test can reload seamlessly with `haproxy -x` through it),
    /// mode tcp.
    pub fn config_text(dir: &Path, cfg_body: &str) -> String {
        format!(
            "global\n\
             \x20   log stdout format raw local0\n\
             \x20   stats socket {sock} mode 600 level admin expose-fd listeners\n\
             \x20   stats timeout 1m\n\
             \x20   nbthread 1\n\
             \n\
             defaults\n\
             \x20   mode tcp\n\
             \x20   log global\n\
             \x20   timeout connect 2s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             \x20   timeout check 2s\n\
             \n\
             {cfg_body}\n",
            sock = dir.join("admin.sock").display()
        )
    }

    /// Stops this HAProxy (SIGKILL): its admin socket stops answering.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    /// Starts a new `haproxy -db` process on the same config and admin socket (after
    /// [`Haproxy::stop`], or killing the running one first) and waits until it answers:
    /// a new process, as after a reload, with none of the old one's runtime state.
    pub fn restart(&mut self) {
        self.stop();
        let _ = fs::remove_file(self.admin_socket());
        let log = |name: &str| {
            fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(self.dir.path().join(name))
                .expect("haproxy log")
        };
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db")
            .arg("-f")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        self.child = Some(
            process::spawn_guarded(cmd).unwrap_or_else(|e| panic!("cannot spawn haproxy: {e}")),
        );
        let start = Instant::now();
        while self.try_admin("show info").is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "haproxy admin socket not answering after a restart:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("haproxy is not running")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// Captured stderr followed by stdout (HAProxy's log lines).
    pub fn log(&self) -> String {
        let read = |name: &str| {
            String::from_utf8_lossy(&fs::read(self.dir.path().join(name)).unwrap_or_default())
                .into_owned()
        };
        format!("{}{}", read("stderr.log"), read("stdout.log"))
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends one command to the admin socket and returns the full answer.
    pub fn admin(&self, cmd: &str) -> String {
        self.try_admin(cmd)
            .unwrap_or_else(|e| panic!("haproxy admin command {cmd:?}: {e}"))
    }

    pub fn try_admin(&self, cmd: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(self.admin_socket())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(format!("{cmd}\n").as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// `show stat` as one column → value map per row (`pxname`, `svname`,
    /// `status`, `check_status`, `last_chk`, `last_agt`, ...).
    pub fn stat_rows(&self) -> Vec<BTreeMap<String, String>> {
        let out = self.admin("show stat");
        let mut lines = out.lines();
        let header = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .unwrap_or_else(|| panic!("unexpected `show stat` output: {out:?}"));
        let cols = split_csv(header);
        lines
            .filter(|l| !l.is_empty())
            .map(|l| cols.iter().cloned().zip(split_csv(l)).collect())
            .collect()
    }

    /// One `show stat` field of `backend`/`server`, `None` if no such server.
    pub fn stat_field(&self, backend: &str, server: &str, field: &str) -> Option<String> {
        self.stat_rows()
            .into_iter()
            .find(|r| {
                r.get("pxname").map(String::as_str) == Some(backend)
                    && r.get("svname").map(String::as_str) == Some(server)
            })
            .map(|r| r.get(field).cloned().unwrap_or_default())
    }

    /// The `status` column for `backend`/`server`: "UP", "DOWN", "NOLB",
    /// "DRAIN", "MAINT", "no check", or transitional values such as
    /// "UP 1/3" as they are. Panics if there is no such server.
    pub fn server_state(&self, backend: &str, server: &str) -> String {
        self.stat_field(backend, server, "status")
            .unwrap_or_else(|| panic!("no server {backend}/{server} in `show stat`"))
    }

    /// Polls [`Haproxy::server_state`] every 100 ms until it equals `want`;
    /// returns the time it took, or panics with the last state, the last
    /// check/agent results and the HAProxy log.
    pub fn wait_for_state(
        &self,
        backend: &str,
        server: &str,
        want: &str,
        deadline: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let state = self.server_state(backend, server);
            if state == want {
                return start.elapsed();
            }
            if start.elapsed() >= deadline {
                let field = |f: &str| self.stat_field(backend, server, f).unwrap_or_default();
                panic!(
                    "{backend}/{server} is {state:?}, not {want:?}, after {deadline:?} \
                     (check_status {:?}, last_chk {:?}, agent_status {:?}, last_agt {:?})\n\
                     haproxy log:\n{}",
                    field("check_status"),
                    field("last_chk"),
                    field("agent_status"),
                    field("last_agt"),
                    self.log_tail(40)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Like [`Haproxy::wait_for_state`], but also requires a completed health
    /// check (`check_status` or `agent_status` set and not `INI`). HAProxy
    /// starts servers UP before their first check, so `wait_for_state("UP")`
    /// right after [`Haproxy::start`] may return before any check ran.
    pub fn wait_for_checked_state(
        &self,
        backend: &str,
        server: &str,
        want: &str,
        deadline: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let row = self.stat_rows().into_iter().find(|r| {
                r.get("pxname").map(String::as_str) == Some(backend)
                    && r.get("svname").map(String::as_str) == Some(server)
            });
            let row = row.unwrap_or_else(|| panic!("no server {backend}/{server} in `show stat`"));
            let checked = |f: &str| {
                let v = row.get(f).map(|v| v.trim_start_matches("* ")).unwrap_or("");
                !v.is_empty() && v != "INI"
            };
            if row.get("status").map(String::as_str) == Some(want)
                && (checked("check_status") || checked("agent_status"))
            {
                return start.elapsed();
            }
            if start.elapsed() >= deadline {
                // Reuse the detailed panic message.
                self.wait_for_state(
                    backend,
                    server,
                    &format!("{want} (checked)"),
                    Duration::ZERO,
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
            if thread::panicking() {
                eprintln!("--- haproxy log (tail) ---\n{}", self.log_tail(40));
            }
        }
    }
}

/// Splits one CSV line; HAProxy quotes fields holding commas or quotes
/// (`"a, b"`, `""` for a quote).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:3} {l}\n", i + 1))
        .collect()
}
