//! Confidence-based performance estimation (CBPE) for binary classification, as NannyML does it.
//!
//! Labels often arrive late or never. CBPE estimates the confusion matrix from the model's own
//! scores, once they are calibrated on the reference's labelled rows: a row predicted positive
//! with calibrated probability `p` counts `p` towards the true positives and `1 - p` towards the
//! false positives. Summed per window, those expectations are additive, so windows and replicas
//! merge and the estimates stay exact. The method assumes no concept drift: the score-to-outcome
//! relation of the reference still holds in production (covariate shift alone is fine).
//!
//! - [`CalibrationMap`]: the isotonic map from score to probability, stored as its knots;
//! - [`needs_calibration`]: NannyML's rule for whether to calibrate at all;
//! - [`CbpeProfile`]: what the reference profile carries (map + sampling-error components);
//! - [`CbpeSums`]: what a window summary carries, with [`CbpeSums::merge`];
//! - [`CbpeSums::estimate`]: accuracy, precision, recall, F1 and ROC AUC with ±3 SE bands.

use serde::{Deserialize, Serialize};

/// Equal-width score bins the estimated ROC AUC is computed on: the summary's own score bins
/// ([`crate::score::SCORE_BINS`]), whose counts it already keeps.
pub const CBPE_SCORE_BINS: usize = crate::score::SCORE_BINS;

/// Half-width of the sampling-error band, in standard errors (NannyML's `SAMPLING_ERROR_RANGE`).
pub const SAMPLING_ERROR_RANGE: f64 = 3.0;

/// A monotone, piecewise-linear map from score to the probability of the positive class.
///
/// The knots are scikit-learn's `IsotonicRegression(out_of_bounds="clip")` thresholds: scores
/// between two knots are interpolated linearly, scores outside are clipped to the end knots. No
/// knots means the identity (NannyML's "no calibration needed").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CalibrationMap {
    /// Knot scores, ascending.
    #[serde(default)]
    pub x: Vec<f64>,
    /// Calibrated probability at each knot, non-decreasing.
    #[serde(default)]
    pub y: Vec<f64>,
}

impl CalibrationMap {
    /// The identity map (scores are already calibrated).
    pub fn identity() -> Self {
        Self::default()
    }

    /// Whether this is the identity.
    pub fn is_identity(&self) -> bool {
        self.x.is_empty()
    }

    /// Fits isotonic regression of `labels` (0/1) on `scores`, as scikit-learn does: ties in
    /// the score are pooled to their mean label, pool-adjacent-violators makes the fit
    /// non-decreasing, and only the knots where the fitted value changes are kept.
    pub fn fit_isotonic(scores: &[f64], labels: &[bool]) -> Self {
        let order = score_order(scores);
        Self::fit_sorted(order.iter().map(|&i| (scores[i], labels[i])))
    }

    /// [`fit_isotonic`](Self::fit_isotonic) on rows already in [`score_order`].
    fn fit_sorted(rows: impl Iterator<Item = (f64, bool)>) -> Self {
        // Unique scores with their mean label and weight.
        let mut xs: Vec<f64> = Vec::new();
        let mut ys: Vec<f64> = Vec::new();
        let mut ws: Vec<f64> = Vec::new();
        for (s, l) in rows.map(|(s, l)| (s, f64::from(u8::from(l)))) {
            if xs.last() == Some(&s) {
                let i = xs.len() - 1;
                ys[i] += l;
                ws[i] += 1.0;
            } else {
                xs.push(s);
                ys.push(l);
                ws.push(1.0);
            }
        }
        for (y, w) in ys.iter_mut().zip(&ws) {
            *y /= w;
        }
        // Pool adjacent violators on blocks (value, weight, length).
        let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(xs.len());
        for (&y, &w) in ys.iter().zip(&ws) {
            blocks.push((y, w, 1));
            while blocks.len() > 1 {
                let n = blocks.len();
                if blocks[n - 2].0 <= blocks[n - 1].0 {
                    break;
                }
                let (b, a) = (blocks[n - 1], blocks[n - 2]);
                let w = a.1 + b.1;
                blocks[n - 2] = ((a.0 * a.1 + b.0 * b.1) / w, w, a.2 + b.2);
                blocks.pop();
            }
        }
        let fitted: Vec<f64> = blocks
            .iter()
            .flat_map(|&(v, _, len)| std::iter::repeat_n(v, len))
            .collect();
        // scikit-learn keeps the first and last point and every point where the fit changes
        // on either side.
        let n = xs.len();
        let mut map = Self::default();
        for i in 0..n {
            let keep =
                i == 0 || i == n - 1 || fitted[i - 1] != fitted[i] || fitted[i] != fitted[i + 1];
            if keep {
                map.x.push(xs[i]);
                map.y.push(fitted[i]);
            }
        }
        map
    }

