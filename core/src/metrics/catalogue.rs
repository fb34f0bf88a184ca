//! Metrics by name, as objectives refer to them: which ones exist, what each needs (a feature,
//! an attribute, a group), and how many samples back each value.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use std::collections::BTreeMap;

use super::fairness::{AttributeFairness, FairnessOptions};
use super::intervals::Interval;
use super::performance::Performance;
use super::{Measured, Report};
use crate::schema::ModelSchema;
use crate::summary::WindowSummary;

/// What a metric is measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The model as a whole.
    Model,
    /// One feature (`feature:` in an objective).
    Feature,
    /// One protected attribute (`attribute:`).
    Attribute,
    /// One group of an attribute (`attribute:` and `group:`).
    Group,
}

/// Whether a metric's samples are all events or only labelled ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Every prediction counts.
    Events,
    /// Only predictions with ground truth count.
    Labelled,
}

/// A metric of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    /// Its name in objectives and metrics labels.
    pub name: &'static str,
    /// What it is measured over.
    pub scope: Scope,
    /// Which samples back it (for `min_samples`).
    pub basis: Basis,
    /// One line for documentation.
    pub help: &'static str,
}

macro_rules! spec {
    ($name:literal, $scope:ident, $basis:ident, $help:literal) => {
        MetricSpec {
            name: $name,
            scope: Scope::$scope,
            basis: Basis::$basis,
            help: $help,
        }
    };
}

