//! `PUT` and `GET /v1/models/{model}/reference`: reference profiles, stored idempotently by
//! content hash. Stores are counted in `aims_profiles_total` by outcome.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};

use super::query::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Agent, Reader};
use super::body::decode;
use super::error::ApiError;
use crate::services::ingest;
use crate::state::{App, Caller};

/// `PUT /v1/models/{model}/reference`: stores a profile (idempotent by hash).
pub async fn put(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    agent: Result<Agent, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (outcome, response) = match agent {
        Err(e) => ("unauthorized", e.into_response()),
        Ok(Agent(caller)) => store(&app, &caller, &model, &headers, &body).await,
    };
    app.metrics.profiles.with_label_values(&[outcome]).inc();
    response
}

async fn store(
    app: &App,
    caller: &Caller,
    model: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (&'static str, Response) {
    if let Err(r) = ingest::may_put_reference(caller, model) {
        return (r.reason.outcome(), ApiError::from(r).into_response());
    }
    let bytes = match decode(headers, body, app.config.server.max_decompressed_bytes) {
        Ok(b) => b,
        Err(e) => return ("invalid", e.into_response()),
    };
    match ingest::put_reference(app, caller, model, &bytes).await {
        Err(r) => (r.reason.outcome(), ApiError::from(r).into_response()),
        Ok(stored) => {
            let status = if stored.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (
                if stored.created { "created" } else { "existing" },
                (
                    status,
                    Json(json!({"model": model, "model_version": stored.model_version, "hash": stored.hash})),
                )
                    .into_response(),
            )
        }
    }
}

/// `?version=`: a profile hash or a model version.
#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    version: Option<String>,
}

/// `GET /v1/models/{model}/reference`: the latest profile, or the one `?version=` names.
/// Open to the model's agents as well as to readers: an agent fetches its reference at start.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    Query(q): Query<VersionQuery>,
    agent: Result<Agent, ApiError>,
    reader: Result<Reader, ApiError>,
) -> Result<Response, ApiError> {
    let auth = &app.config.auth;
    let agent_ok = !auth.agents.is_empty() && matches!(&agent, Ok(Agent(c)) if c.may_send(&model));
    let open = auth.agents.is_empty() && auth.read_token_sha256.is_empty();
    if !agent_ok && !open {
        reader?;
    }
    let found = {
        let profiles = app.profiles.read();
        match &q.version {
            Some(v) => profiles.find(&model, v),
            None => profiles.latest(&model),
        }
    };
    match found {
        Some(p) => Ok(Json(p.as_ref().clone()).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            if q.version.is_some() {
                "version"
            } else {
                "model"
            },
            &format!("no reference profile for model {model:?}"),
        )),
    }
}
