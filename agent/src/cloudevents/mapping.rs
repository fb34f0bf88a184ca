//! The mapping from inference bodies onto the model schema, compiled once from the
//! `[cloudevents]` section and checked against the schema.
//!
//! Values are judged as `ModelSchema::validate` judges an event's JSON: numeric features take
//! finite numbers, categorical features and attributes take strings or numbers (booleans as
//! `1` / `0`), classes go through `parse_class` and scores through `check_score`. The one
//! addition is that integral floats in a label output count as integers, since many servers
//! return class indices as FP64.

use std::collections::BTreeMap;

use aims_core::event::{EventError, FeatureValue, Prediction, RejectReason};
use aims_core::schema::{FeatureKind, ModelSchema, Task};

use super::config::{CloudEventsConfig, VersionSource};
use super::envelope::CloudEvent;
use super::tensor::{refusal, Cell, Column, Frame, Protocol, Refusal};

/// A mapping that does not fit the schema, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cloudevents.{field}: {message}")]
pub struct MappingError {
    /// Key under `[cloudevents]`.
    pub field: String,
    /// In words.
    pub message: String,
}

fn mapping_error(field: impl Into<String>, message: impl Into<String>) -> MappingError {
    MappingError {
        field: field.into(),
        message: message.into(),
    }
}

/// What a request column or tensor feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Feature(usize),
    Attribute(usize),
    Skip,
}

#[derive(Debug, Clone)]
enum Meta {
    Header(String),
    Extension(String),
}

#[derive(Debug, Clone)]
enum Output {
    /// Classification: label and / or score outputs.
    Class {
        label: Option<String>,
        score: Option<String>,
        threshold: Option<f64>,
        argmax: bool,
        /// Schema class index of each model class position.
        names: Vec<u32>,
        /// Position of the positive class among `names`.
        positive: Option<usize>,
    },
    /// Regression.
    Value(String),
}

/// The compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub(crate) path: String,
    input: Option<String>,
    columns: Vec<Slot>,
    /// Schema names read from a tensor or key of their own: (column, slot, named explicitly).
    named: Vec<(String, Slot, bool)>,
    meta: Vec<(usize, Meta)>,
    output: Output,
    version: VersionSource,
    expected_version: String,
    pub(crate) join: super::config::JoinConfig,
}

/// One request row's inputs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RowIn {
    /// One value per schema feature.
    pub features: Vec<FeatureValue>,
    /// One group per schema attribute.
    pub groups: Vec<u16>,
}

/// A row that failed, kept as its reason so the join can count it once.
pub type RowResult<T> = Result<T, RejectReason>;

/// A row's prediction and, for a multiclass model, its per-class probabilities in schema order.
pub type ScoredPrediction = (Prediction, Option<Vec<f64>>);

fn slot_of(schema: &ModelSchema, name: &str) -> Option<Slot> {
    schema
        .feature_index(name)
        .map(Slot::Feature)
        .or_else(|| schema.attribute_index(name).map(Slot::Attribute))
}

