//! In-memory rolling aggregates: per model and reference profile, one merged summary per
//! window start, across every agent and replica.
//!
//! Summaries are merged as they are committed (replica fan-in and late summaries both reduce
//! to merge), so an evaluation only merges the buckets inside its window instead of every
//! agent's summaries. The aggregates are rebuilt from the store at start; old buckets are
//! rolled up into hourly ones and dropped beyond the evaluation horizon, bounding memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aims_core::summary::MergeError;
use aims_core::WindowSummary;

use crate::store::HOUR_MS;

/// One bucket: every summary with the same window start and length.
#[derive(Debug, Clone)]
struct Bucket {
    summary: WindowSummary,
    versions: BTreeSet<String>,
}

/// Buckets of one (model, profile), keyed by (window start, window length).
#[derive(Debug, Default)]
struct Series {
    buckets: BTreeMap<(i64, u64), Bucket>,
    longest_ms: u64,
    /// The merge of every bucket held. Counts are non-negative, so when a new summary merges
    /// into the total without wrapping, it merges into any bucket or any window of buckets
    /// without wrapping too: the one check [`Aggregates::admit`] needs.
    total: Option<WindowSummary>,
}

impl Series {
    fn recompute_total(&mut self) {
        let mut total: Option<WindowSummary> = None;
        for b in self.buckets.values() {
            match &mut total {
                None => total = Some(b.summary.clone()),
                Some(t) => {
                    if let Err(e) = t.merge(&b.summary) {
                        tracing::error!(error = %e, "aggregate buckets no longer merge into their total");
                    }
                }
            }
        }
        self.total = total;
    }
}

/// The running totals of one batch of summaries being admitted, per (model, profile).
#[derive(Debug, Default)]
pub struct Pending {
    totals: HashMap<(String, String), WindowSummary>,
}

/// A window's merged summary and where it came from.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merge of every bucket overlapping the window.
    pub summary: WindowSummary,
    /// Model versions seen in the window.
    pub versions: BTreeSet<String>,
    /// Buckets merged.
    pub buckets: usize,
}

/// Every model's series.
#[derive(Debug, Default)]
pub struct Aggregates {
    series: HashMap<(String, String), Series>,
    last_received: HashMap<String, i64>,
    gate: Gate,
}

/// Orders the ingest writer's "commit a batch, then merge it" against a rebuild's journal
/// start and swap (see `App::refresh_aggregates`): the writer holds it across its commit, its
/// merge and its journal entry; the rebuild only while it starts the journal and while it
/// swaps, never during its read, so a committed batch is counted once, never both and never
/// neither. It belongs to the live aggregates and moves to their replacement
/// ([`Aggregates::replace`]), so every holder locks the same one.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// While a rebuild reads the store: what the writer committed and merged meanwhile, so the
    /// swap can add what the read missed (by summary id) without holding the gate for the read.
    journal: std::sync::Arc<parking_lot::Mutex<Option<Vec<Journaled>>>>,
    #[cfg(test)]
    pub(crate) pauses: crate::test_support::Pauses,
}

/// One summary the writer committed while a rebuild was reading the store.
#[derive(Debug, Clone)]
pub struct Journaled {
    /// Summary id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: String,
    /// Window start, ms.
    pub window_start_ms: i64,
    /// Window length, ms.
    pub window_ms: u64,
    /// The statistics.
    pub summary: WindowSummary,
    /// When this replica received it, ms.
    pub received_ms: i64,
}

impl Gate {
    /// Starts keeping what the writer commits (call with the gate held, before the read).
    pub fn start_journal(&self) {
        *self.journal.lock() = Some(Vec::new());
    }

    /// Stops keeping it and returns what was kept (call with the gate held, at the swap).
    pub fn take_journal(&self) -> Vec<Journaled> {
        self.journal.lock().take().unwrap_or_default()
    }

    /// Keeps `entry` if a rebuild is reading (the writer calls it with the gate held).
    pub fn journal(&self, entry: impl FnOnce() -> Journaled) {
        if let Some(j) = self.journal.lock().as_mut() {
            j.push(entry());
        }
    }

    /// Waits for the gate and holds it until the guard drops. `blocked` names the pause point
    /// passed when someone else holds it (tests see that a task is parked here).
    pub async fn lock(&self, blocked: &'static str) -> tokio::sync::OwnedMutexGuard<()> {
        match self.lock.clone().try_lock_owned() {
            Ok(held) => held,
            Err(_) => {
                self.point(blocked).await;
                self.lock.clone().lock_owned().await
            }
        }
    }

