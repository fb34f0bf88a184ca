//! End-to-end tests of the real collector binary over loopback HTTP.

mod common;

use std::time::Duration;

use aims_core::hash::sha256_hex;
use common::*;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

fn transitions(evidence: &[Value], objective: &str) -> Vec<String> {
    evidence
        .iter()
        .filter(|r| r["kind"] == "transition" && r["objective"] == objective)
        .map(|r| r["record"]["data"]["to"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn biased_and_drifted_traffic_fire_then_silence_is_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare(BIN, dir.path(), "");
    c.start();
    let schema = schema(3);
    let profile = profile(&schema);
    let r = c.put_profile(&profile, None);
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    assert_eq!(
        c.put_profile(&profile, None).status(),
        200,
        "PUT is idempotent"
    );
    let fetched: aims_core::ReferenceProfile =
        get_json(&c.url("/v1/models/credit-scoring/reference"), None)
            .as_object()
            .map(|o| serde_json::from_value(Value::Object(o.clone())).unwrap())
            .unwrap();
    assert_eq!(fetched.hash, profile.hash);
    for version in [profile.hash.as_str(), "1.0"] {
        let p = get_json(
            &c.url(&format!(
                "/v1/models/credit-scoring/reference?version={version}"
            )),
            None,
        );
        assert_eq!(p["hash"], profile.hash.as_str());
    }
    let missing = client()
        .get(c.url("/v1/models/credit-scoring/reference?version=9.9"))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(client().get(c.url("/readyz")).send().unwrap().status(), 200);

    // Before any summary the objectives are in no_data: silence is not health.
    c.wait_state("parity", "no_data", LONG);

    // Biased and drifted traffic from two agents, re-sent every 300 ms (as late summaries of
    // the same window, seq 1, 2, ...) so the data stays fresh.
    let window = minute();
    let mut seq = 0;
    let mut send = |c: &Collector| {
        for agent in ["agent-a", "agent-b"] {
            let s = summary(
                &schema,
                &profile,
                Traffic::Biased,
                200,
                seq * 2 + u64::from(agent == "agent-b"),
            );
            let mut drifted = summary(&schema, &profile, Traffic::Drifted, 200, 1_000 + seq);
            drifted.merge(&s).unwrap();
            let r = c.post(&envelope(agent, window, seq, drifted), None);
            assert_eq!(r.status(), 202, "{}", r.text().unwrap());
        }
        seq += 1;
    };
    send(&c);
    let mut seen = Vec::new();
    wait_until(LONG, "parity firing", || {
        send(&c);
        let s = c.state("parity");
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        (s == "firing").then_some(())
    });
    assert!(
        seen.contains(&"pending".to_owned()),
        "pending before firing: {seen:?}"
    );
    wait_until(LONG, "income-drift firing", || {
        send(&c);
        (c.state("income-drift") == "firing").then_some(())
    });
    let parity = c.objective("parity");
    assert!(parity["last_value"].as_f64().unwrap() < 0.8, "{parity}");
    assert_eq!(c.state("accuracy"), "insufficient_data");
    let heartbeat = c.state("heartbeat");
    assert!(heartbeat == "ok" || heartbeat == "resolved", "{heartbeat}");

    let alerts = get_json(&c.url("/v1/alerts"), None);
    let firing: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["objective"].as_str().unwrap())
        .collect();
    assert!(
        firing.contains(&"parity") && firing.contains(&"income-drift"),
        "{alerts}"
    );

    let evidence = c.evidence(None);
    let t = transitions(&evidence, "parity");
    let pending = t
        .iter()
        .position(|s| s == "pending")
        .expect("pending recorded");
    let fired = t
        .iter()
        .position(|s| s == "firing")
        .expect("firing recorded");
    assert!(pending < fired, "{t:?}");
    let eval = evidence
        .iter()
        .rev()
        .find(|r| r["kind"] == "evaluation" && r["objective"] == "parity")
        .unwrap();
    let data = &eval["record"]["data"];
    assert_eq!(data["profile_hash"], profile.hash.as_str());
    assert_eq!(data["model_versions"][0], "1.0");
    assert_eq!(data["target"], ">= 0.8");
    assert!(data["samples"].as_u64().unwrap() >= 200);

    let evaluations = get_json(&c.url("/v1/objectives/parity/evaluations?limit=2"), None);
    assert_eq!(evaluations["items"].as_array().unwrap().len(), 2);
    assert!(evaluations["next_after"].is_u64());
    let future = now_ms() + 3_600_000;
    let none = get_json(
        &c.url(&format!("/v1/objectives/parity/evaluations?from={future}")),
        None,
    );
    assert!(none["items"].as_array().unwrap().is_empty());
    let none = get_json(
        &c.url("/v1/objectives/parity/evaluations?to=2000-01-01T00:00:00Z"),
        None,
    );
    assert!(none["items"].as_array().unwrap().is_empty());
    let bad = client()
        .get(c.url("/v1/objectives/parity/evaluations?from=yesterday"))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().unwrap()["field"], "from");
    let unknown = client()
        .get(c.url("/v1/objectives/nope/evaluations"))
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let metrics = c.metrics();
    assert_eq!(
        sample(
            &metrics,
            "aims_objective_state",
            &[("objective", "parity"), ("state", "firing")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_objective_state",
            &[("objective", "parity"), ("state", "ok")]
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &metrics,
            "aims_objective_breaches_total",
            &[("objective", "parity")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(sample(
        &metrics,
        "aims_model_drift_score",
        &[("model", MODEL), ("feature", "income")]
    )
    .is_some());
    assert!(
        sample(
            &metrics,
            "aims_model_selection_rate_ratio",
            &[("group", "F")]
        )
        .unwrap()
            < 0.4
    );
    assert!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "accepted")]
        )
        .unwrap()
            >= 4.0
    );
    assert!(sample(&metrics, "aims_evidence_head_sequence", &[]).unwrap() > 0.0);
    assert!(sample(&metrics, "aims_evidence_head_hash_prefix", &[]).unwrap() > 0.0);
    assert!(
        !metrics.contains("aims_evidence_head_info"),
        "no metric label derived from data"
    );
    aims_testkit::prom::promtool_check_metrics(&metrics);

    // Stop the flow: after stale_after (3 s) every data objective reads no_data, and the gap
    // is evidence.
    c.wait_state("parity", "no_data", LONG);
    c.wait_state("income-drift", "no_data", LONG);
    // The no_data objective measures the gap itself, and fires on it.
    c.wait_state("heartbeat", "firing", LONG);
    let evidence = c.evidence(None);
    let gaps: Vec<&str> = evidence
        .iter()
        .filter(|r| r["kind"] == "ingestion_gap")
        .map(|r| r["record"]["data"]["gap"].as_str().unwrap())
        .collect();
    assert!(gaps.ends_with(&["ended", "started"]), "{gaps:?}");

    let out = c.command(&["evidence", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn restarts_keep_states_summaries_and_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare(BIN, dir.path(), "");
    // Long staleness so states do not lapse into no_data across restarts.
    c.extra_env.push((
        "AIMS_COLLECTOR__EVALUATION__STALE_AFTER".into(),
        "5m".into(),
    ));
    c.start();
    let schema = schema(3);
    let profile = profile(&schema);
    assert_eq!(c.put_profile(&profile, None).status(), 201);
    let window = minute() - 60_000;
    let mut sent = Vec::new();
    for i in 0..20u64 {
        let e = envelope(
            &format!("agent-{}", i % 5),
            window - (i / 5) as i64 * 60_000,
            0,
            summary(&schema, &profile, Traffic::Biased, 50, i),
        );
        assert_eq!(c.post(&e, None).status(), 202);
        sent.push(e);
    }
    let events = |c: &Collector| sample(&c.metrics(), "aims_model_events", &[("model", MODEL)]);
    wait_until(LONG, "1000 events counted", || {
        (events(&c) == Some(1000.0)).then_some(())
    });
    c.wait_state("parity", "firing", LONG);
    let head_before = get_json(&c.url("/v1/evidence?limit=1"), None)["head"]["seq"]
        .as_u64()
        .unwrap();

    // Graceful restart.
    assert!(c.stop().unwrap().success());
    c.start();
    assert_eq!(c.state("parity"), "firing", "state survives a restart");
    wait_until(LONG, "events after restart", || {
        (events(&c) == Some(1000.0)).then_some(())
    });

    // Hard kill right after acknowledgements: nothing acknowledged is lost.
    for i in 20..30u64 {
        let e = envelope(
            "agent-late",
            window - i as i64 * 60_000,
            0,
            summary(&schema, &profile, Traffic::Biased, 50, i),
        );
        assert_eq!(c.post(&e, None).status(), 202);
        sent.push(e);
    }
    c.kill9();
    c.start();
    assert_eq!(c.state("parity"), "firing");
    wait_until(LONG, "1500 events after kill -9", || {
        (events(&c) == Some(1500.0)).then_some(())
    });

    // Re-sent summaries are answered as success and not counted twice.
    for e in sent.iter().take(5) {
        let r = c.post(e, None);
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().unwrap()["status"], "duplicate");
    }
    // Two more evaluation cycles, then the count is unchanged.
    let head = get_json(&c.url("/v1/evidence?limit=1"), None)["head"]["seq"]
        .as_u64()
        .unwrap();
    wait_until(LONG, "two more cycles", || {
        (get_json(&c.url("/v1/evidence?limit=1"), None)["head"]["seq"]
            .as_u64()
            .unwrap()
            > head + 8)
            .then_some(())
    });
    assert_eq!(events(&c), Some(1500.0));

    let evidence = c.evidence(None);
    assert!(evidence.len() as u64 > head_before);
    let startups = evidence.iter().filter(|r| r["kind"] == "startup").count();
    assert_eq!(startups, 3);
    let versions = evidence
        .iter()
        .filter(|r| r["kind"] == "objective_version")
        .count();
    assert_eq!(
        versions, 4,
        "an unchanged file is not a new objective version"
    );
    let out = c.command(&["evidence", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_changed_evidence_byte_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    // It edits the SQLite file itself.
    let mut c = Collector::prepare_sqlite(BIN, dir.path(), "");
    c.start();
    wait_until(LONG, "some evidence", || {
        (c.evidence(None).len() > 12).then_some(())
    });
    assert!(c.stop().unwrap().success());
    let out = c.command(&["evidence", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An attacker with write access to the file: drop the guard trigger, change one byte.
    let db = dir.path().join("data/collector.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query("DROP TRIGGER evidence_no_update").execute(&mut conn).await.unwrap();
        // The 10th character of `{"at_ms":1...` is the first digit of the time: 1 -> 2.
        let done = sqlx::query(
            "UPDATE evidence SET canonical = substr(canonical, 1, 9) || '2' || substr(canonical, 11) WHERE seq = 7",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 1);
        conn.close().await.unwrap();
    });
    let out = c.command(&["evidence", "verify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("record 7"), "{stderr}");
}

#[test]
fn auth_validation_and_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let agent_token = "agent-a-secret";
    let read_token = "dashboard-secret";
    let extra = format!(
        "[auth]\nread_token_sha256 = [\"{}\"]\n[[auth.agents]]\nname = \"agent-a\"\ntoken_sha256 = \"{}\"\nmodels = [\"credit-scoring\"]\n[[auth.agents]]\nname = \"agent-other\"\ntoken_sha256 = \"{}\"\nmodels = [\"fraud\"]\n",
        sha256_hex(read_token.as_bytes()),
        sha256_hex(agent_token.as_bytes()),
        sha256_hex(b"other-secret"),
    );
    let mut c = Collector::prepare(BIN, dir.path(), &extra);
    c.start();
    let schema = schema(2);
    let profile = profile(&schema);
    let e = envelope(
        "agent-a",
        minute(),
        0,
        summary(&schema, &profile, Traffic::Normal, 20, 1),
    );

    assert_eq!(c.put_profile(&profile, None).status(), 401);
    assert_eq!(c.put_profile(&profile, Some("other-secret")).status(), 403);
    assert_eq!(c.put_profile(&profile, Some(agent_token)).status(), 201);

    let r = c.post(&e, None);
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(c.post(&e, Some("wrong")).status(), 401);
    let r = c.post(&e, Some("other-secret"));
    assert_eq!(r.status(), 403);

    // Validation: malformed JSON, a forged id, an unknown profile.
    let r = client()
        .post(c.url("/v1/summaries"))
        .bearer_auth(agent_token)
        .header("content-type", "application/json")
        .body("{\"id\": 3}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "body");
    let mut forged = e.clone();
    forged.window_start_ms += 60_000;
    let r = c.post(&forged, Some(agent_token));
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().unwrap()["field"], "id");
    let mut unknown = e.clone();
    unknown.summary.profile_hash = "f".repeat(64);
    let r = c.post(&unknown, Some(agent_token));
    assert_eq!(r.status(), 422);
    let body: Value = r.json().unwrap();
    assert_eq!(body["field"], "summary.profile_hash");
    assert!(body["error"].as_str().unwrap().contains(&"f".repeat(64)));

    // Accepted once (gzip), then a duplicate.
    assert_eq!(c.post_gzip(&e, Some(agent_token)).status(), 202);
    let r = c.post(&e, Some(agent_token));
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["status"], "duplicate");

    // Read endpoints take the read token, not an agent's.
    for path in [
        "/v1/objectives",
        "/v1/alerts",
        "/v1/evidence",
        "/v1/objectives/parity/evaluations",
    ] {
        assert_eq!(
            client().get(c.url(path)).send().unwrap().status(),
            401,
            "{path}"
        );
        assert_eq!(
            client()
                .get(c.url(path))
                .bearer_auth(agent_token)
                .send()
                .unwrap()
                .status(),
            401,
            "{path}"
        );
        assert_eq!(
            client()
                .get(c.url(path))
                .bearer_auth(read_token)
                .send()
                .unwrap()
                .status(),
            200,
            "{path}"
        );
    }
    let oversized = client()
        .post(c.url("/v1/summaries"))
        .bearer_auth(agent_token)
        .body(vec![b' '; (8 << 20) + 1])
        .send()
        .unwrap();
    assert_eq!(oversized.status(), 413);

    let metrics = c.metrics();
    assert_eq!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "accepted")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "duplicate")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "unauthorized")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "unknown_profile")]
        ),
        Some(1.0)
    );
    let openapi = get_json(&c.url("/openapi.json"), None);
    assert!(openapi["paths"]["/v1/summaries"]["post"].is_object());
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
}

