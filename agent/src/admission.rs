//! Which window an event falls in, and whether it is still recorded: the windowing task's
//! settings and its admission rule, shared by the task, the request path (so a reply can say
//! which events were dropped) and the recording threads' shards.

use std::time::Duration;

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
    /// Join buffer byte bound (estimated heap).
    pub join_max_bytes: usize,
    /// How often the open windows are checkpointed to disk (zero: never).
    pub checkpoint: Duration,
}

/// Why a valid event is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its window closed more than `max_lateness` ago.
    Late,
    /// More than one window ahead of the clock.
    Future,
}

impl Dropped {
    /// The counter's reason label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Late => "late",
            Self::Future => "future",
        }
    }
}

/// Whether an event at `ts_ms` is still recorded at `now`: the rule of the windowing task,
/// also applied on the request path so the reply can say which events were dropped.
pub fn admit(ts_ms: i64, now: i64, s: &WindowSettings) -> Result<(), Dropped> {
    let window_ms = ms(s.length).max(1);
    let start = align(ts_ms, window_ms);
    if start > align(now, window_ms) + window_ms {
        return Err(Dropped::Future);
    }
    let due = start + window_ms + ms(s.grace) <= now;
    if due && start + window_ms + ms(s.max_lateness) < now {
        return Err(Dropped::Late);
    }
    Ok(())
}

/// The start of the window holding `ts_ms`.
pub fn align(ts_ms: i64, window_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(window_ms)
}

/// A duration in milliseconds, saturating far below `i64::MAX` so sums of them cannot overflow.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}
