//! The HTTP interface: `POST /v1/events`, `POST /v1/labels`, `GET /metrics`, `GET /healthz`.
//!
//! Statuses: 202 when at least one item was accepted (the reply lists the rejected ones), 400
//! when none was (or the JSON body does not parse, or the gzip stream is corrupt), 413 past the
//! body limit (raw or decompressed), 415 for a Content-Type or Content-Encoding the agent does
//! not read, 503 with `Retry-After` when `server.max_concurrent_requests` ingest requests are
//! already in progress. Valid events are handed to the windowing task without waiting; when its
//! queue is full they are dropped, counted, and reported as `dropped` in the reply.

use std::future::Future;
use std::sync::Arc;

use aims_core::event::RawLabel;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{AgentConfig, ServerConfig};
use crate::ingest::{self, BodyError, IngestReply, ItemError, Parsed};
use crate::metrics::AgentMetrics;
use crate::monitor::{Monitor, MonitorError, Recorder};
use crate::window::{now_ms, Input};

/// What every handler shares.
#[derive(Clone)]
struct App {
    recorder: Recorder,
    fast: Arc<ingest::FastDecoder>,
    max_body_bytes: usize,
    permits: Arc<Semaphore>,
}

/// The reply body of an ingest request.
#[derive(Serialize)]
struct Reply {
    #[serde(flatten)]
    reply: IngestReply,
    /// Valid items dropped because the agent is overloaded.
    #[serde(skip_serializing_if = "is_zero")]
    dropped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The agent's routes; `max_concurrent` ingest requests at once.
pub fn router(recorder: Recorder, max_body_bytes: usize, max_concurrent: usize) -> Router {
    Router::new()
        .route("/v1/events", post(events))
        .route("/v1/labels", post(labels))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::disable())
        .with_state(App {
            fast: Arc::new(ingest::FastDecoder::new(recorder.schema())),
            recorder,
            max_body_bytes,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        })
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    recorder: Recorder,
    server: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let routes = router(
        recorder,
        server.max_body_bytes,
        server.max_concurrent_requests,
    );
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}

fn refuse(app: &App, e: &BodyError) -> Response {
    app.recorder
        .metrics()
        .requests_rejected
        .with_label_values(&[e.reason()])
        .inc();
    let status = match e {
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyError::InvalidEncoding(m) if m.starts_with("unsupported") => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::debug!(status = %status, error = %e, "ingest request refused");
    (status, Json(IngestReply::refused(e))).into_response()
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads, bounds and decodes the body; the items' format comes from the Content-Type.
async fn read_body(app: &App, req: Request) -> Result<(ingest::BodyFormat, Vec<u8>), BodyError> {
    let headers = req.headers();
    let format = ingest::body_format(header(headers, CONTENT_TYPE))?;
    let encoding = header(headers, CONTENT_ENCODING).map(str::to_owned);
    let limit = app.max_body_bytes;
    let too_large = BodyError::TooLarge {
        limit,
        decompressed: false,
    };
    let declared = header(headers, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    let body: Body = req.into_body();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large)?;
    let decoded = ingest::decode(encoding.as_deref(), &bytes, limit)?;
    Ok((format, decoded))
}

fn finish(reply: IngestReply, dropped: usize) -> Response {
    let status = if reply.accepted == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    (status, Json(Reply { reply, dropped })).into_response()
}

/// The reply when every ingest slot is busy: 503 at once, never a wait.
fn overloaded(app: &App) -> Response {
    app.recorder
        .metrics()
        .requests_rejected
        .with_label_values(&["overloaded"])
        .inc();
    let reply = IngestReply {
        errors: vec![ItemError {
            position: ingest::Position::Index(0),
            field: "body".to_owned(),
            reason: "overloaded",
            message: "too many ingest requests at once; retry shortly".to_owned(),
        }],
        ..IngestReply::default()
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::RETRY_AFTER, "1")],
        Json(reply),
    )
        .into_response()
}

