//! CloudEvents ingest: the agent as the URL a KServe InferenceService (or Seldon Core v1) logs
//! to. Each inference arrives as two CloudEvents, the request and the response, sharing
//! `ce-id`; they are joined here and become one prediction event per row.
//!
//! - [`envelope`]: binary, structured and batched CloudEvents into one shape;
//! - [`tensor`]: KServe v1, Open Inference Protocol v2 and Seldon bodies into columns;
//! - [`config`] and [`mapping`]: which columns are which features, attributes and outputs;
//! - [`join`]: the fixed-size buffer where the first half waits for the second.
//!
//! These are pure: they read bytes and columns into validated rows and know nothing of the
//! windowing task. The HTTP endpoint that joins the halves and records the events is
//! `server::cloudevents`, beside the agent's other routes.
//!
//! The sender is answered at once: 200 when every event was read (or at least one of a
//! batch), 400 naming the field when none was, 413 / 415 / 503 as on `/v1/events`. Nothing here
//! waits on the windowing task or the collector; a full queue drops and counts. KServe's logger
//! treats anything but 200 as a failure in its logs, hence 200 rather than the 202 of
//! `/v1/events`. Rows become events with id `<ce-id>-<row>`, so late labels posted to
//! `/v1/labels` under that id join as for native events. Raw payloads are never kept: a waiting
//! half holds only its validated rows.

pub mod config;
pub mod envelope;
pub mod join;
pub mod mapping;
pub mod tensor;

pub use config::CloudEventsConfig;
pub use mapping::{Mapping, MappingError, RowIn};

/// Event types read as requests.
pub const REQUEST_TYPES: [&str; 2] = [
    "org.kubeflow.serving.inference.request",
    "io.seldon.serving.inference.request",
];
/// Event types read as responses.
pub const RESPONSE_TYPES: [&str; 2] = [
    "org.kubeflow.serving.inference.response",
    "io.seldon.serving.inference.response",
];

/// Why a CloudEvent was refused (the sender gets 400 when nothing in its request was read).
pub const REJECT_REASONS: [&str; 9] = [
    "invalid_envelope",
    "unsupported_type",
    "invalid_body",
    "invalid_timestamp",
    "shape_mismatch",
    "unknown_tensor",
    "datatype_mismatch",
    "row_count_mismatch",
    "invalid_json",
];
/// Why a well-formed CloudEvent was not used.
pub const DISCARD_REASONS: [&str; 3] = ["duplicate", "other_model_version", "too_large"];
/// Why a waiting half left the join buffer without its partner.
pub const UNJOINED_REASONS: [&str; 4] = [
    "orphan_request",
    "orphan_response",
    "evicted_capacity",
    "evicted_bytes",
];
