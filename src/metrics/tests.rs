//! The exposition against fleets of real `Target`s (kept out of `mod.rs`, which knows
//! nothing of the fleet).

use super::*;
use crate::config::Config;
use crate::facts::{Channel, Facts, OptionalFact};
use crate::fleet::{Fleet, Target};

/// `/metrics` of `fleet`, now, without `[[haproxy]]`.
fn render(m: &Metrics, fleet: &Fleet) -> String {
    m.render(fleet.targets(), fleet.is_named(), false, Instant::now())
}
use crate::snapshot::{Published, Snapshot};
use std::time::{Duration, SystemTime};

fn config() -> Config {
    crate::config::from_str("[listen]\nhttp=\"127.0.0.1:1\"\n", "t", &Default::default())
        .unwrap()
        .config
}

fn healthy() -> Snapshot {
    Snapshot {
        seq: 1,
        taken: Instant::now(),
        wall: SystemTime::now(),
        duration: Duration::from_millis(2),
        outcome: Ok(Facts::from_variables(
            [("read_only", "OFF"), ("max_connections", "151")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )),
        maintenance: None,
        policy: Default::default(),
    }
}

/// A named fleet of `(name, gone)`, each target with a healthy snapshot.
fn named(targets: &[(&str, bool)]) -> Fleet {
    let cfg = Arc::new(config());
    Fleet::named(
        targets
            .iter()
            .map(|&(name, gone)| {
                let mut t = Target::new(name, cfg.clone());
                t.gone = gone;
                t.published.publish(healthy());
                Arc::new(t)
            })
            .collect(),
    )
}

#[test]
fn exposition_is_well_formed() {
    let m = Arc::new(Metrics::new());
    m.request("primary", 200);
    m.request("other", 999);
    m.round(Duration::from_millis(3));
    m.round(Duration::from_secs(9));
    // A single server's prober counts into the process's counters.
    m.prober(None).probe_error(Reason::Timeout);
    m.transition(Role::Replica, State::Down);
    let published = Arc::new(Published::new());
    let mut snap = healthy();
    let Ok(f) = &mut snap.outcome else {
        unreachable!()
    };
    f.channels = OptionalFact::Known(vec![Channel {
        name: "a\"b\\c\nd".into(),
        io_state: "Yes".into(),
        sql_state: "Yes".into(),
        lag: None,
        last_io_errno: 0,
        last_sql_errno: 0,
        source: String::new(),
    }]);
    published.publish(snap);
    let fleet = Fleet::single(Arc::new(Target::configured(
        "",
        Arc::new(config()),
        published,
    )));
    let text = m.render(fleet.targets(), fleet.is_named(), false, Instant::now());
    // Every family declared once, samples right after their own header.
    let mut seen = std::collections::HashSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(seen.insert(name.clone()), "{name} declared twice");
            current = name;
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&current), "{line} outside {current}");
            assert!(line.starts_with("mysqlchk_"));
        }
    }
    assert!(text.contains("mysqlchk_http_requests_total{endpoint=\"primary\",status=\"200\"} 1"));
    assert!(text.contains("mysqlchk_http_requests_total{endpoint=\"other\",status=\"other\"} 1"));
    assert!(text.contains("mysqlchk_round_duration_seconds_bucket{le=\"0.005\"} 1"));
    assert!(text.contains("mysqlchk_round_duration_seconds_bucket{le=\"+Inf\"} 2"));
    assert!(text.contains("mysqlchk_probe_errors_total{reason=\"timeout\"} 1"));
    assert_eq!(
        text.matches("mysqlchk_probe_errors_total{").count(),
        Reason::ALL.len()
    );
    assert!(text.contains("mysqlchk_replication_lag_seconds{channel=\"a\\\"b\\\\c\\nd\"} NaN"));
    assert!(text.contains("mysqlchk_mysql_max_connections 151"));
    assert!(text.contains("mysqlchk_role_up{role=\"health\"} 1"));
    assert!(!text.contains("target="), "{text}");
    // No per-target round counter without targets: the histogram's count is it.
    assert!(!text.contains("mysqlchk_target_rounds_total"), "{text}");
    // A fixed label set: every role and state, changed or not.
    assert!(text.contains("mysqlchk_transitions_total{role=\"replica\",to=\"down\"} 1"));
    assert!(text.contains("mysqlchk_transitions_total{role=\"health\",to=\"up\"} 0"));
    assert_eq!(text.matches("mysqlchk_transitions_total{").count(), 16);
}

