//! Multiclass summaries: per-class probabilities are validated with the field named, merge like
//! every other count, and summaries from before they existed still merge and still report.

use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::metrics::report;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use serde_json::json;

fn schema() -> ModelSchema {
    ModelSchema {
        name: "tier".into(),
        version: "1".into(),
        task: Task::Multiclass,
        classes: vec!["low".into(), "mid".into(), "high".into()],
        positive_class: Some("high".into()),
        features: vec![FeatureSpec {
            name: "x".into(),
            kind: FeatureKind::Numeric,
        }],
        attributes: vec![AttributeSpec {
            name: "g".into(),
            groups: vec!["a".into(), "b".into()],
            reference_group: Some("a".into()),
        }],
    }
    .validated()
    .expect("valid schema")
}

/// Event `i` of a small deterministic stream, with its class probabilities.
fn event(i: u32) -> (Event, Vec<f64>) {
    let class = i % 3;
    let truth = (i / 2) % 3;
    let mut p = vec![0.2, 0.2, 0.2];
    p[class as usize] = 0.6;
    let event = Event {
        id: None,
        ts_ms: i64::from(i),
        features: vec![FeatureValue::Numeric(f64::from(i % 17))],
        groups: vec![(i % 3) as u16],
        prediction: Prediction::Class {
            class,
            score: Some(p[2]),
        },
        label: Some(Target::Class(truth)),
        latency_ms: None,
    };
    (event, p)
}

fn profile(schema: &ModelSchema) -> ReferenceProfile {
    let mut b = ProfileBuilder::new(schema);
    for i in 0..200 {
        b.add(&event(i).0);
    }
    b.finish()
}

fn summary(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    range: std::ops::Range<u32>,
) -> WindowSummary {
    let mut s = WindowSummary::new(schema, profile);
    for i in range {
        let (e, p) = event(i);
        s.record(schema, profile, &e);
        if let Some(Target::Class(t)) = e.label {
            s.record_class_scores(&p, t);
        }
    }
    s
}

#[test]
fn class_scores_are_validated_with_the_field_named() {
    let schema = schema();
    let ok = schema
        .class_scores(&json!({"label": "low", "scores": [0.5, 0.25, 0.25]}))
        .expect("valid");
    assert_eq!(ok, Some(vec![0.5, 0.25, 0.25]));
    assert_eq!(
        schema
            .class_scores(&json!({"label": "low"}))
            .expect("absent"),
        None
    );
    let short = schema
        .class_scores(&json!({"scores": [0.5, 0.5]}))
        .expect_err("two probabilities for three classes");
    assert_eq!(short.field, "prediction.scores");
    let high = schema
        .class_scores(&json!({"scores": [0.5, 1.5, 0.0]}))
        .expect_err("out of range");
    assert_eq!(high.field, "prediction.scores[1]");
    let text = schema
        .class_scores(&json!({"scores": "0.5"}))
        .expect_err("not an array");
    assert_eq!(text.field, "prediction.scores");
}

#[test]
fn merged_halves_report_what_the_whole_reports() {
    let schema = schema();
    let profile = profile(&schema);
    let whole = summary(&schema, &profile, 0..300);
    let mut merged = summary(&schema, &profile, 0..120);
    merged
        .merge(&summary(&schema, &profile, 120..300))
        .expect("same shape");
    // Counts are equal; float sums up to rounding.
    assert_eq!(merged.groups, whole.groups);
    let (a, b) = (
        merged.performance.class_scores.as_ref().expect("kept"),
        whole.performance.class_scores.as_ref().expect("kept"),
    );
    assert_eq!(
        (a.scored, &a.positive, &a.negative),
        (b.scored, &b.positive, &b.negative)
    );
    assert!((a.log_loss_sum - b.log_loss_sum).abs() < 1e-9 * b.log_loss_sum);
    let r = report(&schema, &profile, &whole, None);
    let c = r.performance.classification.expect("classification");
    let m = c.multiclass.expect("multiclass block");
    assert_eq!(m.per_class.len(), 3);
    assert!(c.log_loss.value().is_some(), "{:?}", c.log_loss);
    assert!(m.roc_auc_ovr.value().is_some());
    // micro averages of a single-label model equal accuracy
    assert_eq!(m.micro.precision, c.accuracy);
    let per_class = &r.fairness["g"].per_class;
    assert_eq!(per_class.len(), 3);
    let rates: f64 = per_class
        .values()
        .map(|p| p.selection_rate["a"].value().expect("group a occurs"))
        .sum();
    assert!(
        (rates - 1.0).abs() < 1e-12,
        "each group's class rates sum to one: {rates}"
    );
}

