//! HAProxy agent-check port: one line per connection, then close.
//!
//! Syntax HAProxy 2.x parses: `up ready 100%`, `up ready 40%` (the bare percentage:
//! HAProxy 2.6 ignores `weight:40%`), `drain`, `maint`, `down #<reason>`, and
//! `drain down #maintenance: <reason>` for a server in maintenance that is also down.
//! If HAProxy sends a line first (`agent-send "replica max_lag=20s\n"`), it selects the
//! role and lag bound; we read until its newline for at most ~100 ms, then judge what
//! arrived (the default role if nothing did).
//! Until the first round has completed the reply is `#starting`, a line without a state
//! word: HAProxy applies an agent `down` at once (no `fall`), so a restart must leave
//! the server's state as it was rather than pull it from the pool.
//! In fleet mode the first word names the target: `agent-send "db1/replica\n"`.
//! A role that comes back up ramps: its weight is at most `agent.min_weight` rising to
//! 100% over `agent.ramp` (README, "Verdict policy"); a full server drains.
//! Invariants: the reply is one line of printable ASCII; reasons are our own phrases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{parse_duration, Agent, AgentMaintenance, Config};
use crate::fleet::{route, Fleet};
use crate::policy::ramp_weight;
use crate::respond::accept::{accept_loop, FirstLook, Responder};
use crate::role::Role;
use crate::verdict::{State, Verdict};

const SEND_WAIT: Duration = Duration::from_millis(100);

/// What an `agent-send` line asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Ask {
    pub role: Role,
    pub max_lag: Option<Duration>,
}

/// Parse `"<role> [max_lag=<d>|lag=<d>]"`; an empty line means the default role.
pub fn parse_ask(line: &str, default: Role) -> Result<Ask, String> {
    let mut words = line.split_whitespace();
    let role = match words.next() {
        None => default,
        Some(w) => Role::parse(w.trim_start_matches('/'))
            .ok_or_else(|| format!("unknown role {}", clean(w)))?,
    };
    let mut max_lag = None;
    for w in words {
        let (k, v) = w.split_once('=').unwrap_or((w, ""));
        match k {
            // Given twice, "last wins" would hide a typo in a template: refuse it, as
            // the HTTP port does.
            "max_lag" | "lag" if max_lag.is_some() => {
                return Err("max_lag given twice (lag and max_lag are the same bound)".into())
            }
            "max_lag" | "lag" => {
                max_lag = Some(parse_duration(v).ok_or_else(|| format!("invalid {}", clean(w)))?)
            }
            _ => return Err(format!("unknown parameter {}", clean(w))),
        }
    }
    Ok(Ask { role, max_lag })
}

