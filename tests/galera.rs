//! The daemon against a real 3-node Galera cluster (MariaDB 10.11 + galera-4)
//! on this machine: Synced, Desynced (donor), rejecting queries, isolated
//! from its peers (non-Primary), and read_only.
//!
//! One cluster serves the whole test binary ([`GaleraCluster::shared`]); each
//! test takes it with [`GaleraCluster::exclusive`], which serialises the tests
//! and puts the cluster back to normal afterwards, even when a test panics.
//! Every wait polls a condition under a deadline; the measured detection
//! times are printed (run with `--nocapture` to see them).

mod common;

use common::galera::{Exclusive, GaleraCluster, WsrepStatus};
use common::{free_port, http_get, Daemon};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread;
use std::time::{Duration, Instant};

const CHECKER_USER: &str = "mysqlchk_galera";
const CHECKER_PASSWORD: &str = "galera-check-pw";
/// The node the daemons under test watch.
const NODE: usize = 1;
/// The daemon's check interval: a change shows at most ~one interval (plus a
/// round) after it happens.
const INTERVAL_MS: u64 = 250;
/// Deadline for changes the server makes at once (desync, reject_queries,
/// read_only): a few check intervals, generous for a loaded 2-core machine.
const QUICK: Duration = Duration::from_secs(5);

/// The shared cluster, held by this test until the end, with the checker
/// account in place.
fn cluster() -> Exclusive {
    let cluster = GaleraCluster::exclusive();
    static USER: Once = Once::new();
    // Accounts replicate: create it on one node, use it on any.
    USER.call_once(|| {
        cluster
            .node(0)
            .create_checker_user(CHECKER_USER, CHECKER_PASSWORD)
    });
    cluster
}

/// A `mysqlchk serve` watching node `node` (interval 250 ms, timeout 250 ms,
/// stale_after 3 s), with `extra_check` appended to its `[check]` section;
/// returns once it has completed a first round.
fn daemon(cluster: &GaleraCluster, node: usize, extra_check: &str) -> Daemon {
    let config = format!(
        "[listen]\nhttp = [\"127.0.0.1:{http}\"]\n\n\
         [mysql]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{CHECKER_USER}\"\n\
         connect_timeout = \"1s\"\nssl_mode = \"disabled\"\n\n\
         [check]\ninterval = \"{INTERVAL_MS}ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n{extra_check}\n",
        http = free_port(),
        port = cluster.node(node).port(),
    );
    let d = Daemon::start(
        &config,
        &[
            ("MYSQLCHK_MYSQL_PASSWORD", CHECKER_PASSWORD),
            ("MYSQLCHK_CHECK_MAINTENANCE_FILE", "{config}.maintenance"),
        ],
    );
    wait_http(
        &d,
        "/",
        |_, b| !b.contains("starting"),
        QUICK,
        "the end of `starting`",
        cluster,
        node,
    );
    d
}

/// Polls `path` on the daemon every 20 ms until `ok(status, body)`; returns
/// the time it took. Panics after `deadline` with the last answer, the
/// node's wsrep status and the daemon's log.
fn wait_http(
    d: &Daemon,
    path: &str,
    ok: impl Fn(u16, &str) -> bool,
    deadline: Duration,
    what: &str,
    cluster: &GaleraCluster,
    node: usize,
) -> Duration {
    wait_http_traced(d, path, ok, deadline, what, cluster, node).0
}

