//! Restart and pull back-off, as the kubelet does it: 10 s, doubling, capped
//! at 300 s, and forgotten once the thing ran cleanly for 10 minutes.
//!
//! Pure: times are passed in, so tests move the clock by hand.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before dying starts with a clean slate.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Back-off delays per key (a container name, or a pod/image pair).
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    delays: HashMap<String, Duration>,
}

impl Backoff {
    /// The delay that applies to the next restart of `key`, if any.
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.delays.get(key).copied()
    }

    /// Whether `key`, which last stopped at `finished`, must still wait at
    /// `now`; returns the time left.
    pub fn remaining(
        &self,
        key: &str,
        finished: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let delay = self.delay(key)?;
        let until = finished + chrono::Duration::from_std(delay).ok()?;
        (until > now).then(|| (until - now).to_std().unwrap_or_default())
    }

    /// Records a restart of `key`: the next one waits twice as long (10 s the
    /// first time), up to [`MAX`].
    pub fn record_restart(&mut self, key: &str) {
        let next = self.delays.get(key).map_or(INITIAL, |d| (*d * 2).min(MAX));
        self.delays.insert(key.to_string(), next);
    }

    /// Forgets `key` when it ran for at least [`RESET_AFTER`].
    pub fn reset_if_ran_cleanly(&mut self, key: &str, ran_for: Duration) {
        if ran_for >= RESET_AFTER {
            self.delays.remove(key);
        }
    }

    /// Sets the delay of `key` as someone else knows it (`podvisor plan`
    /// takes the running daemon's).
    pub fn set_delay(&mut self, key: &str, delay: Duration) {
        self.delays.insert(key.to_string(), delay);
    }

    pub fn forget(&mut self, key: &str) {
        self.delays.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let mut b = Backoff::default();
        assert_eq!(b.remaining("a", t(0), t(0)), None);
        let mut seen = vec![];
        for _ in 0..7 {
            b.record_restart("a");
            seen.push(b.delay("a").unwrap().as_secs());
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn remaining_counts_from_the_finish_time() {
        let mut b = Backoff::default();
        b.record_restart("a");
        b.record_restart("a"); // 20 s
        assert_eq!(b.remaining("a", t(0), t(5)), Some(Duration::from_secs(15)));
        assert_eq!(b.remaining("a", t(0), t(20)), None);
        assert_eq!(b.remaining("b", t(0), t(5)), None);
    }

    #[test]
    fn clean_run_resets() {
        let mut b = Backoff::default();
        b.record_restart("a");
        b.record_restart("a");
        b.reset_if_ran_cleanly("a", Duration::from_secs(599));
        assert_eq!(b.delay("a"), Some(Duration::from_secs(20)));
        b.reset_if_ran_cleanly("a", RESET_AFTER);
        assert_eq!(b.delay("a"), None);
    }
}
