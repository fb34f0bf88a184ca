//! Per-thread recording: a [`Shard`] folds its events into window summaries of its own, on the
//! recording thread, and the windowing task takes them from it.
//!
//! Why: through [`Recorder::record`](crate::Recorder::record) every event crosses a queue to
//! the one windowing task, which folds it (aims-core's `WindowSummary::record`, most of the
//! per-event cost) alone: one core's worth of folding, whatever the number of recording
//! threads, and every recording thread writes the same queue and counters. A shard instead
//! folds where the event is made. Its state sits behind a mutex of its own, which only its
//! thread takes per event (or once per batch), and the windowing task a few times a second; two
//! recording threads with a shard each share no lock, queue or counter on the hot path.
//!
//! What the windowing task does with a shard, so the summaries are the ones the queue gives:
//! - ids waiting for their labels go into the label join buffer at every tick, and before any
//!   label is applied (a label submitted after its prediction was recorded always finds it),
//!   together with the shards' summaries, so a late label adds to its window in the queue's
//!   order of addition;
//! - a shard's summary of a window is taken when the window closes (or, for a late window,
//!   at the tick after), at `flush` and at shutdown, and merged into the window's summary;
//!   counts, histograms and sketches add exactly, and a window recorded by one shard alone is
//!   the same summary to the bit as the queue gives (merged into the window's empty summary);
//! - checkpoints include copies of the shards' summaries, so a crash loses no more than
//!   `window.checkpoint` of them either;
//! - counters reach the metrics every 1,024 events and at every tick (not per event, so that
//!   two threads do not contend on them).
//!
//! A dropped shard hands everything over at the next tick; after the monitor stopped, a shard
//! refuses events (counted as `overload` drops, as a closed queue does).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aims_core::event::{Event, EventError, Prediction};
use aims_core::profile::ReferenceProfile;
use aims_core::schema::ModelSchema;
use aims_core::summary::{Columns, ColumnsError, WindowSummary};

use crate::admission::{admit, align, Dropped, WindowSettings};
use crate::config::LimitsConfig;
use crate::labels::Pending;
use crate::metrics::AgentMetrics;
use aims_runtime::clock::now_ms;

/// Counters published every this many events received by a shard (and at every tick).
const PUBLISH_EVERY: u64 = 1024;

/// The shards of one monitor, shared by its recorders and its windowing task.
#[derive(Debug, Default)]
pub struct Shards {
    cells: Mutex<Vec<Arc<Cell>>>,
    stopped: AtomicBool,
}

#[derive(Debug, Default)]
struct Cell {
    partial: Mutex<Partial>,
    live: AtomicBool,
}

/// Event counts not yet added to the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    received: u64,
    accepted: u64,
    summarised: u64,
    late: u64,
    future: u64,
    overload: u64,
}

/// What a shard holds between two visits of the windowing task.
#[derive(Debug, Default)]
pub(crate) struct Partial {
    /// This shard's summary per window start (one or two windows at a time).
    pub(crate) windows: Vec<(i64, WindowSummary)>,
    /// Predictions waiting for their labels, in record order.
    pub(crate) pending: Vec<(String, Pending)>,
    pub(crate) counts: Counts,
    /// Recorded into since the last checkpoint.
    pub(crate) changed: bool,
}

impl Counts {
    /// Adds the counts to the metrics.
    pub(crate) fn publish(self, metrics: &AgentMetrics) {
        let add = |c: &prometheus::IntCounter, n: u64| {
            if n > 0 {
                c.inc_by(n)
            }
        };
        add(&metrics.events_received, self.received);
        add(&metrics.events_accepted, self.accepted);
        add(&metrics.events_summarised, self.summarised);
        for (reason, n) in [
            (Dropped::Late.as_str(), self.late),
            (Dropped::Future.as_str(), self.future),
            ("overload", self.overload),
        ] {
            if n > 0 {
                metrics
                    .events_dropped
                    .with_label_values(&[reason])
                    .inc_by(n);
            }
        }
    }
}

