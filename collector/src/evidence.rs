//! The evidence log's writer and verifier over the store.
//!
//! The writer holds the chain head under a lock while it seals and commits a batch, so the
//! chain is never forked by concurrent writers in this process; the head only advances once
//! the batch is committed, so a failed write leaves the chain as it was. Writers in other
//! replicas sharing the database are handled by the store: an append is conditional on the
//! head it was sealed on, and a batch whose head moved is re-sealed on the new head and
//! tried again. While this replica leads, its appends also carry the leadership term, which
//! the database checks (fencing).

use aims_core::checkpoint::TreeHead;
use aims_core::evidence::payload::Payload;
use aims_core::evidence::{self, Broken, Checkpoint, Record, GENESIS};
use aims_core::merkle::{self, Frontier};
use thiserror::Error;
use tokio::sync::Mutex;

use crate::metrics::Metrics;
use crate::store::{EvidenceRow, ObjectiveRow, Store, StoreError};
use crate::tree::{self, TreeError};

/// An entry to be recorded: a typed payload, and the objective it concerns.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The objective it concerns (indexed for the read API).
    pub objective: Option<String>,
    /// What it records.
    pub payload: Payload,
}

impl Entry {
    /// An entry about an objective.
    pub fn objective(objective: &str, payload: Payload) -> Self {
        Self {
            objective: Some(objective.to_owned()),
            payload,
        }
    }

    /// An entry about the collector as a whole.
    pub fn global(payload: Payload) -> Self {
        Self {
            objective: None,
            payload,
        }
    }
}

/// Why verification could not complete or failed.
#[derive(Debug, Error)]
pub enum VerifyError {
    /// The records could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain is broken.
    #[error(transparent)]
    Broken(#[from] Broken),
}

/// The append-only writer.
#[derive(Debug)]
pub struct EvidenceLog {
    store: Store,
    head: Mutex<(u64, String)>,
    term: parking_lot::Mutex<Option<i64>>,
    /// The Merkle tree's right edge, advanced (under the head lock) after each commit: the
    /// current root costs O(log n) on the append path, without holding the leaves. Records
    /// other replicas appended are read into it from the store ([`EvidenceLog::catch_up`]).
    tree: parking_lot::Mutex<Frontier>,
    metrics: Metrics,
}

/// How many times a batch is re-sealed when other replicas keep moving the head.
const APPEND_ATTEMPTS: usize = 8;

impl EvidenceLog {
    /// Opens the log at its stored head; the tree's right edge is the one kept with the latest
    /// checkpoint, extended with the records after it (every record when there is none).
    pub async fn open(store: Store, metrics: Metrics) -> Result<Self, TreeError> {
        let head = store
            .evidence_head()
            .await?
            .unwrap_or((0, GENESIS.to_owned()));
        let frontier = tree::frontier_from_checkpoint(&store).await?;
        metrics.set_evidence_head(head.0, &head.1);
        publish_tree(&metrics, &frontier);
        Ok(Self {
            store,
            head: Mutex::new(head),
            term: parking_lot::Mutex::new(None),
            tree: parking_lot::Mutex::new(frontier),
            metrics,
        })
    }

    /// The tree head of every record committed so far, named `origin`.
    pub fn tree_head(&self, origin: &str) -> TreeHead {
        let tree = self.tree.lock();
        TreeHead {
            origin: origin.to_owned(),
            size: tree.size(),
            root: tree.root(),
        }
    }

    /// The tree's right edge now (the peaks a pack's verifier extends).
    pub fn frontier(&self) -> Frontier {
        self.tree.lock().clone()
    }

    /// Seals and commits `entries` together with the objective rows, in one transaction.
    /// Returns the new head. If another replica appended first, the batch is re-sealed on the
    /// stored head and tried again; a fenced append (a newer leadership term holds) fails with
    /// [`StoreError::Fenced`] and writes nothing.
    pub async fn append(
        &self,
        entries: Vec<Entry>,
        states: &[ObjectiveRow],
        now_ms: i64,
    ) -> Result<(u64, String), StoreError> {
        let term = *self.term.lock();
        self.append_in_term(entries, states, now_ms, term).await
    }

    /// [`EvidenceLog::append`] fenced on `term`, the term the caller read when it began its
    /// work (an evaluation cycle): if this replica lost that term meanwhile, however briefly
    /// it knew it, the append is refused rather than written unfenced.
    pub async fn append_in_term(
        &self,
        entries: Vec<Entry>,
        states: &[ObjectiveRow],
        now_ms: i64,
        term: Option<i64>,
    ) -> Result<(u64, String), StoreError> {
        self.append_timed(&[(now_ms, entries)], states, term).await
    }

    /// Seals and commits several batches, each recorded at its own time, in one transaction
    /// (bulk loads, such as the benchmarks' multi-million-record logs, through the same path).
    pub async fn append_batches(
        &self,
        batches: &[(i64, Vec<Entry>)],
    ) -> Result<(u64, String), StoreError> {
        let term = *self.term.lock();
        self.append_timed(batches, &[], term).await
    }

