//! Record-batch rows into aims-core column batches ([`Columns`]), for
//! `record_batch(fold_here=True)`: the features are read a column at a time straight from the
//! Arrow arrays (a categorical column as codes into a per-batch dictionary: a dictionary-encoded
//! column maps its dictionary once, a plain string column finds each row's string among the
//! batch's distinct ones without allocating), the other fields row by row through the same code
//! as [`Plan::fill`]. A row is refused with the error the per-row path gives it: the checks run
//! in the same order (features in schema order, then the other fields, then the length caps,
//! then the per-class probabilities), and a row keeps the first error it meets.

use std::borrow::Cow;
use std::collections::HashMap;

use aims_agent::config::LimitsConfig;
use aims_core::event::{EventError, RejectReason};
use aims_core::schema::{FeatureKind, ModelSchema, Task};
use aims_core::summary::{Column, Columns, PredictionBuffers, MISSING_CODE};
use aims_core::{Event, FeatureValue, Prediction, Target};
use arrow_array::Array;

use super::{Col, FrameError, Num, Plan, StrCol};

/// Distinct strings up to which a plain string column is searched in a list (compared by
/// length first), not hashed.
const FEW: usize = 16;

/// The distinct categories of one column of one batch, and the code of each.
#[derive(Default)]
struct Interner<'p> {
    entries: Vec<Cow<'p, str>>,
    index: HashMap<Cow<'p, str>, u32>,
}

impl<'p> Interner<'p> {
    #[inline]
    fn code(&mut self, text: Cow<'p, str>) -> u32 {
        if self.entries.len() <= FEW {
            if let Some(c) = self.entries.iter().position(|e| same_text(e, &text)) {
                return c as u32;
            }
        } else if let Some(&c) = self.index.get(&text) {
            return c;
        }
        let c = self.entries.len() as u32;
        self.entries.push(text.clone());
        if self.entries.len() == FEW + 1 {
            // From now on hashed: index every entry so far.
            for (k, e) in self.entries.iter().enumerate() {
                self.index.insert(e.clone(), k as u32);
            }
        } else if self.entries.len() > FEW + 1 {
            self.index.insert(text, c);
        }
        c
    }
}

#[inline]
fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes() == b.as_bytes()
}

/// The column buffers of a run of rows of one record batch, reused from run to run.
#[derive(Default)]
pub struct Block<'p> {
    /// Per numeric feature (schema order among the numeric ones), its values.
    numeric: Vec<Vec<f64>>,
    codes: Vec<Vec<u32>>,
    dictionaries: Vec<Vec<Cow<'p, str>>>,
    ts: Vec<i64>,
    groups: Vec<u16>,
    prediction: PredictionBuffers,
    labels: Vec<Option<Target>>,
    latency: Vec<f64>,
    class_scores: Vec<f64>,
    /// Per row of the run, whether it was refused.
    bad: Vec<bool>,
    /// The rows kept (indices into the run), when some were refused.
    kept: Vec<usize>,
    rows: usize,
    event: Option<Event>,
    scratch: Vec<f64>,
}

/// What [`Block::fill`] found: the refused rows (index into the run, error), in row order.
pub type Refused = Vec<(usize, FrameError)>;

