//! The windowing task: owns the open window summaries and the label join buffer, and turns
//! each closed window into a spooled [`SummaryEnvelope`].
//!
//! Windows are aligned to wall-clock multiples of the window length and chosen by event time.
//! A window closes `grace` after its end (events delayed in transit still count). Every window
//! from start-up on is closed and spooled, even an empty one, so the collector can tell an idle
//! model from a dead agent.
//!
//! Late data: an event for a window that has already closed, but no more than `max_lateness`
//! ago, and a late label joined to a prediction of a closed window, are recorded into a *late
//! summary* of that window, spooled once per window length as the window's next sequence number
//! (1, 2, ...); summaries merge, so the collector's view of the window becomes complete. Older
//! events are dropped and counted as `late`; events more than one window ahead of the clock are
//! dropped as `future`. Sequence numbers are allocated durably (a small state file in the spool
//! directory) before the summary is spooled, so a restarted agent never reuses an id that was
//! already shipped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aims_core::event::{Event, Prediction, Target};
use aims_core::profile::ReferenceProfile;
use aims_core::schema::ModelSchema;
use aims_core::summary::{WindowSummary, UNSEEN_CATEGORY_CAP};
use aims_core::wire::SummaryEnvelope;
use tokio::sync::{mpsc, watch};

use crate::admission::ms;
pub use crate::admission::{admit, align, Dropped, WindowSettings};
use crate::config::LimitsConfig;
use crate::labels::{JoinBuffer, Lookup, Pending};
use crate::metrics::AgentMetrics;
use crate::spool::Spool;

/// What the request path and the embedded handle hand to the windowing task.
#[derive(Debug)]
pub enum Input {
    /// One validated event (the embedded `record`).
    Event(Event),
    /// Validated events of one request.
    Events(Vec<Event>),
    /// Validated events with the per-class probabilities of their predictions
    /// (`prediction.scores`, multiclass models), from the HTTP ingest and `record_raw`.
    Scored(Vec<Scored>),
    /// Validated events whose buffers go back to `Recycler` once recorded, for the sender to
    /// fill again (the embedded monitor's `record_batch`: no allocation per row).
    Recyclable(Vec<Event>, Recycler),
    /// Validated late labels.
    Labels(Vec<(String, Target)>),
    /// Validated late labels whose sender is told how each joined (the HTTP reply says it).
    LabelsTold(
        Vec<(String, Target)>,
        tokio::sync::oneshot::Sender<LabelJoins>,
    ),
    /// Events that failed validation, counted in the current window's summary.
    Rejected(u64),
    /// Close every open window into the spool now (the embedded `flush`); the sender is told
    /// once everything queued before it has been applied and spooled.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Input {
    /// Events carried (what the queue bound counts).
    pub fn weight(&self) -> usize {
        match self {
            Self::Event(_) => 1,
            Self::Events(v) | Self::Recyclable(v, _) => v.len(),
            Self::Scored(v) => v.len(),
            Self::Labels(v) | Self::LabelsTold(v, _) => v.len(),
            Self::Rejected(_) | Self::Flush(_) => 0,
        }
    }
}

/// How a request's labels joined their predictions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LabelJoins {
    /// Joined to a held prediction and recorded in its window.
    pub joined: usize,
    /// No prediction with that id is held (never seen, already joined, or evicted): the label
    /// is not kept (`aims_agent_labels_unmatched_total`).
    pub unmatched: usize,
    /// The prediction was held past the join TTL (`aims_agent_labels_expired_total`).
    pub expired: usize,
}

/// How one label joined.
enum Joined {
    Yes,
    Unmatched,
    Expired,
}

/// A validated event and its prediction's per-class probabilities (core's, named here for the
/// windowing task's input).
pub use aims_core::event::Scored;

/// Milliseconds since the Unix epoch, now (the runtime's one clock).
pub use aims_runtime::clock::now_ms;

