//! Opening the prober's connection: credentials, driver and TLS options, the connect
//! itself and the session setup; and [`classify_driver_error`], which names every
//! driver error as a [`Reason`].
//!
//! Invariants:
//! - the password lives in our [`Secret`] and is handed to the driver's options only at
//!   the connect call; the driver's `Opts` print it in clear under `{:?}`, so they are
//!   built here, used at once and never formatted;
//! - credentials files are re-read before every connect (rotation without restart), off
//!   the async workers and under `mysql.connect_timeout`;
//! - the connect waits at most `mysql.connect_timeout` (less when the round's deadline
//!   is nearer); the session SETs go through the round's one statement helper, so they
//!   follow its deadline-then-close rule like every other statement.

use mysql_async::{Conn, OptsBuilder, SslOpts};

use super::sql::session_sql;
use super::{Probe, Rows};
use crate::config::secret::{Secret, MAX_PASSWORD_FILE};
use crate::config::{Credentials, Mysql, SslMode, Target};
use crate::facts::{ProbeError, Reason, ServerError, Step};

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

impl Probe {
    /// Open the connection and set up its session; on success it is the probe's
    /// connection, on failure there is none.
    pub(super) async fn connect(&mut self) -> Result<(), ProbeError> {
        let (user, password) = credentials(&self.mysql).await?;
        let want_tls = self.mysql.ssl_mode != SslMode::Disabled
            && matches!(self.mysql.target, Target::Tcp { .. })
            && !self.server_lacks_tls;
        let deadline = self.wait(self.mysql.connect_timeout);
        let attempt = |tls: bool| {
            let o = opts(&self.mysql, user.clone(), password.clone(), tls);
            tokio::time::timeout(deadline, Conn::new(o))
        };
        let conn = match attempt(want_tls).await {
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
        let server_major = conn.server_version().0;
        self.conn = Some(conn);
        self.connected_at = tokio::time::Instant::now();
        // An error reply to a SET is a fact about the server (an old version, no
        // Galera), not fatal: the connection is kept. A timeout or an I/O error has
        // discarded it (a reply left unread would be read by the next statement as its
        // own, shifting every later reply by one).
        for sql in session_sql(server_major, self.timeout) {
            match self.statement(Step::Connect, &sql, Rows::Drop).await {
                Ok(_) | Err(super::Failed::Reply(_)) => {}
                Err(super::Failed::Lost(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// A connect that ran out of time: `what` names the part (`connect`, `session
    /// setup`), and the detail says when the round's deadline was the limit.
    pub(super) fn connect_timed_out(&self, what: &str) -> ProbeError {
        let why = if self.past_deadline() {
            format!("{what}: round deadline ({:?}) reached", self.budget)
        } else {
            what.to_string()
        };
        ProbeError::new(Reason::Timeout, Step::Connect, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
