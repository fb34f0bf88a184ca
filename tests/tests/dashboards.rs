//! The dashboards and Prometheus rules against the real binaries: every panel, variable and rule
//! expression parses as PromQL and names only metrics a running collector or agent exports, so a
//! renamed metric fails here instead of leaving an empty panel; both binaries' `/metrics` pass
//! `promtool check metrics`; the rules pass `promtool check rules` and their unit tests; and a
//! real Prometheus scrapes a running collector and agent and answers queries about them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aims_e2e::{
    free_port, get_json, get_text, repo_root, require_tool, tail, wait_until, Process, Stack,
    StackConfig,
};
use serde_json::{json, Value};

/// One objective per family the dashboards join thresholds for (fairness with a warning, drift).
const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    warning: ">= 0.85"
    window: 1m
    min_samples: 100
    for: 2s
    severity: critical
    owner: head-of-credit-risk@example.com
  - id: income-drift
    title: Income stays stable
    model: credit-scoring
    metric: psi
    feature: income
    target: "<= 0.1"
    window: 1m
    min_samples: 100
    owner: ml-platform@example.com
"#;

/// Series that exist only once traffic has been evaluated; the name check waits for them.
const EVALUATED: &[&str] = &[
    "aims_objective_value{",
    "aims_objective_warning{",
    "aims_objective_info{",
    "aims_model_true_positive_rate_ratio{",
    "aims_model_drift_statistic{",
    "aims_model_data_quality_ratio{",
    "aims_model_latency_seconds{",
    "aims_ingest_agent_last_received_timestamp_seconds{",
];

fn dashboards_dir() -> PathBuf {
    repo_root().join("dashboards")
}

/// Every dashboard JSON file with its parsed model.
fn dashboards() -> Vec<(String, Value)> {
    let dir = dashboards_dir().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "five dashboards expected in {dir:?}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("dashboard readable");
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, v)
        })
        .collect()
}

/// Panels, including those nested in collapsed rows.
fn panels(board: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in board["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Every PromQL expression of a dashboard: panel targets, and the series selector of each
/// `label_values(selector, label)` variable query.
fn expressions(board: &Value) -> Vec<String> {
    let mut out: Vec<String> = panels(board)
        .into_iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    for v in board["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .expect("variable query");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .and_then(|s| s.rsplit_once(','))
                .map(|(selector, _label)| selector.trim().to_owned())
                .unwrap_or_else(|| panic!("variable query {q:?} is label_values(selector, label)"));
            out.push(inner);
        }
    }
    out
}

/// The expression as Grafana sends it: variables replaced by the values it would interpolate.
fn concrete(expr: &str) -> String {
    let expr = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h");
    let mut out = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            while chars
                .peek()
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                chars.next();
            }
            out.push_str(".*");
        } else {
            out.push(c);
        }
    }
    out
}

