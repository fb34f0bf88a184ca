//! Why an objective reads as it does: the figures behind one value, kept beside it in the
//! evaluation so a reader (the status page, an auditor reading the evidence) can see which
//! group is disadvantaged or which features drifted without recomputing anything.
//!
//! - A fairness metric compares one per-group rate (selection rate, TPR, FPR; equalized odds
//!   compares TPR and FPR): [`Why::Groups`] lists each group's rate with its sample size and
//!   Wilson interval, and names the disadvantaged group, the compared group with the lowest
//!   selection rate or TPR. (For the FPR the harmed side depends on whether the positive class
//!   is the favourable outcome, so no group is named.)
//! - A drift metric on one feature, or the dataset drift share: [`Why::Drift`] lists the feature
//!   (for the share, every drifted feature) with PSI, KS, normed Wasserstein and the default
//!   method's score against its threshold.
//!
//! Attribute and group names are data: an intersection (`gender×age_band`) is one more
//! attribute here.

use serde::{Deserialize, Serialize};

use super::drift::{FeatureDrift, Method, DISTANCE_THRESHOLD, P_VALUE_THRESHOLD};
use super::fairness::{AttributeFairness, FairnessOptions, GroupFairness};
use super::intervals::Interval;
use super::{catalogue, Measured, Report, Scope, Selector};
use crate::schema::ModelSchema;
use crate::summary::WindowSummary;

/// The figures behind one evaluated value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Per-group rates of a fairness metric (one list per rate compared).
    Groups(Vec<GroupRates>),
    /// Drift statistics of the features behind a drift metric.
    Drift(DriftedFeatures),
}

/// One rate over the groups of an attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    /// The attribute (or intersection) compared.
    pub attribute: String,
    /// `selection_rate`, `tpr` or `fpr`.
    pub rate: String,
    /// Each group occurring in the window, in name order.
    pub groups: Vec<GroupRate>,
    /// The compared group with the lowest rate (selection rate and TPR only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disadvantaged: Option<String>,
    /// The attribute's declared reference group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_group: Option<String>,
}

/// One group's rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRate {
    /// Group name.
    pub group: String,
    /// Samples behind the rate: the group's predictions (selection rate) or labelled
    /// predictions (TPR, FPR).
    pub samples: u64,
    /// The rate, or why it has none.
    pub value: Measured,
    /// Its Wilson score interval (unadjusted confidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Left out of the parity metric: fewer predictions than `min_group_samples`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub too_small: bool,
}

/// Features behind a drift metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftedFeatures {
    /// Features with a drift verdict (the dataset share's denominator).
    pub judged: u64,
    /// The feature measured, or for the dataset share every drifted feature, highest score
    /// first by name.
    pub features: Vec<FeatureStats>,
}

/// One feature's drift statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Feature name.
    pub feature: String,
    /// The default method (Evidently's choice).
    pub method: Method,
    /// The default method's value: a p-value or a distance.
    pub score: Measured,
    /// Its threshold: drift below it for a p-value, at or above it for a distance.
    pub threshold: f64,
    /// The default method's verdict.
    pub drifted: Option<bool>,
    /// Population stability index.
    pub psi: Measured,
    /// Kolmogorov-Smirnov statistic (numeric features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ks: Option<Measured>,
    /// Normed Wasserstein-1 (numeric features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<Measured>,
}

/// The default method's threshold.
pub fn threshold(method: Method) -> f64 {
    match method {
        Method::Ks | Method::ChiSquare | Method::Z => P_VALUE_THRESHOLD,
        Method::Wasserstein | Method::JensenShannon => DISTANCE_THRESHOLD,
    }
}

fn feature_stats(name: &str, d: &FeatureDrift) -> FeatureStats {
    FeatureStats {
        feature: name.to_owned(),
        method: d.default_method,
        score: d.score.clone(),
        threshold: threshold(d.default_method),
        drifted: d.drifted,
        psi: d.psi.clone(),
        ks: d.ks.as_ref().map(|t| t.statistic.clone()),
        wasserstein: d.wasserstein.clone(),
    }
}

