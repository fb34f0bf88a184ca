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
    /// Bumped whenever `total` changes, so a batch's running total from [`Aggregates::admit`]
    /// is taken as the new total only if nothing else (a compaction, a skipped merge) changed
    /// the total since it was read ([`Aggregates::add_admitted`]).
    generation: u64,
}

impl Series {
    fn recompute_total(&mut self) {
        self.generation += 1;
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

    /// Merges `summary` into its bucket (or starts the bucket). False when it does not merge:
    /// it is skipped, logged, and the total is recomputed from the buckets.
    fn insert_into_bucket(
        &mut self,
        model: &str,
        model_version: &str,
        window_start_ms: i64,
        window_ms: u64,
        summary: &WindowSummary,
    ) -> bool {
        match self.buckets.get_mut(&(window_start_ms, window_ms)) {
            Some(b) => {
                if let Err(e) = b.summary.merge(summary) {
                    tracing::error!(model, error = %e, "a committed summary does not merge into its bucket; skipped");
                    self.recompute_total();
                    false
                } else {
                    if !b.versions.contains(model_version) {
                        b.versions.insert(model_version.to_owned());
                    }
                    true
                }
            }
            None => {
                self.buckets.insert(
                    (window_start_ms, window_ms),
                    Bucket {
                        summary: summary.clone(),
                        versions: BTreeSet::from([model_version.to_owned()]),
                    },
                );
                true
            }
        }
    }
}

/// The running totals of one batch of summaries being admitted, per (model, profile).
#[derive(Debug, Default)]
pub struct Pending {
    totals: HashMap<(String, String), Running>,
}

/// One (model, profile)'s running total in a batch: the total held when the batch was first
/// admitted, merged with every summary admitted since, in the order admitted.
#[derive(Debug)]
struct Running {
    total: WindowSummary,
    /// The aggregates' epoch and the series' generation when its total was read (`None`: there
    /// was no series).
    base: (u64, Option<u64>),
    /// Whether summaries of the batch were added into their buckets only.
    taken: bool,
    /// Summaries still to be added ([`Aggregates::add_admitted`]) before `total` may replace
    /// the series' total.
    outstanding: usize,
    /// False once any summary of the batch did not go into `total` exactly as
    /// [`Aggregates::add`] would merge it (a merge error other than an overflow, a duplicate,
    /// a summary added out of order): then the total is merged summary by summary as before.
    usable: bool,
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
    /// Bumped when these aggregates are replaced by a rebuild (see [`Series::generation`]).
    epoch: u64,
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
        rebuilt.epoch = self.epoch + 1;
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
        let running = match pending.totals.get_mut(&key) {
            Some(r) => r,
            None => {
                let series = self.series.get(&key);
                let held = series.and_then(|s| s.total.clone());
                let base = (self.epoch, series.map(|s| s.generation));
                match held {
                    None => {
                        pending.totals.insert(
                            key,
                            Running {
                                total: summary.clone(),
                                // A series with buckets but no total cannot be: take no chances.
                                usable: series.is_none(),
                                base,
                                taken: false,
                                outstanding: 1,
                            },
                        );
                        return Ok(());
                    }
                    Some(t) => pending.totals.entry(key).or_insert(Running {
                        total: t,
                        base,
                        taken: false,
                        outstanding: 0,
                        usable: true,
                    }),
                }
            }
        };
        match running.total.merge(summary) {
            Ok(()) => {
                running.outstanding += 1;
                Ok(())
            }
            // A refused summary is not in the batch and changed nothing.
            Err(MergeError::Overflow(field)) => Err(field),
            // Another shape under the same hash cannot pass check_against; it is caught (and
            // skipped) by add.
            Err(_) => {
                running.usable = false;
                Ok(())
            }
        }
    }