/// Every metric an objective can name (the collector adds `no_data`).
pub const CATALOGUE: &[MetricSpec] = &[
    spec!(
        "psi",
        Feature,
        Events,
        "population stability index on ten reference-quantile bins"
    ),
    spec!(
        "ks",
        Feature,
        Events,
        "two-sample Kolmogorov-Smirnov statistic"
    ),
    spec!(
        "ks_p_value",
        Feature,
        Events,
        "asymptotic p-value of the KS statistic"
    ),
    spec!(
        "wasserstein",
        Feature,
        Events,
        "Wasserstein-1 distance divided by the reference std"
    ),
    spec!(
        "jensen_shannon",
        Feature,
        Events,
        "Jensen-Shannon distance (natural log)"
    ),
    spec!(
        "chi2",
        Feature,
        Events,
        "chi-square goodness-of-fit statistic"
    ),
    spec!(
        "chi2_p_value",
        Feature,
        Events,
        "p-value of the chi-square test"
    ),
    spec!("hellinger", Feature, Events, "Hellinger distance"),
    spec!(
        "kl",
        Feature,
        Events,
        "Kullback-Leibler divergence of current from reference"
    ),
    spec!(
        "drift_score",
        Feature,
        Events,
        "value of the default drift method for the feature"
    ),
    spec!(
        "missing_rate",
        Feature,
        Events,
        "share of events missing the feature"
    ),
    spec!(
        "out_of_range_rate",
        Feature,
        Events,
        "share of values outside the reference range"
    ),
    spec!(
        "unseen_category_rate",
        Feature,
        Events,
        "share of categories unseen in the reference"
    ),
    spec!(
        "dataset_drift_share",
        Model,
        Events,
        "share of features whose default test reports drift"
    ),
    spec!(
        "rejected_rate",
        Model,
        Events,
        "share of received events rejected by validation"
    ),
    spec!("accuracy", Model, Labelled, "share of correct predictions"),
    spec!(
        "precision",
        Model,
        Labelled,
        "precision of the positive class (macro for multiclass)"
    ),
    spec!(
        "recall",
        Model,
        Labelled,
        "recall of the positive class (macro for multiclass)"
    ),
    spec!(
        "f1",
        Model,
        Labelled,
        "F1 of the positive class (macro for multiclass)"
    ),
    spec!("roc_auc", Model, Labelled, "area under the ROC curve"),
    spec!(
        "estimated_accuracy",
        Model,
        Events,
        "accuracy estimated without labels (CBPE; assumes no concept drift)"
    ),
    spec!(
        "estimated_precision",
        Model,
        Events,
        "precision estimated without labels (CBPE)"
    ),
    spec!(
        "estimated_recall",
        Model,
        Events,
        "recall estimated without labels (CBPE)"
    ),
    spec!(
        "estimated_f1",
        Model,
        Events,
        "F1 estimated without labels (CBPE)"
    ),
    spec!(
        "estimated_roc_auc",
        Model,
        Events,
        "ROC AUC estimated without labels (CBPE)"
    ),
    spec!(
        "estimated_tpr",
        Group,
        Events,
        "true positive rate of the group estimated without labels (CBPE)"
    ),
    spec!(
        "estimated_fpr",
        Group,
        Events,
        "false positive rate of the group estimated without labels (CBPE)"
    ),
    spec!(
        "estimated_equal_opportunity_difference",
        Attribute,
        Events,
        "max - min estimated TPR across groups (CBPE, without labels)"
    ),
    spec!(
        "estimated_equalized_odds_difference",
        Attribute,
        Events,
        "worst of estimated TPR and FPR differences across groups (CBPE)"
    ),
    spec!(
        "reconstruction_error",
        Model,
        Events,
        "mean PCA reconstruction error in standardised space (multivariate drift)"
    ),
    spec!("log_loss", Model, Labelled, "mean log loss"),
    spec!("brier", Model, Labelled, "Brier score"),
    spec!("mae", Model, Labelled, "mean absolute error"),
    spec!("rmse", Model, Labelled, "root mean squared error"),
    spec!("mape", Model, Labelled, "mean absolute percentage error"),
    spec!("r2", Model, Labelled, "coefficient of determination"),
    spec!(
        "label_coverage",
        Model,
        Events,
        "share of predictions with ground truth"
    ),
    spec!(
        "error_rate",
        Model,
        Events,
        "share of events reporting a serving error"
    ),
    spec!(
        "latency_p50",
        Model,
        Events,
        "median serving latency, milliseconds"
    ),
    spec!(
        "latency_p90",
        Model,
        Events,
        "90th percentile serving latency, milliseconds"
    ),
    spec!(
        "latency_p99",
        Model,
        Events,
        "99th percentile serving latency, milliseconds"
    ),
    spec!("throughput", Model, Events, "predictions per second"),
    spec!(
        "selection_rate",
        Group,
        Events,
        "share of the group predicted positive"
    ),
    spec!("tpr", Group, Labelled, "true positive rate of the group"),
    spec!("fpr", Group, Labelled, "false positive rate of the group"),
    spec!(
        "demographic_parity_difference",
        Attribute,
        Events,
        "max - min selection rate across groups"
    ),
    spec!(
        "demographic_parity_ratio",
        Attribute,
        Events,
        "min / max selection rate across groups"
    ),
    spec!(
        "equalized_odds_difference",
        Attribute,
        Labelled,
        "worst of TPR and FPR differences"
    ),
    spec!(
        "equalized_odds_ratio",
        Attribute,
        Labelled,
        "worst of TPR and FPR ratios"
    ),
    spec!(
        "equal_opportunity_difference",
        Attribute,
        Labelled,
        "max - min TPR across groups"
    ),
    spec!(
        "equal_opportunity_ratio",
        Attribute,
        Labelled,
        "min / max TPR across groups"
    ),
    spec!(
        "statistical_parity_difference",
        Attribute,
        Events,
        "lowest selection-rate difference to the reference group"
    ),
    spec!(
        "disparate_impact",
        Attribute,
        Events,
        "lowest selection-rate ratio to the reference group"
    ),
];

impl MetricSpec {
    /// Looks a metric up by name.
    pub fn find(name: &str) -> Option<&'static MetricSpec> {
        CATALOGUE.iter().find(|m| m.name == name)
    }
}

/// Which part of the model an objective watches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// Feature, for feature metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// Attribute, for fairness metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// Group, for per-group rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// One class of a multiclass model, for the metrics of [`PER_CLASS_METRICS`]: that class's
    /// precision, recall, F1 or one-vs-rest ROC AUC, a group's rate of predicting it, or the
    /// demographic parity of that rate across groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// The metrics that take a `class:` selector (multiclass models only). Without one, precision,
