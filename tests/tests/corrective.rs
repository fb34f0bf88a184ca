//! Clause 10.2 end to end with real parts: the simulator's biased traffic goes through the real
//! agent and collector, whose breach opens a nonconformity; people act on it over HTTP with the
//! role token (requests without it get 401 or 403 and store nothing); an action past its due
//! date reaches a real Alertmanager (Debian's `prometheus-alertmanager`, on a run-time loopback
//! port) as `AIMSCorrectiveActionOverdue`; marked done while the bias goes on, verification
//! finds it ineffective and the nonconformity reopens; a second action done once traffic has
//! recovered is verified effective after N passing evaluations; and the report, rendered in
//! headless Chromium, shows the timeline with the evidence records behind it.
//!
//! One test function, so the stack, Alertmanager and the breach are set up once.

use std::time::{Duration, Instant};

use aims_e2e::{
    alertmanager, chromium_dom, free_port, get_json, http, tail, wait_until, Process, Stack,
    StackConfig,
};
use aims_testkit::fixtures::now_ms;
use serde_json::{json, Value};

const TOKEN: &str = "e2e-corrective-token";
/// `printf %s e2e-corrective-token | sha256sum`.
const TOKEN_SHA256: &str = "22ff7c65768db74e0af7e02f4318015bb5140b3c9be5ae8f2aa3da012a8add32";
/// Passing evaluations that verify an action effective (small, with a 1 s evaluation interval).
const EVALUATIONS: u64 = 3;

/// `min_group_samples` leaves the small groups out of the ratio: in a 5 s window their few
/// predictions make steady traffic breach now and then, which would reopen a verification
/// that the test expects to pass.
const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    window: 5s
    min_samples: 300
    min_group_samples: 200
    for: 2s
    severity: critical
    owner: head-of-credit-risk@example.com
    controls: [A.6.2.6]
    notify: [am]
"#;

fn simulate(stack: &Stack, scenario: &str, seed: &str) -> Process {
    stack.simulate(&[
        "--rate",
        "400",
        "--scenario",
        scenario,
        "--duration",
        "180s",
        "--seed",
        seed,
    ])
}

