//! Telling HAProxy at once (README "Pushing state to HAProxy"): verdict changes are
//! pushed through HAProxy's runtime API (`set server … health|state`), verified with
//! `show servers state`, and re-applied after an HAProxy reload. HAProxy's own checks
//! stay configured as the safety net: a lost push is corrected at their next `inter`.
//!
//! - `api`: the command and reply texts (pure);
//! - `desired`: verdicts → what each server line should be, and the plan (pure);
//! - `client`: one task per `[[haproxy]]` entry that applies the plan and verifies it;
//! - `stats`: push results, latency and connection states for `/metrics` and `/status`.
//!
//! Invariants: responders never wait on a push; mysqlchk never sends `maint`, `disable`
//! or `weight` (the operator's).

// Wired into the daemon in a later commit; until then only the tests use it.
#![allow(dead_code)]

pub(crate) mod api;
pub(crate) mod client;
pub(crate) mod desired;
pub(crate) mod stats;
