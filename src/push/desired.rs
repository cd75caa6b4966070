//! What each HAProxy server line should look like, from the latest verdicts (pure).
//!
//! Rules (README "Pushing state to HAProxy"): a role turning down is wanted `health down`
//! at once; turning up only once it has held for `push_up_after` (down fast, up slow);
//! maintenance is `state drain` at once, its end `state ready`. `maint`, `disable` and
//! `weight` are the operator's and never planned; a server the operator forced into
//! maintenance (`FMAINT`) gets no `state` change at all, since both `ready` and `drain`
//! would lift it. A server line is ours when its address and port are the target's, else
//! when its name is the configured one.
//!
//! Invariants: pure, no I/O, no panics; the plan is computed from the latest desire only,
//! so changes made while a push is under way coalesce into one command per server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::api::{Admin, Change, Health, ServerRow};
use crate::role::Role;
use crate::verdict::State;

/// The verdict of one role, as the checker published it after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleVerdict {
    pub role: Role,
    pub state: State,
    /// The server is flagged for maintenance (also when it is down meanwhile).
    pub maintenance: bool,
}

/// Every role's verdict after one round (what the checker publishes on a watch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub seq: u64,
    pub roles: Vec<RoleVerdict>,
}

impl Verdicts {
    pub fn get(&self, role: Role) -> Option<&RoleVerdict> {
        self.roles.iter().find(|v| v.role == role)
    }
}

/// What we want of one server line; `None` = leave it as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Desire {
    pub health: Option<Health>,
    pub admin: Option<Admin>,
}

/// Since when each role has been up (or healthy in maintenance): the up hold.
#[derive(Debug, Default)]
pub struct Holds {
    up_since: HashMap<Role, Instant>,
}

impl Holds {
    /// Take in a new round's verdicts seen at `now`.
    pub fn observe(&mut self, v: &Verdicts, now: Instant) {
        for &role in Role::ALL {
            match v.get(role).map(|r| r.state) {
                Some(State::Up | State::Maintenance) => {
                    self.up_since.entry(role).or_insert(now);
                }
                _ => {
                    self.up_since.remove(&role);
                }
            }
        }
    }

    /// The desire for servers routing `role`, at `now`.
    pub fn desire(&self, v: &Verdicts, role: Role, now: Instant, up_after: Duration) -> Desire {
        let Some(rv) = v.get(role) else {
            return Desire::default();
        };
        let admin = if rv.maintenance || rv.state == State::Maintenance {
            Admin::Drain
        } else {
            Admin::Ready
        };
        match rv.state {
            // Nothing known yet: HAProxy's own checks decide.
            State::Starting => Desire::default(),
            State::Down => Desire {
                health: Some(Health::Down),
                admin: Some(admin),
            },
            State::Up | State::Maintenance => {
                let held = self
                    .up_since
                    .get(&role)
                    .is_some_and(|s| now.saturating_duration_since(*s) >= up_after);
                Desire {
                    health: held.then_some(Health::Up),
                    admin: Some(admin),
                }
            }
        }
    }

    /// When a pending up becomes due (the earliest), so the pusher can sleep until then.
    pub fn next_due(&self, v: &Verdicts, now: Instant, up_after: Duration) -> Option<Instant> {
        self.up_since
            .iter()
            .filter(|(role, _)| v.get(**role).is_some())
            .map(|(_, s)| *s + up_after)
            .filter(|due| *due > now)
            .min()
    }
}

/// Which server lines are this mysqlchk's target (per-host mode: one target).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// The MySQL address and port (`mysql.host`, `mysql.port`), when over TCP.
    pub addr: Option<(String, u16)>,
    /// The server name in HAProxy (`[[haproxy]] server`), if configured.
    pub name: Option<String>,
}

impl Owner {
    pub fn owns(&self, row: &ServerRow) -> bool {
        let by_addr = self.addr.as_ref().is_some_and(|(host, port)| {
            row.port == Some(*port)
                && (same_host(host, &row.addr) || row.fqdn.as_deref() == Some(host.as_str()))
        });
        by_addr || self.name.as_deref() == Some(row.server.as_str())
    }
}

/// Addresses compare as addresses (`::1` and `0:0::1` are one), names as text.
fn same_host(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// One planned command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Planned {
    pub backend: String,
    pub server: String,
    pub change: Change,
}

/// Something about the configured backends that prevents a push (counted and logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The backend is not in HAProxy's `show servers state`.
    Backend(String),
    /// No server of the backend is the target (neither by address nor by name).
    Server(String),
}

