//! Fleet mode (README "Fleet mode"): one process watching many MySQL targets. This part
//! sits between `checker` and `respond`: it owns the targets (each one's settings and
//! published snapshot cell) and answers "which target does this request name"
//! (`route`); verdicts stay pure and per target, taking as an input what the
//! fleet-wide rules (`view`: minimum serving, one Galera writer) decided for it. It
//! also hands the HAProxy pushers every target's verdicts (`Fleet::board`), so `push`
//! knows nothing of the fleet.
//!
//! Invariants: a [`Fleet`] is immutable once built and replaced whole behind an
//! `ArcSwap`, so a request takes one load and sees one consistent set of targets; a
//! target that survives a reload unchanged keeps its `Published` cell (the same `Arc`),
//! so its snapshot and round count go on (and its overrides cell); a config without `[[target]]` is a fleet of
//! one that is *not* named, and every request goes to it exactly as before; a
//! configured `[[target]]` wins over a discovered target at the same address or name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, Target as Address};
use crate::push::desired::{Board, RoleVerdict, TargetVerdicts, Verdicts};
use crate::role::Role;
use crate::snapshot::Published;
use crate::verdict::{evaluate_with, Overrides, State, Verdict};
use arc_swap::ArcSwap;

pub(crate) mod discover;
pub(crate) mod discoverer;
pub(crate) mod probers;
pub(crate) mod route;
pub(crate) mod spread;
pub(crate) mod view;

/// One watched server: its effective settings (the `[mysql]`/`[check]` defaults with
/// its own overrides) and the cell its prober publishes to.
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) config: Arc<Config>,
    pub(crate) published: Arc<Published>,
    /// What the fleet-wide rules decided for it (`view`); the default outside fleet
    /// mode.
    pub(crate) overrides: Arc<ArcSwap<Overrides>>,
    pub(crate) origin: Origin,
    /// Discovered, and no longer in the topology: answers `not in topology` until
    /// `forget_after` has passed (then it is no longer in the fleet at all).
    pub(crate) gone: bool,
}

/// Where a target comes from, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The config itself (`[[target]]`, or the single server).
    Config,
    /// A `[[discover]]` entry: its source and the seed it asks.
    Discovered {
        from: crate::config::discover::Source,
        seed: String,
    },
}

/// One target a `[[discover]]` entry knows, for building the fleet.
#[derive(Debug, Clone)]
pub(crate) struct DiscoveredTarget {
    pub(crate) found: discover::Found,
    pub(crate) origin: Origin,
    pub(crate) gone: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.name)
    }
}

impl Target {
    #[cfg(test)]
    pub(crate) fn new(name: impl Into<String>, config: Arc<Config>) -> Target {
        Target::configured(name, config, Arc::new(Published::new()))
    }

    /// A target of the config (not discovered).
    pub(crate) fn configured(
        name: impl Into<String>,
        config: Arc<Config>,
        published: Arc<Published>,
    ) -> Target {
        Target {
            name: name.into(),
            config,
            published,
            overrides: Default::default(),
            origin: Origin::Config,
            gone: false,
        }
    }

    /// The verdict on this target for `role`: its latest snapshot's, except that a
    /// discovered target gone from the topology is down `not in topology` whatever its
    /// server says (HAProxy should stop sending it traffic before it is forgotten).
    pub(crate) fn verdict(
        &self,
        now: std::time::Instant,
        role: Role,
        max_lag: Option<std::time::Duration>,
    ) -> Verdict {
        if self.gone {
            return Verdict {
                role,
                state: State::Down,
                reason: "not in topology".into(),
                maintenance: false,
                lag: None,
            };
        }
        let snap = self.published.latest();
        evaluate_with(
            snap.as_deref(),
            now,
            &self.config.check,
            role,
            max_lag,
            &self.overrides.load(),
        )
    }
}

