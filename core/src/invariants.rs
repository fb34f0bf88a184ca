//! What must hold of a window summary for it to be true, and the overflow check of a merge.
//!
//! A summary an agent recorded satisfies these by construction; one that arrives over the
//! network may not. The collector calls [`validate`] on every summary at ingest (after
//! [`WindowSummary::check_against`] has checked its shape), so that a forged or corrupted
//! summary is refused with the field at fault instead of poisoning the aggregates it would be
//! merged into. [`WindowSummary::merge`] calls [`check_merge`] first, so a merge that would wrap
//! a counter or overflow a sum errs and leaves the target unchanged.
//!
//! Pure: no I/O. Every check names the dotted path of the field that breaks it.

use thiserror::Error;

use crate::sketch::QuantileSketch;
use crate::summary::{
    CategoricalStats, FeatureStats, GroupStats, MergeError, NumericStats, RegressionStats,
    WindowSummary,
};

/// The largest count a summary may hold: 2^53, the last integer an `f64` (which every metric
/// computes in) represents exactly. No window holds that many events.
pub const MAX_COUNT: u64 = 1 << 53;

/// The sketch bucket indices a latency can reach: from the zero threshold (1e-6 ms) to
/// `f64::MAX`, with room to spare.
pub const SKETCH_INDEX_RANGE: (i64, i64) = (-1_000, 40_000);

/// A summary that cannot be true, naming the field and the rule it breaks.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct InvariantError {
    /// Dotted path of the offending field (`features[2].bins`, `groups[0][1].tp`, ...).
    pub field: String,
    /// The rule, in words.
    pub message: String,
}

fn fail<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, InvariantError> {
    Err(InvariantError {
        field: field.into(),
        message: message.into(),
    })
}

/// A checked sum of counts; errs naming `field` on overflow or past [`MAX_COUNT`].
fn total(field: &str, counts: impl IntoIterator<Item = u64>) -> Result<u64, InvariantError> {
    let mut sum: u64 = 0;
    for c in counts {
        sum = match sum.checked_add(c) {
            Some(s) if s <= MAX_COUNT => s,
            _ => return fail(field, format!("counts sum past {MAX_COUNT}")),
        };
    }
    Ok(sum)
}

fn count(field: &str, n: u64) -> Result<u64, InvariantError> {
    if n > MAX_COUNT {
        return fail(field, format!("{n} is larger than {MAX_COUNT}"));
    }
    Ok(n)
}

fn finite(field: &str, x: f64) -> Result<f64, InvariantError> {
    if !x.is_finite() {
        return fail(field, "not a finite number");
    }
    Ok(x)
}

fn non_negative(field: &str, x: f64) -> Result<f64, InvariantError> {
    if finite(field, x)? < 0.0 {
        return fail(
            field,
            format!("{x} is negative; it is a sum of non-negative terms"),
        );
    }
    Ok(x)
}

fn equal(field: &str, got: u64, want: u64, what: &str) -> Result<(), InvariantError> {
    if got != want {
        return fail(field, format!("{got} does not match {what} ({want})"));
    }
    Ok(())
}

fn at_most(field: &str, got: u64, bound: u64, what: &str) -> Result<(), InvariantError> {
    if got > bound {
        return fail(field, format!("{got} is more than {what} ({bound})"));
    }
    Ok(())
}

fn numeric(path: &str, s: &NumericStats, events: Option<u64>) -> Result<(), InvariantError> {
    let n = count(&format!("{path}.count"), s.count)?;
    let missing = count(&format!("{path}.missing"), s.missing)?;
    if let Some(events) = events {
        let seen = total(&format!("{path}.count"), [n, missing])?;
        equal(
            &format!("{path}.count"),
            seen,
            events,
            "events (count + missing)",
        )?;
    }
    finite(&format!("{path}.sum"), s.sum)?;
    non_negative(&format!("{path}.sum_sq"), s.sum_sq)?;
    finite(&format!("{path}.below_sum"), s.below_sum)?;
    finite(&format!("{path}.above_sum"), s.above_sum)?;
    match (s.min, s.max) {
        (None, None) if n == 0 => {}
        (Some(lo), Some(hi)) if n > 0 => {
            finite(&format!("{path}.min"), lo)?;
            finite(&format!("{path}.max"), hi)?;
            if lo > hi {
                return fail(format!("{path}.min"), format!("min {lo} is above max {hi}"));
            }
        }
        _ => {
            return fail(
                format!("{path}.min"),
                "min and max must be present exactly when count > 0",
            )
        }
    }
    if !s.bins.is_empty() {
        let binned = total(&format!("{path}.bins"), s.bins.iter().copied())?;
        equal(&format!("{path}.bins"), binned, n, "count")?;
    }
    Ok(())
}