/// What the windowing task took from the shards in one visit.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) windows: Vec<(i64, WindowSummary)>,
    pub(crate) pending: Vec<(String, Pending)>,
}

impl Shards {
    fn lock_cells(&self) -> MutexGuard<'_, Vec<Arc<Cell>>> {
        self.cells.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self) -> Arc<Cell> {
        let cell = Arc::new(Cell {
            partial: Mutex::new(Partial::default()),
            live: AtomicBool::new(true),
        });
        self.lock_cells().push(Arc::clone(&cell));
        cell
    }

    /// Takes from every shard its waiting ids, and the summaries of the windows `take` picks
    /// (all of them from a dropped shard, which then leaves the list); publishes the counts.
    pub(crate) fn take(&self, metrics: &AgentMetrics, take: impl Fn(i64) -> bool) -> Taken {
        let cells: Vec<Arc<Cell>> = self.lock_cells().clone();
        let mut out = Taken::default();
        let mut dead = false;
        for cell in &cells {
            let gone = !cell.live.load(Ordering::Acquire);
            dead |= gone;
            let mut p = cell.partial.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut p.counts).publish(metrics);
            out.pending.append(&mut p.pending);
            if gone {
                out.windows.append(&mut p.windows);
            } else if p.windows.iter().any(|(s, _)| take(*s)) {
                let (taken, kept) = std::mem::take(&mut p.windows)
                    .into_iter()
                    .partition(|(s, _)| take(*s));
                p.windows = kept;
                out.windows.extend::<Vec<_>>(taken);
            }
        }
        if dead {
            self.lock_cells().retain(|c| {
                c.live.load(Ordering::Acquire)
                    || !c
                        .partial
                        .lock()
                        .map_or(true, |p| p.windows.is_empty() && p.pending.is_empty())
            });
        }
        out
    }

    /// Copies of the shards' summaries (for a checkpoint), when any was recorded into since the
    /// last call.
    pub(crate) fn copies(&self) -> Option<Vec<(i64, WindowSummary)>> {
        let cells: Vec<Arc<Cell>> = self.lock_cells().clone();
        let mut changed = false;
        let mut out = Vec::new();
        for cell in &cells {
            let mut p = cell.partial.lock().unwrap_or_else(|p| p.into_inner());
            changed |= std::mem::take(&mut p.changed);
            out.extend(p.windows.iter().cloned());
        }
        changed.then_some(out)
    }

    /// From now on shards refuse events; the windowing task then takes what they hold.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }
}

/// A recording handle for one thread; see the module documentation. Made by
/// [`Recorder::shard`](crate::Recorder::shard).
pub struct Shard {
    cell: Arc<Cell>,
    shards: Arc<Shards>,
    schema: Arc<ModelSchema>,
    profile: Arc<ReferenceProfile>,
    settings: Arc<WindowSettings>,
    limits: Arc<LimitsConfig>,
    metrics: AgentMetrics,
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.cell.live.store(false, Ordering::Release);
    }
}

/// How a shard took an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Folded into its window.
    Yes,
    /// Not recorded, and counted: late, future, or the monitor has stopped (`overload`).
    Dropped,
    /// Refused by the `limits` caps (its id or a category value is too long), and counted as
    /// rejected; the error names the field.
    Refused(EventError),
}

impl Shard {
    pub(crate) fn new(
        shards: &Arc<Shards>,
        schema: Arc<ModelSchema>,
        profile: Arc<ReferenceProfile>,
        settings: Arc<WindowSettings>,
        limits: Arc<LimitsConfig>,
        metrics: AgentMetrics,
    ) -> Shard {
        Shard {
            cell: shards.register(),
            shards: Arc::clone(shards),
            schema,
            profile,
            settings,
            limits,
            metrics,
        }
    }

    /// The schema events are validated against.
    pub fn schema(&self) -> &ModelSchema {
        &self.schema
    }

    /// Records one validated event; never waits for the windowing task. False when it was
    /// dropped or refused (counted either way).
    pub fn record(&self, mut event: Event) -> bool {
        self.batch().record(&mut event, None) == Recorded::Yes
    }

