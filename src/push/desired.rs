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

/// One target's verdict in every role as of its latest round (`Target::round_verdicts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
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

/// One target's verdicts, and the address HAProxy's server lines are matched by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetVerdicts {
    /// The target's name (empty for the single server of a config without targets).
    pub name: String,
    /// Its MySQL address and port, when over TCP.
    pub addr: Option<(String, u16)>,
    pub verdicts: Verdicts,
}

/// Every target's verdicts at one moment: what a pusher plans from.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub targets: Vec<TargetVerdicts>,
    /// Targets have names (fleet mode): a server line may be matched by its name.
    pub named: bool,
}

/// Since when each target's role has been up (or healthy in maintenance): the up hold.
#[derive(Debug, Default)]
pub struct Holds {
    up_since: HashMap<String, [Option<Instant>; 4]>,
}

fn role_index(role: Role) -> usize {
    Role::ALL.iter().position(|&r| r == role).unwrap_or(0)
}

impl Holds {
    /// Take in every target's verdicts seen at `now`; targets no longer on the board
    /// are forgotten.
    pub fn observe(&mut self, board: &Board, now: Instant) {
        let on_board: std::collections::HashSet<&str> =
            board.targets.iter().map(|t| t.name.as_str()).collect();
        self.up_since
            .retain(|name, _| on_board.contains(name.as_str()));
        for t in &board.targets {
            let since = match self.up_since.get_mut(&t.name) {
                Some(s) => s,
                None => self.up_since.entry(t.name.clone()).or_default(),
            };
            for &role in Role::ALL {
                let slot = &mut since[role_index(role)];
                match t.verdicts.get(role).map(|r| r.state) {
                    Some(State::Up | State::Maintenance) => {
                        slot.get_or_insert(now);
                    }
                    _ => *slot = None,
                }
            }
        }
    }

    /// The desire for the server lines of `target` that route `role`, at `now`.
    pub fn desire(
        &self,
        target: &TargetVerdicts,
        role: Role,
        now: Instant,
        up_after: Duration,
    ) -> Desire {
        let Some(rv) = target.verdicts.get(role) else {
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
                    .get(&target.name)
                    .and_then(|s| s[role_index(role)])
                    .is_some_and(|s| now.saturating_duration_since(s) >= up_after);
                Desire {
                    health: held.then_some(Health::Up),
                    admin: Some(admin),
                }
            }
        }
    }

    /// When a pending up becomes due (the earliest), so the pusher can sleep until then.
    pub fn next_due(&self, now: Instant, up_after: Duration) -> Option<Instant> {
        self.up_since
            .values()
            .flat_map(|s| s.iter().flatten())
            .map(|s| *s + up_after)
            .filter(|due| *due > now)
            .min()
    }
}

/// What the pusher wants of every target's server lines: per target name, one desire
/// per configured backend (in the order of `[[haproxy]] backends`).
pub type Desires = std::collections::BTreeMap<String, Vec<Desire>>;

/// Every target's desires at `now` for the backends' roles.
pub fn desires(
    board: &Board,
    holds: &Holds,
    backends: &[(String, Role)],
    now: Instant,
    up_after: Duration,
) -> Desires {
    board
        .targets
        .iter()
        .map(|t| {
            let d = backends
                .iter()
                .map(|(_, role)| holds.desire(t, *role, now, up_after))
                .collect();
            (t.name.clone(), d)
        })
        .collect()
}

/// Which target each HAProxy server line belongs to: the one at its address and port,
/// else (fleet mode) the one of its name, else (a single server) the configured
/// `[[haproxy]] server` name.
#[derive(Debug, Default)]
pub struct Owners {
    by_addr: HashMap<(String, u16), String>,
    by_name: HashMap<String, String>,
    /// `[[haproxy]] server`: the single server's line, when its address does not tell.
    pub server: Option<String>,
}

