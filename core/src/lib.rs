//! aims-core: the pure heart of AIMS Monitor.
//!
//! Everything here is deterministic and free of I/O so that the agent, the collector and the
//! command-line tools compute the very same numbers from the very same summaries:
//!
//! - [`schema`]: what a model looks like (features, protected attributes, task);
//! - [`event`]: prediction events as they arrive, and their validation against a schema;
//! - [`profile`]: the reference profile built from training or validation data;
//! - [`summary`]: the additive, mergeable window summary agents ship;
//! - [`sketch`]: the relative-error quantile sketch behind latency quantiles;
//! - [`cbpe`]: confidence-based performance estimation (NannyML's CBPE) without labels;
//! - [`pca`]: multivariate drift by PCA reconstruction error (NannyML's method);
//! - [`metrics`]: the metrics catalogue, computed from (summary, profile);
//! - [`objective`]: AI objectives (ISO/IEC 42001 Clause 6.2) and their targets.
//! - [`wire`]: the envelope a summary travels in, with its deterministic id.
//! - [`lifecycle`]: the evaluation state machine (ok, pending, firing, resolved, ...).
//! - [`evidence`]: the hash chain of the evidence log.
//! - [`invariants`]: what a true summary satisfies, and the overflow check of merge.
//! - [`nonconformity`]: the Clause 10.2 lifecycle, from a fired breach to verified corrective
//!   action.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cbpe;
pub mod checkpoint;
pub mod decimal;
pub mod event;
pub mod evidence;
mod few;
pub mod hash;
pub mod invariants;
pub mod lifecycle;
pub mod merkle;
pub mod metrics;
pub mod nonconformity;
pub mod objective;
mod par;
pub mod pca;
pub mod profile;
pub mod quantile;
pub mod schema;
pub mod score;
pub mod sketch;
pub mod summary;
mod summary_de;
pub mod time;
pub mod wire;

pub use event::{Event, FeatureValue, Prediction, RawEvent, Target};
pub use metrics::Measured;
pub use profile::ReferenceProfile;
pub use schema::ModelSchema;
pub use summary::WindowSummary;
