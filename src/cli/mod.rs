//! The `mysqlchk` commands behind [`main`] (all `src/main.rs` calls): a synchronous
//! `main` that parses the command line, loads and validates the config *before*
//! binding anything, then builds the runtime it needs.
//! Exit codes: 78 (EX_CONFIG) for `serve` on an invalid config, 3 (UNKNOWN) elsewhere;
//! a command-line error in `check` is UNKNOWN (3) too, in `validate` 3, and `inetd`
//! never writes to stderr and always exits 0 (README, "Commands").

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::config::{self, Config, LogFormat};
use crate::role::Role;
use crate::{checker, daemon, maintenance};

use args::{Cli, Command, HaproxyArgs, MaintenanceAction};

mod args;
mod haproxy_config;
mod inetd;
mod plugin;

const EX_CONFIG: u8 = 78;

pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let sub = subcommand(&args);
    if sub == Some("inetd") {
        // stderr is the client's socket under xinetd: silence it before anything,
        // clap included, can write there.
        crate::sys::silence_stderr();
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(sub, e)),
    };
    let code = match cli.command {
        Command::Inetd => inetd::run(cli.config.as_deref()),
        Command::Serve => serve(cli.config.as_deref()),
        Command::Check { role, max_lag } => check(cli.config.as_deref(), &role, max_lag.as_deref()),
        Command::Validate => validate(cli.config.as_deref()),
        Command::Maintenance { action } => maintenance_cmd(cli.config.as_deref(), action),
        Command::HaproxyConfig(args) => haproxy_config(args),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The subcommand named on the command line, found without clap (for errors clap
/// reports before it knows): the first word that is neither an option nor the value
/// of `-c`/`--config`.
fn subcommand(args: &[std::ffi::OsString]) -> Option<&str> {
    let mut words = args.iter().skip(1);
    while let Some(w) = words.next() {
        let w = w.to_str()?;
        if w == "-c" || w == "--config" {
            words.next();
        } else if !w.starts_with('-') {
            return Some(w);
        }
    }
    None
}

/// The exit status for a command line clap refused, each command in its own
/// convention: `check` is a monitoring plugin (UNKNOWN, 3), `inetd` answers its
/// client and exits 0, `validate` says 3 like any invalid input; the others keep
/// clap's (2 for usage, 0 for --help / --version).
fn usage_error(sub: Option<&str>, e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    match sub {
        Some("check") => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("");
            println!(
                "MYSQLCHK UNKNOWN - usage: {} (see mysqlchk check --help)",
                first.trim_start_matches("error: ")
            );
            plugin::UNKNOWN as u8
        }
        Some("inetd") => inetd::usage_error() as u8,
        Some("validate") => {
            let _ = e.print();
            3
        }
        _ => e.exit(),
    }
}

/// Load or print every error; `None` on failure.
fn load(cli: Option<&Path>) -> Result<(Config, PathBuf, bool), config::ConfigErrors> {
    let env = config::process_env();
    let (path, explicit) = config::config_path(cli, &env);
    let loaded = config::load(&path, explicit, &env)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok((loaded.config, path, explicit))
}

fn init_logging(cfg: &Config) {
    let level = match cfg.log.level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    // A bug that panics in a probe round fails that round (`internal`) and the checker
    // restarts; it would do so every interval, so say it once, as a log line.
    std::panic::set_hook(Box::new(|info| {
        use std::sync::atomic::{AtomicBool, Ordering};
        static SAID: AtomicBool = AtomicBool::new(false);
        if !SAID.swap(true, Ordering::Relaxed) {
            tracing::error!("internal error (a bug; later ones are not logged): {info}");
        }
    }));
}

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}

fn serve(cli: Option<&Path>) -> i32 {
    let (cfg, path, explicit) = match load(cli) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("mysqlchk: invalid configuration, not starting");
            return i32::from(EX_CONFIG);
        }
    };
    init_logging(&cfg);
    let want = cfg.listen.max_connections as u64 * 2 + 64;
    let nofile = crate::sys::raise_nofile(want);
    let env = config::process_env();
    let listeners = match daemon::prepare(&cfg, &env) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %cfg.source,
        mysql = %cfg.mysql.target,
        user = %cfg.mysql.user,
        http = ?cfg.listen.http,
        agent = ?cfg.listen.agent,
        interval = %config::fmt_duration(cfg.check.interval),
        open_files = nofile,
        "starting"
    );
    let rt = match runtime(2) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return 1;
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    rt.block_on(daemon::run(cfg, listeners, path, explicit, env, shutdown));
    rt.shutdown_timeout(Duration::from_secs(1));
    0
}

