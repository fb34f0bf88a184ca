//! Ingest of summaries and reference profiles: validated, bounded and idempotent.
//!
//! A summary is acknowledged only once it is committed. Handlers hand validated summaries to a
//! single writer task over a bounded queue; the writer commits them in batches (group commit:
//! one transaction, one fsync, for everything that queued meanwhile) and answers each. A full
//! queue is the overload signal: the caller is told at once ([`Reason::Overloaded`]) rather
//! than letting requests pile up.
//!
//! Nothing here knows HTTP: a refusal is a [`Rejection`] naming the field at fault and why,
//! which the `http` layer turns into a status code.

use std::sync::Arc;

use aims_core::wire::SummaryEnvelope;
use aims_core::ReferenceProfile;
use tokio::sync::{mpsc, oneshot};

use crate::aggregate::{Aggregates, Journaled, Pending};
use crate::state::{App, Caller, Commit, IngestJob};
use crate::store::SummaryBody;

/// The longest window an agent may summarise; longer ones are refused rather than trusted.
const MAX_WINDOW_MS: u64 = 86_400_000;

/// Why a summary or profile was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It does not parse or validate.
    Invalid,
    /// It parses and has the schema's shape, but could not have been recorded from real
    /// events: a count past 2^53, counts that disagree with their histograms, `min > max`, a
    /// negative sum of squares, a float that is not finite ([`aims_core::invariants::validate`]).
    Impossible,
    /// Merging it into what is already held would wrap a count or overflow a sum
    /// ([`aims_core::summary::MergeError::Overflow`]); it is refused, so no aggregate ever wraps.
    Overflow,
    /// The caller may not send it.
    Forbidden,
    /// It names a reference profile the collector does not know.
    UnknownProfile,
    /// The ingest queue is full; retry later.
    Overloaded,
    /// The store failed or the collector is shutting down.
    Unavailable,
}

impl Reason {
    /// The `outcome` label of the ingest counters.
    pub fn outcome(self) -> &'static str {
        match self {
            Reason::Invalid => "invalid",
            Reason::Impossible => "impossible",
            Reason::Overflow => "overflow",
            Reason::Forbidden => "forbidden",
            Reason::UnknownProfile => "unknown_profile",
            Reason::Overloaded => "overloaded",
            Reason::Unavailable => "error",
        }
    }
}

