//! Python exceptions with the agent's HTTP error fields.
//!
//! `InputError` (a `ValueError`) carries `field`, `reason` and `message` exactly as an item of
//! the agent's `/v1/events` error reply, plus `column` (the table column or CSV column) and
//! `row` (0-based row of a table) or `line` (1-based line of a file) where one row is at fault.
//! `ConfigError` (a `ValueError`) is a configuration, profile or objectives file that cannot be
//! used; its message names the key or the file.

use aims_agent::config::ColumnsConfig;
use aims_agent::dataset::DatasetError;
use aims_core::event::EventError;
use pyo3::prelude::*;

use crate::frame::FrameError;

pyo3::create_exception!(
    aims_monitor,
    InputError,
    pyo3::exceptions::PyValueError,
    "Bad input data: a missing or mistyped column, or a row that fails validation.\n\n\
     Attributes: field, reason, message (as in the agent's HTTP error replies), column, row \
     (0-based, tables) and line (1-based, files); each is None where it does not apply."
);
pyo3::create_exception!(
    aims_monitor,
    ConfigError,
    pyo3::exceptions::PyValueError,
    "A configuration, reference profile or objectives file that cannot be used; the message \
     names the key or the file."
);

/// Where an error sits, as Python sees it.
#[derive(Default)]
pub struct Details<'a> {
    pub message: String,
    pub field: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub column: Option<&'a str>,
    pub row: Option<u64>,
    pub line: Option<u64>,
}

/// An `InputError` with its attributes set.
pub fn raise_input(d: Details<'_>) -> PyErr {
    Python::with_gil(|py| {
        let err = InputError::new_err(d.message.clone());
        let v = err.value(py);
        let set = |k: &str, o: PyObject| {
            let _ = v.setattr(k, o);
        };
        set(
            "field",
            d.field
                .into_pyobject(py)
                .map_or(py.None(), |o| o.into_any().unbind()),
        );
        set(
            "reason",
            d.reason
                .into_pyobject(py)
                .map_or(py.None(), |o| o.into_any().unbind()),
        );
        set(
            "message",
            d.detail
                .unwrap_or(&d.message)
                .into_pyobject(py)
                .map_or(py.None(), |o| o.into_any().unbind()),
        );
        set(
            "column",
            d.column
                .into_pyobject(py)
                .map_or(py.None(), |o| o.into_any().unbind()),
        );
        set(
            "row",
            d.row
                .into_pyobject(py)
                .map_or(py.None(), |o| o.into_any().unbind()),
        );
        set(
            "line",
            d.line
                .into_pyobject(py)
                .map_or(py.None(), |o| o.into_any().unbind()),
        );
        err
    })
}

/// From a table error.
pub fn input_error(e: &FrameError) -> PyErr {
    raise_input(Details {
        message: e.to_string(),
        field: Some(&e.error.field),
        reason: Some(e.error.reason.as_str()),
        detail: Some(&e.error.message),
        column: Some(&e.column),
        row: e.row,
        line: None,
    })
}

/// From a validation error of one event (`Monitor.record`, `Monitor.label`).
pub fn event_error(e: &EventError) -> PyErr {
    raise_input(Details {
        message: e.to_string(),
        field: Some(&e.field),
        reason: Some(e.reason.as_str()),
        detail: Some(&e.message),
        ..Details::default()
    })
}

/// The column of a file that feeds an event field.
fn column_of<'a>(field: &'a str, columns: &'a ColumnsConfig) -> Option<&'a str> {
    if let Some(name) = field
        .strip_prefix("features.")
        .or_else(|| field.strip_prefix("attributes."))
    {
        return Some(name);
    }
    Some(match field {
        "prediction" | "prediction.label" | "prediction.value" => &columns.prediction,
        "prediction.score" => &columns.score,
        "label" => &columns.label,
        "latency_ms" => &columns.latency_ms,
        "id" => &columns.id,
        "ts" => &columns.ts,
        _ => return None,
    })
}

/// From the agent library's errors: a dataset error becomes an `InputError` naming the line
/// and the column; a file that cannot be read an `OSError`; anything else a `ConfigError`.
pub fn input_error_from_anyhow(e: &anyhow::Error, columns: &ColumnsConfig) -> PyErr {
    match e.downcast_ref::<DatasetError>() {
        Some(DatasetError::Row { line, source, .. }) => raise_input(Details {
            message: e.to_string(),
            field: Some(&source.field),
            reason: Some(source.reason.as_str()),
            detail: Some(&source.message),
            column: column_of(&source.field, columns),
            row: None,
            line: Some(*line),
        }),
        Some(DatasetError::MissingColumn {
            column, purpose, ..
        }) => raise_input(Details {
            message: e.to_string(),
            field: Some(&missing_field(purpose)),
            reason: Some("missing_field"),
            detail: None,
            column: Some(column),
            row: None,
            line: Some(1),
        }),
        Some(DatasetError::Io { .. }) => pyo3::exceptions::PyOSError::new_err(e.to_string()),
        None => config_error(&format!("{e:#}")),
    }
}

/// The event field a missing CSV column was for ("feature income" is `features.income`).
fn missing_field(purpose: &str) -> String {
    if let Some(name) = purpose.strip_prefix("feature ") {
        format!("features.{name}")
    } else if let Some(name) = purpose.strip_prefix("attribute ") {
        format!("attributes.{name}")
    } else {
        purpose.to_owned()
    }
}

/// A `ConfigError`.
pub fn config_error(message: &str) -> PyErr {
    ConfigError::new_err(message.to_owned())
}
