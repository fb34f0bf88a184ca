//! The late-label join buffer: recent predictions waiting for their ground truth.
//!
//! Bounded twice: by entry count (the oldest waiting prediction is evicted first) and by age
//! (a prediction older than the TTL is forgotten). Both outcomes are reported to the caller so
//! that they are counted, never silent.

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

/// A bounded, TTL-limited map from prediction id to [`Pending`].
#[derive(Debug)]
pub struct JoinBuffer {
    capacity: usize,
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
            ttl_ms,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
        }
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
        self.entries
            .insert(id.clone(), (pending, now_ms, generation));
        self.order.push_back((id, generation));
        while self.entries.len() > self.capacity {
            match self.pop_front() {
                Some(_) => removed.evicted += 1,
                None => break,
            }
        }
        if self.order.len() > 2 * self.capacity.max(16) {
            let entries = &self.entries;
            self.order
                .retain(|(id, g)| entries.get(id).is_some_and(|e| e.2 == *g));
        }
        removed
    }

    /// Removes the oldest live entry, skipping stale order records; returns its insert time.
    fn pop_front(&mut self) -> Option<i64> {
        while let Some((id, generation)) = self.order.pop_front() {
            if self.entries.get(&id).is_some_and(|e| e.2 == generation) {
                return self.entries.remove(&id).map(|e| e.1);
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
                    self.entries.remove(&id);
                    expired += 1;
                }
                _ => {}
            }
            self.order.pop_front();
        }
        expired
    }

    /// Looks up and removes the prediction `id` for a label arriving at `now_ms`.
    pub fn take(&mut self, id: &str, now_ms: i64) -> Lookup {
        match self.entries.remove(id) {
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
