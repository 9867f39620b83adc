//! [`Backoff`]: how long to wait before each reconnect attempt after the
//! first (which goes at once), and
//! [`give_up_after`]: how long to keep trying at all.

use std::time::Duration;

/// The delays between reconnect attempts: the first one, then twice the
/// previous one, up to a cap
/// ([`ConnectOptions::reconnect_delays`](crate::ConnectOptions::reconnect_delays),
/// 100 ms doubling to 2 s by default). No jitter: one client resumes one
/// session, so there is no herd of clients to spread out.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// The delay the next attempt waits.
    next: Duration,
    /// The cap.
    max: Duration,
}

impl Backoff {
    /// Delays starting at `initial` and doubling up to `max` (at least `initial`).
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            next: initial,
            max: max.max(initial),
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }
}

/// How long after a drop the client keeps trying to resume: the session's
/// TTL (`limits.sessionTtlMs`; after it the server has ended the session,
/// so a resume could only get `unknownSession`), or `max_elapsed` when that
/// is shorter. `None` when the session cannot be resumed at all (a TTL of 0).
pub(crate) fn give_up_after(
    session_ttl: Duration,
    max_elapsed: Option<Duration>,
) -> Option<Duration> {
    if session_ttl.is_zero() {
        return None;
    }
    Some(max_elapsed.map_or(session_ttl, |max| max.min(session_ttl)))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut backoff = Backoff::new(100 * MS, 2000 * MS);
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 2000, 2000, 2000].map(|ms| ms * MS)
        );
    }

    #[test]
    fn a_cap_below_the_first_delay_is_the_first_delay() {
        let mut backoff = Backoff::new(500 * MS, 100 * MS);
        assert_eq!(
            (backoff.next_delay(), backoff.next_delay()),
            (500 * MS, 500 * MS)
        );
    }

    #[test]
    fn the_session_ttl_bounds_the_time_spent_trying() {
        let ttl = Duration::from_secs(30);
        assert_eq!(give_up_after(ttl, None), Some(ttl));
        assert_eq!(
            give_up_after(ttl, Some(Duration::from_secs(5))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(give_up_after(ttl, Some(Duration::from_secs(60))), Some(ttl));
        // A server that keeps no session after a drop: nothing to resume.
        assert_eq!(give_up_after(Duration::ZERO, Some(ttl)), None);
    }
}
