//! Typed evidence payloads: one struct per [`Kind`], written and read only through
//! [`Payload`].
//!
//! A record's `kind` and `data` are the adjacently tagged form of a [`Payload`]
//! (`{"kind": "evaluation", "data": {...}}`), so the JSON of every record, and with it every
//! hash of an existing log, is what it was when the payloads were built by hand: each field
//! keeps its name and is always present, `null` when empty. Fields added later must be
//! `Option` so older records still read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Kind, Record};
use crate::lifecycle::State;
use crate::metrics::intervals::Interval;
use crate::metrics::{Measured, Selector};
use crate::nonconformity::{Input, Status};
use crate::objective::{Objective, Reading};

/// What an evidence record says, by kind.
///
/// One payload is built per record and serialised at once; payloads are never held in bulk, so the
/// size of the largest variant (an objective with its plan) costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Payload {
    /// An objective version came into force.
    ObjectiveVersion(ObjectiveVersion),
    /// One evaluation of one objective.
    Evaluation(Evaluation),
    /// A lifecycle transition.
    Transition(Transition),
    /// A model's summaries stopped or started arriving again.
    IngestionGap(IngestionGap),
    /// The objectives file was reloaded, or a reload failed.
    ConfigReload(ConfigReload),
    /// The collector started.
    Startup(Startup),
    /// One attempt to deliver an alert notification.
    Notification(Notification),
    /// A step of a nonconformity.
    Nonconformity(NonconformityStep),
    /// A replica became the leader.
    LeaderChange(LeaderChange),
    /// A report snapshot was kept.
    ReportSnapshot(ReportSnapshot),
}

/// A payload that does not read as its kind says.
#[derive(Debug, thiserror::Error)]
#[error("evidence record {seq} ({kind}): {source}")]
pub struct PayloadError {
    /// The record's sequence number.
    pub seq: u64,
    /// Its kind.
    pub kind: &'static str,
    /// Why.
    pub source: serde_json::Error,
}

impl Payload {
    /// The kind stored beside the record.
    pub fn kind(&self) -> Kind {
        match self {
            Payload::ObjectiveVersion(_) => Kind::ObjectiveVersion,
            Payload::Evaluation(_) => Kind::Evaluation,
            Payload::Transition(_) => Kind::Transition,
            Payload::IngestionGap(_) => Kind::IngestionGap,
            Payload::ConfigReload(_) => Kind::ConfigReload,
            Payload::Startup(_) => Kind::Startup,
            Payload::Notification(_) => Kind::Notification,
            Payload::Nonconformity(_) => Kind::Nonconformity,
            Payload::LeaderChange(_) => Kind::LeaderChange,
            Payload::ReportSnapshot(_) => Kind::ReportSnapshot,
        }
    }

    /// The record's `data`.
    pub fn data(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => m.remove("data").unwrap_or(Value::Null),
            // Plain structs of strings, numbers and options always serialise to an object.
            _ => Value::Null,
        }
    }

    /// Reads the payload of `record`.
    pub fn of(record: &Record) -> Result<Self, PayloadError> {
        let tagged = serde_json::json!({"kind": record.kind, "data": record.data});
        serde_json::from_value(tagged).map_err(|source| PayloadError {
            seq: record.seq,
            kind: record.kind.as_str(),
            source,
        })
    }
}

/// `objective_version`: an objective's definition came into force under `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveVersion {
    /// Objective id.
    pub objective: String,
    /// Content hash of the definition.
    pub version: String,
    /// The version it replaces, if any.
    pub previous_version: Option<String>,
    /// Content hash of the whole objectives file.
    pub file_version: String,
    /// The policy the file cites.
    pub policy: String,
    /// The definition.
    pub definition: Objective,
}

/// The window an evaluation merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start, ms since the epoch.
    pub from_ms: i64,
    /// End, ms since the epoch.
    pub to_ms: i64,
}

