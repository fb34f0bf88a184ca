//! Property tests of the merge laws: merge is associative and commutative with the empty
//! summary as identity, and every metric of a merged summary equals the metric of one summary
//! of all the data, whatever the split (late labels included).

use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::metrics::fairness::{fairness_with, FairnessOptions};
use aims_core::metrics::report;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use proptest::prelude::*;
use serde_json::Value;

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
                name: "y".into(),
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
    .expect("valid schema")
}

fn event_strategy() -> impl Strategy<Value = Event> {
    (
        prop::option::weighted(0.9, -50.0f64..150.0),
        prop::option::weighted(0.9, 0u32..20),
        prop::option::weighted(0.9, prop::sample::select(vec!["p", "q", "r", "new"])),
        0u16..3,
        (0u32..2, prop::option::weighted(0.8, 0.0f64..=1.0)),
        prop::option::weighted(0.7, 0u32..2),
        prop::option::of(0.0f64..500.0),
        (0i64..3_600_000, any::<bool>()),
    )
        .prop_map(
            |(x, y, c, g, (class, score), label, latency, (ts, failed))| Event {
                id: None,
                ts_ms: ts,
                features: vec![
                    x.map_or(FeatureValue::Missing, FeatureValue::Numeric),
                    y.map_or(FeatureValue::Missing, |v| {
                        FeatureValue::Numeric(f64::from(v))
                    }),
                    c.map_or(FeatureValue::Missing, |s| {
                        FeatureValue::Categorical(s.to_owned())
                    }),
                ],
                groups: vec![g],
                prediction: if failed && ts % 17 == 0 {
                    Prediction::Failed
                } else {
                    Prediction::Class { class, score }
                },
                label: label.map(Target::Class),
                latency_ms: latency,
            },
        )
}

fn reference(schema: &ModelSchema) -> ReferenceProfile {
    let mut b = ProfileBuilder::new(schema);
    for i in 0..400u32 {
        let f = f64::from(i);
        b.add(&Event {
            id: None,
            ts_ms: 0,
            features: vec![
                FeatureValue::Numeric((f * 7.3) % 100.0),
                FeatureValue::Numeric(f64::from(i % 12)),
                FeatureValue::Categorical(["p", "q", "r"][(i % 3) as usize].to_owned()),
            ],
            groups: vec![(i % 3) as u16],
            prediction: Prediction::Class {
                class: i % 2,
                score: Some((f / 400.0).min(1.0)),
            },
            label: Some(Target::Class((i / 2) % 2)),
            latency_ms: Some(f / 10.0),
        });
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

/// Two floats equal up to the rounding of summing in another order.
fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs()))
}

/// A string that is CBPE's packed `f64`s (base64 of little-endian bytes), read back.
fn packed_f64s(s: &str) -> Option<Vec<f64>> {
    use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
    use base64::Engine;
    let bytes = B64.decode(s.trim_end_matches('=')).ok()?;
    (bytes.len() % 8 == 0).then(|| {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    })
}

/// Equal up to float rounding: summing in another order moves the last bits, also of the
/// sums CBPE packs into base64 strings (compared as the floats they hold).
fn approx_eq(a: &Value, b: &Value, path: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            if close(x, y) {
                Ok(())
            } else {
                Err(format!("{path}: {x} != {y}"))
            }
        }
        (Value::String(x), Value::String(y)) if x != y => match (packed_f64s(x), packed_f64s(y)) {
            (Some(x), Some(y))
                if x.len() == y.len() && x.iter().zip(&y).all(|(x, y)| close(*x, *y)) =>
            {
                Ok(())
            }
            _ => Err(format!("{path}: {a} != {b}")),
        },
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .try_for_each(|(i, (x, y))| approx_eq(x, y, &format!("{path}[{i}]"))),
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            x.iter().try_for_each(|(k, v)| {
                y.get(k)
                    .ok_or_else(|| format!("{path}.{k} missing"))
                    .and_then(|w| approx_eq(v, w, &format!("{path}.{k}")))
            })
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{path}: {a} != {b}")),
    }
}

fn json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("serialisable")
}

