//! Push drills (README "Pushing state to HAProxy"): what the runtime-API push buys over
//! HAProxy's own checks, measured end to end on loopback.
//!
//! Set-up: a MariaDB primary (`db1`) and two replicas (`db2`, `db3`, all with
//! `log_slave_updates` so a demoted primary can follow the new one), each watched by its
//! own `mysqlchk serve` (timeout 250 ms, `max_replication_lag` 6 s); two HAProxy
//! processes (nodes A and B), each running what `mysqlchk haproxy-config --push` prints
//! for them (read listener `inter 2s fastinter 1s downinter 5s rise 3 fall 2`, write
//! listener `inter 1s fastinter 1s downinter 1s rise 2 fall 2`, each server's own check
//! port given as `NAME=HOST:PORT@CHECKPORT`). With push on, every mysqlchk's config holds
//! the two `[[haproxy]]` tables printed by `--push` (uncommented, as an operator would);
//! with push off it holds none. Both and the check interval are switched by rewriting
//! the daemons' configs and `SIGHUP`, so every configuration runs on the same servers.
//!
//! For each configuration (interval 1 s — the default — and 250 ms, each without and
//! with push) the drills are, in order:
//! (a) SIGKILL of a read server (`db2`): time until it is DOWN on both HAProxy nodes,
//! (d) with a read loop through node A counting failed queries;
//! (e) with `db2` still down, node A restarted (a new process on the same config and
//! sockets, the server-state file not dumped, as a reload that skips the README's dump
//! step): time from the new process answering until it shows `db2` DOWN;
//! (b) `read_only=ON` on the writer: time until it is DOWN on both nodes;
//! (c) a switchover in the safe order (`read_only=ON` on the old primary, wait until it
//! is DOWN on both nodes, let the replica catch up, promote it) under a write loop
//! through node A: time from the promotion until a write commits on the new primary,
//! and no second with writes on both servers. The next configuration switches back.
//!
//! Every figure is printed (`DRILL push ...` lines and a final table; run with
//! `--nocapture`). Assertions are generous behaviour bounds only (the machine is small
//! and shared): a pushed change within one interval plus [`SLACK`], an unpushed one within
//! HAProxy's own check bounds plus [`SLACK`].

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::BIN;
use common::haproxy::split_csv;
use common::process;
use common::{free_port, http_get, wait_until, Daemon, Haproxy, MariaDb};
use mysql_async::prelude::Queryable;
use tempfile::TempDir;

const CHK_USER: &str = "pushchk";
const CHK_PASSWORD: &str = "push-Chk-pw7";
const APP_USER: &str = "pushapp";
const APP_PASSWORD: &str = "push-App-pw7";
const MAX_LAG_S: u64 = 6;
/// Added to every bound: checks are scheduled, and the machine is small and shared.
const SLACK: Duration = Duration::from_secs(3);
/// The generated read listener's timings, and the write listener's.
const INTER: Duration = Duration::from_secs(2);
const FALL: u32 = 2;
const WRITE_INTER: Duration = Duration::from_secs(1);
const WRITE_FALL: u32 = 2;
/// How often the watchers read `show stat` (both nodes in turn).
const POLL: Duration = Duration::from_millis(5);
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const PACE: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Servers, daemons, HAProxy nodes

struct Node {
    name: String,
    db: MariaDb,
    chk: Option<Daemon>,
    http: u16,
}

impl Node {
    fn chk(&self) -> &Daemon {
        self.chk.as_ref().expect("daemon started")
    }

