//! Arrow tables into validated events.
//!
//! Data frames arrive through the Arrow PyCapsule protocol (`__arrow_c_stream__`, implemented by
//! pandas 2.2+, pyarrow 14+ and polars 1.0+): the producer hands over a C stream of
//! record batches whose buffers are read in place, so no column is copied in Python. The column
//! plan is resolved once per batch schema, from the agent's `[columns]` mapping exactly as the
//! CSV reader does; a missing column or a column of the wrong type fails before any row is
//! read, naming the column. Per-row values go through aims-core's own parsers (class labels,
//! scores, timestamps), so a row is accepted or rejected with the same field and reason as over
//! HTTP.

use std::borrow::Cow;

use aims_agent::config::ColumnsConfig;
use aims_core::event::{parse_timestamp, EventError, RejectReason};
use aims_core::schema::{FeatureKind, ModelSchema, Task};
use aims_core::{Event, FeatureValue, Prediction};
use arrow_array::cast::AsArray;
use arrow_array::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

mod block;
pub use block::Block;

/// A bad table or row: the column at fault (as named in the frame), the event field it feeds,
/// the 0-based row when one row is at fault, and the countable reason.
#[derive(Debug, Clone)]
pub struct FrameError {
    /// Column name in the frame.
    pub column: String,
    /// 0-based row across the whole table, when a single row is at fault.
    pub row: Option<u64>,
    /// What aims-core says: the event field, the reason and the message.
    pub error: EventError,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.row {
            Some(row) => write!(f, "row {row}: column {:?}: {}", self.column, self.error),
            None => write!(f, "column {:?}: {}", self.column, self.error),
        }
    }
}

/// Reads every record batch of an object implementing `__arrow_c_stream__`. The batches share
/// the producer's buffers (reference counted through the C data interface).
pub fn read_batches(obj: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    let capsule = obj
        .call_method0("__arrow_c_stream__")?
        .downcast_into::<PyCapsule>()
        .map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err("__arrow_c_stream__ did not return a capsule")
        })?;
    let name = capsule.name()?;
    if name.map(|n| n.to_bytes()) != Some(b"arrow_array_stream".as_slice()) {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "__arrow_c_stream__ returned a capsule not named arrow_array_stream",
        ));
    }
    let ptr = capsule.pointer() as *mut FFI_ArrowArrayStream;
    // SAFETY: the capsule is named "arrow_array_stream", so by the Arrow PyCapsule protocol it
    // points to a valid FFI_ArrowArrayStream. `from_raw` moves the stream out and leaves a
    // released (empty) one behind, which the capsule's destructor then ignores, as the
    // protocol requires of a consumer.
    #[allow(unsafe_code)]
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(ptr) };
    let reader = ArrowArrayStreamReader::try_new(stream)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("arrow stream: {e}")))?;
    reader
        .map(|b| {
            b.map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("arrow stream: {e}")))
        })
        .collect()
}

/// A column read as numbers (any integer or float type).
type NumFn = Box<dyn Fn(usize) -> Option<f64> + Send + Sync>;

/// A column read as text (strings, dictionaries of strings), or as numbers or booleans whose
/// text form is a class or group label (`1` and `"1"` are the same, as over HTTP).
enum Col {
    Num(Num),
    Str(StrCol),
    Bool(arrow_array::BooleanArray),
    /// Milliseconds since the epoch.
    Time(NumFn),
}

enum StrCol {
    Utf8(arrow_array::StringArray),
    Large(arrow_array::LargeStringArray),
    View(arrow_array::StringViewArray),
    Dict {
        keys: Vec<Option<usize>>,
        values: Box<StrCol>,
    },
}

impl StrCol {
    fn new(a: &ArrayRef) -> Option<StrCol> {
        Some(match a.data_type() {
            DataType::Utf8 => StrCol::Utf8(a.as_string::<i32>().clone()),
            DataType::LargeUtf8 => StrCol::Large(a.as_string::<i64>().clone()),
            DataType::Utf8View => StrCol::View(a.as_string_view().clone()),
            DataType::Dictionary(_, v)
                if matches!(
                    **v,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                let dict = a.as_any_dictionary_opt()?;
                let values = StrCol::new(dict.values())?;
                let keys = dict.normalized_keys();
                let keys = (0..a.len())
                    .map(|i| a.is_valid(i).then(|| keys[i]))
                    .collect();
                StrCol::Dict {
                    keys,
                    values: Box::new(values),
                }
            }
            _ => return None,
        })
    }

