//! Interop: our RFC 6962 trees and proofs checked by an implementation we did not write, the
//! `ct-merkle` crate. Roots must agree at every size, our inclusion and consistency proofs must
//! verify with its verifier (and be byte-identical to the proofs it generates), and a proof
//! for the wrong leaf or a rewritten tree must fail there too.

use aims_core::evidence::{Kind, Record, GENESIS};
use aims_core::merkle;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof};
use serde_json::json;
use sha2::Sha256;

/// The canonical JSON of `n` sealed evidence records: the leaves the collector hashes.
fn records(n: u64) -> Vec<String> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let s = Record {
                seq,
                at_ms: 1_764_547_200_000 + seq as i64,
                kind: Kind::Evaluation,
                data: json!({"objective": "parity", "value": seq as f64 / 7.0}),
            }
            .seal(&prev);
            prev = s.hash.clone();
            s.canonical
        })
        .collect()
}

fn theirs(leaves: &[String]) -> MemoryBackedTree<Sha256, Vec<u8>> {
    let mut t = MemoryBackedTree::new();
    for l in leaves {
        t.push(l.as_bytes().to_vec());
    }
    t
}

#[test]
fn roots_and_inclusion_proofs_agree_with_ct_merkle() {
    let data = records(70);
    for n in 1..=data.len() {
        let part = &data[..n];
        let ours: Vec<merkle::Hash> = part
            .iter()
            .map(|c| merkle::leaf_hash(c.as_bytes()))
            .collect();
        let tree = theirs(part);
        let root = tree.root();
        assert_eq!(
            root.as_bytes().as_slice(),
            merkle::root(&ours),
            "root at size {n}"
        );
        for i in 0..n {
            let proof = merkle::inclusion_proof(&ours, i).unwrap();
            let flat: Vec<u8> = proof.concat();
            assert_eq!(
                flat,
                tree.prove_inclusion(i).as_bytes(),
                "inclusion proof of leaf {i} in {n}"
            );
            let proof = InclusionProof::<Sha256>::from_bytes(flat);
            root.verify_inclusion(&part[i].as_bytes().to_vec(), i as u64, &proof)
                .unwrap_or_else(|e| panic!("leaf {i} of {n}: {e:?}"));
            let other = (i + 1) % n;
            if other != i {
                assert!(
                    root.verify_inclusion(&part[other].as_bytes().to_vec(), i as u64, &proof)
                        .is_err(),
                    "ct-merkle accepts leaf {other} at index {i} of {n}"
                );
            }
        }
    }
}

#[test]
fn consistency_proofs_agree_with_ct_merkle_and_catch_a_rewrite_there() {
    let data = records(40);
    let ours: Vec<merkle::Hash> = data
        .iter()
        .map(|c| merkle::leaf_hash(c.as_bytes()))
        .collect();
    for n in 1..=data.len() {
        let new_tree = theirs(&data[..n]);
        let new_root = new_tree.root();
        for m in 1..=n {
            let old_root = theirs(&data[..m]).root();
            let proof = merkle::consistency_proof(&ours[..n], m).unwrap();
            let flat: Vec<u8> = proof.concat();
            assert_eq!(
                flat,
                new_tree.prove_consistency(n - m).as_bytes(),
                "consistency proof {m} -> {n}"
            );
            let proof = ConsistencyProof::<Sha256>::try_from_bytes(flat).unwrap();
            new_root
                .verify_consistency(&old_root, &proof)
                .unwrap_or_else(|e| panic!("{m} -> {n}: {e:?}"));
            // The old tree with its first record rewritten is not a prefix.
            let mut rewritten = data[..m].to_vec();
            rewritten[0] = rewritten[0].replace("parity", "parjty");
            let forged_old = theirs(&rewritten).root();
            assert!(
                new_root.verify_consistency(&forged_old, &proof).is_err(),
                "ct-merkle accepts a rewritten prefix {m} -> {n}"
            );
        }
    }
}
