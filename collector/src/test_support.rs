//! A one-feature model and its events, shared by the unit tests of the modules that store and
//! merge summaries.

use aims_core::profile::ProfileBuilder;
use aims_core::schema::{FeatureKind, FeatureSpec, ModelSchema, Task};
use aims_core::{Event, FeatureValue, Prediction, ReferenceProfile};

/// A binary model with one numeric feature `x`, and its profile over `x` = 0..100.
pub fn fixture() -> (ModelSchema, ReferenceProfile) {
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
/// package (`aims_testkit::postgres::server`); under `CI=true` it fails instead.
pub async fn stores(dir: &std::path::Path) -> Vec<(&'static str, crate::store::Store)> {
    use crate::config::Synchronous;
    use crate::store::Store;
    let mut out = vec![(
        "sqlite",
        Store::open(&dir.join("c.db"), Synchronous::Normal)
            .await
            .expect("a SQLite store"),
    )];
    if let Some(url) = aims_testkit::postgres::server("the PostgreSQL half of a store test") {
        out.push(("postgres", fresh_postgres(&url).await));
    }
    out
}

/// A new, empty database on the server at `url`, migrated, as a store.
pub async fn fresh_postgres(url: &str) -> crate::store::Store {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let admin = PgConnectOptions::from_str(url).expect("AIMS_TEST_POSTGRES_URL parses");
    let name = format!(
        "aims_test_{}_{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let mut conn = admin
        .connect()
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    conn.close().await.ok();
    crate::store::Store::open_postgres(admin.database(&name), 4)
        .await
        .expect("open the test database")
}
