//! The report as one self-contained HTML file: inline CSS (with print rules) and inline SVG
//! charts, nothing fetched, so it can be mailed, archived and printed as it is.

use std::fmt::Write;

use super::model::{Interval, ObjectiveSection, Point, Report};
use super::text::{duration, num, rfc3339, short};
use crate::html::escape;

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
h3{margin-bottom:.3rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #bbb;padding:.25rem .45rem;text-align:left;vertical-align:top}th{background:#eef1f5}
code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem;word-break:break-all}
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
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n\
         <p>Period {} to {}</p>\n",
        escape(&d.title),
        escape(&d.title),
        escape(&d.period_from),
        escape(&d.period_to)
    );

    h.push_str("<h2 id=\"document-control\">1. Document control</h2>\n<table>");
    let rows: Vec<(&str, String)> = vec![
        (
            "Period",
            format!("{} – {}", escape(&d.period_from), escape(&d.period_to)),
        ),
        ("Scope: models", escape(&d.scope_models.join(", "))),
        ("Scope: objectives", escape(&d.scope_objectives.join(", "))),
        ("Policy", escape(&d.policy)),
        ("Generated at", escape(&d.generated_at)),
        ("Generator", escape(&d.generator)),
        (
            "Evidence chain at period start",
            format!(
                "sequence {} <span class=\"hash\">{}</span>",
                d.chain_start.seq,
                escape(&d.chain_start.hash)
            ),
        ),
        (
            "Evidence chain at period end",
            format!(
                "sequence {} <span class=\"hash\">{}</span>",
                d.chain_end.seq,
                escape(&d.chain_end.hash)
            ),
        ),
        ("Records in period", d.records.to_string()),
        (
            "Report content hash",
            format!(
                "<span class=\"hash\" id=\"content-hash\">{}</span>",
                escape(&d.content_hash)
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    h.push_str("</table>\n");

    let s = &r.summary;
    let _ = write!(
        h,
        "<h2 id=\"summary\">2. Summary</h2>\n<div class=\"cards\">\
         <div class=\"card met\"><b>{}</b>met</div><div class=\"card at_risk\"><b>{}</b>at risk</div>\
         <div class=\"card not_met\"><b>{}</b>not met</div><div class=\"card not_measurable\"><b>{}</b>not measurable</div>\
         <div class=\"card\"><b>{}</b>open alerts</div></div>\n<p><small>{}</small></p>\n",
        s.met,
        s.at_risk,
        s.not_met,
        s.not_measurable,
        s.open_alerts.len(),
        escape(&s.rule)
    );
    if !s.open_alerts.is_empty() {
        let _ = writeln!(
            h,
            "<p>Open alerts: {}</p>",
            escape(&s.open_alerts.join(", "))
        );
    }
    h.push_str("<h3>Decisions needed</h3>\n");
    list(&mut h, &s.decisions, "None.");

    h.push_str("<h2 id=\"coverage\">3. Monitoring coverage</h2>\n<table><tr><th>Model</th><th>Versions evaluated</th></tr>");
    for (m, v) in &r.coverage.models {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(m),
            escape(&v.join(", "))
        );
    }
    h.push_str("</table>\n<table><tr><th>Model</th><th>Agent</th><th>Summaries</th><th>First window</th><th>Last window end</th></tr>");
    for a in &r.coverage.agents {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.model),
            escape(&a.agent),
            a.summaries,
            escape(&a.first),
            escape(&a.last)
        );
    }
    h.push_str("</table>\n<h3>Gaps (no data)</h3>\n");
    if r.coverage.gaps.is_empty() {
        h.push_str("<p>No monitoring gaps.</p>\n");
    } else {
        h.push_str("<table><tr><th>Model</th><th>Start</th><th>End</th><th>Duration</th><th>Records</th></tr>");
        for g in &r.coverage.gaps {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&g.model),
                escape(&g.start),
                if g.end.is_empty() {
                    "open".to_owned()
                } else {
                    escape(&g.end)
                },
                duration(g.duration_seconds),
                seqs(g.start_seq, g.end_seq)
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2 id=\"plan\">4. Monitoring plan</h2>\n<table><tr><th>Objective</th><th>Metric</th><th>Method</th><th>Window</th><th>Cadence</th><th>Owner</th></tr>");
    for p in &r.plan {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.objective),
            escape(&p.metric),
            escape(&p.method),
            duration(p.window_seconds as f64),
            duration(p.cadence_seconds),
            escape(&p.owner)
        );
    }
    h.push_str("</table>\n<h3>Objective versions recorded in the period</h3>\n");
    if r.version_changes.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<table><tr><th>Objective</th><th>At</th><th>Version</th><th>Previous</th><th>Target</th><th>Record</th></tr>");
        for v in &r.version_changes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"hash\">{}</td><td class=\"hash\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(&v.objective),
                escape(&v.at),
                escape(short(&v.version)),
                escape(v.previous_version.as_deref().map_or("(new)", short)),
                escape(&v.target),
                v.seq
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2 id=\"objectives\">5. Objectives</h2>\n");
    for o in &r.objectives {
        objective(&mut h, o, d.from_ms, d.to_ms);
    }

    let c = &r.completeness;
    let _ = write!(
        h,
        "<h2 id=\"completeness\">6. Evaluation completeness</h2>\n<table><tr><th>Scheduled</th><th>Completed</th>\
         <th>Insufficient data</th><th>No data</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\n",
        c.scheduled, c.completed, c.insufficient_data, c.no_data
    );

    h.push_str("<h2 id=\"analysis\">7. Fairness, drift and data quality</h2>\n");
    for a in &r.analysis {
        let _ = write!(
            h,
            "<h3>{}</h3><p>{} predictions ({} labelled) in {} summaries; reference profile <span class=\"hash\">{}</span></p>",
            escape(&a.model),
            a.events,
            a.labelled,
            a.summaries,
            escape(short(&a.profile_hash))
        );
        h.push_str("<table><tr><th>Attribute</th><th>Group</th><th>n</th><th>Labelled</th><th>Selection rate</th><th>TPR</th><th>FPR</th></tr>");
        for g in &a.groups {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&g.attribute),
                escape(&g.group),
                g.n,
                g.labelled,
                num(g.selection_rate),
                num(g.tpr),
                num(g.fpr)
            );
        }
        h.push_str("</table><table><tr><th>Attribute</th><th>Demographic parity ratio</th><th>Demographic parity difference</th><th>Equalized odds difference</th></tr>");
        for p in &a.parity {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.attribute),
                num(p.demographic_parity_ratio),
                num(p.demographic_parity_difference),
                num(p.equalized_odds_difference)
            );
        }
        let _ = write!(
            h,
            "</table><p>Share of drifted features: {}</p><table><tr><th>Feature</th><th>Method</th><th>Score</th><th>PSI</th><th>Drifted</th></tr>",
            num(a.drifted_share)
        );
        for f in &a.drift {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&f.feature),
                escape(&f.method),
                num(f.score),
                num(f.psi),
                f.drifted.map_or("–", |d| if d { "yes" } else { "no" })
            );
        }
        let _ = write!(
            h,
            "</table><p>Rejected-event rate: {}</p><table><tr><th>Feature</th><th>Missing</th><th>Out of range</th><th>Unseen category</th></tr>",
            num(a.rejected_rate)
        );
        for q in &a.quality {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&q.feature),
                num(q.missing_rate),
                num(q.out_of_range_rate),
                num(q.unseen_category_rate)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h3>Method notes</h3>\n");
    list(&mut h, &r.method_notes, "");

    h.push_str("<h2 id=\"controls\">8. Annex A controls evidenced</h2>\n<table><tr><th>Control</th><th>Objectives</th><th>Evaluations</th><th>Records</th></tr>");
    for c in &r.controls {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.control),
            escape(&c.objectives.join(", ")),
            c.evaluations,
            escape(&c.records.join("; "))
        );
    }
    let v = &r.verification;
    let _ = write!(
        h,
        "</table>\n<h2 id=\"verify\">9. How to verify</h2>\n<p>{}</p>\n<pre><code>{}</code></pre>\n<pre><code>{}</code></pre>\n</body></html>\n",
        escape(&v.explanation),
        escape(&v.database),
        escape(&v.pack)
    );
    h
}

