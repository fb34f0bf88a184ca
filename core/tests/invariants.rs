//! Summary invariants and checked merge: every summary recorded from events (and every merge of
//! them) is valid; forged summaries are refused naming the field; a merge that would wrap errs
//! and leaves the target as it was.

use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::invariants::{check_merge, validate, MAX_COUNT};
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::summary::{FeatureStats, MergeError, WindowSummary};
use proptest::prelude::*;

fn schema(task: Task) -> ModelSchema {
    ModelSchema {
        intersections: Vec::new(),
        name: "m".into(),
        version: "1".into(),
        task,
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
            reference_group: None,
        }],
    }
    .validated()
    .expect("valid schema")
}

fn prediction(task: Task, class: u32, score: Option<f64>, value: f64) -> Prediction {
    match task {
        Task::Regression => Prediction::Value(value),
        _ => Prediction::Class { class, score },
    }
}

fn target(task: Task, class: u32, value: f64) -> Target {
    match task {
        Task::Regression => Target::Value(value),
        _ => Target::Class(class),
    }
}

fn reference(schema: &ModelSchema) -> ReferenceProfile {
    let mut b = ProfileBuilder::new(schema);
    for i in 0..200u32 {
        b.add(&Event {
            id: None,
            ts_ms: 0,
            features: vec![
                FeatureValue::Numeric(f64::from(i % 50)),
                FeatureValue::Categorical(["p", "q"][(i % 2) as usize].to_owned()),
            ],
            groups: vec![(i % 3) as u16],
            prediction: prediction(schema.task, i % 2, Some(0.5), f64::from(i)),
            label: Some(target(schema.task, (i / 2) % 2, f64::from(i))),
            latency_ms: Some(f64::from(i)),
        });
    }
    b.finish()
}

#[derive(Debug, Clone)]
struct Raw {
    x: Option<f64>,
    c: Option<&'static str>,
    g: u16,
    class: u32,
    score: Option<f64>,
    label: Option<u32>,
    latency: Option<f64>,
    failed: bool,
    ts: i64,
}

fn raw_strategy() -> impl Strategy<Value = Raw> {
    (
        prop::option::weighted(0.9, -1e6f64..1e6),
        prop::option::weighted(0.9, prop::sample::select(vec!["p", "q", "new", "other"])),
        0u16..3,
        (0u32..2, prop::option::weighted(0.8, 0.0f64..=1.0)),
        prop::option::weighted(0.6, 0u32..2),
        prop::option::of(0.0f64..1e4),
        (any::<bool>(), 0i64..60_000),
    )
        .prop_map(
            |(x, c, g, (class, score), label, latency, (failed, ts))| Raw {
                x,
                c,
                g,
                class,
                score,
                label,
                latency,
                failed: failed && ts % 7 == 0,
                ts,
            },
        )
}

fn event(task: Task, r: &Raw) -> Event {
    Event {
        id: None,
        ts_ms: r.ts,
        features: vec![
            r.x.map_or(FeatureValue::Missing, FeatureValue::Numeric),
            r.c.map_or(FeatureValue::Missing, |s| {
                FeatureValue::Categorical(s.to_owned())
            }),
        ],
        groups: vec![r.g],
        prediction: if r.failed {
            Prediction::Failed
        } else {
            prediction(task, r.class, r.score, r.x.unwrap_or(1.0))
        },
        label: r.label.map(|l| target(task, l, f64::from(l) * 3.0)),
        latency_ms: r.latency,
    }
}

fn summarise(task: Task, raws: &[Raw]) -> (ModelSchema, ReferenceProfile, WindowSummary) {
    let schema = schema(task);
    let profile = reference(&schema);
    let mut s = WindowSummary::new(&schema, &profile);
    for r in raws {
        s.record(&schema, &profile, &event(task, r));
    }
    (schema, profile, s)
}

