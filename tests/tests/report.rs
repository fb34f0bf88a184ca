//! The Clause 9 report and the evidence pack, end to end: the real simulator and agent feed a
//! collector through a breach that fires and resolves, a data gap and an objective changed by
//! reload; then the report's figures are checked against the evidence records themselves, the
//! HTML is rendered by headless Chromium, and an exported pack verifies offline until one
//! record in it is altered.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aims_e2e::{
    binary, get_json, get_text, http, repo_root, require_tool, wait_until, Stack, StackConfig,
};
use aims_testkit::fixtures::now_ms;
use serde_json::Value;

fn objectives(target: &str, warning: &str) -> String {
    format!(
        r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: "{target}"
    warning: "{warning}"
    window: 4s
    min_samples: 200
    for: 2s
    severity: critical
    owner: head-of-credit-risk@example.com
    rationale: Four-fifths rule
    plan:
      actions: Re-weight training data; review thresholds per segment
      resources: ML platform team
      due: "2027-03-31"
      evaluation: Met if no critical breach in 95 % of evaluations per quarter
    controls: [A.6.2.6, A.5.4]
  - id: needs-a-million
    title: An objective that never has enough data here
    model: credit-scoring
    metric: accuracy
    target: ">= 0.5"
    window: 4s
    min_samples: 1000000
    owner: ml-platform@example.com
    controls: [A.6.2.6]
"#
    )
}

/// Runs `cmd` to completion within `within`, output captured.
fn run(cmd: &mut Command, within: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        out.read_to_end(&mut o).ok();
        o
    });
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        err.read_to_end(&mut e).ok();
        e
    });
    let deadline = Instant::now() + within;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn collector(stack: &Stack, args: &[&str]) -> Output {
    run(
        Command::new(binary("aims-collector"))
            .args(args)
            .current_dir(stack.dir.path()),
        Duration::from_secs(60),
    )
}

/// Every evidence record, through the paged read API.
fn all_evidence(stack: &Stack) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let page = get_json(&format!(
            "{}/v1/evidence?after={after}&limit=1000",
            stack.collector_url
        ))
        .expect("GET /v1/evidence");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        out.extend(items);
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

/// `(start_ms, end_ms)` pairs as the report lists them.
fn spans(items: &Value) -> Vec<(i64, Option<i64>)> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            (
                i["start_ms"].as_i64().expect("start_ms"),
                i["end_ms"].as_i64(),
            )
        })
        .collect()
}

fn overlaps(span: &(i64, Option<i64>), from: i64, to: i64) -> bool {
    span.0 <= to && span.1.is_none_or(|e| e >= from)
}

