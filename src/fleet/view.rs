//! The fleet-wide rules (README, "Verdict policy"): minimum serving per replica group
//! and one Galera writer per cluster. A pure pass over every target's latest snapshot
//! decides, per target, the [`Overrides`] its verdicts take as an input; the daemon
//! runs it on a short tick (`run`) and publishes the result in each target's cell.
//!
//! Invariants: the pass is pure and deterministic (ties break on the target name), so
//! every checker watching the same servers decides the same; a rule only ever keeps a
//! replica up that is down on lag alone (never a dead server, stopped replication,
//! unknown lag or maintenance) and only ever takes `/primary` down on a healthy Galera
//! node that is not its cluster's writer; targets no rule concerns get the default.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::Fleet;
use crate::config::Check;
use crate::facts::OptionalFact;
use crate::metrics::Metrics;
use crate::role::Role;
use crate::snapshot::Snapshot;
use crate::verdict::{down_on_lag_alone, evaluate, galera_index, selected, Overrides, State};

/// One target as the pass sees it.
pub(crate) struct Member<'a> {
    pub(crate) name: &'a str,
    pub(crate) check: &'a Check,
    pub(crate) snap: Option<&'a Snapshot>,
}

/// A replica group member: its replica verdict's state, and its judged lag when lag
/// alone takes it down (less the hysteresis width if it was kept serving).
type Replica<'m, 'a> = (&'m Member<'a>, State, Option<u64>);
/// A Galera cluster: (`wsrep_local_index`, name) of the nodes that may write, and the
/// names of all its nodes.
type Cluster<'a> = (Vec<(u32, &'a str)>, Vec<&'a str>);

/// The decisions of one pass, by target name (only targets a rule changes); `before`
/// is the previous pass's (a replica kept serving stays kept until another is less
/// lagged by more than the hysteresis width, `max_replication_lag - lag_recover`, so
/// two replicas lagging alike do not take turns).
pub(crate) fn compute(
    members: &[Member<'_>],
    before: &BTreeMap<String, Overrides>,
    now: Instant,
) -> BTreeMap<String, Overrides> {
    let mut out: BTreeMap<String, Overrides> = BTreeMap::new();
    // Replica groups: the replicas of one source (all their selected channels' sources)
    // and Galera clusters (by `wsrep_cluster_state_uuid`).
    let mut groups: BTreeMap<String, Vec<Replica<'_, '_>>> = BTreeMap::new();
    let mut clusters: BTreeMap<String, Cluster<'_>> = BTreeMap::new();
    for m in members {
        let Some(facts) = m.snap.and_then(|s| s.outcome.as_ref().ok()) else {
            continue;
        };
        if let Some(key) = replica_group(facts, m.check) {
            let v = evaluate(m.snap, now, m.check, Role::Replica, None);
            let lag = down_on_lag_alone(&v).then_some(v.lag).flatten().map(|l| {
                let kept = before.get(m.name).is_some_and(|o| o.kept_serving);
                let width = m
                    .check
                    .max_replication_lag
                    .saturating_sub(m.check.lag_recover);
                if kept {
                    l.saturating_sub(width.as_secs())
                } else {
                    l
                }
            });
            groups.entry(key).or_default().push((m, v.state, lag));
        }
        if m.check.galera_single_writer && facts.galera() {
            let Some(uuid) = facts
                .status_var("wsrep_cluster_state_uuid")
                .map(|u| u.trim().to_ascii_lowercase())
                .filter(|u| !u.is_empty())
            else {
                continue;
            };
            let c = clusters.entry(uuid).or_default();
            c.1.push(m.name);
            let up = evaluate(m.snap, now, m.check, Role::Primary, None).state == State::Up;
            if let (true, Some(i)) = (up, galera_index(facts)) {
                c.0.push((i, m.name));
            }
        }
    }
    for mut g in groups.into_values() {
        let want = g
            .iter()
            .map(|(m, ..)| m.check.min_serving)
            .max()
            .unwrap_or(0) as usize;
        let serving = g.iter().filter(|(_, s, _)| *s == State::Up).count();
        // Least lagged first; equal lags by name, so checkers that saw the same rounds
        // keep the same ones.
        g.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.name.cmp(b.0.name)));
        let kept = g
            .iter()
            .filter(|(_, _, lag)| lag.is_some())
            .take(want.saturating_sub(serving));
        for (m, ..) in kept {
            out.entry(m.name.to_string()).or_default().kept_serving = true;
        }
    }
    for (mut writers, all) in clusters.into_values() {
        writers.sort();
        let Some(&(index, writer)) = writers.first() else {
            continue;
        };
        for name in all.into_iter().filter(|n| *n != writer) {
            out.entry(name.to_string()).or_default().not_writer = Some(index);
        }
    }
    out
}

