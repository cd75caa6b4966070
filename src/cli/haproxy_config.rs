//! `mysqlchk haproxy-config`: print a haproxy.cfg that works out of the box with one
//! mysqlchk per server. `run` checks the flags; the rest is pure text generation,
//! unit-tested (the integration tests run `haproxy -dW -c` on every topology, where
//! warnings are errors).
//!
//! What it encodes, and why:
//! - **write listener, `balance first`** checking `/primary`: exactly one writer even
//!   when two servers pass `/primary` for a moment during a switchover; Galera gets it
//!   too (one writer avoids certification conflicts);
//! - **`on-marked-down shutdown-sessions`** on the writer: sessions to a server marked
//!   down are cut, so clients of a demoted or stuck primary reconnect to the new one
//!   (not on the readers: a read in flight on a replica that fell behind may finish);
//! - **`http-check disable-on-404` on both listeners**: maintenance answers 404, which
//!   puts the server in NOLB (no new connections, open ones finish) instead of marking it
//!   down, so maintenance on the writer does not fire `shutdown-sessions`; a real failure
//!   (503) still marks it down;
//! - **writer timings `inter 1s fastinter 1s downinter 1s rise 2 fall 2`**: a promoted
//!   primary gets writes ~1–3 s after mysqlchk's default 1 s round sees it, where the
//!   shared `downinter 5s rise 3` took up to ~8 s; with checks 1 s apart each of the
//!   two passes (or failures) comes from a different mysqlchk round, so one odd round
//!   flips nothing;
//! - **read listener, `balance leastconn`** checking `/replica?lag=<hard bound>` with
//!   `http-check disable-on-404` (maintenance drains gracefully) and, with an agent
//!   port, agent-check weights for the soft lag range;
//! - `retries 3` + `option redispatch`: a refused connection goes to another server;
//! - `default-server inter 2s fastinter 1s downinter 5s rise 3 fall 2` (the readers):
//!   down within ~2 s of a failed check, back after 3 good ones;
//! - client/server timeouts fit for pooled connections (MySQL's `wait_timeout` is 8 h;
//!   TCP keep-alives find dead peers), `timeout check` short since mysqlchk answers at
//!   once;
//! - `server-state-file` + `load-server-state-from-file`: after a reload, drained or
//!   DOWN servers stay so instead of counting as UP until their first check;
//! - `stats socket <--stats-socket> … expose-fd listeners`: where the README's reload
//!   procedure dumps the server state from, and where `haproxy -x` takes the listening
//!   sockets from (without it, `-sf` leaves a moment with the ports closed and a
//!   client's connect fails);
//! - `--fleet ADDR:PORT` (README, "Fleet mode"): every check goes to one fleet checker
//!   (`check addr … port …`) with `http-check send-state`, whose `address=`/`port=`/
//!   `name=` tell the checker which server is meant; `--fleet-agent` adds agent-checks
//!   that name the server in their first word (`agent-send "db2/replica …"`);
//! - `--read-fallback`: when no replica passes (e.g. the primary died and every replica's
//!   IO thread is `Connecting`), reads go to any healthy server;
//! - `--push`: after the HAProxy sections, the `[[haproxy]]` table for mysqlchk.toml,
//!   commented out (the file stays a valid haproxy.cfg), naming the same admin socket and
//!   each generated backend with the role its listener checks, so the pushed verdicts
//!   and HAProxy's own checks agree (README "Pushing state to HAProxy").

use std::fmt::Write as _;
use std::time::Duration;

use super::args::{HaproxyArgs, Topology};

