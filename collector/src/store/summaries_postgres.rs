//! A batch of summaries into PostgreSQL in one statement, one round trip.
//!
//! The batch's columns go as arrays (`UNNEST`), so the statement's text is the same whatever
//! the batch size and is prepared once per connection, not once per size. The ids are claimed
//! in `summary_ids` and only the claimed ones are inserted into `summaries`, in the same
//! statement: one statement outside an explicit transaction is atomic, and it returns after its
//! commit, so what it reports new is committed before the writer acknowledges it. Without the
//! `BEGIN`, the second insert and the `COMMIT`, a batch costs one round trip instead of four.

use std::collections::HashSet;

use aims_core::wire::SummaryEnvelope;
use sqlx::postgres::PgPool;

use super::{StoreError, SummaryBody};

/// Claims the ids (those already taken, by this replica or another, are not in `claimed`'s
/// RETURNING) and inserts the claimed summaries, in input order (`rowid` follows the batch,
/// as rebuilds read it back), returning the ids that were new. The ids are claimed in sorted
/// order, so two replicas claiming overlapping batches take their row locks in the same order
/// and cannot deadlock.
const INSERT: &str = "\
WITH input AS (\
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
        $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $11::bytea[]) WITH ORDINALITY \
        AS t(id, agent, model, model_version, profile_hash, window_start_ms, window_ms, seq, \
        body, envelope_gzip, n)\
), claimed AS (\
    INSERT INTO summary_ids (id, received_ms) SELECT id, $10::bigint FROM input ORDER BY id \
    ON CONFLICT DO NOTHING RETURNING id\
) \
INSERT INTO summaries (id, agent, model, model_version, profile_hash, window_start_ms, \
    window_ms, seq, resolution, received_ms, body, envelope_gzip) \
SELECT i.id, i.agent, i.model, i.model_version, i.profile_hash, i.window_start_ms, \
    i.window_ms, i.seq, 'raw', $10::bigint, i.body, i.envelope_gzip \
FROM input i JOIN claimed c ON c.id = i.id ORDER BY i.n \
RETURNING id";

/// [`super::Store::insert_summary_bodies`] on PostgreSQL. An id sent twice in one batch is
/// passed once (its first occurrence is the new one, the others are duplicates).
pub(super) async fn insert(
    pool: &PgPool,
    batch: &[(&SummaryEnvelope, &SummaryBody)],
    now_ms: i64,
) -> Result<Vec<bool>, StoreError> {
    let mut seen = HashSet::with_capacity(batch.len());
    let first: Vec<bool> = batch
        .iter()
        .map(|(e, _)| seen.insert(e.id.as_str()))
        .collect();
    let n = seen.len();
    let (mut ids, mut agents, mut models, mut versions, mut profiles, mut bodies, mut gzips) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut starts, mut windows, mut seqs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((e, body), _) in batch.iter().zip(&first).filter(|(_, f)| **f) {
        ids.push(e.id.as_str());
        agents.push(e.agent.as_str());
        models.push(e.model.as_str());
        versions.push(e.model_version.as_str());
        profiles.push(e.summary.profile_hash.as_str());
        starts.push(e.window_start_ms);
        windows.push(e.window_ms as i64);
        seqs.push(e.seq as i64);
        bodies.push(body.text());
        gzips.push(body.gzip());
    }
    let new: Vec<String> = sqlx::query_scalar(INSERT)
        .bind(ids)
        .bind(agents)
        .bind(models)
        .bind(versions)
        .bind(profiles)
        .bind(starts)
        .bind(windows)
        .bind(seqs)
        .bind(bodies)
        .bind(now_ms)
        .bind(gzips)
        .fetch_all(pool)
        .await?;
    let new: HashSet<&str> = new.iter().map(String::as_str).collect();
    Ok(batch
        .iter()
        .zip(first)
        .map(|((e, _), first)| first && new.contains(e.id.as_str()))
        .collect())
}

#[cfg(test)]
mod tests {
    use aims_core::wire::SummaryEnvelope;
    use aims_core::WindowSummary;
    use aims_testkit::fixtures::{one_feature, positive};

