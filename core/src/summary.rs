//! The window summary: everything the metrics need about a window of predictions, in a form that
//! merges by addition.
//!
//! Agents record events into the summary of the window they fall in and ship it; the collector
//! merges summaries across replicas and time. Because [`WindowSummary::merge`] is associative and
//! commutative with [`WindowSummary::new`] as identity, replica fan-in, late labels, retries and
//! roll-ups all reduce to merge, and every metric computed from a merged summary equals the
//! metric computed from all the underlying events at once.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cbpe::CbpeSums;
use crate::event::{Event, FeatureValue, Prediction, Target};
use crate::pca::ErrorMoments;
use crate::profile::{score_bin, FeatureProfile, NumericProfile, ReferenceProfile, SCORE_BINS};
use crate::quantile::{
    fine_bin, position, sum_slot, summed_bins, tail_sub_bin, tail_sub_bounds, FinePosition,
    FINE_BINS, TAIL_BINS, TAIL_SUB_BINS,
};
use crate::schema::{ModelSchema, Task};
use crate::sketch::{QuantileSketch, SKETCH_INDEX_RANGE};

mod buffers;
mod columns;
mod plan;
pub use buffers::{ColumnBuffers, PredictionBuffers};
pub use columns::{Column, Columns, ColumnsError, PredictionColumn, FAILED_CLASS, MISSING_CODE};
use plan::{EdgeIndex, PlanSlot};

/// Version of the summary's serialised form.
pub const SUMMARY_FORMAT: u32 = 1;

/// Categories outside the reference that a summary names before counting the rest as overflow.
pub const UNSEEN_CATEGORY_CAP: usize = 32;

/// Whether a sum is zero: such fields are left out of the summary's JSON (and read back as
/// zero), which keeps the 20-feature summary under its 16 KiB budget without losing anything.
fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

/// Counts of a numeric feature against the reference edges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    /// Missing values (left out of the JSON when zero).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub missing: u64,
    /// Non-missing values.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Sum of squared values.
    pub sum_sq: f64,
    /// Smallest value seen.
    pub min: Option<f64>,
    /// Largest value seen.
    pub max: Option<f64>,
    /// `[below reference min, FINE_BINS bins..., above reference max]`; empty when the
    /// reference has no values for this feature.
    #[serde(deserialize_with = "crate::summary_de::counts")]
    pub bins: Vec<u64>,
    /// Sum of the values below the reference minimum: with their count it makes the
    /// Wasserstein distance exact outside the reference range.
    pub below_sum: f64,
    /// Sum of the values above the reference maximum.
    pub above_sum: f64,
    /// Where current values lie within each position-recording fine bin: the sum of their
    /// positions, in units of `1 / POSITION_SCALE` of the bin's width. These are the
    /// [`TAIL_BINS`] lowest then highest bins, or every bin for a small reference (see
    /// [`summed_bins`]). With the reference's offsets they make `∫F` exact in those bins, and so
    /// the Wasserstein distance. Empty in summaries made before it existed, and after merging
    /// one of those (so are the tail fields below): drift then assumes current values spread
    /// within a bin as the reference's do.
    ///
    /// [`TAIL_BINS`]: crate::quantile::TAIL_BINS
    /// [`POSITION_SCALE`]: crate::quantile::POSITION_SCALE
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::summary_de::counts"
    )]
    pub bin_positions: Vec<u64>,
    /// Counts in the sub-bins the reference's tail edges cut the two outermost fine bins into.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::summary_de::counts"
    )]
    pub tail_bins: Vec<u64>,
    /// Position sums in those sub-bins, as for `bin_positions`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::summary_de::counts"
    )]
    pub tail_positions: Vec<u64>,
}

impl NumericStats {
    fn new(reference: Option<&NumericProfile>) -> Self {
        let reference = reference.filter(|r| !r.edges.is_empty());
        let summed = reference.map_or(0, |r| summed_bins(r.count));
        let tails = if reference.is_some_and(|r| !r.tail_edges.is_empty()) {
            TAIL_SUB_BINS
        } else {
            0
        };
        let slots = if reference.is_some() {
            FINE_BINS + 2
        } else {
            0
        };
        Self {
            bins: vec![0; slots],
            bin_positions: vec![0; summed],
            tail_bins: vec![0; tails],
            tail_positions: vec![0; tails],
            ..Self::default()
        }
    }

    /// Records one value; `index` (from the summary's plan) finds its bin faster, with the
    /// same result as without.
    #[inline]
    fn record(&mut self, x: f64, reference: &NumericProfile, index: Option<&EdgeIndex>) {
        let edges = &reference.edges;
        self.count += 1;
        self.sum += x;
        self.sum_sq += x * x;
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
        if !self.bins.is_empty() {
            let bin = match index {
                Some(index) => index.fine_bin(edges, x),
                None => fine_bin(edges, x),
            };
            let slot = match bin {
                FinePosition::Below => {
                    self.below_sum += x;
                    0
                }
                FinePosition::Bin(b) => {
                    // Positions are kept only in the outermost bins, unless every bin sums
                    // them (a small reference): skip the checks for the bins in between.
                    if self.bin_positions.len() == FINE_BINS
                        || !(TAIL_BINS..FINE_BINS - TAIL_BINS).contains(&b)
                    {
                        self.record_position(x, b, reference);
                    }
                    b + 1
                }
                FinePosition::Above => {
                    self.above_sum += x;
                    FINE_BINS + 1
                }
            };
            self.bins[slot] += 1;
        }
    }

