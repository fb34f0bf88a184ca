//! The stores the unit tests of the storage modules run against, one per backend. (Their model
//! and events are the test kit's: `aims_testkit::fixtures::{one_feature, positive}`.)

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
