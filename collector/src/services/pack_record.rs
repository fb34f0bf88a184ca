//! What an evidence pack's two halves share: the error of writing, reading or verifying a
//! pack, and one record as packed. A leaf below [`crate::services::pack`] (the chain and the
//! report) and [`crate::services::pack_tree`] (the Merkle proofs), so neither imports the other
//! for them.

use aims_core::evidence::Broken;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a pack could not be written or read, or does not verify.
#[derive(Debug, Error)]
pub enum PackError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A member is missing.
    #[error("the pack has no {0}")]
    Missing(&'static str),
    /// A member does not parse.
    #[error("{member}{line}: {source}", line = .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        /// Which member.
        member: &'static str,
        /// Line, for the NDJSON.
        line: Option<usize>,
        /// Why.
        source: serde_json::Error,
    },
    /// A record breaks the chain.
    #[error(transparent)]
    Broken(#[from] Broken),
    /// The report or checkpoints disagree with the records.
    #[error("{0}")]
    Mismatch(String),
    /// A signed checkpoint does not verify with the key given.
    #[error("signature of {what}: {source}")]
    Signature {
        /// Which checkpoint.
        what: String,
        /// Why.
        source: aims_core::checkpoint::CheckpointError,
    },
    /// A checkpoint disagrees with the records' extent or with another checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The records do not hash to the signed root.
    #[error("records: {0}")]
    Records(String),
    /// The report snapshot the report started from does not verify.
    #[error("report snapshot at record {seq}: {reason}")]
    Snapshot {
        /// The last record folded into the snapshot.
        seq: u64,
        /// Why.
        reason: String,
    },
}

impl PackError {
    /// What failed, in one word: `record`, `checkpoint`, `signature`, `snapshot`, `report` or
    /// `pack`.
    pub fn what(&self) -> &'static str {
        match self {
            PackError::Broken(_) | PackError::Records(_) => "record",
            PackError::Checkpoint(_) => "checkpoint",
            PackError::Signature { .. } => "signature",
            PackError::Snapshot { .. } => "snapshot",
            PackError::Mismatch(_) => "report",
            PackError::Io { .. } | PackError::Missing(_) | PackError::Parse { .. } => "pack",
        }
    }
}

/// One line of `evidence.ndjson`: the sealed record with its index columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedRecord {
    /// Sequence.
    pub seq: u64,
    /// When recorded, ms (also inside the canonical JSON).
    pub at_ms: i64,
    /// Kind (also inside the canonical JSON).
    pub kind: String,
    /// The objective it concerns.
    pub objective: Option<String>,
    /// Canonical JSON of the record.
    pub canonical: String,
    /// Previous record's hash.
    pub prev_hash: String,
    /// `SHA-256(prev_hash || canonical)`.
    pub hash: String,
}
