//! End to end with a real HAProxy using the classic stanza unchanged (`mode tcp`,
//! `option httpchk`, `check port <mysqlchk>`): the server goes UP, DOWN when
//! MariaDB hangs (SIGSTOP), UP again when it resumes; and a `/primary` check follows
//! a demotion.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, wait_until, Daemon, Haproxy, MariaDb};

const PASSWORD: &str = "e2e-Pw-123";

fn daemon_for(db: &MariaDb) -> Daemon {
    db.create_checker_user("mysqlchk", PASSWORD);
    db.sql("CREATE OR REPLACE USER 'app'@'%' IDENTIFIED BY 'app'");
    let http = free_port();
    Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\n[check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n",
            db.port()
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    )
}

/// `SELECT @@port` through HAProxy, as an application would.
fn port_through(front: u16) -> Result<String, String> {
    let out = Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "-h127.0.0.1",
            &format!("-P{front}"),
            "-uapp",
            "-papp",
            "--connect-timeout=3",
            "-N",
            "-e",
            "SELECT @@port",
        ])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn classic_stanza_goes_up_down_on_hang_and_up_again() {
    let db = MariaDb::start();
    let d = daemon_for(&db);
    let front = free_port();
    let hap = Haproxy::start(&format!(
        "listen mysql\n    bind 127.0.0.1:{front}\n    mode tcp\n    option httpchk\n    \
         server db1 127.0.0.1:{} check port {} inter 500 rise 2 fall 2\n",
        db.port(),
        d.http_port()
    ));
    let up = hap.wait_for_checked_state("mysql", "db1", "UP", Duration::from_secs(15));
    eprintln!("UP after {up:?}");
    assert_eq!(port_through(front), Ok(db.port().to_string()));

    db.stop_signal();
    let down = hap.wait_for_state("mysql", "db1", "DOWN", Duration::from_secs(15));
    // HAProxy needs fall (2) failed checks at inter (0.5 s), after our ~0.5 s.
    eprintln!("DOWN {down:?} after SIGSTOP (inter 500ms x fall 2 + interval + timeout)");
    assert!(down < Duration::from_secs(5), "DOWN took {down:?}");

    db.cont();
    let up = hap.wait_for_state("mysql", "db1", "UP", Duration::from_secs(15));
    eprintln!("UP {up:?} after SIGCONT");
    wait_until(
        Duration::from_secs(10),
        "queries through HAProxy again",
        || port_through(front).is_ok(),
    );
}

#[test]
fn primary_check_follows_read_only() {
    let db = MariaDb::start();
    let d = daemon_for(&db);
    let front = free_port();
    let hap = Haproxy::start(&format!(
        "listen writer\n    bind 127.0.0.1:{front}\n    mode tcp\n    balance first\n    \
         option httpchk\n    http-check send meth GET uri /primary\n    \
         server db1 127.0.0.1:{} check port {} inter 300 rise 2 fall 2 on-marked-down shutdown-sessions\n",
        db.port(),
        d.http_port()
    ));
    hap.wait_for_checked_state("writer", "db1", "UP", Duration::from_secs(15));
    let started = Instant::now();
    db.sql("SET GLOBAL read_only=ON");
    let down = hap.wait_for_state("writer", "db1", "DOWN", Duration::from_secs(10));
    eprintln!("writer DOWN {down:?} after read_only=ON");
    // A layer-7 status failure: HAProxy saw our 503, not a broken connection.
    let check = hap
        .stat_field("writer", "db1", "check_status")
        .unwrap_or_default();
    assert!(check.contains("L7STS"), "{check}");
    assert_eq!(
        hap.stat_field("writer", "db1", "check_code").as_deref(),
        Some("503")
    );
    assert!(port_through(front).is_err());
    db.sql("SET GLOBAL read_only=OFF");
    hap.wait_for_state("writer", "db1", "UP", Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(port_through(front), Ok(db.port().to_string()));
}
