//! Evidence packs carry their checkpoints, signatures and proofs, and `evidence verify --pack
//! P --key pub.key` checks them offline, on the real binary: the period's records must be
//! exactly the signed tree's leaves after the anchor, and the collector's issued checkpoints
//! consistent with it. Any byte changed in the proofs, a record edited or the wrong key fails,
//! naming what failed. The report snapshot a pack's report started from travels in the pack,
//! tied to the signed checkpoint by its record's inclusion proof: an edited snapshot fails,
//! naming it.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use aims_collector::services::pack;
use aims_core::checkpoint::{SigningKey, VerifierKey};
use common::*;

const LONG: Duration = Duration::from_secs(60);

/// Every record's (seq, at_ms), in order.
fn times(db: &Path) -> Vec<(u64, i64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows = sqlx::query("SELECT seq, at_ms FROM evidence ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.get::<i64, _>("seq") as u64, r.get::<i64, _>("at_ms")))
            .collect()
    })
}

/// Keeps a report snapshot after the last record, as the collector does every 10,000 records
/// (in process, on the stopped collector's database); returns its sequence and the sequence
/// of the `report_snapshot` record that holds its hash, recorded at least 2 ms later.
fn keep_snapshot(db: &Path) -> (u64, u64) {
    use aims_collector::evidence::EvidenceLog;
    use aims_collector::services::report::snapshot;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store =
            aims_collector::store::Store::open(db, aims_collector::config::Synchronous::Normal)
                .await
                .unwrap();
        let (head, _) = store.evidence_head().await.unwrap().unwrap();
        let last = store.evidence_record(head).await.unwrap().unwrap().at_ms;
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let log = EvidenceLog::open(store.clone(), aims_collector::metrics::Metrics::new())
            .await
            .unwrap();
        snapshot::refresh_every(&log, &store, head, 1, wall.max(last + 2))
            .await
            .unwrap();
        let kept = store
            .report_snapshot_at_or_below(head)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((kept.seq, kept.record), (head, head + 1));
        store.close().await;
        (head, head + 1)
    })
}

/// Exports the pack of `from ..= to` (ms) to `out` with the test's configuration.
fn export(c: &Collector, from: i64, to: i64, out: &Path) {
    let export = c.command(&[
        "evidence",
        "export",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
}

/// Runs the binary without a configuration (an auditor's offline check).
fn offline(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

fn members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            (name, body)
        })
        .collect()
}

fn write(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, body) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, body.as_slice()).unwrap();
    }
    tar.finish().unwrap();
}

/// The pack with member `name` changed by `edit`.
fn altered(
    original: &[(String, Vec<u8>)],
    name: &str,
    out: &Path,
    edit: impl FnOnce(&mut Vec<u8>),
) {
    let mut m = original.to_vec();
    edit(&mut m.iter_mut().find(|(n, _)| n == name).unwrap().1);
    write(out, &m);
}

