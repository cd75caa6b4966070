//! Fleet mode's discovery (`[[discover]]`) against real servers: a MariaDB primary that
//! gains a replica later (found through `SHOW SLAVE HOSTS`, then gone from the topology:
//! 503 `not in topology`, then forgotten), a three-node Galera cluster
//! (`wsrep_incoming_addresses`), and a real HAProxy's runtime socket (`show servers
//! state`: targets named as HAProxy names them; a socket that stops answering keeps
//! them). Group Replication discovery is in tests/mysql8.rs (emulated MySQL 8).

mod common;

use std::time::Duration;

use common::{
    free_port, http_get, http_request, wait_until, Daemon, GaleraCluster, Haproxy, MariaDb,
};
use serde_json::Value;

const PASSWORD: &str = "discover-chk-pw";
const SETTLE: Duration = Duration::from_secs(30);

/// A daemon with `[[discover]]` entries `discover`; maintenance flags in a temp dir
/// (removed when the test ends).
fn start(discover: &str) -> (Daemon, tempfile::TempDir) {
    let http = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\n\
         [mysql]\nuser = \"chk\"\nssl_mode = \"disabled\"\n\
         [check]\ninterval = \"300ms\"\ntimeout = \"250ms\"\nstale_after = \"10s\"\n\
         maintenance_file = \"{}/maintenance\"\n{discover}",
        dir.path().display()
    );
    let d = Daemon::start(&config, &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)]);
    (d, dir)
}

