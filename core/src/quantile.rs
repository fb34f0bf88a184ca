//! Exact quantiles the way NumPy computes them (`np.quantile`, method "linear"), so that the
//! reference profile's bin edges are the very edges a data scientist gets in Python.

/// Number of fine bins between the reference profile's quantile edges.
pub const FINE_BINS: usize = 100;

/// Fine bins at each end of the reference range in which a summary also records where current
/// values lie within the bin, so that the Wasserstein distance is exact where bins are widest
/// and drift in the tails shows.
pub const TAIL_BINS: usize = 4;

/// References with at most this many values get current positions in every fine bin: their
/// bins hold ten values or fewer, too few to assume that current values spread within a bin as
/// the reference's do.
pub const SUM_EVERY_BIN_UP_TO: u64 = 1000;

/// Extra reference quantiles that split each outermost fine bin: at probabilities `1 % / 2^k`
/// (and `1 − 1 % / 2^k`) for k = 1..=4. In heavy tails the outermost bins span most of the
/// range, and both CDFs cross inside them.
pub const TAIL_SPLITS: usize = 4;

/// Sub-bins of the two outermost fine bins: `TAIL_SPLITS + 1` at each end.
pub const TAIL_SUB_BINS: usize = 2 * (TAIL_SPLITS + 1);

/// A value's position within its bin is recorded in units of `1 / POSITION_SCALE` of the bin's
/// width, so that position sums are integers: exact under merge in any order, and short.
pub const POSITION_SCALE: f64 = (1u64 << 20) as f64;

/// Position of `x` within `[lo, hi]` in units of [`POSITION_SCALE`] (0 for an empty width).
#[inline]
pub fn position(x: f64, lo: f64, hi: f64) -> u64 {
    let width = hi - lo;
    if width > 0.0 {
        round_scaled(((x - lo) / width).clamp(0.0, 1.0) * POSITION_SCALE)
    } else {
        0
    }
}

/// `v.round() as u64` for `v` in `0..=POSITION_SCALE` or NaN (0), without the call to the
/// software `round` (compiler-builtins) that `f64::round` is on the baseline x86-64 target:
/// the truncation, plus one when the remainder is at least a half. The
/// remainder `v - trunc(v)` is exact for any `v` below 2^52, so this rounds half away from
/// zero exactly as `round` does (`position_rounds_as_round_does` below).
#[inline(always)]
fn round_scaled(v: f64) -> u64 {
    // `as i64` saturates and sends NaN to 0, one instruction and a fix-up; `v` is never
    // negative here (clamped), so the cast to u64 is lossless.
    let t = v as i64;
    (t + i64::from(v - t as f64 >= 0.5)) as u64
}

/// How many fine bins a summary records positions in, for a reference of `reference_count`
/// values: all of them for small references, else the [`TAIL_BINS`] at each end.
pub fn summed_bins(reference_count: u64) -> usize {
    if reference_count <= SUM_EVERY_BIN_UP_TO {
        FINE_BINS
    } else {
        2 * TAIL_BINS
    }
}

/// Position of fine bin `bin` among `summed` summed bins (see [`summed_bins`]): every bin, or
/// the lowest [`TAIL_BINS`] then the highest. `None` for a bin that is not summed.
pub fn sum_slot(bin: usize, summed: usize) -> Option<usize> {
    if summed == FINE_BINS {
        (bin < FINE_BINS).then_some(bin)
    } else if summed != 2 * TAIL_BINS {
        None
    } else if bin < TAIL_BINS {
        Some(bin)
    } else if (FINE_BINS - TAIL_BINS..FINE_BINS).contains(&bin) {
        Some(bin + 2 * TAIL_BINS - FINE_BINS)
    } else {
        None
    }
}

/// The probabilities of the tail edges, ascending: `1 % / 2^4 .. 1 % / 2`, then
/// `1 − 1 % / 2 .. 1 − 1 % / 2^4`.
pub fn tail_probabilities() -> Vec<f64> {
    let lower: Vec<f64> = (1..=TAIL_SPLITS)
        .rev()
        .map(|k| 0.01 / f64::from(1u32 << k))
        .collect();
    let upper = lower.iter().rev().map(|p| 1.0 - p);
    lower.iter().copied().chain(upper).collect()
}

/// Sub-bin (in `0..TAIL_SUB_BINS`) of `x`, which lies in fine bin `bin`, when that bin is an
/// outermost one and `tail_edges` is well formed; values equal to a tail edge go up.
pub fn tail_sub_bin(tail_edges: &[f64], bin: usize, x: f64) -> Option<usize> {
    if tail_edges.len() != 2 * TAIL_SPLITS {
        return None;
    }
    let (lower, upper) = tail_edges.split_at(TAIL_SPLITS);
    if bin == 0 {
        Some(lower.partition_point(|&t| t <= x))
    } else if bin == FINE_BINS - 1 {
        Some(TAIL_SPLITS + 1 + upper.partition_point(|&t| t <= x))
    } else {
        None
    }
}

