//! Fleet mode on three real MariaDB targets (a primary, its replica, a standalone)
//! behind one mysqlchk: every way of naming a target (HAProxy's send-state header, a
//! path prefix, the agent's first word), the 400 answers, a frozen server that leaves
//! the others' snapshots fresh, and SIGHUP adding and removing targets without
//! resetting the ones that stay.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use common::{free_port, http_get, http_request, wait_until, Daemon, MariaDb};
use serde_json::Value;

const PASSWORD: &str = "fleet-chk-pw";

struct Three {
    primary: MariaDb,
    replica: MariaDb,
    standalone: MariaDb,
}

fn three() -> Three {
    let primary = MariaDb::start();
    primary.create_checker_user("chk", PASSWORD);
    let replica = MariaDb::start_replica_of(&primary);
    replica.sync_with(&primary);
    let standalone = MariaDb::start();
    standalone.create_checker_user("chk", PASSWORD);
    Three {
        primary,
        replica,
        standalone,
    }
}

fn target(name: &str, db: &MariaDb, extra: &str) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {}\n{extra}\n",
        db.port()
    )
}

fn config(http: u16, agent: u16, dir: &str, targets: &str) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\nagent = \"127.0.0.1:{agent}\"\n\
         [mysql]\nuser = \"chk\"\n\
         [check]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nstale_after = \"10s\"\n\
         maintenance_file = \"{dir}/maintenance\"\n{targets}"
    )
}

/// The daemon, its agent port, and the directory of the maintenance flags (removed
/// when the test ends).
fn start(targets: &str) -> (Daemon, u16, tempfile::TempDir) {
    let (http, agent) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        &config(http, agent, dir.path().to_str().unwrap(), targets),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    (d, agent, dir)
}

/// Wait until `path` (with `headers`) answers exactly `status` and `body`.
fn expect(port: u16, path: &str, headers: &str, status: u16, body: &str) {
    let req = format!("GET {path} HTTP/1.0\r\n{headers}\r\n");
    let mut last = None;
    let ok = wait_until_ok(Duration::from_secs(20), || {
        let r = http_request(port, req.as_bytes());
        let got = (r.status, r.body.trim_end().to_string());
        let done = got == (status, body.to_string());
        last = Some(got);
        done
    });
    assert!(
        ok,
        "{path} [{headers:?}]: wanted {status} {body:?}, last {last:?}"
    );
}