fn clean(s: &str) -> String {
    s.chars()
        .take(40)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// The weight for a replica lagging `lag` seconds: 100% up to `soft_lag`, falling
/// linearly to `min_weight` at the hard bound.
pub fn weight(lag: Option<u64>, agent: &Agent, hard: Duration) -> u8 {
    let Some(lag) = lag else { return 100 };
    let lag = Duration::from_secs(lag);
    if lag <= agent.soft_lag || hard <= agent.soft_lag {
        return 100;
    }
    if lag >= hard {
        return agent.min_weight;
    }
    let span = (hard - agent.soft_lag).as_secs_f64();
    let frac = (lag - agent.soft_lag).as_secs_f64() / span;
    let w = 100.0 - frac * (100.0 - f64::from(agent.min_weight));
    (w.round() as u8).clamp(agent.min_weight, 100)
}

/// The reply line (with its newline) for a verdict; `back_for` is how long the role
/// has been up again after being down (`None` when it did not come back).
pub fn line(v: &Verdict, agent: &Agent, hard: Duration, back_for: Option<Duration>) -> String {
    let reason = |s: &str| clean_reason(s);
    match v.state {
        State::Up => {
            let ramp = ramp_weight(back_for, agent.ramp, agent.min_weight);
            format!("up ready {}%\n", weight(v.lag, agent, hard).min(ramp))
        }
        // Full, not in maintenance: drain whatever `agent.maintenance` says, so it
        // keeps its sessions and comes back by itself (README, "Verdict policy").
        State::Maintenance if !v.maintenance => "drain\n".into(),
        State::Maintenance => match agent.maintenance {
            AgentMaintenance::Drain => "drain\n".into(),
            AgentMaintenance::Maint => "maint\n".into(),
        },
        State::Down if v.maintenance => {
            format!("drain down #maintenance: {}\n", reason(&v.reason))
        }
        State::Down => format!("down #{}\n", reason(&v.reason)),
        // No state word: HAProxy keeps the server as it is (see the module header).
        State::Starting => "#starting\n".into(),
    }
}

fn clean_reason(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The full answer to one agent connection, given what HAProxy sent (maybe nothing).
/// In fleet mode the first word names the target (`db1/replica`); a line that names
/// none (with several targets) or an unknown one is refused like a bad role.
pub(crate) fn answer(sent: &str, config: &Config, fleet: &Fleet, now: Instant) -> String {
    let target = route::agent(fleet, sent).and_then(|(t, rest)| Ok((route::pick(fleet, t)?, rest)));
    let (target, rest) = match target {
        Ok(x) => x,
        Err(e) => return format!("down #{}\n", clean_reason(&e)),
    };
    let ask = match parse_ask(&rest, config.agent.default_role) {
        Ok(a) => a,
        Err(e) => return format!("down #{e}\n"),
    };
    let check = &target.config.check;
    let snap = target.published.latest();
    let v = target.verdict(now, ask.role, ask.max_lag);
    // The ramp follows the role's verdict on the configured bound (the one the
    // checker tracks), whatever bound this request asked for.
    let back_for = snap
        .as_deref()
        .and_then(|s| s.policy.back_for(ask.role, now));
    line(
        &v,
        &config.agent,
        ask.max_lag.unwrap_or(check.max_replication_lag),
        back_for,
    )
}

/// The agent port's accept loop.
pub async fn agent_loop(
    listener: std::net::TcpListener,
    responder: Arc<Responder>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    accept_loop(
        listener,
        responder,
        shutdown,
        tracker,
        // HAProxy may send a line first: nothing to answer synchronously.
        |_, _, _| FirstLook::Continue(Vec::new()),
        |stream, _peer, responder, _| async move { handle(stream, &responder).await },
    )
    .await
}

async fn handle(mut stream: TcpStream, responder: &Responder) {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    let until = tokio::time::Instant::now() + SEND_WAIT;
    while buf.len() < 512 && !buf.contains(&b'\n') {
        match tokio::time::timeout_at(until, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let first = text.lines().next().unwrap_or("");
    let cfg = responder.config.load_full();
    let fleet = responder.fleet.load();
    let reply = answer(first, &cfg, &fleet, Instant::now());
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(reply.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        Agent {
            default_role: Role::Health,
            maintenance: AgentMaintenance::Drain,
            soft_lag: Duration::from_secs(10),
            min_weight: 10,
            ramp: Duration::from_secs(10),
        }
    }

    fn v(state: State, reason: &str, maintenance: bool, lag: Option<u64>) -> Verdict {
        Verdict {
            role: Role::Replica,
            state,
            reason: reason.into(),
            maintenance,
            lag,
        }
    }

    #[test]
    fn asks() {
        assert_eq!(
            parse_ask("", Role::Primary),
            Ok(Ask {
                role: Role::Primary,
                max_lag: None
            })
        );
        assert_eq!(
            parse_ask("replica max_lag=20s", Role::Health),
            Ok(Ask {
                role: Role::Replica,
                max_lag: Some(Duration::from_secs(20))
            })
        );
        assert_eq!(
            parse_ask("slave lag=5", Role::Health).unwrap().max_lag,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_ask("bogus", Role::Health),
            Err("unknown role bogus".into())
        );
        assert!(parse_ask("replica max_lag=x", Role::Health).is_err());
        assert!(parse_ask("replica lag=5 max_lag=10", Role::Health).is_err());
        assert!(parse_ask("replica lag=5 lag=5", Role::Health).is_err());
    }

    #[test]
    fn weights_fall_between_soft_and_hard() {
        let a = agent();
        let hard = Duration::from_secs(30);
        assert_eq!(weight(None, &a, hard), 100);
        assert_eq!(weight(Some(5), &a, hard), 100);
        assert_eq!(weight(Some(10), &a, hard), 100);
        assert_eq!(weight(Some(20), &a, hard), 55);
        assert_eq!(weight(Some(30), &a, hard), 10);
        assert_eq!(weight(Some(99), &a, hard), 10);
    }

    #[test]
    fn lines() {
        let a = agent();
        let hard = Duration::from_secs(30);
        assert_eq!(
            line(&v(State::Up, "", false, None), &a, hard, None),
            "up ready 100%\n"
        );
        assert_eq!(
            line(&v(State::Up, "", false, Some(20)), &a, hard, None),
            "up ready 55%\n"
        );
        assert_eq!(
            line(&v(State::Maintenance, "x", true, None), &a, hard, None),
            "drain\n"
        );
        let mut m = agent();
        m.maintenance = AgentMaintenance::Maint;
        assert_eq!(
            line(&v(State::Maintenance, "x", true, None), &m, hard, None),
            "maint\n"
        );
        assert_eq!(
            line(
                &v(State::Down, "connection refused", false, None),
                &a,
                hard,
                None
            ),
            "down #connection refused\n"
        );
        assert_eq!(
            line(
                &v(State::Down, "connection refused", true, None),
                &a,
                hard,
                None
            ),
            "drain down #maintenance: connection refused\n"
        );
        assert_eq!(
            line(&v(State::Starting, "", false, None), &a, hard, None),
            "#starting\n"
        );
        // Full (maintenance state without the flag): drain even when maintenance is maint.
        assert_eq!(
            line(
                &v(
                    State::Maintenance,
                    "full: too many connections",
                    false,
                    None
                ),
                &m,
                hard,
                None
            ),
            "drain\n"
        );
    }

    #[test]
    fn a_returning_role_ramps_and_the_lower_weight_wins() {
        let a = agent();
        let hard = Duration::from_secs(30);
        let up = |lag, back: Option<u64>| {
            line(
                &v(State::Up, "", false, lag),
                &a,
                hard,
                back.map(Duration::from_secs),
            )
        };
        assert_eq!(up(None, Some(0)), "up ready 10%\n");
        assert_eq!(up(None, Some(5)), "up ready 55%\n");
        assert_eq!(up(None, Some(10)), "up ready 100%\n");
        assert_eq!(up(None, None), "up ready 100%\n");
        // Lag weight 55% beats a ramp at 82%; a ramp at 10% beats lag weight 55%.
        assert_eq!(up(Some(20), Some(8)), "up ready 55%\n");
        assert_eq!(up(Some(20), Some(0)), "up ready 10%\n");
    }
}