fn check(cli: Option<&Path>, role: &str, max_lag: Option<&str>) -> i32 {
    let (cfg, _, _) = match load(cli) {
        Ok(c) => c,
        Err(errors) => {
            println!(
                "MYSQLCHK UNKNOWN - invalid configuration: {}",
                errors.0.first().map(String::as_str).unwrap_or("")
            );
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return plugin::UNKNOWN;
        }
    };
    let Some(role) = Role::parse(role.trim_start_matches('/')) else {
        println!("MYSQLCHK UNKNOWN - unknown role {role:?} (health, primary, replica, read-only)");
        return plugin::UNKNOWN;
    };
    let max_lag = match max_lag.map(config::parse_duration) {
        None => None,
        Some(Some(d)) => Some(d),
        Some(None) => {
            println!("MYSQLCHK UNKNOWN - invalid --max-lag (seconds or a duration such as 10s)");
            return plugin::UNKNOWN;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("MYSQLCHK UNKNOWN - cannot start: {e}");
            return plugin::UNKNOWN;
        }
    };
    let snap = rt.block_on(checker::direct_round(&cfg));
    let v = plugin::evaluate_direct(&snap, &cfg.check, role, max_lag);
    let (line, code) = plugin::report(&snap, &v);
    println!("{line}");
    code
}

fn validate(cli: Option<&Path>) -> i32 {
    match load(cli) {
        Ok((cfg, _, _)) => {
            print!("{}", cfg.render());
            0
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            3
        }
    }
}

fn maintenance_cmd(cli: Option<&Path>, action: MaintenanceAction) -> i32 {
    let (cfg, _, _) = match load(cli) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            return 3;
        }
    };
    let file = &cfg.check.maintenance_file;
    match action {
        MaintenanceAction::Status => {
            match maintenance::read(file) {
                Some(m) if m.since.is_empty() => println!("maintenance: on ({})", m.reason),
                Some(m) => println!("maintenance: on ({}, since {})", m.reason, m.since),
                None => println!("maintenance: off"),
            }
            0
        }
        MaintenanceAction::On { reason } => {
            let reason = reason.unwrap_or_else(|| "maintenance".into());
            match maintenance::write(file, &reason, std::time::SystemTime::now()) {
                Ok(m) => {
                    println!("maintenance: on ({}, since {})", m.reason, m.since);
                    confirm(&cfg, true);
                    0
                }
                Err(e) => {
                    eprintln!("cannot write {}: {e}", file.display());
                    1
                }
            }
        }
        MaintenanceAction::Off => match maintenance::clear(file) {
            Ok(()) => {
                println!("maintenance: off");
                confirm(&cfg, false);
                0
            }
            Err(e) => {
                eprintln!("cannot remove {}: {e}", file.display());
                1
            }
        },
    }
}

