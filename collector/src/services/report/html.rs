//! The report as one self-contained HTML file: inline CSS (with print rules) and inline SVG
//! charts, nothing fetched, so it can be mailed, archived and printed as it is.
//!
//! Rendered with maud: every value from the report is escaped unless marked otherwise, and
//! the only unescaped text is the constant style sheet.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::model::Confidence;
use super::model::{Interval, ObjectiveSection, Point, Report};
use super::text::{band, bounds, duration, num, rfc3339, short};

/// Chart width in SVG user units.
pub const WIDTH: f64 = 720.0;
/// Chart height in SVG user units.
pub const HEIGHT: f64 = 220.0;
const PAD_LEFT: f64 = 56.0;
const PAD_RIGHT: f64 = 12.0;
const PAD_TOP: f64 = 12.0;
const PAD_BOTTOM: f64 = 28.0;

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;color:#1a1a1a;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #234;padding-bottom:.2rem;margin-top:2rem}
h3{margin-bottom:.3rem}.ci .track{stroke:#c9d1d9;stroke-width:2}.ci .band{fill:#90caf9}.ci .point{stroke:#1a1a1a;stroke-width:2}.ci-bounds{color:#555;white-space:nowrap}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #bbb;padding:.25rem .45rem;text-align:left;vertical-align:top}th{background:#eef1f5}
code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem;word-break:break-all}
pre{white-space:pre-wrap;overflow-wrap:anywhere;max-width:100%}
.met{color:#17612e}.at_risk{color:#8a5a00}.not_met{color:#a11}.not_measurable{color:#555}
.cards{display:flex;gap:.6rem;flex-wrap:wrap}.card{border:1px solid #bbb;border-radius:6px;padding:.5rem .9rem;min-width:8rem}
.card b{display:block;font-size:1.5rem}svg.chart{width:100%;height:auto;border:1px solid #ddd;background:#fff}
.objective{break-inside:avoid;page-break-inside:avoid}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid;page-break-after:avoid}
.objective{break-inside:avoid}a{color:inherit;text-decoration:none}}
"#;

/// Renders the whole report.
pub fn render(r: &Report) -> String {
    let d = &r.document;
    let s = &r.summary;
    let c = &r.completeness;
    let v = &r.verification;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (d.title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (d.title) }
                p { "Period " (d.period_from) " to " (d.period_to) }

                h2 id="document-control" { "1. Document control" }
                table {
                    (row("Period", html! { (d.period_from) " – " (d.period_to) }))
                    (row("Scope: models", html! { (d.scope_models.join(", ")) }))
                    (row("Scope: objectives", html! { (d.scope_objectives.join(", ")) }))
                    (row("Policy", html! { (d.policy) }))
                    (row("Generated at", html! { (d.generated_at) }))
                    (row("Generator", html! { (d.generator) }))
                    (row("Evidence chain at period start", html! {
                        "sequence " (d.chain_start.seq) " " span class="hash" { (d.chain_start.hash) }
                    }))
                    (row("Evidence chain at period end", html! {
                        "sequence " (d.chain_end.seq) " " span class="hash" { (d.chain_end.hash) }
                    }))
                    (row("Records in period", html! { (d.records) }))
                    @if let Some(c) = &d.checkpoint {
                        (row("Signed checkpoint of the evidence log", html! { pre class="hash" { (c) } }))
                    }
                    (row("Report content hash", html! {
                        span class="hash" id="content-hash" { (d.content_hash) }
                    }))
                }

                h2 id="summary" { "2. Summary" }
                div class="cards" {
                    div class="card met" { b { (s.met) } "met" }
                    div class="card at_risk" { b { (s.at_risk) } "at risk" }
                    div class="card not_met" { b { (s.not_met) } "not met" }
                    div class="card not_measurable" { b { (s.not_measurable) } "not measurable" }
                    div class="card" { b { (s.open_alerts.len()) } "open alerts" }
                }
                p { small { (s.rule) } }
                @if !s.open_alerts.is_empty() {
                    p { "Open alerts: " (s.open_alerts.join(", ")) }
                }
                h3 { "Decisions needed" }
                (list(&s.decisions, "None."))
                (super::corrective::html_counts(&s.nonconformities))

                h2 id="coverage" { "3. Monitoring coverage" }
                table {
                    tr { th { "Model" } th { "Versions evaluated" } }
                    @for (m, versions) in &r.coverage.models {
                        tr { td { (m) } td { (versions.join(", ")) } }
                    }
                }
                table {
                    tr { th { "Model" } th { "Agent" } th { "Summaries" } th { "First window" } th { "Last window end" } }
                    @for a in &r.coverage.agents {
                        tr { td { (a.model) } td { (a.agent) } td { (a.summaries) } td { (a.first) } td { (a.last) } }
                    }
                }
                h3 { "Gaps (no data)" }
                @if r.coverage.gaps.is_empty() {
                    p { "No monitoring gaps." }
                } @else {
                    table {
                        tr { th { "Model" } th { "Start" } th { "End" } th { "Duration" } th { "Evidence records" } }
                        @for g in &r.coverage.gaps {
                            tr {
                                td { (g.model) }
                                td { (g.start) }
                                td { @if g.end.is_empty() { "open" } @else { (g.end) } }
                                td { (duration(g.duration_seconds)) }
                                td { (seqs(g.start_seq, g.end_seq)) }
                            }
                        }
                    }
                }

                h2 id="plan" { "4. Monitoring plan" }
                table {
                    tr { th { "Objective" } th { "Metric" } th { "Method" } th { "Window" } th { "Cadence" } th { "Owner" } }
                    @for p in &r.plan {
                        tr {
                            td { (p.objective) }
                            td { (p.metric) }
                            td { (p.method) }
                            td { (duration(p.window_seconds as f64)) }
                            td { (duration(p.cadence_seconds)) }
                            td { (p.owner) }
                        }
                    }
                }
                h3 { "Objective versions recorded in the period" }
                @if r.version_changes.is_empty() {
                    p { "None." }
                } @else {
                    table {
                        tr { th { "Objective" } th { "At" } th { "Version" } th { "Previous" } th { "Target" } th { "Record" } }
                        @for v in &r.version_changes {
                            tr {
                                td { (v.objective) }
                                td { (v.at) }
                                td class="hash" { (short(&v.version)) }
                                td class="hash" { (v.previous_version.as_deref().map_or("(new)", short)) }
                                td { (v.target) }
                                td { (v.seq) }
                            }
                        }
                    }
                }

                h2 id="objectives" { "5. Objectives" }
                @for o in &r.objectives {
                    (objective(o, d.from_ms, d.to_ms))
                }

                h2 id="completeness" { "6. Evaluation completeness" }
                table {
                    tr { th { "Scheduled" } th { "Completed" } th { "Insufficient data" } th { "No data" } }
                    tr { td { (c.scheduled) } td { (c.completed) } td { (c.insufficient_data) } td { (c.no_data) } }
                }

                h2 id="analysis" { "7. Fairness, drift and data quality" }
                @for a in &r.analysis {
                    h3 { (a.model) }
                    p {
                        (a.events) " predictions (" (a.labelled) " labelled) in " (a.summaries)
                        " summaries; reference profile " span class="hash" { (short(&a.profile_hash)) }
                    }
                    table {
                        tr { th { "Attribute" } th { "Group" } th { "n" } th { "Labelled" } th { "Selection rate" } th { "TPR" } th { "FPR" } }
                        @for g in &a.groups {
                            tr {
                                td { (g.attribute) } td { (g.group) } td { (g.n) } td { (g.labelled) }
                                td { (ci(g.selection_rate, g.selection_rate_interval, (0.0, 1.0))) }
                                td { (ci(g.tpr, g.tpr_interval, (0.0, 1.0))) }
                                td { (ci(g.fpr, g.fpr_interval, (0.0, 1.0))) }
                            }
                        }
                    }
                    table {
                        tr { th { "Attribute" } th { "n compared" } th { "Demographic parity ratio" } th { "Demographic parity difference" } th { "Equalized odds difference" } }
                        @for p in &a.parity {
                            tr {
                                td { (p.attribute) }
                                td { (p.samples) }
                                td { (ci(p.demographic_parity_ratio, p.demographic_parity_ratio_interval, (0.0, 1.0))) }
                                td { (ci(p.demographic_parity_difference, p.demographic_parity_difference_interval, (-1.0, 1.0))) }
                                td { (ci(p.equalized_odds_difference, p.equalized_odds_difference_interval, (-1.0, 1.0))) }
                            }
                        }
                    }
                    p { "Share of drifted features: " (num(a.drifted_share)) }
                    table {
                        tr { th { "Feature" } th { "Method" } th { "Score" } th { "PSI" } th { "Drifted" } }
                        @for f in &a.drift {
                            tr {
                                td { (f.feature) } td { (f.method) } td { (num(f.score)) } td { (num(f.psi)) }
                                td { (f.drifted.map_or("–", |d| if d { "yes" } else { "no" })) }
                            }
                        }
                    }
                    @if let Some(x) = &a.reconstruction {
                        p {
                            "Multivariate drift (PCA reconstruction error): " (num(x.value))
                            " against thresholds [" (num(Some(x.lower_threshold))) ", "
                            (num(Some(x.upper_threshold))) "]: "
                            (if x.alert { "outside, drift" } else { "within" }) "."
                        }
                    }
                    @if !a.performance.is_empty() {
                        table {
                            tr { th { "Performance" } th { "Realised (labelled)" } th { "Estimated (CBPE, unlabelled)" } th { "Estimate band (±3 SE)" } }
                            @for p in &a.performance {
                                tr {
                                    td { (p.metric) } td { (num(p.realised)) } td { (num(p.estimated)) }
                                    td { (band(p.lower, p.upper)) }
                                }
                            }
                        }
                        @if let Some(method) = &a.estimation_method {
                            p { "Estimated by " (method) "." }
                        }
                    }
                    p { "Rejected-event rate: " (num(a.rejected_rate)) }
                    table {
                        tr { th { "Feature" } th { "Missing" } th { "Out of range" } th { "Unseen category" } }
                        @for q in &a.quality {
                            tr {
                                td { (q.feature) } td { (num(q.missing_rate)) }
                                td { (num(q.out_of_range_rate)) } td { (num(q.unseen_category_rate)) }
                            }
                        }
                    }
                }
                h3 { "Method notes" }
                (list(&r.method_notes, ""))

                h2 id="controls" { "8. Annex A controls evidenced" }
                table {
                    tr { th { "Control" } th { "Objectives" } th { "Evaluations" } th { "Records" } }
                    @for c in &r.controls {
                        tr {
                            td { (c.control) } td { (c.objectives.join(", ")) }
                            td { (c.evaluations) } td { (c.records.join("; ")) }
                        }
                    }
                }
                h2 id="verify" { "9. How to verify" }
                p { (v.explanation) }
                pre { code { (v.database) } }
                pre { code { (v.pack) } }

                (super::corrective::html(&r.nonconformities))
            }
        }
    };
    page.into_string() + "\n"
}

