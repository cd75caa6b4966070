//! The one-shot commands against a real MariaDB: `check` (monitoring-plugin output
//! and exit codes), `inetd` (stdin/stdout only, never stderr), `validate`,
//! `maintenance`, `haproxy-config` (accepted by `haproxy -dW -c`), and `serve`
//! refusing an invalid config with 78. Every captured output is searched for the
//! password.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::daemon::BIN;
use common::{free_port, parse_http_response, Daemon, MariaDb};

const PASSWORD: &str = "Cmd-s3cret-pw";

struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

/// A config file for `db` with the password in a 0600 file; `user` must exist.
fn setup(db: &MariaDb, user: &str, extra: &str) -> Setup {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("mysqlchk.toml");
    std::fs::write(
        &config,
        format!(
            r#"[listen]
http = "127.0.0.1:{http}"

[mysql]
port = {port}
user = "{user}"
password_file = "{pw}"
connect_timeout = "2s"

[check]
interval = "500ms"
timeout = "500ms"
maintenance_file = "{maint}"
{extra}"#,
            http = free_port(),
            port = db.port(),
            pw = pw.display(),
            maint = dir.path().join("maintenance").display(),
        ),
    )
    .unwrap();
    Setup { dir, config }
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("MYSQLCHK_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn mysqlchk");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        let _ = input.write_all(bytes);
    }
    drop(input);
    let started = Instant::now();
    let out = child.wait_with_output().expect("wait mysqlchk");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{args:?} took {:?}",
        started.elapsed()
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains(PASSWORD),
        "password printed by {args:?}: {all}"
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn user_on(db: &MariaDb, name: &str) -> String {
    db.create_checker_user(name, PASSWORD);
    name.to_string()
}

