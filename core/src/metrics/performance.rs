//! Model performance (scikit-learn definitions), label coverage, serving errors, throughput and
//! latency quantiles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Measured;
use crate::schema::{ModelSchema, Task};
use crate::summary::{PerformanceStats, WindowSummary};

/// Performance of the model over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// Events in the window.
    pub events: u64,
    /// Events with a ground-truth label.
    pub labelled: u64,
    /// Share of events with a label.
    pub label_coverage: Measured,
    /// Share of events that report a serving error.
    pub error_rate: Measured,
    /// Events per second.
    pub throughput: Measured,
    /// Classification metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Regression metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
}

/// Classification metrics (binary: of the positive class; multiclass: macro averages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Share of correct predictions.
    pub accuracy: Measured,
    /// Precision.
    pub precision: Measured,
    /// Recall.
    pub recall: Measured,
    /// F1 score.
    pub f1: Measured,
    /// Area under the ROC curve, from binned scores (binary).
    pub roc_auc: Measured,
    /// Mean log loss of the positive-class score (binary).
    pub log_loss: Measured,
    /// Brier score (binary).
    pub brier: Measured,
    /// Multiclass models: averages and per-class values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiclass: Option<Multiclass>,
}

/// Precision, recall and F1, averaged one way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Averaged {
    /// Precision.
    pub precision: Measured,
    /// Recall.
    pub recall: Measured,
    /// F1 score.
    pub f1: Measured,
}

/// One class, one-vs-rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Labelled events of this class.
    pub support: u64,
    /// Precision.
    pub precision: Measured,
    /// Recall.
    pub recall: Measured,
    /// F1 score.
    pub f1: Measured,
    /// ROC AUC of this class's probability against the rest, from binned probabilities.
    pub roc_auc: Measured,
}

/// Multiclass metrics as scikit-learn's `precision_recall_fscore_support` (averages `macro`,
/// `weighted`, `micro`) and `roc_auc_score(multi_class="ovr")` define them.
///
/// A class whose precision or recall is undefined (never predicted, or absent from the labels)
/// is left out of the macro and weighted averages; scikit-learn counts it as 0
/// (`zero_division`). The two agree whenever every class is predicted and labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Multiclass {
    /// Unweighted mean over classes.
    #[serde(rename = "macro")]
    pub macro_avg: Averaged,
    /// Mean over classes weighted by support.
    pub weighted: Averaged,
    /// From the pooled counts (for single-label classification all three equal accuracy).
    pub micro: Averaged,
    /// Per class, by class name.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// Mean of the per-class one-vs-rest AUCs (undefined if any class's is).
    pub roc_auc_ovr: Measured,
    /// Their mean weighted by support.
    pub roc_auc_ovr_weighted: Measured,
}

/// Regression metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// Mean absolute error.
    pub mae: Measured,
    /// Root mean squared error.
    pub rmse: Measured,
    /// Mean absolute percentage error (as a fraction, like scikit-learn).
    pub mape: Measured,
    /// Coefficient of determination.
    pub r2: Measured,
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Events with a latency.
    pub count: u64,
    /// Median.
    pub p50: Measured,
    /// 90th percentile.
    pub p90: Measured,
    /// 99th percentile.
    pub p99: Measured,
}

/// Latency quantiles from the summary's sketch.
pub fn latency(summary: &WindowSummary) -> Latency {
    let q = |p: f64| {
        summary.latency.quantile(p).map_or_else(
            || Measured::undefined("no latencies recorded"),
            Measured::Value,
        )
    };
    Latency {
        count: summary.latency.count(),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
    }
}

