//! The events endpoint's fold: each request's events are decoded and folded into window
//! summaries on the worker thread that serves the request, through a [`Shard`] taken from a
//! small pool, instead of crossing the queue to the one windowing task.
//!
//! Why: the windowing task folds alone (core's `WindowSummary::record`, most of the cost of an
//! event after its parse), so request handlers on two cores outran it, the queue filled (memory)
//! and then dropped events as overload. A shard folds where the event is parsed; the windowing
//! task merges the shards' summaries at ticks, window close, flush and shutdown, to the same
//! summaries to the bit (see [`crate::shard`]).
//!
//! - One shard per request in progress, taken from the pool for the request's synchronous
//!   decode-and-fold (no `.await` while it is held), so there are never more shards than
//!   worker threads folding at once; its lock is taken once per [`BATCH`] events, not per event,
//!   and the windowing task takes it only at ticks.
//! - Back-pressure instead of memory: a request is answered only once all its events are
//!   folded, so a client sending faster than the agent folds waits for its replies; and past
//!   `server.max_concurrent_requests` requests in progress the agent answers 503 with
//!   `Retry-After` (counted as `aims_agent_requests_rejected_total{reason="overloaded"}`).
//!   Nothing of the events' grows in memory besides the request bodies (budgeted) and one
//!   summary per shard and open window.
//! - Counts and replies are those of the queue path: every item is accepted (and recorded or
//!   dropped as late, future, or `overload` once the monitor has stopped) or rejected with its
//!   position, field and reason; the shard's counters reach the metrics before the reply is
//!   sent. Ids waiting for labels are in the shard, and the windowing task takes them before it
//!   applies any label, so a label posted after its prediction's reply always finds it.
//! - Shutdown: the server finishes the requests in progress before the monitor stops; the
//!   windowing task then stops the shards and takes everything they hold. An event reaching a
//!   stopped shard is dropped as `overload` and said so in its reply, never acknowledged and lost.

use std::sync::Mutex;

use aims_core::event::Event;

use crate::ingest::{self, BodyError, FastDecoder, ItemError, Position};
use crate::monitor::Recorder;
use crate::shard::{Recorded, Shard};
use crate::window::admit;

use super::Tally;

/// Events folded per lock of the request's shard: the windowing task never waits for more
/// than one batch.
pub(super) const BATCH: usize = 1024;

/// Idle shards kept; more only if more requests fold at once than this (a shard beyond it is
/// handed over to the windowing task when its request ends).
const KEPT: usize = 16;

/// The shards of the events endpoint.
pub(super) struct ShardPool {
    recorder: Recorder,
    idle: Mutex<Vec<Shard>>,
}

impl ShardPool {
    pub(super) fn new(recorder: Recorder) -> Self {
        Self {
            recorder,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Shard>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Shard {
        self.lock().pop().unwrap_or_else(|| self.recorder.shard())
    }

    fn give(&self, shard: Shard) {
        let mut idle = self.lock();
        if idle.len() < KEPT {
            idle.push(shard);
        }
    }

    /// Decodes every item of `body` and folds the valid ones into a shard, on this thread.
    pub(super) fn fold(
        &self,
        format: ingest::BodyFormat,
        body: &[u8],
        fast: &FastDecoder,
        now: i64,
    ) -> Result<Tally, BodyError> {
        let recorder = &self.recorder;
        let shard = self.take();
        let folded = Self::fold_into(recorder, &shard, format, body, fast, now);
        self.give(shard);
        folded
    }

    fn fold_into(
        recorder: &Recorder,
        shard: &Shard,
        format: ingest::BodyFormat,
        body: &[u8],
        fast: &FastDecoder,
        now: i64,
    ) -> Result<Tally, BodyError> {
        let mut tally = Tally::default();
        let mut batch = None;
        let mut in_batch = 0;
        let mut event = Event::blank(now);
        let counted = ingest::for_each_event_into(
            format,
            body,
            fast,
            recorder.limits(),
            now,
            &mut event,
            &mut |position: Position, decoded| {
                let b = batch.get_or_insert_with(|| shard.batch());
                match decoded {
                    // `for_each_event_into` has checked the length caps.
                    Ok((e, scores)) => match b.record_checked(e, scores) {
                        Recorded::Yes => tally.reply.accepted += 1,
                        Recorded::Dropped => {
                            tally.reply.accepted += 1;
                            let why = admit(e.ts_ms, b.now(), recorder.window())
                                .err()
                                .map_or("overload", |d| d.as_str());
                            tally.drop_item(position, why);
                        }
                        Recorded::Refused(err) => tally.reply.reject(ItemError::new(position, err)),
                    },
                    Err(err) => {
                        b.rejected(err.reason);
                        tally.reply.reject(ItemError::new(position, err));
                    }
                }
                in_batch += 1;
                if in_batch >= BATCH {
                    b.publish();
                    batch = None;
                    in_batch = 0;
                }
            },
        );
        if let Some(mut b) = batch {
            b.publish();
        }
        counted.map(|_| tally)
    }
}
