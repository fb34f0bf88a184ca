//! The request/response join: halves of an inference waiting for their partner, keyed by
//! `ce-id`.
//!
//! A fixed-size structure: a ring of `capacity` slots allocated once, an index map allocated
//! once at that capacity, and a ring of as many recently completed ids (to recognise duplicate
//! deliveries). Entries leave in arrival order: when their partner arrives, when they are older
//! than the TTL (an orphan), when `capacity` newer halves have arrived since (evicted, capacity),
//! or when the halves waiting would exceed `max_bytes` (evicted, bytes). Every way out but the
//! first is returned to the caller to count. Under any load the memory stays bounded by the
//! slot count and the byte budget.

use std::collections::HashMap;

/// Why an entry left the buffer without its partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unjoined {
    /// Older than the TTL.
    Expired,
    /// `capacity` newer halves arrived first.
    EvictedCapacity,
    /// The byte budget was needed for newer halves.
    EvictedBytes,
}

/// An entry that left the buffer unjoined, handed back to be counted.
#[derive(Debug)]
pub struct Gone<T> {
    /// Its id.
    pub id: String,
    /// Its half.
    pub half: T,
    /// Why.
    pub why: Unjoined,
}

/// What [`JoinBuffer::offer`] did with a half.
#[derive(Debug)]
pub enum Offer<T> {
    /// Its partner was waiting: here are both, the waiting one first, removed from the buffer.
    Joined(T, T),
    /// Stored to wait for its partner.
    Waiting,
    /// The same half was already waiting, or the id was completed recently: dropped.
    Duplicate,
    /// Larger than the whole byte budget: not stored.
    TooLarge,
}

struct Slot<T> {
    id: String,
    half: T,
    at_ms: i64,
    bytes: usize,
}

/// The ring of recently completed ids, with their completion times.
struct Done {
    ring: Vec<Option<String>>,
    at: HashMap<String, i64>,
    next: usize,
}

impl Done {
    fn new(capacity: usize) -> Self {
        Self {
            ring: (0..capacity).map(|_| None).collect(),
            at: HashMap::with_capacity(capacity),
            next: 0,
        }
    }

    fn insert(&mut self, id: String, now_ms: i64) {
        if let Some(t) = self.at.get_mut(&id) {
            *t = now_ms;
            return;
        }
        if let Some(old) = self.ring[self.next].take() {
            self.at.remove(&old);
        }
        self.at.insert(id.clone(), now_ms);
        self.ring[self.next] = Some(id);
        self.next = (self.next + 1) % self.ring.len();
    }

    fn contains(&self, id: &str, now_ms: i64, ttl_ms: i64) -> bool {
        self.at.get(id).is_some_and(|at| at + ttl_ms > now_ms)
    }
}

/// A bounded, TTL-limited map from `ce-id` to the half that arrived first.
pub struct JoinBuffer<T> {
    slots: Vec<Option<Slot<T>>>,
    index: HashMap<String, usize>,
    /// The oldest position that may hold an entry.
    tail: usize,
    /// Positions from `tail` up to the next write.
    span: usize,
    live: usize,
    bytes: usize,
    max_bytes: usize,
    ttl_ms: i64,
    done: Done,
}

