//! Reader for MySQL option files (`my.cnf`), used by the `defaults_file` setting.
//!
//! [`load`] reads one file plus everything it includes and collects the connection
//! options (`user`, `password`, `host`, `port`, `socket`) from the `[client]` and
//! `[mysqlchk]` groups into a [`ClientOptions`]. [`parse`] is the pure, per-file half.
//!
//! Rules, following the MySQL manual ("Using Option Files") and `mysys/my_default.cc`:
//! - Lines are trimmed of leading whitespace; empty lines and lines starting with `#`
//!   or `;` are comments. A `#` outside quotes starts a trailing comment anywhere in an
//!   option line (so `password=ab#cd` means `ab`; quote the value to keep the `#`).
//! - `[group]` starts a group; names are compared case-insensitively, whitespace inside
//!   the brackets is trimmed, text after `]` is ignored, a missing `]` is an error.
//!   An option before any group header is an error, as in MySQL.
//! - `opt_name`, `opt_name=value` and `opt_name = value`: whitespace around name and
//!   value is trimmed. In names `-` and `_` are the same, a leading `loose-` is dropped;
//!   names are otherwise case-sensitive (as in MySQL's option matching).
//! - A value wrapped in matching `"` or `'` loses the quotes (inner spaces are kept);
//!   then `\b \t \n \r \s`(space) `\\ \" \'` are unescaped, any other `\x` stays as is.
//! - `!include FILE` and `!includedir DIR` (files ending in `.cnf`, sorted by name, not
//!   recursive) splice the named files in at that point. Every file starts outside any
//!   group, and the including file carries on in the group it was in.
//! - Options of other groups and unknown options are ignored. The last occurrence of an
//!   option wins, across the whole read order.
//! - `password` without `=` means "prompt" to `mysql`; a daemon cannot prompt, so it
//!   makes the password absent (also undoing an earlier one). `password=` is an empty
//!   password, as is a bare `skip-password`. Empty `user`, `host`, `socket` and a `port`
//!   of 0 or empty mean "the default", as they do for `mysql`.
//!
//! Deliberate differences from MySQL, all to fail loudly rather than quietly run with
//! a half-read configuration: a missing or unreadable included file is an error (MySQL
//! skips it), as is nesting deeper than [`MAX_INCLUDE_DEPTH`] (MySQL warns and skips)
//! and an include cycle; relative include paths are resolved against the including
//! file's directory (MySQL uses the working directory, which for a daemon is arbitrary);
//! files must be regular files (a FIFO or device is refused, never waited on), UTF-8
//! and at most 1 MiB.
//!
//! Invariants:
//! - Never panics, whatever the input (no unchecked indexing or `unwrap` on input).
//! - No error, and no `Debug` of [`Entry`] or [`ClientOptions`], contains the value of a
//!   password: errors name the file, the line and the option, and only ever quote a
//!   `port` value or an include path.
//! - Bounded work: at most 1 MiB per file, [`MAX_INCLUDE_DEPTH`] levels of includes and
//!   [`MAX_FILES`] files per [`load`]; cycles are an error, never a hang.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::secret::Secret;

/// Largest option file accepted, in bytes. Real ones are a few hundred bytes; the cap
/// keeps a wrong path (a log file, `/dev/zero`) from eating memory.
pub(crate) const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// How deep `!include`s may nest below the file given to [`load`] (MySQL's limit too).
pub(crate) const MAX_INCLUDE_DEPTH: usize = 10;

/// How many files one [`load`] may read. Cycles are caught separately; this stops a
/// diamond of includes (each file including the next one several times) from
/// multiplying into millions of reads within the depth limit.
pub(crate) const MAX_FILES: usize = 256;

/// Groups whose options apply to mysqlchk: what every MySQL client reads, plus ours.
const GROUPS: [&str; 2] = ["client", "mysqlchk"];

/// Connection options found in the option files; `None` means "not set, use the default".
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ClientOptions {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) socket: Option<PathBuf>,
}

/// Why an option file could not be used. `Display` is one line naming the file (and
/// line) and the problem; it never contains an option value other than a port.
#[derive(Debug, thiserror::Error)]
pub enum MyCnfError {
    #[error("{file}: cannot read option file: {error}")]
    Read { file: String, error: io::Error },

    #[error("{file}:{line}: cannot read included file {target}: {error}")]
    Include {
        file: String,
        line: usize,
        target: String,
        error: io::Error,
    },

    #[error("{file}:{line}: cannot read !includedir directory {dir}: {error}")]
    IncludeDir {
        file: String,
        line: usize,
        dir: String,
        error: io::Error,
    },

    #[error("{file}: option file is larger than {MAX_FILE_SIZE} bytes")]
    TooLarge { file: String },

    #[error("{file}:{line}: option file is not valid UTF-8")]
    NotUtf8 { file: String, line: usize },

    #[error("{file}:{line}: group header has no closing ']'")]
    UnclosedGroup { file: String, line: usize },

    #[error("{file}:{line}: option before any [group] header")]
    OptionWithoutGroup { file: String, line: usize },

    #[error("{file}:{line}: '!{directive}' without a path")]
    EmptyInclude {
        file: String,
        line: usize,
        directive: IncludeKind,
    },

    #[error("{file}:{line}: include cycle: {target} is already being read")]
    IncludeCycle {
        file: String,
        line: usize,
        target: String,
    },

    #[error("{file}:{line}: includes nested deeper than {MAX_INCLUDE_DEPTH} levels")]
    TooDeep { file: String, line: usize },

