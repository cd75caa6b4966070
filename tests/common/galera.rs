//! A throw-away Galera cluster: `n` MariaDB nodes with the galera-4 provider,
//! all on 127.0.0.1, each with its own SQL port, socket, datadir and Galera
//! ports (gcomm, IST, SST), never the system server.
//!
//! What running Galera on one machine takes (learned the hard way): bootstrap node 0
//! with `--wsrep-new-cluster`, start the joiners one after the other (two
//! joiners at once churn), SST by rsync (no SST user), keep Galera's
//! failure-detection timeouts at their defaults (shorter ones made a loaded
//! 2-core machine lose the Primary component), and record the pids ourselves
//! (`mariadbd` writes its pid file only after SST).
//!
//! Starting a cluster costs ~10 s and ~400 MB: a test binary starts one with
//! [`GaleraCluster::shared`] and its tests take turns with
//! [`GaleraCluster::exclusive`], which puts the cluster back to normal (every
//! node Synced, nothing rejected, writable) when the test ends, panic or not.

use super::process::{self, AtExit};
use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Total time [`GaleraCluster::start`] may take (every node Synced).
const START_DEADLINE: Duration = Duration::from_secs(90);
/// How long [`GaleraCluster::reset`] waits for every node to be Synced again
/// (an isolated node needs ~6 s to notice it is back, then rejoins).
const RESET_DEADLINE: Duration = Duration::from_secs(60);
/// Default deadline of one `mariadb` client invocation.
const SQL_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one client invocation while polling a node.
const POLL_SQL_TIMEOUT: Duration = Duration::from_secs(5);
/// Galera provider shipped by Debian's galera-4 package.
pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// The wsrep status counters that say whether a node can take traffic.
const WSREP_STATUS_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN \
     ('wsrep_local_state','wsrep_local_state_comment','wsrep_cluster_status',\
     'wsrep_cluster_size','wsrep_ready','wsrep_connected')";

/// Options that keep a node small and fast to start.
const SMALL_AND_FAST: &[&str] = &[
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-log-buffer-size=2M",
    "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
    "--innodb-buffer-pool-load-at-startup=OFF",
    "--innodb-buffer-pool-dump-at-shutdown=OFF",
    "--innodb-doublewrite=OFF",
    "--innodb-flush-log-at-trx-commit=2",
    "--max-connections=200",
    "--table-open-cache=400",
    "--performance-schema=OFF",
];

/// One `mariadbd` of a [`GaleraCluster`].
///
/// `root` has no password and can log in over TCP from 127.0.0.1 on every
/// node (accounts replicate). The host cache is off, as in
/// [`super::MariaDb`], so checks that drop connections early never get
/// 127.0.0.1 blocked.
pub struct GaleraNode {
    index: usize,
    dir: PathBuf,
    port: u16,
    gcomm_port: u16,
    ist_port: u16,
    sst_port: u16,
    child: Option<Child>,
    pid: u32,
}

/// `n` Galera nodes forming one cluster, all Synced when
/// [`GaleraCluster::start`] returns. Nodes are SIGKILLed on drop (and when
/// the test binary exits, whatever happens).
pub struct GaleraCluster {
    dir: TempDir,
    name: String,
    nodes: Vec<GaleraNode>,
    startup: Duration,
}

