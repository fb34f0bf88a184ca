//! The monitor: the window and ship machinery behind one handle, used by `aims-agent run` and
//! embeddable in a Rust model server.
//!
//! [`Recorder::record`] never blocks and never waits: it counts the event into a bounded queue
//! or, when the queue is full, drops it and counts `aims_agent_events_dropped_total{reason="overload"}`.
//! The windowing task and the shipper run on the caller's tokio runtime.
//!
//! ```no_run
//! # async fn demo(cfg: aims_agent::config::AgentConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let monitor = aims_agent::Monitor::start(&cfg, aims_agent::metrics::AgentMetrics::new()).await?;
//! let recorder = monitor.recorder();
//! // in the request handler, after predicting:
//! # let event: aims_core::Event = unimplemented!();
//! recorder.record(event);
//! // at exit:
//! monitor.shutdown().await;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aims_core::event::{Event, EventError, RawEvent, Target};
use aims_core::profile::ReferenceProfile;
use aims_core::schema::ModelSchema;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{AgentConfig, LimitsConfig};
use crate::metrics::AgentMetrics;
use crate::shard::{Shard, Shards};
use crate::ship::{self, ShipError, Shipper};
use crate::spool::{Spool, SpoolError};
use crate::window::{Input, WindowSettings, Windower};

/// Why the monitor cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// No usable reference profile.
    #[error("reference profile: {0}")]
    Reference(String),
    /// The spool directory is unusable.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// Shipping is misconfigured.
    #[error(transparent)]
    Ship(#[from] ShipError),
    /// A summary could outgrow its byte budget.
    #[error("limits: {0}")]
    Budget(String),
}

/// A cheap, cloneable, non-blocking way to hand events and labels to the monitor.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Input>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    schema: Arc<ModelSchema>,
    window: Arc<WindowSettings>,
    limits: Arc<LimitsConfig>,
    metrics: AgentMetrics,
    /// The recording threads' own summaries, which the windowing task takes ([`Recorder::shard`]).
    shards: Arc<Shards>,
    profile: Arc<ReferenceProfile>,
}

impl Recorder {
    /// A recording handle for one thread, which folds its events into summaries of its own
    /// instead of queueing them for the windowing task: recording threads then fold in
    /// parallel and share no lock, queue or counter per event. See [`crate::shard`].
    pub fn shard(&self) -> Shard {
        Shard::new(
            &self.shards,
            Arc::clone(&self.schema),
            Arc::clone(&self.profile),
            Arc::clone(&self.window),
            Arc::clone(&self.limits),
            self.metrics.clone(),
        )
    }

    /// The schema events are validated against.
    pub fn schema(&self) -> &ModelSchema {
        &self.schema
    }

    /// The monitor's metrics.
    pub fn metrics(&self) -> &AgentMetrics {
        &self.metrics
    }

    /// The `limits` caps events are held to ([`crate::ingest::lengths_ok`]).
    pub fn limits(&self) -> &LimitsConfig {
        &self.limits
    }

    /// The windowing settings (which events are still recorded: [`crate::window::admit`]).
    pub fn window(&self) -> &WindowSettings {
        &self.window
    }

    /// Queues an input without waiting; false (and counted) when the queue is full or closed.
    pub fn submit(&self, input: Input) -> bool {
        let weight = input.weight();
        let before = self.queued.fetch_add(weight, Ordering::AcqRel);
        if weight > 0 && before + weight > self.capacity {
            self.queued.fetch_sub(weight, Ordering::AcqRel);
            self.count_overload(&input, weight);
            return false;
        }
        match self.tx.try_send(input) {
            Ok(()) => true,
            Err(e) => {
                self.queued.fetch_sub(weight, Ordering::AcqRel);
                let input = match e {
                    mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i) => i,
                };
                self.count_overload(&input, weight);
                false
            }
        }
    }

    fn count_overload(&self, input: &Input, weight: usize) {
        let counter = match input {
            Input::Labels(_) | Input::LabelsTold(..) => &self.metrics.labels_dropped,
            _ => &self.metrics.events_dropped,
        };
        counter
            .with_label_values(&["overload"])
            .inc_by(weight as u64);
    }

    /// Records one validated event; never blocks. False when it was dropped for overload, or
    /// refused (and counted as `too_long`) because its id or a category value is longer than
    /// the `limits` caps, which keep every summary within its byte budget.
    pub fn record(&self, event: Event) -> bool {
        self.metrics.events_received.inc();
        match crate::ingest::check_lengths(event, &self.schema, &self.limits) {
            Ok(event) => {
                self.metrics.events_accepted.inc();
                self.submit(Input::Event(event))
            }
            Err(e) => {
                self.reject(&e);
                false
            }
        }
    }

    fn reject(&self, e: &EventError) {
        self.metrics
            .events_rejected
            .with_label_values(&[e.reason.as_str()])
            .inc();
        self.submit(Input::Rejected(1));
    }

    /// Validates and records a raw event (schema, then the `limits` caps); the error names the
    /// field.
    pub fn record_raw(&self, raw: RawEvent) -> Result<bool, EventError> {
        self.metrics.events_received.inc();
        let validated = self
            .schema
            .validate_scored(raw, crate::window::now_ms())
            .and_then(|(e, scores)| {
                Ok((
                    crate::ingest::check_lengths(e, &self.schema, &self.limits)?,
                    scores,
                ))
            });
        match validated {
            Ok(scored) => {
                self.metrics.events_accepted.inc();
                Ok(self.submit(Input::Scored(vec![scored])))
            }
            Err(e) => {
                self.reject(&e);
                Err(e)
            }
        }
    }

    /// Records a late label for prediction `id`; never blocks.
    pub fn label(&self, id: String, target: Target) -> bool {
        self.metrics.labels_received.inc();
        self.submit(Input::Labels(vec![(id, target)]))
    }

    /// Closes every open window into the spool now and waits until everything queued before
    /// this call has been applied and spooled; false when the monitor has stopped. Unlike
    /// [`Recorder::record`] this waits (for a queue slot and for the windowing task), so it is
    /// for tests, shutdown hooks and batch jobs, not the request path. A window flushed early
    /// and recorded into again ships as a further summary of that window, which the collector
    /// merges.
    pub async fn flush(&self) -> bool {
        let (done, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Input::Flush(done)).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }
}