    /// Records where `x`, in fine bin `b`, lies within its bin and tail sub-bin.
    fn record_position(&mut self, x: f64, b: usize, reference: &NumericProfile) {
        let edges = &reference.edges;
        if let Some(p) = sum_slot(b, self.bin_positions.len()) {
            let at = position(x, edges[b], edges[b + 1]);
            self.bin_positions[p] = self.bin_positions[p].saturating_add(at);
        }
        let tails =
            self.tail_bins.len() == TAIL_SUB_BINS && self.tail_positions.len() == TAIL_SUB_BINS;
        if let Some(t) = tail_sub_bin(&reference.tail_edges, b, x).filter(|_| tails) {
            let (lo, hi) = tail_sub_bounds(edges, &reference.tail_edges, t);
            self.tail_bins[t] += 1;
            self.tail_positions[t] = self.tail_positions[t].saturating_add(position(x, lo, hi));
        }
    }

    fn merge(&mut self, other: &Self) {
        self.missing += other.missing;
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = min_opt(self.min, other.min);
        self.max = max_opt(self.max, other.max);
        add_counts(&mut self.bins, &other.bins);
        self.below_sum += other.below_sum;
        self.above_sum += other.above_sum;
        for (a, b) in [
            (&mut self.bin_positions, &other.bin_positions),
            (&mut self.tail_bins, &other.tail_bins),
            (&mut self.tail_positions, &other.tail_positions),
        ] {
            if a.len() == b.len() {
                for (x, y) in a.iter_mut().zip(b) {
                    *x = x.saturating_add(*y);
                }
            } else {
                // One side predates these fields: a partial sum would not match the counts.
                a.clear();
            }
        }
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn add_counts(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// Counts of a categorical feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoricalStats {
    /// Missing values (left out of the JSON when zero).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub missing: u64,
    /// Non-missing values.
    pub count: u64,
    /// Count per category: every reference category seen, and up to
    /// [`UNSEEN_CATEGORY_CAP`] unseen ones per recorded window.
    pub counts: BTreeMap<String, u64>,
    /// Unseen categories beyond the cap, counted but not named (left out when zero).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub overflow: u64,
}

impl CategoricalStats {
    fn record(&mut self, category: &str, reference: &BTreeMap<String, u64>) {
        self.count += 1;
        if let Some(n) = self.counts.get_mut(category) {
            *n += 1;
            return;
        }
        let unseen_named = self
            .counts
            .keys()
            .filter(|k| !reference.contains_key(*k))
            .count();
        if reference.contains_key(category) || unseen_named < UNSEEN_CATEGORY_CAP {
            self.counts.insert(category.to_owned(), 1);
        } else {
            self.overflow += 1;
        }
    }

    fn merge(&mut self, other: &Self) {
        self.missing += other.missing;
        self.count += other.count;
        self.overflow += other.overflow;
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// Per-feature counts, in schema order. Decoded by hand (`summary_de`), not derived: the
/// derived decoder of a tagged enum buffers every feature before decoding it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureStats {
    /// A numeric feature.
    Numeric(NumericStats),
    /// A categorical feature.
    Categorical(CategoricalStats),
}

/// Distribution of the model's outputs (all predictions, labelled or not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictionStats {
    /// Count per predicted class.
    #[serde(deserialize_with = "crate::summary_de::counts")]
    pub class_counts: Vec<u64>,
    /// Positive-class scores in [`SCORE_BINS`] equal-width bins.
    #[serde(deserialize_with = "crate::summary_de::counts")]
    pub score_bins: Vec<u64>,
    /// Regression outputs against the reference output edges.
    pub value: Option<NumericStats>,
}

/// Additive sums for regression errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegressionStats {
    /// Labelled predictions.
    pub n: u64,
    /// Sum of |y - ŷ|.
    pub abs_error: f64,
    /// Sum of (y - ŷ)².
    pub sq_error: f64,
    /// Sum of |y - ŷ| / max(|y|, ε) (scikit-learn's MAPE terms).
    pub abs_pct_error: f64,
    /// Sum of y.
    pub y_sum: f64,
    /// Sum of y².
    pub y_sq_sum: f64,
}

impl RegressionStats {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn record(&mut self, y: f64, y_hat: f64) {
        let e = y - y_hat;
        self.n += 1;
        self.abs_error += e.abs();
        self.sq_error += e * e;
        self.abs_pct_error += e.abs() / y.abs().max(f64::EPSILON);
        self.y_sum += y;
        self.y_sq_sum += y * y;
    }

    fn merge(&mut self, o: &Self) {
        self.n += o.n;
        self.abs_error += o.abs_error;
        self.sq_error += o.sq_error;
        self.abs_pct_error += o.abs_pct_error;
        self.y_sum += o.y_sum;
        self.y_sq_sum += o.y_sq_sum;
    }
}

/// Per-class probabilities of labelled predictions, for multiclass log loss and one-vs-rest
/// ROC AUC. Kept for multiclass models; only predictions that send every class's probability
/// (`prediction.scores`) count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassScoreStats {
    /// Labelled predictions with every class's probability.
    pub scored: u64,
    /// Sum of −ln p(true class), p clipped to [ε, 1 − ε] (scikit-learn's log loss terms).
    pub log_loss_sum: f64,
    /// Per class, its probability in [`SCORE_BINS`] bins over the labelled events of that class.
    pub positive: Vec<Vec<u64>>,
    /// Per class, its probability in [`SCORE_BINS`] bins over the labelled events of the
    /// other classes.
    pub negative: Vec<Vec<u64>>,
}

