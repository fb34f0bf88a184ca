//! Request body decoding: `Content-Encoding` undone with a bound on the output, so a gzip bomb
//! costs at most `limit` bytes. `gzip` and `x-gzip` are the same (RFC 9110), and a body of
//! several gzip members (concatenated files) decodes to all of them.

use std::io::{Read, Write};

/// The level bodies are compressed at for the wire. flate2 runs on zlib-rs (see Cargo.toml),
/// whose level 1 is zlib-ng's `deflate_quick`: fast but about 25 % larger on a 20-feature
/// summary than miniz_oxide's level 1 was. Level 2 (`deflate_fast`) is smaller than that and
/// still about half its CPU (measured on a 44 kB profile: 9,930 B in 150 µs against miniz's
/// 10,247 B in 270 µs).
pub const LEVEL: u32 = 2;

/// `body` as one gzip member at [`LEVEL`].
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(LEVEL));
    // Writing into a Vec cannot fail.
    let _ = e.write_all(body);
    e.finish().unwrap_or_default()
}

/// Why a body cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More than `limit` bytes, as sent or once decompressed.
    #[error("{} body exceeds {limit} bytes", if *.decompressed { "decompressed" } else { "the" })]
    TooLarge {
        /// The bound.
        limit: usize,
        /// Whether it was the decompressed size.
        decompressed: bool,
    },
    /// Not valid gzip.
    #[error("corrupt gzip body: {0}")]
    Corrupt(String),
    /// An encoding other than identity and gzip.
    #[error("unsupported Content-Encoding {0:?}; use gzip or none")]
    Unsupported(String),
}

/// Whether `encoding` (a `Content-Encoding` header's value) names gzip: `gzip` or `x-gzip`,
/// in any case, with surrounding blanks.
pub fn is_gzip(encoding: Option<&str>) -> bool {
    encoding.is_some_and(|e| {
        let e = e.trim();
        e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip")
    })
}

/// Undoes `encoding` (the `Content-Encoding` header, `None` when absent) on `body`, never
/// producing more than `limit` bytes.
pub fn decode(encoding: Option<&str>, body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge {
            limit,
            decompressed: false,
        });
    }
    if !is_gzip(encoding) {
        return match encoding.map(str::trim) {
            None | Some("") => Ok(body.to_vec()),
            Some(e) if e.eq_ignore_ascii_case("identity") => Ok(body.to_vec()),
            Some(other) => Err(DecodeError::Unsupported(other.to_ascii_lowercase())),
        };
    }
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // The bufread decoder reads `body` in place; the `read` one would first copy it into a
    // 32 KiB buffer of its own.
    flate2::bufread::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge {
            limit,
            decompressed: true,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let out = encode(data);
        assert!(!out.is_empty());
        out
    }

    #[test]
    fn gzip_and_x_gzip_decode_every_member() {
        let mut two = gz(b"{\"a\":1}\n");
        two.extend(gz(b"{\"a\":2}\n"));
        for enc in ["gzip", "x-gzip", " GZIP "] {
            assert_eq!(
                decode(Some(enc), &two, 1 << 20).unwrap(),
                b"{\"a\":1}\n{\"a\":2}\n"
            );
        }
        assert_eq!(decode(None, b"plain", 10).unwrap(), b"plain");
        assert_eq!(decode(Some("identity"), b"plain", 10).unwrap(), b"plain");
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // Made as an attacker would, at the best compression (zlib-rs's fastest level does
        // not squeeze 1 MiB of zeros under 10 kB).
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 10_000, "{} B", bomb.len());
        assert_eq!(
            decode(Some("gzip"), &bomb, 10_000),
            Err(DecodeError::TooLarge {
                limit: 10_000,
                decompressed: true
            })
        );
        assert_eq!(
            decode(None, &[0; 11], 10),
            Err(DecodeError::TooLarge {
                limit: 10,
                decompressed: false
            })
        );
    }

    #[test]
    fn corrupt_and_unknown_encodings_are_named() {
        assert!(matches!(
            decode(Some("gzip"), b"not gzip", 100),
            Err(DecodeError::Corrupt(_))
        ));
        assert_eq!(
            decode(Some("br"), b"x", 100).unwrap_err().to_string(),
            "unsupported Content-Encoding \"br\"; use gzip or none"
        );
    }
}