/// The `aims_` metric names an expression uses: identifiers outside string literals.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut quote = None;
    for c in expr.chars().chain(std::iter::once(' ')) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None if c.is_alphanumeric() || c == '_' || c == ':' => {
                word.push(c);
                continue;
            }
            None => {}
        }
        if word.starts_with("aims_") {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// Names of the series in a text exposition (histograms as their `_bucket`, `_sum`, `_count`).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Runs promtool with `args`, `stdin` piped in.
fn promtool(tool: &Path, args: &[&str], dir: &Path, stdin: &str) -> Output {
    let mut child = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("promtool reads stdin");
    child.wait_with_output().expect("promtool finishes")
}

fn show(o: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A stack fed by biased, drifted traffic, once the collector exports every evaluated series.
fn evaluated_stack() -> (Stack, Process) {
    let stack = Stack::start(&StackConfig {
        objectives: OBJECTIVES,
        ..StackConfig::default()
    });
    let sim = stack.simulate(&[
        "--rate",
        "300",
        "--scenario",
        "bias,drift",
        "--duration",
        "60s",
        "--seed",
        "11",
    ]);
    let url = format!("{}/metrics", stack.collector_url);
    let within = Duration::from_secs(60);
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = get_text(&url).unwrap_or_default();
        if EVALUATED.iter().all(|s| text.contains(s)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the collector did not export {:?} within {within:?}\n--- collector ---\n{}",
            EVALUATED
                .iter()
                .filter(|s| !text.contains(*s))
                .collect::<Vec<_>>(),
            tail(&stack.collector.log())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (stack, sim)
}

#[test]
fn dashboards_are_provisionable_from_files() {
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut uids = BTreeSet::new();
    for (name, board) in dashboards() {
        assert!(board["id"].is_null(), "{name}: id must be null");
        assert!(board.get("__inputs").is_none(), "{name}: no __inputs");
        let uid = board["uid"].as_str().expect("uid");
        assert!(uids.insert(uid.to_owned()), "{name}: duplicate uid {uid}");
        let vars = board["templating"]["list"].as_array().expect("variables");
        let var = |n: &str| vars.iter().find(|v| v["name"] == n);
        let ds = var("datasource").unwrap_or_else(|| panic!("{name}: datasource variable"));
        assert_eq!(ds["type"], "datasource", "{name}");
        assert_eq!(ds["query"], "prometheus", "{name}");
        assert!(var("model").is_some(), "{name}: model variable");
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                v["datasource"], datasource,
                "{name}: variable {}",
                v["name"]
            );
        }
        let mut ids = BTreeSet::new();
        for p in panels(&board) {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(ids.insert(p["id"].as_i64()), "{name}: duplicate panel id");
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"], datasource, "{name}: panel {title}");
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: panel {title} has no query");
            for t in targets {
                assert_eq!(t["datasource"], datasource, "{name}: panel {title}");
            }
        }
    }
    let provider =
        std::fs::read_to_string(dashboards_dir().join("grafana/provisioning/dashboards/aims.yaml"))
            .expect("dashboard provider");
    assert!(provider.contains("type: file"), "a file provider");
    let source = std::fs::read_to_string(
        dashboards_dir().join("grafana/provisioning/datasources/prometheus.yaml"),
    )
    .expect("datasource provisioning");
    assert!(source.contains("type: prometheus") && source.contains("uid: aims-prometheus"));
}

#[test]
fn rules_and_scrape_config_pass_promtool() {
    let Some(tool) = require_tool("promtool", "prometheus") else {
        return;
    };
    let dir = dashboards_dir().join("prometheus");
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["test", "rules", "rules_test.yml"],
        &["check", "config", "prometheus.yml"],
    ] {
        let o = promtool(&tool, args, &dir, "");
        assert!(o.status.success(), "promtool {args:?}: {}", show(&o));
    }
}

