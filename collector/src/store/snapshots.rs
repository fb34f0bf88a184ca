//! Report snapshots (derived state, see the migration) and the by-time lookups of a period.

use sqlx::Row;

use super::{Db, Store, StoreError};

impl Store {
    /// Keeps the report state folded up to record `seq` (JSON); a second one for the same
    /// record is ignored.
    pub async fn put_report_snapshot(&self, seq: u64, state: &str) -> Result<(), StoreError> {
        on_db!(self, writer, |pool| {
            sqlx::query(
                "INSERT INTO report_snapshots (seq, state) VALUES ($1, $2) \
                 ON CONFLICT (seq) DO NOTHING",
            )
            .bind(seq as i64)
            .bind(state)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The snapshot of the latest record at or before `seq`: its record and JSON.
    pub async fn report_snapshot_at_or_below(
        &self,
        seq: u64,
    ) -> Result<Option<(u64, String)>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query(
                "SELECT seq, state FROM report_snapshots WHERE seq <= $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(seq as i64)
            .fetch_optional(pool)
            .await?;
            Ok(r.map(|r| (r.get::<i64, _>("seq") as u64, r.get::<String, _>("state"))))
        })
    }

    /// The first record (by sequence) recorded at or after `from_ms`.
    pub async fn first_evidence_at_or_after(
        &self,
        from_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query("SELECT MIN(seq) AS seq FROM evidence WHERE at_ms >= $1")
                .bind(from_ms)
                .fetch_one(pool)
                .await?;
            Ok(r.get::<Option<i64>, _>("seq").map(|s| s as u64))
        })
    }

    /// The last record from `first` on recorded at or before `to_ms`.
    pub async fn last_evidence_at_or_before(
        &self,
        first: u64,
        to_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        on_db!(self, reader, |pool| {
            let r =
                sqlx::query("SELECT MAX(seq) AS seq FROM evidence WHERE seq >= $1 AND at_ms <= $2")
                    .bind(first as i64)
                    .bind(to_ms)
                    .fetch_one(pool)
                    .await?;
            Ok(r.get::<Option<i64>, _>("seq").map(|s| s as u64))
        })
    }

    /// The sequence and hash of the last record before `seq`.
    pub async fn evidence_before(&self, seq: u64) -> Result<Option<(u64, String)>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query(
                "SELECT seq, hash FROM evidence WHERE seq < $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(seq as i64)
            .fetch_optional(pool)
            .await?;
            Ok(r.map(|r| (r.get::<i64, _>("seq") as u64, r.get::<String, _>("hash"))))
        })
    }
}