/// recall and F1 are macro averages, ROC AUC is the macro one-vs-rest AUC, and selection rates
/// and parity are of the positive class one-vs-rest.
pub const PER_CLASS_METRICS: &[&str] = &[
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "selection_rate",
    "demographic_parity_difference",
    "demographic_parity_ratio",
];

/// Model-level CBPE estimates that also take `attribute:` and `group:` together: the estimate
/// over that group's rows only.
pub const PER_GROUP_ESTIMATES: &[&str] = &[
    "estimated_accuracy",
    "estimated_precision",
    "estimated_recall",
    "estimated_f1",
];

/// A metric request that cannot be answered, naming the field at fault.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct CatalogueError {
    /// The objective field at fault (`metric`, `feature`, `attribute`, `group`, `class`).
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> CatalogueError {
    CatalogueError {
        field,
        message: message.into(),
    }
}

/// Checks that `metric` exists and `selector` names what it needs, and nothing it cannot use.
/// With a schema, also checks the feature / attribute / group exist in it.
pub fn check(
    metric: &str,
    selector: &Selector,
    schema: Option<&ModelSchema>,
) -> Result<&'static MetricSpec, CatalogueError> {
    let spec = MetricSpec::find(metric)
        .ok_or_else(|| err("metric", format!("unknown metric {metric:?}")))?;
    let needs_feature = spec.scope == Scope::Feature;
    let per_group_estimate = PER_GROUP_ESTIMATES.contains(&metric) && selector.attribute.is_some();
    if per_group_estimate && selector.group.is_none() {
        return Err(err(
            "group",
            format!("{metric} with an attribute needs a group (the estimate over its rows)"),
        ));
    }
    let needs_attribute =
        matches!(spec.scope, Scope::Attribute | Scope::Group) || per_group_estimate;
    match (&selector.feature, needs_feature) {
        (None, true) => return Err(err("feature", format!("{metric} needs a feature"))),
        (Some(_), false) => {
            return Err(err("feature", format!("{metric} is not a feature metric")))
        }
        _ => {}
    }
    match (&selector.attribute, needs_attribute) {
        (None, true) => return Err(err("attribute", format!("{metric} needs an attribute"))),
        (Some(_), false) => {
            return Err(err(
                "attribute",
                format!("{metric} is not a fairness metric"),
            ))
        }
        _ => {}
    }
    match (&selector.group, spec.scope) {
        (None, Scope::Group) => return Err(err("group", format!("{metric} needs a group"))),
        (Some(_), Scope::Model) if per_group_estimate => {}
        (Some(_), Scope::Model | Scope::Feature | Scope::Attribute) => {
            return Err(err("group", format!("{metric} is not a per-group metric")))
        }
        _ => {}
    }
    if selector.class.is_some() && !PER_CLASS_METRICS.contains(&metric) {
        return Err(err(
            "class",
            format!(
                "{metric} has no per-class form; class applies to {}",
                PER_CLASS_METRICS.join(", ")
            ),
        ));
    }
    if let Some(schema) = schema {
        if let Some(c) = &selector.class {
            if schema.task != crate::schema::Task::Multiclass {
                return Err(err(
                    "class",
                    format!(
                        "model {} is not a multiclass model; class selects one class of a multiclass model",
                        schema.name
                    ),
                ));
            }
            if schema.class_index(c).is_none() {
                return Err(err(
                    "class",
                    format!(
                        "model {} has no class {c:?}; its classes are {:?}",
                        schema.name, schema.classes
                    ),
                ));
            }
        }
        if let Some(f) = &selector.feature {
            if schema.feature_index(f).is_none() {
                return Err(err(
                    "feature",
                    format!("model {} has no feature {f:?}", schema.name),
                ));
            }
        }
        if let Some(a) = &selector.attribute {
            let Some(spec) = schema.fairness_attribute(a) else {
                return Err(err(
                    "attribute",
                    format!(
                        "model {} has no attribute or intersection {a:?}",
                        schema.name
                    ),
                ));
            };
            if let Some(g) = &selector.group {
                if !spec.group_names.contains(g) {
                    return Err(err("group", format!("attribute {a} has no group {g:?}")));
                }
            }
        }
    }
    Ok(spec)
}

