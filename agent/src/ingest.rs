//! Turning an HTTP request body into validated events or labels.
//!
//! Formats: one JSON object or a JSON array (`application/json`), or NDJSON
//! (`application/x-ndjson`, `application/ndjson`, `application/jsonl`), optionally gzip-compressed.
//! Decompression is bounded by the same byte limit as the raw body, so a gzip bomb stops at the
//! limit instead of filling memory. Every rejected item names its line (NDJSON, 1-based) or index
//! (JSON array, 0-based), the field and the reason.

mod fast;
pub mod rule;

use aims_core::event::{Event, EventError, FeatureValue, RawEvent, RawLabel, RejectReason};
use aims_core::schema::ModelSchema;
use aims_runtime::gzip::DecodeError;

pub use fast::FastDecoder;

use crate::config::LimitsConfig;
use aims_core::event::Scored;
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
    /// The body arrived slower than the minimum rate.
    #[error("the body arrived too slowly: {received} bytes received, slower than {rate} bytes/s")]
    TooSlow {
        /// Bytes received when the agent gave up.
        received: usize,
        /// The minimum rate, bytes per second.
        rate: u64,
    },
    /// The agent's body-memory budget is spent by other requests.
    #[error("the agent holds too many request bodies at once; retry shortly")]
    Memory,
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
            Self::TooSlow { .. } => "body_too_slow",
            Self::Memory => "memory",
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
    /// Where it was; `None` for an error about the request as a whole (it has no index).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
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
            position: Some(position),
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
                position: None,
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

/// Calls `f` with each item of a body and its position, checked against the one JSON rule
/// ([`rule::check_item`]); returns how many there were. NDJSON: one item per non-blank line, a
/// line that is not JSON is one rejected item. JSON: the elements of a top-level array (or the
/// one value); a body that is not well-formed JSON is refused whole (before `f` sees any item),
/// because its items cannot be found. Items are handed over one at a time, so a caller can
/// work in bounded batches whatever the body holds.
pub fn for_each_item<'b>(
    format: BodyFormat,
    body: &'b [u8],
    limits: &LimitsConfig,
    f: &mut dyn FnMut(Position, Result<&'b [u8], EventError>),
) -> Result<usize, BodyError> {
    for_each_raw_item(format, body, &mut |p, item| {
        f(
            p,
            rule::check_item(item, limits.max_item_bytes).map(|()| item),
        )
    })
}

/// [`for_each_item`] for an events body, each item decoded and validated
/// ([`decode_item_scored`]). An item the fast decoder's scanner takes whole, within the item
/// cap, has passed the JSON rule by construction (an object of known keys two levels deep, no
/// key repeated, no escape, valid UTF-8, finite numbers of at most 15 digits): it is decoded in
/// one pass instead of being scanned by the rule first. Every other item takes the rule, then
/// the decoders, as before, so verdicts and messages do not change.
pub fn for_each_event(
    format: BodyFormat,
    body: &[u8],
    schema: &ModelSchema,
    fast: &FastDecoder,
    limits: &LimitsConfig,
    now_ms: i64,
    f: &mut dyn FnMut(Position, Result<Scored, EventError>),
) -> Result<usize, BodyError> {
    for_each_raw_item(format, body, &mut |p, item| {
        let plain = (item.len() <= limits.max_item_bytes)
            .then(|| fast.decode_plain(item, now_ms))
            .flatten();
        let decoded = match plain {
            Some(event) => check_lengths(event, schema, limits).map(|e| (e, None)),
            None => rule::check_item(item, limits.max_item_bytes)
                .and_then(|()| decode_item_scored(item, schema, fast, limits, now_ms)),
        };
        f(p, decoded)
    })
}

/// A decoded event lent to the caller with its per-class probabilities, or why not.
pub type Borrowed<'e> = Result<(&'e mut Event, Option<&'e [f64]>), EventError>;

