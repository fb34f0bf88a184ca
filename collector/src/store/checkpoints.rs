//! The signed checkpoints the collector issued, by tree size.

use sqlx::Row;

use super::{Db, Store, StoreError};

/// A checkpoint as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Records it covers.
    pub size: u64,
    /// When it was signed, ms.
    pub at_ms: i64,
    /// The signed note.
    pub note: String,
    /// The tree's right edge at this size (hex, comma-separated).
    pub peaks: String,
}

/// A checkpoint row of either backend (a macro, so one text serves both row types).
macro_rules! checkpoint_row {
    ($r:expr) => {{
        let r = $r;
        StoredCheckpoint {
            size: r.get::<i64, _>("size") as u64,
            at_ms: r.get("at_ms"),
            note: r.get("note"),
            peaks: r.get("peaks"),
        }
    }};
}

impl Store {
    /// Keeps a checkpoint; one of a size already kept is ignored (Ed25519 signatures are
    /// deterministic, so the same key signs the same tree head identically).
    pub async fn put_checkpoint(&self, c: &StoredCheckpoint) -> Result<(), StoreError> {
        on_db!(self, writer, |pool| {
            sqlx::query(
                "INSERT INTO checkpoints (size, at_ms, note, peaks) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (size) DO NOTHING",
            )
            .bind(c.size as i64)
            .bind(c.at_ms)
            .bind(&c.note)
            .bind(&c.peaks)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The checkpoint of the largest tree.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query("SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1")
                .fetch_optional(pool)
                .await?;
            Ok(r.map(|r| checkpoint_row!(r)))
        })
    }

    /// Checkpoints of trees of `from..=to` records, smallest first.
    pub async fn checkpoints_between(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        on_db!(self, reader, |pool| {
            let rows = sqlx::query(
                "SELECT * FROM checkpoints WHERE size >= $1 AND size <= $2 ORDER BY size",
            )
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(|r| checkpoint_row!(r)).collect())
        })
    }
}

impl Store {
    /// The checkpoint of the largest tree of at most `size` records.
    pub async fn checkpoint_at_or_below(
        &self,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query(
                "SELECT * FROM checkpoints WHERE size <= $1 ORDER BY size DESC LIMIT 1",
            )
            .bind(size as i64)
            .fetch_optional(pool)
            .await?;
            Ok(r.map(|r| checkpoint_row!(r)))
        })
    }

    /// The checkpoint of the smallest tree of more than `size` records.
    pub async fn checkpoint_above(
        &self,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        on_db!(self, reader, |pool| {
            let r = sqlx::query("SELECT * FROM checkpoints WHERE size > $1 ORDER BY size LIMIT 1")
                .bind(size as i64)
                .fetch_optional(pool)
                .await?;
            Ok(r.map(|r| checkpoint_row!(r)))
        })
    }
}
