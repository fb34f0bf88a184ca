//! The `[cloudevents]` section of the agent configuration: where the endpoint listens, how long
//! halves wait for each other, and how inference bodies map onto the model schema. Checked
//! against the schema by [`crate::cloudevents::Mapping::compile`] when the configuration loads,
//! so `aims-agent check --config` names a bad mapping before any traffic.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// CloudEvents ingest (KServe, Seldon Core v1, Open Inference Protocol v2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudEventsConfig {
    /// The endpoint's path.
    #[serde(default = "default_path")]
    pub path: String,
    /// The v2 input tensor holding the `columns`; optional when a request has exactly one
    /// input. v1 rows (`instances`) and Seldon's `data` are always the columns' source.
    #[serde(default)]
    pub input: Option<String>,
    /// Names of the `input` tensor's columns, in order: a feature, an attribute, or `""` for a
    /// column that is not monitored.
    #[serde(default)]
    pub columns: Vec<String>,
    /// Features and attributes read from a tensor (v2) or key (v1 objects) of their own:
    /// schema name to tensor or key. Names not mapped here nor in `columns` are looked up
    /// under their own name, and are missing when absent.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Which outputs give the prediction.
    #[serde(default)]
    pub prediction: PredictionMapping,
    /// Attributes from outside the body: a request header KServe carries in `ce-metadata`
    /// (listed in the InferenceService's `logger.metadataHeaders`), or a CloudEvents extension.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeSource>,
    /// Where an event's model version comes from; events of another version than
    /// `model.version` are discarded and counted.
    #[serde(default)]
    pub model_version: VersionSource,
    /// The request/response join.
    #[serde(default)]
    pub join: JoinConfig,
}

fn default_path() -> String {
    "/v1/cloudevents".to_owned()
}

/// Which outputs give the label, score or value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionMapping {
    /// Output holding the predicted class: a class name, or an index into `class_names`.
    #[serde(default)]
    pub label: Option<String>,
    /// Output holding the positive-class score (`[batch]`) or class probabilities
    /// (`[batch, classes]`, in `class_names` order).
    #[serde(default)]
    pub score: Option<String>,
    /// Regression: output holding the predicted value.
    #[serde(default)]
    pub value: Option<String>,
    /// Without a label output: the positive class when the score is at least this (binary).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Without a label output: the most probable class of the probabilities.
    #[serde(default)]
    pub argmax: bool,
    /// Class names of index outputs and probability columns, in the model's order; the
    /// schema's classes by default.
    #[serde(default)]
    pub class_names: Vec<String>,
}

/// Where an attribute's value comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSource {
    /// A request header, as KServe records it in `ce-metadata` (case-insensitive).
    #[serde(default)]
    pub header: Option<String>,
    /// A CloudEvents extension attribute (lower case).
    #[serde(default)]
    pub extension: Option<String>,
}

/// Where an event's model version comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    /// `model.version` of this configuration; events are not checked.
    #[default]
    Config,
    /// The `ce-inferenceservicename` extension KServe sets.
    Inferenceservicename,
    /// `model_version` of a v2 response body.
    ModelVersion,
}

/// The bounded buffer where a request waits for its response, or the reverse.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JoinConfig {
    /// How long a half waits for its partner before it is counted as an orphan.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Halves waiting at most; the oldest is evicted (and counted) past it.
    pub capacity: usize,
    /// Estimated bytes of the halves waiting at most; the oldest are evicted past it.
    pub max_bytes: usize,
}

impl Default for JoinConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            capacity: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}
