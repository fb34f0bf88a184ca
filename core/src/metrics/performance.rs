//! Model performance (scikit-learn definitions), label coverage, serving errors, throughput and
//! latency quantiles.

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

fn classification(schema: &ModelSchema, p: &PerformanceStats) -> Classification {
    let k = schema.classes.len();
    let cell = |t: usize, c: usize| p.confusion.get(t * k + c).copied().unwrap_or(0) as f64;
    let total: f64 = p.confusion.iter().sum::<u64>() as f64;
    let correct: f64 = (0..k).map(|i| cell(i, i)).sum();
    let per_class = |c: usize| {
        let tp = cell(c, c);
        let predicted: f64 = (0..k).map(|t| cell(t, c)).sum();
        let actual: f64 = (0..k).map(|q| cell(c, q)).sum();
        let precision = Measured::ratio(tp, predicted, "nothing was predicted positive");
        let recall = Measured::ratio(tp, actual, "no labelled positives");
        let f1 = match (precision.value(), recall.value()) {
            (Some(p), Some(r)) => {
                Measured::ratio(2.0 * p * r, p + r, "precision and recall are zero")
            }
            _ => Measured::undefined("precision or recall undefined"),
        };
        (precision, recall, f1)
    };
    let (precision, recall, f1) = match (schema.task, schema.positive_index()) {
        (Task::Binary, Some(pos)) => per_class(pos),
        _ => {
            let macro_avg = |pick: fn(&(Measured, Measured, Measured)) -> &Measured| {
                let vals: Vec<f64> = (0..k).filter_map(|c| pick(&per_class(c)).value()).collect();
                Measured::ratio(
                    vals.iter().sum(),
                    vals.len() as f64,
                    "undefined for every class",
                )
            };
            (
                macro_avg(|t| &t.0),
                macro_avg(|t| &t.1),
                macro_avg(|t| &t.2),
            )
        }
    };
    let binary = schema.task == Task::Binary;
    let not_binary = || Measured::undefined("defined for binary models");
    Classification {
        accuracy: Measured::ratio(correct, total, "no labelled predictions"),
        precision,
        recall,
        f1,
        roc_auc: if binary {
            roc_auc(&p.positive_scores, &p.negative_scores)
        } else {
            not_binary()
        },
        log_loss: if binary {
            Measured::ratio(p.log_loss_sum, p.scored as f64, "no labelled scores")
        } else {
            not_binary()
        },
        brier: if binary {
            Measured::ratio(p.brier_sum, p.scored as f64, "no labelled scores")
        } else {
            not_binary()
        },
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
