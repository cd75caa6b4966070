//! One persistent MySQL connection and the round that reads facts over it.
//!
//! Invariants:
//! - every network wait is under a deadline (`mysql.connect_timeout` for the connect,
//!   `check.timeout` per step), and the whole round under one more ([`round_budget`]),
//!   so a server slow at every step cannot push the snapshot past `check.stale_after`:
//!   when it expires the connection is discarded and the round fails (`timeout`,
//!   naming the step it was in);
//! - a server *error reply* is a fact and keeps the connection; an I/O error, a driver
//!   error or a timeout poisons it: it is closed with a bounded `disconnect` and never
//!   reused (dropping a live `Conn` would make the driver spawn a cleanup task that
//!   drains the pending result, which never ends against a stopped server: one leaked
//!   task and socket per round);
//! - the password lives in our [`Secret`] and is handed to the driver's options only at
//!   the connect call; the driver's `Opts` print it in clear under `{:?}`, so they are
//!   never formatted;
//! - credentials files are re-read before every connect (rotation without restart).

mod sql;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts};

use crate::config::secret::{Secret, MAX_PASSWORD_FILE};
use crate::config::{Check, Credentials, Mysql, SslMode, Target};
use crate::facts::{
    has_role_column, version_triple, Channel, Facts, Group, Member, OptionalFact, ProbeError,
    Reason, ServerError, Step, StepFailure,
};
use sql::{
    channel_of, columns, core_variables_sql, replication_sql, session_sql, status_sql, text,
    GROUP_MEMBERS_SQL, GROUP_QUEUE_SQL, GROUP_QUEUE_SQL_57,
};

/// Classify a driver error (pure, unit-tested).
pub fn classify_driver_error(err: &mysql_async::Error, step: Step) -> ProbeError {
    use mysql_async::{DriverError, Error, IoError};
    match err {
        Error::Server(e) => ProbeError {
            reason: Reason::from_code(e.code),
            step,
            code: Some(e.code),
            detail: ServerError::new(e.code, &e.message).message,
        },
        // rustls reports handshake and certificate failures as InvalidData I/O errors.
        Error::Io(IoError::Io(e)) if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            ProbeError::new(Reason::Tls, step, e.to_string())
        }
        Error::Io(IoError::Io(e)) => {
            let reason = match e.kind() {
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                    if step == Step::Connect =>
                {
                    Reason::Refused
                }
                std::io::ErrorKind::TimedOut => Reason::Timeout,
                // The connection was made (a close during the handshake, bytes that
                // are no MySQL greeting): not "refused", which would send an operator
                // looking for a stopped server.
                _ => Reason::Io,
            };
            ProbeError::new(reason, step, e.to_string())
        }
        Error::Io(IoError::Tls(e)) => ProbeError::new(Reason::Tls, step, e.to_string()),
        Error::Driver(DriverError::NoClientSslFlagFromServer) => {
            ProbeError::new(Reason::Tls, step, "the server does not offer TLS")
        }
        Error::Driver(DriverError::ConnectionClosed) => {
            ProbeError::new(Reason::Io, step, "connection closed by the server")
        }
        // The peer speaks something, but not the MySQL protocol as we know it.
        Error::Driver(
            e @ (DriverError::CantParseServerVersion { .. }
            | DriverError::PacketOutOfOrder
            | DriverError::UnexpectedPacket { .. }
            | DriverError::PacketTooLarge
            | DriverError::BadCompressedPacketHeader
            | DriverError::InvalidParsecSalt),
        ) => ProbeError::new(Reason::Io, step, format!("protocol error: {e}")),
        Error::Driver(e) => ProbeError::new(Reason::Internal, step, e.to_string()),
        Error::Other(e) => ProbeError::new(Reason::Internal, step, e.to_string()),
        Error::Url(e) => ProbeError::new(Reason::Internal, step, e.to_string()),
    }
}

