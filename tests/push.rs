//! Pushing verdicts to HAProxy's runtime API (`[[haproxy]]`), end to end: a real MariaDB,
//! a real HAProxy 2.6 and `mysqlchk serve`. HAProxy's own checks point at a responder
//! that always answers 200, so only the push can explain a DOWN (and with `inter 20s
//! rise 3` the checks cannot undo a push within a test).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, http_get, wait_until, Daemon, Haproxy, MariaDb};

const PASSWORD: &str = "push-Pw-123";

/// A responder that answers every request `200 OK`, for HAProxy's own checks.
fn always_200() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

/// `listen` sections for `backends` (name → server lines), checks at the 200 responder.
fn haproxy_body(ok: u16, backends: &[(&str, &[(&str, u16)])]) -> String {
    let mut out = String::new();
    for (name, servers) in backends {
        out += &format!(
            "listen {name}\n    bind 127.0.0.1:{}\n    option httpchk\n",
            free_port()
        );
        for (srv, port) in *servers {
            out += &format!(
                "    server {srv} 127.0.0.1:{port} check port {ok} inter 20s rise 3 fall 3\n"
            );
        }
    }
    out
}

fn daemon(db: &MariaDb, maint: &Path, haproxy_tables: &str) -> Daemon {
    db.create_checker_user("mysqlchk", PASSWORD);
    let http = free_port();
    Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\nconnect_timeout = \"250ms\"\n\
             [check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
             maintenance_file = \"{}\"\n{haproxy_tables}",
            db.port(),
            maint.display()
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    )
}

fn table(socket: &Path, backends: &str, extra: &str) -> String {
    format!(
        "[[haproxy]]\nsocket = \"{}\"\nbackends = {{ {backends} }}\npush_up_after = \"1s\"\n{extra}",
        socket.display()
    )
}

