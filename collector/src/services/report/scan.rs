//! The evidence scan's fold: every record, through its typed payload, into per-objective
//! tracks (versions, verdicts, breaches, alerts), coverage gaps and version changes, and the
//! period's records by time. Records before the period only set the state it starts from;
//! [`super::period`] runs the fold over a report's period, [`super::snapshot`] keeps its state.

use std::collections::{BTreeMap, BTreeSet};

use aims_core::evidence::payload::{GapEdge, NonconformityStep, Payload};
use aims_core::evidence::{Record, GENESIS};
use aims_core::lifecycle::State;
use aims_core::objective::{Condition, Objective};

use serde::{Deserialize, Serialize};

use super::analysis::measured;
use super::model::{ChainPoint, Counts, Gap, Interval, Point, ReportError, VersionChange};
use super::text::rfc3339;
use crate::store::{EvidenceRow, Store};

/// Records read per page while scanning the log.
const PAGE: u32 = 5_000;

/// Per-objective state while scanning the log (kept in report snapshots, hence serde).
#[derive(Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Track {
    pub definition: Option<Objective>,
    pub version: String,
    pub first_in_force_ms: Option<i64>,
    pub removed_ms: Option<i64>,
    pub state: String,
    pub counts: Counts,
    pub versions: Vec<String>,
    pub values: Vec<f64>,
    pub series: Vec<Point>,
    pub breaches: Vec<Interval>,
    pub alerts: Vec<Interval>,
    pub records: Option<(u64, u64)>,
    /// The last evaluation's interval and samples (fairness values carry an interval).
    #[serde(default)]
    pub last_interval: Option<aims_core::metrics::intervals::Interval>,
    #[serde(default)]
    pub last_samples: Option<u64>,
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
pub fn finish_intervals(intervals: &mut Vec<Interval>, from_ms: i64, to_ms: i64) {
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

/// A record as the fold reads it: its time and typed payload (`None`: a payload that does
/// not read as its kind, which the fold skips).
pub struct Read {
    /// When recorded, from the sealed record.
    pub at_ms: i64,
    /// What it records.
    pub payload: Option<Payload>,
}

/// The fields of a record the fold needs, read straight from its canonical JSON: the
/// payload without the detour through a JSON value and a re-tagged copy of it
/// ([`Payload::of`]), which cost most of a report's time.
#[derive(Deserialize)]
struct Typed {
    #[allow(dead_code)]
    seq: u64,
    at_ms: i64,
    #[serde(flatten)]
    payload: Payload,
}

/// Reads a record for the fold. A record whose canonical JSON does not parse is an error
/// naming it; one whose payload does not read as its kind is kept with no payload.
pub fn parse(row: &EvidenceRow) -> Result<Read, ReportError> {
    if let Ok(t) = serde_json::from_str::<Typed>(&row.sealed.canonical) {
        return Ok(Read {
            at_ms: t.at_ms,
            payload: Some(t.payload),
        });
    }
    let record: Record = row.sealed.record().map_err(|source| ReportError::Record {
        seq: row.sealed.seq,
        source,
    })?;
    Ok(Read {
        at_ms: record.at_ms,
        payload: Payload::of(&record).ok(),
    })
}

pub struct Scan<'a, F: Fn(&str) -> bool> {
    pub tracks: &'a mut BTreeMap<String, Track>,
    pub policy: &'a mut String,
    pub versions_seen: &'a mut BTreeMap<String, BTreeSet<String>>,
    pub gaps: &'a mut Vec<Gap>,
    pub version_changes: &'a mut Vec<VersionChange>,
    pub in_scope: &'a F,
    /// Every nonconformity step up to the period's end, with its record's sequence number.
    pub nonconformity_steps: &'a mut Vec<(u64, NonconformityStep)>,
}

/// Folds one record into the scan; `before` records (ahead of the period) only set the state
/// the period starts from. A record whose payload does not read as its kind is skipped, as
/// unknown kinds are (`evidence verify` checks the chain, not the payloads).
pub fn apply<F: Fn(&str) -> bool>(record: Read, row: &EvidenceRow, before: bool, s: &mut Scan<F>) {
    let seq = row.sealed.seq;
    let at = record.at_ms;
    let Some(payload) = record.payload else {
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
            t.last_interval = e.interval;
            t.last_samples = e.samples;
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
        Payload::Nonconformity(step) => s.nonconformity_steps.push((seq, step)),
        Payload::Startup(_)
        | Payload::Notification(_)
        | Payload::LeaderChange(_)
        | Payload::ReportSnapshot(_) => {}
    }
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
    // Found by time (an index), so a report of last week does not read the log from record 1.
    let genesis = || ChainPoint {
        seq: 0,
        hash: GENESIS.to_owned(),
    };
    let Some(first) = store.first_evidence_at_or_after(from_ms).await? else {
        let anchor = store
            .evidence_head()
            .await?
            .map_or_else(genesis, |(seq, hash)| ChainPoint { seq, hash });
        return Ok((anchor, Vec::new()));
    };
    let anchor = store
        .evidence_before(first)
        .await?
        .map_or_else(genesis, |(seq, hash)| ChainPoint { seq, hash });
    let Some(end) = store.last_evidence_at_or_before(first, to_ms).await? else {
        return Ok((anchor, Vec::new()));
    };
    let mut rows: Vec<EvidenceRow> = Vec::new();
    let mut after = anchor.seq;
    while after < end {
        let want = (end - after).min(u64::from(PAGE)) as u32;
        let page = store.evidence_page(after, want, None).await?;
        let Some(last) = page.last() else { break };
        after = last.sealed.seq;
        rows.extend(page.into_iter().filter(|r| r.sealed.seq <= end));
    }
    Ok((anchor, rows))
}
