//! A DDSketch-style quantile sketch with a guaranteed relative error, for latency quantiles.
//!
//! Buckets grow geometrically, so every value in a bucket is within [`RELATIVE_ACCURACY`] of the
//! bucket's representative; merging two sketches adds their bucket counts, which keeps window
//! summaries additive.

use serde::{Deserialize, Serialize};

/// Relative accuracy of every quantile the sketch returns.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Values at or below this are counted as zero (latencies below a nanosecond).
const MIN_INDEXABLE: f64 = 1e-6;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// A mergeable quantile sketch over non-negative values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantileSketch {
    /// Number of values at (or near) zero.
    #[serde(default)]
    pub zeros: u64,
    /// Bucket index of `counts[0]`.
    #[serde(default)]
    pub offset: i32,
    /// Counts of consecutive buckets from `offset`.
    #[serde(default)]
    pub counts: Vec<u64>,
}

impl QuantileSketch {
    fn index(x: f64) -> i32 {
        (x.ln() / gamma().ln()).ceil() as i32
    }

    fn value(index: i32) -> f64 {
        let g = gamma();
        2.0 * g.powi(index) / (g + 1.0)
    }

    /// Total number of values recorded.
    pub fn count(&self) -> u64 {
        self.zeros + self.counts.iter().sum::<u64>()
    }

    /// Records one non-negative finite value (others are ignored: validation rejects them).
    pub fn add(&mut self, x: f64) {
        self.add_n(x, 1);
    }

    fn add_n(&mut self, x: f64, n: u64) {
        if !x.is_finite() || x < 0.0 {
            return;
        }
        if x <= MIN_INDEXABLE {
            self.zeros += n;
            return;
        }
        self.add_to_bucket(Self::index(x), n);
    }

    fn add_to_bucket(&mut self, i: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(n);
            return;
        }
        if i < self.offset {
            let grow = (self.offset - i) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = i;
        }
        let pos = (i - self.offset) as usize;
        if pos >= self.counts.len() {
            self.counts.resize(pos + 1, 0);
        }
        self.counts[pos] += n;
    }

    /// Adds another sketch's counts to this one.
    pub fn merge(&mut self, other: &QuantileSketch) {
        self.zeros += other.zeros;
        for (k, &c) in other.counts.iter().enumerate() {
            if c > 0 {
                self.add_to_bucket(other.offset + k as i32, c);
            }
        }
    }

    /// The value at rank `floor(q * (n - 1))` (NumPy's "lower"), within the relative accuracy;
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        for (k, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Some(Self::value(self.offset + k as i32));
            }
        }
        None
    }
}

/// The sketch bucket indices a latency can reach: from the zero threshold (1e-6 ms) to
/// `f64::MAX`, with room to spare.
pub const SKETCH_INDEX_RANGE: (i64, i64) = (-1_000, 40_000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_relative_accuracy() {
        let mut s = QuantileSketch::default();
        let data: Vec<f64> = (1..=10_000).map(|i| i as f64 * 0.37).collect();
        for &x in &data {
            s.add(x);
        }
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            let exact = data[(q * (data.len() - 1) as f64).floor() as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= RELATIVE_ACCURACY * exact + 1e-12,
                "q={q}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn merge_equals_recording_everything() {
        let mut a = QuantileSketch::default();
        let mut b = QuantileSketch::default();
        let mut all = QuantileSketch::default();
        for i in 0..500 {
            let x = (i as f64).powf(1.3) / 7.0;
            if i % 3 == 0 {
                a.add(x)
            } else {
                b.add(x)
            }
            all.add(x);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        for q in [0.1, 0.5, 0.99] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(QuantileSketch::default().quantile(0.5), None);
    }
}
