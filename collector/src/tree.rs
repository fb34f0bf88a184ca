//! The evidence log's Merkle tree, read from the store: leaf `i` is record `i + 1`'s
//! canonical JSON (RFC 6962 leaf hash), so a checkpoint of size `n` covers records `1..=n`.
//!
//! The tree is rebuilt from the records when asked (32 bytes per record in memory); the
//! hashing and proofs themselves are `aims_core::merkle`'s.

use aims_core::checkpoint::{SigningKey, TreeHead};
use aims_core::merkle::{self, Frontier, Hash};
use thiserror::Error;

use crate::store::{Store, StoreError};

/// Why the tree could not be read.
#[derive(Debug, Error)]
pub enum TreeError {
    /// The records could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sequence numbers are not 1, 2, 3, ...: a record was removed.
    #[error("evidence record {expected} is missing (found record {found} in its place)")]
    Gap {
        /// The sequence expected.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
}

/// The leaf hashes of every record, in sequence order.
pub async fn leaves(store: &Store) -> Result<Vec<Hash>, TreeError> {
    let mut out = Vec::new();
    loop {
        let page = store.evidence_page(out.len() as u64, 5_000, None).await?;
        if page.is_empty() {
            return Ok(out);
        }
        for row in page {
            let expected = out.len() as u64 + 1;
            if row.sealed.seq != expected {
                return Err(TreeError::Gap {
                    expected,
                    found: row.sealed.seq,
                });
            }
            out.push(merkle::leaf_hash(row.sealed.canonical.as_bytes()));
        }
    }
}

/// The right edge of the tree of every record, read page by page (memory: one hash per level).
pub async fn frontier(store: &Store) -> Result<Frontier, TreeError> {
    let mut out = Frontier::new();
    loop {
        let page = store.evidence_page(out.size(), 5_000, None).await?;
        if page.is_empty() {
            return Ok(out);
        }
        for row in page {
            let expected = out.size() + 1;
            if row.sealed.seq != expected {
                return Err(TreeError::Gap {
                    expected,
                    found: row.sealed.seq,
                });
            }
            out.push(merkle::leaf_hash(row.sealed.canonical.as_bytes()));
        }
    }
}

/// The tree head over `leaves`.
pub fn head(origin: &str, leaves: &[Hash]) -> TreeHead {
    TreeHead {
        origin: origin.to_owned(),
        size: leaves.len() as u64,
        root: merkle::root(leaves),
    }
}

/// A checkpoint the collector signed: the tree head, its signed note and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// What was signed.
    pub head: TreeHead,
    /// The C2SP signed note.
    pub note: String,
    /// When, ms.
    pub at_ms: i64,
}

/// Reads a signing key file.
pub fn read_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the evidence key {}", path.display()))?;
    SigningKey::parse(&text).with_context(|| format!("evidence key {}", path.display()))
}