impl Topology {
    /// The `--topology` word, for the header comment.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Replication => "replication",
            Topology::Galera => "galera",
            Topology::GroupReplication => "group-replication",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    /// `host:port` as HAProxy wants it (`[v6]:port` for IPv6).
    pub address: String,
    /// This server's own mysqlchk ports (several mysqld on one host run one mysqlchk
    /// each); `None`: the common `--check-port` / `--agent-port`.
    pub check_port: Option<u16>,
    pub agent_port: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub servers: Vec<Server>,
    pub topology: Topology,
    pub check_port: u16,
    pub agent_port: Option<u16>,
    pub bind: String,
    pub write_port: u16,
    pub read_port: u16,
    pub max_lag: Duration,
    pub read_fallback: bool,
    pub state_file: String,
    /// The admin socket (`stats socket … expose-fd listeners`) the README's reload
    /// procedure dumps the server state from and passes to `haproxy -x`.
    pub stats_socket: String,
    pub stats: Option<String>,
    /// One fleet checker's HTTP and agent addresses instead of a mysqlchk per server.
    pub fleet: Option<std::net::SocketAddr>,
    pub fleet_agent: Option<std::net::SocketAddr>,
    /// Append the `[[haproxy]]` table for mysqlchk.toml (commented out).
    pub push: bool,
}

/// The write listener's own check timings (see the module header); the read side keeps
/// the `default-server` ones.
pub const WRITE_TIMINGS: &str = "inter 1s fastinter 1s downinter 1s rise 2 fall 2";

/// `db1=10.0.0.2:3306,db2=10.0.0.3:3306` (the port defaults to 3306); a server's own
/// mysqlchk ports may follow: `db3=10.0.0.4:3307@9210/9211` (check port, agent port).
pub fn parse_servers(s: &str) -> Result<Vec<Server>, String> {
    let mut out: Vec<Server> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("--servers: {item:?} is not NAME=HOST:PORT"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "--servers: server name {name:?} must be letters, digits, '-', '_' or '.'"
            ));
        }
        if out.iter().any(|s| s.name == name) {
            return Err(format!("--servers: server name {name:?} used twice"));
        }
        let (addr, ports) = match addr.split_once('@') {
            Some((a, p)) => (a, Some(p)),
            None => (addr, None),
        };
        let address = normalise_address(addr.trim())
            .ok_or_else(|| format!("--servers: {addr:?} is not HOST:PORT"))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("--servers: {item:?}: {p:?} is not a port"))
        };
        let (check_port, agent_port) = match ports.map(|p| p.split_once('/')) {
            None => (None, None),
            Some(None) => (Some(port(ports.unwrap_or_default())?), None),
            Some(Some((c, a))) => (Some(port(c)?), Some(port(a)?)),
        };
        out.push(Server {
            name: name.to_string(),
            address,
            check_port,
            agent_port,
        });
    }
    if out.is_empty() {
        return Err("--servers: at least one NAME=HOST:PORT is needed".into());
    }
    Ok(out)
}

fn normalise_address(a: &str) -> Option<String> {
    if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
        return Some(sa.to_string());
    }
    if let Ok(ip) = a.parse::<std::net::IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 3306).to_string());
    }
    let (host, port) = match a.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => (a, 3306),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    host_ok.then(|| format!("{host}:{port}"))
}

/// The mysqlchk ports for the header comment: `port 9200` when every server uses the
/// same, else each server's (`ports db1 9200, db3 9210`); a server's own ports from
/// `--servers` take precedence over `--check-port` / `--agent-port`.
fn describe_ports(o: &Options) -> String {
    let list = |port: &dyn Fn(&Server) -> Option<u16>| -> Option<String> {
        let ports: Vec<(&str, u16)> = o
            .servers
            .iter()
            .filter_map(|srv| port(srv).map(|p| (srv.name.as_str(), p)))
            .collect();
        let first = ports.first()?.1;
        if ports.len() == o.servers.len() && ports.iter().all(|(_, p)| *p == first) {
            return Some(format!("port {first}"));
        }
        let each: Vec<String> = ports.iter().map(|(n, p)| format!("{n} {p}")).collect();
        Some(format!("ports {}", each.join(", ")))
    };
    let check = list(&|srv| Some(srv.check_port.unwrap_or(o.check_port))).unwrap_or_default();
    match list(&|srv| srv.agent_port.or(o.agent_port)) {
        Some(agent) => format!("HTTP checks on {check}, agent-check on {agent}"),
        None => format!("HTTP checks on {check}"),
    }
}

/// `check port P` (a mysqlchk beside the server) or `check addr A port P` (the fleet
/// checker).
fn check_part(o: &Options, srv: &Server) -> String {
    match o.fleet {
        Some(f) => format!("check addr {} port {}", f.ip(), f.port()),
        None => format!("check port {}", srv.check_port.unwrap_or(o.check_port)),
    }
}

