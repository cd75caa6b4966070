//! The crate's own binary (`mysqlchk serve -c <config>`) as a fixture.

use super::process;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Path of the `mysqlchk` binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_mysqlchk");

/// Replaced by the config file's path in [`Daemon::spawn_program`] arguments.
pub const CONFIG_PLACEHOLDER: &str = "{config}";

/// How long the daemon may take to start listening.
const LISTEN_DEADLINE: Duration = Duration::from_secs(20);
/// How long [`Drop`] waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A running `mysqlchk serve`, with its config file and captured output in a
/// temp dir.
pub struct Daemon {
    dir: TempDir,
    ports: Vec<u16>,
    child: Option<Child>,
    pid: u32,
    exit: Option<ExitStatus>,
}

impl Daemon {
    /// Writes `config_toml`, spawns `mysqlchk serve -c <file>` with `env`
    /// added to the environment, and waits until every listening port named
    /// in the config accepts TCP connections (see [`listen_ports`]: put
    /// `http = ["127.0.0.1:<free_port()>"]` in the config). Panics with the
    /// daemon's output if it exits or does not listen within 20 s.
    pub fn start(config_toml: &str, env: &[(&str, &str)]) -> Daemon {
        let ports = listen_ports(config_toml);
        assert!(
            !ports.is_empty(),
            "no listen address found in the config (use Daemon::start_with_ports):\n{config_toml}"
        );
        Self::start_with_ports(config_toml, env, &ports)
    }

    /// Like [`Daemon::start`], waiting for the given ports instead of the
    /// ones found in the config.
    pub fn start_with_ports(config_toml: &str, env: &[(&str, &str)], ports: &[u16]) -> Daemon {
        let mut d = Self::spawn(config_toml, env, &[]);
        d.ports = ports.to_vec();
        for &port in ports {
            d.wait_for_port(port);
        }
        d
    }

    /// Spawns `mysqlchk serve -c <file> <extra_args>` without waiting for
    /// anything: for tests of startup failures (see [`Daemon::wait_exit`]).
    /// `ports` are taken from the config as in [`Daemon::start`].
    pub fn spawn(config_toml: &str, env: &[(&str, &str)], extra_args: &[&str]) -> Daemon {
        let mut args = vec!["serve", "-c", CONFIG_PLACEHOLDER];
        args.extend_from_slice(extra_args);
        Self::spawn_program(Path::new(BIN), &args, config_toml, env)
    }