fn task_strategy() -> impl Strategy<Value = Task> {
    prop::sample::select(vec![Task::Binary, Task::Regression])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn recorded_and_merged_summaries_are_valid(
        task in task_strategy(),
        a in prop::collection::vec(raw_strategy(), 0..60),
        b in prop::collection::vec(raw_strategy(), 0..60),
        late in prop::collection::vec((0u32..2, 0usize..60), 0..10),
    ) {
        let (schema, profile, mut sa) = summarise(task, &a);
        prop_assert_eq!(validate(&sa), Ok(()));
        // A late summary holds labels for predictions recorded elsewhere.
        let mut sl = WindowSummary::new(&schema, &profile);
        for (label, i) in late {
            if let Some(r) = b.get(i).filter(|r| !r.failed) {
                let e = event(task, r);
                sl.record_label(&schema, &e.prediction, &e.groups, target(task, label, 2.0));
            }
        }
        prop_assert_eq!(validate(&sl), Ok(()));
        let (_, _, sb) = summarise(task, &b);
        sa.merge(&sb).unwrap();
        sa.merge(&sl).unwrap();
        prop_assert_eq!(validate(&sa), Ok(()));
    }

    #[test]
    fn a_merge_that_would_wrap_errs_and_changes_nothing(
        task in task_strategy(),
        a in prop::collection::vec(raw_strategy(), 1..30),
        b in prop::collection::vec(raw_strategy(), 1..30),
        which in 0usize..5,
    ) {
        let (_, _, sa) = summarise(task, &a);
        let (_, _, mut sb) = summarise(task, &b);
        // Forge one count of `sb` so that adding it to `sa` wraps a u64.
        let field = match which {
            0 => { sb.events = u64::MAX; "events" }
            1 => {
                let FeatureStats::Numeric(n) = &mut sb.features[0] else { unreachable!() };
                (n.missing, n.count) = (u64::MAX, u64::MAX);
                "features[0]"
            }
            2 => { sb.groups[0][usize::from(a[0].g)].count = u64::MAX; "groups[0]" }
            3 => {
                // One bin past what `sa` holds in it: the element-wise check of a count array.
                let FeatureStats::Numeric(held) = &sa.features[0] else { unreachable!() };
                let at = held.bins.iter().position(|&c| c > 0).unwrap_or(0);
                let FeatureStats::Numeric(n) = &mut sb.features[0] else { unreachable!() };
                n.bins[at] = u64::MAX;
                "features[0].bins"
            }
            _ => { sb.latency.zeros = u64::MAX; "latency" }
        };
        let wraps = check_merge(&sa, &sb).is_err();
        let mut target = sa.clone();
        let result = target.merge(&sb);
        prop_assert_eq!(wraps, result.is_err());
        if let Err(e) = result {
            prop_assert!(matches!(&e, MergeError::Overflow(f) if f.starts_with(field)), "{e:?} for {field}");
            prop_assert_eq!(&target, &sa);
        }
        // Forged past 2^53, the summary is invalid whether or not the merge would wrap.
        prop_assert!(validate(&sb).is_err());
    }
}

