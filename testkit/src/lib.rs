//! The test kit every crate's tests share (a dev-dependency only).
//!
//! # Layout
//!
//! - [`wait`]: `eventually(deadline)`: wait on a condition, never sleep-and-hope.
//! - [`net`]: listeners bound to port 0 on loopback, and the address a child process reports
//!   having bound.
//! - [`collector`]: the collector binary on port 0, with its HTTP API as blocking calls.
//! - [`process`]: one harness for the binaries: start with a log file, wait for readiness,
//!   SIGTERM, SIGKILL, kill on drop.
//! - [`prom`]: one Prometheus-text sampler.
//! - [`postgres`]: the test PostgreSQL server and a fresh database per collector.
//! - [`skip`]: skipping visibly when an outside tool is missing, and failing under `CI=true`.
//! - [`fixtures`]: schema, event, profile and summary builders, and the example objectives.
//! - [`temp_dir`]: temporary folders from `tempfile`, removed when dropped.
#![forbid(unsafe_code)]

pub mod collector;
pub mod fixtures;
pub mod net;
pub mod postgres;
pub mod process;
pub mod prom;
pub mod skip;
pub mod wait;

pub use wait::{eventually, wait_until};

/// A temporary folder, removed when the value is dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("aims-test-")
        .tempdir()
        .expect("a temporary folder")
}
