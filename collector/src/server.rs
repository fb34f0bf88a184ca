//! Running the collector: restore the state from the store, start the tasks (ingest writer,
//! evaluator, notifier, maintenance, SIGHUP reloads) and serve HTTP on a listener the caller
//! bound, until `shutdown` completes. Then drain: stop accepting, let the evaluator finish its
//! cycle, commit every queued summary, close the store.
//!
//! The binary binds the configured address and passes `ctrl_c`/SIGTERM as `shutdown`; a test
//! binds port 0 and passes a channel of its own.

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use aims_core::evidence::payload::{Payload, Startup};
use anyhow::Context;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::config::Config;
use crate::evidence::{Entry, EvidenceLog};
use crate::metrics::Metrics;
use crate::services::{checkpoint, evaluate, ingest, leadership, maintenance, notify, reload};
use crate::state::{horizon_ms, App, ObjectiveStatus, Profiles};
use crate::store::Store;

/// Runs the collector on `listener` with the system clock until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_clock(config, Clock::system(), listener, shutdown).await
}

/// Runs the collector on `listener`, reading the time from `clock`, until `shutdown`
/// completes.
pub async fn run_with_clock(
    mut config: Config,
    clock: Clock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The address actually bound (port 0 becomes a real port), for the alerts' external URL.
    config.server.listen = listener.local_addr().context("the listener's address")?;
    let now = clock.now_ms();
    let store = Store::connect(&config.storage, &config.database_path())
        .await
        .with_context(|| format!("opening {}", config.database_name()))?;
    let metrics = Metrics::new();
    metrics.start_time.set(now as f64 / 1000.0);
    let evidence_log = EvidenceLog::open(store.clone(), metrics.clone()).await?;

    let mut profiles = Profiles::default();
    for p in store.profiles().await? {
        profiles.insert(p);
    }
    let file = reload::load(&config.evaluation.objectives, &profiles.schemas())?;
    let mut status: HashMap<String, ObjectiveStatus> = store
        .objective_states()
        .await?
        .iter()
        .filter_map(|row| ObjectiveStatus::from_row(row).map(|s| (row.objective.clone(), s)))
        .collect();
    let mut entries = vec![Entry::global(Payload::Startup(Startup {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        objectives_file: config.evaluation.objectives.display().to_string(),
        file_version: file.version.clone(),
    }))];
    entries.extend(reload::adopt(&mut status, &file, now));
    status.retain(|id, _| file.objectives.iter().any(|o| &o.id == id));
    let rows: Vec<_> = status.iter().map(|(id, s)| s.row(id)).collect();
    let (head_seq, head_hash) = evidence_log.append(entries, &rows, now).await?;
    tracing::info!(head_seq, head_hash = %head_hash, "evidence chain head");
    for (id, s) in &status {
        metrics.set_state(id, s.lifecycle.state);
    }
    metrics.config_last_reload_successful.set(1);
    let aggregates = App::rebuild_aggregates(&store, now, horizon_ms(&file, &config)).await?;
    tracing::info!(
        buckets = aggregates.bucket_count(),
        objectives = file.objectives.len(),
        "state restored"
    );

    for (_, objective, receiver) in notify::Notifier::unknown_receivers(&file, &config.notify) {
        tracing::warn!(objective, receiver, "notify: names a receiver not configured in [[notify.receivers]]; its alerts go nowhere");
    }
    let nonconformities = store
        .nonconformities()
        .await?
        .into_iter()
        .map(|n| (n.id, n))
        .collect();
    let signer = match &config.evidence.key_file {
        Some(path) => Some(Arc::new(crate::tree::read_key(path)?)),
        None => None,
    };
    let latest_checkpoint = match (&signer, store.latest_checkpoint().await?) {
        (Some(key), Some(c)) => aims_core::checkpoint::TreeHead::open(&c.note, key.verifier())
            .ok()
            .map(|head| crate::tree::Signed {
                head,
                note: c.note,
                at_ms: c.at_ms,
            }),
        _ => None,
    };
    let (notifier, targets) = notify::Notifier::new(&config, metrics.clone())?;
    let (tx, rx) = mpsc::channel(config.server.ingest_queue);
    let app = Arc::new(App {
        store: store.clone(),
        metrics,
        evidence: evidence_log,
        profiles: RwLock::new(profiles),
        aggregates: RwLock::new(aggregates),
        objectives: RwLock::new(Arc::new(file)),
        status: RwLock::new(status),
        ingest: tx,
        reload_lock: tokio::sync::Mutex::new(()),
        nonconformities: RwLock::new(nonconformities),
        corrective_lock: tokio::sync::Mutex::new(()),
        started_ms: now,
        clock,
        config,
        signer,
        checkpoint: RwLock::new(None),
    });
    if let Some(latest) = latest_checkpoint {
        checkpoint::publish(&app, &latest);
    }
    checkpoint::issue(&app).await;
    let (drain, drained) = oneshot::channel();
    let writer = tokio::spawn(ingest::writer(app.clone(), rx, drained));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        stop_tx.send(true).ok();
    });
    // The first election runs before the evaluator starts, so a single (SQLite) collector
    // and the first PostgreSQL replica evaluate from the first tick.
    let mut elector = leadership::elector(&app)?;
    leadership::tick(&app, &mut elector).await;
    tokio::spawn(leadership::run(app.clone(), elector, stop_rx.clone()));
    notify::spawn(app.clone(), targets, stop_rx.clone())?;
    let evaluator = tokio::spawn(evaluate::run(
        app.clone(),
        Arc::new(notifier),
        stop_rx.clone(),
    ));
    tokio::spawn(maintenance::run(app.clone(), stop_rx.clone()));
    tokio::spawn(checkpoint::run(app.clone(), stop_rx.clone()));
    tokio::spawn(hangups(app.clone(), stop_rx.clone()));

    let tls = match (&app.config.server.tls_cert, &app.config.server.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "listening");
    let mut stopped = stop_rx.clone();
    crate::tls::serve(
        listener,
        crate::http::router(app.clone()),
        tls,
        async move {
            stopped.wait_for(|s| *s).await.ok();
        },
    )
    .await
    .context("serving HTTP")?;
    evaluator.await.ok();
    drain.send(()).ok();
    writer.await.ok();
    checkpoint::issue(&app).await;
    app.store.close().await;
    Ok(())
}

/// Reloads the objectives on SIGHUP, until shutdown.
async fn hangups(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload over HTTP only");
            return;
        }
    };
    loop {
        tokio::select! {
            got = hup.recv() => if got.is_none() { return },
            _ = shutdown.changed() => return,
        }
        reload::reload(&app, "sighup").await.ok();
    }
}