    /// The calibrated probability of a score.
    pub fn apply(&self, score: f64) -> f64 {
        let (x, y) = (&self.x, &self.y);
        match x.len() {
            0 => score,
            1 => y[0],
            n => {
                if score <= x[0] {
                    return y[0];
                }
                if score >= x[n - 1] {
                    return y[n - 1];
                }
                // First knot above the score: the score lies in [x[i - 1], x[i]).
                let i = x.partition_point(|&k| k <= score);
                let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
                y0 + (y1 - y0) * (score - x0) / (x1 - x0)
            }
        }
    }
}

/// NannyML's index-based bins for the expected calibration error.
fn ece_bin_edges(n: usize, bin_count: usize) -> Vec<(usize, usize)> {
    let bin_count = if n <= 2 * bin_count { n / 2 } else { bin_count };
    if bin_count < 2 {
        return Vec::new();
    }
    let width = n / bin_count;
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    if let Some(last) = edges.last_mut() {
        *last = n;
    }
    edges.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Expected calibration error on index bins of the rows sorted by probability.
fn expected_calibration_error(rows: &mut [(f64, f64)], edges: &[(usize, usize)]) -> f64 {
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = rows.len() as f64;
    edges
        .iter()
        .map(|&(l, r)| {
            let bin = &rows[l..r];
            let len = bin.len() as f64;
            let p = bin.iter().map(|x| x.0).sum::<f64>() / len;
            let t = bin.iter().map(|x| x.1).sum::<f64>() / len;
            len / n * (p - t).abs()
        })
        .sum()
}

/// ROC AUC of labelled scores, ties counted half (scikit-learn's `roc_auc_score`).
pub fn exact_roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    roc_auc_sorted(&score_order(scores), scores, labels)
}

