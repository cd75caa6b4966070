//! What the pushers share with `/metrics` and `/status`: push results, push latency and
//! each HAProxy connection's state.
//!
//! Invariants: label values from fixed sets ([`RESULTS`]); a node's error text is our
//! own phrase (HAProxy's text only as a bounded excerpt); readers never wait on a pusher
//! (plain atomics and a short lock around a small value).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `mysqlchk_haproxy_push_total{result}` values.
pub const RESULTS: &[&str] = &[
    "ok",
    "mismatch",
    "no_such_server",
    "permission_denied",
    "rejected",
    "unreachable",
];
/// Upper bounds (seconds) of the push-latency histogram.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One `[[haproxy]]` entry's connection, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    Connecting,
    Connected { pid: u32 },
    Unreachable { error: String },
}

#[derive(Debug)]
pub struct Node {
    /// The socket path or address, as configured.
    pub name: String,
    state: Mutex<(Conn, Option<Instant>)>,
    pub pushes: AtomicU64,
    pub reapplied: AtomicU64,
}

impl Node {
    pub fn new(name: String) -> Node {
        Node {
            name,
            state: Mutex::new((Conn::Connecting, None)),
            pushes: AtomicU64::new(0),
            reapplied: AtomicU64::new(0),
        }
    }

    pub fn set(&self, c: Conn) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 != c {
            *s = (c, Some(Instant::now()));
        }
    }

    /// The state and since when it holds.
    pub fn get(&self) -> (Conn, Option<Instant>) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Debug)]
pub struct Stats {
    results: Vec<AtomicU64>,
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
    nodes: Mutex<Vec<Arc<Node>>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            results: RESULTS.iter().map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..=BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            nodes: Mutex::new(Vec::new()),
        }
    }
}

impl Stats {
    pub fn count(&self, result: &str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            self.results[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A verified push took `d` from the start of its pass.
    pub fn latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The nodes now pushed to (replaced on reload).
    pub fn set_nodes(&self, nodes: Vec<Arc<Node>>) {
        *self.nodes.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
    }

    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The series in text format 0.0.4.
    pub fn render(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP mysqlchk_haproxy_push_total Commands pushed to HAProxy's runtime API, by result.\n\
             # TYPE mysqlchk_haproxy_push_total counter"
        );
        for (i, r) in RESULTS.iter().enumerate() {
            let _ = writeln!(
                o,
                "mysqlchk_haproxy_push_total{{result=\"{r}\"}} {}",
                self.results[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP mysqlchk_haproxy_push_seconds Time from a verdict change to HAProxy's verified state.\n\
             # TYPE mysqlchk_haproxy_push_seconds histogram"
        );
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "mysqlchk_haproxy_push_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        cum += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "mysqlchk_haproxy_push_seconds_bucket{{le=\"+Inf\"}} {cum}"
        );
        let _ = writeln!(
            o,
            "mysqlchk_haproxy_push_seconds_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "mysqlchk_haproxy_push_seconds_count {cum}");
        let _ = writeln!(
            o,
            "# HELP mysqlchk_haproxy_connected Whether each configured HAProxy runtime socket answers (1) or not (0).\n\
             # TYPE mysqlchk_haproxy_connected gauge"
        );
        for (i, n) in self.nodes().iter().enumerate() {
            let up = matches!(n.get().0, Conn::Connected { .. }) as u8;
            let _ = writeln!(o, "mysqlchk_haproxy_connected{{haproxy=\"{i}\"}} {up}");
        }
    }
}
