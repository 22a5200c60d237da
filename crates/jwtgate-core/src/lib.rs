//! The JWT authentication core of jwtgate: token parsing, signature and claim
//! checks, consumer lookup, path normalisation and path rules.
//!
//! Everything here is pure code: no sockets, no files, no async runtime, no
//! clock reads (time comes in through [`clock::Clock`]). That keeps it
//! fuzzable, property-testable and benchmarkable in isolation. The data plane
//! (`jwtgate-proxy`) and the config compiler (`jwtgate-config`) build on it.

pub mod backchannel;
pub mod claims;
pub mod clock;
pub mod consumer;
pub mod cors;
pub mod der;
pub mod invisible;
pub mod jwt;
pub mod owned_headers;
pub mod path;
pub mod percent;
pub mod policy;
pub mod provider;
pub mod redact;
pub mod x509;