/// A row of a two-column (heading, value) table.
fn row(heading: &str, value: Markup) -> Markup {
    html! { tr { th { (heading) } td { (value) } } }
}

fn list(items: &[String], empty: &str) -> Markup {
    html! {
        @if items.is_empty() {
            p { (empty) }
        } @else {
            ul { @for i in items { li { (i) } } }
        }
    }
}

/// The evidence records where an interval starts and ends, by sequence number, so a reader
/// can look them up with `GET /v1/evidence` or in the pack.
fn seqs(start: u64, end: Option<u64>) -> String {
    match end {
        Some(e) => format!("#{start} (start), #{e} (end)"),
        None => format!("#{start} (start)"),
    }
}

fn objective(o: &ObjectiveSection, from_ms: i64, to_ms: i64) -> Markup {
    let e = &o.evaluations;
    let versions = o
        .versions
        .iter()
        .map(|v| short(v))
        .collect::<Vec<_>>()
        .join(" → ");
    html! {
        section class="objective" id={ "objective-" (o.id) } {
            h3 {
                (o.id) " — " (o.title) " "
                span class=(o.judgement) { "(" (o.judgement.replace('_', " ")) ")" }
            }
            table {
                (row("Model / metric", html! { (o.model) " / " (o.metric) " " (o.selector) }))
                (row("Target / warning", html! { (o.target) " / " (o.warning.as_deref().unwrap_or("–")) }))
                (row("Measured (last, min, mean, max)", html! {
                    (num(o.values.last)) ", " (num(o.values.min)) ", " (num(o.values.mean)) ", "
                    (num(o.values.max)) " (" (o.values.count) " values)"
                }))
                @if o.last_interval.is_some() || o.last_samples.is_some() {
                    (row("Last value, interval and samples", html! {
                        (ci(o.values.last, o.last_interval, (0.0, 1.0)))
                        @if let Some(n) = o.last_samples { " n = " (n) }
                    }))
                }
                (row("Evaluations in compliance", html! {
                    (o.compliance_share.map_or("–".to_owned(), |c| format!("{:.1} %", c * 100.0)))
                }))
                (row("Evaluations", html! {
                    (e.total) " total: " (e.met) " met, " (e.at_risk) " at risk, " (e.breached)
                    " breached, " (e.insufficient_data) " insufficient data, " (e.not_measurable)
                    " not measurable, " (e.no_data) " no data"
                }))
                (row("State at period end", html! { (o.state_at_end) }))
                (row("Severity / owner", html! { (o.severity) " / " (o.owner) }))
                (row("Versions", html! { (versions) }))
                (row("Rationale", html! { (o.rationale) }))
                (row("Plan: actions", html! { (o.plan.actions) }))
                (row("Plan: resources", html! { (o.plan.resources) }))
                (row("Plan: due", html! { (o.plan.due) }))
                (row("Plan: evaluation method", html! { (o.plan.evaluation) }))
                (row("Annex A controls", html! { (o.controls.join(", ")) }))
            }
            @let (a, b) = data_extent(&o.series, &o.breaches, from_ms, to_ms);
            (chart_markup(&o.series, o.target_threshold, &o.breaches, a, b))
            @if (a, b) != (from_ms, to_ms) {
                p class="note" {
                    "The chart spans the evaluations recorded, " (rfc3339(a)) " to " (rfc3339(b))
                    "; the period runs " (rfc3339(from_ms)) " to " (rfc3339(to_ms)) " and has no data outside it."
                }
            }
            (intervals("Breaches", &o.breaches))
            (intervals("Alerts (firing)", &o.alerts))
        }
    }
}

