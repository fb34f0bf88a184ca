//! The same predictions sent two ways reach the collector as the same metrics: once as native
//! events on `/v1/events`, once as KServe-style CloudEvents (request and response, structured
//! and binary mode) posted by the official CloudEvents Python SDK, with their labels arriving
//! late on `/v1/labels` under `<ce-id>-<row>`. Real agent, real collector, loopback sockets.
//!
//! The interpreter is `$AIMS_PYTHON` (default `python3`) with `tests/cloudevents/requirements.txt`
//! installed. Without the SDK the test skips visibly, and fails under `CI=true`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use aims_e2e::{binary, http, repo_root, wait_until, Stack, StackConfig};
use serde_json::{json, Value};

const OBJECTIVES: &str = r#"policy: "test"
objectives:
  - {id: acc, title: a, model: credit-scoring, metric: accuracy, target: ">= 0", window: 10m, min_samples: 1, owner: t@example.com}
  - {id: auc, title: a, model: credit-scoring, metric: roc_auc, target: ">= 0", window: 10m, min_samples: 1, owner: t@example.com}
  - {id: parity, title: a, model: credit-scoring, metric: demographic_parity_ratio, attribute: gender, target: ">= 0", window: 10m, min_samples: 1, owner: t@example.com}
  - {id: eo, title: a, model: credit-scoring, metric: equal_opportunity_difference, attribute: age_band, target: "<= 1", window: 10m, min_samples: 1, owner: t@example.com}
  - {id: psi, title: a, model: credit-scoring, metric: psi, feature: income, target: ">= 0", window: 10m, min_samples: 1, owner: t@example.com}
  - {id: p50, title: a, model: credit-scoring, metric: latency_p50, target: ">= 0", window: 10m, min_samples: 1, owner: t@example.com}
"#;

const MAPPING: &str = r#"
[cloudevents]
input = "input-0"
columns = ["income", "age", "debt_ratio", "credit_history_months", "num_accounts"]
model_version = "model_version"

[cloudevents.prediction]
label = "predict"
score = "predict_proba"
"#;

