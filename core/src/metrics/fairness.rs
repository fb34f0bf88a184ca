//! Fairness per protected attribute: per-group rates and the parity metrics, as Fairlearn's
//! `MetricFrame` defines them (and AIF360's signed metrics against a declared reference group).
//!
//! Only groups that occur in the window take part, as in Fairlearn. A group whose rate is
//! undefined (no labelled positives for TPR, say) is left out of that rate's parity metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Measured;
use crate::schema::{ModelSchema, Task};
use crate::summary::{GroupStats, WindowSummary};

/// Rates of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFairness {
    /// Predictions for the group.
    pub n: u64,
    /// Labelled predictions for the group.
    pub labelled: u64,
    /// Share predicted positive.
    pub selection_rate: Measured,
    /// True positive rate (recall of the positive class).
    pub tpr: Measured,
    /// False positive rate.
    pub fpr: Measured,
    /// Mean absolute error (regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<Measured>,
    /// AIF360 statistical parity difference against the reference group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistical_parity_difference: Option<Measured>,
    /// AIF360 disparate impact against the reference group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disparate_impact: Option<Measured>,
}

/// Fairness of one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeFairness {
    /// Per group that occurs in the window.
    pub groups: BTreeMap<String, GroupFairness>,
    /// Max − min selection rate.
    pub demographic_parity_difference: Measured,
    /// Min / max selection rate.
    pub demographic_parity_ratio: Measured,
    /// Worst of the TPR and FPR differences.
    pub equalized_odds_difference: Measured,
    /// Worst of the TPR and FPR ratios.
    pub equalized_odds_ratio: Measured,
    /// Max − min TPR.
    pub equal_opportunity_difference: Measured,
    /// Min / max TPR.
    pub equal_opportunity_ratio: Measured,
    /// The reference group the signed metrics compare against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_group: Option<String>,
    /// Worst (lowest) statistical parity difference over the other groups.
    pub statistical_parity_difference: Measured,
    /// Worst (lowest) disparate impact over the other groups.
    pub disparate_impact: Measured,
    /// Multiclass models: per class, each group's rate of predicting it and the parity of those
    /// rates (the fields above treat the positive class one-vs-rest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_class: BTreeMap<String, ClassParity>,
}

/// Demographic parity of one class of a multiclass model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassParity {
    /// Per group that occurs, the share of its predictions that are this class.
    pub selection_rate: BTreeMap<String, Measured>,
    /// Max − min selection rate of this class.
    pub demographic_parity_difference: Measured,
    /// Min / max selection rate of this class.
    pub demographic_parity_ratio: Measured,
}

/// Per class, the groups' selection rates of it and their spread; empty unless the summary
/// counts predictions per class and group.
fn per_class(
    schema: &ModelSchema,
    spec: &crate::schema::AttributeSpec,
    stats: &[GroupStats],
) -> BTreeMap<String, ClassParity> {
    let k = schema.classes.len();
    let occurring: Vec<(usize, &GroupStats)> = stats
        .iter()
        .enumerate()
        .filter(|(_, g)| g.count > 0)
        .collect();
    if schema.task != Task::Multiclass || occurring.iter().any(|(_, g)| g.predicted.len() != k) {
        return BTreeMap::new();
    }
    schema
        .classes
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let selection_rate: BTreeMap<String, Measured> = occurring
                .iter()
                .map(|(i, g)| {
                    let rate =
                        Measured::ratio(g.predicted[c] as f64, g.count as f64, "no predictions");
                    (spec.group_name(*i).to_owned(), rate)
                })
                .collect();
            let rates: Vec<Measured> = selection_rate.values().cloned().collect();
            let s = spread(&rates, "selection rate");
            let parity = ClassParity {
                selection_rate,
                demographic_parity_difference: s.difference,
                demographic_parity_ratio: s.ratio,
            };
            (class.clone(), parity)
        })
        .collect()
}

struct Spread {
    difference: Measured,
    ratio: Measured,
}

/// Fairlearn's `difference()` and `ratio()` over the groups where a rate is defined.
fn spread(values: &[Measured], what: &str) -> Spread {
    let defined: Vec<f64> = values.iter().filter_map(Measured::value).collect();
    if defined.is_empty() {
        let u = Measured::undefined(format!("no group has a defined {what}"));
        return Spread {
            difference: u.clone(),
            ratio: u,
        };
    }
    let max = defined.iter().copied().fold(f64::MIN, f64::max);
    let min = defined.iter().copied().fold(f64::MAX, f64::min);
    Spread {
        difference: Measured::Value(max - min),
        ratio: if max == 0.0 {
            Measured::undefined(format!("every group's {what} is zero"))
        } else {
            Measured::Value(min / max)
        },
    }
}

