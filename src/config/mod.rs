//! TOML file + `MYSQLCHK_<SECTION>_<KEY>` environment → validated [`Config`].
//!
//! This file is the schema: each section's struct, each key's default beside it, and
//! the section's key table ([`KeySpec`]: name, secret or not, how `validate` shows it),
//! the one list the reader, unknown-key detection and `validate`'s output all use.
//! `reader.rs` reads raw values, `sections.rs` holds each section's rules,
//! `render.rs` prints the effective settings, `duration.rs` parses durations.
//!
//! Invariants:
//! - every key has a default; the environment wins over the file; lists in the
//!   environment are comma-separated;
//! - validation collects *every* error before failing, one line each, naming the file
//!   (or environment variable), the key and the value at fault;
//! - the value of a secret key (`mysql.password`) is never echoed in an error;
//! - the same function serves `serve`, `check`, `inetd`, `validate` and reload, so what
//!   `validate` accepts is exactly what the daemon runs.
//!
//! Adding a key: the field, its default and its [`KeySpec`] here (next to each other),
//! and the line that reads it in `sections.rs`. Unit tests fail if a key in a table is
//! never read, or a key read is missing from the tables.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::role::Role;

pub(crate) mod discover;
mod duration;
pub mod mycnf;
pub(crate) mod haproxy;
mod listen_tls;
mod reader;
mod render;
pub(crate) mod secret;
mod sections;
pub(crate) mod target_name;
mod targets;
#[cfg(test)]
mod tests;

pub(crate) use discover::Discover;
pub(crate) use duration::{fmt_duration, parse_duration};
pub(crate) use haproxy::{Haproxy, HaproxySocket};
pub(crate) use listen_tls::ListenTls;
use render::Shown;
use secret::Secret;
pub(crate) use targets::TargetEntry;

pub(crate) const DEFAULT_PATH: &str = "/etc/mysqlchk/mysqlchk.toml";
pub(crate) const ENV_CONFIG: &str = "MYSQLCHK_CONFIG";

/// One key of a section: its name (`[check] interval`, `MYSQLCHK_CHECK_INTERVAL`),
/// whether its value is a secret (never echoed), and how `validate` shows its
/// effective value.
struct KeySpec {
    name: &'static str,
    secret: bool,
    show: fn(&Config) -> Shown,
}

const fn key(name: &'static str, show: fn(&Config) -> Shown) -> KeySpec {
    KeySpec {
        name,
        secret: false,
        show,
    }
}

const fn secret_key(name: &'static str, show: fn(&Config) -> Shown) -> KeySpec {
    KeySpec {
        name,
        secret: true,
        show,
    }
}

/// The sections, in the order `validate` prints them. Any other section or key is an
/// error (a typo must not silently fall back to a default on a health checker).
const SECTIONS: &[(&str, &[KeySpec])] = &[
    ("listen", Listen::KEYS),
    ("mysql", Mysql::KEYS),
    ("check", Check::KEYS),
    ("agent", Agent::KEYS),
    ("log", Log::KEYS),
];

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where the settings came from, for messages (`/etc/mysqlchk/mysqlchk.toml` or
    /// `(no file)`).
    pub(crate) source: String,
    pub(crate) listen: Listen,
    pub(crate) mysql: Mysql,
    pub(crate) check: Check,
    pub(crate) agent: Agent,
    pub(crate) log: Log,
    /// `[[haproxy]]`: runtime sockets to push verdict changes to.
    pub(crate) haproxy: Vec<Haproxy>,
    /// `[[target]]` entries (fleet mode); none for a single-server agent.
    pub(crate) targets: Vec<TargetEntry>,
    /// `[[discover]]` entries: targets learnt from the topology (fleet mode).
    pub(crate) discover: Vec<Discover>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listen {
    pub(crate) http: Vec<SocketAddr>,
    pub(crate) agent: Vec<SocketAddr>,
    pub(crate) allow: Vec<IpNet>,
    pub(crate) admin_allow: Vec<IpNet>,
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) request_timeout: Duration,
    /// `tls_cert` + `tls_key` (+ `tls_client_ca`): every HTTP listener speaks HTTPS.
    pub(crate) tls: Option<ListenTls>,
}

