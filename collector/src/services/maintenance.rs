//! Maintenance: every `maintenance_interval`, roll stored summaries up into hours, expire those
//! past retention, and compact the in-memory aggregates to match.

use std::sync::Arc;

use tokio::sync::watch;

use crate::state::{horizon_ms, App};

/// Runs maintenance until `shutdown` changes.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(app.config.storage.maintenance_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        once(&app).await;
    }
}

/// One maintenance pass at the clock's now.
pub async fn once(app: &App) {
    let now = app.now_ms();
    let rollup_before = now - app.config.storage.rollup_after.as_millis() as i64;
    let expire_before = now - app.config.storage.retention.as_millis() as i64;
    match app.store.roll_up(rollup_before, now).await {
        Ok(done) => {
            app.metrics
                .maintenance
                .with_label_values(&["rolled_up"])
                .inc_by(done.merged as u64);
            for conflict in &done.conflicts {
                tracing::error!(hour = %conflict, "roll-up does not merge with the stored hour; both are kept as they were");
            }
        }
        Err(e) => tracing::error!(error = %e, "roll-up failed"),
    }
    match app.store.expire(expire_before).await {
        Ok(n) => app
            .metrics
            .maintenance
            .with_label_values(&["expired"])
            .inc_by(n),
        Err(e) => tracing::error!(error = %e, "expiry failed"),
    }
    let horizon = horizon_ms(&app.objectives(), &app.config);
    app.aggregates.write().compact(rollup_before, now - horizon);
}
