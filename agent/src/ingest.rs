//! Turning an HTTP request body into validated events or labels.
//!
//! Formats: one JSON object or a JSON array (`application/json`), or NDJSON
//! (`application/x-ndjson`, `application/ndjson`, `application/jsonl`), optionally gzip-compressed.
//! Decompression is bounded by the same byte limit as the raw body, so a gzip bomb stops at the
//! limit instead of filling memory. Every rejected item names its line (NDJSON, 1-based) or index
//! (JSON array, 0-based), the field and the reason.

mod fast;

use aims_core::event::{Event, EventError, RawEvent, RawLabel, RejectReason};
use aims_core::schema::ModelSchema;
use aims_runtime::gzip::DecodeError;

pub use fast::FastDecoder;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Rejected items listed in one response; the rest are counted but not itemised, which keeps a
/// reply to a huge bad batch small.
pub const MAX_LISTED_ERRORS: usize = 100;

/// How the items of a body are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One object, or an array of objects.
    Json,
    /// One object per line.
    Ndjson,
}

/// A request refused as a whole.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit, raw or decompressed.
    #[error("request body exceeds the limit of {limit} bytes{}", if *.decompressed { " after decompression" } else { "" })]
    TooLarge {
        /// The limit.
        limit: usize,
        /// Whether the limit was hit while decompressing.
        decompressed: bool,
    },
    /// A Content-Type the agent does not read.
    #[error("unsupported Content-Type {0:?}; use application/json or application/x-ndjson")]
    UnsupportedMediaType(String),
    /// A Content-Encoding the agent does not read, or a corrupt gzip stream.
    #[error("{0}")]
    InvalidEncoding(String),
    /// A JSON body that does not parse.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// Nothing in the body.
    #[error("the body holds no items")]
    Empty,
}

impl BodyError {
    /// The reason label counted for it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::InvalidEncoding(_) => "invalid_encoding",
            Self::InvalidJson(_) => "invalid_json",
            Self::Empty => "empty",
        }
    }

    /// The field of the request at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType(_) => "content-type",
            Self::InvalidEncoding(_) => "content-encoding",
            _ => "body",
        }
    }
}

/// Where an item sat in its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// NDJSON line, 1-based.
    Line(usize),
    /// JSON array index, 0-based (a single object is index 0).
    Index(usize),
}

/// One rejected item, as listed in the response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    /// Where it was.
    #[serde(flatten)]
    pub position: Position,
    /// The field at fault.
    pub field: String,
    /// The countable reason.
    pub reason: &'static str,
    /// In words.
    pub message: String,
}

impl ItemError {
    /// From a validation error.
    pub fn new(position: Position, e: EventError) -> Self {
        Self {
            position,
            field: e.field,
            reason: e.reason.as_str(),
            message: e.message,
        }
    }
}

/// The reply to an ingest request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IngestReply {
    /// Items kept.
    pub accepted: usize,
    /// Items refused.
    pub rejected: usize,
    /// The first [`MAX_LISTED_ERRORS`] refusals.
    pub errors: Vec<ItemError>,
}

impl IngestReply {
    /// Adds a refusal, listing it while there is room.
    pub fn reject(&mut self, e: ItemError) {
        self.rejected += 1;
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(e);
        }
    }

    /// The reply to a request refused as a whole.
    pub fn refused(e: &BodyError) -> Self {
        Self {
            accepted: 0,
            rejected: 0,
            errors: vec![ItemError {
                position: Position::Index(0),
                field: e.field().to_owned(),
                reason: e.reason(),
                message: e.to_string(),
            }],
        }
    }
}

/// The body format a Content-Type names.
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, BodyError> {
    let full = content_type.unwrap_or("").trim();
    let essence = full
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Ok(BodyFormat::Ndjson),
        _ => Err(BodyError::UnsupportedMediaType(full.to_owned())),
    }
}

/// Undoes the Content-Encoding, never producing more than `limit` bytes (the shared
/// [`aims_runtime::gzip::decode`]).
pub fn decode(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    aims_runtime::gzip::decode(encoding, body, limit).map_err(|e| match e {
        DecodeError::TooLarge {
            limit,
            decompressed,
        } => BodyError::TooLarge {
            limit,
            decompressed,
        },
        DecodeError::Corrupt(_) | DecodeError::Unsupported(_) => {
            BodyError::InvalidEncoding(e.to_string())
        }
    })
}

/// A parsed item: its position and either the raw item or the reason it is not one.
pub type Parsed<T> = (Position, Result<T, EventError>);

fn json_error(e: serde_json::Error) -> EventError {
    EventError::new("$", RejectReason::InvalidJson, e.to_string())
}

