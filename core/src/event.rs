//! Prediction events and late labels: the raw form as it arrives, and the validated form the
//! summary records.
//!
//! Validation is the only gate between untrusted input and the statistics, so every rejection
//! names the field at fault and carries a [`RejectReason`] that agents count by.

use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::schema::{FeatureKind, ModelSchema, Task};

/// A validated feature value, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    /// Absent or `null`.
    Missing,
    /// A finite number.
    Numeric(f64),
    /// A category.
    Categorical(String),
}

/// A validated model output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prediction {
    /// A predicted class (index into the schema's classes), with the positive-class score
    /// when the model gives one.
    Class {
        /// Index of the predicted class.
        class: u32,
        /// Probability of the positive class, in [0, 1].
        score: Option<f64>,
    },
    /// A regression output.
    Value(f64),
    /// The model failed to predict (a serving error); counted into `error_rate`.
    Failed,
}

/// A validated ground-truth label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// A class index.
    Class(u32),
    /// A regression target.
    Value(f64),
}

/// A prediction event after validation against a [`ModelSchema`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Request id, used to join late labels.
    pub id: Option<String>,
    /// Event time, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// One value per schema feature, in schema order.
    pub features: Vec<FeatureValue>,
    /// One group index per schema attribute (`groups.len()` is the `other` bucket).
    pub groups: Vec<u16>,
    /// The model output.
    pub prediction: Prediction,
    /// Ground truth, when it came with the event.
    pub label: Option<Target>,
    /// Serving latency in milliseconds.
    pub latency_ms: Option<f64>,
}

impl Event {
    /// An event at `ts_ms` with nothing in it yet, for the readers that fill one in place
    /// (and reuse it from row to row).
    pub fn blank(ts_ms: i64) -> Self {
        Self {
            id: None,
            ts_ms,
            features: Vec::new(),
            groups: Vec::new(),
            prediction: Prediction::Failed,
            label: None,
            latency_ms: None,
        }
    }
}

/// Why an event or label was rejected; agents count rejections by this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The body or line is not valid JSON, or not an object.
    InvalidJson,
    /// A CSV row that does not parse (wrong number of cells, bad quoting).
    Malformed,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A feature the schema does not declare.
    UnknownFeature,
    /// An attribute the schema does not declare.
    UnknownAttribute,
    /// A class label that is not one of the schema's classes.
    UnknownClass,
    /// A number that is NaN or infinite, or out of its allowed range.
    InvalidNumber,
    /// A timestamp that is not RFC 3339.
    InvalidTimestamp,
    /// An id, category value or whole item longer than its cap.
    TooLong,
}

impl RejectReason {
    /// Stable snake_case name, used as a metrics label value and in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::Malformed => "malformed",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::UnknownFeature => "unknown_feature",
            Self::UnknownAttribute => "unknown_attribute",
            Self::UnknownClass => "unknown_class",
            Self::InvalidNumber => "invalid_number",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TooLong => "too_long",
        }
    }

    /// Every reason, so counters can be pre-registered at zero.
    pub const ALL: [RejectReason; 10] = [
        Self::InvalidJson,
        Self::Malformed,
        Self::MissingField,
        Self::WrongType,
        Self::UnknownFeature,
        Self::UnknownAttribute,
        Self::UnknownClass,
        Self::InvalidNumber,
        Self::InvalidTimestamp,
        Self::TooLong,
    ];
}

/// A rejected event: which field, why, in words and as a countable reason.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct EventError {
    /// Dotted path of the offending field (`features.income`, `prediction.score`, ...).
    pub field: String,
    /// The countable reason.
    pub reason: RejectReason,
    /// A human-readable explanation.
    pub message: String,
}

impl EventError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, reason: RejectReason, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason,
            message: message.into(),
        }
    }
}