/// Row indices by ascending score (`f64::total_cmp`), ties in row order: the order a stable
/// sort of the rows by score gives, computed once for every fit of [`CbpeProfile::fit`].
fn score_order(scores: &[f64]) -> Vec<usize> {
    let mut keyed: Vec<(f64, usize)> = scores.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// [`exact_roc_auc`] with the rows' [`score_order`].
fn roc_auc_sorted(order: &[usize], scores: &[f64], labels: &[bool]) -> f64 {
    let rows: Vec<(f64, bool)> = order.iter().map(|&i| (scores[i], labels[i])).collect();
    let (mut below, mut wins, mut i) = (0.0f64, 0.0f64, 0);
    while i < rows.len() {
        let mut j = i;
        let (mut p, mut n) = (0.0, 0.0);
        while j < rows.len() && rows[j].0 == rows[i].0 {
            if rows[j].1 {
                p += 1.0;
            } else {
                n += 1.0;
            }
            j += 1;
        }
        wins += p * (below + 0.5 * n);
        below += n;
        i = j;
    }
    let np = rows.iter().filter(|r| r.1).count() as f64;
    wins / (np * below)
}

/// SplitMix64, for the seeded splits of [`needs_calibration`].
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// NannyML's `needs_calibration` rule: calibrate only when isotonic calibration lowers the
/// expected calibration error (10 index bins) over 10 stratified 90 / 10 splits, pooled.
///
/// Single-class labels and an ROC AUC above 0.999 need no calibration. The splits are seeded
/// and stratified like scikit-learn's `StratifiedShuffleSplit(n_splits=10, test_size=0.1)`,
/// but drawn with SplitMix64 rather than NumPy's generator, so the held-out rows differ; the
/// rule, the bins and the comparison are NannyML's.
pub fn needs_calibration(scores: &[f64], labels: &[bool]) -> bool {
    needs_calibration_sorted(&score_order(scores), scores, labels)
}

/// [`needs_calibration`] with the rows' [`score_order`]: each split's isotonic fit walks it
/// instead of sorting its training rows again, and the held-out rows are taken in the order
/// the stable sort by score would put them in.
fn needs_calibration_sorted(order: &[usize], scores: &[f64], labels: &[bool]) -> bool {
    let positives: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    let negatives: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    if positives.is_empty() || negatives.is_empty() {
        return false;
    }
    if roc_auc_sorted(order, scores, labels) > 0.999 {
        return false;
    }
    let n = labels.len();
    let n_test = n.div_ceil(10);
    let test_pos = ((n_test as f64) * positives.len() as f64 / n as f64).round() as usize;
    let test_neg = n_test.saturating_sub(test_pos).min(negatives.len());
    let mut state = 42u64;
    // Bit `k` set: the row is held out in split `k`. The splits' draws depend on nothing but
    // the generator, so all ten are drawn first, in the order one split after another drew
    // them.
    let mut held_out = vec![0u16; n];
    for split in 0..10 {
        for (class, take) in [(&positives, test_pos), (&negatives, test_neg)] {
            let mut idx = class.clone();
            // Partial Fisher-Yates: the first `take` entries are a uniform sample.
            for i in 0..take.min(idx.len()) {
                let j = i + (splitmix(&mut state) % (idx.len() - i) as u64) as usize;
                idx.swap(i, j);
                held_out[idx[i]] |= 1 << split;
            }
        }
    }
    // The rows in score order, read once: each split's isotonic fit then walks them in
    // sequence, skipping its held-out rows, instead of reaching into the row-order columns
    // at random. The splits are fitted on several threads and their held-out rows' calibrated
    // scores joined in split order, as one loop over the splits pushed them.
    let sorted: Vec<(f64, bool, u16)> = order
        .iter()
        .map(|&i| (scores[i], labels[i], held_out[i]))
        .collect();
    let mut after: Vec<(f64, f64)> = crate::par::map(10, |split| {
        let bit = 1u16 << split;
        let map = CalibrationMap::fit_sorted(
            sorted
                .iter()
                .filter(|r| r.2 & bit == 0)
                .map(|&(s, l, _)| (s, l)),
        );
        (0..n)
            .filter(|&i| held_out[i] & bit != 0)
            .map(|i| (map.apply(scores[i]), f64::from(u8::from(labels[i]))))
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    // The held-out rows with their raw scores, as a stable sort by score orders the splits'
    // rows pushed split after split: by score, then split, then row.
    let mut before: Vec<(f64, f64)> = Vec::with_capacity(after.len());
    let mut from = 0;
    while from < sorted.len() {
        let s = sorted[from].0;
        let to = from
            + sorted[from..]
                .iter()
                .take_while(|r| r.0.total_cmp(&s).is_eq())
                .count();
        for split in 0..10 {
            let bit = 1u16 << split;
            for &(_, l, held) in &sorted[from..to] {
                if held & bit != 0 {
                    before.push((s, f64::from(u8::from(l))));
                }
            }
        }
        from = to;
    }
    drop(sorted);
    let edges = ece_bin_edges(before.len(), 10);
    if edges.is_empty() {
        return false;
    }
    expected_calibration_error(&mut before, &edges) > expected_calibration_error(&mut after, &edges)
}

/// NannyML's sampling-error components, fitted on the reference's labelled rows: a standard
/// deviation and the fraction of rows it applies to, so that `SE = std / √(n · fraction)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingComponent {
    /// Standard deviation of the observation-level statistic (ddof = 0).
    pub std: f64,
    /// Share of rows the statistic is computed over.
    pub fraction: f64,
}

impl SamplingComponent {
    /// The standard error for a window of `n` rows (absent when it is undefined).
    pub fn standard_error(&self, n: f64) -> Option<f64> {
        let d = n * self.fraction;
        (d > 0.0 && self.std.is_finite()).then(|| self.std / d.sqrt())
    }
}

fn std0(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if values.is_empty() {
        return f64::NAN;
    }
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// Sampling-error components of every estimated metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SamplingComponents {
    /// Accuracy: std of "prediction correct" over all rows.
    pub accuracy: SamplingComponent,
    /// Precision: over predicted positives.
    pub precision: SamplingComponent,
    /// Recall: over actual positives.
    pub recall: SamplingComponent,
    /// F1: NannyML's corrected observation-level F1 over TP, FP and FN rows.
    pub f1: SamplingComponent,
    /// ROC AUC: from the Mann-Whitney form of AUC.
    pub roc_auc: SamplingComponent,
    /// Specificity (1 − FPR): over actual negatives, as NannyML's
    /// `specificity_sampling_error_components`. Absent (no band) in older profiles.
    #[serde(default)]
    pub specificity: SamplingComponent,
}

impl SamplingComponents {
    /// Fits the components as NannyML's `*_sampling_error_components` do.
    pub fn fit(scores: &[f64], predicted: &[bool], labels: &[bool]) -> Self {
        Self::fit_sorted(None, scores, predicted, labels)
    }

    /// [`fit`](Self::fit), with the rows' [`score_order`] when the caller has it.
    fn fit_sorted(
        order: Option<&[usize]>,
        scores: &[f64],
        predicted: &[bool],
        labels: &[bool],
    ) -> Self {
        let n = labels.len() as f64;
        let correct: Vec<f64> = predicted
            .iter()
            .zip(labels)
            .map(|(p, l)| f64::from(u8::from(p == l)))
            .collect();
        let (mut tp, mut fp, mut fn_, mut tn) = (0usize, 0usize, 0usize, 0usize);
        for (&p, &l) in predicted.iter().zip(labels) {
            match (p, l) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
        let ones_then_zeros = |ones: usize, zeros: usize| -> Vec<f64> {
            let mut v = vec![1.0; ones];
            v.extend(std::iter::repeat_n(0.0, zeros));
            v
        };
        let precision = SamplingComponent {
            std: std0(&ones_then_zeros(tp, fp)),
            fraction: (tp + fp) as f64 / n,
        };
        let recall = SamplingComponent {
            std: std0(&ones_then_zeros(tp, fn_)),
            fraction: (tp + fn_) as f64 / n,
        };
        let relevant = tp + fp + fn_;
        let f1 = if relevant == 0 {
            SamplingComponent {
                std: f64::NAN,
                fraction: 0.0,
            }
        } else {
            let factor = relevant as f64 / ((fn_ + fp) as f64 * 0.5 + tp as f64);
            let obs: Vec<f64> = ones_then_zeros(tp, fp + fn_)
                .into_iter()
                .map(|v| v * factor)
                .collect();
            SamplingComponent {
                std: std0(&obs),
                fraction: relevant as f64 / n,
            }
        };
        Self {
            accuracy: SamplingComponent {
                std: std0(&correct),
                fraction: 1.0,
            },
            precision,
            recall,
            f1,
            roc_auc: auroc_component(order, scores, labels),
            specificity: SamplingComponent {
                std: std0(&ones_then_zeros(tn, fp)),
                fraction: (tn + fp) as f64 / n,
            },
        }
    }
}

/// NannyML's `auroc_sampling_error_components`, quirks included: labels are flipped when
/// positives are the majority, and the positive at sorted rank 0 (if any) is left out, as
/// NannyML's `np.unique(positive_ranks)[1:]` does.
/// Without the flip, the rows' [`score_order`] (when given) is the order it sorts them in.
fn auroc_component(order: Option<&[usize]>, scores: &[f64], labels: &[bool]) -> SamplingComponent {
    let n = labels.len();
    let positives = labels.iter().filter(|&&l| l).count();
    let flip = positives * 2 > n;
    let rows: Vec<(f64, bool)> = match order {
        Some(order) if !flip => order.iter().map(|&i| (scores[i], labels[i])).collect(),
        _ => {
            let mut rows: Vec<(f64, bool)> = scores
                .iter()
                .zip(labels)
                .map(|(&s, &l)| if flip { (1.0 - s, !l) } else { (s, l) })
                .collect();
            rows.sort_by(|a, b| a.0.total_cmp(&b.0));
            rows
        }
    };
    let n_pos = rows.iter().filter(|r| r.1).count();
    let n_neg = n - n_pos;
    let ser: Vec<f64> = rows
        .iter()
        .enumerate()
        .filter(|&(rank, r)| r.1 && rank > 0)
        .enumerate()
        .map(|(i, (rank, _))| (rank - i) as f64 / n_neg as f64)
        .collect();
    SamplingComponent {
        std: std0(&ser),
        fraction: n_pos as f64 / n as f64,
    }
}

/// What the reference profile carries for CBPE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CbpeProfile {
    /// Whether NannyML's rule chose to calibrate (the map is the identity otherwise).
    pub calibrated: bool,
    /// Score to probability of the positive class.
    pub map: CalibrationMap,
    /// Sampling-error components from the reference's labelled rows.
    pub sampling: SamplingComponents,
}

impl CbpeProfile {
    /// Fits on the reference's labelled rows: score, predicted positive, actual positive.
    pub fn fit(scores: &[f64], predicted: &[bool], labels: &[bool]) -> Self {
        // One sort by score serves every fit below (each used to sort the rows again).
        let order = score_order(scores);
        let calibrated = needs_calibration_sorted(&order, scores, labels);
        let map = if calibrated {
            CalibrationMap::fit_sorted(order.iter().map(|&i| (scores[i], labels[i])))
        } else {
            CalibrationMap::identity()
        };
        Self {
            calibrated,
            map,
            sampling: SamplingComponents::fit_sorted(Some(&order), scores, predicted, labels),
        }
    }
}

/// Per-window sums that make CBPE's expected confusion matrix exact, additive under merge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CbpeSums {
    /// Rows predicted positive.
    pub predicted_positive: u64,
    /// Sum of calibrated probabilities over rows predicted positive (expected TP).
    pub predicted_positive_p: f64,
    /// Rows predicted negative.
    pub predicted_negative: u64,
    /// Sum of calibrated probabilities over rows predicted negative (expected FN).
    pub predicted_negative_p: f64,
    /// Sum of calibrated probabilities per equal-width score bin ([`CBPE_SCORE_BINS`] of
    /// them; empty until a row). The rows per bin are the summary's `prediction.score_bins`.
    /// Serialised as the base64 of the little-endian bytes of each `f64` (about 1,070 bytes
    /// for 100 bins against about 1,900 in decimal), bit for bit, so the summary stays under
    /// its 16 KiB budget without losing a digit; older summaries' decimal arrays still read.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "compact_f64s")]
    pub bin_p: Vec<f64>,
    /// Per attribute, per group bucket (the summary's `groups` order, `other` last): the same
    /// sums over the group's rows, for per-group estimates (estimated TPR and FPR parity
    /// without labels). Empty for models without attributes, and in older summaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<GroupCbpe>>,
}

/// One group's CBPE sums, serialised compactly as `[predicted_positive, predicted_negative,
/// "base64 of predicted_positive_p and predicted_negative_p"]` (exact, as for `bin_p`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "GroupCbpeWire", into = "GroupCbpeWire")]
pub struct GroupCbpe {
    /// Rows of the group predicted positive.
    pub predicted_positive: u64,
    /// Sum of their calibrated probabilities (expected TP).
    pub predicted_positive_p: f64,
    /// Rows of the group predicted negative.
    pub predicted_negative: u64,
    /// Sum of their calibrated probabilities (expected FN).
    pub predicted_negative_p: f64,
}

#[derive(Serialize, Deserialize)]
struct GroupCbpeWire(u64, u64, #[serde(with = "compact_f64s")] Vec<f64>);

impl From<GroupCbpeWire> for GroupCbpe {
    fn from(w: GroupCbpeWire) -> Self {
        Self {
            predicted_positive: w.0,
            predicted_positive_p: w.2.first().copied().unwrap_or(0.0),
            predicted_negative: w.1,
            predicted_negative_p: w.2.get(1).copied().unwrap_or(0.0),
        }
    }
}

impl From<GroupCbpe> for GroupCbpeWire {
    fn from(g: GroupCbpe) -> Self {
        Self(
            g.predicted_positive,
            g.predicted_negative,
            vec![g.predicted_positive_p, g.predicted_negative_p],
        )
    }
}

impl GroupCbpe {
    fn add(&mut self, p: f64, predicted_positive: bool) {
        if predicted_positive {
            self.predicted_positive += 1;
            self.predicted_positive_p += p;
        } else {
            self.predicted_negative += 1;
            self.predicted_negative_p += p;
        }
    }

    fn merge(&mut self, o: &Self) {
        self.predicted_positive += o.predicted_positive;
        self.predicted_positive_p += o.predicted_positive_p;
        self.predicted_negative += o.predicted_negative;
        self.predicted_negative_p += o.predicted_negative_p;
    }

    /// The group's sums as window sums without score bins (so no estimated ROC AUC).
    pub fn sums(&self) -> CbpeSums {
        CbpeSums {
            predicted_positive: self.predicted_positive,
            predicted_positive_p: self.predicted_positive_p,
            predicted_negative: self.predicted_negative,
            predicted_negative_p: self.predicted_negative_p,
            ..CbpeSums::default()
        }
    }
}

/// `Vec<f64>` as one base64 string of little-endian `f64` bytes (exact and about 45 % of the
/// decimal size); a JSON array of numbers is also accepted when reading.
mod compact_f64s {
    use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
    use base64::Engine;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.serialize_str(&B64.encode(bytes))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Packed(String),
        Plain(Vec<f64>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        match Wire::deserialize(d)? {
            Wire::Plain(v) => Ok(v),
            Wire::Packed(s) => {
                let bytes = B64
                    .decode(s.trim_end_matches('='))
                    .map_err(|e| D::Error::custom(format!("packed f64s: {e}")))?;
                if bytes.len() % 8 != 0 {
                    return Err(D::Error::custom(format!(
                        "packed f64s: {} bytes is not a whole number of f64s",
                        bytes.len()
                    )));
                }
                Ok(bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect())
            }
        }
    }
}

/// One estimate with NannyML's sampling-error band (`value ± 3 SE`, clipped to [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The estimated metric.
    pub value: f64,
    /// Its standard error, from the reference (absent when undefined).
    pub sampling_error: Option<f64>,
    /// `max(0, value − 3 SE)`.
    pub lower: Option<f64>,
    /// `min(1, value + 3 SE)`.
    pub upper: Option<f64>,
}

impl Estimate {
    fn new(value: f64, se: Option<f64>) -> Self {
        Self {
            value,
            sampling_error: se,
            lower: se.map(|s| (value - SAMPLING_ERROR_RANGE * s).max(0.0)),
            upper: se.map(|s| (value + SAMPLING_ERROR_RANGE * s).min(1.0)),
        }
    }
}

/// CBPE estimates of one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CbpeEstimates {
    /// Rows estimated over.
    pub rows: u64,
    /// `estimated_accuracy`.
    pub accuracy: Estimate,
    /// `estimated_precision` (NannyML's 0 when nothing is predicted positive).
    pub precision: Estimate,
    /// `estimated_recall`.
    pub recall: Estimate,
    /// `estimated_f1`.
    pub f1: Estimate,
    /// `estimated_roc_auc`, on score bins (absent without binned rows or with one class).
    pub roc_auc: Option<Estimate>,
}