/// Wait up to two intervals for a running daemon to report the flag, and say whether
/// it did. It is asked on a loopback HTTP listener when there is one, else on the
/// first one as configured.
fn confirm(cfg: &Config, on: bool) {
    let Some(target) = confirm_target(&cfg.listen.http) else {
        return;
    };
    let now = std::time::Instant::now();
    let window = cfg
        .check
        .interval
        .saturating_mul(2)
        .saturating_add(Duration::from_millis(200));
    let until = now.checked_add(window).unwrap_or(now);
    let mut last;
    loop {
        last = daemon_maintenance(target);
        match &last {
            Seen::Flag(state) if *state == on => {
                println!("confirmed by the running daemon on {target}");
                return;
            }
            Seen::NoDaemon => {
                println!("no running daemon answered on {target}: the flag applies when it runs");
                return;
            }
            Seen::Unconfirmable(why) => {
                println!("a daemon is running on {target} but cannot confirm: {why}");
                return;
            }
            Seen::Flag(_) | Seen::Pending => {}
        }
        if std::time::Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match last {
        Seen::Pending => println!(
            "the daemon on {target} has no current check result yet (starting or stale): \
             not confirmed; it applies the flag on its next completed round"
        ),
        _ => println!("the daemon on {target} did not confirm within two intervals"),
    }
}

/// A loopback listener (an unspecified address is reachable on loopback) if any, so
/// the answer does not depend on listen.allow; else the first listener.
fn confirm_target(http: &[std::net::SocketAddr]) -> Option<std::net::SocketAddr> {
    let reachable = |a: &std::net::SocketAddr| {
        let mut a = *a;
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        a
    };
    http.iter()
        .map(reachable)
        .find(|a| a.ip().is_loopback())
        .or_else(|| http.first().copied())
}

/// What the daemon's `/` says about the maintenance flag.
enum Seen {
    /// The flag as the latest round saw it: `maintenance: ...` (up or down) or not.
    Flag(bool),
    /// `starting`, or a stale snapshot: the flag is not known yet.
    Pending,
    /// Nothing listens there.
    NoDaemon,
    /// Something answered, but not with a health line (why).
    Unconfirmable(String),
}

/// Ask `/`: allowed to every `listen.allow` peer (unlike the admin-only `/status`), and
/// its line starts with `maintenance:` whenever the latest round saw the flag.
fn daemon_maintenance(addr: std::net::SocketAddr) -> Seen {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return Seen::NoDaemon;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return Seen::Unconfirmable(
            "it closed the connection (is this host in listen.allow?)".into(),
        );
    }
    let mut buf = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut buf);
    if buf.is_empty() {
        return Seen::Unconfirmable(
            "it closed the connection without answering (is this host in listen.allow?)".into(),
        );
    }
    let text = String::from_utf8_lossy(&buf);
    let status: String = text
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .chars()
        .take(3)
        .filter(char::is_ascii_digit)
        .collect();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    if body.starts_with("maintenance:") {
        Seen::Flag(true)
    } else if body.starts_with("health: starting") || body.starts_with("health: down - stale") {
        Seen::Pending
    } else if body.starts_with("health: ") {
        Seen::Flag(false)
    } else {
        Seen::Unconfirmable(format!(
            "it answered / with status {status}, not a health line"
        ))
    }
}

fn haproxy_config(a: HaproxyArgs) -> i32 {
    use haproxy_config::{parse_servers, render, Options, Topology};
    let servers = match parse_servers(&a.servers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysqlchk haproxy-config: {e}");
            return 2;
        }
    };
    let Some(topology) = Topology::parse(&a.topology) else {
        eprintln!(
            "mysqlchk haproxy-config: --topology {:?}: expected replication, galera or group-replication",
            a.topology
        );
        return 2;
    };
    let Some(max_lag) = config::parse_duration(&a.max_lag) else {
        eprintln!(
            "mysqlchk haproxy-config: --max-lag {:?}: expected seconds or a duration",
            a.max_lag
        );
        return 2;
    };
    print!(
        "{}",
        render(&Options {
            servers,
            topology,
            check_port: a.check_port,
            agent_port: a.agent_port,
            bind: a.bind,
            write_port: a.write_port,
            read_port: a.read_port,
            max_lag,
            read_fallback: a.read_fallback,
            state_file: a.state_file,
            stats_socket: a.stats_socket,
            stats: a.stats,
        })
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_prefers_a_loopback_listener() {
        let a = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            confirm_target(&[a("10.0.0.2:9200"), a("0.0.0.0:9300")]),
            Some(a("127.0.0.1:9300"))
        );
        assert_eq!(
            confirm_target(&[a("10.0.0.2:9200"), a("[::]:9300")]),
            Some(a("[::1]:9300"))
        );
        assert_eq!(
            confirm_target(&[a("10.0.0.2:9200"), a("10.0.0.3:9200")]),
            Some(a("10.0.0.2:9200"))
        );
        assert_eq!(confirm_target(&[]), None);
    }

    #[test]
    fn subcommand_found_past_the_config_option() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            subcommand(&args(&["mysqlchk", "-c", "x", "inetd"])),
            Some("inetd")
        );
        assert_eq!(
            subcommand(&args(&["mysqlchk", "--config=x", "check", "--bogus"])),
            Some("check")
        );
        assert_eq!(subcommand(&args(&["mysqlchk", "--bogus"])), None);
    }
}
