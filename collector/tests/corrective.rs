//! Nonconformities and corrective actions (Clause 10.2), in process over real HTTP with a
//! manual clock: a breach that fires opens a nonconformity; requests without the role token
//! are refused and store nothing; acknowledged, with a cause and a done action, it becomes
//! effective after N passing evaluations; a second breach verifies ineffective and reopens.
//! The CLI twins act the same way, and an overdue action alerts through the objective's
//! receivers once, until it is done.

mod common;

use std::time::Duration;

use aims_core::hash::sha256_hex;
use aims_testkit::fixtures::{envelope, profile, schema, summary, Traffic, OBJECTIVES};
use aims_testkit::{eventually, prom::sample};
use serde_json::{json, Value};

const ROLE: &str = "corrective-secret";
const READ: &str = "read-secret";

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn nonconformities(&self) -> Vec<Value> {
        self.get("/v1/nonconformities?objective=income-drift").await["nonconformities"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn nc_records(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .get(&format!("/v1/evidence?after={after}&limit=1000"))
                .await;
            let items = page["items"].as_array().unwrap();
            out.extend(
                items
                    .iter()
                    .filter(|i| i["kind"] == "nonconformity" && i["objective"] == "income-drift")
                    .cloned(),
            );
            match page["next_after"].as_u64() {
                Some(n) => after = n,
                None => return out,
            }
        }
    }

    async fn wait_status(&self, id: u64, status: &str) -> Value {
        eventually(Duration::from_secs(20), status, || async {
            let nc = self.get(&format!("/v1/nonconformities/{id}")).await;
            // Before it exists the answer is a 404 body without a status.
            (nc.get("status").and_then(Value::as_str) == Some(status)).then_some(nc)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonconformity_goes_from_breach_to_verified_action_and_reopens_when_ineffective() {
    let c = common::InProcess::start(OBJECTIVES, |config| {
        config.effectiveness.evaluations = 3;
        config.auth.read_token_sha256 = vec![sha256_hex(READ.as_bytes())];
        config.auth.corrective_token_sha256 = vec![sha256_hex(ROLE.as_bytes())];
    });
    let (base, clock, start) = (c.base.clone(), c.clock.clone(), c.start);
    let api = Api {
        client: reqwest::Client::new(),
        base: base.clone(),
    };
    eventually(Duration::from_secs(20), "healthz", || async {
        api.client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    let schema = schema(3);
    let profile = profile(&schema);
    let put = api
        .client
        .put(format!("{base}/v1/models/{}/reference", schema.name))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let mut seq = 0;
    let send = |at: i64, traffic: Traffic, seq: u64| {
        let e = envelope("a1", at, seq, summary(&schema, &profile, traffic, 300, seq));
        let c = api.client.clone();
        let url = format!("{base}/v1/summaries");
        async move {
            let s = c.post(url).json(&e).send().await.unwrap().status();
            assert_eq!(s, 202);
        }
    };

    // A drift breach fires (after `for: 1s` of clock time) and opens nonconformity 1.
    send(start, Traffic::Drifted, seq).await;
    seq += 1;
    eventually(Duration::from_secs(20), "pending", || async {
        let v = api.get("/v1/objectives").await;
        v["objectives"]
            .as_array()?
            .iter()
            .any(|o| o["id"] == "income-drift" && o["state"] == "pending")
            .then_some(())
    })
    .await;
    clock.advance(Duration::from_secs(2));
    let opened = eventually(Duration::from_secs(20), "opened", || async {
        api.nonconformities().await.into_iter().next()
    })
    .await;
    assert_eq!(opened["status"], "open");
    assert_eq!(opened["id"], 1);
    let records_before = api.nc_records().await.len();
    assert_eq!(records_before, 1, "the opening is one record");

    // Without the role token: 401 without a token, 403 with a read token; nothing stored.
    let ack = json!({"actor": "ana@example.com", "note": "looking into it"});
    let (s, _) = api
        .post("/v1/nonconformities/1/acknowledge", None, ack.clone())
        .await;
    assert_eq!(s, 401);
    let (s, _) = api
        .post("/v1/nonconformities/1/acknowledge", Some(READ), ack.clone())
        .await;
    assert_eq!(s, 403);
    let (s, _) = api
        .post(
            "/v1/nonconformities/1/cause",
            Some("guess"),
            json!({"actor": "x", "cause": "y", "category": "z"}),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(api.nc_records().await.len(), records_before);
    assert_eq!(api.nonconformities().await[0]["status"], "open");

    // Out of order or incomplete: refused with the reason, nothing stored.
    let (s, body) = api
        .post(
            "/v1/nonconformities/1/cause",
            Some(ROLE),
            json!({"actor": "ana", "cause": "c", "category": "data"}),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    let (s, body) = api
        .post(
            "/v1/nonconformities/1/acknowledge",
            Some(ROLE),
            json!({"note": "who?"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(body["error"].as_str().unwrap().contains("actor"), "{body}");
    assert_eq!(api.nc_records().await.len(), records_before);

    // React, find the cause, plan an action.
    let (s, body) = api
        .post("/v1/nonconformities/1/acknowledge", Some(ROLE), ack)
        .await;
    assert_eq!((s, body["status"].as_str()), (200, Some("acknowledged")));
    let (s, _) = api
        .post(
            "/v1/nonconformities/1/cause",
            Some(ROLE),
            json!({"actor": "ana@example.com", "cause": "upstream unit change in income", "category": "data"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, body) = api
        .post(
            "/v1/nonconformities/1/actions",
            Some(ROLE),
            json!({"actor": "ana@example.com", "description": "fix the unit conversion", "owner": "ml-platform@example.com", "due": "2099-01-01", "control": "A.7.4"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["status"], "action_planned");
    assert_eq!(body["owner"], "ml-platform@example.com");

    // Traffic recovers: an hour later the window holds only normal traffic.
    clock.advance(Duration::from_secs(3720));
    send(start + 3_720_000, Traffic::Normal, seq).await;
    seq += 1;
    eventually(Duration::from_secs(20), "recovered", || async {
        let v = api.get("/v1/objectives").await;
        v["objectives"]
            .as_array()?
            .iter()
            .any(|o| o["id"] == "income-drift" && o["state"] != "firing" && o["state"] != "pending")
            .then_some(())
    })
    .await;
    let (s, body) = api
        .post(
            "/v1/nonconformities/1/actions/1/done",
            Some(ROLE),
            json!({"actor": "bo@example.com"}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body["status"] == "verifying" || body["status"] == "effective",
        "{body}"
    );
    let effective = api.wait_status(1, "effective").await;
    assert!(effective["verification"].is_null() || effective["effective"].is_string());
    let (s, _) = api
        .post(
            "/v1/nonconformities/1/close",
            Some(ROLE),
            json!({"actor": "ana@example.com", "note": "verified"}),
        )
        .await;
    assert_eq!(s, 200);

    // The evidence records tell the same story as the timeline.
    let records = api.nc_records().await;
    let path: Vec<&str> = records
        .iter()
        .filter(|r| r["record"]["data"]["nonconformity"] == 1)
        .map(|r| r["record"]["data"]["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "open",
            "acknowledged",
            "cause_found",
            "action_planned",
            "verifying",
            "effective",
            "closed"
        ]
    );
    let closed = api.get("/v1/nonconformities/1").await;
    assert_eq!(closed["timeline"].as_array().unwrap().len(), path.len());
    let actors: Vec<&str> = records
        .iter()
        .filter_map(|r| r["record"]["data"]["actor"].as_str())
        .collect();
    assert_eq!(
        actors,
        [
            "ana@example.com",
            "ana@example.com",
            "ana@example.com",
            "bo@example.com",
            "ana@example.com"
        ]
    );

    // A second breach opens a second nonconformity (1 is closed); its action is done while the
    // drift persists, so verification finds it ineffective and it reopens.
    clock.advance(Duration::from_secs(3720));
    send(start + 7_440_000, Traffic::Drifted, seq).await;
    eventually(Duration::from_secs(20), "pending again", || async {
        let v = api.get("/v1/objectives").await;
        v["objectives"]
            .as_array()?
            .iter()
            .any(|o| o["id"] == "income-drift" && o["state"] == "pending")
            .then_some(())
    })
    .await;
    clock.advance(Duration::from_secs(2));
    // Its new nonconformity (the hour without summaries may have opened one for the heartbeat
    // objective meanwhile, so its id is looked up, not assumed).
    let second = eventually(
        Duration::from_secs(30),
        "a second nonconformity",
        || async {
            api.nonconformities()
                .await
                .into_iter()
                .find(|n| n["status"] == "open")
                .and_then(|n| n["id"].as_u64())
        },
    )
    .await;
    assert_ne!(second, 1);
    for (path, body) in [
        ("acknowledge", json!({"actor": "ana", "note": ""})),
        (
            "cause",
            json!({"actor": "ana", "cause": "the same conversion, elsewhere", "category": "data"}),
        ),
        (
            "actions",
            json!({"actor": "ana", "description": "patch one site", "owner": "ml-platform@example.com", "due": "2099-01-01", "control": "A.7.4"}),
        ),
        ("actions/1/done", json!({"actor": "bo"})),
    ] {
        let (s, b) = api
            .post(
                &format!("/v1/nonconformities/{second}/{path}"),
                Some(ROLE),
                body,
            )
            .await;
        assert!(s == 200 || s == 201, "{path}: {s} {b}");
    }
    let reopened = api.wait_status(second, "reopened").await;
    assert_eq!(reopened["objective"], "income-drift");
    assert_eq!(reopened["ineffective_verifications"], 1);
    assert!(reopened["effective"].is_null());

    // The report's Clause 10.2 section tells the same story, record by record, and the 9.3
    // management-review inputs count them by status.
    let period = format!("from={}&to={}", start - 60_000, clock.now_ms() + 1_000);
    let report = api.get(&format!("/v1/reports?{period}&format=json")).await;
    let section = report["nonconformities"]["nonconformities"]
        .as_array()
        .unwrap();
    let records = api.nc_records().await;
    for (i, verdict) in [(1, "effective"), (second, "ineffective (reopened)")] {
        let nc = section
            .iter()
            .find(|n| n["id"] == i)
            .expect("in the report");
        assert_eq!(nc["verdict"], verdict, "{nc}");
        let from_report: Vec<u64> = nc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["record"].as_u64().unwrap())
            .collect();
        let from_log: Vec<u64> = records
            .iter()
            .filter(|r| r["record"]["data"]["nonconformity"] == i)
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(from_report, from_log, "nonconformity {i}");
    }
    let nc1 = section.iter().find(|n| n["id"] == 1).unwrap();
    assert_eq!(nc1["cause"][0], "upstream unit change in income");
    assert_eq!(nc1["actions"][0]["owner"], "ml-platform@example.com");
    let counts = &report["summary"]["nonconformities"];
    assert_eq!(counts["closed"], 1);
    assert_eq!(counts["reopened"], 1);
    for (status, n) in counts.as_object().unwrap() {
        let listed = section
            .iter()
            .filter(|x| x["status_at_end"] == status.as_str())
            .count();
        assert_eq!(n.as_u64(), Some(listed as u64), "{status}");
    }
    let html = api
        .client
        .get(format!("{base}/v1/reports?{period}&format=html"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("10. Nonconformities and corrective actions (Clause 10.2)"));
    assert!(html.contains("upstream unit change in income") && html.contains("bo@example.com"));

    let metrics = aims_testkit::prom::scrape(&format!("{base}/metrics")).await;
    assert_eq!(
        sample(&metrics, "aims_nonconformities", &[("status", "closed")]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "aims_nonconformities", &[("status", "reopened")]),
        Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            "aims_nonconformity_mean_time_to_effective_seconds",
            &[]
        )
        .unwrap()
            >= 3600.0
    );

    c.shutdown().await;
}

/// A webhook receiver inside the test: every body posted to it, in arrival order.
async fn hook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = aims_testkit::net::listener();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Runs `aims-collector nonconformity ARGS --url BASE`, with `AIMS_CORRECTIVE_TOKEN` set to
/// `token` (or unset): (success, stdout, stderr).
async fn cli(base: &str, args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("nonconformity").args(args).args(["--url", base]);
    cmd.env_remove("AIMS_CORRECTIVE_TOKEN")
        .env_remove("AIMS_READ_TOKEN")
        .env_remove("AIMS_COLLECTOR_URL");
    if let Some(t) = token {
        cmd.env("AIMS_CORRECTIVE_TOKEN", t);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("running the CLI"))
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The overdue-action alerts among the webhook bodies, as (status, nonconformity, action).
fn overdue_alerts(got: &std::sync::Mutex<Vec<Value>>) -> Vec<(String, String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == "AIMSCorrectiveActionOverdue")
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                s(&a["status"]),
                s(&a["labels"]["nonconformity"]),
                s(&a["labels"]["action"]),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_twins_act_and_an_overdue_action_alerts_once_until_done() {
    let (url, got) = hook().await;
    let objectives = OBJECTIVES.replacen(
        "    metric: psi\n    feature: income\n",
        "    metric: psi\n    feature: income\n    notify: [hook]\n",
        1,
    );
    assert_ne!(objectives, OBJECTIVES);
    let c = common::InProcess::start(&objectives, |config| {
        config.auth.read_token_sha256 = vec![sha256_hex(READ.as_bytes())];
        config.auth.corrective_token_sha256 = vec![sha256_hex(ROLE.as_bytes())];
        config.notify.receivers = vec![aims_collector::config::notify::Receiver {
            name: "hook".into(),
            kind: aims_collector::config::notify::ReceiverKind::Webhook,
            urls: vec![],
            url: Some(url),
            token: None,
            token_file: None,
        }];
    });
    let (base, clock, start) = (c.base.clone(), c.clock.clone(), c.start);
    let api = Api {
        client: reqwest::Client::new(),
        base: base.clone(),
    };
    eventually(Duration::from_secs(30), "healthz", || async {
        api.client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    let schema = schema(3);
    let profile = profile(&schema);
    let put = api
        .client
        .put(format!("{base}/v1/models/{}/reference", schema.name))
        .json(&profile)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let e = envelope(
        "a1",
        start,
        0,
        summary(&schema, &profile, Traffic::Drifted, 300, 0),
    );
    let s = api
        .client
        .post(format!("{base}/v1/summaries"))
        .json(&e)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 202);
    eventually(Duration::from_secs(30), "pending", || async {
        let v = api.get("/v1/objectives").await;
        v["objectives"]
            .as_array()?
            .iter()
            .any(|o| o["id"] == "income-drift" && o["state"] == "pending")
            .then_some(())
    })
    .await;
    clock.advance(Duration::from_secs(2));
    // Its id is looked up by objective: the heartbeat objective may open one in the same cycle.
    let id = eventually(Duration::from_secs(30), "a nonconformity", || async {
        api.nonconformities()
            .await
            .into_iter()
            .find(|n| n["status"] == "open")
            .and_then(|n| n["id"].as_u64())
    })
    .await;
    let id_arg = id.to_string();
    let id_s = id_arg.as_str();

    // The CLI twins, as an operator runs them. Without a token, or with a read token: exit
    // status 1, the reason, and nothing stored.
    let read_file = c.dir.path().join("read.token");
    let role_file = c.dir.path().join("role.token");
    std::fs::write(&read_file, format!("{READ}\n")).unwrap();
    std::fs::write(&role_file, format!("{ROLE}\n")).unwrap();
    let records = api.nc_records().await.len();
    let r = cli(&base, &["acknowledge", id_s, "--actor", "ana"], None).await;
    assert!(!r.0 && r.2.contains("AIMS_CORRECTIVE_TOKEN"), "{r:?}");
    let file_arg = read_file.to_str().unwrap();
    let r = cli(
        &base,
        &[
            "acknowledge",
            id_s,
            "--actor",
            "ana",
            "--token-file",
            file_arg,
        ],
        None,
    )
    .await;
    assert!(!r.0 && r.2.contains("403"), "{r:?}");
    assert_eq!(
        api.nc_records().await.len(),
        records,
        "a refusal stores nothing"
    );

    // With the role token (from the environment, then from a file): recorded, JSON printed.
    let r = cli(
        &base,
        &["acknowledge", id_s, "--actor", "ana", "--note", "on it"],
        Some(ROLE),
    )
    .await;
    assert!(r.0, "{r:?}");
    let printed: Value = serde_json::from_str(&r.1).unwrap();
    assert_eq!(printed["status"], "acknowledged");
    let role_arg = role_file.to_str().unwrap();
    let r = cli(
        &base,
        &[
            "cause",
            id_s,
            "--actor",
            "ana",
            "--cause",
            "unit change",
            "--category",
            "data",
            "--token-file",
            role_arg,
        ],
        None,
    )
    .await;
    assert!(r.0, "{r:?}");
    // An action due one minute from the collector's now.
    let due = aims_core::time::rfc3339_millis(clock.now_ms() + 60_000);
    let r = cli(
        &base,
        &[
            "action",
            id_s,
            "--actor",
            "ana",
            "--description",
            "fix the unit conversion",
            "--owner",
            "bo@example.com",
            "--due",
            &due,
            "--control",
            "A.7.4",
        ],
        Some(ROLE),
    )
    .await;
    assert!(r.0, "{r:?}");
    // Not yet effective: the lifecycle refuses the close, and says why.
    let r = cli(&base, &["close", id_s, "--actor", "ana"], Some(ROLE)).await;
    assert!(!r.0 && r.2.contains("409"), "{r:?}");
    let r = cli(
        &base,
        &[
            "list",
            "--status",
            "action_planned",
            "--token-file",
            file_arg,
        ],
        None,
    )
    .await;
    assert!(r.0, "{r:?}");
    let listed: Value = serde_json::from_str(&r.1).unwrap();
    assert_eq!(listed["nonconformities"][0]["owner"], "bo@example.com");
    // The status page lists it, with its age and owner.
    let page = api
        .client
        .get(format!("{base}/"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let table = &page[page.find("<h2>Open nonconformities</h2>").expect("section")..];
    let row = &table[..table.find("</table>").expect("a table")];
    assert!(
        row.contains(&format!("/v1/nonconformities/{id}")) && row.contains("bo@example.com"),
        "{row}"
    );
    assert!(
        row.contains("action_planned") && row.contains(" s</td>"),
        "{row}"
    );
    let records_now = api.nc_records().await;
    assert_eq!(records_now.len(), records + 3, "acknowledge, cause, action");
    assert_eq!(
        records_now.last().unwrap()["record"]["data"]["actor"],
        "ana"
    );
    // The breach alert reaches the hook; the action, not yet due, raises nothing.
    eventually(
        Duration::from_secs(30),
        "breach alert delivered",
        || async {
            got.lock()
                .unwrap()
                .iter()
                .any(|b| b["alerts"][0]["labels"]["alertname"] == "AIMSObjectiveBreach")
                .then_some(())
        },
    )
    .await;
    let metrics = |api: &Api| {
        let url = format!("{}/metrics", api.base);
        async move { aims_testkit::prom::scrape(&url).await }
    };
    assert_eq!(
        sample(&metrics(&api).await, "aims_corrective_actions_overdue", &[]),
        Some(0.0)
    );
    assert!(overdue_alerts(&got).is_empty());

    // Past due (by less than the resend interval): one firing alert, and the gauge counts it.
    clock.advance(Duration::from_secs(61));
    eventually(
        Duration::from_secs(30),
        "overdue alert delivered",
        || async { (!overdue_alerts(&got).is_empty()).then_some(()) },
    )
    .await;
    assert_eq!(
        overdue_alerts(&got),
        [("firing".to_owned(), id_arg.clone(), "1".to_owned())]
    );
    eventually(Duration::from_secs(30), "overdue gauge", || async {
        (sample(&metrics(&api).await, "aims_corrective_actions_overdue", &[]) == Some(1.0))
            .then_some(())
    })
    .await;
    let listed = api.get("/v1/nonconformities?overdue=true").await;
    assert_eq!(listed["nonconformities"][0]["actions"][0]["overdue"], true);

    // Done (through the CLI): the alert resolves, and is not raised again.
    let r = cli(
        &base,
        &["done", id_s, "1", "--actor", "bo@example.com"],
        Some(ROLE),
    )
    .await;
    assert!(r.0, "{r:?}");
    eventually(
        Duration::from_secs(30),
        "overdue alert resolved",
        || async {
            overdue_alerts(&got)
                .iter()
                .any(|(s, _, _)| s == "resolved")
                .then_some(())
        },
    )
    .await;
    let alerts = overdue_alerts(&got);
    assert_eq!(
        alerts.iter().filter(|(s, _, _)| s == "firing").count(),
        1,
        "raised once: {alerts:?}"
    );

    // Each delivery is evidence that names the alert.
    let delivered = eventually(Duration::from_secs(30), "notification evidence", || async {
        let page = api.get("/v1/evidence?limit=1000").await;
        let n = page["items"]
            .as_array()?
            .iter()
            .filter(|i| {
                i["kind"] == "notification"
                    && i["record"]["data"]["alertname"] == "AIMSCorrectiveActionOverdue"
            })
            .count();
        (n >= 2).then_some(n)
    })
    .await;
    assert!(delivered >= 2);
    c.shutdown().await;
}
