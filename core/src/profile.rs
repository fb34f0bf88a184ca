//! The reference profile: what "normal" looks like for a model, built from its training or
//! validation data.
//!
//! Agents bin live values against the profile's quantile edges, and every drift metric compares
//! a window against it. A profile is named by the hash of its content, and every summary names
//! the profile it was binned with, so a collector never compares counts made on other edges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cbpe::CbpeProfile;
use crate::event::{Event, FeatureValue, Prediction, Target};
use crate::few;
use crate::hash::{canonical_json, sha256_hex};
use crate::pca::{unscaled, FitColumn, ReconstructionModel, MISSING_CODE, POW10, SCALED_MISSING};
use crate::quantile::{
    fine_probabilities, sorted_quantiles, tail_probabilities, tail_sub_bin, tail_sub_bounds,
    FINE_BINS, TAIL_SPLITS, TAIL_SUB_BINS,
};
use crate::schema::{FeatureKind, ModelSchema, Task};

/// Version of the profile's serialised form.
pub const PROFILE_FORMAT: u32 = 1;

pub use crate::score::{score_bin, SCORE_BINS};

/// Distinct values counted exactly before a reference feature is "many-valued".
const DISTINCT_CAP: usize = 1000;

/// Reference statistics of a numeric feature (or of a regression output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    /// Non-missing values.
    pub count: u64,
    /// Missing values.
    pub missing: u64,
    /// Smallest value (absent when `count` is 0).
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Population standard deviation (NumPy's default, ddof = 0).
    pub std: Option<f64>,
    /// Distinct values, counted up to 1000 (1000 means "at least").
    pub distinct: u32,
    /// `FINE_BINS + 1` quantile edges (NumPy "linear"), empty when `count` is 0.
    pub edges: Vec<f64>,
    /// Reference counts per fine bin (`FINE_BINS` of them).
    pub bins: Vec<u64>,
    /// Per fine bin, the sum of its values' distances from the bin's lower edge. With the
    /// counts it makes `∫F` over every bin exact, which the Wasserstein distance needs where
    /// bins are wide. Empty in profiles built before it existed (and so are the tail fields
    /// below); drift then assumes values sit mid-bin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bin_offsets: Vec<f64>,
    /// Quantiles that split the two outermost fine bins ([`TAIL_SPLITS`] each, ascending; see
    /// [`tail_probabilities`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail_edges: Vec<f64>,
    /// Reference counts in the [`TAIL_SUB_BINS`] sub-bins the tail edges make.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail_bins: Vec<u64>,
    /// Per tail sub-bin, the sum of its values' distances from its lower bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail_offsets: Vec<f64>,
}

impl NumericProfile {
    fn build(mut values: Vec<f64>, missing: u64) -> Self {
        // Stable sort: it detects the sorted runs that presorted, merged builders leave.
        values.sort_by(f64::total_cmp);
        Self::build_sorted(values, missing)
    }

    /// [`build`](Self::build) of values already in `total_cmp` order (as
    /// [`NumericColumn::into_sorted`] gives them), which `build`'s stable sort leaves as they
    /// are: the same profile without a pass to find that out.
    fn build_sorted(values: Vec<f64>, missing: u64) -> Self {
        debug_assert!(values.is_sorted_by(|a, b| a.total_cmp(b).is_le()));
        let count = values.len() as u64;
        let edges = sorted_quantiles(&values, &fine_probabilities());
        let mut bins = vec![0u64; if edges.is_empty() { 0 } else { FINE_BINS }];
        let mut bin_offsets = vec![0.0f64; bins.len()];
        let tail_edges = sorted_quantiles(&values, &tail_probabilities());
        let mut tail_bins = vec![0u64; if edges.is_empty() { 0 } else { TAIL_SUB_BINS }];
        let mut tail_offsets = vec![0.0f64; tail_bins.len()];
        let mut distinct = 0usize;
        let mut previous: Option<f64> = None;
        let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
        // The values are sorted, so their bins only move up: walk the edges alongside instead
        // of searching them for every value.
        let interior = edges.get(1..edges.len().saturating_sub(1)).unwrap_or(&[]);
        let mut bin = 0;
        for &x in &values {
            while bin < interior.len() && interior[bin] <= x {
                bin += 1;
            }
            if let Some(b) = bins.get_mut(bin) {
                *b += 1;
                bin_offsets[bin] += x - edges[bin];
                if let Some(t) = tail_sub_bin(&tail_edges, bin, x) {
                    tail_bins[t] += 1;
                    tail_offsets[t] += x - tail_sub_bounds(&edges, &tail_edges, t).0;
                }
            }
            if previous != Some(x) && distinct < DISTINCT_CAP {
                distinct += 1;
            }
            previous = Some(x);
            sum += x;
        }
        let mean = (count > 0).then(|| sum / count as f64);
        if let Some(m) = mean {
            for &x in &values {
                sum_sq += (x - m) * (x - m);
            }
        }
        Self {
            count,
            missing,
            min: values.first().copied(),
            max: values.last().copied(),
            mean,
            std: mean.map(|_| (sum_sq / count as f64).sqrt()),
            distinct: distinct as u32,
            edges,
            bins,
            bin_offsets,
            tail_edges,
            tail_bins,
            tail_offsets,
        }
    }
}