impl<T> JoinBuffer<T> {
    /// A buffer of `capacity` slots (at least 1), `max_bytes` of halves, each kept `ttl_ms`.
    pub fn new(capacity: usize, max_bytes: usize, ttl_ms: i64) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: (0..capacity).map(|_| None).collect(),
            index: HashMap::with_capacity(capacity),
            tail: 0,
            span: 0,
            live: 0,
            bytes: 0,
            max_bytes,
            ttl_ms,
            done: Done::new(capacity),
        }
    }

    /// Halves waiting.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes of the halves waiting, as estimated by their owners.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn remove_at(&mut self, pos: usize) -> Option<Slot<T>> {
        let slot = self.slots[pos].take()?;
        self.index.remove(&slot.id);
        self.live -= 1;
        self.bytes -= slot.bytes;
        Some(slot)
    }

    /// Advances `tail` over one position, returning what it held.
    fn pop_tail(&mut self) -> Option<Slot<T>> {
        let slot = self.remove_at(self.tail);
        self.tail = (self.tail + 1) % self.capacity();
        self.span -= 1;
        slot
    }

    /// Forgets the halves older than the TTL at `now_ms`.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Gone<T>> {
        let mut gone = Vec::new();
        while self.span > 0 {
            match &self.slots[self.tail] {
                Some(s) if s.at_ms + self.ttl_ms > now_ms => break,
                _ => {}
            }
            if let Some(s) = self.pop_tail() {
                gone.push(Gone {
                    id: s.id,
                    half: s.half,
                    why: Unjoined::Expired,
                });
            }
        }
        gone
    }

    /// Offers a half arriving at `now_ms`. `is_partner` tells whether a waiting half completes
    /// it (a request for a response, and the reverse); `bytes` is its estimated size. Entries
    /// pushed out to make room are appended to `gone`.
    pub fn offer(
        &mut self,
        id: &str,
        half: T,
        bytes: usize,
        now_ms: i64,
        is_partner: impl Fn(&T) -> bool,
        gone: &mut Vec<Gone<T>>,
    ) -> Offer<T> {
        gone.extend(self.expire(now_ms));
        if let Some(&pos) = self.index.get(id) {
            let waiting = self.slots[pos].as_ref().map(|s| &s.half);
            if !waiting.is_some_and(&is_partner) {
                return Offer::Duplicate;
            }
            let slot = self.remove_at(pos).expect("indexed slots are occupied");
            self.done.insert(slot.id, now_ms);
            return Offer::Joined(slot.half, half);
        }
        if self.done.contains(id, now_ms, self.ttl_ms) {
            return Offer::Duplicate;
        }
        if bytes > self.max_bytes {
            return Offer::TooLarge;
        }
        while self.live > 0 && self.bytes + bytes > self.max_bytes {
            if let Some(s) = self.pop_tail() {
                gone.push(Gone {
                    id: s.id,
                    half: s.half,
                    why: Unjoined::EvictedBytes,
                });
            }
        }
        if self.span == self.capacity() {
            if let Some(s) = self.pop_tail() {
                gone.push(Gone {
                    id: s.id,
                    half: s.half,
                    why: Unjoined::EvictedCapacity,
                });
            }
        }
        if self.live == 0 {
            // Nothing waits: restart the ring so holes left by joins are not walked again.
            self.tail = 0;
            self.span = 0;
        }
        let pos = (self.tail + self.span) % self.capacity();
        self.slots[pos] = Some(Slot {
            id: id.to_owned(),
            half,
            at_ms: now_ms,
            bytes,
        });
        self.index.insert(id.to_owned(), pos);
        self.span += 1;
        self.live += 1;
        self.bytes += bytes;
        Offer::Waiting
    }

    /// Marks `id` completed without a join (its half was discarded), so a later partner or
    /// repeat is recognised as a duplicate.
    pub fn complete(&mut self, id: &str, now_ms: i64) {
        if let Some(&pos) = self.index.get(id) {
            self.remove_at(pos);
        }
        self.done.insert(id.to_owned(), now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Halves in tests: true for a request.
    fn offer(
        b: &mut JoinBuffer<bool>,
        id: &str,
        request: bool,
        now: i64,
    ) -> (Offer<bool>, Vec<Gone<bool>>) {
        let mut gone = Vec::new();
        let o = b.offer(id, request, 10, now, |w| *w != request, &mut gone);
        (o, gone)
    }

    #[test]
    fn either_half_may_come_first() {
        let mut b = JoinBuffer::new(4, 1000, 100);
        assert!(matches!(offer(&mut b, "a", true, 0).0, Offer::Waiting));
        assert!(matches!(
            offer(&mut b, "a", false, 1).0,
            Offer::Joined(true, false)
        ));
        assert!(matches!(offer(&mut b, "b", false, 2).0, Offer::Waiting));
        assert!(matches!(
            offer(&mut b, "b", true, 3).0,
            Offer::Joined(false, true)
        ));
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn duplicates_are_recognised_waiting_and_after_the_join() {
        let mut b = JoinBuffer::new(4, 1000, 100);
        offer(&mut b, "a", true, 0);
        assert!(matches!(offer(&mut b, "a", true, 1).0, Offer::Duplicate));
        assert!(matches!(
            offer(&mut b, "a", false, 2).0,
            Offer::Joined(true, false)
        ));
        assert!(matches!(offer(&mut b, "a", false, 3).0, Offer::Duplicate));
        assert!(matches!(offer(&mut b, "a", true, 4).0, Offer::Duplicate));
        // Past the TTL the id is new again.
        assert!(matches!(offer(&mut b, "a", true, 500).0, Offer::Waiting));
    }

    #[test]
    fn orphans_expire_in_arrival_order() {
        let mut b = JoinBuffer::new(8, 1000, 100);
        offer(&mut b, "a", true, 0);
        offer(&mut b, "b", false, 50);
        offer(&mut b, "c", true, 90);
        let gone = b.expire(120);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].id.as_str(), gone[0].why), ("a", Unjoined::Expired));
        let (_, gone) = offer(&mut b, "d", true, 160);
        assert_eq!(
            gone.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn capacity_and_bytes_evict_the_oldest() {
        let mut b = JoinBuffer::new(2, 1_000, 1_000);
        offer(&mut b, "a", true, 0);
        offer(&mut b, "b", true, 1);
        let (_, gone) = offer(&mut b, "c", true, 2);
        assert_eq!(
            (gone[0].id.as_str(), gone[0].why),
            ("a", Unjoined::EvictedCapacity)
        );
        let mut gone = Vec::new();
        assert!(matches!(
            b.offer("big", true, 1_001, 3, |_| false, &mut gone),
            Offer::TooLarge
        ));
        let mut b = JoinBuffer::new(10, 25, 1_000);
        offer(&mut b, "a", true, 0);
        offer(&mut b, "b", true, 1);
        let (_, gone) = offer(&mut b, "c", true, 2);
        assert_eq!(
            (gone[0].id.as_str(), gone[0].why),
            ("a", Unjoined::EvictedBytes)
        );
        assert_eq!(b.bytes(), 20);
    }

    proptest::proptest! {
        /// Every half offered is accounted for exactly once (joined, still waiting, gone with
        /// a reason, or dropped as a duplicate or too large), and the bounds hold after every
        /// step, whatever the order, ids, sizes and clock.
        #[test]
        fn every_half_is_accounted_for_and_the_bounds_hold(
            capacity in 1usize..8,
            max_bytes in 1usize..100,
            ttl in 1i64..50,
            steps in proptest::collection::vec((0u8..6, proptest::bool::ANY, 1usize..40, 0i64..10, proptest::bool::ANY), 0..200),
        ) {
            let mut b = JoinBuffer::new(capacity, max_bytes, ttl);
            let (mut offered, mut joined, mut dropped, mut gone_n) = (0u64, 0u64, 0u64, 0u64);
            let mut now = 0;
            for (id, request, bytes, dt, sweep) in steps {
                now += dt;
                if sweep {
                    gone_n += b.expire(now).len() as u64;
                    continue;
                }
                offered += 1;
                let mut gone = Vec::new();
                match b.offer(&format!("id{id}"), request, bytes, now, |w| *w != request, &mut gone) {
                    Offer::Joined(w, a) => {
                        proptest::prop_assert_ne!(w, a);
                        joined += 2;
                    }
                    Offer::Waiting => {}
                    Offer::Duplicate | Offer::TooLarge => dropped += 1,
                }
                gone_n += gone.len() as u64;
                proptest::prop_assert!(b.len() <= capacity);
                proptest::prop_assert!(b.bytes() <= max_bytes);
                proptest::prop_assert_eq!(b.index.len(), b.len());
            }
            proptest::prop_assert_eq!(offered, joined + dropped + gone_n + b.len() as u64);
        }
    }

    #[test]
    fn stays_bounded_under_any_sequence() {
        let mut b = JoinBuffer::new(16, 100, 50);
        let mut seed = 7u64;
        for now in 0..20_000i64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = format!("id-{}", (seed >> 33) % 40);
            let request = (seed >> 20) & 1 == 0;
            offer(&mut b, &id, request, now / 3);
            assert!(b.len() <= 16 && b.bytes() <= 100);
            assert_eq!(b.index.len(), b.live);
            assert!(b.index.capacity() < 64, "the index never grows");
        }
    }
}
