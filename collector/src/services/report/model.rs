//! The report model: one value holding everything a report says, from which the JSON is
//! serialised and the HTML and Markdown are rendered, so the formats cannot disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use aims_core::hash::{canonical_json, sha256_hex};
use aims_core::objective::Plan;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::store::StoreError;

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
    #[error("the period is empty: from must be before to")]
    Period,
    /// A kept report snapshot does not match the evidence record that holds its hash.
    #[error("report snapshot at record {seq}: {reason}")]
    Snapshot {
        /// The record the snapshot was folded up to.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A time argument does not parse.
    #[error("{field}: {text:?} is not a date (YYYY-MM-DD), an RFC 3339 time or milliseconds since the epoch")]
    Time {
        /// The argument.
        field: &'static str,
        /// What was given.
        text: String,
    },
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
    /// The signed checkpoint of the evidence log when the report was made (covering at least
    /// `chain_end`), when the collector signs checkpoints: `evidence prove --seq N --size M`
    /// ties any record of the period to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The report snapshot the period's start state was read from, if any: checked against
    /// its `report_snapshot` evidence record, which `evidence prove --seq` ties to a
    /// checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRef>,
    /// SHA-256 of this report's canonical JSON with this field empty.
    pub content_hash: String,
}

/// A report snapshot a report started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The last record folded into it.
    pub seq: u64,
    /// SHA-256 of its JSON.
    pub sha256: String,
    /// The `report_snapshot` evidence record holding that hash.
    pub record: u64,
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
    /// Management-review input (Clause 9.3): nonconformities by status at the period's end.
    #[serde(default)]
    pub nonconformities: BTreeMap<String, u64>,
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
    pub fn add(&mut self, verdict: &str) {
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
    /// The last evaluation's confidence interval (fairness metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_interval: Option<Confidence>,
    /// Samples behind the last evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_samples: Option<u64>,
}

/// Evaluations expected and recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    /// Evaluation slots (one evaluation interval each) while each objective was in force.
    pub scheduled: u64,
    /// Scheduled slots holding at least one recorded evaluation: never more than `scheduled`.
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
    /// Wilson interval of the selection rate (over `n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_rate_interval: Option<Confidence>,
    /// Wilson interval of the TPR (over the labelled positives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpr_interval: Option<Confidence>,
    /// Wilson interval of the FPR (over the labelled negatives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fpr_interval: Option<Confidence>,
}

/// A confidence interval of a fairness value (aims-core's).
pub type Confidence = aims_core::metrics::intervals::Interval;

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
    /// Predictions in the groups compared (those not too small): the sample size.
    #[serde(default)]
    pub samples: u64,
    /// Katz interval of the ratio (Bonferroni-adjusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic_parity_ratio_interval: Option<Confidence>,
    /// Newcombe interval of the difference (Bonferroni-adjusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic_parity_difference_interval: Option<Confidence>,
    /// Interval of the equalized odds difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equalized_odds_difference_interval: Option<Confidence>,
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

/// One performance metric of the period: realised from labels beside the CBPE estimate made
/// without them (both from the same merged summaries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceLine {
    /// Metric (`accuracy`, `precision`, `recall`, `f1`, `roc_auc`).
    pub metric: String,
    /// From the labelled predictions (absent without labels).
    pub realised: Option<f64>,
    /// CBPE's estimate over every scored prediction (absent without a calibration).
    pub estimated: Option<f64>,
    /// Lower end of the estimate's ±3 SE sampling band.
    pub lower: Option<f64>,
    /// Upper end of that band.
    pub upper: Option<f64>,
}

/// The period's PCA reconstruction error against its reference thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionLine {
    /// Mean per-event error.
    pub value: Option<f64>,
    /// Reference lower threshold.
    pub lower_threshold: f64,
    /// Reference upper threshold.
    pub upper_threshold: f64,
    /// Whether the value lies outside them.
    pub alert: bool,
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
    /// Realised performance beside the CBPE estimate (empty for models without a calibration
    /// and without labels; absent in reports made before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performance: Vec<PerformanceLine>,
    /// How the estimates were made, and that they assume no concept drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimation_method: Option<String>,
    /// Multivariate drift (models whose profile carries the PCA model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<ReconstructionLine>,
    /// How the reconstruction error is computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction_method: Option<String>,
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
    /// Nonconformities and corrective actions (Clause 10.2).
    #[serde(default)]
    pub nonconformities: super::corrective::CorrectiveSection,
    /// How to verify.
    pub verification: Verification,
}

impl Report {
    /// The report with `note` (a signed checkpoint covering its period) in its document
    /// control, and its content hash recomputed to cover it.
    pub fn with_checkpoint(mut self, note: String) -> Self {
        self.document.checkpoint = Some(note);
        self.document.content_hash = self.compute_hash();
        self
    }

    /// The content hash: SHA-256 of the canonical JSON with `content_hash` empty.
    pub fn compute_hash(&self) -> String {
        if self.document.content_hash.is_empty() {
            // No copy of the whole report (its series) needed: it already reads as hashed.
            return sha256_hex(canonical_json(self).as_bytes());
        }
        let mut copy = self.clone();
        copy.document.content_hash = String::new();
        sha256_hex(canonical_json(&copy).as_bytes())
    }
}
