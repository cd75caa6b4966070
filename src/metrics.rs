//! Prometheus text format 0.0.4, written by hand for our few series.
//!
//! Invariants: names start with `mysqlchk_`, counters end in `_total`, base units
//! (seconds), label values from fixed sets only (endpoints, statuses, reasons, roles),
//! so a scanner hitting random paths cannot grow the exposition.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::config::Config;
use crate::endpoints::ENDPOINT_LABELS;
use crate::probe::Reason;
use crate::snapshot::Shared;
use crate::verdict::{evaluate, Role, State};

const STATUSES: &[u16] = &[200, 400, 403, 404, 405, 408, 431, 503];

pub struct Metrics {
    /// `[endpoint][status]`; an unlisted status counts under the last slot ("other").
    requests: Vec<Vec<AtomicU64>>,
    refused_peers: AtomicU64,
    probe_errors: Vec<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: ENDPOINT_LABELS
                .iter()
                .map(|_| (0..=STATUSES.len()).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            refused_peers: AtomicU64::new(0),
            probe_errors: Reason::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn request(&self, endpoint: &str, status: u16) {
        let e = ENDPOINT_LABELS
            .iter()
            .position(|l| *l == endpoint)
            .unwrap_or(ENDPOINT_LABELS.len() - 1);
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(STATUSES.len());
        if let Some(c) = self.requests.get(e).and_then(|row| row.get(s)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn refused_peer(&self) {
        self.refused_peers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn probe_error(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|&r| r == reason) {
            self.probe_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, config: &Config, shared: &Shared, now: Instant) -> String {
        let mut o = String::with_capacity(4096);
        let snap = shared.latest();
        head(&mut o, "mysqlchk_build_info", "gauge", "Build information.");
        let _ = writeln!(
            o,
            "mysqlchk_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let mut up = String::new();
        let mut states = String::new();
        for &r in Role::ALL {
            let v = evaluate(snap.as_deref(), now, &config.check, r, None);
            let _ = writeln!(
                up,
                "mysqlchk_role_up{{role=\"{}\"}} {}",
                r.name(),
                u8::from(v.state == State::Up)
            );
            for s in [State::Up, State::Maintenance, State::Down, State::Starting] {
                let _ = writeln!(
                    states,
                    "mysqlchk_role_state{{role=\"{}\",state=\"{}\"}} {}",
                    r.name(),
                    s.as_str(),
                    u8::from(v.state == s)
                );
            }
        }
        head(
            &mut o,
            "mysqlchk_role_up",
            "gauge",
            "1 when the role's check answers up (200), else 0.",
        );
        o.push_str(&up);
        head(
            &mut o,
            "mysqlchk_role_state",
            "gauge",
            "1 for the role's current state (up, maintenance, down, starting).",
        );
        o.push_str(&states);
        head(
            &mut o,
            "mysqlchk_snapshot_age_seconds",
            "gauge",
            "Seconds since the latest probe round finished (-1 before the first).",
        );
        let age = snap
            .as_deref()
            .map(|s| now.saturating_duration_since(s.taken).as_secs_f64())
            .unwrap_or(-1.0);
        let _ = writeln!(o, "mysqlchk_snapshot_age_seconds {age}");
        head(
            &mut o,
            "mysqlchk_round_duration_seconds_last",
            "gauge",
            "Duration of the latest probe round.",
        );
        let dur = snap
            .as_deref()
            .map(|s| s.duration.as_secs_f64())
            .unwrap_or(0.0);
        let _ = writeln!(o, "mysqlchk_round_duration_seconds_last {dur}");
        head(
            &mut o,
            "mysqlchk_maintenance",
            "gauge",
            "1 while the maintenance flag is set.",
        );
        let m = snap.as_deref().is_some_and(|s| s.maintenance.is_some());
        let _ = writeln!(o, "mysqlchk_maintenance {}", u8::from(m));
        head(
            &mut o,
            "mysqlchk_probe_errors_total",
            "counter",
            "Failed probe rounds by reason.",
        );
        for (i, r) in Reason::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "mysqlchk_probe_errors_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.probe_errors[i].load(Ordering::Relaxed)
            );
        }
        head(
            &mut o,
            "mysqlchk_http_requests_total",
            "counter",
            "HTTP requests answered, by endpoint and status.",
        );
        for (e, label) in ENDPOINT_LABELS.iter().enumerate() {
            for (s, c) in self.requests[e].iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(s)
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "other".into());
                let _ = writeln!(
                    o,
                    "mysqlchk_http_requests_total{{endpoint=\"{label}\",status=\"{status}\"}} {n}"
                );
            }
        }
        head(
            &mut o,
            "mysqlchk_refused_connections_total",
            "counter",
            "Connections closed because the peer is not allowed or a limit was reached.",
        );
        let _ = writeln!(
            o,
            "mysqlchk_refused_connections_total {}",
            self.refused_peers.load(Ordering::Relaxed)
        );
        o
    }
}

fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
