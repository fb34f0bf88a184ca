//! The status page at `GET /`: what a person opening the collector in a browser needs at a
//! glance. Objectives with their state, value against target and a sparkline of recent
//! evaluations; models and agents with the age of their last summary; open alerts; links to
//! the report and the evidence.
//!
//! Server-rendered HTML with inline CSS and SVG (no external assets, so it works offline and
//! under a strict Content-Security-Policy), refreshed by a meta tag. Every text from data or
//! configuration goes through [`escape`]. The handler, with its access rule, is
//! the HTTP layer's `status_page`.

use std::fmt::Write as _;

use aims_core::evidence::payload::Payload;
use aims_core::evidence::Record;
use aims_core::lifecycle::State as LifecycleState;
use aims_core::time::rfc3339_seconds as rfc3339;

use crate::html::escape;
use crate::state::App;

/// Seconds between the page's own refreshes.
const REFRESH_SECONDS: u32 = 10;
/// Evaluations drawn in each sparkline.
const SPARK_POINTS: u32 = 60;

/// An inline SVG line of `points` (oldest first; `None` is an evaluation without a value and
/// breaks the line) with the target threshold as a dashed line, scaled to fit both.
pub fn sparkline(points: &[Option<f64>], target: f64, width: u32, height: u32) -> String {
    let values: Vec<f64> = points.iter().flatten().copied().collect();
    let (w, h) = (f64::from(width), f64::from(height));
    let mut svg = format!(
        "<svg class=\"spark\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"recent values\">"
    );
    if values.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"4\" y=\"{}\" class=\"none\">no values yet</text></svg>",
            h / 2.0 + 4.0
        );
        return svg;
    }
    let lo = values.iter().copied().fold(target, f64::min);
    let hi = values.iter().copied().fold(target, f64::max);
    let span = if hi - lo > 1e-12 { hi - lo } else { 1.0 };
    let pad = 3.0;
    let y = |v: f64| pad + (hi - v) / span * (h - 2.0 * pad);
    let step = if points.len() > 1 {
        (w - 2.0 * pad) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let ty = y(target);
    let _ = write!(
        svg,
        "<line class=\"target\" x1=\"0\" y1=\"{ty:.1}\" x2=\"{w}\" y2=\"{ty:.1}\"/>"
    );
    let mut run: Vec<String> = Vec::new();
    let flush = |run: &mut Vec<String>, svg: &mut String| {
        match run.len() {
            0 => {}
            1 => {
                let (x, y) = run[0].split_once(',').unwrap_or(("0", "0"));
                let _ = write!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"1.5\"/>");
            }
            _ => {
                let _ = write!(svg, "<polyline points=\"{}\"/>", run.join(" "));
            }
        }
        run.clear();
    };
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(v) => run.push(format!("{:.1},{:.1}", pad + i as f64 * step, y(*v))),
            None => flush(&mut run, &mut svg),
        }
    }
    flush(&mut run, &mut svg);
    svg.push_str("</svg>");
    svg
}

