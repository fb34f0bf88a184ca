//! The stores the unit tests of the storage modules run against, one per backend. (Their model
//! and events are the test kit's: `aims_testkit::fixtures::{one_feature, positive}`.)

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
