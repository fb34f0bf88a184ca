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

use aims_core::evidence::payload::{Evaluation, Payload};
use aims_core::evidence::Record;
use aims_core::lifecycle::State as LifecycleState;
use aims_core::metrics::drift::Method;
use aims_core::metrics::why::Why;
use aims_core::time::rfc3339_seconds as rfc3339;
use aims_core::Measured;

use crate::html::escape;
use crate::state::App;

/// Seconds between the page's own refreshes.
const REFRESH_SECONDS: u32 = 10;
/// Evaluations drawn in each sparkline.
const SPARK_POINTS: u32 = 60;

/// Width of the sparkline's right margin, where its scale (max and min) is written.
const SCALE_WIDTH: u32 = 44;

/// An inline SVG line of `points` (oldest first; `None` is an evaluation without a value and
/// breaks the line) with the target threshold as a dashed red line and the warning threshold,
/// when there is one, as a dotted amber line, scaled to fit all of them. The scale's maximum
/// and minimum are written in the right margin.
pub fn sparkline(
    points: &[Option<f64>],
    target: f64,
    warning: Option<f64>,
    width: u32,
    height: u32,
) -> String {
    let values: Vec<f64> = points.iter().flatten().copied().collect();
    let h = f64::from(height);
    let w = f64::from(width.saturating_sub(SCALE_WIDTH).max(10));
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
    let lines = std::iter::once(target).chain(warning);
    let lo = values
        .iter()
        .copied()
        .chain(lines.clone())
        .fold(f64::INFINITY, f64::min);
    let hi = values
        .iter()
        .copied()
        .chain(lines)
        .fold(f64::NEG_INFINITY, f64::max);
    let span = if hi - lo > 1e-12 { hi - lo } else { 1.0 };
    let pad = 3.0;
    let y = |v: f64| pad + (hi - v) / span * (h - 2.0 * pad);
    let step = if points.len() > 1 {
        (w - 2.0 * pad) / (points.len() - 1) as f64
    } else {
        0.0
    };
    let _ = write!(
        svg,
        "<text class=\"scale scale-max\" x=\"{x}\" y=\"{top:.1}\">{hi}</text>\
         <text class=\"scale scale-min\" x=\"{x}\" y=\"{bottom:.1}\">{lo}</text>",
        x = w + 4.0,
        top = pad + 7.0,
        bottom = h - pad,
        hi = number(hi),
        lo = number(lo),
    );
    if let Some(wv) = warning {
        let wy = y(wv);
        let _ = write!(
            svg,
            "<line class=\"warning\" x1=\"0\" y1=\"{wy:.1}\" x2=\"{w}\" y2=\"{wy:.1}\"/>"
        );
    }
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

/// The line under a sparkline: how many evaluations over what time span, and which line is
/// the target and which the warning.
fn spark_caption(o: &ObjectiveView) -> String {
    let n = o.history.len();
    let over = match o.span_ms {
        Some(ms) if n > 1 => format!(" over the last {}", age(ms)),
        _ => String::new(),
    };
    let warning = match o.warning_threshold {
        Some(w) => format!(
            " · <span class=\"key-warning\">warning {}{}</span>",
            number(w),
            unit_suffix(o.unit)
        ),
        None => String::new(),
    };
    format!(
        "<br><small class=\"spark-caption\">{n} evaluation{s}{over} · \
         <span class=\"key-target\">target {t}{u}</span>{warning}</small>",
        s = if n == 1 { "" } else { "s" },
        t = number(o.threshold),
        u = unit_suffix(o.unit),
    )
}

/// The unit a metric's values are in, empty for ratios, rates, shares and scores.
pub fn unit(metric: &str) -> &'static str {
    match metric {
        aims_core::objective::NO_DATA_METRIC => "s",
        "latency_p50" | "latency_p90" | "latency_p99" => "ms",
        "throughput" => "predictions/s",
        _ => "",
    }
}

fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!("\u{a0}{unit}")
    }
}