fn status(port: u16) -> Value {
    let (code, body) = http_get(port, "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// name → (origin, in_topology) of every target in `/status`.
fn targets(port: u16) -> Vec<(String, Value, bool)> {
    status(port)["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["origin"].clone(),
                t["in_topology"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn names(port: u16) -> Vec<String> {
    let mut n: Vec<String> = targets(port).into_iter().map(|t| t.0).collect();
    n.sort();
    n
}

/// Wait until `path` answers exactly `status` and `body`.
fn expect(d: &Daemon, path: &str, status: u16, body: &str) {
    let mut last = None;
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(SETTLE, path, || {
            let r = http_request(
                d.http_port(),
                format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes(),
            );
            let got = (r.status, r.body.trim_end().to_string());
            let done = got == (status, body.to_string());
            last = Some(got);
            done
        })
    }));
    assert!(
        ok.is_ok(),
        "{path}: wanted {status} {body:?}, last {last:?}\n{}",
        d.log()
    );
}

fn metric(port: u16, series: &str) -> Option<u64> {
    let (_, body) = http_get(port, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn replication_finds_a_replica_attached_later_then_forgets_it() {
    let primary = MariaDb::start();
    primary.create_checker_user("chk", PASSWORD);
    // SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN on MariaDB (README, "Discovery").
    primary.sql("GRANT REPLICATION MASTER ADMIN ON *.* TO 'chk'@'%'");
    let seed = format!("127.0.0.1:{}", primary.port());
    let (d, _flags) = start(&format!(
        "[[discover]]\nfrom = \"replication\"\nseed = \"{seed}\"\nevery = \"200ms\"\nforget_after = \"2s\"\n"
    ));
    let p = d.http_port();
    // The seed alone, found by discovery (no [[target]] at all).
    wait_until(SETTLE, "the primary as the only target", || {
        names(p) == [seed.clone()]
    });
    let t = targets(p);
    assert_eq!(t[0].1["discovered"], "replication", "{t:?}");
    assert_eq!(t[0].1["seed"], seed.as_str());
    expect(&d, &format!("/{seed}/primary"), 200, "primary: up");

    // A replica attached later, with report_host: found at its own port.
    let replica = MariaDb::start_replica_of_with_args(&primary, &["--report-host=127.0.0.1"]);
    replica.sync_with(&primary);
    let rname = format!("127.0.0.1:{}", replica.port());
    wait_until(SETTLE, "the replica discovered", || {
        names(p).contains(&rname)
    });
    expect(
        &d,
        &format!("/{rname}/replica"),
        200,
        "replica: up - lag 0s",
    );
    let added = "mysqlchk_discovery_changes_total{source=\"replication\",change=\"added\"}";
    assert_eq!(metric(p, added), Some(2), "{}", http_get(p, "/metrics").1);

    // Detached: not in the topology any more. It answers 503 until forget_after...
    replica.sql("STOP SLAVE");
    // The primary's dump thread (what SHOW SLAVE HOSTS lists) notices the replica left
    // only when it next sends an event: write something until it has.
    wait_until(SETTLE, "the replica gone from SHOW SLAVE HOSTS", || {
        primary.sql("CREATE DATABASE IF NOT EXISTS nudge; DROP DATABASE nudge");
        std::thread::sleep(Duration::from_millis(200));
        !primary
            .sql("SHOW SLAVE HOSTS")
            .contains(&replica.port().to_string())
    });
    expect(
        &d,
        &format!("/{rname}/replica"),
        503,
        "replica: down - not in topology",
    );
    assert!(
        targets(p).iter().any(|t| t.0 == rname && !t.2),
        "{:?}",
        targets(p)
    );
    // /metrics says what the responders answer: every role down, although the
    // server itself is alive (its health would be up).
    let gone_series = |s: &str| format!("mysqlchk_{s}{{target=\"{rname}\",role=\"health\"");
    let body = http_get(p, "/metrics").1;
    assert_eq!(
        metric(p, &format!("{}}}", gone_series("role_up"))),
        Some(0),
        "{body}"
    );
    assert_eq!(
        metric(
            p,
            &format!("{},state=\"down\"}}", gone_series("role_state"))
        ),
        Some(1),
        "{body}"
    );
    // ...then it is gone from the fleet; the primary stays.
    wait_until(SETTLE, "the replica forgotten", || {
        names(p) == [seed.clone()]
    });
    // Its series go with it (the per-target counters too, within a fleet-wide pass).
    let label = format!("target=\"{rname}\"");
    wait_until(Duration::from_secs(3), "the replica's series gone", || {
        !http_get(p, "/metrics").1.contains(&label)
    });
    assert!(
        http_get(p, "/metrics").1.contains(&format!(
            "mysqlchk_probe_errors_total{{target=\"{seed}\",reason=\"refused\"}} 0"
        )),
        "{}",
        http_get(p, "/metrics").1
    );
    let change = |c: &str| {
        metric(
            p,
            &format!("mysqlchk_discovery_changes_total{{source=\"replication\",change=\"{c}\"}}"),
        )
    };
    assert_eq!((change("gone"), change("removed")), (Some(1), Some(1)));
    let s = status(p);
    let recent = s["discovery"][0]["recent_changes"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|c| c["target"] == rname.as_str() && c["change"] == "removed"),
        "{s}"
    );
    // Each change is logged once.
    let log = d.log();
    assert_eq!(
        log.matches(&format!("discovery: target {rname} gone"))
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn galera_finds_every_node_of_a_three_node_cluster() {
    let cluster = GaleraCluster::shared();
    cluster.node(0).create_checker_user("chk", PASSWORD);
    let (d, _flags) = start(&format!(
        "[[discover]]\nfrom = \"galera\"\nseed = \"127.0.0.1:{}\"\nevery = \"500ms\"\n",
        cluster.node(0).port()
    ));
    let p = d.http_port();
    let mut want: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    want.sort();
    wait_until(SETTLE, "three Galera nodes discovered", || names(p) == want);
    for name in &want {
        expect(&d, &format!("/{name}/"), 200, "health: up");
    }
    assert!(targets(p)
        .iter()
        .all(|t| t.1["discovered"] == "galera" && t.2));
}

#[test]
fn haproxy_servers_become_targets_named_as_haproxy_names_them() {
    let db = MariaDb::shared();
    db.create_checker_user("chk", PASSWORD);
    let dead = free_port();
    let mut hap = Haproxy::start(&format!(
        "backend mysql-write\n    server db1 127.0.0.1:{port}\n\
         backend mysql-read\n    server db1-read 127.0.0.1:{port}\n    server db2 127.0.0.1:{dead}\n",
        port = db.port()
    ));
    let (d, _flags) = start(&format!(
        "[[discover]]\nfrom = \"haproxy\"\nsocket = \"{}\"\nevery = \"200ms\"\n",
        hap.admin_socket().display()
    ));
    let p = d.http_port();
    // One target per address, named after its first server line.
    wait_until(SETTLE, "HAProxy's servers as targets", || {
        names(p) == ["db1", "db2"]
    });
    expect(&d, "/db1/", 200, "health: up");
    expect(&d, "/db2/", 503, "health: down - connection refused");
    // HAProxy's send-state header names the target by address, as for [[target]].
    let r = http_request(
        p,
        format!(
            "GET /primary HTTP/1.0\r\nX-Haproxy-Server-State: UP 2/3; address=127.0.0.1; port={}; \
             name=mysql-write/db1; node=lb1; weight=1/1; scur=0/0; qcur=0\r\n\r\n",
            db.port()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The socket stops answering: an error, counted, and no target removed.
    hap.stop();
    let errors = "mysqlchk_discovery_errors_total{source=\"haproxy\"}";
    wait_until(SETTLE, "a discovery error counted", || {
        metric(p, errors).unwrap_or(0) >= 3
    });
    assert_eq!(names(p), ["db1", "db2"]);
    assert!(targets(p).iter().all(|t| t.2), "still in the topology");
    expect(&d, "/db1/", 200, "health: up");
    let s = status(p);
    assert!(s["discovery"][0]["error"].is_string(), "{s}");
    // Logged once per episode, not once per pass.
    let log = d.log();
    assert_eq!(log.matches("discovery failed").count(), 1, "{log}");
}