/// CBPE estimates of one group's rows: the model-level estimates without ROC AUC (the summary
/// keeps no score bins per group), plus the estimated false positive rate, so TPR (= recall)
/// and FPR parity can be estimated without labels. Bands use the reference's components with
/// the group's row count, as NannyML run on the group's rows alone does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupEstimates {
    /// Rows of the group estimated over.
    pub rows: u64,
    /// Estimated accuracy of the group.
    pub accuracy: Estimate,
    /// Estimated precision.
    pub precision: Estimate,
    /// Estimated recall, i.e. estimated TPR.
    pub recall: Estimate,
    /// Estimated F1.
    pub f1: Estimate,
    /// Estimated FPR: expected FP over expected actual negatives (1 − NannyML's estimated
    /// specificity); its band is the specificity band mirrored.
    pub fpr: Estimate,
}

impl GroupCbpe {
    /// The group's estimates (absent without rows).
    pub fn estimate(&self, sampling: &SamplingComponents) -> Option<GroupEstimates> {
        let sums = self.sums();
        let e = sums.estimate(sampling, &[])?;
        let (_, fp, _, tn) = sums.expected_confusion();
        let fpr = if fp + tn != 0.0 { fp / (fp + tn) } else { 0.0 };
        let n = e.rows as f64;
        Some(GroupEstimates {
            rows: e.rows,
            accuracy: e.accuracy,
            precision: e.precision,
            recall: e.recall,
            f1: e.f1,
            fpr: Estimate::new(fpr, sampling.specificity.standard_error(n)),
        })
    }
}

