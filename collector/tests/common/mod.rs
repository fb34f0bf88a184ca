//! The collector's test harness and builders, from aims-testkit, and the binary under test.
#![allow(dead_code, unused_imports)]

pub use aims_testkit::collector::*;
pub use aims_testkit::fixtures::*;
pub use aims_testkit::prom::sample;
pub use aims_testkit::wait_until;

pub const BIN: &str = env!("CARGO_BIN_EXE_aims-collector");

/// A collector running inside the test process: on a port-0 listener, with a manual clock set one
/// second into the current minute (`start`), evaluating every 50 ms, on objectives written to a
/// temporary folder. `configure` adjusts the configuration before it starts.
pub struct InProcess {
    /// Its temporary folder (data and objectives), removed when dropped.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The clock the collector reads; the test advances it.
    pub clock: aims_collector::Clock,
    /// The start of the minute the clock began in (ms).
    pub start: i64,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Its PostgreSQL database under `AIMS_TEST_BACKEND=postgres`, dropped with it.
    database: Option<aims_testkit::postgres::TestDatabase>,
}

impl InProcess {
    /// Starts it on `objectives` (YAML); call from a multi-threaded tokio test.
    pub fn start(objectives: &str, configure: impl FnOnce(&mut aims_collector::Config)) -> Self {
        let dir = aims_testkit::temp_dir();
        let path = dir.path().join("objectives.yaml");
        std::fs::write(&path, objectives).expect("objectives file");
        let mut config = aims_collector::Config::default();
        config.storage.data_dir = dir.path().join("data");
        config.evaluation.objectives = path;
        config.evaluation.interval = std::time::Duration::from_millis(50);
        // AIMS_TEST_BACKEND=postgres: the same test on a fresh PostgreSQL database.
        let database = aims_testkit::postgres::suite_database();
        if let Some(db) = &database {
            config.storage.backend = aims_collector::config::Backend::Postgres;
            config.storage.url = Some(db.url().to_owned());
            config.storage.lock_timeout = std::time::Duration::from_secs(2);
        }
        configure(&mut config);
        let listener = aims_testkit::net::listener();
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
        let start = minute();
        let clock = aims_collector::Clock::manual(start + 1_000);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(aims_collector::server::run_with_clock(
            config,
            clock.clone(),
            listener,
            async move {
                stopped.await.ok();
            },
        ));
        Self {
            dir,
            base,
            clock,
            start,
            stop,
            server,
            database,
        }
    }

    /// Like [`InProcess::shutdown`], but hands back the temporary folder so the test can open
    /// the store the collector left.
    pub async fn shutdown_keeping_dir(self) -> tempfile::TempDir {
        self.stop.send(()).expect("the collector is still running");
        self.server
            .await
            .expect("the collector task")
            .expect("the collector stops cleanly");
        self.dir
    }

    /// Asks it to stop and waits until it has, failing the test if it ended with an error.
    pub async fn shutdown(self) {
        self.stop.send(()).expect("the collector is still running");
        self.server
            .await
            .expect("the collector task")
            .expect("the collector stops cleanly");
    }
}
