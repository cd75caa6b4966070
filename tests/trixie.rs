//! Debian 13 ("trixie"): MariaDB 11.8 and HAProxy 3.0 LTS, from a chroot
//! (`tests/common/trixie.rs`, built once by `scripts/trixie-chroot.sh`), against
//! the host-built `mysqlchk`.
//!
//! - roles on an 11.8 primary/replica pair (started once for the binary):
//!   `/`, `/primary`, `/replica`, a stopped SQL thread, `read_only`;
//! - TLS as 11.8 ships it (on, with an auto-generated certificate): `preferred`
//!   negotiates it, `verify_ca` with a CA that did not sign it fails;
//! - `mysqlchk haproxy-config` output passes HAProxy 3.0's `haproxy -dW -c`;
//! - a real HAProxy 3.0 with that config: servers UP, the agent's weight
//!   applied, maintenance drains, a killed primary goes DOWN;
//! - the runtime-API push into HAProxy 3.0: a kill pushed DOWN and back UP.
//!
//! When the chroot cannot be built the tests fail (see the fixture);
//! `MYSQLCHK_SKIP_TRIXIE=1` skips them for local runs.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::BIN;
use common::process;
use common::trixie::{self, TrixieDb};
use common::{free_port, http_get, wait_until, Daemon, Haproxy};

const PASSWORD: &str = "trixie-Chk-pw3";
/// The generator's `--max-lag`, mysqlchk's hard bound, and the agent's soft bound.
const MAX_LAG_S: u64 = 10;
const SOFT_LAG_S: u64 = 1;

/// A `mysqlchk serve` for `db` with HTTP and agent ports and a maintenance
/// file in its own temp dir; `mysql_extra` goes into `[mysql]`.
fn daemon(db: &TrixieDb, user: &str, mysql_extra: &str) -> Daemon {
    let (http, agent) = (free_port(), free_port());
    let dir = process::fixture_tempdir("trixie-flags");
    let flag = dir.keep().join("maintenance");
    process::at_exit(process::AtExit::RemoveDir(flag.parent().unwrap().into()));
    Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\nagent = \"127.0.0.1:{agent}\"\n\
             [mysql]\nport = {port}\nuser = \"{user}\"\n{mysql_extra}\n\
             [check]\ninterval = \"300ms\"\ntimeout = \"300ms\"\nstale_after = \"3s\"\n\
             max_replication_lag = \"{MAX_LAG_S}s\"\nmaintenance_file = \"{flag}\"\n\
             [agent]\nsoft_lag = \"{SOFT_LAG_S}s\"\n",
            port = db.port(),
            flag = flag.display(),
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    )
}

/// Waits until `path` answers exactly `status` and `body` (one line).
fn expect(port: u16, path: &str, status: u16, body: &str) -> Duration {
    let want = (status, format!("{body}\n"));
    let deadline = Duration::from_secs(20);
    let start = Instant::now();
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

/// Puts a server setting back when a test ends, even by a panic (the pair is
/// shared with the other tests).
struct Restore<'a>(&'a TrixieDb, &'static str);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_sql(self.1);
    }
}

