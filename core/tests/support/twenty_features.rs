//! The 20-feature model of the summary bench (`benches/summary.rs`) and of the summary-size
//! test (`tests/summary_size.rs`): 15 numeric and 5 categorical features, two protected
//! attributes, a binary score, half the events labelled. Deterministic (xorshift), so both
//! measure the same summary.

use aims_core::event::{Event, FeatureValue, Prediction, Target};
use aims_core::schema::{AttributeSpec, FeatureKind, FeatureSpec, ModelSchema, Task};

pub const NUMERIC: usize = 15;
pub const CATEGORICAL: usize = 5;

pub fn schema() -> ModelSchema {
    let mut features: Vec<FeatureSpec> = (0..NUMERIC)
        .map(|i| FeatureSpec {
            name: format!("n{i}"),
            kind: FeatureKind::Numeric,
        })
        .collect();
    features.extend((0..CATEGORICAL).map(|i| FeatureSpec {
        name: format!("c{i}"),
        kind: FeatureKind::Categorical,
    }));
    ModelSchema {
        intersections: Vec::new(),
        name: "bench".into(),
        version: "1".into(),
        task: Task::Binary,
        classes: vec![],
        positive_class: None,
        features,
        attributes: vec![
            AttributeSpec {
                min_group_samples: None,
                name: "gender".into(),
                groups: vec!["F".into(), "M".into()],
                reference_group: Some("M".into()),
            },
            AttributeSpec {
                min_group_samples: None,
                name: "band".into(),
                groups: (0..5).map(|i| format!("b{i}")).collect(),
                reference_group: None,
            },
        ],
    }
    .validated()
    .expect("valid schema")
}

/// A small deterministic generator (xorshift), so no test needs an extra crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n` (up to the modulo's bias, which no test minds); not every includer uses it.
    #[allow(dead_code)]
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` events, numeric features shifted by `shift`.
pub fn events(n: usize, shift: f64, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let categories = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    (0..n)
        .map(|i| {
            let mut features: Vec<FeatureValue> = (0..NUMERIC)
                .map(|k| {
                    FeatureValue::Numeric(
                        (rng.unit() + rng.unit() + rng.unit()) * (k as f64 + 1.0) + shift,
                    )
                })
                .collect();
            features.extend((0..CATEGORICAL).map(|_| {
                FeatureValue::Categorical(categories[(rng.next() % 6) as usize].to_owned())
            }));
            let score = rng.unit();
            Event {
                id: None,
                ts_ms: i as i64,
                features,
                groups: vec![(rng.next() % 3) as u16, (rng.next() % 6) as u16],
                prediction: Prediction::Class {
                    class: u32::from(score >= 0.5),
                    score: Some(score),
                },
                label: (i % 2 == 0).then(|| Target::Class((rng.next() % 2) as u32)),
                latency_ms: Some(rng.unit() * 40.0),
            }
        })
        .collect()
}

/// The summary of 300 events shifted by 0.3 against a profile of 2,000 unshifted ones: the wire
/// tests' summary. Not every includer uses it.
#[allow(dead_code)]
pub fn summary() -> aims_core::summary::WindowSummary {
    let schema = schema();
    let mut builder = aims_core::profile::ProfileBuilder::new(&schema);
    for e in events(2_000, 0.0, 7) {
        builder.add(&e);
    }
    let profile = builder.finish();
    let mut s = aims_core::summary::WindowSummary::new(&schema, &profile);
    for e in events(300, 0.3, 11) {
        s.record(&schema, &profile, &e);
    }
    s
}