/// The account and password for the next connect, re-reading any file (so rotation
/// needs no restart). Files are read off the async workers under the connect
/// deadline and never block on a FIFO; an unreadable file fails the connect
/// (`internal`) with a detail naming the file, never its contents.
async fn credentials(mysql: &Mysql) -> Result<(String, Option<Secret>), ProbeError> {
    let cred_err = |what: String| ProbeError::new(Reason::Internal, Step::Connect, what);
    match &mysql.credentials {
        Credentials::None => Ok((mysql.user.clone(), None)),
        Credentials::Inline(s) => Ok((mysql.user.clone(), Some(s.clone()))),
        Credentials::PasswordFile(p) => {
            use crate::smallfile::{self, Links};
            let path = p.clone();
            // Kubernetes secrets and systemd credentials are symlinks: follow them.
            let read = move || smallfile::read(&path, MAX_PASSWORD_FILE, Links::Follow);
            let bytes = smallfile::off_worker(p, mysql.connect_timeout, read)
                .await
                .and_then(|r| r)
                .map_err(|e| cred_err(format!("password file {e}: {}", p.display())))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| cred_err(format!("password file is not UTF-8: {}", p.display())))?;
            // One trailing newline is an editor's, not the password's.
            let pw = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            Ok((mysql.user.clone(), Some(Secret::new(pw))))
        }
        Credentials::DefaultsFile(p) => {
            let path = p.clone();
            let load = move || crate::config::mycnf::load(&path);
            let opts = crate::smallfile::off_worker(p, mysql.connect_timeout, load)
                .await
                .map_err(|e| cred_err(format!("option file {e}: {}", p.display())))?
                .map_err(|e| cred_err(e.to_string()))?;
            Ok((
                opts.user.unwrap_or_else(|| mysql.user.clone()),
                opts.password,
            ))
        }
    }
}

fn ssl_opts(mysql: &Mysql) -> Option<SslOpts> {
    use mysql_async::ClientIdentity;
    let mut o = match mysql.ssl_mode {
        SslMode::Disabled => return None,
        // As the mysql client: preferred/required encrypt but verify nothing.
        SslMode::Preferred | SslMode::Required => SslOpts::default()
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true),
        SslMode::VerifyCa => SslOpts::default().with_danger_skip_domain_validation(true),
        SslMode::VerifyIdentity => SslOpts::default(),
    };
    if let Some(ca) = &mysql.ssl_ca {
        o = o
            .with_root_certs(vec![ca.clone().into()])
            .with_disable_built_in_roots(true);
    }
    if let (Some(cert), Some(key)) = (&mysql.ssl_cert, &mysql.ssl_key) {
        o = o.with_client_identity(Some(ClientIdentity::new(
            cert.clone().into(),
            key.clone().into(),
        )));
    }
    Some(o)
}

/// Build the driver options. Kept in one place so the `Opts` (which print the
/// password under `{:?}`) never travel.
fn opts(mysql: &Mysql, user: String, password: Option<Secret>, tls: bool) -> OptsBuilder {
    let b = OptsBuilder::default()
        .user(Some(user))
        .pass(password.map(|p| p.expose().to_string()))
        // Only the text protocol is used: no statement cache; the known values save
        // the driver's extra round trips on connect.
        .stmt_cache_size(0)
        .wait_timeout(Some(28800))
        .max_allowed_packet(Some(16 * 1024 * 1024))
        .tcp_nodelay(true)
        .ssl_opts(if tls { ssl_opts(mysql) } else { None });
    match &mysql.target {
        Target::Tcp { host, port } => b
            .ip_or_hostname(host.clone())
            .tcp_port(*port)
            // Otherwise the driver silently moves a loopback TCP connection onto the
            // Unix socket: we must check what the operator configured.
            .prefer_socket(false),
        Target::Socket(path) => b
            .socket(Some(path.display().to_string()))
            .prefer_socket(true),
    }
}

/// How long one round (connect and every step) may take: what `check.stale_after`
/// leaves after an `interval`, less a fifth for the bounded disconnect and publishing,
/// so a round that uses it all still publishes before the last snapshot goes stale.
/// Never less than one step's `check.timeout`.
pub fn round_budget(check: &Check) -> Duration {
    let room = check.stale_after.saturating_sub(check.interval);
    (room - room / 5).max(check.timeout)
}

