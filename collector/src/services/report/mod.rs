//! The Clause 9 performance-evaluation report.
//!
//! [`build`] reads the evidence log (and, for the fairness, drift and data-quality analysis, the
//! stored summaries of the period) into one [`Report`] value. That value is the single source:
//! the JSON output is its serialisation, and the HTML and Markdown renderers only format it, so
//! the three formats can never disagree. Every figure is derived from recorded evidence, never
//! from the live state, so a report of a past period reads the same tomorrow.

pub mod html;
pub mod markdown;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aims_core::evidence::payload::{GapEdge, Payload};
use aims_core::evidence::{Record, GENESIS};
use aims_core::hash::{canonical_json, sha256_hex};
use aims_core::lifecycle::State;
use aims_core::metrics::{self, Measured};
use aims_core::objective::{Condition, Objective, Plan};
use aims_core::time::{self, Bound};
use aims_core::WindowSummary;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::store::{EvidenceRow, Store, StoreError};

/// Records read per page while scanning the log.
const PAGE: u32 = 5_000;

/// Why a report could not be built.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored evidence record does not parse; `evidence verify` will say more.
    #[error("evidence record {seq} does not parse: {source}")]
    Record {
        /// Its sequence number.
        seq: u64,
        /// Why.
        source: serde_json::Error,
    },
    /// The period is empty or reversed.
    #[error("the period is empty: --from must be before --to")]
    Period,
    /// A time argument does not parse.
    #[error("{field}: {text:?} is not a date (YYYY-MM-DD), an RFC 3339 time or milliseconds since the epoch")]
    Time {
        /// The argument.
        field: &'static str,
        /// What was given.
        text: String,
    },
}

/// An output format; all three render the same [`Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One self-contained HTML file.
    Html,
    /// Markdown.
    Md,
    /// JSON, for other tools.
    Json,
}

impl Format {
    /// Renders `report` in this format.
    pub fn render(self, report: &Report) -> String {
        match self {
            Format::Html => html::render(report),
            Format::Md => markdown::render(report),
            Format::Json => {
                serde_json::to_string_pretty(report).expect("plain data serialises") + "\n"
            }
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Md => "text/markdown; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// What to report on.
#[derive(Debug, Clone)]
pub struct Request {
    /// Period start, ms (inclusive).
    pub from_ms: i64,
    /// Period end, ms (inclusive).
    pub to_ms: i64,
    /// Only this model's objectives and coverage.
    pub model: Option<String>,
    /// When the report is generated, ms.
    pub now_ms: i64,
    /// The evaluation cadence configured, for the plan and the completeness figures.
    pub interval: Duration,
    /// The configuration file the collector runs with, for the verification command.
    pub config_path: Option<String>,
}

/// Parses a period bound by the one rule of [`aims_core::time::parse_time`]: milliseconds,
/// RFC 3339, or a bare date (`YYYY-MM-DD`, UTC), which as the end of a period means the end of
/// that day, as a reader expects.
pub fn parse_time(field: &'static str, text: &str, end: bool) -> Result<i64, ReportError> {
    let bound = if end { Bound::End } else { Bound::Start };
    time::parse_time(text, bound).map_err(|_| ReportError::Time {
        field,
        text: text.trim().to_owned(),
    })
}

pub use aims_core::time::rfc3339_millis as rfc3339;

/// A point of the evidence chain: a record's sequence and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    /// Sequence (0 is the genesis, before any record).
    pub seq: u64,
    /// The record's hash (the genesis hash for 0).
    pub hash: String,
}

/// Document control: what the report covers and how it is anchored in the evidence chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentControl {
    /// Title.
    pub title: String,
    /// Period start, RFC 3339.
    pub period_from: String,
    /// Period end, RFC 3339.
    pub period_to: String,
    /// Period start, ms.
    pub from_ms: i64,
    /// Period end, ms.
    pub to_ms: i64,
    /// Models in scope (the filter, or every model with objectives).
    pub scope_models: Vec<String>,
    /// Objectives in scope.
    pub scope_objectives: Vec<String>,
    /// The AI policy the objectives cite.
    pub policy: String,
    /// When generated, RFC 3339.
    pub generated_at: String,
    /// Generator name and version.
    pub generator: String,
    /// The record just before the period: the chain's anchor for this period.
    pub chain_start: ChainPoint,
    /// The period's last record.
    pub chain_end: ChainPoint,
    /// Records in the period.
    pub records: u64,
    /// SHA-256 of this report's canonical JSON with this field empty.
    pub content_hash: String,
}

/// Objective counts by judgement, open alerts and decisions for management review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Objectives met throughout.
    pub met: u64,
    /// Objectives with warnings or short breaches that did not fire.
    pub at_risk: u64,
    /// Objectives whose alert fired.
    pub not_met: u64,
    /// Objectives with no judged evaluation.
    pub not_measurable: u64,
    /// Objectives firing at the period's end.
    pub open_alerts: Vec<String>,
    /// What management has to decide.
    pub decisions: Vec<String>,
    /// How the judgement above is made.
    pub rule: String,
}

