//! AI objectives (ISO/IEC 42001 Clause 6.2): what the organisation promises about a model,
//! measurably, with an owner, a plan and the controls it evidences.
//!
//! Objectives are declared in YAML. Parsing happens in two steps, as with every input here:
//! the raw document is read into loose structs (YAML errors carry their line), then validated
//! into [`Objective`]s, and each validation error names the objective, the field and its line.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hash::{canonical_json, sha256_hex};
use crate::metrics::fairness::FairnessOptions;
use crate::metrics::{self, Measured, Measurement, Scope, Selector};
use crate::schema::ModelSchema;

/// A comparison against a threshold, such as `>= 0.8`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
}

/// Comparison operators of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `<`
    #[serde(rename = "<")]
    Lt,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.threshold)
    }
}

impl std::str::FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (op, rest) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .into_iter()
            .find_map(|(p, op)| s.strip_prefix(p).map(|rest| (op, rest)))
            .ok_or_else(|| format!("{s:?} must start with >=, >, <= or <"))?;
        let threshold: f64 = rest
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a number", rest.trim()))?;
        if !threshold.is_finite() {
            return Err("the threshold must be finite".to_owned());
        }
        Ok(Condition { op, threshold })
    }
}

impl Condition {
    /// Whether `value` satisfies the condition.
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::Ge => value >= self.threshold,
            Op::Gt => value > self.threshold,
            Op::Le => value <= self.threshold,
            Op::Lt => value < self.threshold,
        }
    }
}

/// How urgent a breach is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Someone acts now.
    Critical,
    /// Someone looks soon.
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// The plan to achieve an objective (Clause 6.2: what, resources, who, when, how evaluated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// What will be done.
    #[serde(default)]
    pub actions: String,
    /// Resources required.
    #[serde(default)]
    pub resources: String,
    /// When it will be completed.
    #[serde(default)]
    pub due: String,
    /// How the results will be evaluated.
    #[serde(default)]
    pub evaluation: String,
}

/// What counts as a breach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breach {
    /// The point value fails the target (the behaviour before intervals existed).
    #[default]
    Point,
    /// The whole confidence interval lies beyond the target. An interval that straddles the
    /// target is judged `at_risk` (never `met`) with the reading
    /// [`Reading::IntervalStraddles`]: not shown breached, not shown met either.
    Significant,
}

impl Breach {
    fn is_point(&self) -> bool {
        *self == Breach::Point
    }
}

/// How a verdict was reached, so that an auditor can tell a significant breach from a point
/// one and an inconclusive interval from a met target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// `breach: point`: the value against the target.
    Point,
    /// `breach: significant`: the whole interval lies beyond the target.
    IntervalBeyond,
    /// `breach: significant`: the interval contains values on both sides of the target; the
    /// verdict is `at_risk`.
    IntervalStraddles,
    /// `breach: significant`: the whole interval meets the target; the warning is then judged
    /// on the value.
    IntervalWithin,
    /// `breach: significant` but no interval could be computed (fewer than two groups, no
    /// trials): judged on the value, and said so.
    NoInterval,
}

/// A verdict and how it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// How it was reached.
    pub reading: Reading,
}

/// An objective as written in YAML, before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjective {
    id: Option<String>,
    title: Option<String>,
    model: Option<String>,
    metric: Option<String>,
    feature: Option<String>,
    attribute: Option<String>,
    group: Option<String>,
    class: Option<String>,
    target: Option<serde_yaml_ng::Value>,
    warning: Option<serde_yaml_ng::Value>,
    window: Option<String>,
    min_samples: Option<u64>,
    #[serde(rename = "for")]
    for_: Option<String>,
    severity: Option<Severity>,
    owner: Option<String>,
    rationale: Option<String>,
    plan: Option<Plan>,
    #[serde(default)]
    controls: Vec<String>,
    #[serde(default)]
    notify: Vec<String>,
    breach: Option<Breach>,
    min_group_samples: Option<u64>,
    confidence: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    policy: Option<String>,
    #[serde(default)]
    objectives: Vec<RawObjective>,
}

