//! aims-collector: receives window summaries from agents, evaluates AI objectives
//! (ISO/IEC 42001 Clause 6.2) and keeps a hash-chained evidence log (Clauses 7.5, 9.1).
#![forbid(unsafe_code)]

mod aggregate;
mod api;
mod app;
mod config;
mod evaluate;
mod evidence;
mod ingest;
mod metrics;
mod reload;
mod status;
mod store;
mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use aims_core::evidence::Kind;
use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::app::{horizon_ms, App, ObjectiveStatus, Profiles};
use crate::config::{Config, LogFormat};
use crate::evidence::{Entry, EvidenceLog};
use crate::store::Store;

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug, Parser)]
#[command(name = "aims-collector", version, about = "AIMS Monitor collector")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector.
    Run {
        /// Configuration file (TOML); defaults and AIMS_COLLECTOR__* variables apply without it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate objectives files; every error with file:line and field, exit status 1.
    Check {
        /// Objectives files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Evidence log commands.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EvidenceCommand {
    /// Recompute the hash chain; names the first broken record (exit status 1).
    Verify {
        /// Configuration file locating the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => check(&files),
        Command::Evidence {
            command: EvidenceCommand::Verify { config },
        } => report(runtime().and_then(|rt| rt.block_on(verify(config.as_deref())))),
        Command::Run { config } => {
            report(runtime().and_then(|rt| rt.block_on(run(config.as_deref()))))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for path in files {
        match reload::load(path, &[]) {
            Ok(file) => println!(
                "{}: SUCCESS: {} objectives found (version {})",
                path.display(),
                file.objectives.len(),
                &file.version[..12]
            ),
            Err(e) => {
                ok = false;
                eprintln!("{e}");
                eprintln!("{}: FAILED", path.display());
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn verify(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let path = config.database_path();
    anyhow::ensure!(path.exists(), "no database at {}", path.display());
    let store = Store::open(&path, config.storage.synchronous).await?;
    let result = evidence::verify(&store).await;
    store.close().await;
    match result {
        Ok(c) => {
            println!(
                "evidence chain OK: {} records, head sequence {}, head hash {}",
                c.records, c.head_seq, c.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(evidence::VerifyError::Broken(b)) => {
            eprintln!("evidence chain BROKEN at record {}: {}", b.seq, b.reason);
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

async fn shutdown_signal(tx: watch::Sender<bool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            ctrl_c.await.ok();
            tx.send(true).ok();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    tx.send(true).ok();
}

async fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    init_logging(config.logging.format);
    let now = now_ms();
    let store = Store::open(&config.database_path(), config.storage.synchronous)
        .await
        .with_context(|| format!("opening {}", config.database_path().display()))?;
    let metrics = metrics::Metrics::new();
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
    let mut entries = vec![Entry::global(
        Kind::Startup,
        json!({"version": env!("CARGO_PKG_VERSION"), "objectives_file": config.evaluation.objectives.display().to_string(),
               "file_version": file.version}),
    )];
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

    let listener = std::net::TcpListener::bind(config.server.listen)
        .with_context(|| format!("binding {}", config.server.listen))?;
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
        started_ms: now,
        config,
    });
    let (drain, drained) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(ingest::writer(app.clone(), rx, drained));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(shutdown_signal(stop_tx));
    let evaluator = tokio::spawn(evaluate::run(app.clone(), stop_rx.clone()));
    tokio::spawn(maintenance(app.clone(), stop_rx.clone()));
    tokio::spawn(hangups(app.clone()));

    let tls = match (&app.config.server.tls_cert, &app.config.server.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "listening");
    let mut stopped = stop_rx.clone();
    tls::serve(listener, api::router(app.clone()), tls, async move {
        stopped.wait_for(|s| *s).await.ok();
    })
    .await
    .context("serving HTTP")?;
    evaluator.await.ok();
    drain.send(()).ok();
    writer.await.ok();
    app.store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Reloads the objectives on SIGHUP.
async fn hangups(app: Arc<App>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload over HTTP only");
            return;
        }
    };
    while hup.recv().await.is_some() {
        reload::reload(&app, "sighup").await.ok();
    }
}

/// Rolls up and expires stored summaries, and compacts the in-memory aggregates.
async fn maintenance(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(app.config.storage.maintenance_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = now_ms();
        let rollup_before = now - app.config.storage.rollup_after.as_millis() as i64;
        let expire_before = now - app.config.storage.retention.as_millis() as i64;
        match app.store.roll_up(rollup_before).await {
            Ok(n) => app
                .metrics
                .maintenance
                .with_label_values(&["rolled_up"])
                .inc_by(n as u64),
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
        app.aggregates
            .write()
            .expect("aggregates lock")
            .compact(rollup_before, now - horizon);
    }
}
