//! Debian 13 ("trixie") servers: MariaDB 11.8 and HAProxy 3.0 run from a
//! minimal trixie chroot (`scripts/trixie-chroot.sh`, cached outside the
//! repository), while the host stays on Debian 12.
//!
//! A chroot shares the host's network, so its daemons listen on the host's
//! loopback and the host-built `mysqlchk` and the host's `mariadb` client reach
//! them over TCP. Everything a daemon reads or writes lives in a temp dir under
//! `<chroot>/tmp`, seen as `/tmp/...` inside: each such dir is removed on drop
//! (or at exit for shared servers), and dirs of dead test binaries are swept on
//! first use, as [`process::fixture_tempdir`] does for the host's temp dir.
//!
//! The chroot is built on first use if it is missing (that needs root and the
//! Debian mirror); when it cannot be, the tests fail with the script's output.
//! `MYSQLCHK_SKIP_TRIXIE=1` makes [`skip`] true, for local runs only.

use super::mariadb::{client, REPL_PASSWORD, REPL_USER};
use super::process::{self, AtExit};
use super::Haproxy;
use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where `scripts/trixie-chroot.sh` builds the chroot unless told otherwise.
pub const DEFAULT_DIR: &str = "/var/cache/mysqlchk/trixie";
/// Written last by the script: present means the chroot is complete.
const STAMP: &str = ".mysqlchk-trixie-ready";
/// A build from scratch took ~4 min here; a slow mirror may take much longer.
const BUILD_DEADLINE: Duration = Duration::from_secs(45 * 60);
/// How long a server may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(90);
/// Default deadline of one `mariadb` client invocation.
const SQL_TIMEOUT: Duration = Duration::from_secs(30);

/// True when `MYSQLCHK_SKIP_TRIXIE=1`: the caller should return without
/// testing (and says so on stderr). Meant for local runs without root or
/// network; CI never sets it.
pub fn skip() -> bool {
    let skip = std::env::var("MYSQLCHK_SKIP_TRIXIE").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("MYSQLCHK_SKIP_TRIXIE=1: Debian 13 (MariaDB 11.8, HAProxy 3.0) NOT tested");
    }
    skip
}

