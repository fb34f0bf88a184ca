//! Golden tests: every metric, computed from summaries, against values SciPy, scikit-learn and
//! Fairlearn computed on the same rows (`scripts/golden/generate.py` writes the fixtures).
//!
//! Tolerances are DESIGN.md's: binned divergences (PSI, Jensen-Shannon, Hellinger, KL),
//! chi-square, Z, fairness, classification and regression metrics are exact up to float
//! rounding; the KS statistic within 0.005; normed Wasserstein within 1 % or 0.002 absolute,
//! whichever is larger (binned CDFs cannot resolve the within-bin wiggles that make up a
//! near-zero distance; 0.002 is a fiftieth of Evidently's drift threshold); ROC AUC within
//! 0.005; latency quantiles within the sketch's 1 % relative accuracy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aims_core::event::{RawEvent, Target};
use aims_core::metrics::drift::Method;
use aims_core::metrics::{report, Measured, Report};
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::schema::ModelSchema;
use aims_core::sketch::RELATIVE_ACCURACY;
use aims_core::summary::WindowSummary;
use serde_json::Value;

const EXACT: f64 = 1e-9;
const KS_TOLERANCE: f64 = 0.005;
const WASSERSTEIN_RELATIVE: f64 = 0.01;
const WASSERSTEIN_ABSOLUTE: f64 = 0.002;
const AUC_TOLERANCE: f64 = 0.005;

struct Case {
    name: String,
    schema: ModelSchema,
    profile: ReferenceProfile,
    summary: WindowSummary,
    report: Report,
    expected: Value,
}

fn fixtures() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 9,
        "expected the nine golden cases in {dir:?}"
    );
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            let doc: Value = serde_json::from_str(&text).expect("fixture is JSON");
            let schema: ModelSchema =
                serde_json::from_value(doc["schema"].clone()).expect("schema");
            let schema = schema.validated().expect("valid schema");
            let events = |key: &str| {
                doc[key]
                    .as_array()
                    .expect("event list")
                    .iter()
                    .map(|v| {
                        let raw: RawEvent = serde_json::from_value(v.clone()).expect("raw event");
                        schema.validate(raw, 0).expect("fixture events are valid")
                    })
                    .collect::<Vec<_>>()
            };
            let mut builder = ProfileBuilder::new(&schema);
            for e in events("reference") {
                builder.add(&e);
            }
            let profile = builder.finish();
            let mut summary = WindowSummary::new(&schema, &profile);
            let raw_current = doc["current"].as_array().expect("event list");
            for (e, raw) in events("current").iter().zip(raw_current) {
                summary.record(&schema, &profile, e);
                let scores = schema
                    .class_scores(&raw["prediction"])
                    .expect("fixture scores are valid");
                if let (Some(scores), Some(Target::Class(truth))) = (scores, e.label) {
                    summary.record_class_scores(&scores, truth);
                }
            }
            let report = report(&schema, &profile, &summary, None);
            Case {
                name: doc["case"].as_str().unwrap_or("?").to_owned(),
                schema,
                profile,
                summary,
                report,
                expected: doc["expected"].clone(),
            }
        })
        .collect()
}

/// Collects every mismatch so one run shows them all, and the worst error per statistic
/// (printed with `--nocapture`; the golden README records them).
#[derive(Default)]
struct Check {
    failures: Vec<String>,
    compared: usize,
    worst: BTreeMap<String, Worst>,
}

/// The largest absolute and relative errors of one statistic, and where they occurred.
#[derive(Default)]
struct Worst {
    absolute: (f64, String),
    relative: (f64, String),
}

impl Check {
    fn close(&mut self, what: &str, got: &Measured, want: &Value, abs: f64, rel: f64) {
        self.compared += 1;
        match (got, want.as_f64()) {
            (Measured::Undefined(_), None) => {}
            (Measured::Value(g), Some(w)) => {
                let last = what.rsplit('/').next().unwrap_or(what);
                let statistic = if last.contains(" edge ") {
                    "edge"
                } else {
                    last.rsplit('.').next().unwrap_or(last)
                };
                let worst = self.worst.entry(statistic.to_owned()).or_default();
                let error = (g - w).abs();
                if error >= worst.absolute.0 {
                    worst.absolute = (error, what.to_owned());
                }
                if w.abs() > 0.0 && error / w.abs() >= worst.relative.0 {
                    worst.relative = (error / w.abs(), what.to_owned());
                }
                if (g - w).abs() > abs + rel * w.abs() {
                    self.failures.push(format!("{what}: got {g}, want {w}"));
                }
            }
            (g, _) => self
                .failures
                .push(format!("{what}: got {g:?}, want {want}")),
        }
    }

