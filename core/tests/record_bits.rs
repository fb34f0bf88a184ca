//! Recording is bit-identical to the summaries committed in `fixtures/record/`, which were
//! written by the per-event code before the recording speed-ups (the plan's edge index, the
//! PCA projection's independent accumulators, the batch fold). Any change to what a summary
//! holds, down to the last bit of a float sum, fails here.
//!
//! The events cover values inside, below and above the reference range, a large reference
//! (positions in the tail bins only) and a small one (positions in every bin), CBPE and PCA on,
//! labelled and unlabelled events. Regenerate (only for an intended change of the summary's
//! content) with `AIMS_WRITE_RECORD_FIXTURES=1 cargo test -p aims-core --test record_bits`.

#[path = "support/twenty_features.rs"]
mod twenty_features;

use aims_core::event::Event;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::ModelSchema;
use aims_core::summary::WindowSummary;
use twenty_features::{events, schema};

fn profile(schema: &ModelSchema, n: usize) -> ReferenceProfile {
    let mut builder = ProfileBuilder::new(schema);
    for e in events(n, 0.0, 7) {
        builder.add(&e);
    }
    builder.finish()
}

/// In range, shifted, far above and far below the reference.
fn current() -> Vec<Event> {
    let mut all = events(6_000, 0.3, 11);
    all.extend(events(500, 40.0, 13));
    all.extend(events(500, -30.0, 17));
    all.extend(events(1_000, 0.0, 19));
    all
}

fn check(name: &str, summary: &WindowSummary) {
    let path = format!(
        "{}/tests/fixtures/record/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let got = serde_json::to_string_pretty(summary).expect("serialises");
    if std::env::var_os("AIMS_WRITE_RECORD_FIXTURES").is_some() {
        std::fs::write(&path, &got).expect("writes the fixture");
    }
    let want = std::fs::read_to_string(&path).expect("fixture committed");
    assert!(
        got == want,
        "{name}: the recorded summary differs from {path}"
    );
}

#[test]
fn per_event_recording_matches_the_committed_summaries() {
    let schema = schema();
    for (name, n) in [("large_reference", 20_000), ("small_reference", 600)] {
        let profile = profile(&schema, n);
        let mut s = WindowSummary::new(&schema, &profile);
        for e in &current() {
            s.record(&schema, &profile, e);
        }
        check(name, &s);
    }
}
