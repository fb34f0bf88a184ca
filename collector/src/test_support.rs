//! A one-feature model and its events, shared by the unit tests of the modules that store and
//! merge summaries.

use aims_core::profile::ProfileBuilder;
use aims_core::schema::{FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::{Event, FeatureValue, Prediction, ReferenceProfile};

/// A binary model with one numeric feature `x`, and its profile over `x` = 0..100.
pub fn fixture() -> (ModelSchema, ReferenceProfile) {
    let schema = ModelSchema {
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
        b.add(&event(f64::from(i)));
    }
    (schema, b.finish())
}

/// A positive prediction with feature value `x`.
pub fn event(x: f64) -> Event {
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