/// One agent's deliveries in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCoverage {
    /// Model.
    pub model: String,
    /// Agent name (`*` for hourly roll-ups, which merge agents).
    pub agent: String,
    /// Summaries stored for windows in the period.
    pub summaries: u64,
    /// First window start, RFC 3339.
    pub first: String,
    /// Last window end, RFC 3339.
    pub last: String,
}

/// A stretch without summaries (an ingestion gap record pair).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// Model.
    pub model: String,
    /// When the gap was detected (the `started` record), ms.
    pub start_ms: i64,
    /// When summaries came back (the `ended` record), ms; none while open.
    pub end_ms: Option<i64>,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339, or empty while open.
    pub end: String,
    /// Seconds from start to end (to the period's end while open), within the period.
    pub duration_seconds: f64,
    /// The last summary before the gap, ms.
    pub last_summary_ms: Option<i64>,
    /// Sequence of the `started` record.
    pub start_seq: u64,
    /// Sequence of the `ended` record.
    pub end_seq: Option<u64>,
}

/// Who reported and where the monitoring was silent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Models evaluated in the period, with the model versions seen.
    pub models: BTreeMap<String, Vec<String>>,
    /// Agents that delivered summaries for windows in the period (from the stored summaries).
    pub agents: Vec<AgentCoverage>,
    /// Monitoring gaps overlapping the period.
    pub gaps: Vec<Gap>,
}

/// One objective's line of the monitoring plan (Clause 9.1: what, how, when, who).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanLine {
    /// Objective id.
    pub objective: String,
    /// Metric.
    pub metric: String,
    /// How it is measured.
    pub method: String,
    /// Window, seconds.
    pub window_seconds: u64,
    /// Evaluation cadence, seconds.
    pub cadence_seconds: f64,
    /// Accountable owner.
    pub owner: String,
}

/// An objective version recorded in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionChange {
    /// Objective id.
    pub objective: String,
    /// New version.
    pub version: String,
    /// Version it replaced, none for a new objective.
    pub previous_version: Option<String>,
    /// When, RFC 3339.
    pub at: String,
    /// Record sequence.
    pub seq: u64,
    /// Target of the new version.
    pub target: String,
}

/// Evaluations by verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Every evaluation record.
    pub total: u64,
    /// Met the target and the warning.
    pub met: u64,
    /// Met the target, not the warning.
    pub at_risk: u64,
    /// Missed the target.
    pub breached: u64,
    /// Fewer samples than `min_samples`.
    pub insufficient_data: u64,
    /// The metric had no value.
    pub not_measurable: u64,
    /// The model was silent.
    pub no_data: u64,
}

impl Counts {
    fn add(&mut self, verdict: &str) {
        self.total += 1;
        match verdict {
            "met" => self.met += 1,
            "at_risk" => self.at_risk += 1,
            "breached" => self.breached += 1,
            "insufficient_data" => self.insufficient_data += 1,
            "no_data" => self.no_data += 1,
            _ => self.not_measurable += 1,
        }
    }

    /// Share of judged evaluations (met, at risk or breached) that met the target.
    pub fn compliance_share(&self) -> Option<f64> {
        let judged = self.met + self.at_risk + self.breached;
        (judged > 0).then(|| (self.met + self.at_risk) as f64 / judged as f64)
    }
}

/// Last, min, mean and max of the measured values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Values measured.
    pub count: u64,
    /// Last value.
    pub last: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

impl Stats {
    /// The statistics of `values`, in time order.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        Self {
            count: values.len() as u64,
            last: values.last().copied(),
            min: values.iter().copied().reduce(f64::min),
            mean: Some(values.iter().sum::<f64>() / values.len() as f64),
            max: values.iter().copied().reduce(f64::max),
        }
    }
}

/// One evaluation, as charted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When, ms.
    pub at_ms: i64,
    /// The value, if there was one.
    pub value: Option<f64>,
    /// The target threshold the evaluation was judged against.
    pub target: Option<f64>,
    /// The verdict.
    pub verdict: String,
}

/// An interval (a breach, an alert) with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Start, ms.
    pub start_ms: i64,
    /// End, ms; none while open at the period's end.
    pub end_ms: Option<i64>,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339, or empty while open.
    pub end: String,
    /// Seconds from start to end (to the period's end while open).
    pub duration_seconds: f64,
    /// Sequence of the record that opened it.
    pub start_seq: u64,
    /// Sequence of the record that closed it.
    pub end_seq: Option<u64>,
}

