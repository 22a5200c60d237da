//! The open-file limit, and the client connections it leaves room for.
//!
//! Every client connection is a file descriptor, and a proxied one may
//! hold an upstream connection too. Clients that open connections and
//! never finish a TLS handshake or a request head would otherwise take
//! every descriptor the process has, and with them the upstreams', the
//! store's, etcd's and the admin API's. HAProxy derives its `maxconn` from
//! `ulimit -n` the same way; an explicit `max_connections` overrides it.

use tracing::{info, warn};

/// Descriptors kept for everything but client connections and their
/// upstreams: the admin API's connections (256 at most, its own bound)
/// and 256 for the rest (listeners, the store, etcd, key-set fetches,
/// files read at reload). A reserve of 256 in all let a full admin
/// listener take the descriptors the key fetches and reloads needed (an
/// outside audit, under a low limit).
const RESERVED: u64 = 512;

/// Raises the soft open-file limit to the hard one (as Go's runtime does
/// at start) and returns the soft limit then in force (`None`: unlimited).
fn raise() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return lim.maximum;
        }
    }
    lim.current
}

/// Client connections an open-file limit of `limit` leaves room for: two
/// descriptors each (the client's and an upstream's), after [`RESERVED`].
fn room_for(limit: u64) -> usize {
    let n = limit.saturating_sub(RESERVED) / 2;
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// The `max_connections` to serve with: `configured`, or what the
/// open-file limit leaves room for. Raises the soft limit first; logs
/// both, and warns when `configured` is more than the limit allows.
pub fn max_connections(configured: Option<usize>) -> usize {
    let limit = raise();
    let room = limit.map_or(usize::MAX, room_for);
    let n = configured.unwrap_or(room);
    match limit {
        Some(limit) if n > room => warn!(
            max_connections = n,
            open_file_limit = limit,
            "max_connections is more than the open-file limit leaves room for ({room}): \
             clients may take the descriptors the upstreams, the store and the admin API need"
        ),
        Some(limit) => info!(
            max_connections = n,
            open_file_limit = limit,
            "connection limit"
        ),
        None => info!(
            max_connections = n,
            "connection limit (open-file limit unknown)"
        ),
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_two_descriptors_a_connection_after_the_reserve() {
        assert_eq!(room_for(65_536), 32_512);
        assert_eq!(room_for(1_024), 256);
        assert_eq!(room_for(100), 1, "never zero");
        assert_eq!(
            room_for(u64::MAX),
            usize::try_from((u64::MAX - 512) / 2).unwrap()
        );
    }
}
