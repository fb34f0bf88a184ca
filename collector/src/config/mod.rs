//! The collector's configuration: a TOML file read through the `config` crate, overridden by
//! environment variables `AIMS_COLLECTOR__SECTION__KEY`.
//!
//! Every section denies unknown keys, so a typo is an error naming the key instead of a
//! silently ignored setting. Every key has a default that works out of the box for the
//! quickstart: loopback listener, a data directory under `data/`, the example objectives, and
//! open ingest until tokens are configured.

pub mod notify;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// The agent's summary byte budget (`limits.max_summary_bytes`, 4 MiB by default): the
/// agent refuses to start when its schema and caps could produce a larger summary.
pub const SUMMARY_BUDGET_BYTES: usize = 4 << 20;

/// Room for the envelope around a summary (ids, names, timestamps).
pub const ENVELOPE_HEADROOM_BYTES: usize = 64 << 10;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listener.
    pub server: Server,
    /// Where and how long data is kept.
    pub storage: Storage,
    /// Objectives and the evaluation cadence.
    pub evaluation: Evaluation,
    /// Who may send and read.
    pub auth: Auth,
    /// Log format.
    pub logging: Logging,
    /// Alert delivery to Alertmanager and webhooks.
    pub notify: notify::Notify,
    /// How corrective actions are verified (Clause 10.2).
    pub effectiveness: Effectiveness,
    /// Signed checkpoints of the evidence log.
    pub evidence: Evidence,
}

/// When a nonconformity's corrective actions count as effective: the objective meets its
/// target for `evaluations` consecutive evaluations, or without interruption for `period`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Effectiveness {
    /// Consecutive passing evaluations.
    pub evaluations: u64,
    /// Or uninterrupted passing for this long.
    #[serde(with = "humantime_serde")]
    pub period: Option<Duration>,
}

impl Default for Effectiveness {
    fn default() -> Self {
        Self {
            evaluations: 100,
            period: None,
        }
    }
}

/// Signed checkpoints of the evidence log's Merkle tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Evidence {
    /// The log's name in checkpoints: unique to this deployment, so a checkpoint of one log
    /// is never mistaken for another's.
    pub origin: String,
    /// The Ed25519 signing key written by `aims-collector evidence keygen`. Without it the
    /// collector signs no checkpoints.
    pub key_file: Option<PathBuf>,
    /// How often the collector signs a checkpoint of a grown log (also at start, at shutdown,
    /// and into every report and pack).
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
}

impl Default for Evidence {
    fn default() -> Self {
        Self {
            origin: "aims-monitor/evidence".to_owned(),
            key_file: None,
            checkpoint_interval: Duration::from_secs(600),
        }
    }
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to bind; loopback by default so nothing is exposed by accident.
    pub listen: SocketAddr,
    /// Largest accepted request body, as sent (compressed or not); at least the agent's summary
    /// budget plus the envelope, since a summary of random category values barely compresses.
    pub max_body_bytes: usize,
    /// Largest accepted body once decompressed: bounds gzip bombs. At least the agent's summary
    /// budget ([`SUMMARY_BUDGET_BYTES`]) plus the envelope, so any summary the agent may send
    /// is accepted by construction.
    pub max_decompressed_bytes: usize,
    /// Summaries waiting to be committed; beyond it ingest answers 429.
    pub ingest_queue: usize,
    /// Most summaries committed in one SQLite transaction (group commit).
    pub ingest_batch: usize,
    /// TLS certificate chain (PEM); with `tls_key`, the listener speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9470)),
            max_body_bytes: 8 << 20,
            max_decompressed_bytes: 8 << 20,
            ingest_queue: 4096,
            ingest_batch: 256,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Storage settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Directory holding `collector.db`.
    pub data_dir: PathBuf,
    /// Minute summaries older than this are merged into hourly ones.
    #[serde(with = "humantime_serde")]
    pub rollup_after: Duration,
    /// Summaries older than this are deleted (the evidence log is never deleted).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often roll-up and expiry run.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
    /// SQLite `synchronous` mode: `full` makes every acknowledged summary survive a power
    /// loss; `normal` survives process crashes only, and is faster.
    pub synchronous: Synchronous,
    /// Which database: `sqlite` (embedded, one file in `data_dir`; the default) or `postgres`
    /// (shared by several collector replicas).
    pub backend: Backend,
    /// PostgreSQL connection URL (`postgres://user@host:port/db`), for `backend = "postgres"`.
    /// Keep the password out of it with `password_file`.
    pub url: Option<String>,
    /// A file whose content (trailing newline removed) is the PostgreSQL password, e.g. a
    /// mounted Kubernetes Secret.
    pub password_file: Option<PathBuf>,
    /// Connections in the PostgreSQL pool.
    pub pool_size: u32,
    /// PostgreSQL: how long a stalled leader keeps the leader lock (its session's
    /// `idle_session_timeout`); a takeover happens within 2 x `evaluation.interval` plus this.
    #[serde(with = "humantime_serde")]
    pub lock_timeout: Duration,
    /// This replica's name in leadership records (default: `$HOSTNAME`, else `collector`).
    pub replica: Option<String>,
}