/// A metric's value and the number of samples behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The value, or why there is none.
    pub value: Measured,
    /// Samples behind it (events or labelled events, by the metric's basis).
    pub samples: u64,
    /// Confidence interval, for the fairness metrics that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Groups left out of a parity metric for being smaller than `min_group_samples`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub too_small: BTreeMap<String, u64>,
}

/// Whether `metric` comes with a confidence interval (so `breach: significant` can use it).
pub fn has_interval(metric: &str) -> bool {
    matches!(
        metric,
        "selection_rate"
            | "tpr"
            | "fpr"
            | "demographic_parity_difference"
            | "demographic_parity_ratio"
            | "equalized_odds_difference"
            | "equalized_odds_ratio"
            | "equal_opportunity_difference"
            | "equal_opportunity_ratio"
            | "statistical_parity_difference"
            | "disparate_impact"
    )
}

/// Measures a metric as [`measure`] does, except that a fairness metric is computed with the
/// given confidence and `min_group_samples` from the summary's counts (cheap: no drift is
/// recomputed). An objective measures itself through this
/// ([`Objective::measure`](crate::objective::Objective::measure)).
pub fn measure_with_options(
    metric: &str,
    selector: &Selector,
    options: &FairnessOptions,
    schema: &ModelSchema,
    summary: &WindowSummary,
    report: &Report,
) -> Result<Measurement, CatalogueError> {
    let spec = check(metric, selector, None)?;
    let name = selector.attribute.as_deref().unwrap_or_default();
    if !matches!(spec.scope, Scope::Attribute | Scope::Group)
        || in_report(report, name, options)
        || metric.starts_with("estimated_")
    {
        return measure(metric, selector, report);
    }
    let f = super::fairness::attribute(schema, summary, name, options)
        .ok_or_else(|| err("attribute", format!("no attribute {name:?}")))?;
    Ok(measure_fairness(
        metric,
        spec,
        selector,
        &f,
        &report.performance,
    ))
}

/// Whether the report already holds attribute `name` as `options` ask for it: the report
/// computes each attribute at its default confidence and declared minimum group size, so only
/// other options need recomputing.
fn in_report(report: &Report, name: &str, options: &FairnessOptions) -> bool {
    report.fairness.get(name).is_some_and(|f| {
        f.confidence == options.confidence && f.min_group_samples == options.min_group_samples
    })
}

/// Attribute `name`'s fairness as an objective with `options` measures it: the report's own
/// when it was computed with those options, else computed afresh from the summary. The value
/// an objective reads and the figures shown behind it (`why`) come from here alike.
pub fn fairness_for<'r>(
    schema: &ModelSchema,
    summary: &WindowSummary,
    report: &'r Report,
    name: &str,
    options: &FairnessOptions,
) -> Option<std::borrow::Cow<'r, AttributeFairness>> {
    if in_report(report, name, options) {
        return report.fairness.get(name).map(std::borrow::Cow::Borrowed);
    }
    super::fairness::attribute(schema, summary, name, options).map(std::borrow::Cow::Owned)
}

