//! Signed checkpoints of the evidence tree: C2SP tlog-checkpoint text in a C2SP signed note,
//! signed with Ed25519.
//!
//! A checkpoint says "the log named `origin` had `size` records and this Merkle root". Once
//! the collector has signed one and it has left the building (into a report, a pack, an
//! auditor's folder, Prometheus), the operator can no longer rewrite any of those records
//! without the rewrite showing: the new tree will not be consistent with the old root.
//!
//! The formats are the ones Go's `golang.org/x/mod/sumdb/note` and the transparency-log
//! ecosystem use, so existing tools read them:
//!
//! ```text
//! <origin>\n<size>\n<base64 root>\n      (the checkpoint body, the signed message)
//! \n
//! — <key name> <base64(key id ‖ signature)>\n
//! ```
//!
//! where the key id is the first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
//! Keys are written as `PRIVATE+KEY+<name>+<id hex>+<base64(0x01 ‖ seed)>` and
//! `<name>+<id hex>+<base64(0x01 ‖ public key)>`.
//!
//! Pure: signing takes a seed the caller read or generated; nothing here touches a file or
//! the random source.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::merkle::Hash;

/// The signature algorithm byte for Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// What went wrong reading a key, a note or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CheckpointError {
    /// A key's text does not have the expected form.
    #[error("bad key: {0}")]
    Key(String),
    /// The note's text is not a well-formed signed note.
    #[error("malformed signed note: {0}")]
    Malformed(String),
    /// The note carries no signature by the key we were given.
    #[error("the checkpoint has no signature by key {name} ({id:08x}): signed by another key, or not signed")]
    NoSignature {
        /// The key's name.
        name: String,
        /// The key's id.
        id: u32,
    },
    /// A signature by our key's id is present but does not verify.
    #[error("the signature by key {name} does not verify: the checkpoint was altered or forged")]
    BadSignature {
        /// The key's name.
        name: String,
    },
    /// The signed text is not a tlog-checkpoint.
    #[error("malformed checkpoint body: {0}")]
    Body(String),
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(CheckpointError::Key(format!(
            "key name {name:?} must be non-empty, without spaces or '+'"
        )));
    }
    Ok(())
}

/// The note key id: the first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public)`.
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The public half, given to auditors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    public: [u8; 32],
    id: u32,
}

impl VerifierKey {
    /// The key's name (conventionally the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `<name>+<id hex>+<base64(0x01 ‖ public)>`.
    pub fn to_text(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(&self.public);
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(bytes))
    }

    /// Reads a verifier key (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::Key(format!("verifier key: {why}"));
        // The base64 key may itself contain '+'.
        const PARTS: usize = 3;
        let parts: Vec<&str> = text.trim().splitn(PARTS, '+').collect();
        let [name, id, key] = parts[..] else {
            return Err(bad("expected <name>+<id>+<key>"));
        };
        check_name(name)?;
        let bytes = B64.decode(key).map_err(|e| bad(&format!("base64: {e}")))?;
        if bytes.len() != 33 || bytes[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&bytes[1..]);
        let computed = key_id(name, &public);
        if u32::from_str_radix(id, 16).ok() != Some(computed) || id.len() != 8 {
            return Err(bad("the key id does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            public,
            id: computed,
        })
    }
}

/// The private half, kept by the collector.
pub struct SigningKey {
    name: String,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
    verifier: VerifierKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("verifier", &self.verifier.to_text())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key with this name from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, CheckpointError> {
        check_name(name)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| CheckpointError::Key(format!("Ed25519 seed rejected: {e}")))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        let verifier = VerifierKey {
            name: name.to_owned(),
            id: key_id(name, &public),
            public,
        };
        Ok(Self {
            name: name.to_owned(),
            seed,
            pair,
            verifier,
        })
    }

    /// `PRIVATE+KEY+<name>+<id hex>+<base64(0x01 ‖ seed)>`.
    pub fn to_text(&self) -> String {
        let mut bytes = vec![ALG_ED25519];
        bytes.extend_from_slice(&self.seed);
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.verifier.id,
            B64.encode(bytes)
        )
    }

    /// Reads a signing key (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::Key(format!("signing key: {why}"));
        const PARTS: usize = 5;
        let parts: Vec<&str> = text.trim().splitn(PARTS, '+').collect();
        let ["PRIVATE", "KEY", name, id, key] = parts[..] else {
            return Err(bad("expected PRIVATE+KEY+<name>+<id>+<key>"));
        };
        let bytes = B64.decode(key).map_err(|e| bad(&format!("base64: {e}")))?;
        if bytes.len() != 33 || bytes[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[1..]);
        let key = Self::from_seed(name, seed)?;
        if id != format!("{:08x}", key.verifier.id) {
            return Err(bad("the key id does not match the key"));
        }
        Ok(key)
    }

    /// The public half.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Signs `text` (which must end in a newline) as a signed note.
    pub fn sign_note(&self, text: &str) -> Result<String, CheckpointError> {
        check_text(text)?;
        let mut sig = self.verifier.id.to_be_bytes().to_vec();
        sig.extend_from_slice(self.pair.sign(text.as_bytes()).as_ref());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            B64.encode(sig)
        ))
    }
}