fn categorical(path: &str, s: &CategoricalStats, events: u64) -> Result<(), InvariantError> {
    let n = count(&format!("{path}.count"), s.count)?;
    let missing = count(&format!("{path}.missing"), s.missing)?;
    let seen = total(&format!("{path}.count"), [n, missing])?;
    equal(
        &format!("{path}.count"),
        seen,
        events,
        "events (count + missing)",
    )?;
    let named = total(
        &format!("{path}.counts"),
        s.counts
            .values()
            .copied()
            .chain(std::iter::once(s.overflow)),
    )?;
    equal(
        &format!("{path}.counts"),
        named,
        n,
        "count (counts + overflow)",
    )
}

fn regression(path: &str, r: &RegressionStats) -> Result<(), InvariantError> {
    count(&format!("{path}.n"), r.n)?;
    non_negative(&format!("{path}.abs_error"), r.abs_error)?;
    non_negative(&format!("{path}.sq_error"), r.sq_error)?;
    non_negative(&format!("{path}.abs_pct_error"), r.abs_pct_error)?;
    finite(&format!("{path}.y_sum"), r.y_sum)?;
    non_negative(&format!("{path}.y_sq_sum"), r.y_sq_sum)?;
    Ok(())
}

fn sketch(path: &str, s: &QuantileSketch, events: u64) -> Result<(), InvariantError> {
    let (lo, hi) = SKETCH_INDEX_RANGE;
    let first = i64::from(s.offset);
    let last = first + s.counts.len() as i64;
    if !s.counts.is_empty() && (first < lo || last > hi) {
        return fail(
            format!("{path}.offset"),
            format!("buckets {first}..{last} lie outside {lo}..{hi}"),
        );
    }
    let n = total(
        &format!("{path}.counts"),
        s.counts.iter().copied().chain(std::iter::once(s.zeros)),
    )?;
    at_most(&format!("{path}.counts"), n, events, "events")
}

fn group(path: &str, g: &GroupStats, classification: bool) -> Result<(), InvariantError> {
    count(&format!("{path}.count"), g.count)?;
    at_most(&format!("{path}.selected"), g.selected, g.count, "count")?;
    let labelled = count(&format!("{path}.labelled"), g.labelled)?;
    if classification {
        let outcomes = total(&format!("{path}.tp"), [g.tp, g.fp, g.tn, g.fn_])?;
        equal(
            &format!("{path}.tp"),
            outcomes,
            labelled,
            "labelled (tp + fp + tn + fn)",
        )?;
    }
    non_negative(&format!("{path}.abs_error"), g.abs_error)?;
    non_negative(&format!("{path}.sq_error"), g.sq_error)?;
    Ok(())
}

