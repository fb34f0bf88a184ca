//! Reports that scale: the state a report needs at its period's start (the objectives in force,
//! each one's version and lifecycle state, open alerts, breaches and ingestion gaps) is the
//! fold of every earlier record, which reading from record 1 makes O(log). Snapshots of that
//! fold are kept every [`EVERY`] records (after checkpoints are signed), so a report reads the
//! nearest snapshot, at most `EVERY` records after it, and its period's records.
//!
//! A snapshot is derived data: folding the same records from an older snapshot, or from
//! nothing, gives the same state; a missing or unreadable one only costs time. What the
//! report says is still checked against the records: a pack carries the period's records and
//! the signed tree they belong to, not the snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Gap, ReportError};
use super::scan::{apply, parse, Scan, Track};
use crate::store::Store;

/// Records between snapshots: the most a report reads beyond its period.
pub const EVERY: u64 = 10_000;

/// Records read per page.
const PAGE: u64 = 5_000;

/// The report state after record `seq`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Start {
    /// The last record folded in.
    pub seq: u64,
    /// Per objective (the period-only fields stay empty).
    pub tracks: BTreeMap<String, Track>,
    /// The policy the objectives file cites.
    pub policy: String,
    /// Ingestion gaps of every model.
    pub gaps: Vec<Gap>,
    /// Every nonconformity step so far, with its record's sequence number (a report's
    /// Clause 10.2 section shows each nonconformity's whole timeline).
    #[serde(default)]
    pub nonconformity_steps: Vec<(u64, aims_core::evidence::payload::NonconformityStep)>,
    /// Records folded after the snapshot to reach `seq` (not kept).
    #[serde(skip)]
    pub folded: u64,
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track")
            .field("version", &self.version)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The state after record `seq` (or after the last record, if the log is shorter).
pub async fn state_at(store: &Store, seq: u64) -> Result<Start, ReportError> {
    let mut start = match store.report_snapshot_at_or_below(seq).await? {
        Some((at, json)) => match serde_json::from_str::<Start>(&json) {
            Ok(s) if s.seq == at => s,
            Ok(_) | Err(_) => {
                tracing::warn!(
                    seq = at,
                    "report snapshot does not read; folding the log from record 1"
                );
                Start::default()
            }
        },
        None => Start::default(),
    };
    let all = |_: &str| true;
    let (mut versions_seen, mut version_changes) = (BTreeMap::new(), Vec::new());
    let mut scan = Scan {
        tracks: &mut start.tracks,
        policy: &mut start.policy,
        versions_seen: &mut versions_seen,
        gaps: &mut start.gaps,
        version_changes: &mut version_changes,
        in_scope: &all,
        nonconformity_steps: &mut start.nonconformity_steps,
    };
    let mut after = start.seq;
    let mut folded = 0;
    while after < seq {
        let page = store
            .evidence_page(after, (seq - after).min(PAGE) as u32, None)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.sealed.seq;
        for row in page.iter().filter(|r| r.sealed.seq <= seq) {
            apply(&parse(row)?, row, true, &mut scan);
            folded += 1;
        }
    }
    start.seq = after.max(start.seq);
    start.folded = folded;
    Ok(start)
}

/// Keeps a snapshot after record `upto` when it is at least [`EVERY`] records past the
/// previous one; returns the records folded to make it (0: none was due).
pub async fn refresh(store: &Store, upto: u64) -> Result<u64, ReportError> {
    refresh_every(store, upto, EVERY).await
}

/// [`refresh`] with snapshots `every` records apart.
pub async fn refresh_every(store: &Store, upto: u64, every: u64) -> Result<u64, ReportError> {
    let previous = store
        .report_snapshot_at_or_below(upto)
        .await?
        .map_or(0, |(seq, _)| seq);
    if upto < previous + every {
        return Ok(0);
    }
    let start = state_at(store, upto).await?;
    let json = serde_json::to_string(&start).map_err(|source| ReportError::Record {
        seq: start.seq,
        source,
    })?;
    store.put_report_snapshot(start.seq, &json).await?;
    Ok(start.folded)
}
