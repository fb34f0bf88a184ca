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

/// `envelope` as ingest stores it when it is POSTed gzip-compressed, as agents send it.
pub fn gzip_body(envelope: &aims_core::wire::SummaryEnvelope) -> crate::store::SummaryBody {
    let json = serde_json::to_vec(envelope).expect("an envelope serialises");
    crate::store::SummaryBody::Gzip(aims_runtime::gzip::encode(&json))
}

/// One armed pause point: who to tell it was reached, and what to wait for before going on.
type Armed = (
    tokio::sync::oneshot::Sender<()>,
    Option<tokio::sync::oneshot::Receiver<()>>,
);

/// Named pause points a test arms to drive an interleaving of tasks by hand, without sleeps
/// (see [`crate::aggregate::Gate::point`]). A point not armed costs nothing; an armed one
/// fires once.
#[derive(Debug, Clone, Default)]
pub struct Pauses(
    std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<&'static str, Armed>>>,
);

impl Pauses {
    /// Arms `name`: the next task to reach it fires the returned receiver; with `hold`, it then
    /// waits there until the returned sender fires or is dropped.
    pub fn arm(
        &self,
        name: &'static str,
        hold: bool,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (resume, wait) = if hold {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.0.lock().insert(name, (reached_tx, wait));
        (reached, resume)
    }

    /// Where a task passes the point `name`.
    pub async fn point(&self, name: &'static str) {
        let armed = self.0.lock().remove(name);
        if let Some((reached, wait)) = armed {
            reached.send(()).ok();
            if let Some(wait) = wait {
                wait.await.ok();
            }
        }
    }
}
