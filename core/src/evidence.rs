//! The evidence log's hash chain (ISO/IEC 42001 Clauses 7.5 and 9.1).
//!
//! Every record is stored as its canonical JSON together with
//! `hash = SHA-256(prev_hash || canonical_json)`, the first record chaining from [`GENESIS`].
//! Editing, removing or reordering any record breaks the chain at that record, and
//! [`verify`] names the first one that does not hold. Anchoring the head (sequence and hash)
//! somewhere outside, which the collector enables by exporting it as a metric and logging it,
//! makes truncation of the tail detectable too.
//!
//! This module is pure so that the collector, an offline verifier and a report generator all
//! check the same thing the same way.

pub mod payload;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::hash::{canonical_json, sha256_hex};

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record is evidence of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An objective version came into force (at start or by reload).
    ObjectiveVersion,
    /// One evaluation of one objective.
    Evaluation,
    /// A lifecycle transition (pending, firing, resolved, ...).
    Transition,
    /// A model stopped sending summaries for longer than `stale_after`.
    IngestionGap,
    /// The objectives file was reloaded (successfully or not).
    ConfigReload,
    /// The collector started.
    Startup,
    /// One attempt to deliver an alert notification, and its outcome.
    Notification,
    /// A step of a nonconformity (Clause 10.2): opened, acknowledged, cause, action, verdict.
    Nonconformity,
    /// A collector replica became the leader (the one that evaluates).
    LeaderChange,
    /// A report snapshot was kept: the hash of the state folded up to a record.
    ReportSnapshot,
}

impl Kind {
    /// The name stored beside the record and used in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ObjectiveVersion => "objective_version",
            Kind::Evaluation => "evaluation",
            Kind::Transition => "transition",
            Kind::IngestionGap => "ingestion_gap",
            Kind::ConfigReload => "config_reload",
            Kind::Startup => "startup",
            Kind::Notification => "notification",
            Kind::Nonconformity => "nonconformity",
            Kind::LeaderChange => "leader_change",
            Kind::ReportSnapshot => "report_snapshot",
        }
    }
}

/// The content of a record, before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it was recorded, ms since the epoch.
    pub at_ms: i64,
    /// What it is evidence of.
    pub kind: Kind,
    /// The facts, as typed by the writer.
    pub data: Value,
}

/// A record as stored: its canonical JSON and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Position in the log, from 1.
    pub seq: u64,
    /// The canonical JSON of the [`Record`].
    pub canonical: String,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// `SHA-256(prev_hash || canonical)`, lower-case hex.
    pub hash: String,
}

/// The chain's link function.
pub fn link(prev_hash: &str, canonical: &str) -> String {
    let mut bytes = Vec::with_capacity(prev_hash.len() + canonical.len());
    bytes.extend_from_slice(prev_hash.as_bytes());
    bytes.extend_from_slice(canonical.as_bytes());
    sha256_hex(&bytes)
}

impl Record {
    /// Seals the record after the one whose hash is `prev_hash`.
    pub fn seal(&self, prev_hash: &str) -> Sealed {
        let canonical = canonical_json(self);
        Sealed {
            seq: self.seq,
            hash: link(prev_hash, &canonical),
            prev_hash: prev_hash.to_owned(),
            canonical,
        }
    }
}

impl Sealed {
    /// The record inside, when the canonical JSON parses.
    pub fn record(&self) -> Result<Record, serde_json::Error> {
        serde_json::from_str(&self.canonical)
    }
}

/// The head of a verified chain, to be anchored elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Records verified.
    pub records: u64,
    /// Sequence of the last record (0 when empty).
    pub head_seq: u64,
    /// Hash of the last record ([`GENESIS`] when empty).
    pub head_hash: String,
}

/// The first record where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("evidence record {seq} is broken: {reason}")]
pub struct Broken {
    /// Its sequence number (as stored).
    pub seq: u64,
    /// What does not hold.
    pub reason: String,
}

