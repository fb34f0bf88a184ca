//! Reading datasets (CSV or NDJSON) into validated events, one row at a time.
//!
//! Rows stream through a callback so memory does not grow with the file; the first bad row
//! stops the read with an error naming the file, the line and the field. CSV is read through a
//! column plan computed once from the header, so a row costs a few parses and no allocation
//! beyond its categorical values.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use aims_core::event::{parse_number, parse_timestamp, EventError, RawEvent, RejectReason};
use aims_core::schema::{FeatureKind, ModelSchema, Task};
use aims_core::{Event, FeatureValue, Prediction};
use indicatif::{ProgressBar, ProgressStyle};
use thiserror::Error;

use crate::config::ColumnsConfig;

/// A dataset that cannot be read, naming where.
#[derive(Debug, Error)]
pub enum DatasetError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The CSV header lacks a column the schema needs.
    #[error("{path}: line 1: column {column:?} ({purpose}) is not in the header")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column name.
        column: String,
        /// What it was for.
        purpose: String,
    },
    /// A row is malformed or fails validation.
    #[error("{path}: line {line}: {source}")]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The field and the reason.
        source: EventError,
    },
}

/// The dataset formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON event per line, in the agent's event shape.
    Ndjson,
}

impl Format {
    /// The format of `path`: `.ndjson` / `.jsonl` / `.json` are NDJSON, anything else CSV.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("ndjson" | "jsonl" | "json") => Format::Ndjson,
            _ => Format::Csv,
        }
    }
}

fn progress(len: u64) -> ProgressBar {
    // indicatif draws only when stderr is a terminal, so pipes and CI logs stay clean.
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} ({eta})") {
        bar.set_style(style);
    }
    bar
}

/// Reads `path`, validating each row against `schema`, and hands every event to `visit`.
/// Returns the number of rows read.
pub fn read(
    path: &Path,
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    mut visit: impl FnMut(&Event),
) -> Result<u64, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(len);
    bar.set_message(path.display().to_string());
    let reader = bar.wrap_read(file);
    let rows = match Format::of(path) {
        Format::Csv => read_csv(path, reader, schema, columns, &mut visit),
        Format::Ndjson => read_ndjson(path, reader, schema, &mut visit),
    };
    bar.finish_and_clear();
    rows
}

fn read_ndjson(
    path: &Path,
    reader: impl Read,
    schema: &ModelSchema,
    visit: &mut impl FnMut(&Event),
) -> Result<u64, DatasetError> {
    let mut rows = 0;
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|source| DatasetError::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let row_error = |source| DatasetError::Row {
            path: path.to_owned(),
            line: i as u64 + 1,
            source,
        };
        let raw: RawEvent = serde_json::from_str(&line).map_err(|e| {
            row_error(EventError::new("line", RejectReason::InvalidJson, e.to_string()))
        })?;
        let event = schema.validate(raw, 0).map_err(row_error)?;
        visit(&event);
        rows += 1;
    }
    Ok(rows)
}

/// Where each event field comes from in a CSV row.
struct Plan {
    features: Vec<(usize, FeatureKind, String)>,
    attributes: Vec<usize>,
    id: Option<usize>,
    ts: Option<usize>,
    prediction: usize,
    score: Option<usize>,
    label: Option<usize>,
    latency: Option<usize>,
}

impl Plan {
    fn new(
        path: &Path,
        header: &csv::StringRecord,
        schema: &ModelSchema,
        columns: &ColumnsConfig,
    ) -> Result<Plan, DatasetError> {
        let find = |name: &str| header.iter().position(|h| h.trim() == name);
        let need = |name: &str, purpose: String| {
            find(name).ok_or_else(|| DatasetError::MissingColumn {
                path: path.to_owned(),
                column: name.to_owned(),
                purpose,
            })
        };
        let features = schema
            .features
            .iter()
            .map(|f| Ok((need(&f.name, format!("feature {}", f.name))?, f.kind, f.name.clone())))
            .collect::<Result<_, DatasetError>>()?;
        let attributes = schema
            .attributes
            .iter()
            .map(|a| need(&a.name, format!("attribute {}", a.name)))
            .collect::<Result<_, _>>()?;
        Ok(Plan {
            features,
            attributes,
            id: find(&columns.id),
            ts: find(&columns.ts),
            prediction: need(&columns.prediction, "prediction".to_owned())?,
            score: find(&columns.score),
            label: find(&columns.label),
            latency: find(&columns.latency_ms),
        })
    }

    fn event(&self, row: &csv::StringRecord, schema: &ModelSchema) -> Result<Event, EventError> {
        let cell = |i: usize| row.get(i).map(str::trim).filter(|s| !s.is_empty());
        let opt = |i: Option<usize>| i.and_then(cell);
        let mut features = Vec::with_capacity(self.features.len());
        for (i, kind, name) in &self.features {
            features.push(match (cell(*i), kind) {
                (None, _) => FeatureValue::Missing,
                (Some(s), FeatureKind::Numeric) => {
                    FeatureValue::Numeric(parse_number(&format!("features.{name}"), s)?)
                }
                (Some(s), FeatureKind::Categorical) => FeatureValue::Categorical(s.to_owned()),
            });
        }
        let groups = self
            .attributes
            .iter()
            .enumerate()
            .map(|(a, &i)| match cell(i) {
                Some(v) => schema.group_of(a, v),
                None => schema.attributes[a].groups.len() as u16,
            })
            .collect();
        let prediction_text = cell(self.prediction).ok_or_else(|| {
            EventError::new("prediction", RejectReason::MissingField, "the prediction cell is empty")
        })?;
        let prediction = if schema.task == Task::Regression {
            Prediction::Value(parse_number("prediction.value", prediction_text)?)
        } else {
            let class = schema.parse_class("prediction.label", prediction_text)?;
            let score = match opt(self.score) {
                Some(s) => Some(schema.check_score("prediction.score", parse_number("prediction.score", s)?)?),
                None => None,
            };
            Prediction::Class { class, score }
        };
        let label = match opt(self.label) {
            Some(s) => Some(schema.parse_target_text("label", s)?),
            None => None,
        };
        let latency_ms = match opt(self.latency) {
            Some(s) => {
                let x = parse_number("latency_ms", s)?;
                if x < 0.0 {
                    return Err(EventError::new("latency_ms", RejectReason::InvalidNumber, "a latency cannot be negative"));
                }
                Some(x)
            }
            None => None,
        };
        Ok(Event {
            id: opt(self.id).map(str::to_owned),
            ts_ms: match opt(self.ts) {
                Some(s) => parse_timestamp("ts", s)?,
                None => 0,
            },
            features,
            groups,
            prediction,
            label,
            latency_ms,
        })
    }
}

fn read_csv(
    path: &Path,
    reader: impl Read,
    schema: &ModelSchema,
    columns: &ColumnsConfig,
    visit: &mut impl FnMut(&Event),
) -> Result<u64, DatasetError> {
    let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
    let row_error = |line: u64, source| DatasetError::Row {
        path: path.to_owned(),
        line,
        source,
    };
    let header = csv
        .headers()
        .map_err(|e| row_error(1, EventError::new("header", RejectReason::Malformed, e.to_string())))?
        .clone();
    let plan = Plan::new(path, &header, schema, columns)?;
    let mut row = csv::StringRecord::new();
    let mut rows = 0;
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(row_error(line, EventError::new("row", RejectReason::Malformed, e.to_string())))
            }
        }
        let event = plan.event(&row, schema).map_err(|e| row_error(line, e))?;
        visit(&event);
        rows += 1;
    }
    Ok(rows)
}