    /// A test-only pause point (nothing outside tests).
    #[allow(unused_variables)]
    pub async fn point(&self, name: &'static str) {
        #[cfg(test)]
        self.pauses.point(name).await;
    }
}

impl Aggregates {
    /// The gate ingest and rebuilds share (see [`Gate`]).
    pub fn gate(&self) -> Gate {
        self.gate.clone()
    }

    /// Puts `rebuilt` in place of these aggregates, keeping the gate.
    pub fn replace(&mut self, mut rebuilt: Aggregates) {
        rebuilt.gate = self.gate.clone();
        *self = rebuilt;
    }

    /// Whether `summary` may be merged into the aggregates of `model`, counting the summaries
    /// already admitted into `pending` (one batch): `Err` names the field whose count would
    /// wrap or whose sum would overflow. An admitted summary is added to `pending`.
    pub fn admit(
        &self,
        pending: &mut Pending,
        model: &str,
        summary: &WindowSummary,
    ) -> Result<(), String> {
        let key = (model.to_owned(), summary.profile_hash.clone());
        let total = match pending.totals.get_mut(&key) {
            Some(t) => t,
            None => {
                let held = self.series.get(&key).and_then(|s| s.total.clone());
                match held {
                    None => {
                        pending.totals.insert(key, summary.clone());
                        return Ok(());
                    }
                    Some(t) => pending.totals.entry(key).or_insert(t),
                }
            }
        };
        match total.merge(summary) {
            Ok(()) => Ok(()),
            Err(MergeError::Overflow(field)) => Err(field),
            // Another shape under the same hash cannot pass check_against; it is caught (and
            // skipped) by add.
            Err(_) => Ok(()),
        }
    }

    /// Merges a committed summary into its bucket. A summary that does not merge (another
    /// shape under the same profile hash cannot happen for validated input, and an overflow
    /// was refused by [`Aggregates::admit`]) is skipped and logged.
    pub fn add(
        &mut self,
        model: &str,
        model_version: &str,
        window_start_ms: i64,
        window_ms: u64,
        summary: &WindowSummary,
    ) {
        let series = self
            .series
            .entry((model.to_owned(), summary.profile_hash.clone()))
            .or_default();
        series.longest_ms = series.longest_ms.max(window_ms);
        let merged = match &mut series.total {
            None => {
                series.total = Some(summary.clone());
                Ok(())
            }
            Some(t) => t.merge(summary),
        };
        if let Err(e) = merged {
            tracing::error!(model, error = %e, "a committed summary does not merge into the aggregates; skipped");
            return;
        }
        match series.buckets.get_mut(&(window_start_ms, window_ms)) {
            Some(b) => {
                if let Err(e) = b.summary.merge(summary) {
                    tracing::error!(model, error = %e, "a committed summary does not merge into its bucket; skipped");
                    series.recompute_total();
                } else {
                    b.versions.insert(model_version.to_owned());
                }
            }
            None => {
                series.buckets.insert(
                    (window_start_ms, window_ms),
                    Bucket {
                        summary: summary.clone(),
                        versions: BTreeSet::from([model_version.to_owned()]),
                    },
                );
            }
        }
    }

    /// Notes that `model` delivered a summary at `at_ms` (collector clock).
    pub fn received(&mut self, model: &str, at_ms: i64) {
        let at = self.last_received.entry(model.to_owned()).or_insert(at_ms);
        *at = (*at).max(at_ms);
    }

    /// When `model` last delivered a summary.
    pub fn last_received(&self, model: &str) -> Option<i64> {
        self.last_received.get(model).copied()
    }

