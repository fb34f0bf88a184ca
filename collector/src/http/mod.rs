//! The HTTP layer: the router, authentication as extractors, one error type and one file per
//! resource. Handlers translate requests into calls on the services and state below, and
//! their results into responses; no rule about summaries, objectives or evidence lives here.
//!
//! Errors are JSON bodies `{"error": ..., "field": ...}` naming what to fix ([`ApiError`]).

pub mod alerts;
pub mod auth;
pub mod body;
pub mod error;
pub mod evidence;
pub mod nonconformities;
pub mod objectives;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod references;
pub mod reports;
pub mod status_page;
pub mod summaries;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};

pub use error::ApiError;

use crate::state::App;

/// The whole router.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.config.server.max_body_bytes;
    Router::new()
        .route("/", get(status_page::get))
        .route("/v1/summaries", post(summaries::post))
        .route(
            "/v1/models/{model}/reference",
            get(references::get).put(references::put),
        )
        .route("/v1/objectives", get(objectives::list))
        .route(
            "/v1/objectives/{id}/evaluations",
            get(objectives::evaluations),
        )
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/evidence", get(evidence::list))
        .route("/v1/evidence/checkpoint", get(evidence::checkpoint))
        .route("/v1/nonconformities", get(nonconformities::list))
        .route("/v1/nonconformities/{id}", get(nonconformities::get))
        .route(
            "/v1/nonconformities/{id}/acknowledge",
            post(nonconformities::acknowledge),
        )
        .route(
            "/v1/nonconformities/{id}/cause",
            post(nonconformities::cause),
        )
        .route(
            "/v1/nonconformities/{id}/actions",
            post(nonconformities::plan),
        )
        .route(
            "/v1/nonconformities/{id}/actions/{action}/done",
            post(nonconformities::done),
        )
        .route(
            "/v1/nonconformities/{id}/close",
            post(nonconformities::close),
        )
        .route("/v1/reports", get(reports::get))
        .route("/-/reload", post(ops::reload))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(|| async { Json(openapi::openapi()) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Any path the API does not have: a JSON 404 naming it.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "path",
        &format!("no such resource: {}", uri.path()),
    )
}

/// A known path with the wrong method: a JSON 405 naming the method.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method",
        &format!("{} does not accept {method}", uri.path()),
    )
}
