//! Evidence packs: a period's report and evidence records in one tar file, and their offline
//! verification.
//!
//! An auditor receives the pack and checks it without the database: every record's hash is
//! recomputed from its `prev_hash` and canonical JSON (the same code the collector verifies
//! with), the chain must run unbroken from the anchor (the record before the period) to the end
//! checkpoint, and the report inside must match its content hash and name the same checkpoints.
//! Comparing the anchor and end hashes with ones anchored elsewhere (the exported head metric,
//! a previous pack) closes the remaining gap: a wholesale rewrite of the period.

use std::io::{Read, Write};
use std::path::Path;

use aims_core::evidence::{self, Broken, Checkpoint, Sealed};
use serde::{Deserialize, Serialize};

use aims_core::checkpoint::{TreeHead, VerifierKey};

pub use crate::services::pack_record::{PackError, PackedRecord};
use crate::services::pack_snapshot;
pub use crate::services::pack_snapshot::{PackedSnapshot, SNAPSHOT};
use crate::services::pack_tree::{self, TreeProofs, TREE};
use crate::services::report::{ChainPoint, Report};
use crate::store::EvidenceRow;

/// The report as JSON.
pub const REPORT_JSON: &str = "report.json";
/// The report as HTML.
pub const REPORT_HTML: &str = "report.html";
/// The period's records, one JSON object per line.
pub const EVIDENCE: &str = "evidence.ndjson";
/// The anchor and end checkpoints.
pub const CHECKPOINTS: &str = "checkpoints.json";

/// The checkpoints of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// The record just before the period; the chain continues from it.
    pub anchor: ChainPoint,
    /// The period's last record.
    pub end: ChainPoint,
    /// Records in the pack.
    pub records: u64,
}

/// Writes `report` (JSON and HTML), the period's records, the checkpoints, the tree proofs and
/// the report snapshot the report started from to a tar file.
pub fn write(
    path: &Path,
    report: &Report,
    html: &str,
    anchor: &ChainPoint,
    rows: &[EvidenceRow],
    tree: Option<&TreeProofs>,
    snapshot: Option<&PackedSnapshot>,
) -> Result<(), PackError> {
    let io = |source| PackError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut ndjson = String::new();
    for r in rows {
        let line = PackedRecord {
            seq: r.sealed.seq,
            at_ms: r.at_ms,
            kind: r.kind.clone(),
            objective: r.objective.clone(),
            canonical: r.sealed.canonical.clone(),
            prev_hash: r.sealed.prev_hash.clone(),
            hash: r.sealed.hash.clone(),
        };
        ndjson.push_str(&serde_json::to_string(&line).expect("plain data serialises"));
        ndjson.push('\n');
    }
    let checkpoints = Checkpoints {
        anchor: anchor.clone(),
        end: rows.last().map_or_else(
            || anchor.clone(),
            |r| ChainPoint {
                seq: r.sealed.seq,
                hash: r.sealed.hash.clone(),
            },
        ),
        records: rows.len() as u64,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mtime = (report.document.to_ms / 1000).max(0) as u64;
    let mut members = vec![
        (REPORT_JSON, pretty(report)),
        (REPORT_HTML, html.to_owned()),
        (EVIDENCE, ndjson),
        (CHECKPOINTS, pretty(&checkpoints)),
    ];
    if let Some(t) = tree {
        members.push((TREE, pretty(t)));
    }
    if let Some(s) = snapshot {
        members.push((SNAPSHOT, pretty(s)));
    }
    for (name, body) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        tar.append_data(&mut header, name, body.as_bytes())
            .map_err(io)?;
    }
    tar.into_inner().and_then(|mut w| w.flush()).map_err(io)?;
    Ok(())
}

/// Pretty JSON of a pack document.
fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("plain data serialises")
}

/// What a verified pack establishes.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The chain from the anchor to the end.
    pub checkpoint: Checkpoint,
    /// The anchor.
    pub anchor: ChainPoint,
    /// The report's content hash, recomputed.
    pub content_hash: String,
    /// The signed tree head the records were proven against (when a key was given).
    pub tree: Option<TreeHead>,
    /// Issued checkpoints proven consistent with it.
    pub issued: usize,
    /// The report snapshot the report started from, checked (and, with a key, proven in the
    /// signed log).
    pub snapshot: Option<crate::services::report::SnapshotRef>,
}

