//! Fairness per protected attribute: per-group rates and the parity metrics, as Fairlearn's
//! `MetricFrame` defines them (and AIF360's signed metrics against a declared reference group).
//!
//! Only groups that occur in the window take part, as in Fairlearn. A group whose rate is
//! undefined (no labelled positives for TPR, say) is left out of that rate's parity metrics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::intervals::{
    bonferroni, katz, newcombe, wilson, Interval, Proportion, DEFAULT_CONFIDENCE,
};
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
    /// Wilson interval of the selection rate (unadjusted confidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_rate_interval: Option<Interval>,
    /// Wilson interval of the TPR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpr_interval: Option<Interval>,
    /// Wilson interval of the FPR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpr_interval: Option<Interval>,
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
    /// Intervals of the parity metrics above, at Bonferroni-adjusted confidence.
    #[serde(default)]
    pub intervals: ParityIntervals,
    /// The confidence the intervals were asked for, before adjustment.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// The minimum group size applied.
    #[serde(default)]
    pub min_group_samples: u64,
    /// Groups left out of the parity metrics for having fewer than `min_group_samples`
    /// predictions, with their counts (their own rates are still in `groups`).
    #[serde(default)]
    pub too_small: BTreeMap<String, u64>,
}

fn default_confidence() -> f64 {
    DEFAULT_CONFIDENCE
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
    occurring: &[(&String, &GroupStats)],
) -> BTreeMap<String, ClassParity> {
    let k = schema.classes.len();
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
                .map(|(name, g)| {
                    let rate =
                        Measured::ratio(g.predicted[c] as f64, g.count as f64, "no predictions");
                    ((*name).clone(), rate)
                })
                .collect();
            let counts: Vec<(String, Proportion)> = occurring
                .iter()
                .map(|(name, g)| {
                    let p = Proportion {
                        count: g.predicted[c],
                        nobs: g.count,
                    };
                    ((*name).clone(), p)
                })
                .collect();
            let s = spread(&counts, "selection rate", 1.0 - DEFAULT_CONFIDENCE);
            let parity = ClassParity {
                selection_rate,
                demographic_parity_difference: s.difference,
                demographic_parity_ratio: s.ratio,
            };
            (class.clone(), parity)
        })
        .collect()
}

/// Fairness options: the confidence of the intervals and the minimum group size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FairnessOptions {
    /// Confidence of every interval before Bonferroni's adjustment (0.95 by default).
    pub confidence: f64,
    /// Groups with fewer predictions than this are left out of the parity metrics and listed
    /// as too small (0 by default: every occurring group takes part).
    pub min_group_samples: u64,
}

impl Default for FairnessOptions {
    fn default() -> Self {
        Self {
            confidence: DEFAULT_CONFIDENCE,
            min_group_samples: 0,
        }
    }
}

impl FairnessOptions {
    fn alpha(&self) -> f64 {
        1.0 - self.confidence
    }
}

/// The interval of a parity metric and the two groups it compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityInterval {
    /// Bounds, with the Bonferroni-adjusted confidence.
    #[serde(flatten)]
    pub interval: Interval,
    /// The compared groups: (highest, lowest) for max − min and min / max metrics (the ratio
    /// is lowest / highest), (group, reference) for the signed metrics.
    pub between: [String; 2],
    /// How many groups took part (the Bonferroni m).
    pub groups: usize,
}

/// Intervals of the parity metrics; a metric without an interval is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParityIntervals {
    /// Newcombe interval of the max − min selection rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic_parity_difference: Option<ParityInterval>,
    /// Katz interval of the min / max selection rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic_parity_ratio: Option<ParityInterval>,
    /// Interval of whichever of the TPR and FPR differences is worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equalized_odds_difference: Option<ParityInterval>,
    /// Interval of whichever of the TPR and FPR ratios is worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equalized_odds_ratio: Option<ParityInterval>,
    /// Newcombe interval of the max − min TPR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_opportunity_difference: Option<ParityInterval>,
    /// Katz interval of the min / max TPR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_opportunity_ratio: Option<ParityInterval>,
    /// Newcombe interval of the worst group's selection rate minus the reference group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistical_parity_difference: Option<ParityInterval>,
    /// Katz interval of the worst group's selection rate over the reference group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disparate_impact: Option<ParityInterval>,
}