    fn exact(&mut self, what: &str, got: &Measured, want: &Value) {
        self.close(what, got, want, EXACT, EXACT);
    }

    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        self.compared += 1;
        if got != want {
            self.failures
                .push(format!("{what}: got {got:?}, want {want:?}"));
        }
    }

    fn finish(self, minimum: usize) {
        for (statistic, w) in &self.worst {
            eprintln!(
                "worst {statistic:<28} absolute {:.3e} ({})  relative {:.3e} ({})",
                w.absolute.0, w.absolute.1, w.relative.0, w.relative.1
            );
        }
        assert!(
            self.compared >= minimum,
            "only {} comparisons made; fixtures not read?",
            self.compared
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} comparisons failed:\n{}",
            self.failures.len(),
            self.compared,
            self.failures.join("\n")
        );
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Ks => "ks",
        Method::ChiSquare => "chi_square",
        Method::Z => "z",
        Method::Wasserstein => "wasserstein",
        Method::JensenShannon => "jensen_shannon",
    }
}

#[test]
fn reference_edges_match_numpy_quantiles() {
    let mut check = Check::default();
    for case in fixtures() {
        for (i, spec) in case.schema.features.iter().enumerate() {
            let Some(numeric) = case.profile.numeric(i) else {
                continue;
            };
            let want = case.expected["drift"][&spec.name]["edges"]
                .as_array()
                .expect("edges");
            check.equal(
                &format!("{}/{} edge count", case.name, spec.name),
                numeric.edges.len(),
                want.len(),
            );
            for (k, (g, w)) in numeric.edges.iter().zip(want).enumerate() {
                check.exact(
                    &format!("{}/{} edge {k}", case.name, spec.name),
                    &Measured::Value(*g),
                    w,
                );
            }
        }
    }
    check.finish(500);
}

#[test]
fn drift_matches_scipy() {
    let mut check = Check::default();
    for case in fixtures() {
        for (name, got) in &case.report.drift {
            let want = &case.expected["drift"][name];
            let at = |m: &str| format!("{}/{name}/{m}", case.name);
            check.exact(&at("psi"), &got.psi, &want["psi"]);
            check.exact(
                &at("jensen_shannon"),
                &got.jensen_shannon,
                &want["jensen_shannon"],
            );
            check.exact(&at("hellinger"), &got.hellinger, &want["hellinger"]);
            check.exact(&at("kl"), &got.kl, &want["kl"]);
            if let Some(ks) = &got.ks {
                check.close(
                    &at("ks"),
                    &ks.statistic,
                    &want["ks"]["statistic"],
                    KS_TOLERANCE,
                    0.0,
                );
            }
            if let Some(w) = &got.wasserstein {
                let w_want = want["wasserstein"].as_f64().unwrap_or(0.0);
                let tolerance = WASSERSTEIN_ABSOLUTE.max(WASSERSTEIN_RELATIVE * w_want.abs());
                check.close(&at("wasserstein"), w, &want["wasserstein"], tolerance, 0.0);
            }
            if let (Some(chi2), Some(want_chi2)) = (&got.chi2, want.get("chi2")) {
                check.exact(
                    &at("chi2.statistic"),
                    &chi2.statistic,
                    &want_chi2["statistic"],
                );
                check.exact(&at("chi2.p_value"), &chi2.p_value, &want_chi2["p_value"]);
            }
            if let Some(want_z) = want.get("z") {
                let got_z = got.z.clone().unwrap_or(Measured::undefined("no z test"));
                check.exact(&at("z"), &got_z, &want_z["p_value"]);
            }
            check.equal(
                &at("default_method"),
                method_name(got.default_method),
                want["default_method"].as_str().unwrap_or("?"),
            );
            check.equal(&at("drifted"), got.drifted, want["drifted"].as_bool());
            if let Some(evidently) = case.expected.get("evidently").and_then(|e| e.get(name)) {
                check.equal(
                    &at("evidently method"),
                    method_name(got.default_method),
                    evidently["method"].as_str().unwrap_or("?"),
                );
                check.equal(
                    &at("evidently drifted"),
                    got.drifted,
                    evidently["drifted"].as_bool(),
                );
            }
        }
        let want = &case.expected["dataset_drift"];
        check.exact(
            &format!("{}/dataset_drift.share", case.name),
            &case.report.dataset_drift.share,
            &want["share"],
        );
        check.equal(
            &format!("{}/dataset_drift.drifted", case.name),
            case.report.dataset_drift.drifted,
            want["drifted"].as_bool(),
        );
    }
    check.finish(300);
}