/// The line that makes HAProxy name the server in every check (fleet mode only).
fn send_state(o: &Options) -> &'static str {
    if o.fleet.is_some() {
        "\n    # the fleet checker tells the servers apart by this header (address, port, name)\n    http-check send-state"
    } else {
        ""
    }
}

pub fn render(o: &Options) -> String {
    let mut s = String::new();
    let lag = o.max_lag.as_secs().max(1);
    let w = |s: &mut String, line: &str| {
        s.push_str(line);
        s.push('\n');
    };
    let _ = writeln!(
        s,
        "# Generated by mysqlchk {} haproxy-config (topology: {}).\n\
         # {}.\n\
         # Before the first start: echo 1 > {state}   (an empty server-state file)\n\
         # Reload (README): echo \"show servers state\" | socat stdio {sock} > {state}\n\
         #   haproxy -c -f CFG && haproxy -f CFG -p PIDFILE -x {sock} -sf $(cat PIDFILE)",
        env!("CARGO_PKG_VERSION"),
        o.topology.name(),
        match o.fleet {
            Some(f) => format!(
                "One fleet checker at {f} checks every server (README, \"Fleet mode\"): \
                 run one per HAProxy node, on loopback"
            ),
            None => format!("Every server runs mysqlchk: {}", describe_ports(o)),
        },
        state = o.state_file,
        sock = o.stats_socket,
    );
    w(&mut s, "global");
    let _ = writeln!(s, "    server-state-file {}", o.state_file);
    // expose-fd listeners: a reload with `-x` takes over the listening sockets, so no
    // client's connect meets a closed port (README, "Reloading HAProxy").
    let _ = writeln!(
        s,
        "    stats socket {} mode 600 level admin expose-fd listeners",
        o.stats_socket
    );
    w(&mut s, "");
    w(&mut s, "defaults mysql");
    for line in [
        "    mode tcp",
        "    timeout connect 3s",
        "    # pooled MySQL connections sit idle for long: MySQL's wait_timeout is 8h",
        "    timeout client 8h",
        "    timeout server 8h",
        "    option clitcpka",
        "    option srvtcpka",
        "    # mysqlchk answers from memory: a check that takes long means the host is in trouble",
        "    timeout check 2s",
        "    # a refused connection is retried on another server",
        "    retries 3",
        "    option redispatch",
        "    # after a reload, drained or DOWN servers stay so",
        "    load-server-state-from-file global",
        "    # weight 100: agent percentages scale the initial weight (1% of 1 is 0)",
        "    default-server inter 2s fastinter 1s downinter 5s rise 3 fall 2 weight 100",
    ] {
        w(&mut s, line);
    }
    if let Some(stats) = &o.stats {
        let _ = writeln!(
            s,
            "\nlisten mysql-stats\n    mode http\n    bind {stats}\n    stats enable\n    stats uri /\n    stats refresh 5s"
        );
    }

    // Write listener.
    let _ = writeln!(
        s,
        "\nlisten mysql-write\n    bind {}:{}\n    # one writer, even when two servers pass /primary during a switchover\n    balance first\n    option httpchk\n    http-check send meth GET uri /primary\n    # maintenance answers 404: drain (open write sessions finish), not DOWN (which\n    # would cut them: on-marked-down shutdown-sessions)\n    http-check disable-on-404\n    # a promoted primary gets writes within ~1-3 s of mysqlchk's 1 s round; checks\n    # 1 s apart make each of rise/fall a separate round, so one odd round flips nothing\n    default-server {WRITE_TIMINGS}{}",
        o.bind,
        o.write_port,
        send_state(o)
    );
    for srv in &o.servers {
        // Sessions to a server marked down are cut: clients of a demoted or frozen
        // primary reconnect to the new one instead of writing into the void. (Not on
        // the read side: reads in flight on a replica that fell behind may finish.)
        let _ = writeln!(
            s,
            "    server {} {} {} on-marked-down shutdown-sessions",
            srv.name,
            srv.address,
            check_part(o, srv)
        );
    }

    // Read side.
    let (read_uri, agent_send) = match o.topology {
        Topology::Replication => (
            format!("/replica?lag={lag}"),
            Some(format!("replica max_lag={lag}s")),
        ),
        Topology::GroupReplication => ("/replica".to_string(), Some("replica".to_string())),
        Topology::Galera => ("/read-only".to_string(), None),
    };
    let fallback_uri = match o.topology {
        Topology::GroupReplication => "/read-only",
        _ => "/health",
    };
    if o.read_fallback {
        let _ = writeln!(
            s,
            "\nfrontend mysql-read\n    bind {}:{}\n    # no replica passes (e.g. the primary died): read from any healthy server\n    use_backend mysql-read-fallback if {{ nbsrv(mysql-read-replicas) eq 0 }}\n    default_backend mysql-read-replicas\n\nbackend mysql-read-replicas",
            o.bind, o.read_port
        );
    } else {
        let _ = writeln!(
            s,
            "\nlisten mysql-read\n    bind {}:{}",
            o.bind, o.read_port
        );
    }
    let _ = writeln!(
        s,
        "    balance leastconn\n    option httpchk\n    http-check send meth GET uri {read_uri}\n    # maintenance answers 404: drain gracefully (no new connections, open ones finish)\n    http-check disable-on-404{}",
        send_state(o)
    );
    for srv in &o.servers {
        let agent = match (
            o.fleet,
            o.fleet_agent,
            srv.agent_port.or(o.agent_port),
            &agent_send,
        ) {
            // The fleet checker's agent port: the first word names the server.
            (Some(_), Some(a), _, send) => format!(
                " agent-check agent-addr {} agent-port {} agent-inter 2s agent-send \"{}/{}\\n\"",
                a.ip(),
                a.port(),
                srv.name,
                send.as_deref().unwrap_or("read-only")
            ),
            (Some(_), None, _, _) => String::new(),
            (None, _, Some(p), Some(send)) => {
                format!(" agent-check agent-port {p} agent-inter 2s agent-send \"{send}\\n\"")
            }
            (None, _, Some(p), None) => format!(" agent-check agent-port {p} agent-inter 2s"),
            (None, _, None, _) => String::new(),
        };
        let _ = writeln!(
            s,
            "    server {} {} {}{agent}",
            srv.name,
            srv.address,
            check_part(o, srv)
        );
    }
    if o.read_fallback {
        let _ = writeln!(
            s,
            "\nbackend mysql-read-fallback\n    balance leastconn\n    option httpchk\n    http-check send meth GET uri {fallback_uri}\n    http-check disable-on-404{}",
            send_state(o)
        );
        for srv in &o.servers {
            let _ = writeln!(
                s,
                "    server {} {} {}",
                srv.name,
                srv.address,
                check_part(o, srv)
            );
        }
    }
    if o.push {
        s.push('\n');
        for line in push_comment(o).lines() {
            let _ = writeln!(s, "##{}{line}", if line.is_empty() { "" } else { " " });
        }
        for line in push_table(o).lines() {
            let _ = writeln!(s, "# {line}");
        }
    }
    s
}

