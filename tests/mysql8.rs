//! MySQL 8.0 shapes at the protocol level: the real daemon against an emulated MySQL
//! 8.0.36 server (tests/mysql8/server.py, built on the `mysql-mimic` Python package),
//! whose answers come from a JSON scenario each test rewrites between checks: `SHOW
//! REPLICA STATUS` with the `Replica_*` columns and several channels, Group
//! Replication's `performance_schema` tables, error replies (1227, 1064, 1142) and
//! connect errors (3032, 1045). No MySQL 8 server can be installed on the machines these
//! tests run on; MariaDB-shaped behaviour is tested against real MariaDB elsewhere.
//!
//! The emulator runs in a venv made by scripts/setup-mysql-mimic.sh, which the first
//! test runs itself (a no-op when the venv is current). The decoders are also tested
//! here over the recorded rows of tests/mysql8/rows/.

mod common;

use common::process::{fixture_tempdir, kill_and_reap, run_with_timeout, spawn_guarded};
use common::{free_port, http_get, Daemon};
use mysqlchk::facts::{Channel, Member};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const USER: &str = "mysqlchk";
const PASSWORD: &str = "Pa55-w0rd'\"with quotes";
/// How long a role may take to show a new server state (rounds are 200 ms apart).
const SETTLE: Duration = Duration::from_secs(10);

/// This server's `server_uuid` (the emulator's default) and two other group members:
/// the ids of the recorded `replication_group_members` rows.
const OWN_UUID: &str = "92e1b5a8-b2a6-11ee-a1b7-0242ac120003";
const DB1_UUID: &str = "8f3a21c4-b2a6-11ee-9c39-0242ac120002";
const DB3_UUID: &str = "96b0c7d2-b2a6-11ee-b4e5-0242ac120004";
const GROUP_NAME: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn emulator_dir() -> PathBuf {
    repo().join("tests/mysql8")
}

/// The venv's python, after making sure the venv holds the pinned `mysql-mimic`.
fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = std::env::var_os("MYSQLCHK_MIMIC_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv-mysql-mimic"));
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("scripts/setup-mysql-mimic.sh"))
            .env("MYSQLCHK_MIMIC_VENV", &venv);
        let out = run_with_timeout(cmd, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("scripts/setup-mysql-mimic.sh: {e}"));
        assert!(
            out.status.success(),
            "scripts/setup-mysql-mimic.sh failed ({}): it needs python3 with the venv module \
             (Debian: apt-get install python3-venv) and PyPI.\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        venv.join("bin/python")
    })
}

/// A running emulated MySQL 8.0 server (tests/mysql8/server.py) and its scenario file.
struct Mysql8 {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
}

