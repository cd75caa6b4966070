//! Loading as a whole: defaults, the environment over the file, every error at once,
//! secrets never echoed, and the key tables held to the sections' rules.

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const LOOPBACK: &str = "[listen]\nhttp = \"127.0.0.1:9200\"\n";

fn ok(text: &str, e: &[(&str, &str)]) -> Config {
    match from_str(text, "t.toml", &env(e)) {
        Ok(l) => l.config,
        Err(e) => panic!("unexpected errors: {e}"),
    }
}

fn errs(text: &str, e: &[(&str, &str)]) -> Vec<String> {
    match from_str(text, "t.toml", &env(e)) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0,
    }
}

#[test]
fn defaults_on_loopback() {
    let c = ok(LOOPBACK, &[]);
    assert_eq!(c.check.interval, Duration::from_secs(1));
    assert_eq!(c.check.stale_after, Duration::from_secs(5));
    assert_eq!(c.check.query, "SELECT 1");
    assert_eq!(
        c.mysql.target,
        Target::Tcp {
            host: "127.0.0.1".into(),
            port: 3306
        }
    );
    assert_eq!(c.mysql.user, "mysqlchk");
    assert_eq!(c.check.maintenance_status, 404);
    assert_eq!(c.agent.min_weight, 10);
    assert_eq!(c.check.lag_recover, Duration::from_secs(15));
    assert_eq!(c.check.recover_rounds, 3);
    assert_eq!(c.check.lag_samples, 3);
    assert_eq!(c.check.full_grace, Duration::from_secs(30));
    assert_eq!(c.agent.ramp, Duration::from_secs(10));
}

#[test]
fn lag_recover_follows_the_bound_and_stays_below_it() {
    let c = ok(
        &format!("{LOOPBACK}[check]\nmax_replication_lag = \"10s\"\n"),
        &[],
    );
    assert_eq!(c.check.lag_recover, Duration::from_secs(5));
    let e = errs(
        &format!("{LOOPBACK}[check]\nmax_replication_lag = \"10s\"\nlag_recover = \"11s\"\n"),
        &[],
    );
    assert!(
        e[0].contains("check.lag_recover = 11s: must not exceed"),
        "{e:?}"
    );
    let e = errs(
        &format!("{LOOPBACK}[check]\nlag_samples = 0\nrecover_rounds = 0\n"),
        &[],
    );
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn public_listener_needs_allow() {
    let e = errs("", &[]);
    assert!(e[0].contains("listen.allow is required"), "{e:?}");
    let c = ok("[listen]\nallow = [\"10.0.0.0/8\"]\n", &[]);
    assert_eq!(c.listen.http, vec!["0.0.0.0:9200".parse().unwrap()]);
}

#[test]
fn environment_wins_and_lists_split_on_commas() {
    let c = ok(
        "[listen]\nhttp = \"127.0.0.1:1\"\n[check]\ninterval = \"2s\"\n",
        &[
            ("MYSQLCHK_CHECK_INTERVAL", "500ms"),
            ("MYSQLCHK_CHECK_TIMEOUT", "400ms"),
            ("MYSQLCHK_LISTEN_HTTP", "127.0.0.1:9300, [::1]:9300"),
            ("MYSQLCHK_MYSQL_PORT", "3307"),
        ],
    );
    assert_eq!(c.check.interval, Duration::from_millis(500));
    assert_eq!(c.listen.http.len(), 2);
    assert_eq!(
        c.mysql.target,
        Target::Tcp {
            host: "127.0.0.1".into(),
            port: 3307
        }
    );
}

#[test]
fn every_error_at_once_naming_key_and_value() {
    let e = errs(
        "[listen]\nhttp = \"127.0.0.1:9200\"\nbogus = 1\n[check]\ninterval = \"fast\"\nmaintenance_status = 200\n[mysql]\nport = 70000\n",
        &[("MYSQLCHK_CHECK_QUERY", "")],
    );
    let all = e.join("\n");
    assert!(all.contains("unknown key listen.bogus"), "{all}");
    assert!(all.contains("check.interval = \"fast\""), "{all}");
    assert!(all.contains("mysql.port = 70000"), "{all}");
    assert!(all.contains("maintenance_status"), "{all}");
    assert!(all.contains("check.query is empty"), "{all}");
    assert!(e.len() >= 5);
    assert!(e.iter().all(|l| !l.contains('\n')));
}

#[test]
fn one_address_one_listener() {
    let e = errs(
        "[listen]\nhttp = \"127.0.0.1:9200\"\nagent = \"127.0.0.1:9200\"\n",
        &[],
    );
    assert!(e[0].contains("127.0.0.1:9200 is given twice"), "{e:?}");
}

#[test]
fn timing_invariants() {
    let e = errs(
        &format!("{LOOPBACK}[check]\ninterval = \"1s\"\ntimeout = \"2s\"\nstale_after = \"1s\"\n"),
        &[],
    );
    assert!(e.iter().any(|l| l.contains("check.timeout")), "{e:?}");
    assert!(e.iter().any(|l| l.contains("check.stale_after")), "{e:?}");
}

#[test]
fn secret_values_never_echoed() {
    let e = errs(&format!("{LOOPBACK}[mysql]\npassword = 12345\n"), &[]);
    assert!(e[0].contains("mysql.password = ***"), "{e:?}");
    assert!(!e.join("").contains("12345"));
    let c = ok(LOOPBACK, &[("MYSQLCHK_MYSQL_PASSWORD", "s3cret-pw")]);
    assert!(!c.render().contains("s3cret-pw"));
    assert!(!format!("{c:?}").contains("s3cret-pw"));
}

#[test]
fn unknown_environment_setting_is_an_error() {
    let e = errs(LOOPBACK, &[("MYSQLCHK_CHECK_INTERVALL", "1s")]);
    assert!(e[0].contains("MYSQLCHK_CHECK_INTERVALL"), "{e:?}");
}

#[test]
fn localhost_means_socket() {
    let c = ok(&format!("{LOOPBACK}[mysql]\nhost = \"localhost\"\n"), &[]);
    assert_eq!(
        c.mysql.target,
        Target::Socket("/run/mysqld/mysqld.sock".into())
    );
}

#[test]
fn toml_syntax_error_is_one_line_with_line_number() {
    let e = errs("[listen]\nhttp = \n", &[]);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("t.toml (line 2)"), "{e:?}");
}

