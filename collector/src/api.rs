//! HTTP routes: ingest, reference profiles, the read API, reload, health and `/metrics`.
//!
//! Errors are JSON bodies `{"error": ..., "field": ...}` naming what to fix. Agent tokens and
//! read tokens are separate: an agent's token cannot read the evidence, and a dashboard's token
//! cannot send summaries.

use std::sync::Arc;

use aims_core::evidence::Kind;
use aims_core::hash::sha256_hex;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::config::AgentToken;
use crate::ingest;

/// A request the API refuses, naming the field at fault; rendered as a JSON body.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {field}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The field, header or parameter at fault (empty when none).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    /// An error with `status` about `field`.
    pub fn new(status: StatusCode, field: &str, message: &str) -> Self {
        Self {
            status,
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.field.is_empty() {
            json!({"error": self.message})
        } else {
            json!({"error": self.message, "field": self.field})
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// A JSON error response naming the field at fault.
pub fn problem(status: StatusCode, field: &str, message: &str) -> Response {
    ApiError::new(status, field, message).into_response()
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Authorization", message)
}

/// Who is sending.
#[derive(Debug)]
pub enum Caller<'a> {
    /// No agent tokens are configured: ingest is open.
    Open,
    /// An authenticated agent.
    Agent(&'a AgentToken),
}

impl Caller<'_> {
    /// Whether the caller may send for `model`.
    pub fn may_send(&self, model: &str) -> bool {
        match self {
            Caller::Open => true,
            Caller::Agent(a) => a.models.iter().any(|m| m == "*" || m == model),
        }
    }
}

fn bearer_hash(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| sha256_hex(token.trim().as_bytes()))
}

/// Authenticates an agent: 401 without or with an unknown token, when tokens are configured.
pub fn agent_auth<'a>(app: &'a App, headers: &HeaderMap) -> Result<Caller<'a>, ApiError> {
    let agents = &app.config.auth.agents;
    if agents.is_empty() {
        return Ok(Caller::Open);
    }
    let hash = bearer_hash(headers).ok_or_else(|| unauthorized("a bearer token is required"))?;
    agents
        .iter()
        .find(|a| a.token_sha256 == hash)
        .map(Caller::Agent)
        .ok_or_else(|| unauthorized("unknown token"))
}

/// Authorises a reader: 401 without or with an unknown read token, when read tokens are
/// configured.
pub fn read_auth(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let tokens = &app.config.auth.read_token_sha256;
    if tokens.is_empty() {
        return Ok(());
    }
    let hash = bearer_hash(headers).ok_or_else(|| unauthorized("a read token is required"))?;
    if tokens.contains(&hash) {
        Ok(())
    } else {
        Err(unauthorized("unknown read token"))
    }
}

/// The whole router.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.server.max_body_bytes;
    Router::new()
        .route("/", get(crate::status::page))
        .route("/v1/summaries", post(ingest::post_summary))
        .route(
            "/v1/models/{model}/reference",
            get(get_reference).put(ingest::put_reference),
        )
        .route("/v1/objectives", get(objectives))
        .route("/v1/objectives/{id}/evaluations", get(evaluations))
        .route("/v1/alerts", get(alerts))
        .route("/v1/evidence", get(evidence))
        .route("/v1/reports", get(crate::report::serve))
        .route("/-/reload", post(reload))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

#[derive(Debug, Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

async fn get_reference(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    Query(q): Query<VersionQuery>,
    headers: HeaderMap,
) -> Response {
    let agent_ok = !app.config.auth.agents.is_empty()
        && matches!(agent_auth(&app, &headers), Ok(c) if c.may_send(&model));
    let open = app.config.auth.agents.is_empty() && app.config.auth.read_token_sha256.is_empty();
    if !agent_ok && !open {
        if let Err(r) = read_auth(&app, &headers) {
            return r.into_response();
        }
    }
    let profiles = app.profiles.read().expect("profiles lock");
    let found = match &q.version {
        Some(v) => profiles.find(&model, v),
        None => profiles.latest(&model),
    };
    match found {
        Some(p) => Json(p.as_ref().clone()).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            if q.version.is_some() {
                "version"
            } else {
                "model"
            },
            &format!("no reference profile for model {model:?}"),
        ),
    }
}

