//! mysqlchk: the health-check agent that tells HAProxy (and Kubernetes, and monitoring)
//! whether a MySQL / MariaDB / Percona server can take traffic now, and in which role.
//!
//! Layout: `probe` talks to MySQL and `checker` runs it periodically into immutable
//! `snapshot`s; `verdict` is the pure judgement every responder shares (`endpoints` for
//! HTTP via `serve`, `agent` for HAProxy's agent-check, `inetd` and `plugin` for
//! one-shot use); `config` and `mycnf` read settings (`smallfile` is the one bounded, non-blocking
//! read of the files re-read while running); `daemon` wires it together.
#![deny(unsafe_code)]

pub mod access;
pub mod agent;
pub mod checker;
pub mod config;
pub mod daemon;
pub mod endpoints;
pub mod facts;
pub mod haproxy_config;
pub mod http;
pub mod inetd;
pub mod maintenance;
pub mod metrics;
pub mod mycnf;
pub mod plugin;
pub mod probe;
pub mod secret;
pub mod serve;
pub mod smallfile;
pub mod snapshot;
pub mod status;
pub mod sys;
pub mod systemd;
pub mod verdict;