/// A count with thousands separated, e.g. `12,345`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The samples cell: how many samples the value rests on against the minimum, in words.
fn samples_text(o: &ObjectiveView) -> String {
    let (n, min) = o.samples;
    match n {
        _ if o.metric_name == aims_core::objective::NO_DATA_METRIC => {
            "<span class=\"muted\">not sample-based (seconds since the last summary)</span>"
                .to_owned()
        }
        Some(n) if n >= min => format!(
            "{} <small class=\"muted\">(at least {} needed)</small>",
            count(n),
            count(min)
        ),
        Some(n) => format!(
            "<span class=\"short\">{} of the {} needed</span>",
            count(n),
            count(min)
        ),
        None if o.state == "no_data" => format!(
            "<span class=\"muted\">none: the model sent no summaries recently ({} needed)</span>",
            count(min)
        ),
        None => format!(
            "<span class=\"muted\">none counted yet ({} needed)</span>",
            count(min)
        ),
    }
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
    /// Time from the oldest to the newest of those evaluations, ms.
    pub span_ms: Option<i64>,
    /// Warning threshold, drawn on the sparkline.
    pub warning_threshold: Option<f64>,
    /// The metric's name alone.
    pub metric_name: String,
    /// The unit of its values (`s`, `ms`, ...), empty when it has none.
    pub unit: &'static str,
    /// The figures behind the last value (per-group rates, drifted features), from the last
    /// evaluation record.
    pub why: Option<Why>,
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
.nc-open,.nc-reopened{background:#c62828}.nc-verifying{background:#1565c0}.nc-effective{background:#2e7d32}\
.spark .warning{stroke:#ef6c00;stroke-dasharray:1 2}.spark .scale{font-size:9px;fill:#5f6b76}.key-target{color:#c62828}.key-warning{color:#ef6c00}\
.why td{background:#fafbfc;border-bottom:1px solid #e3e7eb}.why table{width:auto;margin:.2em 0 .4em}.why th,.why td td{padding:.15em .6em;font-size:.92em}\
.ci .track{stroke:#c9d1d9;stroke-width:2}.ci .band{fill:#90caf9}.ci .point{stroke:#1d2329;stroke-width:2}\
.disadvantaged{color:#c62828}.short{color:#ef6c00}";

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
                val = value_with_unit(&o.value, o.unit),
                tgt = target_text(o),
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
            let samples = samples_text(o);
            let _ = write!(
                h,
                "<tr id=\"o-{id}\"><td><strong>{id}</strong><br><small>{title}<br>{model} · {metric} · {sev}</small></td>\
                 <td><span class=\"badge state-{st}\">{st}</span><br><small>for {since}</small></td>\
                 <td>{val}</td><td><code>{tgt}</code></td><td>{spark}{caption}</td><td>{samples}</td></tr>",
                id = escape(&o.id),
                title = escape(&o.title),
                model = escape(&o.model),
                metric = escape(&o.metric),
                sev = escape(&o.severity),
                st = escape(&o.state),
                since = age(s.now_ms - o.since_ms),
                val = value_with_unit(&o.value, o.unit),
                tgt = target_text(o),
                spark = sparkline(&o.history, o.threshold, o.warning_threshold, 224, 40),
                caption = spark_caption(o),
            );
            if let Some(why) = &o.why {
                let _ = write!(
                    h,
                    "<tr class=\"why\" id=\"why-{id}\"><td></td><td colspan=\"5\">{}</td></tr>",
                    why_html(why),
                    id = escape(&o.id),
                );
            }
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

/// The target condition with its unit.
fn target_text(o: &ObjectiveView) -> String {
    format!("{}{}", escape(&o.target), unit_suffix(o.unit))
}

/// A value with its unit, or, when there is none, why (visible, not only in a tooltip).
fn value_with_unit(v: &Result<f64, String>, unit: &str) -> String {
    match v {
        Ok(x) => format!("{}{}", number(*x), unit_suffix(unit)),
        Err(why) => format!(
            "<span class=\"muted\">no value</span><br><small class=\"muted\">{}</small>",
            escape(why)
        ),
    }
}

fn rate_name(rate: &str) -> &str {
    match rate {
        "selection_rate" => "selection rate",
        "tpr" => "true-positive rate",
        "fpr" => "false-positive rate",
        other => other,
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Ks => "KS p-value",
        Method::ChiSquare => "chi-square p-value",
        Method::Z => "Z-test p-value",
        Method::Wasserstein => "normed Wasserstein",
        Method::JensenShannon => "Jensen-Shannon distance",
    }
}

fn measured(m: &Measured) -> String {
    match m {
        Measured::Value(v) => number(*v),
        Measured::Undefined(why) => {
            format!("<span class=\"muted\" title=\"{}\">–</span>", escape(why))
        }
    }
}

/// The figures behind an objective's value: per-group rates with their interval bars and
/// sample sizes, naming the disadvantaged group; or the drifted features with their
/// statistics against the threshold. Attribute and group names are data, escaped.
pub fn why_html(why: &Why) -> String {
    let mut h = String::new();
    match why {
        Why::Groups(rates) => {
            for r in rates {
                let _ = write!(
                    h,
                    "<div class=\"groups\"><strong>{rate} by {attr}</strong>",
                    rate = rate_name(&r.rate),
                    attr = escape(&r.attribute),
                );
                if let Some(d) = &r.disadvantaged {
                    let _ = write!(
                        h,
                        " · disadvantaged: <strong class=\"disadvantaged\">{}</strong> (the lowest {})",
                        escape(d),
                        rate_name(&r.rate)
                    );
                }
                h.push_str("<table><tr><th>group</th><th>rate</th><th>interval</th><th></th><th>samples</th></tr>");
                for g in &r.groups {
                    let interval = g.interval.map(|i| (i.lower, i.upper));
                    let bounds = match g.interval {
                        Some(i) => format!(
                            "[{}, {}] <small class=\"muted\">{}\u{a0}%</small>",
                            number(i.lower),
                            number(i.upper),
                            number(i.confidence * 100.0)
                        ),
                        None => "<span class=\"muted\">none</span>".to_owned(),
                    };
                    let mut notes = Vec::new();
                    if r.disadvantaged.as_deref() == Some(g.group.as_str()) {
                        notes.push("disadvantaged".to_owned());
                    }
                    if r.reference_group.as_deref() == Some(g.group.as_str()) {
                        notes.push("reference".to_owned());
                    }
                    if g.too_small {
                        notes.push("too small: left out of the parity".to_owned());
                    }
                    let _ = write!(
                        h,
                        "<tr class=\"group\"><td>{group}</td><td>{value}</td><td>{bar}</td><td>{bounds}</td>\
                         <td>n = {n}{notes}</td></tr>",
                        group = escape(&g.group),
                        value = measured(&g.value),
                        bar = crate::html::interval_bar(g.value.value(), interval, (0.0, 1.0)),
                        n = count(g.samples),
                        notes = if notes.is_empty() {
                            String::new()
                        } else {
                            format!(" <small class=\"muted\">({})</small>", notes.join(", "))
                        },
                    );
                }
                h.push_str("</table></div>");
            }
        }
        Why::Drift(d) => {
            if d.features.is_empty() {
                let _ = write!(
                    h,
                    "<div class=\"drift\">No feature drifted (of {} judged).</div>",
                    d.judged
                );
                return h;
            }
            let _ = write!(
                h,
                "<div class=\"drift\"><strong>Drifted features</strong> <small class=\"muted\">({} of {} judged)</small>\
                 <table><tr><th>feature</th><th>test</th><th>score</th><th>threshold</th><th>PSI</th><th>KS</th><th>Wasserstein</th><th>drifted</th></tr>",
                d.features.iter().filter(|f| f.drifted == Some(true)).count(),
                d.judged
            );
            for f in &d.features {
                let opt =
                    |m: &Option<Measured>| m.as_ref().map_or_else(|| "–".to_owned(), measured);
                let _ = write!(
                    h,
                    "<tr class=\"feature\"><td>{name}</td><td>{method}</td><td>{score}</td><td>{cmp} {threshold}</td>\
                     <td>{psi}</td><td>{ks}</td><td>{w}</td><td>{drifted}</td></tr>",
                    name = escape(&f.feature),
                    method = method_name(f.method),
                    score = measured(&f.score),
                    cmp = match f.method {
                        Method::Wasserstein | Method::JensenShannon => "drift at ≥",
                        _ => "drift below",
                    },
                    threshold = number(f.threshold),
                    psi = measured(&f.psi),
                    ks = opt(&f.ks),
                    w = opt(&f.wasserstein),
                    drifted = match f.drifted {
                        Some(true) => "<strong class=\"disadvantaged\">yes</strong>",
                        Some(false) => "no",
                        None => "–",
                    },
                );
            }
            h.push_str("</table></div>");
        }
    }
    h
}

/// The evaluation a record holds, read through its typed payload; `None` for a record that
/// is not an evaluation.
fn evaluation(canonical: &str) -> Option<Evaluation> {
    let record: Record = serde_json::from_str(canonical).ok()?;
    match Payload::of(&record).ok()? {
        Payload::Evaluation(e) => Some(e),
        _ => None,
    }
}

/// The value an evaluation record holds; `None` for an evaluation without a value or a
/// record that is not an evaluation.
#[cfg(test)]
fn evaluated_value(canonical: &str) -> Option<f64> {
    evaluation(canonical)?.value.and_then(|m| m.value())
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
        // Newest first, as the store answers.
        let recent: Vec<Evaluation> = app
            .store
            .latest_evaluations(&o.id, SPARK_POINTS)
            .await?
            .iter()
            .filter_map(|canonical| evaluation(canonical))
            .collect();
        let span_ms = match (recent.first(), recent.last()) {
            (Some(newest), Some(oldest)) => Some(newest.window.to_ms - oldest.window.to_ms),
            _ => None,
        };
        let why = recent.first().and_then(|e| e.why.clone());
        let history: Vec<Option<f64>> = recent
            .iter()
            .rev()
            .map(|e| e.value.as_ref().and_then(Measured::value))
            .collect();
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
                Some(Measured::Value(v)) => Ok(*v),
                Some(Measured::Undefined(why)) => Err(why.clone()),
                None => Err("not evaluated yet".to_owned()),
            },
            target: o.target.to_string(),
            threshold: o.target.threshold,
            severity: o.severity.as_str().to_owned(),
            owner: o.owner.clone(),
            samples: (s.and_then(|s| s.samples), o.min_samples),
            history,
            span_ms,
            warning_threshold: o.warning.map(|w| w.threshold),
            metric_name: o.metric.clone(),
            unit: unit(&o.metric),
            why,
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
        let svg = sparkline(&[Some(1.0), Some(0.5), Some(0.9)], 0.8, None, 144, 20);
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
    fn sparklines_carry_their_scale_and_the_warning_line() {
        let svg = sparkline(&[Some(0.7), Some(0.9)], 0.8, Some(0.85), 224, 40);
        assert!(
            svg.contains("class=\"scale scale-max\"") && svg.contains(">0.9</text>"),
            "the maximum is labelled: {svg}"
        );
        assert!(
            svg.contains(">0.7</text>"),
            "the minimum is labelled: {svg}"
        );
        assert!(svg.contains("class=\"warning\""), "{svg}");
        let below = sparkline(&[Some(0.9), Some(0.95)], 0.8, Some(0.5), 224, 40);
        assert!(
            below.contains(">0.5</text>"),
            "the scale reaches the warning line: {below}"
        );
        // The line stays left of the scale's margin.
        for (x, _) in coordinates(&svg) {
            assert!(x <= f64::from(224 - SCALE_WIDTH), "{svg}");
        }
    }

    #[test]
    fn units_and_sample_counts_read_as_words() {
        assert_eq!(unit("no_data"), "s");
        assert_eq!(unit("latency_p99"), "ms");
        assert_eq!(unit("accuracy"), "");
        assert_eq!(count(1), "1");
        assert_eq!(count(12_345), "12,345");
        assert_eq!(count(1_234_567), "1,234,567");
        let mut o = view();
        o.samples = (None, 1);
        o.state = "insufficient_data".into();
        assert_eq!(
            samples_text(&o),
            "<span class=\"muted\">none counted yet (1 needed)</span>"
        );
        o.samples = (Some(150), 2000);
        assert!(samples_text(&o).contains("150 of the 2,000 needed"));
        o.samples = (Some(12_000), 2000);
        assert!(samples_text(&o).contains("12,000 <small"));
        o.metric_name = "no_data".into();
        o.samples = (None, 1);
        assert!(samples_text(&o).contains("not sample-based"));
        assert_eq!(value_with_unit(&Ok(8.392), "s"), "8.392\u{a0}s");
        assert!(value_with_unit(&Err("not evaluated yet".into()), "").contains("not evaluated yet"));
    }

    #[test]
    fn the_why_row_names_the_groups_the_disadvantaged_one_and_drifted_features() {
        use aims_core::metrics::intervals::Interval;
        use aims_core::metrics::why::{DriftedFeatures, FeatureStats, GroupRate, GroupRates};
        let ci = |lower, upper| {
            Some(Interval {
                lower,
                upper,
                confidence: 0.95,
                adjusted: false,
            })
        };
        let groups = Why::Groups(vec![GroupRates {
            attribute: "gender×age_band".into(),
            rate: "selection_rate".into(),
            groups: vec![
                GroupRate {
                    group: "F×18-29".into(),
                    samples: 4_000,
                    value: Measured::Value(0.12),
                    interval: ci(0.11, 0.13),
                    too_small: false,
                },
                GroupRate {
                    group: "M×<30>".into(),
                    samples: 4_100,
                    value: Measured::Value(0.38),
                    interval: ci(0.36, 0.40),
                    too_small: false,
                },
            ],
            disadvantaged: Some("F×18-29".into()),
            reference_group: None,
        }]);
        let html = why_html(&groups);
        assert!(html.contains("selection rate by gender×age_band"), "{html}");
        assert!(
            html.contains("disadvantaged: <strong class=\"disadvantaged\">F×18-29</strong>"),
            "{html}"
        );
        assert!(
            html.contains("M×&lt;30&gt;"),
            "group names are escaped: {html}"
        );
        assert!(
            html.contains("<td>0.12</td>") && html.contains("n = 4,000"),
            "{html}"
        );
        assert!(
            html.contains("[0.11, 0.13]") && html.matches("class=\"ci\"").count() == 2,
            "{html}"
        );
        let drift = Why::Drift(DriftedFeatures {
            judged: 7,
            features: vec![FeatureStats {
                feature: "income".into(),
                method: Method::Wasserstein,
                score: Measured::Value(0.68),
                threshold: 0.1,
                drifted: Some(true),
                psi: Measured::Value(0.61),
                ks: Some(Measured::Value(0.27)),
                wasserstein: Some(Measured::Value(0.68)),
            }],
        });
        let html = why_html(&drift);
        assert!(
            html.contains("(1 of 7 judged)") && html.contains("<td>income</td>"),
            "{html}"
        );
        assert!(
            html.contains("normed Wasserstein") && html.contains("drift at ≥ 0.1"),
            "{html}"
        );
        assert!(
            html.contains("<td>0.61</td><td>0.27</td><td>0.68</td>"),
            "{html}"
        );
    }

    #[test]
    fn sparkline_breaks_at_missing_values_and_handles_flat_and_empty_series() {
        let svg = sparkline(
            &[Some(1.0), Some(2.0), None, Some(3.0), Some(4.0)],
            2.5,
            None,
            144,
            20,
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        let lone = sparkline(&[None, Some(1.0), None], 1.0, None, 144, 20);
        assert!(lone.contains("<circle") && !lone.contains("NaN"), "{lone}");
        let flat = sparkline(&[Some(0.8), Some(0.8)], 0.8, Some(0.8), 144, 20);
        assert!(!flat.contains("NaN"), "{flat}");
        let empty = sparkline(&[None, None], 0.8, None, 144, 20);
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

    fn view() -> ObjectiveView {
        ObjectiveView {
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
            span_ms: Some(120_000),
            warning_threshold: Some(0.85),
            metric_name: "demographic_parity_ratio".into(),
            unit: "",
            why: None,
        }
    }

    #[test]
    fn the_page_escapes_data_and_shows_firing_objectives_as_alerts() {
        let snap = Snapshot {
            now_ms: 1_800_000_000_000,
            policy: "Policy <v3>".into(),
            file_version: "abcdef0123456789".into(),
            objectives: vec![view()],
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
            html.contains("3 evaluations over the last 2 min")
                && html.contains("target 0.8")
                && html.contains("warning 0.85"),
            "the sparkline says its span and its lines: {html}"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
