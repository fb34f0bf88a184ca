//! Maintenance: every `maintenance_interval`, roll stored summaries up into hours, expire those
//! past retention, and compact the in-memory aggregates to match.
//!
//! A rolled-up hour cannot be split again, so an hour is rolled up only once no objective
//! window (nor the metrics window) can start inside it any more: before the hour in which the
//! longest window now starts ([`rollup_cutoff`]). Every window's boundary then falls among
//! minute summaries, and a window merges exactly the minutes it covers, as if nothing had been
//! rolled up. The price: minute summaries are kept for the longest window plus up to an hour,
//! in memory and in the store, even when `rollup_after` is shorter.

use std::sync::Arc;

use tokio::sync::watch;

use crate::state::{horizon_ms, App};
use crate::store::HOUR_MS;

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
    let horizon = horizon_ms(&app.objectives(), &app.config);
    let rollup_before = rollup_cutoff(
        now,
        app.config.storage.rollup_after.as_millis() as i64,
        horizon,
    );
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
    app.aggregates.write().compact(rollup_before, now - horizon);
}

/// Summaries ending before this may be rolled up: older than `rollup_after`, and in hours
/// wholly before the start of the longest window (`horizon_ms`), so that no window's edge ever
/// falls inside a rolled-up hour.
pub fn rollup_cutoff(now_ms: i64, rollup_after_ms: i64, horizon_ms: i64) -> i64 {
    let earliest_start = now_ms.saturating_sub(horizon_ms);
    let boundary_hour = earliest_start.div_euclid(HOUR_MS) * HOUR_MS;
    now_ms.saturating_sub(rollup_after_ms).min(boundary_hour)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregates;
    use aims_core::WindowSummary;
    use aims_testkit::fixtures::{one_feature as fixture, positive as event};

    /// Issue 12: a window whose edge falls inside an hour that `rollup_after` alone would roll
    /// up must merge exactly the minutes it covers.
    #[test]
    fn a_window_edge_inside_a_rollup_hour_stays_exact() {
        let (schema, profile) = fixture();
        let minute = 60_000;
        let minutes = || {
            let mut agg = Aggregates::default();
            for m in 0..180 {
                let mut s = WindowSummary::new(&schema, &profile);
                s.record(&schema, &profile, &event(m as f64));
                agg.add("m", "1", m * minute, minute as u64, &s);
            }
            agg
        };
        let mut agg = minutes();
        let now = 180 * minute;
        // A 100-minute window starts at minute 80, inside the hour [60, 120); rollup_after is
        // one hour, which alone would roll up that whole hour.
        let window = 100 * minute;
        let exact = agg.window("m", &profile.hash, now - window, now).unwrap();
        assert_eq!(exact.summary.events, 100);
        let cutoff = rollup_cutoff(now, HOUR_MS, window);
        assert_eq!(cutoff, HOUR_MS, "only the hour before the window's start");
        agg.compact(cutoff, now - window);
        let after = agg.window("m", &profile.hash, now - window, now).unwrap();
        assert_eq!(after.summary, exact.summary);
        // The cutoff rollup_after alone gives counts 20 minutes outside the window.
        let mut agg = minutes();
        agg.compact(now - HOUR_MS, now - window);
        let blurred = agg.window("m", &profile.hash, now - window, now).unwrap();
        assert_eq!(blurred.summary.events, 120);
        // A rollup_after longer than the window still governs.
        assert_eq!(rollup_cutoff(now, 3 * HOUR_MS, window), 0);
    }
}
