//! The files in `deploy/` do what they say:
//!
//! - every systemd unit passes `systemd-analyze verify` (run offline on copies whose
//!   `ExecStart=` points at a stub, since verify insists that the binary exists) and the
//!   services pass `systemd-analyze security --offline`; the units carry the settings
//!   the spec asks for, and their allowlists mirror the example config; the socket
//!   units' addresses, passed as systemd does (`systemd-socket-activate`), are
//!   adopted by the daemon running the example's listeners; sysusers/tmpfiles make
//!   the user and directories;
//! - the example config validates and states every default;
//! - `grants-mariadb.sql` is accepted by a real MariaDB, twice, and the account it makes
//!   is enough for every check and has nothing more; the documented rotation and
//!   Unix-socket statements work too; `grants-mysql.sql` has the right grants (checked
//!   as text: there is no MySQL server here);
//! - the xinetd snippet, run by a real xinetd, serves checks through `mysqlchk inetd`.

mod common;

use common::process::{self, run_with_timeout};
use common::{free_port, http_request, wait_until, MariaDb};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mysqlchk");
/// Where the units expect the binary; rewritten to a stub in the copies we verify.
const INSTALLED_BIN: &str = "/usr/local/bin/mysqlchk";
const UNITS: &[&str] = &[
    "mysqlchk.service",
    "mysqlchk.socket",
    "mysqlchk-agent.socket",
    "mysqlchk-inetd.socket",
    "mysqlchk-inetd@.service",
    "mysqlchk@.service",
];
const SERVICES: &[&str] = &[
    "mysqlchk.service",
    "mysqlchk-inetd@.service",
    "mysqlchk@.service",
];
const PLACEHOLDER: &str = "REPLACE-WITH-PASSWORD";
/// The checker's password in these tests (hex, as the SQL files recommend).
const CHECKER_PASSWORD: &str = "0123456789abcdef0123456789abcdef";
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read_deploy(name: &str) -> String {
    let p = deploy_dir().join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Runs a short command under a deadline; panics if it cannot run.
fn run(cmd: Command) -> Output {
    run_with_timeout(cmd, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `mysqlchk` with an environment that cannot leak settings into the run.
fn mysqlchk(args: &[&str]) -> Command {
    let mut cmd = clean_env(Command::new(BIN));
    cmd.args(args);
    cmd
}

/// `cmd` without any MYSQLCHK_* setting nor systemd's activation variables.
fn clean_env(mut cmd: Command) -> Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("MYSQLCHK_") {
            cmd.env_remove(&k);
        }
    }
    for k in [
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

/// Writes `content` to `path` with mode 0600 (a password file mysqlchk accepts
/// without a warning).
fn write_private(path: &Path, content: &str) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    f.write_all(content.as_bytes()).expect("write");
}

// ---------------------------------------------------------------------------
// systemd units
// ---------------------------------------------------------------------------

/// `(section, key, value)` of every assignment in a unit file.
fn directives(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "keep unit lines unbroken for these checks: {line}"
        );
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not an assignment: {line}"));
        out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    out
}

/// Every value assigned to `section`/`key`, in order.
fn values(unit: &str, section: &str, key: &str) -> Vec<String> {
    directives(unit)
        .into_iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v)
        .collect()
}

/// The single value of `section`/`key`; panics naming the unit otherwise.
fn value(name: &str, unit: &str, section: &str, key: &str) -> String {
    let v = values(unit, section, key);
    assert_eq!(v.len(), 1, "{name}: [{section}] {key}= set {v:?}");
    v[0].clone()
}

/// Copies of the units in a temp dir, with `ExecStart=` pointing at a stub
/// executable: `systemd-analyze verify` refuses a unit whose binary is missing.
fn unit_copies() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stub = dir.path().join("bin").join("mysqlchk");
    fs::create_dir_all(stub.parent().unwrap()).unwrap();
    fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let units = dir.path().join("units");
    fs::create_dir_all(&units).unwrap();
    for name in UNITS {
        let text = read_deploy(name);
        assert!(
            text.contains(INSTALLED_BIN) || name.ends_with(".socket"),
            "{name} does not run {INSTALLED_BIN}"
        );
        let copy = text.replace(INSTALLED_BIN, stub.to_str().expect("UTF-8 temp path"));
        fs::write(units.join(name), copy).unwrap();
    }
    (dir, units)
}

