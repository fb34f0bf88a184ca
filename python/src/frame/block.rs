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
use aims_core::summary::{Column, Columns, PredictionBuffers, FAILED_CLASS, MISSING_CODE};
use aims_core::{Event, FeatureValue, Target};
use arrow_array::Array;

use super::{Col, FrameError, Num, Plan, StrCol};

/// Distinct strings up to which a plain string column is searched in a list (compared by
/// length first), not hashed.
const FEW: usize = 16;

/// The distinct categories of one column of one batch, and the code of each.
#[derive(Default)]
struct Interner<'p> {
    entries: Vec<Cow<'p, str>>,
    /// Per entry, its [`ShortKey`] (while the entries are searched in a list).
    keys: Vec<Option<ShortKey>>,
    index: HashMap<Cow<'p, str>, u32>,
}

/// A string of up to 16 bytes as its length and its first and last eight bytes (zero-padded):
/// two such keys are equal exactly when the strings are, so the short list is searched by
/// comparing integers, with no call to `memcmp`.
type ShortKey = (u64, u64, usize);

#[inline]
fn short_key(b: &[u8]) -> Option<ShortKey> {
    let n = b.len();
    // The bytes as a zero-padded little-endian word, from at most two overlapping loads (a
    // copy into a padded array of a length known only at run time was a call to `memcpy` per
    // value): the overlapping bytes are the same bytes, so or-ing them changes nothing.
    let word = |s: &[u8]| -> u64 {
        let n = s.len();
        if let Some(w) = s.first_chunk::<8>() {
            u64::from_le_bytes(*w)
        } else if let (Some(lo), Some(hi)) = (s.first_chunk::<4>(), s.last_chunk::<4>()) {
            u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << (8 * (n - 4))
        } else if n > 0 {
            u64::from(s[0])
                | u64::from(s[n / 2]) << (8 * (n / 2))
                | u64::from(s[n - 1]) << (8 * (n - 1))
        } else {
            0
        }
    };
    match n {
        0..=8 => Some((word(b), 0, n)),
        9..=16 => Some((word(&b[..8]), word(&b[n - 8..]), n)),
        _ => None,
    }
}

