//! Replays inference traffic byte for byte as KServe's logger (`pkg/logger`) sends it: Go's
//! HTTP/1.1 client writing a binary-mode CloudEvent, headers in Go's sorted order, `ce-id`
//! shared by the request and its response, the response's Content-Type copied from the
//! request, `ce-metadata` holding the JSON of the headers listed in `metadataHeaders`. The real
//! agent binary receives it on a loopback port and ships summaries to a test collector.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The mapping for the example credit-scoring model served over v2 (five numeric columns in
/// one tensor, categoricals as BYTES tensors of their own) and v1 (rows of all seven).
const MAPPING: &str = r#"
[cloudevents]
path = "/v1/cloudevents"
input = "input-0"
columns = ["income", "age", "debt_ratio", "credit_history_months", "num_accounts"]
model_version = "inferenceservicename"
attributes = { gender = { header = "X-Gender" } }

[cloudevents.prediction]
label = "predict"
score = "predict_proba"

[cloudevents.join]
ttl = "1500ms"
capacity = 100
max_bytes = 1048576
"#;

fn rfc3339_nanos(offset_ms: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_millis(offset_ms);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// One HTTP request exactly as Go's net/http client writes a binary-mode CloudEvent from
/// KServe's logger worker.
#[allow(clippy::too_many_arguments)]
fn kserve_request(
    host: &str,
    id: &str,
    kind: &str,
    isvc: &str,
    metadata: &str,
    time: &str,
    content_type: &str,
    body: &str,
) -> Vec<u8> {
    let mut headers = [
        ("Ce-Component", "predictor".to_owned()),
        ("Ce-Endpoint", "default".to_owned()),
        ("Ce-Id", id.to_owned()),
        ("Ce-Inferenceservicename", isvc.to_owned()),
        ("Ce-Metadata", metadata.to_owned()),
        ("Ce-Namespace", "default".to_owned()),
        ("Ce-Recordedtime", rfc3339_nanos(1)),
        ("Ce-Source", "http://localhost:9081/".to_owned()),
        ("Ce-Specversion", "1.0".to_owned()),
        ("Ce-Time", time.to_owned()),
        ("Ce-Type", kind.to_owned()),
        ("Content-Type", content_type.to_owned()),
    ];
    headers.sort();
    let mut out = format!(
        "POST /v1/cloudevents HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Accept-Encoding: gzip\r\n\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// Writes raw bytes on a fresh connection; returns the status and the body of the reply.
async fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> (u16, serde_json::Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("the agent answers at once")
            .unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + len || n == 0 {
                let status = text[9..12].parse().unwrap();
                let body = &buf[head_end + 4..(head_end + 4 + len).min(buf.len())];
                return (
                    status,
                    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
                );
            }
        }
        assert!(n > 0, "connection closed before a full reply: {text}");
    }
}

fn v2_request(rows: &[[f64; 5]], regions: &[&str]) -> String {
    let data: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "[{}]",
                r.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    let regions: Vec<String> = regions.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        r#"{{"id":"ignored","inputs":[{{"name":"input-0","shape":[{n},5],"datatype":"FP32","data":[{data}]}},{{"name":"region","shape":[{n}],"datatype":"BYTES","data":[{regions}]}}]}}"#,
        n = rows.len(),
        data = data.join(","),
        regions = regions.join(","),
    )
}

fn v2_response(labels: &[u8], version: &str) -> String {
    let n = labels.len();
    let proba: Vec<String> = labels
        .iter()
        .map(|l| {
            if *l == 1 {
                "[0.2,0.8]".to_owned()
            } else {
                "[0.9,0.1]".to_owned()
            }
        })
        .collect();
    let labels: Vec<String> = labels.iter().map(u8::to_string).collect();
    format!(
        r#"{{"model_name":"credit","model_version":"{version}","id":"x","parameters":null,"outputs":[{{"name":"predict","shape":[{n}],"datatype":"INT64","parameters":null,"data":[{}]}},{{"name":"predict_proba","shape":[{n},2],"datatype":"FP32","parameters":null,"data":[{}]}}]}}"#,
        labels.join(","),
        proba.join(","),
    )
}