    /// The cell, trimmed; an empty cell is missing, as in a CSV file.
    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        self.raw(i).map(trim).filter(|s| !s.is_empty())
    }

    fn raw(&self, i: usize) -> Option<&str> {
        match self {
            StrCol::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Large(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::View(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Dict { keys, values } => keys[i].and_then(|k| values.get(k)),
        }
    }
}

/// `str::trim`, without its scan when the text's first and last bytes are printable ASCII
/// (0x21 to 0x7F): then its first and last characters are those bytes, and neither is white
/// space, so there is nothing to trim.
#[inline]
fn trim(s: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(|b| (0x21..0x80).contains(b));
    let b = s.as_bytes();
    if printable(b.first()) && printable(b.last()) {
        s
    } else {
        s.trim()
    }
}

/// A numeric column: float64 and int64 (what pandas, polars and CSV readers produce) read
/// directly, any other integer or float width through a conversion closure.
enum Num {
    F64(arrow_array::Float64Array),
    I64(arrow_array::Int64Array),
    Other(NumFn),
}

impl Num {
    fn new(a: &ArrayRef) -> Option<Num> {
        Some(match a.data_type() {
            DataType::Float64 => Num::F64(a.as_primitive::<Float64Type>().clone()),
            DataType::Int64 => Num::I64(a.as_primitive::<Int64Type>().clone()),
            _ => Num::Other(num_fn(a)?),
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<f64> {
        match self {
            Num::F64(a) => a.is_valid(i).then(|| a.value(i)),
            Num::I64(a) => a.is_valid(i).then(|| a.value(i) as f64),
            Num::Other(f) => f(i),
        }
    }
}

fn num_fn(a: &ArrayRef) -> Option<NumFn> {
    macro_rules! prim {
        ($t:ty) => {{
            let p = a.as_primitive::<$t>().clone();
            Some(Box::new(move |i| p.is_valid(i).then(|| p.value(i) as f64)))
        }};
    }
    match a.data_type() {
        DataType::Float64 => prim!(Float64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int8 => prim!(Int8Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt8 => prim!(UInt8Type),
        _ => None,
    }
}

fn time_fn(a: &ArrayRef) -> Option<NumFn> {
    macro_rules! ts {
        ($t:ty, $div:expr) => {{
            let p = a.as_primitive::<$t>().clone();
            Some(Box::new(move |i| {
                p.is_valid(i)
                    .then(|| (p.value(i) as f64 / $div as f64).floor())
            }))
        }};
    }
    match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => ts!(TimestampSecondType, 1e-3),
        DataType::Timestamp(TimeUnit::Millisecond, _) => ts!(TimestampMillisecondType, 1),
        DataType::Timestamp(TimeUnit::Microsecond, _) => ts!(TimestampMicrosecondType, 1_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => ts!(TimestampNanosecondType, 1_000_000),
        _ => None,
    }
}

impl Col {
    fn new(a: &ArrayRef) -> Option<Col> {
        if let Some(n) = Num::new(a) {
            return Some(Col::Num(n));
        }
        if let Some(f) = time_fn(a) {
            return Some(Col::Time(f));
        }
        if let DataType::Boolean = a.data_type() {
            return Some(Col::Bool(a.as_boolean().clone()));
        }
        StrCol::new(a).map(Col::Str)
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Col::Num(_))
    }

    /// The text form of a label-like cell (class, group, category, id).
    fn text(&self, i: usize) -> Option<Cow<'_, str>> {
        match self {
            Col::Str(s) => s.get(i).map(Cow::Borrowed),
            Col::Num(n) => n.get(i).map(|x| Cow::Owned(number_text(x))),
            Col::Time(f) => f(i).map(|x| Cow::Owned(number_text(x))),
            Col::Bool(b) => b
                .is_valid(i)
                .then(|| Cow::Borrowed(if b.value(i) { "1" } else { "0" })),
        }
    }

    #[inline]
    fn number(&self, i: usize) -> Option<f64> {
        match self {
            Col::Num(n) => n.get(i),
            _ => None,
        }
    }
}

/// The text of a number used as a label: integers without a fraction (`1.0` is the class `1`,
/// as a pandas column with gaps holds it), other numbers in their shortest form.
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn type_error(column: &str, field: &str, expected: &str, got: &DataType) -> FrameError {
    FrameError {
        column: column.to_owned(),
        row: None,
        error: EventError::new(
            field,
            RejectReason::WrongType,
            format!("column {column:?} has type {got}; expected {expected}"),
        ),
    }
}

struct Slot {
    column: String,
    field: String,
    col: Col,
}

/// The errors of a row's value in a slot, naming the column (the row is set by the caller).
impl Slot {
    fn fail(&self, reason: RejectReason, message: String) -> FrameError {
        self.with_column(EventError::new(self.field.clone(), reason, message))
    }

    fn with_column(&self, error: EventError) -> FrameError {
        FrameError {
            column: self.column.clone(),
            row: None,
            error,
        }
    }

    fn finite(&self, x: f64) -> Result<f64, FrameError> {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(self.fail(RejectReason::InvalidNumber, "not a finite number".into()))
        }
    }
}

/// Where each event field comes from in one record batch.
pub struct Plan {
    features: Vec<(Slot, FeatureKind)>,
    attributes: Vec<Slot>,
    id: Option<Slot>,
    ts: Option<Slot>,
    prediction: Slot,
    score: Option<Slot>,
    label: Option<Slot>,
    latency: Option<Slot>,
    /// The per-class probability columns `{columns.class_score_prefix}{class}`, in the
    /// schema's class order, when the table has them (all of them: one alone is an error).
    class_scores: Option<Vec<Slot>>,
    task: Task,
    /// Classes whose label is an integer, by that integer: a numeric prediction or label column
    /// finds its class without formatting the number as text.
    int_classes: Vec<(f64, u32)>,
}

impl Plan {
    /// Resolves the columns of `batch` for `schema`; errors name the missing or mistyped column.
    pub fn new(
        batch: &RecordBatch,
        schema: &ModelSchema,
        columns: &ColumnsConfig,
    ) -> Result<Plan, FrameError> {
        let find = |name: &str| batch.column_by_name(name).cloned();
        let missing = |column: &str, field: &str, purpose: &str| FrameError {
            column: column.to_owned(),
            row: None,
            error: EventError::new(
                field,
                RejectReason::MissingField,
                format!("column {column:?} ({purpose}) is not in the table"),
            ),
        };
        // Any readable type; `numeric` narrows to numbers.
        let slot =
            |column: &str, field: String, numeric: bool| -> Result<Option<Slot>, FrameError> {
                let Some(a) = find(column) else {
                    return Ok(None);
                };
                let expected = if numeric {
                    "a numeric column (integers or floats)"
                } else {
                    "strings, a categorical of strings, integers or booleans"
                };
                let col = Col::new(&a)
                    .ok_or_else(|| type_error(column, &field, expected, a.data_type()))?;
                if numeric && !col.is_numeric() {
                    return Err(type_error(column, &field, expected, a.data_type()));
                }
                Ok(Some(Slot {
                    column: column.to_owned(),
                    field,
                    col,
                }))
            };
        let features = schema
            .features
            .iter()
            .map(|f| {
                let field = format!("features.{}", f.name);
                let numeric = f.kind == FeatureKind::Numeric;
                let s = slot(&f.name, field.clone(), numeric)?
                    .ok_or_else(|| missing(&f.name, &field, &format!("feature {}", f.name)))?;
                Ok((s, f.kind))
            })
            .collect::<Result<_, FrameError>>()?;
        let attributes = schema
            .attributes
            .iter()
            .map(|a| {
                let field = format!("attributes.{}", a.name);
                slot(&a.name, field.clone(), false)?
                    .ok_or_else(|| missing(&a.name, &field, &format!("attribute {}", a.name)))
            })
            .collect::<Result<_, FrameError>>()?;
        let regression = schema.task == Task::Regression;
        let prediction_field = if regression {
            "prediction.value"
        } else {
            "prediction.label"
        };
        let prediction = slot(&columns.prediction, prediction_field.to_owned(), regression)?
            .ok_or_else(|| missing(&columns.prediction, prediction_field, "prediction"))?;
        let ts = match find(&columns.ts) {
            None => None,
            Some(a) if time_fn(&a).is_some() || StrCol::new(&a).is_some() => Some(Slot {
                column: columns.ts.clone(),
                field: "ts".into(),
                col: Col::new(&a).expect("a timestamp or string column"),
            }),
            Some(a) => {
                return Err(type_error(
                    &columns.ts,
                    "ts",
                    "timestamps or RFC 3339 strings",
                    a.data_type(),
                ))
            }
        };
        let class_scores = if regression {
            None
        } else {
            let names: Vec<String> = schema
                .classes
                .iter()
                .map(|c| format!("{}{c}", columns.class_score_prefix))
                .collect();
            if names.iter().any(|n| find(n).is_some()) {
                Some(
                    names
                        .iter()
                        .zip(&schema.classes)
                        .enumerate()
                        .map(|(k, (n, c))| {
                            let field = format!("prediction.scores[{k}]");
                            slot(n, field.clone(), true)?.ok_or_else(|| {
                                missing(n, &field, &format!("probability of class {c:?}"))
                            })
                        })
                        .collect::<Result<Vec<_>, FrameError>>()?,
                )
            } else {
                None
            }
        };
        Ok(Plan {
            class_scores,
            features,
            attributes,
            id: slot(&columns.id, "id".into(), false)?,
            ts,
            prediction,
            score: if regression {
                None
            } else {
                slot(&columns.score, "prediction.score".into(), true)?
            },
            label: slot(&columns.label, "label".into(), regression)?,
            latency: slot(&columns.latency_ms, "latency_ms".into(), true)?,
            task: schema.task,
            int_classes: schema
                .classes
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let n: i64 = c.parse().ok()?;
                    (number_text(n as f64) == *c).then_some((n as f64, i as u32))
                })
                .collect(),
        })
    }

    /// The column an event field (`id`, `features.NAME`, ...) came from, for an error found
    /// after the row was filled; the field itself when no column holds it.
    pub fn column_of(&self, field: &str) -> String {
        self.features
            .iter()
            .map(|(s, _)| s)
            .chain(&self.attributes)
            .chain(self.id.as_ref())
            .find(|s| s.field == field)
            .map_or_else(|| field.to_owned(), |s| s.column.clone())
    }

    /// Row `i`'s request id, as [`fill`](Self::fill) reads it.
    pub fn id_at(&self, i: usize) -> Option<String> {
        self.id
            .as_ref()
            .and_then(|s| s.col.text(i))
            .map(Cow::into_owned)
    }

    /// Whether the table carries per-class probabilities (`score_{class}` columns).
    pub fn has_class_scores(&self) -> bool {
        self.class_scores.is_some()
    }

    /// Fills `scores` with row `i`'s per-class probabilities, reusing its buffer; false when
    /// the table has none or the row leaves them all empty. A row fills them all or none, and
    /// they must be a distribution (`ModelSchema::check_class_scores`), as in a CSV dataset.
    pub fn fill_scores(
        &self,
        i: usize,
        schema: &ModelSchema,
        scores: &mut Vec<f64>,
    ) -> Result<bool, FrameError> {
        scores.clear();
        let Some(slots) = &self.class_scores else {
            return Ok(false);
        };
        if slots.iter().all(|s| s.col.number(i).is_none()) {
            return Ok(false);
        }
        for s in slots {
            match s.col.number(i) {
                Some(x) => scores.push(x),
                None => {
                    return Err(FrameError {
                        column: s.column.clone(),
                        row: None,
                        error: EventError::new(
                            s.field.clone(),
                            RejectReason::MissingField,
                            "a row with class probabilities needs one for every class",
                        ),
                    })
                }
            }
        }
        schema
            .check_class_scores("prediction.scores", scores)
            .map_err(|e| {
                // Name the column of the element at fault, else the first one.
                let k = e
                    .field
                    .strip_prefix("prediction.scores[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|k| k.parse::<usize>().ok())
                    .unwrap_or(0);
                FrameError {
                    column: slots[k.min(slots.len() - 1)].column.clone(),
                    row: None,
                    error: e,
                }
            })?;
        Ok(true)
    }

    /// An empty event with room for this plan's features and attributes.
    pub fn blank(&self) -> Event {
        Event {
            features: Vec::with_capacity(self.features.len()),
            groups: Vec::with_capacity(self.attributes.len()),
            ..blank_event()
        }
    }

    /// Fills `event` from row `i`; `default_ts` stands in for a missing timestamp. The error
    /// names the column; its row is set by the caller.
    pub fn fill(
        &self,
        i: usize,
        schema: &ModelSchema,
        default_ts: i64,
        event: &mut Event,
    ) -> Result<(), FrameError> {
        event
            .features
            .resize(self.features.len(), FeatureValue::Missing);
        for ((slot, kind), value) in self.features.iter().zip(event.features.iter_mut()) {
            *value = match kind {
                FeatureKind::Numeric => match slot.col.number(i) {
                    None => FeatureValue::Missing,
                    Some(x) => FeatureValue::Numeric(slot.finite(x)?),
                },
                FeatureKind::Categorical => match slot.col.text(i) {
                    None => FeatureValue::Missing,
                    Some(t) => match value {
                        FeatureValue::Categorical(buf) => {
                            buf.clear();
                            buf.push_str(&t);
                            continue;
                        }
                        _ => FeatureValue::Categorical(t.into_owned()),
                    },
                },
            };
        }
        self.fill_rest(i, schema, default_ts, event)
    }

    /// The part of [`fill`](Self::fill) after the features: groups, prediction, label,
    /// latency, id and time, each through the one helper per field that the column batches of
    /// `block` use too.
    fn fill_rest(
        &self,
        i: usize,
        schema: &ModelSchema,
        default_ts: i64,
        event: &mut Event,
    ) -> Result<(), FrameError> {
        event.groups.clear();
        for a in 0..self.attributes.len() {
            event.groups.push(self.group_at(a, schema, i));
        }
        event.prediction = if self.task == Task::Regression {
            Prediction::Value(self.value_at(i)?)
        } else {
            let class = self.class_at(i, schema)?;
            let score = self.score_at(i, schema)?;
            Prediction::Class { class, score }
        };
        event.label = self.label_at(i, schema)?;
        event.latency_ms = self.latency_at(i)?;
        match self.id.as_ref().and_then(|s| s.col.text(i)) {
            Some(id) => {
                let buf = event.id.get_or_insert_with(String::new);
                buf.clear();
                buf.push_str(&id);
            }
            None => event.id = None,
        }
        event.ts_ms = self.ts_at(i, default_ts)?;
        Ok(())
    }

    /// Row `i`'s group of attribute `a` (the attribute's group count when the cell is empty).
    #[inline]
    fn group_at(&self, a: usize, schema: &ModelSchema, i: usize) -> u16 {
        match self.attributes[a].col.text(i) {
            Some(t) => schema.group_of(a, &t),
            None => Self::no_group(schema, a),
        }
    }

    /// The group of an empty attribute cell.
    #[inline]
    fn no_group(schema: &ModelSchema, a: usize) -> u16 {
        schema.attributes[a].groups.len() as u16
    }

    /// Row `i`'s output (regression).
    #[inline]
    fn value_at(&self, i: usize) -> Result<f64, FrameError> {
        let p = &self.prediction;
        match p.col.number(i) {
            Some(x) => p.finite(x),
            None => Err(self.empty_prediction()),
        }
    }

    /// The error of a row without a prediction.
    fn empty_prediction(&self) -> FrameError {
        self.prediction
            .fail(RejectReason::MissingField, "the prediction is empty".into())
    }

    /// Row `i`'s predicted class (classification).
    #[inline]
    fn class_at(&self, i: usize, schema: &ModelSchema) -> Result<u32, FrameError> {
        let p = &self.prediction;
        match self.int_class(&p.col, i) {
            Some(c) => Ok(c),
            None => {
                let text = p.col.text(i).ok_or_else(|| self.empty_prediction())?;
                self.class_of_text(&text, schema)
            }
        }
    }

    /// The class a prediction cell's text names.
    fn class_of_text(&self, text: &str, schema: &ModelSchema) -> Result<u32, FrameError> {
        let p = &self.prediction;
        schema
            .parse_class(&p.field, text)
            .map_err(|e| p.with_column(e))
    }

    /// Row `i`'s positive-class score (classification), if the table has one for it.
    #[inline]
    fn score_at(&self, i: usize, schema: &ModelSchema) -> Result<Option<f64>, FrameError> {
        match self
            .score
            .as_ref()
            .and_then(|s| s.col.number(i).map(|x| (s, x)))
        {
            Some((s, x)) => schema
                .check_score(&s.field, x)
                .map(Some)
                .map_err(|e| s.with_column(e)),
            None => Ok(None),
        }
    }

    /// Row `i`'s label, if it came with one.
    #[inline]
    fn label_at(
        &self,
        i: usize,
        schema: &ModelSchema,
    ) -> Result<Option<aims_core::Target>, FrameError> {
        Ok(match &self.label {
            None => None,
            Some(s) if self.task == Task::Regression => match s.col.number(i) {
                None => None,
                Some(x) => Some(aims_core::Target::Value(s.finite(x)?)),
            },
            Some(s) => {
                if let Some(x) = s.col.number(i) {
                    s.finite(x)?;
                }
                match self.int_class(&s.col, i) {
                    Some(c) => Some(aims_core::Target::Class(c)),
                    None => match s.col.text(i) {
                        None => None,
                        Some(t) => Some(self.label_of_text(s, &t, schema)?),
                    },
                }
            }
        })
    }

    /// The label a (classification) label cell's text names.
    fn label_of_text(
        &self,
        s: &Slot,
        text: &str,
        schema: &ModelSchema,
    ) -> Result<aims_core::Target, FrameError> {
        schema
            .parse_target_text(&s.field, text)
            .map_err(|e| s.with_column(e))
    }

    /// Row `i`'s serving latency, if it has one.
    #[inline]
    fn latency_at(&self, i: usize) -> Result<Option<f64>, FrameError> {
        match self
            .latency
            .as_ref()
            .and_then(|s| s.col.number(i).map(|x| (s, x)))
        {
            None => Ok(None),
            Some((s, x)) => {
                let x = s.finite(x)?;
                if x < 0.0 {
                    return Err(s.fail(
                        RejectReason::InvalidNumber,
                        "a latency cannot be negative".into(),
                    ));
                }
                Ok(Some(x))
            }
        }
    }

    /// Row `i`'s event time; `default_ts` when the table has none for it.
    #[inline]
    fn ts_at(&self, i: usize, default_ts: i64) -> Result<i64, FrameError> {
        Ok(match &self.ts {
            None => default_ts,
            Some(s) => match &s.col {
                Col::Time(f) => f(i).map_or(default_ts, |ms| ms as i64),
                col => match col.text(i) {
                    None => default_ts,
                    Some(t) => parse_timestamp("ts", &t).map_err(|e| s.with_column(e))?,
                },
            },
        })
    }
}

impl Plan {
    /// The class of a numeric cell holding one of the integer class labels.
    #[inline]
    fn int_class(&self, col: &Col, i: usize) -> Option<u32> {
        let x = col.number(i)?;
        self.int_classes
            .iter()
            .find(|(n, _)| *n == x)
            .map(|&(_, c)| c)
    }
}

/// An event ready to be filled by [`Plan::fill`].
pub fn blank_event() -> Event {
    Event::blank(0)
}

/// Rows of all batches.
pub fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Column plans of `batches` and the first row of each across the table.
fn plans(
    batches: &[RecordBatch],
    schema: &ModelSchema,
    columns: &ColumnsConfig,
) -> Result<(Vec<Plan>, Vec<usize>), FrameError> {
    // Plans are per batch: batches of one stream share a schema, but resolving is cheap.
    let plans = batches
        .iter()
        .map(|b| Plan::new(b, schema, columns))
        .collect::<Result<Vec<_>, _>>()?;
    let starts = batches
        .iter()
        .scan(0usize, |acc, b| {
            let s = *acc;
            *acc += b.num_rows();
            Some(s)
        })
        .collect();
    Ok((plans, starts))
}

/// Folds table rows `from..to` into `state`, in row order.
#[allow(clippy::too_many_arguments)]
fn fold_range<S>(
    batches: &[RecordBatch],
    (plans, starts): &(Vec<Plan>, Vec<usize>),
    schema: &ModelSchema,
    default_ts: i64,
    (from, to): (usize, usize),
    state: &mut S,
    (event, scores): (&mut Event, &mut Vec<f64>),
    step: &impl Fn(&mut S, &Event, Option<&[f64]>),
) -> Result<(), FrameError> {
    for (b, batch) in batches.iter().enumerate() {
        let (lo, hi) = (starts[b], starts[b] + batch.num_rows());
        let (a, z) = (from.max(lo), to.min(hi));
        for row in a..z {
            let at_row = |mut e: FrameError| {
                e.row = Some(row as u64);
                e
            };
            plans[b]
                .fill(row - lo, schema, default_ts, event)
                .map_err(at_row)?;
            let scored = plans[b]
                .fill_scores(row - lo, schema, scores)
                .map_err(at_row)?;
            step(state, event, scored.then_some(scores.as_slice()));
        }
    }
    Ok(())
}

/// The first error by row number, as a single thread would have met it; else every state.
fn first_error<S>(results: Vec<Result<S, FrameError>>) -> Result<Vec<S>, FrameError> {
    let mut states = Vec::with_capacity(results.len());
    let mut first: Option<FrameError> = None;
    for r in results {
        match r {
            Ok(s) => states.push(s),
            Err(e) => {
                if first.as_ref().is_none_or(|f| e.row < f.row) {
                    first = Some(e);
                }
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(states),
    }
}

/// Runs `work(w)` for `w` in `0..workers`, on threads of its own when more than one.
fn on_workers<T: Send>(workers: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if workers == 1 {
        return vec![work(0)];
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|w| scope.spawn(move || work(w))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Folds each block of `block_rows` rows of `batches` (rows `k * block_rows ..`, across record
/// batches) into a fresh state made by `init`, on up to `workers` threads, and returns the
/// blocks' states in row order: the same blocks whatever the batches and the workers, as the
/// CLI folds a file (`aims_agent::assess::BLOCK_ROWS`). The first bad row stops the fold.
#[allow(clippy::too_many_arguments)]
pub fn fold_blocks<S: Send>(
    batches: &[RecordBatch],
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    default_ts: i64,
    workers: usize,
    block_rows: usize,
    init: impl Fn() -> S + Sync,
    step: impl Fn(&mut S, &Event, Option<&[f64]>) + Sync,
) -> Result<Vec<S>, FrameError> {
    let plans = plans(batches, schema, columns)?;
    let total = rows(batches) as usize;
    let block_rows = block_rows.max(1);
    let blocks = total.div_ceil(block_rows);
    let workers = workers.clamp(1, 8).min(blocks.max(1));
    // Worker w takes blocks w, w + workers, ...; a worker stops at its first bad row.
    let per_worker = on_workers(workers, |w| {
        let (mut event, mut scores) = (blank_event(), Vec::new());
        let mut states = Vec::new();
        for k in (w..blocks).step_by(workers) {
            let mut state = init();
            let range = (k * block_rows, ((k + 1) * block_rows).min(total));
            if let Err(e) = fold_range(
                batches,
                &plans,
                schema,
                default_ts,
                range,
                &mut state,
                (&mut event, &mut scores),
                &step,
            ) {
                return (states, Some(e));
            }
            states.push((k, state));
        }
        (states, None)
    });
    let mut errors = Vec::new();
    let mut states = Vec::with_capacity(blocks);
    for (s, e) in per_worker {
        states.extend(s);
        errors.extend(e.map(Err));
    }
    first_error::<()>(errors)?;
    states.sort_by_key(|(k, _)| *k);
    Ok(states.into_iter().map(|(_, s)| s).collect())
}
