//! Multivariate drift by PCA reconstruction error, as NannyML's `DataReconstructionDriftCalculator`.
//!
//! Fitted on the reference: impute (mean for numeric, most frequent for categorical), encode
//! each category by its reference frequency, standardise, and keep the principal components
//! that explain more than 65 % of the variance. An event's reconstruction error is the
//! Euclidean norm of what those components cannot reproduce, in standardised space. A shift
//! that breaks the correlation between features raises it even when every marginal holds.
//!
//! Per window only the count, sum and sum of squares of the per-event errors are kept
//! ([`ErrorMoments`]), so windows and replicas merge; the window's value is their mean, as
//! NannyML's chunk value. The default threshold is NannyML's: mean ± 3 σ of the reference
//! chunks' values (10 chunks in row order), the lower one floored at 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::FeatureValue;

mod fit;
pub use fit::{unscaled, FitColumn, MISSING_CODE, POW10, SCALED_MISSING};

/// Variance share the kept components must exceed (NannyML's default `n_components=0.65`).
pub const VARIANCE_SHARE: f64 = 0.65;

/// Reference chunks the threshold is computed over (NannyML's `DefaultChunker`).
pub const REFERENCE_CHUNKS: usize = 10;

/// How one feature is turned into a number before standardisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// A numeric feature; missing values become the reference mean.
    Numeric {
        /// The imputed value.
        impute: f64,
    },
    /// A categorical feature, encoded by its reference frequency (category-encoders'
    /// `CountEncoder(normalize=True)`); missing values become the most frequent category, and
    /// unseen categories encode as 0.
    Categorical {
        /// The imputed category.
        impute: String,
        /// Share of reference rows per category, after imputation.
        frequencies: BTreeMap<String, f64>,
    },
}

impl Encoding {
    /// The number one value stands for: imputed when missing (or a non-finite number),
    /// the reference frequency of its category (0 when unseen).
    fn encode(&self, value: Option<&FeatureValue>) -> f64 {
        match (self, value) {
            (Self::Numeric { .. }, Some(FeatureValue::Numeric(x))) if x.is_finite() => *x,
            (Self::Numeric { impute }, _) => *impute,
            (
                Self::Categorical {
                    impute,
                    frequencies,
                },
                v,
            ) => {
                let c = match v {
                    Some(FeatureValue::Categorical(c)) => c.as_str(),
                    _ => impute.as_str(),
                };
                frequencies.get(c).copied().unwrap_or(0.0)
            }
        }
    }
}

/// A [`ReconstructionModel`] laid out for [`ReconstructionModel::error_with`]: the components
/// transposed, eight at a time, into one contiguous array, and the frequency encoding of a categorical
/// feature with few categories as a short list compared by length first (instead of a
/// `BTreeMap` search comparing strings byte by byte). Made once per window summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    k: usize,
    d: usize,
    shaped: bool,
    /// Per block of [`PROJECTION_LANES`] components, per feature `j`, the block's weights of
    /// `j` (zero past the last component).
    weights: Vec<f64>,
    encodings: Vec<FastEncoding>,
}

/// Components projected together by [`ReconstructionModel::error_with`].
const PROJECTION_LANES: usize = 8;

/// Rows per call of [`ReconstructionModel::errors_of_centred`] (a multiple of [`CENTRED_TILE`]).
pub const CENTRED_ROWS: usize = 256;

/// Rows per tile of [`ReconstructionModel::errors_of_centred`]'s input.
pub const CENTRED_TILE: usize = 8;

/// Categories up to which a frequency encoding is a list rather than the model's map.
const FEW_CATEGORIES: usize = 16;

#[derive(Debug, Clone, PartialEq)]
enum FastEncoding {
    Numeric(f64),
    /// The category's frequency, and the imputed category's (for a missing value).
    Few {
        frequencies: Vec<(String, f64)>,
        missing: f64,
    },
    /// Many categories: the model's own encoding.
    Model,
}

