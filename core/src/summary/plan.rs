//! What [`WindowSummary::record`](super::WindowSummary::record) works out once per summary
//! instead of once per event: for every numeric feature, an index into its reference edges, so
//! that finding a value's fine bin costs a multiplication and a step or two instead of a
//! binary search over the 99 interior edges (seven dependent loads and comparisons, the
//! largest single cost of recording a numeric feature); and the PCA model's
//! [`Projection`], its components transposed for the per-event reconstruction error.
//!
//! The index only narrows the search: the bin is still decided by comparing the value with the
//! reference's own edges, so it is the bin [`fine_bin`](crate::quantile::fine_bin) gives, to
//! the bit (see `bins_match_the_binary_search` below and the differential tests in
//! `core/tests/record_bits.rs`).

use std::sync::Arc;

use crate::pca::Projection;
use crate::profile::{FeatureProfile, ReferenceProfile};
use crate::quantile::{fine_bin, FinePosition};

/// Buckets of equal width over a feature's reference range.
const BUCKETS: usize = 512;

/// Where the interior edges of one numeric feature lie in equal-width buckets over
/// `[lo, hi]`, the outermost edges.
///
/// Why it gives exactly the binary search's bin: `bucket` is monotone in `x` (a subtraction, a
/// multiplication by a positive constant, a truncation and a clamp, each monotone under IEEE
/// rounding). So an edge in a lower bucket than `x` is below `x`, and one in a higher bucket is
/// above it; only the edges in `x`'s own bucket need comparing, and `first[t]` is the number of
/// edges in buckets below `t`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EdgeIndex {
    lo: f64,
    hi: f64,
    scale: f64,
    edges: usize,
    /// `first[t]` interior edges lie in buckets below `t`.
    first: Box<[u8; BUCKETS + 1]>,
    /// The interior edges, then two `+∞`: past a bucket's own edges lie only edges of higher
    /// buckets, which are above any value of the bucket, or these, which are above any value
    /// in range; so the two edges from `first[t]` on can be compared without checking that
    /// they are in the bucket.
    padded: Vec<f64>,
}

impl EdgeIndex {
    /// The index of `edges` (all `FINE_BINS + 1` of them), or `None` when it would not help
    /// (an empty or constant range, non-finite or unsorted edges, more edges than a `u8`
    /// counts).
    pub(crate) fn new(edges: &[f64]) -> Option<Self> {
        let (&lo, &hi) = (edges.first()?, edges.last()?);
        let width = hi - lo;
        let scale = BUCKETS as f64 / width;
        if edges.len() < 2
            || edges.len() > usize::from(u8::MAX)
            || !edges.iter().all(|e| e.is_finite())
            || !edges.windows(2).all(|w| w[0] <= w[1])
            || !(width > 0.0 && width.is_finite() && scale.is_finite() && scale > 0.0)
        {
            return None;
        }
        let interior = &edges[1..edges.len() - 1];
        let mut index = Self {
            lo,
            hi,
            scale,
            edges: edges.len(),
            first: Box::new([0; BUCKETS + 1]),
            padded: interior.iter().copied().chain([f64::INFINITY; 2]).collect(),
        };
        let mut counts = vec![0u8; BUCKETS];
        for &e in interior {
            counts[index.bucket(e)] += 1;
        }
        let mut below = 0u8;
        for (t, c) in counts.iter().enumerate() {
            index.first[t] = below;
            below += c;
        }
        index.first[BUCKETS] = below;
        Some(index)
    }

    #[inline(always)]
    fn bucket(&self, x: f64) -> usize {
        // `as` saturates (NaN to 0), so every x lands in 0..BUCKETS. Through `i64`, whose
        // conversion is one instruction and a fix-up (`usize`'s needs a second range): the
        // same bucket for every x, as both saturate and truncate alike on `0..BUCKETS`.
        (((x - self.lo) * self.scale) as i64).clamp(0, BUCKETS as i64 - 1) as usize
    }

    /// [`fine_bin`] of `x` against `edges`, which must be the edges this index was made from.
    #[inline(always)]
    pub(crate) fn fine_bin(&self, edges: &[f64], x: f64) -> FinePosition {
        if edges.len() != self.edges {
            return fine_bin(edges, x);
        }
        if x < self.lo {
            return FinePosition::Below;
        }
        if x > self.hi {
            return FinePosition::Above;
        }
        let t = self.bucket(x);
        let (r, end) = (usize::from(self.first[t]), usize::from(self.first[t + 1]));
        if end - r > 2 {
            // Many edges in one bucket (a range stretched by a far outlier): search them.
            let interior = &self.padded[..self.edges - 2];
            return FinePosition::Bin(r + interior[r..end].partition_point(|&e| e <= x));
        }
        // At most two edges to compare: both compared without a branch (which edge a value
        // passes is a coin flip for the branch predictor); one past the bucket's edges is
        // above `x` (see `padded`), so it counts nothing.
        let e = &self.padded[r..r + 2];
        FinePosition::Bin(r + usize::from(e[0] <= x) + usize::from(e[1] <= x))
    }
}