fn rfc3339(ms: i64) -> Value {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    Value::String(humantime::format_rfc3339_millis(t).to_string())
}

async fn objectives(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = read_auth(&app, &headers) {
        return r.into_response();
    }
    let file = app.objectives();
    let status = app.status.read().expect("status lock");
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
                "since": s.map(|s| rfc3339(s.lifecycle.since_ms)),
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

async fn alerts(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = read_auth(&app, &headers) {
        return r.into_response();
    }
    let file = app.objectives();
    let status = app.status.read().expect("status lock");
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
                "since": rfc3339(s.lifecycle.since_ms),
                "active_since": s.lifecycle.active_since_ms.map(rfc3339),
                "value": s.last_value,
                "target": o.target.to_string(),
                "owner": o.owner,
            }))
        })
        .collect();
    Json(json!({"alerts": items})).into_response()
}

#[derive(Debug, Deserialize)]
struct Page {
    from: Option<String>,
    to: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
}

fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                field,
                "expected milliseconds since the epoch or an RFC 3339 time",
            )
        })
}

fn page_body(rows: Vec<crate::store::EvidenceRow>, limit: u32) -> Value {
    let next = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.sealed.seq))
        .flatten();
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "seq": r.sealed.seq,
                "at": rfc3339(r.at_ms),
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

async fn evaluations(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<Page>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = read_auth(&app, &headers) {
        return r.into_response();
    }
    if !app.objectives().objectives.iter().any(|o| o.id == id)
        && !app.status.read().expect("status lock").contains_key(&id)
    {
        return problem(StatusCode::NOT_FOUND, "id", &format!("no objective {id:?}"));
    }
    let from = match q.from.as_deref().map(|t| parse_time("from", t)).transpose() {
        Ok(v) => v.unwrap_or(i64::MIN),
        Err(r) => return r.into_response(),
    };
    let to = match q.to.as_deref().map(|t| parse_time("to", t)).transpose() {
        Ok(v) => v.unwrap_or(i64::MAX),
        Err(r) => return r.into_response(),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match app
        .store
        .evidence_page(
            q.after.unwrap_or(0),
            limit,
            Some((&id, Kind::Evaluation, from, to)),
        )
        .await
    {
        Ok(rows) => Json(page_body(rows, limit)).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, "", &e.to_string()),
    }
}

async fn evidence(
    State(app): State<Arc<App>>,
    Query(q): Query<Page>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = read_auth(&app, &headers) {
        return r.into_response();
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (head_seq, head_hash) = app.evidence.head().await;
    match app
        .store
        .evidence_page(q.after.unwrap_or(0), limit, None)
        .await
    {
        Ok(rows) => {
            let mut body = page_body(rows, limit);
            body["head"] = json!({"seq": head_seq, "hash": head_hash});
            Json(body).into_response()
        }
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, "", &e.to_string()),
    }
}

async fn reload(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = read_auth(&app, &headers) {
        return r.into_response();
    }
    match crate::reload::reload(&app, "http").await {
        Ok((version, changed)) => Json(json!({"status": "reloaded", "file_version": version, "changed": changed})).into_response(),
        Err(crate::reload::ReloadError::Invalid { path, errors }) => (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "the objectives file is invalid; the previous objectives stay in force",
                "file": path,
                "errors": errors.iter().map(|e| json!({"line": e.line, "field": e.location, "message": e.message})).collect::<Vec<_>>(),
            })),
        )
            .into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, "objectives", &e.to_string()),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let (content_type, body) = app.metrics.render();
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store.summary_count().await {
        Ok(_) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, "", &e.to_string()),
    }
}

