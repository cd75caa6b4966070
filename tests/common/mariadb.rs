//! Throw-away MariaDB servers (`mariadbd` from the system packages), each in
//! its own temporary directory and on its own port, never the system server.

use super::process::{self, AtExit};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a server may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Default deadline of one `mariadb` client invocation.
const SQL_TIMEOUT: Duration = Duration::from_secs(30);
/// Account used by replicas to connect to their primary.
pub const REPL_USER: &str = "repl";
pub const REPL_PASSWORD: &str = "repl-pass";

/// A `mariadbd` process with its own datadir, port and socket.
///
/// `root` has no password and can log in over TCP from 127.0.0.1. Binary
/// logging is on (`mysql-bin`), the server id is unique within the test
/// binary, and the host cache is off so that health checks that drop
/// connections before authenticating never get 127.0.0.1 blocked.
pub struct MariaDb {
    dir: TempDir,
    port: u16,
    server_id: u32,
    extra: Vec<String>,
    child: Option<Child>,
    last_pid: u32,
}

impl MariaDb {
    /// Starts a fresh server and waits until root can run `SELECT 1`.
    pub fn start() -> MariaDb {
        Self::start_with_args(&[])
    }

    /// Like [`MariaDb::start`], with extra `mariadbd` options (appended after
    /// the fixture's own, so they win), kept for [`MariaDb::restart`].
    pub fn start_with_args(extra: &[&str]) -> MariaDb {
        static NEXT_SERVER_ID: AtomicU32 = AtomicU32::new(1);
        let dir = process::fixture_tempdir("mariadb");
        let datadir = dir.path().join("data");
        process::copy_dir_all(template_datadir(), &datadir)
            .unwrap_or_else(|e| panic!("cannot copy the template datadir: {e}"));
        let server_id = NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed);
        let mut db = MariaDb {
            dir,
            port: 0,
            server_id,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            last_pid: 0,
        };
        // Another process may take the port between free_port() and the
        // bind: pick another one then (only here; restarts keep the port).
        for attempt in 1.. {
            db.port = super::free_port();
            match db.try_spawn_and_wait() {
                Ok(()) => break,
                Err(e) if e.contains("Address already in use") && attempt < 5 => continue,
                Err(e) => panic!("{e}"),
            }
        }
        db
    }

    /// The full `mariadbd` command line (without the program name).
    pub fn args(&self) -> Vec<String> {
        let d = self.dir.path();
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            format!("--datadir={}", self.datadir().display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", self.socket_path().display()),
            format!("--pid-file={}", d.join("mysqld.pid").display()),
            format!("--log-error={}", self.error_log_path().display()),
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

    /// One server shared by all tests of the test binary that only run SQL
    /// against it (never stop, kill or reconfigure it; use unique user and
    /// schema names). Killed and removed when the test binary exits.
    pub fn shared() -> &'static MariaDb {
        static SHARED: OnceLock<MariaDb> = OnceLock::new();
        SHARED.get_or_init(|| {
            let db = MariaDb::start();
            process::at_exit(AtExit::Kill(db.pid()));
            process::at_exit(AtExit::RemoveDir(db.dir.path().to_path_buf()));
            db
        })
    }

    /// Starts a new server (`read_only=ON`) replicating from `primary` with
    /// GTID (`MASTER_USE_GTID=slave_pos`) and waits until both replication
    /// threads run.
    pub fn start_replica_of(primary: &MariaDb) -> MariaDb {
        Self::start_replica_of_with_args(primary, &[])
    }

    /// [`MariaDb::start_replica_of`] with extra `mariadbd` options.
    pub fn start_replica_of_with_args(primary: &MariaDb, extra: &[&str]) -> MariaDb {
        let mut args = vec!["--read-only=ON"];
        args.extend_from_slice(extra);
        let replica = MariaDb::start_with_args(&args);
        replica.replicate_from(primary);
        replica
    }

    /// Creates the replication account on `primary` (idempotent), points this
    /// server at it (`CHANGE MASTER TO ...; START SLAVE`) and waits until
    /// `Slave_IO_Running` and `Slave_SQL_Running` are `Yes`.
    pub fn replicate_from(&self, primary: &MariaDb) {
        primary.sql(&format!(
            "CREATE USER IF NOT EXISTS '{REPL_USER}'@'%' IDENTIFIED BY '{REPL_PASSWORD}'; \
             GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%';"
        ));
        self.sql(&format!(
            "STOP SLAVE; \
             CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
             MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', \
             MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; \
             START SLAVE;",
            primary.port()
        ));
        self.wait_replication_running(READY_DEADLINE);
    }

    /// Waits until both replication threads report `Yes`; panics with the
    /// replication status and error log otherwise.
    pub fn wait_replication_running(&self, deadline: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let status = self.slave_status();
            let running = |k: &str| status.as_ref().and_then(|s| s.get(k)).map(String::as_str);
            if running("Slave_IO_Running") == Some("Yes")
                && running("Slave_SQL_Running") == Some("Yes")
            {
                return start.elapsed();
            }
            if start.elapsed() >= deadline {
                panic!(
                    "replica on port {} not replicating after {deadline:?}\nSHOW SLAVE STATUS: {status:#?}\nerror.log:\n{}",
                    self.port,
                    self.error_log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until this replica has applied everything `primary` has binlogged
    /// so far (`MASTER_GTID_WAIT`, at most 30 s).
    pub fn sync_with(&self, primary: &MariaDb) {
        let pos = primary.sql("SELECT @@GLOBAL.gtid_binlog_pos");
        let pos = pos.trim();
        let res = self.sql(&format!("SELECT MASTER_GTID_WAIT('{pos}', 30)"));
        if res.trim() != "0" {
            panic!(
                "replica on port {} did not reach GTID {pos} within 30 s (result {res:?})\nSHOW SLAVE STATUS: {:#?}",
                self.port,
                self.slave_status()
            );
        }
    }

    /// `SHOW SLAVE STATUS` as column → value, `None` if not a replica.
    pub fn slave_status(&self) -> Option<BTreeMap<String, String>> {
        let rows = self.query_rows("SHOW SLAVE STATUS");
        rows.into_iter().next()
    }

    /// Runs `stmt` and returns the rows of its (last) result set as column →
    /// value maps (values as printed by `mariadb --batch`, NULL as "NULL").
    pub fn query_rows(&self, stmt: &str) -> Vec<BTreeMap<String, String>> {
        let out = self
            .client_as("root", "", stmt, &["--column-names"], SQL_TIMEOUT)
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

    pub fn port(&self) -> u16 {
        self.port
    }

    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `mysql://user:password@127.0.0.1:port/` (no escaping: keep
    /// credentials URL-safe).
    pub fn url(&self, user: &str, password: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}/", self.port)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The temp dir holding the datadir, socket, pid file and error log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    pub fn error_log_tail(&self, lines: usize) -> String {
        process::tail_file(&self.error_log_path(), lines)
    }

    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// Pid of the running `mariadbd`; panics if it was killed or shut down.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(c) => c.id(),
            None => panic!(
                "MariaDB on port {} is not running (last pid {})",
                self.port, self.last_pid
            ),
        }
    }

    /// Pid of the last `mariadbd` started, running or not.
    pub fn last_pid(&self) -> u32 {
        self.last_pid
    }

    /// Whether the fixture has a running (not reaped) `mariadbd`.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Runs `stmt` as root over TCP; returns stdout (`--batch
    /// --skip-column-names`, so tab-separated rows, trailing newline kept).
    /// Panics with stderr on error.
    pub fn sql(&self, stmt: &str) -> String {
        self.try_sql(stmt).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`MariaDb::sql`], returning the client's stderr as the error.
    pub fn try_sql(&self, stmt: &str) -> Result<String, String> {
        self.try_sql_timeout(stmt, SQL_TIMEOUT)
    }

    /// Like [`MariaDb::try_sql`], giving up (and killing the client) after
    /// `timeout` — e.g. against a SIGSTOPped server.
    pub fn try_sql_timeout(&self, stmt: &str, timeout: Duration) -> Result<String, String> {
        self.client_as("root", "", stmt, &["--skip-column-names"], timeout)
    }

    /// Runs `stmt` as `user`/`password` over TCP (to check grants).
    pub fn sql_as(&self, user: &str, password: &str, stmt: &str) -> Result<String, String> {
        self.client_as(user, password, stmt, &["--skip-column-names"], SQL_TIMEOUT)
    }

    fn client_as(
        &self,
        user: &str,
        password: &str,
        stmt: &str,
        extra: &[&str],
        timeout: Duration,
    ) -> Result<String, String> {
        client(
            &format!("MariaDB on port {}", self.port),
            self.port,
            user,
            password,
            stmt,
            extra,
            timeout,
        )
    }

    /// Creates (or re-creates) `user`@`%` with `password` and the privileges a
    /// health checker needs: USAGE, SLAVE MONITOR (`SHOW SLAVE STATUS`) and
    /// REPLICATION CLIENT (an alias of BINLOG MONITOR in 10.11).
    pub fn create_checker_user(&self, user: &str, password: &str) {
        let (u, p) = (escape(user), escape(password));
        self.sql(&format!(
            "CREATE OR REPLACE USER '{u}'@'%' IDENTIFIED BY '{p}'; \
             GRANT USAGE ON *.* TO '{u}'@'%'; \
             GRANT SLAVE MONITOR, REPLICATION CLIENT ON *.* TO '{u}'@'%';"
        ));
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing. Returns once
    /// the process is stopped.
    pub fn stop_signal(&self) {
        let pid = self.pid();
        process::send_signal(pid, libc::SIGSTOP);
        process::wait_proc_state(pid, "stopped", Duration::from_secs(5), |s| s == Some('T'));
    }

    /// SIGCONT after [`MariaDb::stop_signal`]. Returns once it runs again.
    pub fn cont(&self) {
        let pid = self.pid();
        process::send_signal(pid, libc::SIGCONT);
        process::wait_proc_state(pid, "continued", Duration::from_secs(5), |s| s != Some('T'));
    }

    /// SIGKILL and reap (a crash, from the clients' point of view).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    /// Clean shutdown (SIGTERM), waiting up to 60 s before SIGKILL.
    pub fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate_and_reap(&mut child, Duration::from_secs(60));
        }
    }

    /// Starts `mariadbd` again on the same port, datadir and socket (after
    /// killing it if still running) and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_and_wait();
    }

    fn spawn_and_wait(&mut self) {
        if let Err(e) = self.try_spawn_and_wait() {
            panic!("{e}");
        }
    }

    /// Spawns `mariadbd` and waits until root can run `SELECT 1`. On failure
    /// the process is reaped and the error includes the new part of the
    /// error log.
    fn try_spawn_and_wait(&mut self) -> Result<(), String> {
        let log_start = std::fs::metadata(self.error_log_path()).map_or(0, |m| m.len() as usize);
        let new_log = |db: &MariaDb| {
            let log = std::fs::read(db.error_log_path()).unwrap_or_default();
            let log =
                String::from_utf8_lossy(log.get(log_start..).unwrap_or_default()).into_owned();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        let mut cmd = Command::new("mariadbd");
        cmd.args(self.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = process::spawn_guarded(cmd).unwrap_or_else(|e| {
            panic!("cannot spawn mariadbd (is mariadb-server installed?): {e}")
        });
        self.last_pid = child.id();
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().ok().flatten() {
                self.child = None;
                return Err(format!(
                    "mariadbd on port {} exited during startup ({status})\nerror.log:\n{}",
                    self.port,
                    new_log(self)
                ));
            }
            let probe = self.try_sql_timeout("SELECT 1", Duration::from_secs(5));
            if probe.is_ok() {
                return Ok(());
            }
            if start.elapsed() >= READY_DEADLINE {
                let mut child = self.child.take().expect("child");
                process::kill_and_reap(&mut child);
                return Err(format!(
                    "mariadbd on port {} not ready after {READY_DEADLINE:?}: {}\nerror.log:\n{}",
                    self.port,
                    probe.unwrap_err(),
                    new_log(self)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options that keep a test server small and fast to start; startup is
/// dominated by InnoDB file creation otherwise.
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

/// A datadir made once per test binary by `mariadb-install-db`, copied for
/// each server (copying is ~10x faster than running the installer).
fn template_datadir() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = process::fixture_tempdir("mariadb-template").keep();
        process::at_exit(AtExit::RemoveDir(dir.clone()));
        let datadir = dir.join("data");
        let mut cmd = Command::new("mariadb-install-db");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", datadir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--user=root")
            .args(SMALL_AND_FAST);
        let out = process::run_with_timeout(cmd, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("mariadb-install-db (is mariadb-server installed?): {e}"));
        if !out.status.success() {
            panic!(
                "mariadb-install-db failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        datadir
    })
}

/// Escapes a string for use inside single quotes in SQL.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// Runs `stmt` with the `mariadb` client over TCP to 127.0.0.1:`port` as `user`
/// (`--batch`, plus `extra`), ignoring any option file and MYSQL_* variables;
/// `label` names the server in errors.
pub fn client(
    label: &str,
    port: u16,
    user: &str,
    password: &str,
    stmt: &str,
    extra: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    let mut cmd = Command::new("mariadb");
    cmd.arg("--no-defaults")
        .arg("--protocol=TCP")
        .arg("-h127.0.0.1")
        .arg(format!("-P{port}"))
        .arg(format!("-u{user}"))
        .arg("--batch")
        .arg("--connect-timeout=5")
        .args(extra)
        .arg("-e")
        .arg(stmt)
        .env_remove("MYSQL_HOST")
        .env_remove("MYSQL_TCP_PORT")
        .env_remove("MYSQL_UNIX_PORT");
    if password.is_empty() {
        cmd.env_remove("MYSQL_PWD");
    } else {
        cmd.env("MYSQL_PWD", password);
    }
    let out = process::run_with_timeout(cmd, timeout).map_err(|e| format!("{label}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{label}: `{stmt}` as {user} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