/// The per-summary plan: one optional [`EdgeIndex`] per feature (schema order) and one for a
/// regression model's output, made from the profile the summary records against.
#[derive(Debug, PartialEq)]
pub(crate) struct Plan {
    /// The profile it was made from: its content hash and where it lives, so that a summary
    /// recorded against another profile (or a moved copy) makes a new plan rather than use a
    /// stale one.
    profile_hash: String,
    profile_at: usize,
    pub(crate) features: Vec<Option<EdgeIndex>>,
    pub(crate) prediction: Option<EdgeIndex>,
    /// The profile's PCA model laid out for its per-event error.
    pub(crate) reconstruction: Option<Projection>,
}

impl Plan {
    fn new(profile: &ReferenceProfile) -> Self {
        Self {
            profile_hash: profile.hash.clone(),
            profile_at: std::ptr::from_ref(profile) as usize,
            features: profile
                .features
                .iter()
                .map(|f| match f {
                    FeatureProfile::Numeric { stats, .. } => EdgeIndex::new(&stats.edges),
                    FeatureProfile::Categorical { .. } => None,
                })
                .collect(),
            prediction: profile
                .prediction
                .value
                .as_ref()
                .and_then(|v| EdgeIndex::new(&v.edges)),
            reconstruction: profile.reconstruction.as_ref().map(|m| m.projection()),
        }
    }

    fn fits(&self, profile: &ReferenceProfile) -> bool {
        self.profile_at == std::ptr::from_ref(profile) as usize
            && self.profile_hash == profile.hash
            && self.features.len() == profile.features.len()
    }
}

/// A summary's plan, made at its first event. Not part of the summary's value: it is neither
/// serialised nor compared, and a clone shares it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlanSlot(Option<Arc<Plan>>);

impl PartialEq for PlanSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl PlanSlot {
    /// The plan for `profile`, made now if there is none yet or it was made from another.
    #[inline]
    pub(crate) fn get(&mut self, profile: &ReferenceProfile) -> &Plan {
        if self.0.as_ref().is_some_and(|p| !p.fits(profile)) {
            self.0 = None;
        }
        self.0.get_or_insert_with(|| Arc::new(Plan::new(profile)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edges: &[f64], xs: impl IntoIterator<Item = f64>) {
        let index = EdgeIndex::new(edges).expect("an index");
        for x in xs {
            assert_eq!(
                index.fine_bin(edges, x),
                fine_bin(edges, x),
                "x = {x:e}, edges = {edges:?}"
            );
        }
    }

    #[test]
    fn bins_match_the_binary_search() {
        // Ties, a heavy tail, a point mass and values on, next to and between every edge.
        let mut edges: Vec<f64> = (0..=100).map(|i| f64::from(i / 3)).collect();
        edges[100] = 1e6;
        let probes: Vec<f64> = edges
            .iter()
            .flat_map(|&e| [e, e.next_down(), e.next_up(), e + 0.5, -e])
            .chain([f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 5e5])
            .collect();
        check(&edges, probes.iter().copied());
        let mass: Vec<f64> = (0..=100)
            .map(|i| {
                if (10..90).contains(&i) {
                    1.0
                } else {
                    f64::from(i)
                }
            })
            .collect();
        let mut sorted = mass.clone();
        sorted.sort_by(f64::total_cmp);
        check(&sorted, probes.iter().copied().chain([1.0, 0.999, 1.001]));
        let fine: Vec<f64> = (0..=100).map(|i| f64::from(i).powi(3) * 1e-3).collect();
        check(
            &fine,
            (0..20_000)
                .map(|k| f64::from(k) * 0.05 - 10.0)
                .chain(probes),
        );
    }

    #[test]
    fn no_index_where_it_cannot_help() {
        assert!(EdgeIndex::new(&[]).is_none());
        assert!(EdgeIndex::new(&[1.0]).is_none());
        assert!(EdgeIndex::new(&[2.0; 101]).is_none());
        assert!(EdgeIndex::new(&[0.0, f64::INFINITY]).is_none());
        assert!(EdgeIndex::new(&[-f64::MAX, f64::MAX]).is_none());
    }
}
