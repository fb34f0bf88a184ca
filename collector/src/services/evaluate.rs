//! The evaluator: every `evaluation_interval`, each objective merges its window from the
//! rolling aggregates, computes its metric with aims-core, is judged against target and
//! warning, and steps its lifecycle. Every evaluation and transition is evidence; statuses and
//! evidence are committed together, and only then published to the read API and `/metrics`.
//!
//! Objectives on the same model and window share one merge and one catalogue computation per
//! cycle, which is what keeps a thousand objectives cheap.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use aims_core::evidence::payload::{
    Evaluation, GapEdge, IngestionGap, Payload, Transition, Window,
};
use aims_core::lifecycle::{step, Input, State, Timing};
use aims_core::metrics::intervals::Interval;
use aims_core::metrics::{self, Report, Selector};
use aims_core::objective::Reading;
use aims_core::objective::{Objective, Verdict, NO_DATA_METRIC};
use aims_core::summary::WindowSummary;
use aims_core::{Measured, ReferenceProfile};
use tokio::sync::watch;

use crate::evidence::Entry;
use crate::services::corrective;
use crate::services::notify::Notifier;
use crate::state::{App, ObjectiveStatus};
use crate::store::{ObjectiveRow, StoreError};

/// Performance metrics exported per model on `/metrics`.
const PERFORMANCE: &[&str] = &[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "brier",
    "mae",
    "rmse",
    "mape",
    "r2",
    "label_coverage",
    "error_rate",
    "throughput",
    // CBPE's estimates without labels, beside the realised metrics above (dashboards show both).
    "estimated_accuracy",
    "estimated_precision",
    "estimated_recall",
    "estimated_f1",
    "estimated_roc_auc",
];

/// Fairness metrics exported per model and attribute on `/metrics`.
const FAIRNESS: &[&str] = &[
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "statistical_parity_difference",
    "disparate_impact",
];

/// Drift statistics exported per model, feature and method on `/metrics`.
const DRIFT: &[&str] = &[
    "psi",
    "jensen_shannon",
    "hellinger",
    "kl",
    "ks",
    "wasserstein",
    "chi2",
];

/// Per feature data-quality rates exported on `/metrics`.
const QUALITY: &[&str] = &["missing_rate", "out_of_range_rate", "unseen_category_rate"];

/// Latency quantiles exported on `/metrics`: catalogue metric and `percentile` label value
/// (`quantile` is reserved for summary-typed metrics).
const LATENCY: &[(&str, &str)] = &[
    ("latency_p50", "p50"),
    ("latency_p90", "p90"),
    ("latency_p99", "p99"),
];

/// A window's merged summary and its catalogue, shared by the objectives that need it.
struct Computed {
    report: Report,
    /// The merged summary, from which an objective's own fairness options are computed.
    summary: WindowSummary,
    versions: BTreeSet<String>,
    profile: Arc<ReferenceProfile>,
}

/// What `Objective::measure` and `judge_measurement` add to a value: recorded as evidence.
#[derive(Default)]
struct Detail {
    interval: Option<Interval>,
    reading: Option<Reading>,
    too_small: std::collections::BTreeMap<String, u64>,
    verdict: Option<Verdict>,
    why: Option<aims_core::metrics::why::Why>,
}

/// The verdict's JSON name.
fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::AtRisk => "at_risk",
        Verdict::Breached => "breached",
        Verdict::InsufficientData => "insufficient_data",
        Verdict::NotMeasurable => "not_measurable",
    }
}

/// Runs cycles until `shutdown` changes.
pub async fn run(app: Arc<App>, notifier: Arc<Notifier>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(app.config.evaluation.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gaps = HashMap::new();
    let mut led: Option<i64> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Only the leader evaluates; on PostgreSQL it first reads what other replicas stored.
        let term = app.evidence.term();
        if term.is_none() {
            led = None;
            continue;
        }
        // A new term (this replica took over, or started): the notifier carries on from the
        // delivery state the store holds, not from what this process last remembered.
        if led != term {
            match app.store.alerts().await {
                Ok(rows) => notifier.restore(rows),
                Err(e) => {
                    tracing::error!(error = %e, "evaluation skipped: cannot read the alert state");
                    continue;
                }
            }
            led = term;
        }
        if app.store.backend() == crate::config::Backend::Postgres {
            if let Err(e) = super::leadership::refresh(&app).await {
                tracing::error!(error = %e, "evaluation skipped: cannot read the shared state");
                continue;
            }
        }
        if let Err(e) = cycle(&app, &notifier, &mut gaps, term, app.now_ms()).await {
            tracing::error!(error = %e, "evaluation cycle failed; states are unchanged");
        }
    }
}