/// Where the collector keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// One embedded SQLite file.
    #[default]
    Sqlite,
    /// A PostgreSQL database, which several replicas may share.
    Postgres,
}

/// SQLite durability mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// fsync at every commit.
    Full,
    /// fsync at checkpoints (WAL): survives a crashed process, not a lost machine.
    Normal,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data/collector"),
            rollup_after: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(90 * 24 * 3600),
            maintenance_interval: Duration::from_secs(600),
            synchronous: Synchronous::Full,
            backend: Backend::Sqlite,
            url: None,
            password_file: None,
            pool_size: 8,
            lock_timeout: Duration::from_secs(10),
            replica: None,
        }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Evaluation {
    /// The objectives file.
    pub objectives: PathBuf,
    /// How often every objective is evaluated.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A model without summaries for longer than this is in `no_data`.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// How long a resolved objective reads `resolved` before `ok` (Prometheus keeps 15 m).
    #[serde(with = "humantime_serde")]
    pub resolved_hold: Duration,
    /// Window of the per-model drift, fairness and performance gauges on `/metrics`.
    #[serde(with = "humantime_serde")]
    pub metrics_window: Duration,
}

impl Default for Evaluation {
    fn default() -> Self {
        Self {
            objectives: PathBuf::from("config/examples/objectives.yaml"),
            interval: Duration::from_secs(30),
            stale_after: Duration::from_secs(600),
            resolved_hold: Duration::from_secs(900),
            metrics_window: Duration::from_secs(3600),
        }
    }
}

/// Bearer tokens. Only SHA-256 hashes of tokens are configured, so the file is not a secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Agents allowed to send summaries. When empty, ingest is open (the quickstart).
    pub agents: Vec<AgentToken>,
    /// Hashes of tokens allowed to read. When empty, reading is open.
    pub read_token_sha256: Vec<String>,
    /// Hashes of tokens allowed to scrape `GET /metrics` (Prometheus's `authorization` block
    /// sends one). When empty, `/metrics` is open, as Prometheus expects by default.
    pub metrics_token_sha256: Vec<String>,
    /// Hashes of tokens allowed to act on nonconformities (acknowledge, cause, actions,
    /// close). When empty, nobody may: these requests write evidence, so they are never open.
    pub corrective_token_sha256: Vec<String>,
}

/// One agent's credentials and scope.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentToken {
    /// The agent name its summaries must carry.
    pub name: String,
    /// Lower-case hex SHA-256 of its bearer token.
    pub token_sha256: String,
    /// Models it may send for; `*` for any.
    pub models: Vec<String>,
}

