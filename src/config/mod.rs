//! TOML file + `MYSQLCHK_<SECTION>_<KEY>` environment → validated [`Config`].
//!
//! Invariants:
//! - every key has a default; the environment wins over the file; lists in the
//!   environment are comma-separated;
//! - validation collects *every* error before failing, one line each, naming the file
//!   (or environment variable), the key and the value at fault;
//! - the value of a secret key (`mysql.password`) is never echoed in an error;
//! - the same function serves `serve`, `check`, `inetd`, `validate` and reload, so what
//!   `validate` accepts is exactly what the daemon runs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::role::Role;

pub mod mycnf;
pub(crate) mod secret;

use secret::Secret;

pub(crate) const DEFAULT_PATH: &str = "/etc/mysqlchk/mysqlchk.toml";
pub(crate) const ENV_CONFIG: &str = "MYSQLCHK_CONFIG";
const ENV_PREFIX: &str = "MYSQLCHK_";

/// The longest timing setting accepted (intervals, timeouts, `stale_after`): anything
/// longer is a typo, and bounding them keeps every deadline computed from them far
/// from overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest lag bound accepted: longer than [`MAX_DURATION`] because a delayed
/// replica (`MASTER_DELAY`) legitimately lags by days.
pub(crate) const MAX_LAG: Duration = Duration::from_secs(30 * 24 * 3600);

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentMaintenance {
    Drain,
    Maint,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Log {
    pub(crate) level: String,
    pub(crate) format: LogFormat,
    pub(crate) access_log: bool,
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

/// The keys we know, per section. Anything else is an error (a typo must not silently
/// fall back to a default on a health checker).
const KEYS: &[(&str, &[&str])] = &[
    (
        "listen",
        &[
            "http",
            "agent",
            "allow",
            "admin_allow",
            "max_connections",
            "max_connections_per_ip",
            "request_timeout",
        ],
    ),
    (
        "mysql",
        &[
            "host",
            "port",
            "socket",
            "user",
            "password",
            "password_file",
            "defaults_file",
            "connect_timeout",
            "ssl_mode",
            "ssl_ca",
            "ssl_cert",
            "ssl_key",
        ],
    ),
    (
        "check",
        &[
            "interval",
            "timeout",
            "stale_after",
            "query",
            "max_replication_lag",
            "replication_channels",
            "primary_allows_replication",
            "gr_max_applier_queue",
            "galera_donor_is_healthy",
            "maintenance_file",
            "maintenance_status",
            "lag_recover",
            "recover_rounds",
            "lag_samples",
            "full_grace",
        ],
    ),
    (
        "agent",
        &[
            "default_role",
            "maintenance",
            "soft_lag",
            "min_weight",
            "ramp",
        ],
    ),
    ("log", &["level", "format", "access_log"]),
];

const SECRET_KEYS: &[(&str, &str)] = &[("mysql", "password")];

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
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            // toml's message spans several lines with a caret diagram: keep the first.
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("syntax error")
                .to_string();
            let at = e
                .span()
                .map(|s| format!(" (line {})", line_of(text, s.start)))
                .unwrap_or_default();
            return Err(ConfigErrors(vec![format!("{source}{at}: {msg}")]));
        }
    };
    let mut r = Reader {
        table,
        env,
        source: source.to_string(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    r.unknown_keys();
    let config = r.build();
    if r.errors.is_empty() {
        Ok(Loaded {
            config,
            warnings: r.warnings,
        })
    } else {
        Err(ConfigErrors(r.errors))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn is_secret(section: &str, key: &str) -> bool {
    SECRET_KEYS.contains(&(section, key))
}

/// One raw value and where it came from.
enum Raw {
    File(toml::Value),
    Env(String, String),
}

struct Reader<'e> {
    table: toml::Table,
    env: &'e BTreeMap<String, String>,
    source: String,
    errors: Vec<String>,
    warnings: Vec<String>,
}

impl Reader<'_> {
    fn unknown_keys(&mut self) {
        let mut errors = Vec::new();
        for (section, value) in &self.table {
            let Some((_, keys)) = KEYS.iter().find(|(s, _)| s == section) else {
                errors.push(format!("{}: unknown section [{section}]", self.source));
                continue;
            };
            let Some(t) = value.as_table() else {
                errors.push(format!("{}: [{section}] must be a table", self.source));
                continue;
            };
            for key in t.keys() {
                if !keys.contains(&key.as_str()) {
                    errors.push(format!("{}: unknown key {section}.{key}", self.source));
                }
            }
        }
        for name in self.env.keys() {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Not settings: the config path, and the hand-over's ready pipe.
            if rest == "CONFIG" || rest == "READY_FD" {
                continue;
            }
            let known = KEYS.iter().any(|(s, keys)| {
                keys.iter()
                    .any(|k| format!("{s}_{k}").eq_ignore_ascii_case(rest))
            });
            if !known {
                errors.push(format!("environment: unknown setting {name}"));
            }
        }
        self.errors.extend(errors);
    }

    fn raw(&self, section: &str, key: &str) -> Option<Raw> {
        let var = format!("{ENV_PREFIX}{}_{}", section, key).to_ascii_uppercase();
        if let Some(v) = self.env.get(&var) {
            return Some(Raw::Env(v.clone(), var));
        }
        self.table
            .get(section)
            .and_then(|s| s.as_table())
            .and_then(|t| t.get(key))
            .map(|v| Raw::File(v.clone()))
    }

    /// Record an error naming where the value came from; secrets are masked.
    fn bad(&mut self, section: &str, key: &str, raw: &Raw, why: &str) {
        let shown = |v: String| {
            if is_secret(section, key) {
                "***".to_string()
            } else {
                v
            }
        };
        let line = match raw {
            Raw::File(v) => format!(
                "{}: {section}.{key} = {}: {why}",
                self.source,
                shown(v.to_string())
            ),
            Raw::Env(v, var) => format!("environment: {var}={}: {why}", shown(format!("{v:?}"))),
        };
        self.errors.push(line);
    }

    fn bad_listen(&mut self, key: &str, why: &str) {
        match self.raw("listen", key) {
            Some(raw) => self.bad("listen", key, &raw, why),
            None => self
                .errors
                .push(format!("{}: listen.{key}: {why}", self.source)),
        }
    }

    fn string(&mut self, section: &str, key: &str) -> Option<String> {
        let raw = self.raw(section, key)?;
        match &raw {
            Raw::Env(v, _) => Some(v.clone()),
            Raw::File(toml::Value::String(s)) => Some(s.clone()),
            Raw::File(_) => {
                self.bad(section, key, &raw, "expected a string");
                None
            }
        }
    }

    fn list(&mut self, section: &str, key: &str) -> Option<Vec<String>> {
        let raw = self.raw(section, key)?;
        let out = match &raw {
            Raw::Env(v, _) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Raw::File(toml::Value::String(s)) => vec![s.clone()],
            Raw::File(toml::Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => {
                            self.bad(section, key, &raw, "expected a list of strings");
                            return None;
                        }
                    }
                }
                out
            }
            Raw::File(_) => {
                self.bad(section, key, &raw, "expected a string or a list of strings");
                return None;
            }
        };
        Some(out)
    }

    fn parsed<T>(
        &mut self,
        section: &str,
        key: &str,
        default: T,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
        from_int: impl Fn(i64) -> Option<T>,
    ) -> T {
        let Some(raw) = self.raw(section, key) else {
            return default;
        };
        let got = match &raw {
            Raw::Env(v, _) => parse(v.trim()),
            Raw::File(toml::Value::String(s)) => parse(s.trim()),
            Raw::File(toml::Value::Integer(i)) => from_int(*i),
            Raw::File(_) => None,
        };
        match got {
            Some(v) => v,
            None => {
                self.bad(section, key, &raw, &format!("expected {what}"));
                default
            }
        }
    }

    /// A duration of at most [`MAX_DURATION`].
    fn duration(&mut self, section: &str, key: &str, default: Duration) -> Duration {
        self.bounded_duration(section, key, default, MAX_DURATION)
    }

    fn bounded_duration(
        &mut self,
        section: &str,
        key: &str,
        default: Duration,
        max: Duration,
    ) -> Duration {
        let d = self.parsed(
            section,
            key,
            default,
            "a duration such as \"500ms\", \"2s\" or \"1m\"",
            parse_duration,
            // A bare integer in a duration field is ambiguous: refuse it.
            |_| None,
        );
        if d <= max {
            return d;
        }
        // Out of range: report it and go on with the default, so later checks that
        // add durations together only ever see sane values.
        if let Some(raw) = self.raw(section, key) {
            // Both bounds are whole days; "1d" reads better than humantime's "1day".
            let why = format!("must be at most {}d", max.as_secs() / 86400);
            self.bad(section, key, &raw, &why);
        }
        default
    }

    /// Zero would make every attempt fail at once: say so instead.
    fn nonzero(&mut self, section: &str, key: &str, d: Duration) {
        if d.is_zero() {
            if let Some(raw) = self.raw(section, key) {
                self.bad(section, key, &raw, "must be more than 0");
            }
        }
    }

    fn number(&mut self, section: &str, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let what = format!("a whole number from {min} to {max}");
        self.parsed(
            section,
            key,
            default,
            &what,
            |s| s.parse::<u64>().ok().filter(|n| (min..=max).contains(n)),
            |i| u64::try_from(i).ok().filter(|n| (min..=max).contains(n)),
        )
    }

    fn boolean(&mut self, section: &str, key: &str, default: bool) -> bool {
        let Some(raw) = self.raw(section, key) else {
            return default;
        };
        let got = match &raw {
            Raw::Env(v, _) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            Raw::File(toml::Value::Boolean(b)) => Some(*b),
            Raw::File(_) => None,
        };
        match got {
            Some(b) => b,
            None => {
                self.bad(section, key, &raw, "expected true or false");
                default
            }
        }
    }

    fn addresses(&mut self, key: &str, default: &[&str]) -> Vec<SocketAddr> {
        let items = self
            .list("listen", key)
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for item in items {
            match item.parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                Err(_) => {
                    let why = format!("{item:?} is not an address:port such as \"127.0.0.1:9200\" or \"[::1]:9200\"");
                    self.bad_listen(key, &why);
                }
            }
        }
        out
    }

    fn networks(&mut self, key: &str, default: &[&str]) -> Vec<IpNet> {
        let items = self
            .list("listen", key)
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for item in items {
            // A bare address means that one host.
            let parsed = item
                .parse::<IpNet>()
                .ok()
                .or_else(|| item.parse::<IpAddr>().ok().map(IpNet::from));
            match parsed {
                Some(n) => out.push(n.trunc()),
                None => {
                    let why = format!("{item:?} is not a network such as \"10.0.0.0/8\"");
                    self.bad_listen(key, &why);
                }
            }
        }
        out
    }

    fn path(&mut self, section: &str, key: &str) -> Option<PathBuf> {
        self.string(section, key)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    fn build(&mut self) -> Config {
        let listen = self.build_listen();
        let mysql = self.build_mysql();
        let check = self.build_check(mysql.connect_timeout);
        let agent = self.build_agent(&check);
        let log = self.build_log();
        Config {
            source: self.source.clone(),
            listen,
            mysql,
            check,
            agent,
            log,
        }
    }

    fn build_listen(&mut self) -> Listen {
        let http = self.addresses("http", &["0.0.0.0:9200"]);
        let agent = self.addresses("agent", &[]);
        let allow_given = self.raw("listen", "allow").is_some();
        let allow = self.networks("allow", &["127.0.0.0/8", "::1/128"]);
        let admin_allow = self.networks("admin_allow", &["127.0.0.0/8", "::1/128"]);
        let exposed: Vec<String> = http
            .iter()
            .chain(agent.iter())
            .filter(|a| !a.ip().is_loopback())
            .map(|a| a.to_string())
            .collect();
        if !allow_given && !exposed.is_empty() {
            self.errors.push(format!(
                "{}: listen.allow is required when a listener is not loopback ({}); \
                 to admit everyone say allow = [\"0.0.0.0/0\", \"::/0\"]",
                self.source,
                exposed.join(", ")
            ));
        }
        let mut seen: Vec<SocketAddr> = Vec::new();
        for a in http.iter().chain(agent.iter()) {
            if seen.contains(a) {
                self.errors.push(format!(
                    "{}: listen address {a} is given twice (listen.http and listen.agent need their own ports)",
                    self.source
                ));
            }
            seen.push(*a);
        }
        if http.is_empty() && agent.is_empty() {
            self.errors.push(format!(
                "{}: listen.http and listen.agent are both empty: nothing to serve",
                self.source
            ));
        }
        Listen {
            http,
            agent,
            allow,
            admin_allow,
            max_connections: self.number("listen", "max_connections", 4096, 1, 1_000_000) as usize,
            max_connections_per_ip: self.number(
                "listen",
                "max_connections_per_ip",
                64,
                1,
                1_000_000,
            ) as usize,
            request_timeout: {
                let d = self.duration("listen", "request_timeout", Duration::from_secs(2));
                self.nonzero("listen", "request_timeout", d);
                d
            },
        }
    }

    fn build_mysql(&mut self) -> Mysql {
        let host = self.string("mysql", "host");
        let socket = self.path("mysql", "socket");
        let port = self.number("mysql", "port", 3306, 1, 65535) as u16;
        let target = match (socket, host) {
            (Some(s), _) => Target::Socket(s),
            // As for the mysql client: "localhost" means the Unix socket.
            (None, Some(h)) if h == "localhost" => {
                Target::Socket(PathBuf::from("/run/mysqld/mysqld.sock"))
            }
            (None, Some(h)) if h.is_empty() => {
                self.errors
                    .push(format!("{}: mysql.host is empty", self.source));
                Target::Tcp {
                    host: "127.0.0.1".into(),
                    port,
                }
            }
            (None, h) => Target::Tcp {
                host: h.unwrap_or_else(|| "127.0.0.1".into()),
                port,
            },
        };
        let user = self
            .string("mysql", "user")
            .unwrap_or_else(|| "mysqlchk".into());
        let inline = self.string("mysql", "password").map(Secret::new);
        if inline.is_some() && matches!(self.raw("mysql", "password"), Some(Raw::File(_))) {
            // Accepted so that an existing file keeps working, but said out loud: the
            // config is usually world- or group-readable (README, "Credentials").
            self.warnings.push(format!(
                "mysql.password in {}: a password in the config file is readable by whoever \
                 reads the config; prefer password_file, LoadCredential or \
                 MYSQLCHK_MYSQL_PASSWORD",
                self.source
            ));
        }
        let password_file = self.path("mysql", "password_file");
        let defaults_file = self.path("mysql", "defaults_file");
        if password_file.is_some() && defaults_file.is_some() {
            self.errors.push(format!(
                "{}: mysql.password_file and mysql.defaults_file are both set: choose one",
                self.source
            ));
        }
        let credentials = if let Some(s) = inline {
            Credentials::Inline(s)
        } else if let Some(p) = password_file {
            self.check_password_file(&p, "mysql.password_file");
            Credentials::PasswordFile(p)
        } else if let Some(p) = defaults_file {
            if let Err(e) = crate::config::mycnf::load(&p) {
                self.errors
                    .push(format!("{}: mysql.defaults_file: {e}", self.source));
            }
            self.check_permissions(&p, "mysql.defaults_file");
            Credentials::DefaultsFile(p)
        } else if let Some(dir) = self.env.get("CREDENTIALS_DIRECTORY") {
            let p = Path::new(dir).join("password");
            if p.exists() {
                Credentials::PasswordFile(p)
            } else {
                Credentials::None
            }
        } else {
            Credentials::None
        };
        let connect_timeout = self.duration("mysql", "connect_timeout", Duration::from_secs(1));
        self.nonzero("mysql", "connect_timeout", connect_timeout);
        let ssl_mode = self.parsed(
            "mysql",
            "ssl_mode",
            SslMode::Preferred,
            "one of disabled, preferred, required, verify_ca, verify_identity",
            SslMode::parse,
            |_| None,
        );
        let ssl_ca = self.path("mysql", "ssl_ca");
        let ssl_cert = self.path("mysql", "ssl_cert");
        let ssl_key = self.path("mysql", "ssl_key");
        for (key, p) in [
            ("ssl_ca", &ssl_ca),
            ("ssl_cert", &ssl_cert),
            ("ssl_key", &ssl_key),
        ] {
            if let Some(p) = p {
                if std::fs::metadata(p).is_err() {
                    self.errors.push(format!(
                        "{}: mysql.{key} = {:?}: cannot read the file",
                        self.source,
                        p.display().to_string()
                    ));
                }
            }
        }
        if ssl_cert.is_some() != ssl_key.is_some() {
            self.errors.push(format!(
                "{}: mysql.ssl_cert and mysql.ssl_key go together",
                self.source
            ));
        }
        if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && ssl_ca.is_none() {
            self.errors.push(format!(
                "{}: mysql.ssl_mode = {} needs mysql.ssl_ca",
                self.source,
                ssl_mode.as_str()
            ));
        }
        if matches!(target, Target::Socket(_)) && ssl_mode != SslMode::Disabled {
            // TLS over a Unix socket buys nothing; the driver would try it anyway.
        }
        Mysql {
            target,
            user,
            credentials,
            connect_timeout,
            ssl_mode,
            ssl_ca,
            ssl_cert,
            ssl_key,
        }
    }

    fn check_password_file(&mut self, p: &Path, key: &str) {
        use crate::smallfile::{self, Links};
        // Bounded and non-blocking as the reads before each connect: a FIFO here
        // would otherwise hang the start, or a reload on the daemon's runtime.
        let problem = match smallfile::read(p, secret::MAX_PASSWORD_FILE, Links::Follow) {
            Ok(_) => return self.check_permissions(p, key),
            Err(smallfile::Error::Io(e)) => format!("cannot read: {e}"),
            Err(e) => e.to_string(),
        };
        self.errors.push(format!(
            "{}: {key} = {:?}: {problem}",
            self.source,
            p.display().to_string()
        ));
    }

    fn check_permissions(&mut self, p: &Path, key: &str) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(p) {
            if m.permissions().mode() & 0o044 != 0 {
                self.warnings.push(format!(
                    "{key} {} is readable by group or others (mode {:o}): chmod 600 it",
                    p.display(),
                    m.permissions().mode() & 0o777
                ));
            }
        }
    }

    fn build_check(&mut self, connect_timeout: Duration) -> Check {
        let before = self.errors.len();
        let interval = self.duration("check", "interval", Duration::from_secs(1));
        let timeout = self.duration("check", "timeout", Duration::from_secs(1));
        let stale_after = self.duration("check", "stale_after", Duration::from_secs(5));
        // A value already reported stands in as its default: comparing that default
        // with the other settings would only add confusing errors.
        let comparable = self.errors.len() == before;
        if interval < Duration::from_millis(10) {
            self.errors.push(format!(
                "{}: check.interval = {}: must be at least 10ms",
                self.source,
                fmt_duration(interval)
            ));
        }
        if comparable && (timeout.is_zero() || timeout > interval) {
            self.errors.push(format!(
                "{}: check.timeout = {}: must be more than 0 and at most check.interval ({})",
                self.source,
                fmt_duration(timeout),
                fmt_duration(interval)
            ));
        }
        // A round that waits its whole connect or step timeout must still publish
        // before the snapshot counts as stale, or a slow but alive server reads as a
        // stuck checker.
        let round = interval.saturating_add(timeout.max(connect_timeout));
        if comparable && stale_after <= round {
            self.errors.push(format!(
                "{}: check.stale_after = {}: must exceed check.interval + the larger of \
                 check.timeout and mysql.connect_timeout ({})",
                self.source,
                fmt_duration(stale_after),
                fmt_duration(round)
            ));
        }
        let query = self
            .string("check", "query")
            .unwrap_or_else(|| "SELECT 1".into());
        if query.trim().is_empty() {
            self.errors
                .push(format!("{}: check.query is empty", self.source));
        }
        let maintenance_status = self.number("check", "maintenance_status", 404, 100, 599) as u16;
        if !matches!(maintenance_status, 404 | 503) {
            self.errors.push(format!(
                "{}: check.maintenance_status = {maintenance_status}: must be 404 or 503",
                self.source
            ));
        }
        let max_replication_lag = self.bounded_duration(
            "check",
            "max_replication_lag",
            Duration::from_secs(30),
            MAX_LAG,
        );
        // Unset, it follows the bound (half of it), so changing the bound alone never
        // makes the config invalid.
        let lag_recover =
            self.bounded_duration("check", "lag_recover", max_replication_lag / 2, MAX_LAG);
        if lag_recover > max_replication_lag {
            self.errors.push(format!(
                "{}: check.lag_recover = {}: must not exceed check.max_replication_lag ({})",
                self.source,
                fmt_duration(lag_recover),
                fmt_duration(max_replication_lag)
            ));
        }
        Check {
            interval,
            timeout,
            stale_after,
            query,
            max_replication_lag,
            lag_recover,
            recover_rounds: self.number("check", "recover_rounds", 3, 1, 1000) as u32,
            lag_samples: self.number("check", "lag_samples", 3, 1, 15) as u32,
            full_grace: self.bounded_duration(
                "check",
                "full_grace",
                Duration::from_secs(30),
                MAX_DURATION,
            ),
            replication_channels: self
                .list("check", "replication_channels")
                .unwrap_or_default(),
            primary_allows_replication: self.boolean("check", "primary_allows_replication", false),
            gr_max_applier_queue: self.number("check", "gr_max_applier_queue", 0, 0, u64::MAX >> 1),
            galera_donor_is_healthy: self.boolean("check", "galera_donor_is_healthy", false),
            maintenance_file: self
                .path("check", "maintenance_file")
                .unwrap_or_else(|| PathBuf::from("/var/lib/mysqlchk/maintenance")),
            maintenance_status,
        }
    }

    fn build_agent(&mut self, check: &Check) -> Agent {
        let default_role = self.parsed(
            "agent",
            "default_role",
            Role::Health,
            "a role: health, primary, replica or read-only",
            Role::parse,
            |_| None,
        );
        let maintenance = self.parsed(
            "agent",
            "maintenance",
            AgentMaintenance::Drain,
            "drain or maint",
            |s| match s {
                "drain" => Some(AgentMaintenance::Drain),
                "maint" => Some(AgentMaintenance::Maint),
                _ => None,
            },
            |_| None,
        );
        // Unset, the soft bound follows a tight hard bound down (10 s, or a third of
        // it), so lowering max_replication_lag alone never makes the config invalid.
        let explicit = self.raw("agent", "soft_lag").is_some();
        let default_soft = Duration::from_secs(10).min(check.max_replication_lag / 3);
        let soft_lag = self.bounded_duration("agent", "soft_lag", default_soft, MAX_LAG);
        if explicit && soft_lag > check.max_replication_lag {
            self.errors.push(format!(
                "{}: agent.soft_lag = {}: must not exceed check.max_replication_lag ({})",
                self.source,
                fmt_duration(soft_lag),
                fmt_duration(check.max_replication_lag)
            ));
        }
        let min_weight = self.parsed(
            "agent",
            "min_weight",
            10u8,
            "a percentage from 1% to 100%",
            |s| {
                s.strip_suffix('%')
                    .unwrap_or(s)
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
            },
            |i| u8::try_from(i).ok().filter(|n| (1..=100).contains(n)),
        );
        Agent {
            default_role,
            maintenance,
            soft_lag,
            min_weight,
            ramp: self.duration("agent", "ramp", Duration::from_secs(10)),
        }
    }

    fn build_log(&mut self) -> Log {
        let level = self.parsed(
            "log",
            "level",
            "info".to_string(),
            "one of error, warn, info, debug, trace",
            |s| {
                let s = s.to_ascii_lowercase();
                ["error", "warn", "info", "debug", "trace"]
                    .contains(&s.as_str())
                    .then_some(s)
            },
            |_| None,
        );
        let format = self.parsed(
            "log",
            "format",
            LogFormat::Text,
            "text or json",
            |s| match s {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            },
            |_| None,
        );
        Log {
            level,
            format,
            access_log: self.boolean("log", "access_log", false),
        }
    }
}

