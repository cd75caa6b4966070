//! The monitoring files in `deploy/` against the real tools: the alert rules pass
//! `promtool check rules` and their own unit tests (`promtool test rules`), and a real
//! Prometheus scraping real `mysqlchk` daemons (a healthy replica, one whose server
//! refuses connections, two whose account MySQL refuses, one pushing to a real HAProxy,
//! a fleet checker of three targets, one of them refused) returns data for every query of the Grafana
//! dashboard, per-target panels answering for the fleet's targets and the single
//! servers alike, and every series the daemons export is on some panel; Prometheus
//! loads the rules and evaluates them: the probe-error and account alerts go pending
//! where they should and nowhere else (the probe-error alert per target for the fleet
//! checker: for its refused target, with its name, and none of its others).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::process::{self, run_with_timeout};
use common::{free_port, http_get, http_request, wait_until, Daemon, Haproxy, MariaDb};
use serde_json::Value;

const PASSWORD: &str = "mon-chk-Pa55";
const RULES: &str = "mysqlchk.rules.yml";
const RULE_TESTS: &str = "mysqlchk.rules.test.yml";
const DASHBOARD: &str = "grafana-dashboard.json";
/// The alerts the README documents; the rule file must hold exactly these.
const ALERTS: &[&str] = &[
    "MysqlchkDown",
    "MysqlchkSnapshotStale",
    "MysqlchkFlapping",
    "MysqlchkProbeErrors",
    "MysqlchkAccountRefusedEverywhere",
    "MysqlchkHaproxyPushFailing",
];
/// Generous: two cores shared with other test binaries.
const DATA_DEADLINE: Duration = Duration::from_secs(90);
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let mut cmd = Command::new("promtool");
    cmd.args(args).current_dir(dir);
    let out = run_with_timeout(cmd, TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("promtool (package prometheus) cannot run: {e}"));
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

// ---------------------------------------------------------------------------------
// Alert rules: promtool
// ---------------------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = deploy_dir();
    let (ok, said) = promtool(&["check", "rules", RULES], &dir);
    assert!(ok, "promtool check rules:\n{said}");
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{said}"
    );
    let (ok, said) = promtool(&["test", "rules", RULE_TESTS], &dir);
    assert!(ok, "promtool test rules:\n{said}");

    // Every alert is tested both firing and not firing.
    let cases = rule_test_cases(&fs::read_to_string(dir.join(RULE_TESTS)).unwrap());
    for alert in ALERTS {
        let seen = cases.get(*alert).cloned().unwrap_or_default();
        assert!(
            seen.contains(&true) && seen.contains(&false),
            "{alert}: {RULE_TESTS} must test it firing and not firing (saw {seen:?})"
        );
    }

    // Control: a wrong expectation must fail, or promtool proved nothing here.
    let tmp = tempfile::tempdir().unwrap();
    fs::copy(dir.join(RULES), tmp.path().join(RULES)).unwrap();
    let tests = fs::read_to_string(dir.join(RULE_TESTS)).unwrap();
    let broken = tests.replacen("severity: warning", "severity: page", 1);
    assert_ne!(broken, tests);
    fs::write(tmp.path().join(RULE_TESTS), broken).unwrap();
    let (ok, said) = promtool(&["test", "rules", RULE_TESTS], tmp.path());
    assert!(!ok, "promtool accepted a wrong expectation:\n{said}");
}

/// For each `alertname:` in a promtool test file, whether its `exp_alerts` expects
/// the alert firing (`true`) or nothing (`false`, `exp_alerts: []`).
fn rule_test_cases(text: &str) -> BTreeMap<String, Vec<bool>> {
    let mut cases: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
            if let Some(name) = current.take() {
                cases.entry(name).or_default().push(rest.trim() != "[]");
            }
        }
    }
    cases
}

// ---------------------------------------------------------------------------------
// Dashboard: the JSON model
// ---------------------------------------------------------------------------------

fn dashboard() -> Value {
    let text = fs::read_to_string(deploy_dir().join(DASHBOARD)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter());
        }
    }
    out
}

