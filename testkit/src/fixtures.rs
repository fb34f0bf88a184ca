//! Builders for what the tests feed the binaries: a credit-scoring schema, reproducible events
//! (normal, biased or drifted traffic), reference profiles, window summaries and envelopes, and
//! the example objectives.

use aims_core::profile::ProfileBuilder;
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::wire::SummaryEnvelope;
use aims_core::{Event, FeatureValue, Prediction, ReferenceProfile, Target, WindowSummary};

/// The model every fixture describes.
pub const MODEL: &str = "credit-scoring";

/// A deterministic pseudo-random stream (xorshift), so tests are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The stream from `state` as it is (not scrambled like [`Rng::new`]'s seed): for data
    /// that must stay what an earlier generator wrote. `state` must not be 0.
    pub fn from_state(state: u64) -> Self {
        Self(state)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A credit-scoring schema with `numeric` numeric features (income first), a categorical
/// region and a gender attribute.
pub fn schema(numeric: usize) -> ModelSchema {
    let mut features: Vec<FeatureSpec> = (0..numeric)
        .map(|i| FeatureSpec {
            name: if i == 0 {
                "income".into()
            } else {
                format!("x{i}")
            },
            kind: FeatureKind::Numeric,
        })
        .collect();
    features.push(FeatureSpec {
        name: "region".into(),
        kind: FeatureKind::Categorical,
    });
    ModelSchema {
        intersections: Vec::new(),
        name: MODEL.into(),
        version: "1.0".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features,
        attributes: vec![AttributeSpec {
            min_group_samples: None,
            name: "gender".into(),
            groups: vec!["F".into(), "M".into()],
            reference_group: Some("M".into()),
        }],
    }
    .validated()
    .unwrap()
}

/// The smallest model a store or merge test needs: binary, one numeric feature `x`, no
/// attribute; with its profile over `x` = 0..100.
pub fn one_feature() -> (ModelSchema, ReferenceProfile) {
    let schema = ModelSchema {
        intersections: Vec::new(),
        name: "m".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features: vec![FeatureSpec {
            name: "x".into(),
            kind: FeatureKind::Numeric,
        }],
        attributes: vec![],
    }
    .validated()
    .expect("valid schema");
    let mut b = ProfileBuilder::new(&schema);
    for i in 0..100 {
        b.add(&positive(f64::from(i)));
    }
    (schema, b.finish())
}

/// A positive prediction of [`one_feature`]'s model with feature value `x`, no id, at time 0.
pub fn positive(x: f64) -> Event {
    Event {
        id: None,
        ts_ms: 0,
        features: vec![FeatureValue::Numeric(x)],
        groups: vec![],
        prediction: Prediction::Class {
            class: 1,
            score: None,
        },
        label: None,
        latency_ms: None,
    }
}

/// Traffic shapes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Traffic {
    Normal,
    Biased,
    Drifted,
}

pub fn event(schema: &ModelSchema, rng: &mut Rng, traffic: Traffic, ts_ms: i64) -> Event {
    let shift = if traffic == Traffic::Drifted {
        3.0
    } else {
        0.0
    };
    let mut features: Vec<FeatureValue> = (0..schema.features.len() - 1)
        .map(|i| {
            let sd = if i == 0 { 10_000.0 } else { 1.0 };
            let mean = if i == 0 { 50_000.0 } else { 0.0 };
            FeatureValue::Numeric(rng.normal(mean + shift * sd, sd))
        })
        .collect();
    let regions = ["north", "south", "east", "west"];
    features.push(FeatureValue::Categorical(
        regions[(rng.unit() * 4.0) as usize % 4].into(),
    ));
    let female = rng.unit() < 0.5;
    let p_approve = match (traffic, female) {
        (Traffic::Biased, true) => 0.2,
        (Traffic::Biased, false) => 0.8,
        _ => 0.5,
    };
    let approved = rng.unit() < p_approve;
    let truth = rng.unit() < 0.5;
    Event {
        id: None,
        ts_ms,
        features,
        groups: vec![if female { 0 } else { 1 }],
        prediction: Prediction::Class {
            class: u32::from(approved),
            score: Some(if approved { 0.75 } else { 0.25 }),
        },
        label: Some(Target::Class(u32::from(truth))),
        latency_ms: Some(5.0 + rng.unit() * 10.0),
    }
}

pub fn profile(schema: &ModelSchema) -> ReferenceProfile {
    let mut rng = Rng::new(7);
    let mut b = ProfileBuilder::new(schema);
    for _ in 0..2_000 {
        b.add(&event(schema, &mut rng, Traffic::Normal, 0));
    }
    b.finish()
}

pub fn summary(
    schema: &ModelSchema,
    profile: &ReferenceProfile,
    traffic: Traffic,
    events: usize,
    seed: u64,
) -> WindowSummary {
    let mut rng = Rng::new(seed);
    let mut s = WindowSummary::new(schema, profile);
    let now = now_ms();
    for _ in 0..events {
        s.record(schema, profile, &event(schema, &mut rng, traffic, now));
    }
    s
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The current one-minute window start.
pub fn minute() -> i64 {
    now_ms() / 60_000 * 60_000
}

pub fn envelope(
    agent: &str,
    window_start_ms: i64,
    seq: u64,
    summary: WindowSummary,
) -> SummaryEnvelope {
    SummaryEnvelope::new(agent, MODEL, "1.0", window_start_ms, 60_000, seq, summary)
}

/// The objectives the end-to-end tests evaluate.
pub const OBJECTIVES: &str = r#"policy: "AI Policy v3, section 4"
objectives:
  - id: parity
    title: Approval rates do not disadvantage any gender
    model: credit-scoring
    metric: demographic_parity_ratio
    attribute: gender
    target: ">= 0.8"
    window: 1h
    min_samples: 200
    for: 2s
    severity: critical
    owner: head-of-credit-risk@example.com
  - id: income-drift
    title: Income stays close to training
    model: credit-scoring
    metric: psi
    feature: income
    target: "<= 0.2"
    window: 1h
    min_samples: 200
    for: 1s
    owner: ml-platform@example.com
  - id: accuracy
    title: Accurate on labelled outcomes
    model: credit-scoring
    metric: accuracy
    target: ">= 0.4"
    window: 1h
    min_samples: 1000000
    owner: ml-platform@example.com
  - id: heartbeat
    title: Summaries keep arriving
    model: credit-scoring
    metric: no_data
    target: "< 2"
    owner: ml-platform@example.com
"#;
