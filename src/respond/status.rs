//! `/status`: the latest snapshot, every role's verdict and a config summary, as JSON.
//!
//! Invariants: no secret (the password is not even reachable from here: credentials
//! are shown by source only); server messages appear only redacted (quoted literals
//! replaced, at most 120 characters — see `facts::redact`).

use std::time::{Instant, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::config::{fmt_duration, Config, Credentials};
use crate::facts::{Facts, OptionalFact};
use crate::fleet::{Fleet, Target};
use crate::role::Role;
use crate::snapshot::Snapshot;
use crate::verdict::evaluate;

/// The document: with one target (no `[[target]]`) its roles, snapshot and config at
/// the top level; in fleet mode `targets`, every target in config order with its own.
/// `push`: the HAProxy pushers' state, shown when `[[haproxy]]` is configured.
pub(crate) fn render(
    config: &Config,
    fleet: &Fleet,
    push: Option<&crate::push::stats::Stats>,
    now: Instant,
) -> String {
    let haproxy = push
        .filter(|_| !config.haproxy.is_empty())
        .map(|p| crate::push::status(p, now));
    let mut out = match (fleet.is_named(), fleet.targets()) {
        (false, [t]) => {
            let mut doc = target(t, now);
            if let Some(h) = haproxy {
                doc["haproxy"] = h;
            }
            pretty(&doc, 0)
        }
        (_, targets) => fleet_doc(targets, haproxy, now),
    };
    out.push('\n');
    out
}

/// The fleet document, one target at a time: the whole tree of a thousand targets
/// (tens of MiB of small allocations) would be built for every request and left as
/// heap fragmentation, most of the checker's resident memory (README "Benchmarks",
/// fleet mode). The text is exactly what `to_string_pretty` of the whole tree gives:
/// keys in sorted order (`haproxy`, `targets`, `version`), two-space indentation.
fn fleet_doc(targets: &[std::sync::Arc<Target>], haproxy: Option<Value>, now: Instant) -> String {
    let mut out = String::from("{\n");
    if let Some(h) = haproxy {
        out.push_str("  \"haproxy\": ");
        out.push_str(&pretty(&h, 2));
        out.push_str(",\n");
    }
    if targets.is_empty() {
        out.push_str("  \"targets\": [],\n");
    } else {
        out.push_str("  \"targets\": [\n");
        for (i, t) in targets.iter().enumerate() {
            let mut v = json!({"name": t.name});
            if let (Value::Object(o), Value::Object(more)) = (&mut v, target(t, now)) {
                o.extend(more);
            }
            out.push_str("    ");
            out.push_str(&pretty(&v, 4));
            out.push_str(if i + 1 < targets.len() { ",\n" } else { "\n" });
        }
        out.push_str("  ],\n");
    }
    out.push_str("  \"version\": ");
    out.push_str(&pretty(&json!(env!("CARGO_PKG_VERSION")), 2));
    out.push_str("\n}");
    out
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

fn target(t: &Target, now: Instant) -> Value {
    let config: &Config = &t.config;
    let snap = t.published.latest();
    let roles: Map<String, Value> = Role::ALL
        .iter()
        .map(|&r| {
            let v = evaluate(snap.as_deref(), now, &config.check, r, None);
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
        targets: &[std::sync::Arc<Target>],
        haproxy: Option<Value>,
        now: Instant,
    ) -> String {
        let list: Vec<Value> = targets
            .iter()
            .map(|t| {
                let mut v = json!({"name": t.name});
                if let (Value::Object(o), Value::Object(more)) = (&mut v, target(t, now)) {
                    o.extend(more);
                }
                v
            })
            .collect();
        let mut doc = json!({"version": env!("CARGO_PKG_VERSION"), "targets": list});
        if let Some(h) = haproxy {
            doc["haproxy"] = h;
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
        });
        let now = Instant::now();
        let h = json!({"sockets": [{"path": "/run/haproxy.sock", "ok": true}], "n": 1});
        for (targets, haproxy) in [
            (f.targets(), None),
            (f.targets(), Some(h.clone())),
            (&f.targets()[1..], None),
            (&f.targets()[..0], Some(h)),
        ] {
            let got = fleet_doc(targets, haproxy.clone(), now);
            assert_eq!(got, whole_tree(targets, haproxy, now));
        }
    }
}
