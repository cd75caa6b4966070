//! Request → response for every HTTP path: the routing table in the README
//! ("HTTP endpoints").
//!
//! Invariants: never touches MySQL (one snapshot load, one pure evaluation); an
//! unknown path is `400` listing the known ones (a `404` would drain every server
//! under `disable-on-404` after a typo); `/status` and `/metrics` only for admin
//! peers; no server-supplied text in health bodies.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::{parse_duration, Config};
use crate::fleet::{route, Fleet, Target};
use crate::respond::http::{query_pairs, sanitize, Request, Response, JSON, METRICS};
use crate::respond::status;
use crate::role::Role;
use crate::verdict::State;

pub(crate) const KNOWN_PATHS: &str = "/, /health, /primary (/master, /read-write, /rw), /replica (/slave), /read-only (/ro), /live, /status, /metrics";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Role(Role),
    Live,
    Status,
    Metrics,
}

impl Endpoint {
    pub fn from_path(path: &str) -> Option<Endpoint> {
        // A trailing slash is harmless (`/primary/`).
        let p = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        Some(match p {
            "/live" => Endpoint::Live,
            "/status" => Endpoint::Status,
            "/metrics" => Endpoint::Metrics,
            "/" | "*" => Endpoint::Role(Role::Health),
            _ => Endpoint::Role(Role::parse(p.strip_prefix('/')?).filter(|_| p != "/")?),
        })
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Endpoint::Role(r) => r.name(),
            Endpoint::Live => "live",
            Endpoint::Status => "status",
            Endpoint::Metrics => "metrics",
        }
    }
}

/// What the responder needs besides the request.
pub(crate) struct EndpointInputs<'a> {
    /// Settings of the process (listen, agent, log).
    pub(crate) config: &'a Config,
    pub(crate) fleet: &'a Fleet,
    pub(crate) peer: IpAddr,
    pub(crate) now: Instant,
    /// Rendered `/metrics` text, produced by the caller only when asked.
    pub(crate) metrics: &'a dyn Fn() -> String,
    /// The HAProxy pushers' state for `/status` (none in one-shot modes).
    pub(crate) push: Option<&'a crate::push::stats::Stats>,
    /// The discoverers' state for `/status` (none in one-shot modes).
    pub(crate) discovery: Option<&'a crate::metrics::DiscoveryStats>,
}

/// The answer to one parsed request, and the endpoint label for metrics.
pub(crate) fn respond(req: &Request, v: &EndpointInputs<'_>) -> (Response, &'static str) {
    // Fleet mode: which target the request names, and the path left for the table.
    let (named, path) = match route::http(v.fleet, req.server_state.as_deref(), &req.path) {
        Ok(r) => r,
        Err(e) => return (Response::text(400, e), "other"),
    };
    let Some(ep) = Endpoint::from_path(path) else {
        let body = format!(
            "unknown path {}; known paths: {KNOWN_PATHS}",
            sanitize(&req.path)
        );
        return (Response::text(400, body), "other");
    };
    let label = ep.label();
    let params = req.query.as_deref().map(query_pairs).unwrap_or_default();
    let r = match ep {
        Endpoint::Role(role) => match route::pick(v.fleet, named) {
            Ok(t) => role_response(role, &params, t, v.now),
            Err(e) => Response::text(400, e),
        },
        Endpoint::Live => no_params(&params).unwrap_or_else(|| live(v)),
        Endpoint::Status | Endpoint::Metrics if !admin(v) => {
            Response::text(403, "forbidden: not in listen.admin_allow")
        }
        Endpoint::Status => no_params(&params).unwrap_or_else(|| {
            Response::with_type(
                200,
                JSON,
                status::render(v.config, v.fleet, v.push, v.discovery, v.now),
            )
        }),
        Endpoint::Metrics => {
            no_params(&params).unwrap_or_else(|| Response::with_type(200, METRICS, (v.metrics)()))
        }
    };
    (r, label)
}

fn admin(v: &EndpointInputs<'_>) -> bool {
    crate::respond::access::allowed(&v.config.listen.admin_allow, v.peer)
}

fn no_params(params: &[(String, String)]) -> Option<Response> {
    params
        .first()
        .map(|(k, _)| Response::text(400, format!("unknown parameter {}", sanitize(k))))
}