/// Reference statistics of a categorical feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalProfile {
    /// Non-missing values.
    pub count: u64,
    /// Missing values.
    pub missing: u64,
    /// Count per category.
    pub frequencies: BTreeMap<String, u64>,
}

/// Reference statistics of one feature, in schema order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureProfile {
    /// A numeric feature.
    Numeric {
        /// Feature name.
        name: String,
        /// Its statistics.
        #[serde(flatten)]
        stats: NumericProfile,
    },
    /// A categorical feature.
    Categorical {
        /// Feature name.
        name: String,
        /// Its statistics.
        #[serde(flatten)]
        stats: CategoricalProfile,
    },
}

impl FeatureProfile {
    /// The feature's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Numeric { name, .. } | Self::Categorical { name, .. } => name,
        }
    }
}

/// Reference prediction distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionProfile {
    /// Count per predicted class (classification).
    #[serde(default)]
    pub class_counts: Vec<u64>,
    /// Positive-class scores in [`SCORE_BINS`] equal-width bins (classification with scores).
    #[serde(default)]
    pub score_bins: Vec<u64>,
    /// Regression outputs.
    #[serde(default)]
    pub value: Option<NumericProfile>,
}

/// Reference base rates of one group of an attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupProfile {
    /// Group name (`other` included).
    pub group: String,
    /// Rows in the group.
    pub count: u64,
    /// Rows with a label.
    pub labelled: u64,
    /// Rows whose label is the positive class.
    pub positive_labels: u64,
    /// Rows predicted as the positive class.
    pub positive_predictions: u64,
}

/// Reference base rates of one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeProfile {
    /// Attribute name.
    pub name: String,
    /// One entry per group bucket, `other` last.
    pub groups: Vec<GroupProfile>,
}

/// The reference profile of a model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceProfile {
    /// Serialised form version.
    pub format: u32,
    /// Model name.
    pub model: String,
    /// Model version the profile was built for.
    pub model_version: String,
    /// The schema the profile was built with: whoever holds the profile can validate and
    /// interpret summaries binned against it.
    pub schema: ModelSchema,
    /// Rows the profile was built from.
    pub rows: u64,
    /// Per feature, in schema order.
    pub features: Vec<FeatureProfile>,
    /// Prediction distribution.
    pub prediction: PredictionProfile,
    /// Per attribute, in schema order.
    pub attributes: Vec<AttributeProfile>,
    /// CBPE's calibration map and sampling-error components (binary models with labelled,
    /// scored reference rows of both classes). Absent in older profiles, whose hashes stay
    /// those of their content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cbpe: Option<CbpeProfile>,
    /// The PCA reconstruction model for multivariate drift (absent in older profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<ReconstructionModel>,
    /// SHA-256 of the canonical JSON of everything above; empty while building.
    #[serde(default)]
    pub hash: String,
}

impl ReferenceProfile {
    /// The content hash this profile should carry.
    pub fn content_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash.clear();
        sha256_hex(canonical_json(&unhashed).as_bytes())
    }

    /// Whether the stored hash matches the content.
    pub fn hash_is_valid(&self) -> bool {
        self.hash == self.content_hash()
    }

    /// Numeric statistics of feature `i`, when it is numeric.
    pub fn numeric(&self, i: usize) -> Option<&NumericProfile> {
        match self.features.get(i)? {
            FeatureProfile::Numeric { stats, .. } => Some(stats),
            FeatureProfile::Categorical { .. } => None,
        }
    }

    /// Categorical statistics of feature `i`, when it is categorical.
    pub fn categorical(&self, i: usize) -> Option<&CategoricalProfile> {
        match self.features.get(i)? {
            FeatureProfile::Categorical { stats, .. } => Some(stats),
            FeatureProfile::Numeric { .. } => None,
        }
    }

    /// Checks the profile fits a schema: same features, kinds and attributes, in order, and
    /// the same intersections.
    pub fn check_against(&self, schema: &ModelSchema) -> Result<(), String> {
        if self.features.len() != schema.features.len() {
            return Err(format!(
                "profile has {} features, schema declares {}",
                self.features.len(),
                schema.features.len()
            ));
        }
        for (p, s) in self.features.iter().zip(&schema.features) {
            let kind_matches = matches!(
                (p, s.kind),
                (FeatureProfile::Numeric { .. }, FeatureKind::Numeric)
                    | (FeatureProfile::Categorical { .. }, FeatureKind::Categorical)
            );
            if p.name() != s.name || !kind_matches {
                return Err(format!(
                    "profile feature {:?} does not match schema feature {:?}",
                    p.name(),
                    s.name
                ));
            }
            if let FeatureProfile::Numeric { stats, .. } = p {
                let edges_ok = stats.edges.is_empty() || stats.edges.len() == FINE_BINS + 1;
                let sums_ok = (stats.bin_offsets.is_empty()
                    || stats.bin_offsets.len() == stats.bins.len())
                    && (stats.tail_edges.is_empty() || stats.tail_edges.len() == 2 * TAIL_SPLITS)
                    && stats.tail_bins.len() == stats.tail_offsets.len()
                    && (stats.tail_bins.is_empty() || stats.tail_bins.len() == TAIL_SUB_BINS);
                if !edges_ok || !sums_ok || stats.bins.len() != stats.edges.len().saturating_sub(1)
                {
                    return Err(format!("profile feature {:?} has malformed edges", s.name));
                }
            }
        }
        if self.attributes.len() != schema.attributes.len()
            || self
                .attributes
                .iter()
                .zip(&schema.attributes)
                .any(|(p, s)| p.name != s.name || p.groups.len() != s.bucket_count())
        {
            return Err("profile attributes do not match the schema".to_owned());
        }
        // Summaries count the cells of the schema's intersections, and the collector checks
        // them against the profile's schema: the two must declare the same.
        let names =
            |s: &ModelSchema| -> Vec<String> { s.intersections.iter().map(|x| x.name()).collect() };
        if names(&self.schema) != names(schema) {
            return Err(format!(
                "profile intersections {:?} do not match the schema's {:?}; rebuild the profile \
                 with the schema",
                names(&self.schema),
                names(schema)
            ));
        }
        Ok(())
    }
}