#[test]
fn roles_on_mariadb_11_8() {
    if trixie::skip() {
        return;
    }
    let pair = trixie::shared_pair();
    let (primary, replica) = (&pair.primary, &pair.replica);
    primary.create_checker_user("chk118", PASSWORD);
    replica.sync_with(primary);
    let dp = daemon(primary, "chk118", "");
    let dr = daemon(replica, "chk118", "");
    let (p, r) = (dp.http_port(), dr.http_port());

    expect(p, "/", 200, "health: up");
    expect(p, "/primary", 200, "primary: up");
    expect(
        p,
        "/replica",
        503,
        "replica: down - not replicating (no replication channel)",
    );
    expect(r, "/", 200, "health: up");
    expect(r, "/replica", 200, "replica: up - lag 0s");
    expect(r, "/primary", 503, "primary: down - read_only is ON");

    {
        let _restore = Restore(replica, "START REPLICA SQL_THREAD");
        replica.sql("STOP REPLICA SQL_THREAD");
        let took = expect(
            r,
            "/replica",
            503,
            "replica: down - replication SQL thread not running (channel '': No)",
        );
        eprintln!("11.8: stopped SQL thread seen after {took:?}");
        expect(r, "/", 200, "health: up");
    }
    replica.wait_replication_running(Duration::from_secs(20));
    expect(r, "/replica", 200, "replica: up - lag 0s");

    {
        let _restore = Restore(primary, "SET GLOBAL read_only=OFF");
        primary.sql("SET GLOBAL read_only=ON");
        let took = expect(p, "/primary", 503, "primary: down - read_only is ON");
        eprintln!("11.8: read_only=ON seen after {took:?}");
    }
    expect(p, "/primary", 200, "primary: up");
}

/// A self-signed CA of our own (it signed nothing the server uses).
fn unrelated_ca(dir: &Path) -> std::path::PathBuf {
    let (key, ca) = (dir.join("other-ca.key"), dir.join("other-ca.pem"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
    ])
    .args(["-subj", "/CN=mysqlchk test CA that signed nothing"])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&ca);
    let out = process::run_with_timeout(cmd, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca
}

/// The first verdict that is not `starting`, then one more interval.
fn settle(d: &Daemon) -> (u16, String) {
    wait_until(Duration::from_secs(15), "a first verdict", || {
        !http_get(d.http_port(), "/").1.contains("starting")
    });
    std::thread::sleep(Duration::from_millis(500));
    http_get(d.http_port(), "/")
}

#[test]
fn tls_is_on_by_default_in_11_8() {
    if trixie::skip() {
        return;
    }
    let pair = trixie::shared_pair();
    let primary = &pair.primary;
    // 11.8 enables TLS with a certificate it generates itself: no ssl_* options.
    assert_eq!(primary.sql("SELECT @@have_ssl"), "YES");
    primary.sql(&format!(
        "CREATE OR REPLACE USER 'tls118'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL; \
         GRANT USAGE ON *.* TO 'tls118'@'%';"
    ));

    // preferred (the default) negotiates TLS: this account refuses clear text.
    let d = daemon(primary, "tls118", "");
    assert_eq!(settle(&d), (200, "health: up\n".into()));
    let d = daemon(primary, "tls118", "ssl_mode = \"disabled\"");
    assert_eq!(
        settle(&d),
        (
            503,
            "health: down - access denied for the checker account (error 1045)\n".into()
        )
    );

    // verify_ca cannot pass against the auto-generated certificate without its
    // CA: a TLS failure, never a fallback to clear text.
    let dir = tempfile::tempdir().unwrap();
    let ca = unrelated_ca(dir.path());
    let d = daemon(
        primary,
        "tls118",
        &format!("ssl_mode = \"verify_ca\"\nssl_ca = \"{}\"", ca.display()),
    );
    assert_eq!(settle(&d), (503, "health: down - TLS failure\n".into()));
    let status: serde_json::Value =
        serde_json::from_str(&http_get(d.http_port(), "/status").1).unwrap();
    assert_eq!(status["snapshot"]["error"]["reason"], "tls");
    assert!(!d.log().contains(PASSWORD));
}

