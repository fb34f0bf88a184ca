//! `GET /v1/evidence`: the evidence records in sequence order, paged, with the chain head.

use std::sync::Arc;

use aims_core::time;
use axum::extract::State;

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