fn worst(a: &Measured, b: &Measured, larger_is_worse: bool) -> Measured {
    match (a.value(), b.value()) {
        (Some(x), Some(y)) => Measured::Value(if larger_is_worse { x.max(y) } else { x.min(y) }),
        (Some(_), None) => b.clone(),
        (None, _) => a.clone(),
    }
}

fn group_rates(g: &GroupStats, task: Task) -> GroupFairness {
    let regression = task == Task::Regression;
    let not_classification = || Measured::undefined("not a classification model");
    GroupFairness {
        n: g.count,
        labelled: g.labelled,
        selection_rate: if regression {
            not_classification()
        } else {
            Measured::ratio(g.selected as f64, g.count as f64, "no predictions")
        },
        tpr: if regression {
            not_classification()
        } else {
            Measured::ratio(g.tp as f64, (g.tp + g.fn_) as f64, "no labelled positives")
        },
        fpr: if regression {
            not_classification()
        } else {
            Measured::ratio(g.fp as f64, (g.fp + g.tn) as f64, "no labelled negatives")
        },
        mae: regression.then(|| Measured::ratio(g.abs_error, g.labelled as f64, "no labels")),
        statistical_parity_difference: None,
        disparate_impact: None,
    }
}

/// Fairness of every attribute, keyed by attribute name.
pub fn fairness(
    schema: &ModelSchema,
    summary: &WindowSummary,
) -> BTreeMap<String, AttributeFairness> {
    schema
        .attributes
        .iter()
        .zip(&summary.groups)
        .map(|(spec, stats)| {
            let mut groups: BTreeMap<String, GroupFairness> = stats
                .iter()
                .enumerate()
                .filter(|(_, g)| g.count > 0)
                .map(|(i, g)| (spec.group_name(i).to_owned(), group_rates(g, schema.task)))
                .collect();
            let rates = |f: fn(&GroupFairness) -> &Measured| -> Vec<Measured> {
                groups.values().map(|g| f(g).clone()).collect()
            };
            let sr = spread(&rates(|g| &g.selection_rate), "selection rate");
            let tpr = spread(&rates(|g| &g.tpr), "true positive rate");
            let fpr = spread(&rates(|g| &g.fpr), "false positive rate");

            let reference_rate = spec
                .reference_group
                .as_ref()
                .map(|r| groups.get(r).map(|g| g.selection_rate.clone()));
            let (mut worst_spd, mut worst_di) = (None::<f64>, None::<f64>);
            let (spd, di) = match &reference_rate {
                None => (
                    Measured::undefined("the attribute declares no reference_group"),
                    Measured::undefined("the attribute declares no reference_group"),
                ),
                Some(None) => (
                    Measured::undefined("the reference group has no predictions"),
                    Measured::undefined("the reference group has no predictions"),
                ),
                Some(Some(reference)) => {
                    let r = reference.value();
                    for (name, g) in groups.iter_mut() {
                        if Some(name) == spec.reference_group.as_ref() {
                            continue;
                        }
                        let s = g.selection_rate.value();
                        let spd = match (s, r) {
                            (Some(s), Some(r)) => Measured::Value(s - r),
                            _ => Measured::undefined("selection rate undefined"),
                        };
                        let di = match (s, r) {
                            (Some(s), Some(r)) => {
                                Measured::ratio(s, r, "the reference group selects no one")
                            }
                            _ => Measured::undefined("selection rate undefined"),
                        };
                        if let Some(v) = spd.value() {
                            worst_spd = Some(worst_spd.map_or(v, |w| w.min(v)));
                        }
                        if let Some(v) = di.value() {
                            worst_di = Some(worst_di.map_or(v, |w| w.min(v)));
                        }
                        g.statistical_parity_difference = Some(spd);
                        g.disparate_impact = Some(di);
                    }
                    (
                        worst_spd.map_or_else(
                            || Measured::undefined("no other group to compare"),
                            Measured::Value,
                        ),
                        worst_di.map_or_else(
                            || Measured::undefined("no other group to compare"),
                            Measured::Value,
                        ),
                    )
                }
            };
            let fairness = AttributeFairness {
                demographic_parity_difference: sr.difference,
                demographic_parity_ratio: sr.ratio,
                equalized_odds_difference: worst(&tpr.difference, &fpr.difference, true),
                equalized_odds_ratio: worst(&tpr.ratio, &fpr.ratio, false),
                equal_opportunity_difference: tpr.difference,
                equal_opportunity_ratio: tpr.ratio,
                reference_group: spec.reference_group.clone(),
                statistical_parity_difference: spd,
                disparate_impact: di,
                per_class: per_class(schema, spec, stats),
                groups,
            };
            (spec.name.clone(), fairness)
        })
        .collect()
}