/// The rates a fairness metric compares.
fn rates_of(metric: &str) -> &'static [&'static str] {
    match metric {
        "demographic_parity_difference"
        | "demographic_parity_ratio"
        | "statistical_parity_difference"
        | "disparate_impact"
        | "selection_rate" => &["selection_rate"],
        "equal_opportunity_difference" | "equal_opportunity_ratio" | "tpr" => &["tpr"],
        "equalized_odds_difference" | "equalized_odds_ratio" => &["tpr", "fpr"],
        "fpr" => &["fpr"],
        _ => &[],
    }
}

fn rate<'a>(g: &'a GroupFairness, name: &str) -> (&'a Measured, Option<Interval>, u64) {
    match name {
        "tpr" => (&g.tpr, g.tpr_interval, g.labelled),
        "fpr" => (&g.fpr, g.fpr_interval, g.labelled),
        _ => (&g.selection_rate, g.selection_rate_interval, g.n),
    }
}

/// The per-group rates behind a fairness metric on `attribute`.
pub fn groups(metric: &str, attribute: &str, f: &AttributeFairness) -> Vec<GroupRates> {
    rates_of(metric)
        .iter()
        .map(|&name| {
            let groups: Vec<GroupRate> = f
                .groups
                .iter()
                .map(|(group, g)| {
                    let (value, interval, samples) = rate(g, name);
                    GroupRate {
                        group: group.clone(),
                        samples,
                        value: value.clone(),
                        interval,
                        too_small: f.too_small.contains_key(group),
                    }
                })
                .collect();
            let disadvantaged = (name != "fpr")
                .then(|| {
                    groups
                        .iter()
                        .filter(|g| !g.too_small)
                        .filter_map(|g| g.value.value().map(|v| (v, &g.group)))
                        .min_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, g)| g.clone())
                })
                .flatten()
                .filter(|_| groups.iter().filter(|g| !g.too_small).count() > 1);
            GroupRates {
                attribute: attribute.to_owned(),
                rate: name.to_owned(),
                groups,
                disadvantaged,
                reference_group: f.reference_group.clone(),
            }
        })
        .collect()
}

