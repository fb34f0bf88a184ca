//! The late-label join buffer: recent predictions waiting for their ground truth.
//!
//! Bounded three ways: by entry count and by bytes (the oldest waiting prediction is evicted
//! first in both cases) and by age (a prediction older than the TTL is forgotten). Every
//! outcome is reported to the caller so that it is counted, never silent. The byte count is an
//! estimate of the heap held: ids (kept twice: map key and age order), groups, per-class
//! probabilities, and a fixed
//! overhead per entry and per order record.

use std::collections::{HashMap, VecDeque};

use aims_core::event::Prediction;

/// What a late label needs to be credited: its prediction's window, output and groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Start of the prediction's window, ms since the epoch.
    pub window_start_ms: i64,
    /// The model output.
    pub prediction: Prediction,
    /// The prediction's group per attribute.
    pub groups: Vec<u16>,
    /// The per-class probabilities of the prediction (multiclass models), credited with the
    /// label.
    pub class_scores: Option<Vec<f64>>,
}

/// The outcome of looking up a label's prediction.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Found in time; the entry is removed (a second label for the id is unmatched).
    Joined(Pending),
    /// Found, but older than the TTL.
    Expired,
    /// Not waiting: never seen, already labelled, evicted or expired and swept.
    Unmatched,
}

/// Counts of entries that left the buffer unlabelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Pushed out by the capacity bound.
    pub evicted: u64,
    /// Older than the TTL.
    pub expired: u64,
}

/// Estimated bytes of one map entry besides its id and groups.
const ENTRY_OVERHEAD: usize = 128;
/// Estimated bytes of one age-order record besides its id.
const ORDER_OVERHEAD: usize = 32;

/// A bounded, TTL-limited map from prediction id to [`Pending`].
#[derive(Debug)]
pub struct JoinBuffer {
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    ttl_ms: i64,
    entries: HashMap<String, (Pending, i64, u64)>,
    order: VecDeque<(String, u64)>,
    next_generation: u64,
}

impl JoinBuffer {
    /// A buffer of at most `capacity` entries, each kept at most `ttl_ms`.
    pub fn new(capacity: usize, ttl_ms: i64) -> Self {
        Self {
            capacity,
            max_bytes: usize::MAX,
            bytes: 0,
            ttl_ms,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
        }
    }