fn systemd_analyze(args: &[&str], units: &Path) -> Output {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args).current_dir(units);
    // Offline: no pager, no colours, no manager to ask.
    cmd.env("SYSTEMD_PAGER", "cat").env("SYSTEMD_COLORS", "0");
    run_with_timeout(cmd, TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("systemd-analyze (package systemd) cannot run: {e}"))
}

#[test]
fn deploy_holds_exactly_the_units_we_verify() {
    let mut found = BTreeSet::new();
    for entry in fs::read_dir(deploy_dir()).expect("deploy/") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".service") || name.ends_with(".socket") {
            found.insert(name);
        }
    }
    let expected: BTreeSet<String> = UNITS.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, expected, "add new unit files to UNITS");
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let (_dir, units) = unit_copies();

    // Control: a broken unit next to ours must be reported, or this test proves
    // nothing in this environment.
    let control = units.join("mysqlchk-control.service");
    fs::write(
        &control,
        "[Service]\nExecStart=/bin/true\nNoSuchSetting=1\nType=bogus\n",
    )
    .unwrap();
    let out = systemd_analyze(&["verify", "--man=no", control.to_str().unwrap()], &units);
    assert!(
        text(&out).contains("mysqlchk-control.service"),
        "systemd-analyze verify did not report a broken unit:\n{}",
        text(&out)
    );
    fs::remove_file(&control).unwrap();

    let paths: Vec<String> = UNITS
        .iter()
        .map(|n| units.join(n).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["verify", "--man=no"];
    args.extend(paths.iter().map(String::as_str));
    let out = systemd_analyze(&args, &units);
    let all = text(&out);
    let ours: Vec<&str> = all.lines().filter(|l| l.contains("mysqlchk")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify ({}):\n{all}",
        out.status
    );
}

#[test]
fn services_pass_systemd_analyze_security() {
    let (_dir, units) = unit_copies();
    for name in SERVICES {
        let path = units.join(name);
        // Exposure 2.0 of 10 at most ("OK"); the units score 1.3.
        let out = systemd_analyze(
            &[
                "security",
                "--offline=yes",
                "--threshold=20",
                "--no-pager",
                path.to_str().unwrap(),
            ],
            &units,
        );
        assert!(
            out.status.success(),
            "{name}: systemd-analyze security ({}):\n{}",
            out.status,
            text(&out)
        );
    }
}

/// A child process stopped with SIGTERM (then SIGKILL) on drop.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        process::terminate_and_reap(&mut self.0, Duration::from_secs(5));
    }
}

