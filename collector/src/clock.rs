//! The one source of "now" for the collector.
//!
//! Every task asks the [`Clock`] in the shared state instead of reading the system time, so a
//! test can hold time still or step it forward and drive windows, staleness and lifecycles
//! without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch: the system clock, or a manual one for tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stays at `start_ms` until [`Clock::set_ms`] or [`Clock::advance`] moves it.
    /// Clones share the same time.
    pub fn manual(start_ms: i64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(start_ms))),
        }
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            None => aims_runtime::clock::now_ms(),
        }
    }

    /// Sets a manual clock to `ms`; the system clock ignores it (and says so).
    pub fn set_ms(&self, ms: i64) -> bool {
        match &self.manual {
            Some(t) => {
                t.store(ms, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Moves a manual clock forward by `by`; the system clock ignores it (and says so).
    pub fn advance(&self, by: Duration) -> bool {
        match &self.manual {
            Some(t) => {
                let by = by.as_millis().min(i64::MAX as u128) as i64;
                t.fetch_add(by, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = Clock::manual(1_000);
        let d = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        assert!(c.advance(Duration::from_secs(2)));
        assert_eq!(d.now_ms(), 3_000);
        assert!(d.set_ms(10));
        assert_eq!(c.now_ms(), 10);
    }

    #[test]
    fn the_system_clock_is_near_the_system_time_and_cannot_be_set() {
        let c = Clock::system();
        assert!(!c.set_ms(0));
        assert!(c.now_ms() > 1_600_000_000_000);
    }
}
