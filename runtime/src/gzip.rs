//! Request body decoding: `Content-Encoding` undone with a bound on the output, so a gzip bomb
//! costs at most `limit` bytes. `gzip` and `x-gzip` are the same (RFC 9110), and a body of
//! several gzip members (concatenated files) decodes to all of them.

use std::cell::RefCell;
use std::io::{Cursor, Read, Write};

type Decoder = flate2::bufread::GzDecoder<Cursor<Vec<u8>>>;

thread_local! {
    /// This thread's gzip decoder, reset for each body rather than made anew: a new one
    /// allocates and zeroes its inflate state and 32 KiB window every time, about a tenth of
    /// what gunzipping a 4 kB summary costs. It owns a copy of the body being read (a few kB,
    /// its buffer reused too).
    static DECODER: RefCell<Option<Decoder>> = const { RefCell::new(None) };
}

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
    DECODER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let decoder = slot.get_or_insert_with(|| Decoder::new(Cursor::new(Vec::new())));
        let mut input = decoder.reset(Cursor::new(Vec::new())).into_inner();
        input.clear();
        input.extend_from_slice(body);
        decoder.reset(Cursor::new(input));
        // One member at a time (`GzDecoder` stops at a member's end, its input just past the
        // trailer), so a body of several members decodes to all of them, as
        // `MultiGzDecoder` would; anything after a member that is not another is corrupt.
        loop {
            let room = (limit + 1).saturating_sub(out.len()) as u64;
            Read::by_ref(decoder)
                .take(room)
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            if out.len() > limit {
                return Err(DecodeError::TooLarge {
                    limit,
                    decompressed: true,
                });
            }
            let input = decoder.get_ref();
            if input.position() >= input.get_ref().len() as u64 {
                return Ok(out);
            }
            // Another member follows: start again from where this one ended.
            let rest = decoder.reset(Cursor::new(Vec::new()));
            decoder.reset(rest);
        }
    })
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

    /// The thread's decoder is reused: bodies decoded one after another, after a corrupt one,
    /// a bomb and a multi-member one, each decode as if alone.
    #[test]
    fn one_thread_decodes_body_after_body_alike() {
        let texts: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 97)).into_bytes())
            .collect();
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = bomb.finish().unwrap();
        let mut two = gz(b"first ");
        two.extend(gz(b"second"));
        for (i, text) in texts.iter().enumerate() {
            match i % 5 {
                1 => assert!(decode(Some("gzip"), b"\x1f\x8b\x08 broken", 1 << 20).is_err()),
                2 => assert!(decode(Some("gzip"), &bomb, 1000).is_err()),
                3 => assert_eq!(decode(Some("gzip"), &two, 100).unwrap(), b"first second"),
                4 => {
                    // A member, then bytes that are not one.
                    let mut tail = gz(text);
                    tail.extend_from_slice(b"junk");
                    assert!(decode(Some("gzip"), &tail, 1 << 20).is_err());
                }
                _ => {}
            }
            assert_eq!(
                &decode(Some("gzip"), &gz(text), 1 << 20).unwrap(),
                text,
                "body {i}"
            );
        }
        // The limit counts every member's output together.
        let mut long = gz(&[b'a'; 1000]);
        long.extend(gz(&[b'b'; 1000]));
        assert_eq!(decode(Some("gzip"), &long, 2000).unwrap().len(), 2000);
        let r = decode(Some("gzip"), &long, 1500);
        assert!(
            matches!(
                r,
                Err(DecodeError::TooLarge {
                    decompressed: true,
                    ..
                })
            ),
            "{r:?}"
        );
        assert!(decode(Some("gzip"), b"", 100).is_err());
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