/// The commands that take HAProxy from `rows` to what `desire` wants for every server
/// line of the configured `backends` that `owner` owns. A configured server name with
/// no row is planned anyway (health only), so HAProxy's own answer says what is wrong.
pub fn plan(
    rows: &[ServerRow],
    backends: &[(String, Role)],
    owner: &Owner,
    desire: impl Fn(Role) -> Desire,
) -> (Vec<Planned>, Vec<Missing>) {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (backend, role) in backends {
        let d = desire(*role);
        let mine: Vec<&ServerRow> = rows
            .iter()
            .filter(|r| &r.backend == backend && owner.owns(r))
            .collect();
        if mine.is_empty() {
            if !rows.iter().any(|r| &r.backend == backend) {
                missing.push(Missing::Backend(backend.clone()));
            } else if owner.name.is_none() {
                missing.push(Missing::Server(backend.clone()));
            }
            if let (Some(name), Some(h)) = (&owner.name, d.health) {
                out.push(Planned {
                    backend: backend.clone(),
                    server: name.clone(),
                    change: Change::Health(h),
                });
            }
            continue;
        }
        for row in mine {
            let mut push = |change| {
                out.push(Planned {
                    backend: row.backend.clone(),
                    server: row.server.clone(),
                    change,
                })
            };
            // Drain before down and up before ready: the server never takes new
            // connections between the two commands when it should not.
            if let Some(a) = d.admin.filter(|a| *a == Admin::Drain) {
                if !row.operator_maint() && row.admin() != a {
                    push(Change::Admin(a));
                }
            }
            if let Some(h) = d.health {
                if row.health() != h {
                    push(Change::Health(h));
                }
            }
            if let Some(a) = d.admin.filter(|a| *a == Admin::Ready) {
                if !row.operator_maint() && row.admin() != a {
                    push(Change::Admin(a));
                }
            }
        }
    }
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(be: &str, srv: &str, addr: &str, port: u16, op: u8, adm: u32) -> ServerRow {
        ServerRow {
            backend: be.into(),
            server: srv.into(),
            addr: addr.into(),
            fqdn: None,
            port: Some(port),
            op_state: op,
            admin_state: adm,
        }
    }

    fn verdicts(role: Role, state: State, maintenance: bool) -> Verdicts {
        Verdicts {
            seq: 1,
            roles: vec![RoleVerdict {
                role,
                state,
                maintenance,
            }],
        }
    }

    const UP_AFTER: Duration = Duration::from_secs(2);

    #[test]
    fn down_at_once_up_after_the_hold() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        let down = verdicts(Role::Replica, State::Down, false);
        h.observe(&down, t0);
        let d = h.desire(&down, Role::Replica, t0, UP_AFTER);
        assert_eq!(d.health, Some(Health::Down));
        assert_eq!(d.admin, Some(Admin::Ready));

        let up = verdicts(Role::Replica, State::Up, false);
        let t1 = t0 + Duration::from_millis(100);
        h.observe(&up, t1);
        assert_eq!(h.desire(&up, Role::Replica, t1, UP_AFTER).health, None);
        assert_eq!(h.next_due(&up, t1, UP_AFTER), Some(t1 + UP_AFTER));
        // Still up a round later: the hold counts from the first up round.
        let t2 = t1 + Duration::from_secs(1);
        h.observe(&up, t2);
        assert_eq!(h.desire(&up, Role::Replica, t2, UP_AFTER).health, None);
        let t3 = t1 + UP_AFTER;
        assert_eq!(
            h.desire(&up, Role::Replica, t3, UP_AFTER).health,
            Some(Health::Up)
        );
        assert_eq!(h.next_due(&up, t3, UP_AFTER), None);

        // A flap restarts the hold.
        h.observe(&down, t3);
        h.observe(&up, t3 + Duration::from_millis(10));
        assert_eq!(
            h.desire(&up, Role::Replica, t3 + Duration::from_secs(1), UP_AFTER)
                .health,
            None
        );
    }

    #[test]
    fn maintenance_drains_and_its_end_readies() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        let m = verdicts(Role::Health, State::Maintenance, true);
        h.observe(&m, t0);
        assert_eq!(
            h.desire(&m, Role::Health, t0, UP_AFTER).admin,
            Some(Admin::Drain)
        );
        // Down while in maintenance: down and drained.
        let dm = verdicts(Role::Health, State::Down, true);
        let d = h.desire(&dm, Role::Health, t0, UP_AFTER);
        assert_eq!(
            (d.health, d.admin),
            (Some(Health::Down), Some(Admin::Drain))
        );
        let up = verdicts(Role::Health, State::Up, false);
        assert_eq!(
            h.desire(&up, Role::Health, t0, UP_AFTER).admin,
            Some(Admin::Ready)
        );
    }

    #[test]
    fn starting_and_unknown_roles_leave_haproxy_alone() {
        let h = Holds::default();
        let s = verdicts(Role::Primary, State::Starting, false);
        assert_eq!(
            h.desire(&s, Role::Primary, Instant::now(), UP_AFTER),
            Desire::default()
        );
        assert_eq!(
            h.desire(&s, Role::Replica, Instant::now(), UP_AFTER),
            Desire::default()
        );
    }

    fn owner() -> Owner {
        Owner {
            addr: Some(("127.0.0.1".into(), 13306)),
            name: None,
        }
    }

    #[test]
    fn plan_touches_only_our_lines_and_only_what_differs() {
        let rows = vec![
            row("w", "db1", "127.0.0.1", 13306, 2, 0),
            row("w", "db2", "127.0.0.1", 13307, 2, 0),
            row("r", "db1", "127.0.0.1", 13306, 0, 0),
            row("other", "db1", "127.0.0.1", 13306, 2, 0),
        ];
        let backends = vec![
            ("w".to_string(), Role::Primary),
            ("r".to_string(), Role::Replica),
        ];
        let down = Desire {
            health: Some(Health::Down),
            admin: Some(Admin::Ready),
        };
        let (p, missing) = plan(&rows, &backends, &owner(), |_| down);
        assert!(missing.is_empty());
        assert_eq!(
            p,
            vec![Planned {
                backend: "w".into(),
                server: "db1".into(),
                change: Change::Health(Health::Down)
            }]
        );
    }

    #[test]
    fn plan_orders_drain_before_down_and_up_before_ready() {
        let rows = vec![row("w", "db1", "127.0.0.1", 13306, 2, 0)];
        let backends = vec![("w".to_string(), Role::Health)];
        let (p, _) = plan(&rows, &backends, &owner(), |_| Desire {
            health: Some(Health::Down),
            admin: Some(Admin::Drain),
        });
        let changes: Vec<_> = p.iter().map(|p| p.change.to_string()).collect();
        assert_eq!(changes, ["state drain", "health down"]);
        let rows = vec![row("w", "db1", "127.0.0.1", 13306, 0, 8)];
        let (p, _) = plan(&rows, &backends, &owner(), |_| Desire {
            health: Some(Health::Up),
            admin: Some(Admin::Ready),
        });
        let changes: Vec<_> = p.iter().map(|p| p.change.to_string()).collect();
        assert_eq!(changes, ["health up", "state ready"]);
    }

    #[test]
    fn operator_maintenance_is_never_lifted() {
        // admin 1 = FMAINT (`set server … state maint` or `disabled`).
        let rows = vec![row("w", "db1", "127.0.0.1", 13306, 0, 1 | 8)];
        let backends = vec![("w".to_string(), Role::Health)];
        let (p, _) = plan(&rows, &backends, &owner(), |_| Desire {
            health: Some(Health::Up),
            admin: Some(Admin::Ready),
        });
        let changes: Vec<_> = p.iter().map(|p| p.change.to_string()).collect();
        assert_eq!(changes, ["health up"]);
    }

    #[test]
    fn ownership_by_address_then_by_name() {
        let mut o = owner();
        assert!(o.owns(&row("b", "x", "127.0.0.1", 13306, 2, 0)));
        assert!(!o.owns(&row("b", "x", "127.0.0.1", 13307, 2, 0)));
        assert!(!o.owns(&row("b", "db1", "10.0.0.9", 3306, 2, 0)));
        o.name = Some("db1".into());
        assert!(o.owns(&row("b", "db1", "10.0.0.9", 3306, 2, 0)));
        let v6 = Owner {
            addr: Some(("::1".into(), 3306)),
            name: None,
        };
        assert!(v6.owns(&row("b", "x", "0:0::1", 3306, 2, 0)));
        let mut by_fqdn = row("b", "x", "10.0.0.2", 3306, 2, 0);
        by_fqdn.fqdn = Some("db1.example".into());
        let named = Owner {
            addr: Some(("db1.example".into(), 3306)),
            name: None,
        };
        assert!(named.owns(&by_fqdn));
    }

    #[test]
    fn missing_backends_and_servers_are_reported_and_named_servers_still_tried() {
        let rows = vec![row("w", "db2", "127.0.0.1", 13307, 2, 0)];
        let backends = vec![
            ("w".to_string(), Role::Primary),
            ("gone".to_string(), Role::Replica),
        ];
        let down = Desire {
            health: Some(Health::Down),
            admin: Some(Admin::Ready),
        };
        let (p, missing) = plan(&rows, &backends, &owner(), |_| down);
        assert!(p.is_empty());
        assert_eq!(
            missing,
            vec![Missing::Server("w".into()), Missing::Backend("gone".into())]
        );
        let named = Owner {
            addr: None,
            name: Some("db9".into()),
        };
        let (p, _) = plan(&rows, &backends, &named, |_| down);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p
            .iter()
            .all(|p| p.server == "db9" && p.change == Change::Health(Health::Down)));
    }

    /// Coalescing: whatever happened in between, the plan is made from the latest
    /// desire, so down → up → down while a push is under way is one `health down`.
    #[test]
    fn changes_coalesce_to_the_latest_desire() {
        let rows = vec![row("w", "db1", "127.0.0.1", 13306, 2, 0)];
        let backends = vec![("w".to_string(), Role::Health)];
        let t0 = Instant::now();
        let mut h = Holds::default();
        let mut last = Verdicts::default();
        for (i, s) in [State::Down, State::Up, State::Down]
            .into_iter()
            .enumerate()
        {
            last = verdicts(Role::Health, s, false);
            h.observe(&last, t0 + Duration::from_millis(i as u64));
        }
        let (p, _) = plan(&rows, &backends, &owner(), |r| {
            h.desire(&last, r, t0, UP_AFTER)
        });
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].change, Change::Health(Health::Down));
    }
}
