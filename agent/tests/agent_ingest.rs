//! Malformed input matrix, late-label joining and the simulator, against the real binary.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_matrix() {
    let dir = temp_dir("malformed");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            reference_path: Some(profile),
            max_body_bytes: 64 * 1024,
            window: "60s",
            ..Setup::default()
        },
    );
    let mut agent = Agent::start(&config);
    let client = reqwest::Client::new();
    let events_url = agent.url("/v1/events");
    let labels_url = agent.url("/v1/labels");
    let ndjson = "application/x-ndjson";

    // Invalid JSON body: 400, refused whole.
    let (status, body) = post(
        &client,
        &events_url,
        "application/json",
        None,
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["reason"], "invalid_json");
    assert_eq!(body["errors"][0]["field"], "body");

    // Infinity is not JSON: a JSON body containing it is refused whole.
    let (status, body) = post(
        &client,
        &events_url,
        "application/json",
        None,
        br#"[{"features": {"income": Infinity}}]"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["reason"], "invalid_json");

    // NDJSON: one good line among bad ones is kept; each bad line is named.
    let good = String::from_utf8(events("good", 1)).unwrap();
    let mixed = format!(
        "{good}{}\n{}\n{}\n{}\nnot json\n[1]\n{good}",
        r#"{"features": {"income": "lots"}, "prediction": {"label": 1}}"#,
        r#"{"features": {"zip_code": 1}, "prediction": {"label": 1}}"#,
        r#"{"features": {"income": NaN}, "prediction": {"label": 1}}"#,
        r#"{"prediction": {"label": 1, "score": 7}}"#,
    );
    let (status, body) = post(&client, &events_url, ndjson, None, mixed.into_bytes()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 6);
    let errors = body["errors"].as_array().unwrap();
    let got: Vec<(u64, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["field"].as_str().unwrap(),
                e["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "features.income", "wrong_type"),
            (3, "features.zip_code", "unknown_feature"),
            (4, "$", "invalid_json"),
            (5, "prediction.score", "invalid_number"),
            (6, "$", "invalid_json"),
            (7, "$", "invalid_json"),
        ]
    );
    assert!(errors
        .iter()
        .all(|e| !e["message"].as_str().unwrap().is_empty()));

    // A JSON array: items are indexed; nothing valid means 400.
    let (status, body) = post(
        &client,
        &events_url,
        "application/json",
        None,
        br#"[{"prediction": {"label": "maybe"}}, 5]"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["index"], 0);
    assert_eq!(body["errors"][0]["reason"], "unknown_class");
    assert_eq!(body["errors"][1]["index"], 1);

    // A single object is fine.
    let one = events("single", 1);
    let (status, body) = post(
        &client,
        &events_url,
        "application/json",
        None,
        one[..one.len() - 1].to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(1)),
        "{body}"
    );

    // Labels: a missing id is named; good labels beside bad ones are kept.
    let (status, body) = post(
        &client,
        &labels_url,
        "application/json",
        None,
        br#"{"label": 1}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (
            body["errors"][0]["field"].as_str(),
            body["errors"][0]["reason"].as_str()
        ),
        (Some("id"), Some("missing_field"))
    );
    let (status, body) = post(
        &client,
        &labels_url,
        ndjson,
        None,
        b"{\"id\": \"good-0\", \"label\": 1}\n{\"id\": \"x\", \"label\": 3}\n".to_vec(),
    )
    .await;
    assert_eq!(
        (
            status,
            body["accepted"].as_u64(),
            body["errors"][0]["line"].as_u64()
        ),
        (202, Some(1), Some(2)),
        "{body}"
    );

    // Too large: 413, raw or decompressed (a gzip bomb stops at the limit).
    let (status, body) = post(&client, &events_url, ndjson, None, events("big", 400)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["errors"][0]["reason"], "payload_too_large");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; 50 * 1024 * 1024]).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 64 * 1024);
    let (status, body) = post(&client, &events_url, ndjson, Some("gzip"), bomb).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("after decompression"));

    // Gzip done right is accepted; corrupt gzip is a 400; unknown codings and types are 415.
    let gzipped = aims_runtime::gzip::encode(&events("gz", 10));
    let (status, body) = post(&client, &events_url, ndjson, Some("gzip"), gzipped).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (202, Some(10)),
        "{body}"
    );
    let (status, body) = post(
        &client,
        &events_url,
        ndjson,
        Some("gzip"),
        b"definitely not gzip".to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["reason"].as_str()),
        (400, Some("invalid_encoding")),
        "{body}"
    );
    let (status, _) = post(&client, &events_url, ndjson, Some("br"), events("br", 1)).await;
    assert_eq!(status, 415);
    let (status, body) = post(
        &client,
        &events_url,
        "text/csv",
        None,
        b"a,b\n1,2\n".to_vec(),
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["errors"][0]["field"], "content-type");
    let (status, body) = post(&client, &events_url, ndjson, None, b"\n\n".to_vec()).await;
    assert_eq!(
        (status, body["errors"][0]["reason"].as_str()),
        (400, Some("empty"))
    );

    // The process is up, healthy, and its counters moved.
    assert!(agent.is_running());
    let health = client.get(agent.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let resp = client.get(agent.url("/metrics")).send().await.unwrap();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let metrics = resp.text().await.unwrap();
    assert_eq!(sample(&metrics, "aims_agent_events_accepted_total"), 13.0);
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_events_rejected_total{reason=\"invalid_json\"}"
        ),
        4.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_events_rejected_total{reason=\"wrong_type\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_events_rejected_total{reason=\"unknown_feature\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_events_rejected_total{reason=\"unknown_class\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_labels_rejected_total{reason=\"missing_field\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_requests_rejected_total{reason=\"payload_too_large\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_requests_rejected_total{reason=\"unsupported_media_type\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_requests_rejected_total{reason=\"invalid_json\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_events_dropped_total{reason=\"overload\"}"
        ),
        0.0
    );

    aims_testkit::prom::promtool_check_metrics(&metrics);
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_labels_ship_as_a_later_sequence_of_their_window() {
    let collector = TestCollector::start(None).await;
    let dir = temp_dir("labels");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            collector_url: collector.url(),
            reference_path: Some(profile),
            ..Setup::default()
        },
    );
    let agent = Agent::start(&config);
    let client = reqwest::Client::new();
    let (status, _) = post(
        &client,
        &agent.url("/v1/events"),
        "application/x-ndjson",
        None,
        events("p", 20),
    )
    .await;
    assert_eq!(status, 202);
    // Wait for the window holding the predictions to ship, then label them.
    eventually(
        Duration::from_secs(10),
        "the events' window delivered",
        || {
            collector
                .unique()
                .values()
                .any(|e| e.summary.events == 20 && e.seq == 0)
        },
    )
    .await;
    // Twenty labels for held predictions, two for ids the agent never saw.
    let labels: String = (0..20)
        .map(|i| format!("{{\"id\": \"p-{i}\", \"label\": {}}}\n", i % 2))
        .chain(["{\"id\": \"never-1\", \"label\": 1}\n".to_owned()])
        .chain(["{\"id\": \"never-2\", \"label\": 0}\n".to_owned()])
        .collect();
    let (status, body) = post(
        &client,
        &agent.url("/v1/labels"),
        "application/x-ndjson",
        None,
        labels.into_bytes(),
    )
    .await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(22)));
    // The reply says which joined: a label for an unknown id is unmatched, not just "accepted".
    assert_eq!(body["labels"]["joined"], 20, "{body}");
    assert_eq!(body["labels"]["unmatched"], 2, "{body}");
    assert_eq!(body["labels"]["expired"], 0, "{body}");
    let window = collector
        .unique()
        .values()
        .find(|e| e.summary.events == 20)
        .unwrap()
        .window_start_ms;
    eventually(
        Duration::from_secs(10),
        "a late summary for the same window",
        || {
            collector
                .unique()
                .values()
                .any(|e| e.window_start_ms == window && e.seq >= 1 && e.summary.labelled == 20)
        },
    )
    .await;
    assert_eq!(
        collector.seen.lock().unwrap().references.len(),
        1,
        "profile uploaded once"
    );
    let metrics = agent.metrics().await;
    assert_eq!(sample(&metrics, "aims_agent_labels_joined_total"), 20.0);
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_drives_an_agent_with_delayed_labels() {
    let dir = temp_dir("simulate");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            reference_path: Some(profile),
            ..Setup::default()
        },
    );
    let agent = Agent::start(&config);
    let target = agent.url("");
    let sim_config = config.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aims-agent"))
            .args([
                "simulate",
                "--target",
                &target,
                "--rate",
                "400",
                "--duration",
                "2s",
            ])
            .args([
                "--scenario",
                "label-delay,bias",
                "--label-delay",
                "300ms",
                "--seed",
                "3",
                "--config",
            ])
            .arg(&sim_config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 requests failed"), "{stdout}");
    let metrics = agent.metrics().await;
    let accepted = sample(&metrics, "aims_agent_events_accepted_total");
    assert!(
        (600.0..=900.0).contains(&accepted),
        "about 800 events in 2 s, got {accepted}"
    );
    assert!(sample(&metrics, "aims_agent_labels_joined_total") > 0.0);
    assert_eq!(
        sample(
            &metrics,
            "aims_agent_events_rejected_total{reason=\"invalid_json\"}"
        ),
        0.0
    );
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_runs_with_environment_overrides() {
    let dir = temp_dir("shipped");
    let (profile, _) = write_profile(&dir);
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.toml");
    let spool = dir.join("spool");
    let agent = Agent::start_with_env(
        &shipped,
        &[
            ("AIMS_AGENT__SERVER__LISTEN", "127.0.0.1:0"),
            ("AIMS_AGENT__REFERENCE__PATH", profile.to_str().unwrap()),
            ("AIMS_AGENT__SPOOL__DIR", spool.to_str().unwrap()),
            ("AIMS_AGENT__SHIP__COLLECTOR_URL", ""),
            ("AIMS_AGENT__WINDOW__LENGTH", "1s"),
        ],
    );
    assert!(
        agent.log_text().contains("window=1s"),
        "{}",
        agent.log_text()
    );
    let (status, body) = post(
        &reqwest::Client::new(),
        &agent.url("/v1/events"),
        "application/x-ndjson",
        None,
        events("cfg", 3),
    )
    .await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(3)));
    eventually(
        Duration::from_secs(30),
        "a window spooled under the overridden dir",
        || {
            std::fs::read_dir(&spool)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .any(|e| e.file_name().to_string_lossy().starts_with('0'))
                })
                .unwrap_or(false)
        },
    )
    .await;
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_ingest_slots_answer_503_at_once() {
    use std::io::Write as _;
    let dir = temp_dir("busy");
    let (profile, _) = write_profile(&dir);
    let config = write_config(
        &dir,
        &Setup {
            reference_path: Some(profile),
            window: "60s",
            extra: String::new(),
            ..Setup::default()
        },
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[server]\n", "[server]\nmax_concurrent_requests = 1\n");
    std::fs::write(&config, text).unwrap();
    let agent = Agent::start(&config);
    let client = reqwest::Client::new();
    // A slow client holds the only slot: headers sent, body still coming. A request racing it
    // to the slot can win; then the slow one is the one refused, and is opened again.
    let open_slow = || {
        let mut slow = std::net::TcpStream::connect(agent.addr).unwrap();
        write!(
            slow,
            "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: 100000\r\n\r\n{{"
        )
        .unwrap();
        slow.flush().unwrap();
        slow.set_nonblocking(true).unwrap();
        slow
    };
    // Whether the agent has answered the slow request (it was refused: the slot was taken).
    let answered_slow = |slow: &mut std::net::TcpStream| {
        let mut buf = [0u8; 512];
        match std::io::Read::read(slow, &mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(n == 0 || text.contains(" 503 "), "slow request got {text}");
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("slow connection: {e}"),
        }
    };
    let mut slow = open_slow();
    let mut answered = None;
    let mut races_lost = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while answered.is_none() {
        let resp = client
            .post(agent.url("/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(events("busy", 1))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 503 {
            assert!(!answered_slow(&mut slow), "both requests were refused");
            answered = Some(resp);
        } else {
            assert_eq!(resp.status().as_u16(), 202);
            assert!(
                std::time::Instant::now() < deadline,
                "never saw 503 ({races_lost} races to the slot lost)"
            );
            if answered_slow(&mut slow) {
                races_lost += 1;
                slow = open_slow();
            } else {
                // The slow request is not dispatched yet: give it a moment to take the slot.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let resp = answered.unwrap();
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["reason"], "overloaded");
    assert!(
        body["errors"][0].get("index").is_none(),
        "a request-level error has no item index: {body}"
    );
    drop(slow);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = post(
            &client,
            &agent.url("/v1/events"),
            "application/x-ndjson",
            None,
            events("after", 1),
        )
        .await;
        if status == 202 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = agent.metrics().await;
    assert!(
        sample(
            &metrics,
            "aims_agent_requests_rejected_total{reason=\"overloaded\"}"
        ) >= 1.0
    );
    agent.terminate();
    let _ = std::fs::remove_dir_all(dir);
}