/// Fleet mode: transitions, probe errors and rounds per target (none without the
/// label); a target gone from the fleet is forgotten.
#[test]
fn fleet_counters_carry_the_target() {
    let m = Arc::new(Metrics::new());
    m.transition(Role::Replica, State::Down);
    m.target_transition("db1", Role::Replica, State::Down);
    m.target_transition("db1", Role::Replica, State::Down);
    m.target_transition("gone", Role::Health, State::Up);
    m.retain_targets(|n| n != "gone");
    let db1 = m.prober(Some("db1"));
    db1.probe_error(Reason::Timeout);
    db1.clone().probe_error(Reason::Timeout);
    let _db2 = m.prober(Some("db2"));
    for _ in 0..3 {
        db1.round(Duration::from_millis(1));
    }
    let gone = m.prober(Some("gone"));
    gone.round(Duration::from_millis(1));
    m.forget_target("gone");
    // A stopped prober's last count reaches no series.
    gone.probe_error(Reason::Refused);
    gone.round(Duration::from_millis(1));
    let text = render(&m, &named(&[("db1", false), ("db2", false)]));
    assert!(
        text.contains("mysqlchk_transitions_total{target=\"db1\",role=\"replica\",to=\"down\"} 2")
    );
    assert!(
        text.contains("mysqlchk_transitions_total{target=\"db2\",role=\"replica\",to=\"down\"} 0")
    );
    assert_eq!(text.matches("mysqlchk_transitions_total{").count(), 32);
    assert!(!text.contains("mysqlchk_transitions_total{role="));
    assert!(lock(&m.target_transitions).get("gone").is_none());
    assert!(text.contains("mysqlchk_probe_errors_total{target=\"db1\",reason=\"timeout\"} 2"));
    assert!(text.contains("mysqlchk_probe_errors_total{target=\"db2\",reason=\"timeout\"} 0"));
    assert_eq!(
        text.matches("mysqlchk_probe_errors_total{").count(),
        2 * Reason::ALL.len()
    );
    assert!(!text.contains("mysqlchk_probe_errors_total{reason="));
    // Rounds per target, zero before the first; every one is also in the
    // process's histogram (the gone target's too).
    assert!(text.contains("mysqlchk_target_rounds_total{target=\"db1\"} 3\n"));
    assert!(text.contains("mysqlchk_target_rounds_total{target=\"db2\"} 0\n"));
    assert_eq!(text.matches("mysqlchk_target_rounds_total{").count(), 2);
    assert_eq!(
        text.matches("# TYPE mysqlchk_target_rounds_total counter")
            .count(),
        1
    );
    assert!(text.contains("mysqlchk_round_duration_seconds_count 5\n"));
    assert!(!text.contains("target=\"gone\""), "{text}");
    assert!(lock(&m.target_counters).get("gone").is_none());
    // The fleet's errors are not the process's (no double count on a switch back
    // to a single server).
    assert_eq!(m.probe_errors.get(0) + m.probe_errors.get(1), 0);
}

/// A discovered target gone from the topology answers down `not in topology`:
/// its role series say so, whatever its (healthy) server says.
#[test]
fn a_gone_target_is_down_in_its_role_series() {
    let m = Arc::new(Metrics::new());
    let text = render(&m, &named(&[("here", false), ("gone", true)]));
    for role in Role::ALL {
        let r = role.name();
        assert!(
            text.contains(&format!(
                "mysqlchk_role_up{{target=\"gone\",role=\"{r}\"}} 0"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "mysqlchk_role_state{{target=\"gone\",role=\"{r}\",state=\"down\"}} 1"
        )));
        assert!(text.contains(&format!(
            "mysqlchk_role_state{{target=\"gone\",role=\"{r}\",state=\"up\"}} 0"
        )));
    }
    assert!(text.contains("mysqlchk_role_up{target=\"here\",role=\"health\"} 1"));
}

/// A target removed from the fleet (a reload, or forgotten by discovery) leaves no
/// series behind, also after it had counted transitions and probe errors.
#[test]
fn a_removed_target_leaves_no_series() {
    let m = Arc::new(Metrics::new());
    let p = m.prober(Some("old"));
    p.probe_error(Reason::Refused);
    p.round(Duration::from_millis(1));
    m.target_transition("old", Role::Health, State::Down);
    let before = render(&m, &named(&[("old", false), ("kept", false)]));
    assert!(before.contains("mysqlchk_probe_errors_total{target=\"old\",reason=\"refused\"} 1"));
    assert!(before.contains("mysqlchk_target_rounds_total{target=\"old\"} 1\n"));
    // What the probers and the fleet-wide pass do when it leaves the fleet.
    let after_fleet = named(&[("kept", false)]);
    m.forget_target("old");
    m.retain_targets(|n| after_fleet.get(n).is_some());
    let after = m.render(
        after_fleet.targets(),
        after_fleet.is_named(),
        false,
        Instant::now(),
    );
    assert!(!after.contains("target=\"old\""), "{after}");
    assert!(after.contains("mysqlchk_role_up{target=\"kept\",role=\"health\"} 1"));
    // Back under the same name: a new target, counting from zero.
    m.prober(Some("old"));
    let again = render(&m, &named(&[("old", false), ("kept", false)]));
    assert!(again.contains("mysqlchk_probe_errors_total{target=\"old\",reason=\"refused\"} 0"));
    assert!(again.contains("mysqlchk_target_rounds_total{target=\"old\"} 0\n"));
    assert!(
        again.contains("mysqlchk_transitions_total{target=\"old\",role=\"health\",to=\"down\"} 0")
    );
}
