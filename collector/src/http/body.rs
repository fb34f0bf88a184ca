//! Request bodies: `Content-Encoding` decoding with a bound on the decompressed size, so a
//! gzip bomb costs at most the configured bytes.

use aims_runtime::gzip::{self, DecodeError};
use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;

/// Whether the body came gzip-compressed (`Content-Encoding: gzip` or `x-gzip`).
pub fn is_gzip(headers: &HeaderMap) -> bool {
    gzip::is_gzip(encoding(headers))
}

fn encoding(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
}

/// Decodes a body that may be gzip-compressed (`gzip` or `x-gzip`, one member or several),
/// bounding the decompressed size.
pub fn decode(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    gzip::decode(encoding(headers), body, limit).map_err(|e| match e {
        DecodeError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body", &e.to_string())
        }
        DecodeError::Corrupt(why) => ApiError::bad_request("body", &format!("gzip: {why}")),
        DecodeError::Unsupported(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding",
            &e.to_string(),
        ),
    })
}