fn check_text(text: &str) -> Result<(), CheckpointError> {
    if !text.ends_with('\n') {
        return Err(CheckpointError::Malformed(
            "the text must end with a newline".to_owned(),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CheckpointError::Malformed(
            "the text contains control characters".to_owned(),
        ));
    }
    Ok(())
}

/// Verifies a signed note against one key and returns its text.
///
/// Signatures by other keys are allowed (a witness may cosign) and ignored; at least one line
/// must be by this key's name and id, and it must verify.
pub fn open_note<'a>(note: &'a str, key: &VerifierKey) -> Result<&'a str, CheckpointError> {
    let malformed = |why: &str| CheckpointError::Malformed(why.to_owned());
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    check_text(text)?;
    if !sigs.ends_with('\n') {
        return Err(malformed("the signature lines must end with a newline"));
    }
    let mut ours = None;
    for line in sigs.lines() {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| malformed("a signature line must start with an em dash and a space"))?;
        let (name, sig) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("a signature line must be '— <name> <signature>'"))?;
        let bytes = B64
            .decode(sig)
            .map_err(|e| malformed(&format!("signature base64: {e}")))?;
        if bytes.len() < 5 {
            return Err(malformed("a signature is too short"));
        }
        let id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if name == key.name && id == key.id {
            ours = Some(bytes[4..].to_vec());
        }
    }
    let sig = ours.ok_or_else(|| CheckpointError::NoSignature {
        name: key.name.clone(),
        id: key.id,
    })?;
    UnparsedPublicKey::new(&ED25519, key.public)
        .verify(text.as_bytes(), &sig)
        .map_err(|_| CheckpointError::BadSignature {
            name: key.name.clone(),
        })?;
    Ok(text)
}

/// A tlog-checkpoint: the log's origin, its size and its Merkle root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The log's name, unique to this deployment (e.g. `aims.example.com/credit-log`).
    pub origin: String,
    /// Records in the tree.
    pub size: u64,
    /// Its RFC 6962 root.
    pub root: Hash,
}

