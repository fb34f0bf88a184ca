//! The multiclass golden case (`core/tests/fixtures/golden/multiclass.json`, written by the
//! pinned `scripts/golden/generate.py` from scikit-learn and Fairlearn) and the check of a
//! report against it at DESIGN.md's tolerances, for the tests that take its rows through the
//! agent end to end.

use std::path::PathBuf;

use serde_json::Value;

/// Counting metrics are exact up to float rounding.
const EXACT: f64 = 1e-9;
/// One-vs-rest AUC from binned score counts (DESIGN.md).
const AUC_TOLERANCE: f64 = 0.005;

/// The fixture document: `schema`, `reference`, `current`, `expected`.
pub fn multiclass_fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/golden/multiclass.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

/// The `[model]` section of an agent configuration for the fixture's schema.
pub fn model_section(schema: &Value) -> String {
    let features: Vec<String> = schema["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| format!("{{ name = {}, kind = {} }}", f["name"], f["kind"]))
        .collect();
    let attributes: Vec<String> = schema["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| {
            format!(
                "{{ name = {}, groups = {}, reference_group = {} }}",
                a["name"], a["groups"], a["reference_group"]
            )
        })
        .collect();
    format!(
        "[model]\nname = {}\nversion = {}\ntask = \"multiclass\"\nclasses = {}\npositive_class = {}\nfeatures = [{}]\nattributes = [{}]\n",
        schema["name"],
        schema["version"],
        schema["classes"],
        schema["positive_class"],
        features.join(", "),
        attributes.join(", ")
    )
}

/// Compares a report (as `assess --format json` prints it) with the fixture's expected values:
/// accuracy, macro / weighted / micro and per-class precision, recall and F1, supports, log
/// loss, one-vs-rest AUC (macro, weighted, per class) and each class's per-group selection rate
/// and parity. Panics listing every mismatch.
pub fn check_multiclass(doc: &Value, want: &Value) {
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut close = |what: String, got: &Value, want: &Value, abs: f64, rel: f64| {
        compared += 1;
        match (got.as_f64(), want.as_f64()) {
            (Some(g), Some(w)) if (g - w).abs() <= abs + rel * w.abs() => {}
            _ => failures.push(format!("{what}: got {got}, want {want}")),
        }
    };
    let perf = &want["performance"];
    let c = &doc["performance"]["classification"];
    let m = &c["multiclass"];
    close(
        "label_coverage".into(),
        &doc["performance"]["label_coverage"],
        &perf["label_coverage"],
        EXACT,
        0.0,
    );
    close(
        "accuracy".into(),
        &c["accuracy"],
        &perf["accuracy"],
        EXACT,
        0.0,
    );
    for avg in ["macro", "weighted", "micro"] {
        for x in ["precision", "recall", "f1"] {
            close(format!("{avg}.{x}"), &m[avg][x], &perf[avg][x], EXACT, 0.0);
        }
    }
    let classes = perf["per_class"].as_object().expect("per-class values");
    assert_eq!(classes.len(), 3, "three classes in the golden case");
    for (class, w) in classes {
        let got = &m["per_class"][class];
        for x in ["precision", "recall", "f1", "support"] {
            close(format!("{class}.{x}"), &got[x], &w[x], EXACT, 0.0);
        }
        close(
            format!("{class}.roc_auc"),
            &got["roc_auc"],
            &w["roc_auc"],
            AUC_TOLERANCE,
            0.0,
        );
    }
    for (name, key) in [
        ("roc_auc_ovr", "roc_auc_ovr"),
        ("roc_auc_ovr_weighted", "roc_auc_ovr_weighted"),
    ] {
        close(name.into(), &m[key], &perf[key], AUC_TOLERANCE, 0.0);
    }
    close(
        "log_loss".into(),
        &c["log_loss"],
        &perf["log_loss"],
        EXACT,
        EXACT,
    );
    for (attribute, per_class) in want["fairness_per_class"]
        .as_object()
        .expect("per-class fairness")
    {
        for (class, w) in per_class.as_object().expect("classes") {
            let got = &doc["fairness"][attribute]["per_class"][class];
            for (group, rate) in w["selection_rate"].as_object().expect("rates") {
                close(
                    format!("{attribute}.{class}.selection_rate.{group}"),
                    &got["selection_rate"][group],
                    rate,
                    EXACT,
                    0.0,
                );
            }
            for x in ["demographic_parity_difference", "demographic_parity_ratio"] {
                close(
                    format!("{attribute}.{class}.{x}"),
                    &got[x],
                    &w[x],
                    EXACT,
                    0.0,
                );
            }
        }
    }
    assert!(compared >= 40, "only {compared} comparisons made");
    assert!(
        failures.is_empty(),
        "{} of {compared} comparisons failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
