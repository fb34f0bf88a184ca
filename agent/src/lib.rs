//! aims-agent: the part of AIMS Monitor that runs beside each deployed model.
//!
//! The agent is this library; the `aims-agent` binary only parses its command line and calls
//! [`server::run`] or one of the offline commands. A model server in Rust embeds the same
//! machinery through [`Monitor`].
//!
//! # Layout
//!
//! Modules are layers; each imports only from the layers below it, never back up.
//!
//! - [`server`]: the HTTP routes (`/v1/events`, `/v1/labels`, `/metrics`, health) and, in
//!   [`server::cloudevents`], the CloudEvents endpoint that joins each inference's request and
//!   response; `server::run` is `aims-agent run`.
//! - [`monitor`] and [`assess`]: what the agent does. [`Monitor`] ties the windowing task and
//!   the shipper together behind one handle ([`Recorder`] records into it); `assess` and
//!   `reference build` are the pre-deployment check of a dataset against a reference.
//! - [`window`], [`ship`], [`dataset`] and [`ingest`]: the windowing task (wall-clock-aligned
//!   windows closed into the spool, late labels joined), delivery to the collector with retries
//!   and dead-lettering, datasets (CSV, NDJSON) read into validated events, and request bodies
//!   (JSON, NDJSON, gzip) into raw events, bounded and itemised.
//! - [`shard`]: a recording thread's own summaries, folded on that thread and taken by the
//!   windowing task at window close, flush and shutdown.
//! - [`config`] and [`spool`]: the configuration file with its environment overrides, and the
//!   crash-safe, byte-bounded on-disk queue of summaries.
//! - Leaves: [`admission`] (the windowing settings and the rule for which window an event falls
//!   in and whether it is still recorded), [`cloudevents`] (the pure readers of CloudEvents envelopes, KServe / Open Inference
//!   Protocol / Seldon tensors and their column mapping, and the join buffer), [`labels`] (the
//!   bounded late-label join buffer), [`metrics`] (the agent's Prometheus registry),
//!   [`simulate`] (credit-scoring traffic for demos and tests) and [`logging`].
//!
//! Beside it: `aims-core` for everything pure (events, schemas, summaries, statistics),
//! `aims-runtime` for what the agent and the collector do alike (logging, shutdown, config
//! loading, gzip, retry, metric registration).
#![forbid(unsafe_code)]

pub mod admission;
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
