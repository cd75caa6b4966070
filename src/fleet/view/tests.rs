use super::*;
use crate::facts::{Channel, Facts, ProbeError, Reason, Step};
use crate::maintenance::Maintenance;
use crate::verdict::evaluate_with;
use std::time::SystemTime;

fn check(extra: &str) -> Check {
    let text = format!("[listen]\nhttp=\"127.0.0.1:1\"\n[check]\n{extra}\n");
    crate::config::from_str(&text, "t", &Default::default())
        .unwrap()
        .config
        .check
}

fn snap(outcome: Result<Facts, ProbeError>) -> Snapshot {
    Snapshot {
        seq: 1,
        taken: Instant::now(),
        wall: SystemTime::now(),
        duration: Duration::from_millis(1),
        outcome,
        maintenance: None,
        policy: Default::default(),
    }
}

/// What one replica's round said, for the tables below.
#[derive(Clone, Copy)]
enum R {
    /// Replicating from `source` with this lag.
    Lag(&'static str, u64),
    /// Replicating from `source`, SQL thread stopped.
    Stopped(&'static str),
    /// Replicating from `source`, `Seconds_Behind_Master` NULL.
    Unknown(&'static str),
    /// Lagging, in maintenance.
    Maint(&'static str, u64),
    /// Connect refused.
    Dead,
}

fn replica(r: R) -> Snapshot {
    let (source, sql, lag) = match r {
        R::Lag(s, l) | R::Maint(s, l) => (s, "Yes", Some(l)),
        R::Stopped(s) => (s, "No", Some(0)),
        R::Unknown(s) => (s, "Yes", None),
        R::Dead => {
            return snap(Err(ProbeError {
                reason: Reason::Refused,
                step: Step::Connect,
                code: None,
                detail: String::new(),
            }))
        }
    };
    let mut f = Facts::from_variables([("read_only".to_string(), "ON".to_string())]);
    f.channels = OptionalFact::Known(vec![Channel {
        name: String::new(),
        io_state: "Yes".into(),
        sql_state: sql.into(),
        lag,
        last_io_errno: 0,
        last_sql_errno: 0,
        source: source.into(),
    }]);
    let mut s = snap(Ok(f));
    if let R::Maint(..) = r {
        s.maintenance = Some(Maintenance {
            reason: "planned".into(),
            since: String::new(),
        });
    }
    s
}

/// The names `compute` keeps serving among `replicas` (named r1, r2, ...).
fn kept(extra: &str, replicas: &[R]) -> Vec<String> {
    let c = check(extra);
    let snaps: Vec<Snapshot> = replicas.iter().map(|&r| replica(r)).collect();
    let names: Vec<String> = (1..=snaps.len()).map(|i| format!("r{i}")).collect();
    let members: Vec<Member<'_>> = names
        .iter()
        .zip(&snaps)
        .map(|(n, s)| Member {
            name: n,
            check: &c,
            snap: Some(s),
        })
        .collect();
    compute(&members, &BTreeMap::new(), Instant::now())
        .into_iter()
        .filter(|(_, o)| o.kept_serving)
        .map(|(n, _)| n)
        .collect()
}

const A: &str = "db1:3306";
const B: &str = "db2:3306";

#[test]
fn minimum_serving_keeps_the_least_lagged() {
    use R::*;
    let cases: &[(&str, &[R], &[&str])] = &[
        // Two lagging replicas of one primary: exactly one, the least lagged, stays.
        ("", &[Lag(A, 60), Lag(A, 45)], &["r2"]),
        // One still serving: nobody is kept.
        ("", &[Lag(A, 60), Lag(A, 5)], &[]),
        // Equal lags: by name, so every checker keeps the same one.
        ("", &[Lag(A, 45), Lag(A, 45)], &["r1"]),
        (
            "min_serving = 2",
            &[Lag(A, 90), Lag(A, 45), Lag(A, 60)],
            &["r2", "r3"],
        ),
        (
            "min_serving = 2",
            &[Lag(A, 90), Lag(A, 5), Lag(A, 60)],
            &["r3"],
        ),
        ("min_serving = 0", &[Lag(A, 60), Lag(A, 45)], &[]),
        // Never a dead server, stopped replication, unknown lag or maintenance.
        ("", &[Dead, Stopped(A), Unknown(A), Maint(A, 31)], &[]),
        ("", &[Stopped(A), Lag(A, 90), Unknown(A), Dead], &["r2"]),
        ("", &[Maint(A, 40), Lag(A, 90)], &["r2"]),
        // Groups are per source: one kept in each.
        (
            "",
            &[Lag(A, 60), Lag(B, 70), Lag(A, 50), Lag(B, 80)],
            &["r2", "r3"],
        ),
        ("", &[Lag(A, 60), Lag(B, 5), Lag(A, 50)], &["r3"]),
        // A replica whose source the server does not name is in no group.
        ("", &[Lag("", 60)], &[]),
    ];
    for (i, (extra, replicas, want)) in cases.iter().enumerate() {
        assert_eq!(kept(extra, replicas), *want, "case {i}");
    }
}

#[test]
fn the_kept_replica_stays_kept_within_the_hysteresis_width() {
    // Bound 30 s, recovering at 15 s: a kept replica yields only to one more than
    // 15 s less lagged.
    let c = check("");
    let round = |lags: [u64; 2], before: &BTreeMap<String, Overrides>| {
        let snaps = lags.map(|l| replica(R::Lag(A, l)));
        let members: Vec<Member<'_>> = ["r1", "r2"]
            .iter()
            .zip(&snaps)
            .map(|(n, s)| Member {
                name: n,
                check: &c,
                snap: Some(s),
            })
            .collect();
        compute(&members, before, Instant::now())
    };
    let kept = |d: &BTreeMap<String, Overrides>| {
        d.iter()
            .filter(|(_, o)| o.kept_serving)
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    let mut d = round([40, 41], &BTreeMap::new());
    assert_eq!(kept(&d), ["r1"]);
    for (lags, want) in [
        ([45, 40], "r1"),
        ([55, 40], "r1"),
        ([56, 40], "r2"),
        ([40, 50], "r2"),
        ([40, 56], "r1"),
    ] {
        d = round(lags, &d);
        assert_eq!(kept(&d), [want], "{lags:?}");
    }
}

#[test]
fn a_kept_replica_says_so_on_the_configured_bound_only() {
    let c = check("");
    let s = replica(R::Lag(A, 45));
    let o = Overrides {
        kept_serving: true,
        not_writer: None,
    };
    let now = Instant::now();
    let line = |role, lag| evaluate_with(Some(&s), now, &c, role, lag, &o).line();
    assert_eq!(
        line(Role::Replica, None),
        "replica: up - kept serving: least lagged (lag 45s exceeds 30s)"
    );
    assert_eq!(
        line(Role::ReadOnly, None),
        "read-only: up - kept serving: least lagged (lag 45s exceeds 30s)"
    );
    assert_eq!(
        line(Role::Replica, Some(Duration::from_secs(30))),
        "replica: up - kept serving: least lagged (lag 45s exceeds 30s)"
    );
    // A per-request bound is the caller's own.
    assert_eq!(
        line(Role::Replica, Some(Duration::from_secs(40))),
        "replica: down - replication lag 45s exceeds 40s"
    );
    assert_eq!(line(Role::Primary, None), "primary: down - read_only is ON");
    // Never a server that is down for another reason.
    let stopped = replica(R::Stopped(A));
    let v = evaluate_with(Some(&stopped), now, &c, Role::Replica, None, &o);
    assert_eq!(v.state, State::Down);
    let m = replica(R::Maint(A, 45));
    let v = evaluate_with(Some(&m), now, &c, Role::Replica, None, &o);
    assert_eq!(
        v.line(),
        "maintenance: down - replication lag 45s exceeds 30s"
    );
}

/// A Galera node: cluster `uuid`, `wsrep_local_index` `index`, Synced or `state`.
fn node(uuid: &str, index: Option<u32>, state: u32) -> Snapshot {
    let vars = [
        ("read_only", "OFF"),
        ("wsrep_on", "ON"),
        ("wsrep_provider", "/usr/lib/galera/libgalera_smm.so"),
    ];
    let mut f = Facts::from_variables(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    f.channels = OptionalFact::Known(vec![]);
    let mut status: BTreeMap<String, String> = [
        ("wsrep_cluster_status", "Primary"),
        ("wsrep_ready", "ON"),
        ("wsrep_cluster_state_uuid", uuid),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    status.insert("wsrep_local_state".into(), state.to_string());
    if let Some(i) = index {
        status.insert("wsrep_local_index".into(), i.to_string());
    }
    f.status = OptionalFact::Known(status);
    snap(Ok(f))
}

/// `/primary` per node (g1, g2, ...) after the pass.
fn primaries(extra: &str, nodes: &[Snapshot]) -> Vec<String> {
    let c = check(extra);
    let names: Vec<String> = (1..=nodes.len()).map(|i| format!("g{i}")).collect();
    let members: Vec<Member<'_>> = names
        .iter()
        .zip(nodes)
        .map(|(n, s)| Member {
            name: n,
            check: &c,
            snap: Some(s),
        })
        .collect();
    let now = Instant::now();
    let decided = compute(&members, &BTreeMap::new(), now);
    names
        .iter()
        .zip(nodes)
        .map(|(n, s)| {
            let o = decided.get(n).cloned().unwrap_or_default();
            evaluate_with(Some(s), now, &c, Role::Primary, None, &o).line()
        })
        .collect()
}

#[test]
fn one_galera_writer_per_cluster() {
    let on = "galera_single_writer = true";
    let up = "primary: up";
    let not = |own: &str, w: u32| {
        format!(
            "primary: down - not the galera writer (wsrep_local_index {own}, the writer's is {w})"
        )
    };
    let nodes = [
        node("U1", Some(2), 4),
        node("u1", Some(0), 4),
        node("u1", Some(1), 4),
    ];
    assert_eq!(primaries(on, &nodes), [not("2", 0), up.into(), not("1", 0)]);
    // Off (the default): every healthy node is a primary, as before.
    assert_eq!(primaries("", &nodes), [up, up, up]);
    // The lowest index is not healthy (a donor): the next one writes.
    let nodes = [
        node("u1", Some(2), 4),
        node("u1", Some(0), 2),
        node("u1", Some(1), 4),
    ];
    let p = primaries(on, &nodes);
    assert_eq!(p[0], not("2", 1));
    assert!(
        p[1].starts_with("primary: down - galera node Donor"),
        "{}",
        p[1]
    );
    assert_eq!(p[2], up);
    // Two clusters: one writer in each; a node without an index never writes.
    let nodes = [
        node("u1", Some(1), 4),
        node("u2", Some(1), 4),
        node("u1", None, 4),
        node("u2", Some(0), 4),
    ];
    assert_eq!(
        primaries(on, &nodes),
        [up.into(), not("1", 0), not("unknown", 1), up.to_string()]
    );
    // No node may write: nothing changes (every /primary is down on its own).
    let nodes = [node("u1", Some(0), 1), node("u1", None, 4)];
    let p = primaries(on, &nodes);
    assert!(
        p[0].starts_with("primary: down - galera node Joining"),
        "{}",
        p[0]
    );
    assert_eq!(p[1], up);
}
