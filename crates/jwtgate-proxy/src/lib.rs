//! The data plane of jwtgate: listeners (HTTP/1.1, h2c, TLS), route matching,
//! the request pipeline that applies a route's JWT policy, and proxying to
//! upstream nodes over pooled keep-alive connections.
//!
//! What it does not do: parse config files (`jwtgate-config`) or verify
//! tokens itself (`jwtgate-core`); it wires those into HTTP.

pub mod body;
pub mod conn_info;
pub mod cors;
pub mod echo;
pub mod error;
pub mod gateway;
pub mod h1;
pub mod headers;
pub mod idle;
pub mod log_sink;
pub mod logout;
pub mod metrics;
pub mod once_per;
pub mod pipeline;
pub mod recycle;
pub mod router;
pub mod server;
pub mod tls;
mod tunnel;
pub mod upstream;

pub use gateway::Gateway;
pub use once_per::OncePer;
pub use server::{Listeners, ServeError, SharedGateway};
pub use tls::{Expiry, TlsServer};