impl TreeHead {
    /// `<origin>\n<size>\n<base64 root>\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Reads a checkpoint body (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = |why: String| CheckpointError::Body(why);
        let mut lines = text.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| body("line 1 (origin) is missing".to_owned()))?;
        let size = lines
            .next()
            .ok_or_else(|| body("line 2 (tree size) is missing".to_owned()))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || size.starts_with("0") && size.len() > 1
        {
            return Err(body(format!(
                "line 2 (tree size) {size:?} is not a decimal number"
            )));
        }
        let size = size
            .parse()
            .map_err(|e| body(format!("line 2 (tree size): {e}")))?;
        let root_line = lines
            .next()
            .ok_or_else(|| body("line 3 (root hash) is missing".to_owned()))?;
        let bytes = B64
            .decode(root_line)
            .map_err(|e| body(format!("line 3 (root hash): {e}")))?;
        let root: Hash = bytes
            .try_into()
            .map_err(|_| body("line 3 (root hash) is not 32 bytes".to_owned()))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// The signed checkpoint.
    pub fn sign(&self, key: &SigningKey) -> Result<String, CheckpointError> {
        key.sign_note(&self.to_text())
    }

    /// Verifies a signed checkpoint with `key` and reads it.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Self, CheckpointError> {
        Self::parse(open_note(note, key)?)
    }

    /// The root's first six bytes (48 bits) as an integer. A Prometheus sample is a float
    /// with 53 bits of mantissa, so this is the largest whole-byte prefix a gauge holds
    /// exactly; the root itself cannot be a label (unbounded cardinality).
    pub fn root_prefix_48(&self) -> u64 {
        let r = &self.root;
        u64::from_be_bytes([0, 0, r[0], r[1], r[2], r[3], r[4], r[5]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, root};

    fn key(name: &str, byte: u8) -> SigningKey {
        SigningKey::from_seed(name, [byte; 32]).unwrap()
    }

    fn head(size: u64) -> TreeHead {
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        TreeHead {
            origin: "aims.example/evidence".to_owned(),
            size,
            root: root(&leaves),
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key() {
        let k = key("aims.example/evidence", 7);
        let h = head(5);
        let note = h.sign(&k).unwrap();
        assert!(note.starts_with("aims.example/evidence\n5\n"));
        assert!(note.contains("\n\n\u{2014} aims.example/evidence "));
        assert_eq!(TreeHead::open(&note, k.verifier()).unwrap(), h);
    }

    #[test]
    fn keys_round_trip_through_text() {
        let k = key("log", 3);
        let again = SigningKey::parse(&k.to_text()).unwrap();
        assert_eq!(again.verifier(), k.verifier());
        let v = VerifierKey::parse(&format!("  {}\n", k.verifier().to_text())).unwrap();
        assert_eq!(&v, k.verifier());
        assert!(k.verifier().to_text().starts_with("log+"));
        assert!(
            !format!("{k:?}").contains(&k.to_text()),
            "Debug never prints the seed"
        );
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_names_the_key() {
        let ours = key("aims.example/evidence", 1);
        let forger = key("aims.example/evidence", 2);
        let note = head(4).sign(&forger).unwrap();
        match TreeHead::open(&note, ours.verifier()) {
            Err(CheckpointError::NoSignature { name, .. }) => {
                assert_eq!(name, "aims.example/evidence")
            }
            other => panic!("expected NoSignature, got {other:?}"),
        }
    }

    #[test]
    fn any_changed_byte_of_the_body_breaks_the_signature() {
        let k = key("log", 9);
        let note = head(11).sign(&k).unwrap();
        let body_len = head(11).to_text().len();
        for i in 0..body_len - 1 {
            let mut bytes = note.clone().into_bytes();
            bytes[i] ^= 0x01;
            let Ok(altered) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(
                TreeHead::open(&altered, k.verifier()).is_err(),
                "byte {i} changed and still verified"
            );
        }
        let forged = note.replacen("\n11\n", "\n12\n", 1);
        assert_eq!(
            TreeHead::open(&forged, k.verifier()).unwrap_err(),
            CheckpointError::BadSignature {
                name: "log".to_owned()
            }
        );
    }

    #[test]
    fn bad_keys_and_bodies_are_refused_with_the_reason() {
        assert!(SigningKey::from_seed("has space", [0; 32]).is_err());
        assert!(SigningKey::from_seed("a+b", [0; 32]).is_err());
        let v = key("log", 4).verifier().to_text();
        let wrong_id = format!("log+00000000+{}", v.rsplit('+').next().unwrap());
        assert!(matches!(
            VerifierKey::parse(&wrong_id),
            Err(CheckpointError::Key(m)) if m.contains("key id")
        ));
        assert!(
            matches!(TreeHead::parse("origin\nx\n"), Err(CheckpointError::Body(m)) if m.contains("line 2"))
        );
        assert!(
            matches!(TreeHead::parse("origin\n1\nAAAA\n"), Err(CheckpointError::Body(m)) if m.contains("line 3"))
        );
        assert!(matches!(
            open_note("no signatures\n", key("log", 4).verifier()),
            Err(CheckpointError::Malformed(_))
        ));
    }

    /// The reference implementation's published vector (Go's `golang.org/x/mod/sumdb/note`
    /// tests): the same key text, id and, Ed25519 being deterministic, the same signature
    /// byte for byte. Any tool of that ecosystem reads our notes.
    #[test]
    fn signs_the_go_reference_note_byte_for_byte() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let want = format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let k = SigningKey::parse(skey).unwrap();
        assert_eq!(k.verifier().to_text(), vkey);
        assert_eq!(k.to_text(), skey);
        assert_eq!(k.sign_note(text).unwrap(), want);
        let v = VerifierKey::parse(vkey).unwrap();
        assert_eq!(open_note(&want, &v).unwrap(), text);
    }
}
