//! Raw values: the TOML file and the `MYSQLCHK_<SECTION>_<KEY>` environment, read as
//! strings, numbers, lists, durations..., with every error collected.
//!
//! Invariants:
//! - the environment wins over the file; lists in the environment are comma-separated;
//! - a bad value is recorded (naming the file or variable, the key and the value) and
//!   the reader goes on with the default, so one pass reports every error;
//! - the value of a secret key is never echoed (`***`);
//! - only the keys of the schema in `config/mod.rs` exist: anything else, in the file or
//!   the environment, is an error.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::duration::{self, parse_duration, MAX_DURATION};
use super::{ConfigErrors, KeySpec, Loaded, SECTIONS};

const ENV_PREFIX: &str = "MYSQLCHK_";

/// One raw value and where it came from.
pub(super) enum Raw {
    File(toml::Value),
    Env(String, String),
}

pub(super) struct Reader<'e> {
    pub(super) table: toml::Table,
    pub(super) env: &'e BTreeMap<String, String>,
    pub(super) source: String,
    pub(super) errors: Vec<String>,
    pub(super) warnings: Vec<String>,
    /// Every `section.key` looked up, so a test can hold the sections' rules to the
    /// schema (each key read, no other).
    #[cfg(test)]
    pub(super) consulted: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

fn keys_of(section: &str) -> Option<&'static [KeySpec]> {
    SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, keys)| *keys)
}

