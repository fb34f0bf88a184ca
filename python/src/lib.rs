//! The native half of the `aims_monitor` Python package.
//!
//! Everything here is a thin binding over the agent's library: [`assess`] and
//! [`build_reference`] reuse `aims_agent::assess` and aims-core's profile builder and window
//! summary, and [`monitor::Monitor`] wraps `aims_agent::Monitor` (the same windows, label join,
//! spool and shipping as the sidecar) on a runtime of its own. The Python layer
//! (`aims_monitor/__init__.py`) turns inputs into the few shapes accepted here: a path, a
//! configuration as JSON text, or an object implementing the Arrow PyCapsule protocol.
//!
//! Errors reach Python as exceptions carrying the agent's HTTP error fields (`field`, `reason`,
//! `message`) plus, for tables, `column` and `row`; no Rust panic crosses into Python (pyo3
//! turns a panic into `PanicException`, and the code paths below return errors instead).
#![deny(unsafe_code)]

mod errors;
mod frame;
mod monitor;
mod pyevent;
mod pyjson;

use std::path::{Path, PathBuf};

use aims_agent::config::AgentConfig;
use aims_core::profile::{ProfileBuilder, ReferenceProfile};
use aims_core::summary::WindowSummary;
use pyo3::prelude::*;

use errors::{config_error, input_error_from_anyhow, ConfigError, InputError};

/// The extension's allocator. `record_batch` allocates each event on the caller's thread and
/// the windowing thread frees it; glibc's malloc spent about 40 % of the caller's time on that
/// pattern, mimalloc's thread-local free lists a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Worker threads for folding a table (the CLI uses one per core, up to four).
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// The agent configuration from a file (with `AIMS_AGENT__...` overrides, as the CLI loads it)
/// or from JSON text (a Python dict in the same schema).
pub(crate) fn load_config(path: Option<&str>, json: Option<&str>) -> PyResult<AgentConfig> {
    match (path, json) {
        (Some(p), _) => AgentConfig::load(Path::new(p)).map_err(|e| config_error(&e.to_string())),
        (None, Some(text)) => {
            let mut cfg: AgentConfig =
                serde_json::from_str(text).map_err(|e| config_error(&format!("config: {e}")))?;
            cfg.model = cfg
                .model
                .validated()
                .map_err(|e| config_error(&format!("config: {e}")))?;
            Ok(cfg)
        }
        (None, None) => Err(config_error("config: give a path or a dict")),
    }
}

/// A reference profile: built from a training or validation dataset, saved as `profile.json`
/// for the agent's `reference.path`, or passed to `assess` and `Monitor`.
#[pyclass(module = "aims_monitor._native", frozen)]
pub struct Profile {
    pub(crate) inner: ReferenceProfile,
}

#[pymethods]
impl Profile {
    /// Reads a profile written by `save` or by `aims-agent reference build`; checks its hash.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Profile> {
        let bytes =
            std::fs::read(&path).map_err(|e| config_error(&format!("{}: {e}", path.display())))?;
        let inner: ReferenceProfile = serde_json::from_slice(&bytes).map_err(|e| {
            config_error(&format!("{}: not a reference profile: {e}", path.display()))
        })?;
        if !inner.hash_is_valid() {
            return Err(config_error(&format!(
                "{}: hash: the profile's content does not match its hash",
                path.display()
            )));
        }
        Ok(Profile { inner })
    }

    /// Writes the profile as pretty JSON, exactly as `aims-agent reference build` does.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        std::fs::write(&path, self.to_json()? + "\n")
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("{}: {e}", path.display())))
    }

    /// The profile as JSON text.
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string_pretty(&self.inner)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
    }

    /// Content hash (the version summaries name).
    #[getter]
    fn hash(&self) -> String {
        self.inner.hash.clone()
    }

    /// Rows the profile was built from.
    #[getter]
    fn rows(&self) -> u64 {
        self.inner.rows
    }

    fn __repr__(&self) -> String {
        format!(
            "Profile(rows={}, hash={:?})",
            self.inner.rows, self.inner.hash
        )
    }
}