    fn config(&self, interval: Duration, tables: &str) -> String {
        format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n\n\
             [mysql]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{CHK_USER}\"\n\
             ssl_mode = \"disabled\"\n\n\
             [check]\ninterval = \"{interval}ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
             max_replication_lag = \"{MAX_LAG_S}s\"\n\n{tables}",
            http = self.http,
            port = self.db.port(),
            interval = interval.as_millis(),
        )
    }

    fn status(&self) -> serde_json::Value {
        let (_, body) = http_get(self.http, "/status");
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HAProxy node running the generated config.
struct Lb {
    hap: Haproxy,
    write: u16,
    read: u16,
    /// The generated `--stats-socket` (what the `--push` table names).
    socket: PathBuf,
    /// The `[[haproxy]]` table printed by `--push`, uncommented.
    table: String,
    _dir: TempDir,
}

/// `mysqlchk haproxy-config --push` for the servers, run as an operator would.
fn generate(nodes: &[Node]) -> (String, u16, u16, PathBuf, String, TempDir) {
    let dir = process::fixture_tempdir("push-drill-lb");
    let state = dir.path().join("server-state");
    fs::write(&state, "1\n").expect("server-state file");
    let socket = dir.path().join("admin.sock");
    let (write, read) = (free_port(), free_port());
    let servers: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}=127.0.0.1:{}@{}", n.name, n.db.port(), n.http))
        .collect();
    let mut cmd = Command::new(BIN);
    cmd.args(["haproxy-config", "--push", "--servers", &servers.join(",")])
        .args(["--bind", "127.0.0.1"])
        .args(["--write-port", &write.to_string()])
        .args(["--read-port", &read.to_string()])
        .args(["--max-lag", &format!("{MAX_LAG_S}s")])
        .arg("--state-file")
        .arg(&state)
        .arg("--stats-socket")
        .arg(&socket);
    let out = process::run_with_timeout(cmd, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("mysqlchk haproxy-config: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    // The operator's paste: the table's lines without their leading "# ".
    let table: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .skip_while(|l| !l.starts_with("[[haproxy]]"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        table.contains(&format!("socket = {:?}", socket.display().to_string())),
        "{table}"
    );
    (text, write, read, socket, table, dir)
}

fn start_lb(nodes: &[Node]) -> Lb {
    let (body, write, read, socket, table, dir) = generate(nodes);
    let hap = Haproxy::start(&body);
    Lb {
        hap,
        write,
        read,
        socket,
        table,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------
// Reading HAProxy

fn admin(socket: &Path, cmd: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `status` of `px/sv` per `show stat` ("" while the socket does not answer).
fn status(socket: &Path, px: &str, sv: &str) -> String {
    let Ok(out) = admin(socket, "show stat") else {
        return String::new();
    };
    let mut lines = out.lines();
    let Some(cols) = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .map(split_csv)
    else {
        return String::new();
    };
    lines
        .map(|l| {
            cols.iter()
                .cloned()
                .zip(split_csv(l))
                .collect::<BTreeMap<_, _>>()
        })
        .find(|r| {
            r.get("pxname").map(String::as_str) == Some(px)
                && r.get("svname").map(String::as_str) == Some(sv)
        })
        .and_then(|r| r.get("status").cloned())
        .unwrap_or_default()
}

/// A predicate on a `show stat` status.
type Want = fn(&str) -> bool;

fn is_down(s: &str) -> bool {
    s.starts_with("DOWN")
}

fn is_up(s: &str) -> bool {
    s == "UP"
}

/// Polls `px/sv` on every socket until `want` holds on each; returns, per socket, the
/// time from `t0` (zero if it already held). Panics after `deadline`.
fn watch(
    sockets: &[&Path],
    px: &str,
    sv: &str,
    t0: Instant,
    deadline: Duration,
    want: fn(&str) -> bool,
) -> Vec<Duration> {
    let mut when: Vec<Option<Duration>> = vec![None; sockets.len()];
    while when.iter().any(Option::is_none) {
        for (i, s) in sockets.iter().enumerate() {
            if when[i].is_none() && want(&status(s, px, sv)) {
                when[i] = Some(t0.elapsed());
            }
        }
        if t0.elapsed() > deadline {
            let now: Vec<String> = sockets.iter().map(|s| status(s, px, sv)).collect();
            panic!("{px}/{sv} not as wanted on every node after {deadline:?}: {now:?}");
        }
        thread::sleep(POLL);
    }
    when.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------
// SQL and client traffic

fn root_opts(port: u16) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false)
        .stmt_cache_size(0)
        .into()
}

fn app_opts(port: u16) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(APP_USER))
        .pass(Some(APP_PASSWORD))
        // Otherwise the driver switches to the server's socket, bypassing HAProxy.
        .prefer_socket(false)
        .stmt_cache_size(0)
        .into()
}

/// Runs `sql` on an already open root connection and returns the instant just before
/// it was sent: a drill's zero without a client process start in it.
fn timed_sql(db: &MariaDb, sql: &str) -> Instant {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut c =
            tokio::time::timeout(QUERY_TIMEOUT, mysql_async::Conn::new(root_opts(db.port())))
                .await
                .expect("root connect timed out")
                .expect("root connect");
        let t0 = Instant::now();
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = tokio::time::timeout(Duration::from_millis(500), c.disconnect()).await;
        t0
    })
}

#[derive(Clone, Copy)]
enum Work {
    /// `SELECT @@port`.
    Read,
    /// Insert `@@server_id` with `NOW(6)` into `drill.w`; the value is the server id.
    Write,
}

#[derive(Clone, Debug)]
struct Outcome {
    start: Instant,
    end: Instant,
    result: Result<u32, String>,
}

async fn one_query(port: u16, work: Work) -> Result<u32, String> {
    let attempt = async {
        let mut conn = mysql_async::Conn::new(app_opts(port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let r = match work {
            Work::Read => conn.query_first::<u32, _>("SELECT @@port").await,
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
        let _ = tokio::time::timeout(Duration::from_millis(500), conn.disconnect()).await;
        match r {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err("no row".into()),
            Err(e) => Err(format!("query: {e}")),
        }
    };
    tokio::time::timeout(QUERY_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Fresh connections to 127.0.0.1:`port` back to back, every outcome recorded.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Outcome>>>,
    handle: Option<thread::JoinHandle<()>>,
}

impl ClientLoop {
    fn start(port: u16, work: Work) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let handle = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            while !s.load(Ordering::Relaxed) {
                let start = Instant::now();
                let result = rt.block_on(one_query(port, work));
                l.lock().unwrap_or_else(|e| e.into_inner()).push(Outcome {
                    start,
                    end: Instant::now(),
                    result,
                });
                thread::sleep(PACE);
            }
        });
        ClientLoop {
            stop,
            log,
            handle: Some(handle),
        }
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a query started after `since` returned `value`; its end.
    fn wait_for(&self, since: Instant, value: u32, deadline: Duration) -> Instant {
        let mut at = since;
        wait_until(
            deadline,
            &format!("a query answered by {value}"),
            || match self
                .outcomes()
                .iter()
                .find(|o| o.start > since && o.result == Ok(value))
            {
                Some(o) => {
                    at = o.end;
                    true
                }
                None => false,
            },
        );
        at
    }

    fn finish(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("client loop panicked");
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

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn pair(v: &[Duration]) -> String {
    format!("A {} / B {}", ms(v[0]), ms(v[1]))
}

// ---------------------------------------------------------------------------
// The drill

struct Rig {
    nodes: Vec<Node>,
    lbs: Vec<Lb>,
    /// Index of the current primary in `nodes`.
    primary: usize,
}

impl Rig {
    fn sockets(&self) -> Vec<&Path> {
        self.lbs.iter().map(|l| l.socket.as_path()).collect()
    }

    /// Every daemon at `interval`, with (`push`) or without the `--push` tables; returns
    /// once each has reloaded and, with push, is connected to both nodes.
    fn configure(&self, interval: Duration, push: bool) {
        let tables: String = if push {
            self.lbs.iter().map(|l| l.table.as_str()).collect()
        } else {
            String::new()
        };
        for n in &self.nodes {
            let before = n.chk().log().matches("reloaded").count();
            n.chk().write_config(&n.config(interval, &tables));
            n.chk().signal(libc::SIGHUP);
            wait_until(Duration::from_secs(10), "daemon reloaded", || {
                n.chk().log().matches("reloaded").count() > before
            });
            wait_until(Duration::from_secs(10), "push connections", || {
                let st = n.status();
                let nodes = st["haproxy"].as_array().cloned().unwrap_or_default();
                if push {
                    nodes.len() == 2 && nodes.iter().all(|h| h["state"] == "connected")
                } else {
                    nodes.is_empty()
                }
            });
        }
    }

    /// Waits until both nodes route writes to the primary only and reads to the
    /// replicas only (after checks ran: HAProxy counts servers UP before their first).
    fn settle(&self) {
        let socks = self.sockets();
        for (i, n) in self.nodes.iter().enumerate() {
            let (w, r): (Want, Want) = if i == self.primary {
                (is_up, is_down)
            } else {
                (is_down, is_up)
            };
            wait_until(
                Duration::from_secs(60),
                &format!("{} settled", n.name),
                || {
                    socks.iter().all(|s| {
                        w(&status(s, "mysql-write", &n.name))
                            && r(&status(s, "mysql-read", &n.name))
                    })
                },
            );
        }
    }
}

/// One configuration's figures.
#[derive(Default)]
struct Figures {
    kill: Vec<Duration>,
    kill_failed: (usize, usize),
    reload: Duration,
    read_only: Vec<Duration>,
    switch_write: Duration,
    switch_up: Vec<Duration>,
    switch_both_seconds: usize,
}

fn run_config(rig: &mut Rig, interval: Duration, push: bool) -> Figures {
    rig.configure(interval, push);
    rig.settle();
    let mut f = Figures::default();
    let tag = format!(
        "interval {}, push {}",
        ms(interval),
        if push { "on" } else { "off" }
    );
    // Pushed: one round to notice, then one command per node. Checks: fall × inter.
    let bound = |inter: Duration, fall: u32| {
        if push {
            interval + SLACK
        } else {
            inter * fall + interval + SLACK
        }
    };

    // (a), (d): a replica killed under a read loop through node A.
    let victim = (rig.primary + 1) % rig.nodes.len();
    let victim = if victim == rig.primary { 1 } else { victim };
    let name = rig.nodes[victim].name.clone();
    let reads = ClientLoop::start(rig.lbs[0].read, Work::Read);
    thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    rig.nodes[victim].db.kill();
    f.kill = watch(
        &rig.sockets(),
        "mysql-read",
        &name,
        t0,
        bound(INTER, FALL),
        is_down,
    );
    thread::sleep(Duration::from_secs(1));
    let outcomes = reads.finish();
    f.kill_failed = (
        outcomes.iter().filter(|o| o.result.is_err()).count(),
        outcomes.len(),
    );
    eprintln!(
        "DRILL push ({tag}) kill of {name}: DOWN {}; failed reads through A {} of {}",
        pair(&f.kill),
        f.kill_failed.0,
        f.kill_failed.1
    );

    // (e): node A restarted while the server is down.
    rig.lbs[0].hap.restart();
    let t0 = Instant::now();
    let sock = rig.lbs[0].socket.clone();
    f.reload = watch(
        &[&sock],
        "mysql-read",
        &name,
        t0,
        bound(INTER, FALL) + INTER * 3,
        is_down,
    )[0];
    eprintln!(
        "DRILL push ({tag}) new HAProxy process (state not dumped): {name} DOWN {} after it answered",
        ms(f.reload)
    );
    rig.nodes[victim].db.restart();
    rig.nodes[victim]
        .db
        .wait_replication_running(Duration::from_secs(30));
    rig.settle();

    // (b): read_only=ON on the writer.
    let p = rig.nodes[rig.primary].name.clone();
    let t0 = timed_sql(&rig.nodes[rig.primary].db, "SET GLOBAL read_only=ON");
    f.read_only = watch(
        &rig.sockets(),
        "mysql-write",
        &p,
        t0,
        bound(WRITE_INTER, WRITE_FALL),
        is_down,
    );
    eprintln!(
        "DRILL push ({tag}) read_only=ON on {p}: DOWN {}",
        pair(&f.read_only)
    );
    rig.nodes[rig.primary].db.sql("SET GLOBAL read_only=OFF");
    rig.settle();

    // (c): switchover in the safe order, old primary -> the first replica.
    let (old, new) = (rig.primary, if rig.primary == 0 { 1 } else { 0 });
    let sid_old = rig.nodes[old].db.server_id();
    let sid_new = rig.nodes[new].db.server_id();
    let writes = ClientLoop::start(rig.lbs[0].write, Work::Write);
    writes.wait_for(Instant::now(), sid_old, Duration::from_secs(10));
    let ro = timed_sql(&rig.nodes[old].db, "SET GLOBAL read_only=ON");
    watch(
        &rig.sockets(),
        "mysql-write",
        &rig.nodes[old].name,
        ro,
        bound(WRITE_INTER, WRITE_FALL),
        is_down,
    );
    rig.nodes[new].db.sync_with(&rig.nodes[old].db);
    let promote = timed_sql(
        &rig.nodes[new].db,
        "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=OFF",
    );
    f.switch_up = watch(
        &rig.sockets(),
        "mysql-write",
        &rig.nodes[new].name,
        promote,
        Duration::from_secs(20),
        is_up,
    );
    let landed = writes.wait_for(promote, sid_new, Duration::from_secs(20));
    f.switch_write = landed.saturating_duration_since(promote);
    thread::sleep(Duration::from_secs(1));
    let outcomes = writes.finish();
    let late_old = outcomes
        .iter()
        .filter(|o| o.start > ro && o.result == Ok(sid_old))
        .count();
    // The demoted primary follows the new one (its binlog has every GTID it applied).
    rig.nodes[old]
        .db
        .sql("STOP SLAVE; SET GLOBAL gtid_slave_pos=@@gtid_binlog_pos");
    rig.nodes[old].db.replicate_from(&rig.nodes[new].db);
    rig.primary = new;
    let mut by_second: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for n in [old, new] {
        for l in rig.nodes[n]
            .db
            .sql("SELECT sid, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s') FROM drill.w")
            .lines()
        {
            if let Some((sid, sec)) = l.split_once('\t') {
                if let Ok(sid) = sid.parse() {
                    by_second.entry(sec.to_string()).or_default().insert(sid);
                }
            }
        }
    }
    f.switch_both_seconds = by_second.values().filter(|s| s.len() > 1).count();
    eprintln!(
        "DRILL push ({tag}) switchover {} -> {}: first write on the new primary {} after the \
         promotion; UP {}; seconds with writes on both: {}; writes on the old one after read_only: {late_old}",
        rig.nodes[old].name,
        rig.nodes[new].name,
        ms(f.switch_write),
        pair(&f.switch_up),
        f.switch_both_seconds
    );
    assert_eq!(late_old, 0, "writes on the demoted primary");
    assert_eq!(
        f.switch_both_seconds, 0,
        "seconds with writes on both servers"
    );
    f
}

#[test]
fn push_drills() {
    let (db1, db2, db3) = thread::scope(|s| {
        let args = ["--log-slave-updates=ON"];
        let p = s.spawn(move || MariaDb::start_with_args(&args));
        let r2 =
            s.spawn(|| MariaDb::start_with_args(&["--log-slave-updates=ON", "--read-only=ON"]));
        let r3 =
            s.spawn(|| MariaDb::start_with_args(&["--log-slave-updates=ON", "--read-only=ON"]));
        (
            p.join().expect("db1"),
            r2.join().expect("db2"),
            r3.join().expect("db3"),
        )
    });
    db1.create_checker_user(CHK_USER, CHK_PASSWORD);
    db1.sql(&format!(
        "CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'; \
         GRANT ALL ON drill.* TO '{APP_USER}'@'%'; CREATE DATABASE drill; \
         CREATE TABLE drill.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, sid INT NOT NULL, \
         at DATETIME(6) NOT NULL) ENGINE=InnoDB;"
    ));
    for r in [&db2, &db3] {
        r.replicate_from(&db1);
        r.sync_with(&db1);
    }
    let mut nodes: Vec<Node> = [("db1", db1), ("db2", db2), ("db3", db3)]
        .into_iter()
        .map(|(name, db)| Node {
            name: name.into(),
            db,
            chk: None,
            http: free_port(),
        })
        .collect();
    let lbs = vec![start_lb(&nodes), start_lb(&nodes)];
    for n in &mut nodes {
        n.chk = Some(Daemon::start(
            &n.config(Duration::from_secs(1), ""),
            &[("MYSQLCHK_MYSQL_PASSWORD", CHK_PASSWORD)],
        ));
    }
    let mut rig = Rig {
        nodes,
        lbs,
        primary: 0,
    };

    let configs = [
        (Duration::from_secs(1), false),
        (Duration::from_secs(1), true),
        (Duration::from_millis(250), false),
        (Duration::from_millis(250), true),
    ];
    let mut table = String::from(
        "| interval | push | (a) kill: DOWN A / B | (d) failed reads | (e) new process: DOWN | \
         (b) read_only: DOWN A / B | (c) first write on new primary | (c) UP A / B |\n",
    );
    for (interval, push) in configs {
        let f = run_config(&mut rig, interval, push);
        table += &format!(
            "| {} | {} | {} | {} of {} | {} | {} | {} | {} |\n",
            ms(interval),
            if push { "on" } else { "off" },
            pair(&f.kill),
            f.kill_failed.0,
            f.kill_failed.1,
            ms(f.reload),
            pair(&f.read_only),
            ms(f.switch_write),
            pair(&f.switch_up),
        );
    }
    eprintln!("DRILL push table (HAProxy read inter 2s fall 2, write inter 1s fall 2 rise 2; push_up_after = 2 intervals):\n{table}");
}