/// A refusal, naming the field at fault (empty when none).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Rejection {
    /// Why.
    pub reason: Reason,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Rejection {
    fn new(reason: Reason, field: &str, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Validates a summary envelope (`bytes`, its JSON) and waits for the writer to commit it.
/// `gzip` is the body as it was received when it came gzip-compressed: that is what is stored.
/// `Ok(true)` when new, `Ok(false)` when a duplicate.
pub async fn submit_summary(
    app: &App,
    caller: &Caller,
    bytes: &[u8],
    gzip: Option<&[u8]>,
) -> Result<(String, bool), Rejection> {
    let envelope: SummaryEnvelope = aims_core::wire::decode_envelope(bytes).map_err(|e| {
        Rejection::new(
            Reason::Invalid,
            "body",
            format!("not a summary envelope: {e}"),
        )
    })?;
    envelope
        .validate()
        .map_err(|e| Rejection::new(Reason::Invalid, e.field, e.message))?;
    if envelope.window_ms > MAX_WINDOW_MS {
        return Err(Rejection::new(
            Reason::Invalid,
            "window_ms",
            "must be at most one day (86400000)",
        ));
    }
    if let Caller::Agent(agent) = caller {
        if agent.name != envelope.agent {
            return Err(Rejection::new(
                Reason::Forbidden,
                "agent",
                format!(
                    "the token belongs to agent {:?}, not {:?}",
                    agent.name, envelope.agent
                ),
            ));
        }
        if !caller.may_send(&envelope.model) {
            return Err(Rejection::new(
                Reason::Forbidden,
                "model",
                format!(
                    "agent {:?} may not send for model {:?}",
                    agent.name, envelope.model
                ),
            ));
        }
    }
    let mut profile = app.profiles.read().get(&envelope.summary.profile_hash);
    if profile.is_none() && app.store.backend() == crate::config::Backend::Postgres {
        // Another replica may have taken the profile: the shared database has it.
        if let Ok(stored) = app.store.profiles().await {
            let mut known = app.profiles.write();
            for p in stored {
                known.insert(p);
            }
            profile = known.get(&envelope.summary.profile_hash);
        }
    }
    let Some(profile) = profile else {
        return Err(Rejection::new(
            Reason::UnknownProfile,
            "summary.profile_hash",
            format!(
                "unknown reference profile {}; PUT it to /v1/models/{}/reference first",
                envelope.summary.profile_hash, envelope.model
            ),
        ));
    };
    if profile.model != envelope.model {
        return Err(Rejection::new(
            Reason::UnknownProfile,
            "summary.profile_hash",
            format!(
                "profile {} belongs to model {:?}",
                profile.hash, profile.model
            ),
        ));
    }
    envelope
        .summary
        .check_against(&profile.schema, &profile)
        .map_err(|e| Rejection::new(Reason::Invalid, "summary", e.to_string()))?;
    aims_core::invariants::validate(&envelope.summary).map_err(|e| {
        Rejection::new(
            Reason::Impossible,
            &format!("summary.{}", e.field),
            e.message,
        )
    })?;
    // Stored as received (it decoded to `envelope`), not serialised again: the compressed
    // envelope, else the summary's own text within it.
    let body = match gzip {
        Some(gz) => SummaryBody::Gzip(gz.to_vec()),
        None => match aims_core::wire::summary_text(bytes) {
            Some(text) => SummaryBody::Json(text.to_owned()),
            None => SummaryBody::Json(
                serde_json::to_string(&envelope.summary)
                    .map_err(|e| Rejection::new(Reason::Unavailable, "", e.to_string()))?,
            ),
        },
    };
    let id = envelope.id.clone();
    let (reply, answer) = oneshot::channel();
    match app.ingest.try_send(IngestJob {
        envelope,
        body,
        reply: Some(reply),
    }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return Err(Rejection::new(
                Reason::Overloaded,
                "",
                "ingest queue full; retry later",
            ))
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return Err(Rejection::new(Reason::Unavailable, "", "shutting down"))
        }
    }
    match answer.await {
        Ok(Ok(Commit::New)) => Ok((id, true)),
        Ok(Ok(Commit::Duplicate)) => Ok((id, false)),
        Ok(Ok(Commit::Overflow(field))) => Err(Rejection::new(
            Reason::Overflow,
            &format!("summary.{field}"),
            "merging this summary into the aggregates already held would overflow it; \
             no real window holds that much",
        )),
        Ok(Err(e)) => Err(Rejection::new(Reason::Unavailable, "", e)),
        Err(_) => Err(Rejection::new(Reason::Unavailable, "", "shutting down")),
    }
}

/// A stored reference profile: its version and hash, and whether it is new.
#[derive(Debug)]
pub struct StoredProfile {
    /// The model version it describes.
    pub model_version: String,
    /// Its content hash.
    pub hash: String,
    /// False when it was already stored.
    pub created: bool,
}

/// Whether `caller` may store a reference profile for `model`.
pub fn may_put_reference(caller: &Caller, model: &str) -> Result<(), Rejection> {
    if caller.may_send(model) {
        Ok(())
    } else {
        Err(Rejection::new(
            Reason::Forbidden,
            "model",
            format!("not allowed for model {model:?}"),
        ))
    }
}

/// Validates and stores a reference profile for `model` (idempotent by hash).
pub async fn put_reference(
    app: &App,
    caller: &Caller,
    model: &str,
    bytes: &[u8],
) -> Result<StoredProfile, Rejection> {
    may_put_reference(caller, model)?;
    let profile: ReferenceProfile = serde_json::from_slice(bytes).map_err(|e| {
        Rejection::new(
            Reason::Invalid,
            "body",
            format!("not a reference profile: {e}"),
        )
    })?;
    if profile.model != model {
        return Err(Rejection::new(
            Reason::Invalid,
            "model",
            format!(
                "the profile is for model {:?}, the path names {model:?}",
                profile.model
            ),
        ));
    }
    if !profile.hash_is_valid() {
        return Err(Rejection::new(
            Reason::Invalid,
            "hash",
            "does not match the profile's content",
        ));
    }
    match profile.schema.clone().validated() {
        Err(e) => return Err(Rejection::new(Reason::Invalid, "schema", e.to_string())),
        Ok(schema) if schema != profile.schema => {
            return Err(Rejection::new(
                Reason::Invalid,
                "schema",
                "is not in validated form (defaults not filled)",
            ))
        }
        Ok(_) => {}
    }
    profile
        .check_against(&profile.schema)
        .map_err(|e| Rejection::new(Reason::Invalid, "schema", e))?;
    let created = app
        .store
        .put_profile(&profile, app.now_ms())
        .await
        .map_err(|e| Rejection::new(Reason::Unavailable, "", e.to_string()))?;
    let stored = StoredProfile {
        model_version: profile.model_version.clone(),
        hash: profile.hash.clone(),
        created,
    };
    app.profiles.write().insert(profile);
    if created {
        tracing::info!(model, model_version = %stored.model_version, hash = %stored.hash, "reference profile stored");
    }
    Ok(stored)
}

/// Commits queued summaries in batches until `drain` fires (after the HTTP server stopped),
/// then commits whatever is still queued and returns.
pub async fn writer(
    app: Arc<App>,
    mut rx: mpsc::Receiver<IngestJob>,
    mut drain: oneshot::Receiver<()>,
) {
    let max = app.config.server.ingest_batch;
    let mut jobs = Vec::with_capacity(max);
    let mut draining = false;
    loop {
        let received = if draining {
            rx.recv_many(&mut jobs, max).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut jobs, max) => n,
                _ = &mut drain => {
                    rx.close();
                    draining = true;
                    continue;
                }
            }
        };
        if received == 0 {
            return;
        }
        // Held from the overflow check through the commit to the in-memory merge and the
        // journal entry, so that a rebuild's journal start and swap never fall in between
        // ([`App::refresh_aggregates`]).
        let gate = app.aggregates.read().gate();
        let _held = gate.lock("ingest:blocked").await;
        // Refuse, before anything is written, the summaries whose merge would wrap a count or
        // overflow a sum of what is held (checked cumulatively over this batch). The running
        // totals become the new totals after the commit (`add_admitted`).
        let mut pending = Pending::default();
        {
            let agg = app.aggregates.read();
            jobs.retain_mut(|job| {
                let e = &job.envelope;
                match agg.admit(&mut pending, &e.model, &e.summary) {
                    Ok(()) => true,
                    Err(field) => {
                        tracing::warn!(agent = %e.agent, model = %e.model, %field, "summary refused: merging it would overflow");
                        if let Some(reply) = job.reply.take() {
                            reply.send(Ok(Commit::Overflow(field))).ok();
                        }
                        false
                    }
                }
            });
        }
        if jobs.is_empty() {
            continue;
        }
        let now = app.now_ms();
        let refs: Vec<(&SummaryEnvelope, &SummaryBody)> =
            jobs.iter().map(|j| (&j.envelope, &j.body)).collect();
        match app.store.insert_summary_bodies(&refs, now).await {
            Ok(fresh) => {
                gate.point("ingest:after_commit").await;
                {
                    let mut agg = app.aggregates.write();
                    for (job, new) in jobs.iter().zip(&fresh) {
                        if !*new {
                            Aggregates::not_added(
                                &mut pending,
                                &job.envelope.model,
                                &job.envelope.summary,
                            );
                        }
                    }
                    for (job, new) in jobs.iter().zip(&fresh) {
                        let e = &job.envelope;
                        if *new {
                            agg.add_admitted(
                                &mut pending,
                                &e.model,
                                &e.model_version,
                                e.window_start_ms,
                                e.window_ms,
                                &e.summary,
                            );
                            gate.journal(|| Journaled {
                                id: e.id.clone(),
                                model: e.model.clone(),
                                model_version: e.model_version.clone(),
                                window_start_ms: e.window_start_ms,
                                window_ms: e.window_ms,
                                summary: e.summary.clone(),
                                received_ms: now,
                            });
                        }
                        agg.received(&e.model, now);
                        app.metrics
                            .agent_last_summary
                            .with_label_values(&[&e.agent, &e.model])
                            .set(now as f64 / 1000.0);
                    }
                }
                for (mut job, new) in jobs.drain(..).zip(fresh) {
                    if let Some(reply) = job.reply.take() {
                        reply
                            .send(Ok(if new { Commit::New } else { Commit::Duplicate }))
                            .ok();
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = jobs.len(), "committing summaries failed");
                for mut job in jobs.drain(..) {
                    if let Some(reply) = job.reply.take() {
                        reply.send(Err(e.to_string())).ok();
                    }
                }
            }
        }
    }
}

