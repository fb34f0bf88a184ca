//! Request bodies: `Content-Encoding` decoding with a bound on the decompressed size, so a
//! gzip bomb costs at most the configured bytes.

use std::io::Read;

use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;

/// Decodes a body that may be gzip-compressed, bounding the decompressed size.
pub fn decode(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" => {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out);
            match read {
                Err(e) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "body",
                    &format!("gzip: {e}"),
                )),
                Ok(_) if out.len() > limit => Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body",
                    &format!("decompressed body exceeds {limit} bytes"),
                )),
                Ok(_) => Ok(out),
            }
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding",
            &format!("unsupported encoding {other:?}; use gzip or none"),
        )),
    }
}
