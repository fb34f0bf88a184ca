//! The Merkle part of an evidence pack (`tree.json`): a signed checkpoint of the log up to the
//! period's last record, the tree's right edge just before the period, and the checkpoints the
//! collector issued around the period, each tied to the pack's checkpoint by a consistency
//! proof.
//!
//! Offline, [`verify`] extends the right edge with the period's records and must reach the
//! signed root: the records are then exactly leaves `anchor + 1 ..= end` of the signed tree
//! (nothing changed, added, removed or reordered). The issued checkpoints' proofs show that
//! the log the pack was cut from is an append-only extension of (or a prefix of) what the
//! collector published at the time, so an auditor holding any one of them can compare.

use aims_core::checkpoint::{CheckpointError, SigningKey, TreeHead, VerifierKey};
use aims_core::merkle::{self, Frontier, Hash};
use serde::{Deserialize, Serialize};

use crate::services::pack_record::{PackError, PackedRecord};
use crate::store::{Store, StoredCheckpoint};
use crate::tree::{self, TreeError};

/// The pack member holding it.
pub const TREE: &str = "tree.json";

/// `tree.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeProofs {
    /// The signed checkpoint of records `1..=end`, the period's last record.
    pub checkpoint: String,
    /// Records before the period (the anchor's sequence).
    pub prefix_size: u64,
    /// The right edge of the tree of those records (hex, largest subtree first).
    pub prefix_peaks: Vec<String>,
    /// Checkpoints the collector issued: the last before the period, those within it and the
    /// first after it.
    pub issued: Vec<Linked>,
    /// The inclusion proof of the `report_snapshot` record of the snapshot the report started
    /// from (packs whose report started from one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProof>,
}

/// The proof that ties a report snapshot's `report_snapshot` record to a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProof {
    /// The record's sequence (leaf `record - 1`).
    pub record: u64,
    /// Hex hashes: its audit path in the pack's checkpoint, or in `later`'s tree when the
    /// record follows the period.
    pub inclusion: Vec<String>,
    /// When the record follows the period's last record: a signed checkpoint of the log as
    /// exported, with the consistency proof from the pack's checkpoint to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub later: Option<Linked>,
}

/// An issued checkpoint and the consistency proof between it and the pack's checkpoint
/// (from the smaller tree to the larger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    /// The signed note, as issued.
    pub checkpoint: String,
    /// Hex hashes.
    pub consistency: Vec<String>,
}

/// Why the tree part could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The log could not be read.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] CheckpointError),
    /// The report snapshot's record is not in the log.
    #[error("the report snapshot's evidence record {record} is not in the log of {now} records")]
    SnapshotRecord {
        /// The record.
        record: u64,
        /// The log's size.
        now: u64,
    },
    /// The collector signed a larger tree than the log now holds.
    #[error("the collector issued a checkpoint of {issued} records but the log now has {now}: records {} to {issued} are gone", .now + 1)]
    Truncated {
        /// The checkpoint's size.
        issued: u64,
        /// The log's size.
        now: u64,
    },
}

/// Builds `tree.json` for a period after record `anchor` ending at record `end`, with the
/// inclusion proof of `snapshot_record` (the `report_snapshot` record of the snapshot the
/// period's report started from) when there is one.
pub async fn build(
    store: &Store,
    key: &SigningKey,
    origin: &str,
    anchor: u64,
    end: u64,
    snapshot_record: Option<u64>,
) -> Result<TreeProofs, BuildError> {
    let leaves = tree::leaves(store).await?;
    let now = leaves.len() as u64;
    let mut issued: Vec<StoredCheckpoint> = Vec::new();
    issued.extend(store.checkpoint_at_or_below(anchor).await?);
    issued.extend(store.checkpoints_between(anchor + 1, end).await?);
    issued.extend(store.checkpoint_above(end).await?);
    if let Some(c) = issued.iter().find(|c| c.size > now) {
        return Err(BuildError::Truncated {
            issued: c.size,
            now,
        });
    }
    let end = end.min(now);
    let head = tree::head(origin, &leaves[..end as usize]);
    let mut prefix = Frontier::new();
    for h in &leaves[..anchor.min(end) as usize] {
        prefix.push(*h);
    }
    let linked = issued
        .into_iter()
        .map(|c| {
            let (small, large) = if c.size <= end {
                (c.size, end)
            } else {
                (end, c.size)
            };
            let proof = merkle::consistency_proof(&leaves[..large as usize], small as usize)
                .expect("sizes within the log");
            Linked {
                checkpoint: c.note,
                consistency: proof.iter().map(merkle::to_hex).collect(),
            }
        })
        .collect();
    let snapshot = match snapshot_record {
        None => None,
        Some(record) if record == 0 || record > now => {
            return Err(BuildError::SnapshotRecord { record, now })
        }
        Some(record) if record <= end => Some(SnapshotProof {
            record,
            inclusion: hex(&merkle::inclusion_proof(
                &leaves[..end as usize],
                record as usize - 1,
            )),
            later: None,
        }),
        Some(record) => Some(SnapshotProof {
            record,
            inclusion: hex(&merkle::inclusion_proof(&leaves, record as usize - 1)),
            later: Some(Linked {
                checkpoint: tree::head(origin, &leaves).sign(key)?,
                consistency: hex(&merkle::consistency_proof(&leaves, end as usize)),
            }),
        }),
    };
    Ok(TreeProofs {
        snapshot,
        checkpoint: head.sign(key)?,
        prefix_size: prefix.size(),
        prefix_peaks: prefix.peaks().iter().map(merkle::to_hex).collect(),
        issued: linked,
    })
}

