//! What travels from agent to collector: a window summary in an envelope that names its window
//! and carries a deterministic id.
//!
//! The id is a hash of (agent, model, model version, window start, window length, sequence), so
//! a summary retried after a lost acknowledgement is the same summary, and the collector stores
//! it once. Sequence 0 is the window's summary at close; late labels for the window ship as
//! sequences 1, 2, ... that merge into it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hash::sha256_hex;
use crate::summary::{WindowSummary, SUMMARY_FORMAT};

/// A window summary with its identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryEnvelope {
    /// Deterministic id, see [`SummaryEnvelope::compute_id`].
    pub id: String,
    /// The agent that produced it.
    pub agent: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: String,
    /// Window start, ms since the Unix epoch (aligned to the window length).
    pub window_start_ms: i64,
    /// Window length in ms.
    pub window_ms: u64,
    /// 0 for the summary at window close, then 1, 2, ... for late-label summaries.
    pub seq: u64,
    /// The statistics.
    pub summary: WindowSummary,
}

/// An envelope that does not hold together.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct EnvelopeError {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl SummaryEnvelope {
    /// Wraps a summary and computes its id.
    pub fn new(
        agent: &str,
        model: &str,
        model_version: &str,
        window_start_ms: i64,
        window_ms: u64,
        seq: u64,
        summary: WindowSummary,
    ) -> Self {
        let mut e = Self {
            id: String::new(),
            agent: agent.to_owned(),
            model: model.to_owned(),
            model_version: model_version.to_owned(),
            window_start_ms,
            window_ms,
            seq,
            summary,
        };
        e.id = e.compute_id();
        e
    }

    /// The id this envelope's key determines.
    pub fn compute_id(&self) -> String {
        let key = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.agent,
            self.model,
            self.model_version,
            self.window_start_ms,
            self.window_ms,
            self.seq
        );
        sha256_hex(key.as_bytes())
    }

    /// Checks the envelope's own consistency (the collector checks the shape against the
    /// model's schema separately).
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        let fail = |field, message: &str| {
            Err(EnvelopeError {
                field,
                message: message.to_owned(),
            })
        };
        if self.agent.is_empty() {
            return fail("agent", "must not be empty");
        }
        if self.model.is_empty() {
            return fail("model", "must not be empty");
        }
        if self.window_ms == 0 {
            return fail("window_ms", "must be positive");
        }
        if self.window_start_ms.rem_euclid(self.window_ms as i64) != 0 {
            return fail("window_start_ms", "must be aligned to the window length");
        }
        if self.summary.format != SUMMARY_FORMAT {
            return fail("summary.format", "unsupported summary format");
        }
        if self.id != self.compute_id() {
            return fail("id", "does not match the hash of the envelope's key");
        }
        Ok(())
    }
}

/// Decodes a summary envelope's JSON: serde_json's result, value or error, for any input.
///
/// An envelope in the exact form this crate writes has its features (most of its text: about
/// 2,500 counts for 20 features) read by a strict reader of that form instead
/// ([`crate::summary_de::canonical_features`]), and the rest, with an empty features array
/// spliced in their place, by serde_json. Whenever either declines or fails, the whole body is
/// decoded by serde_json, so every error is serde_json's own, naming line and column.
pub fn decode_envelope(body: &[u8]) -> serde_json::Result<SummaryEnvelope> {
    match decode_canonical(body) {
        Some(envelope) => Ok(envelope),
        None => serde_json::from_slice(body),
    }
}

/// [`decode_envelope`]'s fast path alone: `None` where it declines (and serde_json decides).
pub fn decode_canonical(body: &[u8]) -> Option<SummaryEnvelope> {
    let summary = member_start(body, skip_ws(body, 0), b"summary")?;
    let start = member_start(body, summary, b"features")?;
    let (features, len) = crate::summary_de::canonical_features(&body[start..])?;
    let end = start + len;
    let mut rest = Vec::with_capacity(body.len() - len + 2);
    rest.extend_from_slice(&body[..start]);
    rest.extend_from_slice(b"[]");
    rest.extend_from_slice(&body[end..]);
    let mut envelope: SummaryEnvelope = serde_json::from_slice(&rest).ok()?;
    envelope.summary.features = features;
    Some(envelope)
}

/// Where the value of the first member named `key` (unescaped) of the object opening at
/// `b[i]` starts, scanning over the members before it. A second member of that name is left
/// for serde_json to refuse.
fn member_start(b: &[u8], mut i: usize, key: &[u8]) -> Option<usize> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        match next_member(b, i)? {
            Member::Close(_) => return None,
            Member::Next { name, value } if name == key => return Some(value),
            Member::Next { value, .. } => i = value_end(b, value)?,
        }
    }
}

/// One step through an object's members.
enum Member<'a> {
    /// A member: its name as written (escapes not decoded) and where its value starts.
    Next { name: &'a [u8], value: usize },
    /// The object's closing `}`, at this index.
    Close(usize),
}

/// The member after `b[i]` (just past the `{`, or just past a member's value), skipping
/// whitespace and a comma; `None` where the text is not a member or the object's end.
fn next_member(b: &[u8], mut i: usize) -> Option<Member<'_>> {
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b',' => i += 1,
            b'"' => break,
            b'}' => return Some(Member::Close(i)),
            _ => return None,
        }
    }
    let key_end = string_end(b, i)?;
    let name = &b[i + 1..key_end];
    i = skip_ws(b, key_end + 1);
    if b.get(i) != Some(&b':') {
        return None;
    }
    Some(Member::Next {
        name,
        value: skip_ws(b, i + 1),
    })
}

/// The exact text of the `summary` member of a summary envelope's JSON, as it was received.
///
/// The collector stores a summary as the JSON it arrived in rather than serialising it again
/// (re-serialising a 20-feature summary cost about as much as decoding it). Call it only on
/// bytes that already decoded as a [`SummaryEnvelope`]: it is a scan for the member's extent, not
/// a parser, and so the text decodes to the same [`WindowSummary`] that the envelope holds. It
/// answers `None`, and the caller serialises instead, when the body is not a plain object with
/// one unescaped `summary` key.
pub fn summary_text(body: &[u8]) -> Option<&str> {
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    let close = loop {
        match next_member(body, i)? {
            Member::Close(close) => break close,
            Member::Next { name, value } => {
                if name.contains(&b'\\') {
                    return None;
                }
                let end = value_end(body, value)?;
                if name == b"summary" {
                    if found.is_some() {
                        return None;
                    }
                    found = Some((value, end));
                }
                i = end;
            }
        }
    };
    if skip_ws(body, close + 1) != body.len() {
        return None;
    }
    let (start, end) = found?;
    std::str::from_utf8(&body[start..end]).ok()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index of the quote closing the string that opens at `b[i]`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

/// The end (exclusive) of the JSON value that starts at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i).map(|j| j + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => j = string_end(b, j)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}