#[test]
fn reload_keeps_old_objectives_on_error_and_versions_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare(BIN, dir.path(), "");
    c.start();
    let objectives = dir.path().join("objectives.yaml");

    std::fs::write(
        &objectives,
        OBJECTIVES.replace("target: \"<= 0.2\"", "target: \"about 0.2\""),
    )
    .unwrap();
    let r = client().post(c.url("/-/reload")).send().unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().unwrap();
    let err = &body["errors"][0];
    assert_eq!(err["field"], "objectives[1] (income-drift).target");
    assert_eq!(err["line"], 19);
    assert_eq!(
        c.objective("income-drift")["target"],
        "<= 0.2",
        "old objectives stay"
    );
    assert_eq!(
        sample(&c.metrics(), "aims_config_last_reload_successful", &[]),
        Some(0.0)
    );

    std::fs::write(
        &objectives,
        OBJECTIVES.replace("target: \"<= 0.2\"", "target: \"<= 0.25\""),
    )
    .unwrap();
    c.signal("HUP");
    wait_until(LONG, "SIGHUP reload", || {
        (c.objective("income-drift")["target"] == "<= 0.25").then_some(())
    });
    let evidence = c.evidence(None);
    let reloads: Vec<&str> = evidence
        .iter()
        .filter(|r| r["kind"] == "config_reload")
        .map(|r| r["record"]["data"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(reloads, ["failure", "success"]);
    let versions: Vec<&str> = evidence
        .iter()
        .filter(|r| r["kind"] == "objective_version")
        .map(|r| r["objective"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        [
            "parity",
            "income-drift",
            "accuracy",
            "heartbeat",
            "income-drift"
        ]
    );
    let metrics = c.metrics();
    assert_eq!(
        sample(
            &metrics,
            "aims_config_reloads_total",
            &[("outcome", "failure")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics,
            "aims_config_reloads_total",
            &[("outcome", "success")]
        ),
        Some(1.0)
    );
}

#[test]
fn check_validates_like_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, OBJECTIVES).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 4 objectives"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        OBJECTIVES
            .replace("metric: psi", "metric: psy")
            .replace("for: 2s", "for: soon"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:11: objectives[0] (parity).for", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:17: objectives[1] (income-drift).metric",
            bad.display()
        )),
        "{stderr}"
    );

    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/objectives.yaml"
    );
    let out = std::process::Command::new(BIN)
        .args(["check", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One run names every error: a missing owner and a bad metric in the same objective.
    let both = dir.path().join("both.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let owner_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("owner:"))
        .unwrap()
        .to_owned();
    std::fs::write(
        &both,
        text.replacen(&format!("{owner_line}\n"), "", 1).replacen(
            "metric: demographic_parity",
            "metric: demographic_parity_x",
            1,
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&both)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(".owner: is required"), "{stderr}");
    assert!(stderr.contains(".metric: "), "{stderr}");

    // With the model's reference profile, a misspelled feature is named.
    let profile = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/profile.json"
    );
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, text.replacen("feature: income", "feature: incme", 1)).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&typo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "without a profile the name is not known"
    );
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&typo)
        .args(["--reference", profile])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no feature \"incme\""), "{stderr}");
}