impl CbpeSums {
    /// Adds one row: its score, whether it was predicted positive, and the profile's map.
    pub fn record(&mut self, map: &CalibrationMap, score: f64, predicted_positive: bool) {
        self.record_in_groups(map, score, predicted_positive, &[]);
    }

    /// Adds one row as [`record`](Self::record) does, and to its groups' sums: `groups[a]` is
    /// the row's bucket of attribute `a`, as in the event. Rows are counted per group only
    /// when the sums were shaped with [`with_groups`](Self::with_groups).
    pub fn record_in_groups(
        &mut self,
        map: &CalibrationMap,
        score: f64,
        predicted_positive: bool,
        groups: &[u16],
    ) {
        let p = map.apply(score).clamp(0.0, 1.0);
        for (buckets, &g) in self.groups.iter_mut().zip(groups) {
            if let Some(b) = buckets.get_mut(usize::from(g)) {
                b.add(p, predicted_positive);
            }
        }
        if predicted_positive {
            self.predicted_positive += 1;
            self.predicted_positive_p += p;
        } else {
            self.predicted_negative += 1;
            self.predicted_negative_p += p;
        }
        if self.bin_p.is_empty() {
            self.bin_p = vec![0.0; CBPE_SCORE_BINS];
        }
        self.bin_p[crate::score::score_bin(score)] += p;
    }