/// Everything about one objective in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveSection {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Model.
    pub model: String,
    /// Metric.
    pub metric: String,
    /// Feature, attribute, group.
    pub selector: String,
    /// Target in force at the period's end.
    pub target: String,
    /// Warning in force at the period's end.
    pub warning: Option<String>,
    /// Target as a number, for the chart.
    pub target_threshold: f64,
    /// Severity.
    pub severity: String,
    /// Owner.
    pub owner: String,
    /// Rationale.
    pub rationale: String,
    /// The plan (actions, resources, due, evaluation method).
    pub plan: Plan,
    /// Annex A controls.
    pub controls: Vec<String>,
    /// Versions evaluated in the period, in order.
    pub versions: Vec<String>,
    /// Evaluations by verdict.
    pub evaluations: Counts,
    /// Share of judged evaluations in compliance.
    pub compliance_share: Option<f64>,
    /// Measured values.
    pub values: Stats,
    /// Lifecycle state at the period's end (`unknown` before any evaluation).
    pub state_at_end: String,
    /// met, at_risk, not_met or not_measurable.
    pub judgement: String,
    /// Runs of breached evaluations.
    pub breaches: Vec<Interval>,
    /// Alerts: firing until resolved.
    pub alerts: Vec<Interval>,
    /// Every evaluation, for the chart.
    pub series: Vec<Point>,
    /// First and last evaluation record sequence in the period.
    pub records: Option<(u64, u64)>,
}

/// Evaluations expected and recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    /// Expected from the cadence and the time each objective was in force.
    pub scheduled: u64,
    /// Recorded.
    pub completed: u64,
    /// Recorded with too few samples.
    pub insufficient_data: u64,
    /// Recorded while the model was silent.
    pub no_data: u64,
}

/// One group's fairness figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupLine {
    /// Attribute.
    pub attribute: String,
    /// Group.
    pub group: String,
    /// Predictions.
    pub n: u64,
    /// Labelled predictions.
    pub labelled: u64,
    /// Selection rate.
    pub selection_rate: Option<f64>,
    /// True-positive rate.
    pub tpr: Option<f64>,
    /// False-positive rate.
    pub fpr: Option<f64>,
}

/// One attribute's parity figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityLine {
    /// Attribute.
    pub attribute: String,
    /// Demographic parity ratio.
    pub demographic_parity_ratio: Option<f64>,
    /// Demographic parity difference.
    pub demographic_parity_difference: Option<f64>,
    /// Equalized odds difference.
    pub equalized_odds_difference: Option<f64>,
}

/// One feature's drift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftLine {
    /// Feature.
    pub feature: String,
    /// Default method.
    pub method: String,
    /// Its score.
    pub score: Option<f64>,
    /// PSI.
    pub psi: Option<f64>,
    /// Whether drift was detected.
    pub drifted: Option<bool>,
}

/// One feature's data quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityLine {
    /// Feature.
    pub feature: String,
    /// Missing rate.
    pub missing_rate: Option<f64>,
    /// Out-of-range rate (numeric).
    pub out_of_range_rate: Option<f64>,
    /// Unseen-category rate (categorical).
    pub unseen_category_rate: Option<f64>,
}

/// Fairness, drift and data quality of one model over the whole period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Model.
    pub model: String,
    /// Reference profile the summaries were binned with.
    pub profile_hash: String,
    /// Summaries merged.
    pub summaries: u64,
    /// Predictions in them (the sample size).
    pub events: u64,
    /// Labelled predictions.
    pub labelled: u64,
    /// Per group.
    pub groups: Vec<GroupLine>,
    /// Per attribute.
    pub parity: Vec<ParityLine>,
    /// Per feature.
    pub drift: Vec<DriftLine>,
    /// Share of drifted features.
    pub drifted_share: Option<f64>,
    /// Per feature.
    pub quality: Vec<QualityLine>,
    /// Rejected-event rate.
    pub rejected_rate: Option<f64>,
}

/// An Annex A control and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlLine {
    /// Control id, e.g. `A.6.2.6`.
    pub control: String,
    /// Objectives citing it.
    pub objectives: Vec<String>,
    /// Evaluation records behind it in the period.
    pub evaluations: u64,
    /// Sequence ranges of those records, per objective.
    pub records: Vec<String>,
}

/// How to check the evidence behind this report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Against the live database.
    pub database: String,
    /// Against an exported pack.
    pub pack: String,
    /// What the commands establish.
    pub explanation: String,
}

/// The Clause 9 performance-evaluation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Document control.
    pub document: DocumentControl,
    /// Summary for management review.
    pub summary: Summary,
    /// Monitoring coverage.
    pub coverage: Coverage,
    /// The monitoring plan as configured at the period's end.
    pub plan: Vec<PlanLine>,
    /// Objective versions recorded in the period.
    pub version_changes: Vec<VersionChange>,
    /// Per objective.
    pub objectives: Vec<ObjectiveSection>,
    /// Evaluation completeness.
    pub completeness: Completeness,
    /// Fairness, drift and data quality per model.
    pub analysis: Vec<Analysis>,
    /// Notes on the methods behind the analysis.
    pub method_notes: Vec<String>,
    /// Annex A controls evidenced.
    pub controls: Vec<ControlLine>,
    /// How to verify.
    pub verification: Verification,
}

impl Report {
    /// The content hash: SHA-256 of the canonical JSON with `content_hash` empty.
    pub fn compute_hash(&self) -> String {
        let mut copy = self.clone();
        copy.document.content_hash = String::new();
        sha256_hex(canonical_json(&copy).as_bytes())
    }
}