impl Mapping {
    /// Checks `cfg` against `schema`.
    pub fn compile(cfg: &CloudEventsConfig, schema: &ModelSchema) -> Result<Self, MappingError> {
        if !cfg.path.starts_with('/') {
            return Err(mapping_error("path", "must start with /"));
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut claim = |name: &str, by: String| -> Result<(), MappingError> {
            match seen.insert(name.to_owned(), by.clone()) {
                Some(first) => Err(mapping_error(
                    by,
                    format!("{name:?} is already mapped by {first}"),
                )),
                None => Ok(()),
            }
        };
        let mut columns = Vec::with_capacity(cfg.columns.len());
        for (i, name) in cfg.columns.iter().enumerate() {
            if name.is_empty() {
                columns.push(Slot::Skip);
                continue;
            }
            let slot = slot_of(schema, name).ok_or_else(|| {
                mapping_error(
                    format!("columns[{i}]"),
                    format!("{name:?} is neither a feature nor an attribute of the model schema"),
                )
            })?;
            claim(name, format!("columns[{i}]"))?;
            columns.push(slot);
        }
        if cfg.input.is_some() && cfg.columns.is_empty() {
            return Err(mapping_error(
                "input",
                "names the tensor of `columns`, which is empty",
            ));
        }
        let mut meta = Vec::new();
        for (name, src) in &cfg.attributes {
            let field = format!("attributes.{name}");
            let Some(i) = schema.attribute_index(name) else {
                return Err(mapping_error(field, "not an attribute of the model schema"));
            };
            let m = match (&src.header, &src.extension) {
                (Some(h), None) if !h.is_empty() => Meta::Header(h.to_ascii_lowercase()),
                (None, Some(e)) if !e.is_empty() => Meta::Extension(e.to_ascii_lowercase()),
                _ => {
                    return Err(mapping_error(
                        field,
                        "set exactly one of header or extension",
                    ))
                }
            };
            claim(name, field)?;
            meta.push((i, m));
        }
        for (name, tensor) in &cfg.inputs {
            let field = format!("inputs.{name}");
            if slot_of(schema, name).is_none() {
                return Err(mapping_error(
                    field,
                    "neither a feature nor an attribute of the model schema",
                ));
            }
            if tensor.is_empty() {
                return Err(mapping_error(field, "names no tensor or key"));
            }
            claim(name, field)?;
        }
        let mut named = Vec::new();
        let all = schema
            .features
            .iter()
            .map(|f| f.name.as_str())
            .chain(schema.attributes.iter().map(|a| a.name.as_str()));
        for name in all {
            if seen.get(name).is_some_and(|by| !by.starts_with("inputs.")) {
                continue;
            }
            let slot = slot_of(schema, name).expect("a schema name");
            match cfg.inputs.get(name) {
                Some(t) => named.push((t.clone(), slot, true)),
                None => named.push((name.to_owned(), slot, false)),
            }
        }
        let output = Self::compile_output(cfg, schema)?;
        Ok(Self {
            path: cfg.path.clone(),
            input: cfg.input.clone(),
            columns,
            named,
            meta,
            output,
            version: cfg.model_version,
            expected_version: schema.version.clone(),
            join: cfg.join.clone(),
        })
    }

    fn compile_output(
        cfg: &CloudEventsConfig,
        schema: &ModelSchema,
    ) -> Result<Output, MappingError> {
        let p = &cfg.prediction;
        if schema.task == Task::Regression {
            if p.label.is_some() || p.score.is_some() || p.threshold.is_some() || p.argmax {
                return Err(mapping_error(
                    "prediction",
                    "a regression model takes only prediction.value",
                ));
            }
            let v = p.value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                mapping_error(
                    "prediction.value",
                    "required: the output holding the predicted value",
                )
            })?;
            return Ok(Output::Value(v));
        }
        if p.value.is_some() {
            return Err(mapping_error(
                "prediction.value",
                "only for regression; use prediction.label or prediction.score",
            ));
        }
        if p.label.is_none() && p.score.is_none() {
            return Err(mapping_error(
                "prediction",
                "set prediction.label, prediction.score, or both",
            ));
        }
        if let Some(t) = p.threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(mapping_error("prediction.threshold", "must lie in [0, 1]"));
            }
            if schema.task != Task::Binary {
                return Err(mapping_error(
                    "prediction.threshold",
                    "a threshold labels binary models only; use argmax",
                ));
            }
        }
        if p.label.is_none() {
            match (p.threshold.is_some(), p.argmax) {
                (true, true) => {
                    return Err(mapping_error(
                        "prediction.argmax",
                        "set threshold or argmax, not both",
                    ))
                }
                (false, false) => return Err(mapping_error(
                    "prediction",
                    "without prediction.label, set threshold (a score) or argmax (probabilities)",
                )),
                _ => {}
            }
        } else if p.threshold.is_some() || p.argmax {
            return Err(mapping_error(
                "prediction.label",
                "threshold and argmax derive a label; they do not apply when a label output is named",
            ));
        }
        let names: Vec<String> = if p.class_names.is_empty() {
            schema.classes.clone()
        } else {
            p.class_names.clone()
        };
        let mut indices = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            let idx = schema.class_index(n).ok_or_else(|| {
                mapping_error(
                    format!("prediction.class_names[{i}]"),
                    format!("{n:?} is not one of the classes {:?}", schema.classes),
                )
            })?;
            indices.push(idx as u32);
        }
        let positive_idx = schema.positive_index().map(|i| i as u32);
        let positive = indices.iter().position(|i| Some(*i) == positive_idx);
        Ok(Output::Class {
            label: p.label.clone(),
            score: p.score.clone(),
            threshold: p.threshold,
            argmax: p.argmax,
            names: indices,
            positive,
        })
    }

    /// Checks the event's model version (when the mapping reads one); the error message names
    /// the version found.
    pub fn version_of(&self, event: &CloudEvent, frame: &Frame) -> Result<(), String> {
        let found = match self.version {
            VersionSource::Config => return Ok(()),
            VersionSource::Inferenceservicename => event.extensions.get("inferenceservicename"),
            VersionSource::ModelVersion => frame.model_version.as_ref(),
        };
        match found {
            Some(v) if *v != self.expected_version => Err(format!(
                "model version {v:?} is not this agent's {:?}",
                self.expected_version
            )),
            _ => Ok(()),
        }
    }

    fn input_column(&self, frame: &Frame) -> Result<usize, Refusal> {
        let member = match frame.protocol {
            Protocol::V1 => "instances",
            Protocol::V2 => "inputs",
            Protocol::Seldon => "data",
        };
        let name = match (&self.input, frame.protocol) {
            (_, Protocol::V1) => "instances",
            (_, Protocol::Seldon) => "data",
            (Some(n), Protocol::V2) => n.as_str(),
            (None, Protocol::V2) if frame.columns.len() == 1 => frame.columns[0].name.as_str(),
            (None, Protocol::V2) => {
                return Err(refusal(
                    "unknown_tensor",
                    "inputs",
                    format!(
                        "{} inputs; set cloudevents.input to the one holding the columns",
                        frame.columns.len()
                    ),
                ))
            }
        };
        let (index, field) = match frame.protocol {
            Protocol::V2 => (
                frame.columns.iter().position(|c| c.name == name),
                format!("{member}[{name}]"),
            ),
            _ => (
                frame.columns.first().filter(|c| c.name == name).map(|_| 0),
                member.to_owned(),
            ),
        };
        let index = index.ok_or_else(|| {
            refusal(
                "unknown_tensor",
                field.clone(),
                format!("no such input; the request has {:?}", names(frame)),
            )
        })?;
        let column = &frame.columns[index];
        if column.width != self.columns.len() {
            return Err(refusal(
                "shape_mismatch",
                format!("{field}.shape"),
                format!(
                    "{} columns per row, but cloudevents.columns names {}",
                    column.width,
                    self.columns.len()
                ),
            ));
        }
        Ok(index)
    }

    /// Reads a request body into rows. A body that does not fit the mapping is refused whole;
    /// a row with a bad value is refused alone, its error appended to `errors`.
    pub fn request_rows(
        &self,
        schema: &ModelSchema,
        event: &CloudEvent,
        frame: &mut Frame,
        errors: &mut Vec<EventError>,
    ) -> Result<Vec<RowResult<RowIn>>, Refusal> {
        let columns = if self.columns.is_empty() {
            None
        } else {
            Some(self.input_column(frame)?)
        };
        let mut named = Vec::with_capacity(self.named.len());
        for (name, slot, explicit) in &self.named {
            match frame.columns.iter().position(|c| c.name == *name) {
                Some(k) if frame.columns[k].width != 1 => {
                    return Err(refusal(
                        "shape_mismatch",
                        format!("inputs[{name}].shape"),
                        format!(
                            "one value per row expected, found {}",
                            frame.columns[k].width
                        ),
                    ))
                }
                Some(k) => named.push((k, *slot)),
                None if *explicit => {
                    return Err(refusal(
                        "unknown_tensor",
                        format!("inputs[{name}]"),
                        format!("no such input; the request has {:?}", names(frame)),
                    ))
                }
                None => {}
            }
        }
        let mut base_groups: Vec<u16> = schema
            .attributes
            .iter()
            .map(|a| a.groups.len() as u16)
            .collect();
        if !self.meta.is_empty() {
            let metadata = event
                .extensions
                .get("metadata")
                .and_then(|m| serde_json::from_str::<BTreeMap<String, Vec<String>>>(m).ok())
                .unwrap_or_default();
            for (i, m) in &self.meta {
                let value = match m {
                    Meta::Extension(e) => event.extensions.get(e).cloned(),
                    Meta::Header(h) => metadata
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(h))
                        .and_then(|(_, v)| v.first().cloned()),
                };
                if let Some(v) = value {
                    base_groups[*i] = schema.group_of(*i, &v);
                }
            }
        }
        let member = match frame.protocol {
            Protocol::V1 => "instances",
            Protocol::V2 => "inputs",
            Protocol::Seldon => "data",
        };
        let n_rows = frame.rows;
        let cols = &mut frame.columns;
        let mut rows = Vec::with_capacity(n_rows);
        for r in 0..n_rows {
            let mut row = RowIn {
                features: vec![FeatureValue::Missing; schema.features.len()],
                groups: base_groups.clone(),
            };
            let mut result = Ok(());
            if let Some(k) = columns {
                let c = &mut cols[k];
                let width = c.width;
                for (j, slot) in self.columns.iter().enumerate() {
                    let cell = &mut c.cells[r * width + j];
                    let name = &c.name;
                    result = fill(schema, &mut row, *slot, cell, &|| {
                        format!("{member}[{name}][{r}][{j}]")
                    });
                    if result.is_err() {
                        break;
                    }
                }
            }
            if result.is_ok() {
                for (k, slot) in &named {
                    let c = &mut cols[*k];
                    let name = &c.name;
                    result = fill(schema, &mut row, *slot, &mut c.cells[r], &|| {
                        format!("{member}[{name}][{r}]")
                    });
                    if result.is_err() {
                        break;
                    }
                }
            }
            match result {
                Ok(()) => rows.push(Ok(row)),
                Err(e) => {
                    rows.push(Err(e.reason));
                    errors.push(e);
                }
            }
        }
        Ok(rows)
    }

    /// Reads a response body into one prediction per row.
    pub fn response_rows(
        &self,
        schema: &ModelSchema,
        frame: &Frame,
        errors: &mut Vec<EventError>,
    ) -> Result<Vec<RowResult<Prediction>>, Refusal> {
        Ok(self
            .response_rows_scored(schema, frame, errors)?
            .into_iter()
            .map(|r| r.map(|(p, _)| p))
            .collect())
    }

    /// [`response_rows`](Self::response_rows), with each row's per-class probabilities in
    /// schema order when a multiclass model's score output holds one per schema class
    /// (`class_names` naming every class, in any order); they are checked like
    /// `prediction.scores` (`ModelSchema::check_class_scores`) and a bad row is refused alone.
    pub fn response_rows_scored(
        &self,
        schema: &ModelSchema,
        frame: &Frame,
        errors: &mut Vec<EventError>,
    ) -> Result<Vec<RowResult<ScoredPrediction>>, Refusal> {
        let member = match frame.protocol {
            Protocol::V1 => "predictions",
            Protocol::V2 => "outputs",
            Protocol::Seldon => "data",
        };
        let find = |name: &str| {
            frame.column(name).ok_or_else(|| {
                refusal(
                    "unknown_tensor",
                    format!("{member}[{name}]"),
                    format!("no such output; the response has {:?}", names(frame)),
                )
            })
        };
        let one_wide = |c: &Column| {
            if c.width == 1 {
                Ok(())
            } else {
                Err(refusal(
                    "shape_mismatch",
                    format!("{member}[{}].shape", c.name),
                    format!("one value per row expected, found {}", c.width),
                ))
            }
        };
        let mut rows = Vec::with_capacity(frame.rows);
        let mut push = |r: Result<ScoredPrediction, EventError>| match r {
            Ok(p) => rows.push(Ok(p)),
            Err(e) => {
                rows.push(Err(e.reason));
                errors.push(e);
            }
        };
        match &self.output {
            Output::Value(name) => {
                let c = find(name)?;
                one_wide(c)?;
                for r in 0..frame.rows {
                    let field = format!("{member}[{name}][{r}]");
                    push(number(&c.row(r)[0], &field).map(|v| (Prediction::Value(v), None)));
                }
            }
            Output::Class {
                label,
                score,
                threshold,
                argmax,
                names,
                positive,
            } => {
                let label_col = label.as_deref().map(find).transpose()?;
                if let Some(c) = label_col {
                    one_wide(c)?;
                }
                let score_col = score.as_deref().map(find).transpose()?;
                if let Some(c) = score_col {
                    if c.width != 1 && c.width != names.len() {
                        return Err(refusal(
                            "shape_mismatch",
                            format!("{member}[{}].shape", c.name),
                            format!(
                                "{} values per row: neither one score nor one probability per class ({})",
                                c.width,
                                names.len()
                            ),
                        ));
                    }
                    if c.width != 1 && label_col.is_none() && !argmax {
                        return Err(refusal(
                            "shape_mismatch",
                            format!("{member}[{}].shape", c.name),
                            "class probabilities need prediction.argmax to give a label",
                        ));
                    }
                    if c.width == 1 && label_col.is_none() && threshold.is_none() {
                        return Err(refusal(
                            "shape_mismatch",
                            format!("{member}[{}].shape", c.name),
                            "a single score needs prediction.threshold to give a label",
                        ));
                    }
                }
                for r in 0..frame.rows {
                    push(self.class_row(
                        schema, member, r, label_col, score_col, *threshold, names, *positive,
                    ));
                }
            }
        }
        Ok(rows)
    }

    #[allow(clippy::too_many_arguments)]
    fn class_row(
        &self,
        schema: &ModelSchema,
        member: &str,
        r: usize,
        label_col: Option<&Column>,
        score_col: Option<&Column>,
        threshold: Option<f64>,
        names: &[u32],
        positive: Option<usize>,
    ) -> Result<ScoredPrediction, EventError> {
        let mut class_scores = None;
        let mut class = None;
        if let Some(c) = label_col {
            let field = format!("{member}[{}][{r}]", c.name);
            class = Some(class_of(schema, &c.row(r)[0], &field, names)?);
        }
        let mut score = None;
        if let Some(c) = score_col {
            let field = format!("{member}[{}][{r}]", c.name);
            let values = c.row(r);
            if c.width == 1 {
                let s = schema.check_score(&field, number(&values[0], &field)?)?;
                score = Some(s);
                if class.is_none() {
                    let pos = schema.positive_index().unwrap_or(1) as u32;
                    let neg = (0..schema.classes.len() as u32)
                        .find(|i| *i != pos)
                        .unwrap_or(0);
                    class = Some(if s >= threshold.unwrap_or(0.5) {
                        pos
                    } else {
                        neg
                    });
                }
            } else {
                let mut probs = Vec::with_capacity(values.len());
                for (k, v) in values.iter().enumerate() {
                    let f = format!("{field}[{k}]");
                    probs.push(schema.check_score(&f, number(v, &f)?)?);
                }
                score = positive.map(|p| probs[p]);
                if schema.task == Task::Multiclass && names.len() == schema.classes.len() {
                    let mut ordered = vec![f64::NAN; names.len()];
                    for (&class, &p) in names.iter().zip(&probs) {
                        if let Some(slot) = ordered.get_mut(class as usize) {
                            *slot = p;
                        }
                    }
                    // A class named twice leaves another NaN: refused by the check.
                    schema.check_class_scores(&field, &ordered)?;
                    class_scores = Some(ordered);
                }
                if class.is_none() {
                    let best = probs
                        .iter()
                        .enumerate()
                        .fold(0, |b, (k, p)| if *p > probs[b] { k } else { b });
                    class = Some(names[best]);
                }
            }
        }
        let class = class.ok_or_else(|| {
            EventError::new(
                member,
                RejectReason::MissingField,
                "no label could be derived",
            )
        })?;
        Ok((Prediction::Class { class, score }, class_scores))
    }
}