/// Accumulates reference rows, then computes the profile.
///
/// Numeric columns are kept whole (exact quantiles need every value), in row order with NaN
/// for a missing value, and categorical columns as one small code per row: together they are
/// the reference the PCA reconstruction model is fitted on, without a copy of every row.
/// Everything else is counted as it streams by.
#[derive(Debug)]
pub struct ProfileBuilder {
    schema: ModelSchema,
    rows: u64,
    numeric: Vec<NumericColumn>,
    missing: Vec<u64>,
    categories: Vec<CategoryColumn>,
    class_counts: Vec<u64>,
    score_bins: Vec<u64>,
    values: Vec<f64>,
    groups: Vec<Vec<GroupProfile>>,
    /// Labelled, scored rows of a binary model, by column as CBPE's fit takes them: score,
    /// predicted positive, actual positive (10 bytes a row, where a tuple took 16).
    scored: ScoredRows,
}

/// Most decimal places a [`NumericColumn`] holds as digits.
const MAX_SCALE: u32 = 9;

/// A numeric feature's reference values in row order. While every value is a decimal of at
/// most [`MAX_SCALE`] places whose digits fit an `i32` (what CSV files and most exports hold),
/// the column keeps the digits at one scale, 4 bytes a value, and each reads back to the very
/// bits it came in as (checked when it is pushed); the first value that does not fit turns the
/// column into plain `f64`s. Either way the profile is the same to the bit.
#[derive(Debug)]
enum NumericColumn {
    Scaled { digits: Vec<i32>, scale: u32 },
    Exact(Vec<f64>),
}

impl Default for NumericColumn {
    fn default() -> Self {
        Self::Scaled {
            digits: Vec::new(),
            scale: 0,
        }
    }
}

/// `10^k` as integers, `k ≤ MAX_SCALE`.
const POW10_U64: [u64; MAX_SCALE as usize + 1] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// The digits of `x` at `scale` places, when they fit and read back as `x` exactly.
#[inline]
fn digits_of(x: f64, scale: u32) -> Option<i32> {
    // Any nearby integer will do as the candidate (it is checked below): no libm `round`.
    let scaled = x * POW10[scale as usize];
    let d = scaled + if scaled < 0.0 { -0.5 } else { 0.5 };
    if !(d > f64::from(i32::MIN) && d < f64::from(i32::MAX)) {
        return None;
    }
    let d = d as i32;
    (unscaled(d, scale).to_bits() == x.to_bits()).then_some(d)
}

/// `digits` at `scale` places rewritten at `to` places (`to ≥ scale`): the same values, as
/// `d·10^k / 10^(scale+k)` and `d / 10^scale` are one rational, correctly rounded alike.
/// `None` when one no longer fits.
fn rescaled(digits: &[i32], scale: u32, to: u32) -> Option<Vec<i32>> {
    let factor = 10i64.pow(to - scale);
    digits
        .iter()
        .map(|&d| {
            if d == SCALED_MISSING {
                return Some(SCALED_MISSING);
            }
            i32::try_from(i64::from(d) * factor)
                .ok()
                .filter(|&d| d != SCALED_MISSING)
        })
        .collect()
}