/// Issue 14: a rebuild of the aggregates from the store (the PostgreSQL leader's, before every
/// cycle; a reload's) racing the writer's commit-then-merge must count every committed summary
/// exactly once. Each test drives one interleaving by hand through the gate's pause points.
#[cfg(test)]
mod rebuild_race {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use aims_core::objective::ObjectivesFile;
    use aims_core::wire::SummaryEnvelope;
    use aims_core::{ReferenceProfile, WindowSummary};
    use aims_testkit::fixtures::{one_feature, positive};
    use parking_lot::RwLock;
    use tokio::sync::{mpsc, oneshot};

    use crate::aggregate::Aggregates;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::evidence::EvidenceLog;
    use crate::metrics::Metrics;
    use crate::state::{horizon_ms, App, Commit, IngestJob, Profiles};
    use crate::store::{Store, SummaryBody};

    const NOW: i64 = 1_700_000_040_000;
    const MINUTE: u64 = 60_000;

    /// The writer task, stopped when the test is done with it.
    struct Writer {
        _drain: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Writer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// An app on `store` with its writer running, and the profile its summaries use.
    async fn app(store: Store) -> (Arc<App>, ReferenceProfile, aims_core::ModelSchema, Writer) {
        let (schema, profile) = one_feature();
        store
            .put_profile(&profile, NOW)
            .await
            .expect("store the profile");
        let metrics = Metrics::new();
        let evidence = EvidenceLog::open(store.clone(), metrics.clone())
            .await
            .expect("open the evidence log");
        let config = Config::default();
        let (tx, rx) = mpsc::channel(config.server.ingest_queue);
        let app = Arc::new(App {
            config,
            store,
            metrics,
            evidence,
            profiles: RwLock::new(Profiles::default()),
            aggregates: RwLock::new(Aggregates::default()),
            objectives: RwLock::new(Arc::new(ObjectivesFile {
                policy: "p".into(),
                objectives: vec![],
                version: "v".into(),
            })),
            status: RwLock::new(HashMap::new()),
            ingest: tx,
            reload_lock: tokio::sync::Mutex::new(()),
            nonconformities: RwLock::new(BTreeMap::new()),
            corrective_lock: tokio::sync::Mutex::new(()),
            started_ms: NOW,
            clock: Clock::manual(NOW),
            signer: None,
            checkpoint: RwLock::new(None),
        });
        let (drain, drained) = oneshot::channel();
        let task = tokio::spawn(super::writer(app.clone(), rx, drained));
        (
            app,
            profile,
            schema,
            Writer {
                _drain: drain,
                task,
            },
        )
    }