impl ClassScoreStats {
    fn new(classes: usize) -> Self {
        Self {
            positive: vec![vec![0; SCORE_BINS]; classes],
            negative: vec![vec![0; SCORE_BINS]; classes],
            ..Self::default()
        }
    }

    fn same_shape(&self, o: &Self) -> bool {
        let shape = |v: &[Vec<u64>]| v.iter().map(Vec::len).collect::<Vec<_>>();
        shape(&self.positive) == shape(&o.positive) && shape(&self.negative) == shape(&o.negative)
    }

    fn merge(&mut self, o: &Self) {
        self.scored += o.scored;
        self.log_loss_sum += o.log_loss_sum;
        for (a, b) in self.positive.iter_mut().zip(&o.positive) {
            add_counts(a, b);
        }
        for (a, b) in self.negative.iter_mut().zip(&o.negative) {
            add_counts(a, b);
        }
    }
}

/// Labelled outcomes: what performance metrics need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerformanceStats {
    /// Confusion matrix, row = true class, column = predicted class, row-major.
    #[serde(deserialize_with = "crate::summary_de::counts")]
    pub confusion: Vec<u64>,
    /// Labelled predictions that carried a score.
    pub scored: u64,
    /// Scores of labelled positives, in [`SCORE_BINS`] bins.
    #[serde(deserialize_with = "crate::summary_de::counts")]
    pub positive_scores: Vec<u64>,
    /// Scores of labelled negatives, in [`SCORE_BINS`] bins.
    #[serde(deserialize_with = "crate::summary_de::counts")]
    pub negative_scores: Vec<u64>,
    /// Sum of per-prediction log loss (scores clipped to [ε, 1 − ε]).
    pub log_loss_sum: f64,
    /// Sum of squared score errors (Brier).
    pub brier_sum: f64,
    /// Regression error sums (left out of the JSON while empty, as for every classifier).
    #[serde(default, skip_serializing_if = "RegressionStats::is_empty")]
    pub regression: RegressionStats,
    /// Per-class probabilities (multiclass models); absent in summaries made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_scores: Option<ClassScoreStats>,
}

/// Selection and outcome counts of one group of an attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// Predictions for the group.
    pub count: u64,
    /// Predictions of the positive class.
    pub selected: u64,
    /// Labelled predictions.
    pub labelled: u64,
    /// True positives (positive class, one-vs-rest).
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Sum of |y - ŷ| (regression; left out of the JSON when zero, as for every classifier).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub abs_error: f64,
    /// Sum of (y - ŷ)² (regression; left out when zero).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub sq_error: f64,
    /// Predictions per class (multiclass models): each class's selection rate in the group.
    /// Empty for binary models, and in summaries made before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<u64>,
}

impl GroupStats {
    /// `m` predictions falling in this group: of `class` (`None`: failed, or a regression
    /// value), the positive class being `positive`. Row by row `m` is 1; the columnar fold
    /// adds a batch's rows per outcome at once.
    pub(crate) fn add_predictions(&mut self, m: u64, class: Option<u32>, positive: Option<u32>) {
        self.count += m;
        if let Some(class) = class {
            if let Some(n) = self.predicted.get_mut(class as usize) {
                *n += m;
            }
            if Some(class) == positive {
                self.selected += m;
            }
        }
    }

    /// `m` labelled class predictions in this group, by whether the truth (`is_pos`) and the
    /// prediction (`predicted_pos`) are the positive class.
    pub(crate) fn add_class_labels(&mut self, m: u64, is_pos: bool, predicted_pos: bool) {
        self.labelled += m;
        match (is_pos, predicted_pos) {
            (true, true) => self.tp += m,
            (true, false) => self.fn_ += m,
            (false, true) => self.fp += m,
            (false, false) => self.tn += m,
        }
    }

    fn merge(&mut self, o: &Self) {
        if self.predicted.len() == o.predicted.len() {
            add_counts(&mut self.predicted, &o.predicted);
        } else {
            self.predicted.clear();
        }
        self.count += o.count;
        self.selected += o.selected;
        self.labelled += o.labelled;
        self.tp += o.tp;
        self.fp += o.fp;
        self.tn += o.tn;
        self.fn_ += o.fn_;
        self.abs_error += o.abs_error;
        self.sq_error += o.sq_error;
    }
}

/// Counts per cell of one declared intersection of attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntersectionCounts {
    /// Positions of the intersected attributes in the schema (and in
    /// [`WindowSummary::groups`]), in the intersection's order.
    pub attributes: Vec<u32>,
    /// One cell per combination of the attributes' buckets (`other` included), row-major: the
    /// last attribute varies fastest. Its length is the product of the attributes' bucket
    /// counts, bounded by [`MAX_INTERSECTION_CELLS`](crate::schema::MAX_INTERSECTION_CELLS).
    pub cells: Vec<GroupStats>,
}

/// The cell of an event whose attribute buckets are `groups`, in an intersection of
/// `attributes` whose bucket counts are the lengths of `buckets`; `None` when an index is out
/// of range.
pub fn cell_index(
    attributes: &[u32],
    buckets: &[Vec<GroupStats>],
    groups: &[u16],
) -> Option<usize> {
    let mut cell = 0usize;
    for &a in attributes {
        let n = buckets.get(a as usize)?.len();
        let g = usize::from(*groups.get(a as usize)?);
        if g >= n {
            return None;
        }
        cell = cell * n + g;
    }
    Some(cell)
}

