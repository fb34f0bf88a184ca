//! Golden tests against NannyML 0.13.1 (`scripts/golden/nannyml_cases.py`,
//! `fixtures/golden/nannyml/cases.json`): CBPE and PCA reconstruction error, fitted here from the same
//! reference rows and compared chunk by chunk (NannyML's default chunker: 10 chunks in row
//! order).
//!
//! - CBPE: estimated accuracy, precision, recall and F1 within 0.005 of NannyML's, ROC AUC
//!   within 0.01, sampling errors within 1 %. NannyML's estimated AUC sorts rows by the raw
//!   score (`np.argsort`, not stable) and walks the cumulative calibrated probabilities, so
//!   the order among tied scores is arbitrary; it does not change the value, because tied
//!   scores share one calibrated probability and the curve is a straight line through them.
//!   Ours walks 100 equal-width score bins, each a straight segment.
//! - Per group (estimated TPR and FPR parity without labels): NannyML fitted on the whole
//!   reference and run on one group's analysis rows as a single chunk, against the summary's
//!   per-group sums; accuracy, precision, recall (TPR), F1 and FPR (1 − NannyML's estimated
//!   specificity) within 0.005, sampling errors within 1 %.
//! - Reconstruction error: per chunk within 1 % of NannyML's, thresholds within 1 %, the same
//!   number of components and the same alerts.

use std::path::PathBuf;

use aims_core::cbpe::{needs_calibration, CbpeProfile, CbpeSums};
use aims_core::event::FeatureValue;
use aims_core::pca::{ErrorMoments, ReconstructionModel};
use aims_core::profile::{score_bin, SCORE_BINS};
use serde_json::Value;
use std::collections::BTreeMap;

fn fixture() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/nannyml/cases.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

