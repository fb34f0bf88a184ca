//! Durable state: reference profiles, summaries and their ids, the evidence log and the
//! objectives' lifecycle, in one SQLite file (WAL; the default) or in a PostgreSQL database
//! that several collector replicas share.
//!
//! One set of SQL serves both backends: `$n` placeholders (SQLite reads them too), `ON
//! CONFLICT` upserts, and a `rowid` column that PostgreSQL's schema declares and SQLite has
//! implicitly. Each method's body is written once and compiled for each backend by
//! [`on_db!`]. Each backend has its own migrations (`migrations/` and `migrations_postgres/`).
//!
//! SQLite: all writes go through a single-connection pool, so SQLite never has to arbitrate
//! between writers (no `SQLITE_BUSY` on lock upgrades) and group commit stays simple; reads use
//! their own pool and see committed data through WAL snapshots. PostgreSQL: one pool of
//! `storage.pool_size` connections, and the database arbitrates.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use aims_core::evidence::{Kind, Sealed, GENESIS};
use aims_core::nonconformity::Nonconformity;
use aims_core::wire::SummaryEnvelope;
use aims_core::{ReferenceProfile, WindowSummary};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use thiserror::Error;

use crate::config::{Backend, Storage, Synchronous};

/// Advisory lock key (PostgreSQL) serialising evidence appends across replicas ("AIMSEVID").
pub const EVIDENCE_LOCK: i64 = 0x4149_4d53_4556_4944;

pub use checkpoints::StoredCheckpoint;
pub use snapshots::StoredSnapshot;

/// Summaries per multi-row insert: 500 rows of 12 columns stay well under the bound
/// parameters of one statement (SQLite 32,766, PostgreSQL 65,535).
const INSERT_CHUNK: usize = 500;

