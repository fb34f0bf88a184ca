//! CBPE and PCA reconstruction error through the profile builder, the window summary and the
//! catalogue: estimates from merged summaries equal those from one summary of all the rows,
//! and both are metrics objectives can name.

use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::metrics::catalogue::{check, measure, Measurement, Selector};
use aims_core::metrics::{report, Measured};
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use proptest::prelude::*;

fn schema() -> ModelSchema {
    let f = |name: &str, kind| FeatureSpec {
        name: name.into(),
        kind,
    };
    ModelSchema {
        intersections: Vec::new(),
        name: "m".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![
            f("x", FeatureKind::Numeric),
            f("y", FeatureKind::Numeric),
            f("c", FeatureKind::Categorical),
        ],
        // One protected attribute, by the sign of x: its groups' scores (and so their
        // estimated TPR and FPR) differ.
        attributes: vec![AttributeSpec {
            min_group_samples: None,
            name: "band".into(),
            groups: vec!["lo".into(), "hi".into()],
            reference_group: None,
        }],
    }
    .validated()
    .expect("valid schema")
}

/// A row whose score is an over-confident function of x.
fn event(x: f64, y: f64, c: &str, label: Option<u32>) -> Event {
    let score = 1.0 / (1.0 + (-2.0 * x).exp());
    Event {
        id: None,
        ts_ms: 0,
        features: vec![
            FeatureValue::Numeric(x),
            FeatureValue::Numeric(y),
            FeatureValue::Categorical(c.to_owned()),
        ],
        groups: vec![u16::from(x >= 0.0)],
        prediction: Prediction::Class {
            class: u32::from(score >= 0.5),
            score: Some(score),
        },
        label: label.map(Target::Class),
        latency_ms: None,
    }
}

/// Reference row `i`: x on a grid, y = x plus a small wobble, categories p, q, r at 3 : 2 : 1,
/// and a label that follows sigmoid(x) (positive when a hashed uniform is below it).
fn reference_row(i: u32) -> (f64, f64, &'static str, u32) {
    let x = f64::from(i % 100) / 25.0 - 2.0;
    let wobble = f64::from((i * 37) % 11) / 20.0 - 0.25;
    let u = f64::from((i * 7919) % 1000) / 1000.0;
    let c = ["p", "p", "p", "q", "q", "r"][(i % 6) as usize];
    (x, x + wobble, c, u32::from(u < 1.0 / (1.0 + (-x).exp())))
}

fn reference(schema: &ModelSchema) -> ReferenceProfile {
    let mut b = ProfileBuilder::new(schema);
    for i in 0..1000u32 {
        let (x, y, c, label) = reference_row(i);
        b.add(&event(x, y, c, Some(label)));
    }
    b.finish()
}

fn summarise(schema: &ModelSchema, profile: &ReferenceProfile, events: &[Event]) -> WindowSummary {
    let mut s = WindowSummary::new(schema, profile);
    for e in events {
        s.record(schema, profile, e);
    }
    s
}

fn model_metric(name: &str, summary: &WindowSummary, schema: &ModelSchema) -> Measured {
    let profile = reference(schema);
    let r = report(schema, &profile, summary, None);
    measure(name, &Selector::default(), &r)
        .expect("metric")
        .value
}

