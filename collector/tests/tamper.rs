//! The attack the hash chain alone cannot see, end to end on the real binary: someone who can
//! write the database drops the append-only triggers, edits a record and recomputes every
//! later hash. `evidence verify` (the chain) passes; checking against a signed checkpoint
//! issued before the edit does not. Truncation and forged checkpoints fail too, and every
//! failure names what failed.

mod common;

use std::path::Path;
use std::time::Duration;

use aims_core::checkpoint::{SigningKey, TreeHead, VerifierKey};
use aims_core::evidence::link;
use aims_core::merkle;
use common::*;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

fn run_ok(c: &Collector, args: &[&str]) -> String {
    let out = c.command(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with exit status 1; returns its standard error.
fn run_fails(c: &Collector, args: &[&str]) -> String {
    let out = c.command(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {stderr}");
    stderr
}

fn sql(db: &Path, statements: &[String]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        for s in statements {
            sqlx::query(s).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    });
}

/// Every record's (seq, canonical) in order.
fn records(db: &Path) -> Vec<(u64, String)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let rows = sqlx::query("SELECT seq, canonical FROM evidence ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.get::<i64, _>("seq") as u64,
                    r.get::<String, _>("canonical"),
                )
            })
            .collect()
    })
}

#[test]
fn signed_checkpoints_catch_rewrites_truncation_and_forgery() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("evidence.key");
    let extra = format!(
        "[evidence]\norigin = \"test.example/evidence\"\nkey_file = \"{}\"\n",
        key_file.display()
    );
    let mut c = Collector::prepare_sqlite(BIN, dir.path(), &extra);
    let key_path = key_file.to_str().unwrap();
    let public = run_ok(&c, &["evidence", "keygen", "--output", key_path]);
    assert_eq!(run_ok(&c, &["evidence", "key"]), public);
    let pub_file = dir.path().join("pub.key");
    std::fs::write(&pub_file, &public).unwrap();
    let verifier = VerifierKey::parse(&public).unwrap();
    // A second keygen never overwrites the key.
    assert_eq!(
        c.command(&["evidence", "keygen", "--output", key_path])
            .status
            .code(),
        Some(1)
    );

    c.start();
    wait_until(LONG, "some evidence", || {
        (c.evidence(None).len() > 14).then_some(())
    });
    assert!(c.stop().unwrap().success());
    let db = dir.path().join("data/collector.db");
    let n = records(&db).len() as u64;

    // The whole log, and a proof of record 3 whose checkpoint is of the first 10 records.
    let full = dir.path().join("full.txt");
    std::fs::write(&full, run_ok(&c, &["evidence", "checkpoint"])).unwrap();
    let head = TreeHead::open(&std::fs::read_to_string(&full).unwrap(), &verifier).unwrap();
    assert_eq!(
        (head.size, head.origin.as_str()),
        (n, "test.example/evidence")
    );
    let proof: Value = serde_json::from_str(&run_ok(
        &c,
        &["evidence", "prove", "--seq", "3", "--size", "10"],
    ))
    .unwrap();
    let early = dir.path().join("early.txt");
    std::fs::write(&early, proof["checkpoint"].as_str().unwrap()).unwrap();
    let early_head = TreeHead::open(proof["checkpoint"].as_str().unwrap(), &verifier).unwrap();
    assert_eq!(early_head.size, 10);
    let path: Vec<merkle::Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| merkle::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    let third = &records(&db)[2].1;
    merkle::verify_inclusion(
        &merkle::leaf_hash(third.as_bytes()),
        2,
        10,
        &path,
        &early_head.root,
    )
    .expect("the printed proof ties record 3 to the signed root");

    // `evidence verify --since F --key pub.key`, expected to pass or to fail.
    let run = |f: &Path, ok: bool| {
        let (f, k) = (f.display().to_string(), pub_file.display().to_string());
        let a = ["evidence", "verify", "--since", &f, "--key", &k];
        if ok {
            run_ok(&c, &a)
        } else {
            run_fails(&c, &a)
        }
    };
    assert!(run(&full, true).contains("consistent with checkpoint"));
    assert!(run(&early, true).contains("size 10"));

    // A checkpoint of the same log forged with another key is rejected, naming the signature.
    let forger = SigningKey::from_seed("test.example/evidence", [7; 32]).unwrap();
    let forged = dir.path().join("forged.txt");
    let fake = TreeHead {
        root: merkle::leaf_hash(b"whatever the forger wants"),
        ..head.clone()
    };
    std::fs::write(&forged, fake.sign(&forger).unwrap()).unwrap();
    let err = run(&forged, false);
    assert!(
        err.contains("REJECTED") && err.contains("signature"),
        "{err}"
    );
    // So is a genuine checkpoint with one byte of its size changed.
    let altered = dir.path().join("altered.txt");
    let text = std::fs::read_to_string(&full).unwrap();
    std::fs::write(
        &altered,
        text.replacen(&format!("\n{n}\n"), &format!("\n{}\n", n + 1), 1),
    )
    .unwrap();
    let err = run(&altered, false);
    assert!(
        err.contains("signature") && err.contains("does not verify"),
        "{err}"
    );

    // Truncation: the last two records deleted (the chain of what is left still verifies).
    sql(
        &db,
        &[
            "DROP TRIGGER evidence_no_delete".to_owned(),
            format!("DELETE FROM evidence WHERE seq > {}", n - 2),
        ],
    );
    run_ok(&c, &["evidence", "verify"]);
    let err = run(&full, false);
    assert!(
        err.contains("TRUNCATED") && err.contains(&format!("records {} to {n}", n - 1)),
        "{err}"
    );
    assert!(
        run(&early, true).contains("size 10"),
        "the first 10 records are untouched"
    );

    // The rewrite: record 7 edited, every later prev_hash and hash recomputed.
    let mut rows = records(&db);
    rows[6].1 = rows[6].1.replacen("\"at_ms\":1", "\"at_ms\":2", 1);
    let mut statements = vec!["DROP TRIGGER evidence_no_update".to_owned()];
    let mut prev = aims_core::evidence::GENESIS.to_owned();
    for (seq, canonical) in &rows {
        let hash = link(&prev, canonical);
        if *seq == 7 {
            // The indexed time column too, so that nothing but the tree disagrees.
            statements
                .push("UPDATE evidence SET at_ms = at_ms + 1000000000000 WHERE seq = 7".to_owned());
        }
        if *seq >= 7 {
            statements.push(format!(
                "UPDATE evidence SET canonical = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {seq}",
                canonical.replace('\'', "''")
            ));
        }
        prev = hash;
    }
    sql(&db, &statements);
    // The hash chain alone is fooled...
    let chain = run_ok(&c, &["evidence", "verify"]);
    assert!(chain.contains("evidence chain OK"), "{chain}");
    // ...the checkpoint issued before the edit is not, and the failure names it.
    let err = run(&early, false);
    assert!(
        err.contains("REWRITTEN") && err.contains("early.txt") && err.contains("records 1 to 10"),
        "{err}"
    );
}
