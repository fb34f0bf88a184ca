//! `wire::summary_text`: the collector stores a summary as the text it was received in, so the
//! text found must decode to the very summary the envelope decoded to, however the agent laid
//! the JSON out; and anything the scan is not sure of answers `None` (the caller serialises).

#[path = "support/twenty_features.rs"]
mod twenty_features;

use aims_core::summary::{FeatureStats, WindowSummary};
use aims_core::wire::{summary_text, SummaryEnvelope};
use twenty_features::summary;

fn envelope() -> SummaryEnvelope {
    let mut s = summary();
    // Category names that a naive scan would trip on: quotes, braces, brackets, backslashes.
    for f in &mut s.features {
        if let FeatureStats::Categorical(c) = f {
            c.counts.insert("}\"],{\\\"summary\":[".to_owned(), 1);
            c.counts.insert("\\".to_owned(), 1);
            c.count += 2;
        }
    }
    SummaryEnvelope::new("agent-\"}", "m", "1.0", 0, 60_000, 0, s)
}

/// Decodes `body` as the collector does, then checks the text found decodes to the same summary.
fn same(body: &str) -> String {
    let decoded: SummaryEnvelope = serde_json::from_str(body).expect("decodes");
    let text = summary_text(body.as_bytes()).expect("found");
    let again: WindowSummary = serde_json::from_str(text).expect("text decodes");
    assert_eq!(again, decoded.summary);
    text.to_owned()
}

#[test]
fn the_text_found_decodes_to_the_envelope_summary_whatever_the_layout() {
    let e = envelope();
    let compact = serde_json::to_string(&e).unwrap();
    // Compact, as the agent sends it: the text is the serialiser's own output for the summary.
    assert_eq!(same(&compact), serde_json::to_string(&e.summary).unwrap());
    // Pretty-printed.
    same(&serde_json::to_string_pretty(&e).unwrap());
    // The summary first, then last, with odd whitespace around every token.
    let summary = serde_json::to_string_pretty(&e.summary).unwrap();
    let rest = |e: &SummaryEnvelope| {
        format!(
            "\"id\" : {} ,\r\n\t\"agent\":{},\"model\":\"m\",\"model_version\":\"1.0\",\"window_start_ms\": 0 ,\"window_ms\":60000,\"seq\":0",
            serde_json::to_string(&e.id).unwrap(),
            serde_json::to_string(&e.agent).unwrap(),
        )
    };
    let first = format!(" {{ \"summary\" :\n{summary} ,{} }} \n", rest(&e));
    assert_eq!(same(&first), summary);
    let last = format!("{{{},\"summary\":{summary}}}", rest(&e));
    assert_eq!(same(&last), summary);
}

#[test]
fn anything_unsure_is_none() {
    let e = envelope();
    let compact = serde_json::to_string(&e).unwrap();
    // An escaped key decodes as `summary` too: the scan does not decode keys, so it declines.
    let escaped = compact.replacen("\"summary\":", "\"summ\\u0061ry\":", 1);
    assert!(serde_json::from_str::<SummaryEnvelope>(&escaped).is_ok());
    assert_eq!(summary_text(escaped.as_bytes()), None);
    for bad in [
        "",
        "[]",
        "{}",
        "{\"summary\": {}",
        "{\"summary\": {}} x",
        "{\"summary\": {}, \"summary\": {}}",
        "{\"summary\" {}}",
        "{\"summary\": \"unterminated}",
        "{\"summary\":}",
    ] {
        assert_eq!(summary_text(bad.as_bytes()), None, "{bad:?}");
    }
    assert_eq!(
        summary_text(b"{\"a\": [1, {\"b\": \"]}\"}], \"summary\": {\"x\": [2]}}"),
        Some("{\"x\": [2]}")
    );
}