/// A prediction event as it arrives over HTTP or in an NDJSON file, before validation.
#[derive(Debug, Clone, Deserialize)]
pub struct RawEvent {
    /// Request id.
    #[serde(default)]
    pub id: Option<Value>,
    /// RFC 3339 timestamp; the receive time when absent.
    #[serde(default)]
    pub ts: Option<Value>,
    /// Feature values by name.
    #[serde(default)]
    pub features: Option<Value>,
    /// Attribute values by name.
    #[serde(default)]
    pub attributes: Option<Value>,
    /// `{"label": .., "score": ..}` or `{"value": ..}`.
    #[serde(default)]
    pub prediction: Option<Value>,
    /// Ground truth, when known at prediction time.
    #[serde(default)]
    pub label: Option<Value>,
    /// Serving latency in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<Value>,
    /// A serving error instead of a prediction.
    #[serde(default)]
    pub error: Option<Value>,
}

/// The keys of a [`RawEvent`], in field order, for the decoders that read an event without
/// building a JSON tree (the agent's NDJSON fast paths, the Python binding's dict path): one
/// list, so that none of them misses a field added here. `error` comes last.
pub const RAW_EVENT_KEYS: [&str; 8] = [
    "id",
    "ts",
    "features",
    "attributes",
    "prediction",
    "label",
    "latency_ms",
    "error",
];

/// [`RAW_EVENT_KEYS`] without `error`: the keys of an event that carries a prediction (the
/// decoders that give an error event to the general path know only these).
pub const PREDICTION_EVENT_KEYS: &[&str] = RAW_EVENT_KEYS.split_at(7).0;

/// A late ground-truth label: `{"id": "req-8f2c", "label": 0}`.
#[derive(Debug, Clone, Deserialize)]
pub struct RawLabel {
    /// Id of the prediction it belongs to.
    #[serde(default)]
    pub id: Option<Value>,
    /// The label.
    #[serde(default)]
    pub label: Option<Value>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> EventError {
    EventError::new(
        field,
        RejectReason::WrongType,
        format!("expected {expected}, got {}", type_name(got)),
    )
}

/// The largest magnitude a number in an event may have. Its square is at most 1e200, so the
/// sums of squares of even 2^53 such values stay finite: one huge value is refused alone instead
/// of overflowing its window's summary (which the collector could then not accept).
pub const MAX_MAGNITUDE: f64 = 1e100;

/// How far the per-class probabilities of a prediction (`prediction.scores`) may sum from 1.
/// It admits probabilities rounded to four decimals for up to 20 classes (each off by at most
/// 5e-5) and float32 softmax outputs; anything further off is not a probability distribution
/// (logits, a wrong column) and is refused rather than renormalised. Log loss uses the true
/// class's probability as given, so it moves by at most this much relative to a renormalised one.
pub const SCORE_SUM_TOLERANCE: f64 = 1e-3;

/// `x` if it is finite and within [`MAX_MAGNITUDE`], or the error for `field`.
pub fn check_magnitude(field: &str, x: f64) -> Result<f64, EventError> {
    if !x.is_finite() {
        return Err(EventError::new(
            field,
            RejectReason::InvalidNumber,
            "not a finite number",
        ));
    }
    if x.abs() > MAX_MAGNITUDE {
        return Err(EventError::new(
            field,
            RejectReason::InvalidNumber,
            format!("{x} is beyond ±{MAX_MAGNITUDE:e}, the largest magnitude a summary can sum"),
        ));
    }
    Ok(x)
}

/// A finite number from JSON within [`MAX_MAGNITUDE`], or the error for `field`.
fn finite(field: &str, v: &Value) -> Result<f64, EventError> {
    match v.as_f64() {
        Some(x) => check_magnitude(field, x),
        None => Err(wrong_type(field, "a number", v)),
    }
}

/// The string form of a scalar used as a class or group label (`1` and `"1"` are the same).
fn label_text(field: &str, v: &Value) -> Result<String, EventError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_owned()),
        other => Err(wrong_type(field, "a string or a number", other)),
    }
}

fn object<'a>(field: &str, v: &'a Value) -> Result<&'a Map<String, Value>, EventError> {
    v.as_object()
        .ok_or_else(|| wrong_type(field, "an object", v))
}

/// Parses an RFC 3339 timestamp into milliseconds since the Unix epoch.
#[inline]
pub fn parse_timestamp(field: &str, text: &str) -> Result<i64, EventError> {
    match millis_of_common_timestamp(text) {
        Some(ms) => Ok(ms),
        None => parse_any_timestamp(field, text),
    }
}

