//! The summary budget (DESIGN.md): a one-minute summary of the 20-feature bench model (6,000
//! events, CBPE and PCA reconstruction on) stays under 16 KiB of JSON. BENCHMARKS.md quotes
//! the same figure from `cargo bench -p aims-core --bench summary`.

#[path = "support/twenty_features.rs"]
mod twenty_features;

use aims_core::profile::ProfileBuilder;
use aims_core::summary::WindowSummary;
use twenty_features::{events, schema};

const BUDGET: usize = 16 * 1024;

#[test]
fn one_minute_twenty_feature_summary_fits_the_budget() {
    let schema = schema();
    let mut builder = ProfileBuilder::new(&schema);
    for e in events(20_000, 0.0, 7) {
        builder.add(&e);
    }
    let profile = builder.finish();
    assert!(profile.cbpe.is_some() && profile.reconstruction.is_some());
    let mut s = WindowSummary::new(&schema, &profile);
    for e in events(6_000, 0.3, 11) {
        s.record(&schema, &profile, &e);
    }
    let json = serde_json::to_value(&s).unwrap();
    let bytes = serde_json::to_vec(&s).unwrap().len();
    let parts: Vec<String> = json
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} {}", serde_json::to_vec(v).unwrap().len()))
        .collect();
    eprintln!("{bytes} bytes: {}", parts.join(", "));
    assert!(s.cbpe.as_ref().is_some_and(|c| c.rows() == 6_000));
    assert!(
        bytes <= BUDGET,
        "{bytes} bytes, over the {BUDGET}-byte budget"
    );
    // Exactness: the summary read back is the same summary.
    let back: WindowSummary = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}
