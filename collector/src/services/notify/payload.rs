//! The bodies sent to receivers, built as pure functions so their shape is unit-tested.
//!
//! Alertmanager's v2 API takes a JSON array of alerts; a receiver blanks annotations a re-send
//! omits, so every alert always carries its full label and annotation set. Webhooks get
//! Alertmanager's own webhook payload (version 4), so receivers written for Alertmanager work
//! unchanged.

use std::collections::BTreeMap;

use aims_core::objective::Objective;
use aims_core::Measured;
use serde_json::{json, Value};

/// The `alertname` of every objective alert: one name lets one Alertmanager route, silence or
/// inhibition cover all objectives, while the `objective` label tells them apart.
pub const ALERTNAME: &str = "AIMSObjectiveBreach";

/// One alert as sent (and as kept in the store between cycles, so a failover or a restart
/// keeps what was delivered).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// Identifying labels.
    pub labels: BTreeMap<String, String>,
    /// Descriptive annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it began firing, ms since the epoch.
    pub starts_at_ms: i64,
    /// Lease end while firing; resolve time once resolved.
    pub ends_at_ms: i64,
    /// Link to the objective in the collector.
    pub generator_url: String,
    /// Whether it is resolved.
    pub resolved: bool,
}

impl Alert {
    /// `firing` or `resolved`, as Alertmanager's webhook says.
    pub fn status(&self) -> &'static str {
        if self.resolved {
            "resolved"
        } else {
            "firing"
        }
    }

    /// The objective label.
    pub fn objective(&self) -> &str {
        self.labels.get("objective").map_or("", String::as_str)
    }
}

/// The labels of an objective's alert: `alertname`, `objective`, `model`, `severity`, and the
/// `attribute`, `feature` and `group` the objective names. All come from configuration.
pub fn labels(o: &Objective) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("alertname".to_owned(), ALERTNAME.to_owned());
    l.insert("objective".to_owned(), o.id.clone());
    l.insert("model".to_owned(), o.model.clone());
    l.insert("severity".to_owned(), o.severity.as_str().to_owned());
    for (k, v) in [
        ("attribute", &o.selector.attribute),
        ("feature", &o.selector.feature),
        ("group", &o.selector.group),
    ] {
        if let Some(v) = v {
            l.insert(k.to_owned(), v.clone());
        }
    }
    l
}

/// The annotations: what a person needs to act without opening anything else.
pub fn annotations(o: &Objective, value: Option<&Measured>) -> BTreeMap<String, String> {
    let value = match value {
        Some(Measured::Value(v)) => format!("{v}"),
        Some(Measured::Undefined(why)) => format!("undefined: {why}"),
        None => "unknown".to_owned(),
    };
    BTreeMap::from([
        ("title".to_owned(), o.title.clone()),
        ("value".to_owned(), value),
        ("target".to_owned(), format!("{} {}", o.metric, o.target)),
        ("owner".to_owned(), o.owner.clone()),
        ("rationale".to_owned(), o.rationale.clone()),
        ("controls".to_owned(), o.controls.join(", ")),
    ])
}

/// `<external>/v1/objectives/<id>/evaluations`, the id percent-encoded as a path segment.
pub fn generator_url(external: &str, objective: &str) -> String {
    match reqwest::Url::parse(external) {
        Ok(mut url) => {
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty()
                    .extend(["v1", "objectives", objective, "evaluations"]);
            }
            url.to_string()
        }
        Err(_) => format!("{external}/v1/objectives/{objective}/evaluations"),
    }
}

pub use aims_core::time::rfc3339_millis as rfc3339;

/// The `alertname` of a corrective action past its due date (Clause 10.2): its own name, so
/// it can be routed to the action's owner apart from the breach that caused it.
pub const OVERDUE_ALERTNAME: &str = "AIMSCorrectiveActionOverdue";

/// The labels of an overdue action's alert: `alertname`, the objective's `objective`, `model`
/// and `severity`, and the `nonconformity` and `action` ids, so each action is its own alert.
pub fn overdue_labels(o: &Objective, nonconformity: u64, action: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("alertname".to_owned(), OVERDUE_ALERTNAME.to_owned()),
        ("objective".to_owned(), o.id.clone()),
        ("model".to_owned(), o.model.clone()),
        ("severity".to_owned(), o.severity.as_str().to_owned()),
        ("nonconformity".to_owned(), nonconformity.to_string()),
        ("action".to_owned(), action.to_string()),
    ])
}

/// The annotations of an overdue action's alert: what is late, whose it is, since when.
pub fn overdue_annotations(
    o: &Objective,
    a: &aims_core::nonconformity::Action,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "title".to_owned(),
            format!("Corrective action overdue: {}", a.description),
        ),
        ("owner".to_owned(), a.owner.clone()),
        ("due".to_owned(), rfc3339(a.due_ms)),
        ("control".to_owned(), a.control.clone()),
        ("objective_title".to_owned(), o.title.clone()),
    ])
}

/// `<external>/v1/nonconformities/<id>`.
pub fn nonconformity_url(external: &str, id: u64) -> String {
    format!("{}/v1/nonconformities/{id}", external.trim_end_matches('/'))
}

