//! Signed checkpoints of the evidence tree: one at start, one every
//! `evidence.checkpoint_interval` of clock time when the log has grown, one at shutdown, and
//! one into every report and pack ([`issue`]).
//!
//! After each periodic one, a report snapshot is kept when due (every
//! [`report::snapshot::EVERY`] records), so reports read only their period.
//!
//! Each is kept in the store, published as the latest (`GET /v1/evidence/checkpoint`) and on
//! `/metrics` (size, root prefix, time), so copies leave the collector as it runs.
//!
//! With several replicas on PostgreSQL, signing is the leader's job ([`signs`]): one signer,
//! one series of checkpoints. A follower serves the latest checkpoint stored in the database
//! ([`follow`], every second), verified with its own copy of the key first, so what it serves
//! and exports is the leader's. The leader signs its last one when it resigns. Time is the
//! shared clock's: the task looks at it every second (of real time) and signs once a whole
//! interval of clock time has passed, so a test with a manual clock steps it forward instead
//! of waiting ten minutes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Backend;
use crate::services::report;
use crate::state::App;
use crate::store::StoredCheckpoint;
use crate::tree::Signed;

/// How often the task looks at the clock.
const POLL: Duration = Duration::from_secs(1);

/// Signs a checkpoint of the tree as it is now, keeps and publishes it, and returns it;
/// `None` without a key. A tree no larger than the latest checkpoint's is not signed again:
/// the latest is returned.
pub async fn issue(app: &App) -> Option<Signed> {
    let key = app.signer.as_ref()?;
    if !signs(app) {
        return follow(app).await;
    }
    // With several replicas, the others' records are read in first: the checkpoint covers
    // the whole stored log, not only what this replica appended.
    app.evidence.catch_up().await;
    let frontier = app.evidence.frontier();
    let head = aims_core::checkpoint::TreeHead {
        origin: app.config.evidence.origin.clone(),
        size: frontier.size(),
        root: frontier.root(),
    };
    if let Some(latest) = app.checkpoint.read().as_ref() {
        if latest.head.size >= head.size {
            return Some(latest.clone());
        }
    }
    let note = match head.sign(key) {
        Ok(note) => note,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign an evidence checkpoint");
            return None;
        }
    };
    let signed = Signed {
        head,
        note,
        at_ms: app.now_ms(),
    };
    let stored = StoredCheckpoint {
        size: signed.head.size,
        at_ms: signed.at_ms,
        note: signed.note.clone(),
        peaks: crate::tree::peaks_text(&frontier),
    };
    if let Err(e) = app.store.put_checkpoint(&stored).await {
        // Still published: the copies that count are the ones outside the database.
        tracing::error!(error = %e, size = stored.size, "cannot keep the evidence checkpoint");
    }
    publish(app, &signed);
    app.metrics.tree.checkpoints_signed.inc();
    tracing::info!(size = signed.head.size, root = %aims_core::merkle::to_hex(&signed.head.root), "evidence checkpoint signed");
    Some(signed)
}

/// Whether this replica signs checkpoints: a single (SQLite) collector always; a PostgreSQL
/// replica while it leads (holds a term).
pub fn signs(app: &App) -> bool {
    app.store.backend() == Backend::Sqlite || app.evidence.term().is_some()
}

/// A follower's checkpoint: the latest one stored (the leader's), published here once it
/// verifies with this replica's key; then the latest published. `None` without a key or
/// before any checkpoint.
pub async fn follow(app: &App) -> Option<Signed> {
    let key = app.signer.as_ref()?;
    match app.store.latest_checkpoint().await {
        Ok(Some(c)) => {
            let newer = app
                .checkpoint
                .read()
                .as_ref()
                .is_none_or(|l| l.head.size < c.size);
            if newer {
                match aims_core::checkpoint::TreeHead::open(&c.note, key.verifier()) {
                    Ok(head) => publish(
                        app,
                        &Signed {
                            head,
                            note: c.note,
                            at_ms: c.at_ms,
                        },
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, size = c.size, "the stored checkpoint does not verify with this replica's key; not served")
                    }
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the latest checkpoint"),
    }
    app.checkpoint.read().clone()
}

/// Makes `signed` the latest checkpoint (unless a larger one already is).
pub fn publish(app: &App, signed: &Signed) {
    let mut latest = app.checkpoint.write();
    if latest
        .as_ref()
        .is_some_and(|l| l.head.size > signed.head.size)
    {
        return;
    }
    *latest = Some(signed.clone());
    let m = &app.metrics.tree;
    m.checkpoint_size.set(signed.head.size as i64);
    m.checkpoint_root.set(signed.head.root_prefix_48() as i64);
    m.checkpoint_time.set(signed.at_ms as f64 / 1000.0);
}

/// Signs on the cadence until `shutdown` changes; without a key, returns at once.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    if app.signer.is_none() {
        return;
    }
    let every = app.config.evidence.checkpoint_interval.as_millis() as i64;
    let mut last = app.now_ms();
    let mut tick = tokio::time::interval(POLL.min(app.config.evidence.checkpoint_interval));
    let latest = app.checkpoint.read().as_ref().map(|c| c.head.size);
    if let (Some(size), true) = (latest, signs(&app)) {
        snapshot(&app, size).await;
    }
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if !signs(&app) {
            follow(&app).await;
            continue;
        }
        let now = app.now_ms();
        if now - last >= every {
            last = now;
            if let Some(signed) = issue(&app).await {
                snapshot(&app, signed.head.size).await;
            }
        }
    }
}

/// Keeps a report snapshot at `size` when one is due ([`report::snapshot::refresh`]).
async fn snapshot(app: &App, size: u64) {
    match report::snapshot::refresh(&app.evidence, &app.store, size, app.now_ms()).await {
        Ok(0) => {}
        Ok(folded) => tracing::info!(seq = size, folded, "report snapshot kept"),
        Err(e) => {
            tracing::warn!(error = %e, "report snapshot failed; reports fold from an older one")
        }
    }
}