#[test]
fn packs_carry_signed_checkpoints_and_proofs_that_fail_on_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("evidence.key");
    let extra = format!(
        "[evidence]\norigin = \"test.example/evidence\"\nkey_file = \"{}\"\n",
        key_file.display()
    );
    // On SQLite whatever AIMS_TEST_BACKEND says: the test reads and edits the file itself.
    let mut c = Collector::prepare_sqlite(BIN, dir.path(), &extra);
    let out = c.command(&["evidence", "keygen", "--output", key_file.to_str().unwrap()]);
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap();
    let pub_file = dir.path().join("pub.key");
    std::fs::write(&pub_file, &public).unwrap();
    let verifier = VerifierKey::parse(&public).unwrap();

    // Two runs: each issues a checkpoint at start and at shutdown; between them, a report
    // snapshot of the first run's log is kept (its hash in a `report_snapshot` record).
    let db = dir.path().join("data/collector.db");
    let mut kept = None;
    for run in 0..2 {
        c.start();
        let before = c.evidence(None).len();
        wait_until(LONG, "more evidence", || {
            (c.evidence(None).len() > before + 6).then_some(())
        });
        assert!(c.stop().unwrap().success());
        if run == 0 {
            kept = Some(keep_snapshot(&db));
        }
    }
    let (snap, snap_record) = kept.unwrap();
    let t = times(&db);
    let at = |seq: u64| t[seq as usize - 1].1;
    // A period starting just after the snapshot's record, in the middle of the log, so the
    // pack has an anchor before it and its report starts from the snapshot.
    let from = at(snap_record) + 1;
    let pack_path = dir.path().join("pack.tar");
    let p = pack_path.to_str().unwrap();
    export(&c, from, t.last().unwrap().1 + 1, &pack_path);

    let k = pub_file.to_str().unwrap();
    let ok = offline(&["evidence", "verify", "--pack", p, "--key", k]);
    let stdout = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("records proven"), "{stdout}");
    let verified = pack::verify(&pack_path, Some(&verifier)).unwrap();
    let head = verified.tree.clone().unwrap();
    assert!(verified.anchor.seq > 0, "the period starts after record 1");
    assert_eq!(head.size, verified.checkpoint.head_seq);
    assert!(
        verified.issued >= 2,
        "the checkpoint in force at the period's start and a later one: {}",
        verified.issued
    );
    // Without the key, the chain checks still run (and pass).
    assert!(offline(&["evidence", "verify", "--pack", p])
        .status
        .success());
    // The report started from the snapshot, and the pack carries it, proven.
    let named = verified
        .snapshot
        .clone()
        .expect("the report names its snapshot");
    assert_eq!((named.seq, named.record), (snap, snap_record));
    assert!(
        verified.anchor.seq >= snap_record,
        "the record precedes the period"
    );
    assert!(
        stdout.contains(&format!(
            "report snapshot OK: the report started from the snapshot after record {snap}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("proven in the signed log"), "{stdout}");

    // The snapshot's record in the period, and after it (an empty period between the
    // snapshot and its record): both verify, the latter through a later signed checkpoint.
    for (from, to, inside) in [
        (at(snap_record), t.last().unwrap().1 + 1, true),
        (at(snap) + 1, at(snap_record) - 1, false),
    ] {
        let other = dir.path().join("other.tar");
        export(&c, from, to, &other);
        let v = pack::verify(&other, Some(&verifier)).unwrap();
        assert_eq!(v.snapshot.as_ref().map(|s| s.record), Some(snap_record));
        assert_eq!(v.anchor.seq, snap, "the period starts after the snapshot");
        let tree: aims_collector::services::pack_tree::TreeProofs = serde_json::from_slice(
            &members(&other)
                .iter()
                .find(|(n, _)| n == "tree.json")
                .unwrap()
                .1,
        )
        .unwrap();
        let proof = tree.snapshot.expect("the snapshot record's proof");
        assert_eq!(proof.later.is_none(), inside, "{proof:?}");
        assert_eq!(v.checkpoint.records > 0, inside);
    }

    let original = members(&pack_path);
    let bad = dir.path().join("bad.tar");
    let b = bad.to_str().unwrap();
    let fails = |what: &str| {
        let out = offline(&["evidence", "verify", "--pack", b, "--key", k]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "should fail naming {what}: {err}"
        );
        assert!(err.contains(what), "should name {what}: {err}");
        err
    };

    // Another key: the signature.
    let other = SigningKey::from_seed("test.example/evidence", [9; 32]).unwrap();
    let other_pub = dir.path().join("other.key");
    std::fs::write(&other_pub, other.verifier().to_text()).unwrap();
    let out = offline(&[
        "evidence",
        "verify",
        "--pack",
        p,
        "--key",
        other_pub.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("(signature)"), "{err}");

    // One byte of a record's canonical JSON: the record, by number.
    altered(&original, pack::EVIDENCE, &bad, |body| {
        let text = String::from_utf8(body.clone()).unwrap();
        let at = text.find("at_ms\\\":").unwrap() + 8;
        body[at] = if body[at] == b'1' { b'2' } else { b'1' };
    });
    let err = fails("record");
    assert!(
        err.contains(&format!("record {}", verified.anchor.seq + 1)),
        "{err}"
    );

    // The pack's checkpoint with one byte of its signature changed: the signature.
    altered(&original, "tree.json", &bad, |body| {
        let text = String::from_utf8(body.clone()).unwrap();
        let at = text.find("\\u2014").or_else(|| text.find('—')).unwrap() + 30;
        body[at] = if body[at] == b'A' { b'B' } else { b'A' };
    });
    fails("(signature)");

    // Every byte of tree.json, one at a time (a sample, to keep the test short): never passes.
    let tree = &original.iter().find(|(n, _)| n == "tree.json").unwrap().1;
    let step = (tree.len() / 150).max(1);
    for i in (0..tree.len()).step_by(step) {
        altered(&original, "tree.json", &bad, |body| {
            body[i] = match body[i] {
                b'0' => b'1',
                b'"' => b'x',
                _ => b'0',
            }
        });
        let r = pack::verify(&bad, Some(&verifier));
        assert!(
            r.is_err(),
            "tree.json with byte {i} ({:?}) changed still verifies",
            tree[i] as char
        );
    }

    // A tree edge that does not lead to the signed root: the records' proof fails.
    altered(&original, "tree.json", &bad, |body| {
        let mut t: serde_json::Value = serde_json::from_slice(body).unwrap();
        let peak = t["prefix_peaks"][0].as_str().unwrap().to_owned();
        let flipped = if peak.starts_with('0') { "1" } else { "0" };
        t["prefix_peaks"][0] = format!("{flipped}{}", &peak[1..]).into();
        *body = serde_json::to_vec(&t).unwrap();
    });
    fails("(record)");

    // The snapshot, one byte of its state changed: the snapshot, by record, with or without
    // the key.
    let snapshot_member = &original
        .iter()
        .find(|(n, _)| n == pack::SNAPSHOT)
        .unwrap()
        .1;
    let mut s: pack::PackedSnapshot = serde_json::from_slice(snapshot_member).unwrap();
    let named_snapshot = format!("report snapshot at record {snap}");
    let edited_state = s.state.replacen("\"seq\":", "\"seq\": ", 1);
    assert_ne!(edited_state, s.state);
    let mut edited = s.clone();
    edited.state = edited_state.clone();
    altered(&original, pack::SNAPSHOT, &bad, |body| {
        *body = serde_json::to_vec(&edited).unwrap()
    });
    let err = fails("(snapshot)");
    assert!(
        err.contains(&named_snapshot) && err.contains("was edited"),
        "{err}"
    );
    let out = offline(&["evidence", "verify", "--pack", b]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&named_snapshot));

    // No snapshot.json: the snapshot the report started from is missing.
    let without: Vec<_> = original
        .iter()
        .filter(|(n, _)| n != pack::SNAPSHOT)
        .cloned()
        .collect();
    write(&bad, &without);
    let err = fails("(snapshot)");
    assert!(err.contains("snapshot.json"), "{err}");

    // The operator's forgery: the state edited, its record re-sealed with the new hash, and
    // the report re-hashed to name it. Every self-contained check passes (without the key it
    // verifies), but the re-sealed record is not the one in the signed tree: with the key,
    // the snapshot fails.
    let forged_sha = aims_core::hash::sha256_hex(edited_state.as_bytes());
    let mut record = aims_core::evidence::Sealed {
        seq: s.record.seq,
        canonical: s.record.canonical.clone(),
        prev_hash: s.record.prev_hash.clone(),
        hash: s.record.hash.clone(),
    }
    .record()
    .unwrap();
    record.data["sha256"] = forged_sha.clone().into();
    let resealed = record.seal(&s.record.prev_hash);
    s.state = edited_state;
    s.record.canonical = resealed.canonical;
    s.record.hash = resealed.hash;
    let report_member = &original
        .iter()
        .find(|(n, _)| n == pack::REPORT_JSON)
        .unwrap()
        .1;
    let mut report: aims_collector::services::report::Report =
        serde_json::from_slice(report_member).unwrap();
    let old_hash = report.document.content_hash.clone();
    report.document.snapshot.as_mut().unwrap().sha256 = forged_sha;
    report.document.content_hash = report.compute_hash();
    let html = &original
        .iter()
        .find(|(n, _)| n == pack::REPORT_HTML)
        .unwrap()
        .1;
    let html = String::from_utf8(html.clone())
        .unwrap()
        .replace(&old_hash, &report.document.content_hash);
    let mut forged = original.clone();
    for (name, body) in forged.iter_mut() {
        match name.as_str() {
            pack::SNAPSHOT => *body = serde_json::to_vec(&s).unwrap(),
            pack::REPORT_JSON => *body = serde_json::to_vec(&report).unwrap(),
            pack::REPORT_HTML => *body = html.clone().into_bytes(),
            _ => {}
        }
    }
    write(&bad, &forged);
    assert!(
        offline(&["evidence", "verify", "--pack", b])
            .status
            .success(),
        "without the key the forgery is self-consistent"
    );
    let err = fails("(snapshot)");
    assert!(
        err.contains(&named_snapshot) && err.contains("is not in the signed checkpoint"),
        "{err}"
    );

    // The snapshot record's inclusion proof with one hash changed: the snapshot.
    altered(&original, "tree.json", &bad, |body| {
        let mut t: serde_json::Value = serde_json::from_slice(body).unwrap();
        let h = t["snapshot"]["inclusion"][0].as_str().unwrap().to_owned();
        let flipped = if h.starts_with('0') { "1" } else { "0" };
        t["snapshot"]["inclusion"][0] = format!("{flipped}{}", &h[1..]).into();
        *body = serde_json::to_vec(&t).unwrap();
    });
    fails("(snapshot)");

    // No tree.json at all: with a key, the pack is refused.
    let without: Vec<_> = original
        .iter()
        .filter(|(n, _)| n != "tree.json")
        .cloned()
        .collect();
    write(&bad, &without);
    fails("tree.json");
}