/// Checks that `s` could have been recorded from real events: counts agree with their
/// histograms and with each other, no count is past [`MAX_COUNT`], every float is finite, sums of
/// non-negative terms are non-negative, and `min <= max`.
///
/// It assumes the shape has been checked against the schema ([`WindowSummary::check_against`]).
pub fn validate(s: &WindowSummary) -> Result<(), InvariantError> {
    let events = count("events", s.events)?;
    count("rejected", s.rejected)?;
    let failed = count("failed", s.failed)?;
    let labelled = count("labelled", s.labelled)?;
    at_most("failed", failed, events, "events")?;
    match (s.first_ts_ms, s.last_ts_ms) {
        (None, None) if events == 0 => {}
        (Some(a), Some(b)) if events > 0 => {
            if a > b {
                return fail("first_ts_ms", format!("{a} is after last_ts_ms {b}"));
            }
        }
        _ => {
            return fail(
                "first_ts_ms",
                "first_ts_ms and last_ts_ms must be present exactly when events > 0",
            )
        }
    }
    sketch("latency", &s.latency, events)?;
    for (i, f) in s.features.iter().enumerate() {
        let path = format!("features[{i}]");
        match f {
            FeatureStats::Numeric(n) => numeric(&path, n, Some(events))?,
            FeatureStats::Categorical(c) => categorical(&path, c, events)?,
        }
    }
    let p = &s.prediction;
    let classification = p.value.is_none();
    let predicted = total("prediction.class_counts", p.class_counts.iter().copied())?;
    let scored_outputs = total("prediction.score_bins", p.score_bins.iter().copied())?;
    at_most(
        "prediction.score_bins",
        scored_outputs,
        predicted,
        "predictions (class_counts)",
    )?;
    if classification {
        let outcomes = total("prediction.class_counts", [predicted, failed])?;
        equal(
            "prediction.class_counts",
            outcomes,
            events,
            "events (class_counts + failed)",
        )?;
    }
    if let Some(v) = &p.value {
        numeric("prediction.value", v, None)?;
        let outputs = total("prediction.value.count", [v.count, v.missing, failed])?;
        at_most("prediction.value.count", outputs, events, "events")?;
    }
    let perf = &s.performance;
    if classification {
        let confused = total("performance.confusion", perf.confusion.iter().copied())?;
        equal("performance.confusion", confused, labelled, "labelled")?;
    } else {
        equal(
            "performance.regression.n",
            perf.regression.n,
            labelled,
            "labelled",
        )?;
    }
    let scored = count("performance.scored", perf.scored)?;
    at_most("performance.scored", scored, labelled, "labelled")?;
    let binned = total(
        "performance.positive_scores",
        perf.positive_scores
            .iter()
            .chain(&perf.negative_scores)
            .copied(),
    )?;
    if classification && !perf.positive_scores.is_empty() {
        equal(
            "performance.positive_scores",
            binned,
            scored,
            "scored (positive + negative)",
        )?;
    }
    non_negative("performance.log_loss_sum", perf.log_loss_sum)?;
    non_negative("performance.brier_sum", perf.brier_sum)?;
    regression("performance.regression", &perf.regression)?;
    for (a, groups) in s.groups.iter().enumerate() {
        let counted = total(&format!("groups[{a}]"), groups.iter().map(|g| g.count))?;
        equal(
            &format!("groups[{a}]"),
            counted,
            events,
            "events (sum of group counts)",
        )?;
        let labels = total(&format!("groups[{a}]"), groups.iter().map(|g| g.labelled))?;
        equal(
            &format!("groups[{a}]"),
            labels,
            labelled,
            "labelled (sum of group labelled)",
        )?;
        for (g, stats) in groups.iter().enumerate() {
            group(&format!("groups[{a}][{g}]"), stats, classification)?;
        }
    }
    Ok(())
}

/// Adding two counts; errs naming `field` if the sum wraps.
fn add(field: &str, a: u64, b: u64) -> Result<(), MergeError> {
    a.checked_add(b)
        .map(|_| ())
        .ok_or_else(|| MergeError::Overflow(field.to_owned()))
}

/// Adding two float sums; errs naming `field` if the sum is not finite.
fn add_f(field: &str, a: f64, b: f64) -> Result<(), MergeError> {
    if (a + b).is_finite() {
        Ok(())
    } else {
        Err(MergeError::Overflow(field.to_owned()))
    }
}

fn add_all(field: &str, a: &[u64], b: &[u64]) -> Result<(), MergeError> {
    a.iter().zip(b).try_for_each(|(x, y)| add(field, *x, *y))
}

fn numeric_fits(path: &str, a: &NumericStats, b: &NumericStats) -> Result<(), MergeError> {
    add(&format!("{path}.missing"), a.missing, b.missing)?;
    add(&format!("{path}.count"), a.count, b.count)?;
    add_f(&format!("{path}.sum"), a.sum, b.sum)?;
    add_f(&format!("{path}.sum_sq"), a.sum_sq, b.sum_sq)?;
    add_f(&format!("{path}.below_sum"), a.below_sum, b.below_sum)?;
    add_f(&format!("{path}.above_sum"), a.above_sum, b.above_sum)?;
    add_all(&format!("{path}.bins"), &a.bins, &b.bins)
}

fn group_fits(path: &str, a: &GroupStats, b: &GroupStats) -> Result<(), MergeError> {
    for (name, x, y) in [
        ("count", a.count, b.count),
        ("selected", a.selected, b.selected),
        ("labelled", a.labelled, b.labelled),
        ("tp", a.tp, b.tp),
        ("fp", a.fp, b.fp),
        ("tn", a.tn, b.tn),
        ("fn", a.fn_, b.fn_),
    ] {
        add(&format!("{path}.{name}"), x, y)?;
    }
    add_f(&format!("{path}.abs_error"), a.abs_error, b.abs_error)?;
    add_f(&format!("{path}.sq_error"), a.sq_error, b.sq_error)
}

