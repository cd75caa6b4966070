//! What discovery reports: `mysqlchk_discovery_*` counters and the per-entry state
//! `/status` shows (README, "Fleet mode" → Discovery). Label values from fixed sets.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// `mysqlchk_discovery_changes_total{change}` values (one per change of a discovered
/// target: found, its name at another address, gone from the topology, back, forgotten).
pub(crate) const DISCOVERY_CHANGES: &[&str] = &["added", "moved", "gone", "back", "removed"];

/// One `[[discover]]` entry as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DiscoverySource {
    /// When the latest pass ended (Unix seconds), successful or not.
    pub(crate) last_pass_unix: u64,
    /// The latest pass's error (our phrase), none when it worked.
    pub(crate) error: Option<String>,
    /// The latest changes, newest last: `(unix seconds, target, change)`.
    pub(crate) recent: std::collections::VecDeque<(u64, String, &'static str)>,
}

/// What the discoverers share with `/metrics` and `/status`: counters by fixed labels,
/// and each entry's latest state behind a short lock (readers never wait on a pass).
#[derive(Debug, Default)]
pub(crate) struct DiscoveryStats {
    /// `[source][change]`.
    changes: [[AtomicU64; 5]; 4],
    errors: [AtomicU64; 4],
    /// By `"<from> <seed>"`, for the entries configured now.
    pub(crate) sources: std::sync::Mutex<std::collections::BTreeMap<String, DiscoverySource>>,
}

impl DiscoveryStats {
    /// How many changes `/status` keeps per entry.
    const RECENT: usize = 20;

    fn source_index(from: crate::config::discover::Source) -> usize {
        crate::config::discover::Source::ALL
            .iter()
            .position(|&s| s == from)
            .unwrap_or(0)
    }

    pub(crate) fn change(
        &self,
        from: crate::config::discover::Source,
        key: &str,
        target: &str,
        change: &'static str,
    ) {
        if let Some(i) = DISCOVERY_CHANGES.iter().position(|&c| c == change) {
            self.changes[Self::source_index(from)][i].fetch_add(1, Ordering::Relaxed);
        }
        let now = unix_now();
        if let Ok(mut m) = self.sources.lock() {
            let s = m.entry(key.to_string()).or_default();
            s.recent.push_back((now, target.to_string(), change));
            while s.recent.len() > Self::RECENT {
                s.recent.pop_front();
            }
        }
    }

    /// A pass ended: `error` is its failure, if any.
    pub(crate) fn pass(
        &self,
        from: crate::config::discover::Source,
        key: &str,
        error: Option<String>,
    ) {
        if error.is_some() {
            self.errors[Self::source_index(from)].fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut m) = self.sources.lock() {
            let s = m.entry(key.to_string()).or_default();
            s.last_pass_unix = unix_now();
            s.error = error;
        }
    }

    /// Keep only the entries of `keys` (after a reload).
    pub(crate) fn retain(&self, keys: &[String]) {
        if let Ok(mut m) = self.sources.lock() {
            m.retain(|k, _| keys.contains(k));
        }
    }

    /// The discovery series (only written when `[[discover]]` is configured).
    pub(crate) fn render(&self, o: &mut String) {
        use crate::config::discover::Source;
        let _ = writeln!(
            o,
            "# HELP mysqlchk_discovery_changes_total Changes of discovered targets, by source and change.\n\
             # TYPE mysqlchk_discovery_changes_total counter"
        );
        for (si, src) in Source::ALL.iter().enumerate() {
            for (ci, c) in DISCOVERY_CHANGES.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "mysqlchk_discovery_changes_total{{source=\"{}\",change=\"{c}\"}} {}",
                    src.as_str(),
                    self.changes[si][ci].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP mysqlchk_discovery_errors_total Discovery passes that failed (known targets kept), by source.\n\
             # TYPE mysqlchk_discovery_errors_total counter"
        );
        for (si, src) in Source::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "mysqlchk_discovery_errors_total{{source=\"{}\"}} {}",
                src.as_str(),
                self.errors[si].load(Ordering::Relaxed)
            );
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
