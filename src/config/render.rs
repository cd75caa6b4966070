//! `validate`'s output: the effective settings as TOML, secrets masked.
//!
//! Invariants: every key of the schema's tables is printed in table order (or, for
//! alternatives such as `host`/`socket`, the one in effect), so the output can never
//! forget a key; the output read back by `from_str` gives the same settings (a unit
//! test holds this); a secret prints as `"***"`.

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
