//! The token an open WebSocket was opened with, held for the tunnel's
//! life: a WebSocket ends when its token is revoked (a logout, the admin
//! API) or its subject cut off (log out everywhere, a back-channel
//! logout), on any node, and, where the route says
//! `websocket_close_at_exp`, when the token expires. Revocations come
//! into memory however they come (here, the feed, a resync); the tunnel
//! looks again each time one refuses something new, and reads nothing
//! otherwise.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jwtgate_core::claims::Claims;
use jwtgate_core::clock::{Clock, SystemClock};
use jwtgate_core::jwt::RevocationKey;
use jwtgate_core::policy::Principal;
use jwtgate_store::Revocations;
use tracing::info;

use super::Ended;
use crate::logout::HeldSubject;

/// The longest a tunnel sleeps towards its token's expiry before reading
/// the wall clock again: a clock set forward meanwhile is noticed.
const EXPIRY_STEP: Duration = Duration::from_secs(30);

pub(crate) struct HeldToken {
    revocations: Arc<Revocations>,
    key: RevocationKey,
    subject: HeldSubject,
    /// When the route would refuse the token (`exp` plus its leeway), if
    /// the route closes WebSockets then.
    ends_at: Option<i64>,
}

impl HeldToken {
    pub(crate) fn new(
        revocations: Arc<Revocations>,
        key: RevocationKey,
        principal: &Principal,
        claims: &Claims,
        ends_at: Option<i64>,
    ) -> Self {
        HeldToken {
            revocations,
            key,
            subject: HeldSubject::of(principal, claims),
            ends_at,
        }
    }

    /// Why a new request with this token would now be refused, if it would
    /// for a revocation or a cut-off: the checks of the handshake's that
    /// can change while the token is held.
    fn refused(&self, now: i64) -> Option<Ended> {
        // Any entry, however soon it expires: the handshake found none
        // alive, and one that came since is a revocation made since, if
        // already past its time (the admin API revoking a token expired
        // longer than the revocation grace, on a route that lets its
        // WebSockets outlive `exp`).
        if self.revocations.is_revoked(&self.key.digests(), i64::MIN) {
            return Some(Ended::Revoked);
        }
        self.subject
            .cut_off_by(&self.revocations, now)
            .map(|_| Ended::CutOff)
    }

    /// Resolves when the token should no longer hold the tunnel open, and
    /// says so in the log (whose token, and why).
    pub(crate) async fn outlived(&self) -> Ended {
        let ended = self.no_longer_good().await;
        info!(
            ended = ended.as_str(),
            consumer = self.subject.consumer(),
            provider = self.subject.provider(),
            "WebSocket closed: the token that opened it no longer holds"
        );
        crate::metrics::record_websocket_closed_for_token(ended.as_str());
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
            if told {
                if let Some(ended) = self.refused(SystemClock.now_unix()) {
                    return ended;
                }
            }
            let wait = match self.ends_at {
                Some(end) => match until(end) {
                    Some(left) => left.min(EXPIRY_STEP),
                    None => return Ended::Expired,
                },
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

/// How long until the second `end` begins (when a route refuses a token
/// whose `exp` plus leeway is `end`), to the nanosecond; `None` once it has.
fn until(end: i64) -> Option<Duration> {
    let end = UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(end).ok()?))?;
    end.duration_since(SystemTime::now())
        .ok()
        .filter(|d| !d.is_zero())
}

/// Sleeps for `d`; `Duration::MAX` is for ever.
async fn sleep(d: Duration) {
    match tokio::time::Instant::now().checked_add(d) {
        Some(deadline) if d != Duration::MAX => tokio::time::sleep_until(deadline).await,
        _ => std::future::pending().await,
    }
}
