//! The collector as a library: started in process on a listener bound to port 0, driven over
//! real HTTP, with a manual clock so a lifecycle advances without waiting for wall time.

mod common;

use std::time::Duration;

use aims_testkit::fixtures::{envelope, profile, schema, summary, Traffic, OBJECTIVES};
use aims_testkit::{eventually, prom::sample};
use serde_json::Value;

async fn state(client: &reqwest::Client, base: &str, id: &str) -> String {
    let v: Value = client
        .get(format!("{base}/v1/objectives"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == id)
        .map(|o| o["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_runs_in_process_on_port_zero_with_a_manual_clock() {
    let c = common::InProcess::start(OBJECTIVES, |_| {});
    let (base, clock, start) = (c.base.clone(), c.clock.clone(), c.start);
    let client = reqwest::Client::new();

    let health: Value = eventually(Duration::from_secs(20), "healthz", || async {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    })
    .await;
    assert_eq!(health["status"], "ok");

    let schema = schema(3);
    let profile = profile(&schema);
    let put = client
        .put(format!("{base}/v1/models/{}/reference", schema.name))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    let drifted = envelope(
        "a1",
        start,
        0,
        summary(&schema, &profile, Traffic::Drifted, 300, 1),
    );
    let post = |e: &aims_core::wire::SummaryEnvelope| {
        client.post(format!("{base}/v1/summaries")).json(e).send()
    };
    assert_eq!(post(&drifted).await.unwrap().status(), 202);
    assert_eq!(
        post(&drifted).await.unwrap().status(),
        200,
        "a retry is a duplicate"
    );

    // The drift is seen at once, but `for: 1s` of clock time must pass before it fires: the
    // clock does not move by itself, so the objective stays pending however long we wait.
    eventually(Duration::from_secs(20), "income-drift pending", || async {
        (state(&client, &base, "income-drift").await == "pending").then_some(())
    })
    .await;
    clock.advance(Duration::from_secs(2));
    eventually(Duration::from_secs(20), "income-drift firing", || async {
        (state(&client, &base, "income-drift").await == "firing").then_some(())
    })
    .await;

    let metrics = aims_testkit::prom::scrape(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(
            &metrics,
            "aims_ingest_summaries_total",
            &[("outcome", "accepted")]
        ),
        Some(1.0),
        "{metrics}"
    );

    c.shutdown().await;
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "the listener is closed"
    );
}

/// Every error the API gives is a JSON body naming what to fix: a query parameter that does not
/// parse, a path that does not exist, a method a path does not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_json_body_naming_what_to_fix() {
    let c = common::InProcess::start(OBJECTIVES, |_| {});
    let base = c.base.clone();
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(20), "healthz", || async {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    let cases = [
        ("GET", "/v1/evidence?limit=abc", 400, "limit"),
        ("GET", "/v1/evidence?after=-1", 400, "after"),
        ("GET", "/v1/no-such-thing", 404, "path"),
        ("DELETE", "/v1/evidence", 405, "method"),
        ("GET", "/v1/summaries", 405, "method"),
    ];
    for (method, path, status, field) in cases {
        let resp = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["field"], field, "{method} {path}: {body}");
        assert!(
            !body["error"].as_str().unwrap_or_default().is_empty(),
            "{method} {path}: {body}"
        );
    }
    c.shutdown().await;
}
