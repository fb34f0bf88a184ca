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
    extend(store, Frontier::new()).await
}

/// The right edge of the tree of every record, starting from the edge kept with the latest
/// checkpoint when it agrees with that checkpoint's root and the log still holds that many
/// records; otherwise from record 1.
pub async fn frontier_from_checkpoint(store: &Store) -> Result<Frontier, TreeError> {
    let head = store.evidence_head().await?.map_or(0, |(seq, _)| seq);
    let kept = store.latest_checkpoint().await?.and_then(|c| {
        let signed = TreeHead::parse(&c.note).ok()?;
        let f = parse_peaks(c.size, &c.peaks)?;
        (signed.size == c.size && f.root() == signed.root && c.size <= head).then_some(f)
    });
    extend(store, kept.unwrap_or_default()).await
}

/// The edge as kept with a checkpoint: hex hashes, comma-separated.
pub fn peaks_text(f: &Frontier) -> String {
    f.peaks()
        .iter()
        .map(merkle::to_hex)
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_peaks(size: u64, text: &str) -> Option<Frontier> {
    let peaks: Option<Vec<Hash>> = text
        .split(',')
        .filter(|p| !p.is_empty())
        .map(merkle::from_hex)
        .collect();
    Frontier::from_peaks(size, &peaks?)
}

/// `out` extended with every record after it.
pub async fn extend(store: &Store, mut out: Frontier) -> Result<Frontier, TreeError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::evidence::{Entry, EvidenceLog};
    use crate::metrics::Metrics;
    use crate::store::StoredCheckpoint;
    use aims_core::evidence::payload::{Payload, Startup};

    fn startup(i: usize) -> Entry {
        Entry::global(Payload::Startup(Startup {
            version: format!("{i}"),
            objectives_file: "o.yaml".into(),
            file_version: "f".into(),
        }))
    }

    /// Opening the log starts from the edge kept with the latest checkpoint, and falls back to
    /// every record when that edge disagrees with the checkpoint's root.
    #[tokio::test]
    async fn the_log_opens_from_the_kept_edge_and_only_when_it_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
        let log = EvidenceLog::open(store.clone(), Metrics::new())
            .await
            .unwrap();
        for i in 0..7 {
            log.append(vec![startup(i), startup(i + 100)], &[], 1_000)
                .await
                .unwrap();
        }
        let key = SigningKey::from_seed("o", [3; 32]).unwrap();
        let at_ten = {
            let all = leaves(&store).await.unwrap();
            let mut f = Frontier::new();
            all[..10].iter().for_each(|h| f.push(*h));
            f
        };
        let head10 = TreeHead {
            origin: "o".into(),
            size: 10,
            root: at_ten.root(),
        };
        let full = log.tree_head("o");
        // A kept edge whose root is not the signed one is ignored.
        let mut wrong = at_ten.peaks();
        wrong[0][0] ^= 1;
        store
            .put_checkpoint(&StoredCheckpoint {
                size: 10,
                at_ms: 1,
                note: head10.sign(&key).unwrap(),
                peaks: peaks_text(&Frontier::from_peaks(10, &wrong).unwrap()),
            })
            .await
            .unwrap();
        assert_eq!(
            frontier_from_checkpoint(&store).await.unwrap().root(),
            full.root
        );
        let reopened = EvidenceLog::open(store.clone(), Metrics::new())
            .await
            .unwrap();
        assert_eq!(reopened.tree_head("o"), full);
        // A good one is used (and gives the same tree as reading every record).
        store
            .put_checkpoint(&StoredCheckpoint {
                size: 12,
                at_ms: 2,
                note: {
                    let all = leaves(&store).await.unwrap();
                    head("o", &all[..12]).sign(&key).unwrap()
                },
                peaks: {
                    let all = leaves(&store).await.unwrap();
                    let mut f = Frontier::new();
                    all[..12].iter().for_each(|h| f.push(*h));
                    peaks_text(&f)
                },
            })
            .await
            .unwrap();
        assert_eq!(
            frontier_from_checkpoint(&store).await.unwrap().root(),
            full.root
        );
        assert_eq!(frontier_from_checkpoint(&store).await.unwrap().size(), 14);
        // It is really read: a kept edge agreeing with its note but not with the records is
        // trusted at open (a rewrite then shows against earlier published checkpoints).
        let mut other = Frontier::new();
        (0..13u8).for_each(|i| other.push(merkle::leaf_hash(&[i])));
        let fake = TreeHead {
            origin: "o".into(),
            size: 13,
            root: other.root(),
        };
        store
            .put_checkpoint(&StoredCheckpoint {
                size: 13,
                at_ms: 3,
                note: fake.sign(&key).unwrap(),
                peaks: peaks_text(&other),
            })
            .await
            .unwrap();
        let from_kept = frontier_from_checkpoint(&store).await.unwrap();
        assert_eq!(from_kept.size(), 14);
        assert_ne!(from_kept.root(), full.root);
    }
}