#[test]
fn check_reports_in_monitoring_plugin_style() {
    let db = MariaDb::start();
    let user = user_on(&db, "chk_check");
    let s = setup(&db, &user, "");
    let cfg = s.config.to_str().unwrap();

    let out = run(&["check", "-c", cfg], &[], None);
    let line = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{line}");
    assert!(
        line.starts_with("MYSQLCHK OK - health: up | time="),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);

    let out = run(&["check", "-c", cfg, "primary"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["check", "-c", cfg, "replica"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).starts_with(
        "MYSQLCHK CRITICAL - replica: down - not replicating (no replication channel)"
    ));

    db.sql("SET GLOBAL read_only=ON");
    let out = run(&["check", "-c", cfg, "/master"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).contains("primary: down - read_only is ON"));
    db.sql("SET GLOBAL read_only=OFF");

    // Maintenance: WARNING, exit 1.
    let out = run(
        &["maintenance", "on", "--reason", "disk swap", "-c", cfg],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("maintenance: on (disk swap, since "));
    let out = run(&["maintenance", "status", "-c", cfg], &[], None);
    assert!(text(&out.stdout).starts_with("maintenance: on (disk swap, since "));
    let out = run(&["check", "-c", cfg], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("MYSQLCHK WARNING - maintenance: disk swap"));
    let out = run(&["maintenance", "off", "-c", cfg], &[], None);
    assert!(text(&out.stdout).starts_with("maintenance: off"));
    let out = run(&["maintenance", "status", "-c", cfg], &[], None);
    assert_eq!(text(&out.stdout), "maintenance: off\n");

    // The checker's own account refused: UNKNOWN (3), not CRITICAL.
    let out = run(
        &["check", "-c", cfg],
        &[("MYSQLCHK_MYSQL_PASSWORD", "wrong")],
        None,
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("access denied for the checker account (error 1045)"));
    db.sql(&format!("ALTER USER '{user}'@'%' ACCOUNT LOCK"));
    let out = run(&["check", "-c", cfg], &[], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("checker account locked (error 4151)"));
    db.sql(&format!("ALTER USER '{user}'@'%' ACCOUNT UNLOCK"));

    // Bad role or lag: UNKNOWN.
    let out = run(&["check", "-c", cfg, "leader"], &[], None);
    assert_eq!(out.status.code(), Some(3));
    let out = run(
        &["check", "-c", cfg, "replica", "--max-lag", "soon"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(3));

    // The server gone: CRITICAL.
    let mut db = db;
    db.kill();
    let out = run(&["check", "-c", cfg], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stdout).split(" | ").next(),
        Some("MYSQLCHK CRITICAL - health: down - connection refused")
    );
    drop(s.dir);
}

#[test]
fn inetd_answers_on_stdout_and_never_writes_stderr() {
    let db = MariaDb::shared();
    let user = user_on(db, "chk_inetd");
    let s = setup(db, &user, "");
    let cfg = s.config.to_str().unwrap();

    let out = run(
        &["inetd", "-c", cfg],
        &[],
        Some(b"OPTIONS / HTTP/1.0\r\n\r\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 11\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\nhealth: up\n"
    );

    let out = run(
        &["inetd", "-c", cfg],
        &[],
        Some(b"GET /replica HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    let r = parse_http_response(&out.stdout).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        "replica: down - not replicating (no replication channel)\n"
    );
    assert!(out.stderr.is_empty());

    // Nothing sent at all: the health answer, as the classic script gave.
    let out = run(&["inetd", "-c", cfg], &[], Some(b""));
    assert_eq!(parse_http_response(&out.stdout).unwrap().status, 200);

    // Garbage, a bad method, an invalid config, a dead server: still only stdout.
    let cases: Vec<(Vec<&str>, &[u8], u16)> = vec![
        (
            vec!["inetd", "-c", cfg],
            b"\x16\x03\x01garbage\r\n\r\n",
            400,
        ),
        (vec!["inetd", "-c", cfg], b"POST / HTTP/1.0\r\n\r\n", 405),
        (vec!["inetd", "-c", cfg], b"GET /nope HTTP/1.0\r\n\r\n", 400),
        (
            vec!["inetd", "-c", "/nonexistent.toml"],
            b"GET / HTTP/1.0\r\n\r\n",
            503,
        ),
    ];
    for (args, input, want) in cases {
        let out = run(&args, &[], Some(input));
        assert_eq!(out.status.code(), Some(0));
        assert!(
            out.stderr.is_empty(),
            "{args:?}: stderr {}",
            text(&out.stderr)
        );
        assert_eq!(
            parse_http_response(&out.stdout).map(|r| r.status),
            Some(want),
            "{args:?} {input:?}: {}",
            text(&out.stdout)
        );
    }
    let out = run(
        &["inetd", "-c", cfg],
        &[("MYSQLCHK_MYSQL_PORT", "1")],
        Some(b"GET / HTTP/1.0\r\n\r\n"),
    );
    let r = parse_http_response(&out.stdout).unwrap();
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "health: down - connection refused\n")
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn validate_prints_effective_settings_and_every_error() {
    let db = MariaDb::shared();
    let s = setup(db, "nobody_needed", "");
    let cfg = s.config.to_str().unwrap();
    let out = run(
        &["validate", "-c", cfg],
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("interval = \"500ms\""), "{shown}");
    assert!(shown.contains("password = \"***\""), "{shown}");

    let bad = s.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[listen]\nhttp = \"0.0.0.0:9200\"\n[check]\ninterval = \"soon\"\ntimeout = \"5s\"\nbogus = 1\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let out = run(
        &["validate", "-c", bad],
        &[("MYSQLCHK_MYSQL_PORT", "99999")],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    for needle in [
        "listen.allow is required",
        "check.interval = \"soon\"",
        "unknown key check.bogus",
        "MYSQLCHK_MYSQL_PORT=\"99999\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(err.lines().count() >= 4);

    // serve refuses to start on it: EX_CONFIG.
    let out = run(&["serve", "-c", bad], &[], None);
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("check.interval"));

    // A missing explicit file is an error; a group-readable password file a warning.
    let out = run(&["validate", "-c", "/nonexistent/mysqlchk.toml"], &[], None);
    assert_eq!(out.status.code(), Some(3));
    use std::os::unix::fs::PermissionsExt;
    let pw = s.dir.path().join("password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["validate", "-c", cfg], &[], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("readable by group or others"));
}

#[test]
fn secrets_from_a_defaults_file_and_never_in_argv() {
    let db = MariaDb::shared();
    let user = user_on(db, "chk_mycnf");
    let dir = tempfile::tempdir().unwrap();
    let cnf = dir.path().join("my.cnf");
    std::fs::write(
        &cnf,
        format!("[client]\nuser = {user}\npassword = \"{PASSWORD}\"\n"),
    )
    .unwrap();
    let http = free_port();
    let toml = format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\ndefaults_file = \"{}\"\n[check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"2s\"\n",
        db.port(),
        cnf.display()
    );
    let d = Daemon::start(&toml, &[]);
    common::wait_until(Duration::from_secs(10), "healthy via defaults_file", || {
        common::http_get(d.http_port(), "/").0 == 200
    });
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid())).unwrap();
    assert!(!text(&cmdline).contains(PASSWORD));
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    assert!(!text(&environ).contains(PASSWORD));
    let status = common::http_get(d.http_port(), "/status").1;
    assert!(!status.contains(PASSWORD));
    assert!(!d.log().contains(PASSWORD));
}

#[test]
fn haproxy_config_is_accepted_by_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("server-state");
    std::fs::write(&state, "1\n").unwrap();
    for topology in ["replication", "galera", "group-replication"] {
        for extra in [
            &[][..],
            &[
                "--agent-port",
                "9201",
                "--read-fallback",
                "--stats",
                "127.0.0.1:8404",
                "--push",
            ][..],
        ] {
            let mut args = vec![
                "haproxy-config",
                "--servers",
                "db1=10.0.0.2:3306,db2=10.0.0.3:3306,db3=[::1]:3306",
                "--topology",
                topology,
                "--state-file",
                state.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            let out = run(&args, &[], None);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            // `--push` appends the mysqlchk table as comments: still a valid haproxy.cfg.
            assert_eq!(
                text(&out.stdout).contains("\n# [[haproxy]]\n"),
                extra.contains(&"--push")
            );
            let cfg = dir.path().join(format!("{topology}.cfg"));
            std::fs::write(&cfg, &out.stdout).unwrap();
            let check = Command::new("haproxy")
                .args(["-dW", "-c", "-f"])
                .arg(&cfg)
                .output()
                .expect("haproxy installed");
            assert!(
                check.status.success(),
                "haproxy -dW -c rejected {topology} {extra:?}:\n{}{}\n{}",
                text(&check.stdout),
                text(&check.stderr),
                text(&out.stdout)
            );
        }
    }
    let out = run(&["haproxy-config", "--servers", "db1"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--servers"));
}

/// Durations too large to add up: `validate` reports them (exit 3, one line each, no
/// panic), and a daemon SIGHUPped with them keeps its configuration and answers.
#[test]
fn absurd_durations_are_rejected_by_validate_and_by_reload() {
    let db = MariaDb::shared();
    let user = user_on(db, "chk_absurd");
    let dir = tempfile::tempdir().unwrap();
    let huge = "\"18446744073709551615\"";
    let cases = [
        format!("interval = {huge}\ntimeout = {huge}\n"),
        // Adds up without overflow, so it used to validate; the checker's
        // `started + interval` then panicked on its first round.
        format!("interval = \"9223372036854775807\"\nstale_after = {huge}\n"),
        "interval = \"100y\"\n".to_string(),
    ];
    for (i, check) in cases.iter().enumerate() {
        let path = dir.path().join(format!("absurd{i}.toml"));
        std::fs::write(
            &path,
            format!("[listen]\nhttp = \"127.0.0.1:9200\"\n[check]\n{check}"),
        )
        .unwrap();
        let out = run(&["validate", "-c", path.to_str().unwrap()], &[], None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{check}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("check.interval = "), "{err}");
        assert!(
            err.lines().all(|l| l.ends_with("must be at most 1d")),
            "{check}: {err}"
        );
    }

    let http = free_port();
    let good = format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\nuser = \"{user}\"\n\
         [check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"3s\"\n",
        db.port()
    );
    let mut d = Daemon::start(&good, &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)]);
    common::wait_until(Duration::from_secs(10), "healthy", || {
        common::http_get(http, "/").0 == 200
    });
    for check in &cases {
        let before = d.log().matches("keeping the running configuration").count();
        d.write_config(&format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {}\nuser = \"{user}\"\n\
             [check]\n{check}",
            db.port()
        ));
        d.signal(libc::SIGHUP);
        common::wait_until(Duration::from_secs(10), "the reload to be rejected", || {
            assert!(d.try_wait().is_none(), "the daemon died:\n{}", d.log());
            d.log().matches("keeping the running configuration").count() > before
        });
        assert!(d.log().contains("must be at most 1d"), "{}", d.log());
    }
    // Still running the old configuration: fresh rounds, healthy answers.
    common::wait_until(Duration::from_secs(10), "fresh rounds", || {
        common::http_get(http, "/live") == (200, "live: up\n".into())
            && common::http_get(http, "/") == (200, "health: up\n".into())
    });
    assert!(d.try_wait().is_none(), "{}", d.log());
    assert!(!d.log().contains("panicked"), "{}", d.log());
    assert!(!d.log().contains("internal error"), "{}", d.log());
}

