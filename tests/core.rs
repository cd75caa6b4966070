//! The core agent against a real MariaDB: every endpoint's verdict, the HTTP contract
//! in raw bytes, and what happens when the server dies, freezes or comes back.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{
    free_port, http_get, http_raw, http_raw_half_close, http_request, open_fds,
    parse_http_response, wait_until, Daemon, MariaDb,
};

const PASSWORD: &str = "chk-Pa55word-core";
const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 200;

/// A daemon config checking `db` every 200 ms.
fn config(db_port: u16, http: u16, extra: &str) -> String {
    format!(
        r#"[listen]
http = ["127.0.0.1:{http}"]
request_timeout = "1s"

[mysql]
host = "127.0.0.1"
port = {db_port}
user = "mysqlchk"
connect_timeout = "500ms"

[check]
interval = "{INTERVAL_MS}ms"
timeout = "{TIMEOUT_MS}ms"
stale_after = "3s"
maintenance_file = "/nonexistent/mysqlchk-maintenance"
{extra}"#
    )
}

/// A daemon on its own checker account (tests share a server: re-creating one
/// account under another test's feet would make it flap).
fn start(db: &MariaDb, extra: &str) -> Daemon {
    let http = free_port();
    let user = format!("chk{http}");
    db.create_checker_user(&user, PASSWORD);
    Daemon::start(
        &config(db.port(), http, extra),
        &[
            ("MYSQLCHK_MYSQL_PASSWORD", PASSWORD),
            ("MYSQLCHK_MYSQL_USER", &user),
        ],
    )
}

fn wait_status(port: u16, path: &str, want: u16, deadline: Duration) -> (Duration, String) {
    let mut last = String::new();
    let took = wait_until(deadline, &format!("{path} to answer {want}"), || {
        let (status, body) = http_get(port, path);
        last = body;
        status == want
    });
    (took, last)
}