#[test]
fn socket_units_hand_the_daemon_its_listeners() {
    let db = server_with_checker();
    let dir = tempfile::tempdir().expect("tempdir");
    // The two units' addresses and names, on free ports.
    let mut sockets = Vec::new();
    for name in ["mysqlchk.socket", "mysqlchk-agent.socket"] {
        let unit = read_deploy(name);
        let listen = value(name, &unit, "Socket", "ListenStream");
        let addr: SocketAddr = listen
            .parse()
            .unwrap_or_else(|_| panic!("{name}: ListenStream={listen} is not address:port"));
        let addr = SocketAddr::new(addr.ip(), free_port());
        sockets.push((addr, value(name, &unit, "Socket", "FileDescriptorName")));
    }
    // The config: the example's listen.http (the default) on the test port; the
    // agent address the agent unit asks for.
    let example_http: SocketAddr = example_list("http")[0].parse().unwrap();
    let http = SocketAddr::new(example_http.ip(), sockets[0].0.port());
    let agent = sockets[1].0;
    let agent_unit = read_deploy("mysqlchk-agent.socket");
    assert!(
        agent_unit.contains(&format!("listen.agent = [\"{}:9201\"]", agent.ip())),
        "mysqlchk-agent.socket must name the listen.agent to configure"
    );
    let pw = dir.path().join("password");
    write_private(&pw, CHECKER_PASSWORD);
    let config = dir.path().join("mysqlchk.toml");
    fs::write(
        &config,
        format!(
            "[listen]\nhttp = [\"{http}\"]\nagent = [\"{agent}\"]\nallow = [\"127.0.0.0/8\"]\n\
             [mysql]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"mysqlchk\"\npassword_file = {:?}\n",
            db.port(),
            pw.to_str().unwrap()
        ),
    )
    .unwrap();

    // What systemd does for mysqlchk.socket + mysqlchk-agent.socket: listen, then
    // start the service on the first connection with LISTEN_FDS / LISTEN_FDNAMES.
    let log = dir.path().join("daemon.log");
    let log_file = fs::File::create(&log).unwrap();
    let mut cmd = clean_env(Command::new("systemd-socket-activate"));
    cmd.arg(format!("--listen={}", sockets[0].0))
        .arg(format!("--listen={}", sockets[1].0))
        .arg(format!("--fdname={}:{}", sockets[0].1, sockets[1].1))
        .arg(BIN)
        .args(["serve", "-c", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let child = process::spawn_guarded(cmd)
        .unwrap_or_else(|e| panic!("cannot run systemd-socket-activate: {e}"));
    let mut daemon = Guarded(child);
    let read_log = || fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(10), "the sockets to listen", || {
        read_log().matches("Listening on").count() == 2
    });

    let raw = common::http_raw(
        SocketAddr::from(([127, 0, 0, 1], http.port())),
        b"GET /health HTTP/1.0\r\n\r\n",
        Duration::from_secs(10),
    );
    let resp = common::parse_http_response(&raw).unwrap_or_else(|| {
        panic!(
            "no HTTP answer ({:?}); daemon log:\n{}",
            String::from_utf8_lossy(&raw),
            read_log()
        )
    });
    assert_eq!(resp.status, 200, "{resp:?}\n{}", read_log());
    assert!(resp.body.starts_with("health: up"), "{resp:?}");
    let line = common::http_raw(
        SocketAddr::from(([127, 0, 0, 1], agent.port())),
        b"",
        Duration::from_secs(5),
    );
    let line = String::from_utf8_lossy(&line);
    assert!(
        line.starts_with("up"),
        "agent answered {line:?}\n{}",
        read_log()
    );
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "the daemon exited:\n{}",
        read_log()
    );
    assert!(!read_log().contains("already in use"), "{}", read_log());
}

