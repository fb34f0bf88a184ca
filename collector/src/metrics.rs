//! Prometheus metrics on the collector's own registry.
//!
//! Names follow the Prometheus naming guide (`aims_` prefix, base units, `_total` counters, no
//! type words). Label values only ever come from configuration (objective ids, model names,
//! the features, attributes and groups a schema declares) or fixed enumerations, never from
//! event data, so the series count stays bounded.

use std::collections::HashMap;
use std::sync::Arc;

use aims_core::lifecycle::State;
use aims_core::objective::Objective;
use aims_runtime::metrics as register;
use parking_lot::Mutex;
use prometheus::{
    Gauge, GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

/// Every metric the collector exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Last measured value per objective.
    pub objective_value: GaugeVec,
    /// Target threshold per objective.
    pub objective_target: GaugeVec,
    /// Warning threshold per objective that declares one, so dashboards can draw it.
    pub objective_warning: GaugeVec,
    /// What each objective measures (metric, attribute, feature, severity) as labels of a
    /// constant 1, so dashboards and rules can join thresholds to the model gauges.
    pub objective_info: IntGaugeVec,
    /// The label values last published on `objective_info`, per objective, so a changed or
    /// removed objective leaves no stale series.
    objective_info_labels: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// 1 for the objective's current state, 0 for the others.
    pub objective_state: IntGaugeVec,
    /// Samples behind the last value.
    pub objective_samples: GaugeVec,
    /// Times an objective started firing.
    pub objective_breaches: IntCounterVec,
    /// Evaluations by verdict.
    pub objective_evaluations: IntCounterVec,
    /// Summaries received by outcome.
    pub ingest: IntCounterVec,
    /// Reference profiles received by outcome.
    pub profiles: IntCounterVec,
    /// Wall time of one evaluation cycle.
    pub evaluation_duration: Histogram,
    /// Sequence of the last evidence record.
    pub evidence_head_sequence: IntGauge,
    /// Nonconformities and corrective actions (Clause 10.2).
    pub corrective: CorrectiveMetrics,
    /// The evidence tree and its signed checkpoints.
    pub tree: TreeMetrics,
    /// The first six bytes of the last evidence record's hash, as an integer (a number, not a
    /// label: labels come only from configuration).
    pub evidence_head_hash: IntGauge,
    /// Reloads by outcome.
    pub config_reloads: IntCounterVec,
    /// 1 when the last reload succeeded.
    pub config_last_reload_successful: IntGauge,
    /// Per feature drift score (the default method's statistic) per model.
    pub model_drift_score: GaugeVec,
    /// Share of drifted features per model.
    pub model_dataset_drift_share: GaugeVec,
    /// Fairness metrics per model and attribute.
    pub model_fairness: GaugeVec,
    /// Lower bound of a fairness metric's confidence interval, beside `model_fairness`.
    pub model_fairness_lower: GaugeVec,
    /// Upper bound of a fairness metric's confidence interval, beside `model_fairness`.
    pub model_fairness_upper: GaugeVec,
    /// Selection rate per model, attribute and group.
    pub model_selection_rate: GaugeVec,
    /// True positive rate per model, attribute and group (the fairness dashboard's per-group view).
    pub model_true_positive_rate: GaugeVec,
    /// False positive rate per model, attribute and group.
    pub model_false_positive_rate: GaugeVec,
    /// Every drift statistic per model, feature and method, beside the default score.
    pub model_drift_statistic: GaugeVec,
    /// Data-quality rates per model, feature and metric.
    pub model_data_quality: GaugeVec,
    /// Share of received events rejected by validation, per model.
    pub model_rejected: GaugeVec,
    /// Serving latency quantiles per model, in seconds.
    pub model_latency: GaugeVec,
    /// When each agent last delivered a summary per model, so a silent replica shows even while
    /// its model's other replicas keep the model fresh.
    pub agent_last_summary: GaugeVec,
    /// Performance metrics per model.
    pub model_performance: GaugeVec,
    /// Events in the metrics window per model.
    pub model_events: GaugeVec,
    /// When each model last delivered a summary.
    pub model_last_summary: GaugeVec,
    /// Summaries rolled up and expired by maintenance.
    pub maintenance: IntCounterVec,
    /// Start time of the process.
    pub start_time: Gauge,
    /// 1 while this replica is the leader (the one that evaluates).
    pub leader: IntGauge,
    /// Alert notification attempts by receiver and outcome.
    pub notifications: IntCounterVec,
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register::gauge_vec(r, name, help, labels)
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register::int_counter_vec(r, name, help, labels)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let r = Registry::new();
        let int_gauge = |name: &str, help: &str| register::int_gauge(&r, name, help);
        let objective_state = register::int_gauge_vec(
            &r,
            "aims_objective_state",
            "1 for the objective's current lifecycle state, 0 otherwise",
            &["objective", "state"],
        );
        let objective_info = register::int_gauge_vec(
            &r,
            "aims_objective_info",
            "What the objective measures (value is always 1)",
            &[
                "objective",
                "model",
                "metric",
                "attribute",
                "feature",
                "severity",
            ],
        );
        let evidence_head_hash = register::int_gauge(
            &r,
            "aims_evidence_head_hash_prefix",
            "First six bytes of the last evidence record's hash, as a big-endian integer",
        );
        let evaluation_duration = register::histogram(
            &r,
            "aims_evaluation_duration_seconds",
            "Wall time of one evaluation cycle",
            vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        );
        let start_time = register::gauge(
            &r,
            "aims_collector_start_time_seconds",
            "Start time of the collector, Unix seconds",
        );
        let config_reloads = counter(
            &r,
            "aims_config_reloads_total",
            "Objective file reloads, by outcome",
            &["outcome"],
        );
        let maintenance = counter(
            &r,
            "aims_store_maintained_summaries_total",
            "Stored summaries rolled up or expired",
            &["action"],
        );
        // Fixed label sets start at zero, so dashboards and `increase()` see a series before
        // the first reload or maintenance run.
        for outcome in ["success", "failure"] {
            config_reloads.with_label_values(&[outcome]);
        }
        for action in ["rolled_up", "expired"] {
            maintenance.with_label_values(&[action]);
        }
        Self {
            notifications: counter(
                &r,
                "aims_notifications_total",
                "Alert notification attempts by receiver and outcome (delivered, failed, abandoned, rejected, dropped)",
                &["receiver", "outcome"],
            ),
            objective_value: gauge(
                &r,
                "aims_objective_value",
                "Last measured value of the objective's metric",
                &["objective", "model"],
            ),
            objective_target: gauge(
                &r,
                "aims_objective_target",
                "Threshold of the objective's target",
                &["objective", "model"],
            ),
            objective_warning: gauge(
                &r,
                "aims_objective_warning",
                "Threshold of the objective's warning condition",
                &["objective", "model"],
            ),
            objective_samples: gauge(
                &r,
                "aims_objective_samples",
                "Samples behind the objective's last value",
                &["objective"],
            ),
            objective_breaches: counter(
                &r,
                "aims_objective_breaches_total",
                "Times the objective started firing",
                &["objective"],
            ),
            objective_evaluations: counter(
                &r,
                "aims_objective_evaluations_total",
                "Evaluations of the objective by verdict",
                &["objective", "verdict"],
            ),
            ingest: counter(
                &r,
                "aims_ingest_summaries_total",
                "Window summaries received, by outcome",
                &["outcome"],
            ),
            profiles: counter(
                &r,
                "aims_ingest_profiles_total",
                "Reference profiles received, by outcome",
                &["outcome"],
            ),
            evidence_head_sequence: int_gauge(
                "aims_evidence_head_sequence",
                "Sequence number of the last evidence record",
            ),
            config_reloads,
            config_last_reload_successful: int_gauge(
                "aims_config_last_reload_successful",
                "1 when the last objectives reload succeeded",
            ),
            model_drift_score: gauge(
                &r,
                "aims_model_drift_score",
                "Default drift statistic of a feature over the metrics window",
                &["model", "feature"],
            ),
            model_dataset_drift_share: gauge(
                &r,
                "aims_model_dataset_drift_ratio",
                "Share of drifted features over the metrics window",
                &["model"],
            ),
            model_fairness: gauge(
                &r,
                "aims_model_fairness",
                "Fairness metric of an attribute over the metrics window",
                &["model", "attribute", "metric"],
            ),
            model_fairness_lower: gauge(
                &r,
                "aims_model_fairness_lower",
                "Lower bound of the fairness metric's confidence interval (Bonferroni-adjusted)",
                &["model", "attribute", "metric"],
            ),
            model_fairness_upper: gauge(
                &r,
                "aims_model_fairness_upper",
                "Upper bound of the fairness metric's confidence interval (Bonferroni-adjusted)",
                &["model", "attribute", "metric"],
            ),
            model_selection_rate: gauge(
                &r,
                "aims_model_selection_rate_ratio",
                "Share of a group predicted positive over the metrics window",
                &["model", "attribute", "group"],
            ),
            model_true_positive_rate: gauge(
                &r,
                "aims_model_true_positive_rate_ratio",
                "True positive rate of a group over the metrics window",
                &["model", "attribute", "group"],
            ),
            model_false_positive_rate: gauge(
                &r,
                "aims_model_false_positive_rate_ratio",
                "False positive rate of a group over the metrics window",
                &["model", "attribute", "group"],
            ),
            model_drift_statistic: gauge(
                &r,
                "aims_model_drift_statistic",
                "Drift statistic of a feature by method over the metrics window",
                &["model", "feature", "method"],
            ),
            model_data_quality: gauge(
                &r,
                "aims_model_data_quality_ratio",
                "Data-quality rate of a feature over the metrics window",
                &["model", "feature", "metric"],
            ),
            model_rejected: gauge(
                &r,
                "aims_model_rejected_ratio",
                "Share of received events rejected by validation over the metrics window",
                &["model"],
            ),
            model_latency: gauge(
                &r,
                "aims_model_latency_seconds",
                "Serving latency quantile over the metrics window",
                &["model", "percentile"],
            ),
            agent_last_summary: gauge(
                &r,
                "aims_ingest_agent_last_received_timestamp_seconds",
                "When the agent last delivered a summary for the model, Unix seconds",
                &["agent", "model"],
            ),
            model_performance: gauge(
                &r,
                "aims_model_performance",
                "Performance metric over the metrics window",
                &["model", "metric"],
            ),
            model_events: gauge(
                &r,
                "aims_model_events",
                "Prediction events in the metrics window",
                &["model"],
            ),
            model_last_summary: gauge(
                &r,
                "aims_model_last_received_timestamp_seconds",
                "When the model last delivered a summary, Unix seconds",
                &["model"],
            ),
            maintenance,
            objective_state,
            objective_info,
            objective_info_labels: Arc::default(),
            evaluation_duration,
            evidence_head_hash,
            start_time,
            corrective: CorrectiveMetrics::new(&r),
            leader: int_gauge(
                "aims_collector_leader",
                "1 while this replica is the leader, the one that evaluates objectives",
            ),
            tree: TreeMetrics::new(&r),
            registry: r,
        }
    }

    /// Sets the state gauges of `objective` so exactly `state` reads 1.
    pub fn set_state(&self, objective: &str, state: State) {
        for s in State::ALL {
            self.objective_state
                .with_label_values(&[objective, s.as_str()])
                .set(i64::from(s == state));
        }
    }

    /// Publishes the evidence head.
    pub fn set_evidence_head(&self, seq: u64, hash: &str) {
        self.evidence_head_sequence.set(seq as i64);
        self.evidence_head_hash.set(hash_prefix_48(hash) as i64);
    }

    /// Publishes what `o` measures and its warning threshold, replacing an earlier version's
    /// series when its labels changed.
    pub fn describe_objective(&self, o: &Objective) {
        let labels = vec![
            o.id.clone(),
            o.model.clone(),
            o.metric.clone(),
            o.selector.attribute.clone().unwrap_or_default(),
            o.selector.feature.clone().unwrap_or_default(),
            o.severity.as_str().to_owned(),
        ];
        let mut published = self.objective_info_labels.lock();
        if let Some(old) = published.insert(o.id.clone(), labels.clone()) {
            if old != labels {
                let old: Vec<&str> = old.iter().map(String::as_str).collect();
                self.objective_info.remove_label_values(&old).ok();
            }
        }
        let now: Vec<&str> = labels.iter().map(String::as_str).collect();
        self.objective_info.with_label_values(&now).set(1);
        let pair = [o.id.as_str(), o.model.as_str()];
        match o.warning {
            Some(w) => self
                .objective_warning
                .with_label_values(&pair)
                .set(w.threshold),
            None => {
                self.objective_warning.remove_label_values(&pair).ok();
            }
        }
    }

    /// Drops the series of objectives no longer configured.
    pub fn forget_objective(&self, objective: &str, model: &str) {
        if let Some(old) = self.objective_info_labels.lock().remove(objective) {
            let old: Vec<&str> = old.iter().map(String::as_str).collect();
            self.objective_info.remove_label_values(&old).ok();
        }
        self.objective_warning
            .remove_label_values(&[objective, model])
            .ok();
        self.objective_value
            .remove_label_values(&[objective, model])
            .ok();
        self.objective_target
            .remove_label_values(&[objective, model])
            .ok();
        self.objective_samples
            .remove_label_values(&[objective])
            .ok();
        for s in State::ALL {
            self.objective_state
                .remove_label_values(&[objective, s.as_str()])
                .ok();
        }
    }

    /// The text exposition and its content type, both from the encoder.
    pub fn render(&self) -> (String, Vec<u8>) {
        register::encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objectives(attribute: &str) -> Vec<Objective> {
        let text = format!(
            "policy: P\nobjectives:\n  - id: parity\n    title: T\n    model: credit\n    metric: demographic_parity_ratio\n    attribute: {attribute}\n    target: \">= 0.8\"\n    warning: \">= 0.85\"\n    window: 1h\n    owner: a@example.com\n"
        );
        aims_core::objective::parse(&text, &[])
            .expect("valid objectives")
            .objectives
    }

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.render().1).expect("UTF-8 exposition")
    }

    /// The head's hash is a number, never a label (labels come only from configuration).
    #[test]
    fn the_evidence_head_hash_is_a_numeric_gauge() {
        let m = Metrics::new();
        m.set_evidence_head(3, &format!("0123456789ab{}", "c".repeat(52)));
        let t = text(&m);
        assert!(
            t.contains("\naims_evidence_head_hash_prefix 1250999896491\n"),
            "{t}"
        );
        assert!(t.contains("\naims_evidence_head_sequence 3\n"), "{t}");
        m.set_evidence_head(4, &"f".repeat(64));
        let t = text(&m);
        assert!(
            t.contains("\naims_evidence_head_hash_prefix 281474976710655\n"),
            "{t}"
        );
        assert!(!t.contains("aims_evidence_head_info"), "{t}");
        assert!(!t.contains("hash=\""), "no hash label: {t}");
        assert_eq!(hash_prefix_48("not hex"), 0);
    }

    #[test]
    fn objective_info_follows_changes_and_removal() {
        let m = Metrics::new();
        m.describe_objective(&objectives("gender")[0]);
        let t = text(&m);
        assert!(t.contains(r#"aims_objective_info{attribute="gender",feature="",metric="demographic_parity_ratio",model="credit",objective="parity",severity="warning"} 1"#), "{t}");
        assert!(
            t.contains(r#"aims_objective_warning{model="credit",objective="parity"} 0.85"#),
            "{t}"
        );

        m.describe_objective(&objectives("age_band")[0]);
        let t = text(&m);
        assert!(t.contains(r#"attribute="age_band""#), "{t}");
        assert!(
            !t.contains(r#"attribute="gender""#),
            "a changed objective leaves no stale series: {t}"
        );

        assert!(
            t.contains(r#"aims_config_reloads_total{outcome="failure"} 0"#),
            "{t}"
        );
        assert!(
            t.contains(r#"aims_store_maintained_summaries_total{action="expired"} 0"#),
            "{t}"
        );

        m.forget_objective("parity", "credit");
        let t = text(&m);
        assert!(!t.contains("aims_objective_info{"), "{t}");
        assert!(!t.contains("aims_objective_warning{"), "{t}");
    }
}

/// The Clause 10.2 gauges, set from the nonconformities after every change.
#[derive(Debug, Clone)]
pub struct CorrectiveMetrics {
    /// Nonconformities by status.
    pub nonconformities: IntGaugeVec,
    /// Corrective actions past their due date and not done.
    pub actions_overdue: IntGauge,
    /// Mean time from opening to first acknowledgement, over acknowledged nonconformities.
    pub mean_time_to_acknowledge: Gauge,
    /// Mean time from opening to effective, over nonconformities that became effective.
    pub mean_time_to_effective: Gauge,
}

impl CorrectiveMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            nonconformities: register::int_gauge_vec(
                r,
                "aims_nonconformities",
                "Nonconformities (Clause 10.2) by status",
                &["status"],
            ),
            actions_overdue: register::int_gauge(
                r,
                "aims_corrective_actions_overdue",
                "Corrective actions past their due date and not done",
            ),
            mean_time_to_acknowledge: register::gauge(
                r,
                "aims_nonconformity_mean_time_to_acknowledge_seconds",
                "Mean time from a nonconformity opening to its acknowledgement",
            ),
            mean_time_to_effective: register::gauge(
                r,
                "aims_nonconformity_mean_time_to_effective_seconds",
                "Mean time from a nonconformity opening to verified effective corrective action",
            ),
        }
    }
}

/// The first six bytes of a hex SHA-256 (an evidence record's hash) as a big-endian integer,
/// as [`aims_core::checkpoint::TreeHead::root_prefix_48`] does for the tree's root; 0 for text
/// that is not hex.
pub fn hash_prefix_48(hex: &str) -> u64 {
    hex.get(..12)
        .and_then(|p| u64::from_str_radix(p, 16).ok())
        .unwrap_or(0)
}

/// The evidence tree's gauges. The root is a number, never a label (labels come only from
/// configuration): Prometheus then keeps a history of sizes and roots that an operator who
/// rewrites the log cannot rewrite with it.
#[derive(Debug, Clone)]
pub struct TreeMetrics {
    /// Records in the Merkle tree (set on every append).
    pub size: IntGauge,
    /// The first six bytes of the current root, as an integer.
    pub root: IntGauge,
    /// Records covered by the latest signed checkpoint.
    pub checkpoint_size: IntGauge,
    /// The first six bytes of the latest signed checkpoint's root, as an integer.
    pub checkpoint_root: IntGauge,
    /// When the latest checkpoint was signed, Unix seconds.
    pub checkpoint_time: Gauge,
    /// Checkpoints this replica signed (only the leader signs; followers serve the leader's).
    pub checkpoints_signed: IntCounter,
}

impl TreeMetrics {
    fn new(r: &Registry) -> Self {
        Self {
            size: register::int_gauge(
                r,
                "aims_evidence_tree_size",
                "Records in the evidence log's Merkle tree",
            ),
            root: register::int_gauge(
                r,
                "aims_evidence_tree_root_prefix",
                "First six bytes of the evidence tree's root hash, as a big-endian integer",
            ),
            checkpoint_size: register::int_gauge(
                r,
                "aims_evidence_checkpoint_size",
                "Records covered by the latest signed evidence checkpoint",
            ),
            checkpoint_root: register::int_gauge(
                r,
                "aims_evidence_checkpoint_root_prefix",
                "First six bytes of the latest signed checkpoint's root hash, as a big-endian integer",
            ),
            checkpoint_time: register::gauge(
                r,
                "aims_evidence_checkpoint_timestamp_seconds",
                "When the latest evidence checkpoint was signed",
            ),
            checkpoints_signed: register::int_counter(
                r,
                "aims_evidence_checkpoints_signed_total",
                "Evidence checkpoints this replica signed (the leader's job; followers serve the latest stored one)",
            ),
        }
    }
}
