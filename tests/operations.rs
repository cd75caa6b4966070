//! Operations (README, "Operations") against the real binary: reloads, stops and hand-overs while a
//! client hammers the port the way HAProxy does (one TCP connection per check), systemd
//! socket activation and notifications, what the log says during an outage, and the
//! `/metrics` exposition as `promtool` sees it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::daemon::BIN;
use common::process::{self, run_with_timeout};
use common::{
    free_port, http_get, parse_http_response, process_alive, wait_until, Daemon, Haproxy, MariaDb,
};

const PASSWORD: &str = "chk-Pa55word-ops";
const PASSWORD_ENV: (&str, &str) = ("MYSQLCHK_MYSQL_PASSWORD", PASSWORD);
const NO_MAINTENANCE: &str = "/nonexistent/mysqlchk-maintenance";

// ---------------------------------------------------------------------------------
// Configs

/// A daemon config; every field may change between reloads.
#[derive(Clone)]
struct Conf {
    db_port: u16,
    user: String,
    http: Vec<u16>,
    agent: Vec<u16>,
    connect_timeout: &'static str,
    stale_after: &'static str,
    maintenance_file: String,
    /// Appended to `[check]`.
    check_extra: String,
}

impl Conf {
    fn new(db_port: u16, user: &str, http: &[u16]) -> Conf {
        Conf {
            db_port,
            user: user.to_string(),
            http: http.to_vec(),
            agent: Vec::new(),
            connect_timeout: "500ms",
            stale_after: "3s",
            maintenance_file: NO_MAINTENANCE.to_string(),
            check_extra: String::new(),
        }
    }

    fn render(&self) -> String {
        let list = |ports: &[u16]| {
            ports
                .iter()
                .map(|p| format!("\"127.0.0.1:{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let agent = if self.agent.is_empty() {
            String::new()
        } else {
            format!("agent = [{}]\n", list(&self.agent))
        };
        format!(
            r#"[listen]
http = [{http}]
{agent}request_timeout = "1s"

[mysql]
host = "127.0.0.1"
port = {db_port}
user = "{user}"
connect_timeout = "{connect_timeout}"

[check]
interval = "200ms"
timeout = "200ms"
stale_after = "{stale_after}"
maintenance_file = "{maintenance_file}"
{check_extra}
"#,
            http = list(&self.http),
            db_port = self.db_port,
            user = self.user,
            connect_timeout = self.connect_timeout,
            stale_after = self.stale_after,
            maintenance_file = self.maintenance_file,
            check_extra = self.check_extra,
        )
    }
}

/// A checker account of its own on `db` (tests share a server), named after `tag`.
fn checker_user(db: &MariaDb, tag: u16, suffix: &str) -> String {
    let user = format!("ops{tag}{suffix}");
    db.create_checker_user(&user, PASSWORD);
    user
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Whether a connect to 127.0.0.1:`port` is refused right now (RST to the SYN).
fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
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

fn count(d: &Daemon, needle: &str) -> usize {
    d.log().matches(needle).count()
}

/// Rewrites the config, sends SIGHUP and waits until the daemon logged one more
/// `reloaded` line. Returns how long the reload took to show in the log.
fn reload(d: &Daemon, conf: &Conf) -> Duration {
    let before = count(d, "reloaded ");
    d.write_config(&conf.render());
    d.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(5), "a `reloaded` log line", || {
        count(d, "reloaded ") > before
    })
}

// ---------------------------------------------------------------------------------
// The HAProxy-like client

/// Outcomes of the hammering client's requests.
#[derive(Default, Debug, Clone)]
struct Tally {
    total: u64,
    statuses: BTreeMap<u16, u64>,
    /// Answers whose body ends with `starting`.
    starting: u64,
    /// Connect answered with RST (nobody listening).
    refused: u64,
    /// RST after the connection was established.
    reset: u64,
    /// Any other connect failure (incl. connect timeout).
    connect_error: u64,
    /// Closed without a byte.
    no_answer: u64,
    /// Bytes that are not a complete HTTP response.
    partial: u64,
    /// No complete answer within the read timeout.
    timeout: u64,
    slowest: Duration,
    /// The first few failures, for the report.
    examples: Vec<String>,
}

impl Tally {
    fn failures(&self) -> u64 {
        self.refused
            + self.reset
            + self.connect_error
            + self.no_answer
            + self.partial
            + self.timeout
    }

    fn merge(&mut self, o: &Tally) {
        self.total += o.total;
        for (s, n) in &o.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
        self.starting += o.starting;
        self.refused += o.refused;
        self.reset += o.reset;
        self.connect_error += o.connect_error;
        self.no_answer += o.no_answer;
        self.partial += o.partial;
        self.timeout += o.timeout;
        self.slowest = self.slowest.max(o.slowest);
        for e in &o.examples {
            if self.examples.len() < 10 {
                self.examples.push(e.clone());
            }
        }
    }

    fn fail(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }

    /// One `GET <path> HTTP/1.0` on a new connection, recorded.
    fn request(&mut self, target: SocketAddr, path: &str) {
        let started = Instant::now();
        self.total += 1;
        let mut s = match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                self.refused += 1;
                return self.fail(format!("refused at request {}", self.total));
            }
            Err(e) => {
                self.connect_error += 1;
                return self.fail(format!("connect: {e}"));
            }
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        if let Err(e) = s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()) {
            self.reset += 1;
            return self.fail(format!("write: {e}"));
        }
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.timeout += 1;
                    return self.fail(format!("timeout after {} bytes", raw.len()));
                }
                Err(e) => {
                    self.reset += 1;
                    return self.fail(format!("read after {} bytes: {e}", raw.len()));
                }
            }
        }
        self.slowest = self.slowest.max(started.elapsed());
        if raw.is_empty() {
            self.no_answer += 1;
            return self.fail("closed without an answer".into());
        }
        let complete = parse_http_response(&raw).filter(|r| {
            r.header("Content-Length")
                .and_then(|l| l.parse::<usize>().ok())
                .is_some_and(|l| l == r.body.len())
        });
        match complete {
            Some(r) => {
                *self.statuses.entry(r.status).or_default() += 1;
                if r.body.trim_end().ends_with("starting") {
                    self.starting += 1;
                    self.fail(format!("answered {:?}", r.body));
                }
            }
            None => {
                self.partial += 1;
                self.fail(format!("partial: {:?}", String::from_utf8_lossy(&raw)));
            }
        }
    }
}

/// Client threads sending checks back to back (2 ms apart each) until stopped.
struct Hammer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
    /// Requests started so far, all threads.
    started: Arc<AtomicU64>,
}