fn names(frame: &Frame) -> Vec<&str> {
    frame.columns.iter().map(|c| c.name.as_str()).collect()
}

fn number(cell: &Cell, field: &str) -> Result<f64, EventError> {
    match cell {
        Cell::Str(s) if super::tensor::is_non_finite(s) => Err(EventError::new(
            field,
            RejectReason::InvalidNumber,
            "not a finite number",
        )),
        Cell::Int(_) | Cell::Uint(_) | Cell::Float(_) => {
            let x = cell.number().unwrap_or(f64::NAN);
            if x.is_finite() {
                Ok(x)
            } else {
                Err(EventError::new(
                    field,
                    RejectReason::InvalidNumber,
                    "not a finite number",
                ))
            }
        }
        other => Err(EventError::new(
            field,
            RejectReason::WrongType,
            format!("expected a number, got {}", other.kind()),
        )),
    }
}

/// Puts one cell into its place in `row`; strings are moved out of the cell, not copied.
fn fill(
    schema: &ModelSchema,
    row: &mut RowIn,
    slot: Slot,
    cell: &mut Cell,
    at: &dyn Fn() -> String,
) -> Result<(), EventError> {
    match slot {
        Slot::Feature(i) => row.features[i] = feature_value(schema, i, cell, at)?,
        Slot::Attribute(i) => match cell {
            Cell::Null => {}
            Cell::Str(s) => row.groups[i] = schema.group_of(i, s),
            other => row.groups[i] = schema.group_of(i, &text(other, at)?),
        },
        Slot::Skip => {}
    }
    Ok(())
}

