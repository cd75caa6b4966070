//! Roles on a real MariaDB primary/replica pair: `/primary` and `/replica` on each,
//! stopped SQL and IO threads, real lag from delayed replication (with a writer
//! running) against the default bound and `?lag=` overrides, a writable replica
//! refused by `/primary`, a named (multi-source) connection, and a missing privilege.
//! Lag hysteresis on real lag: out above the bound, back only at half of it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, http_get, wait_until, Daemon, MariaDb};

const PASSWORD: &str = "repl-chk-pw";

fn daemon(db: &MariaDb, user: &str, extra: &str) -> Daemon {
    let http = free_port();
    Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\nuser = \"{user}\"\n\
             [check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"3s\"\n{extra}\n",
            db.port()
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    )
}

/// Wait until `path` answers exactly `want` (status and body line).
fn expect(port: u16, path: &str, status: u16, body: &str) -> Duration {
    let want = (status, format!("{body}\n"));
    let deadline = Duration::from_secs(15);
    let start = std::time::Instant::now();
    loop {
        let last = http_get(port, path);
        if last == want {
            return start.elapsed();
        }
        if start.elapsed() > deadline {
            panic!("{path}: wanted {want:?}, last {last:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn primary_and_replica_roles_and_thread_failures() {
    let primary = MariaDb::start();
    primary.create_checker_user("chk", PASSWORD);
    let replica = MariaDb::start_replica_of(&primary);
    replica.sync_with(&primary);
    let dp = daemon(&primary, "chk", "");
    let dr = daemon(&replica, "chk", "");
    let (p, r) = (dp.http_port(), dr.http_port());

    expect(p, "/primary", 200, "primary: up");
    expect(
        p,
        "/replica",
        503,
        "replica: down - not replicating (no replication channel)",
    );
    expect(p, "/read-only", 200, "read-only: up - writable");
    expect(r, "/primary", 503, "primary: down - read_only is ON");
    expect(r, "/replica", 200, "replica: up - lag 0s");
    expect(r, "/read-only", 200, "read-only: up - lag 0s");
    expect(r, "/", 200, "health: up");

    // SQL thread stopped: lag is NULL and the thread is down.
    replica.sql("STOP SLAVE SQL_THREAD");
    let took = expect(
        r,
        "/replica",
        503,
        "replica: down - replication SQL thread not running (channel '': No)",
    );
    eprintln!("SQL thread stop seen after {took:?}");
    expect(
        r,
        "/read-only",
        503,
        "read-only: down - replication SQL thread not running (channel '': No)",
    );
    expect(r, "/", 200, "health: up");
    replica.sql("START SLAVE SQL_THREAD");
    expect(r, "/replica", 200, "replica: up - lag 0s");

    // IO thread stopped.
    replica.sql("STOP SLAVE IO_THREAD");
    expect(
        r,
        "/replica",
        503,
        "replica: down - replication IO thread not running (channel '': No)",
    );
    replica.sql("START SLAVE IO_THREAD");
    expect(r, "/replica", 200, "replica: up - lag 0s");

    // The primary dies: the replica's IO thread reconnects (`Connecting`).
    let mut primary = primary;
    primary.kill();
    let took = expect(
        r,
        "/replica",
        503,
        "replica: down - replication IO thread not running (channel '': Connecting)",
    );
    eprintln!("primary death seen on the replica after {took:?}");
    primary.restart();
    expect(r, "/replica", 200, "replica: up - lag 0s");

    // A writable replica with a running channel is no primary (split-brain guard).
    replica.sql("SET GLOBAL read_only=OFF");
    expect(
        r,
        "/primary",
        503,
        "primary: down - writable but replicating (channel '')",
    );
    let d2 = daemon(&replica, "chk", "primary_allows_replication = true");
    expect(d2.http_port(), "/primary", 200, "primary: up");
    // Promotion: stop replication and reset it.
    replica.sql("STOP SLAVE; RESET SLAVE ALL");
    expect(r, "/primary", 200, "primary: up");
    expect(
        r,
        "/replica",
        503,
        "replica: down - not replicating (no replication channel)",
    );
}

#[test]
fn real_lag_against_bounds() {
    let primary = MariaDb::start();
    primary.create_checker_user("chk", PASSWORD);
    let replica = MariaDb::start_replica_of(&primary);
    primary.sql("CREATE DATABASE lagtest; CREATE TABLE lagtest.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    replica.sync_with(&primary);
    // Delayed replication: events are applied 8 s after they were written.
    replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=8; START SLAVE");
    replica.wait_replication_running(Duration::from_secs(10));
    // The bound is 6 s, so it comes back at 3 s (the default lag_recover: half).
    let d = daemon(&replica, "chk", "max_replication_lag = \"6s\"");
    let r = d.http_port();

    // Delayed replication only shows lag while the primary is written to.
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
    let mut lag_line = String::new();
    wait_until(Duration::from_secs(30), "lag over the 6 s bound", || {
        let (status, body) = http_get(r, "/replica");
        lag_line = body;
        status == 503 && lag_line.contains("exceeds 6s")
    });
    eprintln!("over the bound: {}", lag_line.trim());
    assert!(
        lag_line.starts_with("replica: down - replication lag "),
        "{lag_line}"
    );
    // Per request, a looser bound passes; a tighter one fails.
    let (status, body) = http_get(r, "/replica?lag=60");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("replica: up - lag "), "{body}");
    let (status, _) = http_get(r, "/replica?max_lag=1m");
    assert_eq!(status, 200);
    let (status, body) = http_get(r, "/read-only?lag=1");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("exceeds 1s"), "{body}");
    // /status reports the lag per channel.
    let status = http_get(r, "/status").1;
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        doc["snapshot"]["facts"]["replication_channels"][0]["lag_seconds"]
            .as_u64()
            .unwrap()
            > 3
    );

    // Lag back under the bound but above half of it (a 5 s delay, still written
    // to): the replica stays out, saying it is recovering and when it comes back.
    replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=5; START SLAVE");
    wait_until(Duration::from_secs(30), "lag under the bound", || {
        let body = http_get(r, "/replica").1;
        lag_line = body;
        lag_line.starts_with("replica: down - recovering: lag ")
    });
    eprintln!("under the bound: {}", lag_line.trim());
    let hold = std::time::Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while hold.elapsed() < Duration::from_secs(3) {
        let (status, body) = http_get(r, "/replica");
        assert_eq!(status, 503, "back before lag_recover: {body}");
        assert!(
            body.starts_with("replica: down - recovering: lag ") && body.contains("back at 3s"),
            "{body}"
        );
        seen.insert(body.trim().to_string());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("held out for 3 s: {seen:?}");

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    replica.sql("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY=0; START SLAVE");
    let took = expect(r, "/replica", 200, "replica: up - lag 0s");
    eprintln!("caught up {took:?} after the delay was removed");
    let log = d.log();
    let changes: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("replica ").nth(1))
        .filter_map(|w| w.split([',', ':']).next())
        .collect();
    eprintln!("replica verdict changes: {changes:?}");
    // Out once, back once: no flapping on the way. (The first round may still see
    // replication settling after the fixture's restart: down, then up.)
    let mut rest = changes.get(1..).unwrap_or_default();
    if changes.first() == Some(&"starting->down") && rest.first() == Some(&"down->up") {
        rest = &rest[1..];
    }
    assert_eq!(rest, ["up->down", "down->up"], "{changes:?}");
    let metrics = http_get(r, "/metrics").1;
    assert!(
        metrics.contains("mysqlchk_transitions_total{role=\"replica\",to=\"down\"} "),
        "{metrics}"
    );
}

#[test]
fn named_multi_source_connection_is_a_replica() {
    let primary = MariaDb::start();
    let replica = MariaDb::start_with_args(&["--read-only=ON"]);
    replica.create_checker_user("chk", PASSWORD);
    primary.sql(&format!(
        "CREATE USER IF NOT EXISTS '{u}'@'%' IDENTIFIED BY '{p}'; GRANT REPLICATION SLAVE ON *.* TO '{u}'@'%';",
        u = common::mariadb::REPL_USER,
        p = common::mariadb::REPL_PASSWORD
    ));
    replica.sql(&format!(
        "CHANGE MASTER 'east' TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='{}', \
         MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE 'east';",
        primary.port(),
        common::mariadb::REPL_USER,
        common::mariadb::REPL_PASSWORD
    ));
    // Plain SHOW SLAVE STATUS does not list it: only ALL does.
    assert!(replica.query_rows("SHOW SLAVE STATUS").is_empty());
    let d = daemon(&replica, "chk", "");
    let r = d.http_port();
    expect(r, "/replica", 200, "replica: up - lag 0s");
    let doc: serde_json::Value = serde_json::from_str(&http_get(r, "/status").1).unwrap();
    assert_eq!(
        doc["snapshot"]["facts"]["replication_channels"][0]["name"],
        "east"
    );

    // Selecting channels: a daemon that only cares about 'west' sees none.
    let d2 = daemon(&replica, "chk", "replication_channels = [\"west\"]");
    expect(
        d2.http_port(),
        "/replica",
        503,
        "replica: down - not replicating (no replication channel)",
    );
    replica.sql("STOP SLAVE 'east' SQL_THREAD");
    expect(
        r,
        "/replica",
        503,
        "replica: down - replication SQL thread not running (channel 'east': No)",
    );
}

#[test]
fn missing_privilege_is_a_reason_not_a_crash() {
    let primary = MariaDb::start();
    // USAGE only: no SLAVE MONITOR.
    primary.sql(&format!(
        "CREATE USER 'bare'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT USAGE ON *.* TO 'bare'@'%';"
    ));
    let d = daemon(&primary, "bare", "");
    let p = d.http_port();
    // Judged on the core facts.
    expect(p, "/primary", 200, "primary: up");
    expect(p, "/", 200, "health: up");
    expect(
        p,
        "/replica",
        503,
        "replica: down - replication status unavailable: missing privilege (error 1227)",
    );
    let metrics = http_get(p, "/metrics").1;
    assert!(
        metrics.contains("mysqlchk_role_up{role=\"primary\"} 1"),
        "{metrics}"
    );
    // Every round's failed step is counted, though no round fails as a whole.
    let privilege = || {
        let text = http_get(p, "/metrics").1;
        text.lines()
            .find_map(|l| l.strip_prefix("mysqlchk_probe_errors_total{reason=\"privilege\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no privilege counter in {text}"))
    };
    let first = privilege();
    wait_until(
        Duration::from_secs(15),
        "the privilege counter to grow",
        || privilege() >= first.max(1) + 2,
    );
    // Granted later: global privileges reach only new sessions, so the checker's
    // connection is replaced (at most every 10 s while one is missing) and the grant is
    // seen without a restart.
    primary.sql("GRANT SLAVE MONITOR ON *.* TO 'bare'@'%'");
    wait_until(Duration::from_secs(30), "the grant seen", || {
        http_get(p, "/replica").1.contains("not replicating")
    });
}