impl Hammer {
    fn start(port: u16, path: &str, threads: usize) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let started = started.clone();
                let path = path.to_string();
                thread::spawn(move || {
                    let mut t = Tally::default();
                    // Bounded: at most 2 minutes even if nobody stops us.
                    let until = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        started.fetch_add(1, Ordering::Relaxed);
                        t.request(addr(port), &path);
                        thread::sleep(Duration::from_millis(2));
                    }
                    t
                })
            })
            .collect();
        Hammer {
            stop,
            threads,
            started,
        }
    }

    /// Requests started so far.
    fn so_far(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            all.merge(&t.join().expect("hammer thread panicked"));
        }
        all
    }
}

fn assert_clean(t: &Tally, what: &str) {
    assert!(
        t.failures() == 0 && t.starting == 0,
        "{what}: {} failed / {} starting of {} requests: {t:?}",
        t.failures(),
        t.starting,
        t.total
    );
}

// ---------------------------------------------------------------------------------
// Helpers: a MySQL that never speaks, orphaned processes

/// A TCP "server" that accepts and never says a word: a probe round against it
/// lasts `connect_timeout`. Holds connections until dropped (at most 60 s).
struct Hole {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hole {
    fn start() -> Hole {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the hole");
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            let until = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < until {
                if let Ok((c, _)) = l.accept() {
                    held.push(c);
                }
                thread::sleep(Duration::from_millis(5));
            }
        });
        Hole {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Hole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Live processes (not zombies) whose command line contains `needle`.
fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && process_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// A process that is not our child (the hand-over's new daemon): SIGKILLed when
/// dropped if still alive, so a failing test leaves nothing behind.
struct Orphan(u32);

impl Orphan {
    /// SIGTERM and wait until it is gone (or a zombie nobody reaps). Returns the time.
    fn terminate(&self, deadline: Duration) -> Duration {
        let pid = self.0;
        process::send_signal(pid, libc::SIGTERM);
        wait_until(deadline, &format!("pid {pid} to exit on SIGTERM"), || {
            !process_alive(pid)
        })
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        if process_alive(self.0) {
            process::send_signal(self.0, libc::SIGKILL);
        }
    }
}

/// The hand-over's new daemon: the one process other than `old` running our config.
fn successor(d: &Daemon, old: u32) -> Orphan {
    let cfg = d.config_path().display().to_string();
    let mut found = Vec::new();
    wait_until(Duration::from_secs(10), "the new process", || {
        found = pids_with_cmdline(&cfg)
            .into_iter()
            .filter(|&p| p != old)
            .collect();
        !found.is_empty()
    });
    assert_eq!(found.len(), 1, "more than one successor: {found:?}");
    Orphan(found[0])
}

// ---------------------------------------------------------------------------------
// SIGHUP

/// Ten reloads while checks keep coming: listeners appear and disappear, the
/// account changes, the hammered port is never refused and never says `starting`.
#[test]
fn ten_reloads_under_load_drop_nothing() {
    let db = MariaDb::shared();
    let (p1, p2, a1) = (free_port(), free_port(), free_port());
    let users = [checker_user(db, p1, "a"), checker_user(db, p1, "b")];
    let base = Conf::new(db.port(), &users[0], &[p1]);
    let d = Daemon::start(&base.render(), &[PASSWORD_ENV]);
    wait_status(p1, "/", 200, Duration::from_secs(10));

    let hammer = Hammer::start(p1, "/", 2);
    thread::sleep(Duration::from_millis(300));
    let mut reload_times = Vec::new();
    for i in 0..10 {
        let mut c = base.clone();
        // Credentials-only change: keeps the snapshot (no `starting`).
        c.user = users[i % 2].clone();
        c.stale_after = if i % 3 == 0 { "4s" } else { "3s" };
        let extra = i % 2 == 0;
        if extra {
            c.http = vec![p1, p2];
            c.agent = vec![a1];
        }
        reload_times.push(reload(&d, &c));
        if extra {
            assert_eq!(
                http_get(p2, "/"),
                (200, "health: up\n".into()),
                "reload {i}"
            );
            let mut agent = TcpStream::connect(addr(a1)).expect("agent port");
            agent
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let mut line = String::new();
            let _ = agent.read_to_string(&mut line);
            assert!(line.starts_with("up"), "agent said {line:?}");
        } else {
            wait_until(
                Duration::from_secs(3),
                "removed listeners to refuse",
                || refused(p2) && refused(a1),
            );
        }
        thread::sleep(Duration::from_millis(150));
    }
    thread::sleep(Duration::from_millis(300));
    let t = hammer.finish();
    eprintln!(
        "10 reloads (log latency {reload_times:?}): {} requests, statuses {:?}, refused {}, \
         reset {}, no answer {}, partial {}, timeout {}, starting {}, slowest {:?}",
        t.total,
        t.statuses,
        t.refused,
        t.reset,
        t.no_answer,
        t.partial,
        t.timeout,
        t.starting,
        t.slowest
    );
    assert_clean(&t, "during 10 reloads");
    assert_eq!(t.statuses.keys().copied().collect::<Vec<_>>(), vec![200]);
    assert!(t.total >= 100, "too few requests to mean anything: {t:?}");
    let log = d.log();
    assert_eq!(log.matches("now listening on").count(), 10, "{log}");
    assert_eq!(log.matches("no longer listening on").count(), 10, "{log}");
    assert!(!log.contains("reload rejected"), "{log}");
    assert!(!log.contains(PASSWORD), "password in the log");
}

/// New thresholds apply at once; an invalid config changes nothing; a new target
/// starts again at `starting`.
#[test]
fn reload_applies_thresholds_and_rejects_invalid_config() {
    let db = MariaDb::shared();
    let p = free_port();
    let user = checker_user(db, p, "");
    let flags = tempfile::tempdir().unwrap();
    let flag = flags.path().join("maintenance");
    std::fs::write(&flag, "reason=reload test\n").unwrap();
    let mut c = Conf::new(db.port(), &user, &[p]);
    c.maintenance_file = flag.display().to_string();
    c.check_extra = "maintenance_status = 404".into();
    let d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    let (_, body) = wait_status(p, "/", 404, Duration::from_secs(10));
    assert!(body.contains("reload test"), "{body}");

    // 404 -> 503 with the flag present.
    c.check_extra = "maintenance_status = 503".into();
    reload(&d, &c);
    let (took, body) = wait_status(p, "/", 503, Duration::from_secs(3));
    eprintln!("maintenance_status 503 applied {took:?} after the reload log line");
    assert!(body.contains("reload test"), "{body}");

    // Invalid: rejected with one line per error, the old thresholds stay.
    let rejected_before = count(&d, "reload rejected");
    let mut bad = c.clone();
    bad.check_extra = "maintenance_status = 200\nbogus_key = 1".into();
    d.write_config(&bad.render());
    d.signal(libc::SIGHUP);
    d.wait_for_log(
        "reload rejected: keeping the running configuration",
        Duration::from_secs(5),
    );
    let log = d.log();
    let rejected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload rejected"))
        .collect();
    eprintln!("{}", rejected.join("\n"));
    assert!(
        rejected.len() - rejected_before >= 3,
        "one line per error plus the verdict: {rejected:#?}"
    );
    assert!(rejected.iter().any(|l| l.contains("maintenance_status")));
    assert!(rejected.iter().any(|l| l.contains("bogus_key")));
    for _ in 0..5 {
        let (status, body) = http_get(p, "/");
        assert_eq!(status, 503, "old threshold kept: {body}");
        thread::sleep(Duration::from_millis(100));
    }

    // The flag goes away, then the check query starts failing.
    std::fs::remove_file(&flag).unwrap();
    wait_status(p, "/", 200, Duration::from_secs(3));
    c.check_extra = "maintenance_status = 503\nquery = \"SELECT * FROM no_such_db.t\"".into();
    reload(&d, &c);
    let (took, body) = wait_status(p, "/", 503, Duration::from_secs(3));
    eprintln!("failing query seen {took:?} after the reload");
    assert_eq!(body, "health: down - check query failed (error 1142)\n");
    c.check_extra = "maintenance_status = 503".into();
    reload(&d, &c);
    wait_status(p, "/", 200, Duration::from_secs(3));

    // A new address that cannot be bound rejects the whole reload, thresholds included.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let mut unbindable = c.clone();
    unbindable.http = vec![p, busy_port];
    unbindable.check_extra = "query = \"SELECT * FROM no_such_db.t\"".into();
    let outcome = try_reload(&d, &unbindable);
    let lines = outcome.expect_err("a reload with a busy address must be rejected");
    assert!(
        lines.contains(&format!("cannot listen on 127.0.0.1:{busy_port}")),
        "{lines}"
    );
    thread::sleep(Duration::from_millis(600));
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    drop(busy);

    // Another MySQL target: nothing known applies, `starting` until its first round.
    let hole = Hole::start();
    let mut other = c.clone();
    other.db_port = hole.port;
    d.write_config(&other.render());
    d.signal(libc::SIGHUP);
    let mut seen = BTreeSet::new();
    wait_until(Duration::from_secs(5), "a timeout verdict", || {
        let body = http_get(p, "/").1;
        seen.insert(body.clone());
        body.contains("timeout")
    });
    eprintln!("answers after switching the target: {seen:?}");
    assert!(seen.contains("health: starting\n"), "{seen:?}");
    drop(hole);
    drop(d);
}

/// Writes `conf`, sends SIGHUP and waits for the outcome: `Ok(())` when reloaded,
/// `Err(the rejection lines)` when rejected.
fn try_reload(d: &Daemon, conf: &Conf) -> Result<(), String> {
    let (ok, rejected) = (count(d, "reloaded "), count(d, "reload rejected"));
    d.write_config(&conf.render());
    d.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(5), "the reload's outcome", || {
        count(d, "reloaded ") > ok || count(d, "reload rejected") > rejected
    });
    if count(d, "reloaded ") > ok {
        return Ok(());
    }
    Err(d
        .log()
        .lines()
        .filter(|l| l.contains("reload rejected"))
        .skip(rejected)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The same address, first a check port then an agent port (and back): a valid
/// config, so the reload must not fail on "address in use" against our own socket.
#[test]
fn reload_moves_an_address_between_http_and_agent() {
    let db = MariaDb::shared();
    let (p1, p2) = (free_port(), free_port());
    let user = checker_user(db, p1, "");
    let both = Conf::new(db.port(), &user, &[p1, p2]);
    let d = Daemon::start(&both.render(), &[PASSWORD_ENV]);
    wait_status(p2, "/", 200, Duration::from_secs(10));

    let mut moved = both.clone();
    moved.http = vec![p1];
    moved.agent = vec![p2];
    let outcome = try_reload(&d, &moved);
    assert!(outcome.is_ok(), "valid reload rejected: {outcome:?}");
    let mut agent = TcpStream::connect(addr(p2)).expect("agent port");
    agent
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut line = String::new();
    let _ = agent.read_to_string(&mut line);
    assert!(
        line.starts_with("up"),
        "{p2} now an agent port said {line:?}"
    );

    let outcome = try_reload(&d, &both);
    assert!(outcome.is_ok(), "valid reload rejected: {outcome:?}");
    assert_eq!(http_get(p2, "/"), (200, "health: up\n".into()));
}

// ---------------------------------------------------------------------------------
// SIGTERM

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let db = MariaDb::shared();
    let p = free_port();
    let user = checker_user(db, p, "");
    let mut d = Daemon::start(&Conf::new(db.port(), &user, &[p]).render(), &[PASSWORD_ENV]);
    wait_status(p, "/", 200, Duration::from_secs(10));

    let mut s = TcpStream::connect(addr(p)).unwrap();
    s.write_all(b"GET /primary HTTP/1.0\r\n").unwrap();
    // Let it be accepted and read.
    thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    // It stops accepting first...
    let refused_after = wait_until(Duration::from_secs(3), "new connections refused", || {
        refused(p)
    });
    // ...while the request in flight is still answered.
    s.write_all(b"\r\n")
        .expect("the in-flight connection was dropped");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    let answered = signalled.elapsed();
    let text = String::from_utf8_lossy(&raw);
    assert!(read.is_ok(), "{read:?} after {text:?}");
    assert!(
        text.starts_with("HTTP/1.0 200 OK\r\n") && text.ends_with("primary: up\n"),
        "{text:?}"
    );
    drop(s);
    let status = d
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM:\n{}", d.log()));
    let exited = signalled.elapsed();
    eprintln!(
        "SIGTERM: refusing new connections after {refused_after:?}, in-flight answered after \
         {answered:?}, exited ({status}) {exited:?} after the signal"
    );
    assert!(status.success(), "{status}\n{}", d.log());
    assert!(exited < Duration::from_secs(3), "exit took {exited:?}");
    assert!(refused(p));
    let log = d.log();
    assert!(log.contains("stopping"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

// ---------------------------------------------------------------------------------
// SIGUSR2

/// Hammer through `rounds` hand-overs in a row (the first from our child, the next
/// ones from its successors); returns the tally, the last process and, per hand-over,
/// the time from the signal to the old process's exit.
fn hand_overs_under_load(
    d: &mut Daemon,
    port: u16,
    rounds: usize,
) -> (Tally, Orphan, Vec<Duration>) {
    let hammer = Hammer::start(port, "/", 2);
    thread::sleep(Duration::from_millis(300));
    let mut times = Vec::new();
    let mut current: Option<Orphan> = None;
    let mut old = d.pid();
    for round in 0..rounds {
        let before = hammer.so_far();
        let signalled = Instant::now();
        match &current {
            None => {
                d.signal(libc::SIGUSR2);
                let status = d.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
                    panic!("old process still running 20 s after SIGUSR2:\n{}", d.log())
                });
                assert!(
                    status.success(),
                    "old process exited with {status}\n{}",
                    d.log()
                );
            }
            Some(o) => {
                process::send_signal(o.0, libc::SIGUSR2);
                wait_until(Duration::from_secs(20), "the old process to exit", || {
                    !process_alive(o.0)
                });
            }
        }
        let took = signalled.elapsed();
        let during = hammer.so_far() - before;
        let new = successor(d, old);
        eprintln!(
            "hand-over {round}: old pid {old} gone {took:?} after SIGUSR2 (~{during} requests \
             meanwhile); new pid {}",
            new.0
        );
        old = new.0;
        current = Some(new);
        times.push(took);
        // The new one alone, for a while.
        thread::sleep(Duration::from_millis(400));
    }
    let t = hammer.finish();
    eprintln!(
        "{rounds} hand-over(s): {} requests; statuses {:?}, refused {}, reset {}, no answer {}, \
         partial {}, timeout {}, starting {}, slowest {:?}",
        t.total,
        t.statuses,
        t.refused,
        t.reset,
        t.no_answer,
        t.partial,
        t.timeout,
        t.starting,
        t.slowest
    );
    (t, current.expect("at least one hand-over"), times)
}

#[test]
fn sigusr2_hand_over_under_load() {
    let db = MariaDb::shared();
    let (p, a) = (free_port(), free_port());
    let user = checker_user(db, p, "");
    let mut c = Conf::new(db.port(), &user, &[p]);
    c.agent = vec![a];
    let mut d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    wait_status(p, "/", 200, Duration::from_secs(10));

    let (t, new, _) = hand_overs_under_load(&mut d, p, 3);
    assert_clean(&t, "during the hand-overs");
    assert_eq!(t.statuses.keys().copied().collect::<Vec<_>>(), vec![200]);
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    let mut agent = TcpStream::connect(addr(a)).expect("agent port handed over");
    agent
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut line = String::new();
    let _ = agent.read_to_string(&mut line);
    assert!(line.starts_with("up"), "agent said {line:?}");
    let log = d.log();
    assert_eq!(
        log.matches("using inherited http socket").count(),
        3,
        "{log}"
    );
    assert_eq!(
        log.matches("using inherited agent socket").count(),
        3,
        "{log}"
    );
    assert_eq!(
        log.matches("hand-over: the new process accepts").count(),
        3,
        "{log}"
    );
    let took = new.terminate(Duration::from_secs(10));
    eprintln!("last process gone {took:?} after SIGTERM");
    assert!(refused(p) && refused(a), "nobody should listen any more");
}

/// Processes whose parent is `pid` and that are zombies.
fn zombie_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<u32>().ok()));
        if state == Some("Z") && ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// A new binary that cannot start (here: the config on disk is now invalid) leaves
/// the running one in charge, undisturbed; a later hand-over still works.
#[test]
fn sigusr2_failed_hand_over_keeps_the_old_process() {
    let db = MariaDb::shared();
    let p = free_port();
    let user = checker_user(db, p, "");
    let c = Conf::new(db.port(), &user, &[p]);
    let mut d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    wait_status(p, "/", 200, Duration::from_secs(10));

    let hammer = Hammer::start(p, "/", 2);
    thread::sleep(Duration::from_millis(200));
    let mut bad = c.clone();
    bad.check_extra = "interval = \"fast\"".into();
    d.write_config(&bad.render());
    d.signal(libc::SIGUSR2);
    d.wait_for_log(
        "hand-over: the new process did not report ready; keeping this one",
        Duration::from_secs(10),
    );
    thread::sleep(Duration::from_millis(300));
    let t = hammer.finish();
    eprintln!(
        "failed hand-over: {} requests, statuses {:?}, failures {}",
        t.total,
        t.statuses,
        t.failures()
    );
    assert_clean(&t, "during a failed hand-over");
    assert!(
        d.try_wait().is_none(),
        "the old process exited:\n{}",
        d.log()
    );
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    assert_eq!(
        pids_with_cmdline(&d.config_path().display().to_string()),
        vec![d.pid()]
    );

    // Fixed config: the next hand-over goes through.
    d.write_config(&c.render());
    let old = d.pid();
    d.signal(libc::SIGUSR2);
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("old process exits");
    assert!(status.success(), "{status}");
    let new = successor(&d, old);
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    new.terminate(Duration::from_secs(10));
}

/// The failed new process must be reaped: one zombie per failed SIGUSR2 otherwise.
#[test]
fn sigusr2_failed_hand_over_leaves_no_zombie() {
    let db = MariaDb::shared();
    let p = free_port();
    let user = checker_user(db, p, "");
    let c = Conf::new(db.port(), &user, &[p]);
    let d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    wait_status(p, "/", 200, Duration::from_secs(10));
    d.write_config("not toml [");
    d.signal(libc::SIGUSR2);
    d.wait_for_log("keeping this one", Duration::from_secs(10));
    thread::sleep(Duration::from_millis(500));
    let zombies = zombie_children(d.pid());
    assert!(
        zombies.is_empty(),
        "the failed new process {zombies:?} is a zombie child of {} (never waited for)",
        d.pid()
    );
}

/// The new process's first round lasts `connect_timeout` (a server that never
/// answers): the old one must go on answering meanwhile, and nobody says `starting`.
#[test]
fn sigusr2_hand_over_with_a_slow_first_round_never_answers_starting() {
    let hole = Hole::start();
    let p = free_port();
    let mut c = Conf::new(hole.port, "nobody", &[p]);
    c.connect_timeout = "1s";
    let mut d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    wait_until(Duration::from_secs(10), "a timeout verdict", || {
        http_get(p, "/").1.contains("timeout")
    });

    let (t, new, took) = hand_overs_under_load(&mut d, p, 1);
    let took = took[0];
    assert_clean(&t, "during the slow hand-over");
    assert_eq!(t.statuses.keys().copied().collect::<Vec<_>>(), vec![503]);
    assert!(
        took >= Duration::from_millis(900),
        "the old process left before the new one could have finished a round: {took:?}"
    );
    new.terminate(Duration::from_secs(10));
    drop(hole);
}

/// Whether `pid` has a handler for `sig` (the `SigCgt` mask of /proc/PID/status).
fn catches(pid: u32, sig: libc::c_int) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << (sig - 1)) != 0)
}

