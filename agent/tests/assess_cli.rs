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
