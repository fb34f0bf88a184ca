//! The state shared by the HTTP handlers, the ingest writer, the evaluator and reloads.
//!
//! Locks are `parking_lot` locks held only for short, synchronous sections (never across an
//! await). They do not poison: a panic in one holder cannot make every later request fail.
//! The evidence log has its own async lock around the chain head.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;

use aims_core::checkpoint::SigningKey;
use aims_core::lifecycle::Lifecycle;
use aims_core::nonconformity::Nonconformity;
use aims_core::objective::ObjectivesFile;
use aims_core::wire::SummaryEnvelope;
use aims_core::{Measured, ModelSchema, ReferenceProfile};
use tokio::sync::{mpsc, oneshot};

use crate::aggregate::Aggregates;
use crate::clock::Clock;
use crate::config::{AgentToken, Config};
use crate::evidence::EvidenceLog;
use crate::metrics::Metrics;
use crate::store::{ObjectiveRow, Store, StoreError, SummaryBody};
use crate::tree::Signed;

/// A validated summary waiting for the ingest writer to commit it, and where to send the
/// outcome.
#[derive(Debug)]
pub struct IngestJob {
    /// The summary.
    pub envelope: SummaryEnvelope,
    /// What is stored: the gzip body it was received in, or the summary's text within an
    /// uncompressed one (see `aims_core::wire::summary_text`).
    pub body: SummaryBody,
    /// What became of it, or `Err` when the commit failed; taken when answered.
    pub reply: Option<oneshot::Sender<Result<Commit, String>>>,
}

/// What the ingest writer did with a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// Stored and merged.
    New,
    /// Its id was seen before; nothing was written.
    Duplicate,
    /// Refused, nothing written: merging it would overflow the named field of the aggregates.
    Overflow(String),
}

/// Who is sending summaries or profiles.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No agent tokens are configured: ingest is open.
    Open,
    /// An authenticated agent.
    Agent(AgentToken),
}

impl Caller {
    /// Whether the caller may send for `model`.
    pub fn may_send(&self, model: &str) -> bool {
        match self {
            Caller::Open => true,
            Caller::Agent(a) => a.models.iter().any(|m| m == "*" || m == model),
        }
    }
}

/// Known reference profiles, by hash, and each model's latest.
#[derive(Debug, Default)]
pub struct Profiles {
    by_hash: HashMap<String, Arc<ReferenceProfile>>,
    latest: HashMap<String, String>,
}

impl Profiles {
    /// Adds a profile; a profile not seen before becomes its model's latest.
    pub fn insert(&mut self, profile: ReferenceProfile) {
        if self.by_hash.contains_key(&profile.hash) {
            return;
        }
        self.latest
            .insert(profile.model.clone(), profile.hash.clone());
        self.by_hash.insert(profile.hash.clone(), Arc::new(profile));
    }

    /// The profile with this hash.
    pub fn get(&self, hash: &str) -> Option<Arc<ReferenceProfile>> {
        self.by_hash.get(hash).cloned()
    }

    /// The latest profile of `model`.
    pub fn latest(&self, model: &str) -> Option<Arc<ReferenceProfile>> {
        self.latest.get(model).and_then(|h| self.get(h))
    }

    /// The latest profile for `model` whose hash or model version is `version`.
    pub fn find(&self, model: &str, version: &str) -> Option<Arc<ReferenceProfile>> {
        if let Some(p) = self.by_hash.get(version).filter(|p| p.model == model) {
            return Some(p.clone());
        }
        self.latest(model)
            .filter(|p| p.model_version == version)
            .or_else(|| {
                self.by_hash
                    .values()
                    .find(|p| p.model == model && p.model_version == version)
                    .cloned()
            })
    }

    /// Every model with a profile.
    pub fn models(&self) -> Vec<String> {
        let mut m: Vec<String> = self.latest.keys().cloned().collect();
        m.sort();
        m
    }

    /// The schemas objectives are checked against: each model's latest.
    pub fn schemas(&self) -> Vec<ModelSchema> {
        self.latest
            .values()
            .filter_map(|h| self.by_hash.get(h))
            .map(|p| p.schema.clone())
            .collect()
    }
}

/// What the read API shows about one objective.
#[derive(Debug, Clone)]
pub struct ObjectiveStatus {
    /// Version (content hash) currently in force.
    pub version: String,
    /// The lifecycle.
    pub lifecycle: Lifecycle,
    /// Last measured value.
    pub last_value: Option<Measured>,
    /// Last verdict (or `no_data`).
    pub last_verdict: Option<String>,
    /// Samples behind the last value.
    pub samples: Option<u64>,
    /// When last evaluated, ms.
    pub evaluated_ms: Option<i64>,
}

impl ObjectiveStatus {
    /// The row persisted for it.
    pub fn row(&self, objective: &str) -> ObjectiveRow {
        ObjectiveRow {
            objective: objective.to_owned(),
            version: Some(self.version.clone()),
            lifecycle: serde_json::to_string(&self.lifecycle).unwrap_or_default(),
            last_value: self
                .last_value
                .as_ref()
                .and_then(|v| serde_json::to_string(v).ok()),
            last_verdict: self.last_verdict.clone(),
            samples: self.samples.map(|s| s as i64),
            evaluated_ms: self.evaluated_ms,
        }
    }

