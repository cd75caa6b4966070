//! Just enough HTTP/1.x response parsing to know when a response is complete, and the
//! classification of how each connection ended.

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status.
    Response { status: u16, end: End },
    /// connect() answered ECONNREFUSED (nothing listening, or xinetd stopped the service).
    Refused,
    /// connect() answered EADDRNOTAVAIL: the client ran out of ephemeral ports.
    AddrNotAvail,
    /// Any other connect() error.
    ConnectError,
    /// connect() did not complete within the timeout (SYN dropped: full backlog).
    ConnectTimeout,
    /// Connected, then reset before the first byte of a response.
    ResetBeforeByte,
    /// Connected, then closed (FIN) before the first byte of a response.
    EofBeforeByte,
    /// Part of a response, then FIN.
    IncompleteEof,
    /// Part of a response, then reset.
    IncompleteReset,
    /// Bytes that are not an HTTP response.
    NotHttp,
    /// Connected, but the response was not complete within the timeout.
    Timeout,
}

/// What told us a response was complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `Content-Length` bytes of body received (we close at once).
    Length,
    /// The server closed (FIN) after the head: HTTP/1.0 close-delimited body.
    Eof,
    /// No Content-Length; head and a body ending in a newline, then a reset (the classic
    /// script: it never reads the request, so its socket is closed with unread data).
    Reset,
}

impl Outcome {
    pub const NAMES: [&'static str; 11] = [
        "response",
        "refused",
        "addr_not_avail",
        "connect_error",
        "connect_timeout",
        "reset_before_byte",
        "eof_before_byte",
        "incomplete_eof",
        "incomplete_reset",
        "not_http",
        "timeout",
    ];

    pub fn index(self) -> usize {
        match self {
            Outcome::Response { .. } => 0,
            Outcome::Refused => 1,
            Outcome::AddrNotAvail => 2,
            Outcome::ConnectError => 3,
            Outcome::ConnectTimeout => 4,
            Outcome::ResetBeforeByte => 5,
            Outcome::EofBeforeByte => 6,
            Outcome::IncompleteEof => 7,
            Outcome::IncompleteReset => 8,
            Outcome::NotHttp => 9,
            Outcome::Timeout => 10,
        }
    }

    /// Failed before a connection existed: the slot backs off briefly before retrying.
    pub fn is_connect_failure(self) -> bool {
        matches!(
            self,
            Outcome::Refused | Outcome::AddrNotAvail | Outcome::ConnectError
        )
    }
}

/// A parsed response head.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// `None`: the bytes do not start with an HTTP status line.
    pub status: Option<u16>,
    pub body_start: usize,
    pub content_length: Option<usize>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses the head once it is complete (`\r\n\r\n`, or a bare `\n\n`).
pub fn parse_head(buf: &[u8]) -> Option<Head> {
    let (head_len, body_start) = match find(buf, b"\r\n\r\n") {
        Some(i) => (i, i + 4),
        None => {
            let i = find(buf, b"\n\n")?;
            (i, i + 2)
        }
    };
    let head = &buf[..head_len];
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or(b"");
    let status = status_of(first);
    let mut content_length = None;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(b"content-length") {
            let v = String::from_utf8_lossy(&line[colon + 1..]);
            content_length = v.trim().parse::<usize>().ok();
        }
    }
    Some(Head {
        status,
        body_start,
        content_length,
    })
}

fn status_of(line: &[u8]) -> Option<u16> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.starts_with(b"HTTP/") {
        return None;
    }
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    parts.next()?;
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// After new bytes: is the response complete by its Content-Length?
pub fn complete_by_length(buf: &[u8], head_only: bool) -> Option<Outcome> {
    let head = parse_head(buf)?;
    let status = head.status?;
    let need = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        0
    } else {
        head.content_length?
    };
    (buf.len() - head.body_start >= need).then_some(Outcome::Response {
        status,
        end: End::Length,
    })
}

fn looks_like_http_prefix(buf: &[u8]) -> bool {
    let n = buf.len().min(5);
    buf[..n] == b"HTTP/"[..n]
}

/// The server closed its side (read returned 0).
pub fn at_eof(buf: &[u8], head_only: bool) -> Outcome {
    if buf.is_empty() {
        return Outcome::EofBeforeByte;
    }
    match parse_head(buf) {
        None if looks_like_http_prefix(buf) => Outcome::IncompleteEof,
        None => Outcome::NotHttp,
        Some(Head { status: None, .. }) => Outcome::NotHttp,
        Some(Head {
            status: Some(status),
            body_start,
            content_length,
        }) => match content_length {
            Some(cl) if !head_only && buf.len() - body_start < cl => Outcome::IncompleteEof,
            _ => Outcome::Response {
                status,
                end: End::Eof,
            },
        },
    }
}

/// The connection was reset (ECONNRESET on read).
pub fn at_reset(buf: &[u8], head_only: bool) -> Outcome {
    if buf.is_empty() {
        return Outcome::ResetBeforeByte;
    }
    match parse_head(buf) {
        None if looks_like_http_prefix(buf) => Outcome::IncompleteReset,
        None => Outcome::NotHttp,
        Some(Head { status: None, .. }) => Outcome::NotHttp,
        Some(Head {
            status: Some(status),
            body_start,
            content_length,
        }) => {
            let body = &buf[body_start..];
            let complete = match content_length {
                Some(cl) => head_only || body.len() >= cl,
                None => head_only || body.last() == Some(&b'\n'),
            };
            if complete {
                Outcome::Response {
                    status,
                    end: End::Reset,
                }
            } else {
                Outcome::IncompleteReset
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(
            complete_by_length(r, false),
            Some(Outcome::Response {
                status: 200,
                end: End::Length
            })
        );
        assert_eq!(complete_by_length(&r[..r.len() - 1], false), None);
        assert_eq!(at_eof(&r[..r.len() - 1], false), Outcome::IncompleteEof);
    }

    #[test]
    fn classic_script() {
        let r = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: Content-Type: text/plain\r\n\r\nMySQL is *down*.\r\n";
        assert_eq!(complete_by_length(r, false), None);
        assert_eq!(
            at_reset(r, false),
            Outcome::Response {
                status: 503,
                end: End::Reset
            }
        );
        assert_eq!(
            at_eof(r, false),
            Outcome::Response {
                status: 503,
                end: End::Eof
            }
        );
        assert_eq!(at_reset(&r[..40], false), Outcome::IncompleteReset);
        assert_eq!(at_reset(&r[..r.len() - 3], false), Outcome::IncompleteReset);
        assert_eq!(at_reset(b"", false), Outcome::ResetBeforeByte);
        assert_eq!(at_eof(b"", false), Outcome::EofBeforeByte);
        assert_eq!(at_eof(b"garbage", false), Outcome::NotHttp);
    }
}