#[test]
fn a_summary_from_before_class_scores_still_merges_and_reports() {
    let schema = schema();
    let profile = profile(&schema);
    let new = summary(&schema, &profile, 0..90);
    let mut old_json = serde_json::to_value(summary(&schema, &profile, 90..150)).expect("JSON");
    old_json["performance"]
        .as_object_mut()
        .expect("object")
        .remove("class_scores");
    for groups in old_json["groups"].as_array_mut().expect("groups") {
        for g in groups.as_array_mut().expect("buckets") {
            g.as_object_mut().expect("object").remove("predicted");
        }
    }
    let old: WindowSummary = serde_json::from_value(old_json).expect("old form deserialises");
    let mut merged = new.clone();
    merged.merge(&old).expect("same shape");
    assert_eq!(merged.events, 150);
    let r = report(&schema, &profile, &merged, None);
    let c = r.performance.classification.expect("classification");
    assert!(c.accuracy.value().is_some());
    assert!(
        c.log_loss.value().is_none(),
        "partial probabilities are not reported"
    );
    assert!(r.fairness["g"].per_class.is_empty());
}

mod split {
    use super::*;
    use proptest::prelude::*;

    fn events() -> impl Strategy<Value = Vec<(u32, u32, u16, [f64; 3])>> {
        prop::collection::vec(
            (
                0u32..3,
                0u32..3,
                0u16..3,
                (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0),
            ),
            1..120,
        )
        .prop_map(|v| {
            v.into_iter()
                .map(|(class, truth, g, (a, b, c))| {
                    let total = a + b + c + 1e-9;
                    (class, truth, g, [a / total, b / total, c / total])
                })
                .collect()
        })
    }

    fn record(
        s: &mut WindowSummary,
        schema: &ModelSchema,
        profile: &ReferenceProfile,
        e: &(u32, u32, u16, [f64; 3]),
    ) {
        let (class, truth, g, p) = *e;
        let event = Event {
            id: None,
            ts_ms: 0,
            features: vec![FeatureValue::Numeric(p[0] * 20.0)],
            groups: vec![g],
            prediction: Prediction::Class {
                class,
                score: Some(p[2]),
            },
            label: Some(Target::Class(truth)),
            latency_ms: None,
        };
        s.record(schema, profile, &event);
        s.record_class_scores(&p, truth);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any split, merged, has the counts and the multiclass metrics of the whole.
        #[test]
        fn any_split_merges_to_the_whole(events in events(), cut in 0usize..120) {
            let schema = schema();
            let profile = profile(&schema);
            let cut = cut.min(events.len());
            let mut whole = WindowSummary::new(&schema, &profile);
            let (mut a, mut b) = (whole.clone(), whole.clone());
            for (i, e) in events.iter().enumerate() {
                record(&mut whole, &schema, &profile, e);
                record(if i < cut { &mut a } else { &mut b }, &schema, &profile, e);
            }
            b.merge(&a).expect("same shape");
            prop_assert_eq!(&b.groups, &whole.groups);
            prop_assert_eq!(&b.performance.confusion, &whole.performance.confusion);
            let m = |s: &WindowSummary| {
                let r = report(&schema, &profile, s, None);
                let c = r.performance.classification.expect("classification");
                let mc = c.multiclass.expect("multiclass");
                (c.log_loss.value(), mc.roc_auc_ovr.value(), mc.weighted.f1.value(), mc.micro.recall.value())
            };
            let (x, y) = (m(&b), m(&whole));
            let close = |p: Option<f64>, q: Option<f64>| match (p, q) {
                (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * q.abs().max(1.0),
                (p, q) => p.is_none() && q.is_none(),
            };
            prop_assert!(close(x.0, y.0) && close(x.1, y.1) && close(x.2, y.2) && close(x.3, y.3), "{:?} vs {:?}", x, y);
        }
    }
}
