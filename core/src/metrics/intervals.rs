//! Analytic confidence intervals on streamed counts, as statsmodels computes them.
//!
//! Summaries hold counts (selected of n, true positives of labelled positives, ...), which is
//! all these intervals need, so they are exact functions of a merged summary:
//!
//! - a rate: Wilson's score interval (`proportion_confint(method="wilson")`, clipped to [0, 1]);
//! - a difference of two rates: Newcombe's hybrid score interval
//!   (`confint_proportions_2indep(compare="diff", method="newcomb")`);
//! - a ratio of two rates: Katz's log interval (`compare="ratio", method="log"`). With a zero
//!   count that interval is degenerate (an infinite log variance), so it is computed with 0.5
//!   added to each count and size (statsmodels' `method="log-adjusted"`); [`Interval::adjusted`]
//!   says so.
//!
//! `alpha` is 1 − confidence. The caller applies Bonferroni's adjustment (alpha / m) where a
//! value is the minimum or maximum over m groups.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// The confidence used when none is set.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

/// Two-sided interval bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Confidence of this interval after any Bonferroni adjustment (1 − alpha / m).
    pub confidence: f64,
    /// Katz only: 0.5 was added to counts and sizes because a count was zero.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adjusted: bool,
}

/// A rate's count and the size it is a share of (`count / nobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proportion {
    /// Successes.
    pub count: u64,
    /// Trials.
    pub nobs: u64,
}

impl Proportion {
    /// The rate, when `nobs > 0`.
    pub fn rate(self) -> Option<f64> {
        (self.nobs > 0).then(|| self.count as f64 / self.nobs as f64)
    }
}

/// The two-sided critical value z with P(|Z| > z) = alpha.
fn critical(alpha: f64) -> f64 {
    // Normal::new(0, 1) cannot fail.
    let n = Normal::new(0.0, 1.0).expect("standard normal");
    n.inverse_cdf(1.0 - alpha / 2.0)
}

fn valid_alpha(alpha: f64) -> bool {
    alpha > 0.0 && alpha < 1.0
}

/// Wilson's score interval for `p.count / p.nobs`; `None` without trials.
pub fn wilson(p: Proportion, alpha: f64) -> Option<Interval> {
    if p.nobs == 0 || p.count > p.nobs || !valid_alpha(alpha) {
        return None;
    }
    let n = p.nobs as f64;
    let q = p.count as f64 / n;
    let z = critical(alpha);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (q + z2 / (2.0 * n)) / denom;
    let dist = z * (q * (1.0 - q) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(Interval {
        lower: (center - dist).clamp(0.0, 1.0),
        upper: (center + dist).clamp(0.0, 1.0),
        confidence: 1.0 - alpha,
        adjusted: false,
    })
}

/// Newcombe's hybrid score interval for `rate(a) − rate(b)`.
pub fn newcombe(a: Proportion, b: Proportion, alpha: f64) -> Option<Interval> {
    let (wa, wb) = (wilson(a, alpha)?, wilson(b, alpha)?);
    let (pa, pb) = (a.rate()?, b.rate()?);
    let d_low = ((pa - wa.lower).powi(2) + (wb.upper - pb).powi(2)).sqrt();
    let d_upp = ((pb - wb.lower).powi(2) + (wa.upper - pa).powi(2)).sqrt();
    let diff = pa - pb;
    Some(Interval {
        lower: diff - d_low,
        upper: diff + d_upp,
        confidence: 1.0 - alpha,
        adjusted: false,
    })
}

/// Katz's log interval for `rate(a) / rate(b)` (0.5 added throughout when a count is zero).
pub fn katz(a: Proportion, b: Proportion, alpha: f64) -> Option<Interval> {
    if a.nobs == 0 || b.nobs == 0 || a.count > a.nobs || b.count > b.nobs || !valid_alpha(alpha) {
        return None;
    }
    let adjusted = a.count == 0 || b.count == 0;
    let add = if adjusted { 0.5 } else { 0.0 };
    let (c1, n1) = (a.count as f64 + add, a.nobs as f64 + add);
    let (c2, n2) = (b.count as f64 + add, b.nobs as f64 + add);
    let ratio = (c1 / n1) / (c2 / n2);
    let var = 1.0 / c1 - 1.0 / n1 + 1.0 / c2 - 1.0 / n2;
    let d = critical(alpha) * var.max(0.0).sqrt();
    let (lower, upper) = ((ratio.ln() - d).exp(), (ratio.ln() + d).exp());
    (lower.is_finite() && upper.is_finite()).then_some(Interval {
        lower,
        upper,
        confidence: 1.0 - alpha,
        adjusted,
    })
}

/// Bonferroni: the per-comparison alpha for `m` comparisons sharing `alpha` (m ≥ 1).
pub fn bonferroni(alpha: f64, m: usize) -> f64 {
    alpha / m.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(count: u64, nobs: u64) -> Proportion {
        Proportion { count, nobs }
    }

    #[test]
    fn wilson_is_inside_zero_one_and_contains_the_rate() {
        for (c, n) in [(0, 1), (1, 1), (0, 5), (5, 5), (3, 7), (500, 1000)] {
            let i = wilson(p(c, n), 0.05).unwrap();
            let r = c as f64 / n as f64;
            let eps = 1e-12;
            assert!(0.0 <= i.lower && i.lower <= r + eps, "{c}/{n}: {i:?}");
            assert!(r <= i.upper + eps && i.upper <= 1.0, "{c}/{n}: {i:?}");
        }
        assert!(wilson(p(0, 0), 0.05).is_none());
        assert!(wilson(p(2, 1), 0.05).is_none());
    }

    #[test]
    fn katz_adjusts_only_for_zero_counts() {
        assert!(!katz(p(3, 10), p(4, 10), 0.05).unwrap().adjusted);
        assert!(katz(p(0, 10), p(4, 10), 0.05).unwrap().adjusted);
        assert!(katz(p(0, 10), p(0, 10), 0.05).is_some());
    }

    #[test]
    fn more_confidence_is_wider() {
        let a = newcombe(p(30, 100), p(50, 100), 0.05).unwrap();
        let b = newcombe(p(30, 100), p(50, 100), 0.01).unwrap();
        assert!(b.lower < a.lower && b.upper > a.upper);
    }
}
