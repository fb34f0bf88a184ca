//! `aims-agent assess` and `aims-agent reference build`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `assess`.
#[derive(Debug)]
pub struct AssessArgs {
    /// Agent configuration.
    pub config: PathBuf,
    /// Reference dataset or profile.
    pub reference: PathBuf,
    /// Current dataset.
    pub current: PathBuf,
    /// Objectives to judge.
    pub objectives: Option<PathBuf>,
    /// JSON output instead of text.
    pub json: bool,
}

/// Builds a reference profile.
pub fn build_reference(_config: &Path, _data: &Path, _output: &Path) -> anyhow::Result<()> {
    anyhow::bail!("reference build is being written")
}

/// Runs an assessment.
pub fn run(_args: &AssessArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("assess is being written")
}