/// One evaluation of every objective at `now_ms`. `gaps` remembers which models were stale at
/// the previous cycle, so a gap is recorded when it starts and when it ends. What it writes is
/// fenced on `term`, the leadership term held when the cycle began.
pub async fn cycle(
    app: &App,
    notifier: &Notifier,
    gaps: &mut HashMap<String, bool>,
    term: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let objectives = app.objectives();
    let stale_ms = app.config.evaluation.stale_after.as_millis() as i64;
    let mut entries = Vec::new();

    let mut models: BTreeSet<String> = objectives
        .objectives
        .iter()
        .map(|o| o.model.clone())
        .collect();
    models.extend(app.profiles.read().models());
    let last: HashMap<String, Option<i64>> = {
        let agg = app.aggregates.read();
        models
            .iter()
            .map(|m| (m.clone(), agg.last_received(m)))
            .collect()
    };
    let is_stale = |model: &str| {
        last.get(model)
            .copied()
            .flatten()
            .is_none_or(|t| now_ms - t > stale_ms)
    };
    for model in &models {
        let stale = is_stale(model);
        let was = gaps.insert(model.clone(), stale);
        let last_ms = last.get(model).copied().flatten();
        if let Some(at) = last_ms {
            app.metrics
                .model_last_summary
                .with_label_values(&[model])
                .set(at as f64 / 1000.0);
        }
        if stale != was.unwrap_or(false) {
            let state = if stale { "started" } else { "ended" };
            tracing::warn!(model, state, last_summary_ms = ?last_ms, "ingestion gap");
            entries.push(Entry::global(Payload::IngestionGap(IngestionGap {
                model: model.to_string(),
                gap: if stale {
                    GapEdge::Started
                } else {
                    GapEdge::Ended
                },
                last_summary_ms: last_ms,
                stale_after_seconds: app.config.evaluation.stale_after.as_secs(),
            })));
        }
    }

    let mut cache: HashMap<(String, i64), Option<Arc<Computed>>> = HashMap::new();
    let mut compute = |model: &str, window_ms: i64| -> Option<Arc<Computed>> {
        cache
            .entry((model.to_owned(), window_ms))
            .or_insert_with(|| {
                let profile = app.profiles.read().latest(model)?;
                let merged = app.aggregates.read().window(
                    model,
                    &profile.hash,
                    now_ms - window_ms,
                    now_ms,
                )?;
                let report = metrics::report(
                    &profile.schema,
                    &profile,
                    &merged.summary,
                    Some(window_ms as f64 / 1000.0),
                );
                Some(Arc::new(Computed {
                    report,
                    summary: merged.summary,
                    versions: merged.versions,
                    profile,
                }))
            })
            .clone()
    };

    let current: HashMap<String, ObjectiveStatus> = app.status.read().clone();
    let mut next_status = HashMap::new();
    let resolved_hold_ms = app.config.evaluation.resolved_hold.as_millis() as u64;
    let mut newly_firing = Vec::new();
    let mut verdicts = Vec::new();
    for o in &objectives.objectives {
        let Some(status) = current.get(&o.id) else {
            continue;
        };
        let window_ms = o.window.as_millis().min(i64::MAX as u128) as i64;
        let mut context = None;
        let mut detail = Detail::default();
        let (input, value, samples, verdict) = if o.metric == NO_DATA_METRIC {
            let since = last
                .get(&o.model)
                .copied()
                .flatten()
                .unwrap_or(app.started_ms);
            let value = Measured::Value((now_ms - since).max(0) as f64 / 1000.0);
            let verdict = o.judge(&value, u64::MAX);
            (
                Input::Judged(verdict),
                Some(value),
                None,
                verdict_name(verdict),
            )
        } else if is_stale(&o.model) {
            (Input::Stale, None, None, "no_data")
        } else {
            let (value, samples) = match compute(&o.model, window_ms) {
                None => (
                    Measured::undefined(
                        "no summaries binned with the model's latest profile in the window",
                    ),
                    0,
                ),
                Some(c) => {
                    let m = o.measure(&c.profile.schema, &c.summary, &c.report);
                    // The figures behind the value, for the status page and the evidence.
                    let why = m.is_ok().then(|| {
                        aims_core::metrics::why::why(
                            &o.metric,
                            &o.selector,
                            &o.fairness_options(),
                            &c.profile.schema,
                            &c.summary,
                            &c.report,
                        )
                    });
                    let why = why.flatten();
                    context = Some(c);
                    match m {
                        Ok(m) => {
                            let judgement = o.judge_measurement(&m);
                            detail = Detail {
                                interval: m.interval,
                                reading: Some(judgement.reading),
                                too_small: m.too_small,
                                verdict: Some(judgement.verdict),
                                why,
                            };
                            (m.value, m.samples)
                        }
                        Err(e) => (Measured::undefined(e.to_string()), 0),
                    }
                }
            };
            let verdict = detail.verdict.unwrap_or_else(|| o.judge(&value, samples));
            (
                Input::Judged(verdict),
                Some(value),
                Some(samples),
                verdict_name(verdict),
            )
        };
        let timing = Timing {
            for_ms: o.for_.as_millis().min(u64::MAX as u128) as u64,
            resolved_hold_ms,
        };
        let (lifecycle, transitions) = step(status.lifecycle, input, now_ms, timing);
        entries.push(Entry::objective(
            &o.id,
            Payload::Evaluation(Evaluation {
                objective: o.id.clone(),
                version: status.version.clone(),
                model: o.model.clone(),
                metric: o.metric.clone(),
                selector: o.selector.clone(),
                value: value.clone(),
                target: o.target.to_string(),
                warning: o.warning.map(|w| w.to_string()),
                verdict: verdict.to_owned(),
                samples,
                min_samples: o.min_samples,
                window: Window {
                    from_ms: now_ms - window_ms,
                    to_ms: now_ms,
                },
                model_versions: context
                    .as_ref()
                    .map(|c| c.versions.iter().cloned().collect()),
                profile_hash: context.as_ref().map(|c| c.profile.hash.clone()),
                state: lifecycle.state,
                interval: detail.interval,
                reading: detail.reading,
                too_small: detail.too_small,
                why: detail.why,
            }),
        ));
        for t in &transitions {
            tracing::info!(objective = %o.id, from = t.from.as_str(), to = t.to.as_str(), value = ?value, "objective transition");
            if t.to == State::Firing {
                newly_firing.push(o.id.clone());
            }
            entries.push(Entry::objective(
                &o.id,
                Payload::Transition(Transition {
                    objective: o.id.clone(),
                    version: status.version.clone(),
                    from: t.from,
                    to: t.to,
                    at_ms: t.at_ms,
                    value: value.clone(),
                    target: o.target.to_string(),
                    severity: o.severity.as_str().to_owned(),
                }),
            ));
        }
        verdicts.push((o, verdict, value.clone(), samples));
        next_status.insert(
            o.id.clone(),
            ObjectiveStatus {
                version: status.version.clone(),
                lifecycle,
                last_value: value,
                last_verdict: Some(verdict.to_owned()),
                samples,
                evaluated_ms: Some(now_ms),
            },
        );
    }
    let rows: Vec<_> = next_status
        .iter()
        .map(|(id, s)| ObjectiveRow {
            version: None,
            ..s.row(id)
        })
        .collect();
    // Nonconformities change in the same evidence append as the evaluations behind them.
    let serial = app.corrective_lock.lock().await;
    let judged: Vec<(&str, &str)> = verdicts
        .iter()
        .map(|(o, v, _, _)| (o.id.as_str(), *v))
        .collect();
    let observed = corrective::observe(app, &objectives, &judged, &newly_firing, now_ms);
    entries.extend(observed.entries);
    let records = entries.len();
    let (head_seq, head_hash) = app
        .evidence
        .append_in_term(entries, &rows, now_ms, term)
        .await?;
    corrective::commit(app, observed.changed, term, now_ms).await?;
    drop(serial);

    {
        let mut status = app.status.write();
        for (id, s) in &next_status {
            if let Some(slot) = status.get_mut(id) {
                // A reload may have changed the version meanwhile; keep its version.
                let version = slot.version.clone();
                *slot = ObjectiveStatus {
                    version,
                    ..s.clone()
                };
            }
        }
    }
    publish(app, &verdicts, &next_status, &newly_firing);
    notifier.observe(&objectives, &next_status, now_ms);
    notifier.observe_overdue(&objectives, &app.nonconformities.read(), now_ms);
    if let Some(rows) = notifier.snapshot() {
        match app.store.put_alerts(&rows, term, now_ms).await {
            Ok(()) => notifier.saved(rows),
            Err(e) => tracing::error!(error = %e, "the alert delivery state was not stored"),
        }
    }
    let metrics_window = app.config.evaluation.metrics_window.as_millis() as i64;
    for model in &models {
        if is_stale(model) {
            continue;
        }
        if let Some(c) = compute(model, metrics_window) {
            model_gauges(app, model, &c.report);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    app.metrics.evaluation_duration.observe(seconds);
    tracing::info!(
        objectives = next_status.len(),
        records,
        seconds,
        head_seq,
        head_hash = %head_hash,
        "evaluation cycle"
    );
    Ok(())
}

type Judged<'a> = (&'a Objective, &'static str, Option<Measured>, Option<u64>);

fn publish(
    app: &App,
    verdicts: &[Judged<'_>],
    status: &HashMap<String, ObjectiveStatus>,
    firing: &[String],
) {
    let m = &app.metrics;
    for (o, verdict, value, samples) in verdicts {
        let labels = [o.id.as_str(), o.model.as_str()];
        m.describe_objective(o);
        match value.as_ref().and_then(Measured::value) {
            Some(v) => m.objective_value.with_label_values(&labels).set(v),
            None => {
                m.objective_value.remove_label_values(&labels).ok();
            }
        }
        m.objective_target
            .with_label_values(&labels)
            .set(o.target.threshold);
        m.objective_samples
            .with_label_values(&[o.id.as_str()])
            .set(samples.unwrap_or(0) as f64);
        m.objective_evaluations
            .with_label_values(&[o.id.as_str(), verdict])
            .inc();
        if let Some(s) = status.get(&o.id) {
            m.set_state(&o.id, s.lifecycle.state);
        }
        m.objective_breaches
            .with_label_values(&[o.id.as_str()])
            .inc_by(0);
    }
    for id in firing {
        m.objective_breaches.with_label_values(&[id.as_str()]).inc();
    }
}

fn model_gauges(app: &App, model: &str, report: &Report) {
    let m = &app.metrics;
    let set = |g: &prometheus::GaugeVec, labels: &[&str], v: &Measured| match v.value() {
        Some(x) => g.with_label_values(labels).set(x),
        None => {
            g.remove_label_values(labels).ok();
        }
    };
    for (feature, d) in &report.drift {
        set(&m.model_drift_score, &[model, feature], &d.score);
        let selector = Selector {
            feature: Some(feature.clone()),
            ..Selector::default()
        };
        for name in DRIFT {
            if let Ok(x) = metrics::measure(name, &selector, report) {
                set(&m.model_drift_statistic, &[model, feature, name], &x.value);
            }
        }
        for name in QUALITY {
            if let Ok(x) = metrics::measure(name, &selector, report) {
                set(&m.model_data_quality, &[model, feature, name], &x.value);
            }
        }
    }
    set(
        &m.model_dataset_drift_share,
        &[model],
        &report.dataset_drift.share,
    );
    for (attribute, f) in &report.fairness {
        let selector = Selector {
            attribute: Some(attribute.clone()),
            ..Selector::default()
        };
        for name in FAIRNESS {
            if let Ok(x) = metrics::measure(name, &selector, report) {
                let labels = [model, attribute.as_str(), *name];
                set(&m.model_fairness, &labels, &x.value);
                let (lower, upper) = match x.interval {
                    Some(i) => (Measured::Value(i.lower), Measured::Value(i.upper)),
                    None => (
                        Measured::undefined("no interval"),
                        Measured::undefined("no interval"),
                    ),
                };
                set(&m.model_fairness_lower, &labels, &lower);
                set(&m.model_fairness_upper, &labels, &upper);
            }
        }
        for (group, g) in &f.groups {
            let labels = [model, attribute.as_str(), group.as_str()];
            set(&m.model_selection_rate, &labels, &g.selection_rate);
            set(&m.model_true_positive_rate, &labels, &g.tpr);
            set(&m.model_false_positive_rate, &labels, &g.fpr);
        }
    }
    for name in PERFORMANCE {
        if let Ok(x) = metrics::measure(name, &Selector::default(), report) {
            set(&m.model_performance, &[model, name], &x.value);
        }
    }
    if let Ok(x) = metrics::measure("rejected_rate", &Selector::default(), report) {
        set(&m.model_rejected, &[model], &x.value);
    }
    for (name, percentile) in LATENCY {
        if let Ok(x) = metrics::measure(name, &Selector::default(), report) {
            let seconds = match x.value {
                Measured::Value(ms) => Measured::Value(ms / 1000.0),
                undefined => undefined,
            };
            set(&m.model_latency, &[model, percentile], &seconds);
        }
    }
    m.model_events
        .with_label_values(&[model])
        .set(report.performance.events as f64);
}
