//! Report snapshots (derived state, see the migration) and the by-time lookups of a period.

use sqlx::Row;

use super::{Db, Store, StoreError};

/// A report snapshot as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The last record folded into the state.
    pub seq: u64,
    /// The state, JSON.
    pub state: String,
    /// The `report_snapshot` evidence record that holds the state's SHA-256.
    pub record: u64,
}

/// The first record recorded at or after `$1`. `seq + 0`, not `seq`: with a bare `MIN(seq)`
/// SQLite walks the table by primary key from record 1 until a row's `at_ms` qualifies, which
/// for a recent period reads nearly the whole log (at 10,000,000 records most of a 6.6 GB file,
/// about 2 CPU-s of a week's report); the expression makes it take the `at_ms` index range
/// instead, a covering index, so only the period's index entries are read.
const FIRST_AT_OR_AFTER: &str = "SELECT MIN(seq + 0) AS seq FROM evidence WHERE at_ms >= $1";

impl Store {
    /// Keeps the report state folded up to record `seq` (JSON), tied to the evidence record
    /// `record` that holds its hash; a second one for the same record is ignored.
    pub async fn put_report_snapshot(
        &self,
        seq: u64,
        state: &str,
        record: u64,
    ) -> Result<(), StoreError> {
        on_db!(self, writer, |pool| {
            sqlx::query(
                "INSERT INTO report_snapshots (seq, state, record) VALUES ($1, $2, $3) \
                 ON CONFLICT (seq) DO NOTHING",
            )
            .bind(seq as i64)
            .bind(state)
            .bind(record as i64)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The snapshot of the latest record at or before `seq` that is tied to an evidence
    /// record: its record, JSON and the evidence record holding its hash.
    pub async fn report_snapshot_at_or_below(
        &self,
        seq: u64,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query(
                "SELECT seq, state, record FROM report_snapshots WHERE seq <= $1 \
                 AND record IS NOT NULL ORDER BY seq DESC LIMIT 1",
            )
            .bind(seq as i64)
            .fetch_optional(pool)
            .await?;
            Ok(r.map(|r| StoredSnapshot {
                seq: r.get::<i64, _>("seq") as u64,
                state: r.get("state"),
                record: r.get::<i64, _>("record") as u64,
            }))
        })
    }

    /// The records every kept snapshot was folded up to, in order (for `evidence verify`).
    pub async fn report_snapshot_seqs(&self) -> Result<Vec<u64>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows: Vec<i64> =
                sqlx::query_scalar("SELECT seq FROM report_snapshots ORDER BY seq")
                    .fetch_all(pool)
                    .await?;
            Ok(rows.into_iter().map(|s| s as u64).collect())
        })
    }

    /// Replaces a kept snapshot's JSON (tamper tests).
    #[cfg(test)]
    pub(crate) async fn set_report_snapshot_state(
        &self,
        seq: u64,
        state: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, writer, |pool| {
            sqlx::query("UPDATE report_snapshots SET state = $1 WHERE seq = $2")
                .bind(state)
                .bind(seq as i64)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// The evidence record `seq`, if stored.
    pub async fn evidence_record(
        &self,
        seq: u64,
    ) -> Result<Option<super::EvidenceRow>, StoreError> {
        Ok(self
            .evidence_page(seq.saturating_sub(1), 1, None)
            .await?
            .into_iter()
            .find(|r| r.sealed.seq == seq))
    }

    /// The first record (by sequence) recorded at or after `from_ms`.
    pub async fn first_evidence_at_or_after(
        &self,
        from_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query(FIRST_AT_OR_AFTER)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    /// The plan, not a timing: a period's first record comes from the `at_ms` index, not a
    /// walk of the table from record 1.
    #[tokio::test]
    async fn a_periods_first_record_is_found_through_the_time_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.db"), Synchronous::Normal)
            .await
            .unwrap();
        let Db::Sqlite { reader, .. } = &store.db else {
            unreachable!("a file path opens SQLite")
        };
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {FIRST_AT_OR_AFTER}"))
            .bind(0i64)
            .fetch_all(reader)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("COVERING INDEX evidence_at")),
            "plan: {plan:?}"
        );
        store.close().await;
    }
}
