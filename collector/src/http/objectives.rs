//! `GET /v1/objectives` (each objective with its state, since and last value) and
//! `GET /v1/objectives/{id}/evaluations` (its evaluation records, paged).

use std::sync::Arc;

use aims_core::evidence::Kind;
use aims_core::time::{self, Bound};
use axum::extract::{Path, State};

use super::query::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Reader;
use super::error::ApiError;
use super::evidence::{page_body, Page};
use crate::state::App;

/// `GET /v1/objectives`.
pub async fn list(State(app): State<Arc<App>>, _: Reader) -> Response {
    let file = app.objectives();
    let status = app.status.read();
    let items: Vec<Value> = file
        .objectives
        .iter()
        .map(|o| {
            let s = status.get(&o.id);
            json!({
                "id": o.id,
                "title": o.title,
                "model": o.model,
                "metric": o.metric,
                "selector": o.selector,
                "target": o.target.to_string(),
                "warning": o.warning.map(|w| w.to_string()),
                "window_seconds": o.window.as_secs(),
                "for_seconds": o.for_.as_secs(),
                "min_samples": o.min_samples,
                "severity": o.severity.as_str(),
                "owner": o.owner,
                "version": s.map(|s| s.version.clone()),
                "state": s.map(|s| s.lifecycle.state.as_str()),
                "since": s.map(|s| time::rfc3339_millis(s.lifecycle.since_ms)),
                "since_ms": s.map(|s| s.lifecycle.since_ms),
                "last_value": s.and_then(|s| s.last_value.clone()),
                "last_verdict": s.and_then(|s| s.last_verdict.clone()),
                "samples": s.and_then(|s| s.samples),
                "evaluated_ms": s.and_then(|s| s.evaluated_ms),
            })
        })
        .collect();
    Json(json!({"policy": file.policy, "file_version": file.version, "objectives": items}))
        .into_response()
}

/// `GET /v1/objectives/{id}/evaluations?from=&to=&after=&limit=`.
pub async fn evaluations(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<Page>,
    _: Reader,
) -> Result<Json<Value>, ApiError> {
    if !app.objectives().objectives.iter().any(|o| o.id == id)
        && !app.status.read().contains_key(&id)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "id",
            &format!("no objective {id:?}"),
        ));
    }
    let bound = |field: &str, text: Option<&str>, bound: Bound| {
        text.map(|t| time::parse_time(t, bound))
            .transpose()
            .map_err(|e| ApiError::bad_request(field, &e.to_string()))
    };
    let from = bound("from", q.from.as_deref(), Bound::Start)?.unwrap_or(i64::MIN);
    let to = bound("to", q.to.as_deref(), Bound::End)?.unwrap_or(i64::MAX);
    let limit = q.limit();
    let rows = app
        .store
        .evidence_page(
            q.after.unwrap_or(0),
            limit,
            Some((&id, Kind::Evaluation, from, to)),
        )
        .await
        .map_err(|e| ApiError::unavailable(&e.to_string()))?;
    Ok(Json(page_body(rows, limit)))
}