fn intervals(title: &str, items: &[Interval]) -> Markup {
    html! {
        h4 { (title) }
        @if items.is_empty() {
            p { "None." }
        } @else {
            table {
                tr { th { "Start" } th { "End" } th { "Duration" } th { "Evidence records" } }
                @for i in items {
                    tr {
                        td { (i.start) }
                        td { @if i.end.is_empty() { "open" } @else { (i.end) } }
                        td { (duration(i.duration_seconds)) }
                        td { (seqs(i.start_seq, i.end_seq)) }
                    }
                }
            }
        }
    }
}

/// An inline SVG line chart of `series` against the target over [from, to], with each breach
/// interval shaded. The target is drawn as a step line through the target each evaluation
/// recorded (falling back to `target`), so a changed objective shows where it changed; the
/// y range covers the values and the targets.
pub fn chart(
    series: &[Point],
    target: f64,
    breaches: &[Interval],
    from_ms: i64,
    to_ms: i64,
) -> String {
    chart_markup(series, target, breaches, from_ms, to_ms).into_string()
}

fn chart_markup(
    series: &[Point],
    target: f64,
    breaches: &[Interval],
    from_ms: i64,
    to_ms: i64,
) -> Markup {
    let values: Vec<f64> = series.iter().filter_map(|p| p.value).collect();
    let targets: Vec<f64> = series.iter().filter_map(|p| p.target).collect();
    let (mut lo, mut hi) = values
        .iter()
        .chain(&targets)
        .fold((target, target), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    if hi - lo < 1e-9 {
        lo -= 0.5;
        hi += 0.5;
    }
    let margin = (hi - lo) * 0.08;
    lo -= margin;
    hi += margin;
    let span = (to_ms - from_ms).max(1) as f64;
    let plot_w = WIDTH - PAD_LEFT - PAD_RIGHT;
    let plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM;
    let x = |ms: i64| PAD_LEFT + ((ms.clamp(from_ms, to_ms) - from_ms) as f64 / span) * plot_w;
    let y = |v: f64| PAD_TOP + (1.0 - (v - lo) / (hi - lo)) * plot_h;
    let mut step = Vec::new();
    let mut current = series.iter().find_map(|p| p.target).unwrap_or(target);
    step.push((x(from_ms), y(current)));
    for p in series {
        let t = p.target.unwrap_or(current);
        if t != current {
            step.push((x(p.at_ms), y(current)));
            step.push((x(p.at_ms), y(t)));
            current = t;
        }
    }
    step.push((x(to_ms), y(current)));
    // A run of consecutive defined values is one polyline; undefined values break the line.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for p in series {
        match p.value {
            Some(v) => runs
                .last_mut()
                .expect("runs is never empty")
                .push((x(p.at_ms), y(v))),
            None => runs.push(Vec::new()),
        }
    }
    let f1 = |v: f64| format!("{v:.1}");
    html! {
        svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
            role="img" aria-label={ "value against target " (target) } {
            rect x=(PAD_LEFT) y=(PAD_TOP) width=(plot_w) height=(plot_h) fill="#fafafa" stroke="#ccc" {}
            @for b in breaches {
                @let x0 = x(b.start_ms);
                @let x1 = x(b.end_ms.unwrap_or(to_ms));
                rect class="breach" x=(f1(x0)) y=(PAD_TOP) width=(f1((x1 - x0).max(1.0))) height=(plot_h)
                    fill="#e0413a" fill-opacity="0.18" {
                    title { "breach " (b.start) " – " @if b.end.is_empty() { "open" } @else { (b.end) } }
                }
            }
            polyline class="target" points=(points(&step)) fill="none" stroke="#a11" stroke-dasharray="6 4" {}
            text x=(f1(WIDTH - PAD_RIGHT - 2.0)) y=(f1(y(current) - 3.0)) font-size="11" fill="#a11" text-anchor="end" {
                "target " (num(Some(current)))
            }
            @for v in [lo + margin, hi - margin] {
                text x=(f1(PAD_LEFT - 4.0)) y=(f1(y(v) + 4.0)) font-size="11" text-anchor="end" { (num(Some(v))) }
            }
            @for (ms, anchor) in [(from_ms, "start"), (to_ms, "end")] {
                text x=(f1(x(ms))) y=(f1(HEIGHT - 8.0)) font-size="11" text-anchor=(anchor) { (rfc3339(ms)) }
            }
            text x=(f1(PAD_LEFT + plot_w / 2.0)) y=(f1(HEIGHT - 8.0)) font-size="11" text-anchor="middle" { "time (UTC)" }
            @for run in runs.iter().filter(|r| !r.is_empty()) {
                polyline class="value" points=(points(run)) fill="none" stroke="#1f5fa8" stroke-width="1.6" {}
            }
        }
    }
}