impl Owners {
    pub fn new(board: &Board, server: Option<&str>) -> Owners {
        let mut o = Owners {
            server: server.map(str::to_string),
            ..Default::default()
        };
        for t in &board.targets {
            if let Some((host, port)) = &t.addr {
                o.by_addr
                    .entry((host_key(host), *port))
                    .or_insert_with(|| t.name.clone());
            }
            if board.named {
                o.by_name
                    .entry(t.name.clone())
                    .or_insert_with(|| t.name.clone());
            }
        }
        if let (Some(s), Some(t)) = (server, board.targets.first()) {
            if !board.named {
                o.by_name.insert(s.to_string(), t.name.clone());
            }
        }
        o
    }

    /// The name of the target `row` belongs to, if any.
    pub fn owner(&self, row: &ServerRow) -> Option<&str> {
        let by_addr = row.port.and_then(|port| {
            self.by_addr.get(&(host_key(&row.addr), port)).or_else(|| {
                row.fqdn
                    .as_deref()
                    .and_then(|f| self.by_addr.get(&(host_key(f), port)))
            })
        });
        by_addr
            .or_else(|| self.by_name.get(&row.server))
            .map(String::as_str)
    }
}

/// Addresses compare as addresses (`::1` and `0:0::1` are one), names as text
/// without case.
fn host_key(h: &str) -> String {
    let bare = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_ascii_lowercase(),
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

/// The commands that take HAProxy from `rows` to what `desire` wants (given a target
/// name and the index of the backend in `backends`) for every server line of the
/// configured `backends` that `owners` assigns to a target. A configured single-server
/// name with no row is planned anyway (health only), so HAProxy's own answer says what
/// is wrong.
pub fn plan(
    rows: &[ServerRow],
    backends: &[(String, Role)],
    owners: &Owners,
    desire: impl Fn(&str, usize) -> Desire,
) -> (Vec<Planned>, Vec<Missing>) {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (i, (backend, _)) in backends.iter().enumerate() {
        let mine: Vec<(&ServerRow, &str)> = rows
            .iter()
            .filter(|r| &r.backend == backend)
            .filter_map(|r| owners.owner(r).map(|t| (r, t)))
            .collect();
        if mine.is_empty() {
            if !rows.iter().any(|r| &r.backend == backend) {
                missing.push(Missing::Backend(backend.clone()));
            } else if owners.server.is_none() {
                missing.push(Missing::Server(backend.clone()));
            }
            if let Some(name) = &owners.server {
                if let Some(h) = owners.by_name.get(name).and_then(|t| desire(t, i).health) {
                    out.push(Planned {
                        backend: backend.clone(),
                        server: name.clone(),
                        change: Change::Health(h),
                    });
                }
            }
            continue;
        }
        for (row, target) in mine {
            let d = desire(target, i);
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

    /// The single server's board: one target with one role's verdict.
    fn verdicts(role: Role, state: State, maintenance: bool) -> Board {
        Board {
            targets: vec![target("", role, state, maintenance)],
            named: false,
        }
    }

    fn target(name: &str, role: Role, state: State, maintenance: bool) -> TargetVerdicts {
        TargetVerdicts {
            name: name.into(),
            addr: Some(("127.0.0.1".into(), 13306)),
            verdicts: Verdicts {
                roles: vec![RoleVerdict {
                    role,
                    state,
                    maintenance,
                }],
            },
        }
    }

    /// `h.desire` on the board's only target.
    fn want(h: &Holds, b: &Board, role: Role, now: Instant) -> Desire {
        h.desire(&b.targets[0], role, now, UP_AFTER)
    }

    const UP_AFTER: Duration = Duration::from_secs(2);

    #[test]
    fn down_at_once_up_after_the_hold() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        let down = verdicts(Role::Replica, State::Down, false);
        h.observe(&down, t0);
        let d = want(&h, &down, Role::Replica, t0);
        assert_eq!(d.health, Some(Health::Down));
        assert_eq!(d.admin, Some(Admin::Ready));

        let up = verdicts(Role::Replica, State::Up, false);
        let t1 = t0 + Duration::from_millis(100);
        h.observe(&up, t1);
        assert_eq!(want(&h, &up, Role::Replica, t1).health, None);
        assert_eq!(h.next_due(t1, UP_AFTER), Some(t1 + UP_AFTER));
        // Still up a round later: the hold counts from the first up round.
        let t2 = t1 + Duration::from_secs(1);
        h.observe(&up, t2);
        assert_eq!(want(&h, &up, Role::Replica, t2).health, None);
        let t3 = t1 + UP_AFTER;
        assert_eq!(want(&h, &up, Role::Replica, t3).health, Some(Health::Up));
        assert_eq!(h.next_due(t3, UP_AFTER), None);

        // A flap restarts the hold.
        h.observe(&down, t3);
        h.observe(&up, t3 + Duration::from_millis(10));
        assert_eq!(
            want(&h, &up, Role::Replica, t3 + Duration::from_secs(1)).health,
            None
        );
    }

    #[test]
    fn maintenance_drains_and_its_end_readies() {
        let t0 = Instant::now();
        let mut h = Holds::default();
        let m = verdicts(Role::Health, State::Maintenance, true);
        h.observe(&m, t0);
        assert_eq!(want(&h, &m, Role::Health, t0).admin, Some(Admin::Drain));
        // Down while in maintenance: down and drained.
        let dm = verdicts(Role::Health, State::Down, true);
        let d = want(&h, &dm, Role::Health, t0);
        assert_eq!(
            (d.health, d.admin),
            (Some(Health::Down), Some(Admin::Drain))
        );
        let up = verdicts(Role::Health, State::Up, false);
        assert_eq!(want(&h, &up, Role::Health, t0).admin, Some(Admin::Ready));
    }

    #[test]
    fn starting_and_unknown_roles_leave_haproxy_alone() {
        let h = Holds::default();
        let s = verdicts(Role::Primary, State::Starting, false);
        assert_eq!(
            want(&h, &s, Role::Primary, Instant::now()),
            Desire::default()
        );
        assert_eq!(
            want(&h, &s, Role::Replica, Instant::now()),
            Desire::default()
        );
    }

    /// The single server at 127.0.0.1:13306, with an optional `[[haproxy]] server`.
    fn single(addr: Option<(&str, u16)>, server: Option<&str>) -> Owners {
        let b = Board {
            targets: vec![TargetVerdicts {
                addr: addr.map(|(h, p)| (h.to_string(), p)),
                ..Default::default()
            }],
            named: false,
        };
        Owners::new(&b, server)
    }

    fn owner() -> Owners {
        single(Some(("127.0.0.1", 13306)), None)
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
        let (p, missing) = plan(&rows, &backends, &owner(), |_, _| down);
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
        let (p, _) = plan(&rows, &backends, &owner(), |_, _| Desire {
            health: Some(Health::Down),
            admin: Some(Admin::Drain),
        });
        let changes: Vec<_> = p.iter().map(|p| p.change.to_string()).collect();
        assert_eq!(changes, ["state drain", "health down"]);
        let rows = vec![row("w", "db1", "127.0.0.1", 13306, 0, 8)];
        let (p, _) = plan(&rows, &backends, &owner(), |_, _| Desire {
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
        let (p, _) = plan(&rows, &backends, &owner(), |_, _| Desire {
            health: Some(Health::Up),
            admin: Some(Admin::Ready),
        });
        let changes: Vec<_> = p.iter().map(|p| p.change.to_string()).collect();
        assert_eq!(changes, ["health up"]);
    }

    #[test]
    fn ownership_by_address_then_by_name() {
        let o = owner();
        assert_eq!(o.owner(&row("b", "x", "127.0.0.1", 13306, 2, 0)), Some(""));
        assert_eq!(o.owner(&row("b", "x", "127.0.0.1", 13307, 2, 0)), None);
        assert_eq!(o.owner(&row("b", "db1", "10.0.0.9", 3306, 2, 0)), None);
        let o = single(Some(("127.0.0.1", 13306)), Some("db1"));
        assert_eq!(o.owner(&row("b", "db1", "10.0.0.9", 3306, 2, 0)), Some(""));
        let v6 = single(Some(("::1", 3306)), None);
        assert_eq!(v6.owner(&row("b", "x", "0:0::1", 3306, 2, 0)), Some(""));
        let mut by_fqdn = row("b", "x", "10.0.0.2", 3306, 2, 0);
        by_fqdn.fqdn = Some("db1.example".into());
        let named = single(Some(("DB1.example", 3306)), None);
        assert_eq!(named.owner(&by_fqdn), Some(""));
    }

    /// A fleet checker: each line goes to the target at its address and port, else to
    /// the target of its name; lines of servers it does not watch are nobody's.
    #[test]
    fn fleet_lines_belong_to_their_targets() {
        let mut db1 = target("db1", Role::Primary, State::Up, false);
        db1.addr = Some(("10.0.0.1".into(), 3306));
        let mut db2 = target("db2", Role::Primary, State::Down, false);
        db2.addr = Some(("10.0.0.2".into(), 3306));
        let board = Board {
            targets: vec![db1, db2],
            named: true,
        };
        let o = Owners::new(&board, None);
        assert_eq!(o.owner(&row("w", "x", "10.0.0.1", 3306, 2, 0)), Some("db1"));
        assert_eq!(
            o.owner(&row("w", "db1", "10.0.0.2", 3306, 2, 0)),
            Some("db2"),
            "the address wins"
        );
        assert_eq!(
            o.owner(&row("w", "db2", "10.9.9.9", 3306, 2, 0)),
            Some("db2")
        );
        assert_eq!(o.owner(&row("w", "db3", "10.0.0.3", 3306, 2, 0)), None);

        let rows = vec![
            row("w", "a", "10.0.0.1", 3306, 2, 0),
            row("w", "b", "10.0.0.2", 3306, 2, 0),
            row("w", "c", "10.0.0.3", 3306, 0, 0),
        ];
        let backends = vec![("w".to_string(), Role::Primary)];
        let t0 = Instant::now();
        let mut h = Holds::default();
        h.observe(&board, t0 - UP_AFTER);
        let d = desires(&board, &h, &backends, t0, UP_AFTER);
        let (p, missing) = plan(&rows, &backends, &o, |t, i| d[t][i]);
        assert!(missing.is_empty());
        assert_eq!(
            p,
            vec![Planned {
                backend: "w".into(),
                server: "b".into(),
                change: Change::Health(Health::Down)
            }],
            "db1 is up already, c is not watched"
        );
        // A gone target's hold is forgotten with it.
        let only_db2 = Board {
            targets: vec![board.targets[1].clone()],
            named: true,
        };
        h.observe(&only_db2, t0);
        assert!(!h.up_since.contains_key("db1"));
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
        let (p, missing) = plan(&rows, &backends, &owner(), |_, _| down);
        assert!(p.is_empty());
        assert_eq!(
            missing,
            vec![Missing::Server("w".into()), Missing::Backend("gone".into())]
        );
        let named = single(None, Some("db9"));
        let (p, _) = plan(&rows, &backends, &named, |_, _| down);
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
        let mut last = Board::default();
        for (i, s) in [State::Down, State::Up, State::Down]
            .into_iter()
            .enumerate()
        {
            last = verdicts(Role::Health, s, false);
            h.observe(&last, t0 + Duration::from_millis(i as u64));
        }
        let (p, _) = plan(&rows, &backends, &owner(), |_, i| {
            want(&h, &last, backends[i].1, t0)
        });
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].change, Change::Health(Health::Down));
    }
}