/// A reference profile from a dataset path or an Arrow stream.
fn profile_of(
    py: Python<'_>,
    cfg: &AgentConfig,
    data: &Bound<'_, PyAny>,
) -> PyResult<ReferenceProfile> {
    if let Ok(p) = data.downcast::<Profile>() {
        let inner = p.get().inner.clone();
        inner
            .check_against(&cfg.model)
            .map_err(|e| config_error(&format!("reference profile: {e}")))?;
        return Ok(inner);
    }
    if let Ok(path) = data.extract::<PathBuf>() {
        return py
            .allow_threads(|| aims_agent::assess::reference_profile(cfg, &path))
            .map_err(|e| input_error_from_anyhow(&e, &cfg.columns));
    }
    let batches = frame::read_batches(data)?;
    py.allow_threads(|| {
        let schema = &cfg.model;
        // The CLI's blocks, in row order: the same profile to the bit.
        let parts = frame::fold_blocks(
            &batches,
            schema,
            &cfg.columns,
            0,
            workers(),
            aims_agent::assess::BLOCK_ROWS,
            || ProfileBuilder::new(schema),
            |b, e, _| b.add(e),
        )?;
        Ok(aims_agent::assess::profile_from_parts(schema, parts))
    })
    .map_err(|e: frame::FrameError| errors::input_error(&e))
}

/// Builds a reference profile from `data` (a CSV / NDJSON path or an Arrow stream).
#[pyfunction]
#[pyo3(signature = (data, config_path=None, config_json=None))]
fn build_reference(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    config_path: Option<&str>,
    config_json: Option<&str>,
) -> PyResult<Profile> {
    let cfg = load_config(config_path, config_json)?;
    Ok(Profile {
        inner: profile_of(py, &cfg, data)?,
    })
}

/// The assessment as JSON text, the same document as `aims-agent assess --format json`.
#[pyfunction]
#[pyo3(signature = (reference, current, config_path=None, config_json=None, objectives=None))]
fn assess(
    py: Python<'_>,
    reference: &Bound<'_, PyAny>,
    current: &Bound<'_, PyAny>,
    config_path: Option<&str>,
    config_json: Option<&str>,
    objectives: Option<PathBuf>,
) -> PyResult<String> {
    let cfg = load_config(config_path, config_json)?;
    let assessment = match (reference.extract::<PathBuf>(), current.extract::<PathBuf>()) {
        // Two files: exactly the CLI's code path.
        (Ok(r), Ok(c)) => py
            .allow_threads(|| aims_agent::assess::assess_files(&cfg, &r, &c, objectives.as_deref()))
            .map_err(|e| input_error_from_anyhow(&e, &cfg.columns))?,
        _ => {
            let profile = profile_of(py, &cfg, reference)?;
            let schema = &cfg.model;
            let (summary, rows) = if let Ok(path) = current.extract::<PathBuf>() {
                py.allow_threads(|| aims_agent::assess::current_summary(&cfg, &profile, &path))
                    .map_err(|e| input_error_from_anyhow(&e, &cfg.columns))?
            } else {
                let batches = frame::read_batches(current)?;
                py.allow_threads(|| {
                    // The CLI's blocks and order of accumulation: the same floats to the bit.
                    let blocks = frame::fold_blocks(
                        &batches,
                        schema,
                        &cfg.columns,
                        0,
                        workers(),
                        aims_agent::assess::BLOCK_ROWS,
                        || WindowSummary::new(schema, &profile),
                        |s, e, scores| s.record_scored(schema, &profile, e, scores),
                    )
                    .map_err(|e| errors::input_error(&e))?;
                    let mut merged = aims_agent::assess::InOrder::new(schema, &profile);
                    for block in &blocks {
                        merged.push(block);
                    }
                    let summary = merged
                        .finish()
                        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
                    Ok::<_, PyErr>((summary, frame::rows(&batches)))
                })?
            };
            py.allow_threads(|| {
                aims_agent::assess::assessment(&cfg, profile, &summary, rows, objectives.as_deref())
            })
            .map_err(|e| input_error_from_anyhow(&e, &cfg.columns))?
        }
    };
    serde_json::to_string(&assessment)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add_class::<Profile>()?;
    m.add_class::<monitor::Monitor>()?;
    m.add_function(wrap_pyfunction!(assess, m)?)?;
    m.add_function(wrap_pyfunction!(build_reference, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