/// Reads and verifies the pack at `path` without any database; with the collector's public
/// `key`, also its signed checkpoints and the proofs tying the records to them (a pack without
/// them then fails).
pub fn verify(path: &Path, key: Option<&VerifierKey>) -> Result<Verified, PackError> {
    let io = |source| PackError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let (mut report, mut html, mut evidence_text, mut checkpoints) = (None, None, None, None);
    let (mut tree, mut snapshot) = (None, None);
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let name = entry.path().map_err(io)?.to_string_lossy().into_owned();
        let mut body = String::new();
        entry.read_to_string(&mut body).map_err(io)?;
        let slot = match name.as_str() {
            REPORT_JSON => &mut report,
            REPORT_HTML => &mut html,
            EVIDENCE => &mut evidence_text,
            CHECKPOINTS => &mut checkpoints,
            TREE => &mut tree,
            SNAPSHOT => &mut snapshot,
            _ => continue,
        };
        if slot.replace(body).is_some() {
            return Err(PackError::Mismatch(format!(
                "the pack holds {name} twice; a reader could be shown either"
            )));
        }
    }
    let parse = |member: &'static str, text: Option<String>| -> Result<String, PackError> {
        text.ok_or(PackError::Missing(member))
    };
    let report: Report =
        serde_json::from_str(&parse(REPORT_JSON, report)?).map_err(|source| PackError::Parse {
            member: REPORT_JSON,
            line: None,
            source,
        })?;
    let html = parse(REPORT_HTML, html)?;
    let checkpoints: Checkpoints = serde_json::from_str(&parse(CHECKPOINTS, checkpoints)?)
        .map_err(|source| PackError::Parse {
            member: CHECKPOINTS,
            line: None,
            source,
        })?;
    let mut records = Vec::new();
    for (i, line) in parse(EVIDENCE, evidence_text)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: PackedRecord = serde_json::from_str(line).map_err(|source| PackError::Parse {
            member: EVIDENCE,
            line: Some(i + 1),
            source,
        })?;
        records.push(r);
    }
    let checkpoint = verify_records(&records, &checkpoints.anchor)?;
    // The snapshot the report's start state was read from: its bytes, its record's hash.
    let named = report.document.snapshot.clone();
    let snapshot: Option<PackedSnapshot> = match (&named, snapshot) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(PackError::Mismatch(format!(
                "the pack carries {SNAPSHOT} but its report names no snapshot"
            )))
        }
        (Some(n), None) => {
            return Err(PackError::Snapshot {
                seq: n.seq,
                reason: format!("the report started from it, but the pack has no {SNAPSHOT}"),
            })
        }
        (Some(n), Some(text)) => {
            let s: PackedSnapshot =
                serde_json::from_str(&text).map_err(|source| PackError::Parse {
                    member: SNAPSHOT,
                    line: None,
                    source,
                })?;
            pack_snapshot::verify(&s, n, checkpoints.anchor.seq, &records)?;
            Some(s)
        }
    };
    let (tree, issued) = match key {
        None => (None, 0),
        Some(key) => {
            let t: TreeProofs =
                serde_json::from_str(&parse(TREE, tree)?).map_err(|source| PackError::Parse {
                    member: TREE,
                    line: None,
                    source,
                })?;
            let head = pack_tree::verify(&t, key, checkpoints.anchor.seq, &records)?;
            if let Some(s) = &snapshot {
                pack_tree::verify_snapshot(&t, key, &head, s.seq, &s.record)?;
            }
            if report
                .document
                .checkpoint
                .as_ref()
                .is_some_and(|c| *c != t.checkpoint)
            {
                return Err(PackError::Checkpoint(format!(
                    "{REPORT_JSON} names another checkpoint than {TREE}"
                )));
            }
            (Some(head), t.issued.len())
        }
    };
    let end = ChainPoint {
        seq: checkpoint.head_seq,
        hash: checkpoint.head_hash.clone(),
    };
    if end != checkpoints.end || checkpoint.records != checkpoints.records {
        return Err(PackError::Mismatch(format!(
            "the records end at sequence {} ({}) after {} records, but checkpoints.json says sequence {} ({}) after {}",
            end.seq, end.hash, checkpoint.records, checkpoints.end.seq, checkpoints.end.hash, checkpoints.records
        )));
    }
    let d = &report.document;
    if d.chain_start != checkpoints.anchor || d.chain_end != end || d.records != checkpoint.records
    {
        return Err(PackError::Mismatch(
            "the report's evidence-chain checkpoints differ from the records in the pack".into(),
        ));
    }
    let content_hash = report.compute_hash();
    if content_hash != d.content_hash {
        return Err(PackError::Mismatch(format!(
            "report.json was altered: its content hash is {content_hash}, the report states {}",
            d.content_hash
        )));
    }
    if !html.contains(&content_hash) {
        return Err(PackError::Mismatch(
            "report.html does not carry the report's content hash".into(),
        ));
    }
    Ok(Verified {
        checkpoint,
        anchor: checkpoints.anchor,
        content_hash,
        tree,
        issued,
        snapshot: named,
    })
}

