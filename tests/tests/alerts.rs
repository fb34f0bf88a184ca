//! Alert delivery with real parts: the simulator's biased traffic goes through the real agent
//! and collector, whose notifier posts to a real Alertmanager (Debian's
//! `prometheus-alertmanager`, started here on a run-time loopback port) and to a webhook
//! receiver run by the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aims_e2e::{
    alertmanager, free_port, get_json, get_text, tail, wait_until, Process, Stack, StackConfig,
};
use aims_testkit::fixtures::now_ms;
use serde_json::Value;

fn objectives(notify: &str) -> String {
    format!(
        r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    window: 5s
    min_samples: 300
    for: 2s
    severity: critical
    owner: head-of-credit-risk@example.com
    rationale: Four-fifths rule
    controls: [A.6.2.6, A.5.4]
    notify: [{notify}]
"#
    )
}

/// A webhook receiver: records each POST's `Authorization` header and JSON body, answers 200.
struct Webhook {
    url: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("webhook listener");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let (mut auth, mut length) = (String::new(), 0usize);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("authorization:") {
                        auth = line["authorization:".len()..].trim().to_owned();
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        sink.lock().expect("webhook lock").push((auth, v));
                    }
                }
                let mut stream = reader.into_inner();
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Webhook { url, received }
    }

    /// The first payload with `status`.
    fn first(&self, status: &str) -> Option<(String, Value)> {
        self.received
            .lock()
            .expect("webhook lock")
            .iter()
            .find(|(_, v)| v["status"] == status)
            .cloned()
    }
}