/// Per-objective state while scanning the log.
#[derive(Default)]
struct Track {
    definition: Option<Objective>,
    version: String,
    first_in_force_ms: Option<i64>,
    removed_ms: Option<i64>,
    state: String,
    counts: Counts,
    versions: Vec<String>,
    values: Vec<f64>,
    series: Vec<Point>,
    breaches: Vec<Interval>,
    alerts: Vec<Interval>,
    records: Option<(u64, u64)>,
}

fn open_interval(start_ms: i64, seq: u64) -> Interval {
    Interval {
        start_ms,
        end_ms: None,
        start: rfc3339(start_ms),
        end: String::new(),
        duration_seconds: 0.0,
        start_seq: seq,
        end_seq: None,
    }
}

fn close_interval(i: &mut Interval, end_ms: i64, seq: u64) {
    i.end_ms = Some(end_ms);
    i.end = rfc3339(end_ms);
    i.end_seq = Some(seq);
}

/// Sets each interval's duration, clipped to the period; open ones run to its end.
fn finish_intervals(intervals: &mut Vec<Interval>, from_ms: i64, to_ms: i64) {
    intervals.retain(|i| i.start_ms <= to_ms && i.end_ms.is_none_or(|e| e >= from_ms));
    for i in intervals.iter_mut() {
        let end = i.end_ms.unwrap_or(to_ms).min(to_ms);
        i.duration_seconds = (end - i.start_ms.max(from_ms)).max(0) as f64 / 1000.0;
    }
}

/// Breach intervals from a time-ordered series of `(at_ms, seq, verdict)`: a run of
/// `breached` verdicts starts at its first evaluation and ends at the next other verdict.
#[cfg(test)]
pub fn breach_intervals(evaluations: &[(i64, u64, &str)]) -> Vec<Interval> {
    let mut out: Vec<Interval> = Vec::new();
    for &(at, seq, verdict) in evaluations {
        step_breach(&mut out, at, seq, verdict);
    }
    out
}

/// Folds one evaluation's verdict into the breach intervals.
fn step_breach(breaches: &mut Vec<Interval>, at: i64, seq: u64, verdict: &str) {
    let open = breaches.last().is_some_and(|i| i.end_ms.is_none());
    match (verdict == "breached", open) {
        (true, false) => breaches.push(open_interval(at, seq)),
        (false, true) => {
            if let Some(i) = breaches.last_mut() {
                close_interval(i, at, seq);
            }
        }
        _ => {}
    }
}

