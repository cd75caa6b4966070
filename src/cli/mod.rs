//! The `mysqlchk` commands behind [`main`] (all `src/main.rs` calls): a synchronous
//! `main` that parses the command line (definitions in `args`), loads and validates the
//! config *before* binding anything, then runs one command, each in its own file and
//! building the runtime it needs.
//! Exit codes: 78 (EX_CONFIG) for `serve` on an invalid config, 3 (UNKNOWN) elsewhere;
//! a command-line error in `check` is UNKNOWN (3) too, in `validate` 3, and `inetd`
//! never writes to stderr and always exits 0 (README, "Commands").

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::config::{self, Config};

use args::{Cli, Command};

mod args;
mod check;
mod haproxy_config;
mod inetd;
mod maintenance;
mod serve;
mod validate;

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
    let config = cli.config.as_deref();
    let code = match cli.command {
        Command::Inetd => inetd::run(config),
        Command::Serve => serve::run(config),
        Command::Check {
            role,
            max_lag,
            target,
        } => check::run(config, &role, max_lag.as_deref(), target.as_deref()),
        Command::Validate => validate::run(config),
        Command::Maintenance { action, target } => {
            maintenance::run(config, action, target.as_deref())
        }
        Command::HaproxyConfig(args) => haproxy_config::run(args),
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
        Some("check") => check::usage_error(&e) as u8,
        Some("inetd") => inetd::usage_error() as u8,
        Some("validate") => {
            let _ = e.print();
            3
        }
        _ => e.exit(),
    }
}

/// A valid config and where it came from (`serve` re-reads the same file on reload).
struct Loaded {
    config: Config,
    path: PathBuf,
    /// Named by `-c` or `$MYSQLCHK_CONFIG` rather than the default path.
    explicit: bool,
}

/// Load the config, printing its warnings to stderr; or print every error to stderr,
/// one line each, and hand back the first for the caller's own summary. Every command
/// but `inetd` (which never writes to stderr) loads through here.
fn load_or_print_errors(cli: Option<&Path>) -> Result<Loaded, String> {
    let env = config::process_env();
    let (path, explicit) = config::config_path(cli, &env);
    match config::load(&path, explicit, &env) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            Ok(Loaded {
                config: loaded.config,
                path,
                explicit,
            })
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            Err(errors.0.into_iter().next().unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn topology_words_and_alias() {
        let topology = |extra: &[&str]| {
            let mut argv = vec!["mysqlchk", "haproxy-config", "--servers", "db1=10.0.0.2"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::HaproxyConfig(a)) => Ok(a.topology),
                Ok(_) => panic!("parsed as another command"),
                Err(e) => Err(e.kind()),
            }
        };
        use args::Topology;
        assert_eq!(topology(&[]), Ok(Topology::Replication));
        for (word, want) in [
            ("replication", Topology::Replication),
            ("galera", Topology::Galera),
            ("group-replication", Topology::GroupReplication),
            ("gr", Topology::GroupReplication),
        ] {
            assert_eq!(topology(&["--topology", word]), Ok(want), "{word}");
        }
        assert_eq!(
            topology(&["--topology", "Galera"]),
            Err(clap::error::ErrorKind::InvalidValue)
        );
    }
}