/// Settings every service must carry (key, exact value).
const HARDENING: &[(&str, &str)] = &[
    ("User", "mysqlchk"),
    ("Group", "mysqlchk"),
    ("NoNewPrivileges", "yes"),
    ("CapabilityBoundingSet", ""),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("RestrictNamespaces", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallArchitectures", "native"),
];

/// The items of a one-line list `key = [...]` of the example config.
fn example_list(key: &str) -> Vec<String> {
    let example = read_deploy("mysqlchk.toml.example");
    let prefix = format!("{key} = ");
    let line = example
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{prefix} in the example config"));
    line[prefix.len()..]
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn units_carry_the_settings_the_spec_asks_for() {
    let service = read_deploy("mysqlchk.service");
    let s = |key: &str| value("mysqlchk.service", &service, "Service", key);
    assert_eq!(s("Type"), "notify");
    assert_eq!(s("ExecStart"), "/usr/local/bin/mysqlchk serve");
    assert_eq!(s("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(s("WatchdogSec"), "30s");
    assert_eq!(s("Restart"), "on-failure");
    assert_eq!(s("RestartPreventExitStatus"), "78");
    assert_eq!(s("LoadCredential"), "password:/etc/mysqlchk/password");
    assert_eq!(s("LimitNOFILE"), "16384");
    // Socket activation stays optional.
    assert!(values(&service, "Install", "Also").is_empty());
    assert!(values(&service, "Service", "Sockets").is_empty());
    // The daemon writes nothing: no writable paths, no dynamic user.
    for key in ["DynamicUser", "ReadWritePaths", "StateDirectory"] {
        assert!(values(&service, "Service", key).is_empty(), "{key}=");
    }

    let template = read_deploy("mysqlchk@.service");
    let t = |key: &str| value("mysqlchk@.service", &template, "Service", key);
    assert_eq!(
        t("ExecStart"),
        "/usr/local/bin/mysqlchk serve -c /etc/mysqlchk/%i.toml"
    );
    assert_eq!(t("LoadCredential"), "password:/etc/mysqlchk/%i.password");
    assert_eq!(t("Type"), "notify");
    assert_eq!(t("RestartPreventExitStatus"), "78");

    let inetd = read_deploy("mysqlchk-inetd@.service");
    let i = |key: &str| value("mysqlchk-inetd@.service", &inetd, "Service", key);
    assert_eq!(i("ExecStart"), "/usr/local/bin/mysqlchk inetd");
    assert_eq!(i("StandardInput"), "socket");
    assert_eq!(i("StandardOutput"), "socket");
    assert_eq!(i("StandardError"), "journal");
    assert_eq!(i("LoadCredential"), "password:/etc/mysqlchk/password");

    for (name, unit) in [
        ("mysqlchk.service", &service),
        ("mysqlchk@.service", &template),
        ("mysqlchk-inetd@.service", &inetd),
    ] {
        for (key, want) in HARDENING {
            assert_eq!(&value(name, unit, "Service", key), want, "{name}: {key}=");
        }
        assert!(
            values(unit, "Service", "SystemCallFilter").contains(&"@system-service".to_string()),
            "{name}: SystemCallFilter=@system-service"
        );
    }

    let http = read_deploy("mysqlchk.socket");
    let agent = read_deploy("mysqlchk-agent.socket");
    // Exactly the addresses of listen.http / listen.agent: the daemon adopts passed
    // sockets by address (see socket_units_hand_the_daemon_its_listeners).
    assert_eq!(example_list("http"), vec!["0.0.0.0:9200".to_string()]);
    for (name, unit, addr, fdname) in [
        ("mysqlchk.socket", &http, "0.0.0.0:9200", "http"),
        ("mysqlchk-agent.socket", &agent, "0.0.0.0:9201", "agent"),
    ] {
        let k = |key: &str| value(name, unit, "Socket", key);
        assert_eq!(k("ListenStream"), addr);
        assert_eq!(k("FileDescriptorName"), fdname);
        assert_eq!(k("Service"), "mysqlchk.service");
        assert!(values(unit, "Socket", "Accept").is_empty());
    }

    let accept = read_deploy("mysqlchk-inetd.socket");
    let a = |key: &str| value("mysqlchk-inetd.socket", &accept, "Socket", key);
    assert_eq!(a("ListenStream"), "9200");
    assert_eq!(a("Accept"), "yes");
    assert_eq!(a("TriggerLimitIntervalSec"), "0");
    assert_eq!(a("MaxConnections"), "512");
    assert_eq!(a("MaxConnectionsPerSource"), "64");

    // Every unit that admits traffic mirrors the example's listen.allow, plus
    // localhost, and denies the rest.
    let mut want = vec!["localhost".to_string()];
    want.extend(example_list("allow"));
    for name in UNITS {
        let unit = read_deploy(name);
        let section = if name.ends_with(".socket") {
            "Socket"
        } else {
            "Service"
        };
        assert_eq!(
            values(&unit, section, "IPAddressAllow"),
            want,
            "{name}: IPAddressAllow= must mirror listen.allow of mysqlchk.toml.example plus localhost"
        );
        assert_eq!(value(name, &unit, section, "IPAddressDeny"), "any");
    }
}

#[test]
fn sysusers_and_tmpfiles_make_the_user_and_directories() {
    let root = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(root.path().join("etc")).unwrap();
    let root_arg = format!("--root={}", root.path().display());
    for (tool, file, extra) in [
        ("systemd-sysusers", "mysqlchk.sysusers.conf", None),
        (
            "systemd-tmpfiles",
            "mysqlchk.tmpfiles.conf",
            Some("--create"),
        ),
    ] {
        let mut cmd = Command::new(tool);
        cmd.arg(&root_arg);
        if let Some(e) = extra {
            cmd.arg(e);
        }
        cmd.arg(deploy_dir().join(file));
        let out = run(cmd);
        assert!(out.status.success(), "{tool} {file}: {}", text(&out));
    }
    let passwd = fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("mysqlchk:"))
        .unwrap_or_else(|| panic!("no mysqlchk user in {passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");
    let gid: u32 = fields[3].parse().unwrap();
    use std::os::unix::fs::MetadataExt;
    for dir in ["etc/mysqlchk", "var/lib/mysqlchk"] {
        let m = fs::metadata(root.path().join(dir)).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o750, "{dir}");
        assert_eq!((m.uid(), m.gid()), (0, gid), "{dir}: root:mysqlchk");
    }
}

// ---------------------------------------------------------------------------
// example config
// ---------------------------------------------------------------------------

/// The example with `password_file` pointed at a 0600 file in `dir`.
fn example_copy(dir: &Path) -> String {
    let pw = dir.join("password");
    write_private(&pw, "secret\n");
    let example = read_deploy("mysqlchk.toml.example");
    let line = "password_file = \"/etc/mysqlchk/password\"";
    assert_eq!(example.matches(line).count(), 1, "{line} in the example");
    example.replace(line, &format!("password_file = {:?}", pw.to_str().unwrap()))
}

fn validate(dir: &Path, name: &str, config: &str) -> Output {
    let path = dir.join(name);
    fs::write(&path, config).unwrap();
    run(mysqlchk(&["validate", "-c", path.to_str().unwrap()]))
}

#[test]
fn example_config_is_valid_and_states_every_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = example_copy(dir.path());
    let out = validate(dir.path(), "example.toml", &example);
    assert!(
        out.status.success(),
        "mysqlchk validate rejects the example ({}):\n{}",
        out.status,
        text(&out)
    );
    assert!(
        out.stderr.is_empty(),
        "warnings on the example:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective = String::from_utf8_lossy(&out.stdout).into_owned();

    // The same settings as a config holding only what has no usable default:
    // everything else in the example is the default.
    let minimal = format!(
        "[listen]\nallow = [\"10.0.0.0/8\"]\n[mysql]\npassword_file = {:?}\n",
        dir.path().join("password").to_str().unwrap()
    );
    let out = validate(dir.path(), "minimal.toml", &minimal);
    assert!(out.status.success(), "{}", text(&out));
    let defaults = String::from_utf8_lossy(&out.stdout).into_owned();
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(
        body(&effective),
        body(&defaults),
        "the example must state the defaults (but listen.allow and password_file)"
    );

    // Every effective key appears in the example; so do the optional keys.
    let mut keys: BTreeSet<String> = effective
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_string()))
        .collect();
    keys.extend(
        ["socket", "defaults_file", "ssl_ca", "ssl_cert", "ssl_key"]
            .iter()
            .map(|s| s.to_string()),
    );
    for key in &keys {
        let active = example.lines().any(|l| l.starts_with(&format!("{key} = ")));
        let commented = example.lines().any(|l| {
            l.trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} = "))
        });
        assert!(active || commented, "{key} is not in the example");
    }
    assert!(example.contains("MYSQLCHK_MYSQL_PASSWORD"));

    // Every commented-out setting is a key mysqlchk knows (its file may not exist
    // here, and defaults_file excludes password_file: other errors are fine).
    let mut tried = 0;
    for (n, line) in example.lines().enumerate() {
        let Some(rest) = line.strip_prefix('#').map(str::trim_start) else {
            continue;
        };
        let Some((key, _)) = rest.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let mut lines: Vec<&str> = example.lines().collect();
        lines[n] = rest;
        let out = validate(dir.path(), "uncommented.toml", &(lines.join("\n") + "\n"));
        assert!(
            !text(&out).contains("unknown"),
            "line {}: {line}: {}",
            n + 1,
            text(&out)
        );
        tried += 1;
    }
    assert!(tried >= 5, "only {tried} commented settings found");
}

