//! The score bins that the profile, the summary and CBPE share: equal-width bins of a
//! positive-class score on [0, 1]. A module of its own so that each of them depends on it and
//! none on another for it.

/// Number of equal-width score bins on [0, 1].
pub const SCORE_BINS: usize = 100;

/// Bin of a score in [0, 1] among [`SCORE_BINS`] equal-width bins (1.0 in the last).
pub fn score_bin(score: f64) -> usize {
    ((score * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1)
}
