//! Fleet mode (README "Fleet mode"): one process watching many MySQL targets. This part
//! sits between `checker` and `respond`: it owns the targets (each one's settings and
//! published snapshot cell) and answers "which target does this request name"
//! (`route`); verdicts stay pure and per target.
//!
//! Invariants: a [`Fleet`] is immutable once built and replaced whole behind an
//! `ArcSwap`, so a request takes one load and sees one consistent set of targets; a
//! target that survives a reload unchanged keeps its `Published` cell (the same `Arc`),
//! so its snapshot and round count go on; a config without `[[target]]` is a fleet of
//! one that is *not* named, and every request goes to it exactly as before.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, Target as Address};
use crate::snapshot::Published;

pub(crate) mod probers;
pub(crate) mod route;
pub(crate) mod spread;

/// One watched server: its effective settings (the `[mysql]`/`[check]` defaults with
/// its own overrides) and the cell its prober publishes to.
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) config: Arc<Config>,
    pub(crate) published: Arc<Published>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.name)
    }
}

impl Target {
    #[cfg(test)]
    pub(crate) fn new(name: impl Into<String>, config: Arc<Config>) -> Target {
        Target {
            name: name.into(),
            config,
            published: Arc::new(Published::new()),
        }
    }
}

/// The set of targets at one moment.
pub(crate) struct Fleet {
    targets: Vec<Arc<Target>>,
    by_name: HashMap<String, usize>,
    by_address: HashMap<(String, u16), usize>,
    /// `[[target]]` entries exist: requests name their target (a fleet of one without
    /// them answers every request as a single-server agent does).
    named: bool,
}

impl Fleet {
    /// The fleet of one of a config without `[[target]]`.
    pub(crate) fn single(target: Arc<Target>) -> Fleet {
        let mut f = Fleet::named(vec![target]);
        f.named = false;
        f
    }

    /// A fleet of `[[target]]` entries (names unique: the config reader checked).
    pub(crate) fn named(targets: Vec<Arc<Target>>) -> Fleet {
        let mut by_name = HashMap::with_capacity(targets.len());
        let mut by_address = HashMap::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            by_name.entry(t.name.clone()).or_insert(i);
            if let Address::Tcp { host, port } = &t.config.mysql.target {
                by_address
                    .entry((host.to_ascii_lowercase(), *port))
                    .or_insert(i);
            }
        }
        Fleet {
            targets,
            by_name,
            by_address,
            named: true,
        }
    }

    /// The fleet `config` describes (its `[[target]]` entries, or itself alone);
    /// targets already in `old` keep their snapshot cell.
    pub(crate) fn from_config(config: Arc<Config>, old: Option<&Fleet>) -> Fleet {
        let entries = config
            .targets
            .iter()
            .map(|t| (t.name.clone(), Arc::new(config.for_target(t))))
            .collect();
        Fleet::build(config, entries, old)
    }

    /// Resolves once every target has published a first snapshot (told, not polled).
    pub(crate) async fn all_present(&self) {
        for t in &self.targets {
            t.published.present().await;
        }
    }

    /// Every target's prober loop made progress within its `stale_after` (the watchdog).
    pub(crate) fn all_fresh(&self, now: std::time::Instant) -> bool {
        self.targets.iter().all(|t| {
            t.published
                .since_progress(now)
                .is_some_and(|age| age <= t.config.check.stale_after)
        })
    }

    /// The fleet a config describes: `entries` are the `[[target]]` entries (name and
    /// effective settings), none for a fleet of one on `base`. Targets already in `old`
    /// keep their snapshot cell, so a reload does not reset them.
    pub(crate) fn build(
        base: Arc<Config>,
        entries: Vec<(String, Arc<Config>)>,
        old: Option<&Fleet>,
    ) -> Fleet {
        let cell = |name: &str, named: bool| {
            old.filter(|o| o.named == named)
                .and_then(|o| o.get(name))
                .map(|t| t.published.clone())
                .unwrap_or_else(|| Arc::new(Published::new()))
        };
        if entries.is_empty() {
            return Fleet::single(Arc::new(Target {
                name: String::new(),
                published: cell("", false),
                config: base,
            }));
        }
        Fleet::named(
            entries
                .into_iter()
                .map(|(name, config)| {
                    Arc::new(Target {
                        published: cell(&name, true),
                        name,
                        config,
                    })
                })
                .collect(),
        )
    }

    pub(crate) fn is_named(&self) -> bool {
        self.named
    }

    pub(crate) fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Target>> {
        self.by_name.get(name).map(|&i| &self.targets[i])
    }

    /// The target probing `host:port` (as written in its config; an IPv6 address may
    /// come with or without brackets).
    pub(crate) fn by_address(&self, host: &str, port: u16) -> Option<&Arc<Target>> {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        self.by_address
            .get(&(host.to_ascii_lowercase(), port))
            .map(|&i| &self.targets[i])
    }

    /// The only target, when there is exactly one.
    pub(crate) fn only(&self) -> Option<&Arc<Target>> {
        match self.targets.as_slice() {
            [t] => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fleet of named targets at `host:port` (unit tests only).
    pub(crate) fn fleet(entries: &[(&str, &str, u16)]) -> Fleet {
        let base =
            crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &Default::default())
                .unwrap()
                .config;
        Fleet::named(
            entries
                .iter()
                .map(|(n, h, p)| {
                    let mut c = base.clone();
                    c.mysql.target = Address::Tcp {
                        host: h.to_string(),
                        port: *p,
                    };
                    Arc::new(Target::new(*n, Arc::new(c)))
                })
                .collect(),
        )
    }

    #[test]
    fn lookups_by_name_and_address() {
        let f = fleet(&[("db1", "10.0.0.2", 3306), ("db2", "FE80::1", 3307)]);
        assert_eq!(f.get("db1").unwrap().name, "db1");
        assert!(f.get("DB1").is_none(), "names are exact");
        assert_eq!(f.by_address("10.0.0.2", 3306).unwrap().name, "db1");
        assert!(f.by_address("10.0.0.2", 3307).is_none());
        assert_eq!(f.by_address("[fe80::1]", 3307).unwrap().name, "db2");
        assert!(f.only().is_none());
        assert!(f.is_named());
    }
}