/// Reads one metric out of a computed [`Report`].
pub fn measure(
    metric: &str,
    selector: &Selector,
    report: &Report,
) -> Result<Measurement, CatalogueError> {
    let spec = check(metric, selector, None)?;
    let perf = &report.performance;
    let samples = match spec.basis {
        Basis::Events => perf.events,
        Basis::Labelled => perf.labelled,
    };
    let missing = |what: &str| Measured::undefined(format!("{what} not measured for this model"));
    let value = match spec.scope {
        Scope::Feature => {
            let name = selector.feature.as_deref().unwrap_or_default();
            let drift = report
                .drift
                .get(name)
                .ok_or_else(|| err("feature", format!("no feature {name:?}")))?;
            let quality = report.data_quality.features.get(name);
            match metric {
                "psi" => drift.psi.clone(),
                "ks" => drift
                    .ks
                    .as_ref()
                    .map_or_else(|| missing("ks"), |t| t.statistic.clone()),
                "ks_p_value" => drift
                    .ks
                    .as_ref()
                    .map_or_else(|| missing("ks"), |t| t.p_value.clone()),
                "wasserstein" => drift
                    .wasserstein
                    .clone()
                    .unwrap_or_else(|| missing("wasserstein")),
                "jensen_shannon" => drift.jensen_shannon.clone(),
                "chi2" => drift
                    .chi2
                    .as_ref()
                    .map_or_else(|| missing("chi2"), |t| t.statistic.clone()),
                "chi2_p_value" => drift
                    .chi2
                    .as_ref()
                    .map_or_else(|| missing("chi2"), |t| t.p_value.clone()),
                "hellinger" => drift.hellinger.clone(),
                "kl" => drift.kl.clone(),
                "drift_score" => drift.score.clone(),
                "missing_rate" => {
                    quality.map_or_else(|| missing(metric), |q| q.missing_rate.clone())
                }
                "out_of_range_rate" => quality
                    .and_then(|q| q.out_of_range_rate.clone())
                    .unwrap_or_else(|| missing(metric)),
                "unseen_category_rate" => quality
                    .and_then(|q| q.unseen_category_rate.clone())
                    .unwrap_or_else(|| missing(metric)),
                _ => missing(metric),
            }
        }
        Scope::Model if selector.attribute.is_some() => {
            return Ok(estimated_fairness(metric, selector, report))
        }
        Scope::Model => {
            let c = perf.classification.as_ref();
            let r = perf.regression.as_ref();
            let cls = |f: fn(&super::performance::Classification) -> &Measured| {
                c.map_or_else(|| missing(metric), |c| f(c).clone())
            };
            let reg = |f: fn(&super::performance::Regression) -> &Measured| {
                r.map_or_else(|| missing(metric), |r| f(r).clone())
            };
            if let Some(class) = &selector.class {
                return Ok(Measurement {
                    value: per_class_performance(metric, class, c),
                    samples,
                    interval: None,
                    too_small: BTreeMap::new(),
                });
            }
            match metric {
                "dataset_drift_share" => report.dataset_drift.share.clone(),
                "rejected_rate" => report.data_quality.rejected_rate.clone(),
                "accuracy" => cls(|c| &c.accuracy),
                "precision" => cls(|c| &c.precision),
                "recall" => cls(|c| &c.recall),
                "f1" => cls(|c| &c.f1),
                "roc_auc" => cls(|c| &c.roc_auc),
                "log_loss" => cls(|c| &c.log_loss),
                "brier" => cls(|c| &c.brier),
                "mae" => reg(|r| &r.mae),
                "rmse" => reg(|r| &r.rmse),
                "mape" => reg(|r| &r.mape),
                "r2" => reg(|r| &r.r2),
                "label_coverage" => perf.label_coverage.clone(),
                "error_rate" => perf.error_rate.clone(),
                "estimated_accuracy"
                | "estimated_precision"
                | "estimated_recall"
                | "estimated_f1"
                | "estimated_roc_auc" => report.estimated.as_ref().map_or_else(
                    || missing(metric),
                    |e| {
                        let e = &e.estimates;
                        let v = match metric {
                            "estimated_accuracy" => Some(e.accuracy),
                            "estimated_precision" => Some(e.precision),
                            "estimated_recall" => Some(e.recall),
                            "estimated_f1" => Some(e.f1),
                            _ => e.roc_auc,
                        };
                        v.map_or_else(
                            || Measured::undefined("needs scores of both expected classes"),
                            |v| Measured::finite(v.value, "not computable"),
                        )
                    },
                ),
                "reconstruction_error" => report
                    .reconstruction
                    .as_ref()
                    .map_or_else(|| missing(metric), |r| r.value.clone()),
                "latency_p50" => report.latency.p50.clone(),
                "latency_p90" => report.latency.p90.clone(),
                "latency_p99" => report.latency.p99.clone(),
                "throughput" => perf.throughput.clone(),
                _ => missing(metric),
            }
        }
        Scope::Attribute | Scope::Group if metric.starts_with("estimated_") => {
            return Ok(estimated_fairness(metric, selector, report))
        }
        Scope::Attribute | Scope::Group => {
            let name = selector.attribute.as_deref().unwrap_or_default();
            let f = report
                .fairness
                .get(name)
                .ok_or_else(|| err("attribute", format!("no attribute {name:?}")))?;
            return Ok(measure_fairness(metric, spec, selector, f, perf));
        }
    };
    Ok(Measurement {
        value,
        samples,
        interval: None,
        too_small: BTreeMap::new(),
    })
}