impl GaleraCluster {
    /// Creates and starts an `n`-node cluster: node 0 bootstraps it
    /// (`--wsrep-new-cluster`), then each joiner is started once the previous
    /// one is Synced, and waited for until it is Synced (`wsrep_local_state`
    /// 4) and sees the cluster grown to its size. Panics with the error log
    /// tails of every node if that takes more than 90 s in total.
    pub fn start(n: usize) -> GaleraCluster {
        assert!(n >= 1, "a Galera cluster needs at least one node");
        let t0 = Instant::now();
        let dir = process::fixture_tempdir("galera");
        if server_user().is_some() {
            // The server runs as `mysql` and must reach its node directory.
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.path().display()));
        }
        // gcomm carries the group name in a fixed 32-byte field: a longer
        // name makes every handshake fail ("handling gmcast protocol message
        // failed ... types.hpp:String()") and joiners never find the group.
        let suffix = dir
            .path()
            .file_name()
            .map(|s| {
                s.to_string_lossy()
                    .rsplit('-')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        let name = format!("mysqlchk_{}_{suffix}", std::process::id());
        assert!(name.len() < 32, "cluster name {name:?} too long for gcomm");
        let nodes = (0..n)
            .map(|index| {
                let node_dir = dir.path().join(format!("node{index}"));
                fs::create_dir_all(node_dir.join("data"))
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", node_dir.display()));
                if let Some(owner) = server_user() {
                    for d in [node_dir.clone(), node_dir.join("data")] {
                        std::os::unix::fs::chown(&d, Some(owner.uid), Some(owner.gid))
                            .unwrap_or_else(|e| panic!("cannot chown {}: {e}", d.display()));
                    }
                }
                GaleraNode {
                    index,
                    dir: node_dir,
                    port: super::free_port(),
                    gcomm_port: super::free_port(),
                    ist_port: super::free_port(),
                    sst_port: super::free_port(),
                    child: None,
                    pid: 0,
                }
            })
            .collect();
        let mut cluster = GaleraCluster {
            dir,
            name,
            nodes,
            startup: Duration::ZERO,
        };
        // Only the bootstrap node needs system tables: joiners get a copy of
        // its datadir by SST.
        install_db(&cluster.nodes[0].datadir());
        for i in 0..n {
            let args = cluster.args(i);
            let node = &mut cluster.nodes[i];
            let mut cmd = Command::new("mariadbd");
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child = process::spawn_guarded(cmd).unwrap_or_else(|e| {
                panic!("cannot spawn mariadbd (is mariadb-server installed?): {e}")
            });
            node.pid = child.id();
            node.child = Some(child);
            let remaining = START_DEADLINE.saturating_sub(t0.elapsed());
            if let Err(e) = cluster.wait_node_synced(i, i + 1, remaining) {
                panic!(
                    "Galera node {i} did not join within {START_DEADLINE:?} of the cluster start: {e}\n{}",
                    cluster.log_tails(40)
                );
            }
        }
        cluster.startup = t0.elapsed();
        cluster
    }

    /// One 3-node cluster shared by every test of the test binary, started on
    /// first use. Tests that change its state take turns through
    /// [`GaleraCluster::exclusive`]; the nodes are killed and their files
    /// removed when the test binary exits.
    pub fn shared() -> &'static GaleraCluster {
        // A failed start is remembered: the other tests fail at once instead
        // of trying again for 90 s each.
        static SHARED: OnceLock<Result<GaleraCluster, String>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let cluster = std::panic::catch_unwind(|| GaleraCluster::start(3)).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })?;
            for node in &cluster.nodes {
                process::at_exit(AtExit::Kill(node.pid));
            }
            process::at_exit(AtExit::RemoveDir(cluster.dir.path().to_path_buf()));
            eprintln!(
                "Galera: {}-node cluster started in {:.1?} (SQL ports {:?})",
                cluster.len(),
                cluster.startup,
                cluster.nodes.iter().map(|n| n.port).collect::<Vec<_>>()
            );
            Ok(cluster)
        });
        match shared {
            Ok(cluster) => cluster,
            Err(e) => panic!("the shared Galera cluster failed to start: {e}"),
        }
    }

    /// The shared cluster, for one test at a time: blocks until no other test
    /// holds it, and on drop (also when the test panics) [`resets`] it and
    /// waits until every node is Synced again.
    ///
    /// [`resets`]: GaleraCluster::reset
    pub fn exclusive() -> Exclusive {
        static TURN: Mutex<()> = Mutex::new(());
        // A test that panicked while holding the lock has been reset by its
        // guard: the poison carries no information.
        let lock = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let cluster = GaleraCluster::shared();
        // The previous holder may have failed to reset it.
        if let Err(e) = cluster.reset() {
            panic!("the shared Galera cluster is not healthy: {e}");
        }
        Exclusive {
            _lock: lock,
            cluster,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &GaleraNode {
        self.nodes
            .get(i)
            .unwrap_or_else(|| panic!("no Galera node {i} (cluster of {})", self.len()))
    }

    pub fn nodes(&self) -> &[GaleraNode] {
        &self.nodes
    }

    /// `SHOW GLOBAL STATUS` variable `var` of node `i` (e.g.
    /// `wsrep_local_state`); `None` if the server has no such variable.
    pub fn status(&self, i: usize, var: &str) -> Option<String> {
        self.node(i).status(var)
    }

    /// `wsrep_cluster_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long [`GaleraCluster::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// `gcomm://127.0.0.1:P0,127.0.0.1:P1,...`
    pub fn cluster_address(&self) -> String {
        let members: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.gcomm_port))
            .collect();
        format!("gcomm://{}", members.join(","))
    }

    /// The `mariadbd` command line of node `i` (without the program name).
    pub fn args(&self, i: usize) -> Vec<String> {
        let node = self.node(i);
        let d = &node.dir;
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            format!("--datadir={}", node.datadir().display()),
            format!("--port={}", node.port),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", node.socket_path().display()),
            format!("--pid-file={}", d.join("mysqld.pid").display()),
            format!("--log-error={}", node.error_log_path().display()),
            format!("--tmpdir={}", d.display()),
            format!("--user={}", server_user_name()),
            format!("--server-id={}", i + 1),
            "--skip-name-resolve".into(),
            "--host-cache-size=0".into(),
            "--max-connect-errors=1000000".into(),
            "--binlog-format=ROW".into(),
            "--default-storage-engine=InnoDB".into(),
            "--innodb-autoinc-lock-mode=2".into(),
            "--wsrep-on=ON".into(),
            format!("--wsrep-provider={PROVIDER}"),
            format!("--wsrep-cluster-name={}", self.name),
            format!("--wsrep-cluster-address={}", self.cluster_address()),
            format!("--wsrep-node-name=node{i}"),
            format!("--wsrep-node-address=127.0.0.1:{}", node.gcomm_port),
            format!("--wsrep-node-incoming-address=127.0.0.1:{}", node.port),
            "--wsrep-sst-method=rsync".into(),
            format!("--wsrep-sst-receive-address=127.0.0.1:{}", node.sst_port),
            // Failure-detection timeouts (evs.*) stay at their defaults.
            format!(
                "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{};ist.recv_addr=127.0.0.1:{};gcache.size=16M",
                node.gcomm_port, node.ist_port
            ),
        ];
        args.extend(SMALL_AND_FAST.iter().map(|s| s.to_string()));
        if i == 0 {
            args.push("--wsrep-new-cluster".into());
        }
        args
    }

    /// Puts every node back to normal — `gmcast.isolate=0`,
    /// `wsrep_reject_queries=NONE`, `read_only=OFF`, `wsrep_desync=OFF` — and
    /// waits up to 60 s until every node is Synced in a Primary component of
    /// full size. Cheap when nothing was changed.
    pub fn reset(&self) -> Result<(), String> {
        for node in &self.nodes {
            node.try_sql(
                "SET GLOBAL wsrep_provider_options='gmcast.isolate=0'; \
                 SET GLOBAL wsrep_reject_queries=NONE; \
                 SET GLOBAL read_only=OFF",
            )?;
        }
        let start = Instant::now();
        // wsrep_desync can only be turned off in a Primary component.
        self.wait_all(RESET_DEADLINE, |s| s.cluster_status == "Primary")?;
        for node in &self.nodes {
            if node.try_sql("SELECT @@GLOBAL.wsrep_desync")?.trim() != "0" {
                node.try_sql("SET GLOBAL wsrep_desync=OFF")?;
            }
        }
        let remaining = RESET_DEADLINE.saturating_sub(start.elapsed());
        self.wait_all(remaining, |s| s.is_synced(self.len()))?;
        Ok(())
    }

    /// Waits until every node is Synced in a Primary component that holds
    /// all nodes; returns the time it took, panics (with log tails) after
    /// `deadline`.
    pub fn wait_all_synced(&self, deadline: Duration) -> Duration {
        let start = Instant::now();
        self.wait_all(deadline, |s| s.is_synced(self.len()))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tails(20)));
        start.elapsed()
    }

    fn wait_all(
        &self,
        deadline: Duration,
        ok: impl Fn(&WsrepStatus) -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        for node in &self.nodes {
            let remaining = deadline.saturating_sub(start.elapsed());
            node.wait_wsrep(remaining, "the wanted state", &ok)?;
        }
        Ok(())
    }

    /// Waits until node `i` runs, is Synced and sees a cluster of `size`.
    fn wait_node_synced(
        &mut self,
        i: usize,
        size: usize,
        deadline: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let node = &mut self.nodes[i];
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                node.child = None;
                return Err(format!("mariadbd exited during startup ({status})"));
            }
            let last = match node.try_wsrep_status(POLL_SQL_TIMEOUT) {
                Ok(s) if s.is_synced(size) => return Ok(()),
                Ok(s) => format!("{s:?}"),
                Err(e) => e,
            };
            if start.elapsed() >= deadline {
                return Err(format!("last status: {last}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of every node's error log, with headers.
    pub fn log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- node{} (port {}) error.log ---\n{}",
                    n.index,
                    n.port,
                    n.error_log_tail(lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for GaleraCluster {
    fn drop(&mut self) {
        // Joiners first, so that the bootstrap node is the last one standing.
        for node in self.nodes.iter_mut().rev() {
            node.kill();
        }
    }
}

/// The shared cluster held by one test; see [`GaleraCluster::exclusive`].
pub struct Exclusive {
    _lock: MutexGuard<'static, ()>,
    cluster: &'static GaleraCluster,
}

impl Deref for Exclusive {
    type Target = GaleraCluster;
    fn deref(&self) -> &GaleraCluster {
        self.cluster
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.reset() {
            let msg = format!(
                "cannot put the shared Galera cluster back to normal: {e}\n{}",
                self.cluster.log_tails(20)
            );
            if thread::panicking() {
                // A second panic would abort the test binary.
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// The wsrep status counters of one node at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsrepStatus {
    /// `wsrep_local_state`: 4 Synced, 2 Donor/Desynced, 1 Joining, 3 Joined,
    /// 0 Initialized (e.g. isolated); `None` if not a number.
    pub local_state: Option<u32>,
    pub local_state_comment: String,
    /// `Primary`, `non-Primary`, `Disconnected`.
    pub cluster_status: String,
    pub cluster_size: usize,
    /// `wsrep_ready` is `ON`.
    pub ready: bool,
}

impl WsrepStatus {
    /// Synced, Primary, ready, in a component of `size` nodes.
    pub fn is_synced(&self, size: usize) -> bool {
        self.local_state == Some(4)
            && self.cluster_status == "Primary"
            && self.ready
            && self.cluster_size == size
    }

    fn from_rows(rows: &BTreeMap<String, String>) -> WsrepStatus {
        let get = |k: &str| rows.get(k).cloned().unwrap_or_default();
        WsrepStatus {
            local_state: get("wsrep_local_state").trim().parse().ok(),
            local_state_comment: get("wsrep_local_state_comment"),
            cluster_status: get("wsrep_cluster_status"),
            cluster_size: get("wsrep_cluster_size").trim().parse().unwrap_or(0),
            ready: get("wsrep_ready").eq_ignore_ascii_case("ON"),
        }
    }
}

impl GaleraNode {
    /// Position in the cluster (0 bootstrapped it).
    pub fn index(&self) -> usize {
        self.index
    }

    /// SQL port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Galera group communication port (`gmcast.listen_addr`).
    pub fn gcomm_port(&self) -> u16 {
        self.gcomm_port
    }

    /// Incremental state transfer port (`ist.recv_addr`).
    pub fn ist_port(&self) -> u16 {
        self.ist_port
    }

    /// State snapshot transfer port (`wsrep_sst_receive_address`).
    pub fn sst_port(&self) -> u16 {
        self.sst_port
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory holding the datadir, socket, pid file and error log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    pub fn error_log_tail(&self, lines: usize) -> String {
        process::tail_file(&self.error_log_path(), lines)
    }

    /// Pid of the running `mariadbd` (recorded at spawn, not read from the
    /// pid file); panics if it was killed.
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(_) => self.pid,
            None => panic!(
                "Galera node {} is not running (last pid {})",
                self.index, self.pid
            ),
        }
    }

    /// Runs `stmt` as root over TCP; returns stdout (`--batch
    /// --skip-column-names`: tab-separated rows, trailing newline kept).
    /// Panics with stderr on error.
    pub fn sql(&self, stmt: &str) -> String {
        self.try_sql(stmt).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`GaleraNode::sql`], returning the client's stderr as the error.
    pub fn try_sql(&self, stmt: &str) -> Result<String, String> {
        self.try_sql_timeout(stmt, SQL_TIMEOUT)
    }

    /// Like [`GaleraNode::try_sql`], killing the client after `timeout`.
    pub fn try_sql_timeout(&self, stmt: &str, timeout: Duration) -> Result<String, String> {
        self.client_as("root", "", stmt, timeout)
    }

    /// Runs `stmt` as `user`/`password` over TCP (to check grants).
    pub fn sql_as(&self, user: &str, password: &str, stmt: &str) -> Result<String, String> {
        self.client_as(user, password, stmt, SQL_TIMEOUT)
    }

    /// `SHOW GLOBAL STATUS` variable `var`; `None` if the server has none.
    /// Panics if the node does not answer.
    pub fn status(&self, var: &str) -> Option<String> {
        let out = self.sql(&format!(
            "SHOW GLOBAL STATUS LIKE '{}'",
            super::mariadb::escape(var)
        ));
        out.lines()
            .next()
            .and_then(|l| l.split_once('\t'))
            .map(|(_, v)| v.to_string())
    }

    /// The wsrep status counters in one round trip; panics if the node does
    /// not answer.
    pub fn wsrep_status(&self) -> WsrepStatus {
        self.try_wsrep_status(SQL_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`GaleraNode::wsrep_status`], giving up after `timeout` (e.g.
    /// while the node is starting, or to poll it).
    pub fn try_wsrep_status(&self, timeout: Duration) -> Result<WsrepStatus, String> {
        let out = self.try_sql_timeout(WSREP_STATUS_SQL, timeout)?;
        let rows: BTreeMap<String, String> = out
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        Ok(WsrepStatus::from_rows(&rows))
    }

    /// Polls the wsrep status every 50 ms until `ok` accepts it; returns the
    /// time it took, or an error naming `what` and the last status after
    /// `deadline`.
    pub fn wait_wsrep(
        &self,
        deadline: Duration,
        what: &str,
        ok: impl Fn(&WsrepStatus) -> bool,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let last = match self.try_wsrep_status(POLL_SQL_TIMEOUT) {
                Ok(s) if ok(&s) => return Ok(start.elapsed()),
                Ok(s) => format!("{s:?}"),
                Err(e) => e,
            };
            if start.elapsed() >= deadline {
                return Err(format!(
                    "Galera node {} (port {}) not in {what} after {deadline:?}; last status: {last}",
                    self.index, self.port
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `gmcast.isolate=1` (cut from the group without killing anything: after
    /// ~6 s the node is non-Primary) or `=0` (rejoins in ~5–7 s).
    pub fn set_isolated(&self, isolated: bool) {
        self.sql(&format!(
            "SET GLOBAL wsrep_provider_options='gmcast.isolate={}'",
            u8::from(isolated)
        ));
    }

    /// Creates (or re-creates) `user`@`%` with `password` and the privileges
    /// a health checker needs (USAGE, SLAVE MONITOR, REPLICATION CLIENT).
    /// Accounts replicate: run it on one node.
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

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    fn client_as(
        &self,
        user: &str,
        password: &str,
        stmt: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        super::mariadb::client(
            &format!("Galera node {} (port {})", self.index, self.port),
            self.port,
            user,
            password,
            stmt,
            &["--skip-column-names"],
            timeout,
        )
    }
}

impl Drop for GaleraNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `mariadb-install-db` into `datadir` (system tables for the bootstrap node).
fn install_db(datadir: &Path) {
    let mut cmd = Command::new("mariadb-install-db");
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg(format!("--user={}", server_user_name()))
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
}

/// The account the nodes run as when the tests run as root: `mysql`.
///
/// Not root, as [`super::MariaDb`] does: the joiner's SST script starts an
/// rsync daemon, and an rsync daemon started by root switches to `nobody`
/// (rsyncd.conf has no `uid` line), which then cannot write into the
/// datadir ("mkdir ... failed: Permission denied", SST fails with 255 and
/// the joiner aborts). Run as the datadir's owner, rsync keeps that user.
struct ServerUser {
    uid: u32,
    gid: u32,
}

fn server_user() -> Option<&'static ServerUser> {
    static USER: OnceLock<Option<ServerUser>> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        // SAFETY: getpwnam with a NUL-terminated name; the result is read at
        // once (tests start clusters from one thread at a time).
        let pw = unsafe { libc::getpwnam(c"mysql".as_ptr()) };
        if pw.is_null() {
            panic!("the tests run as root but there is no `mysql` user to run Galera nodes as (rsync SST fails as root)");
        }
        // SAFETY: non-null pointer returned by getpwnam.
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        Some(ServerUser { uid, gid })
    })
    .as_ref()
}

/// `--user=` value: `mysql` under root, else the current user (mariadbd
/// ignores `--user` when not started by root).
fn server_user_name() -> String {
    if server_user().is_some() {
        "mysql".into()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "mysql".into())
    }
}