/// (panel title, target refId, expr, legend) of every query in the dashboard.
fn queries(d: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("?").to_string(),
                t["refId"].as_str().unwrap_or("?").to_string(),
                t["expr"].as_str().unwrap_or("").to_string(),
                t["legendFormat"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

#[test]
fn dashboard_imports_anywhere() {
    let d = dashboard();
    let input = &d["__inputs"][0];
    assert_eq!(input["name"], "DS_PROMETHEUS", "{input}");
    assert_eq!(input["pluginId"], "prometheus", "{input}");
    assert!(d["id"].is_null(), "an exported dashboard has no id");
    let ds = |v: &Value, what: &str| {
        assert_eq!(
            v["datasource"]["uid"], "${DS_PROMETHEUS}",
            "{what} must use the ${{DS_PROMETHEUS}} input"
        );
    };
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "{title}: id"
        );
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(x + w <= 24 && g["h"].as_u64().unwrap() > 0, "{title}: {g}");
        if p["type"] == "row" {
            continue;
        }
        ds(p, title);
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "{title}: say what it shows"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            ds(t, title);
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{title}: empty query"
            );
        }
    }
    for v in d["templating"]["list"].as_array().expect("templating") {
        ds(v, v["name"].as_str().unwrap_or("variable"));
    }
    assert!(queries(&d).len() >= 10, "the dashboard lost its panels");
}

// ---------------------------------------------------------------------------------
// A real Prometheus
// ---------------------------------------------------------------------------------

/// `prometheus` (Debian's package) on 127.0.0.1:<free port>, its data in a temp dir;
/// killed and reaped on drop.
struct Prometheus {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(config_yaml: &str) -> Prometheus {
        let dir = process::fixture_tempdir("prometheus");
        let config = dir.path().join("prometheus.yml");
        fs::write(&config, config_yaml).unwrap();
        let port = free_port();
        let log = fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = process::spawn_guarded(cmd)
            .unwrap_or_else(|e| panic!("cannot start prometheus (package prometheus): {e}"));
        let mut p = Prometheus { dir, child, port };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log());
            }
            if common::port_open(port) && p.get("/-/ready").0 == 200 {
                break;
            }
            assert!(
                start.elapsed() < DATA_DEADLINE,
                "prometheus not ready:\n{}",
                p.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log(&self) -> String {
        process::tail_file(&self.dir.path().join("prometheus.log"), 40)
    }

    fn get(&self, path_and_query: &str) -> (u16, String) {
        let r = http_request(
            self.port,
            format!("GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
        );
        (r.status, r.body)
    }

    /// `data` of an API answer; panics on a transport error or a non-success
    /// status (a query Prometheus rejects never becomes right by waiting).
    fn api(&self, path_and_query: &str) -> Value {
        let (status, body) = self.get(path_and_query);
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path_and_query}: {status} {e}: {body}"));
        assert!(
            status == 200 && v["status"] == "success",
            "{path_and_query}: {status} {body}"
        );
        v["data"].clone()
    }

    /// The result vector of an instant query.
    fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(expr)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every metric name Prometheus holds.
    fn names(&self) -> BTreeSet<String> {
        self.api("/api/v1/label/__name__/values")
            .as_array()
            .expect("names")
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        process::kill_and_reap(&mut self.child);
        if thread::panicking() {
            eprintln!("--- prometheus log (tail) ---\n{}", self.log());
        }
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The metric names an expression mentions: `up` and every identifier starting
/// with `mysqlchk_` (inside `or` branches too, where an empty result would hide a
/// typo).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        // `up` as a selector, not inside a label value or a longer word.
        if word.starts_with("mysqlchk_") || (word == "up" && (c == '{' || c == ')')) {
            out.insert(word.clone());
        }
        word.clear();
    }
    out
}

/// A daemon checking 127.0.0.1:`mysql_port` as `user` with `password`.
fn daemon(mysql_port: u16, user: &str, password: &str) -> Daemon {
    let http = free_port();
    let d = Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {mysql_port}\n\
             user = \"{user}\"\n[check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\n\
             stale_after = \"3s\"\n"
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", password)],
    );
    first_rounds(&d);
    d
}

