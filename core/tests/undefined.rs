//! Undefined is neither an error nor NaN: metrics without a value say why, and nothing panics on
//! empty or degenerate windows.

use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::metrics::{measure, report, Measured, Selector};
use aims_core::profile::ProfileBuilder;
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;

fn schema() -> ModelSchema {
    ModelSchema {
        intersections: Vec::new(),
        name: "m".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![
            FeatureSpec {
                name: "x".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureSpec {
                name: "c".into(),
                kind: FeatureKind::Categorical,
            },
        ],
        attributes: vec![AttributeSpec {
            min_group_samples: None,
            name: "g".into(),
            groups: vec!["a".into(), "b".into()],
            reference_group: Some("a".into()),
        }],
    }
    .validated()
    .expect("valid")
}

fn event(x: f64, group: u16, label: u32) -> Event {
    Event {
        id: None,
        ts_ms: 0,
        features: vec![
            FeatureValue::Numeric(x),
            FeatureValue::Categorical("k".into()),
        ],
        groups: vec![group],
        prediction: Prediction::Class {
            class: 1,
            score: Some(0.7),
        },
        label: Some(Target::Class(label)),
        latency_ms: None,
    }
}

fn undefined(m: &Measured) -> bool {
    matches!(m, Measured::Undefined(reason) if !reason.is_empty())
}

#[test]
fn degenerate_windows_report_reasons_not_nan() {
    let s = schema();
    let mut b = ProfileBuilder::new(&s);
    for _ in 0..10 {
        b.add(&event(5.0, 0, 1));
    }
    let profile = b.finish();

    // Every label negative, group b absent from the reference: no TPR, no AUC.
    let mut w = WindowSummary::new(&s, &profile);
    for i in 0..20 {
        w.record(&s, &profile, &event(f64::from(i), (i % 2) as u16, 0));
    }
    let r = report(&s, &profile, &w, None);
    let c = r.performance.classification.as_ref().expect("binary");
    assert!(undefined(&c.roc_auc), "{:?}", c.roc_auc);
    assert!(undefined(&c.recall));
    assert!(undefined(&r.fairness["g"].groups["b"].tpr));
    assert!(undefined(&r.fairness["g"].equal_opportunity_difference));
    assert_eq!(r.fairness["g"].groups["b"].fpr, Measured::Value(1.0));
    assert!(
        undefined(r.drift["x"].wasserstein.as_ref().expect("numeric")),
        "constant reference"
    );
    assert!(undefined(&r.latency.p50));

    let text = serde_json::to_string(&r).expect("serialises");
    assert!(!text.contains("NaN") && !text.contains("null"), "{text}");

    let m = measure(
        "tpr",
        &Selector {
            attribute: Some("g".into()),
            group: Some("b".into()),
            ..Selector::default()
        },
        &r,
    )
    .expect("known metric");
    assert!(undefined(&m.value));
}

#[test]
fn an_empty_window_is_all_undefined() {
    let s = schema();
    let profile = ProfileBuilder::new(&s).finish();
    let w = WindowSummary::new(&s, &profile);
    let r = report(&s, &profile, &w, Some(60.0));
    assert!(undefined(&r.dataset_drift.share));
    assert!(undefined(&r.performance.label_coverage));
    assert!(undefined(&r.fairness["g"].demographic_parity_ratio));
    assert!(r.drift.values().all(|d| undefined(&d.psi)));
}