    /// Merges the buckets of (model, profile) that overlap `[from_ms, to_ms)`; `None` when
    /// there are none.
    pub fn window(
        &self,
        model: &str,
        profile_hash: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Option<Merged> {
        let series = self
            .series
            .get(&(model.to_owned(), profile_hash.to_owned()))?;
        let lowest = from_ms.saturating_sub(series.longest_ms as i64);
        let mut merged: Option<Merged> = None;
        for (&(start, len), b) in series.buckets.range((lowest, 0)..(to_ms, 0)) {
            if start.saturating_add(len as i64) <= from_ms {
                continue;
            }
            match &mut merged {
                None => {
                    merged = Some(Merged {
                        summary: b.summary.clone(),
                        versions: b.versions.clone(),
                        buckets: 1,
                    })
                }
                Some(m) => {
                    if m.summary.merge(&b.summary).is_ok() {
                        m.versions.extend(b.versions.iter().cloned());
                        m.buckets += 1;
                    }
                }
            }
        }
        merged
    }

    /// Rolls buckets ending before `rollup_before_ms` into hourly ones, and drops buckets
    /// ending before `drop_before_ms`. Lossless for any window aligned to hours, because merge
    /// is associative.
    pub fn compact(&mut self, rollup_before_ms: i64, drop_before_ms: i64) {
        for series in self.series.values_mut() {
            let old: Vec<(i64, u64)> = series
                .buckets
                .keys()
                .filter(|(start, len)| {
                    start + *len as i64 <= rollup_before_ms && (*len as i64) < HOUR_MS
                })
                .copied()
                .collect();
            for key in old {
                let Some(bucket) = series.buckets.remove(&key) else {
                    continue;
                };
                let hour = key.0.div_euclid(HOUR_MS) * HOUR_MS;
                match series.buckets.get_mut(&(hour, HOUR_MS as u64)) {
                    Some(h) => {
                        if h.summary.merge(&bucket.summary).is_ok() {
                            h.versions.extend(bucket.versions);
                        }
                    }
                    None => {
                        series.buckets.insert((hour, HOUR_MS as u64), bucket);
                    }
                }
                series.longest_ms = series.longest_ms.max(HOUR_MS as u64);
            }
            let held = series.buckets.len();
            series
                .buckets
                .retain(|(start, len), _| start.saturating_add(*len as i64) > drop_before_ms);
            if series.buckets.len() != held {
                series.recompute_total();
            }
        }
        self.series.retain(|_, s| !s.buckets.is_empty());
    }

    /// Number of buckets held, for the memory report.
    pub fn bucket_count(&self) -> usize {
        self.series.values().map(|s| s.buckets.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aims_testkit::fixtures::{one_feature as fixture, positive as event};

    #[test]
    fn windows_merge_buckets_and_roll_up_losslessly() {
        let (schema, profile) = fixture();
        let mut agg = Aggregates::default();
        for minute in 0..120 {
            let mut s = WindowSummary::new(&schema, &profile);
            s.record(&schema, &profile, &event(minute as f64));
            agg.add("m", "1", minute * 60_000, 60_000, &s);
        }
        let before = agg.window("m", &profile.hash, 0, 2 * HOUR_MS).unwrap();
        assert_eq!(before.summary.events, 120);
        assert_eq!(
            agg.window("m", &profile.hash, HOUR_MS, 2 * HOUR_MS)
                .unwrap()
                .summary
                .events,
            60
        );
        agg.compact(2 * HOUR_MS, 0);
        assert_eq!(agg.bucket_count(), 2);
        let after = agg.window("m", &profile.hash, 0, 2 * HOUR_MS).unwrap();
        assert_eq!(after.summary, before.summary);
        agg.compact(2 * HOUR_MS, HOUR_MS + 1);
        assert_eq!(agg.bucket_count(), 1);
        assert!(agg.window("m", "other", 0, HOUR_MS).is_none());
    }

    #[test]
    fn a_summary_whose_merge_would_wrap_is_not_admitted() {
        let (schema, profile) = fixture();
        let mut agg = Aggregates::default();
        let mut big = WindowSummary::new(&schema, &profile);
        big.record(&schema, &profile, &event(1.0));
        // Counts scaled past what fits twice (merge checks wrapping, not plausibility).
        big.events = u64::MAX / 2 + 1;
        let mut pending = Pending::default();
        assert_eq!(agg.admit(&mut pending, "m", &big), Ok(()));
        agg.add("m", "1", 0, 60_000, &big);
        // Another minute: its own bucket is empty, but the window over both would wrap.
        let mut pending = Pending::default();
        assert_eq!(agg.admit(&mut pending, "m", &big), Err("events".to_owned()));
        // Within one batch, the second of two small summaries that together would wrap.
        let mut agg = Aggregates::default();
        let mut pending = Pending::default();
        assert_eq!(agg.admit(&mut pending, "m", &big), Ok(()));
        assert!(agg.admit(&mut pending, "m", &big).is_err());
        // Once the held bucket is dropped, the total follows and the summary fits again.
        agg.add("m", "1", 0, 60_000, &big);
        agg.compact(0, HOUR_MS);
        assert_eq!(agg.bucket_count(), 0);
        assert_eq!(agg.admit(&mut Pending::default(), "m", &big), Ok(()));
        let _ = &mut agg;
    }
}
