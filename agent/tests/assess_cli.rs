//! `aims-agent reference build` and `aims-agent assess`, run as a user runs them: the real
//! binary on the committed example data and on the golden fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aims-agent"))
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .output()
        .expect("aims-agent runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assess_json(extra: &[&str]) -> (Output, Value) {
    let mut args = vec![
        "assess",
        "--config",
        "config/agent.toml",
        "--current",
        "config/examples/current.csv",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = agent(&args);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, doc)
}

#[test]
fn assess_prints_every_section_and_fails_on_a_breached_objective() {
    let (out, doc) = assess_json(&[
        "--reference",
        "config/examples/reference.csv",
        "--objectives",
        "config/examples/objectives.yaml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the example data breaches parity: {}",
        stderr(&out)
    );
    for key in [
        "rows",
        "drift",
        "dataset_drift",
        "performance",
        "fairness",
        "data_quality",
        "latency",
        "objectives",
    ] {
        assert!(doc.get(key).is_some(), "missing top-level key {key}");
    }
    assert_eq!(doc["rows"]["current"], 20_000);
    assert_eq!(doc["drift"]["income"]["drifted"], true);
    assert_eq!(doc["drift"]["region"]["drifted"], false);
    let parity = doc["objectives"]
        .as_array()
        .expect("objectives")
        .iter()
        .find(|o| o["id"] == "credit-approval-parity")
        .expect("parity objective judged");
    assert_eq!(parity["verdict"], "breached");
    assert_eq!(
        parity["value"],
        doc["fairness"]["gender"]["demographic_parity_ratio"]
    );
    let dpr = parity["value"].as_f64().expect("a value");
    assert!(
        (0.55..0.75).contains(&dpr),
        "example bias makes F's rate about 0.65 of M's: {dpr}"
    );
}

#[test]
fn a_built_profile_gives_the_same_assessment_as_the_raw_reference() {
    let dir = tempfile::tempdir().expect("temp dir");
    let profile = dir.path().join("profile.json");
    let out = agent(&[
        "reference",
        "build",
        "--config",
        "config/agent.toml",
        "--data",
        "config/examples/reference.csv",
        "-o",
        profile.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, from_csv) = assess_json(&["--reference", "config/examples/reference.csv"]);
    let (out, from_profile) = assess_json(&["--reference", profile.to_str().expect("utf-8 path")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "no objectives, no breach: {}",
        stderr(&out)
    );
    assert_eq!(from_csv, from_profile);
    assert!(from_csv.get("objectives").is_none());
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write temp file");
}

#[test]
fn bad_rows_name_file_line_and_field_with_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good =
        std::fs::read_to_string(root().join("config/examples/current.csv")).expect("example");
    let mut lines: Vec<String> = good.lines().take(50).map(str::to_owned).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let income = header
        .iter()
        .position(|h| *h == "income")
        .expect("income column");
    let mut cells: Vec<String> = lines[7].split(',').map(str::to_owned).collect();
    cells[income] = "lots".to_owned();
    lines[7] = cells.join(",");
    let bad = dir.path().join("bad.csv");
    write(&bad, &(lines.join("\n") + "\n"));
    let out = agent(&[
        "assess",
        "--config",
        "config/agent.toml",
        "--reference",
        "config/examples/reference.csv",
        "--current",
        bad.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.csv: line 8: features.income"), "{err}");
    assert_eq!(
        err.matches("is not a number").count(),
        1,
        "cause said once: {err}"
    );

    let out = agent(&[
        "assess",
        "--config",
        "config/agent.toml",
        "--reference",
        "config/examples/reference.csv",
        "--current",
        "nope.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: nope.csv: "), "{err}");
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "cause said once: {err}"
    );

    let cfg = dir.path().join("agent.toml");
    let text = std::fs::read_to_string(root().join("config/agent.toml")).expect("config");
    write(
        &cfg,
        &text.replace("[columns]", "[columns]\nscroe = \"score\""),
    );
    let out = agent(&[
        "assess",
        "--config",
        cfg.to_str().expect("utf-8 path"),
        "--reference",
        "config/examples/reference.csv",
        "--current",
        "config/examples/current.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("scroe"),
        "unknown key named: {}",
        stderr(&out)
    );

    let objectives = dir.path().join("objectives.yaml");
    let text = std::fs::read_to_string(root().join("config/examples/objectives.yaml"))
        .expect("objectives");
    write(
        &objectives,
        &text.replacen("target: \">= 0.8\"", "target: \"at least 0.8\"", 1),
    );
    let out = agent(&[
        "assess",
        "--config",
        "config/agent.toml",
        "--reference",
        "config/examples/reference.csv",
        "--current",
        "config/examples/current.csv",
        "--objectives",
        objectives.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("objectives.yaml:line ") && err.contains(".target"),
        "{err}"
    );
}

#[test]
fn ndjson_datasets_give_the_golden_values() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("core/tests/fixtures/golden/small_samples.json"))
            .expect("fixture"),
    )
    .expect("JSON");
    let dir = tempfile::tempdir().expect("temp dir");
    for key in ["reference", "current"] {
        let lines: Vec<String> = fixture[key]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e.to_string())
            .collect();
        write(
            &dir.path().join(format!("{key}.ndjson")),
            &(lines.join("\n") + "\n"),
        );
    }
    let schema = &fixture["schema"];
    let features: Vec<String> = schema["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| format!("{{ name = {}, kind = {} }}", f["name"], f["kind"]))
        .collect();
    let config = format!(
        "[model]\nname = {}\ntask = \"binary\"\nfeatures = [{}]\nattributes = [{{ name = \"gender\", groups = [\"F\", \"M\"], reference_group = \"M\" }}]\n",
        schema["name"],
        features.join(", ")
    );
    let cfg = dir.path().join("agent.toml");
    write(&cfg, &config);
    let path = |name: &str| {
        dir.path()
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_owned()
    };
    let out = agent(&[
        "assess",
        "--config",
        &path("agent.toml"),
        "--reference",
        &path("reference.ndjson"),
        "--current",
        &path("current.ndjson"),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let want = &fixture["expected"];
    for feature in ["income", "region", "channel"] {
        let (got, expected) = (
            doc["drift"][feature]["psi"].as_f64(),
            want["drift"][feature]["psi"].as_f64(),
        );
        assert!(
            matches!((got, expected), (Some(g), Some(w)) if (g - w).abs() < 1e-9),
            "{feature}: psi {got:?} vs {expected:?}"
        );
    }
    let (got, expected) = (
        doc["fairness"]["gender"]["demographic_parity_ratio"].as_f64(),
        want["fairness"]["gender"]["demographic_parity_ratio"].as_f64(),
    );
    assert!(matches!((got, expected), (Some(g), Some(w)) if (g - w).abs() < 1e-12));
}

/// `breach: significant` and `min_group_samples` on the example data: gender's parity ratio is
/// significantly below 0.8 (its `other` group, 397 predictions, is left out and listed); the
/// age bands' ratio is below 0.8 on its point value, but its interval reaches above the
/// target, so the objective reads `at_risk` with the interval shown, not `breached`, not `met`.
#[test]
fn assess_shows_intervals_sample_sizes_and_too_small_groups() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objectives = dir.path().join("objectives.yaml");
    let common = "    model: credit-scoring\n    metric: demographic_parity_ratio\n    target: \">= 0.8\"\n    owner: governance@example.com\n    breach: significant\n";
    std::fs::write(
        &objectives,
        format!(
            "policy: AI Policy v3\nobjectives:\n  - id: gender-parity\n    title: g\n    attribute: gender\n    min_group_samples: 500\n{common}  - id: age-parity\n    title: a\n    attribute: age_band\n{common}"
        ),
    )
    .expect("write objectives");
    let (out, doc) = assess_json(&[
        "--reference",
        "config/examples/profile.json",
        "--objectives",
        objectives.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let judged = doc["objectives"].as_array().expect("objectives");
    let (gender, age) = (&judged[0], &judged[1]);

    assert_eq!(gender["verdict"], "breached");
    assert_eq!(gender["reading"], "interval_beyond");
    assert_eq!(gender["breach"], "significant");
    assert_eq!(gender["too_small"], serde_json::json!({"other": 397}));
    assert_eq!(gender["min_group_samples"], 500);
    let upper = gender["interval"]["upper"].as_f64().expect("upper bound");
    assert!(
        upper < 0.8,
        "the whole interval lies below the target: {upper}"
    );
    // Two groups compared once `other` is out: Bonferroni halves alpha.
    assert!((gender["interval"]["confidence"].as_f64().unwrap() - 0.975).abs() < 1e-12);

    assert_eq!(age["verdict"], "at_risk");
    assert_eq!(age["reading"], "interval_straddles");
    let (v, lo, hi) = (
        age["value"].as_f64().unwrap(),
        age["interval"]["lower"].as_f64().unwrap(),
        age["interval"]["upper"].as_f64().unwrap(),
    );
    assert!(lo < v && v < 0.8 && 0.8 < hi, "{lo} < {v} < 0.8 < {hi}");
    assert!((age["interval"]["confidence"].as_f64().unwrap() - 0.99).abs() < 1e-12);

    // The fairness section carries the same intervals, the groups compared and every group's
    // sample size and Wilson interval.
    let f = &doc["fairness"]["age_band"];
    assert_eq!(f["intervals"]["demographic_parity_ratio"]["lower"], lo);
    assert_eq!(f["intervals"]["demographic_parity_ratio"]["groups"], 5);
    assert_eq!(
        f["intervals"]["demographic_parity_ratio"]["between"],
        serde_json::json!(["65+", "18-29"])
    );
    let g = &doc["fairness"]["gender"]["groups"]["other"];
    assert_eq!(g["n"], 397);
    let (l, r, u) = (
        g["selection_rate_interval"]["lower"].as_f64().unwrap(),
        g["selection_rate"].as_f64().unwrap(),
        g["selection_rate_interval"]["upper"].as_f64().unwrap(),
    );
    assert!(
        l < r && r < u && u - l > 0.05,
        "small group, wide interval: [{l}, {u}]"
    );
}

#[path = "common/golden.rs"]
mod golden;

/// Runs `assess --format json` on the fixture's reference and current rows written by
/// `write_rows` with extension `ext`; returns the JSON output.
fn assess_multiclass(
    dir: &Path,
    fixture: &Value,
    ext: &str,
    write_rows: &dyn Fn(&Path, &[Value]),
) -> Value {
    write(
        &dir.join("agent.toml"),
        &golden::model_section(&fixture["schema"]),
    );
    for key in ["reference", "current"] {
        write_rows(
            &dir.join(format!("{key}.{ext}")),
            fixture[key].as_array().expect("events"),
        );
    }
    let path = |name: String| dir.join(name).to_str().expect("utf-8 path").to_owned();
    let out = agent(&[
        "assess",
        "--config",
        &path("agent.toml".into()),
        "--reference",
        &path(format!("reference.{ext}")),
        "--current",
        &path(format!("current.{ext}")),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// The fixture's events as CSV: one column per feature and attribute, the predicted class, the
/// positive-class score, one `score_{class}` column per class, the label.
fn write_csv(path: &Path, events: &[Value], classes: &[Value]) {
    let cell = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let first = &events[0];
    let features: Vec<&String> = first["features"]
        .as_object()
        .expect("features")
        .keys()
        .collect();
    let attributes: Vec<&String> = first["attributes"]
        .as_object()
        .expect("attributes")
        .keys()
        .collect();
    let mut w = csv::Writer::from_path(path).expect("CSV file");
    let mut header: Vec<String> = vec!["id".into(), "ts".into()];
    header.extend(features.iter().map(|f| f.to_string()));
    header.extend(attributes.iter().map(|a| a.to_string()));
    header.extend(["prediction".into(), "score".into()]);
    header.extend(classes.iter().map(|c| format!("score_{}", cell(c))));
    header.extend(["label".into(), "latency_ms".into()]);
    w.write_record(&header).expect("header");
    for e in events {
        let mut row = vec![cell(&e["id"]), cell(&e["ts"])];
        row.extend(features.iter().map(|f| cell(&e["features"][f.as_str()])));
        row.extend(
            attributes
                .iter()
                .map(|a| cell(&e["attributes"][a.as_str()])),
        );
        row.push(cell(&e["prediction"]["label"]));
        row.push(cell(&e["prediction"]["score"]));
        match e["prediction"]["scores"].as_array() {
            Some(scores) => row.extend(scores.iter().map(cell)),
            None => row.extend(classes.iter().map(|_| String::new())),
        }
        row.push(cell(&e["label"]));
        row.push(cell(&e["latency_ms"]));
        w.write_record(&row).expect("row");
    }
    w.flush().expect("flush");
}

/// A three-class model through `aims-agent assess`, from NDJSON (`prediction.scores`) and from
/// CSV (`score_{class}` columns): the same accuracy, averaged and per-class P/R/F1, log loss,
/// one-vs-rest AUC and per-class parity as scikit-learn and Fairlearn on the same rows. Without
/// the probabilities, log loss and AUC are undefined (not made up from the positive score).
#[test]
fn multiclass_assess_gives_the_golden_values_from_ndjson_and_csv() {
    let fixture = golden::multiclass_fixture();
    let want = &fixture["expected"];
    let dir = tempfile::tempdir().expect("temp dir");
    let ndjson = |path: &Path, events: &[Value]| {
        let lines: Vec<String> = events.iter().map(Value::to_string).collect();
        write(path, &(lines.join("\n") + "\n"));
    };
    let doc = assess_multiclass(dir.path(), &fixture, "ndjson", &ndjson);
    golden::check_multiclass(&doc, want);
    assert_eq!(doc["rows"]["current"], 2500);

    // Objectives on one class: its recall, and the parity of predicting it across genders.
    let objectives = dir.path().join("objectives.yaml");
    let objective = |id: &str, metric: &str, extra: &str| {
        format!("  - id: {id}\n    title: t\n    model: risk-tier\n    metric: {metric}\n{extra}    target: \">= 0\"\n    owner: o@example.com\n")
    };
    write(
        &objectives,
        &format!(
            "policy: p\nobjectives:\n{}{}",
            objective("medium-recall", "recall", "    class: medium\n"),
            objective(
                "medium-parity",
                "demographic_parity_ratio",
                "    attribute: gender\n    class: medium\n"
            )
        ),
    );
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();
    let out = agent(&[
        "assess",
        "--config",
        &path("agent.toml"),
        "--reference",
        &path("reference.ndjson"),
        "--current",
        &path("current.ndjson"),
        "--objectives",
        &path("objectives.yaml"),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let judged: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let by_id = |id: &str| {
        judged["objectives"]
            .as_array()
            .expect("objectives")
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} judged"))
    };
    let recall = by_id("medium-recall");
    assert_eq!(recall["class"], "medium");
    let (got, golden_recall) = (
        recall["value"].as_f64().expect("value"),
        want["performance"]["per_class"]["medium"]["recall"]
            .as_f64()
            .expect("golden"),
    );
    assert!(
        (got - golden_recall).abs() < 1e-9,
        "{got} vs {golden_recall}"
    );
    let parity = by_id("medium-parity")["value"].as_f64().expect("value");
    let golden_parity = want["fairness_per_class"]["gender"]["medium"]["demographic_parity_ratio"]
        .as_f64()
        .expect("golden");
    assert!(
        (parity - golden_parity).abs() < 1e-9,
        "{parity} vs {golden_parity}"
    );

    let classes = fixture["schema"]["classes"]
        .as_array()
        .expect("classes")
        .clone();
    let csv = |path: &Path, events: &[Value]| write_csv(path, events, &classes);
    let from_csv = assess_multiclass(dir.path(), &fixture, "csv", &csv);
    golden::check_multiclass(&from_csv, want);

    let unscored = |path: &Path, events: &[Value]| {
        let lines: Vec<String> = events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["prediction"]
                    .as_object_mut()
                    .expect("prediction")
                    .remove("scores");
                e.to_string()
            })
            .collect();
        write(path, &(lines.join("\n") + "\n"));
    };
    let without = assess_multiclass(dir.path(), &fixture, "jsonl", &unscored);
    let c = &without["performance"]["classification"];
    assert_eq!(
        c["accuracy"],
        doc["performance"]["classification"]["accuracy"]
    );
    assert!(c["log_loss"]["undefined"].is_string(), "{}", c["log_loss"]);
    assert!(
        c["multiclass"]["roc_auc_ovr"]["undefined"].is_string(),
        "{}",
        c["multiclass"]["roc_auc_ovr"]
    );
}

/// Bad per-class probabilities stop `assess` with the file, the line and the field, from CSV
/// and NDJSON alike; a header with some but not all probability columns names the missing one.
#[test]
fn bad_class_probabilities_name_line_and_field() {
    let fixture = golden::multiclass_fixture();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("agent.toml");
    write(&cfg, &golden::model_section(&fixture["schema"]));
    let reference = dir.path().join("reference.ndjson");
    let lines: Vec<String> = fixture["reference"]
        .as_array()
        .expect("events")
        .iter()
        .map(Value::to_string)
        .collect();
    write(&reference, &(lines.join("\n") + "\n"));
    let run = |current: &Path| {
        agent(&[
            "assess",
            "--config",
            cfg.to_str().expect("utf-8"),
            "--reference",
            reference.to_str().expect("utf-8"),
            "--current",
            current.to_str().expect("utf-8"),
        ])
    };
    let header = "id,income,age,debt_ratio,region,gender,age_band,prediction,score_low,score_medium,score_high,label";
    let row = |scores: &str| format!("r,50000,40,0.2,north,F,40-49,low,{scores},low");
    for (scores, line, field) in [
        ("0.5,0.5,0.5", 3, "prediction.scores:"),
        ("0.5,NaN,0.5", 3, "prediction.scores[1]"),
        ("0.5,,0.5", 3, "prediction.scores[1]"),
        ("1.2,-0.2,0", 3, "prediction.scores[0]"),
    ] {
        let bad = dir.path().join("bad.csv");
        write(
            &bad,
            &format!("{header}\n{}\n{}\n", row("0.7,0.2,0.1"), row(scores)),
        );
        let out = run(&bad);
        assert_eq!(out.status.code(), Some(2), "{scores}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("bad.csv: line {line}: {field}")),
            "{scores}: {err}"
        );
    }
    let partial = dir.path().join("partial.csv");
    write(
        &partial,
        "id,income,age,debt_ratio,region,gender,age_band,prediction,score_low,score_high\n",
    );
    let err = stderr(&run(&partial));
    assert!(err.contains("column \"score_medium\""), "{err}");

    let bad = dir.path().join("bad.ndjson");
    write(
        &bad,
        "{\"prediction\": {\"label\": \"low\", \"scores\": [0.9, 0.9, 0.9]}}\n{\"prediction\": {\"label\": \"low\", \"scores\": [0.5, 0.5]}}\n",
    );
    let err = stderr(&run(&bad));
    assert!(
        err.contains("bad.ndjson: line 1: prediction.scores"),
        "{err}"
    );
}

/// Intersections on the example data: an agent configuration that declares
/// `intersections = [["gender", "age_band"]]` builds its profile with them, and `assess`
/// reports the cells (`F*18-29`, ... `other*other`) as a fairness attribute of their own, which
/// an objective can name with its own minimum group size.
#[test]
fn assess_reports_intersections_and_judges_objectives_on_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(root().join("config/agent.toml")).expect("agent.toml");
    let config = text.replacen(
        "attributes = [",
        "intersections = [[\"gender\", \"age_band\"]]\nattributes = [",
        1,
    );
    assert_ne!(config, text);
    let config_path = dir.path().join("agent.toml");
    std::fs::write(&config_path, config).expect("write config");
    let objectives = dir.path().join("objectives.yaml");
    std::fs::write(
        &objectives,
        "policy: AI Policy v3\nobjectives:\n  - id: cells-parity\n    title: c\n    model: credit-scoring\n    metric: demographic_parity_ratio\n    attribute: \"gender*age_band\"\n    target: \">= 0.8\"\n    owner: governance@example.com\n    breach: significant\n    min_group_samples: 100\n",
    )
    .expect("write objectives");
    let out = agent(&[
        "assess",
        "--config",
        config_path.to_str().expect("utf-8 path"),
        "--current",
        "config/examples/current.csv",
        "--reference",
        "config/examples/reference.csv",
        "--objectives",
        objectives.to_str().expect("utf-8 path"),
        "--format",
        "json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(doc.is_object(), "{}", stderr(&out));
    let cells = &doc["fairness"]["gender*age_band"];
    let groups = cells["groups"].as_object().expect("cells");
    assert!(
        groups.contains_key("F*18-29") && groups.contains_key("M*65+"),
        "{cells}"
    );
    let n: u64 = groups.values().map(|g| g["n"].as_u64().unwrap()).sum();
    let by_gender: u64 = doc["fairness"]["gender"]["groups"]
        .as_object()
        .expect("gender groups")
        .values()
        .map(|g| g["n"].as_u64().unwrap())
        .sum();
    assert_eq!(n, by_gender, "every row in exactly one cell");
    let gender_f: u64 = groups
        .iter()
        .filter(|(k, _)| k.starts_with("F*"))
        .map(|(_, g)| g["n"].as_u64().unwrap())
        .sum();
    assert_eq!(
        gender_f,
        doc["fairness"]["gender"]["groups"]["F"]["n"]
            .as_u64()
            .unwrap()
    );
    let judged = &doc["objectives"][0];
    assert_eq!(judged["id"], "cells-parity", "{judged}");
    assert_eq!(judged["min_group_samples"], 100);
    let small = judged["too_small"].as_object().expect("too small cells");
    assert!(
        small.keys().all(|k| k.starts_with("other*")
            || k.ends_with("*other")
            || groups[k]["n"].as_u64().unwrap() < 100),
        "{small:?}"
    );
    assert!(judged["interval"]["upper"].as_f64().is_some(), "{judged}");
}