    /// Empty sums with one bucket list per attribute (`bucket_counts[a]` buckets, `other`
    /// included), so that rows are also summed per group.
    pub fn with_groups(bucket_counts: impl IntoIterator<Item = usize>) -> Self {
        Self {
            groups: bucket_counts
                .into_iter()
                .map(|n| vec![GroupCbpe::default(); n])
                .collect(),
            ..Self::default()
        }
    }

    /// Adds another window's sums (associative and commutative; the default is the identity).
    /// Per-group sums survive only when both sides have the same shape (a summary from before
    /// they existed leaves the merge without them, rather than with a partial count).
    pub fn merge(&mut self, other: &CbpeSums) {
        if other.groups.is_empty() && other.rows() == 0 {
            // `other` is the identity for the group sums too.
        } else if self.groups.is_empty() && self.rows() == 0 {
            self.groups = other.groups.clone();
        } else if self.groups.len() == other.groups.len()
            && self
                .groups
                .iter()
                .zip(&other.groups)
                .all(|(a, b)| a.len() == b.len())
        {
            for (a, b) in self.groups.iter_mut().zip(&other.groups) {
                for (x, y) in a.iter_mut().zip(b) {
                    x.merge(y);
                }
            }
        } else {
            self.groups.clear();
        }
        self.predicted_positive += other.predicted_positive;
        self.predicted_positive_p += other.predicted_positive_p;
        self.predicted_negative += other.predicted_negative;
        self.predicted_negative_p += other.predicted_negative_p;
        if self.bin_p.is_empty() {
            self.bin_p = other.bin_p.clone();
        } else {
            for (a, b) in self.bin_p.iter_mut().zip(&other.bin_p) {
                *a += b;
            }
        }
    }

