//! `/status`: the latest snapshot, every role's verdict and a config summary, as JSON.
//!
//! Invariants: no secret (the password is not even reachable from here: credentials
//! are shown by source only); server messages appear only redacted (quoted literals
//! replaced, at most 120 characters — see `facts::redact`).

use std::time::{Instant, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::config::{fmt_duration, Config, Credentials};
use crate::facts::{Facts, OptionalFact};
use crate::fleet::{Fleet, Origin, Target};
use crate::role::Role;
use crate::snapshot::Snapshot;

/// The document: with one target (no `[[target]]`) its roles, snapshot and config at
/// the top level; in fleet mode `targets`, every target in config order with its own.
/// `push`: the HAProxy pushers' state, shown when `[[haproxy]]` is configured;
/// `discovery`: each `[[discover]]` entry's latest pass and changes, shown when one is
/// configured (every target then also says where it comes from).
pub(crate) fn render(
    config: &Config,
    fleet: &Fleet,
    push: Option<&crate::push::stats::Stats>,
    discovery: Option<&crate::metrics::DiscoveryStats>,
    now: Instant,
) -> String {
    let haproxy = push
        .filter(|_| !config.haproxy.is_empty())
        .map(|p| crate::push::status(p, now));
    let discovery = discovery
        .filter(|_| !config.discover.is_empty())
        .map(|d| discovery_doc(config, d));
    let mut out = match (fleet.is_named(), fleet.targets()) {
        (false, [t]) => {
            let mut doc = target(t, now);
            if let Some(h) = haproxy {
                doc["haproxy"] = h;
            }
            if let Some(d) = discovery {
                doc["discovery"] = d;
            }
            pretty(&doc, 0)
        }
        (_, targets) => {
            // In the order a whole tree would print its keys (sorted), before `targets`.
            let head = [("discovery", discovery), ("haproxy", haproxy)];
            fleet_doc(config, targets, head, now)
        }
    };
    out.push('\n');
    out
}

/// The fleet document, one target at a time: the whole tree of a thousand targets
/// (tens of MiB of small allocations) would be built for every request and left as
/// heap fragmentation, most of the checker's resident memory (README "Benchmarks",
/// fleet mode). The text is exactly what `to_string_pretty` of the whole tree gives:
/// keys in sorted order (`head`'s, which sort before `targets`, then `targets`,
/// `version`), two-space indentation.
fn fleet_doc(
    config: &Config,
    targets: &[std::sync::Arc<Target>],
    head: [(&str, Option<Value>); 2],
    now: Instant,
) -> String {
    let mut out = String::from("{\n");
    for (key, v) in head {
        if let Some(v) = v {
            out.push_str(&format!("  {}: ", Value::from(key)));
            out.push_str(&pretty(&v, 2));
            out.push_str(",\n");
        }
    }
    if targets.is_empty() {
        out.push_str("  \"targets\": [],\n");
    } else {
        out.push_str("  \"targets\": [\n");
        for (i, t) in targets.iter().enumerate() {
            out.push_str("    ");
            out.push_str(&pretty(&entry(config, t, now), 4));
            out.push_str(if i + 1 < targets.len() { ",\n" } else { "\n" });
        }
        out.push_str("  ],\n");
    }
    out.push_str("  \"version\": ");
    out.push_str(&pretty(&json!(env!("CARGO_PKG_VERSION")), 2));
    out.push_str("\n}");
    out
}

/// One target of the fleet document: its name (and, with `[[discover]]`, where it
/// comes from), roles, snapshot and config.
fn entry(config: &Config, t: &Target, now: Instant) -> Value {
    let mut v = json!({"name": t.name});
    if !config.discover.is_empty() {
        v["origin"] = origin(&t.origin);
        v["in_topology"] = json!(!t.gone);
    }
    if let (Value::Object(o), Value::Object(more)) = (&mut v, target(t, now)) {
        o.extend(more);
    }
    v
}

/// `v` pretty-printed as if nested `indent` spaces deep (its first line is not
/// indented: it follows a key or the caller's indentation). JSON strings never hold a
/// raw newline, so every newline in the text is one of the printer's own.
fn pretty(v: &Value, indent: usize) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into());
    if indent == 0 {
        return text;
    }
    text.replace('\n', &format!("\n{}", " ".repeat(indent)))
}

fn origin(o: &Origin) -> Value {
    match o {
        Origin::Config => json!("config"),
        Origin::Discovered { from, seed } => json!({"discovered": from.as_str(), "seed": seed}),
    }
}