/// POSTs `body` to `path` on the collector with `token`: (status, JSON answer).
fn post(stack: &Stack, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = http()
        .post(format!("{}{path}", stack.collector_url))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().expect("the collector answers");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn nonconformity(stack: &Stack, id: u64) -> Value {
    get_json(&format!("{}/v1/nonconformities/{id}", stack.collector_url)).unwrap_or(Value::Null)
}

/// Waits until nonconformity `id` is `status`, showing the collector's log on timeout.
fn wait_status(stack: &Stack, id: u64, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let nc = nonconformity(stack, id);
        if nc["status"] == status {
            return nc;
        }
        if Instant::now() > deadline {
            let evaluations = recent_verdicts(stack, now_ms() - 20_000);
            panic!(
                "nonconformity {id} did not become {status} within {within:?}: {nc}\n--- parity evaluations ---\n{evaluations:?}\n--- collector ---\n{}",
                tail(&stack.collector.log())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The verdicts of parity's evaluations since `since_ms`, oldest first.
fn recent_verdicts(stack: &Stack, since_ms: i64) -> Vec<String> {
    get_json(&format!(
        "{}/v1/objectives/parity/evaluations?from={since_ms}&limit=1000",
        stack.collector_url
    ))
    .and_then(|page| page["items"].as_array().cloned())
    .unwrap_or_default()
    .iter()
    .map(|i| {
        i["record"]["data"]["verdict"]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    })
    .collect()
}

/// Every `nonconformity` evidence record of nonconformity `id`, in log order.
fn records_of(stack: &Stack, id: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let page = get_json(&format!(
            "{}/v1/evidence?after={after}&limit=1000",
            stack.collector_url
        ))
        .expect("GET /v1/evidence");
        out.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| {
                    i["kind"] == "nonconformity" && i["record"]["data"]["nonconformity"] == id
                })
                .cloned(),
        );
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

/// The overdue alert for (nonconformity, action) that Alertmanager holds as active, if any.
fn active_overdue(am_url: &str, id: u64, action: u32) -> Option<Value> {
    get_json(&format!("{am_url}/api/v2/alerts?active=true"))?
        .as_array()?
        .iter()
        .find(|a| {
            a["labels"]["alertname"] == "AIMSCorrectiveActionOverdue"
                && a["labels"]["nonconformity"].as_str() == Some(id.to_string().as_str())
                && a["labels"]["action"].as_str() == Some(action.to_string().as_str())
                && a["status"]["state"] == "active"
        })
        .cloned()
}

#[test]
fn a_breach_becomes_a_nonconformity_whose_actions_are_verified_by_measurement() {
    let Some(tools) = alertmanager::tools() else {
        return;
    };
    let am_dir = tempfile::tempdir().expect("temp dir");
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let _am = alertmanager::start(&tools, am_dir.path(), am_port);
    let extra = format!(
        "resolved_hold = \"30s\"\n\n[notify]\nresend_interval = \"2s\"\nbackoff_initial = \"200ms\"\nbackoff_max = \"1s\"\ntimeout = \"2s\"\n\n[[notify.receivers]]\nname = \"am\"\nkind = \"alertmanager\"\nurls = [\"{am_url}\"]\n\n[auth]\ncorrective_token_sha256 = [\"{TOKEN_SHA256}\"]\n\n[effectiveness]\nevaluations = {EVALUATIONS}\n"
    );
    let stack = Stack::start(&StackConfig {
        objectives: OBJECTIVES,
        collector_extra: &extra,
        ..StackConfig::default()
    });
    let base = format!("{}/v1/nonconformities", stack.collector_url);

    // A breach fires and opens a nonconformity carrying the objective, version and severity.
    let mut sim = simulate(&stack, "bias", "7");
    stack.wait_state("parity", "firing", Duration::from_secs(60));
    let opened = wait_until(Duration::from_secs(30), "a nonconformity", || {
        get_json(&format!("{base}?objective=parity"))?["nonconformities"]
            .as_array()?
            .first()
            .cloned()
    });
    let id = opened["id"].as_u64().expect("id");
    assert_eq!(opened["status"], "open", "{opened}");
    assert_eq!(opened["severity"], "critical");
    assert!(!opened["version"].as_str().unwrap_or_default().is_empty());
    let path = |p: &str| format!("/v1/nonconformities/{id}/{p}");

    // Without the role token: 401 without a token, 403 with another one; nothing stored.
    let before = records_of(&stack, id).len();
    let ack = json!({"actor": "ana@example.com", "note": "looking into it"});
    assert_eq!(post(&stack, &path("acknowledge"), None, ack.clone()).0, 401);
    assert_eq!(
        post(
            &stack,
            &path("acknowledge"),
            Some("not-the-token"),
            ack.clone()
        )
        .0,
        403
    );
    let plan = json!({"actor": "x", "description": "y", "owner": "z", "due": "2099-01-01", "control": "A.6.2.6"});
    assert_eq!(post(&stack, &path("actions"), None, plan).0, 401);
    assert_eq!(
        records_of(&stack, id).len(),
        before,
        "a refusal stores nothing"
    );
    assert_eq!(nonconformity(&stack, id)["status"], "open");

    // Acknowledged, its cause found, an action planned due in three seconds.
    let (s, b) = post(&stack, &path("acknowledge"), Some(TOKEN), ack);
    assert_eq!(
        (s, b["status"].as_str()),
        (200, Some("acknowledged")),
        "{b}"
    );
    let (s, b) = post(
        &stack,
        &path("cause"),
        Some(TOKEN),
        json!({"actor": "ana@example.com", "cause": "approval threshold tuned on one region", "category": "model"}),
    );
    assert_eq!(s, 200, "{b}");
    let due_ms = now_ms() + 3_000;
    let (s, b) = post(
        &stack,
        &path("actions"),
        Some(TOKEN),
        json!({"actor": "ana@example.com", "description": "re-tune the threshold per segment",
               "owner": "ml-platform@example.com", "due": due_ms.to_string(), "control": "A.6.2.6"}),
    );
    assert_eq!(
        (s, b["status"].as_str()),
        (201, Some("action_planned")),
        "{b}"
    );

    // Past due, the action reaches Alertmanager as its own alert.
    let overdue = wait_until(
        Duration::from_secs(30),
        "AIMSCorrectiveActionOverdue in Alertmanager",
        || active_overdue(&am_url, id, 1),
    );
    assert!(now_ms() > due_ms);
    assert_eq!(overdue["labels"]["objective"], "parity", "{overdue}");
    assert_eq!(overdue["labels"]["severity"], "critical");
    assert_eq!(overdue["annotations"]["owner"], "ml-platform@example.com");
    assert_eq!(
        overdue["generatorURL"],
        format!("{}/v1/nonconformities/{id}", stack.collector_url)
    );

    // Marked done while the bias goes on: verification meets a breach, so the action was
    // ineffective and the nonconformity reopens; the overdue alert resolves.
    let (s, b) = post(
        &stack,
        &path("actions/1/done"),
        Some(TOKEN),
        json!({"actor": "bo@example.com"}),
    );
    assert_eq!(s, 200, "{b}");
    let reopened = wait_status(&stack, id, "reopened", Duration::from_secs(30));
    assert_eq!(reopened["ineffective_verifications"], 1, "{reopened}");
    wait_until(
        Duration::from_secs(30),
        "the overdue alert to leave Alertmanager",
        || active_overdue(&am_url, id, 1).is_none().then_some(()),
    );

    // Traffic recovers; a second action, done once the objective meets its target again,
    // is verified effective after N passing evaluations; then it can be closed.
    sim.stop();
    let _steady = simulate(&stack, "steady", "8");
    let (s, b) = post(
        &stack,
        &path("acknowledge"),
        Some(TOKEN),
        json!({"actor": "ana@example.com", "note": "the first action did not hold"}),
    );
    assert_eq!((s, b["status"].as_str()), (200, Some("cause_found")), "{b}");
    let (s, b) = post(
        &stack,
        &path("actions"),
        Some(TOKEN),
        json!({"actor": "ana@example.com", "description": "per-segment thresholds in production",
               "owner": "ml-platform@example.com", "due": "2099-01-01", "control": "A.6.2.6"}),
    );
    assert_eq!(
        (s, b["status"].as_str()),
        (201, Some("action_planned")),
        "{b}"
    );
    stack.wait_state("parity", "resolved", Duration::from_secs(60));
    // Resolved at the first evaluation meeting the target, while the 5 s window still mixes
    // biased and steady traffic, so the next one may breach again. Six met evaluations in a
    // row (one a second) mean the window holds steady traffic only.
    wait_until(
        Duration::from_secs(60),
        "six met evaluations in a row",
        || {
            let v = recent_verdicts(&stack, now_ms() - 10_000);
            (v.len() >= 6 && v[v.len() - 6..].iter().all(|x| x == "met")).then_some(())
        },
    );
    let (s, b) = post(
        &stack,
        &path("actions/2/done"),
        Some(TOKEN),
        json!({"actor": "bo@example.com"}),
    );
    assert_eq!(s, 200, "{b}");
    let effective = wait_status(&stack, id, "effective", Duration::from_secs(30));
    assert!(effective["effective"].is_string(), "{effective}");
    let (s, b) = post(
        &stack,
        &path("close"),
        Some(TOKEN),
        json!({"actor": "ana@example.com", "note": "verified by measurement"}),
    );
    assert_eq!((s, b["status"].as_str()), (200, Some("closed")), "{b}");

    // The evidence: every step a record, in order, each person's step naming its actor.
    let records = records_of(&stack, id);
    let path_taken: Vec<&str> = records
        .iter()
        .map(|r| r["record"]["data"]["to"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        path_taken,
        [
            "open",
            "acknowledged",
            "cause_found",
            "action_planned",
            "verifying",
            "reopened",
            "cause_found",
            "action_planned",
            "verifying",
            "effective",
            "closed"
        ],
        "{records:?}"
    );

    // The report in headless Chromium shows the timeline, record by record.
    let report = http()
        .get(format!("{}/v1/reports", stack.collector_url))
        .query(&[
            ("from", "2000-01-01"),
            ("to", &(now_ms() + 60_000).to_string()),
            ("format", "html"),
        ])
        .send()
        .expect("GET /v1/reports")
        .text()
        .expect("the report");
    let html_path = stack.dir.path().join("report.html");
    std::fs::write(&html_path, &report).expect("report file");
    let Some(dom) = chromium_dom(&html_path) else {
        return;
    };
    let start = dom
        .find(&format!("id=\"nc-{id}\""))
        .unwrap_or_else(|| panic!("nonconformity {id} in the report"));
    let section = &dom[start..];
    let section = &section[..section.find("</section>").expect("section end")];
    assert!(dom.contains("10. Nonconformities and corrective actions (Clause 10.2)"));
    assert!(section.contains("approval threshold tuned on one region"));
    assert!(section.contains("re-tune the threshold per segment"));
    assert!(
        section.contains("effective · 1 ineffective verification(s)"),
        "{section}"
    );
    let timeline = &section[section.find("class=\"timeline\"").expect("timeline")..];
    assert_eq!(
        timeline.matches("<tr>").count(),
        records.len() + 1,
        "a heading and one row per record: {timeline}"
    );
    for r in &records {
        let seq = r["seq"].as_u64().expect("seq");
        assert!(
            timeline.contains(&format!("<td>#{seq}</td>")),
            "record {seq}"
        );
    }
    assert!(dom.contains("Management review inputs (Clause 9.3)"));
}
