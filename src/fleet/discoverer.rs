//! Discovery, the running part (README "Fleet mode", "Discovery"): one task per
//! `[[discover]]` entry asks its source every `every` and merges what it found
//! (`discover::merge`) into the targets that entry knows; a change wakes the daemon,
//! which rebuilds the fleet (`Fleet::with_discovered`) and its probers.
//!
//! MySQL sources connect with the `[mysql]` defaults (user, credentials, TLS,
//! timeouts) through the prober's own connection code, one short connection per server
//! asked per pass; `replication` walks from the seed down the chain (at most
//! [`MAX_WALK`] servers), `galera` and `group-replication` ask the seed, else another
//! known member, and trust only a member of a working cluster (a Galera node in the
//! Primary component, a group with an ONLINE member) — an isolated node lists itself
//! alone and would make the others look gone. `haproxy` reads `show servers state`
//! through the pushers' socket code.
//!
//! Invariants: every pass runs under a deadline; a failed pass changes no target (the
//! error is logged once per episode and counted); each change is logged once and
//! counted; the daemon never waits on a pass (it only reads the merged result).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::discover::{self, Found, Member, Pass};
use super::{DiscoveredTarget, Origin};
use crate::config::discover::{Seed, Source};
use crate::config::{Config, Discover, HaproxySocket, Target};
use crate::metrics::DiscoveryStats;
use crate::probe::Probe;
use crate::push::client::{command, Endpoint};

/// The most servers one replication walk asks (a guard against a loop of names that
/// all mean the same server, and against a pass outliving its deadline).
pub(crate) const MAX_WALK: usize = 64;

/// The key of an entry in `/status` and in the stats: `"<from> <seed>"`.
pub(crate) fn key(e: &Discover) -> String {
    format!("{} {}", e.from.as_str(), e.seed)
}

struct Running {
    entry: Discover,
    known: Arc<Mutex<BTreeMap<String, Member>>>,
    stop: CancellationToken,
}

/// The discovery tasks of the `[[discover]]` entries configured now.
pub(crate) struct Discoverers {
    running: Vec<Running>,
    config: Arc<ArcSwap<Config>>,
    stats: Arc<DiscoveryStats>,
    changed: watch::Sender<u64>,
    shutdown: CancellationToken,
}

impl Discoverers {
    /// Start one task per `[[discover]]` entry; the receiver hears of every change.
    pub(crate) fn start(
        config: Arc<ArcSwap<Config>>,
        stats: Arc<DiscoveryStats>,
        shutdown: CancellationToken,
    ) -> (Discoverers, watch::Receiver<u64>) {
        let (changed, rx) = watch::channel(0);
        let mut d = Discoverers {
            running: Vec::new(),
            config,
            stats,
            changed,
            shutdown,
        };
        let entries = d.config.load().discover.clone();
        d.apply(&entries);
        (d, rx)
    }

    /// Bring the tasks in line with `entries` (after a reload): an entry still
    /// configured keeps its task and what it knows; a removed one stops and its targets
    /// leave the fleet at the next rebuild.
    pub(crate) fn apply(&mut self, entries: &[Discover]) {
        let mut old = std::mem::take(&mut self.running);
        for e in entries {
            if let Some(i) = old.iter().position(|r| r.entry == *e) {
                self.running.push(old.remove(i));
                continue;
            }
            let known = Arc::new(Mutex::new(BTreeMap::new()));
            let stop = self.shutdown.child_token();
            tracing::info!(source = e.from.as_str(), seed = %e.seed, "discovery started");
            tokio::spawn(run(
                e.clone(),
                self.config.clone(),
                known.clone(),
                self.changed.clone(),
                self.stats.clone(),
                stop.clone(),
            ));
            self.running.push(Running {
                entry: e.clone(),
                known,
                stop,
            });
        }
        for r in old {
            tracing::info!(source = r.entry.from.as_str(), seed = %r.entry.seed, "discovery stopped");
            r.stop.cancel();
        }
        self.stats
            .retain(&entries.iter().map(key).collect::<Vec<_>>());
    }

    /// Every target the entries know, in entry order.
    pub(crate) fn found(&self) -> Vec<DiscoveredTarget> {
        let mut out = Vec::new();
        for r in &self.running {
            let origin = Origin::Discovered {
                from: r.entry.from,
                seed: r.entry.seed.to_string(),
            };
            let known = r.known.lock().map(|k| k.clone()).unwrap_or_default();
            out.extend(known.into_values().map(|m| DiscoveredTarget {
                found: m.found,
                origin: origin.clone(),
                gone: m.gone_since.is_some(),
            }));
        }
        out
    }
}