/// Bounds `[lo, hi]` of tail sub-bin `slot`, given the fine edges and the tail edges.
pub fn tail_sub_bounds(edges: &[f64], tail_edges: &[f64], slot: usize) -> (f64, f64) {
    let (lower, upper) = tail_edges.split_at(TAIL_SPLITS);
    let side = TAIL_SPLITS + 1;
    let (inner, first, last) = if slot < side {
        (lower, edges[0], edges[1])
    } else {
        (upper, edges[FINE_BINS - 1], edges[FINE_BINS])
    };
    let k = slot % side;
    let lo = if k == 0 { first } else { inner[k - 1] };
    let hi = if k == TAIL_SPLITS { last } else { inner[k] };
    (lo, hi)
}

/// Number of coarse (decile) bins used by PSI and the other binned divergences.
pub const COARSE_BINS: usize = 10;

/// The probabilities `np.linspace(0, 1, FINE_BINS + 1)` produces, bit for bit.
pub fn fine_probabilities() -> Vec<f64> {
    let step = 1.0 / FINE_BINS as f64;
    let mut q: Vec<f64> = (0..=FINE_BINS).map(|i| i as f64 * step).collect();
    q[FINE_BINS] = 1.0;
    q
}

/// NumPy's `_lerp`: exact at both ends, symmetric in rounding.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// Quantiles of already sorted, finite data at probabilities `qs` (NumPy "linear").
/// Returns an empty vector for empty data.
pub fn sorted_quantiles(sorted: &[f64], qs: &[f64]) -> Vec<f64> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let n = sorted.len();
    qs.iter()
        .map(|&q| {
            let virtual_index = (n - 1) as f64 * q;
            let below = virtual_index.floor();
            let gamma = virtual_index - below;
            let i = (below as usize).min(n - 1);
            let j = (i + 1).min(n - 1);
            lerp(sorted[i], sorted[j], gamma)
        })
        .collect()
}

/// Fine-bin position of `x` given the full edge list `e_0..=e_B`: `None` below `e_0` or
/// above `e_B`, otherwise the number of interior edges `<= x` (NumPy's
/// `searchsorted(edges[1:-1], x, side="right")`).
pub fn fine_bin(edges: &[f64], x: f64) -> FinePosition {
    let (Some(&lo), Some(&hi)) = (edges.first(), edges.last()) else {
        return FinePosition::Below;
    };
    if x < lo {
        FinePosition::Below
    } else if x > hi {
        FinePosition::Above
    } else {
        FinePosition::Bin(count_at_most(&edges[1..edges.len() - 1], x))
    }
}

/// Number of elements of sorted `edges` that are `<= x`: a branch-free binary search, because
/// this runs for every numeric feature of every event and a mispredicted branch per step costs
/// more than the comparison.
fn count_at_most(edges: &[f64], x: f64) -> usize {
    if edges.is_empty() {
        return 0;
    }
    let mut base = 0;
    let mut size = edges.len();
    while size > 1 {
        let half = size / 2;
        // A conditional move, not a branch: the comparison is a coin flip for the predictor.
        base = std::hint::select_unpredictable(edges[base + half] <= x, base + half, base);
        size -= half;
    }
    base + usize::from(edges[base] <= x)
}