    /// Marks the summaries of a committed batch that turned out not new (`fresh` false): they
    /// are in the batch's running totals but will not be added, so the totals of their
    /// (model, profile) are not taken as is.
    pub fn not_added(pending: &mut Pending, model: &str, summary: &WindowSummary) {
        if let Some(r) = pending
            .totals
            .get_mut(&(model.to_owned(), summary.profile_hash.clone()))
        {
            r.usable = false;
        }
    }

    /// [`Aggregates::add`] for a summary admitted into `pending`, in the order admitted, with
    /// [`Aggregates::not_added`] called for the batch's duplicates first. When every summary of
    /// its (model, profile) in the batch is added, in order, and nothing else changed the
    /// series' total since `admit` read it, the batch's running total (the same merges in the
    /// same order, so the same bits) becomes the new total once the last one is added, and the
    /// summaries are merged only into their buckets: two merges per summary instead of three.
    /// Otherwise it is [`Aggregates::add`].
    pub fn add_admitted(
        &mut self,
        pending: &mut Pending,
        model: &str,
        model_version: &str,
        window_start_ms: i64,
        window_ms: u64,
        summary: &WindowSummary,
    ) {
        let key = (model.to_owned(), summary.profile_hash.clone());
        let now = (self.epoch, self.series.get(&key).map(|s| s.generation));
        let Some(running) = pending.totals.get_mut(&key) else {
            self.add(model, model_version, window_start_ms, window_ms, summary);
            return;
        };
        if !(running.usable && running.base == now && running.outstanding > 0) {
            running.usable = false;
            if running.taken {
                // Summaries already added went into their buckets only: bring the total back
                // to the merge of the buckets before merging this one as usual.
                running.taken = false;
                if let Some(series) = self.series.get_mut(&key) {
                    series.recompute_total();
                }
            }
            self.add(model, model_version, window_start_ms, window_ms, summary);
            return;
        }
        running.outstanding -= 1;
        running.taken = true;
        let series = self.series.entry(key.clone()).or_default();
        series.longest_ms = series.longest_ms.max(window_ms);
        if !series.insert_into_bucket(model, model_version, window_start_ms, window_ms, summary) {
            // Skipped, and the total was recomputed from the buckets (those already added
            // included): the rest of the batch is merged as usual.
            running.usable = false;
            running.taken = false;
            return;
        }
        if running.outstanding == 0 {
            if let Some(done) = pending.totals.remove(&key) {
                series.total = Some(done.total);
                series.generation += 1;
            }
        } else {
            // The total lags until the last one is added; nothing reads it meanwhile (the
            // caller holds the aggregates' write lock for the whole batch).
            running.base = (self.epoch, Some(series.generation));
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
        series.generation += 1;
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
        series.insert_into_bucket(model, model_version, window_start_ms, window_ms, summary);
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

    /// The total of (`m`, the profile) and the merge of its buckets, recomputed from scratch.
    fn total_and_buckets(agg: &Aggregates, hash: &str) -> (WindowSummary, WindowSummary) {
        let series = &agg.series[&("m".to_owned(), hash.to_owned())];
        let mut fresh = Series {
            buckets: series.buckets.clone(),
            ..Series::default()
        };
        fresh.recompute_total();
        (series.total.clone().unwrap(), fresh.total.unwrap())
    }

    /// Summary `n` of a few events whose values do not add up exactly in floating point, so a
    /// merge in another order would show in the bits.
    fn uneven(n: usize) -> WindowSummary {
        let (schema, profile) = fixture();
        let mut s = WindowSummary::new(&schema, &profile);
        for k in 0..=(n % 4) {
            let x = 0.1 * (n as f64 + 1.0) + 1e-7 * k as f64 + [0.0, 1e15, 3.3][n % 3];
            s.record(&schema, &profile, &event(x));
        }
        s
    }

    /// The batch's running total taken as the new total (two merges per summary) is the same,
    /// to the bit, as merging every summary into the total (three), over batches with several
    /// buckets, a summary whose batch also holds a duplicate, and a series that is new.
    #[test]
    fn the_batch_total_taken_as_is_has_the_same_bits_as_merging_each() {
        let mut three = Aggregates::default();
        let mut two = Aggregates::default();
        let hash = uneven(0).profile_hash.clone();
        let mut n = 0;
        for batch in 0..6 {
            let summaries: Vec<(WindowSummary, i64, bool)> = (0..5)
                .map(|k| {
                    n += 1;
                    // Batch 3 holds a summary that turns out a duplicate (not added).
                    (
                        uneven(n),
                        ((n * 7) % 4) as i64 * 60_000,
                        !(batch == 3 && k == 2),
                    )
                })
                .collect();
            let mut pending = Pending::default();
            for (s, _, _) in &summaries {
                assert_eq!(two.admit(&mut pending, "m", s), Ok(()));
            }
            for (s, _, new) in &summaries {
                if !new {
                    Aggregates::not_added(&mut pending, "m", s);
                }
            }
            for (s, start, new) in &summaries {
                if *new {
                    three.add("m", "1", *start, 60_000, s);
                    two.add_admitted(&mut pending, "m", "1", *start, 60_000, s);
                }
            }
            let (a, b) = (
                total_and_buckets(&three, &hash),
                total_and_buckets(&two, &hash),
            );
            let text = |s: &WindowSummary| serde_json::to_string(s).unwrap();
            assert_eq!(text(&a.0), text(&b.0), "batch {batch}: totals");
            assert_eq!(text(&a.1), text(&b.1), "batch {batch}: buckets");
            assert_eq!(three.bucket_count(), two.bucket_count());
        }
        assert_eq!(
            total_and_buckets(&two, &hash).0.events,
            (1..=30)
                .filter(|n| *n != 18)
                .map(|n| (n % 4 + 1) as u64)
                .sum::<u64>()
        );
    }

    /// Admits `batch` (summaries `numbers` of [`uneven`]) into `agg`, lets `between` change the
    /// aggregates, then adds the batch at `HOUR_MS`: the total must stay the merge of the
    /// buckets, and hold the events of `held` (the one summary left before) and of the batch.
    fn admit_change_add(
        agg: &mut Aggregates,
        numbers: std::ops::Range<usize>,
        held: usize,
        between: impl FnOnce(&mut Aggregates),
    ) {
        let hash = uneven(0).profile_hash.clone();
        let batch: Vec<WindowSummary> = numbers.clone().map(uneven).collect();
        let mut pending = Pending::default();
        for s in &batch {
            assert_eq!(agg.admit(&mut pending, "m", s), Ok(()));
        }
        between(agg);
        for s in &batch {
            agg.add_admitted(&mut pending, "m", "1", HOUR_MS, 60_000, s);
        }
        let (total, buckets) = total_and_buckets(agg, &hash);
        assert_eq!(total, buckets);
        let events: u64 = std::iter::once(held)
            .chain(numbers)
            .map(|n| uneven(n).events)
            .sum();
        assert_eq!(total.events, events);
    }

    /// Maintenance compacts (and drops buckets, which recomputes the total) without the ingest
    /// writer's gate, between a batch's admission and its merge: the running total read before
    /// it is stale and must not become the total; the total stays the merge of the buckets.
    #[test]
    fn a_compaction_between_admission_and_merge_keeps_the_total_right() {
        let mut agg = Aggregates::default();
        for minute in 0..3 {
            agg.add("m", "1", minute * 60_000, 60_000, &uneven(minute as usize));
        }
        // Drops the first two minutes (they end by 120,000): the total is recomputed.
        admit_change_add(&mut agg, 10..14, 2, |agg| {
            agg.compact(0, 120_001);
            assert_eq!(agg.bucket_count(), 1);
        });

        // A rebuild that replaced the aggregates between admission and merge: the same.
        admit_change_add(&mut agg, 20..23, 2, |agg| {
            let mut rebuilt = Aggregates::default();
            rebuilt.add("m", "1", HOUR_MS, 60_000, &uneven(2));
            agg.replace(rebuilt);
        });
    }
}
