//! The agent's own Prometheus metrics, in a registry of its own so an embedding application's
//! registry is never polluted.
//!
//! Names follow the Prometheus naming guide: `aims_agent_` prefix, `_total` on counters, base
//! units. Label values come only from fixed reason sets, pre-registered at zero so that a
//! dashboard sees a series before the first incident.

use aims_core::event::RejectReason;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Why an accepted-by-validation event was still not recorded.
pub const DROP_REASONS: [&str; 3] = ["overload", "late", "future"];

/// Why a whole request was refused before any event was looked at.
pub const REQUEST_REJECT_REASONS: [&str; 8] = [
    "overloaded",
    "payload_too_large",
    "unsupported_media_type",
    "invalid_encoding",
    "invalid_json",
    "empty",
    "body_too_slow",
    "memory",
];

/// Why a summary could not be written to the spool (an `std::io::ErrorKind`, grouped).
pub const SPOOL_FAILURE_REASONS: [&str; 5] = [
    "permission_denied",
    "no_space",
    "too_many_open_files",
    "read_only",
    "other",
];

/// Why a summary was lost before reaching the spool.
pub const LOSS_REASONS: [&str; 1] = ["spool_unwritable"];

/// Every metric the agent exports.
#[derive(Clone)]
pub struct AgentMetrics {
    /// The registry all of them live in.
    pub registry: Registry,
    /// Prediction events parsed from requests or passed to `record`.
    pub events_received: IntCounter,
    /// Events that passed validation (= summarised + dropped, once the queue is drained).
    pub events_accepted: IntCounter,
    /// Valid events recorded into a window summary.
    pub events_summarised: IntCounter,
    /// Events refused by validation, by reason.
    pub events_rejected: IntCounterVec,
    /// Valid events not recorded, by reason (overload, late, future).
    pub events_dropped: IntCounterVec,
    /// Late labels received.
    pub labels_received: IntCounter,
    /// Late labels refused by validation, by reason.
    pub labels_rejected: IntCounterVec,
    /// Valid labels not processed, by reason (overload only).
    pub labels_dropped: IntCounterVec,
    /// Labels joined to their prediction.
    pub labels_joined: IntCounter,
    /// Labels whose prediction was not (or no longer) waiting in the join buffer.
    pub labels_unmatched: IntCounter,
    /// Predictions that waited longer than the join TTL and were forgotten unlabelled.
    pub labels_expired: IntCounter,
    /// Predictions pushed out of the full join buffer before their TTL.
    pub join_evicted: IntCounter,
    /// Predictions currently waiting for a label.
    pub join_entries: IntGauge,
    /// Whole requests refused, by reason.
    pub requests_rejected: IntCounterVec,
    /// Windows closed (their summary written to the spool).
    pub windows_closed: IntCounter,
    /// Late summaries (late labels or events for a closed window) written to the spool.
    pub late_summaries: IntCounter,
    /// Summaries acknowledged by the collector.
    pub summaries_shipped: IntCounter,
    /// Failed shipping attempts that will be retried.
    pub summaries_retried: IntCounter,
    /// Summaries the collector refused for good, moved to the dead-letter folder.
    pub summaries_dead_lettered: IntCounter,
    /// Summaries evicted from the full spool before delivery.
    pub spool_evicted: IntCounter,
    /// Summaries in the spool.
    pub spool_files: IntGauge,
    /// Bytes in the spool.
    pub spool_bytes: IntGauge,
    /// Duration of successful summary deliveries.
    pub ship_duration: Histogram,
    /// Events waiting between the request path and the windowing task.
    pub queue_events: IntGauge,
    /// Failed writes of a summary to the spool, by reason (each is retried from memory).
    pub spool_write_failures: IntCounterVec,
    /// Closed summaries waiting in memory because the spool refused them; `/readyz` is not
    /// ready while this is above zero.
    pub spool_unwritten: IntGauge,
    /// Summaries lost for good, by reason.
    pub summaries_lost: IntCounterVec,
    /// Open-window checkpoints written (the crash-loss bound is `window.checkpoint`).
    pub checkpoints: IntCounter,
    /// Open HTTP connections.
    pub connections: IntGauge,
    /// Connections closed for a timeout, by kind (header, idle).
    pub connections_timed_out: IntCounterVec,
    /// The agent's configured identity and model as labels of a constant 1, so dashboards can
    /// name a scrape target and join it to the collector's per-agent series.
    pub info: IntGaugeVec,
}

use aims_runtime::metrics::{int_counter as counter, int_gauge as gauge};

fn counter_vec(registry: &Registry, name: &str, help: &str, reasons: &[&str]) -> IntCounterVec {
    let c = aims_runtime::metrics::int_counter_vec(registry, name, help, &["reason"]);
    for r in reasons {
        c.with_label_values(&[r]);
    }
    c
}