fn wait_until_ok(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn agent(port: u16, line: &str) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn status(port: u16) -> Value {
    let (code, body) = http_get(port, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// name → (seq, age_seconds) of every target's snapshot in `/status`.
fn snapshots(port: u16) -> Vec<(String, Option<(u64, f64)>)> {
    status(port)["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| {
            let s = &t["snapshot"];
            let snap = s["seq"]
                .as_u64()
                .map(|seq| (seq, s["age_seconds"].as_f64().unwrap()));
            (t["name"].as_str().unwrap().to_string(), snap)
        })
        .collect()
}

fn send_state(db: &MariaDb, server: &str) -> String {
    format!(
        "X-Haproxy-Server-State: UP 2/3; address=127.0.0.1; port={}; name=mysql-read/{server}; \
         node=lb1; weight=1/2; scur=0/0; qcur=0\r\n",
        db.port()
    )
}

#[test]
fn every_way_of_naming_a_target_and_the_400_answers() {
    let t = three();
    let targets = target("db1", &t.primary, "")
        + &target("db2", &t.replica, "")
        + &target("standalone", &t.standalone, "");
    let (d, agent_port, _flags) = start(&targets);
    let p = d.http_port();

    // Path prefix.
    expect(p, "/db1/primary", "", 200, "primary: up");
    expect(p, "/db2/replica", "", 200, "replica: up - lag 0s");
    expect(
        p,
        "/db2/primary",
        "",
        503,
        "primary: down - read_only is ON",
    );
    expect(p, "/standalone", "", 200, "health: up");
    expect(
        p,
        "/standalone/replica?lag=5",
        "",
        503,
        "replica: down - not replicating (no replication channel)",
    );

    // HAProxy's send-state header: by address and port, whatever the server is called.
    expect(
        p,
        "/replica",
        &send_state(&t.replica, "whatever"),
        200,
        "replica: up - lag 0s",
    );
    expect(
        p,
        "/primary",
        &send_state(&t.primary, "db1"),
        200,
        "primary: up",
    );
    // By the server part of name= when the address is not one of ours.
    let by_name = "X-Haproxy-Server-State: UP 3/3; address=192.0.2.1; port=3306; \
                   name=mysql-read/db2; node=lb1; weight=1/1; scur=0/0; qcur=0\r\n";
    expect(p, "/replica", by_name, 200, "replica: up - lag 0s");
    // Header and path agreeing.
    expect(
        p,
        "/db1/primary",
        &send_state(&t.primary, "db1"),
        200,
        "primary: up",
    );

    // The agent's first word.
    assert_eq!(
        agent(agent_port, "db2/replica max_lag=20s\n"),
        "up ready 100%\n"
    );
    assert_eq!(agent(agent_port, "db1/primary\n"), "up ready 100%\n");
    let a = agent(agent_port, "db2/primary\n");
    assert!(
        a.starts_with("down #") && a.contains("read_only is ON"),
        "{a:?}"
    );
    assert_eq!(agent(agent_port, "standalone\n"), "up ready 100%\n");

    // 400 with the reason: none named, an unknown one, two that disagree.
    let (code, body) = http_get(p, "/replica");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.starts_with("no target named: with 3 targets"),
        "{body}"
    );
    assert_eq!(
        http_get(p, "/db9/replica"),
        (400, "unknown target db9\n".into())
    );
    let r = http_request(
        p,
        format!(
            "GET /db2/replica HTTP/1.0\r\n{}\r\n",
            send_state(&t.primary, "db1")
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("names target db1 but the path names db2"),
        "{}",
        r.body
    );
    let unknown =
        "X-Haproxy-Server-State: UP; address=192.0.2.1; port=1; name=be/db9; node=lb1\r\n";
    let r = http_request(
        p,
        format!("GET /replica HTTP/1.0\r\n{unknown}\r\n").as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("names no target"), "{}", r.body);
    assert_eq!(
        agent(agent_port, "db9/replica\n"),
        "down #unknown target db9\n"
    );
    assert!(agent(agent_port, "replica\n").starts_with("down #no target named"));

    // Fleet-wide endpoints.
    assert_eq!(http_get(p, "/live"), (200, "live: up\n".into()));
    let snaps = snapshots(p);
    let names: Vec<_> = snaps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["db1", "db2", "standalone"]);
    assert!(
        snaps
            .iter()
            .all(|(_, s)| s.is_some_and(|(_, age)| age < 2.0)),
        "{snaps:?}"
    );
    let (code, metrics) = http_get(p, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "mysqlchk_role_up{target=\"db1\",role=\"primary\"} 1",
        "mysqlchk_role_up{target=\"db2\",role=\"replica\"} 1",
        "mysqlchk_role_up{target=\"db2\",role=\"primary\"} 0",
        "mysqlchk_replication_lag_seconds{target=\"db2\",channel=\"\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    assert_eq!(metrics.matches("# TYPE mysqlchk_role_up ").count(), 1);
    assert!(metrics.contains("mysqlchk_snapshot_age_seconds{target=\"standalone\"} "));

    // Commands take --target.
    let cfg = d.config_path();
    let cmd = |args: &[&str]| {
        let out = std::process::Command::new(common::daemon::BIN)
            .args(["-c", cfg.to_str().unwrap()])
            .args(args)
            .env("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let (code, out) = cmd(&["check", "primary", "--target", "db2"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.starts_with("MYSQLCHK CRITICAL"), "{out}");
    let (code, out) = cmd(&["check", "replica", "--target", "db2"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = cmd(&["check", "primary"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("name one with --target (db1, db2, standalone)"),
        "{out}"
    );
    let (code, out) = cmd(&["check", "--target", "db9"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("unknown target db9"), "{out}");
    // Maintenance of one target drains only that one, and the daemon confirms it.
    let (code, out) = cmd(&[
        "maintenance",
        "on",
        "--target",
        "db2",
        "--reason",
        "upgrade",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("confirmed by the running daemon"), "{out}");
    // check.maintenance_status (404 by default: HAProxy drains on it).
    expect(p, "/db2/replica", "", 404, "maintenance: upgrade");
    expect(p, "/db1/primary", "", 200, "primary: up");
    let (_, out) = cmd(&["maintenance", "--target", "db2", "status"]);
    assert!(out.starts_with("maintenance: on (upgrade"), "{out}");
    let (_, out) = cmd(&["maintenance", "status", "--target", "db1"]);
    assert_eq!(out, "maintenance: off\n");
    // inetd answers for one server: with several targets it says to run serve.
    let mut inetd = std::process::Command::new(common::daemon::BIN)
        .args(["-c", cfg.to_str().unwrap(), "inetd"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It may answer (and exit) before reading the request: a broken pipe here is fine.
    let _ = inetd
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n");
    let out = String::from_utf8_lossy(&inetd.wait_with_output().unwrap().stdout).to_string();
    assert!(out.starts_with("HTTP/1.0 503"), "{out}");
    assert!(
        out.contains("with several [[target]] run mysqlchk serve"),
        "{out}"
    );
    let (code, out) = cmd(&["maintenance", "off", "--target", "db2"]);
    assert_eq!(code, Some(0), "{out}");
    expect(p, "/db2/replica", "", 200, "replica: up - lag 0s");
}

#[test]
fn a_frozen_server_leaves_the_others_snapshots_fresh() {
    let t = three();
    let targets = target("db1", &t.primary, "")
        + &target("db2", &t.replica, "")
        + &target("standalone", &t.standalone, "");
    let (d, _, _flags) = start(&targets);
    let p = d.http_port();
    expect(p, "/standalone", "", 200, "health: up");
    expect(p, "/db2", "", 200, "health: up");

    t.standalone.stop_signal();
    let frozen_at = Instant::now();
    let mut worst = 0.0f64;
    let mut stale = 0.0f64;
    while frozen_at.elapsed() < Duration::from_secs(4) {
        for (name, snap) in snapshots(p) {
            let (_, age) = snap.expect("every target has a snapshot");
            if name == "standalone" {
                stale = stale.max(age);
            } else {
                worst = worst.max(age);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Rounds every 300 ms with a 250 ms deadline: a healthy target's snapshot is never
    // much older than one interval, however long the frozen one hangs.
    eprintln!("FIGURE frozen target: others' worst snapshot age {worst:.3}s over 4s");
    assert!(
        worst < 1.0,
        "a frozen server delayed the others: worst age {worst}s"
    );
    wait_until(Duration::from_secs(10), "standalone down", || {
        let (code, body) = http_get(p, "/standalone");
        code == 503 && body.starts_with("health: down - timeout")
    });
    expect(p, "/db1/primary", "", 200, "primary: up");
    assert!(stale >= 0.0);
    t.standalone.cont();
    expect(p, "/standalone", "", 200, "health: up");
}

#[test]
fn sighup_adds_and_removes_targets_without_resetting_the_others() {
    let t = three();
    let (d, _, _flags) = start(&(target("db1", &t.primary, "") + &target("db2", &t.replica, "")));
    let p = d.http_port();
    expect(p, "/db1/primary", "", 200, "primary: up");
    let seq_of = |name: &str| {
        snapshots(p)
            .into_iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| s)
            .map(|(seq, _)| seq)
    };
    wait_until(Duration::from_secs(10), "db1 counts rounds", || {
        seq_of("db1").unwrap_or(0) >= 5
    });
    let before = seq_of("db1").unwrap();
    let metrics = || http_get(p, "/metrics").1;
    let db2_series = |m: &str| m.lines().filter(|l| l.contains("target=\"db2\"")).count();
    assert!(db2_series(&metrics()) > 0, "{}", metrics());
    // Each target counts its own rounds (the probe-error alert's denominator).
    let rounds = |m: &str, name: &str| -> Option<u64> {
        let prefix = format!("mysqlchk_target_rounds_total{{target=\"{name}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
    };
    let rounds_before = rounds(&metrics(), "db1").unwrap_or(0);
    assert!(rounds_before > 0, "{}", metrics());

    // Remove db2, add standalone, change db1's lag bound (its prober keeps running).
    let text = std::fs::read_to_string(d.config_path()).unwrap();
    let head = &text[..text.find("[[target]]").unwrap()];
    d.write_config(&format!(
        "{head}{}{}",
        target("db1", &t.primary, "max_replication_lag = \"7s\""),
        target("standalone", &t.standalone, "")
    ));
    d.signal(libc::SIGHUP);
    d.wait_for_log("reloaded", Duration::from_secs(10));
    expect(p, "/standalone", "", 200, "health: up");
    assert_eq!(
        http_get(p, "/db2/replica"),
        (400, "unknown target db2\n".into())
    );
    let names: Vec<_> = snapshots(p).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["db1", "standalone"]);
    // The removed target's series go with it (also its per-target counters: the
    // transitions after the next fleet-wide pass, the probe errors with its prober).
    wait_until(
        Duration::from_secs(3),
        "db2's series gone from /metrics",
        || db2_series(&metrics()) == 0,
    );
    let m = metrics();
    assert!(
        m.contains("mysqlchk_probe_errors_total{target=\"standalone\",reason=\"refused\"} 0"),
        "{m}"
    );
    assert!(rounds(&m, "standalone").is_some(), "{m}");
    // db1's prober kept running: its round count did not restart from zero.
    assert!(rounds(&m, "db1").unwrap_or(0) >= rounds_before, "{m}");
    let after = seq_of("db1").unwrap();
    eprintln!("FIGURE db1 seq {before} before the reload, {after} after");
    assert!(
        after > before,
        "db1 was reset by the reload: seq {before} -> {after}"
    );
    let st = status(p);
    assert_eq!(
        st["targets"][0]["config"]["check"]["max_replication_lag"],
        "7s"
    );
}

/// `haproxy-config --fleet`: a real HAProxy checks three servers through the one fleet
/// checker (send-state for HTTP, `<name>/<role>` for the agent) and marks them UP and
/// DOWN by role.
#[test]
fn haproxy_marks_servers_up_and_down_through_the_one_checker() {
    let t = three();
    let targets = target("db1", &t.primary, "")
        + &target("db2", &t.replica, "")
        + &target("standalone", &t.standalone, "");
    let (d, agent_port, flags) = start(&targets);
    expect(
        d.http_port(),
        "/db2/replica",
        "",
        200,
        "replica: up - lag 0s",
    );

    let state_file = flags.path().join("server-state");
    std::fs::write(&state_file, "1\n").unwrap();
    let (write, read) = (free_port(), free_port());
    let servers = format!(
        "db1=127.0.0.1:{},db2=127.0.0.1:{},standalone=127.0.0.1:{}",
        t.primary.port(),
        t.replica.port(),
        t.standalone.port()
    );
    let out = std::process::Command::new(common::daemon::BIN)
        .args([
            "haproxy-config",
            "--servers",
            &servers,
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--write-port",
            &write.to_string(),
            "--read-port",
            &read.to_string(),
        ])
        .args(["--fleet", &format!("127.0.0.1:{}", d.http_port())])
        .args(["--fleet-agent", &format!("127.0.0.1:{agent_port}")])
        .arg("--state-file")
        .arg(&state_file)
        .arg("--stats-socket")
        .arg(flags.path().join("gen-admin.sock"))
        .output()
        .unwrap();
    let cfg = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cfg}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hap = common::Haproxy::start(&cfg);

    let deadline = Duration::from_secs(30);
    let took = hap.wait_for_checked_state("mysql-read", "db2", "UP", deadline);
    eprintln!("FIGURE haproxy: replica UP through the fleet checker after {took:?}");
    hap.wait_for_checked_state("mysql-read", "db1", "DOWN", deadline);
    hap.wait_for_checked_state("mysql-read", "standalone", "DOWN", deadline);
    hap.wait_for_checked_state("mysql-write", "db1", "UP", deadline);
    hap.wait_for_checked_state("mysql-write", "standalone", "UP", deadline);
    hap.wait_for_checked_state("mysql-write", "db2", "DOWN", deadline);

    // The replica stops replicating: DOWN on the read side, the others unchanged.
    t.replica.sql("STOP SLAVE");
    // Whichever check sees it first: the HTTP check (DOWN) or the agent (DOWN (agent)).
    let took = wait_until(deadline, "mysql-read/db2 DOWN", || {
        hap.server_state("mysql-read", "db2").starts_with("DOWN")
    });
    eprintln!("FIGURE haproxy: stopped replica DOWN after {took:?}");
    assert_eq!(hap.server_state("mysql-write", "db1"), "UP");
    t.replica.sql("START SLAVE");
    hap.wait_for_state("mysql-read", "db2", "UP", deadline);
}

/// Minimum serving (README, "Verdict policy"): two real replicas of one real primary,
/// both lagging past the bound behind one fleet checker with `min_serving = 1`: the
/// least lagged stays up, saying why, the other goes down; the transitions counter
/// names the target.
#[test]
fn lag_alone_never_takes_the_last_replica_of_a_primary_down() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let primary = MariaDb::start();
    primary.create_checker_user("chk", PASSWORD);
    primary.sql("CREATE DATABASE lagtest; CREATE TABLE lagtest.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    let near = MariaDb::start_replica_of(&primary);
    let far = MariaDb::start_replica_of(&primary);
    near.sync_with(&primary);
    far.sync_with(&primary);
    // Delayed replication: both past the 3 s bound while the primary is written to,
    // one clearly more than the other.
    near.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=6; START SLAVE");
    far.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=12; START SLAVE");
    near.wait_replication_running(Duration::from_secs(10));
    far.wait_replication_running(Duration::from_secs(10));
    let targets = target("near", &near, "") + &target("far", &far, "");
    let (d, _agent, _flags) = start(&format!(
        "max_replication_lag = \"3s\"\nmin_serving = 1\n{targets}"
    ));
    let p = d.http_port();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let port = primary.port();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("mariadb")
                    .args([
                        "--protocol=TCP",
                        "-h127.0.0.1",
                        &format!("-P{port}"),
                        "-uroot",
                        "-e",
                        "INSERT INTO lagtest.t (v) VALUES (1)",
                    ])
                    .output();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut last = (String::new(), String::new());
    wait_until(Duration::from_secs(60), "both past the bound", || {
        let (fs, fb) = http_get(p, "/far/replica");
        let (ns, nb) = http_get(p, "/near/replica");
        last = (nb.clone(), fb.clone());
        fs == 503
            && fb.contains("exceeds 3s")
            && ns == 200
            && nb.starts_with("replica: up - kept serving: least lagged (lag ")
            && nb.contains("exceeds 3s)")
    });
    eprintln!("kept: {} / out: {}", last.0.trim(), last.1.trim());
    // Held: exactly one serves, whichever moment HAProxy asks.
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(3) {
        let (ns, nb) = http_get(p, "/near/replica");
        let (fs, fb) = http_get(p, "/far/replica");
        assert_eq!((ns, fs), (200, 503), "{nb} / {fb}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = http_get(p, "/metrics").1;
    // Counted per target (the replica may also have blinked while replication was
    // being set up, so at least once).
    let downs: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "mysqlchk_transitions_total{target=\"far\",role=\"replica\",to=\"down\"} ",
            )
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(downs >= 1, "{metrics}");
    assert!(
        !metrics.contains("mysqlchk_transitions_total{role="),
        "{metrics}"
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}