impl ParityIntervals {
    /// The interval of a parity metric by its catalogue name.
    pub fn get(&self, metric: &str) -> Option<&ParityInterval> {
        match metric {
            "demographic_parity_difference" => self.demographic_parity_difference.as_ref(),
            "demographic_parity_ratio" => self.demographic_parity_ratio.as_ref(),
            "equalized_odds_difference" => self.equalized_odds_difference.as_ref(),
            "equalized_odds_ratio" => self.equalized_odds_ratio.as_ref(),
            "equal_opportunity_difference" => self.equal_opportunity_difference.as_ref(),
            "equal_opportunity_ratio" => self.equal_opportunity_ratio.as_ref(),
            "statistical_parity_difference" => self.statistical_parity_difference.as_ref(),
            "disparate_impact" => self.disparate_impact.as_ref(),
            _ => None,
        }
    }
}

struct Spread {
    difference: Measured,
    ratio: Measured,
    difference_interval: Option<ParityInterval>,
    ratio_interval: Option<ParityInterval>,
}

/// Fairlearn's `difference()` and `ratio()` over the groups where a rate is defined, with
/// Newcombe and Katz intervals between the highest and the lowest group at alpha / m.
fn spread(rates: &[(String, Proportion)], what: &str, alpha: f64) -> Spread {
    let defined: Vec<(&String, Proportion, f64)> = rates
        .iter()
        .filter_map(|(name, p)| p.rate().map(|r| (name, *p, r)))
        .collect();
    let Some(first) = defined.first() else {
        let u = Measured::undefined(format!("no group has a defined {what}"));
        return Spread {
            difference: u.clone(),
            ratio: u,
            difference_interval: None,
            ratio_interval: None,
        };
    };
    let (mut hi, mut lo) = (first, first);
    for d in &defined {
        if d.2 > hi.2 {
            hi = d;
        }
        if d.2 < lo.2 {
            lo = d;
        }
    }
    let m = defined.len();
    let a = bonferroni(alpha, m);
    let between = [hi.0.clone(), lo.0.clone()];
    let pair = |i: Option<Interval>| {
        i.filter(|_| m >= 2).map(|interval| ParityInterval {
            interval,
            between: between.clone(),
            groups: m,
        })
    };
    let (max, min) = (hi.2, lo.2);
    Spread {
        difference: Measured::Value(max - min),
        ratio: if max == 0.0 {
            Measured::undefined(format!("every group's {what} is zero"))
        } else {
            Measured::Value(min / max)
        },
        difference_interval: pair(newcombe(hi.1, lo.1, a)),
        ratio_interval: if max == 0.0 {
            None
        } else {
            pair(katz(lo.1, hi.1, a))
        },
    }
}

/// The worse of two metric values, with the interval of the one chosen.
fn worst(
    a: (&Measured, &Option<ParityInterval>),
    b: (&Measured, &Option<ParityInterval>),
    larger_is_worse: bool,
) -> (Measured, Option<ParityInterval>) {
    match (a.0.value(), b.0.value()) {
        (Some(x), Some(y)) => {
            let a_worse = if larger_is_worse { x >= y } else { x <= y };
            if a_worse {
                (a.0.clone(), a.1.clone())
            } else {
                (b.0.clone(), b.1.clone())
            }
        }
        (Some(_), None) => (b.0.clone(), b.1.clone()),
        (None, _) => (a.0.clone(), a.1.clone()),
    }
}

fn group_rates(g: &GroupStats, task: Task, alpha: f64) -> GroupFairness {
    let regression = task == Task::Regression;
    let not_classification = || Measured::undefined("not a classification model");
    let interval = |p: Proportion| if regression { None } else { wilson(p, alpha) };
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
        selection_rate_interval: interval(selection(g)),
        tpr_interval: interval(tpr(g)),
        fpr_interval: interval(fpr(g)),
    }
}

fn selection(g: &GroupStats) -> Proportion {
    Proportion {
        count: g.selected,
        nobs: g.count,
    }
}

fn tpr(g: &GroupStats) -> Proportion {
    Proportion {
        count: g.tp,
        nobs: g.tp + g.fn_,
    }
}

fn fpr(g: &GroupStats) -> Proportion {
    Proportion {
        count: g.fp,
        nobs: g.fp + g.tn,
    }
}

