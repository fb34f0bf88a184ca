//! The small binary model of the tests that compare a summary recorded one way (through the
//! HTTP fold, a shard, column batches) with the queue's, to the bit: its configuration, its
//! events, its reference profile and the spooled summaries to compare.
#![allow(dead_code)]

use std::path::Path;

use aims_agent::config::AgentConfig;
use aims_core::event::RawEvent;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::wire::SummaryEnvelope;

/// An agent configuration for model `name` (numeric `x`, `y`, categorical `c`, attribute `g`),
/// spooling under `dir`, nothing shipped; `sections` is the rest of its TOML (`[window]` and
/// whatever else the test sets).
pub fn config(dir: &Path, agent_id: &str, name: &str, sections: &str) -> AgentConfig {
    let text = format!(
        r#"agent_id = "{agent_id}"
[model]
name = "{name}"
task = "binary"
features = [
  {{ name = "x", kind = "numeric" }},
  {{ name = "y", kind = "numeric" }},
  {{ name = "c", kind = "categorical" }},
]
attributes = [{{ name = "g", groups = ["a", "b"], reference_group = "a" }}]
{sections}
[ship]
collector_url = ""
[spool]
dir = {spool:?}
"#,
        spool = dir.join(format!("spool-{agent_id}")),
    );
    let path = dir.join(format!("{agent_id}.toml"));
    std::fs::write(&path, text).unwrap();
    AgentConfig::load(&path).unwrap()
}

/// Event `i` as one NDJSON line, at `ts` (RFC 3339) if given: numbers with many digits (so that
/// the order of accumulation would show), an id, a label on two events of three (the rest wait
/// for a late label).
pub fn line(i: u64, ts: Option<&str>) -> String {
    let x = (i as f64 * 0.618_033_988_749_894_9).fract() * 1000.0;
    let ts = ts.map(|ts| format!(r#""ts":"{ts}","#)).unwrap_or_default();
    format!(
        r#"{{"id":"e{i}",{ts}"features":{{"x":{x},"y":{y},"c":"k{c}"}},"attributes":{{"g":"{g}"}},"prediction":{{"label":{p},"score":{s}}},"label":{label},"latency_ms":{l}}}"#,
        y = (i as f64).sqrt() / 7.0,
        c = i % 5,
        g = if i.is_multiple_of(3) { "a" } else { "b" },
        p = i % 2,
        s = (i as f64 * 0.37).fract(),
        label = if i % 3 == 2 {
            "null".into()
        } else {
            (i % 4 / 2).to_string()
        },
        l = (i % 97) as f64 / 3.0,
    )
}

/// [`line`] `i` without a time, parsed.
pub fn raw(i: u64) -> RawEvent {
    serde_json::from_str(&line(i, None)).unwrap()
}

/// The reference profile of events 0 to 1,999.
pub fn profile(cfg: &AgentConfig) -> ReferenceProfile {
    let mut b = ProfileBuilder::new(&cfg.model);
    for i in 0..2000 {
        b.add(&cfg.model.validate(raw(i), 0).unwrap());
    }
    b.finish()
}

/// A time in the next window of an hour, in ms: every run of a test records at the same time,
/// into a window that cannot close while the test runs (an event up to one window ahead is
/// taken).
pub fn next_hour() -> i64 {
    let now = aims_agent::window::now_ms();
    aims_agent::window::align(now, 3_600_000) + 3_600_000 + 1_234
}

/// The spooled summaries, in window and sequence order.
pub fn spooled(cfg: &AgentConfig) -> Vec<SummaryEnvelope> {
    let mut out: Vec<SummaryEnvelope> = std::fs::read_dir(&cfg.spool.dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_owned();
            (name.ends_with(".json") && name.starts_with(|c: char| c.is_ascii_digit()))
                .then(|| serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap())
        })
        .collect();
    out.sort_by_key(|e| (e.window_start_ms, e.seq));
    out
}

/// The summaries of the windows that saw events, as JSON (bit for bit: floats print exactly).
pub fn summaries(cfg: &AgentConfig) -> Vec<serde_json::Value> {
    spooled(cfg)
        .into_iter()
        .filter(|e| e.summary.events > 0 || e.summary.labelled > 0 || e.summary.rejected > 0)
        .map(|e| serde_json::to_value(&e.summary).unwrap())
        .collect()
}