    /// Also bounds the estimated bytes held to `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Estimated heap bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn entry_cost(id: &str, p: &Pending) -> usize {
        ENTRY_OVERHEAD
            + id.len()
            + 2 * p.groups.len()
            + 8 * p.class_scores.as_ref().map_or(0, Vec::len)
    }

    fn order_cost(id: &str) -> usize {
        ORDER_OVERHEAD + id.len()
    }

    fn remove_entry(&mut self, id: &str) -> Option<(Pending, i64, u64)> {
        let e = self.entries.remove(id)?;
        self.bytes -= Self::entry_cost(id, &e.0);
        Some(e)
    }

    fn pop_order(&mut self) -> Option<(String, u64)> {
        let (id, g) = self.order.pop_front()?;
        self.bytes -= Self::order_cost(&id);
        Some((id, g))
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers a prediction received at `now_ms`; a repeated id replaces the older entry.
    pub fn insert(&mut self, id: String, pending: Pending, now_ms: i64) -> Removed {
        let mut removed = Removed::default();
        if self.capacity == 0 {
            removed.evicted = 1;
            return removed;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let cost = Self::entry_cost(&id, &pending) + Self::order_cost(&id);
        if cost > self.max_bytes {
            removed.evicted = 1;
            return removed;
        }
        self.remove_entry(&id);
        self.bytes += cost;
        self.entries
            .insert(id.clone(), (pending, now_ms, generation));
        self.order.push_back((id, generation));
        while self.entries.len() > self.capacity || self.bytes > self.max_bytes {
            match self.pop_front() {
                Some(_) => removed.evicted += 1,
                None => break,
            }
        }
        if self.order.len() > 2 * self.capacity.max(16) || self.bytes > self.max_bytes {
            let entries = &self.entries;
            let mut freed = 0;
            self.order.retain(|(id, g)| {
                let live = entries.get(id).is_some_and(|e| e.2 == *g);
                if !live {
                    freed += Self::order_cost(id);
                }
                live
            });
            self.bytes -= freed;
        }
        removed
    }

    /// Removes the oldest live entry, skipping stale order records; returns its insert time.
    fn pop_front(&mut self) -> Option<i64> {
        while let Some((id, generation)) = self.pop_order() {
            if self.entries.get(&id).is_some_and(|e| e.2 == generation) {
                return self.remove_entry(&id).map(|e| e.1);
            }
        }
        None
    }

    /// Forgets entries older than the TTL at `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> u64 {
        let mut expired = 0;
        while let Some((id, generation)) = self.order.front() {
            match self.entries.get(id) {
                Some((_, at, g)) if g == generation => {
                    if at + self.ttl_ms > now_ms {
                        break;
                    }
                    let id = id.clone();
                    self.remove_entry(&id);
                    expired += 1;
                }
                _ => {}
            }
            self.pop_order();
        }
        expired
    }

    /// Looks up and removes the prediction `id` for a label arriving at `now_ms`.
    pub fn take(&mut self, id: &str, now_ms: i64) -> Lookup {
        match self.remove_entry(id) {
            Some((pending, at, _)) if at + self.ttl_ms > now_ms => Lookup::Joined(pending),
            Some(_) => Lookup::Expired,
            None => Lookup::Unmatched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(w: i64) -> Pending {
        Pending {
            window_start_ms: w,
            prediction: Prediction::Class {
                class: 1,
                score: Some(0.7),
            },
            groups: vec![0],
            class_scores: None,
        }
    }

    #[test]
    fn joins_once() {
        let mut b = JoinBuffer::new(10, 1000);
        b.insert("a".into(), pending(60_000), 0);
        assert_eq!(b.take("a", 10), Lookup::Joined(pending(60_000)));
        assert_eq!(b.take("a", 10), Lookup::Unmatched);
        assert_eq!(b.take("zzz", 10), Lookup::Unmatched);
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let mut b = JoinBuffer::new(2, 1000);
        assert_eq!(b.insert("a".into(), pending(1), 0).evicted, 0);
        b.insert("b".into(), pending(2), 1);
        assert_eq!(b.insert("c".into(), pending(3), 2).evicted, 1);
        assert_eq!(b.len(), 2);
        assert_eq!(b.take("a", 3), Lookup::Unmatched);
        assert_eq!(b.take("b", 3), Lookup::Joined(pending(2)));
    }

    #[test]
    fn ttl_expires_by_sweep_and_on_lookup() {
        let mut b = JoinBuffer::new(10, 100);
        b.insert("a".into(), pending(1), 0);
        b.insert("b".into(), pending(1), 50);
        b.insert("c".into(), pending(1), 90);
        assert_eq!(b.expire(120), 1);
        assert_eq!(b.take("b", 160), Lookup::Expired);
        assert_eq!(b.take("c", 170), Lookup::Joined(pending(1)));
        assert!(b.is_empty());
    }

    #[test]
    fn bytes_evict_the_oldest_and_add_up() {
        let mut b = JoinBuffer::new(1_000, 1_000_000).with_max_bytes(10_000);
        let mut evicted = 0;
        for i in 0..500 {
            let id = format!("{i:04}{}", "x".repeat(196));
            evicted += b.insert(id, pending(i), i).evicted;
            assert!(b.bytes() <= 10_000, "{}", b.bytes());
        }
        // 200-byte ids cost 128 + 200 + 2 + 32 + 200 = 562 bytes: 17 fit.
        assert_eq!(b.len(), 17);
        assert_eq!(evicted, 500 - 17);
        assert_eq!(
            b.take(&format!("0499{}", "x".repeat(196)), 500),
            Lookup::Joined(pending(499))
        );
        assert_eq!(
            b.take(&format!("0000{}", "x".repeat(196)), 500),
            Lookup::Unmatched
        );
        assert_eq!(b.expire(2_000_000), 16);
        assert_eq!(b.bytes(), 0, "every byte given back");
        // A single entry larger than the bound is refused, counted as evicted.
        assert_eq!(b.insert("y".repeat(20_000), pending(0), 0).evicted, 1);
        assert!(b.is_empty());
    }

    #[test]
    fn repeated_ids_stay_bounded() {
        let mut b = JoinBuffer::new(4, 1_000_000);
        for i in 0..10_000 {
            b.insert(format!("id-{}", i % 3), pending(i), i);
        }
        assert_eq!(b.len(), 3);
        assert!(b.order.len() <= 2 * 16 + 1);
        assert_eq!(b.expire(2_000_000), 3);
    }
}
