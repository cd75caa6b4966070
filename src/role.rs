//! The role a client asks about (`/primary`, an agent-send line, `check replica`): the
//! one word of vocabulary shared by config, verdict, the responders and the commands.
//!
//! Invariants: pure; names and aliases are those listed in the README ("HTTP endpoints").

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Health,
    Primary,
    Replica,
    ReadOnly,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Health, Role::Primary, Role::Replica, Role::ReadOnly];

    /// A role name or alias as used in paths (without `/`), agent lines and `check`.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s.to_ascii_lowercase().as_str() {
            "" | "health" => Role::Health,
            "primary" | "master" | "read-write" | "rw" => Role::Primary,
            "replica" | "slave" => Role::Replica,
            "read-only" | "ro" => Role::ReadOnly,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Health => "health",
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::ReadOnly => "read-only",
        }
    }

    /// Whether a `max_lag` bound means anything for this role.
    pub fn takes_lag(self) -> bool {
        matches!(self, Role::Replica | Role::ReadOnly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_aliases() {
        assert_eq!(Role::parse("master"), Some(Role::Primary));
        assert_eq!(Role::parse("rw"), Some(Role::Primary));
        assert_eq!(Role::parse("read-write"), Some(Role::Primary));
        assert_eq!(Role::parse("slave"), Some(Role::Replica));
        assert_eq!(Role::parse("ro"), Some(Role::ReadOnly));
        assert_eq!(Role::parse("nope"), None);
    }
}
