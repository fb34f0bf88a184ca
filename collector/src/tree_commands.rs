//! The offline commands of the evidence tree: `evidence keygen`, `key`, `checkpoint`,
//! `prove` and `verify --since`. Like [`crate::commands`], each prints its outcome and
//! returns the exit status; a failed check names the record, the checkpoint or the signature.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use aims_core::checkpoint::{SigningKey, TreeHead, VerifierKey};
use aims_core::merkle;
use anyhow::Context;
use serde::Serialize;

use crate::config::Config;
use crate::evidence;
use crate::store::Store;
use crate::tree;

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    anyhow::ensure!(path.exists(), "no database at {}", path.display());
    Ok(Store::open(&path, config.storage.synchronous).await?)
}

fn key_path(config: &Config) -> anyhow::Result<&Path> {
    config
        .evidence
        .key_file
        .as_deref()
        .context("evidence.key_file is not set in the configuration")
}

/// `evidence keygen`: writes a new signing key (readable by its owner only) named after
/// `evidence.origin`, refusing to overwrite one, and prints the public key.
pub fn keygen(output: &Path, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    use ring::rand::SecureRandom;
    let config = Config::load(config_path)?;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let key = SigningKey::from_seed(&config.evidence.origin, seed)
        .context("evidence.origin cannot name a key")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(output).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            output.display()
        )
    })?;
    writeln!(file, "{}", key.to_text()).with_context(|| format!("writing {}", output.display()))?;
    println!("{}", key.verifier().to_text());
    Ok(ExitCode::SUCCESS)
}

/// `evidence key`: prints the public key of `evidence.key_file`, to give to auditors.
pub fn key(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let key = tree::read_key(key_path(&config)?)?;
    println!("{}", key.verifier().to_text());
    Ok(ExitCode::SUCCESS)
}

/// `evidence checkpoint`: verifies the chain, then prints a signed checkpoint of the whole log.
pub async fn checkpoint(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let key = tree::read_key(key_path(&config)?)?;
    let store = open_store(&config).await?;
    let chain = evidence::verify(&store).await;
    let leaves = tree::leaves(&store).await;
    store.close().await;
    if let Err(e) = chain {
        eprintln!("not signing: {e}");
        return Ok(ExitCode::FAILURE);
    }
    let head = tree::head(&config.evidence.origin, &leaves?);
    print!("{}", head.sign(&key)?);
    Ok(ExitCode::SUCCESS)
}

/// An inclusion proof as printed by `evidence prove`.
#[derive(Debug, Serialize)]
struct Inclusion {
    seq: u64,
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    proof: Vec<String>,
    root: String,
    /// The signed checkpoint of this size, when a key is configured.
    checkpoint: Option<String>,
}

/// `evidence prove --seq N [--size M]`: the inclusion proof of record N in the tree of the
/// first M records (default: all), as JSON, with the signed checkpoint it leads to.
pub async fn prove(
    seq: u64,
    size: Option<u64>,
    config_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let key = config
        .evidence
        .key_file
        .as_deref()
        .map(tree::read_key)
        .transpose()?;
    let store = open_store(&config).await?;
    let leaves = tree::leaves(&store).await;
    store.close().await;
    let leaves = leaves?;
    let size = size.unwrap_or(leaves.len() as u64);
    anyhow::ensure!(
        size as usize <= leaves.len(),
        "--size {size}: the log has {} records",
        leaves.len()
    );
    anyhow::ensure!(
        seq >= 1 && seq <= size,
        "--seq {seq}: not in a tree of {size} records"
    );
    let part = &leaves[..size as usize];
    let index = (seq - 1) as usize;
    let proof = merkle::inclusion_proof(part, index).expect("index checked above");
    let head = tree::head(&config.evidence.origin, part);
    let out = Inclusion {
        seq,
        leaf_index: index as u64,
        tree_size: size,
        leaf_hash: merkle::to_hex(&part[index]),
        proof: proof.iter().map(merkle::to_hex).collect(),
        root: merkle::to_hex(&head.root),
        checkpoint: key.map(|k| head.sign(&k)).transpose()?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// `evidence verify --since OLD --key PUB`: the earlier checkpoint carries a valid signature
/// by the key, and today's log is an append-only extension of it (a consistency proof).
pub async fn verify_since(
    since: &Path,
    key: &Path,
    config_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let key_text =
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let key =
        VerifierKey::parse(&key_text).with_context(|| format!("public key {}", key.display()))?;
    let note =
        std::fs::read_to_string(since).with_context(|| format!("reading {}", since.display()))?;
    let old = match TreeHead::open(&note, &key) {
        Ok(old) => old,
        Err(e) => {
            eprintln!("checkpoint {} REJECTED: {e}", since.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    if old.origin != config.evidence.origin {
        eprintln!(
            "checkpoint {} REJECTED: it is of log {:?}, this log is {:?}",
            since.display(),
            old.origin,
            config.evidence.origin
        );
        return Ok(ExitCode::FAILURE);
    }
    let store = open_store(&config).await?;
    let chain = evidence::verify(&store).await;
    let leaves = tree::leaves(&store).await;
    store.close().await;
    if let Err(e) = chain {
        eprintln!("evidence chain BROKEN: {e}");
        return Ok(ExitCode::FAILURE);
    }
    let leaves = leaves?;
    let new = tree::head(&config.evidence.origin, &leaves);
    if old.size > new.size {
        eprintln!(
            "evidence log TRUNCATED: checkpoint {} (size {}) was signed over {} records, the log now has {}; records {} to {} are gone",
            since.display(),
            old.size,
            old.size,
            new.size,
            new.size + 1,
            old.size
        );
        return Ok(ExitCode::FAILURE);
    }
    let proof = merkle::consistency_proof(&leaves, old.size as usize).expect("size checked above");
    if let Err(e) = merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof) {
        eprintln!(
            "evidence log REWRITTEN: it is not an append-only extension of checkpoint {} (size {}): one or more of records 1 to {} changed after it was signed ({e})",
            since.display(),
            old.size,
            old.size
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "evidence log OK: consistent with checkpoint {} (size {}, signed by {}); now {} records, root {}",
        since.display(),
        old.size,
        key.name(),
        new.size,
        merkle::to_hex(&new.root)
    );
    Ok(ExitCode::SUCCESS)
}
