//! `WindowSummary::record_columns` gives, to the bit, the summary that `record_scored` of the
//! same rows one by one gives: random batches of a binary model (CBPE and PCA on, a large and a
//! small reference), a multiclass one (per-class probabilities) and a regression one (with an
//! intersection), with missing values, signed zeros, values far outside the reference, unseen
//! categories beyond the cap, batch dictionaries in any order with unused and repeated
//! entries, failed predictions, scores or not, labels or not. Summaries are compared as JSON,
//! whose floats round-trip exactly.

#[path = "support/twenty_features.rs"]
#[allow(dead_code)]
mod twenty_features;

use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::{
    AttributeSpec, FeatureKind, FeatureSpec, IntersectionSpec, ModelSchema, Task,
};
use aims_core::summary::{
    Column, ColumnBuffers, Columns, ColumnsError, PredictionBuffers, WindowSummary, MISSING_CODE,
};
use proptest::prelude::*;
use twenty_features::Rng;

const REFERENCE_CATEGORIES: [&str; 6] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];

/// One row: the event, and the per-class probabilities of a multiclass prediction.
fn row(schema: &ModelSchema, rng: &mut Rng, hostile: bool, i: usize) -> (Event, Option<Vec<f64>>) {
    let features = schema
        .features
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let pick = if hostile { rng.below(12) } else { 11 };
            match (f.kind, pick) {
                (_, 0) => FeatureValue::Missing,
                (FeatureKind::Numeric, 1) => {
                    FeatureValue::Numeric(if rng.below(2) == 0 { 0.0 } else { -0.0 })
                }
                (FeatureKind::Numeric, 2) => FeatureValue::Numeric((rng.unit() - 0.5) * 1e5),
                (FeatureKind::Numeric, _) => {
                    FeatureValue::Numeric((rng.unit() + rng.unit() + rng.unit()) * (k as f64 + 1.0))
                }
                // 48 names outside the reference: more than the cap of 32 per window.
                (FeatureKind::Categorical, 1..=4) => {
                    FeatureValue::Categorical(format!("unseen-{}", rng.below(48)))
                }
                (FeatureKind::Categorical, _) => {
                    FeatureValue::Categorical(REFERENCE_CATEGORIES[rng.below(6)].to_owned())
                }
            }
        })
        .collect();
    let groups = schema
        .attributes
        .iter()
        .map(|a| rng.below(a.bucket_count()) as u16)
        .collect();
    let k = schema.classes.len().max(2);
    let failed = hostile && rng.below(30) == 0;
    let (prediction, scores) = match schema.task {
        _ if failed => (Prediction::Failed, None),
        Task::Regression => (Prediction::Value(rng.unit() * 10.0 - 2.0), None),
        Task::Binary => {
            let s = rng.unit();
            let score = (!hostile || rng.below(5) > 0).then_some(s);
            (
                Prediction::Class {
                    class: u32::from(s >= 0.5),
                    score,
                },
                None,
            )
        }
        Task::Multiclass => {
            let mut p: Vec<f64> = (0..k).map(|_| rng.unit() + 0.01).collect();
            let total: f64 = p.iter().sum();
            p.iter_mut().for_each(|x| *x /= total);
            let class = rng.below(k) as u32;
            let scores = (!hostile || rng.below(4) > 0).then_some(p);
            (Prediction::Class { class, score: None }, scores)
        }
    };
    let label = (!hostile || rng.below(2) == 0).then(|| match schema.task {
        Task::Regression => Target::Value(rng.unit() * 10.0 - 1.0),
        _ => Target::Class(rng.below(k) as u32),
    });
    let event = Event {
        id: None,
        ts_ms: 1_000_000 + rng.below(60_000) as i64 + i as i64,
        features,
        groups,
        prediction,
        label,
        latency_ms: (!hostile || rng.below(3) > 0).then(|| rng.unit() * 40.0),
    };
    (event, scores)
}

fn profile(schema: &ModelSchema, n: usize) -> ReferenceProfile {
    let mut rng = Rng(7);
    let mut b = ProfileBuilder::new(schema);
    for i in 0..n {
        b.add(&row(schema, &mut rng, false, i).0);
    }
    b.finish()
}

fn attribute(name: &str, groups: &[&str]) -> AttributeSpec {
    AttributeSpec {
        min_group_samples: None,
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        reference_group: None,
    }
}

fn small(task: Task) -> ModelSchema {
    small_with(task, task == Task::Regression)
}

/// [`small`], with or without the intersection of its two attributes.
fn small_with(task: Task, intersected: bool) -> ModelSchema {
    let feature = |name: &str, kind| FeatureSpec {
        name: name.into(),
        kind,
    };
    let multiclass = task == Task::Multiclass;
    ModelSchema {
        name: "small".into(),
        version: "1".into(),
        task,
        classes: if multiclass {
            vec!["low".into(), "mid".into(), "high".into()]
        } else {
            vec![]
        },
        positive_class: multiclass.then(|| "high".into()),
        features: vec![
            feature("x", FeatureKind::Numeric),
            feature("colour", FeatureKind::Categorical),
            feature("y", FeatureKind::Numeric),
        ],
        attributes: vec![
            attribute("g", &["a", "b"]),
            attribute("h", &["p", "q", "r"]),
        ],
        intersections: if intersected {
            vec![IntersectionSpec::Attributes(vec!["g".into(), "h".into()])]
        } else {
            vec![]
        },
    }
    .validated()
    .expect("valid schema")
}

