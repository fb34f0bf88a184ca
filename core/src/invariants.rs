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

use std::fmt::Display;
use thiserror::Error;

use crate::profile::SCORE_BINS;
use crate::schema::MAX_INTERSECTION_CELLS;
use crate::sketch::QuantileSketch;
use crate::summary::{
    CategoricalStats, ClassScoreStats, FeatureStats, GroupStats, IntersectionCounts, NumericStats,
    RegressionStats, WindowSummary,
};

/// The largest count a summary may hold: 2^53, the last integer an `f64` (which every metric
/// computes in) represents exactly. No window holds that many events.
pub const MAX_COUNT: u64 = 1 << 53;

pub use crate::sketch::SKETCH_INDEX_RANGE;
pub use crate::summary::check_merge;

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
///
/// The field names of these checks are formatted only when one fails: a summary passes some
/// thousand of them at ingest, where naming each had cost more than checking it.
fn total(
    field: impl Display,
    counts: impl IntoIterator<Item = u64>,
) -> Result<u64, InvariantError> {
    let mut sum: u64 = 0;
    for c in counts {
        sum = match sum.checked_add(c) {
            Some(s) if s <= MAX_COUNT => s,
            _ => return fail(field.to_string(), format!("counts sum past {MAX_COUNT}")),
        };
    }
    Ok(sum)
}

fn count(field: impl Display, n: u64) -> Result<u64, InvariantError> {
    if n > MAX_COUNT {
        return fail(field.to_string(), format!("{n} is larger than {MAX_COUNT}"));
    }
    Ok(n)
}

fn finite(field: impl Display, x: f64) -> Result<f64, InvariantError> {
    if !x.is_finite() {
        return fail(field.to_string(), "not a finite number");
    }
    Ok(x)
}

fn non_negative(field: impl Display, x: f64) -> Result<f64, InvariantError> {
    if finite(&field, x)? < 0.0 {
        return fail(
            field.to_string(),
            format!("{x} is negative; it is a sum of non-negative terms"),
        );
    }
    Ok(x)
}

fn equal(field: impl Display, got: u64, want: u64, what: &str) -> Result<(), InvariantError> {
    if got != want {
        return fail(
            field.to_string(),
            format!("{got} does not match {what} ({want})"),
        );
    }
    Ok(())
}

fn at_most(field: impl Display, got: u64, bound: u64, what: &str) -> Result<(), InvariantError> {
    if got > bound {
        return fail(
            field.to_string(),
            format!("{got} is more than {what} ({bound})"),
        );
    }
    Ok(())
}

fn numeric(path: &str, s: &NumericStats, events: Option<u64>) -> Result<(), InvariantError> {
    let n = count(format_args!("{path}.count"), s.count)?;
    let missing = count(format_args!("{path}.missing"), s.missing)?;
    if let Some(events) = events {
        let seen = total(format_args!("{path}.count"), [n, missing])?;
        equal(
            format_args!("{path}.count"),
            seen,
            events,
            "events (count + missing)",
        )?;
    }
    finite(format_args!("{path}.sum"), s.sum)?;
    non_negative(format_args!("{path}.sum_sq"), s.sum_sq)?;
    finite(format_args!("{path}.below_sum"), s.below_sum)?;
    finite(format_args!("{path}.above_sum"), s.above_sum)?;
    match (s.min, s.max) {
        (None, None) if n == 0 => {}
        (Some(lo), Some(hi)) if n > 0 => {
            finite(format_args!("{path}.min"), lo)?;
            finite(format_args!("{path}.max"), hi)?;
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
        let binned = total(format_args!("{path}.bins"), s.bins.iter().copied())?;
        equal(format_args!("{path}.bins"), binned, n, "count")?;
    }
    Ok(())
}

fn categorical(path: &str, s: &CategoricalStats, events: u64) -> Result<(), InvariantError> {
    let n = count(format_args!("{path}.count"), s.count)?;
    let missing = count(format_args!("{path}.missing"), s.missing)?;
    let seen = total(format_args!("{path}.count"), [n, missing])?;
    equal(
        format_args!("{path}.count"),
        seen,
        events,
        "events (count + missing)",
    )?;
    let named = total(
        format_args!("{path}.counts"),
        s.counts
            .values()
            .copied()
            .chain(std::iter::once(s.overflow)),
    )?;
    equal(
        format_args!("{path}.counts"),
        named,
        n,
        "count (counts + overflow)",
    )
}

fn regression(path: &str, r: &RegressionStats) -> Result<(), InvariantError> {
    count(format_args!("{path}.n"), r.n)?;
    non_negative(format_args!("{path}.abs_error"), r.abs_error)?;
    non_negative(format_args!("{path}.sq_error"), r.sq_error)?;
    non_negative(format_args!("{path}.abs_pct_error"), r.abs_pct_error)?;
    finite(format_args!("{path}.y_sum"), r.y_sum)?;
    non_negative(format_args!("{path}.y_sq_sum"), r.y_sq_sum)?;
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
        format_args!("{path}.counts"),
        s.counts.iter().copied().chain(std::iter::once(s.zeros)),
    )?;
    at_most(format_args!("{path}.counts"), n, events, "events")
}

