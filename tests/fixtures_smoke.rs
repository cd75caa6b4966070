//! Keeps the test fixtures honest: each fixture does what it says.

mod common;

use common::{free_port, http_get, http_raw, process_alive, wait_until, Daemon, Haproxy, MariaDb};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn mariadb_starts_and_runs_sql() {
    let t = Instant::now();
    let db = MariaDb::start();
    eprintln!("MariaDb::start took {:?}", t.elapsed());
    assert_eq!(db.sql("SELECT 1"), "1\n");
    assert!(db.socket_path().exists());
    assert!(db.datadir().join("mysql").is_dir());
    assert!(process_alive(db.pid()));
    assert_eq!(db.sql("SELECT @@port").trim(), db.port().to_string());
    assert_eq!(
        db.sql("SELECT @@server_id").trim(),
        db.server_id().to_string()
    );
    assert_eq!(db.sql("SELECT @@log_bin").trim(), "1");
    let err = db.try_sql("SELECT * FROM no_such_db.t").unwrap_err();
    assert!(err.contains("no_such_db"), "{err}");
}

#[test]
fn checker_user_can_read_replication_status() {
    let db = MariaDb::shared();
    db.create_checker_user("smoke_checker", "s3cret'pw");
    assert_eq!(
        db.sql_as("smoke_checker", "s3cret'pw", "SELECT 1").unwrap(),
        "1\n"
    );
    db.sql_as("smoke_checker", "s3cret'pw", "SHOW SLAVE STATUS")
        .unwrap();
    db.sql_as("smoke_checker", "s3cret'pw", "SHOW MASTER STATUS")
        .unwrap();
    assert!(db.sql_as("smoke_checker", "wrong", "SELECT 1").is_err());
    assert_eq!(MariaDb::shared().port(), db.port());
}