/// What the listeners check: (backend, role) for every generated backend, in the
/// order of the file. The roles are the paths' (`/primary`, `/replica?lag=…`,
/// `/read-only`, `/health`), so a pushed verdict never contradicts a check.
fn push_backends(o: &Options) -> Vec<(&'static str, &'static str)> {
    let read = match o.topology {
        Topology::Replication | Topology::GroupReplication => "replica",
        Topology::Galera => "read-only",
    };
    let mut b = vec![("mysql-write", "primary")];
    if o.read_fallback {
        b.push(("mysql-read-replicas", read));
        b.push((
            "mysql-read-fallback",
            match o.topology {
                Topology::GroupReplication => "read-only",
                _ => "health",
            },
        ));
    } else {
        b.push(("mysql-read", read));
    }
    b
}

/// `--push`: the `[[haproxy]]` table itself (uncommented), as TOML.
pub fn push_table(o: &Options) -> String {
    let backends: Vec<String> = push_backends(o)
        .iter()
        .map(|(b, r)| format!("\"{b}\" = \"{r}\""))
        .collect();
    let names: Vec<&str> = o.servers.iter().map(|s| s.name.as_str()).collect();
    let table = format!(
        "[[haproxy]]\nsocket = {:?}\nbackends = {{ {} }}\n",
        o.stats_socket,
        backends.join(", "),
    );
    if o.fleet.is_some() {
        // A fleet checker matches each line to its target by address, else by name.
        return table;
    }
    format!(
        "{table}# server = \"{}\"   # this server's name ({}) when mysql.host:mysql.port is not its address here\n",
        names.first().copied().unwrap_or("db1"),
        names.join(", ")
    )
}