/// [`wait_http`], also returning every distinct answer seen on the way
/// (`"<ms> ms: <status> <body>"`, the first one and each change).
fn wait_http_traced(
    d: &Daemon,
    path: &str,
    ok: impl Fn(u16, &str) -> bool,
    deadline: Duration,
    what: &str,
    cluster: &GaleraCluster,
    node: usize,
) -> (Duration, Vec<String>) {
    let start = Instant::now();
    let mut trace: Vec<String> = Vec::new();
    let mut previous = None;
    loop {
        let (status, body) = http_get(d.http_port(), path);
        let answer = (status, body.trim_end().to_string());
        if previous.as_ref() != Some(&answer) {
            trace.push(format!(
                "{}: {} {}",
                ms(start.elapsed()),
                answer.0,
                answer.1
            ));
            previous = Some(answer);
        }
        if ok(status, &body) {
            return (start.elapsed(), trace);
        }
        if start.elapsed() >= deadline {
            panic!(
                "GET {path}: no {what} after {deadline:?}; last answer {status} {body:?}\n\
                 node {node} wsrep status: {:?}\nmysqlchk log:\n{}",
                cluster
                    .node(node)
                    .try_sql("SHOW GLOBAL STATUS LIKE 'wsrep_%state%'"),
                d.log()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `path` answers `status` with exactly `line` (plus newline).
fn assert_http(d: &Daemon, path: &str, status: u16, line: &str) {
    let (got, body) = http_get(d.http_port(), path);
    assert_eq!(
        (got, body.trim_end()),
        (status, line),
        "GET {path}; mysqlchk log:\n{}",
        d.log()
    );
}

/// `/status` as JSON.
fn status_json(d: &Daemon) -> serde_json::Value {
    let (code, body) = http_get(d.http_port(), "/status");
    assert_eq!(code, 200, "GET /status: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
}

/// A core variable as the daemon's latest snapshot saw it.
fn snapshot_var(d: &Daemon, name: &str) -> Option<String> {
    status_json(d)["snapshot"]["facts"]["variables"][name]
        .as_str()
        .map(str::to_string)
}

/// What [`watch`] saw: when the node's own status and the daemon's answer
/// reached the wanted state, and every distinct state on the way.
struct Watched {
    galera_at: Duration,
    daemon_at: Duration,
    galera_trace: Vec<String>,
    daemon_trace: Vec<String>,
}

/// Polls node `node`'s wsrep status and the daemon's `/` together (from
/// now) until `galera_done` and `daemon_done` have both been seen; panics
/// after `deadline` with both traces and the daemon's log.
fn watch(
    cluster: &GaleraCluster,
    node: usize,
    d: &Daemon,
    deadline: Duration,
    what: &str,
    galera_done: impl Fn(&WsrepStatus) -> bool,
    daemon_done: impl Fn(u16, &str) -> bool,
) -> Watched {
    let t0 = Instant::now();
    let (mut galera_at, mut daemon_at) = (None, None);
    let (mut galera_trace, mut daemon_trace) = (Vec::<String>::new(), Vec::<String>::new());
    let (mut last_galera, mut last_daemon) = (String::new(), String::new());
    let record = |trace: &mut Vec<String>, last: &mut String, now: String| {
        if *last != now {
            trace.push(format!("{}: {now}", ms(t0.elapsed())));
            *last = now;
        }
    };
    while galera_at.is_none() || daemon_at.is_none() {
        let status = cluster.node(node).try_wsrep_status(Duration::from_secs(5));
        let now = match &status {
            Ok(s) => format!(
                "{} {} {} size {} ready {}",
                s.local_state.map_or("?".into(), |n| n.to_string()),
                s.local_state_comment,
                s.cluster_status,
                s.cluster_size,
                s.ready
            ),
            Err(e) => format!("error {e}"),
        };
        record(&mut galera_trace, &mut last_galera, now);
        if galera_at.is_none() && status.as_ref().is_ok_and(&galera_done) {
            galera_at = Some(t0.elapsed());
        }
        let (code, body) = http_get(d.http_port(), "/");
        record(
            &mut daemon_trace,
            &mut last_daemon,
            format!("{code} {}", body.trim_end()),
        );
        if daemon_at.is_none() && daemon_done(code, &body) {
            daemon_at = Some(t0.elapsed());
        }
        if t0.elapsed() >= deadline {
            panic!(
                "not {what} within {deadline:?}\nnode {node}: {galera_trace:?}\ndaemon: {daemon_trace:?}\n{}\nmysqlchk log:\n{}",
                cluster.log_tails(20),
                d.log()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    Watched {
        galera_at: galera_at.unwrap_or_default(),
        daemon_at: daemon_at.unwrap_or_default(),
        galera_trace,
        daemon_trace,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn synced_node_is_up_in_every_role() {
    let cluster = cluster();
    for i in 0..cluster.len() {
        let s = cluster.node(i).wsrep_status();
        assert!(s.is_synced(cluster.len()), "node {i}: {s:?}");
    }
    let d = daemon(&cluster, NODE, "");
    assert_http(&d, "/", 200, "health: up");
    assert_http(&d, "/health", 200, "health: up");
    assert_http(&d, "/read-only", 200, "read-only: up - galera healthy");
    let (code, body) = http_get(d.http_port(), "/primary");
    assert_eq!(code, 200, "/primary on a writable Synced node: {body}");
    // HAProxy's default check request.
    let resp = common::http_request(d.http_port(), b"OPTIONS / HTTP/1.0\r\n\r\n");
    assert_eq!(resp.status, 200, "{resp:?}");

    // /status (admin, from loopback) shows the Galera facts.
    let doc = status_json(&d);
    let vars = &doc["snapshot"]["facts"]["variables"];
    assert_eq!(vars["wsrep_on"], "ON", "{doc:#}");
    assert_eq!(vars["wsrep_provider"], common::galera::PROVIDER, "{doc:#}");
    assert_eq!(vars["wsrep_desync"], "OFF", "{doc:#}");
    assert_eq!(vars["wsrep_reject_queries"], "NONE", "{doc:#}");
    assert_eq!(doc["roles"]["health"]["state"], "up", "{doc:#}");
    // The status counters (wsrep_local_state, wsrep_cluster_status, ...)
    // decide Galera health; show them when /status carries them.
    let facts = &doc["snapshot"]["facts"];
    match facts.get("status").filter(|s| s.is_object()) {
        Some(st) => {
            assert_eq!(st["wsrep_local_state"], "4", "{doc:#}");
            assert_eq!(st["wsrep_cluster_status"], "Primary", "{doc:#}");
        }
        None => eprintln!(
            "note: /status does not show the wsrep status counters (facts keys: {:?})",
            facts
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
        ),
    }

    // The other nodes answer the same.
    for i in (0..cluster.len()).filter(|&i| i != NODE) {
        let other = daemon(&cluster, i, "");
        assert_http(&other, "/", 200, "health: up");
        assert_http(&other, "/read-only", 200, "read-only: up - galera healthy");
    }
}

#[test]
fn desynced_node_is_down_unless_donors_count_as_healthy() {
    let cluster = cluster();
    let strict = daemon(&cluster, NODE, "");
    let lenient = daemon(&cluster, NODE, "galera_donor_is_healthy = true");
    assert_http(&strict, "/", 200, "health: up");
    assert_http(&lenient, "/", 200, "health: up");

    let node = cluster.node(NODE);
    node.sql("SET GLOBAL wsrep_desync=ON");
    let t0 = Instant::now();
    let galera = node
        .wait_wsrep(QUICK, "Donor/Desynced", |s| s.local_state == Some(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let reason = "health: down - galera node Donor/Desynced (wsrep_local_state 2)";
    wait_http(
        &strict,
        "/",
        |s, b| s == 503 && b.trim_end() == reason,
        QUICK,
        "503 Donor/Desynced",
        &cluster,
        NODE,
    );
    let detected = t0.elapsed();
    eprintln!(
        "Galera desync: node reported state 2 {} after SET, daemon said 503 {} after SET",
        ms(galera),
        ms(detected)
    );
    // The lenient daemon has seen the desync too, and still says up.
    wait_http(
        &lenient,
        "/status",
        |_, b| {
            serde_json::from_str::<serde_json::Value>(b)
                .is_ok_and(|doc| doc["snapshot"]["facts"]["variables"]["wsrep_desync"] == "ON")
        },
        QUICK,
        "wsrep_desync ON in the snapshot",
        &cluster,
        NODE,
    );
    assert_eq!(
        snapshot_var(&lenient, "wsrep_desync").as_deref(),
        Some("ON")
    );
    assert_http(&lenient, "/", 200, "health: up");
    let (code, body) = http_get(lenient.http_port(), "/read-only");
    assert_eq!(
        code, 200,
        "/read-only on a donor that counts as healthy: {body}"
    );
    assert_http(
        &strict,
        "/read-only",
        503,
        &reason.replace("health", "read-only"),
    );
    let (code, _) = http_get(strict.http_port(), "/primary");
    assert_eq!(code, 503);

    node.sql("SET GLOBAL wsrep_desync=OFF");
    let t0 = Instant::now();
    wait_http(
        &strict,
        "/",
        |s, _| s == 200,
        QUICK,
        "200 after desync OFF",
        &cluster,
        NODE,
    );
    eprintln!(
        "Galera desync OFF: daemon said 200 again {} after SET",
        ms(t0.elapsed())
    );
    assert_http(&lenient, "/", 200, "health: up");
}

#[test]
fn node_rejecting_queries_is_down() {
    let cluster = cluster();
    let d = daemon(&cluster, NODE, "");
    let node = cluster.node(NODE);
    for mode in ["ALL", "ALL_KILL"] {
        node.sql(&format!("SET GLOBAL wsrep_reject_queries={mode}"));
        let t0 = Instant::now();
        // Galera stays Synced: only the variable tells.
        assert!(node.wsrep_status().is_synced(cluster.len()));
        let reason = format!("health: down - galera rejects queries (wsrep_reject_queries={mode})");
        let (_, trace) = wait_http_traced(
            &d,
            "/",
            |s, b| s == 503 && b.trim_end() == reason,
            QUICK,
            &format!("503 rejecting queries ({mode})"),
            &cluster,
            NODE,
        );
        eprintln!(
            "Galera wsrep_reject_queries={mode}: daemon said 503 {} after SET; answers seen: {trace:?}",
            ms(t0.elapsed())
        );
        // Table access fails on that node, SELECT 1 does not: the daemon
        // must read the variable, not trust its check query.
        let err = node
            .try_sql("SELECT COUNT(*) FROM mysql.user")
            .expect_err("table access while rejecting queries");
        assert!(err.contains("1047"), "{err}");

        node.sql("SET GLOBAL wsrep_reject_queries=NONE");
        let t0 = Instant::now();
        wait_http(
            &d,
            "/",
            |s, _| s == 200,
            QUICK,
            "200 after wsrep_reject_queries=NONE",
            &cluster,
            NODE,
        );
        eprintln!(
            "Galera wsrep_reject_queries=NONE: daemon said 200 again {} after SET",
            ms(t0.elapsed())
        );
    }
}

#[test]
fn isolated_node_is_down_while_the_others_stay_up() {
    let cluster = cluster();
    let d = daemon(&cluster, NODE, "");
    // Watch another node throughout: losing one node of three must not
    // disturb the majority.
    let other_node = (NODE + 1) % cluster.len();
    let other = daemon(&cluster, other_node, "");
    assert_http(&d, "/", 200, "health: up");
    assert_http(&other, "/", 200, "health: up");
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = Arc::clone(&stop);
        let port = other.http_port();
        thread::spawn(move || {
            let mut bad = Vec::new();
            let mut samples = 0u32;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = http_get(port, "/");
                samples += 1;
                if status != 200 {
                    bad.push(format!(
                        "{:?}: {status} {}",
                        start.elapsed(),
                        body.trim_end()
                    ));
                }
                thread::sleep(Duration::from_millis(50));
            }
            (samples, bad)
        })
    };

    let node = cluster.node(NODE);
    node.set_isolated(true);
    let reason = "health: down - galera cluster component is not Primary";
    let cut = watch(
        &cluster,
        NODE,
        &d,
        Duration::from_secs(30),
        "non-Primary after isolate=1",
        |s| s.cluster_status != "Primary",
        |status, body| status == 503 && body.trim_end() == reason,
    );
    eprintln!(
        "Galera isolate=1: node non-Primary after {}, daemon said 503 after {}\n  node: {:?}\n  daemon: {:?}",
        ms(cut.galera_at),
        ms(cut.daemon_at),
        cut.galera_trace,
        cut.daemon_trace
    );
    let isolated_status = node.wsrep_status();
    assert_ne!(isolated_status.cluster_status, "Primary");
    assert!(!isolated_status.ready, "{isolated_status:?}");
    // The rest of the cluster carries on as a Primary component of n-1.
    let rest = cluster.len() - 1;
    for i in (0..cluster.len()).filter(|&i| i != NODE) {
        cluster
            .node(i)
            .wait_wsrep(
                Duration::from_secs(30),
                "a Primary component of the rest",
                |s| s.is_synced(rest),
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_http(&other, "/", 200, "health: up");
    let (code, body) = http_get(d.http_port(), "/read-only");
    assert_eq!(code, 503, "{body}");
    let (code, body) = http_get(d.http_port(), "/primary");
    assert_eq!(code, 503, "{body}");

    node.set_isolated(false);
    let size = cluster.len();
    let back = watch(
        &cluster,
        NODE,
        &d,
        Duration::from_secs(60),
        "Synced and 200 after isolate=0",
        |s| s.is_synced(size),
        |status, _| status == 200,
    );
    eprintln!(
        "Galera isolate=0: node Synced again after {}, daemon said 200 after {}\n  node: {:?}\n  daemon: {:?}",
        ms(back.galera_at),
        ms(back.daemon_at),
        back.galera_trace,
        back.daemon_trace
    );

    stop.store(true, Ordering::Relaxed);
    let (samples, bad) = watcher.join().expect("watcher thread");
    assert!(
        bad.is_empty(),
        "node {other_node} was not healthy while node {NODE} was isolated ({} of {samples} samples):\n{}",
        bad.len(),
        bad.join("\n")
    );
    eprintln!("Galera isolation: node {other_node} answered 200 in all {samples} samples");
}

#[test]
fn read_only_node_is_healthy_but_not_primary() {
    let cluster = cluster();
    let d = daemon(&cluster, NODE, "");
    assert_eq!(http_get(d.http_port(), "/primary").0, 200);
    cluster.node(NODE).sql("SET GLOBAL read_only=ON");
    let t0 = Instant::now();
    wait_http(
        &d,
        "/primary",
        |s, _| s == 503,
        QUICK,
        "/primary 503",
        &cluster,
        NODE,
    );
    eprintln!(
        "Galera read_only=ON: /primary 503 after {}",
        ms(t0.elapsed())
    );
    let (_, body) = http_get(d.http_port(), "/primary");
    assert!(
        body.starts_with("primary: down") && body.contains("read_only"),
        "{body:?}"
    );
    assert_http(&d, "/", 200, "health: up");
    assert_http(&d, "/read-only", 200, "read-only: up - galera healthy");
    // read_only is local: the other nodes stay writable.
    assert_eq!(cluster.node(0).sql("SELECT @@read_only").trim(), "0");
}

/// A fleet `mysqlchk serve` watching every node of the cluster (targets `g0`,
/// `g1`, ...) with one Galera writer; returns once every target has answered.
fn fleet_daemon(cluster: &GaleraCluster) -> Daemon {
    let targets: String = (0..cluster.len())
        .map(|i| {
            format!(
                "[[target]]\nname = \"g{i}\"\nhost = \"127.0.0.1\"\nport = {}\n",
                cluster.node(i).port()
            )
        })
        .collect();
    let config = format!(
        "[listen]\nhttp = [\"127.0.0.1:{http}\"]\n\n\
         [mysql]\nuser = \"{CHECKER_USER}\"\n\
         connect_timeout = \"1s\"\nssl_mode = \"disabled\"\n\n\
         [check]\ninterval = \"{INTERVAL_MS}ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
         galera_single_writer = true\n\n{targets}",
        http = free_port(),
    );
    let d = Daemon::start(
        &config,
        &[
            ("MYSQLCHK_MYSQL_PASSWORD", CHECKER_PASSWORD),
            ("MYSQLCHK_CHECK_MAINTENANCE_FILE", "{config}.maintenance"),
        ],
    );
    let start = Instant::now();
    while (0..cluster.len()).any(|i| {
        http_get(d.http_port(), &format!("/g{i}"))
            .1
            .contains("starting")
    }) {
        assert!(
            start.elapsed() < QUICK,
            "fleet daemon still starting:\n{}",
            d.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    d
}

/// The targets whose `/primary` is up on `d`, and every `/primary` line.
fn writers(cluster: &GaleraCluster, d: &Daemon) -> (Vec<usize>, Vec<String>) {
    let mut up = Vec::new();
    let mut lines = Vec::new();
    for i in 0..cluster.len() {
        let (status, body) = http_get(d.http_port(), &format!("/g{i}/primary"));
        if status == 200 {
            up.push(i);
        }
        lines.push(format!("g{i}: {status} {}", body.trim_end()));
    }
    (up, lines)
}

/// Waits until both fleet checkers name the same single writer, other than `not`.
fn agreed_writer(
    cluster: &GaleraCluster,
    a: &Daemon,
    b: &Daemon,
    not: Option<usize>,
    deadline: Duration,
) -> (usize, Duration) {
    let start = Instant::now();
    loop {
        let (wa, la) = writers(cluster, a);
        let (wb, lb) = writers(cluster, b);
        if wa.len() == 1 && wa == wb && Some(wa[0]) != not {
            return (wa[0], start.elapsed());
        }
        assert!(
            start.elapsed() < deadline,
            "no agreed writer after {deadline:?}:\n  a: {la:?}\n  b: {lb:?}\n  indices: {:?}",
            (0..cluster.len())
                .map(|i| cluster.status(i, "wsrep_local_index"))
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// One Galera writer (README, "Verdict policy"): two fleet checkers name the same
/// writer, the healthy node with the lowest `wsrep_local_index`; when it leaves the
/// cluster (isolated), both name the same new one.
#[test]
fn every_fleet_checker_names_the_same_galera_writer() {
    let cluster = cluster();
    let a = fleet_daemon(&cluster);
    let b = fleet_daemon(&cluster);
    let (writer, took) = agreed_writer(&cluster, &a, &b, None, QUICK);
    eprintln!("writer g{writer} after {}", ms(took));
    let lowest = (0..cluster.len())
        .min_by_key(|&i| {
            cluster
                .status(i, "wsrep_local_index")
                .and_then(|v| v.trim().parse::<u32>().ok())
                .unwrap_or(u32::MAX)
        })
        .unwrap();
    assert_eq!(writer, lowest, "the writer is the lowest wsrep_local_index");
    // Held: the others say why they are not primaries; every role but /primary is up.
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(2) {
        for d in [&a, &b] {
            let (up, lines) = writers(&cluster, d);
            assert_eq!(up, [writer], "{lines:?}");
            for (i, line) in lines.iter().enumerate().filter(|(i, _)| *i != writer) {
                assert!(
                    line.starts_with(&format!(
                        "g{i}: 503 primary: down - not the galera writer (wsrep_local_index "
                    )),
                    "{line}"
                );
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    for i in 0..cluster.len() {
        let (status, body) = http_get(a.http_port(), &format!("/g{i}/read-only"));
        assert_eq!(status, 200, "g{i}: {body}");
    }

    cluster.node(writer).set_isolated(true);
    let (new, took) = agreed_writer(&cluster, &a, &b, Some(writer), Duration::from_secs(60));
    eprintln!(
        "writer g{writer} isolated: both name g{new} after {}",
        ms(took)
    );
    let (status, body) = http_get(a.http_port(), &format!("/g{writer}/primary"));
    assert_eq!(status, 503, "{body}");
    let metrics = http_get(a.http_port(), "/metrics").1;
    assert!(
        metrics.contains(&format!(
            "mysqlchk_transitions_total{{target=\"g{new}\",role=\"primary\",to=\"up\"}} "
        )),
        "{metrics}"
    );
    cluster.node(writer).set_isolated(false);
}