async fn events(State(app): State<App>, req: Request) -> Response {
    let Ok(_permit) = app.permits.try_acquire() else {
        return overloaded(&app);
    };
    let (format, body) = match read_body(&app, req).await {
        Ok(b) => b,
        Err(e) => return refuse(&app, &e),
    };
    let schema = app.recorder.schema();
    let items = match ingest::decode_events(format, &body, schema, &app.fast, now_ms()) {
        Ok(items) => items,
        Err(e) => return refuse(&app, &e),
    };
    drop(body);
    let metrics = app.recorder.metrics();
    metrics.events_received.inc_by(items.len() as u64);
    let mut reply = IngestReply::default();
    let mut valid = Vec::with_capacity(items.len());
    for (position, item) in items {
        match item {
            Ok(e) => valid.push(e),
            Err(e) => {
                metrics
                    .events_rejected
                    .with_label_values(&[e.reason.as_str()])
                    .inc();
                reply.reject(ItemError::new(position, e));
            }
        }
    }
    reply.accepted = valid.len();
    metrics.events_accepted.inc_by(valid.len() as u64);
    if reply.rejected > 0 {
        app.recorder.submit(Input::Rejected(reply.rejected as u64));
    }
    let mut dropped = 0;
    if !valid.is_empty() {
        let n = valid.len();
        if !app.recorder.submit(Input::Events(valid)) {
            dropped = n;
        }
    }
    finish(reply, dropped)
}

async fn labels(State(app): State<App>, req: Request) -> Response {
    let Ok(_permit) = app.permits.try_acquire() else {
        return overloaded(&app);
    };
    let (format, body) = match read_body(&app, req).await {
        Ok(b) => b,
        Err(e) => return refuse(&app, &e),
    };
    let items: Vec<Parsed<RawLabel>> = match ingest::parse_labels(format, &body) {
        Ok(items) => items,
        Err(e) => return refuse(&app, &e),
    };
    let metrics = app.recorder.metrics();
    metrics.labels_received.inc_by(items.len() as u64);
    let schema = app.recorder.schema();
    let mut reply = IngestReply::default();
    let mut valid = Vec::with_capacity(items.len());
    for (position, raw) in items {
        match raw.and_then(|raw| schema.validate_label(raw)) {
            Ok(l) => valid.push(l),
            Err(e) => {
                metrics
                    .labels_rejected
                    .with_label_values(&[e.reason.as_str()])
                    .inc();
                reply.reject(ItemError::new(position, e));
            }
        }
    }
    reply.accepted = valid.len();
    let mut dropped = 0;
    if !valid.is_empty() {
        let n = valid.len();
        if !app.recorder.submit(Input::Labels(valid)) {
            dropped = n;
        }
    }
    finish(reply, dropped)
}

async fn metrics(State(app): State<App>) -> Response {
    let (content_type, body) = app.recorder.metrics().encode();
    let mut resp = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Why `aims-agent run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listen address cannot be bound.
    #[error("server.listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The monitor cannot start.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// The server failed.
    #[error("server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: closing the open windows");
}

/// `aims-agent run`: the monitor behind the HTTP server, until Ctrl-C or SIGTERM; then the open
/// windows are closed into the spool and the spool is shipped for up to `ship.shutdown_timeout`.
///
/// The port is bound only once the reference profile is loaded, so a model's requests are
/// refused (not left hanging) while the agent waits for its collector.
pub async fn run(cfg: AgentConfig) -> Result<(), RunError> {
    let monitor = Monitor::start(&cfg, AgentMetrics::new()).await?;
    let listener = match TcpListener::bind(&cfg.server.listen).await {
        Ok(l) => l,
        Err(source) => {
            monitor.shutdown().await;
            return Err(RunError::Bind {
                addr: cfg.server.listen.clone(),
                source,
            });
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| cfg.server.listen.clone());
    tracing::info!(
        addr = %addr,
        model = %cfg.model.name,
        profile = %monitor.profile().hash,
        window = ?cfg.window.length,
        "aims-agent listening on http://{addr}"
    );
    let mut routes = router(
        monitor.recorder(),
        cfg.server.max_body_bytes,
        cfg.server.max_concurrent_requests,
    );
    if let Some(ce) = &cfg.cloudevents {
        routes = routes.merge(crate::cloudevents::routes(
            monitor.recorder(),
            ce,
            &cfg.server,
        ));
    }
    let served = axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    monitor.shutdown().await;
    tracing::info!("stopped");
    served.map_err(RunError::Serve)
}