    /// Queues summary number `n` (`n + 1` events) and returns where its outcome arrives.
    fn send(
        app: &App,
        schema: &aims_core::ModelSchema,
        profile: &ReferenceProfile,
        n: usize,
    ) -> oneshot::Receiver<Result<Commit, String>> {
        send_events(app, schema, profile, n, n + 1)
    }

    /// Queues the summary of agent `n`, of `events` events.
    fn send_events(
        app: &App,
        schema: &aims_core::ModelSchema,
        profile: &ReferenceProfile,
        n: usize,
        events: usize,
    ) -> oneshot::Receiver<Result<Commit, String>> {
        let mut summary = WindowSummary::new(schema, profile);
        for i in 0..events {
            summary.record(schema, profile, &positive(i as f64));
        }
        let mut envelope = SummaryEnvelope {
            id: String::new(),
            agent: format!("agent-{n}"),
            model: profile.model.clone(),
            model_version: profile.model_version.clone(),
            window_start_ms: NOW - MINUTE as i64,
            window_ms: MINUTE,
            seq: 0,
            summary,
        };
        envelope.id = envelope.compute_id();
        let body = SummaryBody::Json(serde_json::to_string(&envelope.summary).unwrap());
        let (reply, answer) = oneshot::channel();
        app.ingest
            .try_send(IngestJob {
                envelope,
                body,
                reply: Some(reply),
            })
            .expect("the queue has room");
        answer
    }

