//! Reports that scale: the state a report needs at its period's start (the objectives in force,
//! each one's version and lifecycle state, open alerts, breaches and ingestion gaps) is the
//! fold of every earlier record, which reading from record 1 makes O(log). Snapshots of that
//! fold are kept every [`EVERY`] records (after checkpoints are signed), so a report reads the
//! nearest snapshot, at most `EVERY` records after it, and its period's records.
//!
//! A snapshot is derived data: folding the same records from an older snapshot, or from
//! nothing, gives the same state; a missing one only costs time. But it is tied to the signed
//! log: keeping one appends a `report_snapshot` evidence record with the SHA-256 of its JSON
//! ([`refresh`]), and the snapshot row names that record. A report reads a snapshot only if
//! its record holds its hash ([`state_at`]): one edited in the database fails the report,
//! naming the snapshot, as it fails `evidence verify` ([`verify_all`]). The report's document
//! control names the snapshot and its record, which `evidence prove` ties to a checkpoint.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use aims_core::evidence::payload::{Payload, ReportSnapshot};
use aims_core::hash::sha256_hex;

use super::model::{Gap, ReportError, SnapshotRef};
use super::scan::{apply, parse, Scan, Track};
use crate::evidence::{Entry, EvidenceLog};
use crate::store::{Store, StoredSnapshot};

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
    /// The latest recording time (the `at_ms` column) of the records folded in: every
    /// period that starts from this state starts after it.
    #[serde(default)]
    pub horizon_ms: i64,
    /// Records folded after the snapshot to reach `seq` (not kept).
    #[serde(skip)]
    pub folded: u64,
    /// The snapshot this state started from, checked against its evidence record (not kept).
    #[serde(skip)]
    pub snapshot: Option<SnapshotRef>,
}

/// Checks a kept snapshot against the evidence record it names: that record must be a
/// `report_snapshot` of the same sequence holding the SHA-256 of the stored JSON.
async fn check(store: &Store, s: &StoredSnapshot) -> Result<SnapshotRef, ReportError> {
    let refused = |reason: String| ReportError::Snapshot { seq: s.seq, reason };
    let sha256 = sha256_hex(s.state.as_bytes());
    let row = store
        .evidence_record(s.record)
        .await?
        .ok_or_else(|| refused(format!("its evidence record {} is missing", s.record)))?;
    let payload = row.sealed.record().ok().and_then(|r| Payload::of(&r).ok());
    match payload {
        Some(Payload::ReportSnapshot(p)) if p.seq == s.seq && p.sha256 == sha256 => {
            Ok(SnapshotRef {
                seq: s.seq,
                sha256,
                record: s.record,
            })
        }
        Some(Payload::ReportSnapshot(p)) if p.seq == s.seq => Err(refused(format!(
            "its SHA-256 {sha256} is not the {} evidence record {} holds: the snapshot was edited",
            p.sha256, s.record
        ))),
        _ => Err(refused(format!(
            "evidence record {} is not the report_snapshot record of record {}",
            s.record, s.seq
        ))),
    }
}

/// Checks every kept snapshot against its evidence record; returns how many were checked.
/// The first that fails is the error, naming it.
pub async fn verify_all(store: &Store) -> Result<u64, ReportError> {
    let mut checked = 0;
    for seq in store.report_snapshot_seqs().await? {
        match store.report_snapshot_at_or_below(seq).await? {
            Some(s) if s.seq == seq => {
                check(store, &s).await?;
                checked += 1;
            }
            // Kept before snapshots were tied to the log: never used.
            _ => {}
        }
    }
    Ok(checked)
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track")
            .field("version", &self.version)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Start {
    /// Drops the breaches, alerts and ingestion gaps that closed by [`Start::horizon_ms`]. A
    /// period that starts from this state starts after every record folded into it (its
    /// first record is the first recorded at or after its start, and this state's records
    /// come before that one), so such an interval lies wholly before any period and no
    /// report shows it; kept, they made each snapshot grow with the whole log's history.
    pub fn prune(&mut self) {
        let h = self.horizon_ms;
        let closed = |end: Option<i64>| end.is_some_and(|e| e <= h);
        for t in self.tracks.values_mut() {
            t.breaches.retain(|i| !closed(i.end_ms));
            t.alerts.retain(|i| !closed(i.end_ms));
        }
        self.gaps.retain(|g| !closed(g.end_ms));
    }
}

/// The state after record `seq` (or after the last record, if the log is shorter).
pub async fn state_at(store: &Store, seq: u64) -> Result<Start, ReportError> {
    let mut start = match store.report_snapshot_at_or_below(seq).await? {
        Some(kept) => {
            let checked = check(store, &kept).await?;
            match serde_json::from_str::<Start>(&kept.state) {
                Ok(s) if s.seq == kept.seq => Start {
                    snapshot: Some(checked),
                    ..s
                },
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        seq = kept.seq,
                        "report snapshot does not read; folding the log from record 1"
                    );
                    Start::default()
                }
            }
        }
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
            apply(parse(row)?, row, true, &mut scan);
            start.horizon_ms = start.horizon_ms.max(row.at_ms);
            folded += 1;
        }
    }
    start.seq = after.max(start.seq);
    start.folded = folded;
    Ok(start)
}

/// Keeps a snapshot after record `upto` when it is at least [`EVERY`] records past the
/// previous one; returns the records folded to make it (0: none was due). Its hash goes into
/// the log first (through `log`, fenced like every append of this replica), then the snapshot
/// row naming that record: a crash between the two leaves a record and no snapshot, which
/// only costs time.
pub async fn refresh(
    log: &EvidenceLog,
    store: &Store,
    upto: u64,
    now_ms: i64,
) -> Result<u64, ReportError> {
    refresh_every(log, store, upto, EVERY, now_ms).await
}

/// [`refresh`] with snapshots `every` records apart.
pub async fn refresh_every(
    log: &EvidenceLog,
    store: &Store,
    upto: u64,
    every: u64,
    now_ms: i64,
) -> Result<u64, ReportError> {
    let previous = store
        .report_snapshot_at_or_below(upto)
        .await?
        .map_or(0, |s| s.seq);
    if upto < previous + every {
        return Ok(0);
    }
    let mut start = state_at(store, upto).await?;
    start.prune();
    let json = serde_json::to_string(&start).map_err(|source| ReportError::Record {
        seq: start.seq,
        source,
    })?;
    let (record, _) = log
        .append(
            vec![Entry::global(Payload::ReportSnapshot(ReportSnapshot {
                seq: start.seq,
                sha256: sha256_hex(json.as_bytes()),
            }))],
            &[],
            now_ms,
        )
        .await?;
    store.put_report_snapshot(start.seq, &json, record).await?;
    Ok(start.folded)
}
