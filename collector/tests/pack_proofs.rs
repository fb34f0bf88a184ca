//! Evidence packs carry their checkpoints, signatures and proofs, and `evidence verify --pack
//! P --key pub.key` checks them offline, on the real binary: the period's records must be
//! exactly the signed tree's leaves after the anchor, and the collector's issued checkpoints
//! consistent with it. Any byte changed in the proofs, a record edited or the wrong key fails,
//! naming what failed.

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

    // Two runs: each issues a checkpoint at start and at shutdown.
    for _ in 0..2 {
        c.start();
        let before = c.evidence(None).len();
        wait_until(LONG, "more evidence", || {
            (c.evidence(None).len() > before + 6).then_some(())
        });
        assert!(c.stop().unwrap().success());
    }
    let db = dir.path().join("data/collector.db");
    let t = times(&db);
    // A period starting in the middle of the log, so the pack has an anchor before it.
    let from = t[t.len() / 2].1;
    let pack_path = dir.path().join("pack.tar");
    let p = pack_path.to_str().unwrap();
    let export = c.command(&[
        "evidence",
        "export",
        "--from",
        &from.to_string(),
        "--to",
        &(t.last().unwrap().1 + 1).to_string(),
        "--output",
        p,
    ]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

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

    // No tree.json at all: with a key, the pack is refused.
    let without: Vec<_> = original
        .iter()
        .filter(|(n, _)| n != "tree.json")
        .cloned()
        .collect();
    write(&bad, &without);
    fails("tree.json");
}