#[test]
fn every_expression_parses_and_uses_exported_metrics() {
    let Some(tool) = require_tool("promtool", "prometheus") else {
        return;
    };
    let (stack, mut sim) = evaluated_stack();
    let collector = get_text(&format!("{}/metrics", stack.collector_url)).expect("collector");
    let agent = get_text(&format!("{}/metrics", stack.agent_url)).expect("agent /metrics");
    sim.stop();

    for (who, text) in [("collector", &collector), ("agent", &agent)] {
        let o = promtool(&tool, &["check", "metrics"], stack.dir.path(), text);
        assert!(
            o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
            "promtool check metrics on the {who}: {}",
            show(&o)
        );
    }

    let mut known = exported(&collector);
    known.extend(exported(&agent));
    let mut rules = Vec::new();
    let mut missing = BTreeSet::new();
    for (name, board) in dashboards() {
        for (i, expr) in expressions(&board).iter().enumerate() {
            for m in metric_names(expr) {
                if !known.contains(&m) {
                    missing.insert(format!("{name}: {m}"));
                }
            }
            let record = format!("aims_check:{}_{i}", name.trim_end_matches(".json"));
            rules.push(json!({"record": record, "expr": concrete(expr)}));
        }
    }
    let rules_text =
        std::fs::read_to_string(dashboards_dir().join("prometheus/rules.yml")).expect("rules");
    // Line by line outside comments, so multi-line expressions count too; annotations are
    // quoted strings and skipped.
    for line in rules_text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        for m in metric_names(line) {
            if !known.contains(&m) {
                missing.insert(format!("rules.yml: {m}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics used but not exported by the running binaries: {missing:#?}"
    );

    // JSON is YAML: every dashboard expression as a recording rule, for promtool's parser.
    let file = stack.dir.path().join("dashboard-expressions.yml");
    let groups = json!({"groups": [{"name": "dashboards", "rules": rules}]});
    std::fs::write(&file, groups.to_string()).expect("generated rules");
    let o = promtool(
        &tool,
        &["check", "rules", file.to_str().expect("UTF-8 path")],
        stack.dir.path(),
        "",
    );
    assert!(o.status.success(), "dashboard expressions: {}", show(&o));
}

/// The first sample of an instant query's result, when there is one.
fn query(prometheus: &str, promql: &str) -> Option<f64> {
    let url = reqwest::Url::parse_with_params(
        &format!("{prometheus}/api/v1/query"),
        &[("query", promql)],
    )
    .expect("query URL");
    let v = get_json(url.as_str())?;
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
}

#[test]
fn prometheus_scrapes_the_collector_and_the_agent() {
    let Some(server) = require_tool("prometheus", "prometheus") else {
        return;
    };
    let (stack, _sim) = evaluated_stack();
    let port = free_port();
    let dir = stack.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let target = |url: &str| url.trim_start_matches("http://").to_owned();
    let rules = dashboards_dir().join("prometheus/rules.yml");
    let config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules],
        "scrape_configs": [
            {"job_name": "aims-collector", "static_configs": [{"targets": [target(&stack.collector_url)]}]},
            {"job_name": "aims-agent", "static_configs": [{"targets": [target(&stack.agent_url)]}]},
        ],
    });
    std::fs::write(dir.join("prometheus.yml"), config.to_string()).expect("config");
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let prometheus = Process::spawn(
        "prometheus",
        &server,
        &[
            "--config.file=prometheus.yml",
            "--storage.tsdb.path=data",
            &listen,
        ],
        &dir,
        &[],
    );
    let base = format!("http://127.0.0.1:{port}");
    let within = Duration::from_secs(30);
    let value = std::panic::catch_unwind(|| {
        wait_until(within, "Prometheus to return the parity value", || {
            query(&base, r#"aims_objective_value{objective="parity"}"#)
        })
    });
    let value = value.unwrap_or_else(|_| panic!("--- prometheus ---\n{}", tail(&prometheus.log())));
    assert!((0.0..=1.0).contains(&value), "a parity ratio: {value}");
    let events = wait_until(within, "Prometheus to see agent events", || {
        query(
            &base,
            r#"aims_agent_events_received_total{job="aims-agent"}"#,
        )
        .filter(|v| *v > 0.0)
    });
    assert!(events > 0.0);
    let target = wait_until(within, "the objective's target joined to its info", || {
        query(
            &base,
            r#"aims_objective_target * on (objective, model) group_left (metric) aims_objective_info{metric="demographic_parity_ratio"}"#,
        )
    });
    assert_eq!(target, 0.8);
    // Joins can fail only at evaluation time (many-to-many matching): every dashboard
    // expression runs without error against the live series.
    for (name, board) in dashboards() {
        for expr in expressions(&board) {
            let promql = concrete(&expr);
            let url = reqwest::Url::parse_with_params(
                &format!("{base}/api/v1/query"),
                &[("query", promql.as_str())],
            )
            .expect("query URL");
            let resp = aims_e2e::http()
                .get(url)
                .send()
                .expect("Prometheus answers");
            let status = resp.status();
            let body = resp.text().unwrap_or_default();
            assert!(status.is_success(), "{name}: {promql}: {status} {body}");
        }
    }
    let rules = get_json(&format!("{base}/api/v1/rules")).expect("rules API");
    let loaded = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(loaded >= 10, "rules.yml is loaded: {rules}");
}

#[test]
fn metric_names_are_read_outside_strings_with_their_suffixes() {
    let names = metric_names(
        r#"histogram_quantile(0.9, sum by (le) (rate(aims_agent_ship_duration_seconds_bucket{job="aims_x"}[1m]))) / aims_model_events{model=~"$model"}"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "aims_agent_ship_duration_seconds_bucket",
            "aims_model_events"
        ]
    );
    assert_eq!(
        concrete(r#"rate(x{model=~"$model"}[$__rate_interval])"#),
        r#"rate(x{model=~".*"}[1m])"#
    );
}

/// The performance dashboard draws CBPE's estimates beside the realised metrics, and says how
/// they are made and what they assume (issue 17).
#[test]
fn the_performance_dashboard_shows_realised_beside_estimated() {
    let (_, board) = dashboards()
        .into_iter()
        .find(|(name, _)| name == "performance.json")
        .expect("performance dashboard");
    let panel = panels(&board)
        .into_iter()
        .find(|p| {
            let exprs: Vec<&str> = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .collect();
            exprs.iter().any(|e| e.contains("estimated_accuracy"))
                && exprs
                    .iter()
                    .any(|e| e.contains("metric=~\"accuracy|") && !e.contains("estimated_"))
        })
        .expect("a panel with realised and estimated accuracy");
    let description = panel["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("confidence-based performance estimation")
            && description.contains("assumes no concept drift"),
        "{description}"
    );
}