/// A SIGHUP to the new process while it waits for its first round (a target that
/// never answers: 4 s) must not kill it: the hand-over completes and the queued
/// reload happens once it accepts.
#[test]
fn sighup_to_the_new_process_during_its_first_round_is_not_fatal() {
    let hole = Hole::start();
    let p = free_port();
    let mut c = Conf::new(hole.port, "nobody", &[p]);
    c.connect_timeout = "4s";
    c.stale_after = "10s";
    let mut d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    let old = d.pid();
    // Listening comes a moment before the handlers (SIGUSR2 would be fatal then).
    assert!(wait_caught(old, libc::SIGUSR2, Duration::from_secs(10)));
    d.signal(libc::SIGUSR2);
    let new = successor(&d, old);
    d.wait_for_log("using inherited http socket", Duration::from_secs(10));
    // Its handlers go in right after it starts; without the fix only after the 4 s
    // round, so do not wait for them longer than that.
    let early = wait_caught(new.0, libc::SIGHUP, Duration::from_secs(2));
    eprintln!("SIGHUP handler installed in the new process: {early}");
    process::send_signal(new.0, libc::SIGHUP);

    let status = d.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "the hand-over did not complete (new process alive: {}):\n{}",
            process_alive(new.0),
            d.log()
        )
    });
    assert!(status.success(), "old process exited with {status}");
    assert!(process_alive(new.0), "the new process died:\n{}", d.log());
    d.wait_for_log("reloaded ", Duration::from_secs(10));
    assert!(process_alive(new.0), "the new process died:\n{}", d.log());
    assert_eq!(http_get(p, "/").0, 503);
    new.terminate(Duration::from_secs(10));
    drop(hole);
}