/// The label set's fingerprint as Alertmanager computes it (FNV-1a 64 over sorted names and
/// values, each followed by a 0xff separator), so webhook receivers can correlate with it.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        feed(k.as_bytes());
        feed(&[0xff]);
        feed(v.as_bytes());
        feed(&[0xff]);
    }
    format!("{h:016x}")
}

fn alert_json(a: &Alert) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339(a.starts_at_ms),
        "endsAt": rfc3339(a.ends_at_ms),
        "generatorURL": a.generator_url,
    })
}

/// The body of `POST /api/v2/alerts`.
pub fn alertmanager(alerts: &[Alert]) -> Value {
    Value::Array(alerts.iter().map(alert_json).collect())
}

/// Alertmanager's webhook payload (version 4) for one group of alerts of one objective.
pub fn webhook(receiver: &str, external_url: &str, alerts: &[Alert]) -> Value {
    let common = |pick: fn(&Alert) -> &BTreeMap<String, String>| -> BTreeMap<String, String> {
        let mut it = alerts.iter().map(pick);
        let mut out = it.next().cloned().unwrap_or_default();
        for m in it {
            out.retain(|k, v| m.get(k) == Some(v));
        }
        out
    };
    let objective = alerts.first().map_or("", Alert::objective);
    let status = if alerts.iter().any(|a| !a.resolved) {
        "firing"
    } else {
        "resolved"
    };
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{objective={objective:?}}}"),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"objective": objective},
        "commonLabels": common(|a| &a.labels),
        "commonAnnotations": common(|a| &a.annotations),
        "externalURL": external_url,
        "alerts": alerts.iter().map(|a| {
            let mut v = alert_json(a);
            v["status"] = json!(a.status());
            v["fingerprint"] = json!(fingerprint(&a.labels));
            v
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objective() -> Objective {
        let text = r#"policy: P
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    severity: critical
    owner: risk@example.com
    rationale: Four-fifths rule
    controls: [A.6.2.6, A.5.4]
    notify: [am]
"#;
        aims_core::objective::parse(text, &[])
            .unwrap()
            .objectives
            .remove(0)
    }

    fn alert(resolved: bool) -> Alert {
        let o = objective();
        Alert {
            labels: labels(&o),
            annotations: annotations(&o, Some(&Measured::Value(0.62))),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: 1_700_000_240_000,
            generator_url: generator_url("http://127.0.0.1:9470", &o.id),
            resolved,
        }
    }

    #[test]
    fn labels_and_annotations_carry_the_objective() {
        let a = alert(false);
        let l: Vec<_> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            l,
            [
                "alertname=AIMSObjectiveBreach",
                "attribute=gender",
                "model=credit-scoring",
                "objective=parity",
                "severity=critical"
            ]
        );
        assert_eq!(a.annotations["value"], "0.62");
        assert_eq!(a.annotations["target"], "demographic_parity_ratio >= 0.8");
        assert_eq!(a.annotations["controls"], "A.6.2.6, A.5.4");
        assert_eq!(a.annotations["owner"], "risk@example.com");
        assert_eq!(a.annotations["rationale"], "Four-fifths rule");
        assert_eq!(
            a.generator_url,
            "http://127.0.0.1:9470/v1/objectives/parity/evaluations"
        );
        assert_eq!(
            generator_url("https://aims.example.com/base/", "a b"),
            "https://aims.example.com/base/v1/objectives/a%20b/evaluations"
        );
    }

    #[test]
    fn alertmanager_body_is_an_array_of_full_alerts() {
        let body = alertmanager(&[alert(false)]);
        let a = &body[0];
        assert_eq!(a["labels"]["objective"], "parity");
        assert_eq!(a["annotations"]["title"], objective().title);
        assert_eq!(a["startsAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(a["endsAt"], "2023-11-14T22:17:20.000Z");
        assert!(a["generatorURL"]
            .as_str()
            .unwrap()
            .ends_with("/evaluations"));
    }

    #[test]
    fn webhook_payload_has_alertmanagers_shape() {
        let body = webhook("hook", "http://c", &[alert(true)]);
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["receiver"], "hook");
        assert_eq!(body["groupKey"], "{}:{objective=\"parity\"}");
        assert_eq!(body["groupLabels"]["objective"], "parity");
        assert_eq!(body["commonLabels"]["severity"], "critical");
        assert_eq!(body["commonAnnotations"]["value"], "0.62");
        assert_eq!(body["externalURL"], "http://c");
        let a = &body["alerts"][0];
        assert_eq!(a["status"], "resolved");
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
        for key in [
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
        ] {
            assert!(!a[key].is_null(), "{key} missing in {a}");
        }
    }

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Prometheus model: LabelSet{"alertname": "Test"}.Fingerprint() hashes "alertname",
        // 0xff, "Test", 0xff with FNV-1a 64; the empty set is the FNV offset basis.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let one = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let two = BTreeMap::from([("a".to_owned(), "c".to_owned())]);
        assert_ne!(fingerprint(&one), fingerprint(&two));
        assert_eq!(fingerprint(&one), fingerprint(&one.clone()));
    }
}
