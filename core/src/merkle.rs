//! The RFC 6962 / RFC 9162 §2.1 Merkle tree over the evidence records.
//!
//! The hash chain alone can be rewritten by anyone who can write the database: edit a record,
//! recompute every later hash, and the chain verifies again. A Merkle tree whose root has been
//! signed and handed out (a checkpoint) cannot be rewritten that way: an inclusion proof ties a
//! record to a root, and a consistency proof shows that a later tree only appended to an
//! earlier one. Anyone holding an earlier root detects any edit or truncation.
//!
//! The hashes are exactly RFC 6962's, so that verifiers we did not write (Certificate
//! Transparency's and Sigstore's libraries, Python ones) check our proofs:
//! leaf `SHA-256(0x00 ‖ record)`, interior node `SHA-256(0x01 ‖ left ‖ right)`, and the root of
//! the empty tree `SHA-256("")`. Proof generation follows the RFC's recursive definitions
//! (`PATH` and `PROOF`); verification follows RFC 9162 §2.1.3.2 and §2.1.4.2, which use only
//! the sizes, so a verifier never needs the tree.
//!
//! [`Frontier`] keeps only the right edge of the tree (at most one hash per level), so the
//! append path stays O(log n) in time and memory however long the log grows.

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// The leaf hash of one record's bytes: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// An interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Lower-case hex of a hash, for messages and JSON.
pub fn to_hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash from 64 hex digits.
pub fn from_hex(text: &str) -> Option<Hash> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// The largest power of two strictly below `n` (`n >= 2`): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// `MTH(D[n])` over leaf hashes already computed.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` (from 0) in the tree of `leaves` (RFC 6962 `PATH`), deepest
/// sibling first; `None` when the index is outside the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(index, leaves, &mut out);
    Some(out)
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// The consistency proof from the tree of the first `old_size` leaves to the tree of all of
/// `leaves` (RFC 6962 `PROOF`); `None` when `old_size` exceeds the tree. Empty when the old
/// tree is empty or the same size (both cases are checked without a proof).
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    if old_size > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    if old_size > 0 && old_size < leaves.len() {
        subproof(old_size, leaves, true, &mut out);
    }
    Some(out)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree the proof is for.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The index claimed.
        index: u64,
        /// The tree size claimed.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old tree size {old} is larger than the new size {new}")]
    Shrunk {
        /// Size of the earlier tree.
        old: u64,
        /// Size of the later tree.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has the wrong length for these tree sizes")]
    WrongLength,
    /// The hashes do not lead to the root that was claimed.
    #[error("the proof does not lead to the claimed root {expected}, it leads to {found}")]
    RootMismatch {
        /// The root claimed (hex).
        expected: String,
        /// The root the proof leads to (hex).
        found: String,
    },
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch {
            expected: to_hex(root),
            found: to_hex(&r),
        });
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root` by appending only (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let mismatch = |expected: &Hash, found: &Hash| ProofError::RootMismatch {
        expected: to_hex(expected),
        found: to_hex(found),
    };
    if old_size > new_size {
        return Err(ProofError::Shrunk {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 {
        // Every tree extends the empty one; there is nothing to prove.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(mismatch(old_root, new_root))
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root {
        return Err(mismatch(old_root, &fr));
    }
    if &sr != new_root {
        return Err(mismatch(new_root, &sr));
    }
    Ok(())
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first.
///
/// Appending is O(log n) amortised and the root O(log n), with memory of one hash per level,
/// so the collector can keep the current root on its append path without holding the leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(height, root)` of each perfect subtree on the right edge, left to right.
    peaks: Vec<(u32, Hash)>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.peaks.last() {
            if h != node.0 {
                break;
            }
            self.peaks.pop();
            node = (h + 1, node_hash(&left, &node.1));
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The roots of the perfect subtrees on the right edge, largest (leftmost) first: with the
    /// size, all a verifier needs to append leaves and recompute later roots.
    pub fn peaks(&self) -> Vec<Hash> {
        self.peaks.iter().map(|&(_, h)| h).collect()
    }

    /// The frontier of a tree of `size` leaves from its [`Frontier::peaks`]; `None` when their
    /// number does not match the size (one peak per set bit).
    pub fn from_peaks(size: u64, peaks: &[Hash]) -> Option<Self> {
        if peaks.len() != size.count_ones() as usize {
            return None;
        }
        let heights = (0..64u32).rev().filter(|h| size >> h & 1 == 1);
        Some(Self {
            size,
            peaks: heights.zip(peaks.iter().copied()).collect(),
        })
    }

    /// The current root (`MTH` of every leaf appended).
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => empty_root(),
            Some(&(_, last)) => peaks.fold(last, |acc, (_, left)| node_hash(left, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The eight leaves of the Certificate Transparency reference test tree.
    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Its roots at sizes 1 to 8, as published with the Certificate Transparency reference code.
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn ct_leaves() -> Vec<Hash> {
        CT_LEAVES.iter().map(|s| leaf_hash(&hex_bytes(s))).collect()
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("record {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn roots_match_the_certificate_transparency_vectors() {
        let l = ct_leaves();
        let mut f = Frontier::new();
        for (n, expected) in CT_ROOTS.iter().enumerate() {
            f.push(l[n]);
            assert_eq!(to_hex(&root(&l[..=n])), *expected, "size {}", n + 1);
            assert_eq!(to_hex(&f.root()), *expected, "frontier at size {}", n + 1);
        }
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Frontier::new().root(), empty_root());
    }

    #[test]
    fn the_audit_path_of_leaf_0_in_8_is_the_rfc_shape() {
        let l = ct_leaves();
        let p = inclusion_proof(&l, 0).unwrap();
        assert_eq!(
            p,
            vec![l[1], node_hash(&l[2], &l[3]), root(&l[4..8])],
            "deepest sibling first"
        );
        assert!(inclusion_proof(&l, 8).is_none());
        assert!(consistency_proof(&l, 9).is_none());
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let h = leaf_hash(b"x");
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
    }

    proptest! {
        /// Every leaf's audit path leads to the root; any other leaf, index, size or a changed
        /// path hash does not.
        #[test]
        fn inclusion_proofs_hold_and_only_for_the_right_leaf(n in 1usize..70, pick in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick.index(n);
            let proof = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &proof, &r).is_ok());
            let other = leaf_hash(b"not in the log");
            prop_assert!(verify_inclusion(&other, i as u64, n as u64, &proof, &r).is_err());
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(verify_inclusion(&l[i], j as u64, n as u64, &proof, &r).is_err());
                let mut bad = proof.clone();
                let k = flip.index(bad.len());
                bad[k][0] ^= 1;
                prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &bad, &r).is_err());
            }
            // A leaf index at or past the size is refused outright. (A neighbouring size can
            // share the same path shape, which is why the size is signed in the checkpoint.)
            prop_assert!(verify_inclusion(&l[i], n as u64, n as u64, &proof, &r).is_err());
        }

        /// A consistency proof holds from every earlier size; it fails against an altered old
        /// root (an edited record) and against a new tree that rewrote an old leaf.
        #[test]
        fn consistency_proofs_hold_and_catch_rewrites(n in 1usize..70, m_pick in any::<prop::sample::Index>(), edit in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let m = m_pick.index(n + 1);
            let proof = consistency_proof(&l, m).unwrap();
            let old_root = root(&l[..m]);
            let new_root = root(&l);
            prop_assert!(verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof).is_ok());
            if m > 0 {
                // The operator edits one of the old records and rebuilds the whole tree.
                let mut forged = l.clone();
                forged[edit.index(m)] = leaf_hash(b"edited");
                let forged_root = root(&forged);
                let forged_proof = consistency_proof(&forged, m).unwrap();
                prop_assert!(verify_consistency(m as u64, n as u64, &old_root, &forged_root, &forged_proof).is_err());
                // Truncation: a smaller "new" tree is never consistent.
                if m > 1 {
                    prop_assert!(verify_consistency(m as u64, m as u64 - 1, &old_root, &root(&l[..m - 1]), &[]).is_err());
                }
            }
        }

        /// The frontier's root is the recursive root at every size.
        #[test]
        fn the_frontier_agrees_with_the_definition(n in 0usize..130) {
            let l = leaves(n);
            let mut f = Frontier::new();
            for h in &l { f.push(*h); }
            prop_assert_eq!(f.size(), n as u64);
            prop_assert_eq!(f.root(), root(&l));
        }

        /// A frontier rebuilt from its peaks at size `m` and extended with the later leaves
        /// reaches the full tree's root: what a pack's verifier does with a period's records.
        #[test]
        fn a_frontier_from_its_peaks_extends_to_the_full_root(n in 0usize..130, m_pick in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let m = m_pick.index(n + 1);
            let mut f = Frontier::new();
            for h in &l[..m] { f.push(*h); }
            let mut g = Frontier::from_peaks(m as u64, &f.peaks()).unwrap();
            prop_assert_eq!(g.root(), root(&l[..m]));
            for h in &l[m..] { g.push(*h); }
            prop_assert_eq!(g.root(), root(&l));
            let mut extra = f.peaks();
            extra.push(l.first().copied().unwrap_or_default());
            prop_assert!(Frontier::from_peaks(m as u64, &extra).is_none(), "one peak too many");
        }
    }
}