/// The figures behind `metric` on `selector`, as an objective with fairness `options`
/// measures it; `None` for metrics without a breakdown (performance, latency, ...).
pub fn why(
    metric: &str,
    selector: &Selector,
    options: &FairnessOptions,
    schema: &ModelSchema,
    summary: &WindowSummary,
    report: &Report,
) -> Option<Why> {
    let spec = catalogue::check(metric, selector, None).ok()?;
    match spec.scope {
        Scope::Attribute | Scope::Group => {
            let name = selector.attribute.as_deref()?;
            let f = catalogue::fairness_for(schema, summary, report, name, options)?;
            let rates = groups(metric, name, &f);
            (!rates.is_empty()).then_some(Why::Groups(rates))
        }
        Scope::Feature => {
            let name = selector.feature.as_deref()?;
            let d = report.drift.get(name)?;
            let drift_metric = matches!(
                metric,
                "psi"
                    | "ks"
                    | "ks_p_value"
                    | "wasserstein"
                    | "jensen_shannon"
                    | "chi2"
                    | "chi2_p_value"
                    | "hellinger"
                    | "kl"
                    | "drift_score"
            );
            drift_metric.then(|| {
                Why::Drift(DriftedFeatures {
                    judged: u64::from(d.drifted.is_some()),
                    features: vec![feature_stats(name, d)],
                })
            })
        }
        Scope::Model if metric == "dataset_drift_share" => {
            let mut features: Vec<FeatureStats> = report
                .drift
                .iter()
                .filter(|(_, d)| d.drifted == Some(true))
                .map(|(name, d)| feature_stats(name, d))
                .collect();
            // The most drifted first: distances descending, p-values ascending.
            features.sort_by(|a, b| {
                let key = |f: &FeatureStats| {
                    let v = f.score.value().unwrap_or(0.0);
                    match f.method {
                        Method::Wasserstein | Method::JensenShannon => -v,
                        _ => v,
                    }
                };
                key(a)
                    .total_cmp(&key(b))
                    .then_with(|| a.feature.cmp(&b.feature))
            });
            Some(Why::Drift(DriftedFeatures {
                judged: report.dataset_drift.features,
                features,
            }))
        }
        Scope::Model => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fairness::AttributeFairness;

    fn group(n: u64, rate: f64) -> GroupFairness {
        GroupFairness {
            n,
            labelled: n / 2,
            selection_rate: Measured::Value(rate),
            tpr: Measured::Value(rate + 0.1),
            fpr: Measured::Value(rate / 2.0),
            mae: None,
            statistical_parity_difference: None,
            disparate_impact: None,
            selection_rate_interval: Some(Interval {
                lower: rate - 0.02,
                upper: rate + 0.02,
                confidence: 0.95,
                adjusted: false,
            }),
            tpr_interval: None,
            fpr_interval: None,
        }
    }

    fn attribute(groups: &[(&str, u64, f64)], too_small: &[&str]) -> AttributeFairness {
        let u = Measured::undefined("not used");
        AttributeFairness {
            groups: groups
                .iter()
                .map(|(g, n, r)| ((*g).to_owned(), group(*n, *r)))
                .collect(),
            demographic_parity_difference: u.clone(),
            demographic_parity_ratio: u.clone(),
            equalized_odds_difference: u.clone(),
            equalized_odds_ratio: u.clone(),
            equal_opportunity_difference: u.clone(),
            equal_opportunity_ratio: u.clone(),
            reference_group: None,
            statistical_parity_difference: u.clone(),
            disparate_impact: u,
            per_class: Default::default(),
            intervals: Default::default(),
            confidence: 0.95,
            min_group_samples: 100,
            too_small: too_small.iter().map(|g| ((*g).to_owned(), 5)).collect(),
        }
    }

    #[test]
    fn the_disadvantaged_group_is_the_compared_group_with_the_lowest_rate() {
        // X has the lowest rate but is too small to be compared: F is named.
        let f = attribute(
            &[("F", 4000, 0.12), ("M", 4100, 0.38), ("X", 5, 0.0)],
            &["X"],
        );
        let rates = groups("demographic_parity_ratio", "gender×age_band", &f);
        assert_eq!(rates.len(), 1);
        let r = &rates[0];
        assert_eq!(r.attribute, "gender×age_band");
        assert_eq!(r.rate, "selection_rate");
        assert_eq!(r.disadvantaged.as_deref(), Some("F"));
        let f_line = &r.groups[0];
        assert_eq!(
            (f_line.group.as_str(), f_line.samples),
            ("F", 4000),
            "the sample size is the group's predictions"
        );
        assert_eq!(f_line.interval.map(|i| i.lower), Some(0.12 - 0.02));
        assert!(r.groups[2].too_small && !r.groups[0].too_small);
    }

    #[test]
    fn equalized_odds_shows_both_rates_and_fpr_names_no_group() {
        let f = attribute(&[("F", 4000, 0.12), ("M", 4100, 0.38)], &[]);
        let rates = groups("equalized_odds_ratio", "gender", &f);
        let names: Vec<&str> = rates.iter().map(|r| r.rate.as_str()).collect();
        assert_eq!(names, ["tpr", "fpr"]);
        assert_eq!(rates[0].disadvantaged.as_deref(), Some("F"));
        assert_eq!(rates[0].groups[0].samples, 2000, "TPR counts labelled");
        assert_eq!(rates[1].disadvantaged, None);
        let one = attribute(&[("F", 4000, 0.12)], &[]);
        assert_eq!(
            groups("demographic_parity_ratio", "gender", &one)[0].disadvantaged,
            None,
            "one group is disadvantaged against no one"
        );
        assert!(groups("accuracy", "gender", &f).is_empty());
    }

    #[test]
    fn thresholds_follow_the_method() {
        assert_eq!(threshold(Method::Ks), P_VALUE_THRESHOLD);
        assert_eq!(threshold(Method::Wasserstein), DISTANCE_THRESHOLD);
    }
}