impl<'p> Block<'p> {
    /// Fills the block with rows `from..to` of the batch `plan` was made for, and returns the
    /// refused rows (which the block then leaves out).
    pub fn fill(
        &mut self,
        plan: &'p Plan,
        schema: &ModelSchema,
        limits: &LimitsConfig,
        default_ts: i64,
        (from, to): (usize, usize),
    ) -> Refused {
        let n = to - from;
        self.rows = n;
        self.bad.clear();
        self.bad.resize(n, false);
        let mut refused: Refused = Vec::new();
        let mut refuse = |bad: &mut Vec<bool>, r: usize, e: FrameError| {
            if !bad[r] {
                bad[r] = true;
                refused.push((r, e));
            }
        };
        // Features, a column at a time, in schema order.
        let (mut nums, mut cats) = (0, 0);
        let mut too_long: Vec<Vec<bool>> = Vec::new();
        for (slot, kind) in &plan.features {
            match kind {
                FeatureKind::Numeric => {
                    if self.numeric.len() <= nums {
                        self.numeric.push(Vec::new());
                    }
                    let out = &mut self.numeric[nums];
                    nums += 1;
                    out.clear();
                    out.reserve(n);
                    let not_finite = || FrameError {
                        column: slot.column.clone(),
                        row: None,
                        error: EventError::new(
                            slot.field.clone(),
                            RejectReason::InvalidNumber,
                            "not a finite number",
                        ),
                    };
                    match &slot.col {
                        Col::Num(Num::F64(a)) => {
                            let values = &a.values()[from..to];
                            match a.nulls() {
                                None => out.extend_from_slice(values),
                                Some(nulls) => {
                                    out.extend(values.iter().enumerate().map(|(r, &x)| {
                                        if nulls.is_valid(from + r) {
                                            x
                                        } else {
                                            f64::NAN
                                        }
                                    }))
                                }
                            }
                            // NaN is the batch's missing mark: a NaN or infinite value in the
                            // array itself (not a null) is refused, as row by row.
                            for (r, x) in out.iter().enumerate() {
                                if !x.is_finite() && (x.is_infinite() || a.is_valid(from + r)) {
                                    refuse(&mut self.bad, r, not_finite());
                                }
                            }
                        }
                        col => {
                            for r in 0..n {
                                out.push(match col.number(from + r) {
                                    None => f64::NAN,
                                    Some(x) if x.is_finite() => x,
                                    Some(_) => {
                                        refuse(&mut self.bad, r, not_finite());
                                        f64::NAN
                                    }
                                });
                            }
                        }
                    }
                }
                FeatureKind::Categorical => {
                    if self.codes.len() <= cats {
                        self.codes.push(Vec::new());
                        self.dictionaries.push(Vec::new());
                    }
                    let (codes, dictionary) = (&mut self.codes[cats], &mut self.dictionaries[cats]);
                    cats += 1;
                    codes.clear();
                    codes.reserve(n);
                    dictionary.clear();
                    fill_codes(&slot.col, (from, to), codes, dictionary);
                    let long: Vec<bool> = dictionary
                        .iter()
                        .map(|c| c.len() > limits.max_category_bytes)
                        .collect();
                    too_long.push(if long.contains(&true) {
                        long
                    } else {
                        Vec::new()
                    });
                }
            }
        }
        // The other fields, row by row, as `fill` reads them.
        self.ts.clear();
        self.groups.clear();
        self.prediction.reset(schema.task);
        self.labels.clear();
        self.latency.clear();
        self.class_scores.clear();
        let multiclass = plan.has_class_scores() && schema.task == Task::Multiclass;
        let k = schema.classes.len();
        let a = schema.attributes.len();
        let mut event = self.event.take().unwrap_or_else(|| plan.blank());
        event.features.clear();
        for r in 0..n {
            let i = from + r;
            let ok = !self.bad[r]
                && match plan.fill_rest(i, schema, default_ts, &mut event) {
                    Ok(()) => true,
                    Err(e) => {
                        refuse(&mut self.bad, r, e);
                        false
                    }
                };
            // The length caps: the id (the event holds no feature), then each category.
            let ok = ok
                && match aims_agent::ingest::lengths_ok(&event, schema, limits) {
                    Ok(()) => true,
                    Err(error) => {
                        let column = plan.column_of(&error.field);
                        refuse(
                            &mut self.bad,
                            r,
                            FrameError {
                                column,
                                row: None,
                                error,
                            },
                        );
                        false
                    }
                };
            let ok = ok && {
                let long = self.categorical_too_long(plan, schema, limits, &too_long, r);
                match long {
                    None => true,
                    Some(e) => {
                        refuse(&mut self.bad, r, e);
                        false
                    }
                }
            };
            let ok = ok
                && match plan.fill_scores(i, schema, &mut self.scratch) {
                    Ok(scored) => {
                        if multiclass {
                            if scored {
                                self.class_scores.extend_from_slice(&self.scratch);
                            } else {
                                self.class_scores.extend(std::iter::repeat_n(f64::NAN, k));
                            }
                        }
                        true
                    }
                    Err(e) => {
                        refuse(&mut self.bad, r, e);
                        false
                    }
                };
            if !ok {
                // A placeholder, left out below.
                event.groups.clear();
                event.prediction = Prediction::Failed;
                event.label = None;
                event.latency_ms = None;
                if multiclass {
                    self.class_scores.extend(std::iter::repeat_n(f64::NAN, k));
                }
            }
            self.ts.push(event.ts_ms);
            let groups = event.groups.iter().copied().chain(std::iter::repeat(0));
            self.groups.extend(groups.take(a));
            self.prediction.push(event.prediction);
            self.labels.push(event.label);
            self.latency.push(event.latency_ms.unwrap_or(f64::NAN));
        }
        self.event = Some(event);
        refused.sort_by_key(|(r, _)| *r);
        self.kept.clear();
        if !refused.is_empty() {
            self.kept.extend((0..n).filter(|&r| !self.bad[r]));
            let bad = &self.bad;
            self.numeric.iter_mut().for_each(|v| keep(v, 1, bad));
            self.codes.iter_mut().for_each(|v| keep(v, 1, bad));
            keep(&mut self.ts, 1, bad);
            keep(&mut self.groups, a, bad);
            keep(&mut self.prediction.classes, 1, bad);
            keep(&mut self.prediction.scores, 1, bad);
            keep(&mut self.prediction.values, 1, bad);
            keep(&mut self.labels, 1, bad);
            keep(&mut self.latency, 1, bad);
            if multiclass {
                keep(&mut self.class_scores, k, bad);
            }
            self.rows = self.kept.len();
        }
        self.numeric.truncate(nums);
        self.codes.truncate(cats);
        self.dictionaries.truncate(cats);
        refused
    }

