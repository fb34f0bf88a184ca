//! Operations: `POST /-/reload`, `GET /metrics`, `GET /healthz` and `GET /readyz`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{Reader, Scraper};
use super::error::ApiError;
use crate::services::reload::{self, ReloadError};
use crate::state::App;

/// `POST /-/reload`: reloads the objectives file; an invalid file keeps the old objectives.
pub async fn reload(State(app): State<Arc<App>>, _: Reader) -> Result<Json<Value>, ApiError> {
    match reload::reload(&app, "http").await {
        Ok((version, changed)) => Ok(Json(
            json!({"status": "reloaded", "file_version": version, "changed": changed}),
        )),
        Err(ReloadError::Invalid { path, errors }) => Err(ApiError::with_body(
            StatusCode::BAD_REQUEST,
            "the objectives file is invalid",
            json!({
                "error": "the objectives file is invalid; the previous objectives stay in force",
                "file": path,
                "errors": errors.iter().map(|e| json!({"line": e.line, "field": e.location, "message": e.message})).collect::<Vec<_>>(),
            }),
        )),
        Err(e) => Err(ApiError::bad_request("objectives", &e.to_string())),
    }
}

/// `GET /metrics`: the Prometheus text exposition; behind a bearer token when
/// `auth.metrics_token_sha256` is set, since it names agents, models and objectives.
pub async fn metrics(State(app): State<Arc<App>>, _: Scraper) -> Response {
    let (content_type, body) = app.metrics.render();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers. Cheap (one `SELECT 1` on a reader connection, no table
/// touched), because agents probe it every second while they wait out an outage.
pub async fn readyz(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    app.store
        .ping()
        .await
        .map_err(|e| ApiError::unavailable(&e.to_string()))?;
    Ok(Json(json!({"status": "ready"})))
}