fn selector_text(o: &Objective) -> String {
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

fn measured(m: &Measured) -> Option<f64> {
    m.value().filter(|x| x.is_finite())
}

/// Builds the report for `req` from the store.
pub async fn build(store: &Store, req: &Request) -> Result<Report, ReportError> {
    if req.from_ms >= req.to_ms {
        return Err(ReportError::Period);
    }
    let in_scope = |model: &str| req.model.as_deref().is_none_or(|m| m == model);
    let mut tracks: BTreeMap<String, Track> = BTreeMap::new();
    let mut policy = String::new();
    let mut versions_seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut version_changes = Vec::new();
    let (chain_start, rows) = period_records(store, req.from_ms, req.to_ms).await?;
    let mut scan = Scan {
        tracks: &mut tracks,
        policy: &mut policy,
        versions_seen: &mut versions_seen,
        gaps: &mut gaps,
        version_changes: &mut version_changes,
        in_scope: &in_scope,
    };
    let mut after = 0u64;
    while after < chain_start.seq {
        let page = store
            .evidence_page(
                after,
                (chain_start.seq - after).min(u64::from(PAGE)) as u32,
                None,
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = last.sealed.seq;
        for row in page.iter().filter(|r| r.sealed.seq <= chain_start.seq) {
            apply(&parse(row)?, row, true, &mut scan);
        }
    }
    for row in &rows {
        apply(&parse(row)?, row, false, &mut scan);
    }
    let records = rows.len() as u64;
    let chain_end = rows.last().map_or_else(
        || chain_start.clone(),
        |r| ChainPoint {
            seq: r.sealed.seq,
            hash: r.sealed.hash.clone(),
        },
    );

    let cadence = req.interval.as_secs_f64();
    let period_end = req.to_ms.min(req.now_ms);
    let mut sections = Vec::new();
    let mut plan = Vec::new();
    let mut completeness = Completeness::default();
    let mut controls: BTreeMap<String, ControlLine> = BTreeMap::new();
    for (id, mut t) in tracks {
        let Some(o) = t.definition.clone() else {
            continue;
        };
        let live_from = t.first_in_force_ms.unwrap_or(req.from_ms).max(req.from_ms);
        let live_to = t.removed_ms.unwrap_or(period_end).min(period_end);
        if !in_scope(&o.model) || live_to < req.from_ms || t.first_in_force_ms.is_none() {
            continue;
        }
        finish_intervals(&mut t.breaches, req.from_ms, req.to_ms);
        finish_intervals(&mut t.alerts, req.from_ms, req.to_ms);
        if req.interval.as_millis() > 0 {
            completeness.scheduled +=
                ((live_to - live_from).max(0) as u128 / req.interval.as_millis()) as u64;
        }
        completeness.completed += t.counts.total;
        completeness.insufficient_data += t.counts.insufficient_data;
        completeness.no_data += t.counts.no_data;
        let fired = !t.alerts.is_empty();
        let judged = t.counts.met + t.counts.at_risk + t.counts.breached;
        let judgement = if fired {
            "not_met"
        } else if judged == 0 {
            "not_measurable"
        } else if t.counts.breached + t.counts.at_risk > 0 {
            "at_risk"
        } else {
            "met"
        };
        plan.push(PlanLine {
            objective: id.clone(),
            metric: o.metric.clone(),
            method: format!(
                "{}{} over a {} window merged from agent summaries; at least {} samples; breach must last {} to fire",
                o.metric,
                match selector_text(&o) {
                    s if s.is_empty() => String::new(),
                    s => format!(" ({s})"),
                },
                humantime::format_duration(o.window),
                o.min_samples,
                humantime::format_duration(o.for_),
            ),
            window_seconds: o.window.as_secs(),
            cadence_seconds: cadence,
            owner: o.owner.clone(),
        });
        for c in &o.controls {
            let line = controls.entry(c.clone()).or_insert_with(|| ControlLine {
                control: c.clone(),
                objectives: Vec::new(),
                evaluations: 0,
                records: Vec::new(),
            });
            line.objectives.push(id.clone());
            line.evaluations += t.counts.total;
            if let Some((a, b)) = t.records {
                line.records
                    .push(format!("{id}: evaluation records {a}..{b}"));
            }
        }
        sections.push(ObjectiveSection {
            title: o.title.clone(),
            model: o.model.clone(),
            metric: o.metric.clone(),
            selector: selector_text(&o),
            target: o.target.to_string(),
            warning: o.warning.map(|w| w.to_string()),
            target_threshold: o.target.threshold,
            severity: o.severity.as_str().to_owned(),
            owner: o.owner.clone(),
            rationale: o.rationale.clone(),
            plan: o.plan.clone(),
            controls: o.controls.clone(),
            versions: t.versions,
            compliance_share: t.counts.compliance_share(),
            evaluations: t.counts,
            values: Stats::of(&t.values),
            state_at_end: if t.state.is_empty() {
                "unknown".to_owned()
            } else {
                t.state
            },
            judgement: judgement.to_owned(),
            breaches: t.breaches,
            alerts: t.alerts,
            series: t.series,
            records: t.records,
            id,
        });
    }
    for g in gaps.iter_mut() {
        let end = g.end_ms.unwrap_or(period_end).min(req.to_ms);
        g.duration_seconds = (end - g.start_ms.max(req.from_ms)).max(0) as f64 / 1000.0;
    }
    gaps.retain(|g| g.start_ms <= req.to_ms && g.end_ms.is_none_or(|e| e >= req.from_ms));

    let summary = summarise(&sections);
    let (agents, analysis) = analyse(store, req, &sections).await?;
    let scope_models: BTreeSet<String> = sections.iter().map(|s| s.model.clone()).collect();
    let config_arg = req
        .config_path
        .as_ref()
        .map(|p| format!(" --config {p}"))
        .unwrap_or_default();
    let mut report = Report {
        document: DocumentControl {
            title: "AI management system performance evaluation (ISO/IEC 42001 Clause 9.1)"
                .to_owned(),
            period_from: rfc3339(req.from_ms),
            period_to: rfc3339(req.to_ms),
            from_ms: req.from_ms,
            to_ms: req.to_ms,
            scope_models: scope_models.into_iter().collect(),
            scope_objectives: sections.iter().map(|s| s.id.clone()).collect(),
            policy,
            generated_at: rfc3339(req.now_ms),
            generator: format!("aims-collector {}", env!("CARGO_PKG_VERSION")),
            chain_start,
            chain_end,
            records,
            content_hash: String::new(),
        },
        summary,
        coverage: Coverage {
            models: versions_seen
                .into_iter()
                .map(|(m, v)| (m, v.into_iter().collect()))
                .collect(),
            agents,
            gaps,
        },
        plan,
        version_changes,
        objectives: sections,
        completeness,
        analysis,
        method_notes: method_notes(),
        controls: controls.into_values().collect(),
        verification: Verification {
            database: format!("aims-collector evidence verify{config_arg}"),
            pack: format!(
                "aims-collector evidence export --from {} --to {}{config_arg} -o pack.tar && aims-collector evidence verify --pack pack.tar",
                rfc3339(req.from_ms),
                rfc3339(req.to_ms)
            ),
            explanation: "Each evidence record stores its canonical JSON and SHA-256(prev_hash || canonical JSON). \
                The commands recompute every hash, check the chain from the start checkpoint to the end checkpoint \
                above, and (for a pack) that this report's content hash matches its content."
                .to_owned(),
        },
    };
    report.document.content_hash = report.compute_hash();
    Ok(report)
}

fn parse(row: &EvidenceRow) -> Result<Record, ReportError> {
    row.sealed.record().map_err(|source| ReportError::Record {
        seq: row.sealed.seq,
        source,
    })
}

struct Scan<'a, F: Fn(&str) -> bool> {
    tracks: &'a mut BTreeMap<String, Track>,
    policy: &'a mut String,
    versions_seen: &'a mut BTreeMap<String, BTreeSet<String>>,
    gaps: &'a mut Vec<Gap>,
    version_changes: &'a mut Vec<VersionChange>,
    in_scope: &'a F,
}

/// Folds one record into the scan; `before` records (ahead of the period) only set the state
/// the period starts from. A record whose payload does not read as its kind is skipped, as
/// unknown kinds are (`evidence verify` checks the chain, not the payloads).
fn apply<F: Fn(&str) -> bool>(record: &Record, row: &EvidenceRow, before: bool, s: &mut Scan<F>) {
    let seq = row.sealed.seq;
    let at = record.at_ms;
    let Ok(payload) = Payload::of(record) else {
        return;
    };
    match payload {
        Payload::ObjectiveVersion(v) => {
            let def = v.definition;
            *s.policy = v.policy;
            let t = s.tracks.entry(def.id.clone()).or_default();
            t.version = v.version;
            t.first_in_force_ms.get_or_insert(at);
            t.removed_ms = None;
            if !before && (s.in_scope)(&def.model) {
                s.version_changes.push(VersionChange {
                    objective: def.id.clone(),
                    version: t.version.clone(),
                    previous_version: v.previous_version,
                    at: rfc3339(at),
                    seq,
                    target: def.target.to_string(),
                });
            }
            t.definition = Some(def);
        }
        Payload::ConfigReload(r) => {
            for id in r.removed.iter().flatten() {
                if let Some(t) = s.tracks.get_mut(id) {
                    t.removed_ms = Some(at);
                }
            }
        }
        Payload::Transition(tr) => {
            let Some(t) = s.tracks.get_mut(&tr.objective) else {
                return;
            };
            if tr.to == State::Firing {
                t.alerts.push(open_interval(tr.at_ms, seq));
            } else if tr.from == State::Firing {
                if let Some(i) = t.alerts.last_mut().filter(|i| i.end_ms.is_none()) {
                    close_interval(i, tr.at_ms, seq);
                }
            }
            t.state = tr.to.as_str().to_owned();
        }
        Payload::Evaluation(e) => {
            let Some(t) = s.tracks.get_mut(&e.objective) else {
                return;
            };
            step_breach(&mut t.breaches, at, seq, &e.verdict);
            t.state = e.state.as_str().to_owned();
            if before {
                return;
            }
            if (s.in_scope)(&e.model) {
                s.versions_seen
                    .entry(e.model)
                    .or_default()
                    .extend(e.model_versions.into_iter().flatten());
            }
            t.counts.add(&e.verdict);
            if t.versions.last() != Some(&e.version) {
                t.versions.push(e.version);
            }
            let value = e.value.as_ref().and_then(measured);
            t.values.extend(value);
            t.series.push(Point {
                at_ms: at,
                value,
                target: e.target.parse::<Condition>().ok().map(|c| c.threshold),
                verdict: e.verdict,
            });
            t.records = Some(t.records.map_or((seq, seq), |(a, _)| (a, seq)));
        }
        Payload::IngestionGap(g) => {
            if !(s.in_scope)(&g.model) {
                return;
            }
            match g.gap {
                GapEdge::Started => s.gaps.push(Gap {
                    model: g.model,
                    start_ms: at,
                    end_ms: None,
                    start: rfc3339(at),
                    end: String::new(),
                    duration_seconds: 0.0,
                    last_summary_ms: g.last_summary_ms,
                    start_seq: seq,
                    end_seq: None,
                }),
                GapEdge::Ended => {
                    if let Some(open) = s
                        .gaps
                        .iter_mut()
                        .rev()
                        .find(|open| open.model == g.model && open.end_ms.is_none())
                    {
                        open.end_ms = Some(at);
                        open.end = rfc3339(at);
                        open.end_seq = Some(seq);
                    }
                }
            }
        }
        Payload::Startup(_) | Payload::Notification(_) => {}
    }
}

fn summarise(sections: &[ObjectiveSection]) -> Summary {
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
        rule: "not met: an alert fired in the period; not measurable: no evaluation had a value \
               with enough samples; at risk: some evaluations missed the target or the warning \
               without firing; met: every judged evaluation met target and warning."
            .to_owned(),
    }
}