/// `evaluation`: one objective measured and judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Objective id.
    pub objective: String,
    /// Objective version judged against.
    pub version: String,
    /// Model watched.
    pub model: String,
    /// Metric computed.
    pub metric: String,
    /// Feature, attribute or group measured.
    pub selector: Selector,
    /// The value, or why there is none; `None` when the model's data is stale.
    pub value: Option<Measured>,
    /// Target condition, as written.
    pub target: String,
    /// Warning condition, as written.
    pub warning: Option<String>,
    /// `met`, `at_risk`, `breached`, `insufficient_data`, `not_measurable` or `no_data`.
    pub verdict: String,
    /// Samples behind the value.
    pub samples: Option<u64>,
    /// Samples required for a verdict.
    pub min_samples: u64,
    /// The window merged.
    pub window: Window,
    /// Model versions seen in the window.
    pub model_versions: Option<Vec<String>>,
    /// Reference profile compared against.
    pub profile_hash: Option<String>,
    /// Lifecycle state after this evaluation.
    pub state: State,
    /// Confidence interval of the value, for fairness metrics (absent in records written
    /// before intervals, so they still verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// How the verdict was read: `point`, or for `breach: significant` whether the interval
    /// lies beyond, straddles or meets the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<Reading>,
    /// Groups left out of a parity metric as smaller than `min_group_samples`, with counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub too_small: BTreeMap<String, u64>,
    /// The figures behind the value: per-group rates with sample sizes and intervals for a
    /// fairness metric, the drifted features' statistics for a drift metric (absent in older
    /// records and for metrics without a breakdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<crate::metrics::why::Why>,
}

/// `transition`: a lifecycle step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// Objective id.
    pub objective: String,
    /// Objective version.
    pub version: String,
    /// State left.
    pub from: State,
    /// State entered.
    pub to: State,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The value that caused it.
    pub value: Option<Measured>,
    /// Target condition, as written.
    pub target: String,
    /// Severity of the objective.
    pub severity: String,
}

/// Whether a gap starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapEdge {
    /// Summaries stopped arriving.
    Started,
    /// Summaries arrive again.
    Ended,
}

/// `ingestion_gap`: a model went stale, or recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestionGap {
    /// The model.
    pub model: String,
    /// Start or end.
    pub gap: GapEdge,
    /// When its last summary arrived, ms since the epoch.
    pub last_summary_ms: Option<i64>,
    /// The staleness threshold.
    pub stale_after_seconds: u64,
}

/// A reload's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The new file is in force.
    Success,
    /// The old file stays in force.
    Failure,
}

/// One problem of a refused objectives file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadProblem {
    /// Line in the file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Field at fault, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// `config_reload`: the objectives file was re-read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReload {
    /// `sighup` or `http`.
    pub trigger: String,
    /// Taken or refused.
    pub outcome: ReloadOutcome,
    /// The file.
    pub file: String,
    /// New file version (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_version: Option<String>,
    /// Objectives new or changed (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// Objectives removed (success only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Vec<String>>,
    /// Why it was refused (failure only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ReloadProblem>>,
}

/// `startup`: the collector started with an objectives file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Startup {
    /// Collector version.
    pub version: String,
    /// The objectives file.
    pub objectives_file: String,
    /// Its content hash.
    pub file_version: String,
}

/// `leader_change`: a collector replica won the leader lock and began a leadership term; from
/// this record on, its evaluations are the chain's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderChange {
    /// The replica that leads now.
    pub replica: String,
    /// Its leadership term (increases with every change).
    pub term: i64,
    /// The replica that led in the previous term, if any was recorded.
    pub previous: Option<String>,
}

/// `report_snapshot`: the collector kept the report state folded up to record `seq` (derived
/// data a report starts from instead of reading the log from record 1), and this is the
/// SHA-256 of that state as stored. The record is in the signed tree, so a snapshot edited in
/// the database no longer matches it: a report refuses it, and `evidence verify` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSnapshot {
    /// The last record folded into the state.
    pub seq: u64,
    /// SHA-256 (hex) of the state's JSON, as stored.
    pub sha256: String,
}