// ---------------------------------------------------------------------------
// grants
// ---------------------------------------------------------------------------

/// The statements of an SQL file that are not comments.
fn active_statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    code.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// `(privilege, object)` of every GRANT in `statements`, upper-cased.
fn grants(statements: &[String]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for s in statements.iter().filter(|s| s.starts_with("GRANT ")) {
        let (privs, rest) = s["GRANT ".len()..]
            .split_once(" ON ")
            .unwrap_or_else(|| panic!("unexpected GRANT: {s}"));
        let (object, to) = rest
            .split_once(" TO ")
            .unwrap_or_else(|| panic!("unexpected GRANT: {s}"));
        assert_eq!(to, "'mysqlchk'@'127.0.0.1'", "{s}");
        for p in privs.split(',') {
            out.insert((p.trim().to_uppercase(), object.trim().to_string()));
        }
    }
    out
}

/// Checks shared by both flavours' files.
fn check_account_statements(name: &str, statements: &[String]) {
    let create = statements
        .iter()
        .find(|s| s.starts_with("CREATE USER"))
        .unwrap_or_else(|| panic!("{name}: no CREATE USER"));
    assert!(
        create.starts_with("CREATE USER IF NOT EXISTS 'mysqlchk'@'127.0.0.1' IDENTIFIED BY "),
        "{name}: {create}"
    );
    let with = create.find("WITH MAX_USER_CONNECTIONS 3").expect(create);
    let expire = create.find("PASSWORD EXPIRE NEVER").expect(create);
    assert!(
        with < expire,
        "{name}: WITH must come before PASSWORD EXPIRE"
    );
    assert!(create.contains(PLACEHOLDER), "{name}: {create}");
    for s in statements {
        assert!(
            s.starts_with("CREATE USER ") || s.starts_with("GRANT "),
            "{name}: unexpected statement {s}"
        );
        let upper = s.to_uppercase();
        for forbidden in [
            "GRANT OPTION",
            "SUPER",
            "ALL PRIVILEGES",
            "CONNECTION_ADMIN",
            "CONNECTION ADMIN",
            "SLAVE ADMIN",
            "REPLICA ADMIN",
            "MYSQL.",
            "`MYSQL`",
        ] {
            assert!(!upper.contains(forbidden), "{name}: {forbidden} in {s}");
        }
    }
}

