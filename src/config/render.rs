//! `validate`'s output: the effective settings as TOML, secrets masked.
//!
//! Invariants: every key of the schema's tables is printed in table order (or, for
//! alternatives such as `host`/`socket`, the one in effect), so the output can never
//! forget a key; the output read back by `from_str` gives the same settings (a unit
//! test holds this); a secret prints as `"***"`; a `[[target]]` prints the keys where
//! it differs from the defaults.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::{fmt_duration, Config, SECTIONS};

/// How one key shows in `validate`'s output.
pub(super) enum Shown {
    /// `key = value`, the value already in TOML syntax.
    Value(String),
    /// `# note`, in the key's place.
    Note(&'static str),
    /// Not printed: an alternative not in effect, or an optional file not given.
    Unset,
}

impl Config {
    /// The effective settings, secrets masked, as `validate` prints them.
    pub(crate) fn render(&self) -> String {
        let mut out = format!("# effective settings from {}\n", self.source);
        for (i, (section, keys)) in SECTIONS.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out += &format!("[{section}]\n");
            for key in keys.iter() {
                match (key.show)(self) {
                    Shown::Value(v) => out += &format!("{} = {v}\n", key.name),
                    Shown::Note(note) => out += &format!("# {note}\n"),
                    Shown::Unset => {}
                }
            }
        }
        out += &super::haproxy::render(&self.haproxy);
        out += &super::discover::render(&self.discover);
        // Each `[[target]]` with the keys where it differs from the defaults above.
        for t in &self.targets {
            let eff = self.for_target(t);
            out += &format!("\n[[target]]\nname = {:?}\n", t.name);
            let sections = SECTIONS
                .iter()
                .filter(|(s, _)| matches!(*s, "mysql" | "check"));
            for key in sections.flat_map(|(_, keys)| keys.iter()) {
                if let (Shown::Value(v), mine) = ((key.show)(&eff), (key.show)(self)) {
                    if !matches!(mine, Shown::Value(ref d) if *d == v) {
                        out += &format!("{} = {v}\n", key.name);
                    }
                }
            }
        }
        out
    }
}

/// A TOML string.
pub(super) fn string(s: &str) -> Shown {
    Shown::Value(format!("{s:?}"))
}

/// A number or a boolean, as is.
pub(super) fn plain(v: impl Display) -> Shown {
    Shown::Value(v.to_string())
}

pub(super) fn duration(d: Duration) -> Shown {
    string(&fmt_duration(d))
}

pub(super) fn path(p: &Path) -> Shown {
    string(&p.display().to_string())
}

pub(super) fn optional_path(p: &Option<PathBuf>) -> Shown {
    p.as_deref().map_or(Shown::Unset, path)
}

/// A TOML list of strings.
pub(super) fn list<T: Display>(items: &[T]) -> Shown {
    Shown::Value(format!(
        "[{}]",
        items
            .iter()
            .map(|s| format!("{:?}", s.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub(super) fn addresses(items: &[SocketAddr]) -> Shown {
    list(items)
}

pub(super) fn networks(items: &[IpNet]) -> Shown {
    list(items)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{from_str, Credentials};

    /// Every key set away from its default (files that must exist are made here): the
    /// rendered text, read back, gives the same settings. A key `validate` forgot
    /// would come back as its default.
    #[test]
    fn render_reads_back_as_the_same_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, "x\n").unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            p.display().to_string()
        };
        let (pw, ca, cert, key) = (file("pw"), file("ca"), file("cert"), file("key"));
        let text = format!(
            "[listen]\nhttp = [\"127.0.0.1:9201\", \"[::1]:9201\"]\nagent = \"10.1.2.3:9202\"\n\
             allow = [\"10.0.0.0/8\", \"::1\"]\nadmin_allow = [\"192.168.1.7\"]\n\
             max_connections = 100\nmax_connections_per_ip = 7\nrequest_timeout = \"1m 30s\"\n\
             [mysql]\nhost = \"db.example\"\nport = 3307\nuser = \"chk \\\"q\\\"\"\n\
             password_file = {pw:?}\nconnect_timeout = \"700ms\"\nssl_mode = \"verify-ca\"\n\
             ssl_ca = {ca:?}\nssl_cert = {cert:?}\nssl_key = {key:?}\n\
             [check]\ninterval = \"2s\"\ntimeout = \"1s 500ms\"\nstale_after = \"9s\"\n\
             query = \"SELECT 'x' -- \\\\ \\u00e9\"\nmax_replication_lag = \"2d 3h\"\n\
             replication_channels = [\"a\", \"b c\"]\nprimary_allows_replication = true\n\
             gr_max_applier_queue = 55\ngalera_donor_is_healthy = true\n\
             maintenance_file = \"/tmp/m\"\nmaintenance_status = 503\n\
             lag_recover = \"1h 1s\"\nrecover_rounds = 7\nlag_samples = 5\nfull_grace = \"1m\"\n\
             [agent]\ndefault_role = \"ro\"\nmaintenance = \"maint\"\nsoft_lag = \"1h\"\n\
             min_weight = \"33%\"\nramp = \"2s 500ms\"\n\
             [log]\nlevel = \"DEBUG\"\nformat = \"json\"\naccess_log = true\n"
        );
        let none = BTreeMap::new();
        let first = from_str(&text, "t.toml", &none).unwrap().config;
        let rendered = first.render();
        let again = from_str(&rendered, "rendered", &none)
            .unwrap_or_else(|e| panic!("{e}\n{rendered}"))
            .config;
        assert_eq!(first.listen, again.listen, "{rendered}");
        assert_eq!(first.mysql, again.mysql, "{rendered}");
        assert_eq!(first.check, again.check, "{rendered}");
        assert_eq!(first.agent, again.agent, "{rendered}");
        assert_eq!(first.log, again.log, "{rendered}");

        // The alternatives: a socket and a defaults file; and the defaults.
        let cnf = dir.path().join("my.cnf");
        std::fs::write(&cnf, "[client]\npassword = x\n").unwrap();
        std::fs::set_permissions(&cnf, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        for text in [
            format!(
                "[listen]\nhttp = \"127.0.0.1:1\"\n[mysql]\nsocket = \"/tmp/s.sock\"\n\
                 defaults_file = {:?}\n",
                cnf.display().to_string()
            ),
            "[listen]\nhttp = \"127.0.0.1:1\"\n".to_string(),
        ] {
            let first = from_str(&text, "t.toml", &none).unwrap().config;
            let rendered = first.render();
            let again = from_str(&rendered, "rendered", &none).unwrap().config;
            assert_eq!(
                (
                    first.listen,
                    first.mysql,
                    first.check,
                    first.agent,
                    first.log
                ),
                (
                    again.listen,
                    again.mysql,
                    again.check,
                    again.agent,
                    again.log
                ),
                "{rendered}"
            );
        }
    }

    /// The one key that cannot read back: a secret shows as `***`.
    #[test]
    fn inline_password_shows_masked() {
        let env = BTreeMap::from([("MYSQLCHK_MYSQL_PASSWORD".to_string(), "pw".to_string())]);
        let c = from_str("[listen]\nhttp = \"127.0.0.1:1\"\n", "t", &env)
            .unwrap()
            .config;
        assert!(matches!(c.mysql.credentials, Credentials::Inline(_)));
        assert!(c.render().contains("\npassword = \"***\"\n"));
    }
}