#[test]
fn password_file_permissions_warn() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pw");
    std::fs::write(&p, "pw\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "{LOOPBACK}[mysql]\npassword_file = {:?}\n",
        p.display().to_string()
    );
    let l = from_str(&text, "t.toml", &BTreeMap::new()).unwrap();
    assert!(l.warnings[0].contains("readable by group or others"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let l = from_str(&text, "t.toml", &BTreeMap::new()).unwrap();
    assert!(l.warnings.is_empty());
    let missing = format!("{LOOPBACK}[mysql]\npassword_file = \"/nonexistent/pw\"\n");
    assert!(errs(&missing, &[])[0].contains("cannot read"));
    // A FIFO is refused at once (a blocking open would wait for a writer forever).
    let fifo = dir.path().join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let text = format!(
        "{LOOPBACK}[mysql]\npassword_file = {:?}\n",
        fifo.display().to_string()
    );
    let e = errs(&text, &[]);
    assert!(e[0].ends_with("is not a regular file (a FIFO)"), "{e:?}");
}

#[test]
fn absurd_durations_are_errors_not_panics() {
    let huge = "\"18446744073709551615\"";
    let e = errs(
        &format!("{LOOPBACK}[check]\ninterval = {huge}\ntimeout = {huge}\n"),
        &[],
    );
    assert_eq!(
        e,
        vec![
            format!("t.toml: check.interval = {huge}: must be at most 1d"),
            format!("t.toml: check.timeout = {huge}: must be at most 1d"),
        ]
    );
    let e = errs(&format!("{LOOPBACK}[check]\ninterval = \"100y\"\n"), &[]);
    assert_eq!(
        e,
        vec!["t.toml: check.interval = \"100y\": must be at most 1d"]
    );
    // Every duration key, from the environment too.
    for (var, max) in [
        ("MYSQLCHK_LISTEN_REQUEST_TIMEOUT", "1d"),
        ("MYSQLCHK_MYSQL_CONNECT_TIMEOUT", "1d"),
        ("MYSQLCHK_CHECK_INTERVAL", "1d"),
        ("MYSQLCHK_CHECK_TIMEOUT", "1d"),
        ("MYSQLCHK_CHECK_STALE_AFTER", "1d"),
        ("MYSQLCHK_CHECK_MAX_REPLICATION_LAG", "30d"),
        ("MYSQLCHK_AGENT_SOFT_LAG", "30d"),
    ] {
        let e = errs(LOOPBACK, &[(var, "9223372036854775807")]);
        assert!(
            e.contains(&format!(
                "environment: {var}=\"9223372036854775807\": must be at most {max}"
            )),
            "{var}: {e:?}"
        );
    }
    // A day is fine for the lag bound.
    ok(
        &format!("{LOOPBACK}[check]\nmax_replication_lag = \"2d\"\n"),
        &[],
    );
}

#[test]
fn zero_timeouts_are_errors() {
    for (section, key) in [
        ("listen", "request_timeout"),
        ("mysql", "connect_timeout"),
        ("check", "timeout"),
        ("check", "interval"),
    ] {
        let var = format!("MYSQLCHK_{section}_{key}").to_ascii_uppercase();
        let e = errs(LOOPBACK, &[(var.as_str(), "0s")]);
        let named = |l: &String| l.contains(&var) || l.contains(&format!("{section}.{key}"));
        assert!(
            e.iter()
                .any(|l| named(l) && (l.contains("more than 0") || l.contains("at least 10ms"))),
            "{var}: {e:?}"
        );
    }
}

#[test]
fn stale_after_covers_the_connect_timeout() {
    let e = errs(
        &format!("{LOOPBACK}[mysql]\nconnect_timeout = \"5s\"\n[check]\nstale_after = \"5s\"\n"),
        &[],
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.toml: check.stale_after = 5s: must exceed")
            && e[0].contains("mysql.connect_timeout (6s)"),
        "{e:?}"
    );
    ok(
        &format!("{LOOPBACK}[mysql]\nconnect_timeout = \"5s\"\n[check]\nstale_after = \"7s\"\n"),
        &[],
    );
}

#[test]
fn password_in_the_file_is_a_warning() {
    let l = from_str(
        &format!("{LOOPBACK}[mysql]\npassword = \"in-file-pw\"\n"),
        "t.toml",
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(matches!(l.config.mysql.credentials, Credentials::Inline(_)));
    assert_eq!(
        l.warnings,
        vec![
            "mysql.password in t.toml: a password in the config file is readable by \
             whoever reads the config; prefer password_file, LoadCredential or \
             MYSQLCHK_MYSQL_PASSWORD"
        ]
    );
    assert!(!l.warnings.join("").contains("in-file-pw"));
    let l = from_str(
        LOOPBACK,
        "t.toml",
        &env(&[("MYSQLCHK_MYSQL_PASSWORD", "env-pw")]),
    )
    .unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

/// The key tables are the one list of keys: each section reads every key of its table
/// and no other, so a key added to a table without its rule (or the reverse) fails.
#[test]
fn sections_read_exactly_the_keys_in_the_tables() {
    let none = BTreeMap::new();
    let mut r = reader::Reader::new(LOOPBACK, "t.toml", &none).unwrap();
    r.build();
    let read = r.consulted.borrow().clone();
    let tables: std::collections::BTreeSet<String> = SECTIONS
        .iter()
        .flat_map(|(s, keys)| keys.iter().map(move |k| format!("{s}.{}", k.name)))
        .collect();
    assert_eq!(read, tables);
}

/// Only `mysql.password` is secret, and the reader masks it.
#[test]
fn the_secret_keys() {
    let secret: Vec<String> = SECTIONS
        .iter()
        .flat_map(|(s, keys)| {
            keys.iter()
                .filter(|k| k.secret)
                .map(move |k| format!("{s}.{}", k.name))
        })
        .collect();
    assert_eq!(secret, ["mysql.password"]);
}