/// An upper bound on the bytes of any summary envelope this agent can spool, by construction:
/// every count at its widest, every float at its longest, every categorical feature naming all
/// its reference categories plus [`UNSEEN_CATEGORY_CAP`] unseen ones of `max_category_bytes`
/// (each byte escaped as `\u00XX`), and the latency sketch spanning every bucket a latency can
/// reach. The agent refuses to start when this exceeds `limits.max_summary_bytes`.
pub fn summary_bound(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    limits: &LimitsConfig,
) -> usize {
    use aims_core::profile::FeatureProfile;
    use aims_core::summary::{FeatureStats, NumericStats};
    const WIDE: u64 = u64::MAX;
    const LONG: f64 = -1.234_567_890_123_456_7e-300;
    let widen = |v: &mut Vec<u64>| v.iter_mut().for_each(|c| *c = WIDE);
    let numeric = |n: &mut NumericStats| {
        (n.missing, n.count) = (WIDE, WIDE);
        (n.sum, n.sum_sq, n.below_sum, n.above_sum) = (LONG, LONG, LONG, LONG);
        (n.min, n.max) = (Some(LONG), Some(LONG));
        n.bins.iter_mut().for_each(|c| *c = WIDE);
    };
    let mut s = WindowSummary::new(schema, profile);
    (s.events, s.rejected, s.failed, s.labelled) = (WIDE, WIDE, WIDE, WIDE);
    (s.first_ts_ms, s.last_ts_ms) = (Some(i64::MIN), Some(i64::MIN));
    let (lo, hi) = aims_core::invariants::SKETCH_INDEX_RANGE;
    s.latency.zeros = WIDE;
    s.latency.offset = i32::try_from(lo).unwrap_or(i32::MIN);
    s.latency.counts = vec![WIDE; usize::try_from(hi - lo).unwrap_or(0)];
    let unseen = "\u{1}".repeat(limits.max_category_bytes);
    for (stats, reference) in s.features.iter_mut().zip(&profile.features) {
        match (stats, reference) {
            (FeatureStats::Numeric(n), _) => numeric(n),
            (FeatureStats::Categorical(c), FeatureProfile::Categorical { stats: r, .. }) => {
                (c.missing, c.count, c.overflow) = (WIDE, WIDE, WIDE);
                for k in r.frequencies.keys() {
                    c.counts.insert(k.clone(), WIDE);
                }
                for i in 0..UNSEEN_CATEGORY_CAP {
                    c.counts.insert(format!("{i:02}{unseen}"), WIDE);
                }
            }
            (FeatureStats::Categorical(c), _) => {
                (c.missing, c.count, c.overflow) = (WIDE, WIDE, WIDE)
            }
        }
    }
    widen(&mut s.prediction.class_counts);
    widen(&mut s.prediction.score_bins);
    if let Some(v) = s.prediction.value.as_mut() {
        numeric(v);
    }
    let p = &mut s.performance;
    widen(&mut p.confusion);
    widen(&mut p.positive_scores);
    widen(&mut p.negative_scores);
    p.scored = WIDE;
    (p.log_loss_sum, p.brier_sum) = (LONG, LONG);
    if let Some(c) = p.class_scores.as_mut() {
        (c.scored, c.log_loss_sum) = (WIDE, LONG);
        c.positive
            .iter_mut()
            .chain(c.negative.iter_mut())
            .for_each(widen);
    }
    let r = &mut p.regression;
    r.n = WIDE;
    (
        r.abs_error,
        r.sq_error,
        r.abs_pct_error,
        r.y_sum,
        r.y_sq_sum,
    ) = (LONG, LONG, LONG, LONG, LONG);
    for g in s.groups.iter_mut().flatten() {
        (g.count, g.selected, g.labelled, g.tp, g.fp, g.tn, g.fn_) =
            (WIDE, WIDE, WIDE, WIDE, WIDE, WIDE, WIDE);
        (g.abs_error, g.sq_error) = (LONG, LONG);
    }
    if let Some(c) = s.cbpe.as_mut() {
        (c.predicted_positive, c.predicted_negative) = (WIDE, WIDE);
        (c.predicted_positive_p, c.predicted_negative_p) = (LONG, LONG);
        c.bin_p = vec![LONG; aims_core::cbpe::CBPE_SCORE_BINS];
    }
    if let Some(m) = s.reconstruction.as_mut() {
        (m.count, m.sum, m.sum_sq) = (WIDE, LONG, LONG);
    }
    let id = "\u{1}".repeat(64);
    let envelope = SummaryEnvelope::new(
        &id,
        &schema.name,
        &schema.version,
        i64::MIN,
        u64::MAX,
        u64::MAX,
        s,
    );
    serde_json::to_vec(&envelope).map_or(usize::MAX, |b| b.len())
}

/// Durable per-window sequence numbers: the next seq each recent window will ship with.
#[derive(Debug)]
struct Sequences {
    path: PathBuf,
    next: BTreeMap<i64, u64>,
}

impl Sequences {
    fn load(path: PathBuf) -> Self {
        let next = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(i64, u64)>>(&b).ok())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        Self { path, next }
    }

    /// Takes the next seq of a window and persists the counter before it is used.
    fn allocate(&mut self, start: i64, prune_before: i64) -> u64 {
        let slot = self.next.entry(start).or_insert(0);
        let seq = *slot;
        *slot += 1;
        self.next = self.next.split_off(&prune_before);
        self.next.entry(start).or_insert(seq + 1);
        let entries: Vec<(i64, u64)> = self.next.iter().map(|(k, v)| (*k, *v)).collect();
        let tmp = self.path.with_extension("tmp");
        let written = serde_json::to_vec(&entries)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "could not persist window sequence numbers");
        }
        seq
    }

    fn has_closed(&self, start: i64) -> bool {
        self.next.contains_key(&start)
    }
}