impl Listen {
    const DEFAULT_HTTP: &'static [&'static str] = &["0.0.0.0:9200"];
    const DEFAULT_AGENT: &'static [&'static str] = &[];
    /// Loopback only; a listener that is not loopback requires `allow` to be given.
    const DEFAULT_ALLOW: &'static [&'static str] = &["127.0.0.0/8", "::1/128"];
    const DEFAULT_ADMIN_ALLOW: &'static [&'static str] = &["127.0.0.0/8", "::1/128"];
    const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
    const DEFAULT_MAX_CONNECTIONS_PER_IP: u64 = 64;
    const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

    const KEYS: &'static [KeySpec] = &[
        key("http", |c| render::addresses(&c.listen.http)),
        key("agent", |c| render::addresses(&c.listen.agent)),
        key("allow", |c| render::networks(&c.listen.allow)),
        key("admin_allow", |c| render::networks(&c.listen.admin_allow)),
        key("max_connections", |c| {
            render::plain(c.listen.max_connections)
        }),
        key("max_connections_per_ip", |c| {
            render::plain(c.listen.max_connections_per_ip)
        }),
        key("request_timeout", |c| {
            render::duration(c.listen.request_timeout)
        }),
        // Unset by default: plain HTTP.
        key("tls_cert", |c| {
            render::optional_path(&c.listen.tls.as_ref().map(|t| t.cert.clone()))
        }),
        key("tls_key", |c| {
            render::optional_path(&c.listen.tls.as_ref().map(|t| t.key.clone()))
        }),
        key("tls_client_ca", |c| {
            render::optional_path(&c.listen.tls.as_ref().and_then(|t| t.client_ca.clone()))
        }),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Tcp { host: String, port: u16 },
    Socket(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
            Target::Socket(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Where the password comes from. Files are re-read before every reconnect so a
/// rotated password needs no restart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Credentials {
    None,
    /// `mysql.password`: the environment (containers), or the file with a warning.
    Inline(Secret),
    /// `mysql.password_file`, or `$CREDENTIALS_DIRECTORY/password` (systemd).
    PasswordFile(PathBuf),
    /// `mysql.defaults_file`: `[client]` group of a my.cnf.
    DefaultsFile(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "disabled" => SslMode::Disabled,
            "preferred" => SslMode::Preferred,
            "required" => SslMode::Required,
            "verify_ca" => SslMode::VerifyCa,
            "verify_identity" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "disabled",
            SslMode::Preferred => "preferred",
            SslMode::Required => "required",
            SslMode::VerifyCa => "verify_ca",
            SslMode::VerifyIdentity => "verify_identity",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mysql {
    pub(crate) target: Target,
    pub(crate) user: String,
    pub(crate) credentials: Credentials,
    pub(crate) connect_timeout: Duration,
    pub(crate) ssl_mode: SslMode,
    pub(crate) ssl_ca: Option<PathBuf>,
    pub(crate) ssl_cert: Option<PathBuf>,
    pub(crate) ssl_key: Option<PathBuf>,
}

impl Mysql {
    const DEFAULT_HOST: &'static str = "127.0.0.1";
    const DEFAULT_PORT: u64 = 3306;
    /// Where `host = "localhost"` connects, as for the mysql client.
    const LOCALHOST_SOCKET: &'static str = "/run/mysqld/mysqld.sock";
    const DEFAULT_USER: &'static str = "mysqlchk";
    const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    const DEFAULT_SSL_MODE: SslMode = SslMode::Preferred;

    // host/port and socket are alternatives, as are the three credential keys: each
    // shows only when it is the one in effect.
    const KEYS: &'static [KeySpec] = &[
        key("host", |c| match &c.mysql.target {
            Target::Tcp { host, .. } => render::string(host),
            Target::Socket(_) => Shown::Unset,
        }),
        key("port", |c| match &c.mysql.target {
            Target::Tcp { port, .. } => render::plain(port),
            Target::Socket(_) => Shown::Unset,
        }),
        key("socket", |c| match &c.mysql.target {
            Target::Socket(p) => render::path(p),
            Target::Tcp { .. } => Shown::Unset,
        }),
        key("user", |c| render::string(&c.mysql.user)),
        secret_key("password", |c| match &c.mysql.credentials {
            Credentials::None => Shown::Note("no password configured"),
            Credentials::Inline(_) => render::string("***"),
            _ => Shown::Unset,
        }),
        key("password_file", |c| match &c.mysql.credentials {
            Credentials::PasswordFile(p) => render::path(p),
            _ => Shown::Unset,
        }),
        key("defaults_file", |c| match &c.mysql.credentials {
            Credentials::DefaultsFile(p) => render::path(p),
            _ => Shown::Unset,
        }),
        key("connect_timeout", |c| {
            render::duration(c.mysql.connect_timeout)
        }),
        key("ssl_mode", |c| render::string(c.mysql.ssl_mode.as_str())),
        key("ssl_ca", |c| render::optional_path(&c.mysql.ssl_ca)),
        key("ssl_cert", |c| render::optional_path(&c.mysql.ssl_cert)),
        key("ssl_key", |c| render::optional_path(&c.mysql.ssl_key)),
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Check {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) query: String,
    pub(crate) max_replication_lag: Duration,
    pub(crate) replication_channels: Vec<String>,
    pub(crate) primary_allows_replication: bool,
    pub(crate) gr_max_applier_queue: u64,
    pub(crate) galera_donor_is_healthy: bool,
    pub(crate) maintenance_file: PathBuf,
    pub(crate) maintenance_status: u16,
    /// Verdict policy (README, "Verdict policy"): a replica out on lag comes back
    /// at or below `lag_recover` for `recover_rounds` rounds; judged lag is the
    /// median of `lag_samples` rounds; "too many connections" drains for `full_grace`.
    pub(crate) lag_recover: Duration,
    pub(crate) recover_rounds: u32,
    pub(crate) lag_samples: u32,
    pub(crate) full_grace: Duration,
    /// Fleet-wide rules (README, "Verdict policy"): lag alone never takes a replica
    /// group below `min_serving` serving replicas (0: off); `galera_single_writer`
    /// keeps `/primary` up on one node per Galera cluster only.
    pub(crate) min_serving: u32,
    pub(crate) galera_single_writer: bool,
}

impl Check {
    const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
    /// Faster rounds would only load the server.
    const MIN_INTERVAL: Duration = Duration::from_millis(10);
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5);
    const DEFAULT_QUERY: &'static str = "SELECT 1";
    const DEFAULT_MAX_REPLICATION_LAG: Duration = Duration::from_secs(30);
    const DEFAULT_PRIMARY_ALLOWS_REPLICATION: bool = false;
    /// 0: no bound on the group replication applier queue.
    const DEFAULT_GR_MAX_APPLIER_QUEUE: u64 = 0;
    const DEFAULT_GALERA_DONOR_IS_HEALTHY: bool = false;
    const DEFAULT_MAINTENANCE_FILE: &'static str = "/var/lib/mysqlchk/maintenance";
    const DEFAULT_MAINTENANCE_STATUS: u64 = 404;
    // Unset, `lag_recover` is half of `max_replication_lag`.
    const DEFAULT_RECOVER_ROUNDS: u64 = 3;
    const MAX_RECOVER_ROUNDS: u64 = 1000;
    const DEFAULT_LAG_SAMPLES: u64 = 3;
    /// A median over more rounds would only delay every verdict.
    const MAX_LAG_SAMPLES: u64 = 15;
    const DEFAULT_FULL_GRACE: Duration = Duration::from_secs(30);
    const DEFAULT_MIN_SERVING: u64 = 1;
    /// More than any replica group could hold.
    const MAX_MIN_SERVING: u64 = 1000;
    const DEFAULT_GALERA_SINGLE_WRITER: bool = false;

    const KEYS: &'static [KeySpec] = &[
        key("interval", |c| render::duration(c.check.interval)),
        key("timeout", |c| render::duration(c.check.timeout)),
        key("stale_after", |c| render::duration(c.check.stale_after)),
        key("query", |c| render::string(&c.check.query)),
        key("max_replication_lag", |c| {
            render::duration(c.check.max_replication_lag)
        }),
        key("replication_channels", |c| {
            render::list(&c.check.replication_channels)
        }),
        key("primary_allows_replication", |c| {
            render::plain(c.check.primary_allows_replication)
        }),
        key("gr_max_applier_queue", |c| {
            render::plain(c.check.gr_max_applier_queue)
        }),
        key("galera_donor_is_healthy", |c| {
            render::plain(c.check.galera_donor_is_healthy)
        }),
        key("maintenance_file", |c| {
            render::path(&c.check.maintenance_file)
        }),
        key("maintenance_status", |c| {
            render::plain(c.check.maintenance_status)
        }),
        key("lag_recover", |c| render::duration(c.check.lag_recover)),
        key("recover_rounds", |c| render::plain(c.check.recover_rounds)),
        key("lag_samples", |c| render::plain(c.check.lag_samples)),
        key("full_grace", |c| render::duration(c.check.full_grace)),
        key("min_serving", |c| render::plain(c.check.min_serving)),
        key("galera_single_writer", |c| {
            render::plain(c.check.galera_single_writer)
        }),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentMaintenance {
    Drain,
    Maint,
}

impl AgentMaintenance {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "drain" => Some(AgentMaintenance::Drain),
            "maint" => Some(AgentMaintenance::Maint),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AgentMaintenance::Drain => "drain",
            AgentMaintenance::Maint => "maint",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Agent {
    pub(crate) default_role: Role,
    pub(crate) maintenance: AgentMaintenance,
    pub(crate) soft_lag: Duration,
    /// Percent, 1..=100.
    pub(crate) min_weight: u8,
    /// A role that comes back up ramps its weight from `min_weight` over this.
    pub(crate) ramp: Duration,
}

impl Agent {
    const DEFAULT_ROLE: Role = Role::Health;
    const DEFAULT_MAINTENANCE: AgentMaintenance = AgentMaintenance::Drain;
    /// Unset, `soft_lag` is this or a third of `check.max_replication_lag`, whichever
    /// is less.
    const DEFAULT_SOFT_LAG_CAP: Duration = Duration::from_secs(10);
    const DEFAULT_MIN_WEIGHT: u8 = 10;
    const DEFAULT_RAMP: Duration = Duration::from_secs(10);

    const KEYS: &'static [KeySpec] = &[
        key("default_role", |c| {
            render::string(c.agent.default_role.name())
        }),
        key("maintenance", |c| {
            render::string(c.agent.maintenance.as_str())
        }),
        key("soft_lag", |c| render::duration(c.agent.soft_lag)),
        key("min_weight", |c| {
            render::string(&format!("{}%", c.agent.min_weight))
        }),
        key("ramp", |c| render::duration(c.agent.ramp)),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Log {
    pub(crate) level: String,
    pub(crate) format: LogFormat,
    pub(crate) access_log: bool,
}

impl Log {
    const LEVELS: &'static [&'static str] = &["error", "warn", "info", "debug", "trace"];
    const DEFAULT_LEVEL: &'static str = "info";
    const DEFAULT_FORMAT: LogFormat = LogFormat::Text;
    const DEFAULT_ACCESS_LOG: bool = false;

    const KEYS: &'static [KeySpec] = &[
        key("level", |c| render::string(&c.log.level)),
        key("format", |c| render::string(c.log.format.as_str())),
        key("access_log", |c| render::plain(c.log.access_log)),
    ];
}

/// What loading produced: the config, plus warnings that do not stop it.
#[derive(Debug)]
pub struct Loaded {
    pub(crate) config: Config,
    pub(crate) warnings: Vec<String>,
}

/// Every error found, one line each.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Which file to read: `-c`, else `$MYSQLCHK_CONFIG`, else the default path.
/// `explicit` is true when the user named it (then a missing file is an error; a
/// missing default file means "defaults and environment only").
pub(crate) fn config_path(cli: Option<&Path>, env: &BTreeMap<String, String>) -> (PathBuf, bool) {
    if let Some(p) = cli {
        return (p.to_path_buf(), true);
    }
    if let Some(p) = env.get(ENV_CONFIG).filter(|p| !p.is_empty()) {
        return (PathBuf::from(p), true);
    }
    (PathBuf::from(DEFAULT_PATH), false)
}

/// The process environment as a map (tests pass their own).
pub(crate) fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Read and validate. `explicit`: see [`config_path`].
pub(crate) fn load(
    path: &Path,
    explicit: bool,
    env: &BTreeMap<String, String>,
) -> Result<Loaded, ConfigErrors> {
    let shown = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => Some(t),
            Err(_) => return Err(ConfigErrors(vec![format!("{shown}: not valid UTF-8")])),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
        Err(e) => return Err(ConfigErrors(vec![format!("{shown}: cannot read: {e}")])),
    };
    let source = if text.is_some() {
        shown.clone()
    } else {
        "(no file)".to_string()
    };
    from_str(text.as_deref().unwrap_or(""), &source, env)
}

/// Validate from text (pure but for the checks that files named in it exist).
pub fn from_str(
    text: &str,
    source: &str,
    env: &BTreeMap<String, String>,
) -> Result<Loaded, ConfigErrors> {
    let mut r = reader::Reader::new(text, source, env)?;
    r.unknown_keys();
    let mut config = r.build();
    if r.errors.is_empty() {
        let (targets, errors) = targets::read(r.table(), source, env, &config);
        config.targets = targets;
        r.errors.extend(errors);
    }
    if !config.targets.is_empty() || !config.discover.is_empty() {
        // A fleet checker matches each server line to its target by address and port,
        // else by name (README, "Pushing state to HAProxy"): one `server` name cannot
        // say which target it is.
        for (i, h) in config.haproxy.iter().enumerate() {
            if h.server.is_some() {
                r.errors.push(format!(
                    "{source}: haproxy[{i}].server names the single server's line and cannot be \
                     used with [[target]] or [[discover]]: each server line is matched to the \
                     target at its address and port, else to the target of its name"
                ));
            }
        }
    }
    r.finish(config)
}
