//! CloudEvents 1.0 over HTTP: the binary mode (`ce-*` headers, the body is the data), the
//! structured mode (`application/cloudevents+json`) and batches
//! (`application/cloudevents-batch+json`), read into one [`CloudEvent`] shape.
//!
//! Only what the join needs is kept: the context attributes, the extensions as text, and the
//! data as either raw JSON bytes (binary mode, `data_base64`) or an already parsed JSON value
//! (structured `data`).

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use base64::Engine;
use serde_json::{Map, Value};

/// A problem with the envelope itself, naming the attribute or header at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EnvelopeError {
    /// The attribute (`id`, `type`, `data`...) or header (`ce-id`, `content-type`).
    pub field: String,
    /// In words.
    pub message: String,
}

fn envelope_error(field: impl Into<String>, message: impl Into<String>) -> EnvelopeError {
    EnvelopeError {
        field: field.into(),
        message: message.into(),
    }
}

/// The event's data, as it came.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// JSON text (binary mode's body, or structured `data_base64`).
    Bytes(Vec<u8>),
    /// Structured mode's `data` member.
    Json(Value),
}

/// One CloudEvent, its data not yet interpreted.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// `id`: the request id that joins a request to its response.
    pub id: String,
    /// `type`, e.g. `org.kubeflow.serving.inference.request`.
    pub kind: String,
    /// `time`, as sent (RFC 3339), when present.
    pub time: Option<String>,
    /// Extension attributes (`inferenceservicename`, `metadata`, ...), lower-case names.
    pub extensions: BTreeMap<String, String>,
    /// The data; `None` when the event has none.
    pub data: Option<Data>,
}

/// Attributes that are not extensions.
const CONTEXT: [&str; 10] = [
    "specversion",
    "id",
    "type",
    "source",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// Whether a media type (parameters ignored) is JSON: `application/json` or `*/*+json`.
fn is_json(media: &str) -> bool {
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
}

/// The CloudEvents HTTP binding percent-encodes some characters in header values; undo it,
/// leaving anything that is not a valid `%XX` escape as it is.
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// How the request carries its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ce-*` headers and the data as the body.
    Binary,
    /// One event as `application/cloudevents+json`.
    Structured,
    /// An array of events as `application/cloudevents-batch+json`.
    Batch,
}

/// The mode a request's Content-Type selects; `None` for a request that is not a CloudEvent.
///
/// In binary mode the Content-Type is whatever the model's caller sent, copied by KServe's
/// logger (`curl -d` sends `application/x-www-form-urlencoded` with a JSON body), so it is not
/// judged: the body is, when it is parsed as an inference body.
pub fn mode(content_type: Option<&str>, headers: &HeaderMap) -> Option<Mode> {
    let essence = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/cloudevents+json" => Some(Mode::Structured),
        "application/cloudevents-batch+json" => Some(Mode::Batch),
        _ if headers.contains_key("ce-id") || headers.contains_key("ce-specversion") => {
            Some(Mode::Binary)
        }
        _ => None,
    }
}

/// A binary-mode event from its headers and body.
pub fn from_binary(headers: &HeaderMap, body: Vec<u8>) -> Result<CloudEvent, EnvelopeError> {
    let mut id = None;
    let mut kind = None;
    let mut time = None;
    let mut spec = None;
    let mut extensions = BTreeMap::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let text = value
            .to_str()
            .map_err(|_| envelope_error(name.as_str(), "not visible ASCII"))?;
        let text = percent_decode(text);
        match attr {
            "id" => id = Some(text),
            "type" => kind = Some(text),
            "time" => time = Some(text),
            "specversion" => spec = Some(text),
            "source" | "subject" | "dataschema" => {}
            other => {
                extensions.insert(other.to_owned(), text);
            }
        }
    }
    check_spec(spec.as_deref(), "ce-specversion")?;
    Ok(CloudEvent {
        id: required(id, "ce-id")?,
        kind: required(kind, "ce-type")?,
        time,
        extensions,
        data: (!body.iter().all(u8::is_ascii_whitespace)).then_some(Data::Bytes(body)),
    })
}

fn check_spec(spec: Option<&str>, field: &str) -> Result<(), EnvelopeError> {
    match spec {
        None => Err(envelope_error(field, "missing; CloudEvents 1.0 required")),
        Some(s) if s.starts_with('1') => Ok(()),
        Some(s) => Err(envelope_error(
            field,
            format!("{s:?} is not a supported CloudEvents version (1.0)"),
        )),
    }
}

/// Longest `id` and `type` accepted: ids become map keys and event ids, so their length is
/// capped like every id the agent keeps.
pub const MAX_ATTRIBUTE_LEN: usize = 256;

fn required(v: Option<String>, field: &str) -> Result<String, EnvelopeError> {
    match v {
        Some(s) if s.len() > MAX_ATTRIBUTE_LEN => Err(envelope_error(
            field,
            format!("{} bytes; at most {MAX_ATTRIBUTE_LEN}", s.len()),
        )),
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(envelope_error(field, "required and missing")),
    }
}