/// Performance of the window. `window_seconds` overrides the event span for throughput.
pub fn performance(
    schema: &ModelSchema,
    summary: &WindowSummary,
    window_seconds: Option<f64>,
) -> Performance {
    let events = summary.events as f64;
    let span = window_seconds.or_else(|| match (summary.first_ts_ms, summary.last_ts_ms) {
        (Some(a), Some(b)) if b > a => Some((b - a) as f64 / 1000.0),
        _ => None,
    });
    Performance {
        events: summary.events,
        labelled: summary.labelled,
        label_coverage: Measured::ratio(summary.labelled as f64, events, "no events"),
        error_rate: Measured::ratio(summary.failed as f64, events, "no events"),
        throughput: span.map_or_else(
            || Measured::undefined("the window has no duration"),
            |s| Measured::ratio(events, s, "the window has no duration"),
        ),
        classification: schema
            .is_classification()
            .then(|| classification(schema, &summary.performance)),
        regression: (schema.task == Task::Regression).then(|| regression(&summary.performance)),
    }
}

fn precision_recall_f1(tp: f64, predicted: f64, actual: f64) -> Averaged {
    let precision = Measured::ratio(tp, predicted, "nothing was predicted positive");
    let recall = Measured::ratio(tp, actual, "no labelled positives");
    let f1 = match (precision.value(), recall.value()) {
        (Some(p), Some(r)) => Measured::ratio(2.0 * p * r, p + r, "precision and recall are zero"),
        _ => Measured::undefined("precision or recall undefined"),
    };
    Averaged {
        precision,
        recall,
        f1,
    }
}

/// Weighted mean of the defined values.
fn mean_of_defined(values: &[(Measured, f64)]) -> Measured {
    let (sum, weight) = values
        .iter()
        .filter_map(|(m, w)| m.value().map(|v| (v * w, *w)))
        .fold((0.0, 0.0), |(s, t), (v, w)| (s + v, t + w));
    Measured::ratio(sum, weight, "undefined for every class")
}

fn classification(schema: &ModelSchema, p: &PerformanceStats) -> Classification {
    let k = schema.classes.len();
    let cell = |t: usize, c: usize| p.confusion.get(t * k + c).copied().unwrap_or(0) as f64;
    let total: f64 = p.confusion.iter().sum::<u64>() as f64;
    let correct: f64 = (0..k).map(|i| cell(i, i)).sum();
    let support = |c: usize| (0..k).map(|q| cell(c, q)).sum::<f64>();
    let per_class = |c: usize| {
        let predicted: f64 = (0..k).map(|t| cell(t, c)).sum();
        precision_recall_f1(cell(c, c), predicted, support(c))
    };
    let average = |weight: &dyn Fn(usize) -> f64| {
        let classes: Vec<Averaged> = (0..k).map(per_class).collect();
        let pick = |f: fn(&Averaged) -> &Measured| {
            mean_of_defined(
                &classes
                    .iter()
                    .enumerate()
                    .map(|(c, a)| (f(a).clone(), weight(c)))
                    .collect::<Vec<_>>(),
            )
        };
        Averaged {
            precision: pick(|a| &a.precision),
            recall: pick(|a| &a.recall),
            f1: pick(|a| &a.f1),
        }
    };
    let binary = schema.task == Task::Binary;
    let headline = match (schema.task, schema.positive_index()) {
        (Task::Binary, Some(pos)) => per_class(pos),
        _ => average(&|_| 1.0),
    };
    let multiclass = (schema.task == Task::Multiclass)
        .then(|| multiclass(schema, p, average(&|_| 1.0), average(&support)));
    let not_binary = || Measured::undefined("defined for binary models");
    let no_class_scores = || Measured::undefined("no per-class probabilities recorded");
    Classification {
        accuracy: Measured::ratio(correct, total, "no labelled predictions"),
        precision: headline.precision,
        recall: headline.recall,
        f1: headline.f1,
        roc_auc: if binary {
            roc_auc(&p.positive_scores, &p.negative_scores)
        } else {
            multiclass
                .as_ref()
                .map_or_else(no_class_scores, |m| m.roc_auc_ovr.clone())
        },
        log_loss: if binary {
            Measured::ratio(p.log_loss_sum, p.scored as f64, "no labelled scores")
        } else {
            p.class_scores.as_ref().map_or_else(no_class_scores, |c| {
                Measured::ratio(c.log_loss_sum, c.scored as f64, "no labelled probabilities")
            })
        },
        brier: if binary {
            Measured::ratio(p.brier_sum, p.scored as f64, "no labelled scores")
        } else {
            not_binary()
        },
        multiclass,
    }
}

