//! Recording a batch of events column by column: [`Columns`] and
//! [`WindowSummary::record_columns`].
//!
//! Why: [`WindowSummary::record`] takes one event at a time, so for every event it walks every
//! feature's statistics, and for every categorical value it searches the summary's
//! `BTreeMap<String, u64>` by comparing strings. Where events arrive in batches (an Arrow table
//! from Python, the rows of a dataset) the same work is cheaper a column at a time: a numeric
//! feature's count, sums, minimum and maximum stay in registers for the whole column, and a
//! categorical column arrives as codes into a small dictionary, so each dictionary entry is
//! looked up in the summary's map once per batch and the rows only count codes.
//!
//! The result is the same summary, to the bit, as recording the rows one by one with
//! [`record`](WindowSummary::record) (or [`record_scored`](WindowSummary::record_scored)): each
//! float accumulator (a feature's sums, the log loss and Brier sums, the error moments, CBPE's
//! sums) belongs to one column or to the row pass, and receives the same values in the same
//! (row) order; everything else is a count. `core/tests/record_columns.rs` checks it on random
//! batches.

use std::collections::BTreeMap;
use std::ops::Range;

use thiserror::Error;

use super::{
    CategoricalStats, FeatureStats, GroupStats, NumericStats, WindowSummary, FINE_BINS, TAIL_BINS,
    UNSEEN_CATEGORY_CAP,
};
use crate::event::{Prediction, Target};
use crate::pca::{Encoding, CENTRED_ROWS, CENTRED_TILE};
use crate::profile::score_bin;
use crate::profile::{FeatureProfile, NumericProfile, ReferenceProfile};
use crate::quantile::{fine_bin, FinePosition};
use crate::schema::ModelSchema;
use crate::summary::plan::EdgeIndex;

/// The code of a missing value in a categorical [`Column`].
pub const MISSING_CODE: u32 = u32::MAX;

/// The class of a failed prediction (a serving error) in a [`PredictionColumn::Class`].
pub const FAILED_CLASS: u32 = u32::MAX;

/// One feature's values for every row of a [`Columns`] batch.
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    /// A numeric feature: one value per row, `NaN` for a missing value (validated events never
    /// hold a NaN: validation rejects non-finite numbers).
    Numeric(&'a [f64]),
    /// A categorical feature: one code per row into `dictionary`, [`MISSING_CODE`] for a
    /// missing value (a code past the dictionary's end counts as missing too). The dictionary
    /// is the batch's own; it may name categories no row uses, and the same category twice.
    Categorical {
        /// Per row, the index of its category in `dictionary`.
        codes: &'a [u32],
        /// The batch's categories.
        dictionary: &'a [&'a str],
    },
}

/// The model's outputs for every row of a [`Columns`] batch.
#[derive(Debug, Clone, Copy)]
pub enum PredictionColumn<'a> {
    /// Classification: per row the predicted class (index into the schema's classes, or
    /// [`FAILED_CLASS`]) and, when the model gives one, the positive-class score (`NaN`: none).
    Class {
        /// Per row, the predicted class.
        classes: &'a [u32],
        /// Per row, the positive-class score.
        scores: Option<&'a [f64]>,
    },
    /// Regression: per row the output (`NaN`: a failed prediction).
    Value(&'a [f64]),
}

/// A batch of validated events, column by column: what [`WindowSummary::record_columns`]
/// folds. Every slice holds one entry per row (`groups` one per row and attribute, row-major;
/// `class_scores` one per row and class), and a row holds what the event would
/// ([`Event`](crate::event::Event)'s fields; `id` is the caller's business).
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    /// Rows in the batch.
    pub rows: usize,
    /// Per row, the event time in ms since the epoch.
    pub ts_ms: &'a [i64],
    /// One column per schema feature, in schema order.
    pub features: Vec<Column<'a>>,
    /// Per row, one group index per schema attribute (as [`Event::groups`]), row-major.
    ///
    /// [`Event::groups`]: crate::event::Event::groups
    pub groups: &'a [u16],
    /// Per row, the model output.
    pub prediction: PredictionColumn<'a>,
    /// Per row, the label it came with (absent: none did).
    pub labels: Option<&'a [Option<Target>]>,
    /// Per row, the serving latency in ms (`NaN`: none; absent: none had one).
    pub latency_ms: Option<&'a [f64]>,
    /// Per row, the per-class probabilities of a multiclass prediction (as
    /// [`record_scored`](WindowSummary::record_scored) takes them), one per schema class,
    /// row-major; a row whose first probability is `NaN` has none.
    pub class_scores: Option<&'a [f64]>,
}

