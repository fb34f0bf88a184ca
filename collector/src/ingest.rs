//! `POST /v1/summaries` and `PUT /v1/models/{model}/reference`: authenticated, bounded,
//! validated and idempotent.
//!
//! A summary is acknowledged only once it is committed. Handlers hand validated summaries to a
//! single writer task over a bounded queue; the writer commits them in batches (group commit:
//! one transaction, one fsync, for everything that queued meanwhile) and answers each. A full
//! queue is the overload signal: the handler answers 429 with `Retry-After` at once rather
//! than letting requests pile up.

use std::io::Read;
use std::sync::Arc;

use aims_core::wire::SummaryEnvelope;
use aims_core::ReferenceProfile;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::api::{agent_auth, problem, ApiError, Caller};
use crate::app::App;

/// The longest window an agent may summarise; longer ones are refused rather than trusted.
const MAX_WINDOW_MS: u64 = 86_400_000;

/// A validated summary waiting to be committed, and where to send the outcome.
#[derive(Debug)]
pub struct Job {
    /// The summary.
    pub envelope: SummaryEnvelope,
    /// `Ok(true)` when new, `Ok(false)` when a duplicate, `Err` when the commit failed.
    pub reply: oneshot::Sender<Result<bool, String>>,
}

/// Commits queued summaries in batches until `drain` fires (after the HTTP server stopped),
/// then commits whatever is still queued and returns.
pub async fn writer(app: Arc<App>, mut rx: mpsc::Receiver<Job>, mut drain: oneshot::Receiver<()>) {
    let max = app.config.server.ingest_batch;
    let mut jobs = Vec::with_capacity(max);
    let mut draining = false;
    loop {
        let received = if draining {
            rx.recv_many(&mut jobs, max).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut jobs, max) => n,
                _ = &mut drain => {
                    rx.close();
                    draining = true;
                    continue;
                }
            }
        };
        if received == 0 {
            return;
        }
        let now = crate::now_ms();
        let refs: Vec<&SummaryEnvelope> = jobs.iter().map(|j| &j.envelope).collect();
        match app.store.insert_summaries(&refs, now).await {
            Ok(fresh) => {
                {
                    let mut agg = app.aggregates.write().expect("aggregates lock");
                    for (job, new) in jobs.iter().zip(&fresh) {
                        let e = &job.envelope;
                        if *new {
                            agg.add(
                                &e.model,
                                &e.model_version,
                                e.window_start_ms,
                                e.window_ms,
                                &e.summary,
                            );
                        }
                        agg.received(&e.model, now);
                        app.metrics
                            .agent_last_summary
                            .with_label_values(&[&e.agent, &e.model])
                            .set(now as f64 / 1000.0);
                    }
                }
                for (job, new) in jobs.drain(..).zip(fresh) {
                    job.reply.send(Ok(new)).ok();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = jobs.len(), "committing summaries failed");
                for job in jobs.drain(..) {
                    job.reply.send(Err(e.to_string())).ok();
                }
            }
        }
    }
}

/// Decodes a body that may be gzip-compressed, bounding the decompressed size.
fn decode(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" => {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(body)
                .take(limit as u64 + 1)
                .read_to_end(&mut out);
            match read {
                Err(e) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "body",
                    &format!("gzip: {e}"),
                )),
                Ok(_) if out.len() > limit => Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body",
                    &format!("decompressed body exceeds {limit} bytes"),
                )),
                Ok(_) => Ok(out),
            }
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding",
            &format!("unsupported encoding {other:?}; use gzip or none"),
        )),
    }
}

/// `POST /v1/summaries`.
pub async fn post_summary(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (outcome, response) = summary(&app, &headers, &body).await;
    app.metrics.ingest.with_label_values(&[outcome]).inc();
    response
}