/// [`for_each_event`] into one reused [`Event`] (the schema is the decoder's): an item the scanner takes is decoded into
/// `event`'s own buffers (no allocation per event once they have grown), and `f` borrows it
/// with the prediction's per-class probabilities. Every other item takes the same rule and
/// decoders as [`for_each_event`], so verdicts and messages are the same; its event replaces
/// `event`'s content. `f` may take the id out of the event (the shards keep it for the label
/// join); the next item fills it again.
pub fn for_each_event_into(
    format: BodyFormat,
    body: &[u8],
    fast: &FastDecoder,
    limits: &LimitsConfig,
    now_ms: i64,
    event: &mut Event,
    f: &mut dyn FnMut(Position, Borrowed<'_>),
) -> Result<usize, BodyError> {
    let schema = fast.schema();
    for_each_raw_item(format, body, &mut |p, item| {
        if item.len() <= limits.max_item_bytes && fast.decode_plain_into(item, now_ms, event) {
            match lengths_ok(event, schema, limits) {
                Ok(()) => f(p, Ok((&mut *event, None))),
                Err(e) => f(p, Err(e)),
            }
            return;
        }
        let decoded = rule::check_item(item, limits.max_item_bytes)
            .and_then(|()| decode_item_scored(item, schema, fast, limits, now_ms));
        match decoded {
            Ok((e, scores)) => {
                *event = e;
                f(p, Ok((&mut *event, scores.as_deref())));
            }
            Err(e) => f(p, Err(e)),
        }
    })
}

/// The items of a body, unchecked, with their positions; the count, or why the body is refused
/// whole.
fn for_each_raw_item<'b>(
    format: BodyFormat,
    body: &'b [u8],
    f: &mut dyn FnMut(Position, &'b [u8]),
) -> Result<usize, BodyError> {
    let mut n = 0;
    let mut checked = |p: Position, item: &'b [u8]| {
        n += 1;
        f(p, item);
    };
    match format {
        BodyFormat::Ndjson => {
            // The lines as `split(|b| b == b'\n')` gives them (a last one after the last
            // newline, empty or not), found by memchr instead of a byte-at-a-time closure.
            let mut start = 0;
            let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
            for (i, end) in ends.enumerate() {
                let line = &body[start..end];
                start = end + 1;
                if !line.iter().all(u8::is_ascii_whitespace) {
                    checked(Position::Line(i + 1), line);
                }
            }
        }
        BodyFormat::Json => {
            let mut i = 0;
            rule::for_each_json_item(body, &mut |item| {
                checked(Position::Index(i), item);
                i += 1;
            })
            .map_err(|e| BodyError::InvalidJson(e.to_string()))?
        }
    }
    if n == 0 {
        return Err(BodyError::Empty);
    }
    Ok(n)
}

fn items<'b>(
    format: BodyFormat,
    body: &'b [u8],
    limits: &LimitsConfig,
) -> Result<Vec<Parsed<&'b [u8]>>, BodyError> {
    let mut items = Vec::new();
    for_each_item(format, body, limits, &mut |p, item| items.push((p, item)))?;
    Ok(items)
}