/// Why a [`Columns`] batch does not fit the summary's schema; nothing was recorded.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ColumnsError {
    /// A part holds another number of entries than the rows need.
    #[error("{part}: {got} entries, {want} expected")]
    Length {
        /// Which slice (`ts_ms`, `features[3]`, `groups`, ...).
        part: String,
        /// Entries it holds.
        got: usize,
        /// Entries the rows need.
        want: usize,
    },
    /// A feature's column is of the other kind than the schema's feature.
    #[error("features[{0}]: the column's kind differs from the feature's")]
    Kind(usize),
}

impl<'a> Columns<'a> {
    /// Rows `range` of this batch, as a batch of their own (no copy). `None` when the range
    /// is out of bounds or a part's length is not a multiple of the rows.
    pub fn slice(&self, range: Range<usize>) -> Option<Columns<'a>> {
        if range.start > range.end || range.end > self.rows {
            return None;
        }
        let n = self.rows;
        let cut = |len: usize| -> Option<Range<usize>> {
            if n == 0 {
                return Some(0..len);
            }
            let stride = len / n;
            (stride * n == len).then(|| range.start * stride..range.end * stride)
        };
        let part = |s: &'a [f64]| Some(&s[cut(s.len())?]);
        Some(Columns {
            rows: range.len(),
            ts_ms: &self.ts_ms[cut(self.ts_ms.len())?],
            features: self
                .features
                .iter()
                .map(|c| {
                    Some(match *c {
                        Column::Numeric(xs) => Column::Numeric(part(xs)?),
                        Column::Categorical { codes, dictionary } => Column::Categorical {
                            codes: &codes[cut(codes.len())?],
                            dictionary,
                        },
                    })
                })
                .collect::<Option<_>>()?,
            groups: &self.groups[cut(self.groups.len())?],
            prediction: match self.prediction {
                PredictionColumn::Class { classes, scores } => PredictionColumn::Class {
                    classes: &classes[cut(classes.len())?],
                    scores: match scores {
                        Some(s) => Some(part(s)?),
                        None => None,
                    },
                },
                PredictionColumn::Value(v) => PredictionColumn::Value(part(v)?),
            },
            labels: match self.labels {
                Some(l) => Some(&l[cut(l.len())?]),
                None => None,
            },
            latency_ms: match self.latency_ms {
                Some(l) => Some(part(l)?),
                None => None,
            },
            class_scores: match self.class_scores {
                Some(s) => Some(part(s)?),
                None => None,
            },
        })
    }

    /// Row `i`'s model output, as its event holds it.
    pub fn prediction_at(&self, i: usize) -> Prediction {
        match self.prediction {
            PredictionColumn::Class { classes, scores } => match classes[i] {
                FAILED_CLASS => Prediction::Failed,
                class => Prediction::Class {
                    class,
                    score: scores.map(|s| s[i]).filter(|s| !s.is_nan()),
                },
            },
            PredictionColumn::Value(v) if v[i].is_nan() => Prediction::Failed,
            PredictionColumn::Value(v) => Prediction::Value(v[i]),
        }
    }

    /// Row `i`'s label, if it came with one.
    pub fn label_at(&self, i: usize) -> Option<Target> {
        self.labels.and_then(|l| l[i])
    }

    /// Row `i`'s group indices, one per attribute of `schema`.
    pub fn groups_at(&self, i: usize, schema: &ModelSchema) -> &'a [u16] {
        let a = schema.attributes.len();
        &self.groups[i * a..(i + 1) * a]
    }

    /// Row `i`'s per-class probabilities, if it has them.
    pub fn class_scores_at(&self, i: usize, schema: &ModelSchema) -> Option<&'a [f64]> {
        let k = schema.classes.len();
        let s = self.class_scores?.get(i * k..(i + 1) * k)?;
        (!s.first()?.is_nan()).then_some(s)
    }

    /// Whether this batch fits `schema` and `profile`: every part's length against the rows,
    /// the feature columns' kinds against the profile's features. What
    /// [`WindowSummary::record_columns`] checks before it records anything.
    pub fn check(
        &self,
        schema: &ModelSchema,
        profile: &ReferenceProfile,
    ) -> Result<(), ColumnsError> {
        let n = self.rows;
        let len = |part: &str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(ColumnsError::Length {
                    part: part.to_owned(),
                    got,
                    want,
                })
            }
        };
        len("ts_ms", self.ts_ms.len(), n)?;
        len("features", self.features.len(), profile.features.len())?;
        for (j, (c, f)) in self.features.iter().zip(&profile.features).enumerate() {
            match (c, f) {
                (Column::Numeric(xs), FeatureProfile::Numeric { .. }) => {
                    len(&format!("features[{j}]"), xs.len(), n)?
                }
                (Column::Categorical { codes, .. }, FeatureProfile::Categorical { .. }) => {
                    len(&format!("features[{j}]"), codes.len(), n)?
                }
                _ => return Err(ColumnsError::Kind(j)),
            }
        }
        len("groups", self.groups.len(), n * schema.attributes.len())?;
        match self.prediction {
            PredictionColumn::Class { classes, scores } => {
                len("prediction.classes", classes.len(), n)?;
                if let Some(s) = scores {
                    len("prediction.scores", s.len(), n)?;
                }
            }
            PredictionColumn::Value(v) => len("prediction.values", v.len(), n)?,
        }
        if let Some(l) = self.labels {
            len("labels", l.len(), n)?;
        }
        if let Some(l) = self.latency_ms {
            len("latency_ms", l.len(), n)?;
        }
        if let Some(s) = self.class_scores {
            len("class_scores", s.len(), n * schema.classes.len())?;
        }
        Ok(())
    }
}