/// A structured-mode event from its JSON object; `field` prefixes the names in errors
/// (`[2].id` inside a batch).
pub fn from_structured(value: Value, prefix: &str) -> Result<CloudEvent, EnvelopeError> {
    let at = |name: &str| format!("{prefix}{name}");
    let Value::Object(mut map) = value else {
        return Err(envelope_error(
            at("$"),
            "a CloudEvent in structured mode is a JSON object",
        ));
    };
    let text =
        |map: &mut Map<String, Value>, name: &str| -> Result<Option<String>, EnvelopeError> {
            match map.remove(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(envelope_error(at(name), "must be a string")),
            }
        };
    check_spec(
        text(&mut map, "specversion")?.as_deref(),
        &at("specversion"),
    )?;
    let id = required(text(&mut map, "id")?, &at("id"))?;
    let kind = required(text(&mut map, "type")?, &at("type"))?;
    let time = text(&mut map, "time")?;
    if let Some(ct) = text(&mut map, "datacontenttype")? {
        if !is_json(&ct) {
            return Err(envelope_error(
                at("datacontenttype"),
                format!("{ct:?}: only JSON data is read"),
            ));
        }
    }
    let data = map.remove("data").filter(|v| !v.is_null());
    let base64 = map.remove("data_base64").filter(|v| !v.is_null());
    let data = match (data, base64) {
        (Some(_), Some(_)) => {
            return Err(envelope_error(
                at("data"),
                "data and data_base64 are mutually exclusive",
            ))
        }
        (None, None) => None,
        (Some(Value::String(s)), None) => Some(Data::Bytes(s.into_bytes())),
        (Some(v), None) => Some(Data::Json(v)),
        (None, Some(Value::String(s))) => Some(Data::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|e| envelope_error(at("data_base64"), format!("not base64: {e}")))?,
        )),
        (None, Some(_)) => return Err(envelope_error(at("data_base64"), "must be a string")),
    };
    let mut extensions = BTreeMap::new();
    for (name, v) in map {
        if CONTEXT.contains(&name.as_str()) {
            continue;
        }
        let text = match v {
            Value::String(s) => s,
            Value::Null => continue,
            other => other.to_string(),
        };
        extensions.insert(name.to_ascii_lowercase(), text);
    }
    Ok(CloudEvent {
        id,
        kind,
        time,
        extensions,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn binary_mode_reads_headers_and_extensions() {
        let h = headers(&[
            ("ce-id", "abc"),
            ("ce-specversion", "1.0"),
            ("ce-type", "org.kubeflow.serving.inference.request"),
            ("ce-source", "http://localhost:9081/"),
            ("ce-inferenceservicename", "credit"),
            ("ce-metadata", "%7B%22X-Gender%22:[%22F%22]%7D"),
            ("content-type", "application/json"),
        ]);
        assert_eq!(mode(Some("application/json"), &h), Some(Mode::Binary));
        let e = from_binary(&h, b"{}".to_vec()).unwrap();
        assert_eq!(e.id, "abc");
        assert_eq!(e.extensions["inferenceservicename"], "credit");
        assert_eq!(e.extensions["metadata"], r#"{"X-Gender":["F"]}"#);
        assert_eq!(e.data, Some(Data::Bytes(b"{}".to_vec())));
        let missing = from_binary(&headers(&[("ce-specversion", "1.0")]), vec![]).unwrap_err();
        assert_eq!(missing.field, "ce-id");
        let long = "x".repeat(MAX_ATTRIBUTE_LEN + 1);
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", &long),
            ("ce-type", "t"),
        ]);
        assert_eq!(from_binary(&h, vec![]).unwrap_err().field, "ce-id");
        assert_eq!(
            mode(Some("application/x-www-form-urlencoded"), &h),
            Some(Mode::Binary)
        );
        assert_eq!(mode(Some("text/csv"), &HeaderMap::new()), None);
        assert_eq!(mode(Some("application/json"), &HeaderMap::new()), None);
    }

    #[test]
    fn structured_mode_reads_data_and_data_base64() {
        let v: Value = serde_json::from_str(
            r#"{"specversion":"1.0","id":"1","type":"t","source":"s","data":{"a":1},"ns":"x","n":3}"#,
        )
        .unwrap();
        let e = from_structured(v, "").unwrap();
        assert_eq!(e.data, Some(Data::Json(serde_json::json!({"a": 1}))));
        assert_eq!(e.extensions["ns"], "x");
        assert_eq!(e.extensions["n"], "3");
        let v: Value = serde_json::from_str(
            r#"{"specversion":"1.0","id":"1","type":"t","source":"s","data_base64":"eyJhIjoxfQ=="}"#,
        )
        .unwrap();
        assert_eq!(
            from_structured(v, "").unwrap().data,
            Some(Data::Bytes(br#"{"a":1}"#.to_vec()))
        );
        let v: Value = serde_json::from_str(r#"{"specversion":"1.0","type":"t"}"#).unwrap();
        assert_eq!(from_structured(v, "[3].").unwrap_err().field, "[3].id");
        let v: Value =
            serde_json::from_str(r#"{"specversion":"0.3","id":"1","type":"t"}"#).unwrap();
        assert_eq!(from_structured(v, "").unwrap_err().field, "specversion");
    }

    #[test]
    fn percent_decoding_keeps_stray_percents() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
