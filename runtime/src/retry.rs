//! Retry timing: capped exponential backoff with full jitter (AWS's "full jitter": a delay
//! drawn uniformly between zero and `min(max, initial * 2^attempt)`), so clients that failed
//! together spread out instead of retrying together.

use std::time::Duration;

use rand::Rng;

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial`, never exceeds `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The cap for the next attempt: `min(max, initial * 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in `[0, ceiling]`; advances the attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let cap = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        if cap.is_zero() {
            return cap;
        }
        Duration::from_secs_f64(rng.gen_range(0.0..=cap.as_secs_f64()))
    }

    /// Back to the first attempt after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_is_capped_and_fully_jittered() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ceilings: Vec<u128> = (0..6)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_delay(&mut rng);
                assert!(d <= c);
                c.as_millis()
            })
            .collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        for _ in 0..100 {
            b.next_delay(&mut rng);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..50).map(|_| b.next_delay(&mut rng)).collect();
        assert!(
            delays.iter().any(|d| *d < Duration::from_millis(500)),
            "full jitter reaches low delays"
        );
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn a_zero_backoff_never_waits() {
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(b.next_delay(&mut rng), Duration::ZERO);
    }
}