/// Sorts `values` ascending: a least-significant-byte-first radix sort, skipping the bytes
/// every value shares (the high ones, for digits of a few places), where a comparison sort of
/// a million values took three to four times longer.
fn radix_sort(values: &mut Vec<i32>) {
    let n = values.len();
    if n < 1024 {
        values.sort_unstable();
        return;
    }
    // The sign bit flipped: unsigned order is then signed order.
    let key = |v: i32| (v as u32) ^ 0x8000_0000;
    let mut counts = [[0usize; 256]; 4];
    for &v in values.iter() {
        let k = key(v);
        for (byte, c) in counts.iter_mut().enumerate() {
            c[(k >> (8 * byte)) as usize & 255] += 1;
        }
    }
    let mut scratch = vec![0i32; n];
    for (byte, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue;
        }
        let mut next = [0usize; 256];
        let mut sum = 0;
        for (slot, &k) in next.iter_mut().zip(c) {
            *slot = sum;
            sum += k;
        }
        for &v in values.iter() {
            let b = (key(v) >> (8 * byte)) as usize & 255;
            scratch[next[b]] = v;
            next[b] += 1;
        }
        std::mem::swap(values, &mut scratch);
    }
}

impl NumericColumn {
    /// The column as plain values (NaN for missing), when it is not already.
    fn make_exact(&mut self) -> &mut Vec<f64> {
        if let Self::Scaled { digits, scale } = self {
            let values = digits.iter().map(|&d| unscaled(d, *scale)).collect();
            *self = Self::Exact(values);
        }
        match self {
            Self::Exact(values) => values,
            Self::Scaled { .. } => unreachable!("made exact above"),
        }
    }

    /// Moves the column to `to` decimal places (`to ≥` its scale), or to plain values when a
    /// value no longer fits.
    fn widen(&mut self, to: u32) {
        if let Self::Scaled { digits, scale } = self {
            if to > *scale {
                match rescaled(digits, *scale, to) {
                    Some(wider) => {
                        *self = Self::Scaled {
                            digits: wider,
                            scale: to,
                        }
                    }
                    None => {
                        self.make_exact();
                    }
                }
            }
        }
    }

    fn push_missing(&mut self) {
        match self {
            Self::Scaled { digits, .. } => digits.push(SCALED_MISSING),
            Self::Exact(values) => values.push(f64::NAN),
        }
    }

    /// [`push`](Self::push) of the plain decimal `m / 10^fraction` (negated when `negative`),
    /// as [`decimal::value`](crate::decimal::value) gives it (`m < 10^15`, `fraction ≤ 15`):
    /// the same column, to the bit, without the division when the column keeps digits at
    /// `fraction` places or more. Its digits are then `D = m·10^(scale − fraction)`, which
    /// `digits_of` would find (the value times `10^scale` lies within `D · 2^-51` of `D`) and
    /// accept (`D / 10^scale` and `m / 10^fraction` are one rational, both correctly rounded
    /// from exact operands, and a sign flips alike). Not for `-0` (`digits_of` rejects it),
    /// fewer places than the value has, or digits past `i32::MAX − 1`: those take `push`.
    #[inline]
    fn push_decimal(&mut self, m: u64, fraction: usize, negative: bool) {
        if let Self::Scaled { digits, scale } = self {
            let d = (*scale as usize)
                .checked_sub(fraction)
                .and_then(|k| m.checked_mul(*POW10_U64.get(k)?))
                .filter(|&d| d < i32::MAX as u64 && !(negative && d == 0));
            if let Some(d) = d {
                let d = d as i32;
                digits.push(if negative { -d } else { d });
                return;
            }
        }
        self.push(crate::decimal::value(m, fraction, negative));
    }

    fn push(&mut self, x: f64) {
        if let Self::Scaled { digits, scale } = self {
            if let Some(d) = digits_of(x, *scale) {
                digits.push(d);
                return;
            }
            match (*scale + 1..=MAX_SCALE).find(|&s| digits_of(x, s).is_some()) {
                Some(s) => self.widen(s),
                None => {
                    self.make_exact();
                }
            }
            if let Self::Scaled { digits, scale } = self {
                if let Some(d) = digits_of(x, *scale) {
                    digits.push(d);
                    return;
                }
                self.make_exact();
            }
        }
        if let Self::Exact(values) = self {
            values.push(x);
        }
    }

    /// Appends `other`'s values, in order.
    fn extend(&mut self, other: NumericColumn) {
        match other {
            Self::Scaled {
                digits: mut theirs,
                scale: their_scale,
            } => {
                if let Self::Scaled { scale, .. } = self {
                    let to = (*scale).max(their_scale);
                    self.widen(to);
                    if let Self::Scaled { digits, scale } = self {
                        match rescaled(&theirs, their_scale, *scale) {
                            Some(wider) => {
                                theirs = wider;
                                digits.append(&mut theirs);
                                return;
                            }
                            None => {
                                self.make_exact();
                            }
                        }
                    }
                }
                let values = self.make_exact();
                values.extend(theirs.iter().map(|&d| unscaled(d, their_scale)));
            }
            Self::Exact(theirs) => self.make_exact().extend(theirs),
        }
    }