#[test]
fn grants_files_grant_the_least_privileges() {
    let mariadb = read_deploy("grants-mariadb.sql");
    let statements = active_statements(&mariadb);
    check_account_statements("grants-mariadb.sql", &statements);
    let want: BTreeSet<(String, String)> = [("USAGE", "*.*"), ("SLAVE MONITOR", "*.*")]
        .iter()
        .map(|(p, o)| (p.to_string(), o.to_string()))
        .collect();
    assert_eq!(grants(&statements), want, "grants-mariadb.sql");

    let mysql = read_deploy("grants-mysql.sql");
    let statements = active_statements(&mysql);
    check_account_statements("grants-mysql.sql", &statements);
    let want: BTreeSet<(String, String)> = [
        ("USAGE", "*.*"),
        ("REPLICATION CLIENT", "*.*"),
        ("SELECT", "performance_schema.replication_group_members"),
        (
            "SELECT",
            "performance_schema.replication_group_member_stats",
        ),
    ]
    .iter()
    .map(|(p, o)| (p.to_string(), o.to_string()))
    .collect();
    assert_eq!(grants(&statements), want, "grants-mysql.sql");
    // Rotation without an outage is documented for both.
    assert!(mysql.contains("RETAIN CURRENT PASSWORD"));
    assert!(mysql.contains("DISCARD OLD PASSWORD"));
    assert!(mariadb.contains("'mysqlchk2'@'127.0.0.1'"));
}

/// The commented SQL between the lines containing `from` and `to` (exclusive):
/// lines of the form `--   STATEMENT`, comment marker removed.
fn commented_sql(sql: &str, from: &str, to: &str) -> String {
    let start = sql
        .lines()
        .position(|l| l.contains(from))
        .unwrap_or_else(|| panic!("no line with {from:?}"));
    let mut out = String::new();
    for line in sql.lines().skip(start + 1) {
        if line.contains(to) {
            return out;
        }
        if let Some(rest) = line.strip_prefix("--   ") {
            out += rest.trim();
            out += "\n";
        }
    }
    panic!("no line with {to:?} after {from:?}");
}

/// The shared server with `grants-mariadb.sql` applied (twice: re-running it must
/// be harmless).
fn server_with_checker() -> &'static MariaDb {
    static READY: OnceLock<()> = OnceLock::new();
    let db = MariaDb::shared();
    READY.get_or_init(|| {
        let sql = read_deploy("grants-mariadb.sql");
        assert!(sql.contains(PLACEHOLDER));
        let sql = sql.replace(PLACEHOLDER, CHECKER_PASSWORD);
        db.sql(&sql);
        db.sql(&sql);
    });
    db
}

/// A config for `mysqlchk check` / `inetd` against `db` as `user`, in `dir`.
fn checker_config(dir: &Path, target: &str, user: &str, password: &str) -> PathBuf {
    let pw = dir.join(format!("{user}.password"));
    write_private(&pw, &format!("{password}\n"));
    let config = dir.join(format!("{user}.toml"));
    fs::write(
        &config,
        format!(
            "[listen]\nhttp = \"127.0.0.1:{}\"\n[mysql]\n{target}\nuser = {user:?}\npassword_file = {:?}\nconnect_timeout = \"5s\"\n[check]\ninterval = \"5s\"\ntimeout = \"5s\"\nstale_after = \"15s\"\n",
            free_port(),
            pw.to_str().unwrap()
        ),
    )
    .unwrap();
    config
}