async fn summary(app: &App, headers: &HeaderMap, body: &[u8]) -> (&'static str, Response) {
    let caller = match agent_auth(app, headers) {
        Ok(c) => c,
        Err(r) => return ("unauthorized", r.into_response()),
    };
    let bytes = match decode(headers, body, app.config.server.max_decompressed_bytes) {
        Ok(b) => b,
        Err(r) => return ("invalid", r.into_response()),
    };
    let envelope: SummaryEnvelope = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => {
            return (
                "invalid",
                problem(
                    StatusCode::BAD_REQUEST,
                    "body",
                    &format!("not a summary envelope: {e}"),
                ),
            )
        }
    };
    if let Err(e) = envelope.validate() {
        return (
            "invalid",
            problem(StatusCode::BAD_REQUEST, e.field, &e.message),
        );
    }
    if envelope.window_ms > MAX_WINDOW_MS {
        return (
            "invalid",
            problem(
                StatusCode::BAD_REQUEST,
                "window_ms",
                "must be at most one day (86400000)",
            ),
        );
    }
    if let Caller::Agent(agent) = &caller {
        if agent.name != envelope.agent {
            return (
                "forbidden",
                problem(
                    StatusCode::FORBIDDEN,
                    "agent",
                    &format!(
                        "the token belongs to agent {:?}, not {:?}",
                        agent.name, envelope.agent
                    ),
                ),
            );
        }
        if !caller.may_send(&envelope.model) {
            return (
                "forbidden",
                problem(
                    StatusCode::FORBIDDEN,
                    "model",
                    &format!(
                        "agent {:?} may not send for model {:?}",
                        agent.name, envelope.model
                    ),
                ),
            );
        }
    }
    let profile = app
        .profiles
        .read()
        .expect("profiles lock")
        .get(&envelope.summary.profile_hash);
    let Some(profile) = profile else {
        return (
            "unknown_profile",
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "summary.profile_hash",
                &format!(
                    "unknown reference profile {}; PUT it to /v1/models/{}/reference first",
                    envelope.summary.profile_hash, envelope.model
                ),
            ),
        );
    };
    if profile.model != envelope.model {
        return (
            "unknown_profile",
            problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "summary.profile_hash",
                &format!(
                    "profile {} belongs to model {:?}",
                    profile.hash, profile.model
                ),
            ),
        );
    }
    if let Err(e) = envelope.summary.check_against(&profile.schema, &profile) {
        return (
            "invalid",
            problem(StatusCode::BAD_REQUEST, "summary", &e.to_string()),
        );
    }
    let id = envelope.id.clone();
    let (reply, answer) = oneshot::channel();
    match app.ingest.try_send(Job { envelope, reply }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "",
                "ingest queue full; retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return ("overloaded", r);
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return (
                "error",
                problem(StatusCode::SERVICE_UNAVAILABLE, "", "shutting down"),
            )
        }
    }
    match answer.await {
        Ok(Ok(true)) => (
            "accepted",
            (
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "status": "accepted"})),
            )
                .into_response(),
        ),
        Ok(Ok(false)) => (
            "duplicate",
            (
                StatusCode::OK,
                Json(json!({"id": id, "status": "duplicate"})),
            )
                .into_response(),
        ),
        Ok(Err(e)) => ("error", problem(StatusCode::SERVICE_UNAVAILABLE, "", &e)),
        Err(_) => (
            "error",
            problem(StatusCode::SERVICE_UNAVAILABLE, "", "shutting down"),
        ),
    }
}

/// `PUT /v1/models/{model}/reference`: stores a profile (idempotent by hash).
pub async fn put_reference(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (outcome, response) = reference(&app, &model, &headers, &body).await;
    app.metrics.profiles.with_label_values(&[outcome]).inc();
    response
}

async fn reference(
    app: &App,
    model: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (&'static str, Response) {
    let caller = match agent_auth(app, headers) {
        Ok(c) => c,
        Err(r) => return ("unauthorized", r.into_response()),
    };
    if !caller.may_send(model) {
        return (
            "forbidden",
            problem(
                StatusCode::FORBIDDEN,
                "model",
                &format!("not allowed for model {model:?}"),
            ),
        );
    }
    let bytes = match decode(headers, body, app.config.server.max_decompressed_bytes) {
        Ok(b) => b,
        Err(r) => return ("invalid", r.into_response()),
    };
    let profile: ReferenceProfile = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => {
            return (
                "invalid",
                problem(
                    StatusCode::BAD_REQUEST,
                    "body",
                    &format!("not a reference profile: {e}"),
                ),
            )
        }
    };
    if profile.model != model {
        return (
            "invalid",
            problem(
                StatusCode::BAD_REQUEST,
                "model",
                &format!(
                    "the profile is for model {:?}, the path names {model:?}",
                    profile.model
                ),
            ),
        );
    }
    if !profile.hash_is_valid() {
        return (
            "invalid",
            problem(
                StatusCode::BAD_REQUEST,
                "hash",
                "does not match the profile's content",
            ),
        );
    }
    match profile.schema.clone().validated() {
        Err(e) => {
            return (
                "invalid",
                problem(StatusCode::BAD_REQUEST, "schema", &e.to_string()),
            )
        }
        Ok(schema) if schema != profile.schema => {
            return (
                "invalid",
                problem(
                    StatusCode::BAD_REQUEST,
                    "schema",
                    "is not in validated form (defaults not filled)",
                ),
            )
        }
        Ok(_) => {}
    }
    if let Err(e) = profile.check_against(&profile.schema) {
        return ("invalid", problem(StatusCode::BAD_REQUEST, "schema", &e));
    }
    match app.store.put_profile(&profile, crate::now_ms()).await {
        Err(e) => (
            "error",
            problem(StatusCode::SERVICE_UNAVAILABLE, "", &e.to_string()),
        ),
        Ok(created) => {
            let hash = profile.hash.clone();
            let version = profile.model_version.clone();
            app.profiles.write().expect("profiles lock").insert(profile);
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            if created {
                tracing::info!(model, model_version = %version, hash = %hash, "reference profile stored");
            }
            (
                if created { "created" } else { "existing" },
                (
                    status,
                    Json(json!({"model": model, "model_version": version, "hash": hash})),
                )
                    .into_response(),
            )
        }
    }
}
