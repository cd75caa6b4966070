//! Names of `[[target]]` entries (README "Fleet mode"): `[A-Za-z0-9_.-]{1,64}`, and never a word the HTTP
//! port already gives a meaning, so that `/db1/replica` and `/replica` can never be read
//! two ways.
//!
//! Invariants: pure; the message names the rule that was broken, never echoes more than
//! a bounded, printable prefix of the value.

use crate::role::Role;

/// The longest target name: HAProxy server names are usually much shorter.
pub(crate) const MAX_NAME: usize = 64;

/// Why `name` cannot name a target, or `Ok`.
pub(crate) fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a target name may not be empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("a target name has at most {MAX_NAME} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "a target name has only letters, digits, '_', '.' and '-' (found {})",
            printable(c)
        ));
    }
    if reserved(name) {
        return Err(format!(
            "{name} is an endpoint of the HTTP port (a role, live, status or metrics); \
             it cannot name a target"
        ));
    }
    Ok(())
}

/// A path word the HTTP port answers by itself: a role (or alias), `live`, `status`,
/// `metrics`. `.` and `..` too, which proxies may normalise away.
pub(crate) fn reserved(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    (!word.is_empty() && Role::parse(word).is_some())
        || matches!(lower.as_str(), "live" | "status" | "metrics" | "." | "..")
}

fn printable(c: char) -> String {
    if c.is_ascii_graphic() || c == ' ' {
        format!("'{c}'")
    } else {
        format!("U+{:04X}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for n in [
            "db1",
            "DB_1",
            "mysql-read.db1",
            "a",
            &"x".repeat(64),
            "10.0.0.2",
        ] {
            assert_eq!(validate(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn bad_names_say_why() {
        assert!(validate("").unwrap_err().contains("empty"));
        assert!(validate(&"x".repeat(65)).unwrap_err().contains("64"));
        assert!(validate("db 1").unwrap_err().contains("' '"));
        assert!(validate("db/1").unwrap_err().contains("'/'"));
        assert!(validate("db\n1").unwrap_err().contains("U+000A"));
        assert!(validate("dbé").unwrap_err().contains("U+00E9"));
        assert!(validate("10.0.0.2:3306").unwrap_err().contains("':'"));
    }

    #[test]
    fn endpoint_words_are_reserved() {
        for n in [
            "replica",
            "Primary",
            "master",
            "rw",
            "ro",
            "read-only",
            "health",
            "live",
            "status",
            "METRICS",
            "..",
            ".",
        ] {
            assert!(validate(n).unwrap_err().contains("endpoint"), "{n}");
        }
    }
}
