//! Python objects into JSON values, for events and labels given as dicts.
//!
//! Walking the objects directly costs less than `json.dumps` followed by a parse, and lets a
//! NumPy scalar (which is not a Python int or float but converts to one) through. A value that
//! JSON cannot carry is rejected like a bad field over HTTP: an [`EventError`] naming the field,
//! with reason `invalid_number` (NaN, infinities) or `wrong_type`.

use aims_core::event::{EventError, RejectReason};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Nesting allowed in an event (an event is two levels deep).
const MAX_DEPTH: usize = 8;

fn wrong(path: &str, message: String) -> EventError {
    let field = if path.is_empty() { "event" } else { path };
    EventError::new(field, RejectReason::WrongType, message)
}

fn text(s: &Bound<'_, PyString>, path: &str) -> Result<String, EventError> {
    s.to_cow()
        .map(|c| c.into_owned())
        .map_err(|e| wrong(path, format!("not a valid string: {e}")))
}

/// Converts `obj`; `path` names the field in errors.
pub fn to_value(obj: &Bound<'_, PyAny>, path: &str, depth: usize) -> Result<Value, EventError> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        return text(s, path).map(Value::String);
    }
    if let Ok(b) = obj.downcast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return match obj.extract::<f64>() {
            Ok(x) => float(x, path),
            Err(e) => Err(wrong(path, e.to_string())),
        };
    }
    if let Ok(f) = obj.downcast::<PyFloat>() {
        return float(f.value(), path);
    }
    if depth >= MAX_DEPTH {
        return Err(wrong(path, "nested too deeply".into()));
    }
    if let Ok(d) = obj.downcast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = match k.downcast::<PyString>() {
                Ok(s) => text(s, path)?,
                Err(_) => return Err(wrong(path, "keys must be strings".into())),
            };
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let value = to_value(&v, &inner, depth + 1)?;
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        let items = obj.try_iter().map_err(|e| wrong(path, e.to_string()))?;
        for (i, item) in items.enumerate() {
            let item = item.map_err(|e| wrong(path, e.to_string()))?;
            out.push(to_value(&item, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    // NumPy scalars and other number-likes.
    if let Ok(i) = obj
        .call_method0("__index__")
        .and_then(|v| v.extract::<i64>())
    {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = obj
        .call_method0("__float__")
        .and_then(|v| v.extract::<f64>())
    {
        return float(f, path);
    }
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(wrong(
        path,
        format!("cannot record a value of type {type_name}"),
    ))
}

/// A float as JSON; NaN and infinities are rejected with `invalid_number` naming the field, as
/// the agent rejects a CSV cell "nan" (JSON cannot carry them at all).
fn float(x: f64, path: &str) -> Result<Value, EventError> {
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| EventError::new(path, RejectReason::InvalidNumber, "not a finite number"))
}