/// `mysqlchk haproxy-config` with `args`, `--state-file` at `state` (a path as
/// HAProxy sees it); panics unless it succeeds.
fn generate(args: &[&str], state: &Path) -> String {
    let mut cmd = Command::new(BIN);
    // The generated admin socket goes beside the state file: the chroot has no
    // /run/haproxy.
    let socket = state.with_file_name("generated-admin.sock");
    cmd.arg("haproxy-config")
        .args(args)
        .arg("--state-file")
        .arg(state)
        .arg("--stats-socket")
        .arg(socket);
    let out = process::run_with_timeout(cmd, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("mysqlchk haproxy-config: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mysqlchk haproxy-config {args:?} failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn generated_config_passes_haproxy_3_0_check() {
    if trixie::skip() {
        return;
    }
    let version = trixie::haproxy_version();
    assert!(version.starts_with("HAProxy version 3.0."), "{version}");
    let dir = trixie::chroot_tempdir("generated");
    // A state file holding the version line, as the README asks for before
    // the first start (HAProxy 3.0's `-c` only prints a NOTICE for a missing one).
    let state = dir.path().join("server-state");
    fs::write(&state, "1\n").unwrap();
    let servers = "db1=127.0.0.1:3306@9200/9201,db2=127.0.0.1:3307@9210/9211,db3=10.0.0.4:3306";
    let cases: &[(&str, &[&str])] = &[
        (
            "replication with agent",
            &["--servers", servers, "--agent-port", "9201"],
        ),
        (
            "replication with agent, read fallback, stats",
            &[
                "--servers",
                servers,
                "--agent-port",
                "9201",
                "--read-fallback",
                "--stats",
                "127.0.0.1:8404",
            ],
        ),
        ("galera", &["--servers", servers, "--topology", "galera"]),
        (
            "group replication",
            &["--servers", servers, "--topology", "group-replication"],
        ),
    ];
    for (name, args) in cases {
        let cfg = generate(args, &trixie::inner(&state));
        let path = dir.path().join("haproxy.cfg");
        fs::write(&path, &cfg).unwrap();
        if let Err(e) = trixie::haproxy_check(&path) {
            panic!("{version}: `haproxy -dW -c` rejects the generated config ({name}): {e}\n{cfg}");
        }
    }
    eprintln!(
        "{version}: -dW -c accepts {} generated configs",
        cases.len()
    );
}

/// `SELECT @@port` through HAProxy's `front` port, as an application would.
fn port_through(front: u16) -> Result<String, String> {
    common::mariadb::client(
        "HAProxy",
        front,
        "app118",
        "app-pw",
        "SELECT @@port",
        &["--skip-column-names"],
        Duration::from_secs(10),
    )
    .map(|s| s.trim().to_string())
}

/// Until `f` holds for the `show stat` field `field` of `px/sv`; returns it.
fn wait_field(
    hap: &Haproxy,
    px: &str,
    sv: &str,
    field: &str,
    deadline: Duration,
    f: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    let start = Instant::now();
    loop {
        last = hap.stat_field(px, sv, field).unwrap_or(last);
        if f(&last) {
            return last;
        }
        if start.elapsed() >= deadline {
            panic!(
                "{px}/{sv} {field} still {last:?} after {deadline:?} (status {:?}, agent {:?})\n{}",
                hap.stat_field(px, sv, "status"),
                hap.stat_field(px, sv, "last_agt"),
                hap.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn haproxy_3_0_with_the_generated_config() {
    if trixie::skip() {
        return;
    }
    let mut pair = trixie::shared_pair();
    pair.primary.create_checker_user("chk118", PASSWORD);
    pair.primary.sql(
        "CREATE OR REPLACE USER 'app118'@'%' IDENTIFIED BY 'app-pw'; \
         CREATE DATABASE IF NOT EXISTS trixie; \
         CREATE TABLE IF NOT EXISTS trixie.ticks (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(3))",
    );
    pair.replica.sync_with(&pair.primary);
    let d1 = daemon(&pair.primary, "chk118", "");
    let d2 = daemon(&pair.replica, "chk118", "");
    let (write, read) = (free_port(), free_port());
    let state_dir = trixie::chroot_tempdir("state");
    let state = state_dir.path().join("server-state");
    fs::write(&state, "1\n").unwrap();
    let server = |name: &str, db: &TrixieDb, d: &Daemon| {
        format!(
            "{name}=127.0.0.1:{}@{}/{}",
            db.port(),
            d.http_port(),
            d.ports()[1]
        )
    };
    let servers = format!(
        "{},{}",
        server("db1", &pair.primary, &d1),
        server("db2", &pair.replica, &d2)
    );
    let cfg = generate(
        &[
            "--servers",
            &servers,
            "--agent-port",
            "9201",
            "--bind",
            "127.0.0.1",
            "--write-port",
            &write.to_string(),
            "--read-port",
            &read.to_string(),
            "--max-lag",
            &format!("{MAX_LAG_S}s"),
        ],
        &trixie::inner(&state),
    );
    let hap = trixie::start_haproxy(&cfg);
    let deadline = Duration::from_secs(30);
    let up = hap.wait_for_checked_state("mysql-write", "db1", "UP", deadline);
    hap.wait_for_checked_state("mysql-read", "db2", "UP", deadline);
    hap.wait_for_checked_state("mysql-write", "db2", "DOWN", deadline);
    hap.wait_for_checked_state("mysql-read", "db1", "DOWN", deadline);
    eprintln!("HAProxy 3.0: writer db1 UP after {up:?}");
    assert_eq!(port_through(write), Ok(pair.primary.port().to_string()));
    assert_eq!(port_through(read), Ok(pair.replica.port().to_string()));

    // Agent weight: delayed replication under a steady writer lags the replica
    // between the soft (1 s) and hard (10 s) bounds, so the agent answers
    // `up ready N%` with N < 100 and HAProxy 3.0 must apply it.
    wait_field(&hap, "mysql-read", "db2", "agent_status", deadline, |s| {
        s.contains("L7OK")
    });
    let full = hap
        .stat_field("mysql-read", "db2", "weight")
        .unwrap_or_default();
    assert_eq!(full, "100", "the generated weight before any lag");
    {
        let _restore = Restore(
            &pair.replica,
            "STOP REPLICA; CHANGE MASTER TO MASTER_DELAY=0; START REPLICA",
        );
        pair.replica
            .sql("STOP REPLICA; CHANGE MASTER TO MASTER_DELAY=5; START REPLICA");
        let mut writer = Command::new("mariadb");
        writer
            .args(["--no-defaults", "--protocol=TCP", "-h127.0.0.1", "-uroot"])
            .arg(format!("-P{}", pair.primary.port()))
            .arg("-e")
            // One client runs the whole loop (the delimiter keeps it from
            // splitting the compound statement at its semicolons).
            .arg(
                "DELIMITER //\nBEGIN NOT ATOMIC FOR i IN 1..600 DO \
                 INSERT INTO trixie.ticks (at) VALUES (NOW(3)); DO SLEEP(0.1); \
                 END FOR; END //",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut writer = process::spawn_guarded(writer).expect("spawn the writer");
        let weight = wait_field(
            &hap,
            "mysql-read",
            "db2",
            "weight",
            Duration::from_secs(40),
            |w| matches!(w.parse::<u32>(), Ok(n) if n > 0 && n < 100),
        );
        let agent = common::http_raw(
            std::net::SocketAddr::from(([127, 0, 0, 1], d2.ports()[1])),
            format!("replica max_lag={MAX_LAG_S}s\n").as_bytes(),
            Duration::from_secs(5),
        );
        eprintln!(
            "HAProxy 3.0: lagging replica weight {weight} (the agent now says {:?})",
            String::from_utf8_lossy(&agent).trim()
        );
        assert_eq!(hap.server_state("mysql-read", "db2"), "UP");
        process::kill_and_reap(&mut writer);
    }
    pair.replica
        .wait_replication_running(Duration::from_secs(20));
    wait_field(
        &hap,
        "mysql-read",
        "db2",
        "weight",
        Duration::from_secs(40),
        |w| w == "100",
    );

    // Maintenance drains (NOLB from the 404, DRAIN from the agent).
    let maintenance = |on: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["maintenance", on, "-c"])
            .arg(d2.config_path())
            .env_remove("MYSQLCHK_CONFIG");
        let out = process::run_with_timeout(cmd, Duration::from_secs(15)).unwrap();
        assert!(
            out.status.success(),
            "mysqlchk maintenance {on}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let t = Instant::now();
    maintenance("on");
    wait_until(deadline, "db2 drained (NOLB/DRAIN)", || {
        matches!(
            hap.server_state("mysql-read", "db2").as_str(),
            "NOLB" | "DRAIN"
        )
    });
    eprintln!(
        "HAProxy 3.0: maintenance on -> {} after {:?}",
        hap.server_state("mysql-read", "db2"),
        t.elapsed()
    );
    maintenance("off");
    hap.wait_for_state("mysql-read", "db2", "UP", deadline);

    // A killed primary: its mysqlchk answers 503 and HAProxy marks it DOWN.
    let t = Instant::now();
    pair.primary.kill();
    let down = hap.wait_for_state("mysql-write", "db1", "DOWN", deadline);
    eprintln!("HAProxy 3.0: killed primary DOWN after {down:?}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    pair.primary.restart();
    pair.primary.clean_up_at_exit();
    hap.wait_for_state("mysql-write", "db1", "UP", deadline);
    pair.replica
        .wait_replication_running(Duration::from_secs(30));
}

/// A responder that answers every request `200 OK`: HAProxy 3.0's own checks pass
/// whatever happens, so only mysqlchk's push can explain a DOWN.
fn always_200() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

/// The runtime-API push against HAProxy 3.0 (README "Pushing state to HAProxy"): a
/// killed MariaDB is pushed DOWN though the checks pass, and UP again once it answers.
#[test]
fn push_to_haproxy_3_0() {
    if trixie::skip() {
        return;
    }
    let mut db = common::MariaDb::start();
    db.create_checker_user("pushchk", PASSWORD);
    let ok = always_200();
    let hap = trixie::start_haproxy(&format!(
        "listen mysql-write\n    bind 127.0.0.1:{}\n    option httpchk\n    \
         server db1 127.0.0.1:{} check port {ok} inter 20s rise 3 fall 3\n",
        free_port(),
        db.port()
    ));
    let http = free_port();
    let d = Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\nuser = \"pushchk\"\n\
             connect_timeout = \"250ms\"\n\
             [check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
             [[haproxy]]\nsocket = \"{}\"\nbackends = {{ \"mysql-write\" = \"primary\" }}\n\
             push_up_after = \"1s\"\n",
            db.port(),
            hap.admin_socket().display()
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    let deadline = Duration::from_secs(20);
    hap.wait_for_checked_state("mysql-write", "db1", "UP", Duration::from_secs(30));
    wait_until(deadline, "connected to HAProxy 3.0", || {
        let (_, body) = http_get(d.http_port(), "/status");
        serde_json::from_str::<serde_json::Value>(&body)
            .is_ok_and(|s| s["haproxy"][0]["state"] == "connected")
    });
    let killed = Instant::now();
    db.kill();
    hap.wait_for_state("mysql-write", "db1", "DOWN", deadline);
    eprintln!(
        "{}: DOWN pushed {:?} after the kill (interval 250ms)",
        trixie::haproxy_version(),
        killed.elapsed()
    );
    db.restart();
    let back = Instant::now();
    hap.wait_for_state("mysql-write", "db1", "UP", deadline);
    eprintln!(
        "HAProxy 3.0: UP pushed {:?} after MariaDB answered again (push_up_after 1s)",
        back.elapsed()
    );
    assert!(
        back.elapsed() >= Duration::from_millis(900),
        "UP before the hold"
    );
    let (_, metrics) = http_get(d.http_port(), "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mysqlchk_haproxy_push_total{result=\"ok\"}")),
        "{metrics}"
    );
    db.kill();
}
