//! Which replica evaluates. Every replica runs this task; it ticks the [`Elector`] more often
//! than the lock timeout (so a live leader keeps its lock session) and, on winning a term,
//! makes this replica the leader: it reloads what other replicas wrote (lifecycles, profiles,
//! summaries), records a `leader_change` evidence record fenced on the new term, and sets
//! `aims_collector_leader`. The evaluator runs a cycle only while this replica holds a term
//! ([`crate::evidence::EvidenceLog::term`]).

use std::sync::Arc;
use std::time::Duration;

use aims_core::evidence::payload::{LeaderChange, Payload};
use tokio::sync::watch;

use crate::config::Backend;
use crate::evidence::Entry;
use crate::leader::{Elector, Role};
use crate::state::{horizon_ms, App, ObjectiveStatus};
use crate::store::StoreError;

/// The elector the configuration implies: a single leader on SQLite, the advisory lock on
/// PostgreSQL.
pub fn elector(app: &App) -> Result<Elector, StoreError> {
    let replica = app.config.replica();
    Ok(match app.config.storage.backend {
        Backend::Sqlite => Elector::single(&replica),
        Backend::Postgres => Elector::postgres(
            &replica,
            crate::store::postgres_options(&app.config.storage)?,
            app.config.storage.lock_timeout,
        ),
    })
}

/// One tick: campaign or keep the lock, and act on the outcome.
pub async fn tick(app: &App, elector: &mut Elector) {
    match elector.tick(&app.store, app.now_ms()).await {
        Ok(Role::Leader {
            term,
            elected: true,
        }) => {
            if let Err(e) = take_over(app, elector, term).await {
                tracing::error!(error = %e, term, "taking over failed; resigning");
                elector.resign().await;
                follow(app);
            }
        }
        Ok(Role::Leader { .. }) => {}
        Ok(Role::Follower) => {
            follow(app);
            // A follower serves reads too (objectives, the status page, reports): it follows
            // the leader's lifecycles and the profiles other replicas took.
            if app.store.backend() == Backend::Postgres {
                if let Err(e) = refresh_states(app).await {
                    tracing::warn!(error = %e, "following: cannot read the shared state");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "leader election: database unreachable; following");
            follow(app);
        }
    }
}

/// Ticks until shutdown, then resigns (releasing the lock at once for another replica).
pub async fn run(app: Arc<App>, mut elector: Elector, mut shutdown: watch::Receiver<bool>) {
    let period = (app.config.storage.lock_timeout / 3).max(Duration::from_millis(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => break,
        }
        tick(&app, &mut elector).await;
    }
    // The leader signs the last checkpoint of its term before it lets go.
    if elector.term().is_some() {
        super::checkpoint::issue(&app).await;
    }
    elector.resign().await;
    follow(&app);
}

fn follow(app: &App) {
    if app.evidence.term().is_some() {
        tracing::info!("no longer the leader");
    }
    app.evidence.set_term(None);
    app.metrics.leader.set(0);
}

/// Becomes the leader of `term`: state from the database, then the evidence record.
async fn take_over(app: &App, elector: &Elector, term: i64) -> Result<(), StoreError> {
    if app.store.backend() == Backend::Postgres {
        refresh(app).await?;
    }
    app.evidence.set_term(Some(term));
    app.evidence
        .append(
            vec![Entry::global(Payload::LeaderChange(LeaderChange {
                replica: elector.replica().to_owned(),
                term,
                previous: elector.previous().map(str::to_owned),
            }))],
            &[],
            app.now_ms(),
        )
        .await?;
    app.metrics.leader.set(1);
    // Signing is the leader's job: a checkpoint of the log as this term begins.
    if app.store.backend() == Backend::Postgres {
        super::checkpoint::issue(app).await;
    }
    tracing::info!(
        term,
        replica = elector.replica(),
        "leading: this replica evaluates"
    );
    Ok(())
}

/// Reads what every replica wrote into this one's memory: lifecycles (pending since, firing
/// since), profiles and the aggregates over the evaluation horizon. On PostgreSQL the leader
/// calls it at takeover and before every cycle, since other replicas ingest too.
pub async fn refresh(app: &App) -> Result<(), StoreError> {
    let now = app.now_ms();
    refresh_states(app).await?;
    let horizon = horizon_ms(&app.objectives(), &app.config);
    app.refresh_aggregates(now, horizon).await?;
    Ok(())
}

/// Reads the profiles and the lifecycles every replica stored into this one's memory.
async fn refresh_states(app: &App) -> Result<(), StoreError> {
    for p in app.store.profiles().await? {
        app.profiles.write().insert(p);
    }
    let rows = app.store.objective_states().await?;
    {
        let mut status = app.status.write();
        for row in &rows {
            if let (Some(s), Some(mine)) = (
                ObjectiveStatus::from_row(row),
                status.get_mut(&row.objective),
            ) {
                *mine = s;
            }
        }
    }
    Ok(())
}