/// The explanation printed above the commented table.
fn push_comment(o: &Options) -> String {
    let mut c = String::from(if o.fleet.is_some() {
        "mysqlchk.toml: push verdicts to this HAProxy at once (README \"Pushing state to HAProxy\").\n\
         Paste the table below, without the leading \"# \", into the mysqlchk.toml of the fleet\n\
         checker on this HAProxy node: each server line is matched to the [[target]] at its\n\
         address and port, else to the target of its name. mysqlchk needs write access to the\n\
         socket (mode 660 and group mysqlchk on the stats socket line).\n"
    } else {
        "mysqlchk.toml: push verdicts to this HAProxy at once (README \"Pushing state to HAProxy\").\n\
         Paste the table below, without the leading \"# \", into every server's mysqlchk.toml;\n\
         one [[haproxy]] table per HAProxy node. mysqlchk needs write access to the socket\n\
         (mode 660 and group mysqlchk on the stats socket line); from another host, add\n\
         \"stats socket ipv4@ADDR:PORT level admin\" and use address = \"ADDR:PORT\" instead.\n"
    });
    if o.topology == Topology::Replication {
        let _ = writeln!(
            c,
            "The replica verdict uses check.max_replication_lag: set it to \"{}s\" (the read listener's ?lag=).",
            o.max_lag.as_secs().max(1)
        );
    }
    c
}

