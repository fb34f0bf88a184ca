//! `GET /`: the status page for a person with a browser (rendered by
//! [`crate::services::status`]).
//!
//! With read tokens configured the page is a read endpoint like the others: it needs a read
//! token, as `Authorization: Bearer` or as `?token=` (a browser cannot send the header). The
//! page then carries the token only in its own refresh, and asks browsers not to send it on as
//! a referrer nor to cache the page.

use std::sync::Arc;

use aims_core::hash::sha256_hex;
use axum::extract::State;

use super::query::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Reader;
use super::error::ApiError;
use crate::services::status;
use crate::state::App;

/// `?token=`: the read token for browsers, which cannot send an Authorization header.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    token: Option<String>,
}

/// Whether the request may read: no read tokens configured, or a valid one in the header or
/// in `?token=`.
fn allowed(app: &App, reader: bool, token: Option<&str>) -> bool {
    let tokens = &app.config.auth.read_token_sha256;
    tokens.is_empty() || reader || token.is_some_and(|t| tokens.contains(&sha256_hex(t.as_bytes())))
}

/// `GET /`: the status page.
pub async fn get(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
    reader: Result<Reader, ApiError>,
) -> Response {
    if !allowed(&app, reader.is_ok(), q.token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>AIMS Monitor</title><p>This collector requires a read token: \
             open <code>/?token=&lt;read token&gt;</code> or send <code>Authorization: Bearer</code>.</p>",
        )
            .into_response();
    }
    let refresh_query = match &q.token {
        Some(t) if !app.config.auth.read_token_sha256.is_empty() => {
            format!("?token={}", percent_encode(t))
        }
        _ => String::new(),
    };
    match status::snapshot(&app, app.now_ms(), refresh_query).await {
        Ok(s) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            status::render(&s),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status page");
            ApiError::unavailable(&e.to_string()).into_response()
        }
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_the_refresh_url_are_percent_encoded() {
        assert_eq!(percent_encode("a b&c/\"d"), "a%20b%26c%2F%22d");
    }
}
