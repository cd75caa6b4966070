//! `[[target]]` entries (README "Fleet mode"): the servers one process watches. Each
//! entry has a `name` and may set any `[mysql]` or `[check]` key; `[mysql]` and
//! `[check]` are the defaults.
//!
//! Invariants: an entry's settings are built by the very reader that builds `[mysql]`
//! and `[check]` (one set of rules and defaults, no second copy), from the file's table
//! with the entry's keys laid over those sections; a key an entry sets wins over the
//! environment (which sets defaults for every target); every error names its entry;
//! names are unique and valid, and no two entries probe the same address.

use std::collections::BTreeMap;
use std::path::Path;

use super::target_name;
use super::{from_str, Check, Config, Mysql, Target, SECTIONS};

/// One `[[target]]` entry, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetEntry {
    pub(crate) name: String,
    pub(crate) mysql: Mysql,
    pub(crate) check: Check,
}

/// Keys that pick one of several alternatives: what an entry setting the key drops
/// from what it would otherwise inherit (a socket is not inherited by an entry that
/// gives a host or port, and so on).
fn drops(key: &str) -> &'static [&'static str] {
    match key {
        "host" | "port" => &["socket"],
        "socket" => &["host", "port"],
        "password" => &["password_file", "defaults_file"],
        "password_file" => &["password", "defaults_file"],
        "defaults_file" => &["password", "password_file"],
        _ => &[],
    }
}

fn section_of(key: &str) -> Option<&'static str> {
    ["mysql", "check"].into_iter().find(|s| {
        SECTIONS
            .iter()
            .any(|(name, keys)| name == s && keys.iter().any(|k| k.name == key))
    })
}

/// The `[[target]]` entries of `table`, resolved against `base` (the config without
/// them), and the errors found, each naming its entry.
pub(super) fn read(
    table: &toml::Table,
    source: &str,
    env: &BTreeMap<String, String>,
    base: &Config,
) -> (Vec<TargetEntry>, Vec<String>) {
    let mut errors = Vec::new();
    let out = entries(table, source, env, base, &mut errors);
    (out, errors)
}