/// `max_lag` (alias `lag`): seconds or a duration, at most once: with two bounds in
/// one request either choice would silently ignore the other.
pub fn lag_param(role: Role, params: &[(String, String)]) -> Result<Option<Duration>, String> {
    let mut lag = None;
    for (k, val) in params {
        match k.as_str() {
            "max_lag" | "lag" if role.takes_lag() && lag.is_some() => {
                return Err(format!(
                    "parameter {} given twice (lag and max_lag are the same bound)",
                    sanitize(k)
                ))
            }
            "max_lag" | "lag" if role.takes_lag() => match parse_duration(val) {
                Some(d) => lag = Some(d),
                None => {
                    return Err(format!(
                        "invalid {}={}: expected seconds or a duration such as 10s or 1m",
                        sanitize(k),
                        sanitize(val)
                    ))
                }
            },
            _ => {
                return Err(format!(
                    "unknown parameter {} for {}",
                    sanitize(k),
                    role.name()
                ))
            }
        }
    }
    Ok(lag)
}

fn role_response(role: Role, params: &[(String, String)], t: &Target, now: Instant) -> Response {
    let max_lag = match lag_param(role, params) {
        Ok(l) => l,
        Err(e) => return Response::text(400, e),
    };
    let check = &t.config.check;
    let verdict = t.verdict(now, role, max_lag);
    let status = match verdict.state {
        State::Up => 200,
        State::Maintenance => check.maintenance_status,
        State::Down | State::Starting => 503,
    };
    Response::text(status, verdict.line())
}

/// Fleet-wide: down when any target's prober loop is stuck past its `stale_after`
/// (with one target, exactly that target's loop).
fn live(v: &EndpointInputs<'_>) -> Response {
    let mut started = false;
    for t in v.fleet.targets() {
        let Some(age) = t.published.since_progress(v.now) else {
            continue;
        };
        started = true;
        if age > t.config.check.stale_after {
            let who = if v.fleet.is_named() {
                format!(" ({})", t.name)
            } else {
                String::new()
            };
            return Response::text(
                503,
                format!(
                    "live: down - checker stuck for {:.1}s{who}",
                    age.as_secs_f64()
                ),
            );
        }
    }
    if started {
        Response::text(200, "live: up")
    } else {
        Response::text(503, "live: starting")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_aliases() {
        use Endpoint::*;
        assert_eq!(
            Endpoint::from_path("/"),
            Some(Role(crate::role::Role::Health))
        );
        assert_eq!(
            Endpoint::from_path("/health"),
            Some(Role(crate::role::Role::Health))
        );
        for p in ["/primary", "/master", "/read-write", "/rw", "/primary/"] {
            assert_eq!(
                Endpoint::from_path(p),
                Some(Role(crate::role::Role::Primary)),
                "{p}"
            );
        }
        for p in ["/replica", "/slave"] {
            assert_eq!(
                Endpoint::from_path(p),
                Some(Role(crate::role::Role::Replica))
            );
        }
        for p in ["/read-only", "/ro"] {
            assert_eq!(
                Endpoint::from_path(p),
                Some(Role(crate::role::Role::ReadOnly))
            );
        }
        assert_eq!(Endpoint::from_path("/live"), Some(Live));
        assert_eq!(Endpoint::from_path("/status"), Some(Status));
        assert_eq!(Endpoint::from_path("/metrics"), Some(Metrics));
        assert_eq!(Endpoint::from_path("/primry"), None);
        assert_eq!(Endpoint::from_path("//"), None);
        assert_eq!(
            Endpoint::from_path("/Primary"),
            Some(Role(crate::role::Role::Primary))
        );
    }

    #[test]
    fn lag_parameters() {
        let p = |s: &str| query_pairs(s);
        assert_eq!(
            lag_param(Role::Replica, &p("lag=10")),
            Ok(Some(Duration::from_secs(10)))
        );
        assert_eq!(
            lag_param(Role::ReadOnly, &p("max_lag=1m")),
            Ok(Some(Duration::from_secs(60)))
        );
        assert!(lag_param(Role::Replica, &p("lag=soon"))
            .unwrap_err()
            .contains("lag=soon"));
        assert!(lag_param(Role::Primary, &p("lag=1"))
            .unwrap_err()
            .contains("unknown parameter lag"));
        assert!(lag_param(Role::Replica, &p("lga=1")).is_err());
        assert_eq!(lag_param(Role::Health, &p("")), Ok(None));
    }

    #[test]
    fn lag_given_twice_is_refused() {
        let p = |s: &str| query_pairs(s);
        let e = lag_param(Role::Replica, &p("lag=5&lag=10")).unwrap_err();
        assert!(e.starts_with("parameter lag given twice"), "{e}");
        let e = lag_param(Role::ReadOnly, &p("lag=5&max_lag=10")).unwrap_err();
        assert!(e.starts_with("parameter max_lag given twice"), "{e}");
        let e = lag_param(Role::Replica, &p("max_lag=5&lag=5")).unwrap_err();
        assert!(e.starts_with("parameter lag given twice"), "{e}");
    }
}
