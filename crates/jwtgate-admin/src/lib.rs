//! The control plane of jwtgate: the admin API (SPEC §4) and the one path by
//! which the running configuration changes ([`LiveConfig`]), shared by API
//! writes and reloads of the config file.
//!
//! What it does not do: serve traffic (`jwtgate-proxy`), parse or validate
//! config itself (`jwtgate-config`, whose reader and compiler it reuses), or
//! watch the file and signals (the binary does, and calls
//! [`LiveConfig::reload`]).

mod api;
mod auth;
mod check;
mod console;
mod consumers;
pub mod endpoints;
mod error;
mod etag;
pub mod explain;
mod explain_api;
mod host;
mod input;
mod live;
mod named;
pub mod openapi;
mod policy_edit;
pub mod protect;
mod providers;
mod reaper;
mod revocations;
mod routes;
mod slots;
pub mod source;
mod subjects;
mod warnings;

pub use api::{router, AdminListener, AdminState};
pub use check::{load, tls_problems, warnings, Loaded};
pub use error::AdminError;
pub use live::{Edit, LiveConfig, ReloadOutcome, Running, TlsServers, Trigger, EDIT_SETTLE};
pub use source::etcd::EtcdSource;