impl Mysql8 {
    fn start(scenario: &Value) -> Mysql8 {
        let python = venv_python();
        let dir = fixture_tempdir("mysql8");
        let mut emu = Mysql8 {
            child: None,
            dir,
            port: 0,
        };
        emu.write(scenario);
        // free_port() leaves a small race with other processes: try another port then.
        for _ in 0..3 {
            let port = free_port();
            let log = fs::File::create(emu.path("server.log")).expect("server.log");
            let mut cmd = Command::new(python);
            cmd.arg(emulator_dir().join("server.py"))
                .arg(port.to_string())
                .arg(emu.path("scenario.json"))
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("server.log"))
                .stderr(log);
            let child = spawn_guarded(cmd).expect("cannot spawn tests/mysql8/server.py");
            emu.child = Some(child);
            emu.port = port;
            if emu.wait_ready() {
                return emu;
            }
            if !emu.log().contains("address already in use") {
                panic!("the emulated MySQL 8.0 server exited:\n{}", emu.log());
            }
        }
        panic!(
            "no free port for the emulated MySQL 8.0 server:\n{}",
            emu.log()
        );
    }

    /// Waits for the ready file; false if the server exited first.
    fn wait_ready(&mut self) -> bool {
        let deadline = Duration::from_secs(60);
        let start = Instant::now();
        let ready = self.path("scenario.json.ready");
        loop {
            if let Ok(text) = fs::read_to_string(&ready) {
                assert_eq!(text.trim(), self.port.to_string(), "ready file");
                return true;
            }
            let child = self.child.as_mut().expect("emulator child");
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return false;
            }
            if start.elapsed() > deadline {
                panic!(
                    "the emulated MySQL 8.0 server is not ready after {deadline:?}:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the scenario atomically: the server re-reads it on every statement.
    fn write(&self, scenario: &Value) {
        let tmp = self.path("scenario.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(scenario).expect("json")).expect("scenario");
        fs::rename(&tmp, self.path("scenario.json")).expect("scenario rename");
    }

    /// Replaces the scenario, then waits until `daemons` checkers have each run two
    /// core-facts statements after it, so one whole round of each saw only the new state
    /// (the emulator logs a statement before it reads the scenario). For states in which
    /// the checker still gets past its connect.
    fn set(&self, scenario: &Value, daemons: usize) {
        self.write(scenario);
        let offset = self.queries().len();
        let start = Instant::now();
        loop {
            let log = self.queries();
            let mut rounds: BTreeMap<&str, usize> = BTreeMap::new();
            for line in log[offset..].lines() {
                if let Some((conn, sql)) = line.split_once('\t') {
                    if sql.starts_with("SHOW GLOBAL VARIABLES") {
                        *rounds.entry(conn).or_default() += 1;
                    }
                }
            }
            if rounds.values().filter(|&&n| n >= 2).count() >= daemons {
                return;
            }
            if start.elapsed() > SETTLE {
                panic!(
                    "no checker ran two rounds against the new scenario within {SETTLE:?}; \
                     statements since:\n{}",
                    &log[offset..]
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every statement received so far: `<connection id>\t<statement>` lines.
    fn queries(&self) -> String {
        fs::read_to_string(self.path("queries.log")).unwrap_or_default()
    }

    fn statements(&self) -> Vec<String> {
        self.queries()
            .lines()
            .filter_map(|l| l.split_once('\t').map(|(_, s)| s.to_string()))
            .collect()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    /// A `mysqlchk serve` against this server: interval and timeout 200 ms, stale after
    /// 3 s, TLS off, the password in a 0600 file; `check_extra` is added to `[check]`.
    fn daemon(&self, check_extra: &str) -> Daemon {
        self.daemon_timed(
            "interval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"3s\"",
            check_extra,
        )
    }

    /// [`Mysql8::daemon`] with other `interval`, `timeout` and `stale_after` lines.
    fn daemon_timed(&self, timing: &str, check_extra: &str) -> Daemon {
        let password_file = self.path("password");
        fs::write(&password_file, PASSWORD).expect("password file");
        fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600)).expect("chmod");
        let http = free_port();
        let config = format!(
            r#"[listen]
http = ["127.0.0.1:{http}"]

[mysql]
host = "127.0.0.1"
port = {port}
user = "{USER}"
password_file = {password_file:?}
ssl_mode = "disabled"
connect_timeout = "1s"

[check]
{timing}
maintenance_file = {maintenance:?}
{check_extra}
"#,
            port = self.port,
            password_file = password_file.display().to_string(),
            maintenance = self.path("maintenance").display().to_string(),
        );
        Daemon::start(&config, &[])
    }
}

impl Drop for Mysql8 {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
        if thread::panicking() {
            let tail = |text: String| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            };
            eprintln!(
                "--- emulator statements (tail) ---\n{}\n--- emulator log (tail) ---\n{}",
                tail(self.queries()),
                tail(self.log())
            );
        }
    }
}

/// Polls `path` until it answers `status` with the one-line body `line`; panics with
/// the last answer after [`SETTLE`].
fn expect(d: &Daemon, path: &str, status: u16, line: &str) {
    let start = Instant::now();
    loop {
        let (got_status, body) = http_get(d.http_port(), path);
        if got_status == status && body.trim_end() == line {
            return;
        }
        if start.elapsed() > SETTLE {
            panic!("GET {path}: wanted {status} {line:?}, got {got_status} {body:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---- scenarios ----------------------------------------------------------------------

fn scenario(variables: Value, replica_status: Vec<Value>) -> Value {
    json!({
        "users": {USER: PASSWORD},
        "variables": variables,
        "replica_status": replica_status,
    })
}

/// A `read_only` + `super_read_only` replica (a MySQL 8 replica as usually set up).
fn replica(channels: Vec<Value>) -> Value {
    scenario(
        json!({"read_only": "ON", "super_read_only": "ON"}),
        channels,
    )
}

fn writable(channels: Vec<Value>) -> Value {
    scenario(
        json!({"read_only": "OFF", "super_read_only": "OFF"}),
        channels,
    )
}

/// A `SHOW REPLICA STATUS` row: the recorded row `base` with some columns replaced.
fn row(base: &str, name: &str, columns: Value) -> Value {
    let mut r = json!({"$base": base, "Channel_Name": name});
    if let Value::Object(extra) = columns {
        r.as_object_mut().expect("object").extend(extra);
    }
    r
}

fn running(name: &str, lag: u64) -> Value {
    row("running", name, json!({"Seconds_Behind_Source": lag}))
}

fn with(mut scenario: Value, key: &str, value: Value) -> Value {
    scenario[key] = value;
    scenario
}

fn member(id: &str, host: &str, state: &str, role: &str) -> Value {
    json!({
        "$base": "online_secondary",
        "MEMBER_ID": id,
        "MEMBER_HOST": host,
        "MEMBER_STATE": state,
        "MEMBER_ROLE": role,
    })
}

/// A Group Replication member (single-primary mode) seeing `members`; its own
/// `read_only` follows its role, and its replication channels are Group Replication's
/// own two (applier running, recovery stopped), as on a real member.
fn group(own_role: &str, members: Vec<Value>) -> Value {
    let ro = if own_role == "PRIMARY" { "OFF" } else { "ON" };
    json!({
        "users": {USER: PASSWORD},
        "variables": {
            "read_only": ro,
            "super_read_only": ro,
            "group_replication_group_name": GROUP_NAME,
            "group_replication_single_primary_mode": "ON",
        },
        "replica_status": [
            row("gr_applier", "group_replication_applier", json!({})),
            row("gr_recovery", "group_replication_recovery", json!({})),
        ],
        "group_members": members,
    })
}

/// Three members all ONLINE; this one has `own_role`.
fn group_of_three(own_state: &str, own_role: &str) -> Value {
    let other = if own_role == "PRIMARY" {
        "SECONDARY"
    } else {
        "PRIMARY"
    };
    group(
        own_role,
        vec![
            member(DB1_UUID, "db1", "ONLINE", other),
            member(OWN_UUID, "db2", own_state, own_role),
            member(DB3_UUID, "db3", "ONLINE", "SECONDARY"),
        ],
    )
}

// ---- async replication ----------------------------------------------------------------

#[test]
fn replica_with_one_channel() {
    let emu = Mysql8::start(&replica(vec![running("", 3)]));
    let d = emu.daemon("");
    expect(&d, "/replica", 200, "replica: up - lag 3s");
    expect(&d, "/", 200, "health: up");
    expect(&d, "/read-only", 200, "read-only: up - lag 3s");
    expect(&d, "/primary", 503, "primary: down - read_only is ON");

    // super_read_only alone also refuses writes.
    emu.set(
        &scenario(json!({"read_only": "OFF", "super_read_only": "ON"}), vec![]),
        1,
    );
    expect(&d, "/primary", 503, "primary: down - super_read_only is ON");

    emu.set(&replica(vec![running("", 45)]), 1);
    expect(
        &d,
        "/replica",
        503,
        "replica: down - replication lag 45s exceeds 30s",
    );
    expect(&d, "/replica?lag=60", 200, "replica: up - lag 45s");
    expect(&d, "/replica?max_lag=1m", 200, "replica: up - lag 45s");
    expect(
        &d,
        "/read-only?lag=10",
        503,
        "read-only: down - replication lag 45s exceeds 10s",
    );

    emu.set(
        &replica(vec![row(
            "running",
            "",
            json!({"Seconds_Behind_Source": null}),
        )]),
        1,
    );
    expect(
        &d,
        "/replica",
        503,
        "replica: down - replication lag unknown (channel '')",
    );

    // The source is gone: IO thread reconnecting, lag NULL, an error naming the source.
    emu.set(&replica(vec![row("io_connecting", "", json!({}))]), 1);
    expect(
        &d,
        "/replica",
        503,
        "replica: down - replication IO thread not running (channel '': Connecting)",
    );
    expect(&d, "/", 200, "health: up");

    emu.set(&replica(vec![row("sql_error", "", json!({}))]), 1);
    expect(
        &d,
        "/replica",
        503,
        "replica: down - replication SQL thread not running (channel '': No)",
    );

    emu.set(&replica(vec![row("stopped", "", json!({}))]), 1);
    expect(
        &d,
        "/replica",
        503,
        "replica: down - replication IO thread not running (channel '': No)",
    );
    expect(
        &d,
        "/read-only",
        503,
        "read-only: down - replication IO thread not running (channel '': No)",
    );

    // What the prober sent: MySQL's session bound, MySQL 8's statement, nothing else.
    let statements = emu.statements();
    assert!(
        statements
            .iter()
            .any(|s| s == "SET SESSION max_execution_time=200"),
        "{statements:?}"
    );
    assert!(statements
        .iter()
        .any(|s| s == "SET SESSION wsrep_sync_wait=0"));
    assert!(statements.iter().any(|s| s == "SHOW REPLICA STATUS"));
    for s in &statements {
        assert!(
            !s.contains("max_statement_time"),
            "MariaDB syntax sent: {s}"
        );
        assert!(!s.starts_with("SHOW SLAVE"), "old syntax sent: {s}");
        assert!(!s.starts_with("SHOW ALL"), "MariaDB syntax sent: {s}");
        assert!(
            !s.contains("performance_schema.replication_group"),
            "group tables read without a group: {s}"
        );
    }
    // Server text (the replication error names the source) never reaches a body.
    for path in ["/", "/replica", "/primary", "/read-only"] {
        let (_, body) = http_get(d.http_port(), path);
        assert!(
            !body.contains("10.0.0.11") && !body.contains("repl@"),
            "{body}"
        );
    }
}

#[test]
fn several_channels_worst_lag_and_selection() {
    let emu = Mysql8::start(&replica(vec![running("a", 1), running("b", 40)]));
    let all = emu.daemon("");
    let only_a = emu.daemon(r#"replication_channels = ["a"]"#);
    expect(
        &all,
        "/replica",
        503,
        "replica: down - replication lag 40s exceeds 30s",
    );
    expect(&only_a, "/replica", 200, "replica: up - lag 1s");

    // Under the bound but above half of it: still out (README, "Verdict policy").
    emu.set(&replica(vec![running("a", 1), running("b", 20)]), 2);
    expect(
        &all,
        "/replica",
        503,
        "replica: down - recovering: lag 20s, back at 15s",
    );
    expect(&only_a, "/replica", 200, "replica: up - lag 1s");
    emu.set(&replica(vec![running("a", 1), running("b", 10)]), 2);
    expect(&all, "/replica", 200, "replica: up - lag 10s");

    // A broken channel that is not selected does not count.
    emu.set(
        &replica(vec![running("a", 2), row("io_connecting", "b", json!({}))]),
        2,
    );
    expect(
        &all,
        "/replica",
        503,
        "replica: down - replication IO thread not running (channel 'b': Connecting)",
    );
    expect(&only_a, "/replica", 200, "replica: up - lag 2s");

    // The selected channel is gone.
    emu.set(&replica(vec![running("b", 2)]), 2);
    expect(
        &only_a,
        "/replica",
        503,
        "replica: down - not replicating (no replication channel)",
    );
    expect(&all, "/replica", 200, "replica: up - lag 2s");
}

#[test]
fn writable_server_with_a_running_channel() {
    let emu = Mysql8::start(&writable(vec![running("x", 0)]));
    let strict = emu.daemon("");
    let circular = emu.daemon("primary_allows_replication = true");
    expect(
        &strict,
        "/primary",
        503,
        "primary: down - writable but replicating (channel 'x')",
    );
    expect(&circular, "/primary", 200, "primary: up");
    expect(&strict, "/", 200, "health: up");
    expect(&strict, "/replica", 200, "replica: up - lag 0s");

    // Reconnecting to its source still counts as replicating.
    emu.set(&writable(vec![row("io_connecting", "x", json!({}))]), 2);
    expect(
        &strict,
        "/primary",
        503,
        "primary: down - writable but replicating (channel 'x')",
    );

    // A stopped channel (STOP REPLICA) is not replicating.
    emu.set(&writable(vec![row("stopped", "x", json!({}))]), 2);
    expect(&strict, "/primary", 200, "primary: up");
    expect(&circular, "/primary", 200, "primary: up");
}

#[test]
fn group_replication_channels_are_never_async() {
    // Group Replication stopped and its group name cleared: its two channels stay in
    // SHOW REPLICA STATUS (applier SQL thread running) but are no async replication.
    let emu = Mysql8::start(&writable(vec![
        row("gr_applier", "group_replication_applier", json!({})),
        row("gr_recovery", "group_replication_recovery", json!({})),
    ]));
    let d = emu.daemon("");
    expect(&d, "/primary", 200, "primary: up");
    expect(
        &d,
        "/replica",
        503,
        "replica: down - not replicating (no replication channel)",
    );
    expect(&d, "/read-only", 200, "read-only: up - writable");
    // Even when selected by name.
    let named = emu.daemon(r#"replication_channels = ["group_replication_applier"]"#);
    expect(&named, "/primary", 200, "primary: up");
    expect(
        &named,
        "/replica",
        503,
        "replica: down - not replicating (no replication channel)",
    );
}

#[test]
fn replica_status_privilege_error() {
    let emu = Mysql8::start(&with(
        writable(vec![running("", 0)]),
        "errors",
        json!({"SHOW REPLICA STATUS": 1227}),
    ));
    let d = emu.daemon("");
    expect(
        &d,
        "/replica",
        503,
        "replica: down - replication status unavailable: missing privilege (error 1227)",
    );
    // Writable: /primary takes it, so /read-only (never stricter) does too.
    expect(&d, "/read-only", 200, "read-only: up - writable");
    // Judged on the core facts: writable, answers.
    expect(&d, "/primary", 200, "primary: up");
    expect(&d, "/", 200, "health: up");
    emu.set(&current_scenario(&emu), 1);
    // Never a fallback to the old syntax on a privilege error, and the connection kept.
    let statements = emu.statements();
    assert!(statements.iter().all(|s| !s.starts_with("SHOW SLAVE")));
    let log = emu.queries();
    let connections: BTreeSet<&str> = log
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(c, _)| c))
        .collect();
    assert_eq!(
        connections.len(),
        1,
        "an error reply dropped the connection"
    );
}

/// The scenario currently in the file (to re-set it unchanged, i.e. to wait for rounds).
fn current_scenario(emu: &Mysql8) -> Value {
    serde_json::from_slice(&fs::read(emu.path("scenario.json")).expect("scenario"))
        .expect("scenario json")
}

#[test]
fn syntax_error_falls_back_to_show_slave_status() {
    // A server that rejects SHOW REPLICA STATUS as a syntax error (as before 8.0.22)
    // while reporting a newer version: the prober falls back once per connection and
    // decodes the old column names.
    let emu = Mysql8::start(&with(
        replica(vec![running("", 3)]),
        "errors",
        json!({"SHOW REPLICA STATUS": 1064}),
    ));
    let d = emu.daemon("");
    expect(&d, "/replica", 200, "replica: up - lag 3s");
    emu.set(&current_scenario(&emu), 1);
    emu.set(
        &with(
            replica(vec![row("io_connecting", "", json!({}))]),
            "errors",
            json!({"SHOW REPLICA STATUS": 1064}),
        ),
        1,
    );
    expect(
        &d,
        "/replica",
        503,
        "replica: down - replication IO thread not running (channel '': Connecting)",
    );
    let statements = emu.statements();
    let newer = statements
        .iter()
        .filter(|s| *s == "SHOW REPLICA STATUS")
        .count();
    let older = statements
        .iter()
        .filter(|s| *s == "SHOW SLAVE STATUS")
        .count();
    assert_eq!(newer, 1, "the syntax is chosen once per connection");
    assert!(older >= 4, "{statements:?}");
}

// ---- Group Replication ------------------------------------------------------------------

#[test]
fn group_replication_primary_and_secondary() {
    let emu = Mysql8::start(&group_of_three("ONLINE", "PRIMARY"));
    let d = emu.daemon("");
    expect(&d, "/primary", 200, "primary: up");
    expect(&d, "/", 200, "health: up");
    expect(
        &d,
        "/replica",
        503,
        "replica: down - group replication PRIMARY, not a secondary",
    );
    expect(&d, "/read-only", 200, "read-only: up - group member online");

    emu.set(&group_of_three("ONLINE", "SECONDARY"), 1);
    expect(&d, "/replica", 200, "replica: up - group secondary online");
    expect(&d, "/primary", 503, "primary: down - read_only is ON");
    expect(&d, "/read-only", 200, "read-only: up - group member online");
    expect(&d, "/", 200, "health: up");

    // A secondary that is (wrongly) writable is still no primary.
    let mut writable_secondary = group_of_three("ONLINE", "SECONDARY");
    writable_secondary["variables"]["read_only"] = json!("OFF");
    writable_secondary["variables"]["super_read_only"] = json!("OFF");
    emu.set(&writable_secondary, 1);
    expect(
        &d,
        "/primary",
        503,
        "primary: down - group replication role SECONDARY",
    );

    let statements = emu.statements();
    assert!(statements
        .iter()
        .any(|s| s == "SELECT * FROM performance_schema.replication_group_members"));
    assert!(
        statements
            .iter()
            .all(|s| !s.contains("replication_group_member_stats")),
        "applier queue read without gr_max_applier_queue"
    );
}

#[test]
fn group_replication_unhealthy_states() {
    let emu = Mysql8::start(&group_of_three("RECOVERING", "SECONDARY"));
    let d = emu.daemon("");
    expect(
        &d,
        "/",
        503,
        "health: down - group replication member RECOVERING",
    );
    expect(
        &d,
        "/replica",
        503,
        "replica: down - group replication member RECOVERING",
    );

    // Minority partition: this member ONLINE, the two others UNREACHABLE.
    emu.set(
        &group(
            "PRIMARY",
            vec![
                member(DB1_UUID, "db1", "UNREACHABLE", "SECONDARY"),
                member(OWN_UUID, "db2", "ONLINE", "PRIMARY"),
                member(DB3_UUID, "db3", "UNREACHABLE", "SECONDARY"),
            ],
        ),
        1,
    );
    expect(
        &d,
        "/",
        503,
        "health: down - group replication has no majority (1 of 3 members ONLINE)",
    );
    expect(
        &d,
        "/primary",
        503,
        "primary: down - group replication has no majority (1 of 3 members ONLINE)",
    );

    // Two of three ONLINE is a majority.
    emu.set(
        &group(
            "PRIMARY",
            vec![
                member(DB1_UUID, "db1", "ONLINE", "SECONDARY"),
                member(OWN_UUID, "db2", "ONLINE", "PRIMARY"),
                member(DB3_UUID, "db3", "UNREACHABLE", "SECONDARY"),
            ],
        ),
        1,
    );
    expect(&d, "/primary", 200, "primary: up");

    // Configured but stopped (STOP GROUP_REPLICATION): only its own row, OFFLINE.
    emu.set(
        &group(
            "SECONDARY",
            vec![json!({"$base": "stopped_self", "MEMBER_ID": OWN_UUID})],
        ),
        1,
    );
    expect(
        &d,
        "/",
        503,
        "health: down - group replication member OFFLINE",
    );

    // Expelled: ERROR, sees only itself.
    emu.set(
        &group(
            "SECONDARY",
            vec![json!({"$base": "error", "MEMBER_ID": OWN_UUID, "MEMBER_HOST": "db2"})],
        ),
        1,
    );
    expect(
        &d,
        "/",
        503,
        "health: down - group replication member ERROR",
    );

    // The plugin's placeholder row (empty MEMBER_ID): this member is not in the group.
    emu.set(
        &group("SECONDARY", vec![json!({"$base": "plugin_not_running"})]),
        1,
    );
    expect(
        &d,
        "/",
        503,
        "health: down - group replication configured but this member is not in the group",
    );

    // No SELECT on replication_group_members: GR health cannot be known.
    emu.set(
        &with(
            group_of_three("ONLINE", "PRIMARY"),
            "errors",
            json!({"SELECT * FROM performance_schema.replication_group_members": 1142}),
        ),
        1,
    );
    expect(
        &d,
        "/",
        503,
        "health: down - group replication status unavailable: missing privilege (error 1142)",
    );

    emu.set(&group_of_three("ONLINE", "PRIMARY"), 1);
    expect(&d, "/", 200, "health: up");
}

fn stats(id: &str, queue: u64) -> Value {
    json!({"MEMBER_ID": id, "COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE": queue})
}

#[test]
fn group_replication_applier_queue() {
    // Every member's stats are in the table: only this member's row counts.
    let busy = with(
        group_of_three("ONLINE", "SECONDARY"),
        "group_member_stats",
        json!([stats(DB1_UUID, 0), stats(OWN_UUID, 250), stats(DB3_UUID, 0)]),
    );
    let emu = Mysql8::start(&busy);
    let d = emu.daemon("gr_max_applier_queue = 100");
    expect(
        &d,
        "/replica",
        503,
        "replica: down - group replication applier queue 250 exceeds 100",
    );
    expect(&d, "/", 200, "health: up");

    let fine = with(
        group_of_three("ONLINE", "SECONDARY"),
        "group_member_stats",
        json!([
            stats(DB1_UUID, 999),
            stats(OWN_UUID, 3),
            stats(DB3_UUID, 999)
        ]),
    );
    emu.set(&fine, 1);
    expect(&d, "/replica", 200, "replica: up - group secondary online");
    assert!(emu.statements().iter().any(|s| s
        == "SELECT COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE FROM \
            performance_schema.replication_group_member_stats WHERE MEMBER_ID = @@server_uuid"));

    // No row for this member: the bound cannot be checked.
    emu.set(
        &with(
            group_of_three("ONLINE", "SECONDARY"),
            "group_member_stats",
            json!([stats(DB1_UUID, 0)]),
        ),
        1,
    );
    expect(
        &d,
        "/replica",
        503,
        "replica: down - group replication applier queue unknown",
    );
}

/// MySQL 5.7's Group Replication: no `MEMBER_ROLE` column (the primary is the status
/// variable `group_replication_primary_member`, empty in multi-primary mode) and no
/// `COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE` (its queue is `COUNT_TRANSACTIONS_IN_QUEUE`).
fn group57(own_role: &str, primary_member: &str, own_queue: u64) -> Value {
    let mut s = group_of_three("ONLINE", own_role);
    s["mysql57"] = json!(true);
    s["variables"]["version"] = json!("5.7.44-log");
    s["variables"]["version_comment"] = json!("MySQL Community Server (GPL)");
    s["status"] = json!({"group_replication_primary_member": primary_member});
    s["group_member_stats"] = json!([
        {"MEMBER_ID": DB1_UUID, "COUNT_TRANSACTIONS_IN_QUEUE": 999},
        {"MEMBER_ID": OWN_UUID, "COUNT_TRANSACTIONS_IN_QUEUE": own_queue},
        {"MEMBER_ID": DB3_UUID, "COUNT_TRANSACTIONS_IN_QUEUE": 999},
    ]);
    s
}

#[test]
fn group_replication_on_mysql57() {
    let emu = Mysql8::start(&group57("PRIMARY", OWN_UUID, 0));
    let d = emu.daemon("gr_max_applier_queue = 100");
    expect(&d, "/primary", 200, "primary: up");
    expect(
        &d,
        "/replica",
        503,
        "replica: down - group replication PRIMARY, not a secondary",
    );
    expect(&d, "/", 200, "health: up");

    emu.set(&group57("SECONDARY", DB1_UUID, 3), 1);
    expect(&d, "/replica", 200, "replica: up - group secondary online");
    expect(&d, "/primary", 503, "primary: down - read_only is ON");

    emu.set(&group57("SECONDARY", DB1_UUID, 250), 1);
    expect(
        &d,
        "/replica",
        503,
        "replica: down - group replication applier queue 250 exceeds 100",
    );

    // Multi-primary: no primary named, every ONLINE member is one.
    emu.set(&group57("PRIMARY", "", 0), 1);
    expect(&d, "/primary", 200, "primary: up");
    expect(
        &d,
        "/replica",
        503,
        "replica: down - group replication PRIMARY, not a secondary",
    );
    assert!(emu.statements().iter().any(|s| s
        == "SELECT COUNT_TRANSACTIONS_IN_QUEUE FROM \
            performance_schema.replication_group_member_stats WHERE MEMBER_ID = @@server_uuid"));
}

/// README, "Design decisions": when an optional step fails, `/` and `/primary` are judged on the core
/// facts and only the role that needs the missing fact answers 503. The applier queue
/// is only needed by `/replica`.
#[test]
fn applier_queue_privilege_error_only_affects_replica() {
    let primary = with(
        with(
            group_of_three("ONLINE", "PRIMARY"),
            "group_member_stats",
            json!([stats(DB1_UUID, 0), stats(OWN_UUID, 0), stats(DB3_UUID, 0)]),
        ),
        "errors",
        json!({"SELECT COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE": 1142}),
    );
    let emu = Mysql8::start(&primary);
    let d = emu.daemon("gr_max_applier_queue = 100");
    expect(&d, "/primary", 200, "primary: up");
    expect(&d, "/", 200, "health: up");
    let mut secondary = group_of_three("ONLINE", "SECONDARY");
    secondary["errors"] = primary["errors"].clone();
    emu.set(&secondary, 1);
    expect(&d, "/", 200, "health: up");
    let (status, body) = http_get(d.http_port(), "/replica");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("applier queue") && body.contains("1142"),
        "{body}"
    );
}

// ---- connection-level errors -------------------------------------------------------------

#[test]
fn offline_mode_and_refused_logins() {
    let emu = Mysql8::start(&writable(vec![]));
    let d = emu.daemon("");
    expect(&d, "/", 200, "health: up");

    // Seen through a session that survived (an admin's): the variable.
    emu.set(
        &scenario(json!({"read_only": "OFF", "offline_mode": "ON"}), vec![]),
        1,
    );
    expect(&d, "/", 503, "health: down - offline_mode is ON");

    // What a non-admin account really sees: its session dropped, new ones refused.
    let mut offline = scenario(json!({"offline_mode": "ON"}), vec![]);
    offline["drop_connections"] = json!(true);
    offline["connect_error"] = json!(3032);
    emu.write(&offline);
    expect(
        &d,
        "/",
        503,
        "health: down - server in offline_mode (error 3032)",
    );
    expect(
        &d,
        "/primary",
        503,
        "primary: down - server in offline_mode (error 3032)",
    );

    emu.write(&writable(vec![]));
    expect(&d, "/primary", 200, "primary: up");

    // The checker's password changed on the server.
    let mut rotated = writable(vec![]);
    rotated["users"] = json!({USER: "another password"});
    rotated["drop_connections"] = json!(true);
    emu.write(&rotated);
    expect(
        &d,
        "/",
        503,
        "health: down - access denied for the checker account (error 1045)",
    );
    assert!(
        !d.log().contains(PASSWORD),
        "the password appears in the daemon's output"
    );

    emu.write(&writable(vec![]));
    expect(&d, "/", 200, "health: up");
}

#[test]
fn hung_check_query_times_out() {
    let emu = Mysql8::start(&writable(vec![]));
    let d = emu.daemon("");
    expect(&d, "/", 200, "health: up");
    emu.write(&with(writable(vec![]), "delays", json!({"SELECT 1": 2.0})));
    expect(&d, "/", 503, "health: down - timeout during check query");
    emu.write(&writable(vec![]));
    expect(&d, "/", 200, "health: up");
}

/// A session SET answered after the step deadline: its reply must not be left unread on a
/// connection that is kept, or every later statement reads the previous one's reply and
/// the core facts (here `offline_mode`) vanish, so `/` answers 200.
#[test]
fn slow_session_setup_fails_the_connect() {
    let offline = scenario(json!({"read_only": "OFF", "offline_mode": "ON"}), vec![]);
    // Later than the 200 ms step deadline, earlier than two of them: the reply arrives
    // while the next statement waits for its own.
    let slow = with(
        offline.clone(),
        "delays",
        json!({"SET SESSION wsrep_sync_wait": 0.3}),
    );
    let emu = Mysql8::start(&slow);
    let d = emu.daemon("");
    expect(&d, "/", 503, "health: down - timeout during connect");
    for _ in 0..10 {
        let (status, body) = http_get(d.http_port(), "/");
        assert_eq!(
            (status, body.trim_end()),
            (503, "health: down - timeout during connect")
        );
        thread::sleep(Duration::from_millis(50));
    }
    emu.write(&offline);
    expect(&d, "/", 503, "health: down - offline_mode is ON");
    emu.write(&writable(vec![]));
    expect(&d, "/", 200, "health: up");
}

/// A server slow at every step, each within `check.timeout`: the round as a whole is
/// cut at its deadline (here 1.28 s: (stale_after - interval) less a fifth), in the
/// status step, so the verdict names it instead of the snapshot going stale between
/// rounds.
#[test]
fn slow_steps_hit_the_round_deadline_not_staleness() {
    let slow = with(
        writable(vec![]),
        "delays",
        json!({"SHOW GLOBAL VARIABLES": 0.5, "SELECT 1": 0.5, "SHOW GLOBAL STATUS": 0.85,
               "SHOW REPLICA STATUS": 0.85}),
    );
    let emu = Mysql8::start(&slow);
    let d = emu.daemon_timed(
        "interval = \"900ms\"\ntimeout = \"900ms\"\nstale_after = \"2500ms\"",
        "",
    );
    let want = "health: down - timeout during status counters";
    expect(&d, "/", 503, want);
    // Rounds of 2.7 s against a 2.5 s stale bound: without the round deadline the
    // answer would turn `stale` between rounds. With it, it stays put.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let (status, body) = http_get(d.http_port(), "/");
        assert_eq!((status, body.trim_end()), (503, want));
        thread::sleep(Duration::from_millis(100));
    }
    emu.write(&writable(vec![]));
    expect(&d, "/", 200, "health: up");
}

// ---- decoders over the recorded rows -----------------------------------------------------

/// The lines of a tab-separated column file of tests/mysql8, split into fields.
fn column_file(name: &str) -> Vec<Vec<String>> {
    fs::read_to_string(emulator_dir().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn recorded(name: &str) -> BTreeMap<String, serde_json::Map<String, Value>> {
    let text = fs::read_to_string(emulator_dir().join("rows").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut all: BTreeMap<String, Value> = serde_json::from_str(&text).expect("rows json");
    all.remove("_comment");
    all.into_iter()
        .map(|(k, v)| match v {
            Value::Object(m) => (k, m),
            other => panic!("{name}: row {k} is not an object: {other}"),
        })
        .collect()
}

/// A recorded row as the prober hands it to the decoders: (column, text or NULL) in
/// the server's column order: `columns` pairs the name sent with the recorded row's key.
fn as_row(
    row: &serde_json::Map<String, Value>,
    columns: &[(String, String)],
) -> Vec<(String, Option<String>)> {
    columns
        .iter()
        .map(|(sent, key)| {
            let v = match row.get(key) {
                Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
                None => panic!("recorded row lacks column {key}"),
            };
            (sent.clone(), v)
        })
        .collect()
}

fn replica_columns() -> Vec<(String, String)> {
    column_file("replica_status_columns.txt")
        .into_iter()
        .map(|c| (c[0].clone(), c[0].clone()))
        .collect()
}

fn slave_columns() -> Vec<(String, String)> {
    column_file("slave_status_columns.txt")
        .into_iter()
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

#[test]
fn recorded_rows_have_the_recorded_columns() {
    let replica: BTreeSet<String> = replica_columns().into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        replica.len(),
        60,
        "MySQL 8.0.36 SHOW REPLICA STATUS has 60 columns"
    );
    let slave = slave_columns();
    assert_eq!(slave.len(), 59);
    for (_, new) in &slave {
        assert!(replica.contains(new), "{new} is no 8.0.22 column");
    }
    for (name, row) in recorded("replica_status.json") {
        let keys: BTreeSet<String> = row.keys().cloned().collect();
        assert_eq!(keys, replica, "replica_status.json row {name}");
    }
    let members: BTreeSet<String> = column_file("group_members_columns.txt")
        .into_iter()
        .map(|c| c[0].clone())
        .collect();
    for (name, row) in recorded("group_members.json") {
        let keys: BTreeSet<String> = row.keys().cloned().collect();
        assert_eq!(keys, members, "group_members.json row {name}");
    }
    let stats: BTreeSet<String> = column_file("group_member_stats_columns.txt")
        .into_iter()
        .map(|c| c[0].clone())
        .collect();
    for (name, row) in recorded("group_member_stats.json") {
        let keys: BTreeSet<String> = row.keys().cloned().collect();
        assert_eq!(keys, stats, "group_member_stats.json row {name}");
    }
}

#[test]
fn channels_decode_from_recorded_rows() {
    let rows = recorded("replica_status.json");
    let decode = |name: &str| Channel::from_row(&as_row(&rows[name], &replica_columns()));

    let c = decode("running");
    assert_eq!(c.name, "");
    assert!(c.io_running() && c.sql_running());
    assert_eq!((c.io_state.as_str(), c.sql_state.as_str()), ("Yes", "Yes"));
    assert_eq!(c.lag, Some(0));
    assert_eq!((c.last_io_errno, c.last_sql_errno), (0, 0));

    assert_eq!(decode("lagging").lag, Some(45));

    let c = decode("io_connecting");
    assert_eq!(c.io_state, "Connecting");
    assert!(!c.io_running() && c.sql_running());
    assert_eq!(c.lag, None);
    assert_eq!(c.last_io_errno, 2003);

    let c = decode("sql_error");
    assert!(c.io_running() && !c.sql_running());
    assert_eq!(c.lag, None);
    assert_eq!(c.last_sql_errno, 1062);

    let c = decode("stopped");
    assert!(!c.io_running() && !c.sql_running());
    assert_eq!(c.lag, None);

    let c = decode("gr_applier");
    assert_eq!(c.name, "group_replication_applier");
    assert_eq!((c.io_state.as_str(), c.sql_state.as_str()), ("No", "Yes"));
    assert_eq!(c.lag, None);
    assert_eq!(decode("gr_recovery").name, "group_replication_recovery");

    // The same rows under the pre-8.0.22 names (SHOW SLAVE STATUS) decode the same.
    for (name, row) in &rows {
        assert_eq!(
            Channel::from_row(&as_row(row, &slave_columns())),
            decode(name),
            "row {name} in the old naming"
        );
    }
}

#[test]
fn members_decode_from_recorded_rows() {
    let rows = recorded("group_members.json");
    let columns: Vec<(String, String)> = column_file("group_members_columns.txt")
        .into_iter()
        .map(|c| (c[0].clone(), c[0].clone()))
        .collect();
    let decode = |name: &str| Member::from_row(&as_row(&rows[name], &columns));

    let m = decode("online_primary");
    assert_eq!(
        (m.id.as_str(), m.state.as_str(), m.role.as_str()),
        (DB1_UUID, "ONLINE", "PRIMARY")
    );
    let m = decode("online_secondary");
    assert_eq!(
        (m.id.as_str(), m.state.as_str(), m.role.as_str()),
        (OWN_UUID, "ONLINE", "SECONDARY")
    );
    assert_eq!(decode("recovering").state, "RECOVERING");
    assert_eq!(decode("unreachable").state, "UNREACHABLE");
    let m = decode("stopped_self");
    assert_eq!((m.state.as_str(), m.role.as_str()), ("OFFLINE", ""));
    let m = decode("plugin_not_running");
    assert_eq!((m.id.as_str(), m.state.as_str()), ("", "OFFLINE"));
    // Lower-case values from a proxy or an older server are normalised.
    let mut row = as_row(&rows["online_primary"], &columns);
    for (c, v) in &mut row {
        if c == "MEMBER_STATE" {
            *v = Some("online".into());
        }
    }
    assert_eq!(Member::from_row(&row).state, "ONLINE");
}

// ---- discovery ------------------------------------------------------------------------

/// Names and `in_topology` of the targets `/status` lists, sorted by name.
fn fleet_targets(d: &Daemon) -> Vec<(String, bool)> {
    let (code, body) = http_get(d.http_port(), "/status");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("status JSON");
    let mut out: Vec<(String, bool)> = v["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_string(),
                t["in_topology"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > SETTLE {
            panic!("timed out after {SETTLE:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn group_replication_discovery_finds_every_member_and_keeps_them_on_a_bad_view() {
    // Two members without a server behind them: discovery only needs them listed.
    let (p2, p3) = (free_port(), free_port());
    let emu = Mysql8::start(&json!({"users": {USER: PASSWORD}}));
    let at = |id: &str, port: u16, state: &str, role: &str| {
        let mut m = member(id, "127.0.0.1", state, role);
        m["MEMBER_PORT"] = json!(port);
        m
    };
    let own = |state: &str| at(OWN_UUID, emu.port, state, "PRIMARY");
    emu.write(&group(
        "PRIMARY",
        vec![
            own("ONLINE"),
            at(DB1_UUID, p2, "ONLINE", "SECONDARY"),
            at(DB3_UUID, p3, "RECOVERING", "SECONDARY"),
        ],
    ));
    let d = emu.daemon(&format!(
        "[[discover]]\nfrom = \"group-replication\"\nseed = \"127.0.0.1:{}\"\nevery = \"200ms\"\n",
        emu.port
    ));
    let name = |p: u16| format!("127.0.0.1:{p}");
    let mut all = vec![(name(emu.port), true), (name(p2), true), (name(p3), true)];
    all.sort();
    wait_for("three members discovered", || fleet_targets(&d) == all);
    expect(
        &d,
        &format!("/{}/primary", name(emu.port)),
        200,
        "primary: up",
    );

    // One member leaves the group: not in the topology any more.
    emu.write(&group(
        "PRIMARY",
        vec![own("ONLINE"), at(DB1_UUID, p2, "ONLINE", "SECONDARY")],
    ));
    expect(
        &d,
        &format!("/{}/", name(p3)),
        503,
        "health: down - not in topology",
    );

    // A member expelled from the group sees only itself, not ONLINE: that view is not
    // trusted (a discovery error), so the others are not marked gone.
    emu.write(&group("PRIMARY", vec![own("ERROR")]));
    let errors = "mysqlchk_discovery_errors_total{source=\"group-replication\"} ";
    wait_for("a discovery error counted", || {
        let (_, m) = http_get(d.http_port(), "/metrics");
        m.lines()
            .find_map(|l| l.strip_prefix(errors)?.parse::<u64>().ok())
            .is_some_and(|n| n >= 2)
    });
    assert!(
        fleet_targets(&d).contains(&(name(p2), true)),
        "{:?}",
        fleet_targets(&d)
    );
}
