//! Why a round, or one step of it, failed: the [`Reason`] named in bodies, logs and
//! metric labels, the [`Step`] it failed in, and the server's error reply kept as a fact.
//!
//! Invariants: phrases are our own words, safe for health bodies; server text is kept
//! only after [`redact`], and only `/status` and logs show it.

use std::fmt;

/// Why a round failed, as named in bodies, logs and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Refused,
    Timeout,
    Tls,
    AccessDenied,
    AccountLocked,
    PasswordExpired,
    HostBlocked,
    TooManyConnections,
    OfflineMode,
    Privilege,
    /// The connection broke mid-round (reset, closed by the server).
    Io,
    /// Any other error reply on connect.
    ServerError,
    Internal,
}

impl Reason {
    pub const ALL: &'static [Reason] = &[
        Reason::Refused,
        Reason::Timeout,
        Reason::Tls,
        Reason::AccessDenied,
        Reason::AccountLocked,
        Reason::PasswordExpired,
        Reason::HostBlocked,
        Reason::TooManyConnections,
        Reason::OfflineMode,
        Reason::Privilege,
        Reason::Io,
        Reason::ServerError,
        Reason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::Timeout => "timeout",
            Reason::Tls => "tls",
            Reason::AccessDenied => "access_denied",
            Reason::AccountLocked => "account_locked",
            Reason::PasswordExpired => "password_expired",
            Reason::HostBlocked => "host_blocked",
            Reason::TooManyConnections => "too_many_connections",
            Reason::OfflineMode => "offline_mode",
            Reason::Privilege => "privilege",
            Reason::Io => "io",
            Reason::ServerError => "server_error",
            Reason::Internal => "internal",
        }
    }

    /// The checker's own account is refused: nothing about the server's health, and
    /// usually true on every node at once (account changes replicate).
    pub fn is_auth(self) -> bool {
        matches!(
            self,
            Reason::AccessDenied | Reason::AccountLocked | Reason::PasswordExpired
        )
    }

    /// Map a server error number to a reason (connect-time meaning).
    pub fn from_code(code: u16) -> Reason {
        match code {
            1045 => Reason::AccessDenied,
            3118 | 3955 | 4151 => Reason::AccountLocked,
            1820 | 1862 => Reason::PasswordExpired,
            1129 => Reason::HostBlocked,
            1040 | 1203 => Reason::TooManyConnections,
            3032 => Reason::OfflineMode,
            1227 | 1142 => Reason::Privilege,
            _ => Reason::ServerError,
        }
    }
}

/// Which step of a round failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    Core,
    Query,
    Status,
    Replication,
    Group,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Core => "core facts",
            Step::Query => "check query",
            Step::Status => "status counters",
            Step::Replication => "replication status",
            Step::Group => "group replication status",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    pub reason: Reason,
    pub step: Step,
    /// The server's error number, when there was one.
    pub code: Option<u16>,
    /// For logs and `/status` only (may hold redacted server text); never in a body.
    pub detail: String,
}

impl ProbeError {
    pub fn new(reason: Reason, step: Step, detail: impl Into<String>) -> Self {
        ProbeError {
            reason,
            step,
            code: None,
            detail: detail.into(),
        }
    }

    /// Our own phrase, safe for health bodies: never server-supplied text.
    pub fn phrase(&self) -> String {
        let code = self
            .code
            .map(|c| format!(" (error {c})"))
            .unwrap_or_default();
        match self.reason {
            Reason::Refused => "connection refused".to_string(),
            Reason::Timeout => format!("timeout during {}", self.step.as_str()),
            Reason::Tls => "TLS failure".to_string(),
            Reason::AccessDenied => format!("access denied for the checker account{code}"),
            Reason::AccountLocked => format!("checker account locked{code}"),
            Reason::PasswordExpired => format!("checker password expired{code}"),
            Reason::HostBlocked => format!("host blocked by the server{code}"),
            Reason::TooManyConnections => format!("too many connections{code}"),
            Reason::OfflineMode => format!("server in offline_mode{code}"),
            Reason::Privilege => format!("missing privilege for {}{code}", self.step.as_str()),
            Reason::Io if self.step == Step::Connect => {
                "connection closed or protocol error during connect".to_string()
            }
            Reason::Io => format!("connection lost during {}", self.step.as_str()),
            Reason::ServerError => format!("server error during {}{code}", self.step.as_str()),
            Reason::Internal => format!("internal error during {}", self.step.as_str()),
        }
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.phrase())
    }
}

/// An error reply from the server: a fact about it, not a broken connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    /// Redacted (see [`redact`]): for `/status` and logs only.
    pub message: String,
}

impl ServerError {
    pub fn new(code: u16, message: &str) -> Self {
        ServerError {
            code,
            message: redact(message),
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}", self.code)
    }
}

/// Server text made safe to show an admin: quoted literals (user names, hosts, row
/// values) become `'…'`, and at most 120 characters remain.
pub fn redact(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for ch in message.chars() {
        match quote {
            Some(q) if ch == q => {
                out.push('…');
                out.push(q);
                quote = None;
            }
            Some(_) => {}
            None if matches!(ch, '\'' | '"' | '`') => {
                out.push(ch);
                quote = Some(ch);
            }
            None if ch.is_control() => out.push(' '),
            None => out.push(ch),
        }
    }
    if let Some(q) = quote {
        out.push('…');
        out.push(q);
    }
    if out.chars().count() > 120 {
        out = out.chars().take(119).collect();
        out.push('…');
    }
    out
}

/// Why an optional step (replication, Galera, Group Replication) has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub reason: Reason,
    pub code: Option<u16>,
}

impl StepFailure {
    /// Our own phrase, safe for bodies.
    pub fn phrase(&self) -> String {
        let code = self
            .code
            .map(|c| format!(" (error {c})"))
            .unwrap_or_default();
        match self.reason {
            Reason::Privilege => format!("missing privilege{code}"),
            Reason::Timeout => "timeout".to_string(),
            Reason::Io => "connection lost".to_string(),
            r => format!("{}{code}", r.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_literals_and_bounds_length() {
        assert_eq!(
            redact("Access denied for user 'app'@'10.1.2.3' (using password: YES)"),
            "Access denied for user '…'@'…' (using password: YES)"
        );
        assert_eq!(redact("unterminated 'secret"), "unterminated '…'");
        let long = "x".repeat(500);
        assert_eq!(redact(&long).chars().count(), 120);
        assert_eq!(redact("a\nb"), "a b");
    }

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
    fn reason_names_are_unique() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