    /// Spawns any `program` the way [`Daemon::spawn`] spawns `mysqlchk`
    /// (config file, captured output, clean-up); `{config}` in `args` and in
    /// `env` values is replaced by the config file's path. Does not wait.
    pub fn spawn_program(
        program: &Path,
        args: &[&str],
        config_toml: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = process::fixture_tempdir("mysqlchk");
        let config_path = dir.path().join("mysqlchk.toml");
        fs::write(&config_path, config_toml).expect("cannot write the daemon config");
        let config = config_path.to_str().expect("UTF-8 temp dir path");
        let stdout = fs::File::create(dir.path().join("stdout.log")).expect("stdout.log");
        let stderr = fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let mut cmd = Command::new(program);
        cmd.args(args.iter().map(|a| a.replace(CONFIG_PLACEHOLDER, config)))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // The daemon reads every MYSQLCHK_* variable as a setting and refuses unknown
        // ones: the test harness's own knobs (MYSQLCHK_MIMIC_VENV, ...) must not reach it.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MYSQLCHK_") {
                cmd.env_remove(&k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v.replace(CONFIG_PLACEHOLDER, config));
        }
        let child = process::spawn_guarded(cmd)
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", program.display()));
        Daemon {
            pid: child.id(),
            dir,
            ports: listen_ports(config_toml),
            child: Some(child),
            exit: None,
        }
    }

    /// [`Daemon::spawn_program`], then waits for the listening ports found
    /// in the config, as [`Daemon::start`] does.
    pub fn start_program(
        program: &Path,
        args: &[&str],
        config_toml: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut d = Self::spawn_program(program, args, config_toml, env);
        assert!(
            !d.ports.is_empty(),
            "no listen address found in the config:\n{config_toml}"
        );
        for port in d.ports.clone() {
            d.wait_for_port(port);
        }
        d
    }

    /// Waits until a TCP connect to 127.0.0.1:`port` succeeds; panics (with
    /// the daemon's output) if the daemon exits or 20 s pass.
    pub fn wait_for_port(&mut self, port: u16) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                panic!(
                    "mysqlchk exited ({status}) before listening on port {port}:\n{}",
                    self.log()
                );
            }
            if super::port_open(port) {
                return start.elapsed();
            }
            if start.elapsed() >= LISTEN_DEADLINE {
                panic!(
                    "mysqlchk not listening on port {port} after {LISTEN_DEADLINE:?}:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The first listening port (the `http` address of the config).
    pub fn http_port(&self) -> u16 {
        *self
            .ports
            .first()
            .expect("no listening port known for this daemon")
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("mysqlchk.toml")
    }

    /// Replaces the config file atomically (write + rename), e.g. before
    /// sending SIGHUP.
    pub fn write_config(&self, config_toml: &str) {
        let tmp = self.dir.path().join("mysqlchk.toml.new");
        fs::write(&tmp, config_toml).expect("cannot write the new daemon config");
        fs::rename(&tmp, self.config_path()).expect("cannot replace the daemon config");
    }

    /// Captured stderr followed by stdout.
    pub fn log(&self) -> String {
        let read = |name: &str| {
            String::from_utf8_lossy(&fs::read(self.dir.path().join(name)).unwrap_or_default())
                .into_owned()
        };
        format!("{}{}", read("stderr.log"), read("stdout.log"))
    }

    /// Polls [`Daemon::log`] until it contains `needle`; returns the time it
    /// took or panics with the log.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) {
                return start.elapsed();
            }
            if start.elapsed() >= deadline {
                panic!("{needle:?} not in the mysqlchk log after {deadline:?}:\n{log}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` (e.g. `libc::SIGHUP`) to the daemon.
    pub fn signal(&self, sig: libc::c_int) {
        if self.child.is_some() {
            process::send_signal(self.pid, sig);
        }
    }

    /// The exit status if the daemon has exited (reaping it), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                self.exit = Some(status);
                self.child = None;
            }
        }
        self.exit
    }

    /// Waits up to `timeout` for the daemon to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(child) = &mut self.child {
            if let Some(status) = process::wait_timeout(child, timeout) {
                self.exit = Some(status);
                self.child = None;
            }
        }
        self.exit
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status
    /// (a signal death if it had to be killed).
    pub fn terminate(&mut self, grace: Duration) -> ExitStatus {
        if let Some(mut child) = self.child.take() {
            self.exit = Some(process::terminate_and_reap(&mut child, grace));
        }
        self.exit.expect("daemon exit status")
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(mut child) = self.child.take() {
            self.exit = Some(process::kill_and_reap(&mut child));
        }
        self.exit.expect("daemon exit status")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate(TERM_GRACE);
        }
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- mysqlchk log (tail) ---\n{}",
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
    }
}

/// The ports of the listening addresses in a daemon config: every string
/// (or array of strings) parsing as a socket address under a key whose
/// dotted path mentions `http`, `listen` or `agent` (but not `mysql`), e.g.
/// `http = ["127.0.0.1:18080"]`. Ports under an `http` path come first, in
/// config order. Empty if the config is not valid TOML.
pub fn listen_ports(config_toml: &str) -> Vec<u16> {
    let Ok(table) = config_toml.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (k, v) in &table {
        collect_ports(k, v, &mut found);
    }
    found.sort_by_key(|(path, _)| !path.contains("http"));
    let mut ports = Vec::new();
    for (_, port) in found {
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

fn collect_ports(path: &str, v: &toml::Value, ports: &mut Vec<(String, u16)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                collect_ports(&format!("{path}.{k}"), v, ports);
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                collect_ports(path, item, ports);
            }
        }
        toml::Value::String(s) => {
            let p = path.to_ascii_lowercase();
            let listening = ["http", "listen", "agent"].iter().any(|w| p.contains(w));
            if listening && !p.contains("mysql") {
                if let Ok(addr) = s.parse::<SocketAddr>() {
                    if addr.port() != 0 {
                        ports.push((p, addr.port()));
                    }
                }
            }
        }
        _ => {}
    }
}