/// The running monitor: its tasks and a [`Recorder`].
pub struct Monitor {
    recorder: Recorder,
    stop_window: watch::Sender<bool>,
    stop_ship: watch::Sender<Option<Instant>>,
    windower: JoinHandle<()>,
    shipper: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
    profile: Arc<ReferenceProfile>,
}

fn read_profile(path: &Path) -> Result<ReferenceProfile, MonitorError> {
    let bytes = std::fs::read(path)
        .map_err(|e| MonitorError::Reference(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| MonitorError::Reference(format!("{}: {e}", path.display())))
}

fn write_cache(path: &Path, profile: &ReferenceProfile) {
    let tmp = path.with_extension("tmp");
    let result = serde_json::to_vec_pretty(profile)
        .map_err(std::io::Error::other)
        .and_then(|b| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, b)
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not cache the reference profile");
    }
}

/// The profile to bin with, and whether to upload it: from `reference.path` (uploaded), else
/// from the collector (cached at `reference.cache`), else from that cache when the collector is
/// unreachable. Without either, retries the collector until it answers.
pub async fn resolve_reference(
    cfg: &AgentConfig,
) -> Result<(ReferenceProfile, bool), MonitorError> {
    if let Some(path) = &cfg.reference.path {
        return Ok((read_profile(path)?, true));
    }
    let cache: PathBuf = cfg
        .reference
        .cache
        .clone()
        .unwrap_or_else(|| cfg.spool.dir.join("reference.json"));
    if cfg.ship.collector_url.is_empty() {
        return Err(MonitorError::Reference(
            "set reference.path, or ship.collector_url to fetch it".to_owned(),
        ));
    }
    let client = ship::client(&cfg.ship)?;
    let mut backoff = ship::Backoff::new(cfg.ship.initial_backoff, cfg.ship.max_backoff);
    loop {
        match ship::fetch_reference(&client, &cfg.ship, &cfg.model.name).await {
            Ok(p) => {
                write_cache(&cache, &p);
                tracing::info!(hash = %p.hash, cache = %cache.display(), "reference profile fetched from the collector");
                return Ok((p, false));
            }
            Err(e) if cache.exists() => {
                tracing::warn!(error = %e, cache = %cache.display(), "collector unreachable; using the cached reference profile");
                return Ok((read_profile(&cache)?, false));
            }
            Err(e) => {
                let delay = backoff.next_delay(&mut rand::thread_rng());
                tracing::warn!(error = %e, retry_in = ?delay, "no reference profile yet; retrying the collector");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

impl Monitor {
    /// Resolves the reference profile, opens the spool and starts the windowing and shipping
    /// tasks on the current tokio runtime.
    pub async fn start(cfg: &AgentConfig, metrics: AgentMetrics) -> Result<Self, MonitorError> {
        let (profile, upload) = resolve_reference(cfg).await?;
        Self::with_profile(cfg, profile, upload, metrics)
    }

    /// Starts with a given profile; `upload` PUTs it to the collector before shipping.
    pub fn with_profile(
        cfg: &AgentConfig,
        profile: ReferenceProfile,
        upload: bool,
        metrics: AgentMetrics,
    ) -> Result<Self, MonitorError> {
        profile
            .check_against(&cfg.model)
            .map_err(MonitorError::Reference)?;
        if !profile.hash_is_valid() {
            return Err(MonitorError::Reference(
                "its hash does not match its content".to_owned(),
            ));
        }
        let bound = crate::window::summary_bound(&cfg.model, &profile, &cfg.limits);
        if bound > cfg.limits.max_summary_bytes {
            return Err(MonitorError::Budget(format!(
                "a summary for this schema and reference could take {bound} bytes, more than \
                 limits.max_summary_bytes ({}); lower limits.max_category_bytes or raise the budget",
                cfg.limits.max_summary_bytes
            )));
        }
        metrics.describe(&cfg.agent_id, &cfg.model.name, &cfg.model.version);
        let profile = Arc::new(profile);
        let schema = Arc::new(cfg.model.clone());
        let spool = Arc::new(Spool::open(
            &cfg.spool.dir,
            cfg.spool.max_bytes,
            metrics.clone(),
        )?);
        let queued = Arc::new(AtomicUsize::new(0));
        // One message carries one event (embedded) or a request's events, so the channel never
        // needs more slots than the event bound; tokio allocates its slots lazily.
        let (tx, rx) = mpsc::channel(cfg.window.queue_events.max(1));
        let settings = WindowSettings {
            agent_id: cfg.agent_id.clone(),
            length: cfg.window.length,
            grace: cfg.window.grace,
            max_lateness: cfg.window.max_lateness,
            join_capacity: cfg.labels.join_capacity,
            join_ttl: cfg.labels.join_ttl,
            join_max_bytes: cfg.labels.join_max_bytes,
            checkpoint: cfg.window.checkpoint,
        };
        let windower = Windower::new(
            &settings,
            Arc::clone(&schema),
            Arc::clone(&profile),
            Arc::clone(&spool),
            metrics.clone(),
            Arc::clone(&queued),
        );
        let shards = Arc::new(Shards::default());
        let windower = windower.with_shards(Arc::clone(&shards));
        let (stop_window, stop_window_rx) = watch::channel(false);
        let windower = tokio::spawn(windower.run(rx, stop_window_rx));
        let (stop_ship, stop_ship_rx) = watch::channel(None);
        let shipper = if cfg.ship.collector_url.is_empty() {
            tracing::warn!("ship.collector_url is empty: summaries stay in the spool");
            None
        } else {
            let shipper = Shipper {
                client: ship::client(&cfg.ship)?,
                cfg: cfg.ship.clone(),
                model: cfg.model.name.clone(),
                reference: upload.then(|| Arc::clone(&profile)),
                spool,
                metrics: metrics.clone(),
            };
            Some(tokio::spawn(shipper.run(stop_ship_rx)))
        };
        Ok(Self {
            recorder: Recorder {
                tx,
                queued,
                capacity: cfg.window.queue_events,
                schema,
                window: Arc::new(settings),
                limits: Arc::new(cfg.limits.clone()),
                metrics,
                shards,
                profile: Arc::clone(&profile),
            },
            stop_window,
            stop_ship,
            windower,
            shipper,
            shutdown_timeout: cfg.ship.shutdown_timeout,
            profile,
        })
    }

    /// A handle for recording.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// The profile summaries are binned with.
    pub fn profile(&self) -> &ReferenceProfile {
        &self.profile
    }

    /// Closes and spools every open window, then tries to deliver the spool for up to
    /// `ship.shutdown_timeout`; what is left is shipped by the next start.
    pub async fn shutdown(self) {
        let _ = self.stop_window.send(true);
        if let Err(e) = self.windower.await {
            tracing::error!(error = %e, "windowing task failed");
        }
        let _ = self
            .stop_ship
            .send(Some(Instant::now() + self.shutdown_timeout));
        if let Some(shipper) = self.shipper {
            if let Err(e) = shipper.await {
                tracing::error!(error = %e, "shipping task failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, _rx) = mpsc::channel(100);
        let metrics = AgentMetrics::new();
        let (schema, _) = aims_testkit::fixtures::one_feature();
        let recorder = Recorder {
            profile: Arc::new(aims_core::profile::ProfileBuilder::new(&schema).finish()),
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            capacity: 3,
            schema: Arc::new(schema),
            window: Arc::new(WindowSettings {
                agent_id: "a".into(),
                length: Duration::from_secs(60),
                grace: Duration::from_secs(5),
                max_lateness: Duration::from_secs(600),
                join_capacity: 10,
                join_ttl: Duration::from_secs(60),
                join_max_bytes: 1 << 20,
                checkpoint: Duration::ZERO,
            }),
            limits: Arc::new(LimitsConfig::default()),
            metrics: metrics.clone(),
            shards: Arc::default(),
        };
        let event = aims_testkit::fixtures::positive(1.0);
        let long = Event {
            id: Some("i".repeat(257)),
            ..event.clone()
        };
        assert!(
            !recorder.record(long),
            "the embedded path keeps the id cap too"
        );
        let too_long = metrics.events_rejected.with_label_values(&["too_long"]);
        assert_eq!(too_long.get(), 1);
        assert!((0..3).all(|_| recorder.record(event.clone())));
        assert!(!recorder.record(event.clone()));
        assert!(!recorder.submit(Input::Events(vec![event.clone(); 2])));
        assert!(!recorder.label("x".into(), Target::Class(1)));
        let dropped = |c: &prometheus::IntCounterVec| c.with_label_values(&["overload"]).get();
        assert_eq!(dropped(&metrics.events_dropped), 3);
        assert_eq!(dropped(&metrics.labels_dropped), 1);
        assert_eq!(
            recorder.queued.load(Ordering::Acquire),
            3,
            "drops do not leak queue slots"
        );
    }
}