/// Closed summaries kept in memory while the spool refuses writes; past it the oldest is lost
/// (and counted).
pub const MAX_UNWRITTEN: usize = 64;

/// The checkpoint of the open windows, so a crash (kill -9) loses at most `window.checkpoint`
/// of events. A late summary is stored with the window's next sequence number at checkpoint
/// time: if that has moved on when the checkpoint is read, the summary was spooled since and
/// is not restored twice; an open window that has since been closed is skipped the same way.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    profile_hash: String,
    window_ms: i64,
    open: Vec<(i64, WindowSummary)>,
    late: Vec<(i64, u64, WindowSummary)>,
}

const CHECKPOINT_FILE: &str = "open-windows.checkpoint";

/// Spent event buffers on their way back to the sender (see [`Input::Recyclable`]); it keeps
/// a few, so memory stays bounded whatever the sender does.
#[derive(Debug, Clone, Default)]
pub struct Recycler(Arc<std::sync::Mutex<Vec<Vec<Event>>>>);

/// Event buffers a [`Recycler`] keeps (each one queue message of events).
const RECYCLED: usize = 4;

impl Recycler {
    /// Spent events to fill again (their strings and vectors keep their capacity), if any.
    pub fn take(&self) -> Option<Vec<Event>> {
        self.0.lock().ok()?.pop()
    }

    fn give(&self, events: Vec<Event>) {
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() < RECYCLED {
                kept.push(events);
            }
        }
    }
}

/// The state the windowing task owns.
pub struct Windower {
    schema: Arc<ModelSchema>,
    profile: Arc<ReferenceProfile>,
    agent_id: String,
    window_ms: i64,
    grace_ms: i64,
    horizon_ms: i64,
    open: BTreeMap<i64, WindowSummary>,
    late: BTreeMap<i64, WindowSummary>,
    join: JoinBuffer,
    sequences: Sequences,
    spool: Arc<Spool>,
    metrics: AgentMetrics,
    queued: Arc<AtomicUsize>,
    settings: WindowSettings,
    unwritten: std::collections::VecDeque<SummaryEnvelope>,
    dirty: bool,
    last_checkpoint: i64,
    /// The latest window start a tick opened: the next tick opens every window after it, so a
    /// tick that comes late (a starved machine, a stalled thread) leaves no empty window out.
    opened_through: Option<i64>,
    /// The recording threads' own summaries ([`crate::shard`]).
    shards: Arc<crate::shard::Shards>,
}

impl Windower {
    /// A windower spooling into `spool`; `queued` is the ingest queue's event count, which it
    /// decrements as it takes events.
    pub fn new(
        settings: &WindowSettings,
        schema: Arc<ModelSchema>,
        profile: Arc<ReferenceProfile>,
        spool: Arc<Spool>,
        metrics: AgentMetrics,
        queued: Arc<AtomicUsize>,
    ) -> Self {
        let window_ms = ms(settings.length).max(1);
        let max_lateness_ms = ms(settings.max_lateness);
        let join_ttl_ms = ms(settings.join_ttl);
        let mut w = Self {
            sequences: Sequences::load(spool.dir().join("window-sequences.json")),
            schema,
            profile,
            agent_id: settings.agent_id.clone(),
            window_ms,
            grace_ms: ms(settings.grace),
            horizon_ms: max_lateness_ms.max(join_ttl_ms) + 2 * window_ms + ms(settings.grace),
            open: BTreeMap::new(),
            late: BTreeMap::new(),
            join: JoinBuffer::new(settings.join_capacity, join_ttl_ms)
                .with_max_bytes(settings.join_max_bytes),
            spool,
            metrics,
            queued,
            settings: settings.clone(),
            unwritten: std::collections::VecDeque::new(),
            dirty: false,
            last_checkpoint: i64::MIN,
            opened_through: None,
            shards: Arc::default(),
        };
        w.restore();
        w
    }

    /// Takes the summaries of the recorders' [`Shard`](crate::shard::Shard)s too.
    pub fn with_shards(mut self, shards: Arc<crate::shard::Shards>) -> Self {
        self.shards = shards;
        self
    }