    /// Row `r`'s first categorical value over `limits.max_category_bytes`, as
    /// `ingest::lengths_ok` names it.
    fn categorical_too_long(
        &self,
        plan: &Plan,
        schema: &ModelSchema,
        limits: &LimitsConfig,
        too_long: &[Vec<bool>],
        r: usize,
    ) -> Option<FrameError> {
        if too_long.iter().all(Vec::is_empty) {
            return None;
        }
        let mut cat = 0;
        for (j, (_, kind)) in plan.features.iter().enumerate() {
            if *kind != FeatureKind::Categorical {
                continue;
            }
            let code = self.codes[cat][r] as usize;
            if too_long[cat].get(code).copied().unwrap_or(false) {
                // The same error `lengths_ok` gives for the event holding this value.
                let mut probe = Event::blank(0);
                probe.features = vec![FeatureValue::Missing; j];
                probe.features.push(FeatureValue::Categorical(
                    self.dictionaries[cat][code].to_string(),
                ));
                let error = aims_agent::ingest::lengths_ok(&probe, schema, limits).err()?;
                return Some(FrameError {
                    column: plan.column_of(&error.field),
                    row: None,
                    error,
                });
            }
            cat += 1;
        }
        None
    }

    /// The rows kept as a batch, with their dictionaries (from [`dictionaries`](Self::dictionaries)).
    pub fn columns<'b>(
        &'b self,
        schema: &ModelSchema,
        dictionaries: &'b [Vec<&'b str>],
    ) -> Columns<'b> {
        let (mut nums, mut cats) = (self.numeric.iter(), self.codes.iter().zip(dictionaries));
        Columns {
            rows: self.rows,
            ts_ms: &self.ts,
            features: schema
                .features
                .iter()
                .map(|f| match f.kind {
                    FeatureKind::Numeric => Column::Numeric(nums.next().map_or(&[], Vec::as_slice)),
                    FeatureKind::Categorical => match cats.next() {
                        Some((codes, dictionary)) => Column::Categorical { codes, dictionary },
                        None => Column::Categorical {
                            codes: &[],
                            dictionary: &[],
                        },
                    },
                })
                .collect(),
            groups: &self.groups,
            prediction: self.prediction.column(),
            labels: Some(&self.labels),
            latency_ms: Some(&self.latency),
            class_scores: (schema.task == Task::Multiclass && !self.class_scores.is_empty())
                .then_some(self.class_scores.as_slice()),
        }
    }

    /// The dictionaries as `&str`, for [`columns`](Self::columns).
    pub fn dictionaries(&self) -> Vec<Vec<&str>> {
        self.dictionaries
            .iter()
            .map(|d| d.iter().map(|c| c.as_ref()).collect())
            .collect()
    }

    /// The run's row (index into the rows given to `fill`) of kept row `k`.
    pub fn row_of(&self, k: usize) -> usize {
        if self.kept.is_empty() {
            k
        } else {
            self.kept[k]
        }
    }
}

/// Keeps the entries (`stride` per row) of the rows not marked bad.
fn keep<T: Copy>(v: &mut Vec<T>, stride: usize, bad: &[bool]) {
    if stride == 0 || v.len() != bad.len() * stride {
        return;
    }
    let mut at = 0;
    for (r, &b) in bad.iter().enumerate() {
        if !b {
            v.copy_within(r * stride..(r + 1) * stride, at);
            at += stride;
        }
    }
    v.truncate(at);
}

/// A categorical column's codes for rows `from..to`, and its dictionary.
fn fill_codes<'p>(
    col: &'p Col,
    (from, to): (usize, usize),
    codes: &mut Vec<u32>,
    dictionary: &mut Vec<Cow<'p, str>>,
) {
    match col {
        Col::Str(StrCol::Dict { keys, values }) => {
            // The dictionary's entries once (trimmed; an empty one is missing), then a code
            // per row.
            let mut interner = Interner::default();
            let len = dict_len(values);
            let remap: Vec<u32> = (0..len)
                .map(|k| {
                    values
                        .get(k)
                        .map_or(MISSING_CODE, |t| interner.code(Cow::Borrowed(t)))
                })
                .collect();
            codes.extend(keys[from..to].iter().map(|k| match k {
                Some(k) => remap.get(*k).copied().unwrap_or(MISSING_CODE),
                None => MISSING_CODE,
            }));
            *dictionary = interner.entries;
        }
        Col::Str(s) => {
            let mut interner = Interner::default();
            codes.extend((from..to).map(|i| match s.get(i) {
                Some(t) => interner.code(Cow::Borrowed(t)),
                None => MISSING_CODE,
            }));
            *dictionary = interner.entries;
        }
        col => {
            // Numbers, times or booleans as categories: their text, as row by row.
            let mut interner = Interner::default();
            codes.extend((from..to).map(|i| match col.text(i) {
                Some(t) => interner.code(t),
                None => MISSING_CODE,
            }));
            *dictionary = interner.entries;
        }
    }
}

fn dict_len(values: &StrCol) -> usize {
    match values {
        StrCol::Utf8(a) => a.len(),
        StrCol::Large(a) => a.len(),
        StrCol::View(a) => a.len(),
        StrCol::Dict { keys, .. } => keys.len(),
    }
}