#[test]
fn mariadb_stop_and_continue() {
    let db = MariaDb::start();
    db.stop_signal();
    let t = Instant::now();
    let r = db.try_sql_timeout("SELECT 1", Duration::from_secs(2));
    assert!(r.is_err(), "a stopped server answered: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(process_alive(db.pid()));
    db.cont();
    assert_eq!(db.sql("SELECT 1"), "1\n");
}

#[test]
fn mariadb_kill_and_restart() {
    let mut db = MariaDb::start();
    db.sql("CREATE DATABASE smoke; CREATE TABLE smoke.t (id INT PRIMARY KEY); INSERT INTO smoke.t VALUES (42);");
    let (port, old_pid) = (db.port(), db.pid());
    db.kill();
    assert!(!process_alive(old_pid), "killed mariadbd still alive");
    assert!(db
        .try_sql_timeout("SELECT 1", Duration::from_secs(5))
        .is_err());
    let t = Instant::now();
    db.restart();
    eprintln!("MariaDb::restart after SIGKILL took {:?}", t.elapsed());
    assert_eq!(db.port(), port);
    assert_ne!(db.pid(), old_pid);
    assert_eq!(db.sql("SELECT id FROM smoke.t"), "42\n");
    let t = Instant::now();
    db.shutdown();
    eprintln!("MariaDb::shutdown took {:?}", t.elapsed());
    db.restart();
    assert_eq!(db.sql("SELECT id FROM smoke.t"), "42\n");
}

#[test]
fn mariadb_spawned_on_a_finished_thread_survives() {
    // PR_SET_PDEATHSIG is per thread: make sure the fixture is not killed when
    // the thread that started it ends.
    let db = thread::spawn(MariaDb::start).join().unwrap();
    thread::sleep(Duration::from_millis(200));
    assert!(process_alive(db.pid()));
    assert_eq!(db.sql("SELECT 1"), "1\n");
}

#[test]
fn replica_follows_primary() {
    let t = Instant::now();
    let primary = MariaDb::start();
    let replica = MariaDb::start_replica_of(&primary);
    eprintln!("primary + replica took {:?}", t.elapsed());
    assert_ne!(primary.server_id(), replica.server_id());
    assert_eq!(replica.sql("SELECT @@read_only").trim(), "1");
    primary.sql("CREATE DATABASE repl_smoke; CREATE TABLE repl_smoke.t (v VARCHAR(20)); INSERT INTO repl_smoke.t VALUES ('hello');");
    replica.sync_with(&primary);
    assert_eq!(replica.sql("SELECT v FROM repl_smoke.t"), "hello\n");
    let status = replica.slave_status().expect("replica has slave status");
    assert_eq!(status["Slave_IO_Running"], "Yes");
    assert_eq!(status["Seconds_Behind_Master"], "0");
    assert!(primary.slave_status().is_none());

    // The replica reconnects (MASTER_CONNECT_RETRY=1) after a primary crash.
    let mut primary = primary;
    primary.kill();
    wait_until(Duration::from_secs(30), "the IO thread to notice", || {
        replica.slave_status().unwrap()["Slave_IO_Running"] != "Yes"
    });
    primary.restart();
    let t = Instant::now();
    replica.wait_replication_running(Duration::from_secs(30));
    eprintln!(
        "replica reconnected {:?} after the primary restarted",
        t.elapsed()
    );
    primary.sql("INSERT INTO repl_smoke.t VALUES ('again')");
    replica.sync_with(&primary);
    assert_eq!(replica.sql("SELECT COUNT(*) FROM repl_smoke.t"), "2\n");
}

#[test]
fn haproxy_sees_mariadb_up_and_a_dead_port_down() {
    let db = MariaDb::shared();
    db.sql("CREATE USER IF NOT EXISTS 'haproxy_check'@'%'");
    let listen = free_port();
    let body = format!(
        "listen mysql\n\
         \x20   bind 127.0.0.1:{listen}\n\
         \x20   option mysql-check user haproxy_check post-41\n\
         \x20   server db 127.0.0.1:{} check inter 100ms rise 1 fall 1\n\
         \x20   server dead 127.0.0.1:{} check inter 100ms rise 1 fall 1\n",
        db.port(),
        free_port()
    );
    let t = Instant::now();
    let hap = Haproxy::start(&body);
    eprintln!("Haproxy::start took {:?}", t.elapsed());
    let up = hap.wait_for_checked_state("mysql", "db", "UP", Duration::from_secs(10));
    eprintln!("db UP after {up:?}");
    hap.wait_for_state("mysql", "dead", "DOWN", Duration::from_secs(10));
    assert_eq!(
        hap.stat_field("mysql", "db", "check_status").as_deref(),
        Some("L7OK")
    );
    // Traffic goes through.
    let mut cmd = std::process::Command::new("mariadb");
    cmd.args([
        "--no-defaults",
        "--protocol=TCP",
        "-h127.0.0.1",
        "-uroot",
        "--batch",
        "--skip-column-names",
    ])
    .arg(format!("-P{listen}"))
    .args(["-e", "SELECT @@port"]);
    let out = common::process::run_with_timeout(cmd, Duration::from_secs(10)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        db.port().to_string()
    );
    // Admin commands work.
    hap.admin("disable server mysql/db");
    hap.wait_for_state("mysql", "db", "MAINT", Duration::from_secs(5));
    hap.admin("enable server mysql/db");
    hap.wait_for_state("mysql", "db", "UP", Duration::from_secs(10));
    assert!(hap.log().contains("mysql/db"), "{}", hap.log());
}

#[test]
fn haproxy_csv_split_handles_quotes() {
    assert_eq!(
        common::haproxy::split_csv(r#"a,"b, c",,"say ""hi""",e"#),
        vec!["a", "b, c", "", r#"say "hi""#, "e"]
    );
}

#[test]
#[should_panic(expected = "invalid HAProxy config")]
fn haproxy_rejects_invalid_config() {
    Haproxy::start("listen broken\n    bind 127.0.0.1:1\n    no-such-keyword\n");
}

#[test]
fn http_helpers_parse_responses() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"GET /status HTTP/1.0\r\n"));
            s.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nDOWN\n",
            )
            .unwrap();
        }
    });
    assert_eq!(http_get(port, "/status"), (503, "DOWN\n".to_string()));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let raw = http_raw(
        addr,
        b"GET /status HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    );
    let resp = common::parse_http_response(&raw).unwrap();
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    server.join().unwrap();
}