/// [`parse_timestamp`] of any text, the common shape included: humantime's parse, then the
/// milliseconds since the epoch.
#[inline(never)]
fn parse_any_timestamp(field: &str, text: &str) -> Result<i64, EventError> {
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        EventError::new(
            field,
            RejectReason::InvalidTimestamp,
            format!("{text:?} is not an RFC 3339 timestamp: {e}"),
        )
    })?;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| EventError::new(field, RejectReason::InvalidTimestamp, "before 1970"))?;
    i64::try_from(d.as_millis())
        .map_err(|_| EventError::new(field, RejectReason::InvalidTimestamp, "too far ahead"))
}

/// The last second humantime accepts (the end of year 9999 where it is so built; else
/// `i32::MAX`, the smaller, so that this path never accepts what humantime refuses).
const COMMON_MAX_SECONDS: u64 = if cfg!(target_pointer_width = "64") {
    253_402_300_800 - 1
} else {
    i32::MAX as u64
};

/// [`parse_timestamp`]'s milliseconds for the common shape `YYYY-MM-DDTHH:MM:SS.mmmZ` (24 ASCII
/// bytes, three fraction digits), computed as `humantime::parse_rfc3339_weak` and
/// `SystemTime::duration_since(UNIX_EPOCH)` compute them (the same checks, day counts, leap
/// second read as 59, `as_millis` of the nanoseconds), without the `SystemTime` round trip;
/// `None` for any other text and for anything humantime would refuse, which then goes the
/// general way (and gets its error message there).
#[inline]
fn millis_of_common_timestamp(text: &str) -> Option<i64> {
    let b: &[u8; 24] = text.as_bytes().try_into().ok()?;
    if b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let digit = |i: usize| {
        let d = b[i].wrapping_sub(b'0');
        (d <= 9).then_some(u64::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let millis = digit(20)? * 100 + digit(21)? * 10 + digit(22)?;
    if year < 1970 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let second = second.min(59);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let (mut ydays, mdays) = match month {
        1 => (0, 31),
        2 if leap => (31, 29),
        2 => (31, 28),
        3 => (59, 31),
        4 => (90, 30),
        5 => (120, 31),
        6 => (151, 30),
        7 => (181, 31),
        8 => (212, 31),
        9 => (243, 30),
        10 => (273, 31),
        11 => (304, 30),
        12 => (334, 31),
        _ => return None,
    };
    if day > mdays || day == 0 {
        return None;
    }
    ydays += day - 1;
    if leap && month > 2 {
        ydays += 1;
    }
    let leap_years =
        ((year - 1) - 1968) / 4 - ((year - 1) - 1900) / 100 + ((year - 1) - 1600) / 400;
    let days = (year - 1970) * 365 + leap_years + ydays;
    let total_seconds = second + minute * 60 + hour * 3600 + days * 86400;
    if total_seconds > COMMON_MAX_SECONDS {
        return None;
    }
    i64::try_from(total_seconds * 1000 + millis).ok()
}

impl ModelSchema {
    /// A class label in string form to its index.
    pub fn parse_class(&self, field: &str, text: &str) -> Result<u32, EventError> {
        self.class_index(text).map(|i| i as u32).ok_or_else(|| {
            EventError::new(
                field,
                RejectReason::UnknownClass,
                format!("{text:?} is not one of the classes {:?}", self.classes),
            )
        })
    }

    /// A ground-truth label from JSON.
    pub fn parse_target(&self, field: &str, v: &Value) -> Result<Target, EventError> {
        match self.task {
            Task::Regression => finite(field, v).map(Target::Value),
            _ => {
                let text = label_text(field, v)?;
                self.parse_class(field, &text).map(Target::Class)
            }
        }
    }

    /// A ground-truth label from text (a CSV cell).
    pub fn parse_target_text(&self, field: &str, text: &str) -> Result<Target, EventError> {
        match self.task {
            Task::Regression => parse_number(field, text).map(Target::Value),
            _ => self.parse_class(field, text).map(Target::Class),
        }
    }

    /// A positive-class score, which must lie in [0, 1].
    pub fn check_score(&self, field: &str, score: f64) -> Result<f64, EventError> {
        if score.is_finite() && (0.0..=1.0).contains(&score) {
            Ok(score)
        } else {
            Err(EventError::new(
                field,
                RejectReason::InvalidNumber,
                format!("score {score} is outside [0, 1]"),
            ))
        }
    }

    /// The per-class probabilities of a classification prediction, `prediction.scores`: one
    /// per class in schema order, each in [0, 1], summing to 1 within
    /// [`SCORE_SUM_TOLERANCE`] (see [`check_class_scores`](Self::check_class_scores)). `None`
    /// when the prediction has none.
    ///
    /// They are what multiclass log loss and one-vs-rest ROC AUC need (see
    /// [`WindowSummary::record_class_scores`](crate::summary::WindowSummary::record_class_scores)).
    pub fn class_scores(&self, prediction: &Value) -> Result<Option<Vec<f64>>, EventError> {
        const FIELD: &str = "prediction.scores";
        let scores = match prediction.get("scores") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(v) => return Err(wrong_type(FIELD, "an array of probabilities", v)),
        };
        self.check_score_count(FIELD, scores.len())?;
        let scores = scores
            .iter()
            .enumerate()
            .map(|(i, v)| finite(&format!("{FIELD}[{i}]"), v))
            .collect::<Result<Vec<f64>, _>>()?;
        self.check_class_scores(FIELD, &scores)?;
        Ok(Some(scores))
    }

    fn check_score_count(&self, field: &str, n: usize) -> Result<(), EventError> {
        if self.task == Task::Regression {
            return Err(EventError::new(
                field,
                RejectReason::UnknownClass,
                "a regression model has no class probabilities",
            ));
        }
        if n != self.classes.len() {
            return Err(EventError::new(
                field,
                RejectReason::InvalidNumber,
                format!(
                    "{n} probabilities for {} classes ({:?})",
                    self.classes.len(),
                    self.classes
                ),
            ));
        }
        Ok(())
    }

    /// Checks per-class probabilities already read as numbers (a JSON array, CSV cells): one
    /// per class in schema order (so their count is capped by the schema's class cap), each
    /// finite and in [0, 1] (errors name `field[i]`), and summing to 1 within
    /// [`SCORE_SUM_TOLERANCE`].
    pub fn check_class_scores(&self, field: &str, scores: &[f64]) -> Result<(), EventError> {
        self.check_score_count(field, scores.len())?;
        for (i, &s) in scores.iter().enumerate() {
            if !(s.is_finite() && (0.0..=1.0).contains(&s)) {
                let f = format!("{field}[{i}]");
                self.check_score(&f, check_magnitude(&f, s)?)?;
            }
        }
        let sum: f64 = scores.iter().sum();
        if (sum - 1.0).abs() > SCORE_SUM_TOLERANCE {
            return Err(EventError::new(
                field,
                RejectReason::InvalidNumber,
                format!("the probabilities sum to {sum}, not 1 (within {SCORE_SUM_TOLERANCE})"),
            ));
        }
        Ok(())
    }

    /// The group index of an attribute value given as text.
    pub fn group_of(&self, attribute: usize, text: &str) -> u16 {
        self.attributes[attribute].group_index(text) as u16
    }

    /// Validates a raw event. `now_ms` stands in for a missing timestamp. Per-class
    /// probabilities (`prediction.scores`) are checked, and refused when bad, but not returned:
    /// [`validate_scored`](Self::validate_scored) returns them too.
    pub fn validate(&self, raw: RawEvent, now_ms: i64) -> Result<Event, EventError> {
        self.validate_scored(raw, now_ms).map(|(event, _)| event)
    }

    /// Validates a raw event and its per-class probabilities ([`class_scores`](Self::class_scores)),
    /// which a summary records with
    /// [`record_scored`](crate::summary::WindowSummary::record_scored).
    pub fn validate_scored(&self, raw: RawEvent, now_ms: i64) -> Result<Scored, EventError> {
        let id = match raw.id {
            None | Some(Value::Null) => None,
            Some(v) => Some(label_text("id", &v)?),
        };
        let ts_ms = match raw.ts {
            None | Some(Value::Null) => now_ms,
            Some(Value::String(s)) => parse_timestamp("ts", &s)?,
            Some(other) => return Err(wrong_type("ts", "an RFC 3339 string", &other)),
        };

        let mut features = vec![FeatureValue::Missing; self.features.len()];
        if let Some(v) = raw.features.as_ref().filter(|v| !v.is_null()) {
            for (name, value) in object("features", v)? {
                let Some(i) = self.feature_index(name) else {
                    return Err(EventError::new(
                        format!("features.{name}"),
                        RejectReason::UnknownFeature,
                        "not declared in the model schema",
                    ));
                };
                features[i] = self.feature_value(i, value)?;
            }
        }

        let mut groups: Vec<u16> = self
            .attributes
            .iter()
            .map(|a| a.groups.len() as u16)
            .collect();
        if let Some(v) = raw.attributes.as_ref().filter(|v| !v.is_null()) {
            for (name, value) in object("attributes", v)? {
                let Some(i) = self.attribute_index(name) else {
                    return Err(EventError::new(
                        format!("attributes.{name}"),
                        RejectReason::UnknownAttribute,
                        "not declared in the model schema",
                    ));
                };
                if !value.is_null() {
                    let text = label_text(&format!("attributes.{name}"), value)?;
                    groups[i] = self.group_of(i, &text);
                }
            }
        }

        let failed = match &raw.error {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(_)) | Some(Value::Bool(true)) => true,
            Some(other) => return Err(wrong_type("error", "a string", other)),
        };
        let mut scores = None;
        let prediction = match (raw.prediction.as_ref().filter(|v| !v.is_null()), failed) {
            (None, true) => Prediction::Failed,
            (None, false) => {
                return Err(EventError::new(
                    "prediction",
                    RejectReason::MissingField,
                    "a prediction is required unless the event reports an error",
                ))
            }
            (Some(p), _) => {
                let prediction = self.prediction(object("prediction", p)?)?;
                if self.task != Task::Regression {
                    scores = self.class_scores(p)?;
                }
                prediction
            }
        };

        let label = match raw.label {
            None | Some(Value::Null) => None,
            Some(v) => Some(self.parse_target("label", &v)?),
        };
        let latency_ms = match raw.latency_ms {
            None | Some(Value::Null) => None,
            Some(v) => {
                let x = finite("latency_ms", &v)?;
                if x < 0.0 {
                    return Err(EventError::new(
                        "latency_ms",
                        RejectReason::InvalidNumber,
                        "a latency cannot be negative",
                    ));
                }
                Some(x)
            }
        };
        let event = Event {
            id,
            ts_ms,
            features,
            groups,
            prediction,
            label,
            latency_ms,
        };
        Ok((event, scores))
    }

    fn feature_value(&self, i: usize, value: &Value) -> Result<FeatureValue, EventError> {
        if value.is_null() {
            return Ok(FeatureValue::Missing);
        }
        let spec = &self.features[i];
        match spec.kind {
            FeatureKind::Numeric => {
                finite(&format!("features.{}", spec.name), value).map(FeatureValue::Numeric)
            }
            FeatureKind::Categorical => {
                label_text(&format!("features.{}", spec.name), value).map(FeatureValue::Categorical)
            }
        }
    }

    fn prediction(&self, p: &Map<String, Value>) -> Result<Prediction, EventError> {
        if self.task == Task::Regression {
            let v = p.get("value").filter(|v| !v.is_null()).ok_or_else(|| {
                EventError::new(
                    "prediction.value",
                    RejectReason::MissingField,
                    "a regression prediction needs a value",
                )
            })?;
            return finite("prediction.value", v).map(Prediction::Value);
        }
        let label = p.get("label").filter(|v| !v.is_null()).ok_or_else(|| {
            EventError::new(
                "prediction.label",
                RejectReason::MissingField,
                "a classification prediction needs a label",
            )
        })?;
        let class =
            self.parse_class("prediction.label", &label_text("prediction.label", label)?)?;
        let score = match p.get("score") {
            None | Some(Value::Null) => None,
            Some(v) => Some(self.check_score("prediction.score", finite("prediction.score", v)?)?),
        };
        Ok(Prediction::Class { class, score })
    }

    /// Validates a late label into the prediction id and the target.
    pub fn validate_label(&self, raw: RawLabel) -> Result<(String, Target), EventError> {
        let id = match raw.id {
            None | Some(Value::Null) => {
                return Err(EventError::new(
                    "id",
                    RejectReason::MissingField,
                    "a label needs the id of its prediction",
                ))
            }
            Some(v) => label_text("id", &v)?,
        };
        let label = match raw.label {
            None | Some(Value::Null) => {
                return Err(EventError::new(
                    "label",
                    RejectReason::MissingField,
                    "a label event needs a label",
                ))
            }
            Some(v) => self.parse_target("label", &v)?,
        };
        Ok((id, label))
    }
}