/// Polls for [`catches`] up to `deadline`; false if it never did.
fn wait_caught(pid: u32, sig: libc::c_int, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if catches(pid, sig) {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

/// SIGTERM to the old process while the new one is still in its first round: the
/// hand-over is cancelled, and once the old process has exited nothing is left
/// running (no process serving under a pid nobody knows).
#[test]
fn sigterm_during_a_pending_hand_over_leaves_no_process_behind() {
    let hole = Hole::start();
    let p = free_port();
    let mut c = Conf::new(hole.port, "nobody", &[p]);
    c.connect_timeout = "4s";
    c.stale_after = "10s";
    let mut d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    let old = d.pid();
    assert!(wait_caught(old, libc::SIGUSR2, Duration::from_secs(10)));
    d.signal(libc::SIGUSR2);
    let new = successor(&d, old);
    d.wait_for_log("using inherited http socket", Duration::from_secs(10));
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("old process still running after SIGTERM:\n{}", d.log()));
    assert!(status.success(), "old process exited with {status}");
    // Without the fix the new process completes its round ~4 s later and serves on.
    wait_until(
        Duration::from_secs(10),
        "the new process to be gone",
        || !process_alive(new.0),
    );
    assert!(refused(p), "somebody still listens on {p}:\n{}", d.log());
    let log = d.log();
    assert!(log.contains("hand-over cancelled"), "{log}");
    drop(hole);
}

/// A config without one of the addresses, then SIGUSR2: the new process does not
/// keep that socket (it is not systemd's), neither then nor after a reload.
#[test]
fn sigusr2_closes_a_socket_the_new_config_dropped() {
    let db = MariaDb::shared();
    let (p, q) = (free_port(), free_port());
    let user = checker_user(db, p, "");
    let c = Conf::new(db.port(), &user, &[p, q]);
    let mut d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    wait_status(q, "/", 200, Duration::from_secs(10));

    let mut fewer = c.clone();
    fewer.http = vec![p];
    d.write_config(&fewer.render());
    let old = d.pid();
    d.signal(libc::SIGUSR2);
    let status = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("old process still running after SIGUSR2:\n{}", d.log()));
    assert!(status.success(), "{status}");
    let new = successor(&d, old);
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    wait_until(
        Duration::from_secs(5),
        "the dropped address to close",
        || refused(q),
    );

    let before = count(&d, "reloaded ");
    process::send_signal(new.0, libc::SIGHUP);
    wait_until(Duration::from_secs(5), "a `reloaded` log line", || {
        count(&d, "reloaded ") > before
    });
    assert!(refused(q), "{q} listens again after a reload:\n{}", d.log());
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));
    new.terminate(Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------
// Agent port

/// One agent connection: sends `parts` with `gap` between them, returns the reply.
fn agent_ask(port: u16, parts: &[&str], gap: Duration) -> String {
    let mut s = TcpStream::connect(addr(port)).expect("agent port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            thread::sleep(gap);
        }
        s.write_all(part.as_bytes())
            .expect("write to the agent port");
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
}

/// A line that arrives in two pieces within the wait is judged whole; only what
/// has no newline by the deadline is judged as it stands.
#[test]
fn agent_judges_a_line_split_across_writes_whole() {
    let (p, a) = (free_port(), free_port());
    // Nobody listens on the MySQL port: the answers here come from the request line.
    let mut c = Conf::new(free_port(), "nobody", &[p]);
    c.agent = vec![a];
    let _d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    let gap = Duration::from_millis(20);
    assert_eq!(
        agent_ask(a, &["prim", "ary lag=x\n"], gap),
        "down #invalid lag=x\n"
    );
    assert_eq!(
        agent_ask(a, &["repl", "ica ", "max_lag=y\n"], gap),
        "down #invalid max_lag=y\n"
    );
    // No newline before the deadline (~100 ms): what arrived is the line.
    assert_eq!(agent_ask(a, &["repl"], gap), "down #unknown role repl\n");
}

/// Before its first round the agent answers a line without a state word, which
/// HAProxy ignores: a restart of mysqlchk (no socket units) leaves a server UP in a
/// real HAProxy, where `down #starting` would take it out at once (an agent `down`
/// skips `fall`). The HTTP port still answers `503 starting`.
#[test]
fn agent_restart_keeps_the_server_up_in_haproxy() {
    let db = MariaDb::shared();
    let (p, a) = (free_port(), free_port());
    let user = checker_user(db, p, "");
    let mut c = Conf::new(db.port(), &user, &[p]);
    c.agent = vec![a];
    let mut d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    wait_status(p, "/", 200, Duration::from_secs(10));
    let front = free_port();
    let hap = Haproxy::start(&format!(
        "listen mysql-read\n\
         \x20   bind 127.0.0.1:{front}\n\
         \x20   option httpchk\n\
         \x20   server db1 127.0.0.1:{db} check port {p} inter 2s fall 3 rise 1 \
         agent-check agent-port {a} agent-inter 200ms\n",
        db = db.port()
    ));
    hap.wait_for_checked_state("mysql-read", "db1", "UP", Duration::from_secs(10));
    wait_until(Duration::from_secs(5), "an agent check", || {
        hap.stat_field("mysql-read", "db1", "agent_status")
            .is_some_and(|s| s.contains("L7OK"))
    });

    // The restart: the new daemon's first round lasts 4 s (a target that never answers).
    d.terminate(Duration::from_secs(10));
    let hole = Hole::start();
    let mut slow = c.clone();
    slow.db_port = hole.port;
    slow.connect_timeout = "4s";
    slow.stale_after = "10s";
    let restarted = Instant::now();
    let _d2 = Daemon::start(&slow.render(), &[PASSWORD_ENV]);
    assert_eq!(agent_ask(a, &[], Duration::ZERO), "#starting\n");
    assert_eq!(http_get(p, "/"), (503, "health: starting\n".into()));
    // Seven agent checks or so, all answered `#starting`: the server stays UP (the
    // HTTP check's one `503 starting` only counts towards `fall`: `UP 2/3`).
    let mut states = BTreeSet::new();
    while restarted.elapsed() < Duration::from_millis(1800) {
        states.insert(hap.server_state("mysql-read", "db1"));
        thread::sleep(Duration::from_millis(100));
    }
    let last_agent = hap.stat_field("mysql-read", "db1", "last_agt");
    eprintln!("states while starting: {states:?}; last agent reply {last_agent:?}");
    assert!(
        restarted.elapsed() < Duration::from_secs(4),
        "the observation outlasted the first round"
    );
    assert!(
        states.iter().all(|s| s.starts_with("UP")),
        "states while starting: {states:?}\nhaproxy log:\n{}",
        hap.log()
    );
    drop(hole);
}

// ---------------------------------------------------------------------------------
// systemd

/// `systemd-socket-activate` passes 127.0.0.1:<port> named `http`; the config lists
/// another address. Requests queued before the first round are answered after it,
/// never `starting`.
#[test]
fn socket_activation_by_name_waits_for_the_first_round() {
    let hole = Hole::start();
    let (activated, configured) = (free_port(), free_port());
    let mut c = Conf::new(hole.port, "nobody", &[configured]);
    c.connect_timeout = "1s";
    let listen = format!("127.0.0.1:{activated}");
    let d = Daemon::spawn_program(
        Path::new("systemd-socket-activate"),
        &[
            "-l",
            &listen,
            "--fdname=http",
            "-E",
            PASSWORD_ENV.0,
            BIN,
            "serve",
            "-c",
            common::daemon::CONFIG_PLACEHOLDER,
        ],
        &c.render(),
        &[PASSWORD_ENV],
    );
    // The activator listens first; the first connection starts the daemon.
    wait_until(Duration::from_secs(10), "the activator to listen", || {
        !refused(activated)
    });
    let started = Instant::now();
    let (status, body) = http_get(activated, "/");
    let first = started.elapsed();
    eprintln!("first answer on the inherited socket after {first:?}: {status} {body:?}");
    assert_eq!(
        (status, body.as_str()),
        (503, "health: down - timeout during connect\n")
    );
    d.wait_for_log("using inherited http socket", Duration::from_secs(5));
    // The configured address is bound as well.
    wait_until(Duration::from_secs(5), "the configured address", || {
        !refused(configured)
    });
    assert_eq!(http_get(configured, "/").0, 503);

    // A reload keeps the socket matched by name (it is in no config).
    let hammer = Hammer::start(activated, "/", 1);
    thread::sleep(Duration::from_millis(200));
    reload(&d, &c);
    thread::sleep(Duration::from_millis(300));
    let t = hammer.finish();
    assert_clean(&t, "reload with a socket matched by name");
    assert!(t.total > 0);
    drop(d);
    drop(hole);
}

/// The same, matched by address, against a real server.
#[test]
fn socket_activation_by_address() {
    let db = MariaDb::shared();
    let p = free_port();
    let user = checker_user(db, p, "");
    let listen = format!("127.0.0.1:{p}");
    let d = Daemon::spawn_program(
        Path::new("systemd-socket-activate"),
        &[
            "-l",
            &listen,
            "--fdname=http",
            "-E",
            PASSWORD_ENV.0,
            BIN,
            "serve",
            "-c",
            common::daemon::CONFIG_PLACEHOLDER,
        ],
        &Conf::new(db.port(), &user, &[p]).render(),
        &[PASSWORD_ENV],
    );
    wait_until(Duration::from_secs(10), "the activator to listen", || {
        !refused(p)
    });
    let (status, body) = http_get(p, "/");
    assert_eq!((status, body.as_str()), (200, "health: up\n"));
    let log = d.log();
    assert!(
        log.contains(&format!("using inherited http socket 127.0.0.1:{p}")),
        "{log}"
    );
    assert!(!log.contains("cannot listen"), "{log}");
}

/// What arrives on a NOTIFY_SOCKET, with arrival times.
struct NotifyListener {
    _dir: tempfile::TempDir,
    path: String,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NotifyListener {
    fn start() -> NotifyListener {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let until = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < until {
                if let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    g.lock().unwrap().push((Instant::now(), msg));
                }
            }
        });
        NotifyListener {
            path: path.display().to_string(),
            _dir: dir,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Non-watchdog messages, in order.
    fn states(&self) -> Vec<String> {
        self.messages()
            .into_iter()
            .map(|(_, m)| m)
            .filter(|m| m != "WATCHDOG=1")
            .collect()
    }

    fn wait_states(&self, n: usize, what: &str) -> Vec<String> {
        let mut states = Vec::new();
        wait_until(Duration::from_secs(5), what, || {
            states = self.states();
            states.len() >= n
        });
        states
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[test]
fn systemd_notify_ready_reloading_watchdog_stopping() {
    let db = MariaDb::shared();
    let p = free_port();
    let user = checker_user(db, p, "");
    let n = NotifyListener::start();
    let c = Conf::new(db.port(), &user, &[p]);
    let mut d = Daemon::start(
        &c.render(),
        &[
            PASSWORD_ENV,
            ("NOTIFY_SOCKET", &n.path),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let states = n.wait_states(1, "READY=1");
    assert!(states[0].starts_with("READY=1"), "{states:?}");
    // READY means a round is done: no `starting` any more.
    assert_eq!(http_get(p, "/"), (200, "health: up\n".into()));

    // Watchdog pings every WATCHDOG_USEC/2.
    let since = Instant::now();
    thread::sleep(Duration::from_millis(1200));
    let pings: Vec<Instant> = n
        .messages()
        .into_iter()
        .filter(|(at, m)| m == "WATCHDOG=1" && *at >= since)
        .map(|(at, _)| at)
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{} WATCHDOG=1 in 1.2 s, gaps {gaps:?}", pings.len());
    assert!(pings.len() >= 4, "{} pings in 1.2 s", pings.len());
    assert!(
        gaps.iter().all(|g| *g < Duration::from_millis(400)),
        "a gap reaches WATCHDOG_USEC: {gaps:?}"
    );

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1.
    let before = monotonic_usec();
    reload(&d, &c);
    let states = n.wait_states(3, "RELOADING and READY");
    let after = monotonic_usec();
    eprintln!("notifications: {states:?}");
    let reloading = &states[1];
    assert!(reloading.contains("RELOADING=1"), "{states:?}");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"))
        .parse()
        .expect("MONOTONIC_USEC is a number");
    assert!(
        (before..=after).contains(&usec),
        "MONOTONIC_USEC {usec} not in [{before}, {after}]"
    );
    assert!(states[2].starts_with("READY=1"), "{states:?}");

    // A rejected reload still ends with READY=1 (systemd would wait otherwise).
    d.write_config("this is not toml [");
    d.signal(libc::SIGHUP);
    let states = n.wait_states(5, "RELOADING and READY after a rejected reload");
    assert!(states[3].contains("RELOADING=1"), "{states:?}");
    assert!(states[4].starts_with("READY=1"), "{states:?}");
    d.write_config(&c.render());

    // SIGTERM: STOPPING=1.
    d.signal(libc::SIGTERM);
    let states = n.wait_states(6, "STOPPING=1");
    assert_eq!(states[5], "STOPPING=1", "{states:?}");
    let status = d.wait_exit(Duration::from_secs(5)).expect("exit");
    assert!(status.success(), "{status}");
    let all: Vec<String> = n.messages().into_iter().map(|(_, m)| m).collect();
    assert!(
        !all.iter().any(|m| m.contains(PASSWORD)),
        "password in a notification"
    );
}

// ---------------------------------------------------------------------------------
// Logs

/// An 8 s outage at a 200 ms interval: one line down, one line up, errors once per
/// reason, nothing per request.
#[test]
fn outage_logs_one_transition_each_way() {
    let mut db = MariaDb::start();
    let p = free_port();
    let user = checker_user(&db, p, "");
    let d = Daemon::start(&Conf::new(db.port(), &user, &[p]).render(), &[PASSWORD_ENV]);
    wait_status(p, "/", 200, Duration::from_secs(10));
    thread::sleep(Duration::from_millis(300));
    let lines_before = d.log().lines().count();
    for _ in 0..50 {
        assert_eq!(http_get(p, "/primary").0, 200);
    }
    assert_eq!(
        d.log().lines().count(),
        lines_before,
        "requests are logged by default:\n{}",
        d.log()
    );

    db.kill();
    let down_at = Instant::now();
    let mut requests = 0;
    while down_at.elapsed() < Duration::from_secs(8) {
        let (status, _) = http_get(p, "/");
        if down_at.elapsed() > Duration::from_secs(1) {
            assert_eq!(status, 503);
        }
        requests += 1;
        thread::sleep(Duration::from_millis(100));
    }
    db.restart();
    wait_status(p, "/", 200, Duration::from_secs(10));
    thread::sleep(Duration::from_millis(1000));

    let log = d.log();
    let new: Vec<&str> = log.lines().skip(lines_before).collect();
    eprintln!(
        "log during the outage ({requests} requests meanwhile):\n{}",
        new.join("\n")
    );
    let downs: Vec<&&str> = new.iter().filter(|l| l.contains("up->down")).collect();
    let ups: Vec<&&str> = new.iter().filter(|l| l.contains("down->up")).collect();
    assert_eq!(downs.len(), 1, "{downs:#?}");
    assert_eq!(ups.len(), 1, "{ups:#?}");
    for role in ["health", "primary", "read-only"] {
        assert!(
            downs[0].contains(&format!("{role} up->down")),
            "{}",
            downs[0]
        );
        assert!(ups[0].contains(&format!("{role} down->up")), "{}", ups[0]);
    }
    let failing: Vec<&&str> = new.iter().filter(|l| l.contains("probe failing")).collect();
    let reasons: BTreeSet<&str> = failing
        .iter()
        .filter_map(|l| l.split("reason=").nth(1)?.split_whitespace().next())
        .collect();
    assert!(
        !failing.is_empty() && failing.len() == reasons.len() && failing.len() <= 3,
        "error episodes logged more than once per reason: {failing:#?}"
    );
    assert_eq!(
        new.iter().filter(|l| l.contains("probe recovered")).count(),
        1
    );
    // 40 rounds failed: a handful of lines, not one per round or request.
    assert!(new.len() <= 8, "{} lines:\n{}", new.len(), new.join("\n"));
    assert!(!log.contains(PASSWORD));
}

// ---------------------------------------------------------------------------------
// /metrics

/// `name{labels}` → value, and `name` → TYPE.
fn parse_metrics(text: &str) -> (BTreeMap<String, f64>, BTreeMap<String, String>) {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            if let (Some(n), Some(t)) = (w.next(), w.next()) {
                types.insert(n.to_string(), t.to_string());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let (key, value) = line.rsplit_once(' ').expect("sample line");
            let v = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            samples.insert(key.to_string(), v);
        }
    }
    (samples, types)
}

fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn promtool(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("promtool check metrics < \"$1\" 2>&1")
        .arg("sh")
        .arg(&file);
    let out = run_with_timeout(cmd, Duration::from_secs(20)).expect("promtool");
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() && said.trim().is_empty() {
        said = format!("promtool exited with {}", out.status);
    }
    said
}

#[test]
fn metrics_pass_promtool_and_carry_the_documented_series() {
    let db = MariaDb::shared();
    let p = free_port();
    let user = checker_user(db, p, "");
    let d = Daemon::start(&Conf::new(db.port(), &user, &[p]).render(), &[PASSWORD_ENV]);
    wait_status(p, "/", 200, Duration::from_secs(10));
    // A few rounds, and some traffic of every kind.
    thread::sleep(Duration::from_millis(600));
    assert_eq!(http_get(p, "/no-such-path").0, 400);
    assert_eq!(http_get(p, "/replica").0, 503);

    let first = scrape(p);
    let said = promtool(&first);
    assert!(said.trim().is_empty(), "promtool:\n{said}\n---\n{first}");
    let (m, types) = parse_metrics(&first);

    let version = format!(
        "mysqlchk_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&version), Some(&1.0), "{first}");
    for (role, up) in [
        ("health", 1.0),
        ("primary", 1.0),
        ("replica", 0.0),
        ("read-only", 1.0),
    ] {
        assert_eq!(
            m.get(&format!("mysqlchk_role_up{{role=\"{role}\"}}")),
            Some(&up),
            "{role}\n{first}"
        );
        let state = if up == 1.0 { "up" } else { "down" };
        assert_eq!(
            m.get(&format!(
                "mysqlchk_role_state{{role=\"{role}\",state=\"{state}\"}}"
            )),
            Some(&1.0),
            "{role}\n{first}"
        );
        let ones = m
            .iter()
            .filter(|(k, v)| {
                k.starts_with(&format!("mysqlchk_role_state{{role=\"{role}\",")) && **v == 1.0
            })
            .count();
        assert_eq!(ones, 1, "exactly one state per role: {role}");
    }
    for reason in ["refused", "timeout", "access_denied", "internal"] {
        assert_eq!(
            m.get(&format!(
                "mysqlchk_probe_errors_total{{reason=\"{reason}\"}}"
            )),
            Some(&0.0),
            "{reason}\n{first}"
        );
    }
    assert!(
        m.get("mysqlchk_http_requests_total{endpoint=\"health\",status=\"200\"}")
            .is_some_and(|v| *v >= 1.0),
        "{first}"
    );
    assert_eq!(
        m.get("mysqlchk_http_requests_total{endpoint=\"other\",status=\"400\"}"),
        Some(&1.0),
        "unknown paths count as `other`:\n{first}"
    );
    assert_eq!(
        m.get("mysqlchk_http_requests_total{endpoint=\"replica\",status=\"503\"}"),
        Some(&1.0),
        "{first}"
    );
    assert!(
        !first.contains("no-such-path"),
        "label values from a fixed set"
    );
    let age = m["mysqlchk_snapshot_age_seconds"];
    assert!((0.0..1.0).contains(&age), "snapshot age {age}");
    assert_eq!(m.get("mysqlchk_maintenance"), Some(&0.0));
    for (family, kind) in [
        ("mysqlchk_build_info", "gauge"),
        ("mysqlchk_role_up", "gauge"),
        ("mysqlchk_role_state", "gauge"),
        ("mysqlchk_probe_errors_total", "counter"),
        ("mysqlchk_http_requests_total", "counter"),
        ("mysqlchk_snapshot_age_seconds", "gauge"),
        ("mysqlchk_maintenance", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    for (family, kind) in &types {
        assert!(family.starts_with("mysqlchk_"), "{family}");
        assert_eq!(
            kind == "counter",
            family.ends_with("_total"),
            "{family} is a {kind}"
        );
    }

    // Round durations: a histogram in seconds.
    assert_eq!(
        types
            .get("mysqlchk_round_duration_seconds")
            .map(String::as_str),
        Some("histogram"),
        "{first}"
    );
    check_histogram(&m, "mysqlchk_round_duration_seconds", &first);
    // Facts series only where the fact exists: no channel here (the replica test
    // checks the lag), and no Galera series on a server that is not a Galera node.
    assert!(
        !m.keys()
            .any(|k| k.starts_with("mysqlchk_replication_lag_seconds{")),
        "{first}"
    );
    assert!(!first.contains("mysqlchk_galera_"), "{first}");

    // Counters count exactly what was asked.
    for _ in 0..10 {
        assert_eq!(http_get(p, "/").0, 200);
    }
    let second = scrape(p);
    assert!(promtool(&second).trim().is_empty());
    let (m2, _) = parse_metrics(&second);
    let key = "mysqlchk_http_requests_total{endpoint=\"health\",status=\"200\"}";
    assert_eq!(m2[key] - m[key], 10.0, "{second}");
    let key = "mysqlchk_http_requests_total{endpoint=\"metrics\",status=\"200\"}";
    assert_eq!(
        m2[key] - m.get(key).copied().unwrap_or(0.0),
        1.0,
        "{second}"
    );

    // Maintenance shows; probe errors count by reason.
    drop(d);
    let flags = tempfile::tempdir().unwrap();
    let flag = flags.path().join("maintenance");
    std::fs::write(&flag, "reason=metrics test\n").unwrap();
    let hole = Hole::start();
    let mut c = Conf::new(hole.port, &user, &[p]);
    c.maintenance_file = flag.display().to_string();
    let d = Daemon::start(&c.render(), &[PASSWORD_ENV]);
    wait_until(Duration::from_secs(10), "a timeout verdict", || {
        http_get(p, "/").1.contains("timeout")
    });
    let third = scrape(p);
    let said = promtool(&third);
    assert!(said.trim().is_empty(), "promtool:\n{said}\n---\n{third}");
    let (m3, _) = parse_metrics(&third);
    assert_eq!(m3.get("mysqlchk_maintenance"), Some(&1.0), "{third}");
    assert!(
        m3["mysqlchk_probe_errors_total{reason=\"timeout\"}"] >= 1.0,
        "{third}"
    );
    assert_eq!(m3["mysqlchk_role_up{role=\"health\"}"], 0.0);
    assert_eq!(
        m3["mysqlchk_role_state{role=\"health\",state=\"down\"}"], 1.0,
        "{third}"
    );
    drop(d);
    drop(hole);
}

/// On a replica: per-channel lag and running gauges; NaN while the lag is NULL.
#[test]
fn metrics_on_a_replica_carry_the_replication_series() {
    let primary = MariaDb::start();
    let replica = MariaDb::start_replica_of(&primary);
    let p = free_port();
    let user = checker_user(&primary, p, "");
    replica.sync_with(&primary);
    let d = Daemon::start(
        &Conf::new(replica.port(), &user, &[p]).render(),
        &[PASSWORD_ENV],
    );
    wait_status(p, "/replica", 200, Duration::from_secs(10));

    let text = scrape(p);
    let said = promtool(&text);
    assert!(said.trim().is_empty(), "promtool:\n{said}\n---\n{text}");
    let (m, types) = parse_metrics(&text);
    assert_eq!(
        types
            .get("mysqlchk_replication_lag_seconds")
            .map(String::as_str),
        Some("gauge")
    );
    let lag: Vec<(&String, &f64)> = m
        .iter()
        .filter(|(k, _)| k.starts_with("mysqlchk_replication_lag_seconds{channel=\""))
        .collect();
    assert_eq!(lag.len(), 1, "one channel:\n{text}");
    assert!((0.0..5.0).contains(lag[0].1), "{lag:?}");
    assert_eq!(m["mysqlchk_role_up{role=\"replica\"}"], 1.0);

    // The SQL thread stops: the lag is unknown (NULL), exposed as NaN, still valid.
    replica.sql("STOP SLAVE SQL_THREAD");
    let mut last = String::new();
    wait_until(Duration::from_secs(5), "a NaN lag", || {
        last = scrape(p);
        last.lines()
            .any(|l| l.starts_with("mysqlchk_replication_lag_seconds{") && l.ends_with(" NaN"))
    });
    let said = promtool(&last);
    assert!(said.trim().is_empty(), "promtool:\n{said}\n---\n{last}");
    let (m, _) = parse_metrics(&last);
    assert_eq!(m["mysqlchk_role_up{role=\"replica\"}"], 0.0, "{last}");
    replica.sql("START SLAVE SQL_THREAD");
    drop(d);
}

/// Buckets cumulative and ending in `+Inf` == `_count`; `_sum` present.
fn check_histogram(m: &BTreeMap<String, f64>, name: &str, text: &str) {
    let mut buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| {
            let le = k
                .strip_prefix(&format!("{name}_bucket{{le=\""))?
                .strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() >= 2, "{name}: buckets\n{text}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: not cumulative {buckets:?}"
    );
    let (last_le, last) = *buckets.last().unwrap();
    assert!(last_le.is_infinite(), "{name}: no +Inf bucket");
    let count = m
        .get(&format!("{name}_count"))
        .unwrap_or_else(|| panic!("{name}_count\n{text}"));
    assert_eq!(*count, last, "{name}: _count != +Inf bucket");
    assert!(*count >= 1.0, "{name}: no round observed");
    assert!(m.contains_key(&format!("{name}_sum")), "{name}_sum\n{text}");
}
