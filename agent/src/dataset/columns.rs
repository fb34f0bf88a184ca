//! A block of validated events held column by column, for
//! [`WindowSummary::record_columns`](aims_core::summary::WindowSummary::record_columns).
//!
//! Why: the current dataset of `assess` is folded a block of [`BLOCK_ROWS`](super::BLOCK_ROWS)
//! rows at a time into a fresh summary. Recording the block's rows column by column gives the
//! same summary, to the bit, as recording them one by one, at a fraction of the cost: a
//! numeric feature's sums stay in registers for the whole column, and each category is looked
//! up in the summary's maps once per block instead of once per row. The rows are still read
//! and validated one at a time, into an [`Event`], exactly as before (the same checks, the
//! same errors naming line and field); [`EventColumns::push`] then copies the event into the
//! block's columns.

use aims_core::event::Target;
use aims_core::schema::{FeatureKind, ModelSchema};
use aims_core::summary::{
    Column, Columns, ColumnsError, PredictionColumn, WindowSummary, FAILED_CLASS, MISSING_CODE,
};
use aims_core::{Event, FeatureValue, Prediction, ReferenceProfile};

/// Categories of one categorical feature, coded in the order first seen by this buffer. The
/// dictionary outlives blocks (an entry no row of a block uses is allowed), so a worker learns
/// a dataset's few categories once.
#[derive(Debug, Default)]
struct Dictionary {
    names: Vec<String>,
    /// For many categories: name to code (the linear scan is for the common few).
    index: std::collections::HashMap<String, u32>,
}

/// Categories looked up by a scan of the names before an index is kept.
const FEW: usize = 16;

impl Dictionary {
    #[inline]
    fn code(&mut self, category: &str) -> u32 {
        if self.names.len() <= FEW {
            if let Some(k) = self.names.iter().position(|n| same_text(n, category)) {
                return k as u32;
            }
        } else if let Some(&k) = self.index.get(category) {
            return k;
        }
        let code = self.names.len() as u32;
        self.names.push(category.to_owned());
        if self.names.len() > FEW {
            if self.index.is_empty() {
                for (k, n) in self.names.iter().enumerate() {
                    self.index.insert(n.clone(), k as u32);
                }
            } else {
                self.index.insert(category.to_owned(), code);
            }
        }
        code
    }
}

/// Whether two short strings are equal, compared in place (a `memcmp` call per candidate
/// costs more than the comparison).
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// One feature's buffer.
#[derive(Debug)]
enum FeatureBuffer {
    Numeric(Vec<f64>),
    Categorical {
        codes: Vec<u32>,
        dictionary: Dictionary,
    },
}

/// A block of events, column by column, reused from block to block.
#[derive(Debug)]
pub struct EventColumns {
    rows: usize,
    classes: usize,
    ts_ms: Vec<i64>,
    features: Vec<FeatureBuffer>,
    groups: Vec<u16>,
    predicted: Vec<u32>,
    scores: Vec<f64>,
    /// Whether some row of the block had a positive-class score.
    any_score: bool,
    values: Vec<f64>,
    labels: Vec<Option<Target>>,
    latency_ms: Vec<f64>,
    class_scores: Vec<f64>,
    /// Whether some row of the block had per-class probabilities.
    any_class_scores: bool,
}