    /// Takes from the shards their waiting ids (into the join buffer) and the summaries of
    /// the windows `take` picks (merged into the window's summary, open or late).
    ///
    /// Before labels are applied it takes every window: a late label then adds to a summary
    /// that already holds the shard's events, in the order the queue would have added them,
    /// so label-side float sums (log loss, Brier, CBPE) come out to the same bits as the
    /// queue's rather than summed in another order at the next tick.
    fn take_shards(&mut self, now: i64, take: impl Fn(i64) -> bool) {
        let taken = self.shards.take(&self.metrics, take);
        if taken.windows.is_empty() && taken.pending.is_empty() {
            return;
        }
        self.dirty = true;
        for (start, part) in taken.windows {
            // Into the window's own summary while it is open, even when it closes at this very
            // tick (so its events ship in the window's first summary, as the queue's do); a
            // window already closed gets the part in its late summary.
            let summary = if self.open.contains_key(&start) {
                self.open.get_mut(&start).expect("just checked")
            } else {
                self.summary_for(start, now)
            };
            if let Err(e) = summary.merge(&part) {
                tracing::error!(error = %e, window_start_ms = start, events = part.events, "a recording thread's summary does not merge; its events are lost");
                self.metrics
                    .events_dropped
                    .with_label_values(&["unmergeable"])
                    .inc_by(part.events);
            }
        }
        if !taken.pending.is_empty() {
            for (id, pending) in taken.pending {
                let removed = self.join.insert(id, pending, now);
                self.metrics.join_evicted.inc_by(removed.evicted);
            }
            self.metrics.join_entries.set(self.join.len() as i64);
        }
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.spool.dir().join(CHECKPOINT_FILE)
    }