fn floats(table: &Value, column: &str) -> Vec<f64> {
    table[column]
        .as_array()
        .unwrap_or_else(|| panic!("column {column}"))
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

fn flags(table: &Value, column: &str) -> Vec<bool> {
    floats(table, column)
        .into_iter()
        .map(|v| v == 1.0)
        .collect()
}

/// Rows of features, numeric columns first, then categorical (NannyML's column list order).
fn rows(fx: &Value, table: &Value) -> Vec<Vec<FeatureValue>> {
    let mut columns: Vec<Vec<FeatureValue>> = Vec::new();
    for c in fx["numeric"].as_array().unwrap() {
        let values = table[c.as_str().unwrap()].as_array().unwrap();
        columns.push(
            values
                .iter()
                .map(|v| {
                    v.as_f64()
                        .map_or(FeatureValue::Missing, FeatureValue::Numeric)
                })
                .collect(),
        );
    }
    for c in fx["categorical"].as_array().unwrap() {
        let values = table[c.as_str().unwrap()].as_array().unwrap();
        columns.push(
            values
                .iter()
                .map(|v| {
                    v.as_str().map_or(FeatureValue::Missing, |s| {
                        FeatureValue::Categorical(s.to_owned())
                    })
                })
                .collect(),
        );
    }
    (0..columns[0].len())
        .map(|i| columns.iter().map(|c| c[i].clone()).collect())
        .collect()
}

fn close_rel(ours: f64, theirs: f64, rel: f64, what: &str) {
    assert!(
        (ours - theirs).abs() <= rel * theirs.abs(),
        "{what}: ours {ours}, NannyML {theirs}"
    );
}

#[test]
fn reconstruction_error_matches_nannyml() {
    let fx = fixture();
    let reference = rows(&fx, &fx["reference"]);
    let model = ReconstructionModel::fit(&reference).expect("fit");
    for case in fx["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let expected = &case["expected"]["reconstruction"];
        assert_eq!(
            model.components.len() as u64,
            expected["n_components"].as_u64().unwrap(),
            "{name}: components"
        );
        let analysis = rows(&fx, &case["analysis"]);
        for chunk in expected["chunks"].as_array().unwrap() {
            let source = if chunk["period"] == "reference" {
                &reference
            } else {
                &analysis
            };
            let (start, end) = (
                chunk["start"].as_u64().unwrap() as usize,
                chunk["end"].as_u64().unwrap() as usize,
            );
            let mut m = ErrorMoments::default();
            for row in &source[start..end] {
                m.record(model.error(row));
            }
            let what = format!("{name} {} [{start}, {end})", chunk["period"]);
            let mean = m.mean().unwrap();
            close_rel(mean, chunk["value"].as_f64().unwrap(), 0.01, &what);
            close_rel(
                m.sampling_error().unwrap(),
                chunk["sampling_error"].as_f64().unwrap(),
                0.01,
                &what,
            );
            assert_eq!(
                model.alerts(mean),
                chunk["alert"].as_bool().unwrap(),
                "{what}: alert"
            );
        }
        close_rel(
            model.lower_threshold,
            expected["lower_threshold"].as_f64().unwrap(),
            0.01,
            "lower threshold",
        );
        close_rel(
            model.upper_threshold,
            expected["upper_threshold"].as_f64().unwrap(),
            0.01,
            "upper threshold",
        );
    }
}

#[test]
fn correlation_break_alerts_on_every_chunk() {
    let fx = fixture();
    let case = &fx["cases"][2];
    assert_eq!(case["case"], "pca_correlation_break");
    let analysis: Vec<&Value> = case["expected"]["reconstruction"]["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["period"] == "analysis")
        .collect();
    assert!(analysis.iter().all(|c| c["alert"] == true));
}

#[test]
fn cbpe_matches_nannyml() {
    let fx = fixture();
    let reference = &fx["reference"];
    let (scores, predicted, labels) = (
        floats(reference, "score"),
        flags(reference, "pred"),
        flags(reference, "label"),
    );
    let profile = CbpeProfile::fit(&scores, &predicted, &labels);
    for case in fx["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        assert_eq!(
            needs_calibration(&scores, &labels),
            case["expected"]["needs_calibration"].as_bool().unwrap(),
            "{name}: needs_calibration"
        );
        let analysis = &case["analysis"];
        assert_eq!(
            analysis.get("label").is_none(),
            case["labels_withheld"].as_bool().unwrap()
        );
        let (a_scores, a_pred) = (floats(analysis, "score"), flags(analysis, "pred"));
        for chunk in case["expected"]["cbpe"].as_array().unwrap() {
            let (start, end) = (
                chunk["start"].as_u64().unwrap() as usize,
                chunk["end"].as_u64().unwrap() as usize,
            );
            let mut sums = CbpeSums::default();
            let mut counts = vec![0u64; SCORE_BINS];
            for i in start..end {
                sums.record(&profile.map, a_scores[i], a_pred[i]);
                counts[score_bin(a_scores[i])] += 1;
            }
            let e = sums.estimate(&profile.sampling, &counts).expect("rows");
            let auc = e.roc_auc.expect("auc");
            for (metric, ours, tolerance) in [
                ("accuracy", e.accuracy, 0.005),
                ("precision", e.precision, 0.005),
                ("recall", e.recall, 0.005),
                ("f1", e.f1, 0.005),
                ("roc_auc", auc, 0.01),
            ] {
                let what = format!("{name} [{start}, {end}) estimated_{metric}");
                let theirs = chunk[metric]["value"].as_f64().unwrap();
                assert!(
                    (ours.value - theirs).abs() <= tolerance,
                    "{what}: ours {}, NannyML {theirs}",
                    ours.value
                );
                close_rel(
                    ours.sampling_error.unwrap(),
                    chunk[metric]["sampling_error"].as_f64().unwrap(),
                    0.01,
                    &format!("{what} sampling error"),
                );
            }
        }
    }
}

fn strings(table: &Value, column: &str) -> Vec<String> {
    table[column]
        .as_array()
        .unwrap_or_else(|| panic!("column {column}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn cbpe_per_group_matches_nannyml_on_each_group_alone() {
    let fx = fixture();
    let reference = &fx["reference"];
    let profile = CbpeProfile::fit(
        &floats(reference, "score"),
        &flags(reference, "pred"),
        &flags(reference, "label"),
    );
    let mut checked = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let analysis = &case["analysis"];
        let (scores, pred, segment) = (
            floats(analysis, "score"),
            flags(analysis, "pred"),
            strings(analysis, "segment"),
        );
        let expected = case["expected"]["cbpe_groups"].as_object().expect("groups");
        let index: BTreeMap<&str, u16> = expected
            .keys()
            .enumerate()
            .map(|(i, g)| (g.as_str(), i as u16))
            .collect();
        // One attribute with the fixture's groups (and an empty `other`), as a summary keeps it.
        let mut sums = CbpeSums::with_groups([index.len() + 1]);
        for i in 0..scores.len() {
            sums.record_in_groups(
                &profile.map,
                scores[i],
                pred[i],
                &[index[segment[i].as_str()]],
            );
        }
        assert_eq!(sums.rows() as usize, scores.len());
        for (group, &g) in &index {
            let theirs = &expected[*group];
            let e = sums.groups[0][usize::from(g)]
                .estimate(&profile.sampling)
                .expect("rows");
            assert_eq!(
                e.rows,
                theirs["rows"].as_u64().unwrap(),
                "{name} {group}: rows"
            );
            let specificity = &theirs["specificity"];
            let fpr_value = 1.0 - specificity["value"].as_f64().unwrap();
            for (metric, ours, value, se) in [
                (
                    "accuracy",
                    e.accuracy,
                    &theirs["accuracy"]["value"],
                    &theirs["accuracy"]["sampling_error"],
                ),
                (
                    "precision",
                    e.precision,
                    &theirs["precision"]["value"],
                    &theirs["precision"]["sampling_error"],
                ),
                (
                    "recall",
                    e.recall,
                    &theirs["recall"]["value"],
                    &theirs["recall"]["sampling_error"],
                ),
                (
                    "f1",
                    e.f1,
                    &theirs["f1"]["value"],
                    &theirs["f1"]["sampling_error"],
                ),
                (
                    "fpr",
                    e.fpr,
                    &Value::from(fpr_value),
                    &specificity["sampling_error"],
                ),
            ] {
                let what = format!("{name} group {group} estimated_{metric}");
                let theirs = value.as_f64().unwrap();
                assert!(
                    (ours.value - theirs).abs() <= 0.005,
                    "{what}: ours {}, NannyML {theirs}",
                    ours.value
                );
                close_rel(
                    ours.sampling_error.unwrap(),
                    se.as_f64().unwrap(),
                    0.01,
                    &format!("{what} sampling error"),
                );
                checked += 1;
            }
        }
        // The groups differ, so parity is a real number here, not a trivial zero.
        let tpr: Vec<f64> = index
            .values()
            .map(|&g| {
                sums.groups[0][usize::from(g)]
                    .estimate(&profile.sampling)
                    .unwrap()
                    .recall
                    .value
            })
            .collect();
        assert!(
            (tpr[0] - tpr[1]).abs() > 0.01,
            "{name}: groups' estimated TPR {tpr:?}"
        );
    }
    assert_eq!(checked, 3 * 2 * 5);
}