/// A counter's value on a Prometheus text page.
fn counter(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn notify_config(am_port: u16, webhook: Option<&Webhook>, resend: &str) -> String {
    let mut c = format!(
        "resolved_hold = \"30s\"\n\n[notify]\nresend_interval = \"{resend}\"\nbackoff_initial = \"200ms\"\nbackoff_max = \"1s\"\nmax_attempts = 2\ntimeout = \"2s\"\n\n[[notify.receivers]]\nname = \"am\"\nkind = \"alertmanager\"\nurls = [\"http://127.0.0.1:{am_port}\"]\n"
    );
    if let Some(w) = webhook {
        c.push_str(&format!(
            "\n[[notify.receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\ntoken = \"s3cret\"\n",
            w.url
        ));
    }
    c
}

fn biased(stack: &Stack) -> Process {
    stack.simulate(&[
        "--rate",
        "400",
        "--scenario",
        "bias",
        "--duration",
        "120s",
        "--seed",
        "7",
    ])
}

#[test]
fn alertmanager_and_webhook_get_firing_then_resolved() {
    let Some(tools) = alertmanager::tools() else {
        return;
    };
    let am_dir = tempfile::tempdir().expect("temp dir");
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let _am = alertmanager::start(&tools, am_dir.path(), am_port);
    let hook = Webhook::start();
    let objectives = objectives("am, hook");
    // A 10 s resend makes a 40 s lease: the alert leaving Alertmanager well before its lease
    // ends shows the resolution was delivered, not that the lease ran out.
    let extra = notify_config(am_port, Some(&hook), "10s");
    let stack = Stack::start(&StackConfig {
        objectives: &objectives,
        collector_extra: &extra,
        ..StackConfig::default()
    });

    let mut sim = biased(&stack);
    stack.wait_state("parity", "pending", Duration::from_secs(60));
    // Evaluation interval (1s) + for (2s) + a few seconds.
    let pending_seen = Instant::now();
    let alert = wait_until(
        Duration::from_secs(8),
        "the parity alert in Alertmanager",
        || alertmanager::active_alert(&am_url, "parity"),
    );
    eprintln!(
        "alert in Alertmanager {:?} after pending was seen",
        pending_seen.elapsed()
    );
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "AIMSObjectiveBreach", "{alert}");
    assert_eq!(labels["model"], "credit-scoring", "{alert}");
    assert_eq!(labels["severity"], "critical", "{alert}");
    assert_eq!(labels["attribute"], "gender", "{alert}");
    let ann = &alert["annotations"];
    assert_eq!(
        ann["title"],
        "Approval rates do not disadvantage any gender"
    );
    assert_eq!(ann["target"], "demographic_parity_ratio >= 0.8");
    assert_eq!(ann["owner"], "head-of-credit-risk@example.com");
    assert_eq!(ann["rationale"], "Four-fifths rule");
    assert_eq!(ann["controls"], "A.6.2.6, A.5.4");
    let value: f64 = ann["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("numeric value");
    assert!(
        value < 0.8,
        "the alert carries the breaching value: {alert}"
    );
    let generator = alert["generatorURL"].as_str().expect("generatorURL");
    assert_eq!(
        generator,
        format!("{}/v1/objectives/parity/evaluations", stack.collector_url)
    );
    assert!(get_json(generator).is_some(), "generatorURL answers");

    let (auth, firing) = wait_until(Duration::from_secs(10), "a firing webhook", || {
        hook.first("firing")
    });
    assert_eq!(auth, "Bearer s3cret");
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["receiver"], "hook");
    assert_eq!(firing["groupKey"], "{}:{objective=\"parity\"}");
    assert_eq!(firing["groupLabels"]["objective"], "parity");
    assert_eq!(firing["commonLabels"], alert["labels"]);
    assert_eq!(firing["externalURL"], stack.collector_url);
    let a = &firing["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"], alert["labels"]);
    assert_eq!(
        a["fingerprint"], alert["fingerprint"],
        "the webhook fingerprint is Alertmanager's"
    );
    assert_eq!(
        a["startsAt"].as_str().and_then(alertmanager::rfc3339_ms),
        alert["startsAt"]
            .as_str()
            .and_then(alertmanager::rfc3339_ms),
        "startsAt stays when the alert began"
    );
    for key in ["annotations", "endsAt", "generatorURL"] {
        assert!(!a[key].is_null(), "{key} missing: {firing}");
    }

    // Traffic recovers: the 5 s objective window forgets the bias.
    sim.stop();
    let _steady = stack.simulate(&[
        "--rate",
        "400",
        "--scenario",
        "steady",
        "--duration",
        "120s",
        "--seed",
        "8",
    ]);
    stack.wait_state("parity", "resolved", Duration::from_secs(40));
    let mut lease_end = alert["endsAt"]
        .as_str()
        .and_then(alertmanager::rfc3339_ms)
        .expect("endsAt");
    wait_until(
        Duration::from_secs(10),
        "Alertmanager to show the parity alert resolved",
        || match alertmanager::active_alert(&am_url, "parity") {
            Some(a) => {
                lease_end = a["endsAt"]
                    .as_str()
                    .and_then(alertmanager::rfc3339_ms)
                    .unwrap_or(i64::MAX);
                None
            }
            None => Some(()),
        },
    );
    assert!(
        now_ms() + 10_000 < lease_end,
        "resolved by the notification, well before the lease would have ended"
    );
    let (_, resolved) = wait_until(Duration::from_secs(10), "a resolved webhook", || {
        hook.first("resolved")
    });
    let a = &resolved["alerts"][0];
    assert_eq!(a["status"], "resolved");
    let ends = a["endsAt"]
        .as_str()
        .and_then(alertmanager::rfc3339_ms)
        .expect("endsAt");
    assert!(
        ends <= now_ms(),
        "a resolved alert ends at its resolve time: {resolved}"
    );

    let page = get_text(&format!("{}/metrics", stack.collector_url)).expect("metrics");
    assert!(
        counter(
            &page,
            "aims_notifications_total{outcome=\"delivered\",receiver=\"am\"}"
        ) >= 2.0,
        "{page}"
    );
    assert!(
        counter(
            &page,
            "aims_notifications_total{outcome=\"delivered\",receiver=\"hook\"}"
        ) >= 2.0
    );
}

