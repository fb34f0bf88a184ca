//! A three-class model through the sidecar, end to end: the golden case's rows POSTed to the
//! real `aims-agent` binary over HTTP (some labels inline, some sent later as late labels that
//! join their held predictions), with bad per-class probabilities mixed into the same body;
//! the summaries it ships to a test collector, merged, report the scikit-learn and Fairlearn
//! values of the golden case.

mod common;
#[path = "common/golden.rs"]
mod golden;

use std::time::Duration;

use aims_core::metrics::report;
use aims_core::profile::ProfileBuilder;
use aims_core::schema::ModelSchema;
use aims_core::summary::WindowSummary;
use aims_core::RawEvent;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiclass_events_and_late_labels_give_the_golden_values() {
    let fixture = golden::multiclass_fixture();
    let schema: ModelSchema = serde_json::from_value(fixture["schema"].clone()).expect("schema");
    let schema = schema.validated().expect("valid schema");
    let mut builder = ProfileBuilder::new(&schema);
    for e in fixture["reference"].as_array().expect("reference") {
        let raw: RawEvent = serde_json::from_value(e.clone()).expect("raw event");
        builder.add(&schema.validate(raw, 0).expect("valid reference event"));
    }
    let profile = builder.finish();

    let collector = TestCollector::start(None).await;
    let dir = temp_dir("multiclass");
    let profile_path = dir.join("profile.json");
    std::fs::write(&profile_path, serde_json::to_vec(&profile).expect("JSON")).expect("write");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"agent_id = "multiclass-agent"
{model}
[reference]
path = {profile_path:?}
cache = {cache:?}

[server]
listen = "127.0.0.1:0"
max_body_bytes = 8388608

[window]
length = "2s"
grace = "150ms"
max_lateness = "1m"

[labels]
join_capacity = 10000
join_ttl = "5m"

[ship]
collector_url = "{url}"
timeout = "2s"
initial_backoff = "50ms"
max_backoff = "400ms"
shutdown_timeout = "5s"

[spool]
dir = {spool:?}
max_bytes = 104857600
"#,
            model = golden::model_section(&fixture["schema"]),
            cache = dir.join("reference-cache.json"),
            url = collector.url(),
            spool = dir.join("spool"),
        ),
    )
    .expect("write config");
    let agent = Agent::start(&config);

    // Every other labelled event comes without its label, which follows as a late label. The
    // events carry no timestamp, so they count at their receive time.
    let mut lines = Vec::new();
    let mut late = Vec::new();
    let current = fixture["current"].as_array().expect("current");
    for (i, e) in current.iter().enumerate() {
        let mut e = e.clone();
        let event = e.as_object_mut().expect("event");
        event.remove("ts");
        if i % 2 == 0 && !event["label"].is_null() {
            let label = event.remove("label").expect("label");
            late.push(json!({"id": event["id"], "label": label}).to_string());
        }
        lines.push(e.to_string());
    }
    let bad = [
        (
            r#"{"id": "bad-1", "prediction": {"label": "low", "scores": [0.6, 0.6, 0.6]}, "label": "low"}"#,
            "prediction.scores",
        ),
        (
            r#"{"id": "bad-2", "prediction": {"label": "low", "scores": [0.5, 0.5]}, "label": "low"}"#,
            "prediction.scores",
        ),
        (
            r#"{"id": "bad-3", "prediction": {"label": "low", "scores": [1.1, -0.1, 0.0]}, "label": "low"}"#,
            "prediction.scores[0]",
        ),
    ];
    for (k, (item, _)) in bad.iter().enumerate() {
        lines.insert(k * 700, (*item).to_owned());
    }
    let client = reqwest::Client::new();
    let (status, reply) = post(
        &client,
        &agent.url("/v1/events"),
        "application/x-ndjson",
        None,
        (lines.join("\n") + "\n").into_bytes(),
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(
        reply["accepted"].as_u64(),
        Some(current.len() as u64),
        "{reply}"
    );
    assert_eq!(reply["rejected"].as_u64(), Some(3), "{reply}");
    let errors = reply["errors"].as_array().expect("errors listed");
    for (k, (_, field)) in bad.iter().enumerate() {
        let e = errors
            .iter()
            .find(|e| e["line"].as_u64() == Some(k as u64 * 700 + 1))
            .unwrap_or_else(|| panic!("bad item {k} listed: {reply}"));
        assert_eq!(
            (e["field"].as_str(), e["reason"].as_str()),
            (Some(*field), Some("invalid_number")),
            "{e}"
        );
    }

    // The labels are queued after the events they label (the events' reply came first).
    let (status, reply) = post(
        &client,
        &agent.url("/v1/labels"),
        "application/x-ndjson",
        None,
        (late.join("\n") + "\n").into_bytes(),
    )
    .await;
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (202, Some(late.len() as u64)),
        "{reply}"
    );

    let want = &fixture["expected"];
    let labelled = want["performance"]["n_labelled"]
        .as_u64()
        .expect("n_labelled");
    let totals = || {
        collector.unique().values().fold((0, 0), |(e, l), s| {
            (e + s.summary.events, l + s.summary.labelled)
        })
    };
    eventually(
        Duration::from_secs(60),
        "every event and label shipped",
        || totals() == (current.len() as u64, labelled),
    )
    .await;
    let metrics = agent.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_events_rejected_total{reason=\"invalid_number\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(&metrics, "aims_agent_labels_joined_total"),
        late.len() as f64
    );
    agent.terminate();

    let mut merged = WindowSummary::new(&schema, &profile);
    for envelope in collector.unique().values() {
        merged.merge(&envelope.summary).expect("same profile");
    }
    aims_core::invariants::validate(&merged).expect("shipped summaries hold their invariants");
    let doc = serde_json::to_value(report(&schema, &profile, &merged, None)).expect("JSON");
    golden::check_multiclass(&doc, want);
    let _ = std::fs::remove_dir_all(dir);
}
