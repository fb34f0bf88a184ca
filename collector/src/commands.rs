//! The offline commands: `check`, `report`, `evidence verify` and `evidence export`. Each opens
//! what it needs, prints its outcome and returns the exit status; errors that stop a command
//! are returned for the binary to print.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::clock::Clock;
use crate::config::Config;
use crate::evidence;
use crate::services::report::{self, Format};
use crate::services::{notify, pack, pack_snapshot, pack_tree, reload};
use crate::store::Store;

/// A reporting period as given: each bound is `YYYY-MM-DD` (UTC), an RFC 3339 time or
/// milliseconds since the epoch; a bare date as the end includes that whole day.
#[derive(Debug, Clone)]
pub struct Period {
    /// Period start.
    pub from: String,
    /// Period end.
    pub to: String,
}

/// `check`: validates objectives files (with a configuration, also their receivers; with
/// reference profiles, also the names they select against those models' schemas); every
/// error with file:line and field.
pub fn check(files: &[PathBuf], config: Option<&Path>, references: &[PathBuf]) -> ExitCode {
    let notify = match config.map(|c| Config::load(Some(c))).transpose() {
        Ok(c) => c.map(|c| c.notify),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut schemas = Vec::with_capacity(references.len());
    for path in references {
        let profile = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<aims_core::ReferenceProfile>(&text)
                    .map_err(|e| e.to_string())
            });
        match profile {
            Ok(p) => schemas.push(p.schema),
            Err(e) => {
                eprintln!("reference profile {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let mut ok = true;
    for path in files {
        let loaded = reload::load(path, &schemas).and_then(|file| match &notify {
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

/// `evidence verify`: recomputes the hash chain in the database.
pub async fn verify(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let store = open_existing(&config).await?;
    let result = evidence::verify(&store).await;
    // The report snapshots, against the records that hold their hashes.
    let snapshots = match &result {
        Ok(_) => Some(report::snapshot::verify_all(&store).await),
        Err(_) => None,
    };
    store.close().await;
    match (result, snapshots) {
        (Ok(_), Some(Err(report::ReportError::Snapshot { seq, reason }))) => {
            eprintln!("evidence report snapshot BROKEN at record {seq}: {reason}");
            Ok(ExitCode::FAILURE)
        }
        (Ok(_), Some(Err(e))) => Err(e.into()),
        (Ok(c), _) => {
            println!(
                "evidence chain OK: {} records, head sequence {}, head hash {}",
                c.records, c.head_seq, c.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        (Err(evidence::VerifyError::Broken(b)), _) => {
            eprintln!("evidence chain BROKEN at record {}: {}", b.seq, b.reason);
            Ok(ExitCode::FAILURE)
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// Opens the store named by the configuration for reading, and the report request it implies.
async fn report_request(
    period: &Period,
    model: Option<String>,
    config_path: Option<&Path>,
) -> anyhow::Result<(Store, report::Request)> {
    let config = Config::load(config_path)?;
    let store = open_existing(&config).await?;
    let request = report::Request {
        from_ms: report::parse_time("--from", &period.from, false)?,
        to_ms: report::parse_time("--to", &period.to, true)?,
        model,
        now_ms: Clock::system().now_ms(),
        interval: config.evaluation.interval,
        config_path: config_path.map(|p| p.display().to_string()),
    };
    Ok((store, request))
}

/// `report`: writes the report for a period to `output` or standard output.
pub async fn write_report(
    period: &Period,
    model: Option<String>,
    format: Format,
    output: Option<&Path>,
    config_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let key = config
        .evidence
        .key_file
        .as_deref()
        .map(crate::tree::read_key)
        .transpose()?;
    let (store, request) = report_request(period, model, config_path).await?;
    let built = report::build(&store, &request).await;
    // With a key, a checkpoint of the log as it is now (covering the period) goes in.
    let edge = match &key {
        Some(_) => Some(crate::tree::frontier_from_checkpoint(&store).await),
        None => None,
    };
    store.close().await;
    let mut built = built?;
    if let (Some(key), Some(edge)) = (&key, edge.transpose()?) {
        let head = aims_core::checkpoint::TreeHead {
            origin: config.evidence.origin.clone(),
            size: edge.size(),
            root: edge.root(),
        };
        built = built.with_checkpoint(head.sign(key)?);
    }
    let text = format.render(&built);
    match output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `evidence export`: writes a period's evidence pack.
pub async fn export(
    period: &Period,
    output: &Path,
    config_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let key = config
        .evidence
        .key_file
        .as_deref()
        .map(crate::tree::read_key)
        .transpose()?;
    let (store, request) = report_request(period, None, config_path).await?;
    let built = report::build(&store, &request).await;
    let records = report::period_records(&store, request.from_ms, request.to_ms).await;
    let (built, (anchor, rows)) = match (built, records) {
        (Ok(b), Ok(r)) => (b, r),
        (Err(e), _) | (_, Err(e)) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let end = rows.last().map_or(anchor.seq, |r| r.sealed.seq);
    // The snapshot the report's start state was read from, with its record.
    let snapshot = match &built.document.snapshot {
        Some(named) => Some(pack_snapshot::read(&store, named).await),
        None => None,
    };
    let record = built.document.snapshot.as_ref().map(|s| s.record);
    let tree = match &key {
        Some(key) => Some(
            pack_tree::build(
                &store,
                key,
                &config.evidence.origin,
                anchor.seq,
                end,
                record,
            )
            .await,
        ),
        None => None,
    };
    store.close().await;
    let tree = tree.transpose()?;
    let snapshot = snapshot.transpose()?;
    let built = match &tree {
        Some(t) => built.with_checkpoint(t.checkpoint.clone()),
        None => {
            eprintln!("evidence.key_file is not set: the pack carries no signed checkpoint");
            built
        }
    };
    pack::write(
        output,
        &built,
        &report::html::render(&built),
        &anchor,
        &rows,
        tree.as_ref(),
        snapshot.as_ref(),
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

/// `evidence verify --pack [--key PUB]`: checks an exported pack offline; with the public
/// key, also its signed checkpoints and proofs.
pub fn verify_pack(path: &Path, key: Option<&Path>) -> ExitCode {
    let key = match key.map(read_verifier).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    match pack::verify(path, key.as_ref()) {
        Ok(v) => {
            if let Some(head) = &v.tree {
                println!(
                    "evidence pack records proven: {} records are leaves {} to {} of checkpoint {} (size {}, root {}), signed by {}; {} issued checkpoints consistent with it",
                    v.checkpoint.records,
                    v.anchor.seq + 1,
                    head.size,
                    head.origin,
                    head.size,
                    aims_core::merkle::to_hex(&head.root),
                    key.as_ref().map_or("", |k| k.name()),
                    v.issued
                );
            }
            if let Some(s) = &v.snapshot {
                println!(
                    "evidence pack report snapshot OK: the report started from the snapshot after record {}, SHA-256 {}, held by evidence record {}{}",
                    s.seq,
                    s.sha256,
                    s.record,
                    if v.tree.is_some() {
                        ", which is proven in the signed log"
                    } else {
                        " (not proven in the signed log: no --key)"
                    }
                );
            }
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
            eprintln!("evidence pack INVALID ({}): {e}", e.what());
            ExitCode::FAILURE
        }
    }
}

/// Opens the store the configuration names, refusing to create an empty SQLite file where the
/// operator expected one (a PostgreSQL database is connected to as configured).
async fn open_existing(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    if config.storage.backend == crate::config::Backend::Sqlite {
        anyhow::ensure!(path.exists(), "no database at {}", path.display());
    }
    Store::connect(&config.storage, &path)
        .await
        .with_context(|| format!("opening {}", config.database_name()))
}

/// Reads a public key file as printed by `evidence key`.
pub fn read_verifier(path: &Path) -> anyhow::Result<aims_core::checkpoint::VerifierKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    aims_core::checkpoint::VerifierKey::parse(&text)
        .with_context(|| format!("public key {}", path.display()))
}