/// A validated objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Stable identifier.
    pub id: String,
    /// One-line statement.
    pub title: String,
    /// The model it watches.
    pub model: String,
    /// A catalogue metric, or `no_data`.
    pub metric: String,
    /// Feature / attribute / group the metric needs.
    #[serde(flatten)]
    pub selector: Selector,
    /// The condition that must hold.
    pub target: Condition,
    /// A stricter condition whose failure means "at risk".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Condition>,
    /// Data window each evaluation merges.
    #[serde(with = "seconds")]
    pub window: Duration,
    /// Fewer samples than this is `insufficient_data`.
    pub min_samples: u64,
    /// How long a breach must last before it fires.
    #[serde(rename = "for", with = "seconds")]
    pub for_: Duration,
    /// Urgency of a breach.
    pub severity: Severity,
    /// Accountable person or role.
    pub owner: String,
    /// Why this metric and target.
    pub rationale: String,
    /// The plan to achieve it.
    pub plan: Plan,
    /// Annex A controls the objective evidences.
    pub controls: Vec<String>,
    /// Receivers to notify.
    pub notify: Vec<String>,
    /// Point or significant breach (absent in objectives written before it existed).
    #[serde(default, skip_serializing_if = "Breach::is_point")]
    pub breach: Breach,
    /// Fairness metrics: groups with fewer predictions are left out and listed as too small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_group_samples: Option<u64>,
    /// Fairness metrics: confidence of the intervals (0.95 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// The metric name for a monitoring gap, evaluated by the collector.
pub const NO_DATA_METRIC: &str = "no_data";

/// Verdict of one objective on one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Target and warning hold.
    Met,
    /// Target holds, warning does not.
    AtRisk,
    /// Target does not hold.
    Breached,
    /// Fewer samples than `min_samples`.
    InsufficientData,
    /// The metric is undefined for this data.
    NotMeasurable,
}

impl Objective {
    /// Content hash of this objective: a changed objective is a new version.
    pub fn version(&self) -> String {
        sha256_hex(canonical_json(self).as_bytes())
    }

    /// Measures this objective's metric on a (merged) summary and its report: a fairness metric
    /// with the objective's own confidence and `min_group_samples`, any other as the report has
    /// it. This is what an evaluator calls per objective, before
    /// [`judge_measurement`](Self::judge_measurement).
    pub fn measure(
        &self,
        schema: &ModelSchema,
        summary: &crate::summary::WindowSummary,
        report: &metrics::Report,
    ) -> Result<Measurement, metrics::CatalogueError> {
        metrics::measure_with_options(
            &self.metric,
            &self.selector,
            &self.fairness_options_for(schema),
            schema,
            summary,
            report,
        )
    }

    /// The fairness options this objective asks for.
    pub fn fairness_options(&self) -> FairnessOptions {
        let d = FairnessOptions::default();
        FairnessOptions {
            confidence: self.confidence.unwrap_or(d.confidence),
            min_group_samples: self.min_group_samples.unwrap_or(d.min_group_samples),
        }
    }

    /// The fairness options this objective asks for on `schema`: its own
    /// `min_group_samples` when it sets one, else the one its attribute (or intersection)
    /// declares in the schema, else none.
    pub fn fairness_options_for(&self, schema: &ModelSchema) -> FairnessOptions {
        let mut options = self.fairness_options();
        if self.min_group_samples.is_none() {
            if let Some(n) = self
                .selector
                .attribute
                .as_deref()
                .and_then(|a| schema.fairness_attribute(a))
                .and_then(|a| a.min_group_samples)
            {
                options.min_group_samples = n;
            }
        }
        options
    }

    /// Judges a measurement, reading its interval when the objective says `breach:
    /// significant`.
    pub fn judge_measurement(&self, m: &Measurement) -> Judgement {
        let point = self.judge(&m.value, m.samples);
        if self.breach == Breach::Point {
            return Judgement {
                verdict: point,
                reading: Reading::Point,
            };
        }
        if matches!(point, Verdict::InsufficientData | Verdict::NotMeasurable) {
            return Judgement {
                verdict: point,
                reading: Reading::Point,
            };
        }
        let Some(i) = m.interval else {
            return Judgement {
                verdict: point,
                reading: Reading::NoInterval,
            };
        };
        let (lower, upper) = (self.target.holds(i.lower), self.target.holds(i.upper));
        if !lower && !upper {
            Judgement {
                verdict: Verdict::Breached,
                reading: Reading::IntervalBeyond,
            }
        } else if lower && upper {
            let verdict = match point {
                Verdict::Breached => Verdict::AtRisk,
                v => v,
            };
            Judgement {
                verdict,
                reading: Reading::IntervalWithin,
            }
        } else {
            Judgement {
                verdict: Verdict::AtRisk,
                reading: Reading::IntervalStraddles,
            }
        }
    }

