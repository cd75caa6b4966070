//! mysqlchk: the health-check agent that tells HAProxy (and Kubernetes, and monitoring)
//! whether a MySQL / MariaDB / Percona server can take traffic now, and in which role.
//!
//! Layout: `probe` talks to MySQL and `checker` runs it periodically into immutable
//! `snapshot`s; `verdict` is the pure judgement every responder shares (`endpoints` for
//! HTTP via `serve`, `agent` for HAProxy's agent-check, `inetd` and `plugin` for
//! one-shot use); `config` and `mycnf` read settings (`smallfile` is the one bounded, non-blocking
//! read of the files re-read while running); `daemon` wires it together.
#![deny(unsafe_code)]

#[path = "respond/access.rs"]
pub mod access;
#[path = "respond/agent.rs"]
pub mod agent;
pub mod checker;
pub mod config;
pub mod daemon;
#[path = "respond/endpoints.rs"]
pub mod endpoints;
pub mod facts;
#[path = "cli/haproxy_config.rs"]
pub mod haproxy_config;
#[path = "respond/http.rs"]
pub mod http;
#[path = "cli/inetd.rs"]
pub mod inetd;
pub mod maintenance;
pub mod metrics;
#[path = "config/mycnf.rs"]
pub mod mycnf;
#[path = "cli/plugin.rs"]
pub mod plugin;
pub mod probe;
#[path = "config/secret.rs"]
pub mod secret;
#[path = "respond/accept.rs"]
pub mod serve;
pub mod smallfile;
pub mod snapshot;
#[path = "respond/status.rs"]
pub mod status;
pub mod sys;
#[path = "daemon/systemd.rs"]
pub mod systemd;
pub mod verdict;