    async fn append_timed(
        &self,
        batches: &[(i64, Vec<Entry>)],
        states: &[ObjectiveRow],
        term: Option<i64>,
    ) -> Result<(u64, String), StoreError> {
        let mut head = self.head.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (seq, prev, rows) = seal(&head, batches);
            match self.store.append(&head, &rows, states, term).await {
                Ok(()) => {
                    if !rows.is_empty() {
                        self.advance_tree(head.0, &rows).await;
                        *head = (seq, prev);
                        self.metrics.set_evidence_head(head.0, &head.1);
                        tracing::debug!(head_seq = head.0, head_hash = %head.1, records = rows.len(), "evidence appended");
                    }
                    return Ok(head.clone());
                }
                Err(StoreError::HeadMoved { head: stored }) if attempt < APPEND_ATTEMPTS => {
                    tracing::debug!(
                        from = head.0,
                        to = stored.0,
                        "another replica appended evidence; re-sealing on its head"
                    );
                    *head = stored;
                    self.metrics.set_evidence_head(head.0, &head.1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Adds the rows just committed after record `before` to the tree. When the tree lacks
    /// records before them (another replica appended them), it is extended from the store
    /// instead, which reads the new rows too.
    async fn advance_tree(&self, before: u64, rows: &[EvidenceRow]) {
        let behind = {
            let mut tree = self.tree.lock();
            if tree.size() == before {
                for r in rows {
                    tree.push(merkle::leaf_hash(r.sealed.canonical.as_bytes()));
                }
                publish_tree(&self.metrics, &tree);
                None
            } else {
                Some(tree.clone())
            }
        };
        if let Some(edge) = behind {
            self.extend_tree(edge).await;
        }
    }

    /// Reads into the tree every record stored after it: those other replicas appended. A
    /// replica that signs a checkpoint calls this first, so the checkpoint covers the log.
    pub async fn catch_up(&self) {
        let _head = self.head.lock().await;
        let edge = self.tree.lock().clone();
        self.extend_tree(edge).await;
    }

    async fn extend_tree(&self, edge: Frontier) {
        match tree::extend(&self.store, edge).await {
            Ok(f) => {
                let mut tree = self.tree.lock();
                if f.size() >= tree.size() {
                    *tree = f;
                }
                publish_tree(&self.metrics, &tree);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not read new evidence into the Merkle tree")
            }
        }
    }

    /// Sets the leadership term this replica's appends carry (`None`: not leading).
    pub fn set_term(&self, term: Option<i64>) {
        *self.term.lock() = term;
    }

    /// The leadership term this replica's appends carry.
    pub fn term(&self) -> Option<i64> {
        *self.term.lock()
    }

    /// The current head.
    pub async fn head(&self) -> (u64, String) {
        self.head.lock().await.clone()
    }
}

/// `entries` sealed as records after `head`: the last sequence and hash, and the rows.
fn seal(head: &(u64, String), batches: &[(i64, Vec<Entry>)]) -> (u64, String, Vec<EvidenceRow>) {
    let (mut seq, mut prev) = head.clone();
    let mut rows = Vec::with_capacity(batches.iter().map(|(_, b)| b.len()).sum());
    for (now_ms, e) in batches
        .iter()
        .flat_map(|(t, b)| b.iter().map(move |e| (*t, e)))
    {
        seq += 1;
        let kind = e.payload.kind();
        let sealed = Record {
            seq,
            at_ms: now_ms,
            kind,
            data: e.payload.data(),
        }
        .seal(&prev);
        prev = sealed.hash.clone();
        rows.push(EvidenceRow {
            sealed,
            at_ms: now_ms,
            kind: kind.as_str().to_owned(),
            objective: e.objective.clone(),
        });
    }
    (seq, prev, rows)
}

fn publish_tree(metrics: &Metrics, tree: &Frontier) {
    let head = TreeHead {
        origin: String::new(),
        size: tree.size(),
        root: tree.root(),
    };
    metrics.tree.size.set(head.size as i64);
    metrics.tree.root.set(head.root_prefix_48() as i64);
}

/// Recomputes the whole chain from the store, page by page.
pub async fn verify(store: &Store) -> Result<Checkpoint, VerifyError> {
    let mut checkpoint: Option<Checkpoint> = None;
    loop {
        let after = checkpoint.as_ref().map_or(0, |c| c.head_seq);
        let page = store.evidence_page(after, 5_000, None).await?;
        if page.is_empty() {
            break;
        }
        for row in page {
            let next = evidence::verify(std::iter::once(row.sealed.clone()), checkpoint.as_ref())?;
            let record = row.sealed.record().map_err(|e| Broken {
                seq: row.sealed.seq,
                reason: format!("canonical JSON does not parse: {e}"),
            })?;
            if record.kind.as_str() != row.kind || record.at_ms != row.at_ms {
                return Err(Broken {
                    seq: row.sealed.seq,
                    reason: "the kind or time columns disagree with the sealed record".into(),
                }
                .into());
            }
            checkpoint = Some(next);
        }
    }
    Ok(checkpoint.unwrap_or(Checkpoint {
        records: 0,
        head_seq: 0,
        head_hash: GENESIS.to_owned(),
    }))
}