    /// Rows recorded.
    pub fn rows(&self) -> u64 {
        self.predicted_positive + self.predicted_negative
    }

    /// The expected confusion matrix `(tp, fp, fn, tn)`.
    pub fn expected_confusion(&self) -> (f64, f64, f64, f64) {
        let tp = self.predicted_positive_p;
        let fp = self.predicted_positive as f64 - tp;
        let fn_ = self.predicted_negative_p;
        let tn = self.predicted_negative as f64 - fn_;
        (tp, fp, fn_, tn)
    }

    /// Estimated ROC AUC from the score bins (`score_counts`: rows per bin, the summary's
    /// `prediction.score_bins`), highest scores first. Within a bin the rows are taken as one
    /// step (a straight segment of the curve).
    pub fn estimated_roc_auc(&self, score_counts: &[u64]) -> Option<f64> {
        if score_counts.len() != self.bin_p.len() {
            return None;
        }
        let total_p: f64 = self.bin_p.iter().sum();
        let total_n = score_counts.iter().sum::<u64>() as f64 - total_p;
        if total_p <= 0.0 || total_n <= 0.0 {
            return None;
        }
        let (mut tp, mut fp, mut area) = (0.0f64, 0.0f64, 0.0f64);
        for (c, p) in score_counts.iter().zip(&self.bin_p).rev() {
            let (tp1, fp1) = (tp + p, fp + (*c as f64 - p));
            area += (fp1 - fp) * (tp + tp1) / 2.0;
            (tp, fp) = (tp1, fp1);
        }
        Some((area / (total_p * total_n)).clamp(0.0, 1.0))
    }