#[test]
fn unknown_config_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::prepare(BIN, dir.path(), "[server]\nlistn = \"x\"\n");
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&c.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listn"));
    let c = Collector::prepare(BIN, dir.path(), "");
    let out = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&c.config)
        .env("AIMS_COLLECTOR__EVALUATION__INTERVALL", "1s")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("intervall"));
}

#[test]
fn tls_listener_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let extra = format!(
        "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let mut c = Collector::prepare(BIN, dir.path(), &extra);
    c.tls = true;
    c.start();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", c.port).parse().unwrap();
    let https = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/healthz", c.port);
    let r = wait_until(LONG, "https /healthz", || https.get(&url).send().ok());
    assert_eq!(r.status(), 200);
    let plain = client()
        .get(format!("http://127.0.0.1:{}/healthz", c.port))
        .send();
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP is not served"
    );
}

#[test]
fn a_full_ingest_queue_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Collector::prepare(
        BIN,
        dir.path(),
        "[server]\ningest_queue = 1\ningest_batch = 1\n",
    );
    c.start();
    let schema = schema(19);
    let profile = profile(&schema);
    assert_eq!(c.put_profile(&profile, None).status(), 201);
    let base = summary(&schema, &profile, Traffic::Normal, 50, 1);
    let url = c.url("/v1/summaries");
    let mut next = 0i64;
    let throttled = wait_until(LONG, "a 429 under load", || {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                next += 1;
                let e = envelope(
                    &format!("agent-{i}"),
                    minute() - next * 60_000,
                    0,
                    base.clone(),
                );
                let url = url.clone();
                std::thread::spawn(move || client().post(url).json(&e).send().unwrap())
            })
            .collect();
        let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for a in &answers {
            assert!(a.status() == 202 || a.status() == 429, "{}", a.status());
        }
        answers.into_iter().find(|a| a.status() == 429).map(|a| {
            a.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned())
        })
    });
    assert_eq!(throttled.as_deref(), Some("1"));
    let metrics = c.metrics();
    assert!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "overloaded")]
        )
        .unwrap()
            >= 1.0
    );
}
