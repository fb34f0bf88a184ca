//! A report's period, scanned: the state at its start (the nearest report snapshot, folded on
//! to the record before the period) and the period's records folded on top, by the scan's
//! fold ([`super::scan`]). Above both the scan and the snapshots, so neither imports the other.

use std::collections::{BTreeMap, BTreeSet};

use aims_core::evidence::payload::NonconformityStep;

use super::model::{ChainPoint, Gap, ReportError, Request, VersionChange};
use super::scan::{apply, parse, period_records, Scan, Track};
use crate::store::Store;

/// What the scan found, for the analysis and the document control.
pub struct Scanned {
    /// Per objective.
    pub tracks: BTreeMap<String, Track>,
    /// The policy the objectives file cites.
    pub policy: String,
    /// Model versions seen in evaluations in the period, per model.
    pub versions_seen: BTreeMap<String, BTreeSet<String>>,
    /// Ingestion gaps.
    pub gaps: Vec<Gap>,
    /// Objective versions that came into force in the period.
    pub version_changes: Vec<VersionChange>,
    /// The record just before the period.
    pub chain_start: ChainPoint,
    /// The period's last record.
    pub chain_end: ChainPoint,
    /// Records in the period.
    pub records: u64,
    /// Every nonconformity step up to the period's end, with its record's sequence number.
    pub nonconformity_steps: Vec<(u64, NonconformityStep)>,
    /// The report snapshot the start state was read from.
    pub snapshot: Option<super::model::SnapshotRef>,
}

/// Scans the log up to the end of `req`'s period for the models `in_scope` accepts.
pub async fn scan<F: Fn(&str) -> bool>(
    store: &Store,
    req: &Request,
    in_scope: &F,
) -> Result<Scanned, ReportError> {
    let mut versions_seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut version_changes = Vec::new();
    let (chain_start, rows) = period_records(store, req.from_ms, req.to_ms).await?;
    // The state at the period's start: the nearest snapshot, and the records after it.
    let start = super::snapshot::state_at(store, chain_start.seq).await?;
    let snapshot = start.snapshot.clone();
    let mut nonconformity_steps = start.nonconformity_steps;
    let (mut tracks, mut policy) = (start.tracks, start.policy);
    let mut gaps: Vec<Gap> = start.gaps;
    gaps.retain(|g| in_scope(&g.model));
    let mut scan = Scan {
        tracks: &mut tracks,
        policy: &mut policy,
        versions_seen: &mut versions_seen,
        gaps: &mut gaps,
        version_changes: &mut version_changes,
        in_scope,
        nonconformity_steps: &mut nonconformity_steps,
    };
    for row in &rows {
        apply(parse(row)?, row, false, &mut scan);
    }
    let records = rows.len() as u64;
    let chain_end = rows.last().map_or_else(
        || chain_start.clone(),
        |r| ChainPoint {
            seq: r.sealed.seq,
            hash: r.sealed.hash.clone(),
        },
    );

    Ok(Scanned {
        tracks,
        policy,
        versions_seen,
        gaps,
        version_changes,
        chain_start,
        chain_end,
        records,
        nonconformity_steps,
        snapshot,
    })
}