/// Why two summaries cannot be merged.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MergeError {
    /// They were binned against different reference profiles.
    #[error("summaries were binned with different reference profiles ({0} and {1})")]
    ProfileMismatch(String, String),
    /// Their shapes differ (another schema).
    #[error("summaries have different shapes: {0}")]
    ShapeMismatch(&'static str),
    /// Adding them would wrap a count or overflow a sum (named); neither is changed.
    #[error("merging would overflow {0}")]
    Overflow(String),
}

/// The additive summary of one window of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// Serialised form version.
    pub format: u32,
    /// Hash of the reference profile the numeric bins were made with.
    pub profile_hash: String,
    /// Prediction events recorded.
    pub events: u64,
    /// Events rejected by validation (recorded by the agent, no content).
    pub rejected: u64,
    /// Events reporting a serving error instead of a prediction.
    pub failed: u64,
    /// Predictions with a ground-truth label (at once or joined later).
    pub labelled: u64,
    /// Earliest event time, ms since the epoch.
    pub first_ts_ms: Option<i64>,
    /// Latest event time.
    pub last_ts_ms: Option<i64>,
    /// Serving latency in milliseconds.
    pub latency: QuantileSketch,
    /// Per feature, in schema order.
    pub features: Vec<FeatureStats>,
    /// Output distribution.
    pub prediction: PredictionStats,
    /// Labelled outcomes.
    pub performance: PerformanceStats,
    /// Per attribute, per group bucket (`other` last).
    pub groups: Vec<Vec<GroupStats>>,
    /// Per declared intersection of attributes, per cell. Absent when the schema declares none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intersections: Vec<IntersectionCounts>,
    /// CBPE's calibrated-probability sums, when the profile carries a calibration. Absent in
    /// older summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cbpe: Option<CbpeSums>,
    /// Moments of the per-event PCA reconstruction error, when the profile carries the
    /// model. Absent in older summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<ErrorMoments>,
    /// What recording works out once per summary (see `summary/plan.rs`): neither serialised
    /// nor compared.
    #[serde(skip)]
    plan: PlanSlot,
}

impl WindowSummary {
    /// An empty summary for `schema` binned against `profile`: the identity of [`merge`].
    ///
    /// [`merge`]: WindowSummary::merge
    pub fn new(schema: &ModelSchema, profile: &ReferenceProfile) -> Self {
        let classification = schema.is_classification();
        let multiclass = schema.task == Task::Multiclass;
        let k = schema.classes.len();
        let features = profile
            .features
            .iter()
            .map(|f| match f {
                FeatureProfile::Numeric { stats, .. } => {
                    FeatureStats::Numeric(NumericStats::new(Some(stats)))
                }
                FeatureProfile::Categorical { .. } => {
                    FeatureStats::Categorical(CategoricalStats::default())
                }
            })
            .collect();
        let score_len = if classification { SCORE_BINS } else { 0 };
        Self {
            format: crate::summary::SUMMARY_FORMAT,
            profile_hash: profile.hash.clone(),
            events: 0,
            rejected: 0,
            failed: 0,
            labelled: 0,
            first_ts_ms: None,
            last_ts_ms: None,
            latency: QuantileSketch::default(),
            features,
            prediction: PredictionStats {
                class_counts: vec![0; k],
                score_bins: vec![0; score_len],
                value: (!classification)
                    .then(|| NumericStats::new(profile.prediction.value.as_ref())),
            },
            performance: PerformanceStats {
                confusion: vec![0; k * k],
                positive_scores: vec![0; score_len],
                negative_scores: vec![0; score_len],
                class_scores: multiclass.then(|| ClassScoreStats::new(k)),
                ..PerformanceStats::default()
            },
            groups: schema
                .attributes
                .iter()
                .map(|a| {
                    let group = GroupStats {
                        predicted: vec![0; if multiclass { k } else { 0 }],
                        ..GroupStats::default()
                    };
                    vec![group; a.bucket_count()]
                })
                .collect(),
            intersections: schema
                .intersection_members()
                .into_iter()
                .map(|members| {
                    let cells: usize = members
                        .iter()
                        .map(|&i| schema.attributes[i].bucket_count())
                        .product();
                    let group = GroupStats {
                        predicted: vec![0; if multiclass { k } else { 0 }],
                        ..GroupStats::default()
                    };
                    IntersectionCounts {
                        attributes: members.iter().map(|&i| i as u32).collect(),
                        cells: vec![group; cells],
                    }
                })
                .collect(),
            cbpe: (schema.task == Task::Binary && profile.cbpe.is_some())
                .then(|| CbpeSums::with_groups(schema.attributes.iter().map(|a| a.bucket_count()))),
            reconstruction: profile
                .reconstruction
                .as_ref()
                .map(|_| ErrorMoments::default()),
            plan: PlanSlot::default(),
        }
    }