impl FastEncoding {
    fn new(e: &Encoding) -> Self {
        match e {
            Encoding::Numeric { impute } => Self::Numeric(*impute),
            Encoding::Categorical {
                impute,
                frequencies,
            } if frequencies.len() <= FEW_CATEGORIES => Self::Few {
                frequencies: frequencies.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                missing: frequencies.get(impute).copied().unwrap_or(0.0),
            },
            Encoding::Categorical { .. } => Self::Model,
        }
    }

    /// [`Encoding::encode`], for `Numeric` and `Few`.
    #[inline]
    fn encode(&self, value: Option<&FeatureValue>) -> f64 {
        match (self, value) {
            (Self::Numeric(_), Some(FeatureValue::Numeric(x))) if x.is_finite() => *x,
            (Self::Numeric(impute), _) => *impute,
            (Self::Few { frequencies, .. }, Some(FeatureValue::Categorical(c))) => frequencies
                .iter()
                .find(|(k, _)| same_text(k, c))
                .map_or(0.0, |(_, f)| *f),
            (Self::Few { missing, .. }, _) => *missing,
            (Self::Model, _) => f64::NAN,
        }
    }
}

/// Whether two strings are equal, compared in place (category names are short: a call to
/// `memcmp` per candidate cost more than the comparison).
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// The fitted reconstruction model the reference profile carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionModel {
    /// One encoding per feature, in schema order.
    pub encodings: Vec<Encoding>,
    /// Standardisation: per-column mean of the encoded reference.
    pub mean: Vec<f64>,
    /// Standardisation: per-column population std (1 where it is 0, as scikit-learn).
    pub scale: Vec<f64>,
    /// Mean of the standardised reference (≈ 0), which PCA centres on.
    pub center: Vec<f64>,
    /// Kept components, `k` rows of `d` orthonormal weights.
    pub components: Vec<Vec<f64>>,
    /// Explained variance ratio of each kept component.
    pub explained_variance_ratio: Vec<f64>,
    /// Default lower threshold (mean − 3 σ of the reference chunks, floored at 0).
    pub lower_threshold: f64,
    /// Default upper threshold (mean + 3 σ of the reference chunks).
    pub upper_threshold: f64,
}

/// Why a reconstruction model cannot be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Fewer than two rows.
    #[error("reconstruction error needs at least two reference rows, got {0}")]
    TooFewRows(usize),
    /// No features.
    #[error("reconstruction error needs at least one feature")]
    NoFeatures,
    /// A row's length or kinds differ from the first row's.
    #[error("reference row {row}: feature {feature} has the wrong kind")]
    Kind {
        /// Row index.
        row: usize,
        /// Feature index.
        feature: usize,
    },
}

/// Per-window moments of the per-event reconstruction error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorMoments {
    /// Events.
    pub count: u64,
    /// Sum of errors.
    pub sum: f64,
    /// Sum of squared errors.
    pub sum_sq: f64,
}

impl ErrorMoments {
    /// Adds one event's error.
    pub fn record(&mut self, error: f64) {
        self.count += 1;
        self.sum += error;
        self.sum_sq += error * error;
    }

    /// Adds another window's moments.
    pub fn merge(&mut self, other: &ErrorMoments) {
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    /// Mean error (the `reconstruction_error` metric).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// Sample standard deviation (ddof = 1, as NannyML).
    pub fn std(&self) -> Option<f64> {
        (self.count > 1).then(|| {
            let n = self.count as f64;
            ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0))
                .max(0.0)
                .sqrt()
        })
    }

    /// NannyML's sampling error of the mean: `std / √n`.
    pub fn sampling_error(&self) -> Option<f64> {
        self.std().map(|s| s / (self.count as f64).sqrt())
    }
}

/// Cyclic Jacobi eigen-decomposition of a symmetric matrix: eigenvalues (descending) and unit
/// eigenvectors (as rows).
// Matrix code reads clearer with explicit indices.
#[allow(clippy::needless_range_loop)]
fn symmetric_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = a.len();
    let mut v: Vec<Vec<f64>> = (0..d)
        .map(|i| (0..d).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let diag: f64 = (0..d).map(|i| a[i][i] * a[i][i]).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| a[j][j].total_cmp(&a[i][i]));
    let values = order.iter().map(|&i| a[i][i]).collect();
    let vectors = order
        .iter()
        .map(|&i| (0..d).map(|k| v[k][i]).collect())
        .collect();
    (values, vectors)
}