/// `notification`: one delivery attempt of one objective's alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Objective id.
    pub objective: String,
    /// Receiver name.
    pub receiver: String,
    /// `alertmanager` or `webhook`.
    pub kind: String,
    /// Where it was sent.
    pub url: String,
    /// `firing` or `resolved`.
    pub alert_status: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// `delivered`, `failed`, `abandoned`, `rejected` or `dropped`.
    pub outcome: String,
    /// HTTP status of the answer, if any.
    pub http_status: Option<u16>,
    /// The error, if any.
    pub error: Option<String>,
    /// The alert's name when it is not the objective's breach alert (e.g.
    /// `AIMSCorrectiveActionOverdue`); absent on breach alerts, so older records read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertname: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::canonical_json;
    use serde_json::json;

    fn record(kind: Kind, data: Value) -> Record {
        Record {
            seq: 3,
            at_ms: 1_000,
            kind,
            data,
        }
    }

    /// The payloads read the JSON the collector wrote by hand, and write it back unchanged:
    /// the canonical form, and so the hash, of an old record does not move.
    #[test]
    fn hand_written_records_round_trip_to_the_same_canonical_json() {
        let cases = [
            record(
                Kind::Evaluation,
                json!({"objective": "o", "version": "v", "model": "m", "metric": "psi",
                       "selector": {"feature": "income"}, "value": 0.25, "target": "<= 0.2",
                       "warning": null, "verdict": "breached", "samples": 300, "min_samples": 200,
                       "window": {"from_ms": 0, "to_ms": 1000}, "model_versions": ["1.0"],
                       "profile_hash": "abc", "state": "pending"}),
            ),
            record(
                Kind::Evaluation,
                json!({"objective": "o", "version": "v", "model": "m", "metric": "psi",
                       "selector": {}, "value": {"undefined": "no data"}, "target": "<= 0.2",
                       "warning": "<= 0.1", "verdict": "no_data", "samples": null, "min_samples": 0,
                       "window": {"from_ms": 0, "to_ms": 1000}, "model_versions": null,
                       "profile_hash": null, "state": "no_data"}),
            ),
            record(
                Kind::Transition,
                json!({"objective": "o", "version": "v", "from": "pending", "to": "firing",
                       "at_ms": 5, "value": 0.3, "target": "<= 0.2", "severity": "critical"}),
            ),
            record(
                Kind::IngestionGap,
                json!({"model": "m", "gap": "started", "last_summary_ms": null, "stale_after_seconds": 300}),
            ),
            record(
                Kind::ConfigReload,
                json!({"trigger": "http", "outcome": "failure", "file": "o.yaml",
                       "errors": [{"line": 3, "field": "objectives[0].target", "message": "bad"}, {"message": "unreadable"}]}),
            ),
            record(
                Kind::ConfigReload,
                json!({"trigger": "sighup", "outcome": "success", "file": "o.yaml", "file_version": "f",
                       "changed": ["a"], "removed": []}),
            ),
            record(
                Kind::Startup,
                json!({"version": "0.1.0", "objectives_file": "o.yaml", "file_version": "f"}),
            ),
            record(
                Kind::LeaderChange,
                json!({"replica": "collector-1", "term": 4, "previous": "collector-0"}),
            ),
            record(Kind::ReportSnapshot, json!({"seq": 10000, "sha256": "ab"})),
            record(
                Kind::Notification,
                json!({"objective": "o", "receiver": "am", "kind": "alertmanager", "url": "http://127.0.0.1:1/",
                       "alert_status": "firing", "attempt": 1, "outcome": "failed", "http_status": null,
                       "error": "connection refused"}),
            ),
            record(
                Kind::Notification,
                json!({"objective": "o", "receiver": "am", "kind": "alertmanager", "url": "http://127.0.0.1:1/",
                       "alert_status": "firing", "attempt": 1, "outcome": "delivered", "http_status": 200,
                       "error": null, "alertname": "AIMSCorrectiveActionOverdue"}),
            ),
        ];
        for r in cases {
            let p = Payload::of(&r).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.kind(), r.kind);
            let again = Record {
                data: p.data(),
                ..r.clone()
            };
            assert_eq!(canonical_json(&again), canonical_json(&r), "{:?}", r.kind);
        }
    }

    #[test]
    fn a_payload_that_does_not_match_its_kind_is_an_error_naming_the_record() {
        let r = record(Kind::Transition, json!({"objective": "o"}));
        let e = Payload::of(&r).unwrap_err();
        assert!(
            e.to_string().starts_with("evidence record 3 (transition)"),
            "{e}"
        );
    }
}

/// `nonconformity`: one accepted step of a nonconformity (Clause 10.2). Replaying a
/// nonconformity's steps in order through [`crate::nonconformity::Nonconformity::apply`]
/// rebuilds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NonconformityStep {
    /// The nonconformity's id.
    pub nonconformity: u64,
    /// Objective id.
    pub objective: String,
    /// Objective version when it opened.
    pub version: String,
    /// Severity of the objective.
    pub severity: String,
    /// Status left.
    pub from: Status,
    /// Status entered.
    pub to: Status,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Who, for steps people took.
    pub actor: Option<String>,
    /// What was accepted.
    pub input: Input,
}
