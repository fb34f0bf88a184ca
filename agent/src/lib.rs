//! aims-agent: the part of AIMS Monitor that runs beside each deployed model.
//!
//! - [`config`]: the agent's configuration file and its environment overrides;
//! - [`dataset`]: reading CSV and NDJSON datasets into validated events;
//! - [`assess`]: the pre-deployment check of a current dataset against a reference.
//! - [`logging`]: tracing setup shared by every subcommand;
//! - [`ingest`]: request bodies (JSON, NDJSON, gzip) into raw events, bounded and itemised;
//! - [`window`]: the windowing task, closing wall-clock-aligned windows into the spool;
//! - [`labels`]: the bounded late-label join buffer;
//! - [`cloudevents`]: KServe / Seldon / Open Inference Protocol CloudEvents, request joined to response;
//! - [`spool`]: the crash-safe, byte-bounded on-disk queue of summaries;
//! - [`ship`]: delivery to the collector with retries, backoff and dead-lettering;
//! - [`metrics`]: the agent's own Prometheus registry;
//! - [`monitor`]: the embeddable handle tying window and ship together ([`Monitor`]);
//! - [`server`]: the HTTP routes and `aims-agent run`;
//! - [`simulate`]: credit-scoring traffic for demos and tests.
#![forbid(unsafe_code)]

pub mod assess;
pub mod cloudevents;
pub mod config;
pub mod dataset;
pub mod ingest;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod server;
pub mod shard;
pub mod ship;
pub mod simulate;
pub mod spool;
pub mod window;

pub use monitor::{Monitor, Recorder};
