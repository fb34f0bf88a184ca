//! `POST /v1/summaries`: one window summary envelope (JSON, optionally gzip), idempotent by id.
//! Every answer is counted in `aims_ingest_total` by outcome.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::Agent;
use super::body::{decode, is_gzip};
use super::error::ApiError;
use crate::services::ingest;
use crate::state::App;

/// `POST /v1/summaries`.
pub async fn post(
    State(app): State<Arc<App>>,
    agent: Result<Agent, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (outcome, response) = summary(&app, agent, &headers, &body).await;
    app.metrics.ingest.with_label_values(&[outcome]).inc();
    response
}

async fn summary(
    app: &App,
    agent: Result<Agent, ApiError>,
    headers: &HeaderMap,
    body: &[u8],
) -> (&'static str, Response) {
    let caller = match agent {
        Ok(Agent(c)) => c,
        Err(e) => return ("unauthorized", e.into_response()),
    };
    let bytes = match decode(headers, body, app.config.server.max_decompressed_bytes) {
        Ok(b) => b,
        Err(e) => return ("invalid", e.into_response()),
    };
    let gzip = is_gzip(headers).then_some(body);
    match ingest::submit_summary(app, &caller, &bytes, gzip).await {
        Ok((id, true)) => (
            "accepted",
            (
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "status": "accepted"})),
            )
                .into_response(),
        ),
        Ok((id, false)) => (
            "duplicate",
            (
                StatusCode::OK,
                Json(json!({"id": id, "status": "duplicate"})),
            )
                .into_response(),
        ),
        Err(r) => (r.reason.outcome(), ApiError::from(r).into_response()),
    }
}