impl NumericStats {
    /// [`record`](Self::record) of every value of a column (`NaN`: missing), in order, with
    /// the count, sums, minimum and maximum in locals.
    fn record_column(&mut self, xs: &[f64], reference: &NumericProfile, index: Option<&EdgeIndex>) {
        let edges = &reference.edges;
        match index {
            _ if self.bins.is_empty() => {
                self.record_column_by(xs, reference, None::<fn(f64) -> FinePosition>)
            }
            Some(index) => self.record_column_by(xs, reference, Some(|x| index.fine_bin(edges, x))),
            None => self.record_column_by(xs, reference, Some(|x| fine_bin(edges, x))),
        }
    }

    /// [`record_column`](Self::record_column) with the bin found by `bin` (`None`: the
    /// summary keeps no bins), made once per column rather than chosen per value.
    #[inline(always)]
    fn record_column_by(
        &mut self,
        xs: &[f64],
        reference: &NumericProfile,
        bin: Option<impl Fn(f64) -> FinePosition>,
    ) {
        let (mut missing, mut count) = (0u64, 0u64);
        let (mut sum, mut sum_sq) = (self.sum, self.sum_sq);
        let (mut below, mut above) = (self.below_sum, self.above_sum);
        // `INFINITY.min(x)` is `x` for every number, so the first value starts the sequence
        // of `min` calls `record` makes from `Some(x)`.
        let (mut lo, mut hi) = (
            self.min.unwrap_or(f64::INFINITY),
            self.max.unwrap_or(f64::NEG_INFINITY),
        );
        let mut bins = std::mem::take(&mut self.bins);
        let every_position = self.bin_positions.len() == FINE_BINS;
        for &x in xs {
            if x.is_nan() {
                missing += 1;
                continue;
            }
            count += 1;
            sum += x;
            sum_sq += x * x;
            lo = lo.min(x);
            hi = hi.max(x);
            let Some(bin) = &bin else {
                continue;
            };
            let slot = match bin(x) {
                FinePosition::Below => {
                    below += x;
                    0
                }
                FinePosition::Bin(b) => {
                    if every_position || !(TAIL_BINS..FINE_BINS - TAIL_BINS).contains(&b) {
                        self.record_position(x, b, reference);
                    }
                    b + 1
                }
                FinePosition::Above => {
                    above += x;
                    FINE_BINS + 1
                }
            };
            bins[slot] += 1;
        }
        self.bins = bins;
        self.missing += missing;
        self.count += count;
        self.sum = sum;
        self.sum_sq = sum_sq;
        self.below_sum = below;
        self.above_sum = above;
        if count > 0 {
            self.min = Some(lo);
            self.max = Some(hi);
        }
    }
}

