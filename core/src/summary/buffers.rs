//! [`ColumnBuffers`]: owned column buffers filled event by event, for callers that hold
//! [`Event`]s and want [`WindowSummary::record_columns`](super::WindowSummary::record_columns)
//! (tests, benches, embedded users batching their own events). Callers that already hold
//! columns (Arrow arrays) fill a [`Columns`] directly instead.

use std::collections::HashMap;

use super::columns::{Column, Columns, PredictionColumn, FAILED_CLASS, MISSING_CODE};
use crate::event::{Event, FeatureValue, Prediction, Target};
use crate::few::{self, FEW};
use crate::schema::{FeatureKind, ModelSchema, Task};

/// Column buffers for events of one schema; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct ColumnBuffers {
    kinds: Vec<FeatureKind>,
    attributes: usize,
    classes: usize,
    multiclass: bool,
    /// Per feature, its slot in `numeric` or in `codes`.
    slots: Vec<usize>,
    numeric: Vec<Vec<f64>>,
    codes: Vec<Vec<u32>>,
    dictionaries: Vec<Vec<String>>,
    lookup: Vec<HashMap<String, u32>>,
    ts: Vec<i64>,
    groups: Vec<u16>,
    prediction: PredictionBuffers,
    labels: Vec<Option<Target>>,
    latency: Vec<f64>,
    class_scores: Vec<f64>,
}

impl ColumnBuffers {
    /// Empty buffers for events of `schema`.
    pub fn new(schema: &ModelSchema) -> Self {
        let kinds: Vec<FeatureKind> = schema.features.iter().map(|f| f.kind).collect();
        let (mut n, mut c) = (0, 0);
        let slots = kinds
            .iter()
            .map(|k| {
                let slot = if *k == FeatureKind::Numeric {
                    &mut n
                } else {
                    &mut c
                };
                *slot += 1;
                *slot - 1
            })
            .collect();
        Self {
            attributes: schema.attributes.len(),
            classes: schema.classes.len(),
            prediction: PredictionBuffers::new(schema.task),
            multiclass: schema.task == Task::Multiclass,
            slots,
            numeric: vec![Vec::new(); n],
            codes: vec![Vec::new(); c],
            dictionaries: vec![Vec::new(); c],
            lookup: vec![HashMap::new(); c],
            kinds,
            ..Self::default()
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Forgets every row (and the dictionaries), keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.numeric.iter_mut().for_each(Vec::clear);
        self.codes.iter_mut().for_each(Vec::clear);
        self.dictionaries.iter_mut().for_each(Vec::clear);
        self.lookup.iter_mut().for_each(HashMap::clear);
        for v in [&mut self.latency, &mut self.class_scores] {
            v.clear();
        }
        self.ts.clear();
        self.groups.clear();
        self.prediction.clear();
        self.labels.clear();
    }

    /// Adds a validated event (and its prediction's per-class probabilities) as the next row.
    /// A value of the wrong kind counts as missing, as [`record`](super::WindowSummary::record)
    /// counts it.
    pub fn push(&mut self, event: &Event, class_scores: Option<&[f64]>) {
        for (j, kind) in self.kinds.iter().enumerate() {
            let slot = self.slots[j];
            match (kind, event.features.get(j)) {
                (FeatureKind::Numeric, Some(FeatureValue::Numeric(x))) => {
                    self.numeric[slot].push(*x)
                }
                (FeatureKind::Numeric, _) => self.numeric[slot].push(f64::NAN),
                (FeatureKind::Categorical, Some(FeatureValue::Categorical(c))) => {
                    let code = code_of(&mut self.dictionaries[slot], &mut self.lookup[slot], c);
                    self.codes[slot].push(code);
                }
                (FeatureKind::Categorical, _) => self.codes[slot].push(MISSING_CODE),
            }
        }
        self.push_rest(event, class_scores);
    }

    /// Cell-level filling, for readers that hold a row as cells (the agent's CSV reader) and
    /// need no [`Event`] for its features: feature `j`'s value of the row being filled, a
    /// validated number. The row is complete once every feature has its value (through
    /// [`push_numeric`](Self::push_numeric), [`push_category`](Self::push_category) or
    /// [`push_missing`](Self::push_missing), in any order) and [`push_rest`](Self::push_rest)
    /// has been called; [`push`](Self::push) is those calls for an event. A value of the wrong kind for the
    /// feature counts as missing, as in [`push`](Self::push).
    #[inline]
    pub fn push_numeric(&mut self, j: usize, x: f64) {
        let slot = self.slots[j];
        match self.kinds[j] {
            FeatureKind::Numeric => self.numeric[slot].push(x),
            FeatureKind::Categorical => self.codes[slot].push(MISSING_CODE),
        }
    }

    /// Feature `j`'s category in the row being filled, looked up (or added) in the batch's
    /// dictionary by `&str`; see [`push_numeric`](Self::push_numeric).
    #[inline]
    pub fn push_category(&mut self, j: usize, c: &str) {
        let slot = self.slots[j];
        match self.kinds[j] {
            FeatureKind::Categorical => {
                let code = code_of(&mut self.dictionaries[slot], &mut self.lookup[slot], c);
                self.codes[slot].push(code);
            }
            FeatureKind::Numeric => self.numeric[slot].push(f64::NAN),
        }
    }

    /// Feature `j` missing in the row being filled; see [`push_numeric`](Self::push_numeric).
    #[inline]
    pub fn push_missing(&mut self, j: usize) {
        let slot = self.slots[j];
        match self.kinds[j] {
            FeatureKind::Numeric => self.numeric[slot].push(f64::NAN),
            FeatureKind::Categorical => self.codes[slot].push(MISSING_CODE),
        }
    }

    /// Everything of `event` but its features (time, groups, prediction, label, latency, the
    /// per-class probabilities) as the rest of the row being filled; `event.features` is not
    /// read. See [`push_numeric`](Self::push_numeric).
    pub fn push_rest(&mut self, event: &Event, class_scores: Option<&[f64]>) {
        self.ts.push(event.ts_ms);
        let groups = event
            .groups
            .iter()
            .copied()
            .chain(std::iter::repeat(u16::MAX));
        self.groups.extend(groups.take(self.attributes));
        self.prediction.push(event.prediction);
        self.labels.push(event.label);
        self.latency.push(event.latency_ms.unwrap_or(f64::NAN));
        if self.multiclass {
            match class_scores.filter(|s| s.len() == self.classes) {
                Some(s) => self.class_scores.extend_from_slice(s),
                None => self
                    .class_scores
                    .extend(std::iter::repeat_n(f64::NAN, self.classes)),
            }
        }
    }

    /// The dictionaries' entries as `&str`, for [`columns`](Self::columns).
    pub fn dictionaries(&self) -> Vec<Vec<&str>> {
        self.dictionaries
            .iter()
            .map(|d| d.iter().map(String::as_str).collect())
            .collect()
    }

    /// The rows held, as a batch; `dictionaries` from [`dictionaries`](Self::dictionaries).
    pub fn columns<'a>(&'a self, dictionaries: &'a [Vec<&'a str>]) -> Columns<'a> {
        Columns {
            rows: self.len(),
            ts_ms: &self.ts,
            features: self
                .kinds
                .iter()
                .zip(&self.slots)
                .map(|(kind, &slot)| match kind {
                    FeatureKind::Numeric => Column::Numeric(&self.numeric[slot]),
                    FeatureKind::Categorical => Column::Categorical {
                        codes: &self.codes[slot],
                        dictionary: dictionaries.get(slot).map_or(&[], Vec::as_slice),
                    },
                })
                .collect(),
            groups: &self.groups,
            prediction: self.prediction.column(),
            labels: Some(&self.labels),
            latency_ms: Some(&self.latency),
            class_scores: self.multiclass.then_some(self.class_scores.as_slice()),
        }
    }
}