fn list(h: &mut String, items: &[String], empty: &str) {
    if items.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", escape(empty));
        return;
    }
    h.push_str("<ul>");
    for i in items {
        let _ = write!(h, "<li>{}</li>", escape(i));
    }
    h.push_str("</ul>\n");
}

fn seqs(start: u64, end: Option<u64>) -> String {
    match end {
        Some(e) => format!("{start}, {e}"),
        None => start.to_string(),
    }
}

fn objective(h: &mut String, o: &ObjectiveSection, from_ms: i64, to_ms: i64) {
    let _ = write!(
        h,
        "<section class=\"objective\" id=\"objective-{}\"><h3>{} — {} <span class=\"{}\">({})</span></h3>\n<table>",
        escape(&o.id),
        escape(&o.id),
        escape(&o.title),
        escape(&o.judgement),
        escape(&o.judgement.replace('_', " "))
    );
    let e = &o.evaluations;
    let rows: Vec<(&str, String)> = vec![
        (
            "Model / metric",
            format!(
                "{} / {} {}",
                escape(&o.model),
                escape(&o.metric),
                escape(&o.selector)
            ),
        ),
        (
            "Target / warning",
            format!(
                "{} / {}",
                escape(&o.target),
                escape(o.warning.as_deref().unwrap_or("–"))
            ),
        ),
        (
            "Measured (last, min, mean, max)",
            format!(
                "{}, {}, {}, {} ({} values)",
                num(o.values.last),
                num(o.values.min),
                num(o.values.mean),
                num(o.values.max),
                o.values.count
            ),
        ),
        (
            "Evaluations in compliance",
            o.compliance_share
                .map_or("–".to_owned(), |c| format!("{:.1} %", c * 100.0)),
        ),
        (
            "Evaluations",
            format!(
                "{} total: {} met, {} at risk, {} breached, {} insufficient data, {} not measurable, {} no data",
                e.total, e.met, e.at_risk, e.breached, e.insufficient_data, e.not_measurable, e.no_data
            ),
        ),
        ("State at period end", escape(&o.state_at_end)),
        (
            "Severity / owner",
            format!("{} / {}", escape(&o.severity), escape(&o.owner)),
        ),
        (
            "Versions",
            escape(&o.versions.iter().map(|v| short(v)).collect::<Vec<_>>().join(" → ")),
        ),
        ("Rationale", escape(&o.rationale)),
        ("Plan: actions", escape(&o.plan.actions)),
        ("Plan: resources", escape(&o.plan.resources)),
        ("Plan: due", escape(&o.plan.due)),
        ("Plan: evaluation method", escape(&o.plan.evaluation)),
        ("Annex A controls", escape(&o.controls.join(", "))),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    h.push_str("</table>\n");
    h.push_str(&chart(
        &o.series,
        o.target_threshold,
        &o.breaches,
        from_ms,
        to_ms,
    ));
    intervals(h, "Breaches", &o.breaches);
    intervals(h, "Alerts (firing)", &o.alerts);
    h.push_str("</section>\n");
}

fn intervals(h: &mut String, title: &str, items: &[Interval]) {
    let _ = write!(h, "<h4>{title}</h4>");
    if items.is_empty() {
        h.push_str("<p>None.</p>\n");
        return;
    }
    h.push_str("<table><tr><th>Start</th><th>End</th><th>Duration</th><th>Records</th></tr>");
    for i in items {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&i.start),
            if i.end.is_empty() {
                "open".to_owned()
            } else {
                escape(&i.end)
            },
            duration(i.duration_seconds),
            seqs(i.start_seq, i.end_seq)
        );
    }
    h.push_str("</table>\n");
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
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"value against target {target}\">"
    );
    let _ = write!(
        s,
        "<rect x=\"{PAD_LEFT}\" y=\"{PAD_TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"#fafafa\" stroke=\"#ccc\"/>"
    );
    for b in breaches {
        let x0 = x(b.start_ms);
        let x1 = x(b.end_ms.unwrap_or(to_ms));
        let _ = write!(
            s,
            "<rect class=\"breach\" x=\"{x0:.1}\" y=\"{PAD_TOP}\" width=\"{:.1}\" height=\"{plot_h}\" fill=\"#e0413a\" fill-opacity=\"0.18\"><title>breach {} – {}</title></rect>",
            (x1 - x0).max(1.0),
            escape(&b.start),
            escape(if b.end.is_empty() { "open" } else { &b.end })
        );
    }
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
    let _ = write!(
        s,
        "<polyline class=\"target\" points=\"{}\" fill=\"none\" stroke=\"#a11\" stroke-dasharray=\"6 4\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#a11\" text-anchor=\"end\">target {}</text>",
        points(&step),
        WIDTH - PAD_RIGHT - 2.0,
        y(current) - 3.0,
        num(Some(current))
    );
    for v in [lo + margin, hi - margin] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            PAD_LEFT - 4.0,
            y(v) + 4.0,
            num(Some(v))
        );
    }
    for (ms, anchor) in [(from_ms, "start"), (to_ms, "end")] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{anchor}\">{}</text>",
            x(ms),
            HEIGHT - 8.0,
            escape(&rfc3339(ms))
        );
    }
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
    for run in runs.iter().filter(|r| !r.is_empty()) {
        let _ = write!(
            s,
            "<polyline class=\"value\" points=\"{}\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.6\"/>",
            points(run)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn points(xy: &[(f64, f64)]) -> String {
    xy.iter()
        .map(|(a, b)| format!("{a:.1},{b:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
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