fn group(path: &str, g: &GroupStats, classification: bool) -> Result<(), InvariantError> {
    count(format_args!("{path}.count"), g.count)?;
    at_most(
        format_args!("{path}.selected"),
        g.selected,
        g.count,
        "count",
    )?;
    let labelled = count(format_args!("{path}.labelled"), g.labelled)?;
    if classification {
        let outcomes = total(format_args!("{path}.tp"), [g.tp, g.fp, g.tn, g.fn_])?;
        equal(
            format_args!("{path}.tp"),
            outcomes,
            labelled,
            "labelled (tp + fp + tn + fn)",
        )?;
    }
    non_negative(format_args!("{path}.abs_error"), g.abs_error)?;
    non_negative(format_args!("{path}.sq_error"), g.sq_error)?;
    Ok(())
}

/// Per-class probabilities: one histogram of [`SCORE_BINS`] bins per class and side; every
/// scored prediction puts one probability of each class into that class's histograms (its
/// true class's on the positive side), and a true class's positives are among its labelled
/// rows (`confusion` row). At most `labelled` predictions are scored.
fn class_scores(
    c: &ClassScoreStats,
    confusion: &[u64],
    labelled: u64,
) -> Result<(), InvariantError> {
    const PATH: &str = "performance.class_scores";
    let scored = count(format_args!("{PATH}.scored"), c.scored)?;
    at_most(format_args!("{PATH}.scored"), scored, labelled, "labelled")?;
    non_negative(format_args!("{PATH}.log_loss_sum"), c.log_loss_sum)?;
    let k = c.positive.len();
    if c.negative.len() != k || k * k != confusion.len() {
        return fail(
            format!("{PATH}.positive"),
            format!(
                "{} positive and {} negative histograms for {} confusion cells",
                k,
                c.negative.len(),
                confusion.len()
            ),
        );
    }
    let mut positives = 0u64;
    for (class, (pos, neg)) in c.positive.iter().zip(&c.negative).enumerate() {
        for (side, bins) in [("positive", pos), ("negative", neg)] {
            if bins.len() != SCORE_BINS {
                return fail(
                    format!("{PATH}.{side}[{class}]"),
                    format!("{} bins, not {SCORE_BINS}", bins.len()),
                );
            }
        }
        let p = total(
            format_args!("{PATH}.positive[{class}]"),
            pos.iter().copied(),
        )?;
        let n = total(
            format_args!("{PATH}.negative[{class}]"),
            neg.iter().copied(),
        )?;
        let both = total(format_args!("{PATH}.positive[{class}]"), [p, n])?;
        equal(
            format_args!("{PATH}.positive[{class}]"),
            both,
            scored,
            "scored (positive + negative)",
        )?;
        let row = total(
            "performance.confusion",
            confusion[class * k..(class + 1) * k].iter().copied(),
        )?;
        at_most(
            format_args!("{PATH}.positive[{class}]"),
            p,
            row,
            "the class's labelled rows (confusion row)",
        )?;
        positives = total(format_args!("{PATH}.positive"), [positives, p])?;
    }
    equal(
        format_args!("{PATH}.positive"),
        positives,
        scored,
        "scored (one true class each)",
    )
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
    if let Some(c) = &perf.class_scores {
        class_scores(c, &perf.confusion, labelled)?;
    }
    regression("performance.regression", &perf.regression)?;
    for (a, groups) in s.groups.iter().enumerate() {
        let counted = total(format_args!("groups[{a}]"), groups.iter().map(|g| g.count))?;
        equal(
            format_args!("groups[{a}]"),
            counted,
            events,
            "events (sum of group counts)",
        )?;
        let labels = total(
            format_args!("groups[{a}]"),
            groups.iter().map(|g| g.labelled),
        )?;
        equal(
            format_args!("groups[{a}]"),
            labels,
            labelled,
            "labelled (sum of group labelled)",
        )?;
        for (g, stats) in groups.iter().enumerate() {
            group(&format!("groups[{a}][{g}]"), stats, classification)?;
        }
    }
    for (i, x) in s.intersections.iter().enumerate() {
        intersection(&format!("intersections[{i}]"), x, &s.groups, classification)?;
    }
    Ok(())
}