impl Target {
    /// Every role's verdict as of its latest round, for the HAProxy pushers: what the
    /// responders answered when the round ended, fleet-wide decisions included (so a
    /// push never contradicts a check). A target gone from the topology is down; one
    /// without a round yet has no verdicts (HAProxy's own checks decide).
    pub(crate) fn round_verdicts(&self) -> Verdicts {
        let role_verdict = |role, state, maintenance| RoleVerdict {
            role,
            state,
            maintenance,
        };
        if self.gone {
            return Verdicts {
                roles: Role::ALL
                    .iter()
                    .map(|&role| role_verdict(role, State::Down, false))
                    .collect(),
            };
        }
        let Some(snap) = self.published.latest() else {
            return Verdicts::default();
        };
        let overrides = self.overrides.load();
        Verdicts {
            roles: Role::ALL
                .iter()
                .map(|&role| {
                    let check = &self.config.check;
                    let v = evaluate_with(Some(&snap), snap.taken, check, role, None, &overrides);
                    role_verdict(role, v.state, v.maintenance)
                })
                .collect(),
        }
    }
}

/// What `/metrics` reads of a target: the same answer the endpoints give.
impl crate::metrics::Exposed for Arc<Target> {
    fn name(&self) -> &str {
        &self.name
    }

    fn latest(&self) -> Option<Arc<crate::snapshot::Snapshot>> {
        self.published.latest()
    }

    fn answer(&self, now: std::time::Instant, role: Role) -> Verdict {
        self.verdict(now, role, None)
    }
}

/// One target of a fleet being built.
struct Entry {
    name: String,
    config: Arc<Config>,
    origin: Origin,
    gone: bool,
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
        Fleet::with_discovered(config, &[], old)
    }

    /// The fleet of `config`'s `[[target]]` entries and the targets discovery knows
    /// (`found`, in order; the first of several at one address or with one name wins,
    /// and a `[[target]]` wins over all of them). With `[[discover]]` the fleet is named
    /// even while discovery has found nothing yet.
    pub(crate) fn with_discovered(
        config: Arc<Config>,
        found: &[DiscoveredTarget],
        old: Option<&Fleet>,
    ) -> Fleet {
        let mut entries: Vec<Entry> = config
            .targets
            .iter()
            .map(|t| Entry {
                name: t.name.clone(),
                config: Arc::new(config.for_target(t)),
                origin: Origin::Config,
                gone: false,
            })
            .collect();
        for d in found {
            let f = &d.found;
            let taken = entries.iter().any(|e| {
                e.name == f.name
                    || matches!(&e.config.mysql.target, Address::Tcp { host, port }
                        if *port == f.port && host.eq_ignore_ascii_case(&f.host))
            });
            if taken {
                continue;
            }
            entries.push(Entry {
                name: f.name.clone(),
                config: Arc::new(config.for_discovered(&f.name, &f.host, f.port)),
                origin: d.origin.clone(),
                gone: d.gone,
            });
        }
        let named = !config.discover.is_empty();
        Fleet::build(config, entries, named, old)
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

    /// The fleet a config describes: `entries` are the `[[target]]` and discovered
    /// entries (name and effective settings); none, and not `named` (no
    /// `[[discover]]`), is a fleet of one on `base`. Targets already in `old` keep their
    /// snapshot cell, so a reload or a discovery pass does not reset them.
    fn build(base: Arc<Config>, entries: Vec<Entry>, named: bool, old: Option<&Fleet>) -> Fleet {
        let cell = |name: &str, named: bool| {
            old.filter(|o| o.named == named)
                .and_then(|o| o.get(name))
                .map(|t| t.published.clone())
                .unwrap_or_else(|| Arc::new(Published::new()))
        };
        let overrides = |name: &str| {
            old.filter(|o| o.named)
                .and_then(|o| o.get(name))
                .map(|t| t.overrides.clone())
                .unwrap_or_default()
        };
        if entries.is_empty() && !named {
            return Fleet::single(Arc::new(Target::configured("", base, cell("", false))));
        }
        Fleet::named(
            entries
                .into_iter()
                .map(|e| {
                    Arc::new(Target {
                        published: cell(&e.name, true),
                        overrides: overrides(&e.name),
                        name: e.name,
                        config: e.config,
                        origin: e.origin,
                        gone: e.gone,
                    })
                })
                .collect(),
        )
    }

    /// Every target's verdicts and the address its server lines are matched by: what
    /// the HAProxy pushers plan from.
    pub(crate) fn board(&self) -> Board {
        Board {
            named: self.named,
            targets: self
                .targets
                .iter()
                .map(|t| TargetVerdicts {
                    name: t.name.clone(),
                    addr: match &t.config.mysql.target {
                        Address::Tcp { host, port } => Some((host.clone(), *port)),
                        Address::Socket(_) => None,
                    },
                    verdicts: t.round_verdicts(),
                })
                .collect(),
        }
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