/// The chroot's root directory (`MYSQLCHK_TRIXIE_DIR`, default
/// [`DEFAULT_DIR`]), built first by `scripts/trixie-chroot.sh` if its stamp is
/// missing. Panics with the script's output when it cannot be built.
pub fn root() -> &'static Path {
    // The outcome is kept either way: a failed build is not retried by every
    // test of the binary.
    static ROOT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let dir = std::env::var_os("MYSQLCHK_TRIXIE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        if dir.join(STAMP).exists() {
            return Ok(dir);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/trixie-chroot.sh");
        eprintln!(
            "no Debian 13 chroot in {}: running {} (minutes)",
            dir.display(),
            script.display()
        );
        let mut cmd = Command::new("bash");
        cmd.arg(&script).env("MYSQLCHK_TRIXIE_DIR", &dir);
        let out = process::run_with_timeout(cmd, BUILD_DEADLINE);
        if matches!(&out, Ok(o) if o.status.success()) && dir.join(STAMP).exists() {
            eprintln!(
                "{}",
                fs::read_to_string(dir.join(STAMP)).unwrap_or_default()
            );
            return Ok(dir);
        }
        let detail = match out {
            Ok(o) => format!(
                "{}\n{}{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => e,
        };
        Err(format!(
            "the Debian 13 chroot (MariaDB 11.8, HAProxy 3.0) could not be built in {}: \
             these tests need it (run `sudo bash scripts/trixie-chroot.sh`, which needs \
             root and the Debian mirror; MYSQLCHK_SKIP_TRIXIE=1 skips them locally).\n{detail}",
            dir.display()
        ))
    });
    match root {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// A temp dir named `fixture-trixie-<kind>-XXXXXX` under `<chroot>/tmp`, with
/// an `owner.pid` file; the first call sweeps such dirs whose owner is dead.
pub fn chroot_tempdir(kind: &str) -> TempDir {
    static SWEEP: Once = Once::new();
    let tmp = root().join("tmp");
    SWEEP.call_once(|| {
        for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            if !entry.file_name().to_string_lossy().starts_with("fixture-") {
                continue;
            }
            let owner = fs::read_to_string(entry.path().join("owner.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if owner.is_some_and(|pid| !super::process_alive(pid)) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    });
    let dir = tempfile::Builder::new()
        .prefix(&format!("fixture-trixie-{kind}-"))
        .tempdir_in(&tmp)
        .unwrap_or_else(|e| panic!("cannot create a temp dir in {}: {e}", tmp.display()));
    fs::write(dir.path().join("owner.pid"), std::process::id().to_string())
        .unwrap_or_else(|e| panic!("cannot write owner.pid: {e}"));
    dir
}

/// The path a process inside the chroot sees for `host_path` (which must be
/// under [`root`]).
pub fn inner(host_path: &Path) -> PathBuf {
    let rel = host_path.strip_prefix(root()).unwrap_or_else(|_| {
        panic!(
            "{} is not inside the chroot {}",
            host_path.display(),
            root().display()
        )
    });
    Path::new("/").join(rel)
}

/// `chroot <root> <program>` with an environment of its own (nothing of the
/// test's, e.g. MYSQL_* variables, leaks in).
pub fn chroot_command(program: &str) -> Command {
    let mut cmd = Command::new("chroot");
    cmd.arg(root())
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C.UTF-8");
    cmd
}

/// Runs `chroot <root> <program> <args>` to completion; panics with its output
/// when it fails. Returns stdout.
pub fn chroot_run(program: &str, args: &[&str], timeout: Duration) -> String {
    let mut cmd = chroot_command(program);
    cmd.args(args);
    let out = process::run_with_timeout(cmd, timeout).unwrap_or_else(|e| panic!("{e}"));
    if !out.status.success() {
        panic!(
            "chroot {program} {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// MariaDB 11.8

/// A `mariadbd` 11.8 from the chroot with its own datadir, port and socket
/// under `<chroot>/tmp`, killed on drop.
///
/// As [`super::MariaDb`]: `root` has no password and logs in over TCP from
/// 127.0.0.1, binary logging is on, server ids are unique within the test
/// binary, the host cache is off. TLS is left as 11.8 ships it: on, with a
/// certificate the server generates at startup.
pub struct TrixieDb {
    dir: TempDir,
    port: u16,
    server_id: u32,
    extra: Vec<String>,
    child: Option<Child>,
}

impl TrixieDb {
    /// Starts a fresh server and waits until root can run `SELECT 1`; panics
    /// unless it reports version 11.8.
    pub fn start() -> TrixieDb {
        Self::start_with_args(&[])
    }

    /// Like [`TrixieDb::start`] with extra `mariadbd` options (appended, so
    /// they win), kept for [`TrixieDb::restart`].
    pub fn start_with_args(extra: &[&str]) -> TrixieDb {
        static NEXT_SERVER_ID: AtomicU32 = AtomicU32::new(1);
        let dir = chroot_tempdir("mariadb");
        process::copy_dir_all(template_datadir(), &dir.path().join("data"))
            .unwrap_or_else(|e| panic!("cannot copy the 11.8 template datadir: {e}"));
        let mut db = TrixieDb {
            dir,
            port: 0,
            server_id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        // Another process may take the port between free_port() and the bind.
        for attempt in 1.. {
            db.port = super::free_port();
            match db.try_spawn_and_wait() {
                Ok(()) => break,
                Err(e) if e.contains("Address already in use") && attempt < 5 => continue,
                Err(e) => panic!("{e}"),
            }
        }
        let version = db.sql("SELECT VERSION()");
        assert!(
            version.starts_with("11.8."),
            "the chroot's MariaDB is {version:?}, not 11.8"
        );
        db
    }

    /// A new server (`read_only=ON`) replicating from `primary` with GTID,
    /// once both replication threads run.
    pub fn start_replica_of(primary: &TrixieDb) -> TrixieDb {
        let replica = TrixieDb::start_with_args(&["--read-only=ON"]);
        replica.replicate_from(primary);
        replica
    }

    /// Creates the replication account on `primary` (idempotent), points this
    /// server at it and waits until both replication threads run.
    pub fn replicate_from(&self, primary: &TrixieDb) {
        primary.sql(&format!(
            "CREATE USER IF NOT EXISTS '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}'; \
             GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%';"
        ));
        self.sql(&format!(
            "STOP REPLICA; \
             CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
             MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', \
             MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; \
             START REPLICA;",
            primary.port()
        ));
        self.wait_replication_running(READY_DEADLINE);
    }

    /// Waits until both replication threads report `Yes`.
    pub fn wait_replication_running(&self, deadline: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let status = self.replica_status();
            let col = |k: &str| status.as_ref().and_then(|s| s.get(k)).map(String::as_str);
            if col("Slave_IO_Running") == Some("Yes") && col("Slave_SQL_Running") == Some("Yes") {
                return start.elapsed();
            }
            if start.elapsed() >= deadline {
                panic!(
                    "11.8 replica on port {} not replicating after {deadline:?}\n\
                     SHOW REPLICA STATUS: {status:#?}\nerror.log:\n{}",
                    self.port,
                    self.error_log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until this replica has applied what `primary` binlogged so far.
    pub fn sync_with(&self, primary: &TrixieDb) {
        let pos = primary.sql("SELECT @@GLOBAL.gtid_binlog_pos");
        let res = self.sql(&format!("SELECT MASTER_GTID_WAIT('{}', 30)", pos.trim()));
        assert_eq!(
            res.trim(),
            "0",
            "11.8 replica on port {} did not reach GTID {pos} within 30 s",
            self.port
        );
    }

    /// `SHOW REPLICA STATUS` as column → value, `None` if not a replica.
    pub fn replica_status(&self) -> Option<BTreeMap<String, String>> {
        self.query_rows("SHOW REPLICA STATUS").into_iter().next()
    }

    /// The rows of `stmt`'s (last) result set as column → value maps.
    pub fn query_rows(&self, stmt: &str) -> Vec<BTreeMap<String, String>> {
        let out = self
            .client("root", "", stmt, &["--column-names"], SQL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut lines = out.lines();
        let Some(header) = lines.next() else {
            return Vec::new();
        };
        let cols: Vec<&str> = header.split('\t').collect();
        lines
            .map(|l| {
                cols.iter()
                    .zip(l.split('\t'))
                    .map(|(c, v)| (c.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// Runs `stmt` as root over TCP with the host's client; stdout, trimmed of
    /// its trailing newline. Panics with stderr on error.
    pub fn sql(&self, stmt: &str) -> String {
        self.try_sql(stmt)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim_end()
            .to_string()
    }

    pub fn try_sql(&self, stmt: &str) -> Result<String, String> {
        self.client("root", "", stmt, &["--skip-column-names"], SQL_TIMEOUT)
    }

    fn client(
        &self,
        user: &str,
        password: &str,
        stmt: &str,
        extra: &[&str],
        timeout: Duration,
    ) -> Result<String, String> {
        client(
            &format!("MariaDB 11.8 on port {}", self.port),
            self.port,
            user,
            password,
            stmt,
            extra,
            timeout,
        )
    }

    /// `user`@`%` with `password` and what a health checker needs (USAGE,
    /// SLAVE MONITOR, REPLICATION CLIENT).
    pub fn create_checker_user(&self, user: &str, password: &str) {
        let (u, p) = (
            super::mariadb::escape(user),
            super::mariadb::escape(password),
        );
        self.sql(&format!(
            "CREATE OR REPLACE USER '{u}'@'%' IDENTIFIED BY '{p}'; \
             GRANT USAGE ON *.* TO '{u}'@'%'; \
             GRANT SLAVE MONITOR, REPLICATION CLIENT ON *.* TO '{u}'@'%';"
        ));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Host path of the temp dir holding datadir, socket and error log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn error_log_tail(&self, lines: usize) -> String {
        process::tail_file(&self.dir.path().join("error.log"), lines)
    }

    /// Pid of the running `mariadbd` (`chroot` execs it); panics if killed.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(c) => c.id(),
            None => panic!("MariaDB 11.8 on port {} is not running", self.port),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    /// Starts `mariadbd` again on the same port and datadir (killing it first
    /// if it still runs) and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.try_spawn_and_wait() {
            panic!("{e}");
        }
    }

    fn args(&self) -> Vec<String> {
        let d = inner(self.dir.path());
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", d.join("data").display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", d.join("mysqld.sock").display()),
            format!("--pid-file={}", d.join("mysqld.pid").display()),
            format!("--log-error={}", d.join("error.log").display()),
            format!("--tmpdir={}", d.display()),
            "--user=root".into(),
            format!("--server-id={}", self.server_id),
            "--log-bin=mysql-bin".into(),
            "--relay-log=relay-bin".into(),
            "--skip-name-resolve".into(),
            "--host-cache-size=0".into(),
            "--max-connect-errors=1000000".into(),
        ];
        args.extend(SMALL_AND_FAST.iter().map(|s| s.to_string()));
        args.extend(self.extra.iter().cloned());
        args
    }

    fn try_spawn_and_wait(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("error.log");
        let log_start = fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let new_log = || {
            let text = fs::read(&log).unwrap_or_default();
            let text =
                String::from_utf8_lossy(text.get(log_start..).unwrap_or_default()).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        let mut cmd = chroot_command("/usr/sbin/mariadbd");
        cmd.args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = process::spawn_guarded(cmd)
            .unwrap_or_else(|e| panic!("cannot spawn chroot mariadbd: {e}"));
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().ok().flatten() {
                self.child = None;
                return Err(format!(
                    "mariadbd 11.8 on port {} exited during startup ({status})\nerror.log:\n{}",
                    self.port,
                    new_log()
                ));
            }
            let probe = self.client(
                "root",
                "",
                "SELECT 1",
                &["--skip-column-names"],
                Duration::from_secs(5),
            );
            if probe.is_ok() {
                return Ok(());
            }
            if start.elapsed() >= READY_DEADLINE {
                let mut child = self.child.take().expect("child");
                process::kill_and_reap(&mut child);
                return Err(format!(
                    "mariadbd 11.8 on port {} not ready after {READY_DEADLINE:?}: {}\nerror.log:\n{}",
                    self.port,
                    probe.unwrap_err(),
                    new_log()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill and remove at exit: for servers kept in statics (never dropped);
    /// call again after [`TrixieDb::restart`] (a new pid).
    pub fn clean_up_at_exit(&self) {
        process::at_exit(AtExit::Kill(self.pid()));
        process::at_exit(AtExit::RemoveDir(self.dir.path().to_path_buf()));
    }
}

impl Drop for TrixieDb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The shared 11.8 primary and its replica.
pub struct Pair {
    pub primary: TrixieDb,
    pub replica: TrixieDb,
}

/// One 11.8 primary and its replica, started once per test binary. The guard
/// serialises the tests using them: a test that changes their state (kills,
/// stops replication, sets variables) puts it back before it ends.
pub fn shared_pair() -> MutexGuard<'static, Pair> {
    static PAIR: OnceLock<Mutex<Pair>> = OnceLock::new();
    PAIR.get_or_init(|| {
        let started = Instant::now();
        let primary = TrixieDb::start();
        primary.clean_up_at_exit();
        let replica = TrixieDb::start_replica_of(&primary);
        replica.clean_up_at_exit();
        eprintln!(
            "MariaDB 11.8 primary :{} and replica :{} ready after {:?}",
            primary.port(),
            replica.port(),
            started.elapsed()
        );
        Mutex::new(Pair { primary, replica })
    })
    .lock()
    // A failed test left its state; the next one still gets the servers.
    .unwrap_or_else(|e| e.into_inner())
}

/// Keeps test servers small and quick to start (as for the 10.11 fixture).
const SMALL_AND_FAST: &[&str] = &[
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-log-buffer-size=2M",
    "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
    "--innodb-buffer-pool-load-at-startup=OFF",
    "--innodb-buffer-pool-dump-at-shutdown=OFF",
    "--innodb-doublewrite=OFF",
    "--innodb-flush-log-at-trx-commit=2",
    "--sync-binlog=0",
    "--max-connections=200",
    "--table-open-cache=400",
    "--performance-schema=OFF",
];

/// A datadir made once per test binary by the chroot's `mariadb-install-db`,
/// copied for each server.
fn template_datadir() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = chroot_tempdir("template").keep();
        process::at_exit(AtExit::RemoveDir(dir.clone()));
        let datadir = dir.join("data");
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", inner(&datadir).display()),
            "--auth-root-authentication-method=normal".into(),
            "--skip-test-db".into(),
            "--user=root".into(),
            // Grants by address, and no check that the host name resolves: a
            // minbase chroot has no /etc/hosts, and the installer then stops.
            "--skip-name-resolve".into(),
            "--force".into(),
        ];
        args.extend(SMALL_AND_FAST.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        chroot_run(
            "/usr/bin/mariadb-install-db",
            &args,
            Duration::from_secs(180),
        );
        datadir
    })
}

// ---------------------------------------------------------------------------
// HAProxy 3.0

/// The version line of the chroot's `haproxy -v`.
pub fn haproxy_version() -> String {
    chroot_run("/usr/sbin/haproxy", &["-v"], Duration::from_secs(30))
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `haproxy -dW -c -f <cfg>` inside the chroot (warnings are errors): `Ok`,
/// or everything it printed. `cfg` is a host path under [`root`].
pub fn haproxy_check(cfg: &Path) -> Result<(), String> {
    let mut cmd = chroot_command("/usr/sbin/haproxy");
    cmd.arg("-dW").arg("-c").arg("-f").arg(inner(cfg));
    let out = process::run_with_timeout(cmd, Duration::from_secs(30))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Starts the chroot's HAProxy 3.0 in the foreground with
/// [`Haproxy::config_text`] for `cfg_body` (admin socket, `log stdout`),
/// written inside the chroot and validated first with `haproxy -dW -c`; the
/// [`Haproxy`] fixture then reads its states over the admin socket.
pub fn start_haproxy(cfg_body: &str) -> Haproxy {
    let dir = chroot_tempdir("haproxy");
    let cfg = Haproxy::config_text(&inner(dir.path()), cfg_body);
    let cfg_path = dir.path().join("haproxy.cfg");
    fs::write(&cfg_path, &cfg).expect("cannot write haproxy.cfg");
    if let Err(e) = haproxy_check(&cfg_path) {
        panic!("HAProxy 3.0 rejects the config: {e}\n--- haproxy.cfg ---\n{cfg}");
    }
    let stdout = fs::File::create(dir.path().join("stdout.log")).expect("stdout.log");
    let stderr = fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
    let mut cmd = chroot_command("/usr/sbin/haproxy");
    cmd.arg("-db")
        .arg("-f")
        .arg(inner(&cfg_path))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let child =
        process::spawn_guarded(cmd).unwrap_or_else(|e| panic!("cannot spawn chroot haproxy: {e}"));
    Haproxy::adopt(dir, child)
}