/// The time span a chart shows: from the first to the last evaluation or breach edge inside the
/// period, so twelve minutes of data fill the chart instead of a hairline between the period's
/// end labels. Without data, the whole period.
pub fn data_extent(
    series: &[Point],
    breaches: &[Interval],
    from_ms: i64,
    to_ms: i64,
) -> (i64, i64) {
    let times = series
        .iter()
        .map(|p| p.at_ms)
        .chain(
            breaches
                .iter()
                .flat_map(|b| [Some(b.start_ms), b.end_ms])
                .flatten(),
        )
        .filter(|t| (from_ms..=to_ms).contains(t));
    let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if lo >= hi {
        (from_ms, to_ms)
    } else {
        (lo, hi)
    }
}

fn points(xy: &[(f64, f64)]) -> String {
    xy.iter()
        .map(|(a, b)| format!("{a:.1},{b:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fairness value with its interval as a bar and as bounds.
fn ci(value: Option<f64>, interval: Option<Confidence>, domain: (f64, f64)) -> Markup {
    let hi = interval.map_or(domain.1, |i| i.upper.max(domain.1));
    html! {
        (num(value))
        @if interval.is_some() {
            " " (PreEscaped(crate::html::interval_bar(value, interval.map(|i| (i.lower, i.upper)), (domain.0, hi))))
            " " small class="ci-bounds" { (bounds(interval)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::report::scan::{breach_intervals, finish_intervals};

    fn coords(svg: &str, attr: &str) -> Vec<f64> {
        svg.split(&format!(" {attr}=\""))
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter_map(|v| v.parse().ok())
            .collect()
    }

    #[test]
    fn chart_keeps_values_in_the_plot_and_shades_each_breach() {
        let verdicts = ["met", "breached", "breached", "met", "breached", "met"];
        let series: Vec<Point> = verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                at_ms: 1_000 * (i as i64 + 1),
                value: Some(if *v == "breached" { 0.6 } else { 0.95 }),
                target: Some(0.8),
                verdict: (*v).to_owned(),
            })
            .collect();
        let evals: Vec<(i64, u64, &str)> = series
            .iter()
            .enumerate()
            .map(|(i, p)| (p.at_ms, i as u64 + 1, p.verdict.as_str()))
            .collect();
        let mut breaches = breach_intervals(&evals);
        finish_intervals(&mut breaches, 0, 7_000);
        let svg = chart(&series, 0.8, &breaches, 0, 7_000);
        assert_eq!(svg.matches("class=\"breach\"").count(), 2);
        assert_eq!(svg.matches("<polyline class=\"value\"").count(), 1);
        let polyline = |class: &str| -> Vec<(f64, f64)> {
            svg.split(&format!("class=\"{class}\" points=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("points")
                .split(' ')
                .map(|p| {
                    let (a, b) = p.split_once(',').expect("x,y");
                    (a.parse().unwrap(), b.parse().unwrap())
                })
                .collect()
        };
        let points = polyline("value");
        assert_eq!(points.len(), 6);
        for (px, py) in &points {
            assert!((PAD_LEFT..=WIDTH - PAD_RIGHT).contains(px), "x {px}");
            assert!((PAD_TOP..=HEIGHT - PAD_BOTTOM).contains(py), "y {py}");
        }
        // Breached values sit below the target line (greater y), met ones above.
        let target = polyline("target");
        assert_eq!(target.len(), 2, "a constant target is one segment");
        let target_y = target[0].1;
        assert!(points[1].1 > target_y && points[0].1 < target_y);
        // Each shaded rectangle spans its breach: from its first breached evaluation.
        let xs = coords(&svg, "x");
        assert!(xs.iter().any(|x| (x - points[1].0).abs() < 0.2));
        assert!(xs.iter().any(|x| (x - points[4].0).abs() < 0.2));
    }

    /// Twelve minutes of data in a day-long period fill the chart (issue 22: a hairline
    /// between the period's end labels), and the time axis is labelled.
    #[test]
    fn the_chart_spans_the_data_not_the_whole_period() {
        let day = 86_400_000;
        let series: Vec<Point> = (0..=12)
            .map(|i| Point {
                at_ms: 36_000_000 + i * 60_000,
                value: Some(0.9),
                target: Some(0.8),
                verdict: "met".to_owned(),
            })
            .collect();
        let (a, b) = data_extent(&series, &[], 0, day);
        assert_eq!((a, b), (36_000_000, 36_720_000));
        assert_eq!(
            data_extent(&[], &[], 0, day),
            (0, day),
            "no data: the period"
        );
        let svg = chart(&series, 0.8, &[], a, b);
        let xs: Vec<f64> = svg
            .split("class=\"value\" points=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .split(' ')
            .map(|p| p.split_once(',').unwrap().0.parse().unwrap())
            .collect();
        let width = xs.last().unwrap() - xs.first().unwrap();
        assert!(
            width > 0.9 * (WIDTH - PAD_LEFT - PAD_RIGHT),
            "the line spans the plot: {width}"
        );
        assert!(svg.contains("time (UTC)"));
    }

    #[test]
    fn undefined_values_break_the_line_and_text_is_escaped() {
        let series = vec![
            Point {
                at_ms: 1,
                value: Some(1.0),
                target: None,
                verdict: "met".into(),
            },
            Point {
                at_ms: 2,
                value: None,
                target: None,
                verdict: "no_data".into(),
            },
            Point {
                at_ms: 3,
                value: Some(2.0),
                target: None,
                verdict: "met".into(),
            },
        ];
        let svg = chart(&series, 1.5, &[], 0, 4);
        assert_eq!(svg.matches("<polyline class=\"value\"").count(), 2);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn a_changed_target_steps_where_it_changed() {
        let series: Vec<Point> = [(1_000, 0.8), (2_000, 0.8), (3_000, 0.7)]
            .iter()
            .map(|&(at_ms, t)| Point {
                at_ms,
                value: Some(0.9),
                target: Some(t),
                verdict: "met".into(),
            })
            .collect();
        let svg = chart(&series, 0.7, &[], 0, 4_000);
        let target = svg
            .split("class=\"target\" points=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("target line");
        assert_eq!(
            target.split(' ').count(),
            4,
            "start, step down, step, end: {target}"
        );
        assert!(svg.contains("target 0.7"));
    }
}