/// Log settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file or an override does not parse, or names an unknown key.
    #[error("configuration {path}: {source}")]
    Load {
        /// The file.
        path: String,
        /// Why.
        source: config::ConfigError,
    },
    /// A value is out of range.
    #[error("configuration: {key}: {message}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// Why.
        message: String,
    },
}

impl Config {
    /// Loads `path` (optional when `None`: defaults plus environment) and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut cfg: Config =
            aims_runtime::config::load(path, "AIMS_COLLECTOR").map_err(|e| ConfigError::Load {
                path: e.path,
                source: *e.source,
            })?;
        cfg.resolve_paths(path);
        cfg.check()?;
        Ok(cfg)
    }

    /// Relative paths mean paths next to the configuration file, whatever the working folder.
    fn resolve_paths(&mut self, file: Option<&Path>) {
        use aims_runtime::config::{resolve, resolve_opt};
        resolve(file, &mut self.storage.data_dir);
        resolve(file, &mut self.evaluation.objectives);
        resolve_opt(file, &mut self.server.tls_cert);
        resolve_opt(file, &mut self.storage.password_file);
        resolve_opt(file, &mut self.server.tls_key);
        resolve_opt(file, &mut self.evidence.key_file);
        for r in &mut self.notify.receivers {
            resolve_opt(file, &mut r.token_file);
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.evaluation.interval.is_zero() {
            return invalid("evaluation.interval", "must be longer than zero");
        }
        if self.storage.maintenance_interval.is_zero() {
            return invalid("storage.maintenance_interval", "must be longer than zero");
        }
        match (self.storage.backend, &self.storage.url) {
            (Backend::Postgres, None) => {
                return invalid(
                    "storage.url",
                    "backend \"postgres\" needs a postgres:// URL",
                )
            }
            (Backend::Postgres, Some(url))
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
            {
                return invalid(
                    "storage.url",
                    "must start with postgres:// or postgresql://",
                )
            }
            (Backend::Sqlite, Some(_)) => {
                return invalid("storage.url", "is for backend = \"postgres\" only")
            }
            _ => {}
        }
        if self.storage.lock_timeout < Duration::from_millis(100) {
            return invalid("storage.lock_timeout", "must be at least 100ms");
        }
        if self.storage.pool_size == 0 {
            return invalid("storage.pool_size", "must be at least 1");
        }
        if self.evidence.checkpoint_interval.is_zero() {
            return invalid("evidence.checkpoint_interval", "must be longer than zero");
        }
        if self.server.ingest_queue == 0 || self.server.ingest_batch == 0 {
            return invalid("server.ingest_queue", "queue and batch must be positive");
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return invalid("server.tls_cert", "tls_cert and tls_key go together");
        }
        for a in &self.auth.agents {
            if !is_sha256_hex(&a.token_sha256) {
                return invalid(
                    "auth.agents.token_sha256",
                    "must be 64 lower-case hex digits",
                );
            }
        }
        if !self.auth.read_token_sha256.iter().all(|h| is_sha256_hex(h)) {
            return invalid("auth.read_token_sha256", "must be 64 lower-case hex digits");
        }
        if !self
            .auth
            .metrics_token_sha256
            .iter()
            .all(|h| is_sha256_hex(h))
        {
            return invalid(
                "auth.metrics_token_sha256",
                "must be 64 lower-case hex digits",
            );
        }
        let needed = SUMMARY_BUDGET_BYTES + ENVELOPE_HEADROOM_BYTES;
        if self.server.max_body_bytes < needed {
            return invalid(
                "server.max_body_bytes",
                &format!(
                    "must be at least {needed}: the agent's summary budget ({SUMMARY_BUDGET_BYTES}) \
                     plus room for the envelope (a summary of random category values barely compresses)"
                ),
            );
        }
        if self.server.max_decompressed_bytes < needed {
            return invalid(
                "server.max_decompressed_bytes",
                &format!(
                    "must be at least {needed}: the agent's summary budget ({SUMMARY_BUDGET_BYTES}) \
                     plus room for the envelope, or a summary the agent may send is refused"
                ),
            );
        }
        self.notify
            .check()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.storage.data_dir.join("collector.db")
    }

    /// This replica's name: `storage.replica`, else `$HOSTNAME` (a Kubernetes pod's name),
    /// else `collector`.
    pub fn replica(&self) -> String {
        self.storage
            .replica
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "collector".to_owned())
    }

    /// The database for messages: the SQLite file, or the PostgreSQL URL without its password.
    pub fn database_name(&self) -> String {
        match (self.storage.backend, &self.storage.url) {
            (Backend::Postgres, Some(url)) => redact_password(url),
            _ => self.database_path().display().to_string(),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(split) => split,
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_without_a_file() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.server.listen.port(), 9470);
        assert!(c.auth.agents.is_empty());
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/collector.toml");
        let c = Config::load(Some(&path)).unwrap();
        let d = Config::default();
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.storage.retention, d.storage.retention);
        assert_eq!(c.evaluation.interval, d.evaluation.interval);
        assert!(
            c.evaluation.objectives.ends_with(&d.evaluation.objectives),
            "relative to the file's folder, the same objectives: {}",
            c.evaluation.objectives.display()
        );
        assert_eq!(
            c.evaluation.objectives,
            path.parent().unwrap().join("examples/objectives.yaml")
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n").unwrap();
        let err = Config::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("listn"), "{err}");
        std::fs::write(
            &path,
            "[evaluation]\ninterval = \"5s\"\n[storage]\nretention = \"2d\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.evaluation.interval, Duration::from_secs(5));
        assert_eq!(c.storage.retention, Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn body_limits_below_the_summary_budget_and_bad_metrics_hashes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (body, key) in [
            (
                "[server]\nmax_decompressed_bytes = 4194304\n",
                "server.max_decompressed_bytes",
            ),
            (
                "[server]\nmax_body_bytes = 1048576\n",
                "server.max_body_bytes",
            ),
            (
                "[auth]\nmetrics_token_sha256 = [\"abc\"]\n",
                "auth.metrics_token_sha256",
            ),
        ] {
            std::fs::write(&path, body).unwrap();
            let err = Config::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
        let d = Config::default();
        assert!(d.server.max_decompressed_bytes >= SUMMARY_BUDGET_BYTES + ENVELOPE_HEADROOM_BYTES);
        assert!(d.server.max_body_bytes >= SUMMARY_BUDGET_BYTES + ENVELOPE_HEADROOM_BYTES);
        assert!(d.auth.metrics_token_sha256.is_empty(), "off by default");
    }

    #[test]
    fn the_postgres_backend_needs_a_postgres_url_and_never_shows_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let load = |body: &str| {
            std::fs::write(&path, body).unwrap();
            Config::load(Some(&path))
        };
        let err = load("[storage]\nbackend = \"postgres\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.url"), "{err}");
        let err = load("[storage]\nbackend = \"postgres\"\nurl = \"mysql://h/db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.url"), "{err}");
        let err = load("[storage]\nurl = \"postgres://h/db\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("backend"), "{err}");
        let err = load("[storage]\nbackend = \"postgre\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgre"), "{err}");
        let c = load(
            "[storage]\nbackend = \"postgres\"\nurl = \"postgres://aims:s3cret@db:5432/aims\"\n\
             password_file = \"pw\"\npool_size = 3\n",
        )
        .unwrap();
        assert_eq!(c.storage.backend, Backend::Postgres);
        assert_eq!(c.storage.pool_size, 3);
        assert_eq!(c.storage.password_file, Some(dir.path().join("pw")));
        assert_eq!(c.database_name(), "postgres://aims:***@db:5432/aims");
        assert_eq!(Config::load(None).unwrap().storage.backend, Backend::Sqlite);
    }
}