    /// Records a validated event: its features, output, latency and (if present) its label.
    ///
    /// `profile` must be the profile this summary was created with.
    pub fn record(&mut self, schema: &ModelSchema, profile: &ReferenceProfile, event: &Event) {
        self.events += 1;
        self.first_ts_ms = Some(self.first_ts_ms.map_or(event.ts_ms, |t| t.min(event.ts_ms)));
        self.last_ts_ms = Some(self.last_ts_ms.map_or(event.ts_ms, |t| t.max(event.ts_ms)));
        if let Some(l) = event.latency_ms {
            self.latency.add(l);
        }
        // Taken out while recording (a move, no reference count), so that the plan can be
        // read while the summary's other fields change.
        let mut slot = std::mem::take(&mut self.plan);
        let plan = slot.get(profile);
        for (((stats, value), reference), index) in self
            .features
            .iter_mut()
            .zip(&event.features)
            .zip(&profile.features)
            .zip(&plan.features)
        {
            match (stats, value, reference) {
                (FeatureStats::Numeric(s), FeatureValue::Missing, _) => s.missing += 1,
                (FeatureStats::Categorical(s), FeatureValue::Missing, _) => s.missing += 1,
                (
                    FeatureStats::Numeric(s),
                    FeatureValue::Numeric(x),
                    FeatureProfile::Numeric { stats: r, .. },
                ) => s.record(*x, r, index.as_ref()),
                (
                    FeatureStats::Categorical(s),
                    FeatureValue::Categorical(c),
                    FeatureProfile::Categorical { stats: r, .. },
                ) => s.record(c, &r.frequencies),
                // Validation against the same schema makes other pairings impossible; a value
                // of the wrong kind is counted as missing rather than trusted.
                (FeatureStats::Numeric(s), _, _) => s.missing += 1,
                (FeatureStats::Categorical(s), _, _) => s.missing += 1,
            }
        }
        if let (Some(m), Some(model)) = (self.reconstruction.as_mut(), &profile.reconstruction) {
            m.record(match &plan.reconstruction {
                Some(projection) => model.error_with(projection, &event.features),
                None => model.error(&event.features),
            });
        }
        let positive = schema.positive_index().map(|p| p as u32);
        let value_index = plan.prediction.as_ref();
        self.record_outcome(
            profile,
            positive,
            value_index,
            &event.prediction,
            &event.groups,
        );
        if let Some(label) = event.label {
            self.record_label_of(schema, positive, &event.prediction, &event.groups, label);
        }
        self.plan = slot;
    }

    /// What [`record`](Self::record) counts of an event's output and groups (not its label):
    /// shared with [`record_columns`](Self::record_columns), row by row.
    #[inline]
    fn record_outcome(
        &mut self,
        profile: &ReferenceProfile,
        positive: Option<u32>,
        value_index: Option<&EdgeIndex>,
        prediction: &Prediction,
        groups: &[u16],
    ) {
        match *prediction {
            Prediction::Class { class, score } => {
                if let Some(n) = self.prediction.class_counts.get_mut(class as usize) {
                    *n += 1;
                }
                if let Some(s) = score {
                    self.prediction.score_bins[score_bin(s)] += 1;
                    if let (Some(sums), Some(c)) = (self.cbpe.as_mut(), &profile.cbpe) {
                        sums.record_in_groups(&c.map, s, Some(class) == positive, groups);
                    }
                }
            }
            Prediction::Value(v) => {
                if let (Some(stats), Some(r)) = (
                    self.prediction.value.as_mut(),
                    profile.prediction.value.as_ref(),
                ) {
                    stats.record(v, r, value_index);
                }
            }
            Prediction::Failed => self.failed += 1,
        }
        let class = match *prediction {
            Prediction::Class { class, .. } => Some(class),
            _ => None,
        };
        let predicted = |gs: &mut GroupStats| gs.add_predictions(1, class, positive);
        for x in &mut self.intersections {
            if let Some(cell) = cell_index(&x.attributes, &self.groups, groups) {
                if let Some(gs) = x.cells.get_mut(cell) {
                    predicted(gs);
                }
            }
        }
        for (groups, &g) in self.groups.iter_mut().zip(groups) {
            if let Some(gs) = groups.get_mut(g as usize) {
                predicted(gs);
            }
        }
    }

    /// Records a ground-truth label for a prediction already counted, in this summary or in an
    /// earlier one of the same window (a late label). Only label-dependent counts move.
    pub fn record_label(
        &mut self,
        schema: &ModelSchema,
        prediction: &Prediction,
        groups: &[u16],
        label: Target,
    ) {
        let positive = schema.positive_index().map(|p| p as u32);
        self.record_label_of(schema, positive, prediction, groups, label);
    }

    /// [`record_label`](Self::record_label) with the schema's positive class already found
    /// (a search by name that [`record`](Self::record) makes once per event, not twice).
    fn record_label_of(
        &mut self,
        schema: &ModelSchema,
        positive: Option<u32>,
        prediction: &Prediction,
        groups: &[u16],
        label: Target,
    ) {
        let k = schema.classes.len();
        match (*prediction, label) {
            (Prediction::Class { class, score }, Target::Class(truth)) => {
                self.labelled += 1;
                if let Some(n) = self
                    .performance
                    .confusion
                    .get_mut(truth as usize * k + class as usize)
                {
                    *n += 1;
                }
                let is_pos = Some(truth) == positive;
                if let Some(s) = score {
                    self.performance.record_scored_label(s, is_pos);
                }
                let predicted_pos = Some(class) == positive;
                self.each_group(groups, |gs| gs.add_class_labels(1, is_pos, predicted_pos));
            }
            (Prediction::Value(y_hat), Target::Value(y)) => {
                self.labelled += 1;
                self.performance.regression.record(y, y_hat);
                let e = y - y_hat;
                self.each_group(groups, |gs| {
                    gs.labelled += 1;
                    gs.abs_error += e.abs();
                    gs.sq_error += e * e;
                });
            }
            // A failed prediction has nothing to compare a label with; a label of the other
            // task's kind cannot pass validation.
            _ => {}
        }
    }

