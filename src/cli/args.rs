//! The command line, as clap definitions only: every command, option and help text.
//!
//! Invariant: this file depends on nothing but `clap` and `std`, so that a build script
//! can `include!` it to generate the man page and shell completions from the same
//! definitions the binary parses with. Values that need the crate to be understood (a
//! role and its aliases, a duration) stay strings here and are checked by the command;
//! a closed set of words that needs nothing else (`--topology`) is a `ValueEnum`, so
//! clap lists it in the help and the completions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mysqlchk",
    version,
    propagate_version = true,
    about = "Health-check agent for MySQL / MariaDB / Percona behind HAProxy",
    long_about = None
)]
pub struct Cli {
    /// Config file (default /etc/mysqlchk/mysqlchk.toml, or $MYSQLCHK_CONFIG)
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon (HTTP checks, agent-check port)
    Serve,
    /// Run one direct check and print one monitoring-plugin line
    Check {
        /// health, primary, replica, read-only (or an alias)
        #[arg(default_value = "health")]
        role: String,
        /// Replication lag bound for replica / read-only (e.g. 10s, 1m)
        #[arg(long = "max-lag", value_name = "DURATION")]
        max_lag: Option<String>,
        /// Which [[target]] to check (fleet mode; needed with more than one)
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
    },
    /// Answer one HTTP request on stdin/stdout (xinetd, systemd Accept=yes)
    Inetd,
    /// Validate the config and print the effective settings (secrets masked)
    Validate,
    /// Drain this server gracefully (persisted in check.maintenance_file)
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
        /// Which [[target]]'s flag (fleet mode; needed with more than one)
        #[arg(long, value_name = "NAME", global = true)]
        target: Option<String>,
    },
    /// Print a haproxy.cfg for servers that each run mysqlchk
    HaproxyConfig(HaproxyArgs),
}

#[derive(clap::Args)]
pub struct HaproxyArgs {
    /// NAME=HOST:PORT[@CHECKPORT[/AGENTPORT]],... (the MySQL addresses; a server's
    /// own mysqlchk ports when they differ from --check-port / --agent-port)
    #[arg(long, value_name = "LIST")]
    pub servers: String,
    /// How the servers replicate (decides which role each listener checks)
    #[arg(long, value_enum, default_value_t = Topology::Replication)]
    pub topology: Topology,
    /// mysqlchk's HTTP port on every server
    #[arg(long, default_value_t = 9200)]
    pub check_port: u16,
    /// mysqlchk's agent-check port (adds lag-weighted agent checks to the read side)
    #[arg(long)]
    pub agent_port: Option<u16>,
    /// Address the listeners bind to
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: String,
    /// Port of the write listener
    #[arg(long, default_value_t = 3306)]
    pub write_port: u16,
    /// Port of the read listener
    #[arg(long, default_value_t = 3307)]
    pub read_port: u16,
    /// Hard replication lag bound of the read listener
    #[arg(long, default_value = "30s")]
    pub max_lag: String,
    /// Send reads to any healthy server when no replica passes
    #[arg(long)]
    pub read_fallback: bool,
    /// HAProxy's server-state file
    #[arg(long, default_value = "/var/lib/haproxy/server-state")]
    pub state_file: String,
    /// HAProxy's admin socket (with `expose-fd listeners`, for seamless reloads with -x)
    #[arg(long, value_name = "PATH", default_value = "/run/haproxy/admin.sock")]
    pub stats_socket: String,
    /// Also add a stats page bound to this ADDR:PORT
    #[arg(long, value_name = "ADDR:PORT")]
    pub stats: Option<String>,
    /// Send every server's HTTP check to one fleet checker at ADDR:PORT (with
    /// http-check send-state) instead of a mysqlchk on each server
    #[arg(long, value_name = "ADDR:PORT")]
    pub fleet: Option<String>,
    /// The fleet checker's agent port: agent-checks through it (agent-send "<name>/<role>")
    #[arg(long, value_name = "ADDR:PORT", requires = "fleet")]
    pub fleet_agent: Option<String>,
    /// Also print, commented out, the [[haproxy]] table for mysqlchk.toml that pushes
    /// verdicts to this HAProxy's admin socket (each server's, or the fleet checker's)
    #[arg(long)]
    pub push: bool,
}

/// `--topology`: the cluster the generated haproxy.cfg fronts. The variants carry no
/// doc comments on purpose: with them clap switches `--help` to its long, one-option-
/// per-paragraph layout; the README's "HAProxy recipes" explains each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    Replication,
    Galera,
    #[value(alias = "gr")]
    GroupReplication,
}

#[derive(Subcommand)]
pub enum MaintenanceAction {
    /// Set the maintenance flag
    On {
        /// Why (shown in check answers)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Clear the maintenance flag
    Off,
    /// Show the flag
    Status,
}
