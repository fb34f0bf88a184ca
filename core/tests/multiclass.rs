//! Multiclass summaries: per-class probabilities are validated with the field named, merge like
//! every other count, and summaries from before they existed still merge and still report.

use aims_core::event::{
    Event, FeatureValue, Prediction, RawEvent, RejectReason, Target, SCORE_SUM_TOLERANCE,
};
use aims_core::invariants::validate;
use aims_core::metrics::report;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use serde_json::json;

fn schema() -> ModelSchema {
    ModelSchema {
        intersections: Vec::new(),
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
            min_group_samples: None,
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
fn scores_off_from_a_distribution_are_refused_naming_the_field() {
    let schema = schema();
    // Rounded to four decimals: within the tolerance.
    assert!(schema
        .class_scores(&json!({"scores": [0.3333, 0.3333, 0.3333]}))
        .expect("rounded probabilities")
        .is_some());
    for (scores, field) in [
        (json!([0.5, 0.5, 0.5]), "prediction.scores"),
        (json!([2.0, 1.0, -2.0]), "prediction.scores[0]"),
        (json!([0.5, -0.1, 0.6]), "prediction.scores[1]"),
        (json!([0.5, 0.5, null]), "prediction.scores[2]"),
        (json!([0.5, 0.5, 1e300]), "prediction.scores[2]"),
        (json!([0.1, 0.1, 0.1, 0.7]), "prediction.scores"),
    ] {
        let e = schema
            .class_scores(&json!({ "scores": scores }))
            .expect_err("bad scores");
        assert_eq!(e.field, field, "{scores}");
    }
    // NaN cannot be written in JSON; the text path (CSV cells) gets it as a number.
    let nan = schema
        .check_class_scores("scores", &[f64::NAN, 0.5, 0.5])
        .expect_err("NaN");
    assert_eq!(
        (nan.field.as_str(), nan.reason),
        ("scores[0]", RejectReason::InvalidNumber)
    );
    assert!((SCORE_SUM_TOLERANCE - 1e-3).abs() < f64::EPSILON);
}

#[test]
fn validate_refuses_bad_scores_and_validate_scored_returns_good_ones() {
    let schema = schema();
    let raw = |scores: serde_json::Value| -> RawEvent {
        serde_json::from_value(json!({
            "features": {"x": 1.0},
            "prediction": {"label": "mid", "scores": scores},
            "label": "high"
        }))
        .expect("raw event")
    };
    let (event, scores) = schema
        .validate_scored(raw(json!([0.2, 0.5, 0.3])), 0)
        .expect("valid");
    assert_eq!(scores, Some(vec![0.2, 0.5, 0.3]));
    let e = schema
        .validate(raw(json!([0.2, 0.5])), 0)
        .expect_err("short scores are refused by validate too");
    assert_eq!(
        (e.field.as_str(), e.reason),
        ("prediction.scores", RejectReason::InvalidNumber)
    );

    // record_scored counts the probabilities of a labelled event; a late label brings them
    // with record_label_scored; both satisfy the summary invariants.
    let profile = profile(&schema);
    let mut s = WindowSummary::new(&schema, &profile);
    s.record_scored(&schema, &profile, &event, scores.as_deref());
    let late = Event {
        label: None,
        ..event.clone()
    };
    s.record_scored(&schema, &profile, &late, Some(&[0.1, 0.1, 0.8]));
    let c = s.performance.class_scores.as_ref().expect("multiclass");
    assert_eq!(c.scored, 1, "the unlabelled event waits for its label");
    s.record_label_scored(
        &schema,
        &late.prediction,
        &late.groups,
        Target::Class(0),
        Some(&[0.1, 0.1, 0.8]),
    );
    let c = s.performance.class_scores.as_ref().expect("multiclass");
    assert_eq!(c.scored, 2);
    assert!((c.log_loss_sum - (-(0.3f64.ln()) - 0.1f64.ln())).abs() < 1e-12);
    validate(&s).expect("a recorded summary holds its invariants");
}

#[test]
fn forged_class_scores_are_refused_naming_the_field() {
    let schema = schema();
    let profile = profile(&schema);
    let good = summary(&schema, &profile, 0..60);
    validate(&good).expect("recorded");
    let forge = |f: &dyn Fn(&mut aims_core::summary::ClassScoreStats)| {
        let mut s = good.clone();
        f(s.performance.class_scores.as_mut().expect("multiclass"));
        validate(&s).expect_err("forged").field
    };
    assert_eq!(
        forge(&|c| c.scored -= 1),
        "performance.class_scores.positive[0]"
    );
    assert_eq!(forge(&|c| c.scored += 1), "performance.class_scores.scored");
    assert_eq!(
        forge(&|c| c.log_loss_sum = -1.0),
        "performance.class_scores.log_loss_sum"
    );
    assert_eq!(
        forge(&|c| c.negative[2].truncate(3)),
        "performance.class_scores.negative[2]"
    );
    assert_eq!(
        forge(&|c| {
            // One class-0 truth relabelled class 1: every per-class total still holds, but class
            // 1 now has more positives than labelled rows.
            let b0 = c.positive[0]
                .iter()
                .position(|&n| n > 0)
                .expect("a positive");
            let b1 = c.negative[1]
                .iter()
                .position(|&n| n > 0)
                .expect("a negative");
            c.positive[0][b0] -= 1;
            c.negative[0][b0] += 1;
            c.negative[1][b1] -= 1;
            c.positive[1][b1] += 1;
        }),
        "performance.class_scores.positive[1]"
    );
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

/// `class:` selects one class of a multiclass model for per-class precision, recall, F1 and
/// AUC, a group's rate of predicting it and its parity; the values are the report's per-class
/// ones. Anything else errs naming `class`.
#[test]
fn objectives_select_a_class() {
    use aims_core::objective::parse;
    let schema = schema();
    let profile = profile(&schema);
    let s = summary(&schema, &profile, 0..300);
    let r = report(&schema, &profile, &s, None);
    let objective = |metric: &str, extra: &str| {
        format!(
            "policy: p\nobjectives:\n  - id: o\n    title: t\n    model: tier\n    metric: {metric}\n{extra}    target: \">= 0.1\"\n    owner: x@example.com\n"
        )
    };
    let m = r
        .performance
        .classification
        .as_ref()
        .and_then(|c| c.multiclass.as_ref())
        .expect("multiclass");
    let measured = |metric: &str, extra: &str| {
        let file = parse(&objective(metric, extra), std::slice::from_ref(&schema))
            .unwrap_or_else(|e| panic!("{metric}: {e:?}"));
        let o = &file.objectives[0];
        assert_eq!(o.selector.class.as_deref(), Some("mid"));
        o.measure(&schema, &s, &r).expect("measured")
    };
    let mid = &m.per_class["mid"];
    for (metric, want) in [
        ("recall", &mid.recall),
        ("precision", &mid.precision),
        ("f1", &mid.f1),
        ("roc_auc", &mid.roc_auc),
    ] {
        let got = measured(metric, "    class: mid\n");
        assert_eq!(&got.value, want, "{metric}");
        // Class "mid" is never predicted right here: its F1 is undefined, as scikit-learn's.
        assert_eq!(want.value().is_some(), metric != "f1", "{metric}: {want:?}");
    }
    assert_ne!(
        mid.recall, m.macro_avg.recall,
        "one class's recall, not the macro average"
    );
    let parity = &r.fairness["g"].per_class["mid"];
    let got = measured(
        "demographic_parity_ratio",
        "    attribute: g\n    class: mid\n",
    );
    assert_eq!(got.value, parity.demographic_parity_ratio);
    let got = measured(
        "selection_rate",
        "    attribute: g\n    group: b\n    class: mid\n",
    );
    assert_eq!(got.value, parity.selection_rate["b"]);
    assert_ne!(
        got.value, r.fairness["g"].groups["b"].selection_rate,
        "the rate of predicting mid, not the positive class"
    );
    assert_eq!(got.samples, r.fairness["g"].groups["b"].n);

    let error = |metric: &str, extra: &str, schemas: &[ModelSchema]| {
        let errs = parse(&objective(metric, extra), schemas).expect_err("refused");
        (errs[0].location.clone(), errs[0].message.clone())
    };
    let here = std::slice::from_ref(&schema);
    let (at, why) = error("accuracy", "    class: mid\n", here);
    assert_eq!(at, "objectives[0] (o).class");
    assert!(why.contains("no per-class form"), "{why}");
    let (at, why) = error("recall", "    class: top\n", here);
    assert_eq!(at, "objectives[0] (o).class");
    assert!(why.contains("no class \"top\""), "{why}");
    let binary = ModelSchema {
        intersections: Vec::new(),
        task: Task::Binary,
        classes: vec!["0".into(), "1".into()],
        positive_class: Some("1".into()),
        ..schema.clone()
    }
    .validated()
    .expect("binary schema");
    let (at, why) = error(
        "recall",
        "    class: \"1\"\n",
        std::slice::from_ref(&binary),
    );
    assert_eq!(at, "objectives[0] (o).class");
    assert!(why.contains("not a multiclass model"), "{why}");
    let (at, _) = error(
        "demographic_parity_ratio",
        "    attribute: g\n    class: mid\n    breach: significant\n",
        here,
    );
    assert_eq!(at, "objectives[0] (o).breach");
}
