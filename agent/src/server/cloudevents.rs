//! The CloudEvents endpoint (see [`crate::cloudevents`] for the formats it reads): joins each
//! inference's request and response halves and records one prediction event per row through
//! the [`Recorder`], answering the sender at once.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aims_core::event::{parse_timestamp, Event, FeatureValue};
use aims_runtime::metrics::{int_counter, int_counter_vec, int_gauge};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::cloudevents::envelope::{self, CloudEvent, Data, Mode};
use crate::cloudevents::join::{Gone, JoinBuffer, Offer, Unjoined};
use crate::cloudevents::mapping::{RowResult, ScoredPrediction};
use crate::cloudevents::tensor::{self, refusal, Half, Refusal};
use crate::cloudevents::{
    CloudEventsConfig, Mapping, RowIn, DISCARD_REASONS, REJECT_REASONS, REQUEST_TYPES,
    RESPONSE_TYPES, UNJOINED_REASONS,
};
use crate::config::ServerConfig;
use crate::ingest::{self, ItemError, Position};
use crate::monitor::Recorder;
use crate::window::{now_ms, Input};

/// The endpoint's own metrics, in the agent's registry.
#[derive(Clone)]
pub struct CloudEventsMetrics {
    /// CloudEvents read, by half (`request`, `response`).
    pub received: IntCounterVec,
    /// CloudEvents refused, by reason.
    pub rejected: IntCounterVec,
    /// Well-formed CloudEvents not used, by reason.
    pub discarded: IntCounterVec,
    /// Requests joined to their responses.
    pub joined: IntCounter,
    /// Halves that left the join buffer unjoined, by reason.
    pub unjoined: IntCounterVec,
    /// Halves waiting in the join buffer.
    pub join_entries: IntGauge,
    /// Estimated bytes of the halves waiting.
    pub join_bytes: IntGauge,
}

impl CloudEventsMetrics {
    /// Creates the metrics in `registry`, reasons pre-registered at zero.
    pub fn new(registry: &prometheus::Registry) -> Self {
        let vec = |name: &str, help: &str, label: &str, values: &[&str]| {
            let c = int_counter_vec(registry, name, help, &[label]);
            for v in values {
                c.with_label_values(&[v]);
            }
            c
        };
        Self {
            received: vec(
                "aims_agent_cloudevents_received_total",
                "CloudEvents read, by half.",
                "half",
                &["request", "response"],
            ),
            rejected: vec(
                "aims_agent_cloudevents_rejected_total",
                "CloudEvents refused as malformed, by reason.",
                "reason",
                &REJECT_REASONS,
            ),
            discarded: vec(
                "aims_agent_cloudevents_discarded_total",
                "Well-formed CloudEvents not used, by reason.",
                "reason",
                &DISCARD_REASONS,
            ),
            unjoined: vec(
                "aims_agent_cloudevents_unjoined_total",
                "Inference halves that left the join buffer without their partner, by reason.",
                "reason",
                &UNJOINED_REASONS,
            ),
            joined: int_counter(
                registry,
                "aims_agent_cloudevents_joined_total",
                "Inference requests joined to their responses.",
            ),
            join_entries: int_gauge(
                registry,
                "aims_agent_cloudevents_join_entries",
                "Inference halves waiting for their partner.",
            ),
            join_bytes: int_gauge(
                registry,
                "aims_agent_cloudevents_join_bytes",
                "Estimated bytes of the inference halves waiting for their partner.",
            ),
        }
    }
}

/// A request half: its validated rows and its time.
#[derive(Debug)]
pub struct RequestHalf {
    ts_ms: Option<i64>,
    rows: Vec<RowResult<RowIn>>,
}

/// A response half.
#[derive(Debug)]
pub struct ResponseHalf {
    ts_ms: Option<i64>,
    rows: Vec<RowResult<ScoredPrediction>>,
}

/// What waits in the join buffer.
#[derive(Debug)]
pub enum Waiting {
    /// The request came first.
    Request(RequestHalf),
    /// The response came first.
    Response(ResponseHalf),
}