/// The prober's connection and per-round settings.
pub struct Probe {
    mysql: Mysql,
    timeout: Duration,
    budget: Duration,
    /// When the current round must end.
    deadline: tokio::time::Instant,
    /// The step during which the round's deadline expired.
    expired: Option<Step>,
    query: String,
    conn: Option<Conn>,
    /// The server said it has no TLS (`preferred` mode): connect in clear without
    /// trying again until the connection is lost.
    server_lacks_tls: bool,
    /// The replication statement that worked on this connection.
    repl_sql: Option<&'static str>,
    max_applier_queue: u64,
}

impl Probe {
    pub fn new(mysql: Mysql, check: &Check) -> Probe {
        Probe {
            mysql,
            timeout: check.timeout,
            budget: round_budget(check),
            deadline: tokio::time::Instant::now(),
            expired: None,
            query: check.query.clone(),
            conn: None,
            server_lacks_tls: false,
            repl_sql: None,
            max_applier_queue: check.gr_max_applier_queue,
        }
    }

    /// Apply new settings (reload). A changed target or credentials drop the
    /// connection so the next round reconnects with them.
    pub async fn reconfigure(&mut self, mysql: Mysql, check: &Check) {
        if mysql != self.mysql {
            self.close().await;
            self.server_lacks_tls = false;
        }
        self.mysql = mysql;
        self.timeout = check.timeout;
        self.budget = round_budget(check);
        self.query = check.query.clone();
        self.max_applier_queue = check.gr_max_applier_queue;
    }

    /// How long the next wait may last: `limit`, or less when the round's deadline is
    /// nearer (then reaching it is the round's deadline, see [`Probe::timed_out`]).
    fn wait(&self, limit: Duration) -> Duration {
        limit.min(
            self.deadline
                .saturating_duration_since(tokio::time::Instant::now()),
        )
    }

    fn past_deadline(&self) -> bool {
        tokio::time::Instant::now() >= self.deadline
    }

    /// One round: connect if needed, core facts, the check query, optional facts.
    pub async fn round(&mut self) -> Result<Facts, ProbeError> {
        self.deadline = tokio::time::Instant::now() + self.budget;
        self.expired = None;
        let facts = self.steps().await?;
        // An optional step cut short by the round's deadline fails the round: the
        // deadline is about the whole snapshot, not one missing fact.
        match self.expired.take() {
            Some(step) => Err(ProbeError::new(
                Reason::Timeout,
                step,
                format!("round deadline ({:?}) reached", self.budget),
            )),
            None => Ok(facts),
        }
    }

