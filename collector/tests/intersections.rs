//! Intersectional groups in the collector: a summary whose cells do not add up to its
//! attributes' groups is refused naming the field and counted by reason, without costing the
//! good summaries beside it; an objective on `gender*age_band` is evaluated with its interval,
//! the schema's minimum group size and its too-small cells in the evidence record; and
//! `/metrics` carries the intersection and its cells as labels.

mod common;

use std::time::Duration;

use aims_core::event::{Event, Prediction, Target};
use aims_core::profile::ProfileBuilder;
use aims_core::schema::{AttributeSpec, DetailedIntersection, IntersectionSpec, ModelSchema, Task};
use aims_core::summary::WindowSummary;
use aims_core::wire::SummaryEnvelope;
use aims_testkit::{eventually, prom::sample};
use serde_json::Value;

const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: cells-parity
    title: No gender and age band cell is disadvantaged
    model: cells
    metric: demographic_parity_ratio
    attribute: "gender*age_band"
    target: ">= 0.8"
    breach: significant
    window: 1h
    min_samples: 100
    owner: head-of-credit-risk@example.com
"#;

fn schema() -> ModelSchema {
    let attribute = |name: &str, groups: &[&str]| AttributeSpec {
        name: name.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        reference_group: None,
        min_group_samples: None,
    };
    ModelSchema {
        name: "cells".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![],
        attributes: vec![
            attribute("gender", &["F", "M"]),
            attribute("age_band", &["young", "old"]),
        ],
        intersections: vec![IntersectionSpec::Detailed(DetailedIntersection {
            of: vec!["gender".into(), "age_band".into()],
            min_group_samples: Some(20),
        })],
    }
    .validated()
    .unwrap()
}

/// 600 events: F and M, young and old, 150 a cell, and 10 in `other*old`; old F selected
/// least.
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    for (g, a, n, selected) in [
        (0u16, 0u16, 150, 90),
        (0, 1, 150, 45),
        (1, 0, 150, 90),
        (1, 1, 150, 90),
        (2, 1, 10, 5),
    ] {
        for i in 0..n {
            out.push(Event {
                id: None,
                ts_ms: 0,
                features: vec![],
                groups: vec![g, a],
                prediction: Prediction::Class {
                    class: u32::from(i < selected),
                    score: None,
                },
                label: Some(Target::Class(u32::from(i % 2 == 0))),
                latency_ms: None,
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intersections_are_validated_evaluated_and_exported() {
    let c = common::InProcess::start(OBJECTIVES, |_| {});
    let (base, start) = (c.base.clone(), c.start);
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(60), "healthz", || async {
        client.get(format!("{base}/healthz")).send().await.ok()
    })
    .await;
    let schema = schema();
    let profile = ProfileBuilder::new(&schema).finish();
    let put = client
        .put(format!("{base}/v1/models/cells/reference"))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let mut summary = WindowSummary::new(&schema, &profile);
    for mut e in events() {
        e.ts_ms = start + 500;
        summary.record(&schema, &profile, &e);
    }
    let envelope = |seq: u64, s: WindowSummary| {
        SummaryEnvelope::new("a1", "cells", "1", start, 60_000, seq, s)
    };

    // Forged: F*young's predictions moved into M*old, every total unchanged.
    let mut forged = summary.clone();
    let cells = &mut forged.intersections[0].cells;
    let moved = std::mem::take(&mut cells[0]);
    cells[4].count += moved.count;
    cells[4].selected += moved.selected;
    cells[4].labelled += moved.labelled;
    cells[4].tp += moved.tp;
    cells[4].fp += moved.fp;
    cells[4].tn += moved.tn;
    cells[4].fn_ += moved.fn_;
    let r = client
        .post(format!("{base}/v1/summaries"))
        .json(&envelope(1, forged))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["field"], "summary.intersections[0].cells", "{body}");

    let r = client
        .post(format!("{base}/v1/summaries"))
        .json(&envelope(0, summary))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let record = eventually(Duration::from_secs(60), "cells evaluated", || async {
        let v: Value = client
            .get(format!(
                "{base}/v1/objectives/cells-parity/evaluations?limit=1000"
            ))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let last = v["items"].as_array()?.last()?["record"]["data"].clone();
        (last["samples"].as_u64() == Some(610)).then_some(last)
    })
    .await;
    // Old F selected at 0.3 against 0.6: ratio 0.5, the whole interval below 0.8.
    assert_eq!(record["verdict"], "breached", "{record}");
    assert_eq!(record["reading"], "interval_beyond", "{record}");
    assert!(
        (record["value"].as_f64().unwrap() - 0.5).abs() < 1e-12,
        "{record}"
    );
    assert_eq!(
        record["too_small"],
        serde_json::json!({"other*old": 10}),
        "the schema's min_group_samples for the intersection: {record}"
    );

    // The gauges are set after the cycle's evidence is appended: wait for them.
    let metrics = eventually(Duration::from_secs(60), "intersection gauges", || async {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let cell = [("attribute", "gender*age_band"), ("group", "F*old")];
        sample(&text, "aims_model_selection_rate_ratio", &cell).map(|_| text)
    })
    .await;
    let labels = [
        ("model", "cells"),
        ("attribute", "gender*age_band"),
        ("metric", "demographic_parity_ratio"),
    ];
    let v = sample(&metrics, "aims_model_fairness", &labels).expect("intersection value");
    assert!((v - 0.5).abs() < 1e-12, "{v}");
    assert!(sample(&metrics, "aims_model_fairness_upper", &labels).expect("upper") < 0.8);
    let cell = [
        ("model", "cells"),
        ("attribute", "gender*age_band"),
        ("group", "F*old"),
    ];
    let rate = sample(&metrics, "aims_model_selection_rate_ratio", &cell).expect("a cell's rate");
    assert!((rate - 0.3).abs() < 1e-12, "{rate}");
    assert_eq!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "impossible")]
        ),
        Some(1.0),
        "{metrics}"
    );
    c.shutdown().await;
}
