//! A password that cannot be printed.
//!
//! Invariant: neither `Debug` nor `Display` ever shows the value; the only way to the
//! bytes is [`Secret::expose`], called at the one place that hands it to the driver.

use std::fmt;

/// Largest password file read (validation and every connect): a password is short, and
/// the cap keeps a wrong path (a log file) from being read whole before every connect.
pub const MAX_PASSWORD_FILE: u64 = 64 * 1024;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear text, for the driver's connect options only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