/// `"500ms"`, `"2s"`, `"1m 30s"`; also a bare number of seconds (`"10"`, as HAProxy's
/// `agent-send`/query parameters use).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    // humantime checks most of its arithmetic but can still panic in `Duration::new`
    // when a sum lands next to u64::MAX seconds ("18446744073709551615s 500ms 500ms").
    // Refuse input whose numbers, each read in the largest unit (a year), could add up
    // to anywhere near that: no sane duration comes close.
    let mut total: u64 = 0;
    for run in s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
    {
        let n = run.parse::<u64>().ok()?;
        total = total.checked_add(n.checked_mul(31_557_600)?)?;
        if total > 1 << 62 {
            return None;
        }
    }
    humantime::parse_duration(s).ok()
}

/// Short human form: `1s`, `500ms`, `1m 30s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Config {
    /// The effective settings, secrets masked, as `validate` prints them.
    pub(crate) fn render(&self) -> String {
        let list = |v: &[String]| {
            format!(
                "[{}]",
                v.iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let addrs = |v: &[SocketAddr]| list(&v.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let nets = |v: &[IpNet]| list(&v.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let d = |d: Duration| format!("{:?}", fmt_duration(d));
        let l = &self.listen;
        let m = &self.mysql;
        let c = &self.check;
        let a = &self.agent;
        let mut out = format!("# effective settings from {}\n", self.source);
        out += &format!(
            "[listen]\nhttp = {}\nagent = {}\nallow = {}\nadmin_allow = {}\nmax_connections = {}\nmax_connections_per_ip = {}\nrequest_timeout = {}\n\n",
            addrs(&l.http),
            addrs(&l.agent),
            nets(&l.allow),
            nets(&l.admin_allow),
            l.max_connections,
            l.max_connections_per_ip,
            d(l.request_timeout)
        );
        out += "[mysql]\n";
        match &m.target {
            Target::Tcp { host, port } => out += &format!("host = {host:?}\nport = {port}\n"),
            Target::Socket(p) => out += &format!("socket = {:?}\n", p.display().to_string()),
        }
        out += &format!("user = {:?}\n", m.user);
        match &m.credentials {
            Credentials::None => out += "# no password configured\n",
            Credentials::Inline(_) => out += "password = \"***\"\n",
            Credentials::PasswordFile(p) => {
                out += &format!("password_file = {:?}\n", p.display().to_string())
            }
            Credentials::DefaultsFile(p) => {
                out += &format!("defaults_file = {:?}\n", p.display().to_string())
            }
        }
        out += &format!(
            "connect_timeout = {}\nssl_mode = {:?}\n",
            d(m.connect_timeout),
            m.ssl_mode.as_str()
        );
        for (k, v) in [
            ("ssl_ca", &m.ssl_ca),
            ("ssl_cert", &m.ssl_cert),
            ("ssl_key", &m.ssl_key),
        ] {
            if let Some(p) = v {
                out += &format!("{k} = {:?}\n", p.display().to_string());
            }
        }
        out += &format!(
            "\n[check]\ninterval = {}\ntimeout = {}\nstale_after = {}\nquery = {:?}\nmax_replication_lag = {}\nreplication_channels = {}\nprimary_allows_replication = {}\ngr_max_applier_queue = {}\ngalera_donor_is_healthy = {}\nmaintenance_file = {:?}\nmaintenance_status = {}\nlag_recover = {}\nrecover_rounds = {}\nlag_samples = {}\nfull_grace = {}\n",
            d(c.interval),
            d(c.timeout),
            d(c.stale_after),
            c.query,
            d(c.max_replication_lag),
            list(&c.replication_channels),
            c.primary_allows_replication,
            c.gr_max_applier_queue,
            c.galera_donor_is_healthy,
            c.maintenance_file.display().to_string(),
            c.maintenance_status,
            d(c.lag_recover),
            c.recover_rounds,
            c.lag_samples,
            d(c.full_grace)
        );
        out += &format!(
            "\n[agent]\ndefault_role = {:?}\nmaintenance = {:?}\nsoft_lag = {}\nmin_weight = \"{}%\"\nramp = {}\n",
            a.default_role.name(),
            match a.maintenance {
                AgentMaintenance::Drain => "drain",
                AgentMaintenance::Maint => "maint",
            },
            d(a.soft_lag),
            a.min_weight,
            d(a.ramp)
        );
        out += &format!(
            "\n[log]\nlevel = {:?}\nformat = {:?}\naccess_log = {}\n",
            self.log.level,
            match self.log.format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
            self.log.access_log
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const LOOPBACK: &str = "[listen]\nhttp = \"127.0.0.1:9200\"\n";

    fn ok(text: &str, e: &[(&str, &str)]) -> Config {
        match from_str(text, "t.toml", &env(e)) {
            Ok(l) => l.config,
            Err(e) => panic!("unexpected errors: {e}"),
        }
    }

    fn errs(text: &str, e: &[(&str, &str)]) -> Vec<String> {
        match from_str(text, "t.toml", &env(e)) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn defaults_on_loopback() {
        let c = ok(LOOPBACK, &[]);
        assert_eq!(c.check.interval, Duration::from_secs(1));
        assert_eq!(c.check.stale_after, Duration::from_secs(5));
        assert_eq!(c.check.query, "SELECT 1");
        assert_eq!(
            c.mysql.target,
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 3306
            }
        );
        assert_eq!(c.mysql.user, "mysqlchk");
        assert_eq!(c.check.maintenance_status, 404);
        assert_eq!(c.agent.min_weight, 10);
        assert_eq!(c.check.lag_recover, Duration::from_secs(15));
        assert_eq!(c.check.recover_rounds, 3);
        assert_eq!(c.check.lag_samples, 3);
        assert_eq!(c.check.full_grace, Duration::from_secs(30));
        assert_eq!(c.agent.ramp, Duration::from_secs(10));
    }

    #[test]
    fn lag_recover_follows_the_bound_and_stays_below_it() {
        let c = ok(
            &format!("{LOOPBACK}[check]\nmax_replication_lag = \"10s\"\n"),
            &[],
        );
        assert_eq!(c.check.lag_recover, Duration::from_secs(5));
        let e = errs(
            &format!("{LOOPBACK}[check]\nmax_replication_lag = \"10s\"\nlag_recover = \"11s\"\n"),
            &[],
        );
        assert!(
            e[0].contains("check.lag_recover = 11s: must not exceed"),
            "{e:?}"
        );
        let e = errs(
            &format!("{LOOPBACK}[check]\nlag_samples = 0\nrecover_rounds = 0\n"),
            &[],
        );
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn public_listener_needs_allow() {
        let e = errs("", &[]);
        assert!(e[0].contains("listen.allow is required"), "{e:?}");
        let c = ok("[listen]\nallow = [\"10.0.0.0/8\"]\n", &[]);
        assert_eq!(c.listen.http, vec!["0.0.0.0:9200".parse().unwrap()]);
    }

    #[test]
    fn environment_wins_and_lists_split_on_commas() {
        let c = ok(
            "[listen]\nhttp = \"127.0.0.1:1\"\n[check]\ninterval = \"2s\"\n",
            &[
                ("MYSQLCHK_CHECK_INTERVAL", "500ms"),
                ("MYSQLCHK_CHECK_TIMEOUT", "400ms"),
                ("MYSQLCHK_LISTEN_HTTP", "127.0.0.1:9300, [::1]:9300"),
                ("MYSQLCHK_MYSQL_PORT", "3307"),
            ],
        );
        assert_eq!(c.check.interval, Duration::from_millis(500));
        assert_eq!(c.listen.http.len(), 2);
        assert_eq!(
            c.mysql.target,
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 3307
            }
        );
    }

    #[test]
    fn every_error_at_once_naming_key_and_value() {
        let e = errs(
            "[listen]\nhttp = \"127.0.0.1:9200\"\nbogus = 1\n[check]\ninterval = \"fast\"\nmaintenance_status = 200\n[mysql]\nport = 70000\n",
            &[("MYSQLCHK_CHECK_QUERY", "")],
        );
        let all = e.join("\n");
        assert!(all.contains("unknown key listen.bogus"), "{all}");
        assert!(all.contains("check.interval = \"fast\""), "{all}");
        assert!(all.contains("mysql.port = 70000"), "{all}");
        assert!(all.contains("maintenance_status"), "{all}");
        assert!(all.contains("check.query is empty"), "{all}");
        assert!(e.len() >= 5);
        assert!(e.iter().all(|l| !l.contains('\n')));
    }

    #[test]
    fn one_address_one_listener() {
        let e = errs(
            "[listen]\nhttp = \"127.0.0.1:9200\"\nagent = \"127.0.0.1:9200\"\n",
            &[],
        );
        assert!(e[0].contains("127.0.0.1:9200 is given twice"), "{e:?}");
    }

    #[test]
    fn timing_invariants() {
        let e = errs(
            &format!(
                "{LOOPBACK}[check]\ninterval = \"1s\"\ntimeout = \"2s\"\nstale_after = \"1s\"\n"
            ),
            &[],
        );
        assert!(e.iter().any(|l| l.contains("check.timeout")), "{e:?}");
        assert!(e.iter().any(|l| l.contains("check.stale_after")), "{e:?}");
    }

    #[test]
    fn secret_values_never_echoed() {
        let e = errs(&format!("{LOOPBACK}[mysql]\npassword = 12345\n"), &[]);
        assert!(e[0].contains("mysql.password = ***"), "{e:?}");
        assert!(!e.join("").contains("12345"));
        let c = ok(LOOPBACK, &[("MYSQLCHK_MYSQL_PASSWORD", "s3cret-pw")]);
        assert!(!c.render().contains("s3cret-pw"));
        assert!(!format!("{c:?}").contains("s3cret-pw"));
    }

    #[test]
    fn unknown_environment_setting_is_an_error() {
        let e = errs(LOOPBACK, &[("MYSQLCHK_CHECK_INTERVALL", "1s")]);
        assert!(e[0].contains("MYSQLCHK_CHECK_INTERVALL"), "{e:?}");
    }

    #[test]
    fn localhost_means_socket() {
        let c = ok(&format!("{LOOPBACK}[mysql]\nhost = \"localhost\"\n"), &[]);
        assert_eq!(
            c.mysql.target,
            Target::Socket("/run/mysqld/mysqld.sock".into())
        );
    }

    #[test]
    fn toml_syntax_error_is_one_line_with_line_number() {
        let e = errs("[listen]\nhttp = \n", &[]);
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t.toml (line 2)"), "{e:?}");
    }

    #[test]
    fn password_file_permissions_warn() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "pw\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "{LOOPBACK}[mysql]\npassword_file = {:?}\n",
            p.display().to_string()
        );
        let l = from_str(&text, "t.toml", &BTreeMap::new()).unwrap();
        assert!(l.warnings[0].contains("readable by group or others"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let l = from_str(&text, "t.toml", &BTreeMap::new()).unwrap();
        assert!(l.warnings.is_empty());
        let missing = format!("{LOOPBACK}[mysql]\npassword_file = \"/nonexistent/pw\"\n");
        assert!(errs(&missing, &[])[0].contains("cannot read"));
        // A FIFO is refused at once (a blocking open would wait for a writer forever).
        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let text = format!(
            "{LOOPBACK}[mysql]\npassword_file = {:?}\n",
            fifo.display().to_string()
        );
        let e = errs(&text, &[]);
        assert!(e[0].ends_with("is not a regular file (a FIFO)"), "{e:?}");
    }

    #[test]
    fn absurd_durations_are_errors_not_panics() {
        let huge = "\"18446744073709551615\"";
        let e = errs(
            &format!("{LOOPBACK}[check]\ninterval = {huge}\ntimeout = {huge}\n"),
            &[],
        );
        assert_eq!(
            e,
            vec![
                format!("t.toml: check.interval = {huge}: must be at most 1d"),
                format!("t.toml: check.timeout = {huge}: must be at most 1d"),
            ]
        );
        let e = errs(&format!("{LOOPBACK}[check]\ninterval = \"100y\"\n"), &[]);
        assert_eq!(
            e,
            vec!["t.toml: check.interval = \"100y\": must be at most 1d"]
        );
        // Every duration key, from the environment too.
        for (var, max) in [
            ("MYSQLCHK_LISTEN_REQUEST_TIMEOUT", "1d"),
            ("MYSQLCHK_MYSQL_CONNECT_TIMEOUT", "1d"),
            ("MYSQLCHK_CHECK_INTERVAL", "1d"),
            ("MYSQLCHK_CHECK_TIMEOUT", "1d"),
            ("MYSQLCHK_CHECK_STALE_AFTER", "1d"),
            ("MYSQLCHK_CHECK_MAX_REPLICATION_LAG", "30d"),
            ("MYSQLCHK_AGENT_SOFT_LAG", "30d"),
        ] {
            let e = errs(LOOPBACK, &[(var, "9223372036854775807")]);
            assert!(
                e.contains(&format!(
                    "environment: {var}=\"9223372036854775807\": must be at most {max}"
                )),
                "{var}: {e:?}"
            );
        }
        // A day is fine for the lag bound.
        ok(
            &format!("{LOOPBACK}[check]\nmax_replication_lag = \"2d\"\n"),
            &[],
        );
    }

    #[test]
    fn zero_timeouts_are_errors() {
        for (section, key) in [
            ("listen", "request_timeout"),
            ("mysql", "connect_timeout"),
            ("check", "timeout"),
            ("check", "interval"),
        ] {
            let var = format!("MYSQLCHK_{section}_{key}").to_ascii_uppercase();
            let e = errs(LOOPBACK, &[(var.as_str(), "0s")]);
            let named = |l: &String| l.contains(&var) || l.contains(&format!("{section}.{key}"));
            assert!(
                e.iter().any(|l| named(l)
                    && (l.contains("more than 0") || l.contains("at least 10ms"))),
                "{var}: {e:?}"
            );
        }
    }

    #[test]
    fn stale_after_covers_the_connect_timeout() {
        let e = errs(
            &format!(
                "{LOOPBACK}[mysql]\nconnect_timeout = \"5s\"\n[check]\nstale_after = \"5s\"\n"
            ),
            &[],
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t.toml: check.stale_after = 5s: must exceed")
                && e[0].contains("mysql.connect_timeout (6s)"),
            "{e:?}"
        );
        ok(
            &format!(
                "{LOOPBACK}[mysql]\nconnect_timeout = \"5s\"\n[check]\nstale_after = \"7s\"\n"
            ),
            &[],
        );
    }

    #[test]
    fn password_in_the_file_is_a_warning() {
        let l = from_str(
            &format!("{LOOPBACK}[mysql]\npassword = \"in-file-pw\"\n"),
            "t.toml",
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(matches!(l.config.mysql.credentials, Credentials::Inline(_)));
        assert_eq!(
            l.warnings,
            vec![
                "mysql.password in t.toml: a password in the config file is readable by \
                 whoever reads the config; prefer password_file, LoadCredential or \
                 MYSQLCHK_MYSQL_PASSWORD"
            ]
        );
        assert!(!l.warnings.join("").contains("in-file-pw"));
        let l = from_str(
            LOOPBACK,
            "t.toml",
            &env(&[("MYSQLCHK_MYSQL_PASSWORD", "env-pw")]),
        )
        .unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn huge_durations_do_not_overflow() {
        // humantime alone panics on this one (Duration::new overflows).
        assert_eq!(parse_duration("18446744073709551615s 500ms 500ms"), None);
        assert_eq!(parse_duration("584542046090y"), None);
        assert_eq!(
            parse_duration("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100y").map(|d| d > MAX_DURATION), Some(true));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration(""), None);
    }
}