/// The code of category `c` in `dictionary`, added at its end when new; `lookup` indexes the
/// dictionary once it holds more than [`FEW`] entries (up to then it is searched in place).
#[inline]
fn code_of(dictionary: &mut Vec<String>, lookup: &mut HashMap<String, u32>, c: &str) -> u32 {
    if dictionary.len() <= FEW {
        if let Some(k) = few::position(dictionary, c) {
            return k;
        }
    } else if let Some(&k) = lookup.get(c) {
        return k;
    }
    let code = dictionary.len() as u32;
    dictionary.push(c.to_owned());
    if dictionary.len() == FEW + 1 {
        // From now on hashed: index every entry so far.
        for (k, e) in dictionary.iter().enumerate() {
            lookup.insert(e.clone(), k as u32);
        }
    } else if dictionary.len() > FEW + 1 {
        lookup.insert(c.to_owned(), code);
    }
    code
}

/// The prediction columns of a batch filled row by row: how a [`Prediction`] becomes a row of
/// a [`PredictionColumn`] (a failed one: [`FAILED_CLASS`] and a `NaN` score, or a `NaN` value;
/// a missing score: `NaN`). Shared by [`ColumnBuffers`] and the callers that fill the other
/// columns their own way (the Python binding's record-batch blocks, tests).
#[derive(Debug, Clone, Default)]
pub struct PredictionBuffers {
    regression: bool,
    /// Per row, the predicted class (classification).
    pub classes: Vec<u32>,
    /// Per row, the positive-class score (classification).
    pub scores: Vec<f64>,
    /// Per row, the output (regression).
    pub values: Vec<f64>,
}

impl PredictionBuffers {
    /// Empty buffers for a model of `task`.
    pub fn new(task: Task) -> Self {
        Self {
            regression: task == Task::Regression,
            ..Self::default()
        }
    }

    /// Forgets every row and takes a model of `task`, keeping the buffers' capacity.
    pub fn reset(&mut self, task: Task) {
        self.regression = task == Task::Regression;
        self.clear();
    }

    /// Forgets every row, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.classes.clear();
        self.scores.clear();
        self.values.clear();
    }

    /// Adds `prediction` as the next row.
    pub fn push(&mut self, prediction: Prediction) {
        match (prediction, self.regression) {
            (Prediction::Value(v), true) => self.values.push(v),
            (_, true) => self.values.push(f64::NAN),
            (Prediction::Class { class, score }, false) => {
                self.classes.push(class);
                self.scores.push(score.unwrap_or(f64::NAN));
            }
            (_, false) => {
                self.classes.push(FAILED_CLASS);
                self.scores.push(f64::NAN);
            }
        }
    }

    /// The rows held, as the batch's prediction column.
    pub fn column(&self) -> PredictionColumn<'_> {
        if self.regression {
            PredictionColumn::Value(&self.values)
        } else {
            PredictionColumn::Class {
                classes: &self.classes,
                scores: Some(&self.scores),
            }
        }
    }
}