/// The string form of a scalar, as `label_text` in aims-core gives it.
fn text(cell: &Cell, field: &dyn Fn() -> String) -> Result<String, EventError> {
    match cell {
        Cell::Str(s) => Ok(s.clone()),
        Cell::Int(i) => Ok(i.to_string()),
        Cell::Uint(u) => Ok(u.to_string()),
        Cell::Float(f) => Ok(serde_json::Number::from_f64(*f)
            .map(|n| n.to_string())
            .unwrap_or_else(|| f.to_string())),
        Cell::Bool(b) => Ok(if *b { "1" } else { "0" }.to_owned()),
        Cell::Null => Err(EventError::new(
            field(),
            RejectReason::WrongType,
            "expected a string or a number, got null",
        )),
    }
}

fn feature_value(
    schema: &ModelSchema,
    i: usize,
    cell: &mut Cell,
    at: &dyn Fn() -> String,
) -> Result<FeatureValue, EventError> {
    let spec = &schema.features[i];
    let field = || format!("{} ({})", at(), spec.name);
    match (spec.kind, cell) {
        (_, Cell::Null) => Ok(FeatureValue::Missing),
        (FeatureKind::Numeric, c @ (Cell::Int(_) | Cell::Uint(_) | Cell::Float(_))) => {
            match c.number() {
                Some(x) if x.is_finite() => Ok(FeatureValue::Numeric(x)),
                _ => Err(EventError::new(
                    field(),
                    RejectReason::InvalidNumber,
                    "not a finite number",
                )),
            }
        }
        (FeatureKind::Numeric, c) => number(c, &field()).map(FeatureValue::Numeric),
        (FeatureKind::Categorical, Cell::Str(s)) => {
            Ok(FeatureValue::Categorical(std::mem::take(s)))
        }
        (FeatureKind::Categorical, c) => text(c, &field).map(FeatureValue::Categorical),
    }
}