/// The interpreter, or `None` (skip) when the SDK is not importable outside CI.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("AIMS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&python)
        .args(["-c", "import cloudevents.http, cloudevents.conversion"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        aims_e2e::skip(
            "the CloudEvents SDK test",
            &format!(
                "{} cannot import the cloudevents SDK; pip install -r tests/cloudevents/requirements.txt and set AIMS_PYTHON",
                python.display()
            ),
        );
        return None;
    }
    Some(python)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

struct Row {
    features: Value,
    gender: &'static str,
    age_band: &'static str,
    pred: u8,
    score: f64,
    label: u8,
}

fn rows(n: usize) -> Vec<Row> {
    let mut seed = 42u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let regions = ["north", "south", "east", "west"];
    let jobs = ["employed", "self-employed", "unemployed"];
    let bands = ["18-29", "30-39", "40-49", "50-64", "65+"];
    (0..n)
        .map(|_| {
            let income = (20_000.0 + 80_000.0 * next()).round();
            let score = (0.05 + 0.9 * next() * 1000.0).round() / 1000.0;
            let score = score.clamp(0.0, 1.0);
            let label = u8::from(next() < score);
            Row {
                features: json!({
                    "income": income,
                    "age": (18.0 + 60.0 * next()).round(),
                    "debt_ratio": (next() * 1000.0).round() / 1000.0,
                    "credit_history_months": (300.0 * next()).round(),
                    "num_accounts": (10.0 * next()).round(),
                    "region": regions[(next() * 4.0) as usize % 4],
                    "employment": jobs[(next() * 3.0) as usize % 3],
                }),
                gender: if next() < 0.5 { "F" } else { "M" },
                age_band: bands[(next() * 5.0) as usize % 5],
                pred: u8::from(score >= 0.5),
                score,
                label,
            }
        })
        .collect()
}

fn post(url: &str, content_type: &str, body: String) -> Value {
    let resp = http()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .expect("the agent answers");
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

/// Objective id to (samples, value), once every objective has seen `labelled` labelled and
/// `events` events.
fn settled(stack: &Stack, events: u64, labelled: u64) -> Vec<(String, Value)> {
    wait_until(
        Duration::from_secs(90),
        "all events and labels evaluated",
        || {
            let objectives = stack.objectives();
            let done = objectives.len() == 6
                && objectives.iter().all(|o| {
                    let want = match o["id"].as_str() {
                        Some("acc" | "auc" | "eo") => labelled,
                        _ => events,
                    };
                    o["samples"].as_u64() == Some(want)
                });
            done.then(|| {
                objectives
                    .iter()
                    .map(|o| {
                        (
                            o["id"].as_str().unwrap_or("").to_owned(),
                            o["last_value"].clone(),
                        )
                    })
                    .collect()
            })
        },
    )
}

#[test]
fn cloudevents_from_the_python_sdk_match_native_events() {
    let Some(python) = python() else { return };
    let data = rows(600);
    let start = SystemTime::now();
    let mut batches = Vec::new();
    let mut native = String::new();
    let mut labels = String::new();
    for (b, chunk) in data.chunks(50).enumerate() {
        let id = format!("inference-{b}");
        let request_time = start + Duration::from_millis(b as u64);
        let latency = 3 + 7 * b as u64;
        let response_time = request_time + Duration::from_millis(latency);
        let mut wire_rows = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            let mut row = r.features.clone();
            row["gender"] = json!(r.gender);
            row["age_band"] = json!(r.age_band);
            row["pred"] = json!(r.pred);
            row["score"] = json!(r.score);
            wire_rows.push(row);
            native.push_str(
                &json!({
                    "id": format!("{id}-{i}"),
                    "ts": rfc3339(request_time),
                    "features": r.features,
                    "attributes": {"gender": r.gender, "age_band": r.age_band},
                    "prediction": {"label": r.pred, "score": r.score},
                    "label": r.label,
                    "latency_ms": latency,
                })
                .to_string(),
            );
            native.push('\n');
            labels.push_str(&json!({"id": format!("{id}-{i}"), "label": r.label}).to_string());
            labels.push('\n');
        }
        batches.push(json!({
            "id": id,
            "request_time": rfc3339(request_time),
            "response_time": rfc3339(response_time),
            "rows": wire_rows,
        }));
    }
    let config = StackConfig {
        objectives: OBJECTIVES,
        window: "2s",
        stale_after: "10m",
        agent_extra: MAPPING,
        ..StackConfig::default()
    };

    let native_stack = Stack::start(&config);
    post(
        &format!("{}/v1/events", native_stack.agent_url),
        "application/x-ndjson",
        native,
    );
    let expected = settled(&native_stack, 600, 600);
    drop(native_stack);

    let ce_stack = Stack::start(&config);
    let spec = ce_stack.dir.path().join("batches.json");
    std::fs::write(&spec, json!({"batches": batches}).to_string()).unwrap();
    let out = Command::new(&python)
        .arg(repo_root().join("tests/cloudevents/send_kserve.py"))
        .arg(format!("{}/v1/cloudevents", ce_stack.agent_url))
        .arg(&spec)
        .output()
        .expect("the interpreter runs");
    assert!(
        out.status.success(),
        "send_kserve.py failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Value = serde_json::from_slice(&out.stdout).expect("the script reports JSON");
    assert_eq!(sent["events"], 600, "every row became an event");
    let reply = post(
        &format!("{}/v1/labels", ce_stack.agent_url),
        "application/x-ndjson",
        labels,
    );
    assert_eq!(reply["accepted"], 600, "{reply}");
    let got = settled(&ce_stack, 600, 600);

    eprintln!("native {expected:?}\ncloudevents {got:?}");
    assert_eq!(got.len(), expected.len());
    for ((id, want), (_, have)) in expected.iter().zip(&got) {
        let (w, h) = (want.as_f64(), have.as_f64());
        assert!(w.is_some(), "{id}: the native value is a number: {want}");
        assert!(
            (w.unwrap() - h.unwrap_or(f64::NAN)).abs() < 1e-12,
            "{id}: CloudEvents gave {have}, native events {want}"
        );
    }
}

/// The agent configuration inside the KServe example manifest passes `aims-agent check`, and a
/// broken mapping does not, naming the key.
#[test]
fn the_kserve_example_mapping_checks() {
    let manifest =
        std::fs::read_to_string(repo_root().join("config/deploy/kserve-inferenceservice.yaml"))
            .expect("manifest");
    assert!(manifest.contains("mode: all") && manifest.contains("/v1/cloudevents"));
    let toml: String = manifest
        .lines()
        .skip_while(|l| l.trim() != "agent.toml: |")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    assert!(
        toml.contains("[cloudevents]"),
        "the ConfigMap holds the mapping"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let check = |text: &str| {
        std::fs::write(dir.path().join("agent.toml"), text).expect("config");
        Command::new(binary("aims-agent"))
            .args(["check", "--config", "agent.toml"])
            .current_dir(dir.path())
            .output()
            .expect("aims-agent runs")
    };
    let out = check(&toml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("CloudEvents on /v1/cloudevents"));
    let out = check(&toml.replace("\"num_accounts\"]", "\"num_acounts\"]"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cloudevents.columns[4]"), "{stderr}");
}
