//! `GET /v1/alerts`: the objectives currently pending or firing.

use std::sync::Arc;

use aims_core::time;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::Reader;
use crate::state::App;

/// `GET /v1/alerts`.
pub async fn list(State(app): State<Arc<App>>, _: Reader) -> Response {
    let file = app.objectives();
    let status = app.status.read();
    let items: Vec<Value> = file
        .objectives
        .iter()
        .filter_map(|o| {
            let s = status.get(&o.id).filter(|s| s.lifecycle.state.is_alert())?;
            Some(json!({
                "objective": o.id,
                "title": o.title,
                "model": o.model,
                "severity": o.severity.as_str(),
                "state": s.lifecycle.state.as_str(),
                "since": time::rfc3339_millis(s.lifecycle.since_ms),
                "active_since": s.lifecycle.active_since_ms.map(time::rfc3339_millis),
                "value": s.last_value,
                "target": o.target.to_string(),
                "owner": o.owner,
            }))
        })
        .collect();
    Json(json!({"alerts": items})).into_response()
}
