//! Durable state in one SQLite file (WAL): reference profiles, summaries and their ids, the
//! evidence log and the objectives' lifecycle.
//!
//! All writes go through a single-connection pool, so SQLite never has to arbitrate between
//! writers (no `SQLITE_BUSY` on lock upgrades) and group commit stays simple; reads use their
//! own pool and see committed data through WAL snapshots.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use aims_core::evidence::{Kind, Sealed};
use aims_core::nonconformity::Nonconformity;
use aims_core::wire::SummaryEnvelope;
use aims_core::{ReferenceProfile, WindowSummary};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use thiserror::Error;

use crate::config::Synchronous;

mod checkpoints;
mod snapshots;
pub use checkpoints::StoredCheckpoint;

/// Length of a roll-up bucket.
pub const HOUR_MS: i64 = 3_600_000;

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite said no.
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
    /// The data directory cannot be created.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A summary as kept, with the columns the aggregates need.
#[derive(Debug, Clone)]
pub struct StoredSummary {
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

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl Store {
    /// Opens (creating) the database at `path` and applies migrations.
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
        sqlx::migrate!("./migrations").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { writer, reader })
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
        let done = sqlx::query(
            "INSERT OR IGNORE INTO profiles (hash, model, model_version, body, created_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&profile.hash)
        .bind(&profile.model)
        .bind(&profile.model_version)
        .bind(body)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every profile, oldest first (so the last one per model is its latest).
    pub async fn profiles(&self) -> Result<Vec<ReferenceProfile>, StoreError> {
        let rows = sqlx::query("SELECT hash, body FROM profiles ORDER BY created_ms, rowid")
            .fetch_all(&self.reader)
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
    }

    /// Commits a batch of summaries in one transaction. Returns, per summary, whether it was
    /// new (false: its id was seen before, and nothing was written).
    pub async fn insert_summaries(
        &self,
        batch: &[&SummaryEnvelope],
        now_ms: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut fresh = Vec::with_capacity(batch.len());
        for e in batch {
            let done =
                sqlx::query("INSERT OR IGNORE INTO summary_ids (id, received_ms) VALUES (?, ?)")
                    .bind(&e.id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            let is_new = done.rows_affected() == 1;
            if is_new {
                let body =
                    serde_json::to_string(&e.summary).map_err(|source| StoreError::Corrupt {
                        what: "summary".into(),
                        source,
                    })?;
                sqlx::query(
                    "INSERT INTO summaries (id, agent, model, model_version, profile_hash, window_start_ms, \
                     window_ms, seq, resolution, received_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'raw', ?, ?)",
                )
                .bind(&e.id)
                .bind(&e.agent)
                .bind(&e.model)
                .bind(&e.model_version)
                .bind(&e.summary.profile_hash)
                .bind(e.window_start_ms)
                .bind(e.window_ms as i64)
                .bind(e.seq as i64)
                .bind(now_ms)
                .bind(body)
                .execute(&mut *tx)
                .await?;
            }
            fresh.push(is_new);
        }
        tx.commit().await?;
        Ok(fresh)
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
        let rows = sqlx::query(
            "SELECT rowid, id, model, model_version, profile_hash, window_start_ms, window_ms, body FROM summaries \
             WHERE window_start_ms + window_ms > ? AND rowid > ? ORDER BY rowid LIMIT ?",
        )
        .bind(since_ms)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        let next = (rows.len() as u32 == limit)
            .then(|| rows.last().map(|r| r.get::<i64, _>("rowid")))
            .flatten();
        Ok((
            rows.iter().map(stored_summary).collect::<Result<_, _>>()?,
            next,
        ))
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
        sqlx::query("SELECT 1").fetch_one(&self.reader).await?;
        Ok(())
    }

    /// Number of summaries accepted (ids remembered), for tests and the status.
    pub async fn summary_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT count(*) FROM summary_ids")
            .fetch_one(&self.reader)
            .await?
            .get(0))
    }