impl ReconstructionModel {
    /// Reconstruction error of a standardised row: `√(‖c‖² − ‖W c‖²)` with `c` the centred
    /// row and `W` the kept components (orthonormal rows): k × d multiply-adds plus 2 d.
    fn standardised_error(&self, z: &[f64]) -> f64 {
        let mut norm_sq = 0.0;
        let mut c = [0.0f64; 64];
        let mut heap;
        let c: &mut [f64] = if z.len() <= 64 {
            &mut c[..z.len()]
        } else {
            heap = vec![0.0; z.len()];
            &mut heap
        };
        for (j, x) in z.iter().enumerate() {
            c[j] = x - self.center[j];
            norm_sq += c[j] * c[j];
        }
        let mut projected = 0.0;
        for w in &self.components {
            let y: f64 = w.iter().zip(c.iter()).map(|(a, b)| a * b).sum();
            projected += y * y;
        }
        (norm_sq - projected).max(0.0).sqrt()
    }

    /// Reconstruction error of one event's features (schema order).
    pub fn error(&self, row: &[FeatureValue]) -> f64 {
        let d = self.encodings.len();
        let mut z = [0.0f64; 64];
        let mut heap;
        let z: &mut [f64] = if d <= 64 {
            &mut z[..d]
        } else {
            heap = vec![0.0; d];
            &mut heap
        };
        for (j, e) in self.encodings.iter().enumerate() {
            let x = e.encode(row.get(j));
            z[j] = (x - self.mean[j]) / self.scale[j];
        }
        self.standardised_error(z)
    }