    use crate::store::{Store, SummaryBody};

    /// Commits `batch` on `store` 20 at a time: each id with whether it was new.
    async fn commit(
        store: &Store,
        batch: Vec<(&SummaryEnvelope, &SummaryBody)>,
    ) -> Vec<(String, bool)> {
        let mut new = Vec::new();
        for (n, chunk) in batch.chunks(20).enumerate() {
            let fresh = store
                .insert_summary_bodies(chunk, n as i64)
                .await
                .expect("no batch fails (no deadlock between replicas)");
            new.extend(chunk.iter().zip(fresh).map(|((e, _), f)| (e.id.clone(), f)));
        }
        new
    }

    /// Two replicas on one database commit overlapping batches (in opposite orders) at the
    /// same time: every id is new at exactly one of them and stored once, nothing deadlocks,
    /// and each replica's rows read back in the order of its batches.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_racing_on_the_same_ids_store_each_once() {
        let Some(url) = aims_testkit::postgres::server("replicas racing on the same summary ids")
        else {
            return;
        };
        let database = aims_testkit::postgres::fresh_database(&url);
        let open = || async {
            let options = std::str::FromStr::from_str(database.url()).expect("the test URL");
            Store::open_postgres(options, 2)
                .await
                .expect("open a replica's store")
        };
        let (a, b) = (open().await, open().await);
        let (schema, profile) = one_feature();
        a.put_profile(&profile, 1).await.unwrap();
        let envelopes: Vec<SummaryEnvelope> = (0..400)
            .map(|minute| {
                let mut s = WindowSummary::new(&schema, &profile);
                s.record(&schema, &profile, &positive(minute as f64));
                SummaryEnvelope::new("a", "m", "1", minute * 60_000, 60_000, 0, s)
            })
            .collect();
        // Every other body is a gzip envelope: a batch mixes both columns' forms.
        let bodies: Vec<SummaryBody> = envelopes
            .iter()
            .enumerate()
            .map(|(i, e)| match i % 2 {
                0 => SummaryBody::Json(serde_json::to_string(&e.summary).unwrap()),
                _ => crate::test_support::gzip_body(e),
            })
            .collect();
        let rows: Vec<(&SummaryEnvelope, &SummaryBody)> = envelopes.iter().zip(&bodies).collect();
        // Replica a: 0..300 forwards; replica b: 100..400 backwards; 20 per batch.
        let to_a: Vec<_> = rows[..300].to_vec();
        let to_b: Vec<_> = rows[100..].iter().rev().copied().collect();
        let (at_a, at_b) = tokio::join!(commit(&a, to_a), commit(&b, to_b));
        let mut times_new = std::collections::HashMap::<String, usize>::new();
        for (id, fresh) in at_a.iter().chain(&at_b) {
            *times_new.entry(id.clone()).or_default() += usize::from(*fresh);
        }
        assert_eq!(times_new.len(), 400);
        assert!(
            times_new.values().all(|n| *n == 1),
            "each id new exactly once"
        );
        assert_eq!(a.summary_count().await.unwrap(), 400);
        let stored = b.all_summaries_since(i64::MIN).await.unwrap();
        assert_eq!(stored.len(), 400);
        for s in &stored {
            let e = envelopes.iter().find(|e| e.id == s.id).unwrap();
            assert_eq!(s.summary, e.summary, "{} reads back whole", s.id);
        }
        // Each replica's new rows follow its batches' order (rowid order is batch order).
        for (mine, theirs) in [(&at_a, &at_b), (&at_b, &at_a)] {
            let order: Vec<&str> = mine
                .iter()
                .filter(|(_, f)| *f)
                .map(|(id, _)| id.as_str())
                .collect();
            let read_back: Vec<&str> = stored
                .iter()
                .map(|s| s.id.as_str())
                .filter(|id| !theirs.iter().any(|(t, f)| *f && t == id))
                .collect();
            assert_eq!(read_back, order);
        }
        a.close().await;
        b.close().await;
    }
}