    /// The non-missing values, sorted (`total_cmp` order), the column freed. Digits sort as
    /// their values do: at one scale, distinct digits of at most 31 bits are distinct values.
    fn into_sorted(self) -> Vec<f64> {
        match self {
            Self::Scaled { mut digits, scale } => {
                digits.retain(|&d| d != SCALED_MISSING);
                radix_sort(&mut digits);
                digits.iter().map(|&d| unscaled(d, scale)).collect()
            }
            Self::Exact(mut values) => {
                values.retain(|x| !x.is_nan());
                values.sort_unstable_by(f64::total_cmp);
                values
            }
        }
    }

    fn fit_column(&self) -> FitColumn<'_> {
        match self {
            Self::Scaled { digits, scale } => FitColumn::Scaled {
                digits,
                scale: *scale,
            },
            Self::Exact(values) => FitColumn::Numeric(values),
        }
    }
}

/// The labelled, scored rows, one column per part.
#[derive(Debug, Default)]
struct ScoredRows {
    scores: Vec<f64>,
    predicted: Vec<bool>,
    labels: Vec<bool>,
}

/// A categorical feature's reference values: per row the index of its category (in the
/// order first seen), [`MISSING_CODE`] when missing.
#[derive(Debug, Default)]
struct CategoryColumn {
    index: BTreeMap<String, u32>,
    names: Vec<String>,
    counts: Vec<u64>,
    codes: Vec<u32>,
}

impl CategoryColumn {
    fn push(&mut self, category: &str) {
        // A few names are searched in place, cheaper than the tree's string compares; codes
        // are the order first seen either way.
        let found = if self.names.len() <= few::FEW {
            few::position(&self.names, category)
        } else {
            self.index.get(category).copied()
        };
        let code = match found {
            Some(code) => code,
            None => self.intern(category),
        };
        self.counts[code as usize] += 1;
        self.codes.push(code);
    }

    fn intern(&mut self, category: &str) -> u32 {
        let code = self.names.len() as u32;
        self.index.insert(category.to_owned(), code);
        self.names.push(category.to_owned());
        self.counts.push(0);
        code
    }

    fn merge(&mut self, other: CategoryColumn) {
        let map: Vec<u32> = other
            .names
            .iter()
            .zip(&other.counts)
            .map(|(name, &k)| {
                let code = match self.index.get(name.as_str()) {
                    Some(&code) => code,
                    None => self.intern(name),
                };
                self.counts[code as usize] += k;
                code
            })
            .collect();
        self.codes.extend(
            other
                .codes
                .iter()
                .map(|&c| map.get(c as usize).copied().unwrap_or(MISSING_CODE)),
        );
    }

    /// Count per category, as the profile states them.
    fn frequencies(&self) -> BTreeMap<String, u64> {
        self.names
            .iter()
            .zip(&self.counts)
            .filter(|(_, &k)| k > 0)
            .map(|(name, &k)| (name.clone(), k))
            .collect()
    }
}

impl ProfileBuilder {
    /// A builder for `schema` (already validated).
    pub fn new(schema: &ModelSchema) -> Self {
        let n = schema.features.len();
        Self {
            schema: schema.clone(),
            rows: 0,
            numeric: (0..n).map(|_| NumericColumn::default()).collect(),
            missing: vec![0; n],
            categories: (0..n).map(|_| CategoryColumn::default()).collect(),
            class_counts: vec![0; schema.classes.len()],
            score_bins: vec![
                0;
                if schema.is_classification() {
                    SCORE_BINS
                } else {
                    0
                }
            ],
            values: Vec::new(),
            groups: schema
                .attributes
                .iter()
                .map(|a| {
                    (0..a.bucket_count())
                        .map(|g| GroupProfile {
                            group: a.group_name(g).to_owned(),
                            count: 0,
                            labelled: 0,
                            positive_labels: 0,
                            positive_predictions: 0,
                        })
                        .collect()
                })
                .collect(),
            scored: ScoredRows::default(),
        }
    }

    /// Takes in the rows another builder for the same schema has seen, so that a dataset can
    /// be read by several threads. Quantiles are computed at [`finish`](Self::finish) from all
    /// values, so the profile does not depend on how the rows were split.
    pub fn merge(&mut self, other: ProfileBuilder) {
        self.rows += other.rows;
        for (a, b) in self.numeric.iter_mut().zip(other.numeric) {
            a.extend(b);
        }
        for (a, b) in self.missing.iter_mut().zip(other.missing) {
            *a += b;
        }
        for (a, b) in self.categories.iter_mut().zip(other.categories) {
            a.merge(b);
        }
        for (a, b) in self.class_counts.iter_mut().zip(other.class_counts) {
            *a += b;
        }
        for (a, b) in self.score_bins.iter_mut().zip(other.score_bins) {
            *a += b;
        }
        self.values.extend(other.values);
        self.scored.scores.extend(other.scored.scores);
        self.scored.predicted.extend(other.scored.predicted);
        self.scored.labels.extend(other.scored.labels);
        for (a, b) in self.groups.iter_mut().zip(other.groups) {
            for (x, y) in a.iter_mut().zip(b) {
                x.count += y.count;
                x.labelled += y.labelled;
                x.positive_labels += y.positive_labels;
                x.positive_predictions += y.positive_predictions;
            }
        }
    }