/// Length of a roll-up bucket.
pub const HOUR_MS: i64 = 3_600_000;

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document does not parse (the file was edited or corrupted).
    #[error("stored {what} does not parse: {source}")]
    Corrupt {
        /// Which document.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A stored gzip body does not decompress.
    #[error("stored {what} does not decompress: {source}")]
    CorruptGzip {
        /// Which document.
        what: String,
        /// Why.
        source: aims_runtime::gzip::DecodeError,
    },
    /// The data directory cannot be created.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// Another writer appended evidence since the caller read the chain head.
    #[error("the evidence chain head moved to {}", head.0)]
    HeadMoved {
        /// The head now stored.
        head: (u64, String),
    },
    /// The append was fenced: a newer leadership term has begun.
    #[error("fenced: leadership term {held} ended; term {current} holds")]
    Fenced {
        /// The term the writer held.
        held: i64,
        /// The term in the database.
        current: i64,
    },
    /// The storage settings do not name a usable database.
    #[error("storage.{key}: {message}")]
    Settings {
        /// The key at fault.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// A summary as kept, with the columns the aggregates need.
#[derive(Debug, Clone)]
pub struct StoredSummary {
    /// Summary id (a roll-up's own id for a rolled-up row).
    pub id: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: String,
    /// Profile it was binned with.
    pub profile_hash: String,
    /// Window start, ms.
    pub window_start_ms: i64,
    /// Window length, ms.
    pub window_ms: u64,
    /// The statistics.
    pub summary: WindowSummary,
}

/// A summary as it is written: the JSON text of the summary, or the whole envelope as the gzip
/// body it arrived in (a third of the bytes, and nothing to scan or copy at ingest). Both read
/// back as the same [`WindowSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryBody {
    /// The summary's JSON text (column `body`).
    Json(String),
    /// The envelope, gzip-compressed as received (column `envelope_gzip`; `body` is empty).
    Gzip(Vec<u8>),
}

impl SummaryBody {
    /// The `body` column's value.
    fn text(&self) -> &str {
        match self {
            SummaryBody::Json(text) => text,
            SummaryBody::Gzip(_) => "",
        }
    }

    /// The `envelope_gzip` column's value.
    fn gzip(&self) -> Option<&[u8]> {
        match self {
            SummaryBody::Json(_) => None,
            SummaryBody::Gzip(gz) => Some(gz),
        }
    }
}

/// The most a stored gzip body may decompress to: far above any summary the ingest limit
/// admits, so only a corrupted row can reach it, and still bounded.
const STORED_GZIP_LIMIT: usize = 256 << 20;

/// The summary a row keeps: `body`'s text, or the summary of the envelope in `envelope_gzip`
/// when that is set.
fn stored_body(id: &str, body: &str, gzip: Option<&[u8]>) -> Result<WindowSummary, StoreError> {
    let what = || format!("summary {id}");
    let corrupt = |source| StoreError::Corrupt {
        what: what(),
        source,
    };
    match gzip {
        None => serde_json::from_str(body).map_err(corrupt),
        Some(gz) => {
            let json = aims_runtime::gzip::decode(Some("gzip"), gz, STORED_GZIP_LIMIT).map_err(
                |source| StoreError::CorruptGzip {
                    what: what(),
                    source,
                },
            )?;
            aims_core::wire::decode_envelope(&json)
                .map(|e| e.summary)
                .map_err(corrupt)
        }
    }
}

/// The persisted row of one objective's lifecycle.
#[derive(Debug, Clone)]
pub struct ObjectiveRow {
    /// Objective id.
    pub objective: String,
    /// Objective version (content hash); `None` keeps the stored one, so an evaluation
    /// committed after a concurrent reload never reverts the version the reload recorded.
    pub version: Option<String>,
    /// Lifecycle as JSON.
    pub lifecycle: String,
    /// Last value as JSON (a number or `{"undefined": reason}`).
    pub last_value: Option<String>,
    /// Last verdict.
    pub last_verdict: Option<String>,
    /// Samples behind the last value.
    pub samples: Option<i64>,
    /// When last evaluated, ms.
    pub evaluated_ms: Option<i64>,
}

/// A sealed evidence record with its index columns.
#[derive(Debug, Clone)]
pub struct EvidenceRow {
    /// The chained record.
    pub sealed: Sealed,
    /// When recorded, ms.
    pub at_ms: i64,
    /// What it records.
    pub kind: String,
    /// The objective it concerns, if any.
    pub objective: Option<String>,
}

/// One agent's summaries for one model over a period (report coverage).
#[derive(Debug, Clone)]
pub struct AgentSpan {
    /// Model name.
    pub model: String,
    /// Agent name (`*` for hourly roll-ups).
    pub agent: String,
    /// Summaries stored.
    pub summaries: u64,
    /// First window start, ms.
    pub first_ms: i64,
    /// Last window end, ms.
    pub last_ms: i64,
}

/// The store, on either backend.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's writer or reader pool. The body is
/// compiled once per backend, so one piece of SQL serves both.
macro_rules! on_db {
    ($store:expr, writer, |$pool:ident| $body:expr) => {
        match &$store.db {
            Db::Sqlite { writer: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
    ($store:expr, reader, |$pool:ident| $body:expr) => {
        match &$store.db {
            Db::Sqlite { reader: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// Within a write transaction `$tx`: with a leadership term, refuses the write
/// ([`StoreError::Fenced`]) unless that term still holds. `FOR SHARE` (PostgreSQL) holds off a
/// new term until the transaction commits, so a leader that was replaced (paused, then resumed)
/// cannot write after its successor took over.
macro_rules! fence {
    ($tx:ident, $term:expr, $postgres:expr) => {
        if let Some(term) = $term {
            let sql = if $postgres {
                "SELECT term FROM leadership WHERE id = 1 FOR SHARE"
            } else {
                "SELECT term FROM leadership WHERE id = 1"
            };
            let current: i64 = sqlx::query_scalar(sql).fetch_one(&mut *$tx).await?;
            if current != term {
                return Err(StoreError::Fenced {
                    held: term,
                    current,
                });
            }
        }
    };
}

// After `on_db!`: macro_rules are in scope only below their definition.
mod checkpoints;
mod migrations;
mod snapshots;
mod summaries_postgres;

/// A stored summary row as a [`StoredSummary`] (a macro, so one text serves both row types).
macro_rules! stored_summary {
    ($r:expr) => {{
        let r = $r;
        stored_body(
            r.get::<&str, _>("id"),
            r.get::<&str, _>("body"),
            r.get::<Option<&[u8]>, _>("envelope_gzip"),
        )
        .map(|summary| StoredSummary {
            id: r.get("id"),
            model: r.get("model"),
            model_version: r.get("model_version"),
            profile_hash: r.get("profile_hash"),
            window_start_ms: r.get("window_start_ms"),
            window_ms: r.get::<i64, _>("window_ms") as u64,
            summary,
        })
    }};
}

impl Store {
    /// Opens the database the storage settings name: the SQLite file at `sqlite_path`, or the
    /// PostgreSQL database at `storage.url` (with the password from `storage.password_file`).
    pub async fn connect(storage: &Storage, sqlite_path: &Path) -> Result<Self, StoreError> {
        match storage.backend {
            Backend::Sqlite => Self::open(sqlite_path, storage.synchronous).await,
            Backend::Postgres => {
                Self::open_postgres(postgres_options(storage)?, storage.pool_size).await
            }
        }
    }

    /// Opens (creating) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        migrations::sqlite().run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            db: Db::Sqlite { writer, reader },
        })
    }

    /// Connects to PostgreSQL with a pool of `pool_size` and applies migrations (sqlx holds
    /// an advisory lock while migrating, so replicas starting together migrate once).
    pub async fn open_postgres(
        options: PgConnectOptions,
        pool_size: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        migrations::postgres().run(&pool).await?;
        Ok(Self {
            db: Db::Postgres(pool),
        })
    }

    /// Which backend this store is on.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL database's name (`None` on SQLite).
    pub fn database_name(&self) -> Option<String> {
        match &self.db {
            Db::Sqlite { .. } => None,
            Db::Postgres(pool) => pool.connect_options().get_database().map(str::to_owned),
        }
    }

    /// Stores a profile; returns whether it was new.
    pub async fn put_profile(
        &self,
        profile: &ReferenceProfile,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(profile).map_err(|source| StoreError::Corrupt {
            what: "profile".into(),
            source,
        })?;
        let done = on_db!(self, writer, |pool| sqlx::query(
            "INSERT INTO profiles (hash, model, model_version, body, created_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&profile.hash)
        .bind(&profile.model)
        .bind(&profile.model_version)
        .bind(&body)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Every profile, oldest first (so the last one per model is its latest).
    pub async fn profiles(&self) -> Result<Vec<ReferenceProfile>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query("SELECT hash, body FROM profiles ORDER BY created_ms, rowid")
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    serde_json::from_str(r.get::<&str, _>("body")).map_err(|source| {
                        StoreError::Corrupt {
                            what: format!("profile {}", r.get::<&str, _>("hash")),
                            source,
                        }
                    })
                })
                .collect()
        })
    }

    /// Commits a batch of summaries in one transaction. Returns, per summary, whether it was
    /// new (false: its id was seen before, by this replica or another one sharing the
    /// database, and nothing was written).
    pub async fn insert_summaries(
        &self,
        batch: &[&SummaryEnvelope],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let bodies = batch
            .iter()
            .map(|e| {
                serde_json::to_string(&e.summary)
                    .map(SummaryBody::Json)
                    .map_err(|source| StoreError::Corrupt {
                        what: "summary".into(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch: Vec<(&SummaryEnvelope, &SummaryBody)> =
            batch.iter().copied().zip(&bodies).collect();
        self.insert_summary_bodies(&batch, now_ms).await
    }

    /// [`Store::insert_summaries`] with each summary's body given as ingest received it: the
    /// gzip envelope, or the summary's text within an uncompressed one
    /// (`aims_core::wire::summary_text`), stored as it came rather than serialising the
    /// decoded summary again. Each body must decode to its envelope's summary.
    pub async fn insert_summary_bodies(
        &self,
        batch: &[(&SummaryEnvelope, &SummaryBody)],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        // PostgreSQL: one statement, one round trip, for the whole batch.
        let pool = match &self.db {
            Db::Postgres(pool) => return summaries_postgres::insert(pool, batch, now_ms).await,
            Db::Sqlite { writer, .. } => writer,
        };
        // SQLite: two statements per chunk of the batch, not two per summary: the ids are
        // claimed in one multi-row insert (those already taken come back missing from
        // RETURNING), then the new summaries go in in one more.
        {
            let mut tx = pool.begin().await?;
            let mut fresh = vec![false; batch.len()];
            for (n, chunk) in batch.chunks(INSERT_CHUNK).enumerate() {
                let base = n * INSERT_CHUNK;
                let mut ids = sqlx::QueryBuilder::new("INSERT INTO summary_ids (id, received_ms) ");
                ids.push_values(chunk, |mut row, (e, _)| {
                    row.push_bind(e.id.as_str()).push_bind(now_ms);
                });
                ids.push(" ON CONFLICT DO NOTHING RETURNING id");
                let claimed: Vec<String> = ids.build_query_scalar().fetch_all(&mut *tx).await?;
                let mut claimed: std::collections::HashSet<String> = claimed.into_iter().collect();
                // The first of an id sent twice in one batch is the new one.
                let new: Vec<usize> = (0..chunk.len())
                    .filter(|&i| claimed.remove(&chunk[i].0.id))
                    .collect();
                if new.is_empty() {
                    continue;
                }
                let mut rows = sqlx::QueryBuilder::new(
                    "INSERT INTO summaries (id, agent, model, model_version, profile_hash, \
                     window_start_ms, window_ms, seq, resolution, received_ms, body, \
                     envelope_gzip) ",
                );
                rows.push_values(&new, |mut row, &i| {
                    let (e, body) = chunk[i];
                    row.push_bind(e.id.as_str())
                        .push_bind(e.agent.as_str())
                        .push_bind(e.model.as_str())
                        .push_bind(e.model_version.as_str())
                        .push_bind(e.summary.profile_hash.as_str())
                        .push_bind(e.window_start_ms)
                        .push_bind(e.window_ms as i64)
                        .push_bind(e.seq as i64)
                        .push_bind("raw")
                        .push_bind(now_ms)
                        .push_bind(body.text())
                        .push_bind(body.gzip());
                });
                rows.build().execute(&mut *tx).await?;
                for i in new {
                    fresh[base + i] = true;
                }
            }
            tx.commit().await?;
            Ok(fresh)
        }
    }

    /// Summaries whose window ends after `since_ms`, for rebuilding the aggregates, a page at
    /// a time (at most `limit` rows with a rowid above `after`), so a long horizon never has
    /// to fit in memory as rows. Returns the page and the cursor for the next one.
    pub async fn summaries_since(
        &self,
        since_ms: i64,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<StoredSummary>, Option<i64>), StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query(
                "SELECT rowid, id, model, model_version, profile_hash, window_start_ms, window_ms, body, \
                 envelope_gzip FROM summaries WHERE window_start_ms + window_ms > $1 AND rowid > $2 ORDER BY rowid LIMIT $3",
            )
            .bind(since_ms)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let next = (rows.len() as u32 == limit)
                .then(|| rows.last().map(|r| r.get::<i64, _>("rowid")))
                .flatten();
            let page = rows
                .iter()
                .map(|r| stored_summary!(r))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((page, next))
        })
    }

    /// Every summary whose window ends after `since_ms` (tests and small stores).
    #[cfg(test)]
    pub async fn all_summaries_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<StoredSummary>, StoreError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let (page, next) = self.summaries_since(since_ms, after, 7).await?;
            out.extend(page);
            match next {
                Some(n) => after = n,
                None => return Ok(out),
            }
        }
    }

    /// Whether the database answers: `SELECT 1` on a reader connection, constant time whatever
    /// the size of the store (`GET /readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self, reader, |pool| {
            sqlx::query("SELECT 1").fetch_one(pool).await?;
            Ok(())
        })
    }

    /// Number of summaries accepted (ids remembered), for tests and the status.
    pub async fn summary_count(&self) -> Result<i64, StoreError> {
        on_db!(self, reader, |pool| Ok(sqlx::query(
            "SELECT count(*) FROM summary_ids"
        )
        .fetch_one(pool)
        .await?
        .get::<i64, _>(0)))
    }

    /// When each model last delivered a summary (collector clock, ms).
    pub async fn last_received(&self) -> Result<HashMap<String, i64>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query(
                "SELECT model, max(received_ms) AS at FROM summaries WHERE resolution = 'raw' GROUP BY model",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<String, _>("model"), r.get::<i64, _>("at")))
                .collect())
        })
    }

    /// Per model and agent, the summaries whose window lies within [from, to], for the
    /// report's coverage section.
    pub async fn agents_between(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AgentSpan>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query(
                "SELECT model, agent, count(*) AS n, min(window_start_ms) AS first, \
                 max(window_start_ms + window_ms) AS last FROM summaries \
                 WHERE window_start_ms >= $1 AND window_start_ms + window_ms <= $2 \
                 GROUP BY model, agent ORDER BY model, agent",
            )
            .bind(from_ms)
            .bind(to_ms.saturating_add(1))
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| AgentSpan {
                    model: r.get("model"),
                    agent: r.get("agent"),
                    summaries: r.get::<i64, _>("n") as u64,
                    first_ms: r.get("first"),
                    last_ms: r.get("last"),
                })
                .collect())
        })
    }

    /// Merges raw summaries whose window ended before `cutoff_ms` into hourly roll-ups (one per
    /// model, model version, profile and hour), stamped as received at `now_ms`.
    ///
    /// A raw summary that does not merge with its hour stays raw. An hour whose stored roll-up
    /// does not merge with the new summaries is left exactly as it was, with its raw summaries
    /// beside it, and is named in [`RollUp::conflicts`]: nothing is dropped or overwritten.
    pub async fn roll_up(&self, cutoff_ms: i64, now_ms: i64) -> Result<RollUp, StoreError> {
        on_db!(self, writer, |pool| {
            let mut tx = pool.begin().await?;
            let rows = sqlx::query(
                "SELECT id, model, model_version, profile_hash, window_start_ms, window_ms, body, envelope_gzip \
                 FROM summaries \
                 WHERE resolution = 'raw' AND window_start_ms + window_ms <= $1 AND window_ms <= $2",
            )
            .bind(cutoff_ms)
            .bind(HOUR_MS)
            .fetch_all(&mut *tx)
            .await?;
            type Group = (WindowSummary, Vec<String>);
            let mut groups: BTreeMap<(String, String, String, i64), Group> = BTreeMap::new();
            for r in &rows {
                let s = stored_summary!(r)?;
                let hour = s.window_start_ms.div_euclid(HOUR_MS) * HOUR_MS;
                let key = (s.model, s.model_version, s.profile_hash, hour);
                let id = r.get::<String, _>("id");
                match groups.get_mut(&key) {
                    Some((acc, ids)) => {
                        if acc.merge(&s.summary).is_ok() {
                            ids.push(id);
                        }
                    }
                    None => {
                        groups.insert(key, (s.summary, vec![id]));
                    }
                }
            }
            let mut done = RollUp::default();
            for ((model, version, profile, hour), (mut acc, ids)) in groups {
                let id = format!("hour:{model}:{version}:{profile}:{hour}");
                if let Some(existing) = sqlx::query("SELECT body FROM summaries WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?
                {
                    let prior: WindowSummary = serde_json::from_str(
                        existing.get::<&str, _>("body"),
                    )
                    .map_err(|source| StoreError::Corrupt {
                        what: format!("summary {id}"),
                        source,
                    })?;
                    if let Err(e) = acc.merge(&prior) {
                        done.conflicts.push(format!("{id}: {e}"));
                        continue;
                    }
                }
                let body = serde_json::to_string(&acc).map_err(|source| StoreError::Corrupt {
                    what: "roll-up".into(),
                    source,
                })?;
                sqlx::query(
                    "INSERT INTO summaries (id, agent, model, model_version, profile_hash, window_start_ms, \
                     window_ms, seq, resolution, received_ms, body) \
                     VALUES ($1, '*', $2, $3, $4, $5, $6, 0, 'hour', $7, $8) \
                     ON CONFLICT (id) DO UPDATE SET received_ms = excluded.received_ms, body = excluded.body",
                )
                .bind(&id)
                .bind(&model)
                .bind(&version)
                .bind(&profile)
                .bind(hour)
                .bind(HOUR_MS)
                .bind(now_ms)
                .bind(body)
                .execute(&mut *tx)
                .await?;
                for raw in &ids {
                    sqlx::query("DELETE FROM summaries WHERE id = $1")
                        .bind(raw)
                        .execute(&mut *tx)
                        .await?;
                }
                done.merged += ids.len();
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    /// Deletes summaries whose window ended before `cutoff_ms`, and the ids received before it.
    pub async fn expire(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        on_db!(self, writer, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM summaries WHERE window_start_ms + window_ms < $1")
                .bind(cutoff_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM summary_ids WHERE received_ms < $1")
                .bind(cutoff_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }

    /// The last evidence record's sequence and hash, if any.
    pub async fn evidence_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        on_db!(self, writer, |pool| {
            let row = sqlx::query("SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1")
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|r| (r.get::<i64, _>("seq") as u64, r.get::<String, _>("hash"))))
        })
    }

    /// Appends sealed records (already chained by the caller on `expected_head`) and
    /// objective rows in one transaction, so the log and the states never disagree.
    ///
    /// The append is conditional on the chain head the caller read: inside the transaction
    /// (serialised across replicas by a transaction-scoped advisory lock on PostgreSQL; by the
    /// single writer connection on SQLite) the stored head is read again, and if another
    /// writer moved it, nothing is written and [`StoreError::HeadMoved`] carries the new head
    /// for the caller to re-seal on. With `term`, the append is also fenced: it is refused
    /// with [`StoreError::Fenced`] unless the database's leadership term is still `term`, so a
    /// leader that was paused and replaced appends nothing when it resumes.
    pub async fn append(
        &self,
        expected_head: &(u64, String),
        records: &[EvidenceRow],
        states: &[ObjectiveRow],
        term: Option<i64>,
    ) -> Result<(), StoreError> {
        let postgres = matches!(self.db, Db::Postgres(_));
        on_db!(self, writer, |pool| {
            let mut tx = pool.begin().await?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(EVIDENCE_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            fence!(tx, term, postgres);
            let head = sqlx::query("SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| (r.get::<i64, _>("seq") as u64, r.get::<String, _>("hash")))
                .unwrap_or_else(|| (0, GENESIS.to_owned()));
            if &head != expected_head {
                return Err(StoreError::HeadMoved { head });
            }
            for r in records {
                sqlx::query(
                    "INSERT INTO evidence (seq, at_ms, kind, objective, canonical, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(r.sealed.seq as i64)
                .bind(r.at_ms)
                .bind(&r.kind)
                .bind(&r.objective)
                .bind(&r.sealed.canonical)
                .bind(&r.sealed.prev_hash)
                .bind(&r.sealed.hash)
                .execute(&mut *tx)
                .await?;
            }
            for s in states {
                sqlx::query(
                    "INSERT INTO objective_state (objective, version, lifecycle, last_value, last_verdict, \
                     samples, evaluated_ms) VALUES ($1, COALESCE($2, ''), $3, $4, $5, $6, $7) \
                     ON CONFLICT (objective) DO UPDATE SET version = COALESCE($2, objective_state.version), \
                     lifecycle = excluded.lifecycle, last_value = excluded.last_value, \
                     last_verdict = excluded.last_verdict, samples = excluded.samples, \
                     evaluated_ms = excluded.evaluated_ms",
                )
                .bind(&s.objective)
                .bind(&s.version)
                .bind(&s.lifecycle)
                .bind(&s.last_value)
                .bind(&s.last_verdict)
                .bind(s.samples)
                .bind(s.evaluated_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Starts a new leadership term for `holder` and returns it: every append fenced on an
    /// older term is refused from now on. The caller must hold the leader lock.
    pub async fn begin_term(&self, holder: &str, now_ms: i64) -> Result<i64, StoreError> {
        on_db!(self, writer, |pool| {
            Ok(sqlx::query_scalar(
            "UPDATE leadership SET term = term + 1, holder = $1, since_ms = $2 WHERE id = 1 RETURNING term",
        )
        .bind(holder)
        .bind(now_ms)
        .fetch_one(pool)
        .await?)
        })
    }

    /// Replaces the notifier's delivery state with `rows` (objective, JSON), in one
    /// transaction. With `term`, fenced as [`Store::append`] is: refused once a newer
    /// leadership term holds, so a leader that was replaced does not overwrite its successor's.
    pub async fn put_alerts(
        &self,
        rows: &[(String, String)],
        term: Option<i64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let postgres = matches!(self.db, Db::Postgres(_));
        on_db!(self, writer, |pool| {
            let mut tx = pool.begin().await?;
            fence!(tx, term, postgres);
            sqlx::query("DELETE FROM notifier_alerts")
                .execute(&mut *tx)
                .await?;
            for (objective, body) in rows {
                sqlx::query(
                    "INSERT INTO notifier_alerts (objective, body, updated_ms) VALUES ($1, $2, $3)",
                )
                .bind(objective)
                .bind(body)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The notifier's delivery state as stored, (objective, JSON) sorted by objective.
    pub async fn alerts(&self) -> Result<Vec<(String, String)>, StoreError> {
        on_db!(self, writer, |pool| {
            let rows =
                sqlx::query("SELECT objective, body FROM notifier_alerts ORDER BY objective")
                    .fetch_all(pool)
                    .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<String, _>("objective"), r.get::<String, _>("body")))
                .collect())
        })
    }

    /// The current leadership term and its holder.
    pub async fn leadership(&self) -> Result<(i64, String), StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query("SELECT term, holder FROM leadership WHERE id = 1")
                .fetch_one(pool)
                .await?;
            Ok((r.get("term"), r.get("holder")))
        })
    }

    /// Evidence records with `seq > after`, in order, at most `limit`; optionally only one
    /// objective's records of one kind within [from, to].
    pub async fn evidence_page(
        &self,
        after: u64,
        limit: u32,
        filter: Option<(&str, Kind, i64, i64)>,
    ) -> Result<Vec<EvidenceRow>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = match filter {
                None => {
                    sqlx::query("SELECT * FROM evidence WHERE seq > $1 ORDER BY seq LIMIT $2")
                        .bind(after as i64)
                        .bind(i64::from(limit))
                        .fetch_all(pool)
                        .await?
                }
                Some((objective, kind, from, to)) => sqlx::query(
                    "SELECT * FROM evidence WHERE objective = $1 AND kind = $2 AND at_ms >= $3 \
                         AND at_ms <= $4 AND seq > $5 ORDER BY seq LIMIT $6",
                )
                .bind(objective)
                .bind(kind.as_str())
                .bind(from)
                .bind(to)
                .bind(after as i64)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?,
            };
            Ok(rows
                .iter()
                .map(|r| EvidenceRow {
                    sealed: Sealed {
                        seq: r.get::<i64, _>("seq") as u64,
                        canonical: r.get("canonical"),
                        prev_hash: r.get("prev_hash"),
                        hash: r.get("hash"),
                    },
                    at_ms: r.get("at_ms"),
                    kind: r.get("kind"),
                    objective: r.get("objective"),
                })
                .collect())
        })
    }

    /// The canonical JSON of an objective's latest `limit` evaluation records, newest first:
    /// the status page's sparklines read only the tail of the log.
    pub async fn latest_evaluations(
        &self,
        objective: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query(
                "SELECT canonical FROM evidence WHERE objective = $1 AND kind = $2 ORDER BY seq DESC LIMIT $3",
            )
            .bind(objective)
            .bind(Kind::Evaluation.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(|r| r.get("canonical")).collect())
        })
    }

    /// Per agent sending for `model`: when its last raw summary arrived (collector clock, ms)
    /// and how many raw summaries it has sent; for the status page.
    pub async fn agents_of(&self, model: &str) -> Result<Vec<(String, i64, i64)>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query(
                "SELECT agent, max(received_ms) AS at, count(*) AS n FROM summaries \
                 WHERE model = $1 AND resolution = 'raw' GROUP BY agent ORDER BY agent",
            )
            .bind(model)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| (r.get("agent"), r.get("at"), r.get("n")))
                .collect())
        })
    }

    /// Every objective's persisted lifecycle.
    pub async fn objective_states(&self) -> Result<Vec<ObjectiveRow>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query("SELECT * FROM objective_state")
                .fetch_all(pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| ObjectiveRow {
                    objective: r.get("objective"),
                    version: r.get("version"),
                    lifecycle: r.get("lifecycle"),
                    last_value: r.get("last_value"),
                    last_verdict: r.get("last_verdict"),
                    samples: r.get("samples"),
                    evaluated_ms: r.get("evaluated_ms"),
                })
                .collect())
        })
    }

    /// Stores the current form of nonconformities, in one transaction. With `term`, fenced as
    /// [`Store::append`] is: refused with [`StoreError::Fenced`] once a newer leadership term
    /// holds, so a leader that was paused and replaced does not overwrite its successor's rows.
    pub async fn put_nonconformities(
        &self,
        ncs: &[Nonconformity],
        term: Option<i64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let bodies = ncs
            .iter()
            .map(|nc| {
                serde_json::to_string(nc).map_err(|source| StoreError::Corrupt {
                    what: format!("nonconformity {}", nc.id),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let postgres = matches!(self.db, Db::Postgres(_));
        on_db!(self, writer, |pool| {
            let mut tx = pool.begin().await?;
            fence!(tx, term, postgres);
            for (nc, body) in ncs.iter().zip(&bodies) {
                sqlx::query(
                    "INSERT INTO nonconformities (id, objective, status, body, updated_ms) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body, updated_ms = excluded.updated_ms",
                )
                .bind(nc.id as i64)
                .bind(&nc.objective)
                .bind(nc.status.as_str())
                .bind(body)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every nonconformity, by id.
    pub async fn nonconformities(&self) -> Result<Vec<Nonconformity>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query("SELECT id, body FROM nonconformities ORDER BY id")
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    let id: i64 = r.get("id");
                    serde_json::from_str(r.get::<&str, _>("body")).map_err(|source| {
                        StoreError::Corrupt {
                            what: format!("nonconformity {id}"),
                            source,
                        }
                    })
                })
                .collect()
        })
    }

    /// Replaces a stored summary's body (tests that corrupt or reshape a row).
    #[cfg(test)]
    pub(crate) async fn set_summary_body(&self, id: &str, body: &str) -> Result<(), StoreError> {
        on_db!(self, writer, |pool| {
            sqlx::query("UPDATE summaries SET body = $1, envelope_gzip = NULL WHERE id = $2")
                .bind(body)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// A stored summary's body (tests).
    #[cfg(test)]
    pub(crate) async fn summary_body(&self, id: &str) -> Result<SummaryBody, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query("SELECT body, envelope_gzip FROM summaries WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
            Ok(match r.get::<Option<Vec<u8>>, _>("envelope_gzip") {
                Some(gz) => SummaryBody::Gzip(gz),
                None => SummaryBody::Json(r.get("body")),
            })
        })
    }

    /// Closes the pools (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// The PostgreSQL connection the storage settings name: `storage.url`, with the password
/// from `storage.password_file` when set.
pub fn postgres_options(storage: &Storage) -> Result<PgConnectOptions, StoreError> {
    let url = storage.url.as_deref().ok_or_else(|| StoreError::Settings {
        key: "url",
        message: "backend \"postgres\" needs a postgres:// URL".into(),
    })?;
    let mut options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Settings {
        key: "url",
        message: e.to_string(),
    })?;
    if let Some(file) = &storage.password_file {
        let password = std::fs::read_to_string(file).map_err(|e| StoreError::Settings {
            key: "password_file",
            message: format!("{}: {e}", file.display()),
        })?;
        options = options.password(password.trim_end_matches(['\r', '\n']));
    }
    // A replica stalled inside a transaction (SIGSTOP, a long pause) must not hold its row
    // locks past the lock timeout: the server ends such a session, so the next leader's term
    // can begin, and the stalled append is rolled back.
    let ms = storage.lock_timeout.as_millis().max(1).to_string();
    Ok(options.options([("idle_in_transaction_session_timeout", ms.as_str())]))
}

/// What a roll-up did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RollUp {
    /// Raw summaries merged into hourly roll-ups (and deleted).
    pub merged: usize,
    /// Hours left untouched because their stored roll-up did not merge, with why.
    pub conflicts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{gzip_body, stores};
    use aims_testkit::fixtures::{one_feature as fixture, positive as event};

    #[tokio::test]
    async fn roll_up_is_lossless_and_ids_stay_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _database) in stores(dir.path()).await {
            eprintln!("backend {backend}");
            roll_up_case(&store).await;
            store.close().await;
        }
    }

    async fn roll_up_case(store: &Store) {
        let (schema, profile) = fixture();
        assert!(store.put_profile(&profile, 1).await.unwrap());
        assert!(!store.put_profile(&profile, 2).await.unwrap());
        let envelopes: Vec<SummaryEnvelope> = (0..150)
            .map(|minute| {
                let mut s = WindowSummary::new(&schema, &profile);
                s.record(&schema, &profile, &event(minute as f64));
                SummaryEnvelope::new("a", "m", "1", minute * 60_000, 60_000, 0, s)
            })
            .collect();
        let refs: Vec<&SummaryEnvelope> = envelopes.iter().collect();
        assert!(store
            .insert_summaries(&refs, 10)
            .await
            .unwrap()
            .iter()
            .all(|n| *n));
        let merged = |rows: Vec<StoredSummary>| {
            let mut acc = WindowSummary::new(&schema, &profile);
            for r in rows {
                acc.merge(&r.summary).unwrap();
            }
            acc
        };
        let before = merged(store.all_summaries_since(i64::MIN).await.unwrap());
        // Everything ending by 2 h is rolled into two hourly rows; the last 30 minutes stay.
        assert_eq!(store.roll_up(2 * HOUR_MS, 10).await.unwrap().merged, 120);
        let rows = store.all_summaries_since(i64::MIN).await.unwrap();
        assert_eq!(rows.len(), 2 + 30);
        assert_eq!(merged(rows), before);
        // A retry of a rolled-up summary is still a duplicate.
        assert_eq!(
            store.insert_summaries(&refs[..1], 20).await.unwrap(),
            vec![false]
        );
        assert_eq!(store.summary_count().await.unwrap(), 150);
        // Expiry drops whole windows that ended before the cutoff, and old ids.
        store.expire(HOUR_MS + 1).await.unwrap();
        assert_eq!(
            store.all_summaries_since(i64::MIN).await.unwrap().len(),
            1 + 30
        );
        assert_eq!(store.last_received().await.unwrap().get("m"), Some(&10));
    }

    #[tokio::test]
    async fn alert_state_is_replaced_whole_and_fenced_by_the_term() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _database) in stores(dir.path()).await {
            let term = store.begin_term("a", 1).await.unwrap();
            let rows = |ids: &[&str]| -> Vec<(String, String)> {
                ids.iter()
                    .map(|i| (i.to_string(), format!("{{\"o\":\"{i}\"}}")))
                    .collect()
            };
            store
                .put_alerts(&rows(&["x", "y"]), Some(term), 5)
                .await
                .unwrap();
            store
                .put_alerts(&rows(&["y", "z"]), Some(term), 6)
                .await
                .unwrap();
            assert_eq!(
                store.alerts().await.unwrap(),
                rows(&["y", "z"]),
                "{backend}"
            );
            let next = store.begin_term("b", 7).await.unwrap();
            let err = store
                .put_alerts(&rows(&["q"]), Some(term), 8)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Fenced { held, current } if held == term && current == next),
                "{backend}: {err}"
            );
            assert_eq!(
                store.alerts().await.unwrap(),
                rows(&["y", "z"]),
                "{backend}"
            );
            store.close().await;
        }
    }

    /// The multi-row insert: an id sent twice in one batch is new once, a chunk boundary
    /// (500 rows) changes nothing, and ids taken before are duplicates, on both backends.
    #[tokio::test]
    async fn summaries_are_inserted_once_by_id_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _database) in stores(dir.path()).await {
            let (schema, profile) = fixture();
            store.put_profile(&profile, 1).await.unwrap();
            let envelope = |minute: i64| {
                let mut s = WindowSummary::new(&schema, &profile);
                s.record(&schema, &profile, &event(minute as f64));
                SummaryEnvelope::new("a", "m", "1", minute * 60_000, 60_000, 0, s)
            };
            let a: Vec<SummaryEnvelope> = (0..3).map(envelope).collect();
            let batch = [&a[0], &a[1], &a[0], &a[2], &a[1]];
            assert_eq!(
                store.insert_summaries(&batch, 10).await.unwrap(),
                vec![true, true, false, true, false],
                "{backend}"
            );
            // 1,200 summaries (three chunks), one taken before, one repeated across chunks.
            let many: Vec<SummaryEnvelope> = (3..1_203).map(envelope).collect();
            let mut batch: Vec<&SummaryEnvelope> = many.iter().collect();
            batch.insert(0, &a[2]);
            batch.push(&many[10]);
            let fresh = store.insert_summaries(&batch, 20).await.unwrap();
            assert_eq!(fresh.len(), 1_202, "{backend}");
            assert!(!fresh[0] && !fresh[1_201], "{backend}");
            assert!(fresh[1..1_201].iter().all(|n| *n), "{backend}");
            assert_eq!(store.summary_count().await.unwrap(), 1_203, "{backend}");
            let stored = store.all_summaries_since(i64::MIN).await.unwrap();
            assert_eq!(stored.len(), 1_203, "{backend}");
            assert!(stored
                .iter()
                .all(|s| s.model == "m" && s.window_ms == 60_000));
            store.close().await;
        }
    }

    /// A summary's body is stored as it was received (not serialised again): the gzip
    /// envelope as it came, or the summary's text within an uncompressed one. Both read back
    /// as the same summary on both backends, and a gzip row that no longer decompresses is
    /// named, not skipped.
    #[tokio::test]
    async fn summary_bodies_are_stored_as_received() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _database) in stores(dir.path()).await {
            let (schema, profile) = fixture();
            store.put_profile(&profile, 1).await.unwrap();
            let mut s = WindowSummary::new(&schema, &profile);
            s.record(&schema, &profile, &event(1.5));
            let e = SummaryEnvelope::new("a", "m", "1", 0, 60_000, 0, s.clone());
            let pretty = serde_json::to_string_pretty(&e).unwrap();
            let text = aims_core::wire::summary_text(pretty.as_bytes()).unwrap();
            assert!(text.contains('\n'), "{backend}: laid out as sent");
            let text = SummaryBody::Json(text.to_owned());
            s.record(&schema, &profile, &event(2.5));
            let zipped = SummaryEnvelope::new("a", "m", "1", 60_000, 60_000, 1, s);
            let gzip = gzip_body(&zipped);
            assert_eq!(
                store
                    .insert_summary_bodies(&[(&e, &text), (&zipped, &gzip)], 5)
                    .await
                    .unwrap(),
                vec![true, true],
                "{backend}"
            );
            assert_eq!(store.summary_body(&e.id).await.unwrap(), text, "{backend}");
            assert_eq!(
                store.summary_body(&zipped.id).await.unwrap(),
                gzip,
                "{backend}"
            );
            let stored = store.all_summaries_since(i64::MIN).await.unwrap();
            assert_eq!(stored.len(), 2, "{backend}");
            assert_eq!(stored[0].summary, e.summary, "{backend}");
            assert_eq!(stored[1].summary, zipped.summary, "{backend}");
            assert_eq!(stored[1].window_start_ms, 60_000, "{backend}");
            // A retry through either entry point is a duplicate.
            assert_eq!(store.insert_summaries(&[&e], 6).await.unwrap(), vec![false]);
            assert_eq!(
                store
                    .insert_summary_bodies(&[(&zipped, &gzip)], 6)
                    .await
                    .unwrap(),
                vec![false]
            );
            // The hourly roll-up reads both forms: the hour is the merge of the two.
            let done = store.roll_up(HOUR_MS, 7).await.unwrap();
            assert_eq!((done.merged, done.conflicts.len()), (2, 0), "{backend}");
            let hour = store.all_summaries_since(i64::MIN).await.unwrap();
            let mut merged = e.summary.clone();
            merged.merge(&zipped.summary).unwrap();
            assert_eq!(hour.len(), 1, "{backend}");
            assert_eq!(hour[0].summary, merged, "{backend}");
            // A gzip row damaged on disk fails the read, naming the summary.
            let zipped = SummaryEnvelope::new("a", "m", "1", 2 * HOUR_MS, 60_000, 2, e.summary);
            let gzip = gzip_body(&zipped);
            assert_eq!(
                store
                    .insert_summary_bodies(&[(&zipped, &gzip)], 8)
                    .await
                    .unwrap(),
                vec![true]
            );
            on_db!(store, writer, |pool| {
                sqlx::query("UPDATE summaries SET envelope_gzip = $1 WHERE id = $2")
                    .bind(&b"\x1f\x8b not gzip"[..])
                    .bind(&zipped.id)
                    .execute(pool)
                    .await
                    .unwrap();
            });
            let err = store.all_summaries_since(i64::MIN).await.unwrap_err();
            assert!(
                matches!(&err, StoreError::CorruptGzip { what, .. } if what.contains(&zipped.id)),
                "{backend}: {err}"
            );
            store.close().await;
        }
    }

    /// A leader that was paused and replaced stores no nonconformity row when it resumes,
    /// as it appends no evidence (issue 14: the rows are fenced like the appends).
    #[tokio::test]
    async fn nonconformity_rows_are_fenced_by_the_term() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _database) in stores(dir.path()).await {
            let term = store.begin_term("a", 1).await.unwrap();
            let opened = Nonconformity::open(1, "o", "v1", "high", 2);
            store
                .put_nonconformities(std::slice::from_ref(&opened), Some(term), 2)
                .await
                .unwrap();
            let next = store.begin_term("b", 3).await.unwrap();
            let mut stale = opened.clone();
            stale.severity = "edited by the old leader".into();
            let other = Nonconformity::open(2, "p", "v1", "low", 4);
            let err = store
                .put_nonconformities(&[stale, other], Some(term), 4)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Fenced { held, current } if held == term && current == next),
                "{backend}: {err}"
            );
            let kept = store.nonconformities().await.unwrap();
            assert_eq!(
                kept.len(),
                1,
                "{backend}: nothing of the fenced batch stored"
            );
            assert_eq!(kept[0].severity, "high", "{backend}");
            // The new leader's term writes.
            store
                .put_nonconformities(
                    &[Nonconformity::open(2, "p", "v1", "low", 5)],
                    Some(next),
                    5,
                )
                .await
                .unwrap();
            assert_eq!(store.nonconformities().await.unwrap().len(), 2, "{backend}");
            store.close().await;
        }
    }

    #[tokio::test]
    async fn a_roll_up_that_does_not_merge_keeps_the_prior_hour_and_its_raw_summaries() {
        let dir = tempfile::tempdir().unwrap();
        for (backend, store, _database) in stores(dir.path()).await {
            eprintln!("backend {backend}");
            conflict_case(&store).await;
            store.close().await;
        }
    }

    async fn conflict_case(store: &Store) {
        let (schema, profile) = fixture();
        store.put_profile(&profile, 1).await.unwrap();
        let minute = |m: i64| {
            let mut s = WindowSummary::new(&schema, &profile);
            s.record(&schema, &profile, &event(m as f64));
            SummaryEnvelope::new("a", "m", "1", m * 60_000, 60_000, 0, s)
        };
        let first: Vec<SummaryEnvelope> = (0..10).map(minute).collect();
        store
            .insert_summaries(&first.iter().collect::<Vec<_>>(), 10)
            .await
            .unwrap();
        assert_eq!(store.roll_up(HOUR_MS, 10).await.unwrap().merged, 10);
        // The stored hour no longer has the shape of new summaries for it.
        let hour_id = format!("hour:m:1:{}:0", profile.hash);
        let mut odd = WindowSummary::new(&schema, &profile);
        odd.events = 7;
        odd.features.pop();
        let odd_body = serde_json::to_string(&odd).unwrap();
        store.set_summary_body(&hour_id, &odd_body).await.unwrap();
        let late: Vec<SummaryEnvelope> = (10..20).map(minute).collect();
        store
            .insert_summaries(&late.iter().collect::<Vec<_>>(), 20)
            .await
            .unwrap();
        let done = store.roll_up(HOUR_MS, 30).await.unwrap();
        assert_eq!(done.merged, 0);
        assert_eq!(done.conflicts.len(), 1, "{done:?}");
        assert!(done.conflicts[0].starts_with(&hour_id), "{done:?}");
        let rows = store.all_summaries_since(i64::MIN).await.unwrap();
        assert_eq!(rows.len(), 1 + 10, "the hour and the ten raw minutes stay");
        let kept = store.summary_body(&hour_id).await.unwrap();
        assert_eq!(kept, SummaryBody::Json(odd_body));
    }
}