fn class_of(
    schema: &ModelSchema,
    cell: &Cell,
    field: &str,
    names: &[u32],
) -> Result<u32, EventError> {
    let index = match cell {
        Cell::Int(i) => Some(*i),
        Cell::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        Cell::Bool(b) => Some(i64::from(*b)),
        _ => None,
    };
    match index {
        Some(k) => usize::try_from(k)
            .ok()
            .and_then(|k| names.get(k).copied())
            .ok_or_else(|| {
                EventError::new(
                    field,
                    RejectReason::UnknownClass,
                    format!("class index {k} is outside the {} class names", names.len()),
                )
            }),
        None => schema.parse_class(field, &text(cell, &|| field.to_owned())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::tensor::{parse_bytes, Half};
    use std::collections::BTreeMap as Map;

    fn schema() -> ModelSchema {
        let s: ModelSchema = serde_json::from_value(serde_json::json!({
            "name": "m", "task": "binary",
            "features": [{"name": "income", "kind": "numeric"}, {"name": "region", "kind": "categorical"}],
            "attributes": [{"name": "gender", "groups": ["F", "M"]}]
        }))
        .unwrap();
        s.validated().unwrap()
    }

    fn cfg(toml_text: &str) -> CloudEventsConfig {
        toml_like(toml_text)
    }

    /// The section as `config` reads it from TOML.
    fn toml_like(text: &str) -> CloudEventsConfig {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    fn event(ext: &[(&str, &str)]) -> CloudEvent {
        CloudEvent {
            id: "r".into(),
            kind: "k".into(),
            time: None,
            extensions: ext
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Map<_, _>>(),
            data: None,
        }
    }

    #[test]
    fn compile_names_the_bad_key() {
        let s = schema();
        let err = |t: &str| Mapping::compile(&cfg(t), &s).unwrap_err().field;
        assert_eq!(
            err("columns = [\"income\", \"salary\"]\nprediction = {label = \"p\"}"),
            "columns[1]"
        );
        assert_eq!(
            err("columns = [\"income\", \"income\"]\nprediction = {label = \"p\"}"),
            "columns[1]"
        );
        assert_eq!(err("prediction = {}"), "prediction");
        assert_eq!(err("prediction = {score = \"p\"}"), "prediction");
        assert_eq!(
            err("prediction = {score = \"p\", threshold = 2.0}"),
            "prediction.threshold"
        );
        assert_eq!(
            err("prediction = {label = \"p\", class_names = [\"0\", \"2\"]}"),
            "prediction.class_names[1]"
        );
        assert_eq!(
            err("prediction = {label = \"p\"}\nattributes = {gender = {}}"),
            "attributes.gender"
        );
        assert_eq!(
            err("prediction = {label = \"p\"}\nattributes = {age = {header = \"x\"}}"),
            "attributes.age"
        );
        assert_eq!(
            err("prediction = {label = \"p\"}\ninputs = {salary = \"s\"}"),
            "inputs.salary"
        );
        assert_eq!(err("prediction = {value = \"p\"}"), "prediction.value");
        assert!(Mapping::compile(&cfg("columns = [\"income\", \"\", \"region\"]\nprediction = {score = \"p\", threshold = 0.5}"), &s).is_ok());
    }

    #[test]
    fn v2_rows_with_columns_headers_and_extensions() {
        let s = schema();
        let m = Mapping::compile(
            &cfg(r#"
input = "x"
columns = ["income", "", "region"]
attributes = { gender = { header = "X-Gender" } }
[prediction]
score = "proba"
argmax = true
"#),
            &s,
        )
        .unwrap();
        let req = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"BYTES","data":[[1.5,"a","north"],["bad","b","south"]]}]}"#,
            Half::Request,
        );
        // BYTES with numbers is a datatype mismatch: the whole body is refused.
        assert_eq!(req.unwrap_err().reason, "datatype_mismatch");
        let mut req = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP64","data":[[1.5,0,7],[null,0,8]]}]}"#,
            Half::Request,
        )
        .unwrap();
        let ev = event(&[("metadata", r#"{"X-Gender":["M"]}"#)]);
        let mut errors = Vec::new();
        let rows = m.request_rows(&s, &ev, &mut req, &mut errors).unwrap();
        assert!(errors.is_empty());
        let r0 = rows[0].as_ref().unwrap();
        assert_eq!(
            r0.features,
            vec![
                FeatureValue::Numeric(1.5),
                FeatureValue::Categorical("7".into())
            ]
        );
        assert_eq!(r0.groups, vec![1]);
        assert_eq!(rows[1].as_ref().unwrap().features[0], FeatureValue::Missing);

        let resp = parse_bytes(
            br#"{"model_name":"m","outputs":[{"name":"proba","shape":[2,2],"datatype":"FP32","data":[0.2,0.8,0.9,0.1]}]}"#,
            Half::Response,
        )
        .unwrap();
        let preds = m.response_rows(&s, &resp, &mut errors).unwrap();
        assert_eq!(
            preds[0],
            Ok(Prediction::Class {
                class: 1,
                score: Some(0.8)
            })
        );
        assert_eq!(
            preds[1],
            Ok(Prediction::Class {
                class: 0,
                score: Some(0.1)
            })
        );

        let mut wrong = parse_bytes(
            br#"{"inputs":[{"name":"y","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}"#,
            Half::Request,
        )
        .unwrap();
        let e = m
            .request_rows(&s, &ev, &mut wrong, &mut errors)
            .unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_str()),
            ("unknown_tensor", "inputs[x]")
        );
        let mut narrow = parse_bytes(
            br#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1,2]}]}"#,
            Half::Request,
        )
        .unwrap();
        let e = m
            .request_rows(&s, &ev, &mut narrow, &mut errors)
            .unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_str()),
            ("shape_mismatch", "inputs[x].shape")
        );
        let missing_output = parse_bytes(
            br#"{"outputs":[{"name":"label","shape":[1],"datatype":"INT64","data":[1]}]}"#,
            Half::Response,
        )
        .unwrap();
        let e = m
            .response_rows(&s, &missing_output, &mut errors)
            .unwrap_err();
        assert_eq!(
            (e.reason, e.field.as_str()),
            ("unknown_tensor", "outputs[proba]")
        );
    }

    /// A multiclass model's probability tensor, in the order `class_names` gives, reaches the
    /// summary in schema order; a row whose probabilities are not a distribution is refused
    /// alone, naming its cell.
    #[test]
    fn multiclass_probabilities_in_schema_order_and_bad_rows_alone() {
        let s: ModelSchema = serde_json::from_value(serde_json::json!({
            "name": "m", "task": "multiclass", "classes": ["low", "mid", "high"],
            "features": [{"name": "income", "kind": "numeric"}],
            "attributes": []
        }))
        .unwrap();
        let s = s.validated().unwrap();
        let m = Mapping::compile(
            &cfg("[prediction]\nscore = \"proba\"\nargmax = true\nclass_names = [\"high\", \"low\", \"mid\"]\n"),
            &s,
        )
        .unwrap();
        let resp = parse_bytes(
            br#"{"outputs":[{"name":"proba","shape":[3,3],"datatype":"FP64","data":[0.7,0.2,0.1, 0.5,0.5,0.5, 0.1,0.3,0.6]}]}"#,
            Half::Response,
        )
        .unwrap();
        let mut errors = Vec::new();
        let rows = m.response_rows_scored(&s, &resp, &mut errors).unwrap();
        let (prediction, scores) = rows[0].clone().unwrap();
        assert!(matches!(prediction, Prediction::Class { class: 2, .. }));
        assert_eq!(scores, Some(vec![0.2, 0.1, 0.7]), "low, mid, high");
        assert_eq!(rows[1], Err(RejectReason::InvalidNumber));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "outputs[proba][1]");
        let (prediction, scores) = rows[2].clone().unwrap();
        assert!(matches!(prediction, Prediction::Class { class: 1, .. }));
        assert_eq!(scores, Some(vec![0.3, 0.6, 0.1]));
        // The plain form drops the probabilities, same rows.
        assert_eq!(m.response_rows(&s, &resp, &mut errors).unwrap().len(), 3);
    }

    #[test]
    fn v1_objects_thresholds_and_bad_rows() {
        let s = schema();
        let m = Mapping::compile(
            &cfg("attributes = { gender = { extension = \"gender\" } }\n[prediction]\nscore = \"predictions\"\nthreshold = 0.7\n"),
            &s,
        )
        .unwrap();
        let mut req = parse_bytes(
            br#"{"instances":[{"income":10,"region":"n","other":1},{"income":"x"}]}"#,
            Half::Request,
        )
        .unwrap();
        let mut errors = Vec::new();
        let rows = m
            .request_rows(&s, &event(&[("gender", "F")]), &mut req, &mut errors)
            .unwrap();
        assert_eq!(rows[0].as_ref().unwrap().groups, vec![0]);
        assert_eq!(rows[1], Err(RejectReason::WrongType));
        assert!(
            errors[0].field.contains("instances[income][1]"),
            "{:?}",
            errors[0]
        );
        let resp = parse_bytes(br#"{"predictions":[0.69,0.7]}"#, Half::Response).unwrap();
        let preds = m.response_rows(&s, &resp, &mut errors).unwrap();
        assert_eq!(
            preds[0],
            Ok(Prediction::Class {
                class: 0,
                score: Some(0.69)
            })
        );
        assert_eq!(
            preds[1],
            Ok(Prediction::Class {
                class: 1,
                score: Some(0.7)
            })
        );
        let resp = parse_bytes(br#"{"predictions":[1.5]}"#, Half::Response).unwrap();
        assert_eq!(
            m.response_rows(&s, &resp, &mut errors).unwrap()[0],
            Err(RejectReason::InvalidNumber)
        );

        let labels = Mapping::compile(
            &cfg("[prediction]\nlabel = \"predictions\"\nclass_names = [\"1\", \"0\"]\n"),
            &s,
        )
        .unwrap();
        let resp = parse_bytes(br#"{"predictions":[0, 1.0, "1", 2]}"#, Half::Response).unwrap();
        let preds = labels.response_rows(&s, &resp, &mut errors).unwrap();
        let classes: Vec<_> = preds
            .iter()
            .map(|p| {
                p.map(|p| match p {
                    Prediction::Class { class, .. } => class,
                    _ => 99,
                })
            })
            .collect();
        assert_eq!(
            classes,
            vec![Ok(1), Ok(0), Ok(1), Err(RejectReason::UnknownClass)]
        );
    }

    #[test]
    fn version_checks_read_the_configured_source() {
        let s = schema();
        let m = Mapping::compile(
            &cfg("model_version = \"model_version\"\nprediction = {label = \"p\"}"),
            &s,
        )
        .unwrap();
        let resp = parse_bytes(
            br#"{"model_version":"7","outputs":[{"name":"p","shape":[1],"datatype":"INT64","data":[1]}]}"#,
            Half::Response,
        )
        .unwrap();
        assert!(m
            .version_of(&event(&[]), &resp)
            .unwrap_err()
            .contains("\"7\""));
        let m = Mapping::compile(
            &cfg("model_version = \"inferenceservicename\"\nprediction = {label = \"p\"}"),
            &s,
        )
        .unwrap();
        assert!(m
            .version_of(&event(&[("inferenceservicename", "0")]), &resp)
            .is_ok());
        assert!(m
            .version_of(&event(&[("inferenceservicename", "v9")]), &resp)
            .is_err());
    }
}