/// A CBPE estimate over one group's rows (`estimated_accuracy` … `estimated_f1` with a group,
/// `estimated_tpr`, `estimated_fpr`), or the estimated TPR / FPR parity across the groups
/// with rows (`other` included, as the realised fairness metrics count it). Samples are the
/// group's rows, or all rows for a parity.
fn estimated_fairness(metric: &str, selector: &Selector, report: &Report) -> Measurement {
    let attribute = selector.attribute.as_deref().unwrap_or_default();
    let events = report.performance.events;
    let done = |value: Measured, samples: u64| Measurement {
        value,
        samples,
        interval: None,
        too_small: BTreeMap::new(),
    };
    let Some(e) = report.estimated.as_ref() else {
        return done(
            Measured::undefined(format!("{metric} not measured for this model")),
            events,
        );
    };
    let Some(groups) = e.groups.get(attribute) else {
        return done(
            Measured::undefined(format!(
                "no per-group CBPE sums for attribute {attribute:?} in the window"
            )),
            events,
        );
    };
    if let Some(group) = &selector.group {
        let Some(g) = groups.get(group) else {
            return done(
                Measured::undefined(format!(
                    "group {group:?} has no scored predictions in the window"
                )),
                0,
            );
        };
        let v = match metric {
            "estimated_accuracy" => g.accuracy,
            "estimated_precision" => g.precision,
            "estimated_recall" | "estimated_tpr" => g.recall,
            "estimated_f1" => g.f1,
            _ => g.fpr,
        };
        return done(Measured::finite(v.value, "not computable"), g.rows);
    }
    let spread = |f: fn(&crate::cbpe::GroupEstimates) -> f64| -> Option<f64> {
        let values: Vec<f64> = groups.values().map(f).collect();
        let max = values.iter().copied().reduce(f64::max)?;
        let min = values.iter().copied().reduce(f64::min)?;
        (values.len() >= 2).then_some(max - min)
    };
    let tpr = spread(|g| g.recall.value);
    let value = if metric == "estimated_equal_opportunity_difference" {
        tpr
    } else {
        tpr.zip(spread(|g| g.fpr.value)).map(|(a, b)| a.max(b))
    };
    done(
        value.map_or_else(
            || Measured::undefined("needs two groups with scored predictions"),
            |v| Measured::finite(v, "not computable"),
        ),
        events,
    )
}

/// Precision, recall, F1 or one-vs-rest ROC AUC of one class of a multiclass model.
fn per_class_performance(
    metric: &str,
    class: &str,
    c: Option<&super::performance::Classification>,
) -> Measured {
    let Some(m) = c.and_then(|c| c.multiclass.as_ref()) else {
        return Measured::undefined("per-class metrics need a multiclass model");
    };
    let Some(k) = m.per_class.get(class) else {
        return Measured::undefined(format!("no class {class:?} in the report"));
    };
    match metric {
        "precision" => k.precision.clone(),
        "recall" => k.recall.clone(),
        "f1" => k.f1.clone(),
        "roc_auc" => k.roc_auc.clone(),
        _ => Measured::undefined(format!("{metric} has no per-class form")),
    }
}