/// Splits a decoded body into raw items. A JSON body that does not parse is refused whole; an
/// NDJSON line that does not parse is one rejected item. Blank lines are skipped.
pub fn parse_items<T: DeserializeOwned>(
    format: BodyFormat,
    body: &[u8],
) -> Result<Vec<Parsed<T>>, BodyError> {
    let items: Vec<Parsed<T>> = match format {
        BodyFormat::Ndjson => body
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(i, line)| {
                let is_object = line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                let item = if is_object {
                    serde_json::from_slice::<T>(line).map_err(json_error)
                } else {
                    Err(not_an_object())
                };
                (Position::Line(i + 1), item)
            })
            .collect(),
        BodyFormat::Json => {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| BodyError::InvalidJson(e.to_string()))?;
            match value {
                serde_json::Value::Array(values) => values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (Position::Index(i), item_from_value(v)))
                    .collect(),
                v => vec![(Position::Index(0), item_from_value(v))],
            }
        }
    };
    if items.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(items)
}

fn not_an_object() -> EventError {
    EventError::new(
        "$",
        RejectReason::InvalidJson,
        "each item must be a JSON object",
    )
}

fn item_from_value<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, EventError> {
    if !v.is_object() {
        return Err(not_an_object());
    }
    serde_json::from_value(v).map_err(json_error)
}

/// Parses an events body.
pub fn parse_events(format: BodyFormat, body: &[u8]) -> Result<Vec<Parsed<RawEvent>>, BodyError> {
    parse_items(format, body)
}

/// A decoded and validated event, or why not, with its position.
pub type Decoded = (Position, Result<Event, EventError>);

/// Parses and validates an events body. NDJSON lines take the schema-aware fast path where it
/// applies; everything else (and every line it declines) goes through `RawEvent` and
/// `ModelSchema::validate`, which alone decide rejections.
pub fn decode_events(
    format: BodyFormat,
    body: &[u8],
    schema: &ModelSchema,
    fast: &FastDecoder,
    now_ms: i64,
) -> Result<Vec<Decoded>, BodyError> {
    let general = |raw: Result<RawEvent, EventError>| raw.and_then(|r| schema.validate(r, now_ms));
    let items: Vec<Decoded> = match format {
        BodyFormat::Json => parse_events(format, body)?
            .into_iter()
            .map(|(p, raw)| (p, general(raw)))
            .collect(),
        BodyFormat::Ndjson => body
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(i, line)| {
                let position = Position::Line(i + 1);
                if let Some(e) = fast.decode(line, now_ms) {
                    return (position, Ok(e));
                }
                let is_object = line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                let raw = if is_object {
                    serde_json::from_slice::<RawEvent>(line).map_err(json_error)
                } else {
                    Err(not_an_object())
                };
                (position, general(raw))
            })
            .collect(),
    };
    if items.is_empty() {
        return Err(BodyError::Empty);
    }
    Ok(items)
}

/// Parses a labels body.
pub fn parse_labels(format: BodyFormat, body: &[u8]) -> Result<Vec<Parsed<RawLabel>>, BodyError> {
    parse_items(format, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn content_types() {
        assert_eq!(
            body_format(Some("application/json; charset=utf-8")),
            Ok(BodyFormat::Json)
        );
        assert_eq!(
            body_format(Some("application/x-ndjson")),
            Ok(BodyFormat::Ndjson)
        );
        assert!(matches!(
            body_format(Some("text/csv")),
            Err(BodyError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            body_format(None),
            Err(BodyError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 10_000_000]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 20_000);
        let e = decode(Some("gzip"), &bomb, 1_000_000).unwrap_err();
        assert_eq!(e.reason(), "payload_too_large");
        assert!(matches!(
            decode(Some("gzip"), b"not gzip", 100),
            Err(BodyError::InvalidEncoding(_))
        ));
        assert!(matches!(
            decode(Some("br"), b"x", 100),
            Err(BodyError::InvalidEncoding(_))
        ));
    }

    #[test]
    fn ndjson_lines_fail_alone() {
        let body = b"{\"id\": 1}\nnot json\n\n{\"income\": NaN}\n[1]\n";
        let items = parse_events(BodyFormat::Ndjson, body).unwrap();
        let positions: Vec<_> = items.iter().map(|(p, r)| (*p, r.is_ok())).collect();
        assert_eq!(
            positions,
            vec![
                (Position::Line(1), true),
                (Position::Line(2), false),
                (Position::Line(4), false),
                (Position::Line(5), false)
            ]
        );
    }

    #[test]
    fn json_arrays_index_items_and_bad_bodies_fail_whole() {
        let items = parse_events(BodyFormat::Json, b"[{\"id\": 1}, 5]").unwrap();
        assert!(items[0].1.is_ok());
        assert_eq!(items[1].0, Position::Index(1));
        assert!(items[1].1.is_err());
        assert!(matches!(
            parse_events(BodyFormat::Json, b"{\"a\": Infinity}"),
            Err(BodyError::InvalidJson(_))
        ));
        assert_eq!(
            parse_events(BodyFormat::Json, b"[]").unwrap_err(),
            BodyError::Empty
        );
    }
}