fn merged(
    parts: &[&WindowSummary],
    schema: &ModelSchema,
    profile: &ReferenceProfile,
) -> WindowSummary {
    let mut acc = WindowSummary::new(schema, profile);
    for p in parts {
        acc.merge(p).expect("same profile");
    }
    acc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_is_associative_and_commutative_with_identity(
        a in prop::collection::vec(event_strategy(), 0..40),
        b in prop::collection::vec(event_strategy(), 0..40),
        c in prop::collection::vec(event_strategy(), 0..40),
    ) {
        let schema = schema();
        let profile = reference(&schema);
        let (sa, sb, sc) = (summarise(&schema, &profile, &a), summarise(&schema, &profile, &b), summarise(&schema, &profile, &c));

        let mut left = sa.clone();
        left.merge(&sb).unwrap();
        left.merge(&sc).unwrap();
        let mut bc = sb.clone();
        bc.merge(&sc).unwrap();
        let mut right = sa.clone();
        right.merge(&bc).unwrap();
        prop_assert!(approx_eq(&json(&left), &json(&right), "").is_ok(), "{:?}", approx_eq(&json(&left), &json(&right), ""));

        let mut ab = sa.clone();
        ab.merge(&sb).unwrap();
        let mut ba = sb.clone();
        ba.merge(&sa).unwrap();
        prop_assert!(approx_eq(&json(&ab), &json(&ba), "").is_ok());

        let mut with_identity = sa.clone();
        with_identity.merge(&WindowSummary::new(&schema, &profile)).unwrap();
        prop_assert_eq!(&with_identity, &sa);
        let mut identity_with = WindowSummary::new(&schema, &profile);
        identity_with.merge(&sa).unwrap();
        prop_assert_eq!(&identity_with, &sa);
    }

    #[test]
    fn metrics_of_any_split_equal_metrics_of_all(
        events in prop::collection::vec(event_strategy(), 1..120),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let schema = schema();
        let profile = reference(&schema);
        let whole = summarise(&schema, &profile, &events);

        let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(events.len() + 1)).collect();
        bounds.extend([0, events.len()]);
        bounds.sort_unstable();
        let parts: Vec<WindowSummary> = bounds
            .windows(2)
            .map(|w| summarise(&schema, &profile, &events[w[0]..w[1]]))
            .collect();
        let refs: Vec<&WindowSummary> = parts.iter().rev().collect();
        let combined = merged(&refs, &schema, &profile);

        let r_whole = report(&schema, &profile, &whole, Some(60.0));
        let r_split = report(&schema, &profile, &combined, Some(60.0));
        let cmp = approx_eq(&json(&r_whole), &json(&r_split), "report");
        prop_assert!(cmp.is_ok(), "{:?}", cmp);
    }

    /// Fairness intervals are functions of integer counts, so a merged summary gives exactly
    /// (not only nearly) the intervals of one summary of all the rows, whatever the confidence
    /// and minimum group size.
    #[test]
    fn intervals_of_merged_summaries_equal_intervals_of_all(
        events in prop::collection::vec(event_strategy(), 1..160),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        confidence in 0.5f64..0.999,
        min_group_samples in 0u64..30,
    ) {
        let schema = schema();
        let profile = reference(&schema);
        let whole = summarise(&schema, &profile, &events);
        let mut bounds: Vec<usize> = cuts.iter().map(|i| i.index(events.len() + 1)).collect();
        bounds.extend([0, events.len()]);
        bounds.sort_unstable();
        let parts: Vec<WindowSummary> = bounds
            .windows(2)
            .map(|w| summarise(&schema, &profile, &events[w[0]..w[1]]))
            .collect();
        let combined = merged(&parts.iter().collect::<Vec<_>>(), &schema, &profile);
        let options = FairnessOptions { confidence, min_group_samples };
        let a = fairness_with(&schema, &whole, &options);
        let b = fairness_with(&schema, &combined, &options);
        prop_assert_eq!(&a, &b);
        let g = &a["g"];
        prop_assert!(g.too_small.values().all(|&n| n < min_group_samples));
        let compared = g.groups.len() - g.too_small.len();
        if let Some(i) = &g.intervals.demographic_parity_ratio {
            prop_assert_eq!(i.groups, compared);
            prop_assert!(i.interval.lower <= i.interval.upper);
            // Katz's interval contains its estimate; the 0.5-adjusted one (a zero count) need not.
            let v = g.demographic_parity_ratio.value().unwrap();
            if !i.interval.adjusted {
                prop_assert!(i.interval.lower <= v + 1e-12 && v <= i.interval.upper + 1e-12);
            }
        }
    }

    #[test]
    fn late_labels_merge_to_the_same_metrics(
        events in prop::collection::vec(event_strategy(), 1..80),
    ) {
        let schema = schema();
        let profile = reference(&schema);
        let whole = summarise(&schema, &profile, &events);

        let mut on_time = WindowSummary::new(&schema, &profile);
        let mut late = WindowSummary::new(&schema, &profile);
        for e in &events {
            let unlabelled = Event { label: None, ..e.clone() };
            on_time.record(&schema, &profile, &unlabelled);
            if let Some(label) = e.label {
                late.record_label(&schema, &e.prediction, &e.groups, label);
            }
        }
        on_time.merge(&late).unwrap();
        let cmp = approx_eq(
            &json(&report(&schema, &profile, &whole, Some(60.0))),
            &json(&report(&schema, &profile, &on_time, Some(60.0))),
            "report",
        );
        prop_assert!(cmp.is_ok(), "{:?}", cmp);
    }
}
