//! The token an open WebSocket was opened with, held for the tunnel's
//! life: a WebSocket ends when its token is revoked (a logout, the admin
//! API) or its subject cut off (log out everywhere, a back-channel
//! logout), on any node, and, where the route says
//! `websocket_close_at_exp`, when the token expires. Revocations come
//! into memory however they come (here, the feed, a resync); the tunnel
//! looks again each time one does, and reads nothing otherwise.

use std::sync::Arc;
use std::time::Duration;

use jwtgate_core::claims::Claims;
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::RevocationKey;
use jwtgate_core::policy::Principal;
use jwtgate_store::Revocations;

use tracing::info;

use super::Ended;

/// The longest a tunnel sleeps towards its token's expiry before reading
/// the wall clock again: a clock set forward meanwhile is noticed.
const EXPIRY_STEP: Duration = Duration::from_secs(30);

pub(crate) struct HeldToken {
    revocations: Arc<Revocations>,
    key: RevocationKey,
    principal: Principal,
    claims: Arc<Claims>,
    /// When the route would refuse the token (`exp` plus its leeway), if
    /// the route closes WebSockets then.
    ends_at: Option<i64>,
}

impl HeldToken {
    pub(crate) fn new(
        revocations: Arc<Revocations>,
        key: RevocationKey,
        principal: Principal,
        claims: Arc<Claims>,
        ends_at: Option<i64>,
    ) -> Self {
        HeldToken {
            revocations,
            key,
            principal,
            claims,
            ends_at,
        }
    }

    /// Why a new request with this token would now be refused, if it would
    /// for a revocation or a cut-off: the checks of the handshake's that
    /// can change while the token is held.
    fn refused(&self, now: i64) -> Option<Ended> {
        if self.revocations.is_revoked(&self.key.digests(), now) {
            return Some(Ended::Revoked);
        }
        let consumer = self.principal.consumer().map(|c| c.username.as_str());
        let provider = self.principal.provider().map(|p| p.name.as_str());
        if self.revocations.cutoffs_name(consumer, provider)
            && crate::logout::cutoff_refusing(
                &self.revocations,
                &self.claims,
                consumer,
                provider,
                now,
            )
            .is_some()
        {
            return Some(Ended::CutOff);
        }
        None
    }

    /// Resolves when the token should no longer hold the tunnel open, and
    /// says so in the log (whose token, and why).
    pub(crate) async fn outlived(&self) -> Ended {
        let ended = self.no_longer_good().await;
        info!(
            ended = ended.as_str(),
            consumer = self.principal.consumer().map(|c| c.username.as_str()),
            provider = self.principal.provider().map(|p| p.name.as_str()),
            "WebSocket closed: the token that opened it no longer holds"
        );
        ended
    }

    async fn no_longer_good(&self) -> Ended {
        // Subscribed before the first look: a revocation between the
        // handshake's check and here is seen by that look.
        let mut changes = self.revocations.changes();
        // Always so: the sender lives in `revocations`, held here.
        let mut watching = true;
        let mut told = true;
        loop {
            let now = SystemClock.now_unix();
            if told {
                if let Some(ended) = self.refused(now) {
                    return ended;
                }
            }
            let wait = match self.ends_at {
                Some(end) if now >= end => return Ended::Expired,
                Some(end) => Duration::from_secs(end.abs_diff(now)).min(EXPIRY_STEP),
                None => Duration::MAX,
            };
            told = tokio::select! {
                changed = changes.changed(), if watching => {
                    watching = changed.is_ok();
                    true
                }
                () = sleep(wait) => false,
            };
        }
    }
}

/// Sleeps for `d`; `Duration::MAX` is for ever.
async fn sleep(d: Duration) {
    match tokio::time::Instant::now().checked_add(d) {
        Some(deadline) if d != Duration::MAX => tokio::time::sleep_until(deadline).await,
        _ => std::future::pending().await,
    }
}