    /// What [`error`](Self::error) needs per event, laid out for speed: see [`Projection`].
    pub fn projection(&self) -> Projection {
        let (k, d) = (self.components.len(), self.encodings.len());
        let shaped = self.mean.len() == d
            && self.scale.len() == d
            && self.center.len() == d
            && self.components.iter().all(|w| w.len() == d);
        // Blocks of PROJECTION_LANES components, each block `d` rows of its lanes' weights;
        // lanes past `k` (in the last block) weigh nothing and are never read back.
        let weights = if shaped {
            self.components
                .chunks(PROJECTION_LANES)
                .flat_map(|block| {
                    (0..d).flat_map(move |j| {
                        (0..PROJECTION_LANES).map(move |l| block.get(l).map_or(0.0, |w| w[j]))
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        Projection {
            k,
            d,
            shaped,
            weights,
            encodings: self.encodings.iter().map(FastEncoding::new).collect(),
        }
    }

    /// [`error`](Self::error), through `projection` (made by [`projection`](Self::projection)
    /// from this model): the same value to the bit.
    pub fn error_with(&self, projection: &Projection, row: &[FeatureValue]) -> f64 {
        let (k, d) = (projection.k, projection.d);
        if !projection.shaped || d == 0 || d > 64 || d != self.encodings.len() {
            return self.error(row);
        }
        let mut x = [0.0f64; 64];
        for (j, e) in projection.encodings.iter().enumerate() {
            x[j] = match e {
                FastEncoding::Few { .. } | FastEncoding::Numeric(_) => e.encode(row.get(j)),
                FastEncoding::Model => self.encodings[j].encode(row.get(j)),
            };
        }
        self.projected_error(projection, &x[..d], k, d)
    }

    /// The number feature `j`'s category (`None`: missing) stands for, as [`error`](Self::error)
    /// encodes it: its reference frequency, 0 when unseen, the imputed category's when missing
    /// (and the imputed value for a numeric feature). For [`error_of_encoded`](Self::error_of_encoded),
    /// which a batch of rows calls once per row after encoding each category once.
    pub fn encode_category(&self, j: usize, category: Option<&str>) -> f64 {
        match (self.encodings.get(j), category) {
            (None, _) => f64::NAN,
            (Some(Encoding::Numeric { impute }), _) => *impute,
            (
                Some(Encoding::Categorical {
                    impute,
                    frequencies,
                }),
                c,
            ) => frequencies
                .get(c.unwrap_or(impute.as_str()))
                .copied()
                .unwrap_or(0.0),
        }
    }

    /// The number feature `j`'s value (`None`: missing) stands for, as
    /// [`encode_category`](Self::encode_category) for a numeric feature: the value when finite,
    /// else the imputed one.
    pub fn encode_number(&self, j: usize, x: Option<f64>) -> f64 {
        match (self.encodings.get(j), x) {
            (None, _) => f64::NAN,
            (Some(Encoding::Numeric { .. }), Some(x)) if x.is_finite() => x,
            (Some(Encoding::Numeric { impute }), _) => *impute,
            (Some(e @ Encoding::Categorical { .. }), _) => e.encode(None),
        }
    }

    /// [`error_with`](Self::error_with) of a row already encoded (`x[j]`, one per encoding, from
    /// [`encode_number`](Self::encode_number) and [`encode_category`](Self::encode_category)):
    /// the same number, to the bit, as from the row's values.
    pub fn error_of_encoded(&self, projection: &Projection, x: &[f64]) -> f64 {
        let (k, d) = (projection.k, projection.d);
        if !projection.shaped || d == 0 || d > 64 || d != self.encodings.len() || x.len() != d {
            // `error`'s own steps: standardise, then `standardised_error`.
            let z: Vec<f64> = (0..self.encodings.len())
                .map(|j| {
                    let x = x
                        .get(j)
                        .copied()
                        .unwrap_or_else(|| self.encode_number(j, None));
                    (x - self.mean[j]) / self.scale[j]
                })
                .collect();
            return self.standardised_error(&z);
        }
        self.projected_error(projection, x, k, d)
    }

    /// The body of [`error_with`](Self::error_with) after encoding.
    #[inline]
    fn projected_error(&self, projection: &Projection, x: &[f64], k: usize, d: usize) -> f64 {
        let mut c = [0.0f64; 64];
        let mut norm_sq = 0.0;
        for (j, &x) in x.iter().enumerate().take(d) {
            let z = (x - self.mean[j]) / self.scale[j];
            c[j] = z - self.center[j];
            norm_sq += c[j] * c[j];
        }
        // Every component's dot product at once, one accumulator each (eight at a time, in
        // registers): the same products added in the same order as `standardised_error`'s one
        // dot product after another (so the same bits), without its single chain of k × d
        // dependent additions.
        let mut projected = 0.0;
        for (b, block) in projection
            .weights
            .chunks_exact(PROJECTION_LANES * d)
            .enumerate()
        {
            let mut acc = [-0.0f64; PROJECTION_LANES];
            for (x, w) in c[..d].iter().zip(block.chunks_exact(PROJECTION_LANES)) {
                for (a, w) in acc.iter_mut().zip(w) {
                    *a += w * x;
                }
            }
            let lanes = (k - b * PROJECTION_LANES).min(PROJECTION_LANES);
            for y in &acc[..lanes] {
                projected += y * y;
            }
        }
        (norm_sq - projected).max(0.0).sqrt()
    }

    /// Whether [`centred`](Self::centred) and [`errors_of_centred`](Self::errors_of_centred)
    /// apply with `projection` (made from this model): the shapes agree and the model has
    /// between 1 and 64 features, as [`error_of_encoded`](Self::error_of_encoded)'s fast path needs.
    pub fn batches(&self, projection: &Projection) -> bool {
        let d = projection.d;
        projection.shaped && d > 0 && d <= 64 && d == self.encodings.len()
    }

    /// Feature `j`'s encoded value `x` standardised and centred, `(x − mean) / scale − center`:
    /// the very operations [`error_of_encoded`](Self::error_of_encoded) makes per feature, so
    /// a batch can make them once per value a column at a time (or once per category).
    #[inline]
    pub fn centred(&self, j: usize, x: f64) -> f64 {
        (x - self.mean[j]) / self.scale[j] - self.center[j]
    }

    /// The errors of `out.len()` rows (at most [`CENTRED_ROWS`]) whose
    /// [`centred`](Self::centred) values lie in `c` in tiles of [`CENTRED_TILE`] rows (row `r`'s
    /// feature `j` at `c[((r / CENTRED_TILE) * d + j) * CENTRED_TILE + r % CENTRED_TILE]`, `d`
    /// features): each the number [`error_of_encoded`](Self::error_of_encoded) gives for that
    /// row, to the bit. Per row the same products are added in the same order (each
    /// component's dot product over the features in order, from `-0.0`; the squared norm and
    /// the squared projections in order, from `0.0`); only the rows of a tile are done side by
    /// side (two components at a time), so the additions run in vector lanes instead of one
    /// chain. `batches(projection)` must hold.
    pub fn errors_of_centred(&self, projection: &Projection, c: &[f64], out: &mut [f64]) {
        const T: usize = CENTRED_TILE;
        let (k, d) = (projection.k, projection.d);
        for (tile, out) in c.chunks_exact(d * T).zip(out.chunks_mut(T)) {
            let mut norm = [0.0f64; T];
            for x in tile.as_chunks::<T>().0 {
                for t in 0..T {
                    norm[t] += x[t] * x[t];
                }
            }
            let mut projected = [0.0f64; T];
            let mut pairs = self.components[..k].chunks_exact(2);
            for pair in &mut pairs {
                let (mut a, mut b) = ([-0.0f64; T], [-0.0f64; T]);
                for ((x, &u), &v) in tile.as_chunks::<T>().0.iter().zip(&pair[0]).zip(&pair[1]) {
                    for t in 0..T {
                        a[t] += u * x[t];
                        b[t] += v * x[t];
                    }
                }
                for t in 0..T {
                    projected[t] += a[t] * a[t];
                }
                for t in 0..T {
                    projected[t] += b[t] * b[t];
                }
            }
            for w in pairs.remainder() {
                let mut a = [-0.0f64; T];
                for (x, &u) in tile.as_chunks::<T>().0.iter().zip(w) {
                    for t in 0..T {
                        a[t] += u * x[t];
                    }
                }
                for t in 0..T {
                    projected[t] += a[t] * a[t];
                }
            }
            for (t, e) in out.iter_mut().enumerate() {
                *e = (norm[t] - projected[t]).max(0.0).sqrt();
            }
        }
    }

    /// Whether a window's mean error lies outside the default thresholds.
    pub fn alerts(&self, mean_error: f64) -> bool {
        !(self.lower_threshold < mean_error && mean_error < self.upper_threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(x: f64) -> FeatureValue {
        FeatureValue::Numeric(x)
    }

    #[test]
    fn jacobi_recovers_a_known_spectrum() {
        let (values, vectors) = symmetric_eigen(vec![vec![2.0, 1.0], vec![1.0, 2.0]]);
        assert!((values[0] - 3.0).abs() < 1e-12 && (values[1] - 1.0).abs() < 1e-12);
        let v = &vectors[0];
        assert!((v[0].abs() - v[1].abs()).abs() < 1e-12 && v[0] * v[1] > 0.0);
    }

    #[test]
    fn breaking_a_correlation_raises_the_error() {
        // Two perfectly correlated features: one component explains everything.
        let rows: Vec<Vec<FeatureValue>> = (0..100)
            .map(|i| {
                let x = f64::from(i) / 10.0;
                vec![num(x), num(2.0 * x + 1.0)]
            })
            .collect();
        let model = ReconstructionModel::fit(&rows).unwrap();
        assert_eq!(model.components.len(), 1);
        assert!(model.error(&[num(3.0), num(7.0)]) < 1e-9);
        // Standardised, (3, 19) sits (z1 - z2) / √2 ≈ 1.47 off the line.
        let off = model.error(&[num(3.0), num(19.0)]);
        assert!((off - 1.47).abs() < 0.01, "{off}");
    }

    #[test]
    fn moments_give_the_sample_std() {
        let mut m = ErrorMoments::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            m.record(x);
        }
        assert_eq!(m.mean(), Some(2.5));
        assert!((m.std().unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
