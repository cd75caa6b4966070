//! Operational drills, end to end: real MariaDB primaries and replicas, one
//! `mysqlchk serve` per server (HTTP and agent-check ports, interval 250 ms — 1 s,
//! the default, in drill 4 — timeout 250 ms, stale_after 3 s), a real HAProxy in
//! front configured by `mysqlchk haproxy-config`, and real client traffic through
//! it.
//!
//! 1. planned maintenance: `mysqlchk maintenance on` drains a replica (NOLB /
//!    DRAIN), no client query fails, `off` puts it back in rotation;
//! 2. unplanned failure: SIGKILL of a read server, the classic stanza and the
//!    generated config side by side (detection time, failed queries);
//! 3. lag: delayed replication lowers the agent weight between the soft and
//!    the hard bound, takes the replica out over the hard bound, and puts it
//!    back when it has caught up;
//! 4. switchover in the safe order, at mysqlchk's default interval: the write
//!    listener follows, a session to the demoted primary is cut, no two servers
//!    take writes in the same second, and the write listener does not flap;
//! 5. HAProxy seamless reload ×15 (server state dumped and loaded, `-x <admin
//!    socket> -sf`) under four client loops: no failed query, no server flapping;
//! 6. maintenance on the writer: it drains (NOLB) instead of going DOWN, so a
//!    transaction held open through the write listener still commits, and no new
//!    write connection reaches it.
//!
//! **How the generated configuration is used.** `mysqlchk haproxy-config` is run
//! as an operator would (`--servers db1=127.0.0.1:P1,... --bind 127.0.0.1
//! --write-port W --read-port R --check-port 9200 --agent-port 9201 --max-lag 6s
//! --state-file <tmp>/server-state --stats-socket <tmp>/admin.sock`). Its output
//! assumes one mysqlchk port shared by every host; here the servers share one host, so each daemon has its own
//! ports: on every `server <name> ...` line the value after `check port` and the
//! value after `agent-port` are replaced by that server's daemon ports (nothing
//! else is touched; a server line without the check-port placeholder, or with
//! another value than the placeholders, fails the drill). The
//! generator's `global` section (`server-state-file`, its own admin socket with
//! `expose-fd listeners`, which drill 5 reloads through) and its `defaults mysql`
//! section are kept verbatim after the fixture's own `global`/`defaults` preamble
//! (admin socket, `log stdout`): HAProxy merges repeated `global` sections, and
//! the named `defaults mysql`, coming last, is the one the generated listeners
//! use (`haproxy -dW -c` accepts the result). The state file holds the version
//! line `1` before the first start.
//!
//! Every drill prints a `DRILL <name>: ...` line with its figures (run with
//! `--nocapture`). Timing assertions use bounds computed from the generated
//! `default-server inter 2s fastinter 1s downinter 5s rise 3 fall 2` (the write
//! listener's own `inter 1s fastinter 1s downinter 1s rise 2 fall 2` for the
//! writer) plus one mysqlchk interval and [`SLACK`] for a loaded 2-core machine.
//!
//! Drills 1, 3, 5 and 6 only drain, delay and reload, so they share one primary
//! with two replicas (serialised by a mutex, each putting the set back to
//! normal first); drills 2 and 4 kill or promote servers and get their own.
//!
//! Three drills guard findings they once exposed: drill 6 that maintenance on the
//! writer drains it (without `http-check disable-on-404` on the write listener the
//! 404 counted as a failed check, the writer went DOWN and `on-marked-down
//! shutdown-sessions` cut the held transaction); drill 3 that agent percentages
//! scale a real weight (the generator sets `weight 100`; with HAProxy's default 1,
//! `up ready 55%` became weight 0), drill 5 that the README's reload procedure
//! validates with plain `haproxy -c` (`-dW -c` always fails once a dumped state is
//! loaded) and passes `-x` (with `-sf` alone, 1 of 15 reloads under four client
//! loops failed a query: the listening socket was closed for a moment).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::BIN;
use common::haproxy::split_csv;
use common::process::{self, AtExit};
use common::{free_port, http_get, wait_until, Daemon, Haproxy, MariaDb};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

const CHK_USER: &str = "drillchk";
const CHK_PASSWORD: &str = "drill-Chk-pw7";
const APP_USER: &str = "drillapp";
const APP_PASSWORD: &str = "drill-App-pw7";

/// mysqlchk's `check.interval` in every drill but drill 4.
const INTERVAL: Duration = Duration::from_millis(250);
/// mysqlchk's default `check.interval`, which drill 4 runs at.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// The generated `default-server` timings.
const INTER: Duration = Duration::from_secs(2);
const FASTINTER: Duration = Duration::from_secs(1);
const DOWNINTER: Duration = Duration::from_secs(5);
const RISE: u32 = 3;
const FALL: u32 = 2;
/// The write listener's own timings (its `default-server` line).
const WRITE_INTER: Duration = Duration::from_secs(1);
const WRITE_FASTINTER: Duration = Duration::from_secs(1);
const WRITE_DOWNINTER: Duration = Duration::from_secs(1);
const WRITE_RISE: u32 = 2;
const WRITE_FALL: u32 = 2;
/// The generated `agent-inter`.
const AGENT_INTER: Duration = Duration::from_secs(2);
/// `agent.ramp` (the default): a replica back from lag ramps to full weight over it.
const RAMP: Duration = Duration::from_secs(10);
/// The classic stanza's `inter 2000 rise 3 fall 3`.
const CLASSIC_INTER: Duration = Duration::from_secs(2);
const CLASSIC_FALL: u32 = 3;
/// Hard lag bound (`--max-lag`, `check.max_replication_lag`) and `agent.soft_lag`.
const MAX_LAG_S: u64 = 6;
const SOFT_LAG_S: u64 = 2;
/// Added to every computed bound: checks are scheduled, not instantaneous, and
/// the machine is small and shared.
const SLACK: Duration = Duration::from_secs(3);
/// Placeholders given to `haproxy-config`, replaced per server.
const CHECK_PORT_PLACEHOLDER: u16 = 9200;
const AGENT_PORT_PLACEHOLDER: u16 = 9201;
/// Each client query (connect + query + disconnect) must finish within this.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two client queries (keeps four loops affordable on 2 cores).
const PACE: Duration = Duration::from_millis(20);
/// How long drill 5 stalls the old HAProxy (SIGSTOP) on every other reload.
const STALL: Duration = Duration::from_millis(300);
/// Pause between two bare connects ([`Work::Greeting`]).
const CONNECT_PACE: Duration = Duration::from_millis(2);

// ---------------------------------------------------------------------------
// Servers and daemons

/// One MariaDB server and the mysqlchk daemon watching it.
struct Node {
    name: String,
    db: MariaDb,
    chk: Daemon,
    http: u16,
    agent: u16,
    /// Holds the maintenance file (a directory only we can write to).
    flags: TempDir,
}

