//! Log lines that a fault could repeat many times a second (a listener
//! out of file descriptors, a limit reached), said at most once a period.

/// A log line said at most once a period, by whichever thread comes first.
pub struct OncePer {
    /// Seconds since the Unix epoch when it was last said (0: never).
    last: std::sync::atomic::AtomicU64,
    every: u64,
}

impl OncePer {
    pub const fn minute() -> Self {
        OncePer {
            last: std::sync::atomic::AtomicU64::new(0),
            every: 60,
        }
    }

    /// Whether to say it now; if so, the next time is a period away.
    pub fn due(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Relaxed);
        (last == 0 || now.saturating_sub(last) >= self.every)
            && self
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn said_once_then_not_again_within_the_period() {
        let said = OncePer::minute();
        assert!(said.due());
        assert!(!said.due());
        assert!(!said.due());
    }
}
