//! `/v1/nonconformities` (Clause 10.2): the list with filters for readers, and the actions on
//! one (acknowledge, cause, actions, action done, close) for holders of a corrective-action
//! token. Every action names its actor and becomes an evidence record; a refused request
//! stores nothing.

use std::sync::Arc;

use aims_core::nonconformity::{Input, Nonconformity, Status};
use aims_core::time::{self, Bound};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::query::Query;

use super::auth::{Corrector, Reader};
use super::error::ApiError;
use crate::services::corrective::{self, ActError};
use crate::state::App;

/// Filters of `GET /v1/nonconformities`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this objective.
    pub objective: Option<String>,
    /// Only those with an action past due.
    pub overdue: Option<bool>,
}

/// The JSON form of a nonconformity at `now_ms`.
pub fn view(nc: &Nonconformity, now_ms: i64) -> Value {
    let t = time::rfc3339_millis;
    json!({
        "id": nc.id,
        "objective": nc.objective,
        "version": nc.version,
        "severity": nc.severity,
        "status": nc.status.as_str(),
        "opened": t(nc.opened_ms),
        "age_seconds": (now_ms - nc.opened_ms).max(0) / 1000,
        "owner": nc.owner(),
        "firings": nc.firings.iter().map(|&f| t(f)).collect::<Vec<_>>(),
        "acknowledged": nc.acknowledged.as_ref().map(|(at, actor, note)| json!({"at": t(*at), "actor": actor, "note": note})),
        "cause": nc.cause.as_ref().map(|(text, category)| json!({"text": text, "category": category})),
        "actions": nc.actions.iter().map(|a| json!({
            "id": a.id,
            "description": a.description,
            "owner": a.owner,
            "due": t(a.due_ms),
            "control": a.control,
            "planned_by": a.actor,
            "done": a.done.as_ref().map(|(at, actor)| json!({"at": t(*at), "actor": actor})),
            "overdue": a.is_overdue(now_ms),
        })).collect::<Vec<_>>(),
        "verification": nc.verification.map(|v| json!({"since": t(v.since_ms), "passing_evaluations": v.streak})),
        "effective": nc.effective_ms.map(t),
        "ineffective_verifications": nc.ineffective,
        "timeline": nc.timeline.iter().map(|s| json!({
            "at": t(s.at_ms), "input": s.input, "actor": s.actor,
            "from": s.from.as_str(), "to": s.to.as_str(),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /v1/nonconformities?status=&objective=&overdue=`.
pub async fn list(
    State(app): State<Arc<App>>,
    _: Reader,
    Query(f): Query<Filter>,
) -> Result<Response, ApiError> {
    let status = match f.status.as_deref() {
        None => None,
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| ApiError::bad_request("status", "not a nonconformity status"))?,
        ),
    };
    let now = app.now_ms();
    let all = app.nonconformities.read();
    let items: Vec<Value> = all
        .values()
        .filter(|n| status.is_none_or(|s| n.status == s))
        .filter(|n| f.objective.as_ref().is_none_or(|o| &n.objective == o))
        .filter(|n| f.overdue.is_none_or(|o| (n.overdue(now).count() > 0) == o))
        .map(|n| view(n, now))
        .collect();
    Ok(Json(json!({"nonconformities": items})).into_response())
}

/// `GET /v1/nonconformities/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    _: Reader,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    let now = app.now_ms();
    let all = app.nonconformities.read();
    let nc = all.get(&id).ok_or_else(|| not_found(id))?;
    Ok(Json(view(nc, now)).into_response())
}

fn not_found(id: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "id",
        &format!("nonconformity {id} does not exist"),
    )
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("body", &e.to_string()))
}

async fn apply(app: &App, id: u64, input: Input) -> Result<Response, ApiError> {
    match corrective::act(app, id, input).await {
        Ok(nc) => Ok(Json(view(&nc, app.now_ms())).into_response()),
        Err(ActError::NotFound(id)) => Err(not_found(id)),
        Err(ActError::Refused(r)) => Err(match r {
            aims_core::nonconformity::Refusal::Field { field, message } => {
                ApiError::bad_request(field, message)
            }
            other => ApiError::new(StatusCode::CONFLICT, "", &other.to_string()),
        }),
        Err(ActError::Store(e)) => {
            tracing::error!(error = %e, "nonconformity not stored");
            Err(ApiError::unavailable(
                "the store failed; nothing was recorded",
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Acknowledge {
    actor: String,
    #[serde(default)]
    note: String,
}

/// `POST /v1/nonconformities/{id}/acknowledge` `{"actor", "note"}`.
pub async fn acknowledge(
    State(app): State<Arc<App>>,
    _: Corrector,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: Acknowledge = parse(&body)?;
    apply(
        &app,
        id,
        Input::Acknowledge {
            actor: b.actor,
            note: b.note,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cause {
    actor: String,
    cause: String,
    category: String,
}

/// `POST /v1/nonconformities/{id}/cause` `{"actor", "cause", "category"}`.
pub async fn cause(
    State(app): State<Arc<App>>,
    _: Corrector,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: Cause = parse(&body)?;
    apply(
        &app,
        id,
        Input::Cause {
            actor: b.actor,
            text: b.cause,
            category: b.category,
        },
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    actor: String,
    description: String,
    owner: String,
    due: String,
    control: String,
}

/// `POST /v1/nonconformities/{id}/actions` `{"actor", "description", "owner", "due",
/// "control"}`; `due` is an RFC 3339 time, a date (the end of that day) or ms since the epoch.
pub async fn plan(
    State(app): State<Arc<App>>,
    _: Corrector,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: Plan = parse(&body)?;
    let due_ms = time::parse_time(&b.due, Bound::End)
        .map_err(|e| ApiError::bad_request("due", &e.to_string()))?;
    let mut r = apply(
        &app,
        id,
        Input::PlanAction {
            actor: b.actor,
            description: b.description,
            owner: b.owner,
            due_ms,
            control: b.control,
        },
    )
    .await?;
    *r.status_mut() = StatusCode::CREATED;
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Actor {
    actor: String,
    #[serde(default)]
    note: String,
}

/// `POST /v1/nonconformities/{id}/actions/{action}/done` `{"actor"}`.
pub async fn done(
    State(app): State<Arc<App>>,
    _: Corrector,
    Path((id, action)): Path<(u64, u32)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: Actor = parse(&body)?;
    apply(
        &app,
        id,
        Input::CompleteAction {
            actor: b.actor,
            action,
        },
    )
    .await
}

/// `POST /v1/nonconformities/{id}/close` `{"actor", "note"}`: only once effective.
pub async fn close(
    State(app): State<Arc<App>>,
    _: Corrector,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: Actor = parse(&body)?;
    apply(
        &app,
        id,
        Input::Close {
            actor: b.actor,
            note: b.note,
        },
    )
    .await
}