fn entries(
    table: &toml::Table,
    source: &str,
    env: &BTreeMap<String, String>,
    base: &Config,
    errors: &mut Vec<String>,
) -> Vec<TargetEntry> {
    let Some(value) = table.get("target") else {
        return Vec::new();
    };
    let Some(list) = value.as_array() else {
        errors.push(format!(
            "{source}: target must be an array of tables: write [[target]]"
        ));
        return Vec::new();
    };
    let mut defaults = table.clone();
    defaults.remove("target");
    // Read once, for the process, not again per target.
    defaults.remove("haproxy");
    defaults.remove("discover");
    let mut out: Vec<TargetEntry> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("{source}: [[target]] #{}", i + 1);
        let Some(entry) = item.as_table() else {
            errors.push(format!("{at}: must be a table"));
            continue;
        };
        let name = match entry.get("name").map(|v| v.as_str()) {
            Some(Some(n)) => n.to_string(),
            Some(None) => {
                errors.push(format!("{at}: name must be a string"));
                continue;
            }
            None => {
                errors.push(format!("{at}: name is required"));
                continue;
            }
        };
        if let Err(e) = target_name::validate(&name) {
            errors.push(format!("{at}: invalid name: {e}"));
            continue;
        }
        let at = format!("{source}: [[target]] {name}");
        if out.iter().any(|t| t.name == name) {
            errors.push(format!("{at}: the name is used by an earlier entry"));
            continue;
        }
        match entry_config(&defaults, entry, &name, &at, env, base) {
            Ok(t) => {
                if let Some(other) = out
                    .iter()
                    .find(|o| same_server(&o.mysql.target, &t.mysql.target))
                {
                    errors.push(format!(
                        "{at}: probes {} like [[target]] {}: one target per server",
                        t.mysql.target, other.name
                    ));
                    continue;
                }
                out.push(t);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    out
}

fn entry_config(
    defaults: &toml::Table,
    entry: &toml::Table,
    name: &str,
    at: &str,
    env: &BTreeMap<String, String>,
    base: &Config,
) -> Result<TargetEntry, Vec<String>> {
    let mut table = defaults.clone();
    let mut env = env.clone();
    let mut errors = Vec::new();
    for (key, value) in entry {
        if key == "name" {
            continue;
        }
        let Some(section) = section_of(key) else {
            errors.push(format!(
                "{at}: unknown key {key} (an entry sets name and [mysql] or [check] keys)"
            ));
            continue;
        };
        // What the entry chooses replaces the alternatives it would inherit.
        for k in drops(key) {
            if let Some(t) = table.get_mut("mysql").and_then(|t| t.as_table_mut()) {
                t.remove(*k);
            }
            env.remove(&format!("MYSQLCHK_MYSQL_{k}").to_ascii_uppercase());
        }
        env.remove(&format!("MYSQLCHK_{section}_{key}").to_ascii_uppercase());
        section_table(&mut table, section).insert(key.clone(), value.clone());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Each target has its own maintenance flag, beside the default one.
    if !entry.contains_key("maintenance_file") {
        let dir = base
            .check
            .maintenance_file
            .parent()
            .unwrap_or(Path::new("/"));
        let file = dir.join(format!("maintenance.{name}"));
        section_table(&mut table, "check").insert(
            "maintenance_file".into(),
            toml::Value::String(file.display().to_string()),
        );
        env.remove("MYSQLCHK_CHECK_MAINTENANCE_FILE");
    }
    match from_str(&table.to_string(), at, &env) {
        Ok(loaded) => Ok(TargetEntry {
            name: name.to_string(),
            mysql: loaded.config.mysql,
            check: loaded.config.check,
        }),
        Err(e) => Err(e.0),
    }
}

fn section_table<'t>(table: &'t mut toml::Table, section: &str) -> &'t mut toml::Table {
    let v = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !v.is_table() {
        *v = toml::Value::Table(toml::Table::new());
    }
    v.as_table_mut().expect("made a table just above")
}

fn same_server(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Tcp { host: h1, port: p1 }, Target::Tcp { host: h2, port: p2 }) => {
            p1 == p2 && h1.eq_ignore_ascii_case(h2)
        }
        (Target::Socket(x), Target::Socket(y)) => x == y,
        _ => false,
    }
}