    /// Judges a measured value backed by `samples` samples, on the point value.
    pub fn judge(&self, value: &Measured, samples: u64) -> Verdict {
        if samples < self.min_samples {
            return Verdict::InsufficientData;
        }
        match value.value() {
            None => Verdict::NotMeasurable,
            Some(v) if !self.target.holds(v) => Verdict::Breached,
            Some(v) if self.warning.is_some_and(|w| !w.holds(v)) => Verdict::AtRisk,
            Some(_) => Verdict::Met,
        }
    }
}

/// A validated objectives file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectivesFile {
    /// The AI policy the objectives are consistent with.
    pub policy: String,
    /// The objectives.
    pub objectives: Vec<Objective>,
    /// SHA-256 of the file's bytes.
    pub version: String,
}

/// One problem in an objectives file.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("line {line}: {location}: {message}")]
pub struct ObjectiveError {
    /// 1-based line in the file (0 when unknown).
    pub line: usize,
    /// `objectives[2] (id credit-parity).target` and the like.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

/// Finds the line of `key:` inside the `index`-th objective's block, or its first line.
fn locate(text: &str, index: usize, key: Option<&str>) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("- ") && lines_in_objectives(l))
        .map(|(i, _)| i)
        .collect();
    let Some(&start) = starts.get(index) else {
        return 0;
    };
    let end = starts.get(index + 1).copied().unwrap_or(lines.len());
    if let Some(key) = key {
        for (i, l) in lines.iter().enumerate().take(end).skip(start) {
            let t = l.trim_start().trim_start_matches("- ");
            if t.starts_with(&format!("{key}:")) {
                return i + 1;
            }
        }
    }
    start + 1
}

fn lines_in_objectives(line: &str) -> bool {
    // Objective items sit at the first list level: "  - id: ...". Nested lists
    // (controls, notify) are flow-style or deeper; items of a block list deeper than the
    // objective's own indentation would need a YAML parser with positions, which the error
    // location does not justify.
    let indent = line.len() - line.trim_start().len();
    indent <= 2
}