fn is_secret(section: &str, key: &str) -> bool {
    keys_of(section)
        .and_then(|keys| keys.iter().find(|k| k.name == key))
        .is_some_and(|k| k.secret)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl<'e> Reader<'e> {
    /// Parse the file's text; a syntax error is the only error reported then.
    pub(super) fn new(
        text: &str,
        source: &str,
        env: &'e BTreeMap<String, String>,
    ) -> Result<Self, ConfigErrors> {
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                // toml's message spans several lines with a caret diagram: keep the first.
                let msg = e
                    .message()
                    .lines()
                    .next()
                    .unwrap_or("syntax error")
                    .to_string();
                let at = e
                    .span()
                    .map(|s| format!(" (line {})", line_of(text, s.start)))
                    .unwrap_or_default();
                return Err(ConfigErrors(vec![format!("{source}{at}: {msg}")]));
            }
        };
        Ok(Reader {
            table,
            env,
            source: source.to_string(),
            errors: Vec::new(),
            warnings: Vec::new(),
            #[cfg(test)]
            consulted: Default::default(),
        })
    }

    /// The file's table as parsed (for the `[[target]]` entries).
    pub(super) fn table(&self) -> &toml::Table {
        &self.table
    }

    /// The config if no error was recorded, else every error.
    pub(super) fn finish(self, config: super::Config) -> Result<Loaded, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(Loaded {
                config,
                warnings: self.warnings,
            })
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    pub(super) fn unknown_keys(&mut self) {
        let mut errors = Vec::new();
        for (section, value) in &self.table {
            // An array of tables, read (with its own errors) by `haproxy::read`.
            if section == "haproxy" {
                continue;
            }
            if section == "target" {
                continue; // [[target]] entries: read by `targets`
            }
            if section == "discover" {
                continue; // [[discover]] entries: read by `discover`
            }
            let Some(keys) = keys_of(section) else {
                errors.push(format!("{}: unknown section [{section}]", self.source));
                continue;
            };
            let Some(t) = value.as_table() else {
                errors.push(format!("{}: [{section}] must be a table", self.source));
                continue;
            };
            for key in t.keys() {
                if !keys.iter().any(|k| k.name == key) {
                    errors.push(format!("{}: unknown key {section}.{key}", self.source));
                }
            }
        }
        for name in self.env.keys() {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Not settings: the config path, and the hand-over's ready pipe.
            if rest == "CONFIG" || rest == "READY_FD" {
                continue;
            }
            let known = SECTIONS.iter().any(|(s, keys)| {
                keys.iter()
                    .any(|k| format!("{s}_{}", k.name).eq_ignore_ascii_case(rest))
            });
            if !known {
                errors.push(format!("environment: unknown setting {name}"));
            }
        }
        self.errors.extend(errors);
    }

    pub(super) fn raw(&self, section: &str, key: &str) -> Option<Raw> {
        #[cfg(test)]
        self.consulted
            .borrow_mut()
            .insert(format!("{section}.{key}"));
        let var = format!("{ENV_PREFIX}{}_{}", section, key).to_ascii_uppercase();
        if let Some(v) = self.env.get(&var) {
            return Some(Raw::Env(v.clone(), var));
        }
        self.table
            .get(section)
            .and_then(|s| s.as_table())
            .and_then(|t| t.get(key))
            .map(|v| Raw::File(v.clone()))
    }

    /// Record an error naming where the value came from; secrets are masked.
    pub(super) fn bad(&mut self, section: &str, key: &str, raw: &Raw, why: &str) {
        let shown = |v: String| {
            if is_secret(section, key) {
                "***".to_string()
            } else {
                v
            }
        };
        let line = match raw {
            Raw::File(v) => format!(
                "{}: {section}.{key} = {}: {why}",
                self.source,
                shown(v.to_string())
            ),
            Raw::Env(v, var) => format!("environment: {var}={}: {why}", shown(format!("{v:?}"))),
        };
        self.errors.push(line);
    }

    fn bad_listen(&mut self, key: &str, why: &str) {
        match self.raw("listen", key) {
            Some(raw) => self.bad("listen", key, &raw, why),
            None => self
                .errors
                .push(format!("{}: listen.{key}: {why}", self.source)),
        }
    }

    pub(super) fn string(&mut self, section: &str, key: &str) -> Option<String> {
        let raw = self.raw(section, key)?;
        match &raw {
            Raw::Env(v, _) => Some(v.clone()),
            Raw::File(toml::Value::String(s)) => Some(s.clone()),
            Raw::File(_) => {
                self.bad(section, key, &raw, "expected a string");
                None
            }
        }
    }

    pub(super) fn list(&mut self, section: &str, key: &str) -> Option<Vec<String>> {
        let raw = self.raw(section, key)?;
        let out = match &raw {
            Raw::Env(v, _) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Raw::File(toml::Value::String(s)) => vec![s.clone()],
            Raw::File(toml::Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => out.push(s.to_string()),
                        None => {
                            self.bad(section, key, &raw, "expected a list of strings");
                            return None;
                        }
                    }
                }
                out
            }
            Raw::File(_) => {
                self.bad(section, key, &raw, "expected a string or a list of strings");
                return None;
            }
        };
        Some(out)
    }

    pub(super) fn parsed<T>(
        &mut self,
        section: &str,
        key: &str,
        default: T,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
        from_int: impl Fn(i64) -> Option<T>,
    ) -> T {
        let Some(raw) = self.raw(section, key) else {
            return default;
        };
        let got = match &raw {
            Raw::Env(v, _) => parse(v.trim()),
            Raw::File(toml::Value::String(s)) => parse(s.trim()),
            Raw::File(toml::Value::Integer(i)) => from_int(*i),
            Raw::File(_) => None,
        };
        match got {
            Some(v) => v,
            None => {
                self.bad(section, key, &raw, &format!("expected {what}"));
                default
            }
        }
    }

    /// A duration of at most [`MAX_DURATION`].
    pub(super) fn duration(&mut self, section: &str, key: &str, default: Duration) -> Duration {
        self.bounded_duration(section, key, default, MAX_DURATION)
    }

    pub(super) fn bounded_duration(
        &mut self,
        section: &str,
        key: &str,
        default: Duration,
        max: Duration,
    ) -> Duration {
        let d = self.parsed(
            section,
            key,
            default,
            duration::EXPECTED,
            parse_duration,
            // A bare integer in a duration field is ambiguous: refuse it.
            |_| None,
        );
        if d <= max {
            return d;
        }
        // Out of range: report it and go on with the default, so later checks that
        // add durations together only ever see sane values.
        if let Some(raw) = self.raw(section, key) {
            self.bad(section, key, &raw, &duration::too_long(max));
        }
        default
    }

    /// Zero would make every attempt fail at once: say so instead.
    pub(super) fn nonzero(&mut self, section: &str, key: &str, d: Duration) {
        if d.is_zero() {
            if let Some(raw) = self.raw(section, key) {
                self.bad(section, key, &raw, "must be more than 0");
            }
        }
    }

    pub(super) fn number(
        &mut self,
        section: &str,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let what = format!("a whole number from {min} to {max}");
        self.parsed(
            section,
            key,
            default,
            &what,
            |s| s.parse::<u64>().ok().filter(|n| (min..=max).contains(n)),
            |i| u64::try_from(i).ok().filter(|n| (min..=max).contains(n)),
        )
    }

    pub(super) fn boolean(&mut self, section: &str, key: &str, default: bool) -> bool {
        let Some(raw) = self.raw(section, key) else {
            return default;
        };
        let got = match &raw {
            Raw::Env(v, _) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            Raw::File(toml::Value::Boolean(b)) => Some(*b),
            Raw::File(_) => None,
        };
        match got {
            Some(b) => b,
            None => {
                self.bad(section, key, &raw, "expected true or false");
                default
            }
        }
    }

    pub(super) fn addresses(&mut self, key: &str, default: &[&str]) -> Vec<SocketAddr> {
        let items = self
            .list("listen", key)
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for item in items {
            match item.parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                Err(_) => {
                    let why = format!("{item:?} is not an address:port such as \"127.0.0.1:9200\" or \"[::1]:9200\"");
                    self.bad_listen(key, &why);
                }
            }
        }
        out
    }

    pub(super) fn networks(&mut self, key: &str, default: &[&str]) -> Vec<IpNet> {
        let items = self
            .list("listen", key)
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for item in items {
            // A bare address means that one host.
            let parsed = item
                .parse::<IpNet>()
                .ok()
                .or_else(|| item.parse::<IpAddr>().ok().map(IpNet::from));
            match parsed {
                Some(n) => out.push(n.trunc()),
                None => {
                    let why = format!("{item:?} is not a network such as \"10.0.0.0/8\"");
                    self.bad_listen(key, &why);
                }
            }
        }
        out
    }

    pub(super) fn path(&mut self, section: &str, key: &str) -> Option<PathBuf> {
        self.string(section, key)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }
}

/// The entries of an array of tables (`[[name]]`, the top-level item `value`), each
/// with the prefix its errors carry (`FILE: name[i]`) and whether all its keys are in
/// `keys`. Shape errors and unknown keys are pushed to `errors`.
pub(super) fn table_entries<'v>(
    value: Option<&'v toml::Value>,
    source: &str,
    name: &str,
    keys: &[&str],
    errors: &mut Vec<String>,
) -> Vec<(String, &'v toml::Table, bool)> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        errors.push(format!(
            "{source}: {name} must be an array of tables ([[{name}]])"
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{source}: {name}[{i}]");
        let Some(t) = item.as_table() else {
            errors.push(format!("{at}: must be a table"));
            continue;
        };
        let before = errors.len();
        for k in t.keys() {
            if !keys.contains(&k.as_str()) {
                errors.push(format!("{at}: unknown key {k}"));
            }
        }
        let keys_ok = errors.len() == before;
        out.push((at, t, keys_ok));
    }
    out
}
