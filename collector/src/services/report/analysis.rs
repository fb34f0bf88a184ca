//! The analysis: the summary judgement over the objectives, and from the stored summaries of
//! the period the per-model fairness, drift and data-quality figures and agent coverage.

use std::collections::{BTreeMap, BTreeSet};

use aims_core::metrics::{self, Measured};
use aims_core::objective::Objective;
use aims_core::WindowSummary;

use super::model::*;
use super::text::rfc3339;
use crate::store::Store;

pub fn selector_text(o: &Objective) -> String {
    [
        o.selector.feature.as_ref().map(|f| format!("feature {f}")),
        o.selector
            .attribute
            .as_ref()
            .map(|a| format!("attribute {a}")),
        o.selector.group.as_ref().map(|g| format!("group {g}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

pub fn measured(m: &Measured) -> Option<f64> {
    m.value().filter(|x| x.is_finite())
}

pub fn summarise(sections: &[ObjectiveSection]) -> Summary {
    let count = |j: &str| sections.iter().filter(|s| s.judgement == j).count() as u64;
    let open_alerts: Vec<String> = sections
        .iter()
        .filter(|s| s.alerts.iter().any(|a| a.end_ms.is_none()))
        .map(|s| s.id.clone())
        .collect();
    let mut decisions = Vec::new();
    for s in sections {
        match s.judgement.as_str() {
            "not_met" => decisions.push(format!(
                "{}: target {} not met ({} alert(s)); {} to confirm corrective action: {}",
                s.id,
                s.target,
                s.alerts.len(),
                s.owner,
                if s.plan.actions.is_empty() {
                    "none planned"
                } else {
                    &s.plan.actions
                }
            )),
            "not_measurable" => decisions.push(format!(
                "{}: not measurable in the period (insufficient data {}, no data {}); {} to review coverage or min_samples",
                s.id, s.evaluations.insufficient_data, s.evaluations.no_data, s.owner
            )),
            _ => {}
        }
    }
    Summary {
        met: count("met"),
        at_risk: count("at_risk"),
        not_met: count("not_met"),
        not_measurable: count("not_measurable"),
        open_alerts,
        decisions,
        // Filled from the nonconformity records by the report builder.
        nonconformities: Default::default(),
        rule: "not met: an alert fired in the period; not measurable: no evaluation had a value \
               with enough samples; at risk: some evaluations missed the target or the warning \
               without firing; met: every judged evaluation met target and warning."
            .to_owned(),
    }
}

pub fn method_notes() -> Vec<String> {
    vec![
        "Fairness, drift and data quality merge every stored summary whose window lies in the period, \
         binned with the model's latest reference profile, and compute the aims-core catalogue once on \
         the merge (summaries are additive, so this equals computing on the raw predictions)."
            .to_owned(),
        "Fairness follows Fairlearn's MetricFrame definitions: selection rate, TPR and FPR per group; \
         demographic parity ratio = min/max of selection rates; equalized odds difference = worst case \
         of the TPR and FPR differences."
            .to_owned(),
        "Drift uses Evidently's defaults: the method is chosen per feature from its type and the \
         reference size; PSI on 10 reference-quantile bins with empty bins floored at 1e-4."
            .to_owned(),
        "Estimated performance is NannyML's confidence-based performance estimation (CBPE): the \
         expected confusion matrix from scores calibrated on the reference's labels. It needs no \
         labels but assumes no concept drift (the reference's relation between score and outcome \
         still holds); where labels exist the realised value stands beside it. Multivariate drift \
         is NannyML's PCA reconstruction error against mean ± 3 σ of the reference chunks."
            .to_owned(),
        "Summaries older than the roll-up age are kept as hourly merges, so the period's edges are \
         then exact to the hour; summaries beyond the retention are gone, while the evaluations \
         recorded in the evidence log remain."
            .to_owned(),
    ]
}

/// Realised accuracy, precision, recall, F1 and ROC AUC beside CBPE's estimates, for binary
/// models with a calibration or with labels (empty otherwise).
pub fn performance_lines(r: &metrics::Report) -> Vec<PerformanceLine> {
    let c = r.performance.classification.as_ref();
    let e = r.estimated.as_ref().map(|e| &e.estimates);
    if e.is_none() && c.is_none_or(|c| c.multiclass.is_some()) {
        return Vec::new();
    }
    let realised =
        |f: fn(&metrics::performance::Classification) -> &Measured| c.and_then(|c| measured(f(c)));
    [
        ("accuracy", realised(|c| &c.accuracy), e.map(|e| e.accuracy)),
        (
            "precision",
            realised(|c| &c.precision),
            e.map(|e| e.precision),
        ),
        ("recall", realised(|c| &c.recall), e.map(|e| e.recall)),
        ("f1", realised(|c| &c.f1), e.map(|e| e.f1)),
        (
            "roc_auc",
            realised(|c| &c.roc_auc),
            e.and_then(|e| e.roc_auc),
        ),
    ]
    .into_iter()
    .map(|(metric, realised, estimate)| PerformanceLine {
        metric: metric.to_owned(),
        realised,
        estimated: estimate.map(|x| x.value),
        lower: estimate.and_then(|x| x.lower),
        upper: estimate.and_then(|x| x.upper),
    })
    .collect()
}

/// Agents and per-model analysis from the summaries stored for windows in the period.
pub async fn analyse(
    store: &Store,
    req: &Request,
    sections: &[ObjectiveSection],
) -> Result<(Vec<AgentCoverage>, Vec<Analysis>), ReportError> {
    let models: BTreeSet<&str> = sections.iter().map(|s| s.model.as_str()).collect();
    let agents = store
        .agents_between(req.from_ms, req.to_ms)
        .await?
        .into_iter()
        .filter(|a| models.contains(a.model.as_str()))
        .map(|a| AgentCoverage {
            first: rfc3339(a.first_ms),
            last: rfc3339(a.last_ms),
            model: a.model,
            agent: a.agent,
            summaries: a.summaries,
        })
        .collect();
    let mut profiles = BTreeMap::new();
    for p in store.profiles().await? {
        profiles.insert(p.model.clone(), p);
    }
    let mut merged: BTreeMap<String, (WindowSummary, u64)> = BTreeMap::new();
    let mut after = 0;
    loop {
        let (page, next) = store.summaries_since(req.from_ms, after, 1_000).await?;
        for s in page {
            let in_period = s.window_start_ms >= req.from_ms
                && s.window_start_ms + s.window_ms as i64 <= req.to_ms + 1;
            let Some(p) = profiles.get(&s.model) else {
                continue;
            };
            if !in_period || !models.contains(s.model.as_str()) || s.profile_hash != p.hash {
                continue;
            }
            match merged.get_mut(&s.model) {
                Some((acc, n)) => {
                    if acc.merge(&s.summary).is_ok() {
                        *n += 1;
                    }
                }
                None => {
                    merged.insert(s.model.clone(), (s.summary, 1));
                }
            }
        }
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    let seconds = (req.to_ms - req.from_ms) as f64 / 1000.0;
    let analysis = merged
        .into_iter()
        .filter_map(|(model, (summary, n))| {
            let p = profiles.get(&model)?;
            let r = metrics::report(&p.schema, p, &summary, Some(seconds));
            Some(Analysis {
                profile_hash: p.hash.clone(),
                summaries: n,
                events: r.performance.events,
                labelled: r.performance.labelled,
                groups: r
                    .fairness
                    .iter()
                    .flat_map(|(a, f)| {
                        f.groups.iter().map(move |(g, x)| GroupLine {
                            attribute: a.clone(),
                            group: g.clone(),
                            n: x.n,
                            labelled: x.labelled,
                            selection_rate: measured(&x.selection_rate),
                            tpr: measured(&x.tpr),
                            fpr: measured(&x.fpr),
                            selection_rate_interval: x.selection_rate_interval,
                            tpr_interval: x.tpr_interval,
                            fpr_interval: x.fpr_interval,
                        })
                    })
                    .collect(),
                parity: r
                    .fairness
                    .iter()
                    .map(|(a, f)| ParityLine {
                        attribute: a.clone(),
                        demographic_parity_ratio: measured(&f.demographic_parity_ratio),
                        demographic_parity_difference: measured(&f.demographic_parity_difference),
                        equalized_odds_difference: measured(&f.equalized_odds_difference),
                        samples: f
                            .groups
                            .iter()
                            .filter(|(g, _)| !f.too_small.contains_key(*g))
                            .map(|(_, x)| x.n)
                            .sum(),
                        demographic_parity_ratio_interval: f
                            .intervals
                            .demographic_parity_ratio
                            .as_ref()
                            .map(|p| p.interval),
                        demographic_parity_difference_interval: f
                            .intervals
                            .demographic_parity_difference
                            .as_ref()
                            .map(|p| p.interval),
                        equalized_odds_difference_interval: f
                            .intervals
                            .equalized_odds_difference
                            .as_ref()
                            .map(|p| p.interval),
                    })
                    .collect(),
                drift: r
                    .drift
                    .iter()
                    .map(|(f, d)| DriftLine {
                        feature: f.clone(),
                        method: serde_json::to_value(d.default_method)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        score: measured(&d.score),
                        psi: measured(&d.psi),
                        drifted: d.drifted,
                    })
                    .collect(),
                drifted_share: measured(&r.dataset_drift.share),
                quality: r
                    .data_quality
                    .features
                    .iter()
                    .map(|(f, q)| QualityLine {
                        feature: f.clone(),
                        missing_rate: measured(&q.missing_rate),
                        out_of_range_rate: q.out_of_range_rate.as_ref().and_then(measured),
                        unseen_category_rate: q.unseen_category_rate.as_ref().and_then(measured),
                    })
                    .collect(),
                rejected_rate: measured(&r.data_quality.rejected_rate),
                performance: performance_lines(&r),
                estimation_method: r.estimated.as_ref().map(|e| e.method.clone()),
                reconstruction: r.reconstruction.as_ref().map(|x| ReconstructionLine {
                    value: measured(&x.value),
                    lower_threshold: x.lower_threshold,
                    upper_threshold: x.upper_threshold,
                    alert: x.alert,
                }),
                reconstruction_method: r.reconstruction.as_ref().map(|x| x.method.clone()),
                model,
            })
        })
        .collect();
    Ok((agents, analysis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aims_core::event::{Event, FeatureValue, Prediction, Target};
    use aims_core::profile::ProfileBuilder;
    use aims_core::schema::{FeatureKind, FeatureSpec, ModelSchema, Task};

    fn schema() -> ModelSchema {
        ModelSchema {
            intersections: Vec::new(),
            name: "m".into(),
            version: "1".into(),
            task: Task::Binary,
            classes: vec![],
            positive_class: None,
            features: vec![
                FeatureSpec {
                    name: "x".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureSpec {
                    name: "y".into(),
                    kind: FeatureKind::Numeric,
                },
            ],
            attributes: vec![],
        }
        .validated()
        .unwrap()
    }

    fn event(i: u32, label: Option<u32>) -> Event {
        let x = f64::from(i % 100) / 25.0 - 2.0;
        let score = 1.0 / (1.0 + (-2.0 * x).exp());
        Event {
            id: None,
            ts_ms: 0,
            features: vec![FeatureValue::Numeric(x), FeatureValue::Numeric(x * 0.5)],
            groups: vec![],
            prediction: Prediction::Class {
                class: u32::from(score >= 0.5),
                score: Some(score),
            },
            label: label.map(Target::Class),
            latency_ms: None,
        }
    }

    /// Unlabelled predictions: every line has an estimate with its band and no realised value;
    /// once labels arrive the realised value stands beside the estimate.
    #[test]
    fn performance_lines_put_the_realised_value_beside_the_estimate() {
        let schema = schema();
        let mut b = ProfileBuilder::new(&schema);
        for i in 0..1000u32 {
            let x = f64::from(i % 100) / 25.0 - 2.0;
            let u = f64::from((i * 7919) % 1000) / 1000.0;
            b.add(&event(i, Some(u32::from(u < 1.0 / (1.0 + (-x).exp())))));
        }
        let profile = b.finish();
        let mut s = WindowSummary::new(&schema, &profile);
        for i in 0..300 {
            s.record(&schema, &profile, &event(i, None));
        }
        let r = metrics::report(&schema, &profile, &s, None);
        let lines = performance_lines(&r);
        let names: Vec<&str> = lines.iter().map(|l| l.metric.as_str()).collect();
        assert_eq!(names, ["accuracy", "precision", "recall", "f1", "roc_auc"]);
        for l in &lines {
            assert_eq!(l.realised, None, "{}: no labels", l.metric);
            let (v, lo, hi) = (l.estimated.unwrap(), l.lower.unwrap(), l.upper.unwrap());
            assert!(lo <= v && v <= hi && hi - lo > 0.0, "{l:?}");
        }
        assert!(r.estimated.as_ref().unwrap().method.contains("no concept"));
        let mut labelled = WindowSummary::new(&schema, &profile);
        for i in 0..300 {
            labelled.record(&schema, &profile, &event(i, Some(i % 2)));
        }
        let r = metrics::report(&schema, &profile, &labelled, None);
        let accuracy = &performance_lines(&r)[0];
        assert!(accuracy.realised.is_some() && accuracy.estimated.is_some());
    }
}