/// Splits a decoded body into raw items, each judged alone (see `items`).
pub fn parse_items<T: DeserializeOwned>(
    format: BodyFormat,
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<Vec<Parsed<T>>, BodyError> {
    Ok(items(format, body, limits)?
        .into_iter()
        .map(|(p, item)| {
            (
                p,
                item.and_then(|i| serde_json::from_slice(i).map_err(json_error)),
            )
        })
        .collect())
}

/// Parses an events body.
pub fn parse_events(
    format: BodyFormat,
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<Vec<Parsed<RawEvent>>, BodyError> {
    parse_items(format, body, limits)
}

/// A decoded and validated event, or why not, with its position.
pub type Decoded = (Position, Result<Event, EventError>);

fn too_long(field: String, what: &str, len: usize, key: &str, max: usize) -> EventError {
    EventError::new(
        field,
        RejectReason::TooLong,
        format!("the {what} is {len} bytes, more than limits.{key} ({max})"),
    )
}

/// The length caps on a validated event's id and category values, which a summary or the
/// join buffer would otherwise keep.
pub fn check_lengths(
    e: Event,
    schema: &ModelSchema,
    limits: &LimitsConfig,
) -> Result<Event, EventError> {
    lengths_ok(&e, schema, limits).map(|()| e)
}

/// A label's id held to `limits.max_id_bytes` (the embedded `label` and the HTTP labels alike).
pub fn check_label_id(id: &str, limits: &LimitsConfig) -> Result<(), EventError> {
    if id.len() > limits.max_id_bytes {
        return Err(too_long(
            "id".into(),
            "id",
            id.len(),
            "max_id_bytes",
            limits.max_id_bytes,
        ));
    }
    Ok(())
}

/// [`check_lengths`] on a borrowed event (filled in place, as the embedded `record_batch` does).
pub fn lengths_ok(
    e: &Event,
    schema: &ModelSchema,
    limits: &LimitsConfig,
) -> Result<(), EventError> {
    if let Some(id) = e.id.as_deref() {
        check_label_id(id, limits)?;
    }
    for (value, spec) in e.features.iter().zip(&schema.features) {
        if let FeatureValue::Categorical(c) = value {
            if c.len() > limits.max_category_bytes {
                return Err(too_long(
                    format!("features.{}", spec.name),
                    "category value",
                    c.len(),
                    "max_category_bytes",
                    limits.max_category_bytes,
                ));
            }
        }
    }
    Ok(())
}

/// Parses and validates an events body. Every item passes the one JSON rule first; then the
/// schema-aware fast path decodes it where it applies, and everything else (and every item it
/// declines) goes through `RawEvent` and `ModelSchema::validate`, which alone decide
/// rejections; last come the length caps. JSON array elements and NDJSON lines take exactly
/// the same steps.
pub fn decode_events(
    format: BodyFormat,
    body: &[u8],
    schema: &ModelSchema,
    fast: &FastDecoder,
    limits: &LimitsConfig,
    now_ms: i64,
) -> Result<Vec<Decoded>, BodyError> {
    let mut decoded = Vec::new();
    for_each_event(
        format,
        body,
        schema,
        fast,
        limits,
        now_ms,
        &mut |p, item| {
            decoded.push((p, item.map(|(event, _)| event)));
        },
    )?;
    Ok(decoded)
}

/// One item that passed the JSON rule, into a validated event.
pub fn decode_item(
    item: &[u8],
    schema: &ModelSchema,
    fast: &FastDecoder,
    limits: &LimitsConfig,
    now_ms: i64,
) -> Result<Event, EventError> {
    decode_item_scored(item, schema, fast, limits, now_ms).map(|(event, _)| event)
}

/// [`decode_item`], with the per-class probabilities of the prediction
/// (`prediction.scores`, checked by `ModelSchema::class_scores`). The fast path declines items
/// that carry them, so they are always judged by aims-core.
pub fn decode_item_scored(
    item: &[u8],
    schema: &ModelSchema,
    fast: &FastDecoder,
    limits: &LimitsConfig,
    now_ms: i64,
) -> Result<Scored, EventError> {
    let (event, scores) = match fast.decode(item, now_ms) {
        Some(e) => (e, None),
        None => {
            let raw = serde_json::from_slice::<RawEvent>(item).map_err(json_error)?;
            schema.validate_scored(raw, now_ms)?
        }
    };
    Ok((check_lengths(event, schema, limits)?, scores))
}

/// One label item that passed the JSON rule; its id is held to `limits.max_id_bytes`.
pub fn parse_label(item: &[u8], limits: &LimitsConfig) -> Result<RawLabel, EventError> {
    let raw: RawLabel = serde_json::from_slice(item).map_err(json_error)?;
    match &raw.id {
        Some(serde_json::Value::String(s)) if s.len() > limits.max_id_bytes => Err(too_long(
            "id".into(),
            "id",
            s.len(),
            "max_id_bytes",
            limits.max_id_bytes,
        )),
        _ => Ok(raw),
    }
}

/// Parses a labels body (see [`parse_label`]).
pub fn parse_labels(
    format: BodyFormat,
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<Vec<Parsed<RawLabel>>, BodyError> {
    Ok(items(format, body, limits)?
        .into_iter()
        .map(|(p, item)| (p, item.and_then(|i| parse_label(i, limits))))
        .collect())
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

    proptest::proptest! {
        #[test]
        fn ndjson_lines_are_the_ones_split_gives(
            body in proptest::collection::vec(
                proptest::sample::select(vec![b'\n', b' ', b'\r', b'\t', b'a', b'{']),
                0..48,
            )
        ) {
            let mut got = Vec::new();
            let _ = for_each_raw_item(BodyFormat::Ndjson, &body, &mut |p, line| {
                got.push((p, line.to_vec()))
            });
            let want: Vec<_> = body
                .split(|&b| b == b'\n')
                .enumerate()
                .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
                .map(|(i, line)| (Position::Line(i + 1), line.to_vec()))
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn ndjson_lines_fail_alone() {
        let body = b"{\"id\": 1}\nnot json\n\n{\"income\": NaN}\n[1]\n";
        let items = parse_events(BodyFormat::Ndjson, body, &LimitsConfig::default()).unwrap();
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
        let items = parse_events(
            BodyFormat::Json,
            b"[{\"id\": 1}, 5]",
            &LimitsConfig::default(),
        )
        .unwrap();
        assert!(items[0].1.is_ok());
        assert_eq!(items[1].0, Position::Index(1));
        assert!(items[1].1.is_err());
        assert!(matches!(
            parse_events(
                BodyFormat::Json,
                b"{\"a\": Infinity}",
                &LimitsConfig::default()
            ),
            Err(BodyError::InvalidJson(_))
        ));
        assert_eq!(
            parse_events(BodyFormat::Json, b"[]", &LimitsConfig::default()).unwrap_err(),
            BodyError::Empty
        );
    }
}