fn discovery_doc(config: &Config, d: &crate::metrics::DiscoveryStats) -> Value {
    let sources = d.sources.lock().map(|m| m.clone()).unwrap_or_default();
    let list: Vec<Value> = config
        .discover
        .iter()
        .map(|e| {
            let key = crate::fleet::discoverer::key(e);
            let s = sources.get(&key).cloned().unwrap_or_default();
            json!({
                "from": e.from.as_str(),
                "seed": e.seed.to_string(),
                "every": fmt_duration(e.every),
                "forget_after": fmt_duration(e.forget_after),
                "last_pass_unix": s.last_pass_unix,
                "error": s.error,
                "recent_changes": s.recent.iter().map(|(at, t, c)| json!({"at_unix": at, "target": t, "change": c})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(list)
}

fn target(t: &Target, now: Instant) -> Value {
    let config: &Config = &t.config;
    let snap = t.published.latest();
    let roles: Map<String, Value> = Role::ALL
        .iter()
        .map(|&r| {
            let v = t.verdict(now, r, None);
            (
                r.name().to_string(),
                json!({"state": v.state.as_str(), "line": v.line(), "maintenance": v.maintenance}),
            )
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "roles": roles,
        "snapshot": snap.as_deref().map(|s| snapshot(s, now)),
        "config": summary(config),
    })
}

fn snapshot(s: &Snapshot, now: Instant) -> Value {
    let mut v = json!({
        "seq": s.seq,
        "age_seconds": now.saturating_duration_since(s.taken).as_secs_f64(),
        "finished_at_unix": s.wall.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "duration_seconds": s.duration.as_secs_f64(),
        "maintenance": s.maintenance.as_ref().map(|m| json!({"reason": m.reason, "since": m.since})),
    });
    match &s.outcome {
        Ok(f) => v["facts"] = facts(f),
        Err(e) => {
            v["error"] = json!({
                "reason": e.reason.as_str(),
                "step": e.step.as_str(),
                "code": e.code,
                "message": crate::facts::redact(&e.detail),
            })
        }
    }
    v
}

fn facts(f: &Facts) -> Value {
    let channels = match &f.channels {
        OptionalFact::NotCollected => Value::Null,
        OptionalFact::Failed(e) => json!({"error": e.phrase()}),
        OptionalFact::Known(list) => Value::Array(
            list.iter()
                .map(|c| {
                    json!({
                        "name": c.name, "io_running": c.io_state, "sql_running": c.sql_state,
                        "lag_seconds": c.lag, "last_io_errno": c.last_io_errno,
                        "last_sql_errno": c.last_sql_errno,
                    })
                })
                .collect(),
        ),
    };
    let status = match &f.status {
        OptionalFact::NotCollected => Value::Null,
        OptionalFact::Failed(e) => json!({"error": e.phrase()}),
        OptionalFact::Known(m) => json!(m),
    };
    let group = match &f.group {
        OptionalFact::NotCollected => Value::Null,
        OptionalFact::Failed(e) => json!({"error": e.phrase()}),
        OptionalFact::Known(g) => json!({
            "members": g.members.iter().map(|m| json!({"id": m.id, "state": m.state, "role": m.role})).collect::<Vec<_>>(),
            "applier_queue": match &g.applier_queue {
                OptionalFact::Known(q) => json!(q),
                OptionalFact::Failed(e) => json!({"error": e.phrase()}),
                OptionalFact::NotCollected => Value::Null,
            },
        }),
    };
    json!({
        "flavour": f.flavour.as_str(),
        "variables": f.variables,
        "status": status,
        "group_replication": group,
        "check_query": match &f.query {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"ok": false, "code": e.code, "message": e.message}),
        },
        "replication_channels": channels,
    })
}

fn summary(c: &Config) -> Value {
    json!({
        "source": c.source,
        "mysql": {
            "target": c.mysql.target.to_string(),
            "user": c.mysql.user,
            "credentials": match &c.mysql.credentials {
                Credentials::None => "none".to_string(),
                Credentials::Inline(_) => "environment".to_string(),
                Credentials::PasswordFile(p) => format!("password_file {}", p.display()),
                Credentials::DefaultsFile(p) => format!("defaults_file {}", p.display()),
            },
            "ssl_mode": c.mysql.ssl_mode.as_str(),
        },
        "check": {
            "interval": fmt_duration(c.check.interval),
            "timeout": fmt_duration(c.check.timeout),
            "stale_after": fmt_duration(c.check.stale_after),
            "max_replication_lag": fmt_duration(c.check.max_replication_lag),
            "maintenance_file": c.check.maintenance_file.display().to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{ProbeError, Reason, Step};
    use std::time::{Duration, SystemTime};

    /// What the fleet document was before it was written one target at a time: the
    /// whole tree, pretty-printed at once.
    fn whole_tree(
        config: &Config,
        targets: &[std::sync::Arc<Target>],
        head: [(&str, Option<Value>); 2],
        now: Instant,
    ) -> String {
        let list: Vec<Value> = targets.iter().map(|t| entry(config, t, now)).collect();
        let mut doc = json!({"version": env!("CARGO_PKG_VERSION"), "targets": list});
        for (key, v) in head {
            if let Some(v) = v {
                doc[key] = v;
            }
        }
        serde_json::to_string_pretty(&doc).unwrap()
    }

    #[test]
    fn the_fleet_document_reads_exactly_as_the_whole_tree_would() {
        let f = crate::fleet::tests::fleet(&[("db1", "10.0.0.2", 3306), ("db2", "10.0.0.3", 3306)]);
        // One target with a snapshot (an error with a message), one without.
        f.targets()[0].published.publish(Snapshot {
            seq: 7,
            taken: Instant::now(),
            wall: SystemTime::now(),
            duration: Duration::from_millis(3),
            outcome: Err(ProbeError {
                reason: Reason::Refused,
                step: Step::Connect,
                code: Some(2003),
                detail: "can't connect \"x\"\nsecond line".into(),
            }),
            maintenance: None,
            policy: Default::default(),
        });
        let now = Instant::now();
        let config = f.targets()[0].config.clone();
        let h = json!({"sockets": [{"path": "/run/haproxy.sock", "ok": true}], "n": 1});
        let d = json!([{"from": "replication", "error": null, "recent_changes": []}]);
        for (targets, head) in [
            (f.targets(), [("discovery", None), ("haproxy", None)]),
            (
                f.targets(),
                [("discovery", Some(d.clone())), ("haproxy", Some(h.clone()))],
            ),
            (
                &f.targets()[1..],
                [("discovery", None), ("haproxy", Some(h.clone()))],
            ),
            (
                &f.targets()[..0],
                [("discovery", Some(d)), ("haproxy", Some(h))],
            ),
        ] {
            let got = fleet_doc(&config, targets, head.clone(), now);
            assert_eq!(got, whole_tree(&config, targets, head, now));
        }
    }
}
