//! The fast path of `Monitor.record`: a plainly valid event dict straight into an [`Event`].
//!
//! As the agent's NDJSON fast path does for HTTP bodies, this decodes the common well-formed
//! event without building a JSON tree; anything it does not recognise as plainly valid (an
//! unknown key, a wrong type, a NaN, an unknown class, a score out of range, ...) returns `None`
//! and the event goes through the general path (`pyjson` into aims-core's `RawEvent` and
//! `ModelSchema::validate`), so every rejection and its message come from one place.

use aims_core::event::{parse_timestamp, PREDICTION_EVENT_KEYS};
use aims_core::schema::{FeatureKind, ModelSchema, Task};
use aims_core::{Event, FeatureValue, Prediction, Target};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

/// Name lookups for one schema, built once per monitor: Python dicts from name to index, so a
/// key is found by its cached hash without converting it to UTF-8.
pub struct FastDecoder {
    top: Py<PyDict>,
    features: Py<PyDict>,
    attributes: Py<PyDict>,
}

/// The event's top-level keys, by index in [`FastDecoder::top`].
const TOP: &[&str] = PREDICTION_EVENT_KEYS;

/// The index a lookup dict gives `key`.
fn index(lookup: &Bound<'_, PyDict>, key: &Bound<'_, PyAny>) -> Option<usize> {
    if !key.is_instance_of::<PyString>() {
        return None;
    }
    lookup.get_item(key).ok()??.extract::<usize>().ok()
}

/// A Python value as a label's text (`1` and `"1"` are the same class, as over HTTP).
fn label_text(v: &Bound<'_, PyAny>) -> Option<String> {
    if let Ok(s) = v.downcast::<PyString>() {
        return s.to_cow().ok().map(|c| c.into_owned());
    }
    if let Ok(b) = v.downcast::<PyBool>() {
        return Some(if b.is_true() { "1" } else { "0" }.to_owned());
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().ok().map(|i| i.to_string());
    }
    None
}

/// A finite Python int or float (not a bool).
fn number(v: &Bound<'_, PyAny>) -> Option<f64> {
    if let Ok(f) = v.downcast::<PyFloat>() {
        let x = f.value();
        return x.is_finite().then_some(x);
    }
    if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        return v.extract::<i64>().ok().map(|i| i as f64);
    }
    None
}

impl FastDecoder {
    /// Lookups for `schema`.
    pub fn new(py: Python<'_>, schema: &ModelSchema) -> PyResult<Self> {
        let dict = |names: &mut dyn Iterator<Item = &str>| -> PyResult<Py<PyDict>> {
            let d = PyDict::new(py);
            for (i, name) in names.enumerate() {
                d.set_item(pyo3::types::PyString::intern(py, name), i)?;
            }
            Ok(d.unbind())
        };
        Ok(Self {
            top: dict(&mut TOP.iter().copied())?,
            features: dict(&mut schema.features.iter().map(|f| f.name.as_str()))?,
            attributes: dict(&mut schema.attributes.iter().map(|a| a.name.as_str()))?,
        })
    }

    /// The event, when `d` is plainly valid; `None` sends it down the general path.
    pub fn decode(&self, d: &Bound<'_, PyDict>, schema: &ModelSchema, now: i64) -> Option<Event> {
        let mut event = Event {
            id: None,
            ts_ms: now,
            features: vec![FeatureValue::Missing; schema.features.len()],
            groups: schema
                .attributes
                .iter()
                .map(|a| a.groups.len() as u16)
                .collect(),
            prediction: Prediction::Failed,
            label: None,
            latency_ms: None,
        };
        let py = d.py();
        let (top, features, attributes) = (
            self.top.bind(py),
            self.features.bind(py),
            self.attributes.bind(py),
        );
        let mut predicted = false;
        for (k, v) in d.iter() {
            let key = TOP[index(top, &k)?];
            if v.is_none() {
                match key {
                    "prediction" => return None,
                    _ => continue,
                }
            }
            match key {
                "id" => event.id = Some(label_text(&v)?),
                "ts" => {
                    let s = v.downcast::<PyString>().ok()?.to_cow().ok()?;
                    event.ts_ms = parse_timestamp("ts", &s).ok()?;
                }
                "features" => {
                    for (name, value) in v.downcast::<PyDict>().ok()?.iter() {
                        let i = index(features, &name)?;
                        if value.is_none() {
                            continue;
                        }
                        event.features[i] = match schema.features[i].kind {
                            FeatureKind::Numeric => FeatureValue::Numeric(number(&value)?),
                            FeatureKind::Categorical => {
                                FeatureValue::Categorical(label_text(&value)?)
                            }
                        };
                    }
                }
                "attributes" => {
                    for (name, value) in v.downcast::<PyDict>().ok()?.iter() {
                        let i = index(attributes, &name)?;
                        if !value.is_none() {
                            event.groups[i] = schema.group_of(i, &label_text(&value)?);
                        }
                    }
                }
                "prediction" => {
                    let p = v.downcast::<PyDict>().ok()?;
                    event.prediction = if schema.task == Task::Regression {
                        if p.len() != 1 {
                            return None;
                        }
                        Prediction::Value(number(&p.get_item("value").ok()??)?)
                    } else {
                        let class = label_text(&p.get_item("label").ok()??)?;
                        let class = schema.class_index(&class)? as u32;
                        let score = match p.get_item("score").ok()? {
                            None => None,
                            Some(s) if s.is_none() => None,
                            Some(s) => {
                                Some(schema.check_score("prediction.score", number(&s)?).ok()?)
                            }
                        };
                        let known = 1 + usize::from(p.contains("score").ok()?);
                        if p.len() != known {
                            return None;
                        }
                        Prediction::Class { class, score }
                    };
                    predicted = true;
                }
                "label" => {
                    event.label = Some(if schema.task == Task::Regression {
                        Target::Value(number(&v)?)
                    } else {
                        Target::Class(schema.class_index(&label_text(&v)?)? as u32)
                    });
                }
                "latency_ms" => {
                    let x = number(&v)?;
                    if x < 0.0 {
                        return None;
                    }
                    event.latency_ms = Some(x);
                }
                _ => return None,
            }
        }
        predicted.then_some(event)
    }
}