/// Feature `j`'s cells of each tile of `c` (tiles of [`CENTRED_TILE`] rows of `d` features,
/// as [`ReconstructionModel::errors_of_centred`](crate::pca::ReconstructionModel::errors_of_centred)
/// takes them).
fn tiles_of(c: &mut [f64], d: usize, j: usize) -> impl Iterator<Item = &mut [f64]> {
    c.chunks_exact_mut(d * CENTRED_TILE)
        .map(move |tile| &mut tile[j * CENTRED_TILE..(j + 1) * CENTRED_TILE])
}

impl CategoricalStats {
    /// [`record`](Self::record) of every code of a column: codes counted per dictionary entry,
    /// then each entry that occurs added into the map once, in the order of its first
    /// occurrence (which decides, as row by row, which unseen categories get a name before
    /// the cap).
    fn record_codes(
        &mut self,
        codes: &[u32],
        dictionary: &[&str],
        reference: &BTreeMap<String, u64>,
    ) {
        let mut per_code = vec![0u64; dictionary.len()];
        let mut order: Vec<u32> = Vec::new();
        let mut missing = 0u64;
        for &c in codes {
            match per_code.get_mut(c as usize) {
                Some(n) => {
                    if *n == 0 {
                        order.push(c);
                    }
                    *n += 1;
                }
                None => missing += 1,
            }
        }
        self.missing += missing;
        self.count += codes.len() as u64 - missing;
        let mut unseen_named = self
            .counts
            .keys()
            .filter(|k| !reference.contains_key(*k))
            .count();
        for c in order {
            let (category, n) = (dictionary[c as usize], per_code[c as usize]);
            if let Some(have) = self.counts.get_mut(category) {
                *have += n;
                continue;
            }
            let known = reference.contains_key(category);
            if known || unseen_named < UNSEEN_CATEGORY_CAP {
                self.counts.insert(category.to_owned(), n);
                unseen_named += usize::from(!known);
            } else {
                self.overflow += n;
            }
        }
    }
}