const REQ: &str = "org.kubeflow.serving.inference.request";
const RESP: &str = "org.kubeflow.serving.inference.response";

async fn start_agent(name: &str, mapping: &str) -> (Agent, TestCollector) {
    let dir = temp_dir(name);
    let (profile, _) = write_profile(&dir);
    let collector = TestCollector::start(None).await;
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.url(),
            reference_path: Some(profile),
            extra: mapping.to_owned(),
            ..Setup::default()
        },
    );
    (Agent::start(&config), collector)
}

fn fetch_metrics(url: String) -> String {
    std::thread::spawn(move || reqwest::blocking::get(url).unwrap().text().unwrap())
        .join()
        .unwrap()
}

/// Sums of the acknowledged window summaries (seq 0): events, class counts, gender groups
/// (F, M, other) and latency samples.
fn totals(collector: &TestCollector) -> (u64, Vec<u64>, Vec<u64>, u64) {
    let summaries: Vec<_> = collector
        .unique()
        .into_values()
        .filter(|e| e.seq == 0)
        .collect();
    let mut classes = vec![0u64; 2];
    let mut gender = vec![0u64; 3];
    let mut events = 0;
    let mut latency = 0;
    for e in &summaries {
        events += e.summary.events;
        latency += e.summary.latency.count();
        for (a, c) in classes.iter_mut().zip(&e.summary.prediction.class_counts) {
            *a += c;
        }
        for (g, stats) in gender.iter_mut().zip(&e.summary.groups[0]) {
            *g += stats.count;
        }
    }
    (events, classes, gender, latency)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kserve_v2_traffic_is_joined_counted_and_summarised() {
    let (agent, collector) = start_agent("ce-replay-v2", MAPPING).await;
    let host = agent.addr.to_string();
    let addr = agent.addr;
    let send = |bytes: Vec<u8>| async move { send_raw(addr, &bytes).await };
    let t0 = rfc3339_nanos(0);
    let t1 = rfc3339_nanos(12);
    let male = r#"{"X-Gender":["M"]}"#;
    let json = "application/json";

    // Request first: three rows, gender from the X-Gender header carried in ce-metadata.
    let rows = [
        [52000.0, 41.0, 0.3, 80.0, 4.0],
        [31000.0, 25.0, 0.5, 20.0, 2.0],
        [70000.0, 60.0, 0.1, 300.0, 7.0],
    ];
    let req_a = v2_request(&rows, &["north", "south", "east"]);
    let resp_a = v2_response(&[1, 0, 1], "1");
    let (s, r) = send(kserve_request(
        &host, "req-a", REQ, "1.0.0", male, &t0, json, &req_a,
    ))
    .await;
    assert_eq!(
        (s, r["accepted"].as_u64(), r["events"].as_u64()),
        (200, Some(1), Some(0)),
        "{r}"
    );
    let (s, r) = send(kserve_request(
        &host, "req-a", RESP, "1.0.0", male, &t1, json, &resp_a,
    ))
    .await;
    assert_eq!((s, r["events"].as_u64()), (200, Some(3)), "{r}");

    // Response before its request.
    let (s, r) = send(kserve_request(
        &host,
        "req-b",
        RESP,
        "1.0.0",
        "{}",
        &t1,
        json,
        &v2_response(&[0, 1], "1"),
    ))
    .await;
    assert_eq!((s, r["events"].as_u64()), (200, Some(0)), "{r}");
    let (s, r) = send(kserve_request(
        &host,
        "req-b",
        REQ,
        "1.0.0",
        "{}",
        &t0,
        json,
        &v2_request(&rows[..2], &["west", "west"]),
    ))
    .await;
    assert_eq!((s, r["events"].as_u64()), (200, Some(2)), "{r}");

    // Duplicate deliveries of a completed pair are discarded and counted.
    let (s, r) = send(kserve_request(
        &host, "req-a", REQ, "1.0.0", male, &t0, json, &req_a,
    ))
    .await;
    assert_eq!(
        (s, r["discarded"].as_u64(), r["events"].as_u64()),
        (200, Some(1), Some(0)),
        "{r}"
    );
    let (s, r) = send(kserve_request(
        &host, "req-a", RESP, "1.0.0", male, &t1, json, &resp_a,
    ))
    .await;
    assert_eq!((s, r["discarded"].as_u64()), (200, Some(1)), "{r}");

    // A batched request of 500 rows.
    let big: Vec<[f64; 5]> = (0..500)
        .map(|i| [30000.0 + i as f64, 30.0, 0.3, 50.0, 3.0])
        .collect();
    let regions: Vec<&str> = (0..500)
        .map(|i| if i % 2 == 0 { "north" } else { "west" })
        .collect();
    let labels: Vec<u8> = (0..500).map(|i| u8::from(i % 3 == 0)).collect();
    let (s, _) = send(kserve_request(
        &host,
        "req-c",
        REQ,
        "1.0.0",
        male,
        &t0,
        json,
        &v2_request(&big, &regions),
    ))
    .await;
    assert_eq!(s, 200);
    let (s, r) = send(kserve_request(
        &host,
        "req-c",
        RESP,
        "1.0.0",
        male,
        &t1,
        json,
        &v2_response(&labels, "1"),
    ))
    .await;
    assert_eq!((s, r["events"].as_u64()), (200, Some(500)), "{r}");

    // A structured batch holding both halves of one inference and an event of another type.
    let batch = format!(
        r#"[{{"specversion":"1.0","id":"req-d","type":"{REQ}","source":"s","time":"{t0}","inferenceservicename":"1.0.0","datacontenttype":"application/json","data":{}}},
            {{"specversion":"1.0","id":"req-d","type":"{RESP}","source":"s","time":"{t1}","inferenceservicename":"1.0.0","data":{}}},
            {{"specversion":"1.0","id":"req-e","type":"com.example.other","source":"s","data":{{}}}}]"#,
        v2_request(&rows[..2], &["north", "north"]),
        v2_response(&[0, 0], "1"),
    );
    let client = reqwest::Client::new();
    let url = agent.url("/v1/cloudevents");
    let (s, r) = post(
        &client,
        &url,
        "application/cloudevents-batch+json",
        None,
        batch.into_bytes(),
    )
    .await;
    assert_eq!(
        (
            s,
            r["accepted"].as_u64(),
            r["rejected"].as_u64(),
            r["events"].as_u64()
        ),
        (200, Some(2), Some(1), Some(2)),
        "{r}"
    );
    assert_eq!(
        (
            r["errors"][0]["index"].as_u64(),
            r["errors"][0]["reason"].as_str()
        ),
        (Some(2), Some("unsupported_type")),
        "{r}"
    );

    // Another model version, per ce-inferenceservicename: discarded and counted.
    let (s, r) = send(kserve_request(
        &host, "req-f", REQ, "2.0.0", male, &t0, json, &req_a,
    ))
    .await;
    assert_eq!(
        (
            s,
            r["discarded"].as_u64(),
            r["errors"][0]["reason"].as_str()
        ),
        (200, Some(1), Some("other_model_version")),
        "{r}"
    );

    // Malformed bodies: 400 at once, naming the field.
    let bad_shape =
        r#"{"inputs":[{"name":"input-0","shape":[2,5],"datatype":"FP32","data":[1,2,3]}]}"#;
    let (s, r) = send(kserve_request(
        &host, "req-g", REQ, "1.0.0", "{}", &t0, json, bad_shape,
    ))
    .await;
    assert_eq!(
        (s, r["errors"][0]["field"].as_str()),
        (400, Some("inputs[input-0].shape")),
        "{r}"
    );
    let bad_type =
        r#"{"inputs":[{"name":"input-0","shape":[1,5],"datatype":"INT8","data":[1,2,3,4,1000]}]}"#;
    let (s, r) = send(kserve_request(
        &host, "req-h", REQ, "1.0.0", "{}", &t0, json, bad_type,
    ))
    .await;
    assert_eq!(
        (s, r["errors"][0]["field"].as_str()),
        (400, Some("inputs[input-0].data[4]")),
        "{r}"
    );
    let other_output = r#"{"outputs":[{"name":"out","shape":[1],"datatype":"INT64","data":[1]}]}"#;
    let (s, r) = send(kserve_request(
        &host,
        "req-i",
        RESP,
        "1.0.0",
        "{}",
        &t1,
        json,
        other_output,
    ))
    .await;
    assert_eq!(
        (
            s,
            r["errors"][0]["reason"].as_str(),
            r["errors"][0]["field"].as_str()
        ),
        (400, Some("unknown_tensor"), Some("outputs[predict]")),
        "{r}"
    );
    let (s, r) = post(&client, &url, "text/csv", None, b"a,b".to_vec()).await;
    assert_eq!(
        (s, r["errors"][0]["reason"].as_str()),
        (415, Some("unsupported_media_type")),
        "{r}"
    );
    // KServe copies the caller's Content-Type; `curl -d` sends a form type with a JSON body.
    let form = "application/x-www-form-urlencoded";
    let (s, _) = send(kserve_request(
        &host,
        "req-k",
        REQ,
        "1.0.0",
        male,
        &t0,
        form,
        &v2_request(&rows[..1], &["north"]),
    ))
    .await;
    assert_eq!(s, 200);
    let (s, r) = send(kserve_request(
        &host,
        "req-k",
        RESP,
        "1.0.0",
        male,
        &t1,
        form,
        &v2_response(&[1], "1"),
    ))
    .await;
    assert_eq!((s, r["events"].as_u64()), (200, Some(1)), "{r}");
    let (s, r) = send(kserve_request(
        &host,
        "req-l",
        REQ,
        "1.0.0",
        "{}",
        &t0,
        "text/plain",
        "not json",
    ))
    .await;
    assert_eq!(
        (s, r["errors"][0]["reason"].as_str()),
        (400, Some("invalid_body")),
        "{r}"
    );

    // A response with fewer rows than its request: the pair is refused, naming both counts.
    let (s, _) = send(kserve_request(
        &host,
        "req-m",
        REQ,
        "1.0.0",
        "{}",
        &t0,
        json,
        &v2_request(&rows[..2], &["north"; 2]),
    ))
    .await;
    assert_eq!(s, 200);
    let (s, r) = send(kserve_request(
        &host,
        "req-m",
        RESP,
        "1.0.0",
        "{}",
        &t1,
        json,
        &v2_response(&[1], "1"),
    ))
    .await;
    assert_eq!(
        (s, r["errors"][0]["reason"].as_str()),
        (400, Some("row_count_mismatch")),
        "{r}"
    );
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("2 rows"),
        "{r}"
    );

    // Orphans: halves whose partners never come, counted once the 1.5 s TTL passes.
    let (s, _) = send(kserve_request(
        &host,
        "lonely-req",
        REQ,
        "1.0.0",
        "{}",
        &t0,
        json,
        &req_a,
    ))
    .await;
    assert_eq!(s, 200);
    let (s, _) = send(kserve_request(
        &host,
        "lonely-resp",
        RESP,
        "1.0.0",
        "{}",
        &t1,
        json,
        &v2_response(&[1], "1"),
    ))
    .await;
    assert_eq!(s, 200);
    let metrics_url = agent.url("/metrics");
    eventually(
        Duration::from_secs(15),
        "orphans past the TTL to be counted",
        || {
            let m = fetch_metrics(metrics_url.clone());
            sample(
                &m,
                r#"aims_agent_cloudevents_unjoined_total{reason="orphan_request"}"#,
            ) == 1.0
                && sample(
                    &m,
                    r#"aims_agent_cloudevents_unjoined_total{reason="orphan_response"}"#,
                ) == 1.0
        },
    )
    .await;
    let m = fetch_metrics(metrics_url.clone());
    let value = |series: &str| sample(&m, series);
    assert_eq!(
        value(r#"aims_agent_cloudevents_discarded_total{reason="duplicate"}"#),
        2.0
    );
    assert_eq!(
        value(r#"aims_agent_cloudevents_discarded_total{reason="other_model_version"}"#),
        1.0
    );
    assert_eq!(
        value(r#"aims_agent_cloudevents_rejected_total{reason="shape_mismatch"}"#),
        1.0
    );
    assert_eq!(
        value(r#"aims_agent_cloudevents_rejected_total{reason="datatype_mismatch"}"#),
        1.0
    );
    assert_eq!(
        value(r#"aims_agent_cloudevents_rejected_total{reason="unknown_tensor"}"#),
        1.0
    );
    assert_eq!(
        value(r#"aims_agent_cloudevents_rejected_total{reason="unsupported_type"}"#),
        1.0
    );
    assert_eq!(
        value(r#"aims_agent_requests_rejected_total{reason="unsupported_media_type"}"#),
        1.0
    );
    assert_eq!(value("aims_agent_cloudevents_joined_total"), 5.0);
    assert_eq!(value("aims_agent_cloudevents_join_entries"), 0.0);
    assert_eq!(value("aims_agent_cloudevents_join_bytes"), 0.0);
    assert_eq!(value("aims_agent_events_accepted_total"), 508.0);

    // The summaries hold exactly the joined rows, with their classes, groups and latencies.
    eventually(Duration::from_secs(15), "summaries of all 508 rows", || {
        totals(&collector).0 == 508
    })
    .await;
    let (_, classes, gender, latency) = totals(&collector);
    let positives = 2 + 1 + 1 + labels.iter().filter(|l| **l == 1).count() as u64;
    assert_eq!(classes, vec![508 - positives, positives]);
    assert_eq!(
        gender,
        vec![0, 504, 4],
        "M from the header, other without it"
    );
    assert_eq!(latency, 508, "latency comes from the two ce-time values");
    agent.terminate();
}

const V1_MAPPING: &str = r#"
[cloudevents]
columns = ["income", "age", "debt_ratio", "credit_history_months", "num_accounts", "region", "gender"]
attributes = { age_band = { extension = "ageband" } }

[cloudevents.prediction]
score = "predictions"
threshold = 0.5

[cloudevents.join]
ttl = "1s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kserve_v1_traffic_response_first_and_late_labels() {
    let (agent, collector) = start_agent("ce-replay-v1", V1_MAPPING).await;
    let host = agent.addr.to_string();
    let addr = agent.addr;
    let send = |bytes: Vec<u8>| async move { send_raw(addr, &bytes).await };
    let t0 = rfc3339_nanos(0);
    let t1 = rfc3339_nanos(5);
    let json = "application/json";
    let req = r#"{"instances": [[40000, 35, 0.2, 60, 3, "north", "F"], [90000, 50, 0.05, 200, 9, "south", "M"], [1, 2, 3, 4, "five", "x", "F"]]}"#;
    let resp = r#"{"predictions": [0.3, 0.9, 0.5]}"#;
    let (s, r) = send(kserve_request(
        &host, "v1-a", RESP, "credit", "{}", &t1, json, resp,
    ))
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    let (s, r) = send(kserve_request(
        &host, "v1-a", REQ, "credit", "{}", &t0, json, req,
    ))
    .await;
    // Row 2 has a string where a number belongs: that row alone is refused, named.
    assert_eq!((s, r["events"].as_u64()), (200, Some(2)), "{r}");
    assert_eq!(
        r["errors"][0]["field"], "instances[instances][2][4] (num_accounts)",
        "{r}"
    );
    assert_eq!(r["errors"][0]["reason"], "wrong_type");
    // Late labels join under <ce-id>-<row>.
    let client = reqwest::Client::new();
    let (s, r) = post(
        &client,
        &agent.url("/v1/labels"),
        "application/x-ndjson",
        None,
        b"{\"id\": \"v1-a-0\", \"label\": 0}\n{\"id\": \"v1-a-1\", \"label\": 1}\n".to_vec(),
    )
    .await;
    assert_eq!(s, 202, "{r}");
    let metrics_url = agent.url("/metrics");
    eventually(Duration::from_secs(15), "both labels to join", || {
        sample(
            &fetch_metrics(metrics_url.clone()),
            "aims_agent_labels_joined_total",
        ) == 2.0
    })
    .await;
    let m = fetch_metrics(metrics_url);
    assert_eq!(
        sample(
            &m,
            r#"aims_agent_events_rejected_total{reason="wrong_type"}"#
        ),
        1.0
    );
    eventually(Duration::from_secs(15), "a summary of both rows", || {
        totals(&collector).0 == 2
    })
    .await;
    let (_, classes, gender, _) = totals(&collector);
    assert_eq!(classes, vec![1, 1], "0.3 < 0.5 <= 0.9");
    assert_eq!(gender, vec![1, 1, 0]);
    agent.terminate();
}

const SELDON_MAPPING: &str = r#"
[cloudevents]
columns = ["income", "age", "debt_ratio", "credit_history_months", "num_accounts", "region", "gender"]

[cloudevents.prediction]
score = "data"
argmax = true
"#;

/// Seldon Core v1's request logger: `io.seldon.serving.inference.*` types, SeldonMessage bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seldon_v1_request_logger_traffic() {
    let (agent, collector) = start_agent("ce-replay-seldon", SELDON_MAPPING).await;
    let host = agent.addr.to_string();
    let addr = agent.addr;
    let send = |bytes: Vec<u8>| async move { send_raw(addr, &bytes).await };
    let (t0, t1) = (rfc3339_nanos(0), rfc3339_nanos(3));
    let req = r#"{"data": {"names": ["income", "age", "debt", "hist", "accounts", "region", "gender"], "ndarray": [[40000, 35, 0.2, 60, 3, "north", "F"], [90000, 50, 0.05, 200, 9, "south", "M"]]}}"#;
    let resp = r#"{"data": {"names": ["t:0", "t:1"], "ndarray": [[0.7, 0.3], [0.1, 0.9]]}, "meta": {"requestPath": {"classifier": "seldonio/sklearnserver:1.17.1"}}}"#;
    let (s, r) = send(kserve_request(
        &host,
        "puid-1",
        "io.seldon.serving.inference.request",
        "credit",
        "{}",
        &t0,
        "application/json",
        req,
    ))
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    let (s, r) = send(kserve_request(
        &host,
        "puid-1",
        "io.seldon.serving.inference.response",
        "credit",
        "{}",
        &t1,
        "application/json",
        resp,
    ))
    .await;
    assert_eq!((s, r["events"].as_u64()), (200, Some(2)), "{r}");
    eventually(Duration::from_secs(15), "a summary of both rows", || {
        totals(&collector).0 == 2
    })
    .await;
    let (_, classes, gender, latency) = totals(&collector);
    assert_eq!(classes, vec![1, 1], "argmax of the probabilities");
    assert_eq!(gender, vec![1, 1, 0]);
    assert_eq!(latency, 2);
    agent.terminate();
}
