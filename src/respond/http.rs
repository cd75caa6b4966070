//! Pure HTTP/1.x request parsing and response rendering for health checks.
//!
//! Invariants: parsing never panics and never allocates beyond the caller's bounded
//! buffer; a response is rendered into one buffer so it leaves in one write; every
//! response closes the connection (`Connection: close`), carries `Content-Length`,
//! `Cache-Control: no-store`, and nothing from the request is echoed unescaped.

use std::fmt::Write as _;

/// The largest request head we accept (HAProxy's checks are ~30 bytes).
pub(crate) const MAX_REQUEST: usize = 8 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Options,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub(crate) method: Method,
    /// The path without the query string, percent-encoding left as sent.
    pub path: String,
    /// The raw query string after `?`, if any.
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) minor: u8,
    /// Bytes of the head, including its blank line.
    pub(crate) head_len: usize,
    /// The head announces a body (Content-Length > 0 or Transfer-Encoding): bytes we
    /// will not read may still arrive.
    pub(crate) has_body: bool,
    /// `X-Haproxy-Server-State` (HAProxy's `http-check send-state`), which names the
    /// target in fleet mode; bounded by the request head's size cap.
    pub server_state: Option<String>,
}

impl Request {
    /// Nothing beyond the head was received and nothing more is announced: closing
    /// right after the answer sends a FIN, never a reset that could eat the answer.
    pub(crate) fn fully_read(&self, received: usize) -> bool {
        received == self.head_len && !self.has_body
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    Partial,
    Complete(Request),
    /// Answer this and close.
    Reject(Response),
}

/// Parse a request head from the bytes received so far.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Reject(Response::text(431, "request has too many headers"))
        }
        Err(_) => return Parsed::Reject(Response::text(400, "malformed request")),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => 0,
    };
    if status.is_partial() {
        return if buf.len() >= MAX_REQUEST {
            Parsed::Reject(Response::text(431, "request head too large"))
        } else {
            Parsed::Partial
        };
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(Response::text(400, "malformed request"));
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        _ => {
            let mut r = Response::text(405, "method not allowed: use GET, HEAD or OPTIONS");
            r.allow = true;
            return Parsed::Reject(r);
        }
    };
    // Absolute-form targets (`GET http://host/primary`) are legal HTTP/1.1.
    let target = strip_origin(target);
    if !target.starts_with('/') && target != "*" {
        return Parsed::Reject(Response::text(400, "malformed request target"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let has_body = req.headers.iter().any(|h| {
        (h.name.eq_ignore_ascii_case("content-length")
            && std::str::from_utf8(h.value)
                .map(|v| v.trim() != "0")
                .unwrap_or(true))
            || h.name.eq_ignore_ascii_case("transfer-encoding")
    });
    let server_state = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("x-haproxy-server-state"))
        .map(|h| String::from_utf8_lossy(h.value).into_owned());
    Parsed::Complete(Request {
        method,
        path: path.to_string(),
        query,
        minor,
        head_len,
        has_body,
        server_state,
    })
}

fn strip_origin(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
        }
    }
    target
}

/// Decode one `key=value` list; `+` and `%XX` decoded; bad encodings kept literally.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Show untrusted text (a path, a parameter) safely in a one-line body.
pub fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(100) {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
    /// Send `Allow:` (405).
    pub(crate) allow: bool,
}

pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
pub(crate) const JSON: &str = "application/json";
pub(crate) const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Response {
    pub(crate) fn text(status: u16, line: impl Into<String>) -> Response {
        let mut body = line.into();
        body.push('\n');
        Response {
            status,
            content_type: TEXT,
            body,
            allow: false,
        }
    }

    pub(crate) fn with_type(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            body,
            allow: false,
        }
    }

    /// The whole response in one buffer. `head_only` for `HEAD` (the length is still
    /// that of the body a `GET` would get).
    pub(crate) fn render(&self, minor: u8, head_only: bool) -> Vec<u8> {
        let mut out = String::with_capacity(160 + self.body.len());
        let _ = write!(
            out,
            "HTTP/1.{} {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            minor.min(1),
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD, OPTIONS\r\n");
        }
        out.push_str("\r\n");
        if !head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(bytes: &[u8]) -> Request {
        match parse(bytes) {
            Parsed::Complete(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn haproxy_default_check() {
        let r = complete(b"OPTIONS / HTTP/1.0\r\n\r\n");
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.path, "/");
        assert_eq!(r.minor, 0);
        assert_eq!(r.query, None);
    }

    #[test]
    fn knows_whether_anything_is_left_unread() {
        let head = b"GET / HTTP/1.0\r\n\r\n";
        let r = complete(head);
        assert_eq!(r.head_len, head.len());
        assert!(r.fully_read(head.len()));
        let mut more = head.to_vec();
        more.extend(b"junk");
        assert!(!complete(&more).fully_read(more.len()));
        let body = b"OPTIONS / HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
        assert!(!complete(body).fully_read(body.len()));
        let empty = b"OPTIONS / HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert!(complete(empty).fully_read(empty.len()));
    }

    #[test]
    fn get_with_query_and_headers() {
        let r = complete(b"GET /replica?lag=10 HTTP/1.1\r\nHost: x\r\nUser-Agent: y\r\n\r\n");
        assert_eq!(r.path, "/replica");
        assert_eq!(r.query.as_deref(), Some("lag=10"));
        assert_eq!(r.minor, 1);
    }

    #[test]
    fn keeps_haproxy_send_state_header() {
        let r = complete(b"OPTIONS /replica HTTP/1.0\r\nx-haproxy-server-state: UP 2/3; address=10.0.0.2; port=3306; name=mysql-read/db1; node=lb1; weight=1/2; scur=0/0; qcur=0\r\n\r\n");
        assert_eq!(
            r.server_state.as_deref(),
            Some("UP 2/3; address=10.0.0.2; port=3306; name=mysql-read/db1; node=lb1; weight=1/2; scur=0/0; qcur=0")
        );
        assert_eq!(complete(b"GET / HTTP/1.0\r\n\r\n").server_state, None);
    }

    #[test]
    fn absolute_form() {
        assert_eq!(
            complete(b"GET http://h:9200/primary HTTP/1.1\r\n\r\n").path,
            "/primary"
        );
    }

    #[test]
    fn partial_until_blank_line() {
        assert_eq!(parse(b"GET / HTTP/1.0\r\n"), Parsed::Partial);
        assert_eq!(parse(b""), Parsed::Partial);
        assert_eq!(parse(b"GE"), Parsed::Partial);
    }

    #[test]
    fn rejects() {
        let status = |b: &[u8]| match parse(b) {
            Parsed::Reject(r) => r.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(b"POST / HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400);
        assert_eq!(status(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400);
        assert_eq!(status(b"GET nopath HTTP/1.1\r\n\r\n"), 400);
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_REQUEST));
        assert_eq!(status(&big), 431);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(status(&many), 431);
    }

    #[test]
    fn render_has_the_contract_headers() {
        let r = Response::text(503, "primary: down - read_only is ON");
        let s = String::from_utf8(r.render(0, false)).unwrap();
        assert!(s.starts_with("HTTP/1.0 503 Service Unavailable\r\n"));
        assert!(s.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(s.contains("Content-Length: 32\r\n"));
        assert!(s.contains("Cache-Control: no-store\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\nprimary: down - read_only is ON\n"));
        let head = String::from_utf8(r.render(1, true)).unwrap();
        assert!(head.starts_with("HTTP/1.1 503"));
        assert!(head.ends_with("\r\n\r\n"));
        assert!(head.contains("Content-Length: 32\r\n"));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            query_pairs("max_lag=1m&x=a%20b+c&&bad=%zz&end=%4"),
            vec![
                ("max_lag".into(), "1m".into()),
                ("x".into(), "a b c".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into())
            ]
        );
    }

    #[test]
    fn sanitize_escapes_control_and_non_ascii() {
        assert_eq!(sanitize("/a\r\nb\u{e9}"), "/a\\u{d}\\u{a}b\\u{e9}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect();
            let _ = parse(&bytes);
            let s = String::from_utf8_lossy(&bytes);
            let _ = query_pairs(&s);
            let _ = sanitize(&s);
        }
    }
}