/// Like [`wait_status`], past the first round: `starting` is a 503 too.
fn wait_verdict(port: u16, path: &str, want: u16, deadline: Duration) -> String {
    let mut last = String::new();
    wait_until(
        deadline,
        &format!("{path} to answer {want} after the first round"),
        || {
            let (status, body) = http_get(port, path);
            let settled = status == want && !body.ends_with(": starting\n");
            last = body;
            settled
        },
    );
    last
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[test]
fn endpoints_on_a_writable_then_read_only_server() {
    let db = MariaDb::start();
    let d = start(&db, "");
    let p = d.http_port();
    wait_status(p, "/", 200, Duration::from_secs(10));

    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    assert_eq!(http_get(p, "/health"), (200, "health: up\n".into()));
    for path in ["/primary", "/master", "/read-write", "/rw"] {
        assert_eq!(http_get(p, path), (200, "primary: up\n".into()), "{path}");
    }
    for path in ["/replica", "/slave"] {
        assert_eq!(
            http_get(p, path),
            (
                503,
                "replica: down - not replicating (no replication channel)\n".into()
            ),
            "{path}"
        );
    }
    for path in ["/read-only", "/ro"] {
        assert_eq!(
            http_get(p, path),
            (200, "read-only: up - writable\n".into())
        );
    }
    assert_eq!(http_get(p, "/live"), (200, "live: up\n".into()));

    // Demotion is seen within one interval (plus the poll).
    db.sql("SET GLOBAL read_only=ON");
    let (took, body) = wait_status(p, "/primary", 503, Duration::from_secs(5));
    assert_eq!(body, "primary: down - read_only is ON\n");
    assert!(
        took < Duration::from_millis(INTERVAL_MS * 2 + 1000),
        "demotion seen after {took:?}"
    );
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    assert_eq!(
        http_get(p, "/read-only"),
        (
            503,
            "read-only: down - read_only and not replicating\n".into()
        )
    );
    assert_eq!(http_get(p, "/replica").0, 503);

    // /status: JSON with the facts and every role, never the password.
    let status = http_request(p, b"GET /status HTTP/1.0\r\n\r\n");
    assert_eq!(status.status, 200);
    assert_eq!(status.header("Content-Type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_str(&status.body).expect("status is JSON");
    assert_eq!(doc["roles"]["primary"]["state"], "down");
    assert_eq!(doc["roles"]["health"]["state"], "up");
    assert_eq!(doc["snapshot"]["facts"]["variables"]["read_only"], "ON");
    assert_eq!(doc["snapshot"]["facts"]["flavour"], "mariadb");
    assert!(!status.body.contains(PASSWORD));

    // Promotion back.
    db.sql("SET GLOBAL read_only=OFF");
    wait_status(p, "/primary", 200, Duration::from_secs(5));

    // /metrics speaks the Prometheus text format.
    let m = http_request(p, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(m.status, 200);
    assert!(m
        .header("Content-Type")
        .unwrap_or("")
        .starts_with("text/plain; version=0.0.4"));
    assert!(m.body.contains("mysqlchk_role_up{role=\"primary\"} 1"));
    assert!(m.body.contains("mysqlchk_build_info{version="));
    assert!(!d.log().contains(PASSWORD), "password in the log");
}

/// HAProxy's default check and every corner of the request contract, in raw bytes.
#[test]
fn http_contract_in_raw_bytes() {
    let db = MariaDb::shared();
    let d = start(db, "");
    let p = d.http_port();
    wait_status(p, "/", 200, Duration::from_secs(10));
    let a = addr(p);
    let t = Duration::from_secs(5);

    // HAProxy's `option httpchk` default: OPTIONS / HTTP/1.0, no Host.
    let raw = http_raw(a, b"OPTIONS / HTTP/1.0\r\n\r\n", t);
    assert_eq!(
        String::from_utf8_lossy(&raw),
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 11\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\nhealth: up\n"
    );

    // HTTP/1.1 without Host is still answered (HAProxy checks often have none).
    let r = http_request(p, b"GET /primary HTTP/1.1\r\n\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, "primary: up\n");

    // HEAD: the headers of a GET, no body.
    let raw = http_raw(a, b"HEAD /primary HTTP/1.1\r\nHost: db1\r\n\r\n", t);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: 12\r\n"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "HEAD must have no body: {text:?}"
    );

    // Unknown path: 400 listing the known ones (404 would drain under disable-on-404).
    let r = http_request(p, b"GET /primry HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("unknown path /primry"), "{}", r.body);
    assert!(r.body.contains("/replica (/slave)"), "{}", r.body);

    // The path is never echoed raw: no header injection through it.
    let r = http_request(p, b"GET /x%0d%0aSet-Cookie:%20a HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(r.header("Set-Cookie").is_none());
    assert_eq!(r.body.lines().count(), 1);

    // Other methods: 405 with Allow.
    let r = http_request(p, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    let r = http_request(p, b"DELETE /primary HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 405);

    // Malformed: 400 (or a close), never a hang.
    for bad in [
        &b"garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let started = Instant::now();
        let raw = http_raw(a, bad, t);
        assert!(started.elapsed() < Duration::from_secs(3), "{bad:?} hung");
        if let Some(r) = parse_http_response(&raw) {
            assert_eq!(r.status, 400, "{bad:?}");
        }
    }

    // Oversized head: 431 (or a close).
    let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    big.extend(b"\r\n\r\n");
    let raw = http_raw(a, &big, t);
    if let Some(r) = parse_http_response(&raw) {
        assert_eq!(r.status, 431);
    }

    // Bad lag parameter: 400 naming it.
    let r = http_request(p, b"GET /replica?lag=soon HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("lag=soon"), "{}", r.body);
    // The bound given twice (or under both names): 400 naming it, not "last wins".
    let r = http_request(p, b"GET /replica?lag=5&max_lag=10 HTTP/1.0\r\n\r\n");
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "parameter max_lag given twice (lag and max_lag are the same bound)\n"
        )
    );

    // The request may arrive in pieces, and the client may half-close after it.
    let mut s = TcpStream::connect(a).unwrap();
    for piece in [&b"GE"[..], b"T /hea", b"lth HTTP/1.0\r", b"\n\r\n"] {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut out = String::new();
    s.set_read_timeout(Some(t)).unwrap();
    s.read_to_string(&mut out).unwrap();
    assert!(out.ends_with("health: up\n"), "{out}");
    let raw = http_raw_half_close(a, b"GET / HTTP/1.0\r\n\r\n", t);
    assert!(String::from_utf8_lossy(&raw).ends_with("health: up\n"));

    // Clients closing early (before sending, mid-request) do not disturb anything.
    for _ in 0..20 {
        drop(TcpStream::connect(a).unwrap());
        let mut s = TcpStream::connect(a).unwrap();
        let _ = s.write_all(b"GET /prim");
        drop(s);
    }
    // A client that resets the connection right after sending.
    for _ in 0..20 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.connect(&a.into()).unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        let mut s: TcpStream = s.into();
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        drop(s);
    }
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));

    // Slow client: the whole head must arrive within request_timeout (1 s here).
    let started = Instant::now();
    let raw = http_raw(a, b"GET / HTTP/1.0\r\n", Duration::from_secs(5));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    assert_eq!(parse_http_response(&raw).map(|r| r.status), Some(408));
}

#[test]
fn server_killed_then_restarted() {
    let mut db = MariaDb::start();
    let d = start(&db, "");
    let p = d.http_port();
    wait_status(p, "/", 200, Duration::from_secs(10));

    db.kill();
    let bound = Duration::from_millis(INTERVAL_MS + TIMEOUT_MS);
    let (took, body) = wait_status(p, "/", 503, Duration::from_secs(10));
    eprintln!("kill detected after {took:?} (bound interval+timeout = {bound:?}): {body}");
    assert!(took <= bound + Duration::from_millis(500), "took {took:?}");
    assert!(
        body == "health: down - connection refused\n"
            || body == "health: down - connection lost during core facts\n"
            || body.starts_with("health: down - connection lost"),
        "{body}"
    );
    // The next round reconnects and is refused.
    wait_until(Duration::from_secs(5), "connection refused", || {
        http_get(p, "/primary") == (503, "primary: down - connection refused\n".into())
    });

    db.restart();
    let (took, _) = wait_status(p, "/", 200, Duration::from_secs(10));
    eprintln!("back up {took:?} after the restart");
    assert_eq!(http_get(p, "/primary").0, 200);
}

#[test]
fn server_frozen_then_resumed() {
    let db = MariaDb::start();
    let d = start(&db, "");
    let p = d.http_port();
    wait_status(p, "/", 200, Duration::from_secs(10));
    // Let the connection settle, then count descriptors.
    std::thread::sleep(Duration::from_millis(500));
    let before = open_fds(d.pid());

    db.stop_signal();
    let frozen_at = Instant::now();
    let bound = Duration::from_millis(INTERVAL_MS + TIMEOUT_MS);
    let (took, body) = wait_status(p, "/", 503, Duration::from_secs(10));
    eprintln!("freeze detected after {took:?} (bound {bound:?}): {body}");
    assert!(took <= bound + Duration::from_millis(500), "took {took:?}");
    assert!(body.starts_with("health: down - timeout"), "{body}");

    // During the hang: every request answered at once, descriptors flat.
    let mut worst = Duration::ZERO;
    let mut max_fds = 0;
    while frozen_at.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let (status, _) = http_get(p, "/primary");
        worst = worst.max(t.elapsed());
        assert_eq!(status, 503);
        max_fds = max_fds.max(open_fds(d.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("fds before {before}, max during the hang {max_fds}; slowest answer {worst:?}");
    assert!(
        worst < Duration::from_millis(500),
        "slowest answer {worst:?}"
    );
    assert!(
        max_fds <= before + 3,
        "descriptors grew during the hang: {before} -> {max_fds}"
    );

    db.cont();
    let (took, _) = wait_status(p, "/", 200, Duration::from_secs(10));
    eprintln!("healthy {took:?} after SIGCONT");
    std::thread::sleep(Duration::from_millis(500));
    let after = open_fds(d.pid());
    assert!(
        after <= before + 1,
        "descriptors after: {before} -> {after}"
    );
}

#[test]
fn starting_until_the_first_round_completes() {
    // A "server" that accepts and never says a word: the first round hangs in
    // connect for connect_timeout.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_port = hole.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        hole.set_nonblocking(true).unwrap();
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            if let Ok((s, _)) = hole.accept() {
                conns.push(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let http = free_port();
    let cfg = config(hole_port, http, "")
        .replace("connect_timeout = \"500ms\"", "connect_timeout = \"3s\"")
        // A round may take the whole connect timeout: stale only after that.
        .replace("stale_after = \"3s\"", "stale_after = \"5s\"");
    let d = Daemon::start(&cfg, &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)]);
    let p = d.http_port();
    for path in ["/", "/primary", "/replica", "/read-only"] {
        let (status, body) = http_get(p, path);
        assert_eq!(status, 503, "{path}");
        assert!(body.ends_with(": starting\n"), "{path}: {body}");
    }
    assert_eq!(http_get(p, "/live"), (503, "live: starting\n".into()));
    // Then the timeout counts at once.
    let (_, body) = wait_status(p, "/", 503, Duration::from_secs(10));
    let (_, body2) = {
        let mut last = body;
        let took = wait_until(Duration::from_secs(10), "a timeout verdict", || {
            last = http_get(p, "/").1;
            last.contains("timeout during connect")
        });
        (took, last)
    };
    assert_eq!(body2, "health: down - timeout during connect\n");
    assert_eq!(http_get(p, "/live"), (200, "live: up\n".into()));
    drop(d);
    let _ = held.join();
}

#[test]
fn check_query_error_is_a_fact_not_a_broken_connection() {
    let db = MariaDb::shared();
    let d = start(db, "query = \"SELECT * FROM no_such_db.t\"");
    let p = d.http_port();
    let body = wait_verdict(p, "/", 503, Duration::from_secs(10));
    // The account may not read that schema: 1142 (command denied), a server reply.
    assert_eq!(body, "health: down - check query failed (error 1142)\n");
    // The connection is kept: the prober does not reconnect every round.
    let status = http_request(p, b"GET /status HTTP/1.0\r\n\r\n");
    let doc: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(doc["snapshot"]["facts"]["check_query"]["code"], 1142);
    let user = doc["config"]["mysql"]["user"].as_str().unwrap().to_string();
    let ids = || {
        db.sql(&format!(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER='{user}'"
        ))
    };
    let first = ids();
    std::thread::sleep(Duration::from_millis(INTERVAL_MS * 5));
    let later = ids();
    assert_eq!(first.lines().count(), 1, "one connection: {first:?}");
    assert_eq!(first, later, "the prober reconnected");
}

#[test]
fn rotated_password_file_needs_no_restart() {
    use std::os::unix::fs::PermissionsExt;
    let db = MariaDb::shared();
    db.create_checker_user("rotchk", PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let http = free_port();
    let cfg = config(db.port(), http, "").replace(
        "user = \"mysqlchk\"",
        &format!("user = \"rotchk\"\npassword_file = \"{}\"", pw.display()),
    );
    let d = Daemon::start(&cfg, &[]);
    let p = d.http_port();
    wait_status(p, "/", 200, Duration::from_secs(10));

    // Rotate: the account first, then the file; then the server drops our session.
    let session = || db.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE USER='rotchk'");
    let old = session();
    assert_eq!(old.lines().count(), 1, "{old:?}");
    db.sql("ALTER USER 'rotchk'@'%' IDENTIFIED BY 'new-Rotated-pw'");
    std::fs::write(&pw, "new-Rotated-pw\n").unwrap();
    let _ = db.try_sql(&format!("KILL {}", old.trim()));
    // The next reconnect reads the new password: a new session, up, no restart.
    wait_until(Duration::from_secs(10), "a new session", || {
        let now = session();
        now.lines().count() == 1 && now != old
    });
    wait_status(p, "/", 200, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(INTERVAL_MS * 3));
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    assert!(!d.log().contains("new-Rotated-pw"));
}

#[test]
fn auth_errors_logged_once_per_episode_and_json_logs() {
    let db = MariaDb::shared();
    db.create_checker_user("authchk", PASSWORD);
    let http = free_port();
    let cfg = config(db.port(), http, "").replace("user = \"mysqlchk\"", "user = \"authchk\"")
        + "\n[log]\nformat = \"json\"\n";
    let d = Daemon::start(&cfg, &[("MYSQLCHK_MYSQL_PASSWORD", "wrong-one")]);
    let p = d.http_port();
    let body = wait_verdict(p, "/", 503, Duration::from_secs(10));
    assert_eq!(
        body,
        "health: down - access denied for the checker account (error 1045)\n"
    );
    // Many failed rounds, one ERROR line that says what to look at.
    std::thread::sleep(Duration::from_millis(INTERVAL_MS * 8));
    let log = d.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    let errors: Vec<&serde_json::Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{log}");
    let msg = errors[0]["fields"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("every node"), "{msg}");
    assert!(!log.contains("wrong-one"));
}

/// One agent-check answer (no line sent: the default role).
fn agent_answer(port: u16) -> String {
    let mut s = TcpStream::connect(addr(port)).expect("agent port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

/// A server at `max_connections` is alive but full: when the checker must reconnect
/// (its connection killed) and is refused with 1040, it drains (maintenance status,
/// agent `drain`) for `check.full_grace`, then is down; a free slot brings it back.
/// Slots are filled from root: the checker's account has no CONNECTION ADMIN, so
/// the extra connection MariaDB keeps for that privilege is not its.
#[test]
fn full_server_drains_then_is_down_after_the_grace() {
    let db = MariaDb::start();
    let agent = free_port();
    let http = free_port();
    let user = format!("chk{http}");
    db.create_checker_user(&user, PASSWORD);
    let d = Daemon::start_with_ports(
        &config(db.port(), http, "full_grace = \"3s\""),
        &[
            ("MYSQLCHK_MYSQL_PASSWORD", PASSWORD),
            ("MYSQLCHK_MYSQL_USER", &user),
            ("MYSQLCHK_LISTEN_AGENT", &format!("127.0.0.1:{agent}")),
        ],
        &[http, agent],
    );
    let p = d.http_port();
    wait_verdict(p, "/", 200, Duration::from_secs(10));

    // Ten root sessions that stay, then a limit of ten (MariaDB's minimum).
    struct Sleepers(Vec<std::process::Child>);
    impl Drop for Sleepers {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let sleepers = Sleepers(
        (0..10)
            .map(|_| {
                std::process::Command::new("mariadb")
                    .args(["--no-defaults", "--protocol=TCP", "-h127.0.0.1", "-uroot"])
                    .arg(format!("-P{}", db.port()))
                    .args(["-e", "SELECT SLEEP(600)"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("mariadb client")
            })
            .collect(),
    );
    wait_until(
        Duration::from_secs(10),
        "ten sleeping root sessions",
        || {
            db.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'")
            .trim()
            == "10"
        },
    );
    let checker = db.sql(&format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER='{user}'"
    ));
    db.sql(&format!(
        "SET GLOBAL max_connections = 10; KILL {}",
        checker.trim()
    ));

    let (took, body) = wait_status(p, "/", 404, Duration::from_secs(10));
    let drained = Instant::now();
    eprintln!("full seen after {took:?}: {body}");
    assert_eq!(body, "health: maintenance - full: too many connections\n");
    assert_eq!(
        http_get(p, "/replica").1,
        "replica: maintenance - full: too many connections\n"
    );
    assert_eq!(agent_answer(agent), "drain\n");
    assert_eq!(http_get(p, "/live").0, 200);

    let (_, body) = wait_status(p, "/", 503, Duration::from_secs(10));
    let grace = drained.elapsed();
    eprintln!("down {grace:?} after the drain began: {body}");
    assert_eq!(
        body,
        "health: down - too many connections (error 1040), full for more than 3s\n"
    );
    assert!(grace >= Duration::from_millis(2500), "{grace:?}");
    assert!(agent_answer(agent).starts_with("down #too many connections"));

    db.sql("SET GLOBAL max_connections = 200");
    let (took, _) = wait_status(p, "/", 200, Duration::from_secs(10));
    eprintln!("back up {took:?} after a slot was free");
    drop(sleepers);
    let metrics = http_get(p, "/metrics").1;
    for (to, n) in [("maintenance", 1), ("down", 1), ("up", 2)] {
        let want = format!("mysqlchk_transitions_total{{role=\"health\",to=\"{to}\"}} {n}\n");
        assert!(metrics.contains(&want), "{want} in {metrics}");
    }
}