/// `mysqlchk check -c config role`: (exit code, stdout).
fn check(config: &Path, role: &str) -> (i32, String) {
    let out = run(mysqlchk(&["check", "-c", config.to_str().unwrap(), role]));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Every check passes on a standalone writable server as `user`, and reading the
/// replication status needs no privilege the account lacks.
fn assert_enough_for_every_check(config: &Path, user: &str) {
    for role in ["health", "primary", "read-only"] {
        let (code, out) = check(config, role);
        assert_eq!(code, 0, "{user}: mysqlchk check {role}: {out}");
    }
    // Not a replica: down, but for that reason, not for a missing privilege.
    let (code, out) = check(config, "replica");
    assert_eq!(code, 2, "{user}: mysqlchk check replica: {out}");
    assert!(out.contains("no replication channel"), "{user}: {out}");
    for bad in ["privilege", "1227", "access", "denied"] {
        assert!(!out.contains(bad), "{user}: {out}");
    }
}

#[test]
fn mariadb_accepts_the_grants_and_they_are_enough_and_no_more() {
    let db = server_with_checker();
    let as_checker = |stmt: &str| db.sql_as("mysqlchk", CHECKER_PASSWORD, stmt);

    let shown = db.sql("SHOW CREATE USER 'mysqlchk'@'127.0.0.1'");
    assert!(shown.contains("WITH MAX_USER_CONNECTIONS 3"), "{shown}");
    assert!(shown.contains("PASSWORD EXPIRE NEVER"), "{shown}");

    let grants = as_checker("SHOW GRANTS").unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = grants.lines().collect();
    assert_eq!(lines.len(), 1, "{grants}");
    assert!(
        lines[0].starts_with("GRANT SLAVE MONITOR ON *.* TO `mysqlchk`@`127.0.0.1`"),
        "{grants}"
    );
    assert!(
        lines[0].ends_with("WITH MAX_USER_CONNECTIONS 3"),
        "{grants}"
    );
    for forbidden in ["GRANT OPTION", "SUPER", "ALL PRIVILEGES", "ADMIN"] {
        assert!(!grants.contains(forbidden), "{forbidden}: {grants}");
    }

    as_checker("SHOW ALL SLAVES STATUS").unwrap_or_else(|e| panic!("{e}"));
    as_checker("SHOW ALL REPLICAS STATUS").unwrap_or_else(|e| panic!("{e}"));
    // No access to the mysql schema, no way to stop replication.
    let e = as_checker("SELECT COUNT(*) FROM mysql.global_priv").unwrap_err();
    assert!(e.contains("1142") || e.contains("denied"), "{e}");
    let e = as_checker("STOP SLAVE").unwrap_err();
    assert!(e.contains("1227") || e.contains("denied"), "{e}");

    let dir = tempfile::tempdir().expect("tempdir");
    let target = format!("host = \"127.0.0.1\"\nport = {}", db.port());
    let config = checker_config(dir.path(), &target, "mysqlchk", CHECKER_PASSWORD);
    assert_enough_for_every_check(&config, "mysqlchk");
}

#[test]
fn mariadb_rotation_account_and_socket_account_work() {
    let db = server_with_checker();
    let sql = read_deploy("grants-mariadb.sql");
    let dir = tempfile::tempdir().expect("tempdir");

    // Rotation step 1: the second account.
    let second = commented_sql(&sql, "-- 1. On the primary, a second account", "-- 2.");
    assert!(second.contains("'mysqlchk2'@'127.0.0.1'"), "{second}");
    let new_password = "fedcba9876543210fedcba9876543210";
    db.sql(&second.replace("NEW-PASSWORD", new_password));
    let target = format!("host = \"127.0.0.1\"\nport = {}", db.port());
    let config = checker_config(dir.path(), &target, "mysqlchk2", new_password);
    assert_enough_for_every_check(&config, "mysqlchk2");
    db.sql("DROP USER 'mysqlchk2'@'127.0.0.1'");

    // The Unix-socket variant ('mysqlchk'@'localhost').
    let local = commented_sql(&sql, "the account host is 'localhost'", "-- Check:");
    assert!(local.contains("'mysqlchk'@'localhost'"), "{local}");
    db.sql(&local.replace(PLACEHOLDER, CHECKER_PASSWORD));
    let target = format!("socket = {:?}", db.socket_path().to_str().unwrap());
    let sub = dir.path().join("socket");
    fs::create_dir_all(&sub).unwrap();
    let config = checker_config(&sub, &target, "mysqlchk", CHECKER_PASSWORD);
    assert_enough_for_every_check(&config, "mysqlchk@localhost");
}

// ---------------------------------------------------------------------------
// xinetd
// ---------------------------------------------------------------------------

/// Replaces the value of the one `key = ...` line of an xinetd service.
fn set_attr(snippet: &str, key: &str, value: &str) -> String {
    let mut hits = 0;
    let out: Vec<String> = snippet
        .lines()
        .map(|l| match l.trim().split_once('=') {
            Some((k, _)) if k.trim() == key => {
                hits += 1;
                format!("\t{key} = {value}")
            }
            _ => l.to_string(),
        })
        .collect();
    assert_eq!(hits, 1, "{key} = in xinetd.mysqlchk");
    out.join("\n") + "\n"
}

#[test]
fn xinetd_snippet_has_the_key_settings() {
    let snippet = read_deploy("xinetd.mysqlchk");
    let attrs: Vec<String> = snippet
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.starts_with('#'))
        .collect();
    for want in [
        "service mysqlchk",
        "type = UNLISTED",
        "port = 9200",
        "socket_type = stream",
        "protocol = tcp",
        "wait = no",
        "user = mysqlchk",
        "server = /usr/local/bin/mysqlchk",
        "server_args = inetd",
        "per_source = UNLIMITED",
        "cps = 10000 1",
        "instances = UNLIMITED",
        "log_on_failure += USERID",
        "flags = REUSE",
        "disable = no",
    ] {
        assert!(attrs.iter().any(|a| a == want), "missing: {want}");
    }
    assert!(attrs.iter().any(|a| a.starts_with("only_from = ")));
    assert!(snippet.contains("/etc/services"));
}

