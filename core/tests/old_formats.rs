//! Profiles and summaries stored before the Wasserstein position fields existed still load,
//! still merge with new ones, and still give a normed Wasserstein distance.

use aims_core::event::{Event, FeatureValue, Prediction};
use aims_core::metrics::drift;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use serde_json::Value;

fn schema() -> ModelSchema {
    ModelSchema {
        intersections: Vec::new(),
        name: "m".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![FeatureSpec {
            name: "x".into(),
            kind: FeatureKind::Numeric,
        }],
        attributes: vec![],
    }
    .validated()
    .expect("valid schema")
}

fn event(x: f64) -> Event {
    Event {
        id: None,
        ts_ms: 0,
        features: vec![FeatureValue::Numeric(x)],
        groups: vec![],
        prediction: Prediction::Class {
            class: 0,
            score: None,
        },
        label: None,
        latency_ms: None,
    }
}

/// Drops the given keys from every object in `v`, recursively.
fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(o) => {
            for k in keys {
                o.remove(*k);
            }
            o.values_mut().for_each(|x| strip(x, keys));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip(x, keys)),
        _ => {}
    }
}

#[test]
fn old_profiles_and_summaries_still_measure_wasserstein() {
    let schema = schema();
    let mut b = ProfileBuilder::new(&schema);
    // 2,000 reference values: a large reference, so only the tail bins record positions.
    for i in 0..2000 {
        b.add(&event(f64::from(i).powf(1.5)));
    }
    let profile = b.finish();
    let mut current = WindowSummary::new(&schema, &profile);
    for i in 0..1500 {
        current.record(&schema, &profile, &event(f64::from(i).powf(1.6)));
    }
    let exact = drift::features(&schema, &profile, &current)["x"]
        .wasserstein
        .clone()
        .and_then(|w| w.value())
        .expect("defined");

    let mut old_profile = serde_json::to_value(&profile).expect("JSON");
    strip(
        &mut old_profile,
        &["bin_offsets", "tail_edges", "tail_bins", "tail_offsets"],
    );
    let old_profile: ReferenceProfile =
        serde_json::from_value(old_profile).expect("old profile loads");
    let mut old_summary = serde_json::to_value(&current).expect("JSON");
    strip(
        &mut old_summary,
        &["bin_positions", "tail_bins", "tail_positions"],
    );
    let old_summary: WindowSummary =
        serde_json::from_value(old_summary).expect("old summary loads");

    for (what, p, s) in [
        ("old profile", &old_profile, &current),
        ("old summary", &profile, &old_summary),
        ("both old", &old_profile, &old_summary),
    ] {
        let w = drift::features(&schema, p, s)["x"]
            .wasserstein
            .clone()
            .and_then(|w| w.value())
            .unwrap_or_else(|| panic!("{what}: wasserstein undefined"));
        // The fallbacks assume within-bin spreads; on this smooth pair they stay close.
        assert!(
            (w - exact).abs() < 0.05 * exact,
            "{what}: {w} against {exact}"
        );
    }

    // A new summary merged with an old one keeps its counts and drops the partial positions.
    let mut merged = current.clone();
    merged.merge(&old_summary).expect("same shape");
    assert_eq!(merged.features, {
        let mut both = old_summary.clone();
        both.merge(&old_summary).expect("same shape");
        both.features
    });
}

/// Fairness results and measurements stored before intervals existed (in evaluations, reports
/// or assess files) still read: no intervals, the default confidence, no minimum group size.
#[test]
fn fairness_results_without_intervals_still_load() {
    use aims_core::metrics::fairness::{AttributeFairness, ParityIntervals};
    use aims_core::metrics::Measurement;
    let old = serde_json::json!({
        "groups": {"F": {"n": 10, "labelled": 4, "selection_rate": 0.3, "tpr": 0.5,
                         "fpr": {"undefined": "no labelled negatives"}}},
        "demographic_parity_difference": 0.0,
        "demographic_parity_ratio": 1.0,
        "equalized_odds_difference": 0.0,
        "equalized_odds_ratio": 1.0,
        "equal_opportunity_difference": 0.0,
        "equal_opportunity_ratio": 1.0,
        "statistical_parity_difference": {"undefined": "the attribute declares no reference_group"},
        "disparate_impact": {"undefined": "the attribute declares no reference_group"}
    });
    let f: AttributeFairness = serde_json::from_value(old).expect("old fairness JSON loads");
    assert_eq!(f.intervals, ParityIntervals::default());
    assert_eq!(f.confidence, 0.95);
    assert_eq!(f.min_group_samples, 0);
    assert!(f.too_small.is_empty());
    assert!(f.groups["F"].selection_rate_interval.is_none());

    let m: Measurement =
        serde_json::from_value(serde_json::json!({"value": 0.7, "samples": 40})).expect("loads");
    assert!(m.interval.is_none() && m.too_small.is_empty());
    // And a measurement without an interval writes exactly the old shape.
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        serde_json::json!({"value": 0.7, "samples": 40})
    );
}
