//! The agent's configuration: a TOML file (see `config/agent.toml`) with environment overrides
//! `AIMS_AGENT__SECTION__KEY`. Unknown keys are errors that name the key.
//!
//! This module only describes and loads the configuration; each part of the agent takes the
//! section it needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aims_core::schema::ModelSchema;
use serde::{Deserialize, Serialize};

/// The whole agent configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This agent's name, unique per collector; part of every summary id.
    #[serde(default = "default_agent_id")]
    pub agent_id: String,
    /// The model's schema.
    pub model: ModelSchema,
    /// Where the reference profile comes from.
    #[serde(default)]
    pub reference: ReferenceConfig,
    /// How CSV columns map to event fields (for `reference build` and `assess`).
    #[serde(default)]
    pub columns: ColumnsConfig,
    /// The HTTP ingest server.
    #[serde(default)]
    pub server: ServerConfig,
    /// Windowing.
    #[serde(default)]
    pub window: WindowConfig,
    /// Late-label joining.
    #[serde(default)]
    pub labels: LabelsConfig,
    /// Shipping summaries to the collector.
    #[serde(default)]
    pub ship: ShipConfig,
    /// The on-disk spool of summaries not yet acknowledged.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Length caps on ingest items and the byte budget of a summary.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// CloudEvents ingest (KServe, Seldon, Open Inference Protocol); off when absent.
    #[serde(default)]
    pub cloudevents: Option<crate::cloudevents::config::CloudEventsConfig>,
}

fn default_agent_id() -> String {
    "agent-1".to_owned()
}

/// Where the reference profile comes from: a file, or the collector (cached on disk).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    /// A profile JSON written by `aims-agent reference build`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Where a profile fetched from the collector is cached (default: `reference.json` in the
    /// spool directory), so the agent restarts while the collector is down.
    #[serde(default)]
    pub cache: Option<PathBuf>,
}

/// CSV column names for event fields. Features and attributes use their own names as columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnsConfig {
    /// Request id column.
    pub id: String,
    /// Timestamp column (RFC 3339).
    pub ts: String,
    /// Predicted class (classification) or value (regression) column.
    pub prediction: String,
    /// Positive-class score column.
    pub score: String,
    /// Prefix of the per-class probability columns of a multiclass model: one column
    /// `{prefix}{class}` per schema class (`score_low`, `score_medium`, ...). Read when any of
    /// them is in the header; then all must be.
    pub class_score_prefix: String,
    /// Ground-truth label column.
    pub label: String,
    /// Latency column, milliseconds.
    pub latency_ms: String,
}

impl Default for ColumnsConfig {
    fn default() -> Self {
        Self {
            id: "id".into(),
            ts: "ts".into(),
            prediction: "prediction".into(),
            score: "score".into(),
            class_score_prefix: "score_".into(),
            label: "label".into(),
            latency_ms: "latency_ms".into(),
        }
    }
}

