//! The rules of each section: read its keys (defaults from the schema in
//! `config/mod.rs`) and check what the values mean together.
//!
//! Invariants:
//! - a section reads each of its keys exactly once per load and no key outside the
//!   schema (a unit test holds this);
//! - a value already reported as bad stands in as its default, and cross-key checks
//!   skip it rather than pile confusing errors on top;
//! - files named by the config are only checked here (exist, readable, modes), with the
//!   same bounded non-blocking read as at every connect.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::{fmt_duration, MAX_LAG};
use super::reader::{Raw, Reader};
use super::secret::{self, Secret};
use super::{
    Agent, AgentMaintenance, Check, Config, Credentials, Listen, Log, LogFormat, Mysql, SslMode,
    Target,
};
use crate::role::Role;

impl Reader<'_> {
    pub(super) fn build(&mut self) -> Config {
        let listen = self.build_listen();
        let mysql = self.build_mysql();
        let check = self.build_check(mysql.connect_timeout);
        let agent = self.build_agent(&check);
        let log = self.build_log();
        let haproxy = super::haproxy::read(
            self.table.get("haproxy"),
            &self.source,
            check.interval,
            &mut self.errors,
            &mut self.warnings,
        );
        let discover =
            super::discover::read(self.table.get("discover"), &self.source, &mut self.errors);
        Config {
            source: self.source.clone(),
            listen,
            mysql,
            check,
            agent,
            log,
            haproxy,
            targets: Vec::new(),
            discover,
        }
    }

    fn build_listen(&mut self) -> Listen {
        let http = self.addresses("http", Listen::DEFAULT_HTTP);
        let agent = self.addresses("agent", Listen::DEFAULT_AGENT);
        let allow_given = self.raw("listen", "allow").is_some();
        let allow = self.networks("allow", Listen::DEFAULT_ALLOW);
        let admin_allow = self.networks("admin_allow", Listen::DEFAULT_ADMIN_ALLOW);
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
        let mut seen: Vec<std::net::SocketAddr> = Vec::new();
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
            max_connections: self.number(
                "listen",
                "max_connections",
                Listen::DEFAULT_MAX_CONNECTIONS,
                1,
                1_000_000,
            ) as usize,
            max_connections_per_ip: self.number(
                "listen",
                "max_connections_per_ip",
                Listen::DEFAULT_MAX_CONNECTIONS_PER_IP,
                1,
                1_000_000,
            ) as usize,
            request_timeout: {
                let d = self.duration("listen", "request_timeout", Listen::DEFAULT_REQUEST_TIMEOUT);
                self.nonzero("listen", "request_timeout", d);
                d
            },
            tls: self.build_listen_tls(),
        }
    }

    /// `listen.tls_cert` and `listen.tls_key` (both or neither), `listen.tls_client_ca`
    /// (only with them); the files are read and the pair checked now, so a bad pair
    /// fails the start, `validate`, or the reload (README, "HTTPS").
    fn build_listen_tls(&mut self) -> Option<super::ListenTls> {
        let cert = self.path("listen", "tls_cert");
        let key = self.path("listen", "tls_key");
        let client_ca = self.path("listen", "tls_client_ca");
        let (cert, key) = match (cert, key) {
            (Some(c), Some(k)) => (c, k),
            (None, None) => {
                if client_ca.is_some() {
                    self.errors.push(format!(
                        "{}: listen.tls_client_ca needs listen.tls_cert and listen.tls_key",
                        self.source
                    ));
                }
                return None;
            }
            (Some(_), None) => {
                self.errors.push(format!(
                    "{}: listen.tls_cert is set but listen.tls_key is missing (they go together)",
                    self.source
                ));
                return None;
            }
            (None, Some(_)) => {
                self.errors.push(format!(
                    "{}: listen.tls_key is set but listen.tls_cert is missing (they go together)",
                    self.source
                ));
                return None;
            }
        };
        match super::listen_tls::load(&cert, &key, client_ca.as_deref()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errors.push(format!("{}: {e}", self.source));
                None
            }
        }
    }

    fn build_mysql(&mut self) -> Mysql {
        let target = self.build_target();
        let user = self
            .string("mysql", "user")
            .unwrap_or_else(|| Mysql::DEFAULT_USER.into());
        let credentials = self.build_credentials();
        let connect_timeout =
            self.duration("mysql", "connect_timeout", Mysql::DEFAULT_CONNECT_TIMEOUT);
        self.nonzero("mysql", "connect_timeout", connect_timeout);
        let (ssl_mode, ssl_ca, ssl_cert, ssl_key) = self.build_tls();
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

    /// `mysql.socket`, else `mysql.host` and `mysql.port`.
    fn build_target(&mut self) -> Target {
        let host = self.string("mysql", "host");
        let socket = self.path("mysql", "socket");
        let port = self.number("mysql", "port", Mysql::DEFAULT_PORT, 1, 65535) as u16;
        match (socket, host) {
            (Some(s), _) => Target::Socket(s),
            // As for the mysql client: "localhost" means the Unix socket.
            (None, Some(h)) if h == "localhost" => {
                Target::Socket(PathBuf::from(Mysql::LOCALHOST_SOCKET))
            }
            (None, Some(h)) if h.is_empty() => {
                self.errors
                    .push(format!("{}: mysql.host is empty", self.source));
                Target::Tcp {
                    host: Mysql::DEFAULT_HOST.into(),
                    port,
                }
            }
            (None, h) => Target::Tcp {
                host: h.unwrap_or_else(|| Mysql::DEFAULT_HOST.into()),
                port,
            },
        }
    }

    /// `mysql.password`, `mysql.password_file`, `mysql.defaults_file`, else systemd's
    /// `$CREDENTIALS_DIRECTORY/password` (README, "Credentials").
    fn build_credentials(&mut self) -> Credentials {
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
        if let Some(s) = inline {
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
        }
    }

    /// `mysql.ssl_mode` and the CA, certificate and key files it may need.
    fn build_tls(&mut self) -> (SslMode, Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
        let ssl_mode = self.parsed(
            "mysql",
            "ssl_mode",
            Mysql::DEFAULT_SSL_MODE,
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
        (ssl_mode, ssl_ca, ssl_cert, ssl_key)
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
        let interval = self.duration("check", "interval", Check::DEFAULT_INTERVAL);
        let timeout = self.duration("check", "timeout", Check::DEFAULT_TIMEOUT);
        let stale_after = self.duration("check", "stale_after", Check::DEFAULT_STALE_AFTER);
        // A value already reported stands in as its default: comparing that default
        // with the other settings would only add confusing errors.
        let comparable = self.errors.len() == before;
        if interval < Check::MIN_INTERVAL {
            self.errors.push(format!(
                "{}: check.interval = {}: must be at least {}",
                self.source,
                fmt_duration(interval),
                fmt_duration(Check::MIN_INTERVAL)
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
            .unwrap_or_else(|| Check::DEFAULT_QUERY.into());
        if query.trim().is_empty() {
            self.errors
                .push(format!("{}: check.query is empty", self.source));
        }
        let maintenance_status = self.number(
            "check",
            "maintenance_status",
            Check::DEFAULT_MAINTENANCE_STATUS,
            100,
            599,
        ) as u16;
        if !matches!(maintenance_status, 404 | 503) {
            self.errors.push(format!(
                "{}: check.maintenance_status = {maintenance_status}: must be 404 or 503",
                self.source
            ));
        }
        let max_replication_lag = self.bounded_duration(
            "check",
            "max_replication_lag",
            Check::DEFAULT_MAX_REPLICATION_LAG,
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
            recover_rounds: self.number(
                "check",
                "recover_rounds",
                Check::DEFAULT_RECOVER_ROUNDS,
                1,
                Check::MAX_RECOVER_ROUNDS,
            ) as u32,
            lag_samples: self.number(
                "check",
                "lag_samples",
                Check::DEFAULT_LAG_SAMPLES,
                1,
                Check::MAX_LAG_SAMPLES,
            ) as u32,
            full_grace: self.duration("check", "full_grace", Check::DEFAULT_FULL_GRACE),
            replication_channels: self
                .list("check", "replication_channels")
                .unwrap_or_default(),
            primary_allows_replication: self.boolean(
                "check",
                "primary_allows_replication",
                Check::DEFAULT_PRIMARY_ALLOWS_REPLICATION,
            ),
            gr_max_applier_queue: self.number(
                "check",
                "gr_max_applier_queue",
                Check::DEFAULT_GR_MAX_APPLIER_QUEUE,
                0,
                u64::MAX >> 1,
            ),
            galera_donor_is_healthy: self.boolean(
                "check",
                "galera_donor_is_healthy",
                Check::DEFAULT_GALERA_DONOR_IS_HEALTHY,
            ),
            maintenance_file: self
                .path("check", "maintenance_file")
                .unwrap_or_else(|| PathBuf::from(Check::DEFAULT_MAINTENANCE_FILE)),
            maintenance_status,
        }
    }

    fn build_agent(&mut self, check: &Check) -> Agent {
        let default_role = self.parsed(
            "agent",
            "default_role",
            Agent::DEFAULT_ROLE,
            "a role: health, primary, replica or read-only",
            Role::parse,
            |_| None,
        );
        let maintenance = self.parsed(
            "agent",
            "maintenance",
            Agent::DEFAULT_MAINTENANCE,
            "drain or maint",
            AgentMaintenance::parse,
            |_| None,
        );
        // Unset, the soft bound follows a tight hard bound down (10 s, or a third of
        // it), so lowering max_replication_lag alone never makes the config invalid.
        let explicit = self.raw("agent", "soft_lag").is_some();
        let default_soft = Agent::DEFAULT_SOFT_LAG_CAP.min(check.max_replication_lag / 3);
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
            Agent::DEFAULT_MIN_WEIGHT,
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
            ramp: self.duration("agent", "ramp", Agent::DEFAULT_RAMP),
        }
    }

    fn build_log(&mut self) -> Log {
        let level = self.parsed(
            "log",
            "level",
            Log::DEFAULT_LEVEL.to_string(),
            "one of error, warn, info, debug, trace",
            |s| {
                let s = s.to_ascii_lowercase();
                Log::LEVELS.contains(&s.as_str()).then_some(s)
            },
            |_| None,
        );
        let format = self.parsed(
            "log",
            "format",
            Log::DEFAULT_FORMAT,
            "text or json",
            LogFormat::parse,
            |_| None,
        );
        Log {
            level,
            format,
            access_log: self.boolean("log", "access_log", Log::DEFAULT_ACCESS_LOG),
        }
    }
}