impl Node {
    fn start(name: &str, db: MariaDb, interval: Duration) -> Node {
        let flags = process::fixture_tempdir("drill-flags");
        let (http, agent) = (free_port(), free_port());
        let config = format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\nagent = \"127.0.0.1:{agent}\"\n\n\
             [mysql]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{CHK_USER}\"\n\
             ssl_mode = \"disabled\"\n\n\
             [check]\ninterval = \"{interval}ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
             max_replication_lag = \"{MAX_LAG_S}s\"\nmaintenance_file = \"{flag}\"\n\n\
             [agent]\nsoft_lag = \"{SOFT_LAG_S}s\"\n",
            port = db.port(),
            interval = interval.as_millis(),
            flag = flags.path().join("maintenance").display(),
        );
        let chk = Daemon::start(&config, &[("MYSQLCHK_MYSQL_PASSWORD", CHK_PASSWORD)]);
        Node {
            name: name.to_string(),
            db,
            chk,
            http,
            agent,
            flags,
        }
    }

    fn port(&self) -> u16 {
        self.db.port()
    }

    /// `mysqlchk maintenance <args> -c <this daemon's config>`; returns stdout.
    fn maintenance(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(BIN);
        cmd.arg("maintenance")
            .args(args)
            .arg("-c")
            .arg(self.chk.config_path())
            .env_remove("MYSQLCHK_CONFIG");
        let out = process::run_with_timeout(cmd, Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("mysqlchk maintenance {args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "mysqlchk maintenance {args:?} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn in_maintenance(&self) -> bool {
        self.flags.path().join("maintenance").exists()
    }

    /// The replication lag this daemon last saw (`/status`), if any.
    fn lag(&self) -> Option<u64> {
        let (_, body) = http_get(self.http, "/status");
        let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
        doc["snapshot"]["facts"]["replication_channels"][0]["lag_seconds"].as_u64()
    }

    /// Kills the daemon, then the server, and removes their files when the test
    /// binary exits (for sets kept in statics, which are never dropped).
    fn clean_up_at_exit(&self) {
        process::at_exit(AtExit::Kill(self.chk.pid()));
        process::at_exit(AtExit::Kill(self.db.pid()));
        process::at_exit(AtExit::RemoveDir(self.chk.dir().to_path_buf()));
        process::at_exit(AtExit::RemoveDir(self.db.dir().to_path_buf()));
        process::at_exit(AtExit::RemoveDir(self.flags.path().to_path_buf()));
    }
}

/// A primary (`db1`) and its replicas (`db2`, `db3`, ...), all watched.
struct Cluster {
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts every server at once, then sets up the accounts and the schema on
    /// the primary and points the replicas at it (they replay everything).
    fn start(replicas: usize, interval: Duration) -> Cluster {
        let (primary, replica_dbs) = thread::scope(|s| {
            let p = s.spawn(MariaDb::start);
            let rs: Vec<_> = (0..replicas)
                .map(|_| s.spawn(|| MariaDb::start_with_args(&["--read-only=ON"])))
                .collect();
            let rs: Vec<MariaDb> = rs
                .into_iter()
                .map(|h| h.join().expect("replica start"))
                .collect();
            (p.join().expect("primary start"), rs)
        });
        primary.create_checker_user(CHK_USER, CHK_PASSWORD);
        primary.sql(&format!(
            "CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'; \
             GRANT ALL ON drill.* TO '{APP_USER}'@'%'; \
             CREATE DATABASE drill; \
             CREATE TABLE drill.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 sid INT NOT NULL, at DATETIME(6) NOT NULL) ENGINE=InnoDB;"
        ));
        for r in &replica_dbs {
            r.replicate_from(&primary);
        }
        for r in &replica_dbs {
            r.sync_with(&primary);
        }
        let mut nodes = vec![Node::start("db1", primary, interval)];
        for (i, db) in replica_dbs.into_iter().enumerate() {
            nodes.push(Node::start(&format!("db{}", i + 2), db, interval));
        }
        Cluster { nodes }
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn primary(&self) -> &Node {
        &self.nodes[0]
    }

    fn replicas(&self) -> &[Node] {
        &self.nodes[1..]
    }

    /// Back to normal after an earlier drill (even one that panicked): no
    /// maintenance, no replication delay, every replica caught up and passing
    /// `/replica` on its daemon.
    fn reset(&self) {
        for n in &self.nodes {
            if n.in_maintenance() {
                n.maintenance(&["off"]);
            }
        }
        for r in self.replicas() {
            let delay =
                r.db.slave_status()
                    .and_then(|s| s.get("SQL_Delay").cloned())
                    .unwrap_or_default();
            if delay != "0" {
                r.db.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=0; START SLAVE");
                r.db.wait_replication_running(Duration::from_secs(20));
            }
            r.db.sync_with(&self.primary().db);
        }
        for r in self.replicas() {
            wait_until(
                Duration::from_secs(20),
                &format!("{} passing /replica", r.name),
                || http_get(r.http, "/replica").0 == 200,
            );
        }
    }
}

/// The primary with two replicas shared by drills 1, 3, 5 and 6 (one at a time).
fn shared_set() -> MutexGuard<'static, Cluster> {
    static SET: OnceLock<Mutex<Cluster>> = OnceLock::new();
    let guard = SET
        .get_or_init(|| {
            let c = Cluster::start(2, INTERVAL);
            for n in &c.nodes {
                n.clean_up_at_exit();
            }
            Mutex::new(c)
        })
        .lock()
        // A drill that panicked leaves the set usable: reset() repairs it.
        .unwrap_or_else(|e| e.into_inner());
    guard.reset();
    guard
}

// ---------------------------------------------------------------------------
// HAProxy configuration

/// `mysqlchk haproxy-config` for `nodes`, post-processed so that each server
/// line names its own daemon's check and agent ports (see the module docs).
struct Generated {
    body: String,
    write: u16,
    read: u16,
    _state_dir: TempDir,
    state_file: PathBuf,
    /// The generated `stats socket … expose-fd listeners` (`--stats-socket`).
    admin_socket: PathBuf,
}

fn generated_config(nodes: &[&Node]) -> Generated {
    let state_dir = process::fixture_tempdir("drill-state");
    let state_file = state_dir.path().join("server-state");
    fs::write(&state_file, "1\n").expect("cannot write the server-state file");
    let admin_socket = state_dir.path().join("admin.sock");
    let (write, read) = (free_port(), free_port());
    let servers: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}=127.0.0.1:{}", n.name, n.port()))
        .collect();
    let mut cmd = Command::new(BIN);
    cmd.args(["haproxy-config", "--servers", &servers.join(",")])
        .args(["--bind", "127.0.0.1"])
        .args(["--write-port", &write.to_string()])
        .args(["--read-port", &read.to_string()])
        .args(["--check-port", &CHECK_PORT_PLACEHOLDER.to_string()])
        .args(["--agent-port", &AGENT_PORT_PLACEHOLDER.to_string()])
        .args(["--max-lag", &format!("{MAX_LAG_S}s")])
        .arg("--state-file")
        .arg(&state_file)
        .arg("--stats-socket")
        .arg(&admin_socket);
    let out = process::run_with_timeout(cmd, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("mysqlchk haproxy-config: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mysqlchk haproxy-config failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let body = text
        .lines()
        .map(|line| per_server_ports(line, nodes))
        .collect::<Vec<_>>()
        .join("\n");
    Generated {
        body,
        write,
        read,
        _state_dir: state_dir,
        state_file,
        admin_socket,
    }
}

/// On a `server <name> ...` line, replaces the value after `check port` and after
/// `agent-port` by that server's daemon ports; other lines are returned as
/// they are. Panics on a server line without the check-port placeholder.
fn per_server_ports(line: &str, nodes: &[&Node]) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
    let significant: Vec<&str> = line.split_whitespace().collect();
    if significant.first() != Some(&"server") {
        return line.to_string();
    }
    let name = significant.get(1).copied().unwrap_or_default();
    let node = nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("generated server line for an unknown server: {line}"));
    let mut check_replaced = false;
    for i in 1..words.len().saturating_sub(1) {
        if words[i] == "port" && words[i - 1] == "check" {
            assert_eq!(words[i + 1], CHECK_PORT_PLACEHOLDER.to_string(), "{line}");
            words[i + 1] = node.http.to_string();
            check_replaced = true;
        } else if words[i] == "agent-port" {
            assert_eq!(words[i + 1], AGENT_PORT_PLACEHOLDER.to_string(), "{line}");
            words[i + 1] = node.agent.to_string();
        }
    }
    assert!(check_replaced, "no `check port` on a server line: {line}");
    words.join(" ")
}

/// The classic stanza of the spec (`mode tcp`, `option httpchk`, `check port
/// ... inter 2000 rise 3 fall 3`, nothing else), over `nodes`.
fn classic_config(nodes: &[&Node], front: u16) -> String {
    let mut s =
        format!("listen mysql\n    bind 127.0.0.1:{front}\n    mode tcp\n    option httpchk\n");
    for n in nodes {
        s += &format!(
            "    server {} 127.0.0.1:{} check port {} inter 2000 rise 3 fall 3\n",
            n.name,
            n.port(),
            n.http
        );
    }
    s
}

// ---------------------------------------------------------------------------
// HAProxy state, read over an admin socket (ours or the fixture's)

fn admin(socket: &Path, cmd: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `show stat` keyed by (proxy, server), servers only.
type Stats = BTreeMap<(String, String), BTreeMap<String, String>>;

fn stats(socket: &Path) -> Stats {
    let out = admin(socket, "show stat")
        .unwrap_or_else(|e| panic!("show stat on {}: {e}", socket.display()));
    let mut lines = out.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .unwrap_or_else(|| panic!("unexpected `show stat` output: {out:?}"));
    let cols = split_csv(header);
    let mut map = Stats::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let row: BTreeMap<String, String> = cols.iter().cloned().zip(split_csv(line)).collect();
        let (px, sv) = (row["pxname"].clone(), row["svname"].clone());
        if sv != "FRONTEND" && sv != "BACKEND" {
            map.insert((px, sv), row);
        }
    }
    map
}

fn field(st: &Stats, px: &str, sv: &str, f: &str) -> String {
    st.get(&(px.to_string(), sv.to_string()))
        .unwrap_or_else(|| panic!("no server {px}/{sv} in `show stat`"))
        .get(f)
        .cloned()
        .unwrap_or_default()
}

fn status(socket: &Path, px: &str, sv: &str) -> String {
    field(&stats(socket), px, sv, "status")
}

/// Polls `status` of `px/sv` every 25 ms until `want(status)`; returns when,
/// or panics with the last row after `deadline`.
fn wait_status(
    socket: &Path,
    px: &str,
    sv: &str,
    deadline: Duration,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> Instant {
    let start = Instant::now();
    loop {
        let st = stats(socket);
        if want(&field(&st, px, sv, "status")) {
            return Instant::now();
        }
        if start.elapsed() >= deadline {
            let row = &st[&(px.to_string(), sv.to_string())];
            panic!(
                "{px}/{sv} not {what} after {deadline:?}: status {:?}, check {:?} {:?}, agent {:?} {:?}, weight {:?}",
                row["status"],
                row["check_status"],
                row["last_chk"],
                row["agent_status"],
                row["last_agt"],
                row["weight"]
            );
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until every `(proxy, server, state)` is reached after a completed
/// check (HAProxy counts servers UP before their first check).
fn wait_checked(socket: &Path, want: &[(&str, &str, &str)], deadline: Duration) {
    wait_until(deadline, &format!("HAProxy states {want:?}"), || {
        let st = stats(socket);
        want.iter().all(|(px, sv, state)| {
            let checked = field(&st, px, sv, "check_status");
            let checked = checked.trim_start_matches("* ");
            field(&st, px, sv, "status") == *state && !checked.is_empty() && checked != "INI"
        })
    });
}

/// `DOWN`, or `DOWN (agent)` when the agent took it down first (not the
/// transitional `UP 1/2`).
fn is_down(status: &str) -> bool {
    status == "DOWN" || status.starts_with("DOWN (")
}

/// Which check took a server down: `agent` or `health check`, with its text.
fn down_cause(st: &Stats, px: &str, sv: &str) -> String {
    let status = field(st, px, sv, "status");
    if status.contains("agent") {
        format!("agent: {}", field(st, px, sv, "last_agt"))
    } else {
        format!(
            "health check: {} {}",
            field(st, px, sv, "check_status"),
            field(st, px, sv, "check_code")
        )
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------
// Client traffic

/// What each client connection does.
#[derive(Clone, Copy)]
enum Work {
    /// `SELECT @@port`: which server answered.
    Port,
    /// `SELECT @@server_id`, then insert it with `NOW(6)` into `drill.w`.
    Write,
    /// A bare TCP connect that reads the server's greeting packet and closes
    /// (no login): cheap enough to run back to back, so a moment with the
    /// listening port closed is hit; the value is the greeting's length.
    Greeting,
}

#[derive(Clone, Debug)]
struct Outcome {
    start: Instant,
    took: Duration,
    /// The port (`Work::Port`) or server id (`Work::Write`), or the error.
    result: Result<u32, String>,
}

fn app_opts(port: u16) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(APP_USER))
        .pass(Some(APP_PASSWORD))
        // Otherwise the driver silently switches to the server's Unix socket,
        // bypassing HAProxy.
        .prefer_socket(false)
        .stmt_cache_size(0)
        .into()
}

/// The first packet a MySQL server sends on `port` (through HAProxy: from the
/// server it picked); its payload length.
async fn greeting(port: u16) -> Result<u32, String> {
    use tokio::io::AsyncReadExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut header = [0u8; 4];
    s.read_exact(&mut header)
        .await
        .map_err(|e| format!("greeting: {e}"))?;
    Ok(u32::from_le_bytes([header[0], header[1], header[2], 0]))
}

/// One fresh connection doing `work`, under [`QUERY_TIMEOUT`].
async fn one_query(opts: mysql_async::Opts, work: Work) -> Result<u32, String> {
    if let Work::Greeting = work {
        return tokio::time::timeout(QUERY_TIMEOUT, greeting(opts.tcp_port()))
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {QUERY_TIMEOUT:?}")));
    }
    let attempt = async {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let result = match work {
            Work::Port => conn.query_first::<u32, _>("SELECT @@port").await,
            Work::Greeting => unreachable!("handled above"),
            Work::Write => match conn.query_first::<u32, _>("SELECT @@server_id").await {
                Ok(Some(sid)) => conn
                    .query_drop(format!(
                        "INSERT INTO drill.w (sid, at) VALUES ({sid}, NOW(6))"
                    ))
                    .await
                    .map(|()| Some(sid)),
                other => other,
            },
        };
        // A failed connection is thrown away under a deadline (it may be dead).
        let _ = tokio::time::timeout(Duration::from_millis(500), conn.disconnect()).await;
        match result {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err("no row".to_string()),
            Err(e) => Err(format!("query: {e}")),
        }
    };
    tokio::time::timeout(QUERY_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {QUERY_TIMEOUT:?}")))
}

/// A thread running fresh connections to 127.0.0.1:`port` back to back (with
/// [`PACE`] between them), recording every outcome.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl ClientLoop {
    fn start(port: u16, work: Work, pace: Duration) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let (stop, log) = (stop.clone(), log.clone());
            thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                let opts = app_opts(port);
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let result = rt.block_on(one_query(opts.clone(), work));
                    let o = Outcome {
                        start,
                        took: start.elapsed(),
                        result,
                    };
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(o);
                    thread::sleep(pace);
                }
            })
        };
        ClientLoop {
            stop,
            log,
            handle: Some(handle),
        }
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a query started after `since` succeeded with `value`.
    fn wait_for_value(
        &self,
        since: Instant,
        value: u32,
        deadline: Duration,
        what: &str,
    ) -> Instant {
        let mut when = since;
        wait_until(deadline, what, || {
            match self
                .outcomes()
                .into_iter()
                .find(|o| o.start > since && o.result == Ok(value))
            {
                Some(o) => {
                    when = o.start;
                    true
                }
                None => false,
            }
        });
        when
    }

    /// Waits until `n` queries started after `since` have finished.
    fn wait_for_count(&self, since: Instant, n: usize, deadline: Duration) {
        wait_until(deadline, &format!("{n} client queries"), || {
            self.outcomes().iter().filter(|o| o.start > since).count() >= n
        });
    }

    fn finish(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("client loop thread panicked");
        }
        self.outcomes()
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Counts of a client loop's outcomes.
struct Tally {
    total: usize,
    failed: usize,
    max_latency: Duration,
    by_value: BTreeMap<u32, usize>,
    first_errors: Vec<String>,
}

fn tally(outcomes: &[Outcome]) -> Tally {
    let mut t = Tally {
        total: outcomes.len(),
        failed: 0,
        max_latency: Duration::ZERO,
        by_value: BTreeMap::new(),
        first_errors: Vec::new(),
    };
    for o in outcomes {
        t.max_latency = t.max_latency.max(o.took);
        match &o.result {
            Ok(v) => *t.by_value.entry(*v).or_default() += 1,
            Err(e) => {
                t.failed += 1;
                if t.first_errors.len() < 3 {
                    t.first_errors.push(e.clone());
                }
            }
        }
    }
    t
}

/// Results of queries started after `since`.
fn started_after(outcomes: &[Outcome], since: Instant) -> Vec<&Outcome> {
    outcomes.iter().filter(|o| o.start > since).collect()
}

// ---------------------------------------------------------------------------
// Drill 1

#[test]
fn drill_1_planned_maintenance() {
    let set = shared_set();
    let (db2, db3) = (set.node("db2"), set.node("db3"));
    let nodes: Vec<&Node> = set.nodes.iter().collect();
    let g = generated_config(&nodes);
    let hap = Haproxy::start(&g.body);
    let sock = hap.admin_socket();
    wait_checked(
        &sock,
        &[("mysql-read", "db2", "UP"), ("mysql-read", "db3", "UP")],
        Duration::from_secs(15),
    );

    let reads = ClientLoop::start(g.read, Work::Port, PACE);
    let t0 = Instant::now();
    reads.wait_for_value(
        t0,
        u32::from(db2.port()),
        Duration::from_secs(10),
        "reads on db2",
    );
    reads.wait_for_value(
        t0,
        u32::from(db3.port()),
        Duration::from_secs(10),
        "reads on db3",
    );

    let on_at = Instant::now();
    let out = db2.maintenance(&["on", "--reason", "drill"]);
    assert!(out.contains("confirmed by the running daemon"), "{out}");
    let drained_at = wait_status(
        &sock,
        "mysql-read",
        "db2",
        INTER.max(AGENT_INTER) + INTERVAL + SLACK,
        "NOLB/DRAIN",
        |s| s == "NOLB" || s == "DRAIN",
    );
    let drained_state = status(&sock, "mysql-read", "db2");
    let drain = drained_at - on_at;
    // New connections go to the other replica only.
    let margin = drained_at + Duration::from_millis(100);
    reads.wait_for_count(margin, 30, Duration::from_secs(15));
    let during = reads.outcomes();
    let during = started_after(&during, margin);
    let elsewhere = during
        .iter()
        .filter(|o| o.result != Ok(u32::from(db3.port())))
        .count();
    assert_eq!(
        elsewhere,
        0,
        "{elsewhere} of {} queries after the drain did not go to db3: {:?}",
        during.len(),
        during.iter().map(|o| &o.result).collect::<Vec<_>>()
    );

    let off_at = Instant::now();
    let out = db2.maintenance(&["off"]);
    assert!(out.contains("confirmed by the running daemon"), "{out}");
    let up_at = wait_status(
        &sock,
        "mysql-read",
        "db2",
        INTER.max(AGENT_INTER) + INTERVAL + SLACK,
        "UP",
        |s| s == "UP",
    );
    let back_at = reads.wait_for_value(
        up_at,
        u32::from(db2.port()),
        Duration::from_secs(10),
        "reads on db2 after maintenance off",
    );
    let t = tally(&reads.finish());
    eprintln!(
        "DRILL planned-maintenance: failed={} of {} queries (db2 {}, db3 {}); {drained_state} after {}; \
         UP after {} off; reads on db2 again {} after off; max latency {}",
        t.failed,
        t.total,
        t.by_value.get(&u32::from(db2.port())).unwrap_or(&0),
        t.by_value.get(&u32::from(db3.port())).unwrap_or(&0),
        secs(drain),
        secs(up_at - off_at),
        secs(back_at.saturating_duration_since(off_at)),
        secs(t.max_latency),
    );
    assert_eq!(t.failed, 0, "failed queries: {:?}", t.first_errors);
}

// ---------------------------------------------------------------------------
// Drill 2

#[test]
fn drill_2_unplanned_failure_classic_vs_generated() {
    let mut set = Cluster::start(2, INTERVAL);
    let (p2, p3) = (set.node("db2").port(), set.node("db3").port());
    let nodes: Vec<&Node> = set.nodes.iter().collect();
    let g = generated_config(&nodes);
    let gen = Haproxy::start(&g.body);
    let classic_front = free_port();
    let classic = Haproxy::start(&classic_config(
        &[set.node("db2"), set.node("db3")],
        classic_front,
    ));
    let (gsock, csock) = (gen.admin_socket(), classic.admin_socket());
    wait_checked(
        &gsock,
        &[("mysql-read", "db2", "UP"), ("mysql-read", "db3", "UP")],
        Duration::from_secs(15),
    );
    wait_checked(
        &csock,
        &[("mysql", "db2", "UP"), ("mysql", "db3", "UP")],
        Duration::from_secs(15),
    );

    let gen_reads = ClientLoop::start(g.read, Work::Port, PACE);
    let classic_reads = ClientLoop::start(classic_front, Work::Port, PACE);
    let t0 = Instant::now();
    for (l, what) in [(&gen_reads, "generated"), (&classic_reads, "classic")] {
        for p in [p2, p3] {
            l.wait_for_value(
                t0,
                u32::from(p),
                Duration::from_secs(10),
                &format!("{what} reads on {p}"),
            );
        }
    }

    let killed_at = Instant::now();
    set.nodes[1].db.kill();
    // Both HAProxies watch the same event: poll them side by side.
    let (mut gen_down, mut classic_down) = (None, None);
    let (mut gen_how, mut classic_how) = (String::new(), String::new());
    let deadline = Duration::from_secs(30);
    while gen_down.is_none() || classic_down.is_none() {
        assert!(
            killed_at.elapsed() < deadline,
            "db2 not DOWN everywhere {deadline:?} after SIGKILL: generated {:?}, classic {:?}",
            status(&gsock, "mysql-read", "db2"),
            status(&csock, "mysql", "db2")
        );
        let g = stats(&gsock);
        if gen_down.is_none() && is_down(&field(&g, "mysql-read", "db2", "status")) {
            gen_down = Some(killed_at.elapsed());
            gen_how = down_cause(&g, "mysql-read", "db2");
        }
        let c = stats(&csock);
        if classic_down.is_none() && is_down(&field(&c, "mysql", "db2", "status")) {
            classic_down = Some(killed_at.elapsed());
            classic_how = down_cause(&c, "mysql", "db2");
        }
        thread::sleep(Duration::from_millis(25));
    }
    let (gen_down, classic_down) = (gen_down.unwrap(), classic_down.unwrap());
    // Both loops recover on db3: ten queries in a row served by db3.
    let after = Instant::now();
    for l in [&gen_reads, &classic_reads] {
        wait_until(
            Duration::from_secs(20),
            "ten reads on db3 after the kill",
            || {
                let all = l.outcomes();
                let later = started_after(&all, after);
                later.len() >= 10 && later.iter().all(|o| o.result == Ok(u32::from(p3)))
            },
        );
    }
    let gen_all = gen_reads.finish();
    let classic_all = classic_reads.finish();
    let gen_bound = INTER * FALL + INTERVAL + SLACK;
    let classic_bound = CLASSIC_INTER * CLASSIC_FALL + INTERVAL + SLACK;
    let line = |all: &[Outcome], down: Duration, how: &str| {
        let t = tally(all);
        // A query in flight on the server when it died cannot be saved by any
        // proxy; the configuration decides the fate of those started later.
        let in_flight = all
            .iter()
            .filter(|o| o.start < killed_at && o.result.is_err())
            .count();
        let slow_ok = all
            .iter()
            .filter(|o| o.result.is_ok() && o.took > Duration::from_millis(500))
            .count();
        let text = format!(
            "DOWN after {} ({how}), failed={} of {} queries ({in_flight} in flight at the kill), \
             {slow_ok} rescued after >0.5s, max latency {}, errors {:?}",
            secs(down),
            t.failed,
            t.total,
            secs(t.max_latency),
            t.first_errors
        );
        (t.failed, t.failed - in_flight, text)
    };
    let (gen_failed, gen_after, gen_text) = line(&gen_all, gen_down, &gen_how);
    let (classic_failed, classic_after, classic_text) =
        line(&classic_all, classic_down, &classic_how);
    eprintln!(
        "DRILL unplanned-failure (SIGKILL of a read server, one client loop through each):\n  \
         classic   (inter 2000 rise 3 fall 3, no redispatch):                 {classic_text}\n  \
         generated (inter 2s fastinter 1s fall 2, agent, retries 3 + redispatch): {gen_text}"
    );
    assert!(
        gen_down <= gen_bound,
        "generated config: DOWN after {gen_down:?}, bound {gen_bound:?}"
    );
    assert!(
        classic_down <= classic_bound,
        "classic stanza: DOWN after {classic_down:?}, bound {classic_bound:?}"
    );
    assert!(
        gen_failed <= classic_failed,
        "the generated config failed more queries ({gen_failed}) than the classic stanza ({classic_failed})"
    );
    // Not asserted to be 0: a query routed to the killed server in the instant the
    // agent marks it down is cut by `on-marked-down shutdown-sessions` before
    // redispatch can move it (seen: 0 or 1 of ~300; the classic stanza loses 2–3 of
    // ~16, each after 3 s).
    assert!(
        gen_after <= classic_after.max(1),
        "the generated config failed {gen_after} queries started after the kill (classic: {classic_after})"
    );
}

// ---------------------------------------------------------------------------
// Drill 3

/// What the agent port answers to the generated `agent-send` line.
fn agent_answer(port: u16) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let request = format!("replica max_lag={MAX_LAG_S}s\n");
    let raw = common::http_raw(addr, request.as_bytes(), Duration::from_secs(2));
    String::from_utf8_lossy(&raw).trim().to_string()
}

/// `STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=<s>; START SLAVE`.
fn set_delay(db: &MariaDb, seconds: u64) {
    db.sql(&format!(
        "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY={seconds}; START SLAVE"
    ));
    db.wait_replication_running(Duration::from_secs(20));
}

#[test]
fn drill_3_replication_lag() {
    let set = shared_set();
    let (db2, db3) = (set.node("db2"), set.node("db3"));
    let nodes: Vec<&Node> = set.nodes.iter().collect();
    let g = generated_config(&nodes);
    let hap = Haproxy::start(&g.body);
    let sock = hap.admin_socket();
    wait_checked(
        &sock,
        &[("mysql-read", "db2", "UP"), ("mysql-read", "db3", "UP")],
        Duration::from_secs(15),
    );
    // The agent has answered for both at least once.
    wait_until(
        Duration::from_secs(10),
        "agent checks on both replicas",
        || {
            let st = stats(&sock);
            ["db2", "db3"]
                .iter()
                .all(|s| field(&st, "mysql-read", s, "agent_status").contains("L7OK"))
        },
    );
    // The generated config gives every reader `weight 100`; a replica that came back
    // while the pair was being set up may still be ramping (README, "Verdict
    // policy"), so wait for db2 to reach it before taking it as the full weight.
    let full_weight = {
        let start = Instant::now();
        loop {
            let w = field(&stats(&sock), "mysql-read", "db2", "weight");
            if w == "100" || start.elapsed() > RAMP + AGENT_INTER + SLACK {
                break w;
            }
            thread::sleep(Duration::from_millis(100));
        }
    };
    let mut problems = Vec::new();

    // Delayed replication shows lag only while the primary is written to.
    let writer = ClientLoop::start(
        set.primary().port(),
        Work::Write,
        Duration::from_millis(100),
    );
    let reads = ClientLoop::start(g.read, Work::Port, PACE);

    // Soft range: lag ~4 s, between soft_lag 2 s and the hard bound 6 s.
    set_delay(&db3.db, 4);
    let soft_deadline = Instant::now() + Duration::from_secs(20);
    let (soft_lag, soft_weight, soft_status) = loop {
        let lag = db3.lag();
        let st = stats(&sock);
        let w = field(&st, "mysql-read", "db3", "weight");
        let agent = field(&st, "mysql-read", "db3", "last_agt");
        if matches!(lag, Some(l) if l > SOFT_LAG_S && l < MAX_LAG_S) && w != full_weight {
            break (
                format!("{}s", lag.unwrap_or_default()),
                w,
                format!("{} ({agent})", field(&st, "mysql-read", "db3", "status")),
            );
        }
        if Instant::now() >= soft_deadline {
            problems.push(format!(
                "no agent weight change for a replica lagging {lag:?}s (soft {SOFT_LAG_S}s, hard {MAX_LAG_S}s): \
                 weight {w}, agent {agent:?}"
            ));
            break (format!("{lag:?}"), w, String::new());
        }
        thread::sleep(Duration::from_millis(100));
    };
    let agent_line = agent_answer(db3.agent);
    let full: i64 = full_weight.parse().unwrap_or(-1);
    let soft: i64 = soft_weight.parse().unwrap_or(-1);
    if problems.is_empty() && !(soft > 0 && soft < full) {
        problems.push(format!(
            "lag {soft_lag} in the soft range: agent answers {agent_line:?}, but HAProxy's weight \
             for db3 is {soft_weight} (db2 at 100% has {full_weight}): a lowered weight must stay \
             above 0 and below the full weight — the generated server lines keep HAProxy's default \
             `weight 1`, so any percentage below 100% rounds down to 0 (drained)"
        ));
    }

    // Over the hard bound: out of the read listener.
    set_delay(&db3.db, MAX_LAG_S + 5);
    let over_at = {
        let start = Instant::now();
        loop {
            let (code, _) = http_get(db3.http, &format!("/replica?lag={MAX_LAG_S}"));
            if code == 503 {
                break Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "db3 never exceeded the hard bound (lag {:?})",
                db3.lag()
            );
            thread::sleep(Duration::from_millis(50));
        }
    };
    let down_at = wait_status(
        &sock,
        "mysql-read",
        "db3",
        INTER + FASTINTER * (FALL - 1) + INTERVAL + SLACK,
        "DOWN",
        is_down,
    );
    let detect = down_at.saturating_duration_since(over_at);
    // No read reaches it while it is out.
    let margin = down_at + Duration::from_millis(100);
    reads.wait_for_count(margin, 20, Duration::from_secs(15));

    // Caught up: back in rotation.
    set_delay(&db3.db, 0);
    let caught_at = {
        let start = Instant::now();
        loop {
            let (code, _) = http_get(db3.http, &format!("/replica?lag={MAX_LAG_S}"));
            if code == 200 {
                break Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "db3 never caught up"
            );
            thread::sleep(Duration::from_millis(50));
        }
    };
    let out_reads: Vec<Outcome> = started_after(&reads.outcomes(), margin)
        .into_iter()
        .filter(|o| o.start < caught_at)
        .cloned()
        .collect();
    let up_bound = DOWNINTER + FASTINTER * (RISE - 1) + INTERVAL + SLACK;
    let up_at = wait_status(&sock, "mysql-read", "db3", up_bound, "UP", |s| s == "UP");
    let back = up_at.saturating_duration_since(caught_at);
    // Back from lag, its agent weight ramps from min_weight over agent.ramp
    // (README, "Verdict policy"), counted from mysqlchk's own return.
    let full_again = {
        let start = Instant::now();
        loop {
            let w = field(&stats(&sock), "mysql-read", "db3", "weight");
            if w == full_weight {
                break start.elapsed();
            }
            if start.elapsed() > RAMP + AGENT_INTER + SLACK {
                // Say why: a ramp restarted by another return shows in the log.
                let log = db3.chk.log();
                let changes: Vec<&str> = log.lines().filter(|l| l.contains("replica ")).collect();
                panic!(
                    "db3's weight {w} not back to {full_weight} {:?} after UP; agent says {:?},                      lag {:?}; mysqlchk's replica changes: {changes:#?}",
                    start.elapsed(),
                    agent_answer(db3.agent),
                    db3.lag()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    };
    let in_rotation = reads.wait_for_value(
        up_at,
        u32::from(db3.port()),
        Duration::from_secs(10),
        "reads on db3 after it caught up",
    );
    let w = tally(&writer.finish());
    let t = tally(&reads.finish());
    let to_db3 = out_reads
        .iter()
        .filter(|o| o.result == Ok(u32::from(db3.port())))
        .count();
    eprintln!(
        "DRILL lag: soft range lag {soft_lag} -> db3 {soft_status} weight {soft_weight} (db2 {full_weight}; agent says {agent_line:?}); \
         over {MAX_LAG_S}s -> DOWN {} after mysqlchk saw it; {to_db3} of {} reads went to db3 while DOWN; \
         caught up -> UP after {} (bound {}), reads on db3 again {} later, full weight {} later (ramp {}); reads failed={} of {} (db2 {}, db3 {}); writes failed={} of {}",
        secs(detect),
        out_reads.len(),
        secs(back),
        secs(up_bound),
        secs(in_rotation.saturating_duration_since(up_at)),
        secs(full_again),
        secs(RAMP),
        t.failed,
        t.total,
        t.by_value.get(&u32::from(db2.port())).unwrap_or(&0),
        t.by_value.get(&u32::from(db3.port())).unwrap_or(&0),
        w.failed,
        w.total,
    );
    assert!(
        detect <= INTER + FASTINTER * (FALL - 1) + SLACK,
        "DOWN {detect:?} after the lag crossed the bound"
    );
    assert_eq!(to_db3, 0, "reads reached db3 while it was DOWN");
    assert_eq!(t.failed, 0, "failed reads: {:?}", t.first_errors);
    assert_eq!(
        w.failed, 0,
        "failed writes on the primary: {:?}",
        w.first_errors
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// Drill 4

/// `(sid, second)` of every row of `drill.w` on `db`.
fn rows_by_second(db: &MariaDb) -> BTreeSet<(u32, String, String)> {
    db.sql("SELECT sid, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s'), DATE_FORMAT(at, '%f') FROM drill.w")
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let sid = f.next()?.parse().ok()?;
            Some((sid, f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

#[test]
fn drill_4_switchover_in_the_safe_order() {
    let set = Cluster::start(1, DEFAULT_INTERVAL);
    let (db1, db2) = (set.node("db1"), set.node("db2"));
    let nodes: Vec<&Node> = set.nodes.iter().collect();
    let g = generated_config(&nodes);
    let hap = Haproxy::start(&g.body);
    let sock = hap.admin_socket();
    wait_checked(
        &sock,
        &[("mysql-write", "db1", "UP"), ("mysql-write", "db2", "DOWN")],
        Duration::from_secs(15),
    );
    let (sid1, sid2) = (db1.db.server_id(), db2.db.server_id());

    let writes = ClientLoop::start(g.write, Work::Write, PACE);
    let t0 = Instant::now();
    writes.wait_for_value(t0, sid1, Duration::from_secs(10), "writes on db1");

    // A session opened before the switch, through the write listener.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut held = rt
        .block_on(async {
            tokio::time::timeout(QUERY_TIMEOUT, mysql_async::Conn::new(app_opts(g.write))).await
        })
        .expect("connect timed out")
        .expect("held connection through the write listener");
    let mut held_query = |sql: &'static str| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), held.query_first::<u32, _>(sql)).await
        })
    };
    let port = held_query("SELECT @@port").expect("held session hung");
    assert_eq!(port.ok().flatten(), Some(u32::from(db1.port())));
    writes.wait_for_count(Instant::now(), 20, Duration::from_secs(10));

    // 1. The old primary stops taking writes.
    db1.db.sql("SET GLOBAL read_only=ON");
    // From the moment the statement returned: a write that started while the client
    // was still forking may legitimately have committed before it.
    let ro_at = Instant::now();
    // Still connected until HAProxy marks it down.
    let before_down = held_query("SELECT 1").expect("held session hung");
    let old_down_at = wait_status(
        &sock,
        "mysql-write",
        "db1",
        WRITE_INTER + WRITE_FASTINTER * (WRITE_FALL - 1) + DEFAULT_INTERVAL + SLACK,
        "DOWN",
        is_down,
    );
    // 2. The held session is cut (on-marked-down shutdown-sessions).
    let cut = match held_query("SELECT 1") {
        Ok(Err(e)) => format!("cut ({e})"),
        Ok(Ok(v)) => panic!("the session to the demoted primary still answers {v:?} after DOWN"),
        Err(_) => panic!("the session to the demoted primary hangs after DOWN"),
    };
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_millis(500), held.disconnect()).await;
    });

    // 3. The replica catches up, then is promoted.
    db2.db.sync_with(&db1.db);
    let promote_at = Instant::now();
    db2.db
        .sql("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=OFF");
    // mysqlchk sees the promotion within an interval; HAProxy checks the DOWN server
    // every downinter, then needs rise - 1 more passes at fastinter.
    let follow_bound =
        WRITE_DOWNINTER + WRITE_FASTINTER * (WRITE_RISE - 1) + DEFAULT_INTERVAL + SLACK;
    let new_up_at = wait_status(&sock, "mysql-write", "db2", follow_bound, "UP", |s| {
        s == "UP"
    });
    let follow = new_up_at - promote_at;
    let first_new =
        writes.wait_for_value(promote_at, sid2, Duration::from_secs(10), "writes on db2");
    // No flapping: for the next few check rounds, the new primary stays UP and the
    // old one DOWN on the write listener.
    let steady = WRITE_INTER * (WRITE_FALL + 1) + DEFAULT_INTERVAL;
    let mut flaps = BTreeSet::new();
    while new_up_at.elapsed() < steady {
        let st = stats(&sock);
        let (s1, s2) = (
            field(&st, "mysql-write", "db1", "status"),
            field(&st, "mysql-write", "db2", "status"),
        );
        if !is_down(&s1) || s2 != "UP" {
            flaps.insert(format!("db1 {s1}, db2 {s2}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    writes.wait_for_count(Instant::now(), 20, Duration::from_secs(10));
    let outcomes = writes.finish();
    let t = tally(&outcomes);
    let last_old = outcomes
        .iter()
        .filter(|o| o.result == Ok(sid1))
        .map(|o| o.start)
        .max()
        .expect("writes on db1");
    let late_old = outcomes
        .iter()
        .filter(|o| o.result == Ok(sid1) && o.start > ro_at)
        .count();

    // 4. No second holds rows written via both servers (each row keeps the
    // server_id read on its own connection; db1's rows also replicated to db2).
    let mut rows = rows_by_second(&db1.db);
    rows.extend(rows_by_second(&db2.db));
    let mut by_second: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (sid, second, _) in &rows {
        by_second.entry(second.clone()).or_default().insert(*sid);
    }
    let overlap: Vec<_> = by_second.iter().filter(|(_, s)| s.len() > 1).collect();
    let per_sid = |sid: u32| rows.iter().filter(|r| r.0 == sid).count();
    eprintln!(
        "DRILL switchover (mysqlchk interval {}; write listener inter {} fastinter {} downinter {} \
         rise {WRITE_RISE} fall {WRITE_FALL}): old primary DOWN {} after read_only=ON; held session {cut}; \
         write listener on db2 {} after promotion (expected at most downinter + (rise-1) x fastinter \
         + interval = {}; asserted with slack: {}); write outage {} (last write on db1 -> first on db2); \
         writes ok={} failed={} of {}; rows db1={} db2={}; seconds with both={}; \
         flapping in the {} after: {flaps:?}",
        secs(DEFAULT_INTERVAL),
        secs(WRITE_INTER),
        secs(WRITE_FASTINTER),
        secs(WRITE_DOWNINTER),
        secs(old_down_at - ro_at),
        secs(follow),
        secs(follow_bound - SLACK),
        secs(follow_bound),
        secs(first_new.saturating_duration_since(last_old)),
        t.total - t.failed,
        t.failed,
        t.total,
        per_sid(sid1),
        per_sid(sid2),
        overlap.len(),
        secs(steady),
    );
    assert!(
        before_down.is_ok(),
        "held session failed before DOWN: {before_down:?}"
    );
    assert_eq!(late_old, 0, "writes succeeded on db1 after read_only=ON");
    assert!(
        flaps.is_empty(),
        "write listener states after the switch: {flaps:?}"
    );
    assert!(
        overlap.is_empty(),
        "seconds with writes via both servers: {overlap:?}"
    );
    assert!(per_sid(sid2) > 0 && per_sid(sid1) > 0);
}

// ---------------------------------------------------------------------------
// Drill 5

/// A `haproxy -db` process we start ourselves (the fixture runs just one); with
/// `reload_from = (old pid, admin socket)`, the README's seamless reload: `-x
/// <socket>` takes the listening sockets over from the old process, `-sf <pid>`
/// lets it finish its sessions and leave.
fn spawn_haproxy(dir: &Path, cfg: &Path, tag: &str, reload_from: Option<(u32, &Path)>) -> Child {
    let stdout = fs::File::create(dir.join(format!("{tag}.out.log"))).expect("log file");
    let stderr = fs::File::create(dir.join(format!("{tag}.err.log"))).expect("log file");
    let mut cmd = Command::new("haproxy");
    // `-p pidfile` is ignored with -db (HAProxy 2.6): we keep the pids ourselves.
    cmd.arg("-db").arg("-f").arg(cfg);
    if let Some((pid, socket)) = reload_from {
        cmd.arg("-x").arg(socket).arg("-sf").arg(pid.to_string());
    }
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    process::spawn_guarded(cmd).unwrap_or_else(|e| panic!("cannot spawn haproxy: {e}"))
}

/// Waits until the admin socket is served by `pid` (`show info`).
fn wait_admin_pid(sock: &Path, pid: u32, deadline: Duration) -> Instant {
    let needle = format!("Pid: {pid}\n");
    wait_until(
        deadline,
        &format!("haproxy {pid} on the admin socket"),
        || admin(sock, "show info").is_ok_and(|s| s.contains(&needle)),
    );
    Instant::now()
}

/// The state of every server, e.g. `mysql-read/db1 -> DOWN`: the first word
/// of `status` (`DOWN (agent)` is DOWN, the transitional `UP 1/2` is UP).
fn states(st: &Stats) -> BTreeMap<String, String> {
    st.iter()
        .map(|((px, sv), row)| {
            let state = row["status"].split(' ').next().unwrap_or_default();
            (format!("{px}/{sv}"), state.to_string())
        })
        .collect()
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            process::kill_and_reap(c);
        }
    }
}

#[test]
fn drill_5_haproxy_seamless_reload() {
    let set = shared_set();
    let nodes: Vec<&Node> = set.nodes.iter().collect();
    let g = generated_config(&nodes);
    let dir = process::fixture_tempdir("drill-haproxy");
    let cfg = dir.path().join("haproxy.cfg");
    fs::write(&cfg, Haproxy::config_text(dir.path(), &g.body)).expect("haproxy.cfg");
    let sock = dir.path().join("admin.sock");
    // `haproxy [-dW] -c -f cfg`: Ok, or the warnings and alerts it printed.
    let validate = |strict: bool| -> Result<(), String> {
        let mut check = Command::new("haproxy");
        if strict {
            check.arg("-dW");
        }
        check.arg("-c").arg("-f").arg(&cfg);
        let out = process::run_with_timeout(check, Duration::from_secs(30)).expect("haproxy -c");
        if out.status.success() {
            return Ok(());
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Err(text
            .lines()
            .filter(|l| l.contains("[WARNING]") || l.contains("[ALERT]"))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    validate(true).expect("the generated config with an empty state file");
    let mut procs = Processes(vec![spawn_haproxy(dir.path(), &cfg, "hap0", None)]);
    wait_admin_pid(&sock, procs.0[0].id(), Duration::from_secs(15));
    let expected = [
        ("mysql-write", "db1", "UP"),
        ("mysql-write", "db2", "DOWN"),
        ("mysql-write", "db3", "DOWN"),
        ("mysql-read", "db1", "DOWN"),
        ("mysql-read", "db2", "UP"),
        ("mysql-read", "db3", "UP"),
    ];
    wait_checked(&sock, &expected, Duration::from_secs(20));

    // Four client loops, plus a bare connect loop on each listener (back to back,
    // greeting only): a moment with a listening port closed shows as a failed
    // connect in one of them.
    let reads = [
        ClientLoop::start(g.read, Work::Port, PACE),
        ClientLoop::start(g.read, Work::Port, PACE),
    ];
    let writes = [
        ClientLoop::start(g.write, Work::Write, PACE),
        ClientLoop::start(g.write, Work::Write, PACE),
    ];
    let connects = [
        ClientLoop::start(g.read, Work::Greeting, CONNECT_PACE),
        ClientLoop::start(g.write, Work::Greeting, CONNECT_PACE),
    ];
    let t0 = Instant::now();
    for l in reads.iter().chain(&writes).chain(&connects) {
        l.wait_for_count(t0, 10, Duration::from_secs(10));
    }

    const RELOADS: usize = 15;
    let mut serving_after = Vec::new();
    for i in 1..=RELOADS {
        let old = procs.0.last_mut().expect("running haproxy");
        let old_pid = old.id();
        // The README procedure: dump the state (through the generated admin socket),
        // validate, start with `-x <that socket> -sf <old pid>`.
        let state = admin(&g.admin_socket, "show servers state").expect("show servers state");
        assert!(state.starts_with("1\n"), "{state}");
        fs::write(&g.state_file, &state).expect("write the server-state file");
        let before = states(&stats(&sock));
        // The README validates with plain `-c` here: with a dumped state loaded,
        // `-dW -c` always fails (HAProxy warns about every server that stays DOWN and
        // about state it cannot apply to servers without agent-check).
        assert!(
            validate(true).is_err(),
            "-dW -c now accepts a loaded state: update the README"
        );
        validate(false).expect("haproxy -c");
        // Every other reload happens while the old process is stalled for a moment
        // (as a busy one is): connections pile up in its accept queue, which closing
        // its listening socket would reset; with `-x` the new process takes that very
        // socket over, queue included.
        let stall = i % 2 == 1;
        if stall {
            process::send_signal(old_pid, libc::SIGSTOP);
            process::wait_proc_state(old_pid, "stopped", Duration::from_secs(5), |s| {
                s == Some('T')
            });
        }
        let reload_at = Instant::now();
        let new = spawn_haproxy(
            dir.path(),
            &cfg,
            &format!("hap{i}"),
            Some((old_pid, &g.admin_socket)),
        );
        let new_pid = new.id();
        procs.0.push(new);
        if stall {
            // The stall itself, not a wait for a condition.
            thread::sleep(STALL);
            process::send_signal(old_pid, libc::SIGCONT);
        }
        let serving = wait_admin_pid(&sock, new_pid, Duration::from_secs(15));
        // Right after the start, before any check could have run.
        let first = stats(&sock);
        let right_after = states(&first);
        assert_eq!(
            right_after, before,
            "server states changed across reload {i} (new process {new_pid})"
        );
        // And no flapping during the next check round(s).
        let watch_until = Instant::now() + INTER + FASTINTER;
        while Instant::now() < watch_until {
            let now = states(&stats(&sock));
            assert_eq!(now, before, "a server changed state after reload {i}");
            thread::sleep(Duration::from_millis(50));
        }
        // The old process leaves once its sessions are done.
        let n = procs.0.len();
        let old = &mut procs.0[n - 2];
        let gone = process::wait_timeout(old, Duration::from_secs(15));
        assert!(
            gone.is_some(),
            "old haproxy {old_pid} still running after reload {i}"
        );
        serving_after.push(serving - reload_at);
    }
    let after = Instant::now();
    for l in reads.iter().chain(&writes).chain(&connects) {
        l.wait_for_count(after, 10, Duration::from_secs(10));
    }
    let c = tally(
        &connects
            .into_iter()
            .flat_map(ClientLoop::finish)
            .collect::<Vec<_>>(),
    );
    let r = tally(
        &reads
            .into_iter()
            .flat_map(ClientLoop::finish)
            .collect::<Vec<_>>(),
    );
    let w = tally(
        &writes
            .into_iter()
            .flat_map(ClientLoop::finish)
            .collect::<Vec<_>>(),
    );
    let db1_sid = set.primary().db.server_id();
    let (fastest, slowest) = (
        serving_after.iter().min().copied().unwrap_or_default(),
        serving_after.iter().max().copied().unwrap_or_default(),
    );
    eprintln!(
        "DRILL haproxy-reload: {RELOADS} reloads (server state dumped and loaded, -x <admin socket> -sf; \
         every other one with the old process stalled for {}), two read and two write loops; reads failed={} of {} (max latency {}), writes failed={} of {} \
         (all via db1: {}); bare connects failed={} of {} (first errors {:?}); server states identical right after each reload and during the next {}; \
         new process serving {}-{} after its start, old one gone each time",
        secs(STALL),
        r.failed,
        r.total,
        secs(r.max_latency),
        w.failed,
        w.total,
        w.by_value.keys().all(|s| *s == db1_sid),
        c.failed,
        c.total,
        c.first_errors,
        secs(INTER + FASTINTER),
        secs(fastest),
        secs(slowest),
    );
    assert_eq!(r.failed, 0, "failed reads: {:?}", r.first_errors);
    assert_eq!(w.failed, 0, "failed writes: {:?}", w.first_errors);
    assert_eq!(c.failed, 0, "failed connects: {:?}", c.first_errors);
}

// ---------------------------------------------------------------------------
// Drill 6

/// `drill.w.sid` of the rows written by drill 6's held transaction.
const HELD_SID: u32 = 777_001;

#[test]
fn drill_6_maintenance_on_the_writer() {
    let set = shared_set();
    let db1 = set.primary();
    let nodes: Vec<&Node> = set.nodes.iter().collect();
    let g = generated_config(&nodes);
    let hap = Haproxy::start(&g.body);
    let sock = hap.admin_socket();
    wait_checked(
        &sock,
        &[
            ("mysql-write", "db1", "UP"),
            ("mysql-write", "db2", "DOWN"),
            ("mysql-write", "db3", "DOWN"),
        ],
        Duration::from_secs(15),
    );
    let sid1 = db1.db.server_id();
    let writes = ClientLoop::start(g.write, Work::Write, PACE);
    writes.wait_for_value(
        Instant::now(),
        sid1,
        Duration::from_secs(10),
        "writes on db1",
    );

    // A session opened before the maintenance, through the write listener, in the
    // middle of a transaction.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut held = rt
        .block_on(async {
            tokio::time::timeout(QUERY_TIMEOUT, mysql_async::Conn::new(app_opts(g.write))).await
        })
        .expect("connect timed out")
        .expect("held connection through the write listener");
    let mut held_query = |sql: &str| -> Result<(), String> {
        let sql = sql.to_string();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), held.query_drop(sql)).await
        })
        .map_err(|_| "hung".to_string())?
        .map_err(|e| e.to_string())
    };
    held_query("BEGIN").expect("BEGIN on the held session");
    held_query(&format!(
        "INSERT INTO drill.w (sid, at) VALUES ({}, NOW(6))",
        HELD_SID
    ))
    .expect("insert on the held session");

    let on_at = Instant::now();
    let out = db1.maintenance(&["on", "--reason", "drill writer"]);
    assert!(out.contains("confirmed by the running daemon"), "{out}");
    // Drained (the fix), or marked down (404 counted as a failed check).
    let left_at = wait_status(
        &sock,
        "mysql-write",
        "db1",
        WRITE_INTER * WRITE_FALL + INTERVAL + SLACK,
        "NOLB/DRAIN or DOWN",
        |s| s == "NOLB" || s == "DRAIN" || is_down(s),
    );
    let left_state = status(&sock, "mysql-write", "db1");
    // Stay in maintenance for longer than it takes to mark a failing server down
    // (fall checks, at inter then fastinter), watching the state.
    let watch = WRITE_INTER + WRITE_FASTINTER * WRITE_FALL + SLACK;
    let mut seen = BTreeSet::new();
    while left_at.elapsed() < watch {
        seen.insert(status(&sock, "mysql-write", "db1"));
        thread::sleep(Duration::from_millis(50));
    }
    // The transaction opened before the maintenance still finishes.
    let held_insert = held_query(&format!(
        "INSERT INTO drill.w (sid, at) VALUES ({}, NOW(6))",
        HELD_SID
    ));
    let held_commit = held_insert.clone().and_then(|()| held_query("COMMIT"));
    let committed: usize = db1
        .db
        .sql(&format!(
            "SELECT COUNT(*) FROM drill.w WHERE sid = {}",
            HELD_SID
        ))
        .trim()
        .parse()
        .unwrap_or(0);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_millis(500), held.disconnect()).await;
    });

    // New write connections after the drain: none on db1 (here no other server
    // passes /primary, so they fail until a switchover or maintenance off).
    let margin = left_at + Duration::from_millis(100);
    writes.wait_for_count(margin, 10, Duration::from_secs(15));
    let off_at = Instant::now();
    let out = db1.maintenance(&["off"]);
    assert!(out.contains("confirmed by the running daemon"), "{out}");
    let up_at = wait_status(
        &sock,
        "mysql-write",
        "db1",
        WRITE_DOWNINTER + WRITE_FASTINTER * WRITE_RISE + INTERVAL + SLACK,
        "UP",
        |s| s == "UP",
    );
    let back_at = writes.wait_for_value(up_at, sid1, Duration::from_secs(10), "writes again");
    let all = writes.finish();
    let during: Vec<&Outcome> = all
        .iter()
        .filter(|o| o.start > margin && o.start < off_at)
        .collect();
    let during_on_db1 = during.iter().filter(|o| o.result == Ok(sid1)).count();
    eprintln!(
        "DRILL writer-maintenance: {left_state} {} after `maintenance on` (states seen over the next {}: {seen:?}); \
         transaction held open across it: insert {held_insert:?}, commit {held_commit:?}, {committed} rows committed; \
         {during_on_db1} of {} new write connections during maintenance reached db1 ({} failed: no other writer); \
         UP {} after `off`, writes on db1 again {} after `off`",
        secs(left_at - on_at),
        secs(watch),
        during.len(),
        during.iter().filter(|o| o.result.is_err()).count(),
        secs(up_at - off_at),
        secs(back_at.saturating_duration_since(off_at)),
    );
    assert!(
        !is_down(&left_state) && !seen.iter().any(|s| is_down(s)),
        "the writer in maintenance was marked DOWN ({left_state}, then {seen:?}): \
         on-marked-down shutdown-sessions cuts its sessions"
    );
    assert_eq!(held_insert, Ok(()), "the held session after maintenance on");
    assert_eq!(held_commit, Ok(()), "COMMIT on the held session");
    assert_eq!(committed, 2, "rows of the held transaction");
    assert_eq!(
        during_on_db1, 0,
        "new write connections reached the drained writer"
    );
}