    /// CBPE estimates with NannyML's sampling-error bands (absent without rows);
    /// `score_counts` as for [`estimated_roc_auc`](Self::estimated_roc_auc).
    pub fn estimate(
        &self,
        sampling: &SamplingComponents,
        score_counts: &[u64],
    ) -> Option<CbpeEstimates> {
        let rows = self.rows();
        if rows == 0 {
            return None;
        }
        let n = rows as f64;
        let (tp, fp, fn_, tn) = self.expected_confusion();
        let ratio = |a: f64, b: f64| if b != 0.0 { a / b } else { 0.0 };
        Some(CbpeEstimates {
            rows,
            accuracy: Estimate::new((tp + tn) / n, sampling.accuracy.standard_error(n)),
            precision: Estimate::new(ratio(tp, tp + fp), sampling.precision.standard_error(n)),
            recall: Estimate::new(ratio(tp, tp + fn_), sampling.recall.standard_error(n)),
            f1: Estimate::new(
                ratio(tp, tp + 0.5 * (fp + fn_)),
                sampling.f1.standard_error(n),
            ),
            roc_auc: self
                .estimated_roc_auc(score_counts)
                .map(|v| Estimate::new(v, sampling.roc_auc.standard_error(n))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_keeps_change_points() {
        let scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let labels = [false, true, false, false, true, true];
        let map = CalibrationMap::fit_isotonic(&scores, &labels);
        // 0.2..0.4 pool to 1/3; 0.1 is 0; 0.5, 0.6 are 1.
        assert_eq!(map.x, vec![0.1, 0.2, 0.4, 0.5, 0.6]);
        let third = 1.0 / 3.0;
        assert!((map.y[1] - third).abs() < 1e-12 && (map.y[2] - third).abs() < 1e-12);
        assert!((map.apply(0.45) - (third + 0.5 * (1.0 - third))).abs() < 1e-12);
        assert_eq!(map.apply(-1.0), 0.0);
        assert_eq!(map.apply(2.0), 1.0);
    }

    #[test]
    fn packed_sums_read_back_bit_for_bit_and_decimal_arrays_still_read() {
        let mut s = CbpeSums::with_groups([3]);
        let map = CalibrationMap {
            x: vec![0.1, 0.9],
            y: vec![0.05, 0.97],
        };
        for (i, score) in [0.13, 0.5, 0.77, 0.999, 0.3].into_iter().enumerate() {
            s.record_in_groups(&map, score, score >= 0.5, &[(i % 3) as u16]);
        }
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"bin_p\":\""), "{json}");
        let back: CbpeSums = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(back
            .bin_p
            .iter()
            .zip(&s.bin_p)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        // A summary written before the packed form: a decimal array, no groups.
        let old: CbpeSums = serde_json::from_str(
            r#"{"predicted_positive":1,"predicted_positive_p":0.9,"predicted_negative":0,
                "predicted_negative_p":0.0,"bin_p":[0.25,0.9]}"#,
        )
        .unwrap();
        assert_eq!(old.bin_p, vec![0.25, 0.9]);
        assert!(old.groups.is_empty());
        // A truncated packed string is an error naming the field's form, not a silent zero.
        let bad = serde_json::from_str::<CbpeSums>(
            r#"{"predicted_positive":0,"predicted_positive_p":0,"predicted_negative":0,
                "predicted_negative_p":0,"bin_p":"AAAA"}"#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("packed f64s"), "{bad}");
    }

    #[test]
    fn expected_confusion_counts_each_row_once() {
        let mut s = CbpeSums::default();
        let id = CalibrationMap::identity();
        s.record(&id, 0.9, true);
        s.record(&id, 0.2, false);
        let (tp, fp, fn_, tn) = s.expected_confusion();
        assert!((tp - 0.9).abs() < 1e-12 && (fp - 0.1).abs() < 1e-12);
        assert!((fn_ - 0.2).abs() < 1e-12 && (tn - 0.8).abs() < 1e-12);
        let e = s.estimate(&SamplingComponents::default(), &[]).unwrap();
        assert!((e.accuracy.value - 0.85).abs() < 1e-12);
        assert_eq!(e.accuracy.sampling_error, None);
    }
}
