//! The responders: what HAProxy, Kubernetes and monitoring talk to. They read the
//! published snapshot and never wait on MySQL or the file system.
//!
//! `accept` admits connections (allowlist, limits) for both ports; `http_conn` runs one
//! HTTP exchange (`http` parses and renders, `endpoints` routes, `status` renders
//! `/status`); `agent` answers HAProxy's agent-check; `access` is the address allowlist.

pub(crate) mod accept;
pub(crate) mod access;
pub(crate) mod agent;
pub mod endpoints;
pub mod http;
pub(crate) mod http_conn;
pub(crate) mod status;