    /// Applies `f` to the group of every attribute and the cell of every intersection that an
    /// event with attribute buckets `groups` falls in.
    fn each_group(&mut self, groups: &[u16], mut f: impl FnMut(&mut GroupStats)) {
        for x in &mut self.intersections {
            if let Some(cell) = cell_index(&x.attributes, &self.groups, groups) {
                if let Some(gs) = x.cells.get_mut(cell) {
                    f(gs);
                }
            }
        }
        for (gs, &g) in self.groups.iter_mut().zip(groups) {
            if let Some(gs) = gs.get_mut(g as usize) {
                f(gs);
            }
        }
    }

    /// Records a validated event with the per-class probabilities of its prediction (see
    /// [`ModelSchema::validate_scored`]): [`record`](Self::record), then, when the event came
    /// labelled, [`record_class_scores`](Self::record_class_scores). An unlabelled event's
    /// probabilities wait with it for its late label ([`record_label_scored`](Self::record_label_scored)).
    pub fn record_scored(
        &mut self,
        schema: &ModelSchema,
        profile: &ReferenceProfile,
        event: &Event,
        scores: Option<&[f64]>,
    ) {
        self.record(schema, profile, event);
        if let (Some(scores), Some(Target::Class(truth))) = (scores, event.label) {
            if matches!(event.prediction, Prediction::Class { .. }) {
                self.record_class_scores(scores, truth);
            }
        }
    }

    /// [`record_label`](Self::record_label) of a late label, with the per-class probabilities
    /// its prediction came with.
    pub fn record_label_scored(
        &mut self,
        schema: &ModelSchema,
        prediction: &Prediction,
        groups: &[u16],
        label: Target,
        scores: Option<&[f64]>,
    ) {
        self.record_label(schema, prediction, groups, label);
        if let (Some(scores), Target::Class(truth), Prediction::Class { .. }) =
            (scores, label, prediction)
        {
            self.record_class_scores(scores, truth);
        }
    }

    /// Records the per-class probabilities of a labelled multiclass prediction (see
    /// [`ModelSchema::class_scores`]), alongside [`record`](Self::record) or
    /// [`record_label`](Self::record_label) of its label. Ignored for other models and for
    /// probabilities that do not fit the schema's classes.
    pub fn record_class_scores(&mut self, scores: &[f64], truth: u32) {
        let Some(c) = self.performance.class_scores.as_mut() else {
            return;
        };
        let truth = truth as usize;
        if scores.len() != c.positive.len() || truth >= scores.len() {
            return;
        }
        c.scored += 1;
        let p = scores[truth].clamp(f64::EPSILON, 1.0 - f64::EPSILON);
        c.log_loss_sum -= p.ln();
        for (class, &s) in scores.iter().enumerate() {
            let bins = if class == truth {
                &mut c.positive[class]
            } else {
                &mut c.negative[class]
            };
            if let Some(b) = bins.get_mut(score_bin(s)) {
                *b += 1;
            }
        }
    }

    /// Counts an event that failed validation.
    pub fn record_rejected(&mut self) {
        self.rejected += 1;
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.events == 0 && self.rejected == 0 && self.labelled == 0
    }