fn method_notes() -> Vec<String> {
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
        "Summaries older than the roll-up age are kept as hourly merges, so the period's edges are \
         then exact to the hour; summaries beyond the retention are gone, while the evaluations \
         recorded in the evidence log remain."
            .to_owned(),
    ]
}

/// Agents and per-model analysis from the summaries stored for windows in the period.
async fn analyse(
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
                model,
            })
        })
        .collect();
    Ok((agents, analysis))
}

/// The period's records and its anchor (the record just before it). The period is the
/// contiguous run of sequence numbers from the first record at or after `from_ms` to the last
/// record at or before `to_ms`, so the pack is one unbroken piece of the chain even where
/// recording times of neighbouring records interleave.
pub async fn period_records(
    store: &Store,
    from_ms: i64,
    to_ms: i64,
) -> Result<(ChainPoint, Vec<EvidenceRow>), ReportError> {
    let mut anchor = ChainPoint {
        seq: 0,
        hash: GENESIS.to_owned(),
    };
    let mut rows: Vec<EvidenceRow> = Vec::new();
    let mut after = 0u64;
    loop {
        let page = store.evidence_page(after, PAGE, None).await?;
        let Some(last) = page.last() else { break };
        after = last.sealed.seq;
        for row in page {
            if rows.is_empty() && row.at_ms < from_ms {
                anchor = ChainPoint {
                    seq: row.sealed.seq,
                    hash: row.sealed.hash.clone(),
                };
            } else {
                rows.push(row);
            }
        }
    }
    while rows.last().is_some_and(|r| r.at_ms > to_ms) {
        rows.pop();
    }
    Ok((anchor, rows))
}