    /// When each model last delivered a summary (collector clock, ms).
    pub async fn last_received(&self) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT model, max(received_ms) AS at FROM summaries WHERE resolution = 'raw' GROUP BY model")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>("model"), r.get::<i64, _>("at")))
            .collect())
    }

    /// Per model and agent, the summaries whose window lies within [from, to], for the
    /// report's coverage section.
    pub async fn agents_between(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<AgentSpan>, StoreError> {
        let rows = sqlx::query(
            "SELECT model, agent, count(*) AS n, min(window_start_ms) AS first, \
             max(window_start_ms + window_ms) AS last FROM summaries \
             WHERE window_start_ms >= ? AND window_start_ms + window_ms <= ? \
             GROUP BY model, agent ORDER BY model, agent",
        )
        .bind(from_ms)
        .bind(to_ms.saturating_add(1))
        .fetch_all(&self.reader)
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
    }

    /// Merges raw summaries whose window ended before `cutoff_ms` into hourly roll-ups (one per
    /// model, model version, profile and hour), stamped as received at `now_ms`.
    ///
    /// A raw summary that does not merge with its hour stays raw. An hour whose stored roll-up
    /// does not merge with the new summaries is left exactly as it was, with its raw summaries
    /// beside it, and is named in [`RollUp::conflicts`]: nothing is dropped or overwritten.
    pub async fn roll_up(&self, cutoff_ms: i64, now_ms: i64) -> Result<RollUp, StoreError> {
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "SELECT id, model, model_version, profile_hash, window_start_ms, window_ms, body FROM summaries \
             WHERE resolution = 'raw' AND window_start_ms + window_ms <= ? AND window_ms <= ?",
        )
        .bind(cutoff_ms)
        .bind(HOUR_MS)
        .fetch_all(&mut *tx)
        .await?;
        type Group = (WindowSummary, Vec<String>);
        let mut groups: BTreeMap<(String, String, String, i64), Group> = BTreeMap::new();
        for r in &rows {
            let s = stored_summary(r)?;
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
            if let Some(existing) = sqlx::query("SELECT body FROM summaries WHERE id = ?")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?
            {
                let prior: WindowSummary = serde_json::from_str(existing.get::<&str, _>("body"))
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
                "INSERT OR REPLACE INTO summaries (id, agent, model, model_version, profile_hash, window_start_ms, \
                 window_ms, seq, resolution, received_ms, body) VALUES (?, '*', ?, ?, ?, ?, ?, 0, 'hour', ?, ?)",
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
                sqlx::query("DELETE FROM summaries WHERE id = ?")
                    .bind(raw)
                    .execute(&mut *tx)
                    .await?;
            }
            done.merged += ids.len();
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Deletes summaries whose window ended before `cutoff_ms`, and the ids received before it.
    pub async fn expire(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("DELETE FROM summaries WHERE window_start_ms + window_ms < ?")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM summary_ids WHERE received_ms < ?")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The last evidence record's sequence and hash, if any.
    pub async fn evidence_head(&self) -> Result<Option<(u64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.map(|r| (r.get::<i64, _>("seq") as u64, r.get::<String, _>("hash"))))
    }

    /// Appends sealed records (already chained by the caller) and objective rows in one
    /// transaction, so the log and the states never disagree.
    pub async fn append(
        &self,
        records: &[EvidenceRow],
        states: &[ObjectiveRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for r in records {
            sqlx::query(
                "INSERT INTO evidence (seq, at_ms, kind, objective, canonical, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
                 samples, evaluated_ms) VALUES (?, COALESCE(?, ''), ?, ?, ?, ?, ?) \
                 ON CONFLICT (objective) DO UPDATE SET version = COALESCE(?, objective_state.version), \
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
            .bind(&s.version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Evidence records with `seq > after`, in order, at most `limit`; optionally only one
    /// objective's records of one kind within [from, to].
    pub async fn evidence_page(
        &self,
        after: u64,
        limit: u32,
        filter: Option<(&str, Kind, i64, i64)>,
    ) -> Result<Vec<EvidenceRow>, StoreError> {
        let rows = match filter {
            None => {
                sqlx::query("SELECT * FROM evidence WHERE seq > ? ORDER BY seq LIMIT ?")
                    .bind(after as i64)
                    .bind(limit)
                    .fetch_all(&self.reader)
                    .await?
            }
            Some((objective, kind, from, to)) => {
                sqlx::query(
                    "SELECT * FROM evidence WHERE objective = ? AND kind = ? AND at_ms >= ? AND at_ms <= ? \
                     AND seq > ? ORDER BY seq LIMIT ?",
                )
                .bind(objective)
                .bind(kind.as_str())
                .bind(from)
                .bind(to)
                .bind(after as i64)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
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
    }

    /// The canonical JSON of an objective's latest `limit` evaluation records, newest first:
    /// the status page's sparklines read only the tail of the log.
    pub async fn latest_evaluations(
        &self,
        objective: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT canonical FROM evidence WHERE objective = ? AND kind = ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(objective)
        .bind(Kind::Evaluation.as_str())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|r| r.get("canonical")).collect())
    }

    /// Per agent sending for `model`: when its last raw summary arrived (collector clock, ms)
    /// and how many raw summaries it has sent; for the status page.
    pub async fn agents_of(&self, model: &str) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent, max(received_ms) AS at, count(*) AS n FROM summaries \
             WHERE model = ? AND resolution = 'raw' GROUP BY agent ORDER BY agent",
        )
        .bind(model)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("agent"), r.get("at"), r.get("n")))
            .collect())
    }

    /// Every objective's persisted lifecycle.
    pub async fn objective_states(&self) -> Result<Vec<ObjectiveRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM objective_state")
            .fetch_all(&self.reader)
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
    }

    /// Stores the current form of a nonconformity.
    pub async fn put_nonconformity(
        &self,
        nc: &Nonconformity,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(nc).map_err(|source| StoreError::Corrupt {
            what: format!("nonconformity {}", nc.id),
            source,
        })?;
        sqlx::query(
            "INSERT INTO nonconformities (id, objective, status, body, updated_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body, updated_ms = excluded.updated_ms",
        )
        .bind(nc.id as i64)
        .bind(&nc.objective)
        .bind(nc.status.as_str())
        .bind(body)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Every nonconformity, by id.
    pub async fn nonconformities(&self) -> Result<Vec<Nonconformity>, StoreError> {
        let rows = sqlx::query("SELECT id, body FROM nonconformities ORDER BY id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.get("id");
                serde_json::from_str(r.get("body")).map_err(|source| StoreError::Corrupt {
                    what: format!("nonconformity {id}"),
                    source,
                })
            })
            .collect()
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// What a roll-up did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RollUp {
    /// Raw summaries merged into hourly roll-ups (and deleted).
    pub merged: usize,
    /// Hours left untouched because their stored roll-up did not merge, with why.
    pub conflicts: Vec<String>,
}

fn stored_summary(r: &sqlx::sqlite::SqliteRow) -> Result<StoredSummary, StoreError> {
    let summary =
        serde_json::from_str(r.get::<&str, _>("body")).map_err(|source| StoreError::Corrupt {
            what: format!("summary {}", r.get::<&str, _>("id")),
            source,
        })?;
    Ok(StoredSummary {
        model: r.get("model"),
        model_version: r.get("model_version"),
        profile_hash: r.get("profile_hash"),
        window_start_ms: r.get("window_start_ms"),
        window_ms: r.get::<i64, _>("window_ms") as u64,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{event, fixture};

    #[tokio::test]
    async fn roll_up_is_lossless_and_ids_stay_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
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
    async fn a_roll_up_that_does_not_merge_keeps_the_prior_hour_and_its_raw_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
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
        sqlx::query("UPDATE summaries SET body = ? WHERE id = ?")
            .bind(&odd_body)
            .bind(&hour_id)
            .execute(&store.writer)
            .await
            .unwrap();
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
        let kept: String = sqlx::query_scalar("SELECT body FROM summaries WHERE id = ?")
            .bind(&hour_id)
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(kept, odd_body);
    }
}