    /// Restores a persisted row; `None` when it does not parse.
    pub fn from_row(row: &ObjectiveRow) -> Option<Self> {
        Some(Self {
            version: row.version.clone().filter(|v| !v.is_empty())?,
            lifecycle: serde_json::from_str(&row.lifecycle).ok()?,
            last_value: row
                .last_value
                .as_deref()
                .and_then(|v| serde_json::from_str(v).ok()),
            last_verdict: row.last_verdict.clone(),
            samples: row.samples.map(|s| s.max(0) as u64),
            evaluated_ms: row.evaluated_ms,
        })
    }
}

/// Everything the tasks share.
#[derive(Debug)]
pub struct App {
    /// Configuration as loaded at start.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The evidence log.
    pub evidence: EvidenceLog,
    /// Reference profiles.
    pub profiles: RwLock<Profiles>,
    /// Rolling aggregates.
    pub aggregates: RwLock<Aggregates>,
    /// Objectives in force.
    pub objectives: RwLock<Arc<ObjectivesFile>>,
    /// Per objective status.
    pub status: RwLock<HashMap<String, ObjectiveStatus>>,
    /// Queue to the ingest writer.
    pub ingest: mpsc::Sender<IngestJob>,
    /// Serialises reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Nonconformities (Clause 10.2), by id.
    pub nonconformities: RwLock<BTreeMap<u64, Nonconformity>>,
    /// Serialises changes to nonconformities from the evaluator and the API, held across
    /// their evidence write.
    pub corrective_lock: tokio::sync::Mutex<()>,
    /// Process start, ms.
    pub started_ms: i64,
    /// Where every task reads the time.
    pub clock: Clock,
    /// The key checkpoints are signed with (`evidence.key_file`); none, none are signed.
    pub signer: Option<Arc<SigningKey>>,
    /// The latest signed checkpoint.
    pub checkpoint: RwLock<Option<Signed>>,
}

impl App {
    /// Now, from the shared clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The objectives in force.
    pub fn objectives(&self) -> Arc<ObjectivesFile> {
        self.objectives.read().clone()
    }

    /// Rebuilds the aggregates from the store and swaps them in, counting every summary this
    /// replica's writer commits exactly once however the two interleave. The ingest gate
    /// ([`crate::aggregate::Gate`]) is held only briefly, never across the read: under it the
    /// rebuild starts a journal of what the writer commits (the writer holds the gate from its
    /// commit through its merge and its journal entry); then reads the store without it; then,
    /// under it again, adds the journaled summaries the read did not return (by summary id) and
    /// swaps. A batch committed before the journal started is in the read; one committed while
    /// the read ran is in the journal, and in the read or not; one committed after the swap is
    /// merged into the new aggregates.
    pub async fn refresh_aggregates(&self, now_ms: i64, horizon_ms: i64) -> Result<(), StoreError> {
        let gate = self.aggregates.read().gate();
        {
            let _held = gate.lock("rebuild:blocked").await;
            gate.start_journal();
        }
        gate.point("rebuild:before_read").await;
        let read = Self::rebuild_reading(&self.store, now_ms, horizon_ms).await;
        gate.point("rebuild:before_swap").await;
        let _held = gate.lock("rebuild:blocked_at_swap").await;
        let journal = gate.take_journal();
        let (mut rebuilt, ids) = read?;
        for j in journal {
            if !ids.contains(&j.id) && j.window_start_ms + j.window_ms as i64 > now_ms - horizon_ms
            {
                rebuilt.add(
                    &j.model,
                    &j.model_version,
                    j.window_start_ms,
                    j.window_ms,
                    &j.summary,
                );
            }
            rebuilt.received(&j.model, j.received_ms);
        }
        self.aggregates.write().replace(rebuilt);
        Ok(())
    }

    /// Rebuilds the aggregates from summaries within `horizon_ms` of `now_ms`. To replace the
    /// live aggregates, use [`App::refresh_aggregates`], which orders it against ingest.
    pub async fn rebuild_aggregates(
        store: &Store,
        now_ms: i64,
        horizon_ms: i64,
    ) -> Result<Aggregates, StoreError> {
        Ok(Self::rebuild_reading(store, now_ms, horizon_ms).await?.0)
    }

    /// The rebuilt aggregates and the ids of the summaries read into them.
    async fn rebuild_reading(
        store: &Store,
        now_ms: i64,
        horizon_ms: i64,
    ) -> Result<(Aggregates, std::collections::HashSet<String>), StoreError> {
        let mut agg = Aggregates::default();
        let mut ids = std::collections::HashSet::new();
        let mut after = 0;
        loop {
            let (page, next) = store
                .summaries_since(now_ms - horizon_ms, after, 1_000)
                .await?;
            for s in page {
                agg.add(
                    &s.model,
                    &s.model_version,
                    s.window_start_ms,
                    s.window_ms,
                    &s.summary,
                );
                ids.insert(s.id);
            }
            match next {
                Some(n) => after = n,
                None => break,
            }
        }
        for (model, at) in store.last_received().await? {
            agg.received(&model, at);
        }
        Ok((agg, ids))
    }
}

/// How far back the aggregates must reach for these objectives and the metrics window.
pub fn horizon_ms(objectives: &ObjectivesFile, config: &Config) -> i64 {
    let longest = objectives
        .objectives
        .iter()
        .map(|o| o.window)
        .max()
        .unwrap_or_default()
        .max(config.evaluation.metrics_window);
    longest.as_millis().min(i64::MAX as u128) as i64
}
