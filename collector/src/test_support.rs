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

/// The stores a backend-independent test runs against: a fresh SQLite file in `dir`, and a
/// fresh PostgreSQL database on the server `AIMS_TEST_POSTGRES_URL` names (`.ci/run` starts
/// one). Without that variable the PostgreSQL half is skipped visibly, naming the Debian
/// package (`aims_testkit::postgres::server`); under `CI=true` it fails instead. The third
/// field keeps the PostgreSQL database until the test is done with the store, then drops it.
pub async fn stores(
    dir: &std::path::Path,
) -> Vec<(
    &'static str,
    crate::store::Store,
    Option<aims_testkit::postgres::TestDatabase>,
)> {
    use crate::config::Synchronous;
    use crate::store::Store;
    let mut out = vec![(
        "sqlite",
        Store::open(&dir.join("c.db"), Synchronous::Normal)
            .await
            .expect("a SQLite store"),
        None,
    )];
    if let Some(url) = aims_testkit::postgres::server("the PostgreSQL half of a store test") {
        let database = aims_testkit::postgres::fresh_database(&url);
        let options = std::str::FromStr::from_str(database.url()).expect("the test URL parses");
        let store = Store::open_postgres(options, 4)
            .await
            .expect("open the test database");
        out.push(("postgres", store, Some(database)));
    }
    out
}