/// Query of `GET /v1/reports`.
/// A number for readers: up to four significant decimals, or a dash.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => {
            let s = format!("{x:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::evidence::{Entry, EvidenceLog};
    use aims_core::evidence::payload::{
        Evaluation, IngestionGap, ObjectiveVersion, Transition, Window,
    };
    use serde_json::json;

    fn definition(target: &str) -> Objective {
        serde_json::from_value(json!({"id": "parity", "title": "Parity", "model": "m", "metric": "demographic_parity_ratio",
               "attribute": "gender", "target": {"op": ">=", "threshold": target.parse::<f64>().unwrap()},
               "window": 60, "min_samples": 10, "for": 0, "severity": "critical", "owner": "owner@example.com",
               "rationale": "", "plan": {"actions": "a", "resources": "r", "due": "2027", "evaluation": "e"},
               "controls": ["A.6.2.6"], "notify": []}))
        .unwrap()
    }

    fn evaluation(verdict: &str, value: f64, target: &str, version: &str) -> Entry {
        Entry::objective(
            "parity",
            Payload::Evaluation(Evaluation {
                objective: "parity".into(),
                version: version.into(),
                model: "m".into(),
                metric: "demographic_parity_ratio".into(),
                selector: Default::default(),
                value: Some(Measured::Value(value)),
                target: format!(">= {target}"),
                warning: None,
                verdict: verdict.into(),
                samples: Some(100),
                min_samples: 10,
                window: Window {
                    from_ms: 0,
                    to_ms: 0,
                },
                model_versions: Some(vec!["1".into()]),
                profile_hash: None,
                state: State::Ok,
            }),
        )
    }

    /// A log with a version, evaluations met / breached / met, a firing alert that resolves,
    /// a gap and a changed version; the report over the part after the first record.
    #[tokio::test]
    async fn the_report_model_follows_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
        let log = EvidenceLog::open(store.clone(), crate::metrics::Metrics::new())
            .await
            .unwrap();
        let version = |v: &str, prev: Option<&str>, target: &str| {
            Entry::objective(
                "parity",
                Payload::ObjectiveVersion(ObjectiveVersion {
                    objective: "parity".into(),
                    version: v.into(),
                    previous_version: prev.map(str::to_owned),
                    file_version: "f".into(),
                    policy: "P".into(),
                    definition: definition(target),
                }),
            )
        };
        let transition = |from: State, to: State, at: i64| {
            Entry::objective(
                "parity",
                Payload::Transition(Transition {
                    objective: "parity".into(),
                    version: "v1".into(),
                    from,
                    to,
                    at_ms: at,
                    value: None,
                    target: ">= 0.8".into(),
                    severity: "critical".into(),
                }),
            )
        };
        let gap = |gap: GapEdge| {
            Entry::global(Payload::IngestionGap(IngestionGap {
                model: "m".into(),
                gap,
                last_summary_ms: None,
                stale_after_seconds: 1,
            }))
        };
        let steps: Vec<(i64, Vec<Entry>)> = vec![
            (1_000, vec![version("v1", None, "0.8")]),
            (2_000, vec![evaluation("met", 0.9, "0.8", "v1")]),
            (
                3_000,
                vec![
                    evaluation("breached", 0.5, "0.8", "v1"),
                    transition(State::Ok, State::Firing, 3_000),
                ],
            ),
            (
                4_000,
                vec![
                    evaluation("breached", 0.4, "0.8", "v1"),
                    gap(GapEdge::Started),
                ],
            ),
            (
                5_000,
                vec![
                    evaluation("met", 0.85, "0.8", "v1"),
                    transition(State::Firing, State::Resolved, 5_000),
                ],
            ),
            (
                6_000,
                vec![gap(GapEdge::Ended), version("v2", Some("v1"), "0.7")],
            ),
            (
                7_000,
                vec![evaluation("insufficient_data", 0.75, "0.7", "v2")],
            ),
            (9_000, vec![evaluation("met", 0.95, "0.7", "v2")]),
        ];
        for (at, entries) in steps {
            log.append(entries, &[], at).await.unwrap();
        }
        let req = Request {
            from_ms: 1_500,
            to_ms: 8_000,
            model: None,
            now_ms: 10_000,
            interval: Duration::from_secs(1),
            config_path: None,
        };
        let r = build(&store, &req).await.unwrap();
        assert_eq!(
            r.document.chain_start.seq, 1,
            "the version record anchors the period"
        );
        assert_eq!(
            r.document.chain_end.seq, 11,
            "the record at 9 s is after the period"
        );
        assert_eq!(r.document.records, 10);
        let o = &r.objectives[0];
        assert_eq!(
            (
                o.evaluations.total,
                o.evaluations.met,
                o.evaluations.breached,
                o.evaluations.insufficient_data
            ),
            (5, 2, 2, 1)
        );
        assert_eq!(o.compliance_share, Some(0.5));
        assert_eq!(
            (o.values.min, o.values.max, o.values.last),
            (Some(0.4), Some(0.9), Some(0.75))
        );
        assert_eq!(o.breaches.len(), 1);
        assert_eq!(
            (o.breaches[0].start_ms, o.breaches[0].end_ms),
            (3_000, Some(5_000))
        );
        assert_eq!(o.breaches[0].duration_seconds, 2.0);
        assert_eq!(
            (o.alerts[0].start_ms, o.alerts[0].end_ms),
            (3_000, Some(5_000))
        );
        assert_eq!(o.judgement, "not_met");
        assert_eq!(o.target, ">= 0.7", "the version in force at the end");
        assert_eq!(o.versions, ["v1", "v2"]);
        assert_eq!(
            o.series.iter().map(|p| p.target).collect::<Vec<_>>()[3..],
            [Some(0.8), Some(0.7)]
        );
        assert_eq!(r.version_changes.len(), 1);
        assert_eq!(r.version_changes[0].previous_version.as_deref(), Some("v1"));
        assert_eq!(r.coverage.gaps.len(), 1);
        assert_eq!(r.coverage.gaps[0].duration_seconds, 2.0);
        assert_eq!(r.completeness.completed, 5);
        assert_eq!(
            r.completeness.scheduled, 6,
            "1.5 s to 8 s at one per second"
        );
        assert_eq!(r.summary.not_met, 1);
        assert_eq!(r.controls[0].evaluations, 5);
        // The content hash survives a round trip through the JSON an auditor receives.
        let back: Report = serde_json::from_str(&Format::Json.render(&r)).unwrap();
        assert_eq!(back.compute_hash(), r.document.content_hash);
        let mut edited = back.clone();
        edited.objectives[0].evaluations.breached = 0;
        assert_ne!(edited.compute_hash(), r.document.content_hash);
        assert!(html::render(&r).contains(&r.document.content_hash));
        assert!(markdown::render(&r).contains(&r.document.content_hash));
    }

    #[test]
    fn compliance_share_counts_only_judged_evaluations() {
        let mut c = Counts::default();
        for v in [
            "met",
            "met",
            "at_risk",
            "breached",
            "no_data",
            "insufficient_data",
        ] {
            c.add(v);
        }
        assert_eq!(c.total, 6);
        assert_eq!(c.compliance_share(), Some(0.75));
        assert_eq!(Counts::default().compliance_share(), None);
    }

    #[test]
    fn breach_intervals_run_from_first_breach_to_next_other_verdict() {
        let evals = [
            (1_000, 1, "met"),
            (2_000, 2, "breached"),
            (3_000, 3, "breached"),
            (4_000, 4, "met"),
            (5_000, 5, "breached"),
        ];
        let mut b = breach_intervals(&evals);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].start_ms, b[0].end_ms), (2_000, Some(4_000)));
        assert_eq!((b[0].start_seq, b[0].end_seq), (2, Some(4)));
        assert_eq!(b[1].end_ms, None);
        finish_intervals(&mut b, 0, 6_000);
        assert_eq!(b[0].duration_seconds, 2.0);
        assert_eq!(
            b[1].duration_seconds, 1.0,
            "an open breach runs to the period's end"
        );
        let mut clipped = breach_intervals(&evals);
        finish_intervals(&mut clipped, 3_000, 4_500);
        assert_eq!(clipped.len(), 1, "breaches outside the period are dropped");
        assert_eq!(clipped[0].duration_seconds, 1.0, "clipped to the period");
    }

    #[test]
    fn stats_and_times() {
        let s = Stats::of(&[2.0, 1.0, 3.0]);
        assert_eq!(
            (s.last, s.min, s.mean, s.max),
            (Some(3.0), Some(1.0), Some(2.0), Some(3.0))
        );
        assert_eq!(
            parse_time("to", "2026-11-29", true).unwrap() % 86_400_000,
            86_399_999
        );
        assert_eq!(parse_time("from", "1000", false).unwrap(), 1000);
        assert!(parse_time("from", "yesterday", false).is_err());
    }
}