fn multiclass(
    schema: &ModelSchema,
    p: &PerformanceStats,
    macro_avg: Averaged,
    weighted: Averaged,
) -> Multiclass {
    let k = schema.classes.len();
    let cell = |t: usize, c: usize| p.confusion.get(t * k + c).copied().unwrap_or(0) as f64;
    let support = |c: usize| (0..k).map(|q| cell(c, q)).sum::<f64>();
    let total: f64 = (0..k).map(support).sum();
    let correct: f64 = (0..k).map(|i| cell(i, i)).sum();
    let auc = |c: usize| match &p.class_scores {
        Some(s) if s.scored > 0 => match (s.positive.get(c), s.negative.get(c)) {
            (Some(pos), Some(neg)) => roc_auc(pos, neg),
            _ => Measured::undefined("no per-class probabilities recorded"),
        },
        _ => Measured::undefined("no per-class probabilities recorded"),
    };
    let per_class: BTreeMap<String, ClassMetrics> = schema
        .classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let predicted: f64 = (0..k).map(|t| cell(t, c)).sum();
            let a = precision_recall_f1(cell(c, c), predicted, support(c));
            let m = ClassMetrics {
                support: support(c) as u64,
                precision: a.precision,
                recall: a.recall,
                f1: a.f1,
                roc_auc: auc(c),
            };
            (name.clone(), m)
        })
        .collect();
    let aucs: Vec<(Measured, f64)> = (0..k).map(|c| (auc(c), support(c))).collect();
    let all_defined = aucs.iter().all(|(m, _)| m.value().is_some());
    let ovr = |weighted: bool| {
        if !all_defined {
            return Measured::undefined("a class has no one-vs-rest AUC");
        }
        let weights: Vec<(Measured, f64)> = aucs
            .iter()
            .map(|(m, w)| (m.clone(), if weighted { *w } else { 1.0 }))
            .collect();
        mean_of_defined(&weights)
    };
    Multiclass {
        macro_avg,
        weighted,
        micro: precision_recall_f1(correct, total, total),
        per_class,
        roc_auc_ovr: ovr(false),
        roc_auc_ovr_weighted: ovr(true),
    }
}

/// ROC AUC from binned scores: the probability that a positive outranks a negative, ties in a
/// bin counted half (the Mann-Whitney form).
pub fn roc_auc(positive: &[u64], negative: &[u64]) -> Measured {
    let (np, nn): (u64, u64) = (positive.iter().sum(), negative.iter().sum());
    if np == 0 || nn == 0 {
        return Measured::undefined("needs labelled positives and negatives");
    }
    let mut below = 0.0;
    let mut wins = 0.0;
    for (&p, &n) in positive.iter().zip(negative) {
        wins += p as f64 * (below + 0.5 * n as f64);
        below += n as f64;
    }
    Measured::Value(wins / (np as f64 * nn as f64))
}

fn regression(p: &PerformanceStats) -> Regression {
    let r = &p.regression;
    let n = r.n as f64;
    let none = "no labelled predictions";
    let ss_tot = r.y_sq_sum - r.y_sum * r.y_sum / n;
    Regression {
        mae: Measured::ratio(r.abs_error, n, none),
        rmse: Measured::ratio(r.sq_error, n, none).value().map_or_else(
            || Measured::undefined(none),
            |mse| Measured::Value(mse.sqrt()),
        ),
        mape: Measured::ratio(r.abs_pct_error, n, none),
        r2: if r.n < 2 {
            Measured::undefined("needs at least two labelled predictions")
        } else if ss_tot <= 0.0 {
            Measured::undefined("the labels are constant")
        } else {
            Measured::finite(1.0 - r.sq_error / ss_tot, "not computable")
        },
    }
}