    /// Records one validated event with its prediction's per-class probabilities.
    pub fn record_scored(&self, mut event: Event, scores: Option<Vec<f64>>) -> bool {
        self.batch().record(&mut event, scores.as_deref()) == Recorded::Yes
    }

    /// Takes this shard for a run of events (one lock for all of them; the clock is read once).
    pub fn batch(&self) -> ShardBatch<'_> {
        ShardBatch {
            partial: self.cell.partial.lock().unwrap_or_else(|p| p.into_inner()),
            shard: self,
            now: now_ms(),
        }
    }
}

/// A [`Shard`] taken for a run of events; see [`Shard::batch`].
pub struct ShardBatch<'a> {
    partial: MutexGuard<'a, Partial>,
    shard: &'a Shard,
    now: i64,
}

impl ShardBatch<'_> {
    /// The wall clock this batch records at (ms since the epoch).
    pub fn now(&self) -> i64 {
        self.now
    }

    /// Records a validated event (and its per-class probabilities), by reference: an id
    /// waiting for its label is taken out of it, so the caller can fill the same event again.
    /// The `limits` length caps are checked here first.
    pub fn record(&mut self, event: &mut Event, scores: Option<&[f64]>) -> Recorded {
        if let Err(e) = crate::ingest::lengths_ok(event, &self.shard.schema, &self.shard.limits) {
            self.rejected(e.reason);
            self.publish_due();
            return Recorded::Refused(e);
        }
        self.record_checked(event, scores)
    }

    /// [`record`](Self::record) of an event that has passed `ingest::lengths_ok` already (the
    /// agent's HTTP decoders check it as they decode), so the hot path does not check twice.
    /// Never `Refused`.
    pub(crate) fn record_checked(&mut self, event: &mut Event, scores: Option<&[f64]>) -> Recorded {
        let s = self.shard;
        let p = &mut *self.partial;
        p.counts.received += 1;
        let recorded = if s.shards.stopped.load(Ordering::Acquire) {
            p.counts.accepted += 1;
            p.counts.overload += 1;
            Recorded::Dropped
        } else {
            p.counts.accepted += 1;
            match admit(event.ts_ms, self.now, &s.settings) {
                Err(Dropped::Late) => {
                    p.counts.late += 1;
                    Recorded::Dropped
                }
                Err(Dropped::Future) => {
                    p.counts.future += 1;
                    Recorded::Dropped
                }
                Ok(()) => {
                    let start = align(event.ts_ms, window_ms(&s.settings));
                    window(p, start, &s.schema, &s.profile)
                        .record_scored(&s.schema, &s.profile, event, scores);
                    p.counts.summarised += 1;
                    if event.label.is_none() && !matches!(event.prediction, Prediction::Failed) {
                        if let Some(id) = event.id.take() {
                            p.pending.push((
                                id,
                                Pending {
                                    window_start_ms: start,
                                    prediction: event.prediction,
                                    groups: std::mem::take(&mut event.groups),
                                    class_scores: scores.map(<[f64]>::to_vec),
                                },
                            ));
                        }
                    }
                    Recorded::Yes
                }
            }
        };
        p.changed = true;
        self.publish_due();
        recorded
    }

    /// Publishes the counters once [`PUBLISH_EVERY`] events have been received since the last
    /// time.
    fn publish_due(&mut self) {
        if self.partial.counts.received >= PUBLISH_EVERY {
            self.publish();
        }
    }

    /// Adds the counts gathered so far to the metrics now (an HTTP request does at its end,
    /// so its reply and the metrics agree when the reply is sent).
    pub fn publish(&mut self) {
        std::mem::take(&mut self.partial.counts).publish(&self.shard.metrics);
    }

    /// Records a batch of validated events given column by column (aims-core's
    /// [`Columns`]): each run of consecutive rows that fall in the same window is folded by
    /// [`WindowSummary::record_columns`], the same summary to the bit as [`record`](Self::record)
    /// of each row; late and future rows are dropped and counted as `record` does. `id(i)` is
    /// row `i`'s request id, asked only for an unlabelled row (which then waits for its label,
    /// as from `record`). The rows must have passed the `limits` length caps already
    /// (`ingest::lengths_ok`: the batch has no ids or category strings of its own to check).
    /// Returns the rows folded into a window; a batch that does not fit the schema errs and
    /// records nothing.
    pub fn record_columns(
        &mut self,
        block: &Columns<'_>,
        id: impl Fn(usize) -> Option<String>,
    ) -> Result<u64, ColumnsError> {
        let s = self.shard;
        block.check(&s.schema, &s.profile)?;
        let p = &mut *self.partial;
        let n = block.rows as u64;
        p.counts.received += n;
        p.counts.accepted += n;
        if s.shards.stopped.load(Ordering::Acquire) {
            p.counts.overload += n;
            return Ok(0);
        }
        let length = window_ms(&s.settings);
        let mut folded = 0u64;
        // Runs of admitted rows in one window, folded a run at a time.
        let mut run: Option<(usize, i64)> = None;
        let fold = |p: &mut Partial, from: usize, to: usize, start: i64| {
            let rows = block.slice(from..to).expect("a run within the batch");
            window(p, start, &s.schema, &s.profile)
                .record_columns(&s.schema, &s.profile, &rows)
                .expect("checked above");
            for i in from..to {
                let prediction = block.prediction_at(i);
                if block.label_at(i).is_some() || matches!(prediction, Prediction::Failed) {
                    continue;
                }
                if let Some(id) = id(i) {
                    p.pending.push((
                        id,
                        Pending {
                            window_start_ms: start,
                            prediction,
                            groups: block.groups_at(i, &s.schema).to_vec(),
                            class_scores: block.class_scores_at(i, &s.schema).map(<[f64]>::to_vec),
                        },
                    ));
                }
            }
            (to - from) as u64
        };
        for (i, &ts) in block.ts_ms.iter().enumerate() {
            let start = match admit(ts, self.now, &s.settings) {
                Err(Dropped::Late) => {
                    p.counts.late += 1;
                    None
                }
                Err(Dropped::Future) => {
                    p.counts.future += 1;
                    None
                }
                Ok(()) => Some(align(ts, length)),
            };
            match (run, start) {
                (Some((_, open)), Some(start)) if open == start => continue,
                _ => {}
            }
            if let Some((from, open)) = run {
                folded += fold(p, from, i, open);
            }
            run = start.map(|start| (i, start));
        }
        if let Some((from, open)) = run {
            folded += fold(p, from, block.rows, open);
        }
        p.counts.summarised += folded;
        p.changed = true;
        if p.counts.received >= PUBLISH_EVERY {
            std::mem::take(&mut p.counts).publish(&s.metrics);
        }
        Ok(folded)
    }

    /// Counts an event that failed validation before it reached the shard (by reason), in the
    /// current window's summary as the queue's `Rejected` does.
    pub fn rejected(&mut self, reason: aims_core::event::RejectReason) {
        let s = self.shard;
        let p = &mut *self.partial;
        p.counts.received += 1;
        s.metrics
            .events_rejected
            .with_label_values(&[reason.as_str()])
            .inc();
        let start = align(self.now, window_ms(&s.settings));
        window(p, start, &s.schema, &s.profile).record_rejected();
        p.changed = true;
    }
}

fn window_ms(s: &WindowSettings) -> i64 {
    i64::try_from(s.length.as_millis())
        .unwrap_or(i64::MAX / 4)
        .max(1)
}

/// The shard's summary of window `start`, made on first use.
fn window<'p>(
    p: &'p mut Partial,
    start: i64,
    schema: &ModelSchema,
    profile: &ReferenceProfile,
) -> &'p mut WindowSummary {
    // Almost always the last one used: events come in time order.
    let at = match p.windows.iter().rposition(|(s, _)| *s == start) {
        Some(i) => i,
        None => {
            p.windows.push((start, WindowSummary::new(schema, profile)));
            p.windows.len() - 1
        }
    };
    &mut p.windows[at].1
}
