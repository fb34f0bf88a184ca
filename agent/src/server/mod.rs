//! The HTTP interface: `POST /v1/events`, `POST /v1/labels`, `GET /metrics`, `GET /healthz`
//! (liveness), `GET /readyz` (readiness: not ready while the spool refuses writes).
//!
//! Statuses: 202 when at least one item was accepted (the reply lists the rejected ones), 400
//! when none was (or the JSON body does not parse, or the gzip stream is corrupt), 413 past the
//! body limit (raw or decompressed), 415 for a Content-Type or Content-Encoding the agent does
//! not read, 503 with `Retry-After` when `server.max_concurrent_requests` ingest requests are
//! already in progress or the body-memory budget is spent (with `Connection: close`, so a pooled
//! client does not reuse a connection whose body was not read), 408 for a body slower than
//! `server.body_min_rate_bytes`. Valid events are folded into window summaries on the thread
//! that parsed them, through a pool of shards (`fold`), before the reply; those outside the
//! windows still open (late, future), or reaching a stopped monitor (overload), are dropped,
//! counted, and listed as `dropped_items` in the reply. Labels go to the windowing task.

pub mod cloudevents;
mod fold;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{AgentConfig, LimitsConfig, ServerConfig};
use crate::ingest::{self, BodyError, IngestReply, ItemError, Position};
use crate::metrics::AgentMetrics;
use crate::monitor::{Monitor, MonitorError, Recorder};
use crate::window::{now_ms, Input};

/// Body memory is budgeted in units of this many bytes (a semaphore permit each).
const BODY_UNIT: usize = 1024;

/// What every handler shares.
#[derive(Clone)]
struct App {
    recorder: Recorder,
    fast: Arc<ingest::FastDecoder>,
    server: Arc<ServerConfig>,
    limits: Arc<LimitsConfig>,
    permits: Arc<Semaphore>,
    body_memory: Arc<Semaphore>,
    /// The events endpoint's shards: requests fold their events on their own thread.
    shards: Arc<fold::ShardPool>,
}

/// A valid event that was still not recorded, as listed in the reply.
#[derive(Debug, Clone, Serialize)]
struct DroppedItem {
    #[serde(flatten)]
    position: Position,
    reason: &'static str,
}

/// The reply body of an ingest request: every item is accepted (valid) or rejected (listed in
/// `errors`), and of the accepted ones `dropped` were not recorded (listed in `dropped_items`
/// with the reason), so `received = accepted + rejected` and `accepted = recorded + dropped`.
#[derive(Serialize)]
struct Reply {
    #[serde(flatten)]
    reply: IngestReply,
    /// Valid items not recorded: overloaded, or outside the windows still open.
    dropped: usize,
    /// The first [`ingest::MAX_LISTED_ERRORS`] dropped items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dropped_items: Vec<DroppedItem>,
    /// Labels only: how the recorded labels joined their predictions, so a label for an id
    /// the agent does not hold is said to be unmatched rather than silently "accepted". Absent
    /// when the windowing task did not answer within [`JOIN_REPLY_WAIT`].
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<crate::window::LabelJoins>,
}

/// How long a label request waits for the windowing task to say how its labels joined.
const JOIN_REPLY_WAIT: Duration = Duration::from_secs(5);

/// The agent's routes, with the limits of `server` and `limits`.
pub fn router(recorder: Recorder, server: &ServerConfig, limits: &LimitsConfig) -> Router {
    let units = (server.max_body_memory_bytes / BODY_UNIT).clamp(1, Semaphore::MAX_PERMITS);
    Router::new()
        .route("/v1/events", post(events))
        .route("/v1/labels", post(labels))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::disable())
        .with_state(App {
            fast: Arc::new(ingest::FastDecoder::new(recorder.schema())),
            shards: Arc::new(fold::ShardPool::new(recorder.clone())),
            recorder,
            server: Arc::new(server.clone()),
            limits: Arc::new(limits.clone()),
            permits: Arc::new(Semaphore::new(server.max_concurrent_requests.max(1))),
            body_memory: Arc::new(Semaphore::new(units)),
        })
}

