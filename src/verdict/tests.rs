use super::*;
use crate::facts::{ProbeError, Reason, Step};
use crate::facts::{ServerError, StepFailure};
use crate::maintenance::Maintenance;
use std::time::SystemTime;

fn check() -> Check {
    crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &Default::default())
        .unwrap()
        .config
        .check
}

fn facts(vars: &[(&str, &str)]) -> Facts {
    Facts::from_variables(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn writable_facts() -> Facts {
    let mut f = facts(&[("read_only", "OFF"), ("version", "10.11.6-MariaDB")]);
    f.channels = OptionalFact::Known(vec![]);
    f
}

fn channel(name: &str, io: &str, sql: &str, lag: Option<u64>) -> Channel {
    Channel {
        name: name.into(),
        io_state: io.into(),
        sql_state: sql.into(),
        lag,
        last_io_errno: 0,
        last_sql_errno: 0,
    }
}

fn replica_facts(channels: Vec<Channel>) -> Facts {
    let mut f = facts(&[("read_only", "ON")]);
    f.channels = OptionalFact::Known(channels);
    f
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

fn eval(s: &Snapshot, role: Role) -> Verdict {
    evaluate(Some(s), Instant::now(), &check(), role, None)
}

#[test]
fn starting_before_first_round() {
    for &r in Role::ALL {
        let v = evaluate(None, Instant::now(), &check(), r, None);
        assert_eq!(v.state, State::Starting);
        assert_eq!(v.line(), format!("{}: starting", r.name()));
    }
}

#[test]
fn writable_server() {
    let s = snap(Ok(writable_facts()));
    assert_eq!(eval(&s, Role::Health).line(), "health: up");
    assert_eq!(eval(&s, Role::Primary).line(), "primary: up");
    assert_eq!(
        eval(&s, Role::Replica).line(),
        "replica: down - not replicating (no replication channel)"
    );
    assert_eq!(eval(&s, Role::ReadOnly).line(), "read-only: up - writable");
}

#[test]
fn read_only_server_without_channels() {
    let s = snap(Ok(replica_facts(vec![])));
    assert_eq!(eval(&s, Role::Health).state, State::Up);
    assert_eq!(
        eval(&s, Role::Primary).line(),
        "primary: down - read_only is ON"
    );
    assert_eq!(
        eval(&s, Role::ReadOnly).line(),
        "read-only: down - read_only and not replicating"
    );
}

#[test]
fn mariadb_12_read_only_values_count_as_on() {
    let mut f = writable_facts();
    f.variables
        .insert("read_only".into(), "NO_LOCK_NO_ADMIN".into());
    assert_eq!(
        eval(&snap(Ok(f)), Role::Primary).line(),
        "primary: down - read_only is NO_LOCK_NO_ADMIN"
    );
}

#[test]
fn super_read_only_and_missing_read_only() {
    let mut f = writable_facts();
    f.variables.insert("super_read_only".into(), "ON".into());
    assert_eq!(
        eval(&snap(Ok(f)), Role::Primary).reason,
        "super_read_only is ON"
    );
    let mut f = writable_facts();
    f.variables.remove("read_only");
    assert_eq!(eval(&snap(Ok(f)), Role::Primary).state, State::Down);
}

#[test]
fn errors_are_down_for_every_role_with_our_phrase() {
    let e = ProbeError {
        reason: Reason::Refused,
        step: Step::Connect,
        code: None,
        detail: "secret server text".into(),
    };
    let s = snap(Err(e));
    for &r in Role::ALL {
        let v = eval(&s, r);
        assert_eq!(v.state, State::Down);
        assert_eq!(v.reason, "connection refused");
    }
}

#[test]
fn failed_check_query_and_offline_mode() {
    let mut f = writable_facts();
    f.query = Err(ServerError::new(1047, "WSREP has not yet prepared node"));
    assert_eq!(
        eval(&snap(Ok(f)), Role::Health).line(),
        "health: down - check query failed (error 1047)"
    );
    let mut f = writable_facts();
    f.variables.insert("offline_mode".into(), "ON".into());
    assert_eq!(
        eval(&snap(Ok(f)), Role::Health).reason,
        "offline_mode is ON"
    );
}

#[test]
fn stale_snapshot_is_down() {
    let mut s = snap(Ok(writable_facts()));
    s.taken = Instant::now() - Duration::from_secs(6);
    let v = eval(&s, Role::Health);
    assert_eq!(v.state, State::Down);
    assert!(v.reason.starts_with("stale"), "{}", v.reason);
}

#[test]
fn maintenance_precedence() {
    let mut s = snap(Ok(writable_facts()));
    s.maintenance = Some(Maintenance {
        reason: "kernel upgrade".into(),
        since: String::new(),
    });
    let v = eval(&s, Role::Primary);
    assert_eq!(v.state, State::Maintenance);
    assert_eq!(v.line(), "maintenance: kernel upgrade");
    // Down wins over maintenance, and says both.
    let v = eval(&s, Role::Replica);
    assert_eq!(v.state, State::Down);
    assert_eq!(
        v.line(),
        "maintenance: down - not replicating (no replication channel)"
    );
    // Starting wins over everything.
    assert_eq!(
        evaluate(None, Instant::now(), &check(), Role::Health, None).state,
        State::Starting
    );
}

#[test]
fn replica_rules() {
    let ok = snap(Ok(replica_facts(vec![channel("", "Yes", "Yes", Some(3))])));
    assert_eq!(eval(&ok, Role::Replica).line(), "replica: up - lag 3s");
    assert_eq!(eval(&ok, Role::ReadOnly).line(), "read-only: up - lag 3s");
    assert_eq!(eval(&ok, Role::Health).state, State::Up);

    let lagging = snap(Ok(replica_facts(vec![channel("", "Yes", "Yes", Some(45))])));
    assert_eq!(
        eval(&lagging, Role::Replica).line(),
        "replica: down - replication lag 45s exceeds 30s"
    );
    let v = evaluate(
        Some(&lagging),
        Instant::now(),
        &check(),
        Role::Replica,
        Some(Duration::from_secs(60)),
    );
    assert_eq!(v.state, State::Up);

    let null_lag = snap(Ok(replica_facts(vec![channel("", "Yes", "Yes", None)])));
    assert_eq!(
        eval(&null_lag, Role::Replica).reason,
        "replication lag unknown (channel '')"
    );
    let io_down = snap(Ok(replica_facts(vec![channel(
        "",
        "Connecting",
        "Yes",
        None,
    )])));
    assert_eq!(
        eval(&io_down, Role::Replica).reason,
        "replication IO thread not running (channel '': Connecting)"
    );
    let sql_down = snap(Ok(replica_facts(vec![channel("", "Yes", "No", Some(0))])));
    assert!(eval(&sql_down, Role::Replica)
        .reason
        .starts_with("replication SQL thread not running"));
}

#[test]
fn worst_lag_across_channels_and_selection() {
    let f = replica_facts(vec![
        channel("a", "Yes", "Yes", Some(1)),
        channel("b", "Yes", "Yes", Some(40)),
        channel("group_replication_applier", "Yes", "Yes", None),
    ]);
    let s = snap(Ok(f));
    assert_eq!(
        eval(&s, Role::Replica).reason,
        "replication lag 40s exceeds 30s"
    );
    let mut c = check();
    c.replication_channels = vec!["a".into()];
    let v = evaluate(Some(&s), Instant::now(), &c, Role::Replica, None);
    assert_eq!(v.line(), "replica: up - lag 1s");
}

#[test]
fn primary_refuses_a_writable_replicating_server() {
    let mut f = writable_facts();
    f.channels = OptionalFact::Known(vec![channel("", "Yes", "Yes", Some(0))]);
    let s = snap(Ok(f));
    assert_eq!(
        eval(&s, Role::Primary).line(),
        "primary: down - writable but replicating (channel '')"
    );
    let mut c = check();
    c.primary_allows_replication = true;
    assert_eq!(
        evaluate(Some(&s), Instant::now(), &c, Role::Primary, None).state,
        State::Up
    );
    // A stopped channel is not replicating.
    let mut f = writable_facts();
    f.channels = OptionalFact::Known(vec![channel("", "No", "No", None)]);
    assert_eq!(eval(&snap(Ok(f)), Role::Primary).state, State::Up);
}

#[test]
fn failed_optional_step_judges_primary_on_core_facts() {
    let mut f = writable_facts();
    f.channels = OptionalFact::Failed(StepFailure {
        reason: Reason::Privilege,
        code: Some(1227),
    });
    let s = snap(Ok(f));
    assert_eq!(eval(&s, Role::Primary).state, State::Up);
    assert_eq!(eval(&s, Role::Health).state, State::Up);
    assert_eq!(
        eval(&s, Role::Replica).reason,
        "replication status unavailable: missing privilege (error 1227)"
    );
}

fn galera_facts(status: &[(&str, &str)], vars: &[(&str, &str)]) -> Facts {
    let mut f = writable_facts();
    f.variables.insert("wsrep_on".into(), "ON".into());
    f.variables.insert(
        "wsrep_provider".into(),
        "/usr/lib/galera/libgalera_smm.so".into(),
    );
    f.variables
        .insert("wsrep_reject_queries".into(), "NONE".into());
    for (k, v) in vars {
        f.variables.insert(k.to_string(), v.to_string());
    }
    let mut st: std::collections::BTreeMap<String, String> = [
        ("wsrep_local_state", "4"),
        ("wsrep_cluster_status", "Primary"),
        ("wsrep_ready", "ON"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in status {
        st.insert(k.to_lowercase(), v.to_string());
    }
    f.status = OptionalFact::Known(st);
    f
}

#[test]
fn galera_rules() {
    let synced = snap(Ok(galera_facts(&[], &[])));
    assert_eq!(eval(&synced, Role::Health).line(), "health: up");
    assert_eq!(eval(&synced, Role::Primary).state, State::Up);
    assert_eq!(
        eval(&synced, Role::ReadOnly).line(),
        "read-only: up - galera healthy"
    );
    // A Galera node's read_only only affects /primary.
    let ro = snap(Ok(galera_facts(&[], &[("read_only", "ON")])));
    assert_eq!(eval(&ro, Role::ReadOnly).state, State::Up);
    assert_eq!(eval(&ro, Role::Primary).state, State::Down);

    let donor = galera_facts(&[("wsrep_local_state", "2")], &[("wsrep_desync", "ON")]);
    assert_eq!(
        eval(&snap(Ok(donor.clone())), Role::Health).reason,
        "galera node Donor/Desynced (wsrep_local_state 2)"
    );
    let mut c = check();
    c.galera_donor_is_healthy = true;
    let s = snap(Ok(donor));
    assert_eq!(
        evaluate(Some(&s), Instant::now(), &c, Role::Health, None).state,
        State::Up
    );
    let rejecting = galera_facts(
        &[("wsrep_local_state", "2")],
        &[("wsrep_sst_donor_rejects_queries", "ON")],
    );
    let s = snap(Ok(rejecting));
    assert_eq!(
        evaluate(Some(&s), Instant::now(), &c, Role::Health, None).reason,
        "galera donor rejects queries during SST"
    );

    let isolated = galera_facts(
        &[
            ("wsrep_local_state", "0"),
            ("wsrep_cluster_status", "non-Primary"),
            ("wsrep_ready", "OFF"),
        ],
        &[],
    );
    assert_eq!(
        eval(&snap(Ok(isolated)), Role::Health).reason,
        "galera cluster component is not Primary"
    );
    let not_ready = galera_facts(&[("wsrep_ready", "OFF")], &[]);
    assert_eq!(
        eval(&snap(Ok(not_ready)), Role::Health).reason,
        "galera wsrep_ready is not ON"
    );
    let joining = galera_facts(&[("wsrep_local_state", "1")], &[]);
    assert_eq!(
        eval(&snap(Ok(joining)), Role::Health).reason,
        "galera node Joining (wsrep_local_state 1)"
    );
    let reject = galera_facts(&[], &[("wsrep_reject_queries", "ALL")]);
    assert_eq!(
        eval(&snap(Ok(reject)), Role::Health).reason,
        "galera rejects queries (wsrep_reject_queries=ALL)"
    );
    let pxc = galera_facts(&[], &[("pxc_maint_mode", "MAINTENANCE")]);
    assert_eq!(
        eval(&snap(Ok(pxc)), Role::Health).reason,
        "pxc_maint_mode is MAINTENANCE"
    );
    let mut failed = galera_facts(&[], &[]);
    failed.status = OptionalFact::Failed(StepFailure {
        reason: Reason::Timeout,
        code: None,
    });
    assert_eq!(
        eval(&snap(Ok(failed)), Role::Health).reason,
        "galera status unavailable: timeout"
    );
}

#[test]
fn plain_mariadb_wsrep_leftovers_are_ignored() {
    // wsrep_on=OFF: wsrep_ready=OFF and Disconnected mean nothing.
    let mut f = galera_facts(
        &[
            ("wsrep_ready", "OFF"),
            ("wsrep_cluster_status", "Disconnected"),
        ],
        &[],
    );
    f.variables.insert("wsrep_on".into(), "OFF".into());
    assert_eq!(eval(&snap(Ok(f.clone())), Role::Health).state, State::Up);
    f.variables.insert("wsrep_on".into(), "ON".into());
    f.variables.insert("wsrep_provider".into(), "none".into());
    assert_eq!(eval(&snap(Ok(f)), Role::Health).state, State::Up);
}

fn member(id: &str, state: &str, role: &str) -> crate::facts::Member {
    crate::facts::Member {
        id: id.into(),
        state: state.into(),
        role: role.into(),
    }
}

fn gr_facts(own_role: &str, members: Vec<crate::facts::Member>, queue: Option<u64>) -> Facts {
    let mut f = facts(&[
        ("group_replication_group_name", "aaaaaaaa-bbbb"),
        ("server_uuid", "uuid-1"),
        (
            "read_only",
            if own_role == "PRIMARY" { "OFF" } else { "ON" },
        ),
        (
            "super_read_only",
            if own_role == "PRIMARY" { "OFF" } else { "ON" },
        ),
    ]);
    f.channels = OptionalFact::Known(vec![
        channel("group_replication_applier", "Yes", "Yes", Some(0)),
        channel("group_replication_recovery", "No", "No", None),
    ]);
    f.group = OptionalFact::Known(crate::facts::Group {
        members,
        applier_queue: match queue {
            Some(q) => OptionalFact::Known(Some(q)),
            None => OptionalFact::NotCollected,
        },
    });
    f
}

#[test]
fn group_replication_rules() {
    let three = |own_state: &str, own_role: &str| {
        vec![
            member("uuid-1", own_state, own_role),
            member("uuid-2", "ONLINE", "SECONDARY"),
            member(
                "uuid-3",
                "ONLINE",
                if own_role == "PRIMARY" {
                    "SECONDARY"
                } else {
                    "PRIMARY"
                },
            ),
        ]
    };
    let primary = snap(Ok(gr_facts("PRIMARY", three("ONLINE", "PRIMARY"), None)));
    assert_eq!(eval(&primary, Role::Health).state, State::Up);
    assert_eq!(eval(&primary, Role::Primary).line(), "primary: up");
    assert_eq!(
        eval(&primary, Role::Replica).reason,
        "group replication PRIMARY, not a secondary"
    );
    assert_eq!(eval(&primary, Role::ReadOnly).state, State::Up);

    let secondary = snap(Ok(gr_facts(
        "SECONDARY",
        three("ONLINE", "SECONDARY"),
        None,
    )));
    assert_eq!(
        eval(&secondary, Role::Replica).line(),
        "replica: up - group secondary online"
    );
    assert_eq!(eval(&secondary, Role::Primary).state, State::Down);
    assert_eq!(eval(&secondary, Role::ReadOnly).state, State::Up);

    let recovering = snap(Ok(gr_facts(
        "SECONDARY",
        three("RECOVERING", "SECONDARY"),
        None,
    )));
    assert_eq!(
        eval(&recovering, Role::Health).reason,
        "group replication member RECOVERING"
    );
    // A minority partition: we are ONLINE but see the others UNREACHABLE.
    let minority = snap(Ok(gr_facts(
        "PRIMARY",
        vec![
            member("uuid-1", "ONLINE", "PRIMARY"),
            member("uuid-2", "UNREACHABLE", "SECONDARY"),
            member("uuid-3", "UNREACHABLE", "SECONDARY"),
        ],
        None,
    )));
    assert_eq!(
        eval(&minority, Role::Health).reason,
        "group replication has no majority (1 of 3 members ONLINE)"
    );
    // A rolling restart: one member left cleanly, one is RECOVERING. The group
    // holds quorum, so the primary stays up.
    let rolling = snap(Ok(gr_facts(
        "PRIMARY",
        vec![
            member("uuid-1", "ONLINE", "PRIMARY"),
            member("uuid-2", "RECOVERING", "SECONDARY"),
        ],
        None,
    )));
    assert_eq!(eval(&rolling, Role::Primary).state, State::Up);
    let two_of_three = snap(Ok(gr_facts(
        "PRIMARY",
        vec![
            member("uuid-1", "ONLINE", "PRIMARY"),
            member("uuid-2", "RECOVERING", "SECONDARY"),
            member("uuid-3", "UNREACHABLE", "SECONDARY"),
        ],
        None,
    )));
    assert_eq!(eval(&two_of_three, Role::Health).state, State::Up);
    // Configured but stopped: own row OFFLINE (or absent).
    let stopped = snap(Ok(gr_facts(
        "SECONDARY",
        vec![member("uuid-1", "OFFLINE", "")],
        None,
    )));
    assert_eq!(
        eval(&stopped, Role::Health).reason,
        "group replication member OFFLINE"
    );
    let absent = snap(Ok(gr_facts("SECONDARY", vec![], None)));
    assert_eq!(
        eval(&absent, Role::Health).reason,
        "group replication configured but this member is not in the group"
    );
    // Applier queue bound.
    let mut c = check();
    c.gr_max_applier_queue = 100;
    let busy = snap(Ok(gr_facts(
        "SECONDARY",
        three("ONLINE", "SECONDARY"),
        Some(250),
    )));
    assert_eq!(
        evaluate(Some(&busy), Instant::now(), &c, Role::Replica, None).reason,
        "group replication applier queue 250 exceeds 100"
    );
    let fine = snap(Ok(gr_facts(
        "SECONDARY",
        three("ONLINE", "SECONDARY"),
        Some(3),
    )));
    assert_eq!(
        evaluate(Some(&fine), Instant::now(), &c, Role::Replica, None).state,
        State::Up
    );
    // group_replication_* channels never count as async replication for /primary.
    assert_eq!(eval(&primary, Role::Primary).state, State::Up);
}

/// Values the server supplies never reach a body: known enum words are named, any
/// other value gets a fixed phrase.
#[test]
fn server_values_never_reach_a_body() {
    let evil = "ON\r\nX-Injected: 1";
    let mut f = writable_facts();
    f.variables.insert("read_only".into(), evil.into());
    assert_eq!(
        eval(&snap(Ok(f)), Role::Primary).reason,
        "read_only is not OFF"
    );
    let mut f = writable_facts();
    f.variables.insert("read_only".into(), "no_lock".into());
    assert_eq!(
        eval(&snap(Ok(f)), Role::Primary).reason,
        "read_only is NO_LOCK"
    );

    let reject = galera_facts(&[], &[("wsrep_reject_queries", evil)]);
    assert_eq!(
        eval(&snap(Ok(reject)), Role::Health).reason,
        "galera rejects queries (wsrep_reject_queries is not NONE)"
    );
    let pxc = galera_facts(&[], &[("pxc_maint_mode", evil)]);
    assert_eq!(
        eval(&snap(Ok(pxc)), Role::Health).reason,
        "pxc_maint_mode is not DISABLED"
    );

    let io = snap(Ok(replica_facts(vec![channel("", evil, "Yes", None)])));
    assert_eq!(
        eval(&io, Role::Replica).reason,
        "replication IO thread not running (channel '': unknown)"
    );
    let sql = snap(Ok(replica_facts(vec![channel("", "Yes", evil, None)])));
    assert_eq!(
        eval(&sql, Role::Replica).reason,
        "replication SQL thread not running (channel '': unknown)"
    );

    let odd_state = snap(Ok(gr_facts(
        "PRIMARY",
        vec![member("uuid-1", evil, "PRIMARY")],
        None,
    )));
    assert_eq!(
        eval(&odd_state, Role::Health).reason,
        "group replication member state unknown"
    );
    let odd_role = snap(Ok(gr_facts(
        "PRIMARY",
        vec![member("uuid-1", "ONLINE", evil)],
        None,
    )));
    assert_eq!(
        eval(&odd_role, Role::Primary).reason,
        "group replication role unknown"
    );
    assert_eq!(
        eval(&odd_role, Role::Replica).reason,
        "group replication role unknown"
    );
    for s in [odd_state, odd_role] {
        for &r in Role::ALL {
            assert!(!eval(&s, r).line().contains("Injected"));
        }
    }
}

/// NULL (no value) is unknown, said as such; still down.
#[test]
fn unreported_values_are_unknown() {
    let mut f = writable_facts();
    f.variables.insert("offline_mode".into(), String::new());
    let v = eval(&snap(Ok(f)), Role::Health);
    assert_eq!(v.state, State::Down);
    assert_eq!(v.reason, "offline_mode unknown (no value reported)");

    let mut f = galera_facts(&[], &[]);
    if let OptionalFact::Known(st) = &mut f.status {
        st.remove("wsrep_cluster_status");
    }
    assert_eq!(
        eval(&snap(Ok(f)), Role::Health).reason,
        "galera cluster status unknown"
    );
    let f = galera_facts(&[("wsrep_ready", "")], &[]);
    assert_eq!(
        eval(&snap(Ok(f)), Role::Health).reason,
        "galera wsrep_ready unknown"
    );
}

/// (writable | read_only) × (no channels | running | stopped | failed step | not
/// collected): `/read-only` is up whenever `/primary` is, a read_only server goes
/// through the `/replica` test, and a failed or skipped step is never a pass for it.
#[test]
fn read_only_is_never_stricter_than_primary() {
    let failed = || {
        OptionalFact::Failed(StepFailure {
            reason: Reason::Privilege,
            code: Some(1227),
        })
    };
    type Case = (&'static str, &'static str, State, &'static str);
    let cases: &[Case] = &[
        ("OFF", "none", State::Up, "writable"),
        ("OFF", "running", State::Up, "lag 2s"),
        ("OFF", "stopped", State::Up, "writable"),
        ("OFF", "failed", State::Up, "writable"),
        ("OFF", "not collected", State::Up, "writable"),
        ("ON", "none", State::Down, "read_only and not replicating"),
        ("ON", "running", State::Up, "lag 2s"),
        (
            "ON",
            "stopped",
            State::Down,
            "replication IO thread not running (channel '': No)",
        ),
        (
            "ON",
            "failed",
            State::Down,
            "replication status unavailable: missing privilege (error 1227)",
        ),
        (
            "ON",
            "not collected",
            State::Down,
            "replication status not collected",
        ),
    ];
    for &(ro, channels, state, reason) in cases {
        let mut f = facts(&[("read_only", ro), ("version", "10.11.6-MariaDB")]);
        f.channels = match channels {
            "none" => OptionalFact::Known(vec![]),
            "running" => OptionalFact::Known(vec![channel("", "Yes", "Yes", Some(2))]),
            "stopped" => OptionalFact::Known(vec![channel("", "No", "No", None)]),
            "failed" => failed(),
            _ => OptionalFact::NotCollected,
        };
        let s = snap(Ok(f));
        let ro_v = eval(&s, Role::ReadOnly);
        let what = format!("read_only={ro}, channels {channels}");
        assert_eq!(
            (ro_v.state, ro_v.reason.as_str()),
            (state, reason),
            "{what}"
        );
        if eval(&s, Role::Primary).state == State::Up {
            assert_eq!(ro_v.state, State::Up, "stricter than /primary: {what}");
        }
    }
}