    /// Formerly sorted the numeric values of a block before merging; the columns now stay in
    /// row order for the reconstruction model's fit, and [`finish`](Self::finish) sorts them on
    /// several threads. Kept so that callers written for it still build.
    pub fn presort(&mut self) {}

    /// Adds one validated reference row.
    pub fn add(&mut self, event: &Event) {
        for (i, (v, spec)) in event.features.iter().zip(&self.schema.features).enumerate() {
            match v {
                FeatureValue::Missing => {
                    self.missing[i] += 1;
                    match spec.kind {
                        FeatureKind::Numeric => self.numeric[i].push_missing(),
                        FeatureKind::Categorical => self.categories[i].codes.push(MISSING_CODE),
                    }
                }
                // Validated values are finite, so NaN stays free to mark a missing one.
                FeatureValue::Numeric(x) => self.numeric[i].push(*x),
                FeatureValue::Categorical(c) => self.categories[i].push(c),
            }
        }
        self.add_rest(event);
    }

    /// Cell-level adding, for readers that hold a row as cells (the agent's CSV reader) and
    /// need no [`Event`] for its features: feature `i`'s value of the row being added, a
    /// validated (finite) number of a numeric feature. The row is complete once every feature
    /// has had its value (through [`add_numeric`](Self::add_numeric),
    /// [`add_category`](Self::add_category) or [`add_missing`](Self::add_missing), in feature
    /// order) and [`add_rest`](Self::add_rest) has been called: [`add`](Self::add) is those
    /// calls for an event.
    #[inline]
    pub fn add_numeric(&mut self, i: usize, x: f64) {
        self.numeric[i].push(x);
    }

    /// [`add_numeric`](Self::add_numeric) of a plain decimal given by its parts (see
    /// [`decimal::plain_parts`](crate::decimal::plain_parts)): the same state, to the bit, as
    /// `add_numeric(i, decimal::value(m, fraction, negative))`, mostly without its division.
    #[inline]
    pub fn add_decimal(&mut self, i: usize, m: u64, fraction: usize, negative: bool) {
        self.numeric[i].push_decimal(m, fraction, negative);
    }

    /// Feature `i`'s category (a categorical feature) in the row being added; see
    /// [`add_numeric`](Self::add_numeric).
    #[inline]
    pub fn add_category(&mut self, i: usize, category: &str) {
        self.categories[i].push(category);
    }

    /// Feature `i` missing in the row being added; see [`add_numeric`](Self::add_numeric).
    #[inline]
    pub fn add_missing(&mut self, i: usize) {
        self.missing[i] += 1;
        match self.schema.features[i].kind {
            FeatureKind::Numeric => self.numeric[i].push_missing(),
            FeatureKind::Categorical => self.categories[i].codes.push(MISSING_CODE),
        }
    }

    /// Everything of `event` but its features (prediction, label, groups) as the rest of the
    /// row being added, and the row counted; `event.features` is not read. See
    /// [`add_numeric`](Self::add_numeric).
    pub fn add_rest(&mut self, event: &Event) {
        self.rows += 1;
        let positive = self.schema.positive_index().map(|p| p as u32);
        let predicted_positive = match event.prediction {
            Prediction::Class { class, score } => {
                self.class_counts[class as usize] += 1;
                if let Some(s) = score {
                    self.score_bins[score_bin(s)] += 1;
                    if let (Task::Binary, Some(Target::Class(l))) = (self.schema.task, event.label)
                    {
                        self.scored.scores.push(s);
                        self.scored.predicted.push(Some(class) == positive);
                        self.scored.labels.push(Some(l) == positive);
                    }
                }
                Some(class) == positive
            }
            Prediction::Value(v) => {
                self.values.push(v);
                false
            }
            Prediction::Failed => false,
        };
        for (a, &g) in event.groups.iter().enumerate() {
            let gp = &mut self.groups[a][g as usize];
            gp.count += 1;
            gp.positive_predictions += u64::from(predicted_positive);
            if let Some(label) = event.label {
                gp.labelled += 1;
                if matches!(label, Target::Class(c) if Some(c) == positive) {
                    gp.positive_labels += 1;
                }
            }
        }
    }

