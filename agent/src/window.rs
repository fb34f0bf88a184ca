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
use aims_core::summary::WindowSummary;
use aims_core::wire::SummaryEnvelope;
use tokio::sync::{mpsc, watch};

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
    /// Validated late labels.
    Labels(Vec<(String, Target)>),
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
            Self::Events(v) => v.len(),
            Self::Labels(v) => v.len(),
            Self::Rejected(_) | Self::Flush(_) => 0,
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The start of the window holding `ts_ms`.
pub fn align(ts_ms: i64, window_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(window_ms)
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

/// Settings of the windowing task.
#[derive(Debug, Clone)]
pub struct WindowSettings {
    /// This agent's id (part of summary ids).
    pub agent_id: String,
    /// Window length.
    pub length: Duration,
    /// How long after its end a window stays open.
    pub grace: Duration,
    /// How old a closed window may be and still take late events.
    pub max_lateness: Duration,
    /// Join buffer entry cap.
    pub join_capacity: usize,
    /// Join buffer TTL.
    pub join_ttl: Duration,
}

/// The state the windowing task owns.
pub struct Windower {
    schema: Arc<ModelSchema>,
    profile: Arc<ReferenceProfile>,
    agent_id: String,
    window_ms: i64,
    grace_ms: i64,
    max_lateness_ms: i64,
    horizon_ms: i64,
    open: BTreeMap<i64, WindowSummary>,
    late: BTreeMap<i64, WindowSummary>,
    join: JoinBuffer,
    sequences: Sequences,
    spool: Arc<Spool>,
    metrics: AgentMetrics,
    queued: Arc<AtomicUsize>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
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
        Self {
            sequences: Sequences::load(spool.dir().join("window-sequences.json")),
            schema,
            profile,
            agent_id: settings.agent_id.clone(),
            window_ms,
            grace_ms: ms(settings.grace),
            max_lateness_ms,
            horizon_ms: max_lateness_ms.max(join_ttl_ms) + 2 * window_ms + ms(settings.grace),
            open: BTreeMap::new(),
            late: BTreeMap::new(),
            join: JoinBuffer::new(settings.join_capacity, join_ttl_ms),
            spool,
            metrics,
            queued,
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
        match input {
            Input::Event(e) => self.record(e, now),
            Input::Events(events) => {
                for e in events {
                    self.record(e, now);
                }
            }
            Input::Labels(labels) => {
                for (id, target) in labels {
                    self.label(&id, target, now);
                }
            }
            Input::Rejected(n) => {
                let start = align(now, self.window_ms);
                let summary = self.summary_for(start, now);
                for _ in 0..n {
                    summary.record_rejected();
                }
            }
            Input::Flush(done) => {
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

    fn record(&mut self, event: Event, now: i64) {
        let start = align(event.ts_ms, self.window_ms);
        if start > align(now, self.window_ms) + self.window_ms {
            self.metrics
                .events_dropped
                .with_label_values(&["future"])
                .inc();
            return;
        }
        if self.due(start, now) && start + self.window_ms + self.max_lateness_ms < now {
            self.metrics
                .events_dropped
                .with_label_values(&["late"])
                .inc();
            return;
        }
        let (schema, profile) = (Arc::clone(&self.schema), Arc::clone(&self.profile));
        self.summary_for(start, now)
            .record(&schema, &profile, &event);
        if let (Some(id), None) = (event.id, event.label) {
            if !matches!(event.prediction, Prediction::Failed) {
                let pending = Pending {
                    window_start_ms: start,
                    prediction: event.prediction,
                    groups: event.groups,
                };
                let removed = self.join.insert(id, pending, now);
                self.metrics.join_evicted.inc_by(removed.evicted);
                self.metrics.join_entries.set(self.join.len() as i64);
            }
        }
    }

    fn label(&mut self, id: &str, target: Target, now: i64) {
        match self.join.take(id, now) {
            Lookup::Joined(p) => {
                let schema = Arc::clone(&self.schema);
                self.summary_for(p.window_start_ms, now).record_label(
                    &schema,
                    &p.prediction,
                    &p.groups,
                    target,
                );
                self.metrics.labels_joined.inc();
            }
            Lookup::Expired => self.metrics.labels_expired.inc(),
            Lookup::Unmatched => self.metrics.labels_unmatched.inc(),
        }
        self.metrics.join_entries.set(self.join.len() as i64);
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
        if let Err(e) = self.spool.write(&envelope) {
            tracing::error!(error = %e, window_start_ms = start, seq, "could not spool a summary; it is lost");
        }
        seq
    }

    /// Closes windows whose grace has passed, opens the current one, flushes late summaries
    /// once per window, and sweeps the join buffer.
    pub fn tick(&mut self, now: i64) {
        let current = align(now, self.window_ms);
        if !self.open.contains_key(&current) && !self.sequences.has_closed(current) {
            let empty = self.empty();
            self.open.insert(current, empty);
        }
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
        }
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
        assert_eq!(
            (
                first[0].window_start_ms,
                first[0].seq,
                first[0].summary.events
            ),
            (t0, 0, 2)
        );
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