impl<'p> Interner<'p> {
    #[inline]
    fn code(&mut self, text: Cow<'p, str>) -> u32 {
        let key = short_key(text.as_bytes());
        if self.entries.len() <= FEW {
            let found = match key {
                Some(k) => self.keys.iter().position(|e| *e == Some(k)),
                None => self.entries.iter().position(|e| same_text(e, &text)),
            };
            if let Some(c) = found {
                return c as u32;
            }
        } else if let Some(&c) = self.index.get(&text) {
            return c;
        }
        let c = self.entries.len() as u32;
        self.entries.push(text.clone());
        self.keys.push(key);
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
    /// Per numeric feature, its values borrowed from the Arrow buffer when it is a float64
    /// column without nulls (and the run refuses no row): then `numeric`'s entry is left
    /// empty, and the fold reads the frame's own memory instead of a copy of it.
    borrowed: Vec<Option<&'p [f64]>>,
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
    scratch: Vec<f64>,
    /// A text column's codes and distinct values (groups, classes, labels), reused.
    text_codes: Vec<u32>,
    text_dictionary: Vec<Cow<'p, str>>,
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
                        self.borrowed.push(None);
                    }
                    let out = &mut self.numeric[nums];
                    self.borrowed[nums] = None;
                    nums += 1;
                    out.clear();
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
                            let values: &'p [f64] = &a.values()[from..to];
                            match a.nulls() {
                                None => {
                                    // No null, so no NaN to write in: the fold reads the
                                    // frame's buffer itself. A NaN or infinity in it is
                                    // refused, as below (one vectorised pass finds none).
                                    let finite =
                                        values.iter().fold(true, |ok, x| ok & x.is_finite());
                                    if !finite {
                                        for (r, x) in values.iter().enumerate() {
                                            if !x.is_finite() {
                                                refuse(&mut self.bad, r, not_finite());
                                            }
                                        }
                                    }
                                    self.borrowed[nums - 1] = Some(values);
                                    continue;
                                }
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
                            out.reserve(n);
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
        // The other fields a column at a time, each through the helper `fill` uses per row
        // (a text column's distinct values resolved once), in `fill`'s order: groups,
        // prediction, score, label, latency, time; then the length caps (the id, then each
        // category) and the per-class probabilities. A row keeps the first error it meets.
        let a = schema.attributes.len();
        self.groups.clear();
        self.groups.resize(n * a, 0);
        for attr in 0..a {
            let col = &plan.attributes[attr].col;
            if let Col::Str(_) = col {
                self.text_codes(col, (from, to));
                let map: Vec<u16> = self
                    .text_dictionary
                    .iter()
                    .map(|t| schema.group_of(attr, t))
                    .collect();
                let none = Plan::no_group(schema, attr);
                for (r, &c) in self.text_codes.iter().enumerate() {
                    self.groups[r * a + attr] = map.get(c as usize).copied().unwrap_or(none);
                }
            } else {
                for r in 0..n {
                    self.groups[r * a + attr] = plan.group_at(attr, schema, from + r);
                }
            }
        }
        self.prediction.reset(schema.task);
        let p = &plan.prediction;
        if schema.task == Task::Regression {
            let values = &mut self.prediction.values;
            values.reserve(n);
            for r in 0..n {
                values.push(match plan.value_at(from + r) {
                    Ok(x) => x,
                    Err(e) => {
                        refuse(&mut self.bad, r, e);
                        f64::NAN
                    }
                });
            }
        } else {
            let classes = &mut self.prediction.classes;
            classes.reserve(n);
            if let Col::Str(_) = &p.col {
                self.text_codes(&p.col, (from, to));
                let map: Vec<Result<u32, FrameError>> = self
                    .text_dictionary
                    .iter()
                    .map(|t| plan.class_of_text(t, schema))
                    .collect();
                let classes = &mut self.prediction.classes;
                for (r, &c) in self.text_codes.iter().enumerate() {
                    classes.push(match map.get(c as usize) {
                        Some(Ok(class)) => *class,
                        Some(Err(e)) => {
                            refuse(&mut self.bad, r, e.clone());
                            FAILED_CLASS
                        }
                        None => {
                            refuse(&mut self.bad, r, plan.empty_prediction());
                            FAILED_CLASS
                        }
                    });
                }
            } else {
                for r in 0..n {
                    classes.push(match plan.class_at(from + r, schema) {
                        Ok(c) => c,
                        Err(e) => {
                            refuse(&mut self.bad, r, e);
                            FAILED_CLASS
                        }
                    });
                }
            }
            let scores = &mut self.prediction.scores;
            scores.reserve(n);
            if plan.score.is_none() {
                scores.resize(n, f64::NAN);
            } else {
                for r in 0..n {
                    scores.push(match plan.score_at(from + r, schema) {
                        Ok(s) => s.unwrap_or(f64::NAN),
                        Err(e) => {
                            refuse(&mut self.bad, r, e);
                            f64::NAN
                        }
                    });
                }
            }
        }
        self.labels.clear();
        self.labels.reserve(n);
        match &plan.label {
            None => self.labels.resize(n, None),
            Some(s) if schema.task != Task::Regression && matches!(s.col, Col::Str(_)) => {
                // Text labels: no number to check, no integer class; each distinct text once.
                self.text_codes(&s.col, (from, to));
                let map: Vec<Result<Target, FrameError>> = self
                    .text_dictionary
                    .iter()
                    .map(|t| plan.label_of_text(s, t, schema))
                    .collect();
                for (r, &c) in self.text_codes.iter().enumerate() {
                    self.labels.push(match map.get(c as usize) {
                        None => None,
                        Some(Ok(t)) => Some(*t),
                        Some(Err(e)) => {
                            refuse(&mut self.bad, r, e.clone());
                            None
                        }
                    });
                }
            }
            Some(_) => {
                for r in 0..n {
                    self.labels.push(match plan.label_at(from + r, schema) {
                        Ok(t) => t,
                        Err(e) => {
                            refuse(&mut self.bad, r, e);
                            None
                        }
                    });
                }
            }
        }
        self.latency.clear();
        self.latency.reserve(n);
        if plan.latency.is_none() {
            self.latency.resize(n, f64::NAN);
        } else {
            for r in 0..n {
                self.latency.push(match plan.latency_at(from + r) {
                    Ok(x) => x.unwrap_or(f64::NAN),
                    Err(e) => {
                        refuse(&mut self.bad, r, e);
                        f64::NAN
                    }
                });
            }
        }
        self.ts.clear();
        self.ts.reserve(n);
        if plan.ts.is_none() {
            self.ts.resize(n, default_ts);
        } else {
            for r in 0..n {
                self.ts.push(match plan.ts_at(from + r, default_ts) {
                    Ok(t) => t,
                    Err(e) => {
                        refuse(&mut self.bad, r, e);
                        default_ts
                    }
                });
            }
        }
        // The length caps: the id (as `ingest::lengths_ok` checks it first), then each
        // category.
        if let Some(id) = &plan.id {
            for r in 0..n {
                if let Some(text) = id.col.text(from + r) {
                    if let Err(error) = aims_agent::ingest::check_label_id(&text, limits) {
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
                    }
                }
            }
        }
        if too_long.iter().any(|l| !l.is_empty()) {
            for r in 0..n {
                if self.bad[r] {
                    continue;
                }
                if let Some(e) = self.categorical_too_long(plan, schema, limits, &too_long, r) {
                    refuse(&mut self.bad, r, e);
                }
            }
        }
        self.class_scores.clear();
        let multiclass = plan.has_class_scores() && schema.task == Task::Multiclass;
        let k = schema.classes.len();
        if plan.has_class_scores() {
            for r in 0..n {
                let scored = if self.bad[r] {
                    false
                } else {
                    match plan.fill_scores(from + r, schema, &mut self.scratch) {
                        Ok(scored) => scored,
                        Err(e) => {
                            refuse(&mut self.bad, r, e);
                            false
                        }
                    }
                };
                if multiclass {
                    if scored {
                        self.class_scores.extend_from_slice(&self.scratch);
                    } else {
                        self.class_scores.extend(std::iter::repeat_n(f64::NAN, k));
                    }
                }
            }
        }
        refused.sort_by_key(|(r, _)| *r);
        self.kept.clear();
        if !refused.is_empty() {
            self.kept.extend((0..n).filter(|&r| !self.bad[r]));
            let bad = &self.bad;
            // A borrowed column loses its refused rows in a copy.
            for (v, b) in self.numeric.iter_mut().zip(&mut self.borrowed) {
                if let Some(values) = b.take() {
                    v.extend_from_slice(values);
                }
                keep(v, 1, bad);
            }
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
        self.borrowed.truncate(nums);
        self.codes.truncate(cats);
        self.dictionaries.truncate(cats);
        refused
    }

    /// Fills `text_codes` and `text_dictionary` with a text column's rows `from..to`.
    fn text_codes(&mut self, col: &'p Col, range: (usize, usize)) {
        self.text_codes.clear();
        self.text_codes.reserve(range.1 - range.0);
        self.text_dictionary.clear();
        fill_codes(col, range, &mut self.text_codes, &mut self.text_dictionary);
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
        let mut nums = self
            .numeric
            .iter()
            .zip(&self.borrowed)
            .map(|(v, b)| b.unwrap_or(v.as_slice()));
        let mut cats = self.codes.iter().zip(dictionaries);
        Columns {
            rows: self.rows,
            ts_ms: &self.ts,
            features: schema
                .features
                .iter()
                .map(|f| match f.kind {
                    FeatureKind::Numeric => Column::Numeric(nums.next().unwrap_or(&[])),
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