    /// Adds `other` into `self`. Both must come from the same schema and profile. A merge that
    /// would wrap a count or overflow a sum errs ([`MergeError::Overflow`]) and changes nothing.
    pub fn merge(&mut self, other: &WindowSummary) -> Result<(), MergeError> {
        if self.profile_hash != other.profile_hash {
            return Err(MergeError::ProfileMismatch(
                self.profile_hash.clone(),
                other.profile_hash.clone(),
            ));
        }
        self.check_shape(other)?;
        check_merge(self, other)?;
        self.events += other.events;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.labelled += other.labelled;
        self.first_ts_ms = match (self.first_ts_ms, other.first_ts_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ts_ms = match (self.last_ts_ms, other.last_ts_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.latency.merge(&other.latency);
        for (a, b) in self.features.iter_mut().zip(&other.features) {
            match (a, b) {
                (FeatureStats::Numeric(a), FeatureStats::Numeric(b)) => a.merge(b),
                (FeatureStats::Categorical(a), FeatureStats::Categorical(b)) => a.merge(b),
                _ => unreachable!("check_shape compared feature kinds"),
            }
        }
        add_counts(
            &mut self.prediction.class_counts,
            &other.prediction.class_counts,
        );
        add_counts(
            &mut self.prediction.score_bins,
            &other.prediction.score_bins,
        );
        if let (Some(a), Some(b)) = (self.prediction.value.as_mut(), &other.prediction.value) {
            a.merge(b);
        }
        let (p, o) = (&mut self.performance, &other.performance);
        add_counts(&mut p.confusion, &o.confusion);
        p.scored += o.scored;
        add_counts(&mut p.positive_scores, &o.positive_scores);
        add_counts(&mut p.negative_scores, &o.negative_scores);
        p.log_loss_sum += o.log_loss_sum;
        p.brier_sum += o.brier_sum;
        p.regression.merge(&o.regression);
        // Kept only when both sides have them in the same shape (one may predate them).
        match (p.class_scores.as_mut(), o.class_scores.as_ref()) {
            (Some(a), Some(b)) if a.same_shape(b) => a.merge(b),
            _ => p.class_scores = None,
        }
        for (a, b) in self.groups.iter_mut().zip(&other.groups) {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
        }
        for (a, b) in self.intersections.iter_mut().zip(&other.intersections) {
            for (x, y) in a.cells.iter_mut().zip(&b.cells) {
                x.merge(y);
            }
        }
        // Kept only when both sides have them (one may predate them): an estimate from part
        // of the window would read as the whole.
        match (self.cbpe.as_mut(), other.cbpe.as_ref()) {
            (Some(a), Some(b)) => a.merge(b),
            _ => self.cbpe = None,
        }
        match (self.reconstruction.as_mut(), other.reconstruction.as_ref()) {
            (Some(a), Some(b)) => a.merge(b),
            _ => self.reconstruction = None,
        }
        Ok(())
    }

    fn check_shape(&self, other: &WindowSummary) -> Result<(), MergeError> {
        let same_features = self.features.len() == other.features.len()
            && self
                .features
                .iter()
                .zip(&other.features)
                .all(|(a, b)| match (a, b) {
                    (FeatureStats::Numeric(a), FeatureStats::Numeric(b)) => {
                        a.bins.len() == b.bins.len()
                    }
                    (FeatureStats::Categorical(_), FeatureStats::Categorical(_)) => true,
                    _ => false,
                });
        if !same_features {
            return Err(MergeError::ShapeMismatch("features"));
        }
        let (a, b) = (&self.prediction, &other.prediction);
        if a.class_counts.len() != b.class_counts.len()
            || a.score_bins.len() != b.score_bins.len()
            || a.value.is_some() != b.value.is_some()
            || a.value.as_ref().map(|v| v.bins.len()) != b.value.as_ref().map(|v| v.bins.len())
            || self.performance.confusion.len() != other.performance.confusion.len()
            || self.performance.positive_scores.len() != other.performance.positive_scores.len()
        {
            return Err(MergeError::ShapeMismatch("prediction"));
        }
        if self.groups.len() != other.groups.len()
            || self
                .groups
                .iter()
                .zip(&other.groups)
                .any(|(a, b)| a.len() != b.len())
        {
            return Err(MergeError::ShapeMismatch("attributes"));
        }
        if self.intersections.len() != other.intersections.len()
            || self
                .intersections
                .iter()
                .zip(&other.intersections)
                .any(|(a, b)| a.attributes != b.attributes || a.cells.len() != b.cells.len())
        {
            return Err(MergeError::ShapeMismatch("intersections"));
        }
        Ok(())
    }

    /// Checks that a summary received from elsewhere fits `schema`, so that metrics computed
    /// from it index safely.
    pub fn check_against(
        &self,
        schema: &ModelSchema,
        profile: &ReferenceProfile,
    ) -> Result<(), MergeError> {
        let mut empty = WindowSummary::new(schema, profile);
        empty.profile_hash = self.profile_hash.clone();
        empty.check_shape(self)
    }
}

// The overflow check of a merge: run before any field is added, so a merge that would wrap a
// count or overflow a sum errs and leaves the target unchanged.

/// A field's path, `name[index]`, formatted only when a check fails (the checks run on every
/// merge, where allocating a name per field cost more than the additions).
struct Indexed(&'static str, usize);

impl Display for Indexed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// Adding two counts; errs naming `field` if the sum wraps.
fn add(field: impl Display, a: u64, b: u64) -> Result<(), MergeError> {
    a.checked_add(b)
        .map(|_| ())
        .ok_or_else(|| MergeError::Overflow(field.to_string()))
}

/// Adding two float sums; errs naming `field` if the sum is not finite.
fn add_f(field: impl Display, a: f64, b: f64) -> Result<(), MergeError> {
    if (a + b).is_finite() {
        Ok(())
    } else {
        Err(MergeError::Overflow(field.to_string()))
    }
}

/// Adding two count arrays element by element; errs naming `field` if any sum wraps. Checked
/// without an early exit, so the loop vectorises (a summary holds about 2,500 counts).
fn add_all(field: impl Display, a: &[u64], b: &[u64]) -> Result<(), MergeError> {
    let wraps = a
        .iter()
        .zip(b)
        .fold(false, |wraps, (x, y)| wraps | x.overflowing_add(*y).1);
    if wraps {
        Err(MergeError::Overflow(field.to_string()))
    } else {
        Ok(())
    }
}

fn numeric_fits(path: &dyn Display, a: &NumericStats, b: &NumericStats) -> Result<(), MergeError> {
    add(format_args!("{path}.missing"), a.missing, b.missing)?;
    add(format_args!("{path}.count"), a.count, b.count)?;
    add_f(format_args!("{path}.sum"), a.sum, b.sum)?;
    add_f(format_args!("{path}.sum_sq"), a.sum_sq, b.sum_sq)?;
    add_f(format_args!("{path}.below_sum"), a.below_sum, b.below_sum)?;
    add_f(format_args!("{path}.above_sum"), a.above_sum, b.above_sum)?;
    add_all(format_args!("{path}.bins"), &a.bins, &b.bins)
}

fn group_fits(path: &dyn Display, a: &GroupStats, b: &GroupStats) -> Result<(), MergeError> {
    for (name, x, y) in [
        ("count", a.count, b.count),
        ("selected", a.selected, b.selected),
        ("labelled", a.labelled, b.labelled),
        ("tp", a.tp, b.tp),
        ("fp", a.fp, b.fp),
        ("tn", a.tn, b.tn),
        ("fn", a.fn_, b.fn_),
    ] {
        add(format_args!("{path}.{name}"), x, y)?;
    }
    add_f(format_args!("{path}.abs_error"), a.abs_error, b.abs_error)?;
    add_f(format_args!("{path}.sq_error"), a.sq_error, b.sq_error)
}

fn sketch_fits(a: &QuantileSketch, b: &QuantileSketch) -> Result<(), MergeError> {
    add("latency.zeros", a.zeros, b.zeros)?;
    if !a.counts.is_empty() && !b.counts.is_empty() {
        let first = i64::from(a.offset).min(i64::from(b.offset));
        let last = (i64::from(a.offset) + a.counts.len() as i64)
            .max(i64::from(b.offset) + b.counts.len() as i64);
        let (lo, hi) = SKETCH_INDEX_RANGE;
        if last - first > hi - lo {
            // The merged sketch would need more buckets than any latency can fill.
            return Err(MergeError::Overflow("latency.offset".to_owned()));
        }
    }
    for (k, &c) in b.counts.iter().enumerate() {
        let index = i64::from(b.offset) + k as i64;
        let pos = index - i64::from(a.offset);
        if let Some(&mine) = usize::try_from(pos).ok().and_then(|p| a.counts.get(p)) {
            add("latency.counts", mine, c)?;
        }
    }
    Ok(())
}

/// Whether `b` can be added into `a` without a count wrapping or a sum overflowing; `Err` names
/// the first field that would. Both must have the same shape (checked by the caller).
pub fn check_merge(a: &WindowSummary, b: &WindowSummary) -> Result<(), MergeError> {
    add("events", a.events, b.events)?;
    add("rejected", a.rejected, b.rejected)?;
    add("failed", a.failed, b.failed)?;
    add("labelled", a.labelled, b.labelled)?;
    sketch_fits(&a.latency, &b.latency)?;
    for (i, (x, y)) in a.features.iter().zip(&b.features).enumerate() {
        let path: &dyn Display = &Indexed("features", i);
        match (x, y) {
            (FeatureStats::Numeric(x), FeatureStats::Numeric(y)) => numeric_fits(path, x, y)?,
            (FeatureStats::Categorical(x), FeatureStats::Categorical(y)) => {
                add(format_args!("{path}.missing"), x.missing, y.missing)?;
                add(format_args!("{path}.count"), x.count, y.count)?;
                add(format_args!("{path}.overflow"), x.overflow, y.overflow)?;
                for (k, v) in &y.counts {
                    add(
                        format_args!("{path}.counts"),
                        x.counts.get(k).copied().unwrap_or(0),
                        *v,
                    )?;
                }
            }
            _ => return Err(MergeError::ShapeMismatch("features")),
        }
    }
    let (p, q) = (&a.prediction, &b.prediction);
    add_all("prediction.class_counts", &p.class_counts, &q.class_counts)?;
    add_all("prediction.score_bins", &p.score_bins, &q.score_bins)?;
    if let (Some(x), Some(y)) = (&p.value, &q.value) {
        numeric_fits(&"prediction.value", x, y)?;
    }
    let (p, q) = (&a.performance, &b.performance);
    add_all("performance.confusion", &p.confusion, &q.confusion)?;
    add("performance.scored", p.scored, q.scored)?;
    add_all(
        "performance.positive_scores",
        &p.positive_scores,
        &q.positive_scores,
    )?;
    add_all(
        "performance.negative_scores",
        &p.negative_scores,
        &q.negative_scores,
    )?;
    add_f("performance.log_loss_sum", p.log_loss_sum, q.log_loss_sum)?;
    add_f("performance.brier_sum", p.brier_sum, q.brier_sum)?;
    if let (Some(x), Some(y)) = (&p.class_scores, &q.class_scores) {
        add("performance.class_scores.scored", x.scored, y.scored)?;
        add_f(
            "performance.class_scores.log_loss_sum",
            x.log_loss_sum,
            y.log_loss_sum,
        )?;
        for (a, b) in x.positive.iter().zip(&y.positive) {
            add_all("performance.class_scores.positive", a, b)?;
        }
        for (a, b) in x.negative.iter().zip(&y.negative) {
            add_all("performance.class_scores.negative", a, b)?;
        }
    }
    let (r, s) = (&p.regression, &q.regression);
    add("performance.regression.n", r.n, s.n)?;
    for (name, x, y) in [
        ("abs_error", r.abs_error, s.abs_error),
        ("sq_error", r.sq_error, s.sq_error),
        ("abs_pct_error", r.abs_pct_error, s.abs_pct_error),
        ("y_sum", r.y_sum, s.y_sum),
        ("y_sq_sum", r.y_sq_sum, s.y_sq_sum),
    ] {
        add_f(format_args!("performance.regression.{name}"), x, y)?;
    }
    for (i, (x, y)) in a.groups.iter().zip(&b.groups).enumerate() {
        for (j, (g, h)) in x.iter().zip(y).enumerate() {
            group_fits(&format_args!("groups[{i}][{j}]"), g, h)?;
        }
    }
    for (i, (x, y)) in a.intersections.iter().zip(&b.intersections).enumerate() {
        for (j, (g, h)) in x.cells.iter().zip(&y.cells).enumerate() {
            group_fits(&format_args!("intersections[{i}].cells[{j}]"), g, h)?;
        }
    }
    Ok(())
}

impl PerformanceStats {
    /// What a labelled, scored classification counts of its score: the score bins of its true
    /// class, the log loss and the Brier sum (one place for [`WindowSummary::record_label`]
    /// and [`WindowSummary::record_columns`], so both add the same numbers).
    #[inline]
    pub(crate) fn record_scored_label(&mut self, s: f64, is_pos: bool) {
        self.scored += 1;
        let bins = if is_pos {
            &mut self.positive_scores
        } else {
            &mut self.negative_scores
        };
        bins[score_bin(s)] += 1;
        let clipped = s.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
        self.log_loss_sum -= if is_pos {
            clipped.ln()
        } else {
            (1.0 - clipped).ln()
        };
        let y = if is_pos { 1.0 } else { 0.0 };
        self.brier_sum += (s - y) * (s - y);
    }
}
