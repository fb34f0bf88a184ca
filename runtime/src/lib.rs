//! Runtime helpers the agent and the collector share, written once so the two binaries cannot
//! drift apart: how they log, stop, read their configuration, decode request bodies, retry,
//! and register metrics.
//!
//! # Layout
//!
//! - [`clock`]: the system time in epoch milliseconds.
//! - [`logging`]: `tracing` to stderr, filtered by `RUST_LOG`, as text or JSON lines.
//! - [`shutdown`]: a future that completes on Ctrl-C or SIGTERM.
//! - [`error`]: an error and its causes as one line, each cause said once.
//! - [`config`]: a TOML file layered under `PREFIX__SECTION__KEY` environment variables.
//! - [`gzip`]: `Content-Encoding` decoding with a bound on the decompressed size.
//! - [`retry`]: capped exponential backoff with full jitter.
//! - [`metrics`]: creating and registering Prometheus metrics.
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod error;
pub mod gzip;
pub mod logging;
pub mod metrics;
pub mod retry;
pub mod shutdown;
