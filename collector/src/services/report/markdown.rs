//! The report as Markdown, for repositories and tickets: the same sections and figures as the
//! HTML, tables instead of charts.

use std::fmt::Write;

use super::model::{Interval, Report};
use super::text::{band, bounds, duration, num, short};

/// Escapes the characters that would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn intervals(m: &mut String, title: &str, items: &[Interval]) {
    let _ = writeln!(m, "\n{title}:\n");
    if items.is_empty() {
        m.push_str("None.\n");
        return;
    }
    m.push_str("| Start | End | Duration | Evidence records |\n|---|---|---|---|\n");
    for i in items {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} |",
            i.start,
            if i.end.is_empty() { "open" } else { &i.end },
            duration(i.duration_seconds),
            i.end_seq
                .map_or(format!("#{} (start)", i.start_seq), |e| format!(
                    "#{} (start), #{e} (end)",
                    i.start_seq
                ))
        );
    }
}

/// Renders the whole report.
pub fn render(r: &Report) -> String {
    let d = &r.document;
    let mut m = String::new();
    let _ = writeln!(m, "# {}\n", d.title);
    let _ = writeln!(m, "## 1. Document control\n\n| | |\n|---|---|");
    let _ = writeln!(m, "| Period | {} – {} |", d.period_from, d.period_to);
    let _ = writeln!(
        m,
        "| Scope: models | {} |",
        cell(&d.scope_models.join(", "))
    );
    let _ = writeln!(
        m,
        "| Scope: objectives | {} |",
        cell(&d.scope_objectives.join(", "))
    );
    let _ = writeln!(m, "| Policy | {} |", cell(&d.policy));
    let _ = writeln!(m, "| Generated at | {} |", d.generated_at);
    let _ = writeln!(m, "| Generator | {} |", d.generator);
    let _ = writeln!(
        m,
        "| Evidence chain at period start | sequence {} `{}` |",
        d.chain_start.seq, d.chain_start.hash
    );
    let _ = writeln!(
        m,
        "| Evidence chain at period end | sequence {} `{}` |",
        d.chain_end.seq, d.chain_end.hash
    );
    let _ = writeln!(m, "| Records in period | {} |", d.records);
    if let Some(c) = &d.checkpoint {
        let _ = writeln!(
            m,
            "| Signed checkpoint of the evidence log | `{}` |",
            c.trim_end().replace('\n', "` `")
        );
    }
    let _ = writeln!(m, "| Report content hash | `{}` |", d.content_hash);

    let s = &r.summary;
    let _ = writeln!(
        m,
        "\n## 2. Summary\n\n| Met | At risk | Not met | Not measurable | Open alerts |\n|---|---|---|---|---|\n| {} | {} | {} | {} | {} |\n\n_{}_\n",
        s.met,
        s.at_risk,
        s.not_met,
        s.not_measurable,
        s.open_alerts.len(),
        s.rule
    );
    m.push_str("Decisions needed:\n\n");
    if s.decisions.is_empty() {
        m.push_str("None.\n");
    }
    for x in &s.decisions {
        let _ = writeln!(m, "- {x}");
    }
    super::corrective::markdown_counts(&mut m, &s.nonconformities);

    m.push_str("\n## 3. Monitoring coverage\n\n| Model | Versions evaluated |\n|---|---|\n");
    for (model, v) in &r.coverage.models {
        let _ = writeln!(m, "| {} | {} |", cell(model), cell(&v.join(", ")));
    }
    m.push_str(
        "\n| Model | Agent | Summaries | First window | Last window end |\n|---|---|---|---|---|\n",
    );
    for a in &r.coverage.agents {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |",
            cell(&a.model),
            cell(&a.agent),
            a.summaries,
            a.first,
            a.last
        );
    }
    m.push_str("\nGaps (no data):\n\n");
    if r.coverage.gaps.is_empty() {
        m.push_str("None.\n");
    } else {
        m.push_str("| Model | Start | End | Duration |\n|---|---|---|---|\n");
        for g in &r.coverage.gaps {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                cell(&g.model),
                g.start,
                if g.end.is_empty() { "open" } else { &g.end },
                duration(g.duration_seconds)
            );
        }
    }

    m.push_str("\n## 4. Monitoring plan\n\n| Objective | Metric | Method | Window | Cadence | Owner |\n|---|---|---|---|---|---|\n");
    for p in &r.plan {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&p.objective),
            cell(&p.metric),
            cell(&p.method),
            duration(p.window_seconds as f64),
            duration(p.cadence_seconds),
            cell(&p.owner)
        );
    }
    m.push_str("\nObjective versions recorded in the period:\n\n");
    if r.version_changes.is_empty() {
        m.push_str("None.\n");
    } else {
        m.push_str("| Objective | At | Version | Previous | Target | Record |\n|---|---|---|---|---|---|\n");
        for v in &r.version_changes {
            let _ = writeln!(
                m,
                "| {} | {} | `{}` | {} | {} | {} |",
                cell(&v.objective),
                v.at,
                short(&v.version),
                v.previous_version
                    .as_deref()
                    .map_or("(new)".to_owned(), |p| format!("`{}`", short(p))),
                cell(&v.target),
                v.seq
            );
        }
    }

    m.push_str("\n## 5. Objectives\n");
    for o in &r.objectives {
        let e = &o.evaluations;
        let _ = writeln!(
            m,
            "\n### {} — {} ({})\n\n| | |\n|---|---|",
            o.id,
            cell(&o.title),
            o.judgement.replace('_', " ")
        );
        let _ = writeln!(
            m,
            "| Model / metric | {} / {} {} |",
            cell(&o.model),
            cell(&o.metric),
            cell(&o.selector)
        );
        let _ = writeln!(
            m,
            "| Target / warning | {} / {} |",
            o.target,
            o.warning.as_deref().unwrap_or("–")
        );
        let _ = writeln!(
            m,
            "| Measured (last, min, mean, max) | {}, {}, {}, {} ({} values) |",
            num(o.values.last),
            num(o.values.min),
            num(o.values.mean),
            num(o.values.max),
            o.values.count
        );
        if o.last_interval.is_some() || o.last_samples.is_some() {
            let _ = writeln!(
                m,
                "| Last value, interval and samples | {}{} |",
                with_bounds(o.values.last, o.last_interval),
                o.last_samples
                    .map_or_else(String::new, |n| format!(" n = {n}"))
            );
        }
        let _ = writeln!(
            m,
            "| Evaluations in compliance | {} |",
            o.compliance_share
                .map_or("–".to_owned(), |c| format!("{:.1} %", c * 100.0))
        );
        let _ = writeln!(
            m,
            "| Evaluations | {} total: {} met, {} at risk, {} breached, {} insufficient data, {} not measurable, {} no data |",
            e.total, e.met, e.at_risk, e.breached, e.insufficient_data, e.not_measurable, e.no_data
        );
        let _ = writeln!(m, "| State at period end | {} |", o.state_at_end);
        let _ = writeln!(
            m,
            "| Severity / owner | {} / {} |",
            o.severity,
            cell(&o.owner)
        );
        let _ = writeln!(
            m,
            "| Versions | {} |",
            o.versions
                .iter()
                .map(|v| short(v))
                .collect::<Vec<_>>()
                .join(" → ")
        );
        let _ = writeln!(m, "| Plan: actions | {} |", cell(&o.plan.actions));
        let _ = writeln!(m, "| Plan: resources | {} |", cell(&o.plan.resources));
        let _ = writeln!(m, "| Plan: due | {} |", cell(&o.plan.due));
        let _ = writeln!(
            m,
            "| Plan: evaluation method | {} |",
            cell(&o.plan.evaluation)
        );
        let _ = writeln!(m, "| Annex A controls | {} |", cell(&o.controls.join(", ")));
        intervals(&mut m, "Breaches", &o.breaches);
        intervals(&mut m, "Alerts (firing)", &o.alerts);
    }

    let c = &r.completeness;
    let _ = writeln!(
        m,
        "\n## 6. Evaluation completeness\n\n| Scheduled | Completed | Insufficient data | No data |\n|---|---|---|---|\n| {} | {} | {} | {} |",
        c.scheduled, c.completed, c.insufficient_data, c.no_data
    );

    m.push_str("\n## 7. Fairness, drift and data quality\n");
    for a in &r.analysis {
        let _ = writeln!(
            m,
            "\n### {}\n\n{} predictions ({} labelled) in {} summaries; reference profile `{}`.\n\n| Attribute | Group | n | Labelled | Selection rate | TPR | FPR |\n|---|---|---|---|---|---|---|",
            a.model,
            a.events,
            a.labelled,
            a.summaries,
            short(&a.profile_hash)
        );
        for g in &a.groups {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&g.attribute),
                cell(&g.group),
                g.n,
                g.labelled,
                with_bounds(g.selection_rate, g.selection_rate_interval),
                with_bounds(g.tpr, g.tpr_interval),
                with_bounds(g.fpr, g.fpr_interval)
            );
        }
        m.push_str("\n| Attribute | n compared | Demographic parity ratio | Demographic parity difference | Equalized odds difference |\n|---|---|---|---|---|\n");
        for p in &a.parity {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                cell(&p.attribute),
                p.samples,
                with_bounds(
                    p.demographic_parity_ratio,
                    p.demographic_parity_ratio_interval
                ),
                with_bounds(
                    p.demographic_parity_difference,
                    p.demographic_parity_difference_interval
                ),
                with_bounds(
                    p.equalized_odds_difference,
                    p.equalized_odds_difference_interval
                )
            );
        }
        let _ = writeln!(
            m,
            "\nShare of drifted features: {}\n\n| Feature | Method | Score | PSI | Drifted |\n|---|---|---|---|---|",
            num(a.drifted_share)
        );
        for f in &a.drift {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} |",
                cell(&f.feature),
                f.method,
                num(f.score),
                num(f.psi),
                f.drifted.map_or("–", |d| if d { "yes" } else { "no" })
            );
        }
        if let Some(x) = &a.reconstruction {
            let _ = writeln!(
                m,
                "\nMultivariate drift (PCA reconstruction error): {} against thresholds [{}, {}]: {}.",
                num(x.value),
                num(Some(x.lower_threshold)),
                num(Some(x.upper_threshold)),
                if x.alert { "outside, drift" } else { "within" }
            );
        }
        if !a.performance.is_empty() {
            m.push_str("\n| Performance | Realised (labelled) | Estimated (CBPE, unlabelled) | Estimate band (±3 SE) |\n|---|---|---|---|\n");
            for p in &a.performance {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} |",
                    p.metric,
                    num(p.realised),
                    num(p.estimated),
                    band(p.lower, p.upper)
                );
            }
            if let Some(method) = &a.estimation_method {
                let _ = writeln!(m, "\nEstimated by {method}.");
            }
        }
        let _ = writeln!(
            m,
            "\nRejected-event rate: {}\n\n| Feature | Missing | Out of range | Unseen category |\n|---|---|---|---|",
            num(a.rejected_rate)
        );
        for q in &a.quality {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                cell(&q.feature),
                num(q.missing_rate),
                num(q.out_of_range_rate),
                num(q.unseen_category_rate)
            );
        }
    }
    m.push_str("\nMethod notes:\n\n");
    for n in &r.method_notes {
        let _ = writeln!(m, "- {n}");
    }

    m.push_str("\n## 8. Annex A controls evidenced\n\n| Control | Objectives | Evaluations | Records |\n|---|---|---|---|\n");
    for c in &r.controls {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} |",
            cell(&c.control),
            cell(&c.objectives.join(", ")),
            c.evaluations,
            cell(&c.records.join("; "))
        );
    }
    let v = &r.verification;
    let _ = writeln!(
        m,
        "\n## 9. How to verify\n\n{}\n\n```sh\n{}\n{}\n```",
        v.explanation, v.database, v.pack
    );
    super::corrective::markdown(&mut m, &r.nonconformities);
    m
}

/// A fairness value followed by its interval, `0.12 [0.11, 0.13]`.
fn with_bounds(v: Option<f64>, i: Option<super::model::Confidence>) -> String {
    match i {
        Some(_) => format!("{} {}", num(v), bounds(i)),
        None => num(v),
    }
}