impl Waiting {
    fn is_request(&self) -> bool {
        matches!(self, Self::Request(_))
    }

    /// An estimate of the heap bytes held, for the join's byte budget.
    fn bytes(&self, id: &str) -> usize {
        let rows: usize = match self {
            Self::Request(r) => r
                .rows
                .iter()
                .map(|row| match row {
                    Ok(row) => {
                        std::mem::size_of::<RowResult<RowIn>>()
                            + row.features.len() * std::mem::size_of::<FeatureValue>()
                            + row
                                .features
                                .iter()
                                .map(|f| match f {
                                    FeatureValue::Categorical(s) => s.len(),
                                    _ => 0,
                                })
                                .sum::<usize>()
                            + row.groups.len() * 2
                    }
                    Err(_) => std::mem::size_of::<RowResult<RowIn>>(),
                })
                .sum(),
            Self::Response(r) => r
                .rows
                .iter()
                .map(|row| {
                    std::mem::size_of::<RowResult<ScoredPrediction>>()
                        + row
                            .as_ref()
                            .ok()
                            .and_then(|(_, s)| s.as_ref())
                            .map_or(0, |s| s.len() * std::mem::size_of::<f64>())
                })
                .sum(),
        };
        rows + id.len() + 64
    }
}

/// What the endpoint shares between requests.
struct Shared {
    recorder: Recorder,
    mapping: Mapping,
    join: Mutex<JoinBuffer<Waiting>>,
    metrics: CloudEventsMetrics,
    max_body_bytes: usize,
    permits: Semaphore,
}

/// The CloudEvents endpoint.
#[derive(Clone)]
pub struct Endpoint(Arc<Shared>);

/// The reply to a CloudEvents request.
#[derive(Debug, Default, Serialize)]
pub struct Reply {
    /// CloudEvents read (waiting for their partner, or joined).
    pub accepted: usize,
    /// Well-formed CloudEvents not used (duplicates, another model version).
    pub discarded: usize,
    /// CloudEvents refused.
    pub rejected: usize,
    /// Prediction events recorded by this request's joins.
    pub events: usize,
    /// Refusals and rows refused, first [`ingest::MAX_LISTED_ERRORS`].
    pub errors: Vec<ItemError>,
}

impl Reply {
    fn list(&mut self, index: usize, field: String, reason: &'static str, message: String) {
        if self.errors.len() < ingest::MAX_LISTED_ERRORS {
            self.errors.push(ItemError {
                position: Some(Position::Index(index)),
                field,
                reason,
                message,
            });
        }
    }
}

impl Endpoint {
    /// The endpoint for `mapping`, recording through `recorder`.
    pub fn new(
        recorder: Recorder,
        mapping: Mapping,
        max_body_bytes: usize,
        max_concurrent: usize,
    ) -> Self {
        let metrics = CloudEventsMetrics::new(&recorder.metrics().registry);
        let join = JoinBuffer::new(
            mapping.join.capacity,
            mapping.join.max_bytes,
            i64::try_from(mapping.join.ttl.as_millis()).unwrap_or(i64::MAX),
        );
        Self(Arc::new(Shared {
            recorder,
            mapping,
            join: Mutex::new(join),
            metrics,
            max_body_bytes,
            permits: Semaphore::new(max_concurrent.max(1)),
        }))
    }