impl Config {
    /// The settings of the target a command names (`--target`), and its name: the
    /// config itself without `[[target]]`, the only entry when there is one.
    pub(crate) fn select_target(
        &self,
        name: Option<&str>,
    ) -> Result<(Config, Option<String>), String> {
        let known = || {
            self.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let entry = match (name, self.targets.as_slice()) {
            (None, []) => return Ok((self.clone(), None)),
            (Some(n), []) => {
                return Err(format!(
                    "--target {n}: the config has no [[target]] entries"
                ))
            }
            (None, [only]) => only,
            (None, _) => {
                return Err(format!(
                    "the config has {} targets: name one with --target ({})",
                    self.targets.len(),
                    known()
                ))
            }
            (Some(n), list) => match list.iter().find(|t| t.name == n) {
                Some(t) => t,
                None => return Err(format!("unknown target {n} (known: {})", known())),
            },
        };
        Ok((self.for_target(entry), Some(entry.name.clone())))
    }

    /// The settings of a target found by `[[discover]]`: the `[mysql]`/`[check]`
    /// defaults at `host:port`, with its own maintenance flag beside the default one
    /// (as a `[[target]]` entry named `name` would have).
    pub(crate) fn for_discovered(&self, name: &str, host: &str, port: u16) -> Config {
        let mut mysql = self.mysql.clone();
        mysql.target = Target::Tcp {
            host: host.to_string(),
            port,
        };
        let mut check = self.check.clone();
        let dir = check.maintenance_file.parent().unwrap_or(Path::new("/"));
        check.maintenance_file = dir.join(format!("maintenance.{name}"));
        Config {
            mysql,
            check,
            targets: Vec::new(),
            haproxy: Vec::new(),
            discover: Vec::new(),
            ..self.clone()
        }
    }

    /// The settings one target runs with: the process's, with its `[mysql]`/`[check]`.
    pub(crate) fn for_target(&self, t: &TargetEntry) -> Config {
        Config {
            mysql: t.mysql.clone(),
            check: t.check.clone(),
            targets: Vec::new(),
            haproxy: Vec::new(),
            discover: Vec::new(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load(text: &str) -> Result<Config, Vec<String>> {
        from_str(text, "f.toml", &BTreeMap::new())
            .map(|l| l.config)
            .map_err(|e| e.0)
    }

    const BASE: &str = "[listen]\nhttp = \"127.0.0.1:9200\"\n[mysql]\nuser = \"chk\"\n\
                        [check]\nmax_replication_lag = \"30s\"\n\
                        maintenance_file = \"/run/mysqlchk/maintenance\"\n";

    #[test]
    fn entries_inherit_the_defaults_and_override_keys() {
        let c = load(&format!(
            "{BASE}[[target]]\nname = \"db1\"\nhost = \"10.0.0.2\"\n\
             [[target]]\nname = \"db2\"\nhost = \"10.0.0.3\"\nport = 3307\nmax_replication_lag = \"10s\"\nuser = \"other\"\n\
             [[target]]\nname = \"local\"\nsocket = \"/run/mysqld/mysqld.sock\"\nmaintenance_file = \"/tmp/m\"\n"
        ))
        .unwrap();
        let t: Vec<_> = c.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(t, ["db1", "db2", "local"]);
        let (db1, db2, local) = (&c.targets[0], &c.targets[1], &c.targets[2]);
        assert_eq!(db1.mysql.target.to_string(), "10.0.0.2:3306");
        assert_eq!(db1.mysql.user, "chk");
        assert_eq!(db1.check.max_replication_lag, Duration::from_secs(30));
        assert_eq!(
            db1.check.maintenance_file,
            Path::new("/run/mysqlchk/maintenance.db1")
        );
        assert_eq!(db2.mysql.target.to_string(), "10.0.0.3:3307");
        assert_eq!(db2.mysql.user, "other");
        assert_eq!(db2.check.max_replication_lag, Duration::from_secs(10));
        assert_eq!(local.mysql.target.to_string(), "/run/mysqld/mysqld.sock");
        assert_eq!(local.check.maintenance_file, Path::new("/tmp/m"));
        // The defaults themselves are untouched.
        assert_eq!(c.mysql.target.to_string(), "127.0.0.1:3306");
        let eff = c.for_target(db2);
        assert_eq!(eff.mysql.user, "other");
        assert!(eff.targets.is_empty());
    }

    #[test]
    fn without_targets_nothing_changes() {
        assert!(load(BASE).unwrap().targets.is_empty());
    }

    #[test]
    fn an_entry_beats_the_environment_which_beats_the_defaults() {
        let env: BTreeMap<String, String> = [
            ("MYSQLCHK_MYSQL_PORT".to_string(), "3310".to_string()),
            ("MYSQLCHK_MYSQL_USER".to_string(), "envuser".to_string()),
        ]
        .into();
        let c = from_str(
            &format!("{BASE}[[target]]\nname = \"a\"\nport = 3311\n[[target]]\nname = \"b\"\nhost = \"h\"\n"),
            "f.toml",
            &env,
        )
        .unwrap()
        .config;
        assert_eq!(c.targets[0].mysql.target.to_string(), "127.0.0.1:3311");
        assert_eq!(c.targets[0].mysql.user, "envuser");
        // A host alone keeps the inherited port (here from the environment).
        assert_eq!(c.targets[1].mysql.target.to_string(), "h:3310");
    }

    #[test]
    fn errors_name_the_entry() {
        let e = load(&format!(
            "{BASE}[[target]]\nname = \"db1\"\nhost = \"a\"\n\
             [[target]]\nname = \"db1\"\nhost = \"b\"\n\
             [[target]]\nname = \"bad name\"\n\
             [[target]]\nhost = \"c\"\n\
             [[target]]\nname = \"db3\"\nhost = \"A\"\n\
             [[target]]\nname = \"db4\"\nhost = \"d\"\ninterval = \"soon\"\n\
             [[target]]\nname = \"db5\"\nhost = \"e\"\nhttp = \"0.0.0.0:1\"\n\
             [[target]]\nname = \"replica\"\nhost = \"f\"\n"
        ))
        .unwrap_err();
        let all = e.join("\n");
        for want in [
            "f.toml: [[target]] db1: the name is used by an earlier entry",
            "f.toml: [[target]] #3: invalid name: a target name has only letters",
            "f.toml: [[target]] #4: name is required",
            "f.toml: [[target]] db3: probes A:3306 like [[target]] db1: one target per server",
            "f.toml: [[target]] db4: check.interval",
            "f.toml: [[target]] db5: unknown key http",
            "f.toml: [[target]] #8: invalid name: replica is an endpoint",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn validate_output_reads_back_as_the_same_targets() {
        let first = load(&format!(
            "{BASE}[[target]]\nname = \"db1\"\nhost = \"10.0.0.2\"\n\
             [[target]]\nname = \"db2\"\nhost = \"10.0.0.3\"\nport = 3307\nmax_replication_lag = \"10s\"\n\
             [[target]]\nname = \"local\"\nsocket = \"/run/mysqld/mysqld.sock\"\nmaintenance_file = \"/tmp/m\"\n"
        ))
        .unwrap();
        let rendered = first.render();
        assert!(
            rendered.contains("[[target]]\nname = \"db2\"\nhost = \"10.0.0.3\"\nport = 3307\n"),
            "{rendered}"
        );
        let again = load(&rendered).unwrap_or_else(|e| panic!("{e:?}\n{rendered}"));
        assert_eq!(first.targets, again.targets, "{rendered}");
    }

    #[test]
    fn commands_select_a_target() {
        let none = load(BASE).unwrap();
        assert_eq!(none.select_target(None).unwrap().1, None);
        assert!(none
            .select_target(Some("x"))
            .unwrap_err()
            .contains("no [[target]] entries"));
        let one = load(&format!("{BASE}[[target]]\nname = \"a\"\nport = 1\n")).unwrap();
        let (c, name) = one.select_target(None).unwrap();
        assert_eq!(
            (c.mysql.target.to_string(), name.as_deref()),
            ("127.0.0.1:1".into(), Some("a"))
        );
        let two = load(&format!(
            "{BASE}[[target]]\nname = \"a\"\nport = 1\n[[target]]\nname = \"b\"\nport = 2\n"
        ))
        .unwrap();
        assert!(two
            .select_target(None)
            .unwrap_err()
            .contains("name one with --target (a, b)"));
        assert_eq!(
            two.select_target(Some("b"))
                .unwrap()
                .0
                .mysql
                .target
                .to_string(),
            "127.0.0.1:2"
        );
        assert!(two
            .select_target(Some("c"))
            .unwrap_err()
            .contains("unknown target c (known: a, b)"));
    }

    #[test]
    fn pushing_with_targets_matches_lines_not_one_server_name() {
        let push = "[[haproxy]]\naddress = \"127.0.0.1:9999\"\nbackends = { \"mysql-read\" = \"replica\" }\n";
        let target = "[[target]]\nname = \"a\"\nport = 1\n";
        assert!(load(&format!("{BASE}{push}")).is_ok());
        assert!(load(&format!("{BASE}{push}{target}")).is_ok());
        let named = format!("{BASE}{push}server = \"db1\"\n");
        assert!(load(&named).is_ok());
        let e = load(&format!("{named}{target}")).unwrap_err();
        assert!(
            e.join("\n")
                .contains("haproxy[0].server names the single server's line"),
            "{e:?}"
        );
    }

    #[test]
    fn target_must_be_an_array_of_tables() {
        let e = load(&format!("{BASE}[target]\nname = \"x\"\n")).unwrap_err();
        assert!(e[0].contains("write [[target]]"), "{e:?}");
    }
}
