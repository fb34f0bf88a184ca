//! aims-collector: receives window summaries from agents, evaluates AI objectives
//! (ISO/IEC 42001 Clause 6.2) and keeps a hash-chained evidence log (Clauses 7.5, 9.1).
#![forbid(unsafe_code)]

mod aggregate;
mod api;
mod app;
mod config;
mod evaluate;
mod evidence;
mod html;
mod ingest;
mod metrics;
mod notify;
mod pack;
mod reload;
mod report;
mod status;
mod store;
#[cfg(test)]
mod test_support;
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
        /// Collector configuration: also check that every receiver named in `notify:` exists.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write the Clause 9 performance-evaluation report for a period.
    Report {
        #[command(flatten)]
        period: Period,
        /// Only this model's objectives.
        #[arg(long)]
        model: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "html")]
        format: report::Format,
        /// Output file (standard output without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Configuration file locating the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Evidence log commands.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
}

/// A reporting period.
#[derive(Debug, clap::Args)]
struct Period {
    /// Period start: YYYY-MM-DD (UTC), an RFC 3339 time or milliseconds since the epoch.
    #[arg(long)]
    from: String,
    /// Period end (a bare date includes that whole day).
    #[arg(long)]
    to: String,
}

#[derive(Debug, Subcommand)]
enum EvidenceCommand {
    /// Recompute the hash chain; names the first broken record (exit status 1). With
    /// `--pack`, checks an exported pack offline instead of the database.
    Verify {
        /// Configuration file locating the data directory.
        #[arg(long, conflicts_with = "pack")]
        config: Option<PathBuf>,
        /// An evidence pack written by `evidence export`.
        #[arg(long)]
        pack: Option<PathBuf>,
    },
    /// Write a period's report and evidence records, with its checkpoints, to a tar file.
    Export {
        #[command(flatten)]
        period: Period,
        /// The tar file to write.
        #[arg(short, long)]
        output: PathBuf,
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
        Command::Check { files, config } => check(&files, config.as_deref()),
        Command::Evidence {
            command: EvidenceCommand::Verify {
                pack: Some(pack), ..
            },
        } => report(Ok(verify_pack(&pack))),
        Command::Evidence {
            command: EvidenceCommand::Verify { config, pack: None },
        } => report(runtime().and_then(|rt| rt.block_on(verify(config.as_deref())))),
        Command::Evidence {
            command:
                EvidenceCommand::Export {
                    period,
                    output,
                    config,
                },
        } => report(
            runtime().and_then(|rt| rt.block_on(export(&period, &output, config.as_deref()))),
        ),
        Command::Report {
            period,
            model,
            format,
            output,
            config,
        } => report(runtime().and_then(|rt| {
            rt.block_on(write_report(
                &period,
                model,
                format,
                output.as_deref(),
                config.as_deref(),
            ))
        })),
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

fn check(files: &[PathBuf], config: Option<&Path>) -> ExitCode {
    let notify = match config.map(|c| Config::load(Some(c))).transpose() {
        Ok(c) => c.map(|c| c.notify),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for path in files {
        let loaded = reload::load(path, &[]).and_then(|file| match &notify {
            Some(n) => notify::check_receivers(path, &file, n).map(|()| file),
            None => Ok(file),
        });
        match loaded {
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

/// Opens the store named by the configuration for reading, and the report request it implies.
async fn report_request(
    period: &Period,
    model: Option<String>,
    config_path: Option<&Path>,
) -> anyhow::Result<(Store, report::Request)> {
    let config = Config::load(config_path)?;
    let path = config.database_path();
    anyhow::ensure!(path.exists(), "no database at {}", path.display());
    let store = Store::open(&path, config.storage.synchronous).await?;
    let request = report::Request {
        from_ms: report::parse_time("--from", &period.from, false)?,
        to_ms: report::parse_time("--to", &period.to, true)?,
        model,
        now_ms: now_ms(),
        interval: config.evaluation.interval,
        config_path: config_path.map(|p| p.display().to_string()),
    };
    Ok((store, request))
}

async fn write_report(
    period: &Period,
    model: Option<String>,
    format: report::Format,
    output: Option<&Path>,
    config_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (store, request) = report_request(period, model, config_path).await?;
    let built = report::build(&store, &request).await;
    store.close().await;
    let text = format.render(&built?);
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(
    period: &Period,
    output: &Path,
    config_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (store, request) = report_request(period, None, config_path).await?;
    let built = report::build(&store, &request).await;
    let records = report::period_records(&store, request.from_ms, request.to_ms).await;
    store.close().await;
    let built = built?;
    let (anchor, rows) = records?;
    pack::write(
        output,
        &built,
        &report::html::render(&built),
        &anchor,
        &rows,
    )?;
    println!(
        "evidence pack {}: {} records, sequence {} to {}, report content hash {}",
        output.display(),
        rows.len(),
        anchor.seq,
        built.document.chain_end.seq,
        built.document.content_hash
    );
    Ok(ExitCode::SUCCESS)
}

fn verify_pack(path: &Path) -> ExitCode {
    match pack::verify(path) {
        Ok(v) => {
            println!(
                "evidence pack OK: {} records from anchor sequence {} ({}) to head sequence {} ({}); report content hash {}",
                v.checkpoint.records,
                v.anchor.seq,
                v.anchor.hash,
                v.checkpoint.head_seq,
                v.checkpoint.head_hash,
                v.content_hash
            );
            ExitCode::SUCCESS
        }
        Err(pack::PackError::Broken(b)) => {
            eprintln!("evidence pack BROKEN at record {}: {}", b.seq, b.reason);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("evidence pack INVALID: {e}");
            ExitCode::FAILURE
        }
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
    for (_, objective, receiver) in notify::Notifier::unknown_receivers(&file, &config.notify) {
        tracing::warn!(objective, receiver, "notify: names a receiver not configured in [[notify.receivers]]; its alerts go nowhere");
    }
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
        started_ms: now,
        notifier,
        config,
    });
    let (drain, drained) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(ingest::writer(app.clone(), rx, drained));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(shutdown_signal(stop_tx));
    notify::spawn(app.clone(), targets, stop_rx.clone())?;
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