#[test]
fn the_profile_carries_both_models_and_the_catalogue_names_their_metrics() {
    let schema = schema();
    let profile = reference(&schema);
    let cbpe = profile.cbpe.as_ref().expect("calibration fitted");
    assert!(cbpe.calibrated, "over-confident scores need calibration");
    assert!(!cbpe.map.x.is_empty());
    let model = profile.reconstruction.as_ref().expect("PCA fitted");
    assert!(!model.components.is_empty() && model.components.len() < 3);
    assert!(profile.hash_is_valid());
    for name in [
        "estimated_accuracy",
        "estimated_precision",
        "estimated_recall",
        "estimated_f1",
        "estimated_roc_auc",
        "reconstruction_error",
    ] {
        check(name, &Selector::default(), Some(&schema)).expect("in the catalogue");
    }
    // Unlabelled rows: the estimate exists, the realised accuracy does not.
    let rows: Vec<Event> = (0..200)
        .map(|i| {
            event(
                f64::from(i) / 50.0 - 2.0,
                f64::from(i) / 50.0 - 2.0,
                "p",
                None,
            )
        })
        .collect();
    let s = summarise(&schema, &profile, &rows);
    let est = model_metric("estimated_accuracy", &s, &schema);
    assert!(
        matches!(est, Measured::Value(v) if (0.5..=1.0).contains(&v)),
        "{est:?}"
    );
    assert!(matches!(
        model_metric("accuracy", &s, &schema),
        Measured::Undefined(_)
    ));
    // Breaking the x ~ y correlation raises the reconstruction error.
    let aligned = model_metric("reconstruction_error", &s, &schema);
    let broken: Vec<Event> = (0..200)
        .map(|i| {
            event(
                f64::from(i) / 50.0 - 2.0,
                2.0 - f64::from(i) / 50.0,
                "p",
                None,
            )
        })
        .collect();
    let broken = model_metric(
        "reconstruction_error",
        &summarise(&schema, &profile, &broken),
        &schema,
    );
    match (aligned, broken) {
        (Measured::Value(a), Measured::Value(b)) => {
            // The categorical column is its own direction, outside the kept component, so the
            // aligned rows keep about one standard deviation of error.
            assert!(b > a + 0.4, "aligned {a}, broken {b}");
            assert!(model.alerts(b), "{b} within the thresholds");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn summaries_from_before_these_fields_still_read_and_merge() {
    let schema = schema();
    let profile = reference(&schema);
    let mut s = summarise(&schema, &profile, &[event(0.5, 0.5, "p", None)]);
    let mut old = serde_json::to_value(&s).unwrap();
    let obj = old.as_object_mut().unwrap();
    assert!(obj.remove("cbpe").is_some() && obj.remove("reconstruction").is_some());
    let old: WindowSummary = serde_json::from_value(old).expect("old form reads");
    assert!(old.cbpe.is_none() && old.reconstruction.is_none());
    s.merge(&old).expect("merges");
    // Part of the window lacks the sums: no estimate rather than a partial one.
    assert!(s.cbpe.is_none() && s.reconstruction.is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn estimates_from_merged_summaries_equal_one_summary(
        rows in prop::collection::vec((-3.0f64..3.0, -3.0f64..3.0, 0usize..4), 1..120),
        cuts in prop::collection::vec(0usize..120, 0..4),
    ) {
        let schema = schema();
        let profile = reference(&schema);
        let events: Vec<Event> = rows
            .iter()
            .map(|&(x, y, c)| event(x, y, ["p", "q", "r", "unseen"][c], None))
            .collect();
        let whole = summarise(&schema, &profile, &events);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (events.len() + 1)).collect();
        cuts.sort_unstable();
        let mut merged = WindowSummary::new(&schema, &profile);
        let mut start = 0;
        for end in cuts.into_iter().chain([events.len()]) {
            merged.merge(&summarise(&schema, &profile, &events[start..end])).unwrap();
            start = end;
        }
        let (a, b) = (
            report(&schema, &profile, &whole, None),
            report(&schema, &profile, &merged, None),
        );
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * (1.0 + x.abs());
        let (ea, eb) = (
            a.estimated.as_ref().unwrap().estimates,
            b.estimated.as_ref().unwrap().estimates,
        );
        prop_assert_eq!(ea.rows, eb.rows);
        for (x, y) in [
            (ea.accuracy, eb.accuracy),
            (ea.precision, eb.precision),
            (ea.recall, eb.recall),
            (ea.f1, eb.f1),
        ] {
            prop_assert!(close(x.value, y.value), "{:?} vs {:?}", x, y);
        }
        prop_assert_eq!(ea.roc_auc.is_some(), eb.roc_auc.is_some());
        if let (Some(x), Some(y)) = (ea.roc_auc, eb.roc_auc) {
            prop_assert!(close(x.value, y.value));
        }
        let (ga, gb) = (&a.estimated.as_ref().unwrap().groups, &b.estimated.as_ref().unwrap().groups);
        prop_assert_eq!(ga.len(), 1);
        prop_assert_eq!(ga["band"].keys().collect::<Vec<_>>(), gb["band"].keys().collect::<Vec<_>>());
        for (g, x) in &ga["band"] {
            let y = &gb["band"][g];
            prop_assert_eq!(x.rows, y.rows);
            for (u, v) in [
                (x.accuracy, y.accuracy),
                (x.precision, y.precision),
                (x.recall, y.recall),
                (x.f1, y.f1),
                (x.fpr, y.fpr),
            ] {
                prop_assert!(close(u.value, v.value), "{} {:?} vs {:?}", g, u, v);
            }
        }
        let (ra, rb) = (a.reconstruction.unwrap(), b.reconstruction.unwrap());
        match (ra.value, rb.value) {
            (Measured::Value(x), Measured::Value(y)) => prop_assert!(close(x, y)),
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert_eq!(ra.alert, rb.alert);
    }
}

#[test]
fn per_group_estimates_are_metrics_objectives_can_name() {
    let schema = schema();
    let profile = reference(&schema);
    let sel = |attribute: Option<&str>, group: Option<&str>| Selector {
        attribute: attribute.map(str::to_owned),
        group: group.map(str::to_owned),
        ..Selector::default()
    };
    for (metric, selector) in [
        ("estimated_tpr", sel(Some("band"), Some("lo"))),
        ("estimated_fpr", sel(Some("band"), Some("hi"))),
        ("estimated_accuracy", sel(Some("band"), Some("hi"))),
        ("estimated_f1", sel(Some("band"), Some("other"))),
        (
            "estimated_equal_opportunity_difference",
            sel(Some("band"), None),
        ),
        (
            "estimated_equalized_odds_difference",
            sel(Some("band"), None),
        ),
        ("estimated_accuracy", sel(None, None)),
    ] {
        check(metric, &selector, Some(&schema)).unwrap_or_else(|e| panic!("{metric}: {e}"));
    }
    // A group without its attribute, an attribute without a group, an unknown group.
    assert_eq!(
        check(
            "estimated_accuracy",
            &sel(Some("band"), None),
            Some(&schema)
        )
        .unwrap_err()
        .field,
        "group"
    );
    assert_eq!(
        check("estimated_tpr", &sel(None, Some("lo")), Some(&schema))
            .unwrap_err()
            .field,
        "attribute"
    );
    assert_eq!(
        check(
            "estimated_tpr",
            &sel(Some("band"), Some("mid")),
            Some(&schema)
        )
        .unwrap_err()
        .field,
        "group"
    );
    assert_eq!(
        check(
            "estimated_roc_auc",
            &sel(Some("band"), Some("lo")),
            Some(&schema)
        )
        .unwrap_err()
        .field,
        "attribute"
    );

    // Unlabelled rows on a grid of x: the hi group (x ≥ 0) is mostly predicted positive.
    let rows: Vec<Event> = (0..400)
        .map(|i| {
            let x = f64::from(i) / 100.0 - 2.0;
            event(x, x, "p", None)
        })
        .collect();
    let s = summarise(&schema, &profile, &rows);
    let r = report(&schema, &profile, &s, None);
    let value = |metric: &str, selector: &Selector| match measure(metric, selector, &r).unwrap() {
        Measurement {
            value: Measured::Value(v),
            samples,
            ..
        } => (v, samples),
        other => panic!("{metric}: {other:?}"),
    };
    let (tpr_lo, n_lo) = value("estimated_tpr", &sel(Some("band"), Some("lo")));
    let (tpr_hi, n_hi) = value("estimated_tpr", &sel(Some("band"), Some("hi")));
    let (fpr_lo, _) = value("estimated_fpr", &sel(Some("band"), Some("lo")));
    let (fpr_hi, _) = value("estimated_fpr", &sel(Some("band"), Some("hi")));
    assert_eq!((n_lo, n_hi), (200, 200));
    assert!(
        tpr_hi > tpr_lo + 0.5 && fpr_hi > fpr_lo + 0.5,
        "{tpr_lo} {tpr_hi} {fpr_lo} {fpr_hi}"
    );
    let (eod, _) = value(
        "estimated_equal_opportunity_difference",
        &sel(Some("band"), None),
    );
    assert!((eod - (tpr_hi - tpr_lo)).abs() < 1e-12);
    let (eqodds, _) = value(
        "estimated_equalized_odds_difference",
        &sel(Some("band"), None),
    );
    assert!((eqodds - (tpr_hi - tpr_lo).max(fpr_hi - fpr_lo)).abs() < 1e-12);
    // The group estimate is the estimate over the group's rows alone.
    let hi_only = summarise(&schema, &profile, &rows[200..]);
    let whole_hi = report(&schema, &profile, &hi_only, None);
    let (acc_hi, _) = value("estimated_accuracy", &sel(Some("band"), Some("hi")));
    match measure("estimated_accuracy", &Selector::default(), &whole_hi)
        .unwrap()
        .value
    {
        Measured::Value(v) => assert!((v - acc_hi).abs() < 1e-12, "{v} vs {acc_hi}"),
        other => panic!("{other:?}"),
    }
    // An objective with its own fairness options measures the estimate the same way.
    let options = aims_core::metrics::fairness::FairnessOptions {
        confidence: 0.9,
        min_group_samples: 10,
    };
    let with_options = aims_core::metrics::catalogue::measure_with_options(
        "estimated_tpr",
        &sel(Some("band"), Some("hi")),
        &options,
        &schema,
        &s,
        &r,
    )
    .unwrap();
    assert_eq!(with_options.value, Measured::Value(tpr_hi));
    // `other` has no rows: undefined, with no samples, rather than a made-up value.
    let m = measure("estimated_tpr", &sel(Some("band"), Some("other")), &r).unwrap();
    assert!(
        matches!(m.value, Measured::Undefined(_)) && m.samples == 0,
        "{m:?}"
    );
}
