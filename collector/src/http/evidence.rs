//! `GET /v1/evidence`: the evidence records in sequence order, paged, with the chain head.

use std::sync::Arc;

use aims_core::time;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::query::Query;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Reader;
use super::error::ApiError;
use crate::state::App;
use crate::store::EvidenceRow;

/// Paging (and, for evaluations, period) parameters.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// Period start (evaluations only).
    pub from: Option<String>,
    /// Period end (evaluations only).
    pub to: Option<String>,
    /// Records with a sequence greater than this.
    pub after: Option<u64>,
    /// Most records returned.
    pub limit: Option<u32>,
}

impl Page {
    /// The page size: 100 by default, 1 to 1,000.
    pub fn limit(&self) -> u32 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

/// The JSON page of `rows`, with the cursor of the next page when this one is full.
pub fn page_body(rows: Vec<EvidenceRow>, limit: u32) -> Value {
    let next = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.sealed.seq))
        .flatten();
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "seq": r.sealed.seq,
                "at": time::rfc3339_millis(r.at_ms),
                "kind": r.kind,
                "objective": r.objective,
                "record": serde_json::from_str::<Value>(&r.sealed.canonical).unwrap_or(Value::Null),
                "prev_hash": r.sealed.prev_hash,
                "hash": r.sealed.hash,
            })
        })
        .collect();
    json!({"items": items, "next_after": next})
}

/// `GET /v1/evidence?after=&limit=`.
pub async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<Page>,
    _: Reader,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit();
    let (head_seq, head_hash) = app.evidence.head().await;
    let rows = app
        .store
        .evidence_page(q.after.unwrap_or(0), limit, None)
        .await
        .map_err(|e| ApiError::unavailable(&e.to_string()))?;
    let mut body = page_body(rows, limit);
    body["head"] = json!({"seq": head_seq, "hash": head_hash});
    Ok(Json(body))
}

/// `GET /v1/evidence/checkpoint`: the latest signed checkpoint, as the signed note's text
/// (`text/plain`), ready to save and later pass to `evidence verify --since`. 404 when the
/// collector signs none (no `evidence.key_file`).
pub async fn checkpoint(State(app): State<Arc<App>>, _: Reader) -> Result<Response, ApiError> {
    let latest = app.checkpoint.read().clone();
    match latest {
        Some(c) => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            c.note,
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "evidence.key_file",
            "no checkpoint: the collector signs none without evidence.key_file",
        )),
    }
}