/// The agent's HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address; loopback by default.
    pub listen: String,
    /// Largest accepted request body, after decompression.
    pub max_body_bytes: usize,
    /// Ingest requests processed at once; more get 503 with Retry-After at once, so no caller
    /// waits.
    pub max_concurrent_requests: usize,
    /// Bytes of request bodies (raw and decompressed) held at once across all requests; a
    /// request that would pass it gets 503. This, not the request count, bounds body memory.
    pub max_body_memory_bytes: usize,
    /// Open connections at most; the agent stops accepting past it. It is further held below
    /// the process's open-file limit, keeping `reserved_fds` descriptors for the spool, the
    /// collector connection and the checkpoint.
    pub max_connections: usize,
    /// Descriptors kept free of connections (see `max_connections`).
    pub reserved_fds: usize,
    /// A client must send a request's headers within this long (slow-header clients).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection with no traffic for this long is closed (idle keep-alive).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A body must arrive at `body_min_rate_bytes` per second after this grace (slow bodies).
    #[serde(with = "humantime_serde")]
    pub body_grace: Duration,
    /// Slowest acceptable body rate, bytes per second.
    pub body_min_rate_bytes: u64,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>` (Prometheus's
    /// `authorization` block sends it). Off by default.
    pub metrics_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            max_body_bytes: 16 * 1024 * 1024,
            max_concurrent_requests: 64,
            max_body_memory_bytes: 64 * 1024 * 1024,
            max_connections: 1024,
            reserved_fds: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_grace: Duration::from_secs(10),
            body_min_rate_bytes: 1024,
            metrics_token: None,
        }
    }
}

/// Windowing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Window length, aligned to wall-clock boundaries.
    #[serde(with = "humantime_serde")]
    pub length: Duration,
    /// How long after its end a window stays open, so events delayed in transit still count in
    /// the summary shipped at close.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// How long after a window closed its late events are still shipped (as a late summary of
    /// that window); older events are dropped and counted as `late`.
    #[serde(with = "humantime_serde")]
    pub max_lateness: Duration,
    /// Events (and labels) that may wait between the request path and the windowing task; past
    /// it, new ones are dropped and counted as `overload`. This bounds the agent's memory.
    pub queue_events: usize,
    /// How often the open windows are checkpointed to the spool directory, so a crash (kill -9)
    /// loses at most this much of events (plus those still queued); zero turns it off.
    #[serde(with = "humantime_serde")]
    pub checkpoint: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            length: Duration::from_secs(60),
            grace: Duration::from_secs(5),
            max_lateness: Duration::from_secs(600),
            queue_events: 100_000,
            checkpoint: Duration::from_secs(2),
        }
    }
}

/// Late-label joining.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsConfig {
    /// Predictions remembered for joining.
    pub join_capacity: usize,
    /// How long a prediction waits for its label.
    #[serde(with = "humantime_serde")]
    pub join_ttl: Duration,
    /// Bound on the join buffer's memory (estimated heap bytes); the oldest predictions are
    /// evicted past it, like past `join_capacity`.
    pub join_max_bytes: usize,
}

impl Default for LabelsConfig {
    fn default() -> Self {
        Self {
            join_capacity: 100_000,
            join_ttl: Duration::from_secs(3600),
            join_max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Shipping to the collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipConfig {
    /// Collector base URL; shipping is off when empty.
    pub collector_url: String,
    /// Bearer token.
    pub token: Option<String>,
    /// PEM file of an extra CA to trust.
    pub ca_cert: Option<PathBuf>,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// First retry delay.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// At shutdown, how long the agent keeps trying to deliver the spool before exiting (what
    /// is left stays spooled for the next start).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for ShipConfig {
    fn default() -> Self {
        Self {
            collector_url: "http://127.0.0.1:9470".into(),
            token: None,
            ca_cert: None,
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// The spool of summaries awaiting acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Spool directory (created when missing).
    pub dir: PathBuf,
    /// Bound on the spool's size; the oldest summaries are evicted past it.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/agent/spool"),
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Length caps on what a client sends, each refused per item (`too_long`) instead of growing a
/// summary or the join buffer, and the byte budget every summary is held to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest event or label id, bytes.
    pub max_id_bytes: usize,
    /// Longest categorical feature value, bytes.
    pub max_category_bytes: usize,
    /// Longest single item (an NDJSON line or a JSON array element), bytes; this bounds every
    /// other string in an event.
    pub max_item_bytes: usize,
    /// The most bytes a serialised summary may take; the agent refuses to start when the
    /// schema, reference and caps above could exceed it. Keep it below the collector's
    /// decompressed body limit (8 MiB by default).
    pub max_summary_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_id_bytes: 256,
            max_category_bytes: 256,
            max_item_bytes: 64 * 1024,
            max_summary_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Log as JSON lines instead of text.
    pub json: bool,
}

/// A configuration that cannot be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment does not parse into the structs (names the key).
    #[error("{path}: {source}")]
    Load {
        /// The file.
        path: String,
        /// The loader's error, which names the key.
        source: config::ConfigError,
    },
    /// The model schema is inconsistent.
    #[error("{path}: {source}")]
    Schema {
        /// The file.
        path: String,
        /// What is wrong, naming the field.
        source: aims_core::schema::SchemaError,
    },
    /// The `[cloudevents]` mapping does not fit the model schema.
    #[error("{path}: {source}")]
    CloudEvents {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        source: crate::cloudevents::mapping::MappingError,
    },
}

impl AgentConfig {
    /// Loads `path` with `AIMS_AGENT__...` environment overrides, and validates the schema.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let mut cfg: AgentConfig =
            aims_runtime::config::load(Some(path), "AIMS_AGENT").map_err(|e| {
                ConfigError::Load {
                    path: e.path,
                    source: *e.source,
                }
            })?;
        // Relative paths mean paths next to the configuration file, whatever the working folder.
        let file = Some(path);
        aims_runtime::config::resolve_opt(file, &mut cfg.reference.path);
        aims_runtime::config::resolve_opt(file, &mut cfg.reference.cache);
        aims_runtime::config::resolve_opt(file, &mut cfg.ship.ca_cert);
        aims_runtime::config::resolve(file, &mut cfg.spool.dir);
        cfg.model = cfg
            .model
            .validated()
            .map_err(|source| ConfigError::Schema {
                path: shown.clone(),
                source,
            })?;
        if let Some(ce) = &cfg.cloudevents {
            crate::cloudevents::mapping::Mapping::compile(ce, &cfg.model).map_err(|source| {
                ConfigError::CloudEvents {
                    path: shown.clone(),
                    source,
                }
            })?;
        }
        Ok(cfg)
    }
}