/// Hex of a proof computed within the log's bounds.
fn hex(proof: &Option<Vec<Hash>>) -> Vec<String> {
    proof
        .as_deref()
        .expect("sizes within the log")
        .iter()
        .map(merkle::to_hex)
        .collect()
}

fn hashes(what: &str, hex: &[String]) -> Result<Vec<Hash>, PackError> {
    hex.iter()
        .map(|h| {
            merkle::from_hex(h)
                .ok_or_else(|| PackError::Checkpoint(format!("{what}: {h:?} is not a hex hash")))
        })
        .collect()
}

/// Checks `tree.json` against the period's `records` (which follow record `anchor`) with the
/// collector's public key; returns the signed tree head.
pub fn verify(
    t: &TreeProofs,
    key: &VerifierKey,
    anchor: u64,
    records: &[PackedRecord],
) -> Result<TreeHead, PackError> {
    let head = TreeHead::open(&t.checkpoint, key).map_err(|source| PackError::Signature {
        what: format!("the pack's checkpoint ({TREE})"),
        source,
    })?;
    let end = anchor + records.len() as u64;
    if head.size != end || t.prefix_size != anchor {
        return Err(PackError::Checkpoint(format!(
            "the signed checkpoint covers {} records and its prefix {}, but the pack's records run from {} to {end}",
            head.size,
            t.prefix_size,
            anchor + 1
        )));
    }
    let peaks = hashes("prefix_peaks", &t.prefix_peaks)?;
    let mut tree = Frontier::from_peaks(anchor, &peaks).ok_or_else(|| {
        PackError::Checkpoint(format!(
            "prefix_peaks: {} hashes cannot be the edge of a tree of {anchor} records",
            peaks.len()
        ))
    })?;
    for r in records {
        tree.push(merkle::leaf_hash(r.canonical.as_bytes()));
    }
    if tree.root() != head.root {
        return Err(PackError::Records(format!(
            "records {} to {end} do not hash to the root of the signed checkpoint of {end} records: a record (or the tree edge before them) was changed, added, removed or reordered",
            anchor + 1
        )));
    }
    for (i, l) in t.issued.iter().enumerate() {
        let what = format!("issued checkpoint {} ({TREE})", i + 1);
        let old = TreeHead::open(&l.checkpoint, key).map_err(|source| PackError::Signature {
            what: what.clone(),
            source,
        })?;
        if old.origin != head.origin {
            return Err(PackError::Checkpoint(format!(
                "{what} is of log {:?}, the pack's of {:?}",
                old.origin, head.origin
            )));
        }
        let proof = hashes(&what, &l.consistency)?;
        let (small, large) = if old.size <= head.size {
            (&old, &head)
        } else {
            (&head, &old)
        };
        merkle::verify_consistency(small.size, large.size, &small.root, &large.root, &proof)
            .map_err(|e| {
                PackError::Checkpoint(format!(
                    "{what} (size {}) and the pack's checkpoint (size {}) are not one append-only log: records were rewritten between them ({e})",
                    old.size, head.size
                ))
            })?;
    }
    Ok(head)
}

/// Checks that `record`, the `report_snapshot` record of the snapshot the report started
/// from, is in the log the pack's checkpoint `head` signs (or in a later signed checkpoint
/// consistent with it): `tree.json`'s inclusion proof, with the collector's public key.
pub fn verify_snapshot(
    t: &TreeProofs,
    key: &VerifierKey,
    head: &TreeHead,
    snapshot_seq: u64,
    record: &PackedRecord,
) -> Result<(), PackError> {
    let refused = |reason: String| PackError::Snapshot {
        seq: snapshot_seq,
        reason,
    };
    let p = t.snapshot.as_ref().ok_or_else(|| {
        refused(format!(
            "{TREE} carries no inclusion proof of its evidence record {}",
            record.seq
        ))
    })?;
    if p.record != record.seq || record.seq == 0 {
        return Err(refused(format!(
            "{TREE} proves evidence record {}, the snapshot's record is {}",
            p.record, record.seq
        )));
    }
    let what = format!("the later checkpoint of the snapshot's record ({TREE})");
    let tree = match &p.later {
        _ if record.seq <= head.size => head.clone(),
        None => {
            return Err(refused(format!(
                "its evidence record {} follows the pack's checkpoint of {} records and {TREE} carries no later one",
                record.seq, head.size
            )))
        }
        Some(l) => {
            let later = TreeHead::open(&l.checkpoint, key).map_err(|source| {
                PackError::Signature {
                    what: what.clone(),
                    source,
                }
            })?;
            if later.origin != head.origin || later.size < head.size {
                return Err(PackError::Checkpoint(format!(
                    "{what} is of log {:?} at size {}, the pack's of {:?} at size {}",
                    later.origin, later.size, head.origin, head.size
                )));
            }
            let proof = hashes(&what, &l.consistency)?;
            merkle::verify_consistency(head.size, later.size, &head.root, &later.root, &proof)
                .map_err(|e| {
                    PackError::Checkpoint(format!(
                        "{what} (size {}) and the pack's checkpoint (size {}) are not one append-only log ({e})",
                        later.size, head.size
                    ))
                })?;
            later
        }
    };
    let proof = hashes("the snapshot's inclusion proof", &p.inclusion)?;
    let leaf = merkle::leaf_hash(record.canonical.as_bytes());
    merkle::verify_inclusion(&leaf, record.seq - 1, tree.size, &proof, &tree.root).map_err(|e| {
        refused(format!(
            "its evidence record {} is not in the signed checkpoint of {} records ({e})",
            record.seq, tree.size
        ))
    })
}