/// A finite number from text (a CSV cell).
pub fn parse_number(field: &str, text: &str) -> Result<f64, EventError> {
    let trimmed = crate::decimal::trim(text);
    if let Some(x) = crate::decimal::plain(trimmed) {
        return check_magnitude(field, x);
    }
    match trimmed.parse::<f64>() {
        Ok(x) => check_magnitude(field, x),
        Err(_) => Err(EventError::new(
            field,
            RejectReason::WrongType,
            format!("{text:?} is not a number"),
        )),
    }
}

/// A validated event and the per-class probabilities its prediction came with, if any
/// ([`ModelSchema::validate_scored`]).
pub type Scored = (Event, Option<Vec<f64>>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{AttributeSpec, FeatureSpec};
    use proptest::prelude::*;

    /// `parse_timestamp` as it was before the common shape's own path: humantime, then
    /// `SystemTime`.
    fn general_timestamp(text: &str) -> Option<i64> {
        let t = humantime::parse_rfc3339_weak(text).ok()?;
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        let ms = i64::try_from(d.as_millis()).ok();
        assert_eq!(parse_any_timestamp("ts", text).ok(), ms, "{text}");
        ms
    }

    proptest! {
        #[test]
        fn common_timestamps_read_as_humantime_reads_them(
            y in 1900u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62,
            s in 0u32..62, ms in 0u32..1000, noise in 0usize..40, c in "[0-9:.TZ+ a-]",
        ) {
            // Every field's range and just past it, leap days and leap seconds, and now and
            // then one byte of the text replaced by another.
            let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z");
            if noise < text.len() {
                text.replace_range(noise..noise + 1, &c);
            }
            let fast = millis_of_common_timestamp(&text);
            if let Some(ms) = fast {
                prop_assert_eq!(Some(ms), general_timestamp(&text), "{}", &text);
            }
            if text.len() == 24 && general_timestamp(&text).is_some() && text.as_bytes()[10] == b'T' && text.ends_with('Z') && text.as_bytes()[19] == b'.' {
                // What humantime takes in the common shape, the fast path takes too.
                prop_assert!(fast.is_some(), "{}", &text);
            }
            prop_assert_eq!(
                parse_timestamp("ts", &text).ok(),
                general_timestamp(&text),
                "{}", &text
            );
        }
    }

    #[test]
    fn common_timestamps_at_the_edges() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2026-11-29T23:59:60.999Z",
            "2024-02-29T12:00:00.001Z",
            "2023-02-29T12:00:00.001Z",
            "2000-02-29T00:00:00.000Z",
            "1900-02-28T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
            "1969-12-31T23:59:59.999Z",
            "2026-13-01T00:00:00.000Z",
            "2026-00-01T00:00:00.000Z",
            "2026-01-00T00:00:00.000Z",
            "2026-11-29 00:00:00.000Z",
            "2026-11-29T00:00:00.00Z",
            "2026-11-29T00:00:00,000Z",
            "2026-11-29T00:00:0é.00Z",
        ] {
            assert_eq!(
                parse_timestamp("ts", text).ok(),
                general_timestamp(text),
                "{text}"
            );
            if let Some(ms) = millis_of_common_timestamp(text) {
                assert_eq!(Some(ms), general_timestamp(text), "{text}");
            }
        }
        assert_eq!(
            millis_of_common_timestamp("2026-11-29T01:02:03.456Z"),
            general_timestamp("2026-11-29T01:02:03.456Z")
        );
        assert!(millis_of_common_timestamp("2026-11-29T01:02:03.456Z").is_some());
    }

    fn schema() -> ModelSchema {
        ModelSchema {
            intersections: Vec::new(),
            name: "credit".into(),
            version: "1".into(),
            task: Task::Binary,
            classes: vec![],
            positive_class: None,
            features: vec![
                FeatureSpec {
                    name: "income".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureSpec {
                    name: "region".into(),
                    kind: FeatureKind::Categorical,
                },
            ],
            attributes: vec![AttributeSpec {
                min_group_samples: None,
                name: "gender".into(),
                groups: vec!["F".into(), "M".into()],
                reference_group: Some("M".into()),
            }],
        }
        .validated()
        .unwrap()
    }

    fn raw(json: &str) -> RawEvent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_design_example_validates() {
        let e = schema()
            .validate(
                raw(r#"{"id": "req-8f2c", "ts": "2026-11-29T10:15:02.120Z",
                 "features": {"income": 52000.0, "region": "north"},
                 "attributes": {"gender": "F"},
                 "prediction": {"label": 1, "score": 0.83}, "label": 1, "latency_ms": 12.4}"#),
                0,
            )
            .unwrap();
        assert_eq!(e.id.as_deref(), Some("req-8f2c"));
        assert_eq!(e.ts_ms, 1_795_947_302_120);
        assert_eq!(e.features[0], FeatureValue::Numeric(52000.0));
        assert_eq!(e.groups, vec![0]);
        assert_eq!(
            e.prediction,
            Prediction::Class {
                class: 1,
                score: Some(0.83)
            }
        );
        assert_eq!(e.label, Some(Target::Class(1)));
    }

    #[test]
    fn numbers_that_would_overflow_a_summary_are_refused_alone() {
        let s = schema();
        for x in ["1e200", "1.7976931348623157e308", "-1e101"] {
            let e = s
                .validate(
                    raw(&format!(
                        r#"{{"features": {{"income": {x}}}, "prediction": {{"label": 1}}}}"#
                    )),
                    0,
                )
                .unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.reason),
                ("features.income", RejectReason::InvalidNumber)
            );
        }
        let ok = s
            .validate(
                raw(r#"{"features": {"income": 1e100}, "prediction": {"label": 1}, "latency_ms": 1e99}"#),
                0,
            )
            .unwrap();
        assert_eq!(ok.features[0], FeatureValue::Numeric(1e100));
        assert_eq!(
            parse_number("x", "1e300").unwrap_err().reason,
            RejectReason::InvalidNumber
        );
    }

    #[test]
    fn rejections_name_field_and_reason() {
        let s = schema();
        let cases = [
            (
                r#"{"features": {"zip": 1}, "prediction": {"label": 1}}"#,
                "features.zip",
                RejectReason::UnknownFeature,
            ),
            (
                r#"{"features": {"income": "x"}, "prediction": {"label": 1}}"#,
                "features.income",
                RejectReason::WrongType,
            ),
            (
                r#"{"prediction": {"label": 7}}"#,
                "prediction.label",
                RejectReason::UnknownClass,
            ),
            (
                r#"{"prediction": {"label": 1, "score": 1.5}}"#,
                "prediction.score",
                RejectReason::InvalidNumber,
            ),
            (
                r#"{"ts": "yesterday", "prediction": {"label": 1}}"#,
                "ts",
                RejectReason::InvalidTimestamp,
            ),
            (r#"{}"#, "prediction", RejectReason::MissingField),
            (
                r#"{"prediction": {"label": 1}, "latency_ms": -3}"#,
                "latency_ms",
                RejectReason::InvalidNumber,
            ),
        ];
        for (json, field, reason) in cases {
            let e = s.validate(raw(json), 0).unwrap_err();
            assert_eq!((e.field.as_str(), e.reason), (field, reason), "{json}");
        }
    }

    #[test]
    fn undeclared_group_counts_as_other_and_missing_is_missing() {
        let e = schema()
            .validate(
                raw(r#"{"features": {"income": null}, "attributes": {"gender": "X"}, "prediction": {"label": "0"}}"#),
                5,
            )
            .unwrap();
        assert_eq!(e.groups, vec![2]);
        assert_eq!(
            e.features,
            vec![FeatureValue::Missing, FeatureValue::Missing]
        );
        assert_eq!(e.ts_ms, 5);
    }
}