    /// Events in memory and events stored, for the one model.
    async fn counts(app: &App, profile: &ReferenceProfile) -> (u64, u64) {
        let memory = app
            .aggregates
            .read()
            .window(&profile.model, &profile.hash, 0, i64::MAX)
            .map_or(0, |m| m.summary.events);
        let stored = app
            .store
            .all_summaries_since(0)
            .await
            .expect("read the summaries")
            .iter()
            .map(|s| s.summary.events)
            .sum();
        (memory, stored)
    }

    async fn refresh(app: Arc<App>) {
        let horizon = horizon_ms(&app.objectives(), &app.config);
        app.refresh_aggregates(NOW, horizon).await.expect("rebuild");
    }

    /// The rebuild reads after the batch's commit and swaps before the writer's merge: without
    /// the gate the batch was counted twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rebuild_between_commit_and_merge_counts_the_batch_once() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _db) in crate::test_support::stores(dir.path()).await {
            let (app, profile, schema, _writer) = app(store).await;
            assert_eq!(
                send(&app, &schema, &profile, 0).await.unwrap(),
                Ok(Commit::New)
            );
            let pauses = app.aggregates.read().gate().pauses.clone();
            let (committed, resume) = pauses.arm("ingest:after_commit", true);
            let (parked, _) = pauses.arm("rebuild:blocked", false);
            let answer = send(&app, &schema, &profile, 1);
            committed.await.expect("the writer commits the batch");
            let mut rebuild = tokio::spawn(refresh(app.clone()));
            // Either the rebuild completes now (it is not ordered against the writer) or it
            // waits on the gate the writer holds.
            let finished = tokio::select! {
                done = &mut rebuild => {
                    done.unwrap();
                    true
                }
                _ = parked => false,
            };
            drop(resume);
            if !finished {
                rebuild.await.unwrap();
            }
            assert_eq!(answer.await.unwrap(), Ok(Commit::New));
            let (memory, stored) = counts(&app, &profile).await;
            assert_eq!(stored, 3, "{backend}");
            assert_eq!(memory, stored, "{backend}: events in memory vs stored");
        }
    }

    /// A summary sent while a rebuild waits at `point`: whether the writer commits and merges
    /// at once or waits on the gate, every stored event is counted once in memory.
    async fn commit_while_a_rebuild_waits_at(point: &'static str) {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _db) in crate::test_support::stores(dir.path()).await {
            let (app, profile, schema, _writer) = app(store).await;
            assert_eq!(
                send(&app, &schema, &profile, 0).await.unwrap(),
                Ok(Commit::New)
            );
            let pauses = app.aggregates.read().gate().pauses.clone();
            let (read, resume) = pauses.arm(point, true);
            let (parked, _) = pauses.arm("ingest:blocked", false);
            let rebuild = tokio::spawn(refresh(app.clone()));
            read.await.expect("the rebuild reaches the point");
            let mut answer = send(&app, &schema, &profile, 1);
            // Either the writer commits and merges now, or it waits on the gate the rebuild
            // holds.
            let early = tokio::select! {
                a = &mut answer => Some(a.unwrap()),
                _ = parked => None,
            };
            drop(resume);
            rebuild.await.unwrap();
            let outcome = match early {
                Some(a) => a,
                None => answer.await.unwrap(),
            };
            assert_eq!(outcome, Ok(Commit::New));
            let (memory, stored) = counts(&app, &profile).await;
            assert_eq!(stored, 3, "{backend}");
            assert_eq!(memory, stored, "{backend}: events in memory vs stored");
        }
    }

    /// The rebuild reads before the batch's commit and swaps after the writer's merge into the
    /// old aggregates: without the gate the batch was missing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_between_a_rebuilds_read_and_swap_is_not_lost() {
        commit_while_a_rebuild_waits_at("rebuild:before_swap").await;
    }

    /// The writer commits after the rebuild started its journal and before it reads: the batch
    /// is both in what the rebuild reads and in its journal, and is added once (by summary id).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_the_rebuild_both_reads_and_journals_is_counted_once() {
        commit_while_a_rebuild_waits_at("rebuild:before_read").await;
    }
}