    /// Takes back the open windows of a checkpoint left by a crashed run.
    fn restore(&mut self) {
        let Ok(bytes) = std::fs::read(self.checkpoint_path()) else {
            return;
        };
        let cp: Checkpoint = match serde_json::from_slice(&bytes) {
            Ok(cp) => cp,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable open-window checkpoint");
                return;
            }
        };
        if cp.profile_hash != self.profile.hash || cp.window_ms != self.window_ms {
            tracing::info!(
                "ignoring an open-window checkpoint of another profile or window length"
            );
            return;
        }
        let (mut open, mut late) = (0u64, 0u64);
        for (start, summary) in cp.open {
            if !self.sequences.has_closed(start)
                && summary.check_against(&self.schema, &self.profile).is_ok()
            {
                open += summary.events;
                self.open.insert(start, summary);
            }
        }
        for (start, next, summary) in cp.late {
            if self.sequences.next.get(&start) == Some(&next)
                && summary.check_against(&self.schema, &self.profile).is_ok()
            {
                late += summary.events;
                self.late.insert(start, summary);
            }
        }
        tracing::info!(
            open_events = open,
            late_events = late,
            "restored the open windows from the last checkpoint"
        );
    }

    /// Writes the open windows to disk (atomically), when something changed since last time.
    fn checkpoint(&mut self, now: i64) {
        let every = ms(self.settings.checkpoint);
        if every == 0 || now.saturating_sub(self.last_checkpoint) < every {
            return;
        }
        // The shards' summaries go in as copies: the windows keep theirs until they close.
        let copies = self.shards.copies();
        if !self.dirty && copies.is_none() {
            return;
        }
        self.write_checkpoint(now, copies.unwrap_or_default());
    }

    fn write_checkpoint(&mut self, now: i64, shards: Vec<(i64, WindowSummary)>) {
        let mut open = self.open.clone();
        let mut late = self.late.clone();
        for (start, part) in shards {
            let map = if self.due(start, now) {
                &mut late
            } else {
                &mut open
            };
            let merged = map
                .entry(start)
                .or_insert_with(|| WindowSummary::new(&self.schema, &self.profile))
                .merge(&part);
            if let Err(e) = merged {
                tracing::warn!(error = %e, "a recording thread's summary is left out of the checkpoint");
            }
        }
        let cp = Checkpoint {
            profile_hash: self.profile.hash.clone(),
            window_ms: self.window_ms,
            open: open.into_iter().collect(),
            late: late
                .into_iter()
                .map(|(k, v)| (k, self.sequences.next.get(&k).copied().unwrap_or(0), v))
                .collect(),
        };
        let path = self.checkpoint_path();
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec(&cp)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => {
                self.metrics.checkpoints.inc();
                self.dirty = false;
                self.last_checkpoint = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not checkpoint the open windows");
                self.last_checkpoint = now;
            }
        }
    }

    fn empty(&self) -> WindowSummary {
        WindowSummary::new(&self.schema, &self.profile)
    }

    fn due(&self, start: i64, now: i64) -> bool {
        start + self.window_ms + self.grace_ms <= now
    }

    /// Applies one input at wall-clock `now`.
    pub fn handle(&mut self, input: Input, now: i64) {
        let weight = input.weight();
        self.apply(input, now);
        self.release(weight);
    }

    /// Gives `weight` queue slots back to the request path.
    fn release(&self, weight: usize) {
        if weight > 0 {
            let left = self
                .queued
                .fetch_sub(weight, Ordering::AcqRel)
                .saturating_sub(weight);
            self.metrics.queue_events.set(left as i64);
        }
    }

    fn apply(&mut self, input: Input, now: i64) {
        self.dirty = true;
        match input {
            Input::Event(mut e) => self.record(&mut e, None, now),
            Input::Events(events) => {
                for mut e in events {
                    self.record(&mut e, None, now);
                }
            }
            Input::Scored(events) => {
                for (mut e, scores) in events {
                    self.record(&mut e, scores, now);
                }
            }
            Input::Recyclable(mut events, recycler) => {
                for e in &mut events {
                    self.record(e, None, now);
                }
                recycler.give(events);
            }
            Input::Labels(labels) => {
                self.take_shards(now, |_| true);
                for (id, target) in labels {
                    self.label(&id, target, now);
                }
            }
            Input::LabelsTold(labels, tell) => {
                self.take_shards(now, |_| true);
                let mut joins = LabelJoins::default();
                for (id, target) in labels {
                    match self.label(&id, target, now) {
                        Joined::Yes => joins.joined += 1,
                        Joined::Unmatched => joins.unmatched += 1,
                        Joined::Expired => joins.expired += 1,
                    }
                }
                let _ = tell.send(joins);
            }
            Input::Rejected(n) => {
                let start = align(now, self.window_ms);
                let summary = self.summary_for(start, now);
                for _ in 0..n {
                    summary.record_rejected();
                }
            }
            Input::Flush(done) => {
                self.take_shards(now, |_| true);
                self.flush_all(now);
                let _ = done.send(());
            }
        }
    }

    /// The summary an item of window `start` goes to: the open one, or the window's late one.
    fn summary_for(&mut self, start: i64, now: i64) -> &mut WindowSummary {
        let map = if self.due(start, now) {
            &mut self.late
        } else {
            &mut self.open
        };
        map.entry(start)
            .or_insert_with(|| WindowSummary::new(&self.schema, &self.profile))
    }

    /// Records `event`; an id waiting for its label is taken out of it (into the join buffer).
    fn record(&mut self, event: &mut Event, class_scores: Option<Vec<f64>>, now: i64) {
        let start = align(event.ts_ms, self.window_ms);
        if let Err(drop) = admit(event.ts_ms, now, &self.settings) {
            self.metrics
                .events_dropped
                .with_label_values(&[drop.as_str()])
                .inc();
            return;
        }
        let (schema, profile) = (Arc::clone(&self.schema), Arc::clone(&self.profile));
        self.summary_for(start, now).record_scored(
            &schema,
            &profile,
            event,
            class_scores.as_deref(),
        );
        self.metrics.events_summarised.inc();
        if event.label.is_none() && !matches!(event.prediction, Prediction::Failed) {
            if let Some(id) = event.id.take() {
                let pending = Pending {
                    window_start_ms: start,
                    prediction: event.prediction,
                    groups: std::mem::take(&mut event.groups),
                    class_scores,
                };
                let removed = self.join.insert(id, pending, now);
                self.metrics.join_evicted.inc_by(removed.evicted);
                self.metrics.join_entries.set(self.join.len() as i64);
            }
        }
    }

    fn label(&mut self, id: &str, target: Target, now: i64) -> Joined {
        let joined = match self.join.take(id, now) {
            Lookup::Joined(p) => {
                let schema = Arc::clone(&self.schema);
                self.summary_for(p.window_start_ms, now)
                    .record_label_scored(
                        &schema,
                        &p.prediction,
                        &p.groups,
                        target,
                        p.class_scores.as_deref(),
                    );
                self.metrics.labels_joined.inc();
                Joined::Yes
            }
            Lookup::Expired => {
                self.metrics.labels_expired.inc();
                Joined::Expired
            }
            Lookup::Unmatched => {
                self.metrics.labels_unmatched.inc();
                Joined::Unmatched
            }
        };
        self.metrics.join_entries.set(self.join.len() as i64);
        joined
    }

    fn spool(&mut self, start: i64, summary: WindowSummary, now: i64) -> u64 {
        let seq = self.sequences.allocate(start, now - self.horizon_ms);
        let envelope = SummaryEnvelope::new(
            &self.agent_id,
            &self.schema.name,
            &self.schema.version,
            start,
            self.window_ms as u64,
            seq,
            summary,
        );
        self.unwritten.push_back(envelope);
        self.write_unwritten();
        seq
    }

    /// Writes the summaries the spool has not taken yet, oldest first; on failure they stay in
    /// memory (at most [`MAX_UNWRITTEN`]) for the next tick, and `/readyz` reports not ready.
    fn write_unwritten(&mut self) {
        while let Some(envelope) = self.unwritten.front() {
            match self.spool.write(envelope) {
                Ok(()) => {
                    self.unwritten.pop_front();
                }
                Err(e) => {
                    self.metrics
                        .spool_write_failures
                        .with_label_values(&[e.reason()])
                        .inc();
                    tracing::error!(error = %e, window_start_ms = envelope.window_start_ms, seq = envelope.seq, waiting = self.unwritten.len(), "could not spool a summary; keeping it in memory and retrying");
                    while self.unwritten.len() > MAX_UNWRITTEN {
                        if let Some(lost) = self.unwritten.pop_front() {
                            self.metrics
                                .summaries_lost
                                .with_label_values(&["spool_unwritable"])
                                .inc();
                            tracing::error!(
                                window_start_ms = lost.window_start_ms,
                                seq = lost.seq,
                                "the spool has refused writes for too long: a summary is lost"
                            );
                        }
                    }
                    break;
                }
            }
        }
        self.metrics
            .spool_unwritten
            .set(self.unwritten.len() as i64);
    }

    /// Closes windows whose grace has passed, opens the current one, flushes late summaries
    /// once per window, and sweeps the join buffer.
    pub fn tick(&mut self, now: i64) {
        if !self.unwritten.is_empty() {
            self.write_unwritten();
        }
        let (window_ms, grace_ms) = (self.window_ms, self.grace_ms);
        self.take_shards(now, |start| start + window_ms + grace_ms <= now);
        let current = align(now, self.window_ms);
        // Every window since the last tick, not only the current one: an empty window is a
        // summary too, and the collector must see no gap because this tick came late. A clock
        // that jumped far ahead opens no more than the lateness horizon.
        let first = self
            .opened_through
            .map_or(current, |s| s.saturating_add(self.window_ms))
            .max(current - self.horizon_ms / self.window_ms * self.window_ms)
            .min(current);
        let mut start = first;
        while start <= current {
            if !self.open.contains_key(&start) && !self.sequences.has_closed(start) {
                let empty = self.empty();
                self.open.insert(start, empty);
            }
            start += self.window_ms;
        }
        self.opened_through = Some(current);
        let due: Vec<i64> = self
            .open
            .keys()
            .copied()
            .filter(|&s| self.due(s, now))
            .collect();
        for start in &due {
            if let Some(summary) = self.open.remove(start) {
                let events = summary.events;
                let seq = self.spool(*start, summary, now);
                self.metrics.windows_closed.inc();
                tracing::info!(window_start_ms = start, seq, events, "window closed");
            }
        }
        if !due.is_empty() {
            self.flush_late(now);
            // The closed windows must not come back from an older checkpoint.
            self.dirty = true;
        }
        self.checkpoint(now);
        let expired = self.join.expire(now);
        if expired > 0 {
            self.metrics.labels_expired.inc_by(expired);
            self.metrics.join_entries.set(self.join.len() as i64);
        }
    }

    fn flush_late(&mut self, now: i64) {
        for (start, summary) in std::mem::take(&mut self.late) {
            let seq = self.spool(start, summary, now);
            self.metrics.late_summaries.inc();
            tracing::info!(window_start_ms = start, seq, "late summary spooled");
        }
    }

    /// Closes every open window and flushes late summaries (shutdown).
    pub fn flush_all(&mut self, now: i64) {
        for (start, summary) in std::mem::take(&mut self.open) {
            let events = summary.events;
            let seq = self.spool(start, summary, now);
            self.metrics.windows_closed.inc();
            tracing::info!(
                window_start_ms = start,
                seq,
                events,
                "window flushed at shutdown"
            );
        }
        self.flush_late(now);
        self.write_unwritten();
        if self.unwritten.is_empty() {
            let _ = std::fs::remove_file(self.checkpoint_path());
        } else {
            self.metrics
                .summaries_lost
                .with_label_values(&["spool_unwritable"])
                .inc_by(self.unwritten.len() as u64);
            tracing::error!(
                lost = self.unwritten.len(),
                "stopping with summaries the spool refused: they are lost"
            );
        }
    }

    /// Runs until told to stop (or every sender is gone), takes what is still queued, then
    /// closes and spools every window.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Input>, mut stop: watch::Receiver<bool>) {
        let period = Duration::from_millis((self.window_ms as u64 / 4).clamp(10, 250));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(256);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    let now = now_ms();
                    let mut weight = 0;
                    for input in batch.drain(..) {
                        weight += input.weight();
                        self.apply(input, now);
                    }
                    self.release(weight);
                }
                _ = ticker.tick() => self.tick(now_ms()),
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        rx.close();
        while let Some(input) = rx.recv().await {
            self.handle(input, now_ms());
        }
        self.shards.stop();
        self.take_shards(now_ms(), |_| true);
        self.flush_all(now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aims_core::profile::ProfileBuilder;
    use aims_core::schema::Task;
    use aims_core::RawEvent;

    fn setup(tag: &str) -> (Windower, Arc<Spool>, AgentMetrics, PathBuf) {
        let schema: ModelSchema = serde_json::from_str::<ModelSchema>(
            r#"{"name": "m", "task": "binary", "features": [{"name": "x", "kind": "numeric"}],
                "attributes": [{"name": "g", "groups": ["a", "b"]}]}"#,
        )
        .unwrap()
        .validated()
        .unwrap();
        assert_eq!(schema.task, Task::Binary);
        let mut b = ProfileBuilder::new(&schema);
        for i in 0..100 {
            let raw: RawEvent = serde_json::from_str(&format!(
                r#"{{"features": {{"x": {i}}}, "prediction": {{"label": 1}}}}"#
            ))
            .unwrap();
            b.add(&schema.validate(raw, 0).unwrap());
        }
        let profile = b.finish();
        let dir = std::env::temp_dir().join(format!("aims-window-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let metrics = AgentMetrics::new();
        let spool = Arc::new(Spool::open(&dir, 1 << 30, metrics.clone()).unwrap());
        let settings = WindowSettings {
            agent_id: "a".into(),
            length: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            max_lateness: Duration::from_secs(600),
            join_capacity: 100,
            join_ttl: Duration::from_secs(3600),
            join_max_bytes: 1 << 20,
            checkpoint: Duration::from_secs(2),
        };
        let w = Windower::new(
            &settings,
            Arc::new(schema),
            Arc::new(profile),
            Arc::clone(&spool),
            metrics.clone(),
            Arc::new(AtomicUsize::new(0)),
        );
        (w, spool, metrics, dir)
    }

    fn event(w: &Windower, id: &str, ts: i64) -> Event {
        let raw: RawEvent = serde_json::from_str(&format!(
            r#"{{"id": "{id}", "features": {{"x": 5}}, "attributes": {{"g": "a"}}, "prediction": {{"label": 1, "score": 0.9}}}}"#
        ))
        .unwrap();
        w.schema.validate(raw, ts).unwrap()
    }

    fn spooled(spool: &Spool) -> Vec<SummaryEnvelope> {
        spool
            .names()
            .iter()
            .map(|n| serde_json::from_slice(&spool.read(n).unwrap()).unwrap())
            .collect()
    }

    /// A spooled summary's window start, sequence number and event count.
    fn start_seq_events(e: &SummaryEnvelope) -> (i64, u64, u64) {
        (e.window_start_ms, e.seq, e.summary.events)
    }

    #[test]
    fn recyclable_events_are_recorded_joined_and_handed_back() {
        let (mut w, _spool, metrics, dir) = setup("recycle");
        let t0 = 1_800_000_000_000;
        w.tick(t0);
        let recycler = Recycler::default();
        assert!(recycler.take().is_none());
        let events = vec![event(&w, "r1", t0 + 10), event(&w, "r2", t0 + 20)];
        w.handle(Input::Recyclable(events, recycler.clone()), t0 + 30);
        assert_eq!(metrics.events_summarised.get(), 2);
        assert_eq!(w.open.values().map(|s| s.events).sum::<u64>(), 2);
        // The ids waiting for their labels went into the join buffer, so the labels join.
        w.handle(
            Input::Labels(vec![("r2".into(), Target::Class(1))]),
            t0 + 40,
        );
        assert_eq!(metrics.labels_joined.get(), 1);
        // The buffers came back, with their ids taken.
        let back = recycler.take().expect("the events come back");
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(|e| e.id.is_none()));
        // A few are kept, no more.
        for _ in 0..10 {
            w.handle(
                Input::Recyclable(vec![event(&w, "x", t0 + 50)], recycler.clone()),
                t0 + 60,
            );
        }
        let kept = std::iter::from_fn(|| recycler.take()).count();
        assert_eq!(kept, RECYCLED);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_shards_events_ship_in_their_windows_first_summary() {
        let (w, spool, metrics, dir) = setup("shard-close");
        let shards = Arc::new(crate::shard::Shards::default());
        let mut w = w.with_shards(Arc::clone(&shards));
        let now = now_ms();
        let t0 = align(now, 60_000);
        w.tick(now);
        let shard = crate::shard::Shard::new(
            &shards,
            Arc::clone(&w.schema),
            Arc::clone(&w.profile),
            Arc::new(w.settings.clone()),
            Arc::new(LimitsConfig::default()),
            metrics.clone(),
        );
        assert!(shard.record(event(&w, "s1", now)));
        // The tick that closes the window takes the shard's part into it first.
        w.tick(t0 + 65_000);
        let first = spooled(&spool);
        assert_eq!(first.len(), 1);
        assert_eq!(start_seq_events(&first[0]), (t0, 0, 1));
        // No late summary follows for it.
        w.tick(t0 + 125_000);
        assert!(spooled(&spool)
            .iter()
            .all(|e| e.window_start_ms != t0 || e.seq == 0));
        assert_eq!(metrics.late_summaries.get(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_late_tick_still_closes_every_empty_window_in_between() {
        let (mut w, spool, _metrics, dir) = setup("late-tick");
        let t0 = 1_800_000_000_000; // a multiple of 60 s
        w.tick(t0);
        // The next tick comes four windows later, as on a machine starved for seconds.
        w.tick(t0 + 4 * 60_000 + 5_000);
        let starts: Vec<i64> = spooled(&spool).iter().map(|e| e.window_start_ms).collect();
        assert_eq!(
            starts,
            vec![t0, t0 + 60_000, t0 + 120_000, t0 + 180_000],
            "no window left out"
        );
        assert!(w.open.contains_key(&(t0 + 240_000)));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn windows_close_after_grace_and_late_labels_ship_as_next_seq() {
        let (mut w, spool, metrics, dir) = setup("late");
        let t0 = 1_800_000_000_000; // a multiple of 60 s
        w.tick(t0);
        w.handle(
            Input::Events(vec![event(&w, "p1", t0 + 10), event(&w, "p2", t0 + 20)]),
            t0 + 30,
        );
        w.tick(t0 + 64_000);
        assert!(spool.names().is_empty(), "still in grace");
        w.tick(t0 + 65_000);
        let first = spooled(&spool);
        assert_eq!(first.len(), 1);
        assert_eq!(start_seq_events(&first[0]), (t0, 0, 2));
        assert_eq!(first[0].summary.labelled, 0);

        w.handle(
            Input::Labels(vec![
                ("p1".into(), Target::Class(1)),
                ("nope".into(), Target::Class(0)),
            ]),
            t0 + 70_000,
        );
        assert_eq!(metrics.labels_joined.get(), 1);
        assert_eq!(metrics.labels_unmatched.get(), 1);
        w.tick(t0 + 125_000);
        let all = spooled(&spool);
        let late: Vec<_> = all
            .iter()
            .filter(|e| e.window_start_ms == t0 && e.seq == 1)
            .collect();
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].summary.events, late[0].summary.labelled), (0, 1));
        assert_eq!(metrics.windows_closed.get(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn late_and_future_events_are_counted_and_restart_keeps_seqs() {
        let (mut w, spool, metrics, dir) = setup("drop");
        let t0 = 1_800_000_000_000; // a multiple of 60 s
        w.handle(Input::Event(event(&w, "old", t0 - 3_600_000)), t0);
        w.handle(Input::Event(event(&w, "ahead", t0 + 180_000)), t0);
        assert_eq!(metrics.events_dropped.with_label_values(&["late"]).get(), 1);
        assert_eq!(
            metrics.events_dropped.with_label_values(&["future"]).get(),
            1
        );
        w.handle(Input::Event(event(&w, "e", t0 + 1)), t0 + 2);
        w.flush_all(t0 + 3);
        let settings = WindowSettings {
            agent_id: "a".into(),
            length: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            max_lateness: Duration::from_secs(600),
            join_capacity: 100,
            join_ttl: Duration::from_secs(3600),
            join_max_bytes: 1 << 20,
            checkpoint: Duration::from_secs(2),
        };
        let (schema, profile) = (Arc::clone(&w.schema), Arc::clone(&w.profile));
        drop(w);
        // A restarted agent on the same spool continues the window's sequence.
        let mut w2 = Windower::new(
            &settings,
            schema,
            profile,
            Arc::clone(&spool),
            metrics.clone(),
            Arc::new(AtomicUsize::new(0)),
        );
        w2.handle(Input::Event(event(&w2, "e2", t0 + 4)), t0 + 5);
        w2.flush_all(t0 + 6);
        let seqs: Vec<(i64, u64)> = spooled(&spool)
            .iter()
            .map(|e| (e.window_start_ms, e.seq))
            .collect();
        assert_eq!(seqs, vec![(t0, 0), (t0, 1)]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