/// Waits until every target of `d` has completed a round: Prometheus must never see
/// the -1 "no round yet", which would make the stale alert pending for a moment.
fn first_rounds(d: &Daemon) {
    wait_until(DATA_DEADLINE, "a first probe round", || {
        let (status, body) = http_get(d.http_port(), "/metrics");
        let ages: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("mysqlchk_snapshot_age_seconds"))
            .filter_map(|l| l.rsplit(' ').next())
            .collect();
        status == 200 && !ages.is_empty() && ages.iter().all(|v| !v.starts_with('-'))
    });
}

/// A responder that answers every request `200 OK`, for HAProxy's own checks: only
/// the push moves a server.
fn always_200() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

/// A real HAProxy with server `db1` = `mysql_port` in a write and a read backend, and
/// a daemon checking that server as `chk` and pushing to HAProxy's runtime socket
/// (the README, Pushing state to HAProxy): the primary is no replica, so the read
/// backend gets a `health down` at its first round.
fn push_daemon(mysql_port: u16, maint: &Path) -> (Haproxy, Daemon) {
    let ok = always_200();
    let mut body = String::new();
    for name in ["mysql-write", "mysql-read"] {
        body += &format!(
            "listen {name}\n    bind 127.0.0.1:{}\n    option httpchk\n    \
             server db1 127.0.0.1:{mysql_port} check port {ok} inter 20s rise 3 fall 3\n",
            free_port()
        );
    }
    let hap = Haproxy::start(&body);
    let http = free_port();
    let d = Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nport = {mysql_port}\n\
             user = \"chk\"\n[check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\n\
             stale_after = \"3s\"\nmaintenance_file = \"{}\"\n\
             [[haproxy]]\nsocket = \"{}\"\n\
             backends = {{ \"mysql-write\" = \"primary\", \"mysql-read\" = \"replica\" }}\n",
            maint.display(),
            hap.admin_socket().display()
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    first_rounds(&d);
    (hap, d)
}

/// A fleet checker (the README, Fleet mode) of three targets: `db1` on `primary_port`,
/// `db2` on `replica_port`, and `db3` on `closed_port`, where nothing listens (probe
/// errors with a `target` label).
fn fleet_daemon(primary_port: u16, replica_port: u16, closed_port: u16, maint: &Path) -> Daemon {
    let http = free_port();
    let d = Daemon::start(
        &format!(
            "[listen]\nhttp = \"127.0.0.1:{http}\"\n[mysql]\nuser = \"chk\"\n\
             [check]\ninterval = \"250ms\"\ntimeout = \"250ms\"\nstale_after = \"3s\"\n\
             maintenance_file = \"{}\"\n\
             [[target]]\nname = \"db1\"\nhost = \"127.0.0.1\"\nport = {primary_port}\n\
             [[target]]\nname = \"db2\"\nhost = \"127.0.0.1\"\nport = {replica_port}\n\
             [[target]]\nname = \"db3\"\nhost = \"127.0.0.1\"\nport = {closed_port}\n",
            maint.display()
        ),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    );
    first_rounds(&d);
    d
}