/// The command: the flags clap cannot check (exit 2 and one line on stderr when one
/// is wrong, as clap does for the others), then the generated file on stdout.
pub(super) fn run(a: HaproxyArgs) -> i32 {
    let servers = match parse_servers(&a.servers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mysqlchk haproxy-config: {e}");
            return 2;
        }
    };
    let Some(max_lag) = crate::config::parse_duration(&a.max_lag) else {
        eprintln!(
            "mysqlchk haproxy-config: --max-lag {:?}: expected seconds or a duration",
            a.max_lag
        );
        return 2;
    };
    let addr = |flag: &str, v: &Option<String>| match v {
        None => Ok(None),
        Some(text) => text.parse::<std::net::SocketAddr>().map(Some).map_err(|_| {
            format!("{flag} {text:?}: expected ADDR:PORT with an IP address, e.g. 127.0.0.1:9200")
        }),
    };
    let (fleet, fleet_agent) = match (
        addr("--fleet", &a.fleet),
        addr("--fleet-agent", &a.fleet_agent),
    ) {
        (Ok(f), Ok(g)) => (f, g),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mysqlchk haproxy-config: {e}");
            return 2;
        }
    };
    print!(
        "{}",
        render(&Options {
            servers,
            topology: a.topology,
            check_port: a.check_port,
            agent_port: a.agent_port,
            bind: a.bind,
            write_port: a.write_port,
            read_port: a.read_port,
            max_lag,
            read_fallback: a.read_fallback,
            state_file: a.state_file,
            stats_socket: a.stats_socket,
            stats: a.stats,
            fleet,
            fleet_agent,
            push: a.push,
        })
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(t: Topology) -> Options {
        Options {
            servers: parse_servers("db1=10.0.0.2:3306,db2=10.0.0.3").unwrap(),
            topology: t,
            check_port: 9200,
            agent_port: Some(9201),
            bind: "0.0.0.0".into(),
            write_port: 3306,
            read_port: 3307,
            max_lag: Duration::from_secs(30),
            read_fallback: false,
            state_file: "/var/lib/haproxy/server-state".into(),
            stats_socket: "/run/haproxy/admin.sock".into(),
            stats: None,
            fleet: None,
            fleet_agent: None,
            push: false,
        }
    }

    #[test]
    fn fleet_checks_go_to_the_one_checker_with_send_state() {
        let mut o = opts(Topology::Replication);
        o.read_fallback = true;
        o.fleet = Some("127.0.0.1:9200".parse().unwrap());
        o.fleet_agent = Some("127.0.0.1:9201".parse().unwrap());
        let c = render(&o);
        assert!(
            c.contains("# One fleet checker at 127.0.0.1:9200 checks every server"),
            "{c}"
        );
        assert!(c.contains(
            "server db1 10.0.0.2:3306 check addr 127.0.0.1 port 9200 on-marked-down shutdown-sessions"
        ));
        assert!(
            c.contains(
                "server db2 10.0.0.3:3306 check addr 127.0.0.1 port 9200 agent-check agent-addr \
             127.0.0.1 agent-port 9201 agent-inter 2s agent-send \"db2/replica max_lag=30s\\n\""
            ),
            "{c}"
        );
        // Every listener and backend sends the server's state: write, read, fallback.
        assert_eq!(c.matches("http-check send-state").count(), 3, "{c}");
        assert_eq!(c.matches("option httpchk").count(), 3);
        assert!(!c.contains("check port 9200"));
        // Without --fleet-agent, no agent-check (a per-host agent port means nothing).
        o.fleet_agent = None;
        assert!(!render(&o).contains("agent-check"));
        // Galera's readers name the read-only role.
        o.fleet_agent = Some("127.0.0.1:9201".parse().unwrap());
        assert!(render(&opts_fleet(Topology::Galera)).contains("agent-send \"db1/read-only\\n\""));
    }

    fn opts_fleet(t: Topology) -> Options {
        let mut o = opts(t);
        o.fleet = Some("127.0.0.1:9200".parse().unwrap());
        o.fleet_agent = Some("127.0.0.1:9201".parse().unwrap());
        o
    }

    #[test]
    fn servers() {
        let s = parse_servers("db1=10.0.0.2:3306, db2=[::1]:3307,db3=db-3.example:3306").unwrap();
        assert_eq!(s[0].address, "10.0.0.2:3306");
        assert_eq!(s[1].address, "[::1]:3307");
        assert_eq!(s[2].address, "db-3.example:3306");
        assert!(parse_servers("").is_err());
        assert!(parse_servers("db1").is_err());
        assert!(parse_servers("d b=1.2.3.4:1").is_err());
        assert!(parse_servers("db1=1.2.3.4:99999").is_err());
        assert!(parse_servers("db1=1.2.3.4,db1=1.2.3.5").is_err());
        let own = parse_servers("a=127.0.0.1:3307@9210/9211,b=127.0.0.1:3308@9220").unwrap();
        assert_eq!(
            (own[0].check_port, own[0].agent_port),
            (Some(9210), Some(9211))
        );
        assert_eq!((own[1].check_port, own[1].agent_port), (Some(9220), None));
        assert!(parse_servers("a=127.0.0.1@x").is_err());
        assert!(parse_servers("a=127.0.0.1@9200/0").is_err());
        let mut o = opts(Topology::Replication);
        o.servers = own;
        let c = render(&o);
        assert!(c.contains("server a 127.0.0.1:3307 check port 9210 on-marked-down"));
        assert!(c.contains("server a 127.0.0.1:3307 check port 9210 agent-check agent-port 9211"));
        assert!(c.contains("server b 127.0.0.1:3308 check port 9220 agent-check agent-port 9201"));
    }

    /// The header names the ports the server lines use, not just the common ones.
    #[test]
    fn header_names_each_servers_ports() {
        let header = |o: &Options| render(o).lines().nth(1).unwrap_or_default().to_string();
        assert_eq!(
            header(&opts(Topology::Replication)),
            "# Every server runs mysqlchk: HTTP checks on port 9200, agent-check on port 9201."
        );
        let mut o = opts(Topology::Replication);
        o.servers = parse_servers("db1=10.0.0.2,db2=10.0.0.3@9210/9211,db3=10.0.0.4@9200").unwrap();
        assert_eq!(
            header(&o),
            "# Every server runs mysqlchk: HTTP checks on ports db1 9200, db2 9210, db3 9200, \
             agent-check on ports db1 9201, db2 9211, db3 9201."
        );
        o.agent_port = None;
        o.servers = parse_servers("db1=10.0.0.2@9210,db2=10.0.0.3@9220/9221").unwrap();
        assert_eq!(
            header(&o),
            "# Every server runs mysqlchk: HTTP checks on ports db1 9210, db2 9220, \
             agent-check on ports db2 9221."
        );
        o.servers = parse_servers("db1=10.0.0.2@9210,db2=10.0.0.3@9210").unwrap();
        assert_eq!(
            header(&o),
            "# Every server runs mysqlchk: HTTP checks on port 9210."
        );
    }

    #[test]
    fn replication_config_has_the_essentials() {
        let c = render(&opts(Topology::Replication));
        for needle in [
            "balance first",
            "http-check send meth GET uri /primary",
            "balance leastconn",
            "http-check send meth GET uri /replica?lag=30",
            "http-check disable-on-404",
            "on-marked-down shutdown-sessions",
            "retries 3",
            "option redispatch",
            "default-server inter 2s fastinter 1s downinter 5s rise 3 fall 2 weight 100",
            "server-state-file /var/lib/haproxy/server-state",
            "\n    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners\n",
            "-x /run/haproxy/admin.sock -sf",
            "load-server-state-from-file global",
            "timeout check",
            "agent-send \"replica max_lag=30s\\n\"",
            "server db2 10.0.0.3:3306 check port 9200 on-marked-down shutdown-sessions",
            "http-check send meth GET uri /primary\n    \
             # maintenance answers 404",
        ] {
            assert!(c.contains(needle), "missing {needle:?} in\n{c}");
        }
        assert!(!c.contains("mysql-read-fallback"));
    }

    /// The writer moves sooner than the shared defaults allow (rise 3, downinter 5s
    /// took up to ~8 s after a promotion); the readers keep them.
    #[test]
    fn writer_has_its_own_timings() {
        let c = render(&opts(Topology::Replication));
        let section = |name: &str| {
            c.split("\n\n")
                .find(|p| p.starts_with(name))
                .unwrap_or_default()
                .to_string()
        };
        assert!(
            section("listen mysql-write").contains(
                "\n    default-server inter 1s fastinter 1s downinter 1s rise 2 fall 2\n"
            ),
            "{c}"
        );
        assert!(
            !section("listen mysql-read").contains("default-server"),
            "{c}"
        );
    }

    /// Maintenance answers 404: on the writer it must drain (NOLB), not count as a
    /// failed check, or `on-marked-down shutdown-sessions` cuts every write session.
    #[test]
    fn every_listener_drains_on_404() {
        for t in [
            Topology::Replication,
            Topology::Galera,
            Topology::GroupReplication,
        ] {
            let mut o = opts(t);
            o.read_fallback = true;
            let c = render(&o);
            for section in c.split("\n\n").filter(|p| p.contains("option httpchk")) {
                assert!(
                    section.contains("\n    http-check disable-on-404"),
                    "no disable-on-404 in\n{section}"
                );
            }
            let write = c
                .split("\n\n")
                .find(|p| p.starts_with("listen mysql-write"))
                .expect("write listener");
            assert!(write.contains("disable-on-404"), "{write}");
        }
    }

    /// The commented table from `--push`, uncommented as the operator would.
    fn pasted(c: &str) -> String {
        c.lines()
            .filter_map(|l| l.strip_prefix("# "))
            .skip_while(|l| !l.starts_with("[[haproxy]]"))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// `--push` adds a table mysqlchk accepts, naming the generated admin socket and each
    /// generated backend with the role its listener checks; the rest of the file is
    /// unchanged and every added line is a comment for HAProxy.
    #[test]
    fn push_prints_the_matching_haproxy_table() {
        let cases = [
            (
                Topology::Replication,
                false,
                &[("mysql-write", "primary"), ("mysql-read", "replica")][..],
            ),
            (
                Topology::Galera,
                false,
                &[("mysql-write", "primary"), ("mysql-read", "read-only")][..],
            ),
            (
                Topology::GroupReplication,
                false,
                &[("mysql-write", "primary"), ("mysql-read", "replica")][..],
            ),
            (
                Topology::Replication,
                true,
                &[
                    ("mysql-write", "primary"),
                    ("mysql-read-replicas", "replica"),
                    ("mysql-read-fallback", "health"),
                ][..],
            ),
            (
                Topology::GroupReplication,
                true,
                &[
                    ("mysql-write", "primary"),
                    ("mysql-read-replicas", "replica"),
                    ("mysql-read-fallback", "read-only"),
                ][..],
            ),
        ];
        for (t, fallback, want) in cases {
            let mut o = opts(t);
            o.read_fallback = fallback;
            let plain = render(&o);
            assert!(!plain.contains("[[haproxy]]"), "{plain}");
            o.push = true;
            let c = render(&o);
            let (head, tail) = c.split_at(plain.len());
            assert_eq!(head, plain, "--push changed the HAProxy part");
            assert!(
                tail.lines().all(|l| l.is_empty() || l.starts_with('#')),
                "{tail}"
            );
            let toml = pasted(&c);
            let cfg = format!("[listen]\nhttp = \"127.0.0.1:1\"\n{toml}");
            let loaded = crate::config::from_str(&cfg, "t", &Default::default())
                .unwrap_or_else(|e| panic!("{e:?}\n{toml}"));
            let h = &loaded.config.haproxy;
            assert_eq!(h.len(), 1, "{toml}");
            assert_eq!(
                h[0].socket,
                crate::config::HaproxySocket::Unix("/run/haproxy/admin.sock".into())
            );
            let got: Vec<(String, &str)> = h[0]
                .backends
                .iter()
                .map(|(b, r)| (b.clone(), r.name()))
                .collect();
            let want: Vec<(String, &str)> = want.iter().map(|(b, r)| (b.to_string(), *r)).collect();
            let sorted = |mut v: Vec<(String, &'static str)>| {
                v.sort();
                v
            };
            assert_eq!(sorted(got), sorted(want.clone()), "{toml}");
            // Every backend named exists in the generated HAProxy part.
            for (b, _) in &want {
                assert!(
                    plain.contains(&format!("listen {b}\n"))
                        || plain.contains(&format!("backend {b}\n")),
                    "{b} not in\n{plain}"
                );
            }
            assert!(toml.contains("# server = \"db1\""), "{toml}");
        }
        let mut o = opts(Topology::Replication);
        o.push = true;
        assert!(render(&o).contains("set it to \"30s\""));
    }

    /// `--fleet --push`: the table goes to the fleet checker, whose config has targets:
    /// no `server` line (each line is matched to its target), and mysqlchk accepts it.
    #[test]
    fn fleet_push_table_is_accepted_with_targets() {
        let mut o = opts(Topology::Replication);
        o.fleet = Some("127.0.0.1:9200".parse().unwrap());
        o.push = true;
        let c = render(&o);
        assert!(c.contains("fleet\n## checker on this HAProxy node"), "{c}");
        let toml = pasted(&c);
        assert!(!toml.contains("server ="), "{toml}");
        let cfg = format!(
            "[listen]\nhttp = \"127.0.0.1:1\"\n{toml}[[target]]\nname = \"db1\"\nport = 3306\n"
        );
        let loaded = crate::config::from_str(&cfg, "t", &Default::default())
            .unwrap_or_else(|e| panic!("{e:?}\n{toml}"));
        assert_eq!(loaded.config.haproxy.len(), 1);
    }

    #[test]
    fn fallback_and_topologies() {
        let mut o = opts(Topology::Galera);
        o.read_fallback = true;
        o.agent_port = None;
        let c = render(&o);
        assert!(c.contains("uri /read-only"));
        assert!(c.contains("nbsrv(mysql-read-replicas) eq 0"));
        assert!(!c.contains("agent-check"));
        let c = render(&opts(Topology::GroupReplication));
        assert!(c.contains("uri /replica\n"));
    }
}