/// One entry's loop: a pass, then wait `every` (or stop).
async fn run(
    entry: Discover,
    config: Arc<ArcSwap<Config>>,
    known: Arc<Mutex<BTreeMap<String, Member>>>,
    changed: watch::Sender<u64>,
    stats: Arc<DiscoveryStats>,
    stop: CancellationToken,
) {
    let k = key(&entry);
    let source = entry.from.as_str();
    let mut failing: Option<String> = None;
    loop {
        let cfg = config.load_full();
        // A walk connects to several servers in turn: at least one connect and a few
        // statements, however short `every` is.
        let limit = entry.every.max(
            cfg.mysql
                .connect_timeout
                .saturating_add(cfg.check.timeout.saturating_mul(4)),
        );
        let members: Vec<Found> = known
            .lock()
            .map(|k| k.values().map(|m| m.found.clone()).collect())
            .unwrap_or_default();
        let outcome = tokio::select! {
            r = tokio::time::timeout(limit, pass(&entry, &cfg, &members)) => r
                .unwrap_or_else(|_| Err(format!("no answer within {}", crate::config::fmt_duration(limit)))),
            _ = stop.cancelled() => return,
        };
        match outcome {
            Ok(found) => {
                if let Some(e) = failing.take() {
                    tracing::info!(source, seed = %entry.seed, "discovery works again (was: {e})");
                }
                let changes = match known.lock() {
                    Ok(mut k) => discover::merge(
                        &mut k,
                        found,
                        std::time::Instant::now(),
                        entry.forget_after,
                    ),
                    Err(_) => Vec::new(),
                };
                for (name, change) in &changes {
                    tracing::info!(source, seed = %entry.seed, target_name = %name, "discovery: target {name} {}", change.as_str());
                    stats.change(entry.from, &k, name, change.as_str());
                }
                stats.pass(entry.from, &k, None);
                if !changes.is_empty() {
                    changed.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            Err(e) => {
                // Once per episode: a source down for an hour is one line, not 360.
                if failing.as_deref() != Some(e.as_str()) {
                    tracing::warn!(source, seed = %entry.seed, "discovery failed, known targets kept: {e}");
                }
                stats.pass(entry.from, &k, Some(e.clone()));
                failing = Some(e);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(entry.every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One pass: what the source lists now. `members`: what the entry knows already
/// (other members to ask when the seed does not answer).
async fn pass(entry: &Discover, cfg: &Config, members: &[Found]) -> Result<Pass, String> {
    match (&entry.seed, entry.from) {
        (Seed::Haproxy(socket), _) => haproxy(socket, cfg).await,
        (Seed::Mysql { host, port }, Source::Replication) => replication(cfg, host, *port).await,
        (Seed::Mysql { host, port }, from) => {
            let mut candidates = vec![(host.clone(), *port)];
            for m in members {
                if !candidates.contains(&(m.host.clone(), m.port)) {
                    candidates.push((m.host.clone(), m.port));
                }
            }
            cluster(cfg, from, &candidates).await
        }
    }
}

/// A prober for one statement or two at `host:port`, with the `[mysql]` defaults.
fn probe_at(cfg: &Config, host: &str, port: u16) -> Probe {
    let mut mysql = cfg.mysql.clone();
    mysql.target = Target::Tcp {
        host: host.to_string(),
        port,
    };
    Probe::new(mysql, &cfg.check)
}

/// MySQL ≥ 8.0.22 says `SHOW REPLICAS`; MariaDB and older MySQL `SHOW SLAVE HOSTS`.
const REPLICAS_SQL: [&str; 2] = ["SHOW REPLICAS", "SHOW SLAVE HOSTS"];
/// Replicas without `report_host`: the threads that send them the binary log.
const BINLOG_DUMP_SQL: &str = "SELECT HOST AS Host, COMMAND AS Command FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'";

/// The replicas `host:port` lists: `SHOW REPLICAS`, else the `Binlog Dump` threads.
async fn replicas_of(cfg: &Config, host: &str, port: u16) -> Result<Vec<Found>, String> {
    let mut p = probe_at(cfg, host, port);
    let mut listed = None;
    let mut last_err = String::new();
    for sql in REPLICAS_SQL {
        match p.rows(sql).await {
            Ok(rows) => {
                listed = Some(discover::replica_hosts(&rows, port));
                break;
            }
            Err(e) => last_err = e.to_string(),
        }
    }
    let Some(mut found) = listed else {
        p.close().await;
        return Err(last_err);
    };
    if found.is_empty() {
        if let Ok(rows) = p.rows(BINLOG_DUMP_SQL).await {
            found = discover::binlog_dump_hosts(&rows, port);
        }
    }
    p.close().await;
    Ok(found)
}

/// Walk from the seed down: the seed, its replicas, theirs... A server on the way that
/// does not answer makes the pass partial (its replicas are unknown, not gone); the seed
/// not answering fails the pass.
async fn replication(cfg: &Config, host: &str, port: u16) -> Result<Pass, String> {
    let seed = Found::at(host, port);
    let mut out = vec![seed.clone()];
    let mut queue = VecDeque::from([seed]);
    let mut asked = BTreeSet::new();
    let mut complete = true;
    while let Some(server) = queue.pop_front() {
        if !asked.insert((server.host.to_ascii_lowercase(), server.port)) {
            continue;
        }
        if asked.len() > MAX_WALK {
            complete = false;
            break;
        }
        match replicas_of(cfg, &server.host, server.port).await {
            Ok(replicas) => {
                for r in replicas {
                    if !out.iter().any(|o| o.name == r.name) {
                        out.push(r.clone());
                        queue.push_back(r);
                    }
                }
            }
            Err(e) if asked.len() == 1 => return Err(format!("seed {}: {e}", server.name)),
            Err(_) => complete = false,
        }
    }
    Ok(if complete {
        Pass::Complete(out)
    } else {
        Pass::Partial(out)
    })
}

const GALERA_SQL: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_incoming_addresses', 'wsrep_cluster_status')";
const GROUP_SQL: &str = "SELECT MEMBER_HOST, MEMBER_PORT, MEMBER_STATE FROM performance_schema.replication_group_members";

/// Ask the candidates in turn; the first member of a working cluster tells.
async fn cluster(cfg: &Config, from: Source, candidates: &[(String, u16)]) -> Result<Pass, String> {
    let mut errors = Vec::new();
    for (host, port) in candidates {
        let mut p = probe_at(cfg, host, *port);
        let sql = if from == Source::Galera {
            GALERA_SQL
        } else {
            GROUP_SQL
        };
        let rows = p.rows(sql).await;
        p.close().await;
        let at = Found::at(host, *port).name;
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        let view = if from == Source::Galera {
            galera_view(&rows, *port)
        } else {
            group_view(&rows, *port)
        };
        match view {
            Ok(found) => return Ok(Pass::Complete(found)),
            Err(e) => errors.push(format!("{at}: {e}")),
        }
    }
    Err(errors.join("; "))
}

fn value<'r>(rows: &'r [discover::Row], name: &str) -> Option<&'r str> {
    rows.iter().find_map(|r| {
        let n = r.first().and_then(|(_, v)| v.as_deref())?;
        n.eq_ignore_ascii_case(name)
            .then(|| r.get(1).and_then(|(_, v)| v.as_deref()))
            .flatten()
    })
}

fn galera_view(rows: &[discover::Row], port: u16) -> Result<Vec<Found>, String> {
    match value(rows, "wsrep_cluster_status") {
        Some("Primary") => {}
        Some(other) => {
            return Err(format!(
                "not in the Primary component (wsrep_cluster_status {})",
                crate::push::api::excerpt(other)
            ))
        }
        None => return Err("not a Galera node (no wsrep_cluster_status)".into()),
    }
    let found =
        discover::galera_addresses(value(rows, "wsrep_incoming_addresses").unwrap_or(""), port);
    if found.is_empty() {
        return Err("wsrep_incoming_addresses lists no address".into());
    }
    Ok(found)
}

fn group_view(rows: &[discover::Row], port: u16) -> Result<Vec<Found>, String> {
    let online = rows.iter().any(|r| {
        r.iter()
            .any(|(c, v)| c.eq_ignore_ascii_case("MEMBER_STATE") && v.as_deref() == Some("ONLINE"))
    });
    if !online {
        return Err("no ONLINE member in replication_group_members".into());
    }
    Ok(discover::group_members(rows, port))
}

async fn haproxy(socket: &HaproxySocket, cfg: &Config) -> Result<Pass, String> {
    let ep = match socket {
        HaproxySocket::Unix(p) => Endpoint::Unix(p.clone()),
        HaproxySocket::Tcp(a) => Endpoint::Tcp(a.to_string()),
    };
    let timeout = cfg.check.timeout.max(Duration::from_secs(1));
    let reply = command(&ep, "show servers state\n", timeout)
        .await
        .map_err(|e| e.to_string())?;
    let rows = crate::push::api::parse_servers_state(&reply).map_err(|e| e.to_string())?;
    Ok(Pass::Complete(discover::haproxy_servers(&rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: &str, v: &str) -> discover::Row {
        vec![
            ("Variable_name".into(), Some(n.into())),
            ("Value".into(), Some(v.into())),
        ]
    }

    #[test]
    fn only_a_primary_galera_node_tells_the_topology() {
        let ok = [
            row("wsrep_cluster_status", "Primary"),
            row("wsrep_incoming_addresses", "127.0.0.1:4001,127.0.0.1:4002"),
        ];
        assert_eq!(galera_view(&ok, 3306).unwrap().len(), 2);
        let isolated = [
            row("wsrep_cluster_status", "non-Primary"),
            row("wsrep_incoming_addresses", "127.0.0.1:4001"),
        ];
        assert!(galera_view(&isolated, 3306)
            .unwrap_err()
            .contains("non-Primary"));
        assert!(galera_view(&[], 3306)
            .unwrap_err()
            .contains("not a Galera node"));
    }

    #[test]
    fn only_a_working_group_tells_the_topology() {
        let m = |h: &str, s: &str| -> discover::Row {
            vec![
                ("MEMBER_HOST".into(), Some(h.into())),
                ("MEMBER_PORT".into(), Some("3306".into())),
                ("MEMBER_STATE".into(), Some(s.into())),
            ]
        };
        assert_eq!(
            group_view(&[m("a", "ONLINE"), m("b", "RECOVERING")], 3306)
                .unwrap()
                .len(),
            2
        );
        assert!(group_view(&[m("a", "ERROR")], 3306).is_err());
    }
}
