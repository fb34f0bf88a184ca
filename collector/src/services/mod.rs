//! The services: what the collector does, above the shared state and below HTTP.
//!
//! - [`ingest`]: validation of summaries and profiles, and the single writer that group-commits
//!   them;
//! - [`corrective`]: nonconformities and corrective actions (Clause 10.2);
//! - [`evaluate`]: the evaluation cycle, lifecycles and their evidence;
//! - [`notify`]: alert delivery to Alertmanager and webhooks;
//! - [`reload`]: loading and reloading the objectives file;
//! - [`report`]: the Clause 9 report and [`pack`], the offline evidence pack;
//! - [`status`]: the status page's snapshot and rendering;
//! - [`maintenance`]: roll-up, expiry and compaction;
//! - [`leadership`]: which replica evaluates (PostgreSQL: an advisory lock and a fenced term).
//! - [`checkpoint`]: signed checkpoints of the evidence tree, on a cadence and on demand.

pub mod checkpoint;
pub mod corrective;
pub mod evaluate;
pub mod ingest;
pub mod leadership;
pub mod maintenance;
pub mod notify;
pub mod pack;
pub mod pack_record;
pub mod pack_snapshot;
pub mod pack_tree;
pub mod reload;
pub mod report;
pub mod status;