    #[error("{file}:{line}: more than {MAX_FILES} option files included")]
    TooManyFiles { file: String, line: usize },

    #[error("{file}:{line}: option '{key}' needs a value")]
    MissingValue {
        file: String,
        line: usize,
        key: &'static str,
    },

    /// The value is shown (quoted, shortened): a port is not a secret, and seeing it
    /// is what makes the mistake obvious.
    #[error("{file}:{line}: option 'port': {value:?} is not a port number (0-65535)")]
    BadPort {
        file: String,
        line: usize,
        value: String,
    },
}

/// One `opt_name[=value]` line of an option file.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number in its file.
    pub(crate) line: usize,
    /// Group the line is in, trimmed and lower-cased.
    pub(crate) group: String,
    /// Option name with a `loose-` prefix dropped and every `-` written as `_`.
    pub(crate) key: String,
    /// Unquoted, unescaped value; `None` for a line without `=`.
    pub(crate) value: Option<String>,
}

// Written by hand so that a stray `{:?}` cannot log a password, of any group.
impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = Some("***");
        let value: &dyn fmt::Debug = match &self.value {
            Some(_) if self.key.contains("pass") => &redacted,
            value => value,
        };
        f.debug_struct("Entry")
            .field("line", &self.line)
            .field("group", &self.group)
            .field("key", &self.key)
            .field("value", value)
            .finish()
    }
}

/// `!include` or `!includedir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    File,
    Dir,
}

impl fmt::Display for IncludeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IncludeKind::File => "include",
            IncludeKind::Dir => "includedir",
        })
    }
}

/// An `!include`/`!includedir` directive, for [`load`] to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// 1-based line number of the directive.
    pub(crate) line: usize,
    pub(crate) kind: IncludeKind,
    /// The path as written; relative paths are relative to the including file's directory.
    pub(crate) path: PathBuf,
    /// How many of the file's entries come before the directive: the included options
    /// go between `entries[position - 1]` and `entries[position]` in read order.
    pub(crate) position: usize,
}

/// Read `path` and every file it includes; options from the groups `[client]` and
/// `[mysqlchk]` (later ones win, i.e. the last occurrence of a key wins across the
/// whole read order).
pub(crate) fn load(path: &Path) -> Result<ClientOptions, MyCnfError> {
    let mut loader = Loader::default();
    loader.read(path, None)?;
    Ok(loader.options)
}

/// Pure: parse one file's text (no includes followed; `!include`/`!includedir` lines
/// are returned to the caller via the second element so `load` can follow them).
/// `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<(Vec<Entry>, Vec<Include>), MyCnfError> {
    // Editors on Windows like to start files with a byte-order mark; without this the
    // first `[client]` would read as an option outside any group.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    let mut includes = Vec::new();
    let mut group: Option<String> = None;

    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let rest = raw.trim_start_matches(is_space);
        if rest.is_empty() || rest.starts_with(['#', ';']) {
            continue;
        }
        if let Some(directive) = rest.strip_prefix('!') {
            // Unknown `!` directives are ignored, as MySQL does.
            if let Some((kind, path)) = parse_directive(directive) {
                if path.is_empty() {
                    return Err(MyCnfError::EmptyInclude {
                        file: origin.to_owned(),
                        line,
                        directive: kind,
                    });
                }
                includes.push(Include {
                    line,
                    kind,
                    path: PathBuf::from(path),
                    position: entries.len(),
                });
            }
            continue;
        }
        if let Some(header) = rest.strip_prefix('[') {
            let Some((name, _after)) = header.split_once(']') else {
                return Err(MyCnfError::UnclosedGroup {
                    file: origin.to_owned(),
                    line,
                });
            };
            group = Some(name.trim_matches(is_space).to_ascii_lowercase());
            continue;
        }
        let Some(group) = &group else {
            return Err(MyCnfError::OptionWithoutGroup {
                file: origin.to_owned(),
                line,
            });
        };
        let (key, value) = parse_option(rest);
        entries.push(Entry {
            line,
            group: group.clone(),
            key,
            value,
        });
    }
    Ok((entries, includes))
}

/// MySQL's whitespace (`my_isspace` in latin1): includes `\r`, so CRLF files work.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The part of a `!...` line after the `!`: which directive, and its trimmed argument.
fn parse_directive(text: &str) -> Option<(IncludeKind, &str)> {
    let text = text.trim_start_matches(is_space);
    // `includedir` first: `include` is a prefix of it.
    for (keyword, kind) in [
        ("includedir", IncludeKind::Dir),
        ("include", IncludeKind::File),
    ] {
        if let Some(arg) = text.strip_prefix(keyword) {
            // MySQL wants whitespace after the keyword (the end of the line counts, it
            // sees the newline there), so `!includex` is no directive.
            if arg.is_empty() || arg.starts_with(is_space) {
                // No comment stripping: MySQL takes the rest of the line as the path.
                return Some((kind, arg.trim_matches(is_space)));
            }
        }
    }
    None
}

/// An option line (already trimmed at the start): normalized name and value.
fn parse_option(text: &str) -> (String, Option<String>) {
    let text = strip_comment(text);
    match text.split_once('=') {
        None => (normalize_key(text.trim_end_matches(is_space)), None),
        Some((name, value)) => {
            let name = normalize_key(name.trim_end_matches(is_space));
            (name, Some(unescape(unquote(value.trim_matches(is_space)))))
        }
    }
}