#[test]
fn the_report_matches_the_evidence_and_a_pack_verifies_until_altered() {
    let mut stack = Stack::start(&StackConfig {
        objectives: &objectives(">= 0.8", ">= 0.85"),
        stale_after: "4s",
        ..StackConfig::default()
    });
    // Let the collector record its start and a first evaluation, so the period has an anchor.
    wait_until(Duration::from_secs(30), "a first evaluation", || {
        stack.state("parity").filter(|s| s != "ok")
    });
    let from_ms = now_ms();

    // A breach that fires and resolves.
    let sim_args = |scenario: &'static str| {
        vec![
            "--rate",
            "400",
            "--scenario",
            scenario,
            "--duration",
            "300s",
            "--seed",
            "7",
        ]
    };
    let mut sim = stack.simulate(&sim_args("bias"));
    stack.wait_state("parity", "firing", Duration::from_secs(90));
    sim.stop();
    let mut sim = stack.simulate(&sim_args("steady"));
    stack.wait_state("parity", "resolved", Duration::from_secs(60));

    // A data gap: silence beyond stale_after, then traffic again.
    sim.stop();
    assert!(stack.stop_agent().is_some_and(|s| s.success()));
    stack.wait_state("parity", "no_data", Duration::from_secs(30));
    stack.restart_agent();
    let mut sim = stack.simulate(&sim_args("steady"));
    wait_until(Duration::from_secs(60), "parity back from no_data", || {
        stack
            .state("parity")
            .filter(|s| s == "ok" || s == "resolved")
    });

    // An objective changed mid-period, by rewriting the file and reloading.
    std::fs::write(
        stack.dir.path().join("objectives.yaml"),
        objectives(">= 0.7", ">= 0.75"),
    )
    .expect("rewrite objectives");
    let reloaded = http()
        .post(format!("{}/-/reload", stack.collector_url))
        .send()
        .expect("POST /-/reload");
    assert!(
        reloaded.status().is_success(),
        "reload: {:?}",
        reloaded.text()
    );
    let reload_ms = now_ms();
    wait_until(
        Duration::from_secs(30),
        "three evaluations under the new version",
        || {
            let page = get_json(&format!(
                "{}/v1/objectives/parity/evaluations?from={reload_ms}&limit=10",
                stack.collector_url
            ))?;
            (page["items"].as_array()?.len() >= 3).then_some(())
        },
    );
    sim.stop();
    let to_ms = now_ms();
    // Wait for a record after the period, so every record of the period is committed.
    wait_until(Duration::from_secs(30), "a record after the period", || {
        let head = get_json(&format!("{}/v1/evidence?limit=1", stack.collector_url))?;
        let seq = head["head"]["seq"].as_u64()?;
        let last = get_json(&format!(
            "{}/v1/evidence?after={}&limit=1",
            stack.collector_url,
            seq - 1
        ))?;
        (last["items"][0]["record"]["at_ms"].as_i64()? > to_ms).then_some(())
    });

    // The evidence, and the period as the report defines it: the contiguous run of records
    // from the first at or after `from` to the last at or before `to`.
    let records = all_evidence(&stack);
    let at = |r: &Value| r["record"]["at_ms"].as_i64().expect("at_ms");
    let first = records
        .iter()
        .position(|r| at(r) >= from_ms)
        .expect("records in the period");
    let last = records
        .iter()
        .rposition(|r| at(r) <= to_ms)
        .expect("records in the period");
    let period = &records[first..=last];
    let anchor = &records[first - 1];

    let (from_s, to_s) = (from_ms.to_string(), to_ms.to_string());
    let out = collector(
        &stack,
        &[
            "report",
            "--from",
            &from_s,
            "--to",
            &to_s,
            "--format",
            "json",
            "--config",
            "collector.toml",
        ],
    );
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the JSON report parses");

    // Document control: the checkpoints are the records around the period.
    let doc = &report["document"];
    assert_eq!(doc["chain_start"]["seq"], anchor["seq"]);
    assert_eq!(doc["chain_start"]["hash"], anchor["hash"]);
    assert_eq!(doc["chain_end"]["seq"], period.last().unwrap()["seq"]);
    assert_eq!(doc["chain_end"]["hash"], period.last().unwrap()["hash"]);
    assert_eq!(doc["records"].as_u64(), Some(period.len() as u64));
    assert_eq!(doc["from_ms"].as_i64(), Some(from_ms));
    assert_eq!(doc["content_hash"].as_str().map(str::len), Some(64));

    // Per objective: evaluations per verdict, breaches and alerts, from the records.
    let objective = |id: &str| -> Value {
        report["objectives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .unwrap_or_else(|| panic!("objective {id} in the report"))
            .clone()
    };
    let mut completed = 0;
    let mut no_data = 0;
    for id in ["parity", "needs-a-million"] {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for r in period
            .iter()
            .filter(|r| r["kind"] == "evaluation" && r["objective"] == id)
        {
            *counts
                .entry(r["record"]["data"]["verdict"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let total: u64 = counts.values().sum();
        completed += total;
        no_data += counts.get("no_data").copied().unwrap_or(0);
        let o = objective(id);
        assert_eq!(o["evaluations"]["total"].as_u64(), Some(total), "{id}");
        for verdict in ["met", "at_risk", "breached", "insufficient_data", "no_data"] {
            assert_eq!(
                o["evaluations"][verdict].as_u64(),
                Some(counts.get(verdict).copied().unwrap_or(0)),
                "{id}: {verdict} evaluations"
            );
        }
    }
    assert_eq!(
        report["completeness"]["completed"].as_u64(),
        Some(completed)
    );
    assert_eq!(report["completeness"]["no_data"].as_u64(), Some(no_data));
    assert!(report["completeness"]["scheduled"].as_u64().unwrap() > 0);

    let parity = objective("parity");
    let mut breaches: Vec<(i64, Option<i64>)> = Vec::new();
    let mut alerts: Vec<(i64, Option<i64>)> = Vec::new();
    for r in records[..=last]
        .iter()
        .filter(|r| r["objective"] == "parity")
    {
        let d = &r["record"]["data"];
        if r["kind"] == "evaluation" {
            let breached = d["verdict"] == "breached";
            let open = breaches.last().is_some_and(|b| b.1.is_none());
            if breached && !open {
                breaches.push((at(r), None));
            } else if !breached && open {
                breaches.last_mut().unwrap().1 = Some(at(r));
            }
        } else if r["kind"] == "transition" {
            if d["to"] == "firing" {
                alerts.push((d["at_ms"].as_i64().unwrap(), None));
            } else if d["from"] == "firing" {
                alerts.last_mut().unwrap().1 = d["at_ms"].as_i64();
            }
        }
    }
    breaches.retain(|b| overlaps(b, from_ms, to_ms));
    alerts.retain(|a| overlaps(a, from_ms, to_ms));
    assert!(
        breaches.iter().any(|b| b.1.is_some()),
        "a breach that ended: {breaches:?}"
    );
    assert!(
        alerts.iter().any(|a| a.1.is_some()),
        "an alert that resolved: {alerts:?}"
    );
    assert_eq!(spans(&parity["breaches"]), breaches);
    assert_eq!(spans(&parity["alerts"]), alerts);
    for b in parity["breaches"].as_array().unwrap() {
        if let (Some(s), Some(e)) = (b["start_ms"].as_i64(), b["end_ms"].as_i64()) {
            let clipped = (e.min(to_ms) - s.max(from_ms)) as f64 / 1000.0;
            assert!((b["duration_seconds"].as_f64().unwrap() - clipped).abs() < 1e-9);
        }
    }
    assert_eq!(parity["judgement"], "not_met", "an alert fired");
    assert!(parity["compliance_share"]
        .as_f64()
        .is_some_and(|c| c > 0.0 && c < 1.0));
    assert_eq!(parity["plan"]["due"], "2027-03-31");
    assert_eq!(
        parity["target"], ">= 0.7",
        "the version in force at the end"
    );
    let values: Vec<f64> = period
        .iter()
        .filter(|r| r["kind"] == "evaluation" && r["objective"] == "parity")
        .filter_map(|r| r["record"]["data"]["value"].as_f64())
        .collect();
    assert_eq!(
        parity["values"]["count"].as_u64(),
        Some(values.len() as u64)
    );
    assert_eq!(parity["values"]["last"].as_f64(), values.last().copied());
    assert_eq!(
        parity["values"]["min"].as_f64(),
        values.iter().copied().reduce(f64::min)
    );
    assert_eq!(objective("needs-a-million")["judgement"], "not_measurable");

    // Gaps: the ingestion_gap records.
    let mut gaps: Vec<(i64, Option<i64>)> = Vec::new();
    for r in records[..=last]
        .iter()
        .filter(|r| r["kind"] == "ingestion_gap")
    {
        if r["record"]["data"]["gap"] == "started" {
            gaps.push((at(r), None));
        } else if let Some(g) = gaps.iter_mut().rev().find(|g| g.1.is_none()) {
            g.1 = Some(at(r));
        }
    }
    gaps.retain(|g| overlaps(g, from_ms, to_ms));
    assert!(
        gaps.iter().any(|g| g.0 >= from_ms && g.1.is_some()),
        "the gap made in the period, ended: {gaps:?}"
    );
    assert_eq!(spans(&report["coverage"]["gaps"]), gaps);
    for (g, (s, e)) in report["coverage"]["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&gaps)
    {
        if let Some(e) = e {
            let expected = (e.min(&to_ms) - s.max(&from_ms)) as f64 / 1000.0;
            assert!((g["duration_seconds"].as_f64().unwrap() - expected).abs() < 1e-9);
        }
    }

    // Objective versions recorded in the period.
    let versions: Vec<(String, String, u64)> = period
        .iter()
        .filter(|r| r["kind"] == "objective_version")
        .map(|r| {
            (
                r["objective"].as_str().unwrap().to_owned(),
                r["record"]["data"]["version"].as_str().unwrap().to_owned(),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let listed: Vec<(String, String, u64)> = report["version_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["objective"].as_str().unwrap().to_owned(),
                v["version"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, versions);
    assert!(
        report["version_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["objective"] == "parity" && v["previous_version"].is_string()),
        "the changed parity objective is listed with its previous version"
    );
    assert_eq!(parity["versions"].as_array().map(Vec::len), Some(2));

    // Summary, coverage, analysis, controls.
    assert_eq!(report["summary"]["not_met"].as_u64(), Some(1));
    assert_eq!(report["summary"]["not_measurable"].as_u64(), Some(1));
    assert!(report["coverage"]["models"]["credit-scoring"].is_array());
    assert!(!report["coverage"]["agents"].as_array().unwrap().is_empty());
    let analysis = &report["analysis"][0];
    assert_eq!(analysis["model"], "credit-scoring");
    assert!(analysis["events"].as_u64().unwrap() > 0);
    assert!(analysis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["attribute"] == "gender"));
    let a626 = report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["control"] == "A.6.2.6")
        .expect("A.6.2.6 evidenced");
    assert_eq!(a626["objectives"].as_array().map(Vec::len), Some(2));
    assert_eq!(a626["evaluations"].as_u64(), Some(completed));

    // The same report over HTTP, and as Markdown.
    let over_http = get_json(&format!(
        "{}/v1/reports?from={from_ms}&to={to_ms}&format=json",
        stack.collector_url
    ))
    .expect("GET /v1/reports");
    assert_eq!(over_http["document"]["chain_end"], doc["chain_end"]);
    assert_eq!(over_http["objectives"], report["objectives"]);
    let md = get_text(&format!(
        "{}/v1/reports?from={from_ms}&to={to_ms}&format=md",
        stack.collector_url
    ))
    .expect("the Markdown report");
    assert!(md.contains("## 9. How to verify") && md.contains("| parity |"));
    let other = get_json(&format!(
        "{}/v1/reports?from={from_ms}&to={to_ms}&format=json&model=another-model",
        stack.collector_url
    ))
    .expect("a report scoped to another model");
    assert_eq!(other["objectives"], Value::Array(Vec::new()));
    assert_eq!(other["document"]["chain_end"], doc["chain_end"]);
    let refused = http()
        .get(format!(
            "{}/v1/reports?from={to_ms}&to={from_ms}",
            stack.collector_url
        ))
        .send()
        .expect("GET /v1/reports");
    assert_eq!(
        refused.status().as_u16(),
        400,
        "a reversed period is refused"
    );

    // The verification command the report prints works against the live database.
    let command = report["verification"]["database"]
        .as_str()
        .expect("a command");
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    assert_eq!(command.split_whitespace().next(), Some("aims-collector"));
    let out = collector(&stack, &args);
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An evidence pack verifies offline; with one record altered it fails, naming it.
    let pack = stack.dir.path().join("pack.tar");
    let pack_s = pack.display().to_string();
    let out = collector(
        &stack,
        &[
            "evidence",
            "export",
            "--from",
            &from_s,
            "--to",
            &to_s,
            "-o",
            &pack_s,
            "--config",
            "collector.toml",
        ],
    );
    assert!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = collector(&stack, &["evidence", "verify", "--pack", &pack_s]);
    assert!(
        out.status.success(),
        "an intact pack verifies: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let altered = stack.dir.path().join("altered.tar");
    let seq = alter_one_breach(&pack, &altered);
    let out = collector(
        &stack,
        &[
            "evidence",
            "verify",
            "--pack",
            &altered.display().to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an altered pack fails: {stderr}"
    );
    assert!(
        stderr.contains(&format!("record {seq}:")),
        "the altered record {seq} is named: {stderr}"
    );

    // The HTML report: self-contained, rendered by headless Chromium with its charts.
    let html_path = stack.dir.path().join("report.html");
    let html_s = html_path.display().to_string();
    let out = collector(
        &stack,
        &[
            "report",
            "--from",
            &from_s,
            "--to",
            &to_s,
            "--format",
            "html",
            "-o",
            &html_s,
            "--config",
            "collector.toml",
        ],
    );
    assert!(
        out.status.success(),
        "html report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&html_path).expect("report.html");
    assert!(
        !html.contains(" src=") && !html.contains(" href="),
        "nothing is fetched"
    );
    assert!(html.contains("@media print"));
    render_in_chromium(&html_path);
}

/// Copies the pack with one breached evaluation's verdict rewritten to `met`; returns its seq.
fn alter_one_breach(pack: &Path, out: &Path) -> u64 {
    let mut archive = tar::Archive::new(std::fs::File::open(pack).expect("pack"));
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let name = entry.path().unwrap().display().to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        members.push((name, body));
    }
    let mut seq = 0;
    for (name, body) in members.iter_mut().filter(|(n, _)| n == "evidence.ndjson") {
        let text = String::from_utf8(body.clone()).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|line| {
                let mut v: Value = serde_json::from_str(line).unwrap();
                let canonical = v["canonical"].as_str().unwrap().to_owned();
                if seq == 0 && canonical.contains("\"verdict\":\"breached\"") {
                    seq = v["seq"].as_u64().unwrap();
                    v["canonical"] = Value::String(
                        canonical.replace("\"verdict\":\"breached\"", "\"verdict\":\"met\""),
                    );
                }
                v.to_string()
            })
            .collect();
        *body = (lines.join("\n") + "\n").into_bytes();
        assert!(name.ends_with("ndjson"));
    }
    assert!(seq > 0, "the pack holds a breached evaluation");
    let mut builder = tar::Builder::new(std::fs::File::create(out).expect("altered pack"));
    for (name, body) in &members {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, body.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap();
    seq
}

/// Renders the report with headless Chromium: the DOM holds the charts, and a screenshot is
/// kept in `tests/artifacts/report.png`.
fn render_in_chromium(html: &Path) {
    let Some(chromium) = require_tool("chromium", "chromium") else {
        return;
    };
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let flags = |extra: &[String]| {
        let mut args: Vec<String> = aims_e2e::CHROMIUM_FLAGS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra);
        args.push(format!("file://{}", html.display()));
        args
    };
    let out = run(
        Command::new(&chromium).args(flags(&["--dump-dom".to_owned()])),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium --dump-dom failed: {stderr}");
    assert!(!stderr.contains("Uncaught"), "no script errors: {stderr}");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        dom.matches("<svg class=\"chart\"").count(),
        2,
        "one chart per objective"
    );
    assert!(dom.contains("class=\"breach\""), "breaches are shaded");
    assert!(
        dom.contains("<polyline class=\"value\""),
        "values are drawn"
    );
    assert!(
        dom.contains("<polyline class=\"target\""),
        "the target is drawn"
    );
    assert!(dom.contains("id=\"content-hash\""));

    let artifacts = repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("tests/artifacts");
    let png = artifacts.join("report.png");
    std::fs::remove_file(&png).ok();
    let out = run(
        Command::new(&chromium).args(flags(&[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,4000".to_owned(),
            "--hide-scrollbars".to_owned(),
        ])),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "a real screenshot"
    );
}