#[test]
fn xinetd_runs_the_snippet_and_serves_checks() {
    let db = server_with_checker();
    let dir = tempfile::tempdir().expect("tempdir");
    let target = format!("host = \"127.0.0.1\"\nport = {}", db.port());
    let config = checker_config(dir.path(), &target, "mysqlchk", CHECKER_PASSWORD);

    let port = free_port();
    let mut id = Command::new("id");
    id.arg("-un");
    let whoami = run(id);
    let user = String::from_utf8_lossy(&whoami.stdout).trim().to_string();
    let mut snippet = read_deploy("xinetd.mysqlchk");
    snippet = set_attr(&snippet, "port", &port.to_string());
    snippet = set_attr(&snippet, "user", &user);
    snippet = set_attr(&snippet, "server", BIN);
    snippet = set_attr(
        &snippet,
        "server_args",
        &format!("inetd -c {}", config.to_str().unwrap()),
    );
    let conf = dir.path().join("xinetd.conf");
    fs::write(&conf, format!("defaults\n{{\n}}\n\n{snippet}")).unwrap();
    let log = dir.path().join("xinetd.log");

    // -d would log to /dev/tty; -filelog works without a terminal or syslog.
    let mut cmd = Command::new("xinetd");
    cmd.arg("-dontfork")
        .arg("-filelog")
        .arg(&log)
        .arg("-f")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let child = process::spawn_guarded(cmd).unwrap_or_else(|e| panic!("cannot run xinetd: {e}"));
    let _xinetd = Guarded(child);
    let read_log = || fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(10), "xinetd to start working", || {
        read_log().contains("Started working")
    });
    let started = read_log();
    assert!(
        started.contains("Started working: 1 available service"),
        "{started}"
    );
    for bad in ["WARNING", "ERROR"] {
        assert!(!started.contains(bad), "xinetd complains:\n{started}");
    }

    for (request, role) in [
        ("GET /health HTTP/1.0\r\n\r\n", "health"),
        ("GET /primary HTTP/1.1\r\nHost: x\r\n\r\n", "primary"),
        // HAProxy's default "option httpchk".
        ("OPTIONS / HTTP/1.0\r\n\r\n", "health"),
    ] {
        let resp = http_request(port, request.as_bytes());
        assert_eq!(
            resp.status,
            200,
            "{request:?}: {resp:?}\nxinetd log:\n{}",
            read_log()
        );
        assert!(resp.body.starts_with(&format!("{role}: up")), "{resp:?}");
        // Nothing but the response on the socket (stderr is the socket too).
        assert_eq!(
            resp.header("Content-Length"),
            Some(resp.body.len().to_string().as_str()),
            "{resp:?}"
        );
    }
}
