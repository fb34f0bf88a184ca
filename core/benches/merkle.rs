//! Evidence tree costs: appending a leaf to the frontier (the append path), the root of a
//! large tree, and inclusion / consistency proof generation and checking, plus signing and
//! opening a checkpoint.
//!
//! `cargo bench -p aims-core --bench merkle` prints medians of several runs; BENCHMARKS.md
//! records the figures.

use std::hint::black_box;
use std::time::Instant;

use aims_core::checkpoint::{SigningKey, TreeHead};
use aims_core::merkle::{self, Frontier, Hash};

const LEAVES: usize = 1_000_000;
const RUNS: usize = 5;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time<F: FnMut()>(mut f: F) -> f64 {
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let record = format!("{{\"at_ms\":1764547200000,\"data\":{{\"objective\":\"parity\",\"value\":0.93,\"pad\":\"{}\"}},\"kind\":\"evaluation\",\"seq\":1}}", "x".repeat(300));
    let leaves: Vec<Hash> = (0..LEAVES)
        .map(|i| merkle::leaf_hash(format!("{record}{i}").as_bytes()))
        .collect();

    let t = time(|| {
        let mut f = Frontier::new();
        for l in &leaves {
            f.push(*l);
        }
        black_box(f.root());
    });
    println!(
        "frontier append: {:.0} ns per leaf ({LEAVES} leaves, median of {RUNS})",
        t / LEAVES as f64 * 1e9
    );
    let t = time(|| {
        black_box(merkle::leaf_hash(record.as_bytes()));
    });
    println!(
        "leaf hash of a {}-byte record: {:.0} ns",
        record.len(),
        t * 1e9
    );

    let t = time(|| {
        black_box(merkle::root(&leaves));
    });
    println!("root of {LEAVES} leaf hashes (from scratch): {:.3} s", t);

    let i = LEAVES / 3;
    let root = merkle::root(&leaves);
    let t = time(|| {
        black_box(merkle::inclusion_proof(&leaves, i));
    });
    let proof = merkle::inclusion_proof(&leaves, i).unwrap();
    println!(
        "inclusion proof generation over {LEAVES} leaves: {:.3} s ({} hashes)",
        t,
        proof.len()
    );
    let t = time(|| {
        for _ in 0..1000 {
            merkle::verify_inclusion(&leaves[i], i as u64, LEAVES as u64, &proof, &root).unwrap();
        }
    });
    println!("inclusion proof check: {:.1} us", t / 1000.0 * 1e6);

    let m = LEAVES / 2 + 12_345;
    let t = time(|| {
        black_box(merkle::consistency_proof(&leaves, m));
    });
    let cproof = merkle::consistency_proof(&leaves, m).unwrap();
    let old = merkle::root(&leaves[..m]);
    println!(
        "consistency proof generation {m} -> {LEAVES}: {:.3} s ({} hashes)",
        t,
        cproof.len()
    );
    let t = time(|| {
        for _ in 0..1000 {
            merkle::verify_consistency(m as u64, LEAVES as u64, &old, &root, &cproof).unwrap();
        }
    });
    println!("consistency proof check: {:.1} us", t / 1000.0 * 1e6);

    let key = SigningKey::from_seed("bench/evidence", [1; 32]).unwrap();
    let head = TreeHead {
        origin: "bench/evidence".into(),
        size: LEAVES as u64,
        root,
    };
    let t = time(|| {
        for _ in 0..1000 {
            black_box(head.sign(&key).unwrap());
        }
    });
    let note = head.sign(&key).unwrap();
    println!("checkpoint signing: {:.1} us", t / 1000.0 * 1e6);
    let t = time(|| {
        for _ in 0..1000 {
            black_box(TreeHead::open(&note, key.verifier()).unwrap());
        }
    });
    println!(
        "checkpoint opening (signature check): {:.1} us",
        t / 1000.0 * 1e6
    );
}
