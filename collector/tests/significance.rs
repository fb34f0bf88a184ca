//! The evaluator judges fairness objectives with their intervals (issue 18's collector side):
//! `breach: significant` fires only when the whole interval lies beyond the target, a straddling
//! interval reads `at_risk` (never silently `ok`), and every evaluation record carries the
//! interval, the reading and the groups left out as too small.

mod common;

use std::time::Duration;

use aims_testkit::fixtures::{envelope, profile, schema, summary, Traffic};
use aims_testkit::{eventually, prom::sample};
use serde_json::Value;

const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity-point
    title: Parity on the point value
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.99"
    window: 1h
    min_samples: 100
    for: 1s
    severity: critical
    owner: head-of-credit-risk@example.com
  - id: parity-significant
    title: Parity, significant breaches only
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.99"
    breach: significant
    min_group_samples: 50
    window: 1h
    min_samples: 100
    for: 1s
    severity: critical
    owner: head-of-credit-risk@example.com
  - id: parity-small
    title: Parity over groups of 250 or more
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    min_group_samples: 250
    window: 1h
    min_samples: 100
    owner: head-of-credit-risk@example.com
"#;

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn objective(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let v = get(client, format!("{base}/v1/objectives")).await;
    v["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The latest evaluation record of `id`, as stored in the evidence log.
async fn last_evaluation(client: &reqwest::Client, base: &str, id: &str) -> Option<Value> {
    let v = get(
        client,
        format!("{base}/v1/objectives/{id}/evaluations?limit=1000"),
    )
    .await;
    v["items"]
        .as_array()?
        .last()
        .map(|r| r["record"]["data"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn significant_objectives_fire_only_beyond_the_interval_and_record_it() {
    let c = common::InProcess::start(OBJECTIVES, |_| {});
    let (base, clock, start) = (c.base.clone(), c.clock.clone(), c.start);
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(20), "healthz", || async {
        client.get(format!("{base}/healthz")).send().await.ok()
    })
    .await;

    let schema = schema(3);
    let profile = profile(&schema);
    let put = client
        .put(format!("{base}/v1/models/{}/reference", schema.name))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let post = |e: aims_core::wire::SummaryEnvelope| {
        client.post(format!("{base}/v1/summaries")).json(&e).send()
    };

    // Steady traffic, 400 events: the point ratio is below 0.99 by chance alone, the interval
    // of the ratio at this size reaches well above it.
    let steady = envelope(
        "a1",
        start,
        0,
        summary(&schema, &profile, Traffic::Normal, 400, 3),
    );
    assert_eq!(post(steady).await.unwrap().status(), 202);
    let record = eventually(Duration::from_secs(20), "both evaluated", || async {
        let p = objective(&client, &base, "parity-point").await;
        let s = last_evaluation(&client, &base, "parity-significant").await?;
        (p["state"] == "pending" && s["samples"].as_u64() == Some(400)).then_some(s)
    })
    .await;
    assert_eq!(record["verdict"], "at_risk", "{record}");
    assert_eq!(record["reading"], "interval_straddles", "{record}");
    let (lower, upper) = (
        record["interval"]["lower"].as_f64().unwrap(),
        record["interval"]["upper"].as_f64().unwrap(),
    );
    let value = record["value"].as_f64().unwrap();
    assert!(lower < value && value < 0.99 && 0.99 < upper, "{record}");
    let small = last_evaluation(&client, &base, "parity-small")
        .await
        .unwrap();
    let counts = &small["too_small"];
    assert_eq!(
        counts["F"].as_u64().unwrap() + counts["M"].as_u64().unwrap(),
        400,
        "groups under min_group_samples are listed with their counts: {small}"
    );
    assert_eq!(small["verdict"], "not_measurable", "{small}");
    clock.advance(Duration::from_secs(2));
    eventually(Duration::from_secs(20), "point firing", || async {
        (objective(&client, &base, "parity-point").await["state"] == "firing").then_some(())
    })
    .await;
    let s = objective(&client, &base, "parity-significant").await;
    assert_eq!(
        s["state"], "ok",
        "a straddling interval starts no breach: {s}"
    );

    // /metrics has the interval beside the value.
    let metrics = aims_testkit::prom::scrape(&format!("{base}/metrics")).await;
    let labels = [
        ("model", "credit-scoring"),
        ("attribute", "gender"),
        ("metric", "demographic_parity_ratio"),
    ];
    let v = sample(&metrics, "aims_model_fairness", &labels).expect("value");
    let lo = sample(&metrics, "aims_model_fairness_lower", &labels).expect("lower");
    let hi = sample(&metrics, "aims_model_fairness_upper", &labels).expect("upper");
    assert!(lo <= v && v <= hi, "{lo} <= {v} <= {hi}");

    // Biased traffic: the whole interval lies below the target, so the significant one fires.
    let biased = envelope(
        "a2",
        start,
        0,
        summary(&schema, &profile, Traffic::Biased, 3000, 4),
    );
    assert_eq!(post(biased).await.unwrap().status(), 202);
    let record = eventually(Duration::from_secs(20), "significant pending", || async {
        let s = last_evaluation(&client, &base, "parity-significant").await?;
        (s["state"] == "pending").then_some(s)
    })
    .await;
    assert_eq!(record["verdict"], "breached", "{record}");
    assert_eq!(record["reading"], "interval_beyond", "{record}");
    assert!(record["interval"]["upper"].as_f64().unwrap() < 0.99);
    clock.advance(Duration::from_secs(2));
    eventually(Duration::from_secs(20), "significant firing", || async {
        (objective(&client, &base, "parity-significant").await["state"] == "firing").then_some(())
    })
    .await;

    c.shutdown().await;
}