    /// Computes the profile and its content hash.
    pub fn finish(self) -> ReferenceProfile {
        let ProfileBuilder {
            schema,
            rows,
            numeric,
            missing,
            categories,
            class_counts,
            score_bins,
            values,
            groups,
            scored,
        } = self;
        let columns: Vec<FitColumn> = schema
            .features
            .iter()
            .zip(numeric.iter().zip(&categories))
            .map(|(spec, (nums, cats))| match spec.kind {
                FeatureKind::Numeric => nums.fit_column(),
                FeatureKind::Categorical => FitColumn::Categorical {
                    names: &cats.names,
                    codes: &cats.codes,
                },
            })
            .collect();
        let reconstruction = ReconstructionModel::fit_columns(&columns).ok();
        drop(columns);
        let frequencies: Vec<BTreeMap<String, u64>> =
            categories.iter().map(CategoryColumn::frequencies).collect();
        drop(categories);
        // The numeric columns sorted and summarised on several threads, each column freed as
        // soon as it is summarised; CBPE's fit after them, so that its working copies of the
        // labelled rows never sit beside the whole reference (peak memory).
        let columns: Vec<std::sync::Mutex<NumericColumn>> =
            numeric.into_iter().map(std::sync::Mutex::new).collect();
        let numeric_profiles = crate::par::map(columns.len(), |i| {
            let FeatureKind::Numeric = schema.features[i].kind else {
                return None;
            };
            let values = columns[i]
                .lock()
                .map(|mut c| std::mem::take(&mut *c))
                .unwrap_or_default()
                .into_sorted();
            Some(NumericProfile::build_sorted(values, missing[i]))
        });
        drop(columns);
        let labels = &scored.labels;
        let both_classes = labels.iter().any(|&l| l) && labels.iter().any(|&l| !l);
        let cbpe = both_classes
            .then(|| CbpeProfile::fit(&scored.scores, &scored.predicted, &scored.labels));
        drop(scored);
        let features = schema
            .features
            .iter()
            .zip(numeric_profiles.into_iter().zip(frequencies))
            .zip(&missing)
            .map(|((spec, (nums, cats)), &missing)| match (spec.kind, nums) {
                (FeatureKind::Numeric, Some(stats)) => FeatureProfile::Numeric {
                    name: spec.name.clone(),
                    stats,
                },
                (_, _) => FeatureProfile::Categorical {
                    name: spec.name.clone(),
                    stats: CategoricalProfile {
                        count: cats.values().sum(),
                        missing,
                        frequencies: cats,
                    },
                },
            })
            .collect();
        let value = (!schema.is_classification()).then(|| NumericProfile::build(values, 0));
        let mut profile = ReferenceProfile {
            format: PROFILE_FORMAT,
            model: schema.name.clone(),
            model_version: schema.version.clone(),
            schema: schema.clone(),
            rows,
            features,
            prediction: PredictionProfile {
                class_counts,
                score_bins,
                value,
            },
            attributes: schema
                .attributes
                .iter()
                .zip(groups)
                .map(|(a, groups)| AttributeProfile {
                    name: a.name.clone(),
                    groups,
                })
                .collect(),
            cbpe,
            reconstruction,
            hash: String::new(),
        };
        profile.hash = profile.content_hash();
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FeatureSpec;
    use proptest::prelude::*;

    fn schema() -> ModelSchema {
        let f = |name: &str, kind| FeatureSpec {
            name: name.into(),
            kind,
        };
        ModelSchema {
            intersections: Vec::new(),
            name: "m".into(),
            version: "1".into(),
            task: Task::Binary,
            classes: vec![],
            positive_class: None,
            features: vec![
                f("x", FeatureKind::Numeric),
                f("c", FeatureKind::Categorical),
                f("y", FeatureKind::Numeric),
            ],
            attributes: vec![],
        }
        .validated()
        .expect("valid schema")
    }

    /// A value of one of several kinds: missing, -0, beyond `i32` digits, full precision, or
    /// a decimal of 0 to 11 places (past [`MAX_SCALE`] too).
    fn value(kind: u8, m: i64, places: u32) -> FeatureValue {
        FeatureValue::Numeric(match kind {
            0 => return FeatureValue::Missing,
            1 => -0.0,
            2 => 1e12 + m as f64,
            3 => m as f64 / 7.0,
            _ => m as f64 / 10f64.powi(places as i32),
        })
    }

    fn event(x: FeatureValue, y: FeatureValue, i: usize) -> Event {
        Event {
            id: None,
            ts_ms: 0,
            features: vec![x, FeatureValue::Categorical(format!("c{}", i % 3)), y],
            groups: Vec::new(),
            prediction: Prediction::Class {
                class: (i % 2) as u32,
                score: Some((i % 10) as f64 / 10.0),
            },
            label: Some(Target::Class((i / 2 % 2) as u32)),
            latency_ms: None,
        }
    }

    /// The former store: every numeric column plain `f64`s from the first row.
    fn plain_builder(schema: &ModelSchema) -> ProfileBuilder {
        let mut b = ProfileBuilder::new(schema);
        for c in &mut b.numeric {
            c.make_exact();
        }
        b
    }

    proptest! {
        #[test]
        fn digit_columns_give_the_profile_plain_columns_give(
            xs in proptest::collection::vec((0u8..10, -2_000_000i64..2_000_000, 0u32..12), 2..300),
            y_places in 0u32..6,
            block in 1usize..50,
        ) {
            let schema = schema();
            let events: Vec<Event> = xs
                .iter()
                .enumerate()
                .map(|(i, &(kind, m, places))| {
                    // y stays a decimal column (blocks at several scales); x meets every kind.
                    let y = value(4, m / 3 + i as i64, y_places + (i % 3) as u32);
                    event(value(kind, m, places), y, i)
                })
                .collect();
            let mut merged = ProfileBuilder::new(&schema);
            for chunk in events.chunks(block) {
                let mut b = ProfileBuilder::new(&schema);
                for e in chunk {
                    b.add(e);
                }
                merged.merge(b);
            }
            let mut plain = plain_builder(&schema);
            for e in &events {
                plain.add(e);
            }
            let y_held_as_digits = matches!(merged.numeric[2], NumericColumn::Scaled { .. });
            prop_assert!(y_held_as_digits);
            prop_assert_eq!(merged.finish(), plain.finish());
        }
    }

    /// A column's variant, scale and values as bits, to compare two columns exactly.
    fn column_bits(c: &NumericColumn) -> (Option<u32>, Vec<u64>) {
        match c {
            NumericColumn::Scaled { digits, scale } => {
                (Some(*scale), digits.iter().map(|&d| d as u64).collect())
            }
            NumericColumn::Exact(values) => (None, values.iter().map(|x| x.to_bits()).collect()),
        }
    }

    proptest! {
        #[test]
        fn decimals_pushed_by_their_parts_make_the_column_their_values_make(
            cells in prop_oneof![
                // Mostly columns that stay digits (the fast path), at times past them.
                proptest::collection::vec((prop_oneof![0u64..3, 0u64..100_000, 2_147_483_640u64..2_147_483_650], 0usize..6, proptest::bool::ANY, 0u8..20), 1..200),
                proptest::collection::vec(
                    (prop_oneof![0u64..1000, 0u64..3_000_000_000, 0u64..1_000_000_000_000_000], 0usize..16, proptest::bool::ANY, 0u8..20),
                    1..200,
                ),
            ],
        ) {
            // Every path of `push_decimal`: the fast one (fewer places than the column's, as
            // many), more places (a widening), digits past an `i32`, -0, 15 digits, a
            // missing value now and then; against `push` of `decimal::value` of the parts.
            let mut by_parts = NumericColumn::default();
            let mut by_value = NumericColumn::default();
            for &(m, fraction, negative, missing) in &cells {
                if missing == 0 {
                    by_parts.push_missing();
                    by_value.push_missing();
                    continue;
                }
                by_parts.push_decimal(m, fraction, negative);
                by_value.push(crate::decimal::value(m, fraction, negative));
                prop_assert_eq!(column_bits(&by_parts), column_bits(&by_value), "{} {} {}", m, fraction, negative);
            }
        }

        #[test]
        fn sorted_columns_build_the_profile_a_sort_builds(
            cells in proptest::collection::vec((-5_000_000i32..5_000_000, 0u8..12), 0..400),
            scale in 0u32..6,
            exact in proptest::bool::ANY,
        ) {
            // `finish` skips `build`'s sort for `into_sorted`'s values: digits and plain
            // columns, missing values, ties, negatives.
            let mut column = NumericColumn::default();
            for &(d, k) in &cells {
                match k {
                    0 => column.push_missing(),
                    1 => column.push(f64::from(d % 7)),
                    _ => column.push(unscaled(d, scale)),
                }
            }
            if exact {
                column.make_exact();
            }
            let sorted = column.into_sorted();
            let missing = cells.iter().filter(|c| c.1 == 0).count() as u64;
            prop_assert_eq!(
                NumericProfile::build_sorted(sorted.clone(), missing),
                NumericProfile::build(sorted, missing)
            );
        }

        #[test]
        fn the_radix_sort_sorts(
            mut values in proptest::collection::vec(proptest::num::i32::ANY, 0..3000),
            narrow in proptest::bool::ANY,
        ) {
            if narrow {
                // Digits of a few places: the high bytes shared, their passes skipped.
                for v in &mut values {
                    *v %= 100_000;
                }
            }
            let mut want = values.clone();
            want.sort_unstable();
            radix_sort(&mut values);
            prop_assert_eq!(values, want);
        }
    }

    #[test]
    fn csv_decimals_are_held_in_four_bytes_and_odd_values_in_eight() {
        let schema = schema();
        let mut b = ProfileBuilder::new(&schema);
        for (i, x) in ["1.2300", "17.5", "0.0001", "-3.25"].iter().enumerate() {
            let x = FeatureValue::Numeric(x.parse().expect("a number"));
            b.add(&event(x, FeatureValue::Numeric(0.1 * i as f64), i));
        }
        assert!(matches!(
            &b.numeric[0],
            NumericColumn::Scaled { digits, scale: 4 } if digits == &[12300, 175000, 1, -32500]
        ));
        // 0.1 * 3 is 0.30000000000000004: no decimal of nine places reads back as it.
        assert!(matches!(&b.numeric[2], NumericColumn::Exact(v) if v.len() == 4));
    }
}
