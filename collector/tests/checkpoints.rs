//! Signed checkpoints from a running collector (in process, port 0, manual clock): one at
//! start, a new one only once `evidence.checkpoint_interval` of clock time has passed, one at
//! shutdown; each verifies with the public key and its root is the RFC 6962 root of the
//! records served by `GET /v1/evidence`.

mod common;

use std::time::Duration;

use aims_core::checkpoint::{CheckpointError, SigningKey, TreeHead, VerifierKey};
use aims_core::merkle;
use aims_testkit::fixtures::OBJECTIVES;
use aims_testkit::{eventually, prom::sample};
use serde_json::Value;

const ORIGIN: &str = "test.example/evidence";

async fn latest(client: &reqwest::Client, base: &str, key: &VerifierKey) -> Option<TreeHead> {
    let r = client
        .get(format!("{base}/v1/evidence/checkpoint"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let note = r.text().await.ok()?;
    Some(TreeHead::open(&note, key).expect("the served checkpoint verifies with the key"))
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    sample(&text, name, &[])
}

/// The leaf hashes of the first `size` records, read over HTTP.
async fn leaves(client: &reqwest::Client, base: &str, size: u64) -> Vec<merkle::Hash> {
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let page: Value = client
            .get(format!("{base}/v1/evidence?after={}&limit=1000", out.len()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty(), "the log has fewer than {size} records");
        for item in items {
            assert_eq!(item["seq"].as_u64().unwrap(), out.len() as u64 + 1);
            // The canonical JSON is the compact serialisation of the record.
            let canonical = serde_json::to_string(&item["record"]).unwrap();
            out.push(merkle::leaf_hash(canonical.as_bytes()));
        }
    }
    out.truncate(size as usize);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_signed_on_the_clock_verify_and_cover_the_served_records() {
    let keys = aims_testkit::temp_dir();
    let key_path = keys.path().join("evidence.key");
    let key = SigningKey::from_seed(ORIGIN, [7; 32]).unwrap();
    std::fs::write(&key_path, key.to_text()).unwrap();
    let public = key.verifier().clone();
    let c = common::InProcess::start(OBJECTIVES, |config| {
        config.evidence.origin = ORIGIN.to_owned();
        config.evidence.key_file = Some(key_path.clone());
        // On SQLite whatever AIMS_TEST_BACKEND says: the end of the test opens the file.
        config.storage.backend = aims_collector::config::Backend::Sqlite;
        config.storage.url = None;
    });
    let (base, clock) = (c.base.clone(), c.clock.clone());
    let client = reqwest::Client::new();

    // At start: a checkpoint of the startup records.
    let first = eventually(Duration::from_secs(30), "the first checkpoint", || {
        latest(&client, &base, &public)
    })
    .await;
    assert_eq!(first.origin, ORIGIN);
    assert!(first.size >= 1, "{first:?}");
    let other = SigningKey::from_seed(ORIGIN, [8; 32]).unwrap();
    let note = client
        .get(format!("{base}/v1/evidence/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(matches!(
        TreeHead::open(&note, other.verifier()),
        Err(CheckpointError::NoSignature { .. })
    ));

    // The evaluator appends records every 50 ms; the tree gauge follows them, but with the
    // clock standing still no new checkpoint is signed.
    let grown = eventually(Duration::from_secs(30), "the tree grows", || async {
        metric(&client, &base, "aims_evidence_tree_size")
            .await
            .filter(|&n| n as u64 >= first.size + 3)
    })
    .await;
    assert!(metric(&client, &base, "aims_evidence_tree_root_prefix")
        .await
        .is_some());
    assert_eq!(latest(&client, &base, &public).await, Some(first.clone()));
    assert_eq!(
        metric(&client, &base, "aims_evidence_checkpoint_size").await,
        Some(first.size as f64)
    );
    let prefix = first.root_prefix_48() as f64;
    assert_eq!(
        metric(&client, &base, "aims_evidence_checkpoint_root_prefix").await,
        Some(prefix)
    );

    // Ten minutes of clock time later, a checkpoint of the grown tree.
    clock.advance(Duration::from_secs(600));
    let second = eventually(Duration::from_secs(30), "a later checkpoint", || async {
        latest(&client, &base, &public)
            .await
            .filter(|h| h.size >= grown as u64)
    })
    .await;

    // Both roots are the RFC 6962 roots of the records served, and the log only grew between
    // them.
    let l = leaves(&client, &base, second.size).await;
    assert_eq!(merkle::root(&l[..first.size as usize]), first.root);
    assert_eq!(merkle::root(&l), second.root);
    let proof = merkle::consistency_proof(&l, first.size as usize).unwrap();
    merkle::verify_consistency(first.size, second.size, &first.root, &second.root, &proof).unwrap();

    // A report carries a signed checkpoint covering its period, inside its content hash.
    let report: Value = client
        .get(format!(
            "{base}/v1/reports?format=json&from={}&to={}",
            c.start - 60_000,
            clock.now_ms()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let d = &report["document"];
    let covered = TreeHead::open(d["checkpoint"].as_str().unwrap(), &public).unwrap();
    assert!(
        covered.size >= d["chain_end"]["seq"].as_u64().unwrap(),
        "{d}"
    );
    assert!(covered.size >= second.size);
    let typed: aims_collector::services::report::Report =
        serde_json::from_value(report.clone()).unwrap();
    assert_eq!(typed.compute_hash(), typed.document.content_hash);
    let mut stripped = typed.clone();
    stripped.document.checkpoint = None;
    assert_ne!(stripped.compute_hash(), typed.document.content_hash);

    // At shutdown: a checkpoint of every record.
    let dir = c.shutdown_keeping_dir().await;
    let data = dir.path().join("data").join("collector.db");
    let store =
        aims_collector::store::Store::open(&data, aims_collector::config::Synchronous::Normal)
            .await
            .unwrap();
    let (head_seq, _) = store.evidence_head().await.unwrap().unwrap();
    let last = store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(
        last.size, head_seq,
        "the shutdown checkpoint covers every record"
    );
    assert_eq!(TreeHead::open(&last.note, &public).unwrap().size, head_seq);
    store.close().await;
}