    /// The route, and a task that sweeps orphans out of the join buffer (it ends when the
    /// endpoint is dropped). Call within a tokio runtime.
    pub fn router(self) -> Router {
        let weak = Arc::downgrade(&self.0);
        let every =
            (self.0.mapping.join.ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(sweep(weak, every));
        Router::new()
            .route(&self.0.mapping.path.clone(), post(handle))
            .layer(DefaultBodyLimit::disable())
            .with_state(self)
    }

    /// Sweeps expired halves at `now_ms`, counting them.
    pub fn expire(&self, now_ms: i64) {
        let gone = {
            let mut join = self.0.join.lock().expect("join lock");
            let gone = join.expire(now_ms);
            self.gauges(&join);
            gone
        };
        self.count_gone(gone);
    }

    fn gauges(&self, join: &JoinBuffer<Waiting>) {
        self.0.metrics.join_entries.set(join.len() as i64);
        self.0.metrics.join_bytes.set(join.bytes() as i64);
    }

    fn count_gone(&self, gone: Vec<Gone<Waiting>>) {
        for g in gone {
            let reason = match (g.why, g.half.is_request()) {
                (Unjoined::Expired, true) => "orphan_request",
                (Unjoined::Expired, false) => "orphan_response",
                (Unjoined::EvictedCapacity, _) => "evicted_capacity",
                (Unjoined::EvictedBytes, _) => "evicted_bytes",
            };
            if reason == "orphan_response" {
                tracing::warn!(ce_id = %g.id, "inference response without its request within the join TTL");
            } else {
                tracing::debug!(ce_id = %g.id, reason, "inference half left the join unjoined");
            }
            self.0.metrics.unjoined.with_label_values(&[reason]).inc();
        }
    }

    /// Reads, maps and joins the CloudEvents of one HTTP request.
    pub fn process(&self, events: Vec<Result<CloudEvent, Refusal>>, now: i64) -> Reply {
        let mut reply = Reply::default();
        for (i, ev) in events.into_iter().enumerate() {
            let result = ev.and_then(|ev| self.process_one(ev, now, &mut reply, i));
            if let Err(e) = result {
                self.0.metrics.rejected.with_label_values(&[e.reason]).inc();
                reply.rejected += 1;
                reply.list(i, e.field, e.reason, e.message);
            }
        }
        reply
    }

    fn process_one(
        &self,
        mut ev: CloudEvent,
        now: i64,
        reply: &mut Reply,
        index: usize,
    ) -> Result<(), Refusal> {
        let shared = &*self.0;
        let schema = shared.recorder.schema();
        let half = if REQUEST_TYPES.contains(&ev.kind.as_str()) {
            Half::Request
        } else if RESPONSE_TYPES.contains(&ev.kind.as_str()) {
            Half::Response
        } else {
            return Err(refusal(
                "unsupported_type",
                "type",
                format!("{:?} is not an inference request or response type", ev.kind),
            ));
        };
        let ts_ms = match &ev.time {
            None => None,
            Some(t) => Some(
                parse_timestamp("time", t)
                    .map_err(|e| refusal("invalid_timestamp", "time", e.message))?,
            ),
        };
        let mut frame = match ev.data.take() {
            None => {
                return Err(refusal(
                    "invalid_body",
                    "data",
                    "required: the inference body".to_owned(),
                ))
            }
            Some(Data::Bytes(b)) => tensor::parse_bytes(&b, half),
            Some(Data::Json(v)) => tensor::parse_value(v, half),
        }?;
        shared
            .metrics
            .received
            .with_label_values(&[match half {
                Half::Request => "request",
                Half::Response => "response",
            }])
            .inc();
        let mut row_errors = Vec::new();
        let waiting = match half {
            Half::Request => Waiting::Request(RequestHalf {
                ts_ms,
                rows: shared
                    .mapping
                    .request_rows(schema, &ev, &mut frame, &mut row_errors)?,
            }),
            Half::Response => Waiting::Response(ResponseHalf {
                ts_ms,
                rows: shared
                    .mapping
                    .response_rows_scored(schema, &frame, &mut row_errors)?,
            }),
        };
        for e in row_errors {
            reply.list(index, e.field, e.reason.as_str(), e.message);
        }
        if let Err(message) = shared.mapping.version_of(&ev, &frame) {
            {
                let mut join = shared.join.lock().expect("join lock");
                join.complete(&ev.id, now);
                self.gauges(&join);
            }
            shared
                .metrics
                .discarded
                .with_label_values(&["other_model_version"])
                .inc();
            reply.discarded += 1;
            reply.list(
                index,
                "model_version".to_owned(),
                "other_model_version",
                message,
            );
            return Ok(());
        }
        let bytes = waiting.bytes(&ev.id);
        let is_request = waiting.is_request();
        let mut gone = Vec::new();
        let offer = {
            let mut join = shared.join.lock().expect("join lock");
            let offer = join.offer(
                &ev.id,
                waiting,
                bytes,
                now,
                |w| w.is_request() != is_request,
                &mut gone,
            );
            self.gauges(&join);
            offer
        };
        self.count_gone(gone);
        match offer {
            Offer::Waiting => reply.accepted += 1,
            Offer::Duplicate => {
                shared
                    .metrics
                    .discarded
                    .with_label_values(&["duplicate"])
                    .inc();
                reply.discarded += 1;
            }
            Offer::TooLarge => {
                shared
                    .metrics
                    .discarded
                    .with_label_values(&["too_large"])
                    .inc();
                reply.discarded += 1;
                reply.list(
                    index,
                    "data".to_owned(),
                    "too_large",
                    format!("{bytes} bytes of rows exceed cloudevents.join.max_bytes"),
                );
            }
            Offer::Joined(first, second) => {
                let (request, response) = match (first, second) {
                    (Waiting::Request(q), Waiting::Response(r))
                    | (Waiting::Response(r), Waiting::Request(q)) => (q, r),
                    // The join pairs only a request with a response (`is_partner` above).
                    _ => {
                        return Err(refusal(
                            "invalid_envelope",
                            "type",
                            "not a request/response pair",
                        ))
                    }
                };
                self.emit(&ev.id, request, response, now, reply)?;
                reply.accepted += 1;
                shared.metrics.joined.inc();
            }
        }
        Ok(())
    }

    /// Turns a joined pair into one event per row and hands them to the windowing task.
    fn emit(
        &self,
        id: &str,
        request: RequestHalf,
        response: ResponseHalf,
        now: i64,
        reply: &mut Reply,
    ) -> Result<(), Refusal> {
        let metrics = self.0.recorder.metrics();
        if request.rows.len() != response.rows.len() {
            return Err(refusal(
                "row_count_mismatch",
                "data",
                format!(
                    "the request has {} rows but its response {}",
                    request.rows.len(),
                    response.rows.len()
                ),
            ));
        }
        let ts_ms = request.ts_ms.or(response.ts_ms).unwrap_or(now);
        let latency_ms = match (request.ts_ms, response.ts_ms) {
            (Some(a), Some(b)) if b >= a => Some((b - a) as f64),
            _ => None,
        };
        metrics.events_received.inc_by(request.rows.len() as u64);
        let mut valid = Vec::with_capacity(request.rows.len());
        let mut rejected = 0u64;
        for (i, (input, output)) in request.rows.into_iter().zip(response.rows).enumerate() {
            match (input, output) {
                (Ok(input), Ok((prediction, class_scores))) => valid.push((
                    Event {
                        id: Some(format!("{id}-{i}")),
                        ts_ms,
                        features: input.features,
                        groups: input.groups,
                        prediction,
                        label: None,
                        latency_ms,
                    },
                    class_scores,
                )),
                (Err(reason), _) | (_, Err(reason)) => {
                    rejected += 1;
                    metrics
                        .events_rejected
                        .with_label_values(&[reason.as_str()])
                        .inc();
                }
            }
        }
        metrics.events_accepted.inc_by(valid.len() as u64);
        if rejected > 0 {
            self.0.recorder.submit(Input::Rejected(rejected));
        }
        reply.events += valid.len();
        if !valid.is_empty() {
            // A full queue drops and counts them (aims_agent_events_dropped_total{reason="overload"}).
            self.0.recorder.submit(Input::Scored(valid));
        }
        Ok(())
    }
}

async fn sweep(weak: Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = weak.upgrade() else { return };
        Endpoint(shared).expire(now_ms());
    }
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn refuse(
    ep: &Endpoint,
    status: StatusCode,
    field: &str,
    reason: &'static str,
    message: String,
) -> Response {
    ep.0.recorder
        .metrics()
        .requests_rejected
        .with_label_values(&[reason])
        .inc();
    let mut reply = Reply::default();
    reply.list(0, field.to_owned(), reason, message);
    let mut resp = (status, Json(reply)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    resp
}

async fn handle(State(ep): State<Endpoint>, req: Request) -> Response {
    let Ok(_permit) = ep.0.permits.try_acquire() else {
        return refuse(
            &ep,
            StatusCode::SERVICE_UNAVAILABLE,
            "body",
            "overloaded",
            "too many CloudEvents requests at once; retry shortly".to_owned(),
        );
    };
    let headers = req.headers().clone();
    let Some(mode) = envelope::mode(header(&headers, CONTENT_TYPE), &headers) else {
        return refuse(
            &ep,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type",
            "unsupported_media_type",
            format!(
                "{:?}: send binary-mode CloudEvents (ce-* headers, JSON body), application/cloudevents+json or application/cloudevents-batch+json",
                header(&headers, CONTENT_TYPE).unwrap_or("")
            ),
        );
    };
    let limit = ep.0.max_body_bytes;
    let too_large = || format!("request body exceeds the limit of {limit} bytes");
    if header(&headers, CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
    {
        return refuse(
            &ep,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            "payload_too_large",
            too_large(),
        );
    }
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), limit).await else {
        return refuse(
            &ep,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            "payload_too_large",
            too_large(),
        );
    };
    let body = match ingest::decode(header(&headers, CONTENT_ENCODING), &bytes, limit) {
        Ok(b) => b,
        Err(e) => {
            let status = match e {
                ingest::BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                ingest::BodyError::InvalidEncoding(ref m) if m.starts_with("unsupported") => {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            return refuse(&ep, status, e.field(), e.reason(), e.to_string());
        }
    };
    drop(bytes);
    let events = match read_events(mode, &headers, body) {
        Ok(events) => events,
        Err(message) => {
            ep.0.metrics
                .rejected
                .with_label_values(&["invalid_json"])
                .inc();
            return refuse(
                &ep,
                StatusCode::BAD_REQUEST,
                "body",
                "invalid_json",
                message,
            );
        }
    };
    let reply = ep.process(events, now_ms());
    let status = if reply.rejected > 0 && reply.accepted + reply.discarded == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, Json(reply)).into_response()
}

type Read = Result<CloudEvent, Refusal>;

fn read_events(mode: Mode, headers: &HeaderMap, body: Vec<u8>) -> Result<Vec<Read>, String> {
    let envelope_err = |e: envelope::EnvelopeError| refusal("invalid_envelope", e.field, e.message);
    match mode {
        Mode::Binary => Ok(vec![
            envelope::from_binary(headers, body).map_err(envelope_err)
        ]),
        Mode::Structured => {
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("invalid JSON body: {e}"))?;
            Ok(vec![envelope::from_structured(v, "").map_err(envelope_err)])
        }
        Mode::Batch => {
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("invalid JSON body: {e}"))?;
            let serde_json::Value::Array(items) = v else {
                return Err("a CloudEvents batch is a JSON array".to_owned());
            };
            if items.is_empty() {
                return Err("the batch holds no events".to_owned());
            }
            Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    envelope::from_structured(v, &format!("[{i}].")).map_err(envelope_err)
                })
                .collect())
        }
    }
}

/// The CloudEvents route for `aims-agent run`, with the server's body and concurrency limits.
pub fn routes(recorder: Recorder, cfg: &CloudEventsConfig, server: &ServerConfig) -> Router {
    let mapping = match Mapping::compile(cfg, recorder.schema()) {
        Ok(m) => m,
        Err(e) => {
            // `AgentConfig::load` compiled the same mapping already; this cannot happen.
            tracing::error!(error = %e, "cloudevents endpoint disabled");
            return Router::new();
        }
    };
    tracing::info!(path = %mapping.path, "CloudEvents endpoint enabled");
    Endpoint::new(
        recorder,
        mapping,
        server.max_body_bytes,
        server.max_concurrent_requests,
    )
    .router()
}