/// One fairness attribute as the metrics see it: a declared attribute or an intersection of
/// several, with a name per bucket.
pub struct GroupedCounts<'a> {
    /// The attribute (or intersection) name.
    pub name: String,
    /// Name of each bucket, in the order of `stats`.
    pub group_names: Vec<String>,
    /// The reference group for the signed metrics, if declared.
    pub reference_group: Option<String>,
    /// Counts per bucket.
    pub stats: &'a [GroupStats],
    /// The minimum group size the schema declares for it, if any.
    pub min_group_samples: Option<u64>,
}

/// Every fairness attribute of `summary`: the declared attributes, then the declared
/// intersections (named `gender*age_band`, cells `F*18-29`), all of the same shape.
pub fn grouped_counts<'a>(
    schema: &ModelSchema,
    summary: &'a WindowSummary,
) -> Vec<GroupedCounts<'a>> {
    let buckets = summary
        .groups
        .iter()
        .map(Vec::as_slice)
        .chain(summary.intersections.iter().map(|x| x.cells.as_slice()));
    schema
        .fairness_attributes()
        .into_iter()
        .zip(buckets)
        .filter(|(a, stats)| a.group_names.len() == stats.len())
        .map(|(a, stats)| GroupedCounts {
            name: a.name,
            group_names: a.group_names,
            reference_group: a.reference_group,
            stats,
            min_group_samples: a.min_group_samples,
        })
        .collect()
}

/// Fairness of every attribute (and intersection) with the default confidence and each one's
/// declared `min_group_samples`: what a report shows.
pub fn fairness(
    schema: &ModelSchema,
    summary: &WindowSummary,
) -> BTreeMap<String, AttributeFairness> {
    grouped_counts(schema, summary)
        .iter()
        .map(|a| {
            let options = FairnessOptions {
                min_group_samples: a.min_group_samples.unwrap_or(0),
                ..FairnessOptions::default()
            };
            (a.name.clone(), attribute_fairness(schema, a, &options))
        })
        .collect()
}

/// Fairness of every attribute, keyed by name, all with `options`.
pub fn fairness_with(
    schema: &ModelSchema,
    summary: &WindowSummary,
    options: &FairnessOptions,
) -> BTreeMap<String, AttributeFairness> {
    grouped_counts(schema, summary)
        .iter()
        .map(|a| (a.name.clone(), attribute_fairness(schema, a, options)))
        .collect()
}

/// Fairness of one attribute by name, with `options`; `None` when the schema
/// has no such attribute.
pub fn attribute(
    schema: &ModelSchema,
    summary: &WindowSummary,
    name: &str,
    options: &FairnessOptions,
) -> Option<AttributeFairness> {
    grouped_counts(schema, summary)
        .iter()
        .find(|a| a.name == name)
        .map(|a| attribute_fairness(schema, a, options))
}

/// Fairness of one attribute: per-group rates with Wilson intervals, and the parity metrics
/// over the groups of at least `min_group_samples` predictions, with Newcombe and Katz
/// intervals at Bonferroni-adjusted confidence.
pub fn attribute_fairness(
    schema: &ModelSchema,
    a: &GroupedCounts<'_>,
    options: &FairnessOptions,
) -> AttributeFairness {
    let alpha = options.alpha();
    let occurring: Vec<(&String, &GroupStats)> = a
        .group_names
        .iter()
        .zip(a.stats)
        .filter(|(_, g)| g.count > 0)
        .collect();
    let mut groups: BTreeMap<String, GroupFairness> = occurring
        .iter()
        .map(|(name, g)| ((*name).clone(), group_rates(g, schema.task, alpha)))
        .collect();
    let too_small: BTreeMap<String, u64> = occurring
        .iter()
        .filter(|(_, g)| g.count < options.min_group_samples)
        .map(|(name, g)| ((*name).clone(), g.count))
        .collect();
    let compared: Vec<(&String, &GroupStats)> = occurring
        .iter()
        .copied()
        .filter(|(name, _)| !too_small.contains_key(*name))
        .collect();
    let regression = schema.task == Task::Regression;
    let props = |f: fn(&GroupStats) -> Proportion| -> Vec<(String, Proportion)> {
        compared
            .iter()
            .map(|(name, g)| {
                let p = if regression {
                    Proportion { count: 0, nobs: 0 }
                } else {
                    f(g)
                };
                ((*name).clone(), p)
            })
            .collect()
    };
    let sr = spread(&props(selection), "selection rate", alpha);
    let tp = spread(&props(tpr), "true positive rate", alpha);
    let fp = spread(&props(fpr), "false positive rate", alpha);

    let mut intervals = ParityIntervals::default();
    let (spd, di) = signed(
        a,
        &compared,
        &mut groups,
        &too_small,
        regression,
        alpha,
        &mut intervals,
    );
    let (eod, eod_i) = worst(
        (&tp.difference, &tp.difference_interval),
        (&fp.difference, &fp.difference_interval),
        true,
    );
    let (eor, eor_i) = worst(
        (&tp.ratio, &tp.ratio_interval),
        (&fp.ratio, &fp.ratio_interval),
        false,
    );
    intervals.demographic_parity_difference = sr.difference_interval;
    intervals.demographic_parity_ratio = sr.ratio_interval;
    intervals.equalized_odds_difference = eod_i;
    intervals.equalized_odds_ratio = eor_i;
    intervals.equal_opportunity_difference = tp.difference_interval;
    intervals.equal_opportunity_ratio = tp.ratio_interval;
    AttributeFairness {
        demographic_parity_difference: sr.difference,
        demographic_parity_ratio: sr.ratio,
        equalized_odds_difference: eod,
        equalized_odds_ratio: eor,
        equal_opportunity_difference: tp.difference,
        equal_opportunity_ratio: tp.ratio,
        reference_group: a.reference_group.clone(),
        statistical_parity_difference: spd,
        disparate_impact: di,
        per_class: per_class(schema, &compared),
        groups,
        intervals,
        confidence: options.confidence,
        min_group_samples: options.min_group_samples,
        too_small,
    }
}