fn metric(d: &Daemon, series: &str) -> f64 {
    let (_, body) = http_get(d.http_port(), "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn status(d: &Daemon) -> serde_json::Value {
    let (_, body) = http_get(d.http_port(), "/status");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn maintenance(d: &Daemon, on: bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mysqlchk"));
    cmd.arg("maintenance").arg(if on { "on" } else { "off" });
    if on {
        cmd.args(["--reason", "push test"]);
    }
    let out = cmd
        .arg("-c")
        .arg(d.config_path())
        .env("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)
        .output()
        .expect("mysqlchk maintenance");
    assert!(out.status.success(), "{out:?}");
}

/// Kill → DOWN at once though checks say 200; restart → UP after push_up_after;
/// maintenance → DRAIN, off → UP (ready); a backend and a server that HAProxy does not
/// have are counted errors, and the daemon carries on.
#[test]
fn down_at_once_up_after_hold_drain_and_ready_and_refusals_counted() {
    let mut db = MariaDb::start();
    let ok = always_200();
    let hap = Haproxy::start(&haproxy_body(
        ok,
        &[
            ("mysql-write", &[("db1", db.port()), ("db2", free_port())]),
            ("mysql-other", &[("dbx", free_port())]),
        ],
    ));
    let flags = tempfile::tempdir().unwrap();
    let maint = flags.path().join("maintenance");
    let d = daemon(
        &db,
        &maint,
        &table(
            &hap.admin_socket(),
            r#""mysql-write" = "health", "mysql-other" = "health", "no-such-backend" = "health""#,
            "server = \"db9\"\n",
        ),
    );
    hap.wait_for_checked_state("mysql-write", "db1", "UP", Duration::from_secs(30));
    wait_until(Duration::from_secs(10), "health up in /status", || {
        status(&d)["roles"]["health"]["state"] == "up"
    });

    let killed = Instant::now();
    db.kill();
    let down = hap.wait_for_state("mysql-write", "db1", "DOWN", Duration::from_secs(10));
    eprintln!("FIGURE: DOWN in HAProxy {down:?} after the kill (interval 250ms)");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    // Only our server: db2 (same backend, other port) is untouched.
    let db2 = hap.server_state("mysql-write", "db2");
    assert!(db2.starts_with("UP"), "{db2}");
    assert!(metric(&d, "mysqlchk_haproxy_push_total{result=\"ok\"}") >= 1.0);
    // The missing backend and the server `db9` HAProxy does not have: counted, logged once.
    wait_until(Duration::from_secs(5), "no_such_server counted", || {
        metric(&d, "mysqlchk_haproxy_push_total{result=\"no_such_server\"}") >= 2.0
    });
    d.wait_for_log("HAProxy has no such server", Duration::from_secs(5));
    d.wait_for_log(
        "HAProxy has no backend no-such-backend",
        Duration::from_secs(5),
    );

    db.restart();
    let restarted = Instant::now();
    let up = hap.wait_for_state("mysql-write", "db1", "UP", Duration::from_secs(15));
    eprintln!("FIGURE: UP in HAProxy {up:?} after MariaDB answered again (push_up_after 1s)");
    assert!(
        restarted.elapsed() >= Duration::from_millis(900),
        "up before the hold: {:?}",
        restarted.elapsed()
    );

    maintenance(&d, true);
    let drain = hap.wait_for_state("mysql-write", "db1", "DRAIN", Duration::from_secs(10));
    eprintln!("FIGURE: DRAIN {drain:?} after `maintenance on`");
    maintenance(&d, false);
    hap.wait_for_state("mysql-write", "db1", "UP", Duration::from_secs(10));

    let st = status(&d);
    let node = &st["haproxy"][0];
    assert_eq!(node["state"], "connected", "{st}");
    assert_eq!(node["pid"], hap.pid(), "{st}");
    // Failures are logged once per episode, not once per push.
    let log = d.log();
    assert_eq!(
        log.matches("HAProxy has no backend no-such-backend")
            .count(),
        1,
        "{log}"
    );
}

/// A new HAProxy process on the same socket (a reload, a restart) forgets runtime state:
/// the desired state is applied again; the same when the socket disappears and comes back.
#[test]
fn reload_and_a_socket_that_comes_back_get_the_desired_state_again() {
    let mut db = MariaDb::start();
    let ok = always_200();
    let mut hap = Haproxy::start(&haproxy_body(ok, &[("mysql-read", &[("db1", db.port())])]));
    let flags = tempfile::tempdir().unwrap();
    let d = daemon(
        &db,
        &flags.path().join("maintenance"),
        &table(&hap.admin_socket(), r#""mysql-read" = "replica""#, ""),
    );
    // A standalone server is not a replica: pushed DOWN though the checks say 200.
    let t = hap.wait_for_state("mysql-read", "db1", "DOWN", Duration::from_secs(10));
    eprintln!("FIGURE: replica role DOWN {t:?} after start");

    // Reload: a new process, which starts the server UP (checks pass); pushed DOWN again.
    let old = hap.pid();
    hap.restart();
    assert_ne!(old, hap.pid());
    let t = hap.wait_for_state("mysql-read", "db1", "DOWN", Duration::from_secs(10));
    eprintln!("FIGURE: DOWN re-applied {t:?} after a new HAProxy process answered");
    wait_until(Duration::from_secs(5), "new pid in /status", || {
        status(&d)["haproxy"][0]["pid"] == hap.pid()
    });

    // The socket disappears: /status says so, the daemon carries on. (The restart
    // above may have been seen as a moment without a socket too: count from here.)
    let unreachable = |log: &str| log.matches("runtime socket unreachable").count();
    let before = unreachable(&d.log());
    hap.stop();
    wait_until(Duration::from_secs(10), "unreachable in /status", || {
        status(&d)["haproxy"][0]["state"] == "unreachable"
    });
    assert_eq!(status(&d)["roles"]["health"]["state"], "up");
    thread::sleep(Duration::from_millis(1500)); // let the reconnect backoff grow
    hap.restart();
    let t = hap.wait_for_state("mysql-read", "db1", "DOWN", Duration::from_secs(15));
    eprintln!("FIGURE: DOWN re-applied {t:?} after the socket came back");
    let log = d.log();
    assert_eq!(unreachable(&log) - before, 1, "{log}");
    db.kill();
}

/// Two HAProxy nodes (one over a UNIX socket, one over TCP) both learn a change; a third
/// that does not answer delays neither.
#[test]
fn two_haproxy_nodes_and_one_unreachable() {
    let mut db = MariaDb::start();
    let ok = always_200();
    let body = haproxy_body(ok, &[("mysql-write", &[("db1", db.port())])]);
    let a = Haproxy::start(&body);
    let tcp = free_port();
    let b = Haproxy::start(&format!(
        "global\n    stats socket ipv4@127.0.0.1:{tcp} level admin\n\n{body}"
    ));
    let flags = tempfile::tempdir().unwrap();
    let tables = format!(
        "{}[[haproxy]]\naddress = \"127.0.0.1:{tcp}\"\nbackends = {{ \"mysql-write\" = \"primary\" }}\n\
         [[haproxy]]\nsocket = \"{}\"\nbackends = {{ \"mysql-write\" = \"primary\" }}\n",
        table(&a.admin_socket(), r#""mysql-write" = "primary""#, ""),
        flags.path().join("nobody-here.sock").display()
    );
    let d = daemon(&db, &flags.path().join("maintenance"), &tables);
    a.wait_for_checked_state("mysql-write", "db1", "UP", Duration::from_secs(30));
    b.wait_for_checked_state("mysql-write", "db1", "UP", Duration::from_secs(30));
    wait_until(Duration::from_secs(10), "primary up", || {
        status(&d)["roles"]["primary"]["state"] == "up"
    });
    let t0 = Instant::now();
    db.sql("SET GLOBAL read_only=ON");
    let ta = a.wait_for_state("mysql-write", "db1", "DOWN", Duration::from_secs(10));
    let tb = b.wait_for_state("mysql-write", "db1", "DOWN", Duration::from_secs(10));
    eprintln!(
        "FIGURE: read_only=ON → DOWN on node A {ta:?}, node B {tb:?} later, both by {:?} (interval 250ms; a third node unreachable)",
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    let st = status(&d);
    assert_eq!(st["haproxy"][2]["state"], "unreachable", "{st}");
    assert_eq!(st["haproxy"][1]["state"], "connected", "{st}");
    db.sql("SET GLOBAL read_only=OFF");
    a.wait_for_state("mysql-write", "db1", "UP", Duration::from_secs(10));
    b.wait_for_state("mysql-write", "db1", "UP", Duration::from_secs(10));
    db.kill();
}

/// A fleet checker pushes each target's verdicts to its own server lines: matched by
/// address and port, else by the server's name; a line of a server it does not watch is
/// left alone. Three targets (a writable server, a `read_only` one, a dead port), one
/// backend routing `primary`, one `health`.
#[test]
fn a_fleet_checker_pushes_each_targets_verdicts_to_its_own_lines() {
    let a = MariaDb::start();
    let mut b = MariaDb::start();
    b.sql("SET GLOBAL read_only=ON");
    let dead = free_port();
    let unwatched = free_port();
    let ok = always_200();
    // `db2` in mysql-ro has no address of any target (127.0.0.9): it is db2's by name.
    let hap = Haproxy::start(&format!(
        "listen mysql-write\n    bind 127.0.0.1:{}\n    option httpchk\n\
         \x20   server srv-a 127.0.0.1:{pa} check port {ok} inter 20s rise 3 fall 3\n\
         \x20   server srv-b 127.0.0.1:{pb} check port {ok} inter 20s rise 3 fall 3\n\
         \x20   server other 127.0.0.1:{unwatched} check port {ok} inter 20s rise 3 fall 3\n\
         listen mysql-ro\n    bind 127.0.0.1:{}\n    option httpchk\n\
         \x20   server db2 127.0.0.9:9 check addr 127.0.0.1 port {ok} inter 20s rise 3 fall 3\n\
         \x20   server srv-c 127.0.0.1:{dead} check port {ok} inter 20s rise 3 fall 3\n",
        free_port(),
        free_port(),
        pa = a.port(),
        pb = b.port(),
    ));
    for db in [&a, &b] {
        db.create_checker_user("mysqlchk", PASSWORD);
    }
    let http = free_port();
    let d = Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nconnect_timeout = \"250ms\"\n\
             [check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
             {}\
             [[target]]\nname = \"db1\"\nport = {}\n\
             [[target]]\nname = \"db2\"\nport = {}\n\
             [[target]]\nname = \"db3\"\nport = {dead}\n",
            table(
                &hap.admin_socket(),
                r#""mysql-write" = "primary", "mysql-ro" = "health""#,
                ""
            ),
            a.port(),
            b.port(),
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    // db2 is read_only: not a primary. db3 answers nothing: down in every role.
    wait_down(&hap, "mysql-write", "srv-b");
    wait_down(&hap, "mysql-ro", "srv-c");
    d.wait_for_log(
        "push: mysql-write/srv-b health down",
        Duration::from_secs(5),
    );
    // db1 is a primary and db2 is healthy: their lines stay UP; `other` is nobody's.
    // Once every target has a round, any push due is made at the latest on the
    // pusher's next heartbeat (every 250 ms here): watch two of them.
    wait_until(Duration::from_secs(10), "a round of every target", || {
        status(&d)["targets"]
            .as_array()
            .is_some_and(|ts| ts.len() == 3 && ts.iter().all(|t| t["snapshot"]["seq"].is_u64()))
    });
    thread::sleep(Duration::from_millis(500));
    for (be, srv) in [
        ("mysql-write", "srv-a"),
        ("mysql-write", "other"),
        ("mysql-ro", "db2"),
    ] {
        let s = hap.server_state(be, srv);
        assert!(s.starts_with("UP"), "{be}/{srv}: {s}\n{}", d.log());
    }

    // A change on one target moves only its own lines.
    let t0 = Instant::now();
    a.sql("SET GLOBAL read_only=ON");
    wait_down(&hap, "mysql-write", "srv-a");
    eprintln!(
        "FIGURE: fleet checker: read_only=ON on db1 → srv-a DOWN {:?} (interval 250ms)",
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    b.sql("SET GLOBAL read_only=OFF");
    let t1 = Instant::now();
    hap.wait_for_state("mysql-write", "srv-b", "UP", Duration::from_secs(10));
    assert!(
        t1.elapsed() >= Duration::from_millis(900),
        "up before push_up_after: {:?}",
        t1.elapsed()
    );
    // db2 dies: its line matched by name goes DOWN.
    b.kill();
    wait_down(&hap, "mysql-ro", "db2");
    assert!(hap.server_state("mysql-write", "other").starts_with("UP"));
    assert_eq!(
        metric(&d, "mysqlchk_haproxy_push_total{result=\"no_such_server\"}"),
        0.0,
        "{}",
        d.log()
    );
}

/// Wait until `be/srv` is DOWN (HAProxy's own passing checks may already be counting it
/// back up, `DOWN 1/3`: only the push can have taken it down).
fn wait_down(hap: &Haproxy, be: &str, srv: &str) {
    wait_until(Duration::from_secs(10), &format!("{be}/{srv} DOWN"), || {
        hap.server_state(be, srv).starts_with("DOWN")
    });
}

/// The fleet checker's whole config on an HAProxy node can be one socket: the targets
/// discovered from HAProxy's `show servers state`, the verdicts pushed back through it.
#[test]
fn targets_discovered_from_haproxy_are_pushed_back_to_it() {
    let a = MariaDb::start();
    let b = MariaDb::start();
    b.sql("SET GLOBAL read_only=ON");
    let ok = always_200();
    let hap = Haproxy::start(&haproxy_body(
        ok,
        &[("mysql-write", &[("db1", a.port()), ("db2", b.port())])],
    ));
    for db in [&a, &b] {
        db.create_checker_user("mysqlchk", PASSWORD);
    }
    let sock = hap.admin_socket();
    let d = Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{}\"\n[mysql]\nconnect_timeout = \"250ms\"\n\
             [check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
             [[discover]]\nfrom = \"haproxy\"\nsocket = \"{}\"\nevery = \"500ms\"\n{}",
            free_port(),
            sock.display(),
            table(&sock, r#""mysql-write" = "primary""#, ""),
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    wait_down(&hap, "mysql-write", "db2");
    d.wait_for_log("push: mysql-write/db2 health down", Duration::from_secs(5));
    let st = status(&d);
    assert_eq!(st["haproxy"][0]["state"], "connected", "{st}");
    assert!(hap.server_state("mysql-write", "db1").starts_with("UP"));
    b.sql("SET GLOBAL read_only=OFF");
    hap.wait_for_state("mysql-write", "db2", "UP", Duration::from_secs(10));
}