fn sketch_fits(a: &QuantileSketch, b: &QuantileSketch) -> Result<(), MergeError> {
    add("latency.zeros", a.zeros, b.zeros)?;
    if !a.counts.is_empty() && !b.counts.is_empty() {
        let first = i64::from(a.offset).min(i64::from(b.offset));
        let last = (i64::from(a.offset) + a.counts.len() as i64)
            .max(i64::from(b.offset) + b.counts.len() as i64);
        let (lo, hi) = SKETCH_INDEX_RANGE;
        if last - first > hi - lo {
            // The merged sketch would need more buckets than any latency can fill.
            return Err(MergeError::Overflow("latency.offset".to_owned()));
        }
    }
    for (k, &c) in b.counts.iter().enumerate() {
        let index = i64::from(b.offset) + k as i64;
        let pos = index - i64::from(a.offset);
        if let Some(&mine) = usize::try_from(pos).ok().and_then(|p| a.counts.get(p)) {
            add("latency.counts", mine, c)?;
        }
    }
    Ok(())
}

/// Whether `b` can be added into `a` without a count wrapping or a sum overflowing; `Err` names
/// the first field that would. Both must have the same shape (checked by the caller).
pub fn check_merge(a: &WindowSummary, b: &WindowSummary) -> Result<(), MergeError> {
    add("events", a.events, b.events)?;
    add("rejected", a.rejected, b.rejected)?;
    add("failed", a.failed, b.failed)?;
    add("labelled", a.labelled, b.labelled)?;
    sketch_fits(&a.latency, &b.latency)?;
    for (i, (x, y)) in a.features.iter().zip(&b.features).enumerate() {
        let path = format!("features[{i}]");
        match (x, y) {
            (FeatureStats::Numeric(x), FeatureStats::Numeric(y)) => numeric_fits(&path, x, y)?,
            (FeatureStats::Categorical(x), FeatureStats::Categorical(y)) => {
                add(&format!("{path}.missing"), x.missing, y.missing)?;
                add(&format!("{path}.count"), x.count, y.count)?;
                add(&format!("{path}.overflow"), x.overflow, y.overflow)?;
                for (k, v) in &y.counts {
                    add(
                        &format!("{path}.counts"),
                        x.counts.get(k).copied().unwrap_or(0),
                        *v,
                    )?;
                }
            }
            _ => return Err(MergeError::ShapeMismatch("features")),
        }
    }
    let (p, q) = (&a.prediction, &b.prediction);
    add_all("prediction.class_counts", &p.class_counts, &q.class_counts)?;
    add_all("prediction.score_bins", &p.score_bins, &q.score_bins)?;
    if let (Some(x), Some(y)) = (&p.value, &q.value) {
        numeric_fits("prediction.value", x, y)?;
    }
    let (p, q) = (&a.performance, &b.performance);
    add_all("performance.confusion", &p.confusion, &q.confusion)?;
    add("performance.scored", p.scored, q.scored)?;
    add_all(
        "performance.positive_scores",
        &p.positive_scores,
        &q.positive_scores,
    )?;
    add_all(
        "performance.negative_scores",
        &p.negative_scores,
        &q.negative_scores,
    )?;
    add_f("performance.log_loss_sum", p.log_loss_sum, q.log_loss_sum)?;
    add_f("performance.brier_sum", p.brier_sum, q.brier_sum)?;
    let (r, s) = (&p.regression, &q.regression);
    add("performance.regression.n", r.n, s.n)?;
    for (name, x, y) in [
        ("abs_error", r.abs_error, s.abs_error),
        ("sq_error", r.sq_error, s.sq_error),
        ("abs_pct_error", r.abs_pct_error, s.abs_pct_error),
        ("y_sum", r.y_sum, s.y_sum),
        ("y_sq_sum", r.y_sq_sum, s.y_sq_sum),
    ] {
        add_f(&format!("performance.regression.{name}"), x, y)?;
    }
    for (i, (x, y)) in a.groups.iter().zip(&b.groups).enumerate() {
        for (j, (g, h)) in x.iter().zip(y).enumerate() {
            group_fits(&format!("groups[{i}][{j}]"), g, h)?;
        }
    }
    Ok(())
}