    async fn steps(&mut self) -> Result<Facts, ProbeError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let timeout = self.wait(self.timeout);
        let sql = core_variables_sql();
        let Some(conn) = self.conn.as_mut() else {
            return Err(ProbeError::new(
                Reason::Internal,
                Step::Core,
                "no connection",
            ));
        };
        let core = match tokio::time::timeout(timeout, conn.query::<Row, _>(sql)).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return Err(self.fail(&e, Step::Core).await),
            Err(_) => return Err(self.timed_out(Step::Core).await),
        };
        let mut facts = Facts::from_variables(
            core.iter()
                .filter_map(|r| Some((text(r, 0)?, text(r, 1).unwrap_or_default()))),
        );
        let query = self.query.clone();
        let wait = self.wait(self.timeout);
        let Some(conn) = self.conn.as_mut() else {
            return Err(ProbeError::new(
                Reason::Internal,
                Step::Query,
                "no connection",
            ));
        };
        match tokio::time::timeout(wait, conn.query_drop(query)).await {
            Ok(Ok(())) => {}
            Ok(Err(mysql_async::Error::Server(e))) => {
                facts.query = Err(ServerError::new(e.code, &e.message));
            }
            Ok(Err(e)) => return Err(self.fail(&e, Step::Query).await),
            Err(_) => return Err(self.timed_out(Step::Query).await),
        }
        // Once the deadline has passed the remaining steps are not even tried.
        if self.expired.is_some() {
            return Ok(facts);
        }
        facts.status = match self.optional(status_sql(), Step::Status).await {
            Ok(rows) => OptionalFact::Known(
                rows.iter()
                    .filter_map(|r| Some((text(r, 0)?.to_ascii_lowercase(), text(r, 1)?)))
                    .collect(),
            ),
            Err(f) => OptionalFact::Failed(f),
        };
        if self.expired.is_some() {
            return Ok(facts);
        }
        facts.channels = self.channels(&facts).await;
        if facts.group_replication() && self.expired.is_none() {
            let primary_member = facts
                .status_var("group_replication_primary_member")
                .map(str::to_string);
            facts.group = self.group(primary_member).await;
        }
        Ok(facts)
    }

    /// An optional step: error replies and timeouts become a [`StepFailure`] (the
    /// timeout also poisons the connection, as always).
    async fn optional(&mut self, sql: String, step: Step) -> Result<Vec<Row>, StepFailure> {
        let wait = self.wait(self.timeout);
        let Some(conn) = self.conn.as_mut() else {
            return Err(StepFailure {
                reason: Reason::Io,
                code: None,
            });
        };
        match tokio::time::timeout(wait, conn.query::<Row, _>(sql)).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                let p = self.fail(&e, step).await;
                Err(StepFailure {
                    reason: p.reason,
                    code: p.code,
                })
            }
            Err(_) => {
                self.timed_out(step).await;
                Err(StepFailure {
                    reason: Reason::Timeout,
                    code: None,
                })
            }
        }
    }

    /// `primary_member`: the `group_replication_primary_member` status, for a server
    /// whose member table has no role column (MySQL 5.7).
    async fn group(&mut self, primary_member: Option<String>) -> OptionalFact<Group> {
        let rows = match self
            .optional(GROUP_MEMBERS_SQL.to_string(), Step::Group)
            .await
        {
            Ok(r) => r,
            Err(f) => return OptionalFact::Failed(f),
        };
        let rows: Vec<_> = rows.iter().map(columns).collect();
        let has_role = rows.first().is_none_or(|r| has_role_column(r));
        let mut g = Group {
            members: rows.iter().map(|r| Member::from_row(r)).collect(),
            applier_queue: OptionalFact::NotCollected,
        };
        if !has_role {
            g.derive_roles(primary_member.as_deref());
        }
        if self.max_applier_queue > 0 {
            let sql = if has_role {
                GROUP_QUEUE_SQL
            } else {
                GROUP_QUEUE_SQL_57
            };
            g.applier_queue = match self.optional(sql.to_string(), Step::Group).await {
                Ok(rows) => OptionalFact::Known(
                    rows.first()
                        .and_then(|r| text(r, 0))
                        .and_then(|v| v.trim().parse().ok()),
                ),
                Err(f) => OptionalFact::Failed(f),
            };
        }
        OptionalFact::Known(g)
    }

    /// Every replication channel. The statement is chosen once per connection from the
    /// version, falling back to the older syntax only on a syntax error (1064), never
    /// on a privilege error (which is a reason of its own).
    async fn channels(&mut self, facts: &Facts) -> OptionalFact<Vec<Channel>> {
        let (newer, older) = replication_sql(facts.flavour, version_triple(facts.version()));
        let mut sql = self.repl_sql.unwrap_or(newer);
        loop {
            let wait = self.wait(self.timeout);
            let Some(conn) = self.conn.as_mut() else {
                return OptionalFact::NotCollected;
            };
            match tokio::time::timeout(wait, conn.query::<Row, _>(sql)).await {
                Ok(Ok(rows)) => {
                    self.repl_sql = Some(sql);
                    return OptionalFact::Known(rows.iter().map(channel_of).collect());
                }
                Ok(Err(mysql_async::Error::Server(e))) if e.code == 1064 && sql == newer => {
                    match older {
                        Some(o) => sql = o,
                        None => {
                            return OptionalFact::Failed(StepFailure {
                                reason: Reason::ServerError,
                                code: Some(e.code),
                            })
                        }
                    }
                }
                Ok(Err(e)) => {
                    let p = self.fail(&e, Step::Replication).await;
                    return OptionalFact::Failed(StepFailure {
                        reason: p.reason,
                        code: p.code,
                    });
                }
                Err(_) => {
                    self.timed_out(Step::Replication).await;
                    return OptionalFact::Failed(StepFailure {
                        reason: Reason::Timeout,
                        code: None,
                    });
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<Conn, ProbeError> {
        let (user, password) = credentials(&self.mysql).await?;
        let want_tls = self.mysql.ssl_mode != SslMode::Disabled
            && matches!(self.mysql.target, Target::Tcp { .. })
            && !self.server_lacks_tls;
        let deadline = self.wait(self.mysql.connect_timeout);
        let attempt = |tls: bool| {
            let o = opts(&self.mysql, user.clone(), password.clone(), tls);
            tokio::time::timeout(deadline, Conn::new(o))
        };
        let mut conn = match attempt(want_tls).await {
            Ok(Ok(c)) => c,
            Err(_) => return Err(self.connect_timed_out("connect")),
            Ok(Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            ))) if self.mysql.ssl_mode == SslMode::Preferred => {
                self.server_lacks_tls = true;
                match attempt(false).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => return Err(classify_driver_error(&e, Step::Connect)),
                    Err(_) => return Err(self.connect_timed_out("connect")),
                }
            }
            Ok(Err(e)) => return Err(classify_driver_error(&e, Step::Connect)),
        };
        for sql in session_sql(conn.server_version().0, self.timeout) {
            conn = self.session_setup(conn, &sql).await?;
        }
        Ok(conn)
    }

    /// One session SET on a fresh connection. An error reply is a fact about the server
    /// (an old version, no Galera) and keeps the connection; a timeout or an I/O error
    /// discards it: a reply left unread would be read by the next statement as its own,
    /// shifting every later reply by one.
    async fn session_setup(&self, mut conn: Conn, sql: &str) -> Result<Conn, ProbeError> {
        match tokio::time::timeout(self.wait(self.timeout), conn.query_drop(sql)).await {
            Ok(Ok(())) | Ok(Err(mysql_async::Error::Server(_))) => Ok(conn),
            Ok(Err(e)) => {
                discard(conn).await;
                Err(classify_driver_error(&e, Step::Connect))
            }
            Err(_) => {
                discard(conn).await;
                Err(self.connect_timed_out("session setup"))
            }
        }
    }

    /// A driver error: server replies are kept as facts by the caller; anything else
    /// poisons the connection.
    async fn fail(&mut self, e: &mysql_async::Error, step: Step) -> ProbeError {
        if e.is_fatal() {
            self.close().await;
        }
        classify_driver_error(e, step)
    }

    fn connect_timed_out(&self, what: &str) -> ProbeError {
        let why = if self.past_deadline() {
            format!("{what}: round deadline ({:?}) reached", self.budget)
        } else {
            what.to_string()
        };
        ProbeError::new(Reason::Timeout, Step::Connect, why)
    }

    async fn timed_out(&mut self, step: Step) -> ProbeError {
        if self.past_deadline() {
            self.expired.get_or_insert(step);
        }
        self.close().await;
        ProbeError::new(
            Reason::Timeout,
            step,
            format!("no reply within {:?}", self.timeout),
        )
    }

    /// Close the connection, bounded in time, never reusing it.
    pub async fn close(&mut self) {
        self.repl_sql = None;
        if let Some(conn) = self.conn.take() {
            discard(conn).await;
        }
    }
}