/// Cut a trailing `#` comment, MySQL's `remove_end_comment`: quotes are tracked over
/// the whole line, and a backslash escapes a quote only inside quotes.
fn strip_comment(text: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        if (c == '"' || c == '\'') && !escaped {
            match quote {
                None => quote = Some(c),
                Some(open) if open == c => quote = None,
                Some(_) => {}
            }
        } else if quote.is_none() && c == '#' {
            return text.get(..at).unwrap_or(text);
        }
        escaped = quote.is_some() && c == '\\' && !escaped;
    }
    text
}

/// Drop one pair of matching quotes around the whole value (a lone `"` stays).
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// Resolve MySQL's option-file escapes; an unknown one (`\x`) and a final lone
/// backslash are kept as written, so Windows paths survive.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('s') => out.push(' '),
            Some(c @ ('\\' | '"' | '\'')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// `ssl-ca`, `ssl_ca`, `loose-ssl-ca` and `loose_ssl_ca` all become `ssl_ca`.
fn normalize_key(name: &str) -> String {
    let name = name.replace('-', "_");
    match name.strip_prefix("loose_") {
        Some(rest) => rest.to_owned(),
        None => name,
    }
}

/// Fold one entry into the options, if its group and key concern us.
fn apply(options: &mut ClientOptions, entry: &Entry, file: &str) -> Result<(), MyCnfError> {
    if !GROUPS.contains(&entry.group.as_str()) {
        return Ok(());
    }
    let value = entry.value.as_deref();
    // `mysql` refuses these without a value; so do we, rather than guess.
    let required = |key: &'static str| {
        value.ok_or_else(|| MyCnfError::MissingValue {
            file: file.to_owned(),
            line: entry.line,
            key,
        })
    };
    match entry.key.as_str() {
        "user" => options.user = non_empty(required("user")?).map(str::to_owned),
        "host" => options.host = non_empty(required("host")?).map(str::to_owned),
        "socket" => options.socket = non_empty(required("socket")?).map(PathBuf::from),
        "port" => options.port = parse_port(required("port")?, file, entry.line)?,
        "password" => options.password = value.map(Secret::new),
        "skip_password" | "disable_password" if value.is_none() => {
            options.password = Some(Secret::new(""));
        }
        _ => {}
    }
    Ok(())
}

fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// Digits only (no sign, no `K` suffix): a port is a plain number. 0 and empty mean
/// "the default port", as for `mysql`.
fn parse_port(value: &str, file: &str, line: usize) -> Result<Option<u16>, MyCnfError> {
    let bad = || MyCnfError::BadPort {
        file: file.to_owned(),
        line,
        // Shortened so a pasted blob cannot flood the log line.
        value: value.chars().take(40).collect(),
    };
    if value.is_empty() {
        return Ok(None);
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<u16>() {
        Ok(0) => Ok(None),
        Ok(port) => Ok(Some(port)),
        Err(_) => Err(bad()),
    }
}

#[derive(Default)]
struct Loader {
    options: ClientOptions,
    /// Canonical paths of the files being read, outermost first: the include chain.
    chain: Vec<PathBuf>,
    files_read: usize,
}

impl Loader {
    /// Read one file and what it includes. `from` is the including file and the line
    /// of the directive; `None` for the file given to [`load`].
    fn read(&mut self, path: &Path, from: Option<(&str, usize)>) -> Result<(), MyCnfError> {
        let name = path.display().to_string();
        let io_error = |error: io::Error| match from {
            None => MyCnfError::Read {
                file: name.clone(),
                error,
            },
            Some((file, line)) => MyCnfError::Include {
                file: file.to_owned(),
                line,
                target: name.clone(),
                error,
            },
        };
        // Canonical, so that a cycle is seen however the path is spelled (symlinks, `..`).
        let canonical = std::fs::canonicalize(path).map_err(io_error)?;
        if let Some((file, line)) = from {
            if self.chain.contains(&canonical) {
                return Err(MyCnfError::IncludeCycle {
                    file: file.to_owned(),
                    line,
                    target: name,
                });
            }
            // The chain holds the includers, so its length is the new file's depth.
            if self.chain.len() > MAX_INCLUDE_DEPTH {
                return Err(MyCnfError::TooDeep {
                    file: file.to_owned(),
                    line,
                });
            }
            if self.files_read >= MAX_FILES {
                return Err(MyCnfError::TooManyFiles {
                    file: file.to_owned(),
                    line,
                });
            }
        }
        self.files_read += 1;

        let text = read_text(path, &name).map_err(|error| match error {
            ReadError::Io(error) => io_error(error),
            ReadError::Invalid(error) => error,
        })?;
        let (entries, includes) = parse(&text, &name)?;

        self.chain.push(canonical);
        let result = self.apply_file(path, &name, &entries, &includes);
        self.chain.pop();
        result
    }

    /// Apply a parsed file's entries, following each include where it stood.
    fn apply_file(
        &mut self,
        path: &Path,
        name: &str,
        entries: &[Entry],
        includes: &[Include],
    ) -> Result<(), MyCnfError> {
        let base = path.parent().unwrap_or(Path::new(""));
        let mut pending = includes.iter().peekable();
        for (index, entry) in entries.iter().enumerate() {
            while let Some(include) = pending.next_if(|include| include.position <= index) {
                self.follow(base, name, include)?;
            }
            apply(&mut self.options, entry, name)?;
        }
        for include in pending {
            self.follow(base, name, include)?;
        }
        Ok(())
    }

    fn follow(&mut self, base: &Path, name: &str, include: &Include) -> Result<(), MyCnfError> {
        // `join` keeps an absolute `include.path` as it is.
        let target = base.join(&include.path);
        let from = Some((name, include.line));
        match include.kind {
            IncludeKind::File => self.read(&target, from),
            IncludeKind::Dir => {
                let dir_error = |error| MyCnfError::IncludeDir {
                    file: name.to_owned(),
                    line: include.line,
                    dir: target.display().to_string(),
                    error,
                };
                let mut files = Vec::new();
                for item in std::fs::read_dir(&target).map_err(dir_error)? {
                    let path = item.map_err(dir_error)?.path();
                    // `is_file` follows symlinks: a linked file counts, a subdirectory
                    // (even one named `x.cnf`) does not, the directive is not recursive.
                    if path.extension() == Some(OsStr::new("cnf")) && path.is_file() {
                        files.push(path);
                    }
                }
                // Sorted, as MySQL does, so the override order is predictable.
                files.sort();
                for file in files {
                    self.read(&file, from)?;
                }
                Ok(())
            }
        }
    }
}

enum ReadError {
    Io(io::Error),
    Invalid(MyCnfError),
}

/// The file's text, refusing anything over [`MAX_FILE_SIZE`], not a regular file
/// (a FIFO would block the open, `/dev/zero` never end) or not UTF-8. Symlinks are
/// followed: distributions link `/etc/mysql/my.cnf` through `/etc/alternatives`.
fn read_text(path: &Path, name: &str) -> Result<String, ReadError> {
    use crate::smallfile::{self, Links};
    let bytes = smallfile::read(path, MAX_FILE_SIZE, Links::Follow).map_err(|e| match e {
        smallfile::Error::TooLarge(_) => ReadError::Invalid(MyCnfError::TooLarge {
            file: name.to_owned(),
        }),
        smallfile::Error::Io(e) => ReadError::Io(e),
        other => ReadError::Io(io::Error::other(other.to_string())),
    })?;
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.as_bytes().get(..error.utf8_error().valid_up_to());
        let line = valid.map_or(0, |bytes| bytes.iter().filter(|&&b| b == b'\n').count()) + 1;
        ReadError::Invalid(MyCnfError::NotUtf8 {
            file: name.to_owned(),
            line,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::fs::File;

    /// Parse `text` as one file and apply it, like `load` without the file system.
    fn options(text: &str) -> Result<ClientOptions, MyCnfError> {
        let (entries, includes) = parse(text, "test.cnf")?;
        assert!(includes.is_empty());
        let mut options = ClientOptions::default();
        for entry in &entries {
            apply(&mut options, entry, "test.cnf")?;
        }
        Ok(options)
    }

    fn user(text: &str) -> Option<String> {
        options(text).expect("parses").user
    }

    fn password(text: &str) -> Option<String> {
        options(text)
            .expect("parses")
            .password
            .map(|p| p.expose().to_owned())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn reads_the_client_options() {
        let got = options(
            "[client]\nuser=monitor\npassword=pw\nhost=db1.example\nport=3307\nsocket=/run/mysqld/mysqld.sock\n",
        )
        .expect("parses");
        assert_eq!(
            got,
            ClientOptions {
                user: Some("monitor".into()),
                password: Some(Secret::new("pw")),
                host: Some("db1.example".into()),
                port: Some(3307),
                socket: Some(PathBuf::from("/run/mysqld/mysqld.sock")),
            }
        );
    }

    #[test]
    fn comment_lines() {
        let text =
            "# top\n; also\n[client]\n  # indented\n\t; indented\nuser=a\n#user=b\n;user=c\n";
        assert_eq!(user(text).as_deref(), Some("a"));
    }

    #[test]
    fn trailing_comments() {
        assert_eq!(user("[client]\nuser=a # note\n").as_deref(), Some("a"));
        // As in MySQL, `#` needs no space before it...
        assert_eq!(user("[client]\nuser=a#b\n").as_deref(), Some("a"));
        // ...but `;` is only a comment at the start of a line.
        assert_eq!(user("[client]\nuser=a;b\n").as_deref(), Some("a;b"));
        // Quotes protect `#`, and an escaped quote inside quotes does not close them.
        assert_eq!(
            password("[client]\npassword=\"a#b\" # c\n").as_deref(),
            Some("a#b")
        );
        assert_eq!(
            password("[client]\npassword='a#b'\n").as_deref(),
            Some("a#b")
        );
        assert_eq!(
            password("[client]\npassword=\"a\\\"#b\" #c\n").as_deref(),
            Some("a\"#b")
        );
        // A comment on a group line.
        assert_eq!(
            user("[client] # the client\nuser=a\n").as_deref(),
            Some("a")
        );
    }

    #[test]
    fn group_headers() {
        assert_eq!(user("[CLIENT]\nuser=a\n").as_deref(), Some("a"));
        assert_eq!(user("[ Client ]\nuser=a\n").as_deref(), Some("a"));
        assert_eq!(user("  [mysqlchk]\nuser=a\n").as_deref(), Some("a"));
        assert_eq!(user("[mysqld]\nuser=a\n"), None);
        assert_eq!(
            user("[client]\nuser=a\n[mysql]\nuser=b\n").as_deref(),
            Some("a")
        );
        let (entries, _) = parse("[ My Group ]\nx=1\n", "t").expect("parses");
        assert_eq!(entries[0].group, "my group");
    }

    #[test]
    fn later_groups_and_lines_win() {
        let text = "[mysqlchk]\nuser=a\n[client]\nuser=b\nport=1\n[mysqlchk]\nport=2\n";
        let got = options(text).expect("parses");
        assert_eq!(got.user.as_deref(), Some("b"));
        assert_eq!(got.port, Some(2));
    }

    #[test]
    fn spaces_around_equals_are_trimmed() {
        assert_eq!(user("[client]\nuser = a\n").as_deref(), Some("a"));
        assert_eq!(user("[client]\nuser\t=\ta  \t\n").as_deref(), Some("a"));
        assert_eq!(user("[client]\n  user=a\n").as_deref(), Some("a"));
        assert_eq!(user("[client]\nuser = \"a b\"\n").as_deref(), Some("a b"));
        assert_eq!(user("[client]\nuser = a b\n").as_deref(), Some("a b"));
        // Only the first `=` separates.
        assert_eq!(password("[client]\npassword=a=b\n").as_deref(), Some("a=b"));
    }

    #[test]
    fn crlf_and_bom() {
        let text = "\u{feff}[client]\r\nuser = a\r\nport=3306\r\n";
        let got = options(text).expect("parses");
        assert_eq!(got.user.as_deref(), Some("a"));
        assert_eq!(got.port, Some(3306));
    }

    #[test]
    fn options_without_value_are_ignored() {
        let got = options("[client]\nskip-ssl\nuser=a\ncompress\n").expect("parses");
        assert_eq!(got.user.as_deref(), Some("a"));
        let (entries, _) = parse("[client]\nskip-ssl\n", "t").expect("parses");
        assert_eq!(entries[0].key, "skip_ssl");
        assert_eq!(entries[0].value, None);
    }

    #[test]
    fn dash_and_underscore_are_the_same_and_loose_is_dropped() {
        let (entries, _) = parse(
            "[client]\nssl-ca=/a\nssl_ca=/b\nloose-ssl-ca=/c\nloose_ssl_ca=/d\n",
            "t",
        )
        .expect("parses");
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["ssl_ca"; 4]);
        assert_eq!(
            password("[client]\nloose-password=x\n").as_deref(),
            Some("x")
        );
        assert_eq!(
            password("[client]\nloose_password=x\n").as_deref(),
            Some("x")
        );
        assert_eq!(user("[client]\nloose-user=x\n").as_deref(), Some("x"));
        // Names are case-sensitive, as in MySQL: this is an unknown option.
        assert_eq!(user("[client]\nUser=x\n"), None);
    }

    #[test]
    fn quotes_are_removed() {
        assert_eq!(user("[client]\nuser=\"a\"\n").as_deref(), Some("a"));
        assert_eq!(user("[client]\nuser='a'\n").as_deref(), Some("a"));
        assert_eq!(user("[client]\nuser='  a  '\n").as_deref(), Some("  a  "));
        // Not a matching pair: kept as written.
        assert_eq!(user("[client]\nuser=\"a'\n").as_deref(), Some("\"a'"));
        assert_eq!(user("[client]\nuser=\"\n").as_deref(), Some("\""));
        assert_eq!(user("[client]\nuser=a\"b\"\n").as_deref(), Some("a\"b\""));
        // Only one pair goes.
        assert_eq!(user("[client]\nuser=\"'a'\"\n").as_deref(), Some("'a'"));
        // Empty quotes: an empty password, which is not "no password".
        assert_eq!(password("[client]\npassword=\"\"\n").as_deref(), Some(""));
    }

    #[test]
    fn escapes() {
        let cases = [
            (r"a\bb", "a\u{8}b"),
            (r"a\tb", "a\tb"),
            (r"a\nb", "a\nb"),
            (r"a\rb", "a\rb"),
            (r"a\\b", r"a\b"),
            (r"a\sb", "a b"),
            (r#"a\"b"#, "a\"b"),
            (r"a\'b", "a'b"),
            (r"C:\mysql\x", r"C:\mysql\x"),
            (r"a\", r"a\"),
            (r"\s\s", "  "),
            (r"a\é", r"a\é"),
        ];
        for (raw, want) in cases {
            let text = format!("[client]\npassword={raw}\n");
            assert_eq!(password(&text).as_deref(), Some(want), "for {raw}");
        }
        // Escapes work inside quotes too, after the quotes are removed.
        assert_eq!(
            password("[client]\npassword=\"\\sa\\s\"\n").as_deref(),
            Some(" a ")
        );
    }

    #[test]
    fn password_without_value_means_absent() {
        assert_eq!(password("[client]\npassword\n"), None);
        // It undoes an earlier one: `mysql` would prompt instead of using it.
        assert_eq!(
            password("[client]\npassword=x\n[mysqlchk]\npassword\n"),
            None
        );
        assert_eq!(password("[client]\npassword=\n").as_deref(), Some(""));
        assert_eq!(
            password("[client]\npassword=x\nskip-password\n").as_deref(),
            Some("")
        );
    }

    #[test]
    fn empty_values_mean_default() {
        let got = options(
            "[client]\nuser=a\nhost=h\nport=1\nsocket=/s\nuser=\nhost=\"\"\nport=\nsocket=\n",
        )
        .expect("parses");
        assert_eq!(got, ClientOptions::default());
        assert_eq!(options("[client]\nport=0\n").expect("parses").port, None);
    }

    #[test]
    fn required_values() {
        for key in ["user", "host", "port", "socket"] {
            let err = options(&format!("[client]\n\n{key}\n")).expect_err(key);
            assert!(
                matches!(err, MyCnfError::MissingValue { line: 3, .. }),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("test.cnf:3") && msg.contains(key), "{msg}");
        }
        // In groups we don't read, nothing is checked.
        assert!(options("[mysqld]\nuser\nport=x\n").is_ok());
    }

    #[test]
    fn port_must_be_a_u16() {
        for bad in [
            "x",
            "65536",
            "-1",
            "+3306",
            "33 06",
            "3306K",
            "99999999999999999999",
        ] {
            let err = options(&format!("[client]\nuser=a\nport = {bad}\n")).expect_err(bad);
            let msg = err.to_string();
            assert!(matches!(err, MyCnfError::BadPort { line: 3, .. }), "{msg}");
            assert!(msg.contains("test.cnf:3") && msg.contains("port"), "{msg}");
            assert!(msg.contains(bad), "{msg}");
        }
        assert_eq!(
            options("[client]\nport=65535\n").expect("ok").port,
            Some(65535)
        );
        assert_eq!(
            options("[client]\nport='3306'\n").expect("ok").port,
            Some(3306)
        );
        // A long value is shortened in the message.
        let long = "9".repeat(5000);
        let msg = options(&format!("[client]\nport={long}\n"))
            .expect_err("too big")
            .to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn unknown_keys_and_groups_are_ignored() {
        let text = "[mysqld]\nuser=mysql\nport=x\n[client]\nfrobnicate=1\nssl-mode=REQUIRED\nuser=a\n[mysqldump]\nuser=b\n";
        let got = options(text).expect("parses");
        assert_eq!(got.user.as_deref(), Some("a"));
        assert_eq!(got.port, None);
    }

    #[test]
    fn syntax_errors() {
        let err = parse("[client]\n[client\nuser=a\n", "f.cnf").expect_err("unclosed");
        assert!(matches!(err, MyCnfError::UnclosedGroup { line: 2, .. }));
        assert_eq!(err.to_string(), "f.cnf:2: group header has no closing ']'");
        let err = parse("# c\nuser=a\n[client]\n", "f.cnf").expect_err("no group");
        assert!(matches!(
            err,
            MyCnfError::OptionWithoutGroup { line: 2, .. }
        ));
        let err = parse("!include   \n", "f.cnf").expect_err("empty include");
        assert_eq!(err.to_string(), "f.cnf:1: '!include' without a path");
        let err = parse("!includedir\n", "f.cnf").expect_err("empty includedir");
        assert_eq!(err.to_string(), "f.cnf:1: '!includedir' without a path");
    }

    #[test]
    fn include_directives_are_returned() {
        let text = "!include a.cnf\n[client]\nuser=a\n  ! include /b c.cnf \n!includedir\tconf.d\nuser=b\n!includex y\n!foo bar\n";
        let (entries, includes) = parse(text, "t").expect("parses");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            includes,
            [
                Include {
                    line: 1,
                    kind: IncludeKind::File,
                    path: PathBuf::from("a.cnf"),
                    position: 0
                },
                Include {
                    line: 4,
                    kind: IncludeKind::File,
                    path: PathBuf::from("/b c.cnf"),
                    position: 1
                },
                Include {
                    line: 5,
                    kind: IncludeKind::Dir,
                    path: PathBuf::from("conf.d"),
                    position: 1
                },
            ]
        );
    }

    #[test]
    fn load_follows_includes_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(
            d,
            "sub/inc.cnf",
            "[client]\nuser=from-include\nhost=inc-host\n",
        );
        write(d, "conf.d/20-b.cnf", "[client]\nport=2000\n");
        write(d, "conf.d/10-a.cnf", "[client]\nport=1000\nsocket=/a\n");
        write(d, "conf.d/30-c.txt", "[client]\nport=3000\n");
        write(d, "conf.d/nested/x.cnf", "[client]\nport=4000\n");
        write(d, "conf.d/dir.cnf/y.cnf", "[client]\nport=5000\n");
        let main = write(
            d,
            "my.cnf",
            // The include is relative to my.cnf's directory; `user` after it wins, `host`
            // before it loses; the included file's own group does not leak back.
            "[mysqld]\n[client]\nhost=main-host\n!include sub/inc.cnf\nuser=main\n!includedir conf.d\n",
        );
        let got = load(&main).expect("loads");
        assert_eq!(got.user.as_deref(), Some("main"));
        assert_eq!(got.host.as_deref(), Some("inc-host"));
        assert_eq!(got.port, Some(2000));
        assert_eq!(got.socket, Some(PathBuf::from("/a")));
    }

    #[test]
    fn included_file_starts_outside_any_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "inc.cnf", "user=x\n");
        let main = write(dir.path(), "my.cnf", "[client]\n!include inc.cnf\n");
        let err = load(&main).expect_err("no group");
        assert!(matches!(
            err,
            MyCnfError::OptionWithoutGroup { line: 1, .. }
        ));
        assert!(err.to_string().contains("inc.cnf:1"), "{err}");
    }

    #[test]
    fn include_after_group_keeps_group_of_includer() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "inc.cnf", "[mysqld]\nuser=mysql\n");
        let main = write(dir.path(), "my.cnf", "[client]\n!include inc.cnf\nuser=a\n");
        assert_eq!(load(&main).expect("loads").user.as_deref(), Some("a"));
    }

    #[test]
    fn absolute_include_and_diamond() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = write(dir.path(), "shared.cnf", "[client]\nport=42\n");
        let text = format!("!include {0}\n!include {0}\n", shared.display());
        let main = write(dir.path(), "my.cnf", &text);
        assert_eq!(load(&main).expect("loads").port, Some(42));
    }

    #[test]
    fn missing_file_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load(&dir.path().join("nope.cnf")).expect_err("missing");
        assert!(matches!(err, MyCnfError::Read { .. }));
        assert!(err.to_string().contains("nope.cnf"), "{err}");

        let main = write(dir.path(), "my.cnf", "[client]\n\n!include gone.cnf\n");
        let err = load(&main).expect_err("missing include");
        let msg = err.to_string();
        assert!(matches!(err, MyCnfError::Include { line: 3, .. }), "{msg}");
        assert!(
            msg.contains("my.cnf:3") && msg.contains("gone.cnf"),
            "{msg}"
        );

        let main = write(dir.path(), "my2.cnf", "!includedir no-such-dir\n");
        let err = load(&main).expect_err("missing includedir");
        let msg = err.to_string();
        assert!(
            matches!(err, MyCnfError::IncludeDir { line: 1, .. }),
            "{msg}"
        );
        assert!(
            msg.contains("my2.cnf:1") && msg.contains("no-such-dir"),
            "{msg}"
        );

        // A directory is not a file.
        let main = write(
            dir.path(),
            "my3.cnf",
            &format!("!include {}\n", dir.path().display()),
        );
        assert!(matches!(load(&main), Err(MyCnfError::Include { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_include_errors() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = write(dir.path(), "locked.cnf", "[client]\nuser=x\n");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
        if File::open(&secret).is_ok() {
            // Running as root: permissions don't stop us, nothing to test.
            return;
        }
        let main = write(dir.path(), "my.cnf", "!include locked.cnf\n");
        let err = load(&main).expect_err("unreadable");
        assert!(err.to_string().contains("locked.cnf"), "{err}");
    }

    /// A FIFO (given or included) would block `open` until a writer came: refused
    /// at once instead, naming the file.
    #[test]
    fn fifo_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe.cnf");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(st.success());
        let err = load(&fifo).expect_err("fifo");
        assert!(matches!(err, MyCnfError::Read { .. }), "{err}");
        assert!(err.to_string().contains("FIFO"), "{err}");
        let main = write(dir.path(), "my.cnf", "[client]\n!include pipe.cnf\n");
        let err = load(&main).expect_err("included fifo");
        assert!(matches!(err, MyCnfError::Include { line: 2, .. }), "{err}");
        // !includedir takes only regular files: a FIFO there is skipped, never opened.
        write(dir.path(), "d/a.cnf", "[client]\nuser=a\n");
        std::fs::rename(&fifo, dir.path().join("d/pipe.cnf")).expect("mv");
        let main = write(dir.path(), "my2.cnf", "!includedir d\n");
        assert_eq!(load(&main).expect("loads").user.as_deref(), Some("a"));
    }

    #[test]
    fn cycles_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let me = write(dir.path(), "self.cnf", "[client]\n!include self.cnf\n");
        let err = load(&me).expect_err("self include");
        assert!(
            matches!(err, MyCnfError::IncludeCycle { line: 2, .. }),
            "{err}"
        );

        write(dir.path(), "a.cnf", "!include b.cnf\n");
        write(dir.path(), "b.cnf", "!include ./sub/../a.cnf\n");
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let err = load(&dir.path().join("a.cnf")).expect_err("a-b cycle");
        assert!(matches!(err, MyCnfError::IncludeCycle { .. }), "{err}");
        assert!(err.to_string().contains("b.cnf:1"), "{err}");

        // Through includedir: the directory holds the file that includes it.
        write(dir.path(), "d/loop.cnf", "!includedir .\n");
        let err = load(&dir.path().join("d/loop.cnf")).expect_err("dir cycle");
        assert!(matches!(err, MyCnfError::IncludeCycle { .. }), "{err}");
    }

    #[test]
    fn depth_is_limited() {
        let dir = tempfile::tempdir().expect("tempdir");
        // f0 includes f1 ... includes f{n}: n levels below the top file.
        let chain = |n: usize| {
            for i in 0..n {
                write(
                    dir.path(),
                    &format!("f{i}.cnf"),
                    &format!("!include f{}.cnf\n", i + 1),
                );
            }
            write(dir.path(), &format!("f{n}.cnf"), "[client]\nport=7\n");
            load(&dir.path().join("f0.cnf"))
        };
        assert_eq!(
            chain(MAX_INCLUDE_DEPTH).expect("at the limit").port,
            Some(7)
        );
        let err = chain(MAX_INCLUDE_DEPTH + 1).expect_err("too deep");
        assert!(matches!(err, MyCnfError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn file_count_is_limited() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Each level includes the next one twice: 2^10 reads without the cap.
        for i in 0..MAX_INCLUDE_DEPTH {
            let next = format!("!include g{}.cnf\n", i + 1);
            write(dir.path(), &format!("g{i}.cnf"), &next.repeat(2));
        }
        write(
            dir.path(),
            &format!("g{MAX_INCLUDE_DEPTH}.cnf"),
            "[client]\n",
        );
        let err = load(&dir.path().join("g0.cnf")).expect_err("too many");
        assert!(matches!(err, MyCnfError::TooManyFiles { .. }), "{err}");
    }

    #[test]
    fn too_large_and_non_utf8() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut big = String::from("[client]\n");
        while big.len() as u64 <= MAX_FILE_SIZE {
            big.push_str("# padding padding padding padding padding padding\n");
        }
        let path = write(dir.path(), "big.cnf", &big);
        let err = load(&path).expect_err("too large");
        assert!(matches!(err, MyCnfError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("big.cnf"), "{err}");

        let path = dir.path().join("latin1.cnf");
        fs::write(&path, b"[client]\nuser=a\nhost=caf\xe9\n").expect("write");
        let err = load(&path).expect_err("not utf-8");
        assert!(matches!(err, MyCnfError::NotUtf8 { line: 3, .. }), "{err}");
        assert!(err.to_string().contains("latin1.cnf:3"), "{err}");

        // Same through an include: the error names the included file.
        let main = write(dir.path(), "my.cnf", "!include latin1.cnf\n");
        assert!(load(&main)
            .expect_err("x")
            .to_string()
            .contains("latin1.cnf"));
    }

    #[test]
    fn password_never_in_errors() {
        const PW: &str = "Pw-S3cr3t!x";
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut big = format!("[client]\npassword={PW}\n");
        while big.len() as u64 <= MAX_FILE_SIZE {
            big.push_str(&format!("password={PW}\n"));
        }
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "port.cnf",
                format!("[client]\npassword={PW}\nport=abc\n").into(),
            ),
            (
                "port2.cnf",
                format!("[client]\npassword = {PW}\nport=70000\n").into(),
            ),
            ("nogroup.cnf", format!("password={PW}\n").into()),
            ("unclosed.cnf", format!("[client password={PW}\n").into()),
            ("unclosed2.cnf", format!("[client\npassword={PW}\n").into()),
            (
                "missing.cnf",
                format!("[client]\npassword={PW}\nuser\n").into(),
            ),
            (
                "utf8.cnf",
                [format!("[client]\npassword={PW}").as_bytes(), b"\xff\n"].concat(),
            ),
            ("big.cnf", big.into()),
            (
                "cycle.cnf",
                format!("[client]\npassword={PW}\n!include cycle.cnf\n").into(),
            ),
            (
                "inc.cnf",
                format!("[client]\npassword={PW}\n!include gone.cnf\n").into(),
            ),
            (
                "incdir.cnf",
                format!("[client]\npassword={PW}\n!includedir gone.d\n").into(),
            ),
            (
                "empty.cnf",
                format!("[client]\npassword={PW}\n!include\n").into(),
            ),
        ];
        for (name, bytes) in cases {
            let path = d.join(name);
            fs::write(&path, bytes).expect("write");
            let err = load(&path).expect_err(name);
            let shown = format!("{err} | {err:?} | {err:#?}");
            assert!(!shown.contains(PW), "{name}: {shown}");
            assert!(shown.contains(name), "{name}: {shown}");
        }
        // Nor in the Debug of what a successful parse returns.
        let text = format!("[client]\npassword={PW}\n[mysqldump]\nloose-password=\"{PW}\"\n");
        let (entries, _) = parse(&text, "t").expect("parses");
        assert!(!format!("{entries:?}").contains(PW));
        let got = options(&text).expect("parses");
        assert!(!format!("{got:?}").contains(PW));
        assert_eq!(got.password.as_ref().map(Secret::expose), Some(PW));
    }

    /// xorshift64*: deterministic pseudo-random numbers without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    /// Parse and apply, for the fuzz tests: any outcome but a panic is fine.
    fn exercise(text: &str) {
        if let Ok((entries, includes)) = parse(text, "fuzz") {
            let mut options = ClientOptions::default();
            for entry in &entries {
                let _ = apply(&mut options, entry, "fuzz");
            }
            assert!(includes.iter().all(|i| i.position <= entries.len()));
        }
    }

    #[test]
    fn garbage_never_panics() {
        #[rustfmt::skip]
        const PIECES: &[&str] = &[
            "[", "]", "=", "#", ";", "!", "\"", "'", "\\", " ", "\t", "\n", "\r", "\r\n",
            "[client]", "[mysqlchk]\n", "password", "port", "user", "host", "socket",
            "loose-", "-", "_", "include ", "includedir ", "!include x\n", "\\s",
            "é", "\u{feff}", "\u{0}", "65536", "0", "3306", "a", "\x0b", "💥",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..rng.below(60) {
                text.push_str(PIECES[rng.below(PIECES.len())]);
            }
            exercise(&text);
            // Raw bytes, as a file might contain, through the lossy decoding.
            let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            exercise(&String::from_utf8_lossy(&bytes));
        }
        // Long lines of the characters the parser cares about.
        for piece in ["\\", "\"", "'", "#", "=", "[", "a", "\\\""] {
            exercise(&format!("[client]\npassword={}\n", piece.repeat(200_000)));
            exercise(&format!("[{}\n", piece.repeat(200_000)));
        }
        exercise(&"\n".repeat(500_000));
    }

    #[test]
    fn garbage_files_never_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = Rng(42);
        for i in 0..200 {
            // No `/` or `.`: included paths stay inside the temporary directory.
            const ALPHABET: &[u8] = b"[]=#;!\"'\\ \n\rclientpasswordincludeport9\xff";
            let bytes: Vec<u8> = (0..rng.below(300))
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect();
            let path = write(dir.path(), &format!("r{i}.cnf"), "");
            fs::write(&path, bytes).expect("write");
            let _ = load(&path);
        }
    }
}