/// The column buffers of one batch, and its categorical dictionaries (shuffled, with an unused
/// entry and one category listed twice).
struct Buffers {
    numeric: Vec<Vec<f64>>,
    codes: Vec<Vec<u32>>,
    dictionaries: Vec<Vec<String>>,
    ts: Vec<i64>,
    groups: Vec<u16>,
    prediction: PredictionBuffers,
    labels: Vec<Option<Target>>,
    latency: Vec<f64>,
    class_scores: Vec<f64>,
}

fn buffers(schema: &ModelSchema, rows: &[(Event, Option<Vec<f64>>)], rng: &mut Rng) -> Buffers {
    let kinds: Vec<FeatureKind> = schema.features.iter().map(|f| f.kind).collect();
    let mut b = Buffers {
        numeric: Vec::new(),
        codes: Vec::new(),
        dictionaries: Vec::new(),
        ts: rows.iter().map(|(e, _)| e.ts_ms).collect(),
        groups: rows.iter().flat_map(|(e, _)| e.groups.clone()).collect(),
        prediction: PredictionBuffers::new(schema.task),
        labels: rows.iter().map(|(e, _)| e.label).collect(),
        latency: rows
            .iter()
            .map(|(e, _)| e.latency_ms.unwrap_or(f64::NAN))
            .collect(),
        class_scores: Vec::new(),
    };
    for (j, kind) in kinds.iter().enumerate() {
        match kind {
            FeatureKind::Numeric => b.numeric.push(
                rows.iter()
                    .map(|(e, _)| match e.features[j] {
                        FeatureValue::Numeric(x) => x,
                        _ => f64::NAN,
                    })
                    .collect(),
            ),
            FeatureKind::Categorical => {
                let mut dictionary: Vec<String> = rows
                    .iter()
                    .filter_map(|(e, _)| match &e.features[j] {
                        FeatureValue::Categorical(c) => Some(c.clone()),
                        _ => None,
                    })
                    .collect();
                dictionary.sort();
                dictionary.dedup();
                dictionary.push("never-used".into());
                for i in (1..dictionary.len()).rev() {
                    dictionary.swap(i, rng.below(i + 1));
                }
                let twice = dictionary.first().cloned();
                dictionary.extend(twice);
                let last = dictionary.len() - 1;
                let codes = rows
                    .iter()
                    .map(|(e, _)| match &e.features[j] {
                        FeatureValue::Categorical(c) => {
                            let at = dictionary.iter().position(|d| d == c).expect("listed");
                            // The repeated entry stands for its category on some rows.
                            if at == 0 && rng.below(2) == 0 {
                                last as u32
                            } else {
                                at as u32
                            }
                        }
                        _ => MISSING_CODE,
                    })
                    .collect();
                b.codes.push(codes);
                b.dictionaries.push(dictionary);
            }
        }
    }
    let k = schema.classes.len();
    for (e, scores) in rows {
        b.prediction.push(e.prediction);
        match scores {
            Some(p) => b.class_scores.extend(p),
            None => b.class_scores.extend(std::iter::repeat_n(f64::NAN, k)),
        }
    }
    b
}

fn columns<'a>(
    schema: &ModelSchema,
    b: &'a Buffers,
    dictionaries: &'a [Vec<&'a str>],
) -> Columns<'a> {
    let (mut n, mut c) = (b.numeric.iter(), b.codes.iter().zip(dictionaries));
    Columns {
        rows: b.ts.len(),
        ts_ms: &b.ts,
        features: schema
            .features
            .iter()
            .map(|f| match f.kind {
                FeatureKind::Numeric => Column::Numeric(n.next().expect("a column")),
                FeatureKind::Categorical => {
                    let (codes, dictionary) = c.next().expect("a column");
                    Column::Categorical { codes, dictionary }
                }
            })
            .collect(),
        groups: &b.groups,
        prediction: b.prediction.column(),
        labels: Some(&b.labels),
        latency_ms: Some(&b.latency),
        class_scores: (schema.task == Task::Multiclass).then_some(b.class_scores.as_slice()),
    }
}