/// A fairness metric of one class of a multiclass model: a group's rate of predicting it, or the
/// parity of those rates. No interval is computed per class.
fn class_fairness(
    metric: &str,
    class: &str,
    selector: &Selector,
    f: &AttributeFairness,
) -> (Measured, Option<u64>) {
    let Some(p) = f.per_class.get(class) else {
        let why = "per-class rates need a multiclass model's per-group class counts";
        return (Measured::undefined(why), None);
    };
    match (&selector.group, metric) {
        (Some(group), "selection_rate") => match p.selection_rate.get(group) {
            Some(v) => (v.clone(), f.groups.get(group).map(|g| g.n)),
            None => (
                Measured::undefined(format!("group {group:?} has no predictions in the window")),
                Some(0),
            ),
        },
        (None, "demographic_parity_difference") => (p.demographic_parity_difference.clone(), None),
        (None, "demographic_parity_ratio") => (p.demographic_parity_ratio.clone(), None),
        _ => (
            Measured::undefined(format!("{metric} has no per-class form")),
            None,
        ),
    }
}

/// A fairness metric of one attribute, with its interval and the groups left out.
fn measure_fairness(
    metric: &str,
    spec: &MetricSpec,
    selector: &Selector,
    f: &AttributeFairness,
    perf: &Performance,
) -> Measurement {
    let missing = |what: &str| Measured::undefined(format!("{what} not measured for this model"));
    let mut samples = match spec.basis {
        Basis::Events => perf.events,
        Basis::Labelled => perf.labelled,
    };
    if let Some(class) = &selector.class {
        let (value, group_samples) = class_fairness(metric, class, selector, f);
        let too_small = if selector.group.is_some() {
            BTreeMap::new()
        } else {
            f.too_small.clone()
        };
        return Measurement {
            value,
            samples: group_samples.unwrap_or(samples),
            interval: None,
            too_small,
        };
    }
    let (value, interval, too_small) = if let Some(group) = &selector.group {
        match f.groups.get(group) {
            None => {
                samples = 0;
                let u = Measured::undefined(format!(
                    "group {group:?} has no predictions in the window"
                ));
                (u, None, BTreeMap::new())
            }
            Some(g) => {
                samples = match spec.basis {
                    Basis::Events => g.n,
                    Basis::Labelled => g.labelled,
                };
                let (v, i) = match metric {
                    "selection_rate" => (g.selection_rate.clone(), g.selection_rate_interval),
                    "tpr" => (g.tpr.clone(), g.tpr_interval),
                    "fpr" => (g.fpr.clone(), g.fpr_interval),
                    _ => (missing(metric), None),
                };
                (v, i, BTreeMap::new())
            }
        }
    } else {
        let value = match metric {
            "demographic_parity_difference" => f.demographic_parity_difference.clone(),
            "demographic_parity_ratio" => f.demographic_parity_ratio.clone(),
            "equalized_odds_difference" => f.equalized_odds_difference.clone(),
            "equalized_odds_ratio" => f.equalized_odds_ratio.clone(),
            "equal_opportunity_difference" => f.equal_opportunity_difference.clone(),
            "equal_opportunity_ratio" => f.equal_opportunity_ratio.clone(),
            "statistical_parity_difference" => f.statistical_parity_difference.clone(),
            "disparate_impact" => f.disparate_impact.clone(),
            _ => missing(metric),
        };
        let interval = f.intervals.get(metric).map(|p| p.interval);
        (value, interval, f.too_small.clone())
    };
    Measurement {
        value,
        samples,
        interval,
        too_small,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_checked_against_the_metric() {
        let none = Selector::default();
        assert!(check("accuracy", &none, None).is_ok());
        assert_eq!(check("psi", &none, None).unwrap_err().field, "feature");
        assert_eq!(check("nope", &none, None).unwrap_err().field, "metric");
        let attr = Selector {
            attribute: Some("gender".into()),
            ..Selector::default()
        };
        assert!(check("demographic_parity_ratio", &attr, None).is_ok());
        assert_eq!(check("tpr", &attr, None).unwrap_err().field, "group");
        assert_eq!(
            check("accuracy", &attr, None).unwrap_err().field,
            "attribute"
        );
    }

    #[test]
    fn catalogue_names_are_unique() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
    }
}