/// A duration in milliseconds as a short age: `42 s`, `5 min`, `3 h`, `2 d`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// A metric value with at most four significant decimals.
fn number(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// One objective as the page shows it.
#[derive(Debug, Clone)]
pub struct ObjectiveView {
    /// Objective id.
    pub id: String,
    /// One-line statement.
    pub title: String,
    /// Model watched.
    pub model: String,
    /// Metric, with its feature / attribute / group.
    pub metric: String,
    /// Lifecycle state name.
    pub state: String,
    /// When the state was entered, ms.
    pub since_ms: i64,
    /// Last value, or why there is none.
    pub value: Result<f64, String>,
    /// Target condition, e.g. `>= 0.8`.
    pub target: String,
    /// Target threshold, drawn on the sparkline.
    pub threshold: f64,
    /// Severity name.
    pub severity: String,
    /// Owner.
    pub owner: String,
    /// Samples behind the last value, and the minimum.
    pub samples: (Option<u64>, u64),
    /// Recent values, oldest first.
    pub history: Vec<Option<f64>>,
}

/// One model as the page shows it.
#[derive(Debug, Clone)]
pub struct ModelView {
    /// Model name.
    pub name: String,
    /// Latest reference profile's model version, when one is known.
    pub version: Option<String>,
    /// When its last summary arrived, ms.
    pub last_ms: Option<i64>,
    /// Agents sending for it: name, last summary (ms), summaries sent.
    pub agents: Vec<(String, i64, i64)>,
}

/// One nonconformity not yet closed (Clause 10.2), as the page shows it.
#[derive(Debug, Clone)]
pub struct NonconformityView {
    /// Its id.
    pub id: u64,
    /// The objective that breached.
    pub objective: String,
    /// Its status name.
    pub status: String,
    /// Its severity.
    pub severity: String,
    /// When it opened, ms.
    pub opened_ms: i64,
    /// The owner of its first open action (else its last action's), if it has actions.
    pub owner: Option<String>,
    /// Its actions past due.
    pub overdue: usize,
}

/// Everything the page shows, gathered first so rendering is a pure function.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Render time, ms.
    pub now_ms: i64,
    /// The AI policy the objectives serve.
    pub policy: String,
    /// Objectives file version.
    pub file_version: String,
    /// Objectives in file order.
    pub objectives: Vec<ObjectiveView>,
    /// Models.
    pub models: Vec<ModelView>,
    /// A model without summaries for longer than this is stale, ms.
    pub stale_after_ms: i64,
    /// Evidence chain head: sequence and hash.
    pub evidence_head: (u64, String),
    /// Query string carried by the refresh (`?token=...`), empty without a token.
    pub refresh_query: String,
    /// Nonconformities not closed, oldest first.
    pub nonconformities: Vec<NonconformityView>,
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#1d2329}\
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin-top:1.6em}small,.muted{color:#5f6b76}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e7eb;vertical-align:middle}\
th{font-weight:600;background:#f5f7f9}code{font-size:.92em}\
.badge{display:inline-block;padding:.1em .55em;border-radius:.8em;font-size:.85em;font-weight:600;color:#fff;background:#6c7a86}\
.state-ok{background:#2e7d32}.state-firing{background:#c62828}.state-pending{background:#ef6c00}.state-resolved{background:#1565c0}\
.state-insufficient_data,.state-no_data{background:#6c7a86}.stale{color:#c62828;font-weight:600}\
.spark polyline{fill:none;stroke:#1d2329;stroke-width:1.5}.spark circle{fill:#1d2329}.spark .target{stroke:#c62828;stroke-dasharray:3 3}\
.spark .none{font-size:10px;fill:#5f6b76}.alerts td{background:#fdecea}ul{padding-left:1.2em}\
.nc-open,.nc-reopened{background:#c62828}.nc-verifying{background:#1565c0}.nc-effective{background:#2e7d32}";

/// Renders the page.
pub fn render(s: &Snapshot) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let firing = s
        .objectives
        .iter()
        .filter(|o| o.state == LifecycleState::Firing.as_str())
        .count();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}; url=/{q}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title}AIMS Monitor</title><style>{STYLE}</style></head><body>\
         <h1>AIMS Monitor</h1><p class=\"muted\">{policy} · objectives version <code>{ver}</code> · \
         {now} · refreshes every {REFRESH_SECONDS} s</p>",
        q = escape(&s.refresh_query),
        title = if firing > 0 {
            format!("({firing} firing) ")
        } else {
            String::new()
        },
        policy = escape(&s.policy),
        ver = escape(s.file_version.get(..12).unwrap_or(&s.file_version)),
        now = rfc3339(s.now_ms),
    );

    h.push_str("<h2>Open alerts</h2>");
    let open: Vec<&ObjectiveView> = s
        .objectives
        .iter()
        .filter(|o| o.state == "firing" || o.state == "pending")
        .collect();
    if open.is_empty() {
        h.push_str("<p class=\"muted\">None.</p>");
    } else {
        h.push_str("<table class=\"alerts\"><tr><th>objective</th><th>state</th><th>severity</th><th>value</th><th>target</th><th>since</th><th>owner</th></tr>");
        for o in open {
            let _ = write!(
                h,
                "<tr><td><a href=\"#o-{id}\">{id}</a></td><td><span class=\"badge state-{st}\">{st}</span></td><td>{sev}</td>\
                 <td>{val}</td><td>{tgt}</td><td>{since} ago</td><td>{owner}</td></tr>",
                id = escape(&o.id),
                st = escape(&o.state),
                sev = escape(&o.severity),
                val = value_text(&o.value),
                tgt = escape(&o.target),
                since = age(s.now_ms - o.since_ms),
                owner = escape(&o.owner),
            );
        }
        h.push_str("</table>");
    }

    nonconformities(&mut h, s);

    h.push_str("<h2>Objectives</h2>");
    if s.objectives.is_empty() {
        h.push_str("<p class=\"muted\">No objectives are configured.</p>");
    } else {
        h.push_str("<table><tr><th>objective</th><th>state</th><th>value</th><th>target</th><th>recent evaluations</th><th>samples</th></tr>");
        for o in &s.objectives {
            let samples = match o.samples {
                (Some(n), min) => format!("{n} / {min}"),
                (None, min) => format!("– / {min}"),
            };
            let _ = write!(
                h,
                "<tr id=\"o-{id}\"><td><strong>{id}</strong><br><small>{title}<br>{model} · {metric} · {sev}</small></td>\
                 <td><span class=\"badge state-{st}\">{st}</span><br><small>for {since}</small></td>\
                 <td>{val}</td><td><code>{tgt}</code></td><td>{spark}</td><td>{samples}</td></tr>",
                id = escape(&o.id),
                title = escape(&o.title),
                model = escape(&o.model),
                metric = escape(&o.metric),
                sev = escape(&o.severity),
                st = escape(&o.state),
                since = age(s.now_ms - o.since_ms),
                val = value_text(&o.value),
                tgt = escape(&o.target),
                spark = sparkline(&o.history, o.threshold, 180, 36),
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>Models and agents</h2>");
    if s.models.is_empty() {
        h.push_str("<p class=\"muted\">No model has a reference profile or an objective yet.</p>");
    } else {
        h.push_str("<table><tr><th>model</th><th>version</th><th>last summary</th><th>agents (last summary, summaries)</th></tr>");
        for m in &s.models {
            let last = match m.last_ms {
                Some(t) if s.now_ms - t > s.stale_after_ms => {
                    format!(
                        "<span class=\"stale\">{} ago (stale)</span>",
                        age(s.now_ms - t)
                    )
                }
                Some(t) => format!("{} ago", age(s.now_ms - t)),
                None => "<span class=\"stale\">never</span>".to_owned(),
            };
            let agents = if m.agents.is_empty() {
                "<span class=\"muted\">none yet</span>".to_owned()
            } else {
                m.agents
                    .iter()
                    .map(|(name, at, n)| {
                        let class = if s.now_ms - at > s.stale_after_ms {
                            " class=\"stale\""
                        } else {
                            ""
                        };
                        format!(
                            "<span{class}>{} ({} ago, {n})</span>",
                            escape(name),
                            age(s.now_ms - at)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{last}</td><td>{agents}</td></tr>",
                escape(&m.name),
                escape(m.version.as_deref().unwrap_or("–")),
            );
        }
        h.push_str("</table>");
    }

    let week_ago = rfc3339(s.now_ms - 7 * 86_400_000);
    let now = rfc3339(s.now_ms);
    let _ = write!(
        h,
        "<h2>Report and evidence</h2><ul>\
         <li><a href=\"/v1/reports?from={week_ago}&amp;to={now}&amp;format=html\">Performance-evaluation report, last 7 days</a> (Clause 9.1)</li>\
         <li>Evidence log: <a href=\"/v1/evidence\">/v1/evidence</a>, head record {seq}, hash <code>{hash}</code>. \
         Verify the whole chain on the collector's host with <code>aims-collector evidence verify --config &lt;collector.toml&gt;</code>: \
         it recomputes every hash and names the first broken record.</li>\
         <li>APIs: <a href=\"/v1/objectives\">objectives</a> · <a href=\"/v1/alerts\">alerts</a> · \
         <a href=\"/metrics\">Prometheus metrics</a> · <a href=\"/openapi.json\">OpenAPI</a></li></ul>\
         </body></html>",
        seq = s.evidence_head.0,
        hash = escape(&s.evidence_head.1),
    );
    h
}

/// The "Open nonconformities" table: every one not closed, with its age and owner.
fn nonconformities(h: &mut String, s: &Snapshot) {
    h.push_str("<h2>Open nonconformities</h2>");
    if s.nonconformities.is_empty() {
        h.push_str("<p class=\"muted\">None.</p>");
        return;
    }
    h.push_str("<table class=\"nonconformities\"><tr><th>id</th><th>objective</th><th>status</th><th>severity</th><th>age</th><th>owner</th><th>overdue actions</th></tr>");
    for n in &s.nonconformities {
        let owner = match &n.owner {
            Some(o) => escape(o),
            None => "<span class=\"muted\">no action yet</span>".to_owned(),
        };
        let overdue = if n.overdue > 0 {
            format!("<span class=\"stale\">{}</span>", n.overdue)
        } else {
            "0".to_owned()
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"/v1/nonconformities/{id}\">{id}</a></td><td><a href=\"#o-{obj}\">{obj}</a></td>\
             <td><span class=\"badge nc-{st}\">{st}</span></td><td>{sev}</td><td>{age}</td><td>{owner}</td><td>{overdue}</td></tr>",
            id = n.id,
            obj = escape(&n.objective),
            st = escape(&n.status),
            sev = escape(&n.severity),
            age = age(s.now_ms - n.opened_ms),
        );
    }
    h.push_str("</table>");
}

fn value_text(v: &Result<f64, String>) -> String {
    match v {
        Ok(x) => number(*x),
        Err(why) => format!("<span class=\"muted\" title=\"{}\">–</span>", escape(why)),
    }
}

/// The value an evaluation record holds, read through its typed payload; `None` for an
/// evaluation without a value or a record that is not an evaluation.
fn evaluated_value(canonical: &str) -> Option<f64> {
    let record: Record = serde_json::from_str(canonical).ok()?;
    match Payload::of(&record).ok()? {
        Payload::Evaluation(e) => e.value.and_then(|m| m.value()),
        _ => None,
    }
}

/// Gathers what the page shows at `now_ms`; `refresh_query` is appended to the page's own
/// refresh link.
pub async fn snapshot(
    app: &App,
    now_ms: i64,
    refresh_query: String,
) -> Result<Snapshot, crate::store::StoreError> {
    let file = app.objectives();
    let status = app.status.read().clone();
    let mut objectives = Vec::with_capacity(file.objectives.len());
    for o in &file.objectives {
        let s = status.get(&o.id);
        let mut history: Vec<Option<f64>> = app
            .store
            .latest_evaluations(&o.id, SPARK_POINTS)
            .await?
            .into_iter()
            .map(|canonical| evaluated_value(&canonical))
            .collect();
        history.reverse();
        let selector = [
            &o.selector.feature,
            &o.selector.attribute,
            &o.selector.group,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>();
        objectives.push(ObjectiveView {
            id: o.id.clone(),
            title: o.title.clone(),
            model: o.model.clone(),
            metric: if selector.is_empty() {
                o.metric.clone()
            } else {
                format!("{}({})", o.metric, selector.join(", "))
            },
            state: s
                .map_or("insufficient_data", |s| s.lifecycle.state.as_str())
                .to_owned(),
            since_ms: s.map_or(now_ms, |s| s.lifecycle.since_ms),
            value: match s.and_then(|s| s.last_value.as_ref()) {
                Some(aims_core::Measured::Value(v)) => Ok(*v),
                Some(aims_core::Measured::Undefined(why)) => Err(why.clone()),
                None => Err("not evaluated yet".to_owned()),
            },
            target: o.target.to_string(),
            threshold: o.target.threshold,
            severity: o.severity.as_str().to_owned(),
            owner: o.owner.clone(),
            samples: (s.and_then(|s| s.samples), o.min_samples),
            history,
        });
    }
    let mut names: Vec<String> = file.objectives.iter().map(|o| o.model.clone()).collect();
    let versions: Vec<(String, Option<String>)> = {
        let profiles = app.profiles.read();
        names.extend(profiles.models());
        names.sort();
        names.dedup();
        names
            .iter()
            .map(|n| {
                let v = profiles.latest(n).map(|p| p.model_version.clone());
                (n.clone(), v)
            })
            .collect()
    };
    let mut models = Vec::with_capacity(versions.len());
    for (name, version) in versions {
        let last_ms = app.aggregates.read().last_received(&name);
        let agents = app.store.agents_of(&name).await?;
        models.push(ModelView {
            name,
            version,
            last_ms,
            agents,
        });
    }
    Ok(Snapshot {
        now_ms,
        policy: file.policy.clone(),
        file_version: file.version.clone(),
        objectives,
        models,
        stale_after_ms: app.config.evaluation.stale_after.as_millis() as i64,
        evidence_head: app.evidence.head().await,
        refresh_query,
        nonconformities: app
            .nonconformities
            .read()
            .values()
            .filter(|n| n.status.is_active())
            .map(|n| NonconformityView {
                id: n.id,
                objective: n.objective.clone(),
                status: n.status.as_str().to_owned(),
                severity: n.severity.clone(),
                opened_ms: n.opened_ms,
                owner: n.owner().map(str::to_owned),
                overdue: n.overdue(now_ms).count(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_values_are_read_from_typed_evaluation_records() {
        let evaluation = |value: serde_json::Value| {
            let data = serde_json::json!({"objective": "o", "version": "v", "model": "m",
                "metric": "psi", "selector": {}, "value": value, "target": "<= 0.2",
                "warning": null, "verdict": "met", "samples": 1, "min_samples": 1,
                "window": {"from_ms": 0, "to_ms": 1}, "model_versions": null,
                "profile_hash": null, "state": "ok"});
            let r = Record {
                seq: 1,
                at_ms: 1,
                kind: aims_core::evidence::Kind::Evaluation,
                data,
            };
            aims_core::hash::canonical_json(&r)
        };
        assert_eq!(
            evaluated_value(&evaluation(serde_json::json!(0.25))),
            Some(0.25)
        );
        assert_eq!(
            evaluated_value(&evaluation(serde_json::json!({"undefined": "no data"}))),
            None
        );
        assert_eq!(evaluated_value("not json"), None);
    }

    fn coordinates(svg: &str) -> Vec<(f64, f64)> {
        let start = svg.find("<polyline points=\"").expect("a polyline") + 18;
        let end = start + svg[start..].find('"').expect("closing quote");
        svg[start..end]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn sparkline_scales_points_and_target_into_the_box() {
        let svg = sparkline(&[Some(1.0), Some(0.5), Some(0.9)], 0.8, 100, 20);
        let pts = coordinates(&svg);
        assert_eq!(pts.len(), 3);
        for (x, y) in &pts {
            assert!(
                (0.0..=100.0).contains(x) && (0.0..=20.0).contains(y),
                "{svg}"
            );
        }
        assert!(
            pts[0].0 < pts[1].0 && pts[1].0 < pts[2].0,
            "time runs left to right"
        );
        assert!(
            pts[0].1 < pts[2].1 && pts[2].1 < pts[1].1,
            "higher values are higher up"
        );
        assert!(svg.contains("class=\"target\""), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn sparkline_breaks_at_missing_values_and_handles_flat_and_empty_series() {
        let svg = sparkline(
            &[Some(1.0), Some(2.0), None, Some(3.0), Some(4.0)],
            2.5,
            100,
            20,
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        let lone = sparkline(&[None, Some(1.0), None], 1.0, 100, 20);
        assert!(lone.contains("<circle") && !lone.contains("NaN"), "{lone}");
        let flat = sparkline(&[Some(0.8), Some(0.8)], 0.8, 100, 20);
        assert!(!flat.contains("NaN"), "{flat}");
        let empty = sparkline(&[None, None], 0.8, 100, 20);
        assert!(empty.contains("no values yet") && !empty.contains("polyline"));
    }

    #[test]
    fn ages_and_numbers_read_short() {
        assert_eq!(age(42_000), "42 s");
        assert_eq!(age(300_000), "5 min");
        assert_eq!(age(3 * 3_600_000), "3 h");
        assert_eq!(age(3 * 86_400_000), "3 d");
        assert_eq!(age(-5), "0 s");
        assert_eq!(number(0.712345), "0.7123");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(-0.00001), "0");
    }

    #[test]
    fn the_page_escapes_data_and_shows_firing_objectives_as_alerts() {
        let snap = Snapshot {
            now_ms: 1_800_000_000_000,
            policy: "Policy <v3>".into(),
            file_version: "abcdef0123456789".into(),
            objectives: vec![ObjectiveView {
                id: "parity".into(),
                title: "Approvals <script>alert(1)</script>".into(),
                model: "credit".into(),
                metric: "demographic_parity_ratio(gender)".into(),
                state: "firing".into(),
                since_ms: 1_800_000_000_000 - 90_000,
                value: Ok(0.61),
                target: ">= 0.8".into(),
                threshold: 0.8,
                severity: "critical".into(),
                owner: "risk@example.com".into(),
                samples: (Some(1200), 200),
                history: vec![Some(0.9), Some(0.7), Some(0.61)],
            }],
            models: vec![ModelView {
                name: "credit".into(),
                version: Some("1.0.0".into()),
                last_ms: Some(1_800_000_000_000 - 3_000),
                agents: vec![("agent-1".into(), 1_800_000_000_000 - 3_000, 12)],
            }],
            stale_after_ms: 600_000,
            evidence_head: (42, "ff00".into()),
            refresh_query: String::new(),
            nonconformities: vec![NonconformityView {
                id: 3,
                objective: "parity".into(),
                status: "action_planned".into(),
                severity: "critical".into(),
                opened_ms: 1_800_000_000_000 - 3 * 3_600_000,
                owner: Some("ml-platform <ops>@example.com".into()),
                overdue: 1,
            }],
        };
        let html = render(&snap);
        assert!(html.contains("<h2>Open nonconformities</h2>"));
        assert!(
            html.contains("<a href=\"/v1/nonconformities/3\">3</a>")
                && html.contains("<td>3 h</td>")
                && html.contains("ml-platform &lt;ops&gt;@example.com")
                && html.contains("<span class=\"stale\">1</span>"),
            "id, age, owner and overdue actions"
        );
        let none = render(&Snapshot {
            nonconformities: vec![],
            ..snap.clone()
        });
        assert!(!none.contains("class=\"nonconformities\""));
        assert!(!html.contains("<script>"), "data is escaped");
        assert!(html.contains("&lt;script&gt;") && html.contains("Policy &lt;v3&gt;"));
        assert!(html.contains("<title>(1 firing) AIMS Monitor</title>"));
        assert!(html.contains("<table class=\"alerts\">") && html.contains("state-firing"));
        assert!(html.contains("0.61") && html.contains("&gt;= 0.8"));
        assert!(html.contains("agent-1 (3 s ago, 12)"));
        assert!(html.contains("/v1/reports?from=") && html.contains("evidence verify"));
        assert!(html.contains("http-equiv=\"refresh\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