/// AIF360's signed metrics of each compared group against the reference group; the worst of
/// each (with its interval at alpha / (m − 1)) is returned.
fn signed(
    a: &GroupedCounts<'_>,
    compared: &[(&String, &GroupStats)],
    groups: &mut BTreeMap<String, GroupFairness>,
    too_small: &BTreeMap<String, u64>,
    regression: bool,
    alpha: f64,
    intervals: &mut ParityIntervals,
) -> (Measured, Measured) {
    let both = |reason: &str| (Measured::undefined(reason), Measured::undefined(reason));
    let Some(reference) = &a.reference_group else {
        return both("the attribute declares no reference_group");
    };
    if too_small.contains_key(reference) {
        return both("the reference group has fewer predictions than min_group_samples");
    }
    let Some((_, rg)) = compared.iter().find(|(n, _)| *n == reference) else {
        return both("the reference group has no predictions");
    };
    if regression {
        return both("selection rate undefined");
    }
    let r = selection(rg);
    let others: Vec<(&String, Proportion)> = compared
        .iter()
        .filter(|(n, _)| *n != reference)
        .map(|(n, g)| (*n, selection(g)))
        .collect();
    let m = others.len();
    let adjusted = bonferroni(alpha, m);
    let mut worst_spd: Option<(f64, &String, Proportion)> = None;
    let mut worst_di: Option<(f64, &String, Proportion)> = None;
    for (name, p) in &others {
        let (Some(s), Some(rr)) = (p.rate(), r.rate()) else {
            continue;
        };
        let spd = Measured::Value(s - rr);
        let di = Measured::ratio(s, rr, "the reference group selects no one");
        if let Some(v) = spd.value() {
            if worst_spd.is_none_or(|w| v < w.0) {
                worst_spd = Some((v, name, *p));
            }
        }
        if let Some(v) = di.value() {
            if worst_di.is_none_or(|w| v < w.0) {
                worst_di = Some((v, name, *p));
            }
        }
        if let Some(g) = groups.get_mut(*name) {
            g.statistical_parity_difference = Some(spd);
            g.disparate_impact = Some(di);
        }
    }
    let pair = |w: &(f64, &String, Proportion), i: Option<Interval>| {
        i.map(|interval| ParityInterval {
            interval,
            between: [w.1.clone(), reference.clone()],
            groups: m,
        })
    };
    intervals.statistical_parity_difference = worst_spd
        .as_ref()
        .and_then(|w| pair(w, newcombe(w.2, r, adjusted)));
    intervals.disparate_impact = worst_di
        .as_ref()
        .and_then(|w| pair(w, katz(w.2, r, adjusted)));
    let none = || Measured::undefined("no other group to compare");
    (
        worst_spd.map_or_else(none, |w| Measured::Value(w.0)),
        worst_di.map_or_else(none, |w| Measured::Value(w.0)),
    )
}