/// Verifies a chain given in sequence order, starting from the first record ever written
/// (its `prev_hash` must be [`GENESIS`]) or, with `from`, from a trusted checkpoint.
pub fn verify<I: IntoIterator<Item = Sealed>>(
    records: I,
    from: Option<&Checkpoint>,
) -> Result<Checkpoint, Broken> {
    let mut head = from.cloned().unwrap_or(Checkpoint {
        records: 0,
        head_seq: 0,
        head_hash: GENESIS.to_owned(),
    });
    for r in records {
        let broken = |reason: String| Broken { seq: r.seq, reason };
        if r.seq != head.head_seq + 1 {
            return Err(broken(format!(
                "expected sequence {}, found {}",
                head.head_seq + 1,
                r.seq
            )));
        }
        if r.prev_hash != head.head_hash {
            return Err(broken(format!(
                "prev_hash {} does not match the hash of record {} ({})",
                r.prev_hash, head.head_seq, head.head_hash
            )));
        }
        let recomputed = link(&r.prev_hash, &r.canonical);
        if recomputed != r.hash {
            return Err(broken(format!(
                "stored hash {} differs from the recomputed {recomputed}: the record was altered",
                r.hash
            )));
        }
        let record = r
            .record()
            .map_err(|e| broken(format!("canonical JSON does not parse: {e}")))?;
        if record.seq != r.seq {
            return Err(broken(format!(
                "the record's content says sequence {}",
                record.seq
            )));
        }
        if canonical_json(&record) != r.canonical {
            return Err(broken("the stored JSON is not canonical".to_owned()));
        }
        head = Checkpoint {
            records: head.records + 1,
            head_seq: r.seq,
            head_hash: r.hash,
        };
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn chain(n: u64) -> Vec<Sealed> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let s = Record {
                    seq,
                    at_ms: 1_700_000_000_000 + seq as i64,
                    kind: Kind::Evaluation,
                    data: json!({"objective": "parity", "value": 0.5 + seq as f64 / 100.0}),
                }
                .seal(&prev);
                prev = s.hash.clone();
                s
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_to_its_head() {
        let c = chain(5);
        let head = verify(c.clone(), None).unwrap();
        assert_eq!(head.records, 5);
        assert_eq!(head.head_seq, 5);
        assert_eq!(head.head_hash, c[4].hash);
        assert_eq!(verify(Vec::new(), None).unwrap().head_hash, GENESIS);
    }

    #[test]
    fn verification_resumes_from_a_checkpoint() {
        let c = chain(6);
        let mid = verify(c[..3].to_vec(), None).unwrap();
        let end = verify(c[3..].to_vec(), Some(&mid)).unwrap();
        assert_eq!(end.head_seq, 6);
    }

    #[test]
    fn the_hash_is_sha256_of_prev_then_canonical() {
        let c = chain(1);
        assert_eq!(
            c[0].hash,
            sha256_hex(format!("{GENESIS}{}", c[0].canonical).as_bytes())
        );
        assert!(c[0].canonical.starts_with(r#"{"at_ms":"#));
    }

    #[test]
    fn a_removed_record_is_named() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(verify(c, None).unwrap_err().seq, 4);
    }

    proptest! {
        /// Changing any one byte of any record's canonical JSON is caught at that record.
        #[test]
        fn any_altered_byte_is_found(n in 1u64..12, pick in any::<prop::sample::Index>(), byte in any::<prop::sample::Index>(), delta in 1u8..=255) {
            let mut c = chain(n);
            let i = pick.index(c.len());
            let mut bytes = c[i].canonical.clone().into_bytes();
            let j = byte.index(bytes.len());
            bytes[j] = bytes[j].wrapping_add(delta);
            c[i].canonical = String::from_utf8_lossy(&bytes).into_owned();
            let err = verify(c, None).unwrap_err();
            prop_assert_eq!(err.seq, i as u64 + 1);
        }

        /// Changing a stored hash breaks that record (its own check fails).
        #[test]
        fn an_altered_hash_is_found(n in 1u64..12, pick in any::<prop::sample::Index>()) {
            let mut c = chain(n);
            let i = pick.index(c.len());
            c[i].hash = sha256_hex(b"forged");
            prop_assert_eq!(verify(c, None).unwrap_err().seq, i as u64 + 1);
        }
    }
}
