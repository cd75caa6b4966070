//! mysqlchk: the health-check agent that tells HAProxy (and Kubernetes, and monitoring)
//! whether a MySQL / MariaDB / Percona server can take traffic now, and in which role.
//!
//! Crate map, in the order data flows (a module imports only modules listed above it):
//!
//! - `sys`, `smallfile`: leaf utilities (the few syscalls, the only `unsafe`; bounded,
//!   non-blocking reads of the files re-read while running);
//! - `role`: the role a client asks about, vocabulary shared by everything below;
//! - `config`: TOML + environment → validated settings (`mycnf`, `secret` inside);
//! - `facts`: what a round learned, and why a round or step failed (`Reason`, ...);
//! - `probe`: one MySQL connection and the round that reads facts over it;
//! - `maintenance`: the operator's maintenance flag file;
//! - `policy`: the memory across rounds that keeps verdicts from flapping (median
//!   lag, lag hysteresis, full-server grace, weight ramp), pure state machines;
//! - `snapshot`: the immutable result of a round, published for the responders;
//! - `verdict`: the one pure judgement every responder and command shares;
//! - `push`: verdict changes told to HAProxy through its runtime API;
//! - `metrics`: the Prometheus exposition and its fixed label sets;
//! - `checker`: probe → snapshot every interval, logging transitions;
//! - `fleet`: the targets of fleet mode, their snapshot cells, and which target a request
//!   names;
//! - `respond`: the HTTP and agent-check responders (accept, endpoints, agent, status);
//! - `daemon`: `serve` wired together (listeners, reload, hand-over, systemd);
//! - `cli`: the commands (`serve`, `check`, `validate`, `maintenance`, `inetd`,
//!   `haproxy-config`); `src/main.rs` only calls `cli::main`.
//!
//! Public: [`Role`], `cli::main`, and what the tests and fuzz targets drive (the config
//! and option-file parsers, HTTP parsing and routing, the row decoders of `facts`).
//! Everything else is crate-private, so the compiler reports dead code.
#![deny(unsafe_code)]

mod sys;
mod smallfile;
mod role;
pub mod config;
pub mod facts;
mod probe;
mod maintenance;
mod policy;
mod snapshot;
mod verdict;
mod push;
mod metrics;
mod checker;
mod fleet;
pub mod respond;
mod daemon;
pub mod cli;

pub use role::Role;