/// Parses and validates an objectives file. `schemas` are the known model schemas; when one
/// exists for an objective's model, its feature / attribute / group are checked against it.
/// Every problem is returned, not only the first.
pub fn parse(text: &str, schemas: &[ModelSchema]) -> Result<ObjectivesFile, Vec<ObjectiveError>> {
    let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| {
        vec![ObjectiveError {
            line: e.location().map_or(0, |l| l.line()),
            location: "file".to_owned(),
            message: e.to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    let policy = raw.policy.unwrap_or_default();
    if policy.trim().is_empty() {
        errors.push(ObjectiveError {
            line: 1,
            location: "policy".to_owned(),
            message: "name the AI policy these objectives serve (Clause 6.2 a)".to_owned(),
        });
    }
    let mut objectives = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, o) in raw.objectives.into_iter().enumerate() {
        let label = match &o.id {
            Some(id) => format!("objectives[{i}] ({id})"),
            None => format!("objectives[{i}]"),
        };
        let mut fail = |key: &str, message: String| {
            errors.push(ObjectiveError {
                line: locate(text, i, Some(key)),
                location: format!("{label}.{key}"),
                message,
            });
        };
        // A missing field is reported and the rest of the objective is still checked, so one
        // run names every error (as promtool does), not only the first kind.
        let required = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
        for (key, v) in [
            ("id", &o.id),
            ("title", &o.title),
            ("model", &o.model),
            ("metric", &o.metric),
            ("owner", &o.owner),
        ] {
            if required(v).is_none() {
                fail(key, "is required".to_owned());
            }
        }
        let (id, title, model, owner) = (
            required(&o.id),
            required(&o.title),
            required(&o.model),
            required(&o.owner),
        );
        let metric = required(&o.metric).unwrap_or_default();
        if let Some(id) = &id {
            if !ids.insert(id.clone()) {
                fail("id", format!("duplicate objective id {id:?}"));
            }
        }
        let selector = Selector {
            feature: o.feature.clone(),
            attribute: o.attribute.clone(),
            group: o.group.clone(),
            class: o.class.clone(),
        };
        if !metric.is_empty() && metric != NO_DATA_METRIC {
            let schema = model
                .as_ref()
                .and_then(|m| schemas.iter().find(|s| &s.name == m));
            if let Err(e) = metrics::catalogue::check(&metric, &selector, schema) {
                fail(e.field, e.message);
            }
        }
        let condition = |v: &Option<serde_yaml_ng::Value>| -> Option<Result<Condition, String>> {
            v.as_ref().map(|v| match v {
                serde_yaml_ng::Value::String(s) => s.parse(),
                other => Err(format!("expected a string like \">= 0.8\", got {other:?}")),
            })
        };
        let target = match condition(&o.target) {
            None => {
                fail("target", "is required".to_owned());
                None
            }
            Some(Err(e)) => {
                fail("target", e);
                None
            }
            Some(Ok(c)) => Some(c),
        };
        let warning = match condition(&o.warning) {
            Some(Err(e)) => {
                fail("warning", e);
                None
            }
            Some(Ok(c)) => Some(c),
            None => None,
        };
        let mut duration = |key: &str, v: &Option<String>, default: u64| -> Duration {
            match v {
                None => Duration::from_secs(default),
                Some(s) => match humantime::parse_duration(s) {
                    Ok(d) => d,
                    Err(e) => {
                        fail(key, format!("{s:?} is not a duration like 30m or 24h: {e}"));
                        Duration::ZERO
                    }
                },
            }
        };
        let window = duration("window", &o.window, 3600);
        let for_ = duration("for", &o.for_, 0);
        if window.is_zero() && o.window.is_some() {
            fail("window", "must be longer than zero".to_owned());
        }
        let breach = o.breach.unwrap_or_default();
        if metric.is_empty() {
            // Already reported as required; nothing below can be judged without it.
        } else if breach == Breach::Significant && !metrics::catalogue::has_interval(&metric) {
            fail(
                "breach",
                format!("{metric} has no confidence interval; use breach: point"),
            );
        } else if breach == Breach::Significant && o.class.is_some() {
            fail(
                "breach",
                format!("{metric} of one class has no confidence interval; use breach: point"),
            );
        }
        if let Some(c) = o.confidence {
            if !(c > 0.0 && c < 1.0) {
                fail(
                    "confidence",
                    format!("{c} is not between 0 and 1 (exclusive)"),
                );
            }
        }
        let is_fairness = metrics::MetricSpec::find(&metric)
            .is_some_and(|m| matches!(m.scope, Scope::Attribute | Scope::Group));
        if !is_fairness && !metric.is_empty() {
            if o.min_group_samples.is_some() {
                fail(
                    "min_group_samples",
                    format!("{metric} is not a fairness metric"),
                );
            }
            if o.confidence.is_some() {
                fail("confidence", format!("{metric} has no confidence interval"));
            }
        }
        let (Some(target), Some(id), Some(title), Some(model), Some(owner)) =
            (target, id, title, model, owner)
        else {
            continue;
        };
        objectives.push(Objective {
            id,
            title,
            model,
            metric,
            selector,
            target,
            warning,
            window,
            min_samples: o.min_samples.unwrap_or(1),
            for_,
            severity: o.severity.unwrap_or(Severity::Warning),
            owner,
            rationale: o.rationale.unwrap_or_default(),
            plan: o.plan.unwrap_or_default(),
            controls: o.controls,
            notify: o.notify,
            breach,
            min_group_samples: o.min_group_samples,
            confidence: o.confidence,
        });
    }
    if errors.is_empty() {
        Ok(ObjectivesFile {
            policy,
            objectives,
            version: sha256_hex(text.as_bytes()),
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: credit-approval-parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    warning: ">= 0.85"
    window: 24h
    min_samples: 1000
    for: 30m
    severity: critical
    owner: head-of-credit-risk@example.com
    rationale: Four-fifths rule
    plan:
      actions: Re-weight training data
      resources: ML platform team
      due: 2027-03-31
      evaluation: Met if no critical breach in 95 % of evaluations per quarter
    controls: [A.6.2.6, A.5.4]
    notify: [alertmanager]
  - id: income-drift
    title: Income stays stable
    model: credit-scoring
    metric: psi
    feature: income
    target: "<= 0.2"
    owner: ml-platform@example.com
"#;

    #[test]
    fn the_design_example_parses() {
        let f = parse(GOOD, &[]).unwrap();
        assert_eq!(f.objectives.len(), 2);
        let o = &f.objectives[0];
        assert_eq!(
            o.target,
            Condition {
                op: Op::Ge,
                threshold: 0.8
            }
        );
        assert_eq!(o.window, Duration::from_secs(86_400));
        assert_eq!(o.for_, Duration::from_secs(1_800));
        assert_eq!(o.plan.due, "2027-03-31");
        assert_eq!(o.judge(&Measured::Value(0.82), 2000), Verdict::AtRisk);
        assert_eq!(o.judge(&Measured::Value(0.7), 2000), Verdict::Breached);
        assert_eq!(o.judge(&Measured::Value(0.9), 2000), Verdict::Met);
        assert_eq!(
            o.judge(&Measured::Value(0.9), 10),
            Verdict::InsufficientData
        );
    }

    #[test]
    fn errors_carry_line_and_field() {
        let bad = GOOD.replace("target: \"<= 0.2\"", "target: \"about 0.2\"");
        let errs = parse(&bad, &[]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].location, "objectives[1] (income-drift).target");
        assert_eq!(errs[0].line, 28);

        let bad = GOOD.replace("metric: psi", "metric: psy");
        let errs = parse(&bad, &[]).unwrap_err();
        assert_eq!(errs[0].location, "objectives[1] (income-drift).metric");
        assert_eq!(errs[0].line, 26);
    }

    #[test]
    fn one_run_names_every_error_missing_fields_and_a_bad_metric_alike() {
        let bad = GOOD
            .replace("    owner: ml-platform@example.com\n", "")
            .replace("metric: psi", "metric: psy");
        let errs = parse(&bad, &[]).unwrap_err();
        let locations: Vec<&str> = errs.iter().map(|e| e.location.as_str()).collect();
        assert!(
            locations.contains(&"objectives[1] (income-drift).owner"),
            "{locations:?}"
        );
        assert!(
            locations.contains(&"objectives[1] (income-drift).metric"),
            "the bad metric is named although a required field is missing: {locations:?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let bad = GOOD.replace(
            "    owner: ml-platform",
            "    ownr: x\n    owner: ml-platform",
        );
        let errs = parse(&bad, &[]).unwrap_err();
        assert!(errs[0].message.contains("ownr"), "{:?}", errs);
        assert_eq!(errs[0].line, 29);
    }

    fn measurement(value: f64, lower: f64, upper: f64) -> Measurement {
        Measurement {
            value: Measured::Value(value),
            samples: 5000,
            interval: Some(crate::metrics::intervals::Interval {
                lower,
                upper,
                confidence: 0.95,
                adjusted: false,
            }),
            too_small: Default::default(),
        }
    }

    #[test]
    fn objectives_without_the_new_fields_keep_their_version() {
        let f = parse(GOOD, &[]).unwrap();
        let o = &f.objectives[0];
        assert_eq!(o.breach, Breach::Point);
        assert_eq!(o.min_group_samples, None);
        let json = serde_json::to_value(o).unwrap();
        for key in ["breach", "min_group_samples", "confidence"] {
            assert!(
                json.get(key).is_none(),
                "{key} must not enter the canonical JSON"
            );
        }
        // An objective stored before these fields existed reads back equal.
        let back: Objective = serde_json::from_value(json).unwrap();
        assert_eq!(&back, o);
        assert_eq!(back.version(), o.version());
    }

    #[test]
    fn significance_fields_parse_and_are_checked() {
        let with = GOOD.replace(
            "    min_samples: 1000\n",
            "    min_samples: 1000\n    breach: significant\n    min_group_samples: 200\n    confidence: 0.9\n",
        );
        let f = parse(&with, &[]).unwrap();
        let o = &f.objectives[0];
        assert_eq!(o.breach, Breach::Significant);
        assert_eq!(
            o.fairness_options(),
            FairnessOptions {
                confidence: 0.9,
                min_group_samples: 200
            }
        );
        assert_ne!(
            o.version(),
            parse(GOOD, &[]).unwrap().objectives[0].version()
        );

        let bad = with.replace("confidence: 0.9", "confidence: 95");
        let errs = parse(&bad, &[]).unwrap_err();
        assert_eq!(
            errs[0].location,
            "objectives[0] (credit-approval-parity).confidence"
        );
        assert_eq!(errs[0].line, 14);

        let bad = GOOD.replace(
            "    target: \"<= 0.2\"",
            "    target: \"<= 0.2\"\n    breach: significant\n    min_group_samples: 5",
        );
        let errs = parse(&bad, &[]).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            fields,
            [
                "objectives[1] (income-drift).breach",
                "objectives[1] (income-drift).min_group_samples"
            ]
        );
        let bad = GOOD.replace(
            "min_samples: 1000",
            "min_samples: 1000\n    breach: sometimes",
        );
        assert!(parse(&bad, &[]).is_err());
    }

    #[test]
    fn significant_breach_reads_the_interval() {
        let text = GOOD.replace(
            "    min_samples: 1000\n",
            "    min_samples: 1000\n    breach: significant\n",
        );
        let f = parse(&text, &[]).unwrap();
        let o = &f.objectives[0]; // target >= 0.8, warning >= 0.85
        let j = o.judge_measurement(&measurement(0.70, 0.62, 0.78));
        assert_eq!(
            (j.verdict, j.reading),
            (Verdict::Breached, Reading::IntervalBeyond)
        );
        // The value breaches but the interval reaches the target: at risk, never met.
        let j = o.judge_measurement(&measurement(0.78, 0.70, 0.86));
        assert_eq!(
            (j.verdict, j.reading),
            (Verdict::AtRisk, Reading::IntervalStraddles)
        );
        // The value meets the target but the interval reaches below it: at risk too.
        let j = o.judge_measurement(&measurement(0.9, 0.79, 0.95));
        assert_eq!(
            (j.verdict, j.reading),
            (Verdict::AtRisk, Reading::IntervalStraddles)
        );
        let j = o.judge_measurement(&measurement(0.9, 0.87, 0.93));
        assert_eq!(
            (j.verdict, j.reading),
            (Verdict::Met, Reading::IntervalWithin)
        );
        let j = o.judge_measurement(&measurement(0.83, 0.81, 0.86));
        assert_eq!(
            (j.verdict, j.reading),
            (Verdict::AtRisk, Reading::IntervalWithin)
        );
        let mut no_interval = measurement(0.7, 0.0, 0.0);
        no_interval.interval = None;
        let j = o.judge_measurement(&no_interval);
        assert_eq!(
            (j.verdict, j.reading),
            (Verdict::Breached, Reading::NoInterval)
        );
        let mut few = measurement(0.7, 0.6, 0.75);
        few.samples = 10;
        assert_eq!(o.judge_measurement(&few).verdict, Verdict::InsufficientData);

        // The same measurement under breach: point fires on the value alone.
        let point = &parse(GOOD, &[]).unwrap().objectives[0];
        let j = point.judge_measurement(&measurement(0.78, 0.70, 0.86));
        assert_eq!((j.verdict, j.reading), (Verdict::Breached, Reading::Point));
    }

    /// Through the lifecycle: a significant objective fires only on intervals beyond the
    /// target; a straddling interval never starts a breach, clears a pending one and resolves
    /// a firing one, exactly as a warning-only (`at_risk`) evaluation does.
    #[test]
    fn straddling_intervals_neither_start_nor_hold_a_breach() {
        use crate::lifecycle::{step, Input, Lifecycle, State, Timing};
        let text = GOOD.replace(
            "    min_samples: 1000\n",
            "    min_samples: 1000\n    breach: significant\n",
        );
        let o = parse(&text, &[]).unwrap().objectives[0].clone();
        let timing = Timing {
            for_ms: 0,
            resolved_hold_ms: 0,
        };
        let beyond = measurement(0.70, 0.62, 0.78);
        let straddles = measurement(0.78, 0.70, 0.86);
        let mut life = Lifecycle::initial(0);
        let mut states = Vec::new();
        for (t, m) in [&straddles, &straddles, &beyond, &straddles, &beyond]
            .into_iter()
            .enumerate()
        {
            let input = Input::Judged(o.judge_measurement(m).verdict);
            life = step(life, input, t as i64 * 60_000, timing).0;
            states.push(life.state);
        }
        assert_eq!(states[..2], [State::Ok, State::Ok]);
        assert!(states[2].is_alert(), "{states:?}");
        assert!(!states[3].is_alert(), "{states:?}");
        assert!(states[4].is_alert(), "{states:?}");
    }
}