/// The integer counts of a group that its cells must add up to.
fn tally(g: &GroupStats) -> [u64; 7] {
    [g.count, g.selected, g.labelled, g.tp, g.fp, g.tn, g.fn_]
}

const TALLY_NAMES: [&str; 7] = ["count", "selected", "labelled", "tp", "fp", "tn", "fn"];

/// An intersection's cells: as many as the product of its attributes' buckets (bounded), each
/// a valid group, and adding up, over every attribute's bucket, to that bucket's counts in
/// `groups` (so they also add up to the events and the labelled).
fn intersection(
    path: &str,
    x: &IntersectionCounts,
    groups: &[Vec<GroupStats>],
    classification: bool,
) -> Result<(), InvariantError> {
    let mut sizes = Vec::with_capacity(x.attributes.len());
    for (j, &a) in x.attributes.iter().enumerate() {
        let Some(buckets) = groups.get(a as usize) else {
            return fail(
                format!("{path}.attributes[{j}]"),
                format!(
                    "{a} is not an attribute position ({} attributes)",
                    groups.len()
                ),
            );
        };
        if x.attributes[..j].contains(&a) {
            return fail(
                format!("{path}.attributes[{j}]"),
                format!("attribute {a} appears twice"),
            );
        }
        sizes.push(buckets.len());
    }
    if sizes.len() < 2 {
        return fail(
            format!("{path}.attributes"),
            "an intersection has at least two attributes",
        );
    }
    let cells = sizes.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
    match cells {
        Some(n) if n <= MAX_INTERSECTION_CELLS && n == x.cells.len() => {}
        _ => {
            return fail(
                format!("{path}.cells"),
                format!(
                    "{} cells for attributes of {sizes:?} buckets (their product, at most \
                     {MAX_INTERSECTION_CELLS})",
                    x.cells.len()
                ),
            )
        }
    }
    for (c, stats) in x.cells.iter().enumerate() {
        group(&format!("{path}.cells[{c}]"), stats, classification)?;
    }
    // Marginals: per attribute and bucket, the cells' sums; cell c's bucket of attribute j
    // is (c / stride_j) % size_j, row-major.
    let mut stride = x.cells.len();
    for (j, (&a, &size)) in x.attributes.iter().zip(&sizes).enumerate() {
        stride /= size;
        let mut sums = vec![[0u64; 7]; size];
        for (c, cell) in x.cells.iter().enumerate() {
            let b = (c / stride) % size;
            for (k, v) in tally(cell).into_iter().enumerate() {
                sums[b][k] = total(
                    format_args!("{path}.cells[{c}].{}", TALLY_NAMES[k]),
                    [sums[b][k], v],
                )?;
            }
        }
        for (b, sum) in sums.iter().enumerate() {
            let want = tally(&groups[a as usize][b]);
            for k in 0..7 {
                if sum[k] != want[k] {
                    return fail(
                        format!("{path}.cells"),
                        format!(
                            "the cells of attribute {a} bucket {b} (intersected attribute {j}) \
                             add up to {} {}, but groups[{a}][{b}].{} is {}",
                            TALLY_NAMES[k], sum[k], TALLY_NAMES[k], want[k]
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}