impl AgentMetrics {
    /// Creates and registers every metric, reason labels pre-registered at zero.
    pub fn new() -> Self {
        let r = Registry::new();
        let reject: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        let ship_duration = Histogram::with_opts(
            HistogramOpts::new(
                "aims_agent_ship_duration_seconds",
                "Time to deliver one summary to the collector, successful attempts only.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("static metric definition");
        r.register(Box::new(ship_duration.clone()))
            .expect("unique metric name");
        let info = IntGaugeVec::new(
            Opts::new(
                "aims_agent_info",
                "The agent's configured name and model (value is always 1).",
            ),
            &["agent", "model", "version"],
        )
        .expect("static metric definition");
        r.register(Box::new(info.clone()))
            .expect("unique metric name");
        Self {
            events_received: counter(
                &r,
                "aims_agent_events_received_total",
                "Prediction events received.",
            ),
            events_accepted: counter(
                &r,
                "aims_agent_events_accepted_total",
                "Prediction events that passed validation.",
            ),
            events_rejected: counter_vec(
                &r,
                "aims_agent_events_rejected_total",
                "Prediction events refused by validation, by reason.",
                &reject,
            ),
            events_dropped: counter_vec(
                &r,
                "aims_agent_events_dropped_total",
                "Valid prediction events not recorded, by reason.",
                &DROP_REASONS,
            ),
            labels_received: counter(
                &r,
                "aims_agent_labels_received_total",
                "Late labels received.",
            ),
            labels_rejected: counter_vec(
                &r,
                "aims_agent_labels_rejected_total",
                "Late labels refused by validation, by reason.",
                &reject,
            ),
            labels_dropped: counter_vec(
                &r,
                "aims_agent_labels_dropped_total",
                "Valid late labels not processed, by reason.",
                &["overload"],
            ),
            labels_joined: counter(
                &r,
                "aims_agent_labels_joined_total",
                "Late labels joined to their prediction.",
            ),
            labels_unmatched: counter(
                &r,
                "aims_agent_labels_unmatched_total",
                "Late labels with no prediction waiting in the join buffer.",
            ),
            labels_expired: counter(
                &r,
                "aims_agent_labels_expired_total",
                "Predictions whose label did not arrive within the join TTL.",
            ),
            join_evicted: counter(
                &r,
                "aims_agent_join_evicted_total",
                "Predictions evicted from the full join buffer before their TTL.",
            ),
            join_entries: gauge(
                &r,
                "aims_agent_join_entries",
                "Predictions waiting in the join buffer for a label.",
            ),
            requests_rejected: counter_vec(
                &r,
                "aims_agent_requests_rejected_total",
                "Ingest requests refused as a whole, by reason.",
                &REQUEST_REJECT_REASONS,
            ),
            windows_closed: counter(
                &r,
                "aims_agent_windows_closed_total",
                "Windows closed and spooled.",
            ),
            late_summaries: counter(
                &r,
                "aims_agent_late_summaries_total",
                "Late-label or late-event summaries spooled for already closed windows.",
            ),
            summaries_shipped: counter(
                &r,
                "aims_agent_summaries_shipped_total",
                "Summaries acknowledged by the collector.",
            ),
            summaries_retried: counter(
                &r,
                "aims_agent_summaries_retried_total",
                "Failed deliveries that will be retried.",
            ),
            summaries_dead_lettered: counter(
                &r,
                "aims_agent_summaries_dead_lettered_total",
                "Summaries refused by the collector and moved to the dead-letter folder.",
            ),
            spool_evicted: counter(
                &r,
                "aims_agent_spool_evicted_total",
                "Summaries evicted from the full spool before delivery.",
            ),
            spool_files: gauge(
                &r,
                "aims_agent_spool_files",
                "Summaries waiting in the spool.",
            ),
            spool_bytes: gauge(
                &r,
                "aims_agent_spool_bytes",
                "Bytes of summaries waiting in the spool.",
            ),
            queue_events: gauge(
                &r,
                "aims_agent_queue_events",
                "Events queued between ingest and the windowing task.",
            ),
            events_summarised: counter(
                &r,
                "aims_agent_events_summarised_total",
                "Valid prediction events recorded into a window summary.",
            ),
            spool_write_failures: counter_vec(
                &r,
                "aims_agent_spool_write_failures_total",
                "Failed writes of a summary to the spool, by reason; the summary is kept in memory and retried.",
                &SPOOL_FAILURE_REASONS,
            ),
            spool_unwritten: gauge(
                &r,
                "aims_agent_spool_unwritten",
                "Closed summaries held in memory because the spool refused them.",
            ),
            summaries_lost: counter_vec(
                &r,
                "aims_agent_summaries_lost_total",
                "Summaries lost for good before reaching the spool, by reason.",
                &LOSS_REASONS,
            ),
            checkpoints: counter(
                &r,
                "aims_agent_checkpoints_total",
                "Checkpoints of the open windows written to disk.",
            ),
            connections: gauge(
                &r,
                "aims_agent_connections",
                "Open HTTP connections to the agent.",
            ),
            connections_timed_out: counter_vec(
                &r,
                "aims_agent_connections_timed_out_total",
                "HTTP connections closed by the agent for a timeout, by kind.",
                &["idle", "body"],
            ),
            ship_duration,
            info,
            registry: r,
        }
    }

    /// Publishes the agent's identity on `aims_agent_info`, replacing an earlier one.
    pub fn describe(&self, agent: &str, model: &str, version: &str) {
        self.info.reset();
        self.info.with_label_values(&[agent, model, version]).set(1);
    }

    /// The text exposition and its Content-Type, both from the encoder.
    pub fn encode(&self) -> (String, Vec<u8>) {
        aims_runtime::metrics::encode(&self.registry)
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_pre_registered_at_zero() {
        let m = AgentMetrics::new();
        let (ct, body) = m.encode();
        let text = String::from_utf8(body).unwrap();
        assert!(ct.starts_with("text/plain"));
        assert!(text.contains("aims_agent_events_dropped_total{reason=\"overload\"} 0"));
        assert!(text.contains("aims_agent_events_rejected_total{reason=\"invalid_json\"} 0"));
    }

    #[test]
    fn info_names_the_agent_once() {
        let m = AgentMetrics::new();
        m.describe("a-1", "credit", "1.0.0");
        m.describe("a-1", "credit", "1.0.1");
        let text = String::from_utf8(m.encode().1).unwrap();
        assert!(text.contains(r#"aims_agent_info{agent="a-1",model="credit",version="1.0.1"} 1"#));
        assert!(!text.contains(r#"version="1.0.0""#), "{text}");
    }
}