#[test]
fn http_raw_returns_on_timeout_when_the_peer_stays_silent() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let t = Instant::now();
    let raw = http_raw(addr, b"GET / HTTP/1.0\r\n", Duration::from_millis(300));
    assert!(raw.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(3));
    drop(listener);
}

#[test]
fn process_helpers() {
    let me = std::process::id();
    assert!(process_alive(me));
    assert!(common::open_fds(me) >= 3);
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    wait_until(Duration::from_secs(5), "`true` to become a zombie", || {
        common::process::proc_state(pid) == Some('Z')
    });
    assert!(!process_alive(pid), "a zombie counts as dead");
    child.wait().unwrap();
    assert!(!process_alive(pid));
}

#[test]
fn free_ports_are_distinct() {
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ports.len());
    // Below the ephemeral range (32768 and up here). Other processes may take
    // a port at any time, so binding them again is not asserted.
    assert!(ports.iter().all(|&p| p >= 10_000), "{ports:?}");
    let p = free_port();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).unwrap();
    assert_eq!(listener.local_addr().unwrap().port(), p);
}

#[test]
fn daemon_config_ports_are_found() {
    let cfg = "http = [\"127.0.0.1:18081\", \"[::1]:18082\"]\n\
               [agent]\nlisten = \"127.0.0.1:18083\"\n\
               [mysql]\naddress = \"127.0.0.1:3306\"\n";
    assert_eq!(common::daemon::listen_ports(cfg), vec![18081, 18082, 18083]);
    assert!(common::daemon::listen_ports("not toml [").is_empty());
    assert!(std::path::Path::new(common::daemon::BIN).is_absolute());
}

/// A stand-in daemon: listens on the first port of its config, answers "fake".
const FAKE_DAEMON: &str = r#"
import re, socket, sys
port = int(re.search(r"127\.0\.0\.1:(\d+)", open(sys.argv[1]).read()).group(1))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(16)
print("fake daemon listening on", port, file=sys.stderr, flush=True)
while True:
    c, _ = s.accept(); c.recv(1024)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfake\n"); c.close()
"#;

#[test]
fn daemon_fixture_runs_a_program() {
    let exe = Path::new("/usr/bin/python3");
    let args = ["-c", FAKE_DAEMON, "{config}"];
    let env: [(&str, &str); 0] = [];

    let port = free_port();
    let cfg = format!("http = [\"127.0.0.1:{port}\"]\n");
    let mut d = Daemon::start_program(exe, &args, &cfg, &env);
    assert_eq!(d.http_port(), port);
    assert_eq!(http_get(port, "/"), (200, "fake\n".to_string()));
    d.wait_for_log("fake daemon listening", Duration::from_secs(5));
    assert!(d.config_path().exists());
    let pid = d.pid();
    assert_eq!(
        d.terminate(Duration::from_secs(5)).signal(),
        Some(libc::SIGTERM)
    );
    assert!(!process_alive(pid));

    // Drop terminates and reaps.
    let port = free_port();
    let d = Daemon::start_program(exe, &args, &format!("http = \"127.0.0.1:{port}\"\n"), &env);
    let pid = d.pid();
    drop(d);
    assert!(!process_alive(pid));

    // A program that fails at startup.
    let mut d = Daemon::spawn_program(
        Path::new("/bin/sh"),
        &["-c", "echo bad config >&2; exit 2"],
        "",
        &[],
    );
    let status = d.wait_exit(Duration::from_secs(10)).expect("exited");
    assert_eq!(status.code(), Some(2));
    assert_eq!(d.log(), "bad config\n");
}