/// Folds `n` random rows, cut into batches at `cuts`, both ways; the JSON of both summaries.
fn both_ways(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    seed: u64,
    n: usize,
    cuts: &[usize],
) -> (String, String) {
    let mut rng = Rng(seed | 1);
    let rows: Vec<_> = (0..n).map(|i| row(schema, &mut rng, true, i)).collect();
    let mut by_row = WindowSummary::new(schema, profile);
    for (e, scores) in &rows {
        by_row.record_scored(schema, profile, e, scores.as_deref());
    }
    let mut by_column = WindowSummary::new(schema, profile);
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (n + 1)).collect();
    bounds.extend([0, n]);
    bounds.sort_unstable();
    for w in bounds.windows(2) {
        let part = &rows[w[0]..w[1]];
        let b = buffers(schema, part, &mut rng);
        let dictionaries: Vec<Vec<&str>> = b
            .dictionaries
            .iter()
            .map(|d| d.iter().map(String::as_str).collect())
            .collect();
        let block = columns(schema, &b, &dictionaries);
        if block.rows > 2 && rng.below(2) == 0 {
            // Through `slice`, as a caller folding a run of rows does.
            let mid = 1 + rng.below(block.rows - 1);
            for r in [0..mid, mid..block.rows] {
                let s = block.slice(r).expect("in bounds");
                by_column.record_columns(schema, profile, &s).expect("fits");
            }
        } else {
            by_column
                .record_columns(schema, profile, &block)
                .expect("fits");
        }
    }
    // The same rows through `ColumnBuffers`, in one batch.
    let mut buffers = ColumnBuffers::new(schema);
    for (e, scores) in &rows {
        buffers.push(e, scores.as_deref());
    }
    let dictionaries = buffers.dictionaries();
    let mut buffered = WindowSummary::new(schema, profile);
    buffered
        .record_columns(schema, profile, &buffers.columns(&dictionaries))
        .expect("fits");
    let json = |s: &WindowSummary| serde_json::to_string_pretty(s).expect("serialises");
    assert_eq!(json(&by_row), json(&buffered), "through ColumnBuffers");
    (json(&by_row), json(&by_column))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn binary_with_cbpe_and_pca(seed in any::<u64>(), n in 0usize..700, cuts in prop::collection::vec(any::<usize>(), 0..4), large in any::<bool>()) {
        let schema = twenty_features::schema();
        let profile = profile(&schema, if large { 5_000 } else { 300 });
        prop_assert!(profile.cbpe.is_some() && profile.reconstruction.is_some());
        let (a, b) = both_ways(&schema, &profile, seed, n, &cuts);
        prop_assert!(a == b, "summaries differ:\n{}", first_difference(&a, &b));
    }

    #[test]
    fn multiclass_with_class_probabilities(seed in any::<u64>(), n in 0usize..500, cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        let schema = small(Task::Multiclass);
        let profile = profile(&schema, 400);
        let (a, b) = both_ways(&schema, &profile, seed, n, &cuts);
        prop_assert!(a == b, "summaries differ:\n{}", first_difference(&a, &b));
    }

    #[test]
    fn multiclass_with_an_intersection(seed in any::<u64>(), n in 0usize..500, cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        // Classification outcomes are counted per state, then per group and per intersection
        // cell: the cells must get what row by row gives them.
        let schema = small_with(Task::Multiclass, true);
        let profile = profile(&schema, 400);
        let (a, b) = both_ways(&schema, &profile, seed, n, &cuts);
        prop_assert!(a == b, "summaries differ:\n{}", first_difference(&a, &b));
    }

    #[test]
    fn binary_with_an_intersection(seed in any::<u64>(), n in 0usize..500, cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        let schema = small_with(Task::Binary, true);
        let profile = profile(&schema, 400);
        let (a, b) = both_ways(&schema, &profile, seed, n, &cuts);
        prop_assert!(a == b, "summaries differ:\n{}", first_difference(&a, &b));
    }

    #[test]
    fn regression_with_an_intersection(seed in any::<u64>(), n in 0usize..500, cuts in prop::collection::vec(any::<usize>(), 0..4)) {
        let schema = small(Task::Regression);
        let profile = profile(&schema, 400);
        let (a, b) = both_ways(&schema, &profile, seed, n, &cuts);
        prop_assert!(a == b, "summaries differ:\n{}", first_difference(&a, &b));
    }
}

fn first_difference(a: &str, b: &str) -> String {
    a.lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map_or_else(
            || "(one is longer)".to_owned(),
            |(i, (x, y))| format!("line {i}: per event {x:?}, by column {y:?}"),
        )
}

#[test]
fn a_batch_that_does_not_fit_records_nothing() {
    let schema = small(Task::Binary);
    let profile = profile(&schema, 100);
    let mut rng = Rng(3);
    let rows: Vec<_> = (0..10).map(|i| row(&schema, &mut rng, true, i)).collect();
    let mut b = buffers(&schema, &rows, &mut rng);
    b.groups.pop();
    let dictionaries: Vec<Vec<&str>> = b
        .dictionaries
        .iter()
        .map(|d| d.iter().map(String::as_str).collect())
        .collect();
    let mut s = WindowSummary::new(&schema, &profile);
    let empty = s.clone();
    let err = s
        .record_columns(&schema, &profile, &columns(&schema, &b, &dictionaries))
        .expect_err("one group short");
    assert_eq!(
        err,
        ColumnsError::Length {
            part: "groups".into(),
            got: 19,
            want: 20
        }
    );
    let mut block = columns(&schema, &b, &dictionaries);
    block.groups = &b.groups[..0];
    block.features.swap(0, 1);
    assert_eq!(
        s.record_columns(&schema, &profile, &block),
        Err(ColumnsError::Kind(0))
    );
    assert_eq!(s, empty);
    assert!(s.is_empty());
}