#[test]
fn forged_summaries_are_refused_naming_the_field() {
    let raws: Vec<Raw> = (0..40)
        .map(|i| Raw {
            x: Some(f64::from(i)),
            c: Some(if i % 2 == 0 { "p" } else { "new" }),
            g: (i % 3) as u16,
            class: (i % 2) as u32,
            score: Some(0.25),
            label: Some(((i / 2) % 2) as u32),
            latency: Some(f64::from(i)),
            failed: false,
            ts: i64::from(i),
        })
        .collect();
    let (_, _, good) = summarise(Task::Binary, &raws);
    assert_eq!(validate(&good), Ok(()));
    let field = |f: &dyn Fn(&mut WindowSummary)| {
        let mut s = good.clone();
        f(&mut s);
        validate(&s).expect_err("forged").field
    };
    // The cases: events of 2^63 with histograms summing to 40, max < min, negative
    // sums, counts near 2^64, non-finite values.
    assert_eq!(field(&|s| s.events = 1 << 63), "events");
    assert_eq!(field(&|s| s.events += 1), "features[0].count");
    assert_eq!(field(&|s| s.latency.zeros += 100), "latency.counts");
    assert_eq!(
        field(&|s| {
            if let FeatureStats::Numeric(n) = &mut s.features[0] {
                n.min = Some(100.0);
            }
        }),
        "features[0].min"
    );
    assert_eq!(
        field(&|s| {
            if let FeatureStats::Numeric(n) = &mut s.features[0] {
                n.sum_sq = -1.0;
            }
        }),
        "features[0].sum_sq"
    );
    assert_eq!(
        field(&|s| {
            if let FeatureStats::Numeric(n) = &mut s.features[0] {
                n.sum = f64::INFINITY;
            }
        }),
        "features[0].sum"
    );
    assert_eq!(
        field(&|s| {
            if let FeatureStats::Numeric(n) = &mut s.features[0] {
                n.bins[3] += 1;
            }
        }),
        "features[0].bins"
    );
    assert_eq!(
        field(&|s| {
            if let FeatureStats::Categorical(c) = &mut s.features[1] {
                c.overflow += 1;
            }
        }),
        "features[1].counts"
    );
    assert_eq!(
        field(&|s| s.prediction.class_counts[0] = u64::MAX - 5_440),
        "prediction.class_counts"
    );
    assert_eq!(
        field(&|s| s.performance.confusion[0] += 1),
        "performance.confusion"
    );
    assert_eq!(
        field(&|s| s.performance.brier_sum = -0.5),
        "performance.brier_sum"
    );
    assert_eq!(field(&|s| s.groups[0][1].tp += 1), "groups[0][1].tp");
    assert_eq!(field(&|s| s.groups[0][1].count += 1), "groups[0]");
    assert_eq!(field(&|s| s.latency.offset = i32::MIN), "latency.offset");
    assert_eq!(field(&|s| s.first_ts_ms = Some(1_000)), "first_ts_ms");
    // Every count consistently forged to 2^64 − 5,440 is still past the largest real count.
    let mut s = good.clone();
    s.events = u64::MAX - 5_440;
    assert!(validate(&s)
        .unwrap_err()
        .message
        .contains(&MAX_COUNT.to_string()));
}

/// Every maximal run of digits (with sign, point and exponent) in a summary's JSON, as byte ranges:
/// the places a forged number can go.
fn number_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            || (bytes[i] == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

fn forged_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_owned()),
        Just("18446744073709546176".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("-1".to_owned()),
        Just("1e308".to_owned()),
        Just("-1e308".to_owned()),
        Just("1e309".to_owned()),
        Just("0.5".to_owned()),
        Just("null".to_owned()),
        Just("\"7\"".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| format!("{x:e}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The summary parser under forged input: a valid summary's JSON with numbers replaced,
    /// bytes cut out, or the text truncated. Parsing and validating never panic; what parses
    /// either passes every invariant (and then merges with the original without panicking) or is
    /// refused naming a field; what does not parse is a serde error, never a crash. A merge that
    /// fails leaves the target unchanged.
    #[test]
    fn forged_summary_json_is_parsed_validated_and_merged_without_panic(
        task in task_strategy(),
        raws in prop::collection::vec(raw_strategy(), 1..40),
        edits in prop::collection::vec((any::<prop::sample::Index>(), forged_number()), 1..4),
        cut in prop::option::of((any::<prop::sample::Index>(), 0usize..16)),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let (_, _, original) = summarise(task, &raws);
        let mut text = serde_json::to_string(&original).unwrap();
        for (at, value) in edits {
            let spans = number_spans(&text);
            let (s, e) = spans[at.index(spans.len())];
            text.replace_range(s..e, &value);
        }
        if let Some((at, len)) = cut {
            let s = at.index(text.len());
            let e = (s + len).min(text.len());
            if text.is_char_boundary(s) && text.is_char_boundary(e) {
                text.replace_range(s..e, "");
            }
        }
        if let Some(at) = truncate {
            let n = at.index(text.len() + 1);
            if text.is_char_boundary(n) {
                text.truncate(n);
            }
        }
        match serde_json::from_str::<WindowSummary>(&text) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(forged) => match validate(&forged) {
                Err(e) => prop_assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}"),
                Ok(()) => {
                    let mut merged = original.clone();
                    if merged.merge(&forged).is_ok() {
                        // Two valid summaries can still sum past the exact-integer bound: that
                        // is refused naming the field, like any other forgery.
                        if let Err(e) = validate(&merged) {
                            prop_assert!(!e.field.is_empty(), "{e:?}");
                        }
                    } else {
                        prop_assert_eq!(&merged, &original);
                    }
                }
            },
        }
    }
}