/// A webhook that accepts connections and never answers; returns its URL.
fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("black hole listener");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().flatten().collect();
        drop(held);
    });
    url
}

#[test]
fn alertmanager_down_while_the_breach_starts_gets_the_alert_at_the_next_resend() {
    let Some(tools) = alertmanager::tools() else {
        return;
    };
    let am_dir = tempfile::tempdir().expect("temp dir");
    let am_port = free_port();
    let am_url = format!("http://127.0.0.1:{am_port}");
    let mut am = alertmanager::start(&tools, am_dir.path(), am_port);
    assert!(am.stop().is_some(), "Alertmanager stops");
    // A receiver that never answers sits beside it: it must stall neither evaluation nor
    // delivery to Alertmanager.
    let objectives = objectives("am, stuck");
    let extra = format!(
        "{}\n[[notify.receivers]]\nname = \"stuck\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        notify_config(am_port, None, "2s"),
        black_hole()
    );
    let stack = Stack::start(&StackConfig {
        objectives: &objectives,
        collector_extra: &extra,
        ..StackConfig::default()
    });
    let _sim = biased(&stack);
    stack.wait_state("parity", "firing", Duration::from_secs(60));
    let firing_seen = now_ms();
    let metrics_url = format!("{}/metrics", stack.collector_url);
    let cycles = |page: &str| counter(page, "aims_evaluation_duration_seconds_count");
    let before = cycles(&get_text(&metrics_url).expect("metrics"));
    wait_until(
        Duration::from_secs(15),
        "failed notifications while evaluation goes on",
        || {
            let page = get_text(&metrics_url)?;
            let am_failed = counter(
                &page,
                "aims_notifications_total{outcome=\"abandoned\",receiver=\"am\"}",
            );
            let stuck_failed = counter(
                &page,
                "aims_notifications_total{outcome=\"failed\",receiver=\"stuck\"}",
            );
            (am_failed >= 1.0 && stuck_failed >= 1.0 && cycles(&page) >= before + 3.0).then_some(())
        },
    );
    let evidence =
        get_json(&format!("{}/v1/evidence?limit=1000", stack.collector_url)).expect("evidence");
    let failed = evidence["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| r["kind"] == "notification" && r["record"]["data"]["outcome"] == "abandoned");
    assert!(failed.is_some(), "a failed attempt is evidence: {evidence}");

    let started = Instant::now();
    let _am = alertmanager::start(&tools, am_dir.path(), am_port);
    let alert = wait_until(
        Duration::from_secs(10),
        "the parity alert at the next resend",
        || alertmanager::active_alert(&am_url, "parity"),
    );
    eprintln!(
        "alert in Alertmanager {:?} after it started again",
        started.elapsed()
    );
    let starts = alert["startsAt"]
        .as_str()
        .and_then(alertmanager::rfc3339_ms)
        .expect("startsAt");
    assert!(
        starts <= firing_seen,
        "startsAt is when the alert began firing, before Alertmanager started: {alert}\n{}",
        tail(&stack.collector.log())
    );
}

#[test]
fn check_with_the_collector_config_names_unknown_receivers() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("objectives.yaml"),
        objectives("am, missing"),
    )
    .expect("objectives");
    std::fs::write(
        dir.path().join("collector.toml"),
        notify_config(9093, None, "1m").replace("resolved_hold = \"30s\"\n", ""),
    )
    .expect("config");
    let check = |args: &[&str]| {
        Command::new(aims_e2e::binary("aims-collector"))
            .arg("check")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("aims-collector check runs")
    };
    let syntax_only = check(&["objectives.yaml"]);
    assert!(syntax_only.status.success(), "{syntax_only:?}");
    let out = check(&["objectives.yaml", "--config", "collector.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("objectives.yaml:16: objectives[0] (parity).notify: receiver \"missing\" is not configured"),
        "{stderr}"
    );
    assert!(!stderr.contains("\"am\" is not"), "{stderr}");
}
