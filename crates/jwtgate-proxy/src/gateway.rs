//! One immutable version of the running configuration, as the data plane
//! uses it. A reload builds a new [`Gateway`] off the hot path and swaps it in
//! whole; requests in flight keep the version they started with.

use std::sync::Arc;

use jwtgate_config::Config;
use jwtgate_core::clock::SystemClock;
use jwtgate_core::consumer::ConsumerRegistry;
use jwtgate_core::policy::cache::VerifiedCache;

use jwtgate_store::Revocations;

use crate::router::Router;

pub struct Gateway {
    pub router: Router,
    pub consumers: Arc<ConsumerRegistry>,
    /// The blacklist outlives config versions: one per process.
    pub revocations: Arc<Revocations>,
    /// Tokens already verified under THIS config version; a reload starts
    /// afresh, so a changed consumer key is never served from the cache.
    pub verified: VerifiedCache,
    pub clock: SystemClock,
}

impl Gateway {
    pub fn new(config: &Config, revocations: Arc<Revocations>) -> Self {
        Gateway {
            router: Router::new(&config.routes),
            consumers: Arc::clone(&config.consumers),
            revocations,
            verified: VerifiedCache::default(),
            clock: SystemClock,
        }
    }
}
