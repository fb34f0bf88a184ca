//! The report snapshot in an evidence pack (`snapshot.json`): the state the period's report
//! started from (the objectives in force, each one's lifecycle state, open alerts, gaps), as
//! kept, with the sealed `report_snapshot` evidence record that holds its SHA-256.
//!
//! A report reads the nearest snapshot rather than the log from record 1
//! ([`crate::services::report::snapshot`]), so a pack's report is only as good as that
//! snapshot. Offline, [`verify`] checks that the snapshot's bytes hash to what its record
//! holds and to what the report names, that the record's own hash recomputes, and (when it
//! falls in the period) that it is the pack's record of that number; with the collector's
//! public key, the record's inclusion proof in `tree.json` ties it to a signed checkpoint
//! ([`crate::services::pack_tree::verify_snapshot`]). An edited snapshot fails, naming it.

use aims_core::evidence::payload::Payload;
use aims_core::evidence::{self, Checkpoint, Sealed};
use aims_core::hash::sha256_hex;
use serde::{Deserialize, Serialize};

use crate::services::pack_record::{PackError, PackedRecord};
use crate::services::report::SnapshotRef;
use crate::store::{Store, StoreError};

/// The pack member holding it.
pub const SNAPSHOT: &str = "snapshot.json";

/// `snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedSnapshot {
    /// The last record folded into the state.
    pub seq: u64,
    /// The state, JSON, exactly as kept (its SHA-256 is in `record`).
    pub state: String,
    /// The `report_snapshot` evidence record holding the state's SHA-256.
    pub record: PackedRecord,
}

/// Why the snapshot could not be read for a pack.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The snapshot or its record is no longer in the store.
    #[error("report snapshot at record {seq}: {what} is missing from the store")]
    Missing {
        /// The snapshot.
        seq: u64,
        /// What is missing.
        what: String,
    },
}

/// Reads the snapshot the report names, and its record, for a pack.
pub async fn read(store: &Store, named: &SnapshotRef) -> Result<PackedSnapshot, ReadError> {
    let missing = |what: String| ReadError::Missing {
        seq: named.seq,
        what,
    };
    let kept = store
        .report_snapshot_at_or_below(named.seq)
        .await?
        .filter(|s| s.seq == named.seq)
        .ok_or_else(|| missing("the snapshot".into()))?;
    let row = store
        .evidence_record(named.record)
        .await?
        .ok_or_else(|| missing(format!("evidence record {}", named.record)))?;
    Ok(PackedSnapshot {
        seq: kept.seq,
        state: kept.state,
        record: PackedRecord {
            seq: row.sealed.seq,
            at_ms: row.at_ms,
            kind: row.kind,
            objective: row.objective,
            canonical: row.sealed.canonical,
            prev_hash: row.sealed.prev_hash,
            hash: row.sealed.hash,
        },
    })
}

/// Checks `snapshot.json` against the snapshot the report `named` and the pack's `records`
/// (which follow record `anchor`). The Merkle proof of its record is checked apart, with the
/// key.
pub fn verify(
    s: &PackedSnapshot,
    named: &SnapshotRef,
    anchor: u64,
    records: &[PackedRecord],
) -> Result<(), PackError> {
    let refused = |reason: String| PackError::Snapshot {
        seq: named.seq,
        reason,
    };
    if s.seq != named.seq || s.record.seq != named.record {
        return Err(refused(format!(
            "the pack carries the snapshot at record {} (evidence record {}), but the report names evidence record {}",
            s.seq, s.record.seq, named.record
        )));
    }
    let sha256 = sha256_hex(s.state.as_bytes());
    if sha256 != named.sha256 {
        return Err(refused(format!(
            "its SHA-256 {sha256} is not the {} the report names: the snapshot was edited",
            named.sha256
        )));
    }
    // The record's own hash, from its prev_hash and canonical JSON.
    let r = &s.record;
    let sealed = Sealed {
        seq: r.seq,
        canonical: r.canonical.clone(),
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
    };
    let before = Checkpoint {
        records: 0,
        head_seq: r.seq.saturating_sub(1),
        head_hash: r.prev_hash.clone(),
    };
    evidence::verify(std::iter::once(sealed.clone()), Some(&before)).map_err(|b| {
        refused(format!(
            "its evidence record {} does not hash to its stated hash: {}",
            r.seq, b.reason
        ))
    })?;
    let payload = sealed.record().ok().and_then(|rec| Payload::of(&rec).ok());
    match payload {
        Some(Payload::ReportSnapshot(p)) if p.seq == s.seq && p.sha256 == sha256 => {}
        Some(Payload::ReportSnapshot(p)) if p.seq == s.seq => {
            return Err(refused(format!(
            "its SHA-256 {sha256} is not the {} evidence record {} holds: the snapshot was edited",
            p.sha256, r.seq
        )))
        }
        _ => {
            return Err(refused(format!(
                "evidence record {} is not the report_snapshot record of record {}",
                r.seq, s.seq
            )))
        }
    }
    // In the period, it must be the pack's own record of that number.
    if r.seq > anchor {
        if let Some(own) = records.get((r.seq - anchor - 1) as usize) {
            if own.seq != r.seq || own.canonical != r.canonical || own.hash != r.hash {
                return Err(refused(format!(
                    "its evidence record {} differs from the pack's record {}",
                    r.seq, r.seq
                )));
            }
        }
    }
    // The state must be the one folded up to `seq`.
    let folded = serde_json::from_str::<serde_json::Value>(&s.state)
        .ok()
        .and_then(|v| v.get("seq").and_then(|q| q.as_u64()));
    if folded != Some(s.seq) {
        return Err(refused(format!(
            "its state does not read as the state after record {}",
            s.seq
        )));
    }
    Ok(())
}
