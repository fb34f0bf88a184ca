//! Content hashing: profiles, objective files and evidence records are identified by the SHA-256
//! of a canonical serialisation, so that the same content always has the same name.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Canonical JSON of a value: keys sorted at every level, no insignificant white space.
///
/// `serde_json::Value` keeps objects in a `BTreeMap` (the crate's default), so a round trip
/// through it sorts the keys.
pub fn canonical_json<T: Serialize>(value: &T) -> String {
    let tree = serde_json::to_value(value).expect("plain data serialises to JSON");
    serde_json::to_string(&tree).expect("a JSON tree serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc_is_the_published_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": 2, "c": 3}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":3,"d":2},"b":1}"#);
    }
}