#[test]
fn performance_matches_scikit_learn() {
    let mut check = Check::default();
    for case in fixtures() {
        let want = &case.expected["performance"];
        let perf = &case.report.performance;
        let at = |m: &str| format!("{}/{m}", case.name);
        check.exact(
            &at("label_coverage"),
            &perf.label_coverage,
            &want["label_coverage"],
        );
        if let Some(m) = perf
            .classification
            .as_ref()
            .and_then(|c| c.multiclass.as_ref())
        {
            let c = perf.classification.as_ref().expect("classification");
            check.exact(&at("accuracy"), &c.accuracy, &want["accuracy"]);
            for (avg, got) in [
                ("macro", &m.macro_avg),
                ("weighted", &m.weighted),
                ("micro", &m.micro),
            ] {
                check.exact(
                    &at(&format!("{avg}.precision")),
                    &got.precision,
                    &want[avg]["precision"],
                );
                check.exact(
                    &at(&format!("{avg}.recall")),
                    &got.recall,
                    &want[avg]["recall"],
                );
                check.exact(&at(&format!("{avg}.f1")), &got.f1, &want[avg]["f1"]);
            }
            for (class, got) in &m.per_class {
                let w = &want["per_class"][class];
                let at = |x: &str| at(&format!("{class}.{x}"));
                check.equal(&at("support"), Some(got.support), w["support"].as_u64());
                check.exact(&at("precision"), &got.precision, &w["precision"]);
                check.exact(&at("recall"), &got.recall, &w["recall"]);
                check.exact(&at("f1"), &got.f1, &w["f1"]);
                check.close(
                    &at("roc_auc"),
                    &got.roc_auc,
                    &w["roc_auc"],
                    AUC_TOLERANCE,
                    0.0,
                );
            }
            check.close(
                &at("roc_auc_ovr"),
                &m.roc_auc_ovr,
                &want["roc_auc_ovr"],
                AUC_TOLERANCE,
                0.0,
            );
            check.close(
                &at("roc_auc_ovr_weighted"),
                &m.roc_auc_ovr_weighted,
                &want["roc_auc_ovr_weighted"],
                AUC_TOLERANCE,
                0.0,
            );
            check.close(
                &at("roc_auc"),
                &c.roc_auc,
                &want["roc_auc_ovr"],
                AUC_TOLERANCE,
                0.0,
            );
            check.close(&at("log_loss"), &c.log_loss, &want["log_loss"], 1e-9, 1e-9);
        } else if let Some(c) = &perf.classification {
            check.exact(&at("accuracy"), &c.accuracy, &want["accuracy"]);
            check.exact(&at("precision"), &c.precision, &want["precision"]);
            check.exact(&at("recall"), &c.recall, &want["recall"]);
            check.exact(&at("f1"), &c.f1, &want["f1"]);
            check.close(
                &at("roc_auc"),
                &c.roc_auc,
                &want["roc_auc"],
                AUC_TOLERANCE,
                0.0,
            );
            check.close(&at("log_loss"), &c.log_loss, &want["log_loss"], 1e-9, 1e-9);
            check.exact(&at("brier"), &c.brier, &want["brier"]);
        }
        if let Some(r) = &perf.regression {
            check.exact(&at("mae"), &r.mae, &want["mae"]);
            check.exact(&at("rmse"), &r.rmse, &want["rmse"]);
            check.exact(&at("mape"), &r.mape, &want["mape"]);
            check.close(&at("r2"), &r.r2, &want["r2"], 1e-7, 1e-7);
        }
        for (q, got) in [
            ("p50", &case.report.latency.p50),
            ("p90", &case.report.latency.p90),
            ("p99", &case.report.latency.p99),
        ] {
            check.compared += 1;
            let (lo, hi) = (
                case.expected["latency"][q]["lower"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                case.expected["latency"][q]["higher"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            );
            match got.value() {
                Some(v)
                    if v >= lo * (1.0 - RELATIVE_ACCURACY)
                        && v <= hi * (1.0 + RELATIVE_ACCURACY) => {}
                other => check.failures.push(format!(
                    "{}/latency {q}: got {other:?}, want within 1 % of [{lo}, {hi}]",
                    case.name
                )),
            }
        }
    }
    check.finish(60);
}

#[test]
fn fairness_matches_fairlearn() {
    let mut check = Check::default();
    for case in fixtures() {
        for (attribute, got) in &case.report.fairness {
            let want = &case.expected["fairness"][attribute];
            let at = |m: &str| format!("{}/{attribute}/{m}", case.name);
            let want_groups = want["groups"].as_object().expect("groups");
            check.equal(
                &at("groups"),
                got.groups.keys().cloned().collect::<Vec<_>>(),
                want_groups.keys().cloned().collect::<Vec<_>>(),
            );
            for (group, g) in &got.groups {
                let w = &want_groups[group];
                check.equal(&at(&format!("{group}.n")), Some(g.n), w["n"].as_u64());
                if case.schema.is_classification() {
                    check.exact(
                        &at(&format!("{group}.selection_rate")),
                        &g.selection_rate,
                        &w["selection_rate"],
                    );
                    check.exact(&at(&format!("{group}.tpr")), &g.tpr, &w["tpr"]);
                    check.exact(&at(&format!("{group}.fpr")), &g.fpr, &w["fpr"]);
                    if let Some(spd) = &g.statistical_parity_difference {
                        check.exact(&at(&format!("{group}.spd")), spd, &want["spd"][group]);
                    }
                    if let Some(di) = &g.disparate_impact {
                        check.exact(&at(&format!("{group}.di")), di, &want["di"][group]);
                    }
                } else if let Some(mae) = &g.mae {
                    check.exact(&at(&format!("{group}.mae")), mae, &w["mae"]);
                }
            }
            if !case.schema.is_classification() {
                continue;
            }
            check.exact(
                &at("dp_difference"),
                &got.demographic_parity_difference,
                &want["demographic_parity_difference"],
            );
            check.exact(
                &at("dp_ratio"),
                &got.demographic_parity_ratio,
                &want["demographic_parity_ratio"],
            );
            check.exact(
                &at("eo_difference"),
                &got.equalized_odds_difference,
                &want["equalized_odds_difference"],
            );
            check.exact(
                &at("eo_ratio"),
                &got.equalized_odds_ratio,
                &want["equalized_odds_ratio"],
            );
            check.exact(
                &at("eopp_difference"),
                &got.equal_opportunity_difference,
                &want["equal_opportunity_difference"],
            );
            check.exact(
                &at("eopp_ratio"),
                &got.equal_opportunity_ratio,
                &want["equal_opportunity_ratio"],
            );
            check.exact(
                &at("spd"),
                &got.statistical_parity_difference,
                &want["statistical_parity_difference"],
            );
            check.exact(&at("di"), &got.disparate_impact, &want["disparate_impact"]);
            let Some(want_classes) = case
                .expected
                .get("fairness_per_class")
                .map(|f| &f[attribute])
            else {
                continue;
            };
            check.equal(
                &at("classes"),
                got.per_class.len(),
                want_classes.as_object().map_or(0, |o| o.len()),
            );
            for (class, parity) in &got.per_class {
                let w = &want_classes[class];
                let at = |x: &str| at(&format!("{class}.{x}"));
                for (group, rate) in &parity.selection_rate {
                    check.exact(
                        &at(&format!("{group}.selection_rate")),
                        rate,
                        &w["selection_rate"][group],
                    );
                }
                check.exact(
                    &at("dp_difference"),
                    &parity.demographic_parity_difference,
                    &w["demographic_parity_difference"],
                );
                check.exact(
                    &at("dp_ratio"),
                    &parity.demographic_parity_ratio,
                    &w["demographic_parity_ratio"],
                );
            }
        }
    }
    check.finish(100);
}

#[test]
fn data_quality_matches_pandas() {
    let mut check = Check::default();
    for case in fixtures() {
        for (feature, got) in &case.report.data_quality.features {
            let want = &case.expected["data_quality"][feature];
            let at = |m: &str| format!("{}/{feature}/{m}", case.name);
            check.exact(
                &at("missing_rate"),
                &got.missing_rate,
                &want["missing_rate"],
            );
            if let Some(r) = &got.out_of_range_rate {
                check.exact(&at("out_of_range_rate"), r, &want["out_of_range_rate"]);
            }
            if let Some(r) = &got.unseen_category_rate {
                check.exact(
                    &at("unseen_category_rate"),
                    r,
                    &want["unseen_category_rate"],
                );
            }
        }
        check.equal(
            &format!("{} rows", case.name),
            case.summary.events,
            case.expected["rows"]["current"].as_u64().unwrap_or(0),
        );
    }
    check.finish(40);
}