/// `mysqlchk maintenance on` for `d`'s config (and `target`, a fleet checker's).
fn maintenance_on(d: &Daemon, target: Option<&str>) {
    let out = Command::new(env!("CARGO_BIN_EXE_mysqlchk"))
        .args(["maintenance", "on", "--reason", "monitoring test", "-c"])
        .arg(d.config_path())
        .args(target.map(|t| ["--target", t]).into_iter().flatten())
        .env("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)
        .output()
        .expect("mysqlchk maintenance");
    assert!(out.status.success(), "{out:?}");
}

fn targets(daemons: &[&Daemon]) -> String {
    daemons
        .iter()
        .map(|d| format!("\"127.0.0.1:{}\"", d.http_port()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Grafana's built-in interval variables, as Grafana would fill them for a
/// 1 s scrape interval (rate windows hold several samples).
const GRAFANA_INTERVALS: &[(&str, &str)] = &[
    ("$__rate_interval", "30s"),
    ("$__interval", "5s"),
    ("$__range", "5m"),
];

/// Fills the dashboard variables the way Grafana does with every value selected
/// ("All", multi-value: `(a|b)`), then asserts that nothing is left unfilled.
fn fill(expr: &str, vars: &[(String, String)]) -> String {
    let mut e = expr.to_string();
    for (k, v) in GRAFANA_INTERVALS {
        e = e.replace(k, v);
    }
    for (name, value) in vars {
        e = e.replace(&format!("${{{name}}}"), value);
        e = e.replace(&format!("${name}"), value);
    }
    assert!(!e.contains('$'), "unknown Grafana variable left in {e}");
    e
}

#[test]
fn a_real_prometheus_has_data_for_every_panel_and_runs_the_alert_rules() {
    let primary = MariaDb::start();
    primary.create_checker_user("chk", PASSWORD);
    let replica = MariaDb::start_replica_of(&primary);
    replica.sync_with(&primary);

    // Job "mysqlchk": a healthy replica (lag per channel, connections) and a
    // checker whose server refuses connections (probe errors, reason refused).
    let healthy = daemon(replica.port(), "chk", PASSWORD);
    let closed = free_port();
    let refused = daemon(closed, "chk", PASSWORD);
    // Job "mysqlchk-auth": every checker refused by MySQL (access_denied).
    let auth1 = daemon(primary.port(), "chk", "not-the-password");
    let auth2 = daemon(primary.port(), "chk", "not-the-password");
    // Job "mysqlchk" too: a checker pushing to a real HAProxy (push panels), and a
    // fleet checker of the same two servers and the closed port (series with a `target`
    // label, probe errors too).
    let flags = tempfile::tempdir().unwrap();
    let (_hap, pusher) = push_daemon(primary.port(), &flags.path().join("maintenance"));
    let fleet = fleet_daemon(
        primary.port(),
        replica.port(),
        closed,
        &flags.path().join("fleet-maintenance"),
    );

    let rules = deploy_dir().join(RULES);
    let prom = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - \"{}\"\n\
         scrape_configs:\n\
         \x20 - job_name: mysqlchk\n    static_configs:\n      - targets: [{}]\n\
         \x20 - job_name: mysqlchk-auth\n    static_configs:\n      - targets: [{}]\n",
        rules.display(),
        targets(&[&healthy, &refused, &pusher, &fleet]),
        targets(&[&auth1, &auth2]),
    ));
    wait_until(DATA_DEADLINE, "every scrape up", || {
        prom.query("up == 1").len() == 6
    });
    // Scraped before and after: pushes (`state drain`) and transitions (to
    // maintenance) that a rate sees, also a fleet target's (`target` label).
    maintenance_on(&pusher, None);
    maintenance_on(&fleet, Some("db2"));

    // The dashboard's variables, in order (later ones may use earlier ones), each
    // with every value it offers selected.
    let d = dashboard();
    let mut vars: Vec<(String, String)> = Vec::new();
    for v in d["templating"]["list"].as_array().expect("templating") {
        let name = v["name"].as_str().expect("variable name").to_string();
        let def = v["definition"].as_str().expect("variable definition");
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("${name}: only label_values(selector, label): {def}"));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        let expr = format!("group by ({}) ({})", label.trim(), fill(selector, &vars));
        let values: BTreeSet<String> = prom
            .query(&expr)
            .iter()
            .filter_map(|s| s["metric"][label.trim()].as_str().map(String::from))
            .collect();
        assert!(!values.is_empty(), "${name}: {expr} offers nothing");
        // "All" is the variable's allValue when it has one (Grafana's own choice).
        let all = match v["allValue"].as_str() {
            Some(a) => a.to_string(),
            None => format!("({})", values.into_iter().collect::<Vec<_>>().join("|")),
        };
        vars.push((name, all));
    }

    // The metrics that carry a `target` label for the fleet checker (README,
    // Metrics): their panels filter on $target, name the target in the legend, and
    // must show the fleet's targets and the single servers alike.
    let per_target: BTreeSet<String> = prom
        .query("count by (__name__) ({__name__=~\"mysqlchk_.+\",target!=\"\"})")
        .iter()
        .filter_map(|s| s["metric"]["__name__"].as_str().map(String::from))
        .collect();
    assert!(
        per_target.contains("mysqlchk_role_state"),
        "no target label from the fleet checker: {per_target:?}"
    );
    let all = queries(&d);
    for (title, r, expr, legend) in &all {
        if metric_names(expr).is_disjoint(&per_target) {
            continue;
        }
        assert!(
            expr.contains("target=~\"$target\""),
            "{title} ({r}): per-target series without the $target filter: {expr}"
        );
        if !legend.is_empty() {
            assert!(
                legend.contains("{{target}}"),
                "{title} ({r}): the legend does not name the target: {legend}"
            );
        }
    }

    // Every panel query: a name Prometheus knows for every metric it mentions, and
    // an answer with a number in it (polled until each has been seen once: rates need
    // two scrapes, errors need rounds, pushes happen once); a per-target one answers
    // both for a fleet target and for a single server.
    struct Seen {
        name: String,
        expr: String,
        per_target: bool,
        number: bool,
        fleet: bool,
        single: bool,
    }
    let mut seen: Vec<Seen> = all
        .iter()
        .map(|(title, r, expr, _)| Seen {
            name: format!("{title} ({r})"),
            expr: fill(expr, &vars),
            per_target: !metric_names(expr).is_disjoint(&per_target),
            number: false,
            fleet: false,
            single: false,
        })
        .collect();
    let done = |q: &Seen| q.number && (!q.per_target || (q.fleet && q.single));
    let start = Instant::now();
    loop {
        let names = prom.names();
        for q in seen.iter_mut().filter(|q| !done(q)) {
            let unknown: Vec<String> = metric_names(&q.expr).difference(&names).cloned().collect();
            assert!(
                unknown.is_empty(),
                "{}: no such metric {unknown:?} in\n{}",
                q.name,
                q.expr
            );
            for s in prom.query(&q.expr) {
                let v = s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
                q.number |= v.is_some_and(f64::is_finite);
                match s["metric"]["target"].as_str() {
                    Some(t) if !t.is_empty() => q.fleet = true,
                    _ => q.single = true,
                }
            }
        }
        let missing: Vec<String> = seen
            .iter()
            .filter(|q| !done(q))
            .map(|q| {
                format!(
                    "- {} (a number: {}, fleet: {}, single: {}): {}",
                    q.name, q.number, q.fleet, q.single, q.expr
                )
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < DATA_DEADLINE,
            "no data after {DATA_DEADLINE:?} for:\n{}",
            missing.join("\n")
        );
        thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "{} panel queries answered after {:?}",
        seen.len(),
        start.elapsed()
    );

    // Every series the daemons export is on some panel (a histogram by any of its
    // series), so a new metric comes with its panel.
    let names = prom.names();
    let shown: BTreeSet<String> = all.iter().flat_map(|q| metric_names(&q.2)).collect();
    let family = |n: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| n.strip_suffix(s))
            .filter(|base| names.contains(&format!("{base}_bucket")))
            .unwrap_or(n)
            .to_string()
    };
    let shown_families: BTreeSet<String> = shown.iter().map(|n| family(n)).collect();
    let unshown: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("mysqlchk_") && !shown_families.contains(&family(n)))
        .collect();
    assert!(unshown.is_empty(), "on no panel: {unshown:?}");

    // Control: the checks above catch a query naming a metric that does not exist.
    let bogus = "sum by (instance) (rate(mysqlchk_probe_error_total[30s]))";
    assert!(prom.query(bogus).is_empty());
    assert!(!metric_names(bogus).is_subset(&names));

    // The rules as Prometheus loaded them: every documented alert, each with a
    // `for:`, a severity, a summary and a description, evaluated without error,
    // naming only metrics that exist.
    let rules_text = fs::read_to_string(&rules).unwrap();
    let unknown: Vec<String> = metric_names(&rules_text)
        .difference(&names)
        .cloned()
        .collect();
    assert!(unknown.is_empty(), "{RULES}: no such metric {unknown:?}");
    wait_until(DATA_DEADLINE, "every rule evaluated", || {
        let data = prom.api("/api/v1/rules");
        let rules: Vec<&Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let mut loaded = BTreeSet::new();
        for r in &rules {
            let name = r["name"].as_str().unwrap_or("?");
            assert_eq!(r["type"], "alerting", "{name}: {r}");
            assert_ne!(r["health"], "err", "{name}: {r}");
            assert!(
                r["duration"].as_f64().unwrap_or(0.0) > 0.0,
                "{name}: no for:"
            );
            let sev = r["labels"]["severity"].as_str();
            assert!(
                matches!(sev, Some("warning" | "critical")),
                "{name}: severity {sev:?}"
            );
            for a in ["summary", "description"] {
                assert!(
                    r["annotations"][a].as_str().is_some_and(|s| !s.is_empty()),
                    "{name}: no {a}"
                );
            }
            loaded.insert(name.to_string());
        }
        assert_eq!(
            loaded,
            ALERTS
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
        );
        rules.iter().all(|r| r["health"] == "ok")
    });

    // Live: the probe-error alert is pending for the refused checker and, judged per
    // target, for the fleet's refused db3 (one target of three: its own rounds all
    // fail), the account alert for the job whose every checker is refused by MySQL
    // only, and nothing else is pending or firing.
    let port = |d: &Daemon| format!("127.0.0.1:{}", d.http_port());
    let alerts = |name: &str| -> Vec<BTreeMap<String, String>> {
        prom.query(&format!("ALERTS{{alertname=\"{name}\"}}"))
            .iter()
            .map(|s| serde_json::from_value(s["metric"].clone()).unwrap())
            .collect()
    };
    wait_until(DATA_DEADLINE, "the probe-error and account alerts", || {
        let probe = alerts("MysqlchkProbeErrors");
        let account = alerts("MysqlchkAccountRefusedEverywhere");
        let pending = |instance: String, target: &str| {
            probe.iter().any(|a| {
                label(a, "instance") == instance
                    && label(a, "target") == target
                    && label(a, "reason") == "refused"
            })
        };
        pending(port(&refused), "")
            && pending(port(&fleet), "db3")
            && account.iter().any(|a| label(a, "job") == "mysqlchk-auth")
    });
    let probe = alerts("MysqlchkProbeErrors");
    assert!(
        probe.iter().all(|a| label(a, "instance") != port(&healthy)),
        "{probe:?}"
    );
    // The fleet checker's alerts name their target and only the refused one goes
    // pending: not its healthy db1 and db2, and no fleet-wide alert without a target
    // (the single-server form must not take a fleet's errors); a single-server
    // checker's alerts carry no target label.
    for a in &probe {
        if label(a, "instance") == port(&fleet) {
            assert_eq!(label(a, "target"), "db3", "{probe:?}");
        } else {
            assert!(!a.contains_key("target"), "{probe:?}");
        }
    }
    let account = alerts("MysqlchkAccountRefusedEverywhere");
    assert!(
        account.iter().all(|a| label(a, "job") == "mysqlchk-auth"),
        "{account:?}"
    );
    for quiet in [
        "MysqlchkDown",
        "MysqlchkSnapshotStale",
        "MysqlchkFlapping",
        "MysqlchkHaproxyPushFailing",
    ] {
        assert_eq!(alerts(quiet), Vec::new(), "{quiet}");
    }
}

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map(String::as_str).unwrap_or("")
}

#[test]
fn metric_names_sees_every_branch() {
    let e = "sum without (state) (mysqlchk_role_state{job=~\"up\"} * 1 or mysqlchk_x_total) \
             / up{job=\"a\"} + count(up)";
    let want: BTreeSet<String> = ["mysqlchk_role_state", "mysqlchk_x_total", "up"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(metric_names(e), want);
    assert!(metric_names("rate(x_up[1m])").is_empty());
}