impl WindowSummary {
    /// Records a batch of validated events given column by column: the same summary, to the
    /// bit, as [`record_scored`](Self::record_scored) of each row in order (see the module
    /// documentation), at a fraction of the cost per row.
    ///
    /// `profile` must be the profile this summary was created with. A batch that does not fit
    /// the schema (a part's length, a feature column's kind) errs and records nothing.
    pub fn record_columns(
        &mut self,
        schema: &ModelSchema,
        profile: &ReferenceProfile,
        block: &Columns<'_>,
    ) -> Result<(), ColumnsError> {
        block.check(schema, profile)?;
        if self.features.len() != profile.features.len() {
            return Err(ColumnsError::Length {
                part: "features".into(),
                got: profile.features.len(),
                want: self.features.len(),
            });
        }
        let n = block.rows;
        if n == 0 {
            return Ok(());
        }
        self.events += n as u64;
        let (first, last) = block
            .ts_ms
            .iter()
            .fold((i64::MAX, i64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
        self.first_ts_ms = Some(self.first_ts_ms.map_or(first, |t| t.min(first)));
        self.last_ts_ms = Some(self.last_ts_ms.map_or(last, |t| t.max(last)));
        if let Some(latency) = block.latency_ms {
            for &l in latency {
                // `add` ignores what is not a finite non-negative number, NaN included.
                self.latency.add(l);
            }
        }
        let mut slot = std::mem::take(&mut self.plan);
        let plan = slot.get(profile);
        for (((stats, column), reference), index) in self
            .features
            .iter_mut()
            .zip(&block.features)
            .zip(&profile.features)
            .zip(&plan.features)
        {
            match (stats, column, reference) {
                (
                    FeatureStats::Numeric(s),
                    Column::Numeric(xs),
                    FeatureProfile::Numeric { stats: r, .. },
                ) => s.record_column(xs, r, index.as_ref()),
                (
                    FeatureStats::Categorical(s),
                    Column::Categorical { codes, dictionary },
                    FeatureProfile::Categorical { stats: r, .. },
                ) => s.record_codes(codes, dictionary, &r.frequencies),
                // `check` compared the kinds; as in `record`, a value of the wrong kind would
                // count as missing rather than be trusted.
                (FeatureStats::Numeric(s), _, _) => s.missing += n as u64,
                (FeatureStats::Categorical(s), _, _) => s.missing += n as u64,
            }
        }
        if let (Some(moments), Some(model)) =
            (self.reconstruction.as_mut(), &profile.reconstruction)
        {
            // Each category encoded once per batch; then per row the encoded values in feature
            // order, through the same projection `record` uses.
            let d = model.encodings.len();
            let tables: Vec<(Vec<f64>, f64)> = (0..d)
                .map(|j| {
                    let missing = model.encode_category(j, None);
                    match block.features.get(j) {
                        Some(Column::Categorical { dictionary, .. }) => (
                            dictionary
                                .iter()
                                .map(|c| model.encode_category(j, Some(c)))
                                .collect(),
                            missing,
                        ),
                        _ => (Vec::new(), missing),
                    }
                })
                .collect();
            let made;
            let projection = match &plan.reconstruction {
                Some(p) => p,
                None => {
                    made = model.projection();
                    &made
                }
            };
            if model.batches(projection) {
                // Standardised and centred a column at a time (each category once per batch),
                // column-major, a few hundred rows at a time; then the rows' errors side by side.
                let centred_tables: Vec<(Vec<f64>, f64)> = tables
                    .iter()
                    .enumerate()
                    .map(|(j, (table, missing))| {
                        (
                            table.iter().map(|&x| model.centred(j, x)).collect(),
                            model.centred(j, *missing),
                        )
                    })
                    .collect();
                // Tiles of CENTRED_TILE rows, each feature's values of the tile together.
                const T: usize = CENTRED_TILE;
                let mut c = vec![0.0f64; CENTRED_ROWS * d];
                let mut errors = [0.0f64; CENTRED_ROWS];
                for from in (0..n).step_by(CENTRED_ROWS) {
                    let to = (from + CENTRED_ROWS).min(n);
                    for (j, (table, missing)) in centred_tables.iter().enumerate() {
                        let cells = tiles_of(&mut c, d, j);
                        match (block.features.get(j), &model.encodings[j]) {
                            (Some(Column::Numeric(xs)), Encoding::Numeric { impute }) => {
                                let imputed = model.centred(j, *impute);
                                for (cells, xs) in cells.zip(xs[from..to].chunks(T)) {
                                    for (cell, &v) in cells.iter_mut().zip(xs) {
                                        *cell = if v.is_finite() {
                                            model.centred(j, v)
                                        } else {
                                            imputed
                                        };
                                    }
                                }
                            }
                            (Some(Column::Numeric(xs)), _) => {
                                for (cells, xs) in cells.zip(xs[from..to].chunks(T)) {
                                    for (cell, &v) in cells.iter_mut().zip(xs) {
                                        let x = model.encode_number(j, (!v.is_nan()).then_some(v));
                                        *cell = model.centred(j, x);
                                    }
                                }
                            }
                            (Some(Column::Categorical { codes, .. }), _) => {
                                for (cells, codes) in cells.zip(codes[from..to].chunks(T)) {
                                    for (cell, &code) in cells.iter_mut().zip(codes) {
                                        *cell =
                                            table.get(code as usize).copied().unwrap_or(*missing);
                                    }
                                }
                            }
                            (None, _) => cells.for_each(|cells| cells.fill(*missing)),
                        }
                    }
                    let errors = &mut errors[..to - from];
                    model.errors_of_centred(projection, &c, errors);
                    errors.iter().for_each(|&e| moments.record(e));
                }
            } else {
                // Encoded a column at a time into rows of `d` values, a few hundred rows at a
                // time; then each row's error.
                const ROWS: usize = 256;
                if d == 0 {
                    // A model of no feature (only a hand-made profile has one): `record`'s
                    // error of an empty row, per row.
                    (0..n).for_each(|_| moments.record(model.error_of_encoded(projection, &[])));
                }
                let mut x = vec![0.0f64; ROWS * d];
                for from in (0..n).step_by(ROWS).filter(|_| d > 0) {
                    let to = (from + ROWS).min(n);
                    let rows = &mut x[..(to - from) * d];
                    for (j, (table, missing)) in tables.iter().enumerate() {
                        let cells = rows.iter_mut().skip(j).step_by(d.max(1));
                        match (block.features.get(j), &model.encodings[j]) {
                            (Some(Column::Numeric(xs)), Encoding::Numeric { impute }) => {
                                for (cell, &v) in cells.zip(&xs[from..to]) {
                                    *cell = if v.is_finite() { v } else { *impute };
                                }
                            }
                            (Some(Column::Numeric(xs)), _) => {
                                for (cell, &v) in cells.zip(&xs[from..to]) {
                                    *cell = model.encode_number(j, (!v.is_nan()).then_some(v));
                                }
                            }
                            (Some(Column::Categorical { codes, .. }), _) => {
                                for (cell, &c) in cells.zip(&codes[from..to]) {
                                    *cell = table.get(c as usize).copied().unwrap_or(*missing);
                                }
                            }
                            (None, _) => cells.for_each(|cell| *cell = *missing),
                        }
                    }
                    for row in rows.chunks_exact(d.max(1)) {
                        moments.record(model.error_of_encoded(projection, row));
                    }
                }
            }
        }
        let positive = schema.positive_index().map(|p| p as u32);
        if !self.record_class_outcomes(schema, profile, positive, block) {
            for i in 0..n {
                let prediction = block.prediction_at(i);
                let groups = block.groups_at(i, schema);
                self.record_outcome(
                    profile,
                    positive,
                    plan.prediction.as_ref(),
                    &prediction,
                    groups,
                );
                if let Some(label) = block.label_at(i) {
                    self.record_label_of(schema, positive, &prediction, groups, label);
                    if let (Some(scores), Target::Class(truth), Prediction::Class { .. }) =
                        (block.class_scores_at(i, schema), label, prediction)
                    {
                        self.record_class_scores(scores, truth);
                    }
                }
            }
        }
        self.plan = slot;
        Ok(())
    }
}

/// States of a classification row for [`WindowSummary::record_class_outcomes`], at most this
/// many: `(k + 1)²` for `k` classes (a class or failed, times a true class or no label).
const MAX_OUTCOME_STATES: usize = 1024;

impl WindowSummary {
    /// What [`record_outcome`](Self::record_outcome), [`record_label_of`](Self::record_label_of)
    /// and [`record_class_scores`](Self::record_class_scores) add for each row of a
    /// classification batch, a column at a time: each row gets a state (its class or failed,
    /// times its true class or none), the counts (classes, failures, labels, the confusion
    /// matrix, every group's and intersection cell's counts) are added from the numbers of
    /// rows per state, and only what depends on each row's score (the score bins, and the
    /// float sums: CBPE, log loss, Brier, the per-class probabilities) takes a pass over the
    /// rows, in row order, as row by row.
    ///
    /// Returns `false`, having recorded nothing, where it does not apply (a regression batch,
    /// more classes than [`MAX_OUTCOME_STATES`] allows, a class or a true class out of the
    /// schema's range, which validation never lets through): the caller then records row by
    /// row.
    fn record_class_outcomes(
        &mut self,
        schema: &ModelSchema,
        profile: &ReferenceProfile,
        positive: Option<u32>,
        block: &Columns<'_>,
    ) -> bool {
        let PredictionColumn::Class { classes, scores } = block.prediction else {
            return false;
        };
        let k = schema.classes.len();
        let (slots, n) = (k + 1, block.rows);
        let states = slots * slots;
        if k == 0 || states > MAX_OUTCOME_STATES {
            return false;
        }
        // Per row: `class * slots + truth`, with `k` for a failed prediction and for no label
        // (a label counts only beside a class, as in `record_label_of`).
        let mut state: Vec<u16> = Vec::with_capacity(n);
        for (i, &c) in classes.iter().enumerate() {
            let class = match c {
                FAILED_CLASS => k,
                c if (c as usize) < k => c as usize,
                _ => return false,
            };
            let truth = match block.labels.and_then(|l| l[i]) {
                Some(Target::Class(t)) if class < k => {
                    if (t as usize) < k {
                        t as usize
                    } else {
                        return false;
                    }
                }
                _ => k,
            };
            state.push((class * slots + truth) as u16);
        }
        let decode = |st: usize| (st / slots, st % slots);
        let mut per_state = vec![0u64; states];
        for &st in &state {
            per_state[usize::from(st)] += 1;
        }
        for (st, &m) in per_state.iter().enumerate().filter(|(_, &m)| m > 0) {
            let (class, truth) = decode(st);
            if class == k {
                self.failed += m;
                continue;
            }
            self.prediction.class_counts[class] += m;
            if truth < k {
                self.labelled += m;
                if let Some(cell) = self.performance.confusion.get_mut(truth * k + class) {
                    *cell += m;
                }
            }
        }
        // Per group list, the rows per (cell, state), then added into the cells' counts.
        let add = |cells: &mut [GroupStats], counts: &[u64]| {
            for (gs, counts) in cells.iter_mut().zip(counts.chunks_exact(states)) {
                for (st, &m) in counts.iter().enumerate().filter(|(_, &m)| m > 0) {
                    let (class, truth) = decode(st);
                    let class = (class < k).then_some(class as u32);
                    gs.add_predictions(m, class, positive);
                    if let (Some(class), true) = (class, truth < k) {
                        gs.add_class_labels(
                            m,
                            Some(truth as u32) == positive,
                            Some(class) == positive,
                        );
                    }
                }
            }
        };
        let attributes = schema.attributes.len();
        let mut counts = Vec::new();
        for x in &mut self.intersections {
            counts.clear();
            counts.resize(x.cells.len() * states, 0u64);
            for (i, &st) in state.iter().enumerate() {
                let groups = &block.groups[i * attributes..(i + 1) * attributes];
                if let Some(cell) = super::cell_index(&x.attributes, &self.groups, groups) {
                    if let Some(c) = counts.get_mut(cell * states + usize::from(st)) {
                        *c += 1;
                    }
                }
            }
            add(&mut x.cells, &counts);
        }
        for (a, cells) in self.groups.iter_mut().enumerate().take(attributes) {
            counts.clear();
            counts.resize(cells.len() * states, 0u64);
            let column = block.groups.iter().skip(a).step_by(attributes);
            for (&g, &st) in column.zip(&state) {
                if let Some(c) = counts.get_mut(usize::from(g) * states + usize::from(st)) {
                    *c += 1;
                }
            }
            add(cells, &counts);
        }
        // The float sums, row by row in row order.
        if let Some(scores) = scores {
            let cbpe = match (self.cbpe.as_mut(), &profile.cbpe) {
                (Some(sums), Some(c)) => Some((sums, &c.map)),
                _ => None,
            };
            let (score_bins, performance) =
                (&mut self.prediction.score_bins, &mut self.performance);
            let mut cbpe = cbpe;
            for (i, (&st, &s)) in state.iter().zip(scores).enumerate() {
                let (class, truth) = decode(usize::from(st));
                if class == k || s.is_nan() {
                    continue;
                }
                score_bins[score_bin(s)] += 1;
                if let Some((sums, map)) = cbpe.as_mut() {
                    let groups = &block.groups[i * attributes..(i + 1) * attributes];
                    sums.record_in_groups(map, s, Some(class as u32) == positive, groups);
                }
                if truth < k {
                    performance.record_scored_label(s, Some(truth as u32) == positive);
                }
            }
        }
        if block.class_scores.is_some() {
            for (i, &st) in state.iter().enumerate() {
                let (class, truth) = decode(usize::from(st));
                if class < k && truth < k {
                    if let Some(scores) = block.class_scores_at(i, schema) {
                        self.record_class_scores(scores, truth as u32);
                    }
                }
            }
        }
        true
    }
}