/// The replica group of a server that replicates: its selected channels' sources,
/// sorted (a multi-source replica belongs with the replicas of the same sources).
fn replica_group(f: &crate::facts::Facts, check: &Check) -> Option<String> {
    let OptionalFact::Known(channels) = &f.channels else {
        return None;
    };
    let mut sources: Vec<&str> = selected(channels, check)
        .into_iter()
        .map(|c| c.source.as_str())
        .collect();
    if sources.is_empty() || sources.iter().any(|s| s.is_empty()) {
        return None;
    }
    sources.sort_unstable();
    sources.dedup();
    Some(sources.join(","))
}

/// How often the pass runs: rounds are at least this far apart in practice, and a
/// pass over a fleet is a few microseconds per target.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// Run the pass every [`TICK`] until `shutdown`: publish each target's overrides, and
/// in fleet mode count verdict changes per target (`mysqlchk_transitions_total` with
/// a `target` label) on the verdicts the responders give, overrides included.
pub(crate) async fn run(
    fleet: Arc<ArcSwap<Fleet>>,
    metrics: Arc<Metrics>,
    news: crate::snapshot::VerdictNews,
    shutdown: CancellationToken,
) {
    let mut last: HashMap<(String, Role), State> = HashMap::new();
    let mut decided = BTreeMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let fleet = fleet.load_full();
        if !fleet.is_named() {
            continue;
        }
        let (d, changed) = pass(&fleet, &metrics, &decided, &mut last, Instant::now());
        decided = d;
        if changed {
            // A fleet-wide decision, or a verdict that moved without a round (a gone
            // target, a stale one): the pushers look again.
            news.tell();
        }
    }
}

/// One pass over `fleet` at `now` (`before`: the previous pass's decisions, returned
/// anew with whether any target's overrides or verdicts changed; `last`: each target's
/// verdicts at the previous pass).
pub(crate) fn pass(
    fleet: &Fleet,
    metrics: &Metrics,
    before: &BTreeMap<String, Overrides>,
    last: &mut HashMap<(String, Role), State>,
    now: Instant,
) -> (BTreeMap<String, Overrides>, bool) {
    let mut changed = false;
    let snaps: Vec<_> = fleet
        .targets()
        .iter()
        .map(|t| t.published.latest())
        .collect();
    // A discovered target gone from the topology answers down whatever its snapshot
    // says: it serves no group and writes for no cluster.
    let members: Vec<Member<'_>> = fleet
        .targets()
        .iter()
        .zip(&snaps)
        .filter(|(t, _)| !t.gone)
        .map(|(t, s)| Member {
            name: &t.name,
            check: &t.config.check,
            snap: s.as_deref(),
        })
        .collect();
    let decided = compute(&members, before, now);
    for t in fleet.targets() {
        let o = decided.get(&t.name).cloned().unwrap_or_default();
        if **t.overrides.load() != o {
            if o.kept_serving != t.overrides.load().kept_serving {
                tracing::info!(target_name = %t.name, kept = o.kept_serving, "minimum serving");
            }
            t.overrides.store(Arc::new(o));
            changed = true;
        }
    }
    last.retain(|(name, _), _| fleet.get(name).is_some());
    metrics.retain_targets(|name| fleet.get(name).is_some());
    for t in fleet.targets() {
        for &role in Role::ALL {
            let to = t.verdict(now, role, None).state;
            let before = last.insert((t.name.clone(), role), to);
            if before.unwrap_or(State::Starting) != to {
                metrics.target_transition(&t.name, role, to);
                changed = true;
            }
        }
    }
    (decided, changed)
}

#[cfg(test)]
mod tests;