/// The OpenAPI 3 description of the routes above.
pub fn openapi() -> Value {
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let ok = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"type": "object"}}}});
    let paged = json!([
        {"name": "after", "in": "query", "schema": {"type": "integer"}, "description": "return records with seq greater than this (cursor)"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000, "default": 100}}
    ]);
    let read = json!([{"readToken": []}, {}]);
    json!({
        "openapi": "3.0.3",
        "info": {"title": "AIMS Monitor collector", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Ingests window summaries, evaluates AI objectives (ISO/IEC 42001 Clause 6.2) and keeps a hash-chained evidence log."},
        "components": {
            "securitySchemes": {
                "agentToken": {"type": "http", "scheme": "bearer", "description": "per-agent token, scoped to models"},
                "readToken": {"type": "http", "scheme": "bearer", "description": "read token"}
            },
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"}}, "required": ["error"]}}
        },
        "paths": {
            "/v1/summaries": {"post": {
                "summary": "Ingest one window summary envelope (JSON, optionally gzip). Idempotent by id.",
                "security": [{"agentToken": []}, {}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"202": ok("committed"), "200": ok("already stored (duplicate)"), "400": err, "401": err, "403": err,
                              "413": err, "422": err, "429": {"description": "overloaded; see Retry-After"}}
            }},
            "/v1/models/{model}/reference": {
                "parameters": [{"name": "model", "in": "path", "required": true, "schema": {"type": "string"}}],
                "put": {"summary": "Store a reference profile (idempotent by content hash)", "security": [{"agentToken": []}, {}],
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                        "responses": {"201": ok("stored"), "200": ok("already stored"), "400": err, "401": err, "403": err}},
                "get": {"summary": "The latest reference profile, or the one with ?version= (hash or model version)",
                        "parameters": [{"name": "version", "in": "query", "schema": {"type": "string"}}],
                        "security": [{"agentToken": []}, {"readToken": []}, {}],
                        "responses": {"200": ok("the profile"), "404": err}}
            },
            "/v1/objectives": {"get": {"summary": "Objectives with state, since, last value", "security": read, "responses": {"200": ok("objectives"), "401": err}}},
            "/v1/objectives/{id}/evaluations": {"get": {
                "summary": "Evaluations of one objective (evidence records), paged",
                "security": read,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "from", "in": "query", "schema": {"type": "string"}, "description": "ms since epoch or RFC 3339"},
                               {"name": "to", "in": "query", "schema": {"type": "string"}},
                               paged[0], paged[1]],
                "responses": {"200": ok("items and next_after"), "400": err, "401": err, "404": err}}},
            "/v1/alerts": {"get": {"summary": "Objectives currently pending or firing", "security": read, "responses": {"200": ok("alerts"), "401": err}}},
            "/v1/evidence": {"get": {"summary": "Evidence records in sequence order, paged, with the chain head", "security": read,
                                     "parameters": paged, "responses": {"200": ok("items, next_after and head"), "401": err}}},
            "/v1/reports": {"get": {"summary": "The Clause 9 performance-evaluation report for a period (html, md or json)", "security": read,
                                    "parameters": [{"name": "from", "in": "query", "required": true, "schema": {"type": "string"}, "description": "YYYY-MM-DD, RFC 3339 or ms since epoch"},
                                                   {"name": "to", "in": "query", "required": true, "schema": {"type": "string"}, "description": "a bare date includes that whole day"},
                                                   {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["html", "md", "json"], "default": "html"}},
                                                   {"name": "model", "in": "query", "schema": {"type": "string"}}],
                                    "responses": {"200": {"description": "the report", "content": {"text/html": {}, "text/markdown": {}, "application/json": {"schema": {"type": "object"}}}},
                                                  "400": err, "401": err}}},
            "/-/reload": {"post": {"summary": "Reload the objectives file; an invalid file keeps the old objectives", "security": read,
                                   "responses": {"200": ok("reloaded"), "400": err}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": ok("alive")}}},
            "/readyz": {"get": {"summary": "Readiness (database reachable)", "responses": {"200": ok("ready"), "503": err}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("OpenAPI 3 document")}}}
        }
    })
}