impl EventColumns {
    /// Empty columns for events of `schema`.
    pub fn new(schema: &ModelSchema) -> Self {
        Self {
            rows: 0,
            classes: schema.classes.len(),
            ts_ms: Vec::new(),
            features: schema
                .features
                .iter()
                .map(|f| match f.kind {
                    FeatureKind::Numeric => FeatureBuffer::Numeric(Vec::new()),
                    FeatureKind::Categorical => FeatureBuffer::Categorical {
                        codes: Vec::new(),
                        dictionary: Dictionary::default(),
                    },
                })
                .collect(),
            groups: Vec::new(),
            predicted: Vec::new(),
            scores: Vec::new(),
            any_score: false,
            values: Vec::new(),
            labels: Vec::new(),
            latency_ms: Vec::new(),
            class_scores: Vec::new(),
            any_class_scores: false,
        }
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends a validated event of the schema, with its per-class probabilities when it has
    /// them. A value of the wrong kind for its feature counts as missing, as
    /// [`WindowSummary::record`] counts it.
    pub fn push(&mut self, event: &Event, class_scores: Option<&[f64]>) {
        self.rows += 1;
        self.ts_ms.push(event.ts_ms);
        for (k, buffer) in self.features.iter_mut().enumerate() {
            let value = event.features.get(k);
            match buffer {
                FeatureBuffer::Numeric(xs) => xs.push(match value {
                    Some(FeatureValue::Numeric(x)) => *x,
                    _ => f64::NAN,
                }),
                FeatureBuffer::Categorical { codes, dictionary } => codes.push(match value {
                    Some(FeatureValue::Categorical(c)) => dictionary.code(c),
                    _ => MISSING_CODE,
                }),
            }
        }
        self.groups.extend_from_slice(&event.groups);
        match event.prediction {
            Prediction::Class { class, score } => {
                self.predicted.push(class);
                self.scores.push(score.unwrap_or(f64::NAN));
                self.any_score |= score.is_some();
                self.values.push(f64::NAN);
            }
            Prediction::Value(v) => {
                self.predicted.push(FAILED_CLASS);
                self.scores.push(f64::NAN);
                self.values.push(v);
            }
            Prediction::Failed => {
                self.predicted.push(FAILED_CLASS);
                self.scores.push(f64::NAN);
                self.values.push(f64::NAN);
            }
        }
        self.labels.push(event.label);
        self.latency_ms.push(event.latency_ms.unwrap_or(f64::NAN));
        match class_scores {
            Some(s) if s.len() == self.classes => {
                self.class_scores.extend_from_slice(s);
                self.any_class_scores = true;
            }
            _ => self
                .class_scores
                .extend(std::iter::repeat_n(f64::NAN, self.classes)),
        }
    }

    /// Records the rows held into `summary` (binned on `profile`, for `schema`) and empties
    /// the buffer, keeping its dictionaries.
    pub fn record_into(
        &mut self,
        summary: &mut WindowSummary,
        schema: &ModelSchema,
        profile: &ReferenceProfile,
    ) -> Result<(), ColumnsError> {
        let dictionaries: Vec<Vec<&str>> = self
            .features
            .iter()
            .map(|b| match b {
                FeatureBuffer::Categorical { dictionary, .. } => {
                    dictionary.names.iter().map(String::as_str).collect()
                }
                FeatureBuffer::Numeric(_) => Vec::new(),
            })
            .collect();
        let features = self
            .features
            .iter()
            .zip(&dictionaries)
            .map(|(b, names)| match b {
                FeatureBuffer::Numeric(xs) => Column::Numeric(xs),
                FeatureBuffer::Categorical { codes, .. } => Column::Categorical {
                    codes,
                    dictionary: names,
                },
            })
            .collect();
        let prediction = if schema.is_classification() {
            PredictionColumn::Class {
                classes: &self.predicted,
                scores: self.any_score.then_some(self.scores.as_slice()),
            }
        } else {
            PredictionColumn::Value(&self.values)
        };
        let block = Columns {
            rows: self.rows,
            ts_ms: &self.ts_ms,
            features,
            groups: &self.groups,
            prediction,
            labels: Some(&self.labels),
            latency_ms: Some(&self.latency_ms),
            class_scores: self
                .any_class_scores
                .then_some(self.class_scores.as_slice()),
        };
        let result = summary.record_columns(schema, profile, &block);
        drop(block);
        drop(dictionaries);
        self.clear();
        result
    }

    fn clear(&mut self) {
        self.rows = 0;
        self.ts_ms.clear();
        for b in &mut self.features {
            match b {
                FeatureBuffer::Numeric(xs) => xs.clear(),
                FeatureBuffer::Categorical { codes, .. } => codes.clear(),
            }
        }
        self.groups.clear();
        self.predicted.clear();
        self.scores.clear();
        self.any_score = false;
        self.values.clear();
        self.labels.clear();
        self.latency_ms.clear();
        self.class_scores.clear();
        self.any_class_scores = false;
    }
}