/// Where a value falls against the reference edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinePosition {
    /// Below the reference minimum.
    Below,
    /// Inside the reference range, in this fine bin.
    Bin(usize),
    /// Above the reference maximum.
    Above,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_linear_on_small_data() {
        // np.quantile([1, 2, 3, 4], [0, .25, .5, .9, 1]) == [1, 1.75, 2.5, 3.7, 4]
        let q = sorted_quantiles(&[1.0, 2.0, 3.0, 4.0], &[0.0, 0.25, 0.5, 0.9, 1.0]);
        let want = [1.0, 1.75, 2.5, 3.7, 4.0];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn fine_probabilities_end_exactly() {
        let q = fine_probabilities();
        assert_eq!(q.len(), FINE_BINS + 1);
        assert_eq!(q[0], 0.0);
        assert_eq!(q[FINE_BINS], 1.0);
        assert_eq!(q[50], 0.5);
    }

    #[test]
    fn branch_free_search_matches_partition_point() {
        let edges: Vec<f64> = (0..99).map(|i| f64::from(i / 3)).collect();
        for k in -2..70 {
            let x = f64::from(k) / 2.0;
            assert_eq!(
                count_at_most(&edges, x),
                edges.partition_point(|&e| e <= x),
                "x={x}"
            );
        }
        assert_eq!(count_at_most(&[], 1.0), 0);
    }

    #[test]
    fn sum_slots_cover_each_summed_bin_once() {
        let tails = 2 * TAIL_BINS;
        let slots: Vec<(usize, usize)> = (0..FINE_BINS)
            .filter_map(|b| sum_slot(b, tails).map(|s| (b, s)))
            .collect();
        assert_eq!(slots.len(), 2 * TAIL_BINS);
        assert_eq!(slots[0], (0, 0));
        assert_eq!(slots[TAIL_BINS - 1], (TAIL_BINS - 1, TAIL_BINS - 1));
        assert_eq!(slots[TAIL_BINS], (FINE_BINS - TAIL_BINS, TAIL_BINS));
        assert_eq!(slots[2 * TAIL_BINS - 1], (FINE_BINS - 1, 2 * TAIL_BINS - 1));
        assert_eq!(sum_slot(FINE_BINS / 2, tails), None);
        let all: Vec<usize> = (0..FINE_BINS)
            .filter_map(|b| sum_slot(b, FINE_BINS))
            .collect();
        assert_eq!(all, (0..FINE_BINS).collect::<Vec<_>>());
        assert_eq!(sum_slot(0, 3), None, "a malformed length sums nothing");
        assert_eq!(summed_bins(SUM_EVERY_BIN_UP_TO), FINE_BINS);
        assert_eq!(summed_bins(SUM_EVERY_BIN_UP_TO + 1), tails);
    }

    #[test]
    fn tail_sub_bins_split_the_outermost_bins() {
        let p = tail_probabilities();
        assert_eq!(p.len(), 2 * TAIL_SPLITS);
        assert!(p.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(p[TAIL_SPLITS - 1], 0.005);
        let edges: Vec<f64> = (0..=FINE_BINS).map(|i| i as f64).collect();
        let tails = [0.1, 0.2, 0.4, 0.8, 99.2, 99.6, 99.8, 99.9];
        assert_eq!(tail_sub_bin(&tails, 0, 0.0), Some(0));
        assert_eq!(tail_sub_bin(&tails, 0, 0.2), Some(2));
        assert_eq!(tail_sub_bin(&tails, 0, 0.9), Some(TAIL_SPLITS));
        assert_eq!(
            tail_sub_bin(&tails, FINE_BINS - 1, 99.0),
            Some(TAIL_SPLITS + 1)
        );
        assert_eq!(
            tail_sub_bin(&tails, FINE_BINS - 1, 100.0),
            Some(TAIL_SUB_BINS - 1)
        );
        assert_eq!(tail_sub_bin(&tails, 5, 5.5), None);
        assert_eq!(
            tail_sub_bin(&tails[1..], 0, 0.5),
            None,
            "malformed tail edges"
        );
        assert_eq!(tail_sub_bounds(&edges, &tails, 0), (0.0, 0.1));
        assert_eq!(tail_sub_bounds(&edges, &tails, TAIL_SPLITS), (0.8, 1.0));
        assert_eq!(
            tail_sub_bounds(&edges, &tails, TAIL_SPLITS + 1),
            (99.0, 99.2)
        );
        assert_eq!(
            tail_sub_bounds(&edges, &tails, TAIL_SUB_BINS - 1),
            (99.9, 100.0)
        );
        assert_eq!(position(0.5, 0.0, 2.0), (POSITION_SCALE / 4.0) as u64);
        assert_eq!(position(3.0, 1.0, 1.0), 0);
    }

    #[test]
    fn position_rounds_as_round_does() {
        let reference = |v: f64| v.round() as u64;
        let mut cases = vec![
            0.0,
            0.5,
            1.5,
            2.5,
            POSITION_SCALE,
            POSITION_SCALE - 0.5,
            f64::NAN,
        ];
        for k in 0..=4096u32 {
            let v = f64::from(k) / 4.0;
            cases.extend([v, v.next_up(), v.next_down().max(0.0)]);
        }
        // Halves and their neighbours across the whole range, and the largest value below 1/2.
        for k in (0..(1u64 << 20)).step_by(997) {
            let h = k as f64 + 0.5;
            cases.extend([h, h.next_up(), h.next_down()]);
        }
        cases.push(0.5f64.next_down());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            cases.push((state >> 11) as f64 / (1u64 << 53) as f64 * POSITION_SCALE);
        }
        for v in cases {
            assert_eq!(round_scaled(v), reference(v), "v = {v:e}");
        }
        // Through `position`: the same integers as `round` on the same quotient.
        let triples: [(f64, f64, f64); 4] = [
            (0.3, 0.1, 0.7),
            (1e-300, 0.0, 3e-300),
            (5.0, 5.0, 6.0),
            (6.0, 5.0, 6.0),
        ];
        for (x, lo, hi) in triples {
            let want = (((x - lo) / (hi - lo)).clamp(0.0, 1.0) * POSITION_SCALE).round() as u64;
            assert_eq!(position(x, lo, hi), want);
        }
    }

    #[test]
    fn binning_follows_searchsorted_right() {
        let edges = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(fine_bin(&edges, -0.1), FinePosition::Below);
        assert_eq!(fine_bin(&edges, 0.0), FinePosition::Bin(0));
        assert_eq!(fine_bin(&edges, 1.0), FinePosition::Bin(1));
        assert_eq!(fine_bin(&edges, 3.0), FinePosition::Bin(2));
        assert_eq!(fine_bin(&edges, 3.5), FinePosition::Above);
    }
}