/// Command-line errors follow each command's convention, and `--version` works
/// everywhere.
#[test]
fn command_line_errors_per_command_and_version_everywhere() {
    // clap's form: "mysqlchk 1.2.3", "mysqlchk-serve 1.2.3".
    let version = format!(" {}\n", env!("CARGO_PKG_VERSION"));
    for args in [
        &["--version"][..],
        &["serve", "--version"],
        &["check", "--version"],
        &["inetd", "--version"],
        &["validate", "--version"],
        &["maintenance", "on", "--version"],
        &["haproxy-config", "--version"],
    ] {
        let out = run(args, &[], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let said = text(&out.stdout);
        assert!(
            said.starts_with("mysqlchk") && said.ends_with(&version) && said.lines().count() == 1,
            "{args:?}: {said}"
        );
    }

    // check: a monitoring plugin, so UNKNOWN (3) with one line on stdout.
    let out = run(&["check", "--bogus"], &[], None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let line = text(&out.stdout);
    assert!(
        line.starts_with("MYSQLCHK UNKNOWN - usage: unexpected argument '--bogus'"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");

    // inetd: stderr is the client's socket; answer on stdout and exit 0.
    for args in [
        &["inetd", "--bogus"][..],
        &["inetd", "extra"],
        &["-c", "x", "inetd", "-q"],
    ] {
        let out = run(args, &[], Some(b"GET / HTTP/1.0\r\n\r\n"));
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: stderr {}",
            text(&out.stderr)
        );
        let r = parse_http_response(&out.stdout).expect("an HTTP answer");
        assert_eq!(r.status, 503, "{args:?}");
        assert!(r.body.contains("invalid command line"), "{}", r.body);
    }

    // validate: 3, as for any invalid input.
    let out = run(&["validate", "--bogus"], &[], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("--bogus"));

    // The others keep clap's 2.
    let out = run(&["serve", "--bogus"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["maintenance", "sideways"], &[], None);
    assert_eq!(out.status.code(), Some(2));
}

/// `maintenance on/off` asks the daemon's `/` (not the admin-only `/status`), so a
/// host outside `admin_allow` still gets a confirmation; while the daemon has no
/// round yet nothing is confirmed.
#[test]
fn maintenance_confirmation_without_admin_access_and_while_starting() {
    let db = MariaDb::shared();
    let user = user_on(db, "chk_confirm");
    let flags = tempfile::tempdir().unwrap();
    let http = free_port();
    let conf = format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\nadmin_allow = [\"10.0.0.0/8\"]\n\
         [mysql]\nport = {}\nuser = \"{user}\"\n\
         [check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"3s\"\n\
         maintenance_file = \"{}\"\n",
        db.port(),
        flags.path().join("maintenance").display()
    );
    let d = Daemon::start(&conf, &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)]);
    common::wait_until(Duration::from_secs(10), "healthy", || {
        common::http_get(http, "/").0 == 200
    });
    assert_eq!(common::http_get(http, "/status").0, 403);
    let cfg = d.config_path();
    let cfg = cfg.to_str().unwrap();
    let out = run(&["maintenance", "on", "-c", cfg], &[], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains(&format!(
            "confirmed by the running daemon on 127.0.0.1:{http}"
        )),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(common::http_get(http, "/").0, 404);
    let out = run(&["maintenance", "off", "-c", cfg], &[], None);
    assert!(
        text(&out.stdout).contains("confirmed by the running daemon"),
        "{}",
        text(&out.stdout)
    );
    drop(d);

    // A server that accepts and never speaks: the daemon stays `starting` for the
    // whole connect timeout, so `off` must not claim a confirmation.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = free_port();
    let conf = format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\n\
         [mysql]\nport = {}\nconnect_timeout = \"10s\"\n\
         [check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"15s\"\n\
         maintenance_file = \"{}\"\n",
        hole.local_addr().unwrap().port(),
        flags.path().join("maintenance").display()
    );
    let d = Daemon::start(&conf, &[]);
    assert_eq!(common::http_get(http, "/").1, "health: starting\n");
    let cfg = d.config_path();
    let out = run(
        &["maintenance", "off", "-c", cfg.to_str().unwrap()],
        &[],
        None,
    );
    let said = text(&out.stdout);
    assert!(!said.contains("confirmed by"), "{said}");
    assert!(said.contains("not confirmed"), "{said}");
    drop(d);
    drop(hole);
}