/// Checks the chain of `records` from `anchor`, and that each record's index columns agree
/// with its sealed content.
pub fn verify_records(
    records: &[PackedRecord],
    anchor: &ChainPoint,
) -> Result<Checkpoint, PackError> {
    let mut head = Checkpoint {
        records: 0,
        head_seq: anchor.seq,
        head_hash: anchor.hash.clone(),
    };
    for r in records {
        let sealed = Sealed {
            seq: r.seq,
            canonical: r.canonical.clone(),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        };
        let record = sealed.record().map_err(|e| Broken {
            seq: r.seq,
            reason: format!("canonical JSON does not parse: {e}"),
        })?;
        head = evidence::verify(std::iter::once(sealed), Some(&head))?;
        if record.kind.as_str() != r.kind || record.at_ms != r.at_ms {
            return Err(Broken {
                seq: r.seq,
                reason: "the kind or time columns disagree with the sealed record".into(),
            }
            .into());
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aims_core::evidence::{Kind, Record, GENESIS};
    use serde_json::json;

    fn chain(n: u64) -> Vec<PackedRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let s = Record {
                    seq,
                    at_ms: 1_000 * seq as i64,
                    kind: Kind::Evaluation,
                    data: json!({"objective": "o", "value": seq}),
                }
                .seal(&prev);
                prev = s.hash.clone();
                PackedRecord {
                    seq,
                    at_ms: 1_000 * seq as i64,
                    kind: "evaluation".into(),
                    objective: Some("o".into()),
                    canonical: s.canonical,
                    prev_hash: s.prev_hash,
                    hash: s.hash,
                }
            })
            .collect()
    }

    #[test]
    fn a_period_verifies_from_its_anchor_and_an_edit_is_named() {
        let all = chain(6);
        let anchor = ChainPoint {
            seq: 2,
            hash: all[1].hash.clone(),
        };
        let head = verify_records(&all[2..], &anchor).unwrap();
        assert_eq!((head.records, head.head_seq), (4, 6));
        let mut edited = all[2..].to_vec();
        edited[1].canonical = edited[1].canonical.replace("\"value\":4", "\"value\":5");
        match verify_records(&edited, &anchor) {
            Err(PackError::Broken(b)) => assert_eq!(b.seq, 4),
            other => panic!("expected record 4 broken, got {other:?}"),
        }
        let wrong_anchor = ChainPoint {
            seq: 2,
            hash: GENESIS.into(),
        };
        assert!(matches!(
            verify_records(&all[2..], &wrong_anchor),
            Err(PackError::Broken(b)) if b.seq == 3
        ));
        let mut relabelled = all.clone();
        relabelled[0].kind = "startup".into();
        assert!(matches!(
            verify_records(&relabelled, &ChainPoint { seq: 0, hash: GENESIS.into() }),
            Err(PackError::Broken(b)) if b.seq == 1
        ));
    }
}