/// `disconnect` marks the `Conn` as disconnected before it writes anything, so if it
/// does not finish in time the `Conn` is dropped without spawning the driver's drain
/// task and its socket is simply closed.
async fn discard(conn: Conn) {
    let _ = tokio::time::timeout(Duration::from_millis(500), conn.disconnect()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_reasons() {
        assert_eq!(Reason::from_code(1045), Reason::AccessDenied);
        assert_eq!(Reason::from_code(4151), Reason::AccountLocked);
        assert_eq!(Reason::from_code(3118), Reason::AccountLocked);
        assert_eq!(Reason::from_code(1862), Reason::PasswordExpired);
        assert_eq!(Reason::from_code(1129), Reason::HostBlocked);
        assert_eq!(Reason::from_code(1040), Reason::TooManyConnections);
        assert_eq!(Reason::from_code(3032), Reason::OfflineMode);
        assert_eq!(Reason::from_code(1227), Reason::Privilege);
        assert_eq!(Reason::from_code(9999), Reason::ServerError);
        assert!(Reason::AccessDenied.is_auth());
        assert!(!Reason::Refused.is_auth());
    }

    #[test]
    fn classify_keeps_server_text_out_of_the_phrase() {
        let e = mysql_async::Error::Server(mysql_async::ServerError {
            code: 1045,
            message: "Access denied for user 'mysqlchk'@'localhost' (using password: YES)".into(),
            state: "28000".into(),
        });
        let p = classify_driver_error(&e, Step::Connect);
        assert_eq!(p.reason, Reason::AccessDenied);
        assert_eq!(
            p.phrase(),
            "access denied for the checker account (error 1045)"
        );
        assert!(!p.detail.contains("mysqlchk"));
        let refused = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(
            classify_driver_error(&refused, Step::Connect).reason,
            Reason::Refused
        );
        let reset = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(
            classify_driver_error(&reset, Step::Query).reason,
            Reason::Io
        );
        let cert = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        )));
        assert_eq!(
            classify_driver_error(&cert, Step::Connect).reason,
            Reason::Tls
        );
    }

    #[test]
    fn classify_connect_failures() {
        use mysql_async::{DriverError, Error, IoError};
        let io = |k: std::io::ErrorKind| Error::Io(IoError::Io(std::io::Error::from(k)));
        let at_connect = |e: &Error| classify_driver_error(e, Step::Connect).reason;
        // Nobody there: refused.
        assert_eq!(
            at_connect(&io(std::io::ErrorKind::ConnectionRefused)),
            Reason::Refused
        );
        assert_eq!(
            at_connect(&io(std::io::ErrorKind::NotFound)),
            Reason::Refused
        );
        assert_eq!(
            at_connect(&io(std::io::ErrorKind::TimedOut)),
            Reason::Timeout
        );
        // Somebody there, who closed or spoke no MySQL: io.
        for k in [
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::InvalidData,
        ] {
            assert_eq!(at_connect(&io(k)), Reason::Io, "{k:?}");
        }
        for e in [
            DriverError::ConnectionClosed,
            DriverError::PacketOutOfOrder,
            DriverError::UnexpectedPacket {
                payload: vec![0xfe],
            },
            DriverError::CantParseServerVersion {
                version_string: "x".into(),
            },
        ] {
            assert_eq!(at_connect(&Error::Driver(e)), Reason::Io);
        }
        let p = classify_driver_error(&Error::Driver(DriverError::ConnectionClosed), Step::Connect);
        assert_eq!(
            p.phrase(),
            "connection closed or protocol error during connect"
        );
        let p = classify_driver_error(&Error::Driver(DriverError::ConnectionClosed), Step::Core);
        assert_eq!(p.phrase(), "connection lost during core facts");
    }

    #[test]
    fn round_budget_leaves_room_before_staleness() {
        let check = |interval: u64, timeout: u64, stale: u64| {
            let mut c = crate::config::from_str(
                "[listen]\nhttp=\"127.0.0.1:1\"\n",
                "t",
                &Default::default(),
            )
            .unwrap()
            .config
            .check;
            c.interval = Duration::from_millis(interval);
            c.timeout = Duration::from_millis(timeout);
            c.stale_after = Duration::from_millis(stale);
            c
        };
        // Defaults (1 s, 1 s, 5 s): 4 s of room, 3.2 s for the round.
        assert_eq!(
            round_budget(&check(1000, 1000, 5000)),
            Duration::from_millis(3200)
        );
        let c = check(200, 900, 2000);
        let b = round_budget(&c);
        assert!(c.interval + b < c.stale_after, "{b:?}");
        // Never less than one step.
        assert_eq!(
            round_budget(&check(1000, 1000, 1000)),
            Duration::from_millis(1000)
        );
    }

    #[test]
    fn reason_names_are_unique() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