/// The process's soft limit on open files (Linux `/proc/self/limits`), when known.
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `max_connections`, held below the open-file limit with `reserved_fds` to spare.
pub fn connection_cap(server: &ServerConfig) -> usize {
    let cap = match open_file_limit() {
        Some(limit) => server
            .max_connections
            .min(limit.saturating_sub(server.reserved_fds)),
        None => server.max_connections,
    };
    cap.max(1)
}

/// A connection's socket, noting when bytes last moved so an idle connection can be closed.
struct Tracked {
    stream: TcpStream,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Resolves once nothing moved on the connection for `idle`.
async fn idle_for(last: Arc<AtomicU64>, epoch: Instant, idle: Duration) {
    let idle_ms = idle.as_millis() as u64;
    loop {
        let quiet =
            (epoch.elapsed().as_millis() as u64).saturating_sub(last.load(Ordering::Relaxed));
        if quiet >= idle_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis((idle_ms - quiet).max(10))).await;
    }
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
///
/// Each connection gets the header timeout (hyper's), an idle timeout, and a slot of the
/// connection cap ([`connection_cap`]); past the cap the agent stops accepting until a slot
/// frees, so descriptors stay free for the spool.
pub async fn serve(
    listener: TcpListener,
    routes: Router,
    metrics: AgentMetrics,
    server: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = connection_cap(server);
    let slots = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(server.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let idle = server.idle_timeout;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => s.expect("never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (or a transient error): wait, never spin or exit.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while tasks.try_join_next().is_some() {}
        let epoch = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let io = hyper_util::rt::TokioIo::new(Tracked {
            stream,
            last: Arc::clone(&last),
            epoch,
        });
        let service = hyper_util::service::TowerToHyperService::new(routes.clone());
        let builder = Arc::clone(&builder);
        let mut stop = stop_rx.clone();
        let metrics = metrics.clone();
        tasks.spawn(async move {
            let _slot: OwnedSemaphorePermit = slot;
            metrics.connections.inc();
            let conn = builder.serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = idle_for(Arc::clone(&last), epoch, idle) => {
                        metrics.connections_timed_out.with_label_values(&["idle"]).inc();
                        tracing::debug!("closing an idle connection");
                        break;
                    }
                    _ = stop.wait_for(|s| *s), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            metrics.connections.dec();
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open 10 s after shutdown; closing them");
    }
    Ok(())
}

/// Adds `Connection: close`: the body was not (fully) read, so the connection cannot be
/// reused, and a pooled client must learn that from the response rather than a reset.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
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
        BodyError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
        BodyError::Memory => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::debug!(status = %status, error = %e, "ingest request refused");
    let resp = (status, Json(IngestReply::refused(e))).into_response();
    match e {
        BodyError::TooLarge { .. } | BodyError::TooSlow { .. } => closing(resp),
        BodyError::Memory => {
            let mut resp = closing(resp);
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
            resp
        }
        _ => resp,
    }
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Takes `bytes` of the body-memory budget, or fails at once.
fn reserve(app: &App, bytes: usize) -> Result<OwnedSemaphorePermit, BodyError> {
    let units = bytes.div_ceil(BODY_UNIT).max(1);
    let units = u32::try_from(units).map_err(|_| BodyError::Memory)?;
    Arc::clone(&app.body_memory)
        .try_acquire_many_owned(units)
        .map_err(|_| BodyError::Memory)
}

/// A body, the memory it holds reserved.
struct ReadBody {
    format: ingest::BodyFormat,
    bytes: Vec<u8>,
    _memory: Vec<OwnedSemaphorePermit>,
}

/// Reads, bounds and decodes the body; the items' format comes from the Content-Type. The body
/// must keep to `body_min_rate_bytes` per second after `body_grace`, and every byte held
/// (raw and decompressed) is taken from the body-memory budget first.
async fn read_body(app: &App, req: Request) -> Result<ReadBody, BodyError> {
    let headers = req.headers();
    let format = ingest::body_format(header(headers, CONTENT_TYPE))?;
    let encoding = header(headers, CONTENT_ENCODING).map(str::to_owned);
    let limit = app.max_body_bytes();
    let too_large = BodyError::TooLarge {
        limit,
        decompressed: false,
    };
    let declared = header(headers, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    let mut memory = Vec::new();
    if let Some(n) = declared {
        memory.push(reserve(app, n as usize)?);
    }
    let mut reserved = declared.unwrap_or(0) as usize;
    let mut body: Body = req.into_body();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let started = tokio::time::Instant::now();
    let (grace, rate) = (app.server.body_grace, app.server.body_min_rate_bytes.max(1));
    loop {
        let allowed = grace + Duration::from_secs_f64(bytes.len() as f64 / rate as f64);
        let frame = match tokio::time::timeout_at(started + allowed, body.frame()).await {
            Err(_) => {
                app.recorder
                    .metrics()
                    .connections_timed_out
                    .with_label_values(&["body"])
                    .inc();
                return Err(BodyError::TooSlow {
                    received: bytes.len(),
                    rate,
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(BodyError::InvalidEncoding(format!("body read failed: {e}")))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large);
            }
            if bytes.len() + data.len() > reserved {
                let more = bytes.len() + data.len() - reserved;
                memory.push(reserve(app, more)?);
                reserved += more.div_ceil(BODY_UNIT) * BODY_UNIT;
            }
            bytes.extend_from_slice(&data);
        }
    }
    let is_plain = matches!(
        encoding.as_deref().map(str::trim),
        None | Some("") | Some("identity")
    );
    if is_plain {
        return Ok(ReadBody {
            format,
            bytes,
            _memory: memory,
        });
    }
    let decoded = ingest::decode(encoding.as_deref(), &bytes, limit)?;
    drop(bytes);
    memory.push(reserve(app, decoded.len())?);
    Ok(ReadBody {
        format,
        bytes: decoded,
        _memory: memory,
    })
}

impl App {
    fn max_body_bytes(&self) -> usize {
        self.server.max_body_bytes
    }
}

fn finish(reply: IngestReply, dropped: usize, dropped_items: Vec<DroppedItem>) -> Response {
    finish_labels(reply, dropped, dropped_items, None)
}

/// [`finish`], saying how the labels joined.
fn finish_labels(
    reply: IngestReply,
    dropped: usize,
    dropped_items: Vec<DroppedItem>,
    labels: Option<crate::window::LabelJoins>,
) -> Response {
    let status = if reply.accepted == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::ACCEPTED
    };
    (
        status,
        Json(Reply {
            reply,
            dropped,
            dropped_items,
            labels,
        }),
    )
        .into_response()
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
            position: None,
            field: "body".to_owned(),
            reason: "overloaded",
            message: "too many ingest requests at once; retry shortly".to_owned(),
        }],
        ..IngestReply::default()
    };
    closing(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            Json(reply),
        )
            .into_response(),
    )
}

/// Labels are decoded and handed on in batches of this many, so a body of many tiny items holds
/// at most one batch of decoded labels at a time (besides the bounded queue).
const BATCH: usize = 1024;

/// What one ingest request did with its items so far.
#[derive(Default)]
struct Tally {
    reply: IngestReply,
    dropped: usize,
    dropped_items: Vec<DroppedItem>,
}

impl Tally {
    fn drop_item(&mut self, position: Position, reason: &'static str) {
        self.dropped += 1;
        if self.dropped_items.len() < ingest::MAX_LISTED_ERRORS {
            self.dropped_items.push(DroppedItem { position, reason });
        }
    }
}

async fn events(State(app): State<App>, req: Request) -> Response {
    let Ok(_permit) = app.permits.try_acquire() else {
        return overloaded(&app);
    };
    let body = match read_body(&app, req).await {
        Ok(b) => b,
        Err(e) => return refuse(&app, &e),
    };
    // Decoded and folded here, on this worker thread (see `fold`); the reply waits for it.
    let folded = app
        .shards
        .fold(body.format, &body.bytes, &app.fast, now_ms());
    drop(body);
    match folded {
        Ok(tally) => finish(tally.reply, tally.dropped, tally.dropped_items),
        Err(e) => refuse(&app, &e),
    }
}

async fn labels(State(app): State<App>, req: Request) -> Response {
    let Ok(_permit) = app.permits.try_acquire() else {
        return overloaded(&app);
    };
    let body = match read_body(&app, req).await {
        Ok(b) => b,
        Err(e) => return refuse(&app, &e),
    };
    let metrics = app.recorder.metrics();
    let schema = app.recorder.schema();
    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut told = Vec::new();
    let mut submit = |batch: &mut Vec<(String, aims_core::Target)>, tally: &mut Tally| {
        if !batch.is_empty() {
            let n = batch.len();
            let (tell, answer) = tokio::sync::oneshot::channel();
            if app
                .recorder
                .submit(Input::LabelsTold(std::mem::take(batch), tell))
            {
                told.push(answer);
            } else {
                tally.dropped += n;
            }
        }
    };
    let counted = ingest::for_each_item(
        body.format,
        &body.bytes,
        &app.limits,
        &mut |position, item| {
            metrics.labels_received.inc();
            let label = item
                .and_then(|i| ingest::parse_label(i, &app.limits))
                .and_then(|raw| schema.validate_label(raw));
            match label {
                Ok(l) => {
                    tally.reply.accepted += 1;
                    batch.push(l);
                    if batch.len() >= BATCH {
                        submit(&mut batch, &mut tally);
                    }
                }
                Err(e) => {
                    metrics
                        .labels_rejected
                        .with_label_values(&[e.reason.as_str()])
                        .inc();
                    tally.reply.reject(ItemError::new(position, e));
                }
            }
        },
    );
    if let Err(e) = counted {
        return refuse(&app, &e);
    }
    submit(&mut batch, &mut tally);
    let joins = tokio::time::timeout(JOIN_REPLY_WAIT, async {
        let mut sum = crate::window::LabelJoins::default();
        for answer in told {
            let j = answer.await.ok()?;
            sum.joined += j.joined;
            sum.unmatched += j.unmatched;
            sum.expired += j.expired;
        }
        Some(sum)
    })
    .await
    .ok()
    .flatten();
    finish_labels(tally.reply, tally.dropped, Vec::new(), joins)
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = header(headers, AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(token) = app.server.metrics_token.as_deref() {
        if !bearer_matches(&headers, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required (server.metrics_token)\n",
            )
                .into_response();
        }
    }
    let (content_type, body) = app.recorder.metrics().encode();
    let mut resp = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

/// Liveness: the process serves requests.
async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Readiness: not ready (503) while closed summaries wait in memory because the spool refuses
/// writes; the reasons are counted in `aims_agent_spool_write_failures_total`.
async fn readyz(State(app): State<App>) -> Response {
    let unwritten = app.recorder.metrics().spool_unwritten.get();
    if unwritten > 0 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "not_ready",
                "reason": "spool_unwritable",
                "summaries_in_memory": unwritten,
            })),
        )
            .into_response();
    }
    Json(serde_json::json!({"status": "ready"})).into_response()
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

/// Resolves on Ctrl-C or SIGTERM (the shared [`aims_runtime::shutdown::signal`]); the handlers
/// are installed at the call, so call it before announcing that the agent listens.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let signal = aims_runtime::shutdown::signal();
    async move {
        signal.await;
        tracing::info!("shutting down: closing the open windows");
    }
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
    // Before the "listening" line: a SIGTERM from then on is a clean shutdown.
    let shutdown = shutdown_signal();
    tracing::info!(
        addr = %addr,
        model = %cfg.model.name,
        profile = %monitor.profile().hash,
        window = ?cfg.window.length,
        max_connections = connection_cap(&cfg.server),
        "aims-agent listening on http://{addr}"
    );
    let metrics = monitor.recorder().metrics().clone();
    let mut routes = router(monitor.recorder(), &cfg.server, &cfg.limits);
    if let Some(ce) = &cfg.cloudevents {
        routes = routes.merge(cloudevents::routes(monitor.recorder(), ce, &cfg.server));
    }
    let served = serve(listener, routes, metrics, &cfg.server, shutdown).await;
    monitor.shutdown().await;
    tracing::info!("stopped");
    served.map_err(RunError::Serve)
}
